/*
 * sup_lease: the leases by the loop's own clock, and the gate every
 * database call of the loop passes. A lease we hold is renewed by the lease
 * keeper (sup_renew); here its end is tracked, a lease about to run out has
 * its worker told to stop and then killed, and a database call is allowed
 * only when it cannot block the loop past the moment a worker must be
 * stopped. No database call is made here.
 */
#include "sup_loop_priv.h"
#include "dip_log.h"
#include "dip_time.h"

#include <signal.h>

int64_t sup_lease_ms(const sup_loop_t *self)
{
    return self->cfg.lease_s * 1000;
}

/* A lease we cannot renew has its workers told to stop a third of the lease
 * before it runs out, and killed a twelfth before (the clock skew between
 * supervisors tolerated, see the README). Renewals come every sixth: with
 * calls bounded by a third (dip_mongo_client_new_bounded), one renewal
 * always fits between a write that extended the lease and the moment its
 * workers must be stopped. */
int64_t sup_lease_stop_margin(const sup_loop_t *self)
{
    return sup_lease_ms(self) / 3;
}

int64_t sup_lease_kill_margin(const sup_loop_t *self)
{
    return sup_lease_ms(self) / 12;
}

int64_t sup_lease_renew_every(const sup_loop_t *self)
{
    return sup_lease_ms(self) / 6;
}

/* Whether a database call may start now. Not during the pause after a
 * failed one; not when it could still block when a lease we hold needs its
 * workers stopped (stop_margin before its end), nor while a worker told to
 * stop for its lease is alive: the loop must be free to stop and kill them
 * in time. In a shutdown, not when it could outlast the stop timeout. */
int sup_lease_db_ok(sup_loop_t *self)
{
    int64_t now = dip_time_mono_ms(), by = now + self->call_ms;
    if (now < self->db_pause_until_ms)
        return 0;
    if (self->stopping && by > self->give_up_ms)
        return 0;
    for (size_t i = 0; i < self->cap; i++) {
        const sup_slot_t *w = &self->workers[i];
        if (w->state != SUP_SLOT_RUNNING)
            continue;
        if (w->lease != SUP_LEASE_HELD ||
            by > w->lease_end_ms - sup_lease_stop_margin(self))
            return 0;
    }
    return 1;
}

void sup_lease_db_failed(sup_loop_t *self)
{
    self->db_pause_until_ms = dip_time_mono_ms() + sup_lease_ms(self) / 6;
}

/* What the lease keeper learnt: renewals extend each lease's end by our
 * clock; a claim found gone stops its worker at once (SIGKILL: nothing more
 * of it may reach the database) and frees the slot without a write. */
static void read_renewals(sup_loop_t *self)
{
    for (size_t i = 0; i < self->cap; i++) {
        sup_slot_t *w = &self->workers[i];
        int64_t until = 0;
        int lost = 0;
        if (w->state == SUP_SLOT_FREE || w->lease != SUP_LEASE_HELD ||
            sup_renew_state(self->renew, &w->qid, w->epoch, &until, &lost) < 0)
            continue;
        if (until > w->lease_end_ms)
            w->lease_end_ms = until;
        if (!lost)
            continue;
        dip_log(DIP_LOG_ERR, w->qid_hex,
                "the claim on the import is gone (another supervisor took it "
                "over): stopping its worker, writing nothing more");
        sup_slot_lose(w);
        if (w->state == SUP_SLOT_WAITING || w->state == SUP_SLOT_ENDING)
            sup_slot_free(self, w);
    }
}

/* The leases by our own clock: a lease we could not renew in time has its
 * workers told to stop (they checkpoint if they can) stop_margin before it
 * runs out, and killed kill_margin before; an import with no worker is
 * dropped at once. Runs before anything else in each turn of the loop, and
 * makes no database call. */
void sup_lease_watch(sup_loop_t *self)
{
    int64_t margin = sup_lease_stop_margin(self);
    read_renewals(self);
    for (size_t i = 0; i < self->cap; i++) {
        sup_slot_t *w = &self->workers[i];
        /* An end being written (finish or hand-back) needs no lease: its
         * writes are fenced, so they land only while no one else has
         * claimed the import, and then they are right. Given up, a final
         * status applied but not acknowledged would lose its csv_imports. */
        if (w->state == SUP_SLOT_FREE || w->final_written ||
            w->state == SUP_SLOT_ENDING)
            continue;
        if (w->lease == SUP_LEASE_HELD &&
            self->now >= w->lease_end_ms - margin) {
            dip_log(DIP_LOG_WARNING, w->qid_hex,
                    "the lease could not be renewed and ends in %lld ms: "
                    "stopping the import here",
                    (long long)(w->lease_end_ms - self->now));
            w->lease = SUP_LEASE_LAPSING;
            w->kill_at_ms = w->lease_end_ms - sup_lease_kill_margin(self);
            if (w->state == SUP_SLOT_RUNNING) {
                if (sup_inbox_send_control(self, w, DIP_CONTROL_STOP) < 0)
                    sup_slot_kill(w, SIGTERM);
            } else if (w->state == SUP_SLOT_EXITED) {
                sup_end_exited(self, w, w->exit_status);
                continue;
            } else {
                sup_slot_free(self, w);
                continue;
            }
        }
        if (w->lease != SUP_LEASE_HELD && w->state == SUP_SLOT_RUNNING &&
            self->now >= w->kill_at_ms) {
            dip_log(DIP_LOG_WARNING, w->qid_hex,
                    "worker pid=%d did not stop before the lease ends: "
                    "killing it",
                    (int)w->pid);
            sup_slot_kill(w, SIGKILL);
            w->kill_at_ms = INT64_MAX;
        }
    }
}
