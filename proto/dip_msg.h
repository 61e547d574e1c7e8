/*
 * dip_msg: the worker-events protocol between a worker and its supervisor,
 * version 2. Every message is one ZeroMQ frame holding one BSON document
 * with a version `v` (2) and a `type`, in the form the next step stores:
 * a line error's row is the BSON array the supervisor puts into its
 * csv_import_errors document, a checkpoint the BSON document it sets on the
 * queue document. Nothing is converted twice.
 *
 * Workers send hello (first, once: who they are and the per-spawn secret
 * that proves it), start (once per run, when the reader knows the file:
 * the header and the file's identity), batch, line_error, heartbeat and
 * done; the supervisor sends ack and control.
 *
 * Flow control: both ends count the bytes of every frame the worker sends
 * after its accepted hello, heartbeats aside, hello included. An ack says
 * "the first `acked` of those bytes are stored" and grants a `window`: the
 * worker sends only while what is unacknowledged is under the window (one
 * frame may always go when nothing is unacknowledged). Acks also go out on
 * a timer, so a worker that hears nothing for a lease knows its supervisor
 * has stopped reading.
 *
 * Encoding and decoding are pure functions over buffers: no sockets here.
 * A decoded message borrows from the frame it was decoded from. The decoder
 * never trusts its input: an unknown version or type, a missing or mistyped
 * field, text that is not UTF-8, or an oversized frame is an error value
 * with a sentence, never a crash.
 */
#ifndef DIP_MSG_H
#define DIP_MSG_H

#include <stddef.h>
#include <stdint.h>

#include <bson/bson.h>

#define DIP_MSG_VERSION 2
/* A frame larger than this is refused unread, by the decoder and by both
 * sockets (ZMQ_MAXMSGSIZE); the worker refuses to build one. */
#define DIP_MSG_MAX_FRAME (4u * 1024u * 1024u)
/* A dry run's done names at most this many of the stages it would create
 * (the first ones met). */
#define DIP_MSG_NEW_STAGES_MAX 100
/* The per-spawn secret: 64 lowercase hex characters. */
#define DIP_MSG_SECRET_LEN 64

typedef enum {
    DIP_MSG_HELLO = 1,
    DIP_MSG_START,
    DIP_MSG_BATCH,
    DIP_MSG_LINE_ERROR,
    DIP_MSG_HEARTBEAT,
    DIP_MSG_DONE,
    DIP_MSG_CONTROL,
    DIP_MSG_ACK,
} dip_msg_type_t;

/* Final states a worker reports in `done`. RETRY means: checkpointed after a
 * temporary failure (database or storage away); resume later. */
typedef enum {
    DIP_DONE_COMPLETED = 1,
    DIP_DONE_FAILED,
    DIP_DONE_PAUSED,
    DIP_DONE_CANCELLED,
    DIP_DONE_STOPPED, /* asked to stop (supervisor shutting down) */
    DIP_DONE_RETRY,
} dip_done_status_t;

typedef enum {
    DIP_CONTROL_PAUSE = 1,
    DIP_CONTROL_CANCEL,
    DIP_CONTROL_STOP,
} dip_control_action_t;

/* A decoded message. Every pointer and every bson_t view borrows from the
 * frame the message was decoded from, which must outlive it; the views are
 * static (bson_init_static) and need no release. Fields a type does not use
 * are zero. */
typedef struct dip_msg {
    dip_msg_type_t type;
    /* hello: who the worker is */
    bson_value_t queue_id; /* the queue document's _id as stored: an
                              ObjectId, a string or an integer */
    int64_t pid;
    const char *owner;  /* the supervisor the claim belongs to */
    int64_t epoch;      /* the claim's epoch (its `claims` counter) */
    const char *secret; /* DIP_MSG_SECRET_LEN hex characters */
    /* start: what this run reads */
    int64_t first_line; /* the line the worker starts at (1 or resumed) */
    int has_header;     /* 0 on a resume: the stored header stands */
    bson_t header;      /* array of strings when has_header */
    bson_t file;        /* the file's identity: {etag} or {size, mtime_ns} */
    /* batch: figures cumulative over the whole import (resumes included),
     * and the checkpoint a resume starts from */
    int64_t lines;             /* last data line done */
    int64_t added;             /* deals added (or found done) so far */
    int64_t errors;            /* line errors so far, stored or not */
    int64_t errors_not_stored; /* of which over the per-import cap */
    int64_t bytes;             /* input bytes consumed (checkpoint offset) */
    int64_t bytes_total;       /* -1 when unknown */
    int64_t db_round_trips;    /* this worker run's database round trips */
    bson_t checkpoint;         /* document, stored as sent */
    /* line_error: the csv_import_errors document's own fields */
    int64_t line;
    const char *field; /* "" for row-level errors */
    const char *message;
    bson_t row;        /* array of strings: the row's own cells */
    int row_truncated; /* the row was cut to the per-error limit */
    /* done (lines, errors_not_stored as in batch) */
    dip_done_status_t status;
    const char *error; /* NULL unless failed/retry */
    int has_notes;
    bson_t notes; /* array of strings when has_notes */
    /* done of a dry run (dry_run absent or false: an import, these zero) */
    int dry_run;
    int64_t would_add;        /* deals the import would add */
    int64_t new_stages_count; /* stages it would create */
    bson_t new_stages;        /* array of strings: the first of their names
                                 (at most DIP_MSG_NEW_STAGES_MAX) */
    /* done of an update or upsert (optional, absent from older workers:
     * has_counts 0, these zero): deals updated and left unchanged, or in a
     * dry run those it would update and leave unchanged */
    int has_counts;
    int64_t updated, unchanged;
    /* control */
    dip_control_action_t action;
    /* ack */
    int64_t acked;  /* bytes of the worker's frames stored */
    int64_t window; /* bytes the worker may have unacknowledged */
} dip_msg_t;

