/*
 * wrk_stages: an open-addressing hash table from stage name to ObjectId in
 * front of wrk_db_stage. It grows by doubling, so an import with thousands
 * of distinct stage names stays cheap too. Past the import's limit of new
 * stages a name is only looked up, never created.
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

int wrk_stages_resolve(wrk_stages_t *self, const char *name, bson_oid_t *out,
                       char *err, size_t errlen)
{
    slot_t *slot = find_slot(self->slots, self->cap, name);
    int created = 0, rc;
    if (slot->name) {
        bson_oid_copy(&slot->id, out);
        return WRK_DB_OK;
    }
    rc = wrk_db_stage(self->db, &self->account, &self->pipeline, &self->user,
                      name, self->created < self->max_new, out, &created, err,
                      errlen);
    if (rc == WRK_DB_ENOTFOUND) {
        char q[256];
        dip_text_format(q, sizeof(q), NULL, "%s", name);
        dip_text_format(err, errlen, NULL,
                        "stage '%s' does not exist and this import already "
                        "created %zu new stages, the most one import may "
                        "create (DEALIMPORT_MAX_NEW_STAGES)",
                        q, self->created);
        return WRK_STAGES_ELIMIT;
    }
    if (rc != WRK_DB_OK)
        return rc;
    self->created += created ? 1 : 0;
    if ((self->used + 1) * 2 > self->cap) {
        if (grow(self) < 0)
            return WRK_DB_OK; /* answer stays right; only not cached */
        slot = find_slot(self->slots, self->cap, name);
    }
    slot->name = strdup(name);
    if (slot->name) {
        bson_oid_copy(out, &slot->id);
        self->used++;
    }
    return WRK_DB_OK;
}

size_t wrk_stages_created(const wrk_stages_t *self)
{
    return self->created;
}

size_t wrk_stages_cached(const wrk_stages_t *self)
{
    return self->used;
}
