/*
 * Acceptance, leases under faults, with a 4 s lease: the development
 * MongoDB server frozen (SIGSTOP) mid-import for longer than the driver's
 * connect and server-selection timeouts and the lease together, then thawed,
 * several times; the same server stopped and continued in a fast rhythm;
 * one of two supervisors frozen for three leases mid-import; and SIGTERM
 * with the database frozen. A sampler thread reads /proc every 20 ms: at no
 * sampled moment may two live workers of one import run on one supervisor,
 * and across supervisors they overlap for less than a lease. Every import
 * still ends exact. Skipped when the tests run against a server they cannot
 * signal.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dip_bson.h"
#include "it_check.h"
#include "it_env.h"
#include "it_gen.h"
#include "it_tmp.h"

#define LEASE_MS 4000
#define MAX_SEEN 64

static it_env_t env;
static pid_t mongo = -1;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the sampler ------------------------------------------------------ */

typedef struct seen {
    pid_t pid;
    int64_t first_ms, last_ms;
} seen_t;

typedef struct sampler {
    pthread_t thread;
    pthread_mutex_t lock;
    bson_oid_t qid;
    volatile int stop;
    int max_live; /* most live workers of the import at one sample */
    long samples;
    seen_t seen[MAX_SEEN];
    int nseen;
} sampler_t;

static void *sample_loop(void *arg)
{
    sampler_t *s = arg;
    while (!s->stop) {
        pid_t pids[16];
        int n = it_worker_pids(&s->qid, pids, 16);
        int64_t now = mono_ms();
        pthread_mutex_lock(&s->lock);
        s->samples++;
        if (n > s->max_live)
            s->max_live = n;
        for (int i = 0; i < n && i < 16; i++) {
            int j;
            for (j = 0; j < s->nseen; j++)
                if (s->seen[j].pid == pids[i])
                    break;
            if (j == s->nseen && s->nseen < MAX_SEEN) {
                s->seen[j].pid = pids[i];
                s->seen[j].first_ms = now;
                s->nseen++;
            }
            if (j < s->nseen)
                s->seen[j].last_ms = now;
        }
        pthread_mutex_unlock(&s->lock);
        usleep(20000);
    }
    return NULL;
}

static void sampler_start(sampler_t *s, const bson_oid_t *qid)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->lock, NULL);
    bson_oid_copy(qid, &s->qid);
    assert_int_equal(pthread_create(&s->thread, NULL, sample_loop, s), 0);
}

static void sampler_stop(sampler_t *s)
{
    s->stop = 1;
    pthread_join(s->thread, NULL);
    pthread_mutex_destroy(&s->lock);
    fprintf(stderr, "sampler: %ld samples, %d workers seen, at most %d live\n",
            s->samples, s->nseen, s->max_live);
}

/* The longest time two of the workers seen were alive together. */
static int64_t sampler_overlap(const sampler_t *s)
{
    int64_t worst = 0;
    for (int i = 0; i < s->nseen; i++)
        for (int j = i + 1; j < s->nseen; j++) {
            int64_t from = s->seen[i].first_ms > s->seen[j].first_ms
                               ? s->seen[i].first_ms
                               : s->seen[j].first_ms;
            int64_t to = s->seen[i].last_ms < s->seen[j].last_ms
                             ? s->seen[i].last_ms
                             : s->seen[j].last_ms;
            if (to - from > worst)
                worst = to - from;
        }
    return worst;
}

/* ---- imports ---------------------------------------------------------- */

static int setup_group(void **state)
{
    (void)state;
    return 0;
}

static int teardown_each(void **state)
{
    (void)state;
    if (mongo > 0)
        kill(mongo, SIGCONT); /* never leave it frozen */
    it_stop_all(&env);
    (void)it_dev_slow(&env, "{\"write_us\": 0}");
    return 0;
}

/* What each deal written costs the development server here: 30,000 rows
 * take 12 s at the least, so every fault meets an import under way
 * (frozen three leases, stopped with the database frozen) on a machine of
 * any speed; unpriced, a quiet machine finished them before the fault. */
#define WRITE_PRICE "{\"write_us\": 400}"

/* Once its faults are over an import runs at full speed to its end (the
 * frozen-supervisor test keeps the price: the thawed supervisor must meet a
 * running import). */
static void unprice(void)
{
    assert_int_equal(it_dev_slow(&env, "{\"write_us\": 0}"), 0);
}

