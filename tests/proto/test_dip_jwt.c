/*
 * Tests dip_jwt: the token verifies with the secret (and not with another),
 * carries the seed's claims, the jti and a one-hour expiry; ids that are
 * absent are left out; a missing secret or id signs nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <jwt.h>

#include "dip_jwt.h"

#define SECRET "test-secret-0123456789"

static void test_claims_and_signature(void **state)
{
    char *tok = dip_jwt_sign(
        SECRET, "64b000000000000000000001", "64b000000000000000000002",
        "64b000000000000000000003", NULL, "64b0000000000000000000ee", 1000000);
    jwt_t *dec = NULL;
    (void)state;
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
    assert_string_equal(jwt_get_grant(dec, "jti"), "64b0000000000000000000ee");
    assert_int_equal(jwt_get_grant_int(dec, "iat"), 1000000);
    assert_int_equal(jwt_get_grant_int(dec, "exp"), 1000000 + 3600);
    jwt_free(dec);
    dec = NULL;
    /* A wrong secret does not verify. */
    assert_int_not_equal(
        jwt_decode(&dec, tok, (const unsigned char *)"nope", 4), 0);
    jwt_free(dec);
    free(tok);
}

static void test_each_signing_is_fresh(void **state)
{
    char *a = dip_jwt_sign(SECRET, "u", "a", "", "", NULL, 5000);
    char *b = dip_jwt_sign(SECRET, "u", "a", NULL, NULL, NULL, 5001);
    jwt_t *dec = NULL;
    (void)state;
    assert_non_null(a);
    assert_non_null(b);
    assert_string_not_equal(a, b);
    assert_int_equal(
        jwt_decode(&dec, b, (const unsigned char *)SECRET, (int)strlen(SECRET)),
        0);
    assert_null(jwt_get_grant(dec, "parent_account"));
    assert_null(jwt_get_grant(dec, "jti"));
    assert_int_equal(jwt_get_grant_int(dec, "exp"), 5001 + 3600);
    jwt_free(dec);
    free(a);
    free(b);
}

static void test_refusals(void **state)
{
    (void)state;
    assert_null(dip_jwt_sign("", "u", "a", NULL, NULL, NULL, 1));
    assert_null(dip_jwt_sign(NULL, "u", "a", NULL, NULL, NULL, 1));
    assert_null(dip_jwt_sign(SECRET, "", "a", NULL, NULL, NULL, 1));
    assert_null(dip_jwt_sign(SECRET, "u", NULL, NULL, NULL, NULL, 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_claims_and_signature),
        cmocka_unit_test(test_each_signing_is_fresh),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
