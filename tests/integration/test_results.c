/*
 * Acceptance, what the importing user gets back:
 * - an import of 10,000 rows with about 5% bad rows of several kinds (one of
 *   them a formula) writes an error file beside its source that Python's csv
 *   module reads back as exactly the rows of csv_import_errors: line, field,
 *   reason and the original cells, the formula neutralized; the same after
 *   the worker is SIGKILLed mid-import;
 * - a dry run of that file writes no deal and no stage, counts would_add as
 *   the good rows and lists the stage names it would create;
 * - the completion event reaches a receiver that answers 503 twice, with one
 *   Idempotency-Key and a token that verifies with APP_SECRET; a supervisor
 *   SIGKILLed before the event is delivered delivers it after a restart;
 * - DEALIMPORT_DELETE_SOURCE=completed deletes a completed import's source
 *   and keeps a failed one's;
 * - a source three queue documents name (two pipelines and a dry run) is
 *   deleted after the last of them, and each ends as it would without the
 *   deletion.
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

#include <jansson.h>
#include <jwt.h>

#include "dip_bson.h"
#include "it_check.h"
#include "it_env.h"
#include "it_gen.h"
#include "it_http.h"
#include "it_tmp.h"

#define SECRET_ENV "APP_SECRET"
#define FORMULA "=HYPERLINK(\"http://x\")"

/* The log of the supervisor a case starts, in the test's folder. */
static char tmp_log[512];

static it_env_t env;

typedef struct sink {
    char *buf;
    size_t len, cap;
} sink_t;

static int sink_data(void *arg, const char *buf, size_t len)
{
    sink_t *s = arg;
    if (s->len + len + 1 > s->cap) {
        s->cap = (s->len + len + 1) * 2;
        s->buf = realloc(s->buf, s->cap);
        assert_non_null(s->buf);
    }
    memcpy(s->buf + s->len, buf, len);
    s->len += len;
    s->buf[s->len] = '\0';
    return 0;
}

/* 1 when key exists in the dev storage. */
static int stored(const char *key)
{
    sink_t s = {NULL, 0, 0};
    dip_storage_sink_t sk = {&s, NULL, sink_data, NULL};
    char err[512];
    int rc = dip_storage_get(env.storage, key, 0, &sk, err, sizeof(err));
    free(s.buf);
    return rc == DIP_STORAGE_OK;
}

/* The generated file with one more bad row whose name is a formula (and
 * whose value is not a number), uploaded to key. Returns the line of the
 * formula row. */
static uint64_t put_file(it_gen_t *gen, const char *key)
{
    char path[256];
    FILE *f;
    snprintf(path, sizeof(path), "%s/it-results-%d.csv", it_tmpdir(),
             (int)getpid());
    assert_int_equal(it_gen_write(gen, path), 0);
    f = fopen(path, "a");
    assert_non_null(f);
    /* The generator's columns: Deal Name first, Value second; its last row
     * ends without a line break. */
    fprintf(f, "\r\n\"%s\",\"not a number\"\r\n",
            "=HYPERLINK(\"\"http://x\"\")");
    fclose(f);
    it_put_file(&env, key, path);
    unlink(path);
    return it_gen_rows(gen) + 1;
}

/* The error file of import qid, parsed by Python's csv module into a JSON
 * array of rows (arrays of strings). */
static json_t *read_error_file(const char *key)
{
    sink_t s = {NULL, 0, 0};
    dip_storage_sink_t sk = {&s, NULL, sink_data, NULL};
    char err[512], in[256], out[256], cmd[1024];
    json_error_t je;
    json_t *rows;
    FILE *f;
    assert_int_equal(
        dip_storage_get(env.storage, key, 0, &sk, err, sizeof(err)),
        DIP_STORAGE_OK);
    assert_true(s.len > 3);
    /* UTF-8 with a byte order mark, CRLF line ends. */
    assert_memory_equal(s.buf, "\xef\xbb\xbf", 3);
    assert_non_null(strstr(s.buf, "\r\n"));
    snprintf(in, sizeof(in), "%s/it-results-%d.errors.csv", it_tmpdir(),
             (int)getpid());
    snprintf(out, sizeof(out), "%s/it-results-%d.errors.json", it_tmpdir(),
             (int)getpid());
    f = fopen(in, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(s.buf, 1, s.len, f), s.len);
    fclose(f);
    free(s.buf);
    snprintf(
        cmd, sizeof(cmd),
        "/usr/bin/python3 -c 'import csv,json,sys; "
        "json.dump(list(csv.reader(open(sys.argv[1], encoding=\"utf-8-sig\", "
        "newline=\"\"))), open(sys.argv[2], \"w\"))' %s %s",
        in, out);
    assert_int_equal(system(cmd), 0);
    rows = json_load_file(out, 0, &je);
    assert_non_null(rows);
    unlink(in);
    unlink(out);
    return rows;
}

