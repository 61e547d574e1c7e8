/*
 * The development server's planner (scripts/devmongo/planner.py), table
 * driven through the wire: for each filter (and sort) over a collection
 * named as the service's with a known set of indexes, the plan the server
 * records in its operation log and whether notablescan refuses it. The
 * rules are mongod's: the leading field of an index must be constrained;
 * bounds go on over equalities; $nin and $ne bind less than an equality; a
 * contained $or is served when each branch is; a partial index needs its
 * filter implied on the same path; a sparse index cannot serve a query that
 * matches a missing field; a sort an index gives is an indexed plan; an
 * empty query is never refused. A partial {$type} index is implied by values
 * of that type, a partial range by values of its type past its bound. A $in on
 * a unique index is sought key by key and charged so. Runs on the dev server
 * only.
 *
 * Failure classes: 3 (every recurring query on an index) rests on these
 * rules being mongod's: kinder here, a scan would pass the suite and reach
 * production; stricter, a good index would be asked for twice.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "dm_fixture.h"
#include "it_skip.h"

typedef struct {
    const char *filter; /* extended JSON */
    const char *sort;   /* extended JSON or NULL */
    const char *plan;   /* the planSummary, or NULL when refused */
} plan_case_t;

static const plan_case_t cases[] = {
    /* the leading field, then equalities */
    {"{\"a\": 1}", NULL, "IXSCAN { a: 1, b: 1, c: 1 }"},
    {"{\"a\": 1, \"b\": {\"$gt\": 2}}", NULL, "IXSCAN { a: 1, b: 1, c: 1 }"},
    {"{\"b\": 1, \"z\": 1}", NULL, NULL},
    {"{\"c\": {\"$in\": [1, 2]}}", NULL, "IXSCAN { c: 1 }"},
    /* $nin binds less than the equality on another index */
    {"{\"_id\": {\"$nin\": [1]}, \"c\": 3}", NULL, "IXSCAN { c: 1 }"},
    /* an empty query is never refused; a sort an index gives is indexed */
    {"{}", NULL, "COLLSCAN"},
    {"{\"z\": 1}", "{\"a\": 1}", "IXSCAN { a: 1, b: 1, c: 1 }"},
    {"{\"z\": 1}", "{\"z\": 1}", NULL},
    /* $or: every branch indexed, the predicates beside it pushed in */
    {"{\"$or\": [{\"a\": 1}, {\"c\": 2}]}", NULL,
     "OR(IXSCAN { a: 1, b: 1, c: 1 }, IXSCAN { c: 1 })"},
    {"{\"$or\": [{\"a\": 1}, {\"z\": 2}]}", NULL, NULL},
    {"{\"a\": 1, \"$or\": [{\"b\": 1}, {\"b\": 2}]}", NULL,
     "OR(IXSCAN { a: 1, b: 1, c: 1 }, IXSCAN { a: 1, b: 1, c: 1 })"},
    /* partial {p: {$exists: true}} on {p.q, r}: implied on the same path
     * only; partial {s: 'on'}: by the equality */
    {"{\"p.q\": 1}", NULL, NULL},
    {"{\"p.q\": 1, \"p\": {\"$exists\": true}}", NULL,
     "IXSCAN { p.q: 1, r: 1 }"},
    {"{\"t\": 1, \"s\": \"on\"}", NULL, "IXSCAN { t: 1 }"},
    {"{\"t\": 1, \"s\": \"off\"}", NULL, NULL},
    /* sparse on {u}: not for a query that matches a missing u */
    {"{\"u\": 5}", NULL, "IXSCAN { u: 1 }"},
    {"{\"u\": null}", NULL, NULL},
    {"{\"u\": {\"$exists\": false}}", NULL, NULL},
    /* $exists: false bounds a regular index (to null) */
    {"{\"c\": {\"$exists\": false}}", NULL,
     "IXSCAN { c: 1 }"}, /* partial {v: {$type: 'string'}} on {k, v}, unique:
                          * implied by an equality or a $in whose values are all
                          * strings */
    {"{\"k\": 1, \"v\": \"x\"}", NULL, "IXSCAN { k: 1, v: 1 }"},
    {"{\"k\": 1, \"v\": {\"$in\": [\"x\", \"y\"]}}", NULL,
     "IXSCAN { k: 1, v: 1 }"},
    {"{\"k\": 1, \"v\": {\"$in\": [\"x\", 5]}}", NULL, NULL},
    {"{\"k\": 1, \"v\": 5}", NULL, NULL},
    /* partial {w: {$type: 'string', $gt: ''}} on {k, w}, unique (the index
     * a custom match field asks for): implied by strings past '' only */
    {"{\"k\": 1, \"w\": \"x\"}", NULL, "IXSCAN { k: 1, w: 1 }"},
    {"{\"k\": 1, \"w\": {\"$in\": [\"C3\", \"C2\"]}}", NULL,
     "IXSCAN { k: 1, w: 1 }"},
    {"{\"k\": 1, \"w\": \"\"}", NULL, NULL},
    {"{\"k\": 1, \"w\": {\"$in\": [\"x\", 5]}}", NULL, NULL},
    {"{\"k\": 1, \"w\": 5}", NULL, NULL},
    /* partial {on: 1} on {y}: an equality of another type is no match
     * (1 is not true in BSON); a $in of the one value is */
    {"{\"y\": 1, \"on\": 1}", NULL, "IXSCAN { y: 1 }"},
    {"{\"y\": 1, \"on\": {\"$in\": [1]}}", NULL, "IXSCAN { y: 1 }"},
    {"{\"y\": 1, \"on\": true}", NULL, NULL},
};

