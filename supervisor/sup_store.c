/*
 * sup_store: the supervisor's MongoDB side: claiming, leases, progress and
 * error batches, and the final write of an import. Final counts are counted
 * from the database itself (deals and csv_import_errors of the import), so
 * csv_imports always agrees with what is stored, whatever crashes and
 * resumes happened on the way.
 */
#include "sup_store.h"
#include "dip_bson.h"
#include "dip_log.h"
#include "dip_mongo_io.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How many of the first errors csv_imports.logs keeps (all of them are in
 * csv_import_errors). */
#define LOGS_KEEP 100

struct sup_store {
    mongoc_client_t *client;
    mongoc_collection_t *queues, *deals, *imports, *errors;
    char owner[256];
    long lease_s;
};

sup_store_t *sup_store_new(const dip_config_t *cfg, const char *owner,
                           char *err, size_t errlen)
{
    sup_store_t *self = calloc(1, sizeof(*self));
    const char *db = NULL;
    if (self == NULL)
        return NULL;
    self->client = dip_mongo_client_new(
        cfg->mongodb_uri, "dealimport-supervisor", &db, err, errlen);
    if (self->client == NULL) {
        free(self);
        return NULL;
    }
    self->queues = mongoc_client_get_collection(self->client, db, "queues");
    self->deals = mongoc_client_get_collection(self->client, db, "deals");
    self->imports =
        mongoc_client_get_collection(self->client, db, "csv_imports");
    self->errors =
        mongoc_client_get_collection(self->client, db, "csv_import_errors");
    snprintf(self->owner, sizeof(self->owner), "%s", owner);
    self->lease_s = cfg->lease_s;
    return self;
}

void sup_store_destroy(sup_store_t **self_p)
{
    sup_store_t *self;
    if (self_p == NULL || *self_p == NULL)
        return;
    self = *self_p;
    mongoc_collection_destroy(self->queues);
    mongoc_collection_destroy(self->deals);
    mongoc_collection_destroy(self->imports);
    mongoc_collection_destroy(self->errors);
    mongoc_client_destroy(self->client);
    free(self);
    *self_p = NULL;
}

static int index_one(mongoc_collection_t *coll, const char *name, bson_t *keys,
                     int unique, char *err, size_t errlen)
{
    bson_t *cmd;
    bson_error_t error;
    bson_t reply;
    int rc = SUP_STORE_OK;
    cmd = BCON_NEW("createIndexes", BCON_UTF8(mongoc_collection_get_name(coll)),
                   "indexes", "[", "{", "key", BCON_DOCUMENT(keys), "name",
                   BCON_UTF8(name), "unique", BCON_BOOL(unique), "}", "]");
    if (!mongoc_collection_write_command_with_opts(coll, cmd, NULL, &reply,
                                                   &error)) {
        snprintf(err, errlen, "cannot create index '%s': %s", name,
                 error.message);
        rc = SUP_STORE_EFAIL;
    }
    bson_destroy(&reply);
    bson_destroy(cmd);
    bson_destroy(keys);
    return rc;
}

int sup_store_ensure_indexes(sup_store_t *self, char *err, size_t errlen)
{
    if (index_one(self->errors, "queue_line",
                  BCON_NEW("queue_id", BCON_INT32(1), "line", BCON_INT32(1)), 1,
                  err, errlen) ||
        index_one(self->imports, "queue_id",
                  BCON_NEW("queue_id", BCON_INT32(1)), 1, err, errlen) ||
        index_one(self->queues, "source_status_created",
                  BCON_NEW("source", BCON_INT32(1), "status", BCON_INT32(1),
                           "created_at", BCON_INT32(1)),
                  0, err, errlen))
        return SUP_STORE_EFAIL;
    return SUP_STORE_OK;
}

