/*
 * Update and upsert, the rules on small files: a key repeated in one batch
 * and across two batches (the first line applies, the second is a line
 * error naming the first); a dry run's verdicts, writing nothing; refusals
 * before any write (an unknown mode, a custom match field without its
 * unique index) and a deal_id of another account ("not found", that deal
 * untouched); `dealimportctl enqueue --mode --match --success-file`; an
 * update that maps neither name nor stage.
 * Failure classes: see test_worker_upsert.c.
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
#include <unistd.h>

#include "dip_bson.h"
#include "dip_exit.h"
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
#define CF IT_UPSERT_CF
/* a custom field only test_other_match_fields maps */
#define CF2 "64b00000000000000000c0de"

static it_env_t env;

/* Puts csv at key and runs it as an import of account's pipeline in mode
 * by match with maps, to completed; its queue id in qid. */
static void run_csv(const char *key, const char *csv, const bson_oid_t *account,
                    const bson_oid_t *pipeline, const char *mode,
                    const char *match, const char *maps, bson_oid_t *qid)
{
    bson_oid_t user;
    bson_t q;
    bson_oid_init(&user, NULL);
    it_put(&env, key, csv, strlen(csv));
    it_upsert_enqueue(&env, key, account, &user, pipeline, mode, match, maps,
                      qid);
    it_upsert_run(&env, qid, NULL, "completed", &q);
    bson_destroy(&q);
}

/* The deal of account with external_id ref holds the stage named stage. */
static void assert_stage_named(const bson_oid_t *account, const char *ref,
                               const char *stage)
{
    mongoc_collection_t *c = it_coll(&env, "deals");
    bson_t *f = BCON_NEW("account_id", BCON_OID(account), "external_id",
                         BCON_UTF8(ref));
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(c, f, NULL, NULL);
    const bson_t *d;
    bson_oid_t st;
    char sh[25], filter[256];
    assert_true(mongoc_cursor_next(cur, &d));
    assert_int_equal(dip_bson_get_oid(d, "stage_id", &st), 0);
    bson_oid_to_string(&st, sh);
    snprintf(filter, sizeof(filter),
             "{\"_id\":{\"$oid\":\"%s\"},\"name\":\"%s\"}", sh, stage);
    assert_int_equal(it_count(&env, "pipeline_stages", filter), 1);
    mongoc_cursor_destroy(cur);
    bson_destroy(f);
    mongoc_collection_destroy(c);
}

/* R1 on lines 2 and 3 (one batch of 10), R2 on lines 5 and 15 (two). */
static void test_repeated_keys(void **state)
{
    static const char *const extra[] = {"DEALIMPORT_BATCH_ROWS=10", NULL};
    static const char edited[] = "Ref,Name,Value,Stage,Region\n"
                                 "R00003,Deal 3,103,s3,r3\n"
                                 "R00001,Deal 1,5001,s1,r1\n"
                                 "R00001,Deal 1,5002,s1,r1\n"
                                 "R00004,Deal 4,104,s4,r4\n"
                                 "R00002,Deal 2,6001,s2,r2\n"
                                 "X6,a,1,s1,x\nX7,a,1,s1,x\nX8,a,1,s1,x\n"
                                 "X9,a,1,s1,x\nX10,a,1,s1,x\nX11,a,1,s1,x\n"
                                 "X12,a,1,s1,x\nX13,a,1,s1,x\nX14,a,1,s1,x\n"
                                 "R00002,Deal 2,6002,s2,r2\n";
    bson_oid_t account, user, pipeline, qid, q2;
    char a[25], qh[25];
    bson_t q;
    (void)state;
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &account, &pipeline);
    it_upsert_write_base(&env, "imports/upsert/base-d.csv", 5);
    it_upsert_enqueue(&env, "imports/upsert/base-d.csv", &account, &user,
                      &pipeline, NULL, NULL, it_upsert_mappings, &qid);
    it_upsert_run(&env, &qid, NULL, "completed", &q);
    bson_destroy(&q);
    it_put(&env, "imports/upsert/edited-d.csv", edited, strlen(edited));
    it_upsert_enqueue(&env, "imports/upsert/edited-d.csv", &account, &user,
                      &pipeline, "upsert", "external_id", it_upsert_mappings,
                      &q2);
    it_upsert_run(&env, &q2, extra, "completed", &q);
    bson_destroy(&q);
    bson_oid_to_string(&account, a);
    bson_oid_to_string(&q2, qh);
    assert_int_equal(
        it_upsert_count(&env, "deals",
                        "{\"account_id\":{\"$oid\":\"%s\"},"
                        "\"external_id\":\"R00001\",\"value\":5001}",
                        a),
        1);
    assert_int_equal(
        it_upsert_count(&env, "deals",
                        "{\"account_id\":{\"$oid\":\"%s\"},"
                        "\"external_id\":\"R00002\",\"value\":6001}",
                        a),
        1);
    assert_int_equal(
        it_upsert_count(
            &env, "csv_import_errors",
            "{\"queue_id\":{\"$oid\":\"%s\"},\"line\":3,\"message\":"
            "\"external_id 'R00001' is on line 2 already: only the "
            "first line with a key is applied\"}",
            qh),
        1);
    assert_int_equal(
        it_upsert_count(
            &env, "csv_import_errors",
            "{\"queue_id\":{\"$oid\":\"%s\"},\"line\":15,\"message\":"
            "\"external_id 'R00002' is on line 5 already: only the "
            "first line with a key is applied\"}",
            qh),
        1);
    assert_int_equal(it_upsert_count(&env, "csv_import_errors",
                                     "{\"queue_id\":{\"$oid\":\"%s\"}}", qh),
                     2);
}

