/*
 * sup_store: everything the supervisor asks of MongoDB. Claims are atomic
 * (findAndModify) and leased; each claim has an epoch, the queue document's
 * `claims` counter after it. Every later write about an import is fenced by
 * owner and epoch (`claimed_by` and `claims`), or keyed by the import so that
 * a repeat changes nothing, so a supervisor that lost its lease (and whose
 * import another supervisor took over) can no longer change that import.
 * Queue ids are passed as stored (an ObjectId, or whatever the CRM wrote).
 */
#ifndef SUP_STORE_H
#define SUP_STORE_H

#include <stddef.h>

#include <bson/bson.h>
#include <mongoc/mongoc.h>

#include "dip_config.h"

typedef struct sup_store sup_store_t;

enum {
    SUP_STORE_OK = 0,
    SUP_STORE_EFAIL = -1,
    SUP_STORE_ELOST = -2,        /* the claim is no longer ours */
    SUP_STORE_EPARTIAL = -3,     /* sup_store_finish: the final status is
                                    written, csv_imports not yet: call again */
    SUP_STORE_EUNCLAIMABLE = -5, /* sup_store_claim: a document the claim
                                    could not take, ended alone (see there) */
};

/* How many of the first errors csv_imports.logs keeps (all of them are in
 * csv_import_errors). */
#define SUP_STORE_LOGS_KEEP 100

/* Final figures and words of an import, for sup_store_finish. */
typedef struct sup_store_result {
    const char *status;  /* completed | failed | cancelled */
    const char *error;   /* sentence, or NULL */
    const bson_t *notes; /* array of strings, or NULL; borrowed */
    int64_t lines;       /* data lines read */
    int64_t not_stored;  /* line errors counted past the per-import cap */
    /* The worker's own accounting (its last batch report, carried through
     * resumes by its checkpoint): deals written, a duplicate of the import's
     * own line counted once as written; line errors, those past the cap
     * included. counted 0: the caller does not know them, and the queue
     * document's progress (written with each checkpoint) is taken. */
    int counted;
    int64_t added, errors;
    /* 1: the figures are known whole: a worker of this claim read the file
     * to its end and said so (done, completed), so it met again, as its
     * own duplicates, every deal an earlier run of the import wrote past
     * its last report; no deal of it can be in flight. The end then reads
     * nothing past the figures (sup_store_finish). */
    int whole;
    const bson_t *header; /* array of strings, or NULL; borrowed */
    /* a dry run's verdict, from its done (a dry run is also known by the
     * queue document's `dry_run`; would_add then comes from the checkpoint
     * when no done said it) */
    int dry_run;
    int64_t would_add;
    int64_t new_stages_count;
    const bson_t *new_stages; /* array of strings, or NULL; borrowed */
    /* a completion event was recorded held for this end, or may have been
     * (unknown): it has follow-ups to release it (sup_followup_needed) */
    int event_held;
    /* an update or upsert's deals updated and left unchanged, from its
     * done (has_counts 0: from the checkpoint, when it has them) */
    int has_counts;
    int64_t updated, unchanged;
    /* The worker's last byte figures (has_bytes 1: progress.bytes and
     * bytes_total go into the final status, which then stands for the
     * last progress write too), and header_unsaved 1 when header is not
     * on the queue document yet (the final status carries it, for a repair
     * of csv_imports after a crash). */
    int has_bytes;
    int64_t bytes, bytes_total;
    int header_unsaved;
    /* the worker's last checkpoint not written yet (borrowed), or NULL:
     * the final status stores it, as the last progress write would */
    const bson_t *checkpoint;
    /* csv_imports.logs as the caller knows them for sure ({line, field,
     * message} of the first SUP_STORE_LOGS_KEEP stored errors by line; an
     * array, borrowed), or NULL: read from csv_import_errors. */
    const bson_t *logs;
} sup_store_result_t;

/* Appends an update or upsert's counts as csv_imports and the completion
 * event name them: total_records_updated and total_records_unchanged, or
 * for a dry run would_update and would_leave_unchanged. */
void sup_store_append_counts(int dry_run, int64_t updated, int64_t unchanged,
                             bson_t *to);

/* owner: "host:pid", written as claimed_by. client (borrowed, of database
 * db, bounded by sup_store_budget_ms) is shared with the other users of the
 * same thread and outlives the store. */
sup_store_t *sup_store_new(const dip_config_t *cfg, const char *owner,
                           mongoc_client_t *client, const char *db, char *err,
                           size_t errlen);
void sup_store_destroy(sup_store_t **self_p);

/* The driver's timeouts derive from the lease unless the URI sets them
 * (dip_mongo_client_new_bounded): the longest one call can block. */
