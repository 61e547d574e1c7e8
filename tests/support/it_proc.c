/*
 * it_proc: finding the worker process of an import and reading the queue
 * document while an import runs, for the containment tests.
 */
#include "it_env.h"
#include "dip_bson.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The command line of process pid, its NULs as spaces; 0, or -1 when it
 * cannot be read. */
static int cmdline(const char *pid, char *buf, size_t len)
{
    char path[340];
    FILE *f;
    size_t n;
    snprintf(path, sizeof(path), "/proc/%s/cmdline", pid);
    f = fopen(path, "re");
    if (f == NULL)
        return -1;
    n = fread(buf, 1, len - 1, f);
    fclose(f);
    buf[n] = '\0';
    for (size_t i = 0; i < n; i++)
        if (buf[i] == '\0')
            buf[i] = ' ';
    return 0;
}

pid_t it_worker_pid(const bson_oid_t *qid)
{
    char hex[25];
    DIR *d = opendir("/proc");
    struct dirent *e;
    pid_t found = -1;
    bson_oid_to_string(qid, hex);
    while (d && (e = readdir(d)) != NULL) {
        char buf[4096];
        if (e->d_name[0] < '0' || e->d_name[0] > '9' ||
            cmdline(e->d_name, buf, sizeof(buf)) < 0)
            continue;
        if (strstr(buf, "dealimport-worker") && strstr(buf, hex) &&
            !strstr(buf, "/bin/sh")) {
            found = (pid_t)atoi(e->d_name);
            break;
        }
    }
    if (d)
        closedir(d);
    return found;
}

/* 1 when /proc/PID/stat says the process is a zombie (exited, not reaped):
 * no longer running. */
static int is_zombie(const char *pid)
{
    char path[300], buf[512];
    FILE *f;
    size_t n;
    const char *paren;
    snprintf(path, sizeof(path), "/proc/%s/stat", pid);
    f = fopen(path, "re");
    if (f == NULL)
        return 1;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    paren = strrchr(buf, ')');
    return paren == NULL || paren[1] == '\0' || paren[2] == 'Z' ||
           paren[2] == 'X';
}

/* 1 when process pid's parent is a dealimport-supervisor: a worker is
 * always its supervisor's own child (fork, then execve at once), so two
 * live workers of one import are two such children. A task a worker
 * cloned bears the worker's command line too (LeakSanitizer checks a
 * sanitizer build's worker at its exit from one, the symbolizer starts
 * from one) and is not a worker: its parent is the worker, or, once the
 * worker is gone, init or a subreaper (counted as a second worker before,
 * it failed the lease test under the sanitizers). */
static int child_of_supervisor(const char *pid)
{
    char path[300], buf[4096];
    FILE *f;
    long ppid = -1;
    snprintf(path, sizeof(path), "/proc/%s/status", pid);
    f = fopen(path, "re");
    if (f == NULL)
        return 0;
    while (fgets(buf, sizeof(buf), f))
        if (strncmp(buf, "PPid:", 5) == 0)
            ppid = atol(buf + 5);
    fclose(f);
    if (ppid <= 1)
        return 0;
    snprintf(path, sizeof(path), "%ld", ppid);
    return cmdline(path, buf, sizeof(buf)) == 0 &&
           strstr(buf, "dealimport-supervisor") != NULL;
}

int it_worker_pids(const bson_oid_t *qid, pid_t *out, int max)
{
    char hex[25];
    DIR *d = opendir("/proc");
    struct dirent *e;
    int n = 0;
    bson_oid_to_string(qid, hex);
    while (d && (e = readdir(d)) != NULL) {
        char buf[4096];
        if (e->d_name[0] < '0' || e->d_name[0] > '9' ||
            cmdline(e->d_name, buf, sizeof(buf)) < 0)
            continue;
        if (strstr(buf, "dealimport-worker") && strstr(buf, hex) &&
            !strstr(buf, "/bin/sh") && !is_zombie(e->d_name) &&
            child_of_supervisor(e->d_name)) {
            if (n < max)
                out[n] = (pid_t)atoi(e->d_name);
            n++;
        }
    }
    if (d)
        closedir(d);
    return n;
}

pid_t it_wait_worker(const bson_oid_t *qid, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 10) {
        pid_t pid = it_worker_pid(qid);
        if (pid > 0)
            return pid;
        usleep(10000);
    }
    return -1;
}

int64_t it_queue_int(it_env_t *env, const bson_oid_t *qid, const char *dotted)
{
    mongoc_collection_t *c = it_coll(env, "queues");
    bson_t *filter = BCON_NEW("_id", BCON_OID(qid));
    mongoc_cursor_t *cur =
        mongoc_collection_find_with_opts(c, filter, NULL, NULL);
    const bson_t *doc;
    int64_t v = -1;
    if (mongoc_cursor_next(cur, &doc))
        v = dip_bson_get_int(doc, dotted, -1);
    mongoc_cursor_destroy(cur);
    bson_destroy(filter);
    mongoc_collection_destroy(c);
    return v;
}

int it_wait_int(it_env_t *env, const bson_oid_t *qid, const char *dotted,
                int64_t at_least, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 20) {
        if (it_queue_int(env, qid, dotted) >= at_least)
            return 0;
        usleep(20000);
    }
    return -1;
}

void it_put_rows(it_env_t *env, const char *key, int rows, int cell_bytes)
{
    size_t cap = 64 + (size_t)rows * (size_t)(48 + cell_bytes), len = 0;
    char *buf = malloc(cap), *pad = malloc((size_t)cell_bytes + 1);
    memset(pad, 'x', (size_t)cell_bytes);
    pad[cell_bytes] = '\0';
    len += (size_t)snprintf(buf + len, cap - len,
                            "Deal Name,Value,Stage,Description\n");
    for (int i = 1; i <= rows; i++)
        len += (size_t)snprintf(buf + len, cap - len,
                                "Deal %d,%d,stage %d,%s\n", i, i, i % 4, pad);
    it_put(env, key, buf, len);
    free(pad);
    free(buf);
}

int it_file_contains(const char *path, const char *needle)
{
    FILE *f = fopen(path, "re");
    char line[4096];
    int found = 0;
    while (f && !found && fgets(line, sizeof(line), f))
        found = strstr(line, needle) != NULL;
    if (f)
        fclose(f);
    return found;
}
