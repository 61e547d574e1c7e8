/*
 * The development server's DISTINCT_SCAN (scripts/devmongo/distinct.py),
 * table driven through the wire: for each pipeline over a collection with
 * the index {a, b, c}, whether the server plans it as mongod's distinct
 * scan (its operation log's planSummary) or reads every document its $match
 * reaches; for the distinct scans, the groups and what they cost. The rules
 * are mongod's: the group's key is a field of the index, every field before
 * it bound by an equality, every $match predicate on the index with exact
 * bounds, the $sort given by the index and starting with the group's key,
 * $first only, no multikey index. Runs on the dev server only.
 *
 * Failure classes: 3 (every recurring query on an index) and 1 (a slow
 * database) rest on these rules being mongod's: kinder here, a look that
 * reads every pending import on mongod would pass the suite and stop
 * claims in production; stricter, the look's gain would not show.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "dm_fixture.h"
#include "it_skip.h"

#define DISTINCT "DISTINCT_SCAN { a: 1, b: 1, c: 1 }"

typedef struct {
    const char *pipeline; /* extended JSON: {"p": [stages]} */
    int distinct;         /* planned as a distinct scan */
} distinct_case_t;

#define GROUP "{\"$group\": {\"_id\": \"$b\", \"f\": {\"$first\": \"$c\"}}}"
#define SORT "{\"$sort\": {\"a\": 1, \"b\": 1, \"c\": 1}}"

static const distinct_case_t cases[] = {
    /* the equality before the group's key, the index's order, $first */
    {"{\"p\": [{\"$match\": {\"a\": 1}}, " SORT ", " GROUP "]}", 1},
    {"{\"p\": [{\"$match\": {\"a\": 1}}, {\"$sort\": {\"b\": 1, \"c\": 1}}, "
     "" GROUP "]}",
     1},
    /* reversed, and exact bounds on the fields after the group's key */
    {"{\"p\": [{\"$match\": {\"a\": 1}}, {\"$sort\": {\"b\": -1, \"c\": "
     "-1}}, " GROUP "]}",
     1},
    {"{\"p\": [{\"$match\": {\"a\": 1, \"c\": {\"$gt\": 0}, \"b\": {\"$nin\": "
     "[9]}}}, " SORT ", " GROUP "]}",
     1},
    /* a predicate off the index: a filter for a fetch */
    {"{\"p\": [{\"$match\": {\"a\": 1, \"z\": 1}}, " SORT ", " GROUP "]}", 0},
    /* a null equality is told from a missing field by a fetch */
    {"{\"p\": [{\"$match\": {\"a\": 1, \"c\": null}}, " SORT ", " GROUP "]}",
     0},
    /* a range before the group's key */
    {"{\"p\": [{\"$match\": {\"a\": {\"$gt\": 0}}}, " SORT ", " GROUP "]}", 0},
    /* not sorted by the group's key first, or in mixed directions */
    {"{\"p\": [{\"$match\": {\"a\": 1}}, {\"$sort\": {\"c\": 1}}, " GROUP "]}",
     0},
    {"{\"p\": [{\"$match\": {\"a\": 1}}, {\"$sort\": {\"b\": 1, \"c\": "
     "-1}}, " GROUP "]}",
     0},
    /* another accumulator; a $first without the sort that says which */
    {"{\"p\": [{\"$match\": {\"a\": 1}}, " SORT
     ", {\"$group\": {\"_id\": \"$b\", \"n\": {\"$sum\": 1}}}]}",
     0},
    {"{\"p\": [{\"$match\": {\"a\": 1}}, " GROUP "]}", 0},
    /* a stage between the $sort and the $group */
    {"{\"p\": [{\"$match\": {\"a\": 1}}, " SORT ", {\"$limit\": 3}, " GROUP
     "]}",
     0},
    /* a group key that is not a plain field */
    {"{\"p\": [{\"$match\": {\"a\": 1}}, " SORT
     ", {\"$group\": {\"_id\": {\"x\": \"$b\"}}}]}",
     0},
};

static void insert(mongoc_collection_t *coll, int a, int b, int c)
{
    bson_error_t error;
    bson_t *doc =
        BCON_NEW("a", BCON_INT32(a), "b", BCON_INT32(b), "c", BCON_INT32(c));
    assert_true(mongoc_collection_insert_one(coll, doc, NULL, NULL, &error));
    bson_destroy(doc);
}

static mongoc_collection_t *fill(dm_fixture_t *fx)
{
    mongoc_collection_t *coll = dm_fresh(fx, "deals");
    bson_error_t error;
    bson_t *cmd =
        BCON_NEW("createIndexes", BCON_UTF8("deals"), "indexes", "[", "{",
                 "key", "{", "a", BCON_INT32(1), "b", BCON_INT32(1), "c",
                 BCON_INT32(1), "}", "name", BCON_UTF8("abc"), "}", "]");
    assert_true(mongoc_collection_write_command_with_opts(coll, cmd, NULL, NULL,
                                                          &error));
    bson_destroy(cmd);
    /* a = 1: b 1, 2, 3 with c from 5 down to 1; a = 2: b 4 and 5 */
    for (int c = 5; c >= 1; c--)
        for (int b = 1; b <= 3; b++)
            insert(coll, 1, b, c + b);
    insert(coll, 2, 4, 1);
    insert(coll, 2, 5, 1);
    return coll;
}

