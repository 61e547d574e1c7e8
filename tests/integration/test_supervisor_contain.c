/*
 * Containment: whatever happens to a worker or to the supervisor, imports
 * end with exact counts or with a reason. Workers killed by signals resume
 * from their checkpoint; one that always crashes fails after the crash limit
 * while others go on; one over its memory limit fails saying so; a killed
 * supervisor's imports are taken over when their lease expires and its
 * workers die with it; SIGTERM hands imports back to be resumed. Also: the
 * sd_notify messages, and garbage on the worker-events socket.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <zmq.h>

#include "dip_bson.h"
#include "it_check.h"
#include "it_env.h"
#include "it_tmp.h"

static const char mappings[] = "{\"Deal Name\":\"name\",\"Value\":\"value\","
                               "\"Stage\":\"stage_id\",\"Description\":"
                               "\"description\"}";

static it_env_t env;
static bson_oid_t account, user, pipeline;

static void enqueue_rows(const char *key, int rows, int cell, bson_oid_t *qid)
{
    it_put_rows(&env, key, rows, cell);
    it_enqueue(&env, key, &account, &user, &pipeline, mappings, qid);
}

static int64_t deals_of(const bson_oid_t *qid)
{
    return it_count_import_deals(&env, qid, "{}");
}

static void assert_exact(const bson_oid_t *qid, int rows)
{
    char filter[200], hex[25];
    bson_oid_to_string(qid, hex);
    assert_int_equal(deals_of(qid), rows);
    snprintf(filter, sizeof(filter),
             "{\"queue_id\":{\"$oid\":\"%s\"},\"total_records\":%d,"
             "\"total_records_added\":%d,\"total_errors\":0}",
             hex, rows, rows);
    assert_int_equal(it_count(&env, "csv_imports", filter), 1);
}

static void log_path(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/it-contain-%d-%s.log", it_tmpdir(), (int)getpid(),
             name);
}

/* 1 when the process maps a libmongoc counters segment: a file in
 * /dev/shm that outlives a SIGKILL (and, once its pid comes round again,
 * makes that process print a warning). */
static int maps_mongoc_shm(pid_t pid)
{
    char path[512];
    snprintf(path, sizeof(path), "/proc/%ld/maps", (long)pid);
    return it_file_contains(path, "/dev/shm/mongoc-");
}

static void test_worker_killed_resumes(void **state)
{
    static const char *const extra[] = {"DEALIMPORT_BATCH_ROWS=200", NULL};
    bson_oid_t qid;
    bson_t q;
    char log[256];
    pid_t sup, w;
    (void)state;
    log_path(log, sizeof(log), "killed");
    enqueue_rows("imports/deals/contain/killed.csv", 100000, 40, &qid);
    sup = it_supervisor_start(&env, extra, log);
    assert_int_equal(it_wait_int(&env, &qid, "progress.lines", 1, 60000), 0);
    w = it_wait_worker(&qid, 10000);
    assert_true(w > 0);
    /* Killed workers leave nothing in /dev/shm. */
    assert_false(maps_mongoc_shm(w));
    assert_int_equal(kill(w, SIGKILL), 0);
    /* the next worker, resumed from the checkpoint after a backoff */
    for (int i = 0; i < 1000 && it_worker_pid(&qid) == w; i++)
        usleep(10000);
    w = it_wait_worker(&qid, 20000);
    assert_true(w > 0);
    usleep(300000);
    assert_int_equal(kill(w, SIGSEGV), 0);

    assert_int_equal(it_wait_final(&env, &qid, 180000, &q), 0);
    assert_string_equal(it_str(&q, "status"), "completed");
    bson_destroy(&q);
    assert_exact(&qid, 100000);
    assert_true(it_file_contains(log, "killed by signal 9 (SIGKILL)"));
#ifdef __SANITIZE_ADDRESS__
    /* AddressSanitizer catches SIGSEGV in the worker and aborts. */
    assert_true(it_file_contains(log, "killed by signal 6 (SIGABRT)"));
#else
    assert_true(it_file_contains(log, "killed by signal 11 (SIGSEGV)"));
#endif
    assert_true(it_file_contains(log, "resuming from its checkpoint"));
    assert_int_equal(WEXITSTATUS(it_process_stop(sup, SIGTERM, 30000)), 0);
}

