/*
 * Tests sup_errfile. Pure: cells neutralized and quoted, a whole file read
 * back by Python's csv module (a standard CSV reader, not ours), keys for
 * ids of every shape. On the dev stack (skipped without it): the error file
 * of an import written from csv_import_errors to S3 and to file://, in line
 * order, only that import's rows, recorded on csv_imports, the same bytes
 * when written again; and 40,000 errors written in parts with the peak
 * memory of the process growing far less than the file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "dip_bson.h"
#include "it_env.h"
#include "ts_indexes.h"
#include "sup_errfile.h"
#include "dip_text.h"
#include "it_skip.h"
#include "it_tmp.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

/* --- helpers ------------------------------------------------------------ */

static char *cell(const char *s)
{
    static char out[512];
    sup_errfile_buf_t b = {0};
    sup_errfile_csv_cell(&b, s, strlen(s));
    snprintf(out, sizeof(out), "%s", b.data ? b.data : "");
    sup_errfile_buf_release(&b);
    return out;
}

/* Parses the CSV file at path with Python's csv module and returns its
 * records as a JSON array of arrays of strings (the BOM consumed by the
 * utf-8-sig codec, which also proves it is there). */
static json_t *python_csv(const char *path)
{
    char cmd[1024];
    FILE *p;
    json_t *rows;
    json_error_t jerr;
    snprintf(cmd, sizeof(cmd),
             "/usr/bin/python3 -c 'import csv, json, sys\n"
             "f = open(sys.argv[1], newline=\"\", encoding=\"utf-8-sig\")\n"
             "raw = open(sys.argv[1], \"rb\").read()\n"
             "assert raw.startswith(b\"\\xef\\xbb\\xbf\"), \"no BOM\"\n"
             "assert raw.endswith(b\"\\r\\n\"), \"no final CRLF\"\n"
             "json.dump(list(csv.reader(f, strict=True)), sys.stdout)' '%s'",
             path);
    p = popen(cmd, "r");
    assert_non_null(p);
    rows = json_loadf(p, 0, &jerr);
    assert_int_equal(pclose(p), 0);
    if (rows == NULL)
        fail_msg("python's csv output is not JSON: %s", jerr.text);
    return rows;
}

static const char *at(json_t *rows, size_t r, size_t c)
{
    json_t *row = json_array_get(rows, r);
    const char *s = json_string_value(json_array_get(row, c));
    if (s == NULL)
        fail_msg("no cell %zu of record %zu", c, r);
    return s;
}

