/*
 * sup_nofile: the supervisor's own descriptor budget. systemd starts a
 * unit with a soft limit of 1024 descriptors (and a hard one far above),
 * so that programs written for select() keep working; a program that
 * needs more raises its soft limit itself. The supervisor does: one
 * budget serves its control sockets (where every connection, finished
 * handshake or not, holds a descriptor for up to SUP_CTL_HANDSHAKE_MS),
 * its metrics listener, its database pool, the change stream and the
 * pipes of every worker and follow-up; a flood of handshakes that spent
 * 1024 of them left the rest without any, and libzmq aborts the process
 * when an ipc accept finds none. Nothing here uses select(); the children
 * get their own limits (sup_spawn_opts_t.nofile), so the raise stays in
 * this process.
 */
#ifndef SUP_NOFILE_H
#define SUP_NOFILE_H

#include <stddef.h>
#include <sys/resource.h>

/* The soft limit the supervisor wants: enough for a flood of 2,000
 * connection attempts a second held for the handshake's bound (about
 * 10,000 descriptors), and no more, since each held connection also
 * holds a few KiB of libzmq's memory. */
#define SUP_NOFILE_WANT 16384

/* The soft limit to set, given the current soft and hard limits: raised
 * to SUP_NOFILE_WANT, or to hard when that is lower; never lowered (an
 * operator's LimitNOFILE= above it stands). Pure. */
rlim_t sup_nofile_target(rlim_t soft, rlim_t hard);

/* Raises this process's soft RLIMIT_NOFILE to sup_nofile_target. 1 when
 * raised (from and to filled), 0 when left as it was, -1 with a sentence
 * in err. */
int sup_nofile_raise(rlim_t *from, rlim_t *to, char *err, size_t errlen);

#endif
