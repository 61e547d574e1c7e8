/*
 * sup_store_claim: claiming one import, fairly across accounts, in one of
 * its account's slots (a unique index on the running imports' account and
 * slot makes the per-account limit hold across supervisors).
 */
#include "sup_store_priv.h"
#include "dip_bson.h"
#include "dip_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The filter of imports that may be claimed now: pending and unlocked, or
 * processing under a lease that ran out (its supervisor is gone). */
static void append_claimable(bson_t *q, int64_t now,
                             const sup_store_held_t *held, size_t nheld)
{
    bson_t or, b, sub;
    BSON_APPEND_UTF8(q, "source", "deals");
    /* Never an import this supervisor runs, whatever its lease says. */
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

/* An account with imports waiting, and how many it runs now. */
typedef struct candidate {
    bson_value_t account; /* as stored: ObjectId, string, or null */
    int64_t oldest_ms;
    int64_t running;
    int64_t served_ms; /* 0: never */
    int64_t waiting;   /* its claimable imports */
} candidate_t;

static int same_account(const bson_value_t *a, const bson_value_t *b)
{
    char ka[256], kb[256];
    sup_store_account_key(a, ka, sizeof(ka));
    sup_store_account_key(b, kb, sizeof(kb));
    if (ka[0] == '\0' || kb[0] == '\0')
        return a->value_type == b->value_type &&
               a->value_type == BSON_TYPE_NULL;
    return strcmp(ka, kb) == 0;
}

static int by_fairness(const void *x, const void *y)
{
    const candidate_t *a = x, *b = y;
    if (a->running != b->running)
        return a->running < b->running ? -1 : 1;
    if (a->served_ms != b->served_ms)
        return a->served_ms < b->served_ms ? -1 : 1;
    return (a->oldest_ms > b->oldest_ms) - (a->oldest_ms < b->oldest_ms);
}

/* Runs a $group pipeline on queues; calls fn for each result document. */
static int group(sup_store_t *self, bson_t *pipeline,
                 void (*fn)(void *arg, const bson_t *doc), void *arg, char *err,
                 size_t errlen)
{
    bson_t *opts = dip_mongo_read_opts(self->client, NULL);
    mongoc_cursor_t *c = mongoc_collection_aggregate(
        self->queues, MONGOC_QUERY_NONE, pipeline, opts, NULL);
    const bson_t *doc;
    bson_error_t error;
    int rc = 0;
    while (mongoc_cursor_next(c, &doc))
        fn(arg, doc);
    if (mongoc_cursor_error(c, &error)) {
        snprintf(err, errlen, "looking for pending imports failed: %s",
                 error.message);
        rc = SUP_STORE_EFAIL;
    }
    mongoc_cursor_destroy(c);
    bson_destroy(opts);
    return rc;
}

typedef struct {
    candidate_t *list;
    size_t n, cap;
} candidates_t;

static void add_candidate(void *arg, const bson_t *doc)
{
    candidates_t *cs = arg;
    bson_iter_t it;
    candidate_t *c;
    int64_t oldest = INT64_MAX, waiting = 1;
    if (bson_iter_init_find(&it, doc, "n") &&
        (BSON_ITER_HOLDS_INT32(&it) || BSON_ITER_HOLDS_INT64(&it)))
        waiting = bson_iter_as_int64(&it);
    if (bson_iter_init_find(&it, doc, "oldest") &&
        BSON_ITER_HOLDS_DATE_TIME(&it))
        oldest = bson_iter_date_time(&it);
    /* One account stored two ways is one candidate. */
    if (bson_iter_init_find(&it, doc, "_id"))
        for (size_t i = 0; i < cs->n; i++)
            if (same_account(&cs->list[i].account, bson_iter_value(&it))) {
                if (oldest < cs->list[i].oldest_ms)
                    cs->list[i].oldest_ms = oldest;
                cs->list[i].waiting += waiting;
                return;
            }
    if (cs->n == cs->cap)
        return;
    c = &cs->list[cs->n];
    memset(c, 0, sizeof(*c));
    if (bson_iter_init_find(&it, doc, "_id"))
        bson_value_copy(bson_iter_value(&it), &c->account);
    else
        c->account.value_type = BSON_TYPE_NULL;
    c->oldest_ms = oldest;
    c->waiting = waiting;
    cs->n++;
}

static void add_running(void *arg, const bson_t *doc)
{
    candidates_t *cs = arg;
    bson_iter_t it;
    const bson_value_t *acc;
    int64_t n;
    if (!bson_iter_init_find(&it, doc, "_id"))
        return;
    acc = bson_iter_value(&it);
    n = bson_iter_init_find(&it, doc, "n") ? bson_iter_as_int64(&it) : 0;
    for (size_t i = 0; i < cs->n; i++)
        if (same_account(&cs->list[i].account, acc))
            cs->list[i].running += n;
}

/* Tries to claim the oldest claimable import of one account in one of its
 * `limit` slots. 1 claimed, 0 nothing (none left, or every slot taken),
 * negative on error. */
static int claim_in_account(sup_store_t *self, const bson_value_t *account,
                            const sup_store_held_t *held, size_t nheld,
                            long limit, bson_t *out, char *err, size_t errlen)
{
    int64_t now = dip_bson_now_ms();
    bson_t query = BSON_INITIALIZER, sort = BSON_INITIALIZER;
    char key[256];
    int rc = 0;
    append_claimable(&query, now, held, nheld);
    sup_store_account_key(account, key, sizeof(key));
    if (strlen(key) == 24 && bson_oid_is_valid(key, 24)) {
        /* Both ways the CRM stores an account. */
        bson_oid_t oid;
        bson_t acc, in;
        bson_oid_init_from_string(&oid, key);
        BSON_APPEND_DOCUMENT_BEGIN(&query, "account_id", &acc);
        BSON_APPEND_ARRAY_BEGIN(&acc, "$in", &in);
        BSON_APPEND_OID(&in, "0", &oid);
        BSON_APPEND_UTF8(&in, "1", key);
        bson_append_array_end(&acc, &in);
        bson_append_document_end(&query, &acc);
    } else {
        BSON_APPEND_VALUE(&query, "account_id", account);
    }
    BSON_APPEND_INT32(&sort, "created_at", 1);
    BSON_APPEND_INT32(&sort, "_id", 1);
    for (long slot = 0; slot < limit && rc == 0; slot++) {
        mongoc_find_and_modify_opts_t *opts = mongoc_find_and_modify_opts_new();
        bson_t *update;
        bson_t reply;
        bson_error_t error;
        bson_t tmp;
        bson_t set;
        update = bson_new();
        BSON_APPEND_DOCUMENT_BEGIN(update, "$set", &set);
        BSON_APPEND_UTF8(&set, "status", "processing");
        BSON_APPEND_BOOL(&set, "in_progress", true);
        dip_claim_append_take(&set, "lease_expires_at", now,
                              self->lease_s * 1000, "claimed_by", self->owner);
        BSON_APPEND_UTF8(&set, "account_key", key);
        BSON_APPEND_INT32(&set, "account_slot", (int32_t)slot);
        BSON_APPEND_DATE_TIME(&set, "claimed_at", now);
        bson_append_document_end(update, &set);
        BSON_APPEND_DOCUMENT_BEGIN(update, "$inc", &set);
        BSON_APPEND_INT32(&set, "claims", 1);
        bson_append_document_end(update, &set);
        mongoc_find_and_modify_opts_set_sort(opts, &sort);
        mongoc_find_and_modify_opts_set_update(opts, update);
        mongoc_find_and_modify_opts_set_flags(
            opts, MONGOC_FIND_AND_MODIFY_RETURN_NEW);
        mongoc_find_and_modify_opts_set_max_time_ms(
            opts, (uint32_t)dip_mongo_max_time_ms(self->client));
        if (!mongoc_collection_find_and_modify_with_opts(
                self->queues, &query, opts, &reply, &error)) {
            /* 11000: this slot of the account is held by a running
             * import (the unique index on processing imports' slots):
             * try the next one. */
            if (error.code != 11000) {
                snprintf(err, errlen, "claiming an import failed: %s",
                         error.message);
                rc = SUP_STORE_EFAIL;
            }
        } else if (dip_bson_reply_value(&reply, &tmp)) {
            bson_copy_to(&tmp, out);
            rc = 1;
        } else {
            rc = -100; /* nothing claimable left in this account */
        }
        bson_destroy(&reply);
        bson_destroy(update);
        mongoc_find_and_modify_opts_destroy(opts);
    }
    bson_destroy(&query);
    bson_destroy(&sort);
    return rc == -100 ? 0 : rc;
}

int sup_store_claim(sup_store_t *self, const bson_oid_t *skip, size_t nskip,
                    const sup_store_held_t *held, size_t nheld,
                    const sup_store_served_t *served, size_t nserved,
                    long per_account, bson_t *out, char *err, size_t errlen)
{
    int64_t now = dip_bson_now_ms();
    candidate_t list[256];
    candidates_t cs = {list, 0, 256};
    bson_t *pipeline;
    bson_t match = BSON_INITIALIZER;
    int rc = 0;

    /* 1. Accounts with claimable imports, and the age of their oldest. */
    append_claimable(&match, now, held, nheld);
    if (nskip > 0) {
        bson_t acc, nin;
        char k[24], hex[25];
        BSON_APPEND_DOCUMENT_BEGIN(&match, "account_id", &acc);
        BSON_APPEND_ARRAY_BEGIN(&acc, "$nin", &nin);
        for (size_t i = 0; i < nskip; i++) {
            snprintf(k, sizeof(k), "%zu", 2 * i);
            BSON_APPEND_OID(&nin, k, &skip[i]);
            snprintf(k, sizeof(k), "%zu", 2 * i + 1);
            bson_oid_to_string(&skip[i], hex);
            BSON_APPEND_UTF8(&nin, k, hex);
        }
        bson_append_array_end(&acc, &nin);
        bson_append_document_end(&match, &acc);
    }
    pipeline = BCON_NEW(
        "pipeline", "[", "{", "$match", BCON_DOCUMENT(&match), "}", "{",
        "$group", "{", "_id", BCON_UTF8("$account_id"), "oldest", "{", "$min",
        BCON_UTF8("$created_at"), "}", "n", "{", "$sum", BCON_INT32(1), "}",
        "}", "}", "{", "$sort", "{", "oldest", BCON_INT32(1), "}", "}", "{",
        "$limit", BCON_INT32(256), "}", "]");
    self->claim_left = 0;
    rc = group(self, pipeline, add_candidate, &cs, err, errlen);
    bson_destroy(pipeline);
    bson_destroy(&match);
    if (rc < 0 || cs.n == 0)
        goto cleanup;
    for (size_t i = 0; i < cs.n; i++)
        self->claim_left += cs.list[i].waiting;

    /* 2. How many each runs now, on any supervisor: only to order several
     * accounts and pass over those at their limit. One account alone is
     * tried at once; its slots' unique index refuses it when it is full. */
    if (cs.n == 1)
        goto claim;
    pipeline =
        BCON_NEW("pipeline", "[", "{", "$match", "{", "source",
                 BCON_UTF8("deals"), "status", BCON_UTF8("processing"),
                 "lease_expires_at", "{", "$gte", BCON_DATE_TIME(now), "}", "}",
                 "}", "{", "$group", "{", "_id", BCON_UTF8("$account_id"), "n",
                 "{", "$sum", BCON_INT32(1), "}", "}", "}", "]");
    rc = group(self, pipeline, add_running, &cs, err, errlen);
    bson_destroy(pipeline);
    if (rc < 0)
        goto cleanup;

    /* 3. Fair order: the account running the fewest imports first, then
     * the one served longest ago, then the one waiting longest. An account
     * with one import never waits behind another account's fifty. */
    for (size_t i = 0; i < cs.n; i++) {
        bson_oid_t oid;
        const bson_value_t *v = &cs.list[i].account;
        if (v->value_type == BSON_TYPE_OID)
            bson_oid_copy(&v->value.v_oid, &oid);
        else if (v->value_type == BSON_TYPE_UTF8 && v->value.v_utf8.len == 24 &&
                 bson_oid_is_valid(v->value.v_utf8.str, 24))
            bson_oid_init_from_string(&oid, v->value.v_utf8.str);
        else
            continue;
        for (size_t j = 0; j < nserved; j++)
            if (bson_oid_equal(&served[j].account, &oid))
                cs.list[i].served_ms = served[j].at_ms;
    }
    qsort(cs.list, cs.n, sizeof(candidate_t), by_fairness);
claim:
    for (size_t i = 0; i < cs.n && rc == 0; i++) {
        if (cs.list[i].running >= per_account)
            continue;
        rc = claim_in_account(self, &cs.list[i].account, held, nheld,
                              per_account, out, err, errlen);
    }
cleanup:
    for (size_t i = 0; i < cs.n; i++)
        bson_value_destroy(&cs.list[i].account);
    if (rc == 1 && self->claim_left > 0)
        self->claim_left--;
    else if (rc <= 0)
        self->claim_left = 0;
    return rc;
}

int64_t sup_store_claim_left(const sup_store_t *self)
{
    return self->claim_left;
}
