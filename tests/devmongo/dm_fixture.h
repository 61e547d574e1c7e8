/*
 * dm_fixture: what the development server's rule tests share. A client on
 * DEALIMPORT_MONGODB_URI with error API 2, a database of the test's own
 * (dropped at the end), and the dev server's own admin commands: devSlow,
 * devNoTableScan, devOpLog. dm_is_devmongo() tells the dev server (buildInfo's
 * gitVersion) from a real one: the tests of the dev server's own commands skip
 * on a real server, and fail on the dev server if it lacks them. The group
 * setup turns notablescan off (the tests use collections of their own) and
 * the teardown puts slow mode and notablescan back as they were, so a failed
 * test leaves the shared server as the suite set it. Header-only, included by
 * one test file each.
 */
#ifndef DM_FIXTURE_H
#define DM_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mongoc/mongoc.h>

#include "it_skip.h"

typedef struct {
    mongoc_client_t *client;
    mongoc_database_t *db;
    char dbname[64];
    int devmongo;
    bson_t saved_slow;
    bool saved_notablescan;
} dm_fixture_t;

static inline mongoc_client_t *dm_connect(void)
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

/* Runs cmd (destroyed) on admin; returns its success. reply may be NULL. */
static inline bool dm_admin(dm_fixture_t *fx, bson_t *cmd, bson_t *reply,
                            bson_error_t *error)
{
    bson_t local;
    bool ok = mongoc_client_command_simple(fx->client, "admin", cmd, NULL,
                                           reply ? reply : &local, error);

    if (reply == NULL)
        bson_destroy(&local);
    bson_destroy(cmd);
    return ok;
}

static inline int dm_detect(dm_fixture_t *fx)
{
    bson_t reply;
    bson_error_t error;
    bson_iter_t it;
    int yes = 0;

    if (dm_admin(fx, BCON_NEW("buildInfo", BCON_INT32(1)), &reply, &error) &&
        bson_iter_init_find(&it, &reply, "gitVersion") &&
        BSON_ITER_HOLDS_UTF8(&it))
        yes = strcmp(bson_iter_utf8(&it, NULL), "devmongo") == 0;
    bson_destroy(&reply);
    return yes;
}

/* Remembers the server's slow-mode prices and notablescan switch, so the
 * teardown can put them back whatever the tests set (a suite may run with
 * either on). */
static inline void dm_save(dm_fixture_t *fx)
{
    bson_t reply;
    bson_error_t error;
    bson_iter_t it;

    bson_init(&fx->saved_slow);
    if (!fx->devmongo)
        return;
    if (dm_admin(fx, BCON_NEW("devSlow", "{", "}"), &reply, &error)) {
        bson_iter_init(&it, &reply);
        while (bson_iter_next(&it))
            if (strcmp(bson_iter_key(&it), "ok") != 0)
                bson_append_iter(&fx->saved_slow, NULL, 0, &it);
    }
    bson_destroy(&reply);
    if (dm_admin(fx, BCON_NEW("devNoTableScan", BCON_BOOL(false)), &reply,
                 &error) &&
        bson_iter_init_find(&it, &reply, "was"))
        fx->saved_notablescan = bson_iter_as_bool(&it);
    bson_destroy(&reply);
}

static inline void dm_restore(dm_fixture_t *fx)
{
    bson_error_t error;

    if (fx->devmongo) {
        (void)dm_admin(fx, BCON_NEW("devSlow", BCON_DOCUMENT(&fx->saved_slow)),
                       NULL, &error);
        (void)dm_admin(
            fx, BCON_NEW("devNoTableScan", BCON_BOOL(fx->saved_notablescan)),
            NULL, &error);
    }
    bson_destroy(&fx->saved_slow);
}

static inline int dm_group_setup(void **state)
{
    /* bson_t asks for 128-byte alignment, and so does a struct holding
     * one: more than malloc promises (UBSan says so when it is not). */
    size_t align = _Alignof(dm_fixture_t),
           size = (sizeof(dm_fixture_t) + align - 1) / align * align;
    dm_fixture_t *fx = aligned_alloc(align, size);

    if (fx == NULL)
        return -1;
    memset(fx, 0, sizeof(*fx));
    snprintf(fx->dbname, sizeof(fx->dbname), "devmongo_rules_%ld",
             (long)getpid());
    fx->client = dm_connect();
    if (fx->client == NULL) {
        free(fx);
        return -1;
    }
    fx->db = mongoc_client_get_database(fx->client, fx->dbname);
    fx->devmongo = dm_detect(fx);
    dm_save(fx);
    *state = fx;
    return 0;
}

static inline int dm_group_teardown(void **state)
{
    dm_fixture_t *fx = *state;
    bson_error_t error;

    if (fx == NULL)
        return 0;
    dm_restore(fx);
    if (!mongoc_database_drop_with_opts(fx->db, NULL, &error))
        fprintf(stderr, "cannot drop '%s': %s\n", fx->dbname, error.message);
    mongoc_database_destroy(fx->db);
    mongoc_client_destroy(fx->client);
    free(fx);
    return 0;
}

/* A test program's main: skipped (it_skip_status: 77, a failure where
 * CI=true) without DEALIMPORT_MONGODB_URI, else libmongoc started, the
 * group run, libmongoc ended. Used as
 * `return DM_RUN(tests, dm_group_setup, dm_group_teardown);`. The caller
 * includes cmocka.h first. */
