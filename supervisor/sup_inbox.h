/*
 * sup_inbox: the rules for the workers' messages. Facts in, one verdict
 * out, no I/O and no clock: whether a frame is heard at all (who sent it,
 * whether it decodes, whether its run proved itself with a hello naming
 * this spawn), and what follows a heard one (a worker past its window is
 * killed, waiting line errors are written, or what arrived is acked, and a
 * done from a worker already reaped ends its run). sup_inbox.c's other half
 * (declared in sup_loop_priv.h) reads the socket and carries the verdicts
 * out; tests/supervisor/test_sup_inbox.c pins every rule.
 */
#ifndef SUP_INBOX_H
#define SUP_INBOX_H

#include <stddef.h>
#include <stdint.h>

#include <bson/bson.h>

#include "dip_msg.h"
#include "sup_slot.h"

/* 1 when a hello names this run: the import (doc's _id as stored: an
 * ObjectId, a string or an integer), this supervisor (owner) and the
 * claim's epoch, and the secret made for this spawn. Else 0 with *why. */
int sup_inbox_hello_matches(const bson_t *doc, const char *owner, int64_t epoch,
                            const char *spawn_secret, const dip_msg_t *m,
                            const char **why);

/* What is known of a frame before its content is taken. */
typedef struct sup_inbox_frame_facts {
    int has_slot; /* a running (or just reaped) worker has its identity */
    int decoded;  /* dip_msg_decode accepted it */
    dip_msg_type_t type;
    int hello_ok;      /* this run's hello was heard already */
    int hello_matches; /* a HELLO: sup_inbox_hello_matches said 1 */
} sup_inbox_frame_facts_t;

typedef enum {
    SUP_INBOX_HEAR = 0,       /* take its content */
    SUP_INBOX_DROP_STRANGER,  /* no import of ours under that identity */
    SUP_INBOX_DROP_MALFORMED, /* it does not decode */
    SUP_INBOX_DROP_FORGED,    /* a hello that does not name this spawn */
    SUP_INBOX_DROP_UNPROVEN,  /* anything before this spawn's hello */
} sup_inbox_kind_t;

typedef struct sup_inbox_frame_verdict {
    sup_inbox_kind_t kind;
    int prove; /* the run's hello: hello_ok, and the window starts */
    int hear;  /* the worker is heard from: last_heard_ms = now */
    int count; /* the frame's bytes count against the window */
} sup_inbox_frame_verdict_t;

void sup_inbox_frame(const sup_inbox_frame_facts_t *f,
                     sup_inbox_frame_verdict_t *out);

/* What is known once a heard frame's content is taken. */
typedef struct sup_inbox_flow_facts {
    int running;            /* the worker process still exists */
    int exited_done;        /* it was a done, from a worker already reaped */
    size_t nerrs;           /* this worker's unwritten line errors ... */
    size_t err_bytes;       /* ... and their bytes */
    size_t all_err_bytes;   /* the bytes of every worker's */
    int64_t window;         /* bytes a worker may have unacknowledged */
    int64_t buffer_bytes;   /* DEALIMPORT_ERROR_BUFFER_BYTES */
    int pending;            /* anything at all waits to be written */
    int flush_failed;       /* the last write failed ... */
    int64_t since_flush_ms; /* ... this long ago */
} sup_inbox_flow_facts_t;

typedef struct sup_inbox_flow_verdict {
    int kill;  /* past its window (plus a frame): it breaks the protocol */
    int flush; /* write what waits now */
    int ack;   /* nothing waits: acknowledge what arrived */
    int end;   /* the done of a reaped worker: its end now */
} sup_inbox_flow_verdict_t;

/* A worker may send this many line errors before a write is due. */
#define SUP_INBOX_FLUSH_ERRORS 500
/* After a failed write, a message does not ask for the next before the
 * timers' pace (SUP_SLOT_FLUSH_MS): a failing database is not asked again
 * for every message. */

void sup_inbox_flow(const sup_inbox_flow_facts_t *f,
                    sup_inbox_flow_verdict_t *out);

#endif
