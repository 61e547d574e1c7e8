/*
 * Tests dip_ctl: every request round-trips through its encoder and the
 * decoder, every malformed request is refused with the sentence an operator
 * sees, and replies are checked for the fields their command promises.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "dip_ctl.h"

#define QID "64b0000000000000000000aa"
#define ACC "64b0000000000000000000bb"

static void round_trip(const dip_ctl_request_t *in, dip_ctl_request_t *out)
{
    char *s = dip_ctl_request_encode(in), err[256] = "";
    assert_non_null(s);
    if (dip_ctl_request_decode(s, strlen(s), out, err, sizeof(err)) != 0)
        fail_msg("decode of '%s' failed: %s", s, err);
    free(s);
}

static void test_request_round_trips(void **state)
{
    dip_ctl_request_t in, out;
    char *s;
    (void)state;
    for (int c = DIP_CTL_STATUS; c <= DIP_CTL_CANCEL; c++) {
        memset(&in, 0, sizeof(in));
        in.cmd = (dip_ctl_cmd_t)c;
        strcpy(in.id, QID);
        round_trip(&in, &out);
        assert_int_equal(out.cmd, c);
        if (c == DIP_CTL_STATUS || c == DIP_CTL_LIST)
            assert_string_equal(out.id, "");
        else
            assert_string_equal(out.id, QID);
    }
    memset(&in, 0, sizeof(in));
    in.cmd = DIP_CTL_LIST;
    round_trip(&in, &out);
    assert_int_equal(out.limit, DIP_CTL_LIST_DEFAULT);
    assert_string_equal(out.status, "");
    assert_string_equal(out.account, "");
    strcpy(in.status, "paused");
    strcpy(in.account, ACC);
    in.limit = 7;
    round_trip(&in, &out);
    assert_string_equal(out.status, "paused");
    assert_string_equal(out.account, ACC);
    assert_int_equal(out.limit, 7);
    in.since_ms = 1767571200000LL;
    strcpy(in.after, "1767609000000." QID);
    round_trip(&in, &out);
    assert_true(out.since_ms == 1767571200000LL);
    assert_string_equal(out.after, "1767609000000." QID);
    in.since_ms = 0;
    in.after[0] = '\0';

    /* The exact bytes of a request, as other languages will write it. */
    memset(&in, 0, sizeof(in));
    in.cmd = DIP_CTL_PAUSE;
    strcpy(in.id, QID);
    s = dip_ctl_request_encode(&in);
    assert_string_equal(s, "{\"v\":1,\"cmd\":\"pause\",\"id\":\"" QID "\"}");
    free(s);

    /* Invalid requests are not encoded. */
    in.cmd = DIP_CTL_SHOW;
    strcpy(in.id, "nope");
    assert_null(dip_ctl_request_encode(&in));
    in.cmd = (dip_ctl_cmd_t)99;
    assert_null(dip_ctl_request_encode(&in));
    memset(&in, 0, sizeof(in));
    in.cmd = DIP_CTL_LIST;
    strcpy(in.status, "done");
    assert_null(dip_ctl_request_encode(&in));
}

static void test_uppercase_id_is_lowered(void **state)
{
    const char *s =
        "{\"v\":1,\"cmd\":\"show\",\"id\":\"64B0000000000000000000AA\"}";
    dip_ctl_request_t r;
    char err[256];
    (void)state;
    assert_int_equal(dip_ctl_request_decode(s, strlen(s), &r, err, sizeof(err)),
                     0);
    assert_string_equal(r.id, QID);
}

static void refused(const char *frame, size_t len, const char *expect)
{
    dip_ctl_request_t r;
    char err[512] = "";
    memset(&r, 0x5a, sizeof(r));
    if (dip_ctl_request_decode(frame, len, &r, err, sizeof(err)) == 0)
        fail_msg("'%s' was accepted", frame);
    if (strstr(err, expect) == NULL)
        fail_msg("'%s': error '%s' lacks '%s'", frame, err, expect);
    /* A refused request leaves nothing behind that could be acted on. */
    assert_int_equal(r.cmd, 0);
    assert_string_equal(r.id, "");
}

static void refused_s(const char *frame, const char *expect)
{
    refused(frame, strlen(frame), expect);
}

