/*
 * Tests sup_succfile on the development stack (skipped without it, a
 * failure where CI=true), with csv_import_lines written by hand:
 * - two records of one batch done twice, cut differently (lines 1 and 3,
 *   then 3-5, as a run that died and the run after it may leave), give each
 *   line once, in line order, byte for byte: the header, the action, the
 *   deal's id and the row's cells, quoted and neutralized as the error
 *   file is; a line the records do not name (a line error) is left out;
 * - the step fails for good (SUP_SUCCFILE_ESOURCE), writing nothing, when
 *   the source is another object than the records name, when it is gone,
 *   and when the records name a line the file does not hold;
 * - sup_succfile_wanted takes only the boolean true, and no dry run.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dip_bson.h"
#include "it_env.h"
#include "it_skip.h"
#include "sup_succfile.h"
#include "ts_indexes.h"

typedef struct {
    it_env_t env;
    int skip;
} fix_t;

static const char SOURCE[] = "Ref,Name,Value\n"
                             "A,\"Acme, Inc\",=1+1\n"
                             "B,Beta,2\n"
                             "C,Gamma,\n"
                             "D,Delta,4\n"
                             "E,Eps,5\n";

typedef struct sink {
    char buf[4096];
    size_t len;
    char etag[256];
} sink_t;

static int sink_data(void *arg, const char *buf, size_t len)
{
    sink_t *s = arg;
    if (s->len + len >= sizeof(s->buf))
        return 1;
    memcpy(s->buf + s->len, buf, len);
    s->len += len;
    s->buf[s->len] = '\0';
    return 0;
}

static void sink_identity(void *arg, const char *etag, int64_t size,
                          int64_t mtime_ns)
{
    sink_t *s = arg;
    (void)size;
    (void)mtime_ns;
    snprintf(s->etag, sizeof(s->etag), "%s", etag);
}

static void get(fix_t *f, const char *key, sink_t *s)
{
    dip_storage_sink_t sk = {s, NULL, sink_data, sink_identity};
    char err[512];
    memset(s, 0, sizeof(*s));
    if (dip_storage_get(f->env.storage, key, 0, &sk, err, sizeof(err)) != 0)
        fail_msg("download '%s': %s", key, err);
}

/* A record of lines[0..n) with actions "created"/"updated"/... in turn,
 * deal ids from ids, of the source etag. */
static void record(fix_t *f, const bson_oid_t *qid, const char *etag,
                   const int64_t *lines, const char *const *actions,
                   const bson_oid_t *ids, size_t n)
{
    mongoc_collection_t *c = it_coll(&f->env, SUP_SUCCFILE_COLLECTION);
    bson_t doc = BSON_INITIALIZER, file, rows, row;
    BSON_APPEND_OID(&doc, "queue_id", qid);
    BSON_APPEND_INT64(&doc, "first_line", lines[0]);
    BSON_APPEND_INT64(&doc, "last_line", lines[n - 1]);
    BSON_APPEND_DOCUMENT_BEGIN(&doc, "file", &file);
    BSON_APPEND_UTF8(&file, "etag", etag);
    bson_append_document_end(&doc, &file);
    BSON_APPEND_ARRAY_BEGIN(&doc, "rows", &rows);
    for (size_t i = 0; i < n; i++) {
        char k[24];
        snprintf(k, sizeof(k), "%zu", i);
        BSON_APPEND_DOCUMENT_BEGIN(&rows, k, &row);
        BSON_APPEND_INT64(&row, "line", lines[i]);
        BSON_APPEND_UTF8(&row, "action", actions[i]);
        BSON_APPEND_OID(&row, "deal_id", &ids[i]);
        bson_append_document_end(&rows, &row);
    }
    bson_append_array_end(&doc, &rows);
    assert_true(mongoc_collection_insert_one(c, &doc, NULL, NULL, NULL));
    bson_destroy(&doc);
    mongoc_collection_destroy(c);
}

static bson_value_t new_qid(bson_oid_t *q, char hex[25])
{
    bson_value_t v;
    bson_oid_init(q, NULL);
    bson_oid_to_string(q, hex);
    v.value_type = BSON_TYPE_OID;
    bson_oid_copy(q, &v.value.v_oid);
    return v;
}

