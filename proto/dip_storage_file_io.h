/*
 * dip_storage_file_io: the file:// backend of dip_storage_io, a local
 * directory holding objects as files under their keys. Keys are walked one
 * directory at a time without following symbolic links, so no key leaves
 * the directory; only regular files are read, and they are opened without
 * blocking, so a FIFO or device planted under a key is refused at once
 * instead of hanging the reader. Uploads are written to a temporary name in
 * the target directory, synced, then renamed, so a reader sees the old
 * object or the whole new one. Callers check keys (dip_storage_check_key)
 * before calling.
 */
#ifndef DIP_STORAGE_FILE_IO_H
#define DIP_STORAGE_FILE_IO_H

#include <stddef.h>
#include <stdint.h>

#include "dip_storage.h"

typedef struct dip_storage_file dip_storage_file_t;

/* The storage "file:///dir" (trailing '/' allowed). Returns NULL with a
 * sentence when url is not of that form. Does no I/O. */
dip_storage_file_t *dip_storage_file_new(const char *url, char *err,
                                         size_t errlen);
void dip_storage_file_destroy(dip_storage_file_t **self_p);

/* As dip_storage_set_stop. */
void dip_storage_file_set_stop(dip_storage_file_t *self, int (*stop)(void *arg),
                               void *arg);

/* As dip_storage_get: streams the file under key from offset into sink. A
 * key naming anything but a regular file fails with DIP_STORAGE_EFAIL
 * ("... is not a regular file") without waiting on it. The file's size
 * and modification time are read again after each read: a file written
 * meanwhile ends the download with DIP_STORAGE_ECHANGED before the bytes
 * of that read reach the sink. (A file replaced by a rename is not
 * changed for this download: its open descriptor reads the old one.) */
int dip_storage_file_get(dip_storage_file_t *self, const char *key,
                         uint64_t offset, const dip_storage_sink_t *sink,
                         char *err, size_t errlen);

/* Copies the regular file open on fd (all of it, read with pread from byte
 * 0; its offset is not used) to key through a temporary file and a rename,
 * creating missing directories. */
int dip_storage_file_put_fd(dip_storage_file_t *self, const char *key, int fd,
                            char *err, size_t errlen);

/* Removes the file; a missing one is not an error. */
int dip_storage_file_delete(dip_storage_file_t *self, const char *key,
                            char *err, size_t errlen);

#endif
