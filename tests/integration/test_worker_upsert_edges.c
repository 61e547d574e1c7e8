/*
 * Update and upsert at their edges, on small files:
 * - a key longer than 4 KiB (a cell may hold 64 KiB) finds its deal: the
 *   deal is updated, not refused as a duplicate nor reported missing;
 * - the revert of a change of tags only (the row's values equal the
 *   deal's, the import added its tag) restores it: the tag pulled, not a
 *   conflict;
 * - the revert of a deal whose previous value was null puts null back and
 *   counts it restored, not a conflict;
 * - a deal near 16 MiB whose before-image would pass 16 MiB is that
 *   line's error; the import completes and the batch's other rows are
 *   written;
 * - a row whose update the database refuses (tags not an array) leaves no
 *   before-image, so its revert finds no conflict;
 * - a revert that cannot give one deal its previous external_id back (a
 *   deal created since holds it) restores the others all the same;
 * - an upsert in the strict slow mode ends with exact counts;
 * - the CRM's own deals with their account and pipeline ids as hex are
 *   found, updated and restored, not duplicated.
 * Failure classes: 1 (priced scans and writes: the import ends, counts
 * exact), 4 (one deal's key or value of an odd shape is that deal's
 * matter, in the import and in its revert: the others of its batch are
 * written, a before-image too large to store or a restore refused
 * included), 6 (a huge cell as a key: compared whole, never cut), 11 (a
 * previous value of a type the import never writes, null, is put back and
 * recognised as such; an id as hex matched as the ObjectId it names), 12
 * (the hex form is of the import's own account only), 14 (each case but
 * the slow one fails without its fix: the long key was an E11000 line
 * error, the tag-only and null reverts were conflicts, the deal near
 * 16 MiB failed the whole import: the driver refused the batch's change
 * records at every attempt, the refused update's stray record was a
 * conflict, the refused restore stopped its ordered batch so no deal
 * after it was restored, at any run, the hex-account deal was duplicated).
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
#include "it_ctl.h"
#include "it_env.h"
#include "it_upsert.h"
#include "it_tmp.h"

#define CF IT_UPSERT_CF

static it_env_t env;

/* Runs `dealimportctl revert ID --json` and returns its reply. revert's
 * counts of what it leaves have no index: known scans of an operator's
 * command (docs/scaling.md), allowed around it alone. */
static json_t *revert_json(const bson_oid_t *qid)
{
    char id[25], out[8192], err[4096];
    const char *args[] = {"revert", id, "--json", NULL};
    int was = it_notablescan(&env, 0);
    json_t *j;
    bson_oid_to_string(qid, id);
    assert_int_equal(it_ctl_run(env.runtime, args, out, sizeof(out), err,
                                sizeof(err), 120000),
                     0);
    if (was > 0)
        it_notablescan(&env, 1);
    j = json_loads(out, 0, NULL);
    assert_non_null(j);
    return j;
}

/* The message of import qid's first line error, or "none" (into out). */
static const char *first_error(const bson_oid_t *qid, char *out, size_t len)
{
    mongoc_collection_t *c = it_coll(&env, "csv_import_errors");
    bson_t *f = BCON_NEW("queue_id", BCON_OID(qid));
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(c, f, NULL, NULL);
    const bson_t *d;
    snprintf(out, len, "none");
    if (mongoc_cursor_next(cur, &d))
        snprintf(out, len, "%s",
                 it_str(d, "message") ? it_str(d, "message") : "?");
    mongoc_cursor_destroy(cur);
    bson_destroy(f);
    mongoc_collection_destroy(c);
    return out;
}

static int64_t jint(json_t *j, const char *key)
{
    return (int64_t)json_integer_value(json_object_get(j, key));
}

/* Sets u on the deal of account with external_id ref. */
static void deal_set(const bson_oid_t *account, const char *ref, bson_t *u)
{
    mongoc_collection_t *c = it_coll(&env, "deals");
    bson_t *f = BCON_NEW("account_id", BCON_OID(account), "external_id",
                         BCON_UTF8(ref));
    bson_error_t e;
    if (!mongoc_collection_update_one(c, f, u, NULL, NULL, &e))
        fail_msg("%s", e.message);
    bson_destroy(f);
    bson_destroy(u);
    mongoc_collection_destroy(c);
}

