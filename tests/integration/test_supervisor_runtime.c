/*
 * The runtime folder is not trusted as found: a folder writable by others
 * or by its group, one that belongs to another user, or a symbolic link in
 * its place makes the supervisor refuse to start with exit 78 and exactly one
 * line saying why; a folder of its own starts it, and the worker-events
 * socket is born owner-only even under a umask of 0. dealimportctl
 * refuses a folder that a stranger made where anyone may make one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dip_exit.h"
#include "it_ctl.h"
#include "it_env.h"
#include "it_skip.h"
#include "it_tmp.h"

static it_env_t env;
static char base[256], logpath[512], setting[1024];

/* Waits for a supervisor that should stop by itself; its wait status. */
static int wait_exit(pid_t pid)
{
    int st = it_process_stop(pid, 0, 20000);
    assert_true(st >= 0);
    return st;
}

/* Starts the supervisor on dir; asserts exit 78 and one line holding
 * want. */
static void refused(const char *dir, const char *want)
{
    const char *extra[] = {setting, NULL};
    char *log;
    int st, lines = 0;
    snprintf(setting, sizeof(setting), "DEALIMPORT_RUNTIME_DIR=%s", dir);
    st = wait_exit(it_supervisor_start(&env, extra, logpath));
    log = it_ctl_slurp(logpath);
    assert_non_null(log);
    print_message("%s", log);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), DIP_EXIT_CONFIG);
    for (const char *p = log; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 1);
    assert_non_null(strstr(log, "DEALIMPORT_RUNTIME_DIR"));
    assert_non_null(strstr(log, want));
    free(log);
}

static void test_world_writable(void **state)
{
    char dir[512];
    (void)state;
    snprintf(dir, sizeof(dir), "%s/world", base);
    assert_int_equal(mkdir(dir, 0700), 0);
    assert_int_equal(chmod(dir, 0777), 0);
    refused(dir, "is writable by others (mode 0777)");
    /* The sticky bit does not make it ours alone. */
    assert_int_equal(chmod(dir, 01777), 0);
    refused(dir, "is writable by others (mode 1777)");
}

static void test_group_writable(void **state)
{
    char dir[512];
    (void)state;
    snprintf(dir, sizeof(dir), "%s/group", base);
    assert_int_equal(mkdir(dir, 0700), 0);
    assert_int_equal(chmod(dir, 0770), 0);
    refused(dir, "is writable by its group (mode 0770)");
}

static void test_symlink(void **state)
{
    char dir[512], link[512];
    (void)state;
    snprintf(dir, sizeof(dir), "%s/real", base);
    snprintf(link, sizeof(link), "%s/link", base);
    assert_int_equal(mkdir(dir, 0700), 0);
    assert_int_equal(symlink(dir, link), 0);
    refused(link, "is a symbolic link");
}

static void test_other_owner(void **state)
{
    char dir[512], want[64];
    (void)state;
    if (geteuid() != 0)
        IT_SKIP_MACHINE("skipped: only root can give a folder to another "
                        "user\n");
    snprintf(dir, sizeof(dir), "%s/theirs", base);
    assert_int_equal(mkdir(dir, 0700), 0);
    assert_int_equal(chown(dir, 65534, 65534), 0);
    snprintf(want, sizeof(want),
             "belongs to uid 65534, not to the "
             "supervisor's user (uid 0)");
    refused(dir, want);
}

static void test_own_folder_starts(void **state)
{
    const char *extra[] = {setting, NULL};
    char dir[512], path[1024];
    struct stat st;
    mode_t old;
    pid_t sup;
    int ws = -1;
    (void)state;
    snprintf(dir, sizeof(dir), "%s/ours", base);
    snprintf(setting, sizeof(setting), "DEALIMPORT_RUNTIME_DIR=%s", dir);
    snprintf(path, sizeof(path), "%s/events.ipc", dir);
    /* A folder the supervisor makes itself, under the loosest umask. */
    old = umask(0);
    sup = it_supervisor_start(&env, extra, logpath);
    umask(old);
    assert_true(sup > 0);
    for (int i = 0; i < 1000 && stat(path, &st) < 0; i++)
        usleep(10000);
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 077, 0);
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0700);
    ws = it_process_stop(sup, SIGTERM, 30000);
    assert_true(ws >= 0 && WIFEXITED(ws));
    assert_int_equal(WEXITSTATUS(ws), 0);
}

/* dealimportctl will not talk into a folder a stranger made where anyone
 * may (a neighbour who made /tmp/dealimport-<uid> first and listens in
 * it): exit 77 and a sentence, before any connect. */
static void test_ctl_refuses_strangers_folder(void **state)
{
    static const char *const args[] = {"status", NULL};
    char tmpish[512], theirs[1024], out[1024], err[1024];
    int rc;
    (void)state;
    if (geteuid() != 0)
        IT_SKIP_MACHINE("skipped: only root can give a folder to another "
                        "user\n");
    snprintf(tmpish, sizeof(tmpish), "%s/tmpish", base);
    snprintf(theirs, sizeof(theirs), "%s/dealimport-0", tmpish);
    assert_int_equal(mkdir(tmpish, 0700), 0);
    assert_int_equal(chmod(tmpish, 01777), 0);
    assert_int_equal(mkdir(theirs, 0700), 0);
    assert_int_equal(chown(theirs, 65534, 65534), 0);
    rc = it_ctl_run(theirs, args, out, sizeof(out), err, sizeof(err), 20000);
    print_message("dealimportctl status (exit %d): %s", rc, err);
    assert_int_equal(rc, DIP_EXIT_NOPERM);
    assert_non_null(strstr(err, "refusing the control socket's folder"));
    assert_non_null(strstr(err, "belongs to uid 65534"));
}

static int setup(void **state)
{
    (void)state;
    snprintf(base, sizeof(base), "%s/it-runtime-XXXXXX", it_tmpdir());
    if (mkdtemp(base) == NULL)
        return -1;
    snprintf(logpath, sizeof(logpath), "%s.log", base);
    return 0;
}

static int teardown(void **state)
{
    char cmd[512];
    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
    unlink(logpath);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_world_writable),
        cmocka_unit_test(test_group_writable),
        cmocka_unit_test(test_symlink),
        cmocka_unit_test(test_other_owner),
        cmocka_unit_test(test_own_folder_starts),
        cmocka_unit_test(test_ctl_refuses_strangers_folder),
    };
    int rc = it_env_init(&env, "runtime");
    if (rc)
        return rc;
    rc = cmocka_run_group_tests(tests, setup, teardown);
    it_env_release(&env);
    return rc;
}
