/*
 * The success file (additional_data.success_file) of an upsert: B deals
 * R00001.. from a first import, then an edited file: R<i> for i % 3 == 0
 * as it is (unchanged), the others with a new value and the region cell
 * left empty (updated, the region kept), B / 10 new keys (created), a row
 * without a name and without a key, and R00001 again (two line errors).
 * - mixed: csv_imports counts them; its success_file and the queue
 *   document's name the file beside the source; the file lists every
 *   written line once, in line order, with its action, the deal's id (the
 *   deal that holds the key now) and the row's cells, the empty region
 *   cell empty; the line errors are not in it;
 * - the same with the worker SIGKILLed in the middle (small batches): the
 *   batches done again after the resume list their lines once, with the
 *   same actions and ids;
 * - a create import that asks for one: every line created, its deal's id.
 *
 * Failure classes: 1 and 2 (one record per batch, replaced by its
 * (queue_id, first_line), one find only for lines a dead run inserted;
 * the follow-up reads the records in cursor batches, on their unique
 * index), 5 and a resume or takeover (a batch done again finds its own
 * writes: created or updated, and replaces the record; the reader takes
 * each line once: the second case), 6 (cells neutralized and quoted as in
 * the error file; the output is one row per written input row plus three
 * short cells), 7 and 8 (the source is read again through storage's own
 * deadlines and must be the object the records name, else the step is
 * given up at once: the source changed or gone never loops), 9 (two
 * imports of one file: each its own key, by its queue id; the cleanup of
 * the source waits for the success file, success_file_wanted), 10 (the
 * step is bounded like the error file's and recorded given up), 11
 * (success_file only as a boolean: test_wrk_match.c; the follow-up reads
 * it the same way), 12 (the records are by queue id; the deal ids found by
 * the import's account), 14 (the kill case checks the kill landed in the
 * middle: one "killed by signal 9" in the log and lines after it).
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

#include <jansson.h>

#include "dip_bson.h"
#include "it_check.h"
#include "it_env.h"
#include "it_upsert.h"
#include "it_tmp.h"

static it_env_t env;

/* A test's failure leaves no supervisor running for the next one, nor the
 * slow prices test_killed sets. */
static int teardown(void **state)
{
    (void)state;
    (void)it_dev_slow(&env, "{\"write_us\": 0}");
    it_stop_all(&env);
    return 0;
}

/* The edited file of b base keys, as the header comment says. */
static void write_edited(const char *key, int b)
{
    char path[256];
    FILE *f;
    snprintf(path, sizeof(path), "%s/it-success-%d.csv", it_tmpdir(),
             (int)getpid());
    f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "Ref,Name,Value,Stage,Region\n");
    for (int i = 1; i <= b; i++)
        if (i % 3 == 0)
            it_upsert_base_row(f, i);
        else
            fprintf(f, "R%05d,Deal %d,%d,s%d,\n", i, i, 5000 + i, i % 5);
    for (int i = 1; i <= b / 10; i++)
        fprintf(f, "N%05d,New %d,%d,s1,n%d\n", i, i, i, i);
    fprintf(f, ",,5,s1,x\n");
    fprintf(f, "R00001,Deal 1,7,s1,r1\n");
    fclose(f);
    it_put_file(&env, key, path);
    unlink(path);
}

/* The _id (hex) of the account's deal with external_id ref. */
static void deal_of(const bson_oid_t *account, const char *ref, char out[25])
{
    mongoc_collection_t *c = it_coll(&env, "deals");
    bson_t *f = BCON_NEW("account_id", BCON_OID(account), "external_id",
                         BCON_UTF8(ref));
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(c, f, NULL, NULL);
    const bson_t *doc;
    bson_oid_t id;
    out[0] = '\0';
    if (mongoc_cursor_next(cur, &doc) && dip_bson_get_oid(doc, "_id", &id) == 0)
        bson_oid_to_string(&id, out);
    mongoc_cursor_destroy(cur);
    bson_destroy(f);
    mongoc_collection_destroy(c);
}

/* Waits for the follow-ups to name the success file; returns its key
 * (from csv_imports, malloc'd) after checking the figures. */