/* A 5,000-byte external_id: the first import creates its deal, an upsert
 * and an update of the same key change its value. */
static void test_long_key(void **state)
{
    enum { KEYLEN = 5000 };
    char *key = malloc(KEYLEN + 1), *csv = malloc(KEYLEN + 256);
    bson_oid_t account, user, pipeline, qid;
    char a[25], qh[25];
    bson_t q;
    (void)state;
    assert_non_null(key);
    assert_non_null(csv);
    for (int i = 0; i < KEYLEN; i++)
        key[i] = (char)('A' + i % 26);
    key[KEYLEN] = '\0';
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &account, &pipeline);
    bson_oid_to_string(&account, a);
    snprintf(csv, KEYLEN + 256,
             "Ref,Name,Value,Stage,Region\n%s,Long,1,s1,r1\nS1,Short,2,s1,r1\n",
             key);
    it_put(&env, "imports/upsert/long-a.csv", csv, strlen(csv));
    it_upsert_enqueue(&env, "imports/upsert/long-a.csv", &account, &user,
                      &pipeline, NULL, NULL, it_upsert_mappings, &qid);
    it_upsert_run(&env, &qid, NULL, "completed", &q);
    bson_destroy(&q);
    for (int pass = 0; pass < 2; pass++) {
        const char *mode = pass == 0 ? "upsert" : "update";
        snprintf(csv, KEYLEN + 256,
                 "Ref,Name,Value,Stage,Region\n%s,Long,%d,s1,r1\n"
                 "S1,Short,%d,s1,r1\n",
                 key, 10 + pass, 20 + pass);
        it_put(&env, "imports/upsert/long-b.csv", csv, strlen(csv));
        it_upsert_enqueue(&env, "imports/upsert/long-b.csv", &account, &user,
                          &pipeline, mode, "external_id", it_upsert_mappings,
                          &qid);
        it_upsert_run(&env, &qid, NULL, "completed", &q);
        bson_destroy(&q);
        bson_oid_to_string(&qid, qh);
        if (it_upsert_count(&env, "csv_imports",
                            "{\"queue_id\":{\"$oid\":\"%s\"},"
                            "\"total_records_added\":0,"
                            "\"total_records_updated\":2,"
                            "\"total_errors\":0}",
                            qh) != 1) {
            char m[1024];
            fail_msg("%s: counts wrong; first line error: %s", mode,
                     first_error(&qid, m, sizeof(m)));
        }
        assert_int_equal(it_upsert_count(&env, "deals",
                                         "{\"account_id\":{\"$oid\":\"%s\"},"
                                         "\"import\":{\"$exists\":true},"
                                         "\"name\":\"Long\",\"value\":%d}",
                                         a, 10 + pass),
                         1);
    }
    assert_int_equal(it_upsert_count(&env, "deals",
                                     "{\"account_id\":{\"$oid\":\"%s\"},"
                                     "\"import\":{\"$exists\":true}}",
                                     a),
                     2);
    free(key);
    free(csv);
}

/* Deals R00001-R00003 lose their tags; an update of the same values adds
 * the import's tag "imported" and nothing else; its revert pulls the tag
 * from all three, with no conflict. */
