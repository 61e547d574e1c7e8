/*
 * wrk_map: mapping, normalization and validation of CSV rows into deals. The
 * mapping is checked whole when the import starts, so that a queue document
 * that would let a CSV write outside its deal (account_id, _id, $-operators,
 * dotted paths) fails before any row is read. Rows are then handled in two
 * passes over a fixed set of stack slots, one per standard field: the first
 * validates every mapped cell and stops at the first bad one, the second
 * appends the values; no row allocates anything but the BSON it builds. The
 * rules themselves are listed in wrk_map.h.
 */
#include "wrk_map.h"
#include "dip_bson.h"
#include "dip_text.h"
#include "wrk_fields.h"
#include "wrk_format.h"
#include "wrk_values.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NONE ((size_t)-1)
#define QUOTE_MAX 96 /* bytes of a value quoted in a message */
#define TOKEN_MAX 64 /* longer than any status or contract type */
#define NAMES_MAX 160

typedef struct {
    char *column;             /* the mapping's key, as written */
    char *target;             /* standard field name or custom field id */
    const wrk_field_t *field; /* NULL for a custom field */
    size_t index;             /* header position once bound */
} entry_t;

struct wrk_map {
    entry_t *entries;
    size_t n;
    size_t ncustom;
    size_t by_field[WRK_FIELDS_MAX]; /* entry of each standard field */
    int bound;
    char status_names[NAMES_MAX];
    char contract_names[NAMES_MAX];
    wrk_format_reading_t reading; /* how numbers and dates are read */
    int keep_empty;               /* wrk_map_set_keep_empty */
};

/* One standard field's validated value, between the two passes. */
typedef struct {
    int set;
    const char *p; /* text to store (cell, canonical word or buf) */
    size_t len;
    double d;
    int64_t ms;
    char buf[4];
} slot_t;

/* --- bytes and UTF-8 ---------------------------------------------------- */

/* Well-formed UTF-8 without NUL bytes (MongoDB stores neither). */
static int utf8_valid(const char *s, size_t len)
{
    return memchr(s, 0, len) == NULL && dip_text_utf8_valid(s, len);
}