static it_gen_t *start_import(const char *key, uint64_t rows, unsigned seed,
                              bson_oid_t *pipeline, bson_oid_t *qid)
{
    it_gen_t *gen = it_gen_new(rows, seed, 10, 0);
    bson_oid_t account, user;
    char path[256];
    assert_non_null(gen);
    assert_int_equal(it_dev_slow(&env, WRITE_PRICE), 0);
    snprintf(path, sizeof(path), "%s/it-lease-%d.csv", it_tmpdir(),
             (int)getpid());
    assert_int_equal(it_gen_write(gen, path), 0);
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &account, pipeline);
    it_put_file(&env, key, path);
    unlink(path);
    it_enqueue(&env, key, &account, &user, pipeline, it_gen_mappings(), qid);
    return gen;
}

/* Progress lines, or -1 once final, -2 when the read failed. */
static int64_t lines_now(const bson_oid_t *qid)
{
    mongoc_collection_t *c = it_coll(&env, "queues");
    bson_t *filter = BCON_NEW("_id", BCON_OID(qid));
    mongoc_cursor_t *cur =
        mongoc_collection_find_with_opts(c, filter, NULL, NULL);
    const bson_t *doc;
    int64_t lines = -1;
    if (mongoc_cursor_next(cur, &doc)) {
        const char *status = dip_bson_get_str(doc, "status");
        if (status && (strcmp(status, "processing") == 0 ||
                       strcmp(status, "pending") == 0))
            lines = dip_bson_get_int(doc, "progress.lines", 0);
    } else if (mongoc_cursor_error(cur, NULL)) {
        lines = -2;
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(filter);
    mongoc_collection_destroy(c);
    return lines;
}

static void wait_under_way(const bson_oid_t *qid, const it_gen_t *gen,
                           int64_t at_least, const char *log)
{
    int64_t lines = 0;
    for (int i = 0; i < 6000 && lines != -1 && lines < at_least; i++) {
        usleep(10000);
        lines = lines_now(qid);
    }
    if (lines < at_least || (uint64_t)lines >= it_gen_rows(gen))
        fail_msg("the import was not under way (%lld lines); log in %s",
                 (long long)lines, log);
}

static void assert_exact(const bson_oid_t *qid, const bson_oid_t *pipeline,
                         const it_gen_t *gen, const char *log)
{
    it_tally_t t;
    bson_t q;
    char filter[256], hex[25];
    assert_int_equal(it_wait_final(&env, qid, 300000, &q), 0);
    if (strcmp(it_str(&q, "status"), "completed") != 0)
        fail_msg("import %s: '%s'; log in %s", it_str(&q, "status"),
                 it_str(&q, "error"), log);
    bson_destroy(&q);
    assert_int_equal(it_check_import(&env, qid, pipeline, gen, &t), 0);
    if (t.first[0])
        fprintf(stderr, "first problem: %s\n", t.first);
    assert_int_equal(t.deals, it_gen_count(gen, IT_ROW_GOOD));
    assert_int_equal(t.deal_twice + t.deal_wrong + t.deal_missing, 0);
    assert_int_equal(t.errors, it_gen_count(gen, IT_ROW_KINDS));
    assert_int_equal(t.error_twice + t.error_wrong + t.error_missing, 0);
    bson_oid_to_string(qid, hex);
    snprintf(filter, sizeof(filter),
             "{\"queue_id\":{\"$oid\":\"%s\"},\"status\":\"completed\","
             "\"total_records_added\":%llu,\"total_errors\":%llu}",
             hex, (unsigned long long)it_gen_count(gen, IT_ROW_GOOD),
             (unsigned long long)it_gen_count(gen, IT_ROW_KINDS));
    /* The queue document is written first, csv_imports after it: a
     * freeze between the two delays the second. */
    for (int i = 0; i < 600 && it_count(&env, "csv_imports", filter) != 1; i++)
        usleep(100000);
    assert_int_equal(it_count(&env, "csv_imports", filter), 1);
}

/* The development server counts an import's deals by scanning every deal:
 * those of the cases before go, so each count stays within the driver's
 * timeouts of a 4 s lease. */
static void drop_deals(const bson_oid_t *qid)
{
    mongoc_collection_t *c = it_coll(&env, "deals");
    bson_t *filter = bson_new();
    it_append_import_deals(&env, filter, qid);
    mongoc_collection_delete_many(c, filter, NULL, NULL, NULL);
    bson_destroy(filter);
    mongoc_collection_destroy(c);
}

static void log_path(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/it-lease-%d-%s.log", it_tmpdir(), (int)getpid(),
             name);
}

