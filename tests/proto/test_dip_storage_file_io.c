/*
 * Tests dip_storage_file_io, the file:// backend: whole and offset
 * downloads, missing files, symbolic links not followed, a sink that stops,
 * upload and download round trips through a temporary name and a rename.
 */
#include "storage_test.h"
#include "it_tmp.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "dip_storage_file_io.h"

/* Uploads the file at path through the backend's descriptor API. */
static int put_path(dip_storage_file_t *st, const char *key, const char *path,
                    char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC), rc;
    assert_true(fd >= 0);
    rc = dip_storage_file_put_fd(st, key, fd, err, errlen);
    close(fd);
    return rc;
}

/* --- file:// ------------------------------------------------------------ */

typedef struct {
    char dir[256];
    char url[512];
    dip_storage_file_t *st;
} file_fix_t;

static int file_setup(void **state)
{
    file_fix_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "%s/dip-storage-XXXXXX", it_tmpdir());
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->url, sizeof(f->url), "file://%s/", f->dir);
    f->st = dip_storage_file_new(f->url, NULL, 0);
    *state = f;
    return f->st ? 0 : -1;
}

static int file_teardown(void **state)
{
    file_fix_t *f = *state;
    dip_storage_file_destroy(&f->st);
    rm_tree(f->dir);
    free(f);
    return 0;
}

static void test_file_whole_and_offset(void **state)
{
    file_fix_t *f = *state;
    const size_t n = 300000; /* several read chunks */
    char *data = make_bytes(n, 7), path[512], err[512] = "";
    sink_state_t s;
    dip_storage_sink_t sink = make_sink(&s);

    snprintf(path, sizeof(path), "%s/deals.csv", f->dir);
    write_file(path, data, n);
    assert_int_equal(
        dip_storage_file_get(f->st, "deals.csv", 0, &sink, err, sizeof(err)),
        DIP_STORAGE_OK);
    assert_int_equal(s.size_calls, 1);
    assert_int_equal(s.size, (int64_t)n);
    assert_false(s.data_before_size);
    assert_int_equal(s.len, n);
    assert_memory_equal(s.buf, data, n);
    /* A file's identity: its size and modification time. */
    assert_int_equal(s.identity_calls, 1);
    assert_string_equal(s.etag, "");
    assert_int_equal(s.id_size, (int64_t)n);
    assert_true(s.id_mtime_ns > 0);
    free(s.buf);

    sink = make_sink(&s);
    assert_int_equal(dip_storage_file_get(f->st, "deals.csv", 123457, &sink,
                                          err, sizeof(err)),
                     DIP_STORAGE_OK);
    assert_int_equal(s.size, (int64_t)n); /* the total, not what is left */
    assert_int_equal(s.len, n - 123457);
    assert_memory_equal(s.buf, data + 123457, n - 123457);
    free(s.buf);

    /* From the very end: nothing, successfully; past it: an error. */
    sink = make_sink(&s);
    assert_int_equal(
        dip_storage_file_get(f->st, "deals.csv", n, &sink, err, sizeof(err)),
        DIP_STORAGE_OK);
    assert_int_equal(s.len, 0);
    assert_int_equal(s.size_calls, 1);
    assert_int_equal(dip_storage_file_get(f->st, "deals.csv", n + 1, &sink, err,
                                          sizeof(err)),
                     DIP_STORAGE_EFAIL);
    assert_non_null(strstr(err, "offset 300001 is beyond the end of file "
                                "'deals.csv'"));
    free(s.buf);
    free(data);
}

/* A sink that writes into the file it reads, on its first call: in place
 * (same size, the time moves) or at the end. */
typedef struct {
    sink_state_t s;
    const char *path;
    int append, wrote;
} writer_sink_t;

static int write_back(void *arg, const char *buf, size_t len)
{
    writer_sink_t *w = arg;
    if (!w->wrote) {
        int fd =
            open(w->path, O_WRONLY | O_CLOEXEC | (w->append ? O_APPEND : 0));
        struct timespec later[2] = {{0, UTIME_OMIT}, {4000000000, 0}};
        assert_true(fd >= 0);
        assert_int_equal(pwrite(fd, "X", 1, 200000), 1);
        /* A clock tick may be coarse: the time moves for sure. */
        if (!w->append)
            assert_int_equal(futimens(fd, later), 0);
        close(fd);
        w->wrote = 1;
    }
    return sink_data(&w->s, buf, len);
}

/* A file written during its download (class 8): ECHANGED, and the sink
 * has the bytes read before the write only. */