int sup_store_claim(sup_store_t *self, const bson_oid_t *skip, size_t nskip,
                    bson_t *out, char *err, size_t errlen)
{
    int64_t now = dip_bson_now_ms();
    bson_t query = BSON_INITIALIZER, or, b, sort = BSON_INITIALIZER, *update;
    bson_t reply;
    bson_error_t error;
    bson_iter_t it;
    mongoc_find_and_modify_opts_t *opts = mongoc_find_and_modify_opts_new();
    int rc = 0;

    BSON_APPEND_UTF8(&query, "source", "deals");
    BSON_APPEND_ARRAY_BEGIN(&query, "$or", & or);
    /* pending, not locked by anyone */
    BSON_APPEND_DOCUMENT_BEGIN(& or, "0", &b);
    BSON_APPEND_UTF8(&b, "status", "pending");
    {
        bson_t ne;
        BSON_APPEND_DOCUMENT_BEGIN(&b, "in_progress", &ne);
        BSON_APPEND_BOOL(&ne, "$ne", true);
        bson_append_document_end(&b, &ne);
    }
    bson_append_document_end(& or, &b);
    /* processing under a lease that ran out: its supervisor is gone */
    BSON_APPEND_DOCUMENT_BEGIN(& or, "1", &b);
    BSON_APPEND_UTF8(&b, "status", "processing");
    {
        bson_t lt;
        BSON_APPEND_DOCUMENT_BEGIN(&b, "lease_expires_at", &lt);
        BSON_APPEND_DATE_TIME(&lt, "$lt", now);
        bson_append_document_end(&b, &lt);
    }
    bson_append_document_end(& or, &b);
    bson_append_array_end(&query, & or);
    if (nskip > 0) {
        bson_t acc, nin;
        char k[24], hex[25];
        BSON_APPEND_DOCUMENT_BEGIN(&query, "account_id", &acc);
        BSON_APPEND_ARRAY_BEGIN(&acc, "$nin", &nin);
        for (size_t i = 0; i < nskip; i++) {
            snprintf(k, sizeof(k), "%zu", 2 * i);
            BSON_APPEND_OID(&nin, k, &skip[i]);
            snprintf(k, sizeof(k), "%zu", 2 * i + 1);
            bson_oid_to_string(&skip[i], hex);
            BSON_APPEND_UTF8(&nin, k, hex);
        }
        bson_append_array_end(&acc, &nin);
        bson_append_document_end(&query, &acc);
    }
    BSON_APPEND_INT32(&sort, "created_at", 1);
    BSON_APPEND_INT32(&sort, "_id", 1);
    update =
        BCON_NEW("$set", "{", "status", BCON_UTF8("processing"), "in_progress",
                 BCON_BOOL(true), "claimed_by", BCON_UTF8(self->owner),
                 "lease_expires_at", BCON_DATE_TIME(now + self->lease_s * 1000),
                 "claimed_at", BCON_DATE_TIME(now), "}", "$inc", "{", "claims",
                 BCON_INT32(1), "}");
    mongoc_find_and_modify_opts_set_sort(opts, &sort);
    mongoc_find_and_modify_opts_set_update(opts, update);
    mongoc_find_and_modify_opts_set_flags(opts,
                                          MONGOC_FIND_AND_MODIFY_RETURN_NEW);
    if (!mongoc_collection_find_and_modify_with_opts(self->queues, &query, opts,
                                                     &reply, &error)) {
        snprintf(err, errlen, "claiming an import failed: %s", error.message);
        rc = SUP_STORE_EFAIL;
    } else if (bson_iter_init_find(&it, &reply, "value") &&
               BSON_ITER_HOLDS_DOCUMENT(&it)) {
        const uint8_t *data;
        uint32_t len;
        bson_t tmp;
        bson_iter_document(&it, &len, &data);
        bson_init_static(&tmp, data, len);
        bson_copy_to(&tmp, out);
        rc = 1;
    }
    bson_destroy(&reply);
    bson_destroy(&query);
    bson_destroy(&sort);
    bson_destroy(update);
    mongoc_find_and_modify_opts_destroy(opts);
    return rc;
}

int sup_store_renew_leases(sup_store_t *self, char *err, size_t errlen)
{
    bson_t *filter, *update;
    bson_error_t error;
    int rc = SUP_STORE_OK;
    filter = BCON_NEW("claimed_by", BCON_UTF8(self->owner), "status",
                      BCON_UTF8("processing"));
    update =
        BCON_NEW("$set", "{", "lease_expires_at",
                 BCON_DATE_TIME(dip_bson_now_ms() + self->lease_s * 1000), "}");
    if (!mongoc_collection_update_many(self->queues, filter, update, NULL, NULL,
                                       &error)) {
        snprintf(err, errlen, "renewing leases failed: %s", error.message);
        rc = SUP_STORE_EFAIL;
    }
    bson_destroy(filter);
    bson_destroy(update);
    return rc;
}

