/*
 * sup_slot: the slot table's lookups and counts across the slot states,
 * what a slot's line errors count in the loop's shared buffer, and losing
 * a claim. Which state a lookup may find is the point: a pid or a ZeroMQ
 * identity must not lead to a slot whose worker is gone for good (waiting
 * or ending), or a stranger could speak for a new spawn.
 *
 * Failure classes: a worker reaped before its last messages arrive is the
 * EXITED rows (still found by identity, no longer by pid); an import whose
 * end is retried while the database is away is the ENDING rows (busy,
 * found by id, deaf to frames); a lost claim (another supervisor took the
 * import) is test_lose: its worker is marked killed for it; a worker that
 * hangs or runs for ever is the timers' kill rows, and a shutdown leaves
 * those kills to its own deadline.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sup_loop_priv.h"
#include "sup_slot.h"

#define N 5

/* One slot per state: FREE, RUNNING (pid 101), WAITING, EXITED (pid 103),
 * ENDING; import ids ...01 to ...05, all of account A but the last. */
static sup_loop_t *table(sup_slot_t *slots)
{
    sup_loop_t *self = calloc(1, sizeof(*self));
    static const sup_slot_state_t states[N] = {
        SUP_SLOT_FREE, SUP_SLOT_RUNNING, SUP_SLOT_WAITING, SUP_SLOT_EXITED,
        SUP_SLOT_ENDING};
    assert_non_null(self);
    memset(slots, 0, N * sizeof(*slots));
    for (int i = 0; i < N; i++) {
        char hex[25];
        snprintf(hex, sizeof(hex), "5f00000000000000000000%02d", i + 1);
        bson_oid_init_from_string(&slots[i].qid, hex);
        snprintf(slots[i].qid_hex, sizeof(slots[i].qid_hex), "%s", hex);
        snprintf(slots[i].name, sizeof(slots[i].name), "deals_import_queue_%s",
                 hex);
        bson_oid_init_from_string(&slots[i].account,
                                  i == N - 1 ? "5f00000000000000000000bb"
                                             : "5f00000000000000000000aa");
        slots[i].state = states[i];
        slots[i].pid = 100 + i;
    }
    self->workers = slots;
    self->cap = N;
    return self;
}

static void test_lookups(void **state)
{
    sup_slot_t slots[N];
    sup_loop_t *self = table(slots);
    bson_oid_t oid;
    (void)state;
    assert_int_equal(sup_slot_busy(self), 4);
    /* by pid: only a running worker */
    assert_ptr_equal(sup_slot_by_pid(self, 101), &slots[1]);
    assert_null(sup_slot_by_pid(self, 103)); /* reaped already */
    assert_null(sup_slot_by_pid(self, 100)); /* free */
    assert_null(sup_slot_by_pid(self, 102)); /* waiting: no process */
    /* by id: any slot in use */
    for (int i = 0; i < N; i++) {
        sup_slot_t *want = i == 0 ? NULL : &slots[i];
        assert_ptr_equal(sup_slot_by_qid(self, slots[i].qid_hex), want);
        oid = slots[i].qid;
        assert_ptr_equal(sup_slot_by_qid_oid(self, &oid), want);
    }
    assert_null(sup_slot_by_qid(self, "5f0000000000000000000099"));
    /* by identity: a worker that runs or whose messages are in flight */
    for (int i = 0; i < N; i++) {
        sup_slot_t *want = (i == 1 || i == 3) ? &slots[i] : NULL;
        assert_ptr_equal(
            sup_slot_by_identity(self, slots[i].name, strlen(slots[i].name)),
            want);
    }
    /* a prefix or an extension of a name is another identity */
    assert_null(
        sup_slot_by_identity(self, slots[1].name, strlen(slots[1].name) - 1));
    {
        char longer[80];
        snprintf(longer, sizeof(longer), "%sx", slots[1].name);
        assert_null(sup_slot_by_identity(self, longer, strlen(longer)));
    }
    free(self);
}

