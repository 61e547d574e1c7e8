/*
 * Acceptance, updates: 10,000 deals created by one import (external_id
 * R00001..R10000, a stage, a value and a custom field each), then an edited
 * file of 12,010 rows: lines 1-9,000 change the stage, the value or the
 * custom field of R<line> (the other of value and custom field left empty,
 * which keeps the deal's), lines 9,001-10,000 repeat R<line> as it is,
 * lines 10,001-12,000 name new keys and 12,001-12,010 have an empty key.
 * - upsert: 9,000 updated, 1,000 unchanged, 2,010 created, on csv_imports
 *   and the completion event; empty cells kept; 9,000 before-images equal
 *   to the deals as the first import wrote them; the success file lists
 *   every written line once with its action and deal;
 * - update: the same 9,000 and 1,000, 2,010 line errors, nothing created;
 * - upsert with its worker SIGKILLed twice and its supervisor once: the
 *   same deals and counts, and the before-images are the originals (never
 *   the import's own values, whatever the crash cut); the success file
 *   lists each line once, with the same actions and deals;
 * - revert of the upsert after a user changed 5 of the updated deals where
 *   it wrote: the 2,010 created deals deleted, 8,995 deals back to their
 *   previous values, 5 conflicts left alone; the same after a crash
 *   between its updates and their marks.
 * The rules row by row: test_worker_upsert_rules.c.
 *
 * Failure classes: 1 and 2 (the lookup carries maxTimeMS and retries with
 * the worker's backoff; nothing grows with the import on the critical path
 * but the key set, in memory), 4 (a deal whose update the server refuses is
 * that line's error: the bulk write is unordered), 5 (a lost write concern
 * sends the batch again: inserts meet their own line, updates set the same
 * values, before-images their own duplicate), 9 (two imports of one account
 * may match the same deal: each records its own before-image; a revert of
 * the first then sees the second's values as a conflict), 11 (mode, match
 * and success_file strictly typed: tests/worker/test_wrk_match.c), 12 (the
 * lookup and every update are filtered by the import's account, the update
 * also by its pipeline: test_refusals in test_worker_upsert_rules.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dip_bson.h"
#include "it_check.h"
#include "it_ctl.h"
#include "it_env.h"
#include "it_upsert.h"
#include "it_tmp.h"

/* Every deal of an account: each was written by an import and carries
 * `import`, so they are read on account_import_line (account_id its prefix,
 * its partial filter said), as the suite's notablescan wants. */
#define ACCOUNT_DEALS                                                          \
    "{\"account_id\":{\"$oid\":\"%s\"},\"import\":{\"$exists\":true}}"
#define BASE 10000
#define CHANGED 9000
#define NEW 2000
#define EMPTY 10
#define ROWS (BASE + NEW + EMPTY)
#define CF IT_UPSERT_CF

static it_env_t env;

/* The edited file, as the header comment says. Line i of 1-9,000: i % 3
 * == 0 changes the stage (value empty), 1 the value (region empty), 2 the
 * region (value empty). */
static void write_edited(const char *key)
{
    char path[256];
    FILE *f;
    snprintf(path, sizeof(path), "%s/it-upsert-edit-%d.csv", it_tmpdir(),
             (int)getpid());
    f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "Ref,Name,Value,Stage,Region\n");
    for (int i = 1; i <= BASE; i++) {
        if (i > CHANGED)
            it_upsert_base_row(f, i);
        else if (i % 3 == 0)
            fprintf(f, "R%05d,Deal %d,,s%d,r%d\n", i, i, (i + 1) % 5, i % 7);
        else if (i % 3 == 1)
            fprintf(f, "R%05d,Deal %d,%d,s%d,\n", i, i, 5000 + i, i % 5);
        else
            fprintf(f, "R%05d,Deal %d,,s%d,z%d\n", i, i, i % 5, i);
    }
    for (int i = 1; i <= NEW; i++)
        fprintf(f, "N%05d,New %d,%d,s1,n\n", i, i, i);
    for (int i = 1; i <= EMPTY; i++)
        fprintf(f, ",Keyless %d,%d,s2,k\n", i, i);
    fclose(f);
    it_put_file(&env, key, path);
    unlink(path);
}

