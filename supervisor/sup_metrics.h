/*
 * sup_metrics: the supervisor's counters, gauges and histograms, and their
 * Prometheus text exposition (format 0.0.4). The loop reports each event
 * with one call; the text is rendered on demand for the control socket
 * (`dealimportctl metrics`) and, with DEALIMPORT_METRICS_ADDR, for GET
 * /metrics served by a listener on a thread of its own. Every call
 * takes one mutex for a few arithmetic operations, and rendering copies
 * nothing but numbers under it, so a scraper can never hold the loop up
 * for more than the time of one render (microseconds), and a slow or stuck
 * HTTP client holds only its own connection.
 *
 * Names follow Prometheus' conventions: the dealimport_ prefix, _total on
 * counters, base units (seconds, bytes). Labels are bounded: worker exit
 * causes and import statuses come from fixed lists, and the running
 * workers per account show the SUP_METRICS_TOP_ACCOUNTS accounts with the
 * most running workers, the others summed under account="other". The
 * process's own figures (process_*) are read from /proc at each render.
 *
 * The listener (sup_metrics_http.c) serves three paths:
 *   GET /metrics  the text above;
 *   GET /healthz  200 while the loop has turned within SUP_METRICS_LIVE_MS
 *                 (sup_metrics_new counts as a turn), 503 otherwise (a
 *                 stuck loop: restart the process);
 *   GET /readyz   200 while the database answers the sampler and the lease
 *                 keeper renews, 503 with the reason otherwise (see
 *                 sup_metrics_ready).
 * It is its own poll loop on a thread of its own: at most
 * SUP_METRICS_HTTP_MAX_CONNS connections, SUP_METRICS_HTTP_PER_ADDR from
 * one peer address, and SUP_METRICS_HTTP_DEADLINE_MS for a whole request,
 * from accept to the last byte of the answer, however slowly a client
 * sends or reads. A new connection over a bound takes the place of one
 * already answered or of the oldest (its address's, or the table's), so
 * slow clients never lock a well-behaved one out, even one that shares
 * their address.
 */
#ifndef SUP_METRICS_H
#define SUP_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include <bson/bson.h>

#include "dip_config.h"

#define SUP_METRICS_TOP_ACCOUNTS 10
/* The loop must have turned within this long for /healthz to say 200. */
#define SUP_METRICS_LIVE_MS 60000
#define SUP_METRICS_HTTP_MAX_CONNS 64
#define SUP_METRICS_HTTP_PER_ADDR 8
#define SUP_METRICS_HTTP_DEADLINE_MS 5000
/* The longest request head read (request line and headers). */
#define SUP_METRICS_HTTP_HEAD_MAX 4096

typedef struct sup_metrics sup_metrics_t;

/* Why a worker process ended, from the supervisor's side. */
typedef enum {
    SUP_METRICS_EXIT_COMPLETED = 0, /* said `done` and exited */
    SUP_METRICS_EXIT_SIGNAL,        /* killed by a signal it was not sent */
    SUP_METRICS_EXIT_MEMORY,        /* hit its memory limit */
    SUP_METRICS_EXIT_SILENT,        /* killed after a heartbeat timeout */
    SUP_METRICS_EXIT_TIMEOUT,       /* killed at DEALIMPORT_WORKER_TIMEOUT_S */
    SUP_METRICS_EXIT_LEASE_LOST,    /* killed: another supervisor took over */
    SUP_METRICS_EXIT_ERROR,         /* exited without a `done` */
    SUP_METRICS_EXIT_NCAUSES
} sup_metrics_exit_t;

/* The label value of cause ("completed", "signal", "memory_limit", ...). */
const char *sup_metrics_exit_name(sup_metrics_exit_t cause);

/* The cause of a worker's end from its wait status, whether it had said
 * `done`, whether its memory limit was hit (exit 70 or the cgroup's
 * oom_kill), and killed_for: the cause the supervisor killed it for, or
 * SUP_METRICS_EXIT_COMPLETED (0) when it did not kill it. */
