/*
 * it_check: reading an import's results back over libmongoc in one pass per
 * collection (a bitmap of lines catches anything stored twice).
 */
#include "it_check.h"
#include "dip_bson.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_STAGES 256

typedef struct {
    bson_oid_t id;
    char name[128];
} stage_t;

static void note(it_tally_t *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void note(it_tally_t *t, const char *fmt, ...)
{
    va_list ap;
    if (t->first[0] != '\0')
        return;
    va_start(ap, fmt);
    vsnprintf(t->first, sizeof(t->first), fmt, ap);
    va_end(ap);
}

/* The account of pipeline (its pipelines document's account_id). 0 or -1. */
static int pipeline_account(it_env_t *env, const bson_oid_t *pipeline,
                            bson_oid_t *out)
{
    mongoc_collection_t *c = it_coll(env, "pipelines");
    bson_t *filter = BCON_NEW("_id", BCON_OID(pipeline));
    mongoc_cursor_t *cur =
        mongoc_collection_find_with_opts(c, filter, NULL, NULL);
    const bson_t *doc;
    int rc = -1;
    if (mongoc_cursor_next(cur, &doc) &&
        dip_bson_get_oid(doc, "account_id", out) == 0)
        rc = 0;
    mongoc_cursor_destroy(cur);
    bson_destroy(filter);
    mongoc_collection_destroy(c);
    return rc;
}

/* The stages of pipeline, read as the worker reads them: by account and
 * pipeline, the prefix of account_pipeline_name (a pipeline id alone has no
 * index, and the suite runs with notablescan on). */
static size_t load_stages(it_env_t *env, const bson_oid_t *pipeline,
                          stage_t *out, size_t cap)
{
    mongoc_collection_t *c = it_coll(env, "pipeline_stages");
    bson_t *filter = bson_new();
    bson_oid_t account;
    if (pipeline_account(env, pipeline, &account) == 0)
        BSON_APPEND_OID(filter, "account_id", &account);
    BSON_APPEND_OID(filter, "pipeline_id", pipeline);
    mongoc_cursor_t *cur =
        mongoc_collection_find_with_opts(c, filter, NULL, NULL);
    const bson_t *doc;
    size_t n = 0;
    while (mongoc_cursor_next(cur, &doc) && n < cap) {
        const char *name = dip_bson_get_str(doc, "name");
        if (dip_bson_get_oid(doc, "_id", &out[n].id) != 0)
            continue;
        snprintf(out[n].name, sizeof(out[n].name), "%s", name ? name : "");
        n++;
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(filter);
    mongoc_collection_destroy(c);
    return n;
}

static const char *stage_name(const stage_t *s, size_t n, const bson_t *deal)
{
    bson_oid_t id;
    if (dip_bson_get_oid(deal, "stage_id", &id) != 0)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (bson_oid_equal(&s[i].id, &id))
            return s[i].name;
    return NULL;
}

/* Runs fn over every document of coll that filter (taken) matches. 0 or
 * -1. */
static int each(it_env_t *env, const char *coll, bson_t *filter,
                void (*fn)(void *arg, const bson_t *doc), void *arg)
{
    mongoc_collection_t *c = it_coll(env, coll);
    bson_t *opts = BCON_NEW("batchSize", BCON_INT32(5000));
    mongoc_cursor_t *cur =
        mongoc_collection_find_with_opts(c, filter, opts, NULL);
    const bson_t *doc;
    bson_error_t error;
    int rc = 0;
    while (mongoc_cursor_next(cur, &doc))
        fn(arg, doc);
    if (mongoc_cursor_error(cur, &error)) {
        fprintf(stderr, "reading %s failed: %s\n", coll, error.message);
        rc = -1;
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(filter);
    bson_destroy(opts);
    mongoc_collection_destroy(c);
    return rc;
}

typedef struct {
    const it_gen_t *gen;
    it_tally_t *t;
    uint8_t *seen;
    stage_t *stages;
    size_t nstages;
} pass_t;

static int64_t line_of(const bson_t *doc, const char *key)
{
    bson_iter_t it;
    if (!bson_iter_init(&it, doc) || !bson_iter_find_descendant(&it, key, &it))
        return -1;
    return bson_iter_as_int64(&it);
}

static void on_deal(void *arg, const bson_t *deal)
{
    pass_t *p = arg;
    char why[768];
    int64_t line = line_of(deal, "import.line");
    p->t->deals++;
    if (line >= 1 && (uint64_t)line <= it_gen_rows(p->gen)) {
        if (p->seen[line]++) {
            p->t->deal_twice++;
            note(p->t, "line %lld has more than one deal", (long long)line);
        }
    }
    if (it_gen_check_deal(p->gen, deal, stage_name(p->stages, p->nstages, deal),
                          why, sizeof(why)) < 0) {
        p->t->deal_wrong++;
        note(p->t, "deal: %s", why);
    }
}

static void on_error(void *arg, const bson_t *doc)
{
    pass_t *p = arg;
    char why[768];
    int64_t line = line_of(doc, "line");
    p->t->errors++;
    if (line >= 1 && (uint64_t)line <= it_gen_rows(p->gen)) {
        if (p->seen[line]++) {
            p->t->error_twice++;
            note(p->t, "line %lld has more than one error document",
                 (long long)line);
        }
    }
    if (it_gen_check_error(p->gen, doc, why, sizeof(why)) < 0) {
        p->t->error_wrong++;
        note(p->t, "error document: %s", why);
    }
}

int it_check_import(it_env_t *env, const bson_oid_t *qid,
                    const bson_oid_t *pipeline, const it_gen_t *gen,
                    it_tally_t *t)
{
    uint64_t rows = it_gen_rows(gen);
    pass_t p = {gen, t, NULL, NULL, 0};
    bson_t *deals;
    int rc = -1;
    memset(t, 0, sizeof(*t));
    p.seen = calloc(rows + 1, 1);
    p.stages = calloc(MAX_STAGES, sizeof(stage_t));
    if (p.seen == NULL || p.stages == NULL)
        goto cleanup;
    p.nstages = load_stages(env, pipeline, p.stages, MAX_STAGES);
    deals = bson_new();
    it_append_import_deals(env, deals, qid);
    if (each(env, "deals", deals, on_deal, &p) < 0)
        goto cleanup;
    for (uint64_t line = 1; line <= rows; line++)
        if (it_gen_kind(gen, line) == IT_ROW_GOOD && !p.seen[line]) {
            t->deal_missing++;
            note(t, "good line %llu has no deal", (unsigned long long)line);
        }
    memset(p.seen, 0, rows + 1);
    if (each(env, "csv_import_errors", BCON_NEW("queue_id", BCON_OID(qid)),
             on_error, &p) < 0)
        goto cleanup;
    for (uint64_t line = 1; line <= rows; line++) {
        it_row_t kind = it_gen_kind(gen, line);
        if (kind != IT_ROW_GOOD && !p.seen[line]) {
            t->error_missing++;
            note(t, "line %llu (%s) has no error document",
                 (unsigned long long)line, it_gen_kind_name(kind));
        }
    }
    rc = 0;
cleanup:
    free(p.seen);
    free(p.stages);
    return rc;
}

int it_check_stages(it_env_t *env, const bson_oid_t *pipeline,
                    const it_gen_t *gen, char *why, size_t whylen)
{
    stage_t *s = calloc(MAX_STAGES, sizeof(stage_t));
    size_t n;
    int rc = -1;
    if (s == NULL) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    n = load_stages(env, pipeline, s, MAX_STAGES);
    for (size_t i = 0; i < n; i++) {
        if (!it_gen_uses_stage(gen, s[i].name)) {
            snprintf(why, whylen, "stage '%s' is not one the file uses",
                     s[i].name);
            goto cleanup;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(s[i].name, s[j].name) == 0) {
                snprintf(why, whylen, "stage '%s' exists twice", s[i].name);
                goto cleanup;
            }
    }
    if (n != it_gen_stage_count(gen)) {
        snprintf(why, whylen, "%zu stages, the file uses %zu", n,
                 it_gen_stage_count(gen));
        goto cleanup;
    }
    rc = 0;
cleanup:
    free(s);
    return rc;
}

int it_has_note(it_env_t *env, const bson_oid_t *qid, const char *words)
{
    mongoc_collection_t *c = it_coll(env, "csv_imports");
    bson_t *filter = BCON_NEW("queue_id", BCON_OID(qid));
    mongoc_cursor_t *cur =
        mongoc_collection_find_with_opts(c, filter, NULL, NULL);
    const bson_t *doc;
    int found = 0;
    if (mongoc_cursor_next(cur, &doc)) {
        bson_iter_t it, notes;
        if (bson_iter_init_find(&it, doc, "notes") &&
            BSON_ITER_HOLDS_ARRAY(&it) && bson_iter_recurse(&it, &notes))
            while (bson_iter_next(&notes))
                if (BSON_ITER_HOLDS_UTF8(&notes) &&
                    strstr(bson_iter_utf8(&notes, NULL), words))
                    found = 1;
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(filter);
    mongoc_collection_destroy(c);
    return found;
}

int64_t it_count_import_deals(it_env_t *env, const bson_oid_t *qid,
                              const char *json)
{
    mongoc_collection_t *c = it_coll(env, "deals");
    bson_error_t error;
    bson_t *own = bson_new_from_json((const uint8_t *)json, -1, &error);
    bson_t *filter = bson_new();
    int64_t n;
    if (own == NULL) {
        fprintf(stderr, "bad filter JSON '%s': %s\n", json, error.message);
        exit(1);
    }
    /* The import on the deals index, then the filter's own keys. */
    it_append_import_deals(env, filter, qid);
    bson_concat(filter, own);
    n = mongoc_collection_count_documents(c, filter, NULL, NULL, NULL, &error);
    if (n < 0)
        fprintf(stderr, "count on deals failed: %s\n", error.message);
    bson_destroy(own);
    bson_destroy(filter);
    mongoc_collection_destroy(c);
    return n;
}

int64_t it_count_id(it_env_t *env, const char *coll, const char *key,
                    const bson_oid_t *id)
{
    mongoc_collection_t *c;
    bson_t *filter;
    bson_error_t error;
    int64_t n;
    bson_oid_t account;
    /* An import's deals: on their index, in the import's account. */
    if (strcmp(coll, "deals") == 0 && strcmp(key, "import.queue_id") == 0)
        return it_count_import_deals(env, id, "{}");
    c = it_coll(env, coll);
    filter = bson_new();
    /* A pipeline's stages, or its imported deals: in the pipeline's
     * account, the prefix of account_pipeline_name or of
     * account_import_line (whose partial filter is said). */
    if (strcmp(key, "pipeline_id") == 0 &&
        pipeline_account(env, id, &account) == 0)
        BSON_APPEND_OID(filter, "account_id", &account);
    BSON_APPEND_OID(filter, key, id);
    if (strcmp(coll, "deals") == 0 &&
        (strcmp(key, "pipeline_id") == 0 || strcmp(key, "account_id") == 0))
        BCON_APPEND(filter, "import", "{", "$exists", BCON_BOOL(true), "}");
    n = mongoc_collection_count_documents(c, filter, NULL, NULL, NULL, &error);
    if (n < 0)
        fprintf(stderr, "count on %s failed: %s\n", coll, error.message);
    bson_destroy(filter);
    mongoc_collection_destroy(c);
    return n;
}

void it_queue_set(it_env_t *env, const bson_oid_t *qid, const bson_t *set)
{
    mongoc_collection_t *c = it_coll(env, "queues");
    bson_t *filter = BCON_NEW("_id", BCON_OID(qid));
    bson_t update = BSON_INITIALIZER;
    bson_error_t error;
    BSON_APPEND_DOCUMENT(&update, "$set", set);
    if (!mongoc_collection_update_one(c, filter, &update, NULL, NULL, &error)) {
        fprintf(stderr, "cannot update a queue document: %s\n", error.message);
        exit(1);
    }
    bson_destroy(&update);
    bson_destroy(filter);
    mongoc_collection_destroy(c);
}

void it_put_file(it_env_t *env, const char *key, const char *path)
{
    char err[512];
    if (dip_storage_put_file(env->storage, key, path, err, sizeof(err)) != 0) {
        fprintf(stderr, "upload of '%s' failed: %s\n", key, err);
        exit(1);
    }
}

int it_log_count(const char *path, const char *needle)
{
    FILE *f = fopen(path, "re");
    char line[4096];
    int n = 0;
    if (f == NULL)
        return 0;
    while (fgets(line, sizeof(line), f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

int it_log_trouble(const char *path)
{
    static const char *const words[] = {
        "Sanitizer", "runtime error:", "killed by signal", "crashed"};
    int n = 0;
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        int k = it_log_count(path, words[i]);
        if (k > 0)
            fprintf(stderr, "%s: %d lines with '%s'\n", path, k, words[i]);
        n += k;
    }
    return n;
}

pid_t it_devmongo_pid(void)
{
    const char *dir = getenv("DEALIMPORT_DEVSTACK_DIR");
    char path[512];
    long pid = -1;
    FILE *f;
    if (getenv("DEALIMPORT_TEST_MONGODB_URI") != NULL || dir == NULL)
        return -1;
    snprintf(path, sizeof(path), "%s/mongo.pid", dir);
    f = fopen(path, "re");
    if (f == NULL)
        return -1;
    if (fscanf(f, "%ld", &pid) != 1)
        pid = -1;
    fclose(f);
    return pid > 0 ? (pid_t)pid : -1;
}

double it_scale(void)
{
    const char *s = getenv("DEALIMPORT_TEST_SCALE");
    double v;
    if (s != NULL && (v = strtod(s, NULL)) > 0 && v <= 10)
        return v;
#ifdef DEALIMPORT_SANITIZE
    return 0.25;
#else
    return 1.0;
#endif
}
