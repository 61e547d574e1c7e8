/*
 * wrk_values: the parsers of the deal fields that hold more than text:
 * amounts with their currency marker, percentages, dates and date-times,
 * email addresses. Pure functions over bytes; the rules are in wrk_values.h.
 * Numbers are built from their digits (no strtod, which follows the locale)
 * so that the result is the correctly rounded double of what was written.
 */
#include "wrk_values.h"
#include "dip_text.h"

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
        i++;
        while (i < len && is_digit(p[i])) {
            mant = mant * 10 + (uint64_t)(p[i] - '0');
            nfrac++;
            i++;
            if (nint + nfrac > NUMBER_MAX_DIGITS)
                return WRK_VALUE_TOO_LONG;
        }
        if (nfrac == 0)
            return WRK_VALUE_BAD;
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

/* A currency marker at the start of p: its length, and its code in code
 * ("" for '$', which several currencies use). */
static size_t prefix_marker(const char *p, size_t len, char code[4])
{
    code[0] = '\0';
    if (len >= 1 && p[0] == '$')
        return 1;
    if (len >= 3 && memcmp(p, "\xe2\x82\xac", 3) == 0) {
        memcpy(code, "EUR", 4);
        return 3;
    }
    if (len >= 2 && memcmp(p, "\xc2\xa3", 2) == 0) {
        memcpy(code, "GBP", 4);
        return 2;
    }
    if (len >= 3 && is_upper(p[0]) && is_upper(p[1]) && is_upper(p[2]) &&
        (len == 3 || !is_alpha(p[3]))) {
        memcpy(code, p, 3);
        code[3] = '\0';
        return 3;
    }
    return 0;
}

static size_t suffix_marker(const char *p, size_t len, char code[4])
{
    code[0] = '\0';
    if (len >= 1 && p[len - 1] == '$')
        return 1;
    if (len >= 3 && memcmp(p + len - 3, "\xe2\x82\xac", 3) == 0) {
        memcpy(code, "EUR", 4);
        return 3;
    }
    if (len >= 2 && memcmp(p + len - 2, "\xc2\xa3", 2) == 0) {
        memcpy(code, "GBP", 4);
        return 2;
    }
    if (len >= 3 && is_upper(p[len - 1]) && is_upper(p[len - 2]) &&
        is_upper(p[len - 3]) && (len == 3 || !is_alpha(p[len - 4]))) {
        memcpy(code, p + len - 3, 3);
        code[3] = '\0';
        return 3;
    }
    return 0;
}

int wrk_values_amount(const char *p, size_t len, double *out, char code[4])
{
    char other[4];
    size_t m;
    int negative = 0, ambiguous = 0, rc;
    code[0] = '\0';
    if (len == 0)
        return WRK_VALUE_BAD;
    if (len > AMOUNT_MAX_LEN)
        return WRK_VALUE_TOO_LONG;
    if (p[0] == '-') {
        negative = 1;
        p++;
        len--;
        wrk_values_trim(&p, &len);
    }
    if ((m = prefix_marker(p, len, code)) > 0) {
        p += m;
        len -= m;
        wrk_values_trim(&p, &len);
        if (!negative && len > 0 && p[0] == '-') {
            negative = 1;
            p++;
            len--;
        }
        if (suffix_marker(p, len, other) > 0)
            return WRK_VALUE_BAD;
    } else if ((m = suffix_marker(p, len, code)) > 0) {
        len -= m;
        wrk_values_trim(&p, &len);
    }
    rc = parse_number(p, len, 1, out, &ambiguous);
    if (rc == WRK_VALUE_OK && negative)
        rc = WRK_VALUE_NEGATIVE;
    else if (rc == WRK_VALUE_OK && ambiguous)
        rc = WRK_VALUE_AMBIGUOUS;
    return rc;
}

int wrk_values_percent(const char *p, size_t len, double *out)
{
    int rc;
    if (len > 0 && p[len - 1] == '%') {
        len--;
        wrk_values_trim(&p, &len);
    }
    if (len == 0 || len > AMOUNT_MAX_LEN)
        return WRK_VALUE_BAD;
    rc = parse_number(p, len, 0, out, NULL);
    if (rc == WRK_VALUE_OK && *out > 100.0)
        rc = WRK_VALUE_BAD;
    return rc == WRK_VALUE_OK ? WRK_VALUE_OK : WRK_VALUE_BAD;
}

int wrk_values_parse_amount(const char *in, double *out)
{
    const char *p;
    size_t len;
    char code[4];
    double v = 0;
    if (in == NULL || out == NULL)
        return -1;
    if (text_in(in, &p, &len) < 0)
        return -1;
    if (wrk_values_amount(p, len, &v, code) != WRK_VALUE_OK)
        return -1;
    *out = v;
    return 0;
}

