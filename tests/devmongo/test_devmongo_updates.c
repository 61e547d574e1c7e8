/*
 * The update rules of MongoDB that the service depends on, checked through
 * libmongoc against DEALIMPORT_MONGODB_URI (the dev server, or any MongoDB
 * 5.0+, which passes as is): an update that fails changes nothing of its
 * document (update, findAndModify, ordered and unordered bulks, a multi
 * update); $inc on a non-number fails with TypeMismatch (14) in mongod's
 * words; an update whose result passes 16 MiB fails with 17419 and an
 * insert of a document over 16 MiB is refused with BadValue (2), both
 * leaving the collection as it was; two operators on one path (or on a
 * path and its prefix) are refused with ConflictingUpdateOperators (40).
 * Skips without the URI.
 *
 * Failure classes: 4 (one document poisons a loop) is what these rules
 * serve: a write that cannot apply to one document must fail that document
 * alone, leaving it whole for whoever reads it next; the service's loops
 * rely on exactly this and no more.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "dm_fixture.h"
#include "it_skip.h"

#define MIB (1024 * 1024)
#define INC_MESSAGE                                                            \
    "Cannot apply $inc to a value of non-numeric type. {_id: 2} has the "      \
    "field 'a' of non-numeric type string"

/* The document with _id id, copied into *out (the caller destroys it). */
static bool find_by_id(mongoc_collection_t *coll, int id, bson_t *out)
{
    bson_t *filter = BCON_NEW("_id", BCON_INT32(id));
    mongoc_cursor_t *cursor =
        mongoc_collection_find_with_opts(coll, filter, NULL, NULL);
    const bson_t *doc;
    bool found = mongoc_cursor_next(cursor, &doc);

    if (found)
        bson_copy_to(doc, out);
    mongoc_cursor_destroy(cursor);
    bson_destroy(filter);
    return found;
}

/* Asserts that the stored document _id id is byte for byte want. */
static void assert_unchanged(mongoc_collection_t *coll, int id,
                             const bson_t *want)
{
    bson_t got;

    assert_true(find_by_id(coll, id, &got));
    assert_int_equal(got.len, want->len);
    assert_memory_equal(bson_get_data(&got), bson_get_data(want), want->len);
    bson_destroy(&got);
}

/* Three documents: a numeric a, a string a (the poison), a numeric a. */
static mongoc_collection_t *three_docs(dm_fixture_t *fx, bson_t *poison)
{
    mongoc_collection_t *coll = dm_fresh(fx, "updates");
    bson_error_t error;

    for (int id = 1; id <= 3; id++) {
        bson_t *doc = id == 2 ? BCON_NEW("_id", BCON_INT32(id), "a",
                                         BCON_UTF8("text"), "b", BCON_INT32(1))
                              : BCON_NEW("_id", BCON_INT32(id), "a",
                                         BCON_INT32(10), "b", BCON_INT32(1));
        assert_true(
            mongoc_collection_insert_one(coll, doc, NULL, NULL, &error));
        if (id == 2)
            bson_copy_to(doc, poison);
        bson_destroy(doc);
    }
    return coll;
}

/* {$set: {c: 5}, $inc: {a: 1}}: the $set must not survive the $inc. */
static bson_t *set_and_inc(void)
{
    return BCON_NEW("$set", "{", "c", BCON_INT32(5), "}", "$inc", "{", "a",
                    BCON_INT32(1), "}");
}

static void test_failed_update_changes_nothing(void **state)
{
    dm_fixture_t *fx = *state;
    bson_t poison, reply;
    mongoc_collection_t *coll = three_docs(fx, &poison);
    bson_t *filter = BCON_NEW("_id", BCON_INT32(2));
    bson_t *update = set_and_inc();
    bson_error_t error;

    assert_false(mongoc_collection_update_one(coll, filter, update, NULL,
                                              &reply, &error));
    assert_int_equal(error.code, 14);
    assert_string_equal(error.message, INC_MESSAGE);
    bson_destroy(&reply);
    assert_unchanged(coll, 2, &poison);

    /* findAndModify: the same, as a command error. */
    {
        mongoc_find_and_modify_opts_t *fam = mongoc_find_and_modify_opts_new();

        mongoc_find_and_modify_opts_set_update(fam, update);
        assert_false(mongoc_collection_find_and_modify_with_opts(
            coll, filter, fam, &reply, &error));
        assert_int_equal(error.code, 14);
        assert_string_equal(error.message, INC_MESSAGE);
        bson_destroy(&reply);
        mongoc_find_and_modify_opts_destroy(fam);
    }
    assert_unchanged(coll, 2, &poison);

    bson_destroy(update);
    bson_destroy(filter);
    bson_destroy(&poison);
    mongoc_collection_destroy(coll);
}

