/*
 * sup_errfile: formats rejected rows as CSV (pure functions over a growing
 * buffer) and streams an import's csv_import_errors through them into an
 * unnamed temporary file that the storage module uploads. Memory is bounded
 * by one cursor batch and one 64 KiB buffer, never by the number of errors.
 */
#include "sup_errfile.h"
#include "dip_mongo_io.h"
#include "dip_bson.h"
#include "dip_text.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FLUSH_AT (64 * 1024)
#define BATCH 500

static const char BOM[] = "\xEF\xBB\xBF";

/* --- the CSV, pure ------------------------------------------------------ */

void sup_errfile_buf_release(sup_errfile_buf_t *b)
{
    if (b == NULL)
        return;
    free(b->data);
    memset(b, 0, sizeof(*b));
}

static int buf_room(sup_errfile_buf_t *b, size_t more)
{
    size_t cap;
    char *d;
    if (b->failed)
        return -1;
    if (b->len + more + 1 <= b->cap)
        return 0;
    cap = b->cap ? b->cap : 256;
    while (cap < b->len + more + 1)
        cap *= 2;
    if ((d = realloc(b->data, cap)) == NULL) {
        b->failed = 1;
        return -1;
    }
    b->data = d;
    b->cap = cap;
    return 0;
}

static void buf_add(sup_errfile_buf_t *b, const char *s, size_t n)
{
    if (buf_room(b, n) < 0)
        return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static int needs_neutralizing(const char *s, size_t len)
{
    return len > 0 && (s[0] == '=' || s[0] == '+' || s[0] == '-' ||
                       s[0] == '@' || s[0] == '\t' || s[0] == '\r');
}

static int needs_quotes(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] == ',' || s[i] == '"' || s[i] == '\r' || s[i] == '\n')
            return 1;
    return 0;
}

/* Appends a cell made of two pieces (the second may be empty), as one. */
static void cell2(sup_errfile_buf_t *b, const char *s, size_t len,
                  const char *s2, size_t len2, int neutralize)
{
    int quote = needs_quotes(s, len) || needs_quotes(s2, len2);
    const char *parts[2] = {s, s2};
    size_t lens[2] = {len, len2};
    if (b->fields++ > 0)
        buf_add(b, ",", 1);
    if (quote)
        buf_add(b, "\"", 1);
    if (neutralize && needs_neutralizing(s, len))
        buf_add(b, "'", 1);
    for (int p = 0; p < 2; p++) {
        const char *q = parts[p], *end = parts[p] + lens[p];
        while (q < end) {
            const char *dq = quote ? memchr(q, '"', (size_t)(end - q)) : NULL;
            size_t n = dq ? (size_t)(dq - q) + 1 : (size_t)(end - q);
            buf_add(b, q, n);
            if (dq)
                buf_add(b, "\"", 1); /* a quote inside is doubled */
            q += n;
        }
    }
    if (quote)
        buf_add(b, "\"", 1);
}

void sup_errfile_csv_cell(sup_errfile_buf_t *b, const char *s, size_t len)
{
    cell2(b, s ? s : "", s ? len : 0, "", 0, 1);
}

void sup_errfile_csv_int(sup_errfile_buf_t *b, int64_t v)
{
    char num[32];
    int n = snprintf(num, sizeof(num), "%" PRId64, v);
    cell2(b, num, (size_t)n, "", 0, 0);
}

void sup_errfile_csv_end(sup_errfile_buf_t *b)
{
    buf_add(b, "\r\n", 2);
    b->fields = 0;
}

static void cell_str(sup_errfile_buf_t *b, const char *s)
{
    sup_errfile_csv_cell(b, s, strlen(s));
}

/* One value alone as extended JSON (canonical, or relaxed when canonical is
 * 0), *len bytes, for bson_free; NULL when it cannot be written. */
static char *value_json(const bson_value_t *v, int canonical, size_t *len)
{
    bson_t doc = BSON_INITIALIZER;
    size_t jl = 0;
    char *json, *out = NULL;
    BSON_APPEND_VALUE(&doc, "v", v);
    json = canonical ? bson_as_canonical_extended_json(&doc, &jl)
                     : bson_as_relaxed_extended_json(&doc, &jl);
    /* "{ "v" : <value> }" */
    if (json && jl > 10) {
        *len = jl - 10;
        out = bson_strndup(json + 8, *len);
    }
    bson_free(json);
    bson_destroy(&doc);
    return out;
}

