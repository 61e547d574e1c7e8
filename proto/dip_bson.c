/*
 * dip_bson: id reading that accepts both forms the CRM stores, and the
 * conversions between the JSON of the wire protocols and BSON documents.
 */
#include "dip_bson.h"

#include <string.h>
#include <time.h>

int dip_bson_get_oid(const bson_t *doc, const char *dotted, bson_oid_t *out)
{
    bson_iter_t it;
    if (doc == NULL || !bson_iter_init(&it, doc) ||
        !bson_iter_find_descendant(&it, dotted, &it))
        return -1;
    switch (bson_iter_type(&it)) {
    case BSON_TYPE_OID:
        bson_oid_copy(bson_iter_oid(&it), out);
        return 0;
    case BSON_TYPE_UTF8: {
        uint32_t len;
        const char *s = bson_iter_utf8(&it, &len);
        if (len != 24 || !bson_oid_is_valid(s, len))
            return -2;
        bson_oid_init_from_string(out, s);
        return 0;
    }
    case BSON_TYPE_NULL:
    case BSON_TYPE_UNDEFINED:
        return -1;
    default:
        return -2;
    }
}

const char *dip_bson_get_str(const bson_t *doc, const char *dotted)
{
    bson_iter_t it;
    if (doc == NULL || !bson_iter_init(&it, doc) ||
        !bson_iter_find_descendant(&it, dotted, &it) ||
        !BSON_ITER_HOLDS_UTF8(&it))
        return NULL;
    return bson_iter_utf8(&it, NULL);
}

int dip_bson_iter_int(const bson_iter_t *it, int64_t *out)
{
    switch (bson_iter_type(it)) {
    case BSON_TYPE_INT32:
        *out = bson_iter_int32(it);
        return 0;
    case BSON_TYPE_INT64:
        *out = bson_iter_int64(it);
        return 0;
    case BSON_TYPE_DOUBLE: {
        double d = bson_iter_double(it);
        if (d >= -9e15 && d <= 9e15 && d == (double)(int64_t)d) {
            *out = (int64_t)d;
            return 0;
        }
        return -1;
    }
    default:
        return -1;
    }
}

int64_t dip_bson_get_int(const bson_t *doc, const char *dotted, int64_t def)
{
    bson_iter_t it;
    int64_t v;
    if (doc == NULL || !bson_iter_init(&it, doc) ||
        !bson_iter_find_descendant(&it, dotted, &it) ||
        dip_bson_iter_int(&it, &v) < 0)
        return def;
    return v;
}

const char *dip_bson_type_name(bson_type_t type)
{
    switch (type) {
    case BSON_TYPE_UTF8:
    case BSON_TYPE_SYMBOL:
        return "a string";
    case BSON_TYPE_INT32:
    case BSON_TYPE_INT64:
    case BSON_TYPE_DOUBLE:
    case BSON_TYPE_DECIMAL128:
        return "a number";
    case BSON_TYPE_DOCUMENT:
        return "an object";
    case BSON_TYPE_ARRAY:
        return "an array";
    case BSON_TYPE_BOOL:
        return "a boolean";
    case BSON_TYPE_NULL:
        return "null";
    case BSON_TYPE_UNDEFINED:
        return "undefined";
    case BSON_TYPE_OID:
        return "an ObjectId";
    case BSON_TYPE_DATE_TIME:
    case BSON_TYPE_TIMESTAMP:
        return "a date";
    case BSON_TYPE_BINARY:
        return "binary data";
    default:
        return "a value of another type";
    }
}

void dip_bson_append_id_match(bson_t *q, const char *key, const bson_oid_t *id)
{
    bson_t sub, arr;
    char hex[25];
    bson_oid_to_string(id, hex);
    BSON_APPEND_DOCUMENT_BEGIN(q, key, &sub);
    BSON_APPEND_ARRAY_BEGIN(&sub, "$in", &arr);
    BSON_APPEND_OID(&arr, "0", id);
    BSON_APPEND_UTF8(&arr, "1", hex);
    bson_append_array_end(&sub, &arr);
    bson_append_document_end(q, &sub);
}

