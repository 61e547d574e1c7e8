/*
 * The development server's quick paths give what its generic ones gave and
 * what MongoDB 5.0+ gives, checked through libmongoc against
 * DEALIMPORT_MONGODB_URI (any real server passes as is): a find returns a
 * document byte for byte as it was inserted, whatever its types (the
 * server's own encoder), and an inclusion projection as mongod gives it
 * (the projection's quick lane, and mongomock's for an array on a path);
 * {account_id, external_id: {$in: [...]}} over the partial unique index returns
 * each matching deal once, a multikey one included, and nothing of another
 * account or of a value of another type; an update grown past 16 MiB in steps
 * is refused with 17419 at the step that passes, leaving the document as the
 * step before left it (the size each document carries from its insert and
 * updates); a failed update of nested paths leaves every nested document and
 * array as it was (the copy of what an update touches); an update of a field a
 * unique index or its partial filter reads is checked (11000 with keyPattern
 * and keyValue) and one of another field leaves the index holding the keys it
 * held. An equality with a number matches the numbers of the same value
 * of every numeric type and nothing else. On the dev server only: what devOpLog
 * charges the $in find and an update (keys and documents examined, written), as
 * before.
 *
 * Failure classes: 4 (one document poisons a loop): the refused update
 * changes its document not at all, nested parts included, and the next
 * statement goes on; 11 (types): a value of another type never matches a
 * string $in, and every BSON type comes back as it went in; 14 (tests
 * that cannot fail): each assertion is a document, a code or a count that
 * the old paths gave and a broken quick path would not.
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

static void assert_same_bytes(const bson_t *got, const bson_t *want)
{
    assert_int_equal(got->len, want->len);
    assert_memory_equal(bson_get_data(got), bson_get_data(want), want->len);
}

static void assert_stored(mongoc_collection_t *coll, int id, const bson_t *want)
{
    bson_t got;

    assert_true(find_by_id(coll, id, &got));
    assert_same_bytes(&got, want);
    bson_destroy(&got);
}

static char *filled(size_t n, char c)
{
    char *s = malloc(n + 1);

    assert_non_null(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

/* Every type the service or a CRM might store, at its edges. */
static void test_find_returns_inserted_bytes(void **state)
{
    dm_fixture_t *fx = *state;
    mongoc_collection_t *coll = dm_fresh(fx, "bytes");
    bson_t doc = BSON_INITIALIZER, sub, arr;
    bson_oid_t oid;
    bson_decimal128_t dec;
    bson_error_t error;
    const uint8_t bin[3] = {0, 1, 2};

    bson_oid_init_from_string(&oid, "64b0000000000000000000cf");
    bson_decimal128_from_string("12.50", &dec);
    BSON_APPEND_INT32(&doc, "_id", 1);
    BSON_APPEND_INT32(&doc, "i32max", INT32_MAX);
    BSON_APPEND_INT32(&doc, "i32min", INT32_MIN);
    BSON_APPEND_INT64(&doc, "i64small", 5);
    BSON_APPEND_INT64(&doc, "i64big", INT64_MAX);
    BSON_APPEND_DOUBLE(&doc, "dbl", -0.0);
    BSON_APPEND_DOUBLE(&doc, "dbl2", 1e300);
    BSON_APPEND_BOOL(&doc, "yes", true);
    BSON_APPEND_BOOL(&doc, "no", false);
    BSON_APPEND_NULL(&doc, "nothing");
    BSON_APPEND_DATE_TIME(&doc, "old", -86400001);
    BSON_APPEND_DATE_TIME(&doc, "now", 1796000000123);
    BSON_APPEND_OID(&doc, "oid", &oid);
    BSON_APPEND_UTF8(&doc, "cl\xc3\xa9",
                     "\xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80");
    BSON_APPEND_UTF8(&doc, "empty", "");
    BSON_APPEND_BINARY(&doc, "bin", BSON_SUBTYPE_BINARY, bin, 3);
    BSON_APPEND_REGEX(&doc, "re", "^a.*", "i");
    BSON_APPEND_TIMESTAMP(&doc, "ts", 5, 6);
    BSON_APPEND_DECIMAL128(&doc, "dec", &dec);
    BSON_APPEND_DOCUMENT_BEGIN(&doc, "sub", &sub);
    BSON_APPEND_INT32(&sub, "_id", 7); /* an _id below the top stays put */
    BSON_APPEND_UTF8(&sub, "a", "b");
    bson_append_document_end(&doc, &sub);
    BSON_APPEND_ARRAY_BEGIN(&doc, "arr", &arr);
    BSON_APPEND_INT32(&arr, "0", 1);
    BSON_APPEND_UTF8(&arr, "1", "two");
    BSON_APPEND_DOCUMENT_BEGIN(&arr, "2", &sub);
    bson_append_document_end(&arr, &sub);
    BSON_APPEND_ARRAY_BEGIN(&arr, "3", &sub);
    bson_append_array_end(&arr, &sub);
    bson_append_array_end(&doc, &arr);

    assert_true(mongoc_collection_insert_one(coll, &doc, NULL, NULL, &error));
    assert_stored(coll, 1, &doc);

    bson_destroy(&doc);
    mongoc_collection_destroy(coll);
}

