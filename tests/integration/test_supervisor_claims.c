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

#define ACCOUNTS 5
#define IMPORTS 60
#define PER_ACCOUNT 2

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
    bson_t *pipeline = BCON_NEW(
        /* source and status: the prefix of source_status_created */
        "pipeline", "[", "{", "$match", "{", "source", BCON_UTF8("deals"),
        "status", BCON_UTF8("processing"), "}", "}", "{", "$group", "{", "_id",
        BCON_UTF8("$account_id"), "n", "{", "$sum", BCON_INT32(1), "}", "}",
        "}", "]");
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
    char key[128], log[128];
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
        snprintf(log, sizeof(log), "/tmp/it-claims-%d-%d.log", (int)getpid(),
                 s);
        sup[s] = it_supervisor_start(&env, extra, log);
    }
    /* Until one serves, its indexes made: the samples below run on them
     * (the suite's notablescan refuses them before). */
    for (int w = 0, serving = 0; !serving && w < 600; w++) {
        for (int s = 0; s < 3 && !serving; s++) {
            snprintf(log, sizeof(log), "/tmp/it-claims-%d-%d.log",
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
                     "{\"source\":\"deals\",\"status\":{\"$in\":"
                     "[\"completed\",\"failed\"]}}") == IMPORTS)
            break;
        usleep(50000);
    }
    printf("sampled the per-account running count %lld times, at most %lld\n",
           (long long)samples, (long long)worst);
    assert_true(worst <= PER_ACCOUNT);
    assert_true(worst >= 1);

    for (int i = 0; i < IMPORTS; i++) {
        bson_t q;
        char filter[160], hex[25];
        assert_int_equal(it_wait_final(&env, &qid[i], 1000, &q), 0);
        assert_string_equal(it_str(&q, "status"), "completed");
        /* claimed once: no import ran twice */
        assert_int_equal(dip_bson_get_int(&q, "claims", -1), 1);
        bson_destroy(&q);
        bson_oid_to_string(&qid[i], hex);
        assert_int_equal(it_count_import_deals(&env, &qid[i], "{}"), rows[i]);
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
    int64_t lone_done, later_started = 0;
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
    sup = it_supervisor_start(&env, extra, "/tmp/it-fair.log");
    assert_int_equal(it_wait_final(&env, &lone, 120000, &doc), 0);
    assert_string_equal(it_str(&doc, "status"), "completed");
    lone_done = dip_bson_get_int(&doc, "claims", 0);
    assert_int_equal(lone_done, 1);
    bson_destroy(&doc);
    /* When the lone import was done, at most two of the busy account's
     * imports had been started: the one running when it was queued, and
     * possibly the one claimed in the same instant. */
    later_started = it_count(&env, "queues",
                             "{\"source\":\"deals\",\"status\":{\"$in\":"
                             "[\"processing\",\"completed\"]},\"claims\":1,"
                             "\"csv.0.key\":{\"$regex\":\"^imports/deals/fair/"
                             "busy\"}}");
    printf("busy-account imports started before the lone one finished: "
           "%lld\n",
           (long long)later_started);
    assert_true(later_started <= 2);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(it_wait_final(&env, &q[i], 120000, &doc), 0);
        assert_string_equal(it_str(&doc, "status"), "completed");
        bson_destroy(&doc);
    }
    assert_int_equal(it_process_stop(sup, SIGTERM, 30000) >= 0, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_three_supervisors),
        cmocka_unit_test(test_fair_across_accounts),
    };
    int rc = it_env_init(&env, "claims");
    if (rc)
        return rc;
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    it_env_release(&env);
    return rc;
}
