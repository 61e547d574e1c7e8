/*
 * Tests wrk_events against a ROUTER standing in for the supervisor: the
 * heartbeat goes on while the main thread is busy elsewhere (as in a wait on
 * the database), a send waits while the window is full and goes on at the
 * ack, a supervisor silent for a lease makes the channel gone, frames over
 * the limit are refused unsent, and controls arrive.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zmq.h>

#include "wrk_events.h"
#include "it_tmp.h"

#define QID "64b0000000000000000000aa"

typedef struct fake_sup {
    void *ctx, *router;
    char ep[256];
    pthread_t thread;
    pthread_mutex_t mu;
    int stop, ack, control; /* answer with acks; send this control */
    int64_t received, heartbeats, frames;
    int64_t undecodable; /* frames that are no message (an empty one) */
    int64_t window;
    int acked_first; /* the ack of the first frame after hello went out */
    int first_seen;
} fake_sup_t;

static void send_to(fake_sup_t *f, const void *id, size_t idlen, bson_t *b)
{
    zmq_send(f->router, id, idlen, ZMQ_SNDMORE);
    zmq_send(f->router, bson_get_data(b), b->len, 0);
    bson_destroy(b);
}

static void *serve(void *arg)
{
    fake_sup_t *f = arg;
    char id[128];
    size_t idlen = 0;
    for (;;) {
        zmq_pollitem_t it = {f->router, 0, ZMQ_POLLIN, 0};
        zmq_msg_t body;
        dip_msg_t m;
        char err[256];
        int stop, ack, control;
        pthread_mutex_lock(&f->mu);
        stop = f->stop;
        ack = f->ack;
        control = idlen ? f->control : 0;
        if (idlen)
            f->control = 0;
        pthread_mutex_unlock(&f->mu);
        if (stop)
            break;
        if (control && idlen)
            send_to(f, id, idlen, dip_msg_control(control));
        if (zmq_poll(&it, 1, 50) <= 0)
            continue;
        {
            int n = zmq_recv(f->router, id, sizeof(id), 0);
            if (n < 0)
                continue;
            idlen = (size_t)n;
        }
        zmq_msg_init(&body);
        zmq_msg_recv(&body, f->router, 0);
        if (dip_msg_decode(zmq_msg_data(&body), zmq_msg_size(&body), &m, err,
                           sizeof(err)) == 0) {
            pthread_mutex_lock(&f->mu);
            if (m.type == DIP_MSG_HEARTBEAT) {
                f->heartbeats++;
            } else {
                f->frames++;
                f->received += (int64_t)zmq_msg_size(&body);
            }
            pthread_mutex_unlock(&f->mu);
            if (m.type == DIP_MSG_BATCH && !f->first_seen) {
                /* Hold the ack of the first batch a while: a second
                 * batch over the window must wait for it. */
                f->first_seen = 1;
                usleep(300 * 1000);
                pthread_mutex_lock(&f->mu);
                f->acked_first = 1;
                pthread_mutex_unlock(&f->mu);
            }
            if (ack)
                send_to(f, id, idlen, dip_msg_ack(f->received, f->window));
        } else {
            pthread_mutex_lock(&f->mu);
            f->undecodable++;
            pthread_mutex_unlock(&f->mu);
        }
        zmq_msg_close(&body);
    }
    return NULL;
}

static void fake_start(fake_sup_t *f, int64_t window, int ack)
{
    int zero = 0;
    memset(f, 0, sizeof(*f));
    pthread_mutex_init(&f->mu, NULL);
    f->ack = ack;
    f->window = window;
    snprintf(f->ep, sizeof(f->ep), "ipc://%s/test-wrk-events-%d.ipc",
             it_tmpdir(), (int)getpid());
    f->ctx = zmq_ctx_new();
    f->router = zmq_socket(f->ctx, ZMQ_ROUTER);
    zmq_setsockopt(f->router, ZMQ_LINGER, &zero, sizeof(zero));
    assert_int_equal(zmq_bind(f->router, f->ep), 0);
    assert_int_equal(pthread_create(&f->thread, NULL, serve, f), 0);
}

static void fake_stop(fake_sup_t *f)
{
    pthread_mutex_lock(&f->mu);
    f->stop = 1;
    pthread_mutex_unlock(&f->mu);
    pthread_join(f->thread, NULL);
    zmq_close(f->router);
    zmq_ctx_term(f->ctx);
    pthread_mutex_destroy(&f->mu);
}

static int64_t get(fake_sup_t *f, int64_t *field)
{
    int64_t v;
    pthread_mutex_lock(&f->mu);
    v = *field;
    pthread_mutex_unlock(&f->mu);
    return v;
}

static bson_t *hello(void)
{
    bson_value_t id;
    id.value_type = BSON_TYPE_OID;
    bson_oid_init_from_string(&id.value.v_oid, QID);
    return dip_msg_hello(&id, 1, "owner", 1,
                         "0123456789abcdef0123456789abcdef0123456789abcdef"
                         "0123456789abcdef");
}

