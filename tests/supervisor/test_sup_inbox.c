/*
 * sup_inbox: what an inbound frame does to a slot, one table row per rule:
 * who is heard at all (a stranger's identity, a malformed frame, a forged
 * or missing hello), what counts against a worker's window, and what
 * follows a heard frame (kill past the window, write, ack, end). Then the
 * hello's identity checks, one row per way a hello can fail to name the
 * spawn.
 *
 * Failure classes: a hostile or buggy local process (a frame under a
 * worker's identity, garbage, a replayed hello of another spawn or claim)
 * is the DROP rows: never heard, and only a proven worker's bytes count; a
 * worker that floods line errors is the kill row; a database that is away
 * shows as flush_failed (no write per message, the timer's pace); a worker
 * killed before its done arrived is the `end` row.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "sup_inbox.h"

typedef struct frame_row {
    const char *name;
    sup_inbox_frame_facts_t f;
    sup_inbox_kind_t kind;
    int prove, hear, count;
} frame_row_t;

static const frame_row_t frame_rows[] = {
    {"an identity no import of ours runs under",
     {.has_slot = 0, .decoded = 1, .type = DIP_MSG_BATCH, .hello_ok = 1},
     SUP_INBOX_DROP_STRANGER,
     0,
     0,
     0},
    {"garbage before the hello: not counted",
     {.has_slot = 1, .decoded = 0},
     SUP_INBOX_DROP_MALFORMED,
     0,
     0,
     0},
    {"garbage after the hello: its bytes count against the window",
     {.has_slot = 1, .decoded = 0, .hello_ok = 1},
     SUP_INBOX_DROP_MALFORMED,
     0,
     0,
     1},
    {"a hello of another spawn",
     {.has_slot = 1, .decoded = 1, .type = DIP_MSG_HELLO},
     SUP_INBOX_DROP_FORGED,
     0,
     0,
     0},
    {"a forged hello after the real one changes nothing",
     {.has_slot = 1, .decoded = 1, .type = DIP_MSG_HELLO, .hello_ok = 1},
     SUP_INBOX_DROP_FORGED,
     0,
     0,
     0},
    {"this spawn's hello",
     {.has_slot = 1, .decoded = 1, .type = DIP_MSG_HELLO, .hello_matches = 1},
     SUP_INBOX_HEAR,
     1,
     1,
     1},
    {"a batch before any hello",
     {.has_slot = 1, .decoded = 1, .type = DIP_MSG_BATCH},
     SUP_INBOX_DROP_UNPROVEN,
     0,
     0,
     0},
    {"a done before any hello",
     {.has_slot = 1, .decoded = 1, .type = DIP_MSG_DONE},
     SUP_INBOX_DROP_UNPROVEN,
     0,
     0,
     0},
    {"a batch after the hello",
     {.has_slot = 1, .decoded = 1, .type = DIP_MSG_BATCH, .hello_ok = 1},
     SUP_INBOX_HEAR,
     0,
     1,
     1},
    {"a line error after the hello",
     {.has_slot = 1, .decoded = 1, .type = DIP_MSG_LINE_ERROR, .hello_ok = 1},
     SUP_INBOX_HEAR,
     0,
     1,
     1},
    {"a heartbeat is heard but outside the window",
     {.has_slot = 1, .decoded = 1, .type = DIP_MSG_HEARTBEAT, .hello_ok = 1},
     SUP_INBOX_HEAR,
     0,
     1,
     0},
};

static void test_frame(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(frame_rows) / sizeof(frame_rows[0]); i++) {
        const frame_row_t *r = &frame_rows[i];
        sup_inbox_frame_verdict_t v;
        sup_inbox_frame(&r->f, &v);
        if (v.kind != r->kind || v.prove != r->prove || v.hear != r->hear ||
            v.count != r->count)
            fail_msg("%s: got kind %d prove %d hear %d count %d", r->name,
                     (int)v.kind, v.prove, v.hear, v.count);
    }
}

typedef struct flow_row {
    const char *name;
    sup_inbox_flow_facts_t f;
    int kill, flush, ack, end;
} flow_row_t;

#define WIN (1024 * 1024)
#define FLOW                                                                   \
    .running = 1, .window = WIN, .buffer_bytes = 64 * 1024 * 1024,             \
    .since_flush_ms = 10

#pragma GCC diagnostic ignored "-Woverride-init"

static const flow_row_t flow_rows[] = {
    {"nothing waits: ack at once", {FLOW}, 0, 0, 1, 0},
    {"progress waits, below every bound: the timer writes it",
     {FLOW, .pending = 1, .nerrs = 10, .err_bytes = 1000},
     0,
     0,
     0,
     0},
    {"enough line errors: write now",
     {FLOW, .pending = 1, .nerrs = SUP_INBOX_FLUSH_ERRORS, .err_bytes = 1000},
     0,
     1,
     0,
     0},
    {"half a window waits: write now",
     {FLOW, .pending = 1, .nerrs = 3, .err_bytes = WIN / 2},
     0,
     1,
     0,
     0},
    {"the shared buffer is full: write now",
     {FLOW, .pending = 1, .nerrs = 3, .err_bytes = 10,
      .all_err_bytes = 64 * 1024 * 1024},
     0,
     1,
     0,
     0},
    {"after a failed write, not again before the timer's pace",
     {FLOW, .pending = 1, .nerrs = 600, .err_bytes = WIN / 2, .flush_failed = 1,
      .since_flush_ms = SUP_SLOT_FLUSH_MS - 1},
     0,
     0,
     0,
     0},
    {"after a failed write, again at the timer's pace",
     {FLOW, .pending = 1, .nerrs = 600, .err_bytes = WIN / 2, .flush_failed = 1,
      .since_flush_ms = SUP_SLOT_FLUSH_MS},
     0,
     1,
     0,
     0},
    {"a frame past the window: the worker breaks the protocol",
     {FLOW, .pending = 1, .nerrs = 600,
      .err_bytes = (size_t)WIN + DIP_MSG_MAX_FRAME + 1},
     1,
     1,
     0,
     0},
    {"up to a frame past the window is in flight, not a breach",
     {FLOW, .pending = 1, .nerrs = 600,
      .err_bytes = (size_t)WIN + DIP_MSG_MAX_FRAME},
     0,
     1,
     0,
     0},
    {"past the window but reaped already: nothing to kill",
     {FLOW, .running = 0, .pending = 1, .nerrs = 600,
      .err_bytes = (size_t)WIN + DIP_MSG_MAX_FRAME + 1},
     0,
     1,
     0,
     0},
    {"the done of a reaped worker ends its run",
     {FLOW, .running = 0, .exited_done = 1},
     0,
     0,
     1,
     1},
};

static void test_flow(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(flow_rows) / sizeof(flow_rows[0]); i++) {
        const flow_row_t *r = &flow_rows[i];
        sup_inbox_flow_verdict_t v;
        sup_inbox_flow(&r->f, &v);
        if (v.kill != r->kill || v.flush != r->flush || v.ack != r->ack ||
            v.end != r->end)
            fail_msg("%s: got kill %d flush %d ack %d end %d", r->name, v.kill,
                     v.flush, v.ack, v.end);
    }
}

#define SECRET                                                                 \
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define OTHER "f123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* A hello as the spawn's worker sends it, then changed one way per row. */
static void hello(dip_msg_t *m, const bson_oid_t *id)
{
    memset(m, 0, sizeof(*m));
    m->type = DIP_MSG_HELLO;
    m->queue_id.value_type = BSON_TYPE_OID;
    bson_oid_copy(id, &m->queue_id.value.v_oid);
    m->owner = "host:1:2";
    m->epoch = 7;
    m->secret = SECRET;
}