/* The first document of a find of {} with projection (destroyed) on coll,
 * as bytes, into out. */
static void find_projected(mongoc_collection_t *coll, bson_t *projection,
                           bson_t *out)
{
    bson_t filter = BSON_INITIALIZER;
    bson_t *opts = BCON_NEW("projection", BCON_DOCUMENT(projection));
    mongoc_cursor_t *cursor =
        mongoc_collection_find_with_opts(coll, &filter, opts, NULL);
    const bson_t *doc;
    bson_error_t error;

    assert_true(mongoc_cursor_next(cursor, &doc));
    bson_copy_to(doc, out);
    assert_false(mongoc_cursor_error(cursor, &error));
    mongoc_cursor_destroy(cursor);
    bson_destroy(opts);
    bson_destroy(projection);
}

static void assert_projects(mongoc_collection_t *coll, bson_t *projection,
                            bson_t *want)
{
    bson_t got;

    find_projected(coll, projection, &got);
    assert_same_bytes(&got, want);
    bson_destroy(&got);
    bson_destroy(want);
}

/* Inclusion projections as mongod gives them: the kept fields in the
 * document's order (not the projection's), _id first unless excluded, a
 * dotted path keeping its parent with only that child (an empty parent
 * when the child is absent, nothing under a scalar), an array on a path
 * projected element by element; the stored document unchanged after. */
static void test_find_projections(void **state)
{
    dm_fixture_t *fx = *state;
    mongoc_collection_t *coll = dm_fresh(fx, "projections");
    bson_t *doc =
        BCON_NEW("_id", BCON_INT32(1), "a", BCON_INT32(1), "b", "{", "c",
                 BCON_INT32(2), "d", BCON_INT32(3), "}", "e", BCON_UTF8("x"),
                 "f", "[", "{", "c", BCON_INT32(1), "d", BCON_INT32(0), "}",
                 "{", "c", BCON_INT32(2), "}", "]", "g", BCON_INT32(5));
    bson_error_t error;

    assert_true(mongoc_collection_insert_one(coll, doc, NULL, NULL, &error));
    assert_projects(coll,
                    BCON_NEW("e", BCON_INT32(1), "b.c", BCON_INT32(1), "a",
                             BCON_BOOL(true)),
                    BCON_NEW("_id", BCON_INT32(1), "a", BCON_INT32(1), "b", "{",
                             "c", BCON_INT32(2), "}", "e", BCON_UTF8("x")));
    assert_projects(coll, BCON_NEW("g.c", BCON_INT32(1), "zz", BCON_INT32(1)),
                    BCON_NEW("_id", BCON_INT32(1)));
    assert_projects(coll, BCON_NEW("b.z", BCON_INT32(1)),
                    BCON_NEW("_id", BCON_INT32(1), "b", "{", "}"));
    assert_projects(coll, BCON_NEW("f.c", BCON_INT32(1)),
                    BCON_NEW("_id", BCON_INT32(1), "f", "[", "{", "c",
                             BCON_INT32(1), "}", "{", "c", BCON_INT32(2), "}",
                             "]"));
    assert_projects(coll, BCON_NEW("_id", BCON_INT32(0), "g", BCON_INT32(1)),
                    BCON_NEW("g", BCON_INT32(5)));
    assert_stored(coll, 1, doc);
    bson_destroy(doc);
    mongoc_collection_destroy(coll);
}

