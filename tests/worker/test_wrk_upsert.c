/*
 * Tests wrk_upsert on the development MongoDB (skipped without it, a
 * failure where CI=true): a deal deleted between a batch's lookup and its
 * update (the before-write hook deletes it, deterministically) is not
 * counted updated. In update mode its line is the error "the deal was
 * deleted while the import ran"; in upsert mode its row is inserted, as a
 * key that finds no deal is; a deal moved to another pipeline in that
 * window is a line error in both. The other rows of the batch are updated
 * as usual, and no before-image is left for a deal that was not changed. A
 * new key whose deal someone else creates in that window is a line error
 * that says so (test_created_meanwhile).
 * Runs in a database of its own, dropped at the end.
 *
 * Failure classes: 1 and 2 (the find of the missed ids runs only when the
 * bulk's nMatched falls short, carries maxTimeMS and retries with the
 * worker's backoff), 4 (one gone deal is its line's error, never the
 * batch's), 5 (a retried bulk counts a deal matched even when it changes
 * nothing: nMatched, not nModified, so a retry is not taken for a
 * deletion), 9 (another writer deleting or moving a deal the import found
 * is exactly this test), 12 (the find is filtered by the import's account;
 * the update by its account and pipeline).
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

#include "dip_bson.h"
#include "dip_config.h"
#include "dip_deal_index.h"
#include "dip_mongo_io.h"
#include "it_skip.h"
#include "wrk_db.h"
#include "wrk_upsert.h"

#define N 3

typedef struct {
    dip_config_t cfg;
    char uri[1024];
    char dbname[64];
    char qid[25];
    bson_oid_t queue, account, pipeline, other_pipeline, user, stage;
    bson_oid_t ids[N];
    mongoc_client_t *client;
    mongoc_collection_t *deals;
    wrk_db_t *db;
} fix_t;

static int setup(void **state)
{
    static fix_t f;
    const char *uri = getenv("DEALIMPORT_MONGODB_URI");
    const char *slash;
    mongoc_collection_t *stages;
    char err[512];
    memset(&f, 0, sizeof(f));
    *state = &f;
    if (uri == NULL || strncmp(uri, "mongodb://", 10) != 0)
        return -1;
    slash = strchr(uri + 10, '/');
    snprintf(f.dbname, sizeof(f.dbname), "test_wrk_upsert_%d", (int)getpid());
    snprintf(f.uri, sizeof(f.uri), "%.*s/%s",
             (int)(slash ? slash - uri : (long)strlen(uri)), uri, f.dbname);
    dip_config_init(&f.cfg);
    f.cfg.mongodb_uri = f.uri;
    f.cfg.row_attempts = 1;
    f.client = mongoc_client_new(f.uri);
    if (f.client == NULL)
        return -1;
    f.deals = mongoc_client_get_collection(f.client, f.dbname, "deals");
    stages =
        mongoc_client_get_collection(f.client, f.dbname, "pipeline_stages");
    /* The indexes are the supervisor's to make, before any worker runs. */
    if (dip_deal_index_ensure(f.deals, stages, err, sizeof(err)) != 0) {
        fprintf(stderr, "test_wrk_upsert: %s\n", err);
        mongoc_collection_destroy(stages);
        return -1;
    }
    mongoc_collection_destroy(stages);
    return 0;
}

static int teardown(void **state)
{
    fix_t *f = *state;
    if (f->client != NULL) {
        mongoc_database_t *d = mongoc_client_get_database(f->client, f->dbname);
        mongoc_database_drop(d, NULL);
        mongoc_database_destroy(d);
        mongoc_collection_destroy(f->deals);
        mongoc_client_destroy(f->client);
    }
    return 0;
}

/* Three deals E1..E3 of the account's pipeline, value 1, and a new import
 * (its queue id) to update them. */
static void seed(fix_t *f)
{
    char err[512];
    bson_oid_init(&f->queue, NULL);
    bson_oid_to_string(&f->queue, f->qid);
    bson_oid_init(&f->account, NULL);
    bson_oid_init(&f->pipeline, NULL);
    bson_oid_init(&f->other_pipeline, NULL);
    bson_oid_init(&f->user, NULL);
    bson_oid_init(&f->stage, NULL);
    for (int i = 0; i < N; i++) {
        char ext[16];
        bson_t *d;
        snprintf(ext, sizeof(ext), "E%d", i + 1);
        bson_oid_init(&f->ids[i], NULL);
        d = BCON_NEW("_id", BCON_OID(&f->ids[i]), "name", BCON_UTF8(ext),
                     "external_id", BCON_UTF8(ext), "value", BCON_DOUBLE(1),
                     "stage_id", BCON_OID(&f->stage), "pipeline_id",
                     BCON_OID(&f->pipeline), "account_id",
                     BCON_OID(&f->account), "status", BCON_UTF8("open"));
        assert_true(
            mongoc_collection_insert_one(f->deals, d, NULL, NULL, NULL));
        bson_destroy(d);
    }
    f->db = wrk_db_new(&f->cfg, f->qid, err, sizeof(err));
    assert_non_null(f->db);
}

