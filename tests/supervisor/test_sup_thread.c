/* sup_thread: a thread that hears stop is joined; one that cannot hear it
 * (blocked elsewhere, as in a driver call to a database that is away) is
 * detached after the bounded wait and its state left alone.
 * Failure classes: the database away is the blocked thread (detached, the
 * caller frees nothing); a stop asked twice or after the end is the
 * "already done" case (joined at once). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <time.h>

#include "dip_time.h"
#include "sup_thread.h"

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int stop, done;
    /* The blocked case: the thread waits for release, not for stop. */
    int blocked, release;
    pthread_cond_t released;
} helper_t;

static void *run(void *arg)
{
    helper_t *h = arg;
    pthread_mutex_lock(&h->lock);
    if (h->blocked) {
        while (!h->release)
            pthread_cond_wait(&h->released, &h->lock);
    } else {
        while (!h->stop)
            pthread_cond_wait(&h->wake, &h->lock);
    }
    h->done = 1;
    pthread_cond_broadcast(&h->wake);
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

static void init(helper_t *h, int blocked)
{
    pthread_condattr_t ca;
    h->stop = h->done = h->release = 0;
    h->blocked = blocked;
    pthread_mutex_init(&h->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&h->wake, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&h->released, NULL);
}

static void fini(helper_t *h)
{
    pthread_cond_destroy(&h->released);
    pthread_cond_destroy(&h->wake);
    pthread_mutex_destroy(&h->lock);
}

static void test_listening_thread_is_joined(void **state)
{
    helper_t h;
    pthread_t t;
    (void)state;
    init(&h, 0);
    assert_int_equal(pthread_create(&t, NULL, run, &h), 0);
    assert_int_equal(
        sup_thread_stop(t, &h.lock, &h.wake, &h.stop, &h.done, 5000), 1);
    assert_int_equal(h.stop, 1);
    assert_int_equal(h.done, 1);
    fini(&h);
}

static void test_ended_thread_is_joined(void **state)
{
    helper_t h;
    pthread_t t;
    (void)state;
    init(&h, 0);
    h.stop = 1; /* it ends on its own before anyone asks */
    assert_int_equal(pthread_create(&t, NULL, run, &h), 0);
    pthread_mutex_lock(&h.lock);
    while (!h.done)
        pthread_cond_wait(&h.wake, &h.lock);
    pthread_mutex_unlock(&h.lock);
    assert_int_equal(sup_thread_stop(t, &h.lock, &h.wake, &h.stop, &h.done, 0),
                     1);
    fini(&h);
}

static void test_blocked_thread_is_detached(void **state)
{
    static helper_t h; /* outlives the call: the detached thread reads it */
    pthread_t t;
    (void)state;
    init(&h, 1);
    assert_int_equal(pthread_create(&t, NULL, run, &h), 0);
    assert_int_equal(sup_thread_stop(t, &h.lock, &h.wake, &h.stop, &h.done, 50),
                     0);
    assert_int_equal(h.stop, 1);
    /* Let it go and see it end on its own (it was detached, not joined). */
    pthread_mutex_lock(&h.lock);
    assert_int_equal(h.done, 0);
    h.release = 1;
    pthread_cond_broadcast(&h.released);
    while (!h.done)
        pthread_cond_wait(&h.wake, &h.lock);
    pthread_mutex_unlock(&h.lock);
    assert_int_equal(h.done, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_listening_thread_is_joined),
        cmocka_unit_test(test_ended_thread_is_joined),
        cmocka_unit_test(test_blocked_thread_is_detached),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
