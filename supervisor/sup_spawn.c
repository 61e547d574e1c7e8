/*
 * sup_spawn: fork+exec of one worker with its isolation applied in the child
 * before exec. The supervisor is multi-threaded (libmongoc, ZeroMQ), so the
 * child may only make async-signal-safe calls until execve(): every value it
 * uses (limits, descriptors, the parent's pid) is computed before fork(), and
 * every failure is reported as a (step, errno) pair over a close-on-exec pipe
 * whose EOF tells the parent that the exec succeeded. Beside it, what every
 * spawn needs from the supervisor's setup: a runtime folder no one else can
 * write into (the workers' sockets live there) and the workers' envp.
 */
#include "sup_spawn.h"
#include "dip_config.h"
#include "dip_exit.h"
#include "dip_runtime.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pthread.h>

/* What the child was doing when it failed; indexes step_names. */
enum {
    STEP_EXEC,
    STEP_PGID,
    STEP_PDEATHSIG,
    STEP_CGROUP,
    STEP_LIMIT_AS,
    STEP_LIMIT_CPU,
    STEP_LIMIT_NOFILE,
    STEP_LIMIT_CORE,
    STEP_STDOUT,
    STEP_STDERR,
    STEP_SECRETS,
    STEP_DOC,
    STEP_FDS,
    STEP_SIGMASK,
    STEP_COUNT
};

static const char *const step_names[STEP_COUNT] = {
    [STEP_EXEC] = NULL,
    [STEP_PGID] = "creating its process group",
    [STEP_PDEATHSIG] = "setting its parent-death signal",
    [STEP_CGROUP] = "joining its cgroup",
    [STEP_LIMIT_AS] = "setting its memory limit",
    [STEP_LIMIT_CPU] = "setting its CPU time limit",
    [STEP_LIMIT_NOFILE] = "setting its open-file limit",
    [STEP_LIMIT_CORE] = "disabling its core dumps",
    [STEP_STDOUT] = "redirecting its stdout",
    [STEP_STDERR] = "redirecting its stderr",
    [STEP_SECRETS] = "handing it its secrets descriptor",
    [STEP_DOC] = "handing it its document descriptor",
    [STEP_FDS] = "closing inherited descriptors",
    [STEP_SIGMASK] = "clearing its signal mask",
};

typedef struct report {
    int step;
    int err;
} report_t;

/* Everything the child needs, computed before fork(). */
typedef struct plan {
    const char *path;
    char *const *argv;
    char *const *envp;
    pid_t parent;
    int report_fd;  /* write end, > SUP_SPAWN_DOC_FD */
    int procs_fd;   /* cgroup.procs of the worker's cgroup, or -1 */
    int secrets_fd; /* > SUP_SPAWN_DOC_FD, becomes SUP_SPAWN_SECRETS_FD */
    int doc_fd;     /* > SUP_SPAWN_DOC_FD, becomes SUP_SPAWN_DOC_FD; or -1 */
    int stdout_fd, stderr_fd;
    int set_as, set_cpu, set_nofile;
    struct rlimit as, stack, cpu, nofile;
    long fd_max; /* for closing descriptors when close_range is missing */
} plan_t;

static char *const empty_env[] = {NULL};

void sup_spawn_opts_init(sup_spawn_opts_t *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->nofile = SUP_SPAWN_NOFILE_DEFAULT;
    opts->cgroup_fd = -1;
    opts->stdout_fd = -1;
    opts->stderr_fd = -1;
    opts->secrets_fd = -1;
    opts->doc_fd = -1;
}

/* ---- the child: async-signal-safe calls only ---------------------------- */

static void child_fail(const plan_t *p, int step, int err)
{
    report_t r = {step, err};
    ssize_t n;
    do {
        n = write(p->report_fd, &r, sizeof(r));
    } while (n < 0 && errno == EINTR);
    _exit(DIP_EXIT_EXEC);
}

/* Writes the decimal pid without stdio. */
static size_t format_pid(char *buf, size_t len, pid_t pid)
{
    char tmp[24];
    size_t n = 0, i;
    unsigned long v = (unsigned long)pid;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v && n < sizeof(tmp));
    for (i = 0; i < n && i < len; i++)
        buf[i] = tmp[n - 1 - i];
    return i;
}