static char *check_import(const bson_oid_t *qid, int b)
{
    char hex[25], filter[200];
    bson_t imp, q;
    mongoc_collection_t *c;
    bson_t *f;
    mongoc_cursor_t *cur;
    const bson_t *doc;
    char *key;
    int64_t updated = b - b / 3, unchanged = b / 3, created = b / 10;
    bson_oid_to_string(qid, hex);
    snprintf(filter, sizeof(filter),
             "{\"queue_id\":{\"$oid\":\"%s\"},\"success_file.key\":"
             "{\"$exists\":true}}",
             hex);
    for (int i = 0; i < 600 && it_count(&env, "csv_imports", filter) != 1; i++)
        usleep(100000);
    c = it_coll(&env, "csv_imports");
    f = BCON_NEW("queue_id", BCON_OID(qid));
    cur = mongoc_collection_find_with_opts(c, f, NULL, NULL);
    assert_true(mongoc_cursor_next(cur, &doc));
    bson_copy_to(doc, &imp);
    mongoc_cursor_destroy(cur);
    bson_destroy(f);
    mongoc_collection_destroy(c);
    if (dip_bson_get_str(&imp, "success_file.key") == NULL)
        fail_msg("no success file: %s", it_str(&imp, "success_file.failed"));
    assert_int_equal(dip_bson_get_int(&imp, "total_records_updated", -1),
                     updated);
    assert_int_equal(dip_bson_get_int(&imp, "total_records_unchanged", -1),
                     unchanged);
    assert_int_equal(dip_bson_get_int(&imp, "total_records_added", -1),
                     created);
    assert_int_equal(dip_bson_get_int(&imp, "total_errors", -1), 2);
    assert_int_equal(dip_bson_get_int(&imp, "success_file.rows", -1),
                     updated + unchanged + created);
    key = strdup(dip_bson_get_str(&imp, "success_file.key"));
    /* beside the source, named by the import */
    assert_non_null(strstr(key, hex));
    assert_non_null(strstr(key, ".success.csv"));
    /* the queue document names it too */
    assert_int_equal(it_wait_final(&env, qid, 1000, &q), 0);
    assert_non_null(it_str(&q, "success_file.key"));
    assert_string_equal(it_str(&q, "success_file.key"), key);
    bson_destroy(&q);
    bson_destroy(&imp);
    return key;
}

/* Every line once, in order, with its action, deal and cells. */
static void check_file(const bson_oid_t *qid, const bson_oid_t *account, int b)
{
    json_t *rows = it_upsert_success_rows(&env, qid, NULL), *row;
    size_t i;
    long long last = 0;
    int n_upd = 0, n_unch = 0, n_new = 0;
    json_array_foreach(rows, i, row)
    {
        const char *line, *action, *id, *ref, *value, *region;
        char want_id[25];
        int k;
        assert_int_equal(json_array_size(row), 8);
        line = json_string_value(json_array_get(row, 0));
        action = json_string_value(json_array_get(row, 1));
        id = json_string_value(json_array_get(row, 2));
        ref = json_string_value(json_array_get(row, 3));
        value = json_string_value(json_array_get(row, 5));
        region = json_string_value(json_array_get(row, 7));
        if (i == 0) {
            assert_string_equal(line, "Line");
            assert_string_equal(action, "Action");
            assert_string_equal(id, "Deal id");
            assert_string_equal(ref, "Ref");
            assert_string_equal(region, "Region");
            continue;
        }
        /* each line once, in order */
        assert_true(atoll(line) > last);
        last = atoll(line);
        deal_of(account, ref, want_id);
        if (strcmp(id, want_id) != 0)
            fail_msg("line %s (%s): deal %s, the key's deal is %s", line, ref,
                     id, want_id);
        k = atoi(ref + 1);
        if (ref[0] == 'N') {
            assert_string_equal(action, "created");
            n_new++;
        } else if (k % 3 == 0) {
            assert_string_equal(action, "unchanged");
            n_unch++;
        } else {
            char v[16];
            assert_string_equal(action, "updated");
            snprintf(v, sizeof(v), "%d", 5000 + k);
            assert_string_equal(value, v);
            assert_string_equal(region, ""); /* as the file had it */
            n_upd++;
        }
    }
    assert_int_equal(n_upd, b - b / 3);
    assert_int_equal(n_unch, b / 3);
    assert_int_equal(n_new, b / 10);
    json_decref(rows);
}

/* The first import of b deals, then the edited upsert with a success
 * file asked for; its queue id in qid. */
