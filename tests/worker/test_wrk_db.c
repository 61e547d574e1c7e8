/*
 * Tests wrk_db's deal inserts on the development MongoDB (skipped without
 * it, a failure where CI=true): a batch sent again, as a retry after a dropped
 * connection sends it, meets its own deals, by _id or by (queue, line), and
 * reports them as already there, never as refused; a deal that collides with
 * another import's is refused with the server's sentence. The pipeline's stages
 * are read ahead in one query, only that account's and pipeline's (class 12:
 * tenants), so a known name then costs no round trip and a new one one
 * write. Runs in a database of its own, dropped at the end.
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

#include "dip_config.h"
#include "dip_deal_index.h"
#include "dip_mongo_io.h"
#include "it_skip.h"
#include "wrk_db.h"
#include "wrk_stages.h"

#define N 4

typedef struct {
    dip_config_t cfg;
    char uri[1024];
    char dbname[64];
    char qid[25];
    bson_oid_t queue;
    wrk_db_t *db;
} fix_t;

static int make_indexes(const char *uri, const char *db, char *err,
                        size_t errlen)
{
    mongoc_client_t *c = mongoc_client_new(uri);
    mongoc_collection_t *deals, *stages;
    int rc;
    if (c == NULL) {
        snprintf(err, errlen, "bad URI");
        return -1;
    }
    deals = mongoc_client_get_collection(c, db, "deals");
    stages = mongoc_client_get_collection(c, db, "pipeline_stages");
    rc = dip_deal_index_ensure(deals, stages, err, errlen);
    mongoc_collection_destroy(deals);
    mongoc_collection_destroy(stages);
    mongoc_client_destroy(c);
    return rc;
}

static int setup(void **state)
{
    static fix_t f;
    const char *uri = getenv("DEALIMPORT_MONGODB_URI");
    const char *slash;
    char err[512];
    memset(&f, 0, sizeof(f));
    *state = &f;
    if (uri == NULL || strncmp(uri, "mongodb://", 10) != 0) {
        fprintf(stderr,
                "test_wrk_db: DEALIMPORT_MONGODB_URI '%s' is not a "
                "mongodb:// URI\n",
                uri ? uri : "");
        return -1;
    }
    /* The same server, a database of this test's own. */
    slash = strchr(uri + 10, '/');
    snprintf(f.dbname, sizeof(f.dbname), "test_wrk_db_%d", (int)getpid());
    snprintf(f.uri, sizeof(f.uri), "%.*s/%s",
             (int)(slash ? slash - uri : (long)strlen(uri)), uri, f.dbname);
    dip_config_init(&f.cfg);
    f.cfg.mongodb_uri = f.uri;
    f.cfg.row_attempts = 1;
    bson_oid_init(&f.queue, NULL);
    bson_oid_to_string(&f.queue, f.qid);
    f.db = wrk_db_new(&f.cfg, f.qid, err, sizeof(err));
    /* The indexes are the supervisor's to make, before any worker runs. */
    if (f.db == NULL || make_indexes(f.uri, f.dbname, err, sizeof(err)) != 0) {
        fprintf(stderr, "test_wrk_db: %s\n", err);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    fix_t *f = *state;
    mongoc_client_t *c;
    if (f->db == NULL)
        return 0;
    wrk_db_destroy(&f->db);
    c = mongoc_client_new(f->uri);
    if (c != NULL) {
        mongoc_database_t *d = mongoc_client_get_database(c, f->dbname);
        mongoc_database_drop(d, NULL);
        mongoc_database_destroy(d);
        mongoc_client_destroy(c);
    }
    return 0;
}

/* A deal as the worker builds it: _id first, then its import tag. */
static bson_t *deal(const bson_oid_t *queue, int64_t line)
{
    bson_t *d = bson_new(), sub;
    bson_oid_t id;
    bson_oid_init(&id, NULL);
    BSON_APPEND_OID(d, "_id", &id);
    BSON_APPEND_UTF8(d, "name", "Deal");
    BSON_APPEND_DOCUMENT_BEGIN(d, "import", &sub);
    BSON_APPEND_OID(&sub, "queue_id", queue);
    BSON_APPEND_INT64(&sub, "line", line);
    bson_append_document_end(d, &sub);
    return d;
}

