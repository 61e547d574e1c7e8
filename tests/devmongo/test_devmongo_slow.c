/*
 * The development server's slow mode and its maxTimeMS, read through its own
 * operation log (devOpLog), never through the test's clock: a count of 40,000
 * documents at scan_us=35 takes at least 1.4 s of the server's time; a count
 * through an index costs per key and fetches nothing, a find through it
 * fetches each key's document; writes cost write_us each and every command
 * cmd_ms; and find, aggregate, countDocuments, count, distinct,
 * findAndModify, update and delete given a maxTimeMS they cannot meet fail
 * with MaxTimeMSExpired (50, "operation exceeded time limit") and are
 * recorded as ending within that limit and a margin, leaving the documents
 * as they were. Runs on the dev server only (its own admin commands): skips
 * on a real one, and on the dev server fails if the commands are missing.
 *
 * Failure classes: 1 (slow, not down) is what slow mode makes testable,
 * 2 (work the client abandoned still runs) is what maxTimeMS bounds: the
 * log shows the server stopped the work at the limit, not at the client's
 * socket timeout.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "dm_fixture.h"
#include "it_skip.h"

#define COUNT_DOCS 40000
/* What the server may overrun a maxTimeMS by: one sleep's granularity and
 * the Python work between two checks, on a loaded machine. */
#define MARGIN_MS 250.0
#define LIMIT_MS 200

static void need_devmongo(dm_fixture_t *fx)
{
    if (!fx->devmongo)
        IT_SKIP_MACHINE("not the development server: no slow mode to test");
}

static void set_slow(dm_fixture_t *fx, bson_t *prices)
{
    bson_error_t error;
    bool ok =
        dm_admin(fx, BCON_NEW("devSlow", BCON_DOCUMENT(prices)), NULL, &error);

    if (!ok)
        fprintf(stderr, "devSlow: %s\n", error.message);
    assert_true(ok);
    bson_destroy(prices);
}

static mongoc_collection_t *filled_collection(dm_fixture_t *fx,
                                              const char *name)
{
    mongoc_collection_t *coll = dm_fresh(fx, name);

    assert_true(dm_fill(coll, COUNT_DOCS));
    return coll;
}

static void test_count_costs_per_document(void **state)
{
    dm_fixture_t *fx = *state;
    mongoc_collection_t *coll;
    bson_t *filter;
    bson_t entry;
    bson_error_t error;

    need_devmongo(fx);
    coll = filled_collection(fx, "slow_count");
    set_slow(fx, BCON_NEW("scan_us", BCON_INT32(35)));

    /* countDocuments({}): a collection scan, 35 us a document. */
    filter = bson_new();
    assert_int_equal(mongoc_collection_count_documents(coll, filter, NULL, NULL,
                                                       NULL, &error),
                     COUNT_DOCS);
    bson_destroy(filter);
    assert_true(dm_last_op(fx, "slow_count", "aggregate", &entry));
    assert_int_equal(dm_int(&entry, "docsExamined"), COUNT_DOCS);
    assert_true(dm_double(&entry, "millis") >= COUNT_DOCS * 35 / 1000.0);
    bson_destroy(&entry);

    /* Through an index on k: a tenth of the keys, and a count needs no
     * document; a find fetches each. */
    assert_true(
        dm_create_index(coll, BCON_NEW("k", BCON_INT32(1)), "k_1", NULL));
    filter = BCON_NEW("k", BCON_INT32(3));
    assert_int_equal(mongoc_collection_count_documents(coll, filter, NULL, NULL,
                                                       NULL, &error),
                     COUNT_DOCS / 10);
    assert_true(dm_last_op(fx, "slow_count", "aggregate", &entry));
    assert_int_equal(dm_int(&entry, "keysExamined"), COUNT_DOCS / 10);
    assert_int_equal(dm_int(&entry, "docsExamined"), 0);
    assert_true(dm_double(&entry, "millis") >= COUNT_DOCS / 10 * 35 / 1000.0);
    bson_destroy(&entry);
    {
        mongoc_cursor_t *cursor =
            mongoc_collection_find_with_opts(coll, filter, NULL, NULL);
        const bson_t *doc;
        int n = 0;

        while (mongoc_cursor_next(cursor, &doc))
            n++;
        assert_false(mongoc_cursor_error(cursor, &error));
        assert_int_equal(n, COUNT_DOCS / 10);
        mongoc_cursor_destroy(cursor);
    }
    /* Its first batch: a key and a document for each of the 101. */
    assert_true(dm_last_op(fx, "slow_count", "find", &entry));
    assert_true(dm_int(&entry, "keysExamined") >= 101);
    assert_int_equal(dm_int(&entry, "docsExamined"),
                     dm_int(&entry, "keysExamined"));
    bson_destroy(&entry);
    bson_destroy(filter);

    /* The count command without a query reads the collection's size. */
    {
        bson_t *cmd = BCON_NEW("count", BCON_UTF8("slow_count"));
        bson_t reply;

        assert_true(
            mongoc_collection_command_simple(coll, cmd, NULL, &reply, &error));
        assert_int_equal(dm_int(&reply, "n"), COUNT_DOCS);
        bson_destroy(&reply);
        bson_destroy(cmd);
    }
    assert_true(dm_last_op(fx, "slow_count", "count", &entry));
    assert_int_equal(dm_int(&entry, "docsExamined"), 0);
    bson_destroy(&entry);

    set_slow(fx, BCON_NEW("scan_us", BCON_INT32(0)));
    mongoc_collection_destroy(coll);
}

