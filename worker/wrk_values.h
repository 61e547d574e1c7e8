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
 * - percent: 0 to 100 with an optional '%'.
 * - date: YYYY-MM-DD (UTC midnight), YYYY-MM-DD[T ]HH:MM[:SS[.fraction]]
 *   with Z, +HH:MM, +HHMM or +HH (read as UTC without one), or M/D/YYYY (US
 *   order, UTC midnight). Real calendar dates only: a well-formed date that
 *   does not exist (2025-02-30, 25:00) is WRK_VALUE_NOT_REAL.
 * - email: one '@', a local part of 1-64 bytes, a domain with a dot and no
 *   empty label, no spaces, control characters or ",;<>()[]\\\"", at most
 *   254 bytes.
 */
#ifndef WRK_VALUES_H
#define WRK_VALUES_H

#include <stddef.h>
#include <stdint.h>

/* Digits an amount or percentage may have: a double holds 15 exactly. */
#define WRK_VALUES_MAX_DIGITS 15

enum {
    WRK_VALUE_OK = 0,
    WRK_VALUE_BAD = -1,       /* not a value of that kind */
    WRK_VALUE_NEGATIVE = -2,  /* an amount below 0 */
    WRK_VALUE_AMBIGUOUS = -3, /* "5.000": thousands or decimals? */
    WRK_VALUE_TOO_LONG = -4,  /* more digits than a double holds */
    WRK_VALUE_NOT_REAL = -5,  /* a date or time that does not exist */
};

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
