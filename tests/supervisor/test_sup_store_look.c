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
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dip_bson.h"
#include "it_check.h"
#include "it_env.h"
#include "sup_store.h"
#include "sup_store_priv.h"

static it_env_t env;

static sup_store_t *fresh(const char *owner)
{
    static const char *const colls[] = {"queues", "csv_imports",
                                        "csv_import_errors", "deals"};
    char err[512];
    sup_store_t *st;
    for (size_t i = 0; i < sizeof(colls) / sizeof(colls[0]); i++) {
        mongoc_collection_t *c = it_coll(&env, colls[i]);
        mongoc_collection_drop(c, NULL);
        mongoc_collection_destroy(c);
    }
    st = sup_store_new(&env.cfg, owner, env.client, env.dbname, err,
                       sizeof(err));
    if (st == NULL)
        fail_msg("sup_store_new: %s", err);
    if (sup_store_ensure_indexes(st, err, sizeof(err)) != SUP_STORE_OK)
        fail_msg("ensure_indexes: %s", err);
    return st;
}

static void enqueue(const bson_oid_t *account, bson_oid_t *out)
{
    bson_oid_t user, pipeline;
    bson_oid_init(&user, NULL);
    bson_oid_init(&pipeline, NULL);
    it_enqueue(&env, "imports/deals/look/a.csv", account, &user, &pipeline,
               "{\"Deal Name\":\"name\"}", out);
}

/* The aggregates on this test's queues the development server has logged;
 * -1 on a server without an op log (a real one). */
static long queue_aggregates(void)
{
    char ns[160];
    bson_t *cmd, reply;
    bson_iter_t it, ops;
    long n = -1;
    snprintf(ns, sizeof(ns), "%s.queues", env.dbname);
    cmd = BCON_NEW("devOpLog", BCON_INT32(1), "ns", BCON_UTF8(ns), "op",
                   BCON_UTF8("aggregate"), "limit", BCON_INT32(10000));
    if (mongoc_client_command_simple(env.client, "admin", cmd, NULL, &reply,
                                     NULL) &&
        bson_iter_init_find(&it, &reply, "ops") && bson_iter_recurse(&it, &ops))
        for (n = 0; bson_iter_next(&ops);)
            n++;
    bson_destroy(&reply);
    bson_destroy(cmd);
    return n;
}

/* What the loop keeps between claims: the imports it runs, each with its
 * account, and when it last served each account. */
typedef struct {
    sup_store_held_t held[16];
    bson_t docs[16];
    size_t nheld;
    sup_store_served_t served[16];
    size_t nserved;
    int64_t clock;
} loop_t;

/* One claim as the loop makes it; rc as sup_store_claim's. The account
 * claimed in goes into *account. */
static int claim(sup_store_t *st, loop_t *l, long per_account,
                 bson_oid_t *account)
{
    char err[512];
    bson_t doc;
    bson_iter_t it;
    int rc = sup_store_claim(st, NULL, 0, l->held, l->nheld, l->served,
                             l->nserved, per_account, &doc, err, sizeof(err));
    if (rc < 0 && rc != SUP_STORE_EUNCLAIMABLE)
        fail_msg("claim: %s", err);
    if (rc == 0)
        return 0;
    assert_true(bson_iter_init_find(&it, &doc, "account_id"));
    sup_store_served_account(bson_iter_value(&it), account);
    if (rc == 1) {
        size_t i = l->nheld++;
        assert_true(i < 16);
        bson_copy_to(&doc, &l->docs[i]);
        assert_true(bson_iter_init_find(&it, &l->docs[i], "_id"));
        l->held[i] = (sup_store_held_t){.id = *bson_iter_value(&it),
                                        .epoch = sup_store_epoch(&doc),
                                        .runs = 1};
        assert_true(bson_iter_init_find(&it, &l->docs[i], "account_id"));
        l->held[i].account = *bson_iter_value(&it);
    }
    bson_destroy(&doc);
    /* served, as the loop notes it after a claim or a refusal */
    {
        size_t j = 0;
        while (j < l->nserved &&
               !bson_oid_equal(&l->served[j].account, account))
            j++;
        if (j == l->nserved)
            l->nserved++;
        l->served[j].account = *account;
        l->served[j].at_ms = ++l->clock;
    }
    return rc;
}

