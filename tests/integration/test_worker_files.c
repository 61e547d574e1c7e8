/*
 * Acceptance, files as users make them, end to end: UTF-8 with a byte order
 * mark, Windows-1252 (converted, and said in the import's notes), CRLF, LF
 * and lone CR line ends, the four delimiters, quoted cells with delimiters,
 * quotes and line breaks, blank lines, short rows; an empty file and a header
 * without rows complete with 0 records and say so; an empty header name is
 * ignored with a note; a duplicate header name the mapping uses and UTF-16
 * fail naming the problem; and a storage key with spaces,
 * '+', '%', '&' and non-ASCII letters downloads and imports.
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

typedef struct {
    const char *name;
    const char *key;
    const char *data;
    size_t len; /* 0: strlen(data) */
    const char *mappings;
    const char *status;
    int64_t records, added, errors;
    const char *words; /* in `error` (failed) or in a note (completed) */
    /* each matches exactly one deal of the import (import.queue_id added) */
    const char *filters[MAX_FILTERS];
} case_t;

static const char std_mappings[] =
    "{\"Deal Name\":\"name\",\"Amount\":\"value\",\"Stage\":\"stage_id\","
    "\"Status\":\"status\",\"Notes\":\"description\"}";

static const case_t cases[] = {
    {"utf-8 with BOM, CRLF, ';', quoted cells, blank lines, short row",
     "imports/deals/files/bom-semicolon.csv",
     "\xef\xbb\xbf"
     "Deal Name;Amount;Stage;Status;Notes\r\n"
     "Acme;5.000,00x;Lead;open;plain\r\n"
     "\r\n"
     "\"Globex; Intl\";\"5,000\";Won Back;Closed-Won;\"said \"\"hi\"\";\r\n"
     "then left\"\r\n"
     ";;;;\r\n"
     "Initech;USD 12.50;lead\r\n"
     "   \r\n"
     "\"Umbrella\";$1,200.50;  LEAD ;;\r\n",
     0,
     std_mappings,
     "completed",
     4,
     3,
     1,
     NULL,
     {"{\"name\":\"Globex; Intl\",\"value\":5000.0,\"stage_id\":{\"$exists\":"
      "true},\"status\":\"won\",\"description\":\"said \\\"hi\\\";\\r\\nthen "
      "left\",\"import.line\":2}",
      "{\"name\":\"Initech\",\"value\":12.5,\"currency\":\"USD\","
      "\"status\":\"open\",\"description\":{\"$exists\":false},"
      "\"import.line\":3}",
      "{\"name\":\"Umbrella\",\"value\":1200.5,\"import.line\":4}", NULL}},
    {"windows-1252, tab, lone CR",
     "imports/deals/files/latin1-tab.csv",
     "Nom de l'affaire\tSoci\xe9t\xe9\tStage\tMontant\r"
     "Caf\xe9 cr\xe8me\tSoci\xe9t\xe9 G\xe9n\xe9rale\tN\xe9gociation\t"
     "\x80"
     "1,000\r"
     "Plain\tAcme\tLead\t5\r",
     0,
     "{\"Nom de l'affaire\":\"name\",\"Soci\xc3\xa9t\xc3\xa9\":"
     "\"company_name\",\"Stage\":\"stage_id\",\"Montant\":\"value\"}",
     "completed",
     2,
     2,
     0,
     "read as Windows-1252",
     {"{\"name\":\"Caf\xc3\xa9 cr\xc3\xa8me\",\"company_name\":\"Soci\xc3\xa9"
      "t\xc3\xa9 G\xc3\xa9n\xc3\xa9rale\",\"value\":1000.0,\"currency\":"
      "\"EUR\",\"import.line\":1}",
      "{\"name\":\"Plain\",\"company_name\":\"Acme\",\"value\":5.0,"
      "\"import.line\":2}",
      NULL}},
    {"'|' and LF",
     "imports/deals/files/pipe.csv",
     "Deal Name|Amount|Stage|Status|Notes\n"
     "Alpha|100|Lead|won|a, b\n"
     "Beta|200|Lead|yearly|\n"
     "Gamma|300|Lead|Abandoned|x|y\n",
     0,
     std_mappings,
     "completed",
     3,
     1,
     2,
     NULL,
     {"{\"name\":\"Alpha\",\"value\":100.0,\"status\":\"won\","
      "\"description\":\"a, b\",\"import.line\":1}",
      NULL}},
    {"empty file",
     "imports/deals/files/empty.csv",
     "",
     0,
     std_mappings,
     "completed",
     0,
     0,
     0,
     "the file is empty",
     {NULL}},
    {"blank lines only",
     "imports/deals/files/blank.csv",
     "\r\n  \r\n,,,\n",
     0,
     std_mappings,
     "completed",
     0,
     0,
     0,
     "the file is empty",
     {NULL}},
    {"header without rows",
     "imports/deals/files/header.csv",
     "Deal Name,Amount,Stage,Status,Notes\r\n",
     0,
     std_mappings,
     "completed",
     0,
     0,
     0,
     "header but no rows",
     {NULL}},
    {"duplicate header names",
     "imports/deals/files/dup.csv",
     "Deal Name,Stage,Amount,Stage\nAcme,Lead,5,Won\n",
     0,
     "{\"Deal Name\":\"name\",\"Stage\":\"stage_id\"}",
     "failed",
     0,
     0,
     0,
     "'Stage'",
     {NULL}},
    {"empty header name",
     "imports/deals/files/hole.csv",
     "Deal Name,,Stage\nAcme,x,Lead\n",
     0,
     "{\"Deal Name\":\"name\",\"Stage\":\"stage_id\"}",
     "completed",
     1,
     1,
     0,
     "column 2 of the header has no name, so it is ignored",
     {"{\"name\":\"Acme\",\"import.line\":1}", NULL}},
    {"utf-16",
     "imports/deals/files/utf16.csv",
     "\xff\xfe"
     "D\0e\0a\0l\0\n\0",
     12,
     "{\"Deal\":\"name\",\"Stage\":\"stage_id\"}",
     "failed",
     0,
     0,
     0,
     "UTF-16",
     {NULL}},
    {"key with spaces, '+', '%', '&' and non-ASCII letters",
     "imports/deals/files/Q4 deals + more 100% & Soci\xc3\xa9t\xc3\xa9 "
     "\xc3\xbc\xc3\x9f.csv",
     "Deal Name,Amount,Stage,Status,Notes\nOne,1,Lead,,\nTwo,2,Lead,,\n",
     0,
     std_mappings,
     "completed",
     2,
     2,
     0,
     NULL,
     {"{\"name\":\"Two\",\"value\":2.0,\"import.line\":2}", NULL}},
};

