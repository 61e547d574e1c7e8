/*
 * sup_store against the development database (skipped without it, a
 * failure where CI=true): a claim takes a pending import, sets the lease
 * and the epoch, and respects the per-account slots; every later write is
 * fenced by owner and epoch, so a supervisor whose claim was taken over
 * (its lease ran out, another claimed) writes nothing and hears
 * SUP_STORE_ELOST; renew marks exactly the lost imports; release hands an
 * import back; finish counts from the database, writes csv_imports once
 * and clears log_pending; the repair writes the log of an end left
 * unrecorded, once; an orphan that holds the slot an older import waits
 * for is taken over (test_takeover_behind_older).
 *
 * Failure classes: 5 (frozen, a reply late by a lease): a supervisor
 * frozen past its lease meets the fence (test_takeover); 4 (one document
 * poisons a loop): a lost claim is one import's answer, the store goes on
 * serving the others (test_takeover writes the second import after); 3
 * (every recurring query on an index): ensure_indexes runs first and its
 * indexes are those docs/scaling.md names; 1, 2 (slow database, abandoned
 * work) are the lease keeper's and the loop's, not covered here.
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

static it_env_t env;

/* A fresh set of collections and indexes, and a store owned by owner. */
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

static sup_store_t *other(const char *owner)
{
    char err[512];
    sup_store_t *st = sup_store_new(&env.cfg, owner, env.client, env.dbname,
                                    err, sizeof(err));
    if (st == NULL)
        fail_msg("sup_store_new: %s", err);
    return st;
}

static void enqueue(const bson_oid_t *account, bson_oid_t *out)
{
    bson_oid_t user, pipeline;
    bson_oid_init(&user, NULL);
    bson_oid_init(&pipeline, NULL);
    it_enqueue(&env, "imports/deals/store/a.csv", account, &user, &pipeline,
               "{\"Deal Name\":\"name\"}", out);
}

/* One claim (no skip, nothing held, never served), per_account slots; out
 * is initialized either way. */
static int claim(sup_store_t *st, long per_account, bson_t *out)
{
    char err[512];
    int rc = sup_store_claim(st, NULL, 0, NULL, 0, NULL, 0, per_account, out,
                             err, sizeof(err));
    if (rc < 0)
        fail_msg("claim: %s", err);
    if (rc != 1)
        bson_init(out); /* out is the callee's to fill on a claim only */
    return rc;
}

/* fmt: a JSON filter with one %s, where the id's hex goes. */
static int64_t count(const char *coll, const char *fmt, const bson_oid_t *id)
{
    char hex[25], filter[512];
    const char *at = strstr(fmt, "%s");
    assert_non_null(at);
    bson_oid_to_string(id, hex);
    snprintf(filter, sizeof(filter), "%.*s%s%s", (int)(at - fmt), fmt, hex,
             at + 2);
    return it_count(&env, coll, filter);
}

static const bson_value_t *id_of(const bson_t *doc, bson_iter_t *it)
{
    assert_true(bson_iter_init_find(it, doc, "_id"));
    return bson_iter_value(it);
}

static int progress(sup_store_t *st, const bson_value_t *qid, int64_t epoch,
                    int64_t lines)
{
    char err[512];
    return sup_store_progress(st, qid, epoch, NULL, 0, lines, 0, 0, 0, 0, 0,
                              NULL, NULL, err, sizeof(err));
}

