/*
 * An import that ends after a worker crash without a worker running again:
 * it fails (the crash used the last restart allowed) or it is cancelled by
 * the operator before the next worker starts. Its csv_imports must count
 * the deals in the database, also those the dead worker wrote past its
 * last report (an insert the server carried out after the worker was
 * killed, between the insert and its checkpoint). The development server
 * runs strict (notablescan) and slow, with the price of a written
 * document raised mid-import so that the kill lands inside an insert.
 *
 * Failure classes walked:
 *  1 slow, not down: the end counts only the deals past the accounted
 *    line (at most the batches in flight), never the whole import;
 *  2 abandoned work: the dead worker's insert goes on in the server: its
 *    deals are what this test counts;
 *  3 no scan: notablescan is on; the test's own counts use the deals'
 *    unique index prefix (account_id, import.queue_id, import.line);
 *  5 frozen: not exercised (test_slow_db);
 * 14 cannot fail: the test first checks that the kill did land past the
 *    last report (deals > progress.added when the worker died), else it
 *    would pass whether or not the end counts them.
 * Skipped when the tests run against a server other than the development
 * server.
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
#include "it_check.h"
#include "it_ctl.h"
#include "it_env.h"
#include "it_gen.h"
#include "it_skip.h"
#include "it_tmp.h"

#define ROWS 40000

static it_env_t env;
static bson_oid_t account;

/* notablescan as strict_slow found it: put back after each test */
static int notablescan_was = -1;

static int teardown_each(void **state)
{
    (void)state;
    it_stop_all(&env);
    /* the server's defaults: no prices, key_us following scan_us */
    (void)it_dev_slow(&env, "{\"scan_us\": 0, \"key_us\": null, "
                            "\"write_us\": 0, \"cmd_ms\": 0}");
    if (notablescan_was >= 0)
        (void)it_notablescan(&env, notablescan_was);
    notablescan_was = -1;
    return 0;
}

static void strict_slow(void)
{
    assert_int_equal(it_dev_slow(&env, "{\"scan_us\": 35, \"key_us\": 5, "
                                       "\"write_us\": 10, \"cmd_ms\": 1}"),
                     0);
    notablescan_was = it_notablescan(&env, 1);
    assert_true(notablescan_was >= 0);
}

/* The import's deals, counted through the unique index's prefix (a
 * partial index: its filter, import present, is part of the query). */
static int64_t deals_of(const bson_oid_t *qid)
{
    char filter[256], a[25], q[25];
    bson_oid_to_string(&account, a);
    bson_oid_to_string(qid, q);
    snprintf(filter, sizeof(filter),
             "{\"account_id\":{\"$oid\":\"%s\"},\"import.queue_id\":"
             "{\"$oid\":\"%s\"},\"import\":{\"$exists\":true}}",
             a, q);
    return it_count(&env, "deals", filter);
}

static it_gen_t *start(const char *key, unsigned seed, bson_oid_t *qid)
{
    it_gen_t *gen = it_gen_new(ROWS, seed, 0, 0);
    bson_oid_t user, pipeline;
    char path[256];
    assert_non_null(gen);
    snprintf(path, sizeof(path), "%s/it-crash-end-%d.csv", it_tmpdir(),
             (int)getpid());
    assert_int_equal(it_gen_write(gen, path), 0);
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &account, &pipeline);
    it_put_file(&env, key, path);
    unlink(path);
    it_enqueue(&env, key, &account, &user, &pipeline, it_gen_mappings(), qid);
    return gen;
}

/* Lets the import write 2,000 deals, makes each written document cost
 * 2 ms (a batch of 1,000 takes 2 s in the server), waits until the worker
 * is inside such an insert and SIGKILLs it. Returns the progress the queue
 * document showed then. */
