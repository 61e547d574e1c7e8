/*
 * Tests the development MongoDB server's change streams through libmongoc's
 * mongoc_collection_watch, as the supervisor's watcher uses them: an insert
 * arrives with its fullDocument, an update with updateLookup, a $match on the
 * event's fields keeps only what it names, an awaiting getMore does not hold
 * other connections up, a stream whose connection is dropped resumes from its
 * token without losing an event, a token the history no longer holds fails
 * with ChangeStreamHistoryLost (286) and its NonResumableChangeStreamError
 * label, and a standalone server refuses the stage (40573). Runs against
 * DEALIMPORT_MONGODB_URI in a database of its own, dropped at the end; the
 * cases that need the dev server's own admin commands skip on a real server;
 * the standalone case starts a standalone dev server of its own.
 *
 * Failure classes: a dropped connection (5) is the resume case; history lost
 * is the 286 case; slow (1) is out of scope here (the wait is bounded by
 * maxAwaitTimeMS, and the tests wait for outcomes, not for times).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mongoc/mongoc.h>

#include "dm_fixture.h"
#include "it_skip.h"

typedef struct {
    mongoc_client_t *client;
    mongoc_database_t *db;
    char dbname[64];
    bool dev; /* the dev server's admin commands answer */
} fixture_t;

static mongoc_client_t *connect_uri(const char *uri_str)
{
    bson_error_t error;
    mongoc_uri_t *uri = mongoc_uri_new_with_error(uri_str, &error);
    mongoc_client_t *client = NULL;

    if (uri == NULL) {
        fprintf(stderr, "bad MongoDB URI '%s': %s\n", uri_str, error.message);
        return NULL;
    }
    client = mongoc_client_new_from_uri(uri);
    if (client != NULL)
        mongoc_client_set_error_api(client, MONGOC_ERROR_API_VERSION_2);
    mongoc_uri_destroy(uri);
    return client;
}

/* Runs an admin command of the dev server; false when the server does not
 * know it (a real server), a failure on any other error. */
static bool dev_command(mongoc_client_t *client, const char *name)
{
    bson_t *cmd = BCON_NEW(name, BCON_INT32(1));
    bson_t reply;
    bson_error_t error;
    bool ok = mongoc_client_command_simple(client, "admin", cmd, NULL, &reply,
                                           &error);

    if (!ok && error.code != 59)
        fail_msg("%s failed: %s", name, error.message);
    bson_destroy(&reply);
    bson_destroy(cmd);
    return ok;
}

static int group_setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));
    bson_t *cmd = BCON_NEW("hello", BCON_INT32(1));
    bson_t reply;
    bson_error_t error;
    bson_iter_t it;

    if (fx == NULL)
        return -1;
    snprintf(fx->dbname, sizeof(fx->dbname), "devmongo_stream_%ld",
             (long)getpid());
    fx->client = connect_uri(getenv("DEALIMPORT_MONGODB_URI"));
    if (fx->client == NULL) {
        free(fx);
        return -1;
    }
    fx->db = mongoc_client_get_database(fx->client, fx->dbname);
    if (!mongoc_client_command_simple(fx->client, "admin", cmd, NULL, &reply,
                                      &error)) {
        fprintf(stderr, "hello failed: %s\n", error.message);
        bson_destroy(cmd);
        return -1;
    }
    bson_destroy(cmd);
    if (!bson_iter_init_find(&it, &reply, "setName")) {
        bson_destroy(&reply);
        fprintf(stderr, "skipped: the server is no replica-set member, so "
                        "it has no change streams (the standalone case is "
                        "tested against a server of its own)\n");
        /* The rest of the group needs a replica set: run only the
         * standalone case. */
        fx->dev = false;
        *state = fx;
        return 0;
    }
    bson_destroy(&reply);
    fx->dev = dev_command(fx->client, "devCommandCounts");
    *state = fx;
    return 0;
}

static int group_teardown(void **state)
{
    fixture_t *fx = *state;
    bson_error_t error;

    if (fx == NULL)
        return 0;
    (void)mongoc_database_drop_with_opts(fx->db, NULL, &error);
    mongoc_database_destroy(fx->db);
    mongoc_client_destroy(fx->client);
    free(fx);
    return 0;
}

