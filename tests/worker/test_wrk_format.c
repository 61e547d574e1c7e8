/*
 * Tests wrk_format: the setting read with one type per field (each wrong
 * shape refused with the field's name), the "auto" verdict over columns as
 * each locale writes them, the record a resume restores, and the setting a
 * refused cell's message names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "wrk_format.h"

static int read_json(const char *json, wrk_format_t *f, char *err,
                     size_t errlen)
{
    bson_error_t e;
    bson_t *q = bson_new_from_json((const uint8_t *)json, -1, &e);
    int rc;
    assert_non_null(q);
    err[0] = '\0';
    rc = wrk_format_read(q, f, err, errlen);
    bson_destroy(q);
    return rc;
}

static void test_read(void **state)
{
    wrk_format_t f;
    char err[512];
    (void)state;
    assert_int_equal(read_json("{\"additional_data\": {}}", &f, err, 512), 0);
    assert_int_equal(f.present, 0);
    assert_int_equal(f.date_order, WRK_DATES_DEFAULT);
    assert_int_equal(f.decimal, WRK_DECIMAL_DEFAULT);
    assert_int_equal(
        read_json("{\"additional_data\": {\"format\": {\"date_order\": "
                  "\"DMY\", \"decimal\": \",\", \"date_formats\": "
                  "[\"DD.MM.YYYY\", \"YYYY/MM/DD HH:mm\"]}}}",
                  &f, err, 512),
        0);
    assert_int_equal(f.present, 1);
    assert_int_equal(f.date_order, WRK_DATES_DMY);
    assert_int_equal(f.decimal, WRK_DECIMAL_COMMA);
    assert_int_equal(f.layouts.n, 2);
    assert_string_equal(f.layouts.layout[1], "YYYY/MM/DD HH:mm");
    assert_int_equal(
        read_json("{\"additional_data\": {\"format\": {\"date_order\": "
                  "\"auto\", \"decimal\": \"auto\"}}}",
                  &f, err, 512),
        0);
    assert_true(f.date_auto && f.decimal_auto);
    assert_int_equal(f.date_order, WRK_DATES_DEFAULT);
    /* layouts that agree with the order, or say nothing against it (the
     * year first), and any layout under "auto" */
    assert_int_equal(
        read_json("{\"additional_data\": {\"format\": {\"date_order\": "
                  "\"MDY\", \"date_formats\": [\"MM/DD/YYYY\", "
                  "\"YYYY-MM-DD\", \"M.D.YYYY HH:mm\"]}}}",
                  &f, err, 512),
        0);
    assert_int_equal(
        read_json("{\"additional_data\": {\"format\": {\"date_order\": "
                  "\"auto\", \"date_formats\": [\"DD.MM.YYYY\", "
                  "\"MM/DD/YYYY\"]}}}",
                  &f, err, 512),
        0);
}

/* Each wrong shape: refused, and the sentence names the field. */
static void test_read_refusals(void **state)
{
    static const struct {
        const char *json;
        const char *says;
    } t[] = {
        {"{\"additional_data\": {\"format\": \"DMY\"}}",
         "'additional_data.format' is a string, not a document"},
        {"{\"additional_data\": {\"format\": null}}",
         "'additional_data.format' is null"},
        {"{\"additional_data\": {\"format\": {\"date_order\": 1}}}",
         "'additional_data.format.date_order' is a number, not one of "
         "\"MDY\", \"DMY\", \"YMD\" or \"auto\""},
        {"{\"additional_data\": {\"format\": {\"date_order\": \"dmy\"}}}",
         "'additional_data.format.date_order' is the string 'dmy', not"},
        {"{\"additional_data\": {\"format\": {\"decimal\": true}}}",
         "'additional_data.format.decimal' is a boolean"},
        {"{\"additional_data\": {\"format\": {\"decimal\": \";\"}}}",
         "'additional_data.format.decimal' is the string ';'"},
        {"{\"additional_data\": {\"format\": {\"date_formats\": "
         "\"DD.MM.YYYY\"}}}",
         "'additional_data.format.date_formats' is the string "
         "'DD.MM.YYYY', not an array"},
        {"{\"additional_data\": {\"format\": {\"date_formats\": [\"MM/DD\"]}}}",
         "'additional_data.format.date_formats' is the string 'MM/DD', not "
         "a date layout"},
        {"{\"additional_data\": {\"format\": {\"date_formats\": [1]}}}",
         "'additional_data.format.date_formats' is a number"},
        {"{\"additional_data\": {\"format\": {\"date_formats\": [\"D.M.YYYY\", "
         "\"D.M.YYYY\", \"D.M.YYYY\", \"D.M.YYYY\", \"D.M.YYYY\", "
         "\"D.M.YYYY\", \"D.M.YYYY\", \"D.M.YYYY\", \"D.M.YYYY\"]}}}",
         "has more than 8 layouts"},
        {"{\"additional_data\": {\"format\": {\"date_order\": \"DMY\", "
         "\"date_formats\": [\"DD.MM.YYYY\", \"MM/DD/YYYY\"]}}}",
         "has \"MM/DD/YYYY\", which writes the month before the day, against "
         "its date_order \"DMY\""},
        {"{\"additional_data\": {\"format\": {\"date_formats\": "
         "[\"D.M.YYYY\"], \"date_order\": \"MDY\"}}}",
         "has \"D.M.YYYY\", which writes the day before the month, against "
         "its date_order \"MDY\""},
        {"{\"additional_data\": {\"format\": {\"date_order\": \"YMD\", "
         "\"date_formats\": [\"DD/MM/YYYY HH:mm\"]}}}",
         "against its date_order \"YMD\""},
        {"{\"additional_data\": {\"format\": {\"date_format\": \"DMY\"}}}",
         "has 'date_format', which is not one of date_order, decimal and "
         "date_formats"},
    };
    wrk_format_t f;
    char err[512];
    (void)state;
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        if (read_json(t[i].json, &f, err, sizeof(err)) != -1)
            fail_msg("accepted: %s", t[i].json);
        if (strstr(err, t[i].says) == NULL)
            fail_msg("%s: '%s' does not say '%s'", t[i].json, err, t[i].says);
    }
}

