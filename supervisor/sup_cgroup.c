/*
 * sup_cgroup: takes over the supervisor's delegated cgroup v2 subtree and
 * makes one limited child cgroup per worker. Every interface file is written
 * with a single write() of the whole value, as cgroupfs requires, and every
 * path below the delegated directory is reached through its descriptor, so a
 * worker's name can never point outside it.
 */
#include "sup_cgroup.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct sup_cgroup {
    char *dir;
    int dirfd;
};

#define NAME_MAX_LEN 200

/* ---- parsers ------------------------------------------------------------ */

/* The next line of the text at *rest: its start and length without the
 * newline, *rest moved past it. 0 at the end of the text. */
static int next_line(const char **rest, const char **line, size_t *n)
{
    const char *eol;
    if (*rest == NULL || **rest == '\0')
        return 0;
    *line = *rest;
    eol = strchr(*line, '\n');
    *n = eol ? (size_t)(eol - *line) : strlen(*line);
    *rest = eol ? eol + 1 : NULL;
    return 1;
}

static int copy_field(const char *s, size_t n, char *out, size_t len)
{
    if (n >= len)
        return -ENAMETOOLONG;
    memcpy(out, s, n);
    out[n] = '\0';
    return 0;
}

int sup_cgroup_parse_self(const char *text, char *path, size_t len)
{
    const char *rest = text, *line;
    size_t n;
    while (next_line(&rest, &line, &n)) {
        if (n >= 3 && strncmp(line, "0::", 3) == 0)
            return copy_field(line + 3, n - 3, path, len);
    }
    return -ENOENT;
}

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static int unescape_field(const char *s, size_t n, char *out, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\\' && i + 3 < n && s[i + 1] >= '0' && s[i + 1] <= '3' &&
            s[i + 2] >= '0' && s[i + 2] <= '7' && s[i + 3] >= '0' &&
            s[i + 3] <= '7') {
            c = (char)((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 +
                       (s[i + 3] - '0'));
            i += 3;
        }
        if (o + 1 >= len)
            return -ENAMETOOLONG;
        out[o++] = c;
    }
    out[o] = '\0';
    return 0;
}

int sup_cgroup_parse_mount(const char *text, char *path, size_t len)
{
    const char *rest = text, *line;
    size_t n;
    while (next_line(&rest, &line, &n)) {
        const char *sep = NULL, *f, *mp = NULL;
        size_t mplen = 0;
        int field = 0;
        /* "id parent maj:min root mountpoint options [opt...] - type ..." */
        for (f = line; f < line + n && field < 5;) {
            const char *end = f;
            while (end < line + n && *end != ' ')
                end++;
            field++;
            if (field == 5) {
                mp = f;
                mplen = (size_t)(end - f);
            }
            f = end < line + n ? end + 1 : end;
        }
        for (f = line; mp && f + 3 <= line + n; f++) {
            if (f[0] == ' ' && f[1] == '-' && f[2] == ' ') {
                sep = f + 3;
                break;
            }
        }
        if (sep && (size_t)(line + n - sep) >= 8 &&
            strncmp(sep, "cgroup2 ", 8) == 0)
            return unescape_field(mp, mplen, path, len);
    }
    return -ENOENT;
}

int sup_cgroup_parse_key(const char *text, const char *key, long long *value)
{
    size_t klen = strlen(key);
    const char *rest = text, *line;
    size_t n;
    while (next_line(&rest, &line, &n)) {
        if (n > klen && strncmp(line, key, klen) == 0 && line[klen] == ' ') {
            char *end = NULL;
            long long v;
            errno = 0;
            v = strtoll(line + klen + 1, &end, 10);
            if (errno || end == line + klen + 1 ||
                (*end != '\n' && *end != '\0'))
                return -EINVAL;
            *value = v;
            return 0;
        }
    }
    return -ENOENT;
}

/* ---- file helpers ------------------------------------------------------- */

