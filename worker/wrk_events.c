/*
 * wrk_events: ZeroMQ plumbing for the worker. One context, created after
 * exec (ZeroMQ contexts are not fork-safe); the DEALER socket lives on the
 * events thread, which the main thread feeds through an inproc PAIR. Flow
 * control state (bytes sent, acknowledged, the window, the supervisor's
 * last word) is shared under one mutex; the main thread waits on a
 * condition variable the thread signals on every ack.
 */
#include "wrk_events.h"
#include "dip_log.h"
#include "dip_time.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zmq.h>

/* The events thread's stack (it calls only ZeroMQ and libbson). */
#define EVENTS_THREAD_STACK (256u * 1024u)
#define POLL_MS 100
#define LINGER_MS 2000

struct wrk_events {
    void *ctx;
    void *sock;      /* DEALER, used by the thread only */
    void *pipe_main; /* PAIR, main thread's end */
    void *pipe_thr;  /* PAIR, the thread's end */
    pthread_t thread;
    int started;
    char id[64];
    int64_t lease_ms, heartbeat_ms;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    /* under mu */
    int64_t sent, acked, window;
    int gone, quit, control;
};

static int rank(int action)
{
    switch (action) {
    case DIP_CONTROL_CANCEL:
        return 3;
    case DIP_CONTROL_STOP:
        return 2;
    case DIP_CONTROL_PAUSE:
        return 1;
    default:
        return 0;
    }
}

/* A frame from the supervisor: an ack or a control. Anything else is
 * logged and dropped. Returns 1 when it was the supervisor's word. */
static int on_supervisor(wrk_events_t *self, const void *data, size_t len)
{
    dip_msg_t m;
    char err[256];
    if (dip_msg_decode(data, len, &m, err, sizeof(err)) < 0) {
        dip_log(DIP_LOG_WARNING, self->id,
                "dropped a malformed frame from the supervisor: %s", err);
        return 0;
    }
    pthread_mutex_lock(&self->mu);
    if (m.type == DIP_MSG_ACK) {
        if (m.acked > self->acked)
            self->acked = m.acked;
        self->window = m.window;
    } else if (m.type == DIP_MSG_CONTROL) {
        /* cancel > stop > pause: a cancelled import must end cancelled
         * even when the supervisor is also stopping. */
        if (rank((int)m.action) > rank(self->control))
            self->control = (int)m.action;
    }
    pthread_cond_broadcast(&self->cond);
    pthread_mutex_unlock(&self->mu);
    return m.type == DIP_MSG_ACK || m.type == DIP_MSG_CONTROL;
}

/* The main thread's next frame into msg, 1 if one came. The empty frame
 * wrk_events_destroy sends only wakes the thread: it is dropped. */
static int next_frame(wrk_events_t *self, zmq_msg_t *msg)
{
    while (zmq_msg_recv(msg, self->pipe_thr, ZMQ_DONTWAIT) >= 0)
        if (zmq_msg_size(msg) > 0)
            return 1;
    return 0;
}

