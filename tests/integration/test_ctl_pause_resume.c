/*
 * End to end on the development stack: `dealimportctl pause` stops a
 * 200,000-row import at about 30%; while it is paused no deal is added and
 * its worker slot is free; `resume` puts it back, a new worker starts at the
 * checkpoint (not at line 1), and the import ends with exactly one deal per
 * good row and no line twice.
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
#include <unistd.h>

#include "dip_bson.h"
#include "it_ctl.h"
#include "it_env.h"
#include "it_tmp.h"

#define ROWS 200000
#define BAD_EVERY 1000
#define GOOD (ROWS - ROWS / BAD_EVERY)

static it_env_t env;
static pid_t sup = -1;
static char logpath[256], runtime[256];

static int setup(void **state)
{
    (void)state;
    snprintf(logpath, sizeof(logpath), "%s/it-ctl-pause-%d.log", it_tmpdir(),
             (int)getpid());
    sup = it_supervisor_start(&env, NULL, logpath);
    snprintf(runtime, sizeof(runtime), "%s", env.runtime);
    return sup > 0 ? 0 : -1;
}

static int teardown(void **state)
{
    int st;
    (void)state;
    st = it_process_stop(sup, SIGTERM, 30000);
    if (!(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
        fprintf(stderr, "supervisor did not exit 0 (status %d); log in %s\n",
                st, logpath);
        return -1;
    }
    return 0;
}

/* No line of the import has two deals. */
static int64_t duplicate_lines(const bson_oid_t *qid)
{
    mongoc_collection_t *c = it_coll(&env, "deals");
    bson_t match = BSON_INITIALIZER, *pipeline;
    mongoc_cursor_t *cur;
    const bson_t *doc;
    bson_error_t error;
    int64_t n = 0;
    /* the import's deals on account_import_line */
    it_append_import_deals(&env, &match, qid);
    pipeline =
        BCON_NEW("pipeline", "[", "{", "$match", BCON_DOCUMENT(&match), "}",
                 "{", "$group", "{", "_id", BCON_UTF8("$import.line"), "n", "{",
                 "$sum", BCON_INT32(1), "}", "}", "}", "{", "$match", "{", "n",
                 "{", "$gt", BCON_INT32(1), "}", "}", "}", "]");
    cur =
        mongoc_collection_aggregate(c, MONGOC_QUERY_NONE, pipeline, NULL, NULL);
    while (mongoc_cursor_next(cur, &doc))
        n++;
    if (mongoc_cursor_error(cur, &error)) {
        fprintf(stderr, "aggregate: %s\n", error.message);
        n = -1;
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(pipeline);
    bson_destroy(&match);
    mongoc_collection_destroy(c);
    return n;
}

static void test_pause_then_resume(void **state)
{
    bson_oid_t qid;
    char id[25], out[4096], err[4096], filter[256];
    const char *args[4] = {NULL, id, NULL, NULL};
    size_t len;
    char *csv = it_ctl_csv(ROWS, BAD_EVERY, &len);
    int64_t lines, before, after, starts[8], cp;
    bson_t q;
    json_t *status;
    int n;
    (void)state;

    it_ctl_enqueue_csv(&env, csv, len, NULL, &qid);
    free(csv);
    bson_oid_to_string(&qid, id);

    /* About 30% in. */
    lines = it_ctl_wait_lines(runtime, id, ROWS * 3 / 10, 180000);
    assert_true(lines >= ROWS * 3 / 10);
    args[0] = "pause";
    assert_int_equal(
        it_ctl_run(runtime, args, out, sizeof(out), err, sizeof(err), 20000),
        0);
    assert_non_null(strstr(out, "pause requested"));
    assert_int_equal(it_ctl_wait_status(&env, &qid, "paused", 60000), 0);

    assert_int_equal(it_ctl_queue_doc(&env, &qid, &q), 0);
    cp = dip_bson_get_int(&q, "checkpoint.line", -1);
    bson_destroy(&q);
    fprintf(stderr, "paused at line %lld of %d (asked at %lld)\n",
            (long long)cp, ROWS, (long long)lines);
    assert_true(cp >= lines && cp < ROWS);

    /* Paused means paused: no deal is added, and the slot is free. */
    before = it_ctl_deals(&env, &qid);
    sleep(3);
    after = it_ctl_deals(&env, &qid);
    assert_int_equal(before, after);
    assert_true(before > 0 && before < GOOD);
    status = it_ctl_ask(runtime, "{\"v\":1,\"cmd\":\"status\"}", 5000);
    assert_non_null(status);
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(status, "workers"), "running")),
                     0);
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(status, "imports"), "paused")),
                     1);
    json_decref(status);

    /* A second pause is refused, with the reason. */
    assert_int_equal(
        it_ctl_run(runtime, args, out, sizeof(out), err, sizeof(err), 20000),
        1);
    assert_non_null(strstr(err, "is already paused"));

    args[0] = "resume";
    assert_int_equal(
        it_ctl_run(runtime, args, out, sizeof(out), err, sizeof(err), 20000),
        0);
    snprintf(filter, sizeof(filter), "resumes at line %lld", (long long)cp + 1);
    assert_non_null(strstr(out, filter));

    assert_int_equal(it_wait_final(&env, &qid, 300000, &q), 0);
    assert_string_equal(it_str(&q, "status"), "completed");
    bson_destroy(&q);
    assert_int_equal(it_ctl_deals(&env, &qid), GOOD);
    assert_int_equal(duplicate_lines(&qid), 0);
    snprintf(filter, sizeof(filter),
             "{\"queue_id\":{\"$oid\":\"%s\"},\"total_records\":%d,"
             "\"total_records_added\":%d,\"total_errors\":%d,"
             "\"status\":\"completed\"}",
             id, ROWS, GOOD, ROWS / BAD_EVERY);
    assert_int_equal(it_count(&env, "csv_imports", filter), 1);

    /* Two workers ran it: the first from line 1, the resumed one from the
     * checkpoint. */
    n = it_ctl_start_lines(logpath, id, starts, 8);
    assert_int_equal(n, 2);
    assert_int_equal(starts[0], 1);
    assert_int_equal(starts[1], cp + 1);
    assert_true(starts[1] > 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pause_then_resume),
    };
    int rc = it_env_init(&env, "ctlpause");
    if (rc)
        return rc;
    rc = cmocka_run_group_tests(tests, setup, teardown);
    it_env_release(&env);
    return rc;
}
