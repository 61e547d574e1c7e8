/*
 * wrk_format: the file's format setting, the per-column "auto" decision and
 * its record (see wrk_format.h). The setting is read with one accepted type
 * per field, so a document that says `date_order: 1` or `decimal: true` is
 * refused with the field's name instead of half-read; the decision is a
 * verdict over four counters per column, made once the whole file has been
 * tallied.
 */
#include "wrk_format.h"
#include "dip_bson.h"
#include "dip_text.h"

#include <stdio.h>
#include <string.h>

#define FORMAT_PATH "additional_data.format"

static const char *const fields[WRK_FORMAT_KINDS] = {"value", "probability",
                                                     "expected_close_date"};

const char *wrk_format_field(wrk_format_kind_t kind)
{
    return kind < WRK_FORMAT_KINDS ? fields[kind] : "";
}

/* --- the setting ---------------------------------------------------------- */

/* The string at it, NUL-free UTF-8 of at most max bytes, or NULL. */
static const char *text(const bson_iter_t *it, size_t max)
{
    uint32_t len = 0;
    const char *s;
    if (!BSON_ITER_HOLDS_UTF8(it))
        return NULL;
    s = bson_iter_utf8(it, &len);
    if (len > max || strlen(s) != len || !dip_text_utf8_valid(s, len))
        return NULL;
    return s;
}

static int refuse(char *err, size_t errlen, const char *key,
                  const bson_iter_t *it, const char *want)
{
    char q[64] = "";
    const char *s = text(it, 48);
    if (s != NULL)
        dip_text_format(q, sizeof(q), NULL, " '%s'", s);
    dip_text_format(
        err, errlen, NULL,
        "the queue document's '" FORMAT_PATH ".%s' is %s%s, not %s", key,
        s ? "the string" : dip_bson_type_name(bson_iter_type(it)), q, want);
    return -1;
}

static int read_layouts(bson_iter_t *it, wrk_format_t *out, char *err,
                        size_t errlen)
{
    bson_iter_t a;
    static const char want[] = "an array of date layouts such as "
                               "\"DD.MM.YYYY\" or \"YYYY/MM/DD HH:mm\"";
    if (!BSON_ITER_HOLDS_ARRAY(it) || !bson_iter_recurse(it, &a))
        return refuse(err, errlen, "date_formats", it, want);
    while (bson_iter_next(&a)) {
        const char *l = text(&a, WRK_DATES_LAYOUT_MAX);
        if (l == NULL || wrk_dates_layout_check(l) < 0)
            return refuse(err, errlen, "date_formats", &a,
                          "a date layout (YYYY, MM or M, DD or D, and "
                          "optionally HH or H, mm, ss, with separators; at "
                          "most 32 bytes)");
        if (out->layouts.n >= WRK_DATES_MAX_LAYOUTS) {
            dip_text_format(err, errlen, NULL,
                            "the queue document's '" FORMAT_PATH
                            ".date_formats' has more than %d layouts",
                            WRK_DATES_MAX_LAYOUTS);
            return -1;
        }
        memcpy(out->layouts.layout[out->layouts.n++], l, strlen(l) + 1);
    }
    return 0;
}

/* An explicit date_order and a layout that write day and month the other
 * way round: the layout would silently win for every cell of its shape,
 * so the document is refused, naming both (a layout with the year first
 * says nothing of the day against the month by the order rule). */
static int contradiction(const wrk_format_t *f, char *err, size_t errlen)
{
    int day_first;
    if (f->date_auto || f->date_order == WRK_DATES_DEFAULT)
        return 0;
    day_first = f->date_order == WRK_DATES_DMY;
    for (size_t i = 0; i < f->layouts.n; i++) {
        wrk_date_order_t lo = wrk_dates_layout_order(f->layouts.layout[i]);
        if (lo == WRK_DATES_YMD || (lo == WRK_DATES_DMY) == day_first)
            continue;
        dip_text_format(err, errlen, NULL,
                        "the queue document's '" FORMAT_PATH
                        ".date_formats' has \"%s\", which writes the %s "
                        "before the %s, against its date_order \"%s\": one "
                        "of the two is wrong",
                        f->layouts.layout[i], day_first ? "month" : "day",
                        day_first ? "day" : "month",
                        wrk_dates_order_name(f->date_order));
        return -1;
    }
    return 0;
}

