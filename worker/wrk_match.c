/*
 * wrk_match: the mode and match field of an import, and the rule that turns
 * the facts of a row's key into what the row does. Facts in, verdict out:
 * the lookups that gather the facts are wrk_upsert's.
 */
#include "wrk_match.h"
#include "dip_bson.h"
#include "dip_text.h"
#include "wrk_fields.h"

#include <stdio.h>
#include <string.h>

static const char *const mode_names[] = {"create", "update", "upsert"};

const char *wrk_match_mode_name(wrk_match_mode_t mode)
{
    return (unsigned)mode < 3 ? mode_names[mode] : "?";
}

/* The field at dotted, or 0 when absent or null. */
static int find(const bson_t *q, const char *dotted, bson_iter_t *it)
{
    return bson_iter_init(it, q) && bson_iter_find_descendant(it, dotted, it) &&
           !BSON_ITER_HOLDS_NULL(it) && !BSON_ITER_HOLDS_UNDEFINED(it);
}

/* A string value quoted for a sentence, cut to 60 bytes. */
static void quoted(const bson_iter_t *it, char *out, size_t outlen)
{
    uint32_t len = 0;
    const char *s = bson_iter_utf8(it, &len);
    size_t cut = dip_text_utf8_valid(s, len) ? dip_text_cut(s, len, 60) : 0;
    dip_text_format(out, outlen, NULL, "'%.*s%s'", (int)cut, s,
                    cut < len ? "..." : "");
}

static int read_mode(const bson_t *q, wrk_match_t *out, char *err,
                     size_t errlen)
{
    bson_iter_t it;
    char v[96];
    if (!find(q, "additional_data.mode", &it))
        return 0;
    if (!BSON_ITER_HOLDS_UTF8(&it)) {
        snprintf(err, errlen,
                 "the queue document's 'additional_data.mode' is %s: it must "
                 "be the string 'create', 'update' or 'upsert'",
                 dip_bson_type_name(bson_iter_type(&it)));
        return -1;
    }
    for (int i = 0; i < 3; i++)
        if (strcmp(bson_iter_utf8(&it, NULL), mode_names[i]) == 0) {
            out->mode = (wrk_match_mode_t)i;
            return 0;
        }
    quoted(&it, v, sizeof(v));
    snprintf(err, errlen,
             "the queue document's 'additional_data.mode' is %s: it must be "
             "'create', 'update' or 'upsert'",
             v);
    return -1;
}

static int read_key(const bson_t *q, wrk_match_t *out, char *err, size_t errlen)
{
    bson_iter_t it;
    const char *s;
    char v[96];
    if (!find(q, "additional_data.match", &it)) {
        if (out->mode == WRK_MATCH_MODE_CREATE)
            return 0;
        snprintf(err, errlen,
                 "the queue document's 'additional_data.match' is missing: "
                 "an import in %s mode needs the field that finds a deal "
                 "('deal_id', 'external_id' or a custom field id)",
                 mode_names[out->mode]);
        return -1;
    }
    if (!BSON_ITER_HOLDS_UTF8(&it)) {
        snprintf(err, errlen,
                 "the queue document's 'additional_data.match' is %s: it "
                 "must be the string 'deal_id', 'external_id' or a custom "
                 "field id",
                 dip_bson_type_name(bson_iter_type(&it)));
        return -1;
    }
    s = bson_iter_utf8(&it, NULL);
    if (strcmp(s, "deal_id") == 0) {
        out->key = WRK_MATCH_KEY_DEAL_ID;
        snprintf(out->field, sizeof(out->field), "_id");
    } else if (strcmp(s, "external_id") == 0) {
        out->key = WRK_MATCH_KEY_EXTERNAL_ID;
        snprintf(out->field, sizeof(out->field), "external_id");
    } else if (wrk_fields_is_object_id(s)) {
        out->key = WRK_MATCH_KEY_CUSTOM;
        snprintf(out->field, sizeof(out->field), "additional_info.%s", s);
    } else {
        quoted(&it, v, sizeof(v));
        snprintf(err, errlen,
                 "the queue document's 'additional_data.match' is %s: it "
                 "must be 'deal_id', 'external_id' or a custom field id (24 "
                 "lowercase hex digits)",
                 v);
        return -1;
    }
    snprintf(out->target, sizeof(out->target), "%s", s);
    return 0;
}