static void test_always_crashing_worker_fails(void **state)
{
    char wrapper[256], ids[256], log[256], env_path[300], hex[25];
    const char *extra[3];
    bson_oid_t bad, good;
    bson_t q;
    pid_t sup;
    FILE *f;
    (void)state;
    /* A worker that dies of SIGSEGV for the imports listed in a file, and
     * is the real worker for the others. */
    snprintf(ids, sizeof(ids), "%s/it-contain-%d.crash", it_tmpdir(),
             (int)getpid());
    snprintf(wrapper, sizeof(wrapper), "%s/it-contain-%d-worker.sh",
             it_tmpdir(), (int)getpid());
    f = fopen(wrapper, "w");
    fprintf(f,
            "#!/bin/sh\n"
            "if grep -qx \"$2\" %s 2>/dev/null; then kill -SEGV $$; fi\n"
            "exec %s/dealimport-worker \"$@\"\n",
            ids, DEALIMPORT_BIN_DIR);
    fclose(f);
    chmod(wrapper, 0700);
    snprintf(env_path, sizeof(env_path), "DEALIMPORT_WORKER_PATH=%s", wrapper);
    extra[0] = env_path;
    extra[1] = "DEALIMPORT_WORKER_RESTARTS=3";
    extra[2] = NULL;

    enqueue_rows("imports/deals/contain/crash.csv", 100, 10, &bad);
    bson_oid_to_string(&bad, hex);
    f = fopen(ids, "w");
    fprintf(f, "%s\n", hex);
    fclose(f);
    enqueue_rows("imports/deals/contain/fine.csv", 2000, 10, &good);

    log_path(log, sizeof(log), "crash");
    sup = it_supervisor_start(&env, extra, log);
    assert_int_equal(it_wait_final(&env, &bad, 120000, &q), 0);
    assert_string_equal(it_str(&q, "status"), "failed");
    assert_non_null(strstr(it_str(&q, "error"), "killed by signal 11"));
    assert_non_null(strstr(it_str(&q, "error"), "failed 3 times"));
    bson_destroy(&q);
    assert_int_equal(deals_of(&bad), 0);

    assert_int_equal(it_wait_final(&env, &good, 120000, &q), 0);
    assert_string_equal(it_str(&q, "status"), "completed");
    bson_destroy(&q);
    assert_exact(&good, 2000);
    assert_int_equal(kill(sup, 0), 0);
    assert_int_equal(WEXITSTATUS(it_process_stop(sup, SIGTERM, 30000)), 0);
    unlink(wrapper);
    unlink(ids);
}

static void test_memory_limit(void **state)
{
    /* 20,000 rows of 4 KiB in one batch need far more than 64 MB (a byte
     * budget that large is allowed, not the default). */
    static const char *const extra[] = {
        "DEALIMPORT_WORKER_MEMORY_MB=64", "DEALIMPORT_BATCH_ROWS=20000",
        "DEALIMPORT_BATCH_BYTES=1073741824", NULL};
    bson_oid_t big, small;
    bson_t q;
    char log[256];
    pid_t sup;
    (void)state;
#ifdef __SANITIZE_ADDRESS__
    skip(); /* no memory rlimit in sanitizer builds: see sup_spawn.c */
#endif
    enqueue_rows("imports/deals/contain/big.csv", 20000, 4096, &big);
    log_path(log, sizeof(log), "memory");
    sup = it_supervisor_start(&env, extra, log);
    assert_int_equal(it_wait_final(&env, &big, 120000, &q), 0);
    assert_string_equal(it_str(&q, "status"), "failed");
    assert_non_null(strstr(it_str(&q, "error"), "64 MB memory limit"));
    bson_destroy(&q);
    /* The supervisor keeps serving. */
    enqueue_rows("imports/deals/contain/small.csv", 300, 10, &small);
    assert_int_equal(it_wait_final(&env, &small, 60000, &q), 0);
    assert_string_equal(it_str(&q, "status"), "completed");
    bson_destroy(&q);
    assert_exact(&small, 300);
    assert_int_equal(WEXITSTATUS(it_process_stop(sup, SIGTERM, 30000)), 0);
}

