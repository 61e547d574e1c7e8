/*
 * Acceptance, dry run: a queue document with `dry_run: true` goes through
 * the real supervisor and worker like an import (read, mapped, validated,
 * stages looked up) and writes no deal and no stage. csv_imports says what
 * it would do: would_add the good rows, the new stages it would create
 * (count, names), the line errors stored as for an import. A stage that
 * exists is not new; the new-stage cap makes rows past it line errors; a
 * resume from a checkpoint adds to what the earlier runs counted.
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
#include "it_gen.h"
#include "it_tmp.h"

static it_env_t env;

/* Queues key as a dry run (before any supervisor sees it). */
static void enqueue_dry(const char *key, const bson_oid_t *account,
                        const bson_oid_t *user, const bson_oid_t *pipeline,
                        const char *mappings, bson_oid_t *qid)
{
    bson_t *set = BCON_NEW("dry_run", BCON_BOOL(true));
    it_enqueue(&env, key, account, user, pipeline, mappings, qid);
    it_queue_set(&env, qid, set);
    bson_destroy(set);
}

/* Runs a supervisor (with extra settings) until the import qid ends, then
 * stops it; the queue document goes to q, its csv_imports document to imp
 * (both initialized here); show, when not NULL, gets what `dealimportctl
 * show` says of the import before the supervisor stops. */
