/*
 * sup_admin: the control plane's MongoDB side. Every status change it makes
 * is one findAndModify or update filtered on the status it expects, so an
 * operator's pause can never undo a claim that happened a moment earlier,
 * and a recorded request can only land on the import while the supervisor
 * named in the filter still runs it.
 */
#include "sup_admin.h"
#include "dip_bson.h"
#include "dip_claim.h"
#include "dip_ctl.h"
#include "dip_mongo_io.h"
#include "sup_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct sup_admin {
    mongoc_client_t *client; /* borrowed */
    mongoc_collection_t *queues, *imports;
    char owner[300];
};

/* Every read carries maxTimeMS below the client's socket timeout
 * (dip_mongo_max_time_ms): the server stops a query the client gave up
 * on. The cursor keeps its own copy of the options. */
static mongoc_cursor_t *find(sup_admin_t *self, mongoc_collection_t *coll,
                             const bson_t *filter, const bson_t *opts)
{
    bson_t *o = dip_mongo_read_opts(self->client, opts);
    mongoc_cursor_t *c =
        mongoc_collection_find_with_opts(coll, filter, o, NULL);
    bson_destroy(o);
    return c;
}

static const char *const all_statuses[] = {
    "pending", "processing", "paused", "completed", "failed", "cancelled",
};

sup_admin_t *sup_admin_new(mongoc_client_t *client, const char *db,
                           const char *owner)
{
    sup_admin_t *self = calloc(1, sizeof(*self));
    if (self == NULL)
        return NULL;
    self->client = client;
    self->queues = mongoc_client_get_collection(self->client, db, "queues");
    self->imports =
        mongoc_client_get_collection(self->client, db, "csv_imports");
    snprintf(self->owner, sizeof(self->owner), "%s", owner);
    return self;
}

void sup_admin_destroy(sup_admin_t **self_p)
{
    sup_admin_t *self;
    if (self_p == NULL || *self_p == NULL)
        return;
    self = *self_p;
    mongoc_collection_destroy(self->queues);
    mongoc_collection_destroy(self->imports);
    free(self);
    *self_p = NULL;
}

char *sup_admin_iso8601(int64_t ms, char *out)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    char buf[24];
    if (ms < 0 || gmtime_r(&s, &tm) == NULL) {
        snprintf(out, 32, "1970-01-01T00:00:00.000Z");
        return out;
    }
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 32, "%s.%03dZ", buf, (int)(ms % 1000));
    return out;
}

/* {_id: id in either stored form, source: 'deals'} */
static bson_t *by_id(const char *id)
{
    bson_t *q = bson_new();
    bson_oid_t oid;
    bson_oid_init_from_string(&oid, id);
    dip_bson_append_id_match(q, "_id", &oid);
    BSON_APPEND_UTF8(q, "source", "deals");
    return q;
}

/* ---- reading documents into JSON --------------------------------------- */

static int get_date(const bson_t *doc, const char *dotted, int64_t *ms)
{
    bson_iter_t it;
    if (!bson_iter_init(&it, doc) ||
        !bson_iter_find_descendant(&it, dotted, &it) ||
        !BSON_ITER_HOLDS_DATE_TIME(&it))
        return -1;
    *ms = bson_iter_date_time(&it);
    return 0;
}

static json_t *date_or_null(const bson_t *doc, const char *dotted)
{
    int64_t ms;
    char buf[32];
    if (get_date(doc, dotted, &ms) < 0)
        return json_null();
    return json_string(sup_admin_iso8601(ms, buf));
}

static json_t *id_or_null(const bson_t *doc, const char *dotted)
{
    bson_oid_t oid;
    char hex[25];
    if (dip_bson_get_oid(doc, dotted, &oid) != 0)
        return json_null();
    bson_oid_to_string(&oid, hex);
    return json_string(hex);
}

