/*
 * sup_claim: the loop's rules for claiming, apart from the claim itself
 * (sup_store_claim): which accounts are at their per-account limit and so
 * skipped, and the memory of when each account was last served, which the
 * store's fair order reads. Facts in, result out, no I/O and no clock;
 * tests/supervisor/test_sup_claim.c pins them. sup_claim.c's loop side
 * (sup_claim_run, in sup_loop_priv.h) claims while slots are free and the
 * database answers.
 */
#ifndef SUP_CLAIM_H
#define SUP_CLAIM_H

#include <stddef.h>
#include <stdint.h>

#include <bson/bson.h>

#include "sup_store.h"

/* The accounts of busy (the account of each slot in use, one entry per
 * slot) that hold per_account slots or more, each once, at most max of
 * them, into skip. Returns how many. */
size_t sup_claim_full_accounts(const bson_oid_t *busy, size_t nbusy,
                               long per_account, bson_oid_t *skip, size_t max);

/* Notes that account was served at now_ms in served (*n entries of room
 * max): its entry is updated, or a new one added, or, the table full, the
 * least recently served entry gives way. */
void sup_claim_note_served(sup_store_served_t *served, size_t *n, size_t max,
                           const bson_oid_t *account, int64_t now_ms);

#endif
