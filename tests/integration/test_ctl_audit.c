/*
 * End to end on the development stack, with DEALIMPORT_LOG_FORMAT=json for
 * the supervisor, its workers and dealimportctl: an import is paused
 * mid-way, resumed, cancelled mid-way and reverted. Every line the
 * supervisor, the workers and the ctl wrote parses as one JSON object with
 * a time, a level and a program; each control request (pause, resume,
 * cancel, a refused pause, the revert) is one line with its cmd, the
 * requesting uid (ours: peer_uid) and its result.
 *
 * Failure classes: a request refused (the pause of a cancelled import) is
 * logged as refused with the same uid; a client whose credentials libzmq
 * could not read would be logged as "an unknown client" without peer_uid,
 * which this test would catch, since every control line must carry ours; a
 * revert runs in the ctl with no supervisor involved, so its line is the
 * ctl's own (stderr, or the journal under journald).
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

#include "it_ctl.h"
#include "it_env.h"
#include "it_tmp.h"

#define ROWS 200000

static it_env_t env;
static pid_t sup = -1;
static char logpath[256], ctlpath[256], runtime[256];
static const char *const sup_env[] = {"DEALIMPORT_MAX_WORKERS=1",
                                      "DEALIMPORT_LOG_FORMAT=json", NULL};

static int setup(void **state)
{
    (void)state;
    snprintf(logpath, sizeof(logpath), "%s/it-ctl-audit-%d.log", it_tmpdir(),
             (int)getpid());
    snprintf(ctlpath, sizeof(ctlpath), "%s/it-ctl-audit-%d.ctl.log",
             it_tmpdir(), (int)getpid());
    unlink(ctlpath);
    /* The ctl reads its settings from the environment, as installed. */
    setenv("DEALIMPORT_LOG_FORMAT", "json", 1);
    sup = it_supervisor_start(&env, sup_env, logpath);
    snprintf(runtime, sizeof(runtime), "%s", env.runtime);
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
    return 0;
}

/* Runs dealimportctl cmd id; the stderr of a command that succeeded (its
 * log lines: a refusal's stderr is the sentence for the operator instead)
 * is kept in ctlpath. */
static int ctl(const char *cmd, const char *id, char *out)
{
    const char *args[] = {cmd, id, NULL};
    static char err[1 << 14];
    int rc = it_ctl_run(runtime, args, out, 4096, err, sizeof(err), 60000);
    FILE *f;
    if (rc != 0)
        return rc;
    f = fopen(ctlpath, "a");
    assert_non_null(f);
    fputs(err, f);
    fclose(f);
    return rc;
}

/* Both logs, line by line: JSON objects; the control lines as expected. */
static void check_logs(const char *id)
{
    char cmd[2048];
    static char out[1 << 14];
    int rc;
    snprintf(
        cmd, sizeof(cmd),
        "/usr/bin/python3 -c 'import json, sys\n"
        "uid, qid = int(sys.argv[1]), sys.argv[2]\n"
        "seen = []\n"
        "for path in sys.argv[3:]:\n"
        "    for line in open(path):\n"
        "        o = json.loads(line)\n"
        "        assert o[\"time\"] and o[\"level\"] and o[\"program\"], line\n"
        "        if \"cmd\" in o:\n"
        "            assert o[\"peer_uid\"] == uid, line\n"
        "            assert o[\"import\"] == qid, line\n"
        "            assert \"uid %%d\" %% uid in o[\"msg\"], line\n"
        "            seen.append((o[\"program\"], o[\"cmd\"], o[\"result\"]))\n"
        "print(seen)\n"
        "want = [(\"dealimport-supervisor\", \"pause\", \"signalled\"),\n"
        "        (\"dealimport-supervisor\", \"resume\", \"applied\"),\n"
        "        (\"dealimport-supervisor\", \"cancel\", \"signalled\"),\n"
        "        (\"dealimport-supervisor\", \"pause\", \"refused\"),\n"
        "        (\"dealimportctl\", \"revert\", \"applied\")]\n"
        "assert sorted(seen) == sorted(want), seen' %ld %s '%s' '%s'",
        (long)getuid(), id, logpath, ctlpath);
    rc = it_ctl_shell(runtime, cmd, out, sizeof(out), 20000);
    fprintf(stderr, "control lines: %s", out);
    if (rc != 0)
        fail_msg("the JSON logs do not hold the control lines: %s", out);
}

static void test_pause_cancel_revert(void **state)
{
    bson_oid_t a;
    char id[25], out[4096];
    size_t len;
    char *csv = it_ctl_csv(ROWS, 0, &len);
    (void)state;

    it_ctl_enqueue_csv(&env, csv, len, NULL, &a);
    free(csv);
    bson_oid_to_string(&a, id);
    assert_true(it_ctl_wait_lines(runtime, id, 1, 120000) >= 1);
    assert_int_equal(ctl("pause", id, out), 0);
    assert_int_equal(it_ctl_wait_status(&env, &a, "paused", 60000), 0);
    assert_int_equal(ctl("resume", id, out), 0);
    assert_int_equal(it_ctl_wait_status(&env, &a, "processing", 60000), 0);
    assert_true(it_ctl_wait_lines(runtime, id, ROWS / 10, 180000) >= ROWS / 10);
    assert_int_equal(ctl("cancel", id, out), 0);
    assert_int_equal(it_ctl_wait_status(&env, &a, "cancelled", 60000), 0);
    assert_int_equal(ctl("pause", id, out), 1);
    {
        /* revert's counts of what it leaves (deals and stages naming the
         * import in another account, deals using a stage) have no index:
         * known scans of an operator's command (docs/scaling.md), allowed
         * here alone */
        int was = it_notablescan(&env, 0);
        int rc = ctl("revert", id, out);
        if (was > 0)
            it_notablescan(&env, 1);
        assert_int_equal(rc, 0);
    }
    assert_non_null(strstr(out, "reverted"));
    assert_int_equal(it_ctl_deals(&env, &a), 0);
    check_logs(id);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pause_cancel_revert),
    };
    int rc = it_env_init(&env, "ctlaudit");
    if (rc)
        return rc;
    rc = cmocka_run_group_tests(tests, setup, teardown);
    it_env_release(&env);
    return rc;
}
