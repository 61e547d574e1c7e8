/*
 * sup_ctl_peer: one table row per Peer-Address libzmq can hand us, and per
 * key file name; then a real ipc:// connection, whose uid must be ours.
 *
 * Failure classes: a peer whose credentials libzmq could not read (no
 * SO_PEERCRED, another transport) leaves the uid unknown rather than
 * guessed (the rows without three trailing numbers); a host part holding
 * ':' (an IPv6 address) cannot shift the numbers, they are read from the
 * end; numbers past a long are refused, not wrapped.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sup_ctl_peer.h"
#include "it_tmp.h"

typedef struct uid_row {
    const char *addr;
    int rc;
    long uid;
} uid_row_t;

static void test_uid_table(void **state)
{
    static const uid_row_t rows[] = {
        {"localhost:1000:1000:4242", 0, 1000},
        {"localhost:0:0:1", 0, 0},
        {":65534:65534:7", 0, 65534},
        {"::1:1001:100:9", 0, 1001},
        {"", -1, 0},
        {"localhost", -1, 0},
        {"10.0.0.7", -1, 0},
        {"localhost:1000:4242", -1, 0},
        {"localhost:1000::4242", -1, 0},
        {"localhost:x:1000:4242", -1, 0},
        {"localhost:-1:1000:4242", -1, 0},
        {"localhost:1000:1000:", -1, 0},
        {"localhost:99999999999999999999999:1:1", -1, 0},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        long uid = -7;
        int rc = sup_ctl_peer_uid(rows[i].addr, &uid);
        if (rc != rows[i].rc || (rc == 0 && uid != rows[i].uid))
            fail_msg("'%s': rc %d uid %ld, want rc %d uid %ld", rows[i].addr,
                     rc, uid, rows[i].rc, rows[i].uid);
    }
    assert_int_equal(sup_ctl_peer_uid(NULL, &(long){0}), -1);
}

static void test_key_names(void **state)
{
    static const char *const rows[][2] = {
        {"ops.pub", "ops"},
        {"ops", "ops"},
        {".pub", ".pub"},
        {"a.pub.pub", "a.pub"},
        {"ops.public", "ops.public"},
    };
    char out[128];
    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        sup_ctl_peer_key_name(rows[i][0], out, sizeof(out));
        assert_string_equal(out, rows[i][1]);
    }
}

static void test_describe(void **state)
{
    sup_ctl_peer_t p = {.uid = 1000};
    char buf[256];
    (void)state;
    assert_string_equal(sup_ctl_peer_describe(&p, buf, sizeof(buf)),
                        "uid 1000");
    p.uid = -1;
    snprintf(p.key, sizeof(p.key), "ops");
    snprintf(p.addr, sizeof(p.addr), "10.0.0.7");
    assert_string_equal(sup_ctl_peer_describe(&p, buf, sizeof(buf)),
                        "key 'ops' from 10.0.0.7");
    p.key[0] = '\0';
    assert_string_equal(sup_ctl_peer_describe(&p, buf, sizeof(buf)),
                        "an unknown client");
}

/* What libzmq really hands a ROUTER about an ipc:// peer: our own uid. */
static void test_real_ipc(void **state)
{
    char dir[512], ep[1024];
    void *ctx = zmq_ctx_new(), *r, *d;
    zmq_msg_t id, body;
    sup_ctl_peer_t p;
    (void)state;
    assert_non_null(
        mkdtemp(it_tmp_name(dir, sizeof(dir), "sup_ctl_peer.XXXXXX")));
    snprintf(ep, sizeof(ep), "ipc://%s/s.ipc", dir);
    r = zmq_socket(ctx, ZMQ_ROUTER);
    d = zmq_socket(ctx, ZMQ_DEALER);
    assert_int_equal(zmq_bind(r, ep), 0);
    assert_int_equal(zmq_connect(d, ep), 0);
    assert_int_equal(zmq_send(d, "x", 1, 0), 1);
    zmq_msg_init(&id);
    zmq_msg_init(&body);
    assert_true(zmq_msg_recv(&id, r, 0) >= 0);
    assert_true(zmq_msg_recv(&body, r, 0) >= 0);
    sup_ctl_peer_of(&body, 0, &p);
    assert_int_equal(p.uid, (long)getuid());
    sup_ctl_peer_of(&body, 1, &p);
    assert_int_equal(p.uid, -1);
    assert_string_equal(p.key, "");
    zmq_msg_close(&id);
    zmq_msg_close(&body);
    zmq_close(d);
    zmq_close(r);
    zmq_ctx_term(ctx);
    snprintf(ep, sizeof(ep), "%s/s.ipc", dir);
    unlink(ep);
    rmdir(dir);
}

