/*
 * ctl_watch: polls the supervisor with `show` every interval (500 ms by
 * default) over one connection and renders what it learns. Rates and the
 * ETA are measured here, from the figures of successive replies, so they
 * are right for imports another supervisor runs too.
 */
#include "ctl_watch.h"
#include "dip_time.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define RATE_SPAN_MS 10000
#define PLAIN_EVERY_MS 2000

static const char usage[] =
    "usage: dealimportctl watch ID [--interval SECONDS] [--json] "
    "[--timeout SECONDS]\n"
    "                              [--connect ENDPOINT]\n";

void ctl_watch_rate_init(ctl_watch_rate_t *r)
{
    memset(r, 0, sizeof(*r));
}

void ctl_watch_rate_add(ctl_watch_rate_t *r, int64_t t_ms, int64_t lines,
                        int64_t bytes)
{
    if (r->n > 0) {
        int last = (r->head + CTL_WATCH_WINDOW - 1) % CTL_WATCH_WINDOW;
        if (lines < r->lines[last] || bytes < r->bytes[last] ||
            t_ms < r->t_ms[last])
            r->n = 0;
    }
    r->t_ms[r->head] = t_ms;
    r->lines[r->head] = lines;
    r->bytes[r->head] = bytes;
    r->head = (r->head + 1) % CTL_WATCH_WINDOW;
    if (r->n < CTL_WATCH_WINDOW)
        r->n++;
}

void ctl_watch_rate_get(const ctl_watch_rate_t *r, double *lines_per_s,
                        double *bytes_per_s)
{
    int newest = (r->head + CTL_WATCH_WINDOW - 1) % CTL_WATCH_WINDOW;
    int oldest = newest;
    double dt;
    *lines_per_s = *bytes_per_s = -1;
    if (r->n < 2)
        return;
    /* The oldest sample still inside the span. */
    for (int k = 1; k < r->n; k++) {
        int i = (newest + CTL_WATCH_WINDOW - k) % CTL_WATCH_WINDOW;
        if (r->t_ms[newest] - r->t_ms[i] > RATE_SPAN_MS)
            break;
        oldest = i;
    }
    dt = (double)(r->t_ms[newest] - r->t_ms[oldest]) / 1000.0;
    if (dt < 1.0)
        return;
    *lines_per_s = (double)(r->lines[newest] - r->lines[oldest]) / dt;
    *bytes_per_s = (double)(r->bytes[newest] - r->bytes[oldest]) / dt;
}

static double percent(const ctl_watch_sample_t *s)
{
    if (s->status && strcmp(s->status, "completed") == 0)
        return 100.0;
    if (s->bytes_total <= 0)
        return -1;
    if (s->bytes >= s->bytes_total)
        return 100.0;
    return (double)s->bytes * 100.0 / (double)s->bytes_total;
}

static char *eta_text(long long eta, char *out, size_t len)
{
    if (eta < 0)
        snprintf(out, len, "--");
    else
        ctl_duration(eta, out, len);
    return out;
}

char *ctl_watch_bar(const ctl_watch_sample_t *s, int width, char *out,
                    size_t len)
{
    char bar[128], rate[32], eta[32], pct[16];
    double p = percent(s);
    int cells = width - 72, filled;
    if (cells > 40)
        cells = 40;
    if (cells < 10)
        cells = 10;
    filled = p < 0 ? 0 : (int)(p * cells / 100.0);
    for (int i = 0; i < cells; i++)
        bar[i] = i < filled ? '#' : '-';
    bar[cells] = '\0';
    if (p < 0)
        snprintf(pct, sizeof(pct), "  --%%");
    else
        snprintf(pct, sizeof(pct), "%5.1f%%", p);
    if (s->rate < 0)
        snprintf(rate, sizeof(rate), "--/s");
    else
        snprintf(rate, sizeof(rate), "%.0f/s", s->rate);
    snprintf(out, len, "%-10s [%s] %s  %lld lines  %s  ETA %s  %lld errors",
             s->status, bar, pct, (long long)s->lines, rate,
             eta_text(s->eta_s, eta, sizeof(eta)), (long long)s->errors);
    return out;
}

