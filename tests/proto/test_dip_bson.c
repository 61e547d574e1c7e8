/* dip_bson_reply_value over the replies findAndModify gives: a document,
 * none (null), none at all, and a value that is not a document (class 11:
 * types are decided, a string is not a document). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "dip_bson.h"

static void test_reply_value(void **state)
{
    static const struct {
        const char *reply;
        int found;
        const char *status; /* the value's status, when found */
    } cases[] = {
        {"{\"lastErrorObject\": {\"n\": 1}, \"value\": {\"status\": "
         "\"processing\"}, \"ok\": 1}",
         1, "processing"},
        {"{\"value\": {}, \"ok\": 1}", 1, NULL},
        {"{\"lastErrorObject\": {\"n\": 0}, \"value\": null, \"ok\": 1}", 0,
         NULL},
        {"{\"ok\": 1}", 0, NULL},
        {"{\"value\": \"processing\"}", 0, NULL},
        {"{\"value\": [1, 2]}", 0, NULL},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bson_error_t e;
        bson_t *r = bson_new_from_json((const uint8_t *)cases[i].reply, -1, &e);
        bson_t view;
        int found;
        assert_non_null(r);
        found = dip_bson_reply_value(r, &view);
        if (found != cases[i].found)
            fail_msg("reply %s: found %d, want %d", cases[i].reply, found,
                     cases[i].found);
        if (found && cases[i].status)
            assert_string_equal(dip_bson_get_str(&view, "status"),
                                cases[i].status);
        else if (found)
            assert_int_equal(bson_count_keys(&view), 0);
        bson_destroy(r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reply_value),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
