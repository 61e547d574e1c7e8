/*
 * Tests wrk_map: refusal of bad mappings up front (every forbidden target,
 * non-text and empty targets, duplicates, required fields), binding to a
 * header, the exact BSON of mapped rows, each normalization and validation
 * rule and the messages a user sees (the value parsers themselves are tested
 * in test_wrk_values.c), and the cost
 * of mapping a 13-field row (printed, not asserted).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <bson/bson.h>

#include "dip_text.h"
#include "wrk_map.h"

#define ID1 "64b0000000000000000000a1"
#define ID2 "64b0000000000000000000b2"

static bson_t *json(const char *text)
{
    bson_error_t berr;
    bson_t *b = bson_new_from_json((const uint8_t *)text, -1, &berr);
    if (b == NULL)
        fail_msg("bad test json: %s", berr.message);
    return b;
}

/* wrk_map_new over a JSON mappings document; NULL with err on refusal. */
static wrk_map_t *map_json(const char *text, char *err, size_t errlen)
{
    bson_t *b = json(text);
    wrk_map_t *m = wrk_map_new(b, err, errlen);
    bson_destroy(b);
    return m;
}

/* The import-level error for mappings that must be refused. */
static const char *refusal(const char *text)
{
    static char err[512];
    wrk_map_t *m = map_json(text, err, sizeof(err));
    if (m != NULL) {
        wrk_map_destroy(&m);
        fail_msg("mappings %s were accepted", text);
    }
    return err;
}

static void test_refused_targets(void **state)
{
    static const char *const refused[] = {
        "_id",    "account_id",      "owner",  "pipeline_id", "created_by",
        "source", "import",          "$where", "a.b",         "__proto__",
        "tags",   "additional_info", "Name",   "stage",       "updated_at"};
    char text[256], want[512];
    (void)state;
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        snprintf(text, sizeof(text),
                 "{\"Deal\": \"name\", \"Stage\": \"stage_id\", \"X\": "
                 "\"%s\"}",
                 refused[i]);
        snprintf(want, sizeof(want),
                 "mapping for column 'X' targets '%s', which is not a deal "
                 "field a CSV may set",
                 refused[i]);
        assert_string_equal(refusal(text), want);
    }
    assert_string_equal(
        refusal("{\"Deal\": \"name\", \"Stage\": \"stage_id\", "
                "\"Custom\": \"64B0000000000000000000A1\"}"),
        "mapping for column 'Custom' targets '64B0000000000000000000A1', "
        "which is not a deal field a CSV may set (custom field ids are 24 "
        "lowercase hex digits)");
}

static void test_refused_documents(void **state)
{
    char err[512];
    bson_t dup = BSON_INITIALIZER;
    (void)state;
    assert_null(wrk_map_new(NULL, err, sizeof(err)));
    assert_string_equal(err, "mappings are empty; map at least the columns "
                             "for 'name' and 'stage_id'");
    assert_string_equal(refusal("{}"),
                        "mappings are empty; map at least the columns for "
                        "'name' and 'stage_id'");
    assert_string_equal(
        refusal("{\"Deal\": \"name\", \"Stage\": \"stage_id\", \"V\": 5}"),
        "mapping for column 'V' is a number, not the name of a deal field or "
        "custom field");
    assert_string_equal(
        refusal("{\"Deal\": \"name\", \"Stage\": \"stage_id\", \"V\": null}"),
        "mapping for column 'V' is null, not the name of a deal field or "
        "custom field");
    assert_string_equal(
        refusal("{\"Deal\": \"name\", \"Stage\": \"stage_id\", "
                "\"V\": {\"$oid\": \"" ID1 "\"}}"),
        "mapping for column 'V' is an ObjectId, not the name of a deal field "
        "or custom field");
    assert_string_equal(
        refusal("{\"Deal\": \"name\", \"Stage\": \"stage_id\", \"V\": \"\"}"),
        "mapping for column 'V' is empty; choose a deal field or a custom "
        "field for it");
    assert_string_equal(
        refusal("{\"Deal\": \"name\", \"Stage\": \"stage_id\", "
                "\"Title\": \"name\"}"),
        "columns 'Deal' and 'Title' are both mapped to 'name'; map each "
        "field from one column only");
    assert_string_equal(
        refusal("{\"Deal\": \"name\", \"Stage\": \"stage_id\", \"A\": \"" ID1
                "\", \"B\": \"" ID1 "\"}"),
        "columns 'A' and 'B' are both mapped to '" ID1
        "'; map each field from one column only");
    assert_string_equal(refusal("{\"Deal\": \"name\", \"V\": \"value\"}"),
                        "no column is mapped to 'stage_id', which every deal "
                        "needs");
    assert_string_equal(refusal("{\"Stage\": \"stage_id\"}"),
                        "no column is mapped to 'name', which every deal "
                        "needs");
    /* BSON allows a key twice; the column is then mapped twice. */
    BSON_APPEND_UTF8(&dup, "Deal", "name");
    BSON_APPEND_UTF8(&dup, "Stage", "stage_id");
    BSON_APPEND_UTF8(&dup, "Deal", "description");
    assert_null(wrk_map_new(&dup, err, sizeof(err)));
    assert_string_equal(err, "column 'Deal' is mapped twice");
    bson_destroy(&dup);
    /* A tiny buffer is filled, not overrun. */
    assert_null(map_json("{}", err, 8));
    assert_string_equal(err, "mapping");
    wrk_map_destroy(NULL);
}