/* Compares the error file with csv_import_errors of qid, row by row. */
static void check_error_file(const bson_oid_t *qid, uint64_t formula_line)
{
    char hex[25], filter[128];
    bson_t q = BSON_INITIALIZER, imp, opts = BSON_INITIALIZER, sort;
    mongoc_collection_t *imports = it_coll(&env, "csv_imports");
    mongoc_collection_t *errors = it_coll(&env, "csv_import_errors");
    mongoc_cursor_t *c;
    const bson_t *doc;
    json_t *rows, *head;
    size_t i = 1;
    int saw_formula = 0;
    bson_oid_to_string(qid, hex);
    BSON_APPEND_OID(&q, "queue_id", qid);
    c = mongoc_collection_find_with_opts(imports, &q, NULL, NULL);
    assert_true(mongoc_cursor_next(c, &doc));
    bson_copy_to(doc, &imp);
    mongoc_cursor_destroy(c);
    assert_non_null(dip_bson_get_str(&imp, "error_file.key"));
    assert_non_null(strstr(dip_bson_get_str(&imp, "error_file.key"), hex));
    rows = read_error_file(dip_bson_get_str(&imp, "error_file.key"));
    head = json_array_get(rows, 0);
    assert_string_equal(json_string_value(json_array_get(head, 0)), "Line");
    assert_string_equal(json_string_value(json_array_get(head, 1)), "Field");
    assert_string_equal(json_string_value(json_array_get(head, 2)), "Error");
    assert_string_equal(json_string_value(json_array_get(head, 3)),
                        "Deal Name");

    BSON_APPEND_DOCUMENT_BEGIN(&opts, "sort", &sort);
    BSON_APPEND_INT32(&sort, "line", 1);
    bson_append_document_end(&opts, &sort);
    c = mongoc_collection_find_with_opts(errors, &q, &opts, NULL);
    while (mongoc_cursor_next(c, &doc)) {
        json_t *r = json_array_get(rows, i++);
        bson_iter_t it, cell;
        size_t k = 3;
        char line[32];
        assert_non_null(r);
        snprintf(line, sizeof(line), "%lld",
                 (long long)dip_bson_get_int(doc, "line", -1));
        assert_string_equal(json_string_value(json_array_get(r, 0)), line);
        assert_string_equal(json_string_value(json_array_get(r, 1)),
                            dip_bson_get_str(doc, "field"));
        assert_string_equal(json_string_value(json_array_get(r, 2)),
                            dip_bson_get_str(doc, "message"));
        assert_true(bson_iter_init_find(&it, doc, "row"));
        assert_true(bson_iter_recurse(&it, &cell));
        while (bson_iter_next(&cell)) {
            const char *want = bson_iter_utf8(&cell, NULL);
            const char *got = json_string_value(json_array_get(r, k++));
            assert_non_null(got);
            if (strchr("=+-@\t\r", want[0]) && want[0]) {
                /* neutralized: a leading apostrophe, the rest as it was */
                assert_int_equal(got[0], '\'');
                assert_string_equal(got + 1, want);
            } else {
                assert_string_equal(got, want);
            }
        }
        if (strcmp(it_str(doc, "row.0"), FORMULA) == 0) {
            saw_formula = 1;
            assert_string_equal(json_string_value(json_array_get(r, 3)),
                                "'" FORMULA);
            if ((uint64_t)dip_bson_get_int(doc, "line", -1) != formula_line)
                fprintf(stderr, "the formula row is line %lld, not %llu\n",
                        (long long)dip_bson_get_int(doc, "line", -1),
                        (unsigned long long)formula_line);
        }
    }
    mongoc_cursor_destroy(c);
    assert_true(saw_formula);
    /* Every stored error, then one line counting the ones left out (none
     * here: the stored-errors cap is far away). */
    assert_int_equal(json_array_size(rows), i + 1);
    {
        json_t *last = json_array_get(rows, i);
        char all[512] = "";
        for (size_t k = 0; k < json_array_size(last); k++)
            strncat(all, json_string_value(json_array_get(last, k)),
                    sizeof(all) - strlen(all) - 1);
        assert_non_null(strstr(all, "0 rejected rows"));
    }
    snprintf(filter, sizeof(filter), "{\"queue_id\":{\"$oid\":\"%s\"}}", hex);
    assert_int_equal(dip_bson_get_int(&imp, "error_file.rows", -1),
                     it_count(&env, "csv_import_errors", filter));
    assert_true(dip_bson_get_int(&imp, "error_file.bytes", -1) > 0);
    json_decref(rows);
    bson_destroy(&imp);
    bson_destroy(&q);
    bson_destroy(&opts);
    mongoc_collection_destroy(imports);
    mongoc_collection_destroy(errors);
}

