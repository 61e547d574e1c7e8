/*
 * End to end on the development stack: `dealimportctl watch` under a
 * pseudo-terminal (script -q -c) redraws a progress bar in place; with its
 * output going to a file it prints plain lines; --json prints JSON lines;
 * all end with the summary. Exit 0 for a completed import, 2 for a failed
 * one, 1 for an unknown id, 69 with no supervisor.
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

#define ROWS 100000
#define BAD_EVERY 1000

static it_env_t env;
static pid_t sup = -1;
static char logpath[256], runtime[256];

static int setup(void **state)
{
    (void)state;
    snprintf(logpath, sizeof(logpath), "%s/it-ctl-watch-%d.log", it_tmpdir(),
             (int)getpid());
    sup = it_supervisor_start(&env, NULL, logpath);
    snprintf(runtime, sizeof(runtime), "%s", env.runtime);
    return sup > 0 ? 0 : -1;
}

static int teardown(void **state)
{
    int st;
    (void)state;
    st = it_process_stop(sup, SIGTERM, 30000);
    return st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static void enqueue_big(bson_oid_t *qid, char *id)
{
    size_t len;
    char *csv = it_ctl_csv(ROWS, BAD_EVERY, &len);
    it_ctl_enqueue_csv(&env, csv, len, NULL, qid);
    free(csv);
    bson_oid_to_string(qid, id);
}

static void test_terminal_bar(void **state)
{
    bson_oid_t qid;
    char id[25], cmd[256], summary[200];
    char *out = malloc(1 << 20), *last;
    int rc;
    (void)state;
    enqueue_big(&qid, id);
    snprintf(cmd, sizeof(cmd),
             "script -q -e -c \"$DEALIMPORT_CTL watch %s --interval 0.1\" "
             "/dev/null",
             id);
    rc = it_ctl_shell(runtime, cmd, out, 1 << 20, 300000);
    if (rc != 0) {
        size_t n = strlen(out);
        fail_msg("watch exited %d; its last words: %s", rc,
                 n > 2000 ? out + n - 2000 : out);
    }
    /* Redrawn in place: carriage return and erase-line, a bar with
     * progress in it. */
    assert_non_null(strstr(out, "\r\033[K"));
    assert_non_null(strstr(out, "processing ["));
    assert_non_null(strstr(out, "#-"));
    assert_non_null(strstr(out, " lines  "));
    assert_non_null(strstr(out, " errors"));
    snprintf(summary, sizeof(summary),
             "\r\033[Kimport %s completed: %d lines, %d added, %d errors in ",
             id, ROWS, ROWS - ROWS / BAD_EVERY, ROWS / BAD_EVERY);
    last = strstr(out, summary);
    if (last == NULL)
        fail_msg("no summary '%s' in:\n%s", summary + 4, out);
    /* The summary is the last thing, on a line of its own. */
    assert_non_null(strstr(last, "lines/s)\r\n"));
    assert_null(strstr(last + 4, "\033[K"));
    free(out);
}

static void test_plain_lines_and_json(void **state)
{
    bson_oid_t qid;
    char id[25], head[64], summary[200], err[1024];
    char *out = malloc(1 << 20), *last;
    const char *args[] = {"watch", id, "--interval", "0.1", NULL};
    const char *json_args[] = {"watch", id, "--json", NULL};
    (void)state;
    enqueue_big(&qid, id);
    assert_int_equal(
        it_ctl_run(runtime, args, out, 1 << 20, err, sizeof(err), 300000), 0);
    assert_null(strchr(out, '\r'));
    assert_null(strchr(out, '\033'));
    snprintf(head, sizeof(head), "import %s: ", id);
    assert_true(strncmp(out, head, strlen(head)) == 0);
    assert_non_null(strstr(out, "% of bytes, "));
    snprintf(summary, sizeof(summary),
             "import %s completed: %d lines, %d added, %d errors in ", id, ROWS,
             ROWS - ROWS / BAD_EVERY, ROWS / BAD_EVERY);
    last = strstr(out, summary);
    assert_non_null(last);
    assert_int_equal(strchr(last, '\n')[1], '\0');

    /* Once it is over, --json prints the final state as one JSON line. */
    assert_int_equal(
        it_ctl_run(runtime, json_args, out, 1 << 20, err, sizeof(err), 30000),
        0);
    assert_non_null(strstr(out, "\"status\":\"completed\""));
    assert_non_null(strstr(out, "\"final\":true"));
    assert_non_null(strstr(out, summary));
    free(out);
}

static void test_failed_unknown_and_absent(void **state)
{
    bson_oid_t acc, user, pipeline, qid;
    char id[25], out[4096], err[4096], nobody[512];
    const char *args[] = {"watch", id, NULL};
    const char *absent[] = {"--connect", nobody, "watch", id, NULL};
    (void)state;
    snprintf(nobody, sizeof(nobody), "ipc://%s/no-such-supervisor.ipc",
             it_tmpdir());
    bson_oid_init(&acc, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &acc, &pipeline);
    it_enqueue(&env, "imports/deals/it-watch/missing.csv", &acc, &user,
               &pipeline, it_ctl_mappings, &qid);
    bson_oid_to_string(&qid, id);
    assert_int_equal(
        it_ctl_run(runtime, args, out, sizeof(out), err, sizeof(err), 120000),
        2);
    assert_non_null(strstr(out, "failed: 0 lines"));
    assert_non_null(strstr(out, "missing.csv"));

    snprintf(id, sizeof(id), "64b000000000000000000000");
    assert_int_equal(
        it_ctl_run(runtime, args, out, sizeof(out), err, sizeof(err), 30000),
        1);
    assert_non_null(strstr(err, "no import with id"));
    assert_int_equal(
        it_ctl_run(runtime, absent, out, sizeof(out), err, sizeof(err), 30000),
        69);
    assert_non_null(strstr(err, "no supervisor is listening"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_terminal_bar),
        cmocka_unit_test(test_plain_lines_and_json),
        cmocka_unit_test(test_failed_unknown_and_absent),
    };
    int rc = it_env_init(&env, "ctlwatch");
    if (rc)
        return rc;
    rc = cmocka_run_group_tests(tests, setup, teardown);
    it_env_release(&env);
    return rc;
}