static void test_supervisor_killed_takeover(void **state)
{
    /* The driver's socket timeout is a quarter of the lease: 8 s leaves
     * the development server (which counts an import's deals by scanning
     * them all) room to count 80,000 on a busy machine. */
    static const char *const extra[] = {"DEALIMPORT_BATCH_ROWS=500",
                                        "DEALIMPORT_LEASE_S=8", NULL};
    bson_oid_t qid;
    bson_t q;
    char log[256];
    pid_t sup, w;
    int64_t frozen;
    (void)state;
    enqueue_rows("imports/deals/contain/takeover.csv", 80000, 40, &qid);
    log_path(log, sizeof(log), "takeover1");
    sup = it_supervisor_start(&env, extra, log);
    assert_int_equal(it_wait_int(&env, &qid, "progress.lines", 8000, 60000), 0);
    w = it_worker_pid(&qid);
    assert_true(w > 0);
    it_process_stop(sup, SIGKILL, 5000);
    /* Its worker dies with it (death-of-parent signal): no orphan keeps
     * writing. */
    for (int i = 0; i < 100 && kill(w, 0) == 0; i++)
        usleep(50000);
    assert_int_not_equal(kill(w, 0), 0);
    frozen = deals_of(&qid);
    usleep(1000000);
    assert_int_equal(deals_of(&qid), frozen);
    assert_true(frozen < 80000);

    log_path(log, sizeof(log), "takeover2");
    sup = it_supervisor_start(&env, extra, log);
    assert_int_equal(it_wait_final(&env, &qid, 120000, &q), 0);
    assert_string_equal(it_str(&q, "status"), "completed");
    assert_int_equal(dip_bson_get_int(&q, "claims", 0), 2);
    bson_destroy(&q);
    assert_exact(&qid, 80000);
    /* The new worker resumed at the checkpoint, not at line 1. */
    assert_false(it_file_contains(log, "starts at line 1\""));
    assert_true(it_file_contains(log, "starts at line"));
    assert_int_equal(WEXITSTATUS(it_process_stop(sup, SIGTERM, 30000)), 0);
}

