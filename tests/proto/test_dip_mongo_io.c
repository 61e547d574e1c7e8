/*
 * Tests dip_mongo_io's bound of a read (maxTimeMS) against the client's
 * socket timeout, table-driven over URIs and leases: always below the
 * socket timeout, never below its floor, and an explicit maxTimeMS in the
 * caller's options kept. No server needed: clients connect lazily.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "dip_mongo_io.h"

typedef struct {
    const char *uri;
    long lease_ms;
    int64_t want;
} bound_case_t;

static void test_max_time_below_socket_timeout(void **state)
{
    static const bound_case_t cases[] = {
        /* the driver's default socket timeout, 300 s */
        {"mongodb://127.0.0.1:1/crm", 0, 225000},
        /* a lease of 60 s: socket 15 s */
        {"mongodb://127.0.0.1:1/crm", 60000, 11250},
        /* a lease of 4 s: socket 1 s */
        {"mongodb://127.0.0.1:1/crm", 4000, 750},
        /* the smallest socket timeout the bounded client sets, 200 ms */
        {"mongodb://127.0.0.1:1/crm", 100, 150},
        /* the URI's own choice wins over the lease */
        {"mongodb://127.0.0.1:1/crm?socketTimeoutMS=8000", 4000, 6000},
        /* 0 is no socket timeout: the driver default's bound */
        {"mongodb://127.0.0.1:1/crm?socketTimeoutMS=0", 0, 225000},
        /* tiny: the floor */
        {"mongodb://127.0.0.1:1/crm?socketTimeoutMS=50", 0,
         DIP_MONGO_MIN_MAX_TIME_MS},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *db = NULL;
        char err[256];
        mongoc_client_t *client = dip_mongo_client_new_bounded(
            cases[i].uri, "test", cases[i].lease_ms, &db, err, sizeof(err));

        assert_non_null(client);
        if (dip_mongo_max_time_ms(client) != cases[i].want)
            fail_msg("case %zu: maxTimeMS %lld, want %lld", i,
                     (long long)dip_mongo_max_time_ms(client),
                     (long long)cases[i].want);
        dip_mongo_client_close(client);
    }
}

static void test_read_opts(void **state)
{
    const char *db = NULL;
    char err[256];
    mongoc_client_t *client = dip_mongo_client_new_bounded(
        "mongodb://127.0.0.1:1/crm", "test", 4000, &db, err, sizeof(err));
    bson_t *given = BCON_NEW("limit", BCON_INT64(1));
    bson_t *mine = BCON_NEW("maxTimeMS", BCON_INT32(5));
    bson_t *opts;
    bson_iter_t it;
    (void)state;

    opts = dip_mongo_read_opts(client, NULL);
    assert_true(bson_iter_init_find(&it, opts, "maxTimeMS"));
    assert_int_equal(bson_iter_as_int64(&it), 750);
    assert_int_equal(bson_count_keys(opts), 1);
    bson_destroy(opts);

    opts = dip_mongo_read_opts(client, given);
    assert_true(bson_iter_init_find(&it, opts, "limit"));
    assert_true(bson_iter_init_find(&it, opts, "maxTimeMS"));
    assert_int_equal(bson_iter_as_int64(&it), 750);
    bson_destroy(opts);

    opts = dip_mongo_read_opts(client, mine);
    assert_true(bson_iter_init_find(&it, opts, "maxTimeMS"));
    assert_int_equal(bson_iter_as_int64(&it), 5);
    assert_int_equal(bson_count_keys(opts), 1);
    bson_destroy(opts);

    bson_destroy(mine);
    bson_destroy(given);
    dip_mongo_client_close(client);
}

/* A write reply is to be sent again when any of its statements was
 * interrupted, whatever the first write error (the one libmongoc names)
 * was: a good deal interrupted by a step-down or a time limit beside a
 * duplicate must not be taken for a refused one (failure class 5). */
static void test_write_errors_transient(void **state)
{
    static const struct {
        const char *json;
        int want;
    } t[] = {
        {"{\"n\": 3}", 0},
        {"{\"writeErrors\": []}", 0},
        {"{\"writeErrors\": [{\"index\": 0, \"code\": 11000}]}", 0},
        {"{\"writeErrors\": [{\"index\": 0, \"code\": 121}]}", 0},
        {"{\"writeErrors\": [{\"index\": 0, \"code\": 11000}, "
         "{\"index\": 7, \"code\": 11602}]}",
         1},
        {"{\"writeErrors\": [{\"index\": 2, \"code\": 50}]}", 1},
        {"{\"writeErrors\": [{\"index\": 2, \"code\": "
         "{\"$numberLong\": \"10107\"}}]}",
         1},
        {"{\"writeErrors\": [{\"index\": 2, \"code\": 189.0}]}", 1},
        /* a code of another type is no code */
        {"{\"writeErrors\": [{\"index\": 2, \"code\": \"11602\"}]}", 0},
        {"{\"writeErrors\": [5, {\"index\": 1}]}", 0},
        {"{\"writeErrors\": {\"code\": 11602}}", 0},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        bson_error_t e;
        bson_t *b = bson_new_from_json((const uint8_t *)t[i].json, -1, &e);
        assert_non_null(b);
        if (dip_mongo_write_errors_transient(b) != t[i].want)
            fail_msg("%s: want %d", t[i].json, t[i].want);
        bson_destroy(b);
    }
    assert_true(dip_mongo_code_is_transient(11602));
    assert_false(dip_mongo_code_is_transient(11000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_max_time_below_socket_timeout),
        cmocka_unit_test(test_read_opts),
        cmocka_unit_test(test_write_errors_transient),
    };
    int rc;

    dip_mongo_init();
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    mongoc_cleanup();
    return rc;
}
