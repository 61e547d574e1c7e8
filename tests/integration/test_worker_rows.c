/*
 * Acceptance, rows: a 100,000-row file (generated from a fixed seed) with
 * about 1% bad rows of every kind at known lines goes through the real
 * supervisor and worker. Every good line has exactly one deal holding what
 * the line says, every bad line exactly one csv_import_errors document with
 * the right field and reason, csv_imports and the queue document agree, and
 * each stage exists once, also when two imports into one pipeline race to
 * create the same new stages.
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
#include "it_tmp.h"

static it_env_t env;
static pid_t sup = -1;
static char logpath[256];

static int setup(void **state)
{
    static const char *const extra[] = {"DEALIMPORT_MAX_WORKERS=4",
                                        "DEALIMPORT_MAX_WORKERS_PER_ACCOUNT=2",
                                        NULL};
    (void)state;
    snprintf(logpath, sizeof(logpath), "%s/it-worker-rows-%d.log", it_tmpdir(),
             (int)getpid());
    sup = it_supervisor_start(&env, extra, logpath);
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
    return it_log_trouble(logpath) == 0 ? 0 : -1;
}

static void assert_tally_exact(const it_tally_t *t, const it_gen_t *gen)
{
    if (t->first[0])
        fprintf(stderr, "first problem: %s\n", t->first);
    assert_int_equal(t->deals, it_gen_count(gen, IT_ROW_GOOD));
    assert_int_equal(t->deal_twice, 0);
    assert_int_equal(t->deal_wrong, 0);
    assert_int_equal(t->deal_missing, 0);
    assert_int_equal(t->errors, it_gen_count(gen, IT_ROW_KINDS));
    assert_int_equal(t->error_twice, 0);
    assert_int_equal(t->error_wrong, 0);
    assert_int_equal(t->error_missing, 0);
}

static void assert_totals(const bson_oid_t *qid, const it_gen_t *gen,
                          const bson_t *q)
{
    char filter[512], hex[25];
    bson_oid_to_string(qid, hex);
    snprintf(filter, sizeof(filter),
             "{\"queue_id\":{\"$oid\":\"%s\"},\"status\":\"completed\","
             "\"total_records\":%llu,\"total_records_added\":%llu,"
             "\"total_errors\":%llu}",
             hex, (unsigned long long)it_gen_rows(gen),
             (unsigned long long)it_gen_count(gen, IT_ROW_GOOD),
             (unsigned long long)it_gen_count(gen, IT_ROW_KINDS));
    assert_int_equal(it_count(&env, "csv_imports", filter), 1);
    assert_int_equal(dip_bson_get_int(q, "progress.lines", -1),
                     (int64_t)it_gen_rows(gen));
    assert_int_equal(dip_bson_get_int(q, "progress.added", -1),
                     (int64_t)it_gen_count(gen, IT_ROW_GOOD));
    assert_int_equal(dip_bson_get_int(q, "progress.errors", -1),
                     (int64_t)it_gen_count(gen, IT_ROW_KINDS));
    assert_string_equal(it_str(q, "status"), "completed");
    assert_string_equal(it_str(q, "error"), "");
}

static void test_hundred_thousand_rows(void **state)
{
    uint64_t rows = (uint64_t)(100000 * it_scale());
    it_gen_t *gen = it_gen_new(rows, 20240601u, 10, 2);
    bson_oid_t account, user, pipeline, qid;
    it_tally_t t;
    char path[256], why[512];
    bson_t q;
    (void)state;
    assert_non_null(gen);
    /* Every kind of bad row is in the file. */
    for (int k = IT_ROW_BAD_VALUE; k < IT_ROW_KINDS; k++)
        assert_true(it_gen_count(gen, (it_row_t)k) >= 2);
    snprintf(path, sizeof(path), "%s/it-worker-rows-%d.csv", it_tmpdir(),
             (int)getpid());
    assert_int_equal(it_gen_write(gen, path), 0);
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &account, &pipeline);
    it_put_file(&env, "imports/deals/acceptance/100k.csv", path);
    unlink(path);
    it_enqueue(&env, "imports/deals/acceptance/100k.csv", &account, &user,
               &pipeline, it_gen_mappings(), &qid);

    assert_int_equal(it_wait_final(&env, &qid, 600000, &q), 0);
    assert_totals(&qid, gen, &q);
    assert_int_equal(it_check_import(&env, &qid, &pipeline, gen, &t), 0);
    assert_tally_exact(&t, gen);
    if (it_check_stages(&env, &pipeline, gen, why, sizeof(why)) < 0)
        fail_msg("%s", why);
    /* Deals went to this account and pipeline only. */
    assert_int_equal(it_count_id(&env, "deals", "account_id", &account),
                     (int64_t)it_gen_count(gen, IT_ROW_GOOD));
    assert_int_equal(it_count_id(&env, "deals", "pipeline_id", &pipeline),
                     (int64_t)it_gen_count(gen, IT_ROW_GOOD));
    bson_destroy(&q);
    it_gen_destroy(&gen);
}

/* Two imports of one file into one new pipeline at the same time: each
 * creates every stage it meets, under the unique index only one of each
 * exists, and both imports are exact. */
static void test_racing_imports_share_stages(void **state)
{
    uint64_t rows = (uint64_t)(4000 * it_scale());
    it_gen_t *gen = it_gen_new(rows, 7u, 10, 0);
    bson_oid_t account, user, pipeline, a, b;
    it_tally_t t;
    char path[256], why[512];
    bson_t q;
    (void)state;
    assert_non_null(gen);
    snprintf(path, sizeof(path), "%s/it-worker-race-%d.csv", it_tmpdir(),
             (int)getpid());
    assert_int_equal(it_gen_write(gen, path), 0);
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &account, &pipeline);
    it_put_file(&env, "imports/deals/acceptance/race.csv", path);
    unlink(path);
    it_enqueue(&env, "imports/deals/acceptance/race.csv", &account, &user,
               &pipeline, it_gen_mappings(), &a);
    it_enqueue(&env, "imports/deals/acceptance/race.csv", &account, &user,
               &pipeline, it_gen_mappings(), &b);

    assert_int_equal(it_wait_final(&env, &a, 300000, &q), 0);
    assert_totals(&a, gen, &q);
    bson_destroy(&q);
    assert_int_equal(it_wait_final(&env, &b, 300000, &q), 0);
    assert_totals(&b, gen, &q);
    bson_destroy(&q);
    assert_int_equal(it_check_import(&env, &a, &pipeline, gen, &t), 0);
    assert_tally_exact(&t, gen);
    assert_int_equal(it_check_import(&env, &b, &pipeline, gen, &t), 0);
    assert_tally_exact(&t, gen);
    if (it_check_stages(&env, &pipeline, gen, why, sizeof(why)) < 0)
        fail_msg("%s", why);
    it_gen_destroy(&gen);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hundred_thousand_rows),
        cmocka_unit_test(test_racing_imports_share_stages),
    };
    int rc = it_env_init(&env, "wrows");
    if (rc)
        return rc;
    rc = cmocka_run_group_tests(tests, setup, teardown);
    it_env_release(&env);
    return rc;
}
