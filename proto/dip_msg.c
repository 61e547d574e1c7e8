/*
 * dip_msg: JSON encoding and strict decoding of worker-events messages. The
 * decoder checks every field's presence and type for the message's type and
 * bounds the frame size, so a buggy or hostile worker can only get its own
 * messages refused.
 */
#include "dip_msg.h"
#include "dip_text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bounds for the original row kept with a line error: enough for a person to
 * recognise the row, never enough to bloat the error log. */
#define CELL_KEEP 1024
#define ROW_KEEP (16 * 1024)

static const char *const type_names[] = {
    NULL, "hello", "batch", "line_error", "heartbeat", "done", "control",
};
static const char *const done_names[] = {
    NULL, "completed", "failed", "paused", "cancelled", "stopped", "retry",
};
static const char *const action_names[] = {NULL, "pause", "cancel", "stop"};

const char *dip_msg_done_status_name(dip_done_status_t status)
{
    if (status < DIP_DONE_COMPLETED || status > DIP_DONE_RETRY)
        return "unknown";
    return done_names[status];
}

const char *dip_msg_control_action_name(dip_control_action_t action)
{
    if (action < DIP_CONTROL_PAUSE || action > DIP_CONTROL_STOP)
        return "unknown";
    return action_names[action];
}

int dip_msg_is_oid(const char *s)
{
    if (s == NULL)
        return 0;
    for (int i = 0; i < 24; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return 0;
    }
    return s[24] == '\0';
}

static int lookup(const char *const *names, int n, const char *s)
{
    for (int i = 1; i < n; i++)
        if (strcmp(names[i], s) == 0)
            return i;
    return 0;
}

