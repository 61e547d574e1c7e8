/*
 * Tests wrk_diff, the pure part of an update: a row against the
 * stored deal gives the $set, the change entries (with the previous value,
 * or none when the deal had none) and the tags to add; equal values (a
 * number stored as another numeric type included) are unchanged; an empty
 * custom cell, the deal_id key, an empty status cell and the worker's own
 * fields (owner, account, import, times) are never written.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "wrk_diff.h"

#define CF "64b0000000000000000000cf"
#define S1 "64b0000000000000000000a1"
#define S2 "64b0000000000000000000a2"
#define ME "64b000000000000000000001"
#define OTHER "64b000000000000000000009"

static bson_t *doc_from(const char *json)
{
    bson_error_t e;
    bson_t *b = bson_new_from_json((const uint8_t *)json, -1, &e);
    if (b == NULL)
        fail_msg("%s: %s", json, e.message);
    return b;
}

/* A row as wrk_import builds it: _id, mapped fields, then the tail. */
static bson_t *row(const char *mapped, const char *stage, const char *tags)
{
    char json[1024];
    snprintf(json, sizeof(json),
             "{\"_id\":{\"$oid\":\"" OTHER "\"},%s\"stage_id\":{\"$oid\":"
             "\"%s\"},\"pipeline_id\":{\"$oid\":\"" OTHER "\"},"
             "\"account_id\":{\"$oid\":\"" OTHER
             "\"},\"owner\":{\"$oid\":\"" OTHER
             "\"},\"created_by\":{\"$oid\":\"" OTHER "\"},\"tags\":%s,"
             "\"source\":\"csv\",\"created_at\":{\"$date\":1},"
             "\"updated_at\":{\"$date\":1},\"import\":{\"queue_id\":"
             "{\"$oid\":\"" OTHER "\"},\"line\":3}}",
             mapped, stage, tags);
    return doc_from(json);
}

static const char deal_json[] =
    "{\"_id\":{\"$oid\":\"" ME "\"},\"name\":\"Deal 1\",\"value\":100.0,"
    "\"status\":\"won\",\"external_id\":\"R1\",\"additional_info\":{\"" CF
    "\":\"north\"},\"stage_id\":{\"$oid\":\"" S1 "\"},\"pipeline_id\":"
    "{\"$oid\":\"" ME "\"},\"account_id\":{\"$oid\":\"" ME "\"},\"owner\":"
    "{\"$oid\":\"" ME "\"},\"tags\":[\"imported\"]}";

static int diff(const bson_t *r, int status_given, const char *skip,
                bson_t *set, bson_t *changes, bson_t *tags)
{
    bson_t *deal = doc_from(deal_json);
    int n;
    bson_init(set);
    bson_init(changes);
    bson_init(tags);
    n = wrk_diff_row(r, deal, skip, status_given, set, changes, tags);
    bson_destroy(deal);
    return n;
}

static char *json_of(const bson_t *b)
{
    return bson_as_relaxed_extended_json(b, NULL);
}

static void expect_json(const bson_t *b, const char *want)
{
    char *j = json_of(b);
    if (strcmp(j, want) != 0)
        fail_msg("got  %s\nwant %s", j, want);
    bson_free(j);
}

static void test_unchanged(void **state)
{
    bson_t set, changes, tags;
    /* value as an integer equals the stored double; status empty in the
     * file (written 'open' for a new deal) keeps 'won'; an empty custom
     * cell keeps 'north' */
    bson_t *r =
        row("\"name\":\"Deal 1\",\"value\":100,\"status\":\"open\","
            "\"external_id\":\"R1\",\"additional_info\":{\"" CF "\":\"\"},",
            S1, "[\"imported\"]");
    (void)state;
    assert_int_equal(diff(r, 0, NULL, &set, &changes, &tags), 0);
    assert_true(bson_empty(&set));
    assert_true(bson_empty(&changes));
    assert_true(bson_empty(&tags));
    bson_destroy(&set);
    bson_destroy(&changes);
    bson_destroy(&tags);
    bson_destroy(r);
}

static void test_changes(void **state)
{
    bson_t set, changes, tags;
    bson_t *r = row("\"name\":\"Deal 1\",\"value\":250.5,\"status\":\"lost\","
                    "\"contact_name\":\"Ann\",\"deal_id\":\"" ME "\","
                    "\"additional_info\":{\"" CF "\":\"south\"},",
                    S2, "[\"imported\",\"q3\"]");
    (void)state;
    assert_int_equal(diff(r, 1, "deal_id", &set, &changes, &tags), 6);
    expect_json(&set,
                "{ \"value\" : 250.5, \"status\" : \"lost\", "
                "\"contact_name\" : \"Ann\", \"additional_info." CF
                "\" : \"south\", \"stage_id\" : { \"$oid\" : \"" S2 "\" } }");
    expect_json(&changes,
                "{ \"0\" : { \"f\" : \"value\", \"a\" : 250.5, \"b\" : 100.0 "
                "}, \"1\" : { \"f\" : \"status\", \"a\" : \"lost\", \"b\" : "
                "\"won\" }, \"2\" : { \"f\" : \"contact_name\", \"a\" : "
                "\"Ann\" }, \"3\" : { \"f\" : \"additional_info." CF
                "\", \"a\" : \"south\", \"b\" : \"north\" }, \"4\" : { \"f\" "
                ": \"stage_id\", \"a\" : { \"$oid\" : \"" S2
                "\" }, \"b\" : { \"$oid\" : \"" S1 "\" } } }");
    expect_json(&tags, "{ \"0\" : \"q3\" }");
    bson_destroy(&set);
    bson_destroy(&changes);
    bson_destroy(&tags);
    bson_destroy(r);
}

/* The deal_id key is never a value, even when it differs from nothing the
 * deal holds; the worker's own fields never count. */
static void test_never_written(void **state)
{
    bson_t set, changes, tags;
    bson_t *r = row("\"name\":\"Deal 1\",\"deal_id\":\"" ME "\",", S1,
                    "[\"imported\"]");
    (void)state;
    assert_int_equal(diff(r, 1, "deal_id", &set, &changes, &tags), 0);
    bson_destroy(&set);
    bson_destroy(&changes);
    bson_destroy(&tags);
    bson_destroy(r);
}

/* An empty stage cell of an update comes as the zero ObjectId: the deal
 * keeps its stage. */
static void test_empty_stage_kept(void **state)
{
    bson_t set, changes, tags;
    bson_t *r =
        row("\"value\":100,", "000000000000000000000000", "[\"imported\"]");
    (void)state;
    assert_int_equal(diff(r, 0, NULL, &set, &changes, &tags), 0);
    assert_true(bson_empty(&set));
    bson_destroy(&set);
    bson_destroy(&changes);
    bson_destroy(&tags);
    bson_destroy(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unchanged),
        cmocka_unit_test(test_changes),
        cmocka_unit_test(test_never_written),
        cmocka_unit_test(test_empty_stage_kept),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
