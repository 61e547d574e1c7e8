/*
 * Tests the development MongoDB server through libmongoc, the client the
 * service uses: handshake, exact value round trips, cursors over several
 * getMores, updates and upserts, claims by findAndModify, counts, unique
 * compound indexes under unordered and ordered bulk inserts with the real
 * server's write-error shape, index builds over duplicates, and drops; in
 * replica-set mode also the member's hello, a retried write (same lsid and
 * txnNumber) applied once, the step-down errors with their codes and labels,
 * and endSessions. Runs against DEALIMPORT_MONGODB_URI (any MongoDB 5.0+
 * server should pass too; the step-down cases skip on a server without the
 * dev server's devStepDown) in a database of its own that it drops at the
 * end; skips without the URI.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mongoc/mongoc.h>

#include "dm_fixture.h"
#include "it_skip.h"

#define BULK_DOCS 10000
#define BULK_DUP_EVERY 100
#define CURSOR_DOCS 2500
#define CURSOR_BATCH 100

typedef struct {
    mongoc_client_t *client;
    mongoc_database_t *db;
    char dbname[64];
} fixture_t;

typedef struct {
    int get_mores;
    int next_batch_docs;
} apm_counts_t;

static mongoc_client_t *connect_client(void)
{
    const char *uri_str = getenv("DEALIMPORT_MONGODB_URI");
    bson_error_t error;
    mongoc_uri_t *uri = mongoc_uri_new_with_error(uri_str, &error);
    mongoc_client_t *client = NULL;

    if (uri == NULL) {
        fprintf(stderr, "bad DEALIMPORT_MONGODB_URI '%s': %s\n", uri_str,
                error.message);
        return NULL;
    }
    client = mongoc_client_new_from_uri(uri);
    if (client != NULL)
        mongoc_client_set_error_api(client, MONGOC_ERROR_API_VERSION_2);
    mongoc_uri_destroy(uri);
    return client;
}

static int group_setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));

    if (fx == NULL)
        return -1;
    snprintf(fx->dbname, sizeof(fx->dbname), "devmongo_test_%ld",
             (long)getpid());
    fx->client = connect_client();
    if (fx->client == NULL) {
        free(fx);
        return -1;
    }
    fx->db = mongoc_client_get_database(fx->client, fx->dbname);
    *state = fx;
    return 0;
}

static int group_teardown(void **state)
{
    fixture_t *fx = *state;
    bson_error_t error;

    if (fx == NULL)
        return 0;
    if (!mongoc_database_drop_with_opts(fx->db, NULL, &error))
        fprintf(stderr, "cannot drop '%s': %s\n", fx->dbname, error.message);
    mongoc_database_destroy(fx->db);
    mongoc_client_destroy(fx->client);
    free(fx);
    return 0;
}

/* A collection of the test database, empty. */
static mongoc_collection_t *fresh_collection(fixture_t *fx, const char *name)
{
    mongoc_collection_t *coll =
        mongoc_client_get_collection(fx->client, fx->dbname, name);
    bson_error_t error;

    /* Absent is fine: the drop may fail with NamespaceNotFound. */
    (void)mongoc_collection_drop_with_opts(coll, NULL, &error);
    return coll;
}

/* Runs a command on the test database; returns its success. */
static bool db_command(fixture_t *fx, const bson_t *cmd, bson_t *reply,
                       bson_error_t *error)
{
    return mongoc_database_command_simple(fx->db, cmd, NULL, reply, error);
}

/* Runs a command on admin and destroys it; returns its success. */
static bool admin_command(fixture_t *fx, bson_t *cmd, bson_t *reply,
                          bson_error_t *error)
{
    bool ok = mongoc_client_command_simple(fx->client, "admin", cmd, NULL,
                                           reply, error);

    bson_destroy(cmd);
    return ok;
}

static int64_t count_all(mongoc_collection_t *coll, const bson_t *filter)
{
    bson_error_t error;
    bson_t empty = BSON_INITIALIZER;
    int64_t n = mongoc_collection_count_documents(
        coll, filter ? filter : &empty, NULL, NULL, NULL, &error);

    if (n < 0)
        fprintf(stderr, "count failed: %s\n", error.message);
    bson_destroy(&empty);
    return n;
}

static int32_t get_int32(const bson_t *doc, const char *dotted)
{
    bson_iter_t it;

    assert_true(bson_iter_init(&it, doc));
    assert_true(bson_iter_find_descendant(&it, dotted, &it));
    assert_int_equal(bson_iter_type(&it), BSON_TYPE_INT32);
    return bson_iter_int32(&it);
}

static const char *get_utf8(const bson_t *doc, const char *dotted)
{
    bson_iter_t it;

    assert_true(bson_iter_init(&it, doc));
    assert_true(bson_iter_find_descendant(&it, dotted, &it));
    assert_int_equal(bson_iter_type(&it), BSON_TYPE_UTF8);
    return bson_iter_utf8(&it, NULL);
}

static bool has_field(const bson_t *doc, const char *dotted)
{
    bson_iter_t it;

    return bson_iter_init(&it, doc) &&
           bson_iter_find_descendant(&it, dotted, &it);
}

