/*
 * sup_loop_priv: the loop's own struct and its slot table, shared by the
 * files of the loop and by no one else (as libmongoc keeps *-private.h).
 * sup_loop.c wires the rooms, polls, runs the timers, the signals, reload
 * and shutdown; each room has a file of its own, and its decisions are a
 * pure rule in a header of its own (facts in, verdict out, table-tested):
 *   sup_slot.c   the slot table: lookups, counts, clearing a slot, freeing
 *                it (the one tail every end of a slot goes through), losing
 *                a claim; its timers' rule in sup_slot.h;
 *   sup_lease.c  lease timing and the "may we call the database now" gate
 *                (sup_lease.h);
 *   sup_start.c  starting a worker process for a slot (the guard against
 *                two workers of one import here);
 *   sup_inbox.c  the workers' messages: identity checks, acks and window
 *                (sup_inbox.h);
 *   sup_end.c    the end of an import: flushing progress, the final write
 *                (retried later while it cannot land: sup_end.h), exits and
 *                reaping through sup_life;
 *   sup_claim.c  claiming imports, fairly across accounts (sup_claim.h).
 * Everything runs on the loop's one thread; nothing here is locked. The
 * slot states are explicit (sup_slot_state_t); no state is spelled as a
 * combination of other fields.
 */
#ifndef SUP_LOOP_PRIV_H
#define SUP_LOOP_PRIV_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <bson/bson.h>
#include <mongoc/mongoc.h>

#include "dip_config.h"
#include "dip_msg.h"
#include "sup_cgroup.h"
#include "sup_claim.h"
#include "sup_ctl.h"
#include "sup_event.h"
#include "sup_inbox.h"
#include "sup_followup.h"
#include "sup_life.h"
#include "sup_loop.h"
#include "sup_metrics.h"
#include "sup_notify.h"
#include "sup_renew.h"
#include "sup_retry.h"
#include "sup_slot.h"
#include "sup_spawn.h"
#include "sup_store.h"
#include "sup_watch.h"

/* libcurl sockets of completion-event deliveries polled with the rest. */
#define SUP_LOOP_CRM_POLL_MAX 16
/* The longest a shutdown waits for workers to checkpoint and stop. */
#define SUP_LOOP_SHUTDOWN_GRACE_MS 25000
/* Frames taken per wake-up, so timers and signals are never starved. */
#define SUP_LOOP_MSGS_PER_WAKE 2000
/* Dropped frames are logged once per this interval (per import). */
#define SUP_LOOP_DROP_LOG_MS 5000
/* After a worker could not be started, claiming pauses this long. */
#define SUP_LOOP_START_FAIL_PAUSE_MS 30000
/* zmq_poll's longest wait: the timers' resolution. */
#define SUP_LOOP_POLL_MS 200
/* The change stream's maxAwaitTimeMS: how long its thread may take to
 * notice a stop. */
#define SUP_LOOP_WATCH_AWAIT_MS 1000
/* sd_notify STATUS= lines this far apart. */
#define SUP_LOOP_STATUS_MS 5000
/* The least flow-control window a worker gets, whatever the error buffer:
 * below it a worker would stall on every few line errors. */
#define SUP_LOOP_MIN_WINDOW_BYTES (256 * 1024)
/* A worker's cgroup: one CPU at most, and enough pids for its threads
 * (libmongoc's, libcurl's resolver, the batch pool) but not a fork bomb. */
#define SUP_LOOP_CGROUP_CPU_PERCENT 100
#define SUP_LOOP_CGROUP_PIDS_MAX 64
/* Accounts remembered for fair claiming; accounts at their limit skipped
 * per claim. */
#define SUP_LOOP_SERVED_MAX 256
#define SUP_LOOP_SKIP_MAX 64
/* Unclaimable documents set aside at once (sup_claim_set_aside), and how
 * many a claim round ends alone before it lets the loop turn. */
#define SUP_LOOP_ASIDE_MAX 64
#define SUP_LOOP_REFUSALS_PER_ROUND 16

typedef enum {
    SUP_SLOT_FREE = 0,
    SUP_SLOT_RUNNING, /* a worker process exists */
    SUP_SLOT_WAITING, /* no process; a worker starts at respawn_at_ms */
    SUP_SLOT_EXITED,  /* reaped, its last messages may still be in flight */
    SUP_SLOT_ENDING,  /* no process; the end (final_status) could not be
                         written yet and is tried again at end_retry_at_ms */
} sup_slot_state_t;

