/*
 * sup_claim: the accounts at their per-account limit (skipped by the next
 * claim) and the memory of when each account was served (the store's fair
 * order reads it), one table row per rule.
 *
 * Failure classes: a tenant that queues many imports at once is the
 * at-the-limit rows (it holds its share, the others are claimed); a
 * supervisor that serves more accounts than it remembers is the full-table
 * rows (the least recently served entry gives way, never a fresh one).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include <mongoc/mongoc.h>

#include "sup_claim.h"

static bson_oid_t acc(int n)
{
    char hex[25];
    bson_oid_t o;
    snprintf(hex, sizeof(hex), "5f00000000000000000000%02x", n);
    bson_oid_init_from_string(&o, hex);
    return o;
}

typedef struct full_row {
    const char *name;
    int busy[8]; /* account numbers of busy slots, 0 ends */
    long per_account;
    size_t max;
    int want[8]; /* skipped accounts in order, 0 ends */
} full_row_t;

static const full_row_t full_rows[] = {
    {"no slot busy", {0}, 2, 64, {0}},
    {"one import of each, limit 2", {1, 2, 3, 0}, 2, 64, {0}},
    {"an account at its limit, once", {1, 2, 1, 0}, 2, 64, {1}},
    {"over the limit (a reload lowered it)", {1, 1, 1, 2, 0}, 2, 64, {1}},
    {"limit 1: every busy account", {3, 1, 3, 2, 0}, 1, 64, {3, 1, 2}},
    {"the skip list is bounded", {3, 1, 2, 0}, 1, 2, {3, 1}},
};

static void test_full_accounts(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(full_rows) / sizeof(full_rows[0]); i++) {
        const full_row_t *r = &full_rows[i];
        bson_oid_t busy[8], skip[8];
        size_t nbusy = 0, nwant = 0, n;
        for (; r->busy[nbusy]; nbusy++)
            busy[nbusy] = acc(r->busy[nbusy]);
        while (r->want[nwant])
            nwant++;
        n = sup_claim_full_accounts(busy, nbusy, r->per_account, skip, r->max);
        if (n != nwant)
            fail_msg("%s: %zu skipped, want %zu", r->name, n, nwant);
        for (size_t j = 0; j < n; j++) {
            bson_oid_t w = acc(r->want[j]);
            if (!bson_oid_equal(&skip[j], &w))
                fail_msg("%s: skip[%zu] is not account %d", r->name, j,
                         r->want[j]);
        }
    }
}

static void test_note_served(void **state)
{
    sup_store_served_t served[3];
    size_t n = 0;
    bson_oid_t a1 = acc(1), a2 = acc(2), a3 = acc(3), a4 = acc(4);
    (void)state;
    memset(served, 0, sizeof(served));
    sup_claim_note_served(served, &n, 3, &a1, 100);
    sup_claim_note_served(served, &n, 3, &a2, 200);
    assert_int_equal(n, 2);
    /* served again: its entry moves on, no second one */
    sup_claim_note_served(served, &n, 3, &a1, 300);
    assert_int_equal(n, 2);
    assert_true(bson_oid_equal(&served[0].account, &a1));
    assert_int_equal(served[0].at_ms, 300);
    sup_claim_note_served(served, &n, 3, &a3, 400);
    assert_int_equal(n, 3);
    /* full: the least recently served (a2 at 200) gives way */
    sup_claim_note_served(served, &n, 3, &a4, 500);
    assert_int_equal(n, 3);
    assert_true(bson_oid_equal(&served[1].account, &a4));
    assert_int_equal(served[1].at_ms, 500);
    assert_true(bson_oid_equal(&served[0].account, &a1));
    assert_true(bson_oid_equal(&served[2].account, &a3));
    /* and then a1 (300) */
    sup_claim_note_served(served, &n, 3, &a2, 600);
    assert_true(bson_oid_equal(&served[0].account, &a2));
    assert_int_equal(served[0].at_ms, 600);
}

/* Which errors of the claim end one document, which pause claiming, and
 * which are a lost race. */
