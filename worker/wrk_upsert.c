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
            if (wrk_upsert_plan_update(self, p, deal, line, &set, &changes,
                                       &tags) < 0)
                wrk_upsert_refuse(messages, i, outcome,
                                  "out of memory planning the update");
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

/* One attempt at rows r: the lookup of their keys, their verdicts, the
 * before-images, the writes; then the rows whose deals changed since the
 * lookup, again (wrk_upsert_retry_rows). round: 0 the batch's first. */
int wrk_upsert_attempt(wrk_upsert_t *self, const rows_t *r, int round,
                       char *err, size_t errlen)
{
    batch_ctx_t b = {0};
    bson_t in = BSON_INITIALIZER;
    uint32_t nin = 0;
    size_t n = r->n;
    int rc = WRK_DB_EFAIL;
    b.plan = calloc(n ? n : 1, sizeof(plan_t));
    b.rows = calloc(n ? n : 1, sizeof(size_t));
    b.n = n;
    b.m = self->m;
    b.outcome = r->outcome;
    b.messages = r->messages;
    b.lines = r->lines;
    b.round = round;
    b.mine = r->mine;
    if (b.plan == NULL || b.rows == NULL) {
        snprintf(err, errlen, "out of memory");
        goto cleanup;
    }
    /* the query's $in: every row's key */
    for (size_t i = 0; i < n; i++) {
        uint32_t klen;
        char low[25], kb[16];
        const char *k, *key = seen_key(self, r->docs[i], low, &klen);
        size_t kl;
        r->outcome[i] = WRK_UPSERT_ADDED;
        r->messages[i] = NULL;
        if (key == NULL)
            continue;
        kl = bson_uint32_to_string(nin++, &k, kb, sizeof(kb));
        if (self->m->key == WRK_MATCH_KEY_DEAL_ID) {
            bson_oid_t oid;
            bson_oid_init_from_string(&oid, key);
            bson_append_oid(&in, k, (int)kl, &oid);
        } else {
            bson_append_utf8(&in, k, (int)kl, key, (int)klen);
        }
    }
    drop_found(self);
    if (nin > 0) {
        bson_t proj = BSON_INITIALIZER;
        /* out of memory for the projection: the whole deals */
        int projected = lookup_projection(self, r->docs, n, &proj) == 0;
        rc = lookup(self, &in, projected ? &proj : NULL, err, errlen);
        bson_destroy(&proj);
        if (rc != WRK_DB_OK)
            goto cleanup;
    }
    for (size_t i = 0; i < n; i++) {
        plan_t *p = &b.plan[i];
        if (decide(self, r->docs[i], r->lines[i],
                   r->status_given ? r->status_given[i] : 1, r->earlier[i], p,
                   r->outcome, r->messages, i) < 0) {
            snprintf(err, errlen, "out of memory keeping the deals found");
            rc = WRK_DB_EFAIL;
            goto cleanup;
        }
        /* read again, the row writes nothing now (its deal holds its
         * values, or is gone): its own record goes, as does an earlier
         * run's of a deal gone; the deal holding this line's write keeps
         * it */
        if (round > 0 && p->change == NULL &&
            r->outcome[i] != WRK_UPSERT_UPDATED &&
            r->outcome[i] != WRK_UPSERT_ALREADY)
            p->drop =
                r->outcome[i] == WRK_UPSERT_UNCHANGED ? DROP_OWN : DROP_ANY;
    }
    rc = WRK_DB_OK;
    if (self->dry)
        goto cleanup;
    if (round > 0)
        rc = wrk_upsert_drop_marked(self, &b, err, errlen);
    /* Before-images first: a crash after them and before the updates
     * leaves records of the deals as they still are. */
    if (self->before_write)
        self->before_write(self->before_write_arg);
    if (rc == WRK_DB_OK)
        rc = wrk_upsert_write_changes(self, &b, err, errlen);
    if (rc == WRK_DB_OK)
        rc = wrk_upsert_write_deals(self, &b, err, errlen);
    if (rc == WRK_DB_OK && b.unmatched > 0)
        rc = wrk_upsert_write_gone(self, &b, r->docs, err, errlen);
    if (rc == WRK_DB_OK)
        rc = wrk_upsert_drop_refused(self, &b, err, errlen);
    for (size_t i = 0; r->ids && rc == WRK_DB_OK && i < n; i++)
        bson_oid_copy(&b.plan[i].deal_id, &r->ids[i]);
    if (rc == WRK_DB_OK)
        rc = wrk_upsert_retry_rows(self, r, &b, round, err, errlen);
cleanup:
    for (size_t i = 0; b.plan && i < n; i++) {
        if (b.plan[i].change)
            bson_destroy(b.plan[i].change);
        if (b.plan[i].update)
            bson_destroy(b.plan[i].update);
        if (b.plan[i].where)
            bson_destroy(b.plan[i].where);
        if (b.plan[i].cas)
            bson_destroy(b.plan[i].cas);
        if (b.plan[i].own_insert)
            bson_destroy(b.plan[i].insert);
    }
    drop_found(self);
    bson_destroy(&in);
    free(b.plan);
    free(b.rows);
    return rc;
}

int wrk_upsert_batch(wrk_upsert_t *self, bson_t *const *docs,
                     const int64_t *lines, const int *status_given, size_t n,
                     int *outcome, char **messages, bson_oid_t *ids, char *err,
                     size_t errlen)
{
    int64_t *earlier = calloc(n ? n : 1, sizeof(int64_t));
    rows_t r = {.docs = docs,
                .lines = lines,
                .earlier = earlier,
                .status_given = status_given,
                .n = n,
                .outcome = outcome,
                .messages = messages,
                .ids = ids};
    int rc = WRK_DB_EFAIL;
    if (earlier == NULL) {
        snprintf(err, errlen, "out of memory");
        goto cleanup;
    }
    /* The first line of each key over the run. */
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
    }
    rc = wrk_upsert_attempt(self, &r, 0, err, errlen);
cleanup:
    free(earlier);
    return rc;
}
