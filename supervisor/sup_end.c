/*
 * sup_end: the end of an import. Progress and line errors are flushed
 * (fenced by the claim); when a worker process is gone, sup_life decides
 * what that means and this carries it out: the final status (after the
 * completion event is stored), a hand-back as pending or paused, a new
 * worker after a delay, or the slot dropped without a write. An end that
 * cannot be written yet keeps its slot ENDING and is tried again later;
 * given up, the import would stay 'processing' under our renewed lease.
 */
#include "sup_end.h"
#include "sup_loop_priv.h"
#include "dip_bson.h"
#include "dip_exit.h"
#include "dip_log.h"
#include "dip_time.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- the rule ---------------------------------------------------------- */

void sup_end_retry_rule(const sup_end_retry_facts_t *f, sup_end_retry_t *out)
{
    int64_t step = SUP_END_RETRY_BASE_MS;
    for (int i = 1; i < f->tries && step < SUP_END_RETRY_CAP_MS; i++)
        step *= 2;
    if (step > SUP_END_RETRY_CAP_MS)
        step = SUP_END_RETRY_CAP_MS;
    out->delay_ms = step / 2 + (int64_t)(f->random % (uint32_t)(step / 2 + 1));
}

/* ---- the loop's side ------------------------------------------------- */

/* Writes what the worker reported and has not been written yet. */
int sup_end_flush(sup_loop_t *self, sup_slot_t *w)
{
    char err[512];
    bson_value_t qid = sup_slot_qid(w);
    int64_t sent;
    int rc;
    int64_t received = w->recv_bytes;
    if (!sup_slot_pending(w))
        return 0;
    if (w->lease != SUP_LEASE_HELD || !sup_lease_db_ok(self))
        return -1;
    sent = dip_time_mono_ms();
    rc = sup_store_progress(
        self->store, &qid, w->epoch, w->errs, w->nerrs, w->lines, w->added,
        w->nerrors, w->not_stored, w->bytes, w->bytes_total, w->checkpoint,
        w->header_dirty ? w->header : NULL, err, sizeof(err));
    w->last_flush_ms = self->now;
    if (rc == SUP_STORE_OK) {
        /* The progress write extends the lease too. */
        w->lease_end_ms = sent + sup_lease_ms(self);
        sup_slot_clear_errors(self, w);
        bson_destroy(w->checkpoint);
        w->checkpoint = NULL;
        w->dirty = 0;
        w->header_dirty = 0;
        w->flush_failed = 0;
        sup_retry_ok(&w->flush_retry);
        /* Everything received before this write is stored now. */
        w->acked_bytes = received;
        sup_inbox_send_ack(self, w);
        return 0;
    }
    if (rc == SUP_STORE_ELOST) {
        /* Another supervisor took this import over (our lease lapsed):
         * stop our worker so only one runs it. */
        dip_log(DIP_LOG_ERR, w->qid_hex, "%s: stopping its worker", err);
        sup_slot_lose(w);
        sup_slot_clear_errors(self, w);
        w->dirty = 0;
        w->header_dirty = 0;
        return -1;
    }
    sup_lease_db_failed(self);
    dip_log(DIP_LOG_WARNING, w->qid_hex, "%s (will retry)", err);
    w->flush_failed = 1;
    /* Retried at the slot timers' pace (SUP_SLOT_FLUSH_MS, and no call at
     * all while the database gate is shut): a write that must keep up
     * with the worker's window; counted and reported after a run. */
    sup_lease_step_failed(self, &w->flush_retry, w->qid_hex, "writing progress",
                          err);
    return -1;
}

/* The line errors an end has not written yet, alone (the final status
 * carries the progress). 0 when none is left. */
static int end_errors(sup_loop_t *self, sup_slot_t *w)
{
    char err[512];
    if (w->nerrs == 0)
        return 0;
    if (sup_store_errors(self->store, w->errs, w->nerrs, err, sizeof(err)) !=
        SUP_STORE_OK) {
        dip_log(DIP_LOG_WARNING, w->qid_hex, "%s", err);
        return -1;
    }
    sup_slot_clear_errors(self, w);
    return 0;
}

/* An end that could not be written: the slot stays, ENDING, and the end
 * is tried again when sup_end_retry_rule says (sup_end_retry). error is
 * copied (it may be the slot's own final_error already). */
