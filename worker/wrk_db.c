/*
 * wrk_db: the worker's MongoDB operations with their retry policy. Deals carry
 * account_id and import:{queue_id, line} under a unique (partial) index, so
 * an insert that is retried, or a line re-read after a crash, can only ever
 * meet its own earlier copy: that duplicate-key error means "already done",
 * not a failure.
 */
#include "wrk_db.h"
#include "dip_bson.h"
#include "dip_deal_index.h"
#include "dip_log.h"
#include "dip_mongo_io.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct wrk_db {
    mongoc_client_t *client;
    mongoc_collection_t *queues, *deals, *stages, *pipelines;
    char queue_id[25];
    char dbname[128];
    bson_oid_t qid;
    long attempts, backoff_ms;
    long round_trips;
};

wrk_db_t *wrk_db_new(const dip_config_t *cfg, const char *queue_id, char *err,
                     size_t errlen)
{
    wrk_db_t *self = calloc(1, sizeof(*self));
    const char *db = NULL;
    if (self == NULL)
        return NULL;
    /* Timeouts from the lease: a call that blocks for longer would keep
     * the worker from checking its claim in time. */
    self->client =
        dip_mongo_client_new_bounded(cfg->mongodb_uri, "dealimport-worker",
                                     cfg->lease_s * 1000, &db, err, errlen);
    if (self->client == NULL) {
        free(self);
        return NULL;
    }
    snprintf(self->queue_id, sizeof(self->queue_id), "%s", queue_id);
    snprintf(self->dbname, sizeof(self->dbname), "%s", db);
    bson_oid_init_from_string(&self->qid, queue_id);
    self->queues = mongoc_client_get_collection(self->client, db, "queues");
    self->deals = mongoc_client_get_collection(self->client, db, "deals");
    self->stages =
        mongoc_client_get_collection(self->client, db, "pipeline_stages");
    self->pipelines =
        mongoc_client_get_collection(self->client, db, "pipelines");
    self->attempts = cfg->row_attempts;
    self->backoff_ms = cfg->row_backoff_ms;
    return self;
}

void wrk_db_destroy(wrk_db_t **self_p)
{
    wrk_db_t *self;
    if (self_p == NULL || *self_p == NULL)
        return;
    self = *self_p;
    mongoc_collection_destroy(self->queues);
    mongoc_collection_destroy(self->deals);
    mongoc_collection_destroy(self->stages);
    mongoc_collection_destroy(self->pipelines);
    /* No endSessions on the way out: with the database away it would block
     * for a socket timeout; the server expires the sessions itself. */
    dip_mongo_client_close(self->client);
    free(self);
    *self_p = NULL;
}

long wrk_db_round_trips(const wrk_db_t *self)
{
    return self->round_trips;
}

/* Decides after a failed attempt: 1 = try again (after backoff), 0 = stop.
 * Fills err and *rc for the final answer. */
static int should_retry(wrk_db_t *self, const bson_error_t *error, int attempt,
                        const char *what, int *rc, char *err, size_t errlen)
{
    if (dip_mongo_is_transient(error)) {
        if (attempt < self->attempts) {
            dip_log(DIP_LOG_WARNING, self->queue_id,
                    "%s failed (attempt %d of %ld), retrying: %s", what,
                    attempt, self->attempts, error->message);
            dip_mongo_backoff(self->backoff_ms, attempt);
            return 1;
        }
        snprintf(err, errlen, "the database did not answer (%s): %s", what,
                 error->message);
        *rc = WRK_DB_ETRANSIENT;
        return 0;
    }
    snprintf(err, errlen, "%s failed: %s", what, error->message);
    *rc = WRK_DB_EFAIL;
    return 0;
}

int wrk_db_load_queue(wrk_db_t *self, bson_t *out, char *err, size_t errlen)
{
    bson_t filter = BSON_INITIALIZER;
    bson_t *opts = dip_mongo_read_opts(self->client, NULL);
    int rc = WRK_DB_EFAIL;
    BSON_APPEND_OID(&filter, "_id", &self->qid);
    bson_init(out);
    for (int attempt = 1;; attempt++) {
        mongoc_cursor_t *c =
            mongoc_collection_find_with_opts(self->queues, &filter, opts, NULL);
        const bson_t *doc;
        bson_error_t error;
        int found = mongoc_cursor_next(c, &doc);
        self->round_trips++;
        if (found) {
            bson_destroy(out);
            bson_copy_to(doc, out);
            mongoc_cursor_destroy(c);
            rc = WRK_DB_OK;
            break;
        }
        if (!mongoc_cursor_error(c, &error)) {
            mongoc_cursor_destroy(c);
            snprintf(err, errlen, "queue document '%s' was not found",
                     self->queue_id);
            rc = WRK_DB_ENOTFOUND;
            break;
        }
        mongoc_cursor_destroy(c);
        if (!should_retry(self, &error, attempt, "reading the queue document",
                          &rc, err, errlen))
            break;
    }
    bson_destroy(opts);
    bson_destroy(&filter);
    return rc;
}

