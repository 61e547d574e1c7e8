/*
 * sup_life: one table row per rule of a worker's end: the facts, the
 * counters before, and the action and counters expected after. The lease
 * rows are the ones that keep a supervisor that lost its claim from
 * respawning the import or writing its final status.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "dip_exit.h"
#include "sup_life.h"

/* The rows override BASE's defaults field by field. */
#pragma GCC diagnostic ignored "-Woverride-init"

#define EXITED(code) (((code)&0xff) << 8)
#define KILLED(sig) (sig)

typedef struct row {
    const char *name;
    sup_life_facts_t f;
    sup_life_counters_t before;
    sup_life_kind_t kind;
    const char *status;   /* NULL: any */
    const char *sentence; /* a part of it, NULL: not checked */
    int64_t delay_ms;     /* -1: not checked */
    sup_life_counters_t after;
} row_t;

/* Defaults every row starts from: 10 lines in, 5 of them in this run. */
#define BASE                                                                   \
    .lines = 10, .run_start_lines = 5, .how = "killed by signal 9 (SIGKILL)",  \
    .memory_mb = 512, .restarts_allowed = 3, .backoff_ms = 4000,               \
    .now_ms = 1000000

static const row_t rows[] = {
    {"completed",
     {BASE, .done = 1, .status = DIP_DONE_COMPLETED},
     {0},
     SUP_LIFE_FINISH,
     "completed",
     "",
     -1,
     {0}},
    {"failed keeps the worker's sentence",
     {BASE, .done = 1, .status = DIP_DONE_FAILED, .error = "no such file"},
     {0},
     SUP_LIFE_FINISH,
     "failed",
     "no such file",
     -1,
     {0}},
    {"cancelled",
     {BASE, .done = 1, .status = DIP_DONE_CANCELLED},
     {0},
     SUP_LIFE_FINISH,
     "cancelled",
     NULL,
     -1,
     {0}},
    {"paused",
     {BASE, .done = 1, .status = DIP_DONE_PAUSED},
     {0},
     SUP_LIFE_RELEASE,
     "paused",
     NULL,
     -1,
     {0}},
    {"paused, then cancelled",
     {BASE, .done = 1, .status = DIP_DONE_PAUSED,
      .requested = DIP_CONTROL_CANCEL},
     {0},
     SUP_LIFE_FINISH,
     "cancelled",
     NULL,
     -1,
     {0}},
    {"stopped for a shutdown",
     {BASE, .done = 1, .status = DIP_DONE_STOPPED, .stopping = 1},
     {0},
     SUP_LIFE_RELEASE,
     "pending",
     NULL,
     -1,
     {0}},
    {"stopped by SIGTERM after an unanswered cancel",
     {BASE, .done = 1, .status = DIP_DONE_STOPPED,
      .requested = DIP_CONTROL_CANCEL},
     {0},
     SUP_LIFE_FINISH,
     "cancelled",
     NULL,
     -1,
     {0}},
    {"stopped, pause requested",
     {BASE, .done = 1, .status = DIP_DONE_STOPPED,
      .requested = DIP_CONTROL_PAUSE},
     {0},
     SUP_LIFE_RELEASE,
     "paused",
     NULL,
     -1,
     {0}},
    {"crash with cancel requested",
     {BASE, .wait_status = KILLED(SIGSEGV), .requested = DIP_CONTROL_CANCEL},
     {0},
     SUP_LIFE_FINISH,
     "cancelled",
     NULL,
     -1,
     {0}},
    {"crash with pause requested",
     {BASE, .wait_status = KILLED(SIGSEGV), .requested = DIP_CONTROL_PAUSE},
     {0},
     SUP_LIFE_RELEASE,
     "paused",
     NULL,
     -1,
     {0}},
    {"crash during shutdown",
     {BASE, .wait_status = KILLED(SIGKILL), .stopping = 1},
     {0},
     SUP_LIFE_RELEASE,
     "pending",
     NULL,
     -1,
     {0}},
    {"out of memory by exit status",
     {BASE, .wait_status = EXITED(DIP_EXIT_NOMEM)},
     {0},
     SUP_LIFE_FINISH,
     "failed",
     "512 MB memory limit at line 10",
     -1,
     {0}},
    {"out of memory beats a done message",
     {BASE, .oom = 1, .done = 1, .status = DIP_DONE_COMPLETED, .lines = 48210},
     {0},
     SUP_LIFE_FINISH,
     "failed",
     "at line 48,210",
     -1,
     {0}},
    {"first temporary failure",
     {BASE, .done = 1, .status = DIP_DONE_RETRY, .error = "db away",
      .lines = 5},
     {0},
     SUP_LIFE_RESPAWN,
     NULL,
     "db away",
     4000,
     {.tempfails = 1}},
    {"third temporary failure without headway doubles twice",
     {BASE, .done = 1, .status = DIP_DONE_RETRY, .lines = 5},
     {.tempfails = 2},
     SUP_LIFE_RESPAWN,
     NULL,
     NULL,
     16000,
     {.tempfails = 3}},
    {"a temporary failure after headway starts the count again",
     {BASE, .done = 1, .status = DIP_DONE_RETRY},
     {.tempfails = 9},
     SUP_LIFE_RESPAWN,
     NULL,
     NULL,
     4000,
     {.tempfails = 1}},
    {"the delay is capped",
     {BASE, .done = 1, .status = DIP_DONE_RETRY, .lines = 5},
     {.tempfails = 9},
     SUP_LIFE_RESPAWN,
     NULL,
     NULL,
     SUP_LIFE_MAX_DELAY_MS,
     {.tempfails = 10}},
    {"too many temporary failures",
     {BASE, .done = 1, .status = DIP_DONE_RETRY, .error = "db away",
      .lines = 5},
     {.tempfails = SUP_LIFE_TEMPFAIL_LIMIT},
     SUP_LIFE_FINISH,
     "failed",
     "gave up after 10 temporary failures in a row, last at line 5: db away",
     -1,
     {.tempfails = SUP_LIFE_TEMPFAIL_LIMIT + 1}},
    {"first crash opens the window",
     {BASE, .wait_status = KILLED(SIGKILL)},
     {0},
     SUP_LIFE_RESPAWN,
     NULL,
     "crash 1 of 2 allowed",
     1000,
     {.restarts = 1, .restart_window_ms = 1000000}},
    {"a crash without headway backs off",
     {BASE, .wait_status = KILLED(SIGKILL), .lines = 5},
     {.restarts = 1, .restart_window_ms = 999000, .stalls = 2},
     SUP_LIFE_RESPAWN,
     NULL,
     NULL,
     8000,
     {.restarts = 2, .restart_window_ms = 999000, .stalls = 3}},
    {"the last crash allowed fails the import",
     {BASE, .wait_status = KILLED(SIGSEGV), .how = "killed by signal 11"},
     {.restarts = 2, .restart_window_ms = 999000},
     SUP_LIFE_FINISH,
     "failed",
     "failed 3 times, last at line 10: killed by signal 11",
     -1,
     {.restarts = 3, .restart_window_ms = 999000}},
    {"crashes long ago do not count",
     {BASE, .wait_status = KILLED(SIGSEGV)},
     {.restarts = 2, .restart_window_ms = 1},
     SUP_LIFE_RESPAWN,
     NULL,
     NULL,
     1000,
     {.restarts = 1, .restart_window_ms = 1000000}},
    {"an exit without a done message is a crash",
     {BASE, .wait_status = EXITED(DIP_EXIT_TEMPFAIL)},
     {0},
     SUP_LIFE_RESPAWN,
     NULL,
     NULL,
     1000,
     {.restarts = 1, .restart_window_ms = 1000000}},
    /* The lease rows: nothing written, nothing respawned. */
    {"lost claim: a crash is not respawned",
     {BASE, .wait_status = KILLED(SIGKILL), .lease = SUP_LEASE_LOST},
     {.restarts = 2, .restart_window_ms = 999000},
     SUP_LIFE_DROP,
     NULL,
     "claim on the import is gone",
     -1,
     {.restarts = 2, .restart_window_ms = 999000}},
    {"lost claim: completed writes nothing",
     {BASE, .done = 1, .status = DIP_DONE_COMPLETED, .lease = SUP_LEASE_LOST},
     {0},
     SUP_LIFE_DROP,
     NULL,
     NULL,
     -1,
     {0}},
    {"lost claim beats an operator's cancel",
     {BASE, .wait_status = KILLED(SIGKILL), .requested = DIP_CONTROL_CANCEL,
      .lease = SUP_LEASE_LOST},
     {0},
     SUP_LIFE_DROP,
     NULL,
     NULL,
     -1,
     {0}},
    {"lapsing lease: stopped worker is dropped",
     {BASE, .done = 1, .status = DIP_DONE_STOPPED, .lease = SUP_LEASE_LAPSING},
     {0},
     SUP_LIFE_DROP,
     NULL,
     "only by a new claim",
     -1,
     {0}},
    {"lapsing lease during shutdown: no hand-back",
     {BASE, .wait_status = KILLED(SIGKILL), .stopping = 1,
      .lease = SUP_LEASE_LAPSING},
     {0},
     SUP_LIFE_DROP,
     NULL,
     NULL,
     -1,
     {0}},
    {"the worker fenced itself",
     {BASE, .wait_status = EXITED(DIP_EXIT_FENCED)},
     {.restarts = 2},
     SUP_LIFE_DROP,
     NULL,
     "claim on the import is gone",
     -1,
     {.restarts = 2}},
};

