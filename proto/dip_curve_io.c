/*
 * dip_curve_io: reading, listing and writing Z85 CURVE keys. Files are read
 * a line at a time with a bounded buffer, so a wrong path (a log file, a
 * device) costs one failed parse, never memory; and only regular files are
 * read, opened without blocking, so a FIFO or a device in a key's place
 * cannot stall the supervisor's loop (the clients directory is read for
 * every TCP connection).
 */
#include "dip_curve_io.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zmq.h>

#define MAX_LINES 10000

/* Trims line in place; returns it, or NULL when it is empty or a comment. */
static char *key_line(char *line)
{
    char *e;
    while (*line == ' ' || *line == '\t')
        line++;
    e = line + strlen(line);
    while (e > line &&
           (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
        *--e = '\0';
    return (*line == '\0' || *line == '#') ? NULL : line;
}

static int valid_key(const char *s)
{
    uint8_t bin[32];
    return strlen(s) == DIP_CURVE_KEY_LEN && zmq_z85_decode(bin, s) != NULL;
}

/* A stream over the regular file at name (relative to dirfd), opened with
 * O_NONBLOCK so that a FIFO's open does not wait for a writer; NULL with
 * errno set (EINVAL for a file that is not regular). */
static FILE *open_regular(int dirfd, const char *name, int flags)
{
    int fd = openat(dirfd, name,
                    O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY | flags);
    struct stat st;
    FILE *f;
    if (fd < 0)
        return NULL;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        errno = EINVAL;
        return NULL;
    }
    f = fdopen(fd, "r");
    if (f == NULL) {
        int e = errno;
        close(fd);
        errno = e;
    }
    return f;
}

int dip_curve_read_key(const char *path, const char *what, char *z85, char *err,
                       size_t errlen)
{
    FILE *f = open_regular(AT_FDCWD, path, 0);
    char line[256], *k = NULL;
    int rc = -1;
    if (f == NULL) {
        snprintf(err, errlen, "cannot read %s from '%s': %s", what, path,
                 errno == EINVAL ? "not a regular file" : strerror(errno));
        return -1;
    }
    for (int n = 0; n < MAX_LINES && fgets(line, sizeof(line), f); n++)
        if ((k = key_line(line)) != NULL)
            break;
    if (k == NULL || !valid_key(k)) {
        snprintf(err, errlen,
                 "'%s' does not hold %s (one line of %d Z85 characters)", path,
                 what, DIP_CURVE_KEY_LEN);
        goto cleanup;
    }
    memcpy(z85, k, DIP_CURVE_KEY_LEN + 1);
    rc = 0;
cleanup:
    memset(line, 0, sizeof(line));
    fclose(f);
    return rc;
}

static int file_lists(int dirfd, const char *name, const char *z85)
{
    FILE *f = open_regular(dirfd, name, O_NOFOLLOW);
    char line[256];
    int found = 0;
    if (f == NULL)
        return 0;
    for (int n = 0; !found && n < MAX_LINES && fgets(line, sizeof(line), f);
         n++) {
        char *k = key_line(line);
        found = k && strcmp(k, z85) == 0;
    }
    fclose(f);
    return found;
}

int dip_curve_key_find(const char *dir, const char *z85, char *file, size_t len)
{
    DIR *d;
    struct dirent *e;
    int found = 0;
    if (dir == NULL || (d = opendir(dir)) == NULL)
        return -1;
    while (!found && (e = readdir(d)) != NULL)
        if (e->d_name[0] != '.' &&
            (found = file_lists(dirfd(d), e->d_name, z85)) != 0 && file && len)
            snprintf(file, len, "%s", e->d_name);
    closedir(d);
    return found;
}

int dip_curve_key_listed(const char *dir, const char *z85)
{
    return dip_curve_key_find(dir, z85, NULL, 0);
}

int dip_curve_keys_signature(const char *dir, unsigned long long *sig)
{
    DIR *d;
    struct dirent *e;
    unsigned long long h = 1469598103934665603ULL; /* FNV-1a */
    if (dir == NULL || (d = opendir(dir)) == NULL)
        return -1;
    while ((e = readdir(d)) != NULL) {
        struct stat st;
        unsigned long long v[4];
        unsigned long long eh = 1469598103934665603ULL;
        if (e->d_name[0] == '.')
            continue;
        for (const char *p = e->d_name; *p; p++)
            eh = (eh ^ (unsigned char)*p) * 1099511628211ULL;
        memset(v, 0, sizeof(v));
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
            v[0] = (unsigned long long)st.st_ino;
            v[1] = (unsigned long long)st.st_size;
            v[2] = (unsigned long long)st.st_mtim.tv_sec;
            v[3] = (unsigned long long)st.st_mtim.tv_nsec;
        }
        for (int i = 0; i < 4; i++)
            eh = (eh ^ v[i]) * 1099511628211ULL;
        /* the order of a listing is not fixed: combine commutatively */
        h += eh;
    }
    closedir(d);
    *sig = h;
    return 0;
}