static const char *const lease_env[] = {
    "DEALIMPORT_LEASE_S=4", "DEALIMPORT_ROW_BACKOFF_MS=200",
    "DEALIMPORT_BATCH_ROWS=500", "DEALIMPORT_POLL_MS=500", NULL};

/* ---- the cases -------------------------------------------------------- */

static void test_db_frozen_repeatedly(void **state)
{
    bson_oid_t pipeline, qid;
    it_gen_t *gen;
    sampler_t s;
    char log[256];
    pid_t sup;
    (void)state;
    log_path(log, sizeof(log), "frozen");
    gen = start_import("imports/deals/lease/frozen.csv", 30000, 4242u,
                       &pipeline, &qid);
    sup = it_supervisor_start(&env, lease_env, log);
    assert_true(sup > 0);
    sampler_start(&s, &qid);
    wait_under_way(&qid, gen, 1000, log);
    /* The worker's connect and selection timeouts are a quarter of the
     * lease each: 7 s frozen is longer than both and the lease. */
    for (int round = 0; round < 3; round++) {
        int64_t before = lines_now(&qid);
        if (before == -1)
            break;
        assert_int_equal(kill(mongo, SIGSTOP), 0);
        fprintf(stderr, "round %d: froze the database at line %lld for 7 s\n",
                round, (long long)before);
        sleep(7);
        assert_int_equal(kill(mongo, SIGCONT), 0);
        /* Let it get going again before the next freeze. */
        for (int i = 0; i < 300; i++) {
            int64_t now = lines_now(&qid);
            if (now == -1 || now > before + 1000)
                break;
            usleep(50000);
        }
    }
    unprice();
    assert_exact(&qid, &pipeline, gen, log);
    sampler_stop(&s);
    assert_true(s.samples > 100);
    assert_true(s.nseen >= 2); /* the freezes did stop workers */
    if (s.max_live > 1)
        fail_msg("%d live workers of the import at once; log in %s", s.max_live,
                 log);
    assert_true(it_log_count(log, "lease could not be renewed") >= 1);
    assert_int_equal(WEXITSTATUS(it_process_stop(sup, SIGTERM, 30000)), 0);
    assert_int_equal(it_log_trouble(log), 0);
    drop_deals(&qid);
    it_gen_destroy(&gen);
}

/* The same with the driver's timeouts set short in the URI (then used as
 * they are): calls fail within a second, renewals fail, the lease runs out
 * while the worker still runs. The supervisor must not claim the import it
 * runs, nor start a second worker for it. */
static void test_db_frozen_uri_timeouts(void **state)
{
    static char uri[1400];
    const char *extra[] = {uri,
                           "DEALIMPORT_LEASE_S=4",
                           "DEALIMPORT_ROW_BACKOFF_MS=200",
                           "DEALIMPORT_BATCH_ROWS=500",
                           "DEALIMPORT_POLL_MS=500",
                           NULL};
    bson_oid_t pipeline, qid;
    it_gen_t *gen;
    sampler_t s;
    char log[256];
    pid_t sup;
    (void)state;
    snprintf(uri, sizeof(uri),
             "DEALIMPORT_MONGODB_URI=%s%ssocketTimeoutMS=1000&"
             "connectTimeoutMS=300&serverSelectionTimeoutMS=300",
             env.uri, strchr(env.uri, '?') ? "&" : "?");
    log_path(log, sizeof(log), "uri-timeouts");
    gen = start_import("imports/deals/lease/uri.csv", 30000, 31u, &pipeline,
                       &qid);
    sup = it_supervisor_start(&env, extra, log);
    assert_true(sup > 0);
    sampler_start(&s, &qid);
    wait_under_way(&qid, gen, 1000, log);
    for (int round = 0; round < 2; round++) {
        int64_t before = lines_now(&qid);
        if (before == -1)
            break;
        assert_int_equal(kill(mongo, SIGSTOP), 0);
        sleep(7);
        assert_int_equal(kill(mongo, SIGCONT), 0);
        for (int i = 0; i < 300; i++) {
            int64_t now = lines_now(&qid);
            if (now == -1 || now > before + 1000)
                break;
            usleep(50000);
        }
    }
    unprice();
    assert_exact(&qid, &pipeline, gen, log);
    sampler_stop(&s);
    if (s.max_live > 1)
        fail_msg("%d live workers of the import at once; log in %s", s.max_live,
                 log);
    assert_int_equal(WEXITSTATUS(it_process_stop(sup, SIGTERM, 30000)), 0);
    drop_deals(&qid);
    it_gen_destroy(&gen);
}