/* Run as root: a client that became uid 65534, gid 65533 before it
 * connected is seen as uid 65534 (not its gid, not ours). Not as root no
 * uid can be changed, and test_real_ipc's uid is then one other than 0.
 *
 * The child is forked before this process has a ZeroMQ context: forked
 * from a process whose I/O threads run, the child's own context could
 * start a thread while a lock another thread held at the fork stays taken
 * (the sanitizer's allocator did, about one run in nine) and both sides
 * waited for ever. The child waits on a pipe until the socket is bound;
 * the receive has a deadline, and the child is killed if it passes. */
static void test_other_uid(void **state)
{
    char dir[512], ep[1024], path[1024], go = 0;
    void *ctx, *r;
    zmq_msg_t id, body;
    sup_ctl_peer_t p;
    mode_t old;
    pid_t child;
    int st, fds[2], ms = 30000, got;
    (void)state;
    if (getuid() != 0) {
        fprintf(stderr, "not root: another uid cannot be tried here\n");
        return;
    }
    assert_non_null(
        mkdtemp(it_tmp_name(dir, sizeof(dir), "sup_ctl_peer.XXXXXX")));
    assert_int_equal(chmod(dir, 0777), 0);
    snprintf(ep, sizeof(ep), "ipc://%s/s.ipc", dir);
    snprintf(path, sizeof(path), "%s/s.ipc", dir);
    assert_int_equal(pipe(fds), 0);
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        void *c2, *d;
        int linger = 2000;
        close(fds[1]);
        if (read(fds[0], &go, 1) != 1)
            _exit(4);
        if (setgid(65533) != 0 || setuid(65534) != 0)
            _exit(2);
        c2 = zmq_ctx_new();
        d = zmq_socket(c2, ZMQ_DEALER);
        zmq_setsockopt(d, ZMQ_LINGER, &linger, sizeof(linger));
        if (zmq_connect(d, ep) != 0 || zmq_send(d, "x", 1, 0) != 1)
            _exit(3);
        sleep(1);
        zmq_close(d);
        zmq_ctx_term(c2);
        _exit(0);
    }
    close(fds[0]);
    ctx = zmq_ctx_new();
    r = zmq_socket(ctx, ZMQ_ROUTER);
    zmq_setsockopt(r, ZMQ_RCVTIMEO, &ms, sizeof(ms));
    old = umask(0);
    assert_int_equal(zmq_bind(r, ep), 0);
    umask(old);
    assert_int_equal(write(fds[1], "g", 1), 1);
    close(fds[1]);
    zmq_msg_init(&id);
    zmq_msg_init(&body);
    got = zmq_msg_recv(&id, r, 0) >= 0 && zmq_msg_recv(&body, r, 0) >= 0;
    if (!got)
        kill(child, SIGKILL);
    assert_int_equal(waitpid(child, &st, 0), child);
    if (!got)
        fail_msg("no message from the child within %d ms (its status %d)", ms,
                 st);
    sup_ctl_peer_of(&body, 0, &p);
    assert_int_equal(p.uid, 65534);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    zmq_msg_close(&id);
    zmq_msg_close(&body);
    zmq_close(r);
    zmq_ctx_term(ctx);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uid_table), cmocka_unit_test(test_key_names),
        cmocka_unit_test(test_describe),  cmocka_unit_test(test_real_ipc),
        cmocka_unit_test(test_other_uid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
