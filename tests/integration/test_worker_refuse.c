/*
 * Acceptance, refusals: a queue document that is not sound, a mapping that
 * would write outside its deal, a storage key that would leave its storage,
 * and an import into another account's pipeline each end the import
 * `failed` with an error naming what is wrong, before anything is written:
 * no deal, no stage, no error line. So do fields of the wrong type (class
 * 11: `dry_run: "false"` is not read as a boolean) and tags past their
 * bounds (5,000 tags, a tag of 257 bytes, a tag that is not a string). Ids
 * stored as 24-hex strings are as good as ObjectIds.
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
#include "it_env.h"
#include "it_tmp.h"

#define GOOD_KEY "imports/deals/refuse/ok.csv"

/* A case's set_json that stands for 5,000 tags, built when enqueued. */
static const char many_tags[] = "5000 tags";
#define T64 "tttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttt"

static const char file[] = "Deal Name,Stage,Evil,Amount\n"
                           "Acme,Lead,x,5000\n"
                           "Globex,Won,y,7000\n";

static const char good_mappings[] =
    "{\"Deal Name\":\"name\",\"Stage\":\"stage_id\",\"Amount\":\"value\"}";

typedef struct {
    const char *name;
    const char *evil;     /* target for column Evil, or NULL */
    const char *mappings; /* whole mappings JSON, or NULL for the good ones */
    const char *key;      /* NULL: GOOD_KEY */
    size_t key_len;       /* 0: strlen(key) */
    const char *set_json; /* applied with $set after insertion, or NULL */
    int foreign_pipeline; /* the pipeline belongs to another account */
    const char *want;     /* in `error`; NULL: the import completes */
    const char *want2;    /* also in `error`, or NULL */
} case_t;

