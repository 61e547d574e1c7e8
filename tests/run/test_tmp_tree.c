/*
 * tmp_tree: a test folder holding files, a socket, nested folders and
 * symlinks that point out of it is removed whole, and what the symlinks
 * point at is untouched; a symlink given as the folder is refused.
 *
 * Failure classes: a neighbour on the machine (13) who plants a symlink
 * in a test's folder gets the symlink removed, never its target; tests
 * that cannot fail (14): every case asserts what exists afterwards, on
 * both sides of the symlinks.
 */
#include "it_tmp.h"
#include "tmp_tree.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static char root[512];

static int setup(void **state)
{
    (void)state;
    snprintf(root, sizeof(root), "%s/tmp-tree-XXXXXX", it_tmpdir());
    return mkdtemp(root) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return tmp_tree_remove(root) == 0 ? 0 : -1;
}

static void put(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "x", 1), 1);
    close(fd);
}

static int exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static void test_removes_all_follows_nothing(void **state)
{
    char dir[600], out[600], p[700], q[700];
    struct sockaddr_un sa;
    int s;
    (void)state;
    snprintf(dir, sizeof(dir), "%s/test", root);
    snprintf(out, sizeof(out), "%s/outside", root);
    assert_int_equal(mkdir(dir, 0700), 0);
    assert_int_equal(mkdir(out, 0700), 0);
    snprintf(p, sizeof(p), "%s/kept", out);
    put(p);

    snprintf(p, sizeof(p), "%s/sup.log", dir);
    put(p);
    snprintf(p, sizeof(p), "%s/rt", dir);
    assert_int_equal(mkdir(p, 0700), 0);
    snprintf(p, sizeof(p), "%s/rt/deep", dir);
    assert_int_equal(mkdir(p, 0500), 0);
    snprintf(p, sizeof(p), "%s/rt/supervisor.lock", dir);
    put(p);
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    snprintf(p, sizeof(p), "%s/rt/control.ipc", dir);
    assert_true(strlen(p) < sizeof(sa.sun_path));
    memcpy(sa.sun_path, p, strlen(p) + 1);
    s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(s >= 0);
    assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(s);
    /* a symlink to a folder, one to a file, one dangling */
    snprintf(p, sizeof(p), "%s/rt/to-outside", dir);
    assert_int_equal(symlink(out, p), 0);
    snprintf(p, sizeof(p), "%s/to-file", dir);
    snprintf(q, sizeof(q), "%s/kept", out);
    assert_int_equal(symlink(q, p), 0);
    snprintf(p, sizeof(p), "%s/rt/deep/../dangling", dir);
    assert_int_equal(symlink("/nonexistent/x", p), 0);

    assert_int_equal(tmp_tree_remove(dir), 0);
    assert_false(exists(dir));
    snprintf(p, sizeof(p), "%s/kept", out);
    assert_true(exists(p));
    assert_true(exists(out));
}

static void test_refuses_a_symlink_as_the_folder(void **state)
{
    char out[600], link[600], p[700];
    int rc;
    (void)state;
    snprintf(out, sizeof(out), "%s/target", root);
    snprintf(link, sizeof(link), "%s/link", root);
    assert_int_equal(mkdir(out, 0700), 0);
    snprintf(p, sizeof(p), "%s/kept", out);
    put(p);
    assert_int_equal(symlink(out, link), 0);
    rc = tmp_tree_remove(link);
    assert_true(rc == -ELOOP || rc == -ENOTDIR);
    assert_true(exists(p));
    assert_true(exists(link));
}

static void test_absent_folder(void **state)
{
    char p[600];
    (void)state;
    snprintf(p, sizeof(p), "%s/absent", root);
    assert_int_equal(tmp_tree_remove(p), -ENOENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_removes_all_follows_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_refuses_a_symlink_as_the_folder,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_absent_folder, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
