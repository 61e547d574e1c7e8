/* dip_text: validation, cutting and formatting never end inside a UTF-8
 * character, whatever the size. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "dip_text.h"

static void test_valid(void **state)
{
    (void)state;
    assert_true(dip_text_utf8_valid("plain ascii text, long enough", 29));
    assert_true(
        dip_text_utf8_valid("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14));
    assert_false(dip_text_utf8_valid("\xc3", 1));             /* cut */
    assert_false(dip_text_utf8_valid("\xc0\xaf", 2));         /* overlong */
    assert_false(dip_text_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
    assert_false(dip_text_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    assert_false(dip_text_utf8_valid("abcdefgh\x80", 9));     /* after a run */
    assert_true(dip_text_utf8_valid("a\0b", 3));
}

static void test_cut_every_size(void **state)
{
    /* 1-, 2-, 3- and 4-byte characters side by side, cut at every size. */
    const char *s = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z";
    size_t len = strlen(s);
    (void)state;
    for (size_t max = 0; max <= len + 1; max++) {
        size_t n = dip_text_cut(s, len, max);
        assert_true(n <= max);
        assert_true(dip_text_utf8_valid(s, n));
        /* the cut loses less than one character */
        assert_true(max >= len ? n == len : max - n < 4);
    }
    assert_int_equal(dip_text_cut(s, len, 2), 1);
    assert_int_equal(dip_text_cut(s, len, 3), 3);
    assert_int_equal(dip_text_cut(s, len, 9), 6);
}

static void test_format_every_size(void **state)
{
    char buf[64];
    const char *name =
        "\xd0\x9a\xd0\xbe\xd0\xbb\xd0\xbe\xd0\xbd\xd0\xba\xd0\xb0"
        "\xe2\x82\xac\xf0\x9f\x98\x80";
    (void)state;
    for (size_t size = 1; size <= sizeof(buf); size++) {
        int cut = -1;
        size_t n = dip_text_format(buf, size, &cut, "column '%s' is bad", name);
        assert_int_equal(n, strlen(buf));
        assert_true(n < size);
        assert_true(dip_text_utf8_valid(buf, n));
        assert_int_equal(cut, n < strlen("column '' is bad") + strlen(name));
    }
    assert_int_equal(dip_text_format(buf, sizeof(buf), NULL, "%d", 42), 2);
    assert_string_equal(buf, "42");
}

static void test_trim(void **state)
{
    const char *s = " \t x y \t";
    size_t n = dip_text_trim(&s, strlen(s));
    (void)state;
    assert_int_equal(n, 3);
    assert_memory_equal(s, "x y", 3);
    s = "   ";
    assert_int_equal(dip_text_trim(&s, 3), 0);
}

/* dip_text_say returns the caller's code whatever it writes, writes
 * nothing where there is no buffer, and cuts as dip_text_format does. */
static void test_say(void **state)
{
    static const struct {
        int rc;
        size_t size;
        const char *key, *want;
    } cases[] = {
        {-1, 64, "a.csv", "cannot read 'a.csv'"},
        {-6, 64, "", "cannot read ''"},
        {0, 64, "x", "cannot read 'x'"},
        /* "cannot read 'caf" + 2-byte e-acute: no room for the whole
         * character, so it goes */
        {-2, 18, "caf\xc3\xa9", "cannot read 'caf"},
        {-2, 19, "caf\xc3\xa9", "cannot read 'caf\xc3\xa9"},
        {-3, 1, "x", ""},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char buf[64];
        memset(buf, 'Z', sizeof(buf));
        assert_int_equal(dip_text_say(cases[i].rc, buf, cases[i].size,
                                      "cannot read '%s'", cases[i].key),
                         cases[i].rc);
        assert_string_equal(buf, cases[i].want);
    }
    assert_int_equal(dip_text_say(-4, NULL, 10, "x %d", 1), -4);
    {
        char one = 'Z';
        assert_int_equal(dip_text_say(-5, &one, 0, "x"), -5);
        assert_int_equal(one, 'Z');
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_cut_every_size),
        cmocka_unit_test(test_format_every_size),
        cmocka_unit_test(test_trim),
        cmocka_unit_test(test_say),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
