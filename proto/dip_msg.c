/*
 * dip_msg: BSON encoding and strict decoding of worker-events messages,
 * version 2. The decoder validates the whole frame once (structure and
 * UTF-8, no NUL inside strings), then checks every field's presence and type
 * for the message's type, so a buggy or hostile worker can only get its own
 * messages refused, and what it decodes can be stored as it is.
 */
#include "dip_msg.h"
#include "dip_text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const type_names[] = {
    NULL,        "hello", "start",   "batch", "line_error",
    "heartbeat", "done",  "control", "ack",
};
#define NTYPES ((int)(sizeof(type_names) / sizeof(type_names[0])))
static const char *const done_names[] = {
    NULL, "completed", "failed", "paused", "cancelled", "stopped", "retry",
};
static const char *const action_names[] = {NULL, "pause", "cancel", "stop"};

const char *dip_msg_type_name(dip_msg_type_t type)
{
    if ((int)type < 1 || (int)type >= NTYPES)
        return "unknown";
    return type_names[type];
}

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

static int is_hex(const char *s, size_t n)
{
    if (s == NULL)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return 0;
    }
    return s[n] == '\0';
}

int dip_msg_is_oid(const char *s)
{
    return is_hex(s, 24);
}

int dip_msg_is_secret(const char *s)
{
    return is_hex(s, DIP_MSG_SECRET_LEN);
}

static int lookup(const char *const *names, int n, const char *s)
{
    for (int i = 1; i < n; i++)
        if (strcmp(names[i], s) == 0)
            return i;
    return 0;
}

/* ---- encoders ------------------------------------------------------- */

/* size: the frame's expected size, so it is allocated once. */
static bson_t *base_sized(dip_msg_type_t type, size_t size)
{
    bson_t *b = bson_sized_new(size);
    if (b && !(BSON_APPEND_INT32(b, "v", DIP_MSG_VERSION) &&
               BSON_APPEND_UTF8(b, "type", type_names[type]))) {
        bson_destroy(b);
        return NULL;
    }
    return b;
}

static bson_t *base(dip_msg_type_t type)
{
    return base_sized(type, 128);
}

/* bson_append_* fail only when a document would pass 2 GB: one failure
 * check per encoder is enough. */
static bson_t *done_or_null(bson_t *b, bool ok)
{
    if (b && !ok) {
        bson_destroy(b);
        return NULL;
    }
    return b;
}

static bool append_strings(bson_t *b, const char *key, const char *const *strs,
                           const size_t *lens, size_t n)
{
    bson_t arr;
    bool ok = bson_append_array_begin(b, key, -1, &arr);
    for (size_t i = 0; ok && i < n; i++) {
        char kb[16];
        const char *k;
        size_t kl = bson_uint32_to_string((uint32_t)i, &k, kb, sizeof(kb));
        ok = bson_append_utf8(&arr, k, (int)kl, strs[i],
                              lens ? (int)lens[i] : -1);
    }
    return bson_append_array_end(b, &arr) && ok;
}

bson_t *dip_msg_hello(const bson_value_t *queue_id, int64_t pid,
                      const char *owner, int64_t epoch, const char *secret)
{
    bson_t *b = base(DIP_MSG_HELLO);
    if (b == NULL)
        return NULL;
    return done_or_null(b, bson_append_value(b, "queue_id", -1, queue_id) &&
                               BSON_APPEND_INT64(b, "pid", pid) &&
                               BSON_APPEND_UTF8(b, "owner", owner) &&
                               BSON_APPEND_INT64(b, "epoch", epoch) &&
                               BSON_APPEND_UTF8(b, "secret", secret));
}

bson_t *dip_msg_start(int64_t first_line, const char *const *header,
                      size_t nheader, const bson_t *file)
{
    bson_t *b = base(DIP_MSG_START);
    bson_t empty = BSON_INITIALIZER;
    bool ok;
    if (b == NULL)
        return NULL;
    ok = BSON_APPEND_INT64(b, "first_line", first_line) &&
         (header == NULL ||
          append_strings(b, "header", header, NULL, nheader)) &&
         BSON_APPEND_DOCUMENT(b, "file", file ? file : &empty);
    return done_or_null(b, ok);
}