typedef struct sup_slot {
    sup_slot_state_t state;
    pid_t pid;
    char qid_hex[25];
    char name[64]; /* deals_import_queue_<id>: ZeroMQ identity, cgroup */
    bson_oid_t qid, account;
    bson_t *doc;
    int64_t started_ms, last_heard_ms, respawn_at_ms, last_flush_ms;
    sup_life_counters_t life; /* restarts, temporary failures */
    sup_lease_t lease;
    int64_t epoch; /* the claim's `claims` */
    /* By our monotonic clock: when the lease we last wrote runs out, and
     * when a worker told to stop for it is killed. */
    int64_t lease_end_ms, kill_at_ms;
    int exit_status;
    int64_t exit_ms;
    int64_t run_start_lines; /* w->lines when the current run started */
    /* SUP_SLOT_ENDING: the end that could not be written yet, and when it
     * is tried again */
    const char *final_status;
    char *final_error;
    int final_release; /* the end is a hand-back (release), not a finish */
    int end_tries;     /* its failed tries so far (sup_end_retry_rule) */
    int64_t end_retry_at_ms;
    /* How long the next try may take, growing with the tries. The store's
     * calls still run under their client's one bound (sup_store_call_ms);
     * this is the figure a bounded final write is to be given. */
    /* The final status is on the queue document, csv_imports is not yet:
     * no one can claim the import any more, so its lease no longer
     * matters; the write is retried until it lands. */
    int final_written;
    int has_cgroup;
    /* made for the current worker run, handed to it over its secrets pipe;
     * its hello must carry it back */
    char spawn_secret[DIP_CONFIG_SPAWN_SECRET_LEN + 1];
    /* from the current worker run */
    int done;
    dip_done_status_t status;
    char *error;
    bson_t *notes; /* array of strings from done, or NULL */
    int dry_run;   /* from done: a dry run's verdict */
    int64_t would_add, new_stages_count;
    bson_t *new_stages; /* array of strings, or NULL */
    /* from done of an update or upsert: deals updated and unchanged (or
     * would be, in a dry run) */
    int has_counts;
    int64_t updated, unchanged;
    int64_t lines, added, nerrors, not_stored, bytes, bytes_total;
    /* csv_import_errors documents not yet written, built once from each
     * line_error frame; their bytes count in the loop's error buffer */
    bson_t **errs;
    size_t nerrs, errs_cap, err_bytes;
    bson_t *checkpoint; /* latest, not yet written */
    bson_t *header;     /* from start: array of strings */
    int header_dirty;   /* not yet written */
    int dirty;
    int flush_failed;        /* the last write failed: wait SUP_SLOT_FLUSH_MS */
    sup_retry_t flush_retry; /* progress writes failed in a row */
    /* the current run: whether its hello proved the spawn secret, and flow
     * control (dip_msg.h) */
    int hello_ok;
    int64_t recv_bytes, acked_bytes, last_ack_ms;
    long dropped; /* frames under its identity dropped since the last log */
    int64_t dropped_log_ms;
    int stop_sent;
    int64_t first_line;             /* from the current worker's hello */
    dip_control_action_t requested; /* an operator's pause or cancel */
    /* when it was first sent, and when SIGTERM followed (sup_slot_timers'
     * escalation; 0: not yet) */
    int64_t control_sent_ms, control_term_ms;
    /* for the metrics: the run's db round trips so far, why we killed it
     * (COMPLETED: we did not), and where this supervisor took it up */
    int64_t round_trips;
    sup_metrics_exit_t killed_for;
    int64_t claimed_ms, claimed_lines;
    /* doc is the claim's own answer, not yet handed to a worker: the first
     * worker gets it (wrk_handoff.h) with the claim's time by our monotonic
     * clock, taken before it was sent, instead of reading it again; a later
     * run reads it (its checkpoint moved on). */
    int doc_fresh;
    int64_t claim_sent_ms;
    /* The first SUP_STORE_LOGS_KEEP line errors by line that this claim's
     * runs reported ({line, field, message}, each line once), and whether
     * they are all the import's stored errors can begin with: logs_own is
     * set at the claim when the document counted no stored error (no
     * earlier claim stored one before its checkpoint; a line after it is
     * reported again by this claim's runs). The end then quotes them
     * without reading csv_import_errors. */
    bson_t **logs;
    size_t nlogs;
    int logs_own;
} sup_slot_t;