/* Creates the unique index keys (destroyed) named name on coll, partial
 * on partial (destroyed). */
static void unique_index(mongoc_collection_t *coll, bson_t *keys,
                         const char *name, bson_t *partial)
{
    bson_t *cmd =
        BCON_NEW("createIndexes", BCON_UTF8(mongoc_collection_get_name(coll)),
                 "indexes", "[", "{", "key", BCON_DOCUMENT(keys), "name",
                 BCON_UTF8(name), "unique", BCON_BOOL(true),
                 "partialFilterExpression", BCON_DOCUMENT(partial), "}", "]");
    bson_error_t error;

    assert_true(mongoc_collection_write_command_with_opts(coll, cmd, NULL, NULL,
                                                          &error));
    bson_destroy(cmd);
    bson_destroy(keys);
    bson_destroy(partial);
}

static void insert_deal(mongoc_collection_t *coll, int id, int account,
                        bson_t *ext)
{
    bson_t *doc = BCON_NEW("_id", BCON_INT32(id), "account_id",
                           BCON_INT32(account), "value", BCON_INT32(id));
    bson_error_t error;
    bson_iter_t it;

    if (ext != NULL && bson_iter_init_find(&it, ext, "v"))
        bson_append_iter(doc, "external_id", -1, &it);
    assert_true(mongoc_collection_insert_one(coll, doc, NULL, NULL, &error));
    bson_destroy(doc);
    if (ext != NULL)
        bson_destroy(ext);
}

static mongoc_collection_t *deals(dm_fixture_t *fx)
{
    mongoc_collection_t *coll = dm_fresh(fx, "fast_deals");

    unique_index(
        coll,
        BCON_NEW("account_id", BCON_INT32(1), "external_id", BCON_INT32(1)),
        "account_external_id",
        BCON_NEW("external_id", "{", "$type", BCON_UTF8("string"), "}"));
    insert_deal(coll, 1, 1, BCON_NEW("v", BCON_UTF8("R1")));
    insert_deal(coll, 2, 1, BCON_NEW("v", BCON_UTF8("R2")));
    insert_deal(coll, 3, 1, BCON_NEW("v", BCON_UTF8("R3")));
    insert_deal(coll, 4, 2, BCON_NEW("v", BCON_UTF8("R1"))); /* other account */
    insert_deal(coll, 5, 1, BCON_NEW("v", BCON_INT32(7)));   /* not a string */
    insert_deal(coll, 6, 1,
                BCON_NEW("v", "[", BCON_UTF8("M1"), BCON_UTF8("M2"),
                         "]"));    /* multikey */
    insert_deal(coll, 7, 1, NULL); /* no key */
    return coll;
}

static int cmp_int(const void *a, const void *b)
{
    return *(const int *)a - *(const int *)b;
}

/* The ids of {account_id: 1, external_id: {$in: keys}} (destroyed), in
 * order: a real server returns them in its index's order, the dev server
 * in the $in list's. */
static int in_ids(mongoc_collection_t *coll, bson_t *keys, int *ids, int max)
{
    bson_t *filter = BCON_NEW("account_id", BCON_INT32(1), "external_id", "{",
                              "$in", BCON_ARRAY(keys), "}");
    mongoc_cursor_t *cursor =
        mongoc_collection_find_with_opts(coll, filter, NULL, NULL);
    const bson_t *doc;
    bson_error_t error;
    int n = 0;

    while (mongoc_cursor_next(cursor, &doc))
        if (n < max)
            ids[n++] = (int)dm_int(doc, "_id");
    assert_false(mongoc_cursor_error(cursor, &error));
    mongoc_cursor_destroy(cursor);
    bson_destroy(filter);
    bson_destroy(keys);
    qsort(ids, (size_t)(n < max ? n : max), sizeof(*ids), cmp_int);
    return n;
}