/* One bulk of three updates of which the middle one cannot apply. */
static void run_bulk(mongoc_collection_t *coll, bool ordered, bson_t *reply,
                     bson_error_t *error)
{
    bson_t *opts = BCON_NEW("ordered", BCON_BOOL(ordered));
    mongoc_bulk_operation_t *bulk =
        mongoc_collection_create_bulk_operation_with_opts(coll, opts);

    for (int id = 1; id <= 3; id++) {
        bson_t *filter = BCON_NEW("_id", BCON_INT32(id));
        bson_t *update = set_and_inc();

        assert_true(mongoc_bulk_operation_update_one_with_opts(
            bulk, filter, update, NULL, error));
        bson_destroy(update);
        bson_destroy(filter);
    }
    assert_int_equal(mongoc_bulk_operation_execute(bulk, reply, error), 0);
    mongoc_bulk_operation_destroy(bulk);
    bson_destroy(opts);
}

static int32_t stored_a(mongoc_collection_t *coll, int id)
{
    bson_t doc;
    bson_iter_t it;
    int32_t a = -1;

    assert_true(find_by_id(coll, id, &doc));
    if (bson_iter_init_find(&it, &doc, "a") && BSON_ITER_HOLDS_INT32(&it))
        a = bson_iter_int32(&it);
    bson_destroy(&doc);
    return a;
}

static void test_bulk_update_atomic_per_document(void **state)
{
    dm_fixture_t *fx = *state;
    bson_t poison, reply;
    mongoc_collection_t *coll = three_docs(fx, &poison);
    bson_error_t error;

    /* Ordered: the first applies, the second fails whole, the third never
     * runs. */
    run_bulk(coll, true, &reply, &error);
    assert_int_equal(error.code, 14);
    assert_int_equal(dm_int(&reply, "nModified"), 1);
    bson_destroy(&reply);
    assert_int_equal(stored_a(coll, 1), 11);
    assert_unchanged(coll, 2, &poison);
    assert_int_equal(stored_a(coll, 3), 10);

    /* Unordered: both neighbours apply, the poison stays as it was. */
    run_bulk(coll, false, &reply, &error);
    assert_int_equal(error.code, 14);
    assert_int_equal(dm_int(&reply, "nModified"), 2);
    bson_destroy(&reply);
    assert_int_equal(stored_a(coll, 1), 12);
    assert_unchanged(coll, 2, &poison);
    assert_int_equal(stored_a(coll, 3), 11);

    /* A multi update that meets the poison fails, and leaves it whole. */
    {
        bson_t *all = bson_new();
        bson_t *update = set_and_inc();

        assert_false(mongoc_collection_update_many(coll, all, update, NULL,
                                                   &reply, &error));
        assert_int_equal(error.code, 14);
        bson_destroy(&reply);
        bson_destroy(update);
        bson_destroy(all);
    }
    assert_unchanged(coll, 2, &poison);

    bson_destroy(&poison);
    mongoc_collection_destroy(coll);
}

