/*
 * sup_metrics: keeps the supervisor's figures behind one mutex and writes
 * them as Prometheus text. The loop only ever adds to numbers under the
 * lock; a render copies the numbers out under it and formats outside it,
 * so neither side waits on the other for longer than a copy.
 */
#include "sup_metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

#include <microhttpd.h>

/* Upper bounds of the histograms' buckets (+Inf is implied). */
static const double duration_bounds[] = {1,   5,    15,   60,    300,
                                         900, 3600, 7200, 21600, 86400};
#define NDURATION (sizeof(duration_bounds) / sizeof(duration_bounds[0]))
static const double rate_bounds[] = {10,   50,    100,   500,   1000,
                                     5000, 10000, 25000, 50000, 100000};
#define NRATE (sizeof(rate_bounds) / sizeof(rate_bounds[0]))

static const char *const exit_names[SUP_METRICS_EXIT_NCAUSES] = {
    "completed", "signal",     "memory_limit", "silent",
    "timeout",   "lease_lost", "error",
};

/* Final and hand-back statuses, the only label values of their counters. */
static const char *const ended_names[] = {"completed", "failed", "cancelled"};
#define NENDED (sizeof(ended_names) / sizeof(ended_names[0]))
static const char *const released_names[] = {"pending", "paused"};
#define NRELEASED (sizeof(released_names) / sizeof(released_names[0]))

typedef struct {
    uint64_t counts[NRATE > NDURATION ? NRATE : NDURATION];
    uint64_t inf; /* observations above the last bound */
    uint64_t n;
    double sum;
} histogram_t;

typedef struct {
    char id[25];
    long running;
} account_t;

/* Everything a render needs, copied out under the lock. */
typedef struct {
    uint64_t claims, claim_failures, renewals, renewal_failures;
    uint64_t unclaimable[2]; /* set aside, failed */
    uint64_t refused_handshakes, followups_given_up;
    uint64_t rows_added, line_errors, bytes, round_trips;
    uint64_t exits[SUP_METRICS_EXIT_NCAUSES];
    uint64_t ended[NENDED], released[NRELEASED];
    long running;
    int64_t oldest_pending_ms; /* -1: none pending */
    histogram_t duration, rate;
    account_t *accounts; /* running > 0 only */
    size_t naccounts;
} figures_t;

struct sup_metrics {
    pthread_mutex_t lock;
    figures_t f;
    size_t accounts_cap;
    struct MHD_Daemon *httpd;
    int port;
};

const char *sup_metrics_exit_name(sup_metrics_exit_t cause)
{
    return (unsigned)cause < SUP_METRICS_EXIT_NCAUSES ? exit_names[cause]
                                                      : "error";
}

sup_metrics_exit_t sup_metrics_exit_cause(int wait_status, int done, int oom,
                                          sup_metrics_exit_t killed_for)
{
    if (oom)
        return SUP_METRICS_EXIT_MEMORY;
    if (killed_for != SUP_METRICS_EXIT_COMPLETED)
        return killed_for;
    if (done)
        return SUP_METRICS_EXIT_COMPLETED;
    if (WIFSIGNALED(wait_status))
        return SUP_METRICS_EXIT_SIGNAL;
    return SUP_METRICS_EXIT_ERROR;
}

sup_metrics_t *sup_metrics_new(void)
{
    sup_metrics_t *self = calloc(1, sizeof(*self));
    if (self == NULL)
        return NULL;
    if (pthread_mutex_init(&self->lock, NULL) != 0) {
        free(self);
        return NULL;
    }
    self->f.oldest_pending_ms = -1;
    return self;
}

void sup_metrics_destroy(sup_metrics_t **self_p)
{
    sup_metrics_t *self;
    if (self_p == NULL || *self_p == NULL)
        return;
    self = *self_p;
    if (self->httpd)
        MHD_stop_daemon(self->httpd);
    pthread_mutex_destroy(&self->lock);
    free(self->f.accounts);
    free(self);
    *self_p = NULL;
}

