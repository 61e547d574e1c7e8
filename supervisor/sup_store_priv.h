/*
 * sup_store_priv: what the files of sup_store share, included only by them
 * (sup_store.c: the client, indexes and fences; sup_store_claim.c: claiming;
 * sup_store_lease.c: renewing and handing back; sup_store_progress.c:
 * progress and line errors; sup_store_finish.c: the end of an import and its
 * repair). Nothing here is part of sup_store's contract.
 */
#ifndef SUP_STORE_PRIV_H
#define SUP_STORE_PRIV_H

#include "sup_store.h"
#include "dip_claim.h"
#include "dip_mongo_io.h"

struct sup_store {
    mongoc_client_t *client; /* borrowed */
    mongoc_collection_t *queues, *deals, *imports, *errors, *stages;
    mongoc_collection_t *lines; /* csv_import_lines (sup_succfile) */
    char owner[256];
    long lease_s;
    int deletes_source;          /* DEALIMPORT_DELETE_SOURCE is not `never` */
    int64_t claim_left;          /* sup_store_claim_left */
    struct sup_store_look *look; /* sup_store_look.c's; NULL before one */
    int64_t looks;               /* sup_store_claim_looks */
};

/* Appends to q the filter of imports that may be claimed at now: pending
 * and unlocked, or processing under a lease that ran out (its supervisor
 * is gone); never one of held's. */
void sup_store_append_claimable(bson_t *q, int64_t now,
                                const sup_store_held_t *held, size_t nheld);

/* ---- sup_store_look.c: which accounts the claim tries, in what order.
 *
 * A look is two aggregates on queues: the accounts with pending imports
 * (at most SUP_STORE_LOOK_MAX, the longest waiting first), each with its
 * oldest, read as one index entry per account (a DISTINCT_SCAN of
 * source_account_status_created: its cost is the accounts, not their
 * backlog); and the running imports of other supervisors by account, how
 * many under a live lease and how many under one that ran out (those
 * accounts wait too). It does not count what each account has waiting:
 * that would read every pending import. It is kept for the next claims,
 * which then cost one findAndModify: each claim takes this supervisor's own
 * running imports from its held list as they are then, and notes the
 * account it claimed in (tried after those it has not claimed in yet). It
 * is taken again when sup_store_look_forget was called (the loop does at
 * each change-stream wake and each poll, which bring what other
 * supervisors and the CRM changed), when every account in it came back
 * empty, and at once when a claim from it came back empty (a lost race, an
 * account with nothing left, a document gone or changed): so "nothing to
 * claim" is always a new look's verdict. */
#define SUP_STORE_LOOK_MAX 256
typedef struct sup_store_look sup_store_look_t;

/* One account's turn in a claim. */
typedef struct sup_store_turn {
    const bson_value_t *account; /* as stored; owned by the look */
    size_t at;                   /* for sup_store_look_claimed */
    int64_t oldest_ms, running, served_ms;
    int64_t taken; /* claims in it from this look */
} sup_store_turn_t;

/* The accounts to try, into turns (room SUP_STORE_LOOK_MAX), in the fair
 * order: the one running the fewest imports first, then the one this look
 * claimed in least, then the one this supervisor served longest ago
 * (served: nserved entries), then the one waiting longest. A new look when
 * again is set or none is kept. Accounts in skip, and those running per_account
 * imports or more, are left out. Returns how many, or SUP_STORE_EFAIL with err
 * (no look kept). */
int sup_store_look_order(sup_store_t *self, int again, const bson_oid_t *skip,
                         size_t nskip, const sup_store_held_t *held,
                         size_t nheld, const sup_store_served_t *served,
                         size_t nserved, long per_account,
                         sup_store_turn_t *turns, char *err, size_t errlen);
/* What the claim in turn's account came to: claimed (noted: it goes
 * behind those not claimed in yet), or not (nothing there any more or
 * every slot held: it is not tried again from this look, and the kept
 * look is wrong: the claim looks again). */
void sup_store_look_claimed(sup_store_t *self, const sup_store_turn_t *turn,
                            int claimed);
/* Whether a look is kept, with something left, for the next claim. */
int sup_store_look_kept(const sup_store_t *self);
/* The accounts of the kept look that may still have claimable imports
 * (none of its claims came back empty), one more when the look was cut at
 * SUP_STORE_LOOK_MAX accounts (others may wait beyond it). */
int64_t sup_store_look_waiting(const sup_store_t *self);
/* Pages. A look cut at SUP_STORE_LOOK_MAX accounts none of which could be
 * claimed in (their oldest imports all unclaimable: a broken document,
 * every slot held elsewhere) would be the same look again for ever, and
 * the accounts past its cut would never have a turn. So such a look passes
 * on: sup_store_look_next_page makes the next look start after its last
 * account in the look's order (oldest, then account) and says 1, or, when
 * it was not cut (the end), makes the next look start at the first again
 * and says 0. sup_store_look_first_page does that too (a claim was made:
 * the longest waiting come first again). The page survives
 * sup_store_look_forget. */
int sup_store_look_next_page(sup_store_t *self);
void sup_store_look_first_page(sup_store_t *self);
/* Drops the kept look (sup_store_claim_forget). */
void sup_store_look_forget(sup_store_t *self);
/* Drops it and frees its memory (sup_store_destroy). */
void sup_store_look_destroy(sup_store_t *self);

/* The account as one key, whether the CRM stored it as an ObjectId or as
 * its 24-hex string: "hex" for both, the string itself for another string,
 * "" for anything else. */
void sup_store_account_key(const bson_value_t *v, char *out, size_t len);

/* A new filter {_id, claimed_by: owner, claims: epoch} (dip_claim's
 * fence): writes only the holder of this claim may do. The caller destroys
 * it. */
bson_t *sup_store_owned(sup_store_t *self, const bson_value_t *qid,
                        int64_t epoch);

/* Applies update to the one queue document filter (a fence) matches, and
 * destroys both (taken). SUP_STORE_OK; SUP_STORE_EFAIL with "<what> failed:
 * <the driver's sentence>" in err; SUP_STORE_ELOST when the fence matched
 * nothing (dip_claim_lost: the claim is gone). */
int sup_store_update_take(sup_store_t *self, bson_t *filter, bson_t *update,
                          const char *what, char *err, size_t errlen);
/* The same, with the driver's error in *error on SUP_STORE_EFAIL. */
int sup_store_update_take_e(sup_store_t *self, bson_t *filter, bson_t *update,
                            const char *what, bson_error_t *error, char *err,
                            size_t errlen);

#endif
