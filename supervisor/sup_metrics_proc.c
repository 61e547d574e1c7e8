/*
 * sup_metrics_proc: the process's own figures from /proc, as Prometheus'
 * client libraries report them: CPU seconds and memory from
 * /proc/self/stat, the start time from its start tick and /proc/stat's
 * btime, the open descriptors by counting /proc/self/fd. The parse is kept
 * apart from the reads so that it is tested on fixed text.
 */
#include "sup_metrics_private.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

int sup_metrics_proc_parse_stat(const char *stat, long ticks_per_s,
                                long page_size, double boot_time_s,
                                sup_metrics_proc_t *out)
{
    /* Fields after the command name, counted from 3 (the state). */
    enum { UTIME = 14, STIME = 15, STARTTIME = 22, VSIZE = 23, RSS = 24 };
    unsigned long long v[RSS + 1];
    const char *p = strrchr(stat, ')');
    int field = 3;

    memset(v, 0, sizeof(v));
    if (p == NULL || ticks_per_s <= 0 || page_size <= 0)
        return -1;
    p++;
    while (field <= RSS) {
        char *end;
        while (*p == ' ')
            p++;
        if (*p == '\0' || *p == '\n')
            return -1;
        if (field == 3) { /* the state: a letter */
            while (*p && *p != ' ')
                p++;
        } else {
            /* Some fields may be negative (priority, nice): read them as
             * signed and keep only the ones we use, all unsigned. */
            long long s = strtoll(p, &end, 10);
            if (end == p)
                return -1;
            v[field] = s < 0 ? 0 : (unsigned long long)s;
            p = end;
        }
        field++;
    }
    out->cpu_seconds = (double)(v[UTIME] + v[STIME]) / (double)ticks_per_s;
    out->start_time_seconds =
        boot_time_s + (double)v[STARTTIME] / (double)ticks_per_s;
    out->virtual_bytes = (int64_t)v[VSIZE];
    out->resident_bytes = (int64_t)v[RSS] * page_size;
    return 0;
}

/* The whole small file at path into buf (NUL-terminated); -1 on error. */
static int slurp(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t len = 0;
    ssize_t n = 0;
    if (fd < 0)
        return -1;
    while (len + 1 < cap && (n = read(fd, buf + len, cap - 1 - len)) > 0)
        len += (size_t)n;
    close(fd);
    buf[len] = '\0';
    return n < 0 ? -1 : 0;
}

static double boot_time(void)
{
    /* /proc/stat is a few KB per CPU; btime comes after the cpu lines.
     * Renders run on two threads (the listener's, the loop's): no static
     * buffer. */
    size_t cap = 1 << 18;
    char *buf = malloc(cap);
    const char *b;
    double t = 0;
    if (buf != NULL && slurp("/proc/stat", buf, cap) == 0 &&
        (b = strstr(buf, "\nbtime ")) != NULL)
        t = strtod(b + 7, NULL);
    free(buf);
    return t;
}

static long count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    long n = 0;
    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    /* The directory's own descriptor is not the process's. */
    return n > 0 ? n - 1 : 0;
}

int sup_metrics_proc_read(sup_metrics_proc_t *out)
{
    char stat[1024];
    struct rlimit rl;
    memset(out, 0, sizeof(*out));
    out->open_fds = out->max_fds = -1;
    if (slurp("/proc/self/stat", stat, sizeof(stat)) < 0 ||
        sup_metrics_proc_parse_stat(stat, sysconf(_SC_CLK_TCK),
                                    sysconf(_SC_PAGESIZE), boot_time(),
                                    out) < 0)
        return -1;
    out->open_fds = count_fds();
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        out->max_fds = (long)rl.rlim_cur;
    return 0;
}
