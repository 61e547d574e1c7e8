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

/* --- files with a format: one table per locale -----------------------------
 */

#define NNBSP "\xe2\x80\xaf" /* narrow no-break space, French thousands */
#define NBSP "\xc2\xa0"
#define EURO "\xe2\x82\xac"
#define RUPEE "\xe2\x82\xb9"

typedef struct {
    const char *in;
    int rc;      /* WRK_VALUE_* */
    double want; /* when rc is WRK_VALUE_OK */
    const char *code;
} amount_case_t;

static void check_amounts(const char *locale, wrk_decimal_t dec,
                          const amount_case_t *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double v = -1;
        char code[4] = "?";
        int rc = wrk_values_amount_as(cases[i].in, strlen(cases[i].in), dec, &v,
                                      code);
        if (rc != cases[i].rc)
            fail_msg("%s: '%s' gives %d, want %d", locale, cases[i].in, rc,
                     cases[i].rc);
        if (rc == WRK_VALUE_OK && v != cases[i].want)
            fail_msg("%s: '%s' -> %.17g, want %.17g", locale, cases[i].in, v,
                     cases[i].want);
        if (rc == WRK_VALUE_OK && cases[i].code &&
            strcmp(code, cases[i].code) != 0)
            fail_msg("%s: '%s' names '%s', want '%s'", locale, cases[i].in,
                     code, cases[i].code);
    }
}

#define CHECK(locale, dec, table)                                              \
    check_amounts(locale, dec, table, sizeof(table) / sizeof(table[0]))

static void test_amounts_en_us(void **state)
{
    static const amount_case_t t[] = {
        {"$1,234.56", WRK_VALUE_OK, 1234.56, ""},
        {"1,234,567.89", WRK_VALUE_OK, 1234567.89, ""},
        {"USD 5,000", WRK_VALUE_OK, 5000, "USD"},
        {"5000", WRK_VALUE_OK, 5000, ""},
        {"0.5", WRK_VALUE_OK, 0.5, ""},
        {"1 234.50", WRK_VALUE_OK, 1234.5, ""},
        /* Three decimals after 1-3 digits: thousands or decimals? */
        {"1.234", WRK_VALUE_AMBIGUOUS, 0, NULL},
        {"5.000,50", WRK_VALUE_BAD, 0, NULL},
        {"1,234.567,8", WRK_VALUE_BAD, 0, NULL},
        {"1,23", WRK_VALUE_BAD, 0, NULL},
        {"-5", WRK_VALUE_NEGATIVE, 0, NULL},
        {"1,234 567.00", WRK_VALUE_BAD, 0, NULL}, /* two kinds of group */
    };
    (void)state;
    CHECK("en-US", WRK_DECIMAL_DOT, t);
}

static void test_amounts_en_gb(void **state)
{
    static const amount_case_t t[] = {
        {"\xc2\xa3"
         "1,234.56",
         WRK_VALUE_OK, 1234.56, "GBP"},
        {"1,234.56 GBP", WRK_VALUE_OK, 1234.56, "GBP"},
        {"12.5", WRK_VALUE_OK, 12.5, ""},
        {"5,000.50", WRK_VALUE_OK, 5000.5, ""},
        {"1.234", WRK_VALUE_AMBIGUOUS, 0, NULL},
    };
    (void)state;
    CHECK("en-GB", WRK_DECIMAL_DOT, t);
}

static void test_amounts_de_de(void **state)
{
    static const amount_case_t t[] = {
        {"1.234,56 " EURO, WRK_VALUE_OK, 1234.56, "EUR"},
        {"1.234,56" NBSP EURO, WRK_VALUE_OK, 1234.56, "EUR"},
        {"1.234.567,89", WRK_VALUE_OK, 1234567.89, ""},
        {"1.234", WRK_VALUE_OK, 1234, ""},
        {"5,5", WRK_VALUE_OK, 5.5, ""},
        {"0,50 EUR", WRK_VALUE_OK, 0.5, "EUR"},
        {EURO " 1.234,56", WRK_VALUE_OK, 1234.56, "EUR"},
        /* Never 5: the comma is the decimal, so the dot cannot follow. */
        {"5,000.50", WRK_VALUE_BAD, 0, NULL},
        {"1,234", WRK_VALUE_AMBIGUOUS, 0, NULL},
        {"1.23,4", WRK_VALUE_BAD, 0, NULL},
        {"0.500", WRK_VALUE_BAD, 0, NULL},
    };
    (void)state;
    CHECK("de-DE", WRK_DECIMAL_COMMA, t);
}