int wrk_format_read(const bson_t *q, wrk_format_t *out, char *err,
                    size_t errlen)
{
    bson_iter_t it, f;
    memset(out, 0, sizeof(*out));
    if (!bson_iter_init(&it, q) ||
        !bson_iter_find_descendant(&it, FORMAT_PATH, &it))
        return 0;
    if (!BSON_ITER_HOLDS_DOCUMENT(&it) || !bson_iter_recurse(&it, &f)) {
        dip_text_format(err, errlen, NULL,
                        "the queue document's '" FORMAT_PATH
                        "' is %s, not a document of date_order, decimal and "
                        "date_formats",
                        dip_bson_type_name(bson_iter_type(&it)));
        return -1;
    }
    out->present = 1;
    while (bson_iter_next(&f)) {
        const char *key = bson_iter_key(&f), *s;
        if (strcmp(key, "date_order") == 0) {
            s = text(&f, 16);
            if (s != NULL && strcmp(s, "auto") == 0)
                out->date_auto = 1;
            else if (s == NULL ||
                     wrk_dates_order_from_name(s, &out->date_order) < 0)
                return refuse(err, errlen, key, &f,
                              "one of \"MDY\", \"DMY\", \"YMD\" or \"auto\"");
        } else if (strcmp(key, "decimal") == 0) {
            s = text(&f, 16);
            if (s != NULL && strcmp(s, "auto") == 0)
                out->decimal_auto = 1;
            else if (s != NULL && strcmp(s, ".") == 0)
                out->decimal = WRK_DECIMAL_DOT;
            else if (s != NULL && strcmp(s, ",") == 0)
                out->decimal = WRK_DECIMAL_COMMA;
            else
                return refuse(err, errlen, key, &f,
                              "one of \".\", \",\" or \"auto\"");
        } else if (strcmp(key, "date_formats") == 0) {
            if (read_layouts(&f, out, err, errlen) < 0)
                return -1;
        } else {
            char k[64];
            size_t n = strlen(key), cut = dip_text_cut(key, n, 40);
            dip_text_format(k, sizeof(k), NULL, "%.*s%s", (int)cut, key,
                            cut < n ? "..." : "");
            dip_text_format(err, errlen, NULL,
                            "the queue document's '" FORMAT_PATH
                            "' has '%s', which is not one of date_order, "
                            "decimal and date_formats",
                            k);
            return -1;
        }
    }
    return contradiction(out, err, errlen);
}

/* --- the decision --------------------------------------------------------- */

void wrk_format_start(const wrk_format_t *f, wrk_format_decisions_t *d)
{
    memset(d, 0, sizeof(*d));
    d->reading.amount = f->decimal;
    d->reading.percent = f->decimal;
    d->reading.date = f->date_order;
    d->reading.layouts = f->layouts;
    d->is_auto[WRK_FORMAT_AMOUNT] = f->decimal_auto;
    d->is_auto[WRK_FORMAT_PERCENT] = f->decimal_auto;
    d->is_auto[WRK_FORMAT_DATE] = f->date_auto;
}

int wrk_format_pending(const wrk_format_decisions_t *d)
{
    for (int k = 0; k < WRK_FORMAT_KINDS; k++)
        if (d->is_auto[k] && !d->decided[k])
            return 1;
    return 0;
}

