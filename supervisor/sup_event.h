/*
 * sup_event: the completion event the CRM hears when an import ends.
 *
 * An event is stored in `import_events` before the import's final status is
 * written (unique on queue_id + type, so recording it again after a crash
 * changes nothing), then delivered at least once by whichever supervisor
 * claims it: a POST of its JSON payload to DEALIMPORT_NOTIFY_URL with
 * `Authorization: Bearer <token>` (the import's access token, HS256 over
 * APP_SECRET with the seed's claims, one hour, signed afresh for each attempt,
 * `jti` the event id) and `Idempotency-Key: <event id>` on every attempt.
 *
 * Outcomes: a 2xx is delivered; a 4xx other than 408 and 429 is given up at
 * once with the reason recorded; anything else (5xx, 408, 429, a network
 * error, a timeout) is retried with exponential backoff and jitter until
 * DEALIMPORT_NOTIFY_MAX_S after the event was recorded. Every attempt is
 * pushed onto the event's `attempts`.
 *
 * Delivery never blocks the caller's loop: transfers run on libcurl's multi
 * interface, whose sockets the caller polls (sup_event_pollfds) beside its
 * own and hands back to sup_event_run. Database calls are single short
 * round trips, like every other call the supervisor's loop makes.
 *
 * Claims: an event is claimed with a lease (claimed_by, lease_expires_at, by
 * this process's clock); a supervisor that dies mid-delivery leaves an
 * event whose lease runs out, and another (or it, restarted) delivers it
 * again with the same Idempotency-Key. Clock skew between supervisors can
 * only cause such an extra attempt, which the key makes harmless.
 */
#ifndef SUP_EVENT_H
#define SUP_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include <bson/bson.h>
#include <mongoc/mongoc.h>
#include <zmq.h>

#include "dip_config.h"
#include "dip_event.h"
#include "sup_metrics.h"

typedef struct sup_event sup_event_t;

/* At most this many deliveries run at once per supervisor. */
#define SUP_EVENT_MAX_INFLIGHT 8
/* One attempt's limit: a receiver that does not answer in this time is a
 * failed attempt, retried later. */
#define SUP_EVENT_ATTEMPT_TIMEOUT_MS 10000

/* Delivers to cfg->notify_url; without one it records and sends nothing.
 * client is borrowed and must outlive self; db names the database; owner is
 * this supervisor's claimed_by. NULL with err filled on failure. */
sup_event_t *sup_event_new(const dip_config_t *cfg, mongoc_client_t *client,
                           const char *db, const char *owner, char *err,
                           size_t errlen);
void sup_event_destroy(sup_event_t **self_p);
/* Counts each attempt's outcome in metrics (borrowed, may be NULL). */
void sup_event_set_metrics(sup_event_t *self, sup_metrics_t *metrics);

/* The unique index on (queue_id, type) and the one deliveries are claimed
 * by. */
int sup_event_ensure_indexes(sup_event_t *self, char *err, size_t errlen);

/* Records the event of an import's end: type one of DIP_EVENT_*; queue_doc
 * the import's queue document (ids and file name are taken from it);
 * details a document of fields added to the payload as they are (counts,
 * error_file, error, timestamps), may be NULL. Idempotent: a second call
 * for the same import and type leaves the first event as it was. Returns 0
 * or negative with err filled. */
int sup_event_record(sup_event_t *self, const bson_t *queue_doc,
                     const char *type, const bson_t *details, int held,
                     char *err, size_t errlen);

/* Fills items (room for max) with the sockets libcurl waits on, as fd
 * poll items for zmq_poll; returns how many. *timeout_ms (-1: none yet) is
 * lowered to when sup_event_run must next be called. */
size_t sup_event_pollitems(sup_event_t *self, zmq_pollitem_t *items, size_t max,
                           long *timeout_ms);

/* Moves transfers on, records the attempts that ended, and claims due
 * events while there is room. now_ms is wall-clock milliseconds (event times
 * are dates). Never waits on the network; its database calls are single
 * round trips. -1 after a database error (the caller pauses its calls). */
int sup_event_run(sup_event_t *self, int64_t now_ms);

/* Deliveries in flight. */
size_t sup_event_inflight(const sup_event_t *self);

/* Waits (up to timeout_ms) for deliveries in flight to end and records
 * them; for shutdown and tests. */
void sup_event_drain(sup_event_t *self, long timeout_ms);

/* The backoff before attempt n+1 after n failed attempts (n >= 1): 2 s
 * doubling, capped at an hour, +-25% jitter from rnd (0..1). */
int64_t sup_event_backoff_ms(int attempts, double rnd);

/* 1 when an HTTP status ends delivery for good (a 4xx other than 408 and
 * 429), 0 when it is worth retrying; 2xx is delivered and not asked. */
int sup_event_gives_up(long http_status);

#endif