static void test_amounts_fr_fr(void **state)
{
    static const amount_case_t t[] = {
        {"1" NNBSP "234,56" NNBSP EURO, WRK_VALUE_OK, 1234.56, "EUR"},
        {"1" NBSP "234,56" NBSP EURO, WRK_VALUE_OK, 1234.56, "EUR"},
        {"1 234 567,89 " EURO, WRK_VALUE_OK, 1234567.89, "EUR"},
        {"12,5", WRK_VALUE_OK, 12.5, ""},
        {"1" NNBSP "234" NBSP "567,00", WRK_VALUE_BAD, 0, NULL},
        {"5,000.50", WRK_VALUE_BAD, 0, NULL},
    };
    (void)state;
    CHECK("fr-FR", WRK_DECIMAL_COMMA, t);
}

static void test_amounts_pt_br(void **state)
{
    static const amount_case_t t[] = {
        {"R$ 1.234,56", WRK_VALUE_OK, 1234.56, "BRL"},
        {"R$1.234,56", WRK_VALUE_OK, 1234.56, "BRL"},
        {"BRL 10.000,00", WRK_VALUE_OK, 10000, "BRL"},
        {"R$ -5,00", WRK_VALUE_NEGATIVE, 0, NULL},
        {"5,000.50", WRK_VALUE_BAD, 0, NULL},
    };
    (void)state;
    CHECK("pt-BR", WRK_DECIMAL_COMMA, t);
}

static void test_amounts_de_ch(void **state)
{
    static const amount_case_t t[] = {
        {"CHF 1'234.50", WRK_VALUE_OK, 1234.5, "CHF"},
        {"1'234'567.80 CHF", WRK_VALUE_OK, 1234567.8, "CHF"},
        {"CHF 1\xe2\x80\x99"
         "234.50",
         WRK_VALUE_OK, 1234.5, "CHF"},
        {"1'23.50", WRK_VALUE_BAD, 0, NULL},
        {"5,000.50", WRK_VALUE_OK, 5000.5, ""},
    };
    (void)state;
    CHECK("de-CH", WRK_DECIMAL_DOT, t);
}

static void test_amounts_en_in(void **state)
{
    static const amount_case_t t[] = {
        {RUPEE "1,23,456.00", WRK_VALUE_OK, 123456, "INR"},
        {"12,34,56,789.50", WRK_VALUE_OK, 123456789.5, ""},
        {"INR 1,00,000", WRK_VALUE_OK, 100000, "INR"},
        {RUPEE " 999.99", WRK_VALUE_OK, 999.99, "INR"},
        {"1,234,567.00", WRK_VALUE_OK, 1234567, ""},
        {"123,45,678", WRK_VALUE_BAD, 0, NULL}, /* a lakh group of three */
        {"1,23,45", WRK_VALUE_BAD, 0, NULL},    /* ends in two */
        {"5,000.50", WRK_VALUE_OK, 5000.5, ""},
    };
    (void)state;
    CHECK("en-IN", WRK_DECIMAL_DOT, t);
}

/* Without a format the new forms stay refused (today's rules exactly), and
 * an undecided column reads only what both separators read alike. */