/* A cell from any BSON value: strings as they are, other values as text. */
static void cell_value(sup_errfile_buf_t *b, const bson_iter_t *it)
{
    const bson_value_t *v = bson_iter_value((bson_iter_t *)it);
    char num[64];
    switch (v->value_type) {
    case BSON_TYPE_UTF8:
        sup_errfile_csv_cell(b, v->value.v_utf8.str, v->value.v_utf8.len);
        return;
    case BSON_TYPE_NULL:
    case BSON_TYPE_UNDEFINED:
        sup_errfile_csv_cell(b, "", 0);
        return;
    case BSON_TYPE_INT32:
    case BSON_TYPE_INT64:
        snprintf(num, sizeof(num), "%" PRId64, bson_iter_as_int64(it));
        cell_str(b, num);
        return;
    case BSON_TYPE_DOUBLE:
        snprintf(num, sizeof(num), "%.17g", v->value.v_double);
        cell_str(b, num);
        return;
    case BSON_TYPE_BOOL:
        cell_str(b, v->value.v_bool ? "true" : "false");
        return;
    default: {
        size_t jl = 0;
        char *json = value_json(v, 0, &jl);
        sup_errfile_csv_cell(b, json ? json : "", jl);
        bson_free(json);
    }
    }
}

void sup_errfile_format_header(sup_errfile_buf_t *b, const bson_t *header)
{
    bson_iter_t it;
    buf_add(b, BOM, sizeof(BOM) - 1);
    cell_str(b, "Line");
    cell_str(b, "Field");
    cell_str(b, "Error");
    if (header && bson_iter_init(&it, header))
        while (bson_iter_next(&it))
            cell_value(b, &it);
    sup_errfile_csv_end(b);
}

void sup_errfile_format_error(sup_errfile_buf_t *b, const bson_t *doc)
{
    static const char cut_note[] = " (only the start of this row was kept)";
    bson_iter_t it, row;
    const char *field = "", *msg = "";
    uint32_t flen = 0, mlen = 0;
    int truncated = 0, have_line = 0;
    int64_t line = 0;

    if (bson_iter_init_find(&it, doc, "line") &&
        dip_bson_iter_int(&it, &line) == 0)
        have_line = 1;
    if (bson_iter_init_find(&it, doc, "field") && BSON_ITER_HOLDS_UTF8(&it))
        field = bson_iter_utf8(&it, &flen);
    if (bson_iter_init_find(&it, doc, "message") && BSON_ITER_HOLDS_UTF8(&it))
        msg = bson_iter_utf8(&it, &mlen);
    if (bson_iter_init_find(&it, doc, "row_truncated") &&
        BSON_ITER_HOLDS_BOOL(&it))
        truncated = bson_iter_bool(&it);

    if (have_line)
        sup_errfile_csv_int(b, line);
    else
        sup_errfile_csv_cell(b, "", 0);
    sup_errfile_csv_cell(b, field, flen);
    cell2(b, msg, mlen, truncated ? cut_note : "",
          truncated ? sizeof(cut_note) - 1 : 0, 1);
    if (bson_iter_init_find(&it, doc, "row") && BSON_ITER_HOLDS_ARRAY(&it) &&
        bson_iter_recurse(&it, &row))
        while (bson_iter_next(&row))
            cell_value(b, &row);
    sup_errfile_csv_end(b);
}

void sup_errfile_format_trailer(sup_errfile_buf_t *b, int64_t rows,
                                int64_t left_out)
{
    char text[256];
    if (left_out > 0)
        snprintf(text, sizeof(text),
                 "%" PRId64 " more rejected rows are left out of this file "
                 "(%" PRId64 " listed): an import keeps only so many errors",
                 left_out, rows);
    else
        snprintf(text, sizeof(text),
                 "0 rejected rows are left out of this file: all %" PRId64
                 " are listed",
                 rows);
    sup_errfile_csv_cell(b, "", 0);
    sup_errfile_csv_cell(b, "", 0);
    cell_str(b, text);
    sup_errfile_csv_end(b);
}

/* --- the key ------------------------------------------------------------ */

static void add_escaped(sup_errfile_buf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
            (c >= '0' && c <= '9') || c == '-' || c == '_') {
            buf_add(b, (const char *)&c, 1);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            buf_add(b, e, 3);
        }
    }
}

