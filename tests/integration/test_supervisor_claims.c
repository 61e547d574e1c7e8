/*
 * Several supervisors on one database: every import runs exactly once, the
 * per-account limit holds across all of them at every moment, and claiming
 * is fair across accounts.
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
#include "it_tmp.h"

#define ACCOUNTS 5
#define IMPORTS 60
#define PER_ACCOUNT 2

/* The log of the supervisor a case starts, in the test's folder. */
static char tmp_log[512];

static const char mappings[] =
    "{\"Deal Name\":\"name\",\"Value\":\"value\",\"Stage\":\"stage_id\"}";

static it_env_t env;

/* A file of n good rows; returns its key. */
static void put_file(const char *key, int n)
{
    size_t cap = 64 + (size_t)n * 48, len = 0;
    char *buf = malloc(cap);
    len += (size_t)snprintf(buf + len, cap - len, "Deal Name,Value,Stage\n");
    for (int i = 1; i <= n; i++)
        len += (size_t)snprintf(buf + len, cap - len, "Deal %d,%d,stage %d\n",
                                i, i * 10, i % 3);
    it_put(&env, key, buf, len);
    free(buf);
}

/* The largest number of running imports of any one account right now. */
static int64_t max_running_per_account(void)
{
    mongoc_collection_t *c = it_coll(&env, "queues");
    bson_t *pipeline =
        BCON_NEW("pipeline", "[", "{", "$match", "{", "source",
                 BCON_UTF8("deals"), "status", BCON_UTF8("processing"), "}",
                 "}", "{", "$group", "{", "_id", BCON_UTF8("$account_id"), "n",
                 "{", "$sum", BCON_INT32(1), "}", "}", "}", "]");
    mongoc_cursor_t *cur =
        mongoc_collection_aggregate(c, MONGOC_QUERY_NONE, pipeline, NULL, NULL);
    const bson_t *doc;
    int64_t max = 0;
    bson_error_t error;
    while (mongoc_cursor_next(cur, &doc)) {
        int64_t n = dip_bson_get_int(doc, "n", 0);
        if (n > max)
            max = n;
    }
    /* a refused or failed read is no sample of 0 */
    if (mongoc_cursor_error(cur, &error))
        fail_msg("sampling the running imports: %s", error.message);
    mongoc_cursor_destroy(cur);
    bson_destroy(pipeline);
    mongoc_collection_destroy(c);
    return max;
}

