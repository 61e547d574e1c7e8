/*
 * dip_sigv4: AWS Signature Version 4 as pure functions (no I/O, no clock):
 * the canonical request, the string to sign, the signing key and the
 * Authorization header value of one request, plus the URI encoding S3 wants
 * for object keys. The storage code signs its own requests with these rather
 * than libcurl's CURLOPT_AWS_SIGV4 so that every step can be checked against
 * AWS's published examples. Strings returned as `char *` are malloc'd and
 * owned by the caller (free()); NULL means out of memory or invalid input.
 */
#ifndef DIP_SIGV4_H
#define DIP_SIGV4_H

#include <stddef.h>
#include <time.h>

/* SHA-256 of the empty string: the payload hash of a body-less request. */
#define DIP_SIGV4_EMPTY_SHA256                                                 \
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
/* The payload hash S3 accepts when the body is not hashed. */
#define DIP_SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"

/* "YYYYMMDDTHHMMSSZ" plus NUL. */
#define DIP_SIGV4_DATE_LEN 17

typedef struct dip_sigv4_header {
    const char *name;  /* any case; signed lowercased */
    const char *value; /* signed trimmed, inner runs of spaces collapsed */
} dip_sigv4_header_t;

typedef struct dip_sigv4_request {
    const char *method; /* "GET", "PUT", ... */
    const char *host;   /* the Host header sent, with ":port" if sent so */
    /* The path exactly as sent, already URI-encoded (see
     * dip_sigv4_uri_encode); S3 signs it as is, without double encoding. */
    const char *path;
    /* The query as sent, without '?', each name and value already encoded:
     * "max-keys=2&prefix=J", "lifecycle"; NULL or "" for none. */
    const char *query;
    /* Further headers to sign, names unique; host and x-amz-date are added
     * from `host` and `when` and must not be listed here. For S3 list
     * x-amz-content-sha256 here. */
    const dip_sigv4_header_t *headers;
    size_t nheaders;
    /* Lowercase hex SHA-256 of the body, or DIP_SIGV4_UNSIGNED_PAYLOAD. */
    const char *payload_hash;
    time_t when; /* the request's time, sent as x-amz-date */
    /* Temporary credentials' session token (STS, an instance role), or
     * NULL: signed as the header x-amz-security-token, which the caller
     * sends with this same value (SigV4 requires it among the signed
     * headers for S3); must not be listed in headers too. */
    const char *security_token;
} dip_sigv4_request_t;

typedef struct dip_sigv4_credentials {
    const char *access_key;
    const char *secret_key;
    const char *region;  /* "us-east-1" */
    const char *service; /* "s3" */
} dip_sigv4_credentials_t;

/* Writes `when` as "20130524T000000Z" (UTC). Returns 0, or -1 when the time
 * cannot be represented. */
int dip_sigv4_amz_date(time_t when, char out[DIP_SIGV4_DATE_LEN]);

/* Percent-encodes len bytes of s as S3 wants a URI: RFC 3986 unreserved
 * characters (A-Z a-z 0-9 - . _ ~) are kept, every other byte becomes %XX
 * with uppercase hex (so UTF-8 letters are encoded byte by byte); '/' is kept
 * when keep_slash is non-zero (paths) and encoded otherwise (query values). */
char *dip_sigv4_uri_encode(const char *s, size_t len, int keep_slash);

/* Lowercase hex SHA-256 of len bytes; out receives 64 digits and a NUL. */
void dip_sigv4_sha256_hex(const void *data, size_t len, char out[65]);

/* The canonical request of req. When signed_headers is not NULL it receives
 * the ';'-separated list of signed header names (malloc'd, caller frees).
 * Returns NULL when a header is listed twice or names host/x-amz-date (or
 * x-amz-security-token while security_token is set). */
char *dip_sigv4_canonical_request(const dip_sigv4_request_t *req,
                                  char **signed_headers);

/* "AWS4-HMAC-SHA256\n<amz_date>\n<scope>\n<hex sha256 of canonical>". */
char *dip_sigv4_string_to_sign(const char *amz_date, const char *scope,
                               const char *canonical_request);

/* The credential scope "<yyyymmdd>/<region>/<service>/aws4_request" for the
 * date part of amz_date. */
char *dip_sigv4_scope(const char *amz_date,
                      const dip_sigv4_credentials_t *cred);

/* The signing key HMAC(HMAC(HMAC(HMAC("AWS4"+secret, yyyymmdd), region),
 * service), "aws4_request") into key. Returns 0 or -1. */
int dip_sigv4_signing_key(const dip_sigv4_credentials_t *cred,
                          const char *yyyymmdd, unsigned char key[32]);

/* The value of the Authorization header: "AWS4-HMAC-SHA256
 * Credential=<access>/<scope>, SignedHeaders=<list>, Signature=<hex>".
 * When signature is not NULL it receives the 64 hex digits alone. */
char *dip_sigv4_authorization(const dip_sigv4_request_t *req,
                              const dip_sigv4_credentials_t *cred,
                              char signature[65]);

#endif
