/*
 * sup_life: the rules for a worker's end, in the order they win. A claim
 * that is gone or running out beats everything (nothing is written for an
 * import another supervisor may own by now); then what the worker said it
 * did; then an operator's request; then a shutdown; then the limits and the
 * counters that tell an outage or a crash loop from progress.
 */
#include "sup_life.h"
#include "dip_exit.h"
#include "dip_text.h"

#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

const char *sup_life_grouped(int64_t v, char *buf, size_t len)
{
    char digits[32];
    int n = snprintf(digits, sizeof(digits), "%lld", (long long)v), o = 0;
    for (int i = 0; i < n && (size_t)o + 2 < len; i++) {
        if (i > 0 && digits[i - 1] != '-' && (n - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
    return buf;
}

static void finish(sup_life_action_t *out, const char *status,
                   const char *sentence)
{
    out->kind = SUP_LIFE_FINISH;
    out->status = status;
    dip_text_format(out->sentence, sizeof(out->sentence), NULL, "%s",
                    sentence ? sentence : "");
}

static void release(sup_life_action_t *out, const char *status)
{
    out->kind = SUP_LIFE_RELEASE;
    out->status = status;
}

static int exited_with(const sup_life_facts_t *f, int code)
{
    return WIFEXITED(f->wait_status) && WEXITSTATUS(f->wait_status) == code;
}

/* What the worker's done message settles; 0 when it settles nothing. */
static int by_done(const sup_life_facts_t *f, sup_life_action_t *out)
{
    switch (f->status) {
    case DIP_DONE_COMPLETED:
        finish(out, "completed", NULL);
        return 1;
    case DIP_DONE_FAILED:
        finish(out, "failed", f->error);
        return 1;
    case DIP_DONE_CANCELLED:
        finish(out, "cancelled", NULL);
        return 1;
    case DIP_DONE_PAUSED:
        /* A cancel that arrived after the worker took the pause. */
        if (f->requested == DIP_CONTROL_CANCEL)
            finish(out, "cancelled", NULL);
        else
            release(out, "paused");
        return 1;
    case DIP_DONE_STOPPED:
        /* Stopped (a shutdown, or the SIGTERM that follows an unanswered
         * cancel or pause): an operator's request decides. */
        if (f->requested == DIP_CONTROL_CANCEL)
            finish(out, "cancelled", NULL);
        else
            release(out,
                    f->requested == DIP_CONTROL_PAUSE ? "paused" : "pending");
        return 1;
    case DIP_DONE_RETRY:
    default:
        return 0;
    }
}

static void tempfail(const sup_life_facts_t *f, sup_life_counters_t *c,
                     sup_life_action_t *out)
{
    int64_t delay;
    char line[32];
    /* Outages the import got past count no more: it gives up after
     * SUP_LIFE_TEMPFAIL_LIMIT in a row without headway, however long. */
    if (f->lines > f->run_start_lines)
        c->tempfails = 0;
    if (++c->tempfails > SUP_LIFE_TEMPFAIL_LIMIT) {
        char msg[1024];
        dip_text_format(msg, sizeof(msg), NULL,
                        "gave up after %d temporary failures in a row, last "
                        "at line %s: %s",
                        SUP_LIFE_TEMPFAIL_LIMIT,
                        sup_life_grouped(f->lines, line, sizeof(line)),
                        f->error ? f->error : "unknown");
        finish(out, "failed", msg);
        return;
    }
    delay = f->backoff_ms;
    for (int i = 1; i < c->tempfails && delay < SUP_LIFE_MAX_DELAY_MS; i++)
        delay *= 2;
    if (delay > SUP_LIFE_MAX_DELAY_MS)
        delay = SUP_LIFE_MAX_DELAY_MS;
    out->kind = SUP_LIFE_RESPAWN;
    out->delay_ms = delay;
    dip_text_format(out->sentence, sizeof(out->sentence), NULL,
                    "worker stopped on a temporary failure at line %lld (%s); "
                    "resuming in %lld ms",
                    (long long)f->lines, f->error ? f->error : "",
                    (long long)delay);
}

static void crash(const sup_life_facts_t *f, sup_life_counters_t *c,
                  sup_life_action_t *out)
{
    char line[32];
    const char *how = f->how ? f->how : "ended";
    if (c->restarts == 0 ||
        f->now_ms - c->restart_window_ms > SUP_LIFE_RESTART_WINDOW_MS) {
        c->restarts = 0;
        c->restart_window_ms = f->now_ms;
    }
    if (++c->restarts >= f->restarts_allowed) {
        char msg[1024];
        dip_text_format(msg, sizeof(msg), NULL,
                        "the import's worker failed %d times, last at line "
                        "%s: %s",
                        c->restarts,
                        sup_life_grouped(f->lines, line, sizeof(line)), how);
        finish(out, "failed", msg);
        return;
    }
    /* Back off only while crashes make no headway: a worker that moved the
     * checkpoint on before it died is not in a crash loop, and waiting
     * longer after each such crash would only slow the import down. */
    if (f->lines > f->run_start_lines)
        c->stalls = 0;
    else
        c->stalls++;
    out->kind = SUP_LIFE_RESPAWN;
    out->delay_ms = 1000LL << (c->stalls > 6 ? 6 : c->stalls);
    dip_text_format(out->sentence, sizeof(out->sentence), NULL,
                    "worker %s at line %lld; resuming from its checkpoint "
                    "(crash %d of %ld allowed)",
                    how, (long long)f->lines, c->restarts,
                    f->restarts_allowed - 1);
}

void sup_life_decide(const sup_life_facts_t *f, sup_life_counters_t *c,
                     sup_life_action_t *out)
{
    char line[32];
    int oom = f->oom || exited_with(f, DIP_EXIT_NOMEM);
    memset(out, 0, sizeof(*out));

    /* Not ours any more, or not for long: whoever claims it next resumes it
     * from the last checkpoint that was stored. */
    if (f->lease == SUP_LEASE_LOST || exited_with(f, DIP_EXIT_FENCED)) {
        out->kind = SUP_LIFE_DROP;
        dip_text_format(out->sentence, sizeof(out->sentence), NULL,
                        "the claim on the import is gone (another supervisor "
                        "took it over): worker ended, nothing more written");
        return;
    }
    if (f->lease == SUP_LEASE_LAPSING) {
        out->kind = SUP_LIFE_DROP;
        dip_text_format(out->sentence, sizeof(out->sentence), NULL,
                        "the lease could not be renewed: worker stopped at "
                        "line %lld before the lease ran out; the import is "
                        "taken up again only by a new claim",
                        (long long)f->lines);
        return;
    }
    if (f->done && !oom && by_done(f, out))
        return;
    /* An operator asked this import to stop: it stops, whatever else ended
     * the worker, from its last checkpoint. */
    if (f->requested == DIP_CONTROL_CANCEL) {
        finish(out, "cancelled", NULL);
        return;
    }
    if (f->requested == DIP_CONTROL_PAUSE) {
        release(out, "paused");
        return;
    }
    if (f->stopping) {
        release(out, "pending");
        return;
    }
    if (oom) {
        char msg[1024];
        dip_text_format(msg, sizeof(msg), NULL,
                        "worker exceeded its %ld MB memory limit at line %s",
                        f->memory_mb,
                        sup_life_grouped(f->lines, line, sizeof(line)));
        finish(out, "failed", msg);
        return;
    }
    if (f->done && f->status == DIP_DONE_RETRY) {
        tempfail(f, c, out);
        return;
    }
    /* A crash, a limit, or an exit without a word. */
    crash(f, c, out);
}
