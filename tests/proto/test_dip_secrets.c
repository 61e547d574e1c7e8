/*
 * Tests dip_secrets and the environment dip_config hands a child: the
 * environment holds no secret; the secrets text carries the URI, the S3
 * secret key and the spawn secret (never APP_SECRET) and reads back through a
 * real pipe into a fresh config; the descriptor is closed whatever happens;
 * a value with a line break, an unknown key, a bad spawn secret, a cut last
 * line and too much text are refused with one line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dip_config.h"
#include "dip_secrets.h"

static const char uri[] = "mongodb://app:pa55word@db.example:27017/crm";
static const char spawn[] =
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

static void full_config(dip_config_t *cfg)
{
    dip_config_init(cfg);
    cfg->mongodb_uri = strdup(uri);
    cfg->app_secret = strdup("app-secret-value");
    cfg->s3_secret_key = strdup("s3-secret-value");
    cfg->s3_access_key = strdup("AKIDEXAMPLE");
    cfg->storage_url = strdup("s3://deals");
    cfg->runtime_dir = strdup("/run/dealimport");
}

/* A pipe holding text, write end closed: the read end. */
static int pipe_with(const char *text, size_t len)
{
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    assert_int_equal(write(p[1], text, len), (ssize_t)len);
    close(p[1]);
    return p[0];
}

static int is_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0 || errno != EBADF;
}

static void test_env_has_no_secret(void **state)
{
    dip_config_t cfg;
    char *env[DIP_CONFIG_ENV_MAX];
    int n, storage = 0;
    (void)state;
    full_config(&cfg);
    n = dip_config_to_env(&cfg, env);
    for (int i = 0; i < n; i++) {
        assert_null(strstr(env[i], "pa55word"));
        assert_null(strstr(env[i], "app-secret-value"));
        assert_null(strstr(env[i], "s3-secret-value"));
        assert_int_not_equal(strncmp(env[i], "DEALIMPORT_MONGODB_URI=", 23), 0);
        assert_int_not_equal(strncmp(env[i], "APP_SECRET=", 11), 0);
        storage += strcmp(env[i], "DEALIMPORT_STORAGE_URL=s3://deals") == 0;
        storage += strcmp(env[i], "DEALIMPORT_S3_ACCESS_KEY=AKIDEXAMPLE") == 0;
        free(env[i]);
    }
    /* The settings that are no secret still go. */
    assert_int_equal(storage, 2);
    dip_config_release(&cfg);
}

static void test_round_trip_through_a_pipe(void **state)
{
    dip_config_t cfg, got;
    char err[256] = "", hex[DIP_CONFIG_SPAWN_SECRET_LEN + 1];
    char *text;
    int fd;
    (void)state;
    full_config(&cfg);
    text = dip_secrets_format(&cfg, spawn, err, sizeof(err));
    assert_non_null(text);
    assert_string_equal(text,
                        "DEALIMPORT_MONGODB_URI=mongodb://app:pa55word@"
                        "db.example:27017/crm\n"
                        "DEALIMPORT_S3_SECRET_KEY=s3-secret-value\n"
                        "DEALIMPORT_SPAWN_SECRET=0123456789abcdef0123456789"
                        "abcdef0123456789abcdef0123456789abcdef\n");
    fd = pipe_with(text, strlen(text));
    dip_secrets_wipe(text);

    dip_config_init(&got);
    assert_int_equal(dip_secrets_read(&got, fd, err, sizeof(err)), 0);
    assert_false(is_open(fd));
    assert_string_equal(got.mongodb_uri, uri);
    assert_string_equal(got.s3_secret_key, "s3-secret-value");
    assert_string_equal(got.spawn_secret, spawn);
    assert_null(got.app_secret); /* a worker signs nothing */
    dip_config_release(&got);
    assert_string_equal(got.spawn_secret, "");

    /* Fresh secrets differ and are hex. */
    assert_int_equal(dip_secrets_spawn_secret(hex), 0);
    assert_int_equal(strlen(hex), DIP_CONFIG_SPAWN_SECRET_LEN);
    assert_int_equal(strspn(hex, "0123456789abcdef"),
                     DIP_CONFIG_SPAWN_SECRET_LEN);
    {
        char other[DIP_CONFIG_SPAWN_SECRET_LEN + 1];
        assert_int_equal(dip_secrets_spawn_secret(other), 0);
        assert_string_not_equal(hex, other);
    }
    /* APP_SECRET is accepted from the channel; an empty text is nothing. */
    dip_config_init(&got);
    fd = pipe_with("APP_SECRET=x\n\n", 14);
    assert_int_equal(dip_secrets_read(&got, fd, err, sizeof(err)), 0);
    assert_string_equal(got.app_secret, "x");
    dip_config_release(&got);
    dip_config_init(&got);
    fd = pipe_with("", 0);
    assert_int_equal(dip_secrets_read(&got, fd, err, sizeof(err)), 0);
    assert_null(got.mongodb_uri);
    dip_config_release(&got);
    dip_config_release(&cfg);
}