static void import_and_check(int kill_worker)
{
    static const char *const extra[] = {"DEALIMPORT_ROW_BACKOFF_MS=200", NULL};
    it_gen_t *gen = it_gen_new(10000, 777u, 50, 0);
    bson_oid_t account, user, pipeline, qid;
    char key[128], logpath[256];
    uint64_t formula;
    pid_t sup;
    bson_t q;
    snprintf(key, sizeof(key), "imports/deals/results/%d-%d.csv", (int)getpid(),
             kill_worker);
    formula = put_file(gen, key);
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &account, &pipeline);
    it_enqueue(&env, key, &account, &user, &pipeline, it_gen_mappings(), &qid);
    snprintf(logpath, sizeof(logpath), "%s/it-results-%d.log", it_tmpdir(),
             (int)getpid());
    sup = it_supervisor_start(&env, extra, logpath);
    if (kill_worker) {
        pid_t w;
        assert_int_equal(it_wait_int(&env, &qid, "progress.lines", 2000, 60000),
                         0);
        w = it_worker_pid(&qid);
        if (w > 0)
            kill(w, SIGKILL);
    }
    assert_int_equal(it_wait_final(&env, &qid, 300000, &q), 0);
    assert_string_equal(it_str(&q, "status"), "completed");
    bson_destroy(&q);
    /* The error file is written after the final status: wait for it. */
    for (int i = 0; i < 300; i++) {
        char hex[25], filter[160];
        bson_oid_to_string(&qid, hex);
        snprintf(filter, sizeof(filter),
                 "{\"queue_id\":{\"$oid\":\"%s\"},\"error_file.key\":"
                 "{\"$exists\":true}}",
                 hex);
        if (it_count(&env, "csv_imports", filter) == 1)
            break;
        usleep(100000);
    }
    check_error_file(&qid, formula);
    assert_int_equal(it_process_stop(sup, SIGTERM, 30000), 0);
    it_gen_destroy(&gen);
}

static void test_error_file(void **state)
{
    (void)state;
    import_and_check(0);
}

static void test_error_file_after_kill(void **state)
{
    (void)state;
    import_and_check(1);
}

