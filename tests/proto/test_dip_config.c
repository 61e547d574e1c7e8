/*
 * Tests dip_config: defaults, environment and file precedence, and the one-line
 * errors that name the bad setting.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dip_config.h"
#include "it_tmp.h"

static void clear_env(void)
{
    unsetenv("DEALIMPORT_MONGODB_URI");
    unsetenv("DEALIMPORT_STORAGE_URL");
    unsetenv("DEALIMPORT_POLL_MS");
    unsetenv("APP_SECRET");
    unsetenv("APP_SECRET_FILE");
    unsetenv("DEALIMPORT_LOG_LEVEL");
}

static void test_defaults_and_missing(void **state)
{
    dip_config_t cfg;
    char err[256] = "";
    (void)state;
    clear_env();
    dip_config_init(&cfg);
    assert_int_equal(
        dip_config_load(&cfg, NULL, DIP_NEED_MONGO, err, sizeof(err)), -1);
    assert_string_equal(err, "DEALIMPORT_MONGODB_URI is not set");
    dip_config_release(&cfg);

    setenv("DEALIMPORT_MONGODB_URI", "mongodb://127.0.0.1:1/crm", 1);
    dip_config_init(&cfg);
    assert_int_equal(
        dip_config_load(&cfg, NULL, DIP_NEED_MONGO, err, sizeof(err)), 0);
    assert_int_equal(cfg.poll_ms, 5000);
    assert_int_equal(cfg.batch_rows, 1000);
    assert_int_equal(cfg.row_attempts, 3);
    assert_string_equal(cfg.s3_region, "us-east-1");
    assert_non_null(cfg.runtime_dir);
    dip_config_release(&cfg);
}

static void test_bad_number_is_named(void **state)
{
    dip_config_t cfg;
    char err[256] = "";
    (void)state;
    clear_env();
    setenv("DEALIMPORT_POLL_MS", "5s", 1);
    dip_config_init(&cfg);
    assert_int_equal(dip_config_load(&cfg, NULL, 0, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "DEALIMPORT_POLL_MS: '5s'"));
    dip_config_release(&cfg);
    unsetenv("DEALIMPORT_POLL_MS");
}

static void test_file_wins_and_secret_file(void **state)
{
    char path[512];
    char spath[512];
    int fd = mkstemp(it_tmp_name(path, sizeof(path), "dip-config-XXXXXX")),
        sfd = mkstemp(it_tmp_name(spath, sizeof(spath), "dip-secret-XXXXXX"));
    FILE *f;
    dip_config_t cfg;
    char err[256] = "";
    char *env[DIP_CONFIG_ENV_MAX];
    int n, found = 0;
    (void)state;
    clear_env();
    assert_true(fd >= 0 && sfd >= 0);
    assert_int_equal(write(sfd, "s3cret\n", 7), 7);
    close(sfd);
    f = fdopen(fd, "w");
    fprintf(f,
            "# comment\nDEALIMPORT_MONGODB_URI=mongodb://h/x\n"
            "export DEALIMPORT_POLL_MS = 250\n"
            "DEALIMPORT_STORAGE_URL=\"file:///srv/csv\"\n"
            "APP_SECRET_FILE=%s\n",
            spath);
    fclose(f);
    setenv("DEALIMPORT_POLL_MS", "9000", 1);
    dip_config_init(&cfg);
    assert_int_equal(
        dip_config_load(&cfg, path,
                        DIP_NEED_MONGO | DIP_NEED_STORAGE | DIP_NEED_SECRET,
                        err, sizeof(err)),
        0);
    assert_int_equal(cfg.poll_ms, 250);
    assert_string_equal(cfg.storage_url, "file:///srv/csv");
    assert_string_equal(cfg.app_secret, "s3cret");
    n = dip_config_to_env(&cfg, env);
    for (int i = 0; i < n; i++) {
        if (strcmp(env[i], "DEALIMPORT_POLL_MS=250") == 0)
            found++;
        free(env[i]);
    }
    assert_int_equal(found, 1);
    dip_config_release(&cfg);
    unlink(path);
    unlink(spath);
    unsetenv("DEALIMPORT_POLL_MS");
}

static void test_bad_storage_url(void **state)
{
    dip_config_t cfg;
    char err[256] = "";
    (void)state;
    clear_env();
    setenv("DEALIMPORT_STORAGE_URL", "http://example/", 1);
    dip_config_init(&cfg);
    assert_int_equal(
        dip_config_load(&cfg, NULL, DIP_NEED_STORAGE, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "DEALIMPORT_STORAGE_URL"));
    dip_config_release(&cfg);
}

static void test_delete_source(void **state)
{
    dip_config_t cfg;
    char err[256] = "", path[512];
    FILE *f;
    int fd;
    (void)state;
    clear_env();
    dip_config_init(&cfg);
    assert_int_equal(cfg.delete_source, DIP_DELETE_SOURCE_NEVER);
    setenv("DEALIMPORT_DELETE_SOURCE", "completed", 1);
    assert_int_equal(dip_config_load(&cfg, NULL, 0, err, sizeof(err)), 0);
    assert_int_equal(cfg.delete_source, DIP_DELETE_SOURCE_COMPLETED);
    dip_config_release(&cfg);

    /* The file wins, as for every setting. */
    fd = mkstemp(it_tmp_name(path, sizeof(path), "dip-config-ds-XXXXXX"));
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    fputs("DEALIMPORT_DELETE_SOURCE=never\n", f);
    fclose(f);
    dip_config_init(&cfg);
    assert_int_equal(dip_config_load(&cfg, path, 0, err, sizeof(err)), 0);
    assert_int_equal(cfg.delete_source, DIP_DELETE_SOURCE_NEVER);
    dip_config_release(&cfg);
    unlink(path);

    setenv("DEALIMPORT_DELETE_SOURCE", "always", 1);
    dip_config_init(&cfg);
    assert_int_equal(dip_config_load(&cfg, NULL, 0, err, sizeof(err)), -1);
    assert_string_equal(
        err, "DEALIMPORT_DELETE_SOURCE: 'always' is not never or completed");
    dip_config_release(&cfg);
    unsetenv("DEALIMPORT_DELETE_SOURCE");
}

