/*
 * sup_end: the retry-later rule of an end that could not be written, one
 * table row per try: the wait's window grows (doubling from 5 s up to a
 * minute) with a random part in its upper half. Each try has the loop's
 * one call bound (sup_end.h says why none needs more).
 *
 * Failure classes: a database that is away (every try fails the same way)
 * backs off to one try a minute and no further; a fleet of supervisors that
 * lost the database together spreads its tries (the random part), which the
 * rows with the smallest and largest random values pin at both ends.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>

#include "sup_end.h"

typedef struct row {
    int tries;
    uint32_t random;
    int64_t delay_ms;
} row_t;

static const row_t rows[] = {
    /* the first try waits 2.5 to 5 s */
    {1, 0, 2500},
    {1, 2500, 5000},
    {1, 2501, 2500}, /* the random value wraps */
    {2, 0, 5000},
    {2, 5000, 10000},
    {3, 0, 10000},
    {3, 10000, 20000},
    {4, 0, 20000},
    {4, 20000, 40000},
    {5, 0, 30000}, /* the window at its cap: a minute */
    {5, 30000, 60000},
    {6, 30000, 60000},
    {1000, 4000000000u, 30000 + 4000000000u % 30001},
};

static void test_rule(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const row_t *r = &rows[i];
        sup_end_retry_facts_t f = {r->tries, r->random};
        sup_end_retry_t out;
        sup_end_retry_rule(&f, &out);
        if (out.delay_ms != r->delay_ms)
            fail_msg("row %zu (try %d): got delay %lld, want %lld", i, r->tries,
                     (long long)out.delay_ms, (long long)r->delay_ms);
    }
}

/* Every random value keeps the wait inside its window. */
static void test_window(void **state)
{
    (void)state;
    for (int tries = 1; tries <= 8; tries++) {
        int64_t lo = INT64_MAX, hi = 0;
        for (uint32_t x = 0; x < 70000; x += 7) {
            sup_end_retry_facts_t f = {tries, x * 61417u};
            sup_end_retry_t out;
            sup_end_retry_rule(&f, &out);
            lo = out.delay_ms < lo ? out.delay_ms : lo;
            hi = out.delay_ms > hi ? out.delay_ms : hi;
        }
        assert_true(lo >= SUP_END_RETRY_BASE_MS / 2);
        assert_true(hi <= SUP_END_RETRY_CAP_MS);
        assert_true(hi > lo); /* the jitter spreads them */
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rule),
        cmocka_unit_test(test_window),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
