/*
 * wrk_fence: the worker's own check that the claim it was started for is
 * still the import's claim. The supervisor passes its owner id and the
 * claim's epoch (the queue document's `claims` after the claim); at least
 * every third of the lease, and before any write once a check is due, the
 * worker reads {claimed_by, claims, status} of its queue document and stops,
 * without another write, when they are not (owner, epoch, processing)
 * any more. This module decides; the read is wrk_db_fence_read.
 */
#ifndef WRK_FENCE_H
#define WRK_FENCE_H

#include <stdint.h>

#include <bson/bson.h>

typedef struct wrk_fence {
    char owner[300]; /* "" when the worker was started without one */
    int64_t epoch;
    int64_t period_ms;     /* between checks: a third of the lease */
    int64_t next_check_ms; /* monotonic */
    int64_t confirmed_ms;  /* when the claim was last seen ours */
} wrk_fence_t;

typedef enum {
    WRK_FENCE_OURS = 0, /* the claim is still ours: go on */
    WRK_FENCE_GONE,     /* another claim, or none: stop without writing */
    WRK_FENCE_UNKNOWN,  /* the read failed: check again before writing */
} wrk_fence_verdict_t;

/* owner NULL or "": no fencing (every check says OURS). */
void wrk_fence_init(wrk_fence_t *f, const char *owner, int64_t epoch,
                    long lease_s, int64_t now_ms);

/* 1 when a check is due (before the next write). */
int wrk_fence_due(const wrk_fence_t *f, int64_t now_ms);

/* Judges what the read found: doc is the queue document (or just its
 * claimed_by, claims and status); NULL with read_ok 1 when it no longer
 * exists; read_ok 0 when the read failed. A verdict of OURS schedules the
 * next check a period on; UNKNOWN leaves it due. */
wrk_fence_verdict_t wrk_fence_judge(wrk_fence_t *f, const bson_t *doc,
                                    int read_ok, int64_t now_ms);

#endif
