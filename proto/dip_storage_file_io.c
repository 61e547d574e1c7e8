/*
 * dip_storage_file_io: objects as files in a local directory. Every open
 * walks the key one segment at a time with O_NOFOLLOW from a descriptor of
 * the storage directory, so neither a '..' that slipped through nor a
 * symbolic link planted inside can lead out of it. Files are opened with
 * O_NONBLOCK and checked with fstat before any read: opening a FIFO for
 * reading would otherwise wait for a writer forever. Uploads go through a
 * temporary name and a rename after fsync.
 */
#include "dip_storage_file_io.h"
#include "dip_text.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define IO_CHUNK (128 * 1024)

struct dip_storage_file {
    char *url;  /* as configured, for messages */
    char *root; /* the directory */
    unsigned int rng;
    int (*stop)(void *arg); /* dip_storage_set_stop's, or NULL */
    void *stop_arg;
};

void dip_storage_file_set_stop(dip_storage_file_t *self, int (*stop)(void *arg),
                               void *arg)
{
    self->stop = stop;
    self->stop_arg = arg;
}

static int64_t mtime_ns(const struct stat *st)
{
    return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

dip_storage_file_t *dip_storage_file_new(const char *url, char *err,
                                         size_t errlen)
{
    dip_storage_file_t *self = NULL;
    size_t n;
    if (url == NULL || strncmp(url, "file:///", 8) != 0) {
        dip_text_say(-1, err, errlen,
                     "DEALIMPORT_STORAGE_URL: '%s' is not file:///dir",
                     url ? url : "");
        return NULL;
    }
    n = strlen(url + 7);
    while (n > 1 && url[7 + n - 1] == '/')
        n--;
    if ((self = calloc(1, sizeof(*self))) == NULL ||
        (self->url = strdup(url)) == NULL ||
        (self->root = strndup(url + 7, n)) == NULL) {
        dip_text_say(-1, err, errlen, "out of memory");
        dip_storage_file_destroy(&self);
        return NULL;
    }
    self->rng = (unsigned int)time(NULL) ^ (unsigned int)getpid() ^
                (unsigned int)(uintptr_t)self;
    return self;
}

void dip_storage_file_destroy(dip_storage_file_t **self_p)
{
    dip_storage_file_t *self;
    if (self_p == NULL || *self_p == NULL)
        return;
    self = *self_p;
    free(self->url);
    free(self->root);
    free(self);
    *self_p = NULL;
}

/* Opens the directory holding key's last segment, segment by segment with
 * O_NOFOLLOW, creating missing ones when `create`. Returns an fd (>= 0) and
 * sets *base to the last segment, or a negative errno. */
static int open_parent(const dip_storage_file_t *self, const char *key,
                       int create, const char **base)
{
    int dfd = open(self->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    const char *p = key, *slash;
    char seg[DIP_STORAGE_KEY_MAX + 1];
    if (dfd < 0)
        return -errno;
    while ((slash = strchr(p, '/')) != NULL) {
        size_t n = (size_t)(slash - p);
        int next;
        if (n > 0) {
            memcpy(seg, p, n);
            seg[n] = '\0';
            if (create && mkdirat(dfd, seg, 0755) < 0 && errno != EEXIST) {
                int e = errno;
                close(dfd);
                return -e;
            }
            next = openat(dfd, seg,
                          O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (next < 0) {
                int e = errno;
                struct stat st;
                /* O_NOFOLLOW|O_DIRECTORY says ENOTDIR for a link. */
                if (e == ENOTDIR &&
                    fstatat(dfd, seg, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                    S_ISLNK(st.st_mode))
                    e = ELOOP;
                close(dfd);
                return -e;
            }
            close(dfd);
            dfd = next;
        }
        p = slash + 1;
    }
    *base = p;
    return dfd;
}

static int file_errno(const dip_storage_file_t *self, const char *key, int e,
                      const char *doing, char *err, size_t errlen)
{
    if (e == ENOENT || e == ENOTDIR)
        return dip_text_say(DIP_STORAGE_ENOTFOUND, err, errlen,
                            "file '%s' was not found in storage '%s'", key,
                            self->url);
    if (e == EACCES || e == EPERM || e == EROFS)
        return dip_text_say(
            DIP_STORAGE_EDENIED, err, errlen,
            "access to file '%s' in storage '%s' was denied: %s", key,
            self->url, strerror(e));
    if (e == ELOOP)
        return dip_text_say(
            DIP_STORAGE_EINVAL, err, errlen,
            "file '%s' in storage '%s' goes through a symbolic link, "
            "which is not followed",
            key, self->url);
    return dip_text_say(DIP_STORAGE_EFAIL, err, errlen,
                        "cannot %s file '%s' in storage '%s': %s", doing, key,
                        self->url, strerror(e));
}

static int parent_error(const dip_storage_file_t *self, const char *key,
                        int neg, const char *doing, char *err, size_t errlen)
{
    if (neg == -ENOENT && access(self->root, F_OK) < 0)
        return dip_text_say(DIP_STORAGE_EFAIL, err, errlen,
                            "storage directory '%s' does not exist",
                            self->root);
    return file_errno(self, key, -neg, doing, err, errlen);
}

int dip_storage_file_get(dip_storage_file_t *self, const char *key,
                         uint64_t offset, const dip_storage_sink_t *sink,
                         char *err, size_t errlen)
{
    const char *base = NULL;
    int dfd = -1, fd = -1, rc;
    char *buf = NULL;
    struct stat st;
    uint64_t pos = offset;

    dfd = open_parent(self, key, 0, &base);
    if (dfd < 0) {
        rc = parent_error(self, key, dfd, "read", err, errlen);
        goto cleanup;
    }
    /* O_NONBLOCK: a FIFO opens at once instead of waiting for a writer,
     * and is then refused below; for a regular file it changes nothing. */
    fd = openat(dfd, base, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        rc = file_errno(self, key, errno, "read", err, errlen);
        goto cleanup;
    }
    if (fstat(fd, &st) < 0) {
        rc = file_errno(self, key, errno, "read", err, errlen);
        goto cleanup;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = dip_text_say(DIP_STORAGE_EFAIL, err, errlen,
                          "'%s' in storage '%s' is not a regular file", key,
                          self->url);
        goto cleanup;
    }
    if (offset > (uint64_t)st.st_size) {
        rc =
            dip_text_say(DIP_STORAGE_EFAIL, err, errlen,
                         "offset %" PRIu64 " is beyond the end of file '%s' in "
                         "storage '%s' (%" PRId64 " bytes)",
                         offset, key, self->url, (int64_t)st.st_size);
        goto cleanup;
    }
    if ((buf = malloc(IO_CHUNK)) == NULL) {
        rc = dip_text_say(DIP_STORAGE_EFAIL, err, errlen, "out of memory");
        goto cleanup;
    }
    if (sink->size)
        sink->size(sink->arg, (int64_t)st.st_size);
    if (sink->identity)
        sink->identity(sink->arg, "", (int64_t)st.st_size, mtime_ns(&st));
    for (;;) {
        struct stat now;
        ssize_t n;
        if (self->stop && self->stop(self->stop_arg)) {
            rc = dip_text_say(DIP_STORAGE_EABORT, err, errlen,
                              "the download of file '%s' from storage '%s' was "
                              "stopped",
                              key, self->url);
            goto cleanup;
        }
        n = pread(fd, buf, IO_CHUNK, (off_t)pos);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = file_errno(self, key, errno, "read", err, errlen);
            goto cleanup;
        }
        /* After the read: bytes written before it moved the time. */
        if (fstat(fd, &now) < 0) {
            rc = file_errno(self, key, errno, "read", err, errlen);
            goto cleanup;
        }
        if (now.st_size != st.st_size || mtime_ns(&now) != mtime_ns(&st)) {
            rc = dip_text_say(
                DIP_STORAGE_ECHANGED, err, errlen,
                "file '%s' in storage '%s' changed during the download: "
                "it had %" PRId64 " bytes modified at %" PRId64
                " ns, now %" PRId64 " bytes at %" PRId64 " ns",
                key, self->url, (int64_t)st.st_size, mtime_ns(&st),
                (int64_t)now.st_size, mtime_ns(&now));
            goto cleanup;
        }
        if (n == 0)
            break;
        pos += (uint64_t)n;
        if (sink->data(sink->arg, buf, (size_t)n) != 0) {
            rc = dip_text_say(
                DIP_STORAGE_EABORT, err, errlen,
                "download of file '%s' from storage '%s' was stopped by "
                "its reader",
                key, self->url);
            goto cleanup;
        }
    }
    rc = DIP_STORAGE_OK;
cleanup:
    free(buf);
    if (fd >= 0)
        close(fd);
    if (dfd >= 0)
        close(dfd);
    return rc;
}

static int write_all(int fd, const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        buf += w;
        n -= (size_t)w;
    }
    return 0;
}

int dip_storage_file_put_fd(dip_storage_file_t *self, const char *key, int fd,
                            char *err, size_t errlen)
{
    const char *base = NULL;
    int dfd = -1, tmp = -1, have_tmp = 0, rc, e;
    char tmpname[64];
    char *buf = NULL;
    off_t pos = 0;

    dfd = open_parent(self, key, 1, &base);
    if (dfd < 0) {
        rc = parent_error(self, key, dfd, "write", err, errlen);
        goto cleanup;
    }
    for (int tries = 0; tmp < 0 && tries < 100; tries++) {
        snprintf(tmpname, sizeof(tmpname), ".upload-%d-%08x.tmp", (int)getpid(),
                 (unsigned)rand_r(&self->rng));
        tmp =
            openat(dfd, tmpname,
                   O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (tmp < 0 && errno != EEXIST)
            break;
    }
    have_tmp = tmp >= 0;
    if (tmp < 0) {
        rc = file_errno(self, key, errno, "write", err, errlen);
        goto cleanup;
    }
    if ((buf = malloc(IO_CHUNK)) == NULL) {
        rc = dip_text_say(DIP_STORAGE_EFAIL, err, errlen, "out of memory");
        goto cleanup;
    }
    for (;;) {
        ssize_t n = pread(fd, buf, IO_CHUNK, pos);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = dip_text_say(DIP_STORAGE_EFAIL, err, errlen,
                              "cannot read the upload of file '%s': %s", key,
                              strerror(errno));
            goto cleanup;
        }
        if (n == 0)
            break;
        pos += n;
        if ((e = write_all(tmp, buf, (size_t)n)) < 0) {
            rc = file_errno(self, key, -e, "write", err, errlen);
            goto cleanup;
        }
    }
    /* Synced before the rename so that a crash leaves the old file or the
     * whole new one, never a torn one under the final name. */
    if (fsync(tmp) < 0 || close(tmp) < 0) {
        e = errno;
        tmp = -1;
        rc = file_errno(self, key, e, "write", err, errlen);
        goto cleanup;
    }
    tmp = -1;
    if (renameat(dfd, tmpname, dfd, base) < 0) {
        rc = file_errno(self, key, errno, "write", err, errlen);
        goto cleanup;
    }
    have_tmp = 0;
    (void)fsync(dfd);
    rc = DIP_STORAGE_OK;
cleanup:
    free(buf);
    if (tmp >= 0)
        close(tmp);
    if (have_tmp)
        (void)unlinkat(dfd, tmpname, 0);
    if (dfd >= 0)
        close(dfd);
    return rc;
}

int dip_storage_file_delete(dip_storage_file_t *self, const char *key,
                            char *err, size_t errlen)
{
    const char *base = NULL;
    int dfd = open_parent(self, key, 0, &base), rc = DIP_STORAGE_OK;
    if (dfd < 0)
        return (dfd == -ENOENT || dfd == -ENOTDIR)
                   ? DIP_STORAGE_OK
                   : file_errno(self, key, -dfd, "delete", err, errlen);
    if (unlinkat(dfd, base, 0) < 0 && errno != ENOENT)
        rc = file_errno(self, key, errno, "delete", err, errlen);
    close(dfd);
    return rc;
}
