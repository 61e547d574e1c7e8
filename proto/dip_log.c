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
#include <stdint.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#define MSG_MAX 2047

static struct {
    char program[64];
    int max_level;
    int json;
    int journald;
    int journal_fd; /* the journal's native socket, -1: none */
    char journal_path[108];
} log_setup = {
    "dealimport", DIP_LOG_INFO, 0, 0, -1, "/run/systemd/journal/socket"};

int dip_log_under_journald(void)
{
    /* systemd sets JOURNAL_STREAM=DEV:INODE of the stream it connected;
     * stderr may have been redirected since, so both must match. */
    const char *v = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    char tail;
    if (v == NULL || sscanf(v, "%llu:%llu%c", &dev, &ino, &tail) != 2 ||
        fstat(STDERR_FILENO, &st) != 0)
        return 0;
    return (unsigned long long)st.st_dev == dev &&
           (unsigned long long)st.st_ino == ino;
}

void dip_log_setup(const char *program, int max_level, int json)
{
    snprintf(log_setup.program, sizeof(log_setup.program), "%s",
             program ? program : "dealimport");
    log_setup.max_level = max_level;
    log_setup.json = json;
    log_setup.journald = dip_log_under_journald();
    if (log_setup.journald && log_setup.journal_fd < 0)
        log_setup.journal_fd =
            socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
}

void dip_log_journal_socket(const char *path)
{
    snprintf(log_setup.journal_path, sizeof(log_setup.journal_path), "%s",
             path);
}

/* Appends KEY=value to the journal entry in o: the plain form when the
 * value holds no line break, else the binary one (KEY, a newline, the
 * length as 64-bit little-endian, the bytes). */
static void journal_field(FILE *o, const char *key, const char *value)
{
    size_t n = strlen(value);
    if (memchr(value, '\n', n) == NULL) {
        fprintf(o, "%s=%s\n", key, value);
        return;
    }
    fprintf(o, "%s\n", key);
    for (int i = 0; i < 8; i++)
        fputc((int)((uint64_t)n >> (8 * i) & 0xff), o);
    fwrite(value, 1, n, o);
    fputc('\n', o);
}

/* Sends the event to the journal with its fields as journal fields
 * (IMPORT_ID, and each field's key in capitals). 0, or -1 when it could
 * not be sent (then the caller writes the line to stderr). */
