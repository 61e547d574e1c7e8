/*
 * Acceptance, end to end through the real supervisor and worker: the files
 * the original service imported and the reader once refused. Inch marks in
 * quoted cells and header names ("OVERSIZE 32" THICK BLACK CORD; "a"b,
 * kept as the file has it, opening quote included, as the original did);
 * empty header names (a trailing delimiter, a quoted "") ignored with a note
 * naming the position; a repeated header name ignored with a note unless
 * the mapping names it, which fails the import naming it; a quoted cell
 * open at the end of the file, whose rows before it import and which is one
 * line error holding the file's text; a row with more non-empty cells than
 * the header, whose line error gives both counts; and a resume from a
 * checkpoint at a byte offset in such a file.
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

#define MAX_FILTERS 4
#define MAX_ERRORS 2

typedef struct {
    int64_t line;
    const char *words; /* in the message */
    const char *raw;   /* the row is exactly [raw]; NULL: not checked */
} want_error_t;

typedef struct {
    const char *name;
    const char *key;
    const char *data;
    const char *mappings;
    const char *status;
    int64_t records, added, errors;
    const char *words[2]; /* in `error` (failed) or each in a note */
    /* each matches exactly one deal of the import (import.queue_id added) */
    const char *filters[MAX_FILTERS];
    want_error_t errs[MAX_ERRORS];
    /* resume: the checkpoint's header (JSON array) and the line whose end
     * is the checkpoint's offset; NULL for a fresh import */
    const char *cp_header;
    const char *cp_after; /* the text the checkpoint's row ends with */
    int64_t cp_line;
} case_t;

static const char map4[] = "{\"Name\":\"name\",\"Value\":\"value\","
                           "\"Stage\":\"stage_id\",\"Status\":\"status\"}";
static const char map3[] =
    "{\"Name\":\"name\",\"Value\":\"value\",\"Stage\":\"stage_id\"}";

