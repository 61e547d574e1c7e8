/*
 * sup_store_look: the accounts that have claimable imports, in the claim's
 * fair order, and the look kept from one claim to the next (sup_store_priv.h
 * says when it is taken again). A look reads one index entry per account
 * with pending imports and the running imports, never the backlog: it
 * knows which accounts wait, not how much.
 */
#include "sup_store_priv.h"
#include "dip_bson.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An account with imports waiting, as the last look saw it. */
typedef struct candidate {
    bson_value_t account; /* as stored: ObjectId, string, or null */
    bson_oid_t served_id; /* sup_store_served_account's identity */
    int64_t oldest_ms;
    /* Its running imports on any supervisor but this one's held ones, at
     * the look. */
    int64_t others;
    int64_t taken; /* claims in it from this look */
    int dry;       /* a claim in it found nothing: not tried again */
} candidate_t;

struct sup_store_look {
    candidate_t list[SUP_STORE_LOOK_MAX];
    size_t n;
    size_t rows; /* the pending look's documents */
    int stale;   /* a claim from it came back empty: the next one looks */
    /* The pending look's last document's oldest and _id (last_oldest of
     * type EOD when it had none); the page the next look starts after,
     * when from is set (sup_store_look_next_page). */
    bson_value_t last_oldest, last_id, from_oldest, from_id;
    int has_last, from;
};

/* v, or null when unset (a group whose created_at is missing). */
static void value_or_null(bson_value_t *dst, const bson_value_t *v)
{
    if (v->value_type == BSON_TYPE_EOD)
        dst->value_type = BSON_TYPE_NULL;
    else
        bson_value_copy(v, dst);
}

static void drop_value(bson_value_t *v)
{
    bson_value_destroy(v);
    memset(v, 0, sizeof(*v));
}

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
    const sup_store_turn_t *a = x, *b = y;
    if (a->running != b->running)
        return a->running < b->running ? -1 : 1;
    if (a->taken != b->taken)
        return a->taken < b->taken ? -1 : 1;
    if (a->served_ms != b->served_ms)
        return a->served_ms < b->served_ms ? -1 : 1;
    return (a->oldest_ms > b->oldest_ms) - (a->oldest_ms < b->oldest_ms);
}

/* Runs a $group pipeline on queues; calls fn for each result document. */
static int group(sup_store_t *self, bson_t *pipeline,
                 void (*fn)(void *arg, const bson_t *doc), void *arg, char *err,
                 size_t errlen)
{
    /* allowDiskUse: on MongoDB 5.0 a $group or $sort over 100 MB fails
     * without it, and a few hundred pending documents with huge account
     * ids would fail every claim for every account (6.0 spills by
     * default). */
    bson_t *disk = BCON_NEW("allowDiskUse", BCON_BOOL(true));
    bson_t *opts = dip_mongo_read_opts(self->client, disk);
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
    bson_destroy(disk);
    return rc;
}

/* The candidate of doc's account (_id), added when new and there is room
 * (NULL when not); its oldest is doc's when older. */
static candidate_t *candidate_of(sup_store_look_t *look, const bson_t *doc)
{
    bson_iter_t it;
    candidate_t *c;
    int64_t oldest = INT64_MAX;
    if (bson_iter_init_find(&it, doc, "oldest") &&
        BSON_ITER_HOLDS_DATE_TIME(&it))
        oldest = bson_iter_date_time(&it);
    /* One account stored two ways is one candidate. */
    if (bson_iter_init_find(&it, doc, "_id"))
        for (size_t i = 0; i < look->n; i++)
            if (same_account(&look->list[i].account, bson_iter_value(&it))) {
                if (oldest < look->list[i].oldest_ms)
                    look->list[i].oldest_ms = oldest;
                return &look->list[i];
            }
    if (look->n == SUP_STORE_LOOK_MAX)
        return NULL;
    c = &look->list[look->n];
    memset(c, 0, sizeof(*c));
    if (bson_iter_init_find(&it, doc, "_id"))
        bson_value_copy(bson_iter_value(&it), &c->account);
    else
        c->account.value_type = BSON_TYPE_NULL;
    sup_store_served_account(&c->account, &c->served_id);
    c->oldest_ms = oldest;
    look->n++;
    return c;
}

