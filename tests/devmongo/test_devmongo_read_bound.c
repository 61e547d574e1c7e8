/*
 * The service's bound on a read, end to end: a client made as the worker
 * makes it (dip_mongo_client_new_bounded, lease 4 s: socketTimeoutMS 1 s)
 * counts 40,000 documents on the development server in slow mode, where the
 * count would take 4 s. With dip_mongo_read_opts the server stops the count
 * itself at maxTimeMS (750 ms) and answers MaxTimeMSExpired, a transient
 * error, before the client's socket times out; its operation log shows the
 * count ended within that bound. Without maxTimeMS the client's socket would
 * time out at 1 s and the count would run on in the server for 3 s more,
 * beside the retry. Runs on the dev server only (slow mode): skips on a real
 * one.
 *
 * Failure classes: 1 (slow, not down) and 2 (work the client abandoned
 * still runs) are the point: the test fails if the server runs past the
 * bound or if the client gives up first.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "dip_mongo_io.h"
#include "dm_fixture.h"
#include "it_skip.h"

#define DOCS 40000
#define LEASE_MS 4000
#define MARGIN_MS 250.0

static void test_read_stopped_by_the_server(void **state)
{
    dm_fixture_t *fx = *state;
    mongoc_collection_t *fill;
    mongoc_client_t *bounded;
    mongoc_collection_t *coll;
    const char *db = NULL;
    char err[256];
    bson_t *filter, *opts, entry;
    bson_error_t error;
    int64_t n, max_ms;

    if (!fx->devmongo)
        IT_SKIP_MACHINE("not the development server: no slow mode");
    fill = dm_fresh(fx, "read_bound");
    assert_true(dm_fill(fill, DOCS));
    mongoc_collection_destroy(fill);

    bounded =
        dip_mongo_client_new_bounded(getenv("DEALIMPORT_MONGODB_URI"), "test",
                                     LEASE_MS, &db, err, sizeof(err));
    assert_non_null(bounded);
    max_ms = dip_mongo_max_time_ms(bounded);
    assert_true(max_ms < 1000); /* below the socket timeout, a quarter */
    coll = mongoc_client_get_collection(bounded, fx->dbname, "read_bound");
    assert_true(
        dm_admin(fx, BCON_NEW("devSlow", "{", "scan_us", BCON_INT32(100), "}"),
                 NULL, &error));

    filter = BCON_NEW("g", BCON_UTF8("g"));
    opts = dip_mongo_read_opts(bounded, NULL);
    n = mongoc_collection_count_documents(coll, filter, opts, NULL, NULL,
                                          &error);
    assert_true(n < 0);
    /* The server's answer, not the client's socket timeout. */
    assert_int_equal(error.domain, MONGOC_ERROR_SERVER);
    assert_int_equal(error.code, 50);
    assert_true(dip_mongo_is_transient(&error));

    assert_true(dm_last_op(fx, "read_bound", "aggregate", &entry));
    assert_int_equal(dm_int(&entry, "maxTimeMS"), max_ms);
    assert_int_equal(dm_int(&entry, "code"), 50);
    assert_true(dm_double(&entry, "millis") <= (double)max_ms + MARGIN_MS);
    assert_true(dm_int(&entry, "docsExamined") < DOCS);
    bson_destroy(&entry);

    assert_true(
        dm_admin(fx, BCON_NEW("devSlow", "{", "scan_us", BCON_INT32(0), "}"),
                 NULL, &error));
    /* Quick again, a read within its bound completes. */
    bson_destroy(filter);
    filter = BCON_NEW("_id", BCON_INT32(5));
    n = mongoc_collection_count_documents(coll, filter, opts, NULL, NULL,
                                          &error);
    assert_int_equal(n, 1);

    bson_destroy(opts);
    bson_destroy(filter);
    mongoc_collection_destroy(coll);
    dip_mongo_client_close(bounded);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_stopped_by_the_server),
    };
    int rc;

    if (getenv("DEALIMPORT_MONGODB_URI") == NULL ||
        getenv("DEALIMPORT_MONGODB_URI")[0] == '\0') {
        printf("skipped: DEALIMPORT_MONGODB_URI not set\n");
        return it_skip_status();
    }
    dip_mongo_init();
    rc = cmocka_run_group_tests(tests, dm_group_setup, dm_group_teardown);
    mongoc_cleanup();
    return rc;
}