static void write_tmp(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wbe");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static bson_t *str_array(const char *const *v, size_t n)
{
    bson_t *a = bson_new();
    for (size_t i = 0; i < n; i++) {
        char k[24];
        snprintf(k, sizeof(k), "%zu", i);
        BSON_APPEND_UTF8(a, k, v[i]);
    }
    return a;
}

static bson_t *error_doc(const bson_value_t *qid, int64_t line,
                         const char *field, const char *msg,
                         const char *const *row, size_t n, int truncated)
{
    bson_t *d = bson_new(), *r = str_array(row, n);
    BSON_APPEND_VALUE(d, "queue_id", qid);
    BSON_APPEND_INT64(d, "line", line);
    BSON_APPEND_UTF8(d, "field", field);
    BSON_APPEND_UTF8(d, "message", msg);
    BSON_APPEND_ARRAY(d, "row", r);
    if (truncated)
        BSON_APPEND_BOOL(d, "row_truncated", true);
    bson_destroy(r);
    return d;
}

/* --- pure --------------------------------------------------------------- */

static void test_cells(void **state)
{
    sup_errfile_buf_t b = {0};
    (void)state;
    assert_string_equal(cell("plain"), "plain");
    assert_string_equal(cell(""), "");
    assert_string_equal(cell("a,b"), "\"a,b\"");
    assert_string_equal(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
    assert_string_equal(cell("two\nlines"), "\"two\nlines\"");
    assert_string_equal(cell("m\xc3\xbcller"), "m\xc3\xbcller");
    /* What a spreadsheet would run gets a leading quote. */
    assert_string_equal(cell("=1+1"), "'=1+1");
    assert_string_equal(cell("+1"), "'+1");
    assert_string_equal(cell("-5"), "'-5");
    assert_string_equal(cell("@SUM(A1)"), "'@SUM(A1)");
    assert_string_equal(cell("\tx"), "'\tx");
    assert_string_equal(cell("\rx"), "\"'\rx\"");
    assert_string_equal(cell("=HYPERLINK(\"http://x\")"),
                        "\"'=HYPERLINK(\"\"http://x\"\")\"");
    /* Only the first character counts. */
    assert_string_equal(cell("a=b"), "a=b");
    assert_string_equal(cell(" =x"), " =x");

    /* Cells of a record are separated by commas; records end with CRLF;
     * line numbers are ours and never neutralized. */
    sup_errfile_csv_int(&b, -5);
    sup_errfile_csv_cell(&b, "x", 1);
    sup_errfile_csv_cell(&b, "", 0);
    sup_errfile_csv_end(&b);
    sup_errfile_csv_int(&b, 7);
    sup_errfile_csv_end(&b);
    assert_string_equal(b.data, "-5,x,\r\n7\r\n");
    sup_errfile_buf_release(&b);
}

static void test_format_read_by_python(void **state)
{
    const char *header[] = {"Name", "=Amount", "Stage, final", "Owner"};
    const char *row1[] = {"Acme", "=HYPERLINK(\"http://x\")", "Won", "@bob"};
    const char *row2[] = {"Line\r\nbreak", "12,5"}; /* shorter than header */
    const char *row3[] = {"a", "b", "c", "d", "extra"};
    bson_value_t qid = {.value_type = BSON_TYPE_INT32, .value.v_int32 = 1};
    bson_t *h = str_array(header, 4), *d;
    sup_errfile_buf_t b = {0};
    char path[512];
    json_t *rows;
    int fd;
    (void)state;

    sup_errfile_format_header(&b, h);
    d = error_doc(&qid, 2, "Amount", "'=HYPERLINK(...)' is not a number", row1,
                  4, 0);
    sup_errfile_format_error(&b, d);
    bson_destroy(d);
    d = error_doc(&qid, 3, "=Amount", "-1 is below zero", row2, 2, 1);
    sup_errfile_format_error(&b, d);
    bson_destroy(d);
    d = error_doc(&qid, 10, "Name", "too many cells", row3, 5, 0);
    /* A cell that is not a string comes out as its text. */
    {
        bson_t *d2 = bson_new(), arr;
        bson_iter_t it;
        bson_copy_to_excluding_noinit(d, d2, "row", NULL);
        BSON_APPEND_ARRAY_BEGIN(d2, "row", &arr);
        BSON_APPEND_UTF8(&arr, "0", "a");
        BSON_APPEND_INT32(&arr, "1", 42);
        BSON_APPEND_NULL(&arr, "2");
        BSON_APPEND_DOUBLE(&arr, "3", 1.5);
        bson_append_array_end(d2, &arr);
        assert_true(bson_iter_init_find(&it, d2, "line"));
        sup_errfile_format_error(&b, d2);
        bson_destroy(d2);
    }
    bson_destroy(d);
    sup_errfile_format_trailer(&b, 3, 12);
    assert_false(b.failed);
    /* The bytes: BOM, CRLF, the formula quoted and neutralized. */
    assert_memory_equal(b.data,
                        "\xEF\xBB\xBFLine,Field,Error,Name,'=Amount,"
                        "\"Stage, final\",Owner\r\n",
                        strlen("\xEF\xBB\xBFLine,Field,Error,Name,'=Amount,"
                               "\"Stage, final\",Owner\r\n"));
    assert_non_null(strstr(b.data, "\r\n2,Amount,'=HYPERLINK(...)' is not a "
                                   "number,Acme,\"'=HYPERLINK(\"\"http://x\"\")"
                                   "\",Won,'@bob\r\n3,"));

    fd = mkstemp(it_tmp_name(path, sizeof(path), "dip-errfile-XXXXXX"));
    assert_true(fd >= 0);
    close(fd);
    write_tmp(path, b.data, b.len);
    rows = python_csv(path);
    unlink(path);
    assert_int_equal(json_array_size(rows), 5);
    assert_int_equal(json_array_size(json_array_get(rows, 0)), 7);
    assert_string_equal(at(rows, 0, 0), "Line");
    assert_string_equal(at(rows, 0, 2), "Error");
    assert_string_equal(at(rows, 0, 4), "'=Amount");
    assert_string_equal(at(rows, 0, 5), "Stage, final");
    assert_string_equal(at(rows, 1, 0), "2");
    assert_string_equal(at(rows, 1, 1), "Amount");
    assert_string_equal(at(rows, 1, 2), "'=HYPERLINK(...)' is not a number");
    assert_string_equal(at(rows, 1, 4), "'=HYPERLINK(\"http://x\")");
    assert_string_equal(at(rows, 1, 6), "'@bob");
    assert_int_equal(json_array_size(json_array_get(rows, 1)), 7);
    /* A short row keeps its own cells; a cut one says so. */
    assert_int_equal(json_array_size(json_array_get(rows, 2)), 5);
    assert_string_equal(at(rows, 2, 1), "'=Amount");
    assert_string_equal(at(rows, 2, 2), "'-1 is below zero (only the start "
                                        "of this row was kept)");
    assert_string_equal(at(rows, 2, 3), "Line\r\nbreak");
    assert_string_equal(at(rows, 2, 4), "12,5");
    assert_int_equal(json_array_size(json_array_get(rows, 3)), 7);
    assert_string_equal(at(rows, 3, 3), "a");
    assert_string_equal(at(rows, 3, 4), "42");
    assert_string_equal(at(rows, 3, 5), "");
    assert_string_equal(at(rows, 3, 6), "1.5");
    assert_string_equal(at(rows, 4, 0), "");
    assert_string_equal(at(rows, 4, 2),
                        "12 more rejected rows are left out of this file (3 "
                        "listed): an import keeps only so many errors");
    json_decref(rows);
    sup_errfile_buf_release(&b);
    bson_destroy(h);

    /* No header at all, no errors, nothing left out. */
    sup_errfile_format_header(&b, NULL);
    sup_errfile_format_trailer(&b, 0, 0);
    assert_string_equal(b.data, "\xEF\xBB\xBFLine,Field,Error\r\n,,0 rejected "
                                "rows are left out of this file: all 0 are "
                                "listed\r\n");
    sup_errfile_buf_release(&b);
}

static void test_keys(void **state)
{
    bson_value_t v;
    bson_oid_t oid;
    char *k;
    (void)state;
    bson_oid_init_from_string(&oid, "65a1b2c3d4e5f60718293a4b");
    v.value_type = BSON_TYPE_OID;
    bson_oid_copy(&oid, &v.value.v_oid);
    k = sup_errfile_key("imports/deals.csv", &v);
    assert_string_equal(
        k, "imports/deals.csv.65a1b2c3d4e5f60718293a4b.errors.csv");
    assert_int_equal(dip_storage_check_key(k, strlen(k), NULL, 0), 0);
    free(k);

    /* A string id cannot add a path segment or look like another id. */
    v.value_type = BSON_TYPE_UTF8;
    v.value.v_utf8.str = (char *)"../x/.y%";
    v.value.v_utf8.len = 8;
    k = sup_errfile_key("d.csv", &v);
    assert_string_equal(k, "d.csv.%2E%2E%2Fx%2F%2Ey%25.errors.csv");
    assert_int_equal(dip_storage_check_key(k, strlen(k), NULL, 0), 0);
    free(k);

    v.value_type = BSON_TYPE_INT32;
    v.value.v_int32 = -7;
    k = sup_errfile_key("d.csv", &v);
    assert_string_equal(k, "d.csv.-7.errors.csv");
    free(k);
    v.value_type = BSON_TYPE_INT64;
    v.value.v_int64 = 7;
    k = sup_errfile_key("d.csv", &v);
    assert_string_equal(k, "d.csv.7.errors.csv");
    free(k);
    v.value_type = BSON_TYPE_DOUBLE;
    v.value.v_double = 1.5;
    k = sup_errfile_key("d.csv", &v);
    assert_string_equal(k, "d.csv.%7B%20%22%24numberDouble%22%20%3A%20%221%"
                           "2E5%22%20%7D.errors.csv");
    free(k);
}

/* --- on the dev stack --------------------------------------------------- */

typedef struct {
    it_env_t env;
    int skip;
} fix_t;

static int stack_setup(void **state)
{
    fix_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    f->skip = it_env_init(&f->env, "errfile") != 0;
    if (!f->skip)
        ts_service_indexes(&f->env);
    *state = f;
    return 0;
}

static int stack_teardown(void **state)
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

/* Downloads key into a file at path; returns its size. */
typedef struct {
    FILE *f;
    size_t n;
} file_sink_t;

static int to_file(void *arg, const char *buf, size_t len)
{
    file_sink_t *s = arg;
    s->n += len;
    return fwrite(buf, 1, len, s->f) == len ? 0 : 1;
}

static size_t download(dip_storage_t *st, const char *key, const char *path)
{
    file_sink_t s = {fopen(path, "wbe"), 0};
    dip_storage_sink_t sink = {&s, NULL, to_file, NULL};
    char err[1024] = "";
    assert_non_null(s.f);
    if (dip_storage_get(st, key, 0, &sink, err, sizeof(err)) != 0)
        fail_msg("download '%s': %s", key, err);
    assert_int_equal(fclose(s.f), 0);
    return s.n;
}

static void insert_all(mongoc_collection_t *c, bson_t **docs, size_t n)
{
    bson_error_t error;
    if (!mongoc_collection_insert_many(c, (const bson_t **)docs, n, NULL, NULL,
                                       &error))
        fail_msg("insert: %s", error.message);
    for (size_t i = 0; i < n; i++)
        bson_destroy(docs[i]);
}

static void test_write_s3(void **state)
{
    fix_t *f = stack(state);
    const char *header[] = {"Deal", "Amount", "Stage"};
    const char *r_formula[] = {"x", "=HYPERLINK(\"http://x\")", "Won"};
    const char *r_plain[] = {"Acme", "12", "Lost"};
    const char *r_short[] = {"only"};
    mongoc_collection_t *errs = it_coll(&f->env, "csv_import_errors");
    mongoc_collection_t *imps = it_coll(&f->env, "csv_imports");
    bson_value_t qid, other;
    bson_oid_t o1, o2;
    bson_t *h = str_array(header, 3), *docs[6], *imp;
    sup_errfile_result_t r, r2;
    char err[1024] = "", path[512], want[128];
    json_t *rows;
    size_t got;
    int fd;

    bson_oid_init(&o1, NULL);
    bson_oid_init(&o2, NULL);
    qid.value_type = other.value_type = BSON_TYPE_OID;
    bson_oid_copy(&o1, &qid.value.v_oid);
    bson_oid_copy(&o2, &other.value.v_oid);
    /* Stored out of order, with another import's error in between. */
    docs[0] =
        error_doc(&qid, 40, "Stage", "unknown stage 'Lost'", r_plain, 3, 0);
    docs[1] = error_doc(&other, 3, "Deal", "another import", r_plain, 3, 0);
    docs[2] = error_doc(&qid, 3, "Amount", "not a number", r_formula, 3, 0);
    docs[3] = error_doc(&qid, 17, "Amount", "missing", r_short, 1, 1);
    insert_all(errs, docs, 4);
    imp = BCON_NEW("queue_id", BCON_OID(&o1), "status", "completed");
    assert_true(mongoc_collection_insert_one(imps, imp, NULL, NULL, NULL));
    bson_destroy(imp);

    if (sup_errfile_write(f->env.client, f->env.dbname, f->env.storage,
                          "imports/deals.csv", &qid, h, 2, &r, err,
                          sizeof(err)) != SUP_ERRFILE_OK)
        fail_msg("sup_errfile_write: %s", err);
    {
        char hex[25];
        bson_oid_to_string(&o1, hex);
        snprintf(want, sizeof(want), "imports/deals.csv.%s.errors.csv", hex);
    }
    assert_string_equal(r.key, want);
    assert_int_equal(r.rows, 3);

    fd = mkstemp(it_tmp_name(path, sizeof(path), "dip-errfile-XXXXXX"));
    assert_true(fd >= 0);
    close(fd);
    got = download(f->env.storage, r.key, path);
    assert_int_equal((int64_t)got, r.bytes);
    rows = python_csv(path);
    assert_int_equal(json_array_size(rows), 5);
    assert_string_equal(at(rows, 0, 3), "Deal");
    assert_string_equal(at(rows, 1, 0), "3");
    assert_string_equal(at(rows, 1, 2), "not a number");
    assert_string_equal(at(rows, 1, 4), "'=HYPERLINK(\"http://x\")");
    assert_string_equal(at(rows, 2, 0), "17");
    assert_string_equal(at(rows, 2, 3), "only");
    assert_int_equal(json_array_size(json_array_get(rows, 2)), 4);
    assert_string_equal(at(rows, 3, 0), "40");
    assert_string_equal(at(rows, 3, 5), "Lost");
    assert_non_null(
        strstr(at(rows, 4, 2), "2 more rejected rows are left out"));
    json_decref(rows);

    /* Recorded on csv_imports. */
    assert_int_equal(sup_errfile_record(f->env.db, &qid, &r, err, sizeof(err)),
                     SUP_ERRFILE_OK);
    {
        bson_t *q = BCON_NEW("queue_id", BCON_OID(&o1));
        mongoc_cursor_t *c =
            mongoc_collection_find_with_opts(imps, q, NULL, NULL);
        const bson_t *doc;
        assert_true(mongoc_cursor_next(c, &doc));
        assert_string_equal(dip_bson_get_str(doc, "error_file.key"), r.key);
        assert_int_equal(dip_bson_get_int(doc, "error_file.rows", -1), 3);
        assert_int_equal(dip_bson_get_int(doc, "error_file.bytes", -1),
                         r.bytes);
        mongoc_cursor_destroy(c);
        bson_destroy(q);
    }
    /* Without a csv_imports document, recording says so. */
    assert_int_equal(
        sup_errfile_record(f->env.db, &other, &r, err, sizeof(err)),
        SUP_ERRFILE_EDB);
    assert_non_null(strstr(err, "no csv_imports document"));

    /* Written again (a crash before the record, say): the same bytes. */
    assert_int_equal(sup_errfile_write(f->env.client, f->env.dbname,
                                       f->env.storage, "imports/deals.csv",
                                       &qid, h, 2, &r2, err, sizeof(err)),
                     SUP_ERRFILE_OK);
    assert_string_equal(r2.key, r.key);
    assert_int_equal(r2.rows, r.rows);
    assert_int_equal(r2.bytes, r.bytes);
    {
        char path2[512], cmd[2048];
        fd = mkstemp(it_tmp_name(path2, sizeof(path2), "dip-errfile-XXXXXX"));
        close(fd);
        download(f->env.storage, r2.key, path2);
        snprintf(cmd, sizeof(cmd), "cmp -s '%s' '%s'", path, path2);
        assert_int_equal(system(cmd), 0);
        unlink(path2);
    }
    unlink(path);
    assert_int_equal(
        dip_storage_delete(f->env.storage, r.key, err, sizeof(err)), 0);
    sup_errfile_result_release(&r);
    sup_errfile_result_release(&r2);
    bson_destroy(h);
    mongoc_collection_destroy(errs);
    mongoc_collection_destroy(imps);
}

static int rm_one(const char *p, const struct stat *st, int flag,
                  struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

/* file:// storage, a string queue id as stored: the file is where the key
 * says, and no temporary is left beside it. */
static void test_write_file_storage(void **state)
{
    fix_t *f = stack(state);
    const char *r1[] = {"a", "b"};
    mongoc_collection_t *errs = it_coll(&f->env, "csv_import_errors");
    bson_value_t qid = {.value_type = BSON_TYPE_UTF8};
    bson_t *docs[2];
    dip_config_t cfg;
    dip_storage_t *st;
    sup_errfile_result_t r;
    char dir[512], url[1024], path[1024], err[1024] = "", cmd[1024];
    struct stat sb;
    json_t *rows;
    FILE *p;
    int entries = 0;

    qid.value.v_utf8.str = (char *)"import/7";
    qid.value.v_utf8.len = 8;
    docs[0] = error_doc(&qid, 5, "B", "bad", r1, 2, 0);
    docs[1] = error_doc(&qid, 2, "A", "worse", r1, 2, 0);
    insert_all(errs, docs, 2);
    assert_non_null(
        mkdtemp(it_tmp_name(dir, sizeof(dir), "dip-errfile-dir-XXXXXX")));
    snprintf(url, sizeof(url), "file://%s", dir);
    dip_config_init(&cfg);
    cfg.storage_url = strdup(url);
    st = dip_storage_new(&cfg, err, sizeof(err));
    assert_non_null(st);
    if (sup_errfile_write(f->env.client, f->env.dbname, st, "in/d.csv", &qid,
                          NULL, 0, &r, err, sizeof(err)) != SUP_ERRFILE_OK)
        fail_msg("sup_errfile_write: %s", err);
    assert_string_equal(r.key, "in/d.csv.import%2F7.errors.csv");
    snprintf(path, sizeof(path), "%s/%s", dir, r.key);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal((int64_t)sb.st_size, r.bytes);
    snprintf(cmd, sizeof(cmd), "ls -A '%s/in'", dir);
    p = popen(cmd, "r");
    while (fgets(cmd, sizeof(cmd), p))
        entries++;
    pclose(p);
    assert_int_equal(entries, 1);
    rows = python_csv(path);
    assert_int_equal(json_array_size(rows), 4);
    assert_string_equal(at(rows, 1, 0), "2");
    assert_string_equal(at(rows, 2, 0), "5");
    json_decref(rows);
    sup_errfile_result_release(&r);
    dip_storage_destroy(&st);
    dip_config_release(&cfg);
    nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    mongoc_collection_destroy(errs);
}

static long peak_rss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* 40,000 errors of about 1 KB: a file of some 40 MB, uploaded in parts,
 * while the process's peak memory grows by far less than the file. */
static void test_many_errors_flat(void **state)
{
    fix_t *f = stack(state);
    const size_t n = 40000, batch = 1000;
    mongoc_collection_t *errs = it_coll(&f->env, "csv_import_errors");
    bson_value_t qid = {.value_type = BSON_TYPE_OID};
    sup_errfile_result_t r;
    char cell[1001], err[1024] = "", path[512];
    const char *row[3] = {cell, "=1+2", "x"};
    bson_t **docs = calloc(batch, sizeof(*docs));
    long before, after;
    struct timespec t0, t1;
    size_t got;
    json_t *rows;
    int fd;

    bson_oid_init(&qid.value.v_oid, NULL);
    memset(cell, 'c', sizeof(cell) - 1);
    cell[sizeof(cell) - 1] = '\0';
    for (size_t done = 0; done < n; done += batch) {
        for (size_t i = 0; i < batch; i++)
            docs[i] = error_doc(&qid, (int64_t)(n - done - i) + 1, "F",
                                "bad value", row, 3, 0);
        insert_all(errs, docs, batch);
    }
    free(docs);
    dip_storage_set_multipart(f->env.storage, 5 * 1024 * 1024, 5 * 1024 * 1024);
    before = peak_rss_kb();
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (sup_errfile_write(f->env.client, f->env.dbname, f->env.storage,
                          "big/d.csv", &qid, NULL, 0, &r, err,
                          sizeof(err)) != SUP_ERRFILE_OK)
        fail_msg("sup_errfile_write: %s", err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    after = peak_rss_kb();
    dip_storage_set_multipart(f->env.storage, 0, 0);
    print_message("error file of %zu rows, %lld bytes in %.2f s: peak RSS "
                  "%ld KiB before, %ld KiB after\n",
                  n, (long long)r.bytes,
                  (double)(t1.tv_sec - t0.tv_sec) +
                      (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
                  before, after);
    assert_int_equal(r.rows, (int64_t)n);
    assert_true(r.bytes > 40 * 1000 * 1000);
#if !UNDER_ASAN
    assert_true(after - before < 12 * 1024);
#else
    /* AddressSanitizer's quarantine holds freed memory back, so the peak
     * says nothing here; the plain build asserts it. */
    (void)before;
    (void)after;
#endif

    fd = mkstemp(it_tmp_name(path, sizeof(path), "dip-errfile-XXXXXX"));
    close(fd);
    got = download(f->env.storage, r.key, path);
    assert_int_equal((int64_t)got, r.bytes);
    rows = python_csv(path);
    unlink(path);
    assert_int_equal(json_array_size(rows), n + 2);
    assert_string_equal(at(rows, 1, 0), "2");
    assert_string_equal(at(rows, n, 0), "40001");
    assert_string_equal(at(rows, n, 4), "'=1+2");
    json_decref(rows);
    assert_int_equal(
        dip_storage_delete(f->env.storage, r.key, err, sizeof(err)), 0);
    sup_errfile_result_release(&r);
    mongoc_collection_destroy(errs);
}

/* An error file's key that would be too long is shortened, still unique
 * to the import (its id), cut at a character boundary. */
static void test_key_fit(void **state)
{
    static const char id[] = "0123456789abcdef01234567";
    char src[1100], want[1200];
    char *k;
    (void)state;
    /* fits: as always */
    k = sup_errfile_key_fit("in/a.csv", id, 1024, 200);
    assert_string_equal(k, "in/a.csv.0123456789abcdef01234567.errors.csv");
    free(k);
    /* a last segment of 220 bytes: cut to 200 with the mark */
    memset(src, 0, sizeof(src));
    memcpy(src, "in/", 3);
    memset(src + 3, 'n', 220);
    k = sup_errfile_key_fit(src, id, 1024, 200);
    assert_int_equal(strlen(k) - 3, 200);
    assert_memory_equal(k, "in/nnn", 6);
    assert_string_equal(k + 3 + 200 - 37,
                        "~.0123456789abcdef01234567.errors.csv");
    free(k);
    /* a key of 1,000 bytes, short segments: the last one cut so the whole
     * key has 1,024 bytes at most */
    memset(src, 0, sizeof(src));
    for (int i = 0; i < 1000; i++)
        src[i] = i % 10 == 9 ? '/' : 'd';
    src[999] = 'x';
    k = sup_errfile_key_fit(src, id, 1024, 200);
    assert_non_null(k);
    assert_true(strlen(k) <= 1024);
    assert_non_null(strstr(k, "~.0123456789abcdef01234567.errors.csv"));
    free(k);
    /* a directory that leaves no room for the id: the key itself cut */
    memset(src, 0, sizeof(src));
    memset(src, 'd', 1010);
    src[1000] = '/';
    k = sup_errfile_key_fit(src, id, 1024, 200);
    assert_int_equal(strlen(k), 1024);
    snprintf(want, sizeof(want), "%.*s~.%s.errors.csv", 1024 - 37, src, id);
    assert_string_equal(k, want);
    free(k);
    /* a UTF-8 name is cut between characters */
    memset(src, 0, sizeof(src));
    for (int i = 0; i < 110; i++)
        memcpy(src + 2 * i, "\xc3\xa9", 2);
    k = sup_errfile_key_fit(src, id, 1024, 200);
    assert_int_equal(dip_text_utf8_valid(k, strlen(k)), 1);
    assert_true(strlen(k) <= 200);
    free(k);
    /* no room at all */
    assert_null(sup_errfile_key_fit("a.csv", id, 30, 30));
}

int main(void)
{
    const struct CMUnitTest pure[] = {
        cmocka_unit_test(test_cells),
        cmocka_unit_test(test_format_read_by_python),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_key_fit),
    };
    const struct CMUnitTest on_stack[] = {
        cmocka_unit_test(test_write_s3),
        cmocka_unit_test(test_write_file_storage),
        cmocka_unit_test(test_many_errors_flat),
    };
    int failed = 0;
    failed += cmocka_run_group_tests_name("format", pure, NULL, NULL);
    failed += cmocka_run_group_tests_name("dev stack", on_stack, stack_setup,
                                          stack_teardown);
    return failed ? 1 : 0;
}