static void add_pending(void *arg, const bson_t *doc)
{
    sup_store_look_t *look = arg;
    bson_iter_t it;
    look->rows++;
    (void)candidate_of(look, doc);
    drop_value(&look->last_oldest);
    drop_value(&look->last_id);
    look->has_last = bson_iter_init_find(&it, doc, "_id");
    if (look->has_last)
        bson_value_copy(bson_iter_value(&it), &look->last_id);
    if (bson_iter_init_find(&it, doc, "oldest"))
        bson_value_copy(bson_iter_value(&it), &look->last_oldest);
}

/* An account's running imports elsewhere (`live`: under a lease that holds)
 * and those whose lease ran out (`lapsed`: claimable, the account's turn
 * even with nothing pending). */
static void add_running(void *arg, const bson_t *doc)
{
    sup_store_look_t *look = arg;
    bson_iter_t it;
    int64_t live, lapsed;
    candidate_t *c = NULL;
    if (!bson_iter_init_find(&it, doc, "live") ||
        dip_bson_iter_int(&it, &live) != 0)
        live = 0;
    if (!bson_iter_init_find(&it, doc, "lapsed") ||
        dip_bson_iter_int(&it, &lapsed) != 0)
        lapsed = 0;
    if (lapsed > 0)
        c = candidate_of(look, doc);
    else if (bson_iter_init_find(&it, doc, "_id"))
        for (size_t i = 0; i < look->n && c == NULL; i++)
            if (same_account(&look->list[i].account, bson_iter_value(&it)))
                c = &look->list[i];
    if (c != NULL)
        c->others += live;
}

/* The imports in held that run here under the account c. */
static int64_t own_running(const candidate_t *c, const sup_store_held_t *held,
                           size_t nheld)
{
    int64_t n = 0;
    for (size_t i = 0; i < nheld; i++)
        n += held[i].runs && same_account(&held[i].account, &c->account);
    return n;
}

/* Whether the account as stored is one of skip's (as ObjectId or as its
 * hex string: the look's $nin says the same). */
static int skipped(const bson_value_t *account, const bson_oid_t *skip,
                   size_t nskip)
{
    char hex[25];
    for (size_t i = 0; i < nskip; i++) {
        if (account->value_type == BSON_TYPE_OID &&
            bson_oid_equal(&account->value.v_oid, &skip[i]))
            return 1;
        if (account->value_type == BSON_TYPE_UTF8) {
            bson_oid_to_string(&skip[i], hex);
            if (account->value.v_utf8.len == 24 &&
                memcmp(account->value.v_utf8.str, hex, 24) == 0)
                return 1;
        }
    }
    return 0;
}

void sup_store_look_forget(sup_store_t *self)
{
    sup_store_look_t *look = self->look;
    if (look == NULL)
        return;
    for (size_t i = 0; i < look->n; i++)
        bson_value_destroy(&look->list[i].account);
    look->n = 0;
    look->rows = 0;
    look->stale = 0;
    drop_value(&look->last_oldest);
    drop_value(&look->last_id);
    look->has_last = 0;
}

void sup_store_look_first_page(sup_store_t *self)
{
    sup_store_look_t *look = self->look;
    if (look == NULL)
        return;
    drop_value(&look->from_oldest);
    drop_value(&look->from_id);
    look->from = 0;
}

int sup_store_look_next_page(sup_store_t *self)
{
    sup_store_look_t *look = self->look;
    sup_store_look_first_page(self);
    if (look == NULL || look->rows < SUP_STORE_LOOK_MAX || !look->has_last)
        return 0;
    value_or_null(&look->from_oldest, &look->last_oldest);
    bson_value_copy(&look->last_id, &look->from_id);
    look->from = 1;
    return 1;
}

