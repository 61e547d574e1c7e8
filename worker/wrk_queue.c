/*
 * wrk_queue: reads the queue document once, checking every field's shape
 * before the import writes anything. One static reader per field or group
 * of fields, called in order by wrk_queue_read; each fills its part of out
 * or writes the sentence that refuses the document.
 */
#include "wrk_queue.h"
#include "dip_text.h"
#include "dip_bson.h"

#include <stdio.h>
#include <string.h>

/* The field at dotted, or 0 when absent or null (which mean the same). */
static int find(const bson_t *q, const char *dotted, bson_iter_t *it)
{
    return bson_iter_init(it, q) && bson_iter_find_descendant(it, dotted, it) &&
           !BSON_ITER_HOLDS_NULL(it) && !BSON_ITER_HOLDS_UNDEFINED(it);
}

static int read_ids(const bson_t *q, wrk_queue_t *out, char *err, size_t errlen)
{
    static const struct {
        const char *path;
        int required;
    } ids[] = {{"user_id", 1},
               {"account_id", 1},
               {"additional_data.pipeline_id", 1},
               {"parent_account", 0},
               {"client_id", 0}};
    bson_oid_t tmp;
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        int rc = dip_bson_get_oid(q, ids[i].path, &tmp);
        if (rc == -2 || (rc == -1 && ids[i].required)) {
            snprintf(
                err, errlen, "the queue document's '%s' is %s", ids[i].path,
                rc == -1 ? "missing" : "not an ObjectId or a 24-hex string");
            return -1;
        }
    }
    dip_bson_get_oid(q, "user_id", &out->user);
    dip_bson_get_oid(q, "account_id", &out->account);
    dip_bson_get_oid(q, "additional_data.pipeline_id", &out->pipeline);
    return 0;
}

/* csv[0].key, and how many entries follow it. */
static int read_key(const bson_t *q, wrk_queue_t *out, char *err, size_t errlen)
{
    bson_iter_t it;
    /* An array, as the contract says, and nothing that merely reads like
     * one ({"0": {...}}): the source's cleanup counts the imports that name
     * a file by csv.key, which looks into an array's entries only; a file
     * named another way would be deleted under the import reading it. */
    if (find(q, "csv", &it) && !BSON_ITER_HOLDS_ARRAY(&it)) {
        snprintf(err, errlen,
                 "the queue document's 'csv' is %s, not an array of files",
                 dip_bson_type_name(bson_iter_type(&it)));
        return -1;
    }
    if (bson_iter_init(&it, q) &&
        bson_iter_find_descendant(&it, "csv.0.key", &it) &&
        BSON_ITER_HOLDS_UTF8(&it)) {
        uint32_t klen = 0;
        out->key = bson_iter_utf8(&it, &klen);
        out->key_len = klen;
    }
    if (out->key == NULL || out->key_len == 0) {
        snprintf(err, errlen,
                 "the queue document has no csv[0].key: there is no file to "
                 "import");
        return -1;
    }
    if (find(q, "csv", &it) && BSON_ITER_HOLDS_ARRAY(&it)) {
        bson_t arr;
        const uint8_t *data = NULL;
        uint32_t len = 0;
        bson_iter_array(&it, &len, &data);
        if (bson_init_static(&arr, data, len)) {
            uint32_t n = bson_count_keys(&arr);
            out->csv_ignored = n > 1 ? n - 1 : 0;
        }
    }
    return 0;
}

static int read_mappings(const bson_t *q, wrk_queue_t *out, char *err,
                         size_t errlen)
{
    bson_iter_t it;
    const uint8_t *data = NULL;
    uint32_t len = 0;
    if (!bson_iter_init(&it, q) || !bson_iter_find(&it, "mappings") ||
        !BSON_ITER_HOLDS_DOCUMENT(&it)) {
        snprintf(err, errlen, "the queue document has no 'mappings' object");
        return -1;
    }
    bson_iter_document(&it, &len, &data);
    if (!bson_init_static(&out->mappings, data, len)) {
        snprintf(err, errlen, "the queue document's 'mappings' is malformed");
        return -1;
    }
    return 0;
}

/* A boolean is a boolean: "false", 0 and "no" are refused, never guessed. */
static int read_dry_run(const bson_t *q, wrk_queue_t *out, char *err,
                        size_t errlen)
{
    bson_iter_t it;
    if (!find(q, "dry_run", &it))
        return 0;
    if (!BSON_ITER_HOLDS_BOOL(&it)) {
        snprintf(err, errlen,
                 "the queue document's 'dry_run' is %s: it must be a boolean "
                 "(true or false)",
                 dip_bson_type_name(bson_iter_type(&it)));
        return -1;
    }
    out->dry_run = bson_iter_bool(&it) ? 1 : 0;
    return 0;
}

