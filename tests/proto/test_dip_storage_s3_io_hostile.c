/*
 * Tests dip_storage_s3_io against servers that lie, stall or trickle (a
 * scripted HTTP server on a loopback thread, one connection at a time):
 * - a resume answered from another object (206 or 200 with another ETag,
 *   206 without one, another size, 412) ends DIP_STORAGE_ECHANGED with the
 *   sink holding only the first object's bytes;
 * - a server that accepts and never answers, and a retry's backoff, end
 *   DIP_STORAGE_EABORT once the stop function says so;
 * - a server that trickles 3 bytes a second is cut by the low-speed limit
 *   and its tries use up the attempts instead of earning them back.
 * Failure classes: 7 (stall, trickle: every wait has a deadline and a stop
 * reaches it), 8 (another object on a resume).
 */
#include "storage_test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <time.h>

enum {
    S_SPLICE_206, /* the resume: 206 from an object with another ETag */
    S_SPLICE_200, /* the resume: Range ignored, 200 of another object */
    S_NO_ETAG,    /* the resume: 206 without an ETag */
    S_SIZE,       /* no ETags; the resume's Content-Range names another size */
    S_412,        /* the resume: 412 Precondition Failed */
    S_STALL,      /* reads the request, never answers */
    S_TRICKLE,    /* 200, then 3 bytes a second */
    S_503,        /* always 503 */
};

typedef struct {
    int lfd, port, mode;
    pthread_t th;
    atomic_int stop;
    atomic_int nreq;
    atomic_int done;     /* connections answered and closed */
    const char *v1, *v2; /* the object, and the one that replaces it */
    size_t n, cut;
} hsrv_t;

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

/* Waits up to ms for the client to close (1) or the test to end. */
static int client_gone(hsrv_t *s, int fd, int ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    char c;
    if (atomic_load(&s->stop))
        return 1;
    if (poll(&p, 1, ms) <= 0)
        return 0;
    return recv(fd, &c, 1, MSG_DONTWAIT) <= 0;
}

static void answer(int fd, const char *status, const char *etag,
                   const char *range, const char *body, size_t n)
{
    char h[512];
    int hl = snprintf(h, sizeof(h),
                      "HTTP/1.1 %s\r\nContent-Length: %zu\r\n%s%s%s%s%s%s"
                      "Connection: close\r\n\r\n",
                      status, n, etag ? "ETag: " : "", etag ? etag : "",
                      etag ? "\r\n" : "", range ? "Content-Range: " : "",
                      range ? range : "", range ? "\r\n" : "");
    send_all(fd, h, (size_t)hl);
    send_all(fd, body, n);
}

static void serve(hsrv_t *s, int fd)
{
    char head[4096], range[128];
    size_t got = 0, from = 0;
    const char *p;
    int idx = atomic_fetch_add(&s->nreq, 1);
    while (got < sizeof(head) - 1) {
        ssize_t r = recv(fd, head + got, sizeof(head) - 1 - got, 0);
        if (r <= 0)
            return;
        got += (size_t)r;
        head[got] = '\0';
        if (strstr(head, "\r\n\r\n"))
            break;
    }
    if ((p = strcasestr(head, "\r\nrange: bytes=")) != NULL)
        from = (size_t)strtoull(p + 15, NULL, 10);
    if (s->mode == S_STALL) {
        while (!client_gone(s, fd, 50))
            ;
        return;
    }
    if (s->mode == S_503) {
        answer(fd, "503 Slow Down", NULL, NULL, "", 0);
        return;
    }
    if (s->mode == S_TRICKLE) {
        char h[256];
        int hl = from == 0 ? snprintf(h, sizeof(h),
                                      "HTTP/1.1 200 OK\r\nContent-Length: "
                                      "%zu\r\nETag: \"e1\"\r\n\r\n",
                                      s->n)
                           : snprintf(h, sizeof(h),
                                      "HTTP/1.1 206 Partial Content\r\n"
                                      "Content-Range: bytes %zu-%zu/%zu\r\n"
                                      "Content-Length: %zu\r\nETag: "
                                      "\"e1\"\r\n\r\n",
                                      from, s->n - 1, s->n, s->n - from);
        send_all(fd, h, (size_t)hl);
        for (size_t at = from; at < s->n; at += 3) {
            send_all(fd, s->v1 + at, s->n - at < 3 ? s->n - at : 3);
            if (client_gone(s, fd, 1000))
                return;
        }
        return;
    }
    if (idx == 0) {
        /* The first GET: the first object, cut short. */
        char h[256];
        int hl = snprintf(h, sizeof(h),
                          "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n%s"
                          "Connection: close\r\n\r\n",
                          s->n, s->mode == S_SIZE ? "" : "ETag: \"e1\"\r\n");
        send_all(fd, h, (size_t)hl);
        send_all(fd, s->v1, s->cut);
        return;
    }
    switch (s->mode) {
    case S_SPLICE_206:
        snprintf(range, sizeof(range), "bytes %zu-%zu/%zu", from, s->n - 1,
                 s->n);
        answer(fd, "206 Partial Content", "\"e2\"", range, s->v2 + from,
               s->n - from);
        break;
    case S_SPLICE_200:
        answer(fd, "200 OK", "\"e2\"", NULL, s->v2, s->n);
        break;
    case S_NO_ETAG:
        snprintf(range, sizeof(range), "bytes %zu-%zu/%zu", from, s->n - 1,
                 s->n);
        answer(fd, "206 Partial Content", NULL, range, s->v2 + from,
               s->n - from);
        break;
    case S_SIZE:
        snprintf(range, sizeof(range), "bytes %zu-%zu/%zu", from, s->n + 9,
                 s->n + 10);
        answer(fd, "206 Partial Content", NULL, range, s->v2 + from,
               s->n - from);
        break;
    default:
        answer(fd, "412 Precondition Failed", NULL, NULL, "", 0);
        break;
    }
}