static void test_pending_and_errors(void **state)
{
    sup_slot_t slots[N];
    sup_loop_t *self = table(slots);
    sup_slot_t *w = &slots[1];
    (void)state;
    assert_int_equal(sup_slot_pending(w), 0);
    w->dirty = 1;
    assert_int_equal(sup_slot_pending(w), 1);
    w->dirty = 0;
    w->header_dirty = 1;
    assert_int_equal(sup_slot_pending(w), 1);
    w->header_dirty = 0;
    w->errs = calloc(4, sizeof(bson_t *));
    assert_non_null(w->errs);
    w->errs_cap = 4;
    for (int i = 0; i < 3; i++) {
        bson_t *d = bson_new();
        BSON_APPEND_INT64(d, "line", i + 1);
        w->errs[w->nerrs++] = d;
        w->err_bytes += d->len;
    }
    self->err_bytes = w->err_bytes + 1000; /* another slot's 1000 too */
    assert_int_equal(sup_slot_pending(w), 1);
    sup_slot_clear_errors(self, w);
    assert_int_equal(w->nerrs, 0);
    assert_int_equal(w->err_bytes, 0);
    assert_int_equal(self->err_bytes, 1000);
    assert_int_equal(sup_slot_pending(w), 0);
    /* a slot cleared gives back all it held (the sanitizer build checks
     * that nothing leaks) */
    w->doc = bson_new();
    w->header = bson_new();
    w->checkpoint = bson_new();
    w->final_error = strdup("x");
    w->error = strdup("y");
    sup_slot_clear(self, w);
    assert_int_equal(w->state, SUP_SLOT_FREE);
    assert_null(w->doc);
    assert_null(w->errs);
    assert_int_equal(sup_slot_busy(self), 3);
    free(self);
}

static void test_reset_run(void **state)
{
    sup_slot_t w;
    (void)state;
    memset(&w, 0, sizeof(w));
    w.done = 1;
    w.error = strdup("boom");
    w.hello_ok = 1;
    w.recv_bytes = 10;
    w.acked_bytes = 5;
    w.lines = 77; /* the import's, not the run's: kept */
    w.killed_for = SUP_METRICS_EXIT_SILENT;
    memset(w.spawn_secret, 'a', DIP_CONFIG_SPAWN_SECRET_LEN);
    sup_slot_reset_run(&w);
    assert_int_equal(w.done, 0);
    assert_null(w.error);
    assert_int_equal(w.hello_ok, 0);
    assert_int_equal(w.recv_bytes, 0);
    assert_int_equal(w.acked_bytes, 0);
    assert_int_equal(w.lines, 77);
    assert_int_equal(w.killed_for, SUP_METRICS_EXIT_COMPLETED);
    assert_string_equal(w.spawn_secret, "");
}

/* The kept errors for csv_imports.logs: in line order whatever order
 * they came in, each line once (a resumed run reports a line again), the
 * first SUP_STORE_LOGS_KEEP lines only; none when the claim's document
 * counted stored errors already (logs_own 0: the end reads them). */
static void test_keep_log(void **state)
{
    sup_slot_t w;
    bson_t *arr;
    bson_iter_t it, d;
    int64_t want = 1;
    (void)state;
    memset(&w, 0, sizeof(w));
    w.logs_own = 1;
    /* 150 lines, from the middle out, the first 50 twice */
    for (int64_t l = 75; l >= 1; l--)
        sup_slot_keep_log(&w, l, "value", "bad");
    for (int64_t l = 150; l > 75; l--)
        sup_slot_keep_log(&w, l, "value", "bad");
    for (int64_t l = 1; l <= 50; l++)
        sup_slot_keep_log(&w, l, "value", "again");
    assert_int_equal(w.nlogs, SUP_STORE_LOGS_KEEP);
    arr = sup_slot_logs(&w);
    assert_non_null(arr);
    assert_true(bson_iter_init(&it, arr));
    while (bson_iter_next(&it)) {
        assert_true(BSON_ITER_HOLDS_DOCUMENT(&it));
        assert_true(bson_iter_recurse(&it, &d));
        assert_true(bson_iter_find(&d, "line"));
        assert_int_equal(bson_iter_int64(&d), want);
        assert_true(bson_iter_find(&d, "field"));
        assert_true(bson_iter_find(&d, "message"));
        /* the first report of a line stays */
        assert_string_equal(bson_iter_utf8(&d, NULL), "bad");
        want++;
    }
    assert_int_equal(want, SUP_STORE_LOGS_KEEP + 1);
    bson_destroy(arr);
    for (size_t i = 0; i < w.nlogs; i++)
        bson_destroy(w.logs[i]);
    free(w.logs);

    memset(&w, 0, sizeof(w));
    sup_slot_keep_log(&w, 3, "value", "bad");
    assert_int_equal(w.nlogs, 0);
    assert_null(sup_slot_logs(&w));
}

