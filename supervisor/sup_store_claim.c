/*
 * sup_store_claim: claiming one import, fairly across accounts, in one of
 * its account's slots (a unique index on the running imports' account and
 * slot makes the per-account limit hold across supervisors).
 */
#include "sup_store_priv.h"
#include "dip_bson.h"
#include "dip_log.h"
#include "dip_mongo_io.h"
#include "dip_text.h"
#include "sup_claim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Never an import this supervisor runs (or set aside), whatever its lease
 * says. */
static void append_not_held(bson_t *q, const sup_store_held_t *held,
                            size_t nheld)
{
    if (nheld > 0) {
        bson_t id, nin;
        BSON_APPEND_DOCUMENT_BEGIN(q, "_id", &id);
        BSON_APPEND_ARRAY_BEGIN(&id, "$nin", &nin);
        for (size_t i = 0; i < nheld; i++) {
            char k[24];
            snprintf(k, sizeof(k), "%zu", i);
            BSON_APPEND_VALUE(&nin, k, &held[i].id);
        }
        bson_append_array_end(&id, &nin);
        bson_append_document_end(q, &id);
    }
}

void sup_store_append_claimable(bson_t *q, int64_t now,
                                const sup_store_held_t *held, size_t nheld)
{
    bson_t or, b, sub;
    BSON_APPEND_UTF8(q, "source", "deals");
    append_not_held(q, held, nheld);
    BSON_APPEND_ARRAY_BEGIN(q, "$or", & or);
    BSON_APPEND_DOCUMENT_BEGIN(& or, "0", &b);
    BSON_APPEND_UTF8(&b, "status", "pending");
    BSON_APPEND_DOCUMENT_BEGIN(&b, "in_progress", &sub);
    BSON_APPEND_BOOL(&sub, "$ne", true);
    bson_append_document_end(&b, &sub);
    bson_append_document_end(& or, &b);
    BSON_APPEND_DOCUMENT_BEGIN(& or, "1", &b);
    BSON_APPEND_UTF8(&b, "status", "processing");
    dip_claim_append_expired(&b, "lease_expires_at", now);
    bson_append_document_end(& or, &b);
    bson_append_array_end(q, & or);
}

/* One findAndModify of the claim on query in the account's slot: 1
 * claimed (out set), 0 nothing matched, TAKE_FAILED with *error set. */
#define TAKE_FAILED (-10)
static int take(sup_store_t *self, const bson_t *query, const bson_t *sort,
                int64_t now, const char *key, long slot, bson_t *out,
                bson_error_t *error)
{
    mongoc_find_and_modify_opts_t *opts = mongoc_find_and_modify_opts_new();
    bson_t *update = bson_new();
    bson_t reply, tmp, set;
    int rc;
    BSON_APPEND_DOCUMENT_BEGIN(update, "$set", &set);
    BSON_APPEND_UTF8(&set, "status", "processing");
    BSON_APPEND_BOOL(&set, "in_progress", true);
    dip_claim_append_take(&set, "lease_expires_at", now, self->lease_s * 1000,
                          "claimed_by", self->owner);
    BSON_APPEND_UTF8(&set, "account_key", key);
    BSON_APPEND_INT32(&set, "account_slot", (int32_t)slot);
    BSON_APPEND_DATE_TIME(&set, "claimed_at", now);
    bson_append_document_end(update, &set);
    BSON_APPEND_DOCUMENT_BEGIN(update, "$inc", &set);
    BSON_APPEND_INT32(&set, "claims", 1);
    bson_append_document_end(update, &set);
    mongoc_find_and_modify_opts_set_sort(opts, sort);
    mongoc_find_and_modify_opts_set_update(opts, update);
    if (!dip_mongo_take_new(self->client, self->queues, query, opts, &reply,
                            error))
        rc = TAKE_FAILED;
    else if (dip_bson_reply_value(&reply, &tmp)) {
        bson_copy_to(&tmp, out);
        rc = 1;
    } else
        rc = 0;
    bson_destroy(&reply);
    bson_destroy(update);
    mongoc_find_and_modify_opts_destroy(opts);
    return rc;
}

