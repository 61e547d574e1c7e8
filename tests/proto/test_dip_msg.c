/*
 * Tests dip_msg (version 2, BSON frames): every message type round-trips
 * through its encoder and the decoder, a line error keeps the row's own
 * cells within its byte limit and cuts at a character boundary, and
 * malformed frames are refused with a sentence, never a crash.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dip_msg.h"

#define QID "64b0000000000000000000aa"
#define SECRET                                                                 \
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* Decodes frame into m; the frame must outlive m, so it is handed back. */
static bson_t *decode_ok(bson_t *frame, dip_msg_t *m)
{
    char err[256] = "";
    assert_non_null(frame);
    if (dip_msg_decode(bson_get_data(frame), frame->len, m, err, sizeof(err)) !=
        0)
        fail_msg("decode failed: %s", err);
    return frame;
}

static const char *str_at(const bson_t *arr, const char *key)
{
    bson_iter_t it;
    assert_true(bson_iter_init_find(&it, arr, key));
    assert_true(BSON_ITER_HOLDS_UTF8(&it));
    return bson_iter_utf8(&it, NULL);
}

static uint32_t count(const bson_t *arr)
{
    return bson_count_keys(arr);
}

/* encode(decode(f)) is stable: decoding and encoding once more gives the
 * same bytes. */
static void assert_reencodes(const dip_msg_t *m)
{
    bson_t *a = dip_msg_encode(m), *b;
    dip_msg_t m2;
    char err[256];
    assert_non_null(a);
    assert_int_equal(
        dip_msg_decode(bson_get_data(a), a->len, &m2, err, sizeof(err)), 0);
    b = dip_msg_encode(&m2);
    assert_non_null(b);
    assert_int_equal(a->len, b->len);
    assert_memory_equal(bson_get_data(a), bson_get_data(b), a->len);
    bson_destroy(a);
    bson_destroy(b);
}

