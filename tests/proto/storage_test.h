/*
 * Helpers shared by the storage tests: a sink that keeps or counts what it
 * is given, deterministic bytes, files and folders made and removed.
 */
#ifndef STORAGE_TEST_H
#define STORAGE_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dip_config.h"
#include "dip_storage_io.h"
#include "dip_text.h"

/* --- helpers ------------------------------------------------------------ */

typedef struct {
    char *buf;
    size_t len, cap;
    int size_calls;
    int64_t size;
    int data_before_size; /* data arrived before size() */
    size_t stop_after;    /* stop once this many bytes arrived; 0 never */
    int copy;             /* keep the bytes (else only count them) */
} sink_state_t;

static inline void sink_size(void *arg, int64_t total)
{
    sink_state_t *s = arg;
    s->size_calls++;
    s->size = total;
}

static inline int sink_data(void *arg, const char *buf, size_t len)
{
    sink_state_t *s = arg;
    if (s->size_calls == 0)
        s->data_before_size = 1;
    if (s->copy) {
        if (s->len + len > s->cap) {
            size_t cap = s->cap ? s->cap : 4096;
            while (cap < s->len + len)
                cap *= 2;
            s->buf = realloc(s->buf, cap);
            assert_non_null(s->buf);
            s->cap = cap;
        }
        memcpy(s->buf + s->len, buf, len);
    }
    s->len += len;
    return s->stop_after && s->len >= s->stop_after;
}

static inline dip_storage_sink_t make_sink(sink_state_t *s)
{
    memset(s, 0, sizeof(*s));
    s->copy = 1;
    s->size = -2;
    return (dip_storage_sink_t){s, sink_size, sink_data};
}

/* Deterministic bytes that differ at every offset. */
static inline char *make_bytes(size_t n, uint32_t seed)
{
    char *b = malloc(n ? n : 1);
    uint32_t x = seed ? seed : 1;
    assert_non_null(b);
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        b[i] = (char)(x >> 24);
    }
    return b;
}

static inline void write_file(const char *path, const char *data, size_t n)
{
    FILE *f = fopen(path, "wbe");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static inline int rm_one(const char *path, const struct stat *st, int flag,
                         struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static inline void rm_tree(const char *dir)
{
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static inline void set_str(char **field, const char *value)
{
    free(*field);
    *field = value ? strdup(value) : NULL;
}

static inline dip_storage_t *open_storage(dip_config_t *cfg)
{
    char err[512] = "";
    dip_storage_t *st = dip_storage_new(cfg, err, sizeof(err));
    if (st == NULL)
        fail_msg("dip_storage_new: %s", err);
    return st;
}

/* Runs fn(arg, err, errlen) in a child process and returns its result with
 * its sentence in err; a child still running after 20 s is killed and the
 * test fails with `hang` (an open that waits on a FIFO never returns, so the
 * call under test cannot be made in this process). */
static inline int in_child(int (*fn)(void *, char *, size_t), void *arg,
                           char *err, size_t errlen, const char *hang)
{
    int pfd[2], st = 0, rc = -100;
    struct pollfd p;
    ssize_t n;
    pid_t pid;
    assert_int_equal(pipe(pfd), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char buf[1024] = "";
        int r = fn(arg, buf + sizeof(int), sizeof(buf) - sizeof(int));
        memcpy(buf, &r, sizeof(int));
        if (write(pfd[1], buf, sizeof(buf)) < 0)
            _exit(2);
        _exit(0);
    }
    close(pfd[1]);
    p = (struct pollfd){pfd[0], POLLIN, 0};
    if (poll(&p, 1, 20000) <= 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        close(pfd[0]);
        fail_msg("%s", hang);
    }
    {
        char buf[1024];
        n = read(pfd[0], buf, sizeof(buf));
        if (n == (ssize_t)sizeof(buf)) {
            memcpy(&rc, buf, sizeof(int));
            dip_text_format(err, errlen, NULL, "%s", buf + sizeof(int));
        }
    }
    close(pfd[0]);
    waitpid(pid, &st, 0);
    return rc;
}

#endif
