/*
 * End to end on the development stack: 10,000 random and malformed frames
 * to the supervisor's control socket (random bytes, truncated and mutated
 * requests, wrong types, unknown versions and commands, bad ids, several
 * frames, oversized frames, raw bytes that are not ZeroMQ at all) while an
 * import runs. Every message gets exactly the answer it deserves, in order;
 * the supervisor keeps running, the import completes exactly, the log is not
 * flooded, and a real command works afterwards.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "dip_ctl.h"
#include "it_ctl.h"
#include "it_env.h"
#include "it_tmp.h"

#define MESSAGES 10000
#define ROWS 100000
#define BAD_EVERY 500

static it_env_t env;
static pid_t sup = -1;
static char logpath[256], runtime[256];
static uint64_t rng;

typedef enum {
    EXPECT_BAD = 1, /* bad_request */
    EXPECT_OK,      /* ok:true (status, list) */
    EXPECT_MISSING, /* not_found */
    EXPECT_ANY,     /* any well-formed reply */
} expect_t;

static int setup(void **state)
{
    (void)state;
    snprintf(logpath, sizeof(logpath), "%s/it-ctl-fuzz-%d.log", it_tmpdir(),
             (int)getpid());
    sup = it_supervisor_start(&env, NULL, logpath);
    snprintf(runtime, sizeof(runtime), "%s", env.runtime);
    return sup > 0 ? 0 : -1;
}