/* The _id of the first document of query in sort's order, copied into id:
 * 1 found, 0 none, -1 the database did not answer. */
static int first_of(sup_store_t *self, const bson_t *query, const bson_t *sort,
                    bson_value_t *id)
{
    bson_t *opts = BCON_NEW("projection", "{", "_id", BCON_INT32(1), "}",
                            "limit", BCON_INT64(1));
    bson_t *ropts;
    mongoc_cursor_t *c;
    const bson_t *doc;
    bson_iter_t it;
    int rc = 0;
    BSON_APPEND_DOCUMENT(opts, "sort", sort);
    ropts = dip_mongo_read_opts(self->client, opts);
    c = mongoc_collection_find_with_opts(self->queues, query, ropts, NULL);
    if (mongoc_cursor_next(c, &doc) && bson_iter_init_find(&it, doc, "_id")) {
        bson_value_copy(bson_iter_value(&it), id);
        rc = 1;
    } else if (mongoc_cursor_error(c, NULL))
        rc = -1;
    mongoc_cursor_destroy(c);
    bson_destroy(ropts);
    bson_destroy(opts);
    return rc;
}

/* The document id, which the claim could not take (first, the server's
 * error), ends alone: marked failed with a sentence by an update fenced
 * on its still being claimable, with its import log, when that update can
 * land; otherwise it is left as it is and reported set aside. out gets
 * {_id, marked, error}. */
/* Marks the document filter matches failed with msg, then writes its
 * import log; 1 marked, 0 not (logged). */
/* The failed mark of a claimed document that the one with its sentence
 * would take past 16 MiB: an update that only shrinks it (status
 * "processing" becomes "failed", the claim's slot and lease go), so that
 * the slot it holds is given back; the sentence is in the log and in the
 * import log. 1 marked. */
static int mark_failed_bare(sup_store_t *self, const bson_t *filter)
{
    bson_t *update = BCON_NEW(
        "$set", "{", "status", BCON_UTF8("failed"), "in_progress",
        BCON_BOOL(false), "}", "$unset", "{", "lease_expires_at", BCON_UTF8(""),
        "account_key", BCON_UTF8(""), "account_slot", BCON_UTF8(""), "}");
    bson_t reply;
    bson_error_t error;
    int marked = 0;
    if (mongoc_collection_update_one(self->queues, filter, update, NULL, &reply,
                                     &error))
        marked = dip_bson_get_int(&reply, "modifiedCount", 0) == 1;
    else
        dip_log(DIP_LOG_WARNING, NULL,
                "a claimed queue document cannot be marked failed even "
                "bare: %s",
                error.message);
    bson_destroy(&reply);
    bson_destroy(update);
    return marked;
}

