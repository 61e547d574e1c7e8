/*
 * wrk_stages: an open-addressing hash table from stage name to ObjectId in
 * front of wrk_db_stage. It grows by doubling, so an import with thousands
 * of distinct stage names stays cheap too. Past the import's limit of new
 * stages a name is only looked up, never created; a dry run only looks up,
 * and lists the names it would create.
 */
#include "wrk_stages.h"

#include "dip_text.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    char *name;
    bson_oid_t id;
} slot_t;

struct wrk_stages {
    wrk_db_t *db;
    bson_oid_t account, pipeline, user;
    slot_t *slots;
    size_t cap, used, created, max_new;
    /* dry run: nothing is created; the names that would be */
    int dry;
    char **new_names;
    size_t nnew, new_cap;
};

wrk_stages_t *wrk_stages_new(wrk_db_t *db, const bson_oid_t *account,
                             const bson_oid_t *pipeline, const bson_oid_t *user,
                             size_t max_new, size_t created_before)
{
    wrk_stages_t *self = calloc(1, sizeof(*self));
    if (self == NULL)
        return NULL;
    self->db = db;
    self->max_new = max_new;
    self->created = created_before;
    bson_oid_copy(account, &self->account);
    bson_oid_copy(pipeline, &self->pipeline);
    bson_oid_copy(user, &self->user);
    self->cap = 64;
    self->slots = calloc(self->cap, sizeof(slot_t));
    if (self->slots == NULL) {
        free(self);
        return NULL;
    }
    return self;
}

void wrk_stages_destroy(wrk_stages_t **self_p)
{
    wrk_stages_t *self;
    if (self_p == NULL || *self_p == NULL)
        return;
    self = *self_p;
    for (size_t i = 0; i < self->cap; i++)
        free(self->slots[i].name);
    free(self->slots);
    free(self->new_names); /* the names themselves are the slots' */
    free(self);
    *self_p = NULL;
}

static size_t hash(const char *s)
{
    size_t h = 1469598103934665603ULL; /* FNV-1a */
    while (*s)
        h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
    return h;
}

static slot_t *find_slot(slot_t *slots, size_t cap, const char *name)
{
    size_t i = hash(name) & (cap - 1);
    while (slots[i].name && strcmp(slots[i].name, name) != 0)
        i = (i + 1) & (cap - 1);
    return &slots[i];
}

static int grow(wrk_stages_t *self)
{
    size_t cap = self->cap * 2;
    slot_t *slots = calloc(cap, sizeof(slot_t));
    if (slots == NULL)
        return -1;
    for (size_t i = 0; i < self->cap; i++)
        if (self->slots[i].name)
            *find_slot(slots, cap, self->slots[i].name) = self->slots[i];
    free(self->slots);
    self->slots = slots;
    self->cap = cap;
    return 0;
}

/* Caches name -> id; returns the cached copy of name, or NULL when it
 * could not be cached (the answer stays right, only not cached). */
static const char *cache(wrk_stages_t *self, const char *name,
                         const bson_oid_t *id)
{
    slot_t *slot = find_slot(self->slots, self->cap, name);
    if (slot->name)
        return slot->name;
    if ((self->used + 1) * 2 > self->cap) {
        if (grow(self) < 0)
            return NULL;
        slot = find_slot(self->slots, self->cap, name);
    }
    slot->name = strdup(name);
    if (slot->name == NULL)
        return NULL;
    bson_oid_copy(id, &slot->id);
    self->used++;
    return slot->name;
}

void wrk_stages_set_dry(wrk_stages_t *self)
{
    self->dry = 1;
}

/* A dry run's new name: cached (so it is new once) and listed. */
static int remember_new(wrk_stages_t *self, const char *name,
                        const bson_oid_t *id)
{
    const char *kept;
    if (self->nnew == self->new_cap) {
        size_t cap = self->new_cap ? self->new_cap * 2 : 64;
        char **n = realloc(self->new_names, cap * sizeof(char *));
        if (n == NULL)
            return -1;
        self->new_names = n;
        self->new_cap = cap;
    }
    kept = cache(self, name, id);
    if (kept == NULL)
        return -1;
    self->new_names[self->nnew++] = (char *)kept;
    return 0;
}

int wrk_stages_restore_new(wrk_stages_t *self, const char *name)
{
    bson_oid_t id;
    if (find_slot(self->slots, self->cap, name)->name)
        return 0;
    bson_oid_init(&id, NULL);
    return remember_new(self, name, &id);
}

size_t wrk_stages_new_names(const wrk_stages_t *self, const char *const **names)
{
    *names = (const char *const *)self->new_names;
    return self->nnew;
}

int wrk_stages_resolve(wrk_stages_t *self, const char *name, bson_oid_t *out,
                       char *err, size_t errlen)
{
    slot_t *slot = find_slot(self->slots, self->cap, name);
    int created = 0, rc;
    int may_create = self->created < self->max_new;
    if (slot->name) {
        bson_oid_copy(&slot->id, out);
        return WRK_DB_OK;
    }
    rc = wrk_db_stage(self->db, &self->account, &self->pipeline, &self->user,
                      name, may_create && !self->dry, out, &created, err,
                      errlen);
    if (rc == WRK_DB_ENOTFOUND && self->dry && may_create) {
        /* It would be created: counted once, as a real run counts it. */
        bson_oid_init(out, NULL);
        if (remember_new(self, name, out) < 0) {
            dip_text_format(err, errlen, NULL, "out of memory");
            return WRK_DB_EFAIL;
        }
        self->created++;
        return WRK_DB_OK;
    }
    if (rc == WRK_DB_ENOTFOUND) {
        char q[256];
        dip_text_format(q, sizeof(q), NULL, "%s", name);
        dip_text_format(err, errlen, NULL,
                        "stage '%s' does not exist and this import %s %zu "
                        "new stages, the most one import may create "
                        "(DEALIMPORT_MAX_NEW_STAGES)",
                        q,
                        self->dry ? "would already create" : "already created",
                        self->created);
        return WRK_STAGES_ELIMIT;
    }
    if (rc != WRK_DB_OK)
        return rc;
    self->created += created ? 1 : 0;
    cache(self, name, out);
    return WRK_DB_OK;
}

static void preload_one(void *arg, const char *name, const bson_oid_t *id)
{
    /* A name cached already keeps its first id, as a lookup would. */
    (void)cache(arg, name, id);
}

int wrk_stages_preload(wrk_stages_t *self, char *err, size_t errlen)
{
    return wrk_db_stages_find(self->db, &self->account, &self->pipeline,
                              WRK_STAGES_PRELOAD_MAX, preload_one, self, err,
                              errlen);
}

size_t wrk_stages_created(const wrk_stages_t *self)
{
    return self->created;
}

size_t wrk_stages_cached(const wrk_stages_t *self)
{
    return self->used;
}
