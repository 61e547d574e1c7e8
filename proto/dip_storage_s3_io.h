/*
 * dip_storage_s3_io: the S3 backend of dip_storage_io. Requests are
 * path-style (endpoint/bucket/key), signed with dip_sigv4 (the payload's
 * SHA-256 under the signature for every upload) and run on one reusable
 * libcurl handle that keeps its connection. Downloads stream from libcurl's
 * write callback into the caller's sink and resume with Range (and If-Match
 * on the first ETag) after a transient failure; uploads up to the multipart
 * threshold are one PUT, larger ones a multipart upload (initiate, parts
 * read from the file one at a time, complete; abort on failure), so memory
 * stays flat whatever the size. Callers check keys before calling.
 */
#ifndef DIP_STORAGE_S3_IO_H
#define DIP_STORAGE_S3_IO_H

#include <stddef.h>
#include <stdint.h>

#include "dip_config.h"
#include "dip_storage.h"

typedef struct dip_storage_s3 dip_storage_s3_t;

/* The storage cfg->storage_url = "s3://bucket" with cfg's endpoint (default
 * https://s3.<region>.amazonaws.com), region, keys and retry policy
 * (cfg->row_attempts tries, first backoff cfg->row_backoff_ms). Returns
 * NULL with a sentence when the settings cannot work. Does no I/O. */
dip_storage_s3_t *dip_storage_s3_new(const dip_config_t *cfg, char *err,
                                     size_t errlen);
void dip_storage_s3_destroy(dip_storage_s3_t **self_p);

/* Uploads of more than `threshold` bytes go in parts of `part_size` bytes
 * (raised to keep within 10,000 parts). The defaults are
 * DIP_STORAGE_MULTIPART_THRESHOLD and DIP_STORAGE_PART_SIZE; S3 itself
 * refuses parts under 5 MiB but the last, so smaller values are for test
 * servers. */
void dip_storage_s3_set_multipart(dip_storage_s3_t *self, int64_t threshold,
                                  int64_t part_size);

/* As dip_storage_set_stall and dip_storage_set_stop. */
void dip_storage_s3_set_stall(dip_storage_s3_t *self, long bytes_per_s,
                              long seconds);
void dip_storage_s3_set_stop(dip_storage_s3_t *self, int (*stop)(void *arg),
                             void *arg);

/* As dip_storage_get. */
int dip_storage_s3_get(dip_storage_s3_t *self, const char *key, uint64_t offset,
                       const dip_storage_sink_t *sink, char *err,
                       size_t errlen);

/* Uploads the regular file open on fd (all of it, read with pread; its
 * offset is not used) to key: one PUT, or a multipart upload past the
 * threshold, each request retried on transient failures. A multipart
 * upload that fails is aborted (best effort: a bucket lifecycle rule for
 * incomplete uploads covers an abort that cannot reach S3). */
int dip_storage_s3_put_fd(dip_storage_s3_t *self, const char *key, int fd,
                          char *err, size_t errlen);

/* Deletes the object; a missing one is not an error (a missing bucket is). */
int dip_storage_s3_delete(dip_storage_s3_t *self, const char *key, char *err,
                          size_t errlen);

#endif