static int insert_errors(sup_store_t *self, const bson_oid_t *qid,
                         json_t *errors, char *err, size_t errlen)
{
    size_t n = json_array_size(errors), i;
    bson_t **docs;
    bson_t opts = BSON_INITIALIZER, reply;
    bson_error_t error;
    int rc = SUP_STORE_OK;
    int64_t now = dip_bson_now_ms();
    if (n == 0)
        return SUP_STORE_OK;
    docs = calloc(n, sizeof(bson_t *));
    if (docs == NULL)
        return SUP_STORE_EFAIL;
    for (i = 0; i < n; i++) {
        json_t *e = json_array_get(errors, i), *row;
        bson_t *d = bson_new(), arr;
        size_t j;
        BSON_APPEND_OID(d, "queue_id", qid);
        BSON_APPEND_INT64(d, "line",
                          json_integer_value(json_object_get(e, "line")));
        BSON_APPEND_UTF8(d, "field",
                         json_string_value(json_object_get(e, "field")));
        BSON_APPEND_UTF8(d, "message",
                         json_string_value(json_object_get(e, "message")));
        row = json_object_get(e, "row");
        BSON_APPEND_ARRAY_BEGIN(d, "row", &arr);
        for (j = 0; j < json_array_size(row); j++) {
            char k[24];
            snprintf(k, sizeof(k), "%zu", j);
            BSON_APPEND_UTF8(&arr, k,
                             json_string_value(json_array_get(row, j)));
        }
        bson_append_array_end(d, &arr);
        BSON_APPEND_DATE_TIME(d, "created_at", now);
        docs[i] = d;
    }
    BSON_APPEND_BOOL(&opts, "ordered", false);
    if (!mongoc_collection_insert_many(self->errors, (const bson_t **)docs, n,
                                       &opts, &reply, &error)) {
        /* A line reported again by a resumed worker is already stored:
         * that is the point of the unique index, not a failure. */
        bson_iter_t it, we;
        int other = 0;
        if (bson_iter_init_find(&it, &reply, "writeErrors") &&
            bson_iter_recurse(&it, &we)) {
            while (bson_iter_next(&we)) {
                bson_iter_t f;
                if (!(bson_iter_recurse(&we, &f) &&
                      bson_iter_find(&f, "code") &&
                      bson_iter_as_int64(&f) == 11000))
                    other++;
            }
        } else {
            other = 1;
        }
        if (other) {
            snprintf(err, errlen, "writing line errors failed: %s",
                     error.message);
            rc = SUP_STORE_EFAIL;
        }
    }
    bson_destroy(&reply);
    bson_destroy(&opts);
    for (i = 0; i < n; i++)
        bson_destroy(docs[i]);
    free(docs);
    return rc;
}

/* {_id: qid, claimed_by: owner}: writes that only the claim holder may do. */
static bson_t *owned(sup_store_t *self, const bson_oid_t *qid)
{
    return BCON_NEW("_id", BCON_OID(qid), "claimed_by", BCON_UTF8(self->owner));
}

int sup_store_progress(sup_store_t *self, const bson_oid_t *qid, json_t *errors,
                       int64_t lines, int64_t added, int64_t nerrors,
                       int64_t bytes, int64_t bytes_total, json_t *checkpoint,
                       char *err, size_t errlen)
{
    bson_t *filter = NULL, *update = NULL, *cp = NULL, set, prog;
    bson_t reply;
    bson_error_t error;
    bson_iter_t it;
    int rc = insert_errors(self, qid, errors, err, errlen);
    if (rc != SUP_STORE_OK)
        return rc;
    filter = owned(self, qid);
    update = bson_new();
    BSON_APPEND_DOCUMENT_BEGIN(update, "$set", &set);
    BSON_APPEND_DOCUMENT_BEGIN(&set, "progress", &prog);
    BSON_APPEND_INT64(&prog, "bytes", bytes);
    BSON_APPEND_INT64(&prog, "bytes_total", bytes_total);
    BSON_APPEND_INT64(&prog, "lines", lines);
    BSON_APPEND_INT64(&prog, "added", added);
    BSON_APPEND_INT64(&prog, "errors", nerrors);
    bson_append_document_end(&set, &prog);
    if (checkpoint && (cp = dip_bson_from_json(checkpoint)) != NULL)
        BSON_APPEND_DOCUMENT(&set, "checkpoint", cp);
    BSON_APPEND_DATE_TIME(&set, "lease_expires_at",
                          dip_bson_now_ms() + self->lease_s * 1000);
    BSON_APPEND_DATE_TIME(&set, "updated_at", dip_bson_now_ms());
    bson_append_document_end(update, &set);
    if (!mongoc_collection_update_one(self->queues, filter, update, NULL,
                                      &reply, &error)) {
        snprintf(err, errlen, "writing progress failed: %s", error.message);
        rc = SUP_STORE_EFAIL;
    } else if (bson_iter_init_find(&it, &reply, "matchedCount") &&
               bson_iter_as_int64(&it) == 0) {
        snprintf(err, errlen,
                 "the import is no longer claimed by this "
                 "supervisor");
        rc = SUP_STORE_ELOST;
    }
    bson_destroy(&reply);
    bson_destroy(cp);
    bson_destroy(filter);
    bson_destroy(update);
    return rc;
}

