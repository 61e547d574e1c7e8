/*
 * Tests dip_storage, the storage rules without I/O: keys that try to leave
 * their storage, endpoints and buckets, object paths, ranges, which
 * failures are transient, backoff bounds, S3 error bodies, and the
 * multipart plan (part sizes, the CompleteMultipartUpload body, queries).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "dip_storage.h"
#include "dip_text.h"

static void expect_bad_key(const char *key, size_t len, const char *words)
{
    char err[512] = "";
    assert_int_equal(dip_storage_check_key(key, len, err, sizeof(err)),
                     DIP_STORAGE_EINVAL);
    if (strstr(err, words) == NULL)
        fail_msg("key '%s': message '%s' lacks '%s'", key, err, words);
}

static void test_bad_keys(void **state)
{
    char err[512] = "", big[DIP_STORAGE_KEY_MAX + 2];
    (void)state;

    expect_bad_key("", 0, "file key is empty");
    expect_bad_key("../x", 4, "file key '../x' has a '..' path segment");
    expect_bad_key("/etc/passwd", 11, "file key '/etc/passwd' is absolute");
    expect_bad_key("a/../../b", 9, "'..' path segment");
    expect_bad_key("a/..", 4, "'..' path segment");
    expect_bad_key("a\\..\\..\\b", 9, "'..' path segment");
    expect_bad_key("..\\x", 4, "'..' path segment");
    expect_bad_key("\\x", 2, "is absolute");
    expect_bad_key("./x", 3, "has a '.' path segment");
    expect_bad_key("a\0../../etc/passwd", 18,
                   "file key 'a' contains a NUL byte");
    expect_bad_key("a\nb", 3, "contains a control character");
    memset(big, 'k', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    expect_bad_key(big, strlen(big), "longer than 1024 bytes");

    /* Ordinary keys, including dots inside names, pass. */
    assert_int_equal(
        dip_storage_check_key("imports/a..b/.hidden.csv", 24, err, sizeof(err)),
        DIP_STORAGE_OK);
    assert_int_equal(dip_storage_check_key("x", 1, NULL, 0), DIP_STORAGE_OK);
}

/* A sentence quoting a long key is cut at a character boundary, never
 * inside one, so it stays valid UTF-8 for JSON, BSON and logs. */
static void test_sentences_cut_whole(void **state)
{
    char key[700], err[100];
    size_t n = 0;
    (void)state;
    while (n + 2 < 600) {
        key[n++] = '\xc3';
        key[n++] = '\xbc';
    }
    key[n++] = '\n';
    key[n] = '\0';
    assert_int_equal(dip_storage_check_key(key, n, err, sizeof(err)),
                     DIP_STORAGE_EINVAL);
    assert_true(strncmp(err, "file key '\xc3\xbc", 12) == 0);
    assert_true(strlen(err) >= sizeof(err) - 2);
    assert_true(dip_text_utf8_valid(err, strlen(err)));
}

static void test_endpoint(void **state)
{
    dip_storage_endpoint_t ep;
    char err[256] = "";
    (void)state;
    assert_int_equal(dip_storage_parse_endpoint("http://LocalHost:9000/s3//",
                                                &ep, err, sizeof(err)),
                     0);
    assert_string_equal(ep.origin, "http://LocalHost:9000");
    assert_string_equal(ep.host, "localhost:9000");
    assert_string_equal(ep.base_path, "/s3");
    dip_storage_endpoint_release(&ep);
    assert_int_equal(dip_storage_parse_endpoint("https://s3.amazonaws.com", &ep,
                                                err, sizeof(err)),
                     0);
    assert_string_equal(ep.base_path, "");
    dip_storage_endpoint_release(&ep);

    assert_int_equal(
        dip_storage_parse_endpoint("localhost:9000", &ep, err, sizeof(err)),
        -1);
    assert_non_null(strstr(err, "'localhost:9000' does not start with"));
    dip_storage_endpoint_release(&ep);
    assert_int_equal(
        dip_storage_parse_endpoint("http://u:p@host/", &ep, err, sizeof(err)),
        -1);
    assert_non_null(strstr(err, "is not of the form"));
    dip_storage_endpoint_release(&ep);
    assert_int_equal(
        dip_storage_parse_endpoint("http://host/?x=1", &ep, err, sizeof(err)),
        -1);
    dip_storage_endpoint_release(&ep);
    assert_int_equal(
        dip_storage_parse_endpoint("http:///p", &ep, err, sizeof(err)), -1);
    dip_storage_endpoint_release(&ep);
}

