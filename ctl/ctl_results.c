/*
 * ctl_results: `errors`, `events` and `run` (see ctl_results.h). Each opens
 * its own MongoDB client, reads or writes a handful of documents, and prints
 * a table for people or, with --json, one JSON object per line.
 */
#include "ctl_results.h"
#include "dip_bson.h"
#include "dip_mongo_io.h"
#include "dip_storage_io.h"
#include "dip_text.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bson/bson.h>
#include <jansson.h>
#include <mongoc/mongoc.h>

typedef struct db {
    mongoc_client_t *client;
    const char *name;
} db_t;

static int db_open(const ctl_opts_t *o, db_t *db)
{
    char err[512];
    db->client = dip_mongo_client_new(o->cfg->mongodb_uri, "dealimportctl",
                                      &db->name, err, sizeof(err));
    if (db->client == NULL)
        return ctl_fail(o, CTL_EXIT_CONFIG, "configuration", "%s", err);
    return CTL_EXIT_OK;
}

static mongoc_collection_t *coll(db_t *db, const char *name)
{
    return mongoc_client_get_collection(db->client, db->name, name);
}

/* The first document matching filter in name, copied into out; 1 found, 0
 * not, -1 with error filled. */
static int find_one(db_t *db, const char *name, const bson_t *filter,
                    bson_t *out, bson_error_t *error)
{
    mongoc_collection_t *c = coll(db, name);
    bson_t opts = BSON_INITIALIZER;
    mongoc_cursor_t *cur;
    const bson_t *doc;
    int rc = 0;
    BSON_APPEND_INT64(&opts, "limit", 1);
    BSON_APPEND_INT64(&opts, "maxTimeMS", dip_mongo_max_time_ms(db->client));
    cur = mongoc_collection_find_with_opts(c, filter, &opts, NULL);
    bson_init(out);
    if (mongoc_cursor_next(cur, &doc)) {
        bson_copy_to_excluding_noinit(doc, out, "", NULL);
        rc = 1;
    } else if (mongoc_cursor_error(cur, error)) {
        rc = -1;
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(&opts);
    mongoc_collection_destroy(c);
    return rc;
}

/* A cell of a table: at most width bytes of s, cut at a character, with
 * control characters shown as spaces. */
static void cell(const char *s, size_t width, char *out, size_t outlen)
{
    size_t n = s ? strlen(s) : 0, k;
    if (n > width)
        n = dip_text_cut(s, n, width);
    k = n < outlen - 1 ? n : outlen - 1;
    k = dip_text_cut(s ? s : "", k, k);
    for (size_t i = 0; i < k; i++)
        out[i] = (unsigned char)s[i] < 0x20 ? ' ' : s[i];
    out[k] = '\0';
}

static int parse_limit(const char *s, long *out)
{
    char *end;
    long v;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || *end || v < 1 || v > 1000000)
        return -1;
    *out = v;
    return 0;
}

/* --- errors ----------------------------------------------------------------
 */

static const char errors_usage[] =
    "usage: dealimportctl errors ID [--limit N] [--output FILE] [--json]";

typedef struct download {
    FILE *f;
    int64_t bytes;
} download_t;

static int download_data(void *arg, const char *buf, size_t len)
{
    download_t *d = arg;
    if (fwrite(buf, 1, len, d->f) != len)
        return 1;
    d->bytes += (int64_t)len;
    return 0;
}