static void test_file_changed_during_download(void **state)
{
    file_fix_t *f = *state;
    const size_t n = 300000;
    char *data = make_bytes(n, 9), path[512], err[512] = "";
    snprintf(path, sizeof(path), "%s/moving.csv", f->dir);
    for (int append = 0; append < 2; append++) {
        writer_sink_t w;
        dip_storage_sink_t sink;
        memset(&w, 0, sizeof(w));
        sink = make_sink(&w.s);
        sink.arg = &w;
        sink.data = write_back;
        w.path = path;
        w.append = append;
        write_file(path, data, n);
        assert_int_equal(dip_storage_file_get(f->st, "moving.csv", 0, &sink,
                                              err, sizeof(err)),
                         DIP_STORAGE_ECHANGED);
        assert_non_null(strstr(err, "file 'moving.csv' in storage"));
        assert_non_null(strstr(err, "changed during the download"));
        assert_int_equal(w.s.len, 128 * 1024);
        assert_memory_equal(w.s.buf, data, w.s.len);
        free(w.s.buf);
    }
    free(data);
}

static int stop_now(void *arg)
{
    (void)arg;
    return 1;
}

/* A stop asked before a read ends the download there. */
static void test_file_stop(void **state)
{
    file_fix_t *f = *state;
    char path[512], err[512] = "";
    sink_state_t s;
    dip_storage_sink_t sink = make_sink(&s);
    snprintf(path, sizeof(path), "%s/stopped.csv", f->dir);
    write_file(path, "a,b\n1,2\n", 8);
    dip_storage_file_set_stop(f->st, stop_now, NULL);
    assert_int_equal(
        dip_storage_file_get(f->st, "stopped.csv", 0, &sink, err, sizeof(err)),
        DIP_STORAGE_EABORT);
    dip_storage_file_set_stop(f->st, NULL, NULL);
    assert_int_equal(s.len, 0);
    assert_non_null(strstr(err, "was stopped"));
    free(s.buf);
}

static void test_file_missing(void **state)
{
    file_fix_t *f = *state;
    char err[512] = "", want[1024];
    sink_state_t s;
    dip_storage_sink_t sink = make_sink(&s);
    assert_int_equal(dip_storage_file_get(f->st, "imports/nope.csv", 0, &sink,
                                          err, sizeof(err)),
                     DIP_STORAGE_ENOTFOUND);
    snprintf(want, sizeof(want),
             "file 'imports/nope.csv' was not found in storage '%s'", f->url);
    assert_string_equal(err, want);
    assert_int_equal(s.size_calls, 0);
    assert_int_equal(s.len, 0);
}

/* A symbolic link in the storage is not followed out of it. */
static void test_file_symlink_refused(void **state)
{
    file_fix_t *f = *state;
    char link[512], err[512] = "";
    sink_state_t s;
    dip_storage_sink_t sink = make_sink(&s);
    snprintf(link, sizeof(link), "%s/etc", f->dir);
    assert_int_equal(symlink("/etc", link), 0);
    assert_int_equal(
        dip_storage_file_get(f->st, "etc/passwd", 0, &sink, err, sizeof(err)),
        DIP_STORAGE_EINVAL);
    assert_non_null(strstr(err, "symbolic link"));
    assert_int_equal(s.len, 0);
    unlink(link);
}

static void test_file_sink_abort(void **state)
{
    file_fix_t *f = *state;
    const size_t n = 400000;
    char *data = make_bytes(n, 9), path[512], err[512] = "";
    sink_state_t s;
    dip_storage_sink_t sink = make_sink(&s);
    snprintf(path, sizeof(path), "%s/big.csv", f->dir);
    write_file(path, data, n);
    s.stop_after = 1;
    assert_int_equal(
        dip_storage_file_get(f->st, "big.csv", 0, &sink, err, sizeof(err)),
        DIP_STORAGE_EABORT);
    assert_non_null(strstr(err, "'big.csv'"));
    assert_non_null(strstr(err, "stopped by its reader"));
    /* Stopped after the first chunk: nothing more was read into the sink. */
    assert_true(s.len > 0 && s.len < n);
    assert_memory_equal(s.buf, data, s.len);
    free(s.buf);
    free(data);
}

static int count_entries(const char *dir)
{
    char cmd[1024];
    int n = 0;
    FILE *p;
    snprintf(cmd, sizeof(cmd), "ls -A '%s'", dir);
    p = popen(cmd, "r");
    assert_non_null(p);
    while (fgets(cmd, sizeof(cmd), p))
        n++;
    pclose(p);
    return n;
}

