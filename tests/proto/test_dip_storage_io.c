/*
 * Tests dip_storage_io in three parts. file://: whole and offset downloads,
 * missing files, keys that try to leave the directory, a sink that stops,
 * upload and download round trips. A scripted HTTP server on a loopback
 * thread: a transfer cut short and resumed with Range, 503 then 200, 503 for
 * good, 403, refused connections, and the signed PUT's payload hash. A real
 * S3-compatible server (DEALIMPORT_TEST_S3_ENDPOINT, else s3rver from
 * scripts/s3dev when installed, else skipped with the reason): round trips
 * with awkward keys, ranges, 404 and delete. With DEALIMPORT_TEST_BENCH_MB
 * set it also prints download throughput for file:// and S3.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dip_config.h"
#include "dip_sigv4.h"
#include "dip_storage_io.h"
#include "it_skip.h"

/* --- helpers ------------------------------------------------------------ */

typedef struct {
    char *buf;
    size_t len, cap;
    int size_calls;
    int64_t size;
    int data_before_size; /* data arrived before size() */
    size_t stop_after;    /* stop once this many bytes arrived; 0 never */
    int copy;             /* keep the bytes (else only count them) */
} sink_state_t;

static void sink_size(void *arg, int64_t total)
{
    sink_state_t *s = arg;
    s->size_calls++;
    s->size = total;
}

static int sink_data(void *arg, const char *buf, size_t len)
{
    sink_state_t *s = arg;
    if (s->size_calls == 0)
        s->data_before_size = 1;
    if (s->copy) {
        if (s->len + len > s->cap) {
            size_t cap = s->cap ? s->cap : 4096;
            while (cap < s->len + len)
                cap *= 2;
            s->buf = realloc(s->buf, cap);
            assert_non_null(s->buf);
            s->cap = cap;
        }
        memcpy(s->buf + s->len, buf, len);
    }
    s->len += len;
    return s->stop_after && s->len >= s->stop_after;
}

static dip_storage_sink_t make_sink(sink_state_t *s)
{
    memset(s, 0, sizeof(*s));
    s->copy = 1;
    s->size = -2;
    return (dip_storage_sink_t){s, sink_size, sink_data};
}

/* Deterministic bytes that differ at every offset. */
static char *make_bytes(size_t n, uint32_t seed)
{
    char *b = malloc(n ? n : 1);
    uint32_t x = seed ? seed : 1;
    assert_non_null(b);
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        b[i] = (char)(x >> 24);
    }
    return b;
}

