/*
 * wrk_events: ZeroMQ plumbing for the worker. One context, one DEALER
 * socket, created after exec (ZeroMQ contexts are not fork-safe).
 */
#include "wrk_events.h"
#include "dip_log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#define SEND_TIMEOUT_MS 30000

struct wrk_events {
    void *ctx;
    void *sock;
    char queue_id[25];
};

wrk_events_t *wrk_events_new(const char *endpoint, const char *queue_id,
                             char *err, size_t errlen)
{
    wrk_events_t *self = calloc(1, sizeof(*self));
    char identity[64];
    int timeout = SEND_TIMEOUT_MS, linger = 2000;
    if (self == NULL)
        return NULL;
    snprintf(self->queue_id, sizeof(self->queue_id), "%s", queue_id);
    snprintf(identity, sizeof(identity), "deals_import_queue_%s", queue_id);
    self->ctx = zmq_ctx_new();
    if (self->ctx == NULL)
        goto fail;
    self->sock = zmq_socket(self->ctx, ZMQ_DEALER);
    if (self->sock == NULL ||
        zmq_setsockopt(self->sock, ZMQ_ROUTING_ID, identity,
                       strlen(identity)) ||
        zmq_setsockopt(self->sock, ZMQ_SNDTIMEO, &timeout, sizeof(timeout)) ||
        zmq_setsockopt(self->sock, ZMQ_LINGER, &linger, sizeof(linger)) ||
        zmq_connect(self->sock, endpoint))
        goto fail;
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
    if (self->sock)
        zmq_close(self->sock);
    if (self->ctx)
        zmq_ctx_term(self->ctx);
    free(self);
    *self_p = NULL;
}

void wrk_events_set_send_timeout(wrk_events_t *self, int timeout_ms)
{
    zmq_setsockopt(self->sock, ZMQ_SNDTIMEO, &timeout_ms, sizeof(timeout_ms));
}

int wrk_events_send_take(wrk_events_t *self, char *frame)
{
    int rc = 0;
    if (frame == NULL)
        return -ENOMEM;
    while (zmq_send(self->sock, frame, strlen(frame), 0) < 0) {
        if (zmq_errno() == EINTR)
            continue;
        rc = -zmq_errno();
        dip_log(DIP_LOG_ERR, self->queue_id,
                "cannot send to the supervisor: %s", zmq_strerror(-rc));
        {
            /* It does not read: lingering on exit only keeps this
             * worker alive beside a new owner's. */
            int zero = 0;
            zmq_setsockopt(self->sock, ZMQ_LINGER, &zero, sizeof(zero));
        }
        break;
    }
    free(frame);
    return rc;
}

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

int wrk_events_poll_control(wrk_events_t *self)
{
    int strongest = 0;
    for (;;) {
        zmq_msg_t frame;
        dip_msg_t m;
        char err[256];
        int n;
        zmq_msg_init(&frame);
        n = zmq_msg_recv(&frame, self->sock, ZMQ_DONTWAIT);
        if (n < 0) {
            zmq_msg_close(&frame);
            break;
        }
        if (dip_msg_decode(zmq_msg_data(&frame), zmq_msg_size(&frame), &m, err,
                           sizeof(err)) == 0) {
            /* cancel > stop > pause: a cancelled import must end
             * cancelled even when the supervisor is also stopping. */
            if (m.type == DIP_MSG_CONTROL &&
                rank((int)m.action) > rank(strongest))
                strongest = (int)m.action;
            dip_msg_release(&m);
        } else {
            dip_log(DIP_LOG_WARNING, self->queue_id,
                    "dropped a malformed control frame: %s", err);
        }
        zmq_msg_close(&frame);
    }
    return strongest;
}