static int64_t kill_inside_insert(const bson_oid_t *qid, const char *log)
{
    pid_t worker;
    int64_t before;
    for (int i = 0; i < 1200 && deals_of(qid) < 2000; i++)
        usleep(100000);
    if (deals_of(qid) < 2000)
        fail_msg("the import did not write 2,000 deals; log in %s", log);
    assert_int_equal(it_dev_slow(&env, "{\"write_us\": 2000}"), 0);
    /* the next batch's insert starts within one batch's time: a count
     * waits behind the insert running (the server runs one command at a
     * time), so a new count means an insert just ended and the worker is
     * about to send its next */
    before = deals_of(qid);
    for (int i = 0; i < 100 && deals_of(qid) == before; i++)
        usleep(50000);
    usleep(300000);
    worker = it_worker_pid(qid);
    assert_true(worker > 0);
    assert_int_equal(kill(worker, SIGKILL), 0);
    return it_queue_int(&env, qid, "progress.added");
}

/* Waits until the server carried the dead worker's insert out (the deals
 * stop growing) and puts the price back; returns the deals then minus
 * reported: what the dead worker wrote past its last report. */
static int64_t settle(const bson_oid_t *qid, int64_t reported)
{
    int64_t after = deals_of(qid);
    for (int i = 0; i < 100; i++) {
        int64_t now;
        usleep(300000);
        now = deals_of(qid);
        if (now == after)
            break;
        after = now;
    }
    assert_int_equal(it_dev_slow(&env, "{\"write_us\": 10}"), 0);
    fprintf(stderr, "worker killed: %lld deals, %lld reported\n",
            (long long)after, (long long)reported);
    return after - reported;
}

static void assert_end_counts_deals(const bson_oid_t *qid, const char *status,
                                    const char *log)
{
    bson_t q;
    char hex[25], filter[256];
    int64_t deals, added = -1;
    mongoc_collection_t *c;
    mongoc_cursor_t *cur;
    const bson_t *doc;
    bson_t *f;
    assert_int_equal(it_wait_final(&env, qid, 120000, &q), 0);
    if (strcmp(it_str(&q, "status"), status) != 0)
        fail_msg("import '%s' (%s), not '%s'; log in %s", it_str(&q, "status"),
                 it_str(&q, "error"), status, log);
    bson_destroy(&q);
    deals = deals_of(qid);
    bson_oid_to_string(qid, hex);
    c = it_coll(&env, "csv_imports");
    f = BCON_NEW("queue_id", BCON_OID(qid));
    cur = mongoc_collection_find_with_opts(c, f, NULL, NULL);
    if (mongoc_cursor_next(cur, &doc))
        added = dip_bson_get_int(doc, "total_records_added", -1);
    mongoc_cursor_destroy(cur);
    bson_destroy(f);
    mongoc_collection_destroy(c);
    fprintf(stderr, "import %s %s: %lld deals, csv_imports says %lld\n", hex,
            status, (long long)deals, (long long)added);
    assert_int_equal(added, deals);
    snprintf(filter, sizeof(filter),
             "{\"_id\":{\"$oid\":\"%s\"},\"progress.added\":%lld}", hex,
             (long long)deals);
    assert_int_equal(it_count(&env, "queues", filter), 1);
    assert_int_equal(it_log_count(log, "notablescan"), 0);
}

/* The crash uses the last restart allowed: the import fails, and its
 * csv_imports counts what the dead worker wrote. */
static void test_fails_after_crash(void **state)
{
    static const char *const extra[] = {"DEALIMPORT_WORKER_RESTARTS=1",
                                        "DEALIMPORT_BATCH_ROWS=1000",
                                        "DEALIMPORT_POLL_MS=500", NULL};
    bson_oid_t qid;
    char log[256];
    it_gen_t *gen;
    pid_t sup;
    (void)state;
    snprintf(log, sizeof(log), "%s/it-crash-end-%d-failed.log", it_tmpdir(),
             (int)getpid());
    gen = start("imports/deals/crashend/failed.csv", 7171u, &qid);
    strict_slow();
    sup = it_supervisor_start(&env, extra, log);
    assert_true(sup > 0);
    assert_true(settle(&qid, kill_inside_insert(&qid, log)) > 0);
    assert_end_counts_deals(&qid, "failed", log);
    assert_int_equal(WEXITSTATUS(it_process_stop(sup, SIGTERM, 30000)), 0);
    it_gen_destroy(&gen);
}

