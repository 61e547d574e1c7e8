/*
 * wrk_queue: reads the queue document once, checking every field's shape
 * before the import writes anything.
 */
#include "wrk_queue.h"
#include "dip_text.h"
#include "dip_bson.h"

#include <stdio.h>
#include <string.h>

/* A tag every deal may carry: text, UTF-8 without NUL bytes (deals are
 * inserted without a second validation). */
static int tag_ok(const bson_iter_t *it)
{
    uint32_t len = 0;
    const char *t;
    if (!BSON_ITER_HOLDS_UTF8(it))
        return 0;
    t = bson_iter_utf8(it, &len);
    return memchr(t, 0, len) == NULL && dip_text_utf8_valid(t, len);
}

int wrk_queue_read(const bson_t *q, wrk_queue_t *out, char *err, size_t errlen)
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
    bson_iter_t it;
    const uint8_t *data = NULL;
    uint32_t len = 0;

    memset(out, 0, sizeof(*out));
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
    if (wrk_format_read(q, &out->format, err, errlen) < 0)
        return -1;
    /* tags: an array of strings, a single string, or nothing. */
    bson_init(&out->tags);
    if (bson_iter_init(&it, q) &&
        bson_iter_find_descendant(&it, "additional_data.tags", &it)) {
        if (BSON_ITER_HOLDS_ARRAY(&it)) {
            bson_iter_t t;
            int i = 0;
            bson_iter_recurse(&it, &t);
            while (bson_iter_next(&t)) {
                char k[24];
                if (!tag_ok(&t))
                    continue;
                snprintf(k, sizeof(k), "%d", i++);
                BSON_APPEND_UTF8(&out->tags, k, bson_iter_utf8(&t, NULL));
            }
        } else if (tag_ok(&it)) {
            BSON_APPEND_UTF8(&out->tags, "0", bson_iter_utf8(&it, NULL));
        }
    }
    return 0;
}

void wrk_queue_release(wrk_queue_t *out)
{
    if (out == NULL)
        return;
    bson_destroy(&out->tags);
    memset(out, 0, sizeof(*out));
}