/* A file of the given text; path receives its name. */
static void write_file(char *path, const char *text)
{
    int fd = mkstemp(path);
    FILE *f;
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
}

/* The suggestion is a pure decision over the list of settings: a typo
 * within 2 edits (3 for long names) gets the known name, a far or a known
 * name none. */
static void test_suggest(void **state)
{
    static const struct {
        const char *name, *want;
    } cases[] = {
        {"DEALIMPORT_MAX_WORKER", "DEALIMPORT_MAX_WORKERS"},
        {"DEALIMPORT_MAX_WOKRERS", "DEALIMPORT_MAX_WORKERS"},
        {"DEALIMPORT_POLL_SM", "DEALIMPORT_POLL_MS"},
        {"DEALIMPORT_MONGO_URI", "DEALIMPORT_MONGODB_URI"},
        {"DEALIMPORT_S3_SESSION_TOKENS", "DEALIMPORT_S3_SESSION_TOKEN"},
        {"APP_SECRT", "APP_SECRET"},
        {"DEALIMPORT_MAX_WORKERS", NULL},
        {"DEALIMPORT_TEST_MONGODB_URI", NULL},
        {"DEALIMPORT_DEVSTACK_DIR", NULL},
        {"TZ", NULL},
        {"", NULL},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *got = dip_config_suggest(cases[i].name);
        if (cases[i].want == NULL)
            assert_null(got);
        else
            assert_string_equal(got, cases[i].want);
    }
    assert_int_equal(dip_config_known("DEALIMPORT_CONFIG"), 1);
    assert_int_equal(dip_config_known("DEALIMPORT_MAX_WORKER"), 0);
}

/* In a file every unknown DEALIMPORT_* name stops the load, with the
 * likely name when there is one; other names pass unless close to a
 * setting; in the environment only a typo of a setting stops it. */
