/*
 * Tests dip_bson's strict readers: a number is an int32, an int64 or a
 * double without a fraction, and nothing else is read as one (a string, a
 * boolean, 1.5, NaN); the names of types in sentences.
 * dip_bson_reply_value over the replies findAndModify gives: a document,
 * none (null), none at all, and a value that is not a document (class 11:
 * types are decided, a string is not a document).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "dip_bson.h"

static void test_iter_int(void **state)
{
    bson_t *d =
        BCON_NEW("i32", BCON_INT32(-7), "i64", BCON_INT64(INT64_C(1) << 40),
                 "d", BCON_DOUBLE(12.0), "frac", BCON_DOUBLE(1.5), "big",
                 BCON_DOUBLE(1e300), "nan", BCON_DOUBLE(NAN), "s",
                 BCON_UTF8("12"), "b", BCON_BOOL(true), "n", BCON_NULL);
    static const struct {
        const char *key;
        int rc;
        int64_t v;
    } cases[] = {
        {"i32", 0, -7},  {"i64", 0, INT64_C(1) << 40},
        {"d", 0, 12},    {"frac", -1, 99},
        {"big", -1, 99}, {"nan", -1, 99},
        {"s", -1, 99},   {"b", -1, 99},
        {"n", -1, 99},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bson_iter_t it;
        int64_t v = 99;
        assert_true(bson_iter_init_find(&it, d, cases[i].key));
        assert_int_equal(dip_bson_iter_int(&it, &v), cases[i].rc);
        assert_int_equal(v, cases[i].v);
        assert_int_equal(dip_bson_get_int(d, cases[i].key, 99), cases[i].v);
    }
    assert_int_equal(dip_bson_get_int(d, "absent", 5), 5);
    bson_destroy(d);
}

static void test_type_names(void **state)
{
    (void)state;
    assert_string_equal(dip_bson_type_name(BSON_TYPE_UTF8), "a string");
    assert_string_equal(dip_bson_type_name(BSON_TYPE_INT32), "a number");
    assert_string_equal(dip_bson_type_name(BSON_TYPE_DOUBLE), "a number");
    assert_string_equal(dip_bson_type_name(BSON_TYPE_BOOL), "a boolean");
    assert_string_equal(dip_bson_type_name(BSON_TYPE_ARRAY), "an array");
    assert_string_equal(dip_bson_type_name(BSON_TYPE_DOCUMENT), "an object");
    assert_string_equal(dip_bson_type_name(BSON_TYPE_NULL), "null");
    assert_string_equal(dip_bson_type_name(BSON_TYPE_REGEX),
                        "a value of another type");
}

static void test_reply_value(void **state)
{
    static const struct {
        const char *reply;
        int found;
        const char *status; /* the value's status, when found */
    } cases[] = {
        {"{\"lastErrorObject\": {\"n\": 1}, \"value\": {\"status\": "
         "\"processing\"}, \"ok\": 1}",
         1, "processing"},
        {"{\"value\": {}, \"ok\": 1}", 1, NULL},
        {"{\"lastErrorObject\": {\"n\": 0}, \"value\": null, \"ok\": 1}", 0,
         NULL},
        {"{\"ok\": 1}", 0, NULL},
        {"{\"value\": \"processing\"}", 0, NULL},
        {"{\"value\": [1, 2]}", 0, NULL},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bson_error_t e;
        bson_t *r = bson_new_from_json((const uint8_t *)cases[i].reply, -1, &e);
        bson_t view;
        int found;
        assert_non_null(r);
        found = dip_bson_reply_value(r, &view);
        if (found != cases[i].found)
            fail_msg("reply %s: found %d, want %d", cases[i].reply, found,
                     cases[i].found);
        if (found && cases[i].status)
            assert_string_equal(dip_bson_get_str(&view, "status"),
                                cases[i].status);
        else if (found)
            assert_int_equal(bson_count_keys(&view), 0);
        bson_destroy(r);
    }
}

/* dip_bson_append_is, one row per kind of value: the filter it appends,
 * as canonical extended JSON. */
static void test_append_is(void **state)
{
    static const struct {
        const char *value, *filter;
    } rows[] = {
        {"{\"v\": {\"$numberInt\": \"1\"}}",
         "{ \"f\" : { \"$eq\" : { \"$numberInt\" : \"1\" }, \"$not\" : { "
         "\"$type\" : \"array\" } } }"},
        {"{\"v\": \"x\"}",
         "{ \"f\" : { \"$eq\" : \"x\", \"$not\" : { \"$type\" : \"array\" "
         "} } }"},
        {"{\"v\": null}",
         "{ \"f\" : { \"$eq\" : null, \"$exists\" : true, \"$not\" : { "
         "\"$type\" : \"array\" } } }"},
        {"{\"v\": {\"$gt\": \"a\"}}",
         "{ \"f\" : { \"$eq\" : { \"$gt\" : \"a\" }, \"$not\" : { "
         "\"$type\" : \"array\" } } }"},
        {"{\"v\": [\"a\", \"b\"]}", "{ \"f\" : [ \"a\", \"b\" ] }"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        bson_t *d =
            bson_new_from_json((const uint8_t *)rows[i].value, -1, NULL);
        bson_t q = BSON_INITIALIZER;
        bson_iter_t it;
        char *json;
        assert_non_null(d);
        assert_true(bson_iter_init_find(&it, d, "v"));
        assert_true(dip_bson_append_is(&q, "f", &it));
        json = bson_as_canonical_extended_json(&q, NULL);
        if (strcmp(json, rows[i].filter) != 0)
            fail_msg("row %zu: %s", i, json);
        bson_free(json);
        bson_destroy(&q);
        bson_destroy(d);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_iter_int),
        cmocka_unit_test(test_type_names),
        cmocka_unit_test(test_reply_value),
        cmocka_unit_test(test_append_is),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
