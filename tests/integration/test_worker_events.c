/*
 * Acceptance, worker events (protocol version 2) and hostile input: a line
 * error keeps the row as it was in the file within its byte limit (the
 * 16,384-column case), an import stores at most so many error documents
 * and counts the rest, a refused deal keeps its row, an import creates at
 * most so many new stages, a resume on a replaced file fails and keeps what
 * was imported, and a worker whose supervisor stops reading stops by
 * itself, without another write.
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
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "dip_bson.h"
#include "dip_msg.h"
#include "it_check.h"
#include "it_env.h"
#include "it_tmp.h"

static it_env_t env;
static pid_t sup = -1;
static char logpath[256];

static const char mappings[] =
    "{\"Deal Name\":\"name\",\"Stage\":\"stage_id\",\"Amount\":\"value\"}";

static void start_sup(const char *const *extra)
{
    snprintf(logpath, sizeof(logpath), "%s/it-worker-events-%d.log",
             it_tmpdir(), (int)getpid());
    sup = it_supervisor_start(&env, extra, logpath);
    assert_true(sup > 0);
}

static int teardown(void **state)
{
    int st;
    (void)state;
    (void)it_dev_slow(&env, "{\"write_us\": 0}");
    if (sup <= 0)
        return 0;
    kill(sup, SIGCONT);
    st = it_process_stop(sup, SIGTERM, 30000);
    sup = -1;
    if (!(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
        fprintf(stderr, "supervisor did not exit 0 (status %d); log in %s\n",
                st, logpath);
        return -1;
    }
    return 0;
}

static void ids(bson_oid_t *account, bson_oid_t *user, bson_oid_t *pipeline)
{
    bson_oid_init(account, NULL);
    bson_oid_init(user, NULL);
    it_pipeline(&env, account, pipeline);
}

static int64_t count_qid(const char *coll, const char *key,
                         const bson_oid_t *qid, const char *more)
{
    char filter[512], hex[25];
    /* an import's deals on their index (the suite runs with notablescan) */
    if (strcmp(coll, "deals") == 0 && strcmp(key, "import.queue_id") == 0 &&
        more == NULL)
        return it_count_import_deals(&env, qid, "{}");
    bson_oid_to_string(qid, hex);
    snprintf(filter, sizeof(filter), "{\"%s\":{\"$oid\":\"%s\"}%s%s}", key, hex,
             more ? "," : "", more ? more : "");
    return it_count(&env, coll, filter);
}

/* The csv_imports document of an import (out initialized by the callee). */
static void import_log(const bson_oid_t *qid, bson_t *out)
{
    mongoc_collection_t *c = it_coll(&env, "csv_imports");
    bson_t *filter = BCON_NEW("queue_id", BCON_OID(qid));
    mongoc_cursor_t *cur =
        mongoc_collection_find_with_opts(c, filter, NULL, NULL);
    const bson_t *doc;
    assert_true(mongoc_cursor_next(cur, &doc));
    bson_copy_to(doc, out);
    mongoc_cursor_destroy(cur);
    bson_destroy(filter);
    mongoc_collection_destroy(c);
}

/* 1 while pid runs (a zombie its frozen parent has not reaped does not). */
static int running(pid_t pid)
{
    char path[512], buf[512];
    FILE *f;
    const char *paren;
    int alive = 0;
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    f = fopen(path, "re");
    if (f && fgets(buf, sizeof(buf), f) && (paren = strrchr(buf, ')')) &&
        paren[1] == ' ')
        alive = paren[2] != 'Z' && paren[2] != 'X';
    if (f)
        fclose(f);
    return alive;
}

static long peak_rss_kb(pid_t pid)
{
    char path[512], line[256];
    long kb = -1;
    FILE *f;
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    f = fopen(path, "re");
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, "VmHWM:", 6) == 0)
            kb = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return kb;
}

/* Issue 9's amplification: a 16,384-column header and 300 short bad rows.
 * Each error document holds the row's own three cells (not 16,384), stays
 * far under 32 KB, and the supervisor's heap stays small. */