/* A dry run of an upsert: the verdicts and line errors the import would
 * give, nothing written (no deal changed or added, no before-image). */
static void test_dry_run(void **state)
{
    static const char edited[] = "Ref,Name,Value,Stage,Region\n"
                                 "R00001,Deal 1,5001,s1,r1\n"
                                 "R00002,Deal 2,102,s2,r2\n"
                                 "N00001,New,1,s1,n\n"
                                 "R00001,Deal 1,5002,s1,r1\n"
                                 ",Keyless,1,s1,k\n";
    bson_oid_t account, user, pipeline, qid, q2;
    char a[25], qh[25];
    bson_t q;
    (void)state;
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &account, &pipeline);
    it_upsert_write_base(&env, "imports/upsert/base-f.csv", 3);
    it_upsert_enqueue(&env, "imports/upsert/base-f.csv", &account, &user,
                      &pipeline, NULL, NULL, it_upsert_mappings, &qid);
    it_upsert_run(&env, &qid, NULL, "completed", &q);
    bson_destroy(&q);
    it_put(&env, "imports/upsert/edited-f.csv", edited, strlen(edited));
    it_upsert_enqueue(&env, "imports/upsert/edited-f.csv", &account, &user,
                      &pipeline, "upsert", "external_id", it_upsert_mappings,
                      &q2);
    {
        mongoc_collection_t *c = it_coll(&env, "queues");
        bson_t *f = BCON_NEW("_id", BCON_OID(&q2));
        bson_t *u = BCON_NEW("$set", "{", "dry_run", BCON_BOOL(true), "}");
        assert_true(mongoc_collection_update_one(c, f, u, NULL, NULL, NULL));
        bson_destroy(f);
        bson_destroy(u);
        mongoc_collection_destroy(c);
    }
    it_upsert_run(&env, &q2, NULL, "completed", &q);
    bson_destroy(&q);
    bson_oid_to_string(&account, a);
    bson_oid_to_string(&q2, qh);
    assert_int_equal(it_upsert_count(&env, "csv_imports",
                                     "{\"queue_id\":{\"$oid\":\"%s\"},"
                                     "\"dry_run\":true,\"would_add\":2,"
                                     "\"would_update\":1,"
                                     "\"would_leave_unchanged\":1,"
                                     "\"total_errors\":1}",
                                     qh),
                     1);
    assert_int_equal(
        it_upsert_count(
            &env, "csv_import_errors",
            "{\"queue_id\":{\"$oid\":\"%s\"},\"line\":4,\"message\":"
            "{\"$regex\":\"is on line 1 already\"}}",
            qh),
        1);
    assert_int_equal(it_upsert_count(&env, "deals", ACCOUNT_DEALS, a), 3);
    assert_int_equal(it_upsert_count(&env, "deals",
                                     "{\"account_id\":{\"$oid\":\"%s\"},"
                                     "\"external_id\":\"R00001\",\"value\":101,"
                                     "\"last_import\":{\"$exists\":false}}",
                                     a),
                     1);
    assert_int_equal(it_upsert_count(&env, "deal_import_changes",
                                     "{\"queue_id\":{\"$oid\":\"%s\"}}", qh),
                     0);
}