static void test_unknown_names(void **state)
{
    char p1[512], p2[512];
    char p3[512];
    dip_config_t cfg;
    char err[512] = "";
    (void)state;
    clear_env();
    write_file(it_tmp_name(p1, sizeof(p1), "dip-config-u1-XXXXXX"),
               "DEALIMPORT_POLL_MS=300\nDEALIMPORT_MAX_WORKER=8\n");
    dip_config_init(&cfg);
    assert_int_equal(dip_config_load(&cfg, p1, 0, err, sizeof(err)), -1);
    assert_non_null(strstr(err, ":2: unknown setting 'DEALIMPORT_MAX_WORKER'; "
                                "did you mean 'DEALIMPORT_MAX_WORKERS'?"));
    dip_config_release(&cfg);

    write_file(it_tmp_name(p2, sizeof(p2), "dip-config-u2-XXXXXX"),
               "DEALIMPORT_FROBNICATE=1\n");
    dip_config_init(&cfg);
    assert_int_equal(dip_config_load(&cfg, p2, 0, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "unknown setting 'DEALIMPORT_FROBNICATE' "
                                "(dealimport.env(5) lists the settings)"));
    dip_config_release(&cfg);

    write_file(it_tmp_name(p3, sizeof(p3), "dip-config-u3-XXXXXX"),
               "TZ=UTC\nAPP_SECRT=x\n");
    dip_config_init(&cfg);
    assert_int_equal(dip_config_load(&cfg, p3, 0, err, sizeof(err)), -1);
    assert_non_null(strstr(err, ":2: unknown setting 'APP_SECRT'; did you "
                                "mean 'APP_SECRET'?"));
    dip_config_release(&cfg);

    setenv("DEALIMPORT_TEST_SOMETHING", "1", 1);
    dip_config_init(&cfg);
    assert_int_equal(dip_config_load(&cfg, NULL, 0, err, sizeof(err)), 0);
    dip_config_release(&cfg);
    setenv("DEALIMPORT_LEASE", "30", 1);
    dip_config_init(&cfg);
    assert_int_equal(dip_config_load(&cfg, NULL, 0, err, sizeof(err)), -1);
    assert_string_equal(err, "environment: unknown setting 'DEALIMPORT_LEASE'; "
                             "did you mean 'DEALIMPORT_LEASE_S'?");
    dip_config_release(&cfg);
    unsetenv("DEALIMPORT_LEASE");
    unsetenv("DEALIMPORT_TEST_SOMETHING");
    unlink(p1);
    unlink(p2);
    unlink(p3);
}

/* What a file may hold besides KEY=VALUE lines. A byte-order mark is
 * skipped; a line too long for the reader, a folder, an endless device and
 * a secret file that cannot be read or holds nothing each stop the load
 * with a line naming what is wrong (not "not set", and not a setting made
 * of a long line's tail). Failure classes: a partial read (a long line cut
 * in two) and an input that never ends (/dev/zero) are walked here. */
static void test_file_shapes(void **state)
{
    char bom[512], lng[512];
    char sec[512], empty[512];
    char dir[512], zero[512];
    char text[6000];
    dip_config_t cfg;
    char err[512] = "";
    (void)state;
    clear_env();
    write_file(it_tmp_name(bom, sizeof(bom), "dip-config-bom-XXXXXX"),
               "\xef\xbb\xbf"
               "DEALIMPORT_POLL_MS=300\r\n");
    dip_config_init(&cfg);
    assert_int_equal(dip_config_load(&cfg, bom, 0, err, sizeof(err)), 0);
    assert_int_equal(cfg.poll_ms, 300);
    dip_config_release(&cfg);

    /* A 5,000-byte secret whose tail looks like a setting. */
    memcpy(text, "APP_SECRET=", 11);
    memset(text + 11, 'a', 4084);
    snprintf(text + 4095, sizeof(text) - 4095,
             "DEALIMPORT_POLL_MS=1%0900d\nDEALIMPORT_POLL_MS=400\n", 0);
    write_file(it_tmp_name(lng, sizeof(lng), "dip-config-l-XXXXXX"), text);
    dip_config_init(&cfg);
    assert_int_equal(dip_config_load(&cfg, lng, 0, err, sizeof(err)), -1);
    assert_non_null(strstr(err, ":1: line longer than 4095 bytes"));
    dip_config_release(&cfg);

    assert_non_null(
        mkdtemp(it_tmp_name(dir, sizeof(dir), "dip-config-d-XXXXXX")));
    dip_config_init(&cfg);
    assert_int_equal(dip_config_load(&cfg, dir, 0, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "Is a directory"));
    dip_config_release(&cfg);

    unlink(it_tmp_name(zero, sizeof(zero), "dip-config-z-XXXXXX"));
    assert_int_equal(symlink("/dev/zero", zero), 0);
    dip_config_init(&cfg);
    assert_int_equal(dip_config_load(&cfg, zero, 0, err, sizeof(err)), -1);
    assert_non_null(strstr(err, ":1: holds a NUL byte"));
    dip_config_release(&cfg);

    write_file(it_tmp_name(empty, sizeof(empty), "dip-config-e-XXXXXX"), "");
    snprintf(text, sizeof(text), "APP_SECRET_FILE=%s\n", dir);
    write_file(it_tmp_name(sec, sizeof(sec), "dip-config-s-XXXXXX"), text);
    dip_config_init(&cfg);
    assert_int_equal(dip_config_load(&cfg, sec, 0, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "APP_SECRET_FILE: cannot read"));
    assert_non_null(strstr(err, "Is a directory"));
    dip_config_release(&cfg);
    unlink(sec);
    memcpy(sec + strlen(sec) - 6, "XXXXXX", 6);
    snprintf(text, sizeof(text), "APP_SECRET_FILE=%s\n", empty);
    write_file(sec, text);
    dip_config_init(&cfg);
    assert_int_equal(dip_config_load(&cfg, sec, 0, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "APP_SECRET_FILE: "));
    assert_non_null(strstr(err, "' is empty"));
    dip_config_release(&cfg);

    unlink(bom);
    unlink(lng);
    unlink(sec);
    unlink(empty);
    unlink(zero);
    rmdir(dir);
}

