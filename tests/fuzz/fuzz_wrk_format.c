/*
 * Fuzz target for wrk_format's "auto" decision. The first byte picks the
 * column's kind (date, amount, percentage); the rest, split on newlines, is
 * the column's cells (inputs that are not UTF-8 without NUL bytes, which
 * the CSV reader never delivers, are skipped). The column is decided twice,
 * over its cells in file order and in reverse, and once more through the
 * checkpoint record a resume restores; then every cell is read under the
 * decision. Checks what must hold whatever the input: the three decisions
 * are one; no cell is read two different ways (a cell read under the
 * decision reads the same whichever run read it, and under an undecided
 * column only a cell that both candidates read alike is read); a decided
 * column holds no cell that only the other candidate reads; "5,000.50" is
 * never 5.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bson/bson.h>

#include "dip_text.h"
#include "wrk_format.h"

#define MAX_CELLS 256

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_wrk_format: %s\n", what);
        abort();
    }
}

typedef struct {
    int rc;
    double d;
    int64_t ms;
} read_t;

static read_t read_cell(wrk_format_kind_t kind, int reading, const char *p,
                        size_t len)
{
    read_t r = {0, 0, 0};
    char code[4];
    if (kind == WRK_FORMAT_DATE)
        r.rc = wrk_dates_parse(p, len, (wrk_date_order_t)reading, NULL, &r.ms);
    else if (kind == WRK_FORMAT_AMOUNT)
        r.rc = wrk_values_amount_as(p, len, (wrk_decimal_t)reading, &r.d, code);
    else
        r.rc = wrk_values_percent_as(p, len, (wrk_decimal_t)reading, &r.d);
    return r;
}

static int same(wrk_format_kind_t kind, read_t a, read_t b)
{
    return kind == WRK_FORMAT_DATE ? a.ms == b.ms : a.d == b.d;
}

static int reading_of(const wrk_format_decisions_t *d, wrk_format_kind_t kind)
{
    return kind == WRK_FORMAT_DATE     ? (int)d->reading.date
           : kind == WRK_FORMAT_AMOUNT ? (int)d->reading.amount
                                       : (int)d->reading.percent;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *cells[MAX_CELLS];
    size_t lens[MAX_CELLS], n = 0, i = 1;
    wrk_format_kind_t kind;
    wrk_format_t f;
    wrk_format_decisions_t fwd, rev, res;
    const char *cols[WRK_FORMAT_KINDS] = {"a", "p", "d"};
    bson_t *cp, *q;
    int dec, first, second, undecided;

    if (size < 1)
        return 0;
    kind = (wrk_format_kind_t)(data[0] % WRK_FORMAT_KINDS);
    if (memchr(data + 1, 0, size - 1) != NULL ||
        !dip_text_utf8_valid((const char *)data + 1, size - 1))
        return 0;
    while (i <= size && n < MAX_CELLS) {
        const char *s = (const char *)data + i;
        const char *nl = memchr(s, '\n', size - i);
        size_t len = nl ? (size_t)(nl - s) : size - i;
        const char *p = s;
        size_t plen = len;
        wrk_values_trim(&p, &plen);
        cells[n] = p;
        lens[n++] = plen;
        i += len + 1;
    }

    memset(&f, 0, sizeof(f));
    f.present = f.date_auto = f.decimal_auto = 1;
    wrk_format_start(&f, &fwd);
    for (int k = 0; k < WRK_FORMAT_KINDS; k++)
        fwd.is_auto[k] = k == (int)kind;
    rev = fwd;
    res = fwd;
    for (size_t c = 0; c < n; c++)
        wrk_format_tally_cell(&fwd.tally[kind], kind, NULL, cells[c], lens[c]);
    for (size_t c = n; c-- > 0;)
        wrk_format_tally_cell(&rev.tally[kind], kind, NULL, cells[c], lens[c]);
    wrk_format_finish(&fwd);
    wrk_format_finish(&rev);
    dec = reading_of(&fwd, kind);
    check(dec == reading_of(&rev, kind), "the order of the cells decided");

    /* A resume restores the same decision from the record. */
    cp = bson_new();
    q = bson_new();
    wrk_format_append(&fwd, cols, cp);
    BSON_APPEND_DOCUMENT(q, "checkpoint", cp);
    check(wrk_format_restore(q, &res) == 1, "the record was not restored");
    check(reading_of(&res, kind) == dec, "a resume decided differently");
    bson_destroy(cp);
    bson_destroy(q);

    first = kind == WRK_FORMAT_DATE ? (int)WRK_DATES_MDY : (int)WRK_DECIMAL_DOT;
    second =
        kind == WRK_FORMAT_DATE ? (int)WRK_DATES_DMY : (int)WRK_DECIMAL_COMMA;
    undecided = kind == WRK_FORMAT_DATE ? (int)WRK_DATES_UNDECIDED
                                        : (int)WRK_DECIMAL_UNDECIDED;
    for (size_t c = 0; c < n; c++) {
        read_t r = read_cell(kind, dec, cells[c], lens[c]);
        read_t r2 = read_cell(kind, reading_of(&rev, kind), cells[c], lens[c]);
        read_t a = read_cell(kind, first, cells[c], lens[c]);
        read_t b = read_cell(kind, second, cells[c], lens[c]);
        check(r.rc == r2.rc && (r.rc != 0 || same(kind, r, r2)),
              "two runs read a cell two ways");
        if (r.rc == 0 && dec == undecided)
            check(a.rc == 0 && b.rc == 0 && same(kind, a, b),
                  "an undecided column read a cell that reads two ways");
        if (dec == first)
            check(!(b.rc == 0 && a.rc != 0 && a.rc != WRK_VALUE_AMBIGUOUS),
                  "a dot/month-first column holds a comma/day-first cell");
        if (dec == second)
            check(!(a.rc == 0 && b.rc != 0 && b.rc != WRK_VALUE_AMBIGUOUS),
                  "a comma/day-first column holds a dot/month-first cell");
        if (kind == WRK_FORMAT_AMOUNT && lens[c] == 8 &&
            memcmp(cells[c], "5,000.50", 8) == 0)
            check(r.rc != 0 || r.d == 5000.5, "5,000.50 read as 5");
    }
    return 0;
}