/* A new account and pipeline holding the first import's BASE deals. */
static void base_account(bson_oid_t *account, bson_oid_t *user,
                         bson_oid_t *pipeline, const char *key)
{
    bson_oid_t qid;
    bson_t q;
    char a[25];
    bson_oid_init(account, NULL);
    bson_oid_init(user, NULL);
    it_pipeline(&env, account, pipeline);
    it_upsert_write_base(&env, key, BASE);
    it_upsert_enqueue(&env, key, account, user, pipeline, NULL, NULL,
                      it_upsert_mappings, &qid);
    it_upsert_run(&env, &qid, NULL, "completed", &q);
    bson_destroy(&q);
    bson_oid_to_string(account, a);
    assert_int_equal(it_upsert_count(&env, "deals", ACCOUNT_DEALS, a), BASE);
}

/* The stage id of name in account's pipeline (on account_pipeline_name). */
static void stage_of(const bson_oid_t *account, const bson_oid_t *pipeline,
                     const char *name, bson_oid_t *out)
{
    mongoc_collection_t *c = it_coll(&env, "pipeline_stages");
    bson_t *f = BCON_NEW("account_id", BCON_OID(account), "pipeline_id",
                         BCON_OID(pipeline), "name", BCON_UTF8(name));
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(c, f, NULL, NULL);
    const bson_t *doc;
    assert_true(mongoc_cursor_next(cur, &doc));
    assert_int_equal(dip_bson_get_oid(doc, "_id", out), 0);
    mongoc_cursor_destroy(cur);
    bson_destroy(f);
    mongoc_collection_destroy(c);
}

/* Every deal of the account as the edited file leaves it; the figures of
 * csv_imports. */
