/*
 * sup_followup: the event type of an end over a table, then, on the
 * development stack (skipped without it, a failure where CI=true), the
 * claim of an ended import's follow-ups (once per lease, never a finished
 * or running one, taken over when the lease ran out) and the child's run:
 * the held completion event is released with csv_imports' figures and
 * followups_done_at is set; a run for an import without csv_imports fails
 * with a sentence and changes nothing.
 *
 * Failure classes: 10 (a step that can never succeed): a run that fails
 * leaves followups_done_at unset, so its claim runs out and another try
 * comes, and the held event is not released half-done; 9 (shared
 * resources): two owners never hold one import's follow-ups at once while
 * the lease runs; 5 (frozen): a claimant frozen past the lease is joined
 * by another, harmless because every step is idempotent (the header's
 * promise; the takeover is checked here).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "dip_bson.h"
#include "dip_event.h"
#include "it_check.h"
#include "it_env.h"
#include "ts_indexes.h"
#include "sup_followup.h"

static it_env_t env;

static void test_event_type(void **state)
{
    static const struct {
        const char *status;
        int dry_run;
        const char *want; /* NULL: no event */
    } cases[] = {
        {"completed", 0, DIP_EVENT_COMPLETED},
        {"completed", 1, DIP_EVENT_DRY_RUN},
        {"failed", 0, DIP_EVENT_FAILED},
        {"failed", 1, DIP_EVENT_FAILED},
        {"cancelled", 0, DIP_EVENT_CANCELLED},
        {"processing", 0, NULL},
        {"pending", 0, NULL},
        {"", 0, NULL},
        {NULL, 0, NULL},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *got =
            sup_followup_event_type(cases[i].status, cases[i].dry_run);
        if (cases[i].want == NULL)
            assert_null(got);
        else
            assert_string_equal(got ? got : "(none)", cases[i].want);
    }
}

/* Whether an end has follow-ups: a child starts only for those that do;
 * the others are written done with the end. */
static void test_needed(void **state)
{
    static const struct {
        int64_t errors;
        int source, deletes, event, success;
        int want;
    } cases[] = {
        {0, 1, 0, 0, 0, 0},  /* clean, kept source, no event: nothing */
        {0, 0, 0, 0, 0, 0},  /* no file named at all */
        {10, 1, 0, 0, 0, 1}, /* an error file to write */
        {10, 0, 0, 0, 0, 0}, /* errors, but no source to build it from */
        {0, 1, 1, 0, 0, 1},  /* a source the policy may delete */
        {0, 0, 1, 0, 0, 0},  /* the policy, but no source */
        {0, 1, 0, 1, 0, 1},  /* a held event to release */
        {0, 0, 0, 1, 0, 1},  /* an event, whatever the file */
        {0, 1, 0, 0, 1, 1},  /* a success file to write */
        {0, 0, 0, 0, 1, 0},  /* asked for, but no source to read */
        {1, 1, 1, 1, 1, 1},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sup_followup_facts_t f = {cases[i].errors, cases[i].source,
                                  cases[i].deletes, cases[i].event,
                                  cases[i].success};
        if (sup_followup_needed(&f) != cases[i].want)
            fail_msg("case %zu: want %d", i, cases[i].want);
    }
}

/* A csv_imports document for a new import id. */
static void import_log(bson_oid_t *qid, const char *status, int done,
                       int64_t lease_ms)
{
    mongoc_collection_t *c = it_coll(&env, "csv_imports");
    bson_t doc = BSON_INITIALIZER;
    bson_error_t e;
    bson_oid_init(qid, NULL);
    BSON_APPEND_OID(&doc, "queue_id", qid);
    BSON_APPEND_UTF8(&doc, "status", status);
    BSON_APPEND_INT64(&doc, "total_records", 4);
    BSON_APPEND_INT64(&doc, "total_records_added", 4);
    BSON_APPEND_INT64(&doc, "total_errors", 0);
    BSON_APPEND_DATE_TIME(&doc, "finished_at", dip_bson_now_ms() - 1000);
    if (done)
        BSON_APPEND_DATE_TIME(&doc, "followups_done_at", dip_bson_now_ms());
    if (lease_ms)
        BSON_APPEND_DATE_TIME(&doc, "followups_lease", lease_ms);
    if (!mongoc_collection_insert_one(c, &doc, NULL, NULL, &e))
        fail_msg("insert csv_imports: %s", e.message);
    bson_destroy(&doc);
    mongoc_collection_destroy(c);
}

