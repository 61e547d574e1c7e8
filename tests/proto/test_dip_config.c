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
    char path[] = "/tmp/dip-config-XXXXXX";
    char spath[] = "/tmp/dip-secret-XXXXXX";
    int fd = mkstemp(path), sfd = mkstemp(spath);
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
    char err[256] = "", path[] = "/tmp/dip-config-ds-XXXXXX";
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
    fd = mkstemp(path);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_and_missing),
        cmocka_unit_test(test_bad_number_is_named),
        cmocka_unit_test(test_file_wins_and_secret_file),
        cmocka_unit_test(test_bad_storage_url),
        cmocka_unit_test(test_delete_source),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
