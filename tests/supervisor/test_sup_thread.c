/* sup_thread: a thread that hears stop is joined; one that cannot hear it
 * (blocked elsewhere, as in a driver call to a database that is away) is
 * detached after the bounded wait, its state left alone; one never started
 * needs no stop. Outcomes only: what stop returns and the flags it leaves.
 * Failure classes: the database away is the blocked thread (detached, the
 * owner frees nothing); a failed start leaves started 0 and the owner's
 * destroy path stops nothing; a stop after the thread ended on its own is
 * joined at once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>

#include "sup_thread.h"

typedef struct {
    sup_thread_t t;
    /* The blocked case: the thread waits for release, not for stop. */
    int blocked, release;
    pthread_cond_t released;
} helper_t;

/* A helper's loop: naps until stop (or, blocked, waits for release). */
static void *run(void *arg)
{
    helper_t *h = arg;
    pthread_mutex_lock(&h->t.lock);
    if (h->blocked) {
        while (!h->release)
            pthread_cond_wait(&h->released, &h->t.lock);
    } else {
        while (!h->t.stop)
            sup_thread_nap(&h->t, 60000);
    }
    sup_thread_exit(&h->t);
    return NULL;
}

static void init(helper_t *h, int blocked)
{
    h->blocked = blocked;
    h->release = 0;
    sup_thread_init(&h->t);
    pthread_cond_init(&h->released, NULL);
}

static void test_listening_thread_is_joined(void **state)
{
    helper_t h;
    char err[128] = "";
    (void)state;
    init(&h, 0);
    assert_int_equal(
        sup_thread_start(&h.t, run, &h, "helper", err, sizeof(err)), 0);
    assert_string_equal(err, "");
    assert_int_equal(h.t.started, 1);
    /* 60 s of nap, cut short by stop; the bound is far away. */
    assert_int_equal(sup_thread_stop(&h.t, 60000), 1);
    assert_int_equal(h.t.stop, 1);
    assert_int_equal(h.t.done, 1);
    assert_int_equal(h.t.started, 0);
    /* A second stop finds nothing running. */
    assert_int_equal(sup_thread_stop(&h.t, 0), 1);
    pthread_cond_destroy(&h.released);
    sup_thread_fini(&h.t);
}

static void test_never_started_needs_no_stop(void **state)
{
    helper_t h;
    (void)state;
    init(&h, 0);
    assert_int_equal(sup_thread_stop(&h.t, 0), 1);
    assert_int_equal(h.t.done, 0);
    pthread_cond_destroy(&h.released);
    sup_thread_fini(&h.t);
}

static void test_ended_thread_is_joined(void **state)
{
    helper_t h;
    char err[128];
    (void)state;
    init(&h, 0);
    h.t.stop = 1; /* it ends on its own before anyone asks */
    assert_int_equal(
        sup_thread_start(&h.t, run, &h, "helper", err, sizeof(err)), 0);
    pthread_mutex_lock(&h.t.lock);
    while (!h.t.done)
        pthread_cond_wait(&h.t.wake, &h.t.lock);
    pthread_mutex_unlock(&h.t.lock);
    assert_int_equal(sup_thread_stop(&h.t, 0), 1);
    pthread_cond_destroy(&h.released);
    sup_thread_fini(&h.t);
}

static void test_blocked_thread_is_detached(void **state)
{
    static helper_t h; /* outlives the call: the detached thread reads it */
    char err[128];
    (void)state;
    init(&h, 1);
    assert_int_equal(
        sup_thread_start(&h.t, run, &h, "helper", err, sizeof(err)), 0);
    assert_int_equal(sup_thread_stop(&h.t, 50), 0);
    assert_int_equal(h.t.stop, 1);
    /* Let it go and see it end on its own (it was detached, not joined). */
    pthread_mutex_lock(&h.t.lock);
    assert_int_equal(h.t.done, 0);
    h.release = 1;
    pthread_cond_broadcast(&h.released);
    while (!h.t.done)
        pthread_cond_wait(&h.t.wake, &h.t.lock);
    pthread_mutex_unlock(&h.t.lock);
    assert_int_equal(h.t.done, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_listening_thread_is_joined),
        cmocka_unit_test(test_never_started_needs_no_stop),
        cmocka_unit_test(test_ended_thread_is_joined),
        cmocka_unit_test(test_blocked_thread_is_detached),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
