/*
 * The claim's look at the queue kept across claims (sup_store_priv.h),
 * against the development database (skipped without it, a failure where
 * CI=true): six claims over three accounts cost one look (two aggregates
 * on queues, counted by the development server's op log), not six, and
 * still go round the accounts fairly; a kept look that has gone wrong is
 * never the last word.
 *
 * Failure classes, on the claim from a kept look:
 * - a document deleted, or changed so that the claim's filter no longer
 *   takes it (another status, another account): the account's findAndModify
 *   matches nothing; the account is dropped from the look, the next
 *   account is tried, and when none claims, a new look decides
 *   (test_stale_look: "0" from a claim is always a new look's);
 * - 5, 9 (claimed elsewhere, shared slots): another supervisor's claim is a
 *   lost race for this one (nothing matched, or the slot's unique index
 *   refuses, 11000): the same as above; the per-account limit is the
 *   index's, whatever the look says;
 * - 4 (poison): a document the database refuses to update ends alone as
 *   before (sup_claim_error_rule), counted down from the look, and the next
 *   claim is served from the kept look without another aggregate;
 * - made unclaimable by the operator (paused, cancelled): its status is
 *   no longer pending, as "changed" above;
 * - 1, 2 (a slow database, abandoned work): a kept look makes fewer calls,
 *   each bounded as before (dip_mongo_read_opts' maxTimeMS); a failed call
 *   drops the look, so the next claim after an outage looks anew;
 * - 3 (on an index): a kept look adds no query; the findAndModify is the
 *   one the claim always made (the suite runs with notablescan);
 * - 12 (tenants): the account a claim tries comes from the look, and the
 *   findAndModify still names it: a stale look can claim nothing of
 *   another account.
 * What other supervisors and the CRM change is seen at the next
 * change-stream wake or poll, where the loop drops the look
 * (sup_store_claim_forget), or at the first claim it misleads.
 */
#include "ts_look.h"

/* Three accounts of three imports each, the first account's all older than
 * the others': six claims with two slots per account are two rounds of
 * the three accounts, from one look. */
static void test_kept_look(void **state)
{
    sup_store_t *st = ts_look_fresh("host:look");
    ts_look_loop_t l;
    bson_oid_t acc[3], q, got;
    long before, after;
    int64_t looks;
    (void)state;
    memset(&l, 0, sizeof(l));
    for (int a = 0; a < 3; a++) {
        bson_oid_init(&acc[a], NULL);
        for (int i = 0; i < 3; i++)
            ts_look_enqueue(&acc[a], &q);
    }
    before = ts_look_aggregates();
    looks = sup_store_claim_looks(st);
    for (int round = 0; round < 2; round++) {
        int seen[3] = {0, 0, 0};
        for (int i = 0; i < 3; i++) {
            assert_int_equal(ts_look_claim(st, &l, 2, &got), 1);
            seen[ts_look_which(&got, acc, 3)]++;
        }
        /* each account once a round: the oldest account's backlog does
         * not go first */
        for (int a = 0; a < 3; a++)
            assert_int_equal(seen[a], 1);
        /* and the three accounts may still have more: a look knows which
         * accounts wait, not how much (counting read every pending
         * import) */
        assert_int_equal(sup_store_claim_left(st), 3);
    }
    /* the server's count first: two (one look), where a look per claim
     * made twelve */
    after = ts_look_aggregates();
    if (before >= 0) {
        print_message("six claims: %ld aggregates on queues\n", after - before);
        assert_int_equal(after - before, 2);
    }
    assert_int_equal(sup_store_claim_looks(st) - looks, 1);
    /* Every account at its two: the kept look offers none, a new one says
     * so. */
    assert_int_equal(ts_look_claim(st, &l, 2, &got), 0);
    assert_int_equal(sup_store_claim_looks(st) - looks, 2);
    assert_int_equal(sup_store_claim_left(st), 0);
    ts_look_release(&l);
    sup_store_destroy(&st);
}

/* A kept look gone wrong: per_account 1; x's first is claimed from a new
 * look; then y's two are deleted, z's first is claimed by another
 * supervisor, and the claim from the kept look (y first, then z, then x at
 * its limit) finds nothing and looks again, whose verdict is 0. Then x's
 * first ends, a poisoned import of a new account w comes in (a change:
 * the look is dropped), w's is ended alone, and x's second is claimed
 * from the look kept since, with no aggregate. */
