/*
 * Fuzz target for the worker-events decoder: any bytes must decode or be
 * refused, never crash or leak; a decoded message must re-encode with the
 * encoder of its type, and that frame must decode again to the same message
 * (cells of a line error may only be cut, never changed). A mismatch aborts,
 * which libFuzzer and the replay runner report as a failure.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dip_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void mismatch(const char *what)
{
    fprintf(stderr, "fuzz_dip_msg: re-encoded message differs: %s\n", what);
    abort();
}

static int same_str(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

/* The frame the encoder of m's type makes from m's fields; NULL only when
 * memory ran out. */
static char *reencode(const dip_msg_t *m)
{
    switch (m->type) {
    case DIP_MSG_HELLO:
        return dip_msg_hello(m->queue_id, m->pid, m->first_line);
    case DIP_MSG_BATCH:
        return dip_msg_batch(m->queue_id, m->lines, m->added, m->errors,
                             m->bytes, m->bytes_total, m->checkpoint,
                             m->db_round_trips);
    case DIP_MSG_LINE_ERROR: {
        size_t n = json_array_size(m->row);
        const char **cells = calloc(n ? n : 1, sizeof(*cells));
        size_t *lens = calloc(n ? n : 1, sizeof(*lens));
        char *frame = NULL;
        if (cells && lens) {
            for (size_t i = 0; i < n; i++) {
                json_t *c = json_array_get(m->row, i);
                cells[i] = json_string_value(c);
                lens[i] = json_string_length(c);
            }
            frame = dip_msg_line_error(m->queue_id, m->line, m->field,
                                       m->message, cells, lens, n);
        }
        free(cells);
        free(lens);
        return frame;
    }
    case DIP_MSG_HEARTBEAT:
        return dip_msg_heartbeat(m->queue_id);
    case DIP_MSG_DONE:
        return dip_msg_done(m->queue_id, m->status, m->lines, m->error,
                            m->notes);
    case DIP_MSG_CONTROL:
        return dip_msg_control(m->action);
    }
    mismatch("a decoded message of no known type");
    return NULL;
}

static void compare_rows(const json_t *a, const json_t *b)
{
    if (json_array_size(b) > json_array_size(a))
        mismatch("line error row grew");
    for (size_t i = 0; i < json_array_size(b); i++) {
        const json_t *ca = json_array_get(a, i), *cb = json_array_get(b, i);
        size_t la = json_string_length(ca), lb = json_string_length(cb);
        if (lb > la ||
            memcmp(json_string_value(ca), json_string_value(cb), lb) != 0)
            mismatch("line error cell is not a prefix of the original");
    }
}

static void compare(const dip_msg_t *a, const dip_msg_t *b)
{
    if (a->type != b->type)
        mismatch("type");
    if (!same_str(a->queue_id, b->queue_id))
        mismatch("queue_id");
    switch (a->type) {
    case DIP_MSG_HELLO:
        if (a->pid != b->pid || a->first_line != b->first_line)
            mismatch("hello fields");
        break;
    case DIP_MSG_BATCH:
        if (a->lines != b->lines || a->added != b->added ||
            a->errors != b->errors || a->bytes != b->bytes ||
            a->bytes_total != b->bytes_total ||
            a->db_round_trips != b->db_round_trips ||
            !json_equal(a->checkpoint, b->checkpoint))
            mismatch("batch fields");
        break;
    case DIP_MSG_LINE_ERROR:
        if (a->line != b->line || !same_str(a->field, b->field) ||
            !same_str(a->message, b->message))
            mismatch("line error fields");
        compare_rows(a->row, b->row);
        break;
    case DIP_MSG_HEARTBEAT:
        break;
    case DIP_MSG_DONE:
        if (a->status != b->status || a->lines != b->lines ||
            !same_str(a->error, b->error) ||
            (a->notes == NULL) != (b->notes == NULL) ||
            (a->notes && !json_equal(a->notes, b->notes)))
            mismatch("done fields");
        break;
    case DIP_MSG_CONTROL:
        if (a->action != b->action)
            mismatch("control action");
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dip_msg_t m, again;
    char err[256];
    char *frame;
    if (dip_msg_decode(data, size, &m, err, sizeof(err)) != 0)
        return 0;
    frame = reencode(&m);
    if (frame != NULL) {
        if (dip_msg_decode(frame, strlen(frame), &again, err, sizeof(err)) !=
            0) {
            fprintf(stderr, "fuzz_dip_msg: %s\n", err);
            mismatch("the re-encoded frame does not decode");
        }
        compare(&m, &again);
        dip_msg_release(&again);
        free(frame);
    }
    dip_msg_release(&m);
    return 0;
}