static void loop_release(loop_t *l)
{
    for (size_t i = 0; i < l->nheld; i++)
        bson_destroy(&l->docs[i]);
    l->nheld = 0;
}

static int which(const bson_oid_t *acc, const bson_oid_t *accounts, int n)
{
    for (int i = 0; i < n; i++)
        if (bson_oid_equal(acc, &accounts[i]))
            return i;
    fail_msg("claimed in an account of no one's");
    return -1;
}

/* Three accounts of three imports each, the first account's all older than
 * the others': six claims with two slots per account are two rounds of
 * the three accounts, from one look. */
static void test_kept_look(void **state)
{
    sup_store_t *st = fresh("host:look");
    loop_t l;
    bson_oid_t acc[3], q, got;
    long before, after;
    int64_t looks;
    (void)state;
    memset(&l, 0, sizeof(l));
    for (int a = 0; a < 3; a++) {
        bson_oid_init(&acc[a], NULL);
        for (int i = 0; i < 3; i++)
            enqueue(&acc[a], &q);
    }
    before = queue_aggregates();
    looks = sup_store_claim_looks(st);
    for (int round = 0; round < 2; round++) {
        int seen[3] = {0, 0, 0};
        for (int i = 0; i < 3; i++) {
            assert_int_equal(claim(st, &l, 2, &got), 1);
            seen[which(&got, acc, 3)]++;
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
    after = queue_aggregates();
    if (before >= 0) {
        print_message("six claims: %ld aggregates on queues\n", after - before);
        assert_int_equal(after - before, 2);
    }
    assert_int_equal(sup_store_claim_looks(st) - looks, 1);
    /* Every account at its two: the kept look offers none, a new one says
     * so. */
    assert_int_equal(claim(st, &l, 2, &got), 0);
    assert_int_equal(sup_store_claim_looks(st) - looks, 2);
    assert_int_equal(sup_store_claim_left(st), 0);
    loop_release(&l);
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
    sup_store_t *st = fresh("host:a"), *b;
    loop_t l, lb;
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
        enqueue(&x, &qx[i]);
        enqueue(&y, &qy[i]);
        enqueue(&z, &qz[i]);
    }
    b = sup_store_new(&env.cfg, "host:b", env.client, env.dbname, err,
                      sizeof(err));
    assert_non_null(b);
    looks = sup_store_claim_looks(st);
    assert_int_equal(claim(st, &l, 1, &got), 1);
    assert_true(bson_oid_equal(&got, &x));
    assert_int_equal(sup_store_claim_looks(st) - looks, 1);

    for (int i = 0; i < 2; i++) {
        filter = BCON_NEW("_id", BCON_OID(&qy[i]));
        assert_true(
            mongoc_collection_delete_one(queues, filter, NULL, NULL, NULL));
        bson_destroy(filter);
    }
    assert_int_equal(claim(b, &lb, 1, &got), 1);
    assert_true(bson_oid_equal(&got, &z));

    /* y gone, z's slot held: nothing, said by a new look */
    assert_int_equal(claim(st, &l, 1, &got), 0);
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
    loop_release(&l);
    enqueue(&w, &qw);
    BSON_APPEND_UTF8(&set, "claims", "1");
    it_queue_set(&env, &qw, &set);
    sup_store_claim_forget(st); /* the change stream's wake */
    /* x (served) goes behind w (never served), z is at its limit */
    assert_int_equal(claim(st, &l, 1, &got), SUP_STORE_EUNCLAIMABLE);
    assert_true(bson_oid_equal(&got, &w));
    assert_int_equal(sup_store_claim_looks(st) - looks, 3);
    assert_int_equal(it_count(&env, "queues",
                              "{\"source\":\"deals\",\"status\":\"failed\"}"),
                     1);
    before = queue_aggregates();
    assert_int_equal(claim(st, &l, 1, &got), 1);
    assert_true(bson_oid_equal(&got, &x));
    assert_int_equal(dip_bson_get_oid(&l.docs[0], "_id", &id), 0);
    assert_true(bson_oid_equal(&id, &qx[1]));
    assert_int_equal(sup_store_claim_looks(st) - looks, 3);
    if (before >= 0)
        assert_int_equal(queue_aggregates() - before, 0);
    (void)qz;
    bson_destroy(&set);
    loop_release(&l);
    loop_release(&lb);
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
    sup_store_t *st = fresh("look-cut");
    bson_oid_t account, q;
    (void)state;
    for (int i = 0; i < SUP_STORE_LOOK_MAX + 1; i++) {
        bson_oid_init(&account, NULL);
        enqueue(&account, &q);
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

/* The most keys or documents one findAndModify on this test's queues
 * examined, by the development server's op log (the log emptied after);
 * -1 on a server without one (a real one). */
static long claim_examined_most(void)
{
    char ns[160];
    bson_t *cmd, reply;
    bson_iter_t it, ops;
    long most = -1;
    snprintf(ns, sizeof(ns), "%s.queues", env.dbname);
    cmd = BCON_NEW("devOpLog", BCON_INT32(1), "ns", BCON_UTF8(ns), "op",
                   BCON_UTF8("findAndModify"), "limit", BCON_INT32(10000),
                   "reset", BCON_BOOL(true));
    if (mongoc_client_command_simple(env.client, "admin", cmd, NULL, &reply,
                                     NULL) &&
        bson_iter_init_find(&it, &reply, "ops") &&
        bson_iter_recurse(&it, &ops)) {
        most = 0;
        while (bson_iter_next(&ops)) {
            const uint8_t *data;
            uint32_t len;
            bson_t op;
            if (!BSON_ITER_HOLDS_DOCUMENT(&ops))
                continue;
            bson_iter_document(&ops, &len, &data);
            if (!bson_init_static(&op, data, len))
                continue;
            if (dip_bson_get_int(&op, "keysExamined", 0) > most)
                most = (long)dip_bson_get_int(&op, "keysExamined", 0);
            if (dip_bson_get_int(&op, "docsExamined", 0) > most)
                most = (long)dip_bson_get_int(&op, "docsExamined", 0);
        }
    }
    bson_destroy(&reply);
    bson_destroy(cmd);
    return most;
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
    sup_store_t *st = fresh("look-account");
    bson_oid_t accounts[40], q;
    long most;
    (void)state;
    for (int a = 0; a < 40; a++)
        bson_oid_init(&accounts[a], NULL);
    for (int i = 0; i < 25; i++)
        for (int a = 0; a < 40; a++)
            enqueue(&accounts[a], &q);
    claim_examined_most();
    for (int i = 0; i < 3; i++)
        assert_int_equal(claim_alone(st, NULL), 1);
    most = claim_examined_most();
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
    sup_store_t *st = fresh("look-caps");
    mongoc_collection_t *queues = it_coll(&env, "queues");
    bson_oid_t account, q, got;
    char hex[25];
    bson_t *f, *u;
    (void)state;
    bson_oid_init(&account, NULL);
    enqueue(&account, &q);
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
    sup_store_t *st = fresh("look-forms");
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
            enqueue(&accounts[a], &q);
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
    claim_examined_most();
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
    most = claim_examined_most();
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

/* The most keys or documents one aggregate on this test's queues examined,
 * by the development server's op log (the log emptied after); -1 on a
 * server without one (a real one). */
static long look_examined_most(void)
{
    char ns[160];
    bson_t *cmd, reply;
    bson_iter_t it, ops;
    long most = -1;
    snprintf(ns, sizeof(ns), "%s.queues", env.dbname);
    cmd = BCON_NEW("devOpLog", BCON_INT32(1), "ns", BCON_UTF8(ns), "op",
                   BCON_UTF8("aggregate"), "limit", BCON_INT32(10000), "reset",
                   BCON_BOOL(true));
    if (mongoc_client_command_simple(env.client, "admin", cmd, NULL, &reply,
                                     NULL) &&
        bson_iter_init_find(&it, &reply, "ops") &&
        bson_iter_recurse(&it, &ops)) {
        most = 0;
        while (bson_iter_next(&ops)) {
            const uint8_t *data;
            uint32_t len;
            bson_t op;
            if (!BSON_ITER_HOLDS_DOCUMENT(&ops))
                continue;
            bson_iter_document(&ops, &len, &data);
            if (!bson_init_static(&op, data, len))
                continue;
            if (dip_bson_get_int(&op, "keysExamined", 0) > most)
                most = (long)dip_bson_get_int(&op, "keysExamined", 0);
            if (dip_bson_get_int(&op, "docsExamined", 0) > most)
                most = (long)dip_bson_get_int(&op, "docsExamined", 0);
        }
    }
    bson_destroy(&reply);
    bson_destroy(cmd);
    return most;
}

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
 * not every claimable import: it read all 20,003 when it grouped and
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
    sup_store_t *st = fresh("look-accounts");
    loop_t l;
    bson_oid_t big, others[OTHERS], q, got;
    int seen[OTHERS + 1] = {0};
    long most;
    (void)state;
    memset(&l, 0, sizeof(l));
    bson_oid_init(&big, NULL);
    enqueue_many(&big, BIG, dip_bson_now_ms() - 3600 * 1000);
    for (int a = 0; a < OTHERS; a++) {
        bson_oid_init(&others[a], NULL);
        enqueue(&others[a], &q);
        enqueue(&others[a], &q);
    }
    look_examined_most();
    for (int i = 0; i < OTHERS + 1; i++) {
        assert_int_equal(claim(st, &l, 2, &got), 1);
        if (bson_oid_equal(&got, &big))
            seen[OTHERS]++;
        else
            seen[which(&got, others, OTHERS)]++;
    }
    most = look_examined_most();
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
    loop_release(&l);
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
    sup_store_t *a = fresh("look-lapsed-a"), *b;
    mongoc_collection_t *queues = it_coll(&env, "queues");
    loop_t la, lb;
    bson_oid_t acc[3], q[3], got;
    int seen[3] = {0, 0, 0};
    char err[512];
    (void)state;
    memset(&la, 0, sizeof(la));
    memset(&lb, 0, sizeof(lb));
    for (int i = 0; i < 3; i++) {
        bson_oid_init(&acc[i], NULL);
        enqueue(&acc[i], &q[i]);
    }
    for (int i = 0; i < 3; i++)
        assert_int_equal(claim(a, &la, 2, &got), 1);
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
        assert_int_equal(claim(b, &lb, 2, &got), 1);
        seen[which(&got, acc, 3)]++;
    }
    assert_int_equal(seen[0], 1);
    assert_int_equal(seen[1], 1);
    assert_int_equal(claim(b, &lb, 2, &got), 0);
    loop_release(&la);
    loop_release(&lb);
    mongoc_collection_destroy(queues);
    sup_store_destroy(&b);
    sup_store_destroy(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kept_look),
        cmocka_unit_test(test_stale_look),
        cmocka_unit_test(test_look_cut),
        cmocka_unit_test(test_capital_hex_account),
        cmocka_unit_test(test_claim_reads_its_account),
        cmocka_unit_test(test_claim_reads_its_account_forms),
        cmocka_unit_test(test_look_reads_accounts),
        cmocka_unit_test(test_lapsed_only),
    };
    int rc = it_env_init(&env, "sup_store_look");
    if (rc)
        return rc;
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    it_env_release(&env);
    return rc;
}