static void test_error_rule(void **state)
{
    static const struct {
        uint32_t domain, code;
        sup_claim_err_t want;
    } cases[] = {
        /* the document's own */
        {MONGOC_ERROR_SERVER, 14, SUP_CLAIM_ERR_DOCUMENT},    /* $inc on null */
        {MONGOC_ERROR_SERVER, 17419, SUP_CLAIM_ERR_DOCUMENT}, /* > 16 MiB */
        {MONGOC_ERROR_SERVER, 10334, SUP_CLAIM_ERR_DOCUMENT},
        {MONGOC_ERROR_SERVER, 2, SUP_CLAIM_ERR_DOCUMENT}, /* $inc overflow */
        {MONGOC_ERROR_SERVER, 52, SUP_CLAIM_ERR_DOCUMENT},
        /* a lost race */
        {MONGOC_ERROR_SERVER, 11000, SUP_CLAIM_ERR_RACE},
        {MONGOC_ERROR_SERVER, 112, SUP_CLAIM_ERR_RACE},
        /* the database, not the document */
        {MONGOC_ERROR_SERVER, 50, SUP_CLAIM_ERR_DATABASE},
        {MONGOC_ERROR_SERVER, 10107, SUP_CLAIM_ERR_DATABASE},
        {MONGOC_ERROR_SERVER, 189, SUP_CLAIM_ERR_DATABASE},
        {MONGOC_ERROR_SERVER, 11601, SUP_CLAIM_ERR_DATABASE},
        {MONGOC_ERROR_SERVER, 13, SUP_CLAIM_ERR_DATABASE},
        {MONGOC_ERROR_WRITE_CONCERN, 64, SUP_CLAIM_ERR_DATABASE},
        {MONGOC_ERROR_WRITE_CONCERN, 100, SUP_CLAIM_ERR_DATABASE},
        {MONGOC_ERROR_STREAM, MONGOC_ERROR_STREAM_SOCKET,
         SUP_CLAIM_ERR_DATABASE},
        {MONGOC_ERROR_SERVER_SELECTION, MONGOC_ERROR_SERVER_SELECTION_FAILURE,
         SUP_CLAIM_ERR_DATABASE},
        {MONGOC_ERROR_CLIENT, MONGOC_ERROR_CLIENT_AUTHENTICATE,
         SUP_CLAIM_ERR_DATABASE},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        printf("domain %u code %u\n", cases[i].domain, cases[i].code);
        assert_int_equal(sup_claim_error_rule(cases[i].domain, cases[i].code),
                         cases[i].want);
    }
}

/* A document set aside: a minute, doubling per refusal, at most an hour;
 * one entry per id; a full table gives up the entry due soonest. */
static void test_aside(void **state)
{
    sup_claim_aside_t aside[2];
    size_t n = 0;
    bson_value_t a = {.value_type = BSON_TYPE_UTF8}, b, c;
    sup_claim_aside_t *e;
    (void)state;
    assert_int_equal(sup_claim_aside_ms(1), 60000);
    assert_int_equal(sup_claim_aside_ms(2), 120000);
    assert_int_equal(sup_claim_aside_ms(6), 1920000);
    assert_int_equal(sup_claim_aside_ms(7), 3600000);
    assert_int_equal(sup_claim_aside_ms(1000), 3600000);
    a.value.v_utf8.str = (char *)"a";
    a.value.v_utf8.len = 1;
    b.value_type = BSON_TYPE_INT32;
    b.value.v_int32 = 7;
    c.value_type = BSON_TYPE_NULL;
    e = sup_claim_set_aside(aside, &n, 2, &a, 1000);
    assert_int_equal(n, 1);
    assert_int_equal(e->tries, 1);
    assert_int_equal(e->until_ms, 61000);
    e = sup_claim_set_aside(aside, &n, 2, &a, 2000);
    assert_int_equal(n, 1);
    assert_int_equal(e->tries, 2);
    assert_int_equal(e->until_ms, 122000);
    e = sup_claim_set_aside(aside, &n, 2, &b, 3000);
    assert_int_equal(n, 2);
    assert_int_equal(e->until_ms, 63000);
    /* full: b (due at 63000) gives way to c */
    e = sup_claim_set_aside(aside, &n, 2, &c, 4000);
    assert_int_equal(n, 2);
    assert_int_equal(e->id.value_type, BSON_TYPE_NULL);
    assert_int_equal(e->tries, 1);
    assert_int_equal(aside[0].id.value_type, BSON_TYPE_UTF8);
    assert_int_equal(aside[0].tries, 2);
    assert_int_equal(aside[1].id.value_type, BSON_TYPE_NULL);
    for (size_t i = 0; i < n; i++)
        bson_value_destroy(&aside[i].id);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_accounts),
        cmocka_unit_test(test_note_served),
        cmocka_unit_test(test_error_rule),
        cmocka_unit_test(test_aside),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