static int read_at(int dirfd, const char *name, char *buf, size_t size)
{
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    size_t got = 0;
    int rc = 0;
    if (fd < 0)
        return -errno;
    while (got + 1 < size) {
        ssize_t n = read(fd, buf + got, size - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            break;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    buf[got] = '\0';
    close(fd);
    return rc;
}

static int write_at(int dirfd, const char *name, const char *value)
{
    int fd = openat(dirfd, name, O_WRONLY | O_CLOEXEC | O_NOCTTY);
    size_t n = strlen(value);
    ssize_t w;
    int rc = 0;
    if (fd < 0)
        return -errno;
    do {
        w = write(fd, value, n);
    } while (w < 0 && errno == EINTR);
    if (w < 0)
        rc = -errno;
    else if ((size_t)w != n)
        rc = -EIO;
    close(fd);
    return rc;
}

static int has_word(const char *list, const char *word)
{
    size_t wl = strlen(word);
    const char *p = list;
    while ((p = strstr(p, word)) != NULL) {
        int starts = p == list || isspace((unsigned char)p[-1]);
        int ends = p[wl] == '\0' || isspace((unsigned char)p[wl]);
        if (starts && ends)
            return 1;
        p += wl;
    }
    return 0;
}

static int valid_name(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > NAME_MAX_LEN)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!isalnum(c) && c != '-' && c != '_')
            return 0;
    }
    return strcmp(name, SUP_CGROUP_SELF) != 0;
}

static void trim_newline(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
        s[--n] = '\0';
}

/* 1 with the first pid in dirfd's cgroup.procs that is not ours, 0 when there
 * is none, a negative errno when unreadable. */
static int other_process(int dirfd, char *pid, size_t len)
{
    char text[4096], *line, *save = NULL;
    long self = (long)getpid();
    int rc = read_at(dirfd, "cgroup.procs", text, sizeof(text));
    if (rc < 0)
        return rc;
    for (line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        if (strtol(line, NULL, 10) != self) {
            snprintf(pid, len, "%s", line);
            return 1;
        }
    }
    return 0;
}

/* ---- taking over the subtree -------------------------------------------- */

sup_cgroup_t *sup_cgroup_open(const char *dir, char *msg, size_t len)
{
    sup_cgroup_t *self = NULL;
    char ctl[512], pid[32], other[32];
    int fd = -1, selffd = -1, rc;
    const char *missing = NULL;

    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(msg, len, "cannot open '%s': %s", dir, strerror(errno));
        goto cleanup;
    }
    rc = read_at(fd, "cgroup.controllers", ctl, sizeof(ctl));
    if (rc < 0) {
        snprintf(msg, len, "'%s' is not a cgroup v2 directory: %s", dir,
                 strerror(-rc));
        goto cleanup;
    }
    trim_newline(ctl);
    if (!has_word(ctl, "memory"))
        missing = "memory";
    else if (!has_word(ctl, "cpu"))
        missing = "cpu";
    else if (!has_word(ctl, "pids"))
        missing = "pids";
    if (missing) {
        snprintf(msg, len, "cgroup '%s' offers controllers '%s', without '%s'",
                 dir, ctl, missing);
        goto cleanup;
    }
    if (faccessat(fd, ".", W_OK, 0) < 0 ||
        faccessat(fd, "cgroup.subtree_control", W_OK, 0) < 0 ||
        faccessat(fd, "cgroup.procs", W_OK, 0) < 0) {
        snprintf(msg, len, "cgroup '%s' is not writable: %s", dir,
                 strerror(errno));
        goto cleanup;
    }
    /* Processes we do not own would block the controllers (no internal
     * processes): then this cgroup was not delegated to us alone. */
    rc = other_process(fd, other, sizeof(other));
    if (rc != 0) {
        if (rc > 0)
            snprintf(msg, len, "cgroup '%s' holds other processes (pid %s)",
                     dir, other);
        else
            snprintf(msg, len, "cannot read '%s/cgroup.procs': %s", dir,
                     strerror(-rc));
        goto cleanup;
    }
    if (mkdirat(fd, SUP_CGROUP_SELF, 0755) < 0 && errno != EEXIST) {
        snprintf(msg, len, "cannot create cgroup '%s/%s': %s", dir,
                 SUP_CGROUP_SELF, strerror(errno));
        goto cleanup;
    }
    selffd = openat(fd, SUP_CGROUP_SELF, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    snprintf(pid, sizeof(pid), "%ld", (long)getpid());
    rc = selffd < 0 ? -errno : write_at(selffd, "cgroup.procs", pid);
    if (rc < 0) {
        snprintf(msg, len, "cannot move the supervisor into '%s/%s': %s", dir,
                 SUP_CGROUP_SELF, strerror(-rc));
        goto cleanup;
    }
    rc = write_at(fd, "cgroup.subtree_control", "+memory +cpu +pids");
    if (rc < 0) {
        snprintf(msg, len, "cannot enable memory, cpu and pids in '%s': %s%s",
                 dir, strerror(-rc),
                 rc == -EBUSY ? " (other processes remain in it)" : "");
        goto cleanup;
    }
    self = calloc(1, sizeof(*self));
    if (self == NULL || (self->dir = strdup(dir)) == NULL) {
        free(self);
        self = NULL;
        snprintf(msg, len, "out of memory");
        goto cleanup;
    }
    self->dirfd = fd;
    fd = -1;
    snprintf(msg, len, "workers get their own cgroups under '%s'", dir);
cleanup:
    if (selffd >= 0)
        close(selffd);
    if (fd >= 0)
        close(fd);
    return self;
}