static void test_malformed_requests(void **state)
{
    char *big;
    (void)state;
    refused("", 0, "the request is empty");
    refused_s("{\"v\":1,\"cmd\":\"status\"", "the request is not JSON");
    refused_s("{\"v\":1,\"cmd\":\"status\"} trailing", "not JSON");
    refused("{\"v\":1,\0\"cmd\":\"status\"}", 22, "not JSON");
    refused_s("[1,2]", "must be a JSON object");
    refused_s("\"status\"", "not JSON");
    refused_s("{\"cmd\":\"status\"}", "has no 'v'");
    refused_s("{\"v\":\"1\",\"cmd\":\"status\"}", "'v' must be an integer");
    refused_s("{\"v\":1.0,\"cmd\":\"status\"}", "'v' must be an integer");
    refused_s("{\"v\":2,\"cmd\":\"status\"}",
              "protocol version 2 is not supported (this supervisor speaks "
              "1)");
    refused_s("{\"v\":1}", "has no 'cmd'");
    refused_s("{\"v\":1,\"cmd\":7}", "'cmd' must be a string");
    refused_s("{\"v\":1,\"cmd\":\"reboot\"}", "unknown command 'reboot'");
    refused_s("{\"v\":1,\"cmd\":\"st\\u00e9x\\n\"}",
              "unknown command 'st??x?'");
    refused_s("{\"v\":1,\"cmd\":\"status\",\"cmd\":\"list\"}", "not JSON");
    refused_s("{\"v\":1,\"cmd\":\"status\",\"id\":\"" QID "\"}",
              "unknown field 'id' in a 'status' request");
    refused_s("{\"v\":1,\"cmd\":\"list\",\"stauts\":\"paused\"}",
              "unknown field 'stauts' in a 'list' request");
    refused_s("{\"v\":1,\"cmd\":\"pause\"}", "'pause' needs an 'id'");
    refused_s("{\"v\":1,\"cmd\":\"pause\",\"id\":42}", "'id' must be a string");
    refused_s("{\"v\":1,\"cmd\":\"cancel\",\"id\":\"64b0\"}",
              "'64b0' is not an import id");
    refused_s("{\"v\":1,\"cmd\":\"cancel\",\"id\":\"" QID "0\"}",
              "is not an import id");
    refused_s(
        "{\"v\":1,\"cmd\":\"resume\",\"id\":\"zzb0000000000000000000aa\"}",
        "'zzb0000000000000000000aa' is not an import id");
    refused_s(
        "{\"v\":1,\"cmd\":\"show\",\"id\":\"64b00000000000000000\\u0000aa\"}",
        "not JSON");
    refused_s("{\"v\":1,\"cmd\":\"list\",\"status\":\"done\"}",
              "'status' must be one of pending, processing, paused, "
              "completed, failed, cancelled, not 'done'");
    refused_s("{\"v\":1,\"cmd\":\"list\",\"status\":[]}",
              "'status' must be a string");
    refused_s("{\"v\":1,\"cmd\":\"list\",\"account\":\"me\"}",
              "'me' is not an account id");
    refused_s("{\"v\":1,\"cmd\":\"list\",\"account\":null}",
              "'account' must be a string");
    refused_s("{\"v\":1,\"cmd\":\"list\",\"limit\":0}",
              "'limit' must be an integer from 1 to 1000");
    refused_s("{\"v\":1,\"cmd\":\"list\",\"limit\":1001}",
              "'limit' must be an integer from 1 to 1000");
    refused_s("{\"v\":1,\"cmd\":\"list\",\"limit\":\"5\"}",
              "'limit' must be an integer");
    refused_s("{\"v\":1,\"cmd\":\"list\",\"since\":-1}",
              "'since' must be a time in milliseconds");
    refused_s("{\"v\":1,\"cmd\":\"list\",\"since\":\"2026\"}",
              "'since' must be a time in milliseconds");
    refused_s("{\"v\":1,\"cmd\":\"list\",\"after\":\"12\"}",
              "'after' must be the 'next' of a list reply");
    refused_s("{\"v\":1,\"cmd\":\"show\",\"id\":\"" QID "\",\"since\":1}",
              "unknown field 'since'");

    /* Oversized: refused by its length, before any parsing. */
    big = malloc(DIP_CTL_MAX_REQUEST + 2);
    memset(big, ' ', DIP_CTL_MAX_REQUEST + 1);
    memcpy(big, "{\"v\":1,\"cmd\":\"status\"}", 22);
    big[DIP_CTL_MAX_REQUEST + 1] = '\0';
    refused(big, DIP_CTL_MAX_REQUEST + 1,
            "the request is 65537 bytes, more than the 65536 allowed");
    /* The same padding within the limit is fine. */
    {
        dip_ctl_request_t r;
        char err[256];
        assert_int_equal(dip_ctl_request_decode(big, DIP_CTL_MAX_REQUEST, &r,
                                                err, sizeof(err)),
                         0);
        assert_int_equal(r.cmd, DIP_CTL_STATUS);
    }
    free(big);
}

