/*
 * Queue documents of unusual shape: an _id stored as a string (or another
 * type) ends `failed` with a sentence and frees its account's slot instead
 * of staying `processing` forever; an account stored as an ObjectId in one
 * document and as its hex string in another is one account for the
 * per-account limit, which is never exceeded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dip_bson.h"
#include "it_check.h"
#include "it_env.h"
#include "it_tmp.h"

static const char mappings[] = "{\"Deal Name\":\"name\",\"Value\":\"value\","
                               "\"Stage\":\"stage_id\",\"Description\":"
                               "\"description\"}";

static it_env_t env;

static void log_path(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/it-queue-ids-%d-%s.log", it_tmpdir(), (int)getpid(),
             name);
}

static int stop_all(void **state)
{
    (void)state;
    it_stop_all(&env);
    return 0;
}

/* Replaces the queue document qid by a copy whose _id is id and whose
 * account_id is account (NULL: unchanged). */
static void reshape(const bson_oid_t *qid, const bson_value_t *id,
                    const bson_value_t *account)
{
    mongoc_collection_t *c = it_coll(&env, "queues");
    bson_t *filter = BCON_NEW("_id", BCON_OID(qid));
    mongoc_cursor_t *cur =
        mongoc_collection_find_with_opts(c, filter, NULL, NULL);
    const bson_t *doc;
    bson_t copy = BSON_INITIALIZER;
    bson_iter_t it;
    assert_true(mongoc_cursor_next(cur, &doc));
    BSON_APPEND_VALUE(&copy, "_id", id);
    assert_true(bson_iter_init(&it, doc));
    while (bson_iter_next(&it)) {
        const char *k = bson_iter_key(&it);
        if (strcmp(k, "_id") == 0)
            continue;
        if (account && strcmp(k, "account_id") == 0)
            BSON_APPEND_VALUE(&copy, k, account);
        else
            BSON_APPEND_VALUE(&copy, k, bson_iter_value(&it));
    }
    mongoc_cursor_destroy(cur);
    assert_true(mongoc_collection_delete_one(c, filter, NULL, NULL, NULL));
    assert_true(mongoc_collection_insert_one(c, &copy, NULL, NULL, NULL));
    bson_destroy(&copy);
    bson_destroy(filter);
    mongoc_collection_destroy(c);
}

/* The status of the queue document whose _id is the string id. */
static int wait_string_final(const char *id, int timeout_ms, bson_t *out)
{
    mongoc_collection_t *c = it_coll(&env, "queues");
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(id));
    int rc = -1;
    for (int waited = 0; waited <= timeout_ms && rc < 0; waited += 100) {
        mongoc_cursor_t *cur =
            mongoc_collection_find_with_opts(c, filter, NULL, NULL);
        const bson_t *doc;
        if (mongoc_cursor_next(cur, &doc)) {
            const char *st = dip_bson_get_str(doc, "status");
            bson_iter_t lp;
            if (st &&
                (strcmp(st, "failed") == 0 || strcmp(st, "completed") == 0) &&
                !bson_iter_init_find(&lp, doc, "log_pending")) {
                bson_copy_to(doc, out);
                rc = 0;
            }
        }
        mongoc_cursor_destroy(cur);
        if (rc < 0)
            usleep(100000);
    }
    bson_destroy(filter);
    mongoc_collection_destroy(c);
    return rc;
}

static void test_string_id_fails_and_frees_its_slot(void **state)
{
    static const char *const extra[] = {"DEALIMPORT_MAX_WORKERS_PER_ACCOUNT=1",
                                        "DEALIMPORT_POLL_MS=200", NULL};
    bson_oid_t account, user, pipeline, q1, q2;
    bson_value_t sid = {.value_type = BSON_TYPE_UTF8};
    char log[256];
    bson_t q;
    pid_t sup;
    (void)state;
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &account, &pipeline);
    it_put_rows(&env, "imports/deals/ids/string.csv", 50, 10);
    it_enqueue(&env, "imports/deals/ids/string.csv", &account, &user, &pipeline,
               mappings, &q1);
    sid.value.v_utf8.str = (char *)"import-7";
    sid.value.v_utf8.len = 8;
    reshape(&q1, &sid, NULL);
    /* Its account's only slot must be free again for this one. */
    it_put_rows(&env, "imports/deals/ids/after.csv", 50, 10);
    it_enqueue(&env, "imports/deals/ids/after.csv", &account, &user, &pipeline,
               mappings, &q2);
    log_path(log, sizeof(log), "string");
    sup = it_supervisor_start(&env, extra, log);
    assert_true(sup > 0);
    if (wait_string_final("import-7", 60000, &q) < 0)
        fail_msg("the import with a string _id never ended; log in %s", log);
    assert_string_equal(it_str(&q, "status"), "failed");
    assert_non_null(strstr(it_str(&q, "error"), "is not an ObjectId"));
    {
        bson_iter_t it;
        assert_true(bson_iter_init_find(&it, &q, "in_progress"));
        assert_false(bson_iter_as_bool(&it));
    }
    bson_destroy(&q);
    assert_int_equal(
        it_count(&env, "csv_imports",
                 "{\"queue_id\":\"import-7\",\"status\":\"failed\"}"),
        1);
    assert_int_equal(it_wait_final(&env, &q2, 60000, &q), 0);
    assert_string_equal(it_str(&q, "status"), "completed");
    bson_destroy(&q);
    assert_int_equal(it_count_import_deals(&env, &q2, "{}"), 50);
    assert_int_equal(WEXITSTATUS(it_process_stop(sup, SIGTERM, 30000)), 0);
}

