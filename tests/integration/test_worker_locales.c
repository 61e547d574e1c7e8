/*
 * Acceptance, files from every locale: the same 5,000 deals written as
 * en-US, de-DE, fr-FR, pt-BR, de-CH and en-IN files (their currency
 * markers, thousands separators, decimal commas, Indian grouping and date
 * orders) import through the real supervisor and worker to identical deals,
 * values and dates equal, each with its explicit additional_data.format and
 * each with "auto", which the file decides (csv_imports' note and `show`
 * say how). A file of 0X/0Y dates under "auto" is never read the wrong way
 * round: every such cell is a line error asking for the date order, and
 * with DMY all are read day-first. "1.234" is 1234 with a decimal comma and
 * a line error with a dot; "5,000.50" is never 5. A worker SIGKILLed after
 * the first batch of an "auto" import resumes with the decisions of the
 * whole file, though the rows after its checkpoint alone would leave the
 * order undecided.
 *
 * Failure classes walked for the survey and the decision record:
 * 5 (frozen, killed): test_resume_keeps_decisions kills the worker; the
 *   record is in the checkpoint written with the first batch, and a worker
 *   killed before it surveys again, deciding the same from the same file.
 * 6 (hostile shapes): the tally is four counters per column whatever the
 *   file; cells are parsed in place (fuzz_wrk_format for the parsers).
 * 7 (storage that stalls): the survey is a download like the import's,
 *   with the same deadlines, and it polls control actions between rows.
 * 8 (the object changed): the survey's ETag (or size and mtime) becomes the
 *   identity the import's own download must match.
 * 11 (types): additional_data.format is read with one type per field
 *   (test_wrk_format's refusals); the record is read back by type too.
 * 14 (tests that cannot fail): each check compares stored values with the
 *   deals as generated, and the kill is asserted to land before the end.
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
#include "it_tmp.h"

#define NDEALS 5000
#define NBSP "\xc2\xa0"
#define NNBSP "\xe2\x80\xaf"
#define MAPPINGS                                                               \
    "{\"Name\": \"name\", \"Stage\": \"stage_id\", \"Amount\": \"value\", "    \
    "\"Close\": \"expected_close_date\"}"

static it_env_t env;

typedef struct {
    int64_t cents;
    int y, m, d;
} deal_t;

typedef struct {
    const char *name;
    const char *order, *decimal; /* the explicit format */
    const char *prefix, *suffix; /* currency marker */
    const char *group;           /* thousands separator */
    char dec;
    int indian;
    int day_first;
    char date_sep;
} locale_fmt_t;

static const locale_fmt_t locales[] = {
    {"en-US", "MDY", ".", "$", "", ",", '.', 0, 0, '/'},
    {"de-DE", "DMY", ",", "", " \xe2\x82\xac", ".", ',', 0, 1, '.'},
    {"fr-FR", "DMY", ",", "", NBSP "\xe2\x82\xac", NNBSP, ',', 0, 1, '/'},
    {"pt-BR", "DMY", ",", "R$ ", "", ".", ',', 0, 1, '/'},
    {"de-CH", "DMY", ".", "CHF ", "", "'", '.', 0, 1, '.'},
    {"en-IN", "DMY", ".", "\xe2\x82\xb9", "", ",", '.', 1, 1, '-'},
};
#define NLOCALES (sizeof(locales) / sizeof(locales[0]))

static int64_t day_ms(int y, int m, int d)
{
    /* Days from 1970 by the civil calendar, as the worker counts them. */
    int64_t yy = m <= 2 ? y - 1 : y, era = yy / 400, yoe = yy - era * 400;
    int64_t mp = m > 2 ? m - 3 : m + 9;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + (153 * mp + 2) / 5 + d - 1;
    return (era * 146097 + doe - 719468) * 86400000;
}

static void make_deals(deal_t *deals, size_t n, unsigned seed)
{
    static const int64_t scale[] = {100, 10000, 1000000, 100000000,
                                    10000000000LL};
    for (size_t i = 0; i < n; i++) {
        int64_t top = scale[rand_r(&seed) % 5];
        deals[i].cents = ((int64_t)rand_r(&seed) * 65536 + rand_r(&seed)) % top;
        deals[i].y = 2024 + rand_r(&seed) % 3;
        deals[i].m = 1 + rand_r(&seed) % 12;
        deals[i].d = 1 + rand_r(&seed) % 28;
    }
}