static void test_claim_and_slots(void **state)
{
    sup_store_t *st = fresh("host:1");
    bson_oid_t account, q1, q2, claimed;
    bson_t doc;
    (void)state;
    bson_oid_init(&account, NULL);
    enqueue(&account, &q1);
    enqueue(&account, &q2);
    assert_int_equal(claim(st, 1, &doc), 1);
    /* The oldest first, leased, owned, epoch 1. */
    assert_int_equal(dip_bson_get_oid(&doc, "_id", &claimed), 0);
    assert_true(bson_oid_equal(&claimed, &q1));
    assert_string_equal(dip_bson_get_str(&doc, "status"), "processing");
    assert_string_equal(dip_bson_get_str(&doc, "claimed_by"), "host:1");
    assert_int_equal(sup_store_epoch(&doc), 1);
    assert_int_equal(count("queues",
                           "{\"_id\":{\"$oid\":\"%s\"},\"lease_expires_at\":"
                           "{\"$gt\":{\"$date\":\"2020-01-01T00:00:00Z\"}},"
                           "\"account_slot\":0}",
                           &q1),
                     1);
    bson_destroy(&doc);
    /* One slot per account: the second waits. */
    assert_int_equal(claim(st, 1, &doc), 0);
    bson_destroy(&doc);
    /* Two slots: it is claimed in the second. */
    assert_int_equal(claim(st, 2, &doc), 1);
    assert_int_equal(dip_bson_get_oid(&doc, "_id", &claimed), 0);
    assert_true(bson_oid_equal(&claimed, &q2));
    assert_int_equal(dip_bson_get_int(&doc, "account_slot", -1), 1);
    bson_destroy(&doc);
    assert_int_equal(claim(st, 2, &doc), 0);
    bson_destroy(&doc);
    sup_store_destroy(&st);
    assert_null(st);
}

static void test_takeover(void **state)
{
    sup_store_t *a = fresh("host:a"), *b = other("host:b");
    bson_oid_t account, q1, q2;
    bson_t doc1, doc2, set = BSON_INITIALIZER;
    bson_iter_t i1, i2;
    sup_store_held_t held[2];
    char err[512];
    (void)state;
    bson_oid_init(&account, NULL);
    enqueue(&account, &q1);
    enqueue(&account, &q2);
    assert_int_equal(claim(a, 2, &doc1), 1);
    assert_int_equal(claim(a, 2, &doc2), 1);
    assert_int_equal(progress(a, id_of(&doc1, &i1), 1, 10), SUP_STORE_OK);
    /* a froze past its lease on q1: b takes q1 over (epoch 2). */
    BSON_APPEND_DATE_TIME(&set, "lease_expires_at", dip_bson_now_ms() - 1000);
    it_queue_set(&env, &q1, &set);
    {
        bson_t taken;
        bson_oid_t id;
        assert_int_equal(claim(b, 2, &taken), 1);
        assert_int_equal(dip_bson_get_oid(&taken, "_id", &id), 0);
        assert_true(bson_oid_equal(&id, &q1));
        assert_int_equal(sup_store_epoch(&taken), 2);
        bson_destroy(&taken);
    }
    /* a's writes on q1 change nothing; q2 is still a's. */
    assert_int_equal(progress(a, id_of(&doc1, &i1), 1, 99), SUP_STORE_ELOST);
    assert_int_equal(count("queues",
                           "{\"_id\":{\"$oid\":\"%s\"},\"progress.lines\":99}",
                           &q1),
                     0);
    assert_int_equal(progress(a, id_of(&doc2, &i2), 1, 5), SUP_STORE_OK);
    /* b with a stale epoch is fenced too. */
    assert_int_equal(progress(b, id_of(&doc1, &i1), 1, 7), SUP_STORE_ELOST);
    assert_int_equal(progress(b, id_of(&doc1, &i1), 2, 7), SUP_STORE_OK);
    /* renew: exactly q1 is lost for a. */
    held[0] = (sup_store_held_t){.id = *id_of(&doc1, &i1), .epoch = 1};
    held[1] = (sup_store_held_t){.id = *id_of(&doc2, &i2), .epoch = 1};
    assert_int_equal(sup_store_renew(a, held, 2, err, sizeof(err)),
                     SUP_STORE_OK);
    assert_int_equal(held[0].lost, 1);
    assert_int_equal(held[1].lost, 0);
    /* release by the loser: nothing; by the holder: pending again. */
    assert_int_equal(sup_store_release(a, id_of(&doc1, &i1), 1, "pending", NULL,
                                       err, sizeof(err)),
                     SUP_STORE_ELOST);
    assert_int_equal(sup_store_release(b, id_of(&doc1, &i1), 2, "paused",
                                       "asked", err, sizeof(err)),
                     SUP_STORE_OK);
    assert_int_equal(count("queues",
                           "{\"_id\":{\"$oid\":\"%s\"},\"status\":\"paused\","
                           "\"error\":\"asked\",\"claimed_by\":{\"$exists\":"
                           "false},\"lease_expires_at\":{\"$exists\":false}}",
                           &q1),
                     1);
    bson_destroy(&set);
    bson_destroy(&doc1);
    bson_destroy(&doc2);
    sup_store_destroy(&a);
    sup_store_destroy(&b);
}