static int move_fd(int from, int to)
{
    if (from == to)
        return fcntl(to, F_SETFD, 0); /* keep it across exec */
    return dup2(from, to) < 0 ? -1 : 0;
}

static int close_from(unsigned first, unsigned last, long fd_max)
{
    long fd;
    if (first > last)
        return 0;
#ifdef SYS_close_range
    if (syscall(SYS_close_range, first, last, 0) == 0)
        return 0;
    if (errno != ENOSYS)
        return -1;
#endif
    for (fd = (long)first; fd < fd_max && fd <= (long)last; fd++)
        (void)close((int)fd);
    return 0;
}

static void child_run(const plan_t *p)
{
    struct rlimit zero = {0, 0};
    sigset_t none;
    int sig;

    /* Handlers would run the parent's code here; ignored signals would stay
     * ignored across exec. Everything goes back to the default. */
    for (sig = 1; sig < NSIG; sig++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = SIG_DFL;
        (void)sigaction(sig, &sa, NULL); /* fails for KILL/STOP: fine */
    }
    if (setpgid(0, 0) < 0)
        child_fail(p, STEP_PGID, errno);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
        child_fail(p, STEP_PDEATHSIG, errno);
    /* The parent may have died before prctl: then nobody would kill us. */
    if (getppid() != p->parent)
        _exit(DIP_EXIT_EXEC);
    if (p->procs_fd >= 0) {
        char buf[24];
        size_t n = format_pid(buf, sizeof(buf), getpid());
        errno = 0;
        if (write(p->procs_fd, buf, n) != (ssize_t)n)
            child_fail(p, STEP_CGROUP, errno ? errno : EIO);
    }
    if (p->set_as && (setrlimit(RLIMIT_DATA, &p->as) < 0 ||
                      setrlimit(RLIMIT_STACK, &p->stack) < 0))
        child_fail(p, STEP_LIMIT_AS, errno);
    if (p->set_cpu && setrlimit(RLIMIT_CPU, &p->cpu) < 0)
        child_fail(p, STEP_LIMIT_CPU, errno);
    if (p->set_nofile && setrlimit(RLIMIT_NOFILE, &p->nofile) < 0)
        child_fail(p, STEP_LIMIT_NOFILE, errno);
    if (setrlimit(RLIMIT_CORE, &zero) < 0)
        child_fail(p, STEP_LIMIT_CORE, errno);
    if (p->stdout_fd > 0 && move_fd(p->stdout_fd, STDOUT_FILENO) < 0)
        child_fail(p, STEP_STDOUT, errno);
    if (p->stderr_fd > 0 && move_fd(p->stderr_fd, STDERR_FILENO) < 0)
        child_fail(p, STEP_STDERR, errno);
    if (p->secrets_fd >= 0 && dup2(p->secrets_fd, SUP_SPAWN_SECRETS_FD) < 0)
        child_fail(p, STEP_SECRETS, errno);
    if (p->doc_fd >= 0 && dup2(p->doc_fd, SUP_SPAWN_DOC_FD) < 0)
        child_fail(p, STEP_DOC, errno);
    /* Keep only 0-2, the secrets, the document and the report pipe, which
     * closes itself on exec. */
    if ((p->secrets_fd < 0 &&
         close_from(SUP_SPAWN_SECRETS_FD, SUP_SPAWN_SECRETS_FD, p->fd_max) <
             0) ||
        (p->doc_fd < 0 &&
         close_from(SUP_SPAWN_DOC_FD, SUP_SPAWN_DOC_FD, p->fd_max) < 0) ||
        close_from(SUP_SPAWN_DOC_FD + 1, (unsigned)p->report_fd - 1,
                   p->fd_max) < 0 ||
        close_from((unsigned)p->report_fd + 1, ~0U, p->fd_max) < 0)
        child_fail(p, STEP_FDS, errno);
    sigemptyset(&none);
    if (sigprocmask(SIG_SETMASK, &none, NULL) < 0)
        child_fail(p, STEP_SIGMASK, errno);
    execve(p->path, p->argv, p->envp);
    child_fail(p, STEP_EXEC, errno);
}

/* ---- the parent --------------------------------------------------------- */

