/*
 * Tests wrk_survey over file:// storage (no database, no supervisor): a
 * German file's columns are decided from its whole text, including rows
 * that come after thousands of ambiguous ones; the file's identity is
 * reported for the import to hold its download to; a header without a
 * mapped column and a missing file are refused with a sentence.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dip_config.h"
#include "wrk_survey.h"
#include "it_tmp.h"

typedef struct {
    char dir[256];
    dip_config_t cfg;
} fix_t;

static int setup(void **state)
{
    fix_t *f = calloc(1, sizeof(*f));
    char url[512];
    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "%s/wrk-survey-XXXXXX", it_tmpdir());
    if (mkdtemp(f->dir) == NULL)
        return -1;
    dip_config_init(&f->cfg);
    snprintf(url, sizeof(url), "file://%s/", f->dir);
    free(f->cfg.storage_url);
    f->cfg.storage_url = strdup(url);
    *state = f;
    return f->cfg.storage_url ? 0 : -1;
}

static int teardown(void **state)
{
    fix_t *f = *state;
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", f->dir);
    dip_config_release(&f->cfg);
    free(f);
    return 0;
}

static wrk_map_t *map(const char *json)
{
    bson_error_t e;
    bson_t *b = bson_new_from_json((const uint8_t *)json, -1, &e);
    char err[512];
    wrk_map_t *m = b ? wrk_map_new(b, err, sizeof(err)) : NULL;
    bson_destroy(b);
    assert_non_null(m);
    return m;
}

static void start(wrk_format_decisions_t *d)
{
    wrk_format_t f;
    memset(&f, 0, sizeof(f));
    f.present = f.date_auto = f.decimal_auto = 1;
    wrk_format_start(&f, d);
    d->is_auto[WRK_FORMAT_PERCENT] = 0; /* not mapped */
}

static void test_decides_from_the_whole_file(void **state)
{
    fix_t *f = *state;
    char path[512], err[512] = "";
    wrk_format_decisions_t d;
    wrk_survey_file_t file;
    wrk_map_t *m = map("{\"Name\": \"name\", \"Stage\": \"stage_id\", "
                       "\"Betrag\": \"value\", \"Datum\": "
                       "\"expected_close_date\"}");
    int action = -1;
    FILE *out;
    snprintf(path, sizeof(path), "%s/de.csv", f->dir);
    out = fopen(path, "w");
    assert_non_null(out);
    fprintf(out, "Name;Stage;Betrag;Datum\n");
    /* 5,000 rows that read both ways, then the two that decide. */
    for (int i = 0; i < 5000; i++)
        fprintf(out, "D%d;Lead;1.234;03.04.2025\n", i);
    fprintf(out, "X;Lead;12,50 \xe2\x82\xac;31.12.2025\n");
    fprintf(out, "Y;Lead;bad;not a date\n");
    fclose(out);
    start(&d);
    assert_int_equal(wrk_survey_run(&f->cfg, "de.csv", m, NULL, 100, &d, &file,
                                    &action, err, sizeof(err)),
                     WRK_SURVEY_OK);
    assert_false(wrk_format_pending(&d));
    assert_int_equal(d.reading.date, WRK_DATES_DMY);
    assert_int_equal(d.reading.amount, WRK_DECIMAL_COMMA);
    assert_int_equal(d.tally[WRK_FORMAT_DATE].second, 1);
    assert_int_equal(d.tally[WRK_FORMAT_DATE].two_ways, 5000);
    assert_int_equal(d.tally[WRK_FORMAT_AMOUNT].second, 1);
    assert_int_equal(d.tally[WRK_FORMAT_AMOUNT].two_ways, 5000);
    /* The percentage is not mapped: nothing decided, nothing counted. */
    assert_int_equal(d.tally[WRK_FORMAT_PERCENT].alike, 0);
    assert_true(file.known);
    assert_true(file.size > 0);
    assert_int_equal(action, 0);
    wrk_map_destroy(&m);
}

static void test_refusals(void **state)
{
    fix_t *f = *state;
    char path[512], err[512] = "";
    wrk_format_decisions_t d;
    wrk_survey_file_t file;
    wrk_map_t *m = map("{\"Name\": \"name\", \"Stage\": \"stage_id\", "
                       "\"Close\": \"expected_close_date\"}");
    int action = 0;
    FILE *out;
    snprintf(path, sizeof(path), "%s/short.csv", f->dir);
    out = fopen(path, "w");
    assert_non_null(out);
    fprintf(out, "Name,Stage\nA,Lead\n");
    fclose(out);
    start(&d);
    assert_int_equal(wrk_survey_run(&f->cfg, "short.csv", m, NULL, 100, &d,
                                    &file, &action, err, sizeof(err)),
                     WRK_SURVEY_EFAILED);
    if (strstr(err, "the file's header has no column 'Close'") == NULL)
        fail_msg("err: %s", err);
    assert_true(wrk_format_pending(&d));
    err[0] = '\0';
    assert_int_equal(wrk_survey_run(&f->cfg, "missing.csv", m, NULL, 100, &d,
                                    &file, &action, err, sizeof(err)),
                     WRK_SURVEY_EFAILED);
    assert_true(err[0] != '\0');
    wrk_map_destroy(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_decides_from_the_whole_file, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