/* The oldest import of an account is refused by every slot, one of them
 * held by an import whose supervisor is gone (its lease ran out): that
 * orphan is taken over, in its own slot, and the older one waits for a
 * free slot. Two slots: a live import in 0, the orphan in 1. Failure
 * classes: 9 (one account's slots shared by a live import, an orphan and
 * a waiting one); 5 (a second supervisor finds nothing once the orphan is
 * taken: its lease is live again, and its epoch moved on). */
static void test_takeover_behind_older(void **state)
{
    sup_store_t *a = fresh("host:a"), *b = other("host:b"),
                *c = other("host:c");
    bson_oid_t account, live, orphan, older, id;
    bson_t doc, set = BSON_INITIALIZER;
    (void)state;
    bson_oid_init(&account, NULL);
    enqueue(&account, &live);
    enqueue(&account, &orphan);
    assert_int_equal(claim(a, 2, &doc), 1);
    bson_destroy(&doc);
    assert_int_equal(claim(a, 2, &doc), 1);
    bson_destroy(&doc);
    /* a dies holding both: the orphan's lease has run out, the other's
     * not yet. */
    BSON_APPEND_DATE_TIME(&set, "lease_expires_at", dip_bson_now_ms() - 60000);
    it_queue_set(&env, &orphan, &set);
    bson_reinit(&set);
    /* The older one: queued with an earlier created_at (a resume keeps
     * its own). */
    enqueue(&account, &older);
    BSON_APPEND_DATE_TIME(&set, "created_at", dip_bson_now_ms() - 3600000);
    it_queue_set(&env, &older, &set);
    assert_int_equal(claim(b, 2, &doc), 1);
    assert_int_equal(dip_bson_get_oid(&doc, "_id", &id), 0);
    assert_true(bson_oid_equal(&id, &orphan));
    assert_int_equal(dip_bson_get_int(&doc, "account_slot", -1), 1);
    assert_string_equal(dip_bson_get_str(&doc, "claimed_by"), "host:b");
    assert_int_equal(sup_store_epoch(&doc), 2);
    bson_destroy(&doc);
    /* Taken: nobody else takes it, and the older one still waits. */
    assert_int_equal(claim(c, 2, &doc), 0);
    bson_destroy(&doc);
    assert_int_equal(count("queues",
                           "{\"_id\":{\"$oid\":\"%s\"},\"status\":\"pending\"}",
                           &older),
                     1);
    /* The orphan done, its slot is the older one's. */
    bson_reinit(&set);
    BSON_APPEND_UTF8(&set, "status", "completed");
    it_queue_set(&env, &orphan, &set);
    assert_int_equal(claim(c, 2, &doc), 1);
    assert_int_equal(dip_bson_get_oid(&doc, "_id", &id), 0);
    assert_true(bson_oid_equal(&id, &older));
    assert_int_equal(dip_bson_get_int(&doc, "account_slot", -1), 1);
    assert_int_equal(sup_store_epoch(&doc), 1);
    bson_destroy(&doc);
    bson_destroy(&set);
    sup_store_destroy(&a);
    sup_store_destroy(&b);
    sup_store_destroy(&c);
}

/* The orphan behind the older import is a poisoned document (`claims` a
 * string: the claim's $inc is refused, 14): the takeover ends it alone,
 * failed with a sentence, which frees the slot, and the older import is
 * claimed next. Failure class 4: one document never holds its account. */
