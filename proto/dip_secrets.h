/*
 * dip_secrets: how the supervisor hands a worker its secrets without putting
 * them in the worker's environment, where /proc/PID/environ would show them
 * for the worker's whole life. The supervisor writes KEY=VALUE lines into a
 * pipe before it forks and closes its end; the worker gets the read end as a
 * descriptor named by --secrets-fd, reads it to EOF into its dip_config_t
 * before anything else, and closes it. The lines carry only what a worker
 * needs: the MongoDB URI (it may hold a password), the S3 secret key and
 * session token, and a
 * random secret made for this one spawn that the worker's hello carries back
 * so the supervisor knows it speaks to the process it started.
 */
#ifndef DIP_SECRETS_H
#define DIP_SECRETS_H

#include <stddef.h>

#include "dip_config.h"

/* Keys a secrets text may hold. APP_SECRET is accepted from the channel too,
 * though the supervisor sends it to no worker (no worker signs anything). */
#define DIP_SECRETS_SPAWN_KEY "DEALIMPORT_SPAWN_SECRET"

/* The most a secrets text may hold: less than a pipe's default capacity, so
 * the supervisor can write it whole before fork() without blocking. */
#define DIP_SECRETS_MAX 60000

/* Fills hex (DIP_CONFIG_SPAWN_SECRET_LEN + 1 bytes) with a fresh random
 * secret of 64 lowercase hex digits from the kernel's generator. 0 or
 * -errno. */
int dip_secrets_spawn_secret(char *hex);

/* The text a worker's secrets pipe carries: the secret settings of cfg that
 * are set, and spawn_secret (64 hex digits, or NULL for none). Returns a
 * malloc'd NUL-terminated text the caller wipes (dip_secrets_wipe) and frees,
 * or NULL with err filled: a value holding a newline or too long a text. */
char *dip_secrets_format(const dip_config_t *cfg, const char *spawn_secret,
                         char *err, size_t errlen);

/* Zeroes and frees a text from dip_secrets_format. Accepts NULL. */
void dip_secrets_wipe(char *text);

/* A pipe whose read end holds a child's secrets (dip_secrets_format, with
 * spawn_secret, may be NULL), the write end already closed: the child reads
 * it to EOF. Returns the read end (O_CLOEXEC), or -1 with err filled. */
int dip_secrets_pipe(const dip_config_t *cfg, const char *spawn_secret,
                     char *err, size_t errlen);

/* Reads fd to EOF (at most DIP_SECRETS_MAX bytes) and closes it, whatever
 * happens. Each line KEY=VALUE sets that secret in cfg (the spawn secret into
 * cfg->spawn_secret). Returns 0, or -1 with one line in err: an unknown key,
 * a line without '=', a bad spawn secret, too much text, a read error. What
 * was read is wiped from memory before returning. */
int dip_secrets_read(dip_config_t *cfg, int fd, char *err, size_t errlen);

#endif
