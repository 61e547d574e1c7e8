/*
 * wrk_dates: the date parser of the deal fields, for every order a file may
 * write its dates in. Pure: bytes in (a trimmed cell, UTF-8 without NUL
 * bytes, by pointer and length), milliseconds since 1970-01-01T00:00:00Z or
 * a WRK_VALUE_* refusal out (wrk_values.h). No I/O, no allocation, no clock.
 *
 * Rules, tried in this order:
 * 1. The layouts of the file's format (`date_formats`), in their order: a
 *    cell that matches one is read by it. A layout is text of tokens YYYY,
 *    MM, M, DD, D, HH, H, mm, ss (M, D, H: 1 or 2 digits; the others
 *    exactly as many digits as letters) and literal characters that must be
 *    there as written; it holds YYYY, a month and a day, each token once.
 * 2. ISO 8601, in every order: YYYY-MM-DD (UTC midnight),
 *    YYYY-MM-DD[T ]HH:MM[:SS[.fraction]] with Z, +HH:MM, +HHMM or +HH (read
 *    as UTC without one).
 * 3. The order rule:
 *    - WRK_DATES_DEFAULT (no format given: the rules before formats
 *      existed): M/D/YYYY with slashes only.
 *    - WRK_DATES_MDY, WRK_DATES_DMY: three numbers with one separator ('/',
 *      '.' or '-', the same twice), the year last with four digits, month
 *      and day 1 or 2 digits in the order's places; and, in either order, a
 *      year first (YYYY/M/D), which can only be read one way. An optional
 *      time follows after a space: HH:MM or HH:MM:SS.
 *    - WRK_DATES_YMD: only the year-first form.
 *    - WRK_DATES_UNDECIDED ("auto" found the file ambiguous or mixed): a
 *      cell whose month-first and day-first readings are the same date
 *      (05/05/2025, or year first) is read; one that reads two ways, or one
 *      way only, is WRK_VALUE_UNDECIDED: the file has to say its order.
 * Real calendar dates only: a well-formed date that does not exist
 * (2025-02-30, 25:00) is WRK_VALUE_NOT_REAL. Two-digit years are refused.
 */
#ifndef WRK_DATES_H
#define WRK_DATES_H

#include <stddef.h>
#include <stdint.h>

/* How a file orders day, month and year once its format is known. */
typedef enum {
    WRK_DATES_DEFAULT = 0, /* no format: ISO or M/D/YYYY */
    WRK_DATES_MDY,
    WRK_DATES_DMY,
    WRK_DATES_YMD,
    WRK_DATES_UNDECIDED, /* "auto" could not decide: see above */
} wrk_date_order_t;

#define WRK_DATES_MAX_LAYOUTS 8
#define WRK_DATES_LAYOUT_MAX 32 /* bytes of one layout */

/* The file's explicit layouts, tried in order (n of them). */
typedef struct wrk_dates_layouts {
    size_t n;
    char layout[WRK_DATES_MAX_LAYOUTS][WRK_DATES_LAYOUT_MAX + 1];
} wrk_dates_layouts_t;

/* layouts may be NULL (none). */
int wrk_dates_parse(const char *p, size_t len, wrk_date_order_t order,
                    const wrk_dates_layouts_t *layouts, int64_t *ms);

/* The index of the first of layouts that reads the cell, with *ms; -1
 * when none does (layouts may be NULL). Rule 1 of wrk_dates_parse. */
int wrk_dates_layout_read(const char *p, size_t len,
                          const wrk_dates_layouts_t *layouts, int64_t *ms);

/* The order a layout (checked) writes day and month in, as the order rule
 * would read it: WRK_DATES_MDY or WRK_DATES_DMY when its year comes after
 * them, WRK_DATES_YMD when the year is first (the order of "auto" is not
 * in it). */
wrk_date_order_t wrk_dates_layout_order(const char *layout);

/* 0 when layout (NUL-terminated) is a layout by the rules above, -1
 * otherwise. */
int wrk_dates_layout_check(const char *layout);

/* "MDY", "DMY", "YMD", "undecided", or "" for WRK_DATES_DEFAULT; and the
 * reverse for the three orders (-1 for any other text). */
const char *wrk_dates_order_name(wrk_date_order_t order);
int wrk_dates_order_from_name(const char *name, wrk_date_order_t *out);

#endif
