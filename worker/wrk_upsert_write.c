/*
 * wrk_upsert_write: the writes of a batch planned by wrk_upsert, the change
 * records first and then the deals, each one unordered write; the outcome
 * of each row from the replies; and the updates that matched no deal
 * because it was deleted or moved after the lookup, or changed by another
 * writer (marked for wrk_upsert_retry).
 */
#include "wrk_upsert_priv.h"
#include "dip_bson.h"
#include "dip_mongo_io.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is_own_dup(const bson_t *we)
{
    bson_iter_t f, k;
    if (dip_bson_get_int(we, "code", 0) != 11000)
        return 0;
    if (bson_iter_init_find(&f, we, "keyPattern") &&
        BSON_ITER_HOLDS_DOCUMENT(&f) && bson_iter_recurse(&f, &k) &&
        bson_iter_next(&k))
        return strcmp(bson_iter_key(&k), "_id") == 0 ||
               (bson_iter_recurse(&f, &k) && bson_iter_find(&k, "import.line"));
    return 0;
}

/* The write errors of reply, each: its index, as a document. */
static void each_write_error(const bson_t *reply,
                             void (*fn)(void *, int64_t, const bson_t *),
                             void *arg)
{
    bson_iter_t it, we;
    if (!bson_iter_init_find(&it, reply, "writeErrors") ||
        !BSON_ITER_HOLDS_ARRAY(&it) || !bson_iter_recurse(&it, &we))
        return;
    while (bson_iter_next(&we)) {
        const uint8_t *data;
        uint32_t len;
        bson_t e;
        if (!BSON_ITER_HOLDS_DOCUMENT(&we))
            continue;
        bson_iter_document(&we, &len, &data);
        if (bson_init_static(&e, data, len))
            fn(arg, dip_bson_get_int(&e, "index", -1), &e);
    }
}

/* The row the write error at idx is about; 0 when idx is none of the
 * write's (a reply that does not match what was sent). */
static int error_row(const batch_ctx_t *b, int64_t idx, size_t *row)
{
    if (idx < 0 || (size_t)idx >= b->nops)
        return 0;
    *row = b->rows[idx];
    return 1;
}

/* Refuses row: what, then the database's own words (errmsg of e). */
static void refuse_for(batch_ctx_t *b, size_t row, const char *what,
                       const bson_t *e)
{
    char msg[512];
    const char *m = dip_bson_get_str(e, "errmsg");
    snprintf(msg, sizeof(msg), "%s: %s", what, m ? m : "unknown error");
    wrk_upsert_refuse(b->messages, row, b->outcome, msg);
}

static void on_change_error(void *arg, int64_t idx, const bson_t *e)
{
    batch_ctx_t *b = arg;
    size_t row;
    if (!error_row(b, idx, &row))
        return;
    /* a record of this line: an earlier run's, or this one's met again
     * after a lost reply; replaced next (wrk_upsert_write_changes) */
    if (dip_bson_get_int(e, "code", 0) == 11000) {
        b->plan[row].met = 1;
        return;
    }
    refuse_for(b, row,
               "the previous values of this deal could not be recorded, so "
               "it was not changed",
               e);
}

/* Whether the write error e is a duplicate on the match index, exactly
 * (account_id, match field) as wrk_match_index_ok requires it: a deal of
 * this account with the row's key that another writer (an import of the
 * same account, the CRM) created after this batch's lookup. Another
 * unique index naming the field (the CRM's over external_id alone, which
 * another account's deal trips) is no such deal: importing again would
 * meet it again, and the line carries the database's words. */