static void reply_ok(dip_ctl_cmd_t cmd, json_t *body, dip_ctl_reply_t *r)
{
    char *s = dip_ctl_reply_ok(body), err[256] = "";
    assert_non_null(s);
    if (dip_ctl_reply_decode(s, strlen(s), cmd, r, err, sizeof(err)) != 0)
        fail_msg("reply '%s' refused: %s", s, err);
    free(s);
    json_decref(body);
}

static void reply_refused(dip_ctl_cmd_t cmd, json_t *body, const char *expect)
{
    char *s = dip_ctl_reply_ok(body), err[256] = "";
    dip_ctl_reply_t r;
    assert_non_null(s);
    if (dip_ctl_reply_decode(s, strlen(s), cmd, &r, err, sizeof(err)) == 0)
        fail_msg("reply '%s' accepted", s);
    if (strstr(err, expect) == NULL)
        fail_msg("reply '%s': error '%s' lacks '%s'", s, err, expect);
    assert_null(r.root);
    free(s);
    json_decref(body);
}

static void test_replies(void **state)
{
    dip_ctl_reply_t r;
    char *s, err[256];
    (void)state;

    reply_ok(DIP_CTL_STATUS,
             json_pack("{s:s, s:s, s:i, s:{s:i, s:i}, s:{s:i}, s:[]}",
                       "version", "0.1.0", "owner", "h:1:2", "uptime_s", 5,
                       "workers", "running", 1, "limit", 4, "imports",
                       "pending", 3, "accounts"),
             &r);
    assert_true(r.ok);
    assert_int_equal(r.code, DIP_CTL_OK);
    assert_int_equal(json_integer_value(json_object_get(r.root, "uptime_s")),
                     5);
    dip_ctl_reply_release(&r);
    assert_null(r.root);

    reply_ok(
        DIP_CTL_LIST,
        json_pack("{s:[{s:s, s:s}]}", "imports", "id", QID, "status", "paused"),
        &r);
    assert_int_equal(json_array_size(json_object_get(r.root, "imports")), 1);
    dip_ctl_reply_release(&r);

    reply_ok(DIP_CTL_SHOW,
             json_pack("{s:{s:s, s:s}}", "import", "id", QID, "status",
                       "processing"),
             &r);
    dip_ctl_reply_release(&r);

    /* The body cannot override the envelope. */
    reply_ok(DIP_CTL_PAUSE,
             json_pack("{s:i, s:b, s:s, s:s, s:s, s:s}", "v", 9, "ok", 0, "id",
                       QID, "result", "signalled", "status", "processing",
                       "message", "m"),
             &r);
    assert_true(r.ok);
    assert_int_equal(json_integer_value(json_object_get(r.root, "v")), 1);
    dip_ctl_reply_release(&r);

    reply_refused(DIP_CTL_STATUS,
                  json_pack("{s:s, s:s, s:i, s:{s:i}, s:{}, s:[]}", "version",
                            "0.1.0", "owner", "h", "uptime_s", 5, "workers",
                            "running", 1, "imports", "accounts"),
                  "'workers.limit' is missing or not a count");
    reply_refused(DIP_CTL_LIST, json_pack("{s:[{s:s}]}", "imports", "id", QID),
                  "'imports[].status' is missing or not a string");
    reply_refused(DIP_CTL_SHOW, json_pack("{s:[]}", "import"),
                  "'import' is not an object");
    reply_refused(DIP_CTL_CANCEL,
                  json_pack("{s:s, s:s, s:s}", "id", QID, "result", "applied",
                            "status", "cancelled"),
                  "'message' is missing");

    s = dip_ctl_reply_error(DIP_CTL_ESTATE, "import '%s' is %s", QID,
                            "completed");
    assert_string_equal(s, "{\"v\":1,\"ok\":false,\"code\":\"wrong_state\","
                           "\"error\":\"import '" QID "' is completed\"}");
    assert_int_equal(
        dip_ctl_reply_decode(s, strlen(s), DIP_CTL_PAUSE, &r, err, sizeof(err)),
        0);
    assert_false(r.ok);
    assert_int_equal(r.code, DIP_CTL_ESTATE);
    assert_string_equal(r.error, "import '" QID "' is completed");
    dip_ctl_reply_release(&r);
    free(s);

    {
        static const char *const bad[][2] = {
            {"{\"v\":1,\"ok\":false,\"code\":\"odd\",\"error\":\"x\"}",
             "code 'odd' is unknown"},
            {"{\"v\":1,\"ok\":false,\"code\":\"not_found\"}",
             "'error' is missing"},
            {"{\"v\":2,\"ok\":true}", "not protocol version 1"},
            {"{\"v\":1,\"ok\":1}", "'ok' is missing or not a boolean"},
            {"[]", "not a JSON object"},
            {"{", "not JSON"},
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            err[0] = '\0';
            assert_int_equal(dip_ctl_reply_decode(bad[i][0], strlen(bad[i][0]),
                                                  DIP_CTL_SHOW, &r, err,
                                                  sizeof(err)),
                             -1);
            if (strstr(err, bad[i][1]) == NULL)
                fail_msg("'%s': '%s' lacks '%s'", bad[i][0], err, bad[i][1]);
        }
    }
}