static void test_bind(void **state)
{
    const char *header[] = {"Deal Name", "Ignored", "Stage", "Amount"};
    const char *dup[] = {"Deal Name", "Stage", "Deal Name"};
    const char *spaced[] = {" Deal Name ", "Stage"};
    char err[512];
    wrk_map_t *m = map_json("{\"Deal Name\": \"name\", \"Stage\": "
                            "\"stage_id\", \"Amount\": \"value\"}",
                            err, sizeof(err));
    (void)state;
    assert_non_null(m);
    assert_int_equal(wrk_map_bind(m, header, 4, err, sizeof(err)), 0);
    assert_string_equal(err, "");
    assert_int_equal(wrk_map_bind(m, header, 3, err, sizeof(err)), -1);
    assert_string_equal(err, "the file's header has no column 'Amount', "
                             "which the mappings send to 'value'; its columns "
                             "are 'Deal Name', 'Ignored', 'Stage'");
    assert_int_equal(wrk_map_bind(m, dup, 3, err, sizeof(err)), -1);
    assert_string_equal(err, "the file's header has column 'Deal Name' more "
                             "than once, so its mapping to 'name' is "
                             "ambiguous");
    assert_int_equal(wrk_map_bind(m, spaced, 2, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "no column 'Amount'"));
    /* A failed bind leaves the map unusable until a good one. */
    {
        bson_t deal = BSON_INITIALIZER;
        char stage[64];
        wrk_map_error_t e;
        const char *cells[] = {"a", "b", "c"};
        assert_int_equal(
            wrk_map_row(m, cells, NULL, 3, &deal, stage, sizeof(stage), &e),
            -1);
        assert_string_equal(e.message, "the mapping is not bound to a header");
        bson_destroy(&deal);
    }
    wrk_map_destroy(&m);
    assert_null(m);

    /* Names are compared trimmed on both sides. */
    m = map_json("{\"Deal Name \": \"name\", \"Stage\": \"stage_id\"}", err,
                 sizeof(err));
    assert_int_equal(wrk_map_bind(m, spaced, 2, err, sizeof(err)), 0);
    wrk_map_destroy(&m);

    /* A column without a name cannot be mapped, even by a blank column. */
    {
        const char *holes[] = {"Deal Name", "", "Stage", " "};
        m = map_json("{\"Deal Name\": \"name\", \"Stage\": \"stage_id\", "
                     "\" \": \"description\"}",
                     err, sizeof(err));
        assert_non_null(m);
        assert_int_equal(wrk_map_bind(m, holes, 4, err, sizeof(err)), -1);
        assert_non_null(strstr(err, "no column ' '"));
        wrk_map_destroy(&m);
    }
}

/* The deal field behind a header column, for the reader's cell errors. */
static void test_column_field(void **state)
{
    const char *header[] = {"Deal Name", "Ignored", "Stage", "Region"};
    char err[512], field[64];
    wrk_map_t *m = map_json("{\"Deal Name\": \"name\", \"Stage\": "
                            "\"stage_id\", \"Region\": "
                            "\"65a1b2c3d4e5f60718293a4b\"}",
                            err, sizeof(err));
    (void)state;
    assert_non_null(m);
    assert_int_equal(wrk_map_column_field(m, 0, field, sizeof(field)), -1);
    assert_string_equal(field, "");
    assert_int_equal(wrk_map_bind(m, header, 4, err, sizeof(err)), 0);
    assert_int_equal(wrk_map_column_field(m, 0, field, sizeof(field)), 0);
    assert_string_equal(field, "name");
    assert_int_equal(wrk_map_column_field(m, 2, field, sizeof(field)), 0);
    assert_string_equal(field, "stage_id");
    assert_int_equal(wrk_map_column_field(m, 3, field, sizeof(field)), 0);
    assert_string_equal(field, "additional_info.65a1b2c3d4e5f60718293a4b");
    assert_int_equal(wrk_map_column_field(m, 1, field, sizeof(field)), -1);
    assert_string_equal(field, "");
    assert_int_equal(wrk_map_column_field(m, 9, field, sizeof(field)), -1);
    assert_int_equal(wrk_map_column_field(NULL, 0, field, sizeof(field)), -1);
    wrk_map_destroy(&m);
}

static void test_bind_error_is_bounded(void **state)
{
    const char *header[40];
    char names[40][32], err[200];
    wrk_map_t *m = map_json("{\"Deal\": \"name\", \"Stage\": \"stage_id\"}",
                            err, sizeof(err));
    (void)state;
    for (size_t i = 0; i < 40; i++) {
        snprintf(names[i], sizeof(names[i]), "Column number %zu", i);
        header[i] = names[i];
    }
    assert_int_equal(wrk_map_bind(m, header, 40, err, sizeof(err)), -1);
    assert_true(strlen(err) < sizeof(err));
    assert_non_null(strstr(err, "'Column number 0', 'Column number 1'"));
    assert_string_equal(err + strlen(err) - 5, ", ...");
    wrk_map_destroy(&m);
}

/* A map of every standard field and two custom fields, bound in an order
 * unlike the table's. */
