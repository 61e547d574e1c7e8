/*
 * ctl_restore: before-images back onto their deals, in batches of BATCH:
 * one read of the batch's deals, one bulk write of the guarded updates (the
 * filter holds the values the import wrote, so a deal changed meanwhile is
 * never overwritten), one read again to judge each deal by what it now
 * holds, one bulk write of the marks.
 */
#include "ctl_restore.h"
#include "dip_bson.h"
#include "dip_mongo_io.h"

#include <stdlib.h>
#include <string.h>

#define BATCH 500
#define CHANGES "deal_import_changes"

static void (*before_write)(void *);
static void *before_write_arg;

void ctl_restore_set_before_write(void (*fn)(void *), void *arg)
{
    before_write = fn;
    before_write_arg = arg;
}

/* The tags the import added against the deal's tags: *all when the deal
 * holds every one, *none when it holds none. 0 when the record added no
 * tag. */
static int judge_tags(const bson_t *change, const bson_t *deal, int *all,
                      int *none)
{
    bson_iter_t it, t, dt, d;
    int n = 0;
    *all = 1;
    *none = 1;
    if (!bson_iter_init_find(&it, change, "tags_added") ||
        !BSON_ITER_HOLDS_ARRAY(&it) || !bson_iter_recurse(&it, &t))
        return 0;
    while (bson_iter_next(&t)) {
        int has = 0;
        if (bson_iter_init_find(&dt, deal, "tags") &&
            BSON_ITER_HOLDS_ARRAY(&dt) && bson_iter_recurse(&dt, &d))
            while (!has && bson_iter_next(&d))
                has = dip_bson_iter_equal(&t, &d);
        if (has)
            *none = 0;
        else
            *all = 0;
        n++;
    }
    return n;
}

int ctl_restore_judge(const bson_t *change, const bson_t *deal)
{
    bson_iter_t it, ch;
    int all_a = 1, all_b = 1, n = 0, tags_all, tags_none;
    if (deal == NULL || !bson_iter_init_find(&it, change, "changes") ||
        !BSON_ITER_HOLDS_ARRAY(&it) || !bson_iter_recurse(&it, &ch))
        return 0;
    while (bson_iter_next(&ch)) {
        bson_iter_t e, f, a, b, cur;
        const char *field;
        int found, has_b;
        if (!BSON_ITER_HOLDS_DOCUMENT(&ch) || !bson_iter_recurse(&ch, &e))
            return 0;
        if (!bson_iter_recurse(&ch, &f) || !bson_iter_find(&f, "f") ||
            !BSON_ITER_HOLDS_UTF8(&f) || !bson_iter_recurse(&ch, &a) ||
            !bson_iter_find(&a, "a"))
            return 0;
        field = bson_iter_utf8(&f, NULL);
        has_b = bson_iter_recurse(&ch, &b) && bson_iter_find(&b, "b");
        found = bson_iter_init(&cur, deal) &&
                bson_iter_find_descendant(&cur, field, &cur);
        if (!found || !dip_bson_iter_equal(&cur, &a))
            all_a = 0;
        /* a previous null is put back as null; a field the deal lacked
         * is unset (null counts as absent) */
        if (has_b ? !(found && dip_bson_iter_equal(&cur, &b))
                  : found && !BSON_ITER_HOLDS_NULL(&cur))
            all_b = 0;
        n++;
    }
    /* the tags the import added are values it wrote, as the fields are:
     * a record may hold only tags (the row's values equalled the deal's) */
    n += judge_tags(change, deal, &tags_all, &tags_none);
    if (n == 0)
        return 0;
    return all_a && tags_all ? 1 : all_b && tags_none ? 2 : 0;
}

typedef struct batch {
    bson_t *recs[BATCH];
    bson_t *deals[BATCH]; /* the deal of recs[i], or NULL when gone */
    size_t n;
} batch_t;

static void batch_clear(batch_t *b)
{
    for (size_t i = 0; i < b->n; i++) {
        bson_destroy(b->recs[i]);
        if (b->deals[i])
            bson_destroy(b->deals[i]);
        b->recs[i] = b->deals[i] = NULL;
    }
    b->n = 0;
}

