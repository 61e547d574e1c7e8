/* dip_claim: the lease-claim filter, the lease's $set, the fence and the
 * "matched nothing" verdict, each over a table of facts and the exact
 * document (canonical extended JSON) it must build. Pure: no database.
 *
 * Failure classes: 5 (stepped down, lying) meets dip_claim_lost, which
 * says "lost" only on a reply that says matchedCount 0, never on a reply
 * without it (a write concern error's reply is the caller's to judge, by
 * its error); 11 (types): a matchedCount stored as a string is not a
 * number and so not "lost". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "dip_claim.h"

/* The canonical extended JSON of doc, compared with want. */
static void assert_json(const bson_t *doc, const char *want)
{
    char *got = bson_as_canonical_extended_json(doc, NULL);
    if (strcmp(got, want) != 0)
        fail_msg("built %s\n  want %s", got, want);
    bson_free(got);
}

static void test_claim_free(void **state)
{
    static const struct {
        const char *lease;
        int64_t now;
        const char *want;
    } cases[] = {
        {"lease_expires_at", 1000,
         "{ \"$or\" : [ { \"lease_expires_at\" : { \"$exists\" : false } }, "
         "{ \"lease_expires_at\" : { \"$lt\" : { \"$date\" : { "
         "\"$numberLong\" : \"1000\" } } } } ] }"},
        {"log_lease", 0,
         "{ \"$or\" : [ { \"log_lease\" : { \"$exists\" : false } }, "
         "{ \"log_lease\" : { \"$lt\" : { \"$date\" : { \"$numberLong\" : "
         "\"0\" } } } } ] }"},
        {"followups_lease", 1700000000123,
         "{ \"$or\" : [ { \"followups_lease\" : { \"$exists\" : false } }, "
         "{ \"followups_lease\" : { \"$lt\" : { \"$date\" : { "
         "\"$numberLong\" : \"1700000000123\" } } } } ] }"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bson_t q = BSON_INITIALIZER;
        dip_claim_append_free(&q, cases[i].lease, cases[i].now);
        assert_json(&q, cases[i].want);
        bson_destroy(&q);
    }
}

static void test_claim_expired(void **state)
{
    bson_t q = BSON_INITIALIZER;
    (void)state;
    BSON_APPEND_UTF8(&q, "status", "processing");
    dip_claim_append_expired(&q, "lease_expires_at", 42);
    assert_json(&q, "{ \"status\" : \"processing\", \"lease_expires_at\" : "
                    "{ \"$not\" : { \"$gte\" : { \"$date\" : { "
                    "\"$numberLong\" : \"42\" } } } } }");
    bson_destroy(&q);
}

static void test_claim_take(void **state)
{
    static const struct {
        const char *lease, *owner_field, *owner;
        int64_t now, duration;
        const char *want;
    } cases[] = {
        {"lease_expires_at", "claimed_by", "host:1", 1000, 30000,
         "{ \"lease_expires_at\" : { \"$date\" : { \"$numberLong\" : "
         "\"31000\" } }, \"claimed_by\" : \"host:1\" }"},
        /* a renewal: the lease alone */
        {"lease_expires_at", NULL, NULL, 5, 10,
         "{ \"lease_expires_at\" : { \"$date\" : { \"$numberLong\" : \"15\" "
         "} } }"},
        {"followups_lease", "followups_by", "h:2", 0, 600000,
         "{ \"followups_lease\" : { \"$date\" : { \"$numberLong\" : "
         "\"600000\" } }, \"followups_by\" : \"h:2\" }"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bson_t set = BSON_INITIALIZER;
        dip_claim_append_take(&set, cases[i].lease, cases[i].now,
                              cases[i].duration, cases[i].owner_field,
                              cases[i].owner);
        assert_json(&set, cases[i].want);
        bson_destroy(&set);
    }
}

static void test_claim_fence(void **state)
{
    bson_value_t oid = {.value_type = BSON_TYPE_OID};
    bson_value_t str = {.value_type = BSON_TYPE_UTF8};
    const struct {
        const bson_value_t *id;
        int64_t epoch;
        const char *want;
    } cases[] = {
        {&oid, 7,
         "{ \"_id\" : { \"$oid\" : \"0123456789abcdef01234567\" }, "
         "\"claimed_by\" : \"h:1\", \"claims\" : { \"$numberLong\" : \"7\" } "
         "}"},
        /* no epoch: owner alone (events) */
        {&oid, -1,
         "{ \"_id\" : { \"$oid\" : \"0123456789abcdef01234567\" }, "
         "\"claimed_by\" : \"h:1\" }"},
        /* an id as the CRM wrote it: as stored */
        {&str, 0,
         "{ \"_id\" : \"q-1\", \"claimed_by\" : \"h:1\", \"claims\" : { "
         "\"$numberLong\" : \"0\" } }"},
    };
    (void)state;
    bson_oid_init_from_string(&oid.value.v_oid, "0123456789abcdef01234567");
    str.value.v_utf8.str = (char *)"q-1";
    str.value.v_utf8.len = 3;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bson_t f = BSON_INITIALIZER;
        dip_claim_append_fence(&f, cases[i].id, "claimed_by", "h:1",
                               cases[i].epoch);
        assert_json(&f, cases[i].want);
        bson_destroy(&f);
    }
}

static void test_claim_lost(void **state)
{
    static const struct {
        const char *reply; /* relaxed JSON */
        int lost;
    } cases[] = {
        {"{\"matchedCount\": 0, \"modifiedCount\": 0}", 1},
        {"{\"matchedCount\": {\"$numberLong\": \"0\"}}", 1},
        {"{\"matchedCount\": 0.0}", 1},
        {"{\"matchedCount\": 1, \"modifiedCount\": 0}", 0},
        {"{\"matchedCount\": 3}", 0},
        {"{}", 0},
        {"{\"matchedCount\": \"0\"}", 0},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bson_error_t e;
        bson_t *r = bson_new_from_json((const uint8_t *)cases[i].reply, -1, &e);
        assert_non_null(r);
        if (dip_claim_lost(r) != cases[i].lost)
            fail_msg("reply %s: lost %d, want %d", cases[i].reply,
                     dip_claim_lost(r), cases[i].lost);
        bson_destroy(r);
    }
    assert_int_equal(dip_claim_lost(NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_claim_free), cmocka_unit_test(test_claim_expired),
        cmocka_unit_test(test_claim_take), cmocka_unit_test(test_claim_fence),
        cmocka_unit_test(test_claim_lost),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
