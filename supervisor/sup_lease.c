/*
 * sup_lease: the leases by the loop's own clock, and the gate every
 * database call of the loop passes. A lease we hold is renewed by the lease
 * keeper (sup_renew); here its end is tracked, a lease about to run out has
 * its worker told to stop and then killed, and a database call is allowed
 * only when it cannot block the loop past the moment a worker must be
 * stopped. No database call is made here. The rules are pure functions
 * (sup_lease.h); the rest gathers facts from the slot table and carries
 * the verdicts out.
 */
#include "sup_lease.h"
#include "sup_loop_priv.h"
#include "dip_log.h"
#include "dip_time.h"

#include <signal.h>
#include <stdio.h>
#include <sys/random.h>
#include <unistd.h>

/* ---- the rules -------------------------------------------------------- */

void sup_lease_margins(int64_t lease_ms, sup_lease_margins_t *out)
{
    out->stop_ms = lease_ms / 3;
    out->kill_ms = lease_ms / 12;
    out->renew_every_ms = lease_ms / 6;
    out->db_pause_ms = lease_ms / 6;
}

sup_lease_gate_t sup_lease_gate(const sup_lease_gate_facts_t *f)
{
    sup_lease_margins_t m;
    int64_t by = f->now_ms + f->call_ms;
    sup_lease_margins(f->lease_ms, &m);
    if (f->now_ms < f->pause_until_ms)
        return SUP_LEASE_GATE_PAUSED;
    if (f->stopping && by > f->give_up_ms)
        return SUP_LEASE_GATE_SHUTDOWN;
    if (f->any_unheld)
        return SUP_LEASE_GATE_UNHELD;
    if (f->earliest_end_ms != INT64_MAX && by > f->earliest_end_ms - m.stop_ms)
        return SUP_LEASE_GATE_TOO_CLOSE;
    return SUP_LEASE_GATE_OPEN;
}

void sup_lease_decide(const sup_lease_slot_facts_t *f, sup_lease_verdict_t *out)
{
    sup_lease_margins_t m;
    sup_lease_margins(f->lease_ms, &m);
    out->kind = SUP_LEASE_KEEP;
    out->lease_end_ms = f->lease_end_ms;
    out->lease = f->lease;
    out->kill_at_ms = f->kill_at_ms;
    out->free_slot = 0;
    if (f->lease == SUP_LEASE_HELD) {
        /* A renewal extends the lease by our clock, never shortens it. */
        if (f->renewed_until_ms > out->lease_end_ms)
            out->lease_end_ms = f->renewed_until_ms;
        if (f->lost) {
            out->kind = SUP_LEASE_LOSE;
            out->lease = SUP_LEASE_LOST;
            out->free_slot = !f->running && !f->exited;
            return;
        }
    }
    if (f->ending)
        return;
    if (out->lease == SUP_LEASE_HELD &&
        f->now_ms >= out->lease_end_ms - m.stop_ms) {
        out->lease = SUP_LEASE_LAPSING;
        out->kill_at_ms = out->lease_end_ms - m.kill_ms;
        if (f->exited) {
            out->kind = SUP_LEASE_END_EXITED;
            return;
        }
        if (!f->running) {
            out->kind = SUP_LEASE_DROP;
            return;
        }
        out->kind = SUP_LEASE_STOP;
        /* and killed below if it is that late already */
    }
    if (out->lease != SUP_LEASE_HELD && f->running &&
        f->now_ms >= out->kill_at_ms) {
        out->kind = SUP_LEASE_KILL;
        out->kill_at_ms = INT64_MAX;
    }
}

void sup_lease_lapse_sentence(int64_t left_ms, char *out, size_t len)
{
    if (left_ms >= 0)
        snprintf(out, len, "the lease could not be renewed and ends in %lld ms",
                 (long long)left_ms);
    else
        snprintf(out, len,
                 "the lease could not be renewed and ended %lld ms ago",
                 -(long long)left_ms);
}

/* ---- the loop's side ------------------------------------------------- */

int64_t sup_lease_ms(const sup_loop_t *self)
{
    return self->cfg.lease_s * 1000;
}

int64_t sup_lease_renew_every(const sup_loop_t *self)
{
    sup_lease_margins_t m;
    sup_lease_margins(sup_lease_ms(self), &m);
    return m.renew_every_ms;
}

/* Whether a database call may start now (sup_lease_gate): the facts are
 * the loop's pause and shutdown, and the leases of the slots with a worker
 * process. */