static void test_db_slowed(void **state)
{
    bson_oid_t pipeline, qid;
    it_gen_t *gen;
    sampler_t s;
    char log[256];
    pid_t sup;
    int64_t start;
    (void)state;
    log_path(log, sizeof(log), "slowed");
    gen = start_import("imports/deals/lease/slowed.csv", 30000, 777u, &pipeline,
                       &qid);
    sup = it_supervisor_start(&env, lease_env, log);
    assert_true(sup > 0);
    sampler_start(&s, &qid);
    wait_under_way(&qid, gen, 1000, log);
    /* 20 s of 400 ms stopped, 100 ms running. */
    start = mono_ms();
    while (mono_ms() - start < 20000) {
        assert_int_equal(kill(mongo, SIGSTOP), 0);
        usleep(400000);
        assert_int_equal(kill(mongo, SIGCONT), 0);
        usleep(100000);
    }
    unprice();
    assert_exact(&qid, &pipeline, gen, log);
    sampler_stop(&s);
    if (s.max_live > 1)
        fail_msg("%d live workers of the import at once; log in %s", s.max_live,
                 log);
    assert_int_equal(WEXITSTATUS(it_process_stop(sup, SIGTERM, 30000)), 0);
    drop_deals(&qid);
    it_gen_destroy(&gen);
}