#define FULL_MAPPINGS                                                          \
    "{\"Title\": \"name\", \"Amount\": \"value\", \"Cur\": \"currency\", "     \
    "\"Stage\": \"stage_id\", \"Status\": \"status\", \"Contract\": "          \
    "\"contract_type\", \"Close\": \"expected_close_date\", \"Prob\": "        \
    "\"probability\", \"Notes\": \"description\", \"Contact\": "               \
    "\"contact_name\", \"Email\": \"contact_email\", \"Phone\": "              \
    "\"contact_phone\", \"Company\": \"company_name\", \"Region\": \"" ID1     \
    "\", \"Source\": \"" ID2 "\"}"

static const char *const full_header[] = {
    "Email",   "Title",  "Amount", "Cur",     "Stage",   "Status",
    "Notes",   "Unused", "Close",  "Prob",    "Contact", "Phone",
    "Company", "Region", "Source", "Contract"};
#define FULL_N (sizeof(full_header) / sizeof(full_header[0]))

static wrk_map_t *full_map(void)
{
    char err[512];
    wrk_map_t *m = map_json(FULL_MAPPINGS, err, sizeof(err));
    if (m == NULL)
        fail_msg("%s", err);
    assert_int_equal(wrk_map_bind(m, full_header, FULL_N, err, sizeof(err)), 0);
    return m;
}

/* Maps one row with the full map: the deal's canonical extended JSON
 * (bson_free it), or NULL with *e filled. */
static char *full_row(const char *const *cells, size_t n, char *stage,
                      size_t stage_len, wrk_map_error_t *e)
{
    wrk_map_t *m = full_map();
    bson_t deal = BSON_INITIALIZER;
    char *out = NULL;
    size_t off = 0;
    if (wrk_map_row(m, cells, NULL, n, &deal, stage, stage_len, e) == 0) {
        /* Deals are inserted without the driver's validation: every key
         * and string must pass it anyway. */
        if (!bson_validate(&deal,
                           BSON_VALIDATE_UTF8 | BSON_VALIDATE_DOLLAR_KEYS |
                               BSON_VALIDATE_DOT_KEYS |
                               BSON_VALIDATE_EMPTY_KEYS,
                           &off))
            fail_msg("the deal fails validation at byte %zu", off);
        out = bson_as_canonical_extended_json(&deal, NULL);
    }
    bson_destroy(&deal);
    wrk_map_destroy(&m);
    return out;
}

static void test_full_row(void **state)
{
    const char *cells[] = {" jane@acme.com ",
                           "  Acme renewal ",
                           "$5,000.50",
                           "usd",
                           "  Qualified  Lead ",
                           "  Closed - Won ",
                           "Multi-year, see notes",
                           "ignored",
                           "2025-03-31",
                           "50%",
                           "Jane Doe",
                           "+1 555 0100",
                           "Acme Inc.",
                           " EMEA ",
                           "",
                           "Semi-Annually"};
    char stage[64];
    wrk_map_error_t e;
    char *out;
    (void)state;
    out = full_row(cells, FULL_N, stage, sizeof(stage), &e);
    assert_non_null(out);
    assert_string_equal(
        out, "{ \"name\" : \"Acme renewal\", "
             "\"value\" : { \"$numberDouble\" : \"5000.5\" }, "
             "\"currency\" : \"USD\", "
             "\"status\" : \"won\", "
             "\"contract_type\" : \"semi_annually\", "
             "\"expected_close_date\" : { \"$date\" : { \"$numberLong\" : "
             "\"1743379200000\" } }, "
             "\"probability\" : { \"$numberDouble\" : \"50.0\" }, "
             "\"description\" : \"Multi-year, see notes\", "
             "\"contact_name\" : \"Jane Doe\", "
             "\"contact_email\" : \"jane@acme.com\", "
             "\"contact_phone\" : \"+1 555 0100\", "
             "\"company_name\" : \"Acme Inc.\", "
             "\"additional_info\" : { \"" ID1 "\" : \"EMEA\", \"" ID2
             "\" : \"\" } }");
    assert_string_equal(stage, "qualified lead");
    bson_free(out);
}

static void test_sparse_row(void **state)
{
    /* Empty optional fields are left out, status defaults to open, custom
     * fields are '' when empty, and cells past ncells count as empty. */
    const char *cells[] = {"", "Deal", "", "", "Lead", " ", ""};
    char stage[64];
    wrk_map_error_t e;
    char *out;
    (void)state;
    out = full_row(cells, 7, stage, sizeof(stage), &e);
    assert_non_null(out);
    assert_string_equal(out, "{ \"name\" : \"Deal\", \"status\" : \"open\", "
                             "\"additional_info\" : { \"" ID1
                             "\" : \"\", \"" ID2 "\" : \"\" } }");
    assert_string_equal(stage, "lead");
    bson_free(out);
}