/* A row as wrk_import builds it: the mapped fields (external_id, name,
 * value), then stage_id and the worker's own fields. */
static bson_t *row(const fix_t *f, int i, double value, int64_t line)
{
    char ext[16];
    bson_oid_t id;
    snprintf(ext, sizeof(ext), "E%d", i + 1);
    bson_oid_init(&id, NULL);
    return BCON_NEW("_id", BCON_OID(&id), "external_id", BCON_UTF8(ext), "name",
                    BCON_UTF8(ext), "value", BCON_DOUBLE(value), "stage_id",
                    BCON_OID(&f->stage), "pipeline_id", BCON_OID(&f->pipeline),
                    "account_id", BCON_OID(&f->account), "owner",
                    BCON_OID(&f->user), "created_by", BCON_OID(&f->user),
                    "tags", "[", "]", "source", BCON_UTF8("csv"), "import", "{",
                    "queue_id", BCON_OID(&f->queue), "line", BCON_INT64(line),
                    "}");
}

/* The hook: E2 deleted, E3 moved to another pipeline. */
static void delete_and_move(void *arg)
{
    fix_t *f = arg;
    bson_t *sel = BCON_NEW("_id", BCON_OID(&f->ids[1]));
    bson_t *sel3 = BCON_NEW("_id", BCON_OID(&f->ids[2]));
    bson_t *move =
        BCON_NEW("$set", "{", "pipeline_id", BCON_OID(&f->other_pipeline), "}");
    assert_true(mongoc_collection_delete_one(f->deals, sel, NULL, NULL, NULL));
    assert_true(
        mongoc_collection_update_one(f->deals, sel3, move, NULL, NULL, NULL));
    bson_destroy(sel);
    bson_destroy(sel3);
    bson_destroy(move);
}

static int64_t count(fix_t *f, const char *coll, bson_t *filter)
{
    mongoc_collection_t *c =
        mongoc_client_get_collection(f->client, f->dbname, coll);
    int64_t n =
        mongoc_collection_count_documents(c, filter, NULL, NULL, NULL, NULL);
    mongoc_collection_destroy(c);
    bson_destroy(filter);
    return n;
}

/* Runs one batch of E1..E3 (new values) in mode; the hook deletes E2 and
 * moves E3 between the lookup and the writes. */
static void run(fix_t *f, wrk_match_mode_t mode, int *outcome, char **messages)
{
    wrk_match_t m = {.mode = mode,
                     .key = WRK_MATCH_KEY_EXTERNAL_ID,
                     .target = "external_id",
                     .field = "external_id"};
    bson_t *docs[N];
    int64_t lines[N] = {2, 3, 4};
    int given[N] = {1, 1, 1};
    char err[512] = "";
    wrk_upsert_t *up;
    seed(f);
    up = wrk_upsert_new(f->db, &m, &f->queue, &f->account, &f->pipeline, 0);
    assert_non_null(up);
    assert_int_equal(wrk_upsert_prepare(up, err, sizeof(err)), WRK_DB_OK);
    wrk_upsert_set_before_write(up, delete_and_move, f);
    for (int i = 0; i < N; i++)
        docs[i] = row(f, i, 100 + i, lines[i]);
    assert_int_equal(wrk_upsert_batch(up, docs, lines, given, N, outcome,
                                      messages, NULL, err, sizeof(err)),
                     WRK_DB_OK);
    for (int i = 0; i < N; i++)
        bson_destroy(docs[i]);
    wrk_upsert_destroy(&up);
    wrk_db_destroy(&f->db);
    /* E1 updated, with its before-image; none for E2 and E3. */
    assert_int_equal(outcome[0], WRK_UPSERT_UPDATED);
    assert_int_equal(
        count(f, "deals",
              BCON_NEW("_id", BCON_OID(&f->ids[0]), "value", BCON_DOUBLE(100))),
        1);
    assert_int_equal(
        count(f, WRK_UPSERT_CHANGES, BCON_NEW("queue_id", BCON_OID(&f->queue))),
        1);
    assert_int_equal(
        count(f, WRK_UPSERT_CHANGES,
              BCON_NEW("queue_id", BCON_OID(&f->queue), "line", BCON_INT64(2))),
        1);
    /* E3, moved: a line error in both modes, left as it is. */
    assert_int_equal(outcome[2], WRK_UPSERT_REFUSED);
    assert_string_equal(messages[2], "the deal was moved to another pipeline "
                                     "while the import ran");
    assert_int_equal(
        count(f, "deals",
              BCON_NEW("_id", BCON_OID(&f->ids[2]), "value", BCON_DOUBLE(1))),
        1);
}

