/*
 * End to end: a supervisor whose database does not answer (its URI names a
 * loopback port where nothing listens), with DEALIMPORT_METRICS_ADDR.
 *
 * 1. Health with the database away: /healthz 200 (its loop turns), /readyz
 *    503 "database unavailable", dealimport_database_up 0 in a scrape that
 *    prometheus_client parses, and `dealimportctl status` exits 69 with
 *    "database unavailable" as its first line.
 * 2. Slow clients (slowloris): 50 connections, loopback only, each sending
 *    one byte of a request every 5 s and connecting again when dropped (25
 *    from 127.0.0.1, the scraper's own address, as local users or a NAT
 *    share one, and 25 from 25 others); meanwhile a well-behaved client
 *    scrapes every 2 s from 127.0.0.1, and every scrape must be
 *    answered 200 with the metrics within a generous 15 s. The listener's
 *    drops by reason move (the one address over its share; the others past
 *    the deadline). Figures are printed, not asserted.
 *
 * Failure classes: 1 (slow database) and 5 (no database at all): readiness
 * says so, liveness does not, the listener answers whatever the database
 * does; 13 (neighbours): a slow client holds one connection for at most
 * the deadline, an address at most its share, and a new connection always
 * gets in; 14: every assertion is an outcome that fails without the
 * feature (a 503 body, an exit status, a drop counter, a scrape answered).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "it_ctl.h"
#include "it_env.h"
#include "it_skip.h"
#include "it_tmp.h"

#define SLOW_CLIENTS 50
#define SLOW_SAME_ADDR 25
#define SCRAPES 8

static it_env_t env;
static pid_t sup = -1;
static int port;
static char logpath[256], runtime[256];

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int free_port(void)
{
    struct sockaddr_in a;
    socklen_t l = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), p;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, (struct sockaddr *)&a, sizeof(a));
    getsockname(fd, (struct sockaddr *)&a, &l);
    p = ntohs(a.sin_port);
    close(fd);
    return p;
}

/* A socket from 127.0.0.src to the listener; -1 when it cannot connect. */
static int connect_from(int src, int timeout_ms)
{
    struct sockaddr_in a;
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(0x7f000000u | (uint32_t)src);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
        goto fail;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
        goto fail;
    return fd;
fail:
    if (fd >= 0)
        close(fd);
    return -1;
}

/* GET path from 127.0.0.1; the HTTP status (0: no answer within
 * timeout_ms), the body into out. */
static int get(const char *path, char *out, size_t cap, int timeout_ms)
{
    char req[128];
    size_t len = 0;
    ssize_t n;
    int fd = connect_from(1, timeout_ms), code = 0;
    char *body;
    out[0] = '\0';
    if (fd < 0)
        return 0;
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
    if (write(fd, req, strlen(req)) == (ssize_t)strlen(req))
        while (len + 1 < cap && (n = read(fd, out + len, cap - 1 - len)) > 0)
            len += (size_t)n;
    close(fd);
    out[len] = '\0';
    if (sscanf(out, "HTTP/1.1 %d", &code) != 1)
        return 0;
    body = strstr(out, "\r\n\r\n");
    if (body)
        memmove(out, body + 4, strlen(body + 4) + 1);
    return code;
}

/* The value of sample line "name " in Prometheus text, -1 if absent. */
static double value(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = text; (p = strstr(p, name)) != NULL; p += n)
        if ((p == text || p[-1] == '\n') && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    return -1;
}

static int setup(void **state)
{
    static char addr[64], uri[128];
    const char *extra[] = {addr, uri, NULL};
    (void)state;
    port = free_port();
    snprintf(addr, sizeof(addr), "DEALIMPORT_METRICS_ADDR=127.0.0.1:%d", port);
    /* Nothing listens there: a database that never answers. */
    snprintf(uri, sizeof(uri),
             "DEALIMPORT_MONGODB_URI=mongodb://127.0.0.1:%d/"
             "it_health?serverSelectionTimeoutMS=500&connectTimeoutMS=500",
             free_port());
    snprintf(logpath, sizeof(logpath), "%s/it-health-%d.log", it_tmpdir(),
             (int)getpid());
    sup = it_supervisor_start(&env, extra, logpath);
    snprintf(runtime, sizeof(runtime), "%s", env.runtime);
    return sup > 0 ? 0 : -1;
}