/* ---- events --------------------------------------------------------- */

void sup_metrics_claim(sup_metrics_t *self, int rc)
{
    if (self == NULL || rc == 0)
        return;
    pthread_mutex_lock(&self->lock);
    if (rc > 0)
        self->f.claims++;
    else
        self->f.claim_failures++;
    pthread_mutex_unlock(&self->lock);
}

void sup_metrics_unclaimable(sup_metrics_t *self, int marked)
{
    if (self == NULL)
        return;
    pthread_mutex_lock(&self->lock);
    self->f.unclaimable[marked ? 1 : 0]++;
    pthread_mutex_unlock(&self->lock);
}

void sup_metrics_followup_given_up(sup_metrics_t *self)
{
    if (self == NULL)
        return;
    pthread_mutex_lock(&self->lock);
    self->f.followups_given_up++;
    pthread_mutex_unlock(&self->lock);
}

void sup_metrics_refused_handshake(sup_metrics_t *self)
{
    if (self == NULL)
        return;
    pthread_mutex_lock(&self->lock);
    self->f.refused_handshakes++;
    pthread_mutex_unlock(&self->lock);
}

void sup_metrics_renewal(sup_metrics_t *self, int rc)
{
    if (self == NULL)
        return;
    pthread_mutex_lock(&self->lock);
    self->f.renewals++;
    if (rc < 0)
        self->f.renewal_failures++;
    pthread_mutex_unlock(&self->lock);
}

/* The account's entry, made when absent (NULL only when out of memory). */
static account_t *account_slot(sup_metrics_t *self, const char *id)
{
    figures_t *f = &self->f;
    account_t *a;
    for (size_t i = 0; i < f->naccounts; i++)
        if (strcmp(f->accounts[i].id, id) == 0)
            return &f->accounts[i];
    if (f->naccounts == self->accounts_cap) {
        size_t cap = self->accounts_cap ? 2 * self->accounts_cap : 16;
        account_t *grown = realloc(f->accounts, cap * sizeof(*grown));
        if (grown == NULL)
            return NULL;
        f->accounts = grown;
        self->accounts_cap = cap;
    }
    a = &f->accounts[f->naccounts++];
    memset(a, 0, sizeof(*a));
    snprintf(a->id, sizeof(a->id), "%s", id);
    return a;
}

void sup_metrics_worker_started(sup_metrics_t *self, const bson_oid_t *account)
{
    account_t *a;
    char hex[25];
    if (self == NULL)
        return;
    bson_oid_to_string(account, hex);
    pthread_mutex_lock(&self->lock);
    self->f.running++;
    if ((a = account_slot(self, hex)) != NULL)
        a->running++;
    pthread_mutex_unlock(&self->lock);
}

void sup_metrics_worker_exited(sup_metrics_t *self, const bson_oid_t *account,
                               sup_metrics_exit_t cause)
{
    figures_t *f;
    char hex[25];
    if (self == NULL)
        return;
    bson_oid_to_string(account, hex);
    pthread_mutex_lock(&self->lock);
    f = &self->f;
    f->exits[(unsigned)cause < SUP_METRICS_EXIT_NCAUSES
                 ? cause
                 : SUP_METRICS_EXIT_ERROR]++;
    if (f->running > 0)
        f->running--;
    for (size_t i = 0; i < f->naccounts; i++) {
        if (strcmp(f->accounts[i].id, hex) != 0)
            continue;
        /* Only accounts with running workers are kept: the table never
         * holds more entries than there are worker slots. */
        if (--f->accounts[i].running <= 0)
            f->accounts[i] = f->accounts[--f->naccounts];
        break;
    }
    pthread_mutex_unlock(&self->lock);
}

static uint64_t positive(int64_t v)
{
    return v > 0 ? (uint64_t)v : 0;
}

