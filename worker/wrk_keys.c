/*
 * wrk_keys: open addressing over 64-bit FNV-1a hashes, linear probing,
 * grown at half full; keys back to back in an arena that only grows. A key
 * over WRK_KEYS_WHOLE bytes is kept as its SHA-256: its slot holds the
 * key's own length, so it is compared only with keys of that length, as
 * digests; a key of WRK_KEYS_WHOLE bytes or fewer is compared as itself.
 */
#include "wrk_keys.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#define DIGEST_LEN 32

typedef struct slot {
    uint64_t hash;
    int64_t value; /* -1: empty */
    size_t off, len;
} slot_t;

struct wrk_keys {
    slot_t *slots;
    size_t cap, n; /* cap: a power of two */
    char *arena;
    size_t used, arena_cap;
};

static uint64_t fnv(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

static int grow(wrk_keys_t *self)
{
    size_t cap = self->cap ? self->cap * 2 : 1024;
    slot_t *s = malloc(cap * sizeof(*s));
    if (s == NULL)
        return -1;
    for (size_t i = 0; i < cap; i++)
        s[i].value = -1;
    for (size_t i = 0; i < self->cap; i++) {
        size_t j;
        if (self->slots[i].value < 0)
            continue;
        for (j = self->slots[i].hash & (cap - 1); s[j].value >= 0;
             j = (j + 1) & (cap - 1))
            ;
        s[j] = self->slots[i];
    }
    free(self->slots);
    self->slots = s;
    self->cap = cap;
    return 0;
}

wrk_keys_t *wrk_keys_new(void)
{
    wrk_keys_t *self = calloc(1, sizeof(*self));
    if (self != NULL && grow(self) < 0) {
        free(self);
        return NULL;
    }
    return self;
}

void wrk_keys_destroy(wrk_keys_t **self_p)
{
    if (self_p == NULL || *self_p == NULL)
        return;
    free((*self_p)->slots);
    free((*self_p)->arena);
    free(*self_p);
    *self_p = NULL;
}

void wrk_keys_clear(wrk_keys_t *self)
{
    for (size_t i = 0; i < self->cap; i++)
        self->slots[i].value = -1;
    self->n = 0;
    self->used = 0;
}

/* What is kept of key: the key itself, or its digest in buf. *kept its
 * length. NULL when the digest cannot be made (out of memory). */
static const char *kept(const char *key, size_t len,
                        unsigned char buf[DIGEST_LEN], size_t *kept_len)
{
    unsigned int n = 0;
    if (len <= WRK_KEYS_WHOLE) {
        *kept_len = len;
        return key;
    }
    if (EVP_Digest(key, len, buf, &n, EVP_sha256(), NULL) != 1 ||
        n != DIGEST_LEN)
        return NULL;
    *kept_len = DIGEST_LEN;
    return (const char *)buf;
}

/* The slot of a key of length len kept as k (k_len bytes), or the empty
 * slot where it would go. */
static slot_t *find(const wrk_keys_t *self, const char *k, size_t k_len,
                    size_t len, uint64_t h)
{
    size_t j = h & (self->cap - 1);
    for (;; j = (j + 1) & (self->cap - 1)) {
        slot_t *s = &self->slots[j];
        if (s->value < 0 || (s->hash == h && s->len == len &&
                             memcmp(self->arena + s->off, k, k_len) == 0))
            return s;
    }
}

int64_t wrk_keys_get(const wrk_keys_t *self, const char *key, size_t len)
{
    unsigned char buf[DIGEST_LEN];
    size_t k_len;
    const char *k = kept(key, len, buf, &k_len);
    if (k == NULL)
        return -2;
    return find(self, k, k_len, len, fnv(key, len))->value;
}

size_t wrk_keys_bytes(const wrk_keys_t *self)
{
    return self->used + self->cap * sizeof(slot_t);
}

int64_t wrk_keys_put(wrk_keys_t *self, const char *key, size_t len,
                     int64_t value)
{
    unsigned char buf[DIGEST_LEN];
    uint64_t h = fnv(key, len);
    size_t k_len;
    const char *k = kept(key, len, buf, &k_len);
    slot_t *s;
    if (k == NULL)
        return -1;
    s = find(self, k, k_len, len, h);
    if (s->value >= 0) {
        if (value < s->value)
            s->value = value;
        return s->value;
    }
    if (self->used + k_len > self->arena_cap) {
        size_t cap = self->arena_cap ? self->arena_cap : 65536;
        char *a;
        while (cap < self->used + k_len)
            cap *= 2;
        a = realloc(self->arena, cap);
        if (a == NULL)
            return -1;
        self->arena = a;
        self->arena_cap = cap;
    }
    if ((self->n + 1) * 2 > self->cap) {
        if (grow(self) < 0)
            return -1;
        s = find(self, k, k_len, len, h);
    }
    if (k_len > 0)
        memcpy(self->arena + self->used, k, k_len);
    s->hash = h;
    s->value = value;
    s->off = self->used;
    s->len = len;
    self->used += k_len;
    self->n++;
    return value;
}