#define DM_RUN(tests, setup, teardown)                                         \
    dm_run(#tests, (tests), sizeof(tests) / sizeof((tests)[0]), (setup),       \
           (teardown))

static inline int dm_run(const char *name, const struct CMUnitTest *tests,
                         size_t n, CMFixtureFunction setup,
                         CMFixtureFunction teardown)
{
    const char *uri = getenv("DEALIMPORT_MONGODB_URI");
    int rc;

    if (uri == NULL || uri[0] == '\0') {
        printf("skipped: DEALIMPORT_MONGODB_URI not set\n");
        return it_skip_status();
    }
    mongoc_init();
    rc = _cmocka_run_group_tests(name, tests, n, setup, teardown);
    mongoc_cleanup();
    return rc;
}

/* A collection of the test database, empty. */
static inline mongoc_collection_t *dm_fresh(dm_fixture_t *fx, const char *name)
{
    mongoc_collection_t *coll =
        mongoc_client_get_collection(fx->client, fx->dbname, name);
    bson_error_t error;

    /* Absent is fine: the drop may fail with NamespaceNotFound. */
    (void)mongoc_collection_drop_with_opts(coll, NULL, &error);
    return coll;
}

/* Inserts n documents {_id: i, n: i, k: i % 10, g: 'g'} in bulks. */
static inline bool dm_fill(mongoc_collection_t *coll, int n)
{
    bson_error_t error;
    bool ok = true;

    for (int base = 0; ok && base < n; base += 10000) {
        mongoc_bulk_operation_t *bulk =
            mongoc_collection_create_bulk_operation_with_opts(coll, NULL);
        bson_t reply;

        for (int i = base; i < n && i < base + 10000; i++) {
            bson_t *doc =
                BCON_NEW("_id", BCON_INT32(i), "n", BCON_INT32(i), "k",
                         BCON_INT32(i % 10), "g", BCON_UTF8("g"));
            mongoc_bulk_operation_insert(bulk, doc);
            bson_destroy(doc);
        }
        ok = mongoc_bulk_operation_execute(bulk, &reply, &error) != 0;
        if (!ok)
            fprintf(stderr, "fill: %s\n", error.message);
        bson_destroy(&reply);
        mongoc_bulk_operation_destroy(bulk);
    }
    return ok;
}

/* Creates the index keys (destroyed) named name on coll, partial on the
 * filter partial (destroyed) unless NULL. */
static inline bool dm_create_index(mongoc_collection_t *coll, bson_t *keys,
                                   const char *name, bson_t *partial)
{
    bson_t *cmd =
        partial ? BCON_NEW("createIndexes",
                           BCON_UTF8(mongoc_collection_get_name(coll)),
                           "indexes", "[", "{", "key", BCON_DOCUMENT(keys),
                           "name", BCON_UTF8(name), "partialFilterExpression",
                           BCON_DOCUMENT(partial), "}", "]")
                : BCON_NEW("createIndexes",
                           BCON_UTF8(mongoc_collection_get_name(coll)),
                           "indexes", "[", "{", "key", BCON_DOCUMENT(keys),
                           "name", BCON_UTF8(name), "}", "]");
    bson_error_t error;
    bool ok = mongoc_collection_write_command_with_opts(coll, cmd, NULL, NULL,
                                                        &error);

    if (!ok)
        fprintf(stderr, "createIndexes '%s': %s\n", name, error.message);
    bson_destroy(cmd);
    bson_destroy(keys);
    if (partial != NULL)
        bson_destroy(partial);
    return ok;
}

/* The dev server's record of the last operation named op on coll's
 * namespace, copied into *entry (uninitialised; the caller destroys it
 * when true comes back); false if none. */
static inline bool dm_last_op(dm_fixture_t *fx, const char *coll,
                              const char *op, bson_t *entry)
{
    char ns[160];
    bson_t reply;
    bson_error_t error;
    bson_iter_t it, ops;
    bool found = false;

    snprintf(ns, sizeof(ns), "%s.%s", fx->dbname, coll);
    if (!dm_admin(fx,
                  BCON_NEW("devOpLog", BCON_INT32(1), "ns", BCON_UTF8(ns), "op",
                           BCON_UTF8(op), "limit", BCON_INT32(1)),
                  &reply, &error)) {
        fprintf(stderr, "devOpLog: %s\n", error.message);
        bson_destroy(&reply);
        return false;
    }
    if (bson_iter_init_find(&it, &reply, "ops") &&
        bson_iter_recurse(&it, &ops) && bson_iter_next(&ops) &&
        BSON_ITER_HOLDS_DOCUMENT(&ops)) {
        uint32_t len;
        const uint8_t *data;
        bson_t view;

        bson_iter_document(&ops, &len, &data);
        found = bson_init_static(&view, data, len);
        if (found)
            bson_copy_to(&view, entry);
    }
    bson_destroy(&reply);
    return found;
}

static inline double dm_double(const bson_t *doc, const char *key)
{
    bson_iter_t it;

    if (!bson_iter_init_find(&it, doc, key))
        return -1.0;
    return bson_iter_as_double(&it);
}

static inline int64_t dm_int(const bson_t *doc, const char *key)
{
    bson_iter_t it;

    if (!bson_iter_init_find(&it, doc, key))
        return -1;
    return bson_iter_as_int64(&it);
}

#endif
