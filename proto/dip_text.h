/*
 * dip_text: the one place that knows where UTF-8 characters begin and end.
 * The reader checks a cell once with dip_text_utf8_valid; everything that
 * cuts text to a size (a quoted value in a sentence, a cell in a line error,
 * a formatted message in a fixed buffer) cuts with dip_text_cut or
 * dip_text_format, so no text this service builds ever ends inside a
 * character and every string handed to JSON or BSON stays valid UTF-8.
 */
#ifndef DIP_TEXT_H
#define DIP_TEXT_H

#include <stdarg.h>
#include <stddef.h>

/* Length (1..4) of the well-formed UTF-8 sequence at p, 0 when there is none
 * (a stray continuation byte, an overlong form, a surrogate, a code point
 * past U+10FFFF, or a sequence cut by the end at len). len must be > 0. */
size_t dip_text_utf8_seq(const unsigned char *p, size_t len);

/* 1 when s[0..len) is well-formed UTF-8 (NUL bytes are characters here; a
 * caller that stores into MongoDB refuses them itself), else 0. Runs of
 * ASCII are checked eight bytes at a time. */
int dip_text_utf8_valid(const char *s, size_t len);

/* The length of the longest prefix of UTF-8 text s[0..len) that is at most
 * max bytes and ends on a character boundary. Text that is not UTF-8 is cut
 * at a byte that does not continue a sequence. */
size_t dip_text_cut(const char *s, size_t len, size_t max);

/* snprintf into buf[size], except that output which does not fit is cut at
 * a character boundary (never inside a UTF-8 sequence) and always
 * NUL-terminated. Returns the length written (not the length wanted);
 * *cut, when not NULL, is set to 1 when the text was cut. */
size_t dip_text_format(char *buf, size_t size, int *cut, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* dip_text_format with a va_list, for functions that take a format. */
size_t dip_text_vformat(char *buf, size_t size, int *cut, const char *fmt,
                        va_list ap) __attribute__((format(printf, 4, 0)));

/* The one way a function hands back an error sentence: writes it into
 * err[errlen] as dip_text_format does (cut at a character boundary: the
 * sentence often quotes the user's keys and values), when err is not NULL
 * and errlen > 0, and returns rc, so that `return dip_text_say(-1, err,
 * errlen, "cannot read '%s'", key);` reports and fails in one line. */
int dip_text_say(int rc, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ASCII spaces and tabs trimmed from both ends: moves *s and returns the
 * remaining length. */
size_t dip_text_trim(const char **s, size_t len);

#endif