static void test_dry_run(void **state)
{
    it_gen_t *gen = it_gen_new(10000, 778u, 50, 0);
    bson_oid_t account, user, pipeline, qid;
    bson_t set = BSON_INITIALIZER, q, imp;
    char key[128], hex[25], filter[256];
    mongoc_collection_t *imports;
    mongoc_cursor_t *c;
    const bson_t *doc;
    bson_iter_t it, names;
    size_t n = 0;
    pid_t sup;
    (void)state;
    snprintf(key, sizeof(key), "imports/deals/results/%d-dry.csv",
             (int)getpid());
    put_file(gen, key);
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &account, &pipeline);
    it_enqueue(&env, key, &account, &user, &pipeline, it_gen_mappings(), &qid);
    BSON_APPEND_BOOL(&set, "dry_run", true);
    it_queue_set(&env, &qid, &set);
    sup = it_supervisor_start(&env, NULL, NULL);
    assert_int_equal(it_wait_final(&env, &qid, 300000, &q), 0);
    assert_string_equal(it_str(&q, "status"), "completed");
    bson_oid_to_string(&qid, hex);
    assert_int_equal(it_count_import_deals(&env, &qid, "{}"), 0);
    assert_int_equal(
        it_count_id(&env, "pipeline_stages", "pipeline_id", &pipeline), 0);
    /* The error file follows the final status: wait for it. */
    snprintf(filter, sizeof(filter),
             "{\"queue_id\":{\"$oid\":\"%s\"},\"error_file.key\":"
             "{\"$exists\":true}}",
             hex);
    for (int i = 0; i < 600 && it_count(&env, "csv_imports", filter) == 0; i++)
        usleep(100000);
    imports = it_coll(&env, "csv_imports");
    bson_init(&imp);
    {
        bson_t f = BSON_INITIALIZER;
        BSON_APPEND_OID(&f, "queue_id", &qid);
        c = mongoc_collection_find_with_opts(imports, &f, NULL, NULL);
        assert_true(mongoc_cursor_next(c, &doc));
        bson_copy_to_excluding_noinit(doc, &imp, "", NULL);
        mongoc_cursor_destroy(c);
        bson_destroy(&f);
    }
    assert_true(bson_iter_init_find(&it, &imp, "dry_run") &&
                bson_iter_as_bool(&it));
    assert_int_equal(dip_bson_get_int(&imp, "would_add", -1),
                     it_gen_count(gen, IT_ROW_GOOD));
    assert_int_equal(dip_bson_get_int(&imp, "total_records_added", -1), 0);
    assert_int_equal(dip_bson_get_int(&imp, "new_stages.count", -1),
                     it_gen_stage_count(gen));
    assert_true(bson_iter_init_find(&it, &imp, "new_stages") &&
                bson_iter_recurse(&it, &it) && bson_iter_find(&it, "names") &&
                bson_iter_recurse(&it, &names));
    while (bson_iter_next(&names)) {
        assert_true(it_gen_uses_stage(gen, bson_iter_utf8(&names, NULL)));
        n++;
    }
    assert_int_equal(n, it_gen_stage_count(gen));
    assert_non_null(dip_bson_get_str(&imp, "error_file.key"));
    bson_destroy(&imp);
    bson_destroy(&q);
    bson_destroy(&set);
    mongoc_collection_destroy(imports);
    assert_int_equal(it_process_stop(sup, SIGTERM, 30000), 0);
    it_gen_destroy(&gen);
}

static void check_token(const char *token, const char *secret)
{
    jwt_t *jwt = NULL;
    assert_int_equal(jwt_decode(&jwt, token, (const unsigned char *)secret,
                                (int)strlen(secret)),
                     0);
    assert_string_equal(jwt_get_grant(jwt, "type"), "access_token");
    assert_non_null(jwt_get_grant(jwt, "uid"));
    assert_non_null(jwt_get_grant(jwt, "account_id"));
    assert_non_null(jwt_get_grant(jwt, "scope"));
    jwt_free(jwt);
}

/* A small import with a receiver scripted by statuses; kill_between kills
 * the supervisor after the first attempt and starts another. */
static void notify(const int *statuses, int kill_between, int want)
{
    it_http_t rx;
    char url[512], urlset[1024], key[128];
    const char *extra[] = {urlset, "DEALIMPORT_POLL_MS=100", NULL};
    const char *data = "Deal Name,Value,Stage\nA,1,new\nB,x,new\n";
    bson_oid_t account, user, pipeline, qid;
    bson_t q;
    pid_t sup;
    const char *secret = getenv(SECRET_ENV);
    it_http_start(&rx, statuses);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/hooks", rx.port);
    snprintf(urlset, sizeof(urlset), "DEALIMPORT_NOTIFY_URL=%s", url);
    snprintf(key, sizeof(key), "imports/deals/results/%d-n%d.csv",
             (int)getpid(), kill_between);
    it_put(&env, key, data, strlen(data));
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &account, &pipeline);
    it_enqueue(&env, key, &account, &user, &pipeline,
               "{\"Deal Name\":\"name\",\"Value\":\"value\","
               "\"Stage\":\"stage_id\"}",
               &qid);
    sup = it_supervisor_start(&env, extra, NULL);
    assert_int_equal(it_wait_final(&env, &qid, 60000, &q), 0);
    bson_destroy(&q);
    if (kill_between) {
        for (int i = 0; i < 200 && it_http_count(&rx) < 1; i++)
            usleep(50000);
        assert_int_equal(it_http_count(&rx), 1);
        kill(sup, SIGKILL);
        waitpid(sup, NULL, 0);
        sup = it_supervisor_start(&env, extra, NULL);
    }
    /* Backoff 2 s, then 4 s: within 30 s. */
    for (int i = 0; i < 600 && it_http_count(&rx) < want; i++)
        usleep(50000);
    assert_int_equal(it_http_count(&rx), want);
    for (int i = 0; i < want; i++) {
        assert_string_equal(rx.req[i].key, rx.req[0].key);
        check_token(rx.req[i].auth, secret ? secret : "");
        assert_non_null(strstr(rx.req[i].body, "deal_import.completed"));
    }
    /* Recorded as delivered. */
    {
        char filter[160];
        for (int i = 0; i < 100; i++) {
            snprintf(filter, sizeof(filter),
                     "{\"payload.id\":\"%s\",\"status\":\"delivered\"}",
                     rx.req[0].key);
            if (it_count(&env, "import_events", filter) == 1)
                break;
            usleep(50000);
        }
        assert_int_equal(it_count(&env, "import_events", filter), 1);
    }
    assert_int_equal(it_process_stop(sup, SIGTERM, 30000), 0);
    it_http_stop(&rx);
}