/* The worker killed, and the import cancelled through dealimportctl
 * before a new worker runs: csv_imports counts the deals present. */
static void test_cancelled_after_crash(void **state)
{
    static const char *const extra[] = {"DEALIMPORT_BATCH_ROWS=1000",
                                        "DEALIMPORT_POLL_MS=500", NULL};
    bson_oid_t qid;
    char log[256], hex[25], out[4096], err[4096];
    const char *args[] = {"cancel", hex, NULL};
    int64_t reported;
    it_gen_t *gen;
    pid_t sup;
    (void)state;
    snprintf(log, sizeof(log), "%s/it-crash-end-%d-cancelled.log", it_tmpdir(),
             (int)getpid());
    gen = start("imports/deals/crashend/cancelled.csv", 7272u, &qid);
    bson_oid_to_string(&qid, hex);
    strict_slow();
    sup = it_supervisor_start(&env, extra, log);
    assert_true(sup > 0);
    reported = kill_inside_insert(&qid, log);
    /* at once: the next worker starts a second after the death is seen */
    if (it_ctl_run(env.runtime, args, out, sizeof(out), err, sizeof(err),
                   30000) != 0)
        fail_msg("dealimportctl cancel: %s %s", out, err);
    assert_true(settle(&qid, reported) > 0);
    assert_end_counts_deals(&qid, "cancelled", log);
    assert_int_equal(WEXITSTATUS(it_process_stop(sup, SIGTERM, 30000)), 0);
    it_gen_destroy(&gen);
}

/* The worker killed, the import paused before a new worker runs, then
 * cancelled while paused: the end is written from the queue document
 * (no slot holds it), and its csv_imports counts the deals present. */
static void test_paused_then_cancelled_after_crash(void **state)
{
    static const char *const extra[] = {"DEALIMPORT_BATCH_ROWS=1000",
                                        "DEALIMPORT_POLL_MS=500", NULL};
    bson_oid_t qid;
    char log[256], hex[25], out[4096], err[4096];
    const char *pause[] = {"pause", hex, NULL};
    const char *cancel[] = {"cancel", hex, NULL};
    int64_t reported;
    it_gen_t *gen;
    pid_t sup;
    (void)state;
    snprintf(log, sizeof(log), "%s/it-crash-end-%d-paused.log", it_tmpdir(),
             (int)getpid());
    gen = start("imports/deals/crashend/paused.csv", 7373u, &qid);
    bson_oid_to_string(&qid, hex);
    strict_slow();
    sup = it_supervisor_start(&env, extra, log);
    assert_true(sup > 0);
    reported = kill_inside_insert(&qid, log);
    if (it_ctl_run(env.runtime, pause, out, sizeof(out), err, sizeof(err),
                   30000) != 0)
        fail_msg("dealimportctl pause: %s %s", out, err);
    assert_true(settle(&qid, reported) > 0);
    assert_int_equal(it_ctl_wait_status(&env, &qid, "paused", 60000), 0);
    if (it_ctl_run(env.runtime, cancel, out, sizeof(out), err, sizeof(err),
                   30000) != 0)
        fail_msg("dealimportctl cancel: %s %s", out, err);
    assert_end_counts_deals(&qid, "cancelled", log);
    assert_int_equal(WEXITSTATUS(it_process_stop(sup, SIGTERM, 30000)), 0);
    it_gen_destroy(&gen);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_fails_after_crash, teardown_each),
        cmocka_unit_test_teardown(test_cancelled_after_crash, teardown_each),
        cmocka_unit_test_teardown(test_paused_then_cancelled_after_crash,
                                  teardown_each),
    };
    int rc = it_env_init(&env, "crash_end");
    if (rc)
        return rc;
    if (it_devmongo_pid() <= 0) {
        fprintf(stderr, "skipped: not the development server (no slow "
                        "mode)\n");
        it_env_release(&env);
        return 77;
    }
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    it_env_release(&env);
    return rc;
}
