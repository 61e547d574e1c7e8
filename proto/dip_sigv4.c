/*
 * dip_sigv4: builds AWS Signature Version 4 step by step (canonical request,
 * string to sign, signing key, signature) with OpenSSL's SHA-256 and HMAC.
 * Everything here is a pure function of its arguments, so the tests can hold
 * each step to AWS's published examples; the storage code supplies the clock,
 * the credentials and the request it is about to send.
 */
#include "dip_sigv4.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

/* A growing NUL-terminated string; `failed` sticks after the first ENOMEM so
 * callers check once at the end. */
typedef struct {
    char *s;
    size_t len, cap;
    int failed;
} strbuf_t;

static void sb_add(strbuf_t *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        char *p;
        while (cap < b->len + n + 1)
            cap *= 2;
        p = realloc(b->s, cap);
        if (p == NULL) {
            b->failed = 1;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void sb_str(strbuf_t *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

static void sb_char(strbuf_t *b, char c)
{
    sb_add(b, &c, 1);
}

/* Hands the string over, or NULL (and frees) when anything failed. */
static char *sb_take(strbuf_t *b)
{
    char *s;
    if (b->failed || b->s == NULL) {
        free(b->s);
        b->s = NULL;
        if (b->failed)
            return NULL;
        return strdup("");
    }
    s = b->s;
    b->s = NULL;
    return s;
}

static void hex(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

/* out may be key: the chained signing key reuses one buffer. */
static int hmac(const unsigned char *key, size_t keylen, const char *msg,
                unsigned char out[32])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    if (HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)msg,
             strlen(msg), md, &mdlen) == NULL ||
        mdlen != 32)
        return -1;
    memcpy(out, md, sizeof(md));
    return 0;
}

int dip_sigv4_amz_date(time_t when, char out[DIP_SIGV4_DATE_LEN])
{
    struct tm tm;
    if (gmtime_r(&when, &tm) == NULL || tm.tm_year + 1900 < 0 ||
        tm.tm_year + 1900 > 9999)
        return -1;
    if (strftime(out, DIP_SIGV4_DATE_LEN, "%Y%m%dT%H%M%SZ", &tm) !=
        DIP_SIGV4_DATE_LEN - 1)
        return -1;
    return 0;
}

char *dip_sigv4_uri_encode(const char *s, size_t len, int keep_slash)
{
    static const char digits[] = "0123456789ABCDEF";
    char *out = malloc(3 * len + 1), *o = out;
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
            (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
            c == '~' || (c == '/' && keep_slash)) {
            *o++ = (char)c;
        } else {
            *o++ = '%';
            *o++ = digits[c >> 4];
            *o++ = digits[c & 15];
        }
    }
    *o = '\0';
    return out;
}

void dip_sigv4_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1 ||
        mdlen != 32) {
        /* Only a broken libcrypto gets here; an empty result can never
         * match a real hash, so the request fails at the server. */
        out[0] = '\0';
        return;
    }
    hex(md, 32, out);
}

typedef struct {
    char *name; /* lowercased, malloc'd */
    const char *value;
    size_t value_len;
} canon_header_t;

static int cmp_header(const void *a, const void *b)
{
    return strcmp(((const canon_header_t *)a)->name,
                  ((const canon_header_t *)b)->name);
}

typedef struct {
    const char *name, *value;
    size_t name_len, value_len;
} query_param_t;

static int cmp_param(const void *a, const void *b)
{
    const query_param_t *x = a, *y = b;
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = memcmp(x->name, y->name, n);
    if (c == 0 && x->name_len != y->name_len)
        return x->name_len < y->name_len ? -1 : 1;
    if (c != 0)
        return c;
    n = x->value_len < y->value_len ? x->value_len : y->value_len;
    c = memcmp(x->value, y->value, n);
    if (c == 0 && x->value_len != y->value_len)
        return x->value_len < y->value_len ? -1 : 1;
    return c;
}

