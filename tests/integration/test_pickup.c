/*
 * Pickup on change: with a poll of an hour, imports queued while the
 * supervisor serves are claimed through its change stream alone, also
 * after the stream's connections were dropped (resumed from the token),
 * and one queued while the stream was cut and the server's change history
 * wiped is claimed (by the stream, or by the sweep its restart makes);
 * each import runs once (`claims` 1, one
 * csv_imports). Against a standalone server (no change streams) the
 * supervisor says so once and picks up by polling, as before.
 *
 * Failure classes walked: 5 (a dropped stream connection, and a history
 * that no longer holds the token: the import queued meanwhile is still
 * claimed, once); 14 (the poll is an hour, so only the stream can claim
 * the later imports: a stream that did not wake would leave them pending
 * and the wait fails; the standalone's sentence is counted, so a message
 * repeated per retry fails too); 9 (several supervisors all wake for one
 * change, the claim stays one findAndModify: `claims` is 1). Skipped
 * (exit 77, a failure where CI=true) without the development stack; the
 * stream cases need the development server in replica-set mode.
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
#include "it_rs.h"
#include "it_skip.h"
#include "it_tmp.h"

static const char rows[] = "Deal Name,Value,Stage\n"
                           "One,1,new\n"
                           "Two,2,new\n";
static const char mappings[] =
    "{\"Deal Name\":\"name\",\"Value\":\"value\",\"Stage\":\"stage_id\"}";

static it_env_t env;
static char logpath[256];

/* Waits until the log holds needle (up to 30 s); 1 when it does. */
static int wait_log(const char *path, const char *needle)
{
    for (int i = 0; i < 300; i++) {
        if (it_log_count(path, needle) > 0)
            return 1;
        usleep(100000);
    }
    return 0;
}

/* Queues one import and waits for its end: completed, claimed once. */
static void one_import(it_env_t *e, const char *what)
{
    bson_oid_t account, user, pipeline, qid;
    bson_t q;
    char filter[128], hex[25];
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(e, &account, &pipeline);
    it_enqueue(e, "imports/deals/it/pickup.csv", &account, &user, &pipeline,
               mappings, &qid);
    if (it_wait_final(e, &qid, 60000, &q) != 0)
        fail_msg("%s: the import was not picked up (log in %s)", what, logpath);
    assert_string_equal(it_str(&q, "status"), "completed");
    assert_int_equal(dip_bson_get_int(&q, "claims", 0), 1);
    bson_destroy(&q);
    bson_oid_to_string(&qid, hex);
    snprintf(filter, sizeof(filter), "{\"queue_id\":{\"$oid\":\"%s\"}}", hex);
    assert_int_equal(it_count(e, "csv_imports", filter), 1);
}

