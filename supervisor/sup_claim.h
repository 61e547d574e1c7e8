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

/* What an error of the claim's findAndModify (error domain and code, as
 * libmongoc's error API 2 gives them) says. */
typedef enum {
    /* The database is away or busy (dip_mongo_is_transient; anything that
     * is not the server's answer): claiming pauses. */
    SUP_CLAIM_ERR_DATABASE,
    /* A lost race: the slot is held by a running import (11000 on the
     * unique index of running slots) or the write conflicted (112): the
     * next slot, or the next look, will do. */
    SUP_CLAIM_ERR_RACE,
    /* The server refused this document's update for a reason of its own
     * (14 TypeMismatch on `claims`, 17419 or 10334 too large, 2 BadValue,
     * ...): that document ends alone, the others are claimed. */
    SUP_CLAIM_ERR_DOCUMENT,
} sup_claim_err_t;
sup_claim_err_t sup_claim_error_rule(uint32_t domain, uint32_t code);

/* How long a document that the claim could not take and that could not be
 * marked failed is set aside after its tries-th refusal (1, 2, ...): a
 * minute, doubling, at most an hour. */
#define SUP_CLAIM_ASIDE_FIRST_MS 60000
#define SUP_CLAIM_ASIDE_MAX_MS 3600000
int64_t sup_claim_aside_ms(int tries);

/* Documents set aside (by their _id as stored) until their time. */
typedef struct sup_claim_aside {
    bson_value_t id; /* owned copy */
    int64_t until_ms;
    int tries;
} sup_claim_aside_t;

/* Sets id aside at now_ms in a table of *n entries (room max): its entry
 * has one more try and a new time, or a new entry is made, or, the table
 * full, the entry due soonest gives way. Returns the entry. */
sup_claim_aside_t *sup_claim_set_aside(sup_claim_aside_t *aside, size_t *n,
                                       size_t max, const bson_value_t *id,
                                       int64_t now_ms);

#endif