static int teardown(void **state)
{
    int st;
    (void)state;
    st = it_process_stop(sup, SIGTERM, 30000);
    return st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static size_t below(size_t n)
{
    return n ? (size_t)(next() % n) : 0;
}

static size_t random_bytes(char *buf, size_t max)
{
    size_t n = below(max + 1);
    for (size_t i = 0; i < n; i++)
        buf[i] = (char)next();
    return n;
}

static void random_hex_id(char *out)
{
    for (int i = 0; i < 24; i++)
        out[i] = "0123456789abcdef"[below(16)];
    out[24] = '\0';
}

static const char *const valid[] = {
    "{\"v\":1,\"cmd\":\"status\"}",
    "{\"v\":1,\"cmd\":\"list\",\"status\":\"paused\",\"limit\":5}",
    "{\"v\":1,\"cmd\":\"show\",\"id\":\"64b0000000000000000000aa\"}",
    "{\"v\":1,\"cmd\":\"cancel\",\"id\":\"64b0000000000000000000aa\"}",
};

static const char *const wrong_types[] = {
    "{\"v\":\"1\",\"cmd\":\"status\"}",
    "{\"v\":1,\"cmd\":[\"status\"]}",
    "{\"v\":1,\"cmd\":\"show\",\"id\":12345}",
    "{\"v\":1,\"cmd\":\"list\",\"limit\":\"10\"}",
    "{\"v\":1,\"cmd\":\"list\",\"status\":true}",
    "{\"v\":1,\"cmd\":\"list\",\"account\":{}}",
    "{\"v\":1,\"cmd\":\"pause\",\"id\":null}",
    "{\"v\":null,\"cmd\":\"status\"}",
    "{\"v\":1,\"cmd\":\"status\",\"extra\":1}",
    "[{\"v\":1,\"cmd\":\"status\"}]",
    "{\"v\":1,\"cmd\":\"status\",\"v\":1}",
    "{\"v\":1e0,\"cmd\":\"status\"}",
    "{\"v\":1,\"cmd\":\"list\",\"limit\":99999999999999999999}",
};

/* One message: frames into f (lengths in fl), returns the frame count and
 * what its reply must be. */
static int make(char f[][80000], size_t *fl, expect_t *want)
{
    char id[25], tmp[512];
    size_t k = below(100), n;
    *want = EXPECT_BAD;
    if (k < 25) { /* random bytes */
        fl[0] = random_bytes(f[0], 300);
        return 1;
    }
    if (k < 40) { /* a valid request cut short */
        const char *v = valid[below(4)];
        fl[0] = below(strlen(v));
        memcpy(f[0], v, fl[0]);
        return 1;
    }
    if (k < 52) { /* a valid request with one byte changed: anything */
        const char *v = valid[below(4)];
        fl[0] = strlen(v);
        memcpy(f[0], v, fl[0]);
        f[0][below(fl[0])] = (char)next();
        *want = EXPECT_ANY;
        return 1;
    }
    if (k < 62) {
        n = below(sizeof(wrong_types) / sizeof(wrong_types[0]));
        fl[0] = strlen(wrong_types[n]);
        memcpy(f[0], wrong_types[n], fl[0]);
        return 1;
    }
    if (k < 68) {
        fl[0] = (size_t)snprintf(f[0], 200, "{\"v\":%lld,\"cmd\":\"status\"}",
                                 (long long)(next() % 1000) + 2);
        return 1;
    }
    if (k < 74) {
        random_bytes(tmp, 20);
        for (int i = 0; i < 12; i++)
            tmp[i] = (char)('a' + below(26));
        tmp[12] = '\0';
        fl[0] = (size_t)snprintf(f[0], 200, "{\"v\":1,\"cmd\":\"%s\"}", tmp);
        return 1;
    }
    if (k < 82) { /* ids that are not ids */
        random_hex_id(id);
        id[below(24)] = "xyzXYZ-_ ."[below(10)];
        id[20 + below(5)] = '\0';
        fl[0] = (size_t)snprintf(f[0], 200,
                                 "{\"v\":1,\"cmd\":\"%s\",\"id\":\"%s\"}",
                                 below(2) ? "pause" : "show", id);
        return 1;
    }
    if (k < 90) { /* several frames, none empty */
        int frames = 2 + (int)below(4);
        for (int i = 0; i < frames; i++) {
            fl[i] = 1 + random_bytes(f[i], 100);
            f[i][0] = '{';
        }
        return frames;
    }
    if (k < 93) { /* REQ-style: delimiter, then garbage */
        fl[0] = 0;
        fl[1] = 1 + random_bytes(f[1], 100);
        f[1][0] = '#';
        return 2;
    }
    if (k < 94) { /* oversized */
        fl[0] = 70000 + below(9000);
        memset(f[0], ' ', fl[0]);
        f[0][0] = '{';
        return 1;
    }
    /* Real requests: they must still be answered properly. */
    random_hex_id(id);
    switch (below(6)) {
    case 0:
        fl[0] = (size_t)snprintf(f[0], 200, "{\"v\":1,\"cmd\":\"status\"}");
        *want = EXPECT_OK;
        break;
    case 1:
        fl[0] = (size_t)snprintf(f[0], 200,
                                 "{\"v\":1,\"cmd\":\"list\",\"limit\":3}");
        *want = EXPECT_OK;
        break;
    default:
        fl[0] = (size_t)snprintf(
            f[0], 200, "{\"v\":1,\"cmd\":\"%s\",\"id\":\"%s\"}",
            (const char *[]){"show", "pause", "resume", "cancel"}[below(4)],
            id);
        *want = EXPECT_MISSING;
        break;
    }
    return 1;
}

/* Checks one reply (the frame after an optional empty delimiter). */
static int check(const void *data, size_t len, expect_t want, int64_t i)
{
    dip_ctl_reply_t r;
    char err[256];
    int ok = 1;
    dip_ctl_cmd_t cmd = DIP_CTL_SHOW;
    if (want == EXPECT_OK)
        cmd = memmem(data, len, "\"imports\":[", 11) ? DIP_CTL_LIST
                                                     : DIP_CTL_STATUS;
    /* A mutated request may have become any valid one. */
    for (int c = DIP_CTL_STATUS; want == EXPECT_ANY && c <= DIP_CTL_CANCEL; c++)
        if (dip_ctl_reply_decode(data, len, (dip_ctl_cmd_t)c, &r, err,
                                 sizeof(err)) == 0) {
            dip_ctl_reply_release(&r);
            return 1;
        }
    if (dip_ctl_reply_decode(data, len, cmd, &r, err, sizeof(err)) < 0) {
        fprintf(stderr, "reply %lld is not a reply: %s: %.*s\n", (long long)i,
                err, (int)(len > 200 ? 200 : len), (const char *)data);
        return 0;
    }
    switch (want) {
    case EXPECT_BAD:
        ok = !r.ok && r.code == DIP_CTL_EBADREQ;
        break;
    case EXPECT_OK:
        ok = r.ok;
        break;
    case EXPECT_MISSING:
        ok = !r.ok && r.code == DIP_CTL_ENOTFOUND;
        break;
    case EXPECT_ANY:
        break;
    }
    if (!ok)
        fprintf(stderr, "reply %lld (expected kind %d) is wrong: %.*s\n",
                (long long)i, (int)want, (int)(len > 200 ? 200 : len),
                (const char *)data);
    dip_ctl_reply_release(&r);
    return ok;
}

/* Raw bytes on the socket file: not even ZeroMQ. */
static void raw_garbage(int connections)
{
    struct sockaddr_un a;
    char buf[2048];
    memset(&a, 0, sizeof(a));
    a.sun_family = AF_UNIX;
    if (strlen(runtime) + 13 > sizeof(a.sun_path))
        return;
    memcpy(a.sun_path, runtime, strlen(runtime));
    memcpy(a.sun_path + strlen(runtime), "/control.ipc", 13);
    for (int i = 0; i < connections; i++) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        size_t n = 1 + random_bytes(buf, sizeof(buf) - 1);
        if (fd < 0)
            continue;
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
            write(fd, buf, n) < 0)
            fprintf(stderr, "raw write failed\n");
        close(fd);
    }
}