static void check_upserted(const bson_oid_t *account,
                           const bson_oid_t *pipeline, const bson_oid_t *qid,
                           int created)
{
    mongoc_collection_t *c = it_coll(&env, "deals");
    bson_t *f = BCON_NEW("account_id", BCON_OID(account), "import", "{",
                         "$exists", BCON_BOOL(true), "}");
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(c, f, NULL, NULL);
    const bson_t *d;
    bson_oid_t stages[5];
    int64_t n = 0, wrong = 0;
    char a[25], q[25], name[8];
    for (int s = 0; s < 5; s++) {
        snprintf(name, sizeof(name), "s%d", s);
        stage_of(account, pipeline, name, &stages[s]);
    }
    while (mongoc_cursor_next(cur, &d)) {
        const char *ref = dip_bson_get_str(d, "external_id");
        const char *region = dip_bson_get_str(d, "additional_info." CF);
        bson_iter_t it;
        double value = -1;
        bson_oid_t st;
        int i, want_stage, ok = 1;
        char want_region[16];
        double want_value;
        n++;
        if (ref == NULL || ref[0] != 'R')
            continue;
        i = atoi(ref + 1);
        want_stage = i % 5;
        want_value = 100 + i;
        snprintf(want_region, sizeof(want_region), "r%d", i % 7);
        if (i <= CHANGED && i % 3 == 0)
            want_stage = (i + 1) % 5;
        else if (i <= CHANGED && i % 3 == 1)
            want_value = 5000 + i;
        else if (i <= CHANGED)
            snprintf(want_region, sizeof(want_region), "z%d", i);
        if (bson_iter_init_find(&it, d, "value"))
            value = bson_iter_as_double(&it);
        ok = value == want_value && region && !strcmp(region, want_region) &&
             dip_bson_get_oid(d, "stage_id", &st) == 0 &&
             bson_oid_equal(&st, &stages[want_stage]);
        /* the deal keeps its owner and first import; an update records
         * itself in last_import */
        if (ok && i <= CHANGED) {
            bson_oid_t li;
            ok = dip_bson_get_oid(d, "last_import.queue_id", &li) == 0 &&
                 bson_oid_equal(&li, qid) &&
                 dip_bson_get_int(d, "last_import.line", 0) == i;
        }
        if (!ok && wrong++ < 3)
            fprintf(stderr, "deal %s: value %g region %s\n", ref, value,
                    region ? region : "(none)");
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(f);
    mongoc_collection_destroy(c);
    assert_int_equal(wrong, 0);
    assert_int_equal(n, BASE + created);
    bson_oid_to_string(account, a);
    bson_oid_to_string(qid, q);
    /* the deals created by this import carry it */
    assert_int_equal(it_upsert_count(&env, "deals",
                                     "{\"account_id\":{\"$oid\":\"%s\"},"
                                     "\"import.queue_id\":{\"$oid\":\"%s\"},"
                                     "\"import\":{\"$exists\":true}}",
                                     a, q),
                     created);
}

/* Every before-image of the import holds the first import's values, and
 * there is one per updated line. */
static void check_before_images(const bson_oid_t *account,
                                const bson_oid_t *pipeline,
                                const bson_oid_t *qid)
{
    mongoc_collection_t *c = it_coll(&env, "deal_import_changes");
    mongoc_collection_t *deals = it_coll(&env, "deals");
    bson_t *f = BCON_NEW("queue_id", BCON_OID(qid));
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(c, f, NULL, NULL);
    const bson_t *rec;
    bson_oid_t stages[5];
    int64_t n = 0, wrong = 0;
    char name[8];
    (void)account;
    (void)deals;
    for (int s = 0; s < 5; s++) {
        snprintf(name, sizeof(name), "s%d", s);
        stage_of(account, pipeline, name, &stages[s]);
    }
    while (mongoc_cursor_next(cur, &rec)) {
        int64_t i = dip_bson_get_int(rec, "line", 0);
        bson_iter_t it, ch;
        int ok = i >= 1 && i <= CHANGED, nch = 0;
        n++;
        if (bson_iter_init_find(&it, rec, "changes") &&
            bson_iter_recurse(&it, &ch))
            while (ok && bson_iter_next(&ch)) {
                bson_t e;
                const uint8_t *data;
                uint32_t len;
                const char *field;
                bson_iter_t b;
                bson_iter_document(&ch, &len, &data);
                bson_init_static(&e, data, len);
                field = dip_bson_get_str(&e, "f");
                nch++;
                if (!bson_iter_init_find(&b, &e, "b")) {
                    ok = 0;
                } else if (!strcmp(field, "stage_id")) {
                    ok = BSON_ITER_HOLDS_OID(&b) &&
                         bson_oid_equal(bson_iter_oid(&b), &stages[i % 5]);
                } else if (!strcmp(field, "value")) {
                    ok = bson_iter_as_double(&b) == (double)(100 + i);
                } else if (!strcmp(field, "additional_info." CF)) {
                    char want[16];
                    snprintf(want, sizeof(want), "r%d", (int)(i % 7));
                    ok = BSON_ITER_HOLDS_UTF8(&b) &&
                         !strcmp(bson_iter_utf8(&b, NULL), want);
                } else {
                    ok = 0;
                }
            }
        if (!(ok && nch == 1) && wrong++ < 3)
            fprintf(stderr, "before-image of line %lld is wrong\n",
                    (long long)i);
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(f);
    mongoc_collection_destroy(c);
    mongoc_collection_destroy(deals);
    assert_int_equal(wrong, 0);
    assert_int_equal(n, CHANGED);
}

static void check_counts(const bson_oid_t *qid, int64_t added, int64_t updated,
                         int64_t unchanged, int64_t errors)
{
    char q[25];
    bson_oid_to_string(qid, q);
    if (it_upsert_count(
            &env, "csv_imports",
            "{\"queue_id\":{\"$oid\":\"%s\"},\"total_records\":%d,"
            "\"total_records_added\":%lld,\"total_records_updated\":"
            "%lld,\"total_records_unchanged\":%lld,\"total_errors\":"
            "%lld}",
            q, ROWS, (long long)added, (long long)updated, (long long)unchanged,
            (long long)errors) != 1) {
        fail_msg("csv_imports of %s lacks the counts %lld/%lld/%lld/%lld", q,
                 (long long)added, (long long)updated, (long long)unchanged,
                 (long long)errors);
    }
}

/* Every R deal as the first import wrote it, but the conflicts (R00001,
 * R00004, R00007, R00010, R00013: their value, which the import changed,
 * changed by a user since) and R00002's value (changed by a user, but
 * the import changed its region only: restored, the user's value kept). */
static void check_reverted(const bson_oid_t *account,
                           const bson_oid_t *pipeline)
{
    mongoc_collection_t *c = it_coll(&env, "deals");
    bson_t *f = BCON_NEW("account_id", BCON_OID(account), "import", "{",
                         "$exists", BCON_BOOL(true), "}");
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(c, f, NULL, NULL);
    const bson_t *d;
    bson_oid_t stages[5];
    int64_t n = 0, wrong = 0;
    char name[8];
    for (int s = 0; s < 5; s++) {
        snprintf(name, sizeof(name), "s%d", s);
        stage_of(account, pipeline, name, &stages[s]);
    }
    while (mongoc_cursor_next(cur, &d)) {
        const char *ref = dip_bson_get_str(d, "external_id");
        const char *region = dip_bson_get_str(d, "additional_info." CF);
        bson_iter_t it;
        bson_oid_t st;
        char want_region[16];
        int i;
        n++;
        if (ref == NULL || ref[0] != 'R') {
            wrong++;
            continue;
        }
        i = atoi(ref + 1);
        if (i <= 13 && i % 3 == 1)
            continue;
        snprintf(want_region, sizeof(want_region), "r%d", i % 7);
        if (!(bson_iter_init_find(&it, d, "value") &&
              bson_iter_as_double(&it) == (i == 2 ? 1.5 : 100 + i) && region &&
              !strcmp(region, want_region) &&
              dip_bson_get_oid(d, "stage_id", &st) == 0 &&
              bson_oid_equal(&st, &stages[i % 5])) &&
            wrong++ < 3)
            fprintf(stderr, "deal %s is not as before the import\n", ref);
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(f);
    mongoc_collection_destroy(c);
    assert_int_equal(wrong, 0);
    assert_int_equal(n, BASE);
}

/* A user changes five updated deals where the import wrote (and a sixth
 * elsewhere); revert --dry-run says what it would
 * do, revert does it; a run after a crash between its updates and their
 * marks (the marks taken away) and a second revert change nothing and
 * report the same totals. */
static void revert_upsert(const bson_oid_t *account, const bson_oid_t *pipeline,
                          const bson_oid_t *qid)
{
    static const int touched[] = {1, 4, 7, 10, 13, 2};
    mongoc_collection_t *deals = it_coll(&env, "deals");
    char id[25], a[25], out[8192], err[4096];
    const char *dry[] = {"revert", id, "--dry-run", "--json", NULL};
    const char *real[] = {"revert", id, "--json", NULL};
    json_t *j;
    int was;
    bson_oid_to_string(qid, id);
    bson_oid_to_string(account, a);
    for (size_t t = 0; t < 6; t++) {
        char ref[16];
        bson_t *f, *u;
        snprintf(ref, sizeof(ref), "R%05d", touched[t]);
        f = BCON_NEW("account_id", BCON_OID(account), "external_id",
                     BCON_UTF8(ref));
        u = BCON_NEW("$set", "{", "value", BCON_DOUBLE(1.5), "}");
        assert_true(
            mongoc_collection_update_one(deals, f, u, NULL, NULL, NULL));
        bson_destroy(f);
        bson_destroy(u);
    }
    /* revert's counts of what it leaves have no index: known scans of an
     * operator's command (docs/scaling.md), allowed in this function */
    was = it_notablescan(&env, 0);
    assert_int_equal(it_ctl_run(env.runtime, dry, out, sizeof(out), err,
                                sizeof(err), 120000),
                     0);
    j = json_loads(out, 0, NULL);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "deleted_deals")),
                     NEW + EMPTY);
    assert_int_equal(json_integer_value(json_object_get(j, "restored_deals")),
                     CHANGED - 5);
    assert_int_equal(json_integer_value(json_object_get(j, "conflicts")), 5);
    json_decref(j);
    /* nothing written by the dry run */
    assert_int_equal(it_upsert_count(&env, "deals", ACCOUNT_DEALS, a),
                     BASE + NEW + EMPTY);

    for (int run = 0; run < 3; run++) {
        if (run == 1) {
            /* a crash after the updates, before their marks */
            mongoc_collection_t *ch = it_coll(&env, "deal_import_changes");
            bson_t *f = BCON_NEW("queue_id", BCON_OID(qid));
            bson_t *u = BCON_NEW("$unset", "{", "revert", BCON_UTF8(""), "}");
            assert_true(
                mongoc_collection_update_many(ch, f, u, NULL, NULL, NULL));
            bson_destroy(f);
            bson_destroy(u);
            mongoc_collection_destroy(ch);
        }
        assert_int_equal(it_ctl_run(env.runtime, real, out, sizeof(out), err,
                                    sizeof(err), 300000),
                         0);
        j = json_loads(out, 0, NULL);
        assert_non_null(j);
        assert_int_equal(
            json_integer_value(json_object_get(j, "restored_deals")),
            CHANGED - 5);
        assert_int_equal(json_integer_value(json_object_get(j, "conflicts")),
                         5);
        assert_int_equal(json_array_size(json_object_get(j, "conflict_ids")),
                         5);
        if (run == 0)
            assert_int_equal(
                json_integer_value(json_object_get(j, "deleted_deals")),
                NEW + EMPTY);
        json_decref(j);
        check_reverted(account, pipeline);
    }
    if (was > 0)
        it_notablescan(&env, 1);
    assert_int_equal(
        it_upsert_count(&env, "csv_imports",
                        "{\"queue_id\":{\"$oid\":\"%s\"},"
                        "\"reverted_updates\":%d,\"revert_conflicts\":5,"
                        "\"revert_conflict_ids.4\":{\"$exists\":true},"
                        "\"reverted_deals\":%d}",
                        id, CHANGED - 5, NEW + EMPTY),
        1);
    mongoc_collection_destroy(deals);
}