static char *finish(json_t *o)
{
    char *s = NULL;
    if (o)
        s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

static json_t *base(dip_msg_type_t type, const char *queue_id)
{
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    if (json_object_set_new(o, "v", json_integer(DIP_MSG_VERSION)) ||
        json_object_set_new(o, "type", json_string(type_names[type])) ||
        (queue_id &&
         json_object_set_new(o, "queue_id", json_string(queue_id)))) {
        json_decref(o);
        return NULL;
    }
    return o;
}

char *dip_msg_hello(const char *queue_id, int64_t pid, int64_t first_line)
{
    json_t *o = base(DIP_MSG_HELLO, queue_id);
    if (o && (json_object_set_new(o, "pid", json_integer(pid)) ||
              json_object_set_new(o, "first_line", json_integer(first_line))))
        json_decref(o), o = NULL;
    return finish(o);
}

char *dip_msg_batch(const char *queue_id, int64_t lines, int64_t added,
                    int64_t errors, int64_t bytes, int64_t bytes_total,
                    json_t *checkpoint, int64_t db_round_trips)
{
    json_t *o = base(DIP_MSG_BATCH, queue_id);
    if (o &&
        (json_object_set_new(o, "lines", json_integer(lines)) ||
         json_object_set_new(o, "added", json_integer(added)) ||
         json_object_set_new(o, "errors", json_integer(errors)) ||
         json_object_set_new(o, "bytes", json_integer(bytes)) ||
         json_object_set_new(o, "bytes_total", json_integer(bytes_total)) ||
         json_object_set_new(o, "db_round_trips",
                             json_integer(db_round_trips)) ||
         json_object_set(o, "checkpoint",
                         checkpoint ? checkpoint : json_object())))
        json_decref(o), o = NULL;
    return finish(o);
}

char *dip_msg_line_error(const char *queue_id, int64_t line, const char *field,
                         const char *message, const char *const *cells,
                         const size_t *lens, size_t ncells)
{
    json_t *o = base(DIP_MSG_LINE_ERROR, queue_id);
    json_t *row = json_array();
    size_t kept = 0;
    if (o == NULL || row == NULL)
        goto fail;
    for (size_t i = 0; i < ncells; i++) {
        size_t len = lens ? lens[i] : strlen(cells[i]);
        size_t n = dip_text_cut(cells[i], len, CELL_KEEP);
        json_t *cell;
        if (kept + n > ROW_KEEP)
            n = dip_text_cut(cells[i], n, ROW_KEEP - kept);
        kept += n;
        /* Cells are UTF-8 from the reader; anything else is kept as
         * an empty cell rather than failing the whole message. */
        cell = json_stringn(cells[i], n);
        if (cell == NULL)
            cell = json_string("");
        if (json_array_append_new(row, cell))
            goto fail;
        if (kept >= ROW_KEEP)
            break;
    }
    if (json_object_set_new(o, "line", json_integer(line)) ||
        json_object_set_new(o, "field", json_string(field ? field : "")) ||
        json_object_set_new(o, "message", json_string(message)) ||
        json_object_set_new(o, "row", row))
        goto fail_norow;
    return finish(o);
fail:
    json_decref(row);
fail_norow:
    json_decref(o);
    return NULL;
}

char *dip_msg_heartbeat(const char *queue_id)
{
    return finish(base(DIP_MSG_HEARTBEAT, queue_id));
}

char *dip_msg_done(const char *queue_id, dip_done_status_t status,
                   int64_t lines, const char *error, json_t *notes)
{
    json_t *o = base(DIP_MSG_DONE, queue_id);
    if (o && (json_object_set_new(
                  o, "status", json_string(dip_msg_done_status_name(status))) ||
              json_object_set_new(o, "lines", json_integer(lines)) ||
              (error && json_object_set_new(o, "error", json_string(error))) ||
              (notes && json_object_set(o, "notes", notes))))
        json_decref(o), o = NULL;
    return finish(o);
}

char *dip_msg_control(dip_control_action_t action)
{
    json_t *o = base(DIP_MSG_CONTROL, NULL);
    if (o && json_object_set_new(
                 o, "action", json_string(dip_msg_control_action_name(action))))
        json_decref(o), o = NULL;
    return finish(o);
}

/* Field readers: each returns 0 or -1 with err naming the field. */
static int get_int(json_t *o, const char *key, int64_t min, int64_t *out,
                   char *err, size_t errlen)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v) || json_integer_value(v) < min) {
        snprintf(err, errlen, "field '%s' is missing or not an integer >= %lld",
                 key, (long long)min);
        return -1;
    }
    *out = json_integer_value(v);
    return 0;
}

static int get_str(json_t *o, const char *key, const char **out, char *err,
                   size_t errlen)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_string(v)) {
        snprintf(err, errlen, "field '%s' is missing or not a string", key);
        return -1;
    }
    *out = json_string_value(v);
    return 0;
}

