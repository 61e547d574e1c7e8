/*
 * wrk_events: the worker's end of the worker-events channel, a ZeroMQ DEALER
 * socket connected to the supervisor's ROUTER with the identity
 * `deals_import_queue_<queueId>` (the import's namespace).
 *
 * The socket belongs to a thread of its own, so the worker keeps talking
 * while its main thread waits on the database, sleeps in a backoff or
 * builds indexes: the thread sends a heartbeat every quarter lease once the
 * hello is out, forwards the main thread's frames in order, and reads the
 * supervisor's acks and controls. Flow control (see dip_msg.h): a send
 * waits while the frames not yet acknowledged reach the supervisor's window.
 * A supervisor that has sent nothing (no ack, no control) for a whole lease
 * after the hello has stopped reading: the channel is then "gone", every
 * send fails at once, and the worker stops without another write.
 */
#ifndef WRK_EVENTS_H
#define WRK_EVENTS_H

#include <stdint.h>

#include "dip_msg.h"

typedef struct wrk_events wrk_events_t;

enum {
    WRK_EVENTS_OK = 0,
    WRK_EVENTS_ENOMEM = -1,  /* an encoder failed: a bug report, not a stop */
    WRK_EVENTS_ETOOBIG = -2, /* the frame is over DIP_MSG_MAX_FRAME */
    WRK_EVENTS_EGONE = -3,   /* the supervisor stopped reading */
};

/* Connects to endpoint (e.g. ipc:///run/dealimport/events.ipc) and starts
 * the thread; lease_ms sets the heartbeat period (a quarter of it) and how
 * long a silent supervisor is waited for. NULL with err filled on failure.
 * identity_id names the import in the identity and in log lines. */
wrk_events_t *wrk_events_new(const char *endpoint, const char *identity_id,
                             int64_t lease_ms, char *err, size_t errlen);
/* Stops the thread; frames already handed over are sent within a short
 * linger. */
void wrk_events_destroy(wrk_events_t **self_p);

/* Sends one frame and destroys it (frame may be NULL: an encoder's
 * allocation failure, WRK_EVENTS_ENOMEM). Waits first while the window is
 * full. Returns a WRK_EVENTS_* code; on ETOOBIG nothing was sent. */
int wrk_events_send_take(wrk_events_t *self, bson_t *frame);

/* Returns the strongest control action received so far and not yet taken
 * (cancel > stop > pause), or 0. Never waits. */
int wrk_events_poll_control(wrk_events_t *self);

/* 1 once the supervisor has been silent for a lease. */
int wrk_events_gone(wrk_events_t *self);

/* Bytes sent and bytes acknowledged so far (for tests and logs). */
int64_t wrk_events_unacked(wrk_events_t *self);

#endif