static void test_writes_and_commands_cost(void **state)
{
    dm_fixture_t *fx = *state;
    mongoc_collection_t *coll;
    mongoc_bulk_operation_t *bulk;
    bson_t reply, entry;
    bson_error_t error;

    need_devmongo(fx);
    coll = dm_fresh(fx, "slow_writes");
    set_slow(fx,
             BCON_NEW("write_us", BCON_INT32(2000), "cmd_ms", BCON_INT32(30)));
    bulk = mongoc_collection_create_bulk_operation_with_opts(coll, NULL);
    for (int i = 0; i < 100; i++) {
        bson_t *doc = BCON_NEW("n", BCON_INT32(i));

        mongoc_bulk_operation_insert(bulk, doc);
        bson_destroy(doc);
    }
    assert_true(mongoc_bulk_operation_execute(bulk, &reply, &error));
    bson_destroy(&reply);
    mongoc_bulk_operation_destroy(bulk);
    assert_true(dm_last_op(fx, "slow_writes", "insert", &entry));
    assert_int_equal(dm_int(&entry, "docsWritten"), 100);
    assert_true(dm_double(&entry, "millis") >= 100 * 2.0 + 30.0);
    bson_destroy(&entry);

    set_slow(fx, BCON_NEW("write_us", BCON_INT32(0), "cmd_ms", BCON_INT32(0)));
    /* A price that is not a number is refused and changes nothing. */
    assert_false(
        dm_admin(fx, BCON_NEW("devSlow", "{", "scan_us", BCON_UTF8("x"), "}"),
                 &reply, &error));
    assert_int_equal(error.code, 2);
    bson_destroy(&reply);
    assert_true(dm_admin(fx, BCON_NEW("devSlow", "{", "}"), &reply, &error));
    assert_true(dm_double(&reply, "scan_us") == 0.0);
    bson_destroy(&reply);
    mongoc_collection_destroy(coll);
}

/* Every operation the log holds on the collection lasted at most its
 * maxTimeMS and the margin; returns how many carried one. */
static int assert_within_limits(dm_fixture_t *fx, const char *coll)
{
    char ns[160];
    bson_t reply;
    bson_error_t error;
    bson_iter_t it, ops;
    int limited = 0;

    snprintf(ns, sizeof(ns), "%s.%s", fx->dbname, coll);
    assert_true(dm_admin(fx,
                         BCON_NEW("devOpLog", BCON_INT32(1), "ns",
                                  BCON_UTF8(ns), "limit", BCON_INT32(10000)),
                         &reply, &error));
    assert_true(bson_iter_init_find(&it, &reply, "ops"));
    assert_true(bson_iter_recurse(&it, &ops));
    while (bson_iter_next(&ops)) {
        uint32_t len;
        const uint8_t *data;
        bson_t op;
        int64_t max_ms;
        double ms;

        bson_iter_document(&ops, &len, &data);
        assert_true(bson_init_static(&op, data, len));
        max_ms = dm_int(&op, "maxTimeMS");
        ms = dm_double(&op, "millis");
        if (max_ms > 0) {
            limited++;
            if (ms > (double)max_ms + MARGIN_MS)
                fail_msg("an operation ran %.1f ms with maxTimeMS %lld", ms,
                         (long long)max_ms);
        }
    }
    bson_destroy(&reply);
    return limited;
}

static void expect_expired(bool ok, const bson_error_t *error, const char *what)
{
    if (ok)
        fail_msg("%s met its maxTimeMS", what);
    if (error->code != 50 ||
        strcmp(error->message, "operation exceeded time limit") != 0)
        fail_msg("%s: error %u '%s', not 50", what, error->code,
                 error->message);
}