/* mountinfo runs to hundreds of lines on container hosts: one at a time. */
static int find_mount(char *mnt, size_t len)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    char *line = NULL;
    size_t cap = 0;
    int rc = -ENOENT;
    if (f == NULL)
        return -errno;
    while (rc == -ENOENT && getline(&line, &cap, f) > 0)
        rc = sup_cgroup_parse_mount(line, mnt, len);
    free(line);
    fclose(f);
    return rc;
}

sup_cgroup_t *sup_cgroup_new(char *msg, size_t len)
{
    char text[8192], own[PATH_MAX], mnt[PATH_MAX], dir[2 * PATH_MAX + 2];
    int rc;

    rc = read_at(AT_FDCWD, "/proc/self/cgroup", text, sizeof(text));
    if (rc < 0) {
        snprintf(msg, len, "cannot read /proc/self/cgroup: %s", strerror(-rc));
        return NULL;
    }
    rc = sup_cgroup_parse_self(text, own, sizeof(own));
    if (rc < 0) {
        snprintf(msg, len, "no cgroup v2 line in /proc/self/cgroup");
        return NULL;
    }
    rc = find_mount(mnt, sizeof(mnt));
    if (rc < 0) {
        snprintf(msg, len, "no cgroup2 file system is mounted");
        return NULL;
    }
    snprintf(dir, sizeof(dir), "%s%s", strcmp(mnt, "/") == 0 ? "" : mnt,
             strcmp(own, "/") == 0 ? "" : own);
    /* "/" is the host's root cgroup, never ours to split, unless a cgroup
     * namespace shows a delegated cgroup as its root: only the true root
     * lacks cgroup.type. */
    if (strcmp(own, "/") == 0 && faccessat(AT_FDCWD, dir, F_OK, 0) == 0) {
        char type[sizeof(dir) + 16];
        snprintf(type, sizeof(type), "%s/cgroup.type", dir);
        if (access(type, F_OK) < 0) {
            snprintf(msg, len, "the supervisor runs in the root cgroup");
            return NULL;
        }
    }
    return sup_cgroup_open(dir, msg, len);
}

void sup_cgroup_destroy(sup_cgroup_t **self_p)
{
    sup_cgroup_t *self = self_p ? *self_p : NULL;
    if (self == NULL)
        return;
    if (self->dirfd >= 0)
        close(self->dirfd);
    free(self->dir);
    free(self);
    *self_p = NULL;
}

const char *sup_cgroup_dir(const sup_cgroup_t *self)
{
    return self->dir;
}

/* ---- worker cgroups ----------------------------------------------------- */

/* A leftover cgroup may be reused only when no process is left in it. */
static int is_empty(int fd)
{
    char buf[64];
    int rc = read_at(fd, "cgroup.procs", buf, sizeof(buf));
    if (rc < 0)
        return rc;
    trim_newline(buf);
    return buf[0] == '\0';
}

