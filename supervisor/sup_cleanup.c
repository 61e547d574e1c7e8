/*
 * sup_cleanup: reads the import's csv_imports document, decides from it
 * whether the source may go, deletes it through the storage module and
 * records when, guarded so that only the first recording sets the time.
 */
#include "sup_cleanup.h"
#include "dip_text.h"
#include "dip_bson.h"
#include "dip_config.h"

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
    if (errors > 0 && !(bson_iter_init_find(&it, imp, "error_file") &&
                        BSON_ITER_HOLDS_DOCUMENT(&it)))
        return dip_text_say(
            SUP_CLEANUP_KEPT, why, whylen,
            "the import's error file is not recorded yet: its source "
            "is kept until it is");
    return SUP_CLEANUP_DELETED;
}

int sup_cleanup_source(mongoc_database_t *db, dip_storage_t *storage,
                       int policy, const bson_value_t *queue_id,
                       const char *source_key, int64_t *deleted_at_ms,
                       char *why, size_t whylen)
{
    mongoc_collection_t *coll = NULL;
    bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set, ex;
    bson_t *found = NULL;
    const bson_t *doc;
    mongoc_cursor_t *cursor = NULL;
    bson_error_t error;
    char serr[1024] = "";
    int64_t at = 0;
    int rc, already = 0;

    if (policy != DIP_DELETE_SOURCE_COMPLETED) {
        rc = dip_text_say(
            SUP_CLEANUP_KEPT, why, whylen,
            "DEALIMPORT_DELETE_SOURCE is never: the source is kept");
        goto cleanup;
    }
    coll = mongoc_database_get_collection(db, "csv_imports");
    BSON_APPEND_VALUE(&filter, "queue_id", queue_id);
    cursor = mongoc_collection_find_with_opts(coll, &filter, NULL, NULL);
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
    if (rc != SUP_CLEANUP_DELETED || already)
        goto cleanup;

    if (dip_storage_delete(storage, source_key, serr, sizeof(serr)) != 0) {
        rc = dip_text_say(SUP_CLEANUP_ESTORAGE, why, whylen,
                          "cannot delete the source: %s", serr);
        goto cleanup;
    }
    at = dip_bson_now_ms();
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
    bson_destroy(&filter);
    bson_destroy(&update);
    return rc;
}
