/*
 * Tests ctl_list's pure part: what --since accepts, as a table of inputs
 * and the times they mean (or a refusal).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ctl_list.h"

/* 2026-01-05T12:00:00Z */
#define NOW 1767614400000LL

static void test_parse_since(void **state)
{
    static const struct {
        const char *in;
        int rc;
        long long want;
    } cases[] = {
        {"2026-01-05", 0, 1767571200000LL},
        {"2026-01-05T10:30Z", 0, 1767609000000LL},
        {"2026-01-05T10:30:15Z", 0, 1767609015000LL},
        {"1970-01-01", 0, 0},
        {"30m", 0, NOW - 1800000LL},
        {"12h", 0, NOW - 43200000LL},
        {"7d", 0, NOW - 604800000LL},
        {"0d", 0, NOW},
        {"2026-02-30", -3, 0}, /* no such day */
        {"2026-02-29", -3, 0},
        {"2024-02-29", 0, 1709164800000LL},
        {"1969-12-31", -2, 0}, /* a real date, before the epoch */
        {"0000-01-01", -2, 0},
        {"2026-01-05T10:30", -1, 0}, /* a time needs its Z */
        {"2026-01-05T10:30+01", -1, 0},
        {"2026-01-05 junk", -1, 0},
        {"7w", -1, 0},
        {"-7d", -1, 0},
        {"d", -1, 0},
        {"99999999999d", -1, 0},
        {"", -1, 0},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        long long got = -42;
        int rc = ctl_list_parse_since(cases[i].in, NOW, &got);
        if (rc != cases[i].rc || (rc == 0 && got != cases[i].want))
            fail_msg("'%s': rc %d, %lld; want rc %d, %lld", cases[i].in, rc,
                     got, cases[i].rc, cases[i].want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_since),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
