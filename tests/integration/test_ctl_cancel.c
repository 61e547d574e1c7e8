/*
 * End to end on the development stack: cancel and pause through
 * dealimportctl. A running import cancelled mid-way ends `cancelled`, its
 * deals stop growing and csv_imports counts exactly the deals present; a
 * pending import (waiting behind a one-worker supervisor) is paused,
 * resumed and cancelled at once; refusals exit 1 with the reason; and a
 * cancel sent to a supervisor that does not run the import is recorded on it
 * and carried out by the supervisor that does.
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
#define GOOD ROWS /* no bad rows here */

static it_env_t env;
static pid_t sup = -1, other = -1;
static char logpath[256], runtime[256];
static const char *const sup_env[] = {"DEALIMPORT_MAX_WORKERS=1",
                                      "DEALIMPORT_LEASE_S=3", NULL};

static int setup(void **state)
{
    (void)state;
    snprintf(logpath, sizeof(logpath), "%s/it-ctl-cancel-%d.log", it_tmpdir(),
             (int)getpid());
    sup = it_supervisor_start(&env, sup_env, logpath);
    snprintf(runtime, sizeof(runtime), "%s", env.runtime);
    return sup > 0 ? 0 : -1;
}

static int teardown(void **state)
{
    int st;
    (void)state;
    if (other > 0)
        it_process_stop(other, SIGTERM, 30000);
    st = it_process_stop(sup, SIGTERM, 30000);
    if (!(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
        fprintf(stderr, "supervisor did not exit 0 (status %d); log in %s\n",
                st, logpath);
        return -1;
    }
    return 0;
}

static int ctl(const char *rt, const char *cmd, const char *id, char *out,
               char *err)
{
    const char *args[] = {cmd, id, NULL};
    return it_ctl_run(rt, args, out, 4096, err, 4096, 30000);
}

static void check_csv_import(const char *id, const char *status, int64_t lines,
                             int64_t added)
{
    char filter[300];
    snprintf(filter, sizeof(filter),
             "{\"queue_id\":{\"$oid\":\"%s\"},\"status\":\"%s\","
             "\"total_records\":%lld,\"total_records_added\":%lld}",
             id, status, (long long)lines, (long long)added);
    if (it_count(&env, "csv_imports", filter) != 1)
        fail_msg("no csv_imports document %s", filter);
}

/* After a cancel: the import is cancelled, its deals no longer grow and
 * csv_imports counts them. Returns the deals. */
static int64_t check_cancelled(const bson_oid_t *qid, const char *id)
{
    bson_t q;
    int64_t n1, n2, line;
    assert_int_equal(it_ctl_wait_status(&env, qid, "cancelled", 60000), 0);
    n1 = it_ctl_deals(&env, qid);
    sleep(2);
    n2 = it_ctl_deals(&env, qid);
    assert_int_equal(n1, n2);
    assert_true(n1 > 0 && n1 < GOOD);
    assert_int_equal(it_ctl_queue_doc(&env, qid, &q), 0);
    line = dip_bson_get_int(&q, "checkpoint.line", -1);
    {
        bson_iter_t it;
        assert_true(bson_iter_init_find(&it, &q, "in_progress") &&
                    BSON_ITER_HOLDS_BOOL(&it) && !bson_iter_bool(&it));
    }
    bson_destroy(&q);
    /* No bad rows: every line up to the checkpoint is a deal. */
    assert_int_equal(line, n1);
    check_csv_import(id, "cancelled", line, n1);
    return n1;
}

static void test_pending_paused_and_running(void **state)
{
    bson_oid_t a, b;
    char ida[25], idb[25], out[4096], err[4096];
    size_t len;
    char *csv = it_ctl_csv(ROWS, 0, &len), *small;
    bson_t q;
    (void)state;

    it_ctl_enqueue_csv(&env, csv, len, NULL, &a);
    free(csv);
    bson_oid_to_string(&a, ida);
    assert_true(it_ctl_wait_lines(runtime, ida, 1, 120000) >= 1);

    /* The only worker is busy: b waits as pending. */
    small = it_ctl_csv(10, 0, &len);
    it_ctl_enqueue_csv(&env, small, len, NULL, &b);
    free(small);
    bson_oid_to_string(&b, idb);
    assert_int_equal(it_ctl_queue_doc(&env, &b, &q), 0);
    assert_string_equal(it_str(&q, "status"), "pending");
    bson_destroy(&q);

    assert_int_equal(ctl(runtime, "pause", idb, out, err), 0);
    assert_non_null(strstr(out, "is paused"));
    assert_int_equal(it_ctl_wait_status(&env, &b, "paused", 1000), 0);
    assert_int_equal(ctl(runtime, "pause", idb, out, err), 1);
    assert_non_null(strstr(err, "is already paused"));
    assert_int_equal(ctl(runtime, "resume", idb, out, err), 0);
    assert_non_null(strstr(out, "pending again and resumes at line 1"));
    assert_int_equal(it_ctl_wait_status(&env, &b, "pending", 1000), 0);
    assert_int_equal(ctl(runtime, "pause", idb, out, err), 0);
    assert_int_equal(ctl(runtime, "cancel", idb, out, err), 0);
    assert_non_null(strstr(out, "is cancelled after line 0"));
    assert_int_equal(it_ctl_wait_status(&env, &b, "cancelled", 1000), 0);
    check_csv_import(idb, "cancelled", 0, 0);
    assert_int_equal(ctl(runtime, "resume", idb, out, err), 1);
    assert_non_null(strstr(err, "is cancelled: only a paused import can be "
                                "resumed"));
    assert_int_equal(ctl(runtime, "cancel", idb, out, err), 1);
    assert_non_null(strstr(err, "is already cancelled"));
    assert_int_equal(
        ctl(runtime, "cancel", "64b000000000000000000000", out, err), 1);
    assert_non_null(
        strstr(err, "no import with id '64b000000000000000000000'"));
    assert_int_equal(ctl(runtime, "cancel", "nope", out, err), 64);

    /* The running one, mid-way. */
    assert_true(it_ctl_wait_lines(runtime, ida, ROWS / 5, 180000) >= ROWS / 5);
    assert_int_equal(ctl(runtime, "cancel", ida, out, err), 0);
    assert_non_null(strstr(out, "cancel requested"));
    check_cancelled(&a, ida);
    assert_int_equal(ctl(runtime, "pause", ida, out, err), 1);
    assert_non_null(strstr(err, "is cancelled: only pending and processing"));

    /* list shows both, as cancelled. */
    {
        const char *args[] = {"list", "--status", "cancelled", "--json", NULL};
        assert_int_equal(it_ctl_run(runtime, args, out, sizeof(out), err,
                                    sizeof(err), 30000),
                         0);
        assert_non_null(strstr(out, ida));
        assert_non_null(strstr(out, idb));
        assert_null(strstr(out, "\"status\":\"completed\""));
    }
}

static void test_recorded_for_the_owner(void **state)
{
    char other_log[300], other_rt[256], id[25], out[4096], err[4096];
    const char *owner, *to;
    bson_oid_t qid;
    size_t len;
    char *csv = it_ctl_csv(ROWS, 0, &len);
    bson_t q;
    int st;
    (void)state;

    snprintf(other_log, sizeof(other_log), "%s.other", logpath);
    other = it_supervisor_start(&env, sup_env, other_log);
    snprintf(other_rt, sizeof(other_rt), "%s", env.runtime);
    assert_true(other > 0);

    it_ctl_enqueue_csv(&env, csv, len, NULL, &qid);
    free(csv);
    bson_oid_to_string(&qid, id);
    assert_int_equal(it_ctl_wait_status(&env, &qid, "processing", 60000), 0);
    assert_int_equal(it_ctl_queue_doc(&env, &qid, &q), 0);
    owner = it_str(&q, "claimed_by");
    {
        char mine[32];
        snprintf(mine, sizeof(mine), ":%d:", (int)sup);
        /* Ask the supervisor that does not run it. */
        to = strstr(owner, mine) ? other_rt : runtime;
        fprintf(stderr, "import run by '%s'; asking the other one\n", owner);
        assert_true(it_ctl_wait_lines(to == runtime ? other_rt : runtime, id,
                                      ROWS / 10, 180000) >= ROWS / 10);
    }
    assert_int_equal(ctl(to, "cancel", id, out, err), 0);
    assert_non_null(strstr(out, "is recorded on the import"));
    assert_non_null(strstr(out, owner));
    bson_destroy(&q);

    check_cancelled(&qid, id);
    /* The owner's log says who asked, and through which supervisor. */
    {
        char want[200],
            *log = it_ctl_slurp(to == runtime ? other_log : logpath);
        assert_non_null(log);
        snprintf(want, sizeof(want),
                 "carrying out the cancel recorded on the import, requested "
                 "by uid %ld via supervisor '",
                 (long)getuid());
        assert_non_null(strstr(log, want));
        free(log);
    }
    st = it_process_stop(other, SIGTERM, 30000);
    other = -1;
    assert_true(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pending_paused_and_running),
        cmocka_unit_test(test_recorded_for_the_owner),
    };
    int rc = it_env_init(&env, "ctlcancel");
    if (rc)
        return rc;
    rc = cmocka_run_group_tests(tests, setup, teardown);
    it_env_release(&env);
    return rc;
}