/* The server's reply keys, in order, joined by commas. */
static void reply_keys(const bson_t *doc, char *out, size_t size)
{
    bson_iter_t it;
    size_t used = 0;

    out[0] = '\0';
    assert_true(bson_iter_init(&it, doc));
    while (bson_iter_next(&it) && used < size) {
        int n = snprintf(out + used, size - used, "%s%s", used ? "," : "",
                         bson_iter_key(&it));
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

static void test_handshake_and_ping(void **state)
{
    fixture_t *fx = *state;
    bson_t reply;
    bson_error_t error;
    bson_iter_t it;

    assert_true(
        admin_command(fx, BCON_NEW("ping", BCON_INT32(1)), &reply, &error));
    assert_true(bson_iter_init_find(&it, &reply, "ok"));
    assert_true(bson_iter_as_double(&it) == 1.0);
    bson_destroy(&reply);

    assert_true(
        admin_command(fx, BCON_NEW("hello", BCON_INT32(1)), &reply, &error));
    assert_true(bson_iter_init_find(&it, &reply, "isWritablePrimary"));
    assert_true(bson_iter_as_bool(&it));
    assert_true(bson_iter_init_find(&it, &reply, "maxWireVersion"));
    assert_true(bson_iter_as_int64(&it) >= 13);
    assert_true(bson_iter_init_find(&it, &reply, "maxBsonObjectSize"));
    assert_int_equal(bson_iter_as_int64(&it), 16 * 1024 * 1024);
    bson_destroy(&reply);

    assert_true(admin_command(fx, BCON_NEW("buildInfo", BCON_INT32(1)), &reply,
                              &error));
    assert_true(bson_iter_init_find(&it, &reply, "versionArray"));
    assert_true(bson_iter_init_find(&it, &reply, "version"));
    assert_true(atoi(bson_iter_utf8(&it, NULL)) >= 5);
    bson_destroy(&reply);

    /* An unknown command fails the way mongod says it. */
    assert_false(admin_command(fx, BCON_NEW("noSuchCommand", BCON_INT32(1)),
                               &reply, &error));
    assert_int_equal(error.code, 59);
    assert_string_equal(error.message, "no such command: 'noSuchCommand'");
    assert_string_equal(get_utf8(&reply, "codeName"), "CommandNotFound");
    bson_destroy(&reply);
}

static void test_insert_find_round_trip(void **state)
{
    fixture_t *fx = *state;
    mongoc_collection_t *coll = fresh_collection(fx, "roundtrip");
    bson_oid_t oid, ref;
    bson_t *doc = NULL, *opts = NULL, *filter = NULL;
    const bson_t *found;
    mongoc_cursor_t *cursor;
    bson_error_t error;
    bson_iter_t it;
    const uint8_t bin[] = {0, 1, 2, 0xff};
    int expect[3] = {9, 8, 7}, i = 0;

    bson_oid_init_from_string(&oid, "64b0000000000000000000aa");
    bson_oid_init_from_string(&ref, "64b0000000000000000000bb");
    /* Every type the service writes, in an order the server must keep. */
    doc =
        BCON_NEW("_id", BCON_OID(&oid), "i32", BCON_INT32(-7), "i64",
                 BCON_INT64(INT64_C(9007199254740993)), "dbl", BCON_DOUBLE(0.1),
                 "str", BCON_UTF8("d\xc3\xa9j\xc3\xa0 vu"), "when",
                 BCON_DATE_TIME(INT64_C(1700000000123)), "yes", BCON_BOOL(true),
                 "nil", BCON_NULL, "ref", BCON_OID(&ref), "nested", "{", "a",
                 "{", "b", BCON_INT32(1), "}", "list", "[", BCON_INT32(1),
                 BCON_UTF8("two"), "{", "three", BCON_DOUBLE(3.0), "}", "]",
                 "}", "bin", BCON_BIN(BSON_SUBTYPE_BINARY, bin, sizeof(bin)));
    assert_true(mongoc_collection_insert_one(coll, doc, NULL, NULL, &error));
    filter = BCON_NEW("_id", BCON_OID(&oid));
    cursor = mongoc_collection_find_with_opts(coll, filter, NULL, NULL);
    assert_true(mongoc_cursor_next(cursor, &found));
    /* Byte for byte what went in. */
    assert_int_equal(found->len, doc->len);
    assert_memory_equal(bson_get_data(found), bson_get_data(doc), doc->len);
    assert_false(mongoc_cursor_next(cursor, &found));
    assert_false(mongoc_cursor_error(cursor, &error));
    mongoc_cursor_destroy(cursor);
    bson_destroy(filter);
    bson_destroy(doc);

    for (int n = 0; n < 10; n++) {
        doc = BCON_NEW("n", BCON_INT32(n), "name", BCON_UTF8("deal"));
        assert_true(
            mongoc_collection_insert_one(coll, doc, NULL, NULL, &error));
        bson_destroy(doc);
    }
    /* sort n descending, limit 3, only n: 9, 8, 7 and nothing else. */
    filter = BCON_NEW("n", "{", "$gte", BCON_INT32(0), "}");
    opts = BCON_NEW("sort", "{", "n", BCON_INT32(-1), "}", "limit",
                    BCON_INT64(3), "projection", "{", "n", BCON_INT32(1), "_id",
                    BCON_INT32(0), "}");
    cursor = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
    while (mongoc_cursor_next(cursor, &found)) {
        assert_true(i < 3);
        assert_int_equal(bson_count_keys(found), 1);
        assert_int_equal(get_int32(found, "n"), expect[i]);
        i++;
    }
    assert_false(mongoc_cursor_error(cursor, &error));
    assert_int_equal(i, 3);
    mongoc_cursor_destroy(cursor);
    bson_destroy(opts);

    /* skip 8 of the ten leaves n 1 and 0 in that order. */
    opts =
        BCON_NEW("sort", "{", "n", BCON_INT32(-1), "}", "skip", BCON_INT64(8));
    cursor = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
    assert_true(mongoc_cursor_next(cursor, &found));
    assert_int_equal(get_int32(found, "n"), 1);
    assert_true(bson_iter_init_find(&it, found, "_id"));
    assert_int_equal(bson_iter_type(&it), BSON_TYPE_OID);
    assert_true(mongoc_cursor_next(cursor, &found));
    assert_int_equal(get_int32(found, "n"), 0);
    assert_false(mongoc_cursor_next(cursor, &found));
    mongoc_cursor_destroy(cursor);
    bson_destroy(opts);
    bson_destroy(filter);
    mongoc_collection_destroy(coll);
}

static void on_started(const mongoc_apm_command_started_t *event)
{
    apm_counts_t *counts = mongoc_apm_command_started_get_context(event);

    if (strcmp(mongoc_apm_command_started_get_command_name(event), "getMore") ==
        0)
        counts->get_mores++;
}

static void on_succeeded(const mongoc_apm_command_succeeded_t *event)
{
    apm_counts_t *counts = mongoc_apm_command_succeeded_get_context(event);
    const bson_t *reply = mongoc_apm_command_succeeded_get_reply(event);
    bson_iter_t it, batch;

    if (strcmp(mongoc_apm_command_succeeded_get_command_name(event),
               "getMore") != 0)
        return;
    if (bson_iter_init(&it, reply) &&
        bson_iter_find_descendant(&it, "cursor.nextBatch", &it) &&
        bson_iter_recurse(&it, &batch)) {
        while (bson_iter_next(&batch))
            counts->next_batch_docs++;
    }
}

static void test_cursor_get_more_and_kill(void **state)
{
    fixture_t *fx = *state;
    mongoc_client_t *client = connect_client();
    mongoc_apm_callbacks_t *cbs = mongoc_apm_callbacks_new();
    apm_counts_t counts = {0, 0};
    mongoc_collection_t *coll = fresh_collection(fx, "cursor");
    mongoc_collection_t *watched;
    bson_t *docs[CURSOR_DOCS];
    bson_t *opts, *cmd, reply, empty = BSON_INITIALIZER;
    const bson_t *found;
    mongoc_cursor_t *cursor;
    bson_error_t error;
    bson_iter_t it;
    int32_t expect = 0;
    int64_t cursor_id;
    char keys[256];

    assert_non_null(client);
    /* Inserted backwards, so the sort does real work. */
    for (int i = 0; i < CURSOR_DOCS; i++)
        docs[i] = BCON_NEW("i", BCON_INT32(CURSOR_DOCS - 1 - i));
    assert_true(mongoc_collection_insert_many(coll, (const bson_t **)docs,
                                              CURSOR_DOCS, NULL, NULL, &error));
    for (int i = 0; i < CURSOR_DOCS; i++)
        bson_destroy(docs[i]);

    mongoc_apm_set_command_started_cb(cbs, on_started);
    mongoc_apm_set_command_succeeded_cb(cbs, on_succeeded);
    assert_true(mongoc_client_set_apm_callbacks(client, cbs, &counts));
    watched = mongoc_client_get_collection(client, fx->dbname, "cursor");
    opts = BCON_NEW("sort", "{", "i", BCON_INT32(1), "}", "batchSize",
                    BCON_INT32(CURSOR_BATCH));
    cursor = mongoc_collection_find_with_opts(watched, &empty, opts, NULL);
    while (mongoc_cursor_next(cursor, &found)) {
        assert_int_equal(get_int32(found, "i"), expect);
        expect++;
    }
    assert_false(mongoc_cursor_error(cursor, &error));
    mongoc_cursor_destroy(cursor);
    assert_int_equal(expect, CURSOR_DOCS);
    /* 100 in the first batch, the rest in batches of 100; a server may
     * need one more, empty, getMore to notice the end. */
    assert_true(counts.get_mores >= CURSOR_DOCS / CURSOR_BATCH - 1);
    assert_true(counts.get_mores <= CURSOR_DOCS / CURSOR_BATCH);
    assert_int_equal(counts.next_batch_docs, CURSOR_DOCS - CURSOR_BATCH);

    /* An open cursor, killed: gone for getMore, not found a second time. */
    cursor = mongoc_collection_find_with_opts(coll, &empty, opts, NULL);
    assert_true(mongoc_cursor_next(cursor, &found));
    cursor_id = mongoc_cursor_get_id(cursor);
    assert_true(cursor_id != 0);
    cmd = BCON_NEW("killCursors", BCON_UTF8("cursor"), "cursors", "[",
                   BCON_INT64(cursor_id), "]");
    assert_true(db_command(fx, cmd, &reply, &error));
    reply_keys(&reply, keys, sizeof(keys));
    assert_string_equal(keys, "cursorsKilled,cursorsNotFound,cursorsAlive,"
                              "cursorsUnknown,ok");
    assert_true(bson_iter_init(&it, &reply));
    assert_true(bson_iter_find_descendant(&it, "cursorsKilled.0", &it));
    assert_int_equal(bson_iter_as_int64(&it), cursor_id);
    bson_destroy(&reply);
    assert_true(db_command(fx, cmd, &reply, &error));
    assert_true(bson_iter_init(&it, &reply));
    assert_true(bson_iter_find_descendant(&it, "cursorsNotFound.0", &it));
    assert_int_equal(bson_iter_as_int64(&it), cursor_id);
    assert_false(has_field(&reply, "cursorsKilled.0"));
    bson_destroy(&reply);
    bson_destroy(cmd);
    cmd = BCON_NEW("getMore", BCON_INT64(cursor_id), "collection",
                   BCON_UTF8("cursor"));
    assert_false(db_command(fx, cmd, &reply, &error));
    assert_int_equal(error.code, 43);
    assert_string_equal(get_utf8(&reply, "codeName"), "CursorNotFound");
    bson_destroy(&reply);
    bson_destroy(cmd);
    mongoc_cursor_destroy(cursor);

    bson_destroy(opts);
    bson_destroy(&empty);
    mongoc_collection_destroy(watched);
    mongoc_collection_destroy(coll);
    mongoc_apm_callbacks_destroy(cbs);
    mongoc_client_destroy(client);
}

static void test_update_upsert_operators(void **state)
{
    fixture_t *fx = *state;
    mongoc_collection_t *coll = fresh_collection(fx, "update");
    bson_t *sel = BCON_NEW("key", BCON_UTF8("k1"));
    bson_t *upsert = BCON_NEW("upsert", BCON_BOOL(true));
    bson_t *update, *filter, reply;
    const bson_t *found;
    mongoc_cursor_t *cursor;
    bson_error_t error;
    bson_iter_t it;
    const char *tags[] = {"a", "b"};

    for (int round = 0; round < 2; round++) {
        update =
            BCON_NEW("$setOnInsert", "{", "created", BCON_INT32(round), "}",
                     "$inc", "{", "count", BCON_INT32(1), "big", BCON_INT64(5),
                     "}", "$push", "{", "tags", BCON_UTF8(tags[round]), "}");
        assert_true(mongoc_collection_update_one(coll, sel, update, upsert,
                                                 &reply, &error));
        assert_true(bson_iter_init_find(&it, &reply, "matchedCount"));
        assert_int_equal(bson_iter_as_int64(&it), round);
        assert_true(bson_iter_init_find(&it, &reply, "modifiedCount"));
        assert_int_equal(bson_iter_as_int64(&it), round);
        assert_true(bson_iter_init_find(&it, &reply, "upsertedCount"));
        assert_int_equal(bson_iter_as_int64(&it), round == 0 ? 1 : 0);
        if (round == 0) {
            assert_true(bson_iter_init_find(&it, &reply, "upsertedId"));
            assert_int_equal(bson_iter_type(&it), BSON_TYPE_OID);
        } else {
            assert_false(has_field(&reply, "upsertedId"));
        }
        bson_destroy(&reply);
        bson_destroy(update);
    }

    cursor = mongoc_collection_find_with_opts(coll, sel, NULL, NULL);
    assert_true(mongoc_cursor_next(cursor, &found));
    assert_string_equal(get_utf8(found, "key"), "k1");
    assert_int_equal(get_int32(found, "created"), 0); /* insert only */
    assert_int_equal(get_int32(found, "count"), 2);
    assert_true(bson_iter_init(&it, found));
    assert_true(bson_iter_find_descendant(&it, "big", &it));
    assert_int_equal(bson_iter_type(&it), BSON_TYPE_INT64);
    assert_int_equal(bson_iter_int64(&it), 10);
    assert_string_equal(get_utf8(found, "tags.0"), "a");
    assert_string_equal(get_utf8(found, "tags.1"), "b");
    assert_false(has_field(found, "tags.2"));
    assert_false(mongoc_cursor_next(cursor, &found));
    mongoc_cursor_destroy(cursor);

    /* $set of one subdocument into two documents, then $inc in one of
     * them: the other keeps its own copy. */
    filter = BCON_NEW("key", BCON_UTF8("k2"));
    update = BCON_NEW("key", BCON_UTF8("k2"));
    assert_true(mongoc_collection_insert_one(coll, update, NULL, NULL, &error));
    assert_true(mongoc_collection_insert_one(coll, update, NULL, NULL, &error));
    bson_destroy(update);
    update = BCON_NEW("$set", "{", "progress", "{", "lines", BCON_INT32(0), "}",
                      "}");
    assert_true(mongoc_collection_update_many(coll, filter, update, NULL,
                                              &reply, &error));
    assert_true(bson_iter_init_find(&it, &reply, "modifiedCount"));
    assert_int_equal(bson_iter_as_int64(&it), 2);
    bson_destroy(&reply);
    bson_destroy(update);
    update = BCON_NEW("$inc", "{", "progress.lines", BCON_INT32(5), "}");
    assert_true(
        mongoc_collection_update_one(coll, filter, update, NULL, NULL, &error));
    bson_destroy(update);
    update = BCON_NEW("key", BCON_UTF8("k2"), "progress.lines", BCON_INT32(0));
    assert_int_equal(count_all(coll, update), 1);
    bson_destroy(update);
    update = BCON_NEW("key", BCON_UTF8("k2"), "progress.lines", BCON_INT32(5));
    assert_int_equal(count_all(coll, update), 1);
    bson_destroy(update);

    bson_destroy(filter);
    bson_destroy(upsert);
    bson_destroy(sel);
    mongoc_collection_destroy(coll);
}

/* One claim as the supervisor makes it: oldest pending first. */
static void claim(mongoc_collection_t *coll, const char *owner, bson_t *reply)
{
    mongoc_find_and_modify_opts_t *fam = mongoc_find_and_modify_opts_new();
    bson_t *query = BCON_NEW("status", BCON_UTF8("pending"));
    bson_t *sort = BCON_NEW("created_at", BCON_INT32(1));
    bson_t *update =
        BCON_NEW("$set", "{", "status", BCON_UTF8("processing"), "claimed_by",
                 BCON_UTF8(owner), "}", "$currentDate", "{", "started_at",
                 BCON_BOOL(true), "}");
    bson_error_t error;

    mongoc_find_and_modify_opts_set_sort(fam, sort);
    mongoc_find_and_modify_opts_set_update(fam, update);
    mongoc_find_and_modify_opts_set_flags(fam,
                                          MONGOC_FIND_AND_MODIFY_RETURN_NEW);
    assert_true(mongoc_collection_find_and_modify_with_opts(coll, query, fam,
                                                            reply, &error));
    mongoc_find_and_modify_opts_destroy(fam);
    bson_destroy(update);
    bson_destroy(sort);
    bson_destroy(query);
}

static void test_find_and_modify_claims(void **state)
{
    fixture_t *fx = *state;
    /* A collection outside the service's, which the suite's notablescan
     * guards: this is the server's findAndModify, not an indexed claim. */
    mongoc_collection_t *coll = fresh_collection(fx, "claim_rules");
    const char *names[] = {"newer", "oldest", "done"};
    const char *status[] = {"pending", "pending", "completed"};
    int64_t created[] = {2000, 1000, 500};
    bson_t *doc, reply, *sel, *upd, *opts;
    bson_iter_t it;
    bson_error_t error;
    mongoc_find_and_modify_opts_t *fam;

    for (int i = 0; i < 3; i++) {
        doc = BCON_NEW("name", BCON_UTF8(names[i]), "status",
                       BCON_UTF8(status[i]), "created_at",
                       BCON_DATE_TIME(created[i]));
        assert_true(
            mongoc_collection_insert_one(coll, doc, NULL, NULL, &error));
        bson_destroy(doc);
    }
    claim(coll, "sup-a", &reply);
    assert_string_equal(get_utf8(&reply, "value.name"), "oldest");
    assert_string_equal(get_utf8(&reply, "value.status"), "processing");
    assert_string_equal(get_utf8(&reply, "value.claimed_by"), "sup-a");
    assert_true(bson_iter_init(&it, &reply));
    assert_true(bson_iter_find_descendant(&it, "value.started_at", &it));
    assert_int_equal(bson_iter_type(&it), BSON_TYPE_DATE_TIME);
    assert_true(bson_iter_init(&it, &reply));
    assert_true(bson_iter_find_descendant(&it, "lastErrorObject.n", &it));
    assert_int_equal(bson_iter_as_int64(&it), 1);
    assert_true(bson_iter_init(&it, &reply));
    assert_true(
        bson_iter_find_descendant(&it, "lastErrorObject.updatedExisting", &it));
    assert_true(bson_iter_as_bool(&it));
    bson_destroy(&reply);

    claim(coll, "sup-b", &reply);
    assert_string_equal(get_utf8(&reply, "value.name"), "newer");
    assert_string_equal(get_utf8(&reply, "value.claimed_by"), "sup-b");
    bson_destroy(&reply);

    /* Nothing pending left: value is null and n is 0. */
    claim(coll, "sup-c", &reply);
    assert_true(bson_iter_init_find(&it, &reply, "value"));
    assert_int_equal(bson_iter_type(&it), BSON_TYPE_NULL);
    assert_true(bson_iter_init(&it, &reply));
    assert_true(bson_iter_find_descendant(&it, "lastErrorObject.n", &it));
    assert_int_equal(bson_iter_as_int64(&it), 0);
    bson_destroy(&reply);
    sel = BCON_NEW("status", BCON_UTF8("processing"));
    assert_int_equal(count_all(coll, sel), 2);
    bson_destroy(sel);

    /* An upsert through findAndModify reports the new _id. */
    fam = mongoc_find_and_modify_opts_new();
    sel = BCON_NEW("name", BCON_UTF8("fresh"));
    upd = BCON_NEW("$set", "{", "status", BCON_UTF8("pending"), "}");
    mongoc_find_and_modify_opts_set_update(fam, upd);
    mongoc_find_and_modify_opts_set_flags(
        fam, MONGOC_FIND_AND_MODIFY_UPSERT | MONGOC_FIND_AND_MODIFY_RETURN_NEW);
    assert_true(mongoc_collection_find_and_modify_with_opts(coll, sel, fam,
                                                            &reply, &error));
    assert_true(bson_iter_init(&it, &reply));
    assert_true(
        bson_iter_find_descendant(&it, "lastErrorObject.upserted", &it));
    assert_int_equal(bson_iter_type(&it), BSON_TYPE_OID);
    assert_string_equal(get_utf8(&reply, "value.name"), "fresh");
    assert_string_equal(get_utf8(&reply, "value.status"), "pending");
    bson_destroy(&reply);
    mongoc_find_and_modify_opts_destroy(fam);
    bson_destroy(upd);

    /* Remove returns the document it removed. */
    fam = mongoc_find_and_modify_opts_new();
    mongoc_find_and_modify_opts_set_flags(fam, MONGOC_FIND_AND_MODIFY_REMOVE);
    opts = BCON_NEW("name", BCON_INT32(1), "_id", BCON_INT32(0));
    mongoc_find_and_modify_opts_set_fields(fam, opts);
    assert_true(mongoc_collection_find_and_modify_with_opts(coll, sel, fam,
                                                            &reply, &error));
    assert_string_equal(get_utf8(&reply, "value.name"), "fresh");
    assert_false(has_field(&reply, "value._id"));
    assert_false(has_field(&reply, "value.status"));
    bson_destroy(&reply);
    assert_int_equal(count_all(coll, sel), 0);
    mongoc_find_and_modify_opts_destroy(fam);
    bson_destroy(opts);
    bson_destroy(sel);
    mongoc_collection_destroy(coll);
}

static void test_count_documents(void **state)
{
    fixture_t *fx = *state;
    mongoc_collection_t *coll = fresh_collection(fx, "count");
    bson_t *docs[50], *filter, *opts, *none;
    bson_error_t error;

    for (int i = 0; i < 50; i++)
        docs[i] = BCON_NEW("i", BCON_INT32(i), "even", BCON_BOOL(i % 2 == 0));
    assert_true(mongoc_collection_insert_many(coll, (const bson_t **)docs, 50,
                                              NULL, NULL, &error));
    for (int i = 0; i < 50; i++)
        bson_destroy(docs[i]);
    filter = BCON_NEW("even", BCON_BOOL(true));
    assert_int_equal(count_all(coll, filter), 25);
    assert_int_equal(count_all(coll, NULL), 50);
    opts = BCON_NEW("skip", BCON_INT64(5), "limit", BCON_INT64(10));
    assert_int_equal(mongoc_collection_count_documents(coll, filter, opts, NULL,
                                                       NULL, &error),
                     10);
    bson_destroy(opts);
    opts = BCON_NEW("skip", BCON_INT64(20));
    assert_int_equal(mongoc_collection_count_documents(coll, filter, opts, NULL,
                                                       NULL, &error),
                     5);
    bson_destroy(opts);
    none = BCON_NEW("i", "{", "$gt", BCON_INT32(100), "}");
    assert_int_equal(count_all(coll, none), 0);
    bson_destroy(none);
    bson_destroy(filter);
    mongoc_collection_destroy(coll);
}

static void create_unique_index(fixture_t *fx, const char *coll,
                                const char *name)
{
    bson_t *cmd = BCON_NEW(
        "createIndexes", BCON_UTF8(coll), "indexes", "[", "{", "key", "{",
        "import.queue_id", BCON_INT32(1), "import.line", BCON_INT32(1), "}",
        "name", BCON_UTF8(name), "unique", BCON_BOOL(true), "}", "]");
    bson_t reply;
    bson_error_t error;
    bson_iter_t it;

    assert_true(db_command(fx, cmd, &reply, &error));
    assert_true(bson_iter_init_find(&it, &reply, "numIndexesAfter"));
    assert_int_equal(bson_iter_as_int64(&it), 2);
    bson_destroy(&reply);
    bson_destroy(cmd);
}

static bson_t *import_doc(const bson_oid_t *queue, int32_t line)
{
    return BCON_NEW("import", "{", "queue_id", BCON_OID(queue), "line",
                    BCON_INT32(line), "}", "name", BCON_UTF8("deal"));
}

/* What the server must say about a duplicate (queue, line). */
static void expect_dup_error(fixture_t *fx, const char *coll, const bson_t *err,
                             const bson_oid_t *queue, int32_t line)
{
    char oid[25], want[512];
    bson_iter_t it;
    const char *names[] = {"import.queue_id", "import.line"};
    int i = 0;

    bson_oid_to_string(queue, oid);
    snprintf(want, sizeof(want),
             "E11000 duplicate key error collection: %s.%s index: "
             "import_unique dup key: { import.queue_id: ObjectId('%s'), "
             "import.line: %d }",
             fx->dbname, coll, oid, line);
    assert_true(bson_iter_init_find(&it, err, "code"));
    assert_int_equal(bson_iter_as_int64(&it), 11000);
    assert_string_equal(get_utf8(err, "errmsg"), want);
    assert_true(bson_iter_init_find(&it, err, "keyPattern"));
    assert_true(bson_iter_recurse(&it, &it));
    while (bson_iter_next(&it)) {
        assert_true(i < 2);
        assert_string_equal(bson_iter_key(&it), names[i]);
        assert_int_equal(bson_iter_as_int64(&it), 1);
        i++;
    }
    assert_int_equal(i, 2);
    assert_true(bson_iter_init_find(&it, err, "keyValue"));
    assert_true(bson_iter_recurse(&it, &it));
    assert_true(bson_iter_next(&it));
    assert_string_equal(bson_iter_key(&it), "import.queue_id");
    assert_int_equal(bson_iter_type(&it), BSON_TYPE_OID);
    assert_int_equal(bson_oid_compare(bson_iter_oid(&it), queue), 0);
    assert_true(bson_iter_next(&it));
    assert_string_equal(bson_iter_key(&it), "import.line");
    assert_int_equal(bson_iter_type(&it), BSON_TYPE_INT32);
    assert_int_equal(bson_iter_int32(&it), line);
    assert_false(bson_iter_next(&it));
}

static void test_unique_index_unordered_bulk(void **state)
{
    fixture_t *fx = *state;
    mongoc_collection_t *coll = fresh_collection(fx, "deals");
    bson_t *opts = BCON_NEW("ordered", BCON_BOOL(false));
    mongoc_bulk_operation_t *bulk;
    bson_t reply, *doc, *cmd, err;
    bson_oid_t queue;
    bson_iter_t it, errs;
    bson_error_t error;
    int n_errors = 0;
    char keys[256];

    create_unique_index(fx, "deals", "import_unique");
    bson_oid_init(&queue, NULL);
    /* Every 100th document repeats the line of the one before it. */
    bulk = mongoc_collection_create_bulk_operation_with_opts(coll, opts);
    for (int i = 0; i < BULK_DOCS; i++) {
        int dup = i % BULK_DUP_EVERY == BULK_DUP_EVERY - 1;
        doc = import_doc(&queue, dup ? i : i + 1);
        assert_true(
            mongoc_bulk_operation_insert_with_opts(bulk, doc, NULL, &error));
        bson_destroy(doc);
    }
    assert_int_equal(mongoc_bulk_operation_execute(bulk, &reply, &error), 0);
    assert_int_equal(error.code, 11000);
    assert_true(bson_iter_init_find(&it, &reply, "nInserted"));
    assert_int_equal(bson_iter_as_int64(&it), BULK_DOCS - BULK_DOCS / 100);
    assert_true(bson_iter_init_find(&it, &reply, "writeErrors"));
    assert_true(bson_iter_recurse(&it, &errs));
    while (bson_iter_next(&errs)) {
        uint32_t len;
        const uint8_t *data;
        int32_t index = (n_errors + 1) * BULK_DUP_EVERY - 1;

        bson_iter_document(&errs, &len, &data);
        assert_true(bson_init_static(&err, data, len));
        assert_true(bson_iter_init_find(&it, &err, "index"));
        assert_int_equal(bson_iter_as_int64(&it), index);
        expect_dup_error(fx, "deals", &err, &queue, index);
        n_errors++;
    }
    assert_int_equal(n_errors, BULK_DOCS / BULK_DUP_EVERY);
    bson_destroy(&reply);
    mongoc_bulk_operation_destroy(bulk);
    assert_int_equal(count_all(coll, NULL), BULK_DOCS - BULK_DOCS / 100);

    /* The raw reply of one insert command, key by key as mongod sends it. */
    cmd = BCON_NEW("insert", BCON_UTF8("deals"), "documents", "[", "{",
                   "import", "{", "queue_id", BCON_OID(&queue), "line",
                   BCON_INT32(7), "}", "}", "{", "import", "{", "queue_id",
                   BCON_OID(&queue), "line", BCON_INT32(BULK_DOCS + 1), "}",
                   "}", "]", "ordered", BCON_BOOL(false));
    assert_true(db_command(fx, cmd, &reply, &error));
    reply_keys(&reply, keys, sizeof(keys));
    assert_string_equal(keys, "n,writeErrors,ok");
    assert_int_equal(get_int32(&reply, "n"), 1);
    assert_true(bson_iter_init(&it, &reply));
    assert_true(bson_iter_find_descendant(&it, "writeErrors.0", &it));
    {
        uint32_t len;
        const uint8_t *data;

        bson_iter_document(&it, &len, &data);
        assert_true(bson_init_static(&err, data, len));
    }
    reply_keys(&err, keys, sizeof(keys));
    assert_string_equal(keys, "index,code,keyPattern,keyValue,errmsg");
    assert_int_equal(get_int32(&err, "index"), 0);
    expect_dup_error(fx, "deals", &err, &queue, 7);
    assert_false(has_field(&reply, "writeErrors.1"));
    bson_destroy(&reply);
    bson_destroy(cmd);

    bson_destroy(opts);
    mongoc_collection_destroy(coll);
}

/* One insert; true when it was accepted. */
static bool insert_json(mongoc_collection_t *coll, const char *json)
{
    bson_error_t error;
    bson_t *doc = bson_new_from_json((const uint8_t *)json, -1, &error);
    bool ok;
    assert_non_null(doc);
    ok = mongoc_collection_insert_one(coll, doc, NULL, NULL, &error);
    if (!ok)
        assert_int_equal(error.code, 11000);
    bson_destroy(doc);
    return ok;
}

static int64_t count_json(mongoc_collection_t *coll, const char *json)
{
    bson_error_t error;
    bson_t *filter = bson_new_from_json((const uint8_t *)json, -1, &error);
    int64_t n;
    assert_non_null(filter);
    n = count_all(coll, filter);
    bson_destroy(filter);
    return n;
}

/* The deals index as the worker creates it (partial on `import` existing)
 * and the counts the supervisor makes: what mongod answers, also where an
 * array or a null lies on a path. */
static void test_partial_index_and_equality(void **state)
{
    fixture_t *fx = *state;
    mongoc_collection_t *coll = fresh_collection(fx, "partial");
    bson_t *cmd = BCON_NEW(
        "createIndexes", BCON_UTF8("partial"), "indexes", "[", "{", "key", "{",
        "account_id", BCON_INT32(1), "import.queue_id", BCON_INT32(1),
        "import.line", BCON_INT32(1), "}", "name", BCON_UTF8("import_unique"),
        "unique", BCON_BOOL(true), "partialFilterExpression", "{", "import",
        "{", "$exists", BCON_BOOL(true), "}", "}", "}", "]");
    bson_t reply;
    bson_error_t error;
    const char *a = "{\"$oid\":\"0000000000000000000000aa\"}";
    const char *q = "{\"$oid\":\"0000000000000000000000bb\"}";
    char doc[512], filter[512];

    assert_true(db_command(fx, cmd, &reply, &error));
    bson_destroy(&reply);
    bson_destroy(cmd);
    /* Outside the index: the CRM's own deals never collide. */
    snprintf(doc, sizeof(doc), "{\"account_id\":%s,\"name\":\"x\"}", a);
    assert_true(insert_json(coll, doc));
    assert_true(insert_json(coll, doc));
    /* Inside it: a repeated (account, queue, line) is refused. */
    snprintf(doc, sizeof(doc),
             "{\"account_id\":%s,\"import\":{\"queue_id\":%s,"
             "\"line\":1}}",
             a, q);
    assert_true(insert_json(coll, doc));
    assert_false(insert_json(coll, doc));
    /* The queue id as a string is another key, and not an equal value. */
    snprintf(doc, sizeof(doc),
             "{\"account_id\":%s,\"import\":{\"queue_id\":"
             "\"0000000000000000000000bb\",\"line\":1}}",
             a);
    assert_true(insert_json(coll, doc));
    /* A null `import` exists: two of them share the key (null, null). */
    snprintf(doc, sizeof(doc), "{\"account_id\":%s,\"import\":null}", a);
    assert_true(insert_json(coll, doc));
    assert_false(insert_json(coll, doc));
    /* An array on the path: its element holds the value. */
    snprintf(doc, sizeof(doc),
             "{\"account_id\":%s,\"import\":[{\"queue_id\":%s,"
             "\"line\":2}]}",
             a, q);
    assert_true(insert_json(coll, doc));

    snprintf(filter, sizeof(filter),
             "{\"account_id\":%s,\"import.queue_id\":%s}", a, q);
    assert_int_equal(count_json(coll, filter), 2);
    assert_int_equal(
        count_json(coll, "{\"import.queue_id\":\"0000000000000000000000bb\"}"),
        1);
    assert_int_equal(count_json(coll, "{\"import\":{\"$exists\":true}}"), 4);
    assert_int_equal(count_json(coll, "{\"import\":{\"$exists\":false}}"), 2);
    assert_int_equal(count_json(coll, "{\"import.line\":{\"$exists\":true}}"),
                     3);
    assert_int_equal(count_json(coll, "{\"name\":\"x\"}"), 2);
    assert_int_equal(count_json(coll, "{\"name\":\"X\"}"), 0);
    mongoc_collection_destroy(coll);
}

/* $in answered through an index (the _id index, a partial unique one):
 * the same documents as a scan, a value outside the partial filter
 * included (the index cannot answer for it). */
static void test_in_through_indexes(void **state)
{
    fixture_t *fx = *state;
    mongoc_collection_t *coll = fresh_collection(fx, "inidx");
    bson_t *cmd = BCON_NEW(
        "createIndexes", BCON_UTF8("inidx"), "indexes", "[", "{", "key", "{",
        "account_id", BCON_INT32(1), "external_id", BCON_INT32(1), "}", "name",
        BCON_UTF8("account_external_id"), "unique", BCON_BOOL(true),
        "partialFilterExpression", "{", "external_id", "{", "$type",
        BCON_UTF8("string"), "}", "}", "}", "]");
    bson_t reply;
    bson_error_t error;
    assert_true(db_command(fx, cmd, &reply, &error));
    bson_destroy(&reply);
    bson_destroy(cmd);
    assert_true(insert_json(coll, "{\"_id\":1,\"account_id\":\"a\","
                                  "\"external_id\":\"R1\"}"));
    assert_true(insert_json(coll, "{\"_id\":2,\"account_id\":\"a\","
                                  "\"external_id\":\"R2\"}"));
    assert_true(insert_json(coll, "{\"_id\":3,\"account_id\":\"a\","
                                  "\"external_id\":5}"));
    assert_true(insert_json(coll, "{\"_id\":4,\"account_id\":\"a\","
                                  "\"external_id\":5}"));
    assert_true(insert_json(coll, "{\"_id\":5,\"account_id\":\"b\","
                                  "\"external_id\":\"R1\"}"));
    assert_false(insert_json(coll, "{\"_id\":6,\"account_id\":\"b\","
                                   "\"external_id\":\"R1\"}"));
    assert_int_equal(count_json(coll, "{\"account_id\":\"a\",\"external_id\":"
                                      "{\"$in\":[\"R1\",\"R2\",\"R3\"]}}"),
                     2);
    assert_int_equal(count_json(coll, "{\"account_id\":\"a\",\"external_id\":"
                                      "{\"$in\":[\"R1\",5]}}"),
                     3);
    assert_int_equal(count_json(coll, "{\"account_id\":{\"$in\":[\"a\",\"b\"]},"
                                      "\"external_id\":\"R1\"}"),
                     2);
    assert_int_equal(count_json(coll, "{\"_id\":{\"$in\":[1,2,9,2]}}"), 2);
    assert_int_equal(
        count_json(coll, "{\"_id\":{\"$in\":[1,5]},\"account_id\":\"b\"}"), 1);
    assert_int_equal(count_json(coll, "{\"_id\":{\"$in\":[]}}"), 0);
    mongoc_collection_destroy(coll);
}

static void test_unique_index_ordered_stops(void **state)
{
    fixture_t *fx = *state;
    mongoc_collection_t *coll = fresh_collection(fx, "ordered");
    int32_t lines[] = {1, 2, 1, 3, 4};
    bson_t *docs[5], reply, err, *filter;
    bson_oid_t queue;
    bson_error_t error;
    bson_iter_t it;
    uint32_t len;
    const uint8_t *data;

    create_unique_index(fx, "ordered", "import_unique");
    bson_oid_init(&queue, NULL);
    for (int i = 0; i < 5; i++)
        docs[i] = import_doc(&queue, lines[i]);
    assert_false(mongoc_collection_insert_many(coll, (const bson_t **)docs, 5,
                                               NULL, &reply, &error));
    assert_int_equal(error.code, 11000);
    assert_true(bson_iter_init_find(&it, &reply, "insertedCount"));
    assert_int_equal(bson_iter_as_int64(&it), 2);
    assert_true(bson_iter_init(&it, &reply));
    assert_true(bson_iter_find_descendant(&it, "writeErrors.0", &it));
    bson_iter_document(&it, &len, &data);
    assert_true(bson_init_static(&err, data, len));
    assert_int_equal(get_int32(&err, "index"), 2);
    expect_dup_error(fx, "ordered", &err, &queue, 1);
    assert_false(has_field(&reply, "writeErrors.1"));
    bson_destroy(&reply);
    for (int i = 0; i < 5; i++)
        bson_destroy(docs[i]);
    /* Lines 3 and 4 came after the failure: never written. */
    assert_int_equal(count_all(coll, NULL), 2);
    filter = BCON_NEW("import.line", BCON_INT32(3));
    assert_int_equal(count_all(coll, filter), 0);
    bson_destroy(filter);

    /* An update onto an existing key is refused too. */
    filter = BCON_NEW("import.line", BCON_INT32(2));
    docs[0] = BCON_NEW("$set", "{", "import.line", BCON_INT32(1), "}");
    assert_false(mongoc_collection_update_one(coll, filter, docs[0], NULL,
                                              &reply, &error));
    assert_int_equal(error.code, 11000);
    bson_destroy(&reply);
    bson_destroy(docs[0]);
    assert_int_equal(count_all(coll, filter), 1);
    bson_destroy(filter);
    mongoc_collection_destroy(coll);
}

/* Stages as the worker finds-or-creates them: upserts under a unique
 * (account_id, pipeline_id, name) index, which must hold the upserted keys. */
static void test_unique_index_upserts(void **state)
{
    fixture_t *fx = *state;
    mongoc_collection_t *coll = fresh_collection(fx, "stages");
    bson_t *cmd = BCON_NEW("createIndexes", BCON_UTF8("stages"), "indexes", "[",
                           "{", "key", "{", "account_id", BCON_INT32(1),
                           "pipeline_id", BCON_INT32(1), "name", BCON_INT32(1),
                           "}", "name", BCON_UTF8("stage_unique"), "unique",
                           BCON_BOOL(true), "}", "]");
    bson_t *upsert = BCON_NEW("upsert", BCON_BOOL(true));
    bson_t *sel, *update, *doc, reply;
    bson_oid_t account, pipeline;
    bson_error_t error;
    bson_iter_t it;
    const char *names[] = {"won", "won", "lost"};
    char want[512], hex[25];

    assert_true(db_command(fx, cmd, &reply, &error));
    bson_destroy(&reply);
    bson_destroy(cmd);
    bson_oid_init_from_string(&account, "64b000000000000000000001");
    bson_oid_init_from_string(&pipeline, "64b000000000000000000002");
    for (int i = 0; i < 3; i++) {
        sel = BCON_NEW("account_id", BCON_OID(&account), "pipeline_id",
                       BCON_OID(&pipeline), "name", BCON_UTF8(names[i]));
        update = BCON_NEW("$setOnInsert", "{", "created_by",
                          BCON_UTF8("import"), "}");
        assert_true(mongoc_collection_update_one(coll, sel, update, upsert,
                                                 &reply, &error));
        assert_true(bson_iter_init_find(&it, &reply, "upsertedCount"));
        assert_int_equal(bson_iter_as_int64(&it), i == 1 ? 0 : 1);
        bson_destroy(&reply);
        bson_destroy(update);
        bson_destroy(sel);
    }
    /* A replacement upsert, then a plain insert clashing with each. */
    sel = BCON_NEW("name", BCON_UTF8("open"));
    doc = BCON_NEW("account_id", BCON_OID(&account), "pipeline_id",
                   BCON_OID(&pipeline), "name", BCON_UTF8("open"));
    assert_true(
        mongoc_collection_replace_one(coll, sel, doc, upsert, NULL, &error));
    assert_false(mongoc_collection_insert_one(coll, doc, NULL, NULL, &error));
    assert_int_equal(error.code, 11000);
    bson_oid_to_string(&account, hex);
    snprintf(want, sizeof(want),
             "E11000 duplicate key error collection: %s.stages index: "
             "stage_unique dup key: { account_id: ObjectId('%s'), "
             "pipeline_id: ObjectId('64b000000000000000000002'), name: "
             "\"open\" }",
             fx->dbname, hex);
    assert_string_equal(error.message, want);
    bson_destroy(doc);
    bson_destroy(sel);
    doc = BCON_NEW("account_id", BCON_OID(&account), "pipeline_id",
                   BCON_OID(&pipeline), "name", BCON_UTF8("won"));
    assert_false(mongoc_collection_insert_one(coll, doc, NULL, NULL, &error));
    assert_int_equal(error.code, 11000);
    bson_destroy(doc);
    /* A document without the fields files under nulls, once. */
    doc = BCON_NEW("other", BCON_INT32(1));
    assert_true(mongoc_collection_insert_one(coll, doc, NULL, NULL, &error));
    assert_int_equal(count_all(coll, NULL), 4);
    bson_destroy(doc);
    bson_destroy(upsert);
    mongoc_collection_destroy(coll);
}

static void test_unique_index_over_duplicates_fails(void **state)
{
    fixture_t *fx = *state;
    mongoc_collection_t *coll = fresh_collection(fx, "predup");
    bson_t *doc = BCON_NEW("k", BCON_INT32(1));
    bson_t *cmd =
        BCON_NEW("createIndexes", BCON_UTF8("predup"), "indexes", "[", "{",
                 "key", "{", "k", BCON_INT32(1), "}", "name", BCON_UTF8("k_1"),
                 "unique", BCON_BOOL(true), "}", "]");
    bson_t reply, empty = BSON_INITIALIZER;
    bson_error_t error;
    mongoc_cursor_t *cursor;
    const bson_t *found;
    int n = 0;

    assert_true(mongoc_collection_insert_one(coll, doc, NULL, NULL, &error));
    assert_true(mongoc_collection_insert_one(coll, doc, NULL, NULL, &error));
    assert_false(db_command(fx, cmd, &reply, &error));
    assert_int_equal(error.code, 11000);
    assert_non_null(strstr(error.message, "E11000 duplicate key error"));
    assert_non_null(strstr(error.message, "dup key: { k: 1 }"));
    bson_destroy(&reply);
    cursor = mongoc_collection_find_indexes_with_opts(coll, NULL);
    while (mongoc_cursor_next(cursor, &found)) {
        assert_string_equal(get_utf8(found, "name"), "_id_");
        n++;
    }
    assert_int_equal(n, 1);
    mongoc_cursor_destroy(cursor);
    /* Both documents are still there. */
    assert_int_equal(count_all(coll, &empty), 2);
    bson_destroy(&empty);
    bson_destroy(cmd);
    bson_destroy(doc);
    mongoc_collection_destroy(coll);
}

static void test_drop(void **state)
{
    fixture_t *fx = *state;
    mongoc_collection_t *coll = fresh_collection(fx, "dropme");
    bson_t *doc = BCON_NEW("x", BCON_INT32(1));
    bson_t *cmd = BCON_NEW("drop", BCON_UTF8("dropme"));
    bson_t reply;
    bson_error_t error;
    char **names;
    bool listed = false;

    assert_true(mongoc_collection_insert_one(coll, doc, NULL, NULL, &error));
    names =
        mongoc_database_get_collection_names_with_opts(fx->db, NULL, &error);
    assert_non_null(names);
    for (char **p = names; *p; p++)
        listed = listed || strcmp(*p, "dropme") == 0;
    bson_strfreev(names);
    assert_true(listed);

    assert_true(db_command(fx, cmd, &reply, &error));
    bson_destroy(&reply);
    names =
        mongoc_database_get_collection_names_with_opts(fx->db, NULL, &error);
    assert_non_null(names);
    for (char **p = names; *p; p++)
        assert_string_not_equal(*p, "dropme");
    bson_strfreev(names);
    assert_int_equal(count_all(coll, NULL), 0);
    /* mongod 5.0 refuses to drop what does not exist. */
    assert_false(db_command(fx, cmd, &reply, &error));
    assert_int_equal(error.code, 26);
    bson_destroy(&reply);
    bson_destroy(cmd);
    bson_destroy(doc);
    mongoc_collection_destroy(coll);
}

/* -- replica-set mode ------------------------------------------------- */

static bool step_down(mongoc_client_t *client, double secs, const char *first);

/* Skips the running test, saying why. */
static void skip_because(const char *why)
{
    fprintf(stderr, "skipped: %s\n", why);
    skip();
}

/* 1 when the server answers hello as a replica-set member (the dev server's
 * default mode); the replica-set tests skip otherwise. A development server
 * is stepped up first, whatever an earlier run left. */
static bool is_replset(fixture_t *fx)
{
    mongoc_read_prefs_t *prefs =
        mongoc_read_prefs_new(MONGOC_READ_PRIMARY_PREFERRED);
    bson_t *cmd = BCON_NEW("hello", BCON_INT32(1));
    bson_t reply;
    bson_error_t error;
    bool yes;

    if (!mongoc_client_command_simple(fx->client, "admin", cmd, prefs, &reply,
                                      &error))
        fail_msg("hello failed: %s", error.message);
    yes = has_field(&reply, "setName");
    bson_destroy(&reply);
    bson_destroy(cmd);
    mongoc_read_prefs_destroy(prefs);
    if (yes)
        (void)step_down(fx->client, 0, "none");
    return yes;
}

/* A client of the URI's first host alone, as a direct connection (so
 * libmongoc sends writes to it whatever its state and shows the server's
 * own error), with retryable writes on or off, and events counted. */
static mongoc_client_t *direct_client(bool retry, apm_counts_t *counts);

static int32_t inserts_seen;

static void on_insert_started(const mongoc_apm_command_started_t *event)
{
    if (strcmp(mongoc_apm_command_started_get_command_name(event), "insert") ==
        0)
        inserts_seen++;
}

static mongoc_client_t *direct_client(bool retry, apm_counts_t *counts)
{
    const char *uri_str = getenv("DEALIMPORT_MONGODB_URI");
    mongoc_uri_t *uri = mongoc_uri_new(uri_str);
    const mongoc_host_list_t *host;
    mongoc_client_t *client;
    mongoc_apm_callbacks_t *cbs;
    char direct[512];

    (void)counts;
    assert_non_null(uri);
    host = mongoc_uri_get_hosts(uri);
    assert_non_null(host);
    snprintf(direct, sizeof(direct),
             "mongodb://%s/?directConnection=true&retryWrites=%s"
             "&serverSelectionTimeoutMS=2000",
             host->host_and_port, retry ? "true" : "false");
    mongoc_uri_destroy(uri);
    client = mongoc_client_new(direct);
    assert_non_null(client);
    mongoc_client_set_error_api(client, MONGOC_ERROR_API_VERSION_2);
    cbs = mongoc_apm_callbacks_new();
    mongoc_apm_set_command_started_cb(cbs, on_insert_started);
    mongoc_client_set_apm_callbacks(client, cbs, NULL);
    mongoc_apm_callbacks_destroy(cbs);
    return client;
}

/* Runs devStepDown on admin; false (and a skip) on a server without it. */
static bool step_down(mongoc_client_t *client, double secs, const char *first)
{
    bson_t *cmd = BCON_NEW("devStepDown", BCON_DOUBLE(secs), "firstWrite",
                           BCON_UTF8(first));
    mongoc_read_prefs_t *prefs =
        mongoc_read_prefs_new(MONGOC_READ_PRIMARY_PREFERRED);
    bson_t reply;
    bson_error_t error;
    bool ok = mongoc_client_command_simple(client, "admin", cmd, prefs, &reply,
                                           &error);

    if (!ok && error.code != 59)
        fail_msg("devStepDown failed: %s", error.message);
    bson_destroy(&reply);
    bson_destroy(cmd);
    mongoc_read_prefs_destroy(prefs);
    return ok;
}

static bool has_label(const bson_t *reply, const char *label)
{
    return mongoc_error_has_label(reply, label);
}

static void test_replset_hello(void **state)
{
    fixture_t *fx = *state;
    bson_t reply;
    bson_error_t error;
    bson_iter_t it, hosts;
    char me[256];

    if (!is_replset(fx))
        skip_because("a standalone server: no replica-set fields to check");
    assert_true(
        admin_command(fx, BCON_NEW("hello", BCON_INT32(1)), &reply, &error));
    assert_true(strlen(get_utf8(&reply, "setName")) > 0);
    assert_true(bson_iter_init_find(&it, &reply, "isWritablePrimary"));
    assert_true(bson_iter_as_bool(&it));
    assert_true(bson_iter_init_find(&it, &reply, "hosts"));
    assert_true(BSON_ITER_HOLDS_ARRAY(&it));
    assert_true(bson_iter_recurse(&it, &hosts) && bson_iter_next(&hosts));
    snprintf(me, sizeof(me), "%s", bson_iter_utf8(&hosts, NULL));
    assert_string_equal(get_utf8(&reply, "primary"), me);
    assert_true(
        bson_iter_init_find(&it, &reply, "logicalSessionTimeoutMinutes"));
    assert_true(bson_iter_as_int64(&it) > 0);
    assert_true(has_field(&reply, "topologyVersion.processId"));
    bson_destroy(&reply);
}

/* The same lsid and txnNumber twice: the write applies once, and the second
 * answer is the first one again; an older txnNumber is refused. */
static void test_retried_write_applies_once(void **state)
{
    fixture_t *fx = *state;
    mongoc_client_t *client;
    mongoc_database_t *db;
    mongoc_collection_t *coll;
    mongoc_client_session_t *cs;
    bson_t opts = BSON_INITIALIZER, reply, *cmd, *doc;
    bson_error_t error;

    if (!is_replset(fx))
        skip_because("retryable writes need a replica set");
    coll = fresh_collection(fx, "retried");
    /* A client of its own: its first session has run no write yet. */
    client = connect_client();
    db = mongoc_client_get_database(client, fx->dbname);
    cs = mongoc_client_start_session(client, NULL, &error);
    assert_non_null(cs);
    assert_true(mongoc_client_session_append(cs, &opts, &error));
    for (int round = 0; round < 2; round++) {
        cmd = BCON_NEW("insert", BCON_UTF8("retried"), "documents", "[", "{",
                       "_id", BCON_INT32(1), "}", "]", "txnNumber",
                       BCON_INT64(1));
        if (!mongoc_database_write_command_with_opts(db, cmd, &opts, &reply,
                                                     &error))
            fail_msg("insert %d failed: %s", round, error.message);
        assert_int_equal(get_int32(&reply, "n"), 1);
        assert_false(has_field(&reply, "writeErrors"));
        bson_destroy(&reply);
        bson_destroy(cmd);
    }
    assert_int_equal(count_all(coll, NULL), 1);
    /* A new txnNumber is a new write. */
    cmd = BCON_NEW("insert", BCON_UTF8("retried"), "documents", "[", "{", "_id",
                   BCON_INT32(2), "}", "]", "txnNumber", BCON_INT64(2));
    assert_true(mongoc_database_write_command_with_opts(db, cmd, &opts, &reply,
                                                        &error));
    bson_destroy(&reply);
    bson_destroy(cmd);
    assert_int_equal(count_all(coll, NULL), 2);
    cmd = BCON_NEW("insert", BCON_UTF8("retried"), "documents", "[", "{", "_id",
                   BCON_INT32(3), "}", "]", "txnNumber", BCON_INT64(1));
    assert_false(mongoc_database_write_command_with_opts(db, cmd, &opts, &reply,
                                                         &error));
    assert_int_equal(error.code, 225); /* TransactionTooOld */
    bson_destroy(&reply);
    bson_destroy(cmd);
    assert_int_equal(count_all(coll, NULL), 2);

    /* The way libmongoc meets it: the write applies, its reply carries a
     * writeConcernError (the primary stepped down while waiting), the
     * driver retries with the same txnNumber and gets the first result. */
    if (!step_down(fx->client, 0, "writeConcernError")) {
        bson_destroy(&opts);
        mongoc_client_session_destroy(cs);
        mongoc_database_destroy(db);
        mongoc_client_destroy(client);
        mongoc_collection_destroy(coll);
        skip_because("not the development server: no devStepDown");
    }
    inserts_seen = 0;
    {
        mongoc_client_t *dc = direct_client(true, NULL);
        mongoc_collection_t *c =
            mongoc_client_get_collection(dc, fx->dbname, "retried");
        doc = BCON_NEW("_id", BCON_INT32(4));
        if (!mongoc_collection_insert_one(c, doc, NULL, &reply, &error))
            fail_msg("the retried insert failed: %s", error.message);
        assert_int_equal(inserts_seen, 2); /* the first try and the retry */
        bson_destroy(&reply);
        bson_destroy(doc);
        mongoc_collection_destroy(c);
        mongoc_client_destroy(dc);
    }
    doc = BCON_NEW("_id", BCON_INT32(4));
    assert_int_equal(count_all(coll, doc), 1);
    assert_int_equal(count_all(coll, NULL), 3);
    bson_destroy(doc);
    bson_destroy(&opts);
    mongoc_client_session_destroy(cs);
    mongoc_database_destroy(db);
    mongoc_client_destroy(client);
    mongoc_collection_destroy(coll);
}

/* Stepped down: each kind of failure with the code and shape of a real
 * primary's, reads still served as a secondary's, and back as primary. */
static void test_step_down_errors(void **state)
{
    fixture_t *fx = *state;
    mongoc_client_t *direct, *retrying;
    mongoc_collection_t *coll, *dcoll, *rcoll;
    mongoc_read_prefs_t *secondary =
        mongoc_read_prefs_new(MONGOC_READ_SECONDARY_PREFERRED);
    mongoc_cursor_t *cur;
    const bson_t *found;
    bson_t reply, *doc, *filter;
    bson_error_t error;

    if (!is_replset(fx))
        skip_because("a standalone server cannot step down");
    coll = fresh_collection(fx, "stepdown");
    direct = direct_client(false, NULL);
    dcoll = mongoc_client_get_collection(direct, fx->dbname, "stepdown");
    /* A 0 s step-down is a step up, whatever an earlier run left. */
    if (!step_down(direct, 0, "none"))
        skip_because("not the development server: no devStepDown");
    assert_true(step_down(direct, 30, "writeConcernError"));

    /* The write in flight is applied, but its write concern fails. */
    doc = BCON_NEW("_id", BCON_INT32(1));
    assert_false(
        mongoc_collection_insert_one(dcoll, doc, NULL, &reply, &error));
    assert_int_equal(error.domain, MONGOC_ERROR_WRITE_CONCERN);
    assert_int_equal(error.code, 189); /* PrimarySteppedDown */
    assert_non_null(strstr(error.message, "stepped down"));
    bson_destroy(&reply);
    bson_destroy(doc);

    /* Later writes: NotWritablePrimary, with the topologyVersion libmongoc
     * compares to tell a stale error from a new one. */
    doc = BCON_NEW("_id", BCON_INT32(2));
    assert_false(
        mongoc_collection_insert_one(dcoll, doc, NULL, &reply, &error));
    assert_int_equal(error.domain, MONGOC_ERROR_SERVER);
    assert_int_equal(error.code, 10107);
    bson_destroy(&reply);
    bson_destroy(doc);

    /* Reads: a replica-set client finds no primary, but a secondary serves
     * them, with the first document and without the second. */
    filter = BCON_NEW("_id", BCON_INT32(1));
    cur = mongoc_collection_find_with_opts(coll, filter, NULL, secondary);
    assert_true(mongoc_cursor_next(cur, &found));
    mongoc_cursor_destroy(cur);
    bson_destroy(filter);
    filter = BCON_NEW("_id", BCON_INT32(2));
    cur = mongoc_collection_find_with_opts(coll, filter, NULL, secondary);
    assert_false(mongoc_cursor_next(cur, &found));
    assert_false(mongoc_cursor_error(cur, &error));
    mongoc_cursor_destroy(cur);
    bson_destroy(filter);

    /* Back as primary, then an operation in flight is interrupted: not
     * applied, labelled retryable; libmongoc retries once, meets
     * NotWritablePrimary, labelled too, and gives up. */
    assert_true(step_down(direct, 0, "none"));
    assert_true(step_down(direct, 30, "interrupt"));
    retrying = direct_client(true, NULL);
    rcoll = mongoc_client_get_collection(retrying, fx->dbname, "stepdown");
    inserts_seen = 0;
    doc = BCON_NEW("_id", BCON_INT32(3));
    assert_false(
        mongoc_collection_insert_one(rcoll, doc, NULL, &reply, &error));
    assert_int_equal(inserts_seen, 2);
    assert_int_equal(error.code, 10107);
    assert_true(has_label(&reply, "RetryableWriteError"));
    bson_destroy(&reply);
    bson_destroy(doc);

    /* Without retries the interruption itself shows. */
    assert_true(step_down(direct, 0, "none"));
    assert_true(step_down(direct, 30, "interrupt"));
    doc = BCON_NEW("_id", BCON_INT32(3));
    assert_false(
        mongoc_collection_insert_one(dcoll, doc, NULL, &reply, &error));
    assert_int_equal(error.code, 11602); /* InterruptedDueToReplStateChange */
    assert_non_null(strstr(error.message, "interrupted"));
    bson_destroy(&reply);

    /* Stepped up again, writes go through; the interrupted one never
     * applied. */
    assert_true(step_down(direct, 0, "none"));
    assert_true(mongoc_collection_insert_one(coll, doc, NULL, NULL, &error));
    bson_destroy(doc);
    assert_int_equal(count_all(coll, NULL), 2);

    mongoc_collection_destroy(rcoll);
    mongoc_client_destroy(retrying);
    mongoc_collection_destroy(dcoll);
    mongoc_client_destroy(direct);
    mongoc_collection_destroy(coll);
    mongoc_read_prefs_destroy(secondary);
}

static int end_sessions_ok;

static void on_end_sessions(const mongoc_apm_command_succeeded_t *event)
{
    if (strcmp(mongoc_apm_command_succeeded_get_command_name(event),
               "endSessions") == 0)
        end_sessions_ok++;
}

/* The sessions a client used are ended when it goes, and the server
 * answers; endSessions with a malformed list is refused. */
static void test_end_sessions(void **state)
{
    fixture_t *fx = *state;
    mongoc_client_t *client = connect_client();
    mongoc_apm_callbacks_t *cbs = mongoc_apm_callbacks_new();
    mongoc_collection_t *coll;
    bson_t *doc = BCON_NEW("x", BCON_INT32(1));
    bson_t reply;
    bson_error_t error;

    if (!is_replset(fx))
        skip_because("a standalone server has no sessions");
    mongoc_apm_set_command_succeeded_cb(cbs, on_end_sessions);
    mongoc_client_set_apm_callbacks(client, cbs, NULL);
    mongoc_apm_callbacks_destroy(cbs);
    coll = mongoc_client_get_collection(client, fx->dbname, "sessions");
    assert_true(mongoc_collection_insert_one(coll, doc, NULL, NULL, &error));
    mongoc_collection_destroy(coll);
    end_sessions_ok = 0;
    mongoc_client_destroy(client);
    assert_int_equal(end_sessions_ok, 1);
    bson_destroy(doc);

    assert_false(admin_command(fx, BCON_NEW("endSessions", BCON_INT32(1)),
                               &reply, &error));
    assert_int_equal(error.code, 14); /* TypeMismatch */
    bson_destroy(&reply);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_and_ping),
        cmocka_unit_test(test_insert_find_round_trip),
        cmocka_unit_test(test_cursor_get_more_and_kill),
        cmocka_unit_test(test_update_upsert_operators),
        cmocka_unit_test(test_find_and_modify_claims),
        cmocka_unit_test(test_count_documents),
        cmocka_unit_test(test_unique_index_unordered_bulk),
        cmocka_unit_test(test_partial_index_and_equality),
        cmocka_unit_test(test_in_through_indexes),
        cmocka_unit_test(test_unique_index_ordered_stops),
        cmocka_unit_test(test_unique_index_upserts),
        cmocka_unit_test(test_unique_index_over_duplicates_fails),
        cmocka_unit_test(test_drop),
        cmocka_unit_test(test_replset_hello),
        cmocka_unit_test(test_retried_write_applies_once),
        cmocka_unit_test(test_step_down_errors),
        cmocka_unit_test(test_end_sessions),
    };
    return DM_RUN(tests, group_setup, group_teardown);
}
