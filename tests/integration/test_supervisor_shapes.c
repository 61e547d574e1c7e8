/*
 * Queue documents of shapes the service never writes, left by someone
 * else (an operator's hand, an older version), beside healthy imports of
 * the same account: none holds the account's other imports for ever.
 *
 * Failure classes walked (../shared/FAILURE-CLASSES.md):
 * - 4 (one document poisons a loop), 9 (shared resources: an account's
 *   slot): an import left `processing` in one of its account's slots with
 *   a lease that is no date (missing, a string, null) has no supervisor
 *   that could renew it; it is an orphan as one whose lease ran out is,
 *   and is taken over, so the slot it holds is freed.
 * - 11 (types): a lease of another type is read as "no lease", never as
 *   one that still holds.
 * - 3 (indexes): the take-over's filter is the claim's own, on
 *   source_status_created and running_account_key_slot; the lease is a
 *   residual condition of both.
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
#include "it_env.h"
#include "it_tmp.h"

/* The log of the supervisor a case starts, in the test's folder. */
static char tmp_log[512];

static const char mappings[] =
    "{\"Deal Name\":\"name\",\"Value\":\"value\",\"Stage\":\"stage_id\"}";

static it_env_t env;

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

static void update(const bson_oid_t *qid, const char *json)
{
    mongoc_collection_t *c = it_coll(&env, "queues");
    bson_error_t error;
    bson_t *u = bson_new_from_json((const uint8_t *)json, -1, &error);
    bson_t f = BSON_INITIALIZER;
    assert_non_null(u);
    BSON_APPEND_OID(&f, "_id", qid);
    assert_true(mongoc_collection_update_one(c, &f, u, NULL, NULL, &error));
    bson_destroy(u);
    bson_destroy(&f);
    mongoc_collection_destroy(c);
}

/* The lease shapes an import left processing may carry that no running
 * supervisor writes. */
static const char *const leases[] = {
    "{\"$unset\":{\"lease_expires_at\":\"\"}}",
    "{\"$set\":{\"lease_expires_at\":\"soon\"}}",
    "{\"$set\":{\"lease_expires_at\":null}}",
};

/* Per shape: an import of the account left processing in its only slot
 * (limit 1) by a supervisor that is gone, with that lease, queued first;
 * then a healthy import of the same account. Both complete: the orphan is
 * taken over (claimed a second time), then the other runs. */
static void test_processing_without_a_dated_lease(void **state)
{
    static const char *const extra[] = {"DEALIMPORT_MAX_WORKERS=2",
                                        "DEALIMPORT_MAX_WORKERS_PER_ACCOUNT=1",
                                        "DEALIMPORT_POLL_MS=300", NULL};
    (void)state;
    put_file("imports/deals/shapes/lease.csv", 25);
    for (size_t k = 0; k < sizeof(leases) / sizeof(leases[0]); k++) {
        bson_oid_t acc, pipe, user, orphan, ok;
        char hex[25], set[512];
        pid_t sup;
        bson_t q;
        bson_oid_init(&user, NULL);
        bson_oid_init(&acc, NULL);
        bson_oid_to_string(&acc, hex);
        it_pipeline(&env, &acc, &pipe);
        it_enqueue(&env, "imports/deals/shapes/lease.csv", &acc, &user, &pipe,
                   mappings, &orphan);
        snprintf(set, sizeof(set),
                 "{\"$set\":{\"status\":\"processing\",\"in_progress\":true,"
                 "\"claims\":1,\"claimed_by\":\"a supervisor now gone\","
                 "\"account_key\":\"%s\",\"account_slot\":0}}",
                 hex);
        update(&orphan, set);
        update(&orphan, leases[k]);
        it_enqueue(&env, "imports/deals/shapes/lease.csv", &acc, &user, &pipe,
                   mappings, &ok);
        sup = it_supervisor_start(
            &env, extra,
            it_tmp_name(tmp_log, sizeof(tmp_log), "it-shapes-lease.log"));
        printf("lease %s\n", leases[k]);
        assert_int_equal(it_wait_final(&env, &orphan, 60000, &q), 0);
        printf("  orphan: %s, claims %lld\n", it_str(&q, "status"),
               (long long)dip_bson_get_int(&q, "claims", -1));
        assert_string_equal(it_str(&q, "status"), "completed");
        assert_int_equal(dip_bson_get_int(&q, "claims", -1), 2);
        bson_destroy(&q);
        assert_int_equal(it_wait_final(&env, &ok, 60000, &q), 0);
        printf("  healthy: %s\n", it_str(&q, "status"));
        assert_string_equal(it_str(&q, "status"), "completed");
        assert_int_equal(dip_bson_get_int(&q, "progress.added", -1), 25);
        bson_destroy(&q);
        assert_true(it_process_stop(sup, SIGTERM, 30000) >= 0);
    }
}

