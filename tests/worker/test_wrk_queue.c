/*
 * Tests wrk_queue: a queue document as the CRM writes it is read whole (ids
 * as ObjectIds or 24-hex strings, the key, the mappings view, tags as an
 * array or one string); each missing or misshapen required field is refused
 * with the sentence naming it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

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
        "\"tags\":[\"a\",1,\"b\"]},\"csv\":[{\"key\":\"imports/x.csv\"}],"
        "\"mappings\":{\"Deal Name\":\"name\"}}");
    wrk_queue_t d;
    char err[256] = "", hex[25];
    bson_iter_t it;
    (void)state;
    assert_int_equal(wrk_queue_read(q, &d, err, sizeof(err)), 0);
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
    assert_int_equal(wrk_queue_read(q, &d, err, sizeof(err)), 0);
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
    assert_int_equal(wrk_queue_read(q, &d, err, sizeof(err)), -1);
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
    refused("{\"user_id\":\"" USER "\",\"account_id\":\"" ACC "\","
            "\"additional_data\":{\"pipeline_id\":\"" PIPE "\"},"
            "\"csv\":[{\"key\":\"k\"}],\"mappings\":[]}",
            "the queue document has no 'mappings' object");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reads_whole),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
