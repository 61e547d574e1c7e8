/*
 * Tests sup_ctl without a database: a fake loop (host) and a MongoDB URI
 * that nothing answers. Covers the ipc socket's mode, every kind of bad
 * frame getting its error reply (or, past the size limit, none) without
 * disturbing the socket, pause and cancel of the host's own imports, the
 * refusals, status when the database is away, and the TCP endpoint's CURVE
 * authentication: an authorized key gets answers, another key or no key
 * gets nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "dip_ctl.h"
#include "dip_curve_io.h"
#include "dip_log.h"
#include "dip_mongo_io.h"
#include "sup_ctl.h"
#include "it_tmp.h"

#define LOCAL_ID "64b0000000000000000000aa"
#define LOCAL_ACC "64b0000000000000000000bb"

typedef struct fake {
    int stopping;
    int control_rc;
    int calls;
    dip_control_action_t last;
    const char *requested;
} fake_t;

typedef struct ctx {
    char dir[256];
    dip_config_t cfg;
    void *zctx;
    sup_ctl_t *ctl;
    sup_metrics_t *metrics;
    mongoc_client_t *client; /* the loop's, here for a port nothing serves */
    const char *db;
    fake_t fake;
    char endpoint[512];
    char tcp[64];
    char server_pub[41];
    char good_key[512], bad_key[512];
} ctx_t;

static void fake_view(void *p, sup_ctl_view_t *v)
{
    fake_t *f = p;
    sup_ctl_run_t *r = &v->runs[0];
    v->started_ms = 1000;
    v->limit = 2;
    v->per_account_limit = 1;
    v->memory_mb = 512;
    v->cpu_s = 60;
    v->timeout_s = 600;
    v->stopping = f->stopping;
    memset(r, 0, sizeof(*r));
    strcpy(r->id, LOCAL_ID);
    strcpy(r->account, LOCAL_ACC);
    r->running = 1;
    r->pid = 4242;
    r->first_line = 1001;
    r->lines = 5000;
    r->requested = f->requested;
    v->nruns = 1;
}

static int fake_control(void *p, const char *id, dip_control_action_t action)
{
    fake_t *f = p;
    f->calls++;
    f->last = action;
    return strcmp(id, LOCAL_ID) == 0 ? f->control_rc : -1;
}

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
    ctx_t *c = calloc(1, sizeof(*c));
    char err[512], path[512], pub[41], clients[512];
    sup_ctl_host_t host;
    mode_t old;
    snprintf(c->dir, sizeof(c->dir), "%s/test-sup-ctl-XXXXXX", it_tmpdir());
    if (mkdtemp(c->dir) == NULL)
        return -1;
    snprintf(path, sizeof(path), "%s/server", c->dir);
    snprintf(clients, sizeof(clients), "%s/clients", c->dir);
    mkdir(clients, 0700);
    if (dip_curve_keygen(path, c->server_pub, err, sizeof(err)) < 0)
        return -1;
    snprintf(c->good_key, sizeof(c->good_key), "%s/clients/good", c->dir);
    snprintf(c->bad_key, sizeof(c->bad_key), "%s/bad", c->dir);
    /* good.pub lands in the clients directory, bad.pub does not. */
    if (dip_curve_keygen(c->good_key, pub, err, sizeof(err)) < 0 ||
        dip_curve_keygen(c->bad_key, pub, err, sizeof(err)) < 0)
        return -1;
    snprintf(path, sizeof(path), "%s/clients/good.key", c->dir);
    snprintf(c->good_key, sizeof(c->good_key), "%s/good.key", c->dir);
    rename(path, c->good_key);
    strcat(c->bad_key, ".key");

    dip_config_init(&c->cfg);
    /* A port nothing listens on. */
    snprintf(path, sizeof(path),
             "mongodb://127.0.0.1:%d/none?serverSelectionTimeoutMS=200&"
             "connectTimeoutMS=200",
             free_port());
    c->cfg.mongodb_uri = strdup(path);
    c->cfg.runtime_dir = strdup(c->dir);
    c->cfg.max_workers = 2;
    snprintf(c->tcp, sizeof(c->tcp), "tcp://127.0.0.1:%d", free_port());
    c->cfg.control_tcp = strdup(c->tcp);
    snprintf(path, sizeof(path), "%s/server.key", c->dir);
    c->cfg.control_curve_secret_file = strdup(path);
    c->cfg.control_curve_clients_dir = strdup(clients);

    c->zctx = zmq_ctx_new();
    host.ctx = &c->fake;
    host.view = fake_view;
    host.control = fake_control;
    c->metrics = sup_metrics_new();
    host.metrics = c->metrics;
    /* A permissive umask must not leak into the socket's mode. */
    old = umask(0);
    c->client = dip_mongo_client_new_bounded(c->cfg.mongodb_uri, "test_sup_ctl",
                                             0, &c->db, err, sizeof(err));
    if (c->client == NULL) {
        fprintf(stderr, "client: %s\n", err);
        return -1;
    }
    c->ctl = sup_ctl_new(c->zctx, &c->cfg, "test:1:2", NULL, c->client, c->db,
                         &host, err, sizeof(err));
    umask(old);
    if (c->ctl == NULL) {
        fprintf(stderr, "sup_ctl_new: %s\n", err);
        return -1;
    }
    snprintf(c->endpoint, sizeof(c->endpoint), "ipc://%s/control.ipc", c->dir);
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    ctx_t *c = *state;
    char cmd[512];
    sup_ctl_destroy(&c->ctl);
    if (c->client)
        dip_mongo_client_close(c->client);
    sup_metrics_destroy(&c->metrics);
    zmq_ctx_term(c->zctx);
    dip_config_release(&c->cfg);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", c->dir);
    if (system(cmd) != 0)
        return -1;
    free(c);
    return 0;
}

