/*
 * dip_text: UTF-8 boundaries, validation and cutting for every module (see
 * dip_text.h). Pure functions over buffers.
 */
#include "dip_text.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

size_t dip_text_utf8_seq(const unsigned char *p, size_t len)
{
    unsigned char c = p[0];
    unsigned char lo = 0x80, hi = 0xBF;
    size_t n;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        return 0;
    }
    if (len < n || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    return n;
}

int dip_text_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        size_t n;
        if (p[i] < 0x80) {
            uint64_t w;
            /* Runs of ASCII are the common case: eight at a time. */
            while (i + 8 <= len) {
                memcpy(&w, p + i, 8);
                if (w & 0x8080808080808080ULL)
                    break;
                i += 8;
            }
            if (i < len && p[i] < 0x80)
                i++;
            continue;
        }
        if ((n = dip_text_utf8_seq(p + i, len - i)) == 0)
            return 0;
        i += n;
    }
    return 1;
}

/* Where a cut at n (0 < n < len) must move back to so that it does not
 * split a character: s[n] continuing a sequence means the character that
 * holds it starts at most three bytes earlier. Longer runs of continuation
 * bytes are not UTF-8 at all and are cut where asked. */
static size_t boundary(const unsigned char *p, size_t n)
{
    size_t k = n;
    while (k > 0 && n - k < 3 && (p[k] & 0xC0) == 0x80)
        k--;
    return (p[k] & 0xC0) == 0x80 ? n : k;
}

size_t dip_text_cut(const char *s, size_t len, size_t max)
{
    if (len <= max)
        return len;
    return boundary((const unsigned char *)s, max);
}

size_t dip_text_format(char *buf, size_t size, int *cut, const char *fmt, ...)
{
    va_list ap;
    size_t n;
    va_start(ap, fmt);
    n = dip_text_vformat(buf, size, cut, fmt, ap);
    va_end(ap);
    return n;
}

int dip_text_say(int rc, char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (err == NULL || errlen == 0)
        return rc;
    va_start(ap, fmt);
    dip_text_vformat(err, errlen, NULL, fmt, ap);
    va_end(ap);
    return rc;
}

size_t dip_text_vformat(char *buf, size_t size, int *cut, const char *fmt,
                        va_list ap)
{
    int want;
    size_t n, start;
    if (cut)
        *cut = 0;
    if (size == 0)
        return 0;
    want = vsnprintf(buf, size, fmt, ap);
    if (want < 0) {
        buf[0] = '\0';
        return 0;
    }
    if ((size_t)want < size)
        return (size_t)want;
    /* vsnprintf kept size - 1 bytes and the rest is gone: keep the last
     * character only when it is whole. */
    n = size - 1;
    start = n;
    while (start > 0 && n - start < 4 &&
           ((unsigned char)buf[start - 1] & 0xC0) == 0x80)
        start--;
    if (start > 0 && (unsigned char)buf[start - 1] >= 0xC0)
        start--;
    if (start < n &&
        dip_text_utf8_seq((const unsigned char *)buf + start, n - start) !=
            n - start &&
        (unsigned char)buf[start] >= 0x80)
        n = start;
    buf[n] = '\0';
    if (cut)
        *cut = 1;
    return n;
}

size_t dip_text_trim(const char **s, size_t len)
{
    const char *p = *s;
    while (len > 0 && (*p == ' ' || *p == '\t'))
        p++, len--;
    while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
        len--;
    *s = p;
    return len;
}
