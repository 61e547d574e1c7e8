/*
 * Tests sup_notify against real datagram sockets standing in for systemd: a
 * socket bound to a file path and one in the abstract namespace receive the
 * exact bytes of each message; without NOTIFY_SOCKET nothing is sent; the
 * watchdog interval applies only to the process WATCHDOG_PID names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "sup_notify.h"
#include "it_tmp.h"

typedef struct listener {
    char dir[256];
    char path[512];
    int fd;
} listener_t;

static void clear_env(void)
{
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
}

/* Binds a datagram socket; name "@x" is abstract, anything else a file in a
 * fresh temporary directory. Sets NOTIFY_SOCKET to its address. */
static void listen_on(listener_t *l, const char *abstract)
{
    struct sockaddr_un a;
    socklen_t alen;
    memset(l, 0, sizeof(*l));
    memset(&a, 0, sizeof(a));
    a.sun_family = AF_UNIX;
    l->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(l->fd >= 0);
    if (abstract) {
        snprintf(l->path, sizeof(l->path), "@%s-%ld", abstract, (long)getpid());
        memcpy(a.sun_path + 1, l->path + 1, strlen(l->path) - 1);
        alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
                           strlen(l->path));
    } else {
        snprintf(l->dir, sizeof(l->dir), "%s/sup-notify-XXXXXX", it_tmpdir());
        assert_non_null(mkdtemp(l->dir));
        snprintf(l->path, sizeof(l->path), "%s/notify", l->dir);
        memcpy(a.sun_path, l->path, strlen(l->path) + 1);
        alen = (socklen_t)sizeof(a);
    }
    assert_int_equal(bind(l->fd, (struct sockaddr *)&a, alen), 0);
    assert_int_equal(setenv("NOTIFY_SOCKET", l->path, 1), 0);
}

static void listen_close(listener_t *l)
{
    close(l->fd);
    if (l->dir[0]) {
        unlink(l->path);
        rmdir(l->dir);
    }
    clear_env();
}

/* The next datagram, NUL-terminated; "" when none is waiting. */
static const char *next_message(listener_t *l, char *buf, size_t len)
{
    ssize_t n = recv(l->fd, buf, len - 1, MSG_DONTWAIT);
    if (n < 0) {
        assert_int_equal(errno, EAGAIN);
        n = 0;
    }
    buf[n] = '\0';
    return buf;
}

static void check_all_messages(listener_t *l)
{
    sup_notify_t *n = sup_notify_new();
    char buf[2048];
    assert_non_null(n);
    assert_int_equal(sup_notify_enabled(n), 1);
    assert_int_equal(sup_notify_ready(n), 0);
    assert_string_equal(next_message(l, buf, sizeof(buf)), "READY=1");
    assert_int_equal(
        sup_notify_status(n, "%d imports running, %s", 3, "0 queued"), 0);
    assert_string_equal(next_message(l, buf, sizeof(buf)),
                        "STATUS=3 imports running, 0 queued");
    assert_int_equal(sup_notify_status(n, "line one\nline two"), 0);
    assert_string_equal(next_message(l, buf, sizeof(buf)),
                        "STATUS=line one line two");
    assert_int_equal(sup_notify_watchdog(n), 0);
    assert_string_equal(next_message(l, buf, sizeof(buf)), "WATCHDOG=1");
    assert_int_equal(sup_notify_stopping(n), 0);
    assert_string_equal(next_message(l, buf, sizeof(buf)), "STOPPING=1");
    assert_string_equal(next_message(l, buf, sizeof(buf)), "");
    sup_notify_destroy(&n);
    assert_null(n);
}

static void test_path_socket(void **state)
{
    listener_t l;
    (void)state;
    listen_on(&l, NULL);
    check_all_messages(&l);
    listen_close(&l);
}

static void test_abstract_socket(void **state)
{
    listener_t l;
    (void)state;
    listen_on(&l, "sup-notify-test");
    check_all_messages(&l);
    listen_close(&l);
}

static void test_long_status_is_truncated_not_dropped(void **state)
{
    listener_t l;
    sup_notify_t *n;
    char big[3000], buf[4096];
    (void)state;
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    listen_on(&l, NULL);
    n = sup_notify_new();
    assert_int_equal(sup_notify_status(n, "%s", big), 0);
    next_message(&l, buf, sizeof(buf));
    assert_int_equal(strlen(buf), 1023);
    assert_memory_equal(buf, "STATUS=xxx", 10);
    sup_notify_destroy(&n);
    listen_close(&l);
}

