/*
 * dip_time: the one monotonic clock of the three programs. Every deadline,
 * lease margin, backoff and timeout is measured on it, never on the wall
 * clock, so a clock step (NTP, an operator's `date`) moves no deadline.
 * Wall-clock times that go into documents are BSON dates from bson's own
 * helpers (dip_bson_iso_time formats them).
 */
#ifndef DIP_TIME_H
#define DIP_TIME_H

#include <stdint.h>
#include <time.h>

/* Milliseconds on CLOCK_MONOTONIC: only differences mean anything. */
int64_t dip_time_mono_ms(void);

/* The CLOCK_MONOTONIC instant ms from now, as pthread_cond_timedwait takes
 * it on a condition whose clock was set to CLOCK_MONOTONIC
 * (pthread_condattr_setclock). */
struct timespec dip_time_mono_deadline(int64_t ms);

#endif