/* Empties a collection, keeping its indexes (ts_service_indexes). */
static void clear(const char *name)
{
    mongoc_collection_t *c = it_coll(&env, name);
    bson_t all = BSON_INITIALIZER;
    mongoc_collection_delete_many(c, &all, NULL, NULL, NULL);
    mongoc_collection_destroy(c);
}

static void test_claim(void **state)
{
    mongoc_collection_t *imports;
    bson_oid_t ended, done, running, leased;
    char hex[25], want[25], err[512], filter[256];
    int64_t now = dip_bson_now_ms();
    (void)state;
    clear("csv_imports");
    imports = it_coll(&env, "csv_imports");
    import_log(&done, "completed", 1, 0);
    import_log(&running, "processing", 0, 0);
    import_log(&leased, "failed", 0, now + 600000);
    import_log(&ended, "cancelled", 0, 0);
    bson_oid_to_string(&ended, want);
    /* Only the ended import with no running claim. */
    assert_int_equal(sup_followup_claim(env.client, imports, "host:1", now, hex,
                                        err, sizeof(err)),
                     1);
    assert_string_equal(hex, want);
    /* The test's own reads go by queue_id (its unique index), as the
     * suite's notablescan wants. */
    snprintf(filter, sizeof(filter),
             "{\"queue_id\":{\"$oid\":\"%s\"},\"followups_by\":\"host:1\","
             "\"status\":\"cancelled\",\"followups_lease\":{\"$gt\":"
             "{\"$date\":\"2020-01-01T00:00:00Z\"}}}",
             want);
    assert_int_equal(it_count(&env, "csv_imports", filter), 1);
    /* Held now: nothing left for anyone. */
    assert_int_equal(sup_followup_claim(env.client, imports, "host:2", now, hex,
                                        err, sizeof(err)),
                     0);
    /* Past both leases: the two are taken over, one at a time. */
    assert_int_equal(sup_followup_claim(env.client, imports, "host:2",
                                        now + SUP_FOLLOWUP_LEASE_MS + 1000, hex,
                                        err, sizeof(err)),
                     1);
    assert_int_equal(sup_followup_claim(env.client, imports, "host:2",
                                        now + SUP_FOLLOWUP_LEASE_MS + 1000, hex,
                                        err, sizeof(err)),
                     1);
    assert_int_equal(sup_followup_claim(env.client, imports, "host:2",
                                        now + SUP_FOLLOWUP_LEASE_MS + 1000, hex,
                                        err, sizeof(err)),
                     0);
    bson_oid_to_string(&leased, hex);
    snprintf(filter, sizeof(filter),
             "{\"queue_id\":{\"$in\":[{\"$oid\":\"%s\"},{\"$oid\":\"%s\"}]},"
             "\"followups_by\":\"host:2\"}",
             hex, want);
    assert_int_equal(it_count(&env, "csv_imports", filter), 2);
    mongoc_collection_destroy(imports);
}

