/*
 * wrk_values: parsers for the deal fields whose cells are not kept as text.
 * Each takes a cell already trimmed (wrk_values_trim) and UTF-8 without NUL
 * bytes, as the CSV reader delivers it, given by pointer and length (not
 * NUL-terminated), and returns WRK_VALUE_OK or the reason it refuses it, for
 * the mapper's message. No I/O, no allocation.
 *
 * Rules:
 * - amount: digits with an optional '.' and 1 or more decimals; thousands
 *   may be grouped with ',' in groups of three ("5,000.50"). An optional
 *   currency marker goes before or after: a 3-letter code in capitals ("USD
 *   5000", "5000EUR"; lowercase letters are not a code, so "12abc" is
 *   refused) or '$', '€' (EUR), '£' (GBP). A comma is never a decimal
 *   point and a dot is never a thousands separator: "5,00" and "5.000,50"
 *   are refused, and "5.000" (1-3 digits not starting with 0, a dot, exactly
 *   three digits, no comma) is WRK_VALUE_AMBIGUOUS. At most
 *   WRK_VALUES_MAX_DIGITS digits (WRK_VALUE_TOO_LONG), so the double is the
 *   exact nearest one. No sign, exponent, NaN or infinity; a negative amount
 *   is WRK_VALUE_NEGATIVE.
 * - amount in a file that said its decimal separator (wrk_decimal_t, the
 *   `_as` forms): that separator before the decimals, and thousands grouped
 *   by one kind of separator, the same throughout: with WRK_DECIMAL_COMMA
 *   '.', with WRK_DECIMAL_DOT ',', and with either a space, a no-break space
 *   (U+00A0), a narrow no-break space (U+202F), an apostrophe or U+2019; in
 *   threes ("1.234.567,89") or the Indian way ("1,23,456.00": threes last,
 *   twos before). "d.ddd" with WRK_DECIMAL_COMMA is a grouped 1234; three
 *   decimals after 1-3 digits and no grouping ("1.234" with a dot, "1,234"
 *   with a comma) stay WRK_VALUE_AMBIGUOUS, so that a file read with the
 *   wrong setting is refused instead of a thousand times off, and a number
 *   with both separators reads only one way or not at all ("5,000.50" is
 *   never 5). Markers: those above, and "R$" (BRL) and the rupee sign
 *   (INR); a narrow no-break space may stand between marker and number.
 *   WRK_DECIMAL_UNDECIDED (the file left its separator open): a cell that
 *   reads the same both ways ("5000", "1 234") is read, one that does not
 *   is WRK_VALUE_UNDECIDED.
 * - percent: 0 to 100 with an optional '%'; with a decimal separator, its
 *   decimals after it and no grouping, undecided as amounts are.
 * - date: wrk_dates.h (wrk_values_date reads as a file without a format:
 *   ISO, or M/D/YYYY).
 * - email: one '@', a local part of 1-64 bytes, a domain with a dot and no
 *   empty label, no spaces, control characters or ",;<>()[]\\\"", at most
 *   254 bytes.
 */
#ifndef WRK_VALUES_H
#define WRK_VALUES_H

#include <stddef.h>
#include <stdint.h>

#include "wrk_dates.h"

/* Digits an amount or percentage may have: a double holds 15 exactly. */
#define WRK_VALUES_MAX_DIGITS 15

enum {
    WRK_VALUE_OK = 0,
    WRK_VALUE_BAD = -1,       /* not a value of that kind */
    WRK_VALUE_NEGATIVE = -2,  /* an amount below 0 */
    WRK_VALUE_AMBIGUOUS = -3, /* "5.000": thousands or decimals? */
    WRK_VALUE_TOO_LONG = -4,  /* more digits than a double holds */
    WRK_VALUE_NOT_REAL = -5,  /* a date or time that does not exist */
    WRK_VALUE_UNDECIDED = -6, /* reads two ways; the file did not say which */
};

/* How a file writes decimals once its format is known. */
typedef enum {
    WRK_DECIMAL_DEFAULT = 0, /* no format: the rules above */
    WRK_DECIMAL_DOT,
    WRK_DECIMAL_COMMA,
    WRK_DECIMAL_UNDECIDED, /* "auto" could not decide */
} wrk_decimal_t;

/* Bytes of whitespace at s: ASCII whitespace or U+00A0 (the no-break space
 * spreadsheets leave around numbers); 0 when s[0..len) does not start with
 * one. */
size_t wrk_values_space_at(const char *s, size_t len);

/* Moves *p and shortens *len past that whitespace at both ends. */
void wrk_values_trim(const char **p, size_t *len);

/* *out the amount; code the 3-letter code the marker names ("" for none
 * and for '$', which several currencies use). */
int wrk_values_amount(const char *p, size_t len, double *out, char code[4]);
int wrk_values_percent(const char *p, size_t len, double *out);
/* The same under a decimal separator (WRK_DECIMAL_DEFAULT: as above). */
int wrk_values_amount_as(const char *p, size_t len, wrk_decimal_t dec,
                         double *out, char code[4]);
int wrk_values_percent_as(const char *p, size_t len, wrk_decimal_t dec,
                          double *out);
/* *ms milliseconds since 1970-01-01T00:00:00Z. */
int wrk_values_date(const char *p, size_t len, int64_t *ms);
int wrk_values_email(const char *p, size_t len);

/* The same for a NUL-terminated string, trimmed first; 0, or -1 for any
 * refusal (text that is not UTF-8 included). For tests and fuzzing. */
int wrk_values_parse_amount(const char *in, double *out);
int wrk_values_parse_percent(const char *in, double *out);
int wrk_values_parse_date(const char *in, int64_t *ms_since_epoch);
int wrk_values_check_email(const char *in);

#endif