static int decide(wrk_format_kind_t kind, const char *const *cells, size_t n,
                  wrk_format_tally_t *t)
{
    memset(t, 0, sizeof(*t));
    for (size_t i = 0; i < n; i++)
        wrk_format_tally_cell(t, kind, NULL, cells[i], strlen(cells[i]));
    return wrk_format_decide(t, kind);
}

#define DECIDE(kind, cells, t)                                                 \
    decide(kind, cells, sizeof(cells) / sizeof(cells[0]), t)

/* Columns as each locale writes them: the file decides where some cell
 * reads one way only and none the other. */
static void test_auto_locales(void **state)
{
    static const char *const us_dates[] = {"03/04/2025", "12/31/2025",
                                           "1/2/2025"};
    static const char *const dmy_dates[] = {"03.04.2025", "01.02.2025",
                                            "31.12.2025"};
    static const char *const all_0x[] = {"03/04/2025", "01/02/2025",
                                         "05/06/2025", "2025-01-01"};
    static const char *const mixed[] = {"31/12/2025", "12/31/2025"};
    static const char *const us_amounts[] = {"$1,234.56", "5,000", "750"};
    static const char *const de_amounts[] = {"1.234,56 \xe2\x82\xac",
                                             "5.000 \xe2\x82\xac", "750"};
    static const char *const ch_amounts[] = {"CHF 1'234.50", "CHF 5'000.00"};
    static const char *const in_amounts[] = {"\xe2\x82\xb9"
                                             "1,23,456.00",
                                             "\xe2\x82\xb9"
                                             "5,000.00"};
    static const char *const fr_amounts[] = {"1\xe2\x80\xaf"
                                             "234,56\xc2\xa0\xe2\x82\xac",
                                             "12\xe2\x80\xaf"
                                             "000\xc2\xa0\xe2\x82\xac"};
    static const char *const thousands_only[] = {"5,000", "12,000", "750"};
    wrk_format_tally_t t;
    (void)state;
    assert_int_equal(DECIDE(WRK_FORMAT_DATE, us_dates, &t), WRK_DATES_MDY);
    assert_int_equal(t.first, 1);
    assert_int_equal(t.two_ways, 2);
    assert_int_equal(DECIDE(WRK_FORMAT_DATE, dmy_dates, &t), WRK_DATES_DMY);
    /* All 0X/0Y: not guessed. */
    assert_int_equal(DECIDE(WRK_FORMAT_DATE, all_0x, &t), WRK_DATES_UNDECIDED);
    assert_int_equal(t.two_ways, 3);
    assert_int_equal(t.alike, 1);
    assert_int_equal(DECIDE(WRK_FORMAT_DATE, mixed, &t), WRK_DATES_UNDECIDED);
    assert_int_equal(DECIDE(WRK_FORMAT_AMOUNT, us_amounts, &t),
                     WRK_DECIMAL_DOT);
    assert_int_equal(DECIDE(WRK_FORMAT_AMOUNT, de_amounts, &t),
                     WRK_DECIMAL_COMMA);
    assert_int_equal(DECIDE(WRK_FORMAT_AMOUNT, ch_amounts, &t),
                     WRK_DECIMAL_DOT);
    assert_int_equal(DECIDE(WRK_FORMAT_AMOUNT, in_amounts, &t),
                     WRK_DECIMAL_DOT);
    assert_int_equal(DECIDE(WRK_FORMAT_AMOUNT, fr_amounts, &t),
                     WRK_DECIMAL_COMMA);
    /* "5,000" is 5000 or 5: a file of them decides nothing. */
    assert_int_equal(DECIDE(WRK_FORMAT_AMOUNT, thousands_only, &t),
                     WRK_DECIMAL_UNDECIDED);
}