static void test_run(void **state)
{
    mongoc_collection_t *events = it_coll(&env, DIP_EVENT_COLLECTION);
    bson_oid_t account, user, pipeline, qid, missing;
    bson_t *queue_doc;
    char hex[25], filter[256], err[512];
    (void)state;
    clear("csv_imports");
    clear(DIP_EVENT_COLLECTION);
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &account, &pipeline);
    it_enqueue(&env, "imports/deals/followup/a.csv", &account, &user, &pipeline,
               "{\"Deal Name\":\"name\"}", &qid);
    bson_oid_to_string(&qid, hex);
    /* The end as sup_store_finish leaves it: the held event, the log. */
    queue_doc =
        BCON_NEW("_id", BCON_OID(&qid), "account_id", BCON_OID(&account),
                 "user_id", BCON_OID(&user), "parent_account",
                 BCON_OID(&account), "client_id", BCON_OID(&user));
    assert_int_equal(dip_event_record(events, queue_doc, DIP_EVENT_COMPLETED,
                                      NULL, 3600, 1, err, sizeof(err)),
                     0);
    {
        mongoc_collection_t *c = it_coll(&env, "csv_imports");
        bson_t *doc = BCON_NEW("queue_id", BCON_OID(&qid), "status",
                               BCON_UTF8("completed"), "total_records",
                               BCON_INT64(4), "total_records_added",
                               BCON_INT64(3), "total_errors", BCON_INT64(0),
                               "finished_at", BCON_DATE_TIME(dip_bson_now_ms()),
                               "followups_runs", BCON_UTF8("7"));
        assert_true(mongoc_collection_insert_one(c, doc, NULL, NULL, NULL));
        bson_destroy(doc);
        mongoc_collection_destroy(c);
    }

    /* No csv_imports for another id: fails, nothing done. */
    bson_oid_init(&missing, NULL);
    {
        char other[25];
        bson_oid_to_string(&missing, other);
        assert_int_equal(
            sup_followup_run(&env.cfg, other, NULL, err, sizeof(err)), -1);
        assert_non_null(strstr(err, "csv_imports"));
    }
    assert_int_equal(
        sup_followup_run(&env.cfg, "not-an-id", NULL, err, sizeof(err)), -1);
    snprintf(filter, sizeof(filter),
             "{\"queue_id\":{\"$oid\":\"%s\"},\"status\":\"held\"}", hex);
    assert_int_equal(it_count(&env, DIP_EVENT_COLLECTION, filter), 1);

    /* The run: event released with the figures, follow-ups done. */
    assert_int_equal(sup_followup_run(&env.cfg, hex, NULL, err, sizeof(err)),
                     0);
    snprintf(filter, sizeof(filter),
             "{\"queue_id\":{\"$oid\":\"%s\"},\"status\":\"pending\","
             "\"payload.total_records\":4,\"payload.total_records_added\":3}",
             hex);
    assert_int_equal(it_count(&env, DIP_EVENT_COLLECTION, filter), 1);
    snprintf(filter, sizeof(filter),
             "{\"queue_id\":{\"$oid\":\"%s\"},\"followups_done_at\":"
             "{\"$exists\":true}}",
             hex);
    assert_int_equal(it_count(&env, "csv_imports", filter), 1);
    /* the run counted itself; a count of another type ("7", a string)
     * counted as none, replaced, not read loosely (class 11) */
    snprintf(filter, sizeof(filter),
             "{\"queue_id\":{\"$oid\":\"%s\"},\"followups_runs\":1}", hex);
    assert_int_equal(it_count(&env, "csv_imports", filter), 1);
    /* Again: idempotent, still one event, still done. */
    assert_int_equal(sup_followup_run(&env.cfg, hex, NULL, err, sizeof(err)),
                     0);
    snprintf(filter, sizeof(filter), "{\"queue_id\":{\"$oid\":\"%s\"}}", hex);
    assert_int_equal(it_count(&env, DIP_EVENT_COLLECTION, filter), 1);
    bson_destroy(queue_doc);
    mongoc_collection_destroy(events);
}

/* The child told to claim for itself: the claim answers csv_imports (no
 * read), an end that said no event is held releases none (a stray held
 * event stays as it is), the source is taken from followups_source (the
 * queue document is gone: not read), and a second child finds nothing to
 * claim and does nothing. */
