/*
 * dip_deal_index: the indexes an import's writes rely on, made by the
 * supervisor before it claims (and by the tests that write deals
 * directly). See dip_deal_index.h.
 */
#include "dip_deal_index.h"
#include "dip_log.h"

#include <stdio.h>
#include <string.h>

#define DEALS_INDEX DIP_DEAL_INDEX_DEALS
#define OLD_DEALS_INDEX DIP_DEAL_INDEX_OLD_DEALS
#define STAGES_INDEX DIP_DEAL_INDEX_STAGES

int dip_deal_index_create(mongoc_collection_t *coll, const char *name,
                          const bson_t *keys, const bson_t *partial,
                          bson_error_t *error)
{
    bson_t cmd = BSON_INITIALIZER, arr, idx, reply;
    int rc = 0;
    BSON_APPEND_UTF8(&cmd, "createIndexes", mongoc_collection_get_name(coll));
    BSON_APPEND_ARRAY_BEGIN(&cmd, "indexes", &arr);
    BSON_APPEND_DOCUMENT_BEGIN(&arr, "0", &idx);
    BSON_APPEND_DOCUMENT(&idx, "key", keys);
    BSON_APPEND_UTF8(&idx, "name", name);
    BSON_APPEND_BOOL(&idx, "unique", true);
    if (partial)
        BSON_APPEND_DOCUMENT(&idx, "partialFilterExpression", partial);
    bson_append_document_end(&arr, &idx);
    bson_append_array_end(&cmd, &arr);
    if (!mongoc_collection_write_command_with_opts(coll, &cmd, NULL, &reply,
                                                   error))
        rc = -1;
    bson_destroy(&reply);
    bson_destroy(&cmd);
    return rc;
}

static int create_unique(mongoc_collection_t *coll, const char *name,
                         bson_t *keys, bson_t *partial, char *err,
                         size_t errlen)
{
    bson_error_t error;
    if (dip_deal_index_create(coll, name, keys, partial, &error) == 0)
        return 0;
    snprintf(err, errlen, "cannot create index '%s' on '%s': %s", name,
             mongoc_collection_get_name(coll), error.message);
    return -1;
}

int dip_deal_index_has(mongoc_collection_t *coll, const char *name, char *err,
                       size_t errlen)
{
    mongoc_cursor_t *c = mongoc_collection_find_indexes_with_opts(coll, NULL);
    const bson_t *doc;
    bson_error_t error;
    int found = 0, rc;
    while (!found && mongoc_cursor_next(c, &doc)) {
        bson_iter_t it;
        found = bson_iter_init_find(&it, doc, "name") &&
                BSON_ITER_HOLDS_UTF8(&it) &&
                strcmp(bson_iter_utf8(&it, NULL), name) == 0;
    }
    rc = found;
    if (!found && mongoc_cursor_error(c, &error)) {
        snprintf(err, errlen, "cannot list the indexes of '%s': %s",
                 mongoc_collection_get_name(coll), error.message);
        rc = -1;
    }
    mongoc_cursor_destroy(c);
    return rc;
}

int dip_deal_index_ensure(mongoc_collection_t *deals,
                          mongoc_collection_t *stages, char *err, size_t errlen)
{
    bson_t *keys, *partial, *drop;
    bson_error_t error;
    bson_t reply;
    int rc;
    /* Partial: the CRM's own deals have no `import` and must not collide.
     * Creating an index that exists with the same spec is a no-op, also
     * when several supervisors start at once. */
    keys = BCON_NEW("account_id", BCON_INT32(1), "import.queue_id",
                    BCON_INT32(1), "import.line", BCON_INT32(1));
    partial = BCON_NEW("import", "{", "$exists", BCON_BOOL(true), "}");
    rc = create_unique(deals, DEALS_INDEX, keys, partial, err, errlen);
    bson_destroy(keys);
    bson_destroy(partial);
    if (rc != 0)
        return rc;
    /* The new index stands before the old one goes, so deals are never
     * without a unique index; the old one is only dropped where it
     * exists. */
    rc = dip_deal_index_has(deals, OLD_DEALS_INDEX, err, errlen);
    if (rc < 0)
        return rc;
    if (rc == 1) {
        dip_log(DIP_LOG_INFO, NULL, "replacing the deals index '%s' by '%s'",
                OLD_DEALS_INDEX, DEALS_INDEX);
        drop = BCON_NEW("dropIndexes",
                        BCON_UTF8(mongoc_collection_get_name(deals)), "index",
                        BCON_UTF8(OLD_DEALS_INDEX));
        /* One another supervisor dropped first (27, IndexNotFound) is
         * fine. */
        if (!mongoc_collection_write_command_with_opts(deals, drop, NULL,
                                                       &reply, &error) &&
            error.code != 27) {
            snprintf(err, errlen, "cannot drop the old deals index '%s': %s",
                     OLD_DEALS_INDEX, error.message);
            rc = -1;
        }
        bson_destroy(&reply);
        bson_destroy(drop);
        if (rc < 0)
            return rc;
    }
    /* external_id is unique per account where a deal has one (the match
     * key of updates and upserts); the CRM's deals without one never
     * collide. Deals written by others may already repeat one: imports
     * that do not match on it go on, and one that does checks for the
     * index itself and fails with a sentence. */
    keys = BCON_NEW("account_id", BCON_INT32(1), "external_id", BCON_INT32(1));
    partial = BCON_NEW("external_id", "{", "$type", BCON_UTF8("string"), "}");
    if (create_unique(deals, DIP_DEAL_INDEX_EXTERNAL, keys, partial, err,
                      errlen) < 0)
        dip_log(DIP_LOG_WARNING, NULL,
                "%s: going on without it (tried again at the next start)", err);
    bson_destroy(keys);
    bson_destroy(partial);
    keys = BCON_NEW("account_id", BCON_INT32(1), "pipeline_id", BCON_INT32(1),
                    "name", BCON_INT32(1));
    if (create_unique(stages, STAGES_INDEX, keys, NULL, err, errlen) < 0)
        /* A CRM database may already hold duplicate stages (the original
         * service could create them); imports still work, only the
         * guarantee against concurrent duplicates is weaker. */
        dip_log(DIP_LOG_WARNING, NULL,
                "%s: going on without it (tried again at the next start)", err);
    bson_destroy(keys);
    return 0;
}