static const case_t cases[] = {
    {"inch marks in quoted cells",
     "imports/deals/quotes/inch.csv",
     "Name,Value,Stage,Status\n"
     "\"OVERSIZE 32\" THICK BLACK CORD\",1,qualified,open\n"
     "\"a\"b,1,qualified,open\n"
     "\"Cable 6\"\" long, 2\"\" wide\",3,qualified,open\n",
     map4,
     "completed",
     3,
     3,
     0,
     {NULL, NULL},
     {"{\"name\":\"OVERSIZE 32\\\" THICK BLACK CORD\",\"value\":1.0,"
      "\"status\":\"open\",\"import.line\":1}",
      "{\"name\":\"\\\"a\\\"b\",\"value\":1.0,\"import.line\":2}",
      "{\"name\":\"Cable 6\\\" long, 2\\\" wide\",\"value\":3.0,"
      "\"import.line\":3}",
      NULL},
     {{0, NULL, NULL}},
     NULL,
     NULL,
     0},
    {"an inch mark in a header name",
     "imports/deals/quotes/inch-header.csv",
     "Name,Value,Stage,\"Size 32\" wide\"\n"
     "Acme,5,Lead,yes\n",
     "{\"Name\":\"name\",\"Value\":\"value\",\"Stage\":\"stage_id\","
     "\"Size 32\\\" wide\":\"description\"}",
     "completed",
     1,
     1,
     0,
     {NULL, NULL},
     {"{\"name\":\"Acme\",\"description\":\"yes\",\"import.line\":1}", NULL},
     {{0, NULL, NULL}},
     NULL,
     NULL,
     0},
    {"a trailing delimiter on the header line",
     "imports/deals/quotes/trailing.csv",
     "Name,Value,Stage,\r\n"
     "A,1,Lead,\r\n"
     "B,2,Lead\r\n"
     "C,3,Lead,under the empty name\r\n",
     map3,
     "completed",
     3,
     3,
     0,
     {"column 4 of the header has no name, so it is ignored", NULL},
     {"{\"name\":\"C\",\"value\":3.0,\"import.line\":3}", NULL},
     {{0, NULL, NULL}},
     NULL,
     NULL,
     0},
    {"a quoted empty header name",
     "imports/deals/quotes/empty-name.csv",
     "Name,Value,\"\",Stage\n"
     "A,1,x,Lead\n",
     map3,
     "completed",
     1,
     1,
     0,
     {"column 3 of the header has no name, so it is ignored", NULL},
     {"{\"name\":\"A\",\"value\":1.0,\"import.line\":1}", NULL},
     {{0, NULL, NULL}},
     NULL,
     NULL,
     0},
    {"a repeated header name the mapping does not use",
     "imports/deals/quotes/repeated.csv",
     "Name,Value,Stage,Notes,Notes\n"
     "A,1,Lead,x,y\n",
     map3,
     "completed",
     1,
     1,
     0,
     {"the header repeats 'Notes': columns with a repeated name are ignored",
      NULL},
     {"{\"name\":\"A\",\"description\":{\"$exists\":false},"
      "\"import.line\":1}",
      NULL},
     {{0, NULL, NULL}},
     NULL,
     NULL,
     0},
    {"a repeated header name the mapping uses",
     "imports/deals/quotes/repeated-mapped.csv",
     "Name,Value,Stage,Notes,Notes\n"
     "A,1,Lead,x,y\n",
     "{\"Name\":\"name\",\"Value\":\"value\",\"Stage\":\"stage_id\","
     "\"Notes\":\"description\"}",
     "failed",
     0,
     0,
     0,
     {"column 'Notes' more than once", NULL},
     {NULL},
     {{0, NULL, NULL}},
     NULL,
     NULL,
     0},
    {"a quoted cell open at the end of the file",
     "imports/deals/quotes/open.csv",
     "Name,Value,Stage\n"
     "A,1,Lead\n"
     "\"B 5\" x\",2,Lead\n"
     "C,\"3,Lead\n"
     "D,4,Lead\n",
     map3,
     "completed",
     3,
     2,
     1,
     {NULL, NULL},
     {"{\"name\":\"A\",\"import.line\":1}",
      "{\"name\":\"B 5\\\" x\",\"import.line\":2}", NULL},
     {{3,
       "a quoted cell is still open at the end of the file (column "
       "'Value')",
       "C,\"3,Lead\nD,4,Lead\n"}},
     NULL,
     NULL,
     0},
    {"more non-empty cells than the header",
     "imports/deals/quotes/wide.csv",
     "Name,Value,Stage\n"
     "A,1,Lead,,\n"
     "B,2,Lead,x,,y\n",
     map3,
     "completed",
     2,
     1,
     1,
     {NULL, NULL},
     {"{\"name\":\"A\",\"import.line\":1}", NULL},
     {{2,
       "the row has more cells than the header: the header has 3 columns, "
       "the row has 5 non-empty cells, the last in column 6",
       NULL}},
     NULL,
     NULL,
     0},
    {"a resume at a byte offset, with inch marks and an unnamed column",
     "imports/deals/quotes/resume.csv",
     "Name,Value,,Stage,Notes,Notes\n"
     "\"R1 5\" x\",1,,Lead,a,b\n"
     "R2,2,,Lead\n"
     "\"R3 32\" wide\",3,z,Lead\n"
     "\"a\"b,4,,Lead\n",
     map3,
     "completed",
     4,
     2,
     0,
     {"column 3 of the header has no name, so it is ignored",
      "the header repeats 'Notes'"},
     {"{\"name\":\"R3 32\\\" wide\",\"value\":3.0,\"import.line\":3}",
      "{\"name\":\"\\\"a\\\"b\",\"value\":4.0,\"import.line\":4}", NULL},
     {{0, NULL, NULL}},
     "[\"Name\",\"Value\",\"\",\"Stage\",\"Notes\",\"Notes\"]",
     "R2,2,,Lead\n",
     2},
};

