/*
 * Tests wrk_match: the contract's mode, match and success_file read with
 * one type each (a table of shapes, one verdict each); the mapping and the
 * custom field's unique index checked before any write; and the row rule
 * as the table of the data contract: none / one / another pipeline / an
 * earlier line, for create, update and upsert, including a line re-read
 * after a crash that meets its own write.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "wrk_match.h"

#define CF "64b0000000000000000000cf"

static bson_t *doc_from(const char *json)
{
    bson_error_t e;
    bson_t *b = bson_new_from_json((const uint8_t *)json, -1, &e);
    assert_non_null(b);
    return b;
}

static void test_read_table(void **state)
{
    static const struct {
        const char *additional; /* the body of additional_data */
        int ok;
        wrk_match_mode_t mode;
        wrk_match_key_t key;
        const char *field;
        int success_file;
        const char *err; /* a part of the sentence */
    } cases[] = {
        {"", 1, WRK_MATCH_MODE_CREATE, WRK_MATCH_KEY_NONE, "", 0, NULL},
        {"\"mode\":null", 1, WRK_MATCH_MODE_CREATE, WRK_MATCH_KEY_NONE, "", 0,
         NULL},
        {"\"mode\":\"create\"", 1, WRK_MATCH_MODE_CREATE, WRK_MATCH_KEY_NONE,
         "", 0, NULL},
        {"\"mode\":\"update\",\"match\":\"deal_id\"", 1, WRK_MATCH_MODE_UPDATE,
         WRK_MATCH_KEY_DEAL_ID, "_id", 0, NULL},
        {"\"mode\":\"upsert\",\"match\":\"external_id\",\"success_file\":true",
         1, WRK_MATCH_MODE_UPSERT, WRK_MATCH_KEY_EXTERNAL_ID, "external_id", 1,
         NULL},
        {"\"mode\":\"upsert\",\"match\":\"" CF "\"", 1, WRK_MATCH_MODE_UPSERT,
         WRK_MATCH_KEY_CUSTOM, "additional_info." CF, 0, NULL},
        {"\"mode\":\"create\",\"match\":\"external_id\"", 1,
         WRK_MATCH_MODE_CREATE, WRK_MATCH_KEY_EXTERNAL_ID, "external_id", 0,
         NULL},
        {"\"mode\":\"merge\"", 0, 0, 0, "", 0,
         "'additional_data.mode' is 'merge': it must be 'create', 'update' or "
         "'upsert'"},
        {"\"mode\":\"Update\",\"match\":\"deal_id\"", 0, 0, 0, "", 0,
         "is 'Update'"},
        {"\"mode\":1", 0, 0, 0, "", 0, "'additional_data.mode' is a number"},
        {"\"mode\":\"update\"", 0, 0, 0, "", 0,
         "'additional_data.match' is missing"},
        {"\"mode\":\"upsert\",\"match\":\"name\"", 0, 0, 0, "", 0,
         "'additional_data.match' is 'name'"},
        {"\"mode\":\"upsert\",\"match\":\"64B0000000000000000000CF\"", 0, 0, 0,
         "", 0, "24 lowercase hex digits"},
        {"\"mode\":\"upsert\",\"match\":[\"deal_id\"]", 0, 0, 0, "", 0,
         "'additional_data.match' is an array"},
        {"\"success_file\":\"true\"", 0, 0, 0, "", 0,
         "'additional_data.success_file' is a string: it must be a boolean"},
        {"\"success_file\":1", 0, 0, 0, "", 0, "must be a boolean"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char json[512], err[512] = "";
        bson_t *q;
        wrk_match_t m;
        snprintf(json, sizeof(json), "{\"additional_data\":{%s}}",
                 cases[i].additional);
        q = doc_from(json);
        if (cases[i].ok) {
            assert_int_equal(wrk_match_read(q, &m, err, sizeof(err)), 0);
            assert_int_equal(m.mode, cases[i].mode);
            assert_int_equal(m.key, cases[i].key);
            assert_string_equal(m.field, cases[i].field);
            assert_int_equal(m.success_file, cases[i].success_file);
        } else {
            assert_int_equal(wrk_match_read(q, &m, err, sizeof(err)), -1);
            if (strstr(err, cases[i].err) == NULL)
                fail_msg("case %zu: '%s' lacks '%s'", i, err, cases[i].err);
        }
        bson_destroy(q);
    }
}

