/*
 * Acceptance, a slow database: the development server in slow mode, with a
 * price per document examined at which counting an import's 40,000 deals
 * takes at least 1.5 s by the server's own clock (measured through devOpLog
 * first, so the test cannot pass on a server too fast to matter), and with
 * notablescan on (every query of the service must use an index). Each
 * import must end 'completed' with csv_imports equal to the deals:
 *   - lease 5 s, the worker SIGSEGVed at 10,000 rows and resumed;
 *   - lease 4 s, the database frozen (SIGSTOP) twice for 25 s;
 *   - lease 5 s, the supervisor SIGKILLed mid-import, another taking over;
 * and in each no operation that carried a maxTimeMS ran longer than it in
 * the server (devOpLog), so nothing the service gave up on goes on running.
 *
 * Failure classes walked:
 *  1 slow, not down: the end counts nothing in the database (the worker's
 *    accounting, carried by its checkpoint through the SIGSEGV, the resume
 *    and the takeover), so the end's cost does not grow with the import;
 *    a scan of the deals takes longer than a call bound here, and the
 *    imports still end.
 *  2 abandoned work: every read, aggregate and findAndModify of the service
 *    carries maxTimeMS; the op log check fails if one outran it.
 *  3 no scan: notablescan is on for each case; a recurring query without
 *    its index is refused (291) and the import would not end.
 *  4 one poisoned document: not exercised here (the claim's own tests).
 *  5 frozen: the two 25 s freezes stop the worker and the lease; the
 *    import is taken up again and ends exact; a duplicate-key reply on the
 *    deal's unique index counts as written, once.
 * Skipped when the tests run against a server other than the development
 * server (no slow mode) or one they cannot signal.
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
#include "it_env.h"
#include "it_gen.h"
#include "it_skip.h"
#include "it_tmp.h"

#define ROWS 40000
/* The server's price per document examined, in µs: a count of ROWS deals
 * by scan or through the index takes at least 1.5 s with it. */
#define SCAN_US 40
/* What the server may overrun a maxTimeMS by (as test_devmongo_slow). */
#define MARGIN_MS 250.0

static it_env_t env;
static pid_t mongo = -1;
/* notablescan as the suite set it (scripts/test: on), put back after each
 * case; -1 before the first */
static int scan_was = -1;

static bool admin(bson_t *cmd, bson_t *reply)
{
    bson_error_t error;
    bool ok = mongoc_client_command_simple(env.client, "admin", cmd, NULL,
                                           reply, &error);
    if (!ok)
        fprintf(stderr, "admin command: %s\n", error.message);
    bson_destroy(cmd);
    return ok;
}

static void slow_on(void)
{
    bson_t reply;
    assert_true(admin(
        BCON_NEW("devSlow", "{", "scan_us", BCON_INT32(SCAN_US), "}"), &reply));
    bson_destroy(&reply);
    scan_was = it_notablescan(&env, 1);
    assert_true(scan_was >= 0);
    /* the op log from here on */
    assert_true(admin(BCON_NEW("devOpLog", BCON_INT32(1), "limit",
                               BCON_INT32(1), "reset", BCON_BOOL(true)),
                      &reply));
    bson_destroy(&reply);
}

static void slow_off(void)
{
    bson_t reply;
    if (admin(BCON_NEW("devSlow", "{", "scan_us", BCON_INT32(0), "}"), &reply))
        bson_destroy(&reply);
    if (scan_was == 0)
        it_notablescan(&env, 0);
}

static int teardown_each(void **state)
{
    (void)state;
    if (mongo > 0)
        kill(mongo, SIGCONT); /* never leave it frozen */
    it_stop_all(&env);
    slow_off();
    return 0;
}

/* Every operation in the op log that carried a maxTimeMS ended within it
 * (and the margin); returns how many carried one. */
static int assert_ops_bounded(void)
{
    bson_t reply;
    bson_iter_t it, ops;
    int bounded = 0, worst_max = 0;
    double worst = 0;
    assert_true(
        admin(BCON_NEW("devOpLog", BCON_INT32(1), "limit", BCON_INT32(10000)),
              &reply));
    assert_true(bson_iter_init_find(&it, &reply, "ops") &&
                bson_iter_recurse(&it, &ops));
    while (bson_iter_next(&ops)) {
        bson_t op;
        uint32_t len;
        const uint8_t *data;
        int64_t max_ms;
        double ms;
        bson_iter_t f;
        bson_iter_document(&ops, &len, &data);
        assert_true(bson_init_static(&op, data, len));
        max_ms = dip_bson_get_int(&op, "maxTimeMS", 0);
        if (max_ms <= 0)
            continue;
        bounded++;
        ms = bson_iter_init_find(&f, &op, "millis") ? bson_iter_as_double(&f)
                                                    : 0;
        if (ms - (double)max_ms > worst - (double)worst_max) {
            worst = ms;
            worst_max = (int)max_ms;
        }
        if (ms > (double)max_ms + MARGIN_MS)
            fail_msg("%s on %s ran %.1f ms with maxTimeMS %lld",
                     dip_bson_get_str(&op, "op"), dip_bson_get_str(&op, "ns"),
                     ms, (long long)max_ms);
    }
    bson_destroy(&reply);
    fprintf(stderr, "op log: %d operations with maxTimeMS, none outran it\n",
            bounded);
    return bounded;
}