static int64_t count(mongoc_collection_t *coll, const char *key,
                     const bson_oid_t *qid, bson_error_t *error)
{
    bson_t *filter = BCON_NEW(key, BCON_OID(qid));
    int64_t n = mongoc_collection_count_documents(coll, filter, NULL, NULL,
                                                  NULL, error);
    bson_destroy(filter);
    return n;
}

/* The first errors by line, for csv_imports.logs. */
static void append_logs(sup_store_t *self, const bson_oid_t *qid, bson_t *set)
{
    bson_t *filter = BCON_NEW("queue_id", BCON_OID(qid));
    bson_t *opts = BCON_NEW("sort", "{", "line", BCON_INT32(1), "}", "limit",
                            BCON_INT64(LOGS_KEEP), "projection", "{", "_id",
                            BCON_INT32(0), "line", BCON_INT32(1), "field",
                            BCON_INT32(1), "message", BCON_INT32(1), "}");
    mongoc_cursor_t *c =
        mongoc_collection_find_with_opts(self->errors, filter, opts, NULL);
    const bson_t *doc;
    bson_t arr;
    int i = 0;
    BSON_APPEND_ARRAY_BEGIN(set, "logs", &arr);
    while (mongoc_cursor_next(c, &doc)) {
        char k[24];
        snprintf(k, sizeof(k), "%d", i++);
        BSON_APPEND_DOCUMENT(&arr, k, doc);
    }
    bson_append_array_end(set, &arr);
    mongoc_cursor_destroy(c);
    bson_destroy(filter);
    bson_destroy(opts);
}