static void test_lose(void **state)
{
    sup_slot_t w;
    (void)state;
    memset(&w, 0, sizeof(w));
    w.state = SUP_SLOT_RUNNING;
    w.pid = 0; /* no process group to signal in a test */
    w.lease = SUP_LEASE_HELD;
    sup_slot_lose(&w);
    assert_int_equal(w.lease, SUP_LEASE_LOST);
    assert_int_equal(w.killed_for, SUP_METRICS_EXIT_LEASE_LOST);
    memset(&w, 0, sizeof(w));
    w.state = SUP_SLOT_ENDING;
    w.lease = SUP_LEASE_HELD;
    sup_slot_lose(&w);
    assert_int_equal(w.lease, SUP_LEASE_LOST);
    assert_int_equal(w.killed_for, SUP_METRICS_EXIT_COMPLETED);
}

typedef struct timer_row {
    const char *name;
    sup_slot_timer_facts_t f;
    int flush, ack;
    sup_slot_timer_kind_t kind;
} timer_row_t;

/* now 1,000,000; a 60 s lease (ack every 15 s, silence 120 s); a 1 h time
 * limit; everything last happened just now. */
#define T                                                                      \
    .now_ms = 1000000, .lease_ms = 60000, .timeout_ms = 3600000,               \
    .last_flush_ms = 1000000, .last_ack_ms = 1000000, .exit_ms = 1000000,      \
    .respawn_at_ms = 1000001, .last_heard_ms = 1000000, .started_ms = 1000000

#pragma GCC diagnostic ignored "-Woverride-init"

static const timer_row_t timer_rows[] = {
    {"running, nothing due",
     {T, .running = 1, .hello_ok = 1},
     0,
     0,
     SUP_SLOT_TIMER_NONE},
    {"progress waits a flush interval: written",
     {T, .running = 1, .pending = 1, .last_flush_ms = 1000000 - 1000},
     1,
     0,
     SUP_SLOT_TIMER_NONE},
    {"nothing waits: no write",
     {T, .running = 1, .last_flush_ms = 0},
     0,
     0,
     SUP_SLOT_TIMER_NONE},
    {"a quarter lease since the last ack: acked",
     {T, .running = 1, .hello_ok = 1, .last_ack_ms = 1000000 - 15000},
     0,
     1,
     SUP_SLOT_TIMER_NONE},
    {"no ack before the run proved itself",
     {T, .running = 1, .last_ack_ms = 0},
     0,
     0,
     SUP_SLOT_TIMER_NONE},
    {"silent for two minutes and a ms: killed",
     {T, .running = 1, .last_heard_ms = 1000000 - 120001},
     0,
     0,
     SUP_SLOT_TIMER_KILL_SILENT},
    {"silent for exactly two minutes: not yet",
     {T, .running = 1, .last_heard_ms = 1000000 - 120000},
     0,
     0,
     SUP_SLOT_TIMER_NONE},
    {"a lease longer than two minutes is the silence that counts",
     {T, .running = 1, .lease_ms = 300000, .last_heard_ms = 1000000 - 200000},
     0,
     0,
     SUP_SLOT_TIMER_NONE},
    {"past its time limit: killed",
     {T, .running = 1, .started_ms = 1000000 - 3600001},
     0,
     0,
     SUP_SLOT_TIMER_KILL_TIMEOUT},
    {"silent and past its limit: silence is named",
     {T, .running = 1, .started_ms = 1000000 - 3600001, .last_heard_ms = 0},
     0,
     0,
     SUP_SLOT_TIMER_KILL_SILENT},
    {"in a shutdown neither kill (the shutdown's deadline does it), the "
     "write and the ack go on",
     {T, .running = 1, .stopping = 1, .hello_ok = 1, .pending = 1,
      .started_ms = 1000000 - 3600001, .last_heard_ms = 0, .last_flush_ms = 0,
      .last_ack_ms = 0},
     1,
     1,
     SUP_SLOT_TIMER_NONE},
    {"reaped, its messages may be in flight",
     {T, .exited = 1, .exit_ms = 1000000 - 1999},
     0,
     0,
     SUP_SLOT_TIMER_NONE},
    {"reaped two seconds ago: its end now",
     {T, .exited = 1, .exit_ms = 1000000 - 2000},
     0,
     0,
     SUP_SLOT_TIMER_END},
    {"reaped: no write, no ack from the timers",
     {T, .exited = 1, .pending = 1, .hello_ok = 1, .last_flush_ms = 0,
      .last_ack_ms = 0},
     0,
     0,
     SUP_SLOT_TIMER_NONE},
    {"waiting, its respawn not yet due",
     {T, .waiting = 1},
     0,
     0,
     SUP_SLOT_TIMER_NONE},
    {"waiting, its respawn due: start",
     {T, .waiting = 1, .respawn_at_ms = 1000000},
     0,
     0,
     SUP_SLOT_TIMER_START},
    {"waiting in a shutdown: handed back, not started",
     {T, .waiting = 1, .stopping = 1, .respawn_at_ms = 1000000},
     0,
     0,
     SUP_SLOT_TIMER_RELEASE},
    {"ending (no state of these): nothing",
     {T, .pending = 1},
     0,
     0,
     SUP_SLOT_TIMER_NONE},
};