static void test_minimal_map_and_lengths(void **state)
{
    /* Cells as the CSV reader gives them: not NUL-terminated, with lens. */
    const char buf[] = "Big dealWON-Open stage";
    const char *cells[] = {buf, buf + 8, buf + 12};
    size_t lens[] = {8, 3, 6};
    const char *header[] = {"N", "St", "S"};
    char err[256], stage[64];
    wrk_map_error_t e;
    bson_t deal = BSON_INITIALIZER;
    char *out;
    wrk_map_t *m =
        map_json("{\"N\": \"name\", \"S\": \"stage_id\", \"St\": \"status\"}",
                 err, sizeof(err));
    (void)state;
    assert_non_null(m);
    assert_int_equal(wrk_map_bind(m, header, 3, err, sizeof(err)), 0);
    assert_int_equal(
        wrk_map_row(m, cells, lens, 3, &deal, stage, sizeof(stage), &e), 0);
    out = bson_as_canonical_extended_json(&deal, NULL);
    assert_string_equal(out, "{ \"name\" : \"Big deal\", \"status\" : "
                             "\"won\" }");
    assert_string_equal(stage, "open s");
    bson_free(out);
    bson_destroy(&deal);
    wrk_map_destroy(&m);
}

/* How one() reads numbers and dates (zero: a file without a format). */
static wrk_format_reading_t one_reading;

/* One field mapped beside name and stage: the deal's JSON or NULL + *e. */
static char *one(const char *field, const char *value, wrk_map_error_t *e)
{
    char text[256], err[512], stage[64];
    const char *header[] = {"N", "S", "F"};
    const char *cells[] = {"Deal", "Lead", value};
    bson_t deal = BSON_INITIALIZER;
    char *out = NULL;
    wrk_map_t *m;
    snprintf(text, sizeof(text),
             "{\"N\": \"name\", \"S\": \"stage_id\", \"F\": \"%s\"}", field);
    m = map_json(text, err, sizeof(err));
    assert_non_null(m);
    assert_int_equal(wrk_map_bind(m, header, 3, err, sizeof(err)), 0);
    wrk_map_set_reading(m, &one_reading);
    memset(e, 0, sizeof(*e));
    if (wrk_map_row(m, cells, NULL, 3, &deal, stage, sizeof(stage), e) == 0)
        out = bson_as_canonical_extended_json(&deal, NULL);
    bson_destroy(&deal);
    wrk_map_destroy(&m);
    return out;
}

/* The stored value of a good one-field row, as canonical JSON text. */
static void expect_ok(const char *field, const char *value, const char *want)
{
    wrk_map_error_t e;
    char *out = one(field, value, &e);
    char full[512];
    if (out == NULL)
        fail_msg("%s '%s' refused: %s", field, value, e.message);
    if (strcmp(field, "status") == 0)
        snprintf(full, sizeof(full), "{ \"name\" : \"Deal\", \"status\" : %s }",
                 want);
    else if (want == NULL)
        snprintf(full, sizeof(full),
                 "{ \"name\" : \"Deal\", \"status\" : \"open\" }");
    else
        snprintf(full, sizeof(full),
                 strcmp(field, "value") == 0 || strcmp(field, "currency") == 0
                     ? "{ \"name\" : \"Deal\", \"%s\" : %s, \"status\" : "
                       "\"open\" }"
                     : "{ \"name\" : \"Deal\", \"status\" : \"open\", "
                       "\"%s\" : %s }",
                 field, want);
    assert_string_equal(out, full);
    bson_free(out);
}

static void expect_bad(const char *field, const char *value,
                       const char *message)
{
    wrk_map_error_t e;
    char *out = one(field, value, &e);
    if (out != NULL)
        fail_msg("%s '%s' accepted: %s", field, value, out);
    assert_string_equal(e.field, field);
    if (message != NULL)
        assert_string_equal(e.message, message);
}

static void test_required(void **state)
{
    const char *header[] = {"N", "S"};
    const char *cells[] = {" \t", "Lead"};
    const char *nostage[] = {"Deal", "\xc2\xa0 "};
    char err[256], stage[64];
    wrk_map_error_t e;
    bson_t deal = BSON_INITIALIZER;
    wrk_map_t *m =
        map_json("{\"N\": \"name\", \"S\": \"stage_id\"}", err, sizeof(err));
    (void)state;
    assert_int_equal(wrk_map_bind(m, header, 2, err, sizeof(err)), 0);
    assert_int_equal(
        wrk_map_row(m, cells, NULL, 2, &deal, stage, sizeof(stage), &e), -1);
    assert_string_equal(e.field, "name");
    assert_string_equal(e.message,
                        "name is required, but column 'N' is empty on this "
                        "line");
    bson_reinit(&deal);
    assert_int_equal(
        wrk_map_row(m, nostage, NULL, 2, &deal, stage, sizeof(stage), &e), -1);
    assert_string_equal(e.field, "stage_id");
    assert_string_equal(e.message,
                        "stage_id is required, but column 'S' is empty on "
                        "this line");
    bson_reinit(&deal);
    /* Only one cell: the stage column is missing from the row. */
    assert_int_equal(
        wrk_map_row(m, cells + 1, NULL, 1, &deal, stage, sizeof(stage), &e),
        -1);
    assert_string_equal(e.field, "stage_id");
    /* A stage longer than the caller's buffer. */
    bson_reinit(&deal);
    {
        const char *long_stage[] = {"Deal", "Negotiation"};
        assert_int_equal(
            wrk_map_row(m, long_stage, NULL, 2, &deal, stage, 5, &e), -1);
        assert_string_equal(e.message, "stage_id 'Negotiation' is too long "
                                       "for a stage name (at most 4 bytes)");
    }
    bson_destroy(&deal);
    wrk_map_destroy(&m);
}