static void test_takeover_poisoned(void **state)
{
    sup_store_t *st = fresh("host:p");
    bson_oid_t account, older, orphan, id;
    bson_t doc, set = BSON_INITIALIZER;
    bson_iter_t it;
    char hex[25], err[512];
    int rc;
    (void)state;
    bson_oid_init(&account, NULL);
    bson_oid_to_string(&account, hex);
    enqueue(&account, &older);
    enqueue(&account, &orphan);
    BSON_APPEND_UTF8(&set, "status", "processing");
    BSON_APPEND_BOOL(&set, "in_progress", true);
    BSON_APPEND_UTF8(&set, "account_key", hex);
    BSON_APPEND_INT32(&set, "account_slot", 0);
    BSON_APPEND_UTF8(&set, "claimed_by", "a-supervisor-that-died");
    BSON_APPEND_DATE_TIME(&set, "lease_expires_at", dip_bson_now_ms() - 60000);
    BSON_APPEND_UTF8(&set, "claims", "1");
    it_queue_set(&env, &orphan, &set);
    rc = sup_store_claim(st, NULL, 0, NULL, 0, NULL, 0, 1, &doc, err,
                         sizeof(err));
    assert_int_equal(rc, SUP_STORE_EUNCLAIMABLE);
    assert_int_equal(dip_bson_get_oid(&doc, "_id", &id), 0);
    assert_true(bson_oid_equal(&id, &orphan));
    assert_true(bson_iter_init_find(&it, &doc, "marked") &&
                BSON_ITER_HOLDS_BOOL(&it) && bson_iter_bool(&it));
    bson_destroy(&doc);
    assert_int_equal(count("queues",
                           "{\"_id\":{\"$oid\":\"%s\"},\"status\":\"failed\"}",
                           &orphan),
                     1);
    assert_int_equal(claim(st, 1, &doc), 1);
    assert_int_equal(dip_bson_get_oid(&doc, "_id", &id), 0);
    assert_true(bson_oid_equal(&id, &older));
    assert_int_equal(dip_bson_get_int(&doc, "account_slot", -1), 0);
    bson_destroy(&doc);
    bson_destroy(&set);
    sup_store_destroy(&st);
}

static void test_finish_and_repair(void **state)
{
    sup_store_t *st = fresh("host:1");
    bson_oid_t account, q1, q2;
    bson_t doc, set = BSON_INITIALIZER;
    bson_iter_t it;
    sup_store_result_t r;
    char err[512];
    (void)state;
    bson_oid_init(&account, NULL);
    enqueue(&account, &q1);
    assert_int_equal(claim(st, 1, &doc), 1);
    memset(&r, 0, sizeof(r));
    r.status = "completed";
    r.lines = 3;
    /* A stale epoch writes nothing at all. */
    assert_int_equal(sup_store_finish(st, &doc, 7, &r, err, sizeof(err)),
                     SUP_STORE_ELOST);
    assert_int_equal(
        count("csv_imports", "{\"queue_id\":{\"$oid\":\"%s\"}}", &q1), 0);
    assert_int_equal(sup_store_finish(st, &doc, 1, &r, err, sizeof(err)),
                     SUP_STORE_OK);
    assert_int_equal(count("queues",
                           "{\"_id\":{\"$oid\":\"%s\"},\"status\":"
                           "\"completed\",\"log_pending\":{\"$exists\":false},"
                           "\"progress.lines\":3,\"progress.added\":0}",
                           &q1),
                     1);
    assert_int_equal(count("csv_imports",
                           "{\"queue_id\":{\"$oid\":\"%s\"},\"status\":"
                           "\"completed\",\"total_records\":3,"
                           "\"total_records_added\":0,\"total_errors\":0,"
                           "\"file_name\":\"test.csv\",\"dry_run\":false}",
                           &q1),
                     1);
    /* Again: keyed by the import, still one. */
    assert_int_equal(sup_store_finish(st, &doc, 1, &r, err, sizeof(err)),
                     SUP_STORE_OK);
    assert_int_equal(
        count("csv_imports", "{\"queue_id\":{\"$oid\":\"%s\"}}", &q1), 1);
    (void)id_of(&doc, &it);
    bson_destroy(&doc);

    /* An end whose supervisor died before its log: repaired once. */
    enqueue(&account, &q2);
    BSON_APPEND_UTF8(&set, "status", "failed");
    BSON_APPEND_UTF8(&set, "error", "the file is gone");
    BSON_APPEND_BOOL(&set, "in_progress", false);
    BSON_APPEND_BOOL(&set, "log_pending", true);
    BSON_APPEND_INT64(&set, "progress.lines", 2);
    BSON_APPEND_DATE_TIME(&set, "finished_at", dip_bson_now_ms() - 3600000);
    it_queue_set(&env, &q2, &set);
    assert_int_equal(sup_store_repair_log(st, err, sizeof(err)), 1);
    assert_int_equal(count("csv_imports",
                           "{\"queue_id\":{\"$oid\":\"%s\"},\"status\":"
                           "\"failed\",\"error\":\"the file is gone\","
                           "\"total_records\":2}",
                           &q2),
                     1);
    assert_int_equal(count("queues",
                           "{\"_id\":{\"$oid\":\"%s\"},\"log_pending\":"
                           "{\"$exists\":true}}",
                           &q2),
                     0);
    assert_int_equal(sup_store_repair_log(st, err, sizeof(err)), 0);
    bson_destroy(&set);
    sup_store_destroy(&st);
}

