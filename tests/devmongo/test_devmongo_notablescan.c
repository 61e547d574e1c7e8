/*
 * The development server's notablescan mode, as mongod's `--setParameter
 * notablescan=1`: on the service's collections a find, count,
 * countDocuments, distinct, update, delete or findAndModify with predicates
 * that no index prefix can serve is refused with NoQueryExecutionPlans (291)
 * and mongod's message; an empty query, a query whose leading index field is
 * constrained, an $or whose every branch is indexed and a partial index whose
 * filter the query implies (on the same path, as mongod checks it) are
 * served; other collections are left alone; devNoTableScan switches it. Runs
 * on the dev server only: skips on a real one, fails on the dev server if
 * the command is missing.
 *
 * Failure classes: 3 (every recurring query on an index) is what this mode
 * makes a test failure instead of a production surprise.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "dm_fixture.h"
#include "it_skip.h"

#define NO_PLAN "No indexed plans available, and running with 'notablescan'"

static void switch_notablescan(dm_fixture_t *fx, bool on)
{
    bson_error_t error;

    assert_true(
        dm_admin(fx, BCON_NEW("devNoTableScan", BCON_BOOL(on)), NULL, &error));
}

/* Runs find(filter) to its end; 0 if it works, else the error code. */
static uint32_t find_code(mongoc_collection_t *coll, bson_t *filter)
{
    mongoc_cursor_t *cursor =
        mongoc_collection_find_with_opts(coll, filter, NULL, NULL);
    const bson_t *doc;
    bson_error_t error;
    uint32_t code = 0;

    while (mongoc_cursor_next(cursor, &doc))
        ;
    if (mongoc_cursor_error(cursor, &error)) {
        code = error.code;
        if (code == 291)
            assert_string_equal(error.message, NO_PLAN);
    }
    mongoc_cursor_destroy(cursor);
    bson_destroy(filter);
    return code;
}

static uint32_t count_code(mongoc_collection_t *coll, bson_t *filter)
{
    bson_error_t error;
    int64_t n = mongoc_collection_count_documents(coll, filter, NULL, NULL,
                                                  NULL, &error);

    bson_destroy(filter);
    return n < 0 ? error.code : 0;
}

static mongoc_collection_t *queues(dm_fixture_t *fx)
{
    mongoc_collection_t *coll = dm_fresh(fx, "queues");
    bson_error_t error;

    for (int i = 0; i < 5; i++) {
        bson_t *doc =
            BCON_NEW("_id", BCON_INT32(i), "source", BCON_UTF8("deals"),
                     "status", BCON_UTF8(i < 3 ? "pending" : "completed"),
                     "claimed_by", BCON_UTF8("host-a"));
        assert_true(
            mongoc_collection_insert_one(coll, doc, NULL, NULL, &error));
        bson_destroy(doc);
    }
    assert_true(dm_create_index(
        coll, BCON_NEW("source", BCON_INT32(1), "status", BCON_INT32(1)),
        "source_status", NULL));
    return coll;
}