/* Refused before any write, and a deal_id of another account. */
static void test_refusals(void **state)
{
    static const char deal_maps[] =
        "{\"Id\":\"deal_id\",\"Name\":\"name\",\"Value\":\"value\","
        "\"Stage\":\"stage_id\"}";
    bson_oid_t account, user, pipeline, other, opipe, qid, theirs;
    char a[25], qh[25], th[25], csv[256];
    bson_t q;
    (void)state;
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    bson_oid_init(&other, NULL);
    it_pipeline(&env, &account, &pipeline);
    it_pipeline(&env, &other, &opipe);
    it_upsert_write_base(&env, "imports/upsert/base-e.csv", 3);
    bson_oid_to_string(&account, a);

    /* an unknown mode */
    it_upsert_enqueue(&env, "imports/upsert/base-e.csv", &account, &user,
                      &pipeline, "merge", "external_id", it_upsert_mappings,
                      &qid);
    it_upsert_run(&env, &qid, NULL, "failed", &q);
    assert_non_null(strstr(it_str(&q, "error"),
                           "'additional_data.mode' is 'merge': it must be "
                           "'create', 'update' or 'upsert'"));
    bson_destroy(&q);
    /* a custom match field without its unique index */
    it_upsert_enqueue(&env, "imports/upsert/base-e.csv", &account, &user,
                      &pipeline, "upsert", CF, it_upsert_mappings, &qid);
    it_upsert_run(&env, &qid, NULL, "failed", &q);
    assert_non_null(strstr(it_str(&q, "error"),
                           "db.deals.createIndex({account_id: 1, "
                           "'additional_info." CF "': 1}, {unique: true"));
    bson_destroy(&q);
    assert_int_equal(it_upsert_count(&env, "deals", ACCOUNT_DEALS, a), 0);

    /* another account's deal, named by its id: not found, untouched */
    it_upsert_write_base(&env, "imports/upsert/base-o.csv", 1);
    it_upsert_enqueue(&env, "imports/upsert/base-o.csv", &other, &user, &opipe,
                      NULL, NULL, it_upsert_mappings, &qid);
    it_upsert_run(&env, &qid, NULL, "completed", &q);
    bson_destroy(&q);
    {
        mongoc_collection_t *c = it_coll(&env, "deals");
        bson_t *f = BCON_NEW("account_id", BCON_OID(&other), "import", "{",
                             "$exists", BCON_BOOL(true), "}");
        mongoc_cursor_t *cur =
            mongoc_collection_find_with_opts(c, f, NULL, NULL);
        const bson_t *d;
        assert_true(mongoc_cursor_next(cur, &d));
        assert_int_equal(dip_bson_get_oid(d, "_id", &theirs), 0);
        mongoc_cursor_destroy(cur);
        bson_destroy(f);
        mongoc_collection_destroy(c);
    }
    bson_oid_to_string(&theirs, th);
    snprintf(csv, sizeof(csv), "Id,Name,Value,Stage\n%s,Mine now,1,s1\n", th);
    run_csv("imports/upsert/theirs.csv", csv, &account, &pipeline, "update",
            "deal_id", deal_maps, &qid);
    bson_oid_to_string(&qid, qh);
    {
        char msg[256];
        snprintf(msg, sizeof(msg), "no deal with deal_id '%s' in this pipeline",
                 th);
        assert_int_equal(
            it_upsert_count(&env, "csv_import_errors",
                            "{\"queue_id\":{\"$oid\":\"%s\"},\"line\":"
                            "1,\"message\":\"%s\"}",
                            qh, msg),
            1);
    }
    assert_int_equal(
        it_upsert_count(&env, "deals",
                        "{\"_id\":{\"$oid\":\"%s\"},\"name\":\"Deal "
                        "1\",\"value\":101,\"last_import\":{\"$exists\":"
                        "false}}",
                        th),
        1);
    assert_int_equal(it_upsert_count(&env, "deals", ACCOUNT_DEALS, a), 0);
}

