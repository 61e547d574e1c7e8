/*
 * Tests wrk_queue: a queue document as the CRM writes it is read whole (ids
 * as ObjectIds or 24-hex strings, the key, the mappings view, tags as an
 * array or one string, dry_run as a boolean); each missing or misshapen
 * field is refused with the sentence naming it and the type found, never
 * read loosely (a table of shapes, one verdict each).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "wrk_queue.h"

#define USER "64b000000000000000000001"
#define ACC "64b000000000000000000002"
#define PIPE "64b000000000000000000003"

static bson_t *doc_from(const char *json)
{
    bson_error_t e;
    bson_t *b = bson_new_from_json((const uint8_t *)json, -1, &e);
    assert_non_null(b);
    return b;
}

static void test_reads_whole(void **state)
{
    bson_t *q = doc_from(
        "{\"user_id\":{\"$oid\":\"" USER "\"},\"account_id\":\"" ACC "\","
        "\"additional_data\":{\"pipeline_id\":{\"$oid\":\"" PIPE "\"},"
        "\"tags\":[\"a\",\"b\"]},\"csv\":[{\"key\":\"imports/x.csv\"}],"
        "\"mappings\":{\"Deal Name\":\"name\"}}");
    wrk_queue_t d;
    char err[256] = "", hex[25];
    bson_iter_t it;
    (void)state;
    assert_int_equal(wrk_queue_read(q, 50, &d, err, sizeof(err)), 0);
    bson_oid_to_string(&d.user, hex);
    assert_string_equal(hex, USER);
    bson_oid_to_string(&d.account, hex);
    assert_string_equal(hex, ACC);
    bson_oid_to_string(&d.pipeline, hex);
    assert_string_equal(hex, PIPE);
    assert_int_equal(d.key_len, 13);
    assert_memory_equal(d.key, "imports/x.csv", 13);
    assert_true(bson_iter_init_find(&it, &d.mappings, "Deal Name"));
    assert_string_equal(bson_iter_utf8(&it, NULL), "name");
    assert_int_equal(bson_count_keys(&d.tags), 2);
    assert_true(bson_iter_init_find(&it, &d.tags, "1"));
    assert_string_equal(bson_iter_utf8(&it, NULL), "b");
    wrk_queue_release(&d);
    bson_destroy(q);

    q = doc_from("{\"user_id\":\"" USER "\",\"account_id\":\"" ACC "\","
                 "\"additional_data\":{\"pipeline_id\":\"" PIPE "\","
                 "\"tags\":\"one\"},\"csv\":[{\"key\":\"k\"}],"
                 "\"mappings\":{}}");
    assert_int_equal(wrk_queue_read(q, 50, &d, err, sizeof(err)), 0);
    assert_int_equal(bson_count_keys(&d.tags), 1);
    wrk_queue_release(&d);
    wrk_queue_release(NULL);
    bson_destroy(q);
}

static void refused(const char *json, const char *want)
{
    bson_t *q = doc_from(json);
    wrk_queue_t d;
    char err[256] = "";
    assert_int_equal(wrk_queue_read(q, 50, &d, err, sizeof(err)), -1);
    assert_string_equal(err, want);
    bson_destroy(q);
}

static void test_refusals(void **state)
{
    (void)state;
    refused("{}", "the queue document's 'user_id' is missing");
    refused("{\"user_id\":\"" USER "\",\"account_id\":7}",
            "the queue document's 'account_id' is not an ObjectId or a "
            "24-hex string");
    refused("{\"user_id\":\"" USER "\",\"account_id\":\"" ACC "\"}",
            "the queue document's 'additional_data.pipeline_id' is missing");
    refused("{\"user_id\":\"" USER "\",\"account_id\":\"" ACC "\","
            "\"additional_data\":{\"pipeline_id\":\"" PIPE "\"},"
            "\"client_id\":\"nope\"}",
            "the queue document's 'client_id' is not an ObjectId or a 24-hex "
            "string");
    refused("{\"user_id\":\"" USER "\",\"account_id\":\"" ACC "\","
            "\"additional_data\":{\"pipeline_id\":\"" PIPE "\"},"
            "\"csv\":[{\"key\":\"\"}]}",
            "the queue document has no csv[0].key: there is no file to "
            "import");
    /* csv an object whose "0" names the file: the worker would read it,
     * while the source's cleanup, which counts the imports naming a file
     * by csv.key (an array's entries), would not see it and could delete
     * the file under it (class 9, shared resources; 11, types) */
    refused("{\"user_id\":\"" USER "\",\"account_id\":\"" ACC "\","
            "\"additional_data\":{\"pipeline_id\":\"" PIPE "\"},"
            "\"csv\":{\"0\":{\"key\":\"k\"}},\"mappings\":{}}",
            "the queue document's 'csv' is an object, not an array of files");
    refused("{\"user_id\":\"" USER "\",\"account_id\":\"" ACC "\","
            "\"additional_data\":{\"pipeline_id\":\"" PIPE "\"},"
            "\"csv\":[{\"key\":\"k\"}],\"mappings\":[]}",
            "the queue document has no 'mappings' object");
}

