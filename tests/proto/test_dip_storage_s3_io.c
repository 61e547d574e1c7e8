/*
 * Tests dip_storage_s3_io, the S3 backend, in two parts. A scripted HTTP
 * server on a loopback thread: a transfer cut short and resumed with Range,
 * 503 then 200, 503 for good, 403, refused connections, and the signed
 * PUT's payload hash. A real S3-compatible server
 * (DEALIMPORT_TEST_S3_ENDPOINT, else s3rver from scripts/s3dev when
 * installed, else skipped with the reason): round trips with awkward keys,
 * ranges, 404 and delete. With DEALIMPORT_TEST_BENCH_MB set it also prints
 * download throughput for file:// and S3.
 */
#include "it_skip.h"
#include "storage_test.h"
#include "it_tmp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dip_sigv4.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <strings.h>

/* --- a scripted HTTP server on a loopback thread ------------------------ */

enum {
    M_SERVE,      /* honours Range */
    M_CUT,        /* the first GET closes after `cut` bytes */
    M_503_ONCE,   /* the first request gets 503 */
    M_503_ALWAYS, /* every request gets 503 */
    M_403,        /* every request gets 403 */
    M_PUT,        /* keeps a PUT's body */
};

#define MAX_REQS 8

typedef struct {
    int lfd, port, mode;
    pthread_t th;
    atomic_int stop;
    const char *obj;
    size_t objlen, cut;
    int nreq;
    char req[MAX_REQS][4096]; /* request heads, lowercased */
    char *put_body;
    size_t put_len;
} srv_t;

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

static void reply_error(int fd, int status, const char *code)
{
    char head[256], body[256];
    int bl = snprintf(body, sizeof(body),
                      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>"
                      "<Code>%s</Code><Message>%s</Message></Error>",
                      code, status == 403 ? "Access Denied" : "Slow Down");
    int hl = snprintf(head, sizeof(head),
                      "HTTP/1.1 %d X\r\nContent-Length: %d\r\nContent-Type: "
                      "application/xml\r\nConnection: close\r\n\r\n",
                      status, bl);
    send_all(fd, head, (size_t)hl);
    send_all(fd, body, (size_t)bl);
}

static void serve_one(srv_t *s, int fd)
{
    char head[4096];
    size_t got = 0;
    char *end = NULL, *p;
    int idx = s->nreq;
    long long range = -1;
    size_t clen = 0;

    while (end == NULL && got < sizeof(head) - 1) {
        ssize_t r = recv(fd, head + got, sizeof(head) - 1 - got, 0);
        if (r <= 0)
            return;
        got += (size_t)r;
        head[got] = '\0';
        end = strstr(head, "\r\n\r\n");
    }
    if (end == NULL)
        return;
    for (p = head; p < end; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    if (idx < MAX_REQS) {
        snprintf(s->req[idx], sizeof(s->req[idx]), "%.*s",
                 (int)(end - head + 2), head);
        s->nreq++;
    }
    if ((p = strstr(head, "\r\nrange: bytes=")) != NULL && p < end)
        range = strtoll(p + 15, NULL, 10);
    if ((p = strstr(head, "\r\ncontent-length: ")) != NULL && p < end)
        clen = (size_t)strtoull(p + 18, NULL, 10);

    if (s->mode == M_403) {
        reply_error(fd, 403, "AccessDenied");
        return;
    }
    if (s->mode == M_503_ALWAYS || (s->mode == M_503_ONCE && idx == 0)) {
        reply_error(fd, 503, "SlowDown");
        return;
    }
    if (s->mode == M_PUT) {
        size_t have = got - (size_t)(end + 4 - head);
        s->put_body = malloc(clen + 1);
        memcpy(s->put_body, end + 4, have < clen ? have : clen);
        while (have < clen) {
            ssize_t r = recv(fd, s->put_body + have, clen - have, 0);
            if (r <= 0)
                break;
            have += (size_t)r;
        }
        s->put_len = have;
        {
            const char *ok = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"
                             "Connection: close\r\n\r\n";
            send_all(fd, ok, strlen(ok));
        }
        return;
    }
    {
        char h[512];
        size_t from = range >= 0 ? (size_t)range : 0, n;
        int hl;
        if (range >= 0 && from >= s->objlen) {
            hl = snprintf(h, sizeof(h),
                          "HTTP/1.1 416 X\r\nContent-Range: bytes */%zu\r\n"
                          "Content-Length: 0\r\nConnection: close\r\n\r\n",
                          s->objlen);
            send_all(fd, h, (size_t)hl);
            return;
        }
        n = s->objlen - from;
        if (range >= 0)
            hl = snprintf(h, sizeof(h),
                          "HTTP/1.1 206 Partial Content\r\nContent-Range: "
                          "bytes %zu-%zu/%zu\r\nContent-Length: %zu\r\n"
                          "ETag: \"etag-1\"\r\nConnection: close\r\n\r\n",
                          from, s->objlen - 1, s->objlen, n);
        else
            hl = snprintf(h, sizeof(h),
                          "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n"
                          "ETag: \"etag-1\"\r\nConnection: close\r\n\r\n",
                          n);
        send_all(fd, h, (size_t)hl);
        if (s->mode == M_CUT && idx == 0)
            n = s->cut;
        send_all(fd, s->obj + from, n);
    }
}

static void *srv_main(void *arg)
{
    srv_t *s = arg;
    while (!atomic_load(&s->stop)) {
        struct pollfd pfd = {s->lfd, POLLIN, 0};
        int fd;
        if (poll(&pfd, 1, 20) <= 0)
            continue;
        fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        serve_one(s, fd);
        shutdown(fd, SHUT_WR);
        close(fd);
    }
    return NULL;
}

static int listen_loopback(int *port)
{
    struct sockaddr_in a = {0};
    socklen_t al = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        listen(fd, 16) < 0 || getsockname(fd, (struct sockaddr *)&a, &al) < 0)
        return -1;
    *port = ntohs(a.sin_port);
    return fd;
}

static void srv_start(srv_t *s, int mode, const char *obj, size_t objlen)
{
    memset(s, 0, sizeof(*s));
    s->mode = mode;
    s->obj = obj;
    s->objlen = objlen;
    s->lfd = listen_loopback(&s->port);
    assert_true(s->lfd >= 0);
    atomic_init(&s->stop, 0);
    assert_int_equal(pthread_create(&s->th, NULL, srv_main, s), 0);
}

static void srv_stop(srv_t *s)
{
    atomic_store(&s->stop, 1);
    pthread_join(s->th, NULL);
    close(s->lfd);
}

static dip_storage_t *http_storage(dip_config_t *cfg, int port)
{
    char ep[512];
    snprintf(ep, sizeof(ep), "http://127.0.0.1:%d", port);
    dip_config_init(cfg);
    set_str(&cfg->storage_url, "s3://deals");
    set_str(&cfg->s3_endpoint, ep);
    set_str(&cfg->s3_region, "eu-central-1");
    set_str(&cfg->s3_access_key, "AKTEST");
    set_str(&cfg->s3_secret_key, "secret");
    cfg->row_attempts = 3;
    cfg->row_backoff_ms = 10; /* short in tests */
    return open_storage(cfg);
}

/* Every request is signed, path-style, with the key encoded. */
static void check_signed_get(const char *req, const char *path, int port)
{
    char host[64], line[256];
    snprintf(line, sizeof(line), "get %s http/1.1\r\n", path);
    assert_true(strncmp(req, line, strlen(line)) == 0);
    snprintf(host, sizeof(host), "\r\nhost: 127.0.0.1:%d\r\n", port);
    assert_non_null(strstr(req, host));
    assert_non_null(strstr(req, "\r\nx-amz-content-sha256: unsigned-payload"));
    assert_non_null(strstr(req, "\r\nx-amz-date: "));
    assert_non_null(strstr(req, "\r\nauthorization: aws4-hmac-sha256 "
                                "credential=aktest/"));
    assert_non_null(strstr(req, "/eu-central-1/s3/aws4_request, "));
}