static void test_stale_look(void **state)
{
    sup_store_t *st = ts_look_fresh("host:a"), *b;
    ts_look_loop_t l, lb;
    bson_oid_t x, y, z, w, qx[2], qy[2], qz[2], qw, got, id;
    mongoc_collection_t *queues = it_coll(&env, "queues");
    bson_t *filter, set = BSON_INITIALIZER;
    char err[512];
    int64_t looks;
    long before;
    (void)state;
    memset(&l, 0, sizeof(l));
    memset(&lb, 0, sizeof(lb));
    bson_oid_init(&x, NULL);
    bson_oid_init(&y, NULL);
    bson_oid_init(&z, NULL);
    bson_oid_init(&w, NULL);
    for (int i = 0; i < 2; i++) {
        ts_look_enqueue(&x, &qx[i]);
        ts_look_enqueue(&y, &qy[i]);
        ts_look_enqueue(&z, &qz[i]);
    }
    b = sup_store_new(&env.cfg, "host:b", env.client, env.dbname, err,
                      sizeof(err));
    assert_non_null(b);
    looks = sup_store_claim_looks(st);
    assert_int_equal(ts_look_claim(st, &l, 1, &got), 1);
    assert_true(bson_oid_equal(&got, &x));
    assert_int_equal(sup_store_claim_looks(st) - looks, 1);

    for (int i = 0; i < 2; i++) {
        filter = BCON_NEW("_id", BCON_OID(&qy[i]));
        assert_true(
            mongoc_collection_delete_one(queues, filter, NULL, NULL, NULL));
        bson_destroy(filter);
    }
    assert_int_equal(ts_look_claim(b, &lb, 1, &got), 1);
    assert_true(bson_oid_equal(&got, &z));

    /* y gone, z's slot held: nothing, said by a new look */
    assert_int_equal(ts_look_claim(st, &l, 1, &got), 0);
    assert_int_equal(sup_store_claim_looks(st) - looks, 2);
    assert_int_equal(
        it_count(&env, "queues",
                 "{\"source\":\"deals\",\"status\":\"processing\"}"),
        2);

    /* x's first ends; w's only import has a `claims` the $inc refuses */
    assert_int_equal(dip_bson_get_oid(&l.docs[0], "_id", &id), 0);
    assert_true(bson_oid_equal(&id, &qx[0]));
    filter = BCON_NEW("_id", BCON_OID(&id));
    {
        bson_t *done =
            BCON_NEW("$set", "{", "status", BCON_UTF8("completed"), "}");
        assert_true(mongoc_collection_update_one(queues, filter, done, NULL,
                                                 NULL, NULL));
        bson_destroy(done);
    }
    bson_destroy(filter);
    ts_look_release(&l);
    ts_look_enqueue(&w, &qw);
    BSON_APPEND_UTF8(&set, "claims", "1");
    it_queue_set(&env, &qw, &set);
    sup_store_claim_forget(st); /* the change stream's wake */
    /* x (served) goes behind w (never served), z is at its limit */
    assert_int_equal(ts_look_claim(st, &l, 1, &got), SUP_STORE_EUNCLAIMABLE);
    assert_true(bson_oid_equal(&got, &w));
    assert_int_equal(sup_store_claim_looks(st) - looks, 3);
    assert_int_equal(it_count(&env, "queues",
                              "{\"source\":\"deals\",\"status\":\"failed\"}"),
                     1);
    before = ts_look_aggregates();
    assert_int_equal(ts_look_claim(st, &l, 1, &got), 1);
    assert_true(bson_oid_equal(&got, &x));
    assert_int_equal(dip_bson_get_oid(&l.docs[0], "_id", &id), 0);
    assert_true(bson_oid_equal(&id, &qx[1]));
    assert_int_equal(sup_store_claim_looks(st) - looks, 3);
    if (before >= 0)
        assert_int_equal(ts_look_aggregates() - before, 0);
    (void)qz;
    bson_destroy(&set);
    ts_look_release(&l);
    ts_look_release(&lb);
    mongoc_collection_destroy(queues);
    sup_store_destroy(&b);
    sup_store_destroy(&st);
}

/* One claim outside a loop (nothing held, nothing served): rc as
 * sup_store_claim's; the claimed document's _id into *id when given. */
static int claim_alone(sup_store_t *st, bson_oid_t *id)
{
    char err[512];
    bson_t doc;
    int rc = sup_store_claim(st, NULL, 0, NULL, 0, NULL, 0, 2, &doc, err,
                             sizeof(err));
    if (rc < 0)
        fail_msg("claim: %s", err);
    if (rc == 1 && id != NULL)
        assert_int_equal(dip_bson_get_oid(&doc, "_id", id), 0);
    if (rc == 1)
        bson_destroy(&doc);
    return rc;
}

/* More accounts waiting than a look holds: once the look's own are
 * claimed, the claim still says some are left, so a freed slot claims at
 * once instead of waiting for the next poll (the next claim looks again
 * and finds the account past the cut). */
