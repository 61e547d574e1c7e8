/*
 * Acceptance, crashes: during a 200,000-row import the worker is killed with
 * SIGKILL at 10 random moments (from a fixed seed), anywhere from its start
 * to the middle of a batch; the supervisor starts it again each time from its
 * checkpoint. At the end every good line has exactly one deal, no
 * (import.queue_id, import.line) is stored twice, every bad line has exactly
 * one error document, and the totals agree.
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
#include <time.h>
#include <unistd.h>

#include "dip_bson.h"
#include "it_check.h"
#include "it_env.h"
#include "it_gen.h"
#include "it_tmp.h"

#define KILLS 10
/* Each deal written costs the development server this much while the kills
 * land: at 100 us the file's deals take 20 s of writing, and ten runs of at
 * most 530 ms cannot finish them on any machine (unpriced, a fast one wrote
 * the whole file before the eighth kill). */
#define WRITE_PRICE "{\"write_us\": 100}"

static it_env_t env;

static int unprice(void **state)
{
    (void)state;
    return it_dev_slow(&env, "{\"write_us\": 0}") == 0 ? 0 : -1;
}

/* Waits for a worker of qid other than `previous`; -1 after timeout_ms. */
static pid_t next_worker(const bson_oid_t *qid, pid_t previous, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 10) {
        pid_t pid = it_worker_pid(qid);
        if (pid > 0 && pid != previous)
            return pid;
        usleep(10000);
    }
    return -1;
}

static void test_ten_kills(void **state)
{
    static const char *const extra[] = {"DEALIMPORT_WORKER_RESTARTS=20",
                                        "DEALIMPORT_ROW_BACKOFF_MS=200", NULL};
    uint64_t rows = (uint64_t)(200000 * it_scale());
    it_gen_t *gen = it_gen_new(rows, 424242u, 10, 1);
    bson_oid_t account, user, pipeline, qid;
    unsigned seed = 2024u;
    char path[256], logpath[256], filter[512], hex[25], why[512];
    pid_t sup, worker = -1;
    int kills = 0;
    it_tally_t t;
    bson_t q;
    (void)state;
    assert_non_null(gen);
    snprintf(path, sizeof(path), "%s/it-worker-kill-%d.csv", it_tmpdir(),
             (int)getpid());
    assert_int_equal(it_gen_write(gen, path), 0);
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &account, &pipeline);
    it_put_file(&env, "imports/deals/acceptance/kill.csv", path);
    unlink(path);
    it_enqueue(&env, "imports/deals/acceptance/kill.csv", &account, &user,
               &pipeline, it_gen_mappings(), &qid);
    snprintf(logpath, sizeof(logpath), "%s/it-worker-kill-%d.log", it_tmpdir(),
             (int)getpid());
    assert_int_equal(it_dev_slow(&env, WRITE_PRICE), 0);
    sup = it_supervisor_start(&env, extra, logpath);
    assert_true(sup > 0);

    while (kills < KILLS) {
        /* 30-530 ms into each run: some before the first batch, most in
         * the middle of one. */
        useconds_t delay = (useconds_t)(30000 + rand_r(&seed) % 500000);
        worker = next_worker(&qid, worker, 120000);
        if (worker < 0)
            break;
        usleep(delay);
        if (kill(worker, SIGKILL) == 0) {
            kills++;
            fprintf(stderr, "kill %d: worker %d after %u ms\n", kills,
                    (int)worker, (unsigned)(delay / 1000));
        }
    }
    if (kills < KILLS)
        fail_msg("only %d kills before the import ended; log in %s", kills,
                 logpath);
    assert_int_equal(it_dev_slow(&env, "{\"write_us\": 0}"), 0);

    assert_int_equal(it_wait_final(&env, &qid, 600000, &q), 0);
    if (strcmp(it_str(&q, "status"), "completed") != 0)
        fail_msg("import %s: '%s'; log in %s", it_str(&q, "status"),
                 it_str(&q, "error"), logpath);
    assert_int_equal(it_check_import(&env, &qid, &pipeline, gen, &t), 0);
    if (t.first[0])
        fprintf(stderr, "first problem: %s\n", t.first);
    assert_int_equal(t.deals, it_gen_count(gen, IT_ROW_GOOD));
    assert_int_equal(t.deal_twice, 0);
    assert_int_equal(t.deal_wrong, 0);
    assert_int_equal(t.deal_missing, 0);
    assert_int_equal(t.errors, it_gen_count(gen, IT_ROW_KINDS));
    assert_int_equal(t.error_twice, 0);
    assert_int_equal(t.error_wrong, 0);
    assert_int_equal(t.error_missing, 0);
    if (it_check_stages(&env, &pipeline, gen, why, sizeof(why)) < 0)
        fail_msg("%s", why);
    bson_oid_to_string(&qid, hex);
    snprintf(filter, sizeof(filter),
             "{\"queue_id\":{\"$oid\":\"%s\"},\"status\":\"completed\","
             "\"total_records\":%llu,\"total_records_added\":%llu,"
             "\"total_errors\":%llu}",
             hex, (unsigned long long)rows,
             (unsigned long long)it_gen_count(gen, IT_ROW_GOOD),
             (unsigned long long)it_gen_count(gen, IT_ROW_KINDS));
    assert_int_equal(it_count(&env, "csv_imports", filter), 1);
    bson_destroy(&q);
    assert_int_equal(it_process_stop(sup, SIGTERM, 30000), 0);
    /* Restarts resumed from their checkpoints, not from line 1 (only a
     * worker killed before the import's first batch has none). */
    fprintf(stderr, "%d restarts resumed from a checkpoint\n",
            it_log_count(logpath, "resuming at line"));
    assert_true(it_log_count(logpath, "resuming at line") >= KILLS / 2);
    /* Our kills, and no other death or sanitizer report. */
    assert_int_equal(it_log_count(logpath, "killed by signal 9"), KILLS);
    assert_int_equal(it_log_trouble(logpath), KILLS);
    it_gen_destroy(&gen);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_ten_kills, unprice),
    };
    int rc = it_env_init(&env, "wkill");
    if (rc)
        return rc;
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    it_env_release(&env);
    return rc;
}