static bson_t *batch(void)
{
    bson_t cp = BSON_INITIALIZER;
    bson_t *b;
    char pad[150];
    memset(pad, 'x', sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    BSON_APPEND_UTF8(&cp, "pad", pad);
    b = dip_msg_batch(1, 1, 0, 0, 10, 10, &cp, 0);
    bson_destroy(&cp);
    return b;
}

/* The main thread busy (here: asleep, as in a wait on the database) for
 * three heartbeat periods: the heartbeats still went out. */
static void test_heartbeats_while_busy(void **state)
{
    fake_sup_t f;
    wrk_events_t *ev;
    char err[256];
    (void)state;
    fake_start(&f, 1 << 20, 1);
    ev = wrk_events_new(f.ep, QID, 2000, err, sizeof(err));
    assert_non_null(ev);
    assert_int_equal(wrk_events_send_take(ev, hello()), WRK_EVENTS_OK);
    sleep(2); /* a quarter lease is 500 ms */
    assert_true(get(&f, &f.heartbeats) >= 1);
    assert_false(wrk_events_gone(ev));
    wrk_events_destroy(&ev);
    assert_null(ev);
    fake_stop(&f);
}

/* The last frame sent right before destroy still reaches the supervisor,
 * and the empty frame destroy uses to wake the events thread (so the
 * worker's exit does not wait for the thread's poll timeout) never does. */
static void test_destroy_hands_over_and_wakes(void **state)
{
    fake_sup_t f;
    wrk_events_t *ev;
    char err[256];
    (void)state;
    fake_start(&f, 1 << 20, 1);
    ev = wrk_events_new(f.ep, QID, 10000, err, sizeof(err));
    assert_non_null(ev);
    assert_int_equal(wrk_events_send_take(ev, hello()), WRK_EVENTS_OK);
    assert_int_equal(wrk_events_send_take(ev, batch()), WRK_EVENTS_OK);
    wrk_events_destroy(&ev);
    assert_null(ev);
    for (int i = 0; i < 500 && get(&f, &f.frames) < 2; i++)
        usleep(10 * 1000);
    assert_int_equal(get(&f, &f.frames), 2);
    usleep(100 * 1000); /* room for a stray frame to arrive, were one sent */
    assert_int_equal(get(&f, &f.undecodable), 0);
    fake_stop(&f);
}

/* A send over the window waits for the ack of what is outstanding. */
static void test_window_waits_for_ack(void **state)
{
    fake_sup_t f;
    wrk_events_t *ev;
    char err[256];
    (void)state;
    fake_start(&f, 300, 1);
    ev = wrk_events_new(f.ep, QID, 10000, err, sizeof(err));
    assert_non_null(ev);
    assert_int_equal(wrk_events_send_take(ev, hello()), WRK_EVENTS_OK);
    /* hello acknowledged, then one batch outstanding: the second (two
     * batches are over 300 bytes) goes only after the first's ack */
    assert_int_equal(wrk_events_send_take(ev, batch()), WRK_EVENTS_OK);
    assert_int_equal(wrk_events_send_take(ev, batch()), WRK_EVENTS_OK);
    pthread_mutex_lock(&f.mu);
    assert_int_equal(f.acked_first, 1);
    pthread_mutex_unlock(&f.mu);
    wrk_events_destroy(&ev);
    fake_stop(&f);
}

/* A supervisor that answers nothing for a lease has stopped reading: the
 * channel is gone and sends fail at once. */
static void test_silent_supervisor_is_gone(void **state)
{
    fake_sup_t f;
    wrk_events_t *ev;
    char err[256];
    (void)state;
    fake_start(&f, 1 << 20, 0);
    ev = wrk_events_new(f.ep, QID, 1000, err, sizeof(err));
    assert_non_null(ev);
    assert_int_equal(wrk_events_send_take(ev, hello()), WRK_EVENTS_OK);
    /* the hello is unacknowledged: this send waits, then fails */
    assert_int_equal(wrk_events_send_take(ev, batch()), WRK_EVENTS_EGONE);
    assert_true(wrk_events_gone(ev));
    assert_int_equal(get(&f, &f.frames), 1);
    wrk_events_destroy(&ev);
    fake_stop(&f);
}

static void test_refusals_and_control(void **state)
{
    fake_sup_t f;
    wrk_events_t *ev;
    char err[256];
    bson_t *big = bson_new();
    char *blob = calloc(DIP_MSG_MAX_FRAME, 1);
    (void)state;
    memset(blob, 'a', DIP_MSG_MAX_FRAME - 1);
    BSON_APPEND_UTF8(big, "blob", blob);
    free(blob);
    fake_start(&f, 1 << 20, 1);
    ev = wrk_events_new(f.ep, QID, 10000, err, sizeof(err));
    assert_non_null(ev);
    assert_int_equal(wrk_events_send_take(ev, NULL), WRK_EVENTS_ENOMEM);
    assert_int_equal(wrk_events_send_take(ev, hello()), WRK_EVENTS_OK);
    assert_int_equal(wrk_events_send_take(ev, big), WRK_EVENTS_ETOOBIG);
    pthread_mutex_lock(&f.mu);
    f.control = DIP_CONTROL_PAUSE;
    pthread_mutex_unlock(&f.mu);
    for (int i = 0; i < 100 && wrk_events_poll_control(ev) == 0; i++)
        usleep(50 * 1000);
    assert_int_equal(wrk_events_poll_control(ev), DIP_CONTROL_PAUSE);
    assert_int_equal(get(&f, &f.frames), 1); /* the big one never went */
    wrk_events_destroy(&ev);
    fake_stop(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_heartbeats_while_busy),
        cmocka_unit_test(test_window_waits_for_ack),
        cmocka_unit_test(test_destroy_hands_over_and_wakes),
        cmocka_unit_test(test_silent_supervisor_is_gone),
        cmocka_unit_test(test_refusals_and_control),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
