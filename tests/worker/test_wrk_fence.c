/*
 * wrk_fence: when a worker checks its claim, and what it makes of what it
 * reads. A worker whose claim another supervisor took over (another owner,
 * a newer epoch, or the import no longer processing) must stop; a failed
 * read must neither stop it nor count as a confirmation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "wrk_fence.h"

#define OWNER "host:42:1700000000000"

static const struct {
    const char *name;
    const char *json; /* the read's document; NULL: none */
    int read_ok;
    wrk_fence_verdict_t want;
} rows[] = {
    {"ours",
     "{\"claimed_by\":\"" OWNER "\",\"claims\":3,"
     "\"status\":\"processing\"}",
     1, WRK_FENCE_OURS},
    {"ours, epoch as int64",
     "{\"claimed_by\":\"" OWNER "\",\"claims\":{\"$numberLong\":\"3\"},"
     "\"status\":\"processing\"}",
     1, WRK_FENCE_OURS},
    {"another owner",
     "{\"claimed_by\":\"other:1:2\",\"claims\":4,"
     "\"status\":\"processing\"}",
     1, WRK_FENCE_GONE},
    {"same owner, newer claim (it claimed again after a lapse)",
     "{\"claimed_by\":\"" OWNER "\",\"claims\":4,\"status\":\"processing\"}", 1,
     WRK_FENCE_GONE},
    {"handed back", "{\"claims\":3,\"status\":\"pending\"}", 1, WRK_FENCE_GONE},
    {"finished by someone else",
     "{\"claimed_by\":\"" OWNER "\",\"claims\":3,\"status\":\"completed\"}", 1,
     WRK_FENCE_GONE},
    {"no epoch", "{\"claimed_by\":\"" OWNER "\",\"status\":\"processing\"}", 1,
     WRK_FENCE_GONE},
    {"epoch of another type",
     "{\"claimed_by\":\"" OWNER "\",\"claims\":\"3\","
     "\"status\":\"processing\"}",
     1, WRK_FENCE_GONE},
    {"document deleted", NULL, 1, WRK_FENCE_GONE},
    {"read failed", NULL, 0, WRK_FENCE_UNKNOWN},
};

static void test_verdicts(void **state)
{
    int bad = 0;
    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        wrk_fence_t f;
        bson_t *doc = NULL;
        bson_error_t error;
        wrk_fence_verdict_t v;
        wrk_fence_init(&f, OWNER, 3, 60, 1000);
        if (rows[i].json) {
            doc = bson_new_from_json((const uint8_t *)rows[i].json, -1, &error);
            assert_non_null(doc);
        }
        v = wrk_fence_judge(&f, doc, rows[i].read_ok, 2000);
        if (v != rows[i].want) {
            fprintf(stderr, "row '%s': verdict %d, want %d\n", rows[i].name,
                    (int)v, (int)rows[i].want);
            bad++;
        }
        if (doc)
            bson_destroy(doc);
    }
    assert_int_equal(bad, 0);
}

/* Checks come at least every third of the lease, and a failed read leaves
 * the check due, so the next write checks again. */
static void test_schedule(void **state)
{
    wrk_fence_t f;
    bson_t *ours = BCON_NEW("claimed_by", BCON_UTF8(OWNER), "claims",
                            BCON_INT32(3), "status", BCON_UTF8("processing"));
    (void)state;
    wrk_fence_init(&f, OWNER, 3, 6, 1000);
    assert_true(wrk_fence_due(&f, 1000)); /* at once: the loaded document */
    assert_int_equal(wrk_fence_judge(&f, ours, 1, 1000), WRK_FENCE_OURS);
    assert_false(wrk_fence_due(&f, 2999));
    assert_true(wrk_fence_due(&f, 3000)); /* 6 s lease: every 2 s */
    assert_int_equal(wrk_fence_judge(&f, NULL, 0, 3000), WRK_FENCE_UNKNOWN);
    assert_true(wrk_fence_due(&f, 3001));
    assert_int_equal(f.confirmed_ms, 1000);
    assert_int_equal(wrk_fence_judge(&f, ours, 1, 3500), WRK_FENCE_OURS);
    assert_int_equal(f.confirmed_ms, 3500);
    assert_false(wrk_fence_due(&f, 5499));
    bson_destroy(ours);
}

/* Started by hand, without an owner: never checked, never stopped. */
static void test_unfenced(void **state)
{
    wrk_fence_t f;
    (void)state;
    wrk_fence_init(&f, NULL, -1, 60, 0);
    assert_false(wrk_fence_due(&f, 1000000));
    assert_int_equal(wrk_fence_judge(&f, NULL, 1, 1), WRK_FENCE_OURS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verdicts),
        cmocka_unit_test(test_schedule),
        cmocka_unit_test(test_unfenced),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