static void test_write(void **state)
{
    fix_t *f = *state;
    static const char *const a1[] = {"created", "updated"};
    static const char *const a2[] = {"updated", "unchanged", "created"};
    int64_t l1[] = {1, 3}, l2[] = {3, 4, 5};
    bson_oid_t ids[5], q;
    bson_value_t qid;
    sup_errfile_result_t r;
    sink_t src, out;
    char err[1024] = "", want[2048], h[5][25], hq[25];
    if (f->skip)
        IT_SKIP_MISSING("skipped: the development stack is not running\n");
    it_put(&f->env, "imports/succ/a.csv", SOURCE, strlen(SOURCE));
    get(f, "imports/succ/a.csv", &src);
    assert_true(src.etag[0] != '\0');
    for (int i = 0; i < 5; i++) {
        bson_oid_init(&ids[i], NULL);
        bson_oid_to_string(&ids[i], h[i]);
    }
    qid = new_qid(&q, hq);
    /* Lines 1 and 3, then 3-5 by a run after it (line 3 again, the same
     * deal); line 2 a line error, in neither. The reader numbers data
     * rows from 1, as the worker records them. */
    record(f, &q, src.etag, l1, a1, ids, 2);
    {
        bson_oid_t i2[3] = {ids[1], ids[2], ids[4]};
        record(f, &q, src.etag, l2, a2, i2, 3);
    }
    if (sup_succfile_write(f->env.db, f->env.storage, "imports/succ/a.csv",
                           &qid, &r, err, sizeof(err)) != SUP_SUCCFILE_OK)
        fail_msg("sup_succfile_write: %s", err);
    snprintf(want, sizeof(want), "imports/succ/a.csv.%s.success.csv", hq);
    assert_string_equal(r.key, want);
    assert_int_equal(r.rows, 4);
    get(f, r.key, &out);
    assert_int_equal(r.bytes, (int64_t)out.len);
    snprintf(want, sizeof(want),
             "\xEF\xBB\xBFLine,Action,Deal id,Ref,Name,Value\r\n"
             "1,created,%s,A,\"Acme, Inc\",'=1+1\r\n"
             "3,updated,%s,C,Gamma,\r\n"
             "4,unchanged,%s,D,Delta,4\r\n"
             "5,created,%s,E,Eps,5\r\n",
             h[0], h[1], h[2], h[4]);
    assert_string_equal(out.buf, want);
    sup_errfile_result_release(&r);
}

/* Writes nothing and says why: the step cannot succeed later. */
static void expect_source_error(fix_t *f, const char *key,
                                const bson_value_t *qid, const char *why)
{
    sup_errfile_result_t r;
    char err[1024] = "";
    assert_int_equal(sup_succfile_write(f->env.db, f->env.storage, key, qid, &r,
                                        err, sizeof(err)),
                     SUP_SUCCFILE_ESOURCE);
    if (strstr(err, why) == NULL)
        fail_msg("'%s' does not say '%s'", err, why);
    assert_null(r.key);
}

static void test_source_errors(void **state)
{
    fix_t *f = *state;
    static const char *const act[] = {"created"};
    int64_t one[] = {1}, nine[] = {9};
    bson_oid_t id, q;
    bson_value_t qid;
    sink_t src;
    char hq[25];
    if (f->skip)
        IT_SKIP_MISSING("skipped: the development stack is not running\n");
    bson_oid_init(&id, NULL);
    it_put(&f->env, "imports/succ/b.csv", SOURCE, strlen(SOURCE));
    get(f, "imports/succ/b.csv", &src);
    /* another version than the import read */
    qid = new_qid(&q, hq);
    record(f, &q, "\"0123456789abcdef0123456789abcdef\"", one, act, &id, 1);
    expect_source_error(f, "imports/succ/b.csv", &qid, "another version");
    /* a line the file does not hold */
    qid = new_qid(&q, hq);
    record(f, &q, src.etag, nine, act, &id, 1);
    expect_source_error(f, "imports/succ/b.csv", &qid,
                        "line 9 of the import is not in its source");
    /* the source gone */
    qid = new_qid(&q, hq);
    record(f, &q, src.etag, one, act, &id, 1);
    expect_source_error(f, "imports/succ/gone.csv", &qid,
                        "cannot be read again");
}

static void test_wanted(void **state)
{
    static const struct {
        const char *json;
        int want;
    } cases[] = {
        {"{\"additional_data\": {\"success_file\": true}}", 1},
        {"{\"additional_data\": {\"success_file\": false}}", 0},
        {"{\"additional_data\": {\"success_file\": \"true\"}}", 0},
        {"{\"additional_data\": {\"success_file\": 1}}", 0},
        {"{\"additional_data\": {}}", 0},
        {"{}", 0},
        {"{\"dry_run\": true, \"additional_data\": {\"success_file\": true}}",
         0},
        {"{\"dry_run\": false, \"additional_data\": {\"success_file\": true}}",
         1},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bson_error_t e;
        bson_t *q = bson_new_from_json((const uint8_t *)cases[i].json, -1, &e);
        assert_non_null(q);
        if (sup_succfile_wanted(q) != cases[i].want)
            fail_msg("%s: want %d", cases[i].json, cases[i].want);
        bson_destroy(q);
    }
}

static int setup(void **state)
{
    fix_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    f->skip = it_env_init(&f->env, "succfile") != 0;
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wanted),
        cmocka_unit_test(test_write),
        cmocka_unit_test(test_source_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
