/*
 * dip_exit: the exit statuses that more than one program must agree on.
 * The worker exits with these and the supervisor decides by them; the
 * command-line programs share the usage and configuration codes (sysexits.h
 * numbering, so systemd and shell scripts read them the usual way).
 */
#ifndef DIP_EXIT_H
#define DIP_EXIT_H

enum {
    DIP_EXIT_OK = 0,      /* the worker: a `done` message says how it ended */
    DIP_EXIT_REFUSED = 1, /* dealimportctl: the supervisor said no */
    DIP_EXIT_GAVE_UP = 2, /* the supervisor's follow-up child: done, with a
                             step given up (recorded on csv_imports) */
    DIP_EXIT_USAGE = 64,  /* bad arguments */
    DIP_EXIT_UNAVAILABLE = 69, /* dealimportctl: no supervisor answered */
    DIP_EXIT_NOMEM = 70,       /* the worker ran out of memory (its limit) */
    DIP_EXIT_TEMPFAIL = 75,    /* the worker checkpointed; resume later */
    DIP_EXIT_FENCED = 76,      /* the worker's claim is gone: it stopped
                                  without another write */
    DIP_EXIT_NOPERM = 77,      /* dealimportctl: this user may not use the
                                  control socket (EX_NOPERM) */
    DIP_EXIT_CONFIG = 78,      /* a missing or malformed setting */
    DIP_EXIT_EXEC = 127,       /* the worker binary could not be started */
};

#endif
