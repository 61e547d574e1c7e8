/*
 * sup_admin: the pure readers over tables (dates, a queue document as
 * `list` shows it), then, on the development database (skipped without it,
 * a failure where CI=true), the moves no worker runs (pending -> paused ->
 * pending -> cancelled, each only from its status, so a move never races a
 * claim), the recording of a pause or cancel for the supervisor that holds
 * an import (never on one it no longer holds, never turning a cancel into a
 * pause), the recorded requests and their clearing, get, counts and the
 * oldest pending import.
 *
 * Failure classes: 5 (a reply late by a lease): a record made after the
 * holder lost the import matches nothing (test_record); 11 (types): ids
 * stored as ObjectId are read as hex, a bytes_total absent is -1, not 0;
 * 12 (tenants): counts by account keep accounts apart.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "dip_bson.h"
#include "it_check.h"
#include "it_env.h"
#include "ts_indexes.h"
#include "sup_admin.h"

static it_env_t env;

static void test_iso8601(void **state)
{
    static const struct {
        int64_t ms;
        const char *want;
    } cases[] = {
        {0, "1970-01-01T00:00:00.000Z"},
        {1, "1970-01-01T00:00:00.001Z"},
        {1700000000123, "2023-11-14T22:13:20.123Z"},
        {-5, "1970-01-01T00:00:00.000Z"},
        {951782400999, "2000-02-29T00:00:00.999Z"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[32];
        assert_string_equal(sup_admin_iso8601(cases[i].ms, out), cases[i].want);
    }
}

static void test_summary(void **state)
{
    static const struct {
        const char *doc;
        const char *status, *file;
        double percent; /* -1: null */
        long long bytes_total, age_s;
    } cases[] = {
        {"{\"_id\": {\"$oid\": \"0123456789abcdef01234567\"}, "
         "\"status\": \"processing\", \"csv\": [{\"key\": \"k/a.csv\", "
         "\"name\": \"a.csv\"}], \"progress\": {\"bytes\": 250, "
         "\"bytes_total\": 1000, \"lines\": 9}, \"created_at\": {\"$date\": "
         "{\"$numberLong\": \"1000\"}}}",
         "processing", "a.csv", 25.0, 1000, 10},
        {"{\"_id\": \"0123456789ABCDEF01234567\", \"status\": "
         "\"completed\", \"csv\": [{\"key\": \"k/b.csv\"}]}",
         "completed", "k/b.csv", 100.0, -1, -1},
        {"{\"_id\": {\"$oid\": \"0123456789abcdef01234567\"}, \"csv\": "
         "[]}",
         "unknown", "", -1, -1, -1},
        /* no id (or one that is not an ObjectId in either form): none */
        {"{\"status\": \"pending\"}", NULL, NULL, -1, -1, -1},
        {"{\"_id\": \"q-1\", \"status\": \"pending\"}", NULL, NULL, -1, -1, -1},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bson_error_t e;
        bson_t *doc = bson_new_from_json((const uint8_t *)cases[i].doc, -1, &e);
        json_t *o;
        assert_non_null(doc);
        o = sup_admin_summary(doc, 11000);
        if (cases[i].status == NULL) {
            assert_null(o);
            bson_destroy(doc);
            continue;
        }
        assert_non_null(o);
        assert_string_equal(json_string_value(json_object_get(o, "id")),
                            "0123456789abcdef01234567");
        assert_string_equal(json_string_value(json_object_get(o, "status")),
                            cases[i].status);
        assert_string_equal(json_string_value(json_object_get(o, "file")),
                            cases[i].file);
        if (cases[i].percent < 0)
            assert_true(json_is_null(json_object_get(o, "percent")));
        else
            assert_true(json_real_value(json_object_get(o, "percent")) ==
                        cases[i].percent);
        assert_int_equal(json_integer_value(json_object_get(o, "bytes_total")),
                         cases[i].bytes_total);
        if (cases[i].age_s >= 0)
            assert_int_equal(json_integer_value(json_object_get(o, "age_s")),
                             cases[i].age_s);
        json_decref(o);
        bson_destroy(doc);
    }
}

static sup_admin_t *admin(const char *owner)
{
    sup_admin_t *a = sup_admin_new(env.client, env.dbname, owner);
    if (a == NULL)
        fail_msg("sup_admin_new failed");
    return a;
}

static void enqueue(const bson_oid_t *account, bson_oid_t *out, char hex[25])
{
    bson_oid_t user, pipeline;
    bson_oid_init(&user, NULL);
    bson_oid_init(&pipeline, NULL);
    it_enqueue(&env, "imports/deals/admin/a.csv", account, &user, &pipeline,
               "{\"Deal Name\":\"name\"}", out);
    bson_oid_to_string(out, hex);
}

static void test_moves(void **state)
{
    sup_admin_t *a = admin("host:1");
    bson_oid_t account, q;
    bson_t doc;
    char hex[25], err[512];
    (void)state;
    bson_oid_init(&account, NULL);
    enqueue(&account, &q, hex);
    assert_int_equal(
        sup_admin_move(a, hex, "pending", "paused", &doc, err, sizeof(err)), 1);
    assert_string_equal(dip_bson_get_str(&doc, "status"), "paused");
    bson_destroy(&doc);
    /* Only from its status: a second pause finds nothing to move. */
    assert_int_equal(
        sup_admin_move(a, hex, "pending", "paused", &doc, err, sizeof(err)), 0);
    assert_int_equal(
        sup_admin_move(a, hex, "paused", "pending", &doc, err, sizeof(err)), 1);
    bson_destroy(&doc);
    assert_int_equal(
        sup_admin_move(a, hex, "pending", "cancelled", &doc, err, sizeof(err)),
        1);
    /* A cancel is this supervisor's to finish. */
    assert_string_equal(dip_bson_get_str(&doc, "claimed_by"), "host:1");
    bson_destroy(&doc);
    assert_int_equal(sup_admin_get(a, hex, &doc, err, sizeof(err)), 1);
    assert_string_equal(dip_bson_get_str(&doc, "status"), "cancelled");
    bson_destroy(&doc);
    assert_int_equal(
        sup_admin_get(a, "0123456789abcdef01234567", &doc, err, sizeof(err)),
        0);
    sup_admin_destroy(&a);
    assert_null(a);
}