static void test_notify_retried(void **state)
{
    const int statuses[] = {503, 503, 200, 0};
    (void)state;
    notify(statuses, 0, 3);
}

static void test_notify_after_supervisor_kill(void **state)
{
    const int statuses[] = {503, 200, 0};
    (void)state;
    notify(statuses, 1, 2);
}

static void test_delete_source(void **state)
{
    static const char *const extra[] = {"DEALIMPORT_DELETE_SOURCE=completed",
                                        NULL};
    const char *data = "Deal Name,Value,Stage\nA,1,new\n";
    bson_oid_t account, other, user, pipeline, qid1, qid2;
    bson_t q;
    pid_t sup;
    (void)state;
    it_put(&env, "imports/deals/results/keep-not.csv", data, strlen(data));
    it_put(&env, "imports/deals/results/keep.csv", data, strlen(data));
    bson_oid_init(&account, NULL);
    bson_oid_init(&other, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &account, &pipeline);
    it_enqueue(&env, "imports/deals/results/keep-not.csv", &account, &user,
               &pipeline, "{\"Deal Name\":\"name\",\"Stage\":\"stage_id\"}",
               &qid1);
    /* A pipeline of another account: the import fails. */
    it_enqueue(&env, "imports/deals/results/keep.csv", &other, &user, &pipeline,
               "{\"Deal Name\":\"name\",\"Stage\":\"stage_id\"}", &qid2);
    sup = it_supervisor_start(&env, extra, NULL);
    assert_int_equal(it_wait_final(&env, &qid1, 60000, &q), 0);
    assert_string_equal(it_str(&q, "status"), "completed");
    bson_destroy(&q);
    assert_int_equal(it_wait_final(&env, &qid2, 60000, &q), 0);
    assert_string_equal(it_str(&q, "status"), "failed");
    bson_destroy(&q);
    for (int i = 0; i < 100 && stored("imports/deals/results/keep-not.csv");
         i++)
        usleep(100000);
    assert_false(stored("imports/deals/results/keep-not.csv"));
    assert_true(stored("imports/deals/results/keep.csv"));
    {
        char hex[25], filter[160];
        bson_oid_to_string(&qid1, hex);
        snprintf(filter, sizeof(filter),
                 "{\"queue_id\":{\"$oid\":\"%s\"},\"source_deleted_at\":"
                 "{\"$exists\":true}}",
                 hex);
        /* recorded just after the object's deletion, by the same child */
        for (int i = 0; i < 100 && it_count(&env, "csv_imports", filter) != 1;
             i++)
            usleep(100000);
        assert_int_equal(it_count(&env, "csv_imports", filter), 1);
    }
    assert_int_equal(it_process_stop(sup, SIGTERM, 30000), 0);
}

static int64_t count_for(const bson_oid_t *qid, const char *rest)
{
    char hex[25], filter[256];
    bson_oid_to_string(qid, hex);
    snprintf(filter, sizeof(filter), "{\"queue_id\":{\"$oid\":\"%s\"}%s}", hex,
             rest);
    return it_count(&env, "csv_imports", filter);
}

/* Three queue documents name one key: two imports (two accounts' pipelines)
 * and a dry run, run one after another (one worker). The first two
 * completed imports want the source gone, but others that are not final
 * still name it, so it is kept; the last (the dry run, which keeps its
 * source itself) deletes it for them.
 * Failure classes: 9 (shared resources; two ending at once): each records
 * its wish before it counts the others, so the later count sees the
 * earlier wish; a crash between the deletion and its record: the next
 * follow-up deletes nothing (not an error) and records; 3 (indexes): the
 * count of open documents naming the key uses the index csv_key_status;
 * 1, 5 (the database slow or away): the follow-up fails and is tried
 * again, the source kept meanwhile; 11: a dry run is one only as a
 * boolean true. */
