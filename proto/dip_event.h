/*
 * dip_event: recording an import's completion event in `import_events`, for
 * the supervisor (an import's end) and dealimportctl (a revert) alike. A
 * record is an upsert keyed by (queue_id, type) that only inserts, so
 * recording the same event again after a crash changes nothing. Delivery is
 * the supervisor's (sup_event).
 *
 * An event document: _id (the event id, also payload.id and the
 * Idempotency-Key), queue_id (the import's id as stored), type, status
 * (held | pending | delivered | failed), created_at, next_attempt_at,
 * expires_at (after which it is given up), attempts [{at, ms, by, http_status,
 * error, answer}], auth {uid, account_id, parent_account, client_id} (the
 * token's claims), payload (the JSON body, ids as text, times as ISO 8601), and
 * while a delivery runs claimed_by and lease_expires_at; delivered_at or reason
 * at the end.
 */
#ifndef DIP_EVENT_H
#define DIP_EVENT_H

#include <stddef.h>

#include <bson/bson.h>
#include <mongoc/mongoc.h>

#define DIP_EVENT_COLLECTION "import_events"

/* The kinds of event, as their `type` says. */
#define DIP_EVENT_COMPLETED "deal_import.completed"
#define DIP_EVENT_FAILED "deal_import.failed"
#define DIP_EVENT_CANCELLED "deal_import.cancelled"
#define DIP_EVENT_DRY_RUN "deal_import.dry_run"
#define DIP_EVENT_REVERTED "deal_import.reverted"

/* The unique index on (queue_id, type) and the one deliveries are claimed
 * by. 0, or -1 with err filled. */
int dip_event_ensure_indexes(mongoc_collection_t *coll, char *err,
                             size_t errlen);

/* Records the event of an import's end in coll: type one of DIP_EVENT_*;
 * queue_doc the import's queue document (ids and file name are taken from
 * it); details fields added to the payload as they are (JSON-friendly:
 * strings, numbers, documents; may be NULL); delivery is tried for max_s
 * seconds. held: recorded with status `held`, which no deliverer claims,
 * until dip_event_release (an import's event waits for its error file).
 * Idempotent. 0, or -1 with err filled. */
int dip_event_record(mongoc_collection_t *coll, const bson_t *queue_doc,
                     const char *type, const bson_t *details, long max_s,
                     int held, char *err, size_t errlen);

/* Releases the held events of the import queue_id (as stored) for
 * delivery now, setting each field of details (may be NULL) in their
 * payload. An event that is not held is left as it is. 0, or -1 with err
 * filled. */
int dip_event_release(mongoc_collection_t *coll, const bson_value_t *queue_id,
                      const bson_t *details, char *err, size_t errlen);

#endif
