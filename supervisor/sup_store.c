/*
 * sup_store: the supervisor's MongoDB side, its client and indexes, and the
 * fence every later write about a claimed import carries. Claiming is in
 * sup_store_claim.c, renewing and handing back in sup_store_lease.c,
 * progress in sup_store_progress.c, the end of an import in
 * sup_store_finish.c; they share sup_store_priv.h.
 */
#include "sup_store_priv.h"
#include "dip_deal_index.h"
#include "dip_bson.h"
#include "dip_log.h"
#include "dip_mongo_io.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void close_client(sup_store_t *self)
{
    mongoc_collection_destroy(self->queues);
    mongoc_collection_destroy(self->deals);
    mongoc_collection_destroy(self->imports);
    mongoc_collection_destroy(self->errors);
    mongoc_collection_destroy(self->stages);
    mongoc_collection_destroy(self->lines);
    self->queues = self->deals = self->imports = self->errors = NULL;
    self->stages = self->lines = NULL;
    self->client = NULL;
}

/* The collections, on the borrowed client whose calls are bounded by
 * sup_store_budget_ms (a lease, or less). */
static int open_client(sup_store_t *self, mongoc_client_t *client,
                       const char *db)
{
    self->client = client;
    self->queues = mongoc_client_get_collection(self->client, db, "queues");
    self->deals = mongoc_client_get_collection(self->client, db, "deals");
    self->stages =
        mongoc_client_get_collection(self->client, db, "pipeline_stages");
    self->imports =
        mongoc_client_get_collection(self->client, db, "csv_imports");
    self->errors =
        mongoc_client_get_collection(self->client, db, "csv_import_errors");
    self->lines =
        mongoc_client_get_collection(self->client, db, "csv_import_lines");
    return SUP_STORE_OK;
}