static int read_success_file(const bson_t *q, wrk_match_t *out, char *err,
                             size_t errlen)
{
    bson_iter_t it;
    if (!find(q, "additional_data.success_file", &it))
        return 0;
    if (!BSON_ITER_HOLDS_BOOL(&it)) {
        snprintf(err, errlen,
                 "the queue document's 'additional_data.success_file' is %s: "
                 "it must be a boolean (true or false)",
                 dip_bson_type_name(bson_iter_type(&it)));
        return -1;
    }
    out->success_file = bson_iter_bool(&it) ? 1 : 0;
    return 0;
}

int wrk_match_read(const bson_t *q, wrk_match_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (read_mode(q, out, err, errlen) < 0 ||
        read_key(q, out, err, errlen) < 0 ||
        read_success_file(q, out, err, errlen) < 0) {
        memset(out, 0, sizeof(*out));
        return -1;
    }
    return 0;
}

int wrk_match_check_mapping(const wrk_match_t *m, const bson_t *mappings,
                            char *err, size_t errlen)
{
    bson_iter_t it;
    int has_key = 0, has_deal_id = 0;
    if (!bson_iter_init(&it, mappings))
        return 0;
    while (bson_iter_next(&it)) {
        const char *t;
        if (!BSON_ITER_HOLDS_UTF8(&it))
            continue; /* wrk_map refuses it with its own sentence */
        t = bson_iter_utf8(&it, NULL);
        if (m->key != WRK_MATCH_KEY_NONE && strcmp(t, m->target) == 0)
            has_key = 1;
        if (strcmp(t, "deal_id") == 0)
            has_deal_id = 1;
    }
    if (has_deal_id && m->key != WRK_MATCH_KEY_DEAL_ID) {
        snprintf(err, errlen,
                 "a column is mapped to 'deal_id', which only finds deals: "
                 "set 'additional_data.match' to 'deal_id' (mode 'update' or "
                 "'upsert') or map the column to another field");
        return -1;
    }
    if (m->key != WRK_MATCH_KEY_NONE && !has_key) {
        snprintf(err, errlen,
                 "no column is mapped to '%s', the match field of this %s "
                 "import: map the column that holds it",
                 m->target, mode_names[m->mode]);
        return -1;
    }
    return 0;
}

/* 1 when idx is a unique index on exactly account_id then field. */
static int index_fits(const bson_t *idx, const char *field)
{
    bson_iter_t it, k;
    int n = 0, ok = 1;
    if (!bson_iter_init_find(&it, idx, "unique") ||
        !BSON_ITER_HOLDS_BOOL(&it) || !bson_iter_bool(&it))
        return 0;
    if (!bson_iter_init_find(&it, idx, "key") ||
        !BSON_ITER_HOLDS_DOCUMENT(&it) || !bson_iter_recurse(&it, &k))
        return 0;
    while (bson_iter_next(&k)) {
        const char *want = n == 0 ? "account_id" : field;
        if (n > 1 || strcmp(bson_iter_key(&k), want) != 0 ||
            !(BSON_ITER_HOLDS_INT32(&k) || BSON_ITER_HOLDS_INT64(&k) ||
              BSON_ITER_HOLDS_DOUBLE(&k)))
            ok = 0;
        n++;
    }
    return ok && n == 2;
}