static void test_batch_sent_again(void **state)
{
    fix_t *f = *state;
    bson_t *docs[N + 1];
    int outcome[N + 1];
    char *messages[N + 1], err[512];
    for (int i = 0; i < N; i++)
        docs[i] = deal(&f->queue, i + 1);
    assert_int_equal(wrk_db_insert_deals(f->db, (const bson_t *const *)docs, N,
                                         outcome, messages, err, sizeof(err)),
                     WRK_DB_OK);
    for (int i = 0; i < N; i++)
        assert_int_equal(outcome[i], WRK_DB_ADDED);
    /* The same documents again, _id and all, plus a new line. */
    docs[N] = deal(&f->queue, N + 1);
    assert_int_equal(wrk_db_insert_deals(f->db, (const bson_t *const *)docs,
                                         N + 1, outcome, messages, err,
                                         sizeof(err)),
                     WRK_DB_OK);
    for (int i = 0; i < N; i++) {
        if (outcome[i] != WRK_DB_ALREADY)
            fail_msg("deal %d sent again: outcome %d (%s), not already there",
                     i, outcome[i], messages[i] ? messages[i] : "");
        free(messages[i]);
    }
    assert_int_equal(outcome[N], WRK_DB_ADDED);
    for (int i = 0; i <= N; i++)
        bson_destroy(docs[i]);
}

static void test_line_read_again(void **state)
{
    fix_t *f = *state;
    bson_t *docs[1];
    int outcome[1];
    char *messages[1], err[512];
    /* Line 1 again with a new _id, as a worker after a crash makes it. */
    docs[0] = deal(&f->queue, 1);
    assert_int_equal(wrk_db_insert_deals(f->db, (const bson_t *const *)docs, 1,
                                         outcome, messages, err, sizeof(err)),
                     WRK_DB_OK);
    assert_int_equal(outcome[0], WRK_DB_ALREADY);
    bson_destroy(docs[0]);
}

typedef struct {
    int n;
    int foreign; /* a stage of another pipeline or account was passed */
} seen_t;

static void on_stage(void *arg, const char *name, const bson_oid_t *id)
{
    seen_t *seen = arg;
    (void)id;
    seen->n++;
    if (strncmp(name, "mine-", 5) != 0)
        seen->foreign = 1;
}

static void test_stages_read_ahead(void **state)
{
    fix_t *f = *state;
    mongoc_client_t *c;
    mongoc_collection_t *coll;
    bson_oid_t account, other_account, pipeline, other_pipeline, user, id;
    const char *names[] = {"mine-a", "mine-b", "other-pipeline",
                           "other-account"};
    seen_t seen = {0, 0};
    wrk_stages_t *st;
    long before;
    char err[512];
    if (f->db == NULL)
        IT_SKIP_MISSING("no DEALIMPORT_MONGODB_URI: the dev stack is not up\n");
    bson_oid_init(&account, NULL);
    bson_oid_init(&other_account, NULL);
    bson_oid_init(&pipeline, NULL);
    bson_oid_init(&other_pipeline, NULL);
    bson_oid_init(&user, NULL);
    c = mongoc_client_new(f->uri);
    coll = mongoc_client_get_collection(c, f->dbname, "pipeline_stages");
    for (int i = 0; i < 4; i++) {
        bson_t *doc = BCON_NEW(
            "account_id", BCON_OID(i == 3 ? &other_account : &account),
            "pipeline_id", BCON_OID(i == 2 ? &other_pipeline : &pipeline),
            "name", BCON_UTF8(names[i]));
        assert_true(mongoc_collection_insert_one(coll, doc, NULL, NULL, NULL));
        bson_destroy(doc);
    }
    assert_int_equal(wrk_db_stages_find(f->db, &account, &pipeline, 100,
                                        on_stage, &seen, err, sizeof(err)),
                     WRK_DB_OK);
    assert_int_equal(seen.n, 2);
    assert_int_equal(seen.foreign, 0);

    st = wrk_stages_new(f->db, &account, &pipeline, &user, 10, 0);
    assert_non_null(st);
    assert_int_equal(wrk_stages_preload(st, err, sizeof(err)), WRK_DB_OK);
    assert_int_equal(wrk_stages_cached(st), 2);
    before = wrk_db_round_trips(f->db);
    assert_int_equal(wrk_stages_resolve(st, "mine-b", &id, err, sizeof(err)),
                     WRK_DB_OK);
    assert_int_equal(wrk_db_round_trips(f->db), before);
    assert_int_equal(wrk_stages_resolve(st, "mine-new", &id, err, sizeof(err)),
                     WRK_DB_OK);
    assert_int_equal(wrk_db_round_trips(f->db), before + 1);
    assert_int_equal(wrk_stages_created(st), 1);
    wrk_stages_destroy(&st);
    mongoc_collection_destroy(coll);
    mongoc_client_destroy(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_sent_again),
        cmocka_unit_test(test_line_read_again),
        cmocka_unit_test(test_stages_read_ahead),
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
