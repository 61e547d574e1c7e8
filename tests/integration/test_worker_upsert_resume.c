/*
 * Update and upsert across a resume: a key repeated later in the file is
 * a line error naming its first line even when the worker was killed
 * between the two lines and the first left no mark on its deal (a row
 * equal to the deal is "unchanged": nothing is written). The set of keys
 * seen lives in the worker's memory; the resumed run reads the lines before
 * its checkpoint again for their keys (wrk_recall.h). Before that, the
 * resumed run took the later line for the first and applied it (the deal's
 * value became 9999).
 *
 * Failure classes: 5 (SIGKILL at any moment: the kill lands after line 500
 * is checkpointed, the first line long done, the repeat still ahead; the
 * deals' writes are priced so it meets a running import on any machine),
 * 1 and 2 (the re-read is storage's, with its retries, its stop callback
 * and no database call), 6 (memory: the key set the first run held, no
 * more), 14 (the test failed before the re-read: value 9999, no line
 * error).
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
#include <unistd.h>

#include "dip_bson.h"
#include "it_check.h"
#include "it_env.h"
#include "it_upsert.h"
#include "it_tmp.h"

static it_env_t env;

static void test_repeat_across_resume(void **state)
{
    enum { FILLER = 3000 };
    static const char *const extra[] = {"DEALIMPORT_WORKER_RESTARTS=5",
                                        "DEALIMPORT_ROW_BACKOFF_MS=200",
                                        "DEALIMPORT_BATCH_ROWS=100", NULL};
    bson_oid_t account, user, pipeline, qid;
    char a[25], qh[25], path[256], logpath[256];
    pid_t sup, worker;
    FILE *f;
    bson_t q;
    (void)state;
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &account, &pipeline);
    bson_oid_to_string(&account, a);
    it_upsert_write_base(&env, "imports/upsert/base-r.csv", 3);
    it_upsert_enqueue(&env, "imports/upsert/base-r.csv", &account, &user,
                      &pipeline, NULL, NULL, it_upsert_mappings, &qid);
    it_upsert_run(&env, &qid, NULL, "completed", &q);
    bson_destroy(&q);
    snprintf(path, sizeof(path), "%s/it-upsert-resume-%d.csv", it_tmpdir(),
             (int)getpid());
    f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "Ref,Name,Value,Stage,Region\n");
    it_upsert_base_row(f, 1); /* line 1: as the deal is */
    for (int i = 0; i < FILLER; i++)
        fprintf(f, "N%05d,New %d,1,s1,n\n", i, i);
    fprintf(f, "R00001,Deal 1,9999,s1,r1\n"); /* line FILLER + 2 */
    fclose(f);
    it_put_file(&env, "imports/upsert/edited-r.csv", path);
    unlink(path);
    it_upsert_enqueue(&env, "imports/upsert/edited-r.csv", &account, &user,
                      &pipeline, "upsert", "external_id", it_upsert_mappings,
                      &qid);
    bson_oid_to_string(&qid, qh);
    snprintf(logpath, sizeof(logpath), "%s/it-upsert-resume-%d.log",
             it_tmpdir(), (int)getpid());
    /* priced writes: the kill meets the import mid-way on any machine */
    assert_int_equal(it_dev_slow(&env, "{\"write_us\": 300}"), 0);
    sup = it_supervisor_start(&env, extra, logpath);
    assert_true(sup > 0);
    worker = it_wait_worker(&qid, 120000);
    assert_true(worker > 0);
    assert_int_equal(it_wait_int(&env, &qid, "checkpoint.line", 500, 120000),
                     0);
    assert_int_equal(kill(worker, SIGKILL), 0);
    assert_int_equal(it_dev_slow(&env, "{\"write_us\": 0}"), 0);
    assert_int_equal(it_wait_final(&env, &qid, 600000, &q), 0);
    assert_string_equal(it_str(&q, "status"), "completed");
    bson_destroy(&q);
    assert_int_equal(it_process_stop(sup, SIGTERM, 30000), 0);
    assert_int_equal(it_log_count(logpath, "killed by signal 9"), 1);
    unlink(logpath);
    assert_int_equal(it_upsert_count(&env, "deals",
                                     "{\"account_id\":{\"$oid\":\"%s\"},"
                                     "\"import\":{\"$exists\":true},"
                                     "\"external_id\":\"R00001\","
                                     "\"value\":101}",
                                     a),
                     1);
    assert_int_equal(
        it_upsert_count(&env, "csv_import_errors",
                        "{\"queue_id\":{\"$oid\":\"%s\"},\"line\":%d,"
                        "\"message\":\"external_id 'R00001' is on line 1 "
                        "already: only the first line with a key is "
                        "applied\"}",
                        qh, FILLER + 2),
        1);
    assert_int_equal(
        it_upsert_count(&env, "csv_imports",
                        "{\"queue_id\":{\"$oid\":\"%s\"},"
                        "\"total_records_added\":%d,"
                        "\"total_records_updated\":0,"
                        "\"total_records_unchanged\":1,\"total_errors\":1}",
                        qh, FILLER),
        1);
}

