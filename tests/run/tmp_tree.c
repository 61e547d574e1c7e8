/*
 * tmp_tree: depth-first removal of a test's temporary folder through
 * descriptors, never following a symlink and never crossing a mount.
 */
#include "tmp_tree.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Empties the folder open as dfd (taken: closed here); 0 or the first
 * -errno. */
static int empty_dir(int dfd, dev_t dev, int depth)
{
    DIR *d = NULL;
    struct dirent *e;
    int rc = 0;

    if (depth > TMP_TREE_MAX_DEPTH) {
        close(dfd);
        return -ELOOP;
    }
    d = fdopendir(dfd);
    if (d == NULL) {
        rc = -errno;
        close(dfd);
        return rc;
    }
    while ((errno = 0, e = readdir(d)) != NULL) {
        struct stat st;
        int sub, r = 0;
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            r = -errno;
        } else if (!S_ISDIR(st.st_mode)) {
            if (unlinkat(dirfd(d), e->d_name, 0) < 0)
                r = -errno;
        } else if (st.st_dev != dev) {
            r = -EXDEV;
        } else {
            sub = openat(dirfd(d), e->d_name,
                         O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0)
                r = -errno;
            else
                r = empty_dir(sub, dev, depth + 1);
            if (unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR) < 0 && r == 0)
                r = -errno;
        }
        if (r < 0 && r != -ENOENT && rc == 0)
            rc = r;
    }
    if (errno != 0 && rc == 0)
        rc = -errno;
    closedir(d);
    return rc;
}

int tmp_tree_remove(const char *dir)
{
    struct stat st;
    int rc, fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    rc = empty_dir(fd, st.st_dev, 0);
    if (rmdir(dir) < 0 && rc == 0)
        rc = -errno;
    return rc;
}