struct sup_loop {
    dip_config_t cfg; /* tunables only; strings borrowed from the caller */
    const char *config_file;
    /* The one database client of this thread (database db), borrowed by
     * store, crm, followups and ctl's admin, closed after them. With the
     * lease keeper's own, a supervisor holds two connections to each
     * member of the replica set (a single-threaded libmongoc client keeps
     * one per server, monitoring on it too): measured with `ss -tnp`
     * against the one-member development server, 1 while idle, 2 while an
     * import runs (the keeper connects at its first renewal), where one
     * client per user made it 4 and 5. The queue sampler (sup_sampler,
     * under sup_metrics) adds one more of its own, so that its counts never
     * wait behind the loop's calls. Workers and follow-up children add one
     * each, in their own processes. */
    mongoc_client_t *client;
    const char *db;
    sup_store_t *store;
    sup_renew_t *renew; /* the lease keeper's thread, with its own client */
    /* The change stream on `queues` (its own thread and client), or NULL:
     * polling alone. Its fd wakes the loop for a claim round. */
    sup_watch_t *watch;
    sup_notify_t *notify;
    sup_cgroup_t *cgroup;
    sup_ctl_t *ctl;
    sup_metrics_t *metrics;
    /* what follows an import's end: its completion event (when a notify
     * URL is set) and the follow-up children */
    sup_event_t *crm;
    sup_followups_t *followups;
    int64_t started_wall_ms;
    void *zctx, *events;
    char endpoint[600];
    int sigfd, lockfd;
    sup_slot_t *workers;
    size_t cap;
    char owner[300];
    char worker_path[PATH_MAX];
    char **envp;
    int stopping;
    int64_t now, next_claim_ms, next_renew_ms, next_status_ms, next_watchdog_ms,
        shutdown_deadline_ms, give_up_ms;
    /* No database call before this (after a failed one), so that a
     * database that is away costs one timeout, not one per call. */
    int64_t db_pause_until_ms;
    /* The poll's own retried steps (sup_retry): each waits out its
     * backoff after a failure and is reported after a run of them. */
    sup_retry_t followup_retry, repair_retry;
    int64_t call_ms; /* the longest a database call can block */
    uint64_t watchdog_usec;
    long finished, failed;
    size_t err_bytes; /* unwritten line errors of all workers */
    long dropped;     /* frames dropped since the last such log line */
    int64_t dropped_log_ms;
    int64_t window; /* bytes each worker may have unacknowledged */
    sup_store_served_t served[SUP_LOOP_SERVED_MAX]; /* for fair claiming */
    size_t nserved;
    /* The last claim round stopped with claimable imports left behind
     * (every slot taken, or accounts at their limit skipped): a slot that
     * frees claims again at once. 0: the round found nothing, and what
     * comes next is seen by the change stream or the poll. */
    int claim_full;
    /* A slot freed while claim_full: the loop claims at its next turn. */
    int claim_due;
    /* The indexes an import relies on stand (sup_store_ensure_deal_indexes):
     * nothing is claimed before. */
    int indexes_ok;
    int indexes_said; /* their failure was logged */
    /* No claim before this: a worker could not be started. */
    int64_t claim_pause_until_ms;
    /* Documents the claim could not take nor mark failed, passed over
     * until their time (sup_claim.h); ids owned. */
    sup_claim_aside_t aside[SUP_LOOP_ASIDE_MAX];
    size_t naside;
};

/* ---- sup_slot.c: the slot table -------------------------------------- */

/* Forgets what the current worker run reported (a new run starts). */
void sup_slot_reset_run(sup_slot_t *w);
/* Keeps a reported line error for csv_imports.logs if it is among the
 * first SUP_STORE_LOGS_KEEP lines (each line once); out of memory it stops
 * keeping (logs_own 0: the end reads them). */
void sup_slot_keep_log(sup_slot_t *w, int64_t line, const char *field,
                       const char *message);
/* The kept errors as a BSON array for csv_imports.logs (the caller
 * destroys it), or NULL when they are not surely all (logs_own 0). */
bson_t *sup_slot_logs(const sup_slot_t *w);
/* Drops the slot's unwritten line errors from it and the loop's buffer. */
void sup_slot_clear_errors(sup_loop_t *self, sup_slot_t *w);
/* Releases all the slot holds and zeroes it (SUP_SLOT_FREE). */
void sup_slot_clear(sup_loop_t *self, sup_slot_t *w);
/* Frees the slot of an import this supervisor is done with: its cgroup,
 * its lease renewals, its memory; and claims again at once. Writes
 * nothing: every end goes through here after its own writes. */
void sup_slot_free(sup_loop_t *self, sup_slot_t *w);
/* The claim on the slot's import is gone (a fenced write matched nothing,
 * or the lease keeper found it taken): nothing more of it may reach the
 * database, so a running worker is killed at once. The caller frees the
 * slot when nothing is left to wait for. */