long sup_store_call_ms(const sup_store_t *self);

/* What the supervisor's driver timeouts derive from: the lease, or the stop
 * timeout when it is shorter, so that a call in flight when SIGTERM comes
 * cannot push the exit past DEALIMPORT_STOP_TIMEOUT_S. */
long sup_store_budget_ms(const dip_config_t *cfg);

int sup_store_ensure_indexes(sup_store_t *self, char *err, size_t errlen);

/* The indexes an import's writes rely on (dip_deal_index.h): the deals'
 * unique import line (an old index it replaced is dropped once it stands)
 * and the stages' unique name (a failure there is logged, not returned).
 * SUP_STORE_OK, or SUP_STORE_EFAIL with err filled: no import may run
 * until it succeeds (a retried or resumed import relies on it). */
int sup_store_ensure_deal_indexes(sup_store_t *self, char *err, size_t errlen);

/* One import this supervisor holds. */
typedef struct sup_store_held {
    bson_value_t id; /* the queue document's _id as stored; borrowed */
    int64_t epoch;   /* its `claims` after our claim */
    int lost;        /* set by sup_store_renew: the claim is gone */
    /* Set when it runs here (not when it is only set aside): sup_store_claim
     * counts it among the running imports of its account, the queue
     * document's account_id as stored (borrowed; null when it has none). */
    int runs;
    bson_value_t account;
} sup_store_held_t;

/* The epoch of a claimed document (its `claims`), or -1. */
int64_t sup_store_epoch(const bson_t *queue_doc);

/* When this supervisor last claimed an import of an account. */
typedef struct sup_store_served {
    bson_oid_t account;
    int64_t at_ms;
} sup_store_served_t;

/* The identity under which an account as stored (its account_id) is
 * remembered in the served table: its ObjectId, the ObjectId its 24-hex
 * string spells, or the all-zero id that every account of another shape
 * (null, a number, a pattern...) shares, as they share one slot key. */
void sup_store_served_account(const bson_value_t *account, bson_oid_t *out);

/* Claims one pending import (or one whose lease expired), never one of the
 * nheld imports in held (this supervisor runs them, or set them aside as
 * unclaimable; their ids are read, and the accounts of those that run
 * here), fairly across
 * accounts: the account running the fewest imports (on any supervisor, as
 * the look saw them, with this supervisor's own as held says now: see
 * sup_store_claim_forget)
 * first, then the one served longest ago (served: n entries, accounts
 * absent from it were never served), then the one whose oldest import waits
 * longest; never more than
 * per_account running imports of one account, enforced atomically by a
 * unique index on the running imports' (account_key, account_slot). Within
 * an account the oldest import goes first; when every slot refuses it, an
 * import of the account whose supervisor is gone (processing, its lease run
 * out) is taken over instead, the lowest slot first, since it holds one of
 * those slots and nothing else frees it. Accounts
 * in skip (n ids) are passed over. On success copies the claimed document
 * into out (initialized by the callee) and returns 1; 0 when there is nothing
 * to claim; negative on error.
 * A document the database refuses to update for a reason of its own (not
 * the network, a timeout, a primary stepping down, nor a lost race for a
 * slot: sup_claim_error_rule), e.g. `claims` not a number (14) or a
 * document that the claim would take past 16 MiB (17419), is taken alone
 * once more to be sure the error is its own, then ended alone:
 * SUP_STORE_EUNCLAIMABLE, out (initialized by the callee) = {_id: as
 * stored, marked: true when an update fenced on its still being claimable
 * set it `failed` with the sentence `error` (and its import log was
 * written), false when even that could not land and the caller is to set
 * it aside, account_id: its account as the claim looked for it}. The
 * caller claims again: other documents are not held; it notes the account
 * served, so that an account whose documents are refused one by one goes
 * behind the others instead of before them at every call. */
int sup_store_claim(sup_store_t *self, const bson_oid_t *skip, size_t nskip,
                    const sup_store_held_t *held, size_t nheld,
                    const sup_store_served_t *served, size_t nserved,
                    long per_account, bson_t *out, char *err, size_t errlen);

/* The accounts a claim tries, and their order, come from a look at
 * queues (two aggregates) that is kept for the next claims while it holds
 * (sup_store_priv.h): a claim from a kept look costs one findAndModify.
 * This drops it: the next claim looks again. The loop calls it at each
 * change-stream wake and each poll, which bring what the CRM and other
 * supervisors changed; a claim from a kept look that finds nothing looks
 * again by itself, so 0 from sup_store_claim is always a new look's. */
void sup_store_claim_forget(sup_store_t *self);

/* How many looks sup_store_claim made since sup_store_new. */
int64_t sup_store_claim_looks(const sup_store_t *self);