static json_t *str_or_null(const bson_t *doc, const char *dotted)
{
    const char *s = dip_bson_get_str(doc, dotted);
    return s ? json_string(s) : json_null();
}

static json_t *int_or_null(const bson_t *doc, const char *dotted)
{
    bson_iter_t it;
    if (!bson_iter_init(&it, doc) ||
        !bson_iter_find_descendant(&it, dotted, &it))
        return json_null();
    if (BSON_ITER_HOLDS_INT32(&it) || BSON_ITER_HOLDS_INT64(&it) ||
        BSON_ITER_HOLDS_DOUBLE(&it))
        return json_integer(dip_bson_get_int(doc, dotted, 0));
    return json_null();
}

json_t *sup_admin_summary(const bson_t *doc, int64_t now_ms)
{
    const char *status = dip_bson_get_str(doc, "status");
    const char *file = dip_bson_get_str(doc, "csv.0.name");
    int64_t bytes = dip_bson_get_int(doc, "progress.bytes", 0);
    int64_t total = dip_bson_get_int(doc, "progress.bytes_total", -1);
    int64_t created;
    json_t *o, *percent;

    if (file == NULL)
        file = dip_bson_get_str(doc, "csv.0.key");
    if (status && strcmp(status, "completed") == 0)
        percent = json_real(100.0);
    else if (total > 0)
        percent = json_real((double)(bytes * 1000 / total) / 10.0);
    else
        percent = json_null();
    o = json_object();
    if (o == NULL) {
        json_decref(percent);
        return NULL;
    }
    json_object_set_new(o, "id", id_or_null(doc, "_id"));
    json_object_set_new(o, "account", id_or_null(doc, "account_id"));
    json_object_set_new(o, "status", json_string(status ? status : "unknown"));
    json_object_set_new(o, "file", json_string(file ? file : ""));
    json_object_set_new(
        o, "lines", json_integer(dip_bson_get_int(doc, "progress.lines", 0)));
    json_object_set_new(
        o, "added", json_integer(dip_bson_get_int(doc, "progress.added", 0)));
    json_object_set_new(
        o, "errors", json_integer(dip_bson_get_int(doc, "progress.errors", 0)));
    json_object_set_new(o, "bytes", json_integer(bytes));
    json_object_set_new(o, "bytes_total", json_integer(total));
    json_object_set_new(o, "percent", percent);
    json_object_set_new(o, "rate", json_null());
    if (get_date(doc, "created_at", &created) == 0)
        json_object_set_new(
            o, "age_s",
            json_integer(now_ms > created ? (now_ms - created) / 1000 : 0));
    else
        json_object_set_new(o, "age_s", json_null());
    json_object_set_new(o, "owner",
                        status && strcmp(status, "processing") == 0
                            ? str_or_null(doc, "claimed_by")
                            : json_null());
    json_object_set_new(o, "local", json_false());
    json_object_set_new(o, "control", str_or_null(doc, "control.action"));
    /* Nothing above may have failed silently into a missing id. */
    if (!json_is_string(json_object_get(o, "id"))) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* A dry run's csv_imports says so (`dry_run: true`). */
static json_t *dry_run(const bson_t *ci)
{
    bson_iter_t it;
    return json_boolean(bson_iter_init_find(&it, ci, "dry_run") &&
                        BSON_ITER_HOLDS_BOOL(&it) && bson_iter_bool(&it));
}

/* What `show` tells of csv_imports: reply name, field, reader. */
static const struct {
    const char *name, *key;
    json_t *(*read)(const bson_t *doc, const char *dotted);
} ci_fields[] = {
    {"status", "status", str_or_null},
    {"total_records", "total_records", int_or_null},
    {"total_records_added", "total_records_added", int_or_null},
    {"total_errors", "total_errors", int_or_null},
    {"finished_at", "finished_at", date_or_null},
    {"reverted_at", "reverted_at", date_or_null},
    {"reverted_deals", "reverted_deals", int_or_null},
    {"reverted_stages", "reverted_stages", int_or_null},
    {"would_add", "would_add", int_or_null},
    {"new_stages", "new_stages.count", int_or_null},
};

static json_t *csv_import(sup_admin_t *self, const bson_t *doc)
{
    bson_t *filter = bson_new(), *opts;
    bson_oid_t qid;
    mongoc_cursor_t *c;
    const bson_t *ci;
    json_t *o = json_null();
    if (dip_bson_get_oid(doc, "_id", &qid) != 0) {
        bson_destroy(filter);
        return o;
    }
    dip_bson_append_id_match(filter, "queue_id", &qid);
    opts = BCON_NEW("limit", BCON_INT64(1), "projection", "{", "logs",
                    BCON_INT32(0), "}");
    c = find(self, self->imports, filter, opts);
    if (mongoc_cursor_next(c, &ci)) {
        json_decref(o);
        o = json_object();
        for (size_t i = 0; o && i < sizeof(ci_fields) / sizeof(ci_fields[0]);
             i++)
            json_object_set_new(o, ci_fields[i].name,
                                ci_fields[i].read(ci, ci_fields[i].key));
        if (o)
            json_object_set_new(o, "dry_run", dry_run(ci));
    }
    mongoc_cursor_destroy(c);
    bson_destroy(opts);
    bson_destroy(filter);
    return o ? o : json_null();
}

json_t *sup_admin_detail(sup_admin_t *self, const bson_t *doc, int64_t now_ms)
{
    json_t *o = sup_admin_summary(doc, now_ms), *cp;
    bson_iter_t it;
    if (o == NULL)
        return NULL;
    json_object_set_new(o, "owner", str_or_null(doc, "claimed_by"));
    json_object_set_new(o, "user", id_or_null(doc, "user_id"));
    json_object_set_new(o, "pipeline",
                        id_or_null(doc, "additional_data.pipeline_id"));
    json_object_set_new(o, "key", str_or_null(doc, "csv.0.key"));
    json_object_set_new(o, "error", str_or_null(doc, "error"));
    json_object_set_new(o, "claims", int_or_null(doc, "claims"));
    json_object_set_new(o, "created_at", date_or_null(doc, "created_at"));
    json_object_set_new(o, "claimed_at", date_or_null(doc, "claimed_at"));
    json_object_set_new(o, "updated_at", date_or_null(doc, "updated_at"));
    json_object_set_new(o, "finished_at", date_or_null(doc, "finished_at"));
    json_object_set_new(o, "lease_expires_at",
                        date_or_null(doc, "lease_expires_at"));
    json_object_set_new(o, "control_requested_at",
                        date_or_null(doc, "control.requested_at"));
    {
        /* The last run: from its claim to its end, or to now. */
        int64_t claimed, finished;
        const char *st = dip_bson_get_str(doc, "status");
        if (get_date(doc, "claimed_at", &claimed) == 0 &&
            get_date(doc, "finished_at", &finished) == 0 && finished >= claimed)
            json_object_set_new(o, "elapsed_s",
                                json_integer((finished - claimed) / 1000));
        else if (get_date(doc, "claimed_at", &claimed) == 0 && st &&
                 strcmp(st, "processing") == 0 && now_ms >= claimed)
            json_object_set_new(o, "elapsed_s",
                                json_integer((now_ms - claimed) / 1000));
        else
            json_object_set_new(o, "elapsed_s", json_null());
    }
    if (dip_bson_get_int(doc, "checkpoint.line", -1) >= 0) {
        cp = json_pack(
            "{s:I, s:I}", "line",
            (json_int_t)dip_bson_get_int(doc, "checkpoint.line", 0), "offset",
            (json_int_t)dip_bson_get_int(doc, "checkpoint.offset", 0));
        json_object_set_new(o, "checkpoint", cp ? cp : json_null());
    } else {
        json_object_set_new(o, "checkpoint", json_null());
    }
    if (bson_iter_init_find(&it, doc, "mappings") &&
        BSON_ITER_HOLDS_DOCUMENT(&it)) {
        const uint8_t *data;
        uint32_t len;
        bson_t sub;
        json_t *m;
        bson_iter_document(&it, &len, &data);
        if (bson_init_static(&sub, data, len) &&
            (m = dip_bson_to_json(&sub)) != NULL)
            json_object_set_new(o, "mappings", m);
    }
    json_object_set_new(o, "worker", json_null());
    json_object_set_new(o, "csv_import", csv_import(self, doc));
    return o;
}

/* ---- queries ------------------------------------------------------------ */

int sup_admin_get(sup_admin_t *self, const char *id, bson_t *out, char *err,
                  size_t errlen)
{
    bson_t *filter = by_id(id);
    bson_t *opts = BCON_NEW("limit", BCON_INT64(1));
    mongoc_cursor_t *c = find(self, self->queues, filter, opts);
    const bson_t *doc;
    bson_error_t error;
    int rc = 0;
    if (mongoc_cursor_next(c, &doc)) {
        bson_copy_to(doc, out);
        rc = 1;
    } else if (mongoc_cursor_error(c, &error)) {
        snprintf(err, errlen, "reading import '%s' failed: %s", id,
                 error.message);
        rc = -1;
    }
    mongoc_cursor_destroy(c);
    bson_destroy(opts);
    bson_destroy(filter);
    return rc;
}

/* Processing imports per account: few (bounded by every supervisor's
 * workers), so counted here rather than with an aggregation. */
static int count_accounts(sup_admin_t *self, json_t *acc, char *err,
                          size_t errlen)
{
    bson_t *filter = BCON_NEW("source", BCON_UTF8("deals"), "status",
                              BCON_UTF8("processing"));
    bson_t *opts = BCON_NEW("projection", "{", "account_id", BCON_INT32(1), "}",
                            "limit", BCON_INT64(100000));
    mongoc_cursor_t *c = find(self, self->queues, filter, opts);
    json_t *by = json_object();
    const bson_t *doc;
    bson_error_t error;
    const char *key;
    json_t *n;
    int rc = 0;
    while (by && mongoc_cursor_next(c, &doc)) {
        bson_oid_t oid;
        char hex[25];
        if (dip_bson_get_oid(doc, "account_id", &oid) != 0)
            continue;
        bson_oid_to_string(&oid, hex);
        json_object_set_new(
            by, hex,
            json_integer(json_integer_value(json_object_get(by, hex)) + 1));
    }
    if (mongoc_cursor_error(c, &error)) {
        snprintf(err, errlen, "counting imports failed: %s", error.message);
        rc = -1;
    }
    json_object_foreach(by, key, n)
    {
        json_t *o = json_pack("{s:s, s:O}", "account", key, "processing", n);
        if (o)
            json_array_append_new(acc, o);
    }
    json_decref(by);
    mongoc_cursor_destroy(c);
    bson_destroy(opts);
    bson_destroy(filter);
    return rc;
}

int sup_admin_counts(sup_admin_t *self, json_t **by_status, json_t **by_account,
                     char *err, size_t errlen)
{
    json_t *st = json_object(), *acc = json_array();
    bson_error_t error;
    *by_status = *by_account = NULL;
    if (st == NULL || acc == NULL)
        goto fail;
    for (size_t i = 0; i < sizeof(all_statuses) / sizeof(all_statuses[0]);
         i++) {
        bson_t *filter = BCON_NEW("source", BCON_UTF8("deals"), "status",
                                  BCON_UTF8(all_statuses[i]));
        bson_t *limit = BCON_NEW("limit", BCON_INT64(SUP_ADMIN_COUNT_CAP));
        bson_t *copts = dip_mongo_read_opts(self->client, limit);
        int64_t n = mongoc_collection_count_documents(
            self->queues, filter, copts, NULL, NULL, &error);
        bson_destroy(copts);
        bson_destroy(limit);
        bson_destroy(filter);
        if (n < 0) {
            snprintf(err, errlen, "counting imports failed: %s", error.message);
            goto fail;
        }
        json_object_set_new(st, all_statuses[i], json_integer(n));
    }
    if (count_accounts(self, acc, err, errlen) < 0)
        goto fail;
    *by_status = st;
    *by_account = acc;
    return 0;
fail:
    json_decref(st);
    json_decref(acc);
    return -1;
}

/* The page after a cursor: older by created_at, or as old with a smaller
 * _id (the list's order). */
static void append_after(bson_t *filter, const char *after)
{
    long long ms;
    char hex[25];
    bson_oid_t oid;
    bson_t or, a, b, lt;
    if (after == NULL || dip_ctl_cursor_parse(after, &ms, hex) < 0)
        return;
    bson_oid_init_from_string(&oid, hex);
    BSON_APPEND_ARRAY_BEGIN(filter, "$or", & or);
    BSON_APPEND_DOCUMENT_BEGIN(& or, "0", &a);
    BSON_APPEND_DOCUMENT_BEGIN(&a, "created_at", &lt);
    BSON_APPEND_DATE_TIME(&lt, "$lt", ms);
    bson_append_document_end(&a, &lt);
    bson_append_document_end(& or, &a);
    BSON_APPEND_DOCUMENT_BEGIN(& or, "1", &b);
    BSON_APPEND_DATE_TIME(&b, "created_at", ms);
    BSON_APPEND_DOCUMENT_BEGIN(&b, "_id", &lt);
    BSON_APPEND_OID(&lt, "$lt", &oid);
    bson_append_document_end(&b, &lt);
    bson_append_document_end(& or, &b);
    bson_append_array_end(filter, & or);
}

int sup_admin_list(sup_admin_t *self, const char *status, const char *account,
                   long long since_ms, const char *after, int limit,
                   json_t **out, int *truncated, char *next, char *err,
                   size_t errlen)
{
    long long last_ms = -1;
    char last_id[25] = "";
    bson_t filter = BSON_INITIALIZER, *opts;
    mongoc_cursor_t *c;
    const bson_t *doc;
    bson_error_t error;
    int64_t now = dip_bson_now_ms();
    json_t *arr = json_array();
    int n = 0, rc = 0;

    *out = NULL;
    *truncated = 0;
    next[0] = '\0';
    if (arr == NULL)
        return -1;
    BSON_APPEND_UTF8(&filter, "source", "deals");
    if (since_ms > 0) {
        bson_t gte;
        BSON_APPEND_DOCUMENT_BEGIN(&filter, "created_at", &gte);
        BSON_APPEND_DATE_TIME(&gte, "$gte", since_ms);
        bson_append_document_end(&filter, &gte);
    }
    append_after(&filter, after);
    if (status && *status)
        BSON_APPEND_UTF8(&filter, "status", status);
    if (account && *account) {
        bson_oid_t oid;
        bson_oid_init_from_string(&oid, account);
        dip_bson_append_id_match(&filter, "account_id", &oid);
    }
    opts = BCON_NEW("sort", "{", "created_at", BCON_INT32(-1), "_id",
                    BCON_INT32(-1), "}", "limit", BCON_INT64(limit + 1),
                    "projection", "{", "mappings", BCON_INT32(0), "checkpoint",
                    BCON_INT32(0), "}");
    c = find(self, self->queues, &filter, opts);
    while (mongoc_cursor_next(c, &doc)) {
        json_t *s;
        bson_iter_t it, idit;
        if (n == limit) {
            *truncated = 1;
            if (last_ms >= 0)
                dip_ctl_cursor_format(last_ms, last_id, next);
            break;
        }
        if ((s = sup_admin_summary(doc, now)) != NULL) {
            json_array_append_new(arr, s);
            n++;
        }
        /* The cursor needs a date and an ObjectId; a page ending on an
         * import without them has no next (older ones stay reachable
         * with --since or a filter). */
        last_ms = -1;
        if (bson_iter_init_find(&it, doc, "created_at") &&
            BSON_ITER_HOLDS_DATE_TIME(&it) && bson_iter_date_time(&it) >= 0 &&
            bson_iter_init_find(&idit, doc, "_id") &&
            BSON_ITER_HOLDS_OID(&idit)) {
            last_ms = (long long)bson_iter_date_time(&it);
            bson_oid_to_string(bson_iter_oid(&idit), last_id);
        }
    }
    if (mongoc_cursor_error(c, &error)) {
        snprintf(err, errlen, "listing imports failed: %s", error.message);
        rc = -1;
        json_decref(arr);
    } else {
        *out = arr;
    }
    mongoc_cursor_destroy(c);
    bson_destroy(opts);
    bson_destroy(&filter);
    return rc;
}

/* ---- changes ------------------------------------------------------------ */

int sup_admin_move(sup_admin_t *self, const char *id, const char *from,
                   const char *to, bson_t *out, char *err, size_t errlen)
{
    bson_t *query = by_id(id), *update = bson_new(), set, unset;
    mongoc_find_and_modify_opts_t *opts = mongoc_find_and_modify_opts_new();
    int64_t now = dip_bson_now_ms();
    bson_t reply;
    bson_error_t error;
    bson_t tmp;
    int rc = 0;

    BSON_APPEND_UTF8(query, "status", from);
    BSON_APPEND_DOCUMENT_BEGIN(update, "$set", &set);
    BSON_APPEND_UTF8(&set, "status", to);
    BSON_APPEND_BOOL(&set, "in_progress", false);
    BSON_APPEND_DATE_TIME(&set, "updated_at", now);
    if (strcmp(to, "paused") == 0)
        BSON_APPEND_DATE_TIME(&set, "paused_at", now);
    else if (strcmp(to, "pending") == 0)
        BSON_APPEND_DATE_TIME(&set, "resumed_at", now);
    else if (strcmp(to, "cancelled") == 0)
        BSON_APPEND_UTF8(&set, "claimed_by", self->owner);
    bson_append_document_end(update, &set);
    BSON_APPEND_DOCUMENT_BEGIN(update, "$unset", &unset);
    BSON_APPEND_UTF8(&unset, "lease_expires_at", "");
    BSON_APPEND_UTF8(&unset, "control", "");
    if (strcmp(to, "cancelled") != 0)
        BSON_APPEND_UTF8(&unset, "claimed_by", "");
    bson_append_document_end(update, &unset);

    mongoc_find_and_modify_opts_set_update(opts, update);
    if (!dip_mongo_take_new(self->client, self->queues, query, opts, &reply,
                            &error)) {
        snprintf(err, errlen, "changing import '%s' to '%s' failed: %s", id, to,
                 error.message);
        rc = -1;
    } else if (dip_bson_reply_value(&reply, &tmp)) {
        bson_copy_to(&tmp, out);
        rc = 1;
    }
    bson_destroy(&reply);
    mongoc_find_and_modify_opts_destroy(opts);
    bson_destroy(update);
    bson_destroy(query);
    return rc;
}

int sup_admin_record(sup_admin_t *self, const char *id, const char *owner,
                     const char *action, long by_uid, const char *by_key,
                     char *err, size_t errlen)
{
    bson_t *filter = by_id(id), *update, set, control;
    bson_t reply;
    bson_error_t error;
    int rc = 0;
    BSON_APPEND_UTF8(filter, "status", "processing");
    BSON_APPEND_UTF8(filter, "claimed_by", owner);
    if (strcmp(action, "pause") == 0) {
        bson_t ne;
        BSON_APPEND_DOCUMENT_BEGIN(filter, "control.action", &ne);
        BSON_APPEND_UTF8(&ne, "$ne", "cancel");
        bson_append_document_end(filter, &ne);
    }
    update = bson_new();
    BSON_APPEND_DOCUMENT_BEGIN(update, "$set", &set);
    BSON_APPEND_DOCUMENT_BEGIN(&set, "control", &control);
    BSON_APPEND_UTF8(&control, "action", action);
    BSON_APPEND_DATE_TIME(&control, "requested_at", dip_bson_now_ms());
    BSON_APPEND_UTF8(&control, "requested_via", self->owner);
    if (by_uid >= 0)
        BSON_APPEND_INT64(&control, "requested_by_uid", by_uid);
    else if (by_key && *by_key)
        BSON_APPEND_UTF8(&control, "requested_by_key", by_key);
    bson_append_document_end(&set, &control);
    bson_append_document_end(update, &set);
    if (!mongoc_collection_update_one(self->queues, filter, update, NULL,
                                      &reply, &error)) {
        snprintf(err, errlen, "recording '%s' on import '%s' failed: %s",
                 action, id, error.message);
        rc = -1;
    } else if (!dip_claim_lost(&reply)) {
        rc = 1; /* still held by owner: recorded */
    }
    bson_destroy(&reply);
    bson_destroy(update);
    bson_destroy(filter);
    return rc;
}

int sup_admin_recorded(sup_admin_t *self, sup_admin_request_t *out, size_t cap,
                       char *err, size_t errlen)
{
    bson_t *filter = BCON_NEW("claimed_by", BCON_UTF8(self->owner), "status",
                              BCON_UTF8("processing"), "control", "{",
                              "$exists", BCON_BOOL(true), "}");
    bson_t *opts =
        BCON_NEW("limit", BCON_INT64((int64_t)cap), "projection", "{", "_id",
                 BCON_INT32(1), "control", BCON_INT32(1), "}");
    mongoc_cursor_t *c = find(self, self->queues, filter, opts);
    const bson_t *doc;
    bson_error_t error;
    int n = 0;
    while ((size_t)n < cap && mongoc_cursor_next(c, &doc)) {
        bson_oid_t oid;
        const char *a = dip_bson_get_str(doc, "control.action");
        const char *key = dip_bson_get_str(doc, "control.requested_by_key");
        const char *via = dip_bson_get_str(doc, "control.requested_via");
        if (dip_bson_get_oid(doc, "_id", &oid) != 0)
            continue;
        bson_oid_to_string(&oid, out[n].id);
        snprintf(out[n].action, sizeof(out[n].action), "%s",
                 a && (strcmp(a, "pause") == 0 || strcmp(a, "cancel") == 0)
                     ? a
                     : "");
        out[n].by_uid =
            (long)dip_bson_get_int(doc, "control.requested_by_uid", -1);
        snprintf(out[n].by_key, sizeof(out[n].by_key), "%s", key ? key : "");
        snprintf(out[n].via, sizeof(out[n].via), "%s", via ? via : "");
        n++;
    }
    if (mongoc_cursor_error(c, &error)) {
        snprintf(err, errlen, "reading recorded control requests failed: %s",
                 error.message);
        n = -1;
    }
    mongoc_cursor_destroy(c);
    bson_destroy(opts);
    bson_destroy(filter);
    return n;
}

int sup_admin_clear(sup_admin_t *self, const char *id, char *err, size_t errlen)
{
    bson_t *filter = by_id(id);
    bson_t *update = BCON_NEW("$unset", "{", "control", BCON_UTF8(""), "}");
    bson_error_t error;
    int rc = 0;
    BSON_APPEND_UTF8(filter, "claimed_by", self->owner);
    if (!mongoc_collection_update_one(self->queues, filter, update, NULL, NULL,
                                      &error)) {
        snprintf(err, errlen,
                 "clearing the recorded request of import '%s' failed: %s", id,
                 error.message);
        rc = -1;
    }
    bson_destroy(update);
    bson_destroy(filter);
    return rc;
}