/* Reads the batch's deals (within the account) into b->deals. */
static int read_deals(mongoc_collection_t *deals, const bson_oid_t *account,
                      batch_t *b, bson_error_t *error)
{
    bson_t filter = BSON_INITIALIZER, sub, arr;
    mongoc_cursor_t *c;
    const bson_t *d;
    int rc = 0;
    BSON_APPEND_DOCUMENT_BEGIN(&filter, "_id", &sub);
    BSON_APPEND_ARRAY_BEGIN(&sub, "$in", &arr);
    for (size_t i = 0; i < b->n; i++) {
        bson_oid_t id;
        char kb[16];
        const char *k;
        size_t kl = bson_uint32_to_string((uint32_t)i, &k, kb, sizeof(kb));
        if (b->deals[i]) {
            bson_destroy(b->deals[i]);
            b->deals[i] = NULL;
        }
        if (dip_bson_get_oid(b->recs[i], "deal_id", &id) == 0)
            bson_append_oid(&arr, k, (int)kl, &id);
    }
    bson_append_array_end(&sub, &arr);
    bson_append_document_end(&filter, &sub);
    /* the CRM's deals may hold the account as hex: both forms match */
    dip_bson_append_id_match(&filter, "account_id", account);
    c = mongoc_collection_find_with_opts(deals, &filter, NULL, NULL);
    while (mongoc_cursor_next(c, &d)) {
        bson_oid_t id, want;
        if (dip_bson_get_oid(d, "_id", &id) != 0)
            continue;
        for (size_t i = 0; i < b->n; i++)
            if (b->deals[i] == NULL &&
                dip_bson_get_oid(b->recs[i], "deal_id", &want) == 0 &&
                bson_oid_equal(&id, &want))
                b->deals[i] = bson_copy(d);
    }
    if (mongoc_cursor_error(c, error))
        rc = -1;
    mongoc_cursor_destroy(c);
    bson_destroy(&filter);
    return rc;
}

/* The guarded update of one deal: filter on the values the import wrote,
 * then the previous values back and the added tags pulled. */
static int add_restore(mongoc_bulk_operation_t *bulk, const bson_t *rec,
                       const bson_oid_t *account, bson_error_t *error)
{
    bson_t sel = BSON_INITIALIZER, upd = BSON_INITIALIZER, set, unset, pull, in;
    bson_iter_t it, ch, t;
    bson_oid_t id;
    int nunset = 0, ok, guarded = 1;
    dip_bson_get_oid(rec, "deal_id", &id);
    BSON_APPEND_OID(&sel, "_id", &id);
    dip_bson_append_id_match(&sel, "account_id", account);
    BSON_APPEND_DOCUMENT_BEGIN(&upd, "$set", &set);
    if (bson_iter_init_find(&it, rec, "changes") && bson_iter_recurse(&it, &ch))
        while (bson_iter_next(&ch)) {
            bson_iter_t f, a, b;
            if (!bson_iter_recurse(&ch, &f) || !bson_iter_find(&f, "f") ||
                !bson_iter_recurse(&ch, &a) || !bson_iter_find(&a, "a"))
                continue;
            /* exactly a, never an array holding it (dip_bson_append_is) */
            if (!dip_bson_append_is(&sel, bson_iter_utf8(&f, NULL), &a))
                guarded = 0;
            if (bson_iter_recurse(&ch, &b) && bson_iter_find(&b, "b"))
                bson_append_value(&set, bson_iter_utf8(&f, NULL), -1,
                                  bson_iter_value(&b));
            else
                nunset++;
        }
    /* and every tag it added, as ctl_restore_judge saw them */
    if (bson_iter_init_find(&it, rec, "tags_added") &&
        BSON_ITER_HOLDS_ARRAY(&it) && bson_iter_recurse(&it, &t) &&
        bson_iter_next(&t)) {
        bson_t all;
        BSON_APPEND_DOCUMENT_BEGIN(&sel, "tags", &all);
        bson_append_iter(&all, "$all", -1, &it);
        bson_append_document_end(&sel, &all);
    }
    BSON_APPEND_DATE_TIME(&set, "updated_at", dip_bson_now_ms());
    bson_append_document_end(&upd, &set);
    if (nunset > 0 && bson_iter_init_find(&it, rec, "changes") &&
        bson_iter_recurse(&it, &ch)) {
        BSON_APPEND_DOCUMENT_BEGIN(&upd, "$unset", &unset);
        while (bson_iter_next(&ch)) {
            bson_iter_t f, b;
            if (bson_iter_recurse(&ch, &f) && bson_iter_find(&f, "f") &&
                !(bson_iter_recurse(&ch, &b) && bson_iter_find(&b, "b")))
                BSON_APPEND_UTF8(&unset, bson_iter_utf8(&f, NULL), "");
        }
        bson_append_document_end(&upd, &unset);
    }
    if (bson_iter_init_find(&it, rec, "tags_added") &&
        BSON_ITER_HOLDS_ARRAY(&it) && bson_iter_recurse(&it, &t) &&
        bson_iter_next(&t)) {
        BSON_APPEND_DOCUMENT_BEGIN(&upd, "$pull", &pull);
        BSON_APPEND_DOCUMENT_BEGIN(&pull, "tags", &in);
        bson_append_iter(&in, "$in", -1, &it);
        bson_append_document_end(&pull, &in);
        bson_append_document_end(&upd, &pull);
    }
    if (!guarded) {
        /* never a restore without its whole guard */
        bson_set_error(error, MONGOC_ERROR_BSON, MONGOC_ERROR_BSON_INVALID,
                       "a revert's filter could not be built (out of memory)");
        ok = 0;
    } else {
        ok = mongoc_bulk_operation_update_one_with_opts(bulk, &sel, &upd, NULL,
                                                        error);
    }
    bson_destroy(&sel);
    bson_destroy(&upd);
    return ok ? 0 : -1;
}