/* Rows that may update a deal (wrk_map_set_keep_empty): an empty name,
 * stage or status is left out (stage comes back ""), not refused and not
 * 'open'; a cell that is there is read as always. */
static void test_keep_empty(void **state)
{
    const char *header[] = {"N", "S", "St", "V"};
    const char *empty[] = {" ", "", "", ""};
    const char *full[] = {"Deal", "Won ", "closed - won", "5"};
    char err[256], stage[64] = "x";
    wrk_map_error_t e;
    bson_t deal = BSON_INITIALIZER;
    char *j;
    wrk_map_t *m = map_json("{\"N\": \"name\", \"S\": \"stage_id\", \"St\": "
                            "\"status\", \"V\": \"value\"}",
                            err, sizeof(err));
    (void)state;
    assert_int_equal(wrk_map_bind(m, header, 4, err, sizeof(err)), 0);
    wrk_map_set_keep_empty(m, 1);
    assert_int_equal(
        wrk_map_row(m, empty, NULL, 4, &deal, stage, sizeof(stage), &e), 0);
    assert_string_equal(stage, "");
    assert_true(bson_empty(&deal));
    bson_reinit(&deal);
    assert_int_equal(
        wrk_map_row(m, full, NULL, 4, &deal, stage, sizeof(stage), &e), 0);
    assert_string_equal(stage, "won");
    j = bson_as_relaxed_extended_json(&deal, NULL);
    assert_string_equal(j, "{ \"name\" : \"Deal\", \"value\" : 5.0, "
                           "\"status\" : \"won\" }");
    bson_free(j);
    /* off again: refused as on create */
    wrk_map_set_keep_empty(m, 0);
    bson_reinit(&deal);
    assert_int_equal(
        wrk_map_row(m, empty, NULL, 4, &deal, stage, sizeof(stage), &e), -1);
    assert_string_equal(e.field, "name");
    bson_destroy(&deal);
    wrk_map_destroy(&m);
}

static void test_text_fields(void **state)
{
    (void)state;
    expect_ok("contact_name", "  Big  deal\t", "\"Big  deal\"");
    expect_ok("description", " line one\nline two ", "\"line one\\nline two\"");
    expect_ok("company_name",
              "\xc2\xa0"
              "Acme \xc3\x84G\xc2\xa0",
              "\"Acme \xc3\x84G\"");
    expect_ok("contact_phone", "", NULL);
    expect_ok("contact_name", "   ", NULL);
    /* Text that is not UTF-8 never reaches the mapper: the reader reads
     * such a cell as Windows-1252 (test_wrk_csv), and the mapper does not
     * check a cell a second time. */
}

static void test_status_and_contract(void **state)
{
    (void)state;
    expect_ok("status", "  Closed - Won ", "\"won\"");
    expect_ok("status", "closed_lost", "\"lost\"");
    expect_ok("status", "CLOSED\xe2\x80\x93LOST", "\"lost\"");
    expect_ok("status", "Abandoned", "\"abandoned\"");
    expect_ok("status", "", "\"open\"");
    expect_bad("status", "Pending",
               "status 'Pending' is not a deal status (use open, won, lost or "
               "abandoned)");
    expect_bad("status", "won-", NULL);
    expect_ok("contract_type", "Semi-Annually", "\"semi_annually\"");
    expect_ok("contract_type", "semi - annually", "\"semi_annually\"");
    expect_ok("contract_type", "One Time", "\"one_time\"");
    expect_ok("contract_type", "Yearly", "\"annually\"");
    expect_ok("contract_type", "annual", "\"annually\"");
    expect_ok("contract_type", "", NULL);
    expect_bad("contract_type", "weekly",
               "contract_type 'weekly' is not a contract type (use one_time, "
               "monthly, quarterly, semi_annually or annually)");
}

static void test_normalizers(void **state)
{
    char out[64];
    (void)state;
    assert_int_equal(
        wrk_map_normalize_stage("  Qualified  Lead ", out, sizeof(out)), 0);
    assert_string_equal(out, "qualified lead");
    assert_int_equal(
        wrk_map_normalize_stage("Won\t\r\n Deal", out, sizeof(out)), 0);
    assert_string_equal(out, "won deal");
    /* Non-ASCII letters are kept byte for byte (ASCII lowercase only). */
    assert_int_equal(wrk_map_normalize_stage("\xc3\x9c"
                                             "BER  Pr\xc3\xbc"
                                             "fung",
                                             out, sizeof(out)),
                     0);
    assert_string_equal(out, "\xc3\x9c"
                             "ber pr\xc3\xbc"
                             "fung");
    assert_int_equal(wrk_map_normalize_stage("", out, sizeof(out)), 0);
    assert_string_equal(out, "");
    assert_int_equal(wrk_map_normalize_stage("abcdef", out, 6), -1);
    assert_string_equal(out, "");
    assert_int_equal(wrk_map_normalize_stage("abcde", out, 6), 0);
    assert_int_equal(wrk_map_normalize_stage(NULL, out, 6), -1);

    assert_int_equal(
        wrk_map_normalize_token("  Closed - Won ", out, sizeof(out)), 0);
    assert_string_equal(out, "closed_won");
    assert_int_equal(wrk_map_normalize_token("Semi-Annually", out, sizeof(out)),
                     0);
    assert_string_equal(out, "semi_annually");
    /* Every dash, not only the first (the seed's bug). */
    assert_int_equal(wrk_map_normalize_token("a-b-c--d", out, sizeof(out)), 0);
    assert_string_equal(out, "a_b_c_d");
    assert_int_equal(wrk_map_normalize_token("One__Time", out, sizeof(out)), 0);
    assert_string_equal(out, "one_time");
    assert_int_equal(wrk_map_normalize_token("x\xe2\x80\x94y\xe2\x88\x92z", out,
                                             sizeof(out)),
                     0);
    assert_string_equal(out, "x_y_z");
}

