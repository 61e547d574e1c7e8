/*
 * sup_cgroup: one cgroup v2 per worker, where the supervisor runs in a
 * delegated subtree (systemd's Delegate=yes). cgroup v2 lets only leaves hold
 * processes once controllers are enabled for children, so the supervisor first
 * moves itself into the leaf "<own cgroup>/supervisor", then enables memory,
 * cpu and pids for the children of its own cgroup, then creates one
 * "worker-<queue id>" cgroup per worker with memory.max, memory.swap.max 0,
 * cpu.max and pids.max. Without such a subtree the caller gets NULL and a
 * reason, and workers are limited by rlimits alone.
 */
#ifndef SUP_CGROUP_H
#define SUP_CGROUP_H

#include <stddef.h>

typedef struct sup_cgroup sup_cgroup_t;

/* The leaf the supervisor moves itself into. */
#define SUP_CGROUP_SELF "supervisor"

/* The cpu.max period, in microseconds. */
#define SUP_CGROUP_CPU_PERIOD 100000

/* Finds the supervisor's own cgroup (/proc/self/cgroup's "0::" line under the
 * cgroup2 mount from /proc/self/mountinfo) and takes it over as with
 * sup_cgroup_open(). Returns NULL with a one-line reason in msg when there is
 * no delegated cgroup v2 subtree; the caller logs "no delegated cgroup v2
 * subtree (REASON): workers are limited by rlimits only". Call once, before
 * starting any worker: it moves the calling process. */
sup_cgroup_t *sup_cgroup_new(char *msg, size_t len);

/* The same for a known cgroup directory dir: checks that it is writable,
 * offers the memory, cpu and pids controllers and holds no process but the
 * caller (else it was not delegated to us alone), moves the caller into
 * dir/supervisor and enables "+memory +cpu +pids" in dir's
 * cgroup.subtree_control. On success msg says where workers' cgroups go. */
sup_cgroup_t *sup_cgroup_open(const char *dir, char *msg, size_t len);

void sup_cgroup_destroy(sup_cgroup_t **self_p);

/* The delegated directory, e.g. "/sys/fs/cgroup/system.slice/x.service". */
const char *sup_cgroup_dir(const sup_cgroup_t *self);

/* Creates the child cgroup `name` ([A-Za-z0-9_-], e.g. "worker-<queue id>")
 * with memory.max = memory_mb MB, memory.swap.max = 0 and memory.oom.group = 1
 * where present, cpu.max = cpu_percent % of one CPU and pids.max = pids_max;
 * 0 means no limit for each. An empty leftover cgroup of the same name is
 * reused. On success *dirfd_out is an O_DIRECTORY descriptor of it for
 * sup_spawn_opts_t.cgroup_fd, owned by the caller. Returns 0 or a negative
 * errno with err filled. */
int sup_cgroup_create(sup_cgroup_t *self, const char *name, long memory_mb,
                      long cpu_percent, long pids_max, int *dirfd_out,
                      char *err, size_t errlen);

/* 1 when the kernel's OOM killer killed a process in cgroup `name`
 * (memory.events oom_kill > 0), 0 when not, a negative errno when unknown. */
int sup_cgroup_oom_killed(sup_cgroup_t *self, const char *name);

/* Kills every process left in cgroup `name` (cgroup.kill, Linux 5.14+).
 * Returns 0 or a negative errno. */
int sup_cgroup_kill(sup_cgroup_t *self, const char *name);

/* Removes cgroup `name` once its worker has been reaped. 0 when it is gone
 * (or was never there), -EBUSY while processes remain, another negative errno
 * otherwise. */
int sup_cgroup_remove(sup_cgroup_t *self, const char *name);

/* Parsers over file contents, exposed for tests. */

/* The cgroup v2 path ("0::/a/b" -> "/a/b") from /proc/self/cgroup's text.
 * 0, -ENOENT without a v2 line, -ENAMETOOLONG when it does not fit. */
int sup_cgroup_parse_self(const char *text, char *path, size_t len);

/* The mount point of the first cgroup2 file system in /proc/self/mountinfo's
 * text. 0, -ENOENT without one, -ENAMETOOLONG when it does not fit. */
int sup_cgroup_parse_mount(const char *text, char *path, size_t len);

/* The value of `key` in a flat-keyed file such as memory.events
 * ("oom_kill 2\n"). 0, -ENOENT without the key, -EINVAL on a bad number. */
int sup_cgroup_parse_key(const char *text, const char *key, long long *value);

#endif