static int64_t ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs the control side until client has something to read or timeout_ms
 * passes. Returns 1 when it has. */
static int pump(ctx_t *c, void *client, int timeout_ms)
{
    int64_t end = ms() + timeout_ms;
    while (ms() < end) {
        zmq_pollitem_t items[SUP_CTL_POLL_MAX + 1];
        int n = sup_ctl_poll_items(c->ctl, items, SUP_CTL_POLL_MAX);
        items[n].socket = client;
        items[n].fd = 0;
        items[n].events = ZMQ_POLLIN;
        items[n].revents = 0;
        zmq_poll(items, n + 1, 20);
        sup_ctl_serve(c->ctl, items, n);
        if (items[n].revents & ZMQ_POLLIN)
            return 1;
    }
    return 0;
}

static void *client(ctx_t *c, int type)
{
    void *s = zmq_socket(c->zctx, type);
    int zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero));
    assert_int_equal(zmq_connect(s, c->endpoint), 0);
    return s;
}

/* Sends one request from a REQ socket and returns the reply text
 * (malloc'd), or NULL when none came. */
static char *ask_within(ctx_t *c, void *s, const char *req, size_t len,
                        int timeout_ms)
{
    zmq_msg_t m;
    char *out = NULL;
    assert_true(zmq_send(s, req, len, 0) >= 0);
    if (!pump(c, s, timeout_ms))
        return NULL;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, s, 0) >= 0)
        out = strndup(zmq_msg_data(&m), zmq_msg_size(&m));
    zmq_msg_close(&m);
    return out;
}

static char *ask(ctx_t *c, void *s, const char *req, size_t len)
{
    return ask_within(c, s, req, len, 3000);
}

static void expect(ctx_t *c, const char *req, dip_ctl_cmd_t cmd,
                   dip_ctl_reply_t *r)
{
    void *s = client(c, ZMQ_REQ);
    char *text = ask(c, s, req, strlen(req)), err[256];
    assert_non_null(text);
    if (dip_ctl_reply_decode(text, strlen(text), cmd, r, err, sizeof(err)))
        fail_msg("reply '%s': %s", text, err);
    free(text);
    zmq_close(s);
}

static void expect_error(ctx_t *c, const char *req, dip_ctl_code_t code,
                         const char *needle)
{
    dip_ctl_reply_t r;
    expect(c, req, DIP_CTL_STATUS, &r);
    assert_false(r.ok);
    assert_int_equal(r.code, code);
    if (strstr(r.error, needle) == NULL)
        fail_msg("'%s' -> '%s' lacks '%s'", req, r.error, needle);
    dip_ctl_reply_release(&r);
}

static void test_socket_mode(void **state)
{
    ctx_t *c = *state;
    char path[512];
    struct stat st;
    snprintf(path, sizeof(path), "%s/control.ipc", c->dir);
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0600);
}