static void test_record(void **state)
{
    sup_admin_t *mine = admin("host:1"), *theirs = admin("host:2");
    bson_oid_t account, q;
    bson_t set = BSON_INITIALIZER;
    sup_admin_request_t reqs[4];
    char hex[25], err[512];
    (void)state;
    bson_oid_init(&account, NULL);
    enqueue(&account, &q, hex);
    BSON_APPEND_UTF8(&set, "status", "processing");
    BSON_APPEND_UTF8(&set, "claimed_by", "host:2");
    it_queue_set(&env, &q, &set);
    /* Recorded by host:1 for host:2, which holds it. */
    assert_int_equal(sup_admin_record(mine, hex, "host:2", "cancel", 1000, NULL,
                                      err, sizeof(err)),
                     1);
    /* A pause never undoes a recorded cancel. */
    assert_int_equal(sup_admin_record(mine, hex, "host:2", "pause", -1, "ops",
                                      err, sizeof(err)),
                     0);
    /* Not held by host:3: nothing recorded. */
    assert_int_equal(sup_admin_record(mine, hex, "host:3", "pause", -1, NULL,
                                      err, sizeof(err)),
                     0);
    assert_int_equal(sup_admin_recorded(mine, reqs, 4, err, sizeof(err)), 0);
    assert_int_equal(sup_admin_recorded(theirs, reqs, 4, err, sizeof(err)), 1);
    assert_string_equal(reqs[0].id, hex);
    assert_string_equal(reqs[0].action, "cancel");
    /* Who asked and through which supervisor, for the line of the one
     * that carries it out. */
    assert_int_equal(reqs[0].by_uid, 1000);
    assert_string_equal(reqs[0].by_key, "");
    assert_string_equal(reqs[0].via, "host:1");
    assert_int_equal(sup_admin_clear(theirs, hex, err, sizeof(err)), 0);
    assert_int_equal(sup_admin_recorded(theirs, reqs, 4, err, sizeof(err)), 0);
    bson_destroy(&set);
    sup_admin_destroy(&mine);
    sup_admin_destroy(&theirs);
}

static void test_counts(void **state)
{
    sup_admin_t *a = admin("host:1");
    bson_oid_t acc1, acc2, q;
    bson_t set = BSON_INITIALIZER;
    json_t *by_status = NULL, *by_account = NULL;
    char hex[25], key[25], err[512];
    int64_t pending_before;
    (void)state;
    /* Other tests' imports share the database: count relative to now. */
    assert_int_equal(
        sup_admin_counts(a, &by_status, &by_account, err, sizeof(err)), 0);
    pending_before = json_integer_value(json_object_get(by_status, "pending"));
    json_decref(by_status);
    json_decref(by_account);
    bson_oid_init(&acc1, NULL);
    bson_oid_init(&acc2, NULL);
    enqueue(&acc1, &q, hex);
    /* running as a claim leaves them: the account's key and a slot each
     * (the unique running_account_key_slot the supervisor makes) */
    bson_oid_to_string(&acc2, key);
    for (int slot = 0; slot < 2; slot++) {
        enqueue(&acc2, &q, hex);
        bson_reinit(&set);
        BSON_APPEND_UTF8(&set, "status", "processing");
        BSON_APPEND_UTF8(&set, "account_key", key);
        BSON_APPEND_INT32(&set, "account_slot", slot);
        it_queue_set(&env, &q, &set);
    }
    assert_int_equal(
        sup_admin_counts(a, &by_status, &by_account, err, sizeof(err)), 0);
    assert_int_equal(json_integer_value(json_object_get(by_status, "pending")),
                     pending_before + 1);
    {
        char h2[25];
        int found = 0;
        bson_oid_to_string(&acc2, h2);
        for (size_t i = 0; i < json_array_size(by_account); i++) {
            json_t *e = json_array_get(by_account, i);
            if (strcmp(json_string_value(json_object_get(e, "account")), h2) ==
                0) {
                found = 1;
                assert_int_equal(
                    json_integer_value(json_object_get(e, "processing")), 2);
            }
        }
        assert_true(found);
    }
    json_decref(by_status);
    json_decref(by_account);
    bson_destroy(&set);
    sup_admin_destroy(&a);
}

int main(void)
{
    const struct CMUnitTest pure[] = {
        cmocka_unit_test(test_iso8601),
        cmocka_unit_test(test_summary),
    };
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_moves),
        cmocka_unit_test(test_record),
        cmocka_unit_test(test_counts),
    };
    int rc = cmocka_run_group_tests(pure, NULL, NULL);
    if (rc != 0)
        return rc;
    /* The rest needs the database: without it, 77 (a failure where
     * CI=true), never a pass. */
    rc = it_env_init(&env, "sup_admin");
    if (rc)
        return rc;
    ts_service_indexes(&env);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    it_env_release(&env);
    return rc;
}