/* A line refused for its stage (no new stage may be made) files its key,
 * as every line that maps does (wrk_upsert.h): its repeat is a line error
 * naming it, in one run and across a resume alike. The re-read files the
 * key of every line that maps; one run through filed none for a stage
 * refused, so the repeat was applied in one run (value 9999) and refused
 * after a kill. Failure classes: 5 (the kill lands after line 500, the
 * refused line long checkpointed), 14 (the one-run case failed before).
 */
static void stage_refused(int kill_it)
{
    enum { FILLER = 3000 };
    static const char *const extra[] = {
        "DEALIMPORT_WORKER_RESTARTS=5", "DEALIMPORT_ROW_BACKOFF_MS=200",
        "DEALIMPORT_BATCH_ROWS=100", "DEALIMPORT_MAX_NEW_STAGES=0", NULL};
    bson_oid_t account, user, pipeline, qid;
    char a[25], qh[25], path[256], logpath[256];
    pid_t sup, worker;
    FILE *f;
    bson_t q;
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &account, &pipeline);
    bson_oid_to_string(&account, a);
    it_upsert_write_base(&env, "imports/upsert/base-s.csv", 3);
    it_upsert_enqueue(&env, "imports/upsert/base-s.csv", &account, &user,
                      &pipeline, NULL, NULL, it_upsert_mappings, &qid);
    it_upsert_run(&env, &qid, NULL, "completed", &q);
    bson_destroy(&q);
    snprintf(path, sizeof(path), "%s/it-upsert-stage-%d.csv", it_tmpdir(),
             (int)getpid());
    f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "Ref,Name,Value,Stage,Region\n");
    fprintf(f, "R00001,Deal 1,7777,zz,r1\n"); /* line 1: no stage zz */
    for (int i = 0; i < FILLER; i++)
        fprintf(f, "N%05d,New %d,1,s1,n\n", i, i);
    fprintf(f, "R00001,Deal 1,9999,s1,r1\n"); /* line FILLER + 2 */
    fclose(f);
    it_put_file(&env, "imports/upsert/edited-s.csv", path);
    unlink(path);
    it_upsert_enqueue(&env, "imports/upsert/edited-s.csv", &account, &user,
                      &pipeline, "upsert", "external_id", it_upsert_mappings,
                      &qid);
    bson_oid_to_string(&qid, qh);
    snprintf(logpath, sizeof(logpath), "%s/it-upsert-stage-%d.log", it_tmpdir(),
             (int)getpid());
    assert_int_equal(it_dev_slow(&env, kill_it ? "{\"write_us\": 300}"
                                               : "{\"write_us\": 0}"),
                     0);
    sup = it_supervisor_start(&env, extra, logpath);
    assert_true(sup > 0);
    if (kill_it) {
        worker = it_wait_worker(&qid, 120000);
        assert_true(worker > 0);
        assert_int_equal(
            it_wait_int(&env, &qid, "checkpoint.line", 500, 120000), 0);
        assert_int_equal(kill(worker, SIGKILL), 0);
        assert_int_equal(it_dev_slow(&env, "{\"write_us\": 0}"), 0);
    }
    assert_int_equal(it_wait_final(&env, &qid, 600000, &q), 0);
    assert_string_equal(it_str(&q, "status"), "completed");
    bson_destroy(&q);
    assert_int_equal(it_process_stop(sup, SIGTERM, 30000), 0);
    assert_int_equal(it_log_count(logpath, "killed by signal 9"), kill_it);
    unlink(logpath);
    assert_int_equal(it_upsert_count(&env, "deals",
                                     "{\"account_id\":{\"$oid\":\"%s\"},"
                                     "\"external_id\":\"R00001\","
                                     "\"value\":101}",
                                     a),
                     1);
    assert_int_equal(
        it_upsert_count(&env, "csv_import_errors",
                        "{\"queue_id\":{\"$oid\":\"%s\"},\"line\":%d,"
                        "\"message\":\"external_id 'R00001' is on line 1 "
                        "already: only the first line with a key is "
                        "applied\"}",
                        qh, FILLER + 2),
        1);
    assert_int_equal(
        it_upsert_count(&env, "csv_import_errors",
                        "{\"queue_id\":{\"$oid\":\"%s\"},\"line\":1,"
                        "\"field\":\"stage\"}",
                        qh),
        1);
    assert_int_equal(
        it_upsert_count(&env, "csv_imports",
                        "{\"queue_id\":{\"$oid\":\"%s\"},"
                        "\"total_records_added\":%d,"
                        "\"total_records_updated\":0,"
                        "\"total_records_unchanged\":0,\"total_errors\":2}",
                        qh, FILLER),
        1);
}