static void test_mapping(void **state)
{
    wrk_match_t m;
    char err[512] = "";
    bson_t *q = doc_from("{\"additional_data\":{\"mode\":\"update\","
                         "\"match\":\"external_id\"}}");
    bson_t *with = doc_from("{\"Name\":\"name\",\"Ref\":\"external_id\"}");
    bson_t *without = doc_from("{\"Name\":\"name\"}");
    bson_t *deal_id = doc_from("{\"Name\":\"name\",\"Id\":\"deal_id\"}");
    (void)state;
    assert_int_equal(wrk_match_read(q, &m, err, sizeof(err)), 0);
    assert_int_equal(wrk_match_check_mapping(&m, with, err, sizeof(err)), 0);
    assert_int_equal(wrk_match_check_mapping(&m, without, err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "no column is mapped to 'external_id'"));
    /* deal_id is a key only: mapped without a match on it, refused */
    assert_int_equal(wrk_match_check_mapping(&m, deal_id, err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "mapped to 'deal_id'"));
    bson_destroy(q);
    q = doc_from("{}");
    assert_int_equal(wrk_match_read(q, &m, err, sizeof(err)), 0);
    assert_int_equal(wrk_match_check_mapping(&m, without, err, sizeof(err)), 0);
    assert_int_equal(wrk_match_check_mapping(&m, deal_id, err, sizeof(err)),
                     -1);
    bson_destroy(q);
    bson_destroy(with);
    bson_destroy(without);
    bson_destroy(deal_id);
}

static void test_custom_index(void **state)
{
    static const struct {
        const char *indexes;
        int ok;
    } cases[] = {
        {"[]", 0},
        {"[{\"key\":{\"_id\":1},\"name\":\"_id_\"}]", 0},
        /* the right keys, not unique */
        {"[{\"key\":{\"account_id\":1,\"additional_info." CF "\":1}}]", 0},
        {"[{\"key\":{\"account_id\":1,\"additional_info." CF
         "\":1},\"unique\":false}]",
         0},
        /* the field alone is unique over every account, not per account:
         * refused, the index the contract names is the one to create */
        {"[{\"key\":{\"additional_info." CF "\":1},\"unique\":true}]", 0},
        {"[{\"key\":{\"additional_info." CF "\":1,\"account_id\":1},"
         "\"unique\":true}]",
         0},
        {"[{\"key\":{\"account_id\":1,\"additional_info." CF
         "\":1,\"name\":1},\"unique\":true}]",
         0},
        {"[{\"key\":{\"account_id\":1,\"additional_info." CF
         "\":\"hashed\"},\"unique\":true}]",
         0},
        {"[{\"key\":{\"_id\":1}},{\"key\":{\"account_id\":1,"
         "\"additional_info." CF "\":1},\"unique\":true,"
         "\"partialFilterExpression\":{\"x\":1}}]",
         1},
        {"[{\"key\":{\"account_id\":-1,\"additional_info." CF
         "\":1.0},\"unique\":true}]",
         1},
    };
    wrk_match_t m;
    char err[512];
    bson_t *q = doc_from("{\"additional_data\":{\"mode\":\"upsert\","
                         "\"match\":\"" CF "\"}}");
    (void)state;
    assert_int_equal(wrk_match_read(q, &m, err, sizeof(err)), 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char json[512];
        bson_t *arr;
        snprintf(json, sizeof(json), "{\"a\":%s}", cases[i].indexes);
        arr = doc_from(json);
        {
            bson_iter_t it;
            const uint8_t *data;
            uint32_t len;
            bson_t a;
            assert_true(bson_iter_init_find(&it, arr, "a"));
            bson_iter_array(&it, &len, &data);
            assert_true(bson_init_static(&a, data, len));
            err[0] = '\0';
            if (wrk_match_index_ok(&m, &a, err, sizeof(err)) != cases[i].ok)
                fail_msg("case %zu", i);
            if (!cases[i].ok)
                assert_non_null(strstr(err, "db.deals.createIndex({account_id: "
                                            "1, 'additional_info." CF
                                            "': 1}, {unique: true"));
        }
        bson_destroy(arr);
    }
    bson_destroy(q);
    /* external_id: the service's own index, checked the same way */
    q = doc_from("{\"additional_data\":{\"mode\":\"upsert\","
                 "\"match\":\"external_id\"}}");
    assert_int_equal(wrk_match_read(q, &m, err, sizeof(err)), 0);
    assert_int_equal(wrk_match_index_ok(&m, NULL, err, sizeof(err)), 0);
    assert_non_null(
        strstr(err, "no unique index on (account_id, external_id)"));
    {
        bson_t *arr = doc_from("{\"0\":{\"key\":{\"account_id\":1,"
                               "\"external_id\":1},\"unique\":true}}");
        assert_int_equal(wrk_match_index_ok(&m, arr, err, sizeof(err)), 1);
        bson_destroy(arr);
    }
    bson_destroy(q);
    /* deal_id: _id is unique, nothing to check */
    q = doc_from("{\"additional_data\":{\"mode\":\"update\","
                 "\"match\":\"deal_id\"}}");
    assert_int_equal(wrk_match_read(q, &m, err, sizeof(err)), 0);
    assert_int_equal(wrk_match_index_ok(&m, NULL, err, sizeof(err)), 1);
    bson_destroy(q);
}