void sup_metrics_progress(sup_metrics_t *self, int64_t rows_added,
                          int64_t line_errors, int64_t bytes,
                          int64_t db_round_trips)
{
    if (self == NULL)
        return;
    pthread_mutex_lock(&self->lock);
    self->f.rows_added += positive(rows_added);
    self->f.line_errors += positive(line_errors);
    self->f.bytes += positive(bytes);
    self->f.round_trips += positive(db_round_trips);
    pthread_mutex_unlock(&self->lock);
}

static void observe(histogram_t *h, const double *bounds, size_t n, double v)
{
    size_t i = 0;
    while (i < n && v > bounds[i])
        i++;
    if (i < n)
        h->counts[i]++;
    else
        h->inf++;
    h->n++;
    h->sum += v;
}

static int status_index(const char *const *names, size_t n, const char *s)
{
    for (size_t i = 0; s && i < n; i++)
        if (strcmp(names[i], s) == 0)
            return (int)i;
    return -1;
}

void sup_metrics_import_ended(sup_metrics_t *self, const char *status,
                              int64_t duration_ms, int64_t lines)
{
    int i = status_index(ended_names, NENDED, status);
    double secs = duration_ms > 0 ? (double)duration_ms / 1000.0 : 0.0;
    if (self == NULL || i < 0)
        return;
    pthread_mutex_lock(&self->lock);
    self->f.ended[i]++;
    observe(&self->f.duration, duration_bounds, NDURATION, secs);
    /* A rate over no time says nothing: such imports are left out. */
    if (secs > 0)
        observe(&self->f.rate, rate_bounds, NRATE,
                (double)(lines > 0 ? lines : 0) / secs);
    pthread_mutex_unlock(&self->lock);
}

void sup_metrics_import_released(sup_metrics_t *self, const char *status)
{
    int i = status_index(released_names, NRELEASED, status);
    if (self == NULL || i < 0)
        return;
    pthread_mutex_lock(&self->lock);
    self->f.released[i]++;
    pthread_mutex_unlock(&self->lock);
}

void sup_metrics_oldest_pending(sup_metrics_t *self, int64_t created_ms)
{
    if (self == NULL)
        return;
    pthread_mutex_lock(&self->lock);
    self->f.oldest_pending_ms = created_ms;
    pthread_mutex_unlock(&self->lock);
}

/* ---- rendering ------------------------------------------------------ */

static int snapshot(sup_metrics_t *self, figures_t *out)
{
    int rc = 0;
    pthread_mutex_lock(&self->lock);
    *out = self->f;
    out->accounts = NULL;
    if (self->f.naccounts > 0) {
        out->accounts = malloc(self->f.naccounts * sizeof(account_t));
        if (out->accounts)
            memcpy(out->accounts, self->f.accounts,
                   self->f.naccounts * sizeof(account_t));
        else
            rc = -1;
    }
    pthread_mutex_unlock(&self->lock);
    return rc;
}

static int by_running_desc(const void *a, const void *b)
{
    const account_t *x = a, *y = b;
    if (x->running != y->running)
        return x->running > y->running ? -1 : 1;
    return strcmp(x->id, y->id);
}

static void header(FILE *o, const char *name, const char *type,
                   const char *help)
{
    fprintf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void counter(FILE *o, const char *name, const char *help, uint64_t v)
{
    header(o, name, "counter", help);
    fprintf(o, "%s %llu\n", name, (unsigned long long)v);
}

static const char *const unclaimable_names[] = {"set_aside", "failed"};

static void labelled(FILE *o, const char *name, const char *type,
                     const char *help, const char *label,
                     const char *const *values, const uint64_t *counts,
                     size_t n)
{
    header(o, name, type, help);
    for (size_t i = 0; i < n; i++)
        fprintf(o, "%s{%s=\"%s\"} %llu\n", name, label, values[i],
                (unsigned long long)counts[i]);
}

static void histogram(FILE *o, const char *name, const char *help,
                      const histogram_t *h, const double *bounds, size_t n)
{
    uint64_t cum = 0;
    header(o, name, "histogram", help);
    for (size_t i = 0; i < n; i++) {
        cum += h->counts[i];
        fprintf(o, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i],
                (unsigned long long)cum);
    }
    fprintf(o, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)h->n);
    fprintf(o, "%s_sum %.17g\n%s_count %llu\n", name, h->sum, name,
            (unsigned long long)h->n);
}