/* The pid in claimed_by ("host:pid:started"), or -1. */
static pid_t owner_pid(const bson_oid_t *qid, char *owner, size_t len)
{
    mongoc_collection_t *c = it_coll(&env, "queues");
    bson_t *filter = BCON_NEW("_id", BCON_OID(qid));
    mongoc_cursor_t *cur =
        mongoc_collection_find_with_opts(c, filter, NULL, NULL);
    const bson_t *doc;
    pid_t pid = -1;
    if (mongoc_cursor_next(cur, &doc)) {
        const char *by = dip_bson_get_str(doc, "claimed_by");
        const char *colon = by ? strchr(by, ':') : NULL;
        if (colon) {
            pid = (pid_t)atoi(colon + 1);
            snprintf(owner, len, "%s", by);
        }
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(filter);
    mongoc_collection_destroy(c);
    return pid;
}

static void test_supervisor_frozen(void **state)
{
    bson_oid_t pipeline, qid;
    it_gen_t *gen;
    sampler_t s;
    char log_a[256], log_b[256], owner_a[300] = "", owner_b[300] = "";
    char hex[25];
    pid_t a, b, frozen;
    bson_t q;
    int starts_before;
    (void)state;
    log_path(log_a, sizeof(log_a), "sup-a");
    log_path(log_b, sizeof(log_b), "sup-b");
    gen = start_import("imports/deals/lease/takeover.csv", 30000, 99u,
                       &pipeline, &qid);
    bson_oid_to_string(&qid, hex);
    a = it_supervisor_start(&env, lease_env, log_a);
    assert_true(a > 0);
    sampler_start(&s, &qid);
    wait_under_way(&qid, gen, 2000, log_a);
    b = it_supervisor_start(&env, lease_env, log_b);
    assert_true(b > 0);
    frozen = owner_pid(&qid, owner_a, sizeof(owner_a));
    assert_int_equal(frozen, a);
    starts_before = it_log_count(log_a, "worker started");
    assert_int_equal(kill(a, SIGSTOP), 0);
    fprintf(stderr, "froze supervisor %d for three leases\n", (int)a);
    usleep(3 * LEASE_MS * 1000);
    assert_int_equal(kill(a, SIGCONT), 0);
    /* The other one took over. */
    assert_int_equal(owner_pid(&qid, owner_b, sizeof(owner_b)), b);
    assert_exact(&qid, &pipeline, gen, log_b);
    sampler_stop(&s);
    /* After the thaw the frozen one neither respawned nor wrote: the import
     * ended under the second claim, recorded by the other supervisor. */
    assert_int_equal(it_log_count(log_a, "worker started"), starts_before);
    assert_int_equal(it_log_count(log_a, "import completed"), 0);
    assert_int_equal(it_log_count(log_a, "handed back"), 0);
    assert_true(it_log_count(log_b, "import completed") >= 1);
    assert_int_equal(it_wait_final(&env, &qid, 1000, &q), 0);
    assert_int_equal(dip_bson_get_int(&q, "claims", 0), 2);
    assert_string_equal(it_str(&q, "claimed_by"), owner_b);
    bson_destroy(&q);
    fprintf(stderr, "overlap of the two workers: %lld ms\n",
            (long long)sampler_overlap(&s));
    assert_true(s.nseen >= 2);
    assert_true(sampler_overlap(&s) < LEASE_MS);
    assert_int_equal(WEXITSTATUS(it_process_stop(a, SIGTERM, 30000)), 0);
    assert_int_equal(WEXITSTATUS(it_process_stop(b, SIGTERM, 30000)), 0);
    drop_deals(&qid);
    it_gen_destroy(&gen);
}

static void test_sigterm_db_frozen(void **state)
{
    static const char *const extra[] = {"DEALIMPORT_LEASE_S=4",
                                        "DEALIMPORT_STOP_TIMEOUT_S=8",
                                        "DEALIMPORT_BATCH_ROWS=500", NULL};
    bson_oid_t pipeline, qid;
    it_gen_t *gen;
    char log[256];
    pid_t sup;
    int st;
    int64_t start, took;
    (void)state;
    log_path(log, sizeof(log), "sigterm");
    gen = start_import("imports/deals/lease/sigterm.csv", 30000, 5u, &pipeline,
                       &qid);
    sup = it_supervisor_start(&env, extra, log);
    assert_true(sup > 0);
    wait_under_way(&qid, gen, 1000, log);
    assert_int_equal(kill(mongo, SIGSTOP), 0);
    usleep(500000);
    start = mono_ms();
    st = it_process_stop(sup, SIGTERM, (8 + 5) * 1000);
    took = mono_ms() - start;
    assert_int_equal(kill(mongo, SIGCONT), 0);
    unprice();
    fprintf(stderr, "supervisor exited %d after %lld ms\n",
            st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1, (long long)took);
    assert_true(st >= 0);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_true(it_log_count(log, "stop timeout") +
                    it_log_count(log, "all imports handed back") ==
                1);
    /* What it could not hand back is resumed by the next supervisor. */
    sup = it_supervisor_start(&env, extra, log);
    assert_exact(&qid, &pipeline, gen, log);
    assert_int_equal(WEXITSTATUS(it_process_stop(sup, SIGTERM, 30000)), 0);
    drop_deals(&qid);
    it_gen_destroy(&gen);
}

/* The default stop timeout (20 s) with a lease longer than it: the
 * hand-back cannot be written, the supervisor gives up at the timeout, says
 * so, and exits 0 within it and 5 s. */
static void test_sigterm_db_frozen_stop_timeout(void **state)
{
    static const char *const extra[] = {"DEALIMPORT_LEASE_S=60",
                                        "DEALIMPORT_BATCH_ROWS=500", NULL};
    bson_oid_t pipeline, qid;
    it_gen_t *gen;
    char log[256];
    pid_t sup;
    int st;
    int64_t start, took;
    (void)state;
    log_path(log, sizeof(log), "stop-timeout");
    gen = start_import("imports/deals/lease/stop-timeout.csv", 30000, 6u,
                       &pipeline, &qid);
    sup = it_supervisor_start(&env, extra, log);
    assert_true(sup > 0);
    wait_under_way(&qid, gen, 1000, log);
    assert_int_equal(kill(mongo, SIGSTOP), 0);
    usleep(500000);
    start = mono_ms();
    st = it_process_stop(sup, SIGTERM, (20 + 5) * 1000);
    took = mono_ms() - start;
    assert_int_equal(kill(mongo, SIGCONT), 0);
    unprice();
    fprintf(stderr, "supervisor exited %d after %lld ms\n",
            st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1, (long long)took);
    assert_true(st >= 0);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_int_equal(it_log_count(log, "stop timeout (20 s) reached"), 1);
    drop_deals(&qid);
    it_gen_destroy(&gen);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_db_frozen_repeatedly, teardown_each),
        cmocka_unit_test_teardown(test_db_frozen_uri_timeouts, teardown_each),
        cmocka_unit_test_teardown(test_db_slowed, teardown_each),
        cmocka_unit_test_teardown(test_supervisor_frozen, teardown_each),
        cmocka_unit_test_teardown(test_sigterm_db_frozen, teardown_each),
        cmocka_unit_test_teardown(test_sigterm_db_frozen_stop_timeout,
                                  teardown_each),
    };
    int rc = it_env_init(&env, "lease_faults");
    if (rc)
        return rc;
    mongo = it_devmongo_pid();
    if (mongo <= 0) {
        fprintf(stderr, "skipped: the tests cannot signal this MongoDB\n");
        it_env_release(&env);
        return 77;
    }
    rc = cmocka_run_group_tests(tests, setup_group, NULL);
    it_env_release(&env);
    return rc;
}