int wrk_db_fence_read(wrk_db_t *self, bson_t *out, char *err, size_t errlen)
{
    bson_t filter = BSON_INITIALIZER;
    bson_t *want = BCON_NEW("projection", "{", "claimed_by", BCON_INT32(1),
                            "claims", BCON_INT32(1), "status", BCON_INT32(1),
                            "}", "limit", BCON_INT64(1));
    bson_t *opts = dip_mongo_read_opts(self->client, want);
    mongoc_cursor_t *c;
    const bson_t *doc;
    bson_error_t error;
    int rc = WRK_DB_ENOTFOUND;
    BSON_APPEND_OID(&filter, "_id", &self->qid);
    bson_init(out);
    c = mongoc_collection_find_with_opts(self->queues, &filter, opts, NULL);
    self->round_trips++;
    if (mongoc_cursor_next(c, &doc)) {
        bson_destroy(out);
        bson_copy_to(doc, out);
        rc = WRK_DB_OK;
    } else if (mongoc_cursor_error(c, &error)) {
        snprintf(err, errlen, "checking the claim failed: %s", error.message);
        rc = WRK_DB_ETRANSIENT;
    }
    mongoc_cursor_destroy(c);
    bson_destroy(&filter);
    bson_destroy(opts);
    bson_destroy(want);
    return rc;
}

int wrk_db_check_pipeline(wrk_db_t *self, const bson_oid_t *pipeline,
                          const bson_oid_t *account, char *err, size_t errlen)
{
    bson_t filter = BSON_INITIALIZER;
    bson_t *opts = dip_mongo_read_opts(self->client, NULL);
    bson_error_t error;
    int rc = WRK_DB_EFAIL;
    char hex[25];
    BSON_APPEND_OID(&filter, "_id", pipeline);
    dip_bson_append_id_match(&filter, "account_id", account);
    for (int attempt = 1;; attempt++) {
        int64_t n = mongoc_collection_count_documents(self->pipelines, &filter,
                                                      opts, NULL, NULL, &error);
        self->round_trips++;
        if (n > 0) {
            rc = WRK_DB_OK;
            break;
        }
        if (n == 0) {
            bson_oid_to_string(pipeline, hex);
            snprintf(err, errlen,
                     "pipeline '%s' does not exist in this account", hex);
            rc = WRK_DB_ENOTFOUND;
            break;
        }
        if (!should_retry(self, &error, attempt, "checking the pipeline", &rc,
                          err, errlen))
            break;
    }
    bson_destroy(opts);
    bson_destroy(&filter);
    return rc;
}