/* The deal ids of account's deals R00001..R0000n, in that order. */
static void deal_ids(const bson_oid_t *account, int n, bson_oid_t *ids)
{
    for (int i = 1; i <= n; i++) {
        char ref[16];
        mongoc_collection_t *c = it_coll(&env, "deals");
        bson_t *f;
        mongoc_cursor_t *cur;
        const bson_t *d;
        snprintf(ref, sizeof(ref), "R%05d", i);
        f = BCON_NEW("account_id", BCON_OID(account), "external_id",
                     BCON_UTF8(ref));
        cur = mongoc_collection_find_with_opts(c, f, NULL, NULL);
        assert_true(mongoc_cursor_next(cur, &d));
        assert_int_equal(dip_bson_get_oid(d, "_id", &ids[i - 1]), 0);
        mongoc_cursor_destroy(cur);
        bson_destroy(f);
        mongoc_collection_destroy(c);
    }
}

/* The two match fields besides external_id, end to end: deal_id (the
 * CRM's export of ids, one written in capitals) in update mode, and a
 * custom field with the unique index the refusal's sentence asks for, in
 * upsert mode. Each finds its deal (the lookup reads only the fields the
 * file maps, its key among them), changes what differs, keeps an empty
 * cell's value and the fields the file does not map, and leaves an equal
 * row unchanged. */
static void test_other_match_fields(void **state)
{
    static const char code_maps[] =
        "{\"Code\":\"" CF2 "\",\"Name\":\"name\",\"Value\":\"value\","
        "\"Stage\":\"stage_id\"}";
    static const char id_maps[] =
        "{\"Id\":\"deal_id\",\"Name\":\"name\",\"Value\":\"value\","
        "\"Region\":\"" CF "\",\"Stage\":\"stage_id\"}";
    bson_oid_t account, user, pipeline, qid, ids[3];
    char a[25], h[3][25], up[25], csv[512], qh[25];
    bson_t q, reply;
    bson_error_t error;
    (void)state;
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &account, &pipeline);
    bson_oid_to_string(&account, a);
    it_upsert_write_base(&env, "imports/upsert/base-m.csv", 3);
    it_upsert_enqueue(&env, "imports/upsert/base-m.csv", &account, &user,
                      &pipeline, NULL, NULL, it_upsert_mappings, &qid);
    it_upsert_run(&env, &qid, NULL, "completed", &q);
    bson_destroy(&q);
    deal_ids(&account, 3, ids);
    for (int i = 0; i < 3; i++)
        bson_oid_to_string(&ids[i], h[i]);
    for (int c = 0; c < 24; c++)
        up[c] = (char)(h[0][c] >= 'a' ? h[0][c] - 32 : h[0][c]);
    up[24] = '\0';

    /* deal_id, update mode: line 1 renames R00001 and empties its region
     * cell (kept), line 2 is R00002 as it is */
    snprintf(csv, sizeof(csv),
             "Id,Name,Value,Region,Stage\n%s,Renamed,5,,\n%s,Deal 2,102,r2,\n",
             up, h[1]);
    run_csv("imports/upsert/ids.csv", csv, &account, &pipeline, "update",
            "deal_id", id_maps, &qid);
    bson_oid_to_string(&qid, qh);
    assert_int_equal(
        it_upsert_count(&env, "csv_imports",
                        "{\"queue_id\":{\"$oid\":\"%s\"},"
                        "\"total_records_added\":0,\"total_records_updated\":1,"
                        "\"total_records_unchanged\":1,\"total_errors\":0}",
                        qh),
        1);
    assert_int_equal(
        it_upsert_count(&env, "deals",
                        "{\"_id\":{\"$oid\":\"%s\"},\"name\":\"Renamed\","
                        "\"value\":5,\"external_id\":\"R00001\","
                        "\"additional_info." CF "\":\"r1\"}",
                        h[0]),
        1);

    /* a custom field as the key: its unique index first, as the refusal's
     * sentence words it, then a code on each deal (as a user would give
     * them in the CRM) */
    {
        mongoc_collection_t *c = it_coll(&env, "deals");
        bson_t *cmd = BCON_NEW(
            "createIndexes", BCON_UTF8("deals"), "indexes", "[", "{", "key",
            "{", "account_id", BCON_INT32(1), "additional_info." CF2,
            BCON_INT32(1), "}", "name", BCON_UTF8("account_code"), "unique",
            BCON_BOOL(true), "partialFilterExpression", "{",
            "additional_info." CF2, "{", "$type", BCON_UTF8("string"), "$gt",
            BCON_UTF8(""), "}", "}", "}", "]");
        assert_true(
            mongoc_collection_command_simple(c, cmd, NULL, &reply, &error));
        bson_destroy(&reply);
        bson_destroy(cmd);
        for (int i = 0; i < 3; i++) {
            char code[8];
            bson_t *f = BCON_NEW("_id", BCON_OID(&ids[i]));
            bson_t *u;
            snprintf(code, sizeof(code), "C%d", i + 1);
            u = BCON_NEW("$set", "{", "additional_info." CF2, BCON_UTF8(code),
                         "}");
            assert_true(
                mongoc_collection_update_one(c, f, u, NULL, NULL, &error));
            bson_destroy(f);
            bson_destroy(u);
        }
        mongoc_collection_destroy(c);
    }
    /* C3 gets a value, C2 is as it is (empty stages keep theirs), C9 is
     * new */
    snprintf(csv, sizeof(csv),
             "Code,Name,Value,Stage\nC3,Deal 3,33,\nC2,Deal 2,102,\n"
             "C9,Nine,9,s1\n");
    run_csv("imports/upsert/codes.csv", csv, &account, &pipeline, "upsert", CF2,
            code_maps, &qid);
    bson_oid_to_string(&qid, qh);
    assert_int_equal(
        it_upsert_count(&env, "csv_imports",
                        "{\"queue_id\":{\"$oid\":\"%s\"},"
                        "\"total_records_added\":1,\"total_records_updated\":1,"
                        "\"total_records_unchanged\":1,\"total_errors\":0}",
                        qh),
        1);
    assert_int_equal(
        it_upsert_count(&env, "deals",
                        "{\"_id\":{\"$oid\":\"%s\"},\"name\":\"Deal 3\","
                        "\"value\":33,\"external_id\":\"R00003\","
                        "\"additional_info." CF "\":\"r3\"}",
                        h[2]),
        1);
    assert_int_equal(
        it_upsert_count(&env, "deals",
                        "{\"account_id\":{\"$oid\":\"%s\"},\"name\":\"Nine\","
                        "\"additional_info." CF2 "\":\"C9\"}",
                        a),
        1);
    assert_int_equal(it_upsert_count(&env, "deals", ACCOUNT_DEALS, a), 4);
}