/* The queue document's size, by its _id. */
static size_t queue_doc_len(const bson_oid_t *qid)
{
    mongoc_collection_t *c = it_coll(&env, "queues");
    bson_t f = BSON_INITIALIZER;
    mongoc_cursor_t *cur;
    const bson_t *doc;
    size_t len = 0;
    BSON_APPEND_OID(&f, "_id", qid);
    cur = mongoc_collection_find_with_opts(c, &f, NULL, NULL);
    if (mongoc_cursor_next(cur, &doc))
        len = doc->len;
    mongoc_cursor_destroy(cur);
    bson_destroy(&f);
    mongoc_collection_destroy(c);
    return len;
}

/* A queue document too large for the final figures (the CRM's part of it
 * near 16 MiB) ends with its final status written alone; that write keeps
 * the figures in `progress`, so that when csv_imports does not land after
 * it (the supervisor dies in between), the repair, which reads them from
 * there, writes the import's true counts rather than zeros.
 *
 * Failure classes: 4 (one document poisons a loop): the document that
 * cannot take the figures ends all the same, with them; 5 (a supervisor
 * that dies between the two writes): the repair is another supervisor's
 * and finds the figures; 1, 2 are the repair's claim and its single
 * update, unchanged here. */
static void test_finish_alone_keeps_progress(void **state)
{
    enum { MAX_BSON = 16 * 1024 * 1024, SLACK = 300 };
    sup_store_t *st = fresh("host:1");
    bson_oid_t account, qid;
    bson_t doc, set = BSON_INITIALIZER, pad_set = BSON_INITIALIZER;
    bson_iter_t it;
    sup_store_result_t r;
    char err[512], why[600], *pad;
    size_t len, want;
    (void)state;
    bson_oid_init(&account, NULL);
    enqueue(&account, &qid);
    assert_int_equal(claim(st, 1, &doc), 1);
    assert_int_equal(sup_store_progress(st, id_of(&doc, &it), 1, NULL, 0, 5, 3,
                                        2, 0, 100, 100, NULL, NULL, err,
                                        sizeof(err)),
                     SUP_STORE_OK);
    /* the CRM's part grown to 16 MiB less SLACK bytes */
    len = queue_doc_len(&qid);
    want = MAX_BSON - SLACK - len - (1 + sizeof("crm_pad") + 4 + 1);
    pad = malloc(want + 1);
    assert_non_null(pad);
    memset(pad, 'p', want);
    pad[want] = '\0';
    BSON_APPEND_UTF8(&pad_set, "crm_pad", pad);
    free(pad);
    it_queue_set(&env, &qid, &pad_set);
    assert_int_equal(queue_doc_len(&qid), MAX_BSON - SLACK);
    /* an error longer than the room left: the figures cannot land with it */
    memset(why, 'e', sizeof(why) - 1);
    why[sizeof(why) - 1] = '\0';
    memset(&r, 0, sizeof(r));
    r.status = "failed";
    r.error = why;
    r.lines = 5;
    r.counted = 1;
    r.added = 3;
    r.errors = 2;
    assert_int_equal(sup_store_finish(st, &doc, 1, &r, err, sizeof(err)),
                     SUP_STORE_OK);
    assert_int_equal(count("queues",
                           "{\"_id\":{\"$oid\":\"%s\"},\"status\":\"failed\","
                           "\"progress.lines\":5,\"progress.added\":3,"
                           "\"progress.errors\":2,"
                           "\"progress.errors_not_stored\":0}",
                           &qid),
                     1);
    /* The supervisor died before csv_imports: another repairs it. */
    {
        mongoc_collection_t *c = it_coll(&env, "csv_imports");
        bson_t f = BSON_INITIALIZER;
        BSON_APPEND_OID(&f, "queue_id", &qid);
        assert_true(mongoc_collection_delete_many(c, &f, NULL, NULL, NULL));
        bson_destroy(&f);
        mongoc_collection_destroy(c);
    }
    BSON_APPEND_BOOL(&set, "log_pending", true);
    BSON_APPEND_DATE_TIME(&set, "finished_at", dip_bson_now_ms() - 3600000);
    it_queue_set(&env, &qid, &set);
    assert_int_equal(sup_store_repair_log(st, err, sizeof(err)), 1);
    assert_int_equal(count("csv_imports",
                           "{\"queue_id\":{\"$oid\":\"%s\"},\"status\":"
                           "\"failed\",\"total_records\":5,"
                           "\"total_records_added\":3,\"total_errors\":2,"
                           "\"errors_stored\":2}",
                           &qid),
                     1);
    bson_destroy(&doc);
    bson_destroy(&set);
    bson_destroy(&pad_set);
    sup_store_destroy(&st);
}

