/*
 * dip_jwt: signs an import's access token with libjwt (see dip_jwt.h).
 */
#include "dip_jwt.h"

#include <string.h>

#include <jwt.h>

static int grant(jwt_t *jwt, const char *name, const char *value)
{
    return value && *value ? jwt_add_grant(jwt, name, value) : 0;
}

char *dip_jwt_sign(const char *secret, const char *uid, const char *account_id,
                   const char *parent_account, const char *client_id,
                   const char *jti, time_t now)
{
    jwt_t *jwt = NULL;
    char *out = NULL;
    if (secret == NULL || *secret == '\0' || uid == NULL || *uid == '\0' ||
        account_id == NULL || *account_id == '\0')
        return NULL;
    if (jwt_new(&jwt) != 0)
        return NULL;
    if (jwt_add_grant(jwt, "type", "access_token") ||
        jwt_add_grant(jwt, "uid", uid) ||
        jwt_add_grant(jwt, "account_id", account_id) ||
        grant(jwt, "parent_account", parent_account) ||
        grant(jwt, "client_id", client_id) ||
        jwt_add_grant(jwt, "scope", DIP_JWT_SCOPE) || grant(jwt, "jti", jti) ||
        jwt_add_grant_int(jwt, "iat", (long)now) ||
        jwt_add_grant_int(jwt, "exp", (long)now + DIP_JWT_TTL_S))
        goto cleanup;
    if (jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)secret,
                    (int)strlen(secret)) != 0)
        goto cleanup;
    out = jwt_encode_str(jwt);
cleanup:
    jwt_free(jwt);
    return out;
}
