/*
 * sup_thread: a helper thread of the supervisor (the lease renewer, the
 * database sampler) and its bounded stop. The owner embeds a sup_thread_t
 * in its own state. The thread runs until stop, which it reads under lock
 * (waiting on wake between rounds); on its way out it calls
 * sup_thread_exit. A thread blocked in a driver call (the database is
 * away) cannot hear stop: sup_thread_stop then detaches it, and the owner,
 * on its way out with the process, frees nothing the thread still reads.
 */
#ifndef SUP_THREAD_H
#define SUP_THREAD_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sup_thread {
    pthread_t thread;
    pthread_mutex_t lock; /* guards stop, done and what the owner says */
    pthread_cond_t wake;  /* on CLOCK_MONOTONIC (dip_time_mono_deadline) */
    int started;          /* the thread runs (sup_thread_start succeeded) */
    int stop;             /* set by sup_thread_stop: end the loop */
    int done;             /* set by sup_thread_exit: the loop has ended */
} sup_thread_t;

/* Makes the lock and the condition; the thread is not started. */
void sup_thread_init(sup_thread_t *t);

/* Starts run(arg). 0, or -1 with err saying "cannot start the WHAT: why". */
int sup_thread_start(sup_thread_t *t, void *(*run)(void *), void *arg,
                     const char *what, char *err, size_t errlen);

/* Called by the thread, lock held: waits ms, or less when stop is set. */
void sup_thread_nap(sup_thread_t *t, int64_t ms);

/* Called by the thread, lock held, as it returns: sets done, wakes the
 * stopper and releases the lock. */
void sup_thread_exit(sup_thread_t *t);

/* Sets stop and wakes the thread, then waits up to wait_ms for done.
 * Returns 1 when no thread runs any more (never started, or ended and
 * joined): the owner may free its state and then sup_thread_fini. Returns
 * 0 when it did not end in time and was detached: the owner must free
 * nothing the thread reads (this structure included) and leave it to the
 * process's exit. */
int sup_thread_stop(sup_thread_t *t, int64_t wait_ms);

/* Destroys the lock and the condition (after a stop that returned 1). */
void sup_thread_fini(sup_thread_t *t);

#endif