/* sup_errfile_key_fit with another suffix. */
static char *key_fit(const char *source_key, const char *id,
                     const char *suffix_s, size_t key_max, size_t segment_max)
{
    const size_t suffix_len = strlen(suffix_s);
    sup_errfile_buf_t b = {0};
    size_t slen = strlen(source_key), idlen = strlen(id);
    size_t slash = 0, base_len, room, cut;
    const char *base;
    for (size_t i = 0; i < slen; i++)
        if (source_key[i] == '/')
            slash = i + 1;
    base = source_key + slash;
    base_len = slen - slash;
    /* 1. As it always was, when it fits. */
    if (slen + 1 + idlen + suffix_len <= key_max &&
        base_len + 1 + idlen + suffix_len <= segment_max) {
        buf_add(&b, source_key, slen);
        buf_add(&b, ".", 1);
        buf_add(&b, id, idlen);
        buf_add(&b, suffix_s, suffix_len);
        goto out;
    }
    /* 2. The file's own name cut (at a character boundary) so that its
     * segment and the whole key fit; "~" marks the cut; the id keeps it
     * the import's own. */
    room = segment_max;
    if (slash >= key_max)
        room = 0;
    else if (key_max - slash < room)
        room = key_max - slash;
    if (room < 1 + idlen + suffix_len + 1) {
        /* 3. Not even the id fits beside the directory: the key cut
         * where the id and the suffix still fit (a storage without
         * directories: S3). */
        if (key_max < 2 + idlen + suffix_len)
            return NULL;
        cut =
            dip_text_cut(source_key, slen, key_max - (2 + idlen + suffix_len));
        if (cut > slen)
            cut = slen;
        buf_add(&b, source_key, cut);
        buf_add(&b, "~.", 2);
        buf_add(&b, id, idlen);
        buf_add(&b, suffix_s, suffix_len);
        goto out;
    }
    cut = dip_text_cut(base, base_len, room - (2 + idlen + suffix_len));
    if (cut > base_len)
        cut = base_len;
    buf_add(&b, source_key, slash);
    buf_add(&b, base, cut);
    buf_add(&b, "~.", 2);
    buf_add(&b, id, idlen);
    buf_add(&b, suffix_s, suffix_len);
out:
    if (b.failed) {
        sup_errfile_buf_release(&b);
        return NULL;
    }
    return b.data;
}

char *sup_errfile_key_fit(const char *source_key, const char *id,
                          size_t key_max, size_t segment_max)
{
    return key_fit(source_key, id, ".errors.csv", key_max, segment_max);
}

char *sup_errfile_key(const char *source_key, const bson_value_t *queue_id)
{
    return sup_errfile_key_as(source_key, queue_id, ".errors.csv");
}

char *sup_errfile_key_as(const char *source_key, const bson_value_t *queue_id,
                         const char *suffix)
{
    sup_errfile_buf_t b = {0};
    char tmp[64], *key;
    switch (queue_id->value_type) {
    case BSON_TYPE_OID:
        bson_oid_to_string(&queue_id->value.v_oid, tmp);
        buf_add(&b, tmp, strlen(tmp));
        break;
    case BSON_TYPE_INT32:
        snprintf(tmp, sizeof(tmp), "%" PRId32, queue_id->value.v_int32);
        add_escaped(&b, tmp, strlen(tmp));
        break;
    case BSON_TYPE_INT64:
        snprintf(tmp, sizeof(tmp), "%" PRId64, queue_id->value.v_int64);
        add_escaped(&b, tmp, strlen(tmp));
        break;
    case BSON_TYPE_UTF8:
        add_escaped(&b, queue_id->value.v_utf8.str, queue_id->value.v_utf8.len);
        break;
    default: {
        size_t jl = 0;
        char *json = value_json(queue_id, 1, &jl);
        if (json == NULL)
            b.failed = 1;
        else
            add_escaped(&b, json, jl);
        bson_free(json);
    }
    }
    buf_add(&b, "", 1); /* NUL */
    if (b.failed) {
        sup_errfile_buf_release(&b);
        return NULL;
    }
    key = key_fit(source_key, b.data, suffix, SUP_ERRFILE_KEY_MAX,
                  SUP_ERRFILE_SEGMENT_MAX);
    sup_errfile_buf_release(&b);
    return key;
}