/* A whole document around the fields under test: `extra` goes after the
 * required ones at the top level, `ad` inside additional_data. */
static bson_t *doc_with(const char *extra, const char *ad)
{
    char json[8192];
    snprintf(json, sizeof(json),
             "{\"user_id\":\"" USER "\",\"account_id\":\"" ACC "\","
             "\"additional_data\":{\"pipeline_id\":\"" PIPE "\"%s%s},"
             "\"csv\":[{\"key\":\"k\"}],\"mappings\":{}%s%s}",
             ad[0] ? "," : "", ad, extra[0] ? "," : "", extra);
    return doc_from(json);
}

/* dry_run: a boolean, or absent or null; every other type refused with
 * the field and the type named. */
static void test_dry_run_types(void **state)
{
    static const struct {
        const char *field;
        int ok, dry;
        const char *err;
    } cases[] = {
        {"", 1, 0, NULL},
        {"\"dry_run\":true", 1, 1, NULL},
        {"\"dry_run\":false", 1, 0, NULL},
        {"\"dry_run\":null", 1, 0, NULL},
        {"\"dry_run\":\"false\"", 0, 0,
         "the queue document's 'dry_run' is a string: it must be a boolean "
         "(true or false)"},
        {"\"dry_run\":\"true\"", 0, 0,
         "the queue document's 'dry_run' is a string: it must be a boolean "
         "(true or false)"},
        {"\"dry_run\":0", 0, 0,
         "the queue document's 'dry_run' is a number: it must be a boolean "
         "(true or false)"},
        {"\"dry_run\":1", 0, 0,
         "the queue document's 'dry_run' is a number: it must be a boolean "
         "(true or false)"},
        {"\"dry_run\":[]", 0, 0,
         "the queue document's 'dry_run' is an array: it must be a boolean "
         "(true or false)"},
        {"\"dry_run\":{}", 0, 0,
         "the queue document's 'dry_run' is an object: it must be a boolean "
         "(true or false)"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bson_t *q = doc_with(cases[i].field, "");
        wrk_queue_t d;
        char err[256] = "";
        int rc = wrk_queue_read(q, 50, &d, err, sizeof(err));
        if (cases[i].ok) {
            assert_int_equal(rc, 0);
            assert_int_equal(d.dry_run, cases[i].dry);
            wrk_queue_release(&d);
        } else {
            assert_int_equal(rc, -1);
            assert_string_equal(err, cases[i].err);
        }
        bson_destroy(q);
    }
}

/* Tags: at most max_tags strings of at most 256 bytes, or refused with a
 * sentence; nothing dropped in silence. */
static void test_tags_bounded(void **state)
{
    char t256[300], t257[300], many[2048], over[4096];
    size_t p;
    struct {
        const char *ad;
        size_t max;
        int ntags; /* -1: refused */
        const char *err;
    } cases[] = {
        {"", 3, 0, NULL},
        {"\"tags\":null", 3, 0, NULL},
        {"\"tags\":[]", 3, 0, NULL},
        {"\"tags\":\"one\"", 3, 1, NULL},
        {"\"tags\":[\"a\",\"\",\"c\"]", 3, 3, NULL},
        {t256, 3, 1, NULL},
        {many, 50, 50, NULL},
        {over, 50, -1,
         "the queue document has 51 tags in 'additional_data.tags': at most "
         "50 are accepted (DEALIMPORT_MAX_TAGS)"},
        {"\"tags\":[\"a\",\"b\",\"c\",\"d\"]", 3, -1,
         "the queue document has 4 tags in 'additional_data.tags': at most 3 "
         "are accepted (DEALIMPORT_MAX_TAGS)"},
        {"\"tags\":\"one\"", 0, -1,
         "the queue document has 1 tag in 'additional_data.tags': no tags "
         "are accepted (DEALIMPORT_MAX_TAGS is 0)"},
        {t257, 3, -1,
         "tag 1 of the queue document's 'additional_data.tags' has 257 "
         "bytes: a tag may have at most 256"},
        {"\"tags\":[\"a\",1,\"b\"]", 3, -1,
         "tag 2 of the queue document's 'additional_data.tags' is a number: "
         "every tag must be a string"},
        {"\"tags\":[\"a\",null]", 3, -1,
         "tag 2 of the queue document's 'additional_data.tags' is null: "
         "every tag must be a string"},
        {"\"tags\":[[\"a\"]]", 3, -1,
         "tag 1 of the queue document's 'additional_data.tags' is an array: "
         "every tag must be a string"},
        {"\"tags\":[\"a\\u0000b\"]", 3, -1,
         "tag 1 of the queue document's 'additional_data.tags' is not UTF-8 "
         "text"},
        {"\"tags\":7", 3, -1,
         "the queue document's 'additional_data.tags' is a number: it must "
         "be an array of strings"},
        {"\"tags\":{\"0\":\"a\"}", 3, -1,
         "the queue document's 'additional_data.tags' is an object: it must "
         "be an array of strings"},
    };
    (void)state;
    snprintf(t256, sizeof(t256), "\"tags\":[\"%0256d\"]", 0);
    snprintf(t257, sizeof(t257), "\"tags\":[\"%0257d\"]", 0);
    p = (size_t)snprintf(many, sizeof(many), "\"tags\":[");
    for (int i = 0; i < 50; i++)
        p += (size_t)snprintf(many + p, sizeof(many) - p, "%s\"t%d\"",
                              i ? "," : "", i);
    memcpy(over, many, p);
    memcpy(over + p, ",\"t50\"]", sizeof(",\"t50\"]"));
    snprintf(many + p, sizeof(many) - p, "]");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bson_t *q = doc_with("", cases[i].ad);
        wrk_queue_t d;
        char err[256] = "";
        int rc = wrk_queue_read(q, cases[i].max, &d, err, sizeof(err));
        if (cases[i].ntags >= 0) {
            assert_int_equal(rc, 0);
            assert_int_equal(bson_count_keys(&d.tags), cases[i].ntags);
            wrk_queue_release(&d);
        } else {
            assert_int_equal(rc, -1);
            assert_string_equal(err, cases[i].err);
        }
        bson_destroy(q);
    }
}

/* csv entries after the first are counted for a note, not read. */
static void test_csv_ignored(void **state)
{
    bson_t *q =
        doc_from("{\"user_id\":\"" USER "\",\"account_id\":\"" ACC "\","
                 "\"additional_data\":{\"pipeline_id\":\"" PIPE "\"},"
                 "\"csv\":[{\"key\":\"a\"},{\"key\":\"b\"},{\"key\":\"c\"}],"
                 "\"mappings\":{}}");
    wrk_queue_t d;
    char err[256] = "";
    (void)state;
    assert_int_equal(wrk_queue_read(q, 50, &d, err, sizeof(err)), 0);
    assert_int_equal(d.csv_ignored, 2);
    assert_memory_equal(d.key, "a", 1);
    wrk_queue_release(&d);
    bson_destroy(q);
    q = doc_with("", "");
    assert_int_equal(wrk_queue_read(q, 50, &d, err, sizeof(err)), 0);
    assert_int_equal(d.csv_ignored, 0);
    wrk_queue_release(&d);
    bson_destroy(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reads_whole),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_dry_run_types),
        cmocka_unit_test(test_tags_bounded),
        cmocka_unit_test(test_csv_ignored),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