static int errors_download(const ctl_opts_t *o, db_t *db, const bson_oid_t *qid,
                           const char *id, const char *path)
{
    bson_t filter = BSON_INITIALIZER, imp;
    bson_error_t error;
    dip_storage_t *st = NULL;
    download_t d = {NULL, 0};
    dip_storage_sink_t sink = {&d, NULL, download_data, NULL};
    const char *key;
    char err[1024], tmp[4096];
    int rc, found;
    BSON_APPEND_OID(&filter, "queue_id", qid);
    found = find_one(db, "csv_imports", &filter, &imp, &error);
    bson_destroy(&filter);
    if (found < 0) {
        bson_destroy(&imp);
        return ctl_fail(o, CTL_EXIT_UNAVAILABLE, "unavailable",
                        "the database did not answer: %s", error.message);
    }
    key = found ? dip_bson_get_str(&imp, "error_file.key") : NULL;
    if (key == NULL) {
        bson_destroy(&imp);
        return ctl_fail(o, CTL_EXIT_REFUSED, "not_found",
                        "import '%s' has no error file (none is written "
                        "before it ends, or when it has no line errors)",
                        id);
    }
    if (strlen(path) + 16 > sizeof(tmp)) {
        bson_destroy(&imp);
        return ctl_fail(o, CTL_EXIT_USAGE, "usage", "--output path too long");
    }
    snprintf(tmp, sizeof(tmp), "%s.part", path);
    st = dip_storage_new(o->cfg, err, sizeof(err));
    if (st == NULL) {
        bson_destroy(&imp);
        return ctl_fail(o, CTL_EXIT_CONFIG, "configuration", "%s", err);
    }
    d.f = fopen(tmp, "wbe");
    if (d.f == NULL) {
        rc = ctl_fail(o, CTL_EXIT_REFUSED, "refused", "cannot write '%s': %s",
                      tmp, strerror(errno));
        goto cleanup;
    }
    rc = dip_storage_get(st, key, 0, &sink, err, sizeof(err));
    if (fclose(d.f) != 0 && rc == 0)
        rc = -1,
        dip_text_format(err, sizeof(err), NULL, "writing '%s' failed", tmp);
    if (rc != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        rc = ctl_fail(o, CTL_EXIT_UNAVAILABLE, "unavailable",
                      "downloading '%s' failed: %s", key,
                      rc ? err : strerror(errno));
        goto cleanup;
    }
    if (o->json) {
        json_t *j = json_pack("{s:i, s:b, s:s, s:s, s:I}", "v", DIP_CTL_VERSION,
                              "ok", 1, "key", key, "output", path, "bytes",
                              (json_int_t)d.bytes);
        ctl_print_json(j);
        json_decref(j);
    } else {
        printf("%s: %lld bytes from %s\n", path, (long long)d.bytes, key);
    }
    rc = CTL_EXIT_OK;
cleanup:
    dip_storage_destroy(&st);
    bson_destroy(&imp);
    return rc;
}

static int errors_list(const ctl_opts_t *o, db_t *db, const bson_oid_t *qid,
                       long limit)
{
    mongoc_collection_t *c = coll(db, "csv_import_errors");
    bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER, sort;
    mongoc_cursor_t *cur;
    const bson_t *doc;
    bson_error_t error;
    long shown = 0;
    int64_t total;
    int rc = CTL_EXIT_OK;
    BSON_APPEND_OID(&filter, "queue_id", qid);
    BSON_APPEND_DOCUMENT_BEGIN(&opts, "sort", &sort);
    BSON_APPEND_INT32(&sort, "line", 1);
    bson_append_document_end(&opts, &sort);
    BSON_APPEND_INT64(&opts, "limit", limit);
    BSON_APPEND_INT64(&opts, "maxTimeMS", dip_mongo_max_time_ms(db->client));
    cur = mongoc_collection_find_with_opts(c, &filter, &opts, NULL);
    if (!o->json)
        printf("%-8s  %-16s  %s\n", "LINE", "FIELD", "ERROR");
    while (mongoc_cursor_next(cur, &doc)) {
        shown++;
        if (o->json) {
            json_t *j = dip_bson_to_json(doc);
            json_object_del(j, "_id");
            json_object_del(j, "queue_id");
            ctl_print_json(j);
            json_decref(j);
        } else {
            char field[80], msg[400];
            cell(dip_bson_get_str(doc, "field"), 16, field, sizeof(field));
            cell(dip_bson_get_str(doc, "message"), 100, msg, sizeof(msg));
            printf("%-8lld  %-16s  %s\n",
                   (long long)dip_bson_get_int(doc, "line", 0), field, msg);
        }
    }
    if (mongoc_cursor_error(cur, &error))
        rc = ctl_fail(o, CTL_EXIT_UNAVAILABLE, "unavailable",
                      "the database did not answer: %s", error.message);
    mongoc_cursor_destroy(cur);
    if (rc == CTL_EXIT_OK && !o->json) {
        bson_t *copts = dip_mongo_read_opts(db->client, NULL);
        total = mongoc_collection_count_documents(c, &filter, copts, NULL, NULL,
                                                  &error);
        bson_destroy(copts);
        if (total > shown)
            printf("(%ld of %lld stored errors shown; --limit N for more, "
                   "--output FILE for the error file)\n",
                   shown, (long long)total);
        else if (shown == 0)
            printf("(no line errors stored for this import)\n");
    }
    bson_destroy(&filter);
    bson_destroy(&opts);
    mongoc_collection_destroy(c);
    return rc;
}