static void test_map_amounts(void **state)
{
    (void)state;
    expect_ok("value", "$5,000.50", "{ \"$numberDouble\" : \"5000.5\" }");
    expect_ok("value", "", NULL);
    expect_bad("value", "12abc",
               "value '12abc' is not an amount (examples: 5000, 5,000.50, "
               "$5,000.50, USD 5000)");
    expect_bad("value", "-5",
               "value '-5' is negative; an amount must be 0 or more");
    expect_bad("value", "5.000",
               "value '5.000' is ambiguous; write thousands with a comma "
               "(5,000) and decimals with a dot (5.00); set decimal ','");
    expect_bad("value", "1234567890123456",
               "value '1234567890123456' is too long for an amount (at most "
               "15 digits)");
}

static void test_value_currency(void **state)
{
    const char *header[] = {"N", "S", "V", "C"};
    char err[256], stage[64];
    wrk_map_error_t e;
    bson_t deal = BSON_INITIALIZER;
    char *out;
    wrk_map_t *m = map_json("{\"N\": \"name\", \"S\": \"stage_id\", \"V\": "
                            "\"value\", \"C\": \"currency\"}",
                            err, sizeof(err));
    (void)state;
    assert_int_equal(wrk_map_bind(m, header, 4, err, sizeof(err)), 0);
    {
        const char *cells[] = {"D", "L", "EUR 100", "eur"};
        assert_int_equal(
            wrk_map_row(m, cells, NULL, 4, &deal, stage, sizeof(stage), &e), 0);
        out = bson_as_canonical_extended_json(&deal, NULL);
        assert_string_equal(
            out, "{ \"name\" : \"D\", \"value\" : { \"$numberDouble\" : "
                 "\"100.0\" }, \"currency\" : \"EUR\", \"status\" : "
                 "\"open\" }");
        bson_free(out);
    }
    {
        /* The code in the value fills an empty currency. */
        const char *cells[] = {"D", "L", "100 \xc2\xa3", ""};
        bson_reinit(&deal);
        assert_int_equal(
            wrk_map_row(m, cells, NULL, 4, &deal, stage, sizeof(stage), &e), 0);
        out = bson_as_canonical_extended_json(&deal, NULL);
        assert_string_equal(
            out, "{ \"name\" : \"D\", \"value\" : { \"$numberDouble\" : "
                 "\"100.0\" }, \"currency\" : \"GBP\", \"status\" : "
                 "\"open\" }");
        bson_free(out);
    }
    {
        const char *cells[] = {"D", "L", "EUR 100", "USD"};
        bson_reinit(&deal);
        assert_int_equal(
            wrk_map_row(m, cells, NULL, 4, &deal, stage, sizeof(stage), &e),
            -1);
        assert_string_equal(e.field, "value");
        assert_string_equal(e.message,
                            "value 'EUR 100' is in EUR, but currency is "
                            "'USD'");
    }
    bson_destroy(&deal);
    wrk_map_destroy(&m);

    expect_ok("currency", " gbp ", "\"GBP\"");
    expect_ok("currency", "", NULL);
    expect_bad("currency", "US Dollar",
               "currency 'US Dollar' is not a 3-letter currency code "
               "(examples: USD, EUR, GBP)");
    expect_bad("currency", "US", NULL);
    expect_bad("currency", "U5D", NULL);
    expect_bad("currency", "\xe2\x82\xac", NULL);
    /* A value with a code fills currency when currency is not mapped. */
    expect_ok("value", "5000 USD",
              "{ \"$numberDouble\" : \"5000.0\" }, \"currency\" : \"USD\"");
}

static void test_map_dates(void **state)
{
    (void)state;
    expect_ok("expected_close_date", "2024-02-29",
              "{ \"$date\" : { \"$numberLong\" : \"1709164800000\" } }");
    expect_ok("expected_close_date", "", NULL);
    expect_bad("expected_close_date", "2025-02-29",
               "expected_close_date '2025-02-29' is not a real calendar date "
               "or time (dates with slashes are read as MM/DD/YYYY)");
    expect_bad("expected_close_date", "13/01/2024",
               "expected_close_date '13/01/2024' is not a real calendar date "
               "or time (dates with slashes are read as MM/DD/YYYY); set "
               "date_order DMY");
    expect_bad("expected_close_date", "next week",
               "expected_close_date 'next week' is not a date (examples: "
               "2025-03-31, 2025-03-31T10:00:00Z, 03/31/2025)");
}

/* Under a file's format: the cells it reads, and line errors that name the
 * setting that would have read the cell. */
