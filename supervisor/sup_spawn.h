/*
 * sup_spawn: starts one worker process, isolated from the supervisor and from
 * the other workers. Everything the child needs (argv, envp, limits, file
 * descriptors) is prepared before fork(); between fork and exec the child
 * makes only async-signal-safe system calls: its own process group, death on
 * the supervisor's death, default signal dispositions and an empty signal
 * mask, resource limits, no inherited descriptors beyond 0-2 (and the
 * secrets pipe at 3 when one is given), and optionally its own cgroup. A setup
 * or exec failure comes back to the parent as errno over a close-on-exec pipe,
 * so the caller learns at once, with a sentence, whether the worker really
 * started.
 */
#ifndef SUP_SPAWN_H
#define SUP_SPAWN_H

#include <stddef.h>
#include <sys/types.h>

#include "dip_config.h"

/* The descriptor number a worker finds its secrets pipe on (secrets_fd). */
#define SUP_SPAWN_SECRETS_FD 3
/* The descriptor number a worker finds its handed document on (doc_fd). */
#define SUP_SPAWN_DOC_FD 4

/* The open-file limit sup_spawn_opts_init() gives a worker. */
#define SUP_SPAWN_NOFILE_DEFAULT 256

/* The seconds between the soft CPU limit (SIGXCPU, which the worker may catch
 * to checkpoint) and the hard one (SIGKILL). */
#define SUP_SPAWN_CPU_GRACE_S 5
/* Stack of the worker's main thread and default size of its threads' stacks
 * when a memory limit is set. */
#define SUP_SPAWN_STACK_BYTES (2u * 1024u * 1024u)

typedef struct sup_spawn_opts {
    const char *path;  /* worker executable, absolute */
    char *const *argv; /* NULL-terminated, argv[0] required */
    char *const *envp; /* NULL-terminated; NULL = an empty environment */
    long memory_mb;    /* RLIMIT_DATA (and a small RLIMIT_STACK); 0 = none */
    long cpu_s;        /* RLIMIT_CPU soft; hard = soft + grace; 0 = none */
    long nofile;       /* RLIMIT_NOFILE; 0 = leave as inherited */
    int cgroup_fd;     /* -1 or an O_DIRECTORY fd of the worker's cgroup */
    int stdout_fd;     /* > 0: becomes the child's stdout; else inherited */
    int stderr_fd;     /* > 0: becomes the child's stderr; else inherited */
    /* >= 0: the read end of a pipe holding the child's secrets; the child
     * gets it as SUP_SPAWN_SECRETS_FD (the only descriptor kept beyond
     * 0-2), so no secret needs to be in envp. -1: none. */
    int secrets_fd;
    /* >= 0: a descriptor of a file the child reads (the queue document a
     * claim answered, wrk_handoff.h), kept as SUP_SPAWN_DOC_FD; its offset
     * is the caller's, shared. -1: none. */
    int doc_fd;
} sup_spawn_opts_t;

/* No limits, no cgroup, inherited stdout/stderr, the default open-file limit.
 * Callers set path, argv and envp, and the limits they want. */
void sup_spawn_opts_init(sup_spawn_opts_t *opts);

/* Forks and execs opts->path. Returns the child's pid (> 0) once the exec has
 * succeeded, or a negative errno with err filled ("cannot start worker
 * '/path': No such file or directory"); a child that failed is reaped before
 * returning, so no zombie remains. Limits above the supervisor's own hard
 * limits are lowered to them. The caller reaps a started child with waitpid()
 * and may signal its whole process group with kill(-pid, sig).
 * Call from the thread that stays alive as long as the worker: the kernel ties
 * the death-of-parent signal to the forking thread. Does not touch opts'
 * descriptors: the caller still owns and closes them. */
pid_t sup_spawn_start(const sup_spawn_opts_t *opts, char *err, size_t errlen);

/* Describes a wait status the way an operator and a CRM user can act on it:
 * "exited with status 3", "killed by signal 9 (SIGKILL)",
 * "killed by signal 24 (SIGXCPU): CPU time limit of 60 s exceeded". opts (may
 * be NULL) gives the limits the worker ran under, to name the one it hit. */
void sup_spawn_describe(int wait_status, const sup_spawn_opts_t *opts,
                        char *buf, size_t len);

/* The same for a worker whose cgroup recorded an OOM kill
 * (sup_cgroup_oom_killed()): "killed by signal 9 (SIGKILL): memory limit of
 * 1024 MB exceeded". */
void sup_spawn_describe_oom(int wait_status, const sup_spawn_opts_t *opts,
                            char *buf, size_t len);

/* Creates the runtime folder dir (0700) if absent, and refuses one that
 * another user owns, that the group or others may write into, or that is a
 * symbolic link: it holds the sockets that carry every tenant's rows. 0, or
 * -1 with err filled. */
int sup_spawn_runtime_dir(const char *dir, char *err, size_t errlen);

/* The environment every worker (and follow-up child) gets: cfg's tunables
 * as DEALIMPORT_* (no secrets: those go through the secrets pipe), a few
 * of the supervisor's own (PATH, TZ, locale, sanitizer options) and
 * MONGOC_DISABLE_SHM=1. NULL-terminated, owned by the caller, freed with
 * sup_spawn_envp_free (accepts NULL). NULL when out of memory. */
char **sup_spawn_envp_new(const dip_config_t *cfg);
void sup_spawn_envp_free(char **envp);

#endif
