/*
 * Tests sup_cleanup on the dev stack (skipped without it): a completed
 * import's source is deleted and source_deleted_at recorded, once; failed,
 * cancelled and paused imports, dry runs, imports whose error file is not
 * recorded yet and DEALIMPORT_DELETE_SOURCE=never keep theirs; ids as
 * stored (a string id); file:// storage too.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dip_bson.h"
#include "it_env.h"
#include "ts_indexes.h"
#include "sup_cleanup.h"
#include "sup_errfile.h"
#include "it_skip.h"
#include "it_tmp.h"

typedef struct {
    it_env_t env;
    int skip;
} fix_t;

static int setup(void **state)
{
    fix_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    f->skip = it_env_init(&f->env, "cleanup") != 0;
    if (!f->skip)
        ts_service_indexes(&f->env);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fix_t *f = *state;
    if (!f->skip)
        it_env_release(&f->env);
    free(f);
    return 0;
}

static fix_t *stack(void **state)
{
    fix_t *f = *state;
    if (f->skip) {
        IT_SKIP_MISSING("skipped: the development stack is not running "
                        "(run ./scripts/test or scripts/devstack up)\n");
    }
    return f;
}

static int count_sink(void *arg, const char *buf, size_t len)
{
    (void)buf;
    *(size_t *)arg += len;
    return 0;
}

/* 1 when key is in storage, 0 when it is not. */
static int exists(dip_storage_t *st, const char *key)
{
    size_t n = 0;
    dip_storage_sink_t sink = {&n, NULL, count_sink, NULL};
    char err[512];
    int rc = dip_storage_get(st, key, 0, &sink, err, sizeof(err));
    if (rc != 0 && rc != DIP_STORAGE_ENOTFOUND)
        fail_msg("get '%s': %s", key, err);
    return rc == 0;
}

static void put(dip_storage_t *st, const char *key)
{
    char path[512], err[512] = "";
    int fd = mkstemp(it_tmp_name(path, sizeof(path), "dip-cleanup-XXXXXX"));
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "a,b\r\n1,2\r\n", 10), 10);
    close(fd);
    if (dip_storage_put_file(st, key, path, err, sizeof(err)) != 0)
        fail_msg("put '%s': %s", key, err);
    unlink(path);
}

/* A csv_imports document as the final status leaves it. */
static void import_doc(it_env_t *env, const bson_value_t *qid,
                       const char *status, int dry_run, int64_t errors)
{
    mongoc_collection_t *c = it_coll(env, "csv_imports");
    bson_t *d = bson_new();
    bson_error_t error;
    BSON_APPEND_VALUE(d, "queue_id", qid);
    BSON_APPEND_UTF8(d, "status", status);
    BSON_APPEND_INT64(d, "total_errors", errors);
    if (dry_run)
        BSON_APPEND_BOOL(d, "dry_run", true);
    if (!mongoc_collection_insert_one(c, d, NULL, NULL, &error))
        fail_msg("insert: %s", error.message);
    bson_destroy(d);
    mongoc_collection_destroy(c);
}

static int64_t deleted_at(it_env_t *env, const bson_value_t *qid)
{
    mongoc_collection_t *c = it_coll(env, "csv_imports");
    bson_t q = BSON_INITIALIZER;
    mongoc_cursor_t *cur;
    const bson_t *doc;
    bson_iter_t it;
    int64_t at = -1;
    BSON_APPEND_VALUE(&q, "queue_id", qid);
    cur = mongoc_collection_find_with_opts(c, &q, NULL, NULL);
    if (mongoc_cursor_next(cur, &doc) &&
        bson_iter_init_find(&it, doc, "source_deleted_at") &&
        BSON_ITER_HOLDS_DATE_TIME(&it))
        at = bson_iter_date_time(&it);
    mongoc_cursor_destroy(cur);
    bson_destroy(&q);
    mongoc_collection_destroy(c);
    return at;
}

