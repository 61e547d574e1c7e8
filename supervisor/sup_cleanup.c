/*
 * sup_cleanup: reads the import's csv_imports document, decides from it
 * whether the source may go, deletes it through the storage module and
 * records when, guarded so that only the first recording sets the time.
 */
#include "sup_cleanup.h"
#include "dip_text.h"
#include "dip_bson.h"
#include "dip_config.h"
#include "dip_mongo_io.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* The verdict on the csv_imports document: SUP_CLEANUP_DELETED when it may
 * go (or went: *already set), SUP_CLEANUP_KEPT with a reason. */
static int decide(const bson_t *imp, int *already, int64_t *at, char *why,
                  size_t whylen)
{
    bson_iter_t it;
    const char *status = dip_bson_get_str(imp, "status");
    int64_t errors = dip_bson_get_int(imp, "total_errors", 0);
    *already = 0;
    if (bson_iter_init_find(&it, imp, "source_deleted_at") &&
        BSON_ITER_HOLDS_DATE_TIME(&it)) {
        *already = 1;
        *at = bson_iter_date_time(&it);
        return dip_text_say(SUP_CLEANUP_DELETED, why, whylen,
                            "the source was deleted before");
    }
    if (status == NULL || strcmp(status, "completed") != 0)
        return dip_text_say(
            SUP_CLEANUP_KEPT, why, whylen,
            "the import is '%s', not completed: its source is kept",
            status ? status : "(no status)");
    /* only a boolean true: csv_imports' dry_run is written as one */
    if (bson_iter_init_find(&it, imp, "dry_run") && BSON_ITER_HOLDS_BOOL(&it) &&
        bson_iter_bool(&it))
        return dip_text_say(SUP_CLEANUP_KEPT, why, whylen,
                            "a dry run keeps its source");
    /* the error file written (a key), not given up ({failed}) */
    if (errors > 0 && dip_bson_get_str(imp, "error_file.failed") != NULL)
        return dip_text_say(
            SUP_CLEANUP_KEPT, why, whylen,
            "the import's error file was given up: its source is kept, "
            "the only copy of its rejected rows");
    if (errors > 0 && dip_bson_get_str(imp, "error_file.key") == NULL)
        return dip_text_say(
            SUP_CLEANUP_KEPT, why, whylen,
            "the import's error file is not recorded yet: its source "
            "is kept until it is");
    /* nor before the success file, when one is asked for: it is read
     * from the source */
    if (bson_iter_init_find(&it, imp, "success_file_wanted") &&
        BSON_ITER_HOLDS_BOOL(&it) && bson_iter_bool(&it) &&
        dip_bson_get_str(imp, "success_file.key") == NULL)
        return dip_text_say(
            SUP_CLEANUP_KEPT, why, whylen,
            "the import's success file is not recorded yet: its source "
            "is kept until it is");
    return SUP_CLEANUP_DELETED;
}

/* The final statuses; anything else (pending, processing, paused, one
 * unknown) may still read its source. */
static void append_open(bson_t *q)
{
    bson_t st, nin;
    BSON_APPEND_DOCUMENT_BEGIN(q, "status", &st);
    BSON_APPEND_ARRAY_BEGIN(&st, "$nin", &nin);
    BSON_APPEND_UTF8(&nin, "0", "completed");
    BSON_APPEND_UTF8(&nin, "1", "failed");
    BSON_APPEND_UTF8(&nin, "2", "cancelled");
    bson_append_array_end(&st, &nin);
    bson_append_document_end(q, &st);
}

int64_t sup_cleanup_count_open(mongoc_client_t *client, const char *dbname,
                               const bson_value_t *queue_id,
                               const char *source_key, bson_error_t *error)
{
    mongoc_collection_t *q =
        mongoc_client_get_collection(client, dbname, "queues");
    bson_t f = BSON_INITIALIZER, ne;
    bson_t *o = dip_mongo_read_opts(client, NULL);
    int64_t n;
    /* csv.key and status: the index csv_key_status (sup_store) */
    BSON_APPEND_UTF8(&f, "csv.key", source_key);
    append_open(&f);
    BSON_APPEND_DOCUMENT_BEGIN(&f, "_id", &ne);
    BSON_APPEND_VALUE(&ne, "$ne", queue_id);
    bson_append_document_end(&f, &ne);
    n = mongoc_collection_count_documents(q, &f, o, NULL, NULL, error);
    bson_destroy(o);
    bson_destroy(&f);
    mongoc_collection_destroy(q);
    return n;
}

/* The ids (at most SUP_CLEANUP_SHARED_MAX) of the queue documents naming
 * source_key, as an array {"0": id, ...} into ids. 0, or -1. */
