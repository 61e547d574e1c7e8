/*
 * dip_jwt: signs the import's token with libjwt and re-signs it ahead of
 * expiry. The seed signed once per import, so imports longer than an hour
 * failed when the token lapsed; here the token is checked before each use.
 */
#include "dip_jwt.h"

#include <stdlib.h>
#include <string.h>

#include <jwt.h>

struct dip_jwt {
    char *secret;
    char *uid, *account_id, *parent_account, *client_id;
    char *token;
    time_t expires_at;
};

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

dip_jwt_t *dip_jwt_new(const char *secret, const char *uid,
                       const char *account_id, const char *parent_account,
                       const char *client_id)
{
    dip_jwt_t *self = NULL;
    if (secret == NULL || *secret == '\0' || uid == NULL || account_id == NULL)
        return NULL;
    self = calloc(1, sizeof(*self));
    if (self == NULL)
        return NULL;
    self->secret = strdup(secret);
    self->uid = strdup(uid);
    self->account_id = strdup(account_id);
    self->parent_account = dup_or_null(parent_account);
    self->client_id = dup_or_null(client_id);
    if (!self->secret || !self->uid || !self->account_id ||
        (parent_account && !self->parent_account) ||
        (client_id && !self->client_id))
        dip_jwt_destroy(&self);
    return self;
}

void dip_jwt_destroy(dip_jwt_t **self_p)
{
    dip_jwt_t *self;
    if (self_p == NULL || *self_p == NULL)
        return;
    self = *self_p;
    if (self->secret) {
        memset(self->secret, 0, strlen(self->secret));
        free(self->secret);
    }
    free(self->uid);
    free(self->account_id);
    free(self->parent_account);
    free(self->client_id);
    if (self->token)
        free(self->token);
    free(self);
    *self_p = NULL;
}

static int sign(dip_jwt_t *self, time_t now)
{
    jwt_t *jwt = NULL;
    char *out = NULL;
    int rc = -1;

    if (jwt_new(&jwt) != 0)
        goto cleanup;
    if (jwt_add_grant(jwt, "type", "access_token") ||
        jwt_add_grant(jwt, "uid", self->uid) ||
        jwt_add_grant(jwt, "account_id", self->account_id) ||
        (self->parent_account &&
         jwt_add_grant(jwt, "parent_account", self->parent_account)) ||
        (self->client_id && jwt_add_grant(jwt, "client_id", self->client_id)) ||
        jwt_add_grant(jwt, "scope", DIP_JWT_SCOPE) ||
        jwt_add_grant_int(jwt, "iat", (long)now) ||
        jwt_add_grant_int(jwt, "exp", (long)now + DIP_JWT_TTL_S))
        goto cleanup;
    if (jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)self->secret,
                    (int)strlen(self->secret)) != 0)
        goto cleanup;
    out = jwt_encode_str(jwt);
    if (out == NULL)
        goto cleanup;
    if (self->token)
        free(self->token);
    self->token = out;
    self->expires_at = now + DIP_JWT_TTL_S;
    rc = 0;
cleanup:
    jwt_free(jwt);
    return rc;
}

const char *dip_jwt_token(dip_jwt_t *self, time_t now)
{
    if (self->token == NULL || now >= self->expires_at - DIP_JWT_TTL_S / 4) {
        if (sign(self, now) < 0)
            return NULL;
    }
    return self->token;
}

time_t dip_jwt_expires_at(const dip_jwt_t *self)
{
    return self->expires_at;
}