static void test_bad_requests(void **state)
{
    ctx_t *c = *state;
    expect_error(c, "{\"v\":1,\"cmd\":", DIP_CTL_EBADREQ, "not JSON");
    expect_error(c, "{\"v\":2,\"cmd\":\"status\"}", DIP_CTL_EBADREQ,
                 "protocol version 2");
    expect_error(c, "{\"v\":1,\"cmd\":\"reboot\"}", DIP_CTL_EBADREQ,
                 "unknown command 'reboot'");
    expect_error(c, "{\"v\":1,\"cmd\":\"pause\",\"id\":\"x\"}", DIP_CTL_EBADREQ,
                 "'x' is not an import id");
    expect_error(c, "", DIP_CTL_EBADREQ, "the request is empty");
    assert_int_equal(c->fake.calls, 0);
}

static void test_envelopes_and_sizes(void **state)
{
    ctx_t *c = *state;
    void *d = client(c, ZMQ_DEALER), *r;
    zmq_msg_t m;
    char *big = calloc(2 * 1024 * 1024, 1), *text;
    int more;

    /* A DEALER without the empty delimiter gets a reply without it. */
    zmq_send(d, "{\"v\":1,\"cmd\":\"nope\"}", 20, 0);
    assert_true(pump(c, d, 3000));
    zmq_msg_init(&m);
    zmq_msg_recv(&m, d, 0);
    assert_non_null(memmem(zmq_msg_data(&m), zmq_msg_size(&m),
                           "unknown command 'nope'", 22));
    assert_false(zmq_msg_more(&m));
    zmq_msg_close(&m);

    /* Two frames where one belongs. */
    zmq_send(d, "{}", 2, ZMQ_SNDMORE);
    zmq_send(d, "{}", 2, 0);
    assert_true(pump(c, d, 3000));
    zmq_msg_init(&m);
    zmq_msg_recv(&m, d, 0);
    assert_non_null(
        memmem(zmq_msg_data(&m), zmq_msg_size(&m), "exactly one frame", 17));
    assert_non_null(memmem(zmq_msg_data(&m), zmq_msg_size(&m), "had 2", 5));
    zmq_msg_close(&m);

    /* A delimiter and nothing after it. */
    zmq_send(d, "", 0, 0);
    assert_true(pump(c, d, 3000));
    zmq_msg_init(&m);
    zmq_msg_recv(&m, d, 0); /* the delimiter comes back */
    more = zmq_msg_more(&m);
    assert_int_equal(zmq_msg_size(&m), 0);
    assert_true(more);
    zmq_msg_recv(&m, d, 0);
    assert_non_null(memmem(zmq_msg_data(&m), zmq_msg_size(&m), "had 0", 5));
    zmq_msg_close(&m);

    /* Twenty frames: still one answer. */
    for (int i = 0; i < 19; i++)
        zmq_send(d, "x", 1, ZMQ_SNDMORE);
    zmq_send(d, "x", 1, 0);
    assert_true(pump(c, d, 3000));
    zmq_msg_init(&m);
    zmq_msg_recv(&m, d, 0);
    assert_non_null(memmem(zmq_msg_data(&m), zmq_msg_size(&m), "had 20", 6));
    zmq_msg_close(&m);
    zmq_close(d);

    /* Oversized but under the socket's limit: refused by the decoder. */
    r = client(c, ZMQ_REQ);
    memset(big, ' ', 100000);
    text = ask(c, r, big, 100000);
    assert_non_null(text);
    assert_non_null(strstr(text, "the request is 100000 bytes"));
    free(text);
    zmq_close(r);

    /* Over the socket's limit: the connection is dropped, no answer, and
     * the socket serves the next client as before. */
    r = client(c, ZMQ_REQ);
    memset(big, ' ', 2 * 1024 * 1024);
    assert_true(zmq_send(r, big, 2 * 1024 * 1024, 0) >= 0);
    assert_false(pump(c, r, 500));
    zmq_close(r);
    free(big);
    {
        dip_ctl_reply_t rep;
        expect(c, "{\"v\":1,\"cmd\":\"pause\",\"id\":\"" LOCAL_ID "\"}",
               DIP_CTL_PAUSE, &rep);
        assert_true(rep.ok);
        dip_ctl_reply_release(&rep);
    }
}