static void test_in_over_unique_index(void **state)
{
    dm_fixture_t *fx = *state;
    mongoc_collection_t *coll = deals(fx);
    int ids[16];
    bson_t entry;

    /* out of order, repeated, one absent, the multikey deal's second
     * value: R1 of account 1 once, R3, the array; never account 2's R1,
     * never the int 7 */
    assert_int_equal(
        in_ids(coll,
               BCON_NEW("0", BCON_UTF8("R3"), "1", BCON_UTF8("R1"), "2",
                        BCON_UTF8("nope"), "3", BCON_UTF8("R1"), "4",
                        BCON_UTF8("M2"), "5", BCON_UTF8("7")),
               ids, 16),
        3);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[1], 3);
    assert_int_equal(ids[2], 6);
    if (fx->devmongo) {
        /* five keys sought (R1 twice counts once), three deals fetched */
        assert_true(dm_last_op(fx, "fast_deals", "find", &entry));
        assert_int_equal(dm_int(&entry, "keysExamined"), 5);
        assert_int_equal(dm_int(&entry, "docsExamined"), 3);
        bson_destroy(&entry);
    }
    assert_int_equal(in_ids(coll, BCON_NEW("0", BCON_UTF8("absent")), ids, 16),
                     0);
    mongoc_collection_destroy(coll);
}

static void test_update_grown_past_16mib_in_steps(void **state)
{
    dm_fixture_t *fx = *state;
    mongoc_collection_t *coll = dm_fresh(fx, "grow");
    char *six = filled(6 * MIB, 's');
    bson_t *doc =
        BCON_NEW("_id", BCON_INT32(1), "tags", "[", BCON_UTF8("a"), "]");
    bson_t *filter = BCON_NEW("_id", BCON_INT32(1));
    const char *fields[3] = {"f1", "f2", "f3"};
    bson_t reply, before;
    bson_error_t error;

    assert_true(mongoc_collection_insert_one(coll, doc, NULL, NULL, &error));
    for (int i = 0; i < 3; i++) {
        bson_t *update = BCON_NEW("$set", "{", fields[i], BCON_UTF8(six), "}");
        bool ok;

        if (i == 2)
            assert_true(find_by_id(coll, 1, &before));
        ok = mongoc_collection_update_one(coll, filter, update, NULL, &reply,
                                          &error);
        bson_destroy(&reply);
        bson_destroy(update);
        if (i < 2) {
            assert_true(ok);
            continue;
        }
        assert_false(ok);
        assert_int_equal(error.code, 17419);
        assert_string_equal(error.message,
                            "Resulting document after update is larger than "
                            "16777216");
        assert_stored(coll, 1, &before);
        bson_destroy(&before);
    }
    /* through $addToSet too: two 3 MiB strings more pass the limit */
    {
        char *three_a = filled(3 * MIB, 'a'), *three_b = filled(3 * MIB, 'b');
        bson_t *update =
            BCON_NEW("$addToSet", "{", "tags", "{", "$each", "[",
                     BCON_UTF8(three_a), BCON_UTF8(three_b), "]", "}", "}");

        assert_true(find_by_id(coll, 1, &before));
        assert_false(mongoc_collection_update_one(coll, filter, update, NULL,
                                                  &reply, &error));
        assert_int_equal(error.code, 17419);
        bson_destroy(&reply);
        assert_stored(coll, 1, &before);
        bson_destroy(&before);
        bson_destroy(update);
        free(three_a);
        free(three_b);
    }
    /* a document replaced whole (the generic path) by a 10 MiB one: a
     * $set of 7 MiB then passes the limit */
    {
        char *ten = filled(10 * MIB, 't'), *seven = filled(7 * MIB, 'v');
        bson_t *big = BCON_NEW("_id", BCON_INT32(1), "t", BCON_UTF8(ten));
        bson_t *update = BCON_NEW("$set", "{", "v", BCON_UTF8(seven), "}");

        assert_true(mongoc_collection_replace_one(coll, filter, big, NULL,
                                                  &reply, &error));
        bson_destroy(&reply);
        assert_false(mongoc_collection_update_one(coll, filter, update, NULL,
                                                  &reply, &error));
        assert_int_equal(error.code, 17419);
        bson_destroy(&reply);
        assert_stored(coll, 1, big);
        bson_destroy(update);
        bson_destroy(big);
        free(seven);
        free(ten);
    }
    bson_destroy(filter);
    bson_destroy(doc);
    free(six);
    mongoc_collection_destroy(coll);
}