static bson_oid_t account;

static it_gen_t *start_import_rows(const char *key, uint64_t rows,
                                   unsigned seed, bson_oid_t *pipeline,
                                   bson_oid_t *qid)
{
    it_gen_t *gen = it_gen_new(rows, seed, 10, 0);
    bson_oid_t user;
    char path[256];
    assert_non_null(gen);
    snprintf(path, sizeof(path), "%s/it-slowdb-%d.csv", it_tmpdir(),
             (int)getpid());
    assert_int_equal(it_gen_write(gen, path), 0);
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &account, pipeline);
    it_put_file(&env, key, path);
    unlink(path);
    it_enqueue(&env, key, &account, &user, pipeline, it_gen_mappings(), qid);
    return gen;
}

static it_gen_t *start_import(const char *key, unsigned seed,
                              bson_oid_t *pipeline, bson_oid_t *qid)
{
    return start_import_rows(key, ROWS, seed, pipeline, qid);
}

/* Waits until the import's progress reached at_least lines. */
static void wait_lines(const bson_oid_t *qid, int64_t at_least, const char *log)
{
    if (it_wait_int(&env, qid, "progress.lines", at_least, 120000) != 0)
        fail_msg("the import did not reach line %lld; log in %s",
                 (long long)at_least, log);
}

/* The import completed within timeout_ms, exact, csv_imports equal to the
 * deals. And the case was as slow as it claims: the test's own count of
 * the import's deals, through the unique index's prefix, took at least
 * 1.5 s by the server's clock (a check of the setup, not a timing of the
 * service: the server sleeps SCAN_US per key and per document). */
static void assert_completed(const bson_oid_t *qid, const bson_oid_t *pipeline,
                             const it_gen_t *gen, int timeout_ms,
                             const char *log)
{
    it_tally_t t;
    bson_t q, reply;
    char filter[256], hex[25], ns[160];
    int64_t deals;
    double ms = -1;
    bson_iter_t it, ops, f;
    bson_error_t error;
    mongoc_collection_t *c;
    bson_t *cf;
    assert_int_equal(it_wait_final(&env, qid, timeout_ms, &q), 0);
    if (strcmp(it_str(&q, "status"), "completed") != 0)
        fail_msg("import %s: '%s'; log in %s", it_str(&q, "status"),
                 it_str(&q, "error"), log);
    bson_destroy(&q);
    /* the op log first: the checks below are the test's own reads */
    assert_true(assert_ops_bounded() > 0);
    bson_oid_to_string(qid, hex);
    c = it_coll(&env, "deals");
    cf =
        BCON_NEW("account_id", BCON_OID(&account), "import.queue_id",
                 BCON_OID(qid), "import", "{", "$exists", BCON_BOOL(true), "}");
    deals = mongoc_collection_count_documents(c, cf, NULL, NULL, NULL, &error);
    bson_destroy(cf);
    mongoc_collection_destroy(c);
    if (deals < 0)
        fail_msg("counting the deals: %s", error.message);
    snprintf(ns, sizeof(ns), "%s.deals", env.dbname);
    assert_true(
        admin(BCON_NEW("devOpLog", BCON_INT32(1), "ns", BCON_UTF8(ns), "op",
                       BCON_UTF8("aggregate"), "limit", BCON_INT32(1)),
              &reply));
    if (bson_iter_init_find(&it, &reply, "ops") &&
        bson_iter_recurse(&it, &ops) && bson_iter_next(&ops) &&
        bson_iter_recurse(&ops, &f) && bson_iter_find(&f, "millis"))
        ms = bson_iter_as_double(&f);
    bson_destroy(&reply);
    fprintf(stderr, "counting %lld deals took %.0f ms in the server\n",
            (long long)deals, ms);
    assert_true(ms >= 1500.0);
    slow_off();
    assert_int_equal(deals, (int64_t)it_gen_count(gen, IT_ROW_GOOD));
    assert_int_equal(it_check_import(&env, qid, pipeline, gen, &t), 0);
    if (t.first[0])
        fprintf(stderr, "first problem: %s\n", t.first);
    assert_int_equal(t.deal_twice + t.deal_wrong + t.deal_missing, 0);
    assert_int_equal(t.error_twice + t.error_wrong + t.error_missing, 0);
    snprintf(filter, sizeof(filter),
             "{\"queue_id\":{\"$oid\":\"%s\"},\"status\":\"completed\","
             "\"total_records_added\":%lld,\"total_errors\":%llu}",
             hex, (long long)deals,
             (unsigned long long)it_gen_count(gen, IT_ROW_KINDS));
    for (int i = 0; i < 600 && it_count(&env, "csv_imports", filter) != 1; i++)
        usleep(100000);
    assert_int_equal(it_count(&env, "csv_imports", filter), 1);
    /* No query of the service was refused for want of an index. */
    assert_int_equal(it_log_count(log, "notablescan"), 0);
}