static bson_value_t new_oid(void)
{
    bson_value_t v = {.value_type = BSON_TYPE_OID};
    bson_oid_init(&v.value.v_oid, NULL);
    return v;
}

static void test_completed_deleted_once(void **state)
{
    fix_t *f = stack(state);
    dip_storage_t *st = f->env.storage;
    bson_value_t qid = new_oid();
    char why[512] = "";
    int64_t at = 0, at2 = 0;

    put(st, "src/done.csv");
    import_doc(&f->env, &qid, "completed", 0, 0);
    /* The default policy keeps everything. */
    assert_int_equal(sup_cleanup_source(f->env.client, f->env.dbname, st,
                                        DIP_DELETE_SOURCE_NEVER, &qid,
                                        "src/done.csv", &at, why, sizeof(why)),
                     SUP_CLEANUP_KEPT);
    assert_non_null(strstr(why, "DEALIMPORT_DELETE_SOURCE is never"));
    assert_true(exists(st, "src/done.csv"));
    assert_int_equal(deleted_at(&f->env, &qid), -1);

    assert_int_equal(sup_cleanup_source(f->env.client, f->env.dbname, st,
                                        DIP_DELETE_SOURCE_COMPLETED, &qid,
                                        "src/done.csv", &at, why, sizeof(why)),
                     SUP_CLEANUP_DELETED);
    assert_false(exists(st, "src/done.csv"));
    assert_true(at > 0);
    assert_int_equal(deleted_at(&f->env, &qid), at);

    /* A repeat changes nothing: a file put back under the key (a new
     * upload) is not deleted, and the time stays. */
    put(st, "src/done.csv");
    assert_int_equal(sup_cleanup_source(f->env.client, f->env.dbname, st,
                                        DIP_DELETE_SOURCE_COMPLETED, &qid,
                                        "src/done.csv", &at2, why, sizeof(why)),
                     SUP_CLEANUP_DELETED);
    assert_int_equal(at2, at);
    assert_true(exists(st, "src/done.csv"));
    assert_int_equal(deleted_at(&f->env, &qid), at);
    dip_storage_delete(st, "src/done.csv", why, sizeof(why));
}

static void test_others_keep_their_source(void **state)
{
    fix_t *f = stack(state);
    dip_storage_t *st = f->env.storage;
    const char *statuses[] = {"failed", "cancelled", "paused"};
    char why[512] = "";
    bson_value_t qid;

    put(st, "src/keep.csv");
    for (size_t i = 0; i < 3; i++) {
        qid = new_oid();
        import_doc(&f->env, &qid, statuses[i], 0, 0);
        assert_int_equal(sup_cleanup_source(f->env.client, f->env.dbname, st,
                                            DIP_DELETE_SOURCE_COMPLETED, &qid,
                                            "src/keep.csv", NULL, why,
                                            sizeof(why)),
                         SUP_CLEANUP_KEPT);
        assert_non_null(strstr(why, statuses[i]));
        assert_int_equal(deleted_at(&f->env, &qid), -1);
    }
    /* A dry run. */
    qid = new_oid();
    import_doc(&f->env, &qid, "completed", 1, 0);
    assert_int_equal(sup_cleanup_source(f->env.client, f->env.dbname, st,
                                        DIP_DELETE_SOURCE_COMPLETED, &qid,
                                        "src/keep.csv", NULL, why, sizeof(why)),
                     SUP_CLEANUP_KEPT);
    assert_non_null(strstr(why, "dry run"));
    /* No csv_imports yet (called before the final status). */
    qid = new_oid();
    assert_int_equal(sup_cleanup_source(f->env.client, f->env.dbname, st,
                                        DIP_DELETE_SOURCE_COMPLETED, &qid,
                                        "src/keep.csv", NULL, why, sizeof(why)),
                     SUP_CLEANUP_KEPT);
    assert_non_null(strstr(why, "no csv_imports document"));
    assert_true(exists(st, "src/keep.csv"));
    dip_storage_delete(st, "src/keep.csv", why, sizeof(why));
}

