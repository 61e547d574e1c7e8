/*
 * dip_storage: the storage rules that need no I/O, so that the two backends
 * agree on them and each can be tested with plain inputs: key confinement,
 * endpoint and bucket parsing, object paths, byte ranges, the transient or
 * permanent verdict on a failure, backoff with jitter, S3 error bodies, and
 * the multipart plan (part size, CompleteMultipartUpload body, upload
 * queries).
 */
#include "dip_storage.h"
#include "dip_text.h"
#include "dip_sigv4.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

static char *dup_range(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

int dip_storage_check_key(const char *key, size_t key_len, char *err,
                          size_t errlen)
{
    size_t seg = 0;
    if (key == NULL || key_len == 0)
        return dip_text_say(DIP_STORAGE_EINVAL, err, errlen,
                            "file key is empty");
    /* Every sentence below quotes the key: it must be text first. */
    if (!dip_text_utf8_valid(key, key_len))
        return dip_text_say(DIP_STORAGE_EINVAL, err, errlen,
                            "file key is not UTF-8 text");
    if (key_len > DIP_STORAGE_KEY_MAX)
        return dip_text_say(DIP_STORAGE_EINVAL, err, errlen,
                            "file key '%.*s...' is longer than %d bytes",
                            (int)dip_text_cut(key, key_len, 40), key,
                            DIP_STORAGE_KEY_MAX);
    for (size_t i = 0; i < key_len; i++) {
        unsigned char c = (unsigned char)key[i];
        if (c == '\0')
            return dip_text_say(DIP_STORAGE_EINVAL, err, errlen,
                                "file key '%s' contains a NUL byte", key);
        if (c < 0x20 || c == 0x7f)
            return dip_text_say(DIP_STORAGE_EINVAL, err, errlen,
                                "file key '%.*s' contains a control character",
                                (int)i, key);
    }
    if (key[0] == '/' || key[0] == '\\')
        return dip_text_say(
            DIP_STORAGE_EINVAL, err, errlen,
            "file key '%s' is absolute; keys are relative to their "
            "storage",
            key);
    /* '\' counts as a separator too, so "a\..\..\b" cannot pass. */
    for (size_t i = 0; i <= key_len; i++) {
        if (i == key_len || key[i] == '/' || key[i] == '\\') {
            size_t n = i - seg;
            if ((n == 1 && key[seg] == '.') ||
                (n == 2 && key[seg] == '.' && key[seg + 1] == '.'))
                return dip_text_say(
                    DIP_STORAGE_EINVAL, err, errlen,
                    "file key '%s' has a '%.*s' path segment; keys "
                    "must stay inside their storage",
                    key, (int)n, key + seg);
            seg = i + 1;
        }
    }
    return DIP_STORAGE_OK;
}

int dip_storage_parse_endpoint(const char *url, dip_storage_endpoint_t *ep,
                               char *err, size_t errlen)
{
    const char *auth, *end;
    size_t plen;
    memset(ep, 0, sizeof(*ep));
    if (strncmp(url, "http://", 7) == 0)
        auth = url + 7;
    else if (strncmp(url, "https://", 8) == 0)
        auth = url + 8;
    else
        return dip_text_say(
            -1, err, errlen,
            "DEALIMPORT_S3_ENDPOINT: '%s' does not start with http:// "
            "or https://",
            url);
    end = auth + strcspn(auth, "/?#");
    if (end == auth || memchr(auth, '@', (size_t)(end - auth)) ||
        strpbrk(end, "?#"))
        return dip_text_say(-1, err, errlen,
                            "DEALIMPORT_S3_ENDPOINT: '%s' is not of the form "
                            "http[s]://host[:port][/path]",
                            url);
    plen = strlen(end);
    while (plen > 0 && end[plen - 1] == '/')
        plen--;
    ep->origin = dup_range(url, (size_t)(end - url));
    ep->host = dup_range(auth, (size_t)(end - auth));
    ep->base_path = dup_range(end, plen);
    if (!ep->origin || !ep->host || !ep->base_path)
        return dip_text_say(-1, err, errlen, "out of memory");
    for (char *p = ep->host; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return 0;
}

void dip_storage_endpoint_release(dip_storage_endpoint_t *ep)
{
    if (ep == NULL)
        return;
    free(ep->origin);
    free(ep->host);
    free(ep->base_path);
    memset(ep, 0, sizeof(*ep));
}

char *dip_storage_parse_bucket(const char *url, char *err, size_t errlen)
{
    const char *b;
    size_t blen;
    char *bucket;
    if (url == NULL || strncmp(url, "s3://", 5) != 0) {
        dip_text_say(-1, err, errlen,
                     "DEALIMPORT_STORAGE_URL: '%s' is not s3://bucket",
                     url ? url : "");
        return NULL;
    }
    b = url + 5;
    blen = strlen(b);
    while (blen > 0 && b[blen - 1] == '/')
        blen--;
    if (blen == 0 || blen > 255 ||
        strspn(b, "abcdefghijklmnopqrstuvwxyz"
                  "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                  "0123456789.-_") < blen) {
        dip_text_say(-1, err, errlen,
                     "DEALIMPORT_STORAGE_URL: '%s' does not name a bucket "
                     "(s3://bucket, letters, digits, '.', '-', '_')",
                     url);
        return NULL;
    }
    if ((bucket = dup_range(b, blen)) == NULL)
        dip_text_say(-1, err, errlen, "out of memory");
    return bucket;
}

char *dip_storage_object_path(const char *base_path, const char *bucket,
                              const char *key)
{
    char *enc = dip_sigv4_uri_encode(key, strlen(key), 1), *path = NULL;
    if (enc == NULL)
        return NULL;
    if (asprintf(&path, "%s/%s/%s", base_path, bucket, enc) < 0)
        path = NULL;
    free(enc);
    return path;
}

void dip_storage_range_header(uint64_t from, char *out, size_t outlen)
{
    snprintf(out, outlen, "bytes=%" PRIu64 "-", from);
}

int dip_storage_parse_content_range(const char *value, int64_t *first,
                                    int64_t *total)
{
    const char *p = value, *slash;
    *first = *total = -1;
    while (*p == ' ' || *p == '\t')
        p++;
    if (strncasecmp(p, "bytes ", 6) != 0 || (slash = strrchr(p, '/')) == NULL)
        return -1;
    p += 6;
    while (*p == ' ')
        p++;
    if (*p >= '0' && *p <= '9')
        *first = strtoll(p, NULL, 10);
    else if (*p != '*')
        return -1;
    if (slash[1] >= '0' && slash[1] <= '9')
        *total = strtoll(slash + 1, NULL, 10);
    return 0;
}

int dip_storage_transient_curl(int curl_code)
{
    switch ((CURLcode)curl_code) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_PARTIAL_FILE:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_HTTP3:
        return 1;
    default:
        return 0;
    }
}

int dip_storage_transient_http(long status)
{
    return status == 408 || status == 429 || status >= 500;
}

long dip_storage_backoff_ms(long base_ms, int failures, unsigned int random)
{
    long long ms = base_ms, jitter;
    int shift = failures - 1 < 16 ? failures - 1 : 16;
    if (ms <= 0)
        return 0;
    if (shift > 0)
        ms <<= shift;
    if (ms > 600000)
        ms = 600000;
    jitter = ms / 4;
    if (jitter > 0)
        ms += (long long)(random % (unsigned)(2 * jitter + 1)) - jitter;
    return (long)ms;
}

void dip_storage_xml_field(const char *body, const char *tag, char *out,
                           size_t outlen)
{
    char open[48], close_[48];
    const char *s, *e;
    if (outlen == 0)
        return;
    out[0] = '\0';
    if (body == NULL)
        return;
    snprintf(open, sizeof(open), "<%s>", tag);
    snprintf(close_, sizeof(close_), "</%s>", tag);
    if ((s = strstr(body, open)) == NULL)
        return;
    s += strlen(open);
    if ((e = strstr(s, close_)) == NULL)
        return;
    snprintf(out, outlen, "%.*s", (int)(e - s), s);
}

void dip_storage_xml_unescape(char *s)
{
    static const struct {
        const char *ent;
        char c;
    } ents[] = {{"&amp;", '&'},
                {"&lt;", '<'},
                {"&gt;", '>'},
                {"&quot;", '"'},
                {"&apos;", '\''}};
    char *w = s;
    while (*s) {
        size_t i, n = sizeof(ents) / sizeof(ents[0]);
        if (*s == '&') {
            for (i = 0; i < n; i++)
                if (strncmp(s, ents[i].ent, strlen(ents[i].ent)) == 0)
                    break;
            if (i < n) {
                *w++ = ents[i].c;
                s += strlen(ents[i].ent);
                continue;
            }
        }
        *w++ = *s++;
    }
    *w = '\0';
}

void dip_storage_http_reason(long status, const char *body, char *out,
                             size_t outlen)
{
    char code[128], msg[256];
    dip_storage_xml_field(body, "Code", code, sizeof(code));
    dip_storage_xml_field(body, "Message", msg, sizeof(msg));
    snprintf(out, outlen, "HTTP %ld%s%s%s%s", status, code[0] ? " " : "", code,
             msg[0] ? ": " : "", msg);
}

int64_t dip_storage_part_size(int64_t total, int64_t want)
{
    int64_t part = want > 0 ? want : DIP_STORAGE_PART_SIZE;
    if (total < 0)
        return -1;
    /* ceil(total / part) <= PARTS_MAX */
    if (total > part * DIP_STORAGE_PARTS_MAX)
        part = (total + DIP_STORAGE_PARTS_MAX - 1) / DIP_STORAGE_PARTS_MAX;
    if (part > DIP_STORAGE_PART_MAX)
        return -1;
    return part;
}

static void xml_escape(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&':
            fputs("&amp;", f);
            break;
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        default:
            fputc(*s, f);
        }
    }
}

char *dip_storage_complete_xml(const dip_storage_part_t *parts, size_t n)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (f == NULL)
        return NULL;
    fputs("<CompleteMultipartUpload "
          "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">",
          f);
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "<Part><PartNumber>%d</PartNumber><ETag>", parts[i].number);
        xml_escape(f, parts[i].etag);
        fputs("</ETag></Part>", f);
    }
    fputs("</CompleteMultipartUpload>", f);
    if (ferror(f)) {
        fclose(f);
        free(buf);
        return NULL;
    }
    fclose(f);
    return buf;
}

char *dip_storage_upload_query(const char *upload_id, int part)
{
    char *enc = dip_sigv4_uri_encode(upload_id, strlen(upload_id), 0);
    char *q = NULL;
    int rc;
    if (enc == NULL)
        return NULL;
    rc = part > 0 ? asprintf(&q, "partNumber=%d&uploadId=%s", part, enc)
                  : asprintf(&q, "uploadId=%s", enc);
    free(enc);
    return rc < 0 ? NULL : q;
}
