/*
 * wrk_upsert: a batch of rows against the deals they match. The lookup,
 * the verdicts, the before-images, then the writes, in that order, each a
 * single round trip while nothing fails: a crash between two of them
 * leaves only what a re-run of the same lines recognises as its own.
 */
#include "wrk_upsert_priv.h"
#include "dip_bson.h"
#include "dip_log.h"
#include "dip_mongo_io.h"
#include "wrk_diff.h"
#include "wrk_keys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mongoc/mongoc.h>

wrk_upsert_t *wrk_upsert_new(wrk_db_t *db, const wrk_match_t *m,
                             const bson_oid_t *qid, const bson_oid_t *account,
                             const bson_oid_t *pipeline, int dry)
{
    wrk_upsert_t *self = calloc(1, sizeof(*self));
    if (self == NULL)
        return NULL;
    self->db = db;
    self->m = m;
    self->qid = qid;
    self->account = account;
    self->pipeline = pipeline;
    self->dry = dry;
    self->deals = wrk_db_collection(db, "deals");
    self->changes = wrk_db_collection(db, WRK_UPSERT_CHANGES);
    self->seen = wrk_keys_new();
    self->found = wrk_keys_new();
    self->names = wrk_keys_new();
    if (self->deals == NULL || self->changes == NULL || self->seen == NULL ||
        self->found == NULL || self->names == NULL)
        wrk_upsert_destroy(&self);
    return self;
}

void wrk_upsert_set_before_write(wrk_upsert_t *self, void (*fn)(void *),
                                 void *arg)
{
    self->before_write = fn;
    self->before_write_arg = arg;
}

static void drop_found(wrk_upsert_t *self)
{
    for (size_t i = 0; i < self->nfound; i++)
        bson_destroy(self->found_docs[i]);
    self->nfound = 0;
    if (self->found)
        wrk_keys_clear(self->found);
}

void wrk_upsert_destroy(wrk_upsert_t **self_p)
{
    wrk_upsert_t *self;
    if (self_p == NULL || *self_p == NULL)
        return;
    self = *self_p;
    drop_found(self);
    free(self->found_docs);
    if (self->deals)
        mongoc_collection_destroy(self->deals);
    if (self->changes)
        mongoc_collection_destroy(self->changes);
    wrk_keys_destroy(&self->seen);
    wrk_keys_destroy(&self->found);
    wrk_keys_destroy(&self->names);
    free(self);
    *self_p = NULL;
}

int wrk_upsert_prepare(wrk_upsert_t *self, char *err, size_t errlen)
{
    bson_t *keys, indexes;
    int rc = WRK_DB_OK;
    /* A dry run creates nothing, not even an index. */
    if (self->dry)
        goto custom;
    /* external_id's index is the supervisor's (dip_deal_index.h), made
     * before it claims. */
    keys = BCON_NEW("queue_id", BCON_INT32(1), "line", BCON_INT32(1));
    rc = wrk_db_unique_index(self->db, WRK_UPSERT_CHANGES,
                             WRK_UPSERT_CHANGES_INDEX, keys, NULL, err, errlen);
    bson_destroy(keys);
custom:
    if (rc != WRK_DB_OK || (self->m->key != WRK_MATCH_KEY_CUSTOM &&
                            self->m->key != WRK_MATCH_KEY_EXTERNAL_ID))
        return rc;
    rc = wrk_db_deal_indexes(self->db, &indexes, err, errlen);
    if (rc == WRK_DB_OK && !wrk_match_index_ok(self->m, &indexes, err, errlen))
        rc = WRK_DB_EFAIL;
    bson_destroy(&indexes);
    return rc;
}

/* The row's key: text, or "" when empty. For deal_id, the hex form. */
static const char *row_key(const wrk_upsert_t *self, const bson_t *doc,
                           uint32_t *len)
{
    bson_iter_t it;
    *len = 0;
    if (bson_iter_init(&it, doc) &&
        bson_iter_find_descendant(
            &it,
            self->m->key == WRK_MATCH_KEY_DEAL_ID ? "deal_id" : self->m->field,
            &it) &&
        BSON_ITER_HOLDS_UTF8(&it))
        return bson_iter_utf8(&it, len);
    return "";
}