static void end_later(sup_loop_t *self, sup_slot_t *w, const char *status,
                      const char *error, int release, const char *what,
                      const char *err)
{
    sup_end_retry_facts_t f;
    sup_end_retry_t r;
    if (error != w->final_error) {
        char *copy = error ? strdup(error) : NULL;
        free(w->final_error);
        w->final_error = copy;
    }
    w->final_status = status;
    w->final_release = release;
    w->state = SUP_SLOT_ENDING;
    w->pid = 0;
    w->last_flush_ms = self->now;
    f.tries = ++w->end_tries;
    if (getrandom(&f.random, sizeof(f.random), GRND_NONBLOCK) !=
        (ssize_t)sizeof(f.random))
        f.random = (uint32_t)self->now ^ (uint32_t)getpid();
    sup_end_retry_rule(&f, &r);
    w->end_retry_at_ms = self->now + r.delay_ms;
    dip_log(DIP_LOG_ERR, w->qid_hex,
            "cannot %s '%s' yet: %s (try %d; the next in %lld ms)", what,
            status, err, w->end_tries, (long long)r.delay_ms);
    if (w->end_tries == SUP_RETRY_REPORT_AFTER) {
        /* The same report as every retried step's (sup_retry). */
        dip_log(DIP_LOG_ERR, w->qid_hex,
                "the end ('%s') failed %d times in a row (still retried, "
                "each try up to %ld ms)",
                status, w->end_tries, self->call_ms);
        sup_metrics_step_escalated(self->metrics);
    }
}

/* A fenced end matched nothing: nothing was written, the import is
 * another supervisor's. Its worker is gone already (an end is written
 * only then), so nothing is signalled. */
static void end_lost(sup_loop_t *self, sup_slot_t *w, const char *what,
                     const char *status, const char *err)
{
    dip_log(DIP_LOG_ERR, w->qid_hex, "%s '%s': %s", what, status, err);
    w->lease = SUP_LEASE_LOST;
    sup_slot_free(self, w);
}

/* The import's completion event, stored (held until its follow-ups
 * release it) before its final status is written, so that no end goes
 * untold whatever crashes after. 0, or -1 with err filled. */
static int record_event(sup_loop_t *self, sup_slot_t *w, const char *status,
                        const char *error, char *err, size_t errlen)
{
    bson_t details = BSON_INITIALIZER;
    bson_iter_t it;
    const char *type;
    int rc;
    if (self->crm == NULL || w->final_written)
        return 0;
    type = sup_followup_event_type(
        status, bson_iter_init_find(&it, w->doc, "dry_run") &&
                    BSON_ITER_HOLDS_BOOL(&it) && bson_iter_bool(&it));
    if (type == NULL)
        return 0;
    BSON_APPEND_UTF8(&details, "status", status);
    BSON_APPEND_INT64(&details, "total_records", w->lines);
    if (w->has_counts)
        sup_store_append_counts(w->dry_run, w->updated, w->unchanged, &details);
    if (error)
        BSON_APPEND_UTF8(&details, "error", error);
    rc = sup_event_record(self->crm, w->doc, type, &details, 1, err, errlen);
    bson_destroy(&details);
    if (rc < 0)
        sup_lease_db_failed(self);
    return rc;
}

/* Whether record_event stores (or stored, in an earlier try) an event
 * held for this end. */
static int event_held(const sup_loop_t *self, const sup_slot_t *w,
                      const char *status)
{
    bson_iter_t it;
    /* dry_run as record_event reads it: a boolean true only */
    return self->crm != NULL &&
           sup_followup_event_type(
               status, bson_iter_init_find(&it, w->doc, "dry_run") &&
                           BSON_ITER_HOLDS_BOOL(&it) && bson_iter_bool(&it)) !=
               NULL;
}