/* Runs the pipeline; its results into out (room n), how many; the plan
 * and what the operation log says it examined. */
static int aggregate(dm_fixture_t *fx, mongoc_collection_t *coll,
                     const char *json, int64_t (*out)[2], int n, char *plan,
                     size_t planlen, int64_t *keys, int64_t *docs)
{
    bson_error_t error;
    bson_t *p = bson_new_from_json((const uint8_t *)json, -1, &error);
    bson_t pipeline, entry;
    bson_iter_t it;
    mongoc_cursor_t *cursor;
    const bson_t *doc;
    int got = 0;
    assert_non_null(p);
    assert_true(bson_iter_init_find(&it, p, "p"));
    {
        const uint8_t *data;
        uint32_t len;
        bson_iter_array(&it, &len, &data);
        assert_true(bson_init_static(&pipeline, data, len));
    }
    cursor = mongoc_collection_aggregate(coll, MONGOC_QUERY_NONE, &pipeline,
                                         NULL, NULL);
    while (mongoc_cursor_next(cursor, &doc)) {
        if (got < n) {
            out[got][0] = dm_int(doc, "_id");
            out[got][1] = dm_int(doc, "f");
        }
        got++;
    }
    if (mongoc_cursor_error(cursor, &error))
        fail_msg("%s: %s", json, error.message);
    mongoc_cursor_destroy(cursor);
    bson_destroy(p);
    plan[0] = '\0';
    assert_true(dm_last_op(fx, "deals", "aggregate", &entry));
    if (bson_iter_init_find(&it, &entry, "planSummary") &&
        BSON_ITER_HOLDS_UTF8(&it))
        snprintf(plan, planlen, "%s", bson_iter_utf8(&it, NULL));
    *keys = dm_int(&entry, "keysExamined");
    *docs = dm_int(&entry, "docsExamined");
    bson_destroy(&entry);
    return got;
}

static void test_distinct_plans(void **state)
{
    dm_fixture_t *fx = *state;
    mongoc_collection_t *coll;
    int64_t rows[8][2], keys, docs;
    char plan[256];

    if (!fx->devmongo)
        IT_SKIP_MACHINE("not the development server");
    coll = fill(fx);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const distinct_case_t *c = &cases[i];
        aggregate(fx, coll, c->pipeline, rows, 8, plan, sizeof(plan), &keys,
                  &docs);
        if (c->distinct != (strcmp(plan, DISTINCT) == 0))
            fail_msg("case %zu %s: plan '%s'", i, c->pipeline, plan);
    }
    mongoc_collection_destroy(coll);
}

/* The groups of a distinct scan and its price: b 1, 2, 3 each with its
 * smallest c (the first in the index's order), in that order; two keys for
 * each of a = 1's three values of b and one more, no document (b and c
 * are in the index). Reversed, each b's largest c. */
static void test_distinct_groups(void **state)
{
    dm_fixture_t *fx = *state;
    mongoc_collection_t *coll;
    int64_t rows[8][2], keys, docs;
    char plan[256];

    if (!fx->devmongo)
        IT_SKIP_MACHINE("not the development server");
    coll = fill(fx);
    assert_int_equal(aggregate(fx, coll, cases[0].pipeline, rows, 8, plan,
                               sizeof(plan), &keys, &docs),
                     3);
    assert_string_equal(plan, DISTINCT);
    for (int b = 1; b <= 3; b++) {
        assert_int_equal(rows[b - 1][0], b);
        assert_int_equal(rows[b - 1][1], 1 + b);
    }
    assert_int_equal(keys, 7);
    assert_int_equal(docs, 0);
    assert_int_equal(aggregate(fx, coll, cases[2].pipeline, rows, 8, plan,
                               sizeof(plan), &keys, &docs),
                     3);
    for (int b = 3; b >= 1; b--) {
        assert_int_equal(rows[3 - b][0], b);
        assert_int_equal(rows[3 - b][1], 5 + b);
    }
    mongoc_collection_destroy(coll);
}

/* An array anywhere on the index's fields makes it multikey: mongod then
 * makes no distinct scan, and neither does the server; the groups are the
 * same as a $group over every document gives. */
static void test_multikey_no_distinct(void **state)
{
    dm_fixture_t *fx = *state;
    mongoc_collection_t *coll;
    int64_t rows[8][2], keys, docs;
    char plan[256];
    bson_error_t error;
    bson_t *doc;

    if (!fx->devmongo)
        IT_SKIP_MACHINE("not the development server");
    coll = fill(fx);
    doc = BCON_NEW("a", BCON_INT32(3), "b", BCON_INT32(1), "c", "[",
                   BCON_INT32(1), BCON_INT32(2), "]");
    assert_true(mongoc_collection_insert_one(coll, doc, NULL, NULL, &error));
    bson_destroy(doc);
    assert_int_equal(aggregate(fx, coll, cases[0].pipeline, rows, 8, plan,
                               sizeof(plan), &keys, &docs),
                     3);
    assert_string_not_equal(plan, DISTINCT);
    assert_true(docs >= 15);
    mongoc_collection_destroy(coll);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_distinct_plans),
        cmocka_unit_test(test_distinct_groups),
        cmocka_unit_test(test_multikey_no_distinct),
    };
    return DM_RUN(tests, dm_group_setup, dm_group_teardown);
}