static bool is_replset(fixture_t *fx)
{
    bson_t *cmd = BCON_NEW("hello", BCON_INT32(1));
    bson_t reply;
    bson_error_t error;
    bson_iter_t it;
    bool yes;

    assert_true(mongoc_client_command_simple(fx->client, "admin", cmd, NULL,
                                             &reply, &error));
    yes = bson_iter_init_find(&it, &reply, "setName");
    bson_destroy(&reply);
    bson_destroy(cmd);
    return yes;
}

#define NEED_REPLSET(fx)                                                       \
    do {                                                                       \
        if (!is_replset(fx))                                                   \
            IT_SKIP_MACHINE("skipped: not a replica-set member\n");            \
    } while (0)

#define NEED_DEV(fx)                                                           \
    do {                                                                       \
        NEED_REPLSET(fx);                                                      \
        if (!(fx)->dev)                                                        \
            IT_SKIP_MACHINE("skipped: a real server has no dev commands\n");   \
    } while (0)

static mongoc_collection_t *fresh(fixture_t *fx, const char *name)
{
    mongoc_collection_t *coll =
        mongoc_client_get_collection(fx->client, fx->dbname, name);
    bson_error_t error;

    (void)mongoc_collection_drop_with_opts(coll, NULL, &error);
    return coll;
}

static void insert_json(mongoc_collection_t *coll, const char *json)
{
    bson_error_t error;
    bson_t *doc = bson_new_from_json((const uint8_t *)json, -1, &error);

    assert_non_null(doc);
    if (!mongoc_collection_insert_one(coll, doc, NULL, NULL, &error))
        fail_msg("insert failed: %s", error.message);
    bson_destroy(doc);
}

static mongoc_change_stream_t *watch(mongoc_collection_t *coll,
                                     const char *pipeline_json,
                                     const char *opts_json)
{
    bson_error_t error;
    bson_t *pipeline = bson_new_from_json(
        (const uint8_t *)(pipeline_json ? pipeline_json : "{\"pipeline\":[]}"),
        -1, &error);
    bson_t *opts = bson_new_from_json(
        (const uint8_t *)(opts_json ? opts_json : "{}"), -1, &error);
    mongoc_change_stream_t *cs;

    assert_non_null(pipeline);
    assert_non_null(opts);
    cs = mongoc_collection_watch(coll, pipeline, opts);
    bson_destroy(pipeline);
    bson_destroy(opts);
    return cs;
}

/* The next event within a few awaits, copied; fails on an error. */
static bson_t *next_event(mongoc_change_stream_t *cs)
{
    const bson_t *doc = NULL;
    const bson_t *err_doc = NULL;
    bson_error_t error;

    for (int i = 0; i < 20; i++) {
        if (mongoc_change_stream_next(cs, &doc))
            return bson_copy(doc);
        if (mongoc_change_stream_error_document(cs, &error, &err_doc))
            fail_msg("change stream failed: %s", error.message);
    }
    fail_msg("no event came");
    return NULL;
}

static const char *utf8_at(const bson_t *doc, const char *dotted)
{
    bson_iter_t it;

    if (!bson_iter_init(&it, doc) ||
        !bson_iter_find_descendant(&it, dotted, &it) ||
        !BSON_ITER_HOLDS_UTF8(&it))
        return NULL;
    return bson_iter_utf8(&it, NULL);
}

static bool has(const bson_t *doc, const char *dotted)
{
    bson_iter_t it;

    return bson_iter_init(&it, doc) &&
           bson_iter_find_descendant(&it, dotted, &it);
}

static void test_insert_event(void **state)
{
    fixture_t *fx = *state;
    mongoc_collection_t *coll;
    mongoc_change_stream_t *cs;
    bson_t *ev;
    bson_iter_t it;
    const bson_t *token;

    NEED_REPLSET(fx);
    coll = fresh(fx, "ins");
    cs = watch(coll, NULL, "{\"maxAwaitTimeMS\": 500}");
    /* The first batch's postBatchResumeToken is cached at once. */
    token = mongoc_change_stream_get_resume_token(cs);
    assert_non_null(token);
    assert_non_null(utf8_at(token, "_data"));
    insert_json(coll, "{\"_id\": \"a\", \"name\": \"Deal A\"}");
    ev = next_event(cs);
    assert_string_equal(utf8_at(ev, "operationType"), "insert");
    assert_string_equal(utf8_at(ev, "fullDocument.name"), "Deal A");
    assert_string_equal(utf8_at(ev, "documentKey._id"), "a");
    assert_string_equal(utf8_at(ev, "ns.db"), fx->dbname);
    assert_string_equal(utf8_at(ev, "ns.coll"), "ins");
    assert_non_null(utf8_at(ev, "_id._data"));
    assert_true(bson_iter_init_find(&it, ev, "clusterTime"));
    assert_true(BSON_ITER_HOLDS_TIMESTAMP(&it));
    assert_false(has(ev, "updateDescription"));
    bson_destroy(ev);
    mongoc_change_stream_destroy(cs);
    mongoc_collection_destroy(coll);
}

