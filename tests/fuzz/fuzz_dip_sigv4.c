/*
 * Fuzz target for dip_sigv4 and the key check of dip_storage_io: keys and
 * query strings from the input must never crash the signer, URI encoding
 * must be reversible and use only unreserved characters and %XX, and a key
 * that passes the check never holds a '..' segment.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dip_sigv4.h"
#include "dip_storage_io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int unhex(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

static void check_encoding(const char *s, size_t n)
{
    char *enc = dip_sigv4_uri_encode(s, n, 1);
    size_t j = 0;
    if (enc == NULL)
        return;
    for (const char *p = enc; *p; p++) {
        char c;
        if (*p == '%') {
            int hi = unhex(p[1]), lo = hi < 0 ? -1 : unhex(p[2]);
            if (lo < 0)
                __builtin_trap();
            c = (char)(hi * 16 + lo);
            p += 2;
        } else {
            c = *p;
            if (strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                       "0123456789-._~/",
                       c) == NULL)
                __builtin_trap();
        }
        if (j >= n || s[j++] != c)
            __builtin_trap();
    }
    if (j != n)
        __builtin_trap();
    free(enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    char err[256];
    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    check_encoding(s, size);
    if (dip_storage_check_key(s, size, err, sizeof(err)) == DIP_STORAGE_OK) {
        /* No segment of an accepted key is ".." under either separator. */
        for (size_t i = 0; i + 1 < size; i++)
            if (s[i] == '.' && s[i + 1] == '.' &&
                (i == 0 || s[i - 1] == '/' || s[i - 1] == '\\') &&
                (i + 2 == size || s[i + 2] == '/' || s[i + 2] == '\\'))
                __builtin_trap();
        if (s[0] == '/' || s[0] == '\\')
            __builtin_trap();
    }
    {
        const dip_sigv4_header_t h[] = {{"x-amz-meta-v", s}};
        const dip_sigv4_request_t req = {
            "GET", "h", "/b/k", s, h, 1, "UNSIGNED-PAYLOAD", 0, s};
        const dip_sigv4_credentials_t cred = {"A", "S", "us-east-1", "s3"};
        char sig1[65], sig2[65];
        char *a = dip_sigv4_authorization(&req, &cred, sig1);
        char *b = dip_sigv4_authorization(&req, &cred, sig2);
        if ((a == NULL) != (b == NULL) || (a && strcmp(sig1, sig2) != 0))
            __builtin_trap();
        free(a);
        free(b);
    }
    free(s);
    return 0;
}
