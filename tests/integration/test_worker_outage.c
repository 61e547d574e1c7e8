/*
 * Acceptance, database outages: in the middle of an import the development
 * MongoDB server is frozen (SIGSTOP) for 10 s and then let go (SIGCONT);
 * separately, it drops every client connection (SIGUSR1) again and again
 * until the import ends. Either way the import completes with exact counts:
 * every good line one deal, every bad line one error document, and no line
 * recorded as an error because the database was away. Skipped when the tests
 * run against a server they cannot signal.
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
#include <sys/wait.h>
#include <unistd.h>

#include "dip_bson.h"
#include "it_check.h"
#include "it_env.h"
#include "it_gen.h"
#include "it_skip.h"
#include "it_tmp.h"

static it_env_t env;
static pid_t mongo = -1;
static pid_t sup = -1;
static char logpath[256];

static int setup(void **state)
{
    static const char *const extra[] = {"DEALIMPORT_ROW_BACKOFF_MS=200", NULL};
    (void)state;
    /* Each deal written costs 30 us: an import of 100,000 rows lasts 3 s
     * or more on any machine, so every outage meets it running (the drop
     * test needs two drops 700 ms apart after line 1,000). */
    if (it_dev_slow(&env, "{\"write_us\": 30}") < 0)
        return -1;
    snprintf(logpath, sizeof(logpath), "%s/it-worker-outage-%d.log",
             it_tmpdir(), (int)getpid());
    sup = it_supervisor_start(&env, extra, logpath);
    return sup > 0 ? 0 : -1;
}