static int dup_of_key(const batch_ctx_t *b, const bson_t *e)
{
    bson_iter_t f, k;
    int n = 0;
    if (dip_bson_get_int(e, "code", 0) != 11000 || b->m == NULL ||
        b->m->key == WRK_MATCH_KEY_DEAL_ID ||
        !bson_iter_init_find(&f, e, "keyPattern") ||
        !BSON_ITER_HOLDS_DOCUMENT(&f) || !bson_iter_recurse(&f, &k))
        return 0;
    while (bson_iter_next(&k)) {
        if (n > 1 ||
            strcmp(bson_iter_key(&k), n == 0 ? "account_id" : b->m->field))
            return 0;
        n++;
    }
    return n == 2;
}

static void on_deal_error(void *arg, int64_t idx, const bson_t *e)
{
    batch_ctx_t *b = arg;
    size_t row;
    if (!error_row(b, idx, &row))
        return;
    if (b->plan[row].insert && is_own_dup(e)) {
        /* the deal of an earlier run of the line: its id is not this
         * insert's */
        b->outcome[row] = WRK_UPSERT_ALREADY;
        memset(&b->plan[row].deal_id, 0, sizeof(b->plan[row].deal_id));
        return;
    }
    if (b->plan[row].insert && dup_of_key(b, e)) {
        char msg[256];
        snprintf(msg, sizeof(msg),
                 "a deal with this %s was created by someone else while the "
                 "import ran, so this line was not applied: import it again "
                 "to update that deal",
                 b->m->target);
        wrk_upsert_refuse(b->messages, row, b->outcome, msg);
        return;
    }
    refuse_for(b, row, "the database refused this deal", e);
}

static int wc_failed(const bson_t *reply)
{
    bson_iter_t it;
    return bson_iter_init_find(&it, reply, "writeConcernErrors") &&
           BSON_ITER_HOLDS_ARRAY(&it);
}

/* Judges one unordered write that was sent (one round trip): 1 when it is
 * settled, done or refused for good line by line (each write error goes to
 * on_error); 0 when the whole write is to be sent again, error then saying
 * why (a write concern that failed is such an error). Destroys reply. */
static int write_settled(wrk_upsert_t *self, bson_t *reply, bool ok,
                         bson_error_t *error,
                         void (*on_error)(void *, int64_t, const bson_t *),
                         batch_ctx_t *b)
{
    bson_iter_t it;
    int nerr = bson_iter_init_find(&it, reply, "writeErrors");
    int wc = wc_failed(reply);
    /* a statement interrupted (step-down, time limit) is not refused: the
     * write goes again (dip_mongo_write_errors_transient) */
    int interrupted = dip_mongo_write_errors_transient(reply);
    int settled =
        !wc && !interrupted && (ok || (nerr && !dip_mongo_is_transient(error)));
    wrk_db_count_round_trip(self->db);
    if (settled)
        each_write_error(reply, on_error, b);
    bson_destroy(reply);
    if (wc) {
        error->domain = MONGOC_ERROR_WRITE_CONCERN;
        error->code = 64;
        bson_strncpy(error->message, "write concern failed",
                     sizeof(error->message));
    } else if (interrupted) {
        dip_mongo_set_interrupted(error, "the write");
    }
    return settled;
}

/* Change records that replace others of their lines, in one unordered
 * bulk (docs: the rows' records, in b->rows order). A later attempt's
 * (own set) each replace the run's own record of its line (the previous
 * values read again), found by the created_at the run wrote (b->mine). A
 * first attempt's whose insert met a record of its line (own clear)
 * replace it whoever wrote it: an earlier run killed between its records
 * and its updates (had its update applied, the deal would hold this
 * line's write and this run would not update it), whose record names the
 * deal as that run read it, while this update replaces the deal as it is
 * now, perhaps changed by another writer since; or this run's own, sent
 * again after a lost reply, replaced by itself. */
