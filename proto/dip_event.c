/*
 * dip_event: records completion events (see dip_event.h).
 */
#include "dip_event.h"
#include "dip_bson.h"
#include "dip_text.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

int dip_event_ensure_indexes(mongoc_collection_t *coll, char *err,
                             size_t errlen)
{
    bson_t cmd = BSON_INITIALIZER, indexes, one, keys, two, keys2;
    bson_error_t e;
    int ok;
    BSON_APPEND_UTF8(&cmd, "createIndexes", mongoc_collection_get_name(coll));
    BSON_APPEND_ARRAY_BEGIN(&cmd, "indexes", &indexes);
    BSON_APPEND_DOCUMENT_BEGIN(&indexes, "0", &one);
    BSON_APPEND_DOCUMENT_BEGIN(&one, "key", &keys);
    BSON_APPEND_INT32(&keys, "queue_id", 1);
    BSON_APPEND_INT32(&keys, "type", 1);
    bson_append_document_end(&one, &keys);
    BSON_APPEND_UTF8(&one, "name", "queue_id_1_type_1");
    BSON_APPEND_BOOL(&one, "unique", true);
    bson_append_document_end(&indexes, &one);
    BSON_APPEND_DOCUMENT_BEGIN(&indexes, "1", &two);
    BSON_APPEND_DOCUMENT_BEGIN(&two, "key", &keys2);
    BSON_APPEND_INT32(&keys2, "status", 1);
    BSON_APPEND_INT32(&keys2, "next_attempt_at", 1);
    bson_append_document_end(&two, &keys2);
    BSON_APPEND_UTF8(&two, "name", "status_1_next_attempt_at_1");
    bson_append_document_end(&indexes, &two);
    bson_append_array_end(&cmd, &indexes);
    ok = mongoc_collection_write_command_with_opts(coll, &cmd, NULL, NULL, &e);
    bson_destroy(&cmd);
    if (!ok) {
        dip_text_say(-1, err, errlen, "import_events indexes: %s", e.message);
        return -1;
    }
    return 0;
}

/* --- recording ------------------------------------------------------------ */

/* The text form of an id as stored: an ObjectId's hex, a string as it is;
 * "" for anything else. */
static const char *id_text(const bson_t *doc, const char *path, char *buf,
                           size_t len)
{
    bson_iter_t it;
    buf[0] = '\0';
    if (!bson_iter_init(&it, doc) || !bson_iter_find_descendant(&it, path, &it))
        return buf;
    if (BSON_ITER_HOLDS_OID(&it))
        bson_oid_to_string(bson_iter_oid(&it), buf);
    else if (BSON_ITER_HOLDS_UTF8(&it))
        snprintf(buf, len, "%s", bson_iter_utf8(&it, NULL));
    return buf;
}