static void test_update_lookup_and_match(void **state)
{
    fixture_t *fx = *state;
    mongoc_collection_t *coll;
    mongoc_change_stream_t *cs;
    bson_t *ev;
    bson_t *sel = BCON_NEW("_id", BCON_UTF8("q1"));
    bson_t *upd = BCON_NEW("$set", "{", "status", BCON_UTF8("pending"), "}",
                           "$unset", "{", "error", BCON_UTF8(""), "}");
    bson_error_t error;

    NEED_REPLSET(fx);
    coll = fresh(fx, "upd");
    insert_json(coll, "{\"_id\": \"q1\", \"source\": \"deals\", \"status\": "
                      "\"failed\", \"error\": \"boom\"}");
    /* Only updates of deals imports that are pending afterwards. */
    cs = watch(coll,
               "{\"pipeline\": [{\"$match\": {\"operationType\": "
               "{\"$in\": [\"insert\", \"update\", \"replace\"]}, "
               "\"fullDocument.source\": \"deals\", "
               "\"fullDocument.status\": \"pending\"}}]}",
               "{\"fullDocument\": \"updateLookup\", \"maxAwaitTimeMS\": 500}");
    insert_json(coll, "{\"_id\": \"q2\", \"source\": \"contacts\", "
                      "\"status\": \"pending\"}");
    assert_true(
        mongoc_collection_update_one(coll, sel, upd, NULL, NULL, &error));
    ev = next_event(cs);
    assert_string_equal(utf8_at(ev, "operationType"), "update");
    assert_string_equal(utf8_at(ev, "documentKey._id"), "q1");
    assert_string_equal(utf8_at(ev, "fullDocument.status"), "pending");
    assert_string_equal(utf8_at(ev, "updateDescription.updatedFields.status"),
                        "pending");
    assert_string_equal(utf8_at(ev, "updateDescription.removedFields.0"),
                        "error");
    bson_destroy(ev);
    mongoc_change_stream_destroy(cs);
    mongoc_collection_destroy(coll);
    bson_destroy(sel);
    bson_destroy(upd);
}

typedef struct {
    mongoc_change_stream_t *cs;
    bson_t *event;
} waiter_t;

static void *await_one(void *arg)
{
    waiter_t *w = arg;
    const bson_t *doc = NULL;

    /* One getMore only: its maxAwaitTimeMS is long, so the insert that
     * the main thread makes meanwhile must get through the server while
     * this getMore waits there. */
    if (mongoc_change_stream_next(w->cs, &doc))
        w->event = bson_copy(doc);
    return NULL;
}

static volatile int getmores_started;

static void on_started(const mongoc_apm_command_started_t *event)
{
    if (strcmp(mongoc_apm_command_started_get_command_name(event), "getMore") ==
        0)
        __atomic_add_fetch(&getmores_started, 1, __ATOMIC_SEQ_CST);
}