static int mark_failed(sup_store_t *self, const bson_value_t *id,
                       const bson_t *filter, const char *msg, int claimed)
{
    int64_t now = dip_bson_now_ms();
    char err[512];
    bson_t set;
    bson_t *update = bson_new();
    bson_t reply;
    bson_error_t error;
    int marked = 0;
    BSON_APPEND_DOCUMENT_BEGIN(update, "$set", &set);
    BSON_APPEND_UTF8(&set, "status", "failed");
    BSON_APPEND_BOOL(&set, "in_progress", false);
    BSON_APPEND_UTF8(&set, "error", msg);
    BSON_APPEND_DATE_TIME(&set, "finished_at", now);
    bson_append_document_end(update, &set);
    BSON_APPEND_DOCUMENT_BEGIN(update, "$unset", &set);
    BSON_APPEND_UTF8(&set, "lease_expires_at", "");
    bson_append_document_end(update, &set);
    if (mongoc_collection_update_one(self->queues, filter, update, NULL, &reply,
                                     &error)) {
        marked = dip_bson_get_int(&reply, "modifiedCount", 0) == 1;
    } else if (claimed && sup_claim_error_rule(error.domain, error.code) ==
                              SUP_CLAIM_ERR_DOCUMENT) {
        /* A claimed one holds its account's slot: it must give it back. */
        marked = mark_failed_bare(self, filter);
        dip_log(DIP_LOG_WARNING, NULL,
                "a claimed queue document has no room for the failed mark's "
                "sentence (%s); %s: %s",
                error.message,
                marked ? "marked failed without it" : "not marked either", msg);
    } else {
        dip_log(DIP_LOG_WARNING, NULL,
                "a queue document the claim could not take cannot be "
                "marked failed either: %s",
                error.message);
    }
    bson_destroy(&reply);
    if (marked) {
        /* Its import log, through the one writer of ends (epoch -1: the
         * status is already set); the document without its mappings,
         * which the log does not need and which may be most of it. */
        bson_t *q = bson_new(), *o;
        mongoc_cursor_t *c;
        const bson_t *doc;
        sup_store_result_t r = {.status = "failed", .error = msg};
        BSON_APPEND_VALUE(q, "_id", id);
        bson_t *proj =
            BCON_NEW("projection", "{", "mappings", BCON_INT32(0), "}");
        o = dip_mongo_read_opts(self->client, proj);
        bson_destroy(proj);
        c = mongoc_collection_find_with_opts(self->queues, q, o, NULL);
        if (mongoc_cursor_next(c, &doc) &&
            sup_store_finish(self, doc, -1, &r, err, sizeof(err)) !=
                SUP_STORE_OK)
            dip_log(DIP_LOG_WARNING, NULL,
                    "an unclaimable queue document is marked failed; its "
                    "import log is not written: %s",
                    err);
        mongoc_cursor_destroy(c);
        bson_destroy(o);
        bson_destroy(q);
    }
    bson_destroy(update);
    return marked;
}

static void refuse(sup_store_t *self, const bson_value_t *id,
                   const bson_error_t *first, bson_t *out)
{
    char msg[600], why[400];
    bson_t filter = BSON_INITIALIZER;
    int marked;
    dip_text_format(why, sizeof(why), NULL, "%s", first->message);
    dip_text_format(msg, sizeof(msg), NULL,
                    "the queue document cannot be claimed: the database "
                    "refused the claim's update (code %u: %s); correct or "
                    "delete the document and queue the import again",
                    (unsigned)first->code, why);
    BSON_APPEND_VALUE(&filter, "_id", id);
    sup_store_append_claimable(&filter, dip_bson_now_ms(), NULL, 0);
    marked = mark_failed(self, id, &filter, msg, 0);
    BSON_APPEND_VALUE(out, "_id", id);
    BSON_APPEND_BOOL(out, "marked", marked);
    BSON_APPEND_UTF8(out, "error", msg);
    bson_destroy(&filter);
}

int sup_store_refuse_epoch(sup_store_t *self, const bson_t *claimed,
                           bson_t *out)
{
    bson_t filter = BSON_INITIALIZER;
    bson_iter_t id, claims;
    char msg[400];
    int marked = 0;
    bson_init(out);
    if (!bson_iter_init_find(&id, claimed, "_id"))
        return SUP_STORE_EFAIL;
    dip_text_format(
        msg, sizeof(msg), NULL,
        "the queue document's 'claims' is %s after the claim, not a whole "
        "number from 0 up: no later write could be fenced by it; correct or "
        "delete the document and queue the import again",
        bson_iter_init_find(&claims, claimed, "claims")
            ? dip_bson_type_name(bson_iter_type(&claims))
            : "missing");
    /* Fenced by our claim, and by the value the claim left. */
    BSON_APPEND_VALUE(&filter, "_id", bson_iter_value(&id));
    BSON_APPEND_UTF8(&filter, "claimed_by", self->owner);
    if (bson_iter_init_find(&claims, claimed, "claims"))
        BSON_APPEND_VALUE(&filter, "claims", bson_iter_value(&claims));
    marked = mark_failed(self, bson_iter_value(&id), &filter, msg, 1);
    BSON_APPEND_VALUE(out, "_id", bson_iter_value(&id));
    BSON_APPEND_BOOL(out, "marked", marked);
    BSON_APPEND_UTF8(out, "error", msg);
    if (bson_iter_init_find(&claims, claimed, "account_id"))
        BSON_APPEND_VALUE(out, "account_id", bson_iter_value(&claims));
    bson_destroy(&filter);
    return SUP_STORE_EUNCLAIMABLE;
}