/* `dealimportctl enqueue --mode upsert --match external_id --success-file`
 * writes what the worker reads; an unknown mode, or update without a
 * match, is a usage error. */
static void test_ctl_enqueue(void **state)
{
    char path[256], acc[25], usr[25], pip[25], out[512], err[512];
    bson_oid_t account, user, pipeline, qid;
    mongoc_collection_t *c;
    bson_t *filter;
    mongoc_cursor_t *cur;
    const bson_t *doc;
    bson_iter_t it;
    FILE *f;
    const char *args[] = {"enqueue",
                          "--file",
                          path,
                          "--account",
                          acc,
                          "--user",
                          usr,
                          "--pipeline",
                          pip,
                          "--map",
                          "Ref=external_id",
                          "--map",
                          "Name=name",
                          "--map",
                          "Stage=stage_id",
                          "--mode",
                          "upsert",
                          "--match",
                          "external_id",
                          "--success-file",
                          NULL};
    const char *bad[] = {
        "enqueue",    "--file", path,    "--account", acc,      "--user", usr,
        "--pipeline", pip,      "--map", "Name=name", "--mode", "merge",  NULL};
    const char *nomatch[] = {
        "enqueue",    "--file", path,    "--account", acc,      "--user", usr,
        "--pipeline", pip,      "--map", "Name=name", "--mode", "update", NULL};
    const char *upd[] = {"enqueue",
                         "--file",
                         path,
                         "--account",
                         acc,
                         "--user",
                         usr,
                         "--pipeline",
                         pip,
                         "--map",
                         "Ref=external_id",
                         "--mode",
                         "update",
                         "--match",
                         "external_id",
                         NULL};
    (void)state;
    snprintf(path, sizeof(path), "%s/it-upsert-ctl-%d.csv", it_tmpdir(),
             (int)getpid());
    f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "Ref,Name,Stage\nR1,A,Lead\n");
    fclose(f);
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &account, &pipeline);
    bson_oid_to_string(&account, acc);
    bson_oid_to_string(&user, usr);
    bson_oid_to_string(&pipeline, pip);
    if (it_ctl_run(env.runtime, args, out, sizeof(out), err, sizeof(err),
                   60000) != 0)
        fail_msg("enqueue failed: %s", err);
    out[strcspn(out, "\n")] = '\0';
    assert_true(bson_oid_is_valid(out, strlen(out)) && strlen(out) == 24);
    bson_oid_init_from_string(&qid, out);
    c = it_coll(&env, "queues");
    filter = BCON_NEW("_id", BCON_OID(&qid));
    cur = mongoc_collection_find_with_opts(c, filter, NULL, NULL);
    assert_true(mongoc_cursor_next(cur, &doc));
    assert_string_equal(it_str(doc, "additional_data.mode"), "upsert");
    assert_string_equal(it_str(doc, "additional_data.match"), "external_id");
    assert_true(
        bson_iter_init(&it, doc) &&
        bson_iter_find_descendant(&it, "additional_data.success_file", &it) &&
        BSON_ITER_HOLDS_BOOL(&it) && bson_iter_bool(&it));
    mongoc_cursor_destroy(cur);
    /* not to be imported by the tests after this one */
    assert_true(mongoc_collection_delete_one(c, filter, NULL, NULL, NULL));
    bson_destroy(filter);
    mongoc_collection_destroy(c);
    assert_int_equal(
        it_ctl_run(env.runtime, bad, out, sizeof(out), err, sizeof(err), 60000),
        64);
    assert_non_null(strstr(err, "--mode is create, update or upsert"));
    assert_int_equal(it_ctl_run(env.runtime, nomatch, out, sizeof(out), err,
                                sizeof(err), 60000),
                     64);
    assert_non_null(strstr(err, "--mode update needs --match FIELD"));
    /* an update maps only its key and what it changes; an upsert may
     * create, so it must map a name and a stage */
    if (it_ctl_run(env.runtime, upd, out, sizeof(out), err, sizeof(err),
                   60000) != 0)
        fail_msg("enqueue --mode update failed: %s", err);
    out[strcspn(out, "\n")] = '\0';
    bson_oid_init_from_string(&qid, out);
    c = it_coll(&env, "queues");
    filter = BCON_NEW("_id", BCON_OID(&qid));
    assert_true(mongoc_collection_delete_one(c, filter, NULL, NULL, NULL));
    bson_destroy(filter);
    mongoc_collection_destroy(c);
    upd[12] = "upsert";
    assert_int_equal(
        it_ctl_run(env.runtime, upd, out, sizeof(out), err, sizeof(err), 60000),
        DIP_EXIT_REFUSED);
    assert_non_null(strstr(err, "not queued: no column is mapped to 'name'"));
    unlink(path);
}

