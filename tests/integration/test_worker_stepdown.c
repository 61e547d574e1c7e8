/*
 * Acceptance, replica set: in the middle of an import the primary steps
 * down for 10 s (the write then in flight applied but answered with a
 * writeConcernError, writes after it refused as NotWritablePrimary, no
 * primary to select), then steps up again. The import completes exactly:
 * every good line one deal, every bad line one error document, no line
 * twice; and the worker's log shows it retried through the step-down.
 * Skipped unless the server is the development one in replica-set mode.
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
#include "it_rs.h"
#include "it_tmp.h"

static it_env_t env;
static pid_t sup = -1;
static char logpath[256];

static int setup(void **state)
{
    static const char *const extra[] = {"DEALIMPORT_ROW_BACKOFF_MS=500", NULL};
    (void)state;
    snprintf(logpath, sizeof(logpath), "%s/it-worker-stepdown-%d.log",
             it_tmpdir(), (int)getpid());
    sup = it_supervisor_start(&env, extra, logpath);
    return sup > 0 ? 0 : -1;
}

static int teardown(void **state)
{
    int st;
    (void)state;
    it_rs_step_down(&env, 0, "none"); /* never leave it a secondary */
    st = it_process_stop(sup, SIGTERM, 30000);
    if (!(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
        fprintf(stderr, "supervisor did not exit 0 (status %d); log in %s\n",
                st, logpath);
        return -1;
    }
    return it_log_trouble(logpath) == 0 ? 0 : -1;
}

/* Lines of the worker's log that retry after a failure of the step-down:
 * the writeConcernError, NotWritablePrimary, the interrupted operation, or
 * no primary to select. */
static int stepdown_retries(void)
{
    static const char *const needles[] = {
        "retrying: Primary stepped down", "retrying: not primary",
        "retrying: operation was interrupted",
        "retrying: No suitable servers found"};
    int n = 0;
    for (size_t i = 0; i < sizeof(needles) / sizeof(needles[0]); i++)
        n += it_log_count(logpath, needles[i]);
    return n;
}

static void test_stepped_down_ten_seconds(void **state)
{
    uint64_t rows = 100000; /* long enough to outlast the step-down */
    it_gen_t *gen = it_gen_new(rows, 4242u, 10, 0);
    bson_oid_t account, user, pipeline, qid;
    it_tally_t t;
    bson_t q;
    char path[256], why[512];
    int64_t lines = 0;
    int before = stepdown_retries();
    (void)state;

    assert_non_null(gen);
    snprintf(path, sizeof(path), "%s/it-worker-stepdown-%d.csv", it_tmpdir(),
             (int)getpid());
    assert_int_equal(it_gen_write(gen, path), 0);
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &account, &pipeline);
    it_put_file(&env, "imports/deals/acceptance/stepdown.csv", path);
    unlink(path);
    it_enqueue(&env, "imports/deals/acceptance/stepdown.csv", &account, &user,
               &pipeline, it_gen_mappings(), &qid);
    for (int i = 0; i < 6000 && lines < 1000; i++) {
        usleep(10000);
        lines = it_queue_int(&env, &qid, "progress.lines");
    }
    if (lines < 1000 || (uint64_t)lines >= rows)
        fail_msg("the import was not under way (%lld lines); log in %s",
                 (long long)lines, logpath);
    assert_int_equal(it_rs_step_down(&env, 10, "writeConcernError"), 0);
    fprintf(stderr, "stepped the primary down at line %lld for 10 s\n",
            (long long)lines);

    assert_int_equal(it_wait_final(&env, &qid, 300000, &q), 0);
    if (strcmp(it_str(&q, "status"), "completed") != 0)
        fail_msg("import %s: '%s'; log in %s", it_str(&q, "status"),
                 it_str(&q, "error"), logpath);
    assert_int_equal(dip_bson_get_int(&q, "progress.added", -1),
                     (int64_t)it_gen_count(gen, IT_ROW_GOOD));
    assert_int_equal(dip_bson_get_int(&q, "progress.errors", -1),
                     (int64_t)it_gen_count(gen, IT_ROW_KINDS));
    bson_destroy(&q);
    assert_int_equal(it_check_import(&env, &qid, &pipeline, gen, &t), 0);
    if (t.first[0])
        fprintf(stderr, "first problem: %s\n", t.first);
    assert_int_equal(t.deals, it_gen_count(gen, IT_ROW_GOOD));
    assert_int_equal(t.deal_twice + t.deal_wrong + t.deal_missing, 0);
    assert_int_equal(t.errors, it_gen_count(gen, IT_ROW_KINDS));
    assert_int_equal(t.error_twice + t.error_wrong + t.error_missing, 0);
    if (it_check_stages(&env, &pipeline, gen, why, sizeof(why)) < 0)
        fail_msg("%s", why);
    fprintf(stderr, "%d retries through the step-down in the log\n",
            stepdown_retries() - before);
    if (stepdown_retries() <= before)
        fail_msg("the worker's log shows no retry through the step-down; "
                 "log in %s",
                 logpath);
    it_gen_destroy(&gen);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stepped_down_ten_seconds),
    };
    int rc = it_env_init(&env, "wstepdown");
    if (rc)
        return rc;
    if (!it_rs_can_step_down(&env)) {
        printf("skipped: the server is not the development MongoDB in "
               "replica-set mode (no devStepDown)\n");
        it_env_release(&env);
        return 77;
    }
    rc = cmocka_run_group_tests(tests, setup, teardown);
    it_env_release(&env);
    return rc;
}
