/*
 * dip_jwt: an import's access token. HS256 over APP_SECRET with the claims
 * the CRM's API expects (type, uid, account_id, parent_account, client_id,
 * scope) and a one-hour expiry, re-signed before it runs out so that an import
 * of any length always holds a valid token. The secret is never logged.
 * Kept in proto/ for the supervisor's use of the token: workers sign nothing
 * and never hold APP_SECRET.
 */
#ifndef DIP_JWT_H
#define DIP_JWT_H

#include <time.h>

typedef struct dip_jwt dip_jwt_t;

#define DIP_JWT_TTL_S 3600
#define DIP_JWT_SCOPE                                                          \
    "contacts communications contacts.external contacts.read contacts.create"

/* Copies the secret and the ids (24-hex strings; parent_account and client_id
 * may be NULL). Returns NULL on failure. */
dip_jwt_t *dip_jwt_new(const char *secret, const char *uid,
                       const char *account_id, const char *parent_account,
                       const char *client_id);
void dip_jwt_destroy(dip_jwt_t **self_p);

/* The current token, re-signed when less than a quarter of its life is left
 * at `now`. Owned by self, valid until the next call. NULL on failure. */
const char *dip_jwt_token(dip_jwt_t *self, time_t now);

/* When the current token expires (0 before the first dip_jwt_token call). */
time_t dip_jwt_expires_at(const dip_jwt_t *self);

#endif