static void test_look_cut(void **state)
{
    sup_store_t *st = ts_look_fresh("look-cut");
    bson_oid_t account, q;
    (void)state;
    for (int i = 0; i < SUP_STORE_LOOK_MAX + 1; i++) {
        bson_oid_init(&account, NULL);
        ts_look_enqueue(&account, &q);
    }
    for (int i = 0; i < SUP_STORE_LOOK_MAX; i++) {
        assert_int_equal(claim_alone(st, NULL), 1);
        if (sup_store_claim_left(st) <= 0)
            fail_msg("after claim %d of %d: nothing left, says the claim",
                     i + 1, SUP_STORE_LOOK_MAX + 1);
    }
    assert_int_equal(claim_alone(st, &q), 1);
    assert_int_equal(claim_alone(st, NULL), 0);
    assert_int_equal(sup_store_claim_left(st), 0);
    sup_store_destroy(&st);
}

/* More accounts than a look holds whose oldest imports no claim can take
 * (pending with in_progress left true: a broken document, which the look
 * cannot filter without losing its DISTINCT_SCAN), all older than a last
 * account's claimable import: that import is claimed all the same, within
 * two claims (a look passes on to the accounts after its cut when none of
 * its own claimed); it was never claimed, every look ending at the same
 * cut (failure classes 4: broken documents must not hold the others, and
 * 9: accounts at their limit on other supervisors fill a look as well). */
static void test_look_past_a_dry_cut(void **state)
{
    sup_store_t *st = ts_look_fresh("look-dry-cut");
    mongoc_collection_t *queues = it_coll(&env, "queues");
    bson_oid_t account, q, got;
    bson_t *sel, *set;
    int rc = 0;
    (void)state;
    for (int i = 0; i < SUP_STORE_LOOK_MAX + 1; i++) {
        bson_oid_init(&account, NULL);
        ts_look_enqueue(&account, &q);
    }
    sel = BCON_NEW("source", BCON_UTF8("deals"));
    set = BCON_NEW("$set", "{", "in_progress", BCON_BOOL(true), "}");
    assert_true(
        mongoc_collection_update_many(queues, sel, set, NULL, NULL, NULL));
    bson_destroy(sel);
    bson_destroy(set);
    bson_oid_init(&account, NULL);
    ts_look_enqueue(&account, &q);
    sel = BCON_NEW("_id", BCON_OID(&q));
    set = BCON_NEW("$set", "{", "created_at",
                   BCON_DATE_TIME(dip_bson_now_ms() + 60000), "}");
    assert_true(
        mongoc_collection_update_one(queues, sel, set, NULL, NULL, NULL));
    bson_destroy(sel);
    bson_destroy(set);
    for (int i = 0; i < 2 && rc == 0; i++)
        rc = claim_alone(st, &got);
    assert_int_equal(rc, 1);
    assert_true(bson_oid_equal(&got, &q));
    mongoc_collection_destroy(queues);
    sup_store_destroy(&st);
}

/* A claim reads its own account's imports, not the queue's: with 40
 * accounts of 25 imports each, every claim's findAndModify examines at
 * most the claimed account's 25 (and one more), on an index that leads
 * with the account. It examined all 1,000 when the only index was
 * (source, status, created_at): the queue's whole backlog at every claim,
 * which on a busy database outlasts the claim's time bound and stops
 * claims for every account (failure classes 1 and 3). The development
 * server charges every document in the index's bounds; mongod walks the
 * bounds in the sort's order and stops at the first, so it reads fewer
 * still. */
static void test_claim_reads_its_account(void **state)
{
    sup_store_t *st = ts_look_fresh("look-account");
    bson_oid_t accounts[40], q;
    long most;
    (void)state;
    for (int a = 0; a < 40; a++)
        bson_oid_init(&accounts[a], NULL);
    for (int i = 0; i < 25; i++)
        for (int a = 0; a < 40; a++)
            ts_look_enqueue(&accounts[a], &q);
    ts_look_examined_most("findAndModify");
    for (int i = 0; i < 3; i++)
        assert_int_equal(claim_alone(st, NULL), 1);
    most = ts_look_examined_most("findAndModify");
    if (most >= 0 && most > 26)
        fail_msg("a claim examined %ld queue documents or keys; its account "
                 "has 25",
                 most);
    sup_store_destroy(&st);
}

/* An account stored as its hex text in capitals (the contract says
 * lowercase, the CRM may not): the same account, claimed like any other,
 * not left pending for ever. */
