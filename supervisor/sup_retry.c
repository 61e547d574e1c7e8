/*
 * sup_retry: the rule of a retried step of the loop (sup_retry.h).
 */
#include "sup_retry.h"
#include "sup_end.h"

int sup_retry_due(const sup_retry_t *r, int64_t now_ms)
{
    return now_ms >= r->due_ms;
}

int sup_retry_failed(sup_retry_t *r, int64_t now_ms, uint32_t random)
{
    sup_end_retry_facts_t f;
    sup_end_retry_t v;
    if (r->fails < INT32_MAX)
        r->fails++;
    f.tries = r->fails;
    f.random = random;
    sup_end_retry_rule(&f, &v);
    r->due_ms = now_ms + v.delay_ms;
    return r->fails == SUP_RETRY_REPORT_AFTER;
}

void sup_retry_ok(sup_retry_t *r)
{
    r->fails = 0;
    r->due_ms = 0;
}