static int ids_of(mongoc_client_t *client, const char *dbname,
                  const char *source_key, bson_t *ids, bson_error_t *error)
{
    mongoc_collection_t *q =
        mongoc_client_get_collection(client, dbname, "queues");
    bson_t *f = BCON_NEW("csv.key", BCON_UTF8(source_key));
    bson_t *o = BCON_NEW("projection", "{", "_id", BCON_INT32(1), "}", "limit",
                         BCON_INT64(SUP_CLEANUP_SHARED_MAX));
    bson_t *ro = dip_mongo_read_opts(client, o);
    mongoc_cursor_t *c = mongoc_collection_find_with_opts(q, f, ro, NULL);
    const bson_t *doc;
    bson_iter_t it;
    int rc = 0;
    uint32_t i = 0;
    while (mongoc_cursor_next(c, &doc))
        if (bson_iter_init_find(&it, doc, "_id")) {
            char k[16];
            snprintf(k, sizeof(k), "%u", i++);
            BSON_APPEND_VALUE(ids, k, bson_iter_value(&it));
        }
    if (mongoc_cursor_error(c, error))
        rc = -1;
    mongoc_cursor_destroy(c);
    bson_destroy(ro);
    bson_destroy(o);
    bson_destroy(f);
    mongoc_collection_destroy(q);
    return rc;
}

/* The csv_imports filter of the imports of source_key that wanted it
 * deleted and have not recorded it yet. */
static int wanted_filter(mongoc_client_t *client, const char *dbname,
                         const char *source_key, bson_t *f, bson_error_t *error)
{
    bson_t qid, ids = BSON_INITIALIZER, ex;
    if (ids_of(client, dbname, source_key, &ids, error) < 0) {
        bson_destroy(&ids);
        return -1;
    }
    BSON_APPEND_DOCUMENT_BEGIN(f, "queue_id", &qid);
    BSON_APPEND_ARRAY(&qid, "$in", &ids);
    bson_append_document_end(f, &qid);
    bson_destroy(&ids);
    BSON_APPEND_BOOL(f, "source_delete_wanted", true);
    BSON_APPEND_DOCUMENT_BEGIN(f, "source_deleted_at", &ex);
    BSON_APPEND_BOOL(&ex, "$exists", false);
    bson_append_document_end(f, &ex);
    return 0;
}

int64_t sup_cleanup_count_wanted(mongoc_client_t *client, const char *dbname,
                                 const char *source_key, bson_error_t *error)
{
    mongoc_collection_t *c =
        mongoc_client_get_collection(client, dbname, "csv_imports");
    bson_t f = BSON_INITIALIZER;
    bson_t *o = dip_mongo_read_opts(client, NULL);
    int64_t n = -1;
    if (wanted_filter(client, dbname, source_key, &f, error) == 0)
        n = mongoc_collection_count_documents(c, &f, o, NULL, NULL, error);
    bson_destroy(o);
    bson_destroy(&f);
    mongoc_collection_destroy(c);
    return n;
}

int sup_cleanup_record_wanted(mongoc_client_t *client, const char *dbname,
                              const char *source_key, int64_t at_ms,
                              bson_error_t *error)
{
    mongoc_collection_t *c =
        mongoc_client_get_collection(client, dbname, "csv_imports");
    bson_t f = BSON_INITIALIZER;
    bson_t *u =
        BCON_NEW("$set", "{", "source_deleted_at", BCON_DATE_TIME(at_ms), "}");
    int rc = -1;
    if (wanted_filter(client, dbname, source_key, &f, error) == 0 &&
        mongoc_collection_update_many(c, &f, u, NULL, NULL, error))
        rc = 0;
    bson_destroy(&f);
    bson_destroy(u);
    mongoc_collection_destroy(c);
    return rc;
}