json_t *dip_bson_to_json(const bson_t *doc)
{
    size_t len;
    char *s = bson_as_relaxed_extended_json(doc, &len);
    json_t *j;
    if (s == NULL)
        return NULL;
    j = json_loadb(s, len, 0, NULL);
    bson_free(s);
    return j;
}

bson_t *dip_bson_from_json(const json_t *value)
{
    char *s = json_dumps(value, JSON_COMPACT);
    bson_t *b;
    if (s == NULL)
        return NULL;
    b = bson_new_from_json((const uint8_t *)s, (ssize_t)strlen(s), NULL);
    free(s);
    return b;
}

int64_t dip_bson_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void dip_bson_iso_time(int64_t ms, char *buf, size_t len)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(ms % 1000));
}

int dip_bson_reply_value(const bson_t *reply, bson_t *view)
{
    bson_iter_t it;
    const uint8_t *data;
    uint32_t len;
    if (!bson_iter_init_find(&it, reply, "value") ||
        !BSON_ITER_HOLDS_DOCUMENT(&it))
        return 0;
    bson_iter_document(&it, &len, &data);
    return bson_init_static(view, data, len) ? 1 : 0;
}

int dip_bson_iter_equal(const bson_iter_t *a, const bson_iter_t *b)
{
    bson_type_t ta = bson_iter_type(a), tb = bson_iter_type(b);
    int na = ta == BSON_TYPE_DOUBLE || ta == BSON_TYPE_INT32 ||
             ta == BSON_TYPE_INT64;
    int nb = tb == BSON_TYPE_DOUBLE || tb == BSON_TYPE_INT32 ||
             tb == BSON_TYPE_INT64;
    if (na && nb)
        return bson_iter_as_double(a) == bson_iter_as_double(b);
    if (ta != tb)
        return 0;
    switch (ta) {
    case BSON_TYPE_UTF8: {
        uint32_t la, lb;
        const char *sa = bson_iter_utf8(a, &la), *sb = bson_iter_utf8(b, &lb);
        return la == lb && memcmp(sa, sb, la) == 0;
    }
    case BSON_TYPE_OID:
        return bson_oid_equal(bson_iter_oid(a), bson_iter_oid(b));
    case BSON_TYPE_DATE_TIME:
        return bson_iter_date_time(a) == bson_iter_date_time(b);
    case BSON_TYPE_BOOL:
        return bson_iter_bool(a) == bson_iter_bool(b);
    case BSON_TYPE_NULL:
    case BSON_TYPE_UNDEFINED:
    case BSON_TYPE_MINKEY:
    case BSON_TYPE_MAXKEY:
        return 1;
    case BSON_TYPE_DECIMAL128: {
        bson_decimal128_t da, db;
        return bson_iter_decimal128(a, &da) && bson_iter_decimal128(b, &db) &&
               da.high == db.high && da.low == db.low;
    }
    case BSON_TYPE_DOCUMENT:
    case BSON_TYPE_ARRAY: {
        uint32_t la = 0, lb = 0;
        const uint8_t *da = NULL, *db = NULL;
        if (ta == BSON_TYPE_DOCUMENT) {
            bson_iter_document(a, &la, &da);
            bson_iter_document(b, &lb, &db);
        } else {
            bson_iter_array(a, &la, &da);
            bson_iter_array(b, &lb, &db);
        }
        return da && db && la == lb && memcmp(da, db, la) == 0;
    }
    default:
        return 0;
    }
}

bool dip_bson_append_is(bson_t *q, const char *path, bson_iter_t *v)
{
    bson_t sub, neg;
    if (BSON_ITER_HOLDS_ARRAY(v))
        return BSON_APPEND_VALUE(q, path, bson_iter_value(v));
    return BSON_APPEND_DOCUMENT_BEGIN(q, path, &sub) &&
           BSON_APPEND_VALUE(&sub, "$eq", bson_iter_value(v)) &&
           (!BSON_ITER_HOLDS_NULL(v) ||
            BSON_APPEND_BOOL(&sub, "$exists", true)) &&
           BSON_APPEND_DOCUMENT_BEGIN(&sub, "$not", &neg) &&
           BSON_APPEND_UTF8(&neg, "$type", "array") &&
           bson_append_document_end(&sub, &neg) &&
           bson_append_document_end(q, &sub);
}