static void test_capital_hex_account(void **state)
{
    sup_store_t *st = ts_look_fresh("look-caps");
    mongoc_collection_t *queues = it_coll(&env, "queues");
    bson_oid_t account, q, got;
    char hex[25];
    bson_t *f, *u;
    (void)state;
    bson_oid_init(&account, NULL);
    ts_look_enqueue(&account, &q);
    bson_oid_to_string(&account, hex);
    for (char *c = hex; *c; c++)
        if (*c >= 'a' && *c <= 'f')
            *c = (char)(*c - 'a' + 'A');
    f = BCON_NEW("_id", BCON_OID(&q));
    u = BCON_NEW("$set", "{", "account_id", BCON_UTF8(hex), "}");
    assert_true(mongoc_collection_update_one(queues, f, u, NULL, NULL, NULL));
    assert_int_equal(claim_alone(st, &got), 1);
    assert_true(bson_oid_equal(&got, &q));
    bson_destroy(f);
    bson_destroy(u);
    mongoc_collection_destroy(queues);
    sup_store_destroy(&st);
}

/* The same backlog, its accounts stored in each way the CRM stores one
 * (an ObjectId, its hex text, the hex in capitals, a text that is no id
 * at all): every claim still reads its own account's imports on the index,
 * every account gets its two slots, and none is left pending. The devmongo
 * op log gives what each findAndModify examined (none on a real server). */
static void test_claim_reads_its_account_forms(void **state)
{
    enum { ACCOUNTS = 40, EACH = 25, SLOTS = 2 };
    sup_store_t *st = ts_look_fresh("look-forms");
    mongoc_collection_t *queues = it_coll(&env, "queues");
    static sup_store_held_t held[ACCOUNTS * SLOTS];
    bson_oid_t accounts[ACCOUNTS], q;
    long most;
    int claimed = 0;
    (void)state;
    for (int a = 0; a < ACCOUNTS; a++)
        bson_oid_init(&accounts[a], NULL);
    for (int i = 0; i < EACH; i++)
        for (int a = 0; a < ACCOUNTS; a++)
            ts_look_enqueue(&accounts[a], &q);
    for (int a = 0; a < ACCOUNTS; a++) {
        char hex[25], text[40];
        bson_t *f, *u;
        bson_oid_to_string(&accounts[a], hex);
        if (a % 4 == 0)
            continue;
        if (a % 4 == 2)
            for (char *c = hex; *c; c++)
                if (*c >= 'a' && *c <= 'f')
                    *c = (char)(*c - 'a' + 'A');
        snprintf(text, sizeof(text), "acct-%d", a);
        f = BCON_NEW("source", "deals", "account_id", BCON_OID(&accounts[a]));
        u = BCON_NEW("$set", "{", "account_id",
                     BCON_UTF8(a % 4 == 3 ? text : hex), "}");
        assert_true(
            mongoc_collection_update_many(queues, f, u, NULL, NULL, NULL));
        bson_destroy(f);
        bson_destroy(u);
    }
    ts_look_examined_most("findAndModify");
    /* as the loop claims: what it runs is held, so an account at its
     * limit is not tried */
    for (;;) {
        char err[512];
        bson_t doc;
        bson_iter_t it;
        int rc = sup_store_claim(st, NULL, 0, held, (size_t)claimed, NULL, 0,
                                 SLOTS, &doc, err, sizeof(err));
        if (rc < 0)
            fail_msg("claim: %s", err);
        if (rc == 0)
            break;
        assert_true(claimed < ACCOUNTS * SLOTS);
        assert_true(bson_iter_init_find(&it, &doc, "_id"));
        bson_value_copy(bson_iter_value(&it), &held[claimed].id);
        assert_true(bson_iter_init_find(&it, &doc, "account_id"));
        bson_value_copy(bson_iter_value(&it), &held[claimed].account);
        held[claimed].epoch = dip_bson_get_int(&doc, "claims", 0);
        held[claimed].runs = 1;
        claimed++;
        bson_destroy(&doc);
    }
    most = ts_look_examined_most("findAndModify");
    for (int i = 0; i < claimed; i++) {
        bson_value_destroy(&held[i].id);
        bson_value_destroy(&held[i].account);
    }
    assert_int_equal(claimed, ACCOUNTS * SLOTS);
    assert_int_equal(
        it_count(&env, "queues",
                 "{\"source\":\"deals\",\"status\":\"processing\"}"),
        ACCOUNTS * SLOTS);
    if (most >= 0 && most > EACH + 3)
        fail_msg("a claim examined %ld queue documents or keys; its account "
                 "has %d",
                 most, EACH);
    mongoc_collection_destroy(queues);
    sup_store_destroy(&st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kept_look),
        cmocka_unit_test(test_stale_look),
        cmocka_unit_test(test_look_cut),
        cmocka_unit_test(test_look_past_a_dry_cut),
        cmocka_unit_test(test_capital_hex_account),
        cmocka_unit_test(test_claim_reads_its_account),
        cmocka_unit_test(test_claim_reads_its_account_forms),
    };
    int rc = it_env_init(&env, "sup_store_look");
    if (rc)
        return rc;
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    it_env_release(&env);
    return rc;
}
