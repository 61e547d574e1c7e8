/*
 * Tests dip_s3_token: a fixed token, none, and a token file through a
 * rotation: read, the same version kept, a rewrite and a rename read again,
 * a vanished or emptied file keeping the last token, a file never readable
 * reported missing, and text that is not one line refused.
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

#include "dip_s3_token.h"
#include "it_tmp.h"

static void put(const char *path, const char *text)
{
    FILE *f = fopen(path, "we");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static void test_fixed_and_none(void **state)
{
    dip_s3_token_t *t = dip_s3_token_new("fixed", NULL);
    int missing = -1;
    (void)state;
    assert_string_equal(dip_s3_token_get(t, &missing), "fixed");
    assert_int_equal(missing, 0);
    dip_s3_token_destroy(&t);
    assert_null(t);
    t = dip_s3_token_new(NULL, NULL);
    assert_null(dip_s3_token_get(t, &missing));
    assert_int_equal(missing, 0);
    dip_s3_token_destroy(&t);
    dip_s3_token_destroy(NULL);
}

static void test_file_rotation(void **state)
{
    char path[256], tmp[512];
    dip_s3_token_t *t;
    int missing = -1;
    (void)state;
    snprintf(path, sizeof(path), "%s/dip-s3-token-%d", it_tmpdir(),
             (int)getpid());
    snprintf(tmp, sizeof(tmp), "%s.new", path);
    unlink(path);
    t = dip_s3_token_new(NULL, path);
    /* Never readable: missing, so no request goes out without it. */
    assert_null(dip_s3_token_get(t, &missing));
    assert_int_equal(missing, 1);
    put(path, "first-token\n");
    assert_string_equal(dip_s3_token_get(t, &missing), "first-token");
    assert_int_equal(missing, 0);
    assert_string_equal(dip_s3_token_get(t, &missing), "first-token");
    /* Rewritten in place, another size. */
    put(path, "second-token-longer\r\n");
    assert_string_equal(dip_s3_token_get(t, &missing), "second-token-longer");
    /* A new file renamed over it, the same size. */
    put(tmp, "third-token-longer!\n");
    assert_int_equal(rename(tmp, path), 0);
    assert_string_equal(dip_s3_token_get(t, &missing), "third-token-longer!");
    /* Emptied, two lines, or gone: the last token stays. */
    put(path, "");
    assert_string_equal(dip_s3_token_get(t, &missing), "third-token-longer!");
    put(path, "two\nlines\n");
    assert_string_equal(dip_s3_token_get(t, &missing), "third-token-longer!");
    unlink(path);
    assert_string_equal(dip_s3_token_get(t, &missing), "third-token-longer!");
    assert_int_equal(missing, 0);
    dip_s3_token_destroy(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed_and_none),
        cmocka_unit_test(test_file_rotation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
