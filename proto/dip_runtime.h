/*
 * dip_runtime: whether a runtime folder may be trusted with the sockets
 * that carry every tenant's rows and the operators' control frames. The
 * folder is never trusted as found: the /tmp fallback
 * (/tmp/dealimport-<uid>) has a name anyone can guess and a parent anyone
 * can write, so a neighbour could make it first and listen in it.
 *
 * The supervisor (DIP_RUNTIME_OWNER) trusts a folder that is its own, is
 * no symbolic link, and that neither its group nor others may write.
 * dealimportctl (DIP_RUNTIME_PEER) talks to a supervisor that may run as
 * another user (the service's, in /run/dealimport), so it trusts a folder
 * that neither its group nor others may write and that is its caller's,
 * root's, or in a parent that neither group nor others may write: one that
 * belongs to a stranger in a folder anyone may write (/tmp) is refused.
 */
#ifndef DIP_RUNTIME_H
#define DIP_RUNTIME_H

#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

typedef enum {
    DIP_RUNTIME_OWNER, /* the supervisor: the folder must be its own */
    DIP_RUNTIME_PEER   /* the ctl: a folder that another user could make */
} dip_runtime_role_t;

/* The decision alone, on the folder's lstat (dir) and its parent's stat
 * (parent), for a caller of effective uid me: NULL when trusted, else the
 * reason, written into why (a fragment after the folder's quoted name,
 * e.g. "is writable by others (mode 0777)"). */
const char *dip_runtime_verdict(const struct stat *dir,
                                const struct stat *parent, uid_t me,
                                dip_runtime_role_t role, char *why,
                                size_t whylen);

/* The same on the folder named path: 0 when trusted; -1 with the
 * reason in why ("'PATH' is a symbolic link", "'PATH' belongs to uid 65534
 * ...", or why it cannot be looked at). */
int dip_runtime_trusted(const char *path, dip_runtime_role_t role, char *why,
                        size_t whylen);

#endif