static void *run(void *arg)
{
    wrk_events_t *self = arg;
    zmq_msg_t pending;
    int has_pending = 0, hello_out = 0, quit = 0;
    int64_t last_heard = 0, next_beat = 0, quit_at = 0;
    bson_t *beat = dip_msg_heartbeat();
    zmq_msg_init(&pending);
    for (;;) {
        zmq_pollitem_t items[2] = {
            {self->sock, 0, ZMQ_POLLIN | (has_pending ? ZMQ_POLLOUT : 0), 0},
            {self->pipe_thr, 0, has_pending ? 0 : ZMQ_POLLIN, 0}};
        int64_t now;
        if (zmq_poll(items, 2, POLL_MS) < 0 && zmq_errno() != EINTR)
            break;
        now = dip_time_mono_ms();
        if (items[0].revents & ZMQ_POLLIN) {
            zmq_msg_t in;
            zmq_msg_init(&in);
            while (zmq_msg_recv(&in, self->sock, ZMQ_DONTWAIT) >= 0) {
                if (on_supervisor(self, zmq_msg_data(&in), zmq_msg_size(&in)))
                    last_heard = now;
            }
            zmq_msg_close(&in);
        }
        /* Forward everything waiting, one poll for many frames. */
        for (int n = 0; n < 1024; n++) {
            if (!has_pending && next_frame(self, &pending))
                has_pending = 1;
            if (!has_pending ||
                zmq_msg_send(&pending, self->sock, ZMQ_DONTWAIT) < 0)
                break;
            has_pending = 0;
            zmq_msg_init(&pending);
            if (!hello_out) {
                /* The lease clock starts with the hello. */
                hello_out = 1;
                last_heard = now;
                next_beat = now + self->heartbeat_ms;
            }
        }
        if (hello_out && beat && now >= next_beat) {
            zmq_send(self->sock, bson_get_data(beat), beat->len, ZMQ_DONTWAIT);
            next_beat = now + self->heartbeat_ms;
        }
        pthread_mutex_lock(&self->mu);
        if (hello_out && !self->gone && now - last_heard > self->lease_ms) {
            self->gone = 1;
            dip_log(DIP_LOG_ERR, self->id,
                    "the supervisor has not answered for %lld ms: it stopped "
                    "reading, stopping without another write",
                    (long long)self->lease_ms);
            pthread_cond_broadcast(&self->cond);
        }
        quit = self->quit;
        pthread_mutex_unlock(&self->mu);
        if (quit) {
            /* Hand over what the main thread sent last (its done), for at
             * most the linger time. */
            if (quit_at == 0)
                quit_at = now;
            if (!has_pending && next_frame(self, &pending))
                has_pending = 1;
            if (!has_pending || now - quit_at > LINGER_MS)
                break;
        }
    }
    zmq_msg_close(&pending);
    bson_destroy(beat);
    return NULL;
}

wrk_events_t *wrk_events_new(const char *endpoint, const char *identity_id,
                             int64_t lease_ms, char *err, size_t errlen)
{
    wrk_events_t *self = calloc(1, sizeof(*self));
    char identity[96], inproc[64];
    int linger = LINGER_MS, zero = 0, sndto = 1000;
    int64_t maxsize = (int64_t)DIP_MSG_MAX_FRAME;
    pthread_attr_t attr;
    int started;
    if (self == NULL)
        return NULL;
    pthread_mutex_init(&self->mu, NULL);
    pthread_cond_init(&self->cond, NULL);
    snprintf(self->id, sizeof(self->id), "%s", identity_id);
    snprintf(identity, sizeof(identity), "deals_import_queue_%s", identity_id);
    snprintf(inproc, sizeof(inproc), "inproc://events-%p", (void *)self);
    self->lease_ms = lease_ms > 1000 ? lease_ms : 1000;
    self->heartbeat_ms = self->lease_ms / 4;
    self->ctx = zmq_ctx_new();
    if (self->ctx == NULL)
        goto fail;
    self->sock = zmq_socket(self->ctx, ZMQ_DEALER);
    self->pipe_main = zmq_socket(self->ctx, ZMQ_PAIR);
    self->pipe_thr = zmq_socket(self->ctx, ZMQ_PAIR);
    /* A supervisor's frame over the limit is refused unread, as the
     * supervisor refuses ours. */
    if (self->sock == NULL || self->pipe_main == NULL ||
        self->pipe_thr == NULL ||
        zmq_setsockopt(self->sock, ZMQ_ROUTING_ID, identity,
                       strlen(identity)) ||
        zmq_setsockopt(self->sock, ZMQ_MAXMSGSIZE, &maxsize, sizeof(maxsize)) ||
        zmq_setsockopt(self->sock, ZMQ_LINGER, &linger, sizeof(linger)) ||
        zmq_setsockopt(self->pipe_main, ZMQ_LINGER, &zero, sizeof(zero)) ||
        zmq_setsockopt(self->pipe_main, ZMQ_SNDTIMEO, &sndto, sizeof(sndto)) ||
        zmq_setsockopt(self->pipe_thr, ZMQ_LINGER, &zero, sizeof(zero)) ||
        zmq_bind(self->pipe_thr, inproc) ||
        zmq_connect(self->pipe_main, inproc) ||
        zmq_connect(self->sock, endpoint))
        goto fail;
    /* The thread only moves frames: a small stack of its own, so that it
     * costs the worker's memory limit little (stacks count against it). */
    if (pthread_attr_init(&attr) != 0)
        goto fail;
    pthread_attr_setstacksize(&attr, EVENTS_THREAD_STACK);
    started = pthread_create(&self->thread, &attr, run, self) == 0;
    pthread_attr_destroy(&attr);
    if (!started)
        goto fail;
    self->started = 1;
    return self;
fail:
    snprintf(err, errlen, "cannot connect to the supervisor at '%s': %s",
             endpoint, zmq_strerror(zmq_errno()));
    wrk_events_destroy(&self);
    return NULL;
}