/* Claims the first import of query (in sort's order) in one of the
 * account's `limit` slots (its key), with the poison-document rule: 1
 * claimed, 0 every slot refused it (each held by a running import, on the
 * unique index of running slots), NOTHING_LEFT when query matches nothing,
 * SUP_STORE_EUNCLAIMABLE (out: sup_store_claim's), other negatives on a
 * database error. */
#define NOTHING_LEFT (-100)
static int claim_in_slots(sup_store_t *self, const bson_t *query,
                          const bson_t *sort, const char *key, long limit,
                          int64_t now, bson_t *out, char *err, size_t errlen)
{
    int rc = 0;
    for (long slot = 0; slot < limit && rc == 0; slot++) {
        bson_error_t error;
        bson_value_t id;
        bson_t one, and, sub;
        int t = take(self, query, sort, now, key, slot, out, &error);
        if (t == 1) {
            rc = 1;
            break;
        }
        if (t == 0) {
            rc = NOTHING_LEFT; /* nothing claimable left in this account */
            break;
        }
        switch (sup_claim_error_rule(error.domain, error.code)) {
        case SUP_CLAIM_ERR_RACE:
            continue; /* this slot is held (or the document taken): next */
        case SUP_CLAIM_ERR_DATABASE:
            snprintf(err, errlen, "claiming an import failed: %s",
                     error.message);
            rc = SUP_STORE_EFAIL;
            continue;
        case SUP_CLAIM_ERR_DOCUMENT:
            break;
        }
        /* The database refused the update for a reason of a document: find
         * which one, and take that one alone, so that the error is known to
         * be its own and not a healthy document's beside it. */
        t = first_of(self, query, sort, &id);
        if (t <= 0) {
            snprintf(err, errlen, "claiming an import failed: %s",
                     error.message);
            rc = t < 0 ? SUP_STORE_EFAIL : NOTHING_LEFT;
            break;
        }
        bson_init(&one);
        BSON_APPEND_ARRAY_BEGIN(&one, "$and", &and);
        BSON_APPEND_DOCUMENT(&and, "0", query);
        BSON_APPEND_DOCUMENT_BEGIN(&and, "1", &sub);
        BSON_APPEND_VALUE(&sub, "_id", &id);
        bson_append_document_end(&and, &sub);
        bson_append_array_end(&one, &and);
        t = take(self, &one, sort, now, key, slot, out, &error);
        bson_destroy(&one);
        if (t == 1)
            rc = 1;
        else if (t == 0)
            slot--; /* taken meanwhile by another supervisor: look again */
        else if (sup_claim_error_rule(error.domain, error.code) ==
                 SUP_CLAIM_ERR_DOCUMENT) {
            bson_init(out);
            refuse(self, &id, &error, out);
            rc = SUP_STORE_EUNCLAIMABLE;
        } else if (sup_claim_error_rule(error.domain, error.code) ==
                   SUP_CLAIM_ERR_DATABASE) {
            snprintf(err, errlen, "claiming an import failed: %s",
                     error.message);
            rc = SUP_STORE_EFAIL;
        }
        bson_value_destroy(&id);
    }
    return rc;
}