/* The success file of the upsert: every line of the edited file that
 * wrote a deal, once and in line order: R<i> updated up to CHANGED, then
 * unchanged, the new and keyless rows created, each naming the deal that
 * holds its key now (the ids of the file are exactly the account's deals,
 * one each); and csv_imports and the queue document name it. */
static void check_success_file(const bson_oid_t *account, const bson_oid_t *qid)
{
    char *key = NULL, qh[25];
    json_t *rows = it_upsert_success_rows(&env, qid, &key), *row;
    mongoc_collection_t *c = it_coll(&env, "deals");
    /* every deal of the account was written by an import (ACCOUNT_DEALS) */
    bson_t *f = BCON_NEW("account_id", BCON_OID(account), "import", "{",
                         "$exists", BCON_BOOL(true), "}");
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(c, f, NULL, NULL);
    const bson_t *d;
    char(*file_ids)[25] = calloc(ROWS, 25), (*db_ids)[25] = calloc(ROWS, 25);
    size_t i, nfile = 0, ndb = 0;
    long long last = 0;
    int upd = 0, unch = 0, created = 0;
    assert_non_null(file_ids);
    assert_non_null(db_ids);
    json_array_foreach(rows, i, row)
    {
        const char *line = json_string_value(json_array_get(row, 0));
        const char *action = json_string_value(json_array_get(row, 1));
        const char *id = json_string_value(json_array_get(row, 2));
        const char *ref = json_string_value(json_array_get(row, 3));
        const char *want;
        if (i == 0) {
            assert_string_equal(action, "Action");
            continue;
        }
        assert_true(atoll(line) > last); /* each line once, in order */
        last = atoll(line);
        want = ref[0] != 'R'              ? "created"
               : atoi(ref + 1) <= CHANGED ? "updated"
                                          : "unchanged";
        assert_string_equal(action, want);
        upd += want[0] == 'u' && want[2] == 'd';
        unch += want[2] == 'c';
        created += want[0] == 'c';
        assert_true(nfile < ROWS);
        snprintf(file_ids[nfile++], 25, "%s", id);
    }
    assert_int_equal(upd, CHANGED);
    assert_int_equal(unch, BASE - CHANGED);
    assert_int_equal(created, NEW + EMPTY);
    while (mongoc_cursor_next(cur, &d)) {
        bson_oid_t id;
        assert_int_equal(dip_bson_get_oid(d, "_id", &id), 0);
        assert_true(ndb < ROWS);
        bson_oid_to_string(&id, db_ids[ndb++]);
    }
    assert_int_equal(nfile, ndb);
    qsort(file_ids, nfile, 25, (int (*)(const void *, const void *))strcmp);
    qsort(db_ids, ndb, 25, (int (*)(const void *, const void *))strcmp);
    for (i = 0; i < nfile; i++)
        if (strcmp(file_ids[i], db_ids[i]) != 0)
            fail_msg("the file's deal %s is not the account's %s", file_ids[i],
                     db_ids[i]);
    bson_oid_to_string(qid, qh);
    assert_int_equal(it_upsert_count(&env, "csv_imports",
                                     "{\"queue_id\":{\"$oid\":\"%s\"},"
                                     "\"success_file.rows\":%d}",
                                     qh, ROWS),
                     1);
    assert_int_equal(
        it_upsert_count(&env, "queues",
                        "{\"_id\":{\"$oid\":\"%s\"},\"success_file.key\":"
                        "\"%s\"}",
                        qh, key),
        1);
    json_decref(rows);
    free(file_ids);
    free(db_ids);
    free(key);
    mongoc_cursor_destroy(cur);
    bson_destroy(f);
    mongoc_collection_destroy(c);
}

