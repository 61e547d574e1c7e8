/*
 * Tests dip_log: what it writes to stderr, byte for byte. An event is one
 * line whatever its values hold: a line break or a '=' in the import id or
 * the message cannot start a forged line or pose as a key; quotes,
 * backslashes, control bytes and bytes that are not UTF-8 are escaped, valid
 * UTF-8 is kept; the JSON format stays one valid JSON object per line, with
 * its time, level, program, pid and the event's fields as members, and a
 * priority prefix only under journald; a message cut to the buffer ends on
 * a character.
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#include "dip_log.h"
#include "dip_text.h"
#include "it_tmp.h"

static char out[16384];

/* Runs dip_log with stderr on a file; out holds what was written, with the
 * "<6>test[pid] " prefix replaced by "<6>test ". */
static void capture(int level, const char *import_id, const char *msg)
{
    char path[512], *pid;
    int fd = mkstemp(it_tmp_name(path, sizeof(path), "dip-log-XXXXXX")),
        saved = dup(2);
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
    const char *t;
    (void)state;
    unsetenv("JOURNAL_STREAM");
    dip_log_setup("test", DIP_LOG_DEBUG, 1);
    capture(DIP_LOG_ERR, "id\nx", "bad 'a\nb\xff'");
    assert_int_equal(lines(out), 1);
    /* Not under journald: the line is JSON from its first byte. */
    o = json_loads(out, 0, &jerr);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "import")),
                        "id\nx");
    assert_string_equal(json_string_value(json_object_get(o, "msg")),
                        "bad 'a\\nb\\xff'");
    assert_string_equal(json_string_value(json_object_get(o, "level")),
                        "error");
    assert_string_equal(json_string_value(json_object_get(o, "program")),
                        "test");
    assert_int_equal(json_integer_value(json_object_get(o, "pid")), getpid());
    /* 2026-01-02T03:04:05.678Z */
    t = json_string_value(json_object_get(o, "time"));
    assert_non_null(t);
    assert_int_equal(strlen(t), 24);
    assert_true(t[4] == '-' && t[10] == 'T' && t[19] == '.' && t[23] == 'Z');
    json_decref(o);
    dip_log_setup("test", DIP_LOG_INFO, 0);
}

/* Runs dip_log_fields into out (stderr on a file). */
static void capture_fields(const char *import_id)
{
    char path[512];
    int fd = mkstemp(it_tmp_name(path, sizeof(path), "dip-log-XXXXXX")),
        saved = dup(2);
    ssize_t n;
    assert_true(fd >= 0 && saved >= 0);
    assert_int_equal(dup2(fd, 2), 2);
    dip_log_fields(DIP_LOG_INFO, import_id,
                   DIP_LOG_FIELDS(DIP_LOG_NUM("worker_pid", 42),
                                  DIP_LOG_NUM("line", 1500),
                                  DIP_LOG_STR("by", "uid 1000\n")),
                   "import %s", "paused");
    assert_int_equal(dup2(saved, 2), 2);
    close(saved);
    n = pread(fd, out, sizeof(out) - 1, 0);
    assert_true(n >= 0);
    out[n] = '\0';
    close(fd);
    unlink(path);
}

static void test_fields(void **state)
{
    json_error_t jerr;
    json_t *o;
    char *p;
    (void)state;
    unsetenv("JOURNAL_STREAM");
    /* kv: each field a key=value after msg. */
    dip_log_setup("test", DIP_LOG_DEBUG, 0);
    capture_fields("64b000000000000000000001");
    p = strstr(out, " import=");
    assert_non_null(p);
    assert_string_equal(p, " import=64b000000000000000000001 msg=\"import "
                           "paused\" worker_pid=42 line=1500 by=\"uid "
                           "1000\\n\"\n");
    /* JSON: members of their own, numbers as numbers. */
    dip_log_setup("test", DIP_LOG_DEBUG, 1);
    capture_fields(NULL);
    assert_int_equal(lines(out), 1);
    o = json_loads(out, 0, &jerr);
    assert_non_null(o);
    assert_true(json_is_integer(json_object_get(o, "worker_pid")));
    assert_int_equal(json_integer_value(json_object_get(o, "worker_pid")), 42);
    assert_int_equal(json_integer_value(json_object_get(o, "line")), 1500);
    assert_string_equal(json_string_value(json_object_get(o, "by")),
                        "uid 1000\n");
    assert_string_equal(json_string_value(json_object_get(o, "msg")),
                        "import paused");
    assert_null(json_object_get(o, "import"));
    json_decref(o);
    dip_log_setup("test", DIP_LOG_INFO, 0);
}

/* Under journald (JOURNAL_STREAM names stderr's device and inode) and
 * without the journal's native socket, a JSON line gets the priority prefix
 * journald reads; a JOURNAL_STREAM naming
 * another file (stderr redirected since) does not count. */
