/*
 * Tests wrk_fields: the standard field table (names, kinds, required flags
 * and order), refusal of every target a CSV may not write, statuses and
 * contract types with their aliases, the phrases used in messages, and the
 * custom field id rule.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "wrk_fields.h"

static void test_standard_fields(void **state)
{
    static const struct {
        const char *name;
        wrk_field_kind_t kind;
        int required;
    } want[] = {
        {"name", WRK_FIELD_TEXT, 1},
        {"value", WRK_FIELD_AMOUNT, 0},
        {"currency", WRK_FIELD_CURRENCY, 0},
        {"stage_id", WRK_FIELD_STAGE, 1},
        {"status", WRK_FIELD_STATUS, 0},
        {"contract_type", WRK_FIELD_CONTRACT, 0},
        {"expected_close_date", WRK_FIELD_DATE, 0},
        {"probability", WRK_FIELD_PERCENT, 0},
        {"description", WRK_FIELD_TEXT, 0},
        {"contact_name", WRK_FIELD_TEXT, 0},
        {"contact_email", WRK_FIELD_EMAIL, 0},
        {"contact_phone", WRK_FIELD_TEXT, 0},
        {"company_name", WRK_FIELD_TEXT, 0},
        {"external_id", WRK_FIELD_TEXT, 0},
        {"deal_id", WRK_FIELD_TEXT, 0},
    };
    size_t n = sizeof(want) / sizeof(want[0]);
    (void)state;
    assert_int_equal(wrk_fields_count(), n);
    assert_true(wrk_fields_count() <= WRK_FIELDS_MAX);
    for (size_t i = 0; i < n; i++) {
        const wrk_field_t *f = wrk_fields_find(want[i].name);
        assert_non_null(f);
        assert_ptr_equal(f, wrk_fields_at(i));
        assert_string_equal(f->name, want[i].name);
        assert_int_equal(f->kind, want[i].kind);
        assert_int_equal(f->required, want[i].required);
    }
    assert_null(wrk_fields_at(n));
}

static void test_refused_targets(void **state)
{
    static const char *const refused[] = {
        "_id",
        "account_id",
        "owner",
        "pipeline_id",
        "created_by",
        "source",
        "tags",
        "import",
        "created_at",
        "updated_at",
        "$where",
        "a.b",
        "__proto__",
        "",
        "Name",
        "name ",
        "additional_info",
        "stage",
        "value.x",
        "$set",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
        assert_null(wrk_fields_find(refused[i]));
    assert_null(wrk_fields_find(NULL));
}

static void test_statuses(void **state)
{
    (void)state;
    assert_string_equal(wrk_fields_status("open"), "open");
    assert_string_equal(wrk_fields_status("won"), "won");
    assert_string_equal(wrk_fields_status("lost"), "lost");
    assert_string_equal(wrk_fields_status("abandoned"), "abandoned");
    assert_string_equal(wrk_fields_status("closed_won"), "won");
    assert_string_equal(wrk_fields_status("closed_lost"), "lost");
    assert_null(wrk_fields_status("Open"));
    assert_null(wrk_fields_status("closed"));
    assert_null(wrk_fields_status("closed-won"));
    assert_null(wrk_fields_status(""));
    assert_null(wrk_fields_status(NULL));
}

static void test_contract_types(void **state)
{
    (void)state;
    assert_string_equal(wrk_fields_contract_type("one_time"), "one_time");
    assert_string_equal(wrk_fields_contract_type("monthly"), "monthly");
    assert_string_equal(wrk_fields_contract_type("quarterly"), "quarterly");
    assert_string_equal(wrk_fields_contract_type("semi_annually"),
                        "semi_annually");
    assert_string_equal(wrk_fields_contract_type("annually"), "annually");
    assert_string_equal(wrk_fields_contract_type("annual"), "annually");
    assert_string_equal(wrk_fields_contract_type("yearly"), "annually");
    assert_null(wrk_fields_contract_type("weekly"));
    assert_null(wrk_fields_contract_type("semi-annually"));
    assert_null(wrk_fields_contract_type(""));
    assert_null(wrk_fields_contract_type(NULL));
}

static void test_names_for_messages(void **state)
{
    char buf[160];
    (void)state;
    assert_int_equal(wrk_fields_status_names(buf, sizeof(buf)), 0);
    assert_string_equal(buf, "open, won, lost or abandoned");
    assert_int_equal(wrk_fields_contract_type_names(buf, sizeof(buf)), 0);
    assert_string_equal(buf, "one_time, monthly, quarterly, semi_annually or "
                             "annually");
    /* Too small: refused, still terminated. */
    assert_int_equal(wrk_fields_status_names(buf, 8), -1);
    assert_true(strlen(buf) < 8);
    assert_int_equal(wrk_fields_status_names(buf, 0), -1);
}

static void test_object_ids(void **state)
{
    (void)state;
    assert_true(wrk_fields_is_object_id("64b0000000000000000000a1"));
    assert_true(wrk_fields_is_object_id("0123456789abcdef01234567"));
    /* Uppercase is a valid ObjectId but not its canonical string. */
    assert_false(wrk_fields_is_object_id("64B0000000000000000000A1"));
    assert_false(wrk_fields_is_object_id("64b0000000000000000000a"));
    assert_false(wrk_fields_is_object_id("64b0000000000000000000a12"));
    assert_false(wrk_fields_is_object_id("64b0000000000000000000g1"));
    /* Any 12 characters are a valid ObjectId to mongoose, never canonical. */
    assert_false(wrk_fields_is_object_id("abcdefghijkl"));
    assert_false(wrk_fields_is_object_id(""));
    assert_false(wrk_fields_is_object_id(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_standard_fields),
        cmocka_unit_test(test_refused_targets),
        cmocka_unit_test(test_statuses),
        cmocka_unit_test(test_contract_types),
        cmocka_unit_test(test_names_for_messages),
        cmocka_unit_test(test_object_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
