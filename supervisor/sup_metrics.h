/*
 * sup_metrics: the supervisor's counters, gauges and histograms, and their
 * Prometheus text exposition (format 0.0.4). The loop reports each event
 * with one call; the text is rendered on demand for the control socket
 * (`dealimportctl metrics`) and, with DEALIMPORT_METRICS_ADDR, for GET
 * /metrics served by libmicrohttpd from a thread of its own. Every call
 * takes one mutex for a few arithmetic operations, and rendering copies
 * nothing but numbers under it, so a scraper can never hold the loop up
 * for more than the time of one render (microseconds), and a slow or stuck
 * HTTP client holds only its own connection.
 *
 * Names follow Prometheus' conventions: the dealimport_ prefix, _total on
 * counters, base units (seconds, bytes). Labels are bounded: worker exit
 * causes and import statuses come from fixed lists, and the running
 * workers per account show the SUP_METRICS_TOP_ACCOUNTS accounts with the
 * most running workers, the others summed under account="other".
 */
#ifndef SUP_METRICS_H
#define SUP_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include <bson/bson.h>

#define SUP_METRICS_TOP_ACCOUNTS 10

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
/* Stops the HTTP listener (if any) first. */
void sup_metrics_destroy(sup_metrics_t **self_p);

/* Listens for GET /metrics on addr, "HOST:PORT" with a numeric IPv4 host
 * or "[IPv6]:PORT" (port 0 picks a free one, see sup_metrics_port). Serving
 * runs on libmicrohttpd's own thread. Returns 0, or -1 with a sentence
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
/* The creation time (epoch ms) of the oldest pending import, or -1 when
 * none is pending; its age is computed at each render. */
void sup_metrics_oldest_pending(sup_metrics_t *self, int64_t created_ms);

/* The exposition text at wall-clock now_ms: malloc'd, NUL-terminated, the
 * caller frees it. NULL on allocation failure. */
char *sup_metrics_render(sup_metrics_t *self, int64_t now_ms);

#endif