static void test_revert_tags_only(void **state)
{
    static const char edited[] = "Ref,Name,Value,Stage,Region\n"
                                 "R00001,Deal 1,101,s1,r1\n"
                                 "R00002,Deal 2,102,s2,r2\n"
                                 "R00003,Deal 3,103,s3,r3\n";
    bson_oid_t account, user, pipeline, qid;
    char a[25];
    bson_t q;
    json_t *j;
    (void)state;
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &account, &pipeline);
    bson_oid_to_string(&account, a);
    it_upsert_write_base(&env, "imports/upsert/base-t.csv", 3);
    it_upsert_enqueue(&env, "imports/upsert/base-t.csv", &account, &user,
                      &pipeline, NULL, NULL, it_upsert_mappings, &qid);
    it_upsert_run(&env, &qid, NULL, "completed", &q);
    bson_destroy(&q);
    deal_set(&account, "R00001", BCON_NEW("$set", "{", "tags", "[", "]", "}"));
    deal_set(&account, "R00002",
             BCON_NEW("$set", "{", "tags", "[", BCON_UTF8("vip"), "]", "}"));
    deal_set(&account, "R00003", BCON_NEW("$unset", "{", "tags", "", "}"));
    it_put(&env, "imports/upsert/edited-t.csv", edited, strlen(edited));
    it_upsert_enqueue(&env, "imports/upsert/edited-t.csv", &account, &user,
                      &pipeline, "update", "external_id", it_upsert_mappings,
                      &qid);
    it_upsert_run(&env, &qid, NULL, "completed", &q);
    bson_destroy(&q);
    assert_int_equal(
        it_upsert_count(&env, "deals",
                        "{\"account_id\":{\"$oid\":\"%s\"},"
                        "\"import\":{\"$exists\":true},\"tags\":\"imported\"}",
                        a),
        3);
    j = revert_json(&qid);
    assert_int_equal(jint(j, "restored_deals"), 3);
    assert_int_equal(jint(j, "conflicts"), 0);
    assert_int_equal(jint(j, "deleted_deals"), 0);
    json_decref(j);
    assert_int_equal(
        it_upsert_count(&env, "deals",
                        "{\"account_id\":{\"$oid\":\"%s\"},"
                        "\"import\":{\"$exists\":true},\"tags\":\"imported\"}",
                        a),
        0);
    assert_int_equal(it_upsert_count(&env, "deals",
                                     "{\"account_id\":{\"$oid\":\"%s\"},"
                                     "\"external_id\":\"R00002\","
                                     "\"tags\":[\"vip\"]}",
                                     a),
                     1);
    /* again: the same figures, read from the marks */
    j = revert_json(&qid);
    assert_int_equal(jint(j, "restored_deals"), 3);
    assert_int_equal(jint(j, "conflicts"), 0);
    json_decref(j);
}

/* R00001's value and custom field were null before the update: the
 * revert puts null back, restored, not a conflict. */
static void test_revert_null_previous(void **state)
{
    static const char edited[] = "Ref,Name,Value,Stage,Region\n"
                                 "R00001,Deal 1,555,s1,north\n"
                                 "R00002,Deal 2,556,s2,r2\n";
    bson_oid_t account, user, pipeline, qid;
    char a[25];
    bson_t q;
    json_t *j;
    (void)state;
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &account, &pipeline);
    bson_oid_to_string(&account, a);
    it_upsert_write_base(&env, "imports/upsert/base-n.csv", 2);
    it_upsert_enqueue(&env, "imports/upsert/base-n.csv", &account, &user,
                      &pipeline, NULL, NULL, it_upsert_mappings, &qid);
    it_upsert_run(&env, &qid, NULL, "completed", &q);
    bson_destroy(&q);
    deal_set(&account, "R00001",
             BCON_NEW("$set", "{", "value", BCON_NULL, "additional_info." CF,
                      BCON_NULL, "}"));
    it_put(&env, "imports/upsert/edited-n.csv", edited, strlen(edited));
    it_upsert_enqueue(&env, "imports/upsert/edited-n.csv", &account, &user,
                      &pipeline, "update", "external_id", it_upsert_mappings,
                      &qid);
    it_upsert_run(&env, &qid, NULL, "completed", &q);
    bson_destroy(&q);
    j = revert_json(&qid);
    assert_int_equal(jint(j, "restored_deals"), 2);
    assert_int_equal(jint(j, "conflicts"), 0);
    json_decref(j);
    assert_int_equal(
        it_upsert_count(&env, "deals",
                        "{\"account_id\":{\"$oid\":\"%s\"},"
                        "\"external_id\":\"R00001\","
                        "\"value\":{\"$exists\":true,\"$eq\":null},"
                        "\"additional_info." CF
                        "\":{\"$exists\":true,\"$eq\":null}}",
                        a),
        1);
    assert_int_equal(it_upsert_count(&env, "deals",
                                     "{\"account_id\":{\"$oid\":\"%s\"},"
                                     "\"external_id\":\"R00002\","
                                     "\"value\":102}",
                                     a),
                     1);
}