static char *filled(size_t n, char c)
{
    char *s = malloc(n + 1);

    assert_non_null(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static void test_update_past_16mib_fails(void **state)
{
    dm_fixture_t *fx = *state;
    mongoc_collection_t *coll = dm_fresh(fx, "big_update");
    char *nine = filled(9 * MIB, 'n');
    char *eight = filled(8 * MIB, 'e');
    bson_t *doc = BCON_NEW("_id", BCON_INT32(1), "big1", BCON_UTF8(nine));
    bson_t *filter = BCON_NEW("_id", BCON_INT32(1));
    bson_t *update = BCON_NEW("$set", "{", "marker", BCON_INT32(1), "big2",
                              BCON_UTF8(eight), "}");
    bson_t reply;
    bson_error_t error;

    assert_true(mongoc_collection_insert_one(coll, doc, NULL, NULL, &error));
    assert_false(mongoc_collection_update_one(coll, filter, update, NULL,
                                              &reply, &error));
    assert_int_equal(error.code, 17419);
    assert_string_equal(error.message,
                        "Resulting document after update is larger than "
                        "16777216");
    bson_destroy(&reply);
    assert_unchanged(coll, 1, doc);

    bson_destroy(update);
    bson_destroy(filter);
    bson_destroy(doc);
    free(eight);
    free(nine);
    mongoc_collection_destroy(coll);
}

static void test_insert_past_16mib_refused(void **state)
{
    dm_fixture_t *fx = *state;
    mongoc_collection_t *coll = dm_fresh(fx, "big_insert");
    /* 16 MiB and a little: within what a command may carry (16 MiB + 16
     * KiB), so it reaches the server, which must refuse the document. */
    char *big = filled(16 * MIB, 'b');
    bson_t *doc = BCON_NEW("_id", BCON_INT32(1), "big", BCON_UTF8(big));
    bson_t *cmd = BCON_NEW("insert", BCON_UTF8("big_insert"), "documents", "[",
                           BCON_DOCUMENT(doc), "]");
    bson_t reply, empty = BSON_INITIALIZER;
    bson_error_t error;
    bson_iter_t it;
    char want[128];

    assert_true(doc->len > 16 * MIB);
    (void)mongoc_collection_write_command_with_opts(coll, cmd, NULL, &reply,
                                                    &error);
    assert_int_equal(dm_int(&reply, "n"), 0);
    assert_true(bson_iter_init(&it, &reply));
    assert_true(bson_iter_find_descendant(&it, "writeErrors.0.code", &it));
    assert_int_equal(bson_iter_as_int64(&it), 2);
    snprintf(want, sizeof(want),
             "object to insert too large. size in bytes: %u, max size: "
             "16777216",
             (unsigned)doc->len);
    assert_true(bson_iter_init(&it, &reply));
    assert_true(bson_iter_find_descendant(&it, "writeErrors.0.errmsg", &it));
    assert_string_equal(bson_iter_utf8(&it, NULL), want);
    bson_destroy(&reply);
    assert_int_equal(mongoc_collection_count_documents(coll, &empty, NULL, NULL,
                                                       NULL, &error),
                     0);

    bson_destroy(cmd);
    bson_destroy(doc);
    free(big);
    mongoc_collection_destroy(coll);
}

/* Two operators on one path, or on a path and its prefix, are refused
 * with ConflictingUpdateOperators (40) before any document is looked at
 * (mongod parses the update first): the document is unchanged, through
 * update and findAndModify alike. The development server applied both
 * ($set then $inc), so a service update that names a path twice would
 * pass the suite and fail on every real server. */
static void test_conflicting_operators_refused(void **state)
{
    dm_fixture_t *fx = *state;
    bson_t poison, reply;
    mongoc_collection_t *coll = three_docs(fx, &poison);
    bson_t *filter = BCON_NEW("_id", BCON_INT32(1));
    bson_t *same = BCON_NEW("$set", "{", "b", BCON_INT32(3), "}", "$inc", "{",
                            "b", BCON_INT32(1), "}");
    bson_t *prefix = BCON_NEW("$set", "{", "b.c", BCON_INT32(3), "}", "$unset",
                              "{", "b", BCON_UTF8(""), "}");
    bson_t *none = BCON_NEW("_id", BCON_INT32(99));
    bson_t before;
    bson_error_t error;
    mongoc_find_and_modify_opts_t *fam = mongoc_find_and_modify_opts_new();

    assert_true(find_by_id(coll, 1, &before));
    assert_false(
        mongoc_collection_update_one(coll, filter, same, NULL, &reply, &error));
    assert_int_equal(error.code, 40);
    assert_non_null(strstr(error.message, "would create a conflict at 'b'"));
    bson_destroy(&reply);
    assert_false(mongoc_collection_update_one(coll, filter, prefix, NULL,
                                              &reply, &error));
    assert_int_equal(error.code, 40);
    bson_destroy(&reply);
    /* refused even when nothing matches */
    assert_false(
        mongoc_collection_update_one(coll, none, same, NULL, &reply, &error));
    assert_int_equal(error.code, 40);
    bson_destroy(&reply);
    mongoc_find_and_modify_opts_set_update(fam, same);
    assert_false(mongoc_collection_find_and_modify_with_opts(coll, filter, fam,
                                                             &reply, &error));
    assert_int_equal(error.code, 40);
    bson_destroy(&reply);
    assert_unchanged(coll, 1, &before);

    mongoc_find_and_modify_opts_destroy(fam);
    bson_destroy(&before);
    bson_destroy(&poison);
    bson_destroy(filter);
    bson_destroy(same);
    bson_destroy(prefix);
    bson_destroy(none);
    mongoc_collection_destroy(coll);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failed_update_changes_nothing),
        cmocka_unit_test(test_bulk_update_atomic_per_document),
        cmocka_unit_test(test_update_past_16mib_fails),
        cmocka_unit_test(test_insert_past_16mib_refused),
        cmocka_unit_test(test_conflicting_operators_refused),
    };
    return DM_RUN(tests, dm_group_setup, dm_group_teardown);
}