/* "auto" with explicit layouts: a cell a layout reads says the order of
 * its day and month as much as "31/12/2025" does, and the column never
 * reads the same form two ways (by the layout, and by the order rule the
 * other way round). Each row: the column's cells, the decision, and for
 * each cell the day it is read as under that decision (0: refused).
 * Failure classes: 15 (the order rule and the layouts are one reading of
 * the column, decided together, not layered). */
static void test_auto_with_layouts(void **state)
{
#define FEB1 20120 /* days since 1970-01-01 */
#define DEC31 20453
    static const struct {
        const char *cells[3];
        int decision;
        int64_t day[3];
    } t[] = {
        /* The layout's cells are day-first: "1/2/2025" with them. */
        {{"01/02/2025", "1/2/2025", NULL}, WRK_DATES_DMY, {FEB1, FEB1, 0}},
        /* A month-first cell against the layout's: not guessed. */
        {{"01/02/2025", "1/2/2025", "12/31/2025"},
         WRK_DATES_UNDECIDED,
         {FEB1, 0, 0}},
        /* Year first says nothing of the day and month order. */
        {{"2025-12-31", "12/31/2025", NULL}, WRK_DATES_MDY, {DEC31, DEC31, 0}},
    };
    wrk_dates_layouts_t l;
    (void)state;
    memset(&l, 0, sizeof(l));
    l.n = 1;
    strcpy(l.layout[0], "DD/MM/YYYY");
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        wrk_format_tally_t tally;
        int d;
        memset(&tally, 0, sizeof(tally));
        for (size_t c = 0; c < 3 && t[i].cells[c]; c++)
            wrk_format_tally_cell(&tally, WRK_FORMAT_DATE, &l, t[i].cells[c],
                                  strlen(t[i].cells[c]));
        d = wrk_format_decide(&tally, WRK_FORMAT_DATE);
        if (d != t[i].decision)
            fail_msg("row %zu: decided %s, not %s", i,
                     wrk_dates_order_name((wrk_date_order_t)d),
                     wrk_dates_order_name((wrk_date_order_t)t[i].decision));
        for (size_t c = 0; c < 3 && t[i].cells[c]; c++) {
            int64_t ms = 0;
            int rc = wrk_dates_parse(t[i].cells[c], strlen(t[i].cells[c]),
                                     (wrk_date_order_t)d, &l, &ms);
            int64_t day = rc == WRK_VALUE_OK ? ms / 86400000 : 0;
            if (day != t[i].day[c])
                fail_msg("row %zu: '%s' read as day %lld, not %lld", i,
                         t[i].cells[c], (long long)day, (long long)t[i].day[c]);
        }
    }
#undef FEB1
#undef DEC31
}

/* The decisions survive the checkpoint: a resume restores them instead of
 * deciding again from what is left. */
static void test_record(void **state)
{
    wrk_format_t f;
    wrk_format_decisions_t d, r;
    const char *cols[WRK_FORMAT_KINDS] = {"Amount", NULL, "Close date"};
    bson_t *cp = bson_new(), *q = bson_new();
    char note[1024];
    (void)state;
    memset(&f, 0, sizeof(f));
    f.present = f.date_auto = f.decimal_auto = 1;
    wrk_format_start(&f, &d);
    d.is_auto[WRK_FORMAT_PERCENT] = 0; /* not mapped */
    assert_true(wrk_format_pending(&d));
    wrk_format_tally_cell(&d.tally[WRK_FORMAT_DATE], WRK_FORMAT_DATE, NULL,
                          "31/12/2025", 10);
    wrk_format_tally_cell(&d.tally[WRK_FORMAT_AMOUNT], WRK_FORMAT_AMOUNT, NULL,
                          "1.234,56", 8);
    wrk_format_finish(&d);
    assert_false(wrk_format_pending(&d));
    assert_int_equal(d.reading.date, WRK_DATES_DMY);
    assert_int_equal(d.reading.amount, WRK_DECIMAL_COMMA);
    wrk_format_append(&d, cols, cp);
    BSON_APPEND_DOCUMENT(q, "checkpoint", cp);

    /* A fresh run restores it; the record is what it says. */
    wrk_format_start(&f, &r);
    r.is_auto[WRK_FORMAT_PERCENT] = 0;
    assert_int_equal(wrk_format_restore(q, &r), 1);
    assert_int_equal(r.reading.date, WRK_DATES_DMY);
    assert_int_equal(r.reading.amount, WRK_DECIMAL_COMMA);
    assert_int_equal(r.tally[WRK_FORMAT_DATE].second, 1);
    wrk_format_note(&r, cols, note, sizeof(note));
    assert_non_null(strstr(note, "column 'Close date' (expected_close_date): "
                                 "date_order DMY"));
    assert_non_null(strstr(note, "column 'Amount' (value): decimal ','"));

    /* A checkpoint without the record restores nothing. */
    wrk_format_start(&f, &r);
    bson_reinit(q);
    assert_int_equal(wrk_format_restore(q, &r), 0);
    assert_true(wrk_format_pending(&r));
    /* Nor one whose reading is not a reading. */
    bson_reinit(q);
    {
        bson_error_t e;
        bson_t *bad = bson_new_from_json(
            (const uint8_t *)"{\"checkpoint\": {\"format\": {\"columns\": "
                             "[{\"field\": \"expected_close_date\", "
                             "\"reading\": 3}]}}}",
            -1, &e);
        assert_int_equal(wrk_format_restore(bad, &r), 0);
        bson_destroy(bad);
    }
    bson_destroy(cp);
    bson_destroy(q);
}