static void write_file(const char *path, const char *data, size_t n)
{
    FILE *f = fopen(path, "wbe");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static int rm_one(const char *path, const struct stat *st, int flag,
                  struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rm_tree(const char *dir)
{
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void set_str(char **field, const char *value)
{
    free(*field);
    *field = value ? strdup(value) : NULL;
}

static dip_storage_t *open_storage(dip_config_t *cfg)
{
    char err[512] = "";
    dip_storage_t *st = dip_storage_new(cfg, err, sizeof(err));
    if (st == NULL)
        fail_msg("dip_storage_new: %s", err);
    return st;
}

/* --- file:// ------------------------------------------------------------ */

typedef struct {
    char dir[64];
    char url[80];
    dip_config_t cfg;
    dip_storage_t *st;
} file_fix_t;

static int file_setup(void **state)
{
    file_fix_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/dip-storage-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->url, sizeof(f->url), "file://%s/", f->dir);
    dip_config_init(&f->cfg);
    set_str(&f->cfg.storage_url, f->url);
    f->st = dip_storage_new(&f->cfg, NULL, 0);
    *state = f;
    return f->st ? 0 : -1;
}

static int file_teardown(void **state)
{
    file_fix_t *f = *state;
    dip_storage_destroy(&f->st);
    dip_config_release(&f->cfg);
    rm_tree(f->dir);
    free(f);
    return 0;
}

static void test_file_whole_and_offset(void **state)
{
    file_fix_t *f = *state;
    const size_t n = 300000; /* several read chunks */
    char *data = make_bytes(n, 7), path[128], err[512] = "";
    sink_state_t s;
    dip_storage_sink_t sink = make_sink(&s);

    snprintf(path, sizeof(path), "%s/deals.csv", f->dir);
    write_file(path, data, n);
    assert_int_equal(
        dip_storage_get(f->st, "deals.csv", 0, &sink, err, sizeof(err)),
        DIP_STORAGE_OK);
    assert_int_equal(s.size_calls, 1);
    assert_int_equal(s.size, (int64_t)n);
    assert_false(s.data_before_size);
    assert_int_equal(s.len, n);
    assert_memory_equal(s.buf, data, n);
    free(s.buf);

    sink = make_sink(&s);
    assert_int_equal(
        dip_storage_get(f->st, "deals.csv", 123457, &sink, err, sizeof(err)),
        DIP_STORAGE_OK);
    assert_int_equal(s.size, (int64_t)n); /* the total, not what is left */
    assert_int_equal(s.len, n - 123457);
    assert_memory_equal(s.buf, data + 123457, n - 123457);
    free(s.buf);

    /* From the very end: nothing, successfully; past it: an error. */
    sink = make_sink(&s);
    assert_int_equal(
        dip_storage_get(f->st, "deals.csv", n, &sink, err, sizeof(err)),
        DIP_STORAGE_OK);
    assert_int_equal(s.len, 0);
    assert_int_equal(s.size_calls, 1);
    assert_int_equal(
        dip_storage_get(f->st, "deals.csv", n + 1, &sink, err, sizeof(err)),
        DIP_STORAGE_EFAIL);
    assert_non_null(strstr(err, "offset 300001 is beyond the end of file "
                                "'deals.csv'"));
    free(s.buf);
    free(data);
}

static void test_file_missing(void **state)
{
    file_fix_t *f = *state;
    char err[512] = "", want[256];
    sink_state_t s;
    dip_storage_sink_t sink = make_sink(&s);
    assert_int_equal(
        dip_storage_get(f->st, "imports/nope.csv", 0, &sink, err, sizeof(err)),
        DIP_STORAGE_ENOTFOUND);
    snprintf(want, sizeof(want),
             "file 'imports/nope.csv' was not found in storage '%s'", f->url);
    assert_string_equal(err, want);
    assert_int_equal(s.size_calls, 0);
    assert_int_equal(s.len, 0);
}

static void expect_bad_key(const char *key, size_t len, const char *words)
{
    char err[512] = "";
    assert_int_equal(dip_storage_check_key(key, len, err, sizeof(err)),
                     DIP_STORAGE_EINVAL);
    if (strstr(err, words) == NULL)
        fail_msg("key '%s': message '%s' lacks '%s'", key, err, words);
}

static void test_bad_keys(void **state)
{
    file_fix_t *f = *state;
    char err[512] = "", big[DIP_STORAGE_KEY_MAX + 2];
    sink_state_t s;
    dip_storage_sink_t sink = make_sink(&s);

    expect_bad_key("", 0, "file key is empty");
    expect_bad_key("../x", 4, "file key '../x' has a '..' path segment");
    expect_bad_key("/etc/passwd", 11, "file key '/etc/passwd' is absolute");
    expect_bad_key("a/../../b", 9, "'..' path segment");
    expect_bad_key("a/..", 4, "'..' path segment");
    expect_bad_key("a\\..\\..\\b", 9, "'..' path segment");
    expect_bad_key("..\\x", 4, "'..' path segment");
    expect_bad_key("\\x", 2, "is absolute");
    expect_bad_key("./x", 3, "has a '.' path segment");
    expect_bad_key("a\0../../etc/passwd", 18,
                   "file key 'a' contains a NUL byte");
    expect_bad_key("a\nb", 3, "contains a control character");
    memset(big, 'k', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    expect_bad_key(big, strlen(big), "longer than 1024 bytes");

    /* Ordinary keys, including dots inside names, pass. */
    assert_int_equal(
        dip_storage_check_key("imports/a..b/.hidden.csv", 24, err, sizeof(err)),
        DIP_STORAGE_OK);
    assert_int_equal(dip_storage_check_key("x", 1, NULL, 0), DIP_STORAGE_OK);

    /* The operations refuse them before touching anything. */
    assert_int_equal(dip_storage_get(f->st, "../x", 0, &sink, err, sizeof(err)),
                     DIP_STORAGE_EINVAL);
    assert_int_equal(dip_storage_get(f->st, "", 0, &sink, err, sizeof(err)),
                     DIP_STORAGE_EINVAL);
    assert_int_equal(dip_storage_put_file(f->st, "/etc/passwd", "/dev/null",
                                          err, sizeof(err)),
                     DIP_STORAGE_EINVAL);
    assert_int_equal(dip_storage_delete(f->st, "a/../../b", err, sizeof(err)),
                     DIP_STORAGE_EINVAL);
    assert_int_equal(s.size_calls, 0);
}

/* A symbolic link in the storage is not followed out of it. */
static void test_file_symlink_refused(void **state)
{
    file_fix_t *f = *state;
    char link[128], err[512] = "";
    sink_state_t s;
    dip_storage_sink_t sink = make_sink(&s);
    snprintf(link, sizeof(link), "%s/etc", f->dir);
    assert_int_equal(symlink("/etc", link), 0);
    assert_int_equal(
        dip_storage_get(f->st, "etc/passwd", 0, &sink, err, sizeof(err)),
        DIP_STORAGE_EINVAL);
    assert_non_null(strstr(err, "symbolic link"));
    assert_int_equal(s.len, 0);
    unlink(link);
}

static void test_file_sink_abort(void **state)
{
    file_fix_t *f = *state;
    const size_t n = 400000;
    char *data = make_bytes(n, 9), path[128], err[512] = "";
    sink_state_t s;
    dip_storage_sink_t sink = make_sink(&s);
    snprintf(path, sizeof(path), "%s/big.csv", f->dir);
    write_file(path, data, n);
    s.stop_after = 1;
    assert_int_equal(
        dip_storage_get(f->st, "big.csv", 0, &sink, err, sizeof(err)),
        DIP_STORAGE_EABORT);
    assert_non_null(strstr(err, "'big.csv'"));
    assert_non_null(strstr(err, "stopped by its reader"));
    /* Stopped after the first chunk: nothing more was read into the sink. */
    assert_true(s.len > 0 && s.len < n);
    assert_memory_equal(s.buf, data, s.len);
    free(s.buf);
    free(data);
}

static int count_entries(const char *dir)
{
    char cmd[256];
    int n = 0;
    FILE *p;
    snprintf(cmd, sizeof(cmd), "ls -A '%s'", dir);
    p = popen(cmd, "r");
    assert_non_null(p);
    while (fgets(cmd, sizeof(cmd), p))
        n++;
    pclose(p);
    return n;
}

static void test_file_put_get_delete(void **state)
{
    file_fix_t *f = *state;
    const size_t n = 150001;
    const char *key = "imports/2024/a b+c%\xc3\xbc.csv";
    char *data = make_bytes(n, 11), src[128], sub[160], err[512] = "";
    sink_state_t s;
    dip_storage_sink_t sink = make_sink(&s);

    snprintf(src, sizeof(src), "%s-src", f->dir);
    write_file(src, data, n);
    assert_int_equal(dip_storage_put_file(f->st, key, src, err, sizeof(err)),
                     DIP_STORAGE_OK);
    assert_int_equal(dip_storage_get(f->st, key, 0, &sink, err, sizeof(err)),
                     DIP_STORAGE_OK);
    assert_int_equal(s.len, n);
    assert_memory_equal(s.buf, data, n);
    /* Only the file is left behind, no temporary. */
    snprintf(sub, sizeof(sub), "%s/imports/2024", f->dir);
    assert_int_equal(count_entries(sub), 1);

    /* Replacing keeps one file with the new bytes. */
    write_file(src, "new", 3);
    assert_int_equal(dip_storage_put_file(f->st, key, src, err, sizeof(err)),
                     DIP_STORAGE_OK);
    free(s.buf);
    sink = make_sink(&s);
    assert_int_equal(dip_storage_get(f->st, key, 0, &sink, err, sizeof(err)),
                     DIP_STORAGE_OK);
    assert_int_equal(s.len, 3);
    assert_memory_equal(s.buf, "new", 3);
    assert_int_equal(count_entries(sub), 1);

    assert_int_equal(dip_storage_delete(f->st, key, err, sizeof(err)),
                     DIP_STORAGE_OK);
    assert_int_equal(dip_storage_get(f->st, key, 0, &sink, err, sizeof(err)),
                     DIP_STORAGE_ENOTFOUND);
    /* Deleting what is not there is fine. */
    assert_int_equal(dip_storage_delete(f->st, key, err, sizeof(err)),
                     DIP_STORAGE_OK);
    assert_int_equal(
        dip_storage_delete(f->st, "no/such/dir/x", err, sizeof(err)),
        DIP_STORAGE_OK);
    /* A missing source file is named. */
    assert_int_equal(dip_storage_put_file(f->st, "x.csv", "/nonexistent/src",
                                          err, sizeof(err)),
                     DIP_STORAGE_EFAIL);
    assert_non_null(strstr(err, "cannot read '/nonexistent/src'"));
    unlink(src);
    free(s.buf);
    free(data);
}

static void test_new_refuses_bad_settings(void **state)
{
    dip_config_t cfg;
    char err[512] = "";
    (void)state;
    dip_config_init(&cfg);
    assert_null(dip_storage_new(&cfg, err, sizeof(err)));
    assert_string_equal(err, "DEALIMPORT_STORAGE_URL is not set");
    set_str(&cfg.storage_url, "ftp://x");
    assert_null(dip_storage_new(&cfg, err, sizeof(err)));
    assert_non_null(strstr(err, "'ftp://x' is neither"));
    set_str(&cfg.storage_url, "s3://deals");
    assert_null(dip_storage_new(&cfg, err, sizeof(err)));
    assert_non_null(strstr(err, "DEALIMPORT_S3_ACCESS_KEY"));
    set_str(&cfg.s3_access_key, "a");
    set_str(&cfg.s3_secret_key, "b");
    set_str(&cfg.s3_endpoint, "localhost:9000");
    assert_null(dip_storage_new(&cfg, err, sizeof(err)));
    assert_non_null(strstr(err, "'localhost:9000' does not start with"));
    set_str(&cfg.storage_url, "s3://deals/sub");
    assert_null(dip_storage_new(&cfg, err, sizeof(err)));
    assert_non_null(strstr(err, "does not name a bucket"));
    dip_config_release(&cfg);
}

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
    char ep[64];
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
    char *data = make_bytes(n, 31), src[64], err[512] = "", hash[65];
    char want[128];
    srv_t *s = calloc(1, sizeof(*s));
    dip_config_t cfg;
    dip_storage_t *st;
    (void)state;

    snprintf(src, sizeof(src), "/tmp/dip-put-%d", (int)getpid());
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

/* --- a real S3-compatible server ---------------------------------------- */

typedef struct {
    pid_t pid;  /* s3rver we started, or 0 */
    int out_fd; /* its stdout, or -1 */
    char dir[64];
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
    char ep[128];
    const char *v;
    if (f == NULL)
        return -1;
    *state = f;
    f->out_fd = -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/dip-s3rver-XXXXXX");
    dip_config_init(&f->cfg);
    f->cfg.row_backoff_ms = 10;
    if (env && *env) {
        snprintf(ep, sizeof(ep), "%s", env);
        v = getenv("DEALIMPORT_TEST_S3_BUCKET");
        set_str(&f->cfg.storage_url, "s3://deals");
        if (v && *v) {
            char url[128];
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
    char *data = make_bytes(n, seed), src[64], err[512] = "";
    sink_state_t ss;
    dip_storage_sink_t sink = make_sink(&ss);
    snprintf(src, sizeof(src), "/tmp/dip-s3src-%d", (int)getpid());
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
    char *data = make_bytes(n, 61), src[64], err[512] = "", want[256];
    sink_state_t ss;
    dip_storage_sink_t sink = make_sink(&ss);
    snprintf(src, sizeof(src), "/tmp/dip-s3src-%d", (int)getpid());
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
    char *data, src[96], dir[64], url[80], err[512] = "";
    dip_config_t cfg;
    dip_storage_t *fst;
    if (mb == NULL || atoi(mb) <= 0) {
        print_message("set DEALIMPORT_TEST_BENCH_MB to measure throughput\n");
        skip();
    }
    n = (size_t)atoi(mb) * 1000000;
    data = make_bytes(n, 71);
    snprintf(dir, sizeof(dir), "/tmp/dip-bench-XXXXXX");
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
    const struct CMUnitTest file_tests[] = {
        cmocka_unit_test(test_file_whole_and_offset),
        cmocka_unit_test(test_file_missing),
        cmocka_unit_test(test_bad_keys),
        cmocka_unit_test(test_file_symlink_refused),
        cmocka_unit_test(test_file_sink_abort),
        cmocka_unit_test(test_file_put_get_delete),
        cmocka_unit_test(test_new_refuses_bad_settings),
    };
    const struct CMUnitTest http_tests[] = {
        cmocka_unit_test(test_http_resume_after_cut),
        cmocka_unit_test(test_http_retry_503),
        cmocka_unit_test(test_http_sink_abort),
        cmocka_unit_test(test_http_denied),
        cmocka_unit_test(test_http_refused),
        cmocka_unit_test(test_http_put_hash),
    };
    const struct CMUnitTest s3_tests[] = {
        cmocka_unit_test(test_s3_round_trip),
        cmocka_unit_test(test_s3_awkward_keys),
        cmocka_unit_test(test_s3_range_and_missing),
        cmocka_unit_test(test_bench),
    };
    int failed = 0;
    failed += cmocka_run_group_tests_name("file", file_tests, file_setup,
                                          file_teardown);
    failed += cmocka_run_group_tests_name("http", http_tests, NULL, NULL);
    failed +=
        cmocka_run_group_tests_name("s3", s3_tests, s3_setup, s3_teardown);
    return failed ? 1 : 0;
}