/* R00001's description fills its deal to near BSON's 16 MiB; an update
 * puts a 60 kB description in its place (the deal shrinks): its
 * before-image, the old description and the new one, cannot be stored
 * (past 16 MiB), which is that line's error; R00002 of the same batch is
 * updated and the import completes. */
static void test_huge_previous_value(void **state)
{
    static const char maps[] =
        "{\"Ref\":\"external_id\",\"Name\":\"name\",\"Value\":\"value\","
        "\"Stage\":\"stage_id\",\"Notes\":\"description\"}";
    static const char base[] = "Ref,Name,Value,Stage,Notes\n"
                               "R00001,Deal 1,101,s1,n1\n"
                               "R00002,Deal 2,102,s2,n2\n";
    enum { BIG = 16 * 1024 * 1024 - 4096, CELL = 60000 };
    bson_oid_t account, user, pipeline, qid;
    char a[25], qh[25], *big = malloc(BIG + 1), *edited = malloc(CELL + 256);
    bson_t q, *u, set;
    size_t len;
    (void)state;
    assert_non_null(big);
    assert_non_null(edited);
    memset(big, 'd', BIG);
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &account, &pipeline);
    bson_oid_to_string(&account, a);
    it_put(&env, "imports/upsert/base-h.csv", base, strlen(base));
    it_upsert_enqueue(&env, "imports/upsert/base-h.csv", &account, &user,
                      &pipeline, NULL, NULL, maps, &qid);
    it_upsert_run(&env, &qid, NULL, "completed", &q);
    bson_destroy(&q);
    u = bson_new();
    BSON_APPEND_DOCUMENT_BEGIN(u, "$set", &set);
    bson_append_utf8(&set, "description", -1, big, BIG);
    bson_append_document_end(u, &set);
    deal_set(&account, "R00001", u);
    free(big);
    len = (size_t)snprintf(edited, 256,
                           "Ref,Name,Value,Stage,Notes\nR00001,Deal 1,101,s1,");
    memset(edited + len, 'e', CELL);
    len += CELL;
    len +=
        (size_t)snprintf(edited + len, 256, "\nR00002,Deal 2,102,s2,short\n");
    it_put(&env, "imports/upsert/edited-h.csv", edited, len);
    free(edited);
    it_upsert_enqueue(&env, "imports/upsert/edited-h.csv", &account, &user,
                      &pipeline, "update", "external_id", maps, &qid);
    it_upsert_run(&env, &qid, NULL, "completed", &q);
    bson_destroy(&q);
    bson_oid_to_string(&qid, qh);
    assert_int_equal(it_upsert_count(&env, "deals",
                                     "{\"account_id\":{\"$oid\":\"%s\"},"
                                     "\"import\":{\"$exists\":true},"
                                     "\"external_id\":\"R00002\","
                                     "\"description\":\"short\"}",
                                     a),
                     1);
    assert_int_equal(
        it_upsert_count(&env, "csv_imports",
                        "{\"queue_id\":{\"$oid\":\"%s\"},"
                        "\"total_records_updated\":1,\"total_errors\":1}",
                        qh),
        1);
    assert_int_equal(
        it_upsert_count(&env, "csv_import_errors",
                        "{\"queue_id\":{\"$oid\":\"%s\"},\"line\":1,"
                        "\"message\":{\"$regex\":\"^the previous values of "
                        "this deal are too large to record\"}}",
                        qh),
        1);
    /* R00001 as it was, and no before-image of it */
    assert_int_equal(it_upsert_count(&env, "deals",
                                     "{\"account_id\":{\"$oid\":\"%s\"},"
                                     "\"import\":{\"$exists\":true},"
                                     "\"external_id\":\"R00001\","
                                     "\"last_import\":{\"$exists\":false}}",
                                     a),
                     1);
    assert_int_equal(it_upsert_count(&env, "deal_import_changes",
                                     "{\"queue_id\":{\"$oid\":\"%s\"}}", qh),
                     1);
}

/* R00002's tags are a string, not an array: the update that adds the
 * import's tag is refused by the database, that line's error. The deal
 * was not changed, so no before-image of it stays, and the revert
 * restores R00001 and R00003 and reports no conflict. */