bson_t *dip_msg_batch(int64_t lines, int64_t added, int64_t errors,
                      int64_t errors_not_stored, int64_t bytes,
                      int64_t bytes_total, const bson_t *checkpoint,
                      int64_t db_round_trips)
{
    bson_t *b = base(DIP_MSG_BATCH);
    bson_t empty = BSON_INITIALIZER;
    if (b == NULL)
        return NULL;
    return done_or_null(
        b, BSON_APPEND_INT64(b, "lines", lines) &&
               BSON_APPEND_INT64(b, "added", added) &&
               BSON_APPEND_INT64(b, "errors", errors) &&
               BSON_APPEND_INT64(b, "errors_not_stored", errors_not_stored) &&
               BSON_APPEND_INT64(b, "bytes", bytes) &&
               BSON_APPEND_INT64(b, "bytes_total", bytes_total) &&
               BSON_APPEND_INT64(b, "db_round_trips", db_round_trips) &&
               BSON_APPEND_DOCUMENT(b, "checkpoint",
                                    checkpoint ? checkpoint : &empty));
}

/* The line error is the one message sent per rejected row: it is written
 * byte by byte (BSON's layout, little-endian lengths) into one buffer
 * sized for it, rather than through libbson's general appends, which cost
 * several times the bytes they copy. */
typedef struct raw {
    uint8_t *buf;
    size_t len, cap;
} raw_t;

static void raw_put(raw_t *w, const void *p, size_t n)
{
    if (w->len + n > w->cap) {
        size_t cap = w->cap * 2;
        while (cap < w->len + n)
            cap *= 2;
        w->buf = bson_realloc(w->buf, cap); /* never NULL: it aborts */
        w->cap = cap;
    }
    memcpy(w->buf + w->len, p, n);
    w->len += n;
}

static void raw_u32_at(raw_t *w, size_t at, uint32_t v)
{
    w->buf[at] = (uint8_t)v;
    w->buf[at + 1] = (uint8_t)(v >> 8);
    w->buf[at + 2] = (uint8_t)(v >> 16);
    w->buf[at + 3] = (uint8_t)(v >> 24);
}

static void raw_key(raw_t *w, uint8_t type, const char *k, size_t kl)
{
    raw_put(w, &type, 1);
    raw_put(w, k, kl + 1); /* with its NUL */
}

static void raw_utf8(raw_t *w, const char *k, size_t kl, const char *s,
                     size_t n)
{
    static const uint8_t nul = 0;
    size_t at;
    raw_key(w, BSON_TYPE_UTF8, k, kl);
    at = w->len;
    raw_put(w, "\0\0\0\0", 4);
    raw_u32_at(w, at, (uint32_t)n + 1);
    raw_put(w, s, n);
    raw_put(w, &nul, 1);
}

static void raw_int64(raw_t *w, const char *k, size_t kl, int64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)((uint64_t)v >> (8 * i));
    raw_key(w, BSON_TYPE_INT64, k, kl);
    raw_put(w, b, 8);
}

/* Opens a document (or array): returns where its length goes. */
static size_t raw_begin(raw_t *w)
{
    size_t at = w->len;
    raw_put(w, "\0\0\0\0", 4);
    return at;
}

static void raw_end(raw_t *w, size_t at)
{
    static const uint8_t nul = 0;
    raw_put(w, &nul, 1);
    raw_u32_at(w, at, (uint32_t)(w->len - at));
}

bson_t *dip_msg_line_error(int64_t line, const char *field, const char *message,
                           const char *const *cells, const size_t *lens,
                           size_t ncells, size_t max_bytes, int truncated)
{
    raw_t w = {NULL, 0, 0};
    size_t total = 5; /* the array's own length and terminator */
    size_t want = 160 + strlen(message) + (field ? strlen(field) : 0);
    size_t doc, arr;
    uint8_t v = DIP_MSG_VERSION, flag;
    bson_t *b;
    for (size_t i = 0; i < ncells && want < max_bytes + 1024; i++)
        want += 12 + (lens ? lens[i] : strlen(cells[i]));
    w.cap = want < max_bytes + 1024 ? want : max_bytes + 1024;
    w.buf = bson_malloc(w.cap);
    doc = raw_begin(&w);
    /* {v: int32, type, line, field, message, row: [...], row_truncated} */
    raw_key(&w, BSON_TYPE_INT32, "v", 1);
    raw_put(&w, (const uint8_t[]){v, 0, 0, 0}, 4);
    raw_utf8(&w, "type", 4, type_names[DIP_MSG_LINE_ERROR],
             strlen(type_names[DIP_MSG_LINE_ERROR]));
    raw_int64(&w, "line", 4, line);
    field = field ? field : "";
    raw_utf8(&w, "field", 5, field, strlen(field));
    raw_utf8(&w, "message", 7, message, strlen(message));
    raw_key(&w, BSON_TYPE_ARRAY, "row", 3);
    arr = raw_begin(&w);
    for (size_t i = 0; i < ncells; i++) {
        char kb[16];
        const char *k;
        size_t kl = bson_uint32_to_string((uint32_t)i, &k, kb, sizeof(kb));
        size_t len = lens ? lens[i] : strlen(cells[i]);
        /* type byte, key and its NUL, length, the text's NUL */
        size_t over = 1 + kl + 1 + 4 + 1;
        if (total + over + len > max_bytes) {
            truncated = 1;
            if (total + over < max_bytes)
                raw_utf8(&w, k, kl, cells[i],
                         dip_text_cut(cells[i], len, max_bytes - total - over));
            break;
        }
        total += over + len;
        raw_utf8(&w, k, kl, cells[i], len);
    }
    raw_end(&w, arr);
    raw_key(&w, BSON_TYPE_BOOL, "row_truncated", 13);
    flag = truncated != 0;
    raw_put(&w, &flag, 1);
    raw_end(&w, doc);
    b = bson_new_from_data(w.buf, w.len);
    bson_free(w.buf);
    return b;
}

