/*
 * End to end with a storage that fails as real ones do (it_s3, a scripted
 * S3 server; the database is the development stack's), through the real
 * supervisor, worker and dealimportctl:
 * - a resume spliced across two objects: the first GET is cut at half and
 *   the Range request answered 206 from another object (another ETag, If-
 *   Match ignored): the import fails "the file changed since the import
 *   started", keeps the deals it wrote, and has no row of the second one;
 * - a GET accepted and never answered, and one answered 3 bytes a second:
 *   `dealimportctl cancel` ends each `cancelled` (each time is printed; the
 *   bound waited for is well under the minute the low-speed limit would
 *   take, so only the stop can meet it);
 * - a GET that stops after half the file, and one never answered: `pause`
 *   ends each `paused` at its checkpoint; once the storage answers again,
 *   `resume` completes the import with every row exactly once.
 * - the same GET never answered while a format of "auto" reads the whole
 *   file once before the import: `cancel` ends it `cancelled` as well (the
 *   survey's download waits as the import's does).
 * Failure classes: 7 (stall, trickle: a deadline and a stop for every wait),
 * 8 (another object on a resume), 14 (each case fails without its fix: the
 * splice completed with rows of both versions, and the stop waited for the
 * next batch, which a stalled GET never reaches).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dip_bson.h"
#include "it_check.h"
#include "it_ctl.h"
#include "it_env.h"
#include "it_s3.h"
#include "it_tmp.h"

#define ROWS 3000
/* Longer than a stop takes, shorter than the low-speed limit (60 s). */
#define STOP_BOUND_MS 40000

static it_env_t env;
static it_s3_t s3;
static pid_t sup = -1;
static char logpath[256], runtime[256], endpoint_env[1024];
static const char *sup_env[] = {
    "DEALIMPORT_STORAGE_URL=s3://deals", endpoint_env,
    "DEALIMPORT_MAX_WORKERS=4",          "DEALIMPORT_BATCH_ROWS=100",
    "DEALIMPORT_ROW_BACKOFF_MS=200",     NULL};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int setup(void **state)
{
    char ep[512];
    (void)state;
    it_s3_start(&s3);
    it_s3_endpoint(&s3, ep, sizeof(ep));
    snprintf(endpoint_env, sizeof(endpoint_env), "DEALIMPORT_S3_ENDPOINT=%s",
             ep);
    snprintf(logpath, sizeof(logpath), "%s/it-storage-faults-%d.log",
             it_tmpdir(), (int)getpid());
    sup = it_supervisor_start(&env, sup_env, logpath);
    snprintf(runtime, sizeof(runtime), "%s", env.runtime);
    return sup > 0 ? 0 : -1;
}