#define NCASES (sizeof(cases) / sizeof(cases[0]))

static it_env_t env;

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
    if (strcmp(c->status, "failed") == 0) {
        if (strstr(it_str(&q, "error"), c->words) == NULL) {
            fprintf(stderr, "case '%s': error '%s' lacks '%s'\n", c->name,
                    it_str(&q, "error"), c->words);
            bad++;
        }
    } else if (c->words && !it_has_note(&env, qid, c->words)) {
        fprintf(stderr, "case '%s': no note says '%s'\n", c->name, c->words);
        bad++;
    }
    snprintf(filter, sizeof(filter),
             "{\"queue_id\":{\"$oid\":\"%s\"},\"total_records\":%lld,"
             "\"total_records_added\":%lld,\"total_errors\":%lld}",
             hex, (long long)c->records, (long long)c->added,
             (long long)c->errors);
    if (it_count(&env, "csv_imports", filter) != 1) {
        fprintf(stderr, "case '%s': csv_imports is not %s\n", c->name, filter);
        bad++;
    }
    if (it_count_id(&env, "deals", "import.queue_id", qid) != c->added) {
        fprintf(stderr, "case '%s': %lld deals, want %lld\n", c->name,
                (long long)it_count_id(&env, "deals", "import.queue_id", qid),
                (long long)c->added);
        bad++;
    }
    for (int i = 0; i < MAX_FILTERS && c->filters[i]; i++)
        if (it_count_import_deals(&env, qid, c->filters[i]) != 1) {
            fprintf(stderr, "case '%s': no deal matches %s\n", c->name,
                    c->filters[i]);
            bad++;
        }
    bson_destroy(&q);
    return bad;
}

static void test_files(void **state)
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
        it_put(&env, c->key, c->data, c->len ? c->len : strlen(c->data));
        it_enqueue(&env, c->key, &account, &user, &pipeline, c->mappings,
                   &qids[i]);
    }
    snprintf(logpath, sizeof(logpath), "%s/it-worker-files-%d.log", it_tmpdir(),
             (int)getpid());
    sup = it_supervisor_start(&env, extra, logpath);
    assert_true(sup > 0);
    for (size_t i = 0; i < NCASES; i++)
        bad += check_case(&cases[i], &qids[i]);
    assert_int_equal(it_process_stop(sup, SIGTERM, 30000), 0);
    assert_int_equal(it_log_trouble(logpath), 0);
    if (bad)
        fail_msg("%d wrong outcomes; supervisor log in %s", bad, logpath);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_files),
    };
    int rc = it_env_init(&env, "wfiles");
    if (rc)
        return rc;
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    it_env_release(&env);
    return rc;
}
