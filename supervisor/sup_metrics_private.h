/*
 * sup_metrics_private: the struct that sup_metrics' files share, included
 * only by them (sup_metrics.c keeps the figures, sup_metrics_render.c
 * writes them as text, sup_metrics_http.c serves them) and by the module's
 * own tests. Everything in `f` is guarded by `lock`; a render copies `f` out
 * under it and formats outside it.
 */
#ifndef SUP_METRICS_PRIVATE_H
#define SUP_METRICS_PRIVATE_H

#include "sup_metrics.h"

#include <pthread.h>

/* Upper bounds of the histograms' buckets (+Inf is implied). */
#define SUP_METRICS_NBOUNDS 10

typedef struct {
    uint64_t counts[SUP_METRICS_NBOUNDS];
    uint64_t inf; /* observations above the last bound */
    uint64_t n;
    double sum;
} sup_metrics_histogram_t;

typedef struct {
    char id[25];
    long running;
} sup_metrics_account_t;

#define SUP_METRICS_NENDED 3       /* completed, failed, cancelled */
#define SUP_METRICS_NRELEASED 2    /* pending, paused */
#define SUP_METRICS_NFOLLOWUP 3    /* done, retry, failed */
#define SUP_METRICS_NNOTIFY 3      /* delivered, retry, given_up */
#define SUP_METRICS_NUNCLAIMABLE 2 /* set_aside, failed */

/* Why the listener dropped a connection before answering it. */
typedef enum {
    SUP_METRICS_HTTP_DROP_NONE = 0, /* not dropped: admitted, or answered */
    SUP_METRICS_HTTP_DROP_DEADLINE, /* not answered within the deadline */
    SUP_METRICS_HTTP_DROP_PER_ADDR, /* its address's oldest, to make room */
    SUP_METRICS_HTTP_DROP_FULL,     /* the table's oldest, to make room */
    SUP_METRICS_HTTP_NDROPS
} sup_metrics_http_drop_t;

/* Everything a render needs, copied out under the lock. */
typedef struct {
    uint64_t claims, claim_failures, renewals, renewal_failures;
    uint64_t step_escalations;
    uint64_t unclaimable[SUP_METRICS_NUNCLAIMABLE]; /* set aside, failed */
    uint64_t refused_handshakes, followups_given_up;
    uint64_t rows_added, line_errors, bytes, round_trips;
    uint64_t exits[SUP_METRICS_EXIT_NCAUSES];
    uint64_t ended[SUP_METRICS_NENDED], released[SUP_METRICS_NRELEASED];
    uint64_t followups[SUP_METRICS_NFOLLOWUP], notify[SUP_METRICS_NNOTIFY];
    uint64_t sample_failures;
    uint64_t http_drops[SUP_METRICS_HTTP_NDROPS];
    long running;
    int64_t oldest_pending_ms;               /* -1: none pending */
    int64_t queued[SUP_METRICS_Q_NSTATUSES]; /* -1: never read */
    sup_metrics_limits_t limits;
    /* health, by the monotonic clock; 0: not yet */
    int64_t loop_turn_ms, db_checked_ms, keeper_round_ms;
    int db_up, keeper_failed;
    sup_metrics_histogram_t duration, rate;
    sup_metrics_account_t *accounts; /* running > 0 only */
    size_t naccounts;
} sup_metrics_figures_t;

typedef struct sup_metrics_http sup_metrics_http_t;

struct sup_metrics {
    pthread_mutex_t lock;
    sup_metrics_figures_t f;
    size_t accounts_cap;
    int64_t start_wall_ms; /* for process_start_time_seconds */
    sup_metrics_http_t *http;
    struct sup_sampler *sampler;
};

/* Label values, in the order of their arrays in the figures. */
extern const char *const sup_metrics_ended_names[SUP_METRICS_NENDED];
extern const char *const sup_metrics_released_names[SUP_METRICS_NRELEASED];
extern const char *const sup_metrics_followup_names[SUP_METRICS_NFOLLOWUP];
extern const char *const sup_metrics_notify_names[SUP_METRICS_NNOTIFY];
extern const char *const sup_metrics_queue_names[SUP_METRICS_Q_NSTATUSES];
extern const char
    *const sup_metrics_unclaimable_names[SUP_METRICS_NUNCLAIMABLE];
extern const double sup_metrics_duration_bounds[SUP_METRICS_NBOUNDS];
extern const double sup_metrics_rate_bounds[SUP_METRICS_NBOUNDS];

/* A copy of the figures (accounts malloc'd: free it). -1 when out of
 * memory. */
int sup_metrics_snapshot(sup_metrics_t *self, sup_metrics_figures_t *out);

/* The process's own figures, as the Prometheus client libraries name
 * them (process_*). */
typedef struct {
    double cpu_seconds;        /* user + system */
    double start_time_seconds; /* since the epoch */
    int64_t resident_bytes, virtual_bytes;
    long open_fds, max_fds; /* -1: unknown */
} sup_metrics_proc_t;

/* Parses the text of /proc/PID/stat (the command name may hold spaces and
 * parentheses: fields are counted after its last ')'), with the clock
 * ticks per second, the page size and the boot time (epoch seconds, from
 * /proc/stat's btime). 0, or -1 when the text is not a stat line. */
int sup_metrics_proc_parse_stat(const char *stat, long ticks_per_s,
                                long page_size, double boot_time_s,
                                sup_metrics_proc_t *out);
/* Reads this process's figures from /proc; what cannot be read stays -1
 * (fds) or 0. 0, or -1 when /proc/self/stat cannot be read. */
int sup_metrics_proc_read(sup_metrics_proc_t *out);

/* The listener (sup_metrics_http.c). */

/* Counts a connection the listener dropped (sup_metrics.c). */
void sup_metrics_http_dropped(sup_metrics_t *self, sup_metrics_http_drop_t why);

/* A request head, buf[0..len): 0 while it is incomplete (no empty line
 * yet, fewer than SUP_METRICS_HTTP_HEAD_MAX bytes); 1 for a GET or HEAD of
 * an absolute path, which goes into path (query string cut) with
 * *head_only set for HEAD; otherwise the HTTP status to answer: 400 (not
 * an HTTP/1 request line), 405 (another method), 431 (too long). */
int sup_metrics_http_parse(const char *buf, size_t len, char *path,
                           size_t pathcap, int *head_only);
/* How a new connection is let in when `same_addr` connections of its
 * peer address and `used` in all are open: DROP_NONE (into a free slot),
 * DROP_PER_ADDR (its address holds SUP_METRICS_HTTP_PER_ADDR: in place of
 * one of that address's connections), DROP_FULL (in place of one of the
 * table's). The one that goes is one already answered, else the oldest,
 * never one accepted in the same turn of accepts: when no other may go,
 * the new connection is refused instead, counted under the same reason. */
sup_metrics_http_drop_t sup_metrics_http_admit(size_t same_addr, size_t used);

sup_metrics_http_t *sup_metrics_http_start(sup_metrics_t *metrics,
                                           const char *addr, char *err,
                                           size_t errlen);
void sup_metrics_http_stop(sup_metrics_http_t **self_p);
int sup_metrics_http_port(const sup_metrics_http_t *self);

#endif
