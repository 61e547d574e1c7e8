/*
 * dip_storage_io: the object storage that import files live in, either an
 * S3-compatible service (s3://bucket, path-style, requests signed with
 * dip_sigv4, sent with libcurl) or a local directory (file:///dir). Downloads
 * stream into a caller's sink straight from the network or the file, never
 * holding the object in memory; transient failures are retried with backoff
 * and resumed with a Range request from the last byte delivered. A storage
 * handle is used by one thread at a time; it keeps its HTTP connection open
 * between requests.
 */
#ifndef DIP_STORAGE_IO_H
#define DIP_STORAGE_IO_H

#include <stddef.h>
#include <stdint.h>

#include "dip_config.h"

typedef struct dip_storage dip_storage_t;

enum {
    DIP_STORAGE_OK = 0,
    DIP_STORAGE_EINVAL = -1,     /* bad key (or bad argument) */
    DIP_STORAGE_ENOTFOUND = -2,  /* no such object */
    DIP_STORAGE_EDENIED = -3,    /* 401/403, or a file not readable */
    DIP_STORAGE_ETRANSIENT = -4, /* retries exhausted */
    DIP_STORAGE_EABORT = -5,     /* the sink asked to stop */
    DIP_STORAGE_EFAIL = -6,      /* other permanent failure */
};

/* Longest key accepted, in bytes (S3's limit). */
#define DIP_STORAGE_KEY_MAX 1024

typedef struct dip_storage_sink {
    void *arg;
    /* Called once, before any data, with the object's total size (-1 when
     * unknown). May be NULL. */
    void (*size)(void *arg, int64_t total);
    /* Called with consecutive bytes; return 0 to go on, non-zero to stop
     * (the download then ends with DIP_STORAGE_EABORT). */
    int (*data)(void *arg, const char *buf, size_t len);
    /* Called once, before any data, with what identifies this version of
     * the object: S3's ETag (size and mtime_ns -1), or for file:// "" and
     * the file's size and modification time in ns. May be NULL. */
    void (*identity)(void *arg, const char *etag, int64_t size,
                     int64_t mtime_ns);
} dip_storage_sink_t;

/* Opens the storage that cfg->storage_url names, with cfg's S3 endpoint
 * (default https://s3.<region>.amazonaws.com), region and keys, and its retry
 * policy: cfg->row_attempts tries, the first backoff cfg->row_backoff_ms,
 * doubling, with jitter. cfg is copied. Returns NULL with a sentence in err
 * when the settings cannot work. Does no I/O. */
dip_storage_t *dip_storage_new(const dip_config_t *cfg, char *err,
                               size_t errlen);
void dip_storage_destroy(dip_storage_t **self_p);

/* The storage URL, for messages ("s3://deals"). */
const char *dip_storage_url(const dip_storage_t *self);

/* Keys are confined to their storage: an empty key, an absolute one ('/...'
 * or '\...'), a '.' or '..' segment (with '/' or '\' as separator), a NUL
 * byte or other control character within key_len bytes, or more than
 * DIP_STORAGE_KEY_MAX bytes fail with DIP_STORAGE_EINVAL and a sentence. */
int dip_storage_check_key(const char *key, size_t key_len, char *err,
                          size_t errlen);

/* Streams the object `key` from byte `offset` into the sink, straight from
 * the transfer (never buffering the whole object). Transient failures
 * (connection refused or reset, timeouts, HTTP 5xx, 408, 429, a transfer cut
 * short) are retried up to the configured attempts with backoff, each retry
 * resuming with a Range request from the last byte delivered (and If-Match on
 * the first response's ETag, so a replaced object is not spliced), so the
 * sink sees every byte exactly once, in order; a try that delivered bytes
 * does not use up an attempt. 404 gives DIP_STORAGE_ENOTFOUND, 401/403
 * DIP_STORAGE_EDENIED, each with a sentence naming the key and the reason.
 * An offset equal to the size delivers nothing; beyond it is
 * DIP_STORAGE_EFAIL. For file:// the key is a path under the directory. */
int dip_storage_get(dip_storage_t *self, const char *key, uint64_t offset,
                    const dip_storage_sink_t *sink, char *err, size_t errlen);

/* Uploads the local file `path` to key (S3: one PUT signed with the file's
 * SHA-256, retried like downloads; file://: written to a temporary name in
 * the target directory, synced, then renamed, creating subdirectories). */
int dip_storage_put_file(dip_storage_t *self, const char *key, const char *path,
                         char *err, size_t errlen);

/* Deletes an object; a missing one is not an error. */
int dip_storage_delete(dip_storage_t *self, const char *key, char *err,
                       size_t errlen);

#endif