static void test_await_does_not_block_others(void **state)
{
    fixture_t *fx = *state;
    mongoc_client_t *watcher;
    mongoc_collection_t *wcoll;
    mongoc_collection_t *coll;
    mongoc_apm_callbacks_t *cbs;
    waiter_t w = {0};
    pthread_t th;

    NEED_REPLSET(fx);
    coll = fresh(fx, "await");
    watcher = connect_uri(getenv("DEALIMPORT_MONGODB_URI"));
    cbs = mongoc_apm_callbacks_new();
    mongoc_apm_set_command_started_cb(cbs, on_started);
    mongoc_client_set_apm_callbacks(watcher, cbs, NULL);
    mongoc_apm_callbacks_destroy(cbs);
    wcoll = mongoc_client_get_collection(watcher, fx->dbname, "await");
    w.cs = watch(wcoll, NULL, "{\"maxAwaitTimeMS\": 20000}");
    getmores_started = 0;
    assert_int_equal(pthread_create(&th, NULL, await_one, &w), 0);
    while (__atomic_load_n(&getmores_started, __ATOMIC_SEQ_CST) == 0)
        usleep(1000);
    usleep(50 * 1000); /* let the getMore reach the server */
    /* Were the server held by the waiting getMore, this insert would
     * complete only after it returned empty, and the thread would have no
     * event. */
    insert_json(coll, "{\"_id\": 1}");
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_non_null(w.event);
    assert_string_equal(utf8_at(w.event, "operationType"), "insert");
    bson_destroy(w.event);
    mongoc_change_stream_destroy(w.cs);
    mongoc_collection_destroy(wcoll);
    mongoc_client_destroy(watcher);
    mongoc_collection_destroy(coll);
}

static void test_resume_after_dropped_connection(void **state)
{
    fixture_t *fx = *state;
    mongoc_client_t *watcher;
    mongoc_collection_t *wcoll;
    mongoc_collection_t *coll;
    mongoc_change_stream_t *cs;
    bson_t *ev;
    bson_t *token;
    char opts[512];
    char *tok_json;

    NEED_DEV(fx);
    coll = fresh(fx, "resume");
    /* A client of its own: the dropped connection is the stream's alone. */
    watcher = connect_uri(getenv("DEALIMPORT_MONGODB_URI"));
    wcoll = mongoc_client_get_collection(watcher, fx->dbname, "resume");
    cs = watch(wcoll, NULL, "{\"maxAwaitTimeMS\": 300}");
    insert_json(coll, "{\"_id\": 1}");
    ev = next_event(cs);
    bson_destroy(ev);
    /* The stream's connection is closed under it, and a write is made
     * meanwhile: libmongoc resumes from its token on a new connection and
     * the write is not lost. */
    {
        bson_t *cmd = BCON_NEW("devDropChangeStreams", BCON_INT32(1));
        bson_t reply;
        bson_error_t error;
        bson_iter_t it;

        assert_true(mongoc_client_command_simple(fx->client, "admin", cmd, NULL,
                                                 &reply, &error));
        assert_true(bson_iter_init_find(&it, &reply, "connections"));
        assert_int_equal(bson_iter_as_int64(&it), 1);
        bson_destroy(&reply);
        bson_destroy(cmd);
    }
    insert_json(coll, "{\"_id\": 2}");
    ev = next_event(cs);
    assert_string_equal(utf8_at(ev, "operationType"), "insert");
    assert_true(has(ev, "documentKey._id"));
    {
        bson_iter_t it;
        assert_true(bson_iter_init(&it, ev));
        assert_true(bson_iter_find_descendant(&it, "documentKey._id", &it));
        assert_int_equal(bson_iter_int32(&it), 2);
    }
    token = bson_copy(mongoc_change_stream_get_resume_token(cs));
    bson_destroy(ev);
    mongoc_change_stream_destroy(cs);

    /* A new stream resumed after the token sees what came meanwhile, first
     * thing. */
    insert_json(coll, "{\"_id\": 3}");
    tok_json = bson_as_relaxed_extended_json(token, NULL);
    snprintf(opts, sizeof(opts),
             "{\"resumeAfter\": %s, \"maxAwaitTimeMS\": 300}", tok_json);
    bson_free(tok_json);
    cs = watch(coll, NULL, opts);
    ev = next_event(cs);
    {
        bson_iter_t it;
        assert_true(bson_iter_init(&it, ev));
        assert_true(bson_iter_find_descendant(&it, "documentKey._id", &it));
        assert_int_equal(bson_iter_int32(&it), 3);
    }
    bson_destroy(ev);
    bson_destroy(token);
    mongoc_change_stream_destroy(cs);
    mongoc_collection_destroy(wcoll);
    mongoc_client_destroy(watcher);
    mongoc_collection_destroy(coll);
}