static const case_t cases[] = {
    /* mapping targets outside the deal */
    {"_id", "_id", NULL, NULL, 0, NULL, 0, "'_id'", NULL},
    {"account_id", "account_id", NULL, NULL, 0, NULL, 0, "'account_id'", NULL},
    {"owner", "owner", NULL, NULL, 0, NULL, 0, "'owner'", NULL},
    {"pipeline_id", "pipeline_id", NULL, NULL, 0, NULL, 0, "'pipeline_id'",
     NULL},
    {"created_by", "created_by", NULL, NULL, 0, NULL, 0, "'created_by'", NULL},
    {"source", "source", NULL, NULL, 0, NULL, 0, "'source'", NULL},
    {"import", "import", NULL, NULL, 0, NULL, 0, "'import'", NULL},
    {"tags", "tags", NULL, NULL, 0, NULL, 0, "'tags'", NULL},
    {"$where", "$where", NULL, NULL, 0, NULL, 0, "'$where'", NULL},
    {"a.b", "a.b", NULL, NULL, 0, NULL, 0, "'a.b'", NULL},
    {"__proto__", "__proto__", NULL, NULL, 0, NULL, 0, "'__proto__'", NULL},
    {"empty target", "", NULL, NULL, 0, NULL, 0, "'Evil'", "empty"},
    {"import.line", "import.line", NULL, NULL, 0, NULL, 0, "'import.line'",
     NULL},
    {"uppercase id", "65A1B2C3D4E5F60718293A4B", NULL, NULL, 0, NULL, 0,
     "'65A1B2C3D4E5F60718293A4B'", NULL},
    /* keys outside the storage */
    {"dotdot key", NULL, NULL, "../x.csv", 0, NULL, 0, "'../x.csv'", "'..'"},
    {"absolute key", NULL, NULL, "/etc/passwd", 0, NULL, 0, "'/etc/passwd'",
     "absolute"},
    {"inner dotdot key", NULL, NULL, "a/../../b.csv", 0, NULL, 0,
     "'a/../../b.csv'", "'..'"},
    {"backslash key", NULL, NULL, "a\\..\\..\\b.csv", 0, NULL, 0, "'..'", NULL},
    /* the part before the NUL is a real file: it must not be read */
    {"NUL key", NULL, NULL, GOOD_KEY "\0../../etc/passwd",
     sizeof(GOOD_KEY "\0../../etc/passwd") - 1, NULL, 0, GOOD_KEY, "NUL byte"},
    {"empty key", NULL, NULL, "", 0, NULL, 0, "csv[0].key", NULL},
    /* the queue document */
    {"no mappings", NULL, NULL, NULL, 0, "{\"mappings\":null}", 0, "'mappings'",
     NULL},
    {"mappings a string", NULL, NULL, NULL, 0, "{\"mappings\":\"name\"}", 0,
     "'mappings'", NULL},
    {"empty mappings", NULL, "{}", NULL, 0, NULL, 0, "mappings", NULL},
    {"mapping not a string", NULL,
     "{\"Deal Name\":\"name\",\"Stage\":\"stage_id\",\"Evil\":5}", NULL, 0,
     NULL, 0, "'Evil'", NULL},
    {"bad user_id", NULL, NULL, NULL, 0, "{\"user_id\":\"not-an-id\"}", 0,
     "'user_id'", NULL},
    {"no account_id", NULL, NULL, NULL, 0, "{\"account_id\":null}", 0,
     "'account_id'", "missing"},
    {"bad parent_account", NULL, NULL, NULL, 0,
     "{\"parent_account\":\"65a1b2c3d4e5f60718293a4\"}", 0, "'parent_account'",
     NULL},
    {"bad client_id", NULL, NULL, NULL, 0, "{\"client_id\":12}", 0,
     "'client_id'", NULL},
    {"bad pipeline_id", NULL, NULL, NULL, 0,
     "{\"additional_data.pipeline_id\":\"pipeline-1\"}", 0,
     "'additional_data.pipeline_id'", NULL},
    {"dry_run a string", NULL, NULL, NULL, 0, "{\"dry_run\":\"false\"}", 0,
     "'dry_run' is a string", "boolean"},
    {"dry_run a number", NULL, NULL, NULL, 0, "{\"dry_run\":1}", 0,
     "'dry_run' is a number", "boolean"},
    {"5,000 tags", NULL, NULL, NULL, 0, many_tags, 0, "5000 tags",
     "DEALIMPORT_MAX_TAGS"},
    {"a tag of 257 bytes", NULL, NULL, NULL, 0,
     "{\"additional_data.tags\":[\"ok\",\"" T64 T64 T64 T64 "x\"]}", 0, "tag 2",
     "257 bytes"},
    {"a tag not a string", NULL, NULL, NULL, 0,
     "{\"additional_data.tags\":[\"ok\",{\"a\":1}]}", 0, "tag 2", "an object"},
    {"unknown pipeline", NULL, NULL, NULL, 0,
     "{\"additional_data.pipeline_id\":\"65a1b2c3d4e5f60718293a4b\"}", 0,
     "'65a1b2c3d4e5f60718293a4b'", "pipeline"},
    {"another account's pipeline", NULL, NULL, NULL, 0, NULL, 1, "pipeline",
     "does not exist in this account"},
    /* the file against the mappings */
    {"mapped column missing", NULL,
     "{\"Deal Name\":\"name\",\"Stage\":\"stage_id\",\"Probability\":"
     "\"probability\"}",
     NULL, 0, NULL, 0, "'Probability'", NULL},
    {"required field unmapped", NULL, "{\"Deal Name\":\"name\"}", NULL, 0, NULL,
     0, "'stage_id'", NULL},
    /* the good file itself, as a control */
    {"control", NULL, NULL, NULL, 0, NULL, 0, NULL, NULL},
};

#define NCASES (sizeof(cases) / sizeof(cases[0]))

static it_env_t env;

/* Builds the case's mappings JSON into buf. */
static const char *mappings_of(const case_t *c, char *buf, size_t len)
{
    if (c->mappings)
        return c->mappings;
    if (c->evil == NULL)
        return good_mappings;
    snprintf(buf, len,
             "{\"Deal Name\":\"name\",\"Stage\":\"stage_id\",\"Evil\":\"%s\"}",
             c->evil);
    return buf;
}