static void test_http_resume_after_cut(void **state)
{
    const size_t n = 100000, cut = 30000;
    char *obj = make_bytes(n, 21), err[512] = "";
    const char *key = "imports/a b.csv";
    srv_t *s = calloc(1, sizeof(*s));
    dip_config_t cfg;
    dip_storage_t *st;
    sink_state_t ss;
    dip_storage_sink_t sink = make_sink(&ss);
    (void)state;

    srv_start(s, M_CUT, obj, n);
    s->cut = cut;
    st = http_storage(&cfg, s->port);
    assert_int_equal(dip_storage_get(st, key, 0, &sink, err, sizeof(err)),
                     DIP_STORAGE_OK);
    srv_stop(s);
    /* Every byte exactly once, in order, and the size once, first. */
    assert_int_equal(ss.len, n);
    assert_memory_equal(ss.buf, obj, n);
    assert_int_equal(ss.size_calls, 1);
    assert_int_equal(ss.size, (int64_t)n);
    assert_false(ss.data_before_size);
    /* An object's identity: its ETag, reported once. */
    assert_int_equal(ss.identity_calls, 1);
    assert_string_equal(ss.etag, "\"etag-1\"");
    assert_int_equal(s->nreq, 2);
    check_signed_get(s->req[0], "/deals/imports/a%20b.csv", s->port);
    check_signed_get(s->req[1], "/deals/imports/a%20b.csv", s->port);
    assert_null(strstr(s->req[0], "\r\nrange:"));
    assert_non_null(strstr(s->req[1], "\r\nrange: bytes=30000-\r\n"));
    /* The resumed part must come from the same object. */
    assert_non_null(strstr(s->req[1], "\r\nif-match: \"etag-1\"\r\n"));
    /* Range and If-Match are under the signature. */
    assert_non_null(strstr(s->req[1], "signedheaders=host;if-match;range;"
                                      "x-amz-content-sha256;x-amz-date"));

    /* A download that starts at an offset asks for it at once. */
    free(ss.buf);
    sink = make_sink(&ss);
    srv_start(s, M_SERVE, obj, n);
    dip_storage_destroy(&st);
    dip_config_release(&cfg);
    st = http_storage(&cfg, s->port);
    assert_int_equal(dip_storage_get(st, key, 99990, &sink, err, sizeof(err)),
                     DIP_STORAGE_OK);
    assert_int_equal(dip_storage_get(st, key, n, &sink, err, sizeof(err)),
                     DIP_STORAGE_OK);
    assert_int_equal(dip_storage_get(st, key, n + 5, &sink, err, sizeof(err)),
                     DIP_STORAGE_EFAIL);
    assert_non_null(strstr(err, "offset 100005 is beyond the end"));
    srv_stop(s);
    assert_int_equal(ss.len, 10);
    assert_memory_equal(ss.buf, obj + 99990, 10);
    assert_int_equal(s->nreq, 3);
    assert_non_null(strstr(s->req[0], "\r\nrange: bytes=99990-\r\n"));
    assert_non_null(strstr(s->req[1], "\r\nrange: bytes=100000-\r\n"));

    dip_storage_destroy(&st);
    dip_config_release(&cfg);
    free(ss.buf);
    free(obj);
    free(s);
}

static void test_http_retry_503(void **state)
{
    const size_t n = 5000;
    char *obj = make_bytes(n, 23), err[512] = "";
    srv_t *s = calloc(1, sizeof(*s));
    dip_config_t cfg;
    dip_storage_t *st;
    sink_state_t ss;
    dip_storage_sink_t sink = make_sink(&ss);
    (void)state;

    srv_start(s, M_503_ONCE, obj, n);
    st = http_storage(&cfg, s->port);
    assert_int_equal(dip_storage_get(st, "k.csv", 0, &sink, err, sizeof(err)),
                     DIP_STORAGE_OK);
    srv_stop(s);
    assert_int_equal(s->nreq, 2);
    assert_int_equal(ss.len, n);
    assert_memory_equal(ss.buf, obj, n);
    assert_int_equal(ss.size_calls, 1);
    assert_null(strstr(s->req[1], "\r\nrange:"));
    dip_storage_destroy(&st);
    dip_config_release(&cfg);

    /* Always 503: attempts run out, with the reason. */
    free(ss.buf);
    sink = make_sink(&ss);
    srv_start(s, M_503_ALWAYS, obj, n);
    st = http_storage(&cfg, s->port);
    assert_int_equal(dip_storage_get(st, "k.csv", 0, &sink, err, sizeof(err)),
                     DIP_STORAGE_ETRANSIENT);
    srv_stop(s);
    assert_int_equal(s->nreq, 3);
    assert_non_null(strstr(err, "could not download file 'k.csv' from "
                                "storage 's3://deals' after 3 attempts: "
                                "HTTP 503 SlowDown: Slow Down"));
    assert_int_equal(ss.size_calls, 0);
    assert_int_equal(ss.len, 0);
    dip_storage_destroy(&st);
    dip_config_release(&cfg);
    free(obj);
    free(s);
}

static void test_http_sink_abort(void **state)
{
    const size_t n = 200000;
    char *obj = make_bytes(n, 25), err[512] = "";
    srv_t *s = calloc(1, sizeof(*s));
    dip_config_t cfg;
    dip_storage_t *st;
    sink_state_t ss;
    dip_storage_sink_t sink = make_sink(&ss);
    (void)state;

    srv_start(s, M_SERVE, obj, n);
    st = http_storage(&cfg, s->port);
    ss.stop_after = 1;
    assert_int_equal(dip_storage_get(st, "k.csv", 0, &sink, err, sizeof(err)),
                     DIP_STORAGE_EABORT);
    assert_string_equal(err, "download of file 'k.csv' from storage "
                             "'s3://deals' was stopped by its reader");
    /* The first piece only, and no retry. */
    assert_true(ss.len > 0 && ss.len < n);
    assert_memory_equal(ss.buf, obj, ss.len);
    /* The handle is still good after an aborted transfer. */
    free(ss.buf);
    sink = make_sink(&ss);
    assert_int_equal(dip_storage_get(st, "k.csv", 0, &sink, err, sizeof(err)),
                     DIP_STORAGE_OK);
    srv_stop(s);
    assert_int_equal(s->nreq, 2);
    assert_int_equal(ss.len, n);
    assert_memory_equal(ss.buf, obj, n);
    dip_storage_destroy(&st);
    dip_config_release(&cfg);
    free(ss.buf);
    free(obj);
    free(s);
}

static void test_http_denied(void **state)
{
    char err[512] = "";
    srv_t *s = calloc(1, sizeof(*s));
    dip_config_t cfg;
    dip_storage_t *st;
    sink_state_t ss;
    dip_storage_sink_t sink = make_sink(&ss);
    (void)state;

    srv_start(s, M_403, "", 0);
    st = http_storage(&cfg, s->port);
    assert_int_equal(
        dip_storage_get(st, "imports/a.csv", 0, &sink, err, sizeof(err)),
        DIP_STORAGE_EDENIED);
    srv_stop(s);
    assert_string_equal(err, "access to file 'imports/a.csv' in storage "
                             "'s3://deals' was denied (HTTP 403 AccessDenied: "
                             "Access Denied)");
    assert_int_equal(s->nreq, 1); /* not retried */
    assert_int_equal(ss.len, 0);
    dip_storage_destroy(&st);
    dip_config_release(&cfg);
    free(s);
}