static void test_round_trips(void **state)
{
    dip_msg_t m;
    bson_t *f, *cp = BCON_NEW("line", BCON_INT64(1000), "offset",
                              BCON_INT64(65536), "delimiter", BCON_UTF8(","));
    bson_t *file = BCON_NEW("etag", BCON_UTF8("\"abc\""));
    const char *cells[] = {"Acme", "5,000", "qualified"};
    const char *header[] = {"Deal name", "Value"};
    const char *notes[] = {"converted 3 cells from Windows-1252"};
    bson_value_t id;
    (void)state;

    id.value_type = BSON_TYPE_OID;
    bson_oid_init_from_string(&id.value.v_oid, QID);
    f = decode_ok(dip_msg_hello(&id, 4242, "host:1:2", 7, SECRET), &m);
    assert_int_equal(m.type, DIP_MSG_HELLO);
    assert_int_equal(m.queue_id.value_type, BSON_TYPE_OID);
    assert_true(bson_oid_equal(&m.queue_id.value.v_oid, &id.value.v_oid));
    assert_int_equal(m.pid, 4242);
    assert_string_equal(m.owner, "host:1:2");
    assert_int_equal(m.epoch, 7);
    assert_string_equal(m.secret, SECRET);
    assert_reencodes(&m);
    bson_destroy(f);

    /* an _id stored as a string travels as a string */
    id.value_type = BSON_TYPE_UTF8;
    id.value.v_utf8.str = (char *)"import-7";
    id.value.v_utf8.len = 8;
    f = decode_ok(dip_msg_hello(&id, 1, "o", 0, SECRET), &m);
    assert_int_equal(m.queue_id.value_type, BSON_TYPE_UTF8);
    assert_string_equal(m.queue_id.value.v_utf8.str, "import-7");
    bson_destroy(f);

    f = decode_ok(dip_msg_start(1001, header, 2, file), &m);
    assert_int_equal(m.type, DIP_MSG_START);
    assert_int_equal(m.first_line, 1001);
    assert_true(m.has_header);
    assert_int_equal(count(&m.header), 2);
    assert_string_equal(str_at(&m.header, "1"), "Value");
    assert_true(bson_equal(&m.file, file));
    assert_reencodes(&m);
    bson_destroy(f);
    f = decode_ok(dip_msg_start(5, NULL, 0, NULL), &m);
    assert_false(m.has_header);
    assert_int_equal(count(&m.file), 0);
    bson_destroy(f);

    f = decode_ok(dip_msg_batch(2000, 990, 10, 3, 131072, 262144, cp, 7), &m);
    assert_int_equal(m.db_round_trips, 7);
    assert_int_equal(m.type, DIP_MSG_BATCH);
    assert_int_equal(m.lines, 2000);
    assert_int_equal(m.added, 990);
    assert_int_equal(m.errors, 10);
    assert_int_equal(m.errors_not_stored, 3);
    assert_int_equal(m.bytes, 131072);
    assert_int_equal(m.bytes_total, 262144);
    assert_true(bson_equal(&m.checkpoint, cp));
    assert_reencodes(&m);
    bson_destroy(f);

    f = decode_ok(dip_msg_line_error(17, "value", "value 'x' is bad", cells,
                                     NULL, 3, 16384, 0),
                  &m);
    assert_int_equal(m.type, DIP_MSG_LINE_ERROR);
    assert_int_equal(m.line, 17);
    assert_string_equal(m.field, "value");
    assert_string_equal(m.message, "value 'x' is bad");
    assert_int_equal(count(&m.row), 3);
    assert_string_equal(str_at(&m.row, "1"), "5,000");
    assert_false(m.row_truncated);
    assert_reencodes(&m);
    {
        /* written by hand, byte for byte what libbson would write */
        bson_t *want = BCON_NEW(
            "v", BCON_INT32(2), "type", BCON_UTF8("line_error"), "line",
            BCON_INT64(17), "field", BCON_UTF8("value"), "message",
            BCON_UTF8("value 'x' is bad"), "row", "[", BCON_UTF8("Acme"),
            BCON_UTF8("5,000"), BCON_UTF8("qualified"), "]", "row_truncated",
            BCON_BOOL(false));
        assert_int_equal(f->len, want->len);
        assert_memory_equal(bson_get_data(f), bson_get_data(want), f->len);
        bson_destroy(want);
    }
    bson_destroy(f);

    f = decode_ok(
        dip_msg_done(DIP_DONE_FAILED, 12, 4, "file 'a.csv' missing", notes, 1),
        &m);
    assert_int_equal(m.type, DIP_MSG_DONE);
    assert_int_equal(m.status, DIP_DONE_FAILED);
    assert_int_equal(m.lines, 12);
    assert_int_equal(m.errors_not_stored, 4);
    assert_string_equal(m.error, "file 'a.csv' missing");
    assert_true(m.has_notes);
    assert_int_equal(count(&m.notes), 1);
    assert_reencodes(&m);
    bson_destroy(f);

    f = decode_ok(dip_msg_control(DIP_CONTROL_PAUSE), &m);
    assert_int_equal(m.type, DIP_MSG_CONTROL);
    assert_int_equal(m.action, DIP_CONTROL_PAUSE);
    bson_destroy(f);

    f = decode_ok(dip_msg_heartbeat(), &m);
    assert_int_equal(m.type, DIP_MSG_HEARTBEAT);
    bson_destroy(f);

    f = decode_ok(dip_msg_ack(123456, 2097152), &m);
    assert_int_equal(m.type, DIP_MSG_ACK);
    assert_int_equal(m.acked, 123456);
    assert_int_equal(m.window, 2097152);
    assert_reencodes(&m);
    bson_destroy(f);
    bson_destroy(cp);
    bson_destroy(file);
}

/* The amplification of issue 9: a short bad row under a 16,384-column
 * header is its own few cells, and a row of 16,384 empty cells stays
 * within the limit, flagged as cut. */
static void test_row_own_cells_bounded(void **state)
{
    enum { NCOLS = 16384 };
    const char **cells = calloc(NCOLS, sizeof(char *));
    dip_msg_t m;
    bson_t *f;
    (void)state;
    for (int i = 0; i < NCOLS; i++)
        cells[i] = "";
    cells[0] = "only";
    f = decode_ok(
        dip_msg_line_error(2, "", "too few cells", cells, NULL, 1, 16384, 0),
        &m);
    assert_int_equal(count(&m.row), 1);
    assert_false(m.row_truncated);
    bson_destroy(f);

    f = decode_ok(
        dip_msg_line_error(3, "", "bad", cells, NULL, NCOLS, 16384, 0), &m);
    assert_true(m.row_truncated);
    assert_true(m.row.len <= 16384);
    assert_true(count(&m.row) > 100);
    assert_true(count(&m.row) < NCOLS);
    assert_true(f->len < 17 * 1024);
    bson_destroy(f);
    free(cells);
}