/* units grouped by sep: in threes, or the Indian way. */
static void grouped(char *out, size_t outlen, int64_t units, const char *sep,
                    int indian)
{
    char digits[32], tmp[512];
    size_t n, o = 0;
    snprintf(digits, sizeof(digits), "%lld", (long long)units);
    n = strlen(digits);
    for (size_t i = 0; i < n; i++) {
        size_t left = n - i; /* digits from here to the end */
        tmp[o++] = digits[i];
        if (left > 1) {
            size_t after = left - 1;
            int cut = indian
                          ? (after == 3 || (after > 3 && (after - 3) % 2 == 0))
                          : after % 3 == 0;
            if (cut) {
                memcpy(tmp + o, sep, strlen(sep));
                o += strlen(sep);
            }
        }
    }
    if (o >= outlen)
        o = outlen - 1;
    memcpy(out, tmp, o);
    out[o] = '\0';
}

static void write_locale(const locale_fmt_t *l, const deal_t *deals, size_t n,
                         const char *path)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "Name,Stage,Amount,Close\n");
    for (size_t i = 0; i < n; i++) {
        char units[64];
        const deal_t *d = &deals[i];
        grouped(units, sizeof(units), d->cents / 100, l->group, l->indian);
        fprintf(f, "Deal %zu,Lead,\"%s%s%c%02lld%s\",%02d%c%02d%c%04d\n", i + 1,
                l->prefix, units, l->dec, (long long)(d->cents % 100),
                l->suffix, l->day_first ? d->d : d->m, l->date_sep,
                l->day_first ? d->m : d->d, l->date_sep, d->y);
    }
    fclose(f);
}

static void enqueue_format(const char *key, const bson_oid_t *account,
                           const bson_oid_t *user, const bson_oid_t *pipeline,
                           const char *order, const char *decimal,
                           bson_oid_t *qid)
{
    bson_t *set = bson_new(), fmt;
    it_enqueue(&env, key, account, user, pipeline, MAPPINGS, qid);
    BSON_APPEND_DOCUMENT_BEGIN(set, "additional_data.format", &fmt);
    if (order)
        BSON_APPEND_UTF8(&fmt, "date_order", order);
    if (decimal)
        BSON_APPEND_UTF8(&fmt, "decimal", decimal);
    bson_append_document_end(set, &fmt);
    it_queue_set(&env, qid, set);
    bson_destroy(set);
}

/* Every deal of import qid is deals[line - 1]: n of them, value and date
 * equal. */
static void expect_deals(const bson_oid_t *qid, const deal_t *deals, size_t n,
                         const char *what)
{
    mongoc_collection_t *c = it_coll(&env, "deals");
    bson_t *filter = bson_new();
    bson_t *opts = BCON_NEW("sort", "{", "import.line", BCON_INT32(1), "}");
    mongoc_cursor_t *cur;
    const bson_t *doc;
    size_t seen = 0;
    it_append_import_deals(&env, filter, qid);
    cur = mongoc_collection_find_with_opts(c, filter, opts, NULL);
    while (mongoc_cursor_next(cur, &doc)) {
        bson_iter_t it;
        int64_t line = dip_bson_get_int(doc, "import.line", 0);
        const deal_t *d;
        double v = -1;
        int64_t ms = -1;
        if (line < 1 || (size_t)line > n)
            fail_msg("%s: a deal of line %lld", what, (long long)line);
        d = &deals[line - 1];
        if (bson_iter_init_find(&it, doc, "value") &&
            BSON_ITER_HOLDS_DOUBLE(&it))
            v = bson_iter_double(&it);
        if (bson_iter_init_find(&it, doc, "expected_close_date") &&
            BSON_ITER_HOLDS_DATE_TIME(&it))
            ms = bson_iter_date_time(&it);
        if (v != (double)d->cents / 100.0 || ms != day_ms(d->y, d->m, d->d))
            fail_msg("%s: line %lld has value %.17g and date %lld, want "
                     "%.17g and %lld",
                     what, (long long)line, v, (long long)ms,
                     (double)d->cents / 100.0,
                     (long long)day_ms(d->y, d->m, d->d));
        seen++;
    }
    if (seen != n)
        fail_msg("%s: %zu deals, want %zu", what, seen, n);
    mongoc_cursor_destroy(cur);
    bson_destroy(opts);
    bson_destroy(filter);
    mongoc_collection_destroy(c);
}