int wrk_match_index_ok(const wrk_match_t *m, const bson_t *indexes, char *err,
                       size_t errlen)
{
    bson_iter_t it;
    if (m->key != WRK_MATCH_KEY_CUSTOM && m->key != WRK_MATCH_KEY_EXTERNAL_ID)
        return 1;
    if (indexes && bson_iter_init(&it, indexes))
        while (bson_iter_next(&it)) {
            const uint8_t *data;
            uint32_t len;
            bson_t idx;
            if (!BSON_ITER_HOLDS_DOCUMENT(&it))
                continue;
            bson_iter_document(&it, &len, &data);
            if (bson_init_static(&idx, data, len) && index_fits(&idx, m->field))
                return 1;
        }
    if (m->key == WRK_MATCH_KEY_EXTERNAL_ID) {
        snprintf(err, errlen,
                 "the deals have no unique index on (account_id, "
                 "external_id), which the service creates unless deals "
                 "already repeat an external_id: an operator must remove "
                 "the repeats so that it can be created");
        return 0;
    }
    snprintf(err, errlen,
             "the match field '%s' has no unique index, so a key could find "
             "several deals: an operator must create it first, "
             "db.deals.createIndex({account_id: 1, '%s': 1}, {unique: true, "
             "partialFilterExpression: {'%s': {$type: 'string', $gt: ''}}})",
             m->field, m->field, m->field);
    return 0;
}

wrk_match_verdict_t wrk_match_verdict(wrk_match_mode_t mode,
                                      const wrk_match_facts_t *f,
                                      int64_t *first)
{
    *first = 0;
    if (f->key_empty)
        return mode == WRK_MATCH_MODE_UPDATE ? WRK_MATCH_ERR_EMPTY
                                             : WRK_MATCH_CREATE;
    if (f->key_malformed)
        return WRK_MATCH_ERR_KEY;
    /* A line re-read after a crash meets its own write: done, whatever
     * the mode. */
    if (f->found && f->written_by_line == f->line)
        return WRK_MATCH_DONE;
    if (f->earlier_line > 0 && f->earlier_line < f->line) {
        *first = f->earlier_line;
        return WRK_MATCH_ERR_REPEAT;
    }
    if (f->found && f->written_by_line > 0) {
        *first = f->written_by_line;
        return WRK_MATCH_ERR_REPEAT;
    }
    if (f->found == 2)
        return WRK_MATCH_ERR_PIPELINE;
    if (f->found == 0)
        return mode == WRK_MATCH_MODE_UPDATE ? WRK_MATCH_ERR_NONE
                                             : WRK_MATCH_CREATE;
    return mode == WRK_MATCH_MODE_CREATE ? WRK_MATCH_ERR_EXISTS
                                         : WRK_MATCH_UPDATE;
}

int wrk_match_is_error(wrk_match_verdict_t v)
{
    return v >= WRK_MATCH_ERR_EMPTY;
}

const char *wrk_match_sentence(const wrk_match_t *m, wrk_match_verdict_t v,
                               const char *key, size_t key_len, int64_t first,
                               char *out, size_t outlen)
{
    size_t cut = dip_text_cut(key, key_len, 60);
    const char *more = cut < key_len ? "..." : "";
    const char *name = m->target;
    switch (v) {
    case WRK_MATCH_ERR_EMPTY:
        dip_text_format(out, outlen, NULL,
                        "the %s cell is empty: an update needs the key of the "
                        "deal to change",
                        name);
        break;
    case WRK_MATCH_ERR_KEY:
        dip_text_format(out, outlen, NULL,
                        "the deal_id '%.*s%s' is not a deal id (24 hexadecimal "
                        "digits)",
                        (int)cut, key, more);
        break;
    case WRK_MATCH_ERR_NONE:
        dip_text_format(out, outlen, NULL,
                        "no deal with %s '%.*s%s' in this pipeline", name,
                        (int)cut, key, more);
        break;
    case WRK_MATCH_ERR_EXISTS:
        dip_text_format(out, outlen, NULL,
                        "a deal with %s '%.*s%s' already exists", name,
                        (int)cut, key, more);
        break;
    case WRK_MATCH_ERR_PIPELINE:
        dip_text_format(out, outlen, NULL,
                        "the deal with %s '%.*s%s' is in another pipeline of "
                        "the account: an import changes deals of its own "
                        "pipeline only",
                        name, (int)cut, key, more);
        break;
    case WRK_MATCH_ERR_REPEAT:
        dip_text_format(out, outlen, NULL,
                        "%s '%.*s%s' is on line %lld already: only the first "
                        "line with a key is applied",
                        name, (int)cut, key, more, (long long)first);
        break;
    default:
        dip_text_format(out, outlen, NULL, "%s", "");
        break;
    }
    return out;
}