static int replace_changes(wrk_upsert_t *self, batch_ctx_t *b,
                           const bson_t **docs, int own, char *err,
                           size_t errlen)
{
    int rc = WRK_DB_OK;
    bson_t *opts = BCON_NEW("validate", BCON_BOOL(false));
    for (int attempt = 1; b->nops > 0; attempt++) {
        bson_t bopts = BSON_INITIALIZER, reply;
        bson_error_t error;
        mongoc_bulk_operation_t *bulk;
        bool ok = true;
        BSON_APPEND_BOOL(&bopts, "ordered", false);
        bulk = mongoc_collection_create_bulk_operation_with_opts(self->changes,
                                                                 &bopts);
        bson_destroy(&bopts);
        for (size_t k = 0; ok && k < b->nops; k++) {
            bson_t sel = BSON_INITIALIZER;
            BSON_APPEND_OID(&sel, "queue_id", self->qid);
            BSON_APPEND_INT64(&sel, "line", b->lines[b->rows[k]]);
            if (own)
                BSON_APPEND_DATE_TIME(&sel, "created_at", b->mine[b->rows[k]]);
            ok = mongoc_bulk_operation_replace_one_with_opts(
                bulk, &sel, docs[k], opts, &error);
            bson_destroy(&sel);
        }
        if (!ok) {
            mongoc_bulk_operation_destroy(bulk);
            snprintf(err, errlen, "recording the previous values: %s",
                     error.message);
            rc = WRK_DB_EFAIL;
            break;
        }
        ok = mongoc_bulk_operation_execute(bulk, &reply, &error) != 0;
        mongoc_bulk_operation_destroy(bulk);
        if (write_settled(self, &reply, ok, &error, on_change_error, b))
            break;
        if (!wrk_db_retry(self->db, &error, attempt,
                          "recording the previous values again", &rc, err,
                          errlen))
            break;
    }
    bson_destroy(opts);
    return rc;
}

/* The change records, unordered; one that meets a record of its line (an
 * earlier run's, or its own sent again) replaces it. In a later attempt
 * (b->round), the run's own are replaced. */
int wrk_upsert_write_changes(wrk_upsert_t *self, batch_ctx_t *b, char *err,
                             size_t errlen)
{
    const bson_t **docs = calloc(b->n ? b->n : 1, sizeof(*docs));
    bson_t opts = BSON_INITIALIZER;
    int rc = WRK_DB_OK;
    b->nops = 0;
    for (size_t i = 0; docs && i < b->n; i++) {
        if (b->plan[i].change == NULL)
            continue;
        /* The previous values of a deal near 16 MiB and the new ones
         * together may pass what MongoDB stores in one document: that
         * row's error (its update is not sent), never the batch's, which
         * the driver would refuse whole, again at every retry. */
        if (b->plan[i].change->len > WRK_UPSERT_CHANGE_MAX) {
            char msg[256];
            snprintf(msg, sizeof(msg),
                     "the previous values of this deal are too large to "
                     "record (%u bytes with the new ones, over the %d a "
                     "document may hold), so it was not changed",
                     (unsigned)b->plan[i].change->len, WRK_UPSERT_CHANGE_MAX);
            wrk_upsert_refuse(b->messages, i, b->outcome, msg);
            continue;
        }
        if (b->round > 0 && b->mine[i] == 0)
            continue;
        b->rows[b->nops] = i;
        docs[b->nops++] = b->plan[i].change;
    }
    if (docs == NULL) {
        snprintf(err, errlen, "out of memory");
        return WRK_DB_EFAIL;
    }
    if (b->round > 0) {
        rc = replace_changes(self, b, docs, 1, err, errlen);
        free(docs);
        return rc;
    }
    BSON_APPEND_BOOL(&opts, "ordered", false);
    /* the worker built every key of them itself: the server checks what
     * it stores, the driver need not check it first */
    BSON_APPEND_BOOL(&opts, "validate", false);
    for (int attempt = 1; b->nops > 0; attempt++) {
        bson_t reply;
        bson_error_t error;
        bool ok = mongoc_collection_insert_many(self->changes, docs, b->nops,
                                                &opts, &reply, &error);
        if (write_settled(self, &reply, ok, &error, on_change_error, b))
            break;
        if (!wrk_db_retry(self->db, &error, attempt,
                          "recording the previous values", &rc, err, errlen))
            break;
    }
    bson_destroy(&opts);
    /* the records that met one of their line replace it */
    b->nops = 0;
    for (size_t i = 0; rc == WRK_DB_OK && i < b->n; i++)
        if (b->plan[i].met && b->plan[i].change &&
            b->outcome[i] != WRK_UPSERT_REFUSED) {
            b->plan[i].met = 0;
            b->rows[b->nops] = i;
            docs[b->nops++] = b->plan[i].change;
        }
    if (rc == WRK_DB_OK && b->nops > 0)
        rc = replace_changes(self, b, docs, 0, err, errlen);
    free(docs);
    return rc;
}

