/*
 * sup_renew: the lease keeper against the development database. Its table
 * (hold, forget, a claim named by id and epoch), a renewal that moves a
 * held claim's lease_expires_at and reports until when it holds, and a
 * claim that another supervisor took over reported lost while the others
 * stay held. Needs DEALIMPORT_MONGODB_URI (scripts/test starts the stack);
 * without it the program exits through the suite's skip policy
 * (tests/support/it_skip.h): skipped, a failure where CI=true.
 *
 * Failure classes: another supervisor's takeover (its claimed_by and
 * epoch on the document) is test_lost; an older claim of this same
 * supervisor (another epoch) is the epoch rows of test_table, never
 * renewed; a database that is away leaves until and lost as they were
 * (renewals fail, nothing is learnt), which the loop's lease rules handle
 * (test_sup_lease).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dip_bson.h"
#include "dip_config.h"
#include "dip_mongo_io.h"
#include "it_skip.h"
#include "sup_renew.h"

#define OWNER "test-renew:1:2"

typedef struct fixture {
    dip_config_t cfg;
    mongoc_client_t *client;
    mongoc_collection_t *queues;
    sup_renew_t *renew;
} fixture_t;

/* A claimed queue document: ours (or owner's) with epoch, its lease
 * ending at lease_ms (wall clock). */
static void insert_claim(fixture_t *fx, bson_oid_t *id, const char *owner,
                         int64_t epoch, int64_t lease_ms)
{
    bson_t *doc;
    bson_error_t e;
    bson_oid_init(id, NULL);
    doc = BCON_NEW("_id", BCON_OID(id), "source", BCON_UTF8("deals"), "status",
                   BCON_UTF8("processing"), "claimed_by", BCON_UTF8(owner),
                   "claims", BCON_INT64(epoch), "lease_expires_at",
                   BCON_DATE_TIME(lease_ms));
    assert_true(mongoc_collection_insert_one(fx->queues, doc, NULL, NULL, &e));
    bson_destroy(doc);
}

static int64_t lease_of(fixture_t *fx, const bson_oid_t *id)
{
    bson_t *filter = BCON_NEW("_id", BCON_OID(id));
    mongoc_cursor_t *c =
        mongoc_collection_find_with_opts(fx->queues, filter, NULL, NULL);
    const bson_t *doc;
    bson_iter_t it;
    int64_t v = -1;
    if (mongoc_cursor_next(c, &doc) &&
        bson_iter_init_find(&it, doc, "lease_expires_at") &&
        BSON_ITER_HOLDS_DATE_TIME(&it))
        v = bson_iter_date_time(&it);
    mongoc_cursor_destroy(c);
    bson_destroy(filter);
    return v;
}

/* Waits (renewals come every lease_s/6 = 1 s) until the claim's state
 * satisfies want_lost / until > 0, at most 20 s; returns its state. */
static void wait_state(fixture_t *fx, const bson_oid_t *id, int64_t epoch,
                       int want_lost, int64_t *until, int *lost)
{
    for (int i = 0; i < 200; i++) {
        assert_int_equal(sup_renew_state(fx->renew, id, epoch, until, lost), 0);
        if (want_lost ? *lost : *until > 0)
            return;
        usleep(100 * 1000);
    }
    fail_msg("the lease keeper never reported the claim %s",
             want_lost ? "lost" : "renewed");
}

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));
    const char *db;
    char err[512];
    if (fx == NULL)
        return -1;
    dip_config_init(&fx->cfg);
    fx->cfg.mongodb_uri = strdup(getenv("DEALIMPORT_MONGODB_URI"));
    fx->cfg.lease_s = 6;
    fx->client = dip_mongo_client_new(fx->cfg.mongodb_uri, "test-sup-renew",
                                      &db, err, sizeof(err));
    if (fx->client == NULL) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    fx->queues = mongoc_client_get_collection(fx->client, db, "queues");
    fx->renew = sup_renew_new(&fx->cfg, OWNER, NULL, err, sizeof(err));
    if (fx->renew == NULL) {
        fprintf(stderr, "sup_renew_new: %s\n", err);
        return -1;
    }
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    sup_renew_destroy(&fx->renew);
    mongoc_collection_destroy(fx->queues);
    dip_mongo_client_close(fx->client);
    dip_config_release(&fx->cfg);
    free(fx);
    return 0;
}

