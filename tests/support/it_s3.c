/*
 * it_s3: a loopback HTTP server that answers as S3 would, or as a failing
 * S3 would, one detached thread per connection, each answer closed after
 * it is sent (Connection: close).
 */
#include "it_s3.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct conn {
    it_s3_t *s;
    int fd;
} conn_t;

static void send_all(int fd, const char *b, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        b += w;
        n -= (size_t)w;
    }
}

static it_s3_object_t *find(it_s3_t *s, const char *key)
{
    for (int i = 0; i < s->nobj; i++)
        if (strcmp(s->obj[i].key, key) == 0)
            return &s->obj[i];
    return NULL;
}

static int mode_of(it_s3_t *s, it_s3_object_t *o)
{
    int m;
    pthread_mutex_lock(&s->mu);
    m = o->mode;
    pthread_mutex_unlock(&s->mu);
    return m;
}

/* Waits up to ms; 1 when the answer must end: the client closed, the
 * server stops, or the object was released from mode `held`. */
static int must_end(it_s3_t *s, int fd, it_s3_object_t *o, int held, int ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    char c;
    if (atomic_load(&s->stop) || mode_of(s, o) != held)
        return 1;
    if (poll(&p, 1, ms) > 0 && recv(fd, &c, 1, MSG_DONTWAIT) <= 0)
        return 1;
    return atomic_load(&s->stop) || mode_of(s, o) != held;
}

static void head(int fd, int status, const char *etag, size_t from, size_t n)
{
    char h[512];
    int hl;
    if (status == 206)
        hl = snprintf(h, sizeof(h),
                      "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes "
                      "%zu-%zu/%zu\r\nContent-Length: %zu\r\nETag: \"%s\"\r\n"
                      "Connection: close\r\n\r\n",
                      from, n - 1, n, n - from, etag);
    else
        hl = snprintf(h, sizeof(h),
                      "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nETag: "
                      "\"%s\"\r\nConnection: close\r\n\r\n",
                      n, etag);
    send_all(fd, h, (size_t)hl);
}

static void get(it_s3_t *s, int fd, it_s3_object_t *o, long long range)
{
    size_t from = range > 0 ? (size_t)range : 0;
    int mode, nth;
    pthread_mutex_lock(&s->mu);
    mode = o->mode;
    nth = ++o->gets;
    pthread_mutex_unlock(&s->mu);
    if (from > o->n) {
        const char *r = "HTTP/1.1 416 Range Not Satisfiable\r\n"
                        "Content-Length: 0\r\nConnection: close\r\n\r\n";
        send_all(fd, r, strlen(r));
        return;
    }
    switch (mode) {
    case IT_S3_SPLICE:
        if (nth == 1) {
            head(fd, 200, "v1", 0, o->n);
            send_all(fd, o->v1, o->n / 2);
        } else {
            head(fd, range >= 0 ? 206 : 200, "v2", from, o->n);
            send_all(fd, o->v2 + from, o->n - from);
        }
        return;
    case IT_S3_HOLD:
        head(fd, range >= 0 ? 206 : 200, "v1", from, o->n);
        if (from < o->n / 2)
            send_all(fd, o->v1 + from, o->n / 2 - from);
        while (!must_end(s, fd, o, mode, 100))
            ;
        return;
    case IT_S3_SILENT:
        while (!must_end(s, fd, o, mode, 100))
            ;
        return;
    case IT_S3_TRICKLE:
        head(fd, range >= 0 ? 206 : 200, "v1", from, o->n);
        for (size_t at = from; at < o->n; at += 3) {
            send_all(fd, o->v1 + at, o->n - at < 3 ? o->n - at : 3);
            if (must_end(s, fd, o, mode, 1000))
                return;
        }
        return;
    default:
        head(fd, range >= 0 ? 206 : 200, "v1", from, o->n);
        send_all(fd, o->v1 + from, o->n - from);
        return;
    }
}