/* After a settled write: how many of the updates that stand (not refused)
 * matched no deal. nMatched counts a deal matched whether or not the
 * update changed it, so an update sent again (a retry) still counts. An
 * unknown count (-1) is taken as all matched: nothing is refused on a
 * guess. */
static void count_unmatched(batch_ctx_t *b, int64_t matched)
{
    int64_t sent = 0;
    for (size_t i = 0; i < b->n; i++)
        if (b->plan[i].update && b->outcome[i] != WRK_UPSERT_REFUSED &&
            !(b->only_gone && !b->plan[i].gone))
            sent++;
    b->unmatched = matched >= 0 && matched < sent ? sent - matched : 0;
}

/* The inserts and updates in one unordered bulk write. A retry sends them
 * all again: inserts meet their own duplicates, updates set the same
 * values. The worker built every key of them itself (the mapper refuses
 * '$' and dotted targets, the updates' operators are its own): the driver
 * does not validate them, the server does. */
int wrk_upsert_write_deals(wrk_upsert_t *self, batch_ctx_t *b, char *err,
                           size_t errlen)
{
    int rc = WRK_DB_OK;
    bson_t *nocheck = BCON_NEW("validate", BCON_BOOL(false));
    b->unmatched = 0;
    for (int attempt = 1;; attempt++) {
        bson_t opts = BSON_INITIALIZER, reply;
        bson_error_t error;
        mongoc_bulk_operation_t *bulk;
        int64_t matched;
        bool ok;
        BSON_APPEND_BOOL(&opts, "ordered", false);
        bulk = mongoc_collection_create_bulk_operation_with_opts(self->deals,
                                                                 &opts);
        bson_destroy(&opts);
        b->nops = 0;
        for (size_t i = 0; i < b->n; i++) {
            plan_t *p = &b->plan[i];
            if (b->outcome[i] == WRK_UPSERT_REFUSED ||
                (b->only_gone && !p->gone))
                continue;
            if (p->insert) {
                ok = mongoc_bulk_operation_insert_with_opts(bulk, p->insert,
                                                            nocheck, &error);
            } else if (p->update && p->where) {
                /* the deal's ids as the lookup found them stored */
                ok = mongoc_bulk_operation_update_one_with_opts(
                    bulk, p->where, p->update, nocheck, &error);
            } else if (p->update) {
                bson_t sel = BSON_INITIALIZER;
                BSON_APPEND_OID(&sel, "_id", &p->deal_id);
                /* either form of each id */
                dip_bson_append_id_match(&sel, "account_id", self->account);
                dip_bson_append_id_match(&sel, "pipeline_id", self->pipeline);
                if (p->cas)
                    bson_concat(&sel, p->cas);
                ok = mongoc_bulk_operation_update_one_with_opts(
                    bulk, &sel, p->update, nocheck, &error);
                bson_destroy(&sel);
            } else {
                continue;
            }
            if (!ok) {
                wrk_upsert_refuse(b->messages, i, b->outcome, error.message);
                continue;
            }
            b->rows[b->nops++] = i;
        }
        if (b->nops == 0) {
            mongoc_bulk_operation_destroy(bulk);
            break;
        }
        ok = mongoc_bulk_operation_execute(bulk, &reply, &error) != 0;
        mongoc_bulk_operation_destroy(bulk);
        matched = dip_bson_get_int(&reply, "nMatched", -1);
        if (write_settled(self, &reply, ok, &error, on_deal_error, b)) {
            count_unmatched(b, matched);
            break;
        }
        if (!wrk_db_retry(self->db, &error, attempt, "writing deals", &rc, err,
                          errlen))
            break;
    }
    bson_destroy(nocheck);
    return rc;
}