static void test_hello(void **state)
{
    bson_oid_t id, other;
    bson_t doc = BSON_INITIALIZER, sdoc = BSON_INITIALIZER;
    dip_msg_t m;
    const char *why;
    (void)state;
    bson_oid_init_from_string(&id, "5f0000000000000000000001");
    bson_oid_init_from_string(&other, "5f0000000000000000000002");
    BSON_APPEND_OID(&doc, "_id", &id);
    BSON_APPEND_UTF8(&sdoc, "_id", "abc");

    hello(&m, &id);
    assert_int_equal(
        sup_inbox_hello_matches(&doc, "host:1:2", 7, SECRET, &m, &why), 1);
    assert_null(why);

    hello(&m, &other);
    assert_int_equal(
        sup_inbox_hello_matches(&doc, "host:1:2", 7, SECRET, &m, &why), 0);
    assert_string_equal(why, "it names another import");

    /* the same 24 characters as a string are another _id */
    hello(&m, &id);
    m.queue_id.value_type = BSON_TYPE_UTF8;
    m.queue_id.value.v_utf8.str = (char *)"5f0000000000000000000001";
    m.queue_id.value.v_utf8.len = 24;
    assert_int_equal(
        sup_inbox_hello_matches(&doc, "host:1:2", 7, SECRET, &m, &why), 0);
    assert_string_equal(why, "it names another import");

    /* a string _id as stored matches by its bytes */
    m.queue_id.value.v_utf8.str = (char *)"abc";
    m.queue_id.value.v_utf8.len = 3;
    assert_int_equal(
        sup_inbox_hello_matches(&sdoc, "host:1:2", 7, SECRET, &m, &why), 1);
    m.queue_id.value.v_utf8.len = 2;
    assert_int_equal(
        sup_inbox_hello_matches(&sdoc, "host:1:2", 7, SECRET, &m, &why), 0);

    hello(&m, &id);
    m.owner = "host:1:3";
    assert_int_equal(
        sup_inbox_hello_matches(&doc, "host:1:2", 7, SECRET, &m, &why), 0);
    assert_string_equal(why, "it names another claim");

    hello(&m, &id);
    m.epoch = 6; /* an older claim of this same supervisor */
    assert_int_equal(
        sup_inbox_hello_matches(&doc, "host:1:2", 7, SECRET, &m, &why), 0);
    assert_string_equal(why, "it names another claim");

    hello(&m, &id);
    m.secret = OTHER; /* another spawn of this claim */
    assert_int_equal(
        sup_inbox_hello_matches(&doc, "host:1:2", 7, SECRET, &m, &why), 0);
    assert_string_equal(why, "its secret is not this spawn's");

    hello(&m, &id);
    m.secret = ""; /* a slot with no secret yet must not match an empty one */
    assert_int_equal(sup_inbox_hello_matches(&doc, "host:1:2", 7, "", &m, &why),
                     0);
    assert_string_equal(why, "its secret is not this spawn's");

    hello(&m, &id);
    assert_int_equal(
        sup_inbox_hello_matches(NULL, "host:1:2", 7, SECRET, &m, &why), 0);
    assert_string_equal(why, "the import has no _id");
    bson_destroy(&doc);
    bson_destroy(&sdoc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame),
        cmocka_unit_test(test_flow),
        cmocka_unit_test(test_hello),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