/* --check-config: what a supervisor needs, from the file. */
static void test_check(void **state)
{
    char good[512], bad[512];
    char err[512] = "";
    (void)state;
    clear_env();
    write_file(it_tmp_name(good, sizeof(good), "dip-config-g-XXXXXX"),
               "DEALIMPORT_MONGODB_URI=mongodb://h/crm\n"
               "DEALIMPORT_STORAGE_URL=file:///srv/csv\n"
               "APP_SECRET=x\nDEALIMPORT_MAX_WORKERS=8\n");
    write_file(it_tmp_name(bad, sizeof(bad), "dip-config-b-XXXXXX"),
               "DEALIMPORT_MONGODB_URI=mongodb://h/crm\n"
               "DEALIMPORT_STORAGE_URL=file:///srv/csv\n");
    assert_int_equal(dip_config_check(good, err, sizeof(err)), 0);
    assert_int_equal(dip_config_check(bad, err, sizeof(err)), -1);
    assert_string_equal(err, "APP_SECRET (or APP_SECRET_FILE) is not set");
    assert_int_equal(dip_config_check("/nonexistent/x.env", err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "cannot read '/nonexistent/x.env'"));
    unlink(good);
    unlink(bad);
}

/* A client reads DEALIMPORT_CONFIG's file under the environment; without
 * it (and without the package's file) the environment alone. */
static void test_client_file(void **state)
{
    char path[512];
    dip_config_t cfg;
    char err[512] = "";
    (void)state;
    clear_env();
    write_file(it_tmp_name(path, sizeof(path), "dip-config-c-XXXXXX"),
               "DEALIMPORT_POLL_MS=300\nDEALIMPORT_RUNTIME_DIR=/x\n");
    setenv("DEALIMPORT_CONFIG", path, 1);
    setenv("DEALIMPORT_RUNTIME_DIR", "/y", 1);
    dip_config_init(&cfg);
    assert_int_equal(
        dip_config_load(&cfg, NULL, DIP_CONFIG_CLIENT, err, sizeof(err)), 0);
    assert_int_equal(cfg.poll_ms, 300);
    assert_string_equal(cfg.runtime_dir, "/x");
    dip_config_release(&cfg);
    unsetenv("DEALIMPORT_RUNTIME_DIR");
    unsetenv("DEALIMPORT_CONFIG");
    unlink(path);
}

/* The session token: one of the variable and the file, the file readable. */
static void test_session_token(void **state)
{
    dip_config_t cfg;
    char err[512] = "";
    (void)state;
    clear_env();
    setenv("DEALIMPORT_S3_SESSION_TOKEN", "tok", 1);
    setenv("DEALIMPORT_S3_SESSION_TOKEN_FILE", "/nonexistent/token", 1);
    dip_config_init(&cfg);
    assert_int_equal(dip_config_load(&cfg, NULL, 0, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "are both set"));
    dip_config_release(&cfg);
    unsetenv("DEALIMPORT_S3_SESSION_TOKEN");
    dip_config_init(&cfg);
    assert_int_equal(dip_config_load(&cfg, NULL, 0, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "DEALIMPORT_S3_SESSION_TOKEN_FILE: cannot "
                                "read '/nonexistent/token'"));
    dip_config_release(&cfg);
    unsetenv("DEALIMPORT_S3_SESSION_TOKEN_FILE");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_and_missing),
        cmocka_unit_test(test_bad_number_is_named),
        cmocka_unit_test(test_file_wins_and_secret_file),
        cmocka_unit_test(test_bad_storage_url),
        cmocka_unit_test(test_delete_source),
        cmocka_unit_test(test_suggest),
        cmocka_unit_test(test_unknown_names),
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_file_shapes),
        cmocka_unit_test(test_client_file),
        cmocka_unit_test(test_session_token),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