static void test_run_claiming(void **state)
{
    mongoc_collection_t *events = it_coll(&env, DIP_EVENT_COLLECTION);
    mongoc_collection_t *imports = it_coll(&env, "csv_imports");
    bson_oid_t account, user, qid;
    bson_t *queue_doc, *doc;
    char hex[25], filter[256], err[512];
    (void)state;
    clear("csv_imports");
    clear(DIP_EVENT_COLLECTION);
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    bson_oid_init(&qid, NULL); /* no queue document at all */
    bson_oid_to_string(&qid, hex);
    queue_doc =
        BCON_NEW("_id", BCON_OID(&qid), "account_id", BCON_OID(&account),
                 "user_id", BCON_OID(&user), "parent_account",
                 BCON_OID(&account), "client_id", BCON_OID(&user));
    assert_int_equal(dip_event_record(events, queue_doc, DIP_EVENT_COMPLETED,
                                      NULL, 3600, 1, err, sizeof(err)),
                     0);
    doc = BCON_NEW(
        "queue_id", BCON_OID(&qid), "status", BCON_UTF8("completed"),
        "total_records", BCON_INT64(4), "total_records_added", BCON_INT64(4),
        "total_errors", BCON_INT64(0), "followups_source",
        BCON_UTF8("imports/deals/followup/b.csv"), "followups_event",
        BCON_BOOL(false), "finished_at", BCON_DATE_TIME(dip_bson_now_ms()));
    assert_true(mongoc_collection_insert_one(imports, doc, NULL, NULL, NULL));
    bson_destroy(doc);

    assert_int_equal(
        sup_followup_run(&env.cfg, hex, "host:9", err, sizeof(err)), 0);
    snprintf(filter, sizeof(filter),
             "{\"queue_id\":{\"$oid\":\"%s\"},\"followups_by\":\"host:9\","
             "\"followups_done_at\":{\"$exists\":true}}",
             hex);
    assert_int_equal(it_count(&env, "csv_imports", filter), 1);
    /* none was said to be held: none released */
    snprintf(filter, sizeof(filter),
             "{\"queue_id\":{\"$oid\":\"%s\"},\"status\":\"held\"}", hex);
    assert_int_equal(it_count(&env, DIP_EVENT_COLLECTION, filter), 1);

    /* Done: another child claims nothing and changes nothing. */
    assert_int_equal(
        sup_followup_run(&env.cfg, hex, "host:8", err, sizeof(err)), 0);
    snprintf(filter, sizeof(filter),
             "{\"queue_id\":{\"$oid\":\"%s\"},\"followups_by\":\"host:8\"}",
             hex);
    assert_int_equal(it_count(&env, "csv_imports", filter), 0);
    bson_destroy(queue_doc);
    mongoc_collection_destroy(imports);
    mongoc_collection_destroy(events);
}

/* Runs that never ended (each one's process killed before it recorded a
 * thing, as a write past a file size limit killed it by SIGXFSZ): the run
 * after SUP_FOLLOWUP_RUNS_MAX gives up the steps not done without trying
 * them and releases the event, which says why. Failure classes: 10 (a
 * step that can never succeed, here one that ends its process): bounded
 * by runs as each step is by tries; 14: the error file is still due when
 * the run starts (errors, a source, no error_file), so only the bound can
 * give it up, and the event must carry the reason; 4, 11 (one document,
 * a field of another type): the count is read by type and set, never
 * incremented, so a count that is not a number fails nothing (test_run);
 * the loop's claim does not touch it. */