static void test_wide_header_bad_rows(void **state)
{
    enum { NCOLS = 16384, BAD = 300 };
    size_t cap = (size_t)NCOLS * 8 + (size_t)BAD * 64 + 64, len = 0;
    char *csv = malloc(cap);
    bson_oid_t account, user, pipeline, qid;
    mongoc_collection_t *c;
    mongoc_cursor_t *cur;
    const bson_t *doc;
    bson_t *filter, q, log;
    bson_iter_t it;
    uint32_t biggest = 0;
    int64_t n = 0;
    long rss;
    (void)state;
    start_sup(NULL);
    len += (size_t)snprintf(csv + len, cap - len, "Deal Name,Stage,Amount");
    for (int i = 3; i < NCOLS; i++)
        len += (size_t)snprintf(csv + len, cap - len, ",c%d", i);
    csv[len++] = '\n';
    for (int i = 1; i <= BAD; i++)
        len += (size_t)snprintf(csv + len, cap - len,
                                "Bad %d,Lead,not a number %d\n", i, i);
    ids(&account, &user, &pipeline);
    it_put(&env, "imports/events/wide.csv", csv, len);
    free(csv);
    it_enqueue(&env, "imports/events/wide.csv", &account, &user, &pipeline,
               mappings, &qid);
    assert_int_equal(it_wait_final(&env, &qid, 300000, &q), 0);
    rss = peak_rss_kb(sup);
    fprintf(stderr, "supervisor peak RSS %ld kB\n", rss);
    assert_string_equal(it_str(&q, "status"), "completed");
    assert_int_equal(count_qid("csv_import_errors", "queue_id", &qid, NULL),
                     BAD);

    c = it_coll(&env, "csv_import_errors");
    filter = BCON_NEW("queue_id", BCON_OID(&qid));
    cur = mongoc_collection_find_with_opts(c, filter, NULL, NULL);
    while (mongoc_cursor_next(cur, &doc)) {
        bson_iter_t row;
        n++;
        if (doc->len > biggest)
            biggest = doc->len;
        assert_true(bson_iter_init_find(&it, doc, "row"));
        assert_true(BSON_ITER_HOLDS_ARRAY(&it));
        assert_true(bson_iter_recurse(&it, &row));
        {
            int cells = 0;
            while (bson_iter_next(&row))
                cells++;
            assert_int_equal(cells, 3); /* its own cells, no padding */
        }
        assert_true(bson_iter_init_find(&it, doc, "row_truncated"));
        assert_false(bson_iter_bool(&it));
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(filter);
    mongoc_collection_destroy(c);
    fprintf(stderr, "largest error document %u bytes\n", biggest);
    assert_int_equal(n, BAD);
    assert_true(biggest < 32 * 1024);
    assert_true(rss > 0 && rss < 150 * 1024);

    /* The header went once, to the queue document, and on to csv_imports. */
    assert_true(bson_iter_init_find(&it, &q, "header"));
    assert_true(BSON_ITER_HOLDS_ARRAY(&it));
    assert_false(bson_iter_init(&it, &q) &&
                 bson_iter_find_descendant(&it, "checkpoint.header", &it));
    import_log(&qid, &log);
    assert_int_equal(dip_bson_get_int(&log, "total_errors", -1), BAD);
    assert_true(bson_iter_init(&it, &log) &&
                bson_iter_find_descendant(&it, "header.16383", &it));
    assert_string_equal(bson_iter_utf8(&it, NULL), "c16383");
    bson_destroy(&log);
    bson_destroy(&q);
}

/* An import stores at most DEALIMPORT_MAX_LINE_ERRORS error documents; the
 * rest are counted, and total_errors is stored + not stored. */
static void test_error_cap(void **state)
{
    static const char *const extra[] = {"DEALIMPORT_MAX_LINE_ERRORS=5", NULL};
    char csv[4096];
    size_t len = 0;
    bson_oid_t account, user, pipeline, qid;
    bson_t q, log;
    (void)state;
    start_sup(extra);
    len += (size_t)snprintf(csv + len, sizeof(csv) - len,
                            "Deal Name,Stage,Amount\n");
    for (int i = 1; i <= 30; i++)
        len += (size_t)snprintf(
            csv + len, sizeof(csv) - len,
            i % 3 == 0 ? "Good %d,Lead,100\n" : "Bad %d,Lead,x\n", i);
    ids(&account, &user, &pipeline);
    it_put(&env, "imports/events/cap.csv", csv, len);
    it_enqueue(&env, "imports/events/cap.csv", &account, &user, &pipeline,
               mappings, &qid);
    assert_int_equal(it_wait_final(&env, &qid, 120000, &q), 0);
    assert_string_equal(it_str(&q, "status"), "completed");
    assert_int_equal(count_qid("csv_import_errors", "queue_id", &qid, NULL), 5);
    assert_int_equal(count_qid("deals", "import.queue_id", &qid, NULL), 10);
    import_log(&qid, &log);
    assert_int_equal(dip_bson_get_int(&log, "errors_not_stored", -1), 15);
    assert_int_equal(dip_bson_get_int(&log, "total_errors", -1), 20);
    assert_int_equal(dip_bson_get_int(&log, "total_records_added", -1), 10);
    bson_destroy(&log);
    bson_destroy(&q);
}

/* A deal the database refuses (here: a unique index of the tenant's own on
 * the name) is a line error that carries the row as it was. */
static void test_refused_deal_keeps_row(void **state)
{
    static const char csv[] = "Deal Name,Stage,Amount\n"
                              "Same,Lead,100\n"
                              "Other,Lead,200\n"
                              "Same,Won,300\n";
    bson_oid_t account, user, pipeline, qid;
    mongoc_collection_t *c, *errs;
    bson_t *keys, *filter, q;
    mongoc_cursor_t *cur;
    const bson_t *doc;
    bson_error_t error;
    bson_iter_t it;
    (void)state;
    c = it_coll(&env, "deals");
    keys = BCON_NEW("createIndexes", BCON_UTF8("deals"), "indexes", "[", "{",
                    "key", "{", "name", BCON_INT32(1), "}", "name",
                    BCON_UTF8("tenant_name_unique"), "unique", BCON_BOOL(true),
                    "}", "]");
    if (!mongoc_database_write_command_with_opts(env.db, keys, NULL, NULL,
                                                 &error))
        fail_msg("createIndexes: %s", error.message);
    bson_destroy(keys);
    start_sup(NULL);
    ids(&account, &user, &pipeline);
    it_put(&env, "imports/events/refused.csv", csv, strlen(csv));
    it_enqueue(&env, "imports/events/refused.csv", &account, &user, &pipeline,
               mappings, &qid);
    assert_int_equal(it_wait_final(&env, &qid, 120000, &q), 0);
    assert_string_equal(it_str(&q, "status"), "completed");
    assert_int_equal(count_qid("deals", "import.queue_id", &qid, NULL), 2);

    filter = BCON_NEW("queue_id", BCON_OID(&qid));
    errs = it_coll(&env, "csv_import_errors");
    cur = mongoc_collection_find_with_opts(errs, filter, NULL, NULL);
    assert_true(mongoc_cursor_next(cur, &doc));
    assert_int_equal(dip_bson_get_int(doc, "line", -1), 3);
    assert_true(bson_iter_init(&it, doc) &&
                bson_iter_find_descendant(&it, "row.2", &it));
    assert_string_equal(bson_iter_utf8(&it, NULL), "300");
    assert_true(bson_iter_init(&it, doc) &&
                bson_iter_find_descendant(&it, "row.0", &it));
    assert_string_equal(bson_iter_utf8(&it, NULL), "Same");
    assert_false(mongoc_cursor_next(cur, &doc));
    mongoc_cursor_destroy(cur);
    mongoc_collection_destroy(errs);
    bson_destroy(filter);
    mongoc_collection_drop(c, NULL);
    mongoc_collection_destroy(c);
    bson_destroy(&q);
}

/* At most DEALIMPORT_MAX_NEW_STAGES new stages per import; rows naming
 * more are line errors that say why. */
static void test_stage_cap(void **state)
{
    static const char *const extra[] = {"DEALIMPORT_MAX_NEW_STAGES=3", NULL};
    char csv[2048];
    size_t len = 0;
    bson_oid_t account, user, pipeline, qid;
    bson_t q, *filter;
    mongoc_collection_t *errs;
    mongoc_cursor_t *cur;
    const bson_t *doc;
    int64_t stages_before;
    (void)state;
    start_sup(extra);
    len += (size_t)snprintf(csv + len, sizeof(csv) - len,
                            "Deal Name,Stage,Amount\n");
    for (int i = 1; i <= 10; i++)
        len += (size_t)snprintf(csv + len, sizeof(csv) - len,
                                "Deal %d,Brand new stage %d,100\n", i, i);
    /* a stage created earlier by this import is no new stage */
    len += (size_t)snprintf(csv + len, sizeof(csv) - len,
                            "Deal 11,Brand new stage 2,100\n");
    ids(&account, &user, &pipeline);
    stages_before =
        it_count_id(&env, "pipeline_stages", "pipeline_id", &pipeline);
    it_put(&env, "imports/events/stages.csv", csv, len);
    it_enqueue(&env, "imports/events/stages.csv", &account, &user, &pipeline,
               mappings, &qid);
    assert_int_equal(it_wait_final(&env, &qid, 120000, &q), 0);
    assert_string_equal(it_str(&q, "status"), "completed");
    assert_int_equal(
        it_count_id(&env, "pipeline_stages", "pipeline_id", &pipeline) -
            stages_before,
        3);
    assert_int_equal(count_qid("deals", "import.queue_id", &qid, NULL), 4);
    assert_int_equal(count_qid("csv_import_errors", "queue_id", &qid, NULL), 7);
    filter = BCON_NEW("queue_id", BCON_OID(&qid));
    errs = it_coll(&env, "csv_import_errors");
    cur = mongoc_collection_find_with_opts(errs, filter, NULL, NULL);
    while (mongoc_cursor_next(cur, &doc)) {
        const char *msg = it_str(doc, "message");
        if (strstr(msg, "DEALIMPORT_MAX_NEW_STAGES") == NULL)
            fail_msg("the error does not say why: '%s'", msg);
        assert_string_equal(it_str(doc, "field"), "stage");
    }
    mongoc_cursor_destroy(cur);
    mongoc_collection_destroy(errs);
    bson_destroy(filter);
    bson_destroy(&q);
}

/* A resume on a file that is not the one the import started on fails with
 * a sentence that says so and keeps what was imported; the checkpoint of
 * a run names its file. */
static void test_resume_on_changed_file(void **state)
{
    static const char csv[] = "Deal Name,Stage,Amount\n"
                              "One,Lead,100\n"
                              "Two,Lead,200\n"
                              "Three,Lead,300\n";
    bson_oid_t account, user, pipeline, qid, other;
    bson_t q, *set;
    bson_iter_t it;
    (void)state;
    ids(&account, &user, &pipeline);
    it_put(&env, "imports/events/changed.csv", csv, strlen(csv));
    /* As if paused after line 1 of another version of the file. */
    it_enqueue(&env, "imports/events/changed.csv", &account, &user, &pipeline,
               mappings, &qid);
    set = BCON_NEW("header", "[", BCON_UTF8("Deal Name"), BCON_UTF8("Stage"),
                   BCON_UTF8("Amount"), "]", "checkpoint", "{", "line",
                   BCON_INT64(1), "offset", BCON_INT64(36), "delimiter",
                   BCON_UTF8(","), "added", BCON_INT64(1), "errors",
                   BCON_INT64(0), "header", "[", BCON_UTF8("Deal Name"),
                   BCON_UTF8("Stage"), BCON_UTF8("Amount"), "]", "file", "{",
                   "etag", BCON_UTF8("\"an-older-version\""), "}", "}");
    it_queue_set(&env, &qid, set);
    bson_destroy(set);
    /* And a fresh import of the same file, whose checkpoint names it. */
    it_enqueue(&env, "imports/events/changed.csv", &account, &user, &pipeline,
               mappings, &other);
    start_sup(NULL);
    assert_int_equal(it_wait_final(&env, &qid, 120000, &q), 0);
    assert_string_equal(it_str(&q, "status"), "failed");
    if (strstr(it_str(&q, "error"),
               "the file changed since the import started") == NULL)
        fail_msg("error: '%s'", it_str(&q, "error"));
    assert_int_equal(count_qid("deals", "import.queue_id", &qid, NULL), 0);
    bson_destroy(&q);

    assert_int_equal(it_wait_final(&env, &other, 120000, &q), 0);
    assert_string_equal(it_str(&q, "status"), "completed");
    assert_true(bson_iter_init(&it, &q) &&
                bson_iter_find_descendant(&it, "checkpoint.file.etag", &it));
    assert_true(strlen(bson_iter_utf8(&it, NULL)) > 2);
    bson_destroy(&q);
}

/* A supervisor that stops reading (frozen here) makes its worker stop by
 * itself within about a lease, without writing on; after the thaw the
 * import resumes and completes exactly. */
static void test_worker_stops_when_supervisor_stops_reading(void **state)
{
    static const char *const extra[] = {"DEALIMPORT_LEASE_S=2",
                                        "DEALIMPORT_BATCH_ROWS=500", NULL};
    /* Each deal written costs the server 200 us: the whole file takes
     * 20 s at the least, far more than the few seconds
     * the worker may go on after the freeze, on a machine of any speed
     * (a fast one wrote all 100,000 rows before it stopped). */
    const int rows = 100000;
    bson_oid_t account, user, pipeline, qid;
    pid_t worker;
    int64_t deals_then, deals_later;
    bson_t q;
    int gone = 0;
    (void)state;
    assert_int_equal(it_dev_slow(&env, "{\"write_us\": 200}"), 0);
    start_sup(extra);
    ids(&account, &user, &pipeline);
    it_put_rows(&env, "imports/events/frozen.csv", rows, 16);
    it_enqueue(&env, "imports/events/frozen.csv", &account, &user, &pipeline,
               "{\"Deal Name\":\"name\",\"Value\":\"value\",\"Stage\":"
               "\"stage_id\"}",
               &qid);
    assert_int_equal(it_wait_int(&env, &qid, "progress.lines", 2000, 120000),
                     0);
    worker = it_worker_pid(&qid);
    assert_true(worker > 0);
    assert_int_equal(kill(sup, SIGSTOP), 0);
    /* a lease, the heartbeat's margin, and some slack */
    for (int i = 0; i < 200 && !gone; i++) {
        usleep(100 * 1000);
        gone = !running(worker);
    }
    deals_then = count_qid("deals", "import.queue_id", &qid, NULL);
    sleep(2);
    deals_later = count_qid("deals", "import.queue_id", &qid, NULL);
    fprintf(stderr, "worker gone: %d; deals %lld then %lld of %d\n", gone,
            (long long)deals_then, (long long)deals_later, rows);
    assert_int_equal(kill(sup, SIGCONT), 0);
    assert_true(gone);
    assert_int_equal(deals_then, deals_later);
    /* it stopped by itself, before the end, saying why */
    assert_true(deals_then < rows);
    assert_true(it_file_contains(logpath, "stopping without another write"));
    assert_int_equal(it_wait_final(&env, &qid, 600000, &q), 0);
    assert_string_equal(it_str(&q, "status"), "completed");
    assert_int_equal(count_qid("deals", "import.queue_id", &qid, NULL), rows);
    assert_true(it_file_contains(logpath, "stopping without another write"));
    bson_destroy(&q);
}

/* Issue 9.3: a line error naming a long non-ASCII column is cut at a
 * character boundary; the import goes on and completes. */
static void test_long_non_ascii_column(void **state)
{
    char *csv = malloc(8192), *p = csv;
    bson_oid_t account, user, pipeline, qid;
    bson_t q, *filter;
    mongoc_collection_t *errs;
    mongoc_cursor_t *cur;
    const bson_t *doc;
    const char *msg;
    (void)state;
    start_sup(NULL);
    p += sprintf(p, "Deal Name,Stage,Amount,");
    for (int i = 0; i < 700; i++)
        p += sprintf(p, "\xc3\xa9"); /* 'é' */
    p += sprintf(p, "\nOne,Lead,100,x\nTwo,Lead,200,a");
    *p++ = '\0'; /* a NUL in the long column's cell: a line error */
    p += sprintf(p, "b\nThree,Lead,300,y\n");
    ids(&account, &user, &pipeline);
    it_put(&env, "imports/events/long-column.csv", csv, (size_t)(p - csv));
    free(csv);
    it_enqueue(&env, "imports/events/long-column.csv", &account, &user,
               &pipeline, mappings, &qid);
    assert_int_equal(it_wait_final(&env, &qid, 120000, &q), 0);
    assert_string_equal(it_str(&q, "status"), "completed");
    assert_int_equal(count_qid("deals", "import.queue_id", &qid, NULL), 2);
    filter = BCON_NEW("queue_id", BCON_OID(&qid));
    errs = it_coll(&env, "csv_import_errors");
    cur = mongoc_collection_find_with_opts(errs, filter, NULL, NULL);
    assert_true(mongoc_cursor_next(cur, &doc));
    msg = it_str(doc, "message");
    /* The column is named, shortened at a character boundary. */
    assert_non_null(strstr(msg, "(column '\xc3\xa9\xc3\xa9"));
    assert_non_null(strstr(msg, "\xc3\xa9...')"));
    assert_true(bson_utf8_validate(msg, strlen(msg), false));
    mongoc_cursor_destroy(cur);
    mongoc_collection_destroy(errs);
    bson_destroy(filter);
    bson_destroy(&q);
}

/* Issue 9.4: 17 columns named with 60,000 control characters each. The
 * header travels once (in start), never with each batch, so no frame
 * comes near the limit and the import completes. */
static void test_huge_control_char_header(void **state)
{
    enum { COLS = 17, NAME = 60000, ROWS = 3000 };
    size_t cap = (size_t)COLS * (NAME + 8) + (size_t)ROWS * 40 + 64;
    char *csv = malloc(cap), *p = csv;
    bson_oid_t account, user, pipeline, qid;
    bson_t q;
    (void)state;
    start_sup(NULL);
    p += sprintf(p, "Deal Name,Stage,Amount");
    for (int c = 0; c < COLS; c++) {
        /* distinct control characters, none of them a line break or tab */
        static const char ctl[COLS] = {1,  2,  3,  4,  5,  6,  7,  8, 11,
                                       12, 14, 15, 16, 17, 18, 19, 20};
        *p++ = ',';
        memset(p, ctl[c], NAME);
        p += NAME;
    }
    *p++ = '\n';
    for (int i = 1; i <= ROWS; i++)
        p += sprintf(p, "Deal %d,Lead,%d\n", i, i);
    ids(&account, &user, &pipeline);
    it_put(&env, "imports/events/control-header.csv", csv, (size_t)(p - csv));
    free(csv);
    it_enqueue(&env, "imports/events/control-header.csv", &account, &user,
               &pipeline, mappings, &qid);
    assert_int_equal(it_wait_final(&env, &qid, 300000, &q), 0);
    assert_string_equal(it_str(&q, "status"), "completed");
    assert_int_equal(count_qid("deals", "import.queue_id", &qid, NULL), ROWS);
    bson_destroy(&q);
}

/* Issue 9.9: a process that takes an import's identity on the events
 * socket before its worker does, and speaks for it (a hello without the
 * spawn's secret, a forged progress report, a forged end, in this protocol
 * and the old one), is not heard; the import completes as the file says. */
static void test_forged_identity_not_heard(void **state)
{
    static const char *const extra[] = {"DEALIMPORT_LEASE_S=2",
                                        "DEALIMPORT_POLL_MS=3000", NULL};
    static const char csv[] = "Deal Name,Stage,Amount\n"
                              "One,Lead,100\n"
                              "Two,Lead,200\n";
    bson_oid_t account, user, pipeline, qid;
    char ep[400], ident[64], hex[25], v1[256];
    void *ctx, *dealer;
    int linger = 0;
    bson_value_t id;
    bson_t q, *frames[3];
    (void)state;
    start_sup(extra);
    ids(&account, &user, &pipeline);
    it_put(&env, "imports/events/forged.csv", csv, strlen(csv));
    it_enqueue(&env, "imports/events/forged.csv", &account, &user, &pipeline,
               mappings, &qid);
    /* Before the next claim (3 s), so the identity is the forger's. */
    bson_oid_to_string(&qid, hex);
    snprintf(ident, sizeof(ident), "deals_import_queue_%s", hex);
    snprintf(ep, sizeof(ep), "ipc://%s/events.ipc", env.runtime);
    ctx = zmq_ctx_new();
    dealer = zmq_socket(ctx, ZMQ_DEALER);
    zmq_setsockopt(dealer, ZMQ_ROUTING_ID, ident, strlen(ident));
    zmq_setsockopt(dealer, ZMQ_LINGER, &linger, sizeof(linger));
    assert_int_equal(zmq_connect(dealer, ep), 0);
    id.value_type = BSON_TYPE_OID;
    bson_oid_copy(&qid, &id.value.v_oid);
    frames[0] = dip_msg_hello(&id, 4242, "someone", 1,
                              "0000000000000000000000000000000000000000000000"
                              "000000000000000000");
    frames[1] = dip_msg_batch(999999, 999999, 0, 0, 10, 10, NULL, 0);
    frames[2] = dip_msg_done(DIP_DONE_FAILED, 999999, 0, "forged", NULL, 0);
    snprintf(v1, sizeof(v1),
             "{\"v\":1,\"type\":\"done\",\"queue_id\":\"%s\","
             "\"status\":\"failed\",\"lines\":1,\"error\":\"forged\"}",
             hex);
    for (int round = 0; round < 40; round++) {
        for (int i = 0; i < 3; i++)
            zmq_send(dealer, bson_get_data(frames[i]), frames[i]->len,
                     ZMQ_DONTWAIT);
        zmq_send(dealer, v1, strlen(v1), ZMQ_DONTWAIT);
        usleep(100 * 1000);
        assert_true(it_queue_int(&env, &qid, "progress.lines") < 999999);
    }
    for (int i = 0; i < 3; i++)
        bson_destroy(frames[i]);
    zmq_close(dealer);
    zmq_ctx_term(ctx);
    assert_int_equal(it_wait_final(&env, &qid, 120000, &q), 0);
    assert_string_equal(it_str(&q, "status"), "completed");
    assert_int_equal(dip_bson_get_int(&q, "progress.lines", -1), 2);
    assert_int_equal(count_qid("deals", "import.queue_id", &qid, NULL), 2);
    bson_destroy(&q);
    {
        char needle[128];
        snprintf(needle, sizeof(needle), "dropped a message from '%s'", ident);
        assert_true(it_file_contains(logpath, needle));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_wide_header_bad_rows, teardown),
        cmocka_unit_test_teardown(test_error_cap, teardown),
        cmocka_unit_test_teardown(test_refused_deal_keeps_row, teardown),
        cmocka_unit_test_teardown(test_stage_cap, teardown),
        cmocka_unit_test_teardown(test_resume_on_changed_file, teardown),
        cmocka_unit_test_teardown(
            test_worker_stops_when_supervisor_stops_reading, teardown),
        cmocka_unit_test_teardown(test_long_non_ascii_column, teardown),
        cmocka_unit_test_teardown(test_huge_control_char_header, teardown),
        cmocka_unit_test_teardown(test_forged_identity_not_heard, teardown),
    };
    int rc = it_env_init(&env, "wevents");
    if (rc)
        return rc;
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    it_env_release(&env);
    return rc;
}