/* One tag: a string of valid UTF-8 without NUL bytes (deals are inserted
 * without a second validation), at most WRK_QUEUE_TAG_MAX_BYTES. n is its
 * place, from 1, for the sentence. */
static int tag_ok(const bson_iter_t *it, size_t n, char *err, size_t errlen)
{
    uint32_t len = 0;
    const char *t;
    if (!BSON_ITER_HOLDS_UTF8(it)) {
        snprintf(err, errlen,
                 "tag %zu of the queue document's 'additional_data.tags' is "
                 "%s: every tag must be a string",
                 n, dip_bson_type_name(bson_iter_type(it)));
        return -1;
    }
    t = bson_iter_utf8(it, &len);
    if (len > WRK_QUEUE_TAG_MAX_BYTES) {
        snprintf(err, errlen,
                 "tag %zu of the queue document's 'additional_data.tags' has "
                 "%u bytes: a tag may have at most %d",
                 n, (unsigned)len, WRK_QUEUE_TAG_MAX_BYTES);
        return -1;
    }
    if (memchr(t, 0, len) != NULL || !dip_text_utf8_valid(t, len)) {
        snprintf(err, errlen,
                 "tag %zu of the queue document's 'additional_data.tags' is "
                 "not UTF-8 text",
                 n);
        return -1;
    }
    return 0;
}

/* Counted before any is copied: a document of 100,000 tags costs a count. */
static int read_tags(const bson_t *q, size_t max_tags, wrk_queue_t *out,
                     char *err, size_t errlen)
{
    bson_iter_t it, t;
    size_t n = 0;
    if (!find(q, "additional_data.tags", &it))
        return 0;
    if (BSON_ITER_HOLDS_UTF8(&it)) {
        if (max_tags < 1) {
            snprintf(err, errlen,
                     "the queue document has 1 tag in "
                     "'additional_data.tags': no tags are accepted "
                     "(DEALIMPORT_MAX_TAGS is 0)");
            return -1;
        }
        if (tag_ok(&it, 1, err, errlen) < 0)
            return -1;
        BSON_APPEND_UTF8(&out->tags, "0", bson_iter_utf8(&it, NULL));
        return 0;
    }
    if (!BSON_ITER_HOLDS_ARRAY(&it)) {
        snprintf(err, errlen,
                 "the queue document's 'additional_data.tags' is %s: it must "
                 "be an array of strings",
                 dip_bson_type_name(bson_iter_type(&it)));
        return -1;
    }
    if (!bson_iter_recurse(&it, &t))
        goto malformed;
    while (bson_iter_next(&t))
        n++;
    if (n > max_tags) {
        snprintf(err, errlen,
                 "the queue document has %zu tags in 'additional_data.tags': "
                 "at most %zu are accepted (DEALIMPORT_MAX_TAGS)",
                 n, max_tags);
        return -1;
    }
    if (!bson_iter_recurse(&it, &t))
        goto malformed;
    for (n = 0; bson_iter_next(&t); n++) {
        char kb[16];
        const char *k;
        size_t kl = bson_uint32_to_string((uint32_t)n, &k, kb, sizeof(kb));
        uint32_t len = 0;
        const char *s;
        if (tag_ok(&t, n + 1, err, errlen) < 0)
            return -1;
        s = bson_iter_utf8(&t, &len);
        bson_append_utf8(&out->tags, k, (int)kl, s, (int)len);
    }
    return 0;
malformed:
    snprintf(err, errlen,
             "the queue document's 'additional_data.tags' is malformed");
    return -1;
}

int wrk_queue_read(const bson_t *q, size_t max_tags, wrk_queue_t *out,
                   char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    bson_init(&out->tags);
    if (read_ids(q, out, err, errlen) < 0)
        goto fail;
    if (read_key(q, out, err, errlen) < 0)
        goto fail;
    if (read_mappings(q, out, err, errlen) < 0)
        goto fail;
    if (read_dry_run(q, out, err, errlen) < 0)
        goto fail;
    if (read_tags(q, max_tags, out, err, errlen) < 0)
        goto fail;
    if (wrk_format_read(q, &out->format, err, errlen) < 0)
        goto fail;
    return 0;
fail:
    wrk_queue_release(out);
    return -1;
}

void wrk_queue_release(wrk_queue_t *out)
{
    if (out == NULL)
        return;
    bson_destroy(&out->tags);
    memset(out, 0, sizeof(*out));
}