static void test_runs_bounded(void **state)
{
    mongoc_collection_t *events = it_coll(&env, DIP_EVENT_COLLECTION);
    bson_oid_t account, user, pipeline, qid;
    bson_t *queue_doc;
    char hex[25], filter[256], err[512];
    (void)state;
    clear("csv_imports");
    clear(DIP_EVENT_COLLECTION);
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &account, &pipeline);
    it_enqueue(&env, "imports/deals/followup/crash.csv", &account, &user,
               &pipeline, "{\"Deal Name\":\"name\"}", &qid);
    bson_oid_to_string(&qid, hex);
    queue_doc =
        BCON_NEW("_id", BCON_OID(&qid), "account_id", BCON_OID(&account),
                 "user_id", BCON_OID(&user), "parent_account",
                 BCON_OID(&account), "client_id", BCON_OID(&user));
    assert_int_equal(dip_event_record(events, queue_doc, DIP_EVENT_COMPLETED,
                                      NULL, 3600, 1, err, sizeof(err)),
                     0);
    {
        mongoc_collection_t *c = it_coll(&env, "csv_imports");
        bson_t *doc = BCON_NEW(
            "queue_id", BCON_OID(&qid), "status", BCON_UTF8("completed"),
            "total_records", BCON_INT64(4), "total_records_added",
            BCON_INT64(2), "total_errors", BCON_INT64(2), "finished_at",
            BCON_DATE_TIME(dip_bson_now_ms()), "followups_runs",
            BCON_INT32(SUP_FOLLOWUP_RUNS_MAX));
        assert_true(mongoc_collection_insert_one(c, doc, NULL, NULL, NULL));
        bson_destroy(doc);
        mongoc_collection_destroy(c);
    }
    assert_int_equal(sup_followup_run(&env.cfg, hex, NULL, err, sizeof(err)),
                     1);
    snprintf(filter, sizeof(filter),
             "{\"queue_id\":{\"$oid\":\"%s\"},\"followups_done_at\":"
             "{\"$exists\":true},\"error_file.failed\":{\"$regex\":"
             "\"did not finish in 5 runs\"},\"error_file.key\":{\"$exists\":"
             "false}}",
             hex);
    assert_int_equal(it_count(&env, "csv_imports", filter), 1);
    snprintf(filter, sizeof(filter),
             "{\"queue_id\":{\"$oid\":\"%s\"},\"status\":\"pending\","
             "\"payload.error_file.failed\":{\"$regex\":\"did not finish\"}}",
             hex);
    assert_int_equal(it_count(&env, DIP_EVENT_COLLECTION, filter), 1);
    bson_destroy(queue_doc);
    mongoc_collection_destroy(events);
}

/* Runs an admin command (destroyed); true when it ran. */
static bool admin(bson_t *cmd, bson_t *reply)
{
    bool ok = mongoc_client_command_simple(env.client, "admin", cmd, NULL,
                                           reply, NULL);
    bson_destroy(cmd);
    return ok;
}

/* The child's reads are bounded and the error file is read in pieces
 * (failure classes 1, 2): a run that writes an error file of ERRORS lines
 * and deletes the source (so every read of sup_followup, sup_errfile and
 * sup_cleanup is made) leaves, in the development server's op log, no
 * read, count or findAndModify on the import's collections without a
 * maxTimeMS, and reads the errors in ceil(ERRORS / 500) finds (each
 * bounded, whatever the list's length), whose file holds every line
 * (a piece that resumed wrongly would lose or repeat some). 3: with the suite's
 * notablescan each of them runs on an index, or the run fails. On a server
 * without the op log only the documents are checked. */
