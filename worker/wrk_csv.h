/*
 * wrk_csv: the worker's streaming CSV reader. The caller pushes the file's
 * bytes in chunks of any size (as a download delivers them) and gets one
 * callback per data row, with the cells as UTF-8 strings, a line number and
 * the byte offset just past the row, so that an import can checkpoint and
 * later resume from the middle of the file. Memory stays bounded by the row
 * limits below whatever the size of the file or of a bad row in it.
 *
 * What it accepts:
 * - UTF-8 with or without a byte order mark (skipped at file start). A cell
 *   whose bytes are not valid UTF-8 is taken as Windows-1252 and converted,
 *   one cell at a time, as the WHATWG Encoding Standard decodes
 *   windows-1252: the five bytes Windows leaves undefined (0x81 0x8D 0x8F
 *   0x90 0x9D) become the C1 code points U+0081 U+008D U+008F U+0090 U+009D,
 *   so nothing is lost. A file that starts with a UTF-16 byte order mark is
 *   refused with a sentence that says how to save it.
 * - CRLF, LF or lone CR line ends, mixed freely; quoted fields with the
 *   delimiter, "" and line breaks in them.
 * - Delimiter ',' ';' '\t' or '|', detected from the header line: each
 *   candidate is counted outside quotes, the most frequent wins, ties and
 *   none go to ','.
 * - Spaces and tabs around unquoted cells are trimmed (libcsv's rule, and
 *   csvtojson's default); quoted cells are kept exactly.
 * - Blank lines are skipped and not counted: empty lines, lines of spaces,
 *   and lines of only delimiters such as ",,,".
 *
 * Quoting follows the parser the original service used (csvtojson 2 with
 * its default options: delimiter ',', quote and escape '"', cells trimmed),
 * so that the files it imported still import as it read them:
 * - A quote opens a quoted cell only as the cell's first character (after
 *   spaces); anywhere else it is a character (5" screen).
 * - Inside a quoted cell, a quote followed by a delimiter, a line end or
 *   the end of the file (spaces and tabs may come between) closes the cell;
 *   "" is one quote; any other quote is a character of the cell:
 *   "OVERSIZE 32" THICK CORD" reads OVERSIZE 32" THICK CORD.
 * - After an odd number of such character quotes, the cell's first
 *   delimiter, or a line end or the end of the file before it, closes the
 *   cell as well, and the cell is then kept as the file has it, from its
 *   opening quote, "" and all, only spaces at its end dropped: "a"b,1
 *   reads "a"b then 1, and "5" x, y" reads "5" x then y". After an even
 *   number they pair up, and delimiters and line breaks stay in the cell:
 *   "say "hi" now, then" is one cell (but "say "hi", then" is two: that
 *   quote is before a comma). Past the cell's first delimiter only a
 *   closing quote ends it: "x "y" z, w"q, r" is one cell.
 * - A cell that starts with "" and then anything but a quote, a delimiter
 *   or a line end is text, quotes included, up to the next delimiter or
 *   line end: ""a"b,c reads ""a"b then c. "" alone is an empty cell.
 * - Spaces after the closing quote are dropped; a quoted cell is otherwise
 *   kept exactly, line breaks included.
 * So the only quoting error is a quoted cell still open at the end of the
 * file (WRK_CSV_ROW_BAD_QUOTES): it runs from its opening quote to the end
 * of the file, and its row carries the raw text of the file from the row's
 * first byte (row.raw), since its cells are only a guess.
 *
 * The four files the original read differently from this reader once, each
 * decided (tests/worker/test_wrk_csv.c has one case per file):
 * 1. A header name with a quoted part and text after it, "Age" (years):
 *    matched. The name is "Age" (years), quotes included, as the original's
 *    key was, so a mapping written against the original still binds.
 * 2. A cell opening with a quote that no quote closes before the delimiter,
 *    on a ':'-delimited line: ':' is no delimiter for either (the original
 *    split on ',' only), so the line is one cell. "Ann:30":Paris is
 *    matched: kept as the file has it. A quote that never closes at all
 *    made the original refuse the whole file (unclosed_quote); here it is
 *    refused with the raw text: the rows before it import, and from it to
 *    the end of the file is one BAD_QUOTES line error.
 * 3. ""10028"": matched, kept as it is, quotes included: a cell that starts
 *    "" and then a character is text, for the original and here.
 *    """10028""" is a quoted cell and reads "10028" in both.
 * 4. A backslash before a quote inside a quoted cell, then the delimiter:
 *    a backslash escapes nothing in either. "say \",x reads say \ then x,
 *    matched. "say \"",x leaves the cell open (the two quotes pair up):
 *    the original refused the whole file; here it is refused with the raw
 *    text, as in 2.
 * Still read differently, and left so: a quoted cell that spans a
 * delimiter, whose spaces and line breaks at the end the original dropped
 * ("b, " read b,) and whose closing quote it kept when spaces followed it
 * ("q,1" , read q,1": a slip of its parser, not a reading anyone relies
 * on); rows of only delimiters, which the original delivered as rows of
 * empty cells; empty cells past the header's, which it kept. Rows are
 * split by a quote-aware scanner that runs ahead of libcsv (non-strict mode,
 * whose rules the scanner mirrors) and ends a row at its first line break
 * outside a quoted cell.
 *
 * Header: names are trimmed of spaces and tabs and of a U+FEFF left at the
 * start. A NUL byte, more than WRK_CSV_MAX_COLUMNS names, a name over
 * WRK_CSV_CELL_MAX bytes, a header line over WRK_CSV_ROW_MAX bytes or a
 * quoted name still open at the end of the file is an import-level error
 * (WRK_CSV_EHEADER) with a sentence naming it in wrk_csv_error(). Empty and
 * repeated names are not errors: they stay in the header (each still counts
 * as a column, so a row's cells under them are never "more cells than the
 * header"), no mapping can use them, and wrk_csv_header_note_empty() and
 * wrk_csv_header_note_repeated() give one sentence each about them for the
 * import's notes. Whether a mapping names a repeated name (which makes the
 * mapping ambiguous) is the mapping's to decide.
 *
 * Rows: a row with fewer cells than the header is padded with "" (not an
 * error); extra cells that are empty ("a,b,c," under three columns) are
 * dropped, extra cells with content make WRK_CSV_ROW_TOO_MANY_CELLS (the row
 * is likely misaligned; wrk_csv_row_sentence() gives the header's column
 * count and the row's non-empty cells). Each row carries at most one error,
 * the first of: TOO_BIG, BAD_QUOTES, NUL_BYTE, CELL_TOO_BIG, TOO_MANY_CELLS.
 * An error row is delivered like any other, with its line number and
 * offset, so the caller can log it:
 * - TOO_BIG: the row's raw bytes (line break excluded) exceed
 *   WRK_CSV_ROW_MAX. Only its first WRK_CSV_ROW_MAX bytes were parsed, the
 *   rest was skipped by the scanner; its cells are what those bytes held.
 * - BAD_QUOTES: see above; row.raw holds the text.
 * - CELL_TOO_BIG: a cell over WRK_CSV_CELL_MAX bytes; it is delivered as "".
 * - NUL_BYTE: each NUL in a cell is delivered as U+FFFD.
 * - TOO_MANY_CELLS: ncells > header count; at most WRK_CSV_EXTRA_CELLS
 *   cells beyond the header are kept.
 * Every delivered row has ncells >= the header count.
 *
 * Offsets: row.end_offset is the input offset just past the line break that
 * ends the row, a CRLF counted whole (a CR at the end of a chunk waits for
 * the next byte before the row is delivered), or the file size for a last
 * row without a line break. Blank lines after a row belong to the next one.
 * A reader made by wrk_csv_new_resume(..., next_line = N + 1, offset =
 * end_offset of row N) and fed the file from that offset delivers exactly the
 * rows N+1... that a reader of the whole file delivers, with the same line
 * numbers and offsets. wrk_csv_data_offset() gives the resume point before
 * the first row.
 */
