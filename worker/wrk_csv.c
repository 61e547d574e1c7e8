/*
 * wrk_csv: turns a CSV byte stream, pushed in chunks of any size, into rows
 * of UTF-8 cells with line numbers and resumable byte offsets. The input goes
 * through three phases: the first three bytes (a byte order mark), the header
 * line (buffered until its end so the delimiter can be counted on it), then
 * rows. In the row phase a small quote-aware scanner finds where each row
 * ends and feeds only that row's bytes to libcsv, which splits and unquotes
 * the cells; csv_fini closes the row. Knowing the row's end before libcsv
 * does gives exact offsets and lets an oversized row be skipped without
 * buffering it. The scanner also decides where a quoted cell ends under the
 * original service's quote rule (see wrk_csv.h), which libcsv alone does
 * not follow, and keeps the first bytes of a row that spans chunks, for the
 * line error of a quoted cell left open at the end of the file.
 */
#include "wrk_csv.h"
#include "dip_text.h"

#include <csv.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { PH_HEAD, PH_DETECT, PH_ROWS, PH_DONE };

/* Scanner states, mirroring libcsv's non-strict rules. Inside a quoted
 * field the scanner also tracks whether the quotes that were characters
 * (followed by text) pair up: after an odd number of them (S_STRAY), the
 * next delimiter or line break ends the cell, as the original service's
 * parser read "a"b,1 or 5" x. Such a close is handed to libcsv as a quote
 * just before the delimiter, which libcsv then drops, and the cell libcsv
 * then reports is replaced by the cell's own bytes from its opening quote
 * (vcell), as the original kept it. A cell that starts "" and a character
 * (S_TEXT) is text for the original; libcsv, which takes it for a quoted
 * one, is closed at its delimiter the same way. */
enum {
    S_FIELD,        /* at a field start, leading spaces skipped */
    S_UNQUOTED,     /* in an unquoted field: a quote is data */
    S_QUOTED,       /* in a quoted field: delimiters and line breaks are data */
    S_STRAY,        /* in a quoted field after an unpaired character quote */
    S_CLOSED,       /* just after a quote in S_QUOTED */
    S_CLOSED_SP,    /* after that quote and spaces */
    S_STRAY_END,    /* just after a quote in S_STRAY */
    S_STRAY_END_SP, /* after that quote and spaces */
    S_OPEN,         /* just after a field's opening quote */
    S_OPEN2,        /* after "" at a field's start */
    S_TEXT,         /* after "" and a character: text, as the original
                       read it; libcsv is in a quoted field meanwhile */
};

/* How scan() stopped. SCAN_TEXT_CLOSE: at the delimiter of an S_TEXT cell
 * that libcsv closes by itself (after an odd run of quotes). */
enum { SCAN_MORE, SCAN_LINE_END, SCAN_STRAY_CLOSE, SCAN_TEXT_CLOSE };

/* Byte classes for the scanner. */
enum { C_DELIM = 1, C_TERM = 2, C_QUOTE = 4, C_SPACE = 8 };

static const char candidates[4] = {',', ';', '\t', '|'};

struct wrk_csv {
    wrk_csv_row_fn fn;
    void *arg;
    struct csv_parser parser;
    int parser_live;
    unsigned char cls[256];
    char delim;
    int phase;
    int status; /* sticky non-OK result */
    char err[1024];

    /* PH_HEAD */
    unsigned char head[3];
    size_t head_len;
    uint64_t start_offset;

    /* PH_DETECT: the header line, from its first byte */
    unsigned char *pre;
    size_t pre_len, pre_cap;
    uint64_t pre_base; /* input offset of pre[0] */
    size_t det_count[4];
    int det_in_record, det_state, det_blank; /* det_state: S_* */

    /* PH_ROWS */
    uint64_t offset; /* input offset of the next byte */
    uint64_t data_offset;
    uint64_t line, rows, converted;
    int in_row, sstate, pending_cr;
    /* S_TEXT: libcsv's state in the quoted field it thinks it is in: after
     * a quote it may close on (lib_quote), with spaces since (lib_spaces),
     * after which a quote is a character and keeps that state */
    int lib_quote, lib_spaces;
    size_t row_raw;
    int row_too_big, row_bad_quotes, row_nul, row_cell_big, row_converted;
    size_t too_big_cell, bad_quotes_cell, nul_cell, cell_big_cell;
    size_t scan_field;  /* the field the scanner is in */
    size_t cells_seen;  /* cells libcsv reported, kept or not */
    size_t last_filled; /* 1 + index of the last non-empty cell */
    size_t filled;      /* non-empty cells, kept or not */
    int all_null, oom;

    /* The quoted cell being scanned, from its opening quote, as the file
     * has it: a cell that an unpaired character quote closes is delivered
     * so (the original's reading), in place of libcsv's unquoting. Bytes
     * in the current push are only pointed at (cap_from); those of earlier
     * pushes are copied into vraw, at most VRAW_MAX of them. */
    int capturing;                 /* in a quoted cell */
    const unsigned char *cap_from; /* its first byte in this push, or NULL */
    unsigned char *vraw;
    size_t vraw_len, vraw_cap;
    int vraw_over; /* the cell had more than VRAW_MAX bytes */
    /* libcsv's next cell is vcell[0..vcell_len) (over: too big); the
     * scanner may meanwhile open the next cell, in vraw */
    int verbatim, vcell_over;
    unsigned char *vcell;
    size_t vcell_len, vcell_cap;

    /* The first bytes of the row still open at the end of the last push:
     * the text of a quoted cell left open at the end of the file. */
    unsigned char *raw;
    size_t raw_len, raw_cap;
    char *raw_text; /* raw as UTF-8, for the row */
    size_t raw_text_cap;

    /* the current row's cells: text in buf, each NUL-terminated */
    char *buf;
    size_t buf_len, buf_cap;
    size_t *offs, *lens;
    const char **ptrs;
    size_t ncells, cells_cap;

    char **header;
    size_t nheader;
    char note_empty[512];     /* header columns without a name */
    char note_repeated[1024]; /* names in the header more than once */
};

/* Raw bytes kept of an open row: the limit, and room to cut it on a
 * character boundary. */
