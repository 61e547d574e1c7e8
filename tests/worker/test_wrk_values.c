/*
 * Tests wrk_values: every parser with the good values it must read exactly
 * and the bad ones it must refuse, the reason each refusal gives the
 * mapper's message, the currency a marker names, and that the length-based
 * forms read only the bytes they are given (cells are not NUL-terminated).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "wrk_values.h"

static void test_amounts(void **state)
{
    static const struct {
        const char *in;
        double want;
    } good[] = {
        {"5000", 5000},
        {"5,000", 5000},
        {"5000.50", 5000.5},
        {"5,000.50", 5000.5},
        {"$5,000.50", 5000.5},
        {"USD 5000", 5000},
        {"5000 USD", 5000},
        {"USD5000", 5000},
        {"\xe2\x82\xac"
         "5000",
         5000},
        {"5000 \xe2\x82\xac", 5000},
        {"\xc2\xa3"
         "12.5",
         12.5},
        {" 0 ", 0},
        {"0.125", 0.125},
        {"1,234,567.89", 1234567.89},
        {"1234.500", 1234.5},
        {".5", 0.5},
        {"$ 19.99", 19.99},
        {"999999999999999", 999999999999999.0},
        {"0.1", 0.1},
        {"5000\xc2\xa0", 5000},
    };
    static const char *const bad[] = {
        "-5",
        "5,00",
        "12abc",
        "1e309",
        "NaN",
        "inf",
        "",
        "5.000,50",
        "5.000",
        "12.500",
        "1.000.000",
        "5 000",
        ",500",
        "0,500",
        "5000,",
        "5,0000",
        "1,23,456",
        "5.",
        "$",
        "USD",
        "$5000$",
        "USD 5000 EUR",
        "--5",
        "+5",
        "(500)",
        "5k",
        "usd 5000",
        "5000 usd",
        "5000 Usd",
        "12abc",
        "1000000000000000",
        "0.0000000000000001",
        "5000 USDX",
        "$-5",
        "\xe2\x82\xac",
        "0x10",
    };
    char big[200];
    double v;
    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        v = -1;
        if (wrk_values_parse_amount(good[i].in, &v) != 0)
            fail_msg("'%s' refused", good[i].in);
        /* Exact: the nearest double to the decimal, as a literal is. */
        if (v != good[i].want)
            fail_msg("'%s' -> %.17g, want %.17g", good[i].in, v, good[i].want);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        v = -1;
        if (wrk_values_parse_amount(bad[i], &v) == 0)
            fail_msg("'%s' accepted as %.17g", bad[i], v);
        assert_true(v == -1);
    }
    memset(big, '9', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(wrk_values_parse_amount(big, &v), -1);
    assert_int_equal(wrk_values_parse_amount(NULL, &v), -1);
}

static void test_dates(void **state)
{
    static const struct {
        const char *in;
        int64_t ms;
    } good[] = {
        {"2025-03-31", 1743379200000},
        {"2024-02-29", 1709164800000},
        {"02/29/2024", 1709164800000},
        {"2/29/2024", 1709164800000},
        {"03/31/2025", 1743379200000},
        {"2025-03-31T10:00:00Z", 1743415200000},
        {"2025-03-31t10:00z", 1743415200000},
        {"2025-03-31 10:00:00", 1743415200000},
        {"2025-03-31T10:00:00+02:00", 1743408000000},
        {"2025-03-31T10:00:00+0200", 1743408000000},
        {"2025-03-31T10:00:00+02", 1743408000000},
        {"2025-03-31T10:00:00.123-05:30", 1743435000123},
        {"2025-03-31T10:00:00,123456789-05:30", 1743435000123},
        {"2000-02-29", 951782400000},
        {"1969-12-31", -86400000},
        {"0001-01-01", -62135596800000},
        {"9999-12-31", 253402214400000},
        {" 2025-03-31 ", 1743379200000},
    };
    static const char *const bad[] = {
        "2025-02-29",
        "1900-02-29",
        "2025-04-31",
        "2025-13-01",
        "2025-00-10",
        "2025-01-00",
        "0000-01-01",
        "13/01/2024",
        "02/30/2024",
        "2025-03-31T24:00:00Z",
        "2025-03-31T10:60Z",
        "2025-03-31T10:00:60Z",
        "2025-03-31T10:00:00+24:00",
        "2025-3-31",
        "25-03-31",
        "2025/03/31",
        "31.03.2025",
        "2025-03-31T",
        "2025-03-31T10",
        "2025-03-31T10:00:00.",
        "2025-03-31T10:00:00Zjunk",
        "2025-03-31x",
        "1/1/25",
        "001/01/2025",
        "01/001/2025",
        "tomorrow",
        "",
        "2025-03-31T10:00+2",
        "2025-03-31T10:00:00.1234567890Z",
    };
    int64_t ms;
    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        ms = 0;
        if (wrk_values_parse_date(good[i].in, &ms) != 0)
            fail_msg("'%s' refused", good[i].in);
        if (ms != good[i].ms)
            fail_msg("'%s' -> %lld, want %lld", good[i].in, (long long)ms,
                     (long long)good[i].ms);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ms = 7;
        if (wrk_values_parse_date(bad[i], &ms) == 0)
            fail_msg("'%s' accepted as %lld", bad[i], (long long)ms);
        assert_true(ms == 7);
    }
}

