/*
 * sup_retry: one retried database step of the loop (a progress write, the
 * repair of import logs, the follow-up claim, the queue sample): when it
 * may be tried again after failures, and when its failures are to be
 * reported. Facts in, verdict out, no I/O and no clock: the caller passes
 * the time and a random value, and logs and counts the report
 * (sup_metrics_step_escalated). tests/supervisor/test_sup_retry.c pins it.
 *
 * The waits back off and grow as sup_end_retry_rule's (jitter in [step/2,
 * step], step doubling from SUP_END_RETRY_BASE_MS to SUP_END_RETRY_CAP_MS),
 * so a step that fails is never tried again at every poll, nor a fleet of
 * supervisors in step. At the SUP_RETRY_REPORT_AFTER-th failure in a row
 * the verdict says "report", once; a success starts the count again.
 */
#ifndef SUP_RETRY_H
#define SUP_RETRY_H

#include <stdint.h>

#define SUP_RETRY_REPORT_AFTER 5

typedef struct sup_retry {
    int fails;      /* failures in a row so far */
    int64_t due_ms; /* the next try not before this (0: at once) */
} sup_retry_t;

/* 1 when the step may be tried at now_ms. */
int sup_retry_due(const sup_retry_t *r, int64_t now_ms);
/* The step failed at now_ms. Sets the next try's time; 1 exactly when
 * this failure is to be reported (the SUP_RETRY_REPORT_AFTER-th in a
 * row), else 0. Every try has the loop's one call bound (sup_end.h says
 * why no step of the loop needs more). */
int sup_retry_failed(sup_retry_t *r, int64_t now_ms, uint32_t random);
/* The step succeeded: no wait, and the count starts again. */
void sup_retry_ok(sup_retry_t *r);

#endif
