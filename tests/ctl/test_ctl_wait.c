/*
 * Tests ctl_wait's pure part: when `enqueue --wait` says once that an
 * import is still pending (no supervisor has claimed it), as a table.
 * Failure classes: a supervisor that is down (class 13's neighbours aside)
 * leaves the import pending for ever; the hint is what tells the operator.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ctl_wait.h"

static void test_hint_due(void **state)
{
    static const struct {
        const char *status;
        long long pending_ms;
        int hinted, want;
    } cases[] = {
        {"pending", 0, 0, 0},
        {"pending", CTL_WAIT_HINT_MS - 1, 0, 0},
        {"pending", CTL_WAIT_HINT_MS, 0, 1},
        {"pending", CTL_WAIT_HINT_MS * 10, 0, 1},
        {"pending", CTL_WAIT_HINT_MS * 10, 1, 0}, /* said once */
        {"processing", CTL_WAIT_HINT_MS * 10, 0, 0},
        {"paused", CTL_WAIT_HINT_MS * 10, 0, 0},
        {NULL, CTL_WAIT_HINT_MS * 10, 0, 0},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int got = ctl_wait_hint_due(cases[i].status, cases[i].pending_ms,
                                    cases[i].hinted);
        if (got != cases[i].want)
            fail_msg("case %zu: %d, want %d", i, got, cases[i].want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hint_due),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