static int64_t count_errors(const bson_oid_t *qid, const char *regex)
{
    char hex[25], filter[512];
    bson_oid_to_string(qid, hex);
    snprintf(filter, sizeof(filter),
             "{\"queue_id\":{\"$oid\":\"%s\"},\"message\":{\"$regex\":\"%s\"}}",
             hex, regex);
    return it_count(&env, "csv_import_errors", filter);
}

static void wait_completed(const bson_oid_t *qid, const char *logpath,
                           const char *what)
{
    bson_t q;
    if (it_wait_final(&env, qid, 600000, &q) != 0)
        fail_msg("%s did not end; log in %s", what, logpath);
    if (strcmp(it_str(&q, "status"), "completed") != 0)
        fail_msg("%s: '%s' (%s); log in %s", what, it_str(&q, "status"),
                 it_str(&q, "error"), logpath);
    bson_destroy(&q);
}

static void test_six_locales(void **state)
{
    deal_t *deals = calloc(NDEALS, sizeof(deal_t));
    bson_oid_t account, user, pipeline, qid[NLOCALES][2], dry;
    char path[256], key[128], logpath[256], what[64], out[8192];
    pid_t sup;
    (void)state;
    assert_non_null(deals);
    make_deals(deals, NDEALS, 20251231u);
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &account, &pipeline);
    for (size_t i = 0; i < NLOCALES; i++) {
        snprintf(path, sizeof(path), "%s/it-locale-%s-%d.csv", it_tmpdir(),
                 locales[i].name, (int)getpid());
        write_locale(&locales[i], deals, NDEALS, path);
        snprintf(key, sizeof(key), "imports/deals/locales/%s.csv",
                 locales[i].name);
        it_put_file(&env, key, path);
        unlink(path);
        enqueue_format(key, &account, &user, &pipeline, locales[i].order,
                       locales[i].decimal, &qid[i][0]);
        enqueue_format(key, &account, &user, &pipeline, "auto", "auto",
                       &qid[i][1]);
    }
    {
        /* A dry run of the German file decides, and reports, the same. */
        bson_t *set = BCON_NEW("dry_run", BCON_BOOL(true));
        enqueue_format("imports/deals/locales/de-DE.csv", &account, &user,
                       &pipeline, "auto", "auto", &dry);
        it_queue_set(&env, &dry, set);
        bson_destroy(set);
    }
    snprintf(logpath, sizeof(logpath), "%s/it-locales-%d.log", it_tmpdir(),
             (int)getpid());
    sup = it_supervisor_start(&env, NULL, logpath);
    assert_true(sup > 0);
    for (size_t i = 0; i < NLOCALES; i++) {
        for (int a = 0; a < 2; a++) {
            snprintf(what, sizeof(what), "%s %s", locales[i].name,
                     a ? "auto" : "explicit");
            wait_completed(&qid[i][a], logpath, what);
            expect_deals(&qid[i][a], deals, NDEALS, what);
            assert_int_equal(
                it_count_id(&env, "csv_import_errors", "queue_id", &qid[i][a]),
                0);
        }
        /* The file decided both columns, and the import log says how. */
        snprintf(what, sizeof(what),
                 "column 'Close' (expected_close_date): "
                 "date_order %s",
                 locales[i].order);
        if (!it_has_note(&env, &qid[i][1], what))
            fail_msg("%s: no note '%s'", locales[i].name, what);
        snprintf(what, sizeof(what), "column 'Amount' (value): decimal '%s'",
                 locales[i].decimal);
        if (!it_has_note(&env, &qid[i][1], what))
            fail_msg("%s: no note '%s'", locales[i].name, what);
    }
    wait_completed(&dry, logpath, "the dry run");
    assert_int_equal(it_count_id(&env, "deals", "import.queue_id", &dry), 0);
    assert_true(it_has_note(&env, &dry,
                            "column 'Close' (expected_close_date): "
                            "date_order DMY"));
    assert_true(it_has_note(&env, &dry,
                            "column 'Amount' (value): decimal "
                            "','"));
    {
        /* `show` prints the decisions of an auto import. */
        char hex[25];
        const char *args[] = {"show", hex, NULL};
        bson_oid_to_string(&qid[1][1], hex);
        assert_int_equal(
            it_ctl_run(env.runtime, args, out, sizeof(out), NULL, 0, 30000), 0);
        if (strstr(out, "decided     'Amount' (value): decimal ','") == NULL ||
            strstr(out, "'Close' (expected_close_date): date_order DMY") ==
                NULL ||
            strstr(out, "format      date_order auto, decimal auto") == NULL)
            fail_msg("show says:\n%s", out);
    }
    assert_int_equal(it_process_stop(sup, SIGTERM, 30000), 0);
    assert_int_equal(it_log_trouble(logpath), 0);
    free(deals);
}