/* Lowers a wanted limit to what the supervisor itself may set. */
static void plan_limit(int resource, rlim_t soft, rlim_t hard,
                       struct rlimit *out)
{
    struct rlimit cur;
    if (getrlimit(resource, &cur) == 0 && cur.rlim_max != RLIM_INFINITY) {
        if (hard == RLIM_INFINITY || hard > cur.rlim_max)
            hard = cur.rlim_max;
        if (soft == RLIM_INFINITY || soft > hard)
            soft = hard;
    }
    out->rlim_cur = soft;
    out->rlim_max = hard;
}

/* Keeps a descriptor the child must not lose off 0-2 and the secrets and
 * document descriptors' numbers (a supervisor started with closed stdio
 * gets low numbers from pipe2). */
static int lift_fd(int *fd)
{
    int nfd;
    if (*fd > SUP_SPAWN_DOC_FD)
        return 0;
    nfd = fcntl(*fd, F_DUPFD_CLOEXEC, SUP_SPAWN_DOC_FD + 1);
    if (nfd < 0)
        return -errno;
    close(*fd);
    *fd = nfd;
    return 0;
}

static int plan_make(const sup_spawn_opts_t *o, plan_t *p, char *err,
                     size_t errlen)
{
    const char *path = o->path ? o->path : "";
    memset(p, 0, sizeof(*p));
    p->report_fd = -1;
    p->procs_fd = -1;
    p->secrets_fd = -1;
    p->doc_fd = -1;
    if (o->path == NULL || o->path[0] == '\0' || o->argv == NULL ||
        o->argv[0] == NULL) {
        snprintf(err, errlen,
                 "cannot start worker '%s': no executable or argv given", path);
        return -EINVAL;
    }
    if (o->memory_mb < 0 || o->cpu_s < 0 || o->nofile < 0 ||
        o->memory_mb > (long)(RLIM_INFINITY / 2 / 1048576)) {
        snprintf(err, errlen,
                 "cannot start worker '%s': limits out of range "
                 "(memory %ld MB, cpu %ld s, files %ld)",
                 path, o->memory_mb, o->cpu_s, o->nofile);
        return -EINVAL;
    }
    p->path = o->path;
    p->argv = o->argv;
    p->envp = o->envp ? o->envp : empty_env;
    p->parent = getpid();
    p->stdout_fd = o->stdout_fd;
    p->stderr_fd = o->stderr_fd;
    if (o->memory_mb > 0) {
        rlim_t b = (rlim_t)o->memory_mb * 1048576;
        p->set_as = 1;
        /* RLIMIT_DATA, not RLIMIT_AS: since Linux 4.7 it counts the heap
         * and every private writable mapping, which is what a worker's
         * memory is, and not the address space that shared libraries and
         * glibc's reserved-but-unused malloc arenas take (a worker maps
         * ~200 MB of address space to use ~16 MB). Thread stacks are
         * private writable mappings sized by RLIMIT_STACK, so that is kept
         * small to leave the limit to the data. */
        plan_limit(RLIMIT_DATA, b, b, &p->as);
        plan_limit(RLIMIT_STACK, SUP_SPAWN_STACK_BYTES, SUP_SPAWN_STACK_BYTES,
                   &p->stack);
    }
    if (o->cpu_s > 0) {
        p->set_cpu = 1;
        plan_limit(RLIMIT_CPU, (rlim_t)o->cpu_s,
                   (rlim_t)o->cpu_s + SUP_SPAWN_CPU_GRACE_S, &p->cpu);
    }
    if (o->nofile > 0) {
        p->set_nofile = 1;
        plan_limit(RLIMIT_NOFILE, (rlim_t)o->nofile, (rlim_t)o->nofile,
                   &p->nofile);
    }
    p->fd_max = sysconf(_SC_OPEN_MAX);
    if (p->fd_max < 1024)
        p->fd_max = 1024;
    return 0;
}

