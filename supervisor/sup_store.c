/*
 * sup_store: the supervisor's MongoDB side: claiming, leases, progress and
 * error batches, and the final write of an import. Final counts are counted
 * from the database itself (deals and csv_import_errors of the import), so
 * csv_imports always agrees with what is stored, whatever crashes and
 * resumes happened on the way.
 */
#include "sup_store.h"
#include "dip_bson.h"
#include "dip_log.h"
#include "dip_mongo_io.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How many of the first errors csv_imports.logs keeps (all of them are in
 * csv_import_errors). */
#define LOGS_KEEP 100

struct sup_store {
    mongoc_client_t *client;
    mongoc_collection_t *queues, *deals, *imports, *errors;
    char owner[256];
    char *uri;
    long lease_s;
};

static void close_client(sup_store_t *self)
{
    mongoc_collection_destroy(self->queues);
    mongoc_collection_destroy(self->deals);
    mongoc_collection_destroy(self->imports);
    mongoc_collection_destroy(self->errors);
    /* No endSessions on the way out: with the database away it would block
     * for a socket timeout; the server expires the sessions itself. */
    dip_mongo_client_close(self->client);
    self->queues = self->deals = self->imports = self->errors = NULL;
    self->client = NULL;
}

/* A client whose calls are bounded by budget_ms (a lease, or less). */
static int open_client(sup_store_t *self, long budget_ms, char *err,
                       size_t errlen)
{
    const char *db = NULL;
    self->client = dip_mongo_client_new_bounded(
        self->uri, "dealimport-supervisor", budget_ms, &db, err, errlen);
    if (self->client == NULL)
        return SUP_STORE_EFAIL;
    self->queues = mongoc_client_get_collection(self->client, db, "queues");
    self->deals = mongoc_client_get_collection(self->client, db, "deals");
    self->imports =
        mongoc_client_get_collection(self->client, db, "csv_imports");
    self->errors =
        mongoc_client_get_collection(self->client, db, "csv_import_errors");
    return SUP_STORE_OK;
}

sup_store_t *sup_store_new(const dip_config_t *cfg, const char *owner,
                           char *err, size_t errlen)
{
    sup_store_t *self = calloc(1, sizeof(*self));
    if (self == NULL)
        return NULL;
    self->uri = strdup(cfg->mongodb_uri ? cfg->mongodb_uri : "");
    if (self->uri == NULL ||
        open_client(self, sup_store_budget_ms(cfg), err, errlen) < 0) {
        free(self->uri);
        free(self);
        return NULL;
    }
    snprintf(self->owner, sizeof(self->owner), "%s", owner);
    self->lease_s = cfg->lease_s;
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
    if (self->uri) {
        memset(self->uri, 0, strlen(self->uri)); /* may hold a password */
        free(self->uri);
    }
    free(self);
    *self_p = NULL;
}

static int index_one(mongoc_collection_t *coll, const char *name, bson_t *keys,
                     int unique, char *err, size_t errlen)
{
    bson_t *cmd;
    bson_error_t error;
    bson_t reply;
    int rc = SUP_STORE_OK;
    cmd = BCON_NEW("createIndexes", BCON_UTF8(mongoc_collection_get_name(coll)),
                   "indexes", "[", "{", "key", BCON_DOCUMENT(keys), "name",
                   BCON_UTF8(name), "unique", BCON_BOOL(unique), "}", "]");
    if (!mongoc_collection_write_command_with_opts(coll, cmd, NULL, &reply,
                                                   &error)) {
        snprintf(err, errlen, "cannot create index '%s': %s", name,
                 error.message);
        rc = SUP_STORE_EFAIL;
    }
    bson_destroy(&reply);
    bson_destroy(cmd);
    bson_destroy(keys);
    return rc;
}

/* The account as one key, whether the CRM stored it as an ObjectId or as
 * its 24-hex string: "hex" for both, the string itself for another string,
 * "" for anything else. */
static void account_key(const bson_value_t *v, char *out, size_t len)
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

/* Running imports claimed before account_key existed get theirs, so the
 * unique index on it can be built. */