static void test_table(void **state)
{
    fixture_t *fx = *state;
    bson_oid_t a, b;
    int64_t until = -1;
    int lost = -1;
    bson_oid_init(&a, NULL);
    bson_oid_init(&b, NULL);
    assert_int_equal(sup_renew_state(fx->renew, &a, 1, &until, &lost), -1);
    assert_int_equal(sup_renew_hold(fx->renew, &a, 1), 0);
    assert_int_equal(sup_renew_hold(fx->renew, &b, 4), 0);
    assert_int_equal(sup_renew_state(fx->renew, &a, 1, &until, &lost), 0);
    assert_int_equal(lost, 0);
    /* a claim is its id and its epoch: an older claim is not this one */
    assert_int_equal(sup_renew_state(fx->renew, &a, 2, &until, &lost), -1);
    sup_renew_forget(fx->renew, &a);
    assert_int_equal(sup_renew_state(fx->renew, &a, 1, &until, &lost), -1);
    assert_int_equal(sup_renew_state(fx->renew, &b, 4, &until, &lost), 0);
    sup_renew_forget(fx->renew, &b);
    assert_int_equal(sup_renew_state(fx->renew, &b, 4, &until, &lost), -1);
}

static void test_renewed(void **state)
{
    fixture_t *fx = *state;
    bson_oid_t id;
    int64_t was = dip_bson_now_ms() + 1000, until = 0;
    int lost = 0;
    insert_claim(fx, &id, OWNER, 3, was);
    assert_int_equal(sup_renew_hold(fx->renew, &id, 3), 0);
    wait_state(fx, &id, 3, 0, &until, &lost);
    assert_int_equal(lost, 0);
    /* the document's lease now runs a lease (6 s) from the renewal */
    assert_true(lease_of(fx, &id) > was);
    sup_renew_forget(fx->renew, &id);
}

static void test_lost(void **state)
{
    fixture_t *fx = *state;
    bson_oid_t ours, taken;
    bson_t *filter, *update;
    bson_error_t e;
    int64_t until = 0, now = dip_bson_now_ms();
    int lost = 0;
    insert_claim(fx, &ours, OWNER, 1, now + 1000);
    insert_claim(fx, &taken, OWNER, 1, now + 1000);
    assert_int_equal(sup_renew_hold(fx->renew, &ours, 1), 0);
    assert_int_equal(sup_renew_hold(fx->renew, &taken, 1), 0);
    wait_state(fx, &taken, 1, 0, &until, &lost);
    /* another supervisor takes it over: a new owner and epoch */
    filter = BCON_NEW("_id", BCON_OID(&taken));
    update = BCON_NEW("$set", "{", "claimed_by", BCON_UTF8("other:9:9"),
                      "claims", BCON_INT64(2), "}");
    assert_true(mongoc_collection_update_one(fx->queues, filter, update, NULL,
                                             NULL, &e));
    bson_destroy(filter);
    bson_destroy(update);
    wait_state(fx, &taken, 1, 1, &until, &lost);
    assert_int_equal(lost, 1);
    /* the other claim is renewed on, not lost with it */
    assert_int_equal(sup_renew_state(fx->renew, &ours, 1, &until, &lost), 0);
    assert_int_equal(lost, 0);
    assert_true(until > 0);
    sup_renew_forget(fx->renew, &ours);
    sup_renew_forget(fx->renew, &taken);
}

int main(void)
{
    const char *uri = getenv("DEALIMPORT_MONGODB_URI");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_renewed),
        cmocka_unit_test(test_lost),
    };
    if (uri == NULL || *uri == '\0') {
        fprintf(stderr, "DEALIMPORT_MONGODB_URI is not set: the lease keeper "
                        "needs the development database (scripts/test)\n");
        return it_skip_status();
    }
    dip_mongo_init();
    return cmocka_run_group_tests(tests, setup, teardown);
}
