/*
 * wrk_upsert_priv: what wrk_upsert.c (the lookup, the verdicts, the plans)
 * and wrk_upsert_write.c (the writes and their outcomes) share. Included by
 * those two files only.
 */
#ifndef WRK_UPSERT_PRIV_H
#define WRK_UPSERT_PRIV_H

#include "wrk_keys.h"
#include "wrk_upsert.h"

#include <mongoc/mongoc.h>

struct wrk_upsert {
    wrk_db_t *db;
    const wrk_match_t *m;
    const bson_oid_t *qid, *account, *pipeline;
    int dry;
    mongoc_collection_t *deals, *changes;
    wrk_keys_t *seen;  /* key -> first line, over the run */
    wrk_keys_t *found; /* key -> index in found_docs, this batch */
    wrk_keys_t *names; /* the lookup projection's paths, this batch */
    bson_t **found_docs;
    size_t nfound, found_cap;
    void (*before_write)(void *); /* wrk_upsert_set_before_write */
    void *before_write_arg;
};

/* What the batch writes: inserts and updates in row order. */
typedef struct plan {
    bson_t *change; /* the change record to insert first, or NULL */
    bson_t *update; /* the update of the deal, or NULL */
    /* the update's filter: the deal's _id, account and pipeline as the
     * lookup found them stored (ObjectId or hex), so that a deal moved
     * since matches nothing; NULL: the import's, in either form */
    bson_t *where;
    bson_t *insert; /* the deal to insert (a row's doc or a copy), or NULL */
    bson_oid_t deal_id;
    int own_insert; /* insert is a copy this module made */
    int gone;       /* its update matched no deal: 1 deleted, 2 moved
                       since the lookup, 3 its ids stored in the other form
                       since (wrk_upsert_write_gone) */
} plan_t;

/* One batch being written: its plans, outcomes and messages (the
 * caller's), and the rows of the write in flight (op index -> row). */
typedef struct batch_ctx {
    plan_t *plan;
    size_t *rows; /* op index -> row */
    size_t nops, n;
    int *outcome;
    char **messages;
    int only_gone;        /* write_deals sends only the rows marked gone */
    int64_t unmatched;    /* updates sent that matched no deal */
    const wrk_match_t *m; /* the import's match field */
} batch_ctx_t;

/* The largest change record the worker sends: MongoDB's limit on a
 * document (16 MiB), a fixed limit of every server. */
#define WRK_UPSERT_CHANGE_MAX (16 * 1024 * 1024)

/* Row i refused with msg (copied): outcome WRK_UPSERT_REFUSED. */
void wrk_upsert_refuse(char **messages, size_t i, int *outcome,
                       const char *msg);
/* Plans the insert of row i's doc as a new deal (name and stage required,
 * the deal_id key skipped), or refuses it. */
void wrk_upsert_create(wrk_upsert_t *self, bson_t *doc, const char *skip,
                       plan_t *p, int *outcome, char **messages, size_t i);
/* The plan's deal id from doc's _id (the deal found, or the insert). */
void wrk_upsert_plan_id(plan_t *p, const bson_t *doc);

/* The change records, then the deals, each one unordered write retried
 * with the worker's policy; then the updates that matched no deal. Each
 * WRK_DB_OK, or WRK_DB_ETRANSIENT / WRK_DB_EFAIL with err. */
int wrk_upsert_write_changes(wrk_upsert_t *self, batch_ctx_t *b, char *err,
                             size_t errlen);
int wrk_upsert_write_deals(wrk_upsert_t *self, batch_ctx_t *b, char *err,
                           size_t errlen);
int wrk_upsert_write_gone(wrk_upsert_t *self, batch_ctx_t *b,
                          bson_t *const *docs, char *err, size_t errlen);
/* Removes the before-images of the rows the writes refused (a deal whose
 * update the database refused: its tags not an array, a value it cannot
 * take; or whose record could not be stored): their deals were not
 * changed by this line. WRK_DB_OK, or WRK_DB_ETRANSIENT / WRK_DB_EFAIL
 * with err. */
int wrk_upsert_drop_refused(wrk_upsert_t *self, batch_ctx_t *b, char *err,
                            size_t errlen);

#endif
