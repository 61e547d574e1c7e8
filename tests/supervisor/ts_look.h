/*
 * ts_look: what the tests of the claim's look share (test_sup_store_look.c,
 * test_sup_store_look_cost.c): the development database of the test (env,
 * one per test file), a fresh store on it with the supervisor's indexes,
 * queued imports, a claim as the loop makes it (what it holds, whom it
 * served), and what the development server's op log says an operation
 * examined. Header-only, included by one test file each.
 */
#ifndef TS_LOOK_H
#define TS_LOOK_H

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

/* The test file's development database (it_env_init in its main). */
static it_env_t env;

/* A store on env whose collections are new, with the supervisor's
 * indexes. */
static inline sup_store_t *ts_look_fresh(const char *owner)
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

/* One pending import of the account, created now; its _id into out. */
static inline void ts_look_enqueue(const bson_oid_t *account, bson_oid_t *out)
{
    bson_oid_t user, pipeline;
    bson_oid_init(&user, NULL);
    bson_oid_init(&pipeline, NULL);
    it_enqueue(&env, "imports/deals/look/a.csv", account, &user, &pipeline,
               "{\"Deal Name\":\"name\"}", out);
}

/* The aggregates on this test's queues the development server has logged;
 * -1 on a server without an op log (a real one). */
static inline long ts_look_aggregates(void)
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
} ts_look_loop_t;

/* One claim as the loop makes it; rc as sup_store_claim's. The account
 * claimed in goes into *account. */
static inline int ts_look_claim(sup_store_t *st, ts_look_loop_t *l,
                                long per_account, bson_oid_t *account)
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

/* Forgets what the loop holds. */
static inline void ts_look_release(ts_look_loop_t *l)
{
    for (size_t i = 0; i < l->nheld; i++)
        bson_destroy(&l->docs[i]);
    l->nheld = 0;
}

/* The index of acc in accounts (a failure when none). */
static inline int ts_look_which(const bson_oid_t *acc,
                                const bson_oid_t *accounts, int n)
{
    for (int i = 0; i < n; i++)
        if (bson_oid_equal(acc, &accounts[i]))
            return i;
    fail_msg("claimed in an account of no one's");
    return -1;
}

/* The most keys or documents one operation named name (findAndModify,
 * aggregate) on this test's queues examined, by the development server's
 * op log (the log emptied after); -1 on a server without one (a real
 * one). */
static inline long ts_look_examined_most(const char *name)
{
    char ns[160];
    bson_t *cmd, reply;
    bson_iter_t it, ops;
    long most = -1;
    snprintf(ns, sizeof(ns), "%s.queues", env.dbname);
    cmd = BCON_NEW("devOpLog", BCON_INT32(1), "ns", BCON_UTF8(ns), "op",
                   BCON_UTF8(name), "limit", BCON_INT32(10000), "reset",
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

#endif