static void test_fuzz_frames(void **state)
{
    static char frames[6][80000];
    static expect_t want[MESSAGES];
    size_t fl[6];
    char ep[300], id[25], out[4096], err[4096];
    void *ctx = zmq_ctx_new(), *s = zmq_socket(ctx, ZMQ_DEALER);
    int sndhwm = 100, rcvhwm = 0, zero = 0, idle = 0, bad = 0, nf = 0;
    int64_t sent = 0, answered = 0, refusals = 0;
    bson_oid_t qid;
    bson_t q;
    size_t len;
    char *csv = it_ctl_csv(ROWS, BAD_EVERY, &len), *log, *p;
    const char *status_args[] = {"status", NULL};
    (void)state;

    rng = getenv("FUZZ_SEED") ? strtoull(getenv("FUZZ_SEED"), NULL, 10)
                              : (uint64_t)time(NULL) * 2654435761u + 1;
    fprintf(stderr, "FUZZ_SEED=%llu\n", (unsigned long long)rng);

    /* An import runs all the while. */
    it_ctl_enqueue_csv(&env, csv, len, NULL, &qid);
    free(csv);

    snprintf(ep, sizeof(ep), "ipc://%s/control.ipc", runtime);
    zmq_setsockopt(s, ZMQ_SNDHWM, &sndhwm, sizeof(sndhwm));
    zmq_setsockopt(s, ZMQ_RCVHWM, &rcvhwm, sizeof(rcvhwm));
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero));
    assert_int_equal(zmq_connect(s, ep), 0);

    while (answered < MESSAGES && idle < 60) {
        zmq_pollitem_t item = {s, 0, ZMQ_POLLIN, 0};
        if (sent < MESSAGES)
            item.events |= ZMQ_POLLOUT;
        if (zmq_poll(&item, 1, 1000) == 0) {
            idle++;
            continue;
        }
        idle = 0;
        while (item.revents & ZMQ_POLLIN) {
            zmq_msg_t m;
            int more;
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, s, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&m);
                break;
            }
            more = zmq_msg_more(&m);
            if (zmq_msg_size(&m) == 0 && more)
                zmq_msg_recv(&m, s, 0); /* the delimiter we sent back */
            if (answered < sent && !check(zmq_msg_data(&m), zmq_msg_size(&m),
                                          want[answered], answered))
                bad++;
            answered++;
            zmq_msg_close(&m);
        }
        if ((item.revents & ZMQ_POLLOUT) && sent < MESSAGES) {
            nf = make(frames, fl, &want[sent]);
            for (int i = 0; i < nf; i++)
                zmq_send(s, frames[i], fl[i], i + 1 < nf ? ZMQ_SNDMORE : 0);
            sent++;
            if (sent % 1000 == 0)
                raw_garbage(10);
        }
    }
    zmq_close(s);
    fprintf(stderr, "sent %lld, answered %lld, wrong %d\n", (long long)sent,
            (long long)answered, bad);
    assert_int_equal(sent, MESSAGES);
    assert_int_equal(answered, MESSAGES);
    assert_int_equal(bad, 0);

    /* A frame over the socket's size limit closes that connection only. */
    s = zmq_socket(ctx, ZMQ_DEALER);
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero));
    assert_int_equal(zmq_connect(s, ep), 0);
    {
        size_t big = 2 * 1024 * 1024;
        char *b = calloc(big, 1);
        zmq_pollitem_t item = {s, 0, ZMQ_POLLIN, 0};
        zmq_send(s, b, big, 0);
        assert_int_equal(zmq_poll(&item, 1, 1000), 0);
        free(b);
    }
    zmq_close(s);
    zmq_ctx_term(ctx);

    /* Still there, still right. */
    assert_int_equal(kill(sup, 0), 0);
    assert_int_equal(it_ctl_run(runtime, status_args, out, sizeof(out), err,
                                sizeof(err), 30000),
                     0);
    assert_non_null(strstr(out, "supervisor "));
    assert_int_equal(it_wait_final(&env, &qid, 300000, &q), 0);
    assert_string_equal(it_str(&q, "status"), "completed");
    bson_destroy(&q);
    assert_int_equal(it_ctl_deals(&env, &qid), ROWS - ROWS / BAD_EVERY);
    bson_oid_to_string(&qid, id);
    {
        int64_t starts[4];
        /* One worker ran it, start to end. */
        assert_int_equal(it_ctl_start_lines(logpath, id, starts, 4), 1);
    }
    /* Refusals are logged, but not one line each. */
    log = it_ctl_slurp(logpath);
    assert_non_null(log);
    for (p = strstr(log, "refused a control request"); p;
         p = strstr(p + 1, "refused a control request"))
        refusals++;
    fprintf(stderr, "%lld refusal lines logged\n", (long long)refusals);
    assert_true(refusals >= 1 && refusals < 100);
    free(log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fuzz_frames),
    };
    int rc = it_env_init(&env, "ctlfuzz");
    if (rc)
        return rc;
    rc = cmocka_run_group_tests(tests, setup, teardown);
    it_env_release(&env);
    return rc;
}