void sup_slot_lose(sup_slot_t *w);
/* Signals a worker's whole process group; never pid 0 or our own group. */
void sup_slot_kill(sup_slot_t *w, int sig);
/* The queue id as stored (every import a worker runs has an ObjectId). */
bson_value_t sup_slot_qid(const sup_slot_t *w);
/* 1 when progress, a header or line errors wait to be written. */
int sup_slot_pending(const sup_slot_t *w);
size_t sup_slot_busy(const sup_loop_t *self);
sup_slot_t *sup_slot_by_pid(sup_loop_t *self, pid_t pid);
sup_slot_t *sup_slot_by_qid_oid(sup_loop_t *self, const bson_oid_t *qid);
sup_slot_t *sup_slot_by_qid(sup_loop_t *self, const char *hex);
/* The slot whose running (or just exited) worker has this identity. */
sup_slot_t *sup_slot_by_identity(sup_loop_t *self, const char *identity,
                                 size_t idlen);

/* ---- sup_lease.c: lease timing and the database gate ----------------- */

/* The rules themselves are sup_lease.h's; these apply them to the loop. */
int64_t sup_lease_ms(const sup_loop_t *self);
int64_t sup_lease_renew_every(const sup_loop_t *self);
/* 1 when a database call may start now (see sup_lease.c). */
int sup_lease_db_ok(sup_loop_t *self);
/* A database call failed: pause them all for a while. */
void sup_lease_db_failed(sup_loop_t *self);
/* A retried step (its state r) failed with err: backs it off, and at the
 * run of failures sup_retry reports, logs once with the import (qid_hex,
 * NULL for none) and the step, and counts it in the metrics. */
void sup_lease_step_failed(sup_loop_t *self, sup_retry_t *r,
                           const char *qid_hex, const char *step,
                           const char *err);
/* Reads the lease keeper's news and acts on leases about to run out;
 * makes no database call. First in each turn of the loop. */
void sup_lease_watch(sup_loop_t *self);

/* ---- sup_start.c: starting a worker ---------------------------------- */

/* The spawn options a worker of this loop runs under (argv borrowed). */
void sup_start_opts(const sup_loop_t *self, sup_spawn_opts_t *o, char **argv,
                    int cgroup_fd);
typedef enum {
    SUP_START_OK = 0,
    SUP_START_TWICE,  /* another slot's worker (*other) runs the import */
    SUP_START_UNHELD, /* the claim is not, or no longer surely, ours */
} sup_start_guard_t;
/* Whether a worker may start for the slot. */
sup_start_guard_t sup_start_guard(const sup_loop_t *self, const sup_slot_t *w,
                                  pid_t *other);
/* Starts a worker for the slot (sup_start_guard first). 0, or -1 logged. */
int sup_start_worker(sup_loop_t *self, sup_slot_t *w);

/* ---- sup_inbox.c: the workers' messages ------------------------------ */

int sup_inbox_send_control(sup_loop_t *self, sup_slot_t *w,
                           dip_control_action_t action);
/* What is stored and how much more the worker may send. */
void sup_inbox_send_ack(sup_loop_t *self, sup_slot_t *w);
/* Takes up to SUP_LOOP_MSGS_PER_WAKE frames from the events socket. */
void sup_inbox_drain(sup_loop_t *self);

/* ---- sup_end.c: the end of an import --------------------------------- */

/* Writes what the worker reported and has not been written yet. 0, or -1
 * (not written: database away or the claim lost). */
int sup_end_flush(sup_loop_t *self, sup_slot_t *w);
/* Writes the final status; frees the slot, or keeps it ENDING to retry. */
void sup_end_finish(sup_loop_t *self, sup_slot_t *w, const char *status,
                    const char *error);
/* Hands the import back (pending, paused); as sup_end_finish otherwise. */
void sup_end_release(sup_loop_t *self, sup_slot_t *w, const char *status,
                     const char *error);
/* A worker process ended with wait status st: sup_life decides. */
void sup_end_exited(sup_loop_t *self, sup_slot_t *w, int st);
/* Reaps every child that ended (workers and follow-ups). */
void sup_end_reap(sup_loop_t *self);
/* Tries again the ends that are due. */
void sup_end_retry(sup_loop_t *self);

/* ---- sup_claim.c: claiming ------------------------------------------- */

/* Claims imports while slots are free and the database answers; sets
 * claim_full when it stops with claimable imports left behind. */
void sup_claim_run(sup_loop_t *self);

#endif