/* Whether the deal as found now still holds the account and pipeline its
 * update's filter names, in the same stored form: then the filter matched
 * it (it is here), else the update missed it although it is here (its ids
 * were stored in the other form since the lookup). */
static int same_where(const plan_t *p, const bson_t *deal)
{
    static const char *const keys[] = {"account_id", "pipeline_id"};
    if (p->where == NULL)
        return 1; /* both forms were named */
    for (int k = 0; k < 2; k++) {
        bson_iter_t a, b;
        if (!bson_iter_init_find(&a, p->where, keys[k]) ||
            !bson_iter_init_find(&b, deal, keys[k]) ||
            bson_iter_type(&a) != bson_iter_type(&b) ||
            !dip_bson_iter_equal(&a, &b))
            return 0;
    }
    return 1;
}

/* Whether deal's last_import is line's of this import: its update was
 * applied (by this attempt, or by an earlier send of the same bulk, which
 * a retry's compare-and-set then no longer matches). */
static int own_write(const wrk_upsert_t *self, const bson_t *deal, int64_t line)
{
    bson_oid_t q;
    return dip_bson_get_oid(deal, "last_import.queue_id", &q) == 0 &&
           bson_oid_equal(&q, self->qid) &&
           dip_bson_get_int(deal, "last_import.line", 0) == line;
}

/* Marks gone each standing update of b: 1 when its deal is no longer in
 * the account (deleted), 2 when it is in another pipeline (moved), 3 when
 * it is in the pipeline but its update's filter named its ids in the form
 * they had at the lookup, and they are stored in the other now, 4 when
 * its ids are as they were and the deal does not hold this line's write
 * (another writer changed a field it changes, or added a tag it adds);
 * 0 when it holds it. One find of their ids, bounded by maxTimeMS. */
static int find_gone(wrk_upsert_t *self, batch_ctx_t *b, char *err,
                     size_t errlen)
{
    bson_t filter = BSON_INITIALIZER, sub, ids, *opts;
    uint32_t nid = 0;
    int rc = WRK_DB_OK;
    BSON_APPEND_DOCUMENT_BEGIN(&filter, "_id", &sub);
    BSON_APPEND_ARRAY_BEGIN(&sub, "$in", &ids);
    for (size_t i = 0; i < b->n; i++) {
        char kb[16];
        const char *k;
        size_t kl;
        b->plan[i].gone = 0;
        if (!b->plan[i].update || b->outcome[i] == WRK_UPSERT_REFUSED)
            continue;
        b->plan[i].gone = 1;
        kl = bson_uint32_to_string(nid++, &k, kb, sizeof(kb));
        bson_append_oid(&ids, k, (int)kl, &b->plan[i].deal_id);
    }
    bson_append_array_end(&sub, &ids);
    bson_append_document_end(&filter, &sub);
    dip_bson_append_id_match(&filter, "account_id", self->account);
    opts =
        BCON_NEW("projection", "{", "account_id", BCON_INT32(1), "pipeline_id",
                 BCON_INT32(1), "last_import", BCON_INT32(1), "}", "maxTimeMS",
                 BCON_INT64((int64_t)wrk_db_max_time_ms(self->db)), "batchSize",
                 BCON_INT64((int64_t)nid + 1));
    for (int attempt = 1;; attempt++) {
        mongoc_cursor_t *c =
            mongoc_collection_find_with_opts(self->deals, &filter, opts, NULL);
        const bson_t *doc;
        bson_error_t error;
        while (mongoc_cursor_next(c, &doc)) {
            bson_oid_t id, pl;
            int here;
            if (dip_bson_get_oid(doc, "_id", &id) != 0)
                continue;
            here = dip_bson_get_oid(doc, "pipeline_id", &pl) == 0 &&
                   bson_oid_equal(&pl, self->pipeline);
            for (size_t i = 0; i < b->n; i++)
                if (b->plan[i].gone && bson_oid_equal(&id, &b->plan[i].deal_id))
                    b->plan[i].gone = !here                               ? 2
                                      : !same_where(&b->plan[i], doc)     ? 3
                                      : own_write(self, doc, b->lines[i]) ? 0
                                                                          : 4;
        }
        wrk_db_count_round_trip(self->db);
        if (!mongoc_cursor_error(c, &error)) {
            mongoc_cursor_destroy(c);
            break;
        }
        mongoc_cursor_destroy(c);
        if (!wrk_db_retry(self->db, &error, attempt,
                          "finding the deals an update missed", &rc, err,
                          errlen))
            break;
    }
    bson_destroy(opts);
    bson_destroy(&filter);
    return rc;
}

