/*
 * wrk_db: everything the worker asks of MongoDB: its queue document, the
 * pipeline check, stage find-or-create, and batched deal inserts. Each
 * operation retries transient failures itself (attempts and backoff from the
 * config) and returns WRK_DB_ETRANSIENT only when they ran out, so callers
 * never turn a brief outage into a per-line error.
 */
#ifndef WRK_DB_H
#define WRK_DB_H

#include <stddef.h>

#include <bson/bson.h>

#include <mongoc/mongoc.h>

#include "dip_config.h"

typedef struct wrk_db wrk_db_t;

enum {
    WRK_DB_OK = 0,
    WRK_DB_EFAIL = -1,      /* permanent; err says why */
    WRK_DB_ENOTFOUND = -2,  /* queue document or pipeline not found */
    WRK_DB_ETRANSIENT = -3, /* retries exhausted */
};

/* Per-document outcome of wrk_db_insert_deals. */
enum {
    WRK_DB_ADDED = 0,
    WRK_DB_ALREADY = 1, /* the line's deal existed (an earlier run) */
    WRK_DB_REFUSED = 2, /* the server refused this document */
};

wrk_db_t *wrk_db_new(const dip_config_t *cfg, const char *queue_id, char *err,
                     size_t errlen);
void wrk_db_destroy(wrk_db_t **self_p);

/* Round trips made so far (for the per-1,000-rows budget). */
long wrk_db_round_trips(const wrk_db_t *self);

/* Copies the queue document into out (initialized by the callee). */
int wrk_db_load_queue(wrk_db_t *self, bson_t *out, char *err, size_t errlen);

/* One read, no retries, of the queue document's claim fields (claimed_by,
 * claims, status) into out (initialized by the callee): WRK_DB_OK,
 * WRK_DB_ENOTFOUND when the document is gone, WRK_DB_ETRANSIENT when the
 * read failed. For wrk_fence. */
int wrk_db_fence_read(wrk_db_t *self, bson_t *out, char *err, size_t errlen);

/* WRK_DB_OK when the pipeline exists and belongs to the account,
 * WRK_DB_ENOTFOUND otherwise. */
int wrk_db_check_pipeline(wrk_db_t *self, const bson_oid_t *pipeline,
                          const bson_oid_t *account, char *err, size_t errlen);

/* Finds the stage `name` in (account, pipeline), or creates it when
 * may_create; *created is 1 when this call created it. A stage that does
 * not exist and may not be created is WRK_DB_ENOTFOUND. */
int wrk_db_stage(wrk_db_t *self, const bson_oid_t *account,
                 const bson_oid_t *pipeline, const bson_oid_t *user,
                 const char *name, int may_create, bson_oid_t *out,
                 int *created, char *err, size_t errlen);

/* Calls fn(arg, name, id) for each stage of (account, pipeline), at most
 * limit of them, in one query on the stage index's prefix (a read bounded by
 * maxTimeMS, retried as the others). A stage whose name is not a string or
 * whose id is not an ObjectId is passed over. */
int wrk_db_stages_find(wrk_db_t *self, const bson_oid_t *account,
                       const bson_oid_t *pipeline, int64_t limit,
                       void (*fn)(void *arg, const char *name,
                                  const bson_oid_t *id),
                       void *arg, char *err, size_t errlen);

/* Inserts n deals unordered, in one round trip while they fit in the
 * server's message size. Each deal starts with its own ObjectId `_id` and is
 * sent as it is, not validated again: keys valid for MongoDB (no '$', no
 * dots) and text UTF-8 without NUL bytes are the caller's guarantee.
 * outcome[i] gets WRK_DB_ADDED, WRK_DB_ALREADY (its line or its _id is
 * already stored: an earlier run or attempt) or WRK_DB_REFUSED (then
 * messages[i], a malloc'd sentence the caller frees). */
int wrk_db_insert_deals(wrk_db_t *self, const bson_t *const *docs, size_t n,
                        int *outcome, char **messages, char *err,
                        size_t errlen);

/* For the modules that add their own operations (wrk_upsert): a new handle
 * on collection name of the worker's database (the caller destroys it),
 * the retry policy after a failed attempt (1 = back off done, try again;
 * 0 = stop with *rc and err set), a round trip to count, and a unique
 * index created (idempotent; partial may be NULL). */
mongoc_collection_t *wrk_db_collection(wrk_db_t *self, const char *name);
int wrk_db_retry(wrk_db_t *self, const bson_error_t *error, int attempt,
                 const char *what, int *rc, char *err, size_t errlen);
void wrk_db_count_round_trip(wrk_db_t *self);
/* The maxTimeMS a read carries: three quarters of the driver's socket
 * timeout, so the server gives up before the client does and no abandoned
 * query runs on. */
long wrk_db_max_time_ms(const wrk_db_t *self);
int wrk_db_unique_index(wrk_db_t *self, const char *collection,
                        const char *name, bson_t *keys, bson_t *partial,
                        char *err, size_t errlen);
/* The deals collection's indexes as listIndexes gives them, copied into
 * out (initialized by the callee) as an array "0", "1", ... */
int wrk_db_deal_indexes(wrk_db_t *self, bson_t *out, char *err, size_t errlen);

#endif