void sup_store_look_destroy(sup_store_t *self)
{
    sup_store_look_forget(self);
    sup_store_look_first_page(self);
    free(self->look);
    self->look = NULL;
}

int sup_store_look_kept(const sup_store_t *self)
{
    if (self->look == NULL || self->look->stale)
        return 0;
    for (size_t i = 0; i < self->look->n; i++)
        if (!self->look->list[i].dry)
            return 1;
    return 0;
}

/* {field: {$nin: [each of skip as ObjectId and as its hex text]}} */
static void append_not_accounts(bson_t *q, const char *field,
                                const bson_oid_t *skip, size_t nskip)
{
    bson_t acc, nin;
    char k[24], hex[25];
    BSON_APPEND_DOCUMENT_BEGIN(q, field, &acc);
    BSON_APPEND_ARRAY_BEGIN(&acc, "$nin", &nin);
    for (size_t i = 0; i < nskip; i++) {
        snprintf(k, sizeof(k), "%zu", 2 * i);
        BSON_APPEND_OID(&nin, k, &skip[i]);
        snprintf(k, sizeof(k), "%zu", 2 * i + 1);
        bson_oid_to_string(&skip[i], hex);
        BSON_APPEND_UTF8(&nin, k, hex);
    }
    bson_append_array_end(&acc, &nin);
    bson_append_document_end(q, &acc);
}

/* {$expr: {$or: [{$gt: ["$oldest", oldest]}, {$and: [{$eq: ["$oldest",
 * oldest]}, {$gt: ["$_id", id]}]}]}}: a group after (oldest, id). */
static void append_after(bson_t *q, const bson_value_t *oldest,
                         const bson_value_t *id)
{
    bson_t expr, any, gt, both, eq, idgt, a, b, c, d;
    BSON_APPEND_DOCUMENT_BEGIN(q, "$expr", &expr);
    BSON_APPEND_ARRAY_BEGIN(&expr, "$or", &any);
    BSON_APPEND_DOCUMENT_BEGIN(&any, "0", &a);
    BSON_APPEND_ARRAY_BEGIN(&a, "$gt", &gt);
    BSON_APPEND_UTF8(&gt, "0", "$oldest");
    BSON_APPEND_VALUE(&gt, "1", oldest);
    bson_append_array_end(&a, &gt);
    bson_append_document_end(&any, &a);
    BSON_APPEND_DOCUMENT_BEGIN(&any, "1", &b);
    BSON_APPEND_ARRAY_BEGIN(&b, "$and", &both);
    BSON_APPEND_DOCUMENT_BEGIN(&both, "0", &c);
    BSON_APPEND_ARRAY_BEGIN(&c, "$eq", &eq);
    BSON_APPEND_UTF8(&eq, "0", "$oldest");
    BSON_APPEND_VALUE(&eq, "1", oldest);
    bson_append_array_end(&c, &eq);
    bson_append_document_end(&both, &c);
    BSON_APPEND_DOCUMENT_BEGIN(&both, "1", &d);
    BSON_APPEND_ARRAY_BEGIN(&d, "$gt", &idgt);
    BSON_APPEND_UTF8(&idgt, "0", "$_id");
    BSON_APPEND_VALUE(&idgt, "1", id);
    bson_append_array_end(&d, &idgt);
    bson_append_document_end(&both, &d);
    bson_append_array_end(&b, &both);
    bson_append_document_end(&any, &b);
    bson_append_array_end(&expr, &any);
    bson_append_document_end(q, &expr);
}

/* 1. The accounts with pending imports, each with its oldest, the longest
 * waiting first: mongod's DISTINCT_SCAN of source_account_status_created
 * (source, account_id, status, created_at, _id), which seeks from one
 * account to the next and reads one entry of each, covered. It applies
 * only as written: the $match names index fields alone, with exact bounds
 * (source and status equalities, the accounts passed over as a $nin), the
 * $sort is the index's order, and the $group takes $first of an index
 * field; any other predicate (in_progress, the held imports' _id) would
 * leave a filter for a fetch, and mongod would read every pending import
 * again. The claim's findAndModify applies the whole claimable filter. */