/* 0X/0Y dates under "auto", "1.234" under both separators, "5,000.50"
 * under a decimal comma. */
static void test_ambiguous(void **state)
{
    enum { ROWS = 200 };
    bson_oid_t account, user, pipeline, auto_q, dmy_q, dot_q, comma_q, us_q;
    bson_oid_t bad_q;
    bson_t q;
    char logpath[256], *csv = malloc(ROWS * 64 + 64), *csv2 = malloc(4096);
    size_t o = 0, o2 = 0;
    pid_t sup;
    (void)state;
    assert_non_null(csv);
    assert_non_null(csv2);
    o += (size_t)sprintf(csv + o, "Name,Stage,Amount,Close\n");
    o2 += (size_t)sprintf(csv2 + o2, "Name,Stage,Amount,Close\n");
    for (int i = 0; i < ROWS; i++) {
        int a = 1 + i % 12, b = 1 + (i + 1 + i / 12) % 12;
        if (a == b)
            b = b % 12 + 1;
        o += (size_t)sprintf(csv + o, "D%d,Lead,1.234,%02d/%02d/2025\n", i, a,
                             b);
    }
    for (int i = 0; i < 10; i++)
        o2 +=
            (size_t)sprintf(csv2 + o2, "E%d,Lead,\"5,000.50\",2025-03-04\n", i);
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &account, &pipeline);
    it_put(&env, "imports/deals/locales/0x0y.csv", csv, o);
    it_put(&env, "imports/deals/locales/5000.csv", csv2, o2);
    enqueue_format("imports/deals/locales/0x0y.csv", &account, &user, &pipeline,
                   "auto", ",", &auto_q);
    enqueue_format("imports/deals/locales/0x0y.csv", &account, &user, &pipeline,
                   "DMY", ",", &dmy_q);
    enqueue_format("imports/deals/locales/0x0y.csv", &account, &user, &pipeline,
                   "DMY", ".", &dot_q);
    enqueue_format("imports/deals/locales/5000.csv", &account, &user, &pipeline,
                   NULL, ",", &comma_q);
    enqueue_format("imports/deals/locales/5000.csv", &account, &user, &pipeline,
                   NULL, "auto", &us_q);
    {
        /* A format of the wrong type fails the import, naming the field. */
        bson_t *set =
            BCON_NEW("additional_data.format.date_order", BCON_INT32(1));
        it_enqueue(&env, "imports/deals/locales/5000.csv", &account, &user,
                   &pipeline, MAPPINGS, &bad_q);
        it_queue_set(&env, &bad_q, set);
        bson_destroy(set);
    }
    snprintf(logpath, sizeof(logpath), "%s/it-locales-ambiguous-%d.log",
             it_tmpdir(), (int)getpid());
    sup = it_supervisor_start(&env, NULL, logpath);
    assert_true(sup > 0);
    wait_completed(&auto_q, logpath, "auto");
    wait_completed(&dmy_q, logpath, "DMY");
    wait_completed(&dot_q, logpath, "DMY with a dot");
    wait_completed(&comma_q, logpath, "5,000.50 with a comma");
    wait_completed(&us_q, logpath, "5,000.50 auto");
    assert_int_equal(it_wait_final(&env, &bad_q, 120000, &q), 0);
    assert_string_equal(it_str(&q, "status"), "failed");
    if (strstr(it_str(&q, "error"), "'additional_data.format.date_order' is "
                                    "a number, not one of") == NULL)
        fail_msg("error: '%s'", it_str(&q, "error"));
    bson_destroy(&q);

    /* Nothing read the wrong way round: every cell asks for the order. */
    assert_int_equal(it_count_id(&env, "deals", "import.queue_id", &auto_q), 0);
    assert_int_equal(count_errors(&auto_q, "ambiguous date: set the file's "
                                           "date order"),
                     ROWS);
    assert_true(it_has_note(&env, &auto_q, "date_order undecided") ||
                it_has_note(&env, &auto_q, "undecided"));
    /* Day-first when the file says so; "1.234" with a comma is 1234. */
    assert_int_equal(it_count_id(&env, "deals", "import.queue_id", &dmy_q),
                     ROWS);
    assert_int_equal(it_count_import_deals(&env, &dmy_q, "{\"value\": 1234}"),
                     ROWS);
    /* Row 0 is 01/02/2025: February 1. */
    {
        char filter[256];
        snprintf(filter, sizeof(filter),
                 "{\"name\": \"D0\", \"expected_close_date\": {\"$date\": "
                 "{\"$numberLong\": \"%lld\"}}}",
                 (long long)day_ms(2025, 2, 1));
        assert_int_equal(it_count_import_deals(&env, &dmy_q, filter), 1);
    }
    /* With a dot "1.234" is refused as before, naming the other setting. */
    assert_int_equal(it_count_id(&env, "deals", "import.queue_id", &dot_q), 0);
    assert_int_equal(count_errors(&dot_q, "ambiguous.*set decimal ','"), ROWS);
    /* "5,000.50" is never 5: refused with a comma, 5000.5 when decided. */
    assert_int_equal(it_count_id(&env, "deals", "import.queue_id", &comma_q),
                     0);
    assert_int_equal(count_errors(&comma_q, "set decimal '.'"), 10);
    assert_int_equal(it_count_import_deals(&env, &us_q, "{\"value\": 5000.5}"),
                     10);
    assert_int_equal(it_process_stop(sup, SIGTERM, 30000), 0);
    assert_int_equal(it_log_trouble(logpath), 0);
    free(csv);
    free(csv2);
}