static void test_budget(void **state)
{
    dip_config_t cfg;
    (void)state;
    dip_config_init(&cfg);
    cfg.lease_s = 60;
    cfg.stop_timeout_s = 0;
    assert_int_equal(sup_store_budget_ms(&cfg), 60000);
    cfg.stop_timeout_s = 10;
    assert_int_equal(sup_store_budget_ms(&cfg), 10000);
    cfg.stop_timeout_s = 90;
    assert_int_equal(sup_store_budget_ms(&cfg), 60000);
    dip_config_release(&cfg);
}

/* Runs an admin command (destroyed); true when it ran. */
static bool admin(bson_t *cmd, bson_t *reply)
{
    bool ok = mongoc_client_command_simple(env.client, "admin", cmd, NULL,
                                           reply, NULL);
    bson_destroy(cmd);
    return ok;
}

/* The development server's notablescan switched to on; its value before,
 * or -1 on a server without the switch (a real one). */
static int scan_guard_on(void)
{
    bson_t reply;
    int was = -1;
    bson_iter_t it;
    if (admin(BCON_NEW("devNoTableScan", BCON_BOOL(true)), &reply) &&
        bson_iter_init_find(&it, &reply, "was") && BSON_ITER_HOLDS_BOOL(&it))
        was = bson_iter_bool(&it);
    bson_destroy(&reply);
    /* the op log from here on (the suite runs one test at a time) */
    if (was >= 0 && admin(BCON_NEW("devOpLog", BCON_INT32(1), "limit",
                                   BCON_INT32(1), "reset", BCON_BOOL(true)),
                          &reply))
        bson_destroy(&reply);
    return was;
}

/* The operations on this test's queues the development server refused
 * (291) and the finds it planned without an index, from its op log. */
static void queue_ops(int *refused, int *unindexed_finds)
{
    char ns[128];
    bson_t reply;
    bson_iter_t it, ops;
    snprintf(ns, sizeof(ns), "%s.queues", env.dbname);
    *refused = *unindexed_finds = 0;
    assert_true(admin(BCON_NEW("devOpLog", BCON_INT32(1), "ns", BCON_UTF8(ns),
                               "limit", BCON_INT32(10000)),
                      &reply));
    assert_true(bson_iter_init_find(&it, &reply, "ops") &&
                bson_iter_recurse(&it, &ops));
    while (bson_iter_next(&ops)) {
        bson_t op;
        uint32_t len;
        const uint8_t *data;
        const char *name, *plan;
        bson_iter_document(&ops, &len, &data);
        assert_true(bson_init_static(&op, data, len));
        name = dip_bson_get_str(&op, "op");
        plan = dip_bson_get_str(&op, "planSummary");
        *refused += dip_bson_get_int(&op, "code", 0) == 291;
        *unindexed_finds += name && strcmp(name, "find") == 0 && plan &&
                            strstr(plan, "COLLSCAN") != NULL;
    }
    bson_destroy(&reply);
}

/* The account_key backfill at every start reads `queues` only on an index
 * of running imports (failure class 3: a query at start that scanned a
 * `queues` of millions): on a database no claiming supervisor has used it
 * asks nothing; after an upgrade (the older running_account_slot stands,
 * running claims have no account_key) it reads that index, gives each
 * claim its key, and the unique running_account_key_slot then stands.
 * With notablescan on, as scripts/test runs the suite (switched on here
 * too, and back as it was), a scan is refused: the op log shows none
 * refused and no find planned as a scan. 2: the read carries maxTimeMS
 * (dip_mongo_read_opts). On a server without the development commands
 * only the documents are checked. */