int wrk_values_parse_percent(const char *in, double *out)
{
    const char *p;
    size_t len;
    double v = 0;
    if (in == NULL || out == NULL)
        return -1;
    if (text_in(in, &p, &len) < 0)
        return -1;
    if (wrk_values_percent(p, len, &v) != WRK_VALUE_OK)
        return -1;
    *out = v;
    return 0;
}

/* --- dates ---------------------------------------------------------------- */

static int num(const char *p, size_t len, size_t at, size_t n, int *v)
{
    *v = 0;
    if (at + n > len)
        return -1;
    for (size_t i = at; i < at + n; i++) {
        if (!is_digit(p[i]))
            return -1;
        *v = *v * 10 + (p[i] - '0');
    }
    return 0;
}

static int days_in_month(int y, int m)
{
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : dim[m - 1];
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian, y >= 1): whole 400-year
 * cycles of 146097 days counted from March 1 of year 0, so that Feb 29 is the
 * last day of its counting year. */
static int64_t days_from_civil(int y, int m, int d)
{
    int64_t yy = m <= 2 ? y - 1 : y;
    int64_t era = yy / 400; /* yy >= 0 */
    int64_t yoe = yy - era * 400;
    int64_t mp = m > 2 ? m - 3 : m + 9; /* months since March */
    int64_t doy = (153 * mp + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int wrk_values_date(const char *p, size_t len, int64_t *ms)
{
    int y, mo, d, h = 0, mi = 0, s = 0, frac = 0, oh = 0, om = 0, osign = 0;
    size_t i;
    if (len >= 10 && p[4] == '-' && p[7] == '-') {
        if (num(p, len, 0, 4, &y) || num(p, len, 5, 2, &mo) ||
            num(p, len, 8, 2, &d))
            return WRK_VALUE_BAD;
        i = 10;
        if (i < len) {
            if (p[i] != 'T' && p[i] != 't' && p[i] != ' ')
                return WRK_VALUE_BAD;
            if (num(p, len, i + 1, 2, &h) || i + 3 >= len || p[i + 3] != ':' ||
                num(p, len, i + 4, 2, &mi))
                return WRK_VALUE_BAD;
            i += 6;
            if (i < len && p[i] == ':') {
                if (num(p, len, i + 1, 2, &s))
                    return WRK_VALUE_BAD;
                i += 3;
                if (i < len && (p[i] == '.' || p[i] == ',')) {
                    size_t k = 0;
                    i++;
                    for (; i < len && is_digit(p[i]); i++, k++) {
                        if (k < 3)
                            frac = frac * 10 + (p[i] - '0');
                    }
                    if (k == 0 || k > 9)
                        return WRK_VALUE_BAD;
                    for (; k < 3; k++)
                        frac *= 10;
                }
            }
            if (i < len && (p[i] == 'Z' || p[i] == 'z')) {
                i++;
            } else if (i < len && (p[i] == '+' || p[i] == '-')) {
                osign = p[i] == '-' ? -1 : 1;
                if (num(p, len, i + 1, 2, &oh))
                    return WRK_VALUE_BAD;
                i += 3;
                if (i < len && p[i] == ':')
                    i++;
                if (i < len) {
                    if (num(p, len, i, 2, &om))
                        return WRK_VALUE_BAD;
                    i += 2;
                }
            }
            if (i != len)
                return WRK_VALUE_BAD;
        }
    } else {
        /* M/D/YYYY, US order. */
        size_t a = 0, b;
        while (a < len && a < 3 && is_digit(p[a]))
            a++;
        if (a < 1 || a > 2 || a >= len || p[a] != '/')
            return WRK_VALUE_BAD;
        b = a + 1;
        while (b < len && b - a - 1 < 3 && is_digit(p[b]))
            b++;
        if (b - a - 1 < 1 || b - a - 1 > 2 || b >= len || p[b] != '/' ||
            b + 5 != len)
            return WRK_VALUE_BAD;
        if (num(p, len, 0, a, &mo) || num(p, len, a + 1, b - a - 1, &d) ||
            num(p, len, b + 1, 4, &y))
            return WRK_VALUE_BAD;
    }
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) ||
        h > 23 || mi > 59 || s > 59 || oh > 23 || om > 59)
        return WRK_VALUE_NOT_REAL;
    *ms = days_from_civil(y, mo, d) * 86400000 +
          ((int64_t)h * 3600 + mi * 60 + s) * 1000 + frac -
          (int64_t)osign * (oh * 60 + om) * 60000;
    return WRK_VALUE_OK;
}

int wrk_values_parse_date(const char *in, int64_t *ms_since_epoch)
{
    const char *p;
    size_t len;
    int64_t v = 0;
    if (in == NULL || ms_since_epoch == NULL)
        return -1;
    if (text_in(in, &p, &len) < 0)
        return -1;
    if (wrk_values_date(p, len, &v) != WRK_VALUE_OK)
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