void wrk_format_tally_cell(wrk_format_tally_t *t, wrk_format_kind_t kind,
                           const wrk_dates_layouts_t *layouts, const char *p,
                           size_t len)
{
    int r1, r2, ok1, ok2, same;
    if (len == 0)
        return;
    if (kind == WRK_FORMAT_DATE) {
        int64_t m1 = 0, m2 = 0;
        int l = wrk_dates_layout_read(p, len, layouts, &m1);
        if (l >= 0) {
            /* Read by a layout, the same under either candidate: yet the
             * layout says the file's order of day and month, which the
             * column's other cells are read in. */
            switch (wrk_dates_layout_order(layouts->layout[l])) {
            case WRK_DATES_MDY:
                t->first++;
                break;
            case WRK_DATES_DMY:
                t->second++;
                break;
            default:
                t->alike++;
                break;
            }
            return;
        }
        r1 = wrk_dates_parse(p, len, WRK_DATES_MDY, layouts, &m1);
        r2 = wrk_dates_parse(p, len, WRK_DATES_DMY, layouts, &m2);
        ok1 = r1 == WRK_VALUE_OK;
        ok2 = r2 == WRK_VALUE_OK;
        same = m1 == m2;
    } else {
        double v1 = 0, v2 = 0;
        char code[4];
        if (kind == WRK_FORMAT_AMOUNT) {
            r1 = wrk_values_amount_as(p, len, WRK_DECIMAL_DOT, &v1, code);
            r2 = wrk_values_amount_as(p, len, WRK_DECIMAL_COMMA, &v2, code);
        } else {
            r1 = wrk_values_percent_as(p, len, WRK_DECIMAL_DOT, &v1);
            r2 = wrk_values_percent_as(p, len, WRK_DECIMAL_COMMA, &v2);
        }
        /* "1.234" is 1234 with a comma and 1.234 with a dot, which the dot
         * refuses as ambiguous: it reads two ways, it decides nothing. */
        ok1 = r1 == WRK_VALUE_OK || r1 == WRK_VALUE_AMBIGUOUS;
        ok2 = r2 == WRK_VALUE_OK || r2 == WRK_VALUE_AMBIGUOUS;
        same = v1 == v2 && r1 == WRK_VALUE_OK && r2 == WRK_VALUE_OK;
    }
    if (ok1 && ok2)
        (*(same ? &t->alike : &t->two_ways))++;
    else if (ok1)
        t->first++;
    else if (ok2)
        t->second++;
}

int wrk_format_decide(const wrk_format_tally_t *t, wrk_format_kind_t kind)
{
    int date = kind == WRK_FORMAT_DATE;
    if (t->first > 0 && t->second == 0)
        return date ? (int)WRK_DATES_MDY : (int)WRK_DECIMAL_DOT;
    if (t->second > 0 && t->first == 0)
        return date ? (int)WRK_DATES_DMY : (int)WRK_DECIMAL_COMMA;
    return date ? (int)WRK_DATES_UNDECIDED : (int)WRK_DECIMAL_UNDECIDED;
}

static void set_reading(wrk_format_decisions_t *d, int k, int reading)
{
    if (k == WRK_FORMAT_AMOUNT)
        d->reading.amount = (wrk_decimal_t)reading;
    else if (k == WRK_FORMAT_PERCENT)
        d->reading.percent = (wrk_decimal_t)reading;
    else
        d->reading.date = (wrk_date_order_t)reading;
}

static int get_reading(const wrk_format_decisions_t *d, int k)
{
    return k == WRK_FORMAT_AMOUNT    ? (int)d->reading.amount
           : k == WRK_FORMAT_PERCENT ? (int)d->reading.percent
                                     : (int)d->reading.date;
}

void wrk_format_finish(wrk_format_decisions_t *d)
{
    for (int k = 0; k < WRK_FORMAT_KINDS; k++) {
        if (!d->is_auto[k] || d->decided[k])
            continue;
        set_reading(d, k, wrk_format_decide(&d->tally[k], k));
        d->decided[k] = 1;
    }
}

/* --- the record ----------------------------------------------------------- */