static void test_backfill_on_an_index(void **state)
{
    mongoc_collection_t *q = it_coll(&env, "queues");
    bson_oid_t acc[2], ids[3];
    bson_t *cmd, reply;
    char err[512], hex[25];
    sup_store_t *st;
    int was = scan_guard_on(), refused, scans;
    (void)state;

    /* A fresh database: nothing to backfill, nothing asked. */
    st = fresh("host:1");
    if (was >= 0) {
        queue_ops(&refused, &scans);
        assert_int_equal(refused, 0);
        assert_int_equal(scans, 0);
    }
    sup_store_destroy(&st);

    /* The upgrade: the older index, two running claims without a key
     * (accounts as ObjectId and as hex), one pending import. */
    mongoc_collection_drop(q, NULL);
    cmd =
        BCON_NEW("createIndexes", BCON_UTF8("queues"), "indexes", "[", "{",
                 "key", "{", "account_id", BCON_INT32(1), "account_slot",
                 BCON_INT32(1), "}", "name", BCON_UTF8("running_account_slot"),
                 "unique", BCON_BOOL(true), "partialFilterExpression", "{",
                 "status", BCON_UTF8("processing"), "}", "}", "]");
    assert_true(
        mongoc_collection_write_command_with_opts(q, cmd, NULL, &reply, NULL));
    bson_destroy(&reply);
    bson_destroy(cmd);
    for (int i = 0; i < 3; i++) {
        bson_t *doc;
        bson_oid_init(&ids[i], NULL);
        if (i < 2)
            bson_oid_init(&acc[i], NULL);
        bson_oid_to_string(&acc[i < 2 ? i : 0], hex);
        doc = BCON_NEW("_id", BCON_OID(&ids[i]), "source", BCON_UTF8("deals"),
                       "status", BCON_UTF8(i < 2 ? "processing" : "pending"),
                       "account_slot", BCON_INT32(0), "created_at",
                       BCON_DATE_TIME(1000 + i));
        if (i == 1)
            BSON_APPEND_UTF8(doc, "account_id", hex);
        else
            BSON_APPEND_OID(doc, "account_id", &acc[i < 2 ? i : 0]);
        assert_true(mongoc_collection_insert_one(q, doc, NULL, NULL, NULL));
        bson_destroy(doc);
    }
    st = other("host:1");
    assert_int_equal(sup_store_ensure_indexes(st, err, sizeof(err)),
                     SUP_STORE_OK);
    for (int i = 0; i < 3; i++) {
        bson_t *f;
        bson_oid_to_string(&acc[i < 2 ? i : 0], hex);
        f = i < 2 ? BCON_NEW("_id", BCON_OID(&ids[i]), "account_key",
                             BCON_UTF8(hex))
                  : BCON_NEW("_id", BCON_OID(&ids[i]), "account_key", "{",
                             "$exists", BCON_BOOL(false), "}");
        assert_int_equal(
            mongoc_collection_count_documents(q, f, NULL, NULL, NULL, NULL), 1);
        bson_destroy(f);
    }
    if (was >= 0) {
        queue_ops(&refused, &scans);
        if (!was && admin(BCON_NEW("devNoTableScan", BCON_BOOL(false)), &reply))
            bson_destroy(&reply);
        assert_int_equal(refused, 0);
        assert_int_equal(scans, 0);
    }
    sup_store_destroy(&st);
    mongoc_collection_destroy(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_budget),
        cmocka_unit_test(test_claim_and_slots),
        cmocka_unit_test(test_takeover),
        cmocka_unit_test(test_takeover_behind_older),
        cmocka_unit_test(test_takeover_poisoned),
        cmocka_unit_test(test_finish_and_repair),
        cmocka_unit_test(test_finish_alone_keeps_progress),
        cmocka_unit_test(test_backfill_on_an_index),
    };
    int rc = it_env_init(&env, "sup_store");
    if (rc)
        return rc;
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    it_env_release(&env);
    return rc;
}