#ifndef WRK_CSV_H
#define WRK_CSV_H

#include <stddef.h>
#include <stdint.h>

typedef struct wrk_csv wrk_csv_t;

/* Written as plain numbers: the row sentences quote them as text. */
#define WRK_CSV_CELL_MAX 65536      /* bytes in one cell (64 KiB) */
#define WRK_CSV_ROW_MAX 1048576     /* raw bytes in one row (1 MiB) */
#define WRK_CSV_MAX_COLUMNS 16384   /* header names (Excel's column limit) */
#define WRK_CSV_EXTRA_CELLS 256     /* cells kept beyond the header */
#define WRK_CSV_RAW_MAX (16 * 1024) /* bytes of row.raw */

enum {
    WRK_CSV_ROW_OK = 0,
    WRK_CSV_ROW_TOO_MANY_CELLS,
    WRK_CSV_ROW_CELL_TOO_BIG,
    WRK_CSV_ROW_TOO_BIG,
    WRK_CSV_ROW_NUL_BYTE,
    WRK_CSV_ROW_BAD_QUOTES /* a quoted cell still open at the end of the
                              file */
};

typedef struct wrk_csv_row {
    uint64_t line;            /* data row number from 1 */
    size_t ncells;            /* == header count for OK rows (padded with "") */
    size_t nfile;             /* cells the row held in the file (<= ncells):
                                 the first nfile cells are the row as read */
    const char *const *cells; /* UTF-8, NUL-terminated, valid until the
                                 callback returns */
    const size_t *lens;
    int error;            /* WRK_CSV_ROW_* */
    size_t error_cell;    /* 0-based cell index for cell errors, 0 if none */
    uint64_t end_offset;  /* see "Offsets" above */
    int converted;        /* some cell converted from Windows-1252 */
    size_t nonempty;      /* cells with content, kept or not */
    size_t last_nonempty; /* 1-based column of the last of them, 0 if none */
    /* BAD_QUOTES only (else NULL, 0): the row's text as it is in the file,
     * from its first byte, at most WRK_CSV_RAW_MAX bytes cut on a character
     * boundary, as UTF-8 (bytes that are not UTF-8 read as Windows-1252,
     * NUL as U+FFFD), NUL-terminated, valid until the callback returns. */
    const char *raw;
    size_t raw_len;
} wrk_csv_row_t;

