/*
 * End to end on the development stack: who may talk to the supervisor. The
 * ipc socket file has mode 0600; over TCP only a client whose CURVE key is in
 * the clients directory gets answers (a wrong key or no CURVE at all gets
 * none), and a key added to the directory works at once, without a
 * restart. Also runs the Python client of docs/control-protocol.md as it
 * stands there (skipped without Python's zmq, a failure where CI=true).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <zmq.h>

#include "dip_curve_io.h"
#include "it_ctl.h"
#include "it_env.h"
#include "it_skip.h"
#include "it_tmp.h"

static it_env_t env;
static pid_t sup = -1;
static char logpath[256], runtime[256], keys[256], tcp[64];
static char env_tcp[128], env_secret[1024], env_clients[1024];

static int free_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, (struct sockaddr *)&a, sizeof(a));
    getsockname(fd, (struct sockaddr *)&a, &len);
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static int setup(void **state)
{
    char path[512], pub[41], err[512];
    const char *extra[4];
    (void)state;
    snprintf(keys, sizeof(keys), "%s/it-ctl-keys-XXXXXX", it_tmpdir());
    if (mkdtemp(keys) == NULL)
        return -1;
    snprintf(path, sizeof(path), "%s/clients", keys);
    mkdir(path, 0700);
    snprintf(path, sizeof(path), "%s/server", keys);
    if (dip_curve_keygen(path, pub, err, sizeof(err)) < 0)
        return -1;
    snprintf(path, sizeof(path), "%s/good", keys);
    if (dip_curve_keygen(path, pub, err, sizeof(err)) < 0)
        return -1;
    snprintf(path, sizeof(path), "%s/bad", keys);
    if (dip_curve_keygen(path, pub, err, sizeof(err)) < 0)
        return -1;
    {
        char from[512], to[512];
        snprintf(from, sizeof(from), "%s/good.pub", keys);
        snprintf(to, sizeof(to), "%s/clients/good.pub", keys);
        if (link(from, to) < 0)
            return -1;
    }
    snprintf(tcp, sizeof(tcp), "tcp://127.0.0.1:%d", free_port());
    snprintf(env_tcp, sizeof(env_tcp), "DEALIMPORT_CONTROL_TCP=%s", tcp);
    snprintf(env_secret, sizeof(env_secret),
             "DEALIMPORT_CONTROL_CURVE_SECRET_FILE=%s/server.key", keys);
    snprintf(env_clients, sizeof(env_clients),
             "DEALIMPORT_CONTROL_CURVE_CLIENTS_DIR=%s/clients", keys);
    extra[0] = env_tcp;
    extra[1] = env_secret;
    extra[2] = env_clients;
    extra[3] = NULL;
    snprintf(logpath, sizeof(logpath), "%s/it-ctl-socket-%d.log", it_tmpdir(),
             (int)getpid());
    {
        /* As systemd starts the unit: a soft limit of 1024 descriptors
         * (restored for this process once the supervisor is forked). */
        struct rlimit saved, lim;
        if (getrlimit(RLIMIT_NOFILE, &saved) < 0)
            return -1;
        lim = saved;
        if (lim.rlim_cur > 1024)
            lim.rlim_cur = 1024;
        if (setrlimit(RLIMIT_NOFILE, &lim) < 0)
            return -1;
        sup = it_supervisor_start(&env, extra, logpath);
        if (setrlimit(RLIMIT_NOFILE, &saved) < 0)
            return -1;
    }
    snprintf(runtime, sizeof(runtime), "%s", env.runtime);
    /* Ready when the control socket answers. */
    for (int i = 0; i < 100; i++) {
        json_t *r = it_ctl_ask(runtime, "{\"v\":1,\"cmd\":\"status\"}", 200);
        if (r) {
            json_decref(r);
            return 0;
        }
    }
    return -1;
}

static int teardown(void **state)
{
    char cmd[512];
    int st;
    (void)state;
    st = it_process_stop(sup, SIGTERM, 30000);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", keys);
    if (system(cmd) != 0)
        return -1;
    return st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static void test_ipc_mode(void **state)
{
    char path[300];
    struct stat st;
    (void)state;
    snprintf(path, sizeof(path), "%s/control.ipc", runtime);
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0600);
}