static void test_deleted_update(void **state)
{
    fix_t *f = *state;
    int outcome[N];
    char *messages[N] = {NULL};
    run(f, WRK_MATCH_MODE_UPDATE, outcome, messages);
    assert_int_equal(outcome[1], WRK_UPSERT_REFUSED);
    assert_string_equal(messages[1],
                        "the deal was deleted while the import ran");
    /* nothing created for it */
    assert_int_equal(count(f, "deals",
                           BCON_NEW("external_id", BCON_UTF8("E2"),
                                    "account_id", BCON_OID(&f->account))),
                     0);
    for (int i = 0; i < N; i++)
        free(messages[i]);
}

static void test_deleted_upsert(void **state)
{
    fix_t *f = *state;
    int outcome[N];
    char *messages[N] = {NULL};
    run(f, WRK_MATCH_MODE_UPSERT, outcome, messages);
    assert_int_equal(outcome[1], WRK_UPSERT_ADDED);
    assert_null(messages[1]);
    /* created by this import's line 3, with the row's value */
    assert_int_equal(
        count(f, "deals",
              BCON_NEW("external_id", BCON_UTF8("E2"), "account_id",
                       BCON_OID(&f->account), "import.queue_id",
                       BCON_OID(&f->queue), "import.line", BCON_INT64(3),
                       "value", BCON_DOUBLE(101))),
        1);
    for (int i = 0; i < N; i++)
        free(messages[i]);
}

/* The hook: a deal N9 of the account, as another import creating it
 * after the batch's lookup found none. */
static void create_n9(void *arg)
{
    fix_t *f = arg;
    bson_oid_t id;
    bson_t *d;
    bson_oid_init(&id, NULL);
    d = BCON_NEW("_id", BCON_OID(&id), "name", BCON_UTF8("theirs"),
                 "external_id", BCON_UTF8("N9"), "value", BCON_DOUBLE(7),
                 "stage_id", BCON_OID(&f->stage), "pipeline_id",
                 BCON_OID(&f->pipeline), "account_id", BCON_OID(&f->account),
                 "status", BCON_UTF8("open"));
    assert_true(mongoc_collection_insert_one(f->deals, d, NULL, NULL, NULL));
    bson_destroy(d);
}

/* A key that found no deal at the lookup and whose deal someone else
 * created before the insert: the insert meets the unique index on the
 * match field. The line is refused with a sentence that says so and what
 * to do (the database's own E11000 text before), the other deal is left
 * as it is, and the rest of the batch is written. */