static void test_upsert(void **state)
{
    bson_oid_t account, user, pipeline, qid;
    bson_t q;
    (void)state;
    base_account(&account, &user, &pipeline, "imports/upsert/base-a.csv");
    write_edited("imports/upsert/edited-a.csv");
    it_upsert_enqueue(&env, "imports/upsert/edited-a.csv", &account, &user,
                      &pipeline, "upsert", "external_id", it_upsert_mappings,
                      &qid);
    it_upsert_want_success(&env, &qid);
    it_upsert_run(&env, &qid, NULL, "completed", &q);
    bson_destroy(&q);
    check_upserted(&account, &pipeline, &qid, NEW + EMPTY);
    check_counts(&qid, NEW + EMPTY, CHANGED, BASE - CHANGED, 0);
    check_before_images(&account, &pipeline, &qid);
    check_success_file(&account, &qid);
    revert_upsert(&account, &pipeline, &qid);
}

static void test_update(void **state)
{
    bson_oid_t account, user, pipeline, qid;
    bson_t q;
    char qh[25];
    (void)state;
    base_account(&account, &user, &pipeline, "imports/upsert/base-b.csv");
    write_edited("imports/upsert/edited-b.csv");
    it_upsert_enqueue(&env, "imports/upsert/edited-b.csv", &account, &user,
                      &pipeline, "update", "external_id", it_upsert_mappings,
                      &qid);
    it_upsert_run(&env, &qid, NULL, "completed", &q);
    bson_destroy(&q);
    check_upserted(&account, &pipeline, &qid, 0);
    check_counts(&qid, 0, CHANGED, BASE - CHANGED, NEW + EMPTY);
    bson_oid_to_string(&qid, qh);
    assert_int_equal(
        it_upsert_count(
            &env, "csv_import_errors",
            "{\"queue_id\":{\"$oid\":\"%s\"},\"line\":10001,"
            "\"message\":\"no deal with external_id 'N00001' in this "
            "pipeline\"}",
            qh),
        1);
    assert_int_equal(it_upsert_count(&env, "csv_import_errors",
                                     "{\"queue_id\":{\"$oid\":\"%s\"},\"line\":"
                                     "12001,\"message\":{\"$regex\":\"^the "
                                     "external_id cell is empty\"}}",
                                     qh),
                     1);
}