static void test_shared_source_deleted_last(void **state)
{
    static const char *const extra[] = {"DEALIMPORT_DELETE_SOURCE=completed",
                                        "DEALIMPORT_MAX_WORKERS=1", NULL};
    const char *key = "imports/deals/results/shared.csv";
    const char *data = "Deal Name,Value,Stage\nA,1,new\nB,2,new\n";
    bson_oid_t acc[2], pipe[2], user, qid[3];
    bson_t q;
    pid_t sup;
    (void)state;
    it_put(&env, key, data, strlen(data));
    bson_oid_init(&user, NULL);
    for (int i = 0; i < 2; i++) {
        bson_oid_init(&acc[i], NULL);
        it_pipeline(&env, &acc[i], &pipe[i]);
    }
    for (int i = 0; i < 3; i++) {
        it_enqueue(&env, key, &acc[i % 2], &user, &pipe[i % 2],
                   "{\"Deal Name\":\"name\",\"Stage\":\"stage_id\"}", &qid[i]);
        usleep(5000); /* claimed in this order */
    }
    {
        mongoc_collection_t *c = it_coll(&env, "queues");
        bson_t f = BSON_INITIALIZER;
        bson_t *u = BCON_NEW("$set", "{", "dry_run", BCON_BOOL(true), "}");
        BSON_APPEND_OID(&f, "_id", &qid[2]);
        assert_true(mongoc_collection_update_one(c, &f, u, NULL, NULL, NULL));
        bson_destroy(u);
        bson_destroy(&f);
        mongoc_collection_destroy(c);
    }
    sup = it_supervisor_start(
        &env, extra,
        it_tmp_name(tmp_log, sizeof(tmp_log), "it-shared-source.log"));
    for (int i = 0; i < 3; i++) {
        assert_int_equal(it_wait_final(&env, &qid[i], 60000, &q), 0);
        printf("import %d: %s %s\n", i, it_str(&q, "status"),
               it_str(&q, "error"));
        assert_string_equal(it_str(&q, "status"), "completed");
        bson_destroy(&q);
    }
    assert_int_equal(count_for(&qid[0], ",\"total_records_added\":2"), 1);
    assert_int_equal(count_for(&qid[1], ",\"total_records_added\":2"), 1);
    assert_int_equal(count_for(&qid[2], ",\"dry_run\":true,\"would_add\":2"),
                     1);
    for (int i = 0; i < 100 && stored(key); i++)
        usleep(100000);
    assert_false(stored(key));
    /* the two imports recorded when it went, after the last had ended;
     * the dry run did not want it gone */
    assert_int_equal(count_for(&qid[0], ",\"source_deleted_at\":{\"$exists\":"
                                        "true}"),
                     1);
    assert_int_equal(count_for(&qid[1], ",\"source_deleted_at\":{\"$exists\":"
                                        "true}"),
                     1);
    assert_int_equal(count_for(&qid[2], ",\"source_deleted_at\":{\"$exists\":"
                                        "true}"),
                     0);
    assert_true(it_file_contains(it_tmp_name(tmp_log, sizeof(tmp_log),
                                             "it-shared-source.log"),
                                 "it is deleted after the last") ||
                it_file_contains(it_tmp_name(tmp_log, sizeof(tmp_log),
                                             "it-shared-source.log"),
                                 "deleted for the earlier imports"));
    assert_int_equal(it_process_stop(sup, SIGTERM, 30000), 0);
}

static int teardown(void **state)
{
    (void)state;
    it_stop_all(&env);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_error_file, teardown),
        cmocka_unit_test_teardown(test_error_file_after_kill, teardown),
        cmocka_unit_test_teardown(test_dry_run, teardown),
        cmocka_unit_test_teardown(test_notify_retried, teardown),
        cmocka_unit_test_teardown(test_notify_after_supervisor_kill, teardown),
        cmocka_unit_test_teardown(test_delete_source, teardown),
        cmocka_unit_test_teardown(test_shared_source_deleted_last, teardown),
    };
    int rc = it_env_init(&env, "results");
    if (rc)
        return rc;
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    it_env_release(&env);
    return rc;
}