sup_store_t *sup_store_new(const dip_config_t *cfg, const char *owner,
                           mongoc_client_t *client, const char *db, char *err,
                           size_t errlen)
{
    sup_store_t *self = calloc(1, sizeof(*self));
    if (self == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    open_client(self, client, db);
    snprintf(self->owner, sizeof(self->owner), "%s", owner);
    self->lease_s = cfg->lease_s;
    self->deletes_source = cfg->delete_source != DIP_DELETE_SOURCE_NEVER;
    return self;
}

long sup_store_budget_ms(const dip_config_t *cfg)
{
    long s = cfg->stop_timeout_s > 0 && cfg->stop_timeout_s < cfg->lease_s
                 ? cfg->stop_timeout_s
                 : cfg->lease_s;
    return s * 1000;
}

long sup_store_call_ms(const sup_store_t *self)
{
    return dip_mongo_call_ms(self->client);
}

void sup_store_destroy(sup_store_t **self_p)
{
    sup_store_t *self;
    if (self_p == NULL || *self_p == NULL)
        return;
    self = *self_p;
    close_client(self);
    sup_store_look_destroy(self);
    free(self);
    *self_p = NULL;
}

/* An index on coll named name over keys (taken): unique when asked, and
 * holding only the documents partial (taken, may be NULL) matches. */
static int index_make(mongoc_collection_t *coll, const char *name, bson_t *keys,
                      bson_t *partial, int unique, char *err, size_t errlen)
{
    bson_t cmd = BSON_INITIALIZER, arr, idx, reply;
    bson_error_t error;
    int rc = SUP_STORE_OK;
    BSON_APPEND_UTF8(&cmd, "createIndexes", mongoc_collection_get_name(coll));
    BSON_APPEND_ARRAY_BEGIN(&cmd, "indexes", &arr);
    BSON_APPEND_DOCUMENT_BEGIN(&arr, "0", &idx);
    BSON_APPEND_DOCUMENT(&idx, "key", keys);
    BSON_APPEND_UTF8(&idx, "name", name);
    BSON_APPEND_BOOL(&idx, "unique", unique);
    if (partial)
        BSON_APPEND_DOCUMENT(&idx, "partialFilterExpression", partial);
    bson_append_document_end(&arr, &idx);
    bson_append_array_end(&cmd, &arr);
    if (!mongoc_collection_write_command_with_opts(coll, &cmd, NULL, &reply,
                                                   &error)) {
        snprintf(err, errlen, "cannot create index '%s': %s", name,
                 error.message);
        rc = SUP_STORE_EFAIL;
    }
    bson_destroy(&reply);
    bson_destroy(&cmd);
    bson_destroy(keys);
    if (partial)
        bson_destroy(partial);
    return rc;
}

static int index_one(mongoc_collection_t *coll, const char *name, bson_t *keys,
                     int unique, char *err, size_t errlen)
{
    return index_make(coll, name, keys, NULL, unique, err, errlen);
}

void sup_store_account_key(const bson_value_t *v, char *out, size_t len)
{
    if (v->value_type == BSON_TYPE_OID)
        bson_oid_to_string(&v->value.v_oid, out);
    else if (v->value_type == BSON_TYPE_UTF8 && v->value.v_utf8.len == 24 &&
             bson_oid_is_valid(v->value.v_utf8.str, 24)) {
        bson_oid_t oid;
        bson_oid_init_from_string(&oid, v->value.v_utf8.str);
        bson_oid_to_string(&oid, out); /* lowercase */
    } else if (v->value_type == BSON_TYPE_UTF8)
        snprintf(out, len, "%s", v->value.v_utf8.str);
    else
        snprintf(out, len, "%s", "");
}

void sup_store_served_account(const bson_value_t *v, bson_oid_t *out)
{
    if (v->value_type == BSON_TYPE_OID)
        bson_oid_copy(&v->value.v_oid, out);
    else if (v->value_type == BSON_TYPE_UTF8 && v->value.v_utf8.len == 24 &&
             bson_oid_is_valid(v->value.v_utf8.str, 24))
        bson_oid_init_from_string(out, v->value.v_utf8.str);
    else
        memset(out, 0, sizeof(*out));
}

/* Running imports claimed before account_key existed get theirs, so the
 * unique index on it can be built. Such claims were made by a supervisor
 * of the version before it, which made running_account_slot, (account_id,
 * account_slot) partial on status processing; the query runs on an index
 * of running imports only, never on the whole of `queues`:
 *   - running_account_key_slot stands (any start after the first):
 *     account_key missing is its null key, status its partial filter;
 *   - only running_account_slot stands (the first start after the
 *     upgrade): every key of it, by account_id (one without an account_id
 *     is (null, slot) in both indexes and needs no key to stay unique);
 *   - neither (a database no claiming supervisor has used): nothing to
 *     backfill, and asking would be a collection scan, refused under
 *     notablescan.
 * Bounded by maxTimeMS; a failure leaves the index build to say so. */
static void backfill_account_keys(sup_store_t *self)
{
    char err[256];
    int has_new = dip_deal_index_has(self->queues, "running_account_key_slot",
                                     err, sizeof(err));
    int has_old = has_new == 1
                      ? 0
                      : dip_deal_index_has(self->queues, "running_account_slot",
                                           err, sizeof(err));
    bson_t *filter, *opts, *ropts;
    mongoc_cursor_t *c;
    const bson_t *doc;
    if (has_new != 1 && has_old != 1)
        return;
    filter = BCON_NEW("status", BCON_UTF8("processing"), "account_key", "{",
                      "$exists", BCON_BOOL(false), "}");
    if (has_new != 1)
        BCON_APPEND(filter, "account_id", "{", "$exists", BCON_BOOL(true), "}");
    opts = BCON_NEW("projection", "{", "account_id", BCON_INT32(1), "}",
                    "limit", BCON_INT64(10000));
    ropts = dip_mongo_read_opts(self->client, opts);
    c = mongoc_collection_find_with_opts(self->queues, filter, ropts, NULL);
    while (mongoc_cursor_next(c, &doc)) {
        bson_iter_t it;
        bson_value_t null_value = {.value_type = BSON_TYPE_NULL};
        const bson_value_t *acc = &null_value;
        char key[256];
        bson_t *f, *u;
        if (bson_iter_init_find(&it, doc, "account_id"))
            acc = bson_iter_value(&it);
        sup_store_account_key(acc, key, sizeof(key));
        if (!bson_iter_init_find(&it, doc, "_id"))
            continue;
        f = bson_new();
        BSON_APPEND_VALUE(f, "_id", bson_iter_value(&it));
        u = BCON_NEW("$set", "{", "account_key", BCON_UTF8(key), "}");
        mongoc_collection_update_one(self->queues, f, u, NULL, NULL, NULL);
        bson_destroy(f);
        bson_destroy(u);
    }
    mongoc_cursor_destroy(c);
    bson_destroy(filter);
    bson_destroy(opts);
    bson_destroy(ropts);
}

/* At most one running import per (account, slot): the per-account limit
 * holds across every supervisor sharing the database, atomically. Keyed by
 * account_key, so an account stored as an ObjectId in one document and as
 * its hex string in another is one account. The index on account_id that
 * came before it is dropped. */
static int index_slots(sup_store_t *self, char *err, size_t errlen)
{
    bson_t *cmd = BCON_NEW("createIndexes", BCON_UTF8("queues"), "indexes", "[",
                           "{", "key", "{", "account_key", BCON_INT32(1),
                           "account_slot", BCON_INT32(1), "}", "name",
                           BCON_UTF8("running_account_key_slot"), "unique",
                           BCON_BOOL(true), "partialFilterExpression", "{",
                           "status", BCON_UTF8("processing"), "}", "}", "]");
    bson_t *drop = BCON_NEW("dropIndexes", BCON_UTF8("queues"), "index",
                            BCON_UTF8("running_account_slot"));
    bson_error_t error;
    bson_t reply;
    int rc = SUP_STORE_OK;
    backfill_account_keys(self);
    /* Absent already (code 27) is the usual answer. */
    mongoc_collection_write_command_with_opts(self->queues, drop, NULL, NULL,
                                              NULL);
    bson_destroy(drop);
    if (!mongoc_collection_write_command_with_opts(self->queues, cmd, NULL,
                                                   &reply, &error)) {
        snprintf(err, errlen,
                 "cannot create index 'running_account_key_slot': %s",
                 error.message);
        rc = SUP_STORE_EFAIL;
    }
    bson_destroy(&reply);
    bson_destroy(cmd);
    return rc;
}

/* An index on coll named name over keys (taken), holding only the
 * documents partial (taken) matches. */
static int index_partial(mongoc_collection_t *coll, const char *name,
                         bson_t *keys, bson_t *partial, char *err,
                         size_t errlen)
{
    return index_make(coll, name, keys, partial, 0, err, errlen);
}

/* The indexes of the loop's recurring queries (docs/scaling.md), each
 * query at every poll or renewal, none of which may scan its collection
 * (a `queues` of millions of finished imports; mongod's notablescan
 * refuses them). New names of the service's own; the CRM's indexes are
 * left as they are. Partial where the query names the filter's field, so
 * the index holds only the documents still to be acted on. */
static int index_recurring(sup_store_t *self, char *err, size_t errlen)
{
    /* sup_store_repair_log, every poll: ends whose import log is not
     * written yet; the mark is unset once it is. */
    if (index_partial(self->queues, "log_pending_finished",
                      BCON_NEW("finished_at", BCON_INT32(1)),
                      BCON_NEW("log_pending", BCON_BOOL(true)), err, errlen) ||
        /* sup_admin_recorded, every renewal: operators' requests on the
         * imports this supervisor holds. */
        index_partial(
            self->queues, "claimed_by_control",
            BCON_NEW("claimed_by", BCON_INT32(1), "status", BCON_INT32(1)),
            BCON_NEW("control", "{", "$exists", BCON_BOOL(true), "}"), err,
            errlen) ||
        /* sup_followup_claim, every poll: ends whose follow-ups are not
         * done (followups_done_at missing is the index's null key). */
        index_one(self->imports, "followups_pending",
                  BCON_NEW("followups_done_at", BCON_INT32(1), "finished_at",
                           BCON_INT32(1)),
                  0, err, errlen))
        return SUP_STORE_EFAIL;
    return SUP_STORE_OK;
}

int sup_store_ensure_indexes(sup_store_t *self, char *err, size_t errlen)
{
    if (index_recurring(self, err, errlen) ||
        index_one(self->errors, "queue_line",
                  BCON_NEW("queue_id", BCON_INT32(1), "line", BCON_INT32(1)), 1,
                  err, errlen) ||
        index_one(self->imports, "queue_id",
                  BCON_NEW("queue_id", BCON_INT32(1)), 1, err, errlen) ||
        /* the success file's records, read in line order (sup_succfile)
         * and replaced by their first line (wrk_lines, which makes it
         * too: a worker may start first) */
        index_one(
            self->lines, "queue_first_line",
            BCON_NEW("queue_id", BCON_INT32(1), "first_line", BCON_INT32(1)), 1,
            err, errlen) ||
        index_slots(self, err, errlen) ||
        index_one(self->queues, "source_status_created",
                  BCON_NEW("source", BCON_INT32(1), "status", BCON_INT32(1),
                           "created_at", BCON_INT32(1)),
                  0, err, errlen) ||
        /* The claim (sup_store_claim.c): one account's oldest claimable
         * import, so the claim reads that account's imports in its sort's
         * order, not the whole backlog of every account at every claim;
         * and the look (sup_store_look.c): the accounts with pending
         * imports, one entry each, by a DISTINCT_SCAN of this index
         * (source_status_created serves the look at the running imports,
         * which names no account). */
        index_one(self->queues, "source_account_status_created",
                  BCON_NEW("source", BCON_INT32(1), "account_id", BCON_INT32(1),
                           "status", BCON_INT32(1), "created_at", BCON_INT32(1),
                           "_id", BCON_INT32(1)),
                  0, err, errlen))
        return SUP_STORE_EFAIL;
    /* A source is deleted only when no queue document that is not final
     * names it (sup_cleanup): that count by key and status. */
    if (index_one(self->queues, "csv_key_status",
                  BCON_NEW("csv.key", BCON_INT32(1), "status", BCON_INT32(1)),
                  0, err, errlen))
        return SUP_STORE_EFAIL;
    return SUP_STORE_OK;
}

/* ---- the indexes an import relies on (dip_deal_index.h) ------------- */

int sup_store_ensure_deal_indexes(sup_store_t *self, char *err, size_t errlen)
{
    return dip_deal_index_ensure(self->deals, self->stages, err, errlen) < 0
               ? SUP_STORE_EFAIL
               : SUP_STORE_OK;
}

int64_t sup_store_epoch(const bson_t *queue_doc)
{
    bson_iter_t it;
    int64_t n;
    /* an integer only (a fraction would be truncated into an epoch that
     * no fence matches) */
    if (queue_doc && bson_iter_init_find(&it, queue_doc, "claims") &&
        dip_bson_iter_int(&it, &n) == 0)
        return n;
    return -1;
}

bson_t *sup_store_owned(sup_store_t *self, const bson_value_t *qid,
                        int64_t epoch)
{
    bson_t *filter = bson_new();
    dip_claim_append_fence(filter, qid, "claimed_by", self->owner, epoch);
    return filter;
}

int sup_store_update_take(sup_store_t *self, bson_t *filter, bson_t *update,
                          const char *what, char *err, size_t errlen)
{
    bson_error_t error;
    return sup_store_update_take_e(self, filter, update, what, &error, err,
                                   errlen);
}

int sup_store_update_take_e(sup_store_t *self, bson_t *filter, bson_t *update,
                            const char *what, bson_error_t *error, char *err,
                            size_t errlen)
{
    bson_t reply;
    int rc = SUP_STORE_OK;
    if (!mongoc_collection_update_one(self->queues, filter, update, NULL,
                                      &reply, error)) {
        snprintf(err, errlen, "%s failed: %s", what, error->message);
        rc = SUP_STORE_EFAIL;
    } else if (dip_claim_lost(&reply)) {
        snprintf(err, errlen,
                 "the import is no longer claimed by this supervisor");
        rc = SUP_STORE_ELOST;
    }
    bson_destroy(&reply);
    bson_destroy(filter);
    bson_destroy(update);
    return rc;
}