int sup_cleanup_source(mongoc_client_t *client, const char *dbname,
                       dip_storage_t *storage, int policy,
                       const bson_value_t *queue_id, const char *source_key,
                       int64_t *deleted_at_ms, char *why, size_t whylen)
{
    mongoc_collection_t *coll = NULL;
    bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set, ex;
    bson_t *found = NULL, *ropts = NULL;
    const bson_t *doc;
    mongoc_cursor_t *cursor = NULL;
    bson_error_t error;
    char serr[1024] = "";
    int64_t at = 0, others, wanted;
    int rc, already = 0, own = 1;

    if (policy != DIP_DELETE_SOURCE_COMPLETED) {
        rc = dip_text_say(
            SUP_CLEANUP_KEPT, why, whylen,
            "DEALIMPORT_DELETE_SOURCE is never: the source is kept");
        goto cleanup;
    }
    coll = mongoc_client_get_collection(client, dbname, "csv_imports");
    BSON_APPEND_VALUE(&filter, "queue_id", queue_id);
    ropts = dip_mongo_read_opts(client, NULL);
    cursor = mongoc_collection_find_with_opts(coll, &filter, ropts, NULL);
    if (mongoc_cursor_next(cursor, &doc))
        found = bson_copy(doc);
    if (mongoc_cursor_error(cursor, &error)) {
        rc = dip_text_say(
            SUP_CLEANUP_EDB, why, whylen,
            "cannot read csv_imports to decide on the source '%s': %s",
            source_key, error.message);
        goto cleanup;
    }
    if (found == NULL) {
        rc = dip_text_say(
            SUP_CLEANUP_KEPT, why, whylen,
            "the import has no csv_imports document yet: its source is "
            "kept");
        goto cleanup;
    }
    rc = decide(found, &already, &at, why, whylen);
    if (already)
        goto cleanup;
    /* A shared source goes last: this import's wish is recorded first,
     * then the others naming the key are counted, so that of two imports
     * ending together the later count sees the earlier wish. */
    if (rc == SUP_CLEANUP_DELETED) {
        bson_t w = BSON_INITIALIZER, ws;
        BSON_APPEND_DOCUMENT_BEGIN(&w, "$set", &ws);
        BSON_APPEND_BOOL(&ws, "source_delete_wanted", true);
        bson_append_document_end(&w, &ws);
        if (!mongoc_collection_update_one(coll, &filter, &w, NULL, NULL,
                                          &error)) {
            bson_destroy(&w);
            rc = dip_text_say(SUP_CLEANUP_EDB, why, whylen,
                              "cannot record on csv_imports that the source "
                              "'%s' may go: %s",
                              source_key, error.message);
            goto cleanup;
        }
        bson_destroy(&w);
    }
    others =
        sup_cleanup_count_open(client, dbname, queue_id, source_key, &error);
    if (others < 0) {
        rc = dip_text_say(SUP_CLEANUP_EDB, why, whylen,
                          "cannot count the imports that still read the "
                          "source '%s': %s",
                          source_key, error.message);
        goto cleanup;
    }
    if (others > 0) {
        if (rc == SUP_CLEANUP_DELETED)
            rc = dip_text_say(SUP_CLEANUP_KEPT, why, whylen,
                              "%lld other import(s) not yet ended read the "
                              "source '%s': it is deleted after the last",
                              (long long)others, source_key);
        goto cleanup;
    }
    if (rc != SUP_CLEANUP_DELETED) {
        /* This import keeps it (a dry run, a failure), but it may be the
         * last of several, an earlier one of which wanted it gone. */
        wanted = sup_cleanup_count_wanted(client, dbname, source_key, &error);
        if (wanted < 0) {
            rc = dip_text_say(SUP_CLEANUP_EDB, why, whylen,
                              "cannot read csv_imports to decide on the "
                              "source '%s': %s",
                              source_key, error.message);
            goto cleanup;
        }
        if (wanted == 0)
            goto cleanup;
        own = 0;
    }

    if (dip_storage_delete(storage, source_key, serr, sizeof(serr)) != 0) {
        rc = dip_text_say(SUP_CLEANUP_ESTORAGE, why, whylen,
                          "cannot delete the source: %s", serr);
        goto cleanup;
    }
    at = dip_bson_now_ms();
    /* Every import that wanted it gone records when it went. */
    if (sup_cleanup_record_wanted(client, dbname, source_key, at, &error) < 0) {
        rc = dip_text_say(SUP_CLEANUP_EDB, why, whylen,
                          "the source '%s' is deleted but recording it on "
                          "csv_imports failed: %s",
                          source_key, error.message);
        goto cleanup;
    }
    if (!own) {
        rc = dip_text_say(SUP_CLEANUP_DELETED, why, whylen,
                          "the source is deleted for the earlier imports of "
                          "it that completed");
        at = 0;
        goto cleanup;
    }
    /* Only the first recording sets the time. */
    BSON_APPEND_DOCUMENT_BEGIN(&filter, "source_deleted_at", &ex);
    BSON_APPEND_BOOL(&ex, "$exists", false);
    bson_append_document_end(&filter, &ex);
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    BSON_APPEND_DATE_TIME(&set, "source_deleted_at", at);
    bson_append_document_end(&update, &set);
    if (!mongoc_collection_update_one(coll, &filter, &update, NULL, NULL,
                                      &error)) {
        rc = dip_text_say(SUP_CLEANUP_EDB, why, whylen,
                          "the source '%s' is deleted but recording it on "
                          "csv_imports failed: %s",
                          source_key, error.message);
        goto cleanup;
    }
    rc = SUP_CLEANUP_DELETED;
    if (why && whylen)
        why[0] = '\0';
cleanup:
    if (rc == SUP_CLEANUP_DELETED && deleted_at_ms)
        *deleted_at_ms = at;
    if (cursor)
        mongoc_cursor_destroy(cursor);
    if (coll)
        mongoc_collection_destroy(coll);
    bson_destroy(found);
    bson_destroy(ropts);
    bson_destroy(&filter);
    bson_destroy(&update);
    return rc;
}