static void test_local_actions(void **state)
{
    ctx_t *c = *state;
    dip_ctl_reply_t r;
    const char *pause = "{\"v\":1,\"cmd\":\"pause\",\"id\":\"" LOCAL_ID "\"}";
    const char *cancel = "{\"v\":1,\"cmd\":\"cancel\",\"id\":\"" LOCAL_ID "\"}";

    c->fake.calls = 0;
    c->fake.control_rc = 0;
    expect(c, pause, DIP_CTL_PAUSE, &r);
    assert_true(r.ok);
    assert_string_equal(json_string_value(json_object_get(r.root, "result")),
                        "signalled");
    assert_string_equal(json_string_value(json_object_get(r.root, "status")),
                        "processing");
    assert_non_null(
        strstr(json_string_value(json_object_get(r.root, "message")),
               "stops within seconds, from its last checkpoint"));
    assert_int_equal(c->fake.calls, 1);
    assert_int_equal(c->fake.last, DIP_CONTROL_PAUSE);
    dip_ctl_reply_release(&r);

    /* A worker waiting to restart is cancelled at once. */
    c->fake.control_rc = 1;
    expect(c, cancel, DIP_CTL_CANCEL, &r);
    assert_true(r.ok);
    assert_string_equal(json_string_value(json_object_get(r.root, "result")),
                        "applied");
    assert_string_equal(json_string_value(json_object_get(r.root, "status")),
                        "cancelled");
    assert_int_equal(c->fake.last, DIP_CONTROL_CANCEL);
    dip_ctl_reply_release(&r);

    /* The host could not act. */
    c->fake.control_rc = -1;
    expect(c, pause, DIP_CTL_PAUSE, &r);
    assert_false(r.ok);
    assert_int_equal(r.code, DIP_CTL_EUNAVAIL);
    dip_ctl_reply_release(&r);

    c->fake.calls = 0;
    expect_error(c, "{\"v\":1,\"cmd\":\"resume\",\"id\":\"" LOCAL_ID "\"}",
                 DIP_CTL_ESTATE, "only a paused import can be resumed");
    c->fake.requested = "cancel";
    expect_error(c, pause, DIP_CTL_ESTATE, "already being cancelled");
    c->fake.requested = NULL;
    c->fake.stopping = 1;
    expect_error(c, cancel, DIP_CTL_EUNAVAIL, "the supervisor is stopping");
    c->fake.stopping = 0;
    assert_int_equal(c->fake.calls, 0);
}

static void test_database_away(void **state)
{
    ctx_t *c = *state;
    dip_ctl_reply_t r;
    json_t *acc;
    /* status still answers, from what the supervisor knows itself. */
    expect(c, "{\"v\":1,\"cmd\":\"status\"}", DIP_CTL_STATUS, &r);
    assert_true(r.ok);
    assert_non_null(strstr(
        json_string_value(json_object_get(r.root, "database")), "unavailable"));
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(r.root, "workers"), "running")),
                     1);
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(r.root, "workers"), "limit")),
                     2);
    acc = json_array_get(json_object_get(r.root, "accounts"), 0);
    assert_string_equal(json_string_value(json_object_get(acc, "account")),
                        LOCAL_ACC);
    assert_int_equal(json_integer_value(json_object_get(acc, "running")), 1);
    dip_ctl_reply_release(&r);
    expect_error(c, "{\"v\":1,\"cmd\":\"show\",\"id\":\"" LOCAL_ID "\"}",
                 DIP_CTL_EUNAVAIL, "the database did not answer");
    expect_error(c,
                 "{\"v\":1,\"cmd\":\"pause\",\"id\":"
                 "\"64b0000000000000000000cc\"}",
                 DIP_CTL_EUNAVAIL, "the database did not answer");
    /* Renewal with the database away: logged, nothing else. */
    sup_ctl_renewal(c->ctl);
}

/* A TCP client with the given secret key (NULL: no CURVE). */
static void *tcp_client(ctx_t *c, const char *key_file)
{
    void *s = zmq_socket(c->zctx, ZMQ_REQ);
    int zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero));
    if (key_file) {
        char sec[41], pub[41], err[256];
        assert_int_equal(
            dip_curve_read_key(key_file, "a key", sec, err, sizeof(err)), 0);
        assert_int_equal(dip_curve_public(sec, pub), 0);
        zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, c->server_pub, 41);
        zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, pub, 41);
        zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, sec, 41);
    }
    assert_int_equal(zmq_connect(s, c->tcp), 0);
    return s;
}