/* A found deal's key, as row_key gives it for its row: its text whole
 * (a cell may hold 64 KiB; a key cut short would find no row), or an
 * ObjectId in lowercase hex, written into hex. Borrows deal; *len 0 when
 * it has none. */
static const char *deal_key(const wrk_upsert_t *self, const bson_t *deal,
                            char hex[25], uint32_t *len)
{
    bson_iter_t it;
    *len = 0;
    if (!bson_iter_init(&it, deal) ||
        !bson_iter_find_descendant(&it, self->m->field, &it))
        return "";
    if (BSON_ITER_HOLDS_OID(&it)) {
        bson_oid_to_string(bson_iter_oid(&it), hex);
        *len = 24;
        return hex;
    }
    if (BSON_ITER_HOLDS_UTF8(&it))
        return bson_iter_utf8(&it, len);
    return "";
}

static int is_hex24(const char *s, uint32_t len)
{
    if (len != 24)
        return 0;
    for (uint32_t i = 0; i < 24; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
              (s[i] >= 'A' && s[i] <= 'F')))
            return 0;
    return 1;
}

/* A 24-hex key in lowercase, as an ObjectId prints. */
static void lower_hex(const char *key, char out[25])
{
    for (int c = 0; c < 24; c++)
        out[c] = (char)(key[c] >= 'A' && key[c] <= 'F' ? key[c] + 32 : key[c]);
    out[24] = '\0';
}

/* Adds path to proj once (names: the paths added, this batch). */
static int project(bson_t *proj, wrk_keys_t *names, const char *path)
{
    size_t len = strlen(path);
    int64_t n = wrk_keys_get(names, path, len);
    if (n >= 0)
        return 0;
    if (wrk_keys_put(names, path, len, 1) < 0)
        return -1;
    return BSON_APPEND_INT32(proj, path, 1) ? 0 : -1;
}

/* The lookup's projection: what decide() reads of a found deal and
 * nothing else. The fields the batch's rows map (a custom field as its
 * own path under additional_info), the stage and tags, the pipeline, the
 * match field, and the import marks written_by reads; the fields after
 * stage_id in a row are the worker's own (wrk_diff), of which only tags is
 * compared. A deal's other fields (its owner, notes, contacts, the
 * fields this file does not map) never cross the wire. -1 out of memory. */
static int lookup_projection(wrk_upsert_t *self, bson_t *const *docs, size_t n,
                             bson_t *proj)
{
    static const char *const always[] = {"account_id", "pipeline_id",
                                         "stage_id",   "tags",
                                         "import",     "last_import"};
    wrk_keys_clear(self->names);
    for (size_t i = 0; i < sizeof(always) / sizeof(always[0]); i++)
        if (project(proj, self->names, always[i]) < 0)
            return -1;
    if (strcmp(self->m->field, "_id") != 0 &&
        project(proj, self->names, self->m->field) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        bson_iter_t it, sub;
        if (!bson_iter_init(&it, docs[i]))
            continue;
        while (bson_iter_next(&it)) {
            const char *key = bson_iter_key(&it);
            if (strcmp(key, "stage_id") == 0)
                break;
            if (strcmp(key, "_id") == 0)
                continue;
            if (strcmp(key, "additional_info") == 0 &&
                BSON_ITER_HOLDS_DOCUMENT(&it) && bson_iter_recurse(&it, &sub)) {
                while (bson_iter_next(&sub)) {
                    char dotted[64];
                    int w = snprintf(dotted, sizeof(dotted),
                                     "additional_info.%s", bson_iter_key(&sub));
                    if (w < 0 || (size_t)w >= sizeof(dotted) ||
                        project(proj, self->names, dotted) < 0)
                        return -1;
                }
                continue;
            }
            if (project(proj, self->names, key) < 0)
                return -1;
        }
    }
    return 0;
}

/* One query for the batch's keys: {account_id, <field>: {$in}}, on the
 * field's unique index (deal_id: _id's), bounded by maxTimeMS below the
 * socket timeout (no abandoned copy runs on in the server). Its cost is a
 * batch's keys whatever the size of the import, so a retry with the same
 * bound is not a livelock: a slow server fails it only as often as the
 * worker's attempts allow, then the import resumes later. */