static void test_amounts_default_and_undecided(void **state)
{
    static const amount_case_t def[] = {
        {"R$ 1.234,56", WRK_VALUE_BAD, 0, NULL},
        {RUPEE "1,23,456.00", WRK_VALUE_BAD, 0, NULL},
        {"1'234.50", WRK_VALUE_BAD, 0, NULL},
        {"1.234", WRK_VALUE_AMBIGUOUS, 0, NULL},
        {"5,000.50", WRK_VALUE_OK, 5000.5, ""},
    };
    static const amount_case_t und[] = {
        {"5000", WRK_VALUE_OK, 5000, ""},
        {"1 234", WRK_VALUE_OK, 1234, ""},
        {"1.234", WRK_VALUE_UNDECIDED, 0, NULL},
        {"5,000.50", WRK_VALUE_UNDECIDED, 0, NULL},
        {"12,5", WRK_VALUE_UNDECIDED, 0, NULL},
        {"abc", WRK_VALUE_BAD, 0, NULL},
        {"-5", WRK_VALUE_NEGATIVE, 0, NULL},
    };
    (void)state;
    CHECK("none", WRK_DECIMAL_DEFAULT, def);
    CHECK("undecided", WRK_DECIMAL_UNDECIDED, und);
}

/* "1.234" is 1234 with a comma and refused with a dot, as without a
 * format; no setting reads "5,000.50" as 5. */
static void test_amounts_acceptance(void **state)
{
    static const wrk_decimal_t all[] = {WRK_DECIMAL_DEFAULT, WRK_DECIMAL_DOT,
                                        WRK_DECIMAL_COMMA,
                                        WRK_DECIMAL_UNDECIDED};
    double v = 0;
    char code[4];
    (void)state;
    assert_int_equal(
        wrk_values_amount_as("1.234", 5, WRK_DECIMAL_COMMA, &v, code),
        WRK_VALUE_OK);
    assert_true(v == 1234);
    assert_int_equal(
        wrk_values_amount_as("1.234", 5, WRK_DECIMAL_DOT, &v, code),
        WRK_VALUE_AMBIGUOUS);
    for (size_t i = 0; i < 4; i++) {
        v = -1;
        int rc = wrk_values_amount_as("5,000.50", 8, all[i], &v, code);
        assert_true(rc != WRK_VALUE_OK || v == 5000.5);
    }
}

static void test_percent_locales(void **state)
{
    static const struct {
        const char *in;
        wrk_decimal_t dec;
        int rc;
        double want;
    } t[] = {
        {"12,5 %", WRK_DECIMAL_COMMA, WRK_VALUE_OK, 12.5},
        {"12,5" NNBSP "%", WRK_DECIMAL_COMMA, WRK_VALUE_OK, 12.5},
        {"12.5%", WRK_DECIMAL_DOT, WRK_VALUE_OK, 12.5},
        {"12.5%", WRK_DECIMAL_COMMA, WRK_VALUE_BAD, 0},
        {"50", WRK_DECIMAL_UNDECIDED, WRK_VALUE_OK, 50},
        {"12,5", WRK_DECIMAL_UNDECIDED, WRK_VALUE_UNDECIDED, 0},
        {"100,5", WRK_DECIMAL_COMMA, WRK_VALUE_BAD, 0},
        {"12,5%", WRK_DECIMAL_DEFAULT, WRK_VALUE_BAD, 0},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        double v = -1;
        int rc = wrk_values_percent_as(t[i].in, strlen(t[i].in), t[i].dec, &v);
        if (rc != t[i].rc || (rc == WRK_VALUE_OK && v != t[i].want))
            fail_msg("'%s' (%d): %d %.17g", t[i].in, (int)t[i].dec, rc, v);
    }
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
        cmocka_unit_test(test_amounts_en_us),
        cmocka_unit_test(test_amounts_en_gb),
        cmocka_unit_test(test_amounts_de_de),
        cmocka_unit_test(test_amounts_fr_fr),
        cmocka_unit_test(test_amounts_pt_br),
        cmocka_unit_test(test_amounts_de_ch),
        cmocka_unit_test(test_amounts_en_in),
        cmocka_unit_test(test_amounts_default_and_undecided),
        cmocka_unit_test(test_amounts_acceptance),
        cmocka_unit_test(test_percent_locales),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
