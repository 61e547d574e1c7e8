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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_accounts),
        cmocka_unit_test(test_note_served),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