/* Empty cells keep the deal's values, name and stage included; a row that
 * creates still needs a name and a stage, and gets status 'open'. */
static void test_empty_cells(void **state)
{
    static const char edited[] = "Ref,Name,Value,Stage,Region\n"
                                 "R00001,,,,\n"
                                 "R00002,,7,,\n"
                                 "N00001,,1,s1,\n"
                                 "N00002,New,1,,\n"
                                 "N00003,New,1,s1,\n";
    bson_oid_t account, user, pipeline, qid, q2;
    char a[25], qh[25];
    bson_t q;
    (void)state;
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &account, &pipeline);
    it_upsert_write_base(&env, "imports/upsert/base-g.csv", 3);
    it_upsert_enqueue(&env, "imports/upsert/base-g.csv", &account, &user,
                      &pipeline, NULL, NULL, it_upsert_mappings, &qid);
    it_upsert_run(&env, &qid, NULL, "completed", &q);
    bson_destroy(&q);
    it_put(&env, "imports/upsert/edited-g.csv", edited, strlen(edited));
    it_upsert_enqueue(&env, "imports/upsert/edited-g.csv", &account, &user,
                      &pipeline, "upsert", "external_id", it_upsert_mappings,
                      &q2);
    it_upsert_run(&env, &q2, NULL, "completed", &q);
    bson_destroy(&q);
    bson_oid_to_string(&account, a);
    bson_oid_to_string(&q2, qh);
    assert_int_equal(
        it_upsert_count(&env, "csv_imports",
                        "{\"queue_id\":{\"$oid\":\"%s\"},"
                        "\"total_records_added\":1,\"total_records_updated\":1,"
                        "\"total_records_unchanged\":1,\"total_errors\":2}",
                        qh),
        1);
    assert_int_equal(
        it_upsert_count(&env, "deals",
                        "{\"account_id\":{\"$oid\":\"%s\"},\"external_id\":"
                        "\"R00002\",\"name\":\"Deal 2\",\"value\":7,"
                        "\"status\":\"open\",\"additional_info." CF
                        "\":\"r2\"}",
                        a),
        1);
    assert_int_equal(
        it_upsert_count(&env, "deals",
                        "{\"account_id\":{\"$oid\":\"%s\"},\"external_id\":"
                        "\"N00003\",\"status\":\"open\"}",
                        a),
        1);
    assert_int_equal(
        it_upsert_count(&env, "csv_import_errors",
                        "{\"queue_id\":{\"$oid\":\"%s\"},\"line\":3,"
                        "\"message\":\"name is required to create a deal, "
                        "but it is empty on this line\"}",
                        qh),
        1);
    assert_int_equal(
        it_upsert_count(&env, "csv_import_errors",
                        "{\"queue_id\":{\"$oid\":\"%s\"},\"line\":4,"
                        "\"message\":{\"$regex\":\"^stage_id is required\"}}",
                        qh),
        1);
    /* R00002 kept its stage: the one its first import gave it */
    assert_stage_named(&account, "R00002", "s2");
}