static void test_bucket_and_path(void **state)
{
    char err[256] = "", *b, *p;
    (void)state;
    b = dip_storage_parse_bucket("s3://deals.eu-1_x/", err, sizeof(err));
    assert_non_null(b);
    assert_string_equal(b, "deals.eu-1_x");
    free(b);
    assert_null(dip_storage_parse_bucket("s3://deals/sub", err, sizeof(err)));
    assert_non_null(strstr(err, "does not name a bucket"));
    assert_null(dip_storage_parse_bucket("s3://", err, sizeof(err)));
    assert_null(dip_storage_parse_bucket("file:///x", err, sizeof(err)));

    p = dip_storage_object_path("/base", "deals",
                                "imports/a b+c%\xc3\xbc~=&.csv");
    assert_string_equal(p, "/base/deals/imports/a%20b%2Bc%25%C3%BC~%3D%26.csv");
    free(p);
    p = dip_storage_object_path("", "deals", "k");
    assert_string_equal(p, "/deals/k");
    free(p);
}

static void test_ranges(void **state)
{
    char h[64];
    int64_t first, total;
    (void)state;
    dip_storage_range_header(0, h, sizeof(h));
    assert_string_equal(h, "bytes=0-");
    dip_storage_range_header(18446744073709551615ULL, h, sizeof(h));
    assert_string_equal(h, "bytes=18446744073709551615-");

    assert_int_equal(
        dip_storage_parse_content_range(" bytes 10-99/100", &first, &total), 0);
    assert_int_equal(first, 10);
    assert_int_equal(total, 100);
    assert_int_equal(
        dip_storage_parse_content_range("bytes */4096", &first, &total), 0);
    assert_int_equal(first, -1);
    assert_int_equal(total, 4096);
    assert_int_equal(
        dip_storage_parse_content_range("bytes 0-9/*", &first, &total), 0);
    assert_int_equal(first, 0);
    assert_int_equal(total, -1);
    assert_int_equal(
        dip_storage_parse_content_range("items 0-9/10", &first, &total), -1);
    assert_int_equal(dip_storage_parse_content_range("bytes x", &first, &total),
                     -1);
}

static void test_transient(void **state)
{
    (void)state;
    assert_true(dip_storage_transient_http(500));
    assert_true(dip_storage_transient_http(503));
    assert_true(dip_storage_transient_http(408));
    assert_true(dip_storage_transient_http(429));
    assert_false(dip_storage_transient_http(400));
    assert_false(dip_storage_transient_http(403));
    assert_false(dip_storage_transient_http(404));
    assert_false(dip_storage_transient_http(412));
    assert_true(dip_storage_transient_curl(CURLE_COULDNT_CONNECT));
    assert_true(dip_storage_transient_curl(CURLE_OPERATION_TIMEDOUT));
    assert_true(dip_storage_transient_curl(CURLE_RECV_ERROR));
    assert_true(dip_storage_transient_curl(CURLE_PARTIAL_FILE));
    assert_false(dip_storage_transient_curl(CURLE_OK));
    assert_false(dip_storage_transient_curl(CURLE_URL_MALFORMAT));
    assert_false(dip_storage_transient_curl(CURLE_ABORTED_BY_CALLBACK));
    assert_false(dip_storage_transient_curl(CURLE_PEER_FAILED_VERIFICATION));
}

static void test_backoff(void **state)
{
    (void)state;
    assert_int_equal(dip_storage_backoff_ms(0, 3, 12345), 0);
    /* base 1000: the first wait 750..1250, then doubling, capped at 600 s
     * (+-25%). */
    for (unsigned r = 0; r < 2000; r += 7) {
        long a = dip_storage_backoff_ms(1000, 1, r);
        long b = dip_storage_backoff_ms(1000, 3, r);
        long c = dip_storage_backoff_ms(1000, 40, r);
        assert_true(a >= 750 && a <= 1250);
        assert_true(b >= 3000 && b <= 5000);
        assert_true(c >= 450000 && c <= 750000);
    }
    assert_int_equal(dip_storage_backoff_ms(1000, 1, 250), 1000);
    assert_int_equal(dip_storage_backoff_ms(1000, 1, 0), 750);
    assert_int_equal(dip_storage_backoff_ms(1000, 1, 500), 1250);
}

