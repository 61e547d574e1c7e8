/*
 * dip_time: CLOCK_MONOTONIC in milliseconds (see dip_time.h).
 */
#include "dip_time.h"

#include <time.h>

int64_t dip_time_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