static void test_row_cut_on_char_boundary(void **state)
{
    char *big = malloc(40000);
    const char *cells[1];
    size_t lens[1] = {40000};
    dip_msg_t m;
    bson_t *f;
    const char *kept;
    (void)state;
    /* 'é' is two bytes: a cut must not split one. */
    big[0] = 'x';
    for (int i = 1; i < 39999; i += 2) {
        big[i] = (char)0xC3;
        big[i + 1] = (char)0xA9;
    }
    big[39999] = 'y';
    cells[0] = big;
    f = decode_ok(
        dip_msg_line_error(3, "", "too big", cells, lens, 1, 16384, 0), &m);
    assert_true(m.row_truncated);
    kept = str_at(&m.row, "0");
    assert_true(strlen(kept) > 16000);
    assert_true(m.row.len <= 16384);
    assert_int_equal(strlen(kept) % 2, 1); /* 'x' and whole 'é's */
    assert_int_equal((unsigned char)kept[strlen(kept) - 1], 0xA9);
    bson_destroy(f);
    free(big);
}

static void expect_refused(const void *buf, size_t len, const char *needle)
{
    dip_msg_t m;
    char err[256] = "";
    if (dip_msg_decode(buf, len, &m, err, sizeof(err)) != -1)
        fail_msg("accepted, expected a refusal naming %s", needle);
    if (strstr(err, needle) == NULL)
        fail_msg("error '%s' lacks '%s'", err, needle);
    assert_int_equal(m.type, 0);
}

static void expect_refused_doc(bson_t *b, const char *needle)
{
    assert_non_null(b);
    expect_refused(bson_get_data(b), b->len, needle);
    bson_destroy(b);
}

static void test_refusals(void **state)
{
    static const char v1[] = "{\"v\":1,\"type\":\"heartbeat\"}";
    uint8_t bad_utf8[64];
    bson_t *b;
    (void)state;
    expect_refused("", 0, "not a BSON document");
    expect_refused(v1, strlen(v1), "not a BSON document");
    expect_refused_doc(
        BCON_NEW("v", BCON_INT32(1), "type", BCON_UTF8("heartbeat")),
        "version");
    expect_refused_doc(BCON_NEW("type", BCON_UTF8("heartbeat")), "version");
    expect_refused_doc(
        BCON_NEW("v", BCON_INT32(2), "type", BCON_UTF8("explode")),
        "unknown message type 'explode'");
    expect_refused_doc(BCON_NEW("v", BCON_INT32(2), "type", BCON_UTF8("batch"),
                                "lines", BCON_INT64(-1)),
                       "'lines'");
    expect_refused_doc(BCON_NEW("v", BCON_INT32(2), "type",
                                BCON_UTF8("line_error"), "line", BCON_INT64(3),
                                "field", BCON_UTF8("a"), "message",
                                BCON_UTF8("m"), "row", "[", BCON_INT32(1), "]",
                                "row_truncated", BCON_BOOL(false)),
                       "non-string");
    expect_refused_doc(BCON_NEW("v", BCON_INT32(2), "type",
                                BCON_UTF8("line_error"), "line", BCON_INT64(3),
                                "field", BCON_UTF8("a"), "message",
                                BCON_UTF8("m"), "row", "[", "]"),
                       "row_truncated");
    expect_refused_doc(BCON_NEW("v", BCON_INT32(2), "type", BCON_UTF8("done"),
                                "status", BCON_UTF8("exploded"), "lines",
                                BCON_INT64(0), "errors_not_stored",
                                BCON_INT64(0)),
                       "unknown done status");
    expect_refused_doc(BCON_NEW("v", BCON_INT32(2), "type",
                                BCON_UTF8("control"), "action",
                                BCON_UTF8("reboot")),
                       "unknown control action");
    expect_refused_doc(BCON_NEW("v", BCON_INT32(2), "type", BCON_UTF8("hello"),
                                "queue_id", "{", "}", "pid", BCON_INT64(1)),
                       "queue_id");
    /* a string that is not UTF-8, anywhere in the frame */
    b = BCON_NEW("v", BCON_INT32(2), "type", BCON_UTF8("heartbeat"), "x",
                 BCON_UTF8("ab"));
    memcpy(bad_utf8, bson_get_data(b), b->len);
    bad_utf8[b->len - 3] = 0xC3; /* "a" -> a lone lead byte */
    expect_refused(bad_utf8, b->len, "valid");
    bson_destroy(b);
}