/* After sup_store_claim: how many accounts its look saw with claimable
 * imports and has not found empty since, the one claimed in included (a
 * look knows which accounts wait, not how much: counting would read every
 * pending import), one more while the look was cut at its most accounts
 * (those past it are not seen, but wait); 0 after a claim that found none
 * or failed. Those queued after the look are not counted: each comes with
 * its own change (sup_watch) or is found by the next poll. 0 means a claim
 * round may stop without asking again; above 0, the next claim may still
 * find nothing (and says so from a new look). */
int64_t sup_store_claim_left(const sup_store_t *self);

/* A claimed document whose `claims` is not a whole number after the claim
 * (a fraction, or a value past what an integer holds): no later write
 * could be fenced by it, so it ends at once, marked failed by an update
 * fenced by owner and that value; when the sentence would take it past
 * 16 MiB, by an update that only shrinks it (status failed, its slot and
 * lease removed), since a claimed document holds its account's slot and
 * must give it back; the sentence is then in the log. out as
 * sup_store_claim's
 * SUP_STORE_EUNCLAIMABLE (account_id as the document stores it, when it
 * has one); returns that, or SUP_STORE_EFAIL (no _id). */
int sup_store_refuse_epoch(sup_store_t *self, const bson_t *claimed,
                           bson_t *out);

/* Extends the lease of the n imports in held, each fenced by owner and
 * epoch; marks `lost` those whose claim is gone (another owner or epoch,
 * or no claim). SUP_STORE_OK when the database answered (some may
 * be lost), SUP_STORE_EFAIL when it did not (nothing is known). */
int sup_store_renew(sup_store_t *self, sup_store_held_t *held, size_t n,
                    char *err, size_t errlen);

/* Writes buffered line errors (nerr csv_import_errors documents, as the
 * caller built them from the workers' messages: inserted as they are, not
 * validated again), then progress, the checkpoint and the header
 * (checkpoint and header may be NULL: unchanged), fenced by owner and
 * epoch. Errors first, so a checkpoint never runs ahead of the errors it
 * covers. not_stored: line errors counted past the per-import cap. */
int sup_store_progress(sup_store_t *self, const bson_value_t *qid,
                       int64_t epoch, bson_t *const *errors, size_t nerr,
                       int64_t lines, int64_t added, int64_t nerrors,
                       int64_t not_stored, int64_t bytes, int64_t bytes_total,
                       const bson_t *checkpoint, const bson_t *header,
                       char *err, size_t errlen);

/* Writes buffered line errors only (as sup_store_progress does first), for
 * an end whose final status carries the progress: a duplicate line is
 * already stored, not a failure. SUP_STORE_OK or SUP_STORE_EFAIL. */
int sup_store_errors(sup_store_t *self, bson_t *const *errors, size_t nerr,
                     char *err, size_t errlen);

/* Ends an import: sets the queue document's final status and counts (from
 * result's accounting, or its progress) fenced by owner and epoch, and only
 * then writes csv_imports (the same counts: total_errors = errors_stored +
 * errors_not_stored, and
 * the header; keyed by the import, so a repeat changes nothing; the first
 * errors in `logs` read only when there are stored errors), with
 * `dry_run`, and for a dry run its verdict: would_add and new_stages {count,
 * names}; for an update or upsert its counts (sup_store_append_counts), from
 * the done or else from the checkpoint's `updated` and `unchanged`.
 * SUP_STORE_ELOST, with nothing written, when the claim is gone;
 * SUP_STORE_EPARTIAL when only the queue document was written.
 * epoch < 0: an import no supervisor holds, whose status an atomic move
 * already set to result->status (a cancel while pending or paused). */
int sup_store_finish(sup_store_t *self, const bson_t *queue_doc, int64_t epoch,
                     const sup_store_result_t *result, char *err,
                     size_t errlen);

/* Writes csv_imports for one ended import whose queue document is final
 * but whose import log never landed (its supervisor died between the two
 * writes; the final status marked it log_pending), claimed by a lease so
 * one supervisor does it, with the counts the final status stored in
 * progress (nothing is counted). 1 when one was repaired, 0 when none waits,
 * negative on a database error. */
int sup_store_repair_log(sup_store_t *self, char *err, size_t errlen);

/* Hands an import back, fenced by owner and epoch: status (pending or
 * paused), in_progress false, no claim, checkpoint kept; error may be NULL.
 * SUP_STORE_ELOST when the claim is gone (nothing written). */
int sup_store_release(sup_store_t *self, const bson_value_t *qid, int64_t epoch,
                      const char *status, const char *error, char *err,
                      size_t errlen);

#endif