static const char *const env5[] = {
    "DEALIMPORT_LEASE_S=5", "DEALIMPORT_ROW_BACKOFF_MS=200",
    "DEALIMPORT_BATCH_ROWS=1000", "DEALIMPORT_POLL_MS=500", NULL};
static const char *const env4[] = {
    "DEALIMPORT_LEASE_S=4", "DEALIMPORT_ROW_BACKOFF_MS=200",
    "DEALIMPORT_BATCH_ROWS=1000", "DEALIMPORT_POLL_MS=500", NULL};

static void log_path(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/it-slowdb-%d-%s.log", it_tmpdir(), (int)getpid(),
             name);
}

/* Lease 5 s: the worker SIGSEGVed at 10,000 rows, resumed from its
 * checkpoint; the rows it wrote past it meet their copies (duplicates,
 * counted as written once). Completed within two minutes. */
static void test_worker_segv(void **state)
{
    bson_oid_t pipeline, qid;
    it_gen_t *gen;
    char log[256];
    pid_t sup, worker;
    (void)state;
    log_path(log, sizeof(log), "segv");
    gen = start_import("imports/deals/slowdb/segv.csv", 1717u, &pipeline, &qid);
    slow_on();
    sup = it_supervisor_start(&env, env5, log);
    assert_true(sup > 0);
    wait_lines(&qid, 10000, log);
    worker = it_worker_pid(&qid);
    assert_true(worker > 0);
    assert_int_equal(kill(worker, SIGSEGV), 0);
    assert_completed(&qid, &pipeline, gen, 120000, log);
    assert_true(it_log_count(log, "resuming at line") >= 1 ||
                it_log_count(log, "starts at line") >= 2);
    assert_int_equal(WEXITSTATUS(it_process_stop(sup, SIGTERM, 30000)), 0);
    it_gen_destroy(&gen);
}

/* Lease 4 s: the database frozen twice for 25 s mid-import. */
static void test_db_frozen_twice(void **state)
{
    bson_oid_t pipeline, qid;
    it_gen_t *gen;
    char log[256];
    pid_t sup;
    (void)state;
    log_path(log, sizeof(log), "frozen");
    gen =
        start_import("imports/deals/slowdb/frozen.csv", 2929u, &pipeline, &qid);
    slow_on();
    sup = it_supervisor_start(&env, env4, log);
    assert_true(sup > 0);
    for (int round = 0; round < 2; round++) {
        wait_lines(&qid, 5000 + round * 15000, log);
        assert_int_equal(kill(mongo, SIGSTOP), 0);
        fprintf(stderr, "round %d: froze the database for 25 s\n", round);
        sleep(25);
        assert_int_equal(kill(mongo, SIGCONT), 0);
    }
    /* A frozen server's clock runs on while it cannot check any bound (a
     * stopped mongod cannot either): the op log counts from here, once
     * what arrived during the freeze has been answered. */
    sleep(3);
    {
        bson_t reply;
        assert_true(admin(BCON_NEW("devOpLog", BCON_INT32(1), "limit",
                                   BCON_INT32(1), "reset", BCON_BOOL(true)),
                          &reply));
        bson_destroy(&reply);
    }
    /* The import may have ended in those 3 s: a second of the loop's
     * polls (each a bounded findAndModify, every 200 ms) then still fills
     * the op log that assert_completed checks. */
    sleep(1);
    assert_completed(&qid, &pipeline, gen, 240000, log);
    assert_int_equal(WEXITSTATUS(it_process_stop(sup, SIGTERM, 30000)), 0);
    it_gen_destroy(&gen);
}