static void test_unset_is_a_no_op(void **state)
{
    listener_t l;
    sup_notify_t *n;
    uint64_t usec = 42;
    char buf[64];
    (void)state;
    listen_on(&l, NULL);
    unsetenv("NOTIFY_SOCKET");
    setenv("WATCHDOG_USEC", "30000000", 1);
    n = sup_notify_new();
    assert_non_null(n);
    assert_int_equal(sup_notify_enabled(n), 0);
    assert_int_equal(sup_notify_ready(n), 0);
    assert_int_equal(sup_notify_status(n, "x"), 0);
    assert_int_equal(sup_notify_watchdog(n), 0);
    assert_int_equal(sup_notify_stopping(n), 0);
    assert_int_equal(sup_notify_watchdog_usec(n, &usec), 0);
    assert_int_equal(usec, 0);
    /* Nothing reached the socket that was bound but not named. */
    assert_string_equal(next_message(&l, buf, sizeof(buf)), "");
    sup_notify_destroy(&n);
    /* A NULL handle is the same no-op. */
    assert_int_equal(sup_notify_ready(NULL), 0);
    assert_int_equal(sup_notify_enabled(NULL), 0);
    sup_notify_destroy(NULL);
    listen_close(&l);
}

static void test_bad_socket_reports_errors(void **state)
{
    sup_notify_t *n;
    (void)state;
    setenv("NOTIFY_SOCKET", "relative/path", 1);
    n = sup_notify_new();
    assert_int_equal(sup_notify_enabled(n), 1);
    assert_int_equal(sup_notify_ready(n), -EINVAL);
    assert_int_equal(sup_notify_status(n, "x"), -EINVAL);
    sup_notify_destroy(&n);
    /* A path with nothing listening fails at send time with its errno. */
    setenv("NOTIFY_SOCKET", "/nonexistent-dir/notify", 1);
    n = sup_notify_new();
    assert_int_equal(sup_notify_ready(n), -ENOENT);
    sup_notify_destroy(&n);
    clear_env();
}

static void test_watchdog_usec(void **state)
{
    listener_t l;
    sup_notify_t *n;
    uint64_t usec = 0;
    char pid[32];
    (void)state;
    listen_on(&l, NULL);
    snprintf(pid, sizeof(pid), "%ld", (long)getpid());

    setenv("WATCHDOG_USEC", "30000000", 1);
    setenv("WATCHDOG_PID", pid, 1);
    n = sup_notify_new();
    assert_int_equal(sup_notify_watchdog_usec(n, &usec), 1);
    assert_int_equal(usec, 30000000);
    sup_notify_destroy(&n);

    /* Meant for another process (a parent that exec'd us kept it). */
    setenv("WATCHDOG_PID", "1", 1);
    n = sup_notify_new();
    assert_int_equal(sup_notify_watchdog_usec(n, &usec), 0);
    assert_int_equal(usec, 0);
    sup_notify_destroy(&n);

    /* Without WATCHDOG_PID it applies to us. */
    unsetenv("WATCHDOG_PID");
    n = sup_notify_new();
    assert_int_equal(sup_notify_watchdog_usec(n, &usec), 1);
    assert_int_equal(usec, 30000000);
    sup_notify_destroy(&n);

    setenv("WATCHDOG_USEC", "30s", 1);
    n = sup_notify_new();
    assert_int_equal(sup_notify_watchdog_usec(n, &usec), -EINVAL);
    assert_int_equal(usec, 0);
    sup_notify_destroy(&n);

    setenv("WATCHDOG_USEC", "1000", 1);
    setenv("WATCHDOG_PID", "-5", 1);
    n = sup_notify_new();
    assert_int_equal(sup_notify_watchdog_usec(n, &usec), -EINVAL);
    sup_notify_destroy(&n);

    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    n = sup_notify_new();
    assert_int_equal(sup_notify_watchdog_usec(n, &usec), 0);
    sup_notify_destroy(&n);
    listen_close(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_socket),
        cmocka_unit_test(test_abstract_socket),
        cmocka_unit_test(test_long_status_is_truncated_not_dropped),
        cmocka_unit_test(test_unset_is_a_no_op),
        cmocka_unit_test(test_bad_socket_reports_errors),
        cmocka_unit_test(test_watchdog_usec),
    };
    clear_env();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
