/*
 * sup_store_progress: a running import's line errors, progress and
 * checkpoint, errors first, fenced by owner and epoch.
 */
#include "sup_store_priv.h"
#include "dip_bson.h"
#include "dip_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int insert_errors(sup_store_t *self, bson_t *const *docs, size_t n,
                         char *err, size_t errlen)
{
    bson_t opts = BSON_INITIALIZER, reply;
    bson_error_t error;
    int rc = SUP_STORE_OK;
    if (n == 0)
        return SUP_STORE_OK;
    /* Built from frames the decoder validated whole: no second check. */
    BSON_APPEND_BOOL(&opts, "validate", false);
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
    return rc;
}

int sup_store_errors(sup_store_t *self, bson_t *const *errors, size_t nerr,
                     char *err, size_t errlen)
{
    return insert_errors(self, errors, nerr, err, errlen);
}

int sup_store_progress(sup_store_t *self, const bson_value_t *qid,
                       int64_t epoch, bson_t *const *errors, size_t nerr,
                       int64_t lines, int64_t added, int64_t nerrors,
                       int64_t not_stored, int64_t bytes, int64_t bytes_total,
                       const bson_t *checkpoint, const bson_t *header,
                       char *err, size_t errlen)
{
    bson_t *filter = NULL, *update = NULL, set, prog;
    int rc = insert_errors(self, errors, nerr, err, errlen);
    if (rc != SUP_STORE_OK)
        return rc;
    filter = sup_store_owned(self, qid, epoch);
    update = bson_new();
    BSON_APPEND_DOCUMENT_BEGIN(update, "$set", &set);
    BSON_APPEND_DOCUMENT_BEGIN(&set, "progress", &prog);
    BSON_APPEND_INT64(&prog, "bytes", bytes);
    BSON_APPEND_INT64(&prog, "bytes_total", bytes_total);
    BSON_APPEND_INT64(&prog, "lines", lines);
    BSON_APPEND_INT64(&prog, "added", added);
    BSON_APPEND_INT64(&prog, "errors", nerrors);
    BSON_APPEND_INT64(&prog, "errors_not_stored", not_stored);
    bson_append_document_end(&set, &prog);
    if (checkpoint)
        BSON_APPEND_DOCUMENT(&set, "checkpoint", checkpoint);
    if (header)
        BSON_APPEND_ARRAY(&set, "header", header);
    dip_claim_append_take(&set, "lease_expires_at", dip_bson_now_ms(),
                          self->lease_s * 1000, NULL, NULL);
    BSON_APPEND_DATE_TIME(&set, "updated_at", dip_bson_now_ms());
    bson_append_document_end(update, &set);
    return sup_store_update_take(self, filter, update, "writing progress", err,
                                 errlen);
}