/* Tries to claim the oldest claimable import of one account in one of its
 * `limit` slots. 1 claimed, 0 nothing (none left, or every slot taken),
 * SUP_STORE_EUNCLAIMABLE (out: sup_store_claim's), other negatives on a
 * database error.
 *
 * When every slot refuses the oldest, what holds a slot may be an import
 * whose supervisor is gone: 'processing' under a lease that ran out, still
 * in the unique index. The oldest is not always it (a resumed import keeps
 * its created_at; the CRM may queue with an earlier one), and nothing else
 * would ever take it over: the account would wait for ever. A second look
 * takes over the account's orphans alone, lowest slot first, so that one
 * in a slot below the limit is tried in its own slot, which it does not
 * have to win from anyone; the older import runs once a slot is free. */
static int claim_in_account(sup_store_t *self, const bson_value_t *account,
                            const sup_store_held_t *held, size_t nheld,
                            long limit, bson_t *out, char *err, size_t errlen)
{
    int64_t now = dip_bson_now_ms();
    bson_t query = BSON_INITIALIZER, sort = BSON_INITIALIZER;
    char key[256];
    int rc;
    sup_store_append_claimable(&query, now, held, nheld);
    sup_store_account_key(account, key, sizeof(key));
    if (strlen(key) == 24 && bson_oid_is_valid(key, 24)) {
        /* Both ways the CRM stores an account, and the text as the look
         * found it stored: hex in capitals is the same account (the key
         * is lowercase), and a claim that matched only the lowercase text
         * left such a document pending for ever. */
        bson_oid_t oid;
        bson_t acc, in;
        bson_oid_init_from_string(&oid, key);
        BSON_APPEND_DOCUMENT_BEGIN(&query, "account_id", &acc);
        BSON_APPEND_ARRAY_BEGIN(&acc, "$in", &in);
        BSON_APPEND_OID(&in, "0", &oid);
        BSON_APPEND_UTF8(&in, "1", key);
        if (account->value_type == BSON_TYPE_UTF8 &&
            strcmp(account->value.v_utf8.str, key) != 0)
            BSON_APPEND_UTF8(&in, "2", account->value.v_utf8.str);
        bson_append_array_end(&acc, &in);
        bson_append_document_end(&query, &acc);
    } else {
        /* As a value, whatever its type: a regular expression stored as an
         * account_id would otherwise be a pattern matching other accounts'
         * (their imports claimed under this key, past their limit). */
        bson_t eq;
        BSON_APPEND_DOCUMENT_BEGIN(&query, "account_id", &eq);
        BSON_APPEND_VALUE(&eq, "$eq", account);
        bson_append_document_end(&query, &eq);
    }
    BSON_APPEND_INT32(&sort, "created_at", 1);
    BSON_APPEND_INT32(&sort, "_id", 1);
    rc = claim_in_slots(self, &query, &sort, key, limit, now, out, err, errlen);
    bson_destroy(&query);
    bson_destroy(&sort);
    if (rc == SUP_STORE_EUNCLAIMABLE)
        BSON_APPEND_VALUE(out, "account_id", account);
    if (rc != 0)
        return rc == NOTHING_LEFT ? 0 : rc;
    /* On running_account_key_slot (partial on status processing): every
     * claim sets account_key, the supervisor's start fills it in where an
     * older claim did not, and the index's order is the sort (one running
     * import per slot of an account). */
    now = dip_bson_now_ms(); /* after the first look's calls */
    bson_init(&query);
    bson_init(&sort);
    BSON_APPEND_UTF8(&query, "source", "deals");
    append_not_held(&query, held, nheld);
    BSON_APPEND_UTF8(&query, "status", "processing");
    dip_claim_append_expired(&query, "lease_expires_at", now);
    BSON_APPEND_UTF8(&query, "account_key", key);
    BSON_APPEND_INT32(&sort, "account_slot", 1);
    rc = claim_in_slots(self, &query, &sort, key, limit, now, out, err, errlen);
    bson_destroy(&query);
    bson_destroy(&sort);
    if (rc == SUP_STORE_EUNCLAIMABLE)
        BSON_APPEND_VALUE(out, "account_id", account);
    return rc == NOTHING_LEFT ? 0 : rc;
}