static void refused(const char *text, size_t len, const char *want)
{
    dip_config_t got;
    char err[256] = "";
    int fd = pipe_with(text, len);
    dip_config_init(&got);
    assert_int_equal(dip_secrets_read(&got, fd, err, sizeof(err)), -1);
    assert_false(is_open(fd));
    assert_string_equal(err, want);
    dip_config_release(&got);
}

static void test_refusals(void **state)
{
    dip_config_t cfg;
    char err[256] = "";
    char *big;
    (void)state;
    refused("DEALIMPORT_PATH=/x\n", 19,
            "--secrets-fd: unknown key 'DEALIMPORT_PATH'");
    refused("no equals sign\n", 15, "--secrets-fd: a line without '='");
    refused("DEALIMPORT_SPAWN_SECRET=abc\n", 28,
            "--secrets-fd: DEALIMPORT_SPAWN_SECRET is not 64 lowercase hex "
            "digits");
    refused("DEALIMPORT_MONGODB_URI=mongodb://h/x", 36,
            "--secrets-fd: the last line is cut");
    refused("APP_SECRET=a\0b\n", 15, "--secrets-fd: a NUL byte in the text");
    big = malloc(DIP_SECRETS_MAX + 100);
    assert_non_null(big);
    memset(big, 'a', DIP_SECRETS_MAX + 100);
    memcpy(big, "APP_SECRET=", 11);
    {
        /* More than a pipe buffer needs a writer that keeps writing: a
         * child, so the reader sees it arrive in pieces. */
        int p[2];
        pid_t pid;
        dip_config_t got;
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(p[0]);
            (void)!write(p[1], big, DIP_SECRETS_MAX + 100);
            _exit(0);
        }
        close(p[1]);
        dip_config_init(&got);
        assert_int_equal(dip_secrets_read(&got, p[0], err, sizeof(err)), -1);
        assert_string_equal(err, "--secrets-fd: more than 60000 bytes");
        dip_config_release(&got);
        assert_int_equal(waitpid(pid, NULL, 0), pid);
    }

    /* What cannot be one line, or does not fit, is never sent. */
    full_config(&cfg);
    free(cfg.s3_secret_key);
    cfg.s3_secret_key = strdup("two\nlines");
    assert_null(dip_secrets_format(&cfg, spawn, err, sizeof(err)));
    assert_string_equal(err, "DEALIMPORT_S3_SECRET_KEY holds a line break: "
                             "it cannot be handed to a worker");
    free(cfg.s3_secret_key);
    big[DIP_SECRETS_MAX + 99] = '\0';
    cfg.s3_secret_key = strdup(big + 11);
    assert_null(dip_secrets_format(&cfg, NULL, err, sizeof(err)));
    assert_string_equal(err, "the secrets for a worker exceed 60000 bytes "
                             "(DEALIMPORT_S3_SECRET_KEY is too long)");
    free(big);
    dip_config_release(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_env_has_no_secret),
        cmocka_unit_test(test_round_trip_through_a_pipe),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