static void test_probability(void **state)
{
    static const struct {
        const char *in;
        double want;
    } good[] = {
        {"50%", 50},  {"100", 100},    {"0", 0},     {"12.5 %", 12.5},
        {"0.5", 0.5}, {"100.0%", 100}, {" 75 ", 75},
    };
    static const char *const bad[] = {
        "101",   "100.01", "-5",    "50%%",       "%",   "",
        "fifty", "5,0",    "1,000", "50 percent", "1e2", "%50",
    };
    double v;
    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        v = -1;
        if (wrk_values_parse_percent(good[i].in, &v) != 0)
            fail_msg("'%s' refused", good[i].in);
        assert_true(v == good[i].want);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        v = -1;
        if (wrk_values_parse_percent(bad[i], &v) == 0)
            fail_msg("'%s' accepted as %g", bad[i], v);
    }
}

static void test_emails(void **state)
{
    static const char *const good[] = {
        "jane@example.com",
        "j.doe+crm@mail.example.co.uk",
        " jane@example.com ",
        "J@EXAMPLE.COM",
        "\xc3\xa9l\xc3\xa8ve@\xc3\xa9"
        "cole.fr",
    };
    static const char *const bad[] = {
        "",
        "jane",
        "jane@",
        "@example.com",
        "jane@example",
        "jane@@example.com",
        "jane@ex@ample.com",
        "jane doe@example.com",
        "jane@example..com",
        "jane@.example.com",
        "jane@example.com.",
        ".jane@example.com",
        "ja..ne@example.com",
        "Jane <jane@example.com>",
        "jane@example.com,bob@example.com",
        "jane@example.com;",
        "jane\xc2\xa0"
        "doe@example.com",
        "jane\t@example.com",
    };
    char longmail[300];
    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (wrk_values_check_email(good[i]) != 0)
            fail_msg("'%s' refused", good[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (wrk_values_check_email(bad[i]) == 0)
            fail_msg("'%s' accepted", bad[i]);
    /* 254 bytes is the limit; the local part at most 64. */
    memset(longmail, 'a', sizeof(longmail));
    memcpy(longmail + 64, "@", 1);
    memcpy(longmail + 250, ".com", 5); /* 254 bytes */
    assert_int_equal(wrk_values_check_email(longmail), 0);
    memcpy(longmail + 251, ".com", 5); /* 255 bytes */
    assert_int_equal(wrk_values_check_email(longmail), -1);
    memset(longmail, 'a', 100);
    memcpy(longmail + 65, "@example.com", 13); /* local part of 65 */
    assert_int_equal(wrk_values_check_email(longmail), -1);
    assert_int_equal(wrk_values_check_email(NULL), -1);
}

static int amount(const char *s, double *v, char code[4])
{
    return wrk_values_amount(s, strlen(s), v, code);
}

static void test_reasons(void **state)
{
    char code[4];
    double v;
    int64_t ms;
    (void)state;
    assert_int_equal(amount("-5", &v, code), WRK_VALUE_NEGATIVE);
    assert_int_equal(amount("$-5", &v, code), WRK_VALUE_NEGATIVE);
    assert_int_equal(amount("5.000", &v, code), WRK_VALUE_AMBIGUOUS);
    assert_int_equal(amount("1234567890123456", &v, code), WRK_VALUE_TOO_LONG);
    assert_int_equal(amount("12abc", &v, code), WRK_VALUE_BAD);
    assert_int_equal(wrk_values_date("2025-02-29", 10, &ms),
                     WRK_VALUE_NOT_REAL);
    assert_int_equal(wrk_values_date("02/30/2024", 10, &ms),
                     WRK_VALUE_NOT_REAL);
    assert_int_equal(wrk_values_date("next week", 9, &ms), WRK_VALUE_BAD);
    assert_int_equal(wrk_values_percent("101", 3, &v), WRK_VALUE_BAD);
    assert_int_equal(wrk_values_email("jane", 4), WRK_VALUE_BAD);
}

static void test_currency_markers(void **state)
{
    static const struct {
        const char *in;
        const char *code;
    } cases[] = {
        {"USD 5000", "USD"},
        {"5000EUR", "EUR"},
        {"\xe2\x82\xac"
         "5000",
         "EUR"},
        {"5000 \xc2\xa3", "GBP"},
        {"$5,000", ""},
        {"5000", ""},
    };
    char code[4];
    double v;
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memcpy(code, "xxx", 4);
        assert_int_equal(amount(cases[i].in, &v, code), WRK_VALUE_OK);
        assert_string_equal(code, cases[i].code);
        assert_true(v == 5000);
    }
}

/* The length-based forms read exactly len bytes: what follows in memory
 * (here digits or a valid suffix) must not change the answer. */
static void test_lengths(void **state)
{
    char code[4];
    double v = 0;
    int64_t ms = 0;
    (void)state;
    assert_int_equal(wrk_values_amount("5000999", 4, &v, code), WRK_VALUE_OK);
    assert_true(v == 5000);
    assert_int_equal(wrk_values_amount("5,0001", 4, &v, code), WRK_VALUE_BAD);
    assert_int_equal(wrk_values_amount("5,0001", 5, &v, code), WRK_VALUE_OK);
    assert_true(v == 5000);
    assert_int_equal(wrk_values_percent("50%%%", 3, &v), WRK_VALUE_OK);
    assert_true(v == 50);
    assert_int_equal(wrk_values_date("2025-03-31T10:00:00Z", 10, &ms),
                     WRK_VALUE_OK);
    assert_true(ms == 1743379200000);
    assert_int_equal(wrk_values_email("jane@example.com,x", 16), WRK_VALUE_OK);
    assert_int_equal(wrk_values_email("jane@example.com", 5), WRK_VALUE_BAD);
    assert_int_equal(wrk_values_amount("", 0, &v, code), WRK_VALUE_BAD);
    assert_int_equal(wrk_values_date("", 0, &ms), WRK_VALUE_BAD);
}

static void test_trim(void **state)
{
    const char *p = " \t\xc2\xa0 x y\xc2\xa0\r\n";
    size_t len = strlen(p);
    (void)state;
    wrk_values_trim(&p, &len);
    assert_int_equal(len, 3);
    assert_memory_equal(p, "x y", 3);
    assert_int_equal(wrk_values_space_at("\xc2\xa0", 2), 2);
    assert_int_equal(wrk_values_space_at("\xc2", 1), 0);
    assert_int_equal(wrk_values_space_at("a", 1), 0);
    p = "   ";
    len = 3;
    wrk_values_trim(&p, &len);
    assert_int_equal(len, 0);
    /* Not UTF-8: the NUL-terminated forms refuse it. */
    assert_int_equal(wrk_values_check_email("j\xff@example.com"), -1);
    assert_int_equal(wrk_values_parse_amount("5000\xff", &(double){0}), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_amounts),
        cmocka_unit_test(test_dates),
        cmocka_unit_test(test_probability),
        cmocka_unit_test(test_emails),
        cmocka_unit_test(test_reasons),
        cmocka_unit_test(test_currency_markers),
        cmocka_unit_test(test_lengths),
        cmocka_unit_test(test_trim),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