static void test_history_lost(void **state)
{
    fixture_t *fx = *state;
    mongoc_collection_t *coll;
    mongoc_change_stream_t *cs;
    mongoc_change_stream_t *live;
    bson_t *ev;
    bson_t *token;
    const bson_t *doc;
    const bson_t *err_doc = NULL;
    bson_error_t error;
    char opts[512];
    char *tok_json;

    NEED_DEV(fx);
    coll = fresh(fx, "lost");
    cs = watch(coll, NULL, "{\"maxAwaitTimeMS\": 300}");
    live = watch(coll, NULL, "{\"maxAwaitTimeMS\": 300}");
    insert_json(coll, "{\"_id\": 1}");
    ev = next_event(cs);
    token = bson_copy(mongoc_change_stream_get_resume_token(cs));
    bson_destroy(ev);
    mongoc_change_stream_destroy(cs);
    insert_json(coll, "{\"_id\": 2}");
    insert_json(coll, "{\"_id\": 3}");
    assert_true(dev_command(fx->client, "devDropChangeHistory"));

    /* Resuming from before the truncation: 286, not resumable. */
    tok_json = bson_as_relaxed_extended_json(token, NULL);
    snprintf(opts, sizeof(opts), "{\"resumeAfter\": %s}", tok_json);
    bson_free(tok_json);
    cs = watch(coll, NULL, opts);
    assert_false(mongoc_change_stream_next(cs, &doc));
    assert_true(mongoc_change_stream_error_document(cs, &error, &err_doc));
    assert_int_equal(error.code, 286);
    assert_true(
        mongoc_error_has_label(err_doc, "NonResumableChangeStreamError"));
    mongoc_change_stream_destroy(cs);

    /* A live stream that had not read the dropped entries fails the same
     * way, and libmongoc does not resume it past them. */
    assert_false(mongoc_change_stream_next(live, &doc));
    assert_true(mongoc_change_stream_error_document(live, &error, &err_doc));
    assert_int_equal(error.code, 286);
    mongoc_change_stream_destroy(live);
    bson_destroy(token);
    mongoc_collection_destroy(coll);
}

/* Starts a standalone dev server; its port, or 0 (a skip) when it cannot. */
static int start_standalone(pid_t *pid)
{
    int fds[2];
    char line[64] = "";
    FILE *out;
    int port = 0;

    if (access("/usr/bin/python3", X_OK) != 0 || pipe(fds) != 0)
        return 0;
    *pid = fork();
    if (*pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execl("/usr/bin/python3", "python3",
              DEALIMPORT_SOURCE_DIR "/scripts/devmongo/devmongo.py", "--host",
              "127.0.0.1", "--port", "0", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    out = fdopen(fds[0], "r");
    if (out != NULL && fgets(line, sizeof(line), out) != NULL)
        (void)sscanf(line, "ready %d", &port);
    if (out != NULL)
        fclose(out);
    return port;
}

static void test_standalone_refuses(void **state)
{
    mongoc_client_t *client;
    mongoc_collection_t *coll;
    mongoc_change_stream_t *cs;
    const bson_t *doc;
    const bson_t *err_doc = NULL;
    bson_error_t error;
    pid_t pid = -1;
    int port = start_standalone(&pid);
    char uri[128];
    int st;

    (void)state;
    if (port == 0) {
        if (pid > 0) {
            kill(pid, SIGTERM);
            waitpid(pid, &st, 0);
        }
        IT_SKIP_MISSING("the development server did not start\n");
    }
    snprintf(uri, sizeof(uri), "mongodb://127.0.0.1:%d/", port);
    client = connect_uri(uri);
    coll = mongoc_client_get_collection(client, "standalone", "queues");
    cs = watch(coll, NULL, NULL);
    assert_false(mongoc_change_stream_next(cs, &doc));
    assert_true(mongoc_change_stream_error_document(cs, &error, &err_doc));
    assert_int_equal(error.code, 40573);
    assert_non_null(strstr(error.message, "only supported on replica sets"));
    mongoc_change_stream_destroy(cs);
    mongoc_collection_destroy(coll);
    mongoc_client_destroy(client);
    kill(pid, SIGTERM);
    waitpid(pid, &st, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_insert_event),
        cmocka_unit_test(test_update_lookup_and_match),
        cmocka_unit_test(test_await_does_not_block_others),
        cmocka_unit_test(test_resume_after_dropped_connection),
        cmocka_unit_test(test_history_lost),
        cmocka_unit_test(test_standalone_refuses),
    };
    return DM_RUN(tests, group_setup, group_teardown);
}