/* Parameters sorted by name, then value; a bare name gets "=". */
static void add_canonical_query(strbuf_t *b, const char *query)
{
    query_param_t *params = NULL;
    size_t n = 0, cap = 0;
    const char *p = query;
    if (query == NULL)
        return;
    while (*p) {
        const char *end = strchr(p, '&'), *eq;
        size_t partlen;
        if (end == NULL)
            end = p + strlen(p);
        partlen = (size_t)(end - p);
        if (partlen > 0) {
            if (n == cap) {
                size_t ncap = cap ? cap * 2 : 8;
                query_param_t *np = realloc(params, ncap * sizeof(*np));
                if (np == NULL) {
                    b->failed = 1;
                    goto cleanup;
                }
                params = np;
                cap = ncap;
            }
            eq = memchr(p, '=', partlen);
            params[n].name = p;
            params[n].name_len = eq ? (size_t)(eq - p) : partlen;
            params[n].value = eq ? eq + 1 : end;
            params[n].value_len = eq ? (size_t)(end - eq - 1) : 0;
            n++;
        }
        p = *end ? end + 1 : end;
    }
    if (n > 1)
        qsort(params, n, sizeof(*params), cmp_param);
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            sb_char(b, '&');
        sb_add(b, params[i].name, params[i].name_len);
        sb_char(b, '=');
        sb_add(b, params[i].value, params[i].value_len);
    }
cleanup:
    free(params);
}

/* Trims the value and collapses inner runs of spaces, as SigV4 asks. */
static void add_header_value(strbuf_t *b, const char *v)
{
    const char *end = v + strlen(v);
    int in_space = 0;
    while (*v == ' ' || *v == '\t')
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    for (; v < end; v++) {
        if (*v == ' ' || *v == '\t') {
            if (!in_space)
                sb_char(b, ' ');
            in_space = 1;
        } else {
            sb_char(b, *v);
            in_space = 0;
        }
    }
}