static void test_http_refused(void **state)
{
    char err[512] = "";
    int port = 0, fd = listen_loopback(&port);
    dip_config_t cfg;
    dip_storage_t *st;
    sink_state_t ss;
    dip_storage_sink_t sink = make_sink(&ss);
    (void)state;
    close(fd); /* nothing listens there now */
    st = http_storage(&cfg, port);
    assert_int_equal(dip_storage_get(st, "k.csv", 0, &sink, err, sizeof(err)),
                     DIP_STORAGE_ETRANSIENT);
    assert_non_null(strstr(err, "after 3 attempts"));
    /* libcurl's own detail names the address it could not reach. */
    assert_non_null(strstr(err, "127.0.0.1"));
    dip_storage_destroy(&st);
    dip_config_release(&cfg);
}

static void test_http_put_hash(void **state)
{
    const size_t n = 70000;
    char *data = make_bytes(n, 31), src[256], err[512] = "", hash[65];
    char want[128];
    srv_t *s = calloc(1, sizeof(*s));
    dip_config_t cfg;
    dip_storage_t *st;
    (void)state;

    snprintf(src, sizeof(src), "%s/dip-put-%d", it_tmpdir(), (int)getpid());
    write_file(src, data, n);
    dip_sigv4_sha256_hex(data, n, hash);
    srv_start(s, M_PUT, NULL, 0);
    st = http_storage(&cfg, s->port);
    assert_int_equal(dip_storage_put_file(st, "up/\xe6\x97\xa5\xe6\x9c\xac.csv",
                                          src, err, sizeof(err)),
                     DIP_STORAGE_OK);
    srv_stop(s);
    assert_int_equal(s->nreq, 1);
    assert_true(strncmp(s->req[0],
                        "put /deals/up/%e6%97%a5%e6%9c%ac.csv http/1.1\r\n",
                        47) == 0);
    snprintf(want, sizeof(want), "\r\nx-amz-content-sha256: %s\r\n", hash);
    assert_non_null(strstr(s->req[0], want));
    assert_null(strstr(s->req[0], "\r\nexpect:"));
    assert_int_equal(s->put_len, n);
    assert_memory_equal(s->put_body, data, n);
    free(s->put_body);
    unlink(src);
    dip_storage_destroy(&st);
    dip_config_release(&cfg);
    free(data);
    free(s);
}

/* --- multipart uploads against a scripted server ------------------------ */

/* What the multipart server does. */
enum {
    MP_OK,            /* every request succeeds */
    MP_PART2_400,     /* part 2 is refused for good: the upload is aborted */
    MP_PART2_503,     /* part 2 gets 503 once, then succeeds */
    MP_COMPLETE_200E, /* complete answers 200 with an InternalError once */
    /* the initiate is answered on a kept-alive connection that is then
     * dropped as the next request (part 1, with its body) arrives on it */
    MP_KEEPALIVE_DROP,
    /* the first complete goes through but its answer is lost (the
     * connection is closed); the retry gets NoSuchUpload */
    MP_COMPLETE_LOST,
};

#define MP_UPLOAD_ID "2~Up/lo+ad=ID.x"
#define MP_REQS 16

typedef struct {
    char head[4096];       /* as received, case kept */
    char method[16];       /* "PUT" */
    char target[2048];     /* "/deals/k?partNumber=1&uploadId=..." */
    size_t body_len;       /* bytes received */
    char body_sha[65];     /* SHA-256 of them, computed here */
    char body_start[2048]; /* the first bytes, NUL-terminated */
} mp_req_t;

typedef struct {
    int lfd, port, mode;
    pthread_t th;
    atomic_int stop;
    int nreq, part2_tries, complete_tries, conns, dropped;
    mp_req_t req[MP_REQS];
} mp_srv_t;

