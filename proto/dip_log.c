/*
 * dip_log: formats one event per line on stderr for journald or a terminal.
 * A line is written with a single write(2) so lines from the supervisor and
 * its workers never interleave mid-line on a shared stderr, and nothing a
 * value holds (a line break, an '=', a quote, bytes that are not UTF-8) can
 * end a line early or pose as another key: kv values are quoted and escaped.
 */
#include "dip_log.h"
#include "dip_text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <jansson.h>

#define MSG_MAX 2047

static struct {
    char program[64];
    int max_level;
    int json;
} log_setup = {"dealimport", DIP_LOG_INFO, 0};

void dip_log_setup(const char *program, int max_level, int json)
{
    snprintf(log_setup.program, sizeof(log_setup.program), "%s",
             program ? program : "dealimport");
    log_setup.max_level = max_level;
    log_setup.json = json;
}

int dip_log_level_parse(const char *s)
{
    static const char *const names[] = {"error", "warning", "notice", "info",
                                        "debug"};
    if (s == NULL)
        return -1;
    for (int i = 0; i < 5; i++)
        if (strcasecmp(s, names[i]) == 0)
            return DIP_LOG_ERR + i;
    if (s[0] >= '3' && s[0] <= '7' && s[1] == '\0')
        return s[0] - '0';
    return -1;
}

static const char *level_name(int level)
{
    switch (level) {
    case DIP_LOG_ERR:
        return "error";
    case DIP_LOG_WARNING:
        return "warning";
    case DIP_LOG_NOTICE:
        return "notice";
    case DIP_LOG_INFO:
        return "info";
    default:
        return "debug";
    }
}

/* Appends the bytes of s escaped for a kv line: '\\' and '"' get a
 * backslash, line breaks and tabs their C escapes, other control bytes, DEL
 * and bytes that are not UTF-8 become \xHH; well-formed UTF-8 stays as it
 * is. Stops before an escape or a character that would not fit in cap
 * (counting a closing byte). Returns the new length. */
static size_t escape(char *out, size_t len, size_t cap, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t left = strlen(s);
    while (left > 0) {
        char tmp[4];
        size_t n = 0, take = 1;
        unsigned char c = *p;
        if (c == '\\' || c == '"') {
            tmp[n++] = '\\';
            tmp[n++] = (char)c;
        } else if (c == '\n' || c == '\r' || c == '\t') {
            tmp[n++] = '\\';
            tmp[n++] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
        } else if (c < 0x20 || c == 0x7f) {
            n = 0;
        } else if (c < 0x80) {
            tmp[n++] = (char)c;
        } else if ((take = dip_text_utf8_seq(p, left)) > 0) {
            memcpy(tmp, p, take);
            n = take;
        } else {
            take = 1;
        }
        if (n == 0) { /* \xHH */
            if (len + 4 >= cap)
                break;
            out[len++] = '\\';
            out[len++] = 'x';
            out[len++] = hex[c >> 4];
            out[len++] = hex[c & 15];
        } else {
            if (len + n >= cap)
                break;
            memcpy(out + len, tmp, n);
            len += n;
        }
        p += take;
        left -= take;
    }
    return len;
}

/* A value that a kv reader could take for more than one value (space, '=',
 * '"', a backslash, a control byte, nothing at all) is quoted. */
static int needs_quotes(const char *s)
{
    if (*s == '\0')
        return 1;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= ' ' || *p == '=' || *p == '"' || *p == '\\' || *p == 0x7f)
            return 1;
    return 0;
}

/* Appends " key=value" (value quoted and escaped when needed), within cap
 * bytes counting the line's final newline. */
static size_t append_kv(char *out, size_t len, size_t cap, const char *key,
                        const char *value, int always_quote)
{
    size_t kl = strlen(key);
    int quote = always_quote || needs_quotes(value);
    if (len + kl + 4 >= cap)
        return len;
    out[len++] = ' ';
    memcpy(out + len, key, kl);
    len += kl;
    out[len++] = '=';
    if (quote)
        out[len++] = '"';
    len = escape(out, len, cap - (quote ? 1 : 0), value);
    if (quote)
        out[len++] = '"';
    return len;
}

void dip_logv(int level, const char *import_id, const char *fmt, va_list ap)
{
    /* A message is at most MSG_MAX bytes; the four more let the cut see
     * whether the byte after it continues a character. */
    char msg[MSG_MAX + 5];
    char line[4096];
    int n;

    if (level > log_setup.max_level)
        return;
    n = vsnprintf(msg, sizeof(msg), fmt, ap);
    if (n < 0)
        return;
    msg[dip_text_cut(msg, strlen(msg), MSG_MAX)] = '\0';
    if (log_setup.json) {
        json_t *o =
            json_pack("{s:s, s:s, s:i}", "level", level_name(level), "program",
                      log_setup.program, "pid", (int)getpid());
        json_t *m;
        char *s;
        if (o == NULL)
            return;
        if (import_id)
            json_object_set_new(o, "import", json_string(import_id));
        /* JSON escapes line breaks itself; bytes that are not UTF-8 are
         * kept visible as kv escapes rather than losing the message. */
        m = json_string(msg);
        if (m == NULL) {
            char esc[sizeof(line)];
            esc[escape(esc, 0, sizeof(esc), msg)] = '\0';
            m = json_string(esc);
        }
        json_object_set_new(o, "msg", m);
        s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
        json_decref(o);
        if (s == NULL)
            return;
        n = snprintf(line, sizeof(line), "<%d>%s\n", level, s);
        free(s);
        if (n < 0)
            return;
        if ((size_t)n >= sizeof(line)) {
            n = sizeof(line) - 1;
            line[n - 1] = '\n';
        }
    } else {
        size_t len;
        n = snprintf(line, sizeof(line), "<%d>%s[%d] level=%s", level,
                     log_setup.program, (int)getpid(), level_name(level));
        if (n < 0 || (size_t)n >= sizeof(line))
            return;
        len = (size_t)n;
        if (import_id)
            len =
                append_kv(line, len, sizeof(line) - 1, "import", import_id, 0);
        len = append_kv(line, len, sizeof(line) - 1, "msg", msg, 1);
        line[len++] = '\n';
        n = (int)len;
    }
    /* A failed log write has nowhere to be reported. */
    if (write(STDERR_FILENO, line, (size_t)n) < 0)
        return;
}

void dip_log(int level, const char *import_id, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    dip_logv(level, import_id, fmt, ap);
    va_end(ap);
}