/* An id that names no import is refused (exit 1), not an empty list: the
 * queue document decides, whichever way its _id is stored. */
static int import_exists(const ctl_opts_t *o, db_t *db, const bson_oid_t *qid,
                         const char *id)
{
    bson_t filter = BSON_INITIALIZER, doc;
    bson_error_t error;
    int found;
    dip_bson_append_id_match(&filter, "_id", qid);
    found = find_one(db, "queues", &filter, &doc, &error);
    bson_destroy(&filter);
    bson_destroy(&doc);
    if (found < 0)
        return ctl_fail(o, CTL_EXIT_UNAVAILABLE, "unavailable",
                        "the database did not answer: %s", error.message);
    if (found == 0)
        return ctl_fail(o, CTL_EXIT_REFUSED, "not_found",
                        "no import with id '%s'", id);
    return CTL_EXIT_OK;
}

int ctl_errors_main(ctl_opts_t *o, int argc, char **argv)
{
    static const struct option opts[] = {
        {"limit", required_argument, NULL, 'l'},
        {"output", required_argument, NULL, 'o'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *output = NULL;
    long limit = 20;
    char id[25];
    bson_oid_t qid;
    db_t db = {NULL, NULL};
    int c, rc;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'j') {
            o->json = 1;
        } else if (c == 'l') {
            if (parse_limit(optarg, &limit) < 0)
                return ctl_usage(errors_usage,
                                 "dealimportctl errors: --limit '%s' is not "
                                 "a number from 1 to 1000000",
                                 optarg);
        } else if (c == 'o') {
            output = optarg;
        } else if (c == 'h') {
            printf("%s\n\nThe import's rejected rows, first lines first: "
                   "line, field and reason\n(from csv_import_errors). "
                   "--output FILE downloads the whole error file (a CSV\nof "
                   "the rejected rows with their reasons and original "
                   "cells, written when\nthe import ended).\n\n"
                   "  --limit N      rows to list (20)\n"
                   "  --output FILE  download the error file to FILE\n"
                   "  --json         one JSON object per error\n",
                   errors_usage);
            return CTL_EXIT_OK;
        } else {
            return ctl_usage(errors_usage,
                             "dealimportctl errors: unknown option '%s'",
                             argv[optind - 1]);
        }
    }
    if (ctl_take_id("errors", argc, argv, errors_usage, id) < 0)
        return CTL_EXIT_USAGE;
    bson_oid_init_from_string(&qid, id);
    if ((rc = db_open(o, &db)) != CTL_EXIT_OK)
        return rc;
    rc = import_exists(o, &db, &qid, id);
    if (rc == CTL_EXIT_OK)
        rc = output ? errors_download(o, &db, &qid, id, output)
                    : errors_list(o, &db, &qid, limit);
    mongoc_client_destroy(db.client);
    return rc;
}

/* --- events ----------------------------------------------------------------
 */

static const char events_usage[] =
    "usage: dealimportctl events [ID] [--limit N] [--json]";