char *sup_metrics_render(sup_metrics_t *self, int64_t now_ms)
{
    figures_t f;
    char *text = NULL;
    size_t len = 0;
    FILE *o = NULL;
    long other = 0;

    if (self == NULL || snapshot(self, &f) < 0)
        return NULL;
    o = open_memstream(&text, &len);
    if (o == NULL)
        goto cleanup;

    labelled(o, "dealimport_imports_ended_total", "counter",
             "Imports this supervisor ended, by final status.", "status",
             ended_names, f.ended, NENDED);
    labelled(o, "dealimport_imports_released_total", "counter",
             "Imports handed back unfinished, by the status they got.",
             "status", released_names, f.released, NRELEASED);
    counter(o, "dealimport_rows_added_total",
            "Deals the workers added to the database.", f.rows_added);
    counter(o, "dealimport_line_errors_total",
            "CSV lines the workers rejected with a line error.", f.line_errors);
    counter(o, "dealimport_downloaded_bytes_total",
            "CSV bytes the workers read from storage.", f.bytes);
    counter(o, "dealimport_worker_db_round_trips_total",
            "Database round trips the workers made.", f.round_trips);
    labelled(o, "dealimport_worker_exits_total", "counter",
             "Worker processes that ended, by cause.", "cause", exit_names,
             f.exits, SUP_METRICS_EXIT_NCAUSES);
    counter(o, "dealimport_claims_total", "Imports claimed from the queue.",
            f.claims);
    counter(o, "dealimport_claim_failures_total",
            "Claim attempts that failed (database errors).", f.claim_failures);
    labelled(o, "dealimport_unclaimable_documents_total", "counter",
             "Queue documents the claim could not take, ended alone: set "
             "aside for a while, or marked failed.",
             "outcome", unclaimable_names, f.unclaimable, 2);
    counter(o, "dealimport_followups_given_up_total",
            "Imports whose follow-ups ended with a step given up (the error "
            "file or the source's deletion; csv_imports says which).",
            f.followups_given_up);
    counter(o, "dealimport_control_refused_handshakes_total",
            "CURVE handshakes on the control TCP port refused (a key not "
            "authorised).",
            f.refused_handshakes);
    counter(o, "dealimport_lease_renewals_total",
            "Lease renewal rounds over the imports this supervisor runs.",
            f.renewals);
    counter(o, "dealimport_lease_renewal_failures_total",
            "Lease renewal rounds that failed.", f.renewal_failures);

    header(o, "dealimport_workers_running", "gauge",
           "Worker processes running now.");
    fprintf(o, "dealimport_workers_running %ld\n", f.running);
    header(o, "dealimport_account_workers_running", "gauge",
           "Worker processes running now for the accounts with the most, "
           "the rest under account=\"other\".");
    if (f.naccounts > 1)
        qsort(f.accounts, f.naccounts, sizeof(account_t), by_running_desc);
    for (size_t i = 0; i < f.naccounts; i++) {
        if (i < SUP_METRICS_TOP_ACCOUNTS)
            fprintf(o,
                    "dealimport_account_workers_running{account=\"%s\"} "
                    "%ld\n",
                    f.accounts[i].id, f.accounts[i].running);
        else
            other += f.accounts[i].running;
    }
    fprintf(o, "dealimport_account_workers_running{account=\"other\"} %ld\n",
            other);

    header(o, "dealimport_oldest_pending_import_age_seconds", "gauge",
           "Age of the oldest pending import, 0 when none is pending.");
    fprintf(o, "dealimport_oldest_pending_import_age_seconds %.3f\n",
            f.oldest_pending_ms >= 0 && now_ms > f.oldest_pending_ms
                ? (double)(now_ms - f.oldest_pending_ms) / 1000.0
                : 0.0);

    histogram(o, "dealimport_import_duration_seconds",
              "Time from claim to final status of the imports ended here.",
              &f.duration, duration_bounds, NDURATION);
    histogram(o, "dealimport_import_rows_per_second",
              "Lines per second of the imports ended here.", &f.rate,
              rate_bounds, NRATE);
    if (fclose(o) != 0) {
        o = NULL;
        free(text);
        text = NULL;
        goto cleanup;
    }
    o = NULL;
cleanup:
    if (o)
        fclose(o);
    free(f.accounts);
    return text;
}

