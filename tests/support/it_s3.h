/*
 * it_s3: a scripted S3 server for integration tests, standing in for a
 * storage that fails the way real ones and the proxies in front of them do.
 * It listens on a loopback port chosen at start, serves path-style
 * GET /<bucket>/<key> from objects the test gives it (signatures are not
 * checked), answers PUT 200 and DELETE 204 (or 403, deny_put and
 * deny_delete), and one thread per connection,
 * so a stalled answer holds only its own request. Each object has a
 * behaviour; it_s3_release turns any of them into IT_S3_SERVE, and ends
 * the answers it is holding (the client sees them cut).
 */
#ifndef IT_S3_H
#define IT_S3_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

typedef enum {
    IT_S3_SERVE,  /* 200, or 206 for a Range, ETag "v1" */
    IT_S3_SPLICE, /* the first GET: 200 "v1" cut at half; every later one
                     is of the other object: 206 for a Range, ETag "v2",
                     whatever If-Match says */
    IT_S3_HOLD,   /* sends up to half of the object, then holds the answer
                     open without another byte */
    IT_S3_SILENT, /* reads the request and never answers */
    IT_S3_TRICKLE /* answers 3 bytes a second */
} it_s3_mode_t;

#define IT_S3_MAX_OBJECTS 16

typedef struct it_s3_object {
    char key[256];
    char *v1, *v2; /* the object, and what replaces it (IT_S3_SPLICE) */
    size_t n;      /* both have n bytes */
    int mode;      /* it_s3_mode_t, under mu */
    int gets;      /* GET requests received, under mu */
} it_s3_object_t;

typedef struct it_s3 {
    int fd, port;
    atomic_int stop;
    atomic_int conns; /* connection threads running */
    /* set: every PUT, or every DELETE, is answered 403 AccessDenied (a
     * least-privilege policy) */
    atomic_int deny_put, deny_delete;
    atomic_int puts, deletes; /* requests received */
    pthread_t thread;
    pthread_mutex_t mu;
    it_s3_object_t obj[IT_S3_MAX_OBJECTS];
    int nobj;
} it_s3_t;

/* Starts the server. Asserts on failure. */
void it_s3_start(it_s3_t *s);
/* Stops it: every held answer ends, every thread is waited for. */
void it_s3_stop(it_s3_t *s);
/* "http://127.0.0.1:<port>" into buf. */
void it_s3_endpoint(const it_s3_t *s, char *buf, size_t len);
/* Adds the object key (copies the bytes; other may be NULL but for
 * IT_S3_SPLICE, where it must have len bytes too). */
void it_s3_add(it_s3_t *s, const char *key, const char *data, const char *other,
               size_t len, it_s3_mode_t mode);
/* GET requests received for key so far. */
int it_s3_gets(it_s3_t *s, const char *key);
/* From now on key is served whole (IT_S3_SERVE); held answers end. */
void it_s3_release(it_s3_t *s, const char *key);

#endif