static bson_t *pending_pipeline(const bson_oid_t *skip, size_t nskip,
                                const sup_store_look_t *page)
{
    bson_t match = BSON_INITIALIZER, after = BSON_INITIALIZER;
    bson_t *pipeline;
    BSON_APPEND_UTF8(&match, "source", "deals");
    BSON_APPEND_UTF8(&match, "status", "pending");
    if (nskip > 0)
        append_not_accounts(&match, "account_id", skip, nskip);
    /* The first in created_at's order rather than $min (which no distinct
     * scan serves): the same in MongoDB, both following the BSON order
     * across types, so a created_at that is not a date is simply not the
     * oldest date (candidate_of), and never fails the group. */
    /* The page: the groups after from's in the order below, compared as
     * aggregation compares (the BSON order across types, as $sort's),
     * after the $group: the distinct scan is the same, only fewer groups
     * pass. A group whose created_at is missing, and so its oldest, sorts
     * first; it is not passed over by a page from null. */
    if (page != NULL && page->from) /* else {}: every group */
        append_after(&after, &page->from_oldest, &page->from_id);
    pipeline = BCON_NEW(
        "pipeline", "[", "{", "$match", BCON_DOCUMENT(&match), "}", "{",
        "$sort", "{", "source", BCON_INT32(1), "account_id", BCON_INT32(1),
        "status", BCON_INT32(1), "created_at", BCON_INT32(1), "}", "}", "{",
        "$group", "{", "_id", BCON_UTF8("$account_id"), "oldest", "{", "$first",
        BCON_UTF8("$created_at"), "}", "}", "}", "{", "$match",
        BCON_DOCUMENT(&after), "}", "{", "$sort", "{", "oldest", BCON_INT32(1),
        "_id", BCON_INT32(1), "}", "}", "{", "$limit",
        BCON_INT32(SUP_STORE_LOOK_MAX), "}", "]");
    bson_destroy(&match);
    bson_destroy(&after);
    return pipeline;
}

/* 2. The running imports (status processing) but held's, by account: how
 * many run under a lease that holds at now (to order the accounts and pass
 * over those at their limit), and how many under one that ran out (their
 * supervisor is gone: claimable, the orphan claim of claim_in_account), with
 * the oldest of those. On source_status_created; the running imports are
 * few (the accounts' slots, and the orphans until they are taken over).
 * Expired is as the claim's filter has it (dip_claim_append_expired: not a
 * date at or past now), with the BSON order of aggregation expressions. */
static bson_t *running_pipeline(int64_t now, const sup_store_held_t *held,
                                size_t nheld)
{
    bson_t match = BSON_INITIALIZER, id, nin;
    bson_t *pipeline;
    BSON_APPEND_UTF8(&match, "source", "deals");
    BSON_APPEND_UTF8(&match, "status", "processing");
    if (nheld > 0) {
        BSON_APPEND_DOCUMENT_BEGIN(&match, "_id", &id);
        BSON_APPEND_ARRAY_BEGIN(&id, "$nin", &nin);
        for (size_t i = 0; i < nheld; i++) {
            char k[24];
            snprintf(k, sizeof(k), "%zu", i);
            BSON_APPEND_VALUE(&nin, k, &held[i].id);
        }
        bson_append_array_end(&id, &nin);
        bson_append_document_end(&match, &id);
    }
    pipeline = BCON_NEW(
        "pipeline", "[", "{", "$match", BCON_DOCUMENT(&match), "}", "{",
        "$group", "{", "_id", BCON_UTF8("$account_id"), "live", "{", "$sum",
        "{", "$cond", "[", "{", "$gte", "[", BCON_UTF8("$lease_expires_at"),
        BCON_DATE_TIME(now), "]", "}", BCON_INT32(1), BCON_INT32(0), "]", "}",
        "}", "lapsed", "{", "$sum", "{", "$cond", "[", "{", "$gte", "[",
        BCON_UTF8("$lease_expires_at"), BCON_DATE_TIME(now), "]", "}",
        BCON_INT32(0), BCON_INT32(1), "]", "}", "}", "oldest", "{", "$min", "{",
        "$cond", "[", "{", "$gte", "[", BCON_UTF8("$lease_expires_at"),
        BCON_DATE_TIME(now), "]", "}", BCON_NULL, BCON_UTF8("$created_at"), "]",
        "}", "}", "}", "}", "]");
    bson_destroy(&match);
    return pipeline;
}

