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

/* Previous values that are not a scalar the import writes: null, a
 * decimal, a document, an array. Put back by the revert, each is the
 * previous value again (2), not a conflict; another value of the same
 * type is still a conflict (0). */
static void test_judge_previous_kinds(void **state)
{
    static const struct {
        const char *change;
        const char *deal;
        int verdict;
    } cases[] = {
        {"{\"changes\":[{\"f\":\"value\",\"a\":5,\"b\":null}]}",
         "{\"value\":null}", 2},
        {"{\"changes\":[{\"f\":\"value\",\"a\":5,\"b\":null}]}",
         "{\"value\":5}", 1},
        {"{\"changes\":[{\"f\":\"value\",\"a\":5,\"b\":null}]}",
         "{\"value\":6}", 0},
        /* a field the deal lacked, restored (unset) */
        {"{\"changes\":[{\"f\":\"value\",\"a\":5}]}", "{}", 2},
        {"{\"changes\":[{\"f\":\"value\",\"a\":5,"
         "\"b\":{\"$numberDecimal\":\"100.10\"}}]}",
         "{\"value\":{\"$numberDecimal\":\"100.10\"}}", 2},
        {"{\"changes\":[{\"f\":\"value\",\"a\":5,"
         "\"b\":{\"$numberDecimal\":\"100.10\"}}]}",
         "{\"value\":{\"$numberDecimal\":\"7\"}}", 0},
        {"{\"changes\":[{\"f\":\"additional_info.cf\",\"a\":\"x\","
         "\"b\":[\"p\",\"q\"]}]}",
         "{\"additional_info\":{\"cf\":[\"p\",\"q\"]}}", 2},
        {"{\"changes\":[{\"f\":\"additional_info.cf\",\"a\":\"x\","
         "\"b\":[\"p\",\"q\"]}]}",
         "{\"additional_info\":{\"cf\":[\"q\",\"p\"]}}", 0},
        {"{\"changes\":[{\"f\":\"contact\",\"a\":\"x\","
         "\"b\":{\"n\":\"Ann\",\"k\":1}}]}",
         "{\"contact\":{\"n\":\"Ann\",\"k\":1}}", 2},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bson_t *ch = doc_from(cases[i].change);
        bson_t *d = doc_from(cases[i].deal);
        int v = ctl_restore_judge(ch, d);
        if (v != cases[i].verdict)
            fail_msg("case %zu: %d, not %d", i, v, cases[i].verdict);
        bson_destroy(d);
        bson_destroy(ch);
    }
}

/* A before-image of tags only (the row's values equal the deal's, the
 * import added a tag): the deal holding every tag added is as the import
 * left it (1), holding none is restored (2), holding some is a
 * conflict (0). */
static void test_judge_tags_only(void **state)
{
    static const struct {
        const char *deal;
        int verdict;
    } cases[] = {
        {"{\"tags\":[\"old\",\"imported\",\"q4\"]}", 1},
        {"{\"tags\":[\"old\"]}", 2},
        {"{\"tags\":[]}", 2},
        {"{}", 2},
        {"{\"tags\":[\"old\",\"q4\"]}", 0},
    };
    bson_t *ch =
        doc_from("{\"changes\":[],\"tags_added\":[\"imported\",\"q4\"]}");
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bson_t *d = doc_from(cases[i].deal);
        int v = ctl_restore_judge(ch, d);
        if (v != cases[i].verdict)
            fail_msg("case %zu: %d, not %d", i, v, cases[i].verdict);
        bson_destroy(d);
    }
    bson_destroy(ch);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_judge_table),
        cmocka_unit_test(test_judge_previous_kinds),
        cmocka_unit_test(test_judge_tags_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
