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
     * since matches nothing, then cas; NULL: the import's, in either
     * form (and cas) */
    bson_t *where;
    /* the compare-and-set part of the filter (wrk_upsert_plan): the
     * previous value of each field changed, as the change record states
     * it, and no tag the update adds */
    bson_t *cas;
    bson_t *insert; /* the deal to insert (a row's doc or a copy), or NULL */
    bson_oid_t deal_id;
    int own_insert; /* insert is a copy this module made */
    int gone;       /* its update matched no deal: 1 deleted, 2 moved
                       since the lookup, 3 its ids stored in the other form
                       since, 4 another writer changed a field it changes
                       or added a tag it adds (wrk_upsert_write_gone) */
    int retry;      /* gone 3 or 4: the row is to be looked up again */
    int drop;       /* its change record is to be removed: DROP_OWN only
                       this run's (its created_at), DROP_ANY whoever's */
    int met;        /* its change record's insert met one of its line */
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
    const int64_t *lines; /* each row's line */
    /* 0 the first attempt of the batch's rows; from 1, an attempt of the
     * rows whose deals changed since the lookup, mine[i] the created_at
     * of the change record this run wrote for row i (rows_t) */
    int round;
    const int64_t *mine;
} batch_ctx_t;

enum { DROP_OWN = 1, DROP_ANY = 2 };

/* The attempts at a row whose deal another writer keeps changing. */
#define WRK_UPSERT_ATTEMPTS 3

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
/* The created_at (ms) of a change record (NULL: none), 0 when none: what
 * tells this run's record of a line from an earlier run's. */
int64_t wrk_upsert_change_at(const bson_t *change);
/* Plans the update of deal (as the lookup read it) at line: set, changes
 * and tags as wrk_diff_row gives them; its filter (where, cas) and its
 * change record. 0, or -1 out of memory (nothing planned). */
int wrk_upsert_plan_update(wrk_upsert_t *self, plan_t *p, const bson_t *deal,
                           int64_t line, const bson_t *set,
                           const bson_t *changes, const bson_t *tags);

/* The change records (the first attempt inserts them, and replaces a
 * record of the line an earlier run left; a later one replaces the run's
 * own, by mine), then the
 * deals, each
 * one unordered write retried with the worker's policy; then the updates
 * that matched no deal: those whose deal is still in the pipeline are
 * marked retry, for the caller to look them up again. Each WRK_DB_OK, or
 * WRK_DB_ETRANSIENT / WRK_DB_EFAIL with err. */
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
/* Removes the change records of the rows marked drop: DROP_ANY the line's
 * record, DROP_OWN only one of this run (its created_at: the row's
 * change record's, or mine[i] for a row with none now). Same returns. */
int wrk_upsert_drop_marked(wrk_upsert_t *self, batch_ctx_t *b, char *err,
                           size_t errlen);

/* The rows of one attempt at a batch, as wrk_upsert_batch takes them;
 * earlier[i] the first line of row i's key when an earlier line had it;
 * from the second attempt, mine[i] the created_at (ms) of the change
 * record this run wrote for row i at the attempt before: the record of
 * the line that has it is this run's (even one whose insert met itself
 * when a lost reply made it send the insert again, or replaced an earlier
 * run's), replaced by a new attempt's. */
typedef struct rows {
    bson_t *const *docs;
    const int64_t *lines, *earlier;
    const int *status_given;
    const int64_t *mine;
    size_t n;
    int *outcome;
    char **messages;
    bson_oid_t *ids;
} rows_t;

/* One attempt at rows r (wrk_upsert.c): the lookup of their keys, their
 * verdicts, the before-images, the writes, then wrk_upsert_retry_rows.
 * round: 0 the batch's first. WRK_DB_OK, or WRK_DB_ETRANSIENT /
 * WRK_DB_EFAIL with err. */
int wrk_upsert_attempt(wrk_upsert_t *self, const rows_t *r, int round,
                       char *err, size_t errlen);
/* The rows of r that b marks retry, attempted again (round + 1) with
 * their outcomes, messages and ids copied back into r's; past
 * WRK_UPSERT_ATTEMPTS, their line errors, their own change records
 * removed. Same returns. */
int wrk_upsert_retry_rows(wrk_upsert_t *self, const rows_t *r, batch_ctx_t *b,
                          int round, char *err, size_t errlen);

#endif