static void test_refused_update_leaves_no_record(void **state)
{
    static const char edited[] = "Ref,Name,Value,Stage,Region\n"
                                 "R00001,Deal 1,201,s1,r1\n"
                                 "R00002,Deal 2,202,s2,r2\n"
                                 "R00003,Deal 3,203,s3,r3\n";
    bson_oid_t account, user, pipeline, qid;
    char a[25], qh[25];
    bson_t q;
    json_t *j;
    (void)state;
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &account, &pipeline);
    bson_oid_to_string(&account, a);
    it_upsert_write_base(&env, "imports/upsert/base-x.csv", 3);
    it_upsert_enqueue(&env, "imports/upsert/base-x.csv", &account, &user,
                      &pipeline, NULL, NULL, it_upsert_mappings, &qid);
    it_upsert_run(&env, &qid, NULL, "completed", &q);
    bson_destroy(&q);
    deal_set(&account, "R00002",
             BCON_NEW("$set", "{", "tags", BCON_UTF8("vip"), "}"));
    it_put(&env, "imports/upsert/edited-x.csv", edited, strlen(edited));
    it_upsert_enqueue(&env, "imports/upsert/edited-x.csv", &account, &user,
                      &pipeline, "update", "external_id", it_upsert_mappings,
                      &qid);
    it_upsert_run(&env, &qid, NULL, "completed", &q);
    bson_destroy(&q);
    bson_oid_to_string(&qid, qh);
    assert_int_equal(
        it_upsert_count(&env, "csv_imports",
                        "{\"queue_id\":{\"$oid\":\"%s\"},"
                        "\"total_records_updated\":2,\"total_errors\":1}",
                        qh),
        1);
    assert_int_equal(
        it_upsert_count(&env, "csv_import_errors",
                        "{\"queue_id\":{\"$oid\":\"%s\"},\"line\":2,"
                        "\"message\":{\"$regex\":\"^the database refused "
                        "this deal\"}}",
                        qh),
        1);
    assert_int_equal(it_upsert_count(&env, "deals",
                                     "{\"account_id\":{\"$oid\":\"%s\"},"
                                     "\"import\":{\"$exists\":true},"
                                     "\"external_id\":\"R00002\","
                                     "\"value\":102,\"tags\":\"vip\"}",
                                     a),
                     1);
    assert_int_equal(it_upsert_count(&env, "deal_import_changes",
                                     "{\"queue_id\":{\"$oid\":\"%s\"}}", qh),
                     2);
    j = revert_json(&qid);
    assert_int_equal(jint(j, "restored_deals"), 2);
    assert_int_equal(jint(j, "conflicts"), 0);
    json_decref(j);
}

/* The id of the deal of account with external_id ref, as hex. */
static void deal_id_of(const bson_oid_t *account, const char *ref, char out[25])
{
    mongoc_collection_t *c = it_coll(&env, "deals");
    bson_t *f = BCON_NEW("account_id", BCON_OID(account), "external_id",
                         BCON_UTF8(ref));
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(c, f, NULL, NULL);
    const bson_t *d;
    bson_oid_t id;
    assert_true(mongoc_cursor_next(cur, &d));
    assert_int_equal(dip_bson_get_oid(d, "_id", &id), 0);
    bson_oid_to_string(&id, out);
    mongoc_cursor_destroy(cur);
    bson_destroy(f);
    mongoc_collection_destroy(c);
}

/* An update by deal_id renames R00001's external_id to X00001 and the
 * names of R00002 and R00003; a deal with external_id R00001 is created
 * since. The revert cannot give R00001 back (the unique index refuses
 * it): that deal is left, and the other two are restored all the same. */