int wrk_db_stages_find(wrk_db_t *self, const bson_oid_t *account,
                       const bson_oid_t *pipeline, int64_t limit,
                       void (*fn)(void *arg, const char *name,
                                  const bson_oid_t *id),
                       void *arg, char *err, size_t errlen)
{
    bson_t filter = BSON_INITIALIZER;
    const mongoc_uri_t *uri = mongoc_client_get_uri(self->client);
    int32_t sock_ms =
        mongoc_uri_get_option_as_int32(uri, MONGOC_URI_SOCKETTIMEOUTMS, 0);
    /* Below the socket timeout, so a slow server stops the work itself. */
    int64_t max_ms = sock_ms > 400 ? sock_ms / 2 : 200;
    bson_t *opts =
        BCON_NEW("projection", "{", "name", BCON_INT32(1), "}", "limit",
                 BCON_INT64(limit), "maxTimeMS", BCON_INT64(max_ms));
    int rc = WRK_DB_EFAIL;
    dip_bson_append_id_match(&filter, "account_id", account);
    dip_bson_append_id_match(&filter, "pipeline_id", pipeline);
    for (int attempt = 1;; attempt++) {
        mongoc_cursor_t *c =
            mongoc_collection_find_with_opts(self->stages, &filter, opts, NULL);
        const bson_t *doc;
        bson_error_t error;
        self->round_trips++;
        while (mongoc_cursor_next(c, &doc)) {
            bson_iter_t it;
            const bson_oid_t *id = NULL;
            if (bson_iter_init_find(&it, doc, "_id") &&
                BSON_ITER_HOLDS_OID(&it))
                id = bson_iter_oid(&it);
            if (id != NULL && bson_iter_init_find(&it, doc, "name") &&
                BSON_ITER_HOLDS_UTF8(&it))
                fn(arg, bson_iter_utf8(&it, NULL), id);
        }
        if (!mongoc_cursor_error(c, &error)) {
            mongoc_cursor_destroy(c);
            rc = WRK_DB_OK;
            break;
        }
        mongoc_cursor_destroy(c);
        /* What was passed on is right; passing it again is harmless. */
        if (!should_retry(self, &error, attempt, "reading the stages", &rc, err,
                          errlen))
            break;
    }
    bson_destroy(&filter);
    bson_destroy(opts);
    return rc;
}

int wrk_db_stage(wrk_db_t *self, const bson_oid_t *account,
                 const bson_oid_t *pipeline, const bson_oid_t *user,
                 const char *name, int may_create, bson_oid_t *out,
                 int *created, char *err, size_t errlen)
{
    bson_t query = BSON_INITIALIZER, *update;
    mongoc_find_and_modify_opts_t *opts = mongoc_find_and_modify_opts_new();
    int rc = WRK_DB_EFAIL;

    /* Match ids in either stored form; on insert, write ObjectIds. */
    dip_bson_append_id_match(&query, "account_id", account);
    dip_bson_append_id_match(&query, "pipeline_id", pipeline);
    BSON_APPEND_UTF8(&query, "name", name);
    update = BCON_NEW("$setOnInsert", "{", "account_id", BCON_OID(account),
                      "pipeline_id", BCON_OID(pipeline), "created_by",
                      BCON_OID(user), "created_at",
                      BCON_DATE_TIME(dip_bson_now_ms()), "created_by_import",
                      BCON_OID(&self->qid), "}");
    mongoc_find_and_modify_opts_set_update(opts, update);
    mongoc_find_and_modify_opts_set_flags(
        opts, may_create ? MONGOC_FIND_AND_MODIFY_UPSERT |
                               MONGOC_FIND_AND_MODIFY_RETURN_NEW
                         : MONGOC_FIND_AND_MODIFY_RETURN_NEW);
    mongoc_find_and_modify_opts_set_max_time_ms(
        opts, (uint32_t)dip_mongo_max_time_ms(self->client));
    for (int attempt = 1;; attempt++) {
        bson_t reply;
        bson_error_t error;
        bool ok = mongoc_collection_find_and_modify_with_opts(
            self->stages, &query, opts, &reply, &error);
        self->round_trips++;
        if (ok) {
            bson_iter_t it;
            if (bson_iter_init(&it, &reply) &&
                bson_iter_find_descendant(&it, "value._id", &it) &&
                BSON_ITER_HOLDS_OID(&it)) {
                bson_oid_copy(bson_iter_oid(&it), out);
                *created = bson_iter_init(&it, &reply) &&
                           bson_iter_find_descendant(
                               &it, "lastErrorObject.upserted", &it);
                rc = WRK_DB_OK;
            } else if (!may_create) {
                rc = WRK_DB_ENOTFOUND;
            } else {
                snprintf(err, errlen, "stage '%s': unexpected server reply",
                         name);
            }
            bson_destroy(&reply);
            break;
        }
        bson_destroy(&reply);
        /* Two imports creating the same stage at once: one upsert wins,
         * the other meets the unique index; the retry then finds it. */
        if (error.code == 11000 && attempt < 3)
            continue;
        if (!should_retry(self, &error, attempt, "finding the stage", &rc, err,
                          errlen))
            break;
    }
    bson_destroy(&query);
    bson_destroy(update);
    mongoc_find_and_modify_opts_destroy(opts);
    return rc;
}

/* 1 when a write error is the duplicate of this import's own line: on the
 * (queue, line) index, or on _id, which the worker made for this very
 * document (an ObjectId of its own), so only an earlier attempt of the same
 * batch can hold it. */
