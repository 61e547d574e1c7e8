/*
 * Tests dip_msg: every message type round-trips through its encoder and the
 * decoder, and malformed frames are refused with a sentence, never a crash.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "dip_msg.h"

#define QID "64b0000000000000000000aa"

static void decode_ok(char *frame, dip_msg_t *m)
{
    char err[256] = "";
    assert_non_null(frame);
    if (dip_msg_decode(frame, strlen(frame), m, err, sizeof(err)) != 0)
        fail_msg("decode failed: %s (%s)", err, frame);
    free(frame);
}

static void test_round_trips(void **state)
{
    dip_msg_t m;
    json_t *cp = json_pack("{s:i, s:i, s:s}", "line", 1000, "offset", 65536,
                           "delimiter", ",");
    const char *cells[] = {"Acme", "5,000", "qualified"};
    json_t *notes = json_pack("[s]", "converted 3 cells from Windows-1252");
    (void)state;

    decode_ok(dip_msg_hello(QID, 4242, 1001), &m);
    assert_int_equal(m.type, DIP_MSG_HELLO);
    assert_string_equal(m.queue_id, QID);
    assert_int_equal(m.pid, 4242);
    assert_int_equal(m.first_line, 1001);
    dip_msg_release(&m);

    decode_ok(dip_msg_batch(QID, 2000, 990, 10, 131072, 262144, cp, 3), &m);
    assert_int_equal(m.type, DIP_MSG_BATCH);
    assert_int_equal(m.lines, 2000);
    assert_int_equal(m.added, 990);
    assert_int_equal(m.errors, 10);
    assert_int_equal(m.bytes, 131072);
    assert_int_equal(m.bytes_total, 262144);
    assert_int_equal(m.db_round_trips, 3);
    assert_true(json_equal(m.checkpoint, cp));
    dip_msg_release(&m);

    decode_ok(dip_msg_line_error(QID, 17, "value", "value 'x' is bad", cells,
                                 NULL, 3),
              &m);
    assert_int_equal(m.type, DIP_MSG_LINE_ERROR);
    assert_int_equal(m.line, 17);
    assert_string_equal(m.field, "value");
    assert_string_equal(m.message, "value 'x' is bad");
    assert_int_equal(json_array_size(m.row), 3);
    assert_string_equal(json_string_value(json_array_get(m.row, 1)), "5,000");
    dip_msg_release(&m);

    decode_ok(
        dip_msg_done(QID, DIP_DONE_FAILED, 12, "file 'a.csv' missing", notes),
        &m);
    assert_int_equal(m.type, DIP_MSG_DONE);
    assert_int_equal(m.status, DIP_DONE_FAILED);
    assert_int_equal(m.lines, 12);
    assert_string_equal(m.error, "file 'a.csv' missing");
    assert_int_equal(json_array_size(m.notes), 1);
    dip_msg_release(&m);

    decode_ok(dip_msg_control(DIP_CONTROL_PAUSE), &m);
    assert_int_equal(m.type, DIP_MSG_CONTROL);
    assert_int_equal(m.action, DIP_CONTROL_PAUSE);
    dip_msg_release(&m);

    decode_ok(dip_msg_heartbeat(QID), &m);
    assert_int_equal(m.type, DIP_MSG_HEARTBEAT);
    dip_msg_release(&m);
    json_decref(cp);
    json_decref(notes);
}

static void test_row_truncated_on_char_boundary(void **state)
{
    char *big = malloc(5000);
    const char *cells[1];
    size_t lens[1] = {5000};
    dip_msg_t m;
    const char *kept;
    (void)state;
    /* 'é' is two bytes: a 1024-byte cut must not split one. */
    big[0] = 'x';
    for (int i = 1; i < 4999; i += 2) {
        big[i] = (char)0xC3;
        big[i + 1] = (char)0xA9;
    }
    big[4999] = 'y';
    cells[0] = big;
    decode_ok(dip_msg_line_error(QID, 3, "", "too big", cells, lens, 1), &m);
    kept = json_string_value(json_array_get(m.row, 0));
    assert_int_equal(strlen(kept), 1023);
    assert_int_equal((unsigned char)kept[1021], 0xC3);
    assert_int_equal((unsigned char)kept[1022], 0xA9);
    dip_msg_release(&m);
    free(big);
}

static void expect_refused(const char *frame, const char *needle)
{
    dip_msg_t m;
    char err[256] = "";
    assert_int_equal(dip_msg_decode(frame, strlen(frame), &m, err, sizeof(err)),
                     -1);
    if (strstr(err, needle) == NULL)
        fail_msg("'%s': error '%s' lacks '%s'", frame, err, needle);
    assert_null(m.root);
}

static void test_refusals(void **state)
{
    (void)state;
    expect_refused("", "not JSON");
    expect_refused("{\"v\":1,", "not JSON");
    expect_refused("[1,2]", "not a JSON object");
    expect_refused("{\"v\":2,\"type\":\"heartbeat\",\"queue_id\":\"" QID "\"}",
                   "version");
    expect_refused("{\"v\":\"1\",\"type\":\"heartbeat\"}", "version");
    expect_refused("{\"v\":1,\"type\":\"explode\",\"queue_id\":\"" QID "\"}",
                   "unknown message type 'explode'");
    expect_refused("{\"v\":1,\"type\":\"heartbeat\",\"queue_id\":\"zz\"}",
                   "not an ObjectId");
    expect_refused("{\"v\":1,\"type\":\"batch\",\"queue_id\":\"" QID
                   "\",\"lines\":-1}",
                   "'lines'");
    expect_refused("{\"v\":1,\"type\":\"line_error\",\"queue_id\":\"" QID
                   "\",\"line\":3,\"field\":\"a\",\"message\":\"m\","
                   "\"row\":[1]}",
                   "non-string cell");
    expect_refused("{\"v\":1,\"type\":\"done\",\"queue_id\":\"" QID
                   "\",\"status\":\"exploded\",\"lines\":0}",
                   "unknown done status");
    expect_refused("{\"v\":1,\"type\":\"control\",\"action\":\"reboot\"}",
                   "unknown control action");
    expect_refused("{\"v\":1,\"v\":1,\"type\":\"control\"}", "not JSON");
}

static void test_oversized_frame(void **state)
{
    dip_msg_t m;
    char err[256];
    (void)state;
    assert_int_equal(
        dip_msg_decode("{}", DIP_MSG_MAX_FRAME + 1, &m, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "exceeds"));
}

static void test_is_oid(void **state)
{
    (void)state;
    assert_true(dip_msg_is_oid("507f1f77bcf86cd799439011"));
    assert_false(dip_msg_is_oid("507F1F77BCF86CD799439011"));
    assert_false(dip_msg_is_oid("507f1f77bcf86cd79943901"));
    assert_false(dip_msg_is_oid("507f1f77bcf86cd7994390111"));
    assert_false(dip_msg_is_oid(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_row_truncated_on_char_boundary),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_oversized_frame),
        cmocka_unit_test(test_is_oid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