void sup_end_finish(sup_loop_t *self, sup_slot_t *w, const char *status,
                    const char *error)
{
    /* The counts are the worker's accounting, as its last report left
     * them: the end counts nothing in the database (sup_store_finish). */
    sup_store_result_t r = {.status = status,
                            .error = error,
                            .notes = w->notes,
                            .lines = w->lines,
                            .not_stored = w->not_stored,
                            .counted = 1,
                            .whole =
                                w->done && strcmp(status, "completed") == 0,
                            .added = w->added,
                            .errors = w->nerrors,
                            .header = w->header,
                            .dry_run = w->dry_run,
                            .would_add = w->would_add,
                            .new_stages_count = w->new_stages_count,
                            .new_stages = w->new_stages,
                            .has_counts = w->has_counts,
                            .updated = w->updated,
                            .unchanged = w->unchanged,
                            /* progress not written yet: the final status
                             * carries it, no write of its own */
                            .has_bytes = w->dirty,
                            .bytes = w->bytes,
                            .bytes_total = w->bytes_total,
                            .header_unsaved = w->header_dirty,
                            .checkpoint = w->checkpoint};
    sup_followup_facts_t ff = {
        .total_errors = w->nerrors + w->not_stored,
        .has_source = dip_bson_get_str(w->doc, "csv.0.key") != NULL,
        .deletes_source = self->cfg.delete_source != DIP_DELETE_SOURCE_NEVER,
        .event_held = event_held(self, w, status),
    };
    char err[512];
    int rc = SUP_STORE_EFAIL;
    r.event_held = ff.event_held;
    if (w->lease != SUP_LEASE_HELD && !w->final_written) {
        dip_log(DIP_LOG_WARNING, w->qid_hex,
                "not recording '%s': the claim is gone or running out", status);
        sup_slot_free(self, w);
        return;
    }
    /* Line errors still unwritten must land before the import log that
     * counts them and quotes the first of them; the progress and the
     * header go with the final status, one write (a crash before it
     * resumes from the last checkpoint, whose totals the duplicates it
     * meets again keep exact). */
    if (!sup_lease_db_ok(self)) {
        snprintf(err, sizeof(err), "the database is unavailable");
    } else if (end_errors(self, w) != 0) {
        snprintf(err, sizeof(err), "the line errors could not be written");
    } else if (record_event(self, w, status, error, err, sizeof(err)) == 0) {
        bson_t *logs = sup_slot_logs(w);
        r.logs = logs;
        rc = sup_store_finish(self->store, w->doc, w->epoch, &r, err,
                              sizeof(err));
        bson_destroy(logs);
        if (rc == SUP_STORE_EPARTIAL) {
            w->final_written = 1;
            rc = SUP_STORE_EFAIL;
        }
        if (rc == SUP_STORE_EFAIL)
            sup_lease_db_failed(self);
    }
    if (rc == SUP_STORE_EFAIL) {
        /* Keep the slot and write the end again later: given up, the
         * import would stay 'processing' under our renewed lease forever. */
        end_later(self, w, status, error, 0, "record the final status", err);
        return;
    }
    if (rc == SUP_STORE_ELOST) {
        /* Nothing was written: the import is another supervisor's. */
        end_lost(self, w, "not recording the final status", status, err);
        return;
    } else {
        sup_metrics_import_ended(self->metrics, status,
                                 self->now - w->claimed_ms,
                                 w->lines - w->claimed_lines);
        dip_log_fields(
            strcmp(status, "completed") == 0 ? DIP_LOG_INFO : DIP_LOG_WARNING,
            w->qid_hex,
            DIP_LOG_FIELDS(DIP_LOG_STR("status", status),
                           DIP_LOG_NUM("line", w->lines),
                           DIP_LOG_NUM("added", w->added),
                           DIP_LOG_NUM("errors", w->nerrors)),
            "import %s at line %lld%s%s%s", status, (long long)w->lines,
            error ? ": '" : "", error ? error : "", error ? "'" : "");
    }
    /* The error file, the cleanup and the event's release follow, when
     * there are any (else csv_imports was written done): by the worker's
     * figures, which sup_store_finish's agree with; should they not, the
     * poll finds what is left. */
    if (sup_followup_needed(&ff))
        sup_followups_poke(self->followups, &w->qid);
    self->finished++;
    if (strcmp(status, "failed") == 0)
        self->failed++;
    sup_slot_free(self, w);
}

void sup_end_release(sup_loop_t *self, sup_slot_t *w, const char *status,
                     const char *error)
{
    char err[512];
    bson_value_t qid = sup_slot_qid(w);
    int rc = SUP_STORE_EFAIL;
    if (w->lease != SUP_LEASE_HELD) {
        sup_slot_free(self, w);
        return;
    }
    sup_end_flush(self, w);
    if (w->lease == SUP_LEASE_LOST) {
        sup_slot_free(self, w);
        return;
    }
    if (!sup_lease_db_ok(self)) {
        snprintf(err, sizeof(err), "the database is unavailable");
    } else {
        rc = sup_store_release(self->store, &qid, w->epoch, status, error, err,
                               sizeof(err));
        if (rc == SUP_STORE_EFAIL)
            sup_lease_db_failed(self);
    }
    if (rc == SUP_STORE_ELOST) {
        end_lost(self, w, "not handing back as", status, err);
        return;
    }
    if (rc != SUP_STORE_OK) {
        /* As with a final status: given up, the import would stay
         * 'processing' under our renewed lease. Keep the slot, retry. */
        end_later(self, w, status, error, 1, "hand the import back as", err);
        return;
    }
    sup_metrics_import_released(self->metrics, status);
    dip_log_fields(DIP_LOG_INFO, w->qid_hex,
                   DIP_LOG_FIELDS(DIP_LOG_STR("status", status),
                                  DIP_LOG_NUM("line", w->lines)),
                   "import handed back as '%s' at line %lld", status,
                   (long long)w->lines);
    sup_slot_free(self, w);
}