bson_t *dip_msg_heartbeat(void)
{
    return base(DIP_MSG_HEARTBEAT);
}

bson_t *dip_msg_done(dip_done_status_t status, int64_t lines,
                     int64_t errors_not_stored, const char *error,
                     const char *const *notes, size_t nnotes)
{
    bson_t *b = base(DIP_MSG_DONE);
    if (b == NULL)
        return NULL;
    return done_or_null(
        b,
        BSON_APPEND_UTF8(b, "status", dip_msg_done_status_name(status)) &&
            BSON_APPEND_INT64(b, "lines", lines) &&
            BSON_APPEND_INT64(b, "errors_not_stored", errors_not_stored) &&
            (error == NULL || BSON_APPEND_UTF8(b, "error", error)) &&
            (notes == NULL || append_strings(b, "notes", notes, NULL, nnotes)));
}

bson_t *dip_msg_done_dry(dip_done_status_t status, int64_t lines,
                         int64_t errors_not_stored, const char *error,
                         const char *const *notes, size_t nnotes,
                         int64_t would_add, int64_t new_stages_count,
                         const char *const *names, size_t nnames)
{
    bson_t *b =
        dip_msg_done(status, lines, errors_not_stored, error, notes, nnotes);
    if (b == NULL)
        return NULL;
    if (nnames > DIP_MSG_NEW_STAGES_MAX)
        nnames = DIP_MSG_NEW_STAGES_MAX;
    return done_or_null(
        b, BSON_APPEND_BOOL(b, "dry_run", true) &&
               BSON_APPEND_INT64(b, "would_add", would_add) &&
               BSON_APPEND_INT64(b, "new_stages_count", new_stages_count) &&
               append_strings(b, "new_stages", names, NULL, nnames));
}

int dip_msg_done_counts(bson_t *done, int64_t updated, int64_t unchanged)
{
    return BSON_APPEND_INT64(done, "updated", updated) &&
                   BSON_APPEND_INT64(done, "unchanged", unchanged)
               ? 0
               : -1;
}

bson_t *dip_msg_control(dip_control_action_t action)
{
    bson_t *b = base(DIP_MSG_CONTROL);
    if (b == NULL)
        return NULL;
    return done_or_null(
        b, BSON_APPEND_UTF8(b, "action", dip_msg_control_action_name(action)));
}

bson_t *dip_msg_ack(int64_t acked, int64_t window)
{
    bson_t *b = base(DIP_MSG_ACK);
    if (b == NULL)
        return NULL;
    return done_or_null(b, BSON_APPEND_INT64(b, "acked", acked) &&
                               BSON_APPEND_INT64(b, "window", window));
}

/* The strings of an array view, for re-encoding. */
static int strings_of(const bson_t *arr, const char ***strs, size_t **lens,
                      size_t *n)
{
    bson_iter_t it;
    size_t cap = 0;
    *strs = NULL;
    *lens = NULL;
    *n = 0;
    if (!bson_iter_init(&it, arr))
        return -1;
    while (bson_iter_next(&it))
        cap++;
    *strs = calloc(cap + 1, sizeof(char *));
    *lens = calloc(cap + 1, sizeof(size_t));
    if (*strs == NULL || *lens == NULL || !bson_iter_init(&it, arr))
        return -1;
    while (bson_iter_next(&it) && *n < cap) {
        uint32_t l = 0;
        (*strs)[*n] = bson_iter_utf8(&it, &l);
        (*lens)[*n] = l;
        (*n)++;
    }
    return 0;
}