#define ERRORS 1200
static void test_run_reads_bounded(void **state)
{
    mongoc_collection_t *events = it_coll(&env, DIP_EVENT_COLLECTION);
    mongoc_collection_t *errors = it_coll(&env, "csv_import_errors");
    mongoc_collection_t *imports = it_coll(&env, "csv_imports");
    static const char *const colls[] = {
        "csv_imports", "queues", "csv_import_errors", DIP_EVENT_COLLECTION};
    bson_oid_t account, user, pipeline, qid;
    bson_t *doc, reply;
    char hex[25], filter[256], err[512];
    int oplog, unbounded = 0, error_finds = 0, was = env.cfg.delete_source;
    (void)state;
    clear("csv_imports");
    clear("csv_import_errors");
    clear(DIP_EVENT_COLLECTION);
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &account, &pipeline);
    it_put(&env, "imports/deals/followup/bounded.csv", "Deal Name\nx\n", 12);
    it_enqueue(&env, "imports/deals/followup/bounded.csv", &account, &user,
               &pipeline, "{\"Deal Name\":\"name\"}", &qid);
    bson_oid_to_string(&qid, hex);
    doc = BCON_NEW("_id", BCON_OID(&qid), "account_id", BCON_OID(&account),
                   "user_id", BCON_OID(&user), "parent_account",
                   BCON_OID(&account), "client_id", BCON_OID(&user));
    assert_int_equal(dip_event_record(events, doc, DIP_EVENT_COMPLETED, NULL,
                                      3600, 1, err, sizeof(err)),
                     0);
    bson_destroy(doc);
    doc =
        BCON_NEW("queue_id", BCON_OID(&qid), "status", BCON_UTF8("completed"),
                 "total_records", BCON_INT64(ERRORS + 1), "total_records_added",
                 BCON_INT64(1), "total_errors", BCON_INT64(ERRORS),
                 "finished_at", BCON_DATE_TIME(dip_bson_now_ms()));
    assert_true(mongoc_collection_insert_one(imports, doc, NULL, NULL, NULL));
    bson_destroy(doc);
    /* inserted out of order: the file is sorted by line */
    for (int i = ERRORS; i >= 1; i--) {
        doc = BCON_NEW("queue_id", BCON_OID(&qid), "line", BCON_INT64(i + 1),
                       "field", BCON_UTF8("value"), "message",
                       BCON_UTF8("not a number"), "row", "[", BCON_UTF8("x"),
                       "]");
        assert_true(
            mongoc_collection_insert_one(errors, doc, NULL, NULL, NULL));
        bson_destroy(doc);
    }

    oplog = admin(BCON_NEW("devOpLog", BCON_INT32(1), "limit", BCON_INT32(1),
                           "reset", BCON_BOOL(true)),
                  &reply);
    bson_destroy(&reply);
    env.cfg.delete_source = DIP_DELETE_SOURCE_COMPLETED;
    assert_int_equal(sup_followup_run(&env.cfg, hex, NULL, err, sizeof(err)),
                     0);
    env.cfg.delete_source = was;

    for (size_t k = 0; oplog && k < sizeof(colls) / sizeof(colls[0]); k++) {
        char ns[128];
        bson_iter_t it, ops;
        snprintf(ns, sizeof(ns), "%s.%s", env.dbname, colls[k]);
        assert_true(admin(BCON_NEW("devOpLog", BCON_INT32(1), "ns",
                                   BCON_UTF8(ns), "limit", BCON_INT32(10000)),
                          &reply));
        assert_true(bson_iter_init_find(&it, &reply, "ops") &&
                    bson_iter_recurse(&it, &ops));
        while (bson_iter_next(&ops)) {
            bson_t op;
            uint32_t len;
            const uint8_t *data;
            const char *name;
            bson_iter_document(&ops, &len, &data);
            assert_true(bson_init_static(&op, data, len));
            name = dip_bson_get_str(&op, "op");
            if (name == NULL ||
                (strcmp(name, "find") != 0 && strcmp(name, "aggregate") != 0 &&
                 strcmp(name, "count") != 0 &&
                 strcmp(name, "findAndModify") != 0))
                continue;
            if (dip_bson_get_int(&op, "maxTimeMS", 0) <= 0) {
                fprintf(stderr, "%s %s without maxTimeMS\n", name, ns);
                unbounded++;
            }
            error_finds += k == 2 && strcmp(name, "find") == 0;
        }
        bson_destroy(&reply);
    }
    if (oplog) {
        assert_int_equal(unbounded, 0);
        assert_int_equal(error_finds, (ERRORS + 499) / 500);
    }
    /* (the test's own reads come after the op log's) */
    snprintf(filter, sizeof(filter),
             "{\"queue_id\":{\"$oid\":\"%s\"},\"error_file.rows\":%d,"
             "\"source_deleted_at\":{\"$exists\":true},"
             "\"followups_done_at\":{\"$exists\":true}}",
             hex, ERRORS);
    assert_int_equal(it_count(&env, "csv_imports", filter), 1);
    mongoc_collection_destroy(imports);
    mongoc_collection_destroy(errors);
    mongoc_collection_destroy(events);
}

int main(void)
{
    const struct CMUnitTest pure[] = {
        cmocka_unit_test(test_event_type),
        cmocka_unit_test(test_needed),
    };
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_claim),
        cmocka_unit_test(test_run),
        cmocka_unit_test(test_run_claiming),
        cmocka_unit_test(test_runs_bounded),
        cmocka_unit_test(test_run_reads_bounded),
    };
    int rc = cmocka_run_group_tests(pure, NULL, NULL);
    if (rc != 0)
        return rc;
    /* The rest needs the stack: without it, 77 (a failure where CI=true). */
    rc = it_env_init(&env, "sup_followup");
    if (rc)
        return rc;
    ts_service_indexes(&env);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    it_env_release(&env);
    return rc;
}