static void hex32(const unsigned char *d, char out[65])
{
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* A header's value from a raw head, case-insensitive name, or "". */
static void head_value(const char *head, const char *name, char *out,
                       size_t outlen)
{
    const char *p = strstr(head, "\r\n");
    size_t nl = strlen(name);
    out[0] = '\0';
    while (p && p[2] != '\r') {
        const char *line = p + 2, *end = strstr(line, "\r\n");
        if (end == NULL)
            return;
        if ((size_t)(end - line) > nl && strncasecmp(line, name, nl) == 0 &&
            line[nl] == ':') {
            const char *v = line + nl + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            snprintf(out, outlen, "%.*s", (int)(end - v), v);
            while (*out && (out[strlen(out) - 1] == ' '))
                out[strlen(out) - 1] = '\0';
            return;
        }
        p = end;
    }
}

static int mp_keepalive; /* the server thread's: the next reply keeps the
                           connection */

static void mp_reply(int fd, int status, const char *extra, const char *body)
{
    char head[1024];
    int hl = snprintf(head, sizeof(head),
                      "HTTP/1.1 %d X\r\n%sContent-Length: %zu\r\n%s\r\n",
                      status, extra, strlen(body),
                      mp_keepalive ? "" : "Connection: close\r\n");
    send_all(fd, head, (size_t)hl);
    send_all(fd, body, strlen(body));
}

static void mp_serve_one(mp_srv_t *s, int fd)
{
    mp_req_t *r;
    char *end = NULL, clen_s[32], *sp;
    size_t got = 0, clen, have;
    unsigned char buf[65536], digest[32];
    unsigned int dlen = 0;
    EVP_MD_CTX *md;
    int part = 0;

    if (s->nreq >= MP_REQS)
        return;
    r = &s->req[s->nreq];
    memset(r, 0, sizeof(*r));
    while (end == NULL && got < sizeof(r->head) - 1) {
        ssize_t n = recv(fd, r->head + got, sizeof(r->head) - 1 - got, 0);
        if (n <= 0)
            return;
        got += (size_t)n;
        r->head[got] = '\0';
        end = strstr(r->head, "\r\n\r\n");
    }
    if (end == NULL)
        return;
    s->nreq++;
    sp = strchr(r->head, ' ');
    {
        size_t ml = (size_t)(sp - r->head);
        size_t tl = (size_t)(strchr(sp + 1, ' ') - sp - 1);
        assert_true(ml < sizeof(r->method) && tl < sizeof(r->target));
        memcpy(r->method, r->head, ml);
        memcpy(r->target, sp + 1, tl);
    }
    head_value(r->head, "content-length", clen_s, sizeof(clen_s));
    clen = (size_t)strtoull(clen_s, NULL, 10);
    /* The body: hashed as it arrives, never kept whole. */
    md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    have = got - (size_t)(end + 4 - r->head);
    if (have > clen)
        have = clen;
    EVP_DigestUpdate(md, end + 4, have);
    memcpy(r->body_start, end + 4,
           have < sizeof(r->body_start) - 1 ? have : sizeof(r->body_start) - 1);
    while (have < clen) {
        size_t want = clen - have < sizeof(buf) ? clen - have : sizeof(buf);
        ssize_t n = recv(fd, buf, want, 0);
        if (n <= 0)
            break;
        if (have < sizeof(r->body_start) - 1) {
            size_t room = sizeof(r->body_start) - 1 - have;
            memcpy(r->body_start + have, buf,
                   (size_t)n < room ? (size_t)n : room);
        }
        EVP_DigestUpdate(md, buf, (size_t)n);
        have += (size_t)n;
    }
    EVP_DigestFinal_ex(md, digest, &dlen);
    EVP_MD_CTX_free(md);
    hex32(digest, r->body_sha);
    r->body_len = have;
    end[2] = '\0'; /* the head alone, each line ending in CR LF */

    if ((sp = strstr(r->target, "partNumber=")) != NULL)
        part = atoi(sp + 11);
    if (strcmp(r->method, "POST") == 0 && strstr(r->target, "?uploads")) {
        mp_reply(fd, 200, "",
                 "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                 "<InitiateMultipartUploadResult><Bucket>deals</Bucket>"
                 "<Key>k</Key><UploadId>2~Up/lo+ad=ID.x</UploadId>"
                 "</InitiateMultipartUploadResult>");
    } else if (strcmp(r->method, "PUT") == 0 && part > 0) {
        char etag[64];
        if (part == 2 && s->mode == MP_PART2_400) {
            reply_error(fd, 400, "InvalidArgument");
            return;
        }
        if (part == 2 && s->mode == MP_PART2_503 && s->part2_tries++ == 0) {
            reply_error(fd, 503, "SlowDown");
            return;
        }
        snprintf(etag, sizeof(etag), "ETag: \"etag-%d\"\r\n", part);
        mp_reply(fd, 200, etag, "");
    } else if (strcmp(r->method, "POST") == 0 && s->mode == MP_COMPLETE_LOST) {
        if (s->complete_tries++ == 0)
            return; /* done, and the answer never arrives */
        mp_reply(fd, 404, "",
                 "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>"
                 "<Code>NoSuchUpload</Code><Message>The specified upload does "
                 "not exist.</Message></Error>");
    } else if (strcmp(r->method, "HEAD") == 0) {
        mp_reply(fd, 200,
                 s->mode == MP_COMPLETE_LOST
                     ? "ETag: \"3858f62230ac3c915f300c664312c11f-3\"\r\n"
                     : "ETag: \"single\"\r\n",
                 "");
    } else if (strcmp(r->method, "POST") == 0) {
        if (s->mode == MP_COMPLETE_200E && s->complete_tries++ == 0) {
            mp_reply(fd, 200, "",
                     "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>"
                     "<Code>InternalError</Code><Message>We encountered an "
                     "internal error. Please try again.</Message></Error>");
            return;
        }
        mp_reply(fd, 200, "",
                 "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                 "<CompleteMultipartUploadResult><ETag>\"whole-3\"</ETag>"
                 "</CompleteMultipartUploadResult>");
    } else if (strcmp(r->method, "DELETE") == 0) {
        mp_reply(fd, 204, "", "");
    } else {
        mp_reply(fd, 200, "ETag: \"single\"\r\n", "");
    }
}

static void *mp_main(void *arg)
{
    mp_srv_t *s = arg;
    while (!atomic_load(&s->stop)) {
        struct pollfd pfd = {s->lfd, POLLIN, 0};
        int fd;
        if (poll(&pfd, 1, 20) <= 0)
            continue;
        fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        mp_keepalive = s->mode == MP_KEEPALIVE_DROP && s->conns == 0;
        s->conns++;
        mp_serve_one(s, fd);
        if (mp_keepalive) {
            /* Wait for the next request on this connection, take some of
             * it, and hang up without an answer. */
            char junk[256];
            struct pollfd in = {fd, POLLIN, 0};
            if (poll(&in, 1, 5000) > 0 && recv(fd, junk, sizeof(junk), 0) > 0)
                s->dropped++;
            mp_keepalive = 0;
        }
        shutdown(fd, SHUT_WR);
        close(fd);
    }
    return NULL;
}

static void mp_start(mp_srv_t *s, int mode)
{
    memset(s, 0, sizeof(*s));
    s->mode = mode;
    s->lfd = listen_loopback(&s->port);
    assert_true(s->lfd >= 0);
    atomic_init(&s->stop, 0);
    assert_int_equal(pthread_create(&s->th, NULL, mp_main, s), 0);
}

static void mp_stop(mp_srv_t *s)
{
    atomic_store(&s->stop, 1);
    pthread_join(s->th, NULL);
    close(s->lfd);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void hmac(const void *key, size_t klen, const char *msg,
                 unsigned char out[32])
{
    unsigned int olen = 32;
    assert_non_null(HMAC(EVP_sha256(), key, (int)klen,
                         (const unsigned char *)msg, strlen(msg), out, &olen));
}

/* Checks r's signature the way S3 does, from the request as received and
 * the secret alone, written here from AWS's SigV4 description (not with
 * dip_sigv4): the canonical request from the method, the path as sent, the
 * query parameters sorted, the signed headers' trimmed values and the
 * payload hash; the string to sign; the key derived by HMAC from date,
 * region and service. Also checks that the payload hash signed is the
 * SHA-256 of the body that arrived. */
static void verify_sigv4(const mp_req_t *r, const char *secret,
                         const char *region)
{
    char auth[1024], date[32], payload[80], cred[256], signed_h[512];
    char sig[80], *q, *params[16], canon[8192], sts[1024], scope[128];
    char expect[65], hash[65], ymd[16], kbuf[128], value[1024];
    unsigned char k1[32], k2[32], k3[32], k4[32], d[32];
    size_t np = 0, cl = 0;
    const char *p;

    head_value(r->head, "authorization", auth, sizeof(auth));
    head_value(r->head, "x-amz-date", date, sizeof(date));
    head_value(r->head, "x-amz-content-sha256", payload, sizeof(payload));
    assert_int_equal(sscanf(auth,
                            "AWS4-HMAC-SHA256 Credential=%255[^,], "
                            "SignedHeaders=%511[^,], Signature=%79s",
                            cred, signed_h, sig),
                     3);
    assert_string_equal(payload, r->body_sha);
    assert_int_equal(strlen(date), 16);
    /* The scope: AKTEST/<yyyymmdd>/<region>/s3/aws4_request */
    snprintf(ymd, sizeof(ymd), "%.8s", date);
    snprintf(scope, sizeof(scope), "%s/%s/s3/aws4_request", ymd, region);
    assert_true(strncmp(cred, "AKTEST/", 7) == 0);
    assert_string_equal(cred + 7, scope);
    /* Host, the date and the payload hash are always under the signature. */
    assert_non_null(strstr(signed_h, "host"));
    assert_non_null(strstr(signed_h, "x-amz-content-sha256"));
    assert_non_null(strstr(signed_h, "x-amz-date"));

    /* The canonical request. */
    q = strchr(r->target, '?');
    cl += (size_t)snprintf(
        canon + cl, sizeof(canon) - cl, "%s\n%.*s\n", r->method,
        (int)(q ? (size_t)(q - r->target) : strlen(r->target)), r->target);
    if (q) {
        char *dup = strdup(q + 1), *save = NULL, *tok;
        for (tok = strtok_r(dup, "&", &save); tok && np < 16;
             tok = strtok_r(NULL, "&", &save)) {
            if (strchr(tok, '='))
                params[np++] = strdup(tok);
            else if (asprintf(&params[np], "%s=", tok) >= 0)
                np++;
        }
        free(dup);
        qsort(params, np, sizeof(params[0]), cmp_str);
        for (size_t i = 0; i < np; i++) {
            cl += (size_t)snprintf(canon + cl, sizeof(canon) - cl, "%s%s",
                                   i ? "&" : "", params[i]);
            free(params[i]);
        }
    }
    canon[cl++] = '\n';
    for (p = signed_h; *p;) {
        const char *semi = strchr(p, ';');
        char name[64];
        size_t n = semi ? (size_t)(semi - p) : strlen(p);
        snprintf(name, sizeof(name), "%.*s", (int)n, p);
        head_value(r->head, name, value, sizeof(value));
        assert_true(value[0] != '\0');
        cl += (size_t)snprintf(canon + cl, sizeof(canon) - cl, "%s:%s\n", name,
                               value);
        p += n;
        if (*p == ';')
            p++;
    }
    cl += (size_t)snprintf(canon + cl, sizeof(canon) - cl, "\n%s\n%s", signed_h,
                           payload);
    SHA256((const unsigned char *)canon, cl, d);
    hex32(d, hash);
    snprintf(sts, sizeof(sts), "AWS4-HMAC-SHA256\n%s\n%s\n%s", date, scope,
             hash);
    snprintf(kbuf, sizeof(kbuf), "AWS4%s", secret);
    hmac(kbuf, strlen(kbuf), ymd, k1);
    hmac(k1, 32, region, k2);
    hmac(k2, 32, "s3", k3);
    hmac(k3, 32, "aws4_request", k4);
    hmac(k4, 32, sts, d);
    hex32(d, expect);
    if (strcmp(expect, sig) != 0)
        fail_msg("signature of '%s %s' is %s, expected %s\ncanonical:\n%s",
                 r->method, r->target, sig, expect, canon);
}

/* Writes n deterministic bytes to path in pieces, never holding them all,
 * and returns their SHA-256 (with OpenSSL, not the code under test). */
static void write_big(const char *path, size_t n, uint32_t seed, char sha[65])
{
    FILE *f = fopen(path, "wbe");
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char d[32];
    unsigned int dl = 0;
    uint32_t x = seed;
    char *buf = malloc(1 << 20);
    assert_non_null(f);
    assert_non_null(buf);
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    for (size_t done = 0; done < n;) {
        size_t k = n - done < (1u << 20) ? n - done : (1u << 20);
        for (size_t i = 0; i < k; i++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            buf[i] = (char)(x >> 24);
        }
        assert_int_equal(fwrite(buf, 1, k, f), k);
        EVP_DigestUpdate(md, buf, k);
        done += k;
    }
    EVP_DigestFinal_ex(md, d, &dl);
    EVP_MD_CTX_free(md);
    hex32(d, sha);
    free(buf);
    assert_int_equal(fclose(f), 0);
}

/* SHA-256 of bytes [off, off + len) of the file at path. */
static void sha_region(const char *path, size_t off, size_t len, char out[65])
{
    FILE *f = fopen(path, "rbe");
    char *buf = malloc(len ? len : 1);
    unsigned char d[32];
    assert_non_null(f);
    assert_int_equal(fseek(f, (long)off, SEEK_SET), 0);
    assert_int_equal(fread(buf, 1, len, f), len);
    fclose(f);
    SHA256((unsigned char *)buf, len, d);
    hex32(d, out);
    free(buf);
}

#define MP_PART 65536
#define MP_SIZE (2 * MP_PART + 1000)

static dip_storage_t *mp_storage(dip_config_t *cfg, mp_srv_t *s, int mode)
{
    dip_storage_t *st;
    mp_start(s, mode);
    st = http_storage(cfg, s->port);
    /* Small parts: the scripted server takes them, S3 would not. */
    dip_storage_set_multipart(st, 100000, MP_PART);
    return st;
}

static void test_multipart_signed(void **state)
{
    const char *key = "errors/a b\xc3\xbc.csv";
    const char *path = "/deals/errors/a%20b%C3%BC.csv";
    char src[256], sha[65], want[65], err[512] = "", q[128];
    mp_srv_t *s = calloc(1, sizeof(*s));
    dip_config_t cfg;
    dip_storage_t *st = mp_storage(&cfg, s, MP_OK);
    (void)state;

    snprintf(src, sizeof(src), "%s/dip-mp-%d", it_tmpdir(), (int)getpid());
    write_big(src, MP_SIZE, 77, sha);
    assert_int_equal(dip_storage_put_file(st, key, src, err, sizeof(err)),
                     DIP_STORAGE_OK);
    mp_stop(s);
    /* initiate, three parts, complete; nothing else */
    assert_int_equal(s->nreq, 5);
    for (int i = 0; i < s->nreq; i++)
        verify_sigv4(&s->req[i], "secret", "eu-central-1");

    assert_string_equal(s->req[0].method, "POST");
    snprintf(q, sizeof(q), "%s?uploads", path);
    assert_string_equal(s->req[0].target, q);
    assert_int_equal(s->req[0].body_len, 0);
    for (int i = 1; i <= 3; i++) {
        size_t off = (size_t)(i - 1) * MP_PART;
        size_t len = i < 3 ? MP_PART : MP_SIZE - 2 * MP_PART;
        assert_string_equal(s->req[i].method, "PUT");
        /* The upload id as S3 gave it, encoded as a query value. */
        snprintf(q, sizeof(q),
                 "%s?partNumber=%d&uploadId=2~Up%%2Flo%%2Bad%%3DID.x", path, i);
        assert_string_equal(s->req[i].target, q);
        assert_int_equal(s->req[i].body_len, len);
        sha_region(src, off, len, want);
        assert_string_equal(s->req[i].body_sha, want);
    }
    assert_string_equal(s->req[4].method, "POST");
    snprintf(q, sizeof(q), "%s?uploadId=2~Up%%2Flo%%2Bad%%3DID.x", path);
    assert_string_equal(s->req[4].target, q);
    assert_string_equal(
        s->req[4].body_start,
        "<CompleteMultipartUpload "
        "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        "<Part><PartNumber>1</PartNumber><ETag>\"etag-1\"</ETag></Part>"
        "<Part><PartNumber>2</PartNumber><ETag>\"etag-2\"</ETag></Part>"
        "<Part><PartNumber>3</PartNumber><ETag>\"etag-3\"</ETag></Part>"
        "</CompleteMultipartUpload>");

    /* At the threshold or under it: one signed PUT with the whole body. */
    unlink(src);
    write_big(src, 100000, 78, sha);
    mp_start(s, MP_OK);
    dip_storage_destroy(&st);
    dip_config_release(&cfg);
    st = http_storage(&cfg, s->port);
    dip_storage_set_multipart(st, 100000, MP_PART);
    assert_int_equal(dip_storage_put_file(st, key, src, err, sizeof(err)),
                     DIP_STORAGE_OK);
    mp_stop(s);
    assert_int_equal(s->nreq, 1);
    verify_sigv4(&s->req[0], "secret", "eu-central-1");
    assert_string_equal(s->req[0].method, "PUT");
    assert_string_equal(s->req[0].target, path);
    assert_string_equal(s->req[0].body_sha, sha);
    unlink(src);
    dip_storage_destroy(&st);
    dip_config_release(&cfg);
    free(s);
}

/* Temporary credentials: the session token from a file is sent and signed
 * as x-amz-security-token (checked by the verifier above, written from
 * AWS's rules), and a rotated file (renamed over, as a credentials agent
 * does) is read again for the next request. Failure classes: a token file
 * that vanishes keeps the token read before (S3 then names the expired
 * token); a file never readable is refused at configuration. */
static void test_session_token_file(void **state)
{
    char src[256], tok[256], tmp[512], sha[65], err[512] = "", value[1024];
    char signed_h[1024];
    mp_srv_t *s = calloc(1, sizeof(*s));
    dip_config_t cfg;
    dip_storage_t *st;
    (void)state;

    snprintf(src, sizeof(src), "%s/dip-tok-src-%d", it_tmpdir(), (int)getpid());
    snprintf(tok, sizeof(tok), "%s/dip-tok-%d", it_tmpdir(), (int)getpid());
    snprintf(tmp, sizeof(tmp), "%s.new", tok);
    write_big(src, 1000, 5, sha);
    write_file(tok, "FQoGZXIvYXdzEXAMPLE+token/one==\n",
               strlen("FQoGZXIvYXdzEXAMPLE+token/one==\n"));
    mp_start(s, MP_OK);
    {
        char ep[512];
        snprintf(ep, sizeof(ep), "http://127.0.0.1:%d", s->port);
        dip_config_init(&cfg);
        set_str(&cfg.storage_url, "s3://deals");
        set_str(&cfg.s3_endpoint, ep);
        set_str(&cfg.s3_region, "eu-central-1");
        set_str(&cfg.s3_access_key, "AKTEST");
        set_str(&cfg.s3_secret_key, "secret");
        set_str(&cfg.s3_session_token_file, tok);
        st = open_storage(&cfg);
    }
    if (dip_storage_put_file(st, "k1.csv", src, err, sizeof(err)) !=
        DIP_STORAGE_OK)
        fail_msg("%s", err);
    write_file(tmp, "FQoGZXIvYXdzEXAMPLE+token/two==",
               strlen("FQoGZXIvYXdzEXAMPLE+token/two=="));
    assert_int_equal(rename(tmp, tok), 0);
    assert_int_equal(dip_storage_put_file(st, "k2.csv", src, err, sizeof(err)),
                     DIP_STORAGE_OK);
    unlink(tok);
    assert_int_equal(dip_storage_put_file(st, "k3.csv", src, err, sizeof(err)),
                     DIP_STORAGE_OK);
    mp_stop(s);
    assert_int_equal(s->nreq, 3);
    for (int i = 0; i < 3; i++) {
        verify_sigv4(&s->req[i], "secret", "eu-central-1");
        head_value(s->req[i].head, "authorization", value, sizeof(value));
        assert_int_equal(
            sscanf(value, "%*s %*s SignedHeaders=%1023[^,]", signed_h), 1);
        assert_string_equal(signed_h, "host;x-amz-content-sha256;x-amz-date;"
                                      "x-amz-security-token");
        head_value(s->req[i].head, "x-amz-security-token", value,
                   sizeof(value));
        assert_string_equal(value, i == 0 ? "FQoGZXIvYXdzEXAMPLE+token/one=="
                                          : "FQoGZXIvYXdzEXAMPLE+token/two==");
    }
    unlink(src);
    dip_storage_destroy(&st);
    dip_config_release(&cfg);
    free(s);
}

static void test_multipart_abort(void **state)
{
    char src[256], sha[65], err[512] = "";
    mp_srv_t *s = calloc(1, sizeof(*s));
    dip_config_t cfg;
    dip_storage_t *st = mp_storage(&cfg, s, MP_PART2_400);
    (void)state;

    snprintf(src, sizeof(src), "%s/dip-mp-%d", it_tmpdir(), (int)getpid());
    write_big(src, MP_SIZE, 79, sha);
    assert_int_equal(dip_storage_put_file(st, "k.csv", src, err, sizeof(err)),
                     DIP_STORAGE_EFAIL);
    mp_stop(s);
    assert_non_null(strstr(err, "cannot upload file 'k.csv' in storage "
                                "'s3://deals' (HTTP 400 InvalidArgument"));
    assert_non_null(strstr(err, "; the upload was aborted"));
    /* initiate, part 1, part 2 (refused, not retried), abort */
    assert_int_equal(s->nreq, 4);
    for (int i = 0; i < s->nreq; i++)
        verify_sigv4(&s->req[i], "secret", "eu-central-1");
    assert_string_equal(s->req[3].method, "DELETE");
    assert_string_equal(s->req[3].target,
                        "/deals/k.csv?uploadId=2~Up%2Flo%2Bad%3DID.x");
    assert_string_equal(s->req[3].body_sha, DIP_SIGV4_EMPTY_SHA256);
    unlink(src);
    dip_storage_destroy(&st);
    dip_config_release(&cfg);
    free(s);
}

static void test_multipart_retries(void **state)
{
    char src[256], sha[65], err[512] = "";
    mp_srv_t *s = calloc(1, sizeof(*s));
    dip_config_t cfg;
    dip_storage_t *st = mp_storage(&cfg, s, MP_PART2_503);
    (void)state;

    snprintf(src, sizeof(src), "%s/dip-mp-%d", it_tmpdir(), (int)getpid());
    write_big(src, MP_SIZE, 80, sha);
    assert_int_equal(dip_storage_put_file(st, "k.csv", src, err, sizeof(err)),
                     DIP_STORAGE_OK);
    mp_stop(s);
    /* part 2 twice, the retry with the same body */
    assert_int_equal(s->nreq, 6);
    assert_string_equal(s->req[2].target, s->req[3].target);
    assert_string_equal(s->req[2].body_sha, s->req[3].body_sha);
    assert_int_equal(s->req[3].body_len, MP_PART);
    assert_string_equal(s->req[5].method, "POST");
    dip_storage_destroy(&st);
    dip_config_release(&cfg);

    /* CompleteMultipartUpload's "200 with an error": retried, as AWS
     * documents. */
    st = mp_storage(&cfg, s, MP_COMPLETE_200E);
    assert_int_equal(dip_storage_put_file(st, "k.csv", src, err, sizeof(err)),
                     DIP_STORAGE_OK);
    mp_stop(s);
    assert_int_equal(s->nreq, 6);
    assert_string_equal(s->req[4].method, "POST");
    assert_string_equal(s->req[5].method, "POST");
    assert_string_equal(s->req[4].body_sha, s->req[5].body_sha);
    verify_sigv4(&s->req[5], "secret", "eu-central-1");
    dip_storage_destroy(&st);
    dip_config_release(&cfg);

    /* The answer to the complete lost: the retry's NoSuchUpload is checked
     * with a HEAD, whose ETag says a 3-part upload completed. */
    st = mp_storage(&cfg, s, MP_COMPLETE_LOST);
    if (dip_storage_put_file(st, "k.csv", src, err, sizeof(err)) != 0)
        fail_msg("put with a lost answer: %s", err);
    mp_stop(s);
    assert_int_equal(s->nreq, 7);
    assert_string_equal(s->req[4].method, "POST");
    assert_string_equal(s->req[5].method, "POST");
    assert_string_equal(s->req[6].method, "HEAD");
    assert_string_equal(s->req[6].target, "/deals/k.csv");
    verify_sigv4(&s->req[6], "secret", "eu-central-1");
    dip_storage_destroy(&st);
    dip_config_release(&cfg);

    /* A kept-alive connection that dies under the next part: libcurl sends
     * it again on a new connection, rewinding the body. */
    st = mp_storage(&cfg, s, MP_KEEPALIVE_DROP);
    if (dip_storage_put_file(st, "k.csv", src, err, sizeof(err)) != 0)
        fail_msg("put after a dropped connection: %s", err);
    mp_stop(s);
    assert_int_equal(s->dropped, 1);
    assert_int_equal(s->nreq, 5);
    assert_int_equal(s->req[1].body_len, MP_PART);
    verify_sigv4(&s->req[1], "secret", "eu-central-1");
    unlink(src);
    dip_storage_destroy(&st);
    dip_config_release(&cfg);
    free(s);
}

/* --- a real S3-compatible server ---------------------------------------- */

typedef struct {
    pid_t pid;  /* s3rver we started, or 0 */
    int out_fd; /* its stdout, or -1 */
    char dir[256];
    char skip[256]; /* why the S3 tests are skipped, or "" */
    dip_config_t cfg;
    dip_storage_t *st;
} s3_fix_t;

/* Starts s3rver on a port of its choosing and reads the port it prints,
 * waiting at most 30 s. Its stdout stays open until teardown so that a late
 * line never meets a closed pipe. */
static int start_s3rver(s3_fix_t *f, const char *bin, char *ep, size_t eplen)
{
    int pfd[2];
    char out[1024];
    size_t got = 0;
    int port = 0;
    double deadline;
    struct timespec ts;
    if (pipe2(pfd, O_CLOEXEC) < 0 || mkdtemp(f->dir) == NULL)
        return -1;
    f->pid = fork();
    if (f->pid < 0)
        return -1;
    if (f->pid == 0) {
        int nul = open("/dev/null", O_RDWR);
        dup2(nul, 0);
        dup2(pfd[1], 1);
        dup2(nul, 2);
        execl(bin, bin, "-d", f->dir, "-a", "127.0.0.1", "-p", "0", "--silent",
              "--configure-bucket", "deals", (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    f->out_fd = pfd[0];
    clock_gettime(CLOCK_MONOTONIC, &ts);
    deadline = (double)ts.tv_sec + 30;
    while (port == 0 && got < sizeof(out) - 1) {
        struct pollfd p = {f->out_fd, POLLIN, 0};
        const char *at;
        ssize_t r;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        if ((double)ts.tv_sec > deadline || poll(&p, 1, 1000) < 0)
            break;
        if (!(p.revents & (POLLIN | POLLHUP)))
            continue;
        r = read(f->out_fd, out + got, sizeof(out) - 1 - got);
        if (r <= 0)
            break;
        got += (size_t)r;
        out[got] = '\0';
        at = strstr(out, "listening on 127.0.0.1:");
        if (at && strchr(at, '\n'))
            port = atoi(at + 23);
    }
    if (port <= 0)
        return -1;
    snprintf(ep, eplen, "http://127.0.0.1:%d", port);
    return 0;
}

static int s3_setup(void **state)
{
    s3_fix_t *f = calloc(1, sizeof(*f));
    const char *env = getenv("DEALIMPORT_TEST_S3_ENDPOINT");
    const char *bin =
        DEALIMPORT_SOURCE_DIR "/scripts/s3dev/node_modules/.bin/s3rver";
    char ep[512];
    const char *v;
    if (f == NULL)
        return -1;
    *state = f;
    f->out_fd = -1;
    snprintf(f->dir, sizeof(f->dir), "%s/dip-s3rver-XXXXXX", it_tmpdir());
    dip_config_init(&f->cfg);
    f->cfg.row_backoff_ms = 10;
    if (env && *env) {
        snprintf(ep, sizeof(ep), "%s", env);
        v = getenv("DEALIMPORT_TEST_S3_BUCKET");
        set_str(&f->cfg.storage_url, "s3://deals");
        if (v && *v) {
            char url[512];
            snprintf(url, sizeof(url), "s3://%s", v);
            set_str(&f->cfg.storage_url, url);
        }
        v = getenv("DEALIMPORT_TEST_S3_ACCESS_KEY");
        set_str(&f->cfg.s3_access_key, v && *v ? v : "S3RVER");
        v = getenv("DEALIMPORT_TEST_S3_SECRET_KEY");
        set_str(&f->cfg.s3_secret_key, v && *v ? v : "S3RVER");
    } else if (access(bin, X_OK) == 0) {
        if (start_s3rver(f, bin, ep, sizeof(ep)) < 0) {
            snprintf(f->skip, sizeof(f->skip), "s3rver did not start");
            return 0;
        }
        set_str(&f->cfg.storage_url, "s3://deals");
        /* s3rver knows this one key pair; it does not check signatures. */
        set_str(&f->cfg.s3_access_key, "S3RVER");
        set_str(&f->cfg.s3_secret_key, "S3RVER");
    } else {
        snprintf(f->skip, sizeof(f->skip),
                 "no DEALIMPORT_TEST_S3_ENDPOINT and no %s "
                 "(run scripts/bootstrap)",
                 bin);
        return 0;
    }
    set_str(&f->cfg.s3_endpoint, ep);
    f->st = open_storage(&f->cfg);
    return 0;
}

static int s3_teardown(void **state)
{
    s3_fix_t *f = *state;
    dip_storage_destroy(&f->st);
    dip_config_release(&f->cfg);
    if (f->pid > 0) {
        kill(f->pid, SIGTERM);
        waitpid(f->pid, NULL, 0);
        rm_tree(f->dir);
    }
    if (f->out_fd >= 0)
        close(f->out_fd);
    free(f);
    return 0;
}

static s3_fix_t *s3_fix(void **state)
{
    s3_fix_t *f = *state;
    if (f->skip[0]) {
        IT_SKIP_MISSING("skipped: S3 server tests: %s\n", f->skip);
    }
    return f;
}

static void s3_round_trip(s3_fix_t *f, const char *key, size_t n, uint32_t seed)
{
    char *data = make_bytes(n, seed), src[256], err[512] = "";
    sink_state_t ss;
    dip_storage_sink_t sink = make_sink(&ss);
    snprintf(src, sizeof(src), "%s/dip-s3src-%d", it_tmpdir(), (int)getpid());
    write_file(src, data, n);
    if (dip_storage_put_file(f->st, key, src, err, sizeof(err)) != 0)
        fail_msg("put '%s': %s", key, err);
    if (f->pid > 0) {
        /* The server decoded the path to exactly our key: s3rver keeps it
         * as a file name. */
        char stored[1024];
        snprintf(stored, sizeof(stored), "%s/deals/%s._S3rver_object", f->dir,
                 key);
        if (access(stored, F_OK) != 0)
            fail_msg("s3rver did not store '%s' under that name", key);
    }
    if (dip_storage_get(f->st, key, 0, &sink, err, sizeof(err)) != 0)
        fail_msg("get '%s': %s", key, err);
    assert_int_equal(ss.size_calls, 1);
    assert_int_equal(ss.size, (int64_t)n);
    assert_int_equal(ss.len, n);
    if (n)
        assert_memory_equal(ss.buf, data, n);
    assert_int_equal(dip_storage_delete(f->st, key, err, sizeof(err)), 0);
    free(ss.buf);
    sink = make_sink(&ss);
    assert_int_equal(dip_storage_get(f->st, key, 0, &sink, err, sizeof(err)),
                     DIP_STORAGE_ENOTFOUND);
    unlink(src);
    free(ss.buf);
    free(data);
}

static void test_s3_round_trip(void **state)
{
    s3_fix_t *f = s3_fix(state);
    s3_round_trip(f, "imports/plain.csv", 200000, 41);
    s3_round_trip(f, "imports/empty.csv", 0, 42);
}

static void test_s3_awkward_keys(void **state)
{
    s3_fix_t *f = s3_fix(state);
    s3_round_trip(f, "imports/with space.csv", 1000, 51);
    s3_round_trip(f, "imports/plus+sign.csv", 1000, 52);
    s3_round_trip(f, "imports/100%-real.csv", 1000, 53);
    s3_round_trip(f, "imports/a&b=c~d.csv", 1000, 54);
    s3_round_trip(f, "imports/m\xc3\xbcller \xe6\x97\xa5\xe6\x9c\xac.csv", 1000,
                  55);
}

static void test_s3_range_and_missing(void **state)
{
    s3_fix_t *f = s3_fix(state);
    const size_t n = 50000;
    char *data = make_bytes(n, 61), src[256], err[512] = "", want[256];
    sink_state_t ss;
    dip_storage_sink_t sink = make_sink(&ss);
    snprintf(src, sizeof(src), "%s/dip-s3src-%d", it_tmpdir(), (int)getpid());
    write_file(src, data, n);
    assert_int_equal(
        dip_storage_put_file(f->st, "imports/r.csv", src, err, sizeof(err)), 0);
    assert_int_equal(
        dip_storage_get(f->st, "imports/r.csv", 12345, &sink, err, sizeof(err)),
        DIP_STORAGE_OK);
    assert_int_equal(ss.size, (int64_t)n);
    assert_int_equal(ss.len, n - 12345);
    assert_memory_equal(ss.buf, data + 12345, n - 12345);
    free(ss.buf);
    sink = make_sink(&ss);
    /* From the end: nothing, and no error. */
    assert_int_equal(
        dip_storage_get(f->st, "imports/r.csv", n, &sink, err, sizeof(err)),
        DIP_STORAGE_OK);
    assert_int_equal(ss.len, 0);
    assert_int_equal(ss.size, (int64_t)n);
    assert_int_equal(
        dip_storage_delete(f->st, "imports/r.csv", err, sizeof(err)), 0);

    assert_int_equal(dip_storage_get(f->st, "imports/missing.csv", 0, &sink,
                                     err, sizeof(err)),
                     DIP_STORAGE_ENOTFOUND);
    snprintf(want, sizeof(want),
             "file 'imports/missing.csv' was not found in storage '%s'",
             f->cfg.storage_url);
    assert_non_null(strstr(err, want));
    /* Deleting a missing object is not an error. */
    assert_int_equal(
        dip_storage_delete(f->st, "imports/missing.csv", err, sizeof(err)),
        DIP_STORAGE_OK);
    unlink(src);
    free(ss.buf);
    free(data);
}

static double now_s(void);

/* A sink that hashes what it gets (with OpenSSL) instead of keeping it. */
typedef struct {
    EVP_MD_CTX *md;
    size_t len;
} hash_sink_t;

static int hash_data(void *arg, const char *buf, size_t len)
{
    hash_sink_t *h = arg;
    EVP_DigestUpdate(h->md, buf, len);
    h->len += len;
    return 0;
}

static void get_sha(dip_storage_t *st, const char *key, size_t *len,
                    char out[65])
{
    hash_sink_t h = {EVP_MD_CTX_new(), 0};
    dip_storage_sink_t sink = {&h, NULL, hash_data, NULL};
    unsigned char d[32];
    unsigned int dl = 0;
    char err[512] = "";
    EVP_DigestInit_ex(h.md, EVP_sha256(), NULL);
    if (dip_storage_get(st, key, 0, &sink, err, sizeof(err)) != 0)
        fail_msg("get '%s': %s", key, err);
    EVP_DigestFinal_ex(h.md, d, &dl);
    EVP_MD_CTX_free(h.md);
    hex32(d, out);
    *len = h.len;
}

static long peak_rss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* Multipart through the S3 server, with the smallest parts S3 takes. */
static void test_s3_multipart(void **state)
{
    s3_fix_t *f = s3_fix(state);
    const size_t n = 12 * 1024 * 1024 + 12345;
    char src[256], sha[65], got[65], err[512] = "";
    size_t len = 0;
    snprintf(src, sizeof(src), "%s/dip-s3mp-%d", it_tmpdir(), (int)getpid());
    write_big(src, n, 91, sha);
    dip_storage_set_multipart(f->st, 5 * 1024 * 1024, 5 * 1024 * 1024);
    if (dip_storage_put_file(f->st, "errors/m\xc3\xbc x.csv", src, err,
                             sizeof(err)) != 0)
        fail_msg("multipart put: %s", err);
    dip_storage_set_multipart(f->st, 0, 0);
    unlink(src);
    get_sha(f->st, "errors/m\xc3\xbc x.csv", &len, got);
    assert_int_equal(len, n);
    assert_string_equal(got, sha);
    assert_int_equal(
        dip_storage_delete(f->st, "errors/m\xc3\xbc x.csv", err, sizeof(err)),
        0);
}

/* 100 MB with the default threshold and part size: seven parts, and the
 * process's peak memory grows by far less than the object. */
static void test_s3_multipart_100mb(void **state)
{
    s3_fix_t *f = s3_fix(state);
    const size_t n = 100 * 1000 * 1000;
    char src[256], sha[65], got[65], err[512] = "";
    size_t len = 0;
    long before, after;
    double t0;
    snprintf(src, sizeof(src), "%s/dip-s3big-%d", it_tmpdir(), (int)getpid());
    write_big(src, n, 92, sha);
    before = peak_rss_kb();
    t0 = now_s();
    if (dip_storage_put_file(f->st, "errors/big.csv", src, err, sizeof(err)) !=
        0)
        fail_msg("100 MB put: %s", err);
    t0 = now_s() - t0;
    after = peak_rss_kb();
    unlink(src);
    print_message("100 MB upload in parts in %.2f s: peak RSS %ld KiB before, "
                  "%ld KiB after\n",
                  t0, before, after);
    assert_true(after - before < 16 * 1024);
    get_sha(f->st, "errors/big.csv", &len, got);
    assert_int_equal(len, n);
    assert_string_equal(got, sha);
    if (f->pid > 0) {
        /* s3rver keeps a multipart object's parts apart until it is
         * complete: the object is there, whole. */
        char stored[1024];
        struct stat st;
        snprintf(stored, sizeof(stored),
                 "%s/deals/errors/big.csv._S3rver_object", f->dir);
        assert_int_equal(stat(stored, &st), 0);
        assert_int_equal((size_t)st.st_size, n);
    }
    assert_int_equal(
        dip_storage_delete(f->st, "errors/big.csv", err, sizeof(err)), 0);
}

/* --- throughput (DEALIMPORT_TEST_BENCH_MB) ------------------------------ */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void bench_one(const char *what, dip_storage_t *st, const char *key,
                      size_t n)
{
    char err[512] = "";
    sink_state_t ss;
    dip_storage_sink_t sink = make_sink(&ss);
    double t0, dt;
    ss.copy = 0; /* measure the storage, not a memcpy */
    t0 = now_s();
    if (dip_storage_get(st, key, 0, &sink, err, sizeof(err)) != 0)
        fail_msg("bench get: %s", err);
    dt = now_s() - t0;
    assert_int_equal(ss.len, n);
    print_message("throughput %s: %zu bytes in %.3f s = %.1f MB/s\n", what, n,
                  dt, (double)n / 1e6 / dt);
}

static void test_bench(void **state)
{
    s3_fix_t *f = *state;
    const char *mb = getenv("DEALIMPORT_TEST_BENCH_MB");
    size_t n;
    char *data, src[1024], dir[256], url[512], err[512] = "";
    dip_config_t cfg;
    dip_storage_t *fst;
    if (mb == NULL || atoi(mb) <= 0) {
        print_message("set DEALIMPORT_TEST_BENCH_MB to measure throughput\n");
        skip();
    }
    n = (size_t)atoi(mb) * 1000000;
    data = make_bytes(n, 71);
    snprintf(dir, sizeof(dir), "%s/dip-bench-XXXXXX", it_tmpdir());
    assert_non_null(mkdtemp(dir));
    snprintf(src, sizeof(src), "%s/src", dir);
    write_file(src, data, n);
    free(data);
    snprintf(url, sizeof(url), "file://%s", dir);
    dip_config_init(&cfg);
    set_str(&cfg.storage_url, url);
    fst = open_storage(&cfg);
    bench_one("file://", fst, "src", n);
    if (f->skip[0] == '\0') {
        assert_int_equal(
            dip_storage_put_file(f->st, "bench.csv", src, err, sizeof(err)), 0);
        bench_one("s3", f->st, "bench.csv", n);
        bench_one("s3 (again)", f->st, "bench.csv", n);
        dip_storage_delete(f->st, "bench.csv", err, sizeof(err));
    }
    dip_storage_destroy(&fst);
    dip_config_release(&cfg);
    rm_tree(dir);
}

int main(void)
{
    const struct CMUnitTest http_tests[] = {
        cmocka_unit_test(test_http_resume_after_cut),
        cmocka_unit_test(test_http_retry_503),
        cmocka_unit_test(test_http_sink_abort),
        cmocka_unit_test(test_http_denied),
        cmocka_unit_test(test_http_refused),
        cmocka_unit_test(test_http_put_hash),
        cmocka_unit_test(test_multipart_signed),
        cmocka_unit_test(test_session_token_file),
        cmocka_unit_test(test_multipart_abort),
        cmocka_unit_test(test_multipart_retries),
    };
    const struct CMUnitTest s3_tests[] = {
        cmocka_unit_test(test_s3_round_trip),
        cmocka_unit_test(test_s3_awkward_keys),
        cmocka_unit_test(test_s3_range_and_missing),
        cmocka_unit_test(test_s3_multipart),
        cmocka_unit_test(test_s3_multipart_100mb),
        cmocka_unit_test(test_bench),
    };
    int failed = 0;
    failed += cmocka_run_group_tests_name("http", http_tests, NULL, NULL);
    failed +=
        cmocka_run_group_tests_name("s3", s3_tests, s3_setup, s3_teardown);
    return failed ? 1 : 0;
}