static void test_timers(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(timer_rows) / sizeof(timer_rows[0]); i++) {
        const timer_row_t *r = &timer_rows[i];
        sup_slot_timer_t v;
        sup_slot_timers(&r->f, &v);
        if (v.flush != r->flush || v.ack != r->ack || v.kind != r->kind)
            fail_msg("%s: got flush %d ack %d kind %d", r->name, v.flush, v.ack,
                     (int)v.kind);
    }
}

/* An operator's cancel or pause the worker does not answer: SIGTERM after
 * SUP_SLOT_CONTROL_TERM_MS, SIGKILL SUP_SLOT_CONTROL_KILL_MS later. */
static void test_control_escalation(void **state)
{
    static const struct {
        int64_t now, sent, term;
        sup_slot_timer_kind_t want;
    } cases[] = {
        {10000, 0, 0, SUP_SLOT_TIMER_NONE},            /* no request */
        {10000, 6000, 0, SUP_SLOT_TIMER_NONE},         /* 4 s: still waiting */
        {11000, 6000, 0, SUP_SLOT_TIMER_TERM_CONTROL}, /* 5 s */
        {13000, 6000, 11000, SUP_SLOT_TIMER_NONE},     /* 2 s after TERM */
        {14000, 6000, 11000, SUP_SLOT_TIMER_KILL_CONTROL}, /* 3 s */
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sup_slot_timer_facts_t f = {
            .now_ms = cases[i].now,
            .lease_ms = 60000,
            .timeout_ms = 3600000,
            .running = 1,
            .hello_ok = 1,
            .last_flush_ms = cases[i].now,
            .last_ack_ms = cases[i].now,
            .last_heard_ms = cases[i].now,
            .started_ms = 1,
            .control_sent_ms = cases[i].sent,
            .control_term_ms = cases[i].term,
        };
        sup_slot_timer_t v;
        sup_slot_timers(&f, &v);
        assert_int_equal(v.kind, cases[i].want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_control_escalation),
        cmocka_unit_test(test_lookups),
        cmocka_unit_test(test_keep_log),
        cmocka_unit_test(test_pending_and_errors),
        cmocka_unit_test(test_reset_run),
        cmocka_unit_test(test_lose),
        cmocka_unit_test(test_timers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
