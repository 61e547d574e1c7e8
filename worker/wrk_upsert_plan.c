/*
 * wrk_upsert_plan: what a batch writes for one row, built from its verdict:
 * the update of a deal found (its filter, its change record) or the insert
 * of a new deal. The update's filter is a compare-and-set: besides the
 * deal's ids it names the previous value of every field the update changes
 * and the absence of every tag it adds, exactly as its change record states
 * them, so the update applies only to a deal that still holds what its
 * before-image says, and a revert restores the value the import replaced
 * even when another writer changed the deal after the lookup.
 */
#include "wrk_upsert_priv.h"
#include "dip_bson.h"

#include <string.h>

/* The update's filter for deal (the lookup's): its _id, and its account
 * and pipeline as they are stored, which the lookup and the verdict have
 * found to be the import's (in one form or the other). Equalities, not the
 * two forms of each: a server matches them on the _id alone, and a batch
 * of updates carries no arrays. NULL (the filter then names the import's
 * ids in both forms) when either is missing or out of memory. */
static bson_t *where_found(const plan_t *p, const bson_t *deal)
{
    bson_iter_t acc, pipe;
    bson_t *w;
    if (!bson_iter_init_find(&acc, deal, "account_id") ||
        !bson_iter_init_find(&pipe, deal, "pipeline_id"))
        return NULL;
    w = bson_new();
    if (w != NULL &&
        !(BSON_APPEND_OID(w, "_id", &p->deal_id) &&
          BSON_APPEND_VALUE(w, "account_id", bson_iter_value(&acc)) &&
          BSON_APPEND_VALUE(w, "pipeline_id", bson_iter_value(&pipe)))) {
        bson_destroy(w);
        w = NULL;
    }
    return w;
}

/* Appends to cas, for each entry of changes ({f, a, b}), f's previous
 * value: dip_bson_append_is(f, b), or {f: {$exists: false}} when the deal had
 * no f. Then, when the update adds tags, what deal's tags were: the absence of
 * each, {tags: {$nin: tags}}, when they are a list or missing; else (a text, a
 * number, null) dip_bson_append_is(tags, that value), which the update's
 * $addToSet cannot extend: the database refuses it, the line's error (a
 * $nin of a text equal to a tag added would miss the unchanged deal, read
 * as a change by someone else at each attempt). -1 out of memory. */
static int cas_conditions(bson_t *cas, const bson_t *changes,
                          const bson_t *tags, const bson_t *deal)
{
    bson_iter_t it, e, f, b;
    bson_t sub;
    const char *name;
    if (!bson_iter_init(&it, changes))
        return -1;
    while (bson_iter_next(&it)) {
        if (!BSON_ITER_HOLDS_DOCUMENT(&it) || !bson_iter_recurse(&it, &e) ||
            !bson_iter_find(&e, "f") || !BSON_ITER_HOLDS_UTF8(&e))
            return -1;
        f = e;
        name = bson_iter_utf8(&f, NULL);
        if (bson_iter_recurse(&it, &b) && bson_iter_find(&b, "b")) {
            if (!dip_bson_append_is(cas, name, &b))
                return -1;
            continue;
        }
        if (!BSON_APPEND_DOCUMENT_BEGIN(cas, name, &sub) ||
            !BSON_APPEND_BOOL(&sub, "$exists", false) ||
            !bson_append_document_end(cas, &sub))
            return -1;
    }
    if (bson_empty(tags))
        return 0;
    if (bson_iter_init_find(&b, deal, "tags") && !BSON_ITER_HOLDS_ARRAY(&b))
        return dip_bson_append_is(cas, "tags", &b) ? 0 : -1;
    if (!BSON_APPEND_DOCUMENT_BEGIN(cas, "tags", &sub) ||
        !BSON_APPEND_ARRAY(&sub, "$nin", tags) ||
        !bson_append_document_end(cas, &sub))
        return -1;
    return 0;
}

int64_t wrk_upsert_change_at(const bson_t *change)
{
    bson_iter_t it;
    if (change && bson_iter_init_find(&it, change, "created_at") &&
        BSON_ITER_HOLDS_DATE_TIME(&it))
        return bson_iter_date_time(&it);
    return 0;
}

