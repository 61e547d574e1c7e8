/*
 * it_http: an HTTP receiver for tests, standing in for the CRM's webhook
 * endpoint: it listens on a loopback port chosen at start, answers the nth
 * request with the nth status of a script (200 past its end), and keeps
 * each request's bearer token, Idempotency-Key and body. One connection at
 * a time, each closed after its answer.
 */
#ifndef IT_HTTP_H
#define IT_HTTP_H

#include <pthread.h>

#define IT_HTTP_MAX_REQ 16

typedef struct it_http_request {
    char auth[2048]; /* the token after "Authorization: Bearer " */
    char key[64];    /* Idempotency-Key */
    char *body;
} it_http_request_t;

typedef struct it_http {
    int fd;
    int port;
    int statuses[IT_HTTP_MAX_REQ]; /* nth answer; 0 ends the script */
    it_http_request_t req[IT_HTTP_MAX_REQ];
    int nreq;
    int stop;
    pthread_mutex_t mu;
    pthread_t thread;
} it_http_t;

/* statuses: 0-terminated, may be NULL (always 200). Asserts on failure. */
void it_http_start(it_http_t *rx, const int *statuses);
void it_http_stop(it_http_t *rx);
/* Requests received so far (read under the lock). */
int it_http_count(it_http_t *rx);

#endif
