/*
 * sup_notify: systemd's readiness and watchdog protocol (sd_notify) without
 * libsystemd. Each message is one datagram of NEWLINE-separated assignments
 * ("READY=1") sent to the AF_UNIX socket named by NOTIFY_SOCKET, a file system
 * path or, with a leading '@', an abstract name. Without NOTIFY_SOCKET (not
 * started by systemd, or Type= is not notify) every call does nothing and
 * returns 0, so the supervisor calls them unconditionally.
 */
#ifndef SUP_NOTIFY_H
#define SUP_NOTIFY_H

#include <stdint.h>

typedef struct sup_notify sup_notify_t;

/* Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID once. Returns NULL only
 * when out of memory. An unusable NOTIFY_SOCKET (relative, too long) makes the
 * senders fail with -EINVAL, so the caller logs it on the first one. */
sup_notify_t *sup_notify_new(void);
void sup_notify_destroy(sup_notify_t **self_p);

/* 1 when NOTIFY_SOCKET is set, 0 otherwise. */
int sup_notify_enabled(const sup_notify_t *self);

/* Each sends one message and returns 0 or a negative errno (-EINVAL for an
 * unusable NOTIFY_SOCKET, the sendto() errno otherwise). self may be NULL:
 * then nothing is sent. */
int sup_notify_ready(sup_notify_t *self);    /* "READY=1" */
int sup_notify_stopping(sup_notify_t *self); /* "STOPPING=1" */
int sup_notify_watchdog(sup_notify_t *self); /* "WATCHDOG=1" */
/* "STATUS=<text>", the line `systemctl status` shows; newlines in the text
 * become spaces. */
int sup_notify_status(sup_notify_t *self, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The watchdog interval systemd expects pings within (WatchdogSec=): returns
 * 1 with *usec set when it applies to this process (WATCHDOG_USEC set, and
 * WATCHDOG_PID unset or equal to getpid()), 0 with *usec = 0 when it does not
 * or NOTIFY_SOCKET is unset, -EINVAL when WATCHDOG_USEC or WATCHDOG_PID is
 * malformed. Ping at half the interval. */
int sup_notify_watchdog_usec(const sup_notify_t *self, uint64_t *usec);

#endif
