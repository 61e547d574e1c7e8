/*
 * wrk_queue: what a worker reads from its queue document before it touches
 * anything, as a pure function over the BSON (no I/O), so that every shape a
 * document may take is either read or refused with a sentence for the CRM
 * user, never half-read. Required: user_id, account_id and
 * additional_data.pipeline_id (each an ObjectId or its 24-hex string), a
 * non-empty csv[0].key string, a `mappings` sub-document. Optional:
 * parent_account and client_id (the same id forms when present), and
 * additional_data.tags (an array, whose strings are kept, or one string),
 * and additional_data.format (read by wrk_format_read).
 */
#ifndef WRK_QUEUE_H
#define WRK_QUEUE_H

#include <stddef.h>

#include <bson/bson.h>

#include "wrk_format.h"

typedef struct wrk_queue {
    bson_oid_t user, account, pipeline;
    const char *key; /* csv[0].key: borrowed from the document, key_len */
    size_t key_len;  /* bytes, > 0 (may hold NULs: checked by storage) */
    bson_t mappings; /* a read-only view into the document: borrowed */
    bson_t tags;     /* owned: an array of the tag strings, "0", "1", ... */
    /* additional_data.format (wrk_format_read); present 0 without one */
    wrk_format_t format;
} wrk_queue_t;

/* Reads q into out. Returns 0, or -1 with err filled ("the queue document's
 * 'account_id' is missing") and out holding nothing to release. On success
 * out borrows from q (which must outlive it) and owns its tags:
 * wrk_queue_release frees them. */
int wrk_queue_read(const bson_t *q, wrk_queue_t *out, char *err, size_t errlen);
void wrk_queue_release(wrk_queue_t *out);

#endif