/* A dry run's done carries its verdict; an import's done says nothing of
 * one; a malformed verdict is refused. */
static void test_done_dry_run(void **state)
{
    const char *names[DIP_MSG_NEW_STAGES_MAX + 5];
    char text[DIP_MSG_NEW_STAGES_MAX + 5][16];
    dip_msg_t m;
    bson_t *f;
    (void)state;
    for (int i = 0; i < DIP_MSG_NEW_STAGES_MAX + 5; i++) {
        snprintf(text[i], sizeof(text[i]), "stage %d", i);
        names[i] = text[i];
    }
    f = decode_ok(dip_msg_done_dry(DIP_DONE_COMPLETED, 500, 0, NULL, NULL, 0,
                                   480, 2, names, 2),
                  &m);
    assert_int_equal(m.type, DIP_MSG_DONE);
    assert_int_equal(m.status, DIP_DONE_COMPLETED);
    assert_int_equal(m.lines, 500);
    assert_true(m.dry_run);
    assert_int_equal(m.would_add, 480);
    assert_int_equal(m.new_stages_count, 2);
    assert_int_equal(count(&m.new_stages), 2);
    assert_string_equal(str_at(&m.new_stages, "1"), "stage 1");
    assert_false(m.has_notes);
    assert_reencodes(&m);
    bson_destroy(f);

    /* More names than a done may carry: the first ones, the count whole. */
    f = decode_ok(dip_msg_done_dry(DIP_DONE_PAUSED, 9, 1, NULL, names, 1, 7,
                                   DIP_MSG_NEW_STAGES_MAX + 5, names,
                                   DIP_MSG_NEW_STAGES_MAX + 5),
                  &m);
    assert_int_equal(m.new_stages_count, DIP_MSG_NEW_STAGES_MAX + 5);
    assert_int_equal(count(&m.new_stages), DIP_MSG_NEW_STAGES_MAX);
    assert_string_equal(str_at(&m.new_stages, "0"), "stage 0");
    assert_true(m.has_notes);
    assert_reencodes(&m);
    bson_destroy(f);

    f = decode_ok(dip_msg_done(DIP_DONE_COMPLETED, 5, 0, NULL, NULL, 0), &m);
    assert_false(m.dry_run);
    assert_int_equal(m.would_add, 0);
    assert_int_equal(m.new_stages_count, 0);
    bson_destroy(f);

    expect_refused_doc(BCON_NEW("v", BCON_INT32(2), "type", BCON_UTF8("done"),
                                "status", BCON_UTF8("completed"), "lines",
                                BCON_INT64(0), "errors_not_stored",
                                BCON_INT64(0), "dry_run", BCON_INT32(1)),
                       "'dry_run'");
    expect_refused_doc(BCON_NEW("v", BCON_INT32(2), "type", BCON_UTF8("done"),
                                "status", BCON_UTF8("completed"), "lines",
                                BCON_INT64(0), "errors_not_stored",
                                BCON_INT64(0), "dry_run", BCON_BOOL(true),
                                "would_add", BCON_INT64(-1), "new_stages_count",
                                BCON_INT64(0), "new_stages", "[", "]"),
                       "'would_add'");
    expect_refused_doc(
        BCON_NEW("v", BCON_INT32(2), "type", BCON_UTF8("done"), "status",
                 BCON_UTF8("completed"), "lines", BCON_INT64(0),
                 "errors_not_stored", BCON_INT64(0), "dry_run", BCON_BOOL(true),
                 "would_add", BCON_INT64(3), "new_stages_count", BCON_INT64(1)),
        "'new_stages'");
    expect_refused_doc(
        BCON_NEW("v", BCON_INT32(2), "type", BCON_UTF8("done"), "status",
                 BCON_UTF8("completed"), "lines", BCON_INT64(0),
                 "errors_not_stored", BCON_INT64(0), "dry_run", BCON_BOOL(true),
                 "would_add", BCON_INT64(3), "new_stages_count", BCON_INT64(1),
                 "new_stages", "[", BCON_INT32(4), "]"),
        "non-string");
}