static const char *reading_name(int k, int reading)
{
    if (k == WRK_FORMAT_DATE)
        return wrk_dates_order_name((wrk_date_order_t)reading);
    return reading == WRK_DECIMAL_DOT     ? "."
           : reading == WRK_DECIMAL_COMMA ? ","
                                          : "undecided";
}

static int reading_from_name(int k, const char *s, int *reading)
{
    wrk_date_order_t o;
    if (strcmp(s, "undecided") == 0) {
        *reading = k == WRK_FORMAT_DATE ? (int)WRK_DATES_UNDECIDED
                                        : (int)WRK_DECIMAL_UNDECIDED;
        return 0;
    }
    if (k == WRK_FORMAT_DATE) {
        if (wrk_dates_order_from_name(s, &o) < 0 || o == WRK_DATES_YMD)
            return -1;
        *reading = (int)o;
        return 0;
    }
    if (strcmp(s, ".") == 0 || strcmp(s, ",") == 0) {
        *reading = s[0] == '.' ? (int)WRK_DECIMAL_DOT : (int)WRK_DECIMAL_COMMA;
        return 0;
    }
    return -1;
}

void wrk_format_append(const wrk_format_decisions_t *d,
                       const char *const columns[WRK_FORMAT_KINDS],
                       bson_t *checkpoint)
{
    bson_t fmt, arr, col, cells;
    int i = 0;
    BSON_APPEND_DOCUMENT_BEGIN(checkpoint, "format", &fmt);
    BSON_APPEND_ARRAY_BEGIN(&fmt, "columns", &arr);
    for (int k = 0; k < WRK_FORMAT_KINDS; k++) {
        char key[16];
        int date = k == WRK_FORMAT_DATE;
        if (!d->is_auto[k] || !d->decided[k] || columns[k] == NULL)
            continue;
        snprintf(key, sizeof(key), "%d", i++);
        BSON_APPEND_DOCUMENT_BEGIN(&arr, key, &col);
        BSON_APPEND_UTF8(&col, "field", fields[k]);
        BSON_APPEND_UTF8(&col, "column", columns[k]);
        BSON_APPEND_UTF8(&col, "setting", date ? "date_order" : "decimal");
        BSON_APPEND_UTF8(&col, "reading", reading_name(k, get_reading(d, k)));
        BSON_APPEND_DOCUMENT_BEGIN(&col, "cells", &cells);
        BSON_APPEND_INT64(&cells, date ? "MDY" : "dot",
                          (int64_t)d->tally[k].first);
        BSON_APPEND_INT64(&cells, date ? "DMY" : "comma",
                          (int64_t)d->tally[k].second);
        BSON_APPEND_INT64(&cells, "two_ways", (int64_t)d->tally[k].two_ways);
        BSON_APPEND_INT64(&cells, "alike", (int64_t)d->tally[k].alike);
        bson_append_document_end(&col, &cells);
        bson_append_document_end(&arr, &col);
    }
    bson_append_array_end(&fmt, &arr);
    bson_append_document_end(checkpoint, &fmt);
}

/* A counter of the record, 0 unless a non-negative integer. */
static uint64_t counter(const bson_iter_t *cells, const char *key)
{
    bson_iter_t c = *cells;
    if (bson_iter_find(&c, key) &&
        (BSON_ITER_HOLDS_INT64(&c) || BSON_ITER_HOLDS_INT32(&c)) &&
        bson_iter_as_int64(&c) >= 0)
        return (uint64_t)bson_iter_as_int64(&c);
    return 0;
}

