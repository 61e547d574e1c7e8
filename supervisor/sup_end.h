/*
 * sup_end: the rule for an end of an import that could not be written yet
 * (the database away or slow): when to try again, and how long the next
 * try may take. Facts in, one verdict out, no I/O and no clock; the loop's
 * side of sup_end.c (declared in sup_loop_priv.h) writes the ends and
 * keeps such a slot ENDING until its end lands, and
 * tests/supervisor/test_sup_end.c pins the rule.
 *
 * The waits back off: try n waits a random time in [step/2, step], step =
 * SUP_END_RETRY_BASE_MS * 2^(n-1) up to SUP_END_RETRY_CAP_MS, so a fleet of
 * supervisors that all lost the database at once does not come back in
 * step. Each try has the loop's one call bound (the client's socket
 * timeout, a part of the lease, with maxTimeMS below it): the loop may not
 * wait longer while it holds leases, so no call of the end may grow with
 * the import. None does: the figures are the worker's exact accounting,
 * and the one read (the deals written past the last report after a crash,
 * sup_store_finish) costs at most the batches that were in flight. A
 * longer bound on a later try would need a client of its own off the
 * loop; no step of the end needs one.
 */
#ifndef SUP_END_H
#define SUP_END_H

#include <stdint.h>

#define SUP_END_RETRY_BASE_MS 5000
#define SUP_END_RETRY_CAP_MS 60000

typedef struct sup_end_retry_facts {
    int tries;       /* failed tries of this end so far, >= 1 */
    uint32_t random; /* any value; the jitter is taken from it */
} sup_end_retry_facts_t;

typedef struct sup_end_retry {
    int64_t delay_ms; /* the next try waits this long */
} sup_end_retry_t;

void sup_end_retry_rule(const sup_end_retry_facts_t *f, sup_end_retry_t *out);

#endif