static int ctl_tcp(const char *key, char *out, char *err)
{
    char server[512], client[512];
    const char *args[] = {"--connect",    tcp,    "--timeout", "2",    "status",
                          "--server-key", server, "--key",     client, NULL};
    snprintf(server, sizeof(server), "%s/server.pub", keys);
    snprintf(client, sizeof(client), "%s/%s.key", keys, key);
    return it_ctl_run(runtime, args, out, 4096, err, 4096, 30000);
}

/* `pause ID` over TCP with key; its exit status. */
static int pause_tcp(const char *key, const char *id, char *out, char *err)
{
    char server[512], client[512];
    const char *args[] = {
        "--connect",    tcp,    "--timeout", "2",    "pause", id,
        "--server-key", server, "--key",     client, NULL};
    snprintf(server, sizeof(server), "%s/server.pub", keys);
    snprintf(client, sizeof(client), "%s/%s.key", keys, key);
    return it_ctl_run(runtime, args, out, 4096, err, 4096, 30000);
}

/* Each pause is logged with who asked: the CURVE key's name (its file in
 * the clients directory, less ".pub") over TCP, the uid over ipc://. */
static void test_who_asked(void **state)
{
    char out[4096], err[4096], want[200], *log;
    const char *args[] = {"pause", "64b000000000000000000001", NULL};
    (void)state;
    assert_int_equal(pause_tcp("good", "64b000000000000000000000", out, err),
                     1);
    assert_non_null(strstr(err, "no import with id"));
    assert_int_equal(
        it_ctl_run(runtime, args, out, sizeof(out), err, sizeof(err), 30000),
        1);
    log = it_ctl_slurp(logpath);
    assert_non_null(log);
    assert_non_null(strstr(log, "pause requested by key 'good' from "
                                "127.0.0.1: no import with id "
                                "'64b000000000000000000000'"));
    assert_non_null(strstr(log, "key=good result=refused"));
    snprintf(want, sizeof(want),
             "pause requested by uid %ld: no import with id "
             "'64b000000000000000000001'",
             (long)getuid());
    assert_non_null(strstr(log, want));
    snprintf(want, sizeof(want), "peer_uid=%ld result=refused", (long)getuid());
    assert_non_null(strstr(log, want));
    free(log);
}

static void test_curve_clients(void **state)
{
    char out[4096], err[4096], from[512], to[512], *log;
    void *ctx, *s;
    int zero = 0;
    zmq_pollitem_t item;
    (void)state;

    assert_int_equal(ctl_tcp("good", out, err), 0);
    assert_non_null(strstr(out, "supervisor "));

    assert_int_equal(ctl_tcp("bad", out, err), 69);
    assert_non_null(strstr(err, "no supervisor answered at 'tcp://"));
    assert_string_equal(out, "");

    /* Plain ZeroMQ, no CURVE: nothing comes back either. */
    ctx = zmq_ctx_new();
    s = zmq_socket(ctx, ZMQ_REQ);
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero));
    assert_int_equal(zmq_connect(s, tcp), 0);
    zmq_send(s, "{\"v\":1,\"cmd\":\"status\"}", 22, 0);
    item.socket = s;
    item.fd = 0;
    item.events = ZMQ_POLLIN;
    item.revents = 0;
    assert_int_equal(zmq_poll(&item, 1, 2000), 0);
    zmq_close(s);
    zmq_ctx_term(ctx);

    /* Authorizing a key takes effect at the next connection. */
    snprintf(from, sizeof(from), "%s/bad.pub", keys);
    snprintf(to, sizeof(to), "%s/clients/bad.pub", keys);
    assert_int_equal(link(from, to), 0);
    assert_int_equal(ctl_tcp("bad", out, err), 0);
    unlink(to);
    assert_int_equal(ctl_tcp("bad", out, err), 69);

    log = it_ctl_slurp(logpath);
    assert_non_null(strstr(log, "this supervisor's public key is"));
    assert_non_null(strstr(log, "refused a control client from '127.0.0.1'"));
    free(log);
}