static void test_map_formats(void **state)
{
    (void)state;
    memset(&one_reading, 0, sizeof(one_reading));
    one_reading.date = WRK_DATES_MDY;
    expect_bad("expected_close_date", "31/12/2025",
               "expected_close_date '31/12/2025' is not a month-first date; "
               "set date_order DMY");
    one_reading.date = WRK_DATES_DMY;
    expect_ok("expected_close_date", "31.12.2025",
              "{ \"$date\" : { \"$numberLong\" : \"1767139200000\" } }");
    expect_bad("expected_close_date", "12/31/2025",
               "expected_close_date '12/31/2025' is not a day-first date; "
               "set date_order MDY");
    expect_bad("expected_close_date", "31.12.25",
               "expected_close_date '31.12.25' is not a date (examples: "
               "2025-03-31, 31/03/2025, 31.03.2025)");
    one_reading.date = WRK_DATES_UNDECIDED;
    expect_bad("expected_close_date", "03/04/2025",
               "expected_close_date '03/04/2025': ambiguous date: set the "
               "file's date order (date_order DMY or MDY)");
    expect_ok("expected_close_date", "05/05/2025",
              "{ \"$date\" : { \"$numberLong\" : \"1746403200000\" } }");
    one_reading.amount = WRK_DECIMAL_COMMA;
    expect_ok("value", "1.234", "{ \"$numberDouble\" : \"1234.0\" }");
    expect_bad("value", "5,000.50",
               "value '5,000.50' is not an amount with decimal ',' (examples: "
               "5000, 5.000,50, 1 234,56 \xe2\x82\xac, R$ 1.234,56); set "
               "decimal '.'");
    expect_bad("value", "1,234",
               "value '1,234' is ambiguous with decimal ',': thousands or "
               "three decimals?; set decimal '.'");
    one_reading.amount = WRK_DECIMAL_DOT;
    expect_bad("value", "1.234",
               "value '1.234' is ambiguous with decimal '.': thousands or "
               "three decimals?; set decimal ','");
    one_reading.amount = WRK_DECIMAL_UNDECIDED;
    expect_bad("value", "1.234",
               "value '1.234': ambiguous number: set the file's decimal "
               "separator (decimal ',' or '.')");
    one_reading.percent = WRK_DECIMAL_COMMA;
    expect_ok("probability", "12,5 %", "{ \"$numberDouble\" : \"12.5\" }");
    expect_bad("probability", "12.5",
               "probability '12.5' is not a percentage from 0 to 100 with "
               "decimal ',' (examples: 50, 50%, 12,5 %); set decimal '.'");
    memset(&one_reading, 0, sizeof(one_reading));
    /* Without a format, as before, with the setting that would read it. */
    expect_bad("value", "5.000,50",
               "value '5.000,50' is not an amount (examples: 5000, 5,000.50, "
               "$5,000.50, USD 5000); set decimal ','");
}

static void test_map_probability(void **state)
{
    (void)state;
    expect_ok("probability", "50%", "{ \"$numberDouble\" : \"50.0\" }");
    expect_ok("probability", "", NULL);
    expect_bad("probability", "101",
               "probability '101' is not a percentage from 0 to 100 "
               "(examples: 50, 50%, 12.5%)");
}

static void test_map_emails(void **state)
{
    (void)state;
    expect_ok("contact_email", " jane@example.com ", "\"jane@example.com\"");
    expect_ok("contact_email", "", NULL);
    expect_bad("contact_email", "jane at example.com",
               "contact_email 'jane at example.com' is not an email address "
               "(example: jane@example.com)");
}

static void test_first_failing_field(void **state)
{
    /* Both value and email are bad: value comes first in table order. */
    const char *cells[] = {"not an email",
                           "Deal",
                           "12abc",
                           "",
                           "Lead",
                           "",
                           "",
                           "",
                           "",
                           "",
                           "",
                           "",
                           "",
                           "",
                           "",
                           ""};
    char stage[64];
    wrk_map_error_t e;
    (void)state;
    assert_null(full_row(cells, FULL_N, stage, sizeof(stage), &e));
    assert_string_equal(e.field, "value");
    cells[2] = "";
    cells[13] = "jane.example.com";
    assert_null(full_row(cells, FULL_N, stage, sizeof(stage), &e));
    assert_string_equal(e.field, "contact_email");
}

static void test_quoted_values_are_bounded(void **state)
{
    /* A huge or binary cell is quoted cut short and as valid UTF-8. */
    char value[2000];
    wrk_map_error_t e;
    const char *q;
    (void)state;
    memset(value, 'x', sizeof(value) - 1);
    value[sizeof(value) - 1] = '\0';
    memcpy(value, "\xc3\xa9\x01", 3);
    assert_null(one("contact_email", value, &e));
    q = strchr(e.message, '\'');
    assert_non_null(q);
    assert_memory_equal(q, "'\xc3\xa9?xxx", 7);
    assert_non_null(strstr(e.message, "xxx...' is not an email address"));
    assert_true(strlen(e.message) < 200);
}