/* An update or upsert's done carries its updated and unchanged deals; a
 * done without them (an older worker, a create) decodes with has_counts
 * 0; a count of the wrong type or below 0 is refused. */
static void test_done_counts(void **state)
{
    dip_msg_t m;
    bson_t *f = dip_msg_done(DIP_DONE_COMPLETED, 12010, 0, NULL, NULL, 0);
    (void)state;
    assert_int_equal(dip_msg_done_counts(f, 9000, 1000), 0);
    decode_ok(f, &m);
    assert_true(m.has_counts);
    assert_int_equal(m.updated, 9000);
    assert_int_equal(m.unchanged, 1000);
    assert_false(m.dry_run);
    assert_reencodes(&m);
    bson_destroy(f);

    f = dip_msg_done_dry(DIP_DONE_COMPLETED, 10, 0, NULL, NULL, 0, 2, 0, NULL,
                         0);
    assert_int_equal(dip_msg_done_counts(f, 7, 1), 0);
    decode_ok(f, &m);
    assert_true(m.has_counts && m.dry_run);
    assert_int_equal(m.would_add, 2);
    assert_int_equal(m.updated, 7);
    assert_int_equal(m.unchanged, 1);
    assert_reencodes(&m);
    bson_destroy(f);

    f = decode_ok(dip_msg_done(DIP_DONE_COMPLETED, 5, 0, NULL, NULL, 0), &m);
    assert_false(m.has_counts);
    assert_int_equal(m.updated, 0);
    bson_destroy(f);

    expect_refused_doc(BCON_NEW("v", BCON_INT32(2), "type", BCON_UTF8("done"),
                                "status", BCON_UTF8("completed"), "lines",
                                BCON_INT64(0), "errors_not_stored",
                                BCON_INT64(0), "updated", BCON_UTF8("3"),
                                "unchanged", BCON_INT64(0)),
                       "'updated'");
    expect_refused_doc(BCON_NEW("v", BCON_INT32(2), "type", BCON_UTF8("done"),
                                "status", BCON_UTF8("completed"), "lines",
                                BCON_INT64(0), "errors_not_stored",
                                BCON_INT64(0), "updated", BCON_INT64(3),
                                "unchanged", BCON_INT64(-1)),
                       "'unchanged'");
    expect_refused_doc(BCON_NEW("v", BCON_INT32(2), "type", BCON_UTF8("done"),
                                "status", BCON_UTF8("completed"), "lines",
                                BCON_INT64(0), "errors_not_stored",
                                BCON_INT64(0), "updated", BCON_INT64(3)),
                       "'unchanged'");
}

static void test_oversized_frame(void **state)
{
    dip_msg_t m;
    char err[256];
    (void)state;
    assert_int_equal(
        dip_msg_decode("", DIP_MSG_MAX_FRAME + 1, &m, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "exceeds"));
}

static void test_ids(void **state)
{
    (void)state;
    assert_true(dip_msg_is_oid("507f1f77bcf86cd799439011"));
    assert_false(dip_msg_is_oid("507F1F77BCF86CD799439011"));
    assert_false(dip_msg_is_oid("507f1f77bcf86cd79943901"));
    assert_false(dip_msg_is_oid("507f1f77bcf86cd7994390111"));
    assert_false(dip_msg_is_oid(NULL));
    assert_true(dip_msg_is_secret(SECRET));
    assert_false(dip_msg_is_secret("0123"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_row_own_cells_bounded),
        cmocka_unit_test(test_row_cut_on_char_boundary),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_done_dry_run),
        cmocka_unit_test(test_done_counts),
        cmocka_unit_test(test_oversized_frame),
        cmocka_unit_test(test_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