/* Lease 5 s: the supervisor SIGKILLed mid-import (its worker goes with its
 * connection); a second one takes the import over when the lease ran out
 * and ends it from the checkpoint's accounting. */
static void test_supervisor_killed(void **state)
{
    bson_oid_t pipeline, qid;
    it_gen_t *gen;
    char log_a[256], log_b[256];
    pid_t a, b;
    (void)state;
    log_path(log_a, sizeof(log_a), "killed-a");
    log_path(log_b, sizeof(log_b), "killed-b");
    gen =
        start_import("imports/deals/slowdb/killed.csv", 3131u, &pipeline, &qid);
    slow_on();
    a = it_supervisor_start(&env, env5, log_a);
    assert_true(a > 0);
    wait_lines(&qid, 10000, log_a);
    assert_int_equal(kill(a, SIGKILL), 0);
    (void)it_process_stop(a, SIGKILL, 5000);
    b = it_supervisor_start(&env, env5, log_b);
    assert_true(b > 0);
    assert_completed(&qid, &pipeline, gen, 120000, log_b);
    assert_int_equal(WEXITSTATUS(it_process_stop(b, SIGTERM, 30000)), 0);
    it_gen_destroy(&gen);
}

/* The default lease, 100,000 rows, no fault: completed, and its end
 * written within one lease of the last deal (the newest deal's ObjectId,
 * made by the worker when it built the deal, against csv_imports'
 * finished_at, both seconds of the wall clock). */
static void test_default_lease_big(void **state)
{
    bson_oid_t pipeline, qid;
    it_gen_t *gen;
    char log[256], hex[25];
    pid_t sup;
    bson_t *f, *o;
    const bson_t *doc;
    mongoc_collection_t *c;
    mongoc_cursor_t *cur;
    int64_t last_deal_s = -1, finished_s = -1;
    static const char *const env_default[] = {"DEALIMPORT_POLL_MS=500", NULL};
    (void)state;
    log_path(log, sizeof(log), "big");
    gen = start_import_rows("imports/deals/slowdb/big.csv", 100000, 5353u,
                            &pipeline, &qid);
    slow_on();
    sup = it_supervisor_start(&env, env_default, log);
    assert_true(sup > 0);
    assert_completed(&qid, &pipeline, gen, 600000, log);
    bson_oid_to_string(&qid, hex);
    c = it_coll(&env, "deals");
    f = BCON_NEW("account_id", BCON_OID(&account), "import.queue_id",
                 BCON_OID(&qid), "import", "{", "$exists", BCON_BOOL(true),
                 "}");
    o = BCON_NEW("sort", "{", "_id", BCON_INT32(-1), "}", "limit",
                 BCON_INT64(1));
    cur = mongoc_collection_find_with_opts(c, f, o, NULL);
    if (mongoc_cursor_next(cur, &doc)) {
        bson_oid_t id;
        if (dip_bson_get_oid(doc, "_id", &id) == 0)
            last_deal_s = (int64_t)bson_oid_get_time_t(&id);
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(f);
    bson_destroy(o);
    mongoc_collection_destroy(c);
    c = it_coll(&env, "csv_imports");
    f = BCON_NEW("queue_id", BCON_OID(&qid));
    cur = mongoc_collection_find_with_opts(c, f, NULL, NULL);
    if (mongoc_cursor_next(cur, &doc)) {
        bson_iter_t it;
        if (bson_iter_init_find(&it, doc, "finished_at") &&
            BSON_ITER_HOLDS_DATE_TIME(&it))
            finished_s = bson_iter_date_time(&it) / 1000;
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(f);
    mongoc_collection_destroy(c);
    fprintf(stderr,
            "import %s: last deal at %lld s, csv_imports finished at "
            "%lld s\n",
            hex, (long long)last_deal_s, (long long)finished_s);
    assert_true(last_deal_s > 0 && finished_s > 0);
    assert_true(finished_s - last_deal_s <= 60); /* the default lease */
    assert_int_equal(WEXITSTATUS(it_process_stop(sup, SIGTERM, 30000)), 0);
    it_gen_destroy(&gen);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_worker_segv, teardown_each),
        cmocka_unit_test_teardown(test_supervisor_killed, teardown_each),
        cmocka_unit_test_teardown(test_db_frozen_twice, teardown_each),
        cmocka_unit_test_teardown(test_default_lease_big, teardown_each),
    };
    int rc = it_env_init(&env, "slow_db");
    if (rc)
        return rc;
    mongo = it_devmongo_pid();
    if (mongo <= 0) {
        fprintf(stderr, "skipped: not the development server, or one the "
                        "tests cannot signal\n");
        it_env_release(&env);
        return 77;
    }
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    it_env_release(&env);
    return rc;
}