static void test_failed_nested_update_changes_nothing(void **state)
{
    dm_fixture_t *fx = *state;
    mongoc_collection_t *coll = dm_fresh(fx, "nested");
    bson_t *doc = BCON_NEW("_id", BCON_INT32(1), "n", "{", "x", BCON_INT32(1),
                           "tags", "[", BCON_UTF8("a"), "]", "deep", "{", "y",
                           BCON_INT32(1), "}", "}", "s", BCON_UTF8("text"));
    bson_t *filter = BCON_NEW("_id", BCON_INT32(1));
    bson_t *bad =
        BCON_NEW("$set", "{", "n.x", BCON_INT32(2), "n.deep.y", BCON_INT32(2),
                 "}", "$addToSet", "{", "n.tags", BCON_UTF8("b"), "}", "$inc",
                 "{", "s", BCON_INT32(1), "}");
    bson_t *good =
        BCON_NEW("$set", "{", "n.x", BCON_INT32(2), "n.deep.y", BCON_INT32(2),
                 "}", "$addToSet", "{", "n.tags", "{", "$each", "[",
                 BCON_UTF8("b"), BCON_UTF8("a"), BCON_UTF8("b"), "]", "}", "}");
    bson_t *want =
        BCON_NEW("_id", BCON_INT32(1), "n", "{", "x", BCON_INT32(2), "tags",
                 "[", BCON_UTF8("a"), BCON_UTF8("b"), "]", "deep", "{", "y",
                 BCON_INT32(2), "}", "}", "s", BCON_UTF8("text"));
    bson_t reply;
    bson_error_t error;

    assert_true(mongoc_collection_insert_one(coll, doc, NULL, NULL, &error));
    assert_false(
        mongoc_collection_update_one(coll, filter, bad, NULL, &reply, &error));
    assert_int_equal(error.code, 14);
    bson_destroy(&reply);
    assert_stored(coll, 1, doc);
    assert_true(
        mongoc_collection_update_one(coll, filter, good, NULL, &reply, &error));
    assert_int_equal(dm_int(&reply, "modifiedCount"), 1);
    bson_destroy(&reply);
    assert_stored(coll, 1, want);

    bson_destroy(want);
    bson_destroy(good);
    bson_destroy(bad);
    bson_destroy(filter);
    bson_destroy(doc);
    mongoc_collection_destroy(coll);
}

/* Runs {$set: {field: x}} on _id id, where value (destroyed) is {v: x};
 * the write error's code, 0 when it succeeded. keyvalue (may be NULL)
 * gets the error's keyValue. */
static int64_t set_one(mongoc_collection_t *coll, int id, const char *field,
                       bson_t *value, bson_t *keyvalue)
{
    bson_t *filter = BCON_NEW("_id", BCON_INT32(id));
    bson_t *update = bson_new();
    bson_t reply, set;
    bson_error_t error;
    bson_iter_t it, kv;
    int64_t code = 0;

    BSON_APPEND_DOCUMENT_BEGIN(update, "$set", &set);
    assert_true(bson_iter_init_find(&it, value, "v"));
    bson_append_iter(&set, field, -1, &it);
    bson_append_document_end(update, &set);
    if (!mongoc_collection_update_one(coll, filter, update, NULL, &reply,
                                      &error)) {
        code = error.code;
        if (keyvalue != NULL && bson_iter_init(&it, &reply) &&
            bson_iter_find_descendant(&it, "writeErrors.0.keyValue", &kv) &&
            BSON_ITER_HOLDS_DOCUMENT(&kv)) {
            uint32_t len;
            const uint8_t *data;
            bson_t view;

            bson_iter_document(&kv, &len, &data);
            assert_true(bson_init_static(&view, data, len));
            bson_copy_to(&view, keyvalue);
        }
    }
    bson_destroy(&reply);
    bson_destroy(update);
    bson_destroy(filter);
    bson_destroy(value);
    return code;
}

