/*
 * ctl_format: reads an import's format setting and decisions from its queue
 * document and prints them for `show` (see ctl_format.h).
 */
#include "ctl_format.h"
#include "dip_bson.h"
#include "dip_mongo_io.h"

#include <stdio.h>
#include <string.h>

#include <bson/bson.h>
#include <mongoc/mongoc.h>

/* The sub-document or array at dotted in doc as JSON, or NULL. */
static json_t *sub_json(const bson_t *doc, const char *dotted)
{
    bson_iter_t it;
    const uint8_t *data;
    uint32_t len;
    bson_t sub;
    if (!bson_iter_init(&it, doc) ||
        !bson_iter_find_descendant(&it, dotted, &it) ||
        !(BSON_ITER_HOLDS_DOCUMENT(&it) || BSON_ITER_HOLDS_ARRAY(&it)))
        return NULL;
    if (BSON_ITER_HOLDS_DOCUMENT(&it))
        bson_iter_document(&it, &len, &data);
    else
        bson_iter_array(&it, &len, &data);
    if (!bson_init_static(&sub, data, len))
        return NULL;
    if (BSON_ITER_HOLDS_ARRAY(&it)) {
        /* An array's keys are "0", "1", ...: keep its values in order. */
        json_t *obj = dip_bson_to_json(&sub), *arr = json_array(), *v;
        const char *k;
        if (obj == NULL || arr == NULL) {
            json_decref(obj);
            json_decref(arr);
            return NULL;
        }
        json_object_foreach(obj, k, v) json_array_append(arr, v);
        json_decref(obj);
        return arr;
    }
    return dip_bson_to_json(&sub);
}

void ctl_format_attach(const ctl_opts_t *o, const char *id, json_t *import)
{
    mongoc_client_t *mc = NULL;
    mongoc_collection_t *queues = NULL;
    mongoc_cursor_t *cur = NULL;
    bson_t *filter = NULL, *opts = NULL;
    const bson_t *doc;
    const char *db;
    char err[512];
    bson_oid_t oid;
    json_t *setting, *decisions;
    if (o->cfg == NULL || o->cfg->mongodb_uri == NULL || id == NULL ||
        !json_is_object(import) || !bson_oid_is_valid(id, strlen(id)))
        return;
    mc = dip_mongo_client_new_bounded(o->cfg->mongodb_uri, "dealimportctl",
                                      o->timeout_ms * 4, &db, err, sizeof(err));
    if (mc == NULL)
        goto cleanup;
    bson_oid_init_from_string(&oid, id);
    queues = mongoc_client_get_collection(mc, db, "queues");
    filter = BCON_NEW("_id", BCON_OID(&oid));
    opts =
        BCON_NEW("limit", BCON_INT64(1), "maxTimeMS", BCON_INT64(o->timeout_ms),
                 "projection", "{", "additional_data.format", BCON_INT32(1),
                 "checkpoint.format", BCON_INT32(1), "}");
    cur = mongoc_collection_find_with_opts(queues, filter, opts, NULL);
    if (!mongoc_cursor_next(cur, &doc))
        goto cleanup;
    setting = sub_json(doc, "additional_data.format");
    decisions = sub_json(doc, "checkpoint.format.columns");
    if (setting == NULL && decisions == NULL)
        goto cleanup;
    json_object_set_new(import, "format",
                        json_pack("{s:o, s:o}", "setting",
                                  setting ? setting : json_null(), "decisions",
                                  decisions ? decisions : json_null()));
cleanup:
    mongoc_cursor_destroy(cur);
    bson_destroy(opts);
    bson_destroy(filter);
    mongoc_collection_destroy(queues);
    dip_mongo_client_close(mc);
}

static const char *str(const json_t *o, const char *key, const char *def)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : def;
}

static long long cells(const json_t *c, const char *key)
{
    return (long long)json_integer_value(
        json_object_get(json_object_get(c, "cells"), key));
}

void ctl_format_print(const json_t *import)
{
    const json_t *f = json_object_get(import, "format");
    const json_t *s = json_object_get(f, "setting");
    const json_t *d = json_object_get(f, "decisions"), *c;
    size_t i;
    if (!json_is_object(f))
        return;
    if (json_is_object(s))
        printf("format      date_order %s, decimal %s\n",
               str(s, "date_order", "(as without a format)"),
               str(s, "decimal", "(as without a format)"));
    json_array_foreach(d, i, c)
    {
        int date = strcmp(str(c, "setting", ""), "date_order") == 0;
        const char *reading = str(c, "reading", "?");
        printf(date || strcmp(reading, "undecided") == 0
                   ? "%s'%s' (%s): %s %s"
                   : "%s'%s' (%s): %s '%s'",
               i == 0 ? "decided     " : "            ", str(c, "column", "?"),
               str(c, "field", "?"), str(c, "setting", "?"), reading);
        if (strcmp(reading, "undecided") == 0)
            printf(", %lld cells read two ways are line errors\n",
                   cells(c, "two_ways"));
        else
            printf(
                ", from %lld cells that read only that way\n",
                cells(c, date ? (strcmp(reading, "MDY") == 0 ? "MDY" : "DMY")
                              : (strcmp(reading, ".") == 0 ? "dot" : "comma")));
    }
}
