/*
 * sup_store_lease: keeping the imports this supervisor holds (one renewal
 * for all, and which were lost when some were) and handing one back.
 */
#include "sup_store_priv.h"
#include "dip_bson.h"
#include "dip_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Our claim, whatever the status: an import whose final status is written
 * but whose csv_imports is not yet is still ours to finish. */
static int holds(sup_store_t *self, const bson_t *doc, int64_t epoch)
{
    const char *by = dip_bson_get_str(doc, "claimed_by");
    return by && strcmp(by, self->owner) == 0 && sup_store_epoch(doc) == epoch;
}

/* Which of the held imports are still ours: one find over their ids. */
static int mark_lost(sup_store_t *self, sup_store_held_t *held, size_t n,
                     char *err, size_t errlen)
{
    bson_t filter = BSON_INITIALIZER, id, in;
    bson_t *opts =
        BCON_NEW("projection", "{", "claimed_by", BCON_INT32(1), "claims",
                 BCON_INT32(1), "status", BCON_INT32(1), "}");
    mongoc_cursor_t *c;
    const bson_t *doc;
    bson_error_t error;
    int rc = SUP_STORE_OK;
    int *seen = calloc(n ? n : 1, sizeof(int));
    if (seen == NULL) {
        bson_destroy(opts);
        return SUP_STORE_EFAIL;
    }
    BSON_APPEND_DOCUMENT_BEGIN(&filter, "_id", &id);
    BSON_APPEND_ARRAY_BEGIN(&id, "$in", &in);
    for (size_t i = 0; i < n; i++) {
        char k[24];
        snprintf(k, sizeof(k), "%zu", i);
        BSON_APPEND_VALUE(&in, k, &held[i].id);
    }
    bson_append_array_end(&id, &in);
    bson_append_document_end(&filter, &id);
    {
        /* bounded in the server too (class 2) */
        bson_t *o = dip_mongo_read_opts(self->client, opts);
        c = mongoc_collection_find_with_opts(self->queues, &filter, o, NULL);
        bson_destroy(o);
    }
    while (mongoc_cursor_next(c, &doc)) {
        bson_iter_t it;
        if (!bson_iter_init_find(&it, doc, "_id"))
            continue;
        for (size_t i = 0; i < n; i++) {
            bson_t a = BSON_INITIALIZER, b = BSON_INITIALIZER;
            BSON_APPEND_VALUE(&a, "v", &held[i].id);
            BSON_APPEND_VALUE(&b, "v", bson_iter_value(&it));
            if (bson_equal(&a, &b)) {
                seen[i] = 1;
                held[i].lost = !holds(self, doc, held[i].epoch);
            }
            bson_destroy(&a);
            bson_destroy(&b);
        }
    }
    if (mongoc_cursor_error(c, &error)) {
        snprintf(err, errlen, "checking the claims failed: %s", error.message);
        rc = SUP_STORE_EFAIL;
    } else {
        for (size_t i = 0; i < n; i++)
            if (!seen[i])
                held[i].lost = 1; /* deleted */
    }
    mongoc_cursor_destroy(c);
    bson_destroy(&filter);
    bson_destroy(opts);
    free(seen);
    return rc;
}

int sup_store_renew(sup_store_t *self, sup_store_held_t *held, size_t n,
                    char *err, size_t errlen)
{
    bson_t filter = BSON_INITIALIZER, or, *update, set;
    bson_t reply;
    bson_error_t error;
    bson_iter_t it;
    int rc = SUP_STORE_OK;
    for (size_t i = 0; i < n; i++)
        held[i].lost = 0;
    if (n == 0)
        return SUP_STORE_OK;
    BSON_APPEND_UTF8(&filter, "claimed_by", self->owner);
    BSON_APPEND_UTF8(&filter, "status", "processing");
    BSON_APPEND_ARRAY_BEGIN(&filter, "$or", & or);
    for (size_t i = 0; i < n; i++) {
        bson_t one;
        char k[24];
        snprintf(k, sizeof(k), "%zu", i);
        BSON_APPEND_DOCUMENT_BEGIN(& or, k, &one);
        BSON_APPEND_VALUE(&one, "_id", &held[i].id);
        BSON_APPEND_INT64(&one, "claims", held[i].epoch);
        bson_append_document_end(& or, &one);
    }
    bson_append_array_end(&filter, & or);
    update = bson_new();
    BSON_APPEND_DOCUMENT_BEGIN(update, "$set", &set);
    dip_claim_append_take(&set, "lease_expires_at", dip_bson_now_ms(),
                          self->lease_s * 1000, NULL, NULL);
    bson_append_document_end(update, &set);
    if (!mongoc_collection_update_many(self->queues, &filter, update, NULL,
                                       &reply, &error)) {
        snprintf(err, errlen, "renewing leases failed: %s", error.message);
        rc = SUP_STORE_EFAIL;
    } else if (bson_iter_init_find(&it, &reply, "matchedCount") &&
               bson_iter_as_int64(&it) < (int64_t)n) {
        /* Some claim is gone: find out which (rare, so one more read). */
        rc = mark_lost(self, held, n, err, errlen);
    }
    bson_destroy(&reply);
    bson_destroy(&filter);
    bson_destroy(update);
    return rc;
}

int sup_store_release(sup_store_t *self, const bson_value_t *qid, int64_t epoch,
                      const char *status, const char *error_text, char *err,
                      size_t errlen)
{
    bson_t *filter = sup_store_owned(self, qid, epoch), *update = bson_new(),
           set, unset;
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
    return sup_store_update_take(self, filter, update, "releasing the import",
                                 err, errlen);
}
