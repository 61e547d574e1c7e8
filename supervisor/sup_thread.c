/*
 * sup_thread: a helper thread and its bounded stop (sup_thread.h).
 */
#include "sup_thread.h"
#include "dip_time.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

void sup_thread_init(sup_thread_t *t)
{
    pthread_condattr_t ca;
    t->started = t->stop = t->done = 0;
    pthread_mutex_init(&t->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->wake, &ca);
    pthread_condattr_destroy(&ca);
}

int sup_thread_start(sup_thread_t *t, void *(*run)(void *), void *arg,
                     const char *what, char *err, size_t errlen)
{
    int rc = pthread_create(&t->thread, NULL, run, arg);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the %s: %s", what, strerror(rc));
        return -1;
    }
    t->started = 1;
    return 0;
}

void sup_thread_nap(sup_thread_t *t, int64_t ms)
{
    struct timespec ts = dip_time_mono_deadline(ms);
    while (!t->stop &&
           pthread_cond_timedwait(&t->wake, &t->lock, &ts) != ETIMEDOUT)
        ;
}

void sup_thread_exit(sup_thread_t *t)
{
    t->done = 1;
    pthread_cond_broadcast(&t->wake);
    pthread_mutex_unlock(&t->lock);
}

int sup_thread_stop(sup_thread_t *t, int64_t wait_ms)
{
    struct timespec ts;
    int joined;
    if (!t->started)
        return 1;
    pthread_mutex_lock(&t->lock);
    t->stop = 1;
    pthread_cond_broadcast(&t->wake);
    ts = dip_time_mono_deadline(wait_ms);
    while (!t->done &&
           pthread_cond_timedwait(&t->wake, &t->lock, &ts) != ETIMEDOUT)
        ;
    joined = t->done;
    pthread_mutex_unlock(&t->lock);
    if (!joined) {
        pthread_detach(t->thread);
        return 0;
    }
    pthread_join(t->thread, NULL);
    t->started = 0;
    return 1;
}

void sup_thread_fini(sup_thread_t *t)
{
    pthread_cond_destroy(&t->wake);
    pthread_mutex_destroy(&t->lock);
}