static void *serve(void *arg)
{
    conn_t *c = arg;
    it_s3_t *s = c->s;
    char req[8192], key[300];
    size_t got = 0, body = 0;
    char *end = NULL, *p;
    long long range = -1;
    while (end == NULL && got < sizeof(req) - 1) {
        ssize_t r = recv(c->fd, req + got, sizeof(req) - 1 - got, 0);
        if (r <= 0)
            goto done;
        got += (size_t)r;
        req[got] = '\0';
        end = strstr(req, "\r\n\r\n");
    }
    if (end == NULL)
        goto done;
    if ((p = strcasestr(req, "\r\nrange: bytes=")) != NULL && p < end)
        range = strtoll(p + 15, NULL, 10);
    if ((p = strcasestr(req, "\r\ncontent-length: ")) != NULL && p < end)
        body = (size_t)strtoull(p + 18, NULL, 10);
    if (strncmp(req, "GET /", 5) == 0 &&
        sscanf(req + 5, "%*[^/]/%299[^ ?]", key) == 1) {
        it_s3_object_t *o;
        pthread_mutex_lock(&s->mu);
        o = find(s, key);
        pthread_mutex_unlock(&s->mu);
        if (o) {
            get(s, c->fd, o, range);
        } else {
            const char *xml = "<Error><Code>NoSuchKey</Code><Message>no "
                              "such key</Message></Error>";
            char nf[256];
            int nl = snprintf(nf, sizeof(nf),
                              "HTTP/1.1 404 Not Found\r\nContent-Length: "
                              "%zu\r\nConnection: close\r\n\r\n%s",
                              strlen(xml), xml);
            send_all(c->fd, nf, (size_t)nl);
        }
    } else {
        /* PUT and DELETE succeed, unless denied; the body is read and
         * dropped. */
        static const char denied[] =
            "HTTP/1.1 403 Forbidden\r\nContent-Length: 73\r\n"
            "Connection: close\r\n\r\n<Error><Code>AccessDenied</Code>"
            "<Message>Access Denied</Message></Error>\n";
        int del = strncmp(req, "DELETE", 6) == 0;
        const char *ok = del ? "HTTP/1.1 204 No Content\r\n"
                               "Connection: close\r\n\r\n"
                             : "HTTP/1.1 200 OK\r\nETag: \"put\"\r\n"
                               "Content-Length: 0\r\nConnection: close\r\n\r\n";
        atomic_fetch_add(del ? &s->deletes : &s->puts, 1);
        if (atomic_load(del ? &s->deny_delete : &s->deny_put))
            ok = denied;
        size_t have = got - (size_t)(end + 4 - req);
        while (have < body) {
            ssize_t r = recv(c->fd, req, sizeof(req), 0);
            if (r <= 0)
                break;
            have += (size_t)r;
        }
        send_all(c->fd, ok, strlen(ok));
    }
done:
    shutdown(c->fd, SHUT_WR);
    close(c->fd);
    atomic_fetch_sub(&s->conns, 1);
    free(c);
    return NULL;
}

static void *accept_loop(void *arg)
{
    it_s3_t *s = arg;
    while (!atomic_load(&s->stop)) {
        struct pollfd p = {s->fd, POLLIN, 0};
        pthread_t t;
        conn_t *c;
        int fd;
        if (poll(&p, 1, 50) <= 0)
            continue;
        fd = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        c = malloc(sizeof(*c));
        if (c == NULL) {
            close(fd);
            continue;
        }
        c->s = s;
        c->fd = fd;
        atomic_fetch_add(&s->conns, 1);
        if (pthread_create(&t, NULL, serve, c) != 0) {
            atomic_fetch_sub(&s->conns, 1);
            close(fd);
            free(c);
            continue;
        }
        pthread_detach(t);
    }
    return NULL;
}

void it_s3_start(it_s3_t *s)
{
    struct sockaddr_in a = {0};
    socklen_t al = sizeof(a);
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    atomic_init(&s->stop, 0);
    atomic_init(&s->conns, 0);
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true(s->fd >= 0);
    assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s->fd, 64), 0);
    assert_int_equal(getsockname(s->fd, (struct sockaddr *)&a, &al), 0);
    s->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&s->thread, NULL, accept_loop, s), 0);
}

void it_s3_stop(it_s3_t *s)
{
    atomic_store(&s->stop, 1);
    pthread_join(s->thread, NULL);
    /* Held answers look at stop every 100 ms. */
    while (atomic_load(&s->conns) > 0)
        usleep(10000);
    close(s->fd);
    for (int i = 0; i < s->nobj; i++) {
        free(s->obj[i].v1);
        free(s->obj[i].v2);
    }
    pthread_mutex_destroy(&s->mu);
}

void it_s3_endpoint(const it_s3_t *s, char *buf, size_t len)
{
    snprintf(buf, len, "http://127.0.0.1:%d", s->port);
}

void it_s3_add(it_s3_t *s, const char *key, const char *data, const char *other,
               size_t len, it_s3_mode_t mode)
{
    it_s3_object_t *o;
    pthread_mutex_lock(&s->mu);
    assert_true(s->nobj < IT_S3_MAX_OBJECTS);
    o = &s->obj[s->nobj];
    snprintf(o->key, sizeof(o->key), "%s", key);
    o->v1 = malloc(len + 1);
    o->v2 = malloc(len + 1);
    assert_non_null(o->v1);
    assert_non_null(o->v2);
    memcpy(o->v1, data, len);
    memcpy(o->v2, other ? other : data, len);
    o->n = len;
    o->mode = (int)mode;
    s->nobj++;
    pthread_mutex_unlock(&s->mu);
}

int it_s3_gets(it_s3_t *s, const char *key)
{
    it_s3_object_t *o;
    int n;
    pthread_mutex_lock(&s->mu);
    o = find(s, key);
    n = o ? o->gets : -1;
    pthread_mutex_unlock(&s->mu);
    return n;
}

void it_s3_release(it_s3_t *s, const char *key)
{
    it_s3_object_t *o;
    pthread_mutex_lock(&s->mu);
    o = find(s, key);
    if (o)
        o->mode = IT_S3_SERVE;
    pthread_mutex_unlock(&s->mu);
}
