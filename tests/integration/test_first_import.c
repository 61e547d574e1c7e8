/*
 * End to end on the development stack: the real supervisor claims imports,
 * runs real workers, and the database ends as the CRM expects. Covers the
 * original service's sample file, a queue document without a CSV key, a key
 * whose file does not exist, and that the supervisor goes on after both.
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
#include "it_tmp.h"

static const char sample[] =
    "Deal Name,Value,Stage,Status,Contact Name,Contact Email\n"
    "Acme Corp Deal,5000,qualified,open,John Doe,john@acme.com\n"
    "TechStart Deal,12000,proposal,open,Jane Smith,jane@techstart.com\n"
    "Global Inc Deal,25000,negotiation,open,Bob Johnson,bob@global.com\n";

static const char seed_mappings[] =
    "{\"Deal Name\":\"name\",\"Value\":\"value\",\"Stage\":\"stage_id\","
    "\"Status\":\"status\",\"Contact Name\":\"contact_name\","
    "\"Contact Email\":\"contact_email\"}";

static it_env_t env;
static pid_t sup = -1;
static char logpath[256];

static int setup(void **state)
{
    (void)state;
    snprintf(logpath, sizeof(logpath), "%s/it-first-import-%d.log", it_tmpdir(),
             (int)getpid());
    sup = it_supervisor_start(&env, NULL, logpath);
    return sup > 0 ? 0 : -1;
}

static int teardown(void **state)
{
    int st;
    (void)state;
    st = it_process_stop(sup, SIGTERM, 30000);
    /* The supervisor stops cleanly on SIGTERM. */
    if (!(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
        fprintf(stderr,
                "supervisor did not exit 0 on SIGTERM (status %d); "
                "log in %s\n",
                st, logpath);
        return -1;
    }
    return 0;
}

static void test_seed_sample(void **state)
{
    bson_oid_t account, user, pipeline, qid;
    bson_t q;
    char filter[256], hex[25];
    (void)state;
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &account, &pipeline);
    it_put(&env, "imports/deals/it/sample.csv", sample, sizeof(sample) - 1);
    it_enqueue(&env, "imports/deals/it/sample.csv", &account, &user, &pipeline,
               seed_mappings, &qid);
    assert_int_equal(it_wait_final(&env, &qid, 60000, &q), 0);
    assert_string_equal(it_str(&q, "status"), "completed");
    assert_false(dip_bson_get_int(&q, "in_progress", 1) != 0 &&
                 strcmp(it_str(&q, "status"), "completed") != 0);
    bson_oid_to_string(&qid, hex);

    assert_int_equal(it_count_import_deals(&env, &qid, "{}"), 3);
    assert_int_equal(
        it_count_import_deals(
            &env, &qid,
            "{\"name\":\"Acme Corp Deal\",\"value\":5000,"
            "\"status\":\"open\",\"contact_email\":\"john@acme.com\","
            "\"source\":\"csv\",\"tags\":\"imported\","
            "\"import.line\":1}"),
        1);
    assert_int_equal(
        it_count_import_deals(&env, &qid,
                              "{\"name\":\"Global Inc Deal\","
                              "\"value\":25000,\"import.line\":3}"),
        1);
    assert_int_equal(it_count(&env, "pipeline_stages", "{}"), 3);
    {
        /* by account and pipeline, account_pipeline_name's prefix */
        char acc[25], pip[25], stages[256];
        bson_oid_to_string(&account, acc);
        bson_oid_to_string(&pipeline, pip);
        snprintf(stages, sizeof(stages),
                 "{\"account_id\":{\"$oid\":\"%s\"},\"pipeline_id\":"
                 "{\"$oid\":\"%s\"},\"name\":{\"$in\":[\"qualified\","
                 "\"proposal\",\"negotiation\"]}}",
                 acc, pip);
        assert_int_equal(it_count(&env, "pipeline_stages", stages), 3);
    }
    snprintf(filter, sizeof(filter),
             "{\"queue_id\":{\"$oid\":\"%s\"},\"total_records\":3,"
             "\"total_records_added\":3,\"total_errors\":0,"
             "\"status\":\"completed\"}",
             hex);
    assert_int_equal(it_count(&env, "csv_imports", filter), 1);
    bson_destroy(&q);
}

static void test_bad_documents_then_next(void **state)
{
    bson_oid_t account, user, pipeline, nokey, missing, good;
    bson_t q;
    (void)state;
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &account, &pipeline);

    it_enqueue(&env, NULL, &account, &user, &pipeline, seed_mappings, &nokey);
    it_enqueue(&env, "imports/deals/it/not-there.csv", &account, &user,
               &pipeline, seed_mappings, &missing);
    it_put(&env, "imports/deals/it/next.csv", sample, sizeof(sample) - 1);
    it_enqueue(&env, "imports/deals/it/next.csv", &account, &user, &pipeline,
               seed_mappings, &good);

    assert_int_equal(it_wait_final(&env, &nokey, 60000, &q), 0);
    assert_string_equal(it_str(&q, "status"), "failed");
    assert_non_null(strstr(it_str(&q, "error"), "csv[0].key"));
    bson_destroy(&q);

    assert_int_equal(it_wait_final(&env, &missing, 60000, &q), 0);
    assert_string_equal(it_str(&q, "status"), "failed");
    assert_non_null(strstr(it_str(&q, "error"), "not-there.csv"));
    assert_non_null(strstr(it_str(&q, "error"), "not found"));
    bson_destroy(&q);

    /* The supervisor is still there and runs the next import. */
    assert_int_equal(kill(sup, 0), 0);
    assert_int_equal(it_wait_final(&env, &good, 60000, &q), 0);
    assert_string_equal(it_str(&q, "status"), "completed");
    bson_destroy(&q);
    /* No deal was written for the failed ones. */
    assert_int_equal(it_count_import_deals(&env, &missing, "{}"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seed_sample),
        cmocka_unit_test(test_bad_documents_then_next),
    };
    int rc = it_env_init(&env, "first");
    if (rc)
        return rc;
    rc = cmocka_run_group_tests(tests, setup, teardown);
    it_env_release(&env);
    return rc;
}