static int decode_fields(dip_msg_t *m, char *err, size_t errlen)
{
    json_t *o = m->root;
    const char *s;
    switch (m->type) {
    case DIP_MSG_HELLO:
        return get_int(o, "pid", 1, &m->pid, err, errlen) ||
                       get_int(o, "first_line", 1, &m->first_line, err, errlen)
                   ? -1
                   : 0;
    case DIP_MSG_BATCH:
        if (get_int(o, "lines", 0, &m->lines, err, errlen) ||
            get_int(o, "added", 0, &m->added, err, errlen) ||
            get_int(o, "errors", 0, &m->errors, err, errlen) ||
            get_int(o, "bytes", 0, &m->bytes, err, errlen) ||
            get_int(o, "bytes_total", -1, &m->bytes_total, err, errlen))
            return -1;
        /* Optional: a worker that does not count them sends none. */
        if (json_object_get(o, "db_round_trips") &&
            get_int(o, "db_round_trips", 0, &m->db_round_trips, err, errlen))
            return -1;
        m->checkpoint = json_object_get(o, "checkpoint");
        if (!json_is_object(m->checkpoint)) {
            snprintf(err, errlen, "field 'checkpoint' is not an object");
            return -1;
        }
        return 0;
    case DIP_MSG_LINE_ERROR:
        if (get_int(o, "line", 1, &m->line, err, errlen) ||
            get_str(o, "field", &m->field, err, errlen) ||
            get_str(o, "message", &m->message, err, errlen))
            return -1;
        m->row = json_object_get(o, "row");
        if (!json_is_array(m->row)) {
            snprintf(err, errlen, "field 'row' is not an array");
            return -1;
        }
        for (size_t i = 0; i < json_array_size(m->row); i++) {
            if (!json_is_string(json_array_get(m->row, i))) {
                snprintf(err, errlen, "field 'row' holds a non-string cell");
                return -1;
            }
        }
        return 0;
    case DIP_MSG_HEARTBEAT:
        return 0;
    case DIP_MSG_DONE:
        if (get_str(o, "status", &s, err, errlen) ||
            get_int(o, "lines", 0, &m->lines, err, errlen))
            return -1;
        m->status = (dip_done_status_t)lookup(done_names, 7, s);
        if (m->status == 0) {
            snprintf(err, errlen, "unknown done status '%.32s'", s);
            return -1;
        }
        if (json_object_get(o, "error") &&
            get_str(o, "error", &m->error, err, errlen))
            return -1;
        m->notes = json_object_get(o, "notes");
        if (m->notes && !json_is_array(m->notes)) {
            snprintf(err, errlen, "field 'notes' is not an array");
            return -1;
        }
        return 0;
    case DIP_MSG_CONTROL:
        if (get_str(o, "action", &s, err, errlen))
            return -1;
        m->action = (dip_control_action_t)lookup(action_names, 4, s);
        if (m->action == 0) {
            snprintf(err, errlen, "unknown control action '%.32s'", s);
            return -1;
        }
        return 0;
    }
    return -1;
}

int dip_msg_decode(const void *buf, size_t len, dip_msg_t *msg, char *err,
                   size_t errlen)
{
    json_error_t jerr;
    json_t *v;
    const char *type;
    memset(msg, 0, sizeof(*msg));
    if (len > DIP_MSG_MAX_FRAME) {
        snprintf(err, errlen, "frame of %zu bytes exceeds the %u byte limit",
                 len, DIP_MSG_MAX_FRAME);
        return -1;
    }
    msg->root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (msg->root == NULL) {
        snprintf(err, errlen, "not JSON: %s", jerr.text);
        return -1;
    }
    if (!json_is_object(msg->root)) {
        snprintf(err, errlen, "not a JSON object");
        goto fail;
    }
    v = json_object_get(msg->root, "v");
    if (!json_is_integer(v) || json_integer_value(v) != DIP_MSG_VERSION) {
        snprintf(err, errlen, "unsupported protocol version (want v=%d)",
                 DIP_MSG_VERSION);
        goto fail;
    }
    if (get_str(msg->root, "type", &type, err, errlen))
        goto fail;
    msg->type = (dip_msg_type_t)lookup(type_names, 7, type);
    if (msg->type == 0) {
        snprintf(err, errlen, "unknown message type '%.32s'", type);
        goto fail;
    }
    if (msg->type != DIP_MSG_CONTROL) {
        if (get_str(msg->root, "queue_id", &msg->queue_id, err, errlen))
            goto fail;
        if (!dip_msg_is_oid(msg->queue_id)) {
            snprintf(err, errlen, "field 'queue_id' is not an ObjectId");
            goto fail;
        }
    }
    if (decode_fields(msg, err, errlen) < 0)
        goto fail;
    return 0;
fail:
    json_decref(msg->root);
    memset(msg, 0, sizeof(*msg));
    return -1;
}

void dip_msg_release(dip_msg_t *msg)
{
    if (msg == NULL)
        return;
    json_decref(msg->root);
    memset(msg, 0, sizeof(*msg));
}