enum { DROP_GONE, DROP_REFUSED, DROP_MARKED_ANY, DROP_MARKED_OWN };

/* Whether row i's before-image is to go: its deal is gone (DROP_GONE),
 * its update was refused (DROP_REFUSED: the gone ones were dropped
 * already), or it is marked (DROP_MARKED_*). */
static int to_drop(const batch_ctx_t *b, size_t i, int why)
{
    const plan_t *p = &b->plan[i];
    if (why == DROP_MARKED_ANY)
        return p->drop == DROP_ANY;
    if (why == DROP_MARKED_OWN)
        return p->drop == DROP_OWN;
    if (p->change == NULL)
        return 0;
    return why == DROP_REFUSED ? !p->gone && b->outcome[i] == WRK_UPSERT_REFUSED
                               : p->gone == 1 || p->gone == 2;
}

/* The time a record of row i to drop was written by this run: its change
 * record's, or mine[i] for a row with none now. */
static int64_t own_at(const batch_ctx_t *b, size_t i)
{
    return b->plan[i].change ? wrk_upsert_change_at(b->plan[i].change)
                             : (b->mine ? b->mine[i] : 0);
}

/* Appends {field: {$in: [of(b, i) for each row i to drop]}} and returns
 * how many. */
static uint32_t append_in(bson_t *filter, const char *field,
                          const batch_ctx_t *b, int why, int dates)
{
    bson_t sub, arr;
    uint32_t n = 0;
    BSON_APPEND_DOCUMENT_BEGIN(filter, field, &sub);
    BSON_APPEND_ARRAY_BEGIN(&sub, "$in", &arr);
    for (size_t i = 0; i < b->n; i++) {
        char kb[16];
        const char *k;
        size_t kl;
        if (!to_drop(b, i, why))
            continue;
        kl = bson_uint32_to_string(n++, &k, kb, sizeof(kb));
        if (dates)
            bson_append_date_time(&arr, k, (int)kl, own_at(b, i));
        else
            bson_append_int64(&arr, k, (int)kl, b->lines[i]);
    }
    bson_append_array_end(&sub, &arr);
    bson_append_document_end(filter, &sub);
    return n;
}

/* Removes the before-images of rows whose deals were not changed (gone,
 * or, with refused, refused by the database), so that a revert finds
 * nothing to put back and no conflict. */
