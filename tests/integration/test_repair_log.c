/*
 * An import whose final status reached its queue document but whose import
 * log (csv_imports) never did, because its supervisor died between the two
 * writes (the chaos test found such an end): another supervisor writes the
 * log once the end is two leases old, and its
 * follow-ups run as for any end. An end still fresh is left to its owner.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "dip_bson.h"
#include "it_check.h"
#include "it_env.h"

static it_env_t env;

static void test_unrecorded_end_is_repaired(void **state)
{
    static const char *const extra[] = {"DEALIMPORT_LEASE_S=2",
                                        "DEALIMPORT_POLL_MS=100", NULL};
    const char *data = "Deal Name,Value,Stage\nA,1,new\n";
    bson_oid_t account, user, pipeline, old_end, fresh_end;
    bson_t set = BSON_INITIALIZER;
    char hex[25], filter[160];
    int64_t now = dip_bson_now_ms();
    pid_t sup;
    (void)state;
    it_put(&env, "imports/deals/repair/a.csv", data, strlen(data));
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &account, &pipeline);
    it_enqueue(&env, "imports/deals/repair/a.csv", &account, &user, &pipeline,
               "{\"Deal Name\":\"name\",\"Stage\":\"stage_id\"}", &old_end);
    it_enqueue(&env, "imports/deals/repair/a.csv", &account, &user, &pipeline,
               "{\"Deal Name\":\"name\",\"Stage\":\"stage_id\"}", &fresh_end);
    /* As a fenced final status leaves them when no log follows. */
    BSON_APPEND_UTF8(&set, "status", "completed");
    BSON_APPEND_BOOL(&set, "in_progress", false);
    BSON_APPEND_BOOL(&set, "log_pending", true);
    BSON_APPEND_INT64(&set, "progress.lines", 1);
    BSON_APPEND_DATE_TIME(&set, "finished_at", now - 60000);
    it_queue_set(&env, &old_end, &set);
    bson_reinit(&set);
    BSON_APPEND_UTF8(&set, "status", "completed");
    BSON_APPEND_BOOL(&set, "in_progress", false);
    BSON_APPEND_BOOL(&set, "log_pending", true);
    BSON_APPEND_DATE_TIME(&set, "finished_at", now + 3600000);
    it_queue_set(&env, &fresh_end, &set);

    sup = it_supervisor_start(&env, extra, NULL);
    assert_true(sup > 0);
    bson_oid_to_string(&old_end, hex);
    snprintf(filter, sizeof(filter),
             "{\"queue_id\":{\"$oid\":\"%s\"},\"status\":\"completed\","
             "\"total_records\":1,\"followups_done_at\":{\"$exists\":true}}",
             hex);
    for (int i = 0; i < 200 && it_count(&env, "csv_imports", filter) == 0; i++)
        usleep(50000);
    assert_int_equal(it_count(&env, "csv_imports", filter), 1);
    snprintf(filter, sizeof(filter),
             "{\"_id\":{\"$oid\":\"%s\"},\"log_pending\":{\"$exists\":true}}",
             hex);
    assert_int_equal(it_count(&env, "queues", filter), 0);
    /* The fresh end is its owner's to record: left alone. */
    bson_oid_to_string(&fresh_end, hex);
    snprintf(filter, sizeof(filter), "{\"queue_id\":{\"$oid\":\"%s\"}}", hex);
    assert_int_equal(it_count(&env, "csv_imports", filter), 0);
    assert_int_equal(it_process_stop(sup, SIGTERM, 30000), 0);
    bson_destroy(&set);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unrecorded_end_is_repaired),
    };
    int rc = it_env_init(&env, "repair");
    if (rc)
        return rc;
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    it_env_release(&env);
    return rc;
}
