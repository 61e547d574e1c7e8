/*
 * dip_secrets: the secrets channel between a supervisor and its workers, as
 * KEY=VALUE lines over a pipe. Every buffer that held a secret is zeroed
 * before it is freed, so a secret lives only in the config that uses it.
 */
#include "dip_secrets.h"
#include <fcntl.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

typedef struct {
    const char *name;
    size_t off; /* of a char * field of dip_config_t */
    int send;   /* 1: the supervisor hands it to workers */
} secret_t;

static const secret_t secrets[] = {
    {"DEALIMPORT_MONGODB_URI", offsetof(dip_config_t, mongodb_uri), 1},
    {"DEALIMPORT_S3_SECRET_KEY", offsetof(dip_config_t, s3_secret_key), 1},
    {"DEALIMPORT_S3_SESSION_TOKEN", offsetof(dip_config_t, s3_session_token),
     1},
    {"APP_SECRET", offsetof(dip_config_t, app_secret), 0},
};
#define NSECRETS (sizeof(secrets) / sizeof(secrets[0]))

static int is_hex_secret(const char *s, size_t len)
{
    if (len != DIP_CONFIG_SPAWN_SECRET_LEN)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

int dip_secrets_spawn_secret(char *hex)
{
    static const char digits[] = "0123456789abcdef";
    unsigned char raw[DIP_CONFIG_SPAWN_SECRET_LEN / 2];
    size_t got = 0;
    while (got < sizeof(raw)) {
        ssize_t n = getrandom(raw + got, sizeof(raw) - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        got += (size_t)n;
    }
    for (size_t i = 0; i < sizeof(raw); i++) {
        hex[2 * i] = digits[raw[i] >> 4];
        hex[2 * i + 1] = digits[raw[i] & 15];
    }
    hex[DIP_CONFIG_SPAWN_SECRET_LEN] = '\0';
    memset(raw, 0, sizeof(raw));
    return 0;
}

void dip_secrets_wipe(char *text)
{
    if (text == NULL)
        return;
    memset(text, 0, strlen(text));
    free(text);
}

/* Appends "name=value\n" to buf (cap bytes, *len used); -1 when it does not
 * fit or the value cannot be one line. */
static int append(char *buf, size_t cap, size_t *len, const char *name,
                  const char *value, char *err, size_t errlen)
{
    size_t nl = strlen(name), vl = strlen(value);
    if (strpbrk(value, "\r\n") != NULL) {
        snprintf(err, errlen,
                 "%s holds a line break: it cannot be handed to a worker",
                 name);
        return -1;
    }
    if (*len + nl + vl + 2 >= cap) {
        snprintf(err, errlen,
                 "the secrets for a worker exceed %d bytes (%s is too long)",
                 DIP_SECRETS_MAX, name);
        return -1;
    }
    memcpy(buf + *len, name, nl);
    buf[*len + nl] = '=';
    memcpy(buf + *len + nl + 1, value, vl);
    buf[*len + nl + 1 + vl] = '\n';
    *len += nl + vl + 2;
    buf[*len] = '\0';
    return 0;
}

char *dip_secrets_format(const dip_config_t *cfg, const char *spawn_secret,
                         char *err, size_t errlen)
{
    char *buf = malloc(DIP_SECRETS_MAX + 1);
    size_t len = 0;
    if (buf == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    buf[0] = '\0';
    for (size_t i = 0; i < NSECRETS; i++) {
        const char *v = *(char *const *)((const char *)cfg + secrets[i].off);
        if (!secrets[i].send || v == NULL || *v == '\0')
            continue;
        if (append(buf, DIP_SECRETS_MAX + 1, &len, secrets[i].name, v, err,
                   errlen) < 0)
            goto fail;
    }
    if (spawn_secret &&
        append(buf, DIP_SECRETS_MAX + 1, &len, DIP_SECRETS_SPAWN_KEY,
               spawn_secret, err, errlen) < 0)
        goto fail;
    return buf;
fail:
    memset(buf, 0, DIP_SECRETS_MAX + 1);
    free(buf);
    return NULL;
}

/* Sets one "KEY=VALUE" line (NUL-terminated, no line break) into cfg. */
static int set_line(dip_config_t *cfg, char *line, char *err, size_t errlen)
{
    char *eq = strchr(line, '='), *value;
    if (eq == NULL) {
        snprintf(err, errlen, "--secrets-fd: a line without '='");
        return -1;
    }
    *eq = '\0';
    value = eq + 1;
    if (strcmp(line, DIP_SECRETS_SPAWN_KEY) == 0) {
        if (!is_hex_secret(value, strlen(value))) {
            snprintf(err, errlen,
                     "--secrets-fd: %s is not %d lowercase hex digits",
                     DIP_SECRETS_SPAWN_KEY, DIP_CONFIG_SPAWN_SECRET_LEN);
            return -1;
        }
        memcpy(cfg->spawn_secret, value, DIP_CONFIG_SPAWN_SECRET_LEN + 1);
        return 0;
    }
    for (size_t i = 0; i < NSECRETS; i++) {
        char **field;
        if (strcmp(line, secrets[i].name) != 0)
            continue;
        field = (char **)((char *)cfg + secrets[i].off);
        if (*field) {
            memset(*field, 0, strlen(*field));
            free(*field);
        }
        *field = strdup(value);
        if (*field == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        return 0;
    }
    /* The name of a key is no secret; it may be cut, never its value. */
    snprintf(err, errlen, "--secrets-fd: unknown key '%.64s'", line);
    return -1;
}

int dip_secrets_read(dip_config_t *cfg, int fd, char *err, size_t errlen)
{
    char *buf = malloc(DIP_SECRETS_MAX + 2), *line, *nl;
    size_t len = 0;
    int rc = -1;
    if (buf == NULL) {
        snprintf(err, errlen, "out of memory");
        goto cleanup;
    }
    for (;;) {
        ssize_t n = read(fd, buf + len, DIP_SECRETS_MAX + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, errlen, "--secrets-fd: cannot read descriptor %d: %s",
                     fd, strerror(errno));
            goto cleanup;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > DIP_SECRETS_MAX) {
            snprintf(err, errlen, "--secrets-fd: more than %d bytes",
                     DIP_SECRETS_MAX);
            goto cleanup;
        }
    }
    buf[len] = '\0';
    if (memchr(buf, '\0', len) != NULL) {
        snprintf(err, errlen, "--secrets-fd: a NUL byte in the text");
        goto cleanup;
    }
    for (line = buf; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        if (nl == NULL) {
            snprintf(err, errlen, "--secrets-fd: the last line is cut");
            goto cleanup;
        }
        *nl = '\0';
        if (*line != '\0' && set_line(cfg, line, err, errlen) < 0)
            goto cleanup;
    }
    rc = 0;
cleanup:
    if (buf) {
        memset(buf, 0, DIP_SECRETS_MAX + 2);
        free(buf);
    }
    close(fd);
    return rc;
}

int dip_secrets_pipe(const dip_config_t *cfg, const char *spawn_secret,
                     char *err, size_t errlen)
{
    char *text = dip_secrets_format(cfg, spawn_secret, err, errlen);
    int p[2] = {-1, -1}, rc = -1;
    size_t len, done = 0;
    if (text == NULL)
        return -1;
    len = strlen(text);
    if (pipe2(p, O_CLOEXEC) < 0) {
        snprintf(err, errlen, "cannot make the secrets pipe: %s",
                 strerror(errno));
        goto cleanup;
    }
    /* DIP_SECRETS_MAX is below a pipe's capacity: this never blocks. */
    while (done < len) {
        ssize_t n = write(p[1], text + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, errlen, "cannot write the secrets pipe: %s",
                     strerror(errno));
            goto cleanup;
        }
        done += (size_t)n;
    }
    rc = p[0];
    p[0] = -1;
cleanup:
    if (p[0] >= 0)
        close(p[0]);
    if (p[1] >= 0)
        close(p[1]);
    dip_secrets_wipe(text);
    return rc;
}
