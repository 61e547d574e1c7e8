/*
 * Tests wrk_keys: the smallest value of a key stands, keys differ by every
 * byte and by length (a prefix is another key), the set grows past many
 * thousands of keys, and a cleared set is empty. Long keys are kept as
 * digests: they still differ by every byte and by length, and a hostile
 * file of 64 KiB keys costs the set a bounded number of bytes a key.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "wrk_keys.h"

static void test_first_stands(void **state)
{
    wrk_keys_t *k = wrk_keys_new();
    (void)state;
    assert_non_null(k);
    assert_int_equal(wrk_keys_get(k, "R1", 2), -1);
    assert_int_equal(wrk_keys_put(k, "R1", 2, 7), 7);
    assert_int_equal(wrk_keys_put(k, "R1", 2, 9), 7);
    assert_int_equal(wrk_keys_get(k, "R1", 2), 7);
    /* a smaller value lowers it: the first line, whatever the order */
    assert_int_equal(wrk_keys_put(k, "R2", 2, 5), 5);
    assert_int_equal(wrk_keys_put(k, "R2", 2, 3), 3);
    assert_int_equal(wrk_keys_put(k, "R2", 2, 4), 3);
    assert_int_equal(wrk_keys_get(k, "R2", 2), 3);
    /* a prefix, a longer key, a key with a NUL: each its own */
    assert_int_equal(wrk_keys_put(k, "R", 1, 1), 1);
    assert_int_equal(wrk_keys_put(k, "R10", 3, 2), 2);
    assert_int_equal(wrk_keys_put(k, "R1\0", 3, 3), 3);
    assert_int_equal(wrk_keys_put(k, "", 0, 4), 4);
    assert_int_equal(wrk_keys_get(k, "R1", 2), 7);
    assert_int_equal(wrk_keys_get(k, "", 0), 4);
    wrk_keys_clear(k);
    assert_int_equal(wrk_keys_get(k, "R1", 2), -1);
    assert_int_equal(wrk_keys_put(k, "R1", 2, 5), 5);
    wrk_keys_destroy(&k);
    assert_null(k);
    wrk_keys_destroy(&k);
}

static void test_many(void **state)
{
    wrk_keys_t *k = wrk_keys_new();
    char key[32];
    (void)state;
    for (int i = 0; i < 100000; i++) {
        int n = snprintf(key, sizeof(key), "key-%d", i);
        assert_int_equal(wrk_keys_put(k, key, (size_t)n, i), i);
    }
    for (int i = 0; i < 100000; i++) {
        int n = snprintf(key, sizeof(key), "key-%d", i);
        assert_int_equal(wrk_keys_get(k, key, (size_t)n), i);
        assert_int_equal(wrk_keys_put(k, key, (size_t)n, i + 1), i);
    }
    assert_int_equal(wrk_keys_get(k, "key-100000", 10), -1);
    wrk_keys_destroy(&k);
}

/* Keys over WRK_KEYS_WHOLE bytes: one byte changed anywhere, one byte
 * more, a key of the digest's own bytes: each another key; 1,000 keys of
 * 64 KiB hold under 100 bytes a key. */
static void test_long_keys(void **state)
{
    enum { BIG = 64 * 1024, N = 1000 };
    wrk_keys_t *k = wrk_keys_new();
    static char a[BIG + 1], b[BIG + 1];
    (void)state;
    memset(a, 'x', sizeof(a));
    memcpy(b, a, sizeof(b));
    assert_int_equal(wrk_keys_put(k, a, BIG, 1), 1);
    assert_int_equal(wrk_keys_get(k, a, BIG), 1);
    assert_int_equal(wrk_keys_get(k, a, BIG + 1), -1);
    assert_int_equal(wrk_keys_get(k, a, WRK_KEYS_WHOLE + 1), -1);
    assert_int_equal(wrk_keys_get(k, a, WRK_KEYS_WHOLE), -1);
    for (size_t at = 0; at < BIG; at += 4099) {
        b[at] = 'y';
        assert_int_equal(wrk_keys_get(k, b, BIG), -1);
        b[at] = 'x';
    }
    b[BIG - 1] = 'y';
    assert_int_equal(wrk_keys_get(k, b, BIG), -1);
    assert_int_equal(wrk_keys_put(k, b, BIG, 2), 2);
    assert_int_equal(wrk_keys_put(k, a, BIG, 3), 1);
    /* the boundary: WRK_KEYS_WHOLE bytes kept whole, one more digested */
    assert_int_equal(wrk_keys_put(k, a, WRK_KEYS_WHOLE, 4), 4);
    assert_int_equal(wrk_keys_put(k, a, WRK_KEYS_WHOLE + 1, 5), 5);
    assert_int_equal(wrk_keys_get(k, a, WRK_KEYS_WHOLE), 4);
    assert_int_equal(wrk_keys_get(k, a, WRK_KEYS_WHOLE + 1), 5);
    wrk_keys_clear(k);
    {
        size_t before = wrk_keys_bytes(k);
        for (int i = 0; i < N; i++) {
            int n = snprintf(a, 16, "%08d", i);
            a[n] = 'x';
            assert_int_equal(wrk_keys_put(k, a, BIG, i), i);
        }
        for (int i = 0; i < N; i++) {
            int n = snprintf(a, 16, "%08d", i);
            a[n] = 'x';
            assert_int_equal(wrk_keys_get(k, a, BIG), i);
        }
        assert_true(wrk_keys_bytes(k) - before < (size_t)N * 100);
    }
    wrk_keys_destroy(&k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_stands),
        cmocka_unit_test(test_many),
        cmocka_unit_test(test_long_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