static void test_created_meanwhile(void **state)
{
    fix_t *f = *state;
    wrk_match_t m = {.mode = WRK_MATCH_MODE_UPSERT,
                     .key = WRK_MATCH_KEY_EXTERNAL_ID,
                     .target = "external_id",
                     .field = "external_id"};
    bson_t *docs[2];
    int64_t lines[2] = {2, 3};
    int given[2] = {1, 1}, outcome[2];
    char *messages[2] = {NULL, NULL};
    char err[512] = "";
    bson_oid_t id;
    wrk_upsert_t *up;
    seed(f);
    up = wrk_upsert_new(f->db, &m, &f->queue, &f->account, &f->pipeline, 0);
    assert_non_null(up);
    assert_int_equal(wrk_upsert_prepare(up, err, sizeof(err)), WRK_DB_OK);
    wrk_upsert_set_before_write(up, create_n9, f);
    docs[0] = row(f, 0, 100, lines[0]);
    bson_oid_init(&id, NULL);
    docs[1] =
        BCON_NEW("_id", BCON_OID(&id), "external_id", BCON_UTF8("N9"), "name",
                 BCON_UTF8("mine"), "value", BCON_DOUBLE(9), "stage_id",
                 BCON_OID(&f->stage), "pipeline_id", BCON_OID(&f->pipeline),
                 "account_id", BCON_OID(&f->account), "status",
                 BCON_UTF8("open"), "import", "{", "queue_id",
                 BCON_OID(&f->queue), "line", BCON_INT64(lines[1]), "}");
    assert_int_equal(wrk_upsert_batch(up, docs, lines, given, 2, outcome,
                                      messages, NULL, err, sizeof(err)),
                     WRK_DB_OK);
    bson_destroy(docs[0]);
    bson_destroy(docs[1]);
    wrk_upsert_destroy(&up);
    wrk_db_destroy(&f->db);
    assert_int_equal(outcome[0], WRK_UPSERT_UPDATED);
    assert_int_equal(outcome[1], WRK_UPSERT_REFUSED);
    assert_string_equal(messages[1],
                        "a deal with this external_id was created by someone "
                        "else while the import ran, so this line was not "
                        "applied: import it again to update that deal");
    assert_int_equal(count(f, "deals",
                           BCON_NEW("external_id", BCON_UTF8("N9"),
                                    "account_id", BCON_OID(&f->account))),
                     1);
    assert_int_equal(
        count(f, "deals",
              BCON_NEW("external_id", BCON_UTF8("N9"), "account_id",
                       BCON_OID(&f->account), "name", BCON_UTF8("theirs"))),
        1);
    for (int i = 0; i < 2; i++)
        free(messages[i]);
}

/* A key another account's deal holds, under a unique index of the CRM's
 * over external_id alone (not the account's match index): the insert's
 * duplicate is that index's, and no one created a deal of this account
 * meanwhile: importing again would meet it again. The line carries the
 * database's own words, not "created by someone else ... import it again"
 * (which any duplicate on an index naming the match field said). */
static void test_duplicate_on_another_index(void **state)
{
    fix_t *f = *state;
    wrk_match_t m = {.mode = WRK_MATCH_MODE_UPSERT,
                     .key = WRK_MATCH_KEY_EXTERNAL_ID,
                     .target = "external_id",
                     .field = "external_id"};
    bson_t *docs[1], *idx, *none = bson_new(), *d;
    int64_t lines[1] = {2};
    int given[1] = {1}, outcome[1];
    char *messages[1] = {NULL};
    char err[512] = "";
    bson_oid_t id, other;
    bson_error_t error;
    wrk_upsert_t *up;
    assert_true(
        mongoc_collection_delete_many(f->deals, none, NULL, NULL, &error));
    idx = BCON_NEW("createIndexes", BCON_UTF8("deals"), "indexes", "[", "{",
                   "key", "{", "external_id", BCON_INT32(1), "}", "name",
                   BCON_UTF8("crm_external"), "unique", BCON_BOOL(true),
                   "partialFilterExpression", "{", "external_id", "{", "$type",
                   BCON_UTF8("string"), "}", "}", "}", "]");
    assert_true(mongoc_collection_write_command_with_opts(f->deals, idx, NULL,
                                                          NULL, &error));
    bson_destroy(idx);
    seed(f);
    bson_oid_init(&other, NULL);
    bson_oid_init(&id, NULL);
    d = BCON_NEW("_id", BCON_OID(&id), "external_id", BCON_UTF8("G1"),
                 "account_id", BCON_OID(&other), "name", BCON_UTF8("theirs"));
    assert_true(mongoc_collection_insert_one(f->deals, d, NULL, NULL, NULL));
    bson_destroy(d);
    up = wrk_upsert_new(f->db, &m, &f->queue, &f->account, &f->pipeline, 0);
    assert_non_null(up);
    assert_int_equal(wrk_upsert_prepare(up, err, sizeof(err)), WRK_DB_OK);
    bson_oid_init(&id, NULL);
    docs[0] =
        BCON_NEW("_id", BCON_OID(&id), "external_id", BCON_UTF8("G1"), "name",
                 BCON_UTF8("mine"), "value", BCON_DOUBLE(9), "stage_id",
                 BCON_OID(&f->stage), "pipeline_id", BCON_OID(&f->pipeline),
                 "account_id", BCON_OID(&f->account), "status",
                 BCON_UTF8("open"), "import", "{", "queue_id",
                 BCON_OID(&f->queue), "line", BCON_INT64(lines[0]), "}");
    assert_int_equal(wrk_upsert_batch(up, docs, lines, given, 1, outcome,
                                      messages, NULL, err, sizeof(err)),
                     WRK_DB_OK);
    bson_destroy(docs[0]);
    wrk_upsert_destroy(&up);
    wrk_db_destroy(&f->db);
    idx = BCON_NEW("dropIndexes", BCON_UTF8("deals"), "index",
                   BCON_UTF8("crm_external"));
    assert_true(mongoc_collection_write_command_with_opts(f->deals, idx, NULL,
                                                          NULL, &error));
    bson_destroy(idx);
    bson_destroy(none);
    assert_int_equal(outcome[0], WRK_UPSERT_REFUSED);
    assert_non_null(messages[0]);
    if (strncmp(messages[0], "the database refused this deal: ", 32) != 0)
        fail_msg("message '%s'", messages[0]);
    free(messages[0]);
}

