/*
 * wrk_keys: open addressing over 64-bit FNV-1a hashes, linear probing,
 * grown at half full; keys back to back in an arena that only grows.
 */
#include "wrk_keys.h"

#include <stdlib.h>
#include <string.h>

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

/* The slot of key, or the empty slot where it would go. */
static slot_t *find(const wrk_keys_t *self, const char *key, size_t len,
                    uint64_t h)
{
    size_t j = h & (self->cap - 1);
    for (;; j = (j + 1) & (self->cap - 1)) {
        slot_t *s = &self->slots[j];
        if (s->value < 0 || (s->hash == h && s->len == len &&
                             memcmp(self->arena + s->off, key, len) == 0))
            return s;
    }
}

int64_t wrk_keys_get(const wrk_keys_t *self, const char *key, size_t len)
{
    return find(self, key, len, fnv(key, len))->value;
}

int64_t wrk_keys_put(wrk_keys_t *self, const char *key, size_t len,
                     int64_t value)
{
    uint64_t h = fnv(key, len);
    slot_t *s = find(self, key, len, h);
    if (s->value >= 0) {
        if (value < s->value)
            s->value = value;
        return s->value;
    }
    if (self->used + len > self->arena_cap) {
        size_t cap = self->arena_cap ? self->arena_cap : 65536;
        char *a;
        while (cap < self->used + len)
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
        s = find(self, key, len, h);
    }
    if (len > 0)
        memcpy(self->arena + self->used, key, len);
    s->hash = h;
    s->value = value;
    s->off = self->used;
    s->len = len;
    self->used += len;
    self->n++;
    return value;
}
