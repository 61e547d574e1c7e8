/*
 * sup_lease: one table row per rule of the leases and of the database
 * gate. The lease is 60 s throughout: stop at 20 s before its end, kill at
 * 5 s before, renewals and the pause after a failed call 10 s.
 *
 * Failure classes: a database that is away or slow shows here as a lease
 * not renewed (the lapsing rows) and as the pause after a failed call (the
 * gate's PAUSED row); a supervisor that lost its claim to another (a
 * partition, a frozen process) as the `lost` rows, which must kill at once
 * and free only a slot with no process; a shutdown as the gate's SHUTDOWN
 * rows; a clock step cannot move anything, the facts are monotonic.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>

#include "sup_lease.h"

#define LEASE 60000
#define NONE INT64_MAX

typedef struct gate_row {
    const char *name;
    sup_lease_gate_facts_t f;
    sup_lease_gate_t want;
} gate_row_t;

/* now 100000, calls of up to 20000. */
#define G .now_ms = 100000, .call_ms = 20000, .lease_ms = LEASE

static const gate_row_t gate_rows[] = {
    {"idle", {G, .earliest_end_ms = NONE}, SUP_LEASE_GATE_OPEN},
    {"pause after a failed call",
     {G, .pause_until_ms = 100001, .earliest_end_ms = NONE},
     SUP_LEASE_GATE_PAUSED},
    {"pause over",
     {G, .pause_until_ms = 100000, .earliest_end_ms = NONE},
     SUP_LEASE_GATE_OPEN},
    {"shutdown: the call could outlast the stop timeout",
     {G, .stopping = 1, .give_up_ms = 119999, .earliest_end_ms = NONE},
     SUP_LEASE_GATE_SHUTDOWN},
    {"shutdown: the call fits",
     {G, .stopping = 1, .give_up_ms = 120000, .earliest_end_ms = NONE},
     SUP_LEASE_GATE_OPEN},
    {"not stopping: give_up is not read",
     {G, .give_up_ms = 0, .earliest_end_ms = NONE},
     SUP_LEASE_GATE_OPEN},
    {"a worker told to stop for its lease still runs",
     {G, .any_unheld = 1, .earliest_end_ms = NONE},
     SUP_LEASE_GATE_UNHELD},
    /* by = 120000 must not pass end - 20000 */
    {"a lease fresh enough",
     {G, .earliest_end_ms = 140000},
     SUP_LEASE_GATE_OPEN},
    {"a lease one ms too close",
     {G, .earliest_end_ms = 139999},
     SUP_LEASE_GATE_TOO_CLOSE},
    {"the pause wins over the rest",
     {G, .pause_until_ms = 200000, .any_unheld = 1, .earliest_end_ms = 1},
     SUP_LEASE_GATE_PAUSED},
};

static void test_gate(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(gate_rows) / sizeof(gate_rows[0]); i++) {
        sup_lease_gate_t got = sup_lease_gate(&gate_rows[i].f);
        if (got != gate_rows[i].want)
            fail_msg("%s: got %d, want %d", gate_rows[i].name, (int)got,
                     (int)gate_rows[i].want);
    }
}

static void test_margins(void **state)
{
    sup_lease_margins_t m;
    (void)state;
    sup_lease_margins(LEASE, &m);
    assert_int_equal(m.stop_ms, 20000);
    assert_int_equal(m.kill_ms, 5000);
    assert_int_equal(m.renew_every_ms, 10000);
    assert_int_equal(m.db_pause_ms, 10000);
    /* one renewal always fits between a lease write and the stop margin */
    assert_true(m.renew_every_ms + LEASE / 3 <= LEASE - m.stop_ms);
}

typedef struct slot_row {
    const char *name;
    sup_lease_slot_facts_t f;
    sup_lease_kind_t kind;
    int64_t lease_end_ms, kill_at_ms; /* after */
    sup_lease_t lease;
    int free_slot;
} slot_row_t;

/* A running worker whose lease ends at 200000; stop at 180000, kill at
 * 195000. */
#define S                                                                      \
    .lease_ms = LEASE, .running = 1, .lease = SUP_LEASE_HELD,                  \
    .lease_end_ms = 200000, .kill_at_ms = NONE

#pragma GCC diagnostic ignored "-Woverride-init"