static void test_file_put_get_delete(void **state)
{
    file_fix_t *f = *state;
    const size_t n = 150001;
    const char *key = "imports/2024/a b+c%\xc3\xbc.csv";
    char *data = make_bytes(n, 11), src[512], sub[512], err[512] = "";
    sink_state_t s;
    dip_storage_sink_t sink = make_sink(&s);

    snprintf(src, sizeof(src), "%s-src", f->dir);
    write_file(src, data, n);
    assert_int_equal(put_path(f->st, key, src, err, sizeof(err)),
                     DIP_STORAGE_OK);
    assert_int_equal(
        dip_storage_file_get(f->st, key, 0, &sink, err, sizeof(err)),
        DIP_STORAGE_OK);
    assert_int_equal(s.len, n);
    assert_memory_equal(s.buf, data, n);
    /* Only the file is left behind, no temporary. */
    snprintf(sub, sizeof(sub), "%s/imports/2024", f->dir);
    assert_int_equal(count_entries(sub), 1);

    /* Replacing keeps one file with the new bytes. */
    write_file(src, "new", 3);
    assert_int_equal(put_path(f->st, key, src, err, sizeof(err)),
                     DIP_STORAGE_OK);
    free(s.buf);
    sink = make_sink(&s);
    assert_int_equal(
        dip_storage_file_get(f->st, key, 0, &sink, err, sizeof(err)),
        DIP_STORAGE_OK);
    assert_int_equal(s.len, 3);
    assert_memory_equal(s.buf, "new", 3);
    assert_int_equal(count_entries(sub), 1);

    assert_int_equal(dip_storage_file_delete(f->st, key, err, sizeof(err)),
                     DIP_STORAGE_OK);
    assert_int_equal(
        dip_storage_file_get(f->st, key, 0, &sink, err, sizeof(err)),
        DIP_STORAGE_ENOTFOUND);
    /* Deleting what is not there is fine. */
    assert_int_equal(dip_storage_file_delete(f->st, key, err, sizeof(err)),
                     DIP_STORAGE_OK);
    assert_int_equal(
        dip_storage_file_delete(f->st, "no/such/dir/x", err, sizeof(err)),
        DIP_STORAGE_OK);
    unlink(src);
    free(s.buf);
    free(data);
}

typedef struct {
    dip_storage_file_t *st;
    const char *key;
    sink_state_t *s;
} get_args_t;

static int get_in_child(void *arg, char *err, size_t errlen)
{
    get_args_t *a = arg;
    dip_storage_sink_t sink = {a->s, sink_size, sink_data, NULL};
    return dip_storage_file_get(a->st, a->key, 0, &sink, err, errlen);
}

/* A FIFO under a key is refused at once: opening it for reading must not
 * wait for a writer that never comes. Other non-files are refused too. */
static void test_file_fifo_refused(void **state)
{
    file_fix_t *f = *state;
    char path[512], err[512] = "";
    sink_state_t s;
    get_args_t a = {f->st, "fifos/pipe.csv", &s};
    (void)make_sink(&s);
    snprintf(path, sizeof(path), "%s/fifos", f->dir);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(path, sizeof(path), "%s/fifos/pipe.csv", f->dir);
    assert_int_equal(mkfifo(path, 0644), 0);
    assert_int_equal(in_child(get_in_child, &a, err, sizeof(err),
                              "reading a FIFO from storage blocked"),
                     DIP_STORAGE_EFAIL);
    assert_non_null(strstr(err, "'fifos/pipe.csv' in storage"));
    assert_non_null(strstr(err, "is not a regular file"));
    unlink(path);

    /* A directory under the key. */
    assert_int_equal(mkdir(path, 0755), 0);
    a.key = "fifos/pipe.csv";
    assert_int_equal(in_child(get_in_child, &a, err, sizeof(err),
                              "reading a directory from storage blocked"),
                     DIP_STORAGE_EFAIL);
    assert_non_null(strstr(err, "is not a regular file"));
    rmdir(path);

    /* A FIFO where a directory of the key should be. */
    snprintf(path, sizeof(path), "%s/fifos/sub", f->dir);
    assert_int_equal(mkfifo(path, 0644), 0);
    a.key = "fifos/sub/x.csv";
    assert_int_equal(in_child(get_in_child, &a, err, sizeof(err),
                              "walking through a FIFO in storage blocked"),
                     DIP_STORAGE_ENOTFOUND);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file_whole_and_offset),
        cmocka_unit_test(test_file_changed_during_download),
        cmocka_unit_test(test_file_stop),
        cmocka_unit_test(test_file_missing),
        cmocka_unit_test(test_file_symlink_refused),
        cmocka_unit_test(test_file_sink_abort),
        cmocka_unit_test(test_file_put_get_delete),
        cmocka_unit_test(test_file_fifo_refused),
    };
    return cmocka_run_group_tests_name("file", tests, file_setup,
                                       file_teardown);
}