int wrk_format_restore(const bson_t *q, wrk_format_decisions_t *d)
{
    wrk_format_decisions_t r = *d;
    bson_iter_t it, a;
    if (!wrk_format_pending(d))
        return 1;
    if (!bson_iter_init(&it, q) ||
        !bson_iter_find_descendant(&it, "checkpoint.format.columns", &it) ||
        !BSON_ITER_HOLDS_ARRAY(&it) || !bson_iter_recurse(&it, &a))
        return 0;
    while (bson_iter_next(&a)) {
        bson_iter_t c, f, rd, cells;
        int reading;
        if (!BSON_ITER_HOLDS_DOCUMENT(&a) || !bson_iter_recurse(&a, &c))
            continue;
        f = c;
        rd = c;
        if (!bson_iter_find(&f, "field") || text(&f, 64) == NULL ||
            !bson_iter_find(&rd, "reading") || text(&rd, 16) == NULL)
            continue;
        for (int k = 0; k < WRK_FORMAT_KINDS; k++) {
            int date = k == WRK_FORMAT_DATE;
            if (!r.is_auto[k] || r.decided[k] ||
                strcmp(text(&f, 64), fields[k]) != 0 ||
                reading_from_name(k, text(&rd, 16), &reading) < 0)
                continue;
            set_reading(&r, k, reading);
            r.decided[k] = 1;
            cells = c;
            if (bson_iter_find(&cells, "cells") &&
                BSON_ITER_HOLDS_DOCUMENT(&cells) &&
                bson_iter_recurse(&cells, &cells)) {
                r.tally[k].first = counter(&cells, date ? "MDY" : "dot");
                r.tally[k].second = counter(&cells, date ? "DMY" : "comma");
                r.tally[k].two_ways = counter(&cells, "two_ways");
                r.tally[k].alike = counter(&cells, "alike");
            }
        }
    }
    if (wrk_format_pending(&r))
        return 0;
    *d = r;
    return 1;
}

const char *wrk_format_order_words(wrk_date_order_t order)
{
    switch (order) {
    case WRK_DATES_MDY:
        return "month-first";
    case WRK_DATES_DMY:
        return "day-first";
    case WRK_DATES_YMD:
        return "year-first";
    default:
        return "dated";
    }
}

void wrk_format_note(const wrk_format_decisions_t *d,
                     const char *const columns[WRK_FORMAT_KINDS], char *out,
                     size_t outlen)
{
    size_t used = 0;
    if (outlen == 0)
        return;
    out[0] = '\0';
    for (int k = 0; k < WRK_FORMAT_KINDS && used + 1 < outlen; k++) {
        const wrk_format_tally_t *t = &d->tally[k];
        int reading = get_reading(d, k), date = k == WRK_FORMAT_DATE;
        int undecided = date ? reading == (int)WRK_DATES_UNDECIDED
                             : reading == (int)WRK_DECIMAL_UNDECIDED;
        char col[80];
        size_t n;
        if (!d->is_auto[k] || !d->decided[k] || columns[k] == NULL)
            continue;
        n = strlen(columns[k]);
        dip_text_format(col, sizeof(col), NULL, "%.*s%s",
                        (int)dip_text_cut(columns[k], n, 60), columns[k],
                        dip_text_cut(columns[k], n, 60) < n ? "..." : "");
        used += dip_text_format(
            out + used, outlen - used, NULL, "%scolumn '%s' (%s): ",
            used == 0 ? "format decided from the whole file: " : "; ", col,
            fields[k]);
        if (!undecided)
            used += dip_text_format(
                out + used, outlen - used, NULL,
                date ? "%s %s (%llu cells read only that way, %llu both ways)"
                     : "%s '%s' (%llu cells read only that way, %llu both "
                       "ways)",
                date ? "date_order" : "decimal", reading_name(k, reading),
                (unsigned long long)(reading == (date ? (int)WRK_DATES_MDY
                                                      : (int)WRK_DECIMAL_DOT)
                                         ? t->first
                                         : t->second),
                (unsigned long long)(t->two_ways + t->alike));
        else if (t->two_ways == 0 && t->first == 0 && t->second == 0)
            used += dip_text_format(out + used, outlen - used, NULL,
                                    "no cell needed a %s",
                                    date ? "date order" : "decimal separator");
        else
            used += dip_text_format(
                out + used, outlen - used, NULL,
                "undecided (%llu cells read only %s, %llu only %s, %llu both "
                "ways): cells that read two ways are line errors; set %s",
                (unsigned long long)t->first, date ? "month-first" : "with '.'",
                (unsigned long long)t->second, date ? "day-first" : "with ','",
                (unsigned long long)t->two_ways,
                date ? "the file's date order" : "the file's decimal");
    }
}

