/*
 * dip_jwt: an import's access token, the credential of its completion
 * event: HS256 over APP_SECRET with the claims the CRM's API expects (type,
 * uid, account_id, parent_account, client_id, scope) as the original
 * service signed them, a one-hour expiry, and the event's id as `jti`.
 * Signed afresh for each delivery attempt, so a token is never older than
 * the attempt that carries it. Workers sign nothing and never hold
 * APP_SECRET. The secret is never logged.
 */
#ifndef DIP_JWT_H
#define DIP_JWT_H

#include <time.h>

#define DIP_JWT_TTL_S 3600
#define DIP_JWT_SCOPE                                                          \
    "contacts communications contacts.external contacts.read contacts.create"

/* A token issued at now: uid and account_id required; parent_account,
 * client_id and jti left out when NULL or "". Returns a malloc'd string the
 * caller frees (it is a credential: clear it first), or NULL when the
 * secret or a required id is missing or signing fails. */
char *dip_jwt_sign(const char *secret, const char *uid, const char *account_id,
                   const char *parent_account, const char *client_id,
                   const char *jti, time_t now);

#endif