/* ---- HTTP ----------------------------------------------------------- */

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code,
                             const char *type, char *body_take)
{
    struct MHD_Response *r;
    enum MHD_Result rc;
    r = MHD_create_response_from_buffer(strlen(body_take), body_take,
                                        MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        free(body_take);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    rc = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
                                  const char *url, const char *method,
                                  const char *version, const char *upload,
                                  size_t *upload_len, void **con_cls)
{
    sup_metrics_t *self = cls;
    char *text;
    (void)version;
    (void)upload;
    /* A request body is not ours: refuse it, unread. */
    if (*upload_len > 0)
        return MHD_NO;
    (void)con_cls;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain",
                     strdup("only GET /metrics is served\n"));
    if (strcmp(url, "/metrics") != 0)
        return reply(c, MHD_HTTP_NOT_FOUND, "text/plain",
                     strdup("not found: try /metrics\n"));
    text = sup_metrics_render(self, wall_ms());
    if (text == NULL)
        return reply(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "text/plain",
                     strdup("out of memory\n"));
    return reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8",
                 text);
}

/* "127.0.0.1:9464" or "[::1]:9464" into ss. 0 or -1. */
static int parse_addr(const char *addr, struct sockaddr_storage *ss, int *is_v6)
{
    char host[64];
    const char *colon, *h = addr;
    size_t hl;
    char *end = NULL;
    long port;

    memset(ss, 0, sizeof(*ss));
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (close == NULL || close[1] != ':')
            return -1;
        h = addr + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(addr, ':');
        if (colon == NULL)
            return -1;
        hl = (size_t)(colon - addr);
    }
    if (hl == 0 || hl >= sizeof(host))
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    port = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || *end != '\0' || port < 0 || port > 65535)
        return -1;
    if (addr[0] == '[') {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        *is_v6 = 1;
        return inet_pton(AF_INET6, host, &s6->sin6_addr) == 1 ? 0 : -1;
    }
    {
        struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        *is_v6 = 0;
        return inet_pton(AF_INET, host, &s4->sin_addr) == 1 ? 0 : -1;
    }
}

int sup_metrics_listen(sup_metrics_t *self, const char *addr, char *err,
                       size_t errlen)
{
    struct sockaddr_storage ss;
    const union MHD_DaemonInfo *info;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL;
    int v6 = 0;

    if (addr == NULL || parse_addr(addr, &ss, &v6) < 0) {
        snprintf(err, errlen,
                 "DEALIMPORT_METRICS_ADDR: '%s' is not HOST:PORT with a "
                 "numeric IPv4 host or [IPv6]:PORT",
                 addr ? addr : "");
        return -1;
    }
    if (v6)
        flags |= MHD_USE_IPv6;
    /* Its own thread, a handful of connections, each cut off after 10 s
     * idle: a slow scraper costs a connection, never the loop. */
    self->httpd = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, self, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT, (unsigned)16,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
    if (self->httpd == NULL) {
        snprintf(err, errlen,
                 "DEALIMPORT_METRICS_ADDR: cannot listen on '%s' (address "
                 "in use or not local?)",
                 addr);
        return -1;
    }
    info = MHD_get_daemon_info(self->httpd, MHD_DAEMON_INFO_BIND_PORT);
    self->port = info ? (int)info->port : 0;
    return 0;
}

int sup_metrics_port(const sup_metrics_t *self)
{
    return self ? self->port : 0;
}
