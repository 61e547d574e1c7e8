/*
 * sup_slot: the loop's slot table. One slot per import this supervisor
 * holds, in one of the states of sup_slot_state_t; lookups by pid, queue
 * id and ZeroMQ identity, the counts claiming needs, and the one tail that
 * frees a slot, whichever way its import ended; and the pure rule of a
 * slot's timers (sup_slot.h). No database call, no clock (the loop's `now`
 * is read, not taken).
 */
#include "sup_slot.h"
#include "sup_loop_priv.h"

#include "dip_bson.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sup_slot_reset_run(sup_slot_t *w)
{
    w->done = 0;
    w->status = 0;
    free(w->error);
    w->error = NULL;
    bson_destroy(w->notes);
    w->notes = NULL;
    w->dry_run = 0;
    w->has_counts = 0;
    bson_destroy(w->new_stages);
    w->new_stages = NULL;
    w->stop_sent = 0;
    w->round_trips = 0;
    w->killed_for = SUP_METRICS_EXIT_COMPLETED;
    w->hello_ok = 0;
    w->recv_bytes = w->acked_bytes = 0;
    memset(w->spawn_secret, 0, sizeof(w->spawn_secret));
}

void sup_slot_clear_errors(sup_loop_t *self, sup_slot_t *w)
{
    for (size_t i = 0; i < w->nerrs; i++)
        bson_destroy(w->errs[i]);
    w->nerrs = 0;
    self->err_bytes -= w->err_bytes;
    w->err_bytes = 0;
}

void sup_slot_keep_log(sup_slot_t *w, int64_t line, const char *field,
                       const char *message)
{
    size_t lo = 0, hi = w->nlogs;
    bson_t *d;
    if (!w->logs_own)
        return;
    if (w->nlogs == SUP_STORE_LOGS_KEEP &&
        dip_bson_get_int(w->logs[w->nlogs - 1], "line", 0) < line)
        return;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int64_t at = dip_bson_get_int(w->logs[mid], "line", 0);
        if (at == line)
            return; /* reported again by a resumed run */
        if (at < line)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (w->logs == NULL)
        w->logs = calloc(SUP_STORE_LOGS_KEEP, sizeof(*w->logs));
    d = BCON_NEW("line", BCON_INT64(line), "field", BCON_UTF8(field), "message",
                 BCON_UTF8(message));
    if (w->logs == NULL || d == NULL) {
        bson_destroy(d);
        w->logs_own = 0;
        return;
    }
    if (w->nlogs == SUP_STORE_LOGS_KEEP)
        bson_destroy(w->logs[--w->nlogs]);
    memmove(&w->logs[lo + 1], &w->logs[lo], (w->nlogs - lo) * sizeof(*w->logs));
    w->logs[lo] = d;
    w->nlogs++;
}

bson_t *sup_slot_logs(const sup_slot_t *w)
{
    bson_t *arr;
    if (!w->logs_own)
        return NULL;
    arr = bson_new();
    for (size_t i = 0; i < w->nlogs; i++) {
        char k[24];
        snprintf(k, sizeof(k), "%zu", i);
        BSON_APPEND_DOCUMENT(arr, k, w->logs[i]);
    }
    return arr;
}

void sup_slot_clear(sup_loop_t *self, sup_slot_t *w)
{
    sup_slot_reset_run(w);
    for (size_t i = 0; i < w->nlogs; i++)
        bson_destroy(w->logs[i]);
    free(w->logs);
    free(w->final_error);
    sup_slot_clear_errors(self, w);
    free(w->errs);
    bson_destroy(w->checkpoint);
    bson_destroy(w->header);
    if (w->doc)
        bson_destroy(w->doc);
    memset(w, 0, sizeof(*w));
}

/* Signals a worker's whole process group; never pid 0 or our own group. */
void sup_slot_kill(sup_slot_t *w, int sig)
{
    if (w->pid > 0)
        kill(-w->pid, sig);
}

/* The queue id as stored (every import a worker runs has an ObjectId). */
bson_value_t sup_slot_qid(const sup_slot_t *w)
{
    bson_value_t v;
    memset(&v, 0, sizeof(v));
    v.value_type = BSON_TYPE_OID;
    bson_oid_copy(&w->qid, &v.value.v_oid);
    return v;
}

size_t sup_slot_busy(const sup_loop_t *self)
{
    size_t n = 0;
    for (size_t i = 0; i < self->cap; i++)
        n += self->workers[i].state != SUP_SLOT_FREE;
    return n;
}

