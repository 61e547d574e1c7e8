/*
 * wrk_events: the worker's end of the worker-events channel, a ZeroMQ DEALER
 * socket connected to the supervisor's ROUTER with the identity
 * `deals_import_queue_<queueId>` (the import's namespace). Sends block for at
 * most a few seconds: a supervisor that stops reading makes the worker stop
 * at a checkpoint rather than run on with nobody recording its results.
 */
#ifndef WRK_EVENTS_H
#define WRK_EVENTS_H

#include "dip_msg.h"

typedef struct wrk_events wrk_events_t;

/* Connects to endpoint (e.g. ipc:///run/dealimport/events.ipc). NULL with err
 * filled on failure. */
wrk_events_t *wrk_events_new(const char *endpoint, const char *queue_id,
                             char *err, size_t errlen);
void wrk_events_destroy(wrk_events_t **self_p);

/* How long a send may wait for a supervisor that does not read (default
 * 30 s): the worker gives up after a lease, so a frozen supervisor's worker
 * does not outlive its claim. */
void wrk_events_set_send_timeout(wrk_events_t *self, int timeout_ms);

/* Sends one frame and frees it (frame may be NULL: an encoder's allocation
 * failure, reported as -ENOMEM). 0 or a negative errno. */
int wrk_events_send_take(wrk_events_t *self, char *frame);

/* Receives pending control messages without waiting. Returns the strongest
 * action seen (cancel > stop > pause) or 0. Malformed frames are logged and
 * dropped. */
int wrk_events_poll_control(wrk_events_t *self);

#endif
