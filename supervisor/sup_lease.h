/*
 * sup_lease: the rules of the loop's leases, by the loop's own monotonic
 * clock, and the gate every database call of the loop passes. Facts in,
 * one verdict out, no I/O and no clock: the loop (sup_lease.c's other half,
 * declared in sup_loop_priv.h) gathers the facts and carries the verdicts
 * out, and tests/supervisor/test_sup_lease.c pins every rule.
 *
 * A lease of L ms that the lease keeper (sup_renew) could not renew has its
 * worker told to stop at L/3 before it runs out and killed at L/12 before:
 * the clock skew between supervisors tolerated (see the README). Renewals
 * come every L/6; with database calls bounded by L/3
 * (dip_mongo_client_new_bounded), one renewal always fits between a write
 * that extended the lease and the moment its worker must be stopped.
 */
#ifndef SUP_LEASE_H
#define SUP_LEASE_H

#include <stddef.h>
#include <stdint.h>

#include "sup_life.h"

typedef struct sup_lease_margins {
    int64_t stop_ms;        /* before the end: the worker is told to stop */
    int64_t kill_ms;        /* before the end: the worker is killed */
    int64_t renew_every_ms; /* between renewals and the operators' reads */
    int64_t db_pause_ms;    /* no database call this long after a failure */
} sup_lease_margins_t;

void sup_lease_margins(int64_t lease_ms, sup_lease_margins_t *out);

/* What the gate knows when a database call would start. A call may block
 * for call_ms; the loop must stay free to stop and kill workers in time. */
typedef struct sup_lease_gate_facts {
    int64_t now_ms, call_ms, lease_ms;
    int64_t pause_until_ms; /* set after a failed call */
    int stopping;           /* a shutdown runs ... */
    int64_t give_up_ms;     /* ... and gives up on hand-backs then */
    /* over the slots with a worker process: */
    int any_unheld;          /* one runs whose lease is not held */
    int64_t earliest_end_ms; /* the soonest lease end (INT64_MAX: none) */
} sup_lease_gate_facts_t;

typedef enum {
    SUP_LEASE_GATE_OPEN = 0,
    SUP_LEASE_GATE_PAUSED,    /* a call failed a moment ago */
    SUP_LEASE_GATE_SHUTDOWN,  /* the call could outlast the stop timeout */
    SUP_LEASE_GATE_UNHELD,    /* a worker told to stop for its lease lives */
    SUP_LEASE_GATE_TOO_CLOSE, /* the call could block past a stop margin */
} sup_lease_gate_t;

sup_lease_gate_t sup_lease_gate(const sup_lease_gate_facts_t *f);

/* One slot's lease, each turn of the loop. */
typedef struct sup_lease_slot_facts {
    int64_t now_ms, lease_ms;
    int running; /* a worker process exists */
    int exited;  /* reaped; its last messages may still be in flight */
    /* An end is being written (retried), or its final status is on the
     * queue document already: its writes are fenced, so they land only
     * while no one else has claimed the import, and need no lease. */
    int ending;
    sup_lease_t lease;
    int64_t lease_end_ms, kill_at_ms;
    /* The lease keeper's news (only read while the lease is held): the
     * end its last renewal holds to (0: none yet), the claim found gone. */
    int64_t renewed_until_ms;
    int lost;
} sup_lease_slot_facts_t;

typedef enum {
    SUP_LEASE_KEEP = 0,   /* nothing to do (lease_end_ms may have grown) */
    SUP_LEASE_LOSE,       /* the claim is gone: lose it (kill at once); free
                             the slot when no process is left (free_slot) */
    SUP_LEASE_STOP,       /* lapsing: tell the worker to stop */
    SUP_LEASE_END_EXITED, /* lapsing with the worker gone: end it now */
    SUP_LEASE_DROP,       /* lapsing with no worker: free the slot */
    SUP_LEASE_KILL,       /* a worker told to stop outlived kill_at */
} sup_lease_kind_t;

typedef struct sup_lease_verdict {
    sup_lease_kind_t kind;
    int64_t lease_end_ms; /* the slot's lease end from now on */
    sup_lease_t lease;    /* the slot's lease state from now on */
    int64_t kill_at_ms;   /* the slot's kill moment from now on */
    int free_slot;        /* LOSE: no process left, free the slot */
} sup_lease_verdict_t;

void sup_lease_decide(const sup_lease_slot_facts_t *f,
                      sup_lease_verdict_t *out);

/* The log's sentence for a lease that could not be renewed, left_ms before
 * (or, negative, after) its end by our clock: "the lease could not be
 * renewed and ends in 1200 ms" or "... and ended 3400 ms ago" (a loop
 * frozen past the end, SIGSTOP, sees it late). Always NUL-terminated. */
void sup_lease_lapse_sentence(int64_t left_ms, char *out, size_t len);

#endif
