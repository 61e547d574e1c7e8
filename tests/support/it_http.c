/*
 * it_http: a small HTTP/1.1 receiver in a thread of the test process (see
 * it_http.h).
 */
#include "it_http.h"

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
#include <sys/socket.h>
#include <unistd.h>

static void header_value(const char *head, const char *name, char *out,
                         size_t len)
{
    const char *p = strcasestr(head, name);
    size_t n;
    out[0] = '\0';
    if (p == NULL)
        return;
    p += strlen(name);
    while (*p == ' ')
        p++;
    n = strcspn(p, "\r\n");
    if (n >= len)
        n = len - 1;
    memcpy(out, p, n);
    out[n] = '\0';
}

static void serve_one(it_http_t *rx, int c)
{
    char buf[65536];
    size_t got = 0;
    char *end = NULL, clen[32];
    long want;
    int status;
    it_http_request_t *r;
    char reply[128];
    while (got < sizeof(buf) - 1) {
        ssize_t n = recv(c, buf + got, sizeof(buf) - 1 - got, 0);
        if (n <= 0)
            return;
        got += (size_t)n;
        buf[got] = '\0';
        if ((end = strstr(buf, "\r\n\r\n")) != NULL) {
            header_value(buf, "Content-Length:", clen, sizeof(clen));
            want = atol(clen);
            if ((long)(got - (size_t)(end + 4 - buf)) >= want)
                break;
        }
    }
    if (end == NULL)
        return;
    *end = '\0';
    pthread_mutex_lock(&rx->mu);
    if (rx->nreq < IT_HTTP_MAX_REQ) {
        r = &rx->req[rx->nreq];
        header_value(buf, "Authorization: Bearer", r->auth, sizeof(r->auth));
        header_value(buf, "Idempotency-Key:", r->key, sizeof(r->key));
        r->body = strdup(end + 4);
        status = rx->statuses[rx->nreq] ? rx->statuses[rx->nreq] : 200;
        rx->nreq++;
    } else {
        status = 500;
    }
    pthread_mutex_unlock(&rx->mu);
    snprintf(reply, sizeof(reply),
             "HTTP/1.1 %d X\r\nContent-Length: 2\r\nConnection: close\r\n"
             "\r\nok",
             status);
    (void)!write(c, reply, strlen(reply));
}

static void *serve(void *arg)
{
    it_http_t *rx = arg;
    for (;;) {
        struct pollfd p = {.fd = rx->fd, .events = POLLIN};
        int c;
        if (__atomic_load_n(&rx->stop, __ATOMIC_SEQ_CST))
            break;
        if (poll(&p, 1, 50) <= 0)
            continue;
        c = accept(rx->fd, NULL, NULL);
        if (c < 0)
            continue;
        serve_one(rx, c);
        close(c);
    }
    return NULL;
}

void it_http_start(it_http_t *rx, const int *statuses)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    memset(rx, 0, sizeof(*rx));
    for (int i = 0; statuses && statuses[i] && i < IT_HTTP_MAX_REQ; i++)
        rx->statuses[i] = statuses[i];
    pthread_mutex_init(&rx->mu, NULL);
    rx->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(rx->fd >= 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(rx->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(rx->fd, 16), 0);
    assert_int_equal(getsockname(rx->fd, (struct sockaddr *)&a, &alen), 0);
    rx->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&rx->thread, NULL, serve, rx), 0);
}

void it_http_stop(it_http_t *rx)
{
    __atomic_store_n(&rx->stop, 1, __ATOMIC_SEQ_CST);
    pthread_join(rx->thread, NULL);
    close(rx->fd);
    for (int i = 0; i < rx->nreq; i++)
        free(rx->req[i].body);
    pthread_mutex_destroy(&rx->mu);
}

int it_http_count(it_http_t *rx)
{
    int n;
    pthread_mutex_lock(&rx->mu);
    n = rx->nreq;
    pthread_mutex_unlock(&rx->mu);
    return n;
}
