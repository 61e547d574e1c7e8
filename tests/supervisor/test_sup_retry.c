/*
 * sup_retry: a retried step of the loop, one table row per failure in a
 * row: when the next try is due, and whether this failure is the one
 * reported.
 *
 * Failure classes: a database that is away backs off to one try a
 * minute (never at every poll) and is reported once, at the fifth failure
 * in a row, not at every one; a success starts the count again, so a
 * later run of failures is reported again.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "sup_retry.h"

typedef struct row {
    int ok;         /* this step succeeds (the rest is ignored) */
    int64_t now_ms; /* when it fails */
    uint32_t random;
    int report;     /* want: reported */
    int64_t due_ms; /* want */
} row_t;

static const row_t rows[] = {
    {0, 1000, 0, 0, 1000 + 2500},
    {0, 4000, 5000, 0, 4000 + 10000},
    {0, 20000, 0, 0, 20000 + 10000},
    {0, 40000, 0, 0, 40000 + 20000},
    {0, 70000, 0, 1, 70000 + 30000},   /* the fifth: reported */
    {0, 100000, 0, 0, 100000 + 30000}, /* once */
    {0, 200000, 30000, 0, 200000 + 60000},
    {1, 0, 0, 0, 0}, /* a success: due at once */
    {0, 300000, 0, 0, 300000 + 2500},
    {0, 303000, 0, 0, 303000 + 5000},
    {0, 310000, 0, 0, 310000 + 10000},
    {0, 320000, 0, 0, 320000 + 20000},
    {0, 340000, 0, 1, 340000 + 30000}, /* a new run: again */
};

static void test_rule(void **state)
{
    sup_retry_t r = {0};
    (void)state;
    assert_true(sup_retry_due(&r, 0));
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const row_t *w = &rows[i];
        int report;
        if (w->ok) {
            sup_retry_ok(&r);
            assert_int_equal(r.fails, 0);
            assert_true(sup_retry_due(&r, 0));
            continue;
        }
        report = sup_retry_failed(&r, w->now_ms, w->random);
        if (report != w->report || r.due_ms != w->due_ms)
            fail_msg("row %zu: got report %d due %lld, want %d %lld", i, report,
                     (long long)r.due_ms, w->report, (long long)w->due_ms);
        assert_false(sup_retry_due(&r, w->now_ms));
        assert_false(sup_retry_due(&r, r.due_ms - 1));
        assert_true(sup_retry_due(&r, r.due_ms));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_rule)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