#define NCASES (sizeof(cases) / sizeof(cases[0]))

static it_env_t env;

/* The line error of (qid, line): its message holds words, and its row is
 * exactly [raw] when raw is not NULL. 0 when so, else 1 (said on stderr). */
static int check_error(const case_t *c, const bson_oid_t *qid,
                       const want_error_t *w)
{
    mongoc_collection_t *coll = it_coll(&env, "csv_import_errors");
    bson_t *filter =
        BCON_NEW("queue_id", BCON_OID(qid), "line", BCON_INT64(w->line));
    mongoc_cursor_t *cur =
        mongoc_collection_find_with_opts(coll, filter, NULL, NULL);
    const bson_t *doc;
    int bad = 0;
    if (!mongoc_cursor_next(cur, &doc)) {
        fprintf(stderr, "case '%s': no error for line %lld\n", c->name,
                (long long)w->line);
        bad = 1;
    } else {
        const char *msg = it_str(doc, "message");
        bson_iter_t it, row;
        if (strstr(msg, w->words) == NULL) {
            fprintf(stderr, "case '%s': line %lld says '%s', not '%s'\n",
                    c->name, (long long)w->line, msg, w->words);
            bad = 1;
        }
        if (w->raw != NULL) {
            int n = 0, same = 0;
            if (bson_iter_init_find(&it, doc, "row") &&
                BSON_ITER_HOLDS_ARRAY(&it) && bson_iter_recurse(&it, &row))
                while (bson_iter_next(&row)) {
                    n++;
                    same = BSON_ITER_HOLDS_UTF8(&row) &&
                           strcmp(bson_iter_utf8(&row, NULL), w->raw) == 0;
                }
            if (n != 1 || !same) {
                fprintf(stderr,
                        "case '%s': line %lld's row is not the raw text "
                        "(%d cells)\n",
                        c->name, (long long)w->line, n);
                bad = 1;
            }
        }
        if (mongoc_cursor_next(cur, &doc)) {
            fprintf(stderr, "case '%s': line %lld has two errors\n", c->name,
                    (long long)w->line);
            bad = 1;
        }
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(filter);
    mongoc_collection_destroy(coll);
    return bad;
}

static int check_case(const case_t *c, const bson_oid_t *qid)
{
    char hex[25], filter[512];
    bson_t q;
    int bad = 0;
    if (it_wait_final(&env, qid, 60000, &q) < 0) {
        fprintf(stderr, "case '%s': the import did not end\n", c->name);
        return 1;
    }
    bson_oid_to_string(qid, hex);
    if (strcmp(it_str(&q, "status"), c->status) != 0) {
        fprintf(stderr, "case '%s': status '%s' ('%s'), want '%s'\n", c->name,
                it_str(&q, "status"), it_str(&q, "error"), c->status);
        bad++;
    }
    for (int i = 0; i < 2 && c->words[i]; i++) {
        if (strcmp(c->status, "failed") == 0) {
            if (strstr(it_str(&q, "error"), c->words[i]) == NULL) {
                fprintf(stderr, "case '%s': error '%s' lacks '%s'\n", c->name,
                        it_str(&q, "error"), c->words[i]);
                bad++;
            }
        } else if (!it_has_note(&env, qid, c->words[i])) {
            fprintf(stderr, "case '%s': no note says '%s'\n", c->name,
                    c->words[i]);
            bad++;
        }
    }
    if (strcmp(c->status, "completed") == 0) {
        snprintf(filter, sizeof(filter),
                 "{\"queue_id\":{\"$oid\":\"%s\"},\"total_records\":%lld,"
                 "\"total_records_added\":%lld,\"total_errors\":%lld}",
                 hex, (long long)c->records, (long long)c->added,
                 (long long)c->errors);
        if (it_count(&env, "csv_imports", filter) != 1) {
            fprintf(stderr, "case '%s': csv_imports is not %s\n", c->name,
                    filter);
            bad++;
        }
    }
    if (it_count_id(&env, "deals", "import.queue_id", qid) != c->added) {
        fprintf(stderr, "case '%s': %lld deals, want %lld\n", c->name,
                (long long)it_count_id(&env, "deals", "import.queue_id", qid),
                (long long)c->added);
        bad++;
    }
    if (it_count_id(&env, "csv_import_errors", "queue_id", qid) != c->errors) {
        fprintf(
            stderr, "case '%s': %lld line errors, want %lld\n", c->name,
            (long long)it_count_id(&env, "csv_import_errors", "queue_id", qid),
            (long long)c->errors);
        bad++;
    }
    for (int i = 0; i < MAX_FILTERS && c->filters[i]; i++)
        if (it_count_import_deals(&env, qid, c->filters[i]) != 1) {
            fprintf(stderr, "case '%s': no deal matches %s\n", c->name,
                    c->filters[i]);
            bad++;
        }
    for (int i = 0; i < MAX_ERRORS && c->errs[i].line; i++)
        bad += check_error(c, qid, &c->errs[i]);
    bson_destroy(&q);
    return bad;
}

/* Gives the pending queue document the checkpoint a worker stopped after
 * line cp_line would have left: the offset just past that row. */
static void set_checkpoint(const case_t *c, const bson_oid_t *qid)
{
    const char *at = strstr(c->data, c->cp_after);
    char json[1024];
    bson_error_t error;
    bson_t *set;
    assert_non_null(at);
    snprintf(json, sizeof(json),
             "{\"checkpoint\":{\"line\":%lld,\"offset\":%lld,"
             "\"delimiter\":\",\",\"header\":%s,\"added\":0,\"errors\":0,"
             "\"converted\":0}}",
             (long long)c->cp_line,
             (long long)(at - c->data + (long)strlen(c->cp_after)),
             c->cp_header);
    set = bson_new_from_json((const uint8_t *)json, -1, &error);
    if (set == NULL)
        fail_msg("checkpoint JSON: %s", error.message);
    it_queue_set(&env, qid, set);
    bson_destroy(set);
}

static void test_quotes(void **state)
{
    static const char *const extra[] = {"DEALIMPORT_MAX_WORKERS=4", NULL};
    bson_oid_t qids[NCASES];
    char logpath[256];
    pid_t sup;
    int bad = 0;
    (void)state;
    for (size_t i = 0; i < NCASES; i++) {
        const case_t *c = &cases[i];
        bson_oid_t account, user, pipeline;
        bson_oid_init(&account, NULL);
        bson_oid_init(&user, NULL);
        it_pipeline(&env, &account, &pipeline);
        it_put(&env, c->key, c->data, strlen(c->data));
        it_enqueue(&env, c->key, &account, &user, &pipeline, c->mappings,
                   &qids[i]);
        if (c->cp_header != NULL)
            set_checkpoint(c, &qids[i]);
    }
    snprintf(logpath, sizeof(logpath), "%s/it-worker-quotes-%d.log",
             it_tmpdir(), (int)getpid());
    sup = it_supervisor_start(&env, extra, logpath);
    assert_true(sup > 0);
    for (size_t i = 0; i < NCASES; i++)
        bad += check_case(&cases[i], &qids[i]);
    assert_int_equal(it_process_stop(sup, SIGTERM, 30000), 0);
    assert_int_equal(it_log_trouble(logpath), 0);
    /* The resumed import started at its checkpoint, not at line 1. */
    assert_true(it_file_contains(logpath, "resuming at line 3"));
    if (bad)
        fail_msg("%d wrong outcomes; supervisor log in %s", bad, logpath);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quotes),
    };
    int rc = it_env_init(&env, "wquotes");
    if (rc)
        return rc;
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    it_env_release(&env);
    return rc;
}