/* An update maps only its key and the fields it changes: name and
 * stage_id need no column, and the deals keep them (their stage the one
 * their first import gave them). An upsert of the same mapping is refused
 * before any write, since its new deals need both. */
static void test_update_without_stage(void **state)
{
    static const char maps[] = "{\"Ref\":\"external_id\",\"Value\":\"value\"}";
    static const char csv[] = "Ref,Value\nR00001,77\nR00002,\nR00003,103\n";
    bson_oid_t account, user, pipeline, qid;
    char a[25], qh[25];
    bson_t q;
    bson_iter_t it;
    (void)state;
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &account, &pipeline);
    bson_oid_to_string(&account, a);
    it_upsert_write_base(&env, "imports/upsert/base-s.csv", 3);
    it_upsert_enqueue(&env, "imports/upsert/base-s.csv", &account, &user,
                      &pipeline, NULL, NULL, it_upsert_mappings, &qid);
    it_upsert_run(&env, &qid, NULL, "completed", &q);
    bson_destroy(&q);

    run_csv("imports/upsert/values.csv", csv, &account, &pipeline, "update",
            "external_id", maps, &qid);
    bson_oid_to_string(&qid, qh);
    assert_int_equal(
        it_upsert_count(&env, "csv_imports",
                        "{\"queue_id\":{\"$oid\":\"%s\"},"
                        "\"total_records_added\":0,\"total_records_updated\":1,"
                        "\"total_records_unchanged\":2,\"total_errors\":0}",
                        qh),
        1);
    assert_int_equal(
        it_upsert_count(&env, "deals",
                        "{\"account_id\":{\"$oid\":\"%s\"},\"external_id\":"
                        "\"R00001\",\"name\":\"Deal 1\",\"value\":77,"
                        "\"status\":\"open\"}",
                        a),
        1);
    /* R00001 kept its stage: s1 of the pipeline */
    assert_stage_named(&account, "R00001", "s1");

    /* the same mapping in upsert mode: failed, nothing written */
    bson_oid_init(&user, NULL);
    it_put(&env, "imports/upsert/values-u.csv", csv, strlen(csv));
    it_upsert_enqueue(&env, "imports/upsert/values-u.csv", &account, &user,
                      &pipeline, "upsert", "external_id", maps, &qid);
    it_upsert_run(&env, &qid, NULL, "failed", &q);
    assert_true(bson_iter_init_find(&it, &q, "error") &&
                BSON_ITER_HOLDS_UTF8(&it));
    assert_string_equal(bson_iter_utf8(&it, NULL),
                        "no column is mapped to 'name', which every deal "
                        "needs");
    bson_destroy(&q);
    assert_int_equal(
        it_upsert_count(&env, "deals",
                        "{\"account_id\":{\"$oid\":\"%s\"},\"external_id\":"
                        "\"R00001\",\"value\":77}",
                        a),
        1);
    assert_int_equal(it_upsert_count(&env, "deals", ACCOUNT_DEALS, a), 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ctl_enqueue),
        cmocka_unit_test(test_repeated_keys),
        cmocka_unit_test(test_dry_run),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_empty_cells),
        cmocka_unit_test(test_other_match_fields),
        cmocka_unit_test(test_update_without_stage),
    };
    int rc = it_env_init(&env, "wupsrules");
    if (rc)
        return rc;
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    it_env_release(&env);
    return rc;
}