static void test_three_supervisors(void **state)
{
    static const char *const extra[] = {"DEALIMPORT_MAX_WORKERS=4",
                                        "DEALIMPORT_MAX_WORKERS_PER_ACCOUNT=2",
                                        "DEALIMPORT_POLL_MS=100", NULL};
    bson_oid_t account[ACCOUNTS], pipeline[ACCOUNTS], user, qid[IMPORTS];
    int rows[IMPORTS];
    pid_t sup[3];
    char key[128], log[256];
    int64_t worst = 0, samples = 0;
    (void)state;

    bson_oid_init(&user, NULL);
    for (int a = 0; a < ACCOUNTS; a++) {
        bson_oid_init(&account[a], NULL);
        it_pipeline(&env, &account[a], &pipeline[a]);
    }
    for (int i = 0; i < IMPORTS; i++) {
        rows[i] = 200 + (i * 37) % 600;
        snprintf(key, sizeof(key), "imports/deals/claims/%d.csv", i);
        put_file(key, rows[i]);
        it_enqueue(&env, key, &account[i % ACCOUNTS], &user,
                   &pipeline[i % ACCOUNTS], mappings, &qid[i]);
    }
    for (int s = 0; s < 3; s++) {
        snprintf(log, sizeof(log), "%s/it-claims-%d-%d.log", it_tmpdir(),
                 (int)getpid(), s);
        sup[s] = it_supervisor_start(&env, extra, log);
    }
    /* Until one serves, its indexes made: the samples below run on them
     * (the suite's notablescan refuses them before). */
    for (int w = 0, serving = 0; !serving && w < 600; w++) {
        for (int s = 0; s < 3 && !serving; s++) {
            snprintf(log, sizeof(log), "%s/it-claims-%d-%d.log", it_tmpdir(),
                     (int)getpid(), s);
            serving = it_log_count(log, "serving:") > 0;
        }
        if (!serving)
            usleep(100000);
    }
    /* Sample the per-account limit until everything is final. */
    for (int waited = 0; waited < 240000; waited += 50) {
        int64_t m = max_running_per_account();
        samples++;
        if (m > worst)
            worst = m;
        if (it_count(&env, "queues",
                     "{\"source\":\"deals\",\"status\":{\"$in\":["
                     "\"completed\",\"failed\"]}}") == IMPORTS)
            break;
        usleep(50000);
    }
    printf("sampled the per-account running count %lld times, at most %lld\n",
           (long long)samples, (long long)worst);
    assert_true(worst <= PER_ACCOUNT);
    assert_true(worst >= 1);

    for (int i = 0; i < IMPORTS; i++) {
        bson_t q;
        char filter[256], hex[25], acc[25];
        assert_int_equal(it_wait_final(&env, &qid[i], 1000, &q), 0);
        assert_string_equal(it_str(&q, "status"), "completed");
        /* claimed once: no import ran twice */
        assert_int_equal(dip_bson_get_int(&q, "claims", -1), 1);
        bson_destroy(&q);
        bson_oid_to_string(&qid[i], hex);
        bson_oid_to_string(&account[i % ACCOUNTS], acc);
        snprintf(filter, sizeof(filter),
                 "{\"account_id\":{\"$oid\":\"%s\"},\"import.queue_id\":"
                 "{\"$oid\":\"%s\"},\"import\":{\"$exists\":true}}",
                 acc, hex);
        assert_int_equal(it_count(&env, "deals", filter), rows[i]);
        snprintf(filter, sizeof(filter),
                 "{\"queue_id\":{\"$oid\":\"%s\"},\"total_records_added\":%d}",
                 hex, rows[i]);
        assert_int_equal(it_count(&env, "csv_imports", filter), 1);
    }
    /* Each account's three stages exist once, however many imports raced
     * to create them. */
    assert_int_equal(it_count(&env, "pipeline_stages", "{}"), 3 * ACCOUNTS);
    for (int s = 0; s < 3; s++) {
        int st = it_process_stop(sup[s], SIGTERM, 30000);
        assert_true(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
}

static void test_fair_across_accounts(void **state)
{
    static const char *const extra[] = {"DEALIMPORT_MAX_WORKERS=1",
                                        "DEALIMPORT_MAX_WORKERS_PER_ACCOUNT=1",
                                        "DEALIMPORT_POLL_MS=100", NULL};
    bson_oid_t busy, quiet, pbusy, pquiet, user, q[9], lone;
    char key[128];
    pid_t sup;
    bson_t doc;
    int64_t lone_claimed, before;
    char filter[192];
    bson_iter_t it;
    (void)state;
    bson_oid_init(&busy, NULL);
    bson_oid_init(&quiet, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &busy, &pbusy);
    it_pipeline(&env, &quiet, &pquiet);
    /* The busy account queues eight imports first, the quiet one a single
     * import after them. */
    for (int i = 0; i < 8; i++) {
        snprintf(key, sizeof(key), "imports/deals/fair/busy-%d.csv", i);
        put_file(key, 300);
        it_enqueue(&env, key, &busy, &user, &pbusy, mappings, &q[i]);
    }
    usleep(20000);
    put_file("imports/deals/fair/lone.csv", 50);
    it_enqueue(&env, "imports/deals/fair/lone.csv", &quiet, &user, &pquiet,
               mappings, &lone);
    sup = it_supervisor_start(
        &env, extra, it_tmp_name(tmp_log, sizeof(tmp_log), "it-fair.log"));
    assert_int_equal(it_wait_final(&env, &lone, 120000, &doc), 0);
    assert_string_equal(it_str(&doc, "status"), "completed");
    assert_int_equal(dip_bson_get_int(&doc, "claims", 0), 1);
    assert_true(bson_iter_init_find(&it, &doc, "claimed_at") &&
                BSON_ITER_HOLDS_DATE_TIME(&it));
    lone_claimed = bson_iter_date_time(&it);
    bson_destroy(&doc);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(it_wait_final(&env, &q[i], 120000, &doc), 0);
        assert_string_equal(it_str(&doc, "status"), "completed");
        assert_int_equal(dip_bson_get_int(&doc, "claims", 0), 1);
        bson_destroy(&doc);
    }
    /* The order of the claims, not of the ends a poll happened to see: of
     * the busy account's imports, only the one claimed while the lone
     * import was not served yet (the oldest of all) went before it. */
    snprintf(filter, sizeof(filter),
             "{\"source\":\"deals\",\"status\":\"completed\",\"csv.0.key\":"
             "{\"$regex\":\"^imports/deals/fair/busy\"},\"claimed_at\":"
             "{\"$lt\":{\"$date\":{\"$numberLong\":\"%lld\"}}}}",
             (long long)lone_claimed);
    before = it_count(&env, "queues", filter);
    printf("busy-account imports claimed before the lone one: %lld\n",
           (long long)before);
    assert_int_equal(before, 1);
    assert_int_equal(it_process_stop(sup, SIGTERM, 30000) >= 0, 1);
}

/* An import whose supervisor died holds its account's only slot (status
 * processing, its lease run out) while an older import of the same account
 * is claimable: one the operator paused and resumed (a resume keeps its
 * created_at), or one the CRM queued with an earlier created_at. The older
 * one is tried first and refused by every slot (the dead import's, on the
 * unique index of running slots): the dead import must still be taken
 * over, once, and finished, and then the older one run, by fresh
 * supervisors and without an operator.
 *
 * The state is the one a SIGKILLed supervisor leaves, written directly so
 * that the test does not depend on when a kill lands.
 *
 * Failure classes:
 * - 9 (shared resources): one account's slot held by an orphan while
 *   another import waits for it; the slot is freed by taking the orphan
 *   over, never by looking at the older import alone.
 * - 4 (one document poisons a loop): the oldest import, refused by every
 *   slot, must not hold the others of its account.
 * - 5 (frozen, a reply late by a lease): the dead supervisor's claim is
 *   fenced, the takeover's epoch is 2; two supervisors race for the orphan
 *   from their start and one takeover lands (claims 2, not 3): the other's
 *   findAndModify no longer matches it (its lease is live again) or is
 *   refused a slot. The import completes once, its deals written once.
 * - 3 (every recurring query on an index): the takeover's query runs on
 *   running_account_key_slot; this test passes with notablescan on. */
static void test_takeover_behind_older(void **state)
{
    static const char *const extra[] = {"DEALIMPORT_MAX_WORKERS=2",
                                        "DEALIMPORT_MAX_WORKERS_PER_ACCOUNT=1",
                                        "DEALIMPORT_POLL_MS=100", NULL};
    bson_oid_t account, pipe, user, older, orphan;
    char hex[25], log[256], filter[128];
    pid_t sup[2];
    mongoc_collection_t *c;
    bson_t *sel, *upd;
    bson_error_t error;
    bson_t doc;
    (void)state;
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    bson_oid_to_string(&account, hex);
    it_pipeline(&env, &account, &pipe);
    put_file("imports/deals/orphan/older.csv", 20);
    put_file("imports/deals/orphan/orphan.csv", 30);
    it_enqueue(&env, "imports/deals/orphan/older.csv", &account, &user, &pipe,
               mappings, &older);
    usleep(20000);
    it_enqueue(&env, "imports/deals/orphan/orphan.csv", &account, &user, &pipe,
               mappings, &orphan);
    /* The newer one was claimed into the account's only slot by a
     * supervisor that is gone: its lease ran out a minute ago. */
    c = it_coll(&env, "queues");
    sel = BCON_NEW("_id", BCON_OID(&orphan));
    upd = BCON_NEW("$set", "{", "status", BCON_UTF8("processing"),
                   "in_progress", BCON_BOOL(true), "account_key",
                   BCON_UTF8(hex), "account_slot", BCON_INT32(0), "claimed_by",
                   BCON_UTF8("a-supervisor-that-died"), "lease_expires_at",
                   BCON_DATE_TIME(dip_bson_now_ms() - 60000), "claims",
                   BCON_INT32(1), "}");
    assert_true(mongoc_collection_update_one(c, sel, upd, NULL, NULL, &error));
    bson_destroy(sel);
    bson_destroy(upd);
    mongoc_collection_destroy(c);

    for (int s = 0; s < 2; s++) {
        snprintf(log, sizeof(log), "%s/it-orphan-%d-%d.log", it_tmpdir(),
                 (int)getpid(), s);
        sup[s] = it_supervisor_start(&env, extra, log);
    }
    assert_int_equal(it_wait_final(&env, &orphan, 60000, &doc), 0);
    assert_string_equal(it_str(&doc, "status"), "completed");
    /* taken over once: the dead claim's epoch and this one */
    assert_int_equal(dip_bson_get_int(&doc, "claims", 0), 2);
    bson_destroy(&doc);
    assert_int_equal(it_wait_final(&env, &older, 60000, &doc), 0);
    assert_string_equal(it_str(&doc, "status"), "completed");
    assert_int_equal(dip_bson_get_int(&doc, "claims", 0), 1);
    bson_destroy(&doc);
    snprintf(filter, sizeof(filter),
             "{\"account_id\":{\"$oid\":\"%s\"},\"import\":{\"$exists\":"
             "true}}",
             hex);
    assert_int_equal(it_count(&env, "deals", filter), 50);
    for (int s = 0; s < 2; s++)
        assert_int_equal(it_process_stop(sup[s], SIGTERM, 30000) >= 0, 1);
}

/* A failed test leaves its supervisors running: stopped here, so that they
 * claim nothing of the next test's. */
static int teardown(void **state)
{
    (void)state;
    it_stop_all(&env);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_three_supervisors, teardown),
        cmocka_unit_test_teardown(test_fair_across_accounts, teardown),
        cmocka_unit_test_teardown(test_takeover_behind_older, teardown),
    };
    int rc = it_env_init(&env, "claims");
    if (rc)
        return rc;
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    it_env_release(&env);
    return rc;
}
