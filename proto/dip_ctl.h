/*
 * dip_ctl: the operators' control protocol between dealimportctl (or any
 * ZeroMQ client) and the supervisor's control socket. A request is one frame
 * holding one JSON object {"v":1,"cmd":...}; the reply is one frame holding
 * {"v":1,"ok":true,...} or {"v":1,"ok":false,"code":...,"error":...}.
 * Encoding and decoding are pure functions over buffers: no sockets here.
 * Decoders never trust their input: an unknown version, command or field, a
 * mistyped value, a bad id or an oversized frame is an error value with a
 * sentence meant for the operator, never a crash. docs/control-protocol.md
 * describes every command and field.
 */
#ifndef DIP_CTL_H
#define DIP_CTL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define DIP_CTL_VERSION 1
/* Requests are small; anything larger is refused unread. */
#define DIP_CTL_MAX_REQUEST (64u * 1024u)
/* A reply to `list` with DIP_CTL_LIST_MAX imports stays far below this. */
#define DIP_CTL_MAX_REPLY (8u * 1024u * 1024u)
#define DIP_CTL_LIST_DEFAULT 50
#define DIP_CTL_LIST_MAX 1000

typedef enum {
    DIP_CTL_STATUS = 1,
    DIP_CTL_LIST,
    DIP_CTL_SHOW,
    DIP_CTL_PAUSE,
    DIP_CTL_RESUME,
    DIP_CTL_CANCEL,
    DIP_CTL_METRICS, /* the Prometheus text of the supervisor's metrics */
} dip_ctl_cmd_t;

/* Why a request was refused; "code" in an error reply. */
typedef enum {
    DIP_CTL_OK = 0,
    DIP_CTL_EBADREQ,   /* bad_request: the frame is not a valid request */
    DIP_CTL_ENOTFOUND, /* not_found: no import with that id */
    DIP_CTL_ESTATE,    /* wrong_state: not allowed in the import's status */
    DIP_CTL_EUNAVAIL,  /* unavailable: database away, supervisor stopping */
} dip_ctl_code_t;

/* A list cursor: "<created_at epoch ms>.<24 hex id>" of the last import of
 * a page, newest first; the next page holds the imports older than it (by
 * created_at, then _id). A reply to list that was cut at its limit carries
 * it as `next`. */
#define DIP_CTL_CURSOR_LEN 48
/* Writes the cursor of (created_ms, id) into out. 0, or -1 for a bad id or
 * a negative time. */
int dip_ctl_cursor_format(long long created_ms, const char *id,
                          char out[DIP_CTL_CURSOR_LEN]);
/* Reads a cursor back; id receives 24 lowercase hex digits. 0 or -1. */
int dip_ctl_cursor_parse(const char *s, long long *created_ms, char id[25]);

/* A decoded request. Fixed-size: nothing to release. Strings are
 * NUL-terminated and "" when absent. */
typedef struct dip_ctl_request {
    dip_ctl_cmd_t cmd;
    char id[25];      /* show, pause, resume, cancel: lowercase 24-hex */
    char status[16];  /* list: filter on status, or "" */
    char account[25]; /* list: filter on account id, or "" */
    int limit;        /* list: 1..DIP_CTL_LIST_MAX */
    /* list: only imports created at or after this time (epoch ms; its
     * `since`), 0 for no bound */
    long long since_ms;
    /* list: the page after the one whose reply carried this `next`
     * (dip_ctl_cursor_format), or "" for the first page */
    char after[DIP_CTL_CURSOR_LEN];
} dip_ctl_request_t;

/* A decoded reply. root holds the whole object (command fields included);
 * error points into it. dip_ctl_reply_release frees it. */
typedef struct dip_ctl_reply {
    int ok;
    dip_ctl_code_t code; /* DIP_CTL_OK when ok */
    const char *error;   /* when !ok */
    json_t *root;
} dip_ctl_reply_t;

/* Decodes a request frame. Returns 0, or -1 with a sentence in err (the
 * reply's "error"; the code is always DIP_CTL_EBADREQ). */
int dip_ctl_request_decode(const void *buf, size_t len, dip_ctl_request_t *req,
                           char *err, size_t errlen);

/* Encodes a request; fields that do not belong to req->cmd are left out,
 * limit 0 means the default. Returns a malloc'd NUL-terminated JSON text
 * (the frame is its strlen), or NULL on allocation failure or when req is
 * not a valid request. */
char *dip_ctl_request_encode(const dip_ctl_request_t *req);

/* Decodes the reply to a request of cmd: the envelope always, and for a
 * success the fields that command's reply must carry. Returns 0 (whether
 * the reply says ok or not), or -1 with a sentence in err when the frame is
 * not a valid reply. */
int dip_ctl_reply_decode(const void *buf, size_t len, dip_ctl_cmd_t cmd,
                         dip_ctl_reply_t *reply, char *err, size_t errlen);
void dip_ctl_reply_release(dip_ctl_reply_t *reply);

/* A success reply: "v" and "ok" followed by body's fields (body may be NULL;
 * borrowed). Returns malloc'd JSON text, or NULL on allocation failure. */
char *dip_ctl_reply_ok(json_t *body);

/* An error reply with code and the formatted sentence. Returns malloc'd JSON
 * text, or NULL on allocation failure. */
char *dip_ctl_reply_error(dip_ctl_code_t code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

const char *dip_ctl_cmd_name(dip_ctl_cmd_t cmd);
/* The command named s, or 0. */
dip_ctl_cmd_t dip_ctl_cmd_parse(const char *s);
const char *dip_ctl_code_name(dip_ctl_code_t code);

/* 1 when s is one of the statuses of an import (pending, processing,
 * paused, completed, failed, cancelled). */
int dip_ctl_status_valid(const char *s);
/* 1 when s is a final status (completed, failed, cancelled). */
int dip_ctl_status_final(const char *s);

/* Copies at most max characters of untrusted s into out (outlen bytes) for
 * quoting in a message: anything but printable ASCII becomes '?', and a cut
 * is marked with "...". Returns out. */
char *dip_ctl_quote(const char *s, size_t max, char *out, size_t outlen);

#endif