static void test_cost_per_row(void **state)
{
    const char *header[] = {"Title",    "Amount", "Cur",    "Stage", "Status",
                            "Contract", "Close",  "Prob",   "Notes", "Contact",
                            "Email",    "Phone",  "Company"};
    const char *cells[] = {"Acme renewal 2025",
                           "$125,000.50",
                           "USD",
                           "Qualified Lead",
                           "Closed - Won",
                           "Semi-Annually",
                           "2025-03-31T10:00:00Z",
                           "75%",
                           "Renewal of the three-year platform contract",
                           "Jane Doe",
                           "jane.doe@acme.example.com",
                           "+1 555 0100",
                           "Acme Inc."};
    char err[256], stage[64];
    wrk_map_error_t e;
    bson_t deal;
    struct timespec t0, t1;
    const int rows = 100000;
    double ns;
    wrk_map_t *m = map_json(
        "{\"Title\": \"name\", \"Amount\": \"value\", \"Cur\": \"currency\", "
        "\"Stage\": \"stage_id\", \"Status\": \"status\", \"Contract\": "
        "\"contract_type\", \"Close\": \"expected_close_date\", \"Prob\": "
        "\"probability\", \"Notes\": \"description\", \"Contact\": "
        "\"contact_name\", \"Email\": \"contact_email\", \"Phone\": "
        "\"contact_phone\", \"Company\": \"company_name\"}",
        err, sizeof(err));
    (void)state;
    assert_non_null(m);
    assert_int_equal(wrk_map_bind(m, header, 13, err, sizeof(err)), 0);
    bson_init(&deal);
    /* CPU time, not wall time: the machine may be shared. */
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
    for (int i = 0; i < rows; i++) {
        bson_reinit(&deal);
        if (wrk_map_row(m, cells, NULL, 13, &deal, stage, sizeof(stage), &e) !=
            0)
            fail_msg("row refused: %s", e.message);
    }
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
    assert_int_equal(bson_count_keys(&deal), 12);
    ns = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 +
          (double)(t1.tv_nsec - t0.tv_nsec)) /
         rows;
    printf("wrk_map_row: %.0f ns/row (CPU) over %d rows of 13 fields\n", ns,
           rows);
    bson_destroy(&deal);
    wrk_map_destroy(&m);
}

/* A refusal quotes the user's column name: at every buffer size its
 * sentence ends on a character boundary (failure class 6: cut UTF-8). */
static void test_refusal_cut_on_character(void **state)
{
    char column[401], err[160];
    bson_t *b = bson_new();
    (void)state;
    for (int i = 0; i < 200; i++)
        memcpy(column + 2 * i, "\xc3\xa9", 2);
    column[400] = '\0';
    BSON_APPEND_UTF8(b, column, "no_such_field");
    for (size_t size = 1; size <= sizeof(err); size++) {
        memset(err, 'Z', sizeof(err));
        assert_null(wrk_map_new(b, err, size));
        assert_true(strlen(err) < size);
        assert_true(dip_text_utf8_valid(err, strlen(err)));
    }
    assert_non_null(strstr(err, "column '\xc3\xa9"));
    bson_destroy(b);
}

/* An update's mapping (wrk_map_new_update) needs no name or stage column;
 * every other rule holds as for a create. */
static void test_update_mapping(void **state)
{
    char err[512];
    bson_t *b = json("{\"Ref\": \"external_id\", \"V\": \"value\"}");
    wrk_map_t *m = wrk_map_new_update(b, err, sizeof(err));
    (void)state;
    assert_non_null(m);
    assert_int_equal(wrk_map_field_column(m, "stage_id", NULL, NULL), -1);
    assert_int_equal(wrk_map_field_column(m, "value", NULL, NULL), 0);
    wrk_map_destroy(&m);
    assert_null(wrk_map_new(b, err, sizeof(err)));
    assert_string_equal(err, "no column is mapped to 'name', which every deal "
                             "needs");
    bson_destroy(b);
    assert_null(wrk_map_new_update(NULL, err, sizeof(err)));
    assert_string_equal(err, "mappings are empty; map at least the column of "
                             "the match field");
    b = json("{\"Ref\": \"external_id\", \"V\": \"value\", \"W\": \"value\"}");
    assert_null(wrk_map_new_update(b, err, sizeof(err)));
    assert_string_equal(err, "columns 'V' and 'W' are both mapped to 'value'; "
                             "map each field from one column only");
    bson_destroy(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refusal_cut_on_character),
        cmocka_unit_test(test_refused_targets),
        cmocka_unit_test(test_refused_documents),
        cmocka_unit_test(test_bind),
        cmocka_unit_test(test_column_field),
        cmocka_unit_test(test_bind_error_is_bounded),
        cmocka_unit_test(test_full_row),
        cmocka_unit_test(test_sparse_row),
        cmocka_unit_test(test_minimal_map_and_lengths),
        cmocka_unit_test(test_required),
        cmocka_unit_test(test_keep_empty),
        cmocka_unit_test(test_text_fields),
        cmocka_unit_test(test_status_and_contract),
        cmocka_unit_test(test_normalizers),
        cmocka_unit_test(test_map_amounts),
        cmocka_unit_test(test_value_currency),
        cmocka_unit_test(test_map_dates),
        cmocka_unit_test(test_map_formats),
        cmocka_unit_test(test_map_probability),
        cmocka_unit_test(test_map_emails),
        cmocka_unit_test(test_first_failing_field),
        cmocka_unit_test(test_quoted_values_are_bounded),
        cmocka_unit_test(test_cost_per_row),
        cmocka_unit_test(test_update_mapping),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