static void *hsrv_main(void *arg)
{
    hsrv_t *s = arg;
    while (!atomic_load(&s->stop)) {
        struct pollfd pfd = {s->lfd, POLLIN, 0};
        int fd;
        if (poll(&pfd, 1, 20) <= 0)
            continue;
        fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        serve(s, fd);
        shutdown(fd, SHUT_WR);
        close(fd);
        atomic_fetch_add(&s->done, 1);
    }
    return NULL;
}

static void hsrv_start(hsrv_t *s, int mode, const char *v1, const char *v2,
                       size_t n, size_t cut)
{
    struct sockaddr_in a = {0};
    socklen_t al = sizeof(a);
    memset(s, 0, sizeof(*s));
    s->mode = mode;
    s->v1 = v1;
    s->v2 = v2;
    s->n = n;
    s->cut = cut;
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true(s->lfd >= 0);
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s->lfd, 16), 0);
    assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&a, &al), 0);
    s->port = ntohs(a.sin_port);
    atomic_init(&s->stop, 0);
    atomic_init(&s->nreq, 0);
    atomic_init(&s->done, 0);
    assert_int_equal(pthread_create(&s->th, NULL, hsrv_main, s), 0);
}

static void hsrv_stop(hsrv_t *s)
{
    atomic_store(&s->stop, 1);
    pthread_join(s->th, NULL);
    close(s->lfd);
}

static dip_storage_t *storage_at(dip_config_t *cfg, int port, long backoff_ms)
{
    char ep[64];
    snprintf(ep, sizeof(ep), "http://127.0.0.1:%d", port);
    dip_config_init(cfg);
    set_str(&cfg->storage_url, "s3://deals");
    set_str(&cfg->s3_endpoint, ep);
    set_str(&cfg->s3_access_key, "AKTEST");
    set_str(&cfg->s3_secret_key, "secret");
    cfg->row_attempts = 3;
    cfg->row_backoff_ms = backoff_ms;
    return open_storage(cfg);
}

/* Each way a resume can come from another object: the download ends
 * ECHANGED with a sentence, and the sink has the first object's bytes up
 * to the cut and not one byte more. */
static void test_resume_from_another_object(void **state)
{
    static const struct {
        int mode;
        const char *says;
    } cases[] = {
        {S_SPLICE_206, "its ETag was \"e1\", a resumed response has \"e2\""},
        {S_SPLICE_200, "its ETag was \"e1\", a resumed response has \"e2\""},
        {S_NO_ETAG, "its ETag was \"e1\", a resumed response has none"},
        {S_SIZE, "its size was 60000 bytes, a resumed response says 60010"},
        {S_412, "was replaced during the download"},
    };
    const size_t n = 60000, cut = 30000;
    char *v1 = make_bytes(n, 31), *v2 = make_bytes(n, 32);
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        hsrv_t *s = calloc(1, sizeof(*s));
        dip_config_t cfg;
        dip_storage_t *st;
        sink_state_t ss;
        dip_storage_sink_t sink = make_sink(&ss);
        char err[512] = "";
        hsrv_start(s, cases[i].mode, v1, v2, n, cut);
        st = storage_at(&cfg, s->port, 10);
        assert_int_equal(
            dip_storage_get(st, "k.csv", 0, &sink, err, sizeof(err)),
            DIP_STORAGE_ECHANGED);
        hsrv_stop(s);
        assert_non_null(strstr(err, cases[i].says));
        assert_non_null(strstr(err, "'k.csv'"));
        assert_int_equal(ss.len, cut);
        assert_memory_equal(ss.buf, v1, cut);
        assert_int_equal(ss.identity_calls, 1);
        assert_int_equal(atomic_load(&s->nreq), 2);
        dip_storage_destroy(&st);
        dip_config_release(&cfg);
        free(ss.buf);
        free(s);
    }
    free(v1);
    free(v2);
}

