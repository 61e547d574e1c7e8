/*
 * sup_store: everything the supervisor asks of MongoDB. Claims are atomic
 * (findAndModify) and leased; every later write about an import is fenced by
 * `claimed_by`, so a supervisor that lost its lease (and whose import another
 * supervisor took over) can no longer change that import.
 */
#ifndef SUP_STORE_H
#define SUP_STORE_H

#include <stddef.h>

#include <bson/bson.h>

#include "dip_config.h"

typedef struct sup_store sup_store_t;

enum {
    SUP_STORE_OK = 0,
    SUP_STORE_EFAIL = -1,
    SUP_STORE_ELOST = -2, /* the claim is no longer ours */
};

/* Final figures and words of an import, for sup_store_finish. */
typedef struct sup_store_result {
    const char *status;   /* completed | failed | cancelled */
    const char *error;    /* sentence, or NULL */
    const bson_t *notes;  /* array of strings, or NULL; borrowed */
    int64_t lines;        /* data lines read */
    int64_t not_stored;   /* line errors counted past the per-import cap */
    const bson_t *header; /* array of strings, or NULL; borrowed */
} sup_store_result_t;

/* owner: "host:pid", written as claimed_by. */
sup_store_t *sup_store_new(const dip_config_t *cfg, const char *owner,
                           char *err, size_t errlen);
void sup_store_destroy(sup_store_t **self_p);

int sup_store_ensure_indexes(sup_store_t *self, char *err, size_t errlen);

/* When this supervisor last claimed an import of an account. */
typedef struct sup_store_served {
    bson_oid_t account;
    int64_t at_ms;
} sup_store_served_t;

/* Claims one pending import (or one whose lease expired), fairly across
 * accounts: the account running the fewest imports (on any supervisor)
 * first, then the one served longest ago (served: n entries, accounts
 * absent from it were never served), then the one whose oldest import waits
 * longest; never more than
 * per_account running imports of one account, enforced atomically by a
 * unique index on the running imports' (account_id, account_slot). Accounts
 * in skip (n ids) are passed over. On success copies the claimed document
 * into out (initialized by the callee) and returns 1; 0 when there is nothing
 * to claim; negative on error. */
int sup_store_claim(sup_store_t *self, const bson_oid_t *skip, size_t nskip,
                    const sup_store_served_t *served, size_t nserved,
                    long per_account, bson_t *out, char *err, size_t errlen);

/* Extends the lease of every import this supervisor holds. */
int sup_store_renew_leases(sup_store_t *self, char *err, size_t errlen);

/* Writes buffered line errors (nerr csv_import_errors documents, as the
 * caller built them from the workers' messages: inserted as they are, not
 * validated again), then progress, the checkpoint and the header
 * (checkpoint and header may be NULL: unchanged). Errors first, so a
 * checkpoint never runs ahead of the errors it covers. not_stored: line
 * errors counted past the per-import cap. */
int sup_store_progress(sup_store_t *self, const bson_oid_t *qid,
                       bson_t *const *errors, size_t nerr, int64_t lines,
                       int64_t added, int64_t nerrors, int64_t not_stored,
                       int64_t bytes, int64_t bytes_total,
                       const bson_t *checkpoint, const bson_t *header,
                       char *err, size_t errlen);

/* Ends an import: counts its deals and error lines in the database, writes
 * csv_imports (total_errors = stored + errors_not_stored, and the header),
 * and sets the queue document's final status. */
int sup_store_finish(sup_store_t *self, const bson_t *queue_doc,
                     const sup_store_result_t *result, char *err,
                     size_t errlen);

/* Hands an import back: status (pending or paused), in_progress false, no
 * claim, checkpoint kept; error may be NULL. */
int sup_store_release(sup_store_t *self, const bson_oid_t *qid,
                      const char *status, const char *error, char *err,
                      size_t errlen);

#endif