static void make_indexes(mongoc_collection_t *coll)
{
    bson_error_t error;
    bson_t *cmd = BCON_NEW(
        "createIndexes", BCON_UTF8("deals"), "indexes", "[", "{", "key", "{",
        "a", BCON_INT32(1), "b", BCON_INT32(1), "c", BCON_INT32(1), "}", "name",
        BCON_UTF8("abc"), "}", "{", "key", "{", "c", BCON_INT32(1), "}", "name",
        BCON_UTF8("c"), "}", "{", "key", "{", "p.q", BCON_INT32(1), "r",
        BCON_INT32(1), "}", "name", BCON_UTF8("pq_r"),
        "partialFilterExpression", "{", "p", "{", "$exists", BCON_BOOL(true),
        "}", "}", "}", "{", "key", "{", "t", BCON_INT32(1), "}", "name",
        BCON_UTF8("t_on"), "partialFilterExpression", "{", "s", BCON_UTF8("on"),
        "}", "}", "{", "key", "{", "u", BCON_INT32(1), "}", "name",
        BCON_UTF8("u_sparse"), "sparse", BCON_BOOL(true), "}", "{", "key", "{",
        "k", BCON_INT32(1), "v", BCON_INT32(1), "}", "name",
        BCON_UTF8("kv_str"), "unique", BCON_BOOL(true),
        "partialFilterExpression", "{", "v", "{", "$type", BCON_UTF8("string"),
        "}", "}", "}", "{", "key", "{", "k", BCON_INT32(1), "w", BCON_INT32(1),
        "}", "name", BCON_UTF8("kw_code"), "unique", BCON_BOOL(true),
        "partialFilterExpression", "{", "w", "{", "$type", BCON_UTF8("string"),
        "$gt", BCON_UTF8(""), "}", "}", "}", "{", "key", "{", "y",
        BCON_INT32(1), "}", "name", BCON_UTF8("y_on"),
        "partialFilterExpression", "{", "on", BCON_INT32(1), "}", "}", "]");

    assert_true(mongoc_collection_write_command_with_opts(coll, cmd, NULL, NULL,
                                                          &error));
    bson_destroy(cmd);
}

/* The plan of the last find on deals, or "" */
static void last_plan(dm_fixture_t *fx, char *out, size_t len)
{
    bson_t entry;
    bson_iter_t it;

    out[0] = '\0';
    if (!dm_last_op(fx, "deals", "find", &entry))
        return;
    if (bson_iter_init_find(&it, &entry, "planSummary") &&
        BSON_ITER_HOLDS_UTF8(&it))
        snprintf(out, len, "%s", bson_iter_utf8(&it, NULL));
    bson_destroy(&entry);
}