static int is_own_duplicate(bson_iter_t *we)
{
    bson_iter_t f;
    const char *msg;
    int64_t code = 0;
    if (!bson_iter_recurse(we, &f) || !bson_iter_find(&f, "code") ||
        dip_bson_iter_int(&f, &code) < 0 || code != 11000)
        return 0;
    if (bson_iter_recurse(we, &f) && bson_iter_find(&f, "keyPattern") &&
        BSON_ITER_HOLDS_DOCUMENT(&f)) {
        bson_iter_t k;
        return bson_iter_recurse(&f, &k) && bson_iter_next(&k) &&
               (strcmp(bson_iter_key(&k), "_id") == 0 ||
                (bson_iter_recurse(&f, &k) &&
                 bson_iter_find(&k, "import.line")));
    }
    /* Servers before 4.4 name only the index in errmsg. */
    if (bson_iter_recurse(we, &f) && bson_iter_find(&f, "errmsg") &&
        (msg = bson_iter_utf8(&f, NULL)) != NULL)
        return strstr(msg, "index: " DIP_DEAL_INDEX_DEALS " ") != NULL ||
               strstr(msg, "index: _id_ ") != NULL ||
               strstr(msg, "index: " DIP_DEAL_INDEX_OLD_DEALS " ") != NULL;
    return 0;
}

/* 1 when a write reply holds a writeConcernError; error then describes it
 * (domain MONGOC_ERROR_WRITE_CONCERN, the server's code and message), so the
 * transient-error policy decides on it. */
static int write_concern_error(const bson_t *reply, bson_error_t *error)
{
    bson_iter_t it, wce, f;
    const char *msg = NULL;
    int64_t code = 0;
    if (!bson_iter_init_find(&it, reply, "writeConcernErrors") ||
        !BSON_ITER_HOLDS_ARRAY(&it) || !bson_iter_recurse(&it, &wce) ||
        !bson_iter_next(&wce))
        return 0;
    error->domain = MONGOC_ERROR_WRITE_CONCERN;
    error->code = 64; /* WriteConcernFailed, when the server names none */
    if (bson_iter_recurse(&wce, &f) && bson_iter_find(&f, "code") &&
        dip_bson_iter_int(&f, &code) == 0 && code > 0 && code <= UINT32_MAX)
        error->code = (uint32_t)code;
    if (bson_iter_recurse(&wce, &f) && bson_iter_find(&f, "errmsg"))
        msg = bson_iter_utf8(&f, NULL);
    bson_strncpy(error->message, msg ? msg : "write concern failed",
                 sizeof(error->message));
    return 1;
}