static void test_stream_picks_up(void **state)
{
    static const char *const extra[] = {"DEALIMPORT_POLL_MS=3600000", NULL};
    pid_t sup;
    int st;
    (void)state;
    if (!it_rs_can_step_down(&env))
        IT_SKIP_MACHINE("skipped: not the development server in replica-set "
                        "mode\n");
    it_put(&env, "imports/deals/it/pickup.csv", rows, sizeof(rows) - 1);
    sup = it_supervisor_start(&env, extra, logpath);
    assert_true(sup > 0);
    assert_true(wait_log(logpath, "picking up on change"));
    one_import(&env, "on change");
    one_import(&env, "on change, again");

    /* The stream's connection dropped: resumed from its token. */
    assert_int_equal(it_rs_stream_fault(&env, 0), 0);
    one_import(&env, "after the stream's connection dropped");

    /* Dropped again, an import queued, and the history wiped while the
     * stream resumes (its token lost, 286): started afresh, and the wake
     * that follows is the sweep that claims what went by unseen. */
    {
        bson_oid_t account, user, pipeline, qid;
        bson_t q;
        bson_oid_init(&account, NULL);
        bson_oid_init(&user, NULL);
        it_pipeline(&env, &account, &pipeline);
        assert_int_equal(it_rs_stream_fault(&env, 0), 0);
        it_enqueue(&env, "imports/deals/it/pickup.csv", &account, &user,
                   &pipeline, mappings, &qid);
        assert_int_equal(it_rs_stream_fault(&env, 1), 0);
        if (it_wait_final(&env, &qid, 60000, &q) != 0)
            fail_msg("queued while the history was lost: not picked up (log "
                     "in %s)",
                     logpath);
        assert_string_equal(it_str(&q, "status"), "completed");
        assert_int_equal(dip_bson_get_int(&q, "claims", 0), 1);
        bson_destroy(&q);
    }

    st = it_process_stop(sup, SIGTERM, 30000);
    assert_true(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_int_equal(it_log_count(logpath, "no change streams"), 0);
}

/* Starts a standalone development server; its port, or 0. */
static int start_standalone(pid_t *pid)
{
    int fds[2];
    char line[64] = "";
    FILE *out;
    int port = 0;
    if (access("/usr/bin/python3", X_OK) != 0 || pipe(fds) != 0)
        return 0;
    *pid = fork();
    if (*pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        /* strict as the suite's own server (scripts/test) */
        const char *strict = getenv("DEALIMPORT_DEVMONGO_NOTABLESCAN");
        execl("/usr/bin/python3", "python3",
              DEALIMPORT_SOURCE_DIR "/scripts/devmongo/devmongo.py", "--host",
              "127.0.0.1", "--port", "0",
              strict && strcmp(strict, "1") == 0 ? "--notablescan"
                                                 : (char *)NULL,
              (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    out = fdopen(fds[0], "r");
    if (out != NULL && fgets(line, sizeof(line), out) != NULL)
        (void)sscanf(line, "ready %d", &port);
    if (out != NULL)
        fclose(out);
    return port;
}

static void test_standalone_polls(void **state)
{
    it_env_t sa;
    pid_t mongo = -1, sup;
    char uri[128];
    int port = start_standalone(&mongo), st;
    (void)state;
    if (port == 0) {
        if (mongo > 0) {
            kill(mongo, SIGTERM);
            waitpid(mongo, &st, 0);
        }
        IT_SKIP_MISSING("the development server did not start standalone\n");
    }
    snprintf(uri, sizeof(uri), "mongodb://127.0.0.1:%d/x", port);
    setenv("DEALIMPORT_MONGODB_URI", uri, 1);
    assert_int_equal(it_env_init(&sa, "pickup_sa"), 0);
    it_put(&sa, "imports/deals/it/pickup.csv", rows, sizeof(rows) - 1);
    /* a log of its own: the stream case's stays for reading */
    strcat(logpath, ".standalone");
    sup = it_supervisor_start(&sa, NULL, logpath);
    assert_true(sup > 0);
    one_import(&sa, "standalone, by polling");
    one_import(&sa, "standalone, by polling, again");
    st = it_process_stop(sup, SIGTERM, 30000);
    assert_true(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    /* Said once, not per poll; and no stream ever claimed to be open. */
    assert_int_equal(it_log_count(logpath, "no change streams"), 1);
    assert_int_equal(it_log_count(logpath, "picking up by polling alone"), 1);
    assert_int_equal(it_log_count(logpath, "picking up on change"), 0);
    it_env_release(&sa);
    kill(mongo, SIGTERM);
    waitpid(mongo, &st, 0);
    setenv("DEALIMPORT_MONGODB_URI", env.uri, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream_picks_up),
        cmocka_unit_test(test_standalone_polls),
    };
    int rc = it_env_init(&env, "pickup");
    if (rc)
        return rc;
    snprintf(logpath, sizeof(logpath), "%s/it-pickup-%d.log", it_tmpdir(),
             (int)getpid());
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    it_env_release(&env);
    return rc;
}