static char *lowercase(const char *s)
{
    char *d = strdup(s);
    if (d)
        for (char *p = d; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
    return d;
}

char *dip_sigv4_canonical_request(const dip_sigv4_request_t *req,
                                  char **signed_headers)
{
    strbuf_t b = {0}, sh = {0};
    canon_header_t *hs = NULL;
    size_t n = 0, total;
    char date[DIP_SIGV4_DATE_LEN];
    char *out = NULL;

    if (signed_headers)
        *signed_headers = NULL;
    if (req == NULL || req->method == NULL || req->host == NULL ||
        req->path == NULL || req->payload_hash == NULL ||
        (req->nheaders > 0 && req->headers == NULL) ||
        dip_sigv4_amz_date(req->when, date) < 0)
        return NULL;
    total = req->nheaders + 3;
    hs = calloc(total, sizeof(*hs));
    if (hs == NULL)
        goto cleanup;
    hs[n].name = strdup("host");
    hs[n].value = req->host;
    if (hs[n++].name == NULL)
        goto cleanup;
    hs[n].name = strdup("x-amz-date");
    hs[n].value = date;
    if (hs[n++].name == NULL)
        goto cleanup;
    if (req->security_token) {
        hs[n].name = strdup("x-amz-security-token");
        hs[n].value = req->security_token;
        if (hs[n++].name == NULL)
            goto cleanup;
    }
    for (size_t i = 0; i < req->nheaders; i++) {
        if (req->headers[i].name == NULL || req->headers[i].value == NULL)
            goto cleanup;
        hs[n].name = lowercase(req->headers[i].name);
        hs[n].value = req->headers[i].value;
        if (hs[n++].name == NULL)
            goto cleanup;
    }
    qsort(hs, n, sizeof(*hs), cmp_header);
    for (size_t i = 1; i < n; i++)
        if (strcmp(hs[i - 1].name, hs[i].name) == 0)
            goto cleanup;

    sb_str(&b, req->method);
    sb_char(&b, '\n');
    sb_str(&b, req->path[0] ? req->path : "/");
    sb_char(&b, '\n');
    add_canonical_query(&b, req->query);
    sb_char(&b, '\n');
    for (size_t i = 0; i < n; i++) {
        sb_str(&b, hs[i].name);
        sb_char(&b, ':');
        add_header_value(&b, hs[i].value);
        sb_char(&b, '\n');
        if (i > 0)
            sb_char(&sh, ';');
        sb_str(&sh, hs[i].name);
    }
    sb_char(&b, '\n');
    sb_add(&b, sh.s ? sh.s : "", sh.len);
    sb_char(&b, '\n');
    sb_str(&b, req->payload_hash);
    out = sb_take(&b);
    if (out && signed_headers) {
        *signed_headers = sb_take(&sh);
        if (*signed_headers == NULL) {
            free(out);
            out = NULL;
        }
    }
cleanup:
    for (size_t i = 0; hs && i < total; i++)
        free(hs[i].name);
    free(hs);
    free(b.s);
    free(sh.s);
    return out;
}

char *dip_sigv4_string_to_sign(const char *amz_date, const char *scope,
                               const char *canonical_request)
{
    char digest[65];
    char *out = NULL;
    if (amz_date == NULL || scope == NULL || canonical_request == NULL)
        return NULL;
    dip_sigv4_sha256_hex(canonical_request, strlen(canonical_request), digest);
    if (asprintf(&out, "AWS4-HMAC-SHA256\n%s\n%s\n%s", amz_date, scope,
                 digest) < 0)
        return NULL;
    return out;
}

char *dip_sigv4_scope(const char *amz_date, const dip_sigv4_credentials_t *cred)
{
    char *out = NULL;
    if (amz_date == NULL || strlen(amz_date) < 8 || cred == NULL ||
        cred->region == NULL || cred->service == NULL)
        return NULL;
    if (asprintf(&out, "%.8s/%s/%s/aws4_request", amz_date, cred->region,
                 cred->service) < 0)
        return NULL;
    return out;
}

int dip_sigv4_signing_key(const dip_sigv4_credentials_t *cred,
                          const char *yyyymmdd, unsigned char key[32])
{
    char *first = NULL;
    char date[9];
    int rc = -1;
    if (cred == NULL || cred->secret_key == NULL || cred->region == NULL ||
        cred->service == NULL || yyyymmdd == NULL || strlen(yyyymmdd) < 8)
        return -1;
    snprintf(date, sizeof(date), "%.8s", yyyymmdd);
    if (asprintf(&first, "AWS4%s", cred->secret_key) < 0) {
        first = NULL;
        goto cleanup;
    }
    if (hmac((const unsigned char *)first, strlen(first), date, key) < 0 ||
        hmac(key, 32, cred->region, key) < 0 ||
        hmac(key, 32, cred->service, key) < 0 ||
        hmac(key, 32, "aws4_request", key) < 0)
        goto cleanup;
    rc = 0;
cleanup:
    if (first) {
        memset(first, 0, strlen(first));
        free(first);
    }
    return rc;
}

char *dip_sigv4_authorization(const dip_sigv4_request_t *req,
                              const dip_sigv4_credentials_t *cred,
                              char signature[65])
{
    char *canonical = NULL, *signed_headers = NULL, *scope = NULL;
    char *to_sign = NULL, *out = NULL;
    char date[DIP_SIGV4_DATE_LEN], sig[65];
    unsigned char key[32], mac[32];

    if (cred == NULL || cred->access_key == NULL || req == NULL ||
        dip_sigv4_amz_date(req->when, date) < 0)
        goto cleanup;
    canonical = dip_sigv4_canonical_request(req, &signed_headers);
    scope = dip_sigv4_scope(date, cred);
    if (canonical == NULL || scope == NULL)
        goto cleanup;
    to_sign = dip_sigv4_string_to_sign(date, scope, canonical);
    if (to_sign == NULL || dip_sigv4_signing_key(cred, date, key) < 0 ||
        hmac(key, sizeof(key), to_sign, mac) < 0)
        goto cleanup;
    hex(mac, sizeof(mac), sig);
    if (asprintf(&out,
                 "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, "
                 "Signature=%s",
                 cred->access_key, scope, signed_headers, sig) < 0) {
        out = NULL;
        goto cleanup;
    }
    if (signature)
        memcpy(signature, sig, sizeof(sig));
cleanup:
    memset(key, 0, sizeof(key));
    free(canonical);
    free(signed_headers);
    free(scope);
    free(to_sign);
    return out;
}