static void enqueue_case(const case_t *c, bson_oid_t *qid, bson_oid_t *pipeline)
{
    bson_oid_t account, user, owner;
    char buf[512];
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    bson_oid_init(&owner, NULL);
    it_pipeline(&env, c->foreign_pipeline ? &owner : &account, pipeline);
    it_enqueue(&env, GOOD_KEY, &account, &user, pipeline,
               mappings_of(c, buf, sizeof(buf)), qid);
    if (c->key) {
        bson_t set = BSON_INITIALIZER;
        size_t len = c->key_len ? c->key_len : strlen(c->key);
        bson_append_utf8(&set, "csv.0.key", -1, c->key, (int)len);
        it_queue_set(&env, qid, &set);
        bson_destroy(&set);
    }
    if (c->set_json == many_tags) {
        bson_t set = BSON_INITIALIZER, arr;
        BSON_APPEND_ARRAY_BEGIN(&set, "additional_data.tags", &arr);
        for (int i = 0; i < 5000; i++) {
            char k[16], v[32];
            snprintf(k, sizeof(k), "%d", i);
            snprintf(v, sizeof(v), "tag number %d", i);
            BSON_APPEND_UTF8(&arr, k, v);
        }
        bson_append_array_end(&set, &arr);
        it_queue_set(&env, qid, &set);
        bson_destroy(&set);
    } else if (c->set_json) {
        bson_error_t error;
        bson_t *set =
            bson_new_from_json((const uint8_t *)c->set_json, -1, &error);
        if (set == NULL)
            fail_msg("bad set_json '%s': %s", c->set_json, error.message);
        it_queue_set(&env, qid, set);
        bson_destroy(set);
    }
}

static void test_refusals(void **state)
{
    static const char *const extra[] = {"DEALIMPORT_MAX_WORKERS=4", NULL};
    bson_oid_t qids[NCASES], pipelines[NCASES];
    char logpath[256];
    pid_t sup;
    int st, failures = 0;
    (void)state;
    it_put(&env, GOOD_KEY, file, sizeof(file) - 1);
    /* Every document is complete before a supervisor can see it. */
    for (size_t i = 0; i < NCASES; i++)
        enqueue_case(&cases[i], &qids[i], &pipelines[i]);
    snprintf(logpath, sizeof(logpath), "%s/it-worker-refuse-%d.log",
             it_tmpdir(), (int)getpid());
    sup = it_supervisor_start(&env, extra, logpath);
    assert_true(sup > 0);

    for (size_t i = 0; i < NCASES; i++) {
        const case_t *c = &cases[i];
        bson_t q;
        const char *status, *error;
        int64_t deals, stages, errors;
        if (it_wait_final(&env, &qids[i], 60000, &q) < 0) {
            fprintf(stderr, "case '%s': the import did not end\n", c->name);
            failures++;
            continue;
        }
        status = it_str(&q, "status");
        error = it_str(&q, "error");
        deals = it_count_id(&env, "deals", "import.queue_id", &qids[i]);
        errors = it_count_id(&env, "csv_import_errors", "queue_id", &qids[i]);
        stages =
            it_count_id(&env, "pipeline_stages", "pipeline_id", &pipelines[i]);
        if (c->want == NULL) {
            if (strcmp(status, "completed") != 0 || deals != 2 || stages != 2) {
                fprintf(stderr,
                        "case '%s': %s with %lld deals, %lld stages: '%s'\n",
                        c->name, status, (long long)deals, (long long)stages,
                        error);
                failures++;
            }
        } else if (strcmp(status, "failed") != 0 ||
                   strstr(error, c->want) == NULL ||
                   (c->want2 && strstr(error, c->want2) == NULL) ||
                   deals != 0 || errors != 0 || stages != 0) {
            fprintf(stderr,
                    "case '%s': status '%s', error '%s' (want '%s'%s%s), "
                    "%lld deals, %lld error lines, %lld stages\n",
                    c->name, status, error, c->want, c->want2 ? " and " : "",
                    c->want2 ? c->want2 : "", (long long)deals,
                    (long long)errors, (long long)stages);
            failures++;
        }
        bson_destroy(&q);
    }
    st = it_process_stop(sup, SIGTERM, 30000);
    assert_true(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_int_equal(it_log_trouble(logpath), 0);
    if (failures)
        fail_msg("%d of %zu cases wrong; supervisor log in %s", failures,
                 NCASES, logpath);
}

/* Ids stored as 24-hex strings work as ObjectIds, and the deals carry
 * ObjectIds. */
static void test_string_ids(void **state)
{
    static const char *const extra[] = {NULL};
    bson_oid_t account, user, pipeline, qid;
    char json[512], a[25], u[25], p[25], logpath[256];
    bson_error_t error;
    bson_t *set, q;
    pid_t sup;
    (void)state;
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &account, &pipeline);
    it_put(&env, GOOD_KEY, file, sizeof(file) - 1);
    it_enqueue(&env, GOOD_KEY, &account, &user, &pipeline, good_mappings, &qid);
    bson_oid_to_string(&account, a);
    bson_oid_to_string(&user, u);
    bson_oid_to_string(&pipeline, p);
    snprintf(json, sizeof(json),
             "{\"user_id\":\"%s\",\"account_id\":\"%s\",\"parent_account\":"
             "\"%s\",\"client_id\":\"%s\",\"additional_data.pipeline_id\":"
             "\"%s\"}",
             u, a, a, u, p);
    set = bson_new_from_json((const uint8_t *)json, -1, &error);
    assert_non_null(set);
    it_queue_set(&env, &qid, set);
    bson_destroy(set);
    snprintf(logpath, sizeof(logpath), "%s/it-worker-refuse-ids-%d.log",
             it_tmpdir(), (int)getpid());
    sup = it_supervisor_start(&env, extra, logpath);
    assert_true(sup > 0);
    assert_int_equal(it_wait_final(&env, &qid, 60000, &q), 0);
    assert_string_equal(it_str(&q, "status"), "completed");
    assert_int_equal(it_count_id(&env, "deals", "account_id", &account), 2);
    assert_int_equal(it_count_id(&env, "deals", "pipeline_id", &pipeline), 2);
    {
        /* the import's deals (on their index) whose owner is the user */
        char owner[64], hex[25];
        bson_oid_to_string(&user, hex);
        snprintf(owner, sizeof(owner), "{\"owner\":{\"$oid\":\"%s\"}}", hex);
        assert_int_equal(it_count_import_deals(&env, &qid, owner), 2);
    }
    assert_int_equal(
        it_count_id(&env, "pipeline_stages", "account_id", &account), 2);
    bson_destroy(&q);
    assert_int_equal(it_process_stop(sup, SIGTERM, 30000), 0);
    assert_int_equal(it_log_trouble(logpath), 0);
}

