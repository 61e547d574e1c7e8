/*
 * sup_watch: pickup on change. A change stream on `queues` that wakes the
 * supervisor's loop the moment a deals import turns claimable: an insert, a
 * replace, or an update that touches `status` or `in_progress`, after which
 * the document (fullDocument: updateLookup) is a deals import, `pending`,
 * and not `in_progress`. The watcher only wakes; the claim stays the loop's
 * one atomic findAndModify, so several supervisors may all wake for one
 * change and exactly one of them claims it. The poll stays the sweep for
 * what a stream cannot see (expired leases) and the fallback while there is
 * no stream.
 *
 * Where it runs: a thread of its own with a client of its own (a
 * mongoc_client_t serves one thread), blocked in mongoc_change_stream_next
 * for at most await_ms at a time. It wakes the loop through an eventfd that
 * the loop polls next to its ZeroMQ sockets and signalfd: a plain fd needs no
 * ZeroMQ context shared across threads, and the counter coalesces a burst of
 * changes into one readable fd and one claim round. The loop never waits for
 * the database on the watcher's account: sup_watch_take only reads the
 * eventfd (non-blocking).
 *
 * Failures, each said once (not per retry):
 * - a server without change streams (a standalone, code 40573): "no change
 *   streams: picking up by polling alone", and the thread ends; the loop
 *   keeps polling as it always did;
 * - any other error (network, a frozen or stepped-down server): "change
 *   stream failed ...: polling meanwhile", then retries with backoff (250 ms
 *   doubled to 30 s, +-25% jitter), resuming after the last resume token
 *   (an event's _id or a batch's postBatchResumeToken), so no change in
 *   between is missed; "change stream resumed" once it runs again;
 * - a token the server's history no longer holds (ChangeStreamHistoryLost
 *   286, ChangeStreamFatalError 280, InvalidResumeToken 260, an invalidate
 *   after `queues` was dropped), or an event too large to return
 *   (BSONObjectTooLarge 10334; the stream projects events down to a few
 *   fields so a queue document near 16 MiB does not make one): the token is
 *   dropped, the stream reopened
 *   from now, and the loop woken, because changes may have been missed: its
 *   next claim round is the sweep that finds them.
 * Stopping waits for the thread: at most await_ms (the stream's await), or a
 * call in flight bounded by the client's timeouts (derived from the lease).
 */
#ifndef SUP_WATCH_H
#define SUP_WATCH_H

#include <stdint.h>

#include <bson/bson.h>

#include "dip_config.h"

typedef struct sup_watch sup_watch_t;

/* What the watcher is doing, for logs and metrics. */
typedef enum sup_watch_state {
    SUP_WATCH_STARTING = 0, /* opening the stream */
    SUP_WATCH_STREAMING,    /* a stream is open: changes wake the loop */
    SUP_WATCH_RETRYING,     /* the stream failed: polling meanwhile */
    SUP_WATCH_UNSUPPORTED,  /* the server has no change streams: polling */
    SUP_WATCH_STOPPED,
} sup_watch_state_t;

/* What to do after an error of the stream (a pure decision). */
typedef enum sup_watch_verdict {
    SUP_WATCH_RESUME,  /* transient: back off, reopen after the token */
    SUP_WATCH_RESTART, /* the token is useless: reopen from now, and wake
                          the loop for a sweep */
    SUP_WATCH_GIVE_UP, /* the server has no change streams */
} sup_watch_verdict_t;

/* The verdict for an error of mongoc_change_stream_next or of opening the
 * stream: domain and code as libmongoc reports them (error API version 2:
 * server errors carry the server's code in MONGOC_ERROR_SERVER). */
sup_watch_verdict_t sup_watch_classify(uint32_t domain, uint32_t code);

/* Starts watching cfg's database's `queues` on a thread with a client of its
 * own, whose timeouts derive from budget_ms (as the store's; 0: the URI's).
 * await_ms: the stream's maxAwaitTimeMS (at most this long to stop; 1000 is
 * a good value). NULL with err filled when the thread or the eventfd cannot
 * be made or the URI is malformed; nothing about the server is known yet
 * (a server without streams is said by the thread, once). */
sup_watch_t *sup_watch_new(const dip_config_t *cfg, long budget_ms,
                           long await_ms, char *err, size_t errlen);

/* Stops the thread (waits for it, see above) and frees everything. Accepts
 * NULL; sets *self_p to NULL. */
void sup_watch_destroy(sup_watch_t **self_p);

/* The eventfd to poll for reading (ZMQ_POLLIN with a zmq_pollitem_t's fd):
 * readable when a change came since the last sup_watch_take. Owned by the
 * watcher. */
int sup_watch_fd(const sup_watch_t *self);

/* How many wakes came since the last call (0: none), and clears them; never
 * blocks. A count > 0 means: claim now. */
uint64_t sup_watch_take(sup_watch_t *self);

/* The watcher's state now. */
sup_watch_state_t sup_watch_state(sup_watch_t *self);

#endif