/* Decodes one frame into msg, which then borrows from buf. Returns 0, or -1
 * with a sentence in err (msg is then zeroed). */
int dip_msg_decode(const void *buf, size_t len, dip_msg_t *msg, char *err,
                   size_t errlen);

/* The name of a type ("hello", ...), "unknown" for others. */
const char *dip_msg_type_name(dip_msg_type_t type);

/* Encoders: each returns a new BSON document (the frame is its
 * bson_get_data/len; the caller owns it: bson_destroy), or NULL on
 * allocation failure. Texts must be UTF-8; the encoders do not check. */
bson_t *dip_msg_hello(const bson_value_t *queue_id, int64_t pid,
                      const char *owner, int64_t epoch, const char *secret);
/* header: nheader names, or NULL (a resume). file: borrowed, may be NULL. */
bson_t *dip_msg_start(int64_t first_line, const char *const *header,
                      size_t nheader, const bson_t *file);
/* checkpoint is borrowed. */
bson_t *dip_msg_batch(int64_t lines, int64_t added, int64_t errors,
                      int64_t errors_not_stored, int64_t bytes,
                      int64_t bytes_total, const bson_t *checkpoint,
                      int64_t db_round_trips);
/* The row's own cells (ncells of them, lens may be NULL for strlen), kept
 * while the array stays within max_bytes of BSON; the rest is cut (a cell at
 * a character boundary) and row_truncated set. truncated: the caller already
 * left cells out. Cells must be UTF-8. */
bson_t *dip_msg_line_error(int64_t line, const char *field, const char *message,
                           const char *const *cells, const size_t *lens,
                           size_t ncells, size_t max_bytes, int truncated);
bson_t *dip_msg_heartbeat(void);
/* notes: nnotes strings, may be NULL. */
bson_t *dip_msg_done(dip_done_status_t status, int64_t lines,
                     int64_t errors_not_stored, const char *error,
                     const char *const *notes, size_t nnotes);
/* The done of a dry run: as dip_msg_done, plus `dry_run: true`, the deals it
 * would add, how many stages it would create, and nnames (at most
 * DIP_MSG_NEW_STAGES_MAX; more are left out) of their names. */
bson_t *dip_msg_done_dry(dip_done_status_t status, int64_t lines,
                         int64_t errors_not_stored, const char *error,
                         const char *const *notes, size_t nnotes,
                         int64_t would_add, int64_t new_stages_count,
                         const char *const *names, size_t nnames);
/* Appends `updated` and `unchanged` to a done built by the two functions
 * above (the counts of an update or upsert import). 0, or -1 when out of
 * memory. */
int dip_msg_done_counts(bson_t *done, int64_t updated, int64_t unchanged);
bson_t *dip_msg_control(dip_control_action_t action);
bson_t *dip_msg_ack(int64_t acked, int64_t window);

/* Encodes a decoded message again with the encoder of its type; for any
 * frame the decoder accepts, decoding what this returns and encoding that
 * once more gives the same bytes (the fuzz target checks it). NULL on
 * allocation failure. */
bson_t *dip_msg_encode(const dip_msg_t *msg);

const char *dip_msg_done_status_name(dip_done_status_t status);
const char *dip_msg_control_action_name(dip_control_action_t action);

/* 1 when s is a canonical 24-hex lowercase ObjectId string. */
int dip_msg_is_oid(const char *s);

/* 1 when s is DIP_MSG_SECRET_LEN lowercase hex characters. */
int dip_msg_is_secret(const char *s);

#endif