static int teardown(void **state)
{
    int st;
    (void)state;
    kill(mongo, SIGCONT); /* whatever happened, never leave it frozen */
    (void)it_dev_slow(&env, "{\"write_us\": 0}");
    st = it_process_stop(sup, SIGTERM, 30000);
    if (!(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
        fprintf(stderr, "supervisor did not exit 0 (status %d); log in %s\n",
                st, logpath);
        return -1;
    }
    return it_log_trouble(logpath) == 0 ? 0 : -1;
}

/* Uploads a generated file and enqueues it; returns the generator. */
static it_gen_t *start_import(const char *key, unsigned seed,
                              bson_oid_t *pipeline, bson_oid_t *qid)
{
    /* Not scaled down under the sanitizers: the outages need an import
     * that lasts. */
    uint64_t rows = 100000;
    it_gen_t *gen = it_gen_new(rows, seed, 10, 0);
    bson_oid_t account, user;
    char path[256];
    assert_non_null(gen);
    snprintf(path, sizeof(path), "%s/it-worker-outage-%d.csv", it_tmpdir(),
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

/* The import's lines so far (0 before it starts), -1 once it has ended, -2 when
 * the read failed (our own connection was dropped too). */
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

static void assert_exact(const bson_oid_t *qid, const bson_oid_t *pipeline,
                         const it_gen_t *gen)
{
    it_tally_t t;
    bson_t q;
    char why[512];
    assert_int_equal(it_wait_final(&env, qid, 300000, &q), 0);
    if (strcmp(it_str(&q, "status"), "completed") != 0)
        fail_msg("import %s: '%s'; log in %s", it_str(&q, "status"),
                 it_str(&q, "error"), logpath);
    assert_int_equal(dip_bson_get_int(&q, "progress.added", -1),
                     (int64_t)it_gen_count(gen, IT_ROW_GOOD));
    assert_int_equal(dip_bson_get_int(&q, "progress.errors", -1),
                     (int64_t)it_gen_count(gen, IT_ROW_KINDS));
    bson_destroy(&q);
    assert_int_equal(it_check_import(&env, qid, pipeline, gen, &t), 0);
    if (t.first[0])
        fprintf(stderr, "first problem: %s\n", t.first);
    assert_int_equal(t.deals, it_gen_count(gen, IT_ROW_GOOD));
    assert_int_equal(t.deal_twice + t.deal_wrong + t.deal_missing, 0);
    assert_int_equal(t.errors, it_gen_count(gen, IT_ROW_KINDS));
    assert_int_equal(t.error_twice + t.error_wrong + t.error_missing, 0);
    if (it_check_stages(&env, pipeline, gen, why, sizeof(why)) < 0)
        fail_msg("%s", why);
}

static void test_frozen_ten_seconds(void **state)
{
    bson_oid_t pipeline, qid;
    it_gen_t *gen;
    int64_t lines = 0;
    (void)state;
    gen = start_import("imports/deals/acceptance/freeze.csv", 99u, &pipeline,
                       &qid);
    /* Wait until it is well under way, but far from done. */
    for (int i = 0; i < 6000 && lines != -1 && lines < 1000; i++) {
        usleep(10000);
        lines = lines_now(&qid);
    }
    if (lines < 1000 || (uint64_t)lines >= it_gen_rows(gen))
        fail_msg("the import was not under way (%lld lines); log in %s",
                 (long long)lines, logpath);
    assert_int_equal(kill(mongo, SIGSTOP), 0);
    fprintf(stderr, "froze the database at line %lld for 10 s\n",
            (long long)lines);
    sleep(10);
    assert_int_equal(kill(mongo, SIGCONT), 0);
    assert_exact(&qid, &pipeline, gen);
    it_gen_destroy(&gen);
}

static void test_connections_dropped(void **state)
{
    bson_oid_t pipeline, qid;
    it_gen_t *gen;
    int64_t lines = 0;
    int drops = 0;
    (void)state;
    gen = start_import("imports/deals/acceptance/drop.csv", 7777u, &pipeline,
                       &qid);
    for (int i = 0; i < 6000 && lines != -1 && lines < 1000; i++) {
        usleep(10000);
        lines = lines_now(&qid);
    }
    if (lines < 1000 || (uint64_t)lines >= it_gen_rows(gen))
        fail_msg("the import was not under way (%lld lines); log in %s",
                 (long long)lines, logpath);
    /* Drop every connection every 700 ms until the import ends. */
    while (drops < 400) {
        assert_int_equal(kill(mongo, SIGUSR1), 0);
        drops++;
        usleep(700000);
        if (lines_now(&qid) == -1)
            break;
    }
    fprintf(stderr, "dropped all connections %d times\n", drops);
    assert_true(drops >= 2);
    assert_exact(&qid, &pipeline, gen);
    it_gen_destroy(&gen);
}

/* Storms of drops, every 5 ms for 2 s, outlast the worker's retries:
 * it checkpoints and exits with a temporary failure, the supervisor resumes
 * it in the calm spell after each, and still no line is lost, doubled, or
 * recorded as an error. */
static void test_outage_outlasts_retries(void **state)
{
    bson_oid_t pipeline, qid;
    it_gen_t *gen;
    int64_t lines = 0;
    int storms = 0,
        before = it_log_count(logpath, "stopped on a temporary failure");
    (void)state;
    gen = start_import("imports/deals/acceptance/storm.csv", 31337u, &pipeline,
                       &qid);
    for (int i = 0; i < 6000 && lines != -1 && lines < 1000; i++) {
        usleep(10000);
        lines = lines_now(&qid);
    }
    if (lines < 1000 || (uint64_t)lines >= it_gen_rows(gen))
        fail_msg("the import was not under way (%lld lines); log in %s",
                 (long long)lines, logpath);
    /* Four storms with calm spells between them, then calm to the end. */
    while (storms < 4 && lines_now(&qid) != -1) {
        for (int i = 0; i < 400; i++) {
            assert_int_equal(kill(mongo, SIGUSR1), 0);
            usleep(5000);
        }
        storms++;
        usleep(2000000);
    }
    fprintf(stderr, "%d storms of dropped connections, %d temporary failures\n",
            storms,
            it_log_count(logpath, "stopped on a temporary failure") - before);
    assert_true(it_log_count(logpath, "stopped on a temporary failure") >
                before);
    assert_exact(&qid, &pipeline, gen);
    it_gen_destroy(&gen);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frozen_ten_seconds),
        cmocka_unit_test(test_connections_dropped),
        cmocka_unit_test(test_outage_outlasts_retries),
    };
    int rc = it_env_init(&env, "woutage");
    if (rc)
        return rc;
    mongo = it_devmongo_pid();
    if (mongo <= 0 || kill(mongo, 0) != 0) {
        printf("skipped: no development MongoDB server to signal "
               "(DEALIMPORT_DEVSTACK_DIR/mongo.pid)\n");
        it_env_release(&env);
        return it_skip_status();
    }
    rc = cmocka_run_group_tests(tests, setup, teardown);
    it_env_release(&env);
    return rc;
}
