/*
 * sup_thread: the bounded stop-and-join of a helper thread (sup_thread.h).
 */
#include "sup_thread.h"
#include "dip_time.h"

#include <errno.h>
#include <time.h>

int sup_thread_stop(pthread_t thread, pthread_mutex_t *lock,
                    pthread_cond_t *wake, int *stop, const int *done,
                    int64_t wait_ms)
{
    struct timespec ts;
    int joined;
    pthread_mutex_lock(lock);
    *stop = 1;
    pthread_cond_broadcast(wake);
    ts = dip_time_mono_deadline(wait_ms);
    while (!*done && pthread_cond_timedwait(wake, lock, &ts) != ETIMEDOUT)
        ;
    joined = *done;
    pthread_mutex_unlock(lock);
    if (!joined) {
        pthread_detach(thread);
        return 0;
    }
    pthread_join(thread, NULL);
    return 1;
}
