/*
 * dip_storage_io: the object storage that import files live in, either an
 * S3-compatible service (s3://bucket, path-style, requests signed with
 * dip_sigv4, sent with libcurl: dip_storage_s3_io) or a local directory
 * (file:///dir: dip_storage_file_io); this is the one API both are used
 * through, and the rules they share are in dip_storage.h. Downloads
 * stream into a caller's sink straight from the network or the file, never
 * holding the object in memory; transient failures are retried with backoff
 * and resumed with a Range request from the last byte delivered; every
 * response is checked to be of the object the first one was. A storage
 * handle is used by one thread at a time; it keeps its HTTP connection open
 * between requests.
 */
#ifndef DIP_STORAGE_IO_H
#define DIP_STORAGE_IO_H

#include <stddef.h>
#include <stdint.h>

#include "dip_config.h"
#include "dip_storage.h"

typedef struct dip_storage dip_storage_t;

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

/* Streams the object `key` from byte `offset` into the sink, straight from
 * the transfer (never buffering the whole object). Transient failures
 * (connection refused or reset, timeouts, HTTP 5xx, 408, 429, a transfer cut
 * short) are retried up to the configured attempts with backoff, each retry
 * resuming with a Range request from the last byte delivered (and If-Match on
 * the first response's ETag, so a replaced object is not spliced), so the
 * sink sees every byte exactly once, in order; a try that delivered at
 * least a stall's worth of bytes does not use up an attempt. A response of
 * another object (another ETag, or none after a first with one, another
 * size; a file:// file whose size or modification time moved; S3's 412)
 * ends the download with DIP_STORAGE_ECHANGED before any of its bytes. 404
 * gives DIP_STORAGE_ENOTFOUND, 401/403 DIP_STORAGE_EDENIED, each with a
 * sentence naming the key and the reason. An offset equal to the size delivers
 * nothing; beyond it is DIP_STORAGE_EFAIL. For file:// the key is a path under
 * the directory. */
int dip_storage_get(dip_storage_t *self, const char *key, uint64_t offset,
                    const dip_storage_sink_t *sink, char *err, size_t errlen);

/* Uploads the local regular file `path` to key. S3: one PUT signed with
 * the file's SHA-256 up to the multipart threshold (64 MiB), a multipart
 * upload in parts read one at a time beyond it (aborted if it fails), each
 * request retried like downloads; file://: written to a temporary name in
 * the target directory, synced, then renamed, creating subdirectories.
 * `path` is opened without blocking and must be a regular file (a FIFO is
 * refused at once). Memory use does not depend on the file's size. */
int dip_storage_put_file(dip_storage_t *self, const char *key, const char *path,
                         char *err, size_t errlen);

/* As dip_storage_put_file for a regular file already open on fd (an
 * unnamed temporary file, say): all of it, read with pread from byte 0.
 * The caller keeps fd. */
int dip_storage_put_fd(dip_storage_t *self, const char *key, int fd, char *err,
                       size_t errlen);

/* S3 only (no effect on file://): uploads of more than `threshold` bytes go
 * in parts of `part_size` bytes; 0 restores a default. S3 refuses parts
 * under 5 MiB but the last, so smaller values are for test servers. */
void dip_storage_set_multipart(dip_storage_t *self, int64_t threshold,
                               int64_t part_size);

/* The function a download asks, while it waits, whether to stop: during
 * an S3 transfer (libcurl's progress callback, about once a second even
 * when no byte arrives), during a retry's backoff (every 200 ms) and
 * between file:// reads. Non-zero ends the call with DIP_STORAGE_EABORT.
 * It runs on the calling thread; NULL (the default) never stops. */
void dip_storage_set_stop(dip_storage_t *self, int (*stop)(void *arg),
                          void *arg);

/* S3 only: the low-speed limit (DIP_STORAGE_STALL_BPS over
 * DIP_STORAGE_STALL_S by default; 0 restores one). Lower for tests. */
void dip_storage_set_stall(dip_storage_t *self, long bytes_per_s, long seconds);

/* Deletes an object; a missing one is not an error. */
int dip_storage_delete(dip_storage_t *self, const char *key, char *err,
                       size_t errlen);

#endif