static int64_t final_count(const bson_oid_t *qid)
{
    char hex[25], filter[256];
    bson_oid_to_string(qid, hex);
    snprintf(filter, sizeof(filter),
             "{\"_id\":{\"$oid\":\"%s\"},\"status\":{\"$in\":"
             "[\"completed\",\"failed\",\"cancelled\"]}}",
             hex);
    return it_count(&env, "queues", filter);
}

/* How many imports of the account run now, whichever way it is stored. */
static int64_t running_of(const bson_oid_t *account)
{
    char hex[25], filter[256];
    bson_oid_to_string(account, hex);
    snprintf(filter, sizeof(filter),
             "{\"source\":\"deals\",\"status\":\"processing\","
             "\"account_id\":{\"$in\":[{\"$oid\":\"%s\"},\"%s\"]}}",
             hex, hex);
    return it_count(&env, "queues", filter);
}

static void test_account_stored_two_ways_is_one(void **state)
{
    static const char *const extra[] = {"DEALIMPORT_MAX_WORKERS_PER_ACCOUNT=1",
                                        "DEALIMPORT_MAX_WORKERS=4",
                                        "DEALIMPORT_POLL_MS=200", NULL};
    bson_oid_t account, user, pipeline, q[4];
    char log[256], log2[256], hex[25];
    bson_value_t id, acc = {.value_type = BSON_TYPE_UTF8};
    int64_t most = 0;
    int done = 0;
    pid_t sup, sup2;
    (void)state;
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    bson_oid_to_string(&account, hex);
    acc.value.v_utf8.str = hex;
    acc.value.v_utf8.len = 24;
    it_pipeline(&env, &account, &pipeline);
    it_put_rows(&env, "imports/deals/ids/two-ways.csv", 20000, 100);
    for (int i = 0; i < 4; i++) {
        it_enqueue(&env, "imports/deals/ids/two-ways.csv", &account, &user,
                   &pipeline, mappings, &q[i]);
        if (i % 2 == 1) {
            /* The same account as its hex string. */
            id.value_type = BSON_TYPE_OID;
            bson_oid_copy(&q[i], &id.value.v_oid);
            reshape(&q[i], &id, &acc);
        }
    }
    /* Two supervisors: neither knows what the other runs, only the
     * database's unique index on running slots keeps the limit. */
    log_path(log, sizeof(log), "two-ways");
    sup = it_supervisor_start(&env, extra, log);
    assert_true(sup > 0);
    log_path(log2, sizeof(log2), "two-ways-2");
    sup2 = it_supervisor_start(&env, extra, log2);
    assert_true(sup2 > 0);
    for (int waited = 0; waited < 240000 && done < 4; waited += 50) {
        int64_t n = running_of(&account);
        if (n > most)
            most = n;
        done = 0;
        for (int i = 0; i < 4; i++)
            done += final_count(&q[i]) > 0;
        usleep(50000);
    }
    assert_int_equal(done, 4);
    if (most > 1)
        fail_msg("%lld imports of one account ran at once (limit 1); log in "
                 "%s",
                 (long long)most, log);
    assert_int_equal(most, 1);
    assert_int_equal(WEXITSTATUS(it_process_stop(sup, SIGTERM, 30000)), 0);
    assert_int_equal(WEXITSTATUS(it_process_stop(sup2, SIGTERM, 30000)), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_string_id_fails_and_frees_its_slot,
                                  stop_all),
        cmocka_unit_test_teardown(test_account_stored_two_ways_is_one,
                                  stop_all),
    };
    int rc = it_env_init(&env, "queue_ids");
    if (rc)
        return rc;
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    it_env_release(&env);
    return rc;
}