/* The first rows decide day-first (a 25th of January); every later row is
 * 0X/0Y, which alone would leave the order undecided. The worker is killed
 * once the first batch is checkpointed; its successor resumes with the
 * recorded decision, surveys nothing, and reads every row day-first. */
static void test_resume_keeps_decisions(void **state)
{
    static const char *const extra[] = {"DEALIMPORT_BATCH_ROWS=500",
                                        "DEALIMPORT_WORKER_RESTARTS=5", NULL};
    size_t rows = (size_t)(100000 * it_scale());
    deal_t *deals = calloc(rows, sizeof(deal_t));
    bson_oid_t account, user, pipeline, qid;
    char path[256], logpath[256];
    pid_t sup, worker;
    int64_t at_kill;
    FILE *f;
    (void)state;
    assert_non_null(deals);
    snprintf(path, sizeof(path), "%s/it-locale-kill-%d.csv", it_tmpdir(),
             (int)getpid());
    f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "Name,Stage,Amount,Close\n");
    for (size_t i = 0; i < rows; i++) {
        deal_t *d = &deals[i];
        d->cents = (int64_t)(i % 1000) * 100;
        d->y = 2025;
        if (i < 10) {
            d->d = 25;
            d->m = 1;
        } else {
            d->d = 1 + i % 12;
            d->m = 1 + (i + 1 + i / 12) % 12;
            if (d->m == d->d)
                d->m = d->m % 12 + 1;
        }
        fprintf(f, "K%zu,Lead,%lld,%02d/%02d/%04d\n", i,
                (long long)d->cents / 100, d->d, d->m, d->y);
    }
    fclose(f);
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &account, &pipeline);
    it_put_file(&env, "imports/deals/locales/kill.csv", path);
    unlink(path);
    enqueue_format("imports/deals/locales/kill.csv", &account, &user, &pipeline,
                   "auto", NULL, &qid);
    snprintf(logpath, sizeof(logpath), "%s/it-locales-kill-%d.log", it_tmpdir(),
             (int)getpid());
    /* Each deal written costs 300 us on the server until the kill, so the
     * kill lands mid-import on a machine of any speed (the whole file was
     * written before it once). */
    assert_int_equal(it_dev_slow(&env, "{\"write_us\": 300}"), 0);
    sup = it_supervisor_start(&env, extra, logpath);
    assert_true(sup > 0);
    worker = it_wait_worker(&qid, 60000);
    assert_true(worker > 0);
    assert_int_equal(it_wait_int(&env, &qid, "checkpoint.line", 1, 120000), 0);
    assert_int_equal(kill(worker, SIGKILL), 0);
    assert_int_equal(it_dev_slow(&env, "{\"write_us\": 0}"), 0);
    at_kill = it_queue_int(&env, &qid, "checkpoint.line");
    /* Killed after the first batch and before the end. */
    assert_true(at_kill >= 500 && (size_t)at_kill < rows);
    wait_completed(&qid, logpath, "the killed auto import");
    expect_deals(&qid, deals, rows, "after the kill");
    assert_int_equal(it_count_id(&env, "csv_import_errors", "queue_id", &qid),
                     0);
    assert_true(it_has_note(&env, &qid, "date_order DMY"));
    assert_int_equal(it_process_stop(sup, SIGTERM, 30000), 0);
    /* One survey, by the first worker; the second resumed from the
     * checkpoint with its decision. */
    assert_int_equal(it_log_count(logpath, "reading the whole file once"), 1);
    assert_true(it_log_count(logpath, "resuming at line") >= 1);
    assert_int_equal(it_log_count(logpath, "killed by signal 9"), 1);
    assert_int_equal(it_log_trouble(logpath), 1);
    free(deals);
}