#define RAW_KEEP (WRK_CSV_RAW_MAX + 4)
/* A verbatim cell longer than this is over WRK_CSV_CELL_MAX anyway. */
#define VRAW_MAX (WRK_CSV_CELL_MAX + 1)

/* --- text ---------------------------------------------------------------*/

/* Windows-1252 0x80..0x9F; the undefined five map to their C1 code point. */
static const unsigned short cp1252_high[32] = {
    0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
    0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x008D, 0x017D, 0x008F,
    0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
    0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178,
};

static size_t put_utf8(char *d, unsigned cp)
{
    if (cp < 0x80) {
        d[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        d[0] = (char)(0xC0 | (cp >> 6));
        d[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    d[0] = (char)(0xE0 | (cp >> 12));
    d[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    d[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
}

/* Copies s to d, NUL as U+FFFD, and bytes >= 0x80 from Windows-1252 when
 * cp1252 is set. d has room for 3 * n bytes. Returns the length written. */
static size_t copy_text(char *d, const unsigned char *s, size_t n, int cp1252)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c == 0)
            o += put_utf8(d + o, 0xFFFD);
        else if (c < 0x80 || !cp1252)
            d[o++] = (char)c;
        else if (c < 0xA0)
            o += put_utf8(d + o, cp1252_high[c - 0x80]);
        else
            o += put_utf8(d + o, c);
    }
    return o;
}

/* A name for messages: quoted, cut to at most 60 bytes on a character
 * boundary ("..." marks the cut). out has room for 68 bytes. */
static void quote_name(char *out, size_t outlen, const char *name)
{
    size_t len = strlen(name), n = dip_text_cut(name, len, 60);
    dip_text_format(out, outlen, NULL, "'%.*s%s'", (int)n, name,
                    n < len ? "..." : "");
}

/* Appends s to the text in buf (size bytes) when it fits whole with spare
 * bytes left over. Returns 1 when appended, 0 when not. Text is only ever
 * added whole, so a sentence never ends inside a character. */
static int add_text(char *buf, size_t size, size_t spare, const char *s)
{
    size_t used = strlen(buf), n = strlen(s);
    if (used + n + spare + 1 > size)
        return 0;
    memcpy(buf + used, s, n + 1);
    return 1;
}

/* --- cells --------------------------------------------------------------*/

static int reserve(void **p, size_t *cap, size_t need, size_t size)
{
    size_t ncap;
    void *np;
    if (need <= *cap)
        return 0;
    ncap = *cap ? *cap : 16;
    while (ncap < need)
        ncap *= 2;
    np = realloc(*p, ncap * size);
    if (np == NULL)
        return -1;
    *p = np;
    *cap = ncap;
    return 0;
}

static int reserve_cells(wrk_csv_t *self, size_t need)
{
    size_t cap = self->cells_cap, c1 = cap, c2 = cap;
    if (need <= cap)
        return 0;
    if (reserve((void **)&self->offs, &c1, need, sizeof(size_t)) < 0 ||
        reserve((void **)&self->lens, &c2, need, sizeof(size_t)) < 0 ||
        reserve((void **)&self->ptrs, &cap, need, sizeof(char *)) < 0)
        return -1;
    self->cells_cap = cap;
    return 0;
}

/* libcsv's cell callback: data is NULL for an empty unquoted cell. */
static void on_cell(void *data, size_t len, void *arg)
{
    wrk_csv_t *self = arg;
    const unsigned char *s = data;
    size_t idx = self->cells_seen++;
    size_t keep = self->header ? self->nheader + WRK_CSV_EXTRA_CELLS
                               : WRK_CSV_MAX_COLUMNS;
    int cp1252 = 0, nul;
    char *d;

    if (self->verbatim) {
        /* A cell closed by an unpaired character quote, as the file has
         * it from its opening quote. */
        self->verbatim = 0;
        s = self->vcell;
        len = self->vcell_over ? (size_t)WRK_CSV_CELL_MAX + 1 : self->vcell_len;
        if (s == NULL)
            s = (const unsigned char *)"";
    }

    if (s != NULL)
        self->all_null = 0;
    if (len > 0) {
        self->last_filled = idx + 1;
        self->filled++;
    }
    if (idx >= keep || self->oom)
        return;
    if (reserve_cells(self, idx + 1) < 0)
        goto oom;
    if (len > WRK_CSV_CELL_MAX) {
        if (!self->row_cell_big) {
            self->row_cell_big = 1;
            self->cell_big_cell = idx;
        }
        len = 0;
    }
    nul = len > 0 && memchr(s, 0, len) != NULL;
    if (nul && !self->row_nul) {
        self->row_nul = 1;
        self->nul_cell = idx;
    }
    if (len > 0 && !dip_text_utf8_valid((const char *)s, len)) {
        cp1252 = 1;
        self->converted++;
        self->row_converted = 1;
    }
    if (reserve((void **)&self->buf, &self->buf_cap,
                self->buf_len + 3 * len + 1, 1) < 0)
        goto oom;
    d = self->buf + self->buf_len;
    if (cp1252 || nul)
        len = copy_text(d, s, len, cp1252);
    else if (len > 0)
        memcpy(d, s, len);
    d[len] = '\0';
    self->offs[idx] = self->buf_len;
    self->lens[idx] = len;
    self->buf_len += len + 1;
    self->ncells = idx + 1;
    return;
oom:
    self->oom = 1;
}

static int space_or_tab(unsigned char c)
{
    return c == ' ' || c == '\t';
}

static int space_only(unsigned char c)
{
    return c == ' ';
}

/* --- rows ---------------------------------------------------------------*/

static void set_delimiter(wrk_csv_t *self, char delim)
{
    self->delim = delim;
    memset(self->cls, 0, sizeof(self->cls));
    self->cls['\r'] = C_TERM;
    self->cls['\n'] = C_TERM;
    self->cls['"'] = C_QUOTE;
    self->cls[' '] = C_SPACE;
    self->cls['\t'] = C_SPACE;
    self->cls[(unsigned char)delim] = C_DELIM;
}

/* libcsv grows its cell buffer by a fixed block at a time; growing
 * geometrically instead keeps a 1 MiB cell from costing hundreds of copies
 * (and, under a sanitizer that never reallocates in place, hundreds of MiB
 * of freed blocks). */
static void *grow_geometric(void *p, size_t n)
{
    size_t have = p ? malloc_usable_size(p) : 0;
    if (n <= have)
        return p;
    return realloc(p, n < 2 * have ? 2 * have : n);
}

static int parser_start(wrk_csv_t *self)
{
    if (csv_init(&self->parser, CSV_EMPTY_IS_NULL) != 0)
        return WRK_CSV_ENOMEM;
    self->parser_live = 1;
    csv_set_delim(&self->parser, (unsigned char)self->delim);
    csv_set_space_func(&self->parser,
                       self->delim == '\t' ? space_only : space_or_tab);
    csv_set_blk_size(&self->parser, 4096);
    csv_set_realloc_func(&self->parser, grow_geometric);
    return WRK_CSV_OK;
}

static void row_start(wrk_csv_t *self)
{
    self->in_row = 1;
    self->sstate = S_FIELD;
    self->row_raw = 0;
    self->row_too_big = self->row_bad_quotes = 0;
    self->row_nul = self->row_cell_big = self->row_converted = 0;
    self->too_big_cell = self->bad_quotes_cell = 0;
    self->nul_cell = self->cell_big_cell = 0;
    self->scan_field = self->cells_seen = self->last_filled = 0;
    self->filled = 0;
    self->raw_len = 0;
    self->all_null = 1;
    self->buf_len = self->ncells = 0;
    self->capturing = self->verbatim = 0;
    self->vraw_len = 0;
}

/* The state after byte class k (a space, a quote or text; not a delimiter
 * or line break, which close the cell) that follows a quote, and maybe
 * spaces, inside a quoted field. */
static int after_quote(int st, unsigned k)
{
    int even = st == S_CLOSED || st == S_CLOSED_SP;
    if (k & C_SPACE)
        return even ? S_CLOSED_SP : S_STRAY_END_SP;
    if (k & C_QUOTE) {
        /* Right after the quote, "" is one quote and changes nothing.
         * After spaces, the first quote was a character, and this one may
         * close the cell. */
        if (st == S_CLOSED)
            return S_QUOTED;
        if (st == S_STRAY_END)
            return S_STRAY;
        return even ? S_STRAY_END : S_CLOSED;
    }
    /* Text: the quote was a character of the cell. */
    return even ? S_STRAY : S_QUOTED;
}

/* Whether the quoted cell being scanned holds a delimiter before p (start:
 * where this scan began). The original split a line at every delimiter
 * first: an unpaired character quote closed a cell at its first one only. */
static int cell_has_delim(const wrk_csv_t *self, const unsigned char *start,
                          const unsigned char *p)
{
    const unsigned char *from = self->cap_from ? self->cap_from : start;
    return (self->cap_from == NULL && self->vraw_len > 0 &&
            memchr(self->vraw, self->delim, self->vraw_len) != NULL) ||
           (p > from && memchr(from, self->delim, (size_t)(p - from)) != NULL);
}

/* Finds the end of the row from p. Returns where the scan stopped and sets
 * *how: SCAN_LINE_END at a line break that ends the row, SCAN_STRAY_CLOSE
 * at a delimiter that ends a quoted cell after an unpaired character quote
 * (not consumed: the caller closes the cell for libcsv first), SCAN_MORE at
 * end. */
static const unsigned char *scan(wrk_csv_t *self, const unsigned char *p,
                                 const unsigned char *end, int *how)
{
    const unsigned char *cls = self->cls, *start = p;
    int st = self->sstate;
    unsigned char k;

    *how = SCAN_MORE;
    self->cap_from = NULL;
    while (p < end) {
        switch (st) {
        case S_QUOTED: {
            const unsigned char *q = memchr(p, '"', (size_t)(end - p));
            if (q == NULL) {
                p = end;
            } else {
                p = q + 1;
                st = S_CLOSED;
            }
            break;
        }
        case S_UNQUOTED:
            while (p < end && !(cls[*p] & (C_DELIM | C_TERM)))
                p++;
            if (p == end)
                break;
            if (cls[*p] & C_TERM) {
                *how = SCAN_LINE_END;
                goto out;
            }
            p++;
            self->scan_field++;
            st = S_FIELD;
            break;
        case S_STRAY:
            while (p < end && !(cls[*p] & (C_DELIM | C_TERM | C_QUOTE)))
                p++;
            if (p == end)
                break;
            k = cls[*p];
            if ((k & (C_TERM | C_DELIM)) && cell_has_delim(self, start, p)) {
                /* Past the cell's first delimiter only a closing quote
                 * ends it, as for the original. */
                p++;
                break;
            }
            if (k & C_TERM) {
                *how = SCAN_LINE_END;
                goto out;
            }
            if (k & C_DELIM) {
                /* The delimiter now closes the cell as after a quote. */
                st = S_CLOSED;
                *how = SCAN_STRAY_CLOSE;
                goto out;
            }
            p++;
            st = S_STRAY_END;
            break;
        case S_OPEN:
            /* "" then a character is no quoted cell for the original. */
            if (cls[*p] & C_QUOTE) {
                p++;
                st = S_OPEN2;
            } else {
                st = S_QUOTED;
            }
            break;
        case S_OPEN2:
            k = cls[*p];
            if (k & C_QUOTE) {
                p++;
                st = S_QUOTED; /* """: a quoted cell holding a quote */
            } else if (k & (C_DELIM | C_TERM)) {
                st = S_CLOSED; /* "": an empty cell */
            } else {
                p++;
                st = S_TEXT;
                /* libcsv saw "" (a quote it may close on), then a space
                 * it keeps pending or a character that opens it again. */
                self->lib_quote = self->lib_spaces = (k & C_SPACE) != 0;
            }
            break;
        case S_TEXT:
            k = cls[*p];
            if (k & C_TERM) {
                *how = SCAN_LINE_END;
                goto out;
            }
            if (k & C_DELIM) {
                st = S_CLOSED;
                *how = self->lib_quote ? SCAN_TEXT_CLOSE : SCAN_STRAY_CLOSE;
                goto out;
            }
            if (k & C_QUOTE) {
                /* After spaces libcsv keeps a quote as a character. */
                if (self->lib_quote && !self->lib_spaces)
                    self->lib_quote = 0;
                else
                    self->lib_quote = 1;
                self->lib_spaces = 0;
            } else if (k & C_SPACE) {
                self->lib_spaces = self->lib_quote;
            } else {
                self->lib_quote = self->lib_spaces = 0;
            }
            p++;
            break;
        case S_FIELD:
            k = cls[*p];
            if (k & C_TERM) {
                *how = SCAN_LINE_END;
                goto out;
            }
            p++;
            if (k & C_DELIM) {
                self->scan_field++;
            } else if (k & C_QUOTE) {
                st = S_OPEN;
                self->capturing = 1;
                self->cap_from = p - 1;
                self->vraw_len = 0;
                self->vraw_over = 0;
            } else if (!(k & C_SPACE)) {
                st = S_UNQUOTED;
            }
            break;
        default: /* after a quote inside a quoted field */
            k = cls[*p];
            if (k & C_TERM) {
                *how = SCAN_LINE_END;
                goto out;
            }
            p++;
            if (k & C_DELIM) {
                self->scan_field++;
                st = S_FIELD;
                self->capturing = 0;
            } else {
                st = after_quote(st, k);
            }
            break;
        }
    }
out:
    self->sstate = st;
    return p;
}

/* Appends the first bytes of p (n of them) to the growing buffer *buf, as
 * many as keep *len within max; the rest is dropped. WRK_CSV_ENOMEM (err
 * set) when the buffer cannot grow. */
static int append_capped(wrk_csv_t *self, unsigned char **buf, size_t *len,
                         size_t *cap, size_t max, const unsigned char *p,
                         size_t n)
{
    if (n > max - *len)
        n = max - *len;
    if (n == 0)
        return WRK_CSV_OK;
    if (reserve((void **)buf, cap, *len + n, 1) < 0) {
        snprintf(self->err, sizeof(self->err), "out of memory reading a row");
        return WRK_CSV_ENOMEM;
    }
    memcpy(*buf + *len, p, n);
    *len += n;
    return WRK_CSV_OK;
}

/* Appends bytes of the quoted cell being scanned to vraw, up to VRAW_MAX. */
static int capture(wrk_csv_t *self, const unsigned char *p, size_t n)
{
    if (n > VRAW_MAX - self->vraw_len)
        self->vraw_over = 1;
    return append_capped(self, &self->vraw, &self->vraw_len, &self->vraw_cap,
                         VRAW_MAX, p, n);
}

/* The quoted cell being scanned ends at an unpaired character quote's
 * delimiter, line end or end of file: its bytes up to there, from the
 * opening quote, spaces at the end dropped, become libcsv's next cell. */
static int take_verbatim(wrk_csv_t *self, const unsigned char *seg,
                         const unsigned char *p)
{
    int rc = WRK_CSV_OK;
    if (self->capturing && p > (self->cap_from ? self->cap_from : seg))
        rc = capture(self, self->cap_from ? self->cap_from : seg,
                     (size_t)(p - (self->cap_from ? self->cap_from : seg)));
    self->capturing = 0;
    self->cap_from = NULL;
    if (rc != WRK_CSV_OK)
        return rc;
    while (!self->vraw_over && self->vraw_len > 0 &&
           (self->vraw[self->vraw_len - 1] == ' ' ||
            (self->vraw[self->vraw_len - 1] == '\t' && self->delim != '\t')))
        self->vraw_len--;
    /* Swapped, not copied: the next quoted cell fills the other buffer. */
    {
        unsigned char *b = self->vcell;
        size_t cap = self->vcell_cap;
        self->vcell = self->vraw;
        self->vcell_cap = self->vraw_cap;
        self->vcell_len = self->vraw_len;
        self->vcell_over = self->vraw_over;
        self->vraw = b;
        self->vraw_cap = cap;
        self->vraw_len = 0;
        self->vraw_over = 0;
    }
    self->verbatim = 1;
    return WRK_CSV_OK;
}

/* libcsv sees a quoted field end only at a quote: one is handed to it
 * before the delimiter of a cell that ends after a character quote. libcsv
 * drops it (a quote before a delimiter closes the field). */
static int close_stray(wrk_csv_t *self)
{
    if (self->row_too_big)
        return WRK_CSV_OK;
    if (csv_parse(&self->parser, "\"", 1, on_cell, NULL, self) != 1 ||
        self->oom) {
        snprintf(self->err, sizeof(self->err), "out of memory reading a row");
        return WRK_CSV_ENOMEM;
    }
    return WRK_CSV_OK;
}

/* Hands n raw bytes of the current row to libcsv, up to the row limit. */
static int parse_bytes(wrk_csv_t *self, const unsigned char *s, size_t n)
{
    size_t give = n;
    if (n == 0 || self->row_too_big)
        return WRK_CSV_OK;
    if (n > WRK_CSV_ROW_MAX - self->row_raw) {
        give = WRK_CSV_ROW_MAX - self->row_raw;
        self->row_too_big = 1;
    }
    if (csv_parse(&self->parser, s, give, on_cell, NULL, self) != give ||
        self->oom) {
        snprintf(self->err, sizeof(self->err), "out of memory reading a row");
        return WRK_CSV_ENOMEM;
    }
    self->row_raw += give;
    if (self->row_too_big)
        self->too_big_cell = self->cells_seen;
    return WRK_CSV_OK;
}

/* The note on header columns without a name: "column 4 of the header has
 * no name, so it is ignored", or "columns 4, 7 and 9 ...". */
static void note_empty(wrk_csv_t *self)
{
    enum { LIST = 20 };
    char *out = self->note_empty, num[48];
    size_t n = 0, listed = 0, last = 0;
    out[0] = '\0';
    for (size_t i = 0; i < self->nheader; i++)
        if (self->header[i][0] == '\0')
            n++;
    if (n == 0)
        return;
    if (n == 1) {
        for (size_t i = 0; i < self->nheader; i++)
            if (self->header[i][0] == '\0')
                last = i;
        snprintf(out, sizeof(self->note_empty),
                 "column %zu of the header has no name, so it is ignored",
                 last + 1);
        return;
    }
    snprintf(out, sizeof(self->note_empty), "columns ");
    for (size_t i = 0; i < self->nheader; i++) {
        if (self->header[i][0] != '\0')
            continue;
        if (listed + 1 == n) {
            snprintf(num, sizeof(num), " and %zu", i + 1);
        } else if (listed == LIST) {
            snprintf(num, sizeof(num), " and %zu more", n - listed);
            add_text(out, sizeof(self->note_empty), 0, num);
            break;
        } else {
            snprintf(num, sizeof(num), "%s%zu", listed ? ", " : "", i + 1);
        }
        add_text(out, sizeof(self->note_empty), 0, num);
        listed++;
    }
    add_text(out, sizeof(self->note_empty), 0,
             " of the header have no name, so they are ignored");
}

struct named {
    const char *name;
    size_t idx;
};

static int cmp_named(const void *a, const void *b)
{
    const struct named *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c != 0)
        return c;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* The note on names the header has more than once, in the order of their
 * first column: "the header repeats 'Notes' and 'Id': columns with a
 * repeated name are ignored". Returns WRK_CSV_OK or WRK_CSV_ENOMEM. */
static int note_repeated(wrk_csv_t *self)
{
    static const char tail[] = ": columns with a repeated name are ignored";
    char *out = self->note_repeated, q[72], more[48];
    const size_t size = sizeof(self->note_repeated);
    size_t n = self->nheader, ndup = 0, listed = 0;
    struct named *sorted = NULL;
    unsigned char *first = NULL;
    int rc = WRK_CSV_OK;

    out[0] = '\0';
    sorted = malloc((n ? n : 1) * sizeof(*sorted));
    first = calloc(n ? n : 1, 1);
    if (sorted == NULL || first == NULL) {
        rc = WRK_CSV_ENOMEM;
        goto cleanup;
    }
    for (size_t i = 0; i < n; i++) {
        sorted[i].name = self->header[i];
        sorted[i].idx = i;
    }
    qsort(sorted, n, sizeof(*sorted), cmp_named);
    for (size_t i = 1; i < n; i++) {
        /* Empty names have their own note. */
        if (sorted[i].name[0] != '\0' &&
            strcmp(sorted[i].name, sorted[i - 1].name) == 0 &&
            (i < 2 || strcmp(sorted[i - 1].name, sorted[i - 2].name) != 0)) {
            first[sorted[i - 1].idx] = 1;
            ndup++;
        }
    }
    if (ndup == 0)
        goto cleanup;
    snprintf(out, size, "the header repeats ");
    for (size_t i = 0; i < n && listed < ndup; i++) {
        char piece[96];
        if (!first[i])
            continue;
        quote_name(q, sizeof(q), self->header[i]);
        snprintf(piece, sizeof(piece), "%s%s",
                 listed == 0          ? ""
                 : listed + 1 == ndup ? " and "
                                      : ", ",
                 q);
        /* Room is kept for the longest ending: " and N more names". */
        if (!add_text(out, size, sizeof(tail) + 40, piece))
            break;
        listed++;
    }
    if (listed < ndup) {
        snprintf(more, sizeof(more), " and %zu more name%s", ndup - listed,
                 ndup - listed == 1 ? "" : "s");
        add_text(out, size, 0, more);
    }
    add_text(out, size, 0, tail);
cleanup:
    free(sorted);
    free(first);
    return rc;
}

/* The header's refusals, in the order they are checked. */
static int header_refused(wrk_csv_t *self)
{
    if (self->row_too_big)
        snprintf(self->err, sizeof(self->err),
                 "the header line is longer than %d bytes", WRK_CSV_ROW_MAX);
    else if (self->row_nul)
        snprintf(self->err, sizeof(self->err),
                 "the header contains a NUL byte: is the file UTF-16? save "
                 "it as CSV UTF-8 and import it again");
    else if (self->row_bad_quotes)
        snprintf(self->err, sizeof(self->err),
                 "the header has a quoted name still open at the end of the "
                 "file, in column %zu",
                 self->bad_quotes_cell + 1);
    else if (self->cells_seen > WRK_CSV_MAX_COLUMNS)
        snprintf(self->err, sizeof(self->err),
                 "the header has %zu columns, more than %d", self->cells_seen,
                 WRK_CSV_MAX_COLUMNS);
    else if (self->row_cell_big)
        snprintf(self->err, sizeof(self->err),
                 "the header has a column name longer than %d bytes at "
                 "position %zu",
                 WRK_CSV_CELL_MAX, self->cell_big_cell + 1);
    else
        return 0;
    return 1;
}

static int take_header(wrk_csv_t *self)
{
    char **names = NULL;
    size_t n = self->ncells;
    int rc = WRK_CSV_OK;

    if (header_refused(self)) {
        rc = WRK_CSV_EHEADER;
        goto cleanup;
    }
    names = calloc(n ? n : 1, sizeof(char *));
    if (names == NULL) {
        rc = WRK_CSV_ENOMEM;
        goto cleanup;
    }
    for (size_t i = 0; i < n; i++) {
        const char *s = self->buf + self->offs[i];
        size_t len = self->lens[i];
        if (i == 0 && len >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) {
            s += 3;
            len -= 3;
        }
        len = dip_text_trim(&s, len);
        names[i] = strndup(s, len);
        if (names[i] == NULL) {
            rc = WRK_CSV_ENOMEM;
            goto cleanup;
        }
    }
    self->header = names;
    self->nheader = n;
    names = NULL;
    self->data_offset = self->offset;
    note_empty(self);
    rc = note_repeated(self);
cleanup:
    if (rc == WRK_CSV_ENOMEM)
        snprintf(self->err, sizeof(self->err),
                 "out of memory reading the header");
    if (names != NULL) {
        for (size_t i = 0; i < n; i++)
            free(names[i]);
        free(names);
    }
    return rc;
}

/* The kept raw bytes as UTF-8 text in raw_text: each byte that is not part
 * of a UTF-8 character read as Windows-1252, NUL as U+FFFD, then cut at
 * WRK_CSV_RAW_MAX on a character boundary. Returns the length, or -1. */
static long raw_to_text(wrk_csv_t *self)
{
    const unsigned char *r = self->raw;
    size_t n = self->raw_len, o = 0;
    if (reserve((void **)&self->raw_text, &self->raw_text_cap, 3 * n + 1, 1) <
        0)
        return -1;
    for (size_t i = 0; i < n;) {
        size_t k = r[i] != 0 ? dip_text_utf8_seq(r + i, n - i) : 0;
        if (k > 0) {
            memcpy(self->raw_text + o, r + i, k);
            o += k;
            i += k;
        } else {
            o += copy_text(self->raw_text + o, r + i, 1, 1);
            i++;
        }
    }
    /* Bytes kept past the limit only let the cut see whole characters. */
    o = dip_text_cut(self->raw_text, o, WRK_CSV_RAW_MAX);
    self->raw_text[o] = '\0';
    return (long)o;
}

/* Closes the current row and delivers it (or takes it as the header). */
static int row_end(wrk_csv_t *self)
{
    wrk_csv_row_t row;
    size_t n;
    int rc = WRK_CSV_OK;

    csv_fini(&self->parser, on_cell, NULL, self);
    self->in_row = 0;
    if (self->oom) {
        snprintf(self->err, sizeof(self->err), "out of memory reading a row");
        return WRK_CSV_ENOMEM;
    }
    if (self->all_null && !self->row_too_big)
        return WRK_CSV_OK; /* a blank line */
    if (self->header == NULL)
        return take_header(self);

    memset(&row, 0, sizeof(row));
    n = self->ncells;
    if (n > self->nheader && self->last_filled <= self->nheader)
        n = self->nheader; /* only empty cells past the header */
    if (self->row_too_big) {
        row.error = WRK_CSV_ROW_TOO_BIG;
        row.error_cell = self->too_big_cell;
    } else if (self->row_bad_quotes) {
        long len = raw_to_text(self);
        if (len < 0) {
            snprintf(self->err, sizeof(self->err),
                     "out of memory reading a row");
            return WRK_CSV_ENOMEM;
        }
        row.error = WRK_CSV_ROW_BAD_QUOTES;
        row.error_cell = self->bad_quotes_cell;
        row.raw = self->raw_text;
        row.raw_len = (size_t)len;
    } else if (self->row_nul) {
        row.error = WRK_CSV_ROW_NUL_BYTE;
        row.error_cell = self->nul_cell;
    } else if (self->row_cell_big) {
        row.error = WRK_CSV_ROW_CELL_TOO_BIG;
        row.error_cell = self->cell_big_cell;
    } else if (n > self->nheader) {
        row.error = WRK_CSV_ROW_TOO_MANY_CELLS;
        row.error_cell = self->nheader;
    }
    if (n < self->nheader) {
        if (reserve_cells(self, self->nheader) < 0) {
            snprintf(self->err, sizeof(self->err),
                     "out of memory reading a row");
            return WRK_CSV_ENOMEM;
        }
    }
    for (size_t i = 0; i < n; i++)
        self->ptrs[i] = self->buf + self->offs[i];
    row.nfile = n;
    for (size_t i = n; i < self->nheader; i++) {
        self->ptrs[i] = "";
        self->lens[i] = 0;
    }
    if (n < self->nheader)
        n = self->nheader;
    row.line = ++self->line;
    row.ncells = n;
    row.cells = self->ptrs;
    row.lens = self->lens;
    row.end_offset = self->offset;
    row.converted = self->row_converted;
    row.nonempty = self->filled;
    row.last_nonempty = self->last_filled;
    self->rows++;
    if (self->fn(self->arg, &row) != 0)
        rc = WRK_CSV_ESTOPPED;
    return rc;
}

/* Keeps the first RAW_KEEP bytes of the row still open at the end of a
 * push. Only a row that spans a push boundary is copied, and only up to the
 * limit, so rows that end within a chunk cost nothing. */
static int keep_raw(wrk_csv_t *self, const unsigned char *p, size_t n)
{
    return append_capped(self, &self->raw, &self->raw_len, &self->raw_cap,
                         RAW_KEEP, p, n);
}

static int rows_push(wrk_csv_t *self, const unsigned char *p, size_t n)
{
    const unsigned char *end = p + n, *rowp = p;
    int rc = WRK_CSV_OK;

    while (p < end) {
        const unsigned char *seg;
        int ended;
        if (self->pending_cr) {
            self->pending_cr = 0;
            if (*p == '\n') {
                p++;
                self->offset++;
            }
            if ((rc = row_end(self)) != WRK_CSV_OK)
                return rc;
            continue;
        }
        if (!self->in_row) {
            while (p < end && (*p == '\r' || *p == '\n')) {
                p++;
                self->offset++;
            }
            if (p == end)
                break;
            row_start(self);
            rowp = p;
        }
        seg = p;
        p = scan(self, p, end, &ended);
        rc = parse_bytes(self, seg, (size_t)(p - seg));
        self->offset += (uint64_t)(p - seg);
        if (rc == WRK_CSV_OK && ended == SCAN_MORE && self->capturing)
            rc = capture(self, self->cap_from ? self->cap_from : seg,
                         (size_t)(p - (self->cap_from ? self->cap_from : seg)));
        if (ended == SCAN_MORE)
            self->cap_from = NULL; /* the push's bytes are gone after it */
        if (rc == WRK_CSV_OK &&
            (ended == SCAN_STRAY_CLOSE || ended == SCAN_TEXT_CLOSE ||
             (ended == SCAN_LINE_END &&
              (self->sstate == S_STRAY || self->sstate == S_TEXT))))
            rc = take_verbatim(self, seg, p);
        if (rc != WRK_CSV_OK)
            return rc;
        if (ended == SCAN_MORE)
            break;
        if (ended == SCAN_STRAY_CLOSE) {
            if ((rc = close_stray(self)) != WRK_CSV_OK)
                return rc;
            continue;
        }
        if (ended == SCAN_TEXT_CLOSE)
            continue;
        self->offset++;
        if (*p++ == '\r') {
            if (p == end) {
                self->pending_cr = 1; /* a CRLF split across chunks? */
                break;
            }
            if (*p == '\n') {
                p++;
                self->offset++;
            }
        }
        if ((rc = row_end(self)) != WRK_CSV_OK)
            return rc;
    }
    if (self->in_row && !self->pending_cr)
        rc = keep_raw(self, rowp, (size_t)(end - rowp));
    return rc;
}

/* --- header line detection -----------------------------------------------*/

static int push(wrk_csv_t *self, const unsigned char *p, size_t n);

/* The header line is complete (or the input ended): pick the delimiter and
 * run the buffered line through the row phase. */
static int detect_done(wrk_csv_t *self)
{
    size_t best = 0, top = 0;
    int rc;
    for (size_t i = 0; i < 4; i++) {
        if (self->det_count[i] > best) {
            best = self->det_count[i];
            top = i;
        }
    }
    for (size_t i = 0; i < 4; i++)
        if (i != top && best > 0 && self->det_count[i] == best)
            top = 0; /* a tie goes to ',' */
    set_delimiter(self, candidates[top]);
    rc = parser_start(self);
    if (rc != WRK_CSV_OK)
        return rc;
    self->phase = PH_ROWS;
    self->offset = self->pre_base;
    rc = rows_push(self, self->pre, self->pre_len);
    free(self->pre);
    self->pre = NULL;
    self->pre_len = self->pre_cap = 0;
    return rc;
}

static int detect_push(wrk_csv_t *self, const unsigned char *p, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        unsigned char c = p[i];
        const char *cand;
        unsigned char k;
        if (!self->det_in_record) {
            if (c == '\r' || c == '\n') {
                self->pre_base++;
                continue;
            }
            self->det_in_record = 1;
            self->det_blank = 1;
            self->det_state = S_FIELD;
            memset(self->det_count, 0, sizeof(self->det_count));
        }
        /* The scanner's rules, with every candidate as a delimiter. */
        cand = memchr(candidates, c, sizeof(candidates));
        k = cand                     ? C_DELIM
            : c == '\r' || c == '\n' ? C_TERM
            : c == '"'               ? C_QUOTE
            : c == ' '               ? C_SPACE
                                     : 0;
        if (k != C_SPACE && k != C_TERM && c != '\t')
            self->det_blank = 0;
        switch (self->det_state) {
        case S_QUOTED:
            if (k == C_QUOTE)
                self->det_state = S_CLOSED;
            k = 0;
            break;
        case S_FIELD:
        case S_UNQUOTED:
            if (k == C_QUOTE && self->det_state == S_FIELD)
                self->det_state = S_QUOTED;
            else if (k == 0 || k == C_QUOTE)
                self->det_state = S_UNQUOTED;
            break;
        case S_STRAY:
            if (k == C_QUOTE)
                self->det_state = S_STRAY_END;
            break;
        default:
            if (k != C_DELIM && k != C_TERM)
                self->det_state = after_quote(self->det_state, k);
            break;
        }
        if (k == C_TERM) {
            if (!self->det_blank)
                break;
            /* Only spaces and tabs: blank whatever the delimiter. */
            self->pre_base += self->pre_len + 1;
            self->pre_len = 0;
            self->det_in_record = 0;
            continue;
        }
        if (k == C_DELIM) {
            self->det_count[cand - candidates]++;
            self->det_state = S_FIELD;
        }
        if (self->pre_len >= WRK_CSV_ROW_MAX + 1) {
            snprintf(self->err, sizeof(self->err),
                     "the header line is longer than %d bytes",
                     WRK_CSV_ROW_MAX);
            return WRK_CSV_EHEADER;
        }
        if (reserve((void **)&self->pre, &self->pre_cap, self->pre_len + 1, 1) <
            0) {
            snprintf(self->err, sizeof(self->err),
                     "out of memory reading the header");
            return WRK_CSV_ENOMEM;
        }
        self->pre[self->pre_len++] = c;
    }
    if (i == n)
        return WRK_CSV_OK;
    {
        int rc = detect_done(self);
        if (rc != WRK_CSV_OK)
            return rc;
    }
    return rows_push(self, p + i, n - i);
}

/* The first bytes decide about a byte order mark. */
static int head_decide(wrk_csv_t *self)
{
    size_t skip = 0;
    const unsigned char *h = self->head;
    if (self->head_len >= 2 &&
        ((h[0] == 0xFF && h[1] == 0xFE) || (h[0] == 0xFE && h[1] == 0xFF))) {
        snprintf(self->err, sizeof(self->err),
                 "the file is UTF-16 encoded: save it as CSV UTF-8 and "
                 "import it again");
        return WRK_CSV_EHEADER;
    }
    if (self->head_len == 3 && h[0] == 0xEF && h[1] == 0xBB && h[2] == 0xBF)
        skip = 3;
    if (self->header == NULL) {
        self->phase = PH_DETECT;
        self->pre_base = self->start_offset + skip;
    } else {
        self->phase = PH_ROWS;
        self->offset = self->start_offset + skip;
    }
    return push(self, self->head + skip, self->head_len - skip);
}

static int push(wrk_csv_t *self, const unsigned char *p, size_t n)
{
    int rc;
    switch (self->phase) {
    case PH_HEAD:
        while (self->head_len < 3 && n > 0) {
            self->head[self->head_len++] = *p++;
            n--;
        }
        if (self->head_len < 3)
            return WRK_CSV_OK;
        rc = head_decide(self);
        if (rc != WRK_CSV_OK)
            return rc;
        return push(self, p, n);
    case PH_DETECT:
        return detect_push(self, p, n);
    case PH_ROWS:
        return rows_push(self, p, n);
    default:
        return WRK_CSV_OK;
    }
}

/* --- API ----------------------------------------------------------------*/

wrk_csv_t *wrk_csv_new(wrk_csv_row_fn fn, void *arg)
{
    wrk_csv_t *self;
    if (fn == NULL)
        return NULL;
    self = calloc(1, sizeof(*self));
    if (self == NULL)
        return NULL;
    self->fn = fn;
    self->arg = arg;
    self->phase = PH_HEAD;
    set_delimiter(self, ',');
    return self;
}

wrk_csv_t *wrk_csv_new_resume(wrk_csv_row_fn fn, void *arg, char delimiter,
                              const char *const *header, size_t nheader,
                              uint64_t next_line, uint64_t offset)
{
    wrk_csv_t *self = NULL;
    int ok = 0;
    if (fn == NULL || delimiter == '\0' ||
        memchr(candidates, delimiter, sizeof(candidates)) == NULL ||
        header == NULL || nheader == 0 || nheader > WRK_CSV_MAX_COLUMNS)
        goto cleanup;
    self = calloc(1, sizeof(*self));
    if (self == NULL)
        goto cleanup;
    self->fn = fn;
    self->arg = arg;
    set_delimiter(self, delimiter);
    self->header = calloc(nheader, sizeof(char *));
    if (self->header == NULL)
        goto cleanup;
    self->nheader = nheader;
    for (size_t i = 0; i < nheader; i++) {
        if (header[i] == NULL)
            goto cleanup;
        self->header[i] = strdup(header[i]);
        if (self->header[i] == NULL)
            goto cleanup;
    }
    note_empty(self);
    if (note_repeated(self) != WRK_CSV_OK || parser_start(self) != WRK_CSV_OK)
        goto cleanup;
    self->line = next_line > 0 ? next_line - 1 : 0;
    self->start_offset = self->offset = self->data_offset = offset;
    /* Only the file's first bytes can be a byte order mark. */
    self->phase = offset == 0 ? PH_HEAD : PH_ROWS;
    ok = 1;
cleanup:
    if (!ok)
        wrk_csv_destroy(&self);
    return self;
}

void wrk_csv_destroy(wrk_csv_t **self_p)
{
    wrk_csv_t *self;
    if (self_p == NULL || *self_p == NULL)
        return;
    self = *self_p;
    if (self->parser_live)
        csv_free(&self->parser);
    if (self->header != NULL) {
        for (size_t i = 0; i < self->nheader; i++)
            free(self->header[i]);
        free(self->header);
    }
    free(self->pre);
    free(self->raw);
    free(self->vraw);
    free(self->vcell);
    free(self->raw_text);
    free(self->buf);
    free(self->offs);
    free(self->lens);
    free(self->ptrs);
    free(self);
    *self_p = NULL;
}

int wrk_csv_feed(wrk_csv_t *self, const char *data, size_t len)
{
    int rc;
    if (self->status != WRK_CSV_OK || len == 0)
        return self->status;
    rc = push(self, (const unsigned char *)data, len);
    self->status = rc;
    return rc;
}

int wrk_csv_finish(wrk_csv_t *self)
{
    int rc = WRK_CSV_OK;
    if (self->status != WRK_CSV_OK)
        return self->status;
    if (self->phase == PH_HEAD)
        rc = head_decide(self);
    if (rc == WRK_CSV_OK && self->phase == PH_DETECT) {
        if (self->det_in_record && !self->det_blank) {
            rc = detect_done(self);
        } else {
            self->offset = self->pre_base + self->pre_len;
            self->phase = PH_DONE;
        }
    }
    if (rc == WRK_CSV_OK && self->phase == PH_ROWS) {
        if (self->pending_cr) {
            self->pending_cr = 0;
            rc = row_end(self);
        } else if (self->in_row) {
            /* Past its first delimiter, a cell after an unpaired
             * character quote needs a closing quote like any other. */
            int open =
                self->sstate == S_QUOTED || self->sstate == S_OPEN ||
                (self->sstate == S_STRAY && cell_has_delim(self, NULL, NULL));
            if (open && !self->row_bad_quotes) {
                self->row_bad_quotes = 1;
                self->bad_quotes_cell = self->scan_field;
            }
            /* Else the end of the file ends a cell after an unpaired
             * character quote as a line end does. */
            if (!open && (self->sstate == S_STRAY || self->sstate == S_TEXT))
                rc = take_verbatim(self, NULL, NULL);
            if (rc == WRK_CSV_OK)
                rc = row_end(self);
        }
    }
    if (rc == WRK_CSV_OK) {
        self->phase = PH_DONE;
        if (self->header == NULL)
            snprintf(self->err, sizeof(self->err),
                     "the file is empty: it has no header line");
    }
    self->status = rc;
    return rc;
}

const char *wrk_csv_error(const wrk_csv_t *self)
{
    return self->err;
}

const char *const *wrk_csv_header(const wrk_csv_t *self, size_t *n)
{
    if (n != NULL)
        *n = self->header ? self->nheader : 0;
    return (const char *const *)self->header;
}

char wrk_csv_delimiter(const wrk_csv_t *self)
{
    return self->delim;
}

uint64_t wrk_csv_rows(const wrk_csv_t *self)
{
    return self->rows;
}

uint64_t wrk_csv_converted_cells(const wrk_csv_t *self)
{
    return self->converted;
}

uint64_t wrk_csv_bytes(const wrk_csv_t *self)
{
    switch (self->phase) {
    case PH_HEAD:
        return self->start_offset + self->head_len;
    case PH_DETECT:
        return self->pre_base + self->pre_len;
    default:
        return self->offset;
    }
}

uint64_t wrk_csv_data_offset(const wrk_csv_t *self)
{
    return self->data_offset;
}

#define LIMIT_TEXT_(n) #n
#define LIMIT_TEXT(n) LIMIT_TEXT_(n)

const char *wrk_csv_row_error_message(int row_error)
{
    switch (row_error) {
    case WRK_CSV_ROW_OK:
        return "";
    case WRK_CSV_ROW_TOO_MANY_CELLS:
        return "the row has more cells than the header";
    case WRK_CSV_ROW_CELL_TOO_BIG:
        return "a cell is longer than " LIMIT_TEXT(WRK_CSV_CELL_MAX) " bytes";
    case WRK_CSV_ROW_TOO_BIG:
        return "the row is longer than " LIMIT_TEXT(WRK_CSV_ROW_MAX) " bytes";
    case WRK_CSV_ROW_NUL_BYTE:
        return "the row contains a NUL byte";
    case WRK_CSV_ROW_BAD_QUOTES:
        return "a quoted cell is still open at the end of the file";
    default:
        return "unknown row error";
    }
}

const char *wrk_csv_header_note_empty(const wrk_csv_t *self)
{
    return self->note_empty;
}

const char *wrk_csv_header_note_repeated(const wrk_csv_t *self)
{
    return self->note_repeated;
}

size_t wrk_csv_row_sentence(const wrk_csv_t *self, const wrk_csv_row_t *row,
                            char *buf, size_t size)
{
    const char *what = wrk_csv_row_error_message(row->error);
    if (row->error != WRK_CSV_ROW_TOO_MANY_CELLS)
        return dip_text_format(buf, size, NULL, "%s", what);
    return dip_text_format(
        buf, size, NULL,
        "%s: the header has %zu column%s, the row has %zu non-empty "
        "cell%s, the last in column %zu",
        what, self->nheader, self->nheader == 1 ? "" : "s", row->nonempty,
        row->nonempty == 1 ? "" : "s", row->last_nonempty);
}