/* Bytes of a dash at p: '-', U+2010-U+2015 or U+2212; 0 otherwise. */
static size_t dash_at(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    if (p[0] == '-')
        return 1;
    if (len >= 3 && p[0] == 0xe2 &&
        ((p[1] == 0x80 && p[2] >= 0x90 && p[2] <= 0x95) ||
         (p[1] == 0x88 && p[2] == 0x92)))
        return 3;
    return 0;
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static char upper(char c)
{
    return c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
}

/* A value made safe to quote in a message: at most QUOTE_MAX bytes cut on a
 * character boundary ("..." marks the cut), invalid bytes and control
 * characters as '?', so that messages are always valid UTF-8. Returns out. */
static const char *quote(char *out, size_t outlen, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0, i = 0, cap;
    if (outlen == 0)
        return out;
    cap = outlen - 1 < QUOTE_MAX ? outlen - 1 : QUOTE_MAX;
    while (i < len) {
        size_t n = dip_text_utf8_seq(p + i, len - i);
        if (n == 0 || p[i] < 0x20 || p[i] == 0x7f) {
            if (o + 1 > cap)
                break;
            out[o++] = '?';
            i++;
            continue;
        }
        if (o + n > cap)
            break;
        memcpy(out + o, p + i, n);
        o += n;
        i += n;
    }
    if (i < len) {
        /* Make room for the marker, never splitting a character. */
        size_t lim = cap >= 3 ? cap - 3 : 0, end = o;
        while (o > lim ||
               (o > 0 && o < end && ((unsigned char)out[o] & 0xc0) == 0x80))
            o--;
        if (cap >= 3) {
            memcpy(out + o, "...", 3);
            o += 3;
        }
    }
    out[o] = '\0';
    return out;
}

static int fail(wrk_map_error_t *error, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(wrk_map_error_t *error, const char *field, const char *fmt, ...)
{
    va_list ap;
    if (error == NULL)
        return -1;
    dip_text_format(error->field, sizeof(error->field), NULL, "%s", field);
    va_start(ap, fmt);
    dip_text_vformat(error->message, sizeof(error->message), NULL, fmt, ap);
    va_end(ap);
    return -1;
}

/* --- normalizers --------------------------------------------------------- */

/* Copies n bytes of p to out[*o], keeping room for the final NUL. */
static int put(char *out, size_t outlen, size_t *o, const char *p, size_t n)
{
    if (*o + n >= outlen)
        return -1;
    memcpy(out + *o, p, n);
    *o += n;
    return 0;
}

/* Lowercases trimmed text, ASCII only, and turns each run of separators
 * into `sep`;
 * dashes and underscores are separators too when `dashes` is set. Bytes of
 * other characters are copied as they are. */
static int normalize(const char *p, size_t len, char *out, size_t outlen,
                     char sep, int dashes)
{
    size_t o = 0, i = 0;
    int pending = 0, rc = -1;
    if (outlen == 0)
        goto cleanup;
    out[0] = '\0';
    while (i < len) {
        size_t n = wrk_values_space_at(p + i, len - i);
        if (n == 0 && dashes) {
            n = dash_at(p + i, len - i);
            if (n == 0 && p[i] == '_')
                n = 1;
        }
        if (n > 0) {
            pending = 1;
            i += n;
            continue;
        }
        if (pending && put(out, outlen, &o, &sep, 1) < 0)
            goto cleanup;
        pending = 0;
        if ((unsigned char)p[i] < 0x80) {
            char c = lower(p[i]);
            if (put(out, outlen, &o, &c, 1) < 0)
                goto cleanup;
            i++;
        } else {
            n = dip_text_utf8_seq((const unsigned char *)p + i, len - i);
            if (n == 0)
                n = 1;
            if (put(out, outlen, &o, p + i, n) < 0)
                goto cleanup;
            i += n;
        }
    }
    /* A trailing run of dashes or underscores is kept as one separator. */
    if (pending && put(out, outlen, &o, &sep, 1) < 0)
        goto cleanup;
    rc = 0;
cleanup:
    if (outlen > 0)
        out[rc == 0 ? o : 0] = '\0';
    return rc;
}

int wrk_map_normalize_stage(const char *in, char *out, size_t outlen)
{
    size_t len;
    if (in == NULL)
        return -1;
    len = strlen(in);
    wrk_values_trim(&in, &len);
    return normalize(in, len, out, outlen, ' ', 0);
}

int wrk_map_normalize_token(const char *in, char *out, size_t outlen)
{
    size_t len;
    if (in == NULL)
        return -1;
    len = strlen(in);
    wrk_values_trim(&in, &len);
    return normalize(in, len, out, outlen, '_', 1);
}

/* --- the map -------------------------------------------------------------- */

/* 24 hex digits in any case: an id the CRM would have written lowercase. */
static int hex24(const char *s, size_t len)
{
    if (len != 24)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!is_digit(s[i]) &&
            !((s[i] >= 'a' && s[i] <= 'f') || (s[i] >= 'A' && s[i] <= 'F')))
            return 0;
    return 1;
}

void wrk_map_destroy(wrk_map_t **self_p)
{
    wrk_map_t *self;
    if (self_p == NULL || *self_p == NULL)
        return;
    self = *self_p;
    for (size_t i = 0; i < self->n; i++) {
        free(self->entries[i].column);
        free(self->entries[i].target);
    }
    free(self->entries);
    free(self);
    *self_p = NULL;
}

static int add_entry(wrk_map_t *self, const char *column, const char *target,
                     size_t tlen, char *err, size_t errlen)
{
    char qc[QUOTE_MAX + 4], qt[QUOTE_MAX + 4];
    const wrk_field_t *field = NULL;
    entry_t *e;
    int rc = -1;
    quote(qc, sizeof(qc), column, strlen(column));
    quote(qt, sizeof(qt), target, tlen);
    if (!utf8_valid(column, strlen(column))) {
        dip_text_say(
            -1, err, errlen,
            "mappings name a column that is not valid UTF-8 text ('%s')", qc);
        goto cleanup;
    }
    if (tlen == 0) {
        dip_text_say(
            -1, err, errlen,
            "mapping for column '%s' is empty; choose a deal field or a "
            "custom field for it",
            qc);
        goto cleanup;
    }
    if (!utf8_valid(target, tlen)) {
        dip_text_say(-1, err, errlen,
                     "mapping for column '%s' targets '%s', which is not valid "
                     "UTF-8 text",
                     qc, qt);
        goto cleanup;
    }
    if (!wrk_fields_is_object_id(target)) {
        field = wrk_fields_find(target);
        if (field == NULL) {
            dip_text_say(-1, err, errlen,
                         "mapping for column '%s' targets '%s', which is not a "
                         "deal field a CSV may set%s",
                         qc, qt,
                         hex24(target, tlen)
                             ? " (custom field ids are 24 lowercase hex digits)"
                             : "");
            goto cleanup;
        }
    }
    for (size_t j = 0; j < self->n; j++) {
        char qo[QUOTE_MAX + 4];
        quote(qo, sizeof(qo), self->entries[j].column,
              strlen(self->entries[j].column));
        if (strcmp(self->entries[j].column, column) == 0) {
            dip_text_say(-1, err, errlen, "column '%s' is mapped twice", qc);
            goto cleanup;
        }
        if (strcmp(self->entries[j].target, target) == 0) {
            dip_text_say(
                -1, err, errlen,
                "columns '%s' and '%s' are both mapped to '%s'; map each "
                "field from one column only",
                qo, qc, qt);
            goto cleanup;
        }
    }
    e = &self->entries[self->n];
    e->column = strdup(column);
    e->target = strdup(target);
    e->field = field;
    e->index = NONE;
    self->n++; /* destroy frees what was copied */
    if (e->column == NULL || e->target == NULL) {
        dip_text_say(-1, err, errlen, "out of memory reading the mappings");
        goto cleanup;
    }
    if (field == NULL)
        self->ncustom++;
    else
        for (size_t i = 0; i < wrk_fields_count(); i++)
            if (wrk_fields_at(i) == field)
                self->by_field[i] = self->n - 1;
    rc = 0;
cleanup:
    return rc;
}

static wrk_map_t *map_new(const bson_t *mappings, int require, char *err,
                          size_t errlen)
{
    wrk_map_t *self = NULL;
    bson_iter_t it;
    uint32_t count = 0;
    size_t off = 0;
    int ok = 0;
    dip_text_say(-1, err, errlen, "%s", "");
    if (mappings == NULL || (count = bson_count_keys(mappings)) == 0) {
        dip_text_say(-1, err, errlen, "%s",
                     require ? "mappings are empty; map at least the columns "
                               "for 'name' and 'stage_id'"
                             : "mappings are empty; map at least the column "
                               "of the match field");
        goto cleanup;
    }
    if (count > WRK_MAP_MAX_MAPPINGS) {
        dip_text_say(-1, err, errlen, "mappings have %u entries, more than %d",
                     (unsigned)count, WRK_MAP_MAX_MAPPINGS);
        goto cleanup;
    }
    if (!bson_validate(mappings, BSON_VALIDATE_NONE, &off) ||
        !bson_iter_init(&it, mappings)) {
        dip_text_say(-1, err, errlen, "mappings are not a valid document");
        goto cleanup;
    }
    self = calloc(1, sizeof(*self));
    if (self == NULL ||
        (self->entries = calloc(count, sizeof(entry_t))) == NULL) {
        dip_text_say(-1, err, errlen, "out of memory reading the mappings");
        goto cleanup;
    }
    for (size_t i = 0; i < WRK_FIELDS_MAX; i++)
        self->by_field[i] = NONE;
    while (bson_iter_next(&it)) {
        const char *column = bson_iter_key(&it);
        const char *target;
        uint32_t tlen = 0;
        if (self->n >= count)
            break;
        if (!BSON_ITER_HOLDS_UTF8(&it)) {
            char qc[QUOTE_MAX + 4];
            quote(qc, sizeof(qc), column, strlen(column));
            dip_text_say(
                -1, err, errlen,
                "mapping for column '%s' is %s, not the name of a deal "
                "field or custom field",
                qc, dip_bson_type_name(bson_iter_type(&it)));
            goto cleanup;
        }
        target = bson_iter_utf8(&it, &tlen);
        if (strlen(target) != tlen) {
            char qc[QUOTE_MAX + 4];
            quote(qc, sizeof(qc), column, strlen(column));
            dip_text_say(
                -1, err, errlen,
                "mapping for column '%s' holds a NUL byte, not the name "
                "of a deal field or custom field",
                qc);
            goto cleanup;
        }
        if (add_entry(self, column, target, tlen, err, errlen) < 0)
            goto cleanup;
    }
    for (size_t i = 0; i < wrk_fields_count(); i++) {
        const wrk_field_t *f = wrk_fields_at(i);
        if (require && f->required && self->by_field[i] == NONE) {
            dip_text_say(-1, err, errlen,
                         "no column is mapped to '%s', which every deal needs",
                         f->name);
            goto cleanup;
        }
    }
    if (wrk_fields_status_names(self->status_names,
                                sizeof(self->status_names)) < 0 ||
        wrk_fields_contract_type_names(self->contract_names,
                                       sizeof(self->contract_names)) < 0) {
        dip_text_say(-1, err, errlen,
                     "the lists of statuses and contract types are "
                     "too long for messages");
        goto cleanup;
    }
    ok = 1;
cleanup:
    if (!ok)
        wrk_map_destroy(&self);
    return self;
}

wrk_map_t *wrk_map_new(const bson_t *mappings, char *err, size_t errlen)
{
    return map_new(mappings, 1, err, errlen);
}

wrk_map_t *wrk_map_new_update(const bson_t *mappings, char *err, size_t errlen)
{
    return map_new(mappings, 0, err, errlen);
}

/* Appends "; its columns are 'a', 'b', ..." while it fits in err. */
static void list_header(char *err, size_t errlen, const char *const *header,
                        size_t n)
{
    size_t used = strlen(err);
    for (size_t i = 0; i < n; i++) {
        char q[QUOTE_MAX + 4];
        const char *h = header[i] ? header[i] : "";
        int w;
        quote(q, sizeof(q), h, strlen(h));
        w = snprintf(err + used, errlen - used, "%s'%s'",
                     i == 0 ? "; its columns are " : ", ", q);
        if (w < 0 || (size_t)w + 6 > errlen - used) {
            if (errlen - used >= 6)
                memcpy(err + used, ", ...", 6);
            else
                err[used] = '\0';
            return;
        }
        used += (size_t)w;
    }
}

int wrk_map_bind(wrk_map_t *self, const char *const *header, size_t n,
                 char *err, size_t errlen)
{
    int rc = -1;
    dip_text_say(-1, err, errlen, "%s", "");
    if (self == NULL || (header == NULL && n > 0)) {
        dip_text_say(-1, err, errlen, "no mapping or header to bind");
        goto cleanup;
    }
    self->bound = 0;
    for (size_t e = 0; e < self->n; e++) {
        entry_t *en = &self->entries[e];
        const char *c = en->column;
        size_t clen = strlen(c);
        char qc[QUOTE_MAX + 4];
        wrk_values_trim(&c, &clen);
        en->index = NONE;
        for (size_t i = 0; i < n; i++) {
            const char *h = header[i] ? header[i] : "";
            size_t hlen = strlen(h);
            wrk_values_trim(&h, &hlen);
            /* A column without a name cannot be mapped. */
            if (hlen == 0 || hlen != clen || memcmp(h, c, clen) != 0)
                continue;
            if (en->index != NONE) {
                quote(qc, sizeof(qc), en->column, strlen(en->column));
                dip_text_say(
                    -1, err, errlen,
                    "the file's header has column '%s' more than once, "
                    "so its mapping to '%s' is ambiguous",
                    qc, en->target);
                goto cleanup;
            }
            en->index = i;
        }
        if (en->index == NONE) {
            quote(qc, sizeof(qc), en->column, strlen(en->column));
            dip_text_say(-1, err, errlen,
                         "the file's header has no column '%s', which the "
                         "mappings send to '%s'",
                         qc, en->target);
            if (err != NULL && errlen > 0)
                list_header(err, errlen, header, n);
            goto cleanup;
        }
    }
    self->bound = 1;
    rc = 0;
cleanup:
    return rc;
}

int wrk_map_column_field(const wrk_map_t *self, size_t column, char *out,
                         size_t outlen)
{
    if (out != NULL && outlen > 0)
        out[0] = '\0';
    if (self == NULL || !self->bound || out == NULL || outlen == 0)
        return -1;
    for (size_t e = 0; e < self->n; e++) {
        const entry_t *en = &self->entries[e];
        if (en->index != column)
            continue;
        if (en->field != NULL)
            snprintf(out, outlen, "%s", en->field->name);
        else
            snprintf(out, outlen, "additional_info.%s", en->target);
        return 0;
    }
    return -1;
}

void wrk_map_set_keep_empty(wrk_map_t *self, int on)
{
    if (self != NULL)
        self->keep_empty = on != 0;
}

void wrk_map_set_reading(wrk_map_t *self, const wrk_format_reading_t *reading)
{
    if (self != NULL && reading != NULL)
        self->reading = *reading;
}

int wrk_map_field_column(const wrk_map_t *self, const char *field,
                         size_t *index, const char **column)
{
    const wrk_field_t *f = wrk_fields_find(field);
    size_t e;
    if (self == NULL || f == NULL)
        return -1;
    e = self->by_field[f - wrk_fields_at(0)];
    if (e == NONE)
        return -1;
    if (index != NULL)
        *index = self->bound ? self->entries[e].index : NONE;
    if (column != NULL)
        *column = self->entries[e].column;
    return 0;
}

static void cell(const wrk_map_t *self, size_t e, const char *const *cells,
                 const size_t *lens, size_t ncells, const char **p, size_t *len)
{
    size_t idx = self->entries[e].index;
    *p = "";
    *len = 0;
    if (cells != NULL && idx < ncells && cells[idx] != NULL) {
        *p = cells[idx];
        *len = lens != NULL ? lens[idx] : strlen(cells[idx]);
    }
    wrk_values_trim(p, len);
}

/* The line error of a number or date cell refused with rc under the
 * column's reading (wrk_format_refusal words it). */
static int read_error(const wrk_map_t *self, const wrk_field_t *f,
                      wrk_format_kind_t kind, int rc, const char *p, size_t len,
                      wrk_map_error_t *error)
{
    char q[QUOTE_MAX + 4];
    if (error == NULL)
        return -1;
    quote(q, sizeof(q), p, len);
    snprintf(error->field, sizeof(error->field), "%s", f->name);
    wrk_format_refusal(&self->reading, kind, f->name, rc, p, len, q,
                       error->message, sizeof(error->message));
    return -1;
}

/* Validates one standard field's trimmed cell into its slot. */
static int check_field(const wrk_map_t *self, const wrk_field_t *f,
                       const char *column, const char *p, size_t len, slot_t *s,
                       char *code, char *stage, size_t stage_len,
                       wrk_map_error_t *error)
{
    char q[QUOTE_MAX + 4], tok[TOKEN_MAX];
    const char *canon;
    int rc;
    if (len == 0) {
        /* An update keeps the deal's value: nothing to require or
         * default. */
        if (self->keep_empty)
            return 0;
        if (f->required) {
            char qc[QUOTE_MAX + 4];
            quote(qc, sizeof(qc), column, strlen(column));
            return fail(error, f->name,
                        "%s is required, but column '%s' is empty on this "
                        "line",
                        f->name, qc);
        }
        if (f->kind == WRK_FIELD_STATUS) {
            s->set = 1;
            s->p = "open";
            s->len = 4;
        }
        return 0;
    }
    switch (f->kind) {
    case WRK_FIELD_TEXT:
        break;
    case WRK_FIELD_AMOUNT:
        rc = wrk_values_amount_as(p, len, self->reading.amount, &s->d, code);
        if (rc != WRK_VALUE_OK)
            return read_error(self, f, WRK_FORMAT_AMOUNT, rc, p, len, error);
        break;
    case WRK_FIELD_CURRENCY:
        if (len != 3 || !is_alpha(p[0]) || !is_alpha(p[1]) || !is_alpha(p[2]))
            return fail(error, f->name,
                        "%s '%s' is not a 3-letter currency code (examples: "
                        "USD, EUR, GBP)",
                        f->name, quote(q, sizeof(q), p, len));
        for (size_t i = 0; i < 3; i++)
            s->buf[i] = upper(p[i]);
        s->buf[3] = '\0';
        s->set = 1;
        s->p = s->buf;
        s->len = 3;
        return 0;
    case WRK_FIELD_STAGE:
        if (normalize(p, len, stage, stage_len, ' ', 0) < 0)
            return fail(error, f->name,
                        "%s '%s' is too long for a stage name (at most %zu "
                        "bytes)",
                        f->name, quote(q, sizeof(q), p, len),
                        stage_len > 0 ? stage_len - 1 : 0);
        s->set = 0; /* resolved and written by the caller */
        return 0;
    case WRK_FIELD_STATUS:
    case WRK_FIELD_CONTRACT:
        canon = NULL;
        if (normalize(p, len, tok, sizeof(tok), '_', 1) == 0)
            canon = f->kind == WRK_FIELD_STATUS ? wrk_fields_status(tok)
                                                : wrk_fields_contract_type(tok);
        if (canon == NULL)
            return fail(error, f->name, "%s '%s' is not a %s (use %s)", f->name,
                        quote(q, sizeof(q), p, len),
                        f->kind == WRK_FIELD_STATUS ? "deal status"
                                                    : "contract type",
                        f->kind == WRK_FIELD_STATUS ? self->status_names
                                                    : self->contract_names);
        s->set = 1;
        s->p = canon;
        s->len = strlen(canon);
        return 0;
    case WRK_FIELD_DATE:
        rc = wrk_dates_parse(p, len, self->reading.date, &self->reading.layouts,
                             &s->ms);
        if (rc != WRK_VALUE_OK)
            return read_error(self, f, WRK_FORMAT_DATE, rc, p, len, error);
        break;
    case WRK_FIELD_PERCENT:
        rc = wrk_values_percent_as(p, len, self->reading.percent, &s->d);
        if (rc != WRK_VALUE_OK)
            return read_error(self, f, WRK_FORMAT_PERCENT, rc, p, len, error);
        break;
    case WRK_FIELD_EMAIL:
        if (wrk_values_email(p, len) != WRK_VALUE_OK)
            return fail(error, f->name,
                        "%s '%s' is not an email address (example: "
                        "jane@example.com)",
                        f->name, quote(q, sizeof(q), p, len));
        break;
    }
    s->set = 1;
    s->p = p;
    s->len = len;
    return 0;
}

/* Appends the validated slots and custom cells; 0, or -1 when the document
 * would outgrow BSON's limits. */
static int append_all(const wrk_map_t *self, const slot_t *slots,
                      const char *const *cells, const size_t *lens,
                      size_t ncells, bson_t *deal)
{
    bson_t info;
    int ok = 1;
    for (size_t i = 0; i < wrk_fields_count() && ok; i++) {
        const wrk_field_t *f = wrk_fields_at(i);
        const slot_t *s = &slots[i];
        if (!s->set)
            continue;
        switch (f->kind) {
        case WRK_FIELD_AMOUNT:
        case WRK_FIELD_PERCENT:
            ok = bson_append_double(deal, f->name, -1, s->d);
            break;
        case WRK_FIELD_DATE:
            ok = bson_append_date_time(deal, f->name, -1, s->ms);
            break;
        case WRK_FIELD_STAGE:
            break;
        default:
            ok = bson_append_utf8(deal, f->name, -1, s->p, (int)s->len);
            break;
        }
    }
    if (!ok || self->ncustom == 0)
        return ok ? 0 : -1;
    if (!bson_append_document_begin(deal, "additional_info", -1, &info))
        return -1;
    for (size_t e = 0; e < self->n && ok; e++) {
        const char *p;
        size_t len;
        if (self->entries[e].field != NULL)
            continue;
        cell(self, e, cells, lens, ncells, &p, &len);
        ok = bson_append_utf8(&info, self->entries[e].target, -1, p, (int)len);
    }
    if (!bson_append_document_end(deal, &info))
        ok = 0;
    return ok ? 0 : -1;
}

int wrk_map_row(const wrk_map_t *self, const char *const *cells,
                const size_t *lens, size_t ncells, bson_t *deal, char *stage,
                size_t stage_len, wrk_map_error_t *error)
{
    slot_t slots[WRK_FIELDS_MAX];
    char code[4] = "";
    size_t nf = wrk_fields_count(), value_i = NONE, currency_i = NONE;
    if (error != NULL) {
        error->field[0] = '\0';
        error->message[0] = '\0';
    }
    if (stage != NULL && stage_len > 0)
        stage[0] = '\0';
    if (self == NULL || !self->bound || deal == NULL)
        return fail(error, "", "the mapping is not bound to a header");
    for (size_t i = 0; i < nf; i++) {
        const wrk_field_t *f = wrk_fields_at(i);
        size_t e = self->by_field[i];
        const char *p = "";
        size_t len = 0;
        slots[i].set = 0;
        if (f->kind == WRK_FIELD_AMOUNT)
            value_i = i;
        else if (f->kind == WRK_FIELD_CURRENCY)
            currency_i = i;
        if (e != NONE) {
            cell(self, e, cells, lens, ncells, &p, &len);
        } else if (f->kind != WRK_FIELD_STATUS) {
            continue;
        }
        if (check_field(self, f, e != NONE ? self->entries[e].column : "", p,
                        len, &slots[i], code, stage, stage_len, error) < 0)
            return -1;
    }
    /* A currency written in the value must agree with the currency column,
     * and stands in for it when that is empty. */
    if (code[0] != '\0' && value_i != NONE && currency_i != NONE) {
        slot_t *c = &slots[currency_i];
        if (c->set && strcmp(c->buf, code) != 0) {
            char q[QUOTE_MAX + 4];
            const char *p;
            size_t len;
            cell(self, self->by_field[value_i], cells, lens, ncells, &p, &len);
            quote(q, sizeof(q), p, len);
            return fail(error, wrk_fields_at(value_i)->name,
                        "%s '%s' is in %s, but currency is '%s'",
                        wrk_fields_at(value_i)->name, q, code, c->buf);
        }
        if (!c->set) {
            memcpy(c->buf, code, sizeof(c->buf));
            c->set = 1;
            c->p = c->buf;
            c->len = 3;
        }
    }
    if (append_all(self, slots, cells, lens, ncells, deal) < 0)
        return fail(error, "", "the line is too large to store as a deal");
    return 0;
}