static pid_t next_worker(const bson_oid_t *qid, pid_t previous, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 10) {
        pid_t pid = it_worker_pid(qid);
        if (pid > 0 && pid != previous)
            return pid;
        usleep(10000);
    }
    return -1;
}

static int unprice(void **state)
{
    (void)state;
    return it_dev_slow(&env, "{\"write_us\": 0}") == 0 ? 0 : -1;
}

/* Two worker kills, then the supervisor's, each in the middle of the
 * import; another supervisor takes the import over when the lease runs
 * out. */
static void test_upsert_killed(void **state)
{
    static const char *const extra[] = {
        "DEALIMPORT_WORKER_RESTARTS=20", "DEALIMPORT_ROW_BACKOFF_MS=200",
        "DEALIMPORT_LEASE_S=12", "DEALIMPORT_BATCH_ROWS=500", NULL};
    bson_oid_t account, user, pipeline, qid;
    char logpath[256];
    pid_t sup, worker = -1;
    int kills = 0;
    bson_t q;
    (void)state;
    base_account(&account, &user, &pipeline, "imports/upsert/base-c.csv");
    write_edited("imports/upsert/edited-c.csv");
    it_upsert_enqueue(&env, "imports/upsert/edited-c.csv", &account, &user,
                      &pipeline, "upsert", "external_id", it_upsert_mappings,
                      &qid);
    it_upsert_want_success(&env, &qid);
    snprintf(logpath, sizeof(logpath), "%s/it-upsert-kill-%d.log", it_tmpdir(),
             (int)getpid());
    /* Each write costs 300 us, so the file's 10,000 rows last 3 s or more
     * and every kill meets the import mid-way on any machine. */
    assert_int_equal(it_dev_slow(&env, "{\"write_us\": 300}"), 0);
    sup = it_supervisor_start(&env, extra, logpath);
    assert_true(sup > 0);
    /* the worker, twice, at growing points of the file */
    for (int64_t at = 2000; kills < 2; at += 3000) {
        worker = next_worker(&qid, worker, 120000);
        assert_true(worker > 0);
        if (it_wait_int(&env, &qid, "progress.lines", at, 120000) < 0)
            break;
        if (kill(worker, SIGKILL) == 0)
            kills++;
    }
    assert_int_equal(kills, 2);
    /* then the supervisor, with its worker running */
    worker = next_worker(&qid, worker, 120000);
    assert_true(worker > 0);
    assert_int_equal(it_wait_int(&env, &qid, "progress.lines", 8000, 120000),
                     0);
    assert_true(it_process_stop(sup, SIGKILL, 10000) != -1);
    kill(worker, SIGKILL);
    /* the first supervisor saw both worker deaths */
    assert_int_equal(it_log_count(logpath, "killed by signal 9"), 2);
    snprintf(logpath, sizeof(logpath), "%s/it-upsert-kill2-%d.log", it_tmpdir(),
             (int)getpid());
    sup = it_supervisor_start(&env, extra, logpath);
    assert_true(sup > 0);
    assert_int_equal(it_wait_final(&env, &qid, 600000, &q), 0);
    if (strcmp(it_str(&q, "status"), "completed") != 0)
        fail_msg("import %s: '%s'; log in %s", it_str(&q, "status"),
                 it_str(&q, "error"), logpath);
    bson_destroy(&q);
    assert_int_equal(it_process_stop(sup, SIGTERM, 30000), 0);
    check_upserted(&account, &pipeline, &qid, NEW + EMPTY);
    check_counts(&qid, NEW + EMPTY, CHANGED, BASE - CHANGED, 0);
    check_before_images(&account, &pipeline, &qid);
    check_success_file(&account, &qid);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_upsert),
        cmocka_unit_test(test_update),
        cmocka_unit_test_teardown(test_upsert_killed, unprice),
    };
    int rc = it_env_init(&env, "wupsert");
    if (rc)
        return rc;
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    it_env_release(&env);
    return rc;
}
