/*
 * Which runtime folders the supervisor and dealimportctl trust with their
 * sockets: the decision on stat values (a table), then the same on real
 * folders, a stranger's among them when the tests run as root.
 *
 * Failure classes: a neighbour on the machine (13) who makes the /tmp
 * fallback folder first, or leaves it writable, is refused by both sides;
 * a service's folder under /run that belongs to the service user is
 * trusted by an operator's ctl; a symbolic link in the folder's place is
 * refused (the test for a link checks lstat, never stat).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dip_runtime.h"
#include "it_skip.h"
#include "it_tmp.h"

typedef struct {
    mode_t dir_mode;
    uid_t dir_uid;
    mode_t parent_mode;
    uid_t me;
    dip_runtime_role_t role;
    const char *want; /* NULL: trusted; else a part of the reason */
} row_t;

#define DIR_ S_IFDIR
#define OWNER DIP_RUNTIME_OWNER
#define PEER DIP_RUNTIME_PEER

static void test_verdict_table(void **state)
{
    static const row_t rows[] = {
        /* the supervisor: its own folder, no one else may write */
        {DIR_ | 0700, 1000, DIR_ | 01777, 1000, OWNER, NULL},
        {DIR_ | 0755, 1000, DIR_ | 0755, 1000, OWNER, NULL},
        {DIR_ | 0700, 65534, DIR_ | 01777, 1000, OWNER,
         "belongs to uid 65534, not to the supervisor's user (uid 1000)"},
        {DIR_ | 0700, 65534, DIR_ | 0755, 0, OWNER,
         "belongs to uid 65534, not to the supervisor's user (uid 0)"},
        {DIR_ | 0777, 1000, DIR_ | 0755, 1000, OWNER,
         "is writable by others (mode 0777)"},
        {DIR_ | 01777, 1000, DIR_ | 0755, 1000, OWNER,
         "is writable by others (mode 1777)"},
        {DIR_ | 0770, 1000, DIR_ | 0755, 1000, OWNER,
         "is writable by its group (mode 0770)"},
        {S_IFLNK | 0777, 1000, DIR_ | 01777, 1000, OWNER, "is a symbolic link"},
        {S_IFREG | 0600, 1000, DIR_ | 01777, 1000, OWNER, "is not a folder"},
        /* the ctl: its own or root's anywhere, a stranger's only where
         * strangers cannot make folders */
        {DIR_ | 0700, 1000, DIR_ | 01777, 1000, PEER, NULL},
        {DIR_ | 0750, 0, DIR_ | 01777, 1000, PEER, NULL},
        {DIR_ | 0750, 998, DIR_ | 0755, 1000, PEER, NULL}, /* /run/dealimport */
        {DIR_ | 0750, 998, DIR_ | 0755, 0, PEER, NULL},
        {DIR_ | 0700, 65534, DIR_ | 01777, 1000, PEER,
         "belongs to uid 65534, neither yours (uid 1000) nor root's, in a "
         "folder that others may write (mode 1777)"},
        {DIR_ | 0700, 65534, DIR_ | 01777, 0, PEER,
         "neither yours (uid 0) nor root's"},
        {DIR_ | 0700, 65534, DIR_ | 0775, 1000, PEER,
         "in a folder that its group may write (mode 0775)"},
        {DIR_ | 0777, 1000, DIR_ | 01777, 1000, PEER,
         "is writable by others (mode 0777)"},
        {DIR_ | 0770, 998, DIR_ | 0755, 1000, PEER,
         "is writable by its group (mode 0770)"},
        {S_IFLNK | 0777, 1000, DIR_ | 01777, 1000, PEER, "is a symbolic link"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct stat dir, parent;
        char why[256];
        const char *got;
        memset(&dir, 0, sizeof(dir));
        memset(&parent, 0, sizeof(parent));
        dir.st_mode = rows[i].dir_mode;
        dir.st_uid = rows[i].dir_uid;
        parent.st_mode = rows[i].parent_mode;
        got = dip_runtime_verdict(&dir, &parent, rows[i].me, rows[i].role, why,
                                  sizeof(why));
        if (rows[i].want == NULL && got != NULL)
            fail_msg("row %zu: refused: %s", i, got);
        if (rows[i].want != NULL &&
            (got == NULL || strstr(got, rows[i].want) == NULL))
            fail_msg("row %zu: want '%s', got '%s'", i, rows[i].want,
                     got ? got : "(trusted)");
    }
}

static char base[256];

static int setup(void **state)
{
    (void)state;
    snprintf(base, sizeof(base), "%s/test-dip-runtime-XXXXXX", it_tmpdir());
    return mkdtemp(base) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[512];
    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_real_folders(void **state)
{
    char own[512], link[512], world[512], why[512];
    (void)state;
    snprintf(own, sizeof(own), "%s/own", base);
    snprintf(link, sizeof(link), "%s/link", base);
    snprintf(world, sizeof(world), "%s/world", base);
    assert_int_equal(mkdir(own, 0700), 0);
    assert_int_equal(
        dip_runtime_trusted(own, DIP_RUNTIME_OWNER, why, sizeof(why)), 0);
    assert_int_equal(
        dip_runtime_trusted(own, DIP_RUNTIME_PEER, why, sizeof(why)), 0);
    /* a trailing slash names the same folder */
    strcat(own, "/");
    assert_int_equal(
        dip_runtime_trusted(own, DIP_RUNTIME_PEER, why, sizeof(why)), 0);
    assert_int_equal(symlink(own, link), 0);
    assert_int_equal(
        dip_runtime_trusted(link, DIP_RUNTIME_PEER, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "is a symbolic link"));
    assert_int_equal(mkdir(world, 0700), 0);
    assert_int_equal(chmod(world, 01777), 0);
    assert_int_equal(
        dip_runtime_trusted(world, DIP_RUNTIME_OWNER, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "is writable by others (mode 1777)"));
    assert_int_equal(dip_runtime_trusted("/nonexistent-folder-of-the-test",
                                         DIP_RUNTIME_PEER, why, sizeof(why)),
                     -1);
    assert_non_null(strstr(why, "cannot look at"));
}

/* A stranger's folder in a folder anyone may write, as a neighbour who
 * made /tmp/dealimport-<uid> first leaves it: only root can hand a folder
 * to another user, so elsewhere it is skipped, saying so. */
static void test_strangers_folder(void **state)
{
    char world[512], theirs[1024], why[512];
    (void)state;
    if (geteuid() != 0)
        IT_SKIP_MACHINE("skipped: only root can give a folder to another "
                        "user (the table above covers the decision)\n");
    snprintf(world, sizeof(world), "%s/tmpish", base);
    snprintf(theirs, sizeof(theirs), "%s/dealimport-0", world);
    assert_int_equal(mkdir(world, 0700), 0);
    assert_int_equal(chmod(world, 01777), 0);
    assert_int_equal(mkdir(theirs, 0700), 0);
    assert_int_equal(chown(theirs, 65534, 65534), 0);
    assert_int_equal(
        dip_runtime_trusted(theirs, DIP_RUNTIME_PEER, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "belongs to uid 65534"));
    /* the same folder where strangers cannot make folders is the
     * service's own, as /run/dealimport */
    assert_int_equal(chmod(world, 0755), 0);
    assert_int_equal(
        dip_runtime_trusted(theirs, DIP_RUNTIME_PEER, why, sizeof(why)), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verdict_table),
        cmocka_unit_test_setup_teardown(test_real_folders, setup, teardown),
        cmocka_unit_test_setup_teardown(test_strangers_folder, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
