/*
 * dip_s3_token: a fixed token, or a file's, cached with the stat() that
 * identifies the version read.
 */
#include "dip_s3_token.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct dip_s3_token {
    char *token;    /* the token, or NULL */
    char *file;     /* the file it comes from, or NULL for a fixed one */
    struct stat st; /* of the file when token was read from it */
};

static void wipe_free(char *s)
{
    if (s) {
        memset(s, 0, strlen(s));
        free(s);
    }
}

dip_s3_token_t *dip_s3_token_new(const char *token, const char *file)
{
    dip_s3_token_t *self = calloc(1, sizeof(*self));
    if (self == NULL)
        return NULL;
    if ((token && *token && (self->token = strdup(token)) == NULL) ||
        (file && *file && (self->file = strdup(file)) == NULL))
        dip_s3_token_destroy(&self);
    return self;
}

void dip_s3_token_destroy(dip_s3_token_t **self_p)
{
    dip_s3_token_t *self;
    if (self_p == NULL || *self_p == NULL)
        return;
    self = *self_p;
    wipe_free(self->token);
    free(self->file);
    free(self);
    *self_p = NULL;
}

static int same_version(const struct stat *a, const struct stat *b)
{
    return a->st_ino == b->st_ino && a->st_dev == b->st_dev &&
           a->st_size == b->st_size && a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
           a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Reads the file once; the token when it holds one line of text. */
static void read_file(dip_s3_token_t *self)
{
    char buf[DIP_S3_TOKEN_MAX + 1];
    struct stat st;
    ssize_t n = -1;
    int fd = open(self->file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    /* The stat of the version read, not of the name: a rename between the
     * two would otherwise hide the next change. */
    if (fstat(fd, &st) == 0)
        n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' ||
                     buf[n - 1] == ' ' || buf[n - 1] == '\t'))
        n--;
    if (n > 0 && memchr(buf, '\n', (size_t)n) == NULL &&
        memchr(buf, '\0', (size_t)n) == NULL) {
        char *t = strndup(buf, (size_t)n);
        if (t) {
            wipe_free(self->token);
            self->token = t;
            self->st = st;
        }
    }
    memset(buf, 0, sizeof(buf));
}

const char *dip_s3_token_get(dip_s3_token_t *self, int *missing)
{
    struct stat st;
    *missing = 0;
    if (self->file) {
        if (self->token == NULL || stat(self->file, &st) != 0 ||
            !same_version(&st, &self->st))
            read_file(self);
        *missing = self->token == NULL;
    }
    return self->token;
}