static void add_id(bson_t *ids, const bson_t *rec)
{
    bson_oid_t id;
    char kb[16];
    const char *k;
    uint32_t n = bson_count_keys(ids);
    size_t kl;
    if (n >= CTL_RESTORE_IDS_MAX || dip_bson_get_oid(rec, "deal_id", &id) != 0)
        return;
    kl = bson_uint32_to_string(n, &k, kb, sizeof(kb));
    bson_append_oid(ids, k, (int)kl, &id);
}

static int run_batch(mongoc_collection_t *changes, mongoc_collection_t *deals,
                     const bson_oid_t *account, int dry, batch_t *b,
                     ctl_restore_t *out, bson_error_t *error)
{
    mongoc_bulk_operation_t *bulk = NULL;
    int rc = -1, nops = 0;
    bson_t reply;
    if (read_deals(deals, account, b, error) < 0)
        return -1;
    if (!dry) {
        /* Unordered: a deal the database refuses to take back (its
         * previous external_id held by a deal created since) stays as it
         * is, unmarked and counted refused; the others of the batch are
         * restored all the same (ordered, each run stopped at it). */
        bson_t *unordered = BCON_NEW("ordered", BCON_BOOL(false));
        bulk =
            mongoc_collection_create_bulk_operation_with_opts(deals, unordered);
        bson_destroy(unordered);
        if (before_write != NULL)
            before_write(before_write_arg);
        for (size_t i = 0; i < b->n; i++)
            if (ctl_restore_judge(b->recs[i], b->deals[i]) == 1) {
                if (add_restore(bulk, b->recs[i], account, error) < 0)
                    goto cleanup;
                nops++;
            }
        /* a refused deal stays unmarked: the next run tries it again */
        if (nops > 0 && !mongoc_bulk_operation_execute(bulk, &reply, error) &&
            !bson_has_field(&reply, "writeErrors")) {
            bson_destroy(&reply);
            goto cleanup;
        }
        if (nops > 0)
            bson_destroy(&reply);
        mongoc_bulk_operation_destroy(bulk);
        bulk = NULL;
        if (read_deals(deals, account, b, error) < 0)
            goto cleanup;
        bulk = mongoc_collection_create_bulk_operation_with_opts(changes, NULL);
        nops = 0;
    }
    for (size_t i = 0; i < b->n; i++) {
        int v = ctl_restore_judge(b->recs[i], b->deals[i]);
        const char *mark;
        if (b->deals[i] == NULL) {
            mark = "gone";
            out->gone++;
        } else if (v == 2 || (dry && v == 1)) {
            mark = "restored";
            out->restored++;
        } else if (v == 1) {
            out->refused++; /* its update failed: the next run tries again */
            continue;
        } else {
            mark = "conflict";
            out->conflicts++;
            add_id(&out->conflict_ids, b->recs[i]);
        }
        if (!dry) {
            bson_iter_t it;
            bson_t sel = BSON_INITIALIZER;
            bson_t *upd = BCON_NEW("$set", "{", "revert", BCON_UTF8(mark), "}");
            if (bson_iter_init_find(&it, b->recs[i], "_id"))
                BSON_APPEND_VALUE(&sel, "_id", bson_iter_value(&it));
            if (!mongoc_bulk_operation_update_one_with_opts(bulk, &sel, upd,
                                                            NULL, error)) {
                bson_destroy(&sel);
                bson_destroy(upd);
                goto cleanup;
            }
            nops++;
            bson_destroy(&sel);
            bson_destroy(upd);
        }
    }
    if (!dry && nops > 0) {
        if (!mongoc_bulk_operation_execute(bulk, &reply, error)) {
            bson_destroy(&reply);
            goto cleanup;
        }
        bson_destroy(&reply);
    }
    rc = 0;
cleanup:
    if (bulk)
        mongoc_bulk_operation_destroy(bulk);
    return rc;
}

