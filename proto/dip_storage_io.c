/*
 * dip_storage_io: picks the backend the storage URL names (file:// or s3://)
 * and puts the checks every operation shares in front of it: arguments, the
 * key's confinement (dip_storage_check_key), and for uploads from a path the
 * source itself, opened without blocking and refused unless it is a regular
 * file, so a FIFO named as the source cannot hang the caller.
 */
#include "dip_storage_io.h"
#include "dip_text.h"
#include "dip_storage_file_io.h"
#include "dip_storage_s3_io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct dip_storage {
    char *url; /* as configured, for messages */
    dip_storage_file_t *file;
    dip_storage_s3_t *s3;
};

dip_storage_t *dip_storage_new(const dip_config_t *cfg, char *err,
                               size_t errlen)
{
    dip_storage_t *self = NULL;
    const char *url = cfg ? cfg->storage_url : NULL;

    if (url == NULL || *url == '\0') {
        dip_text_say(-1, err, errlen, "DEALIMPORT_STORAGE_URL is not set");
        return NULL;
    }
    if (strncmp(url, "file:///", 8) != 0 && strncmp(url, "s3://", 5) != 0) {
        dip_text_say(-1, err, errlen,
                     "DEALIMPORT_STORAGE_URL: '%s' is neither s3://bucket nor "
                     "file:///dir",
                     url);
        return NULL;
    }
    self = calloc(1, sizeof(*self));
    if (self == NULL || (self->url = strdup(url)) == NULL) {
        dip_text_say(-1, err, errlen, "out of memory");
        goto fail;
    }
    if (strncmp(url, "file:///", 8) == 0)
        self->file = dip_storage_file_new(url, err, errlen);
    else
        self->s3 = dip_storage_s3_new(cfg, err, errlen);
    if (self->file == NULL && self->s3 == NULL)
        goto fail;
    return self;
fail:
    dip_storage_destroy(&self);
    return NULL;
}

void dip_storage_destroy(dip_storage_t **self_p)
{
    dip_storage_t *self;
    if (self_p == NULL || *self_p == NULL)
        return;
    self = *self_p;
    dip_storage_file_destroy(&self->file);
    dip_storage_s3_destroy(&self->s3);
    free(self->url);
    free(self);
    *self_p = NULL;
}

const char *dip_storage_url(const dip_storage_t *self)
{
    return self->url;
}

void dip_storage_set_multipart(dip_storage_t *self, int64_t threshold,
                               int64_t part_size)
{
    if (self && self->s3)
        dip_storage_s3_set_multipart(self->s3, threshold, part_size);
}

void dip_storage_set_stop(dip_storage_t *self, int (*stop)(void *arg),
                          void *arg)
{
    if (self && self->s3)
        dip_storage_s3_set_stop(self->s3, stop, arg);
    if (self && self->file)
        dip_storage_file_set_stop(self->file, stop, arg);
}

void dip_storage_set_stall(dip_storage_t *self, long bytes_per_s, long seconds)
{
    if (self && self->s3)
        dip_storage_s3_set_stall(self->s3, bytes_per_s, seconds);
}

int dip_storage_get(dip_storage_t *self, const char *key, uint64_t offset,
                    const dip_storage_sink_t *sink, char *err, size_t errlen)
{
    int rc;
    if (self == NULL || sink == NULL || sink->data == NULL)
        return dip_text_say(DIP_STORAGE_EINVAL, err, errlen,
                            "dip_storage_get needs a storage and a sink");
    rc = dip_storage_check_key(key, key ? strlen(key) : 0, err, errlen);
    if (rc < 0)
        return rc;
    return self->s3
               ? dip_storage_s3_get(self->s3, key, offset, sink, err, errlen)
               : dip_storage_file_get(self->file, key, offset, sink, err,
                                      errlen);
}

int dip_storage_put_fd(dip_storage_t *self, const char *key, int fd, char *err,
                       size_t errlen)
{
    struct stat st;
    int rc;
    if (self == NULL || fd < 0)
        return dip_text_say(DIP_STORAGE_EINVAL, err, errlen,
                            "dip_storage_put_fd needs a storage and a file");
    rc = dip_storage_check_key(key, key ? strlen(key) : 0, err, errlen);
    if (rc < 0)
        return rc;
    if (fstat(fd, &st) < 0)
        return dip_text_say(DIP_STORAGE_EFAIL, err, errlen,
                            "cannot upload file '%s': %s", key,
                            strerror(errno));
    if (!S_ISREG(st.st_mode))
        return dip_text_say(
            DIP_STORAGE_EFAIL, err, errlen,
            "cannot upload file '%s': its source is not a regular file", key);
    return self->s3 ? dip_storage_s3_put_fd(self->s3, key, fd, err, errlen)
                    : dip_storage_file_put_fd(self->file, key, fd, err, errlen);
}

int dip_storage_put_file(dip_storage_t *self, const char *key, const char *path,
                         char *err, size_t errlen)
{
    struct stat st;
    int fd, rc;
    if (self == NULL || path == NULL)
        return dip_text_say(DIP_STORAGE_EINVAL, err, errlen,
                            "dip_storage_put_file needs a storage and a path");
    rc = dip_storage_check_key(key, key ? strlen(key) : 0, err, errlen);
    if (rc < 0)
        return rc;
    /* O_NONBLOCK: opening a FIFO for reading would wait for a writer. */
    fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return dip_text_say(DIP_STORAGE_EFAIL, err, errlen,
                            "cannot read '%s': %s", path, strerror(errno));
    if (fstat(fd, &st) < 0)
        rc = dip_text_say(DIP_STORAGE_EFAIL, err, errlen,
                          "cannot read '%s': %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        rc = dip_text_say(DIP_STORAGE_EFAIL, err, errlen,
                          "cannot upload '%s': not a regular file", path);
    else
        rc = dip_storage_put_fd(self, key, fd, err, errlen);
    close(fd);
    return rc;
}

int dip_storage_delete(dip_storage_t *self, const char *key, char *err,
                       size_t errlen)
{
    int rc;
    if (self == NULL)
        return dip_text_say(DIP_STORAGE_EINVAL, err, errlen,
                            "dip_storage_delete needs a storage");
    rc = dip_storage_check_key(key, key ? strlen(key) : 0, err, errlen);
    if (rc < 0)
        return rc;
    return self->s3 ? dip_storage_s3_delete(self->s3, key, err, errlen)
                    : dip_storage_file_delete(self->file, key, err, errlen);
}
