/*
 * Tests wrk_keys: the smallest value of a key stands, keys differ by every
 * byte and by length (a prefix is another key), the set grows past many
 * thousands of keys, and a cleared set is empty.
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_stands),
        cmocka_unit_test(test_many),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
