/*
 * Tests wrk_dates: the dates of each locale's files read under their order
 * (one table per locale), the same cells under the other orders, what an
 * undecided column reads, explicit layouts, and that the rules of a file
 * without a format did not move.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "wrk_dates.h"
#include "wrk_values.h"

#define DEC31 1767139200000LL /* 2025-12-31 */
#define APR3 1743638400000LL  /* 2025-04-03 */
#define MAR4 1741046400000LL  /* 2025-03-04 */

typedef struct {
    const char *in;
    int rc;
    int64_t ms;
} date_case_t;

static void check(const char *locale, wrk_date_order_t order,
                  const wrk_dates_layouts_t *layouts, const date_case_t *t,
                  size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int64_t ms = -7;
        int rc = wrk_dates_parse(t[i].in, strlen(t[i].in), order, layouts, &ms);
        if (rc != t[i].rc)
            fail_msg("%s: '%s' gives %d, want %d", locale, t[i].in, rc,
                     t[i].rc);
        if (rc == WRK_VALUE_OK && ms != t[i].ms)
            fail_msg("%s: '%s' -> %lld, want %lld", locale, t[i].in,
                     (long long)ms, (long long)t[i].ms);
    }
}

#define CHECK(locale, order, layouts, t)                                       \
    check(locale, order, layouts, t, sizeof(t) / sizeof(t[0]))

static void test_en_us(void **state)
{
    static const date_case_t t[] = {
        {"12/31/2025", WRK_VALUE_OK, DEC31},
        {"4/3/2025", WRK_VALUE_OK, APR3},
        {"04-03-2025", WRK_VALUE_OK, APR3},
        {"2025-12-31", WRK_VALUE_OK, DEC31},
        {"2025/12/31", WRK_VALUE_OK, DEC31},
        {"12/31/2025 14:30", WRK_VALUE_OK, 1767191400000LL},
        {"31/12/2025", WRK_VALUE_NOT_REAL, 0},
        {"12/31/25", WRK_VALUE_BAD, 0},
    };
    (void)state;
    CHECK("en-US", WRK_DATES_MDY, NULL, t);
}

static void test_day_first_locales(void **state)
{
    /* en-GB, fr-FR, pt-BR with slashes; de-DE, de-CH with dots; en-IN with
     * dashes or slashes. */
    static const date_case_t t[] = {
        {"31/12/2025", WRK_VALUE_OK, DEC31},
        {"31.12.2025", WRK_VALUE_OK, DEC31},
        {"31-12-2025", WRK_VALUE_OK, DEC31},
        {"3/4/2025", WRK_VALUE_OK, APR3},
        {"03.04.2025", WRK_VALUE_OK, APR3},
        {"31.12.2025 14:30:15", WRK_VALUE_OK, 1767191415000LL},
        {"2025-12-31T00:00:00Z", WRK_VALUE_OK, DEC31},
        {"12/31/2025", WRK_VALUE_NOT_REAL, 0},
        {"31/12.2025", WRK_VALUE_BAD, 0},
        {"31.12.25", WRK_VALUE_BAD, 0},
        {"31.12.2025.", WRK_VALUE_BAD, 0},
        {"29.02.2025", WRK_VALUE_NOT_REAL, 0},
    };
    (void)state;
    CHECK("en-GB/de-DE/fr-FR/pt-BR/de-CH/en-IN", WRK_DATES_DMY, NULL, t);
}

static void test_year_first(void **state)
{
    static const date_case_t t[] = {
        {"2025/12/31", WRK_VALUE_OK, DEC31}, {"2025.4.3", WRK_VALUE_OK, APR3},
        {"2025-12-31", WRK_VALUE_OK, DEC31}, {"31/12/2025", WRK_VALUE_BAD, 0},
        {"12/31/2025", WRK_VALUE_BAD, 0},
    };
    (void)state;
    CHECK("YMD", WRK_DATES_YMD, NULL, t);
}

/* A column "auto" left open reads only what both orders read alike. */
static void test_undecided(void **state)
{
    static const date_case_t t[] = {
        {"03/04/2025", WRK_VALUE_UNDECIDED, 0},
        {"31/12/2025", WRK_VALUE_UNDECIDED, 0},
        {"12/31/2025", WRK_VALUE_UNDECIDED, 0},
        {"04/04/2025", WRK_VALUE_OK, 1743724800000LL},
        {"2025-12-31", WRK_VALUE_OK, DEC31},
        {"2025/12/31", WRK_VALUE_OK, DEC31},
        {"32/13/2025", WRK_VALUE_NOT_REAL, 0},
        {"soon", WRK_VALUE_BAD, 0},
    };
    (void)state;
    CHECK("undecided", WRK_DATES_UNDECIDED, NULL, t);
}

/* Without a format: ISO or M/D/YYYY with slashes, as before. */
static void test_default(void **state)
{
    static const date_case_t t[] = {
        {"03/04/2025", WRK_VALUE_OK, MAR4},    {"31.12.2025", WRK_VALUE_BAD, 0},
        {"2025/12/31", WRK_VALUE_BAD, 0},      {"04-03-2025", WRK_VALUE_BAD, 0},
        {"13/01/2024", WRK_VALUE_NOT_REAL, 0},
    };
    (void)state;
    CHECK("none", WRK_DATES_DEFAULT, NULL, t);
}

static void test_layouts(void **state)
{
    wrk_dates_layouts_t l;
    static const date_case_t t[] = {
        {"31.12.2025", WRK_VALUE_OK, DEC31},
        {"2025/12/31 14:30", WRK_VALUE_OK, 1767191400000LL},
        {"20251231", WRK_VALUE_OK, DEC31},
        /* Not a layout's: the order rule (MDY) reads it. */
        {"4/3/2025", WRK_VALUE_OK, APR3},
        {"31.12.2025 x", WRK_VALUE_BAD, 0},
    };
    static const char *const bad[] = {
        "",
        "MM/DD",
        "YYYY-MM",
        "YYYY-MM-DD-DD",
        "YYYYMD",
        "YYYY-MM-DD HH",
        "YYYY-MM-DD mm",
        "YYYY-MM-DD 1",
        "YYYY-MM-DD\t",
        "YYYY-MM-DD HH:mm:ss and a long tail",
    };
    (void)state;
    memset(&l, 0, sizeof(l));
    l.n = 3;
    strcpy(l.layout[0], "DD.MM.YYYY");
    strcpy(l.layout[1], "YYYY/MM/DD HH:mm");
    strcpy(l.layout[2], "YYYYMMDD");
    for (size_t i = 0; i < l.n; i++)
        assert_int_equal(wrk_dates_layout_check(l.layout[i]), 0);
    CHECK("layouts", WRK_DATES_MDY, &l, t);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (wrk_dates_layout_check(bad[i]) == 0)
            fail_msg("layout '%s' accepted", bad[i]);
}

static void test_names(void **state)
{
    wrk_date_order_t o;
    (void)state;
    assert_int_equal(wrk_dates_order_from_name("DMY", &o), 0);
    assert_int_equal(o, WRK_DATES_DMY);
    assert_string_equal(wrk_dates_order_name(WRK_DATES_MDY), "MDY");
    assert_int_equal(wrk_dates_order_from_name("dmy", &o), -1);
    assert_int_equal(wrk_dates_order_from_name("auto", &o), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_en_us),
        cmocka_unit_test(test_day_first_locales),
        cmocka_unit_test(test_year_first),
        cmocka_unit_test(test_undecided),
        cmocka_unit_test(test_default),
        cmocka_unit_test(test_layouts),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