static int drop_changes(wrk_upsert_t *self, batch_ctx_t *b, int why, char *err,
                        size_t errlen)
{
    bson_t filter = BSON_INITIALIZER;
    uint32_t nl;
    int rc = WRK_DB_OK;
    BSON_APPEND_OID(&filter, "queue_id", self->qid);
    nl = append_in(&filter, "line", b, why, 0);
    /* this run's records only: an earlier run's has another time */
    if (why == DROP_MARKED_OWN)
        (void)append_in(&filter, "created_at", b, why, 1);
    for (int attempt = 1; nl > 0; attempt++) {
        bson_error_t error;
        bool ok = mongoc_collection_delete_many(self->changes, &filter, NULL,
                                                NULL, &error);
        wrk_db_count_round_trip(self->db);
        if (ok || !wrk_db_retry(self->db, &error, attempt,
                                "removing the previous values of deals gone",
                                &rc, err, errlen))
            break;
    }
    bson_destroy(&filter);
    return rc;
}

/* Updates that matched no deal (b->unmatched): the deal was deleted, or
 * moved out of the pipeline, between the lookup and the update, so the
 * line changed nothing and is not counted updated; or it is still in the
 * pipeline, changed by another writer or its ids stored in the other
 * form: marked retry, its update not sent here. Deleted: a line error
 * in update mode; in upsert mode the key now finds no deal, which the
 * contract's table answers with a new deal, so the row is inserted as if
 * the lookup had found none (name and stage then required as on create).
 * Moved: a line error in both, as a deal found in another pipeline is. */
int wrk_upsert_write_gone(wrk_upsert_t *self, batch_ctx_t *b,
                          bson_t *const *docs, char *err, size_t errlen)
{
    const char *skip = self->m->key == WRK_MATCH_KEY_DEAL_ID ? "deal_id" : NULL;
    int rc = find_gone(self, b, err, errlen), recreate = 0;
    if (rc == WRK_DB_OK)
        rc = drop_changes(self, b, DROP_GONE, err, errlen);
    if (rc != WRK_DB_OK)
        return rc;
    for (size_t i = 0; i < b->n; i++) {
        plan_t *p = &b->plan[i];
        if (!p->gone)
            continue;
        if (p->gone == 3 || p->gone == 4) {
            /* in the pipeline, unchanged by its update: its ids are stored
             * in the other form since the lookup, or another writer changed
             * it; looked up again, its before-image rewritten, sent again
             * (wrk_upsert_batch) */
            bson_destroy(p->update);
            p->update = NULL;
            p->retry = 1;
            continue;
        }
        bson_destroy(p->update);
        p->update = NULL;
        if (p->gone == 2)
            wrk_upsert_refuse(
                b->messages, i, b->outcome,
                "the deal was moved to another pipeline while the import "
                "ran");
        else if (self->m->mode != WRK_MATCH_MODE_UPSERT)
            wrk_upsert_refuse(b->messages, i, b->outcome,
                              "the deal was deleted while the import ran");
        else {
            b->outcome[i] = WRK_UPSERT_ADDED;
            wrk_upsert_create(self, docs[i], skip, p, b->outcome, b->messages,
                              i);
            wrk_upsert_plan_id(p, p->insert);
            recreate += p->insert != NULL;
        }
    }
    if (recreate > 0) {
        b->only_gone = 1;
        rc = wrk_upsert_write_deals(self, b, err, errlen);
        b->only_gone = 0;
    }
    return rc;
}

int wrk_upsert_drop_refused(wrk_upsert_t *self, batch_ctx_t *b, char *err,
                            size_t errlen)
{
    return drop_changes(self, b, DROP_REFUSED, err, errlen);
}

int wrk_upsert_drop_marked(wrk_upsert_t *self, batch_ctx_t *b, char *err,
                           size_t errlen)
{
    int rc = drop_changes(self, b, DROP_MARKED_ANY, err, errlen);
    if (rc == WRK_DB_OK)
        rc = drop_changes(self, b, DROP_MARKED_OWN, err, errlen);
    return rc;
}