static void test_journald(void **state)
{
    char path[512], env[64];
    int fd = mkstemp(it_tmp_name(path, sizeof(path), "dip-log-XXXXXX")),
        saved = dup(2);
    struct stat st;
    ssize_t n;
    (void)state;
    assert_true(fd >= 0 && saved >= 0);
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(dup2(fd, 2), 2);
    snprintf(env, sizeof(env), "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
    setenv("JOURNAL_STREAM", env, 1);
    assert_int_equal(dip_log_under_journald(), 1);
    /* No native socket there: the stream line (test_journal_native). */
    dip_log_journal_socket("/nonexistent/journal/socket");
    dip_log_setup("test", DIP_LOG_DEBUG, 1);
    dip_log(DIP_LOG_WARNING, NULL, "under journald");
    snprintf(env, sizeof(env), "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino + 1);
    setenv("JOURNAL_STREAM", env, 1);
    assert_int_equal(dip_log_under_journald(), 0);
    dip_log_setup("test", DIP_LOG_DEBUG, 1);
    dip_log(DIP_LOG_WARNING, NULL, "not under journald");
    unsetenv("JOURNAL_STREAM");
    dip_log_journal_socket("/run/systemd/journal/socket");
    assert_int_equal(dup2(saved, 2), 2);
    close(saved);
    n = pread(fd, out, sizeof(out) - 1, 0);
    assert_true(n >= 0);
    out[n] = '\0';
    close(fd);
    unlink(path);
    assert_int_equal(lines(out), 2);
    assert_int_equal(strncmp(out, "<4>{", 4), 0);
    assert_non_null(strstr(out, "\"msg\":\"under journald\"}\n{"));
    dip_log_setup("test", DIP_LOG_INFO, 0);
}

/* Under journald an event goes to the journal's native socket, its fields
 * as journal fields (a value with a line break in the binary form); when
 * the socket is not there, the line goes to stderr instead. */
static void test_journal_native(void **state)
{
    char path[512], sock[512], env[64], dgram[8192];
    int fd = mkstemp(it_tmp_name(path, sizeof(path), "dip-log-XXXXXX")),
        saved = dup(2),
        js = mkstemp(it_tmp_name(sock, sizeof(sock), "dip-journal-XXXXXX"));
    struct sockaddr_un sun;
    struct stat st;
    ssize_t n;
    uint64_t len = 0;
    char *p;
    (void)state;
    assert_true(fd >= 0 && saved >= 0 && js >= 0);
    close(js);
    unlink(sock);
    js = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    assert_true(strlen(sock) < sizeof(sun.sun_path));
    memcpy(sun.sun_path, sock, strlen(sock) + 1);
    assert_int_equal(bind(js, (struct sockaddr *)&sun, sizeof(sun)), 0);
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(dup2(fd, 2), 2);
    snprintf(env, sizeof(env), "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
    setenv("JOURNAL_STREAM", env, 1);
    dip_log_journal_socket(sock);
    dip_log_setup("test", DIP_LOG_DEBUG, 1);
    dip_log_fields(DIP_LOG_WARNING, "64b000000000000000000001",
                   DIP_LOG_FIELDS(DIP_LOG_NUM("worker_pid", 42),
                                  DIP_LOG_STR("by", "uid 1000")),
                   "two\nlines");
    n = recv(js, dgram, sizeof(dgram) - 1, MSG_DONTWAIT);
    /* The binary length holds NUL bytes: searched with memmem. */
    assert_true(n > 0);
    assert_non_null(
        memmem(dgram, (size_t)n, "PRIORITY=4\n", strlen("PRIORITY=4\n")));
    assert_non_null(memmem(dgram, (size_t)n, "SYSLOG_IDENTIFIER=test\n",
                           strlen("SYSLOG_IDENTIFIER=test\n")));
    assert_non_null(memmem(dgram, (size_t)n,
                           "IMPORT_ID=64b000000000000000000001\n",
                           strlen("IMPORT_ID=64b000000000000000000001\n")));
    assert_non_null(
        memmem(dgram, (size_t)n, "WORKER_PID=42\n", strlen("WORKER_PID=42\n")));
    assert_non_null(
        memmem(dgram, (size_t)n, "BY=uid 1000\n", strlen("BY=uid 1000\n")));
    /* MESSAGE\n, 9 as 64-bit little-endian, the bytes, \n */
    p = memmem(dgram, (size_t)n, "MESSAGE\n", 8);
    assert_non_null(p);
    for (int i = 0; i < 8; i++)
        len |= (uint64_t)(unsigned char)p[8 + i] << (8 * i);
    assert_int_equal(len, 9);
    assert_memory_equal(p + 16, "two\nlines\n", 10);

    /* No journal socket: the stream, with the prefix. */
    close(js);
    unlink(sock);
    dip_log(DIP_LOG_ERR, NULL, "fallback");
    unsetenv("JOURNAL_STREAM");
    dip_log_journal_socket("/run/systemd/journal/socket");
    assert_int_equal(dup2(saved, 2), 2);
    close(saved);
    n = pread(fd, out, sizeof(out) - 1, 0);
    assert_true(n >= 0);
    out[n] = '\0';
    close(fd);
    unlink(path);
    assert_int_equal(lines(out), 1);
    assert_int_equal(strncmp(out, "<3>{", 4), 0);
    assert_non_null(strstr(out, "\"msg\":\"fallback\""));
    dip_log_setup("test", DIP_LOG_INFO, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kv_plain),
        cmocka_unit_test(test_kv_cannot_forge),
        cmocka_unit_test(test_kv_long_message),
        cmocka_unit_test(test_json_one_line),
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_journald),
        cmocka_unit_test(test_journal_native),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
