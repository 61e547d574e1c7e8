/*
 * End to end on the development stack: `dealimportctl revert` after a
 * completed import deletes that import's deals and the stages it created
 * that no other deal uses; another import's deals, a stage the other import
 * also uses, and a stage that existed before are untouched; csv_imports
 * records the revert; a second revert finds nothing; --dry-run deletes
 * nothing; an import that can still write is refused. A deal and a stage of
 * another account that carry the import's id are left, and the summary says
 * how many stages it left and why.
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
#include "it_ctl.h"
#include "it_env.h"
#include "it_tmp.h"

static it_env_t env;
static pid_t sup = -1;
static char logpath[256], runtime[256];

static const char csv_a[] = "Deal Name,Value,Stage,Status\n"
                            "A1,1,alpha,open\n"
                            "A2,2,beta,open\n"
                            "A3,3,gamma,open\n"
                            "A4,4, Alpha ,open\n";
static const char csv_b[] = "Deal Name,Value,Stage,Status\n"
                            "B1,1,beta,open\n"
                            "B2,2,delta,open\n";

static int setup(void **state)
{
    (void)state;
    snprintf(logpath, sizeof(logpath), "%s/it-ctl-revert-%d.log", it_tmpdir(),
             (int)getpid());
    sup = it_supervisor_start(&env, NULL, logpath);
    snprintf(runtime, sizeof(runtime), "%s", env.runtime);
    return sup > 0 ? 0 : -1;
}

static int teardown(void **state)
{
    int st;
    (void)state;
    st = it_process_stop(sup, SIGTERM, 30000);
    return st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static void import(const char *key, const char *csv, const bson_oid_t *acc,
                   const bson_oid_t *pipeline, bson_oid_t *qid)
{
    bson_oid_t user;
    bson_t q;
    bson_oid_init(&user, NULL);
    it_put(&env, key, csv, strlen(csv));
    it_enqueue(&env, key, acc, &user, pipeline, it_ctl_mappings, qid);
    assert_int_equal(it_wait_final(&env, qid, 60000, &q), 0);
    assert_string_equal(it_str(&q, "status"), "completed");
    bson_destroy(&q);
}

/* Stages of account named name: by account, the prefix of
 * account_pipeline_name (the suite runs with notablescan on). */
static int64_t stages_named(const bson_oid_t *account, const char *name)
{
    char filter[192], hex[25];
    bson_oid_to_string(account, hex);
    snprintf(filter, sizeof(filter),
             "{\"account_id\":{\"$oid\":\"%s\"},\"name\":\"%s\"}", hex, name);
    return it_count(&env, "pipeline_stages", filter);
}

/* Deals of account that name import qid (another tenant's claim to it),
 * on account_import_line. */
static int64_t deals_in(const bson_oid_t *account, const bson_oid_t *qid)
{
    char filter[256], acc[25], q[25];
    bson_oid_to_string(account, acc);
    bson_oid_to_string(qid, q);
    snprintf(filter, sizeof(filter),
             "{\"account_id\":{\"$oid\":\"%s\"},\"import.queue_id\":"
             "{\"$oid\":\"%s\"},\"import\":{\"$exists\":true},"
             "\"name\":\"theirs\"}",
             acc, q);
    return it_count(&env, "deals", filter);
}

/* revert's counts of what it leaves (deals and stages naming the import
 * in another account, deals using a stage) have no index: known scans of
 * an operator's command (docs/scaling.md), allowed around it alone. */
static int revert(const char *id, const char *opt, char *out, char *err)
{
    const char *args[] = {"revert", id, opt, NULL};
    int was = it_notablescan(&env, 0);
    int rc = it_ctl_run(runtime, args, out, 4096, err, 4096, 60000);
    if (was > 0)
        it_notablescan(&env, 1);
    return rc;
}

