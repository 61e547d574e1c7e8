/*
 * dip_storage: the pure rules of object storage, shared by the file:// and
 * S3 backends (dip_storage_file_io, dip_storage_s3_io) and checked without
 * any I/O: which keys are allowed, how an S3 endpoint and bucket are read
 * from the settings, how an object's path and a Range header are written
 * and a Content-Range read, which failures are worth retrying and how long
 * to wait before the next try, what an S3 error body says, and how an
 * upload is cut into multipart parts and completed. Strings returned as
 * `char *` are malloc'd and owned by the caller.
 */
#ifndef DIP_STORAGE_H
#define DIP_STORAGE_H

#include <stddef.h>
#include <stdint.h>

enum {
    DIP_STORAGE_OK = 0,
    DIP_STORAGE_EINVAL = -1,     /* bad key (or bad argument) */
    DIP_STORAGE_ENOTFOUND = -2,  /* no such object */
    DIP_STORAGE_EDENIED = -3,    /* 401/403, or a file not readable */
    DIP_STORAGE_ETRANSIENT = -4, /* retries exhausted */
    DIP_STORAGE_EABORT = -5,     /* the sink asked to stop */
    DIP_STORAGE_EFAIL = -6,      /* other permanent failure */
    DIP_STORAGE_ECHANGED = -7,   /* a response was of another version */
};

/* The slowest transfer that is not stalled: under DIP_STORAGE_STALL_BPS
 * bytes a second, averaged over DIP_STORAGE_STALL_S seconds, a request is
 * cut (a server that accepts and never answers, or trickles) and the try
 * counts as a transient failure. A try that delivered less than the two
 * multiplied does not earn its attempts back. */
#define DIP_STORAGE_STALL_BPS 1024L
#define DIP_STORAGE_STALL_S 60L

typedef struct dip_storage_sink {
    void *arg;
    /* Called once, before any data, with the object's total size (-1 when
     * unknown). May be NULL. */
    void (*size)(void *arg, int64_t total);
    /* Called with consecutive bytes; return 0 to go on, non-zero to stop
     * (the download then ends with DIP_STORAGE_EABORT). */
    int (*data)(void *arg, const char *buf, size_t len);
    /* Called once, before any data, with what identifies this version of
     * the object: S3's ETag (size and mtime_ns -1), or for file:// "" and
     * the file's size and modification time in ns. May be NULL. Every
     * later response (S3's resumed ones) or read (file://) is compared
     * with it by storage itself: a difference ends the download with
     * DIP_STORAGE_ECHANGED before a byte of it reaches data. */
    void (*identity)(void *arg, const char *etag, int64_t size,
                     int64_t mtime_ns);
} dip_storage_sink_t;

/* Longest key accepted, in bytes (S3's limit). */
#define DIP_STORAGE_KEY_MAX 1024

/* Uploads larger than this go to S3 as a multipart upload; smaller ones as
 * one PUT. */
#define DIP_STORAGE_MULTIPART_THRESHOLD ((int64_t)64 * 1024 * 1024)
/* The part size aimed at, and S3's limits on parts: every part but the last
 * at least 5 MiB, at most 5 GiB, at most 10,000 parts. */
#define DIP_STORAGE_PART_SIZE ((int64_t)16 * 1024 * 1024)
#define DIP_STORAGE_PART_MIN ((int64_t)5 * 1024 * 1024)
#define DIP_STORAGE_PART_MAX ((int64_t)5 * 1024 * 1024 * 1024)
#define DIP_STORAGE_PARTS_MAX 10000

/* Keys are confined to their storage: an empty key, an absolute one ('/...'
 * or '\...'), a '.' or '..' segment (with '/' or '\' as separator), a NUL
 * byte or other control character within key_len bytes, or more than
 * DIP_STORAGE_KEY_MAX bytes fail with DIP_STORAGE_EINVAL and a sentence
 * (err may be NULL). */
int dip_storage_check_key(const char *key, size_t key_len, char *err,
                          size_t errlen);