/* A new look: the two aggregates above. */
static int look_again(sup_store_t *self, const bson_oid_t *skip, size_t nskip,
                      const sup_store_held_t *held, size_t nheld, char *err,
                      size_t errlen)
{
    sup_store_look_t *look = self->look;
    bson_t *pipeline;
    int rc;

    sup_store_look_forget(self);
    self->looks++;
    pipeline = pending_pipeline(skip, nskip, look);
    rc = group(self, pipeline, add_pending, look, err, errlen);
    bson_destroy(pipeline);
    if (rc == 0) {
        pipeline = running_pipeline(dip_bson_now_ms(), held, nheld);
        rc = group(self, pipeline, add_running, look, err, errlen);
        bson_destroy(pipeline);
    }
    if (rc < 0)
        sup_store_look_forget(self);
    return rc;
}

int sup_store_look_order(sup_store_t *self, int again, const bson_oid_t *skip,
                         size_t nskip, const sup_store_held_t *held,
                         size_t nheld, const sup_store_served_t *served,
                         size_t nserved, long per_account,
                         sup_store_turn_t *turns, char *err, size_t errlen)
{
    sup_store_look_t *look;
    size_t n = 0;
    if (self->look == NULL) {
        self->look = calloc(1, sizeof(*self->look));
        if (self->look == NULL) {
            snprintf(err, errlen, "looking for pending imports: out of memory");
            return SUP_STORE_EFAIL;
        }
    }
    look = self->look;
    if ((again || !sup_store_look_kept(self)) &&
        look_again(self, skip, nskip, held, nheld, err, errlen) < 0)
        return SUP_STORE_EFAIL;
    for (size_t i = 0; i < look->n; i++) {
        const candidate_t *c = &look->list[i];
        sup_store_turn_t *t = &turns[n];
        if (c->dry || skipped(&c->account, skip, nskip))
            continue;
        t->account = &c->account;
        t->at = i;
        t->oldest_ms = c->oldest_ms;
        t->taken = c->taken;
        t->running = c->others + own_running(c, held, nheld);
        if (t->running >= per_account)
            continue; /* at its limit, on some supervisor */
        t->served_ms = 0;
        for (size_t j = 0; j < nserved; j++)
            if (bson_oid_equal(&served[j].account, &c->served_id))
                t->served_ms = served[j].at_ms;
        n++;
    }
    /* 3. Fair order: the account running the fewest imports first, then
     * the one this look claimed in least, then the one served longest ago,
     * then the one waiting longest. An account with one import never waits
     * behind another account's fifty, and none of this needs to know how
     * many each has waiting. */
    qsort(turns, n, sizeof(*turns), by_fairness);
    return (int)n;
}

void sup_store_look_claimed(sup_store_t *self, const sup_store_turn_t *turn,
                            int claimed)
{
    sup_store_look_t *look = self->look;
    if (look == NULL || turn->at >= look->n)
        return;
    if (claimed)
        look->list[turn->at].taken++;
    else {
        /* Nothing of it left, or every slot held: the look was wrong. */
        look->list[turn->at].dry = 1;
        look->stale = 1;
    }
}

int64_t sup_store_look_waiting(const sup_store_t *self)
{
    int64_t n = 0;
    if (self->look == NULL)
        return 0;
    for (size_t i = 0; i < self->look->n; i++)
        n += !self->look->list[i].dry;
    /* Cut at its $limit: accounts past it wait too, unseen; one more claim
     * looks again and finds them (before, a freed slot waited for the next
     * poll once the look's own were claimed). */
    if (self->look->rows >= SUP_STORE_LOOK_MAX)
        n++;
    return n;
}