/* A document with two faults the claim meets one after the other: an _id
 * that is a string, and `claims` at the bottom of the 32-bit range (so
 * still negative once claimed: no epoch a fence could carry). It ends
 * failed, with the sentence about its claims, and frees its account's
 * only slot for the account's healthy import, instead of being claimed,
 * left processing because its end could not be fenced, and claimed again
 * after each lease. Classes: 4 (one document holds its account), 11
 * (types: a whole number below 0 is no epoch either). */
static void test_string_id_and_negative_claims(void **state)
{
    static const char *const extra[] = {"DEALIMPORT_MAX_WORKERS=2",
                                        "DEALIMPORT_MAX_WORKERS_PER_ACCOUNT=1",
                                        "DEALIMPORT_POLL_MS=300", NULL};
    mongoc_collection_t *c = it_coll(&env, "queues");
    bson_oid_t acc, pipe, user, tmpl, ok;
    bson_t f = BSON_INITIALIZER, *doc;
    const bson_t *cur;
    mongoc_cursor_t *cursor;
    bson_error_t error;
    bson_iter_t it;
    pid_t sup;
    bson_t q;
    int64_t deadline;
    const char *status = "";
    (void)state;
    bson_oid_init(&user, NULL);
    bson_oid_init(&acc, NULL);
    it_pipeline(&env, &acc, &pipe);
    put_file("imports/deals/shapes/strid.csv", 12);
    /* the bad one: a healthy document copied under a string _id */
    it_enqueue(&env, "imports/deals/shapes/strid.csv", &acc, &user, &pipe,
               mappings, &tmpl);
    BSON_APPEND_OID(&f, "_id", &tmpl);
    cursor = mongoc_collection_find_with_opts(c, &f, NULL, NULL);
    assert_true(mongoc_cursor_next(cursor, &cur));
    doc = bson_new();
    BSON_APPEND_UTF8(doc, "_id", "strid-negative-claims");
    bson_iter_init(&it, cur);
    while (bson_iter_next(&it))
        if (strcmp(bson_iter_key(&it), "_id") != 0)
            BSON_APPEND_VALUE(doc, bson_iter_key(&it), bson_iter_value(&it));
    BSON_APPEND_INT32(doc, "claims", INT32_MIN);
    mongoc_cursor_destroy(cursor);
    assert_true(mongoc_collection_delete_one(c, &f, NULL, NULL, &error));
    assert_true(mongoc_collection_insert_one(c, doc, NULL, NULL, &error));
    bson_destroy(doc);
    bson_destroy(&f);
    it_enqueue(&env, "imports/deals/shapes/strid.csv", &acc, &user, &pipe,
               mappings, &ok);
    sup = it_supervisor_start(
        &env, extra,
        it_tmp_name(tmp_log, sizeof(tmp_log), "it-shapes-strid.log"));
    assert_int_equal(it_wait_final(&env, &ok, 60000, &q), 0);
    printf("healthy: %s\n", it_str(&q, "status"));
    assert_string_equal(it_str(&q, "status"), "completed");
    bson_destroy(&q);
    /* the bad one ended failed (the final status is written before the
     * healthy import could take the slot) */
    bson_init(&f);
    BSON_APPEND_UTF8(&f, "_id", "strid-negative-claims");
    deadline = 0;
    cursor = mongoc_collection_find_with_opts(c, &f, NULL, NULL);
    if (mongoc_cursor_next(cursor, &cur)) {
        status = it_str(cur, "status");
        printf("string _id, claims %d: %s: %s\n", INT32_MIN, status,
               it_str(cur, "error"));
        deadline = strcmp(status, "failed") == 0 &&
                   strstr(it_str(cur, "error"), "claims") != NULL;
    }
    mongoc_cursor_destroy(cursor);
    bson_destroy(&f);
    mongoc_collection_destroy(c);
    assert_true(deadline);
    assert_true(it_process_stop(sup, SIGTERM, 30000) >= 0);
}