static void test_revert_one_refused(void **state)
{
    static const char maps[] =
        "{\"Id\":\"deal_id\",\"Ref\":\"external_id\",\"Name\":\"name\","
        "\"Stage\":\"stage_id\"}";
    bson_oid_t account, user, pipeline, qid;
    char a[25], id1[25], id2[25], id3[25], edited[512];
    mongoc_collection_t *c;
    bson_t q, *doc;
    json_t *j;
    (void)state;
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &account, &pipeline);
    bson_oid_to_string(&account, a);
    it_upsert_write_base(&env, "imports/upsert/base-o.csv", 3);
    it_upsert_enqueue(&env, "imports/upsert/base-o.csv", &account, &user,
                      &pipeline, NULL, NULL, it_upsert_mappings, &qid);
    it_upsert_run(&env, &qid, NULL, "completed", &q);
    bson_destroy(&q);
    deal_id_of(&account, "R00001", id1);
    deal_id_of(&account, "R00002", id2);
    deal_id_of(&account, "R00003", id3);
    snprintf(edited, sizeof(edited),
             "Id,Ref,Name,Stage\n%s,X00001,Deal 1,\n%s,R00002,Two,\n"
             "%s,R00003,Three,\n",
             id1, id2, id3);
    it_put(&env, "imports/upsert/edited-o.csv", edited, strlen(edited));
    it_upsert_enqueue(&env, "imports/upsert/edited-o.csv", &account, &user,
                      &pipeline, "update", "deal_id", maps, &qid);
    it_upsert_run(&env, &qid, NULL, "completed", &q);
    bson_destroy(&q);
    c = it_coll(&env, "deals");
    doc = BCON_NEW("account_id", BCON_OID(&account), "pipeline_id",
                   BCON_OID(&pipeline), "name", BCON_UTF8("Since"),
                   "external_id", BCON_UTF8("R00001"));
    assert_true(mongoc_collection_insert_one(c, doc, NULL, NULL, NULL));
    bson_destroy(doc);
    mongoc_collection_destroy(c);
    j = revert_json(&qid);
    assert_int_equal(jint(j, "restored_deals"), 2);
    assert_int_equal(jint(j, "restore_refused"), 1);
    assert_int_equal(jint(j, "conflicts"), 0);
    json_decref(j);
    assert_int_equal(it_upsert_count(&env, "deals",
                                     "{\"account_id\":{\"$oid\":\"%s\"},"
                                     "\"import\":{\"$exists\":true},"
                                     "\"name\":{\"$in\":[\"Deal 2\","
                                     "\"Deal 3\"]}}",
                                     a),
                     2);
    assert_int_equal(it_upsert_count(&env, "deals",
                                     "{\"account_id\":{\"$oid\":\"%s\"},"
                                     "\"import\":{\"$exists\":true},"
                                     "\"external_id\":\"X00001\"}",
                                     a),
                     1);
}

/* The strict slow mode (every document examined and written priced):
 * an upsert of 3,000 changed rows and 1,000 new ones over 3,000 deals,
 * in batches of 500, ends with exact counts and one before-image per
 * changed deal. */
static void test_slow_upsert(void **state)
{
    enum { BASE = 3000, NEW = 1000 };
    static const char *const extra[] = {"DEALIMPORT_BATCH_ROWS=500", NULL};
    bson_oid_t account, user, pipeline, qid;
    char qh[25], path[256];
    FILE *f;
    bson_t q;
    (void)state;
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &account, &pipeline);
    it_upsert_write_base(&env, "imports/upsert/base-s.csv", BASE);
    it_upsert_enqueue(&env, "imports/upsert/base-s.csv", &account, &user,
                      &pipeline, NULL, NULL, it_upsert_mappings, &qid);
    it_upsert_run(&env, &qid, NULL, "completed", &q);
    bson_destroy(&q);
    snprintf(path, sizeof(path), "%s/it-upsert-slow-%d.csv", it_tmpdir(),
             (int)getpid());
    f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "Ref,Name,Value,Stage,Region\n");
    for (int i = 1; i <= BASE; i++)
        fprintf(f, "R%05d,Deal %d,%d,s%d,r%d\n", i, i, 5000 + i, i % 5, i % 7);
    for (int i = 1; i <= NEW; i++)
        fprintf(f, "N%05d,New %d,1,s1,n\n", i, i);
    fclose(f);
    it_put_file(&env, "imports/upsert/edited-s.csv", path);
    unlink(path);
    it_upsert_enqueue(&env, "imports/upsert/edited-s.csv", &account, &user,
                      &pipeline, "upsert", "external_id", it_upsert_mappings,
                      &qid);
    assert_int_equal(it_dev_slow(&env, "{\"scan_us\": 35, \"write_us\": 30}"),
                     0);
    it_upsert_run(&env, &qid, extra, "completed", &q);
    bson_destroy(&q);
    assert_int_equal(it_dev_slow(&env, "{\"scan_us\": 0, \"write_us\": 0}"), 0);
    bson_oid_to_string(&qid, qh);
    assert_int_equal(
        it_upsert_count(&env, "csv_imports",
                        "{\"queue_id\":{\"$oid\":\"%s\"},"
                        "\"total_records_added\":%d,"
                        "\"total_records_updated\":%d,"
                        "\"total_records_unchanged\":0,\"total_errors\":0}",
                        qh, NEW, BASE),
        1);
    assert_int_equal(it_upsert_count(&env, "deal_import_changes",
                                     "{\"queue_id\":{\"$oid\":\"%s\"}}", qh),
                     BASE);
}

