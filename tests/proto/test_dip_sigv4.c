/*
 * Tests dip_sigv4 against AWS's published examples: the four requests of the
 * S3 API reference "Signature Calculations for the Authorization Header:
 * Transferring Payload in a Single Chunk" (examplebucket, 20130524T000000Z)
 * and cases of the generic aws-sig-v4-test-suite (20150830T123600Z), checking
 * the canonical request, the string to sign and the exact signatures; then
 * the URI encoding of object keys.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dip_sigv4.h"

/* 2013-05-24T00:00:00Z and 2015-08-30T12:36:00Z */
#define T2013 ((time_t)1369353600)
#define T2015 ((time_t)1440938160)
#define S3_HOST "examplebucket.s3.amazonaws.com"

static const dip_sigv4_credentials_t s3_docs = {
    "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "us-east-1", "s3"};
static const dip_sigv4_credentials_t suite = {
    "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "us-east-1",
    "service"};

static void to_hex(const unsigned char *in, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", in[i]);
}

/* The derived key of AWS's general reference ("derive a signing key"). */
static void test_signing_key(void **state)
{
    const dip_sigv4_credentials_t iam = {
        "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "us-east-1",
        "iam"};
    unsigned char key[32];
    char h[65];
    (void)state;
    assert_int_equal(dip_sigv4_signing_key(&iam, "20120215", key), 0);
    to_hex(key, sizeof(key), h);
    assert_string_equal(
        h, "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
    assert_int_equal(dip_sigv4_signing_key(&iam, "2012", key), -1);
}

static void test_amz_date(void **state)
{
    char d[DIP_SIGV4_DATE_LEN];
    (void)state;
    assert_int_equal(dip_sigv4_amz_date(T2013, d), 0);
    assert_string_equal(d, "20130524T000000Z");
    assert_int_equal(dip_sigv4_amz_date(T2015, d), 0);
    assert_string_equal(d, "20150830T123600Z");
}

/* "Example: GET Object": the first ten bytes of test.txt. */
static void test_s3_get_object(void **state)
{
    const dip_sigv4_header_t h[] = {
        {"Range", "bytes=0-9"},
        {"x-amz-content-sha256", DIP_SIGV4_EMPTY_SHA256},
    };
    const dip_sigv4_request_t req = {
        "GET", S3_HOST, "/test.txt", NULL, h, 2, DIP_SIGV4_EMPTY_SHA256,
        T2013, NULL};
    char *signed_headers = NULL;
    char *canon = dip_sigv4_canonical_request(&req, &signed_headers);
    char *scope = dip_sigv4_scope("20130524T000000Z", &s3_docs);
    char *sts, *auth;
    char sig[65];
    (void)state;

    assert_non_null(canon);
    assert_string_equal(
        canon,
        "GET\n"
        "/test.txt\n"
        "\n"
        "host:examplebucket.s3.amazonaws.com\n"
        "range:bytes=0-9\n"
        "x-amz-content-sha256:"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
        "x-amz-date:20130524T000000Z\n"
        "\n"
        "host;range;x-amz-content-sha256;x-amz-date\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_string_equal(signed_headers,
                        "host;range;x-amz-content-sha256;x-amz-date");
    assert_string_equal(scope, "20130524/us-east-1/s3/aws4_request");
    sts = dip_sigv4_string_to_sign("20130524T000000Z", scope, canon);
    assert_string_equal(
        sts,
        "AWS4-HMAC-SHA256\n"
        "20130524T000000Z\n"
        "20130524/us-east-1/s3/aws4_request\n"
        "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
    auth = dip_sigv4_authorization(&req, &s3_docs, sig);
    assert_string_equal(
        sig,
        "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
    assert_string_equal(
        auth,
        "AWS4-HMAC-SHA256 "
        "Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature="
        "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
    free(canon);
    free(signed_headers);
    free(scope);
    free(sts);
    free(auth);
}

/* "Example: PUT Object": a '$' in the key, a Date header and a storage class,
 * with the payload hashed. */
static void test_s3_put_object(void **state)
{
    const char body[] = "Welcome to Amazon S3.";
    char payload[65], sig[65];
    char *path = dip_sigv4_uri_encode("/test$file.text", 15, 1);
    dip_sigv4_header_t h[] = {
        {"Date", "Fri, 24 May 2013 00:00:00 GMT"},
        {"x-amz-storage-class", "REDUCED_REDUNDANCY"},
        {"x-amz-content-sha256", payload},
    };
    dip_sigv4_request_t req = {"PUT", S3_HOST, path,  NULL, h,
                               3,     payload, T2013, NULL};
    char *canon, *sts, *auth;
    (void)state;

    dip_sigv4_sha256_hex(body, strlen(body), payload);
    assert_string_equal(
        payload,
        "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
    assert_string_equal(path, "/test%24file.text");
    canon = dip_sigv4_canonical_request(&req, NULL);
    assert_string_equal(
        canon,
        "PUT\n"
        "/test%24file.text\n"
        "\n"
        "date:Fri, 24 May 2013 00:00:00 GMT\n"
        "host:examplebucket.s3.amazonaws.com\n"
        "x-amz-content-sha256:"
        "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072\n"
        "x-amz-date:20130524T000000Z\n"
        "x-amz-storage-class:REDUCED_REDUNDANCY\n"
        "\n"
        "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class\n"
        "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
    sts = dip_sigv4_string_to_sign("20130524T000000Z",
                                   "20130524/us-east-1/s3/aws4_request", canon);
    assert_string_equal(
        sts,
        "AWS4-HMAC-SHA256\n"
        "20130524T000000Z\n"
        "20130524/us-east-1/s3/aws4_request\n"
        "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d");
    auth = dip_sigv4_authorization(&req, &s3_docs, sig);
    assert_non_null(auth);
    assert_string_equal(
        sig,
        "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
    assert_non_null(strstr(auth, "SignedHeaders=date;host;x-amz-content-sha256;"
                                 "x-amz-date;x-amz-storage-class, "));
    free(path);
    free(canon);
    free(sts);
    free(auth);
}

/* "Example: GET Bucket Lifecycle": a sub-resource without a value. */
static void test_s3_get_bucket_lifecycle(void **state)
{
    const dip_sigv4_header_t h[] = {
        {"x-amz-content-sha256", DIP_SIGV4_EMPTY_SHA256}};
    const dip_sigv4_request_t req = {
        "GET", S3_HOST, "/", "lifecycle", h, 1, DIP_SIGV4_EMPTY_SHA256,
        T2013, NULL};
    char *canon = dip_sigv4_canonical_request(&req, NULL);
    char *sts = dip_sigv4_string_to_sign(
        "20130524T000000Z", "20130524/us-east-1/s3/aws4_request", canon);
    char sig[65];
    char *auth = dip_sigv4_authorization(&req, &s3_docs, sig);
    (void)state;
    assert_non_null(strstr(canon, "GET\n/\nlifecycle=\nhost:"));
    assert_string_equal(
        strrchr(sts, '\n') + 1,
        "9766c798316ff2757b517bc739a67f6213b4ab36dd5da2f94eaebf79c77395ca");
    assert_string_equal(
        sig,
        "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
    free(canon);
    free(sts);
    free(auth);
}

/* "Example: Get Bucket (List Objects)": two parameters, given here in the
 * opposite order to check that they are sorted. */
static void test_s3_list_objects(void **state)
{
    const dip_sigv4_header_t h[] = {
        {"x-amz-content-sha256", DIP_SIGV4_EMPTY_SHA256}};
    dip_sigv4_request_t req = {"GET",
                               S3_HOST,
                               "/",
                               "prefix=J&max-keys=2",
                               h,
                               1,
                               DIP_SIGV4_EMPTY_SHA256,
                               T2013,
                               NULL};
    char *canon = dip_sigv4_canonical_request(&req, NULL);
    char *sts = dip_sigv4_string_to_sign(
        "20130524T000000Z", "20130524/us-east-1/s3/aws4_request", canon);
    char sig[65], sig2[65];
    char *auth = dip_sigv4_authorization(&req, &s3_docs, sig);
    char *auth2;
    (void)state;
    assert_non_null(strstr(canon, "GET\n/\nmax-keys=2&prefix=J\nhost:"));
    assert_string_equal(
        strrchr(sts, '\n') + 1,
        "df57d21db20da04d7fa30298dd4488ba3a2b47ca3a489c74750e0f1e7df1b9b7");
    assert_string_equal(
        sig,
        "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
    req.query = "max-keys=2&prefix=J";
    auth2 = dip_sigv4_authorization(&req, &s3_docs, sig2);
    assert_string_equal(sig, sig2);
    free(canon);
    free(sts);
    free(auth);
    free(auth2);
}

/* aws-sig-v4-test-suite get-vanilla, and get-vanilla-query-order-key-case. */
static void test_suite_get_vanilla(void **state)
{
    dip_sigv4_request_t req = {
        "GET", "example.amazonaws.com", "/",   NULL, NULL,
        0,     DIP_SIGV4_EMPTY_SHA256,  T2015, NULL};
    char *canon = dip_sigv4_canonical_request(&req, NULL);
    char *sts = dip_sigv4_string_to_sign(
        "20150830T123600Z", "20150830/us-east-1/service/aws4_request", canon);
    char *auth = dip_sigv4_authorization(&req, &suite, NULL);
    char sig[65];
    (void)state;
    assert_string_equal(canon, "GET\n/\n\n"
                               "host:example.amazonaws.com\n"
                               "x-amz-date:20150830T123600Z\n\n"
                               "host;x-amz-date\n" DIP_SIGV4_EMPTY_SHA256);
    assert_string_equal(
        sts,
        "AWS4-HMAC-SHA256\n"
        "20150830T123600Z\n"
        "20150830/us-east-1/service/aws4_request\n"
        "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63");
    assert_string_equal(
        auth,
        "AWS4-HMAC-SHA256 "
        "Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        "SignedHeaders=host;x-amz-date, "
        "Signature="
        "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
    free(canon);
    free(sts);
    free(auth);

    req.query = "Param2=value2&Param1=value1";
    auth = dip_sigv4_authorization(&req, &suite, sig);
    assert_string_equal(
        sig,
        "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
    free(auth);
}

/* aws-sig-v4-test-suite post-sts-token/post-sts-header-before: temporary
 * credentials' session token is part of the canonical request as
 * x-amz-security-token (the suite's own example token, request, string to
 * sign and signature). Listing the header as well is refused. */
#define SUITE_TOKEN                                                            \
    "AQoDYXdzEPT//////////"                                                    \
    "wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPf" \
    "IeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZam" \
    "pKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+"     \
    "xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKT" \
    "r4rvx3iSIlTJabIQwj2ICCR/oLxBA=="
static void test_suite_post_sts_header_before(void **state)
{
    const dip_sigv4_header_t twice[] = {{"X-Amz-Security-Token", "t"}};
    dip_sigv4_request_t req = {
        "POST", "example.amazonaws.com", "/",   NULL,       NULL,
        0,      DIP_SIGV4_EMPTY_SHA256,  T2015, SUITE_TOKEN};
    char *signed_headers = NULL;
    char *canon = dip_sigv4_canonical_request(&req, &signed_headers);
    char *sts = dip_sigv4_string_to_sign(
        "20150830T123600Z", "20150830/us-east-1/service/aws4_request", canon);
    char *auth = dip_sigv4_authorization(&req, &suite, NULL);
    (void)state;
    assert_string_equal(
        canon, "POST\n/\n\n"
               "host:example.amazonaws.com\n"
               "x-amz-date:20150830T123600Z\n"
               "x-amz-security-token:" SUITE_TOKEN "\n\n"
               "host;x-amz-date;x-amz-security-token\n" DIP_SIGV4_EMPTY_SHA256);
    assert_string_equal(signed_headers, "host;x-amz-date;x-amz-security-token");
    assert_string_equal(
        sts,
        "AWS4-HMAC-SHA256\n"
        "20150830T123600Z\n"
        "20150830/us-east-1/service/aws4_request\n"
        "c237e1b440d4c63c32ca95b5b99481081cb7b13c7e40434868e71567c1a882f6");
    assert_string_equal(
        auth,
        "AWS4-HMAC-SHA256 "
        "Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        "SignedHeaders=host;x-amz-date;x-amz-security-token, "
        "Signature="
        "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead");
    free(canon);
    free(signed_headers);
    free(sts);
    free(auth);

    req.headers = twice;
    req.nheaders = 1;
    assert_null(dip_sigv4_canonical_request(&req, NULL));
    assert_null(dip_sigv4_authorization(&req, &suite, NULL));
}

/* Header values are trimmed and inner spaces collapsed before signing; names
 * are case-insensitive, so a name listed twice is refused. */
static void test_header_canonical_form(void **state)
{
    const dip_sigv4_header_t h[] = {{"X-Amz-Meta-Note", "  a   b  c "}};
    const dip_sigv4_header_t dup[] = {{"Range", "bytes=0-1"},
                                      {"range", "bytes=2-3"}};
    const dip_sigv4_header_t host[] = {{"Host", "evil.example"}};
    dip_sigv4_request_t req = {"GET", "h", "/k", NULL, h, 1, "UNSIGNED-PAYLOAD",
                               T2013, NULL};
    char *canon = dip_sigv4_canonical_request(&req, NULL);
    (void)state;
    assert_non_null(strstr(canon, "\nx-amz-meta-note:a b c\n"));
    assert_non_null(strstr(canon, "\nUNSIGNED-PAYLOAD"));
    free(canon);
    req.headers = dup;
    req.nheaders = 2;
    assert_null(dip_sigv4_canonical_request(&req, NULL));
    req.headers = host;
    req.nheaders = 1;
    assert_null(dip_sigv4_authorization(&req, &s3_docs, NULL));
}

static void check_encode(const char *in, int keep_slash, const char *want)
{
    char *got = dip_sigv4_uri_encode(in, strlen(in), keep_slash);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static void test_uri_encode(void **state)
{
    (void)state;
    check_encode("imports/a b.csv", 1, "imports/a%20b.csv");
    check_encode("a+b%c&d=e~f", 1, "a%2Bb%25c%26d%3De~f");
    check_encode("AZaz09-._~", 0, "AZaz09-._~");
    check_encode("x/y", 0, "x%2Fy");
    check_encode("deals/m\xc3\xbcller.csv", 1, "deals/m%C3%BCller.csv");
    check_encode("\xe6\x97\xa5\xe6\x9c\xac/data.csv", 1,
                 "%E6%97%A5%E6%9C%AC/data.csv");
    check_encode("!*'();:@$,?#[]", 1,
                 "%21%2A%27%28%29%3B%3A%40%24%2C%3F%23"
                 "%5B%5D");
    check_encode("", 1, "");
    {
        /* Length-bounded: an embedded NUL is encoded, not a terminator. */
        char *got = dip_sigv4_uri_encode("a\0b", 3, 1);
        assert_string_equal(got, "a%00b");
        free(got);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signing_key),
        cmocka_unit_test(test_amz_date),
        cmocka_unit_test(test_s3_get_object),
        cmocka_unit_test(test_s3_put_object),
        cmocka_unit_test(test_s3_get_bucket_lifecycle),
        cmocka_unit_test(test_s3_list_objects),
        cmocka_unit_test(test_suite_get_vanilla),
        cmocka_unit_test(test_suite_post_sts_header_before),
        cmocka_unit_test(test_header_canonical_form),
        cmocka_unit_test(test_uri_encode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