/* Return 0 to go on, non-zero to stop: wrk_csv_feed (or wrk_csv_finish) then
 * returns WRK_CSV_ESTOPPED, the row that stopped counts as delivered, and
 * every later call returns WRK_CSV_ESTOPPED. */
typedef int (*wrk_csv_row_fn)(void *arg, const wrk_csv_row_t *row);

enum {
    WRK_CSV_OK = 0,
    WRK_CSV_ENOMEM = -1,
    WRK_CSV_EHEADER = -2, /* import-level error: see wrk_csv_error() */
    WRK_CSV_ESTOPPED = -3
};

/* A reader for a whole file: header first. Returns NULL on failure. */
wrk_csv_t *wrk_csv_new(wrk_csv_row_fn fn, void *arg);

/* A reader that starts at input byte `offset` with rows (no header), with
 * the delimiter and header names (copied) of an earlier reader of the same
 * file, numbering rows from next_line. Returns NULL on failure or on a
 * delimiter that is not one of , ; \t | or an empty header. */
wrk_csv_t *wrk_csv_new_resume(wrk_csv_row_fn fn, void *arg, char delimiter,
                              const char *const *header, size_t nheader,
                              uint64_t next_line, uint64_t offset);

void wrk_csv_destroy(wrk_csv_t **self_p);

/* Pushes the next len bytes of the file; may call fn many times. Returns
 * WRK_CSV_OK, WRK_CSV_ENOMEM, WRK_CSV_EHEADER or WRK_CSV_ESTOPPED; an error
 * is sticky. */
int wrk_csv_feed(wrk_csv_t *self, const char *data, size_t len);

/* End of input: delivers the last row. An empty file (or one of blank lines)
 * returns WRK_CSV_OK with wrk_csv_header() still NULL and wrk_csv_error()
 * saying so. */
int wrk_csv_finish(wrk_csv_t *self);

/* The sentence for WRK_CSV_EHEADER, WRK_CSV_ENOMEM, or an empty file; ""
 * when there is nothing to say. Owned by self. */
const char *wrk_csv_error(const wrk_csv_t *self);

/* The column names once the header is read (or given to resume), NULL
 * before. Owned by self. */
const char *const *wrk_csv_header(const wrk_csv_t *self, size_t *n);

/* The delimiter in use; ',' until detected. */
char wrk_csv_delimiter(const wrk_csv_t *self);

/* Rows delivered by this reader (blank lines and the header excluded). */
uint64_t wrk_csv_rows(const wrk_csv_t *self);

/* Cells converted from Windows-1252, header names included. */
uint64_t wrk_csv_converted_cells(const wrk_csv_t *self);

/* Input bytes consumed, including the resume offset. After a stop, the
 * end_offset of the row that stopped. */
uint64_t wrk_csv_bytes(const wrk_csv_t *self);

/* The offset just past the header line (the resume point for line 1), or
 * the resume offset; 0 before the header is read. */
uint64_t wrk_csv_data_offset(const wrk_csv_t *self);

/* A lowercase sentence for a WRK_CSV_ROW_* value, e.g. "the row has more
 * cells than the header"; "" for WRK_CSV_ROW_OK. */
const char *wrk_csv_row_error_message(int row_error);

/* The sentence for a delivered row's error, written into buf (size bytes,
 * cut on a character boundary, always terminated): the words of
 * wrk_csv_row_error_message, and for TOO_MANY_CELLS the counts, e.g. "the
 * row has more cells than the header: the header has 3 columns, the row has
 * 4 non-empty cells, the last in column 5". Returns the length written. */
size_t wrk_csv_row_sentence(const wrk_csv_t *self, const wrk_csv_row_t *row,
                            char *buf, size_t size);

/* Once the header is known (read, or given to resume): one sentence about
 * its columns without a name ("column 4 of the header has no name, so it is
 * ignored"), and one about the names it has more than once ("the header
 * repeats 'Notes': columns with a repeated name are ignored"), each ""
 * when there is none. Long lists end with "and N more". Owned by self. */
const char *wrk_csv_header_note_empty(const wrk_csv_t *self);
const char *wrk_csv_header_note_repeated(const wrk_csv_t *self);

#endif