/* --- messages ------------------------------------------------------------- */

#define AMOUNT_EXAMPLES "examples: 5000, 5,000.50, $5,000.50, USD 5000"
#define AMOUNT_EXAMPLES_COMMA                                                  \
    "examples: 5000, 5.000,50, 1 234,56 \xe2\x82\xac, R$ 1.234,56"
#define DATE_EXAMPLES "2025-03-31, 2025-03-31T10:00:00Z, 03/31/2025"
#define DATE_EXAMPLES_DMY "2025-03-31, 31/03/2025, 31.03.2025"
#define DATE_EXAMPLES_YMD "2025-03-31, 2025/03/31"

/* One sentence into out, and done. */
#define SAY(...)                                                               \
    do {                                                                       \
        dip_text_format(out, outlen, NULL, __VA_ARGS__);                       \
        return;                                                                \
    } while (0)

void wrk_format_hint(const wrk_format_reading_t *r, wrk_format_kind_t kind,
                     const char *p, size_t len, char *out, size_t outlen)
{
    if (outlen == 0)
        return;
    out[0] = '\0';
    if (kind == WRK_FORMAT_DATE) {
        /* Year first before the others: "2025/12/31" is YMD's own. */
        static const wrk_date_order_t orders[] = {WRK_DATES_YMD, WRK_DATES_DMY,
                                                  WRK_DATES_MDY};
        for (size_t i = 0; i < 3; i++) {
            int64_t ms;
            if (orders[i] == r->date ||
                wrk_dates_parse(p, len, orders[i], &r->layouts, &ms) !=
                    WRK_VALUE_OK)
                continue;
            dip_text_format(out, outlen, NULL, "; set date_order %s",
                            wrk_dates_order_name(orders[i]));
            return;
        }
    } else {
        static const wrk_decimal_t decs[] = {WRK_DECIMAL_COMMA,
                                             WRK_DECIMAL_DOT};
        wrk_decimal_t cur = kind == WRK_FORMAT_AMOUNT ? r->amount : r->percent;
        for (size_t i = 0; i < 2; i++) {
            double v;
            char code[4];
            int rc = kind == WRK_FORMAT_AMOUNT
                         ? wrk_values_amount_as(p, len, decs[i], &v, code)
                         : wrk_values_percent_as(p, len, decs[i], &v);
            if (decs[i] == cur || rc != WRK_VALUE_OK)
                continue;
            dip_text_format(out, outlen, NULL, "; set decimal '%c'",
                            decs[i] == WRK_DECIMAL_COMMA ? ',' : '.');
            return;
        }
    }
}

/* 1 when the cell reads under exactly one of the two candidate settings
 * (day-first or month-first; a comma or a dot), a number refused as
 * ambiguous under one of them counting as read there. */
static int one_way(const wrk_format_reading_t *r, wrk_format_kind_t kind,
                   const char *p, size_t len)
{
    int ok = 0;
    if (kind == WRK_FORMAT_DATE) {
        int64_t ms;
        ok += wrk_dates_parse(p, len, WRK_DATES_DMY, &r->layouts, &ms) ==
              WRK_VALUE_OK;
        ok += wrk_dates_parse(p, len, WRK_DATES_MDY, &r->layouts, &ms) ==
              WRK_VALUE_OK;
    } else {
        static const wrk_decimal_t decs[] = {WRK_DECIMAL_COMMA,
                                             WRK_DECIMAL_DOT};
        for (size_t i = 0; i < 2; i++) {
            double v;
            char code[4];
            int rc = kind == WRK_FORMAT_AMOUNT
                         ? wrk_values_amount_as(p, len, decs[i], &v, code)
                         : wrk_values_percent_as(p, len, decs[i], &v);
            /* "1.234" with a dot is refused as ambiguous, not unread:
             * under a dot it could be 1.234, so it reads two ways. */
            ok += rc == WRK_VALUE_OK || rc == WRK_VALUE_AMBIGUOUS;
        }
    }
    return ok == 1;
}

