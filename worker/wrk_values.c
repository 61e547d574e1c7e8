/*
 * wrk_values: the parsers of the deal fields that hold more than text:
 * amounts with their currency marker, percentages, dates and date-times,
 * email addresses. Pure functions over bytes; the rules are in wrk_values.h.
 * Numbers are built from their digits (no strtod, which follows the locale)
 * so that the result is the correctly rounded double of what was written.
 */
#include "wrk_values.h"
#include "dip_text.h"
#include "wrk_dates.h"

#include <string.h>

#define AMOUNT_MAX_LEN 64 /* longer input is not an amount */
#define NUMBER_MAX_DIGITS WRK_VALUES_MAX_DIGITS
#define EMAIL_MAX 254
#define EMAIL_LOCAL_MAX 64

/* --- text ----------------------------------------------------------------- */

size_t wrk_values_space_at(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    if (len == 0)
        return 0;
    if (p[0] == ' ' || (p[0] >= '\t' && p[0] <= '\r'))
        return 1;
    if (len >= 2 && p[0] == 0xc2 && p[1] == 0xa0)
        return 2;
    return 0;
}

/* The same, looking backwards from the end of s[0..len). */
static size_t space_before(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    if (len == 0)
        return 0;
    if (p[len - 1] == ' ' || (p[len - 1] >= '\t' && p[len - 1] <= '\r'))
        return 1;
    if (len >= 2 && p[len - 2] == 0xc2 && p[len - 1] == 0xa0)
        return 2;
    return 0;
}

void wrk_values_trim(const char **p, size_t *len)
{
    size_t n;
    while ((n = wrk_values_space_at(*p, *len)) > 0) {
        *p += n;
        *len -= n;
    }
    while ((n = space_before(*p, *len)) > 0)
        *len -= n;
}