/* `dealimportctl enqueue --date-order DMY --decimal ,` writes the format the
 * worker reads; a value it does not know is a usage error. */
static void test_ctl_enqueue(void **state)
{
    char path[256], acc[25], usr[25], pip[25], out[512], err[512];
    bson_oid_t account, user, pipeline, qid;
    mongoc_collection_t *c;
    bson_t *filter;
    mongoc_cursor_t *cur;
    const bson_t *doc;
    FILE *f;
    const char *args[] = {"enqueue",
                          "--file",
                          path,
                          "--account",
                          acc,
                          "--user",
                          usr,
                          "--pipeline",
                          pip,
                          "--map",
                          "Name=name",
                          "--map",
                          "Stage=stage_id",
                          "--date-order",
                          "DMY",
                          "--decimal",
                          ",",
                          NULL};
    const char *bad[] = {"enqueue", "--file", path,        "--account",
                         acc,       "--user", usr,         "--pipeline",
                         pip,       "--map",  "Name=name", "--date-order",
                         "dmy",     NULL};
    (void)state;
    snprintf(path, sizeof(path), "%s/it-locale-ctl-%d.csv", it_tmpdir(),
             (int)getpid());
    f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "Name,Stage\nA,Lead\n");
    fclose(f);
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &account, &pipeline);
    bson_oid_to_string(&account, acc);
    bson_oid_to_string(&user, usr);
    bson_oid_to_string(&pipeline, pip);
    if (it_ctl_run(env.runtime, args, out, sizeof(out), err, sizeof(err),
                   60000) != 0)
        fail_msg("enqueue failed: %s", err);
    out[strcspn(out, "\n")] = '\0';
    assert_true(bson_oid_is_valid(out, strlen(out)) && strlen(out) == 24);
    bson_oid_init_from_string(&qid, out);
    c = it_coll(&env, "queues");
    filter = BCON_NEW("_id", BCON_OID(&qid));
    cur = mongoc_collection_find_with_opts(c, filter, NULL, NULL);
    assert_true(mongoc_cursor_next(cur, &doc));
    assert_string_equal(it_str(doc, "additional_data.format.date_order"),
                        "DMY");
    assert_string_equal(it_str(doc, "additional_data.format.decimal"), ",");
    mongoc_cursor_destroy(cur);
    bson_destroy(filter);
    mongoc_collection_destroy(c);
    assert_int_equal(
        it_ctl_run(env.runtime, bad, out, sizeof(out), err, sizeof(err), 60000),
        64);
    assert_non_null(strstr(err, "--date-order is MDY, DMY, YMD or auto"));
    unlink(path);
}

/* A failed test leaves no price for the next. */
static int teardown_prices(void **state)
{
    (void)state;
    (void)it_dev_slow(&env, "{\"write_us\": 0}");
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_six_locales),
        cmocka_unit_test(test_ambiguous),
        cmocka_unit_test_teardown(test_resume_keeps_decisions, teardown_prices),
        cmocka_unit_test(test_ctl_enqueue),
    };
    int rc = it_env_init(&env, "locales");
    if (rc)
        return rc;
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    it_env_release(&env);
    return rc;
}