char *ctl_watch_line(const char *id, const ctl_watch_sample_t *s, char *out,
                     size_t len)
{
    char pct[16] = "--", rate[32] = "--", eta[32];
    double p = percent(s);
    if (p >= 0)
        snprintf(pct, sizeof(pct), "%.1f", p);
    if (s->rate >= 0)
        snprintf(rate, sizeof(rate), "%.0f", s->rate);
    snprintf(out, len,
             "import %s: %s, %s%% of bytes, %lld lines, %lld added, %lld "
             "errors, %s lines/s, eta %s",
             id, s->status, pct, (long long)s->lines, (long long)s->added,
             (long long)s->errors, rate, eta_text(s->eta_s, eta, sizeof(eta)));
    return out;
}

char *ctl_watch_summary(const char *id, const ctl_watch_sample_t *s, char *out,
                        size_t len)
{
    char took[64] = "", d[32];
    if (s->elapsed >= 0) {
        if (s->elapsed > 0)
            snprintf(took, sizeof(took), " in %s (%.0f lines/s)",
                     ctl_duration(s->elapsed, d, sizeof(d)),
                     (double)s->lines / (double)s->elapsed);
        else
            snprintf(took, sizeof(took), " in %s",
                     ctl_duration(s->elapsed, d, sizeof(d)));
    }
    snprintf(out, len,
             "import %s %s: %lld lines, %lld added, %lld errors%s%s%s", id,
             s->status, (long long)s->lines, (long long)s->added,
             (long long)s->errors, took, s->error ? ": " : "",
             s->error ? s->error : "");
    return out;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static int64_t num(const json_t *o, const char *key)
{
    return json_integer_value(json_object_get(o, key));
}

static void read_sample(const json_t *im, ctl_watch_sample_t *s)
{
    const json_t *el = json_object_get(im, "elapsed_s");
    memset(s, 0, sizeof(*s));
    s->status = json_string_value(json_object_get(im, "status"));
    s->lines = num(im, "lines");
    s->added = num(im, "added");
    s->errors = num(im, "errors");
    s->bytes = num(im, "bytes");
    s->bytes_total = json_is_integer(json_object_get(im, "bytes_total"))
                         ? num(im, "bytes_total")
                         : -1;
    s->elapsed = json_is_integer(el) ? json_integer_value(el) : -1;
    s->error = json_string_value(json_object_get(im, "error"));
    s->rate = -1;
    s->eta_s = -1;
}

static int terminal_width(void)
{
    struct winsize ws;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20)
        return ws.ws_col;
    return 100;
}

static void print_json_sample(const char *id, const ctl_watch_sample_t *s,
                              int final, const char *summary)
{
    json_t *j = json_pack(
        "{s:i, s:b, s:s, s:s, s:I, s:I, s:I, s:I, s:I}", "v", DIP_CTL_VERSION,
        "ok", 1, "id", id, "status", s->status, "lines", (json_int_t)s->lines,
        "added", (json_int_t)s->added, "errors", (json_int_t)s->errors, "bytes",
        (json_int_t)s->bytes, "bytes_total", (json_int_t)s->bytes_total);
    if (j == NULL)
        return;
    json_object_set_new(j, "rate",
                        s->rate >= 0 ? json_real(s->rate) : json_null());
    json_object_set_new(j, "eta_s",
                        s->eta_s >= 0 ? json_integer(s->eta_s) : json_null());
    json_object_set_new(j, "final", json_boolean(final));
    if (summary)
        json_object_set_new(j, "summary", json_string(summary));
    ctl_print_json(j);
    json_decref(j);
}