/* With errors, the source waits for the error file to be recorded. */
static void test_waits_for_error_file(void **state)
{
    fix_t *f = stack(state);
    dip_storage_t *st = f->env.storage;
    bson_value_t qid = {.value_type = BSON_TYPE_UTF8};
    sup_errfile_result_t r = {(char *)"src/e.csv.x.errors.csv", 3, 100};
    char why[512] = "";

    qid.value.v_utf8.str = (char *)"q-42";
    qid.value.v_utf8.len = 4;
    put(st, "src/e.csv");
    import_doc(&f->env, &qid, "completed", 0, 3);
    assert_int_equal(sup_cleanup_source(f->env.client, f->env.dbname, st,
                                        DIP_DELETE_SOURCE_COMPLETED, &qid,
                                        "src/e.csv", NULL, why, sizeof(why)),
                     SUP_CLEANUP_KEPT);
    assert_non_null(strstr(why, "error file is not recorded yet"));
    assert_true(exists(st, "src/e.csv"));
    assert_int_equal(sup_errfile_record(f->env.db, &qid, &r, why, sizeof(why)),
                     SUP_ERRFILE_OK);
    assert_int_equal(sup_cleanup_source(f->env.client, f->env.dbname, st,
                                        DIP_DELETE_SOURCE_COMPLETED, &qid,
                                        "src/e.csv", NULL, why, sizeof(why)),
                     SUP_CLEANUP_DELETED);
    assert_false(exists(st, "src/e.csv"));
    assert_true(deleted_at(&f->env, &qid) > 0);
}

/* file://: the file is unlinked; a source already gone is no error. */
static void test_file_storage(void **state)
{
    fix_t *f = stack(state);
    char dir[512], url[1024], path[1024], why[512] = "";
    bson_value_t qid = new_oid(), qid2 = new_oid();
    dip_config_t cfg;
    dip_storage_t *st;
    struct stat sb;

    assert_non_null(
        mkdtemp(it_tmp_name(dir, sizeof(dir), "dip-cleanup-dir-XXXXXX")));
    snprintf(url, sizeof(url), "file://%s", dir);
    dip_config_init(&cfg);
    cfg.storage_url = strdup(url);
    st = dip_storage_new(&cfg, why, sizeof(why));
    assert_non_null(st);
    put(st, "in/d.csv");
    snprintf(path, sizeof(path), "%s/in/d.csv", dir);
    assert_int_equal(stat(path, &sb), 0);
    import_doc(&f->env, &qid, "completed", 0, 0);
    assert_int_equal(sup_cleanup_source(f->env.client, f->env.dbname, st,
                                        DIP_DELETE_SOURCE_COMPLETED, &qid,
                                        "in/d.csv", NULL, why, sizeof(why)),
                     SUP_CLEANUP_DELETED);
    assert_int_equal(stat(path, &sb), -1);
    /* A crash after the deletion and before the record: the repeat finds
     * nothing to delete and records it. */
    import_doc(&f->env, &qid2, "completed", 0, 0);
    assert_int_equal(sup_cleanup_source(f->env.client, f->env.dbname, st,
                                        DIP_DELETE_SOURCE_COMPLETED, &qid2,
                                        "in/d.csv", NULL, why, sizeof(why)),
                     SUP_CLEANUP_DELETED);
    assert_true(deleted_at(&f->env, &qid2) > 0);
    dip_storage_destroy(&st);
    dip_config_release(&cfg);
    snprintf(path, sizeof(path), "%s/in", dir);
    rmdir(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_completed_deleted_once),
        cmocka_unit_test(test_others_keep_their_source),
        cmocka_unit_test(test_waits_for_error_file),
        cmocka_unit_test(test_file_storage),
    };
    return cmocka_run_group_tests_name("cleanup", tests, setup, teardown);
}
