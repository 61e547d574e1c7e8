/*
 * sup_loop: the core's wiring and its end. A loop is made and torn down
 * against a database port nothing serves (making one calls no database),
 * a second supervisor on the same runtime folder is refused while the
 * first holds it, a worker program that cannot run and an unsafe runtime
 * folder are refused with the setting's name, and SIGTERM with nothing
 * running ends the loop with status 0. The rooms' rules have tests of
 * their own (test_sup_lease, test_sup_inbox, test_sup_end, test_sup_claim,
 * test_sup_slot, test_sup_start).
 *
 * Failure classes: a database that is away at start (the indexes cannot be
 * made) does not stop the loop from serving or from stopping; a second
 * supervisor started by mistake on one host is the lock row; an operator's
 * unsafe folder or wrong worker path is a refusal at start, not a fault
 * later.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dip_log.h"
#include "dip_mongo_io.h"
#include "sup_loop.h"
#include "it_tmp.h"

typedef struct fixture {
    char dir[256];
    dip_config_t cfg;
} fixture_t;

static int free_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = 0;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));
    char uri[256], run[512];
    if (fx == NULL)
        return -1;
    snprintf(fx->dir, sizeof(fx->dir), "%s/test-sup-loop-XXXXXX", it_tmpdir());
    if (mkdtemp(fx->dir) == NULL)
        return -1;
    snprintf(run, sizeof(run), "%s/run", fx->dir);
    dip_config_init(&fx->cfg);
    snprintf(uri, sizeof(uri),
             "mongodb://127.0.0.1:%d/none?serverSelectionTimeoutMS=200&"
             "connectTimeoutMS=200",
             free_port());
    fx->cfg.mongodb_uri = strdup(uri);
    fx->cfg.runtime_dir = strdup(run);
    fx->cfg.worker_path = strdup("/bin/true");
    fx->cfg.max_workers = 2;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    char cmd[512];
    dip_config_release(&fx->cfg);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
    if (system(cmd) != 0)
        return -1;
    free(fx);
    return 0;
}

static void test_one_per_folder(void **state)
{
    fixture_t *fx = *state;
    char err[512] = "";
    sup_loop_t *a, *b;
    struct stat st;
    a = sup_loop_new(&fx->cfg, NULL, "/bin/true", err, sizeof(err));
    if (a == NULL)
        fail_msg("sup_loop_new: %s", err);
    /* made owner-only */
    assert_int_equal(stat(fx->cfg.runtime_dir, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0700);
    b = sup_loop_new(&fx->cfg, NULL, "/bin/true", err, sizeof(err));
    assert_null(b);
    assert_non_null(strstr(err, "another supervisor is running with runtime "
                                "directory"));
    sup_loop_destroy(&a);
    assert_null(a);
    /* the folder is free again */
    b = sup_loop_new(&fx->cfg, NULL, "/bin/true", err, sizeof(err));
    if (b == NULL)
        fail_msg("sup_loop_new after the first one ended: %s", err);
    sup_loop_destroy(&b);
    sup_loop_destroy(&b); /* accepts NULL */
}

static void test_refusals(void **state)
{
    fixture_t *fx = *state;
    dip_config_t cfg = fx->cfg;
    char err[512] = "", nox[512];
    FILE *f;
    snprintf(nox, sizeof(nox), "%s/not-executable", fx->dir);
    f = fopen(nox, "w");
    assert_non_null(f);
    fclose(f);
    cfg.worker_path = nox;
    assert_null(sup_loop_new(&cfg, NULL, "/bin/true", err, sizeof(err)));
    assert_non_null(strstr(err, "DEALIMPORT_WORKER_PATH: cannot execute"));
    cfg.worker_path = fx->cfg.worker_path;
    assert_int_equal(chmod(fx->dir, 0777), 0);
    cfg.runtime_dir = fx->dir;
    assert_null(sup_loop_new(&cfg, NULL, "/bin/true", err, sizeof(err)));
    assert_non_null(strstr(err, "DEALIMPORT_RUNTIME_DIR:"));
    assert_non_null(strstr(err, "writable by others"));
    assert_int_equal(chmod(fx->dir, 0700), 0);
}

static void test_sigterm_when_idle(void **state)
{
    fixture_t *fx = *state;
    char err[512] = "";
    sup_loop_t *loop;
    loop = sup_loop_new(&fx->cfg, NULL, "/bin/true", err, sizeof(err));
    if (loop == NULL)
        fail_msg("sup_loop_new: %s", err);
    /* blocked (main did it), so it waits on the loop's signalfd */
    assert_int_equal(kill(getpid(), SIGTERM), 0);
    assert_int_equal(sup_loop_run(loop), 0);
    sup_loop_destroy(&loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_one_per_folder, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sigterm_when_idle, setup,
                                        teardown),
    };
    sigset_t mask;
    /* as main.c does before any library starts a thread */
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &mask, NULL);
    dip_mongo_init();
    dip_log_setup("test_sup_loop", DIP_LOG_WARNING, 0);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