static int watch(ctl_opts_t *o, const char *id, long interval_ms)
{
    dip_ctl_request_t req;
    ctl_watch_rate_t rates;
    ctl_client_t *c;
    char err[2048], line[512], last_status[32] = "";
    int tty = isatty(STDOUT_FILENO), code, drawn = 0;
    int64_t last_plain = -PLAIN_EVERY_MS;

    memset(&req, 0, sizeof(req));
    req.cmd = DIP_CTL_SHOW;
    snprintf(req.id, sizeof(req.id), "%s", id);
    ctl_watch_rate_init(&rates);
    c = ctl_client_new(o, err, sizeof(err), &code);
    if (c == NULL)
        return ctl_fail(o, code, ctl_client_failure_code(code), "%s", err);
    for (;;) {
        dip_ctl_reply_t reply;
        ctl_watch_sample_t s;
        const json_t *im;
        double lps, bps;
        int64_t now;
        int rc = ctl_client_call(c, &req, &reply, err, sizeof(err));
        if (rc < 0 || !reply.ok) {
            if (drawn)
                fputs("\n", stdout);
            ctl_client_destroy(&c);
            if (rc < 0)
                return ctl_fail(o, CTL_EXIT_UNAVAILABLE, "unavailable", "%s",
                                err);
            code = ctl_exit_for(reply.code);
            fprintf(stderr, "dealimportctl: %s\n", reply.error);
            if (o->json)
                ctl_print_json(reply.root);
            dip_ctl_reply_release(&reply);
            return code;
        }
        im = json_object_get(reply.root, "import");
        read_sample(im, &s);
        now = dip_time_mono_ms();
        if (s.status && strcmp(s.status, "processing") == 0)
            ctl_watch_rate_add(&rates, now, s.lines, s.bytes);
        else
            ctl_watch_rate_init(&rates);
        ctl_watch_rate_get(&rates, &lps, &bps);
        s.rate = lps;
        if (bps > 0 && s.bytes_total > s.bytes)
            s.eta_s = (long long)((double)(s.bytes_total - s.bytes) / bps);
        if (dip_ctl_status_final(s.status)) {
            int completed = strcmp(s.status, "completed") == 0;
            ctl_watch_summary(id, &s, line, sizeof(line));
            if (o->json)
                print_json_sample(id, &s, 1, line);
            else if (tty)
                printf("\r\033[K%s\n", line);
            else
                printf("%s\n", line);
            fflush(stdout);
            dip_ctl_reply_release(&reply);
            ctl_client_destroy(&c);
            return completed ? CTL_EXIT_OK : CTL_EXIT_IMPORT_FAILED;
        }
        if (o->json) {
            print_json_sample(id, &s, 0, NULL);
        } else if (tty) {
            ctl_watch_bar(&s, terminal_width(), line, sizeof(line));
            printf("\r\033[K%s", line);
            fflush(stdout);
            drawn = 1;
        } else if (now - last_plain >= PLAIN_EVERY_MS ||
                   strcmp(last_status, s.status ? s.status : "") != 0) {
            printf("%s\n", ctl_watch_line(id, &s, line, sizeof(line)));
            fflush(stdout);
            last_plain = now;
        }
        snprintf(last_status, sizeof(last_status), "%s",
                 s.status ? s.status : "");
        dip_ctl_reply_release(&reply);
        sleep_ms(interval_ms);
    }
}

int ctl_watch_main(ctl_opts_t *o, int argc, char **argv)
{
    static const struct option opts[] = {
        CTL_COMMON_OPTIONS,
        {"interval", required_argument, NULL, 'i'},
        {NULL, 0, NULL, 0},
    };
    char id[25], *end = NULL;
    long interval_ms = 500;
    double s;
    int c;

    optind = 1;
    opterr = 0;
    while ((c = ctl_getopt(o, argc, argv, opts)) != -1) {
        if (c != 'i')
            return ctl_opt_end(
                c, argv, "watch", usage,
                "Follows an import until it ends: on a terminal a progress "
                "bar (status, percent\nof the file's bytes, lines, rate, ETA, "
                "errors), otherwise a plain line every\n2 s, and a summary "
                "line at the end. Exits 0 when the import completed, 2\nwhen "
                "it failed or was cancelled.",
                "  --interval SECONDS how often to ask (default 0.5)\n");
        s = strtod(optarg, &end);
        if (end == optarg || *end || !(s >= 0.05) || s > 3600) {
            fprintf(stderr,
                    "dealimportctl watch: --interval '%s' is not a number of "
                    "seconds from 0.05 to 3600\n",
                    optarg);
            return CTL_EXIT_USAGE;
        }
        interval_ms = (long)(s * 1000);
    }
    if (ctl_take_id("watch", argc, argv, usage, id) < 0)
        return CTL_EXIT_USAGE;
    return watch(o, id, interval_ms);
}