void wrk_format_refusal(const wrk_format_reading_t *r, wrk_format_kind_t kind,
                        const char *field, int rc, const char *p, size_t len,
                        const char *q, char *out, size_t outlen)
{
    char hint[64];
    wrk_decimal_t dec = kind == WRK_FORMAT_AMOUNT ? r->amount : r->percent;
    const char *with = dec == WRK_DECIMAL_DOT     ? " with decimal '.'"
                       : dec == WRK_DECIMAL_COMMA ? " with decimal ','"
                                                  : "";
    wrk_format_hint(r, kind, p, len, hint, sizeof(hint));
    /* The column is undecided, yet this cell reads one way only: it is
     * not ambiguous, the file is (other cells read the other way). */
    if (rc == WRK_VALUE_UNDECIDED && one_way(r, kind, p, len))
        SAY("%s '%s' reads only one way, but the file's other cells of the "
            "column read the other way, so its %s is not decided%s for the "
            "file",
            field, q,
            kind == WRK_FORMAT_DATE ? "date order" : "decimal separator", hint);
    if (rc == WRK_VALUE_UNDECIDED)
        SAY(kind == WRK_FORMAT_DATE
                ? "%s '%s': ambiguous date: set the file's date order "
                  "(date_order DMY or MDY)"
                : "%s '%s': ambiguous number: set the file's decimal "
                  "separator (decimal ',' or '.')",
            field, q);
    if (kind == WRK_FORMAT_PERCENT)
        SAY("%s '%s' is not a percentage from 0 to 100%s (examples: "
            "50, 50%%, %s)%s",
            field, q, with, dec == WRK_DECIMAL_COMMA ? "12,5 %" : "12.5%",
            hint);
    if (kind == WRK_FORMAT_AMOUNT) {
        if (rc == WRK_VALUE_NEGATIVE)
            SAY("%s '%s' is negative; an amount must be 0 or more", field, q);
        if (rc == WRK_VALUE_TOO_LONG)
            SAY("%s '%s' is too long for an amount (at most %d "
                "digits)",
                field, q, WRK_VALUES_MAX_DIGITS);
        if (rc == WRK_VALUE_AMBIGUOUS && dec == WRK_DECIMAL_DEFAULT)
            SAY("%s '%s' is ambiguous; write thousands with a comma "
                "(5,000) and decimals with a dot (5.00)%s",
                field, q, hint);
        if (rc == WRK_VALUE_AMBIGUOUS)
            SAY("%s '%s' is ambiguous%s: thousands or three "
                "decimals?%s",
                field, q, with, hint);
        SAY("%s '%s' is not an amount%s (%s)%s", field, q, with,
            dec == WRK_DECIMAL_COMMA ? AMOUNT_EXAMPLES_COMMA : AMOUNT_EXAMPLES,
            hint);
    }
    if (r->date != WRK_DATES_DEFAULT && hint[0])
        SAY("%s '%s' is not a %s date%s", field, q,
            wrk_format_order_words(r->date), hint);
    if (rc == WRK_VALUE_NOT_REAL)
        SAY("%s '%s' is not a real calendar date or time (%s)%s", field, q,
            r->date == WRK_DATES_DEFAULT
                ? "dates with slashes are read as MM/DD/YYYY"
                : wrk_format_order_words(r->date),
            hint);
    SAY("%s '%s' is not a date (examples: %s)%s", field, q,
        r->date == WRK_DATES_DMY   ? DATE_EXAMPLES_DMY
        : r->date == WRK_DATES_YMD ? DATE_EXAMPLES_YMD
                                   : DATE_EXAMPLES,
        hint);
}