int sup_store_finish(sup_store_t *self, const bson_t *queue_doc,
                     const sup_store_result_t *r, char *err, size_t errlen)
{
    bson_oid_t qid, tmp;
    bson_error_t error;
    int64_t added, nerrors, now = dip_bson_now_ms();
    bson_t *filter = NULL, *update = NULL, set, soi, notes;
    const char *name;
    int rc = SUP_STORE_EFAIL;
    bson_t reply;
    bson_iter_t it;

    if (dip_bson_get_oid(queue_doc, "_id", &qid) != 0) {
        snprintf(err, errlen, "queue document without an _id");
        return SUP_STORE_EFAIL;
    }
    added = count(self->deals, "import.queue_id", &qid, &error);
    nerrors = added < 0 ? -1 : count(self->errors, "queue_id", &qid, &error);
    if (added < 0 || nerrors < 0) {
        snprintf(err, errlen, "counting the import's results failed: %s",
                 error.message);
        return SUP_STORE_EFAIL;
    }

    /* csv_imports: one per import, upserted so a repeated finish is
     * harmless. */
    filter = BCON_NEW("queue_id", BCON_OID(&qid));
    update = bson_new();
    BSON_APPEND_DOCUMENT_BEGIN(update, "$set", &set);
    BSON_APPEND_UTF8(&set, "status", r->status);
    BSON_APPEND_INT64(&set, "total_records", r->lines);
    BSON_APPEND_INT64(&set, "total_records_added", added);
    BSON_APPEND_INT64(&set, "total_errors", nerrors);
    if (r->error)
        BSON_APPEND_UTF8(&set, "error", r->error);
    BSON_APPEND_ARRAY_BEGIN(&set, "notes", &notes);
    for (size_t i = 0; r->notes && i < json_array_size(r->notes); i++) {
        char k[24];
        const char *s = json_string_value(json_array_get(r->notes, i));
        snprintf(k, sizeof(k), "%zu", i);
        BSON_APPEND_UTF8(&notes, k, s ? s : "");
    }
    bson_append_array_end(&set, &notes);
    append_logs(self, &qid, &set);
    BSON_APPEND_DATE_TIME(&set, "updated_at", now);
    BSON_APPEND_DATE_TIME(&set, "finished_at", now);
    bson_append_document_end(update, &set);
    BSON_APPEND_DOCUMENT_BEGIN(update, "$setOnInsert", &soi);
    if (dip_bson_get_oid(queue_doc, "account_id", &tmp) == 0)
        BSON_APPEND_OID(&soi, "account_id", &tmp);
    if (dip_bson_get_oid(queue_doc, "user_id", &tmp) == 0)
        BSON_APPEND_OID(&soi, "user_id", &tmp);
    name = dip_bson_get_str(queue_doc, "csv.0.name");
    if (name == NULL)
        name = dip_bson_get_str(queue_doc, "csv.0.key");
    BSON_APPEND_UTF8(&soi, "file_name", name ? name : "");
    BSON_APPEND_UTF8(&soi, "type", "deal");
    BSON_APPEND_DATE_TIME(&soi, "created_at", now);
    bson_append_document_end(update, &soi);
    {
        bson_t *opts = BCON_NEW("upsert", BCON_BOOL(true));
        bool ok = mongoc_collection_update_one(self->imports, filter, update,
                                               opts, NULL, &error);
        bson_destroy(opts);
        if (!ok) {
            snprintf(err, errlen, "writing csv_imports failed: %s",
                     error.message);
            goto cleanup;
        }
    }
    bson_destroy(filter);
    bson_destroy(update);

    filter = owned(self, &qid);
    update = bson_new();
    BSON_APPEND_DOCUMENT_BEGIN(update, "$set", &set);
    BSON_APPEND_UTF8(&set, "status", r->status);
    BSON_APPEND_BOOL(&set, "in_progress", false);
    BSON_APPEND_DATE_TIME(&set, "finished_at", now);
    BSON_APPEND_DATE_TIME(&set, "updated_at", now);
    BSON_APPEND_INT64(&set, "progress.lines", r->lines);
    BSON_APPEND_INT64(&set, "progress.added", added);
    BSON_APPEND_INT64(&set, "progress.errors", nerrors);
    if (r->error)
        BSON_APPEND_UTF8(&set, "error", r->error);
    bson_append_document_end(update, &set);
    {
        bson_t unset;
        BSON_APPEND_DOCUMENT_BEGIN(update, "$unset", &unset);
        BSON_APPEND_UTF8(&unset, "lease_expires_at", "");
        if (!r->error)
            BSON_APPEND_UTF8(&unset, "error", "");
        bson_append_document_end(update, &unset);
    }
    if (!mongoc_collection_update_one(self->queues, filter, update, NULL,
                                      &reply, &error)) {
        snprintf(err, errlen, "writing the final status failed: %s",
                 error.message);
    } else if (bson_iter_init_find(&it, &reply, "matchedCount") &&
               bson_iter_as_int64(&it) == 0) {
        snprintf(err, errlen,
                 "the import is no longer claimed by this supervisor");
        rc = SUP_STORE_ELOST;
    } else {
        rc = SUP_STORE_OK;
    }
    bson_destroy(&reply);
cleanup:
    bson_destroy(filter);
    bson_destroy(update);
    return rc;
}

int sup_store_release(sup_store_t *self, const bson_oid_t *qid,
                      const char *status, const char *error_text, char *err,
                      size_t errlen)
{
    bson_t *filter = owned(self, qid), *update = bson_new(), set, unset;
    bson_error_t error;
    int rc = SUP_STORE_OK;
    BSON_APPEND_DOCUMENT_BEGIN(update, "$set", &set);
    BSON_APPEND_UTF8(&set, "status", status);
    BSON_APPEND_BOOL(&set, "in_progress", false);
    BSON_APPEND_DATE_TIME(&set, "updated_at", dip_bson_now_ms());
    if (error_text)
        BSON_APPEND_UTF8(&set, "error", error_text);
    bson_append_document_end(update, &set);
    BSON_APPEND_DOCUMENT_BEGIN(update, "$unset", &unset);
    BSON_APPEND_UTF8(&unset, "claimed_by", "");
    BSON_APPEND_UTF8(&unset, "lease_expires_at", "");
    bson_append_document_end(update, &unset);
    if (!mongoc_collection_update_one(self->queues, filter, update, NULL, NULL,
                                      &error)) {
        snprintf(err, errlen, "releasing the import failed: %s", error.message);
        rc = SUP_STORE_EFAIL;
    }
    bson_destroy(filter);
    bson_destroy(update);
    return rc;
}