int sup_cgroup_create(sup_cgroup_t *self, const char *name, long memory_mb,
                      long cpu_percent, long pids_max, int *dirfd_out,
                      char *err, size_t errlen)
{
    char val[64];
    const char *file = NULL;
    int fd = -1, created = 0, rc = 0;

    *dirfd_out = -1;
    if (!valid_name(name)) {
        snprintf(err, errlen, "invalid cgroup name '%s'", name ? name : "");
        return -EINVAL;
    }
    if (memory_mb < 0 || memory_mb > LLONG_MAX / 1048576 || cpu_percent < 0 ||
        cpu_percent > 100000 || pids_max < 0) {
        snprintf(err, errlen,
                 "cgroup '%s': limits out of range (memory %ld MB, cpu %ld%%, "
                 "pids %ld)",
                 name, memory_mb, cpu_percent, pids_max);
        return -EINVAL;
    }
    if (mkdirat(self->dirfd, name, 0755) == 0)
        created = 1;
    else if (errno != EEXIST) {
        rc = -errno;
        snprintf(err, errlen, "cannot create cgroup '%s/%s': %s", self->dir,
                 name, strerror(errno));
        goto cleanup;
    }
    fd = openat(self->dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot open cgroup '%s/%s': %s", self->dir, name,
                 strerror(errno));
        goto cleanup;
    }
    if (!created && (rc = is_empty(fd)) != 1) {
        if (rc == 0)
            rc = -EBUSY;
        snprintf(err, errlen, "cgroup '%s/%s' already exists and is in use",
                 self->dir, name);
        goto cleanup;
    }
    rc = 0;

    file = "memory.max";
    if (memory_mb > 0)
        snprintf(val, sizeof(val), "%lld", (long long)memory_mb * 1048576);
    else
        snprintf(val, sizeof(val), "max");
    if ((rc = write_at(fd, file, val)) < 0)
        goto cleanup;
    /* Swap would let a worker exceed its memory limit slowly instead of
     * failing fast; the file exists only with swap accounting. */
    file = "memory.swap.max";
    if (faccessat(fd, file, F_OK, 0) == 0 && (rc = write_at(fd, file, "0")) < 0)
        goto cleanup;
    /* An OOM kill takes the whole worker, never half of it. */
    file = "memory.oom.group";
    if (faccessat(fd, file, F_OK, 0) == 0 && (rc = write_at(fd, file, "1")) < 0)
        goto cleanup;
    file = "cpu.max";
    if (cpu_percent > 0)
        snprintf(val, sizeof(val), "%ld %d",
                 cpu_percent * (SUP_CGROUP_CPU_PERIOD / 100),
                 SUP_CGROUP_CPU_PERIOD);
    else
        snprintf(val, sizeof(val), "max %d", SUP_CGROUP_CPU_PERIOD);
    if ((rc = write_at(fd, file, val)) < 0)
        goto cleanup;
    file = "pids.max";
    if (pids_max > 0)
        snprintf(val, sizeof(val), "%ld", pids_max);
    else
        snprintf(val, sizeof(val), "max");
    if ((rc = write_at(fd, file, val)) < 0)
        goto cleanup;
    file = NULL;
    *dirfd_out = fd;
    fd = -1;
cleanup:
    if (rc < 0 && file)
        snprintf(err, errlen, "cannot write '%s' of cgroup '%s/%s': %s", file,
                 self->dir, name, strerror(-rc));
    if (fd >= 0)
        close(fd);
    if (rc < 0 && created)
        (void)unlinkat(self->dirfd, name, AT_REMOVEDIR);
    return rc;
}

int sup_cgroup_oom_killed(sup_cgroup_t *self, const char *name)
{
    char path[NAME_MAX_LEN + 32], text[1024];
    long long v = 0;
    int rc;
    if (!valid_name(name))
        return -EINVAL;
    snprintf(path, sizeof(path), "%s/memory.events", name);
    rc = read_at(self->dirfd, path, text, sizeof(text));
    if (rc == 0)
        rc = sup_cgroup_parse_key(text, "oom_kill", &v);
    if (rc < 0)
        return rc;
    return v > 0;
}

int sup_cgroup_kill(sup_cgroup_t *self, const char *name)
{
    char path[NAME_MAX_LEN + 32];
    if (!valid_name(name))
        return -EINVAL;
    snprintf(path, sizeof(path), "%s/cgroup.kill", name);
    return write_at(self->dirfd, path, "1");
}

int sup_cgroup_remove(sup_cgroup_t *self, const char *name)
{
    if (!valid_name(name))
        return -EINVAL;
    if (unlinkat(self->dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        return -errno;
    return 0;
}
