/*
 * run_tmp: how CTest starts every test. It makes the test a folder of its
 * own under TMPDIR (else /tmp), runs the test with TMPDIR naming that folder,
 * and when the test passes (exit 0) or is skipped (77) removes the folder
 * with all the test made in it: logs, inputs, supervisors' runtime folders
 * with their sockets and lock files. A test that fails keeps its folder,
 * and the runner says where it is. A test killed by CTest's timeout (CTest
 * kills the runner and the test, children too) leaves its folder; the next
 * run makes new ones (mkdtemp), so nothing of it is met again.
 *
 *   run_tmp NAME PROGRAM [ARG...]
 *
 * NAME is the test's CTest name; its last part names the folder. The
 * runner exits as the test did (a test killed by a signal is killed by the
 * same signal here, without a core), or 1 when a passed test's folder could
 * not be removed (something still writes in it, or made it unremovable).
 */
#include "tmp_tree.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Folder names stay short: a supervisor's ipc:// socket path inside must
 * fit in 107 bytes. */
#define NAME_MAX_LEN 24

static volatile sig_atomic_t child = -1;

static void forward(int sig)
{
    if (child > 0)
        kill((pid_t)child, sig);
}

/* "integration/test_pickup" -> "pickup": the last part, without test_,
 * cut, and only letters, digits, '-' and '_'. */
static void short_name(const char *name, char *out, size_t len)
{
    const char *s = strrchr(name, '/');
    size_t n = 0;
    s = s ? s + 1 : name;
    if (strncmp(s, "test_", 5) == 0 && s[5] != '\0')
        s += 5;
    for (; *s != '\0' && n + 1 < len && n < NAME_MAX_LEN; s++)
        out[n++] = (strchr("-_", *s) != NULL || (*s >= 'a' && *s <= 'z') ||
                    (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9'))
                       ? *s
                       : '_';
    out[n] = '\0';
}

int main(int argc, char **argv)
{
    const char *base = getenv("TMPDIR");
    char name[NAME_MAX_LEN + 1], dir[4096];
    struct sigaction sa;
    int st = 0, rc;
    pid_t pid;

    if (argc < 3) {
        fprintf(stderr, "usage: run_tmp NAME PROGRAM [ARG...]\n");
        return 64;
    }
    if (base == NULL || *base == '\0')
        base = "/tmp";
    short_name(argv[1], name, sizeof(name));
    if (snprintf(dir, sizeof(dir), "%s/%s.XXXXXX", base, name) >=
            (int)sizeof(dir) ||
        mkdtemp(dir) == NULL) {
        fprintf(stderr, "run_tmp: cannot make a folder in '%s': %s\n", base,
                strerror(errno));
        return 1;
    }
    /* Others may pass through, not list: a test that drops to another uid
     * (a neighbour on the machine) reaches the folder it made for it. */
    if (chmod(dir, 0711) < 0 || setenv("TMPDIR", dir, 1) < 0) {
        fprintf(stderr, "run_tmp: %s\n", strerror(errno));
        return 1;
    }

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = forward;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    pid = fork();
    if (pid < 0) {
        fprintf(stderr, "run_tmp: fork: %s\n", strerror(errno));
        return 1;
    }
    if (pid == 0) {
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        execvp(argv[2], argv + 2);
        fprintf(stderr, "run_tmp: cannot run '%s': %s\n", argv[2],
                strerror(errno));
        _exit(127);
    }
    child = pid;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;

    if (WIFEXITED(st) && (WEXITSTATUS(st) == 0 || WEXITSTATUS(st) == 77)) {
        rc = tmp_tree_remove(dir);
        if (rc < 0) {
            fprintf(stderr,
                    "run_tmp: %s passed, but its folder '%s' could not be "
                    "removed: %s\n",
                    argv[1], dir, strerror(-rc));
            return 1;
        }
        return WEXITSTATUS(st);
    }
    if (WIFSIGNALED(st))
        fprintf(stderr,
                "run_tmp: %s was killed by signal %d; its files are kept in "
                "'%s'\n",
                argv[1], WTERMSIG(st), dir);
    else
        fprintf(stderr,
                "run_tmp: %s failed (exit %d); its files are kept in '%s'\n",
                argv[1], WEXITSTATUS(st), dir);
    if (WIFSIGNALED(st)) {
        struct rlimit none = {0, 0};
        setrlimit(RLIMIT_CORE, &none);
        signal(WTERMSIG(st), SIG_DFL);
        raise(WTERMSIG(st));
        return 128 + WTERMSIG(st);
    }
    return WEXITSTATUS(st);
}