/* Reads the child's report: 0 on EOF (exec succeeded), 1 with *r filled. */
static int read_report(int fd, report_t *r)
{
    size_t got = 0;
    while (got < sizeof(*r)) {
        ssize_t n = read(fd, (char *)r + got, sizeof(*r) - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r->step = STEP_EXEC;
            r->err = errno;
            return 1;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    if (got == 0)
        return 0;
    if (got < sizeof(*r) || r->step < 0 || r->step >= STEP_COUNT) {
        r->step = STEP_EXEC;
        r->err = EIO;
    }
    return 1;
}

pid_t sup_spawn_start(const sup_spawn_opts_t *opts, char *err, size_t errlen)
{
    plan_t p;
    int pipefd[2] = {-1, -1};
    sigset_t all, old;
    int masked = 0, st;
    pid_t pid = -1, rc;
    report_t r;

    rc = plan_make(opts, &p, err, errlen);
    if (rc < 0)
        goto cleanup;
    if (pipe2(pipefd, O_CLOEXEC) < 0 || lift_fd(&pipefd[1]) < 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot start worker '%s': pipe: %s", p.path,
                 strerror(errno));
        goto cleanup;
    }
    p.report_fd = pipefd[1];
    if (opts->secrets_fd >= 0) {
        /* A copy of our own above the number it takes in the child, so
         * that no dup2 there can land on a descriptor still needed. */
        p.secrets_fd =
            fcntl(opts->secrets_fd, F_DUPFD_CLOEXEC, SUP_SPAWN_DOC_FD + 1);
        if (p.secrets_fd < 0) {
            rc = -errno;
            snprintf(err, errlen,
                     "cannot start worker '%s': cannot copy its secrets "
                     "descriptor: %s",
                     p.path, strerror(errno));
            goto cleanup;
        }
    }
    if (opts->doc_fd >= 0) {
        p.doc_fd = fcntl(opts->doc_fd, F_DUPFD_CLOEXEC, SUP_SPAWN_DOC_FD + 1);
        if (p.doc_fd < 0) {
            rc = -errno;
            snprintf(err, errlen,
                     "cannot start worker '%s': cannot copy its document "
                     "descriptor: %s",
                     p.path, strerror(errno));
            goto cleanup;
        }
    }
    if (opts->cgroup_fd >= 0) {
        p.procs_fd = openat(opts->cgroup_fd, "cgroup.procs",
                            O_WRONLY | O_CLOEXEC | O_NOCTTY);
        if (p.procs_fd < 0 || lift_fd(&p.procs_fd) < 0) {
            rc = -errno;
            snprintf(err, errlen,
                     "cannot start worker '%s': cannot open its "
                     "cgroup.procs: %s",
                     p.path, strerror(errno));
            goto cleanup;
        }
    }
    /* No handler of ours may run in the child before it resets them. */
    sigfillset(&all);
    if (pthread_sigmask(SIG_SETMASK, &all, &old) == 0)
        masked = 1;
    pid = fork();
    if (pid == 0)
        child_run(&p); /* does not return */
    if (pid < 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot start worker '%s': fork: %s", p.path,
                 strerror(errno));
        goto cleanup;
    }
    if (masked) {
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        masked = 0;
    }
    close(pipefd[1]);
    pipefd[1] = -1;
    if (read_report(pipefd[0], &r) == 0) {
        rc = pid;
        goto cleanup;
    }
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    rc = -r.err;
    if (step_names[r.step])
        snprintf(err, errlen, "cannot start worker '%s': %s: %s", p.path,
                 step_names[r.step], strerror(r.err));
    else
        snprintf(err, errlen, "cannot start worker '%s': %s", p.path,
                 strerror(r.err));
cleanup:
    if (masked)
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (pipefd[0] >= 0)
        close(pipefd[0]);
    if (pipefd[1] >= 0)
        close(pipefd[1]);
    if (p.procs_fd >= 0)
        close(p.procs_fd);
    if (p.secrets_fd >= 0)
        close(p.secrets_fd);
    if (p.doc_fd >= 0)
        close(p.doc_fd);
    return rc;
}

/* ---- describing how a worker ended -------------------------------------- */

static int signal_phrase(int sig, char *buf, size_t len)
{
    const char *abbrev = sigabbrev_np(sig);
    if (abbrev)
        return snprintf(buf, len, "killed by signal %d (SIG%s)", sig, abbrev);
    return snprintf(buf, len, "killed by signal %d", sig);
}

static long memory_limit(const sup_spawn_opts_t *opts)
{
    return opts ? opts->memory_mb : 0;
}