/* List cursors: "<ms>.<id>" both ways, anything else refused. */
static void test_cursor(void **state)
{
    static const struct {
        const char *in;
        int rc;
        long long ms;
    } cases[] = {
        {"0." QID, 0, 0},
        {"1767609000000." QID, 0, 1767609000000LL},
        {"1767609000000.64B0000000000000000000AA", 0, 1767609000000LL},
        {"." QID, -1, 0},
        {"-1." QID, -1, 0},
        {"12." QID "0", -1, 0},
        {"1234567890123456." QID, -1, 0},
        {"12", -1, 0},
        {"", -1, 0},
    };
    char out[DIP_CTL_CURSOR_LEN], id[25];
    long long ms;
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = dip_ctl_cursor_parse(cases[i].in, &ms, id);
        assert_int_equal(rc, cases[i].rc);
        if (rc == 0) {
            assert_true(ms == cases[i].ms);
            assert_string_equal(id, QID);
        }
    }
    assert_int_equal(dip_ctl_cursor_format(1767609000000LL, QID, out), 0);
    assert_string_equal(out, "1767609000000." QID);
    assert_int_equal(dip_ctl_cursor_format(-1, QID, out), -1);
    assert_int_equal(dip_ctl_cursor_format(5, "nope", out), -1);
}

static void test_names_and_quote(void **state)
{
    char q[16];
    (void)state;
    assert_int_equal(dip_ctl_cmd_parse("cancel"), DIP_CTL_CANCEL);
    assert_int_equal(dip_ctl_cmd_parse("Cancel"), 0);
    assert_int_equal(dip_ctl_cmd_parse(NULL), 0);
    assert_string_equal(dip_ctl_cmd_name((dip_ctl_cmd_t)42), "unknown");
    assert_string_equal(dip_ctl_code_name(DIP_CTL_ENOTFOUND), "not_found");
    assert_true(dip_ctl_status_valid("paused"));
    assert_false(dip_ctl_status_valid("PAUSED"));
    assert_true(dip_ctl_status_final("cancelled"));
    assert_false(dip_ctl_status_final("paused"));
    assert_string_equal(dip_ctl_quote("ab\x01"
                                      "c",
                                      40, q, sizeof(q)),
                        "ab?c");
    assert_string_equal(dip_ctl_quote("abcdefghij", 4, q, sizeof(q)),
                        "abcd...");
    assert_string_equal(
        dip_ctl_quote("abcdefghijklmnopqrstuvwxyz", 40, q, sizeof(q)),
        "abcdefghijklmno");
    assert_string_equal(dip_ctl_quote(NULL, 4, q, sizeof(q)), "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_round_trips),
        cmocka_unit_test(test_uppercase_id_is_lowered),
        cmocka_unit_test(test_malformed_requests),
        cmocka_unit_test(test_replies),
        cmocka_unit_test(test_cursor),
        cmocka_unit_test(test_names_and_quote),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