bson_t *dip_msg_encode(const dip_msg_t *m)
{
    const char **strs = NULL;
    size_t *lens = NULL, n = 0;
    bson_t *b = NULL;
    switch (m->type) {
    case DIP_MSG_HELLO:
        b = dip_msg_hello(&m->queue_id, m->pid, m->owner, m->epoch, m->secret);
        break;
    case DIP_MSG_START:
        if (m->has_header && strings_of(&m->header, &strs, &lens, &n) < 0)
            break;
        b = dip_msg_start(m->first_line, m->has_header ? strs : NULL, n,
                          &m->file);
        break;
    case DIP_MSG_BATCH:
        b = dip_msg_batch(m->lines, m->added, m->errors, m->errors_not_stored,
                          m->bytes, m->bytes_total, &m->checkpoint,
                          m->db_round_trips);
        break;
    case DIP_MSG_LINE_ERROR:
        if (strings_of(&m->row, &strs, &lens, &n) < 0)
            break;
        b = dip_msg_line_error(m->line, m->field, m->message, strs, lens, n,
                               DIP_MSG_MAX_FRAME, m->row_truncated);
        break;
    case DIP_MSG_HEARTBEAT:
        b = dip_msg_heartbeat();
        break;
    case DIP_MSG_DONE:
        if (m->has_notes && strings_of(&m->notes, &strs, &lens, &n) < 0)
            break;
        if (m->dry_run) {
            const char **names = NULL;
            size_t *nlens = NULL, nn = 0;
            if (strings_of(&m->new_stages, &names, &nlens, &nn) == 0)
                b = dip_msg_done_dry(m->status, m->lines, m->errors_not_stored,
                                     m->error, m->has_notes ? strs : NULL, n,
                                     m->would_add, m->new_stages_count, names,
                                     nn);
            free(names);
            free(nlens);
        } else {
            b = dip_msg_done(m->status, m->lines, m->errors_not_stored,
                             m->error, m->has_notes ? strs : NULL, n);
        }
        if (b && m->has_counts &&
            dip_msg_done_counts(b, m->updated, m->unchanged) < 0) {
            bson_destroy(b);
            b = NULL;
        }
        break;
    case DIP_MSG_CONTROL:
        b = dip_msg_control(m->action);
        break;
    case DIP_MSG_ACK:
        b = dip_msg_ack(m->acked, m->window);
        break;
    }
    free(strs);
    free(lens);
    return b;
}

/* ---- decoder -------------------------------------------------------- */

/* Field readers: each returns 0 or -1 with err naming the field. */
static int get_int(const bson_t *o, const char *key, int64_t min, int64_t *out,
                   char *err, size_t errlen)
{
    bson_iter_t it;
    if (!bson_iter_init_find(&it, o, key) ||
        !(BSON_ITER_HOLDS_INT64(&it) || BSON_ITER_HOLDS_INT32(&it)) ||
        bson_iter_as_int64(&it) < min) {
        snprintf(err, errlen, "field '%s' is missing or not an integer >= %lld",
                 key, (long long)min);
        return -1;
    }
    *out = bson_iter_as_int64(&it);
    return 0;
}

static int get_str(const bson_t *o, const char *key, const char **out,
                   char *err, size_t errlen)
{
    bson_iter_t it;
    if (!bson_iter_init_find(&it, o, key) || !BSON_ITER_HOLDS_UTF8(&it)) {
        snprintf(err, errlen, "field '%s' is missing or not a string", key);
        return -1;
    }
    *out = bson_iter_utf8(&it, NULL);
    return 0;
}

/* A sub-document (or, with strings, an array of strings) as a view. */
static int get_doc(const bson_t *o, const char *key, int array, int strings,
                   bson_t *out, char *err, size_t errlen)
{
    bson_iter_t it, e;
    const uint8_t *data;
    uint32_t len;
    if (!bson_iter_init_find(&it, o, key) ||
        !(array ? BSON_ITER_HOLDS_ARRAY(&it) : BSON_ITER_HOLDS_DOCUMENT(&it))) {
        snprintf(err, errlen, "field '%s' is missing or not %s", key,
                 array ? "an array" : "a document");
        return -1;
    }
    if (array)
        bson_iter_array(&it, &len, &data);
    else
        bson_iter_document(&it, &len, &data);
    if (!bson_init_static(out, data, len)) {
        snprintf(err, errlen, "field '%s' is malformed", key);
        return -1;
    }
    if (strings && bson_iter_init(&e, out)) {
        while (bson_iter_next(&e)) {
            if (!BSON_ITER_HOLDS_UTF8(&e)) {
                snprintf(err, errlen, "field '%s' holds a non-string", key);
                return -1;
            }
        }
    }
    return 0;
}