/* The data contract's table, row by row, in the three modes. */
static void test_verdict_table(void **state)
{
    enum { C = WRK_MATCH_MODE_CREATE, U, S };
    static const struct {
        const char *what;
        wrk_match_facts_t f;
        wrk_match_verdict_t v[3]; /* create, update, upsert */
        int64_t first;
    } rows[] = {
        {"none",
         {.line = 7},
         {WRK_MATCH_CREATE, WRK_MATCH_ERR_NONE, WRK_MATCH_CREATE},
         0},
        {"one",
         {.line = 7, .found = 1},
         {WRK_MATCH_ERR_EXISTS, WRK_MATCH_UPDATE, WRK_MATCH_UPDATE},
         0},
        {"one, in another pipeline",
         {.line = 7, .found = 2},
         {WRK_MATCH_ERR_PIPELINE, WRK_MATCH_ERR_PIPELINE,
          WRK_MATCH_ERR_PIPELINE},
         0},
        {"an earlier line of this run, not written (same batch)",
         {.line = 7, .earlier_line = 3},
         {WRK_MATCH_ERR_REPEAT, WRK_MATCH_ERR_REPEAT, WRK_MATCH_ERR_REPEAT},
         3},
        {"an earlier line of this run, deal found",
         {.line = 7, .earlier_line = 3, .found = 1},
         {WRK_MATCH_ERR_REPEAT, WRK_MATCH_ERR_REPEAT, WRK_MATCH_ERR_REPEAT},
         3},
        {"an earlier batch or run wrote the deal at line 2",
         {.line = 7, .found = 1, .written_by_line = 2},
         {WRK_MATCH_ERR_REPEAT, WRK_MATCH_ERR_REPEAT, WRK_MATCH_ERR_REPEAT},
         2},
        {"this line wrote it before a crash",
         {.line = 7, .found = 1, .written_by_line = 7},
         {WRK_MATCH_DONE, WRK_MATCH_DONE, WRK_MATCH_DONE},
         0},
        {"this line wrote it, and the key was on line 3 in this run",
         {.line = 7, .found = 1, .written_by_line = 7, .earlier_line = 3},
         {WRK_MATCH_DONE, WRK_MATCH_DONE, WRK_MATCH_DONE},
         0},
        {"an empty match cell",
         {.line = 7, .key_empty = 1},
         {WRK_MATCH_CREATE, WRK_MATCH_ERR_EMPTY, WRK_MATCH_CREATE},
         0},
        {"a deal_id that is not an id",
         {.line = 7, .key_malformed = 1},
         {WRK_MATCH_ERR_KEY, WRK_MATCH_ERR_KEY, WRK_MATCH_ERR_KEY},
         0},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        for (int mode = C; mode <= S; mode++) {
            int64_t first = -1;
            wrk_match_verdict_t v =
                wrk_match_verdict((wrk_match_mode_t)mode, &rows[i].f, &first);
            if (v != rows[i].v[mode] ||
                first != (v == WRK_MATCH_ERR_REPEAT ? rows[i].first : 0))
                fail_msg("%s, %s: verdict %d first %lld", rows[i].what,
                         wrk_match_mode_name((wrk_match_mode_t)mode), (int)v,
                         (long long)first);
        }
}

static void test_sentences(void **state)
{
    wrk_match_t m;
    char out[256];
    bson_t *q = doc_from("{\"additional_data\":{\"mode\":\"update\","
                         "\"match\":\"external_id\"}}");
    (void)state;
    assert_int_equal(wrk_match_read(q, &m, out, sizeof(out)), 0);
    assert_string_equal(wrk_match_sentence(&m, WRK_MATCH_ERR_NONE, "X-1", 3, 0,
                                           out, sizeof(out)),
                        "no deal with external_id 'X-1' in this pipeline");
    assert_string_equal(wrk_match_sentence(&m, WRK_MATCH_ERR_EXISTS, "X-1", 3,
                                           0, out, sizeof(out)),
                        "a deal with external_id 'X-1' already exists");
    assert_string_equal(wrk_match_sentence(&m, WRK_MATCH_ERR_REPEAT, "X-1", 3,
                                           12, out, sizeof(out)),
                        "external_id 'X-1' is on line 12 already: only the "
                        "first line with a key is applied");
    assert_true(wrk_match_is_error(WRK_MATCH_ERR_REPEAT));
    assert_false(wrk_match_is_error(WRK_MATCH_UPDATE));
    assert_false(wrk_match_is_error(WRK_MATCH_DONE));
    bson_destroy(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_table),
        cmocka_unit_test(test_mapping),
        cmocka_unit_test(test_custom_index),
        cmocka_unit_test(test_verdict_table),
        cmocka_unit_test(test_sentences),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