/* An S3 endpoint "http[s]://host[:port][/path]" split for requests: origin
 * "http://host:port" (the URL prefix), host "host:port" lowercased (sent and
 * signed as Host), base_path "" or "/path" without trailing '/'. */
typedef struct dip_storage_endpoint {
    char *origin, *host, *base_path;
} dip_storage_endpoint_t;

/* Fills ep from the endpoint URL; on failure returns -1 with a sentence
 * naming DEALIMPORT_S3_ENDPOINT. Release with dip_storage_endpoint_release
 * either way. */
int dip_storage_parse_endpoint(const char *url, dip_storage_endpoint_t *ep,
                               char *err, size_t errlen);
void dip_storage_endpoint_release(dip_storage_endpoint_t *ep);

/* The bucket of a storage URL "s3://bucket[/]" (letters, digits, '.', '-',
 * '_', 1 to 255 of them), malloc'd; NULL with a sentence otherwise (or out
 * of memory). */
char *dip_storage_parse_bucket(const char *url, char *err, size_t errlen);

/* The request path of an object: base_path "/" bucket "/" key, the key
 * URI-encoded with its '/' kept. */
char *dip_storage_object_path(const char *base_path, const char *bucket,
                              const char *key);

/* "bytes=<from>-" into out. */
void dip_storage_range_header(uint64_t from, char *out, size_t outlen);

/* Reads a Content-Range value "bytes 10-99/100" or "bytes * /100" (without
 * the header name). *first and *total are -1 where absent. Returns 0, or -1
 * when the value is not a byte range. */
int dip_storage_parse_content_range(const char *value, int64_t *first,
                                    int64_t *total);

/* 1 when a failure is worth another try: a libcurl code meaning the
 * connection could not be made or broke (resolve, connect, partial file,
 * timeout, send, receive, empty reply, TLS handshake, HTTP/2 and /3 stream
 * errors); an HTTP status 408, 429 or 5xx. 0 otherwise. */
int dip_storage_transient_curl(int curl_code);
int dip_storage_transient_http(long status);

/* The wait before try `failures`+1: base_ms doubled per failure after the
 * first, at most 10 minutes, then moved by up to +-25% with `random` (any
 * value from rand_r) so that workers that failed together do not retry
 * together. 0 when base_ms <= 0. */
long dip_storage_backoff_ms(long base_ms, int failures, unsigned int random);

/* The text between <tag> and </tag> in an XML body (the first such pair),
 * cut to fit out; "" when absent. */
void dip_storage_xml_field(const char *body, const char *tag, char *out,
                           size_t outlen);

/* Decodes XML's five predefined entities (&amp; &lt; &gt; &quot; &apos;)
 * in place; other '&' text is left as it is. */
void dip_storage_xml_unescape(char *s);

/* "HTTP 403 AccessDenied: Access Denied" from a status and an S3 error body
 * (body may be NULL or not XML). */
void dip_storage_http_reason(long status, const char *body, char *out,
                             size_t outlen);

/* The part size for a multipart upload of `total` bytes: `want` (at least
 * DIP_STORAGE_PART_MIN unless the caller asks for less, which only a test
 * server accepts), raised so that the parts number at most
 * DIP_STORAGE_PARTS_MAX. -1 when total cannot be uploaded in parts (over
 * 10,000 parts of DIP_STORAGE_PART_MAX). */
int64_t dip_storage_part_size(int64_t total, int64_t want);

/* One uploaded part: its number (1..10,000) and the ETag S3 returned for
 * it, quotes included. */
typedef struct dip_storage_part {
    int number;
    char etag[128];
} dip_storage_part_t;

/* The CompleteMultipartUpload body naming the parts in order, with the
 * ETags XML-escaped. */
char *dip_storage_complete_xml(const dip_storage_part_t *parts, size_t n);

/* The query of a request on an upload: "uploadId=<enc>" or, with part > 0,
 * "partNumber=<part>&uploadId=<enc>", the id URI-encoded. */
char *dip_storage_upload_query(const char *upload_id, int part);

#endif
