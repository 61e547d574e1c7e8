/*
 * dip_s3_token: the session token of temporary S3 credentials, from the
 * settings (DEALIMPORT_S3_SESSION_TOKEN, fixed) or from a file
 * (DEALIMPORT_S3_SESSION_TOKEN_FILE) that a credentials agent rotates. The
 * file is read again when it changed since the last read: another inode
 * (a new file renamed over it), size or modification time, looked at by
 * one stat() per request. A file that cannot be read, or holds nothing,
 * keeps the token read before: S3 then refuses an expired one with a
 * message that names it, which says more than a local read error. The
 * token is a secret: it is zeroed before it is freed.
 */
#ifndef DIP_S3_TOKEN_H
#define DIP_S3_TOKEN_H

#include <stddef.h>

typedef struct dip_s3_token dip_s3_token_t;

/* The most bytes a token file may hold (STS tokens are a few KB). */
#define DIP_S3_TOKEN_MAX 16383

/* token: a fixed token, or NULL; file: a token file, or NULL (at most one
 * of the two is set, as dip_config checks). Both NULL is valid: no token.
 * Copies both. NULL on allocation failure. */
dip_s3_token_t *dip_s3_token_new(const char *token, const char *file);
void dip_s3_token_destroy(dip_s3_token_t **self_p);

/* The token to sign with now, read again from the file when it changed;
 * NULL when there is none. *missing is set to 1 when a file is configured
 * but no token could ever be read from it (the request must not go
 * unsigned by it), else 0. The pointer stays valid until the next call. */
const char *dip_s3_token_get(dip_s3_token_t *self, int *missing);

#endif
