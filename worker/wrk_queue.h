/*
 * wrk_queue: what a worker reads from its queue document before it touches
 * anything, as a pure function over the BSON (no I/O), so that every shape a
 * document may take is either read or refused with a sentence for the CRM
 * user, never half-read. This is the one reader of the queue document's
 * fields that the CRM writes: each field's accepted types are decided here,
 * and nothing else converts them.
 *
 * Required: user_id, account_id and additional_data.pipeline_id (each an
 * ObjectId or its 24-hex string), a non-empty csv[0].key string, a
 * `mappings` sub-document. Optional, and refused when present in another
 * type:
 * - parent_account and client_id: the same id forms (null = absent);
 * - dry_run: a boolean (null = absent = false); the string "false" is
 *   refused, never read as true or false;
 * - additional_data.tags: an array of strings, or one string (null =
 *   absent); at most max_tags of them, each valid UTF-8 without NUL of at
 *   most WRK_QUEUE_TAG_MAX_BYTES bytes. A tag of another type, a longer
 *   one or one too many refuses the document: a deal carries every tag, so
 *   a bound here bounds what one file can make the import write.
 * - csv: entries after the first are counted (csv_ignored), not read: one
 *   import reads one file.
 * - additional_data.format: read by wrk_format_read (wrk_format.h).
 */
#ifndef WRK_QUEUE_H
#define WRK_QUEUE_H

#include <stddef.h>

#include <bson/bson.h>

#include "wrk_format.h"

/* The longest tag accepted, in bytes. */
#define WRK_QUEUE_TAG_MAX_BYTES 256

typedef struct wrk_queue {
    bson_oid_t user, account, pipeline;
    const char *key;    /* csv[0].key: borrowed from the document, key_len */
    size_t key_len;     /* bytes, > 0 (may hold NULs: checked by storage) */
    bson_t mappings;    /* a read-only view into the document: borrowed */
    bson_t tags;        /* owned: an array of the tag strings, "0", "1", ... */
    int dry_run;        /* 1 for `dry_run: true`, else 0 */
    size_t csv_ignored; /* entries of `csv` after the first */
    /* additional_data.format (wrk_format_read); present 0 without one */
    wrk_format_t format;
} wrk_queue_t;

/* Reads q into out, accepting at most max_tags tags. Returns 0, or -1 with
 * err filled ("the queue document's 'account_id' is missing") and out
 * holding nothing to release. On success out borrows from q (which must
 * outlive it) and owns its tags: wrk_queue_release frees them. */
int wrk_queue_read(const bson_t *q, size_t max_tags, wrk_queue_t *out,
                   char *err, size_t errlen);
void wrk_queue_release(wrk_queue_t *out);

#endif