/* What earlier runs marked: their counts and conflict ids. */
static int count_marked(mongoc_collection_t *changes, const bson_oid_t *qid,
                        const bson_oid_t *account, ctl_restore_t *out,
                        bson_error_t *error)
{
    static const char *const marks[] = {"restored", "conflict", "gone"};
    int64_t *to[] = {&out->restored, &out->conflicts, &out->gone};
    for (int m = 0; m < 3; m++) {
        bson_t *f = BCON_NEW("queue_id", BCON_OID(qid), "account_id",
                             BCON_OID(account), "revert", BCON_UTF8(marks[m]));
        int64_t n = mongoc_collection_count_documents(changes, f, NULL, NULL,
                                                      NULL, error);
        if (n >= 0 && m == 1) {
            bson_t *opts =
                BCON_NEW("limit", BCON_INT64(CTL_RESTORE_IDS_MAX), "projection",
                         "{", "deal_id", BCON_INT32(1), "}");
            mongoc_cursor_t *c =
                mongoc_collection_find_with_opts(changes, f, opts, NULL);
            const bson_t *d;
            while (mongoc_cursor_next(c, &d))
                add_id(&out->conflict_ids, d);
            if (mongoc_cursor_error(c, error))
                n = -1;
            mongoc_cursor_destroy(c);
            bson_destroy(opts);
        }
        bson_destroy(f);
        if (n < 0)
            return -1;
        *to[m] += n;
    }
    return 0;
}

int ctl_restore_run(mongoc_client_t *client, const char *db,
                    const bson_oid_t *qid, const bson_oid_t *account, int dry,
                    ctl_restore_t *out, bson_error_t *error)
{
    mongoc_collection_t *changes =
        mongoc_client_get_collection(client, db, CHANGES);
    mongoc_collection_t *deals =
        mongoc_client_get_collection(client, db, "deals");
    bson_t *f =
        BCON_NEW("queue_id", BCON_OID(qid), "account_id", BCON_OID(account),
                 "revert", "{", "$exists", BCON_BOOL(false), "}");
    /* In the order of the index queue_line (queue_id, line), which the
     * filter's queue_id equality leads: no sort in memory, where mongod
     * stops a find's at 100 MB (an import that updated some 400,000
     * deals could never be reverted); the marks this run sets change no
     * key of it, so no record is met twice. Bounded by maxTimeMS. */
    bson_t *order = BCON_NEW("sort", "{", "queue_id", BCON_INT32(1), "line",
                             BCON_INT32(1), "}");
    bson_t *opts = dip_mongo_read_opts(client, order);
    mongoc_cursor_t *c = NULL;
    const bson_t *d;
    batch_t *b = calloc(1, sizeof(*b));
    int rc = -1;
    memset(out, 0, sizeof(*out));
    bson_init(&out->conflict_ids);
    if (b == NULL) {
        bson_set_error(error, 0, 0, "out of memory");
        goto cleanup;
    }
    /* The marks of the run before first: the cursor below reads only the
     * unmarked, which this run marks as it goes (a real run). */
    if (count_marked(changes, qid, account, out, error) < 0)
        goto cleanup;
    c = mongoc_collection_find_with_opts(changes, f, opts, NULL);
    for (;;) {
        int more = mongoc_cursor_next(c, &d);
        if (more)
            b->recs[b->n++] = bson_copy(d);
        if ((!more || b->n == BATCH) && b->n > 0) {
            if (run_batch(changes, deals, account, dry, b, out, error) < 0)
                goto cleanup;
            batch_clear(b);
        }
        if (!more)
            break;
    }
    if (mongoc_cursor_error(c, error))
        goto cleanup;
    rc = 0;
cleanup:
    if (b) {
        batch_clear(b);
        free(b);
    }
    if (c)
        mongoc_cursor_destroy(c);
    bson_destroy(f);
    bson_destroy(opts);
    bson_destroy(order);
    mongoc_collection_destroy(changes);
    mongoc_collection_destroy(deals);
    return rc;
}

void ctl_restore_release(ctl_restore_t *out)
{
    if (out)
        bson_destroy(&out->conflict_ids);
}