static void test_stage_refused_one_run(void **state)
{
    (void)state;
    stage_refused(0);
}

static void test_stage_refused_across_resume(void **state)
{
    (void)state;
    stage_refused(1);
}

/* The file replaced while no worker ran (after a kill): the resumed run
 * fails as any resume of another file does, before it reads a byte of it,
 * even when its header no longer has a mapped column. The re-read checked
 * the file only once it had read it to the checkpoint: its mapping, bound
 * to the new header, failed the import with "the file's header has no
 * column 'Ref'", and a new file with the same header was read to the
 * checkpoint's line for nothing. Failure class 8. */
static void test_file_replaced_before_resume(void **state)
{
    static const char *const extra[] = {"DEALIMPORT_WORKER_RESTARTS=5",
                                        "DEALIMPORT_ROW_BACKOFF_MS=200",
                                        "DEALIMPORT_BATCH_ROWS=100", NULL};
    bson_oid_t account, user, pipeline, qid;
    char path[256], logpath[256];
    const char *error;
    pid_t sup, worker;
    FILE *f;
    bson_t q;
    (void)state;
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &account, &pipeline);
    snprintf(path, sizeof(path), "%s/it-upsert-changed-%d.csv", it_tmpdir(),
             (int)getpid());
    f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "Ref,Name,Value,Stage,Region\n");
    for (int i = 0; i < 3000; i++)
        fprintf(f, "N%05d,New %d,1,s1,n\n", i, i);
    fclose(f);
    it_put_file(&env, "imports/upsert/changed-r.csv", path);
    it_upsert_enqueue(&env, "imports/upsert/changed-r.csv", &account, &user,
                      &pipeline, "upsert", "external_id", it_upsert_mappings,
                      &qid);
    snprintf(logpath, sizeof(logpath), "%s/it-upsert-changed-%d.log",
             it_tmpdir(), (int)getpid());
    assert_int_equal(it_dev_slow(&env, "{\"write_us\": 300}"), 0);
    sup = it_supervisor_start(&env, extra, logpath);
    assert_true(sup > 0);
    worker = it_wait_worker(&qid, 120000);
    assert_true(worker > 0);
    assert_int_equal(it_wait_int(&env, &qid, "checkpoint.line", 500, 120000),
                     0);
    /* no worker reads while the file is replaced */
    assert_int_equal(kill(worker, SIGSTOP), 0);
    f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "Reference,Name,Value,Stage,Region\n");
    for (int i = 0; i < 3000; i++)
        fprintf(f, "M%05d,Other %d,2,s1,n\n", i, i);
    fclose(f);
    it_put_file(&env, "imports/upsert/changed-r.csv", path);
    unlink(path);
    assert_int_equal(kill(worker, SIGKILL), 0);
    assert_int_equal(it_dev_slow(&env, "{\"write_us\": 0}"), 0);
    assert_int_equal(it_wait_final(&env, &qid, 600000, &q), 0);
    assert_string_equal(it_str(&q, "status"), "failed");
    error = it_str(&q, "error");
    if (strstr(error, "the file changed since the import started") == NULL)
        fail_msg("error '%s'", error);
    bson_destroy(&q);
    assert_int_equal(it_process_stop(sup, SIGTERM, 30000), 0);
    unlink(logpath);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_repeat_across_resume),
        cmocka_unit_test(test_stage_refused_one_run),
        cmocka_unit_test(test_stage_refused_across_resume),
        cmocka_unit_test(test_file_replaced_before_resume),
    };
    int rc = it_env_init(&env, "wupsresume");
    if (rc)
        return rc;
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    it_env_release(&env);
    return rc;
}
