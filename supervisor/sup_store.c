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
    long lease_s;
};

sup_store_t *sup_store_new(const dip_config_t *cfg, const char *owner,
                           char *err, size_t errlen)
{
    sup_store_t *self = calloc(1, sizeof(*self));
    const char *db = NULL;
    if (self == NULL)
        return NULL;
    self->client = dip_mongo_client_new(
        cfg->mongodb_uri, "dealimport-supervisor", &db, err, errlen);
    if (self->client == NULL) {
        free(self);
        return NULL;
    }
    self->queues = mongoc_client_get_collection(self->client, db, "queues");
    self->deals = mongoc_client_get_collection(self->client, db, "deals");
    self->imports =
        mongoc_client_get_collection(self->client, db, "csv_imports");
    self->errors =
        mongoc_client_get_collection(self->client, db, "csv_import_errors");
    snprintf(self->owner, sizeof(self->owner), "%s", owner);
    self->lease_s = cfg->lease_s;
    return self;
}

void sup_store_destroy(sup_store_t **self_p)
{
    sup_store_t *self;
    if (self_p == NULL || *self_p == NULL)
        return;
    self = *self_p;
    mongoc_collection_destroy(self->queues);
    mongoc_collection_destroy(self->deals);
    mongoc_collection_destroy(self->imports);
    mongoc_collection_destroy(self->errors);
    mongoc_client_destroy(self->client);
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

/* At most one running import per (account, slot): the per-account limit
 * holds across every supervisor sharing the database, atomically. */
static int index_slots(sup_store_t *self, char *err, size_t errlen)
{
    bson_t *cmd =
        BCON_NEW("createIndexes", BCON_UTF8("queues"), "indexes", "[", "{",
                 "key", "{", "account_id", BCON_INT32(1), "account_slot",
                 BCON_INT32(1), "}", "name", BCON_UTF8("running_account_slot"),
                 "unique", BCON_BOOL(true), "partialFilterExpression", "{",
                 "status", BCON_UTF8("processing"), "}", "}", "]");
    bson_error_t error;
    bson_t reply;
    int rc = SUP_STORE_OK;
    if (!mongoc_collection_write_command_with_opts(self->queues, cmd, NULL,
                                                   &reply, &error)) {
        snprintf(err, errlen, "cannot create index 'running_account_slot': %s",
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
static void append_claimable(bson_t *q, int64_t now)
{
    bson_t or, b, sub;
    BSON_APPEND_UTF8(q, "source", "deals");
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
    if (a->value_type != b->value_type)
        return 0;
    if (a->value_type == BSON_TYPE_OID)
        return bson_oid_equal(&a->value.v_oid, &b->value.v_oid);
    if (a->value_type == BSON_TYPE_UTF8)
        return strcmp(a->value.v_utf8.str, b->value.v_utf8.str) == 0;
    return a->value_type == BSON_TYPE_NULL;
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
    if (cs->n == cs->cap)
        return;
    c = &cs->list[cs->n];
    memset(c, 0, sizeof(*c));
    if (bson_iter_init_find(&it, doc, "_id"))
        bson_value_copy(bson_iter_value(&it), &c->account);
    else
        c->account.value_type = BSON_TYPE_NULL;
    if (bson_iter_init_find(&it, doc, "oldest") &&
        BSON_ITER_HOLDS_DATE_TIME(&it))
        c->oldest_ms = bson_iter_date_time(&it);
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
            cs->list[i].running = n;
}

/* Tries to claim the oldest claimable import of one account in one of its
 * `limit` slots. 1 claimed, 0 nothing (none left, or every slot taken),
 * negative on error. */
static int claim_in_account(sup_store_t *self, const bson_value_t *account,
                            long limit, bson_t *out, char *err, size_t errlen)
{
    int64_t now = dip_bson_now_ms();
    bson_t query = BSON_INITIALIZER, sort = BSON_INITIALIZER;
    int rc = 0;
    append_claimable(&query, now);
    BSON_APPEND_VALUE(&query, "account_id", account);
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
                          BCON_UTF8(self->owner), "account_slot",
                          BCON_INT32((int32_t)slot), "lease_expires_at",
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
    append_claimable(&match, now);
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
        rc = claim_in_account(self, &cs.list[i].account, per_account, out, err,
                              errlen);
    }
cleanup:
    for (size_t i = 0; i < cs.n; i++)
        bson_value_destroy(&cs.list[i].account);
    return rc;
}

int sup_store_renew_leases(sup_store_t *self, char *err, size_t errlen)
{
    bson_t *filter, *update;
    bson_error_t error;
    int rc = SUP_STORE_OK;
    filter = BCON_NEW("claimed_by", BCON_UTF8(self->owner), "status",
                      BCON_UTF8("processing"));
    update =
        BCON_NEW("$set", "{", "lease_expires_at",
                 BCON_DATE_TIME(dip_bson_now_ms() + self->lease_s * 1000), "}");
    if (!mongoc_collection_update_many(self->queues, filter, update, NULL, NULL,
                                       &error)) {
        snprintf(err, errlen, "renewing leases failed: %s", error.message);
        rc = SUP_STORE_EFAIL;
    }
    bson_destroy(filter);
    bson_destroy(update);
    return rc;
}

static int insert_errors(sup_store_t *self, const bson_oid_t *qid,
                         json_t *errors, char *err, size_t errlen)
{
    size_t n = json_array_size(errors), i;
    bson_t **docs;
    bson_t opts = BSON_INITIALIZER, reply;
    bson_error_t error;
    int rc = SUP_STORE_OK;
    int64_t now = dip_bson_now_ms();
    if (n == 0)
        return SUP_STORE_OK;
    docs = calloc(n, sizeof(bson_t *));
    if (docs == NULL)
        return SUP_STORE_EFAIL;
    for (i = 0; i < n; i++) {
        json_t *e = json_array_get(errors, i), *row;
        bson_t *d = bson_new(), arr;
        size_t j;
        BSON_APPEND_OID(d, "queue_id", qid);
        BSON_APPEND_INT64(d, "line",
                          json_integer_value(json_object_get(e, "line")));
        BSON_APPEND_UTF8(d, "field",
                         json_string_value(json_object_get(e, "field")));
        BSON_APPEND_UTF8(d, "message",
                         json_string_value(json_object_get(e, "message")));
        row = json_object_get(e, "row");
        BSON_APPEND_ARRAY_BEGIN(d, "row", &arr);
        for (j = 0; j < json_array_size(row); j++) {
            char k[24];
            snprintf(k, sizeof(k), "%zu", j);
            BSON_APPEND_UTF8(&arr, k,
                             json_string_value(json_array_get(row, j)));
        }
        bson_append_array_end(d, &arr);
        BSON_APPEND_DATE_TIME(d, "created_at", now);
        docs[i] = d;
    }
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
    for (i = 0; i < n; i++)
        bson_destroy(docs[i]);
    free(docs);
    return rc;
}

/* {_id: qid, claimed_by: owner}: writes that only the claim holder may do. */
static bson_t *owned(sup_store_t *self, const bson_oid_t *qid)
{
    return BCON_NEW("_id", BCON_OID(qid), "claimed_by", BCON_UTF8(self->owner));
}

int sup_store_progress(sup_store_t *self, const bson_oid_t *qid, json_t *errors,
                       int64_t lines, int64_t added, int64_t nerrors,
                       int64_t bytes, int64_t bytes_total, json_t *checkpoint,
                       char *err, size_t errlen)
{
    bson_t *filter = NULL, *update = NULL, *cp = NULL, set, prog;
    bson_t reply;
    bson_error_t error;
    bson_iter_t it;
    int rc = insert_errors(self, qid, errors, err, errlen);
    if (rc != SUP_STORE_OK)
        return rc;
    filter = owned(self, qid);
    update = bson_new();
    BSON_APPEND_DOCUMENT_BEGIN(update, "$set", &set);
    BSON_APPEND_DOCUMENT_BEGIN(&set, "progress", &prog);
    BSON_APPEND_INT64(&prog, "bytes", bytes);
    BSON_APPEND_INT64(&prog, "bytes_total", bytes_total);
    BSON_APPEND_INT64(&prog, "lines", lines);
    BSON_APPEND_INT64(&prog, "added", added);
    BSON_APPEND_INT64(&prog, "errors", nerrors);
    bson_append_document_end(&set, &prog);
    if (checkpoint && (cp = dip_bson_from_json(checkpoint)) != NULL)
        BSON_APPEND_DOCUMENT(&set, "checkpoint", cp);
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
    bson_destroy(cp);
    bson_destroy(filter);
    bson_destroy(update);
    return rc;
}

static int64_t count(mongoc_collection_t *coll, const char *key,
                     const bson_oid_t *qid, bson_error_t *error)
{
    bson_t *filter = BCON_NEW(key, BCON_OID(qid));
    int64_t n = mongoc_collection_count_documents(coll, filter, NULL, NULL,
                                                  NULL, error);
    bson_destroy(filter);
    return n;
}

/* The import's deals. With the account (as the worker writes it, an
 * ObjectId) the count runs on the prefix of the deals' unique index and,
 * on a sharded deals collection, on the account's shard only. */
static int64_t count_deals(sup_store_t *self, const bson_t *queue_doc,
                           const bson_oid_t *qid, bson_error_t *error)
{
    bson_oid_t account;
    bson_t *filter;
    int64_t n;
    if (dip_bson_get_oid(queue_doc, "account_id", &account) == 0)
        filter = BCON_NEW("account_id", BCON_OID(&account), "import.queue_id",
                          BCON_OID(qid));
    else
        filter = BCON_NEW("import.queue_id", BCON_OID(qid));
    n = mongoc_collection_count_documents(self->deals, filter, NULL, NULL, NULL,
                                          error);
    bson_destroy(filter);
    return n;
}

/* The first errors by line, for csv_imports.logs. */
static void append_logs(sup_store_t *self, const bson_oid_t *qid, bson_t *set)
{
    bson_t *filter = BCON_NEW("queue_id", BCON_OID(qid));
    bson_t *opts = BCON_NEW("sort", "{", "line", BCON_INT32(1), "}", "limit",
                            BCON_INT64(LOGS_KEEP), "projection", "{", "_id",
                            BCON_INT32(0), "line", BCON_INT32(1), "field",
                            BCON_INT32(1), "message", BCON_INT32(1), "}");
    mongoc_cursor_t *c =
        mongoc_collection_find_with_opts(self->errors, filter, opts, NULL);
    const bson_t *doc;
    bson_t arr;
    int i = 0;
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

int sup_store_finish(sup_store_t *self, const bson_t *queue_doc,
                     const sup_store_result_t *r, char *err, size_t errlen)
{
    bson_oid_t qid, tmp;
    bson_error_t error;
    int64_t added, nerrors, now = dip_bson_now_ms();
    bson_t *filter = NULL, *update = NULL, set, soi, notes;
    const char *name;
    int rc = SUP_STORE_EFAIL;
    bson_t reply;
    bson_iter_t it;

    if (dip_bson_get_oid(queue_doc, "_id", &qid) != 0) {
        snprintf(err, errlen, "queue document without an _id");
        return SUP_STORE_EFAIL;
    }
    added = count_deals(self, queue_doc, &qid, &error);
    nerrors = added < 0 ? -1 : count(self->errors, "queue_id", &qid, &error);
    if (added < 0 || nerrors < 0) {
        snprintf(err, errlen, "counting the import's results failed: %s",
                 error.message);
        return SUP_STORE_EFAIL;
    }

    /* csv_imports: one per import, upserted so a repeated finish is
     * harmless. */
    filter = BCON_NEW("queue_id", BCON_OID(&qid));
    update = bson_new();
    BSON_APPEND_DOCUMENT_BEGIN(update, "$set", &set);
    BSON_APPEND_UTF8(&set, "status", r->status);
    BSON_APPEND_INT64(&set, "total_records", r->lines);
    BSON_APPEND_INT64(&set, "total_records_added", added);
    BSON_APPEND_INT64(&set, "total_errors", nerrors);
    if (r->error)
        BSON_APPEND_UTF8(&set, "error", r->error);
    BSON_APPEND_ARRAY_BEGIN(&set, "notes", &notes);
    for (size_t i = 0; r->notes && i < json_array_size(r->notes); i++) {
        char k[24];
        const char *s = json_string_value(json_array_get(r->notes, i));
        snprintf(k, sizeof(k), "%zu", i);
        BSON_APPEND_UTF8(&notes, k, s ? s : "");
    }
    bson_append_array_end(&set, &notes);
    append_logs(self, &qid, &set);
    BSON_APPEND_DATE_TIME(&set, "updated_at", now);
    BSON_APPEND_DATE_TIME(&set, "finished_at", now);
    bson_append_document_end(update, &set);
    BSON_APPEND_DOCUMENT_BEGIN(update, "$setOnInsert", &soi);
    if (dip_bson_get_oid(queue_doc, "account_id", &tmp) == 0)
        BSON_APPEND_OID(&soi, "account_id", &tmp);
    if (dip_bson_get_oid(queue_doc, "user_id", &tmp) == 0)
        BSON_APPEND_OID(&soi, "user_id", &tmp);
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
        if (!ok) {
            snprintf(err, errlen, "writing csv_imports failed: %s",
                     error.message);
            goto cleanup;
        }
    }
    bson_destroy(filter);
    bson_destroy(update);

    filter = owned(self, &qid);
    update = bson_new();
    BSON_APPEND_DOCUMENT_BEGIN(update, "$set", &set);
    BSON_APPEND_UTF8(&set, "status", r->status);
    BSON_APPEND_BOOL(&set, "in_progress", false);
    BSON_APPEND_DATE_TIME(&set, "finished_at", now);
    BSON_APPEND_DATE_TIME(&set, "updated_at", now);
    BSON_APPEND_INT64(&set, "progress.lines", r->lines);
    BSON_APPEND_INT64(&set, "progress.added", added);
    BSON_APPEND_INT64(&set, "progress.errors", nerrors);
    if (r->error)
        BSON_APPEND_UTF8(&set, "error", r->error);
    bson_append_document_end(update, &set);
    {
        bson_t unset;
        BSON_APPEND_DOCUMENT_BEGIN(update, "$unset", &unset);
        BSON_APPEND_UTF8(&unset, "lease_expires_at", "");
        if (!r->error)
            BSON_APPEND_UTF8(&unset, "error", "");
        bson_append_document_end(update, &unset);
    }
    if (!mongoc_collection_update_one(self->queues, filter, update, NULL,
                                      &reply, &error)) {
        snprintf(err, errlen, "writing the final status failed: %s",
                 error.message);
    } else if (bson_iter_init_find(&it, &reply, "matchedCount") &&
               bson_iter_as_int64(&it) == 0) {
        snprintf(err, errlen,
                 "the import is no longer claimed by this supervisor");
        rc = SUP_STORE_ELOST;
    } else {
        rc = SUP_STORE_OK;
    }
    bson_destroy(&reply);
cleanup:
    bson_destroy(filter);
    bson_destroy(update);
    return rc;
}

int sup_store_release(sup_store_t *self, const bson_oid_t *qid,
                      const char *status, const char *error_text, char *err,
                      size_t errlen)
{
    bson_t *filter = owned(self, qid), *update = bson_new(), set, unset;
    bson_error_t error;
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
    if (!mongoc_collection_update_one(self->queues, filter, update, NULL, NULL,
                                      &error)) {
        snprintf(err, errlen, "releasing the import failed: %s", error.message);
        rc = SUP_STORE_EFAIL;
    }
    bson_destroy(filter);
    bson_destroy(update);
    return rc;
}