static void schedule_respawn(sup_loop_t *self, sup_slot_t *w, int64_t delay_ms)
{
    if (w->has_cgroup) {
        sup_cgroup_remove(self->cgroup, w->name);
        w->has_cgroup = 0;
    }
    w->state = SUP_SLOT_WAITING;
    w->pid = 0;
    w->respawn_at_ms = self->now + delay_ms;
}

/* A worker process ended: sup_life decides what that means for its
 * import; this carries it out. */
void sup_end_exited(sup_loop_t *self, sup_slot_t *w, int st)
{
    char how[512];
    sup_spawn_opts_t o;
    char *argv[] = {NULL};
    sup_life_facts_t f;
    sup_life_action_t a;

    sup_start_opts(self, &o, argv, -1);
    sup_spawn_describe(st, &o, how, sizeof(how));
    memset(&f, 0, sizeof(f));
    f.wait_status = st;
    f.oom = w->has_cgroup && sup_cgroup_oom_killed(self->cgroup, w->name) > 0;
    sup_metrics_worker_exited(
        self->metrics, &w->account,
        sup_metrics_exit_cause(
            st, w->done,
            f.oom || (WIFEXITED(st) && WEXITSTATUS(st) == DIP_EXIT_NOMEM),
            w->killed_for));
    f.done = w->done;
    f.status = w->status;
    f.error = w->error;
    f.requested = w->requested;
    f.stopping = self->stopping;
    f.lease = w->lease;
    f.now_ms = self->now;
    f.lines = w->lines;
    f.run_start_lines = w->run_start_lines;
    f.how = how;
    f.memory_mb = self->cfg.worker_memory_mb;
    f.restarts_allowed = self->cfg.worker_restarts;
    f.backoff_ms = self->cfg.row_backoff_ms;
    {
        /* An end to be written carries the progress in its final status
         * (sup_end_finish): no write of its own first. Anything else
         * writes what waits (a new worker resumes from it), then decides
         * with what that write learnt of the claim. */
        sup_life_counters_t peek = w->life;
        sup_life_decide(&f, &peek, &a);
        if (a.kind == SUP_LIFE_FINISH && f.lease == SUP_LEASE_HELD) {
            w->life = peek;
        } else {
            if (w->lease == SUP_LEASE_HELD) {
                sup_end_flush(self, w);
                f.lease = w->lease;
            }
            sup_life_decide(&f, &w->life, &a);
        }
    }
    switch (a.kind) {
    case SUP_LIFE_FINISH:
        sup_end_finish(self, w, a.status, a.sentence[0] ? a.sentence : NULL);
        break;
    case SUP_LIFE_RELEASE:
        sup_end_release(self, w, a.status, NULL);
        break;
    case SUP_LIFE_RESPAWN:
        dip_log(DIP_LOG_WARNING, w->qid_hex, "%s", a.sentence);
        schedule_respawn(self, w, a.delay_ms);
        break;
    case SUP_LIFE_DROP:
        dip_log(DIP_LOG_WARNING, w->qid_hex, "%s", a.sentence);
        sup_slot_free(self, w);
        break;
    }
}

void sup_end_reap(sup_loop_t *self)
{
    pid_t pid;
    int st;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        sup_slot_t *w = sup_slot_by_pid(self, pid);
        if (w == NULL) {
            int r = sup_followups_reaped(self->followups, pid, st);
            if (r > 0)
                sup_metrics_followup_ended(self->metrics, st);
            if (r == 2)
                sup_metrics_followup_given_up(self->metrics);
            continue;
        }
        /* Whatever the worker left in its process group goes with it. */
        sup_slot_kill(w, SIGKILL);
        if (w->done) {
            sup_end_exited(self, w, st);
        } else {
            /* The exit can overtake the worker's last messages, still on
             * their way through the socket: give them a moment. */
            w->state = SUP_SLOT_EXITED;
            w->exit_status = st;
            w->exit_ms = self->now;
        }
    }
}

void sup_end_retry(sup_loop_t *self)
{
    for (size_t i = 0; i < self->cap; i++) {
        sup_slot_t *w = &self->workers[i];
        if (w->state != SUP_SLOT_ENDING || self->now < w->end_retry_at_ms ||
            !sup_lease_db_ok(self))
            continue;
        if (w->final_release)
            sup_end_release(self, w, w->final_status, w->final_error);
        else
            sup_end_finish(self, w, w->final_status, w->final_error);
    }
}