static const slot_row_t slot_rows[] = {
    {"held, far from its end",
     {S, .now_ms = 179999},
     SUP_LEASE_KEEP,
     200000,
     NONE,
     SUP_LEASE_HELD,
     0},
    {"a renewal extends the end",
     {S, .now_ms = 179999, .renewed_until_ms = 230000},
     SUP_LEASE_KEEP,
     230000,
     NONE,
     SUP_LEASE_HELD,
     0},
    {"a renewal older than a progress write does not shorten it",
     {S, .now_ms = 100000, .renewed_until_ms = 150000},
     SUP_LEASE_KEEP,
     200000,
     NONE,
     SUP_LEASE_HELD,
     0},
    {"a renewal in time saves a lease at its stop margin",
     {S, .now_ms = 180000, .renewed_until_ms = 240000},
     SUP_LEASE_KEEP,
     240000,
     NONE,
     SUP_LEASE_HELD,
     0},
    {"not renewed: stop the worker at the stop margin",
     {S, .now_ms = 180000},
     SUP_LEASE_STOP,
     200000,
     195000,
     SUP_LEASE_LAPSING,
     0},
    {"not renewed and already past the kill margin: killed at once",
     {S, .now_ms = 196000},
     SUP_LEASE_KILL,
     200000,
     NONE,
     SUP_LEASE_LAPSING,
     0},
    {"lapsing, told to stop, not yet at kill_at",
     {S, .now_ms = 190000, .lease = SUP_LEASE_LAPSING, .kill_at_ms = 195000},
     SUP_LEASE_KEEP,
     200000,
     195000,
     SUP_LEASE_LAPSING,
     0},
    {"lapsing and at kill_at: killed, once",
     {S, .now_ms = 195000, .lease = SUP_LEASE_LAPSING, .kill_at_ms = 195000},
     SUP_LEASE_KILL,
     200000,
     NONE,
     SUP_LEASE_LAPSING,
     0},
    {"lapsing: the keeper's news is not read (no LOSE, no extension)",
     {S, .now_ms = 190000, .lease = SUP_LEASE_LAPSING, .kill_at_ms = 195000,
      .renewed_until_ms = 260000, .lost = 1},
     SUP_LEASE_KEEP,
     200000,
     195000,
     SUP_LEASE_LAPSING,
     0},
    {"lost with a worker: kill, keep the slot until its exit",
     {S, .now_ms = 100000, .lost = 1},
     SUP_LEASE_LOSE,
     200000,
     NONE,
     SUP_LEASE_LOST,
     0},
    {"lost with the worker reaped: keep the slot for its last messages",
     {S, .running = 0, .exited = 1, .now_ms = 100000, .lost = 1},
     SUP_LEASE_LOSE,
     200000,
     NONE,
     SUP_LEASE_LOST,
     0},
    {"lost while waiting to respawn: free the slot",
     {S, .running = 0, .now_ms = 100000, .lost = 1},
     SUP_LEASE_LOSE,
     200000,
     NONE,
     SUP_LEASE_LOST,
     1},
    {"lost while an end is retried: free the slot",
     {S, .running = 0, .ending = 1, .now_ms = 100000, .lost = 1},
     SUP_LEASE_LOSE,
     200000,
     NONE,
     SUP_LEASE_LOST,
     1},
    {"an end being written needs no lease",
     {S, .running = 0, .ending = 1, .now_ms = 250000},
     SUP_LEASE_KEEP,
     200000,
     NONE,
     SUP_LEASE_HELD,
     0},
    {"not renewed, the worker reaped: its end now",
     {S, .running = 0, .exited = 1, .now_ms = 180000},
     SUP_LEASE_END_EXITED,
     200000,
     195000,
     SUP_LEASE_LAPSING,
     0},
    {"not renewed, waiting to respawn: dropped",
     {S, .running = 0, .now_ms = 180000},
     SUP_LEASE_DROP,
     200000,
     195000,
     SUP_LEASE_LAPSING,
     0},
    {"lost already (a fenced write found another claim): only the kill "
     "rule applies",
     {S, .now_ms = 100000, .lease = SUP_LEASE_LOST},
     SUP_LEASE_KEEP,
     200000,
     NONE,
     SUP_LEASE_LOST,
     0},
};

static void test_slot(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(slot_rows) / sizeof(slot_rows[0]); i++) {
        const slot_row_t *r = &slot_rows[i];
        sup_lease_verdict_t v;
        sup_lease_decide(&r->f, &v);
        if (v.kind != r->kind || v.lease_end_ms != r->lease_end_ms ||
            v.kill_at_ms != r->kill_at_ms || v.lease != r->lease ||
            v.free_slot != r->free_slot)
            fail_msg("%s: got kind %d end %lld kill_at %lld lease %d free %d",
                     r->name, (int)v.kind, (long long)v.lease_end_ms,
                     (long long)v.kill_at_ms, (int)v.lease, v.free_slot);
    }
}

/* The sentence says "ends in" only before the end: a loop that was
 * frozen (SIGSTOP) past it reads "ended ... ago", not "ends in -3400 ms". */
static void test_lapse_sentence(void **state)
{
    static const struct {
        int64_t left_ms;
        const char *want;
    } rows[] = {
        {1200, "the lease could not be renewed and ends in 1200 ms"},
        {0, "the lease could not be renewed and ends in 0 ms"},
        {-3400, "the lease could not be renewed and ended 3400 ms ago"},
        {-1, "the lease could not be renewed and ended 1 ms ago"},
    };
    char out[96];
    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        sup_lease_lapse_sentence(rows[i].left_ms, out, sizeof(out));
        assert_string_equal(out, rows[i].want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_margins),
        cmocka_unit_test(test_gate),
        cmocka_unit_test(test_slot),
        cmocka_unit_test(test_lapse_sentence),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