int dip_event_record(mongoc_collection_t *coll, const bson_t *queue_doc,
                     const char *type, const bson_t *details, long max_s,
                     int held, char *err, size_t errlen)
{
    bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set, payload,
           auth;
    bson_t opts = BSON_INITIALIZER;
    bson_oid_t id;
    bson_iter_t it;
    bson_error_t e;
    char hex[25], buf[128], when[DIP_BSON_ISO_TIME_LEN];
    const char *auth_keys[] = {"user_id", "account_id", "parent_account",
                               "client_id"};
    const char *auth_names[] = {"uid", "account_id", "parent_account",
                                "client_id"};
    int64_t now = dip_bson_now_ms();
    int rc = -1;

    if (!bson_iter_init_find(&it, queue_doc, "_id")) {
        dip_text_say(-1, err, errlen, "completion event: out of memory");
        goto cleanup;
    }
    bson_oid_init(&id, NULL);
    bson_oid_to_string(&id, hex);
    dip_bson_iso_time(now, when, sizeof(when));

    bson_append_value(&filter, "queue_id", -1, bson_iter_value(&it));
    BSON_APPEND_UTF8(&filter, "type", type);

    BSON_APPEND_DOCUMENT_BEGIN(&update, "$setOnInsert", &set);
    BSON_APPEND_OID(&set, "_id", &id);
    BSON_APPEND_UTF8(&set, "status", held ? "held" : "pending");
    BSON_APPEND_DATE_TIME(&set, "created_at", now);
    BSON_APPEND_DATE_TIME(&set, "next_attempt_at", now);
    BSON_APPEND_DATE_TIME(&set, "expires_at", now + (int64_t)max_s * 1000);
    BSON_APPEND_ARRAY_BEGIN(&set, "attempts", &payload);
    bson_append_array_end(&set, &payload);
    /* The token's claims, as the seed signed them. */
    BSON_APPEND_DOCUMENT_BEGIN(&set, "auth", &auth);
    for (size_t i = 0; i < sizeof(auth_keys) / sizeof(auth_keys[0]); i++)
        BSON_APPEND_UTF8(&auth, auth_names[i],
                         id_text(queue_doc, auth_keys[i], buf, sizeof(buf)));
    bson_append_document_end(&set, &auth);
    /* What the CRM receives, JSON-ready: ids as text, times as ISO 8601. */
    BSON_APPEND_DOCUMENT_BEGIN(&set, "payload", &payload);
    BSON_APPEND_UTF8(&payload, "id", hex);
    BSON_APPEND_UTF8(&payload, "type", type);
    BSON_APPEND_UTF8(&payload, "queue_id",
                     id_text(queue_doc, "_id", buf, sizeof(buf)));
    BSON_APPEND_UTF8(&payload, "account_id",
                     id_text(queue_doc, "account_id", buf, sizeof(buf)));
    BSON_APPEND_UTF8(&payload, "user_id",
                     id_text(queue_doc, "user_id", buf, sizeof(buf)));
    BSON_APPEND_UTF8(&payload, "file_name",
                     id_text(queue_doc, "csv.0.name", buf, sizeof(buf)));
    BSON_APPEND_UTF8(&payload, "occurred_at", when);
    if (details && bson_iter_init(&it, details))
        while (bson_iter_next(&it))
            bson_append_iter(&payload, bson_iter_key(&it), -1, &it);
    bson_append_document_end(&set, &payload);
    bson_append_document_end(&update, &set);

    BSON_APPEND_BOOL(&opts, "upsert", true);
    if (!mongoc_collection_update_one(coll, &filter, &update, &opts, NULL,
                                      &e) &&
        e.code != 11000) {
        /* 11000: another supervisor recorded it a moment ago. */
        dip_text_say(-1, err, errlen, "recording the completion event: %s",
                     e.message);
        goto cleanup;
    }
    rc = 0;
cleanup:
    bson_destroy(&filter);
    bson_destroy(&update);
    bson_destroy(&opts);
    return rc;
}

int dip_event_release(mongoc_collection_t *coll, const bson_value_t *queue_id,
                      const bson_t *details, char *err, size_t errlen)
{
    bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set;
    bson_error_t e;
    bson_iter_t it;
    int rc = 0;
    BSON_APPEND_VALUE(&filter, "queue_id", queue_id);
    BSON_APPEND_UTF8(&filter, "status", "held");
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    BSON_APPEND_UTF8(&set, "status", "pending");
    BSON_APPEND_DATE_TIME(&set, "next_attempt_at", dip_bson_now_ms());
    if (details && bson_iter_init(&it, details))
        while (bson_iter_next(&it)) {
            char key[128];
            snprintf(key, sizeof(key), "payload.%s", bson_iter_key(&it));
            bson_append_iter(&set, key, -1, &it);
        }
    bson_append_document_end(&update, &set);
    if (!mongoc_collection_update_many(coll, &filter, &update, NULL, NULL,
                                       &e)) {
        dip_text_say(-1, err, errlen, "releasing the completion event: %s",
                     e.message);
        rc = -1;
    }
    bson_destroy(&filter);
    bson_destroy(&update);
    return rc;
}
