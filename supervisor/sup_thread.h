/*
 * sup_thread: stopping a helper thread of the supervisor (the lease renewer,
 * the database sampler) with a bounded wait. Such a thread owns nothing of
 * its caller's: it runs until *stop, and on its way out sets *done and
 * broadcasts wake under lock. A thread blocked in a driver call (the
 * database is away) cannot hear stop; the supervisor is then on its way
 * out and the process's exit ends the thread.
 */
#ifndef SUP_THREAD_H
#define SUP_THREAD_H

#include <pthread.h>
#include <stdint.h>

/* Sets *stop and wakes the thread (both under lock), then waits up to
 * wait_ms for *done. Returns 1 when the thread ended and was joined: its
 * state may be freed. Returns 0 when it did not end in time and was
 * detached: the caller must free nothing the thread still reads (the lock,
 * the condition, the flags, its client) and leave them to the exit. wake
 * must use CLOCK_MONOTONIC (dip_time_mono_deadline). */
int sup_thread_stop(pthread_t thread, pthread_mutex_t *lock,
                    pthread_cond_t *wake, int *stop, const int *done,
                    int64_t wait_ms);

#endif
