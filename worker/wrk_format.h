/*
 * wrk_format: how a file writes its numbers and dates. Three jobs, each pure
 * (no I/O; the file is read by wrk_survey, the record stored by the import):
 *
 * 1. The setting: `additional_data.format` of the queue document, read once
 *    with one accepted type per field. Absent: every reading is the
 *    DEFAULT one (the rules of wrk_values.h before formats existed). Else
 *    a document of
 *      date_order:   "MDY", "DMY", "YMD" or "auto"       (a string)
 *      decimal:      ".", "," or "auto"                   (a string)
 *      date_formats: up to WRK_DATES_MAX_LAYOUTS layouts  (an array of
 *                    strings, wrk_dates.h), tried before the order rule
 *    each optional; any other key, type or value is refused with a
 *    sentence naming the field.
 *
 * 2. The "auto" decision, once per column over the whole file, never per
 *    cell. Each cell of a column whose setting is "auto" is tallied by how
 *    it reads under the two candidates (month-first and day-first dates; a
 *    dot and a comma for decimals): one way only, two different ways, alike
 *    both ways, or not at all. A date read by one of the file's layouts
 *    counts for the order its day and month are written in there (alike
 *    when its year is first): the layouts and the order rule are one
 *    reading of the column, so "01/02/2025" by "DD/MM/YYYY" and "1/2/2025"
 *    by the order rule never read as two different months. The column reads the
 * one way that some cells need and no cell contradicts; with cells for both, or
 * none for either, it is UNDECIDED: its cells that do not read alike both ways
 * are line errors asking for the setting. The tally is four counters per
 * column: memory does not depend on the file.
 *
 * 3. The record: the decisions go into the checkpoint as
 *      format: {columns: [{field, column, setting, reading,
 *                          cells: {<first>, <second>, two_ways, alike}}]}
 *    (setting "date_order" with reading "MDY", "DMY" or "undecided" and
 *    counters MDY and DMY; setting "decimal" with reading ".", "," or
 *    "undecided" and counters dot and comma), so that a resumed import
 *    reads the rest of the file the same way; and into one note for
 *    csv_imports.
 */
#ifndef WRK_FORMAT_H
#define WRK_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include <bson/bson.h>

#include "wrk_dates.h"
#include "wrk_values.h"

/* The columns a format applies to: one deal field each. */
typedef enum {
    WRK_FORMAT_AMOUNT = 0, /* value */
    WRK_FORMAT_PERCENT,    /* probability */
    WRK_FORMAT_DATE,       /* expected_close_date */
    WRK_FORMAT_KINDS
} wrk_format_kind_t;

/* additional_data.format as the queue document gives it. */
typedef struct wrk_format {
    int present;                 /* the document has a format */
    int date_auto, decimal_auto; /* "auto" */
    wrk_date_order_t date_order; /* DEFAULT when absent or "auto" */
    wrk_decimal_t decimal;       /* DEFAULT when absent or "auto" */
    wrk_dates_layouts_t layouts;
} wrk_format_t;

/* Reads q's additional_data.format into out. 0 (absent or good), or -1
 * with err ("the queue document's 'additional_data.format.date_order' is a
 * number, not one of \"MDY\", ..."). */
int wrk_format_read(const bson_t *q, wrk_format_t *out, char *err,
                    size_t errlen);

/* How each column is read once the format is known: what the mapper
 * uses. Zeroed: a file without a format. */
typedef struct wrk_format_reading {
    wrk_decimal_t amount, percent;
    wrk_date_order_t date;
    wrk_dates_layouts_t layouts;
} wrk_format_reading_t;

/* One column's cells, counted for the decision. */
typedef struct wrk_format_tally {
    uint64_t first;    /* read only month-first / only with a dot */
    uint64_t second;   /* read only day-first / only with a comma */
    uint64_t two_ways; /* read both ways, differently */
    uint64_t alike;    /* read both ways, the same */
} wrk_format_tally_t;

/* The import's decisions: for each kind, whether it was left to the file
 * (is_auto), how it is read, and from which cells. */
typedef struct wrk_format_decisions {
    wrk_format_reading_t reading;
    int is_auto[WRK_FORMAT_KINDS];
    int decided[WRK_FORMAT_KINDS]; /* the tally was made (or restored) */
    wrk_format_tally_t tally[WRK_FORMAT_KINDS];
} wrk_format_decisions_t;

/* The deal field of a kind ("value", "probability",
 * "expected_close_date"). */
const char *wrk_format_field(wrk_format_kind_t kind);

/* The readings the setting fixes; kinds left to the file are is_auto and
 * not yet decided. */
void wrk_format_start(const wrk_format_t *f, wrk_format_decisions_t *d);

/* 1 when some kind is left to the file and not decided yet. */
int wrk_format_pending(const wrk_format_decisions_t *d);

/* Counts one trimmed cell (UTF-8, no NUL) of a column of kind. Empty cells
 * count for nothing. */
void wrk_format_tally_cell(wrk_format_tally_t *t, wrk_format_kind_t kind,
                           const wrk_dates_layouts_t *layouts, const char *p,
                           size_t len);

/* The verdict on a tally: the first candidate (WRK_DATES_MDY or
 * WRK_DECIMAL_DOT), the second (DMY, COMMA) or UNDECIDED, as the int of
 * the kind's enum. */
int wrk_format_decide(const wrk_format_tally_t *t, wrk_format_kind_t kind);

/* Sets every pending kind from its tally. */
void wrk_format_finish(wrk_format_decisions_t *d);

/* Appends `format` (see above) to a checkpoint for the decided kinds;
 * columns[k] names kind k's CSV column (NULL: not mapped, left out). */
void wrk_format_append(const wrk_format_decisions_t *d,
                       const char *const columns[WRK_FORMAT_KINDS],
                       bson_t *checkpoint);

/* Restores the pending kinds from q's checkpoint.format. Returns 1 when
 * every pending kind was found there, 0 otherwise (then none is changed:
 * the caller surveys the file again, which decides the same). */
int wrk_format_restore(const bson_t *q, wrk_format_decisions_t *d);

/* One sentence on the decided kinds for the import's notes; "" when no
 * kind was left to the file. */
void wrk_format_note(const wrk_format_decisions_t *d,
                     const char *const columns[WRK_FORMAT_KINDS], char *out,
                     size_t outlen);

/* The setting that would read a refused cell of kind, as "; set
 * date_order DMY", or "" when none would: the end of a line error. */
void wrk_format_hint(const wrk_format_reading_t *r, wrk_format_kind_t kind,
                     const char *p, size_t len, char *out, size_t outlen);

/* The line error of a cell of kind refused with rc (WRK_VALUE_*) under
 * reading r: one sentence for the CRM user naming field, quoting q (the
 * cell made safe to quote by the caller), and ending with the setting that
 * would have read the cell (wrk_format_hint). */
void wrk_format_refusal(const wrk_format_reading_t *r, wrk_format_kind_t kind,
                        const char *field, int rc, const char *p, size_t len,
                        const char *q, char *out, size_t outlen);

/* How a reading is named in messages: "month-first", "day-first",
 * "year-first"; "decimal '.'", "decimal ','". */
const char *wrk_format_order_words(wrk_date_order_t order);

#endif