static void test_table(void **state)
{
    int bad = 0;
    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const row_t *r = &rows[i];
        sup_life_counters_t c = r->before;
        sup_life_action_t a;
        sup_life_decide(&r->f, &c, &a);
        if (a.kind != r->kind ||
            (r->status && (a.status == NULL || strcmp(a.status, r->status))) ||
            (r->sentence &&
             (r->sentence[0] ? strstr(a.sentence, r->sentence) == NULL
                             : a.sentence[0] != '\0')) ||
            (r->delay_ms >= 0 && a.delay_ms != r->delay_ms) ||
            memcmp(&c, &r->after, sizeof(c)) != 0) {
            fprintf(stderr,
                    "row '%s': kind %d status '%s' delay %lld sentence '%s'; "
                    "counters restarts=%d window=%lld tempfails=%d "
                    "stalls=%d\n",
                    r->name, (int)a.kind, a.status ? a.status : "",
                    (long long)a.delay_ms, a.sentence, c.restarts,
                    (long long)c.restart_window_ms, c.tempfails, c.stalls);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

/* Repeated crashes of one import, fed back through the counters: the
 * third one fails it, never a fourth start. */
static void test_crash_loop(void **state)
{
    sup_life_facts_t f = {BASE, .wait_status = KILLED(SIGSEGV), .lines = 5};
    sup_life_counters_t c = {0};
    sup_life_action_t a;
    (void)state;
    sup_life_decide(&f, &c, &a);
    assert_int_equal(a.kind, SUP_LIFE_RESPAWN);
    assert_int_equal(a.delay_ms, 2000);
    f.now_ms += 2000;
    sup_life_decide(&f, &c, &a);
    assert_int_equal(a.kind, SUP_LIFE_RESPAWN);
    assert_int_equal(a.delay_ms, 4000);
    f.now_ms += 4000;
    sup_life_decide(&f, &c, &a);
    assert_int_equal(a.kind, SUP_LIFE_FINISH);
    assert_string_equal(a.status, "failed");
}

static void test_grouped(void **state)
{
    char buf[32];
    (void)state;
    assert_string_equal(sup_life_grouped(0, buf, sizeof(buf)), "0");
    assert_string_equal(sup_life_grouped(999, buf, sizeof(buf)), "999");
    assert_string_equal(sup_life_grouped(48210, buf, sizeof(buf)), "48,210");
    assert_string_equal(sup_life_grouped(-1234567, buf, sizeof(buf)),
                        "-1,234,567");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_crash_loop),
        cmocka_unit_test(test_grouped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
