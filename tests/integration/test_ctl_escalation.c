/*
 * A worker that does not answer a cancel or a pause (stopped here with
 * SIGSTOP, as a worker stuck in a call it cannot leave would be) is sent
 * SIGTERM after 5 s and SIGKILL 3 s later; the import ends cancelled, or
 * paused and then completes on resume exactly once, from its last
 * checkpoint.
 *
 * Failure classes walked for the escalation (../shared/FAILURE-CLASSES.md):
 * - 7 (storage that stalls): the worker answers within about a second
 *   while it waits on storage (tested in test_worker_storage_faults); one
 *   that does not (frozen, as here, or stuck in a call) gets SIGTERM after
 *   5 s and SIGKILL 3 s later, each once; the end is decided by the
 *   operator's request (sup_life), not by the signal.
 * - 5 (frozen: SIGSTOP): SIGKILL ends a stopped process; a resumed import
 *   starts at its last checkpoint and adds no deal twice (the count below
 *   is exact).
 * - 9 (the worker ends by itself just as the signal goes): the exit is
 *   reaped once and the same request decides; signals go to the slot's
 *   own process group, never pid 0.
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
#include "it_ctl.h"
#include "it_env.h"
#include "it_tmp.h"

#define ROWS 200000

static it_env_t env;
static pid_t sup = -1;
static char logpath[256], runtime[256];
static const char *sup_env[] = {"DEALIMPORT_MAX_WORKERS=2",
                                "DEALIMPORT_BATCH_ROWS=500", NULL};

static int ctl(const char *verb, const char *id, char *out)
{
    const char *args[] = {verb, id, NULL};
    char err[4096];
    return it_ctl_run(runtime, args, out, 4096, err, sizeof(err), 30000);
}

/* Starts a long import, waits until it runs, stops its worker with
 * SIGSTOP and sends verb; returns the import id. */
static void stuck(const char *verb, bson_oid_t *qid, char id[25])
{
    size_t len;
    char *csv = it_ctl_csv(ROWS, 0, &len), out[4096];
    pid_t w;
    it_ctl_enqueue_csv(&env, csv, len, NULL, qid);
    free(csv);
    bson_oid_to_string(qid, id);
    assert_true(it_ctl_wait_lines(runtime, id, 1, 120000) >= 1);
    w = it_wait_worker(qid, 10000);
    assert_true(w > 0);
    assert_int_equal(kill(w, SIGSTOP), 0);
    assert_int_equal(ctl(verb, id, out), 0);
    printf("%s: %s", verb, out);
    assert_non_null(strstr(out, "within seconds"));
}

static void test_cancel_unanswered(void **state)
{
    bson_oid_t qid;
    char id[25];
    bson_t q;
    (void)state;
    stuck("cancel", &qid, id);
    assert_int_equal(it_ctl_wait_status(&env, &qid, "cancelled", 60000), 0);
    assert_int_equal(it_ctl_queue_doc(&env, &qid, &q), 0);
    assert_string_equal(it_str(&q, "status"), "cancelled");
    bson_destroy(&q);
    assert_true(it_file_contains(logpath, "sending it SIGTERM"));
    assert_true(it_file_contains(logpath, "within 3 s of SIGTERM: killing"));
}

static void test_pause_unanswered_then_resume(void **state)
{
    bson_oid_t qid;
    char id[25], out[4096];
    bson_t q;
    (void)state;
    stuck("pause", &qid, id);
    assert_int_equal(it_ctl_wait_status(&env, &qid, "paused", 60000), 0);
    assert_int_equal(ctl("resume", id, out), 0);
    assert_int_equal(it_ctl_wait_status(&env, &qid, "completed", 240000), 0);
    assert_int_equal(it_ctl_queue_doc(&env, &qid, &q), 0);
    assert_string_equal(it_str(&q, "status"), "completed");
    bson_destroy(&q);
    /* every row once */
    assert_int_equal(it_ctl_deals(&env, &qid), ROWS);
}

static int setup(void **state)
{
    (void)state;
    snprintf(logpath, sizeof(logpath), "%s/it-ctl-escalation-%d.log",
             it_tmpdir(), (int)getpid());
    sup = it_supervisor_start(&env, sup_env, logpath);
    snprintf(runtime, sizeof(runtime), "%s", env.runtime);
    return sup > 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    it_process_stop(sup, SIGTERM, 30000);
    it_stop_all(&env);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cancel_unanswered, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pause_unanswered_then_resume,
                                        setup, teardown),
    };
    int rc = it_env_init(&env, "escalation");
    if (rc)
        return rc;
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    it_env_release(&env);
    return rc;
}