/* claims 1.5 in a document a few hundred bytes under 16 MiB: the claim
 * fits (claims becomes 2.5, no epoch), the failed mark with its sentence
 * does not. The document gives its account's only slot back all the same
 * (failed by an update that only shrinks it; the sentence is in the log),
 * so the account's healthy import runs, instead of waiting behind a
 * processing document set aside and taken over again for ever. Classes:
 * 4 (a document near 16 MiB), 9 (an account's slot). */
static void test_claimed_no_epoch_near_16mib(void **state)
{
    static const char *const extra[] = {"DEALIMPORT_MAX_WORKERS=2",
                                        "DEALIMPORT_MAX_WORKERS_PER_ACCOUNT=1",
                                        "DEALIMPORT_POLL_MS=300", NULL};
    mongoc_collection_t *c = it_coll(&env, "queues");
    bson_oid_t acc, pipe, user, bad, ok;
    bson_t f = BSON_INITIALIZER, *doc, m;
    const bson_t *cur;
    mongoc_cursor_t *cursor;
    bson_error_t error;
    bson_iter_t it;
    char *pad;
    size_t want;
    pid_t sup;
    bson_t q;
    (void)state;
    bson_oid_init(&user, NULL);
    bson_oid_init(&acc, NULL);
    it_pipeline(&env, &acc, &pipe);
    put_file("imports/deals/shapes/big.csv", 9);
    it_enqueue(&env, "imports/deals/shapes/big.csv", &acc, &user, &pipe,
               mappings, &bad);
    BSON_APPEND_OID(&f, "_id", &bad);
    cursor = mongoc_collection_find_with_opts(c, &f, NULL, NULL);
    assert_true(mongoc_cursor_next(cursor, &cur));
    doc = bson_new();
    bson_iter_init(&it, cur);
    while (bson_iter_next(&it))
        if (strcmp(bson_iter_key(&it), "mappings") != 0)
            BSON_APPEND_VALUE(doc, bson_iter_key(&it), bson_iter_value(&it));
    mongoc_cursor_destroy(cursor);
    BSON_APPEND_DOUBLE(doc, "claims", 1.5);
    /* the whole document 16 MiB - 250 bytes: room for the claim's fields
     * (about 150 bytes), not for the sentence of a failed mark */
    want = 16 * 1024 * 1024 - 250 - doc->len - 64;
    pad = malloc(want + 1);
    memset(pad, 'p', want);
    pad[want] = '\0';
    BSON_APPEND_DOCUMENT_BEGIN(doc, "mappings", &m);
    BSON_APPEND_UTF8(&m, "Deal Name", "name");
    BSON_APPEND_UTF8(&m, "Pad", pad);
    bson_append_document_end(doc, &m);
    free(pad);
    printf("document of %u bytes\n", doc->len);
    assert_true(mongoc_collection_replace_one(c, &f, doc, NULL, NULL, &error));
    bson_destroy(doc);
    it_enqueue(&env, "imports/deals/shapes/big.csv", &acc, &user, &pipe,
               mappings, &ok);
    sup = it_supervisor_start(
        &env, extra,
        it_tmp_name(tmp_log, sizeof(tmp_log), "it-shapes-big.log"));
    /* well within the minute the bad one would be set aside for */
    assert_int_equal(it_wait_final(&env, &ok, 40000, &q), 0);
    printf("healthy: %s\n", it_str(&q, "status"));
    assert_string_equal(it_str(&q, "status"), "completed");
    bson_destroy(&q);
    cursor = mongoc_collection_find_with_opts(c, &f, NULL, NULL);
    assert_true(mongoc_cursor_next(cursor, &cur));
    printf("near 16 MiB, claims 1.5: %s\n", it_str(cur, "status"));
    assert_string_equal(it_str(cur, "status"), "failed");
    assert_false(bson_has_field(cur, "account_slot"));
    mongoc_cursor_destroy(cursor);
    bson_destroy(&f);
    mongoc_collection_destroy(c);
    assert_true(it_file_contains(
        it_tmp_name(tmp_log, sizeof(tmp_log), "it-shapes-big.log"),
        "not a whole number from 0 up"));
    assert_true(it_process_stop(sup, SIGTERM, 30000) >= 0);
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
        cmocka_unit_test_teardown(test_processing_without_a_dated_lease,
                                  teardown),
        cmocka_unit_test_teardown(test_string_id_and_negative_claims, teardown),
        cmocka_unit_test_teardown(test_claimed_no_epoch_near_16mib, teardown),
    };
    int rc = it_env_init(&env, "shapes");
    if (rc)
        return rc;
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    it_env_release(&env);
    return rc;
}