static int has(const bson_t *o, const char *key)
{
    bson_iter_t it;
    return bson_iter_init_find(&it, o, key);
}

static int decode_fields(const bson_t *o, dip_msg_t *m, char *err,
                         size_t errlen)
{
    bson_iter_t it;
    const char *s;
    switch (m->type) {
    case DIP_MSG_HELLO:
        if (!bson_iter_init_find(&it, o, "queue_id") ||
            !(BSON_ITER_HOLDS_OID(&it) || BSON_ITER_HOLDS_UTF8(&it) ||
              BSON_ITER_HOLDS_INT32(&it) || BSON_ITER_HOLDS_INT64(&it))) {
            snprintf(err, errlen,
                     "field 'queue_id' is missing or not an ObjectId, a "
                     "string or an integer");
            return -1;
        }
        m->queue_id = *bson_iter_value(&it);
        if (get_int(o, "pid", 1, &m->pid, err, errlen) ||
            get_str(o, "owner", &m->owner, err, errlen) ||
            get_int(o, "epoch", 0, &m->epoch, err, errlen) ||
            get_str(o, "secret", &m->secret, err, errlen))
            return -1;
        return 0;
    case DIP_MSG_START:
        if (get_int(o, "first_line", 1, &m->first_line, err, errlen) ||
            get_doc(o, "file", 0, 0, &m->file, err, errlen))
            return -1;
        m->has_header = has(o, "header");
        if (m->has_header &&
            get_doc(o, "header", 1, 1, &m->header, err, errlen))
            return -1;
        return 0;
    case DIP_MSG_BATCH:
        if (get_int(o, "lines", 0, &m->lines, err, errlen) ||
            get_int(o, "added", 0, &m->added, err, errlen) ||
            get_int(o, "errors", 0, &m->errors, err, errlen) ||
            get_int(o, "errors_not_stored", 0, &m->errors_not_stored, err,
                    errlen) ||
            get_int(o, "bytes", 0, &m->bytes, err, errlen) ||
            get_int(o, "bytes_total", -1, &m->bytes_total, err, errlen) ||
            get_int(o, "db_round_trips", 0, &m->db_round_trips, err, errlen) ||
            get_doc(o, "checkpoint", 0, 0, &m->checkpoint, err, errlen))
            return -1;
        return 0;
    case DIP_MSG_LINE_ERROR:
        if (get_int(o, "line", 1, &m->line, err, errlen) ||
            get_str(o, "field", &m->field, err, errlen) ||
            get_str(o, "message", &m->message, err, errlen) ||
            get_doc(o, "row", 1, 1, &m->row, err, errlen))
            return -1;
        if (!bson_iter_init_find(&it, o, "row_truncated") ||
            !BSON_ITER_HOLDS_BOOL(&it)) {
            snprintf(err, errlen,
                     "field 'row_truncated' is missing or not a boolean");
            return -1;
        }
        m->row_truncated = bson_iter_bool(&it);
        return 0;
    case DIP_MSG_HEARTBEAT:
        return 0;
    case DIP_MSG_DONE:
        if (get_str(o, "status", &s, err, errlen) ||
            get_int(o, "lines", 0, &m->lines, err, errlen) ||
            get_int(o, "errors_not_stored", 0, &m->errors_not_stored, err,
                    errlen))
            return -1;
        m->status = (dip_done_status_t)lookup(done_names, 7, s);
        if (m->status == 0) {
            snprintf(err, errlen, "unknown done status '%.32s'", s);
            return -1;
        }
        if (has(o, "error") && get_str(o, "error", &m->error, err, errlen))
            return -1;
        m->has_notes = has(o, "notes");
        if (m->has_notes && get_doc(o, "notes", 1, 1, &m->notes, err, errlen))
            return -1;
        if (has(o, "updated") || has(o, "unchanged")) {
            m->has_counts = 1;
            if (get_int(o, "updated", 0, &m->updated, err, errlen) ||
                get_int(o, "unchanged", 0, &m->unchanged, err, errlen))
                return -1;
        }
        if (!bson_iter_init_find(&it, o, "dry_run"))
            return 0;
        if (!BSON_ITER_HOLDS_BOOL(&it)) {
            snprintf(err, errlen, "field 'dry_run' is not a boolean");
            return -1;
        }
        m->dry_run = bson_iter_bool(&it);
        if (!m->dry_run)
            return 0;
        if (get_int(o, "would_add", 0, &m->would_add, err, errlen) ||
            get_int(o, "new_stages_count", 0, &m->new_stages_count, err,
                    errlen) ||
            get_doc(o, "new_stages", 1, 1, &m->new_stages, err, errlen))
            return -1;
        if (bson_count_keys(&m->new_stages) > DIP_MSG_NEW_STAGES_MAX) {
            snprintf(err, errlen,
                     "field 'new_stages' names more than %d stages",
                     DIP_MSG_NEW_STAGES_MAX);
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
    case DIP_MSG_ACK:
        return get_int(o, "acked", 0, &m->acked, err, errlen) ||
                       get_int(o, "window", 0, &m->window, err, errlen)
                   ? -1
                   : 0;
    }
    return -1;
}

/* Every key and string, at every depth, is UTF-8 without NUL: the one
 * check of the frame's text (libbson's own lets a sequence cut at a
 * string's end through). Returns 0, or -1 when something is not. */
static int text_ok(const bson_t *doc, int depth)
{
    bson_iter_t it;
    if (depth > 8 || !bson_iter_init(&it, doc))
        return -1;
    while (bson_iter_next(&it)) {
        const char *k = bson_iter_key(&it);
        if (!dip_text_utf8_valid(k, bson_iter_key_len(&it)))
            return -1;
        if (BSON_ITER_HOLDS_UTF8(&it)) {
            uint32_t l = 0;
            const char *v = bson_iter_utf8(&it, &l);
            if (memchr(v, '\0', l) || !dip_text_utf8_valid(v, l))
                return -1;
        } else if (BSON_ITER_HOLDS_DOCUMENT(&it) ||
                   BSON_ITER_HOLDS_ARRAY(&it)) {
            const uint8_t *d;
            uint32_t l;
            bson_t sub;
            if (BSON_ITER_HOLDS_DOCUMENT(&it))
                bson_iter_document(&it, &l, &d);
            else
                bson_iter_array(&it, &l, &d);
            if (!bson_init_static(&sub, d, l) || text_ok(&sub, depth + 1) < 0)
                return -1;
        }
    }
    return it.err_off ? -1 : 0;
}

int dip_msg_decode(const void *buf, size_t len, dip_msg_t *msg, char *err,
                   size_t errlen)
{
    bson_t root;
    bson_iter_t it;
    const char *type;
    memset(msg, 0, sizeof(*msg));
    if (len > DIP_MSG_MAX_FRAME) {
        snprintf(err, errlen, "frame of %zu bytes exceeds the %u byte limit",
                 len, DIP_MSG_MAX_FRAME);
        return -1;
    }
    if (!bson_init_static(&root, buf, len)) {
        snprintf(err, errlen, "not a BSON document (%zu bytes)", len);
        return -1;
    }
    /* Once, for the whole frame, structure and text in one walk (the
     * iterator checks every element's bounds): what passes can be stored
     * as it is. */
    if (text_ok(&root, 0) < 0) {
        snprintf(err, errlen,
                 "not a valid BSON document (a malformed element, text that "
                 "is not UTF-8, a NUL in a string, or nesting deeper than "
                 "8)");
        return -1;
    }
    if (!bson_iter_init_find(&it, &root, "v") || !BSON_ITER_HOLDS_INT32(&it) ||
        bson_iter_int32(&it) != DIP_MSG_VERSION) {
        snprintf(err, errlen, "unsupported protocol version (want v=%d)",
                 DIP_MSG_VERSION);
        return -1;
    }
    if (get_str(&root, "type", &type, err, errlen))
        goto fail;
    msg->type = (dip_msg_type_t)lookup(type_names, NTYPES, type);
    if (msg->type == 0) {
        char q[48];
        dip_text_format(q, sizeof(q), NULL, "%s", type);
        snprintf(err, errlen, "unknown message type '%s'", q);
        goto fail;
    }
    if (decode_fields(&root, msg, err, errlen) < 0)
        goto fail;
    return 0;
fail:
    memset(msg, 0, sizeof(*msg));
    return -1;
}