/* Tries the accounts of turns in their order until one claims (or ends a
 * document alone, or the database fails); sup_store_claim's returns. From
 * a kept look (kept set), the first account that comes back empty ends
 * the turns: the look was wrong, a new one decides (the kept look does not
 * know what each account has left, and an account claimed dry would
 * otherwise cost an empty findAndModify at each claim). */
static int claim_in_turns(sup_store_t *self, sup_store_turn_t *turns, int n,
                          int kept, const sup_store_held_t *held, size_t nheld,
                          long per_account, bson_t *out, char *err,
                          size_t errlen)
{
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        rc = claim_in_account(self, turns[i].account, held, nheld, per_account,
                              out, err, errlen);
        if (rc >= 0 || rc == SUP_STORE_EUNCLAIMABLE)
            sup_store_look_claimed(self, &turns[i], rc != 0);
        if (rc == 0 && kept)
            break;
    }
    return rc;
}

/* The looks one claim makes past a cut none of whose accounts claimed: at
 * most this many findAndModify per account of a look, each empty, before
 * it says nothing was claimed (the next claim goes on from there). */
#define PAGES_PER_CLAIM 4

int sup_store_claim(sup_store_t *self, const bson_oid_t *skip, size_t nskip,
                    const sup_store_held_t *held, size_t nheld,
                    const sup_store_served_t *served, size_t nserved,
                    long per_account, bson_t *out, char *err, size_t errlen)
{
    sup_store_turn_t turns[SUP_STORE_LOOK_MAX];
    int kept = sup_store_look_kept(self);
    int rc = sup_store_look_order(self, 0, skip, nskip, held, nheld, served,
                                  nserved, per_account, turns, err, errlen);
    if (rc > 0)
        rc = claim_in_turns(self, turns, rc, kept, held, nheld, per_account,
                            out, err, errlen);
    if (rc == 0 && kept) {
        /* Nothing of the kept look could be claimed: a new look decides
         * (sup_store_priv.h). */
        rc = sup_store_look_order(self, 1, skip, nskip, held, nheld, served,
                                  nserved, per_account, turns, err, errlen);
        if (rc > 0)
            rc = claim_in_turns(self, turns, rc, 0, held, nheld, per_account,
                                out, err, errlen);
    }
    /* A new look none of whose accounts claimed: the accounts past its
     * cut, a bounded number of pages in this claim; the next claim goes
     * on from the page this one reached (sup_store_priv.h). */
    for (int page = 1;
         rc == 0 && page < PAGES_PER_CLAIM && sup_store_look_next_page(self);
         page++) {
        rc = sup_store_look_order(self, 1, skip, nskip, held, nheld, served,
                                  nserved, per_account, turns, err, errlen);
        if (rc > 0)
            rc = claim_in_turns(self, turns, rc, 0, held, nheld, per_account,
                                out, err, errlen);
    }
    if (rc == 1)
        sup_store_look_first_page(self);
    if (rc < 0 && rc != SUP_STORE_EUNCLAIMABLE)
        sup_store_look_forget(self);
    self->claim_left = rc == 1 ? sup_store_look_waiting(self) : 0;
    return rc;
}

void sup_store_claim_forget(sup_store_t *self)
{
    sup_store_look_forget(self);
}

int64_t sup_store_claim_looks(const sup_store_t *self)
{
    return self->looks;
}

int64_t sup_store_claim_left(const sup_store_t *self)
{
    return self->claim_left;
}
