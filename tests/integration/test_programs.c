/*
 * The three programs' command lines: --help and --version answer with exit
 * 0, a bad argument gets exit 64 and one line on stderr, and a missing
 * setting exit 78 naming it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static int run(const char *cmd, char *out, size_t len)
{
    char full[1024];
    FILE *p;
    size_t n;
    int st;
    snprintf(full, sizeof(full),
             "env -u DEALIMPORT_MONGODB_URI %s/%s 2>&1 </dev/null",
             DEALIMPORT_BIN_DIR, cmd);
    p = popen(full, "r");
    assert_non_null(p);
    n = fread(out, 1, len - 1, p);
    out[n] = '\0';
    st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void test_help_version_usage(void **state)
{
    static const char *const progs[] = {"dealimport-supervisor",
                                        "dealimport-worker", "dealimportctl"};
    char cmd[256], out[8192];
    (void)state;
    for (int i = 0; i < 3; i++) {
        snprintf(cmd, sizeof(cmd), "%s --version", progs[i]);
        assert_int_equal(run(cmd, out, sizeof(out)), 0);
        assert_non_null(strstr(out, progs[i]));
        assert_non_null(strstr(out, DEALIMPORT_VERSION));

        snprintf(cmd, sizeof(cmd), "%s --help", progs[i]);
        assert_int_equal(run(cmd, out, sizeof(out)), 0);
        assert_non_null(strstr(out, "usage:"));

        snprintf(cmd, sizeof(cmd), "%s --no-such-option", progs[i]);
        assert_int_equal(run(cmd, out, sizeof(out)), 64);
        assert_int_equal(lines(out), 1);
        assert_non_null(strstr(out, "usage:"));
    }
}

static void test_missing_setting_exits_78(void **state)
{
    char out[8192];
    (void)state;
    assert_int_equal(run("dealimport-supervisor", out, sizeof(out)), 78);
    assert_non_null(strstr(out, "DEALIMPORT_MONGODB_URI is not set"));
    assert_int_equal(lines(out), 1);
    assert_int_equal(
        run("dealimport-worker --queue-id 507f1f77bcf86cd799439011", out,
            sizeof(out)),
        78);
    assert_non_null(strstr(out, "DEALIMPORT_MONGODB_URI is not set"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help_version_usage),
        cmocka_unit_test(test_missing_setting_exits_78),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
