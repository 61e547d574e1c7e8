/*
 * End to end on the development stack: a running worker's environment, as
 * /proc/PID/environ shows it to anyone who may read it, holds none of the
 * service's secrets (APP_SECRET, whether set directly or read from
 * APP_SECRET_FILE, the S3 secret key, the MongoDB URI that may carry a
 * password), while the settings that are no secret are there; the worker
 * still imports every row, so it got its secrets through the pipe.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dip_bson.h"
#include "it_check.h"
#include "it_env.h"
#include "it_tmp.h"

#define ROWS 30000

static const char mappings[] = "{\"Deal Name\":\"name\",\"Value\":\"value\","
                               "\"Stage\":\"stage_id\",\"Description\":"
                               "\"description\"}";

static it_env_t env;
static bson_oid_t account, user, pipeline;

/* The worker's environment as "K=V" strings, NUL-separated; its length. */
static size_t read_environ(pid_t pid, char *buf, size_t cap)
{
    char path[512];
    size_t n = 0;
    ssize_t r;
    int fd;
    snprintf(path, sizeof(path), "/proc/%ld/environ", (long)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    while (n < cap && (r = read(fd, buf + n, cap - n)) > 0)
        n += (size_t)r;
    close(fd);
    return n;
}

/* 1 when some entry of env[0..len) other than those starting with `except`
 * contains needle. */
static int environ_has(const char *env_text, size_t len, const char *needle,
                       const char *except)
{
    for (size_t at = 0; at < len; at += strlen(env_text + at) + 1) {
        const char *e = env_text + at;
        if (except && strncmp(e, except, strlen(except)) == 0)
            continue;
        if (strstr(e, needle))
            return 1;
    }
    return 0;
}

static void import_and_check(const char *key, const char *const *extra,
                             const char *app_secret)
{
    static char text[1 << 16];
    const char *s3_secret = getenv("DEALIMPORT_S3_SECRET_KEY");
    char log[256];
    bson_oid_t qid;
    bson_t q;
    pid_t sup, w;
    size_t len;

    snprintf(log, sizeof(log), "%s/it-secrets-%d.log", it_tmpdir(),
             (int)getpid());
    it_put_rows(&env, key, ROWS, 40);
    it_enqueue(&env, key, &account, &user, &pipeline, mappings, &qid);
    sup = it_supervisor_start(&env, extra, log);
    assert_true(sup > 0);
    w = it_wait_worker(&qid, 60000);
    assert_true(w > 0);
    len = read_environ(w, text, sizeof(text) - 1);
    text[len] = '\0';
    /* It was read: the settings that are no secret are there. */
    assert_true(environ_has(text, len, "DEALIMPORT_STORAGE_URL=", NULL));
    assert_true(environ_has(text, len, "DEALIMPORT_RUNTIME_DIR=", NULL));
    assert_false(environ_has(text, len, app_secret, NULL));
    assert_false(environ_has(text, len, "APP_SECRET", NULL));
    assert_false(environ_has(text, len, env.uri, NULL));
    assert_false(environ_has(text, len, "DEALIMPORT_MONGODB_URI", NULL));
    assert_false(environ_has(text, len, "DEALIMPORT_S3_SECRET_KEY", NULL));
    /* The dev server's access key id is its secret key too: the id is
     * no secret and may stay. */
    assert_non_null(s3_secret);
    assert_false(
        environ_has(text, len, s3_secret, "DEALIMPORT_S3_ACCESS_KEY="));

    assert_int_equal(it_wait_final(&env, &qid, 180000, &q), 0);
    assert_string_equal(it_str(&q, "status"), "completed");
    bson_destroy(&q);
    assert_int_equal(it_count_import_deals(&env, &qid, "{}"), ROWS);
    {
        int st = it_process_stop(sup, SIGTERM, 30000);
        assert_true(st >= 0 && WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
    }
    unlink(log);
}

static void test_app_secret_from_env(void **state)
{
    const char *secret = getenv("APP_SECRET");
    (void)state;
    assert_non_null(secret);
    import_and_check("imports/deals/secrets/env.csv", NULL, secret);
}

static void test_app_secret_from_file(void **state)
{
    static char setting[1024];
    const char *extra[] = {setting, NULL};
    static const char secret[] = "file-secret-4c1b9e27d0a3f58e";
    char path[512];
    char *saved = NULL;
    int fd = mkstemp(it_tmp_name(path, sizeof(path), "it-secret-XXXXXX"));
    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(write(fd, secret, sizeof(secret) - 1),
                     (ssize_t)sizeof(secret) - 1);
    close(fd);
    snprintf(setting, sizeof(setting), "APP_SECRET_FILE=%s", path);
    /* The supervisor reads the file only when APP_SECRET is unset. */
    if (getenv("APP_SECRET"))
        saved = strdup(getenv("APP_SECRET"));
    unsetenv("APP_SECRET");
    import_and_check("imports/deals/secrets/file.csv", extra, secret);
    if (saved) {
        setenv("APP_SECRET", saved, 1);
        free(saved);
    }
    unlink(path);
}

static int setup(void **state)
{
    (void)state;
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &account, &pipeline);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    it_stop_all(&env);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_app_secret_from_env, teardown),
        cmocka_unit_test_teardown(test_app_secret_from_file, teardown),
    };
    int rc = it_env_init(&env, "wsecrets");
    if (rc)
        return rc;
    rc = cmocka_run_group_tests(tests, setup, NULL);
    it_env_release(&env);
    return rc;
}