int sup_lease_db_ok(sup_loop_t *self)
{
    sup_lease_gate_facts_t f = {
        .now_ms = dip_time_mono_ms(),
        .call_ms = self->call_ms,
        .lease_ms = sup_lease_ms(self),
        .pause_until_ms = self->db_pause_until_ms,
        .stopping = self->stopping,
        .give_up_ms = self->give_up_ms,
        .earliest_end_ms = INT64_MAX,
    };
    for (size_t i = 0; i < self->cap; i++) {
        const sup_slot_t *w = &self->workers[i];
        if (w->state != SUP_SLOT_RUNNING)
            continue;
        if (w->lease != SUP_LEASE_HELD)
            f.any_unheld = 1;
        else if (w->lease_end_ms < f.earliest_end_ms)
            f.earliest_end_ms = w->lease_end_ms;
    }
    return sup_lease_gate(&f) == SUP_LEASE_GATE_OPEN;
}

void sup_lease_db_failed(sup_loop_t *self)
{
    sup_lease_margins_t m;
    sup_lease_margins(sup_lease_ms(self), &m);
    self->db_pause_until_ms = dip_time_mono_ms() + m.db_pause_ms;
}

void sup_lease_step_failed(sup_loop_t *self, sup_retry_t *r,
                           const char *qid_hex, const char *step,
                           const char *err)
{
    uint32_t random;
    if (getrandom(&random, sizeof(random), GRND_NONBLOCK) !=
        (ssize_t)sizeof(random))
        random = (uint32_t)self->now ^ (uint32_t)getpid();
    if (!sup_retry_failed(r, self->now, random))
        return;
    dip_log(DIP_LOG_ERR, qid_hex,
            "%s failed %d times in a row, the last: %s (still retried, the "
            "next in %lld ms, each try up to %ld ms)",
            step, r->fails, err, (long long)(r->due_ms - self->now),
            self->call_ms);
    sup_metrics_step_escalated(self->metrics);
}

/* Each slot's lease, before anything else in each turn of the loop: the
 * lease keeper's news read, the verdict carried out. A claim found gone
 * stops its worker at once (SIGKILL: nothing more of it may reach the
 * database) and frees the slot without a write; a lease we could not renew
 * has its worker told to stop (it checkpoints if it can), then killed; an
 * import with no worker is dropped at once. No database call. */
void sup_lease_watch(sup_loop_t *self)
{
    for (size_t i = 0; i < self->cap; i++) {
        sup_slot_t *w = &self->workers[i];
        sup_lease_slot_facts_t f = {
            .now_ms = self->now,
            .lease_ms = sup_lease_ms(self),
            .running = w->state == SUP_SLOT_RUNNING,
            .exited = w->state == SUP_SLOT_EXITED,
            .ending = w->state == SUP_SLOT_ENDING || w->final_written,
            .lease = w->lease,
            .lease_end_ms = w->lease_end_ms,
            .kill_at_ms = w->kill_at_ms,
        };
        sup_lease_verdict_t v;
        char lapse[96];
        if (w->state == SUP_SLOT_FREE)
            continue;
        if (w->lease == SUP_LEASE_HELD &&
            sup_renew_state(self->renew, &w->qid, w->epoch, &f.renewed_until_ms,
                            &f.lost) < 0) {
            f.renewed_until_ms = 0; /* not held by the keeper: no news */
            f.lost = 0;
        }
        sup_lease_decide(&f, &v);
        w->lease_end_ms = v.lease_end_ms;
        w->kill_at_ms = v.kill_at_ms;
        if (v.kind != SUP_LEASE_LOSE)
            w->lease = v.lease;
        switch (v.kind) {
        case SUP_LEASE_KEEP:
            break;
        case SUP_LEASE_LOSE:
            dip_log(DIP_LOG_ERR, w->qid_hex,
                    "the claim on the import is gone (another supervisor took "
                    "it over): stopping its worker, writing nothing more");
            sup_slot_lose(w);
            if (v.free_slot)
                sup_slot_free(self, w);
            break;
        case SUP_LEASE_STOP:
        case SUP_LEASE_END_EXITED:
        case SUP_LEASE_DROP:
            sup_lease_lapse_sentence(w->lease_end_ms - self->now, lapse,
                                     sizeof(lapse));
            dip_log(DIP_LOG_WARNING, w->qid_hex, "%s: stopping the import here",
                    lapse);
            if (v.kind == SUP_LEASE_END_EXITED)
                sup_end_exited(self, w, w->exit_status);
            else if (v.kind == SUP_LEASE_DROP)
                sup_slot_free(self, w);
            else if (sup_inbox_send_control(self, w, DIP_CONTROL_STOP) < 0)
                sup_slot_kill(w, SIGTERM);
            break;
        case SUP_LEASE_KILL:
            if (f.lease == SUP_LEASE_HELD) { /* stopped and killed at once */
                sup_lease_lapse_sentence(w->lease_end_ms - self->now, lapse,
                                         sizeof(lapse));
                dip_log(DIP_LOG_WARNING, w->qid_hex,
                        "%s: stopping the import here", lapse);
            }
            dip_log(DIP_LOG_WARNING, w->qid_hex,
                    "worker pid=%d did not stop before the lease ends: "
                    "killing it",
                    (int)w->pid);
            sup_slot_kill(w, SIGKILL);
            break;
        }
    }
}
