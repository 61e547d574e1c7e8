/*
 * wrk_dates: dates and date-times from CSV cells, ISO and the orders a
 * locale writes (month first, day first, year first) and the explicit
 * layouts of a file's format. The rules are in wrk_dates.h; everything here
 * reads digits by hand (no strptime, which follows the process's locale) and
 * counts days with whole 400-year cycles, so any date from year 1 to 9999
 * is exact.
 */
#include "wrk_dates.h"
#include "wrk_values.h"

#include <string.h>

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

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

/* 1..max digits at p[*i] into *v; -1 when there are none or more. */
static int digits(const char *p, size_t len, size_t *i, size_t max, int *v)
{
    size_t n = 0;
    *v = 0;
    while (*i < len && is_digit(p[*i])) {
        if (++n > max)
            return -1;
        *v = *v * 10 + (p[*i] - '0');
        (*i)++;
    }
    return n == 0 ? -1 : (int)n;
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

/* A moment's fields, checked and turned into milliseconds. */
typedef struct {
    int y, mo, d, h, mi, s, frac, oh, om, osign;
} moment_t;

static int moment_ms(const moment_t *t, int64_t *ms)
{
    if (t->y < 1 || t->mo < 1 || t->mo > 12 || t->d < 1 ||
        t->d > days_in_month(t->y, t->mo) || t->h > 23 || t->mi > 59 ||
        t->s > 59 || t->oh > 23 || t->om > 59)
        return WRK_VALUE_NOT_REAL;
    *ms = days_from_civil(t->y, t->mo, t->d) * 86400000 +
          ((int64_t)t->h * 3600 + t->mi * 60 + t->s) * 1000 + t->frac -
          (int64_t)t->osign * (t->oh * 60 + t->om) * 60000;
    return WRK_VALUE_OK;
}

/* YYYY-MM-DD with an optional time and offset (the caller saw the dashes at
 * 4 and 7). */
static int iso(const char *p, size_t len, moment_t *t)
{
    size_t i;
    if (num(p, len, 0, 4, &t->y) || num(p, len, 5, 2, &t->mo) ||
        num(p, len, 8, 2, &t->d))
        return WRK_VALUE_BAD;
    i = 10;
    if (i == len)
        return WRK_VALUE_OK;
    if (p[i] != 'T' && p[i] != 't' && p[i] != ' ')
        return WRK_VALUE_BAD;
    if (num(p, len, i + 1, 2, &t->h) || i + 3 >= len || p[i + 3] != ':' ||
        num(p, len, i + 4, 2, &t->mi))
        return WRK_VALUE_BAD;
    i += 6;
    if (i < len && p[i] == ':') {
        if (num(p, len, i + 1, 2, &t->s))
            return WRK_VALUE_BAD;
        i += 3;
        if (i < len && (p[i] == '.' || p[i] == ',')) {
            size_t k = 0;
            i++;
            for (; i < len && is_digit(p[i]); i++, k++) {
                if (k < 3)
                    t->frac = t->frac * 10 + (p[i] - '0');
            }
            if (k == 0 || k > 9)
                return WRK_VALUE_BAD;
            for (; k < 3; k++)
                t->frac *= 10;
        }
    }
    if (i < len && (p[i] == 'Z' || p[i] == 'z')) {
        i++;
    } else if (i < len && (p[i] == '+' || p[i] == '-')) {
        t->osign = p[i] == '-' ? -1 : 1;
        if (num(p, len, i + 1, 2, &t->oh))
            return WRK_VALUE_BAD;
        i += 3;
        if (i < len && p[i] == ':')
            i++;
        if (i < len) {
            if (num(p, len, i, 2, &t->om))
                return WRK_VALUE_BAD;
            i += 2;
        }
    }
    return i == len ? WRK_VALUE_OK : WRK_VALUE_BAD;
}

/* M/D/YYYY, the order of a file without a format. */
static int us_slashes(const char *p, size_t len, moment_t *t)
{
    size_t i = 0;
    if (digits(p, len, &i, 2, &t->mo) < 0 || i >= len || p[i++] != '/' ||
        digits(p, len, &i, 2, &t->d) < 0 || i >= len || p[i++] != '/' ||
        digits(p, len, &i, 4, &t->y) != 4 || i != len)
        return WRK_VALUE_BAD;
    return WRK_VALUE_OK;
}

/* Three numbers a sep b sep c with an optional " HH:MM[:SS]": their values
 * and how many digits the first has. */
typedef struct {
    int a, b, c, na, nc;
} triple_t;

static int triple(const char *p, size_t len, triple_t *tr, moment_t *t)
{
    size_t i = 0;
    char sep;
    tr->na = digits(p, len, &i, 4, &tr->a);
    if (tr->na < 0 || i >= len || (p[i] != '/' && p[i] != '.' && p[i] != '-'))
        return WRK_VALUE_BAD;
    sep = p[i++];
    if (digits(p, len, &i, 2, &tr->b) < 0 || i >= len || p[i++] != sep)
        return WRK_VALUE_BAD;
    tr->nc = digits(p, len, &i, 4, &tr->c);
    if (tr->nc < 0)
        return WRK_VALUE_BAD;
    if (i < len) {
        if (p[i] != ' ' || num(p, len, i + 1, 2, &t->h) || i + 3 >= len ||
            p[i + 3] != ':' || num(p, len, i + 4, 2, &t->mi))
            return WRK_VALUE_BAD;
        i += 6;
        if (i < len &&
            (p[i] != ':' || num(p, len, i + 1, 2, &t->s) || (i += 3) != len))
            return WRK_VALUE_BAD;
    }
    /* Year first, or year last; never two digits of a year. */
    if (tr->na == 4 ? tr->nc > 2 : (tr->na > 2 || tr->nc != 4))
        return WRK_VALUE_BAD;
    return WRK_VALUE_OK;
}

static int ordered(const triple_t *tr, wrk_date_order_t order, moment_t *t,
                   int64_t *ms)
{
    if (tr->na == 4) {
        t->y = tr->a;
        t->mo = tr->b;
        t->d = tr->c;
    } else if (order == WRK_DATES_MDY || order == WRK_DATES_DMY) {
        t->y = tr->c;
        t->mo = order == WRK_DATES_MDY ? tr->a : tr->b;
        t->d = order == WRK_DATES_MDY ? tr->b : tr->a;
    } else {
        return WRK_VALUE_BAD;
    }
    return moment_ms(t, ms);
}

/* --- layouts -------------------------------------------------------------- */

typedef enum { T_LIT, T_Y, T_MO, T_D, T_H, T_MI, T_S } token_t;

/* The token at l: its kind, its width in digits (0: 1 or 2) and its length
 * in the layout. */
static token_t token_at(const char *l, size_t *width, size_t *tlen)
{
    static const struct {
        const char *text;
        token_t kind;
        size_t width;
    } toks[] = {
        {"YYYY", T_Y, 4}, {"MM", T_MO, 2}, {"M", T_MO, 0},
        {"DD", T_D, 2},   {"D", T_D, 0},   {"HH", T_H, 2},
        {"H", T_H, 0},    {"mm", T_MI, 2}, {"ss", T_S, 2},
    };
    for (size_t i = 0; i < sizeof(toks) / sizeof(toks[0]); i++) {
        size_t n = strlen(toks[i].text);
        if (strncmp(l, toks[i].text, n) == 0) {
            *width = toks[i].width;
            *tlen = n;
            return toks[i].kind;
        }
    }
    *width = 0;
    *tlen = 1;
    return T_LIT;
}

int wrk_dates_layout_check(const char *layout)
{
    int seen[T_S + 1] = {0};
    size_t i = 0, len;
    token_t prev = T_LIT;
    size_t prev_width = 1;
    if (layout == NULL || (len = strlen(layout)) == 0 ||
        len > WRK_DATES_LAYOUT_MAX)
        return -1;
    while (i < len) {
        size_t width, tlen;
        token_t k = token_at(layout + i, &width, &tlen);
        unsigned char c = (unsigned char)layout[i];
        if (k == T_LIT && (c < 0x20 || c == 0x7f || is_digit((char)c)))
            return -1;
        /* A token of 1 or 2 digits needs a literal beside it to end. */
        if (k != T_LIT && prev != T_LIT && (width == 0 || prev_width == 0))
            return -1;
        if (k != T_LIT && seen[k]++)
            return -1;
        prev = k;
        prev_width = width;
        i += tlen;
    }
    if (!seen[T_Y] || !seen[T_MO] || !seen[T_D] || (seen[T_MI] && !seen[T_H]) ||
        (seen[T_S] && !seen[T_MI]) || (seen[T_H] && !seen[T_MI]))
        return -1;
    return 0;
}

static int by_layout(const char *p, size_t len, const char *l, int64_t *ms)
{
    moment_t t;
    size_t i = 0, j = 0, llen = strlen(l);
    memset(&t, 0, sizeof(t));
    while (j < llen) {
        size_t width, tlen;
        token_t k = token_at(l + j, &width, &tlen);
        int v = 0, *dst = NULL;
        if (k == T_LIT) {
            if (i >= len || p[i] != l[j])
                return WRK_VALUE_BAD;
            i++;
            j++;
            continue;
        }
        if (width == 0) {
            if (digits(p, len, &i, 2, &v) < 0)
                return WRK_VALUE_BAD;
        } else {
            if (num(p, len, i, width, &v))
                return WRK_VALUE_BAD;
            i += width;
        }
        switch (k) {
        case T_Y:
            dst = &t.y;
            break;
        case T_MO:
            dst = &t.mo;
            break;
        case T_D:
            dst = &t.d;
            break;
        case T_H:
            dst = &t.h;
            break;
        case T_MI:
            dst = &t.mi;
            break;
        default:
            dst = &t.s;
            break;
        }
        *dst = v;
        j += tlen;
    }
    if (i != len)
        return WRK_VALUE_BAD;
    return moment_ms(&t, ms);
}

int wrk_dates_layout_read(const char *p, size_t len,
                          const wrk_dates_layouts_t *layouts, int64_t *ms)
{
    for (size_t i = 0; layouts != NULL && i < layouts->n; i++)
        if (by_layout(p, len, layouts->layout[i], ms) == WRK_VALUE_OK)
            return (int)i;
    return -1;
}

wrk_date_order_t wrk_dates_layout_order(const char *layout)
{
    size_t i = 0, len = strlen(layout), at[T_S + 1] = {0}, n = 1;
    while (i < len) {
        size_t width, tlen;
        token_t k = token_at(layout + i, &width, &tlen);
        if (k != T_LIT && at[k] == 0)
            at[k] = n++;
        i += tlen;
    }
    if (at[T_Y] < at[T_MO] && at[T_Y] < at[T_D])
        return WRK_DATES_YMD;
    return at[T_MO] < at[T_D] ? WRK_DATES_MDY : WRK_DATES_DMY;
}

/* --- the parser ----------------------------------------------------------- */

int wrk_dates_parse(const char *p, size_t len, wrk_date_order_t order,
                    const wrk_dates_layouts_t *layouts, int64_t *ms)
{
    moment_t t;
    triple_t tr;
    int rc;
    if (wrk_dates_layout_read(p, len, layouts, ms) >= 0)
        return WRK_VALUE_OK;
    memset(&t, 0, sizeof(t));
    if (len >= 10 && p[4] == '-' && p[7] == '-') {
        rc = iso(p, len, &t);
        return rc == WRK_VALUE_OK ? moment_ms(&t, ms) : rc;
    }
    if (order == WRK_DATES_DEFAULT) {
        rc = us_slashes(p, len, &t);
        return rc == WRK_VALUE_OK ? moment_ms(&t, ms) : rc;
    }
    memset(&tr, 0, sizeof(tr));
    if ((rc = triple(p, len, &tr, &t)) != WRK_VALUE_OK)
        return rc;
    if (order == WRK_DATES_UNDECIDED && tr.na != 4) {
        /* Read only what both orders read alike. */
        moment_t t2 = t;
        int64_t m1 = 0, m2 = 0;
        int r1 = ordered(&tr, WRK_DATES_MDY, &t, &m1);
        int r2 = ordered(&tr, WRK_DATES_DMY, &t2, &m2);
        if (r1 == WRK_VALUE_OK && r2 == WRK_VALUE_OK && m1 == m2) {
            *ms = m1;
            return WRK_VALUE_OK;
        }
        return r1 == WRK_VALUE_OK || r2 == WRK_VALUE_OK ? WRK_VALUE_UNDECIDED
                                                        : WRK_VALUE_NOT_REAL;
    }
    return ordered(&tr, order == WRK_DATES_UNDECIDED ? WRK_DATES_YMD : order,
                   &t, ms);
}

const char *wrk_dates_order_name(wrk_date_order_t order)
{
    switch (order) {
    case WRK_DATES_MDY:
        return "MDY";
    case WRK_DATES_DMY:
        return "DMY";
    case WRK_DATES_YMD:
        return "YMD";
    case WRK_DATES_UNDECIDED:
        return "undecided";
    default:
        return "";
    }
}

int wrk_dates_order_from_name(const char *name, wrk_date_order_t *out)
{
    static const wrk_date_order_t orders[] = {WRK_DATES_MDY, WRK_DATES_DMY,
                                              WRK_DATES_YMD};
    for (size_t i = 0; name != NULL && i < 3; i++)
        if (strcmp(name, wrk_dates_order_name(orders[i])) == 0) {
            *out = orders[i];
            return 0;
        }
    return -1;
}
