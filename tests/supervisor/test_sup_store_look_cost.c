/*
 * What the claim's look costs, against the development database (skipped
 * without it, a failure where CI=true): it reads one index entry per
 * account with pending imports and the running imports, never an account's
 * backlog, counted by the development server's op log; and it still finds
 * the accounts whose only claimable imports run under a lease that ran
 * out. The failure classes of the look are walked at
 * test_look_reads_accounts.
 */
#include "ts_look.h"

/* Pending imports of one account, inserted together: count of them, the
 * oldest first (created_at one millisecond apart from base). */
static void enqueue_many(const bson_oid_t *account, int count, int64_t base)
{
    mongoc_collection_t *queues = it_coll(&env, "queues");
    enum { BATCH = 1000 };
    for (int done = 0; done < count;) {
        bson_t *docs[BATCH];
        int n = 0;
        bson_error_t error;
        for (; n < BATCH && done < count; n++, done++)
            docs[n] =
                BCON_NEW("source", BCON_UTF8("deals"), "status",
                         BCON_UTF8("pending"), "in_progress", BCON_BOOL(false),
                         "account_id", BCON_OID(account), "csv", "[", "{",
                         "key", BCON_UTF8("imports/deals/look/many.csv"),
                         "name", BCON_UTF8("many.csv"), "}", "]", "mappings",
                         "{", "Deal Name", BCON_UTF8("name"), "}", "created_at",
                         BCON_DATE_TIME(base + done));
        if (!mongoc_collection_insert_many(queues, (const bson_t **)docs,
                                           (size_t)n, NULL, NULL, &error))
            fail_msg("insert: %s", error.message);
        for (int i = 0; i < n; i++)
            bson_destroy(docs[i]);
    }
    mongoc_collection_destroy(queues);
}

/* One tenant's backlog costs no one else: 20,000 pending imports of one
 * account (the oldest) and two of each of three others. A look examines
 * one index key per account (a DISTINCT_SCAN of
 * source_account_status_created, and the running imports, which are few),
 * not every claimable import: it read all 20,006 when it grouped and
 * counted them, which at the development server's slow price of 35 us a
 * document is 0.7 s per look, and past about 320,000 more than the look's
 * time bound (11 s with a 60 s lease): then no account claimed anything
 * (failure classes 1 and 3). And the turns stay fair: four claims, two
 * slots each, are one claim in each account, the big one no more than
 * once.
 *
 * Failure classes, on the new look:
 * - 1 (slow, not down): its cost is the accounts with pending imports
 *   (mongod seeks once or twice per account in the source, with or without
 *   pending imports) and the running ones, not the backlog; each call still
 *   carries maxTimeMS, and a failed look drops it: the next claim looks
 *   anew;
 * - 2 (abandoned work): maxTimeMS as before (dip_mongo_read_opts);
 * - 3 (on an index): the pending look is $match {source, status} (and the
 *   accounts passed over), $sort in the index's order, $group on account_id
 *   with $first of created_at alone: mongod's DISTINCT_SCAN of
 *   source_account_status_created, covered; the running look is on
 *   source_status_created (source, status) and reads the processing
 *   imports only; both in docs/scaling.md;
 * - 4 (one document poisons a loop): a pending import of an account that no
 *   claim can take (in_progress left true, which the look does not filter:
 *   a filter outside the index would lose the DISTINCT_SCAN) costs one
 *   empty findAndModify at a new look, and the next account is tried in
 *   the same claim; it never holds the others;
 * - 5 (a reply late by a lease): the look decides nothing; the claim's
 *   findAndModify and the slot's unique index do;
 * - 9 (shared slots): running imports on other supervisors come from the
 *   running look, their lease live; a lapsed one is its account's turn;
 * - 11 (types): an account stored as ObjectId or as text groups apart and
 *   is merged into one turn as before (add_candidate); a created_at that
 *   is not a date is not the oldest date; an account_id stored as an
 *   array makes the index multikey, and mongod then reads every key again
 *   (no DISTINCT_SCAN): the price of a broken document, not a wrong claim;
 * - 12 (tenants): the look only orders accounts; each claim names its own.
 */