static int teardown(void **state)
{
    int st;
    (void)state;
    st = it_process_stop(sup, SIGTERM, 30000);
    it_s3_stop(&s3);
    if (!(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
        fprintf(stderr, "supervisor did not exit 0 (status %d); log in %s\n",
                st, logpath);
        return -1;
    }
    return 0;
}

/* Rows wholly in the first half of the object (what a GET cut or held
 * at half delivers). */
static int64_t half_rows;

/* The scripted object key (v1 the CSV, v2 the same with every "Deal"
 * written "Veal": another object of the same size), queued for a new
 * account. */
static void enqueue(const char *key, it_s3_mode_t mode, bson_oid_t *qid)
{
    size_t len;
    char *v1 = it_ctl_csv(ROWS, 0, &len), *v2 = malloc(len), *p;
    bson_oid_t acc, user, pipeline;
    assert_non_null(v2);
    half_rows = -1; /* the header */
    for (size_t i = 0; i < len / 2; i++)
        half_rows += v1[i] == '\n';
    memcpy(v2, v1, len);
    for (p = v2; (p = memmem(p, len - (size_t)(p - v2), "Deal ", 5)) != NULL;
         p += 5)
        p[0] = 'V';
    it_s3_add(&s3, key, v1, v2, len, mode);
    free(v1);
    free(v2);
    bson_oid_init(&acc, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &acc, &pipeline);
    it_enqueue(&env, key, &acc, &user, &pipeline, it_ctl_mappings, qid);
}

static int ctl(const char *cmd, const char *id, char *out)
{
    const char *args[] = {cmd, id, NULL};
    char err[4096];
    int rc = it_ctl_run(runtime, args, out, 4096, err, sizeof(err), 30000);
    if (rc != 0)
        fprintf(stderr, "dealimportctl %s %s: %d: %s\n", cmd, id, rc, err);
    return rc;
}

/* Waits for the worker to have asked for key n times. */
static void wait_gets(const char *key, int n)
{
    for (int i = 0; i < 3000 && it_s3_gets(&s3, key) < n; i++)
        usleep(20000);
    assert_true(it_s3_gets(&s3, key) >= n);
}

static void test_spliced_resume_fails(void **state)
{
    bson_oid_t qid;
    bson_t q;
    char filter[256], id[25];
    int64_t deals;
    (void)state;
    enqueue("imports/splice.csv", IT_S3_SPLICE, &qid);
    bson_oid_to_string(&qid, id);
    assert_int_equal(it_wait_final(&env, &qid, 120000, &q), 0);
    assert_string_equal(it_str(&q, "status"), "failed");
    assert_non_null(strstr(it_str(&q, "error"),
                           "the file changed since the import "
                           "started"));
    bson_destroy(&q);
    /* What was imported is kept: the batches of the first half. */
    deals = it_ctl_deals(&env, &qid);
    fprintf(stderr, "spliced resume: %lld deals kept of %d rows\n",
            (long long)deals, ROWS);
    assert_true(deals > 0 && deals <= half_rows);
    /* Not one row of the second object. */
    assert_int_equal(
        it_count_import_deals(&env, &qid, "{\"name\":{\"$regex\":\"^Veal\"}}"),
        0);
    snprintf(filter, sizeof(filter),
             "{\"queue_id\":{\"$oid\":\"%s\"},\"status\":\"failed\","
             "\"total_records_added\":%lld}",
             id, (long long)deals);
    assert_int_equal(it_count(&env, "csv_imports", filter), 1);
    assert_int_equal(it_s3_gets(&s3, "imports/splice.csv"), 2);
}

/* Cancels the import while its worker waits on key; returns the ms from
 * the command to `cancelled`. */
static int64_t cancel_waiting(const char *key, it_s3_mode_t mode)
{
    bson_oid_t qid;
    char id[25], out[4096];
    int64_t t0, took;
    enqueue(key, mode, &qid);
    bson_oid_to_string(&qid, id);
    wait_gets(key, 1);
    sleep(2); /* the worker is well into its wait */
    t0 = now_ms();
    assert_int_equal(ctl("cancel", id, out), 0);
    assert_int_equal(it_ctl_wait_status(&env, &qid, "cancelled", STOP_BOUND_MS),
                     0);
    took = now_ms() - t0;
    assert_int_equal(it_ctl_deals(&env, &qid), 0);
    it_s3_release(&s3, key);
    return took;
}

/* As cancel_waiting, for an import whose format is "auto": the wait is
 * the survey's, before the first row is read for the import. */
static int64_t cancel_waiting_survey(const char *key)
{
    bson_oid_t qid;
    bson_t *set, fmt;
    char id[25], out[4096];
    int64_t t0, took;
    enqueue(key, IT_S3_SILENT, &qid);
    set = bson_new();
    BSON_APPEND_DOCUMENT_BEGIN(set, "additional_data.format", &fmt);
    BSON_APPEND_UTF8(&fmt, "date_order", "auto");
    BSON_APPEND_UTF8(&fmt, "decimal", "auto");
    bson_append_document_end(set, &fmt);
    it_queue_set(&env, &qid, set);
    bson_destroy(set);
    bson_oid_to_string(&qid, id);
    wait_gets(key, 1);
    sleep(2);
    t0 = now_ms();
    assert_int_equal(ctl("cancel", id, out), 0);
    assert_int_equal(it_ctl_wait_status(&env, &qid, "cancelled", STOP_BOUND_MS),
                     0);
    took = now_ms() - t0;
    assert_int_equal(it_ctl_deals(&env, &qid), 0);
    it_s3_release(&s3, key);
    return took;
}

static void test_cancel_stalled_survey(void **state)
{
    int64_t took;
    int before = it_log_count(logpath, "reading the whole file once");
    (void)state;
    took = cancel_waiting_survey("imports/silent-survey.csv");
    /* The wait was the survey's (the format reached the worker). */
    assert_int_equal(it_log_count(logpath, "reading the whole file once"),
                     before + 1);
    fprintf(stderr, "cancel to cancelled in the survey: %lld ms\n",
            (long long)took);
}

static void test_cancel_stalled_and_trickling(void **state)
{
    int64_t silent, trickle;
    (void)state;
    silent = cancel_waiting("imports/silent-cancel.csv", IT_S3_SILENT);
    trickle = cancel_waiting("imports/trickle-cancel.csv", IT_S3_TRICKLE);
    fprintf(stderr,
            "cancel to cancelled: %lld ms (GET never answered), %lld ms "
            "(3 bytes/s)\n",
            (long long)silent, (long long)trickle);
}

/* Pauses the import while its worker waits on key (after half the file
 * with IT_S3_HOLD, at once with IT_S3_SILENT), lets the storage answer,
 * resumes: completed with every row once. */
static void pause_then_resume(const char *key, it_s3_mode_t mode)
{
    bson_oid_t qid;
    char id[25], out[4096], filter[256];
    int64_t t0, cp;
    bson_t q;
    enqueue(key, mode, &qid);
    bson_oid_to_string(&qid, id);
    wait_gets(key, 1);
    if (mode == IT_S3_HOLD)
        assert_true(it_ctl_wait_lines(runtime, id, ROWS / 4, 60000) >=
                    ROWS / 4);
    sleep(2);
    t0 = now_ms();
    assert_int_equal(ctl("pause", id, out), 0);
    assert_int_equal(it_ctl_wait_status(&env, &qid, "paused", STOP_BOUND_MS),
                     0);
    fprintf(stderr, "%s: pause to paused: %lld ms\n", key,
            (long long)(now_ms() - t0));
    assert_int_equal(it_ctl_queue_doc(&env, &qid, &q), 0);
    cp = dip_bson_get_int(&q, "checkpoint.line", 0);
    bson_destroy(&q);
    /* The deals written are exactly those up to the checkpoint. */
    assert_int_equal(it_ctl_deals(&env, &qid), cp);
    if (mode == IT_S3_HOLD)
        assert_true(cp >= ROWS / 4 && cp <= half_rows);

    it_s3_release(&s3, key);
    assert_int_equal(ctl("resume", id, out), 0);
    assert_int_equal(it_wait_final(&env, &qid, 120000, &q), 0);
    assert_string_equal(it_str(&q, "status"), "completed");
    bson_destroy(&q);
    /* Every row once: the unique (queue, line) index makes a count of
     * ROWS mean lines 1..ROWS, one deal each. */
    assert_int_equal(it_ctl_deals(&env, &qid), ROWS);
    snprintf(filter, sizeof(filter),
             "{\"queue_id\":{\"$oid\":\"%s\"},\"status\":\"completed\","
             "\"total_records\":%d,\"total_records_added\":%d}",
             id, ROWS, ROWS);
    assert_int_equal(it_count(&env, "csv_imports", filter), 1);
}

static void test_pause_stalled_then_resume(void **state)
{
    (void)state;
    pause_then_resume("imports/hold-pause.csv", IT_S3_HOLD);
    pause_then_resume("imports/silent-pause.csv", IT_S3_SILENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spliced_resume_fails),
        cmocka_unit_test(test_cancel_stalled_and_trickling),
        cmocka_unit_test(test_pause_stalled_then_resume),
        cmocka_unit_test(test_cancel_stalled_survey),
    };
    int rc = it_env_init(&env, "storagefaults");
    if (rc)
        return rc;
    rc = cmocka_run_group_tests(tests, setup, teardown);
    it_env_release(&env);
    return rc;
}
