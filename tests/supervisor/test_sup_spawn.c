/*
 * Tests sup_spawn with real children (/bin/sleep, /bin/sh): a failed exec or
 * setup step comes back as a sentence and leaves no zombie; a started child
 * has its own process group, an empty signal mask, default dispositions, no
 * inherited descriptors and the asked-for limits; the CPU limit kills with
 * SIGXCPU; the worker dies with its parent; wait statuses read as sentences.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sup_spawn.h"
#include "it_tmp.h"

/* argv strings must be writable (execve's type); -Wwrite-strings agrees. */
static char s_sleep[] = "sleep", s_30[] = "30", s_sh[] = "sh", s_c[] = "-c",
            s_name[] = "worker-name", s_busy[] = "while :; do :; done";
static char *const sleep_argv[] = {s_sleep, s_30, NULL};

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Waits up to timeout_ms for pid; returns 1 with *status, 0 on timeout. */
static int wait_bounded(pid_t pid, long timeout_ms, int *status)
{
    for (long waited = 0; waited <= timeout_ms; waited += 20) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid)
            return 1;
        assert_true(r == 0 || (r < 0 && errno == ECHILD));
        sleep_ms(20);
    }
    return 0;
}

static void kill_and_reap(pid_t pid)
{
    int st = 0;
    assert_int_equal(kill(pid, SIGKILL), 0);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGKILL);
}

