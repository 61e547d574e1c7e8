/*
 * Tests dip_storage_io, the one API over both backends: settings that
 * cannot work, keys refused before any backend is reached, and the checks
 * on an upload's source (a missing file named).
 */
#include "storage_test.h"
#include "it_tmp.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

typedef struct {
    char dir[256];
    char url[512];
    dip_config_t cfg;
    dip_storage_t *st;
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
    dip_config_init(&f->cfg);
    set_str(&f->cfg.storage_url, f->url);
    f->st = dip_storage_new(&f->cfg, NULL, 0);
    *state = f;
    return f->st ? 0 : -1;
}

static int file_teardown(void **state)
{
    file_fix_t *f = *state;
    dip_storage_destroy(&f->st);
    dip_config_release(&f->cfg);
    rm_tree(f->dir);
    free(f);
    return 0;
}

static void test_ops_refuse_bad_keys(void **state)
{
    file_fix_t *f = *state;
    char err[512] = "";
    sink_state_t s;
    dip_storage_sink_t sink = make_sink(&s);

    /* The operations refuse them before touching anything. */
    assert_int_equal(dip_storage_get(f->st, "../x", 0, &sink, err, sizeof(err)),
                     DIP_STORAGE_EINVAL);
    assert_int_equal(dip_storage_get(f->st, "", 0, &sink, err, sizeof(err)),
                     DIP_STORAGE_EINVAL);
    assert_int_equal(dip_storage_put_file(f->st, "/etc/passwd", "/dev/null",
                                          err, sizeof(err)),
                     DIP_STORAGE_EINVAL);
    assert_int_equal(dip_storage_delete(f->st, "a/../../b", err, sizeof(err)),
                     DIP_STORAGE_EINVAL);
    assert_int_equal(s.size_calls, 0);
}

static void test_put_source_checked(void **state)
{
    file_fix_t *f = *state;
    char err[512] = "";
    /* A missing source file is named. */
    assert_int_equal(dip_storage_put_file(f->st, "x.csv", "/nonexistent/src",
                                          err, sizeof(err)),
                     DIP_STORAGE_EFAIL);
    assert_non_null(strstr(err, "cannot read '/nonexistent/src'"));
    /* A directory is not an upload. */
    assert_int_equal(
        dip_storage_put_file(f->st, "x.csv", f->dir, err, sizeof(err)),
        DIP_STORAGE_EFAIL);
    assert_non_null(strstr(err, "not a regular file"));
}

typedef struct {
    dip_storage_t *st;
    const char *path;
} put_args_t;

static int put_in_child(void *arg, char *err, size_t errlen)
{
    put_args_t *a = arg;
    return dip_storage_put_file(a->st, "from-fifo.csv", a->path, err, errlen);
}

/* A FIFO named as the source of an upload is refused at once instead of
 * waiting for a writer. */
static void test_put_source_fifo(void **state)
{
    file_fix_t *f = *state;
    char fifo[512], err[512] = "";
    put_args_t a = {f->st, fifo};
    snprintf(fifo, sizeof(fifo), "%s-fifo", f->dir);
    assert_int_equal(mkfifo(fifo, 0644), 0);
    assert_int_equal(in_child(put_in_child, &a, err, sizeof(err),
                              "uploading from a FIFO blocked"),
                     DIP_STORAGE_EFAIL);
    unlink(fifo);
    assert_non_null(strstr(err, "not a regular file"));
}

static void test_new_refuses_bad_settings(void **state)
{
    dip_config_t cfg;
    char err[512] = "";
    (void)state;
    dip_config_init(&cfg);
    assert_null(dip_storage_new(&cfg, err, sizeof(err)));
    assert_string_equal(err, "DEALIMPORT_STORAGE_URL is not set");
    set_str(&cfg.storage_url, "ftp://x");
    assert_null(dip_storage_new(&cfg, err, sizeof(err)));
    assert_non_null(strstr(err, "'ftp://x' is neither"));
    set_str(&cfg.storage_url, "s3://deals");
    assert_null(dip_storage_new(&cfg, err, sizeof(err)));
    assert_non_null(strstr(err, "DEALIMPORT_S3_ACCESS_KEY"));
    set_str(&cfg.s3_access_key, "a");
    set_str(&cfg.s3_secret_key, "b");
    set_str(&cfg.s3_endpoint, "localhost:9000");
    assert_null(dip_storage_new(&cfg, err, sizeof(err)));
    assert_non_null(strstr(err, "'localhost:9000' does not start with"));
    set_str(&cfg.storage_url, "s3://deals/sub");
    assert_null(dip_storage_new(&cfg, err, sizeof(err)));
    assert_non_null(strstr(err, "does not name a bucket"));
    dip_config_release(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ops_refuse_bad_keys),
        cmocka_unit_test(test_put_source_checked),
        cmocka_unit_test(test_put_source_fifo),
        cmocka_unit_test(test_new_refuses_bad_settings),
    };
    return cmocka_run_group_tests_name("storage", tests, file_setup,
                                       file_teardown);
}