static void test_revert(void **state)
{
    bson_oid_t acc, pipeline, a, b, busy, other;
    char ida[25], idb[25], idbusy[25], out[4096], err[4096], filter[256];
    mongoc_collection_t *c;
    bson_t *doc;
    (void)state;

    bson_oid_init(&acc, NULL);
    it_pipeline(&env, &acc, &pipeline);
    /* A stage that was there before either import. */
    c = it_coll(&env, "pipeline_stages");
    doc = BCON_NEW("account_id", BCON_OID(&acc), "pipeline_id",
                   BCON_OID(&pipeline), "name", BCON_UTF8("gamma"));
    assert_true(mongoc_collection_insert_one(c, doc, NULL, NULL, NULL));
    bson_destroy(doc);
    mongoc_collection_destroy(c);

    import("imports/deals/it-revert/a.csv", csv_a, &acc, &pipeline, &a);
    import("imports/deals/it-revert/b.csv", csv_b, &acc, &pipeline, &b);
    bson_oid_to_string(&a, ida);
    bson_oid_to_string(&b, idb);
    /* Another tenant's deal and stage that name import a: not a's to
     * delete, whatever they claim. */
    bson_oid_init(&other, NULL);
    c = it_coll(&env, "deals");
    doc = BCON_NEW("account_id", BCON_OID(&other), "name", BCON_UTF8("theirs"),
                   "import", "{", "queue_id", BCON_OID(&a), "line",
                   BCON_INT64(99), "}");
    assert_true(mongoc_collection_insert_one(c, doc, NULL, NULL, NULL));
    bson_destroy(doc);
    mongoc_collection_destroy(c);
    c = it_coll(&env, "pipeline_stages");
    doc = BCON_NEW("account_id", BCON_OID(&other), "name", BCON_UTF8("omega"),
                   "created_by_import", BCON_OID(&a));
    assert_true(mongoc_collection_insert_one(c, doc, NULL, NULL, NULL));
    bson_destroy(doc);
    mongoc_collection_destroy(c);
    assert_int_equal(it_ctl_deals(&env, &a), 4);
    assert_int_equal(deals_in(&other, &a), 1); /* and theirs */
    assert_int_equal(it_ctl_deals(&env, &b), 2);
    assert_int_equal(it_count(&env, "pipeline_stages", "{}"), 5);

    /* A dry run of b counts its deals and delta, and deletes nothing. */
    assert_int_equal(revert(idb, "--dry-run", out, err), 0);
    assert_non_null(strstr(out, "2 deals and 1 pipeline stages would be "
                                "deleted"));
    assert_int_equal(it_ctl_deals(&env, &b), 2);
    assert_int_equal(stages_named(&acc, "delta"), 1);

    assert_int_equal(revert(ida, "--dry-run", out, err), 0);
    assert_non_null(strstr(out, "4 deals and 1 pipeline stages would be "
                                "deleted; left: 1 stages it created, because "
                                "other deals use them; 1 stages and 1 deals "
                                "that name this import but belong to another "
                                "account than the import's\n"));
    assert_int_equal(revert(ida, "--json", out, err), 0);
    assert_non_null(strstr(out, "\"deleted_deals\":4,\"deleted_stages\":1,"
                                "\"kept_stages\":1,\"left\":{"));
    assert_non_null(strstr(out, "\"stages_other_account\":1"));
    assert_non_null(strstr(out, "\"deals_other_account\":1"));
    assert_non_null(strstr(out, "\"stages_next_run\":0"));
    assert_int_equal(stages_named(&other, "omega"), 1);
    assert_int_equal(deals_in(&other, &a), 1); /* theirs */
    assert_int_equal(it_ctl_deals(&env, &a), 0);
    assert_int_equal(it_ctl_deals(&env, &b), 2);
    assert_int_equal(stages_named(&acc, "alpha"), 0);
    assert_int_equal(stages_named(&acc, "beta"), 1);  /* b's deal uses it */
    assert_int_equal(stages_named(&acc, "gamma"), 1); /* not a's to delete */
    assert_int_equal(stages_named(&acc, "delta"), 1);
    snprintf(filter, sizeof(filter),
             "{\"queue_id\":{\"$oid\":\"%s\"},\"reverted_deals\":4,"
             "\"reverted_stages\":1,\"reverted_at\":{\"$exists\":true}}",
             ida);
    assert_int_equal(it_count(&env, "csv_imports", filter), 1);

    /* show tells it too. */
    {
        const char *args[] = {"show", ida, NULL};
        assert_int_equal(it_ctl_run(runtime, args, out, sizeof(out), err,
                                    sizeof(err), 30000),
                         0);
        assert_non_null(strstr(out, "4 deals and 1 stages deleted"));
    }

    /* Again: nothing left to delete, the record keeps its figures. */
    assert_int_equal(revert(ida, NULL, out, err), 0);
    assert_non_null(strstr(out, "0 deals and 0 pipeline stages deleted"));
    assert_int_equal(it_count(&env, "csv_imports", filter), 1);

    /* An import another supervisor is running is refused. */
    c = it_coll(&env, "queues");
    bson_oid_init(&busy, NULL);
    doc =
        BCON_NEW("_id", BCON_OID(&busy), "source", BCON_UTF8("deals"), "status",
                 BCON_UTF8("processing"), "in_progress", BCON_BOOL(true),
                 "claimed_by", BCON_UTF8("elsewhere:1:2"), "lease_expires_at",
                 BCON_DATE_TIME(dip_bson_now_ms() + 3600000), "account_id",
                 BCON_OID(&acc));
    assert_true(mongoc_collection_insert_one(c, doc, NULL, NULL, NULL));
    bson_destroy(doc);
    mongoc_collection_destroy(c);
    bson_oid_to_string(&busy, idbusy);
    assert_int_equal(revert(idbusy, NULL, out, err), 1);
    assert_non_null(strstr(err, "is processing: only completed, failed or "
                                "cancelled imports can be reverted"));
    assert_int_equal(revert("64b000000000000000000000", NULL, out, err), 1);
    assert_non_null(strstr(err, "no import with id"));
    assert_int_equal(revert("x", NULL, out, err), 64);
    assert_int_equal(it_ctl_deals(&env, &b), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_revert),
    };
    int rc = it_env_init(&env, "ctlrevert");
    if (rc)
        return rc;
    rc = cmocka_run_group_tests(tests, setup, teardown);
    it_env_release(&env);
    return rc;
}