/* The hook: E1's pipeline stored as hex from now on (the same pipeline, as
 * the CRM may store it), after the lookup found it as an ObjectId. */
static void pipeline_as_hex(void *arg)
{
    fix_t *f = arg;
    char hex[25];
    bson_t *sel = BCON_NEW("_id", BCON_OID(&f->ids[0]));
    bson_t *u;
    bson_oid_to_string(&f->pipeline, hex);
    u = BCON_NEW("$set", "{", "pipeline_id", BCON_UTF8(hex), "}");
    assert_true(
        mongoc_collection_update_one(f->deals, sel, u, NULL, NULL, NULL));
    bson_destroy(sel);
    bson_destroy(u);
}

/* An update's filter names the deal's ids as the lookup found them stored;
 * a deal whose pipeline is stored in the other form before the write is
 * still the same deal in the same pipeline: its update is sent again
 * naming both forms, it is updated and counted so, its before-image kept. */
static void test_ids_in_other_form(void **state)
{
    fix_t *f = *state;
    wrk_match_t m = {.mode = WRK_MATCH_MODE_UPDATE,
                     .key = WRK_MATCH_KEY_EXTERNAL_ID,
                     .target = "external_id",
                     .field = "external_id"};
    bson_t *docs[2];
    int64_t lines[2] = {2, 3};
    int given[2] = {1, 1}, outcome[2];
    char *messages[2] = {NULL, NULL};
    char err[512] = "";
    wrk_upsert_t *up;
    seed(f);
    up = wrk_upsert_new(f->db, &m, &f->queue, &f->account, &f->pipeline, 0);
    assert_non_null(up);
    assert_int_equal(wrk_upsert_prepare(up, err, sizeof(err)), WRK_DB_OK);
    wrk_upsert_set_before_write(up, pipeline_as_hex, f);
    for (int i = 0; i < 2; i++)
        docs[i] = row(f, i, 200 + i, lines[i]);
    assert_int_equal(wrk_upsert_batch(up, docs, lines, given, 2, outcome,
                                      messages, NULL, err, sizeof(err)),
                     WRK_DB_OK);
    for (int i = 0; i < 2; i++)
        bson_destroy(docs[i]);
    wrk_upsert_destroy(&up);
    wrk_db_destroy(&f->db);
    assert_int_equal(outcome[0], WRK_UPSERT_UPDATED);
    assert_int_equal(outcome[1], WRK_UPSERT_UPDATED);
    assert_int_equal(
        count(f, "deals",
              BCON_NEW("_id", BCON_OID(&f->ids[0]), "value", BCON_DOUBLE(200))),
        1);
    assert_int_equal(
        count(f, "deals",
              BCON_NEW("_id", BCON_OID(&f->ids[1]), "value", BCON_DOUBLE(201))),
        1);
    assert_int_equal(
        count(f, WRK_UPSERT_CHANGES, BCON_NEW("queue_id", BCON_OID(&f->queue))),
        2);
    for (int i = 0; i < 2; i++)
        free(messages[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deleted_update),
        cmocka_unit_test(test_deleted_upsert),
        cmocka_unit_test(test_created_meanwhile),
        cmocka_unit_test(test_ids_in_other_form),
        cmocka_unit_test(test_duplicate_on_another_index),
    };
    const char *uri = getenv("DEALIMPORT_MONGODB_URI");
    int rc;
    /* Skipped (77) without the database, a failure where CI=true. */
    if (uri == NULL || *uri == '\0') {
        fprintf(stderr, "skipped: DEALIMPORT_MONGODB_URI is not set (start "
                        "the development stack: scripts/devstack up)\n");
        return it_skip_status();
    }
    dip_mongo_init();
    rc = cmocka_run_group_tests(tests, setup, teardown);
    mongoc_cleanup();
    return rc;
}