static void prepare(int b, bson_oid_t *account, bson_oid_t *qid,
                    const char *tag)
{
    bson_oid_t user, pipeline, first;
    char base[512], edited[128];
    bson_t q;
    snprintf(base, sizeof(base), "imports/success/%s-%d-base.csv", tag,
             (int)getpid());
    snprintf(edited, sizeof(edited), "imports/success/%s-%d.csv", tag,
             (int)getpid());
    bson_oid_init(account, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, account, &pipeline);
    it_upsert_write_base(&env, base, b);
    it_upsert_enqueue(&env, base, account, &user, &pipeline, NULL, NULL,
                      it_upsert_mappings, &first);
    it_upsert_run(&env, &first, NULL, "completed", &q);
    bson_destroy(&q);
    write_edited(edited, b);
    it_upsert_enqueue(&env, edited, account, &user, &pipeline, "upsert",
                      "external_id", it_upsert_mappings, qid);
    it_upsert_want_success(&env, qid);
}

static void test_mixed(void **state)
{
    static const char *const extra[] = {"DEALIMPORT_BATCH_ROWS=25", NULL};
    bson_oid_t account, qid;
    char logpath[256], *key;
    pid_t sup;
    bson_t q;
    (void)state;
    prepare(300, &account, &qid, "mixed");
    snprintf(logpath, sizeof(logpath), "%s/it-success-%d.log", it_tmpdir(),
             (int)getpid());
    sup = it_supervisor_start(&env, extra, logpath);
    assert_true(sup > 0);
    assert_int_equal(it_wait_final(&env, &qid, 300000, &q), 0);
    assert_string_equal(it_str(&q, "status"), "completed");
    bson_destroy(&q);
    key = check_import(&qid, 300);
    check_file(&qid, &account, 300);
    free(key);
    assert_int_equal(it_process_stop(sup, SIGTERM, 30000), 0);
}

static void test_killed(void **state)
{
    static const char *const extra[] = {"DEALIMPORT_BATCH_ROWS=10", NULL};
    bson_oid_t account, qid;
    char logpath[256], *key;
    pid_t sup, w;
    bson_t q;
    (void)state;
    prepare(3000, &account, &qid, "killed");
    snprintf(logpath, sizeof(logpath), "%s/it-success-kill-%d.log", it_tmpdir(),
             (int)getpid());
    /* Each deal written costs 2 ms on the server: the 3,000 rows take 6 s
     * at the least, so the kill lands mid-import on a machine of any speed
     * (the import could finish before its first progress was written). */
    assert_int_equal(it_dev_slow(&env, "{\"write_us\": 2000}"), 0);
    sup = it_supervisor_start(&env, extra, logpath);
    assert_true(sup > 0);
    assert_int_equal(it_wait_int(&env, &qid, "progress.lines", 600, 120000), 0);
    w = it_worker_pid(&qid);
    assert_true(w > 0);
    assert_int_equal(kill(w, SIGKILL), 0);
    assert_int_equal(it_dev_slow(&env, "{\"write_us\": 0}"), 0);
    assert_int_equal(it_wait_final(&env, &qid, 300000, &q), 0);
    assert_string_equal(it_str(&q, "status"), "completed");
    bson_destroy(&q);
    /* the kill landed in the middle of the import */
    assert_int_equal(it_log_count(logpath, "killed by signal 9"), 1);
    key = check_import(&qid, 3000);
    check_file(&qid, &account, 3000);
    free(key);
    assert_int_equal(it_process_stop(sup, SIGTERM, 30000), 0);
}

/* A create import asks for one too: every line created, with its deal. */
static void test_create(void **state)
{
    bson_oid_t account, user, pipeline, qid;
    json_t *rows, *row;
    size_t i;
    bson_t q;
    char key[128];
    (void)state;
    snprintf(key, sizeof(key), "imports/success/create-%d.csv", (int)getpid());
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &account, &pipeline);
    it_upsert_write_base(&env, key, 50);
    it_upsert_enqueue(&env, key, &account, &user, &pipeline, NULL, NULL,
                      it_upsert_mappings, &qid);
    it_upsert_want_success(&env, &qid);
    it_upsert_run(&env, &qid, NULL, "completed", &q);
    bson_destroy(&q);
    rows = it_upsert_success_rows(&env, &qid, NULL);
    assert_int_equal(json_array_size(rows), 51);
    json_array_foreach(rows, i, row)
    {
        char want_id[25];
        if (i == 0)
            continue;
        assert_string_equal(json_string_value(json_array_get(row, 1)),
                            "created");
        deal_of(&account, json_string_value(json_array_get(row, 3)), want_id);
        assert_string_equal(json_string_value(json_array_get(row, 2)), want_id);
    }
    json_decref(rows);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_mixed, teardown),
        cmocka_unit_test_teardown(test_killed, teardown),
        cmocka_unit_test_teardown(test_create, teardown),
    };
    int rc = it_env_init(&env, "wsuccess");
    if (rc)
        return rc;
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    it_env_release(&env);
    return rc;
}