static int lookup(wrk_upsert_t *self, const bson_t *in, const bson_t *proj,
                  char *err, size_t errlen)
{
    bson_t filter = BSON_INITIALIZER, sub, *opts;
    int rc = WRK_DB_OK;
    /* the CRM's deals may hold the account as hex: both forms match */
    dip_bson_append_id_match(&filter, "account_id", self->account);
    BSON_APPEND_DOCUMENT_BEGIN(&filter, self->m->field, &sub);
    BSON_APPEND_ARRAY(&sub, "$in", in);
    bson_append_document_end(&filter, &sub);
    /* every key's deal in the first reply: one round trip, no getMore */
    opts =
        BCON_NEW("maxTimeMS", BCON_INT64((int64_t)wrk_db_max_time_ms(self->db)),
                 "batchSize", BCON_INT64((int64_t)bson_count_keys(in) + 1));
    if (proj)
        BSON_APPEND_DOCUMENT(opts, "projection", proj);
    for (int attempt = 1;; attempt++) {
        mongoc_cursor_t *c =
            mongoc_collection_find_with_opts(self->deals, &filter, opts, NULL);
        const bson_t *doc;
        bson_error_t error;
        int oom = 0;
        drop_found(self);
        while (!oom && mongoc_cursor_next(c, &doc)) {
            char hex[25];
            uint32_t klen;
            const char *key;
            int64_t at;
            if (self->nfound == self->found_cap) {
                size_t cap = self->found_cap ? self->found_cap * 2 : 256;
                bson_t **d = realloc(self->found_docs, cap * sizeof(*d));
                if (d == NULL) {
                    oom = 1;
                    break;
                }
                self->found_docs = d;
                self->found_cap = cap;
            }
            key = deal_key(self, doc, hex, &klen);
            at = wrk_keys_put(self->found, key, klen, (int64_t)self->nfound);
            oom = at < 0;
            if (at == (int64_t)self->nfound)
                self->found_docs[self->nfound++] = bson_copy(doc);
        }
        wrk_db_count_round_trip(self->db);
        if (oom) {
            /* a deal found and not kept would be "not found": a
             * duplicate created, an update refused */
            mongoc_cursor_destroy(c);
            drop_found(self);
            snprintf(err, errlen, "out of memory keeping the deals found");
            rc = WRK_DB_EFAIL;
            break;
        }
        if (!mongoc_cursor_error(c, &error)) {
            mongoc_cursor_destroy(c);
            break;
        }
        mongoc_cursor_destroy(c);
        if (!wrk_db_retry(self->db, &error, attempt,
                          "finding the deals to "
                          "update",
                          &rc, err, errlen))
            break;
    }
    bson_destroy(opts);
    bson_destroy(&filter);
    return rc;
}

/* Which line of this import last wrote the deal, and how. */
static int64_t written_by(const wrk_upsert_t *self, const bson_t *deal,
                          int *created)
{
    static const char *const keys[2][2] = {
        {"last_import.queue_id", "last_import.line"},
        {"import.queue_id", "import.line"}};
    *created = 0;
    for (int i = 0; i < 2; i++) {
        bson_oid_t q;
        if (dip_bson_get_oid(deal, keys[i][0], &q) == 0 &&
            bson_oid_equal(&q, self->qid)) {
            *created = i == 1;
            return dip_bson_get_int(deal, keys[i][1], 0);
        }
    }
    return 0;
}

void wrk_upsert_refuse(char **messages, size_t i, int *outcome, const char *msg)
{
    outcome[i] = WRK_UPSERT_REFUSED;
    free(messages[i]);
    messages[i] = strdup(msg);
}

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