static void test_updates_and_unique_keys(void **state)
{
    dm_fixture_t *fx = *state;
    mongoc_collection_t *coll = deals(fx);
    bson_t kv, entry;
    bson_t *want_kv =
        BCON_NEW("account_id", BCON_INT32(1), "external_id", BCON_UTF8("R1"));
    bson_error_t error;

    /* a field no index reads: the keys stay as they were */
    assert_int_equal(
        set_one(coll, 2, "value", BCON_NEW("v", BCON_INT32(99)), NULL), 0);
    if (fx->devmongo) {
        assert_true(dm_last_op(fx, "fast_deals", "update", &entry));
        assert_int_equal(dm_int(&entry, "keysExamined"), 1);
        assert_int_equal(dm_int(&entry, "docsExamined"), 1);
        assert_int_equal(dm_int(&entry, "docsWritten"), 1);
        bson_destroy(&entry);
    }
    /* the same value again changes nothing and writes nothing */
    assert_int_equal(
        set_one(coll, 2, "value", BCON_NEW("v", BCON_INT32(99)), NULL), 0);
    if (fx->devmongo) {
        assert_true(dm_last_op(fx, "fast_deals", "update", &entry));
        assert_int_equal(dm_int(&entry, "docsWritten"), 0);
        bson_destroy(&entry);
    }
    /* deal 2 still holds R2: a new R2 is a duplicate */
    {
        bson_t *doc = BCON_NEW("_id", BCON_INT32(8), "account_id",
                               BCON_INT32(1), "external_id", BCON_UTF8("R2"));
        assert_false(
            mongoc_collection_insert_one(coll, doc, NULL, NULL, &error));
        assert_int_equal(error.code, 11000);
        bson_destroy(doc);
    }
    /* the key itself: checked, with the key in the error */
    bson_init(&kv);
    assert_int_equal(
        set_one(coll, 2, "external_id", BCON_NEW("v", BCON_UTF8("R1")), &kv),
        11000);
    assert_true(bson_equal(&kv, want_kv));
    bson_destroy(&kv);
    /* the partial filter's field: an int becoming a string joins the index
     * and meets R3 */
    assert_int_equal(
        set_one(coll, 5, "external_id", BCON_NEW("v", BCON_UTF8("R3")), NULL),
        11000);
    /* a move frees the old key */
    assert_int_equal(
        set_one(coll, 2, "external_id", BCON_NEW("v", BCON_UTF8("R9")), NULL),
        0);
    assert_int_equal(
        set_one(coll, 5, "external_id", BCON_NEW("v", BCON_UTF8("R2")), NULL),
        0);
    bson_destroy(want_kv);
    mongoc_collection_destroy(coll);

    /* an index whose keys no update touches but whose partial filter
     * reads the field updated: the document joins it, and meets a key */
    coll = dm_fresh(fx, "fast_partial");
    unique_index(coll, BCON_NEW("a", BCON_INT32(1)), "a_flagged",
                 BCON_NEW("flag", "{", "$exists", BCON_BOOL(true), "}"));
    insert_deal(coll, 1, 1, NULL);
    insert_deal(coll, 2, 1, NULL);
    assert_int_equal(set_one(coll, 1, "a", BCON_NEW("v", BCON_INT32(5)), NULL),
                     0);
    assert_int_equal(set_one(coll, 2, "a", BCON_NEW("v", BCON_INT32(5)), NULL),
                     0);
    assert_int_equal(
        set_one(coll, 1, "flag", BCON_NEW("v", BCON_BOOL(true)), NULL), 0);
    assert_int_equal(
        set_one(coll, 2, "flag", BCON_NEW("v", BCON_BOOL(true)), NULL), 11000);
    mongoc_collection_destroy(coll);
}

/* The _ids a find of filter returns, in order (at most max); the count. */
static int find_ids(mongoc_collection_t *coll, bson_t *filter, int *ids,
                    int max)
{
    bson_t *opts = BCON_NEW("sort", "{", "_id", BCON_INT32(1), "}");
    mongoc_cursor_t *c =
        mongoc_collection_find_with_opts(coll, filter, opts, NULL);
    const bson_t *doc;
    int n = 0;
    while (mongoc_cursor_next(c, &doc)) {
        bson_iter_t it;
        if (n < max && bson_iter_init_find(&it, doc, "_id"))
            ids[n] = bson_iter_int32(&it);
        n++;
    }
    assert_false(mongoc_cursor_error(c, NULL));
    mongoc_cursor_destroy(c);
    bson_destroy(opts);
    bson_destroy(filter);
    return n;
}

/* An equality with a number, as an update's compare-and-set names the
 * value it replaces (the quick lane of numbers): an int32, an int64 and a
 * double of the same value match, as an array holding one does; a
 * string, a bool, null, another number, NaN and a missing field do not;
 * a dotted path the same; {$eq: v, $not: {$type: "array"}} the same
 * but the array; an update by such a filter changes the one deal that
 * still holds the value. */
