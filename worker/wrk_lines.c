/*
 * wrk_lines: one document per written batch of what its lines did, for
 * the success file (see wrk_lines.h).
 */
#include "wrk_lines.h"
#include "dip_bson.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mongoc/mongoc.h>

const char *wrk_lines_action_name(wrk_lines_action_t a)
{
    switch (a) {
    case WRK_LINES_CREATED:
        return "created";
    case WRK_LINES_UPDATED:
        return "updated";
    case WRK_LINES_UNCHANGED:
        return "unchanged";
    default:
        return NULL;
    }
}

int wrk_lines_prepare(wrk_db_t *db, char *err, size_t errlen)
{
    bson_t *keys =
        BCON_NEW("queue_id", BCON_INT32(1), "first_line", BCON_INT32(1));
    int rc = wrk_db_unique_index(db, WRK_LINES_COLLECTION, WRK_LINES_INDEX,
                                 keys, NULL, err, errlen);
    bson_destroy(keys);
    return rc;
}

static int is_zero(const bson_oid_t *id)
{
    static const bson_oid_t zero = {{0}};
    return bson_oid_equal(id, &zero);
}

/* The ids of the rows not known (zero): the deals this import created at their
 * lines, one find on the deals' unique (account_id, import.queue_id,
 * import.line), bounded by maxTimeMS. A line whose deal is not found keeps
 * the zero id (a deal deleted since). */
static int find_ids(wrk_db_t *db, const bson_oid_t *qid,
                    const bson_oid_t *account, size_t n, const int64_t *lines,
                    const wrk_lines_action_t *action, bson_oid_t *ids,
                    char *err, size_t errlen)
{
    bson_t filter = BSON_INITIALIZER, sub, in, *opts;
    mongoc_collection_t *deals;
    uint32_t nin = 0;
    int rc = WRK_DB_OK;
    BSON_APPEND_OID(&filter, "account_id", account);
    BSON_APPEND_OID(&filter, "import.queue_id", qid);
    BSON_APPEND_DOCUMENT_BEGIN(&filter, "import.line", &sub);
    BSON_APPEND_ARRAY_BEGIN(&sub, "$in", &in);
    for (size_t i = 0; i < n; i++) {
        char kb[16];
        const char *k;
        size_t kl;
        if (!is_zero(&ids[i]) || action[i] == WRK_LINES_NONE)
            continue;
        kl = bson_uint32_to_string(nin++, &k, kb, sizeof(kb));
        bson_append_int64(&in, k, (int)kl, lines[i]);
    }
    bson_append_array_end(&sub, &in);
    bson_append_document_end(&filter, &sub);
    if (nin == 0) {
        bson_destroy(&filter);
        return WRK_DB_OK;
    }
    opts = BCON_NEW("projection", "{", "import.line", BCON_INT32(1), "}",
                    "maxTimeMS", BCON_INT64((int64_t)wrk_db_max_time_ms(db)),
                    "batchSize", BCON_INT64((int64_t)nin + 1));
    deals = wrk_db_collection(db, "deals");
    for (int attempt = 1;; attempt++) {
        mongoc_cursor_t *c =
            mongoc_collection_find_with_opts(deals, &filter, opts, NULL);
        const bson_t *doc;
        bson_error_t error;
        while (mongoc_cursor_next(c, &doc)) {
            int64_t line = dip_bson_get_int(doc, "import.line", -1);
            bson_oid_t id;
            if (dip_bson_get_oid(doc, "_id", &id) != 0)
                continue;
            for (size_t i = 0; i < n; i++)
                if (lines[i] == line && is_zero(&ids[i]))
                    bson_oid_copy(&id, &ids[i]);
        }
        wrk_db_count_round_trip(db);
        if (!mongoc_cursor_error(c, &error)) {
            mongoc_cursor_destroy(c);
            break;
        }
        mongoc_cursor_destroy(c);
        if (!wrk_db_retry(db, &error, attempt,
                          "finding the deals of lines written before", &rc, err,
                          errlen))
            break;
    }
    mongoc_collection_destroy(deals);
    bson_destroy(opts);
    bson_destroy(&filter);
    return rc;
}

int wrk_lines_record(wrk_db_t *db, const bson_oid_t *qid,
                     const bson_oid_t *account, const bson_t *file, size_t n,
                     const int64_t *lines, const wrk_lines_action_t *action,
                     bson_oid_t *ids, char *err, size_t errlen)
{
    bson_t sel = BSON_INITIALIZER, doc = BSON_INITIALIZER, rows, row;
    bson_t *opts = NULL;
    mongoc_collection_t *coll = NULL;
    int64_t first = -1, last = -1;
    uint32_t nrows = 0;
    int rc;
    for (size_t i = 0; i < n; i++)
        if (action[i] != WRK_LINES_NONE) {
            if (first < 0)
                first = lines[i];
            last = lines[i];
        }
    if (first < 0)
        return WRK_DB_OK;
    rc = find_ids(db, qid, account, n, lines, action, ids, err, errlen);
    if (rc != WRK_DB_OK)
        goto cleanup;
    BSON_APPEND_OID(&sel, "queue_id", qid);
    BSON_APPEND_INT64(&sel, "first_line", first);
    BSON_APPEND_OID(&doc, "queue_id", qid);
    BSON_APPEND_INT64(&doc, "first_line", first);
    BSON_APPEND_INT64(&doc, "last_line", last);
    if (file)
        BSON_APPEND_DOCUMENT(&doc, "file", file);
    BSON_APPEND_ARRAY_BEGIN(&doc, "rows", &rows);
    for (size_t i = 0; i < n; i++) {
        char kb[16];
        const char *k;
        size_t kl;
        if (action[i] == WRK_LINES_NONE)
            continue;
        kl = bson_uint32_to_string(nrows++, &k, kb, sizeof(kb));
        bson_append_document_begin(&rows, k, (int)kl, &row);
        BSON_APPEND_INT64(&row, "line", lines[i]);
        BSON_APPEND_UTF8(&row, "action", wrk_lines_action_name(action[i]));
        BSON_APPEND_OID(&row, "deal_id", &ids[i]);
        bson_append_document_end(&rows, &row);
    }
    bson_append_array_end(&doc, &rows);
    BSON_APPEND_DATE_TIME(&doc, "created_at", dip_bson_now_ms());
    opts = BCON_NEW("upsert", BCON_BOOL(true));
    coll = wrk_db_collection(db, WRK_LINES_COLLECTION);
    for (int attempt = 1;; attempt++) {
        bson_error_t error;
        bool ok =
            mongoc_collection_replace_one(coll, &sel, &doc, opts, NULL, &error);
        wrk_db_count_round_trip(db);
        /* Two runs racing on one batch (a takeover): the loser's upsert
         * meets the winner's document; it holds the same lines. */
        if (ok || (error.domain == MONGOC_ERROR_SERVER && error.code == 11000))
            break;
        if (!wrk_db_retry(db, &error, attempt, "recording the lines written",
                          &rc, err, errlen))
            break;
    }
cleanup:
    if (coll)
        mongoc_collection_destroy(coll);
    if (opts)
        bson_destroy(opts);
    bson_destroy(&sel);
    bson_destroy(&doc);
    return rc;
}
