/*
 * Tests ctl_restore_judge, the verdict of a revert on one updated deal: it
 * holds every value the import wrote (restore it), every previous value (an
 * earlier run restored it: a run after a crash between the update and its
 * mark), or neither (changed since: a conflict), one case per row; a field
 * the deal did not have before counts as previous when it is absent again.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "ctl_restore.h"

static bson_t *doc_from(const char *json)
{
    bson_error_t e;
    bson_t *b = bson_new_from_json((const uint8_t *)json, -1, &e);
    if (b == NULL)
        fail_msg("%s: %s", json, e.message);
    return b;
}

static void test_judge_table(void **state)
{
    static const char change[] =
        "{\"changes\":[{\"f\":\"value\",\"a\":250.5,\"b\":100.0},"
        "{\"f\":\"additional_info.cf\",\"a\":\"south\",\"b\":\"north\"},"
        "{\"f\":\"contact_name\",\"a\":\"Ann\"}]}";
    static const struct {
        const char *deal;
        int verdict;
    } cases[] = {
        /* as the import left it */
        {"{\"value\":250.5,\"additional_info\":{\"cf\":\"south\"},"
         "\"contact_name\":\"Ann\",\"name\":\"x\"}",
         1},
        /* as it was before: restored by an earlier run */
        {"{\"value\":100,\"additional_info\":{\"cf\":\"north\"},"
         "\"name\":\"x\"}",
         2},
        /* a user changed one field since */
        {"{\"value\":999,\"additional_info\":{\"cf\":\"south\"},"
         "\"contact_name\":\"Ann\"}",
         0},
        /* a user removed a field the import wrote */
        {"{\"value\":250.5,\"additional_info\":{\"cf\":\"south\"}}", 0},
        /* back to before but for a field the deal did not have */
        {"{\"value\":100,\"additional_info\":{\"cf\":\"north\"},"
         "\"contact_name\":\"Bob\"}",
         0},
        /* half restored (never by ctl_restore: one update sets all) */
        {"{\"value\":100,\"additional_info\":{\"cf\":\"south\"},"
         "\"contact_name\":\"Ann\"}",
         0},
        /* a value of another type */
        {"{\"value\":\"250.5\",\"additional_info\":{\"cf\":\"south\"},"
         "\"contact_name\":\"Ann\"}",
         0},
    };
    bson_t *ch = doc_from(change);
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bson_t *d = doc_from(cases[i].deal);
        int v = ctl_restore_judge(ch, d);
        if (v != cases[i].verdict)
            fail_msg("case %zu: %d, not %d", i, v, cases[i].verdict);
        bson_destroy(d);
    }
    assert_int_equal(ctl_restore_judge(ch, NULL), 0);
    bson_destroy(ch);
    ch = doc_from("{\"changes\":[]}");
    assert_int_equal(ctl_restore_judge(ch, ch), 0);
    bson_destroy(ch);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_judge_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
