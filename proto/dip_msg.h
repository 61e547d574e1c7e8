/*
 * dip_msg: the worker-events protocol between a worker and its supervisor.
 * Every message is one ZeroMQ frame holding one JSON object with a version
 * `v` (1) and a `type`. Workers send hello, batch, line_error, heartbeat and
 * done; the supervisor sends control. Encoding and decoding are pure
 * functions over buffers: no sockets here. A decoder never trusts its input:
 * an unknown version or type, a missing or mistyped field, or an oversized
 * frame is an error value with a sentence, never a crash.
 */
#ifndef DIP_MSG_H
#define DIP_MSG_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define DIP_MSG_VERSION 1
/* A frame larger than this is refused unread (rows are capped at 1 MiB and
 * error rows are truncated by the worker long before this). */
#define DIP_MSG_MAX_FRAME (4u * 1024u * 1024u)

typedef enum {
    DIP_MSG_HELLO = 1,
    DIP_MSG_BATCH,
    DIP_MSG_LINE_ERROR,
    DIP_MSG_HEARTBEAT,
    DIP_MSG_DONE,
    DIP_MSG_CONTROL,
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

/* A decoded message. Strings point into `root`, which the message owns;
 * dip_msg_release frees it. Fields not used by a type are zero/NULL. */
typedef struct dip_msg {
    dip_msg_type_t type;
    const char *queue_id; /* 24-hex; all worker messages */
    /* hello */
    int64_t pid;
    int64_t first_line; /* the line the worker starts at (1 or resumed) */
    /* batch: figures cumulative over the whole import (resumes included),
     * and the checkpoint a resume starts from */
    int64_t lines;          /* last data line done */
    int64_t added;          /* deals added (or found done) so far */
    int64_t errors;         /* line errors so far */
    int64_t bytes;          /* input bytes consumed (the checkpoint offset) */
    int64_t bytes_total;    /* -1 when unknown */
    json_t *checkpoint;     /* object, borrowed from root */
    int64_t db_round_trips; /* this worker run's so far; 0 when not sent */
    /* line_error */
    int64_t line;
    const char *field; /* may be "" for row-level errors */
    const char *message;
    json_t *row; /* array of strings, borrowed from root */
    /* done */
    dip_done_status_t status;
    const char *error; /* NULL unless failed/retry */
    json_t *notes;     /* array of strings or NULL */
    /* control */
    dip_control_action_t action;
    json_t *root;
} dip_msg_t;

/* Decodes one frame. Returns 0, or -1 with a sentence in err; on failure the
 * message holds nothing to release. */
int dip_msg_decode(const void *buf, size_t len, dip_msg_t *msg, char *err,
                   size_t errlen);
void dip_msg_release(dip_msg_t *msg);

/* Encoders: each returns a malloc'd NUL-terminated JSON text (the frame is
 * its strlen) or NULL on allocation failure. The caller frees it. */
char *dip_msg_hello(const char *queue_id, int64_t pid, int64_t first_line);
/* checkpoint is borrowed (not stolen). */
char *dip_msg_batch(const char *queue_id, int64_t lines, int64_t added,
                    int64_t errors, int64_t bytes, int64_t bytes_total,
                    json_t *checkpoint, int64_t db_round_trips);
/* row: ncells cells, each truncated to a bounded size by the encoder. */
char *dip_msg_line_error(const char *queue_id, int64_t line, const char *field,
                         const char *message, const char *const *cells,
                         const size_t *lens, size_t ncells);
char *dip_msg_heartbeat(const char *queue_id);
/* notes may be NULL; borrowed. */
char *dip_msg_done(const char *queue_id, dip_done_status_t status,
                   int64_t lines, const char *error, json_t *notes);
char *dip_msg_control(dip_control_action_t action);

const char *dip_msg_done_status_name(dip_done_status_t status);
const char *dip_msg_control_action_name(dip_control_action_t action);

/* 1 when s is a canonical 24-hex lowercase ObjectId string. */
int dip_msg_is_oid(const char *s);

#endif