static int journal_send(int level, const char *import_id,
                        const dip_log_field_t *fields, size_t nfields,
                        const char *msg)
{
    struct sockaddr_un sun;
    char *buf = NULL, num[32];
    size_t len = 0;
    FILE *o;
    int rc = -1;
    if (log_setup.journal_fd < 0)
        return -1;
    o = open_memstream(&buf, &len);
    if (o == NULL)
        return -1;
    fprintf(o, "PRIORITY=%d\nSYSLOG_IDENTIFIER=%s\n", level, log_setup.program);
    journal_field(o, "MESSAGE", msg);
    if (import_id)
        journal_field(o, "IMPORT_ID", import_id);
    for (size_t i = 0; i < nfields; i++) {
        char key[64];
        size_t k = 0;
        for (const char *p = fields[i].key; *p && k + 1 < sizeof(key); p++)
            key[k++] = (char)(*p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p);
        key[k] = '\0';
        snprintf(num, sizeof(num), "%lld", fields[i].num);
        journal_field(o, key,
                      fields[i].is_str ? (fields[i].str ? fields[i].str : "")
                                       : num);
    }
    if (fclose(o) != 0)
        goto cleanup;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", log_setup.journal_path);
    if (sendto(log_setup.journal_fd, buf, len, MSG_NOSIGNAL,
               (struct sockaddr *)&sun, sizeof(sun)) == (ssize_t)len)
        rc = 0;
cleanup:
    free(buf);
    return rc;
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

/* A JSON string of text, whose bytes that are not UTF-8 are kept visible
 * as kv escapes rather than losing the text. */
static json_t *json_text(const char *text)
{
    json_t *m = json_string(text);
    if (m == NULL) {
        char esc[4 * (MSG_MAX + 5)];
        esc[escape(esc, 0, sizeof(esc), text)] = '\0';
        m = json_string(esc);
    }
    return m;
}

/* "2026-01-02T03:04:05.678Z" */
static void utc_now(char *out, size_t cap)
{
    struct timespec ts;
    struct tm tm;
    size_t n;
    out[0] = '\0';
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    if (n > 0 && n + 6 <= cap)
        snprintf(out + n, cap - n, ".%03dZ",
                 (int)(ts.tv_nsec / 1000000L) % 1000);
}

/* The JSON line, malloc'd, with its newline (and prefix under journald);
 * NULL when out of memory. */
static char *json_line(int level, const char *import_id,
                       const dip_log_field_t *fields, size_t nfields,
                       const char *msg)
{
    char now[40], *s, *line = NULL;
    json_t *o;
    utc_now(now, sizeof(now));
    o = json_pack("{s:s, s:s, s:s, s:i}", "time", now, "level",
                  level_name(level), "program", log_setup.program, "pid",
                  (int)getpid());
    if (o == NULL)
        return NULL;
    if (import_id)
        json_object_set_new(o, "import", json_text(import_id));
    for (size_t i = 0; i < nfields; i++)
        json_object_set_new(o, fields[i].key,
                            fields[i].is_str
                                ? json_text(fields[i].str ? fields[i].str : "")
                                : json_integer((json_int_t)fields[i].num));
    json_object_set_new(o, "msg", json_text(msg));
    s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (s == NULL)
        return NULL;
    if (log_setup.journald) {
        if (asprintf(&line, "<%d>%s\n", level, s) < 0)
            line = NULL;
    } else if (asprintf(&line, "%s\n", s) < 0) {
        line = NULL;
    }
    free(s);
    return line;
}

static void logv(int level, const char *import_id,
                 const dip_log_field_t *fields, size_t nfields, const char *fmt,
                 va_list ap) __attribute__((format(printf, 5, 0)));

static void logv(int level, const char *import_id,
                 const dip_log_field_t *fields, size_t nfields, const char *fmt,
                 va_list ap)
{
    /* A message is at most MSG_MAX bytes; the four more let the cut see
     * whether the byte after it continues a character. */
    char msg[MSG_MAX + 5];
    char line[4096], field[sizeof(line)];
    size_t flen;
    int n;

    if (level > log_setup.max_level)
        return;
    n = vsnprintf(msg, sizeof(msg), fmt, ap);
    if (n < 0)
        return;
    msg[dip_text_cut(msg, strlen(msg), MSG_MAX)] = '\0';
    /* Under journald the event goes to the journal natively, its fields
     * as the journal's own; the stream stays the fallback. */
    if (log_setup.journald &&
        journal_send(level, import_id, fields, nfields, msg) == 0)
        return;
    if (log_setup.json) {
        /* Never cut: a cut object would not parse. Its size is bounded by
         * the message's, the id's and the fields'. */
        char *l = json_line(level, import_id, fields, nfields, msg);
        if (l == NULL)
            return;
        /* A failed log write has nowhere to be reported. */
        if (write(STDERR_FILENO, l, strlen(l)) < 0) {
            free(l);
            return;
        }
        free(l);
        return;
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
        /* After msg, so that "import=ID msg=" stays as readers know it; a
         * field that would not fit is left out whole. */
        for (size_t i = 0; i < nfields; i++) {
            char num[32];
            const char *v = fields[i].str ? fields[i].str : "";
            if (!fields[i].is_str) {
                snprintf(num, sizeof(num), "%lld", fields[i].num);
                v = num;
            }
            /* Whole or not at all: a cut number would be a wrong one. */
            flen = append_kv(field, 0, sizeof(field), fields[i].key, v, 0);
            if (len + flen < sizeof(line) - 1) {
                memcpy(line + len, field, flen);
                len += flen;
            }
        }
        line[len++] = '\n';
        n = (int)len;
    }
    /* A failed log write has nowhere to be reported. */
    if (write(STDERR_FILENO, line, (size_t)n) < 0)
        return;
}

void dip_logv(int level, const char *import_id, const char *fmt, va_list ap)
{
    logv(level, import_id, NULL, 0, fmt, ap);
}

void dip_log_fields(int level, const char *import_id,
                    const dip_log_field_t *fields, size_t nfields,
                    const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    logv(level, import_id, fields, nfields, fmt, ap);
    va_end(ap);
}

void dip_log(int level, const char *import_id, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    dip_logv(level, import_id, fmt, ap);
    va_end(ap);
}