void wrk_events_destroy(wrk_events_t **self_p)
{
    wrk_events_t *self;
    if (self_p == NULL || *self_p == NULL)
        return;
    self = *self_p;
    if (self->started) {
        pthread_mutex_lock(&self->mu);
        self->quit = 1;
        pthread_mutex_unlock(&self->mu);
        /* Wake the thread now rather than at its next poll timeout: the
         * worker's exit, and its slot, wait on this join. */
        (void)zmq_send(self->pipe_main, "", 0, ZMQ_DONTWAIT);
        pthread_join(self->thread, NULL);
    }
    if (self->pipe_main)
        zmq_close(self->pipe_main);
    if (self->pipe_thr)
        zmq_close(self->pipe_thr);
    if (self->sock)
        zmq_close(self->sock);
    if (self->ctx)
        zmq_ctx_term(self->ctx);
    pthread_cond_destroy(&self->cond);
    pthread_mutex_destroy(&self->mu);
    free(self);
    *self_p = NULL;
}

int wrk_events_send_take(wrk_events_t *self, bson_t *frame)
{
    int rc = WRK_EVENTS_OK;
    if (frame == NULL)
        return WRK_EVENTS_ENOMEM;
    if (frame->len > DIP_MSG_MAX_FRAME) {
        bson_destroy(frame);
        return WRK_EVENTS_ETOOBIG;
    }
    pthread_mutex_lock(&self->mu);
    /* One frame may go whenever nothing is unacknowledged, so a frame
     * larger than the window still gets through. */
    while (!self->gone && self->sent > self->acked &&
           self->sent - self->acked + (int64_t)frame->len > self->window) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&self->cond, &self->mu, &ts);
    }
    if (self->gone)
        rc = WRK_EVENTS_EGONE;
    else
        self->sent += (int64_t)frame->len;
    pthread_mutex_unlock(&self->mu);
    while (rc == WRK_EVENTS_OK &&
           zmq_send(self->pipe_main, bson_get_data(frame), frame->len, 0) < 0) {
        if (zmq_errno() != EAGAIN && zmq_errno() != EINTR) {
            rc = WRK_EVENTS_EGONE;
            break;
        }
        if (wrk_events_gone(self))
            rc = WRK_EVENTS_EGONE;
    }
    bson_destroy(frame);
    return rc;
}

int wrk_events_poll_control(wrk_events_t *self)
{
    int action;
    pthread_mutex_lock(&self->mu);
    action = self->control;
    pthread_mutex_unlock(&self->mu);
    return action;
}

int wrk_events_gone(wrk_events_t *self)
{
    int gone;
    pthread_mutex_lock(&self->mu);
    gone = self->gone;
    pthread_mutex_unlock(&self->mu);
    return gone;
}

int64_t wrk_events_unacked(wrk_events_t *self)
{
    int64_t n;
    pthread_mutex_lock(&self->mu);
    n = self->sent - self->acked;
    pthread_mutex_unlock(&self->mu);
    return n;
}