int wrk_upsert_plan_update(wrk_upsert_t *self, plan_t *p, const bson_t *deal,
                           int64_t line, const bson_t *set,
                           const bson_t *changes, const bson_t *tags)
{
    bson_t s, li, a, e;
    int64_t now = dip_bson_now_ms();
    bson_iter_t it;
    if (bson_iter_init_find(&it, deal, "_id") && BSON_ITER_HOLDS_OID(&it))
        bson_oid_copy(bson_iter_oid(&it), &p->deal_id);
    p->cas = bson_new();
    if (cas_conditions(p->cas, changes, tags, deal) < 0) {
        /* without its conditions the update could overwrite another
         * writer's value under a before-image that does not name it */
        bson_destroy(p->cas);
        p->cas = NULL;
        return -1;
    }
    p->where = where_found(p, deal);
    if (p->where != NULL && !bson_concat(p->where, p->cas)) {
        bson_destroy(p->where);
        p->where = NULL;
    }
    p->change = bson_new();
    BSON_APPEND_OID(p->change, "queue_id", self->qid);
    BSON_APPEND_INT64(p->change, "line", line);
    BSON_APPEND_OID(p->change, "account_id", self->account);
    BSON_APPEND_OID(p->change, "deal_id", &p->deal_id);
    BSON_APPEND_ARRAY(p->change, "changes", changes);
    BSON_APPEND_ARRAY(p->change, "tags_added", tags);
    BSON_APPEND_DATE_TIME(p->change, "created_at", now);
    p->update = bson_new();
    BSON_APPEND_DOCUMENT_BEGIN(p->update, "$set", &s);
    bson_concat(&s, set);
    BSON_APPEND_DATE_TIME(&s, "updated_at", now);
    BSON_APPEND_DOCUMENT_BEGIN(&s, "last_import", &li);
    BSON_APPEND_OID(&li, "queue_id", self->qid);
    BSON_APPEND_INT64(&li, "line", line);
    bson_append_document_end(&s, &li);
    bson_append_document_end(p->update, &s);
    if (!bson_empty(tags)) {
        BSON_APPEND_DOCUMENT_BEGIN(p->update, "$addToSet", &a);
        BSON_APPEND_DOCUMENT_BEGIN(&a, "tags", &e);
        BSON_APPEND_ARRAY(&e, "$each", tags);
        bson_append_document_end(&a, &e);
        bson_append_document_end(p->update, &a);
    }
    return 0;
}
/* A new deal from a row read for updates (wrk_map_set_keep_empty): its
 * name and stage are required as on create, and an empty status is
 * 'open'; the deal_id key is never written. */
void wrk_upsert_create(wrk_upsert_t *self, bson_t *doc, const char *skip,
                       plan_t *p, int *outcome, char **messages, size_t i)
{
    bson_iter_t it;
    bson_oid_t zero;
    int has_status;
    (void)self;
    bson_oid_init_from_string(&zero, "000000000000000000000000");
    if (!bson_iter_init_find(&it, doc, "name")) {
        wrk_upsert_refuse(
            messages, i, outcome,
            "name is required to create a deal, but it is empty on this "
            "line");
        return;
    }
    if (bson_iter_init_find(&it, doc, "stage_id") && BSON_ITER_HOLDS_OID(&it) &&
        bson_oid_equal(bson_iter_oid(&it), &zero)) {
        wrk_upsert_refuse(
            messages, i, outcome,
            "stage_id is required to create a deal, but it is empty on "
            "this line");
        return;
    }
    has_status = bson_iter_init_find(&it, doc, "status");
    if (skip == NULL && has_status) {
        p->insert = doc;
        return;
    }
    p->insert = bson_new();
    p->own_insert = 1;
    bson_copy_to_excluding_noinit(doc, p->insert, skip ? skip : "", NULL);
    if (!has_status)
        BSON_APPEND_UTF8(p->insert, "status", "open");
}

/* The plan's deal id from doc's _id (the deal found, or the insert). */
void wrk_upsert_plan_id(plan_t *p, const bson_t *doc)
{
    bson_iter_t it;
    if (doc && bson_iter_init_find(&it, doc, "_id") && BSON_ITER_HOLDS_OID(&it))
        bson_oid_copy(bson_iter_oid(&it), &p->deal_id);
}