void sup_spawn_describe(int wait_status, const sup_spawn_opts_t *opts,
                        char *buf, size_t len)
{
    int n, code, sig;
    long mem = memory_limit(opts);

    if (len == 0)
        return;
    if (WIFEXITED(wait_status)) {
        code = WEXITSTATUS(wait_status);
        n = snprintf(buf, len, "exited with status %d", code);
        if (code == DIP_EXIT_NOMEM && mem > 0 && n > 0 && (size_t)n < len)
            snprintf(buf + n, len - (size_t)n,
                     ": out of memory or internal error (memory limit %ld "
                     "MB)",
                     mem);
        return;
    }
    if (WIFSIGNALED(wait_status)) {
        sig = WTERMSIG(wait_status);
        n = signal_phrase(sig, buf, len);
        if (n < 0 || (size_t)n >= len)
            return;
        if (sig == SIGXCPU && opts && opts->cpu_s > 0)
            snprintf(buf + n, len - (size_t)n,
                     ": CPU time limit of %ld s exceeded", opts->cpu_s);
        else if (sig == SIGXCPU)
            snprintf(buf + n, len - (size_t)n, ": CPU time limit exceeded");
        else if ((sig == SIGSEGV || sig == SIGABRT || sig == SIGBUS) && mem > 0)
            snprintf(buf + n, len - (size_t)n,
                     ": crashed, possibly out of memory (memory limit %ld "
                     "MB)",
                     mem);
        return;
    }
    if (WIFSTOPPED(wait_status)) {
        sig = WSTOPSIG(wait_status);
        snprintf(buf, len, "stopped by signal %d (SIG%s)", sig,
                 sigabbrev_np(sig) ? sigabbrev_np(sig) : "?");
        return;
    }
    snprintf(buf, len, "ended with wait status 0x%x", (unsigned)wait_status);
}

void sup_spawn_describe_oom(int wait_status, const sup_spawn_opts_t *opts,
                            char *buf, size_t len)
{
    long mem = memory_limit(opts);
    int n;

    if (len == 0)
        return;
    if (WIFSIGNALED(wait_status))
        n = signal_phrase(WTERMSIG(wait_status), buf, len);
    else if (WIFEXITED(wait_status))
        n = snprintf(buf, len, "exited with status %d",
                     WEXITSTATUS(wait_status));
    else
        n = snprintf(buf, len, "ended");
    if (n < 0 || (size_t)n >= len)
        return;
    if (mem > 0)
        snprintf(buf + n, len - (size_t)n, ": memory limit of %ld MB exceeded",
                 mem);
    else
        snprintf(buf + n, len - (size_t)n, ": out of memory");
}

/* ---- setup shared by every spawn ----------------------------------- */

/* The runtime folder holds the sockets that carry every tenant's rows and
 * accept control frames: one that another user made first (the /tmp
 * fallback is predictable) or may write into is refused, not trusted as
 * found. */
int sup_spawn_runtime_dir(const char *dir, char *err, size_t errlen)
{
    char why[512];
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "DEALIMPORT_RUNTIME_DIR: cannot create '%s': %s",
                 dir, strerror(errno));
        return -1;
    }
    if (dip_runtime_trusted(dir, DIP_RUNTIME_OWNER, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "DEALIMPORT_RUNTIME_DIR: %s: refusing to use it",
                 why);
        return -1;
    }
    return 0;
}

char **sup_spawn_envp_new(const dip_config_t *cfg)
{
    /* The sanitizer options too, so a test build's worker behaves as its
     * supervisor was told to. */
    static const char *const keep[] = {"PATH",           "TZ",
                                       "HOME",           "LANG",
                                       "LC_ALL",         "ASAN_OPTIONS",
                                       "UBSAN_OPTIONS",  "LSAN_OPTIONS",
                                       "JOURNAL_STREAM", NULL};
    char **envp = calloc(DIP_CONFIG_ENV_MAX + 12, sizeof(char *));
    int n;
    if (envp == NULL)
        return NULL;
    n = dip_config_to_env(cfg, envp);
    for (int i = 0; keep[i]; i++) {
        const char *v = getenv(keep[i]);
        if (v && asprintf(&envp[n], "%s=%s", keep[i], v) >= 0)
            n++;
    }
    /* libmongoc's counters live in a /dev/shm file per process, created as
     * the library loads; a worker killed for a limit would leave its file
     * behind for good (and a later process of the same pid would warn). */
    if ((envp[n] = strdup("MONGOC_DISABLE_SHM=1")) != NULL)
        n++;
    envp[n] = NULL;
    return envp;
}

void sup_spawn_envp_free(char **envp)
{
    for (int i = 0; envp && envp[i]; i++)
        free(envp[i]);
    free(envp);
}