static void backfill_account_keys(sup_store_t *self)
{
    bson_t *filter = BCON_NEW("status", BCON_UTF8("processing"), "account_key",
                              "{", "$exists", BCON_BOOL(false), "}");
    bson_t *opts = BCON_NEW("projection", "{", "account_id", BCON_INT32(1), "}",
                            "limit", BCON_INT64(10000));
    mongoc_cursor_t *c =
        mongoc_collection_find_with_opts(self->queues, filter, opts, NULL);
    const bson_t *doc;
    while (mongoc_cursor_next(c, &doc)) {
        bson_iter_t it;
        bson_value_t null_value = {.value_type = BSON_TYPE_NULL};
        const bson_value_t *acc = &null_value;
        char key[256];
        bson_t *f, *u;
        if (bson_iter_init_find(&it, doc, "account_id"))
            acc = bson_iter_value(&it);
        account_key(acc, key, sizeof(key));
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

int sup_store_ensure_indexes(sup_store_t *self, char *err, size_t errlen)
{
    if (index_one(self->errors, "queue_line",
                  BCON_NEW("queue_id", BCON_INT32(1), "line", BCON_INT32(1)), 1,
                  err, errlen) ||
        index_one(self->imports, "queue_id",
                  BCON_NEW("queue_id", BCON_INT32(1)), 1, err, errlen) ||
        index_slots(self, err, errlen) ||
        index_one(self->queues, "source_status_created",
                  BCON_NEW("source", BCON_INT32(1), "status", BCON_INT32(1),
                           "created_at", BCON_INT32(1)),
                  0, err, errlen))
        return SUP_STORE_EFAIL;
    return SUP_STORE_OK;
}

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
    BSON_APPEND_DOCUMENT_BEGIN(&b, "lease_expires_at", &sub);
    BSON_APPEND_DATE_TIME(&sub, "$lt", now);
    bson_append_document_end(&b, &sub);
    bson_append_document_end(& or, &b);
    bson_append_array_end(q, & or);
}

/* An account with imports waiting, and how many it runs now. */
typedef struct candidate {
    bson_value_t account; /* as stored: ObjectId, string, or null */
    int64_t oldest_ms;
    int64_t running;
    int64_t served_ms; /* 0: never */
} candidate_t;

static int same_account(const bson_value_t *a, const bson_value_t *b)
{
    char ka[256], kb[256];
    account_key(a, ka, sizeof(ka));
    account_key(b, kb, sizeof(kb));
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
    mongoc_cursor_t *c = mongoc_collection_aggregate(
        self->queues, MONGOC_QUERY_NONE, pipeline, NULL, NULL);
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
    int64_t oldest = INT64_MAX;
    if (bson_iter_init_find(&it, doc, "oldest") &&
        BSON_ITER_HOLDS_DATE_TIME(&it))
        oldest = bson_iter_date_time(&it);
    /* One account stored two ways is one candidate. */
    if (bson_iter_init_find(&it, doc, "_id"))
        for (size_t i = 0; i < cs->n; i++)
            if (same_account(&cs->list[i].account, bson_iter_value(&it))) {
                if (oldest < cs->list[i].oldest_ms)
                    cs->list[i].oldest_ms = oldest;
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
    account_key(account, key, sizeof(key));
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
        bson_iter_t it;
        update = BCON_NEW("$set", "{", "status", BCON_UTF8("processing"),
                          "in_progress", BCON_BOOL(true), "claimed_by",
                          BCON_UTF8(self->owner), "account_key", BCON_UTF8(key),
                          "account_slot", BCON_INT32((int32_t)slot),
                          "lease_expires_at",
                          BCON_DATE_TIME(now + self->lease_s * 1000),
                          "claimed_at", BCON_DATE_TIME(now), "}", "$inc", "{",
                          "claims", BCON_INT32(1), "}");
        mongoc_find_and_modify_opts_set_sort(opts, &sort);
        mongoc_find_and_modify_opts_set_update(opts, update);
        mongoc_find_and_modify_opts_set_flags(
            opts, MONGOC_FIND_AND_MODIFY_RETURN_NEW);
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
        } else if (bson_iter_init_find(&it, &reply, "value") &&
                   BSON_ITER_HOLDS_DOCUMENT(&it)) {
            const uint8_t *data;
            uint32_t len;
            bson_t tmp;
            bson_iter_document(&it, &len, &data);
            bson_init_static(&tmp, data, len);
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
        BCON_UTF8("$created_at"), "}", "}", "}", "{", "$sort", "{", "oldest",
        BCON_INT32(1), "}", "}", "{", "$limit", BCON_INT32(256), "}", "]");
    rc = group(self, pipeline, add_candidate, &cs, err, errlen);
    bson_destroy(pipeline);
    bson_destroy(&match);
    if (rc < 0 || cs.n == 0)
        goto cleanup;

    /* 2. How many each runs now, on any supervisor. */
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
    for (size_t i = 0; i < cs.n && rc == 0; i++) {
        if (cs.list[i].running >= per_account)
            continue;
        rc = claim_in_account(self, &cs.list[i].account, held, nheld,
                              per_account, out, err, errlen);
    }
cleanup:
    for (size_t i = 0; i < cs.n; i++)
        bson_value_destroy(&cs.list[i].account);
    return rc;
}

int64_t sup_store_epoch(const bson_t *queue_doc)
{
    bson_iter_t it;
    if (queue_doc && bson_iter_init_find(&it, queue_doc, "claims") &&
        (BSON_ITER_HOLDS_INT32(&it) || BSON_ITER_HOLDS_INT64(&it) ||
         BSON_ITER_HOLDS_DOUBLE(&it)))
        return bson_iter_as_int64(&it);
    return -1;
}

/* {_id, claimed_by: owner, claims: epoch}: writes only the holder of this
 * claim may do. */
static void append_fence(sup_store_t *self, bson_t *filter,
                         const bson_value_t *qid, int64_t epoch)
{
    BSON_APPEND_VALUE(filter, "_id", qid);
    BSON_APPEND_UTF8(filter, "claimed_by", self->owner);
    BSON_APPEND_INT64(filter, "claims", epoch);
}

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
    c = mongoc_collection_find_with_opts(self->queues, &filter, opts, NULL);
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
    bson_t filter = BSON_INITIALIZER, or, *update;
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
    update =
        BCON_NEW("$set", "{", "lease_expires_at",
                 BCON_DATE_TIME(dip_bson_now_ms() + self->lease_s * 1000), "}");
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

static bson_t *owned(sup_store_t *self, const bson_value_t *qid, int64_t epoch)
{
    bson_t *filter = bson_new();
    append_fence(self, filter, qid, epoch);
    return filter;
}

int sup_store_progress(sup_store_t *self, const bson_value_t *qid,
                       int64_t epoch, bson_t *const *errors, size_t nerr,
                       int64_t lines, int64_t added, int64_t nerrors,
                       int64_t not_stored, int64_t bytes, int64_t bytes_total,
                       const bson_t *checkpoint, const bson_t *header,
                       char *err, size_t errlen)
{
    bson_t *filter = NULL, *update = NULL, set, prog;
    bson_t reply;
    bson_error_t error;
    bson_iter_t it;
    int rc = insert_errors(self, errors, nerr, err, errlen);
    if (rc != SUP_STORE_OK)
        return rc;
    filter = owned(self, qid, epoch);
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
    BSON_APPEND_DATE_TIME(&set, "lease_expires_at",
                          dip_bson_now_ms() + self->lease_s * 1000);
    BSON_APPEND_DATE_TIME(&set, "updated_at", dip_bson_now_ms());
    bson_append_document_end(update, &set);
    if (!mongoc_collection_update_one(self->queues, filter, update, NULL,
                                      &reply, &error)) {
        snprintf(err, errlen, "writing progress failed: %s", error.message);
        rc = SUP_STORE_EFAIL;
    } else if (bson_iter_init_find(&it, &reply, "matchedCount") &&
               bson_iter_as_int64(&it) == 0) {
        snprintf(err, errlen,
                 "the import is no longer claimed by this "
                 "supervisor");
        rc = SUP_STORE_ELOST;
    }
    bson_destroy(&reply);
    bson_destroy(filter);
    bson_destroy(update);
    return rc;
}

static int64_t count(mongoc_collection_t *coll, const char *key,
                     const bson_value_t *qid, bson_error_t *error)
{
    bson_t *filter = bson_new();
    BSON_APPEND_VALUE(filter, key, qid);
    int64_t n = mongoc_collection_count_documents(coll, filter, NULL, NULL,
                                                  NULL, error);
    bson_destroy(filter);
    return n;
}

/* The import's deals. With the account (as the worker writes it, an
 * ObjectId) the count runs on the prefix of the deals' unique index and,
 * on a sharded deals collection, on the account's shard only. */
static int64_t count_deals(sup_store_t *self, const bson_t *queue_doc,
                           const bson_value_t *qid, bson_error_t *error)
{
    bson_oid_t account;
    bson_t *filter = bson_new();
    int64_t n;
    /* The account first: the deals index leads with it. */
    if (dip_bson_get_oid(queue_doc, "account_id", &account) == 0)
        BSON_APPEND_OID(filter, "account_id", &account);
    BSON_APPEND_VALUE(filter, "import.queue_id", qid);
    n = mongoc_collection_count_documents(self->deals, filter, NULL, NULL, NULL,
                                          error);
    bson_destroy(filter);
    return n;
}

/* The first errors by line, for csv_imports.logs. */
static void append_logs(sup_store_t *self, const bson_value_t *qid, bson_t *set)
{
    bson_t *filter = bson_new();
    bson_t *opts = BCON_NEW("sort", "{", "line", BCON_INT32(1), "}", "limit",
                            BCON_INT64(LOGS_KEEP), "projection", "{", "_id",
                            BCON_INT32(0), "line", BCON_INT32(1), "field",
                            BCON_INT32(1), "message", BCON_INT32(1), "}");
    mongoc_cursor_t *c;
    const bson_t *doc;
    bson_t arr;
    int i = 0;
    BSON_APPEND_VALUE(filter, "queue_id", qid);
    c = mongoc_collection_find_with_opts(self->errors, filter, opts, NULL);
    BSON_APPEND_ARRAY_BEGIN(set, "logs", &arr);
    while (mongoc_cursor_next(c, &doc)) {
        char k[24];
        snprintf(k, sizeof(k), "%d", i++);
        BSON_APPEND_DOCUMENT(&arr, k, doc);
    }
    bson_append_array_end(set, &arr);
    mongoc_cursor_destroy(c);
    bson_destroy(filter);
    bson_destroy(opts);
}

/* The final status on the queue document: fenced by owner and epoch, or,
 * for an import no supervisor holds (epoch < 0), by the status an atomic
 * move already gave it. A repeat matches again and changes nothing new. */
static int finish_queue(sup_store_t *self, const bson_value_t *qid,
                        int64_t epoch, const sup_store_result_t *r,
                        int64_t added, int64_t nerrors, int64_t not_stored,
                        int64_t now, char *err, size_t errlen)
{
    bson_t *filter = bson_new(), *update = bson_new(), set, unset;
    bson_t reply;
    bson_error_t error;
    bson_iter_t it;
    int rc = SUP_STORE_OK;
    if (epoch >= 0) {
        append_fence(self, filter, qid, epoch);
    } else {
        BSON_APPEND_VALUE(filter, "_id", qid);
        BSON_APPEND_UTF8(filter, "status", r->status);
    }
    BSON_APPEND_DOCUMENT_BEGIN(update, "$set", &set);
    BSON_APPEND_UTF8(&set, "status", r->status);
    BSON_APPEND_BOOL(&set, "in_progress", false);
    BSON_APPEND_DATE_TIME(&set, "finished_at", now);
    BSON_APPEND_DATE_TIME(&set, "updated_at", now);
    BSON_APPEND_INT64(&set, "progress.lines", r->lines);
    BSON_APPEND_INT64(&set, "progress.added", added);
    BSON_APPEND_INT64(&set, "progress.errors", nerrors + not_stored);
    BSON_APPEND_INT64(&set, "progress.errors_not_stored", not_stored);
    if (r->error)
        BSON_APPEND_UTF8(&set, "error", r->error);
    /* csv_imports follows; until it lands, a supervisor that died in
     * between leaves this mark for sup_store_repair_log. */
    BSON_APPEND_BOOL(&set, "log_pending", true);
    bson_append_document_end(update, &set);
    BSON_APPEND_DOCUMENT_BEGIN(update, "$unset", &unset);
    BSON_APPEND_UTF8(&unset, "lease_expires_at", "");
    if (!r->error)
        BSON_APPEND_UTF8(&unset, "error", "");
    bson_append_document_end(update, &unset);
    if (!mongoc_collection_update_one(self->queues, filter, update, NULL,
                                      &reply, &error)) {
        snprintf(err, errlen, "writing the final status failed: %s",
                 error.message);
        rc = SUP_STORE_EFAIL;
    } else if (bson_iter_init_find(&it, &reply, "matchedCount") &&
               bson_iter_as_int64(&it) == 0) {
        snprintf(err, errlen,
                 "the import is no longer claimed by this supervisor");
        rc = SUP_STORE_ELOST;
    }
    bson_destroy(&reply);
    bson_destroy(filter);
    bson_destroy(update);
    return rc;
}

/* A value of the queue document as stored (an ObjectId, or the hex string
 * the CRM wrote), copied to csv_imports. */
static void copy_field(const bson_t *queue_doc, const char *key, bson_t *to)
{
    bson_iter_t it;
    if (bson_iter_init_find(&it, queue_doc, key))
        BSON_APPEND_VALUE(to, key, bson_iter_value(&it));
}

/* csv_imports' dry_run, and a dry run's verdict: what it would have added
 * and the stages it would have created. */
static void append_dry_run(const bson_t *queue_doc, const sup_store_result_t *r,
                           bson_t *set)
{
    bson_iter_t it;
    bson_t ns, names;
    int64_t would_add = r->would_add;
    int dry = r->dry_run || (bson_iter_init_find(&it, queue_doc, "dry_run") &&
                             bson_iter_as_bool(&it));
    BSON_APPEND_BOOL(set, "dry_run", dry);
    if (!dry)
        return;
    if (!r->dry_run)
        would_add = dip_bson_get_int(queue_doc, "checkpoint.would_add", 0);
    BSON_APPEND_INT64(set, "would_add", would_add);
    BSON_APPEND_DOCUMENT_BEGIN(set, "new_stages", &ns);
    BSON_APPEND_INT64(
        &ns, "count",
        r->dry_run
            ? r->new_stages_count
            : dip_bson_get_int(queue_doc, "checkpoint.stages_created", 0));
    if (r->new_stages) {
        BSON_APPEND_ARRAY(&ns, "names", r->new_stages);
    } else {
        BSON_APPEND_ARRAY_BEGIN(&ns, "names", &names);
        bson_append_array_end(&ns, &names);
    }
    bson_append_document_end(set, &ns);
}

void sup_store_append_counts(int dry_run, int64_t updated, int64_t unchanged,
                             bson_t *to)
{
    BSON_APPEND_INT64(to, dry_run ? "would_update" : "total_records_updated",
                      updated);
    BSON_APPEND_INT64(
        to, dry_run ? "would_leave_unchanged" : "total_records_unchanged",
        unchanged);
}

int sup_store_finish(sup_store_t *self, const bson_t *queue_doc, int64_t epoch,
                     const sup_store_result_t *r, char *err, size_t errlen)
{
    bson_error_t error;
    int64_t added, nerrors, not_stored, now = dip_bson_now_ms();
    bson_t *filter = NULL, *update = NULL, set, soi, notes;
    const bson_value_t *qid;
    const char *name;
    int rc = SUP_STORE_EFAIL;
    bson_iter_t it;

    if (!bson_iter_init_find(&it, queue_doc, "_id")) {
        snprintf(err, errlen, "queue document without an _id");
        return SUP_STORE_EFAIL;
    }
    qid = bson_iter_value(&it);
    added = count_deals(self, queue_doc, qid, &error);
    nerrors = added < 0 ? -1 : count(self->errors, "queue_id", qid, &error);
    if (added < 0 || nerrors < 0) {
        snprintf(err, errlen,
                 "counting the import's results failed (a count may take "
                 "the driver's socketTimeoutMS, a quarter of the lease unless "
                 "the URI sets it): %s",
                 error.message);
        return SUP_STORE_EFAIL;
    }

    /* The queue document first, fenced: a supervisor whose claim is gone
     * stops here, before it touches the import log. */
    not_stored = dip_bson_get_int(queue_doc, "checkpoint.errors_not_stored", 0);
    if (r->not_stored > not_stored)
        not_stored = r->not_stored;
    rc = finish_queue(self, qid, epoch, r, added, nerrors, not_stored, now, err,
                      errlen);
    if (rc != SUP_STORE_OK)
        return rc;

    /* csv_imports: one per import, keyed by it, so a repeated finish is
     * harmless. */
    rc = SUP_STORE_EPARTIAL;
    filter = bson_new();
    BSON_APPEND_VALUE(filter, "queue_id", qid);
    update = bson_new();
    BSON_APPEND_DOCUMENT_BEGIN(update, "$set", &set);
    BSON_APPEND_UTF8(&set, "status", r->status);
    BSON_APPEND_INT64(&set, "total_records", r->lines);
    BSON_APPEND_INT64(&set, "total_records_added", added);
    BSON_APPEND_INT64(&set, "total_errors", nerrors + not_stored);
    BSON_APPEND_INT64(&set, "errors_stored", nerrors);
    BSON_APPEND_INT64(&set, "errors_not_stored", not_stored);
    if (r->error)
        BSON_APPEND_UTF8(&set, "error", r->error);
    if (r->notes) {
        BSON_APPEND_ARRAY(&set, "notes", r->notes);
    } else {
        BSON_APPEND_ARRAY_BEGIN(&set, "notes", &notes);
        bson_append_array_end(&set, &notes);
    }
    if (r->header) {
        BSON_APPEND_ARRAY(&set, "header", r->header);
    } else {
        /* stored by a run of an earlier claim (a fresh iterator: qid points
         * into it) */
        bson_iter_t h;
        if (bson_iter_init_find(&h, queue_doc, "header") &&
            BSON_ITER_HOLDS_ARRAY(&h))
            bson_append_iter(&set, "header", -1, &h);
    }
    append_dry_run(queue_doc, r, &set);
    if (r->has_counts)
        sup_store_append_counts(r->dry_run, r->updated, r->unchanged, &set);
    else if (dip_bson_get_int(queue_doc, "checkpoint.updated", -1) >= 0)
        sup_store_append_counts(
            r->dry_run ||
                dip_bson_get_int(queue_doc, "checkpoint.would_add", -1) >= 0,
            dip_bson_get_int(queue_doc, "checkpoint.updated", 0),
            dip_bson_get_int(queue_doc, "checkpoint.unchanged", 0), &set);
    append_logs(self, qid, &set);
    BSON_APPEND_DATE_TIME(&set, "updated_at", now);
    BSON_APPEND_DATE_TIME(&set, "finished_at", now);
    bson_append_document_end(update, &set);
    BSON_APPEND_DOCUMENT_BEGIN(update, "$setOnInsert", &soi);
    copy_field(queue_doc, "account_id", &soi);
    copy_field(queue_doc, "user_id", &soi);
    name = dip_bson_get_str(queue_doc, "csv.0.name");
    if (name == NULL)
        name = dip_bson_get_str(queue_doc, "csv.0.key");
    BSON_APPEND_UTF8(&soi, "file_name", name ? name : "");
    BSON_APPEND_UTF8(&soi, "type", "deal");
    BSON_APPEND_DATE_TIME(&soi, "created_at", now);
    bson_append_document_end(update, &soi);
    {
        bson_t *opts = BCON_NEW("upsert", BCON_BOOL(true));
        bool ok = mongoc_collection_update_one(self->imports, filter, update,
                                               opts, NULL, &error);
        bson_destroy(opts);
        if (!ok)
            snprintf(err, errlen, "writing csv_imports failed: %s",
                     error.message);
        else
            rc = SUP_STORE_OK;
    }
    if (rc == SUP_STORE_OK) {
        /* Keyed by the import: a failure here only makes the repair write
         * csv_imports once more, which changes nothing. */
        bson_t *q = bson_new(),
               *u = BCON_NEW("$unset", "{", "log_pending", BCON_UTF8(""), "}");
        BSON_APPEND_VALUE(q, "_id", qid);
        mongoc_collection_update_one(self->queues, q, u, NULL, NULL, NULL);
        bson_destroy(q);
        bson_destroy(u);
    }
    bson_destroy(filter);
    bson_destroy(update);
    return rc;
}

int sup_store_release(sup_store_t *self, const bson_value_t *qid, int64_t epoch,
                      const char *status, const char *error_text, char *err,
                      size_t errlen)
{
    bson_t *filter = owned(self, qid, epoch), *update = bson_new(), set, unset;
    bson_t reply;
    bson_error_t error;
    bson_iter_t it;
    int rc = SUP_STORE_OK;
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
    if (!mongoc_collection_update_one(self->queues, filter, update, NULL,
                                      &reply, &error)) {
        snprintf(err, errlen, "releasing the import failed: %s", error.message);
        rc = SUP_STORE_EFAIL;
    } else if (bson_iter_init_find(&it, &reply, "matchedCount") &&
               bson_iter_as_int64(&it) == 0) {
        snprintf(err, errlen,
                 "the import is no longer claimed by this supervisor");
        rc = SUP_STORE_ELOST;
    }
    bson_destroy(&reply);
    bson_destroy(filter);
    bson_destroy(update);
    return rc;
}

int sup_store_repair_log(sup_store_t *self, char *err, size_t errlen)
{
    int64_t now = dip_bson_now_ms();
    /* The owner retries its own csv_imports write every few seconds while
     * it lives: only an end older than two leases is another's to repair. */
    bson_t *query = BCON_NEW(
        "status", "{", "$in", "[", BCON_UTF8("completed"), BCON_UTF8("failed"),
        BCON_UTF8("cancelled"), "]", "}", "log_pending", BCON_BOOL(true),
        "finished_at", "{", "$lt",
        BCON_DATE_TIME(now - 2 * self->lease_s * 1000), "}", "$or", "[", "{",
        "log_lease", "{", "$exists", BCON_BOOL(false), "}", "}", "{",
        "log_lease", "{", "$lt", BCON_DATE_TIME(now), "}", "}", "]");
    bson_t *update =
        BCON_NEW("$set", "{", "log_lease",
                 BCON_DATE_TIME(now + 2 * self->lease_s * 1000), "}");
    mongoc_find_and_modify_opts_t *opts = mongoc_find_and_modify_opts_new();
    bson_t reply;
    bson_error_t error;
    bson_iter_t it;
    int rc = SUP_STORE_EFAIL;
    mongoc_find_and_modify_opts_set_update(opts, update);
    mongoc_find_and_modify_opts_set_flags(opts,
                                          MONGOC_FIND_AND_MODIFY_RETURN_NEW);
    if (!mongoc_collection_find_and_modify_with_opts(self->queues, query, opts,
                                                     &reply, &error)) {
        snprintf(err, errlen, "looking for unrecorded import ends failed: %s",
                 error.message);
        /* the reply is initialized even on failure */
        bson_destroy(&reply);
        goto cleanup;
    }
    rc = 0;
    if (bson_iter_init_find(&it, &reply, "value") &&
        BSON_ITER_HOLDS_DOCUMENT(&it)) {
        const uint8_t *data;
        uint32_t len;
        bson_t doc;
        sup_store_result_t r;
        bson_iter_document(&it, &len, &data);
        if (bson_init_static(&doc, data, len)) {
            memset(&r, 0, sizeof(r));
            r.status = dip_bson_get_str(&doc, "status");
            r.error = dip_bson_get_str(&doc, "error");
            r.lines = dip_bson_get_int(&doc, "progress.lines", 0);
            /* No supervisor holds it: its status is final already. */
            rc = sup_store_finish(self, &doc, -1, &r, err, errlen);
            if (rc == SUP_STORE_OK) {
                dip_log(DIP_LOG_NOTICE, NULL,
                        "recorded the end of an import whose supervisor "
                        "stopped before its import log was written");
                rc = 1;
            } else {
                rc = SUP_STORE_EFAIL;
            }
        }
    }
    bson_destroy(&reply);
cleanup:
    mongoc_find_and_modify_opts_destroy(opts);
    bson_destroy(query);
    bson_destroy(update);
    return rc;
}