static void test_look_reads_accounts(void **state)
{
    enum { BIG = 20000, OTHERS = 3 };
    sup_store_t *st = ts_look_fresh("look-accounts");
    ts_look_loop_t l;
    bson_oid_t big, others[OTHERS], q, got;
    int seen[OTHERS + 1] = {0};
    long most;
    (void)state;
    memset(&l, 0, sizeof(l));
    bson_oid_init(&big, NULL);
    enqueue_many(&big, BIG, dip_bson_now_ms() - 3600 * 1000);
    for (int a = 0; a < OTHERS; a++) {
        bson_oid_init(&others[a], NULL);
        ts_look_enqueue(&others[a], &q);
        ts_look_enqueue(&others[a], &q);
    }
    ts_look_examined_most("aggregate");
    for (int i = 0; i < OTHERS + 1; i++) {
        assert_int_equal(ts_look_claim(st, &l, 2, &got), 1);
        if (bson_oid_equal(&got, &big))
            seen[OTHERS]++;
        else
            seen[ts_look_which(&got, others, OTHERS)]++;
    }
    most = ts_look_examined_most("aggregate");
    for (int a = 0; a <= OTHERS; a++)
        assert_int_equal(seen[a], 1);
    if (most >= 0) {
        print_message("a look over %d pending imports of %d accounts: %ld "
                      "keys or documents at most\n",
                      BIG + 2 * OTHERS, OTHERS + 1, most);
        if (most > 2 * (OTHERS + 1) + 4)
            fail_msg("a look examined %ld queue documents or keys; %d "
                     "accounts wait",
                     most, OTHERS + 1);
    }
    ts_look_release(&l);
    sup_store_destroy(&st);
}

/* Accounts whose only claimable imports are running ones whose supervisor
 * is gone: one under a lease that ran out, one with no lease at all (a
 * document edited by hand: the claim's filter takes it, class 11). Nothing
 * of theirs is pending, so the pending look does not see them; the running
 * imports' look does, and a second supervisor takes both over. A third
 * account's import under a live lease is no one's turn. */
static void test_lapsed_only(void **state)
{
    sup_store_t *a = ts_look_fresh("look-lapsed-a"), *b;
    mongoc_collection_t *queues = it_coll(&env, "queues");
    ts_look_loop_t la, lb;
    bson_oid_t acc[3], q[3], got;
    int seen[3] = {0, 0, 0};
    char err[512];
    (void)state;
    memset(&la, 0, sizeof(la));
    memset(&lb, 0, sizeof(lb));
    for (int i = 0; i < 3; i++) {
        bson_oid_init(&acc[i], NULL);
        ts_look_enqueue(&acc[i], &q[i]);
    }
    for (int i = 0; i < 3; i++)
        assert_int_equal(ts_look_claim(a, &la, 2, &got), 1);
    for (int i = 0; i < 2; i++) {
        bson_t *f = BCON_NEW("_id", BCON_OID(&q[i]));
        bson_t *u =
            i == 0 ? BCON_NEW("$set", "{", "lease_expires_at",
                              BCON_DATE_TIME(dip_bson_now_ms() - 1000), "}")
                   : BCON_NEW("$unset", "{", "lease_expires_at", BCON_UTF8(""),
                              "}");
        assert_true(
            mongoc_collection_update_one(queues, f, u, NULL, NULL, NULL));
        bson_destroy(f);
        bson_destroy(u);
    }
    b = sup_store_new(&env.cfg, "look-lapsed-b", env.client, env.dbname, err,
                      sizeof(err));
    assert_non_null(b);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(ts_look_claim(b, &lb, 2, &got), 1);
        seen[ts_look_which(&got, acc, 3)]++;
    }
    assert_int_equal(seen[0], 1);
    assert_int_equal(seen[1], 1);
    assert_int_equal(ts_look_claim(b, &lb, 2, &got), 0);
    ts_look_release(&la);
    ts_look_release(&lb);
    mongoc_collection_destroy(queues);
    sup_store_destroy(&b);
    sup_store_destroy(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_look_reads_accounts),
        cmocka_unit_test(test_lapsed_only),
    };
    int rc = it_env_init(&env, "sup_store_look_cost");
    if (rc)
        return rc;
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    it_env_release(&env);
    return rc;
}
