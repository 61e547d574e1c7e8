/*
 * Tests dip_jwt: the token verifies with the secret, carries the seed's
 * claims and a one-hour expiry, and is re-signed before it runs out.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include <jwt.h>

#include "dip_jwt.h"

#define SECRET "test-secret-0123456789"

static void test_claims_and_signature(void **state)
{
    dip_jwt_t *j = dip_jwt_new(SECRET, "64b000000000000000000001",
                               "64b000000000000000000002",
                               "64b000000000000000000003", NULL);
    jwt_t *dec = NULL;
    const char *tok;
    (void)state;
    assert_non_null(j);
    tok = dip_jwt_token(j, 1000000);
    assert_non_null(tok);
    assert_int_equal(jwt_decode(&dec, tok, (const unsigned char *)SECRET,
                                (int)strlen(SECRET)),
                     0);
    assert_int_equal(jwt_get_alg(dec), JWT_ALG_HS256);
    assert_string_equal(jwt_get_grant(dec, "type"), "access_token");
    assert_string_equal(jwt_get_grant(dec, "uid"), "64b000000000000000000001");
    assert_string_equal(jwt_get_grant(dec, "account_id"),
                        "64b000000000000000000002");
    assert_string_equal(jwt_get_grant(dec, "parent_account"),
                        "64b000000000000000000003");
    assert_null(jwt_get_grant(dec, "client_id"));
    assert_string_equal(jwt_get_grant(dec, "scope"), DIP_JWT_SCOPE);
    assert_int_equal(jwt_get_grant_int(dec, "exp"), 1000000 + 3600);
    jwt_free(dec);
    dec = NULL;
    /* A wrong secret does not verify. */
    assert_int_not_equal(
        jwt_decode(&dec, tok, (const unsigned char *)"nope", 4), 0);
    jwt_free(dec);
    dip_jwt_destroy(&j);
    assert_null(j);
}

static void test_resigned_before_expiry(void **state)
{
    dip_jwt_t *j = dip_jwt_new(SECRET, "u", "a", NULL, NULL);
    char first[2048];
    (void)state;
    snprintf(first, sizeof(first), "%s", dip_jwt_token(j, 5000));
    assert_int_equal(dip_jwt_expires_at(j), 5000 + 3600);
    /* Half-way through its life the same token is kept. */
    assert_string_equal(dip_jwt_token(j, 5000 + 1800), first);
    /* With less than a quarter left, a new one is signed. */
    assert_string_not_equal(dip_jwt_token(j, 5000 + 2800), first);
    assert_int_equal(dip_jwt_expires_at(j), 5000 + 2800 + 3600);
    dip_jwt_destroy(&j);
}

static void test_refuses_missing_secret(void **state)
{
    (void)state;
    assert_null(dip_jwt_new("", "u", "a", NULL, NULL));
    assert_null(dip_jwt_new(NULL, "u", "a", NULL, NULL));
    dip_jwt_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_claims_and_signature),
        cmocka_unit_test(test_resigned_before_expiry),
        cmocka_unit_test(test_refuses_missing_secret),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