int wrk_db_insert_deals(wrk_db_t *self, const bson_t *const *docs, size_t n,
                        int *outcome, char **messages, char *err, size_t errlen)
{
    bson_t opts = BSON_INITIALIZER;
    int rc = WRK_DB_EFAIL;
    BSON_APPEND_BOOL(&opts, "ordered", false);
    /* The worker built every key itself (the mapper refuses '$' and dotted
     * targets) from text the reader checked once, and each deal carries its
     * _id first: the driver need not validate or copy the documents. */
    BSON_APPEND_BOOL(&opts, "validate", false);
    for (size_t i = 0; i < n; i++) {
        outcome[i] = WRK_DB_ADDED;
        messages[i] = NULL;
    }
    if (n == 0) {
        bson_destroy(&opts);
        return WRK_DB_OK;
    }
    for (int attempt = 1;; attempt++) {
        bson_t reply;
        bson_error_t error;
        bson_iter_t it, we;
        int write_errors = 0, wc_failed;
        bool ok = mongoc_collection_insert_many(
            self->deals, (const bson_t **)docs, n, &opts, &reply, &error);
        /* A statement interrupted (a step-down, a time limit) is not a
         * refused deal: the batch goes again, and what is in meets its
         * own duplicate. */
        int interrupted = dip_mongo_write_errors_transient(&reply);
        self->round_trips++;
        if (bson_iter_init_find(&it, &reply, "writeErrors") &&
            BSON_ITER_HOLDS_ARRAY(&it) && bson_iter_recurse(&it, &we)) {
            while (bson_iter_next(&we)) {
                bson_iter_t f;
                int64_t idx = -1;
                write_errors++;
                if (bson_iter_recurse(&we, &f) &&
                    (!bson_iter_find(&f, "index") ||
                     dip_bson_iter_int(&f, &idx) < 0))
                    idx = -1;
                if (idx < 0 || (size_t)idx >= n)
                    continue;
                if (is_own_duplicate(&we)) {
                    outcome[idx] = WRK_DB_ALREADY;
                } else {
                    const char *m = NULL;
                    if (bson_iter_recurse(&we, &f) &&
                        bson_iter_find(&f, "errmsg"))
                        m = bson_iter_utf8(&f, NULL);
                    outcome[idx] = WRK_DB_REFUSED;
                    free(messages[idx]);
                    if (asprintf(&messages[idx],
                                 "the database refused this deal: %s",
                                 m ? m : "unknown error") < 0)
                        messages[idx] = NULL;
                }
            }
        }
        /* A write concern that failed (the primary stepped down before the
         * batch replicated) leaves every write of it unconfirmed, whatever
         * the write errors beside it: they may be rolled back, so the batch
         * is sent again like after a network failure. */
        wc_failed = write_concern_error(&reply, &error);
        if (interrupted && !wc_failed) {
            /* retried as the transient error it is, whatever the first
             * write error libmongoc named */
            dip_mongo_set_interrupted(&error, "the batch");
        }
        bson_destroy(&reply);
        if (!wc_failed && !interrupted &&
            (ok || (write_errors > 0 && !dip_mongo_is_transient(&error)))) {
            rc = WRK_DB_OK;
            break;
        }
        /* A network failure mid-batch: some documents may be in. The
         * retry sends them all; those meet their own duplicates. */
        for (size_t i = 0; i < n; i++) {
            outcome[i] = WRK_DB_ADDED;
            free(messages[i]);
            messages[i] = NULL;
        }
        if (!should_retry(self, &error, attempt, "inserting deals", &rc, err,
                          errlen))
            break;
    }
    bson_destroy(&opts);
    return rc;
}

mongoc_collection_t *wrk_db_collection(wrk_db_t *self, const char *name)
{
    return mongoc_client_get_collection(self->client, self->dbname, name);
}

int wrk_db_retry(wrk_db_t *self, const bson_error_t *error, int attempt,
                 const char *what, int *rc, char *err, size_t errlen)
{
    return should_retry(self, error, attempt, what, rc, err, errlen);
}

long wrk_db_max_time_ms(const wrk_db_t *self)
{
    long socket_ms = (long)mongoc_uri_get_option_as_int32(
        mongoc_client_get_uri(self->client), MONGOC_URI_SOCKETTIMEOUTMS,
        300000);
    return socket_ms * 3 / 4 > 100 ? socket_ms * 3 / 4 : 100;
}

void wrk_db_count_round_trip(wrk_db_t *self)
{
    self->round_trips++;
}

int wrk_db_unique_index(wrk_db_t *self, const char *collection,
                        const char *name, bson_t *keys, bson_t *partial,
                        char *err, size_t errlen)
{
    mongoc_collection_t *c = wrk_db_collection(self, collection);
    int rc = WRK_DB_OK;
    for (int attempt = 1;; attempt++) {
        bson_error_t error;
        int failed = dip_deal_index_create(c, name, keys, partial, &error);
        self->round_trips++;
        if (!failed)
            break;
        if (!should_retry(self, &error, attempt, "creating an index", &rc, err,
                          errlen))
            break;
    }
    mongoc_collection_destroy(c);
    return rc;
}

int wrk_db_deal_indexes(wrk_db_t *self, bson_t *out, char *err, size_t errlen)
{
    int rc = WRK_DB_OK;
    bson_init(out);
    for (int attempt = 1;; attempt++) {
        mongoc_cursor_t *c =
            mongoc_collection_find_indexes_with_opts(self->deals, NULL);
        const bson_t *doc;
        bson_error_t error;
        uint32_t n = 0;
        while (mongoc_cursor_next(c, &doc)) {
            char kb[16];
            const char *k;
            size_t kl = bson_uint32_to_string(n++, &k, kb, sizeof(kb));
            bson_append_document(out, k, (int)kl, doc);
        }
        self->round_trips++;
        if (!mongoc_cursor_error(c, &error)) {
            mongoc_cursor_destroy(c);
            break;
        }
        mongoc_cursor_destroy(c);
        bson_reinit(out);
        if (!should_retry(self, &error, attempt, "listing the deals' indexes",
                          &rc, err, errlen))
            break;
    }
    return rc;
}