static void run_until_final(const bson_oid_t *qid, const char *const *extra,
                            const char *name, bson_t *q, bson_t *imp,
                            char *show, size_t showlen)
{
    char logpath[256];
    mongoc_collection_t *c;
    bson_t *filter;
    const bson_t *doc;
    mongoc_cursor_t *cur;
    pid_t sup;
    int st;
    snprintf(logpath, sizeof(logpath), "%s/it-dry-run-%s-%d.log", it_tmpdir(),
             name, (int)getpid());
    sup = it_supervisor_start(&env, extra, logpath);
    assert_true(sup > 0);
    if (it_wait_final(&env, qid, 300000, q) != 0)
        fail_msg("the dry run did not end; log in %s", logpath);
    if (show) {
        char hex[25];
        const char *args[] = {"show", hex, NULL};
        bson_oid_to_string(qid, hex);
        assert_int_equal(
            it_ctl_run(env.runtime, args, show, showlen, NULL, 0, 30000), 0);
    }
    st = it_process_stop(sup, SIGTERM, 30000);
    assert_true(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_int_equal(it_log_trouble(logpath), 0);
    if (strcmp(it_str(q, "status"), "completed") != 0)
        fail_msg("dry run '%s': '%s'; log in %s", it_str(q, "status"),
                 it_str(q, "error"), logpath);
    c = it_coll(&env, "csv_imports");
    filter = BCON_NEW("queue_id", BCON_OID(qid));
    cur = mongoc_collection_find_with_opts(c, filter, NULL, NULL);
    bson_init(imp);
    if (!mongoc_cursor_next(cur, &doc))
        fail_msg("no csv_imports document; log in %s", logpath);
    bson_copy_to_excluding_noinit(doc, imp, "_id", NULL);
    mongoc_cursor_destroy(cur);
    bson_destroy(filter);
    mongoc_collection_destroy(c);
}

static int get_bool(const bson_t *doc, const char *key)
{
    bson_iter_t it;
    if (!bson_iter_init_find(&it, doc, key) || !BSON_ITER_HOLDS_BOOL(&it))
        return -1;
    return bson_iter_bool(&it);
}

/* The new_stages.names of csv_imports: how many, each checked with
 * it_gen_uses_stage when gen is given; first gets names[0]. */
static int64_t check_names(const bson_t *imp, const it_gen_t *gen,
                           const char *absent, char *first, size_t firstlen)
{
    bson_iter_t it, a;
    int64_t n = 0;
    assert_true(bson_iter_init(&it, imp) &&
                bson_iter_find_descendant(&it, "new_stages.names", &it) &&
                BSON_ITER_HOLDS_ARRAY(&it) && bson_iter_recurse(&it, &a));
    while (bson_iter_next(&a)) {
        const char *name;
        assert_true(BSON_ITER_HOLDS_UTF8(&a));
        name = bson_iter_utf8(&a, NULL);
        if (gen && !it_gen_uses_stage(gen, name))
            fail_msg("new stage '%s' is not one the file uses", name);
        if (absent && strcmp(name, absent) == 0)
            fail_msg("stage '%s' exists but is listed as new", name);
        if (n == 0 && first)
            snprintf(first, firstlen, "%s", name);
        n++;
    }
    return n;
}

static void test_dry_run_of_a_generated_file(void **state)
{
    it_gen_t *gen = it_gen_new(10000, 20261201u, 50, 0);
    bson_oid_t account, user, pipeline, qid, again;
    uint64_t good, bad, stages;
    char path[256], first[1024] = "";
    it_tally_t t;
    bson_t q, imp;
    (void)state;
    assert_non_null(gen);
    good = it_gen_count(gen, IT_ROW_GOOD);
    bad = it_gen_count(gen, IT_ROW_KINDS);
    stages = it_gen_stage_count(gen);
    assert_true(bad > 0 && stages > 1);
    snprintf(path, sizeof(path), "%s/it-dry-run-%d.csv", it_tmpdir(),
             (int)getpid());
    assert_int_equal(it_gen_write(gen, path), 0);
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &account, &pipeline);
    it_put_file(&env, "imports/deals/dry/10k.csv", path);
    unlink(path);
    enqueue_dry("imports/deals/dry/10k.csv", &account, &user, &pipeline,
                it_gen_mappings(), &qid);
    {
        static const char *const extra[] = {"DEALIMPORT_MAX_NEW_STAGES=1000",
                                            NULL};
        run_until_final(&qid, extra, "gen", &q, &imp, NULL, 0);
    }

    /* Nothing written but the line errors. */
    assert_int_equal(it_count_id(&env, "deals", "import.queue_id", &qid), 0);
    assert_int_equal(it_count_id(&env, "deals", "pipeline_id", &pipeline), 0);
    assert_int_equal(
        it_count_id(&env, "pipeline_stages", "pipeline_id", &pipeline), 0);
    assert_int_equal(it_check_import(&env, &qid, &pipeline, gen, &t), 0);
    assert_int_equal(t.deals, 0);
    assert_int_equal(t.errors, bad);
    assert_int_equal(t.error_twice, 0);
    assert_int_equal(t.error_wrong, 0);
    assert_int_equal(t.error_missing, 0);

    /* The verdict. */
    assert_string_equal(it_str(&imp, "status"), "completed");
    assert_int_equal(get_bool(&imp, "dry_run"), 1);
    assert_int_equal(dip_bson_get_int(&imp, "total_records", -1), 10000);
    assert_int_equal(dip_bson_get_int(&imp, "would_add", -1), (int64_t)good);
    assert_int_equal(dip_bson_get_int(&imp, "total_records_added", -1), 0);
    assert_int_equal(dip_bson_get_int(&imp, "total_errors", -1), (int64_t)bad);
    assert_int_equal(dip_bson_get_int(&imp, "new_stages.count", -1),
                     (int64_t)stages);
    assert_int_equal(check_names(&imp, gen, NULL, first, sizeof(first)),
                     (int64_t)(stages < 100 ? stages : 100));
    bson_destroy(&q);
    bson_destroy(&imp);

    /* One of those stages made beforehand, as the import finds them: the
     * same file again counts it as existing, not new. */
    {
        mongoc_collection_t *c = it_coll(&env, "pipeline_stages");
        bson_t *stage =
            BCON_NEW("account_id", BCON_OID(&account), "pipeline_id",
                     BCON_OID(&pipeline), "name", BCON_UTF8(first));
        assert_true(mongoc_collection_insert_one(c, stage, NULL, NULL, NULL));
        bson_destroy(stage);
        mongoc_collection_destroy(c);
    }
    enqueue_dry("imports/deals/dry/10k.csv", &account, &user, &pipeline,
                it_gen_mappings(), &again);
    {
        static const char *const extra[] = {"DEALIMPORT_MAX_NEW_STAGES=1000",
                                            NULL};
        run_until_final(&again, extra, "gen-again", &q, &imp, NULL, 0);
    }
    assert_int_equal(dip_bson_get_int(&imp, "would_add", -1), (int64_t)good);
    assert_int_equal(dip_bson_get_int(&imp, "new_stages.count", -1),
                     (int64_t)stages - 1);
    check_names(&imp, gen, first, NULL, 0);
    assert_int_equal(it_count_id(&env, "deals", "import.queue_id", &again), 0);
    assert_int_equal(
        it_count_id(&env, "pipeline_stages", "pipeline_id", &pipeline), 1);
    bson_destroy(&q);
    bson_destroy(&imp);
    it_gen_destroy(&gen);
}

static const char small_mappings[] =
    "{\"Deal Name\":\"name\",\"Value\":\"value\",\"Stage\":\"stage_id\"}";
static const char small_file[] = "Deal Name,Value,Stage\n"
                                 "D1,100,Alpha\n"
                                 "D2,200,Beta\n"
                                 "D3,300,Gamma\n"
                                 "D4,400,Alpha\n"
                                 "D5,500,Delta\n";

/* Past DEALIMPORT_MAX_NEW_STAGES, rows that need another new stage are
 * line errors, as in an import. */