static void test_max_time_ms_honoured(void **state)
{
    dm_fixture_t *fx = *state;
    mongoc_collection_t *coll;
    bson_t *opts, *filter, *none, *cmd, *update;
    bson_t reply;
    bson_error_t error;
    const bson_t *doc;
    bool ok;

    need_devmongo(fx);
    coll = filled_collection(fx, "slow_limits");
    /* A full scan would take 4 s: far past the limit of each call. */
    set_slow(fx, BCON_NEW("scan_us", BCON_INT32(100)));
    opts = BCON_NEW("maxTimeMS", BCON_INT32(LIMIT_MS));
    filter = BCON_NEW("g", BCON_UTF8("g"));
    none = BCON_NEW("g", BCON_UTF8("none"));

    {
        mongoc_cursor_t *cursor =
            mongoc_collection_find_with_opts(coll, none, opts, NULL);

        ok = mongoc_cursor_next(cursor, &doc);
        ok = !mongoc_cursor_error(cursor, &error) && !ok;
        expect_expired(ok, &error, "find");
        mongoc_cursor_destroy(cursor);
    }
    {
        bson_t *pipeline = BCON_NEW("pipeline", "[", "{", "$match",
                                    BCON_DOCUMENT(none), "}", "]");
        mongoc_cursor_t *cursor = mongoc_collection_aggregate(
            coll, MONGOC_QUERY_NONE, pipeline, opts, NULL);

        ok = mongoc_cursor_next(cursor, &doc);
        ok = !mongoc_cursor_error(cursor, &error) && !ok;
        expect_expired(ok, &error, "aggregate");
        mongoc_cursor_destroy(cursor);
        bson_destroy(pipeline);
    }
    ok = mongoc_collection_count_documents(coll, filter, opts, NULL, NULL,
                                           &error) >= 0;
    expect_expired(ok, &error, "countDocuments");

    cmd = BCON_NEW("count", BCON_UTF8("slow_limits"), "query",
                   BCON_DOCUMENT(filter), "maxTimeMS", BCON_INT32(LIMIT_MS));
    ok = mongoc_collection_command_simple(coll, cmd, NULL, &reply, &error);
    expect_expired(ok, &error, "count");
    bson_destroy(&reply);
    bson_destroy(cmd);

    cmd = BCON_NEW("distinct", BCON_UTF8("slow_limits"), "key", BCON_UTF8("k"),
                   "query", BCON_DOCUMENT(filter), "maxTimeMS",
                   BCON_INT32(LIMIT_MS));
    ok = mongoc_collection_command_simple(coll, cmd, NULL, &reply, &error);
    expect_expired(ok, &error, "distinct");
    bson_destroy(&reply);
    bson_destroy(cmd);

    update = BCON_NEW("$set", "{", "touched", BCON_BOOL(true), "}");
    {
        mongoc_find_and_modify_opts_t *fam = mongoc_find_and_modify_opts_new();

        mongoc_find_and_modify_opts_set_update(fam, update);
        mongoc_find_and_modify_opts_set_max_time_ms(fam, LIMIT_MS);
        ok = mongoc_collection_find_and_modify_with_opts(coll, none, fam,
                                                         &reply, &error);
        expect_expired(ok, &error, "findAndModify");
        bson_destroy(&reply);
        mongoc_find_and_modify_opts_destroy(fam);
    }
    cmd =
        BCON_NEW("update", BCON_UTF8("slow_limits"), "updates", "[", "{", "q",
                 BCON_DOCUMENT(none), "u", BCON_DOCUMENT(update), "multi",
                 BCON_BOOL(true), "}", "]", "maxTimeMS", BCON_INT32(LIMIT_MS));
    ok = mongoc_collection_write_command_with_opts(coll, cmd, NULL, &reply,
                                                   &error);
    expect_expired(ok, &error, "update");
    bson_destroy(&reply);
    bson_destroy(cmd);

    cmd = BCON_NEW("delete", BCON_UTF8("slow_limits"), "deletes", "[", "{", "q",
                   BCON_DOCUMENT(none), "limit", BCON_INT32(0), "}", "]",
                   "maxTimeMS", BCON_INT32(LIMIT_MS));
    ok = mongoc_collection_write_command_with_opts(coll, cmd, NULL, &reply,
                                                   &error);
    expect_expired(ok, &error, "delete");
    bson_destroy(&reply);
    bson_destroy(cmd);

    /* Every one of them stopped at its limit, as the server measured. */
    assert_int_equal(assert_within_limits(fx, "slow_limits"), 8);
    set_slow(fx, BCON_NEW("scan_us", BCON_INT32(0)));
    {
        bson_t *touched = BCON_NEW("touched", BCON_BOOL(true));

        assert_int_equal(mongoc_collection_count_documents(coll, touched, NULL,
                                                           NULL, NULL, &error),
                         0);
        bson_destroy(touched);
    }
    {
        bson_t *empty = bson_new();

        assert_int_equal(mongoc_collection_count_documents(coll, empty, NULL,
                                                           NULL, NULL, &error),
                         COUNT_DOCS);
        bson_destroy(empty);
    }

    bson_destroy(update);
    bson_destroy(none);
    bson_destroy(filter);
    bson_destroy(opts);
    mongoc_collection_destroy(coll);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_count_costs_per_document),
        cmocka_unit_test(test_writes_and_commands_cost),
        cmocka_unit_test(test_max_time_ms_honoured),
    };
    return DM_RUN(tests, dm_group_setup, dm_group_teardown);
}