/* --- writing and uploading ---------------------------------------------- */

void sup_errfile_result_release(sup_errfile_result_t *r)
{
    if (r == NULL)
        return;
    free(r->key);
    memset(r, 0, sizeof(*r));
}

/* An unnamed file in $TMPDIR (or /tmp) that vanishes when closed, even
 * after a crash; where O_TMPFILE is not supported, a named one unlinked at
 * once. */
int sup_errfile_tmp_open(void)
{
    const char *dir = getenv("TMPDIR");
    char path[4096];
    int fd;
    if (dir == NULL || *dir == '\0')
        dir = "/tmp";
    fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0)
        return fd;
    if ((size_t)snprintf(path, sizeof(path), "%s/dealimport-errors-XXXXXX",
                         dir) >= sizeof(path))
        return -ENAMETOOLONG;
    fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0)
        return -errno;
    unlink(path);
    return fd;
}

int sup_errfile_flush(int fd, sup_errfile_buf_t *b, int64_t *bytes)
{
    size_t off = 0;
    while (off < b->len) {
        ssize_t w = write(fd, b->data + off, b->len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        off += (size_t)w;
    }
    *bytes += (int64_t)b->len;
    b->len = 0;
    return 0;
}

int sup_errfile_write(mongoc_client_t *client, const char *dbname,
                      dip_storage_t *storage, const char *source_key,
                      const bson_value_t *queue_id, const bson_t *header,
                      int64_t left_out, sup_errfile_result_t *out, char *err,
                      size_t errlen)
{
    sup_errfile_buf_t b = {0};
    mongoc_collection_t *coll = NULL;
    mongoc_cursor_t *cursor = NULL;
    bson_t filter = BSON_INITIALIZER, *opts = NULL, *proj = NULL;
    const bson_t *doc;
    bson_error_t error;
    int64_t rows = 0, bytes = 0, last = 0;
    char *key = NULL, serr[1024] = "";
    int fd = -1, rc, e;

    memset(out, 0, sizeof(*out));
    if (client == NULL || dbname == NULL || storage == NULL ||
        source_key == NULL || queue_id == NULL) {
        rc = dip_text_say(
            SUP_ERRFILE_EINVAL, err, errlen,
            "sup_errfile_write needs a database, a storage, a source "
            "key and a queue id");
        goto cleanup;
    }
    if ((key = sup_errfile_key(source_key, queue_id)) == NULL) {
        rc = dip_text_say(SUP_ERRFILE_ENOMEM, err, errlen, "out of memory");
        goto cleanup;
    }
    if (dip_storage_check_key(key, strlen(key), serr, sizeof(serr)) < 0) {
        rc = dip_text_say(SUP_ERRFILE_EINVAL, err, errlen,
                          "cannot name the error file of '%s': %s", source_key,
                          serr);
        goto cleanup;
    }
    if ((fd = sup_errfile_tmp_open()) < 0) {
        rc = dip_text_say(
            SUP_ERRFILE_EIO, err, errlen,
            "cannot make a temporary file for the error file '%s': %s", key,
            strerror(-fd));
        goto cleanup;
    }

    sup_errfile_format_header(&b, header);
    coll = mongoc_client_get_collection(client, dbname, "csv_import_errors");
    /* In pieces of BATCH errors, each a find of its own that resumes after
     * the last line read, on the unique index (queue_id, line) that also
     * serves the sort: every piece carries maxTimeMS (dip_mongo_read_opts)
     * and costs the same however long the list, where one cursor's
     * maxTimeMS would bound the whole list's reading and fail a long one
     * on a slow server every time (failure classes 1 and 2). */
    proj = BCON_NEW("sort", "{", "line", BCON_INT32(1), "}", "projection", "{",
                    "_id", BCON_INT32(0), "line", BCON_INT32(1), "field",
                    BCON_INT32(1), "message", BCON_INT32(1), "row",
                    BCON_INT32(1), "row_truncated", BCON_INT32(1), "}", "limit",
                    BCON_INT64(BATCH), "batchSize", BCON_INT32(BATCH));
    opts = dip_mongo_read_opts(client, proj);
    for (;;) {
        int64_t got = 0;
        bson_reinit(&filter);
        BSON_APPEND_VALUE(&filter, "queue_id", queue_id);
        if (rows > 0)
            BCON_APPEND(&filter, "line", "{", "$gt", BCON_INT64(last), "}");
        cursor = mongoc_collection_find_with_opts(coll, &filter, opts, NULL);
        while (mongoc_cursor_next(cursor, &doc)) {
            sup_errfile_format_error(&b, doc);
            last = dip_bson_get_int(doc, "line", last);
            rows++;
            got++;
            if (b.len >= FLUSH_AT &&
                (e = sup_errfile_flush(fd, &b, &bytes)) < 0) {
                rc = dip_text_say(SUP_ERRFILE_EIO, err, errlen,
                                  "cannot write the error file '%s': %s", key,
                                  strerror(-e));
                goto cleanup;
            }
            if (b.failed)
                break;
        }
        if (mongoc_cursor_error(cursor, &error)) {
            rc = dip_text_say(
                SUP_ERRFILE_EDB, err, errlen,
                "cannot read the errors for the error file '%s': %s", key,
                error.message);
            goto cleanup;
        }
        mongoc_cursor_destroy(cursor);
        cursor = NULL;
        if (b.failed || got < BATCH)
            break;
    }
    sup_errfile_format_trailer(&b, rows, left_out);
    if (b.failed) {
        rc = dip_text_say(SUP_ERRFILE_ENOMEM, err, errlen, "out of memory");
        goto cleanup;
    }
    if ((e = sup_errfile_flush(fd, &b, &bytes)) < 0) {
        rc = dip_text_say(SUP_ERRFILE_EIO, err, errlen,
                          "cannot write the error file '%s': %s", key,
                          strerror(-e));
        goto cleanup;
    }
    if (dip_storage_put_fd(storage, key, fd, serr, sizeof(serr)) != 0) {
        rc = dip_text_say(SUP_ERRFILE_ESTORAGE, err, errlen,
                          "cannot store the error file: %s", serr);
        goto cleanup;
    }
    out->key = key;
    key = NULL;
    out->rows = rows;
    out->bytes = bytes;
    rc = SUP_ERRFILE_OK;
cleanup:
    if (cursor)
        mongoc_cursor_destroy(cursor);
    if (coll)
        mongoc_collection_destroy(coll);
    bson_destroy(&filter);
    if (opts)
        bson_destroy(opts);
    if (proj)
        bson_destroy(proj);
    sup_errfile_buf_release(&b);
    if (fd >= 0)
        close(fd);
    free(key);
    return rc;
}

void sup_errfile_append_result(bson_t *doc, const char *name,
                               const sup_errfile_result_t *r)
{
    bson_t sub;
    BSON_APPEND_DOCUMENT_BEGIN(doc, name, &sub);
    BSON_APPEND_UTF8(&sub, "key", r->key ? r->key : "");
    BSON_APPEND_INT64(&sub, "rows", r->rows);
    BSON_APPEND_INT64(&sub, "bytes", r->bytes);
    bson_append_document_end(doc, &sub);
}

int sup_errfile_record(mongoc_database_t *db, const bson_value_t *queue_id,
                       const sup_errfile_result_t *r, char *err, size_t errlen)
{
    mongoc_collection_t *coll =
        mongoc_database_get_collection(db, "csv_imports");
    bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set, reply;
    bson_error_t error;
    bson_iter_t it;
    int rc = SUP_ERRFILE_OK;

    BSON_APPEND_VALUE(&filter, "queue_id", queue_id);
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    sup_errfile_append_result(&set, "error_file", r);
    bson_append_document_end(&update, &set);
    if (!mongoc_collection_update_one(coll, &filter, &update, NULL, &reply,
                                      &error))
        rc =
            dip_text_say(SUP_ERRFILE_EDB, err, errlen,
                         "cannot record the error file '%s' on csv_imports: %s",
                         r->key ? r->key : "", error.message);
    else if (bson_iter_init_find(&it, &reply, "matchedCount") &&
             bson_iter_as_int64(&it) == 0)
        rc =
            dip_text_say(SUP_ERRFILE_EDB, err, errlen,
                         "cannot record the error file '%s': the import has no "
                         "csv_imports document yet",
                         r->key ? r->key : "");
    bson_destroy(&reply);
    bson_destroy(&filter);
    bson_destroy(&update);
    mongoc_collection_destroy(coll);
    return rc;
}
