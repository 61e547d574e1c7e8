/*
 * sup_nofile: the soft descriptor limit the supervisor sets for itself,
 * table-driven (sup_nofile_target), and the raise on this process.
 *
 * Failure classes: 13 (a flood of handshakes): systemd's 1024 becomes
 * SUP_NOFILE_WANT when the hard limit allows; 9 (shared resources): an
 * operator's larger limit is never lowered, a hard limit never passed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "sup_nofile.h"

static void test_target(void **state)
{
    static const struct {
        rlim_t soft, hard, want;
    } cases[] = {
        {1024, 524288, SUP_NOFILE_WANT}, /* systemd's default */
        {1024, 4096, 4096},              /* a hard limit below the want */
        {1024, 1024, 1024},              /* nothing to raise to */
        {65536, 524288, 65536},          /* an operator's LimitNOFILE= */
        {SUP_NOFILE_WANT, 524288, SUP_NOFILE_WANT},
        {256, RLIM_INFINITY, SUP_NOFILE_WANT},
        {RLIM_INFINITY, RLIM_INFINITY, RLIM_INFINITY},
        {20000, 20000, 20000},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(sup_nofile_target(cases[i].soft, cases[i].hard),
                         cases[i].want);
}

static void test_raise(void **state)
{
    struct rlimit saved, lim, now;
    rlim_t from = 0, to = 0;
    char err[256];
    (void)state;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
    lim = saved;
    lim.rlim_cur = 512;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &lim), 0);
    assert_int_equal(sup_nofile_raise(&from, &to, err, sizeof(err)),
                     sup_nofile_target(512, saved.rlim_max) > 512 ? 1 : 0);
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &now), 0);
    assert_int_equal(now.rlim_cur, sup_nofile_target(512, saved.rlim_max));
    assert_int_equal(now.rlim_max, saved.rlim_max);
    /* again: nothing left to raise */
    assert_int_equal(sup_nofile_raise(&from, &to, err, sizeof(err)), 0);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_target),
        cmocka_unit_test(test_raise),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