static void test_refused_without_an_index(void **state)
{
    dm_fixture_t *fx = *state;
    mongoc_collection_t *coll;
    bson_t *cmd, *update, reply;
    bson_error_t error;

    if (!fx->devmongo)
        IT_SKIP_MACHINE("not the development server");
    coll = queues(fx);
    switch_notablescan(fx, true);

    /* Served: the index's leading field, an empty query, _id. */
    assert_int_equal(find_code(coll, BCON_NEW("source", BCON_UTF8("deals"),
                                              "status", BCON_UTF8("pending"))),
                     0);
    assert_int_equal(find_code(coll, bson_new()), 0);
    assert_int_equal(count_code(coll, bson_new()), 0);
    assert_int_equal(find_code(coll, BCON_NEW("_id", BCON_INT32(2))), 0);
    assert_int_equal(
        find_code(coll, BCON_NEW("$or", "[", "{", "source", BCON_UTF8("deals"),
                                 "}", "{", "_id", BCON_INT32(1), "}", "]")),
        0);

    /* Refused: the index's second field alone, a field of no index, an $or
     * with one branch unindexed. */
    assert_int_equal(find_code(coll, BCON_NEW("status", BCON_UTF8("pending"))),
                     291);
    assert_int_equal(
        count_code(coll, BCON_NEW("claimed_by", BCON_UTF8("host-a"))), 291);
    assert_int_equal(
        find_code(coll, BCON_NEW("$or", "[", "{", "source", BCON_UTF8("deals"),
                                 "}", "{", "status", BCON_UTF8("x"), "}", "]")),
        291);

    cmd = BCON_NEW("count", BCON_UTF8("queues"), "query", "{", "claimed_by",
                   BCON_UTF8("host-a"), "}");
    assert_false(
        mongoc_collection_command_simple(coll, cmd, NULL, &reply, &error));
    assert_int_equal(error.code, 291);
    bson_destroy(&reply);
    bson_destroy(cmd);

    cmd = BCON_NEW("distinct", BCON_UTF8("queues"), "key", BCON_UTF8("source"),
                   "query", "{", "status", BCON_UTF8("pending"), "}");
    assert_false(
        mongoc_collection_command_simple(coll, cmd, NULL, &reply, &error));
    assert_int_equal(error.code, 291);
    bson_destroy(&reply);
    bson_destroy(cmd);

    update = BCON_NEW("$set", "{", "seen", BCON_BOOL(true), "}");
    {
        bson_t *filter = BCON_NEW("claimed_by", BCON_UTF8("host-a"));
        mongoc_find_and_modify_opts_t *fam = mongoc_find_and_modify_opts_new();

        assert_false(mongoc_collection_update_many(coll, filter, update, NULL,
                                                   &reply, &error));
        assert_int_equal(error.code, 291);
        assert_string_equal(error.message, NO_PLAN);
        bson_destroy(&reply);
        assert_false(
            mongoc_collection_delete_many(coll, filter, NULL, &reply, &error));
        assert_int_equal(error.code, 291);
        bson_destroy(&reply);
        mongoc_find_and_modify_opts_set_update(fam, update);
        assert_false(mongoc_collection_find_and_modify_with_opts(
            coll, filter, fam, &reply, &error));
        assert_int_equal(error.code, 291);
        bson_destroy(&reply);
        mongoc_find_and_modify_opts_destroy(fam);
        bson_destroy(filter);
    }
    bson_destroy(update);

    /* Off again: the same query is served. */
    switch_notablescan(fx, false);
    assert_int_equal(find_code(coll, BCON_NEW("status", BCON_UTF8("pending"))),
                     0);
    mongoc_collection_destroy(coll);
}

static void test_partial_index_and_other_collections(void **state)
{
    dm_fixture_t *fx = *state;
    mongoc_collection_t *deals, *other;
    bson_oid_t qid;
    bson_t reply;
    bson_error_t error;

    if (!fx->devmongo)
        IT_SKIP_MACHINE("not the development server");
    deals = dm_fresh(fx, "deals");
    other = dm_fresh(fx, "not_the_service");
    bson_oid_init(&qid, NULL);
    {
        bson_t *doc =
            BCON_NEW("account_id", BCON_INT32(7), "import", "{", "queue_id",
                     BCON_OID(&qid), "line", BCON_INT32(1), "}");

        assert_true(
            mongoc_collection_insert_one(deals, doc, NULL, NULL, &error));
        assert_true(
            mongoc_collection_insert_one(other, doc, NULL, NULL, &error));
        bson_destroy(doc);
    }
    assert_true(dm_create_index(
        deals,
        BCON_NEW("account_id", BCON_INT32(1), "import.queue_id", BCON_INT32(1),
                 "import.line", BCON_INT32(1)),
        "account_import_line",
        BCON_NEW("import", "{", "$exists", BCON_BOOL(true), "}")));
    switch_notablescan(fx, true);

    /* mongod proves a partial filter on the same path only: a predicate on
     * import.queue_id does not imply {import: {$exists: true}}. */
    assert_int_equal(
        count_code(deals, BCON_NEW("account_id", BCON_INT32(7),
                                   "import.queue_id", BCON_OID(&qid))),
        291);
    assert_int_equal(
        count_code(deals, BCON_NEW("account_id", BCON_INT32(7),
                                   "import.queue_id", BCON_OID(&qid), "import",
                                   "{", "$exists", BCON_BOOL(true), "}")),
        0);
    /* The leading field unconstrained: refused. */
    assert_int_equal(
        count_code(deals, BCON_NEW("import.queue_id", BCON_OID(&qid), "import",
                                   "{", "$exists", BCON_BOOL(true), "}")),
        291);
    /* A collection that is not the service's: served by a scan. */
    assert_int_equal(
        count_code(other, BCON_NEW("import.queue_id", BCON_OID(&qid))), 0);

    /* The switch is the admin database's only. */
    {
        bson_t *cmd = BCON_NEW("devNoTableScan", BCON_BOOL(false));

        assert_false(mongoc_client_command_simple(fx->client, fx->dbname, cmd,
                                                  NULL, &reply, &error));
        assert_int_equal(error.code, 13);
        bson_destroy(&reply);
        bson_destroy(cmd);
    }
    switch_notablescan(fx, false);
    mongoc_collection_destroy(other);
    mongoc_collection_destroy(deals);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refused_without_an_index),
        cmocka_unit_test(test_partial_index_and_other_collections),
    };
    return DM_RUN(tests, dm_group_setup, dm_group_teardown);
}
