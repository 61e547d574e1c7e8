/*
 * Tests ctl_watch's pure parts: rates over the recent samples (and a new
 * window when figures go backwards), the terminal bar, the plain line and
 * the summary, byte for byte; and ctl_duration.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "ctl_client.h"
#include "ctl_watch.h"

#define QID "64b0000000000000000000aa"

static void test_rates(void **state)
{
    ctl_watch_rate_t r;
    double l, b;
    (void)state;
    ctl_watch_rate_init(&r);
    ctl_watch_rate_get(&r, &l, &b);
    assert_true(l < 0 && b < 0);
    ctl_watch_rate_add(&r, 1000, 0, 0);
    ctl_watch_rate_add(&r, 1500, 500, 5000);
    /* Half a second is too short to tell. */
    ctl_watch_rate_get(&r, &l, &b);
    assert_true(l < 0);
    ctl_watch_rate_add(&r, 3000, 2000, 20000);
    ctl_watch_rate_get(&r, &l, &b);
    assert_true(l > 999.9 && l < 1000.1);
    assert_true(b > 9999.9 && b < 10000.1);
    /* Only the last 10 s count: an early slow start is forgotten. */
    for (int i = 1; i <= 30; i++)
        ctl_watch_rate_add(&r, 3000 + i * 1000, 2000 + i * 3000,
                           20000 + i * 30000);
    ctl_watch_rate_get(&r, &l, &b);
    assert_true(l > 2999.9 && l < 3000.1);
    /* A new run (fewer lines than before) starts over. */
    ctl_watch_rate_add(&r, 40000, 10, 100);
    ctl_watch_rate_get(&r, &l, &b);
    assert_true(l < 0);
}

static ctl_watch_sample_t sample(const char *status)
{
    ctl_watch_sample_t s;
    memset(&s, 0, sizeof(s));
    s.status = status;
    s.lines = 90123;
    s.added = 90000;
    s.errors = 123;
    s.bytes = 452;
    s.bytes_total = 1000;
    s.rate = 3012.4;
    s.eta_s = 18;
    s.elapsed = -1;
    return s;
}

static void test_bar(void **state)
{
    ctl_watch_sample_t s = sample("processing");
    char out[512];
    (void)state;
    /* 100 columns: a bar of 28 cells, 45.2% of them full. */
    assert_string_equal(ctl_watch_bar(&s, 100, out, sizeof(out)),
                        "processing [############----------------]  45.2%  "
                        "90123 lines  3012/s  ETA 18s  123 errors");
    s.bytes_total = -1;
    s.rate = -1;
    s.eta_s = -1;
    s.status = "pending";
    assert_string_equal(ctl_watch_bar(&s, 40, out, sizeof(out)),
                        "pending    [----------]   --%  90123 lines  --/s  "
                        "ETA --  123 errors");
    s = sample("processing");
    s.bytes = 2000; /* never more than full */
    ctl_watch_bar(&s, 80, out, sizeof(out));
    assert_non_null(strstr(out, "[##########] 100.0%"));
}

static void test_line_and_summary(void **state)
{
    ctl_watch_sample_t s = sample("processing");
    char out[512];
    (void)state;
    assert_string_equal(ctl_watch_line(QID, &s, out, sizeof(out)),
                        "import " QID ": processing, 45.2% of bytes, 90123 "
                        "lines, 90000 added, 123 errors, 3012 lines/s, eta "
                        "18s");
    s.status = "completed";
    s.elapsed = 30;
    assert_string_equal(ctl_watch_summary(QID, &s, out, sizeof(out)),
                        "import " QID " completed: 90123 lines, 90000 added, "
                        "123 errors in 30s (3004 lines/s)");
    s.status = "failed";
    s.elapsed = -1;
    s.error = "the file 'x.csv' was not found";
    assert_string_equal(ctl_watch_summary(QID, &s, out, sizeof(out)),
                        "import " QID " failed: 90123 lines, 90000 added, 123 "
                        "errors: the file 'x.csv' was not found");
}

static void test_duration(void **state)
{
    char d[32];
    (void)state;
    assert_string_equal(ctl_duration(-5, d, sizeof(d)), "0s");
    assert_string_equal(ctl_duration(59, d, sizeof(d)), "59s");
    assert_string_equal(ctl_duration(185, d, sizeof(d)), "3m05s");
    assert_string_equal(ctl_duration(7800, d, sizeof(d)), "2h10m");
    assert_string_equal(ctl_duration(356400, d, sizeof(d)), "4d03h");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rates),
        cmocka_unit_test(test_bar),
        cmocka_unit_test(test_line_and_summary),
        cmocka_unit_test(test_duration),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