/* A queue document naming more files in `csv` imports the first and says
 * so in a note on csv_imports; 50 tags of 256 bytes (the bounds) are
 * accepted and every deal carries them. */
static void test_extra_files_and_tags_at_bounds(void **state)
{
    static const char *const extra[] = {NULL};
    bson_oid_t account, user, pipeline, qid;
    bson_t set = BSON_INITIALIZER, arr, item, q;
    char logpath[256], tag[257];
    pid_t sup;
    (void)state;
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &account, &pipeline);
    it_put(&env, GOOD_KEY, file, sizeof(file) - 1);
    it_enqueue(&env, GOOD_KEY, &account, &user, &pipeline, good_mappings, &qid);
    BSON_APPEND_ARRAY_BEGIN(&set, "csv", &arr);
    for (int i = 0; i < 3; i++) {
        char k[4];
        snprintf(k, sizeof(k), "%d", i);
        BSON_APPEND_DOCUMENT_BEGIN(&arr, k, &item);
        BSON_APPEND_UTF8(&item, "key", i == 0 ? GOOD_KEY : "imports/other.csv");
        bson_append_document_end(&arr, &item);
    }
    bson_append_array_end(&set, &arr);
    BSON_APPEND_ARRAY_BEGIN(&set, "additional_data.tags", &arr);
    for (int i = 0; i < 50; i++) {
        char k[4];
        snprintf(k, sizeof(k), "%d", i);
        memset(tag, 'a' + i % 26, 256);
        tag[256] = '\0';
        BSON_APPEND_UTF8(&arr, k, tag);
    }
    bson_append_array_end(&set, &arr);
    it_queue_set(&env, &qid, &set);
    bson_destroy(&set);
    snprintf(logpath, sizeof(logpath), "%s/it-worker-refuse-csv-%d.log",
             it_tmpdir(), (int)getpid());
    sup = it_supervisor_start(&env, extra, logpath);
    assert_true(sup > 0);
    assert_int_equal(it_wait_final(&env, &qid, 60000, &q), 0);
    assert_string_equal(it_str(&q, "status"), "completed");
    bson_destroy(&q);
    assert_int_equal(it_count_id(&env, "deals", "import.queue_id", &qid), 2);
    assert_true(it_has_note(&env, &qid,
                            "the queue document names 2 more files in 'csv' "
                            "after the first: only the first is imported"));
    /* Every deal has the 50 tags. */
    assert_int_equal(
        it_count_import_deals(&env, &qid, "{\"tags\":{\"$size\":50}}"), 2);
    assert_int_equal(it_process_stop(sup, SIGTERM, 30000), 0);
    assert_int_equal(it_log_trouble(logpath), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_string_ids),
        cmocka_unit_test(test_extra_files_and_tags_at_bounds),
    };
    int rc = it_env_init(&env, "wrefuse");
    if (rc)
        return rc;
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    it_env_release(&env);
    return rc;
}