static void print_event(const ctl_opts_t *o, const bson_t *ev)
{
    bson_iter_t it, a;
    int n = 0;
    if (o->json) {
        json_t *j = dip_bson_to_json(ev);
        ctl_print_json(j);
        json_decref(j);
        return;
    }
    printf(
        "%s  %-22s  %-9s  import %s\n",
        dip_bson_get_str(ev, "payload.id") ? dip_bson_get_str(ev, "payload.id")
                                           : "?",
        dip_bson_get_str(ev, "type") ? dip_bson_get_str(ev, "type") : "?",
        dip_bson_get_str(ev, "status") ? dip_bson_get_str(ev, "status") : "?",
        dip_bson_get_str(ev, "payload.queue_id")
            ? dip_bson_get_str(ev, "payload.queue_id")
            : "?");
    if (bson_iter_init_find(&it, ev, "attempts") &&
        BSON_ITER_HOLDS_ARRAY(&it) && bson_iter_recurse(&it, &a)) {
        while (bson_iter_next(&a)) {
            const uint8_t *data;
            uint32_t len;
            bson_t at;
            char msg[300];
            if (!BSON_ITER_HOLDS_DOCUMENT(&a))
                continue;
            bson_iter_document(&a, &len, &data);
            if (!bson_init_static(&at, data, len))
                continue;
            cell(dip_bson_get_str(&at, "error"), 120, msg, sizeof(msg));
            if (dip_bson_get_int(&at, "http_status", 0) > 0)
                printf("    attempt %d: HTTP %lld after %lld ms%s%s\n", ++n,
                       (long long)dip_bson_get_int(&at, "http_status", 0),
                       (long long)dip_bson_get_int(&at, "ms", 0),
                       msg[0] ? ": " : "", msg);
            else
                printf("    attempt %d: after %lld ms: %s\n", ++n,
                       (long long)dip_bson_get_int(&at, "ms", 0), msg);
        }
    }
    if (dip_bson_get_str(ev, "reason"))
        printf("    given up: %s\n", dip_bson_get_str(ev, "reason"));
}

int ctl_events_main(ctl_opts_t *o, int argc, char **argv)
{
    static const struct option opts[] = {
        {"limit", required_argument, NULL, 'l'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    long limit = 20;
    char id[25];
    bson_oid_t qid;
    bson_t filter = BSON_INITIALIZER, fopts = BSON_INITIALIZER, sort;
    db_t db = {NULL, NULL};
    mongoc_collection_t *c;
    mongoc_cursor_t *cur;
    const bson_t *doc;
    bson_error_t error;
    int ch, rc, shown = 0;
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch == 'j') {
            o->json = 1;
        } else if (ch == 'l') {
            if (parse_limit(optarg, &limit) < 0)
                return ctl_usage(events_usage,
                                 "dealimportctl events: --limit '%s' is not "
                                 "a number from 1 to 1000000",
                                 optarg);
        } else if (ch == 'h') {
            printf("%s\n\nThe completion events sent to DEALIMPORT_NOTIFY_URL, "
                   "newest first (of one\nimport with ID): type, status "
                   "(pending, delivered, failed) and every\nattempt with its "
                   "answer.\n\n"
                   "  --limit N  events to show (20)\n"
                   "  --json     one JSON object per event\n",
                   events_usage);
            return CTL_EXIT_OK;
        } else {
            return ctl_usage(events_usage,
                             "dealimportctl events: unknown option '%s'",
                             argv[optind - 1]);
        }
    }
    if (optind < argc) {
        if (ctl_take_id("events", argc, argv, events_usage, id) < 0)
            return CTL_EXIT_USAGE;
        bson_oid_init_from_string(&qid, id);
        BSON_APPEND_OID(&filter, "queue_id", &qid);
    }
    if ((rc = db_open(o, &db)) != CTL_EXIT_OK) {
        bson_destroy(&filter);
        return rc;
    }
    BSON_APPEND_DOCUMENT_BEGIN(&fopts, "sort", &sort);
    BSON_APPEND_INT32(&sort, "created_at", -1);
    bson_append_document_end(&fopts, &sort);
    BSON_APPEND_INT64(&fopts, "limit", limit);
    BSON_APPEND_DOCUMENT_BEGIN(&fopts, "projection", &sort);
    BSON_APPEND_INT32(&sort, "auth", 0);
    bson_append_document_end(&fopts, &sort);
    BSON_APPEND_INT64(&fopts, "maxTimeMS", dip_mongo_max_time_ms(db.client));
    c = coll(&db, "import_events");
    cur = mongoc_collection_find_with_opts(c, &filter, &fopts, NULL);
    while (mongoc_cursor_next(cur, &doc)) {
        print_event(o, doc);
        shown++;
    }
    if (mongoc_cursor_error(cur, &error))
        rc = ctl_fail(o, CTL_EXIT_UNAVAILABLE, "unavailable",
                      "the database did not answer: %s", error.message);
    else if (shown == 0 && !o->json)
        printf("(no completion events%s)\n",
               optind < argc ? " for this import" : "");
    mongoc_cursor_destroy(cur);
    mongoc_collection_destroy(c);
    mongoc_client_destroy(db.client);
    bson_destroy(&filter);
    bson_destroy(&fopts);
    return rc;
}