static void keys_add(dip_curve_keys_t *keys, const char *z85, const char *file)
{
    if (keys->n == keys->cap) {
        size_t cap = keys->cap ? keys->cap * 2 : 16;
        void *p = realloc(keys->key, cap * sizeof(*keys->key));
        if (p == NULL)
            return;
        keys->key = p;
        keys->cap = cap;
    }
    memcpy(keys->key[keys->n].z85, z85, DIP_CURVE_KEY_LEN + 1);
    snprintf(keys->key[keys->n].file, sizeof(keys->key[keys->n].file), "%s",
             file);
    keys->n++;
}

int dip_curve_keys_load(const char *dir, dip_curve_keys_t *keys)
{
    DIR *d;
    struct dirent *e;
    keys->n = 0;
    if (dir == NULL || dip_curve_keys_signature(dir, &keys->sig) < 0 ||
        (d = opendir(dir)) == NULL)
        return -1;
    while ((e = readdir(d)) != NULL) {
        FILE *f;
        char line[256];
        if (e->d_name[0] == '.')
            continue;
        f = open_regular(dirfd(d), e->d_name, O_NOFOLLOW);
        if (f == NULL)
            continue;
        for (int n = 0; n < MAX_LINES && fgets(line, sizeof(line), f); n++) {
            char *k = key_line(line);
            if (k && valid_key(k))
                keys_add(keys, k, e->d_name);
        }
        fclose(f);
    }
    closedir(d);
    return 0;
}

int dip_curve_keys_find(const dip_curve_keys_t *keys, const char *z85,
                        char *file, size_t len)
{
    for (size_t i = 0; i < keys->n; i++)
        if (strcmp(keys->key[i].z85, z85) == 0) {
            if (file && len)
                snprintf(file, len, "%s", keys->key[i].file);
            return 1;
        }
    return 0;
}

int dip_curve_keys_has(const dip_curve_keys_t *keys, const char *z85)
{
    return dip_curve_keys_find(keys, z85, NULL, 0);
}

void dip_curve_keys_release(dip_curve_keys_t *keys)
{
    free(keys->key);
    memset(keys, 0, sizeof(*keys));
}

int dip_curve_public(const char *secret_z85, char *public_z85)
{
    if (!valid_key(secret_z85))
        return -1;
    return zmq_curve_public(public_z85, secret_z85) == 0 ? 0 : -1;
}

static int write_file(const char *path, const char *text, mode_t mode,
                      char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    size_t len = strlen(text);
    int rc = -1;
    if (fd < 0) {
        snprintf(err, errlen, "cannot create '%s': %s", path, strerror(errno));
        return -1;
    }
    if (write(fd, text, len) != (ssize_t)len) {
        snprintf(err, errlen, "cannot write '%s': %s", path, strerror(errno));
        unlink(path);
    } else {
        rc = 0;
    }
    close(fd);
    return rc;
}

int dip_curve_keygen(const char *prefix, char *public_z85, char *err,
                     size_t errlen)
{
    char secret[DIP_CURVE_KEY_LEN + 1], path[4096], text[160];
    int rc = -1;
    if (zmq_curve_keypair(public_z85, secret) != 0) {
        snprintf(err, errlen, "cannot make a key pair: %s",
                 zmq_strerror(zmq_errno()));
        return -1;
    }
    snprintf(path, sizeof(path), "%s.key", prefix);
    snprintf(text, sizeof(text),
             "# dealimport control plane: CURVE secret key. Keep it private.\n"
             "%s\n",
             secret);
    if (write_file(path, text, 0600, err, errlen) < 0)
        goto cleanup;
    snprintf(path, sizeof(path), "%s.pub", prefix);
    snprintf(text, sizeof(text),
             "# dealimport control plane: CURVE public key.\n%s\n", public_z85);
    if (write_file(path, text, 0644, err, errlen) < 0) {
        snprintf(path, sizeof(path), "%s.key", prefix);
        unlink(path);
        goto cleanup;
    }
    rc = 0;
cleanup:
    memset(secret, 0, sizeof(secret));
    memset(text, 0, sizeof(text));
    return rc;
}