sup_metrics_exit_t sup_metrics_exit_cause(int wait_status, int done, int oom,
                                          sup_metrics_exit_t killed_for);

sup_metrics_t *sup_metrics_new(void);
/* Stops the HTTP listener and the sampler (if any) first. */
void sup_metrics_destroy(sup_metrics_t **self_p);

/* What the supervisor starts with its metrics when it is made: the limits
 * of cfg and the listener on cfg->metrics_addr when it is set. Stopped by
 * sup_metrics_destroy. 0, or -1 with err filled. */
int sup_metrics_start(sup_metrics_t *self, const dip_config_t *cfg, char *err,
                      size_t errlen);

/* Starts the queue sampler (sup_sampler: its own thread and connection),
 * once: the supervisor calls it after creating its indexes, since the
 * sampler's counts run on source_status_created and a first sample on a
 * fresh `queues` would need a scan (refused under notablescan). Until its
 * first sample /readyz says the database has not been checked. Stopped by
 * sup_metrics_destroy. 0, or -1 with err filled. */
int sup_metrics_start_sampler(sup_metrics_t *self, const dip_config_t *cfg,
                              char *err, size_t errlen);

/* Listens for GET /metrics on addr, "HOST:PORT" with a numeric IPv4 host
 * or "[IPv6]:PORT" (port 0 picks a free one, see sup_metrics_port). Serving
 * runs on the listener's own thread. Returns 0, or -1 with a sentence
 * naming DEALIMPORT_METRICS_ADDR in err. */
int sup_metrics_listen(sup_metrics_t *self, const char *addr, char *err,
                       size_t errlen);
/* The port the listener is bound to, 0 when there is none. */
int sup_metrics_port(const sup_metrics_t *self);

/* ---- events: each a single call from the loop; self may be NULL ------ */

/* A claim attempt: rc > 0 claimed one, 0 nothing to claim, < 0 failed. */
void sup_metrics_claim(sup_metrics_t *self, int rc);
/* A queue document the claim could not take ended alone: marked failed
 * (marked 1) or set aside (0). */
void sup_metrics_unclaimable(sup_metrics_t *self, int marked);
/* An import's follow-ups ended with a step given up. */
void sup_metrics_followup_given_up(sup_metrics_t *self);
/* A CURVE handshake on the control TCP port was refused. */
void sup_metrics_refused_handshake(sup_metrics_t *self);
/* A lease renewal round: rc < 0 failed. */
void sup_metrics_renewal(sup_metrics_t *self, int rc);
/* A worker process started for an import of account. */
void sup_metrics_worker_started(sup_metrics_t *self, const bson_oid_t *account);
/* That worker process ended. */
void sup_metrics_worker_exited(sup_metrics_t *self, const bson_oid_t *account,
                               sup_metrics_exit_t cause);
/* What a worker reported since its previous report; negative deltas (a
 * resumed import restarting a count) are ignored. */
void sup_metrics_progress(sup_metrics_t *self, int64_t rows_added,
                          int64_t line_errors, int64_t bytes,
                          int64_t db_round_trips);
/* An import ended with final status (completed, failed, cancelled) after
 * duration_ms on this supervisor, over which it went through lines lines. */
void sup_metrics_import_ended(sup_metrics_t *self, const char *status,
                              int64_t duration_ms, int64_t lines);
/* An import was handed back unfinished as status (pending, paused). */
void sup_metrics_import_released(sup_metrics_t *self, const char *status);
/* A retried database step failed SUP_RETRY_REPORT_AFTER times in a row
 * (sup_retry): counted once per such run of failures. */
void sup_metrics_step_escalated(sup_metrics_t *self);
/* The creation time (epoch ms) of the oldest pending import, or -1 when
 * none is pending; its age is computed at each render. */
void sup_metrics_oldest_pending(sup_metrics_t *self, int64_t created_ms);