static void test_error_bodies(void **state)
{
    char out[256], s[64];
    const char *body = "<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code>"
                       "<Message>The key does not exist</Message></Error>";
    (void)state;
    dip_storage_xml_field(body, "Code", out, sizeof(out));
    assert_string_equal(out, "NoSuchKey");
    dip_storage_xml_field(body, "Nope", out, sizeof(out));
    assert_string_equal(out, "");
    dip_storage_xml_field("<Code>unterminated", "Code", out, sizeof(out));
    assert_string_equal(out, "");
    dip_storage_xml_field(NULL, "Code", out, sizeof(out));
    assert_string_equal(out, "");
    dip_storage_http_reason(404, body, out, sizeof(out));
    assert_string_equal(out, "HTTP 404 NoSuchKey: The key does not exist");
    dip_storage_http_reason(502, "<html>bad gateway</html>", out, sizeof(out));
    assert_string_equal(out, "HTTP 502");

    snprintf(s, sizeof(s), "a&amp;b&lt;c&gt;&quot;d&apos;&x;&");
    dip_storage_xml_unescape(s);
    assert_string_equal(s, "a&b<c>\"d'&x;&");
}

static void test_part_size(void **state)
{
    const int64_t MiB = 1024 * 1024;
    (void)state;
    assert_int_equal(dip_storage_part_size(100 * MiB, 0),
                     DIP_STORAGE_PART_SIZE);
    assert_int_equal(dip_storage_part_size(100 * MiB, 5 * MiB), 5 * MiB);
    /* 10,000 parts at most: 1 TiB needs parts over 100 MiB. */
    {
        int64_t total = 1024 * 1024 * MiB;
        int64_t p = dip_storage_part_size(total, 16 * MiB);
        assert_true(p > 16 * MiB);
        assert_true((total + p - 1) / p <= DIP_STORAGE_PARTS_MAX);
        assert_true((total + (p - 1) - 1) / (p - 1) > DIP_STORAGE_PARTS_MAX);
    }
    /* More than 10,000 parts of 5 GiB cannot be one object. */
    assert_int_equal(
        dip_storage_part_size(DIP_STORAGE_PART_MAX * 10000 + 1, 16 * MiB), -1);
    assert_int_equal(dip_storage_part_size(-1, 0), -1);
}

static void test_complete_xml(void **state)
{
    dip_storage_part_t parts[2] = {{1, "\"a54357aff0632cce46d942af68356b38\""},
                                   {2, "\"x&<y>\""}};
    char *xml, *q;
    (void)state;
    xml = dip_storage_complete_xml(parts, 2);
    assert_string_equal(
        xml, "<CompleteMultipartUpload "
             "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
             "<Part><PartNumber>1</PartNumber>"
             "<ETag>\"a54357aff0632cce46d942af68356b38\"</ETag></Part>"
             "<Part><PartNumber>2</PartNumber>"
             "<ETag>\"x&amp;&lt;y&gt;\"</ETag></Part>"
             "</CompleteMultipartUpload>");
    free(xml);

    q = dip_storage_upload_query("VXBsb2Fk.SUQ-_~+/=", 7);
    assert_string_equal(q, "partNumber=7&uploadId=VXBsb2Fk.SUQ-_~%2B%2F%3D");
    free(q);
    q = dip_storage_upload_query("abc", 0);
    assert_string_equal(q, "uploadId=abc");
    free(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_keys),
        cmocka_unit_test(test_sentences_cut_whole),
        cmocka_unit_test(test_endpoint),
        cmocka_unit_test(test_bucket_and_path),
        cmocka_unit_test(test_ranges),
        cmocka_unit_test(test_transient),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_error_bodies),
        cmocka_unit_test(test_part_size),
        cmocka_unit_test(test_complete_xml),
    };
    return cmocka_run_group_tests_name("storage rules", tests, NULL, NULL);
}
