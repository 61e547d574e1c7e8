/*
 * Fuzz target for wrk_csv: any input must read the same fed whole, in small
 * chunks and byte by byte; every row must be well formed (valid UTF-8 cells
 * of the stated lengths, at least as many cells as header names, lines
 * counting up from 1, offsets rising within the input, raw text exactly on
 * an open-quote row, whole UTF-8 sentences and header notes); and resuming
 * at any row's end offset must give exactly the rows after it. A broken rule
 * aborts, so the replay run and libFuzzer both report it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wrk_csv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
    wrk_csv_t *csv;
    uint64_t *digest; /* one per row */
    uint64_t *end;    /* each row's end_offset */
    size_t n, cap;
    size_t nheader;
    uint64_t size;
    uint64_t last_line, last_end;
} run_t;

static void die(const char *what)
{
    fprintf(stderr, "fuzz_wrk_csv: %s\n", what);
    abort();
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static int utf8_ok(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i], need, cp;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF)
            need = 1, cp = c & 0x1F;
        else if (c >= 0xE0 && c <= 0xEF)
            need = 2, cp = c & 0x0F;
        else if (c >= 0xF0 && c <= 0xF4)
            need = 3, cp = c & 0x07;
        else
            return 0;
        for (unsigned k = 1; k <= need; k++) {
            if (i + k >= n || (s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((need == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (need == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
            return 0;
        i += need + 1;
    }
    return 1;
}

static int on_row(void *arg, const wrk_csv_row_t *row)
{
    run_t *run = arg;
    uint64_t h = 14695981039346656037ULL;
    if (row->line != run->last_line + 1)
        die("line numbers are not consecutive");
    if (row->end_offset <= run->last_end || row->end_offset > run->size)
        die("end_offset does not rise within the input");
    if (run->nheader > 0 &&
        (row->ncells < run->nheader ||
         (row->error == WRK_CSV_ROW_OK && row->ncells != run->nheader) ||
         (row->error == WRK_CSV_ROW_TOO_MANY_CELLS &&
          row->ncells <= run->nheader)))
        die("a row's cell count does not match the header");
    if (row->error < WRK_CSV_ROW_OK || row->error > WRK_CSV_ROW_BAD_QUOTES ||
        (row->error != WRK_CSV_ROW_OK &&
         wrk_csv_row_error_message(row->error)[0] == '\0'))
        die("a row error without a message");
    if ((row->raw != NULL) != (row->error == WRK_CSV_ROW_BAD_QUOTES) ||
        (row->raw == NULL && row->raw_len != 0))
        die("raw text on a row that is not an open quote, or missing");
    if (row->raw != NULL &&
        (row->raw_len > WRK_CSV_RAW_MAX || strlen(row->raw) != row->raw_len ||
         !utf8_ok((const unsigned char *)row->raw, row->raw_len)))
        die("the raw text is too long, not its length or not UTF-8");
    if ((row->nonempty > 0) != (row->last_nonempty > 0) ||
        row->nonempty > row->last_nonempty ||
        (run->nheader > 0 && row->error == WRK_CSV_ROW_OK &&
         row->last_nonempty > run->nheader) ||
        (run->nheader > 0 && row->error == WRK_CSV_ROW_TOO_MANY_CELLS &&
         row->last_nonempty <= run->nheader))
        die("non-empty cell counts do not agree");
    if (run->csv != NULL) {
        char buf[160];
        size_t n = wrk_csv_row_sentence(run->csv, row, buf, sizeof(buf));
        if (n != strlen(buf) || !utf8_ok((const unsigned char *)buf, n) ||
            (row->error != WRK_CSV_ROW_OK && n == 0))
            die("a row sentence that is not whole UTF-8 text");
    }
    run->last_line = row->line;
    run->last_end = row->end_offset;
    h = fnv(h, &row->line, sizeof(row->line));
    h = fnv(h, &row->error, sizeof(row->error));
    h = fnv(h, &row->error_cell, sizeof(row->error_cell));
    h = fnv(h, &row->end_offset, sizeof(row->end_offset));
    h = fnv(h, &row->converted, sizeof(row->converted));
    h = fnv(h, &row->nonempty, sizeof(row->nonempty));
    h = fnv(h, &row->last_nonempty, sizeof(row->last_nonempty));
    if (row->raw != NULL)
        h = fnv(h, row->raw, row->raw_len);
    for (size_t i = 0; i < row->ncells; i++) {
        if (strlen(row->cells[i]) != row->lens[i])
            die("a cell's length is not its string length");
        if (!utf8_ok((const unsigned char *)row->cells[i], row->lens[i]))
            die("a cell is not valid UTF-8");
        h = fnv(h, &row->lens[i], sizeof(row->lens[i]));
        h = fnv(h, row->cells[i], row->lens[i]);
    }
    if (run->n == run->cap) {
        size_t cap = run->cap ? run->cap * 2 : 64;
        uint64_t *d = realloc(run->digest, cap * sizeof(*d));
        uint64_t *e = d ? realloc(run->end, cap * sizeof(*e)) : NULL;
        if (d == NULL || e == NULL)
            die("out of memory");
        run->digest = d;
        run->end = e;
        run->cap = cap;
    }
    run->end[run->n] = row->end_offset;
    run->digest[run->n++] = h;
    return 0;
}

/* Feeds data[from..size) in chunks (0: whole) into csv. */
static int feed_all(wrk_csv_t *csv, const uint8_t *data, size_t from,
                    size_t size, size_t chunk)
{
    size_t off = from;
    int rc = WRK_CSV_OK;
    while (off < size && rc == WRK_CSV_OK) {
        size_t n = chunk && chunk < size - off ? chunk : size - off;
        rc = wrk_csv_feed(csv, (const char *)data + off, n);
        off += n;
    }
    return rc == WRK_CSV_OK ? wrk_csv_finish(csv) : rc;
}

static void same(const run_t *a, size_t from, const run_t *b)
{
    if (a->n - from != b->n)
        die("a different number of rows");
    for (size_t i = 0; i < b->n; i++)
        if (a->digest[from + i] != b->digest[i])
            die("a different row");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run_t whole = {0};
    wrk_csv_t *csv = NULL;
    const char *const *header;
    size_t nheader = 0;
    int rc;
    static const size_t chunks[] = {1, 2, 7, 64};

    whole.size = size;
    csv = wrk_csv_new(on_row, &whole);
    if (csv == NULL)
        die("out of memory");
    /* The header count is known only once read: the first read does not
     * check cell counts against it, the later ones do. */
    rc = feed_all(csv, data, 0, size, 0);
    if (rc != WRK_CSV_OK && rc != WRK_CSV_EHEADER)
        die("unexpected result");
    if (rc == WRK_CSV_EHEADER && wrk_csv_error(csv)[0] == '\0')
        die("a header error without a sentence");
    header = wrk_csv_header(csv, &nheader);
    if (header == NULL && wrk_csv_rows(csv) != 0)
        die("rows without a header");
    {
        const char *e = wrk_csv_header_note_empty(csv);
        const char *r = wrk_csv_header_note_repeated(csv);
        if (!utf8_ok((const unsigned char *)e, strlen(e)) ||
            !utf8_ok((const unsigned char *)r, strlen(r)))
            die("a header note is not UTF-8");
    }

    for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
        run_t run = {0};
        wrk_csv_t *r = wrk_csv_new(on_row, &run);
        int rc2;
        run.size = size;
        run.nheader = nheader;
        run.csv = r;
        if (r == NULL)
            die("out of memory");
        rc2 = feed_all(r, data, 0, size, chunks[c]);
        if (rc2 != rc)
            die("chunking changed the result");
        same(&whole, 0, &run);
        wrk_csv_destroy(&r);
        free(run.digest);
        free(run.end);
    }

    /* Resume before the first row and at a few row boundaries. */
    for (size_t k = 0; header != NULL && k <= whole.n; k += 1 + whole.n / 4) {
        run_t run = {0};
        uint64_t at = k == 0 ? wrk_csv_data_offset(csv) : whole.end[k - 1];
        wrk_csv_t *r = wrk_csv_new_resume(on_row, &run, wrk_csv_delimiter(csv),
                                          header, nheader, k + 1, at);
        if (r == NULL)
            die("out of memory");
        run.size = size;
        run.nheader = nheader;
        run.csv = r;
        run.last_line = k;
        run.last_end = at;
        if (feed_all(r, data, (size_t)at, size, k % 2 ? 3 : 0) != WRK_CSV_OK)
            die("a resumed read failed");
        same(&whole, k, &run);
        if (wrk_csv_bytes(r) != size)
            die("a resumed read did not consume the rest");
        wrk_csv_destroy(&r);
        free(run.digest);
        free(run.end);
    }

    wrk_csv_destroy(&csv);
    free(whole.digest);
    free(whole.end);
    return 0;
}