/* Deals the CRM wrote with its account and pipeline ids as 24 hex digits
 * (the data contract matches both forms): an upsert finds and updates
 * C1 instead of creating a second deal with its key, and the revert puts
 * its value back. */
static void test_hex_account_deals(void **state)
{
    static const char edited[] = "Ref,Name,Value,Stage,Region\n"
                                 "C1,CRM 1,50,s1,r1\n"
                                 "C3,New,1,s1,n\n";
    bson_oid_t account, user, pipeline, qid;
    char a[25], p[25], qh[25];
    mongoc_collection_t *c;
    bson_t q, *doc;
    json_t *j;
    (void)state;
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &account, &pipeline);
    bson_oid_to_string(&account, a);
    bson_oid_to_string(&pipeline, p);
    c = it_coll(&env, "deals");
    for (int i = 1; i <= 2; i++) {
        char ref[8], name[16];
        snprintf(ref, sizeof(ref), "C%d", i);
        snprintf(name, sizeof(name), "CRM %d", i);
        doc = BCON_NEW("account_id", BCON_UTF8(a), "pipeline_id", BCON_UTF8(p),
                       "name", BCON_UTF8(name), "external_id", BCON_UTF8(ref),
                       "value", BCON_DOUBLE(i), "status", BCON_UTF8("open"));
        assert_true(mongoc_collection_insert_one(c, doc, NULL, NULL, NULL));
        bson_destroy(doc);
    }
    mongoc_collection_destroy(c);
    it_put(&env, "imports/upsert/edited-hex.csv", edited, strlen(edited));
    it_upsert_enqueue(&env, "imports/upsert/edited-hex.csv", &account, &user,
                      &pipeline, "upsert", "external_id", it_upsert_mappings,
                      &qid);
    it_upsert_run(&env, &qid, NULL, "completed", &q);
    bson_destroy(&q);
    bson_oid_to_string(&qid, qh);
    assert_int_equal(
        it_upsert_count(&env, "csv_imports",
                        "{\"queue_id\":{\"$oid\":\"%s\"},"
                        "\"total_records_added\":1,"
                        "\"total_records_updated\":1,\"total_errors\":0}",
                        qh),
        1);
    assert_int_equal(it_upsert_count(&env, "deals",
                                     "{\"account_id\":{\"$in\":[{\"$oid\":"
                                     "\"%s\"},\"%s\"]},\"external_id\":"
                                     "\"C1\"}",
                                     a, a),
                     1);
    assert_int_equal(it_upsert_count(&env, "deals",
                                     "{\"account_id\":\"%s\",\"external_id\":"
                                     "\"C1\",\"value\":50}",
                                     a),
                     1);
    j = revert_json(&qid);
    assert_int_equal(jint(j, "restored_deals"), 1);
    assert_int_equal(jint(j, "deleted_deals"), 1);
    json_decref(j);
    assert_int_equal(it_upsert_count(&env, "deals",
                                     "{\"account_id\":\"%s\",\"external_id\":"
                                     "\"C1\",\"value\":1}",
                                     a),
                     1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_long_key),
        cmocka_unit_test(test_revert_tags_only),
        cmocka_unit_test(test_revert_null_previous),
        cmocka_unit_test(test_huge_previous_value),
        cmocka_unit_test(test_refused_update_leaves_no_record),
        cmocka_unit_test(test_revert_one_refused),
        cmocka_unit_test(test_slow_upsert),
        cmocka_unit_test(test_hex_account_deals),
    };
    int rc = it_env_init(&env, "wupsedges");
    if (rc)
        return rc;
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    it_env_release(&env);
    return rc;
}