/* The update and the change record of a row whose deal differs. */
static void plan_update(wrk_upsert_t *self, plan_t *p, const bson_t *row,
                        const bson_t *deal, int64_t line, bson_t *set,
                        bson_t *changes, bson_t *tags)
{
    bson_t u, s, li, a, e;
    int64_t now = dip_bson_now_ms();
    bson_iter_t it;
    if (bson_iter_init_find(&it, deal, "_id") && BSON_ITER_HOLDS_OID(&it))
        bson_oid_copy(bson_iter_oid(&it), &p->deal_id);
    p->where = where_found(p, deal);
    p->change = bson_new();
    BSON_APPEND_OID(p->change, "queue_id", self->qid);
    BSON_APPEND_INT64(p->change, "line", line);
    BSON_APPEND_OID(p->change, "account_id", self->account);
    BSON_APPEND_OID(p->change, "deal_id", &p->deal_id);
    BSON_APPEND_ARRAY(p->change, "changes", changes);
    BSON_APPEND_ARRAY(p->change, "tags_added", tags);
    BSON_APPEND_DATE_TIME(p->change, "created_at", now);
    p->update = bson_new();
    bson_init(&u);
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
    bson_destroy(&u);
    (void)row;
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

/* The verdict of row i and what it plans. -1 when a long key's digest
 * could not be made (out of memory): never read as "not found". */
static int decide(wrk_upsert_t *self, bson_t *doc, int64_t line,
                  int status_given, int64_t earlier, plan_t *p, int *outcome,
                  char **messages, size_t i)
{
    wrk_match_facts_t f = {.line = line, .earlier_line = earlier};
    const bson_t *deal = NULL;
    uint32_t klen;
    const char *key = row_key(self, doc, &klen);
    const char *skip = self->m->key == WRK_MATCH_KEY_DEAL_ID ? "deal_id" : NULL;
    int created = 0;
    int64_t first;
    wrk_match_verdict_t v;
    char msg[512];
    f.key_empty = klen == 0;
    f.key_malformed = !f.key_empty && self->m->key == WRK_MATCH_KEY_DEAL_ID &&
                      !is_hex24(key, klen);
    if (!f.key_empty && !f.key_malformed) {
        char low[25];
        const char *k = key;
        int64_t at;
        if (self->m->key == WRK_MATCH_KEY_DEAL_ID) {
            lower_hex(key, low);
            k = low;
        }
        at = wrk_keys_get(self->found, k, klen);
        if (at == -2)
            return -1;
        if (at >= 0) {
            bson_oid_t pl;
            deal = self->found_docs[at];
            f.found = dip_bson_get_oid(deal, "pipeline_id", &pl) == 0 &&
                              bson_oid_equal(&pl, self->pipeline)
                          ? 1
                          : 2;
            f.written_by_line = written_by(self, deal, &created);
        }
    }
    v = wrk_match_verdict(self->m->mode, &f, &first);
    outcome[i] = WRK_UPSERT_ADDED;
    switch (v) {
    case WRK_MATCH_CREATE:
        wrk_upsert_create(self, doc, skip, p, outcome, messages, i);
        wrk_upsert_plan_id(p, p->insert);
        break;
    case WRK_MATCH_DONE:
        outcome[i] = created ? WRK_UPSERT_ALREADY : WRK_UPSERT_UPDATED;
        wrk_upsert_plan_id(p, deal);
        break;
    case WRK_MATCH_UPDATE: {
        bson_t set = BSON_INITIALIZER, changes = BSON_INITIALIZER,
               tags = BSON_INITIALIZER;
        wrk_upsert_plan_id(p, deal);
        if (wrk_diff_row(doc, deal, skip, status_given, &set, &changes,
                         &tags) == 0) {
            outcome[i] = WRK_UPSERT_UNCHANGED;
        } else {
            outcome[i] = WRK_UPSERT_UPDATED;
            plan_update(self, p, doc, deal, line, &set, &changes, &tags);
        }
        bson_destroy(&set);
        bson_destroy(&changes);
        bson_destroy(&tags);
        break;
    }
    default:
        wrk_match_sentence(self->m, v, key, klen, first, msg, sizeof(msg));
        wrk_upsert_refuse(messages, i, outcome, msg);
        break;
    }
    return 0;
}

/* The key a row files under in the seen set (a deal_id in lowercase, in
 * low), or NULL for a row whose key finds nothing (empty, or not an id). */
static const char *seen_key(const wrk_upsert_t *self, const bson_t *doc,
                            char low[25], uint32_t *klen)
{
    const char *key = row_key(self, doc, klen);
    if (*klen == 0 ||
        (self->m->key == WRK_MATCH_KEY_DEAL_ID && !is_hex24(key, *klen)))
        return NULL;
    if (self->m->key == WRK_MATCH_KEY_DEAL_ID) {
        lower_hex(key, low);
        return low;
    }
    return key;
}

int wrk_upsert_recall(wrk_upsert_t *self, const bson_t *doc, int64_t line)
{
    uint32_t klen;
    char low[25];
    const char *key = seen_key(self, doc, low, &klen);
    return key == NULL || wrk_keys_put(self->seen, key, klen, line) >= 0 ? 0
                                                                         : -1;
}

int wrk_upsert_batch(wrk_upsert_t *self, bson_t *const *docs,
                     const int64_t *lines, const int *status_given, size_t n,
                     int *outcome, char **messages, bson_oid_t *ids, char *err,
                     size_t errlen)
{
    batch_ctx_t b = {0};
    int64_t *earlier = calloc(n ? n : 1, sizeof(int64_t));
    bson_t in = BSON_INITIALIZER;
    uint32_t nin = 0;
    int rc = WRK_DB_EFAIL;
    b.plan = calloc(n ? n : 1, sizeof(plan_t));
    b.rows = calloc(n ? n : 1, sizeof(size_t));
    b.n = n;
    b.m = self->m;
    b.outcome = outcome;
    b.messages = messages;
    if (earlier == NULL || b.plan == NULL || b.rows == NULL) {
        snprintf(err, errlen, "out of memory");
        goto cleanup;
    }
    /* The keys: the first line of each over the run, and the query's
     * $in. */
    for (size_t i = 0; i < n; i++) {
        uint32_t klen;
        char low[25];
        const char *key = seen_key(self, docs[i], low, &klen);
        int64_t first;
        outcome[i] = WRK_UPSERT_ADDED;
        messages[i] = NULL;
        if (key == NULL)
            continue;
        first = wrk_keys_put(self->seen, key, klen, lines[i]);
        if (first < 0) {
            snprintf(err, errlen, "out of memory keeping the keys");
            goto cleanup;
        }
        earlier[i] = first < lines[i] ? first : 0;
        {
            char kb[16];
            const char *k;
            size_t kl = bson_uint32_to_string(nin++, &k, kb, sizeof(kb));
            if (self->m->key == WRK_MATCH_KEY_DEAL_ID) {
                bson_oid_t oid;
                bson_oid_init_from_string(&oid, key);
                bson_append_oid(&in, k, (int)kl, &oid);
            } else {
                bson_append_utf8(&in, k, (int)kl, key, (int)klen);
            }
        }
    }
    drop_found(self);
    if (nin > 0) {
        bson_t proj = BSON_INITIALIZER;
        /* out of memory for the projection: the whole deals */
        int projected = lookup_projection(self, docs, n, &proj) == 0;
        rc = lookup(self, &in, projected ? &proj : NULL, err, errlen);
        bson_destroy(&proj);
        if (rc != WRK_DB_OK)
            goto cleanup;
    }
    for (size_t i = 0; i < n; i++)
        if (decide(self, docs[i], lines[i], status_given ? status_given[i] : 1,
                   earlier[i], &b.plan[i], outcome, messages, i) < 0) {
            snprintf(err, errlen, "out of memory keeping the deals found");
            rc = WRK_DB_EFAIL;
            goto cleanup;
        }
    rc = WRK_DB_OK;
    if (self->dry)
        goto cleanup;
    /* Before-images first: a crash after them and before the updates
     * leaves records of the deals as they still are. */
    if (self->before_write)
        self->before_write(self->before_write_arg);
    rc = wrk_upsert_write_changes(self, &b, err, errlen);
    if (rc == WRK_DB_OK)
        rc = wrk_upsert_write_deals(self, &b, err, errlen);
    if (rc == WRK_DB_OK && b.unmatched > 0)
        rc = wrk_upsert_write_gone(self, &b, docs, err, errlen);
    if (rc == WRK_DB_OK)
        rc = wrk_upsert_drop_refused(self, &b, err, errlen);
    for (size_t i = 0; ids && rc == WRK_DB_OK && i < n; i++)
        bson_oid_copy(&b.plan[i].deal_id, &ids[i]);
cleanup:
    for (size_t i = 0; b.plan && i < n; i++) {
        if (b.plan[i].change)
            bson_destroy(b.plan[i].change);
        if (b.plan[i].update)
            bson_destroy(b.plan[i].update);
        if (b.plan[i].where)
            bson_destroy(b.plan[i].where);
        if (b.plan[i].own_insert)
            bson_destroy(b.plan[i].insert);
    }
    drop_found(self);
    bson_destroy(&in);
    free(b.plan);
    free(b.rows);
    free(earlier);
    return rc;
}
