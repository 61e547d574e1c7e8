/*
 * Tests dip_log: what it writes to stderr, byte for byte. An event is one
 * line whatever its values hold: a line break or a '=' in the import id or
 * the message cannot start a forged line or pose as a key; quotes,
 * backslashes, control bytes and bytes that are not UTF-8 are escaped, valid
 * UTF-8 is kept; the JSON format stays one valid JSON object per line; a
 * message cut to the buffer ends on a character.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "dip_log.h"
#include "dip_text.h"

static char out[16384];

/* Runs dip_log with stderr on a file; out holds what was written, with the
 * "<6>test[pid] " prefix replaced by "<6>test ". */
static void capture(int level, const char *import_id, const char *msg)
{
    char path[] = "/tmp/dip-log-XXXXXX", *pid;
    int fd = mkstemp(path), saved = dup(2);
    ssize_t n;
    assert_true(fd >= 0 && saved >= 0);
    assert_int_equal(dup2(fd, 2), 2);
    dip_log(level, import_id, "%s", msg);
    assert_int_equal(dup2(saved, 2), 2);
    close(saved);
    n = pread(fd, out, sizeof(out) - 1, 0);
    assert_true(n >= 0);
    out[n] = '\0';
    close(fd);
    unlink(path);
    if ((pid = strchr(out, '[')) != NULL && strchr(pid, ']') != NULL)
        memmove(pid, strchr(pid, ']') + 1, strlen(strchr(pid, ']') + 1) + 1);
}

static int lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void test_kv_plain(void **state)
{
    (void)state;
    dip_log_setup("test", DIP_LOG_DEBUG, 0);
    capture(DIP_LOG_INFO, "64b000000000000000000001", "worker pid=42 starts");
    assert_string_equal(out, "<6>test level=info "
                             "import=64b000000000000000000001 msg=\"worker "
                             "pid=42 starts\"\n");
    capture(DIP_LOG_ERR, NULL, "no import");
    assert_string_equal(out, "<3>test level=error msg=\"no import\"\n");
    /* Below the level: nothing at all. */
    dip_log_setup("test", DIP_LOG_NOTICE, 0);
    capture(DIP_LOG_INFO, NULL, "quiet");
    assert_string_equal(out, "");
}

static void test_kv_cannot_forge(void **state)
{
    (void)state;
    dip_log_setup("test", DIP_LOG_DEBUG, 0);
    /* A value with a line break and a fake priority and key. */
    capture(DIP_LOG_INFO, NULL,
            "cannot read 'x.csv'\n<3>dealimport-supervisor[1] level=error "
            "msg=\"forged'");
    assert_int_equal(lines(out), 1);
    assert_string_equal(out, "<6>test level=info msg=\"cannot read "
                             "'x.csv'\\n<3>dealimport-supervisor[1] "
                             "level=error msg=\\\"forged'\"\n");
    /* An import id (ids are used as stored) that holds '=' and a space. */
    capture(DIP_LOG_WARNING, "a level=error\r\n", "m");
    assert_int_equal(lines(out), 1);
    assert_string_equal(
        out,
        "<4>test level=warning import=\"a level=error\\r\\n\" msg=\"m\"\n");
    /* Backslashes, tabs, other control bytes, DEL, bytes that are not
     * UTF-8; well-formed UTF-8 as it is. */
    capture(DIP_LOG_INFO, "", "a\\b\tc\x01\x7f\xff\xc3(é€");
    assert_string_equal(out, "<6>test level=info import=\"\" "
                             "msg=\"a\\\\b\\tc\\x01\\x7f\\xff\\xc3(é€\"\n");
}

static void test_kv_long_message(void **state)
{
    char big[3000];
    size_t len;
    (void)state;
    dip_log_setup("test", DIP_LOG_DEBUG, 0);
    /* 'é' is two bytes: 1500 of them overflow the message buffer at an odd
     * byte; the cut falls between characters. */
    for (size_t i = 0; i + 2 < sizeof(big); i += 2)
        memcpy(big + i, "é", 2);
    big[sizeof(big) - 2] = '\0';
    capture(DIP_LOG_INFO, NULL, big);
    len = strlen(out);
    assert_int_equal(lines(out), 1);
    assert_true(len < 4096);
    assert_string_equal(out + len - 2, "\"\n");
    assert_true(dip_text_utf8_valid(out, len));
    assert_null(strstr(out, "\\x"));
    /* Escapes that do not fit are left out whole, never cut. */
    memset(big, '\n', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    capture(DIP_LOG_INFO, NULL, big);
    len = strlen(out);
    assert_int_equal(lines(out), 1);
    assert_true(len <= 4096);
    assert_string_equal(out + len - 4, "\\n\"\n");
}

static void test_json_one_line(void **state)
{
    json_error_t jerr;
    json_t *o;
    (void)state;
    dip_log_setup("test", DIP_LOG_DEBUG, 1);
    capture(DIP_LOG_ERR, "id\nx", "bad 'a\nb\xff'");
    assert_int_equal(lines(out), 1);
    assert_int_equal(strncmp(out, "<3>", 3), 0);
    o = json_loads(out + 3, 0, &jerr);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "import")),
                        "id\nx");
    assert_string_equal(json_string_value(json_object_get(o, "msg")),
                        "bad 'a\\nb\\xff'");
    json_decref(o);
    dip_log_setup("test", DIP_LOG_INFO, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kv_plain),
        cmocka_unit_test(test_kv_cannot_forge),
        cmocka_unit_test(test_kv_long_message),
        cmocka_unit_test(test_json_one_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