/* Yes once the server has read a request. */
static int stop_after_request(void *arg)
{
    return atomic_load(&((hsrv_t *)arg)->nreq) >= 1;
}

/* A server that accepts and never answers: the stop function is asked
 * while the request waits, and its yes ends the download. Without it the
 * low-speed limit would (a minute by default). */
static void test_stall_stopped(void **state)
{
    hsrv_t *s = calloc(1, sizeof(*s));
    dip_config_t cfg;
    dip_storage_t *st;
    sink_state_t ss;
    dip_storage_sink_t sink = make_sink(&ss);
    char err[512] = "", *v1 = make_bytes(100, 1);
    (void)state;
    hsrv_start(s, S_STALL, v1, v1, 100, 0);
    st = storage_at(&cfg, s->port, 10);
    dip_storage_set_stop(st, stop_after_request, s);
    assert_int_equal(dip_storage_get(st, "k.csv", 0, &sink, err, sizeof(err)),
                     DIP_STORAGE_EABORT);
    hsrv_stop(s);
    assert_int_equal(atomic_load(&s->nreq), 1);
    assert_int_equal(ss.len, 0);
    assert_non_null(strstr(err, "download of file 'k.csv'"));
    assert_non_null(strstr(err, "was stopped"));
    dip_storage_destroy(&st);
    dip_config_release(&cfg);
    free(v1);
    free(s);
}

/* Yes once the server has answered a request. */
static int stop_after_answer(void *arg)
{
    return atomic_load(&((hsrv_t *)arg)->done) >= 1;
}

/* A stop asked once the first 503 is answered, in the retry's backoff (an
 * hour here), ends the wait: the call returns, after one request. */
static void test_backoff_stopped(void **state)
{
    hsrv_t *s = calloc(1, sizeof(*s));
    dip_config_t cfg;
    dip_storage_t *st;
    sink_state_t ss;
    dip_storage_sink_t sink = make_sink(&ss);
    char err[512] = "", *v1 = make_bytes(100, 1);
    (void)state;
    hsrv_start(s, S_503, v1, v1, 100, 0);
    st = storage_at(&cfg, s->port, 3600000);
    dip_storage_set_stop(st, stop_after_answer, s);
    assert_int_equal(dip_storage_get(st, "k.csv", 0, &sink, err, sizeof(err)),
                     DIP_STORAGE_EABORT);
    hsrv_stop(s);
    assert_int_equal(atomic_load(&s->nreq), 1);
    assert_non_null(strstr(err, "was stopped"));
    dip_storage_destroy(&st);
    dip_config_release(&cfg);
    free(v1);
    free(s);
}

/* 3 bytes a second: each try is cut by the low-speed limit (1 KiB/s over
 * 1 s here), and moving a few bytes does not earn the attempts back, so
 * the download ends ETRANSIENT after 3 tries, not for ever. */
static void test_trickle_has_a_deadline(void **state)
{
    hsrv_t *s = calloc(1, sizeof(*s));
    dip_config_t cfg;
    dip_storage_t *st;
    sink_state_t ss;
    dip_storage_sink_t sink = make_sink(&ss);
    const size_t n = 100000;
    char err[512] = "", *v1 = make_bytes(n, 5);
    (void)state;
    hsrv_start(s, S_TRICKLE, v1, v1, n, 0);
    st = storage_at(&cfg, s->port, 10);
    dip_storage_set_stall(st, 1024, 1);
    assert_int_equal(dip_storage_get(st, "k.csv", 0, &sink, err, sizeof(err)),
                     DIP_STORAGE_ETRANSIENT);
    hsrv_stop(s);
    assert_int_equal(atomic_load(&s->nreq), 3);
    assert_true(ss.len > 0 && ss.len < 100);
    assert_memory_equal(ss.buf, v1, ss.len);
    assert_non_null(strstr(err, "after 3 attempts"));
    dip_storage_destroy(&st);
    dip_config_release(&cfg);
    free(ss.buf);
    free(v1);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resume_from_another_object),
        cmocka_unit_test(test_stall_stopped),
        cmocka_unit_test(test_backoff_stopped),
        cmocka_unit_test(test_trickle_has_a_deadline),
    };
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