static void test_plans(void **state)
{
    dm_fixture_t *fx = *state;
    mongoc_collection_t *coll;
    bson_error_t error;

    if (!fx->devmongo)
        IT_SKIP_MACHINE("not the development server");
    coll = dm_fresh(fx, "deals");
    {
        bson_t *doc = BCON_NEW("a", BCON_INT32(1), "b", BCON_INT32(1), "c",
                               BCON_INT32(1), "s", BCON_UTF8("on"), "t",
                               BCON_INT32(1), "u", BCON_INT32(5));

        assert_true(
            mongoc_collection_insert_one(coll, doc, NULL, NULL, &error));
        bson_destroy(doc);
    }
    make_indexes(coll);
    assert_true(dm_admin(fx, BCON_NEW("devNoTableScan", BCON_BOOL(true)), NULL,
                         &error));
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const plan_case_t *c = &cases[i];
        bson_t *filter =
            bson_new_from_json((const uint8_t *)c->filter, -1, &error);
        bson_t *opts = NULL;
        mongoc_cursor_t *cursor;
        const bson_t *doc;
        char plan[256];
        bool failed;

        assert_non_null(filter);
        if (c->sort != NULL) {
            bson_t *sort =
                bson_new_from_json((const uint8_t *)c->sort, -1, &error);

            assert_non_null(sort);
            opts = BCON_NEW("sort", BCON_DOCUMENT(sort));
            bson_destroy(sort);
        }
        cursor = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
        while (mongoc_cursor_next(cursor, &doc))
            ;
        failed = mongoc_cursor_error(cursor, &error);
        if (c->plan == NULL) {
            if (!failed || error.code != 291)
                fail_msg("case %zu %s: served, not refused", i, c->filter);
        } else {
            if (failed)
                fail_msg("case %zu %s: %s", i, c->filter, error.message);
            last_plan(fx, plan, sizeof(plan));
            if (strcmp(plan, c->plan) != 0)
                fail_msg("case %zu %s: plan '%s', want '%s'", i, c->filter,
                         plan, c->plan);
        }
        mongoc_cursor_destroy(cursor);
        if (opts != NULL)
            bson_destroy(opts);
        bson_destroy(filter);
    }
    assert_true(dm_admin(fx, BCON_NEW("devNoTableScan", BCON_BOOL(false)), NULL,
                         &error));
    mongoc_collection_destroy(coll);
}

/* Finds a filter's documents; returns how many, with the operation log's
 * keysExamined and docsExamined of that find. */
static int find_counted(dm_fixture_t *fx, mongoc_collection_t *coll,
                        const char *json, int64_t *keys, int64_t *docs)
{
    bson_error_t error;
    bson_t *filter = bson_new_from_json((const uint8_t *)json, -1, &error);
    mongoc_cursor_t *cursor;
    const bson_t *doc;
    bson_t entry;
    int n = 0;

    assert_non_null(filter);
    cursor = mongoc_collection_find_with_opts(coll, filter, NULL, NULL);
    while (mongoc_cursor_next(cursor, &doc))
        n++;
    if (mongoc_cursor_error(cursor, &error))
        fail_msg("%s: %s", json, error.message);
    mongoc_cursor_destroy(cursor);
    bson_destroy(filter);
    assert_true(dm_last_op(fx, "deals", "find", &entry));
    *keys = dm_int(&entry, "keysExamined");
    *docs = dm_int(&entry, "docsExamined");
    bson_destroy(&entry);
    return n;
}

/* A $in on every field of a unique index is looked up key by key: each
 * distinct key sought is charged, found or not, and each document fetched;
 * no other document is examined, however many the collection holds. */
static void test_in_looked_up_per_key(void **state)
{
    dm_fixture_t *fx = *state;
    mongoc_collection_t *coll;
    bson_error_t error;
    int64_t keys, docs;

    if (!fx->devmongo)
        IT_SKIP_MACHINE("not the development server");
    coll = dm_fresh(fx, "deals");
    make_indexes(coll);
    for (int i = 0; i < 50; i++) {
        char v[16];
        bson_t *doc;

        snprintf(v, sizeof(v), "x%d", i);
        doc = BCON_NEW("_id", BCON_INT32(i), "k", BCON_INT32(1), "v",
                       BCON_UTF8(v));
        assert_true(
            mongoc_collection_insert_one(coll, doc, NULL, NULL, &error));
        bson_destroy(doc);
    }
    assert_int_equal(find_counted(fx, coll,
                                  "{\"k\": 1, \"v\": {\"$in\": [\"x1\", "
                                  "\"x2\", \"none\", \"x1\"]}}",
                                  &keys, &docs),
                     2);
    assert_int_equal(keys, 3);
    assert_int_equal(docs, 2);
    /* the _id index, the other predicates applied to what it finds */
    assert_int_equal(find_counted(fx, coll,
                                  "{\"_id\": {\"$in\": [3, 4, 99]}, "
                                  "\"v\": \"x3\"}",
                                  &keys, &docs),
                     1);
    assert_int_equal(keys, 3);
    assert_int_equal(docs, 2);
    mongoc_collection_destroy(coll);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plans),
        cmocka_unit_test(test_in_looked_up_per_key),
    };
    return DM_RUN(tests, dm_group_setup, dm_group_teardown);
}