/* A NUL-terminated argument of the wrappers, trimmed; -1 unless UTF-8. */
static int text_in(const char *in, const char **p, size_t *len)
{
    if (in == NULL)
        return -1;
    *p = in;
    *len = strlen(in);
    if (!dip_text_utf8_valid(in, *len))
        return -1;
    wrk_values_trim(p, len);
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

static int is_upper(char c)
{
    return c >= 'A' && c <= 'Z';
}

/* --- numbers -------------------------------------------------------------- */

static const double powers_of_ten[NUMBER_MAX_DIGITS + 1] = {
    1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
    1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
};

/* The decimals after the separator at p[*i]: *i moves past both, each digit
 * goes into *mant and *nfrac. At least one, and with the nint digits before
 * the separator no more than NUMBER_MAX_DIGITS: WRK_VALUE_OK, else
 * WRK_VALUE_BAD (none) or WRK_VALUE_TOO_LONG. */
static int decimals(const char *p, size_t len, size_t *i, uint64_t *mant,
                    size_t nint, size_t *nfrac)
{
    (*i)++;
    while (*i < len && is_digit(p[*i])) {
        *mant = *mant * 10 + (uint64_t)(p[*i] - '0');
        (*nfrac)++;
        (*i)++;
        if (nint + *nfrac > NUMBER_MAX_DIGITS)
            return WRK_VALUE_TOO_LONG;
    }
    return *nfrac == 0 ? WRK_VALUE_BAD : WRK_VALUE_OK;
}

/* Digits with an optional '.' and decimals; with `groups`, the integer part
 * may be grouped by ',' in threes. The result is mantissa / 10^decimals,
 * both exact in a double, so the one division rounds correctly (no strtod:
 * it follows the locale). Sets *ambiguous for "d.ddd", "dd.ddd", "ddd.ddd"
 * without grouping, which a European writer means as thousands. */
static int parse_number(const char *p, size_t len, int groups, double *out,
                        int *ambiguous)
{
    uint64_t mant = 0;
    size_t i = 0, nint = 0, ngroups = 0, nfrac = 0, ndig;
    while (i < len && is_digit(p[i])) {
        mant = mant * 10 + (uint64_t)(p[i] - '0');
        nint++;
        i++;
        if (nint > NUMBER_MAX_DIGITS)
            return WRK_VALUE_TOO_LONG;
    }
    while (groups && i < len && p[i] == ',') {
        /* 1-3 digits before the first comma, no leading zero ("0,500" is a
         * European half), then exactly three per group. */
        if (nint == 0 || (ngroups == 0 && (nint > 3 || p[0] == '0')))
            return WRK_VALUE_BAD;
        i++;
        for (size_t k = 0; k < 3; k++, i++) {
            if (i >= len || !is_digit(p[i]))
                return WRK_VALUE_BAD;
            mant = mant * 10 + (uint64_t)(p[i] - '0');
        }
        if (i < len && is_digit(p[i]))
            return WRK_VALUE_BAD;
        nint += 3;
        ngroups++;
        if (nint > NUMBER_MAX_DIGITS)
            return WRK_VALUE_TOO_LONG;
    }
    if (i < len && p[i] == '.') {
        int rc = decimals(p, len, &i, &mant, nint, &nfrac);
        if (rc != WRK_VALUE_OK)
            return rc;
    }
    ndig = nint + nfrac;
    if (i != len || ndig == 0)
        return WRK_VALUE_BAD;
    if (ambiguous)
        *ambiguous =
            ngroups == 0 && nfrac == 3 && nint >= 1 && nint <= 3 && p[0] != '0';
    *out = (double)mant / powers_of_ten[nfrac];
    return WRK_VALUE_OK;
}

/* A thousands separator at p in a file whose decimals are `dec`: the
 * other of ',' and '.', a space, a no-break space (U+00A0), a narrow
 * no-break space (U+202F), an apostrophe or a right single quote (U+2019,
 * which Swiss text writes for it). Its length, 0 if none. */
static size_t group_sep_at(const char *s, size_t len, char dec)
{
    const unsigned char *p = (const unsigned char *)s;
    if (len == 0)
        return 0;
    if (s[0] == (dec == '.' ? ',' : '.') || s[0] == ' ' || s[0] == '\'')
        return 1;
    if (len >= 2 && p[0] == 0xc2 && p[1] == 0xa0)
        return 2;
    if (len >= 3 && p[0] == 0xe2 && p[1] == 0x80 &&
        (p[2] == 0xaf || p[2] == 0x99))
        return 3;
    return 0;
}

/* The same number as parse_number, for a file that said its decimal
 * separator: `dec` before the decimals, the integer part grouped by one
 * kind of separator (group_sep_at), in threes ("1.234.567") or the Indian
 * way (threes last, twos before: "1,23,45,678"). *ambiguous as there. */
static int parse_local(const char *p, size_t len, char dec, int groups,
                       double *out, int *ambiguous)
{
    uint64_t mant = 0;
    size_t i = 0, nint = 0, nfrac = 0, ngroups = 0, first, last = 0, seplen = 0;
    const char *sep = NULL;
    int threes = 1, twos = 1;
    while (i < len && is_digit(p[i])) {
        mant = mant * 10 + (uint64_t)(p[i] - '0');
        if (++nint > NUMBER_MAX_DIGITS)
            return WRK_VALUE_TOO_LONG;
        i++;
    }
    first = nint;
    while (groups && i < len) {
        size_t n = group_sep_at(p + i, len - i, dec), cur = 0;
        if (n == 0)
            break;
        if (nint == 0 || p[0] == '0')
            return WRK_VALUE_BAD;
        if (sep == NULL) {
            sep = p + i;
            seplen = n;
        } else if (n != seplen || memcmp(sep, p + i, n) != 0) {
            return WRK_VALUE_BAD;
        }
        i += n;
        while (i < len && is_digit(p[i])) {
            mant = mant * 10 + (uint64_t)(p[i] - '0');
            if (++nint > NUMBER_MAX_DIGITS)
                return WRK_VALUE_TOO_LONG;
            cur++;
            i++;
        }
        if (cur == 0)
            return WRK_VALUE_BAD;
        if (ngroups > 0) {
            threes = threes && last == 3;
            twos = twos && last == 2;
        }
        last = cur;
        ngroups++;
    }
    if (ngroups > 0) {
        threes = threes && first <= 3;
        twos = twos && ngroups > 1 && first <= 2;
        if (last != 3 || (!threes && !twos))
            return WRK_VALUE_BAD;
    }
    if (i < len && p[i] == dec) {
        int rc = decimals(p, len, &i, &mant, nint, &nfrac);
        if (rc != WRK_VALUE_OK)
            return rc;
    }
    if (i != len || nint + nfrac == 0)
        return WRK_VALUE_BAD;
    if (ambiguous)
        *ambiguous =
            ngroups == 0 && nfrac == 3 && nint >= 1 && nint <= 3 && p[0] != '0';
    *out = (double)mant / powers_of_ten[nfrac];
    return WRK_VALUE_OK;
}

/* Symbols a marker may be, with the code each names ("" for '$', which
 * several currencies use). The last ones only in a file with a format. */
static const struct {
    const char *text;
    const char *code;
} symbols[] = {
    {"$", ""},     {"\xe2\x82\xac", "EUR"}, {"\xc2\xa3", "GBP"},
    {"R$", "BRL"}, {"\xe2\x82\xb9", "INR"},
};
#define SYMBOLS_TODAY 3

/* A currency marker at the start of p (at its end with `end`): its length,
 * and its code in code. `more`: the symbols of a file with a format. */
static size_t marker(const char *p, size_t len, int end, int more, char code[4])
{
    size_t nsym = more ? sizeof(symbols) / sizeof(symbols[0]) : SYMBOLS_TODAY;
    code[0] = '\0';
    /* The last first: "R$" before "$". */
    for (size_t k = nsym; k-- > 0;) {
        size_t n = strlen(symbols[k].text);
        if (len >= n &&
            memcmp(end ? p + len - n : p, symbols[k].text, n) == 0) {
            memcpy(code, symbols[k].code, strlen(symbols[k].code) + 1);
            return n;
        }
    }
    if (len >= 3) {
        const char *c = end ? p + len - 3 : p;
        if (is_upper(c[0]) && is_upper(c[1]) && is_upper(c[2]) &&
            (len == 3 || !is_alpha(end ? c[-1] : c[3]))) {
            memcpy(code, c, 3);
            code[3] = '\0';
            return 3;
        }
    }
    return 0;
}

/* Trims as wrk_values_trim, and in a file with a format also the narrow
 * no-break space (U+202F) that French text puts before a symbol. */
static void trim_more(const char **p, size_t *len, int more)
{
    const unsigned char *u;
    for (;;) {
        wrk_values_trim(p, len);
        u = (const unsigned char *)*p;
        if (more && *len >= 3 && u[0] == 0xe2 && u[1] == 0x80 && u[2] == 0xaf) {
            *p += 3;
            *len -= 3;
        } else if (more && *len >= 3 && u[*len - 3] == 0xe2 &&
                   u[*len - 2] == 0x80 && u[*len - 1] == 0xaf) {
            *len -= 3;
        } else {
            return;
        }
    }
}

/* An amount under one reading: dec 0 for the rules of a file without a
 * format, '.' or ',' for a file that said its decimal separator. */
static int amount(const char *p, size_t len, char dec, double *out,
                  char code[4])
{
    char other[4];
    size_t m;
    int negative = 0, ambiguous = 0, rc, more = dec != 0;
    code[0] = '\0';
    if (len == 0)
        return WRK_VALUE_BAD;
    if (len > AMOUNT_MAX_LEN)
        return WRK_VALUE_TOO_LONG;
    if (p[0] == '-') {
        negative = 1;
        p++;
        len--;
        trim_more(&p, &len, more);
    }
    if ((m = marker(p, len, 0, more, code)) > 0) {
        p += m;
        len -= m;
        trim_more(&p, &len, more);
        if (!negative && len > 0 && p[0] == '-') {
            negative = 1;
            p++;
            len--;
        }
        if (marker(p, len, 1, more, other) > 0)
            return WRK_VALUE_BAD;
    } else if ((m = marker(p, len, 1, more, code)) > 0) {
        len -= m;
        trim_more(&p, &len, more);
    }
    rc = more ? parse_local(p, len, dec, 1, out, &ambiguous)
              : parse_number(p, len, 1, out, &ambiguous);
    if (rc == WRK_VALUE_OK && negative)
        rc = WRK_VALUE_NEGATIVE;
    else if (rc == WRK_VALUE_OK && ambiguous)
        rc = WRK_VALUE_AMBIGUOUS;
    return rc;
}

int wrk_values_amount(const char *p, size_t len, double *out, char code[4])
{
    return amount(p, len, 0, out, code);
}

/* Both readings of an undecided column: the value when they agree. */
static int undecided(int r1, double v1, int r2, double v2, double *out)
{
    if (r1 == r2 && (r1 != WRK_VALUE_OK || v1 == v2)) {
        *out = v1;
        return r1;
    }
    if (r1 == WRK_VALUE_TOO_LONG || r2 == WRK_VALUE_TOO_LONG)
        return WRK_VALUE_TOO_LONG;
    return WRK_VALUE_UNDECIDED;
}

int wrk_values_amount_as(const char *p, size_t len, wrk_decimal_t dec,
                         double *out, char code[4])
{
    double v1 = 0, v2 = 0;
    int r1, r2;
    switch (dec) {
    case WRK_DECIMAL_DOT:
        return amount(p, len, '.', out, code);
    case WRK_DECIMAL_COMMA:
        return amount(p, len, ',', out, code);
    case WRK_DECIMAL_UNDECIDED:
        r1 = amount(p, len, '.', &v1, code);
        r2 = amount(p, len, ',', &v2, code);
        return undecided(r1, v1, r2, v2, out);
    default:
        return amount(p, len, 0, out, code);
    }
}

/* A percentage under one reading (dec as for amount). */
static int percent(const char *p, size_t len, char dec, double *out)
{
    int rc, more = dec != 0;
    if (len > 0 && p[len - 1] == '%') {
        len--;
        trim_more(&p, &len, more);
    }
    if (len == 0 || len > AMOUNT_MAX_LEN)
        return WRK_VALUE_BAD;
    rc = more ? parse_local(p, len, dec, 0, out, NULL)
              : parse_number(p, len, 0, out, NULL);
    if (rc == WRK_VALUE_OK && *out > 100.0)
        rc = WRK_VALUE_BAD;
    return rc == WRK_VALUE_OK ? WRK_VALUE_OK : WRK_VALUE_BAD;
}

int wrk_values_percent(const char *p, size_t len, double *out)
{
    return percent(p, len, 0, out);
}

int wrk_values_percent_as(const char *p, size_t len, wrk_decimal_t dec,
                          double *out)
{
    double v1 = 0, v2 = 0;
    int r1, r2;
    switch (dec) {
    case WRK_DECIMAL_DOT:
        return percent(p, len, '.', out);
    case WRK_DECIMAL_COMMA:
        return percent(p, len, ',', out);
    case WRK_DECIMAL_UNDECIDED:
        r1 = percent(p, len, '.', &v1);
        r2 = percent(p, len, ',', &v2);
        return undecided(r1, v1, r2, v2, out);
    default:
        return percent(p, len, 0, out);
    }
}

/* A whole string (in) read as one cell by read: 0 with *out, or -1 with
 * *out left alone. */
static int parse_whole(const char *in, double *out,
                       int (*read)(const char *, size_t, double *))
{
    const char *p;
    size_t len;
    double v = 0;
    if (out == NULL || text_in(in, &p, &len) < 0 ||
        read(p, len, &v) != WRK_VALUE_OK)
        return -1;
    *out = v;
    return 0;
}

/* An amount in any currency (the code is not kept). */
static int amount_value(const char *p, size_t len, double *out)
{
    char code[4];
    return wrk_values_amount(p, len, out, code);
}

int wrk_values_parse_amount(const char *in, double *out)
{
    return parse_whole(in, out, amount_value);
}

int wrk_values_parse_percent(const char *in, double *out)
{
    return parse_whole(in, out, wrk_values_percent);
}

/* --- dates ---------------------------------------------------------------- */

int wrk_values_date(const char *p, size_t len, int64_t *ms)
{
    return wrk_dates_parse(p, len, WRK_DATES_DEFAULT, NULL, ms);
}

int wrk_values_parse_date(const char *in, int64_t *ms_since_epoch)
{
    const char *p;
    size_t len;
    int64_t v = 0;
    if (ms_since_epoch == NULL || text_in(in, &p, &len) < 0 ||
        wrk_values_date(p, len, &v) != WRK_VALUE_OK)
        return -1;
    *ms_since_epoch = v;
    return 0;
}

/* --- email ---------------------------------------------------------------- */

/* Labels of a dotted name: none empty; with `need_dot`, at least two. */
static int dotted(const char *p, size_t len, int need_dot)
{
    int dots = 0;
    if (len == 0 || p[0] == '.' || p[len - 1] == '.')
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '.') {
            if (p[i - 1] == '.')
                return 0;
            dots++;
        }
    }
    return need_dot ? dots > 0 : 1;
}

int wrk_values_email(const char *p, size_t len)
{
    const char *at = NULL;
    if (len == 0 || len > EMAIL_MAX)
        return WRK_VALUE_BAD;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c <= ' ' || c == 0x7f || strchr(",;<>()[]\\\"", c) != NULL ||
            wrk_values_space_at(p + i, len - i) > 0)
            return WRK_VALUE_BAD;
        if (c == '@') {
            if (at != NULL)
                return WRK_VALUE_BAD;
            at = p + i;
        }
    }
    if (at == NULL || at == p || (size_t)(at - p) > EMAIL_LOCAL_MAX)
        return WRK_VALUE_BAD;
    if (!dotted(p, (size_t)(at - p), 0) ||
        !dotted(at + 1, len - (size_t)(at - p) - 1, 1))
        return WRK_VALUE_BAD;
    return WRK_VALUE_OK;
}

int wrk_values_check_email(const char *in)
{
    const char *p;
    size_t len;
    if (in == NULL || text_in(in, &p, &len) < 0)
        return -1;
    return wrk_values_email(p, len) == WRK_VALUE_OK ? 0 : -1;
}