static int teardown(void **state)
{
    int st;
    (void)state;
    st = it_process_stop(sup, SIGTERM, 30000);
    if (!(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
        fprintf(stderr, "supervisor did not exit 0 (status %d); log in %s\n",
                st, logpath);
        return -1;
    }
    return 0;
}

static void test_database_away(void **state)
{
    static char body[1 << 16], out[8192], parsed[1 << 16];
    const char *args[] = {"status", "--timeout", "30", NULL};
    char cmd[256];
    int code = 0, rc;
    (void)state;
    /* The sampler's first check fails within its driver's timeouts. */
    for (int i = 0; i < 300; i++) {
        code = get("/readyz", body, sizeof(body), 5000);
        if (code == 503 && strstr(body, "did not answer"))
            break;
        usleep(100000);
    }
    fprintf(stderr, "/readyz: %d %s", code, body);
    assert_int_equal(code, 503);
    assert_non_null(strstr(body, "unavailable: database unavailable"));
    assert_non_null(strstr(body, "did not answer"));
    code = get("/healthz", body, sizeof(body), 5000);
    fprintf(stderr, "/healthz: %d %s", code, body);
    assert_int_equal(code, 200);

    snprintf(cmd, sizeof(cmd),
             "curl -sf http://127.0.0.1:%d/metrics | /usr/bin/python3 "
             "'%s/tests/support/prom_parse.py'",
             port, DEALIMPORT_SOURCE_DIR);
    rc = it_ctl_shell(runtime, cmd, parsed, sizeof(parsed), 20000);
    if (rc == 77)
        IT_SKIP_MISSING("skipped: %s\n",
                        "python3-prometheus-client is not installed");
    assert_int_equal(rc, 0);
    assert_true(value(parsed, "dealimport_database_up") == 0);
    assert_true(value(parsed,
                      "dealimport_build_info{version=\"" DEALIMPORT_VERSION
                      "\"}") == 1);

    rc = it_ctl_run(runtime, args, out, sizeof(out), NULL, 0, 60000);
    fprintf(stderr, "dealimportctl status (exit %d):\n%s", rc, out);
    assert_int_equal(rc, 69);
    assert_int_equal(strncmp(out, "database unavailable", 20), 0);
    assert_non_null(strstr(out, "\nimports:  unknown"));
}

/* The slow clients, in a child until it is killed (or 120 s pass). */
static void slow_clients(void)
{
    static const char req[] = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    int fd[SLOW_CLIENTS];
    size_t sent[SLOW_CLIENTS];
    alarm(120);
    signal(SIGPIPE, SIG_IGN);
    for (int i = 0; i < SLOW_CLIENTS; i++) {
        fd[i] = -1;
        sent[i] = 0;
    }
    for (;;) {
        for (int i = 0; i < SLOW_CLIENTS; i++) {
            /* Half share the scraper's own address, 127.0.0.1. */
            int src = i < SLOW_SAME_ADDR ? 1 : 2 + (i - SLOW_SAME_ADDR);
            char sink[256];
            if (fd[i] >= 0 && recv(fd[i], sink, sizeof(sink), MSG_DONTWAIT) ==
                                  0) { /* dropped: come back */
                close(fd[i]);
                fd[i] = -1;
            }
            if (fd[i] < 0) {
                fd[i] = connect_from(src, 1000);
                sent[i] = 0;
            }
            /* One byte, never the last: the request never ends. */
            if (fd[i] >= 0 && sent[i] + 1 < sizeof(req) - 1 &&
                send(fd[i], req + sent[i], 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1)
                sent[i]++;
        }
        sleep(5);
    }
}

static void test_slow_clients(void **state)
{
    static char body[1 << 16];
    int answered = 0;
    int64_t worst = 0, total = 0;
    pid_t child;
    (void)state;
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        slow_clients();
        _exit(0);
    }
    /* Let them connect and start their trickle. */
    sleep(2);
    for (int i = 0; i < SCRAPES; i++) {
        int64_t t0 = mono_ms(), took;
        int code = get("/metrics", body, sizeof(body), 15000);
        took = mono_ms() - t0;
        if (code == 200 && value(body, "dealimport_workers_running") >= 0)
            answered++;
        else
            fprintf(stderr, "scrape %d: HTTP %d after %lld ms\n", i, code,
                    (long long)took);
        total += took;
        if (took > worst)
            worst = took;
        sleep(2);
    }
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    fprintf(
        stderr,
        "slow clients: %d; scrapes answered %d of %d, mean %lld ms, "
        "worst %lld ms; dropped: deadline %.0f, per_address %.0f, "
        "full %.0f\n",
        SLOW_CLIENTS, answered, SCRAPES, (long long)(total / SCRAPES),
        (long long)worst,
        value(body, "dealimport_metrics_http_dropped_total{reason="
                    "\"deadline\"}"),
        value(body, "dealimport_metrics_http_dropped_total{reason="
                    "\"per_address\"}"),
        value(body, "dealimport_metrics_http_dropped_total{reason=\"full\"}"));
    assert_int_equal(answered, SCRAPES);
    /* 127.0.0.1 went over its share (its oldest made room for newer
     * ones, the scrapes among them), the others hit the deadline. */
    assert_true(value(body, "dealimport_metrics_http_dropped_total{reason="
                            "\"per_address\"}") > 0);
    assert_true(value(body, "dealimport_metrics_http_dropped_total{reason="
                            "\"deadline\"}") > 0);
    assert_int_equal(get("/healthz", body, sizeof(body), 5000), 200);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_database_away),
        cmocka_unit_test(test_slow_clients),
    };
    int rc = it_env_init(&env, "health");
    if (rc)
        return rc;
    rc = cmocka_run_group_tests(tests, setup, teardown);
    it_env_release(&env);
    return rc;
}
