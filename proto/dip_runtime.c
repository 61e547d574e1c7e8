#include "dip_runtime.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

const char *dip_runtime_verdict(const struct stat *dir,
                                const struct stat *parent, uid_t me,
                                dip_runtime_role_t role, char *why,
                                size_t whylen)
{
    if (S_ISLNK(dir->st_mode)) {
        snprintf(why, whylen, "is a symbolic link");
        return why;
    }
    if (!S_ISDIR(dir->st_mode)) {
        snprintf(why, whylen, "is not a folder");
        return why;
    }
    if (role == DIP_RUNTIME_OWNER && dir->st_uid != me) {
        snprintf(why, whylen,
                 "belongs to uid %u, not to the supervisor's user (uid %u)",
                 (unsigned)dir->st_uid, (unsigned)me);
        return why;
    }
    if (dir->st_mode & (S_IWGRP | S_IWOTH)) {
        snprintf(why, whylen, "is writable by %s (mode %04o)",
                 (dir->st_mode & S_IWOTH) ? "others" : "its group",
                 (unsigned)(dir->st_mode & 07777));
        return why;
    }
    /* A peer's folder of a stranger is fine where only its owner or root
     * could have made it (/run, a home), not where anyone could (/tmp). */
    if (role == DIP_RUNTIME_PEER && dir->st_uid != me && dir->st_uid != 0 &&
        (parent->st_mode & (S_IWGRP | S_IWOTH))) {
        snprintf(why, whylen,
                 "belongs to uid %u, neither yours (uid %u) nor root's, in a "
                 "folder that %s may write (mode %04o): anyone there could "
                 "have made it",
                 (unsigned)dir->st_uid, (unsigned)me,
                 (parent->st_mode & S_IWOTH) ? "others" : "its group",
                 (unsigned)(parent->st_mode & 07777));
        return why;
    }
    return NULL;
}

int dip_runtime_trusted(const char *path, dip_runtime_role_t role, char *why,
                        size_t whylen)
{
    char parent_path[4096], reason[256];
    struct stat dir, parent;
    char *slash;
    if (lstat(path, &dir) < 0) {
        snprintf(why, whylen, "cannot look at '%s': %s", path, strerror(errno));
        return -1;
    }
    snprintf(parent_path, sizeof(parent_path), "%s", path);
    /* the parent of "a/b/" is "a" */
    for (size_t n = strlen(parent_path); n > 1 && parent_path[n - 1] == '/';)
        parent_path[--n] = '\0';
    slash = strrchr(parent_path, '/');
    if (slash == NULL)
        snprintf(parent_path, sizeof(parent_path), ".");
    else if (slash == parent_path)
        parent_path[1] = '\0';
    else
        *slash = '\0';
    if (stat(parent_path, &parent) < 0) {
        snprintf(why, whylen, "cannot look at '%s': %s", parent_path,
                 strerror(errno));
        return -1;
    }
    if (dip_runtime_verdict(&dir, &parent, geteuid(), role, reason,
                            sizeof(reason)) == NULL)
        return 0;
    snprintf(why, whylen, "'%s' %s", path, reason);
    return -1;
}