/* ---- setters: the figures others measure; self may be NULL ----------- */

/* The limits in force (at start and after each reload): worker slots, per
 * account, and the per-worker memory (MB), CPU (s) and wall-clock (s)
 * limits; lease_s sizes the readiness rule for the lease keeper. */
typedef struct {
    long max_workers, per_account, memory_mb, cpu_s, timeout_s, lease_s;
} sup_metrics_limits_t;
void sup_metrics_set_limits(sup_metrics_t *self, const dip_config_t *cfg);

/* The loop turned, at monotonic mono_ms (the liveness of /healthz). */
void sup_metrics_loop_turn(sup_metrics_t *self, int64_t mono_ms);

/* The lease keeper finished a round at mono_ms, renewing `held` claims
 * (0: nothing to renew, the round only proves the thread runs); rc < 0:
 * the renewal failed. */
void sup_metrics_keeper_round(sup_metrics_t *self, int64_t mono_ms, size_t held,
                              int rc);

/* What the queue sampler read at mono_ms: up 1 when the database answered,
 * 0 when not (then the other figures are left as they were). */
void sup_metrics_db_checked(sup_metrics_t *self, int64_t mono_ms, int up);
/* Imports by status from the sampler; a count that could not be read is
 * -1 (its gauge keeps its last value). capped: the count stopped at
 * SUP_SAMPLER_COUNT_CAP. */
typedef enum {
    SUP_METRICS_Q_PENDING = 0,
    SUP_METRICS_Q_PROCESSING,
    SUP_METRICS_Q_PAUSED,
    SUP_METRICS_Q_NSTATUSES
} sup_metrics_qstatus_t;
void sup_metrics_queue_counts(sup_metrics_t *self,
                              const int64_t counts[SUP_METRICS_Q_NSTATUSES]);
/* A sampler query that failed or ran out of its maxTimeMS. */
void sup_metrics_sample_failed(sup_metrics_t *self);

/* How a follow-up child (error file, source cleanup, event release) ended,
 * from its wait status: exit 0 done, DIP_EXIT_TEMPFAIL retried later,
 * anything else failed. */
void sup_metrics_followup_ended(sup_metrics_t *self, int wait_status);
/* How one completion event delivery attempt ended: "delivered", "pending"
 * (retried later) or "failed" (given up), as sup_event records it; other
 * values are ignored. */
void sup_metrics_notification(sup_metrics_t *self, const char *outcome);

/* ---- health: facts in, verdict out (no clock, no I/O) ---------------- */

typedef struct {
    int64_t now_ms;          /* monotonic */
    int64_t loop_turn_ms;    /* last turn, 0: none yet */
    int64_t db_checked_ms;   /* last sampler check, 0: none yet */
    int db_up;               /* what that check found */
    int64_t sample_every_ms; /* the sampler's period */
    int64_t keeper_round_ms; /* last lease keeper round, 0: none yet */
    int keeper_failed;       /* that round's renewal failed */
    int64_t lease_ms;
} sup_metrics_health_t;

/* 1 when live: the loop turned within SUP_METRICS_LIVE_MS. */
int sup_metrics_live(const sup_metrics_health_t *h, char *why, size_t whylen);
/* 1 when ready: the last database check answered and is not older than
 * three sampler periods, and the lease keeper's last round is within half
 * a lease and did not fail. Otherwise 0 with the first reason in why
 * ("database unavailable", ...). */
int sup_metrics_ready(const sup_metrics_health_t *h, char *why, size_t whylen);

/* The facts as they stand at monotonic now_ms. */
void sup_metrics_health_facts(sup_metrics_t *self, int64_t now_ms,
                              sup_metrics_health_t *out);

/* The exposition text at wall-clock now_ms: malloc'd, NUL-terminated, the
 * caller frees it. NULL on allocation failure. */
char *sup_metrics_render(sup_metrics_t *self, int64_t now_ms);

#endif