static void test_sigterm_hands_back(void **state)
{
    static const char *const extra[] = {"DEALIMPORT_BATCH_ROWS=500", NULL};
    bson_oid_t qid;
    bson_t q;
    char log[256];
    pid_t sup;
    int st;
    (void)state;
    enqueue_rows("imports/deals/contain/handback.csv", 80000, 40, &qid);
    log_path(log, sizeof(log), "term1");
    sup = it_supervisor_start(&env, extra, log);
    assert_int_equal(it_wait_int(&env, &qid, "progress.lines", 5000, 60000), 0);
    st = it_process_stop(sup, SIGTERM, 30000);
    assert_true(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    /* handed back as pending, with its checkpoint */
    {
        mongoc_collection_t *c = it_coll(&env, "queues");
        bson_t *filter = BCON_NEW("_id", BCON_OID(&qid));
        mongoc_cursor_t *cur =
            mongoc_collection_find_with_opts(c, filter, NULL, NULL);
        const bson_t *doc;
        assert_true(mongoc_cursor_next(cur, &doc));
        assert_string_equal(it_str(doc, "status"), "pending");
        {
            bson_iter_t it;
            assert_true(bson_iter_init_find(&it, doc, "in_progress"));
            assert_false(bson_iter_as_bool(&it));
        }
        assert_true(dip_bson_get_int(doc, "checkpoint.line", 0) >= 2000);
        mongoc_cursor_destroy(cur);
        bson_destroy(filter);
        mongoc_collection_destroy(c);
    }
    log_path(log, sizeof(log), "term2");
    sup = it_supervisor_start(&env, extra, log);
    assert_int_equal(it_wait_final(&env, &qid, 120000, &q), 0);
    assert_string_equal(it_str(&q, "status"), "completed");
    bson_destroy(&q);
    assert_exact(&qid, 80000);
    assert_false(it_file_contains(log, "starts at line 1\""));
    assert_int_equal(WEXITSTATUS(it_process_stop(sup, SIGTERM, 30000)), 0);
}

/* Large enough that the import still runs when the garbage is sent. */
#define GARBAGE_ROWS 100000

static void test_notify_and_garbage(void **state)
{
    char sock_path[108], notify_env[160], log[256], buf[4096], ep[400];
    const char *extra[2];
    struct sockaddr_un sa;
    int fd, ready = 0, status = 0, stopping = 0;
    bson_oid_t qid;
    bson_t q;
    pid_t sup, wpid;
    void *ctx, *dealer;
    (void)state;
    snprintf(sock_path, sizeof(sock_path), "%s/it-notify-%d.sock", it_tmpdir(),
             (int)getpid());
    unlink(sock_path);
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    snprintf(notify_env, sizeof(notify_env), "NOTIFY_SOCKET=%s", sock_path);
    extra[0] = notify_env;
    extra[1] = NULL;

    enqueue_rows("imports/deals/contain/garbage.csv", GARBAGE_ROWS, 40, &qid);
    log_path(log, sizeof(log), "garbage");
    sup = it_supervisor_start(&env, extra, log);

    /* Garbage and spoofed messages on the worker-events socket, under the
     * running import's own identity and others. */
    assert_int_equal(it_wait_int(&env, &qid, "progress.lines", 1000, 60000), 0);
    /* The worker is held still meanwhile, so the import certainly runs
     * while they arrive (a fast machine could otherwise end it first, and
     * the drops of an ended import's identity would share the intruder's
     * log line, which is rate-limited). */
    wpid = it_worker_pid(&qid);
    if (wpid <= 0)
        fail_msg("the import's worker ended before the garbage could be "
                 "sent: make GARBAGE_ROWS larger");
    assert_int_equal(kill(wpid, SIGSTOP), 0);
    snprintf(ep, sizeof(ep), "ipc://%s/events.ipc", env.runtime);
    ctx = zmq_ctx_new();
    for (int round = 0; round < 2; round++) {
        char ident[64], hex[25];
        /* A linger long enough that what was queued before the
         * connection came up is still sent: on a loaded machine the whole
         * burst can be queued before it does. */
        int linger = 5000, timeout = 2000;
        bson_oid_to_string(&qid, hex);
        dealer = zmq_socket(ctx, ZMQ_DEALER);
        if (round == 0)
            snprintf(ident, sizeof(ident), "deals_import_queue_%s", hex);
        else
            snprintf(ident, sizeof(ident), "intruder");
        zmq_setsockopt(dealer, ZMQ_ROUTING_ID, ident, strlen(ident));
        zmq_setsockopt(dealer, ZMQ_LINGER, &linger, sizeof(linger));
        zmq_setsockopt(dealer, ZMQ_SNDTIMEO, &timeout, sizeof(timeout));
        assert_int_equal(zmq_connect(dealer, ep), 0);
        usleep(200000);
        srand(7);
        for (int i = 0; i < 2000; i++) {
            size_t n = (size_t)(rand() % 300);
            for (size_t j = 0; j < n; j++)
                buf[j] = (char)(rand() % 256);
            zmq_send(dealer, buf, n, ZMQ_DONTWAIT);
        }
        snprintf(buf, sizeof(buf),
                 "{\"v\":1,\"type\":\"done\",\"queue_id\":\"%s\","
                 "\"status\":\"failed\",\"lines\":1,\"error\":\"spoofed\"}",
                 hex);
        zmq_send(dealer, buf, strlen(buf), 0);
        zmq_close(dealer);
    }
    zmq_ctx_term(ctx);
    {
        char hex[25], running[160];
        bson_oid_to_string(&qid, hex);
        snprintf(running, sizeof(running),
                 "{\"_id\":{\"$oid\":\"%s\"},\"status\":\"processing\"}", hex);
        assert_int_equal(it_count(&env, "queues", running), 1);
    }
    for (int w = 0;
         w < 300 && !it_file_contains(log, "dropped a message from 'intruder'");
         w++)
        usleep(100000);
    assert_true(it_file_contains(log, "dropped a message from 'intruder'"));
    assert_int_equal(kill(wpid, SIGCONT), 0);

    assert_int_equal(it_wait_final(&env, &qid, 120000, &q), 0);
    assert_string_equal(it_str(&q, "status"), "completed");
    bson_destroy(&q);
    assert_exact(&qid, GARBAGE_ROWS);
    assert_int_equal(WEXITSTATUS(it_process_stop(sup, SIGTERM, 30000)), 0);

    /* What systemd would have read. */
    fcntl(fd, F_SETFL, O_NONBLOCK);
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
        if (n < 0)
            break;
        buf[n] = '\0';
        ready |= strcmp(buf, "READY=1") == 0;
        status |= strncmp(buf, "STATUS=", 7) == 0 &&
                  strstr(buf, "workers busy") != NULL;
        stopping |= strcmp(buf, "STOPPING=1") == 0;
    }
    close(fd);
    unlink(sock_path);
    assert_true(ready);
    assert_true(status);
    assert_true(stopping);
}

/* Each deal written costs the development server 30 us: the imports of
 * 80,000 and 100,000 rows that a kill, a SIGTERM or the garbage must meet
 * mid-way last 2.4 s or more on any machine. */
static int price(void **state)
{
    (void)state;
    return it_dev_slow(&env, "{\"write_us\": 30}") == 0 ? 0 : -1;
}

static int unprice(void **state)
{
    (void)state;
    return it_dev_slow(&env, "{\"write_us\": 0}") == 0 ? 0 : -1;
}

static int stop_all(void **state)
{
    (void)state;
    it_stop_all(&env);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_worker_killed_resumes, stop_all),
        cmocka_unit_test_teardown(test_always_crashing_worker_fails, stop_all),
        cmocka_unit_test_teardown(test_memory_limit, stop_all),
        cmocka_unit_test_teardown(test_supervisor_killed_takeover, stop_all),
        cmocka_unit_test_teardown(test_sigterm_hands_back, stop_all),
        cmocka_unit_test_teardown(test_notify_and_garbage, stop_all),
    };
    int rc = it_env_init(&env, "contain");
    if (rc)
        return rc;
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &account, &pipeline);
    rc = cmocka_run_group_tests(tests, price, unprice);
    it_env_release(&env);
    return rc;
}
