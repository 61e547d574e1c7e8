/*
 * dip_claim: the filters every leased claim in the database is made of, in
 * one place. A claim is a document field holding a date (the lease): a
 * process takes the document with one atomic update whose filter says
 * "lease absent or expired" and whose $set moves the lease to now + d and
 * names the owner; while the lease runs no other process can take it. Every
 * later write that only the holder may make carries a fence (the document's
 * _id, the owner and, where claims are counted, the epoch): a holder whose
 * claim is gone matches nothing and changes nothing, and dip_claim_lost
 * tells it so. Used for queues (sup_store), the import log's repair
 * (log_lease), completion events (sup_event) and follow-ups (sup_followup).
 * Pure: builds BSON, does no I/O; the dates are the caller's (epoch ms).
 */
#ifndef DIP_CLAIM_H
#define DIP_CLAIM_H

#include <stdint.h>

#include <bson/bson.h>

/* Appends `$or: [{lease: {$exists: false}}, {lease: {$lt: now_ms}}]` to
 * query: the document is free to claim. A filter holds one top-level $or;
 * the caller's other conditions go beside it. */
void dip_claim_append_free(bson_t *query, const char *lease, int64_t now_ms);

/* Appends `lease: {$not: {$gte: now_ms}}` to doc: no lease that still
 * holds. A lease that ran out, and one that is no date at all (absent,
 * null, a string: written by hand or by an older version, never renewed by
 * anyone), which would otherwise hold its document, and whatever it holds
 * (an account's slot), for ever. */
void dip_claim_append_expired(bson_t *doc, const char *lease, int64_t now_ms);

/* Appends to a $set document: lease = now_ms + duration_ms and, when
 * owner_field is not NULL, owner_field = owner. */
void dip_claim_append_take(bson_t *set, const char *lease, int64_t now_ms,
                           int64_t duration_ms, const char *owner_field,
                           const char *owner);

/* Appends the fence to filter: `_id: id, owner_field: owner`, and
 * `claims: epoch` when epoch >= 0 (the claim counter after the claim). */
void dip_claim_append_fence(bson_t *filter, const bson_value_t *id,
                            const char *owner_field, const char *owner,
                            int64_t epoch);

/* 1 when an update's reply says its filter matched no document: under a
 * fence, the claim is gone (another owner or epoch, or no document). 0
 * when it matched, or the reply says nothing of it. */
int dip_claim_lost(const bson_t *reply);

#endif