static void test_number_equality(void **state)
{
    dm_fixture_t *fx = *state;
    mongoc_collection_t *coll = dm_fresh(fx, "fast_numbers");
    static const char *const json[] = {
        "{\"_id\": 1, \"v\": {\"$numberInt\": \"5\"}}",
        "{\"_id\": 2, \"v\": {\"$numberLong\": \"5\"}}",
        "{\"_id\": 3, \"v\": {\"$numberDouble\": \"5.0\"}}",
        "{\"_id\": 4, \"v\": [{\"$numberInt\": \"5\"}]}",
        "{\"_id\": 5, \"v\": \"5\"}",
        "{\"_id\": 6, \"v\": true}",
        "{\"_id\": 7, \"v\": null}",
        "{\"_id\": 8}",
        "{\"_id\": 9, \"v\": {\"$numberDouble\": \"5.5\"}}",
        "{\"_id\": 10, \"v\": {\"$numberDouble\": \"NaN\"}}",
        "{\"_id\": 11, \"w\": {\"v\": {\"$numberLong\": \"5\"}}}",
    };
    int ids[16];
    bson_t reply;
    bson_t *sel, *set;
    for (size_t i = 0; i < sizeof(json) / sizeof(json[0]); i++) {
        bson_t *d = bson_new_from_json((const uint8_t *)json[i], -1, NULL);
        assert_non_null(d);
        assert_true(mongoc_collection_insert_one(coll, d, NULL, NULL, NULL));
        bson_destroy(d);
    }
    assert_int_equal(find_ids(coll, BCON_NEW("v", BCON_INT32(5)), ids, 16), 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(ids[i], i + 1);
    assert_int_equal(find_ids(coll, BCON_NEW("v", BCON_DOUBLE(5)), ids, 16), 4);
    assert_int_equal(ids[3], 4);
    assert_int_equal(find_ids(coll, BCON_NEW("v", BCON_DOUBLE(5.5)), ids, 16),
                     1);
    assert_int_equal(ids[0], 9);
    assert_int_equal(find_ids(coll, BCON_NEW("w.v", BCON_INT32(5)), ids, 16),
                     1);
    assert_int_equal(ids[0], 11);
    /* the compare-and-set's form: the same value, never an array */
    assert_int_equal(
        find_ids(coll,
                 BCON_NEW("v", "{", "$eq", BCON_INT32(5), "$not", "{", "$type",
                          BCON_UTF8("array"), "}", "}"),
                 ids, 16),
        3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(ids[i], i + 1);
    assert_int_equal(
        find_ids(coll,
                 BCON_NEW("v", "{", "$eq", BCON_UTF8("5"), "$not", "{", "$type",
                          BCON_UTF8("array"), "}", "}"),
                 ids, 16),
        1);
    assert_int_equal(ids[0], 5);
    set = BCON_NEW("$set", "{", "u", BCON_INT32(1), "}");
    sel = BCON_NEW("_id", BCON_INT32(2), "v", BCON_INT32(5));
    assert_true(
        mongoc_collection_update_one(coll, sel, set, NULL, &reply, NULL));
    assert_int_equal(dm_int(&reply, "matchedCount"), 1);
    bson_destroy(&reply);
    bson_destroy(sel);
    sel = BCON_NEW("_id", BCON_INT32(5), "v", BCON_INT32(5));
    assert_true(
        mongoc_collection_update_one(coll, sel, set, NULL, &reply, NULL));
    assert_int_equal(dm_int(&reply, "matchedCount"), 0);
    bson_destroy(&reply);
    bson_destroy(sel);
    bson_destroy(set);
    mongoc_collection_destroy(coll);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_find_returns_inserted_bytes),
        cmocka_unit_test(test_find_projections),
        cmocka_unit_test(test_in_over_unique_index),
        cmocka_unit_test(test_update_grown_past_16mib_in_steps),
        cmocka_unit_test(test_failed_nested_update_changes_nothing),
        cmocka_unit_test(test_updates_and_unique_keys),
        cmocka_unit_test(test_number_equality),
    };
    return DM_RUN(tests, dm_group_setup, dm_group_teardown);
}