static void assert_no_children(void)
{
    int st;
    assert_int_equal(waitpid(-1, &st, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

static void read_file(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "re");
    size_t n;
    assert_non_null(f);
    n = fread(buf, 1, len - 1, f);
    buf[n] = '\0';
    fclose(f);
}

/* The value after "Name:" in /proc/<pid>/status. */
static void status_field(pid_t pid, const char *name, char *out, size_t len)
{
    char path[512], text[8192], *p, *eol;
    snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
    read_file(path, text, sizeof(text));
    p = strstr(text, name);
    assert_non_null(p);
    p += strlen(name);
    while (*p == ' ' || *p == '\t')
        p++;
    eol = strchr(p, '\n');
    assert_non_null(eol);
    snprintf(out, len, "%.*s", (int)(eol - p), p);
}

/* "soft hard" of one line of /proc/<pid>/limits. */
static void limit_of(pid_t pid, const char *name, char *out, size_t len)
{
    char path[512], text[8192], soft[32], hard[32], *p;
    snprintf(path, sizeof(path), "/proc/%ld/limits", (long)pid);
    read_file(path, text, sizeof(text));
    p = strstr(text, name);
    assert_non_null(p);
    assert_int_equal(sscanf(p + strlen(name), "%31s %31s", soft, hard), 2);
    snprintf(out, len, "%s %s", soft, hard);
}

static void test_exec_failure(void **state)
{
    sup_spawn_opts_t o;
    char err[256] = "";
    (void)state;
    sup_spawn_opts_init(&o);
    o.path = "/nonexistent/dealimport-worker";
    o.argv = sleep_argv;
    assert_int_equal(sup_spawn_start(&o, err, sizeof(err)), -ENOENT);
    assert_string_equal(err, "cannot start worker "
                             "'/nonexistent/dealimport-worker': No such "
                             "file or directory");
    assert_no_children();

    /* A file that is not executable. */
    o.path = "/etc/passwd";
    assert_int_equal(sup_spawn_start(&o, err, sizeof(err)), -EACCES);
    assert_string_equal(err,
                        "cannot start worker '/etc/passwd': Permission denied");
    assert_no_children();
}

static void test_bad_options(void **state)
{
    sup_spawn_opts_t o;
    char err[256] = "";
    (void)state;
    sup_spawn_opts_init(&o);
    assert_int_equal(sup_spawn_start(&o, err, sizeof(err)), -EINVAL);
    assert_string_equal(err,
                        "cannot start worker '': no executable or argv given");
    o.path = "/bin/sleep";
    o.argv = sleep_argv;
    o.memory_mb = -1;
    assert_int_equal(sup_spawn_start(&o, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "cannot start worker '/bin/sleep': limits out of "
                             "range (memory -1 MB, cpu 0 s, files 256)");
    assert_no_children();
}

/* The supervisor's state a worker must not inherit: blocked signals (for its
 * signalfd), an ignored SIGPIPE, a descriptor without O_CLOEXEC. */
static void test_isolation(void **state)
{
    sup_spawn_opts_t o;
    sigset_t block, old;
    struct sigaction ign, old_pipe;
    char err[256] = "", buf[128], path[512];
    int leak;
    pid_t pid;
    DIR *d;
    struct dirent *e;
    int fds = 0;
    (void)state;

    sigemptyset(&block);
    sigaddset(&block, SIGCHLD);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGHUP);
    assert_int_equal(sigprocmask(SIG_BLOCK, &block, &old), 0);
    memset(&ign, 0, sizeof(ign));
    ign.sa_handler = SIG_IGN;
    assert_int_equal(sigaction(SIGPIPE, &ign, &old_pipe), 0);
    leak = open("/dev/null", O_RDONLY); /* no O_CLOEXEC, on purpose */
    assert_true(leak >= 3);

    sup_spawn_opts_init(&o);
    o.path = "/bin/sleep";
    o.argv = sleep_argv;
    o.memory_mb = 256;
    o.cpu_s = 7;
    o.nofile = 64;
    pid = sup_spawn_start(&o, err, sizeof(err));
    assert_true(pid > 0);
    assert_string_equal(err, "");

    assert_int_equal(getpgid(pid), pid);
    /* The child has exec'd: /proc shows sleep, not a copy of us. */
    status_field(pid, "Name:", buf, sizeof(buf));
    assert_string_equal(buf, "sleep");
    status_field(pid, "SigBlk:", buf, sizeof(buf));
    assert_string_equal(buf, "0000000000000000");
    status_field(pid, "SigIgn:", buf, sizeof(buf));
    assert_string_equal(buf, "0000000000000000");

    /* sleep itself may open a file or two while it starts (locale data):
     * look until it settles, and fail only on a descriptor that stays. */
    snprintf(path, sizeof(path), "/proc/%ld/fd", (long)pid);
    for (int tries = 0;; tries++) {
        int high = -1;
        fds = 0;
        d = opendir(path);
        assert_non_null(d);
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.')
                continue;
            fds++;
            if (atoi(e->d_name) > 2)
                high = atoi(e->d_name);
        }
        closedir(d);
        if (high < 0)
            break;
        if (tries == 200)
            fail_msg("descriptor %d leaked into the child", high);
        usleep(10000);
    }
    assert_true(fds <= 3);

    limit_of(pid, "Max data size", buf, sizeof(buf));
    assert_string_equal(buf, "268435456 268435456");
    limit_of(pid, "Max stack size", buf, sizeof(buf));
    assert_string_equal(buf, "2097152 2097152");
    limit_of(pid, "Max cpu time", buf, sizeof(buf));
    assert_string_equal(buf, "7 12");
    limit_of(pid, "Max open files", buf, sizeof(buf));
    assert_string_equal(buf, "64 64");
    limit_of(pid, "Max core file size", buf, sizeof(buf));
    assert_string_equal(buf, "0 0");

    kill_and_reap(pid);
    close(leak);
    sigaction(SIGPIPE, &old_pipe, NULL);
    sigprocmask(SIG_SETMASK, &old, NULL);
    assert_no_children();
}

/* Runs sh -c script with stdout on a pipe; returns what it printed and its
 * wait status. */
static int run_sh(sup_spawn_opts_t *o, char *script, char *const *envp,
                  char *out, size_t outlen)
{
    char *argv[] = {s_sh, s_c, script, s_name, NULL};
    char err[256] = "";
    int p[2], st = 0;
    size_t got = 0;
    ssize_t n;
    pid_t pid;

    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    o->path = "/bin/sh";
    o->argv = argv;
    o->envp = envp;
    o->stdout_fd = p[1];
    pid = sup_spawn_start(o, err, sizeof(err));
    close(p[1]);
    o->stdout_fd = -1;
    o->argv = NULL;
    assert_true(pid > 0);
    while ((n = read(p[0], out + got, outlen - 1 - got)) > 0)
        got += (size_t)n;
    out[got] = '\0';
    close(p[0]);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return st;
}

static void test_limits_env_and_stdout(void **state)
{
    sup_spawn_opts_t o;
    static char foo[] = "FOO=bar baz";
    static char limits[] =
        "ulimit -d; ulimit -c; ulimit -n; "
        "printf '%s|%s|%s' \"$0\" \"$FOO\" \"${HOME-unset}\"";
    static char leak[] = "printf '%s' \"${DEALIMPORT_SPAWN_TEST-none}\"";
    char *const envp[] = {foo, NULL};
    char out[256];
    int st;
    (void)state;
    sup_spawn_opts_init(&o);
    o.memory_mb = 256;
    o.nofile = 100;
    st = run_sh(&o, limits, envp, out, sizeof(out));
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_string_equal(out, "262144\n0\n100\nworker-name|bar baz|unset");

    /* NULL envp is an empty environment, not the supervisor's. */
    setenv("DEALIMPORT_SPAWN_TEST", "leak", 1);
    st = run_sh(&o, leak, NULL, out, sizeof(out));
    unsetenv("DEALIMPORT_SPAWN_TEST");
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_string_equal(out, "none");
    assert_no_children();
}

/* The secrets pipe reaches the child as descriptor 3, the only one kept
 * beyond 0-2, with its text whole; the caller's descriptor stays the
 * caller's. */
static void test_secrets_fd(void **state)
{
    sup_spawn_opts_t o;
    static char script[] = "cat <&3; [ -e /proc/$$/fd/4 ] && echo leak4; "
                           "[ -e /proc/$$/fd/5 ] && echo leak5; echo end";
    char out[256];
    int p[2], st;
    (void)state;
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    assert_int_equal(write(p[1], "DEALIMPORT_SPAWN_SECRET=x\n", 26), 26);
    close(p[1]);
    sup_spawn_opts_init(&o);
    assert_int_equal(o.secrets_fd, -1);
    o.secrets_fd = p[0];
    st = run_sh(&o, script, NULL, out, sizeof(out));
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_string_equal(out, "DEALIMPORT_SPAWN_SECRET=x\nend\n");
    assert_true(fcntl(p[0], F_GETFD) >= 0);
    close(p[0]);

    /* Without one, descriptor 3 is closed like any other. */
    sup_spawn_opts_init(&o);
    {
        static char probe[] = "[ -e /proc/$$/fd/3 ] && echo open3; echo end";
        int keep = open("/dev/null", O_RDONLY); /* no O_CLOEXEC */
        assert_true(keep >= 3);
        st = run_sh(&o, probe, NULL, out, sizeof(out));
        close(keep);
        assert_int_equal(WEXITSTATUS(st), 0);
        assert_string_equal(out, "end\n");
    }
    assert_no_children();
}

/* A document descriptor reaches the child as descriptor 4 beside the
 * secrets on 3, whatever numbers the caller's have, and nothing else is
 * kept; alone, it is 4 and 3 is closed. */
static void test_doc_fd(void **state)
{
    sup_spawn_opts_t o;
    static char both[] =
        "cat <&3; cat <&4; [ -e /proc/$$/fd/5 ] && echo leak5; "
        "echo end";
    static char alone[] = "[ -e /proc/$$/fd/3 ] && echo open3; cat <&4; "
                          "[ -e /proc/$$/fd/5 ] && echo leak5; echo end";
    char out[256];
    int sp[2], dp[2], st;
    (void)state;
    assert_int_equal(pipe2(sp, O_CLOEXEC), 0);
    assert_int_equal(pipe2(dp, O_CLOEXEC), 0);
    assert_int_equal(write(sp[1], "S\n", 2), 2);
    assert_int_equal(write(dp[1], "D\n", 2), 2);
    close(sp[1]);
    close(dp[1]);
    sup_spawn_opts_init(&o);
    assert_int_equal(o.doc_fd, -1);
    o.secrets_fd = sp[0];
    o.doc_fd = dp[0];
    st = run_sh(&o, both, NULL, out, sizeof(out));
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_string_equal(out, "S\nD\nend\n");
    close(sp[0]);
    close(dp[0]);

    assert_int_equal(pipe2(dp, O_CLOEXEC), 0);
    assert_int_equal(write(dp[1], "D\n", 2), 2);
    close(dp[1]);
    sup_spawn_opts_init(&o);
    o.doc_fd = dp[0];
    {
        int keep = open("/dev/null", O_RDONLY); /* no O_CLOEXEC */
        assert_true(keep >= 3);
        st = run_sh(&o, alone, NULL, out, sizeof(out));
        close(keep);
    }
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_string_equal(out, "D\nend\n");
    close(dp[0]);
    assert_no_children();
}

/* A limit above the supervisor's own hard limit would make setrlimit fail
 * with EPERM in the child; it is lowered to the hard limit instead. Run in a
 * helper process so that this test's own limit stays as it was. */
static void test_limits_clamped(void **state)
{
    static char script[] = "ulimit -n; ulimit -t";
    pid_t helper;
    int st = 0;
    (void)state;
    helper = fork();
    assert_true(helper >= 0);
    if (helper == 0) {
        struct rlimit nofile = {100, 100}, cpu = {50, 50};
        char *argv[] = {s_sh, s_c, script, NULL};
        char out[64] = "", err[256];
        sup_spawn_opts_t o;
        int p[2], cst = 0;
        size_t got = 0;
        ssize_t n;
        pid_t pid;
        if (setrlimit(RLIMIT_NOFILE, &nofile) < 0 ||
            setrlimit(RLIMIT_CPU, &cpu) < 0 || pipe2(p, O_CLOEXEC) < 0)
            _exit(2);
        sup_spawn_opts_init(&o);
        o.path = "/bin/sh";
        o.argv = argv;
        o.nofile = 256;
        o.cpu_s = 3600;
        o.stdout_fd = p[1];
        pid = sup_spawn_start(&o, err, sizeof(err));
        close(p[1]);
        if (pid < 0)
            _exit(3);
        while (got < sizeof(out) - 1 &&
               (n = read(p[0], out + got, sizeof(out) - 1 - got)) > 0)
            got += (size_t)n;
        out[got] = '\0';
        waitpid(pid, &cst, 0);
        if (!WIFEXITED(cst) || WEXITSTATUS(cst) != 0)
            _exit(4);
        _exit(strcmp(out, "100\n50\n") == 0 ? 0 : 5);
    }
    assert_int_equal(waitpid(helper, &st, 0), helper);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_no_children();
}

static void test_describe_real_deaths(void **state)
{
    sup_spawn_opts_t o;
    static char exit3[] = "exit 3", exit70[] = "exit 70",
                segv[] = "kill -SEGV $$";
    char out[64], text[256];
    int st;
    (void)state;
    sup_spawn_opts_init(&o);
    o.memory_mb = 512;

    st = run_sh(&o, exit3, NULL, out, sizeof(out));
    sup_spawn_describe(st, &o, text, sizeof(text));
    assert_string_equal(text, "exited with status 3");

    st = run_sh(&o, exit70, NULL, out, sizeof(out));
    sup_spawn_describe(st, &o, text, sizeof(text));
    assert_string_equal(text, "exited with status 70: out of memory or "
                              "internal error (memory limit 512 MB)");

    st = run_sh(&o, segv, NULL, out, sizeof(out));
    sup_spawn_describe(st, &o, text, sizeof(text));
    assert_string_equal(text, "killed by signal 11 (SIGSEGV): crashed, "
                              "possibly out of memory (memory limit 512 MB)");
    assert_no_children();
}

static void test_describe_statuses(void **state)
{
    sup_spawn_opts_t o;
    char text[256], small[8];
    (void)state;
    sup_spawn_opts_init(&o);
    o.cpu_s = 60;
    o.memory_mb = 1024;

    sup_spawn_describe(W_EXITCODE(0, 0), &o, text, sizeof(text));
    assert_string_equal(text, "exited with status 0");
    sup_spawn_describe(SIGKILL, &o, text, sizeof(text));
    assert_string_equal(text, "killed by signal 9 (SIGKILL)");
    sup_spawn_describe(SIGXCPU, &o, text, sizeof(text));
    assert_string_equal(text, "killed by signal 24 (SIGXCPU): CPU time limit "
                              "of 60 s exceeded");
    sup_spawn_describe(SIGXCPU, NULL, text, sizeof(text));
    assert_string_equal(
        text, "killed by signal 24 (SIGXCPU): CPU time limit exceeded");
    sup_spawn_describe(SIGABRT, NULL, text, sizeof(text));
    assert_string_equal(text, "killed by signal 6 (SIGABRT)");
    sup_spawn_describe(W_STOPCODE(SIGSTOP), NULL, text, sizeof(text));
    assert_string_equal(text, "stopped by signal 19 (SIGSTOP)");
    sup_spawn_describe(W_EXITCODE(70, 0), NULL, text, sizeof(text));
    assert_string_equal(text, "exited with status 70");

    sup_spawn_describe_oom(SIGKILL, &o, text, sizeof(text));
    assert_string_equal(text,
                        "killed by signal 9 (SIGKILL): memory limit of 1024 MB "
                        "exceeded");
    sup_spawn_describe_oom(SIGKILL, NULL, text, sizeof(text));
    assert_string_equal(text, "killed by signal 9 (SIGKILL): out of memory");

    /* A short buffer is cut, never overrun. */
    sup_spawn_describe(SIGXCPU, &o, small, sizeof(small));
    assert_string_equal(small, "killed ");
}

static void test_cpu_limit(void **state)
{
    sup_spawn_opts_t o;
    char *argv[] = {s_sh, s_c, s_busy, NULL};
    char err[256] = "", text[256];
    struct timespec t0, t1;
    int st = 0;
    pid_t pid;
    (void)state;
    sup_spawn_opts_init(&o);
    o.path = "/bin/sh";
    o.argv = argv;
    o.cpu_s = 1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid = sup_spawn_start(&o, err, sizeof(err));
    assert_true(pid > 0);
    if (!wait_bounded(pid, 60000, &st)) {
        kill_and_reap(pid);
        fail_msg("a busy child with a 1 s CPU limit ran for 60 s");
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    print_message("cpu limit: SIGXCPU after %.2f s wall\n",
                  (double)(t1.tv_sec - t0.tv_sec) +
                      (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGXCPU);
    sup_spawn_describe(st, &o, text, sizeof(text));
    assert_string_equal(text, "killed by signal 24 (SIGXCPU): CPU time limit "
                              "of 1 s exceeded");
    assert_no_children();
}

/* An intermediate process plays the supervisor: it starts a worker and dies.
 * We are the subreaper, so the orphaned worker becomes our child and we see
 * how it ended. */
static void test_dies_with_parent(void **state)
{
    int p[2], st = 0;
    pid_t mid, worker = -1;
    (void)state;
    assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    mid = fork();
    assert_true(mid >= 0);
    if (mid == 0) {
        sup_spawn_opts_t o;
        char err[256];
        pid_t w;
        sup_spawn_opts_init(&o);
        o.path = "/bin/sleep";
        o.argv = sleep_argv;
        w = sup_spawn_start(&o, err, sizeof(err));
        if (write(p[1], &w, sizeof(w)) != (ssize_t)sizeof(w))
            _exit(2);
        _exit(w > 0 ? 0 : 1);
    }
    close(p[1]);
    assert_int_equal(read(p[0], &worker, sizeof(worker)), sizeof(worker));
    close(p[0]);
    assert_true(worker > 0);
    assert_int_equal(waitpid(mid, &st, 0), mid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    if (!wait_bounded(worker, 5000, &st)) {
        kill(worker, SIGKILL);
        waitpid(worker, &st, 0);
        fail_msg("the worker outlived its parent by 5 s");
    }
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGKILL);
    assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0), 0);
    assert_no_children();
}

static void make_tmpdir(char *dir, size_t len)
{
    snprintf(dir, len, "%s/sup-spawn-XXXXXX", it_tmpdir());
    assert_non_null(mkdtemp(dir));
}

/* A directory whose cgroup.procs is a plain file stands in for a cgroup: the
 * child must write its own pid there, once, before exec. */
static void test_cgroup_join(void **state)
{
    sup_spawn_opts_t o;
    char dir[256], procs[512], text[64], want[32], err[256] = "";
    int dfd, fd;
    pid_t pid;
    (void)state;
    make_tmpdir(dir, sizeof(dir));
    snprintf(procs, sizeof(procs), "%s/cgroup.procs", dir);
    fd = open(procs, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    close(fd);
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(dfd >= 0);

    sup_spawn_opts_init(&o);
    o.path = "/bin/sleep";
    o.argv = sleep_argv;
    o.cgroup_fd = dfd;
    pid = sup_spawn_start(&o, err, sizeof(err));
    assert_true(pid > 0);
    read_file(procs, text, sizeof(text));
    snprintf(want, sizeof(want), "%ld", (long)pid);
    assert_string_equal(text, want);
    kill_and_reap(pid);

    /* A cgroup that refuses the write: the step is named. */
    unlink(procs);
    assert_int_equal(symlink("/dev/full", procs), 0);
    assert_int_equal(sup_spawn_start(&o, err, sizeof(err)), -ENOSPC);
    assert_string_equal(err, "cannot start worker '/bin/sleep': joining its "
                             "cgroup: No space left on device");
    assert_no_children();

    /* No cgroup.procs at all: refused before fork. */
    unlink(procs);
    assert_int_equal(sup_spawn_start(&o, err, sizeof(err)), -ENOENT);
    assert_string_equal(err, "cannot start worker '/bin/sleep': cannot open "
                             "its cgroup.procs: No such file or directory");
    assert_no_children();
    close(dfd);
    rmdir(dir);
}

/* The runtime folder: made owner-only when absent, taken as found when it
 * is ours and no one else may write into it, refused otherwise (another
 * user could receive the workers' rows or send control frames). */
static void test_runtime_dir(void **state)
{
    char base[512], dir[1024], link[1024], err[512];
    struct stat st;
    (void)state;
    assert_non_null(
        mkdtemp(it_tmp_name(base, sizeof(base), "test-sup-spawn-rt-XXXXXX")));
    snprintf(dir, sizeof(dir), "%s/run", base);
    assert_int_equal(sup_spawn_runtime_dir(dir, err, sizeof(err)), 0);
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0700);
    /* found again as it is */
    assert_int_equal(sup_spawn_runtime_dir(dir, err, sizeof(err)), 0);
    /* group-readable is fine, group-writable is not */
    assert_int_equal(chmod(dir, 0750), 0);
    assert_int_equal(sup_spawn_runtime_dir(dir, err, sizeof(err)), 0);
    assert_int_equal(chmod(dir, 0770), 0);
    assert_int_equal(sup_spawn_runtime_dir(dir, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "is writable by its group (mode 0770)"));
    assert_int_equal(chmod(dir, 0703), 0);
    assert_int_equal(sup_spawn_runtime_dir(dir, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "is writable by others"));
    assert_int_equal(chmod(dir, 0700), 0);
    /* a symbolic link to a good folder is refused as a link */
    snprintf(link, sizeof(link), "%s/link", base);
    assert_int_equal(symlink(dir, link), 0);
    assert_int_equal(sup_spawn_runtime_dir(link, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "is a symbolic link"));
    /* a file is no folder */
    snprintf(link, sizeof(link), "%s/file", base);
    close(open(link, O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
    assert_int_equal(sup_spawn_runtime_dir(link, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "is not a folder"));
    unlink(link);
    snprintf(link, sizeof(link), "%s/link", base);
    unlink(link);
    rmdir(dir);
    rmdir(base);
}

/* The workers' environment: the settings, a few of the supervisor's own
 * variables, MONGOC_DISABLE_SHM; never a secret. */
static void test_envp(void **state)
{
    dip_config_t cfg;
    char **envp;
    int path = 0, shm = 0, poll = 0, n = 0;
    (void)state;
    dip_config_init(&cfg);
    cfg.mongodb_uri = strdup("mongodb://user:pw@127.0.0.1/db");
    cfg.app_secret = strdup("app-secret-app-secret-app-secret");
    cfg.poll_ms = 1234;
    setenv("PATH", "/usr/bin:/bin", 1);
    setenv("SOMETHING_ELSE", "x", 1);
    envp = sup_spawn_envp_new(&cfg);
    assert_non_null(envp);
    for (; envp[n]; n++) {
        path |= strcmp(envp[n], "PATH=/usr/bin:/bin") == 0;
        shm |= strcmp(envp[n], "MONGOC_DISABLE_SHM=1") == 0;
        poll |= strcmp(envp[n], "DEALIMPORT_POLL_MS=1234") == 0;
        assert_null(strstr(envp[n], "pw@"));
        assert_null(strstr(envp[n], "app-secret"));
        assert_null(strstr(envp[n], "SOMETHING_ELSE"));
    }
    assert_true(path);
    assert_true(shm);
    assert_true(poll);
    assert_true(n <= DIP_CONFIG_ENV_MAX + 12);
    sup_spawn_envp_free(envp);
    sup_spawn_envp_free(NULL);
    dip_config_release(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exec_failure),
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_isolation),
        cmocka_unit_test(test_limits_env_and_stdout),
        cmocka_unit_test(test_secrets_fd),
        cmocka_unit_test(test_doc_fd),
        cmocka_unit_test(test_limits_clamped),
        cmocka_unit_test(test_describe_real_deaths),
        cmocka_unit_test(test_describe_statuses),
        cmocka_unit_test(test_cpu_limit),
        cmocka_unit_test(test_dies_with_parent),
        cmocka_unit_test(test_cgroup_join),
        cmocka_unit_test(test_runtime_dir),
        cmocka_unit_test(test_envp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