static void test_doc_python_client(void **state)
{
    char path[512], script[300], cmd[700], out[8192];
    char *doc, *start, *end;
    FILE *f;
    (void)state;
    if (system("/usr/bin/python3 -c 'import zmq' 2>/dev/null") != 0) {
        IT_SKIP_MISSING("skipped: /usr/bin/python3 has no zmq module "
                        "(scripts/bootstrap installs python3-zmq)\n");
    }
    snprintf(path, sizeof(path), "%s/docs/control-protocol.md",
             DEALIMPORT_SOURCE_DIR);
    doc = it_ctl_slurp(path);
    assert_non_null(doc);
    start = strstr(doc, "```python\n");
    assert_non_null(start);
    start += 10;
    end = strstr(start, "```");
    assert_non_null(end);
    /* Five lines, as the document says. */
    {
        int lines = 0;
        for (char *p = start; p < end; p++)
            lines += *p == '\n';
        assert_int_equal(lines, 5);
    }
    snprintf(script, sizeof(script), "%s/example.py", keys);
    f = fopen(script, "w");
    assert_non_null(f);
    fwrite(start, 1, (size_t)(end - start), f);
    fclose(f);
    free(doc);
    snprintf(cmd, sizeof(cmd),
             "DEALIMPORT_CONTROL=ipc://%s/control.ipc /usr/bin/python3 %s",
             runtime, script);
    assert_int_equal(it_ctl_shell(runtime, cmd, out, sizeof(out), 30000), 0);
    assert_non_null(strstr(out, "\"ok\": true"));
    assert_non_null(strstr(out, "\"imports\": ["));
}

/* A connection that never begins its handshake: closed by the
 * supervisor within 15 s (1 when closed), where libzmq's default would
 * hold it 30 s. */
static int closed_by_peer(int fd)
{
    char c;
    for (int waited = 0; waited < 15000; waited += 100) {
        ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
            return 1;
        /* the server's own greeting is read and dropped */
        if (n > 0)
            continue;
        usleep(100000);
    }
    return 0;
}

/* A flood of handshakes (../shared/FAILURE-CLASSES.md, 13): a peer that
 * connects to the control socket and never says a word is dropped after
 * the control handshake's bound (SUP_CTL_HANDSHAKE_MS), on TCP (anyone on
 * the network, before CURVE) and on ipc alike, so what a flood holds is
 * its rate times that bound, not times libzmq's 30 s. The supervisor
 * started with systemd's default soft limit of 1024 descriptors has
 * raised it for itself (sup_nofile), so a flood's held connections meet a
 * budget large enough for the rate the bench measures (scripts/bench
 * flood: with 1024, 2,000 attempts/s had libzmq abort the supervisor on
 * an ipc accept that found no descriptor). After both, the supervisor
 * still answers. Failure classes: 13 (the flood itself); 9 (shared
 * resources: one descriptor budget serves the listeners, the database
 * pool and the workers' pipes); 14: both connections are checked to be
 * open (connect succeeded) before the wait, and the wait reads, so an
 * unconnected socket cannot pass it. */
static void test_silent_peers(void **state)
{
    struct sockaddr_in a;
    struct sockaddr_un u;
    int t = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int i = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const char *colon = strrchr(tcp, ':');
    char path[300], line[256];
    long soft = -1, hard = -1;
    FILE *f;
    json_t *r;
    (void)state;
    assert_non_null(colon);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)atoi(colon + 1));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(t, (struct sockaddr *)&a, sizeof(a)), 0);
    memset(&u, 0, sizeof(u));
    u.sun_family = AF_UNIX;
    snprintf(path, sizeof(path), "%s/control.ipc", runtime);
    assert_true(strlen(path) < sizeof(u.sun_path));
    memcpy(u.sun_path, path, strlen(path) + 1);
    assert_int_equal(connect(i, (struct sockaddr *)&u, sizeof(u)), 0);
    assert_int_equal(closed_by_peer(t), 1);
    assert_int_equal(closed_by_peer(i), 1);
    close(t);
    close(i);
    r = it_ctl_ask(runtime, "{\"v\":1,\"cmd\":\"status\"}", 5000);
    assert_non_null(r);
    json_decref(r);

    snprintf(path, sizeof(path), "/proc/%d/limits", (int)sup);
    f = fopen(path, "re");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "Max open files %ld %ld", &soft, &hard) == 2)
            break;
    fclose(f);
    printf("supervisor's descriptors: soft %ld, hard %ld\n", soft, hard);
    assert_true(soft > 0 && hard > 0);
    assert_int_equal(soft, hard < 16384 ? hard : 16384);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ipc_mode),
        cmocka_unit_test(test_who_asked),
        cmocka_unit_test(test_curve_clients),
        cmocka_unit_test(test_doc_python_client),
        cmocka_unit_test(test_silent_peers),
    };
    int rc = it_env_init(&env, "ctlsocket");
    if (rc)
        return rc;
    rc = cmocka_run_group_tests(tests, setup, teardown);
    it_env_release(&env);
    return rc;
}