static void test_curve(void **state)
{
    ctx_t *c = *state;
    const char *req = "{\"v\":1,\"cmd\":\"pause\",\"id\":\"" LOCAL_ID "\"}";
    void *s;
    char *text;

    c->fake.calls = 0;
    c->fake.control_rc = 0;
    s = tcp_client(c, c->bad_key);
    assert_null(ask_within(c, s, req, strlen(req), 1000));
    zmq_close(s);
    s = tcp_client(c, NULL);
    assert_null(ask_within(c, s, req, strlen(req), 1000));
    zmq_close(s);
    /* Nothing reached the import. */
    assert_int_equal(c->fake.calls, 0);

    s = tcp_client(c, c->good_key);
    text = ask(c, s, req, strlen(req));
    assert_non_null(text);
    assert_non_null(strstr(text, "\"result\":\"signalled\""));
    assert_int_equal(c->fake.calls, 1);
    free(text);
    zmq_close(s);
}

/* `metrics` answers with the host's metrics as Prometheus text, the
 * figures as the loop reported them. */
static void test_metrics(void **state)
{
    ctx_t *c = *state;
    dip_ctl_reply_t r;
    const char *text;
    sup_metrics_claim(c->metrics, 1);
    sup_metrics_progress(c->metrics, 41, 2, 1000, 3);
    expect(c, "{\"v\":1,\"cmd\":\"metrics\"}", DIP_CTL_METRICS, &r);
    assert_true(r.ok);
    text = json_string_value(json_object_get(r.root, "text"));
    assert_non_null(text);
    assert_non_null(strstr(text, "\ndealimport_claims_total 1\n"));
    assert_non_null(strstr(text, "\ndealimport_rows_added_total 41\n"));
    assert_non_null(strstr(text, "\ndealimport_line_errors_total 2\n"));
    assert_non_null(strstr(text, "# TYPE dealimport_workers_running gauge\n"));
    dip_ctl_reply_release(&r);
    expect_error(c, "{\"v\":1,\"cmd\":\"metrics\",\"id\":\"x\"}",
                 DIP_CTL_EBADREQ, "unknown field 'id'");
}

static void test_config_errors(void **state)
{
    ctx_t *c = *state;
    dip_config_t cfg = c->cfg;
    sup_ctl_host_t host = {&c->fake, fake_view, fake_control, NULL};
    void *z = zmq_ctx_new();
    char err[512], dir[1024], nodir[] = "/nonexistent";
    sup_ctl_t *x;
    snprintf(dir, sizeof(dir), "%s/other", c->dir);
    mkdir(dir, 0700);
    cfg.runtime_dir = dir;
    cfg.control_curve_secret_file = NULL;
    x = sup_ctl_new(z, &cfg, "t", NULL, c->client, c->db, &host, err,
                    sizeof(err));
    assert_null(x);
    assert_non_null(strstr(err, "DEALIMPORT_CONTROL_CURVE_SECRET_FILE must"));
    cfg.control_curve_secret_file = c->good_key;
    cfg.control_curve_clients_dir = nodir;
    x = sup_ctl_new(z, &cfg, "t", NULL, c->client, c->db, &host, err,
                    sizeof(err));
    assert_null(x);
    assert_non_null(strstr(err, "DEALIMPORT_CONTROL_CURVE_CLIENTS_DIR: cannot "
                                "read '/nonexistent'"));
    cfg.control_curve_secret_file = dir; /* a directory, not a key */
    x = sup_ctl_new(z, &cfg, "t", NULL, c->client, c->db, &host, err,
                    sizeof(err));
    assert_null(x);
    assert_non_null(strstr(err, "DEALIMPORT_CONTROL_CURVE_SECRET_FILE:"));
    zmq_ctx_term(z);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_socket_mode),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_envelopes_and_sizes),
        cmocka_unit_test(test_local_actions),
        cmocka_unit_test(test_database_away),
        cmocka_unit_test(test_curve),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_config_errors),
    };
    dip_log_setup("test_sup_ctl", DIP_LOG_ERR, 0);
    return cmocka_run_group_tests(tests, setup, teardown);
}