static void test_hints(void **state)
{
    wrk_format_reading_t r;
    char h[64];
    (void)state;
    memset(&r, 0, sizeof(r));
    r.date = WRK_DATES_MDY;
    wrk_format_hint(&r, WRK_FORMAT_DATE, "31/12/2025", 10, h, sizeof(h));
    assert_string_equal(h, "; set date_order DMY");
    r.date = WRK_DATES_DMY;
    wrk_format_hint(&r, WRK_FORMAT_DATE, "12/31/2025", 10, h, sizeof(h));
    assert_string_equal(h, "; set date_order MDY");
    wrk_format_hint(&r, WRK_FORMAT_DATE, "someday", 7, h, sizeof(h));
    assert_string_equal(h, "");
    r.amount = WRK_DECIMAL_DOT;
    wrk_format_hint(&r, WRK_FORMAT_AMOUNT, "1.234,56", 8, h, sizeof(h));
    assert_string_equal(h, "; set decimal ','");
    r.amount = WRK_DECIMAL_COMMA;
    wrk_format_hint(&r, WRK_FORMAT_AMOUNT, "1,234.56", 8, h, sizeof(h));
    assert_string_equal(h, "; set decimal '.'");
}

/* In a column left undecided, a cell that reads two ways is ambiguous;
 * one that reads one way only is not, and its sentence says so and names
 * the setting that reads it. */
static void test_undecided_refusals(void **state)
{
    wrk_format_reading_t r;
    char out[512];
    (void)state;
    memset(&r, 0, sizeof(r));
    r.date = WRK_DATES_UNDECIDED;
    r.amount = WRK_DECIMAL_UNDECIDED;
    wrk_format_refusal(&r, WRK_FORMAT_DATE, "expected_close_date",
                       WRK_VALUE_UNDECIDED, "03/04/2025", 10, "03/04/2025", out,
                       sizeof(out));
    assert_non_null(strstr(out, "ambiguous date: set the file's date order"));
    wrk_format_refusal(&r, WRK_FORMAT_DATE, "expected_close_date",
                       WRK_VALUE_UNDECIDED, "31/03/2025", 10, "31/03/2025", out,
                       sizeof(out));
    assert_null(strstr(out, "ambiguous"));
    assert_non_null(strstr(out, "expected_close_date '31/03/2025' reads only "
                                "one way"));
    assert_non_null(strstr(out, "date order is not decided; set date_order "
                                "DMY for the file"));
    wrk_format_refusal(&r, WRK_FORMAT_AMOUNT, "value", WRK_VALUE_UNDECIDED,
                       "1.234", 5, "1.234", out, sizeof(out));
    assert_non_null(strstr(out, "'1.234': ambiguous number"));
    wrk_format_refusal(&r, WRK_FORMAT_AMOUNT, "value", WRK_VALUE_UNDECIDED,
                       "1.234,56", 8, "1.234,56", out, sizeof(out));
    assert_null(strstr(out, "ambiguous"));
    assert_non_null(strstr(out, "decimal separator is not decided; set "
                                "decimal ',' for the file"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read),
        cmocka_unit_test(test_undecided_refusals),
        cmocka_unit_test(test_read_refusals),
        cmocka_unit_test(test_auto_locales),
        cmocka_unit_test(test_auto_with_layouts),
        cmocka_unit_test(test_record),
        cmocka_unit_test(test_hints),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