static void test_dry_run_new_stage_cap(void **state)
{
    static const char *const extra[] = {"DEALIMPORT_MAX_NEW_STAGES=2", NULL};
    bson_oid_t account, user, pipeline, qid;
    bson_t q, imp;
    char filter[256], hex[25], first[64] = "", show[4096];
    (void)state;
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &account, &pipeline);
    it_put(&env, "imports/deals/dry/cap.csv", small_file, strlen(small_file));
    enqueue_dry("imports/deals/dry/cap.csv", &account, &user, &pipeline,
                small_mappings, &qid);
    run_until_final(&qid, extra, "cap", &q, &imp, show, sizeof(show));
    if (strstr(show, "would add 3 deals and create 2 new stages") == NULL)
        fail_msg("dealimportctl show says: %s", show);
    assert_int_equal(dip_bson_get_int(&imp, "would_add", -1), 3);
    assert_int_equal(dip_bson_get_int(&imp, "total_errors", -1), 2);
    assert_int_equal(dip_bson_get_int(&imp, "new_stages.count", -1), 2);
    assert_int_equal(check_names(&imp, NULL, "gamma", first, sizeof(first)), 2);
    assert_string_equal(first, "alpha");
    bson_oid_to_string(&qid, hex);
    snprintf(filter, sizeof(filter),
             "{\"queue_id\":{\"$oid\":\"%s\"},\"field\":\"stage\","
             "\"line\":{\"$in\":[3,5]}}",
             hex);
    assert_int_equal(it_count(&env, "csv_import_errors", filter), 2);
    assert_int_equal(
        it_count_id(&env, "pipeline_stages", "pipeline_id", &pipeline), 0);
    assert_int_equal(it_count_id(&env, "deals", "import.queue_id", &qid), 0);
    bson_destroy(&q);
    bson_destroy(&imp);
}

/* A dry run resumed from its checkpoint (after line 2, which counted 1000
 * deals and the new stages alpha and beta, stage names being normalized
 * to lower case): would_add and the new stages go on from there, and alpha
 * is not new twice. */
static void test_dry_run_resumes(void **state)
{
    bson_oid_t account, user, pipeline, qid;
    const char *after2 = strstr(small_file, "D3,");
    bson_t q, imp, *set;
    char first[64] = "";
    (void)state;
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &account, &pipeline);
    it_put(&env, "imports/deals/dry/resume.csv", small_file,
           strlen(small_file));
    enqueue_dry("imports/deals/dry/resume.csv", &account, &user, &pipeline,
                small_mappings, &qid);
    set = BCON_NEW(
        "header", "[", BCON_UTF8("Deal Name"), BCON_UTF8("Value"),
        BCON_UTF8("Stage"), "]", "checkpoint", "{", "line", BCON_INT64(2),
        "offset", BCON_INT64((int64_t)(after2 - small_file)), "delimiter",
        BCON_UTF8(","), "added", BCON_INT64(0), "errors", BCON_INT64(0),
        "errors_not_stored", BCON_INT64(0), "stages_created", BCON_INT64(2),
        "would_add", BCON_INT64(1000), "dry_new_stages", "[",
        BCON_UTF8("alpha"), BCON_UTF8("beta"), "]", "}");
    it_queue_set(&env, &qid, set);
    bson_destroy(set);
    run_until_final(&qid, NULL, "resume", &q, &imp, NULL, 0);
    assert_int_equal(get_bool(&imp, "dry_run"), 1);
    assert_int_equal(dip_bson_get_int(&imp, "total_records", -1), 5);
    assert_int_equal(dip_bson_get_int(&imp, "would_add", -1), 1003);
    assert_int_equal(dip_bson_get_int(&imp, "new_stages.count", -1), 4);
    assert_int_equal(check_names(&imp, NULL, NULL, first, sizeof(first)), 4);
    assert_string_equal(first, "alpha");
    assert_int_equal(
        it_count_id(&env, "pipeline_stages", "pipeline_id", &pipeline), 0);
    bson_destroy(&q);
    bson_destroy(&imp);
}

/* A real import records dry_run false and no verdict. */
static void test_import_is_not_a_dry_run(void **state)
{
    bson_oid_t account, user, pipeline, qid;
    bson_t q, imp;
    (void)state;
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &account, &pipeline);
    it_put(&env, "imports/deals/dry/real.csv", small_file, strlen(small_file));
    it_enqueue(&env, "imports/deals/dry/real.csv", &account, &user, &pipeline,
               small_mappings, &qid);
    run_until_final(&qid, NULL, "real", &q, &imp, NULL, 0);
    assert_int_equal(get_bool(&imp, "dry_run"), 0);
    assert_int_equal(dip_bson_get_int(&imp, "would_add", -1), -1);
    assert_int_equal(dip_bson_get_int(&imp, "total_records_added", -1), 5);
    assert_int_equal(it_count_id(&env, "deals", "import.queue_id", &qid), 5);
    bson_destroy(&q);
    bson_destroy(&imp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dry_run_of_a_generated_file),
        cmocka_unit_test(test_dry_run_new_stage_cap),
        cmocka_unit_test(test_dry_run_resumes),
        cmocka_unit_test(test_import_is_not_a_dry_run),
    };
    int rc = it_env_init(&env, "dryrun");
    if (rc)
        return rc;
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    it_env_release(&env);
    return rc;
}