sup_slot_t *sup_slot_by_pid(sup_loop_t *self, pid_t pid)
{
    for (size_t i = 0; i < self->cap; i++)
        if (self->workers[i].state == SUP_SLOT_RUNNING &&
            self->workers[i].pid == pid)
            return &self->workers[i];
    return NULL;
}

sup_slot_t *sup_slot_by_qid_oid(sup_loop_t *self, const bson_oid_t *qid)
{
    for (size_t i = 0; i < self->cap; i++)
        if (self->workers[i].state != SUP_SLOT_FREE &&
            bson_oid_equal(&self->workers[i].qid, qid))
            return &self->workers[i];
    return NULL;
}

sup_slot_t *sup_slot_by_qid(sup_loop_t *self, const char *hex)
{
    for (size_t i = 0; i < self->cap; i++)
        if (self->workers[i].state != SUP_SLOT_FREE &&
            strcmp(self->workers[i].qid_hex, hex) == 0)
            return &self->workers[i];
    return NULL;
}

int sup_slot_pending(const sup_slot_t *w)
{
    return w->dirty || w->header_dirty || w->nerrs > 0;
}

sup_slot_t *sup_slot_by_identity(sup_loop_t *self, const char *identity,
                                 size_t idlen)
{
    for (size_t i = 0; i < self->cap; i++) {
        sup_slot_t *w = &self->workers[i];
        if ((w->state == SUP_SLOT_RUNNING || w->state == SUP_SLOT_EXITED) &&
            idlen == strlen(w->name) && memcmp(identity, w->name, idlen) == 0)
            return w;
    }
    return NULL;
}

/* The one tail of every end: nothing more is written for the import. The
 * freed slot claims again at once when the last claim round left imports
 * behind (claim_full, sup_loop.c); otherwise there was nothing to claim,
 * and what comes is seen by the change stream or the next poll. */
void sup_slot_free(sup_loop_t *self, sup_slot_t *w)
{
    if (w->has_cgroup)
        sup_cgroup_remove(self->cgroup, w->name);
    sup_renew_forget(self->renew, &w->qid);
    sup_slot_clear(self, w);
    if (self->claim_full)
        self->claim_due = 1;
}

void sup_slot_lose(sup_slot_t *w)
{
    w->lease = SUP_LEASE_LOST;
    if (w->state == SUP_SLOT_RUNNING) {
        sup_slot_kill(w, SIGKILL);
        w->killed_for = SUP_METRICS_EXIT_LEASE_LOST;
    }
}

void sup_slot_timers(const sup_slot_timer_facts_t *f, sup_slot_timer_t *out)
{
    memset(out, 0, sizeof(*out));
    out->silence_ms =
        f->lease_ms > SUP_SLOT_SILENCE_MS ? f->lease_ms : SUP_SLOT_SILENCE_MS;
    if (f->running) {
        out->flush =
            f->pending && f->now_ms - f->last_flush_ms >= SUP_SLOT_FLUSH_MS;
        /* the supervisor's sign of life, a quarter lease apart */
        out->ack = f->hello_ok && f->now_ms - f->last_ack_ms >= f->lease_ms / 4;
        /* a shutdown kills on its own deadline, not on these */
        if (!f->stopping && f->now_ms - f->last_heard_ms > out->silence_ms)
            out->kind = SUP_SLOT_TIMER_KILL_SILENT;
        else if (!f->stopping && f->now_ms - f->started_ms > f->timeout_ms)
            out->kind = SUP_SLOT_TIMER_KILL_TIMEOUT;
        else if (f->control_sent_ms > 0 && f->control_term_ms == 0 &&
                 f->now_ms - f->control_sent_ms >= SUP_SLOT_CONTROL_TERM_MS)
            out->kind = SUP_SLOT_TIMER_TERM_CONTROL;
        else if (f->control_term_ms > 0 &&
                 f->now_ms - f->control_term_ms >= SUP_SLOT_CONTROL_KILL_MS)
            out->kind = SUP_SLOT_TIMER_KILL_CONTROL;
    } else if (f->exited) {
        if (f->now_ms - f->exit_ms >= SUP_SLOT_EXIT_GRACE_MS)
            out->kind = SUP_SLOT_TIMER_END;
    } else if (f->waiting && f->now_ms >= f->respawn_at_ms) {
        out->kind = f->stopping ? SUP_SLOT_TIMER_RELEASE : SUP_SLOT_TIMER_START;
    }
}