/* --- run -------------------------------------------------------------------
 */

static const char run_usage[] = "usage: dealimportctl run ID [--json]";

/* The fields a new import of the same file copies from the old one; what
 * the service added (status, progress, claims, checkpoint, dry_run) stays
 * behind. */
static const char *const copied[] = {
    "source",    "user_id", "account_id", "parent_account",
    "client_id", "csv",     "mappings",   "additional_data",
};

int ctl_run_main(ctl_opts_t *o, int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    char id[25], hex[25];
    bson_oid_t qid, nid;
    bson_t filter = BSON_INITIALIZER, old, doc = BSON_INITIALIZER;
    bson_error_t error;
    db_t db = {NULL, NULL};
    mongoc_collection_t *queues = NULL;
    int c, rc, found;
    int64_t now = dip_bson_now_ms();
    bson_init(&old);
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'j') {
            o->json = 1;
        } else if (c == 'h') {
            printf(
                "%s\n\nQueues the file and mappings of import ID (a dry run, "
                "or any finished\nimport) again as a new, real import, "
                "and prints its id.\n",
                run_usage);
            return CTL_EXIT_OK;
        } else {
            return ctl_usage(run_usage,
                             "dealimportctl run: unknown option '%s'",
                             argv[optind - 1]);
        }
    }
    if (ctl_take_id("run", argc, argv, run_usage, id) < 0)
        return CTL_EXIT_USAGE;
    bson_oid_init_from_string(&qid, id);
    if ((rc = db_open(o, &db)) != CTL_EXIT_OK)
        return rc;
    dip_bson_append_id_match(&filter, "_id", &qid);
    bson_destroy(&old);
    found = find_one(&db, "queues", &filter, &old, &error);
    if (found <= 0) {
        rc = found < 0
                 ? ctl_fail(o, CTL_EXIT_UNAVAILABLE, "unavailable",
                            "the database did not answer: %s", error.message)
                 : ctl_fail(o, CTL_EXIT_REFUSED, "not_found",
                            "no import with id '%s'", id);
        goto cleanup;
    }
    if (!dip_ctl_status_final(dip_bson_get_str(&old, "status"))) {
        rc = ctl_fail(o, CTL_EXIT_REFUSED, "wrong_state",
                      "import '%s' is %s: run it again once it has ended", id,
                      dip_bson_get_str(&old, "status")
                          ? dip_bson_get_str(&old, "status")
                          : "of unknown status");
        goto cleanup;
    }
    bson_oid_init(&nid, NULL);
    BSON_APPEND_OID(&doc, "_id", &nid);
    for (size_t i = 0; i < sizeof(copied) / sizeof(copied[0]); i++) {
        bson_iter_t it;
        if (bson_iter_init_find(&it, &old, copied[i]))
            bson_append_iter(&doc, copied[i], -1, &it);
    }
    BSON_APPEND_UTF8(&doc, "status", "pending");
    BSON_APPEND_BOOL(&doc, "in_progress", false);
    BSON_APPEND_OID(&doc, "rerun_of", &qid);
    BSON_APPEND_DATE_TIME(&doc, "created_at", now);
    BSON_APPEND_DATE_TIME(&doc, "updated_at", now);
    queues = coll(&db, "queues");
    if (!mongoc_collection_insert_one(queues, &doc, NULL, NULL, &error)) {
        rc = ctl_fail(o, CTL_EXIT_UNAVAILABLE, "unavailable",
                      "cannot queue the import: %s", error.message);
        goto cleanup;
    }
    bson_oid_to_string(&nid, hex);
    if (o->json) {
        json_t *j = json_pack("{s:i, s:b, s:s, s:s}", "v", DIP_CTL_VERSION,
                              "ok", 1, "id", hex, "rerun_of", id);
        ctl_print_json(j);
        json_decref(j);
    } else {
        printf("%s\n", hex);
    }
    rc = CTL_EXIT_OK;
cleanup:
    bson_destroy(&old);
    bson_destroy(&filter);
    bson_destroy(&doc);
    if (queues)
        mongoc_collection_destroy(queues);
    mongoc_client_destroy(db.client);
    return rc;
}
