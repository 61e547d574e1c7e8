/*
 * sup_succfile: the success file, csv_import_lines and the source read
 * again side by side in line order (see sup_succfile.h).
 */
#include "sup_succfile.h"
#include "dip_bson.h"
#include "dip_text.h"
#include "wrk_csv.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FLUSH_AT (64 * 1024)
/* Records per cursor batch: each holds one batch of the import's rows. */
#define RECORDS 16

static const char BOM[] = "\xEF\xBB\xBF";

typedef struct merge {
    mongoc_cursor_t *cursor;
    bson_iter_t rows; /* of the current record */
    int in_record;
    /* the next line the records name, past the last taken */
    int have_next;
    int64_t next_line, last;
    char next_action[16];
    char next_id[25];
    /* the source the records name, from the first record */
    int file_known;
    char etag[256];
    int64_t size, mtime_ns;
    wrk_csv_t *csv;
    int header_done;
    sup_errfile_buf_t b;
    int fd;
    int64_t rows_out, bytes;
    int rc; /* the first failure, with why */
    char why[512];
} merge_t;

static int fail(merge_t *m, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(merge_t *m, int rc, const char *fmt, ...)
{
    va_list ap;
    if (m->rc != SUP_SUCCFILE_OK)
        return m->rc;
    m->rc = rc;
    va_start(ap, fmt);
    vsnprintf(m->why, sizeof(m->why), fmt, ap);
    va_end(ap);
    return rc;
}

/* The record's source as the worker saw it; the first one read names it,
 * every later one must name the same. */
static int check_file(merge_t *m, const bson_t *rec)
{
    const char *etag = dip_bson_get_str(rec, "file.etag");
    int64_t size = dip_bson_get_int(rec, "file.size", -1);
    int64_t mtime = dip_bson_get_int(rec, "file.mtime_ns", -1);
    if (!m->file_known) {
        m->file_known = etag != NULL || size >= 0;
        snprintf(m->etag, sizeof(m->etag), "%s", etag ? etag : "");
        m->size = size;
        m->mtime_ns = mtime;
        return 0;
    }
    if (strcmp(m->etag, etag ? etag : "") != 0 ||
        (!m->etag[0] && (size != m->size || mtime != m->mtime_ns)))
        return fail(m, SUP_SUCCFILE_ESOURCE,
                    "the import's lines were read from two versions of its "
                    "source");
    return 0;
}

/* Moves to the next line the records name past m->last: 1, or 0 at their
 * end (m->rc set when the cursor failed). */
static int advance(merge_t *m)
{
    const bson_t *rec;
    bson_error_t error;
    m->have_next = 0;
    for (;;) {
        while (m->in_record && bson_iter_next(&m->rows)) {
            bson_iter_t r;
            bson_t row;
            const uint8_t *data;
            uint32_t len;
            int64_t line;
            bson_oid_t id;
            const char *action;
            if (!BSON_ITER_HOLDS_DOCUMENT(&m->rows))
                continue;
            bson_iter_document(&m->rows, &len, &data);
            if (!bson_init_static(&row, data, len) ||
                !bson_iter_init_find(&r, &row, "line") ||
                dip_bson_iter_int(&r, &line) != 0 || line <= m->last)
                continue;
            action = dip_bson_get_str(&row, "action");
            memset(&id, 0, sizeof(id));
            dip_bson_get_oid(&row, "deal_id", &id);
            m->next_line = line;
            snprintf(m->next_action, sizeof(m->next_action), "%s",
                     action ? action : "");
            bson_oid_to_string(&id, m->next_id);
            m->have_next = 1;
            return 1;
        }
        m->in_record = 0;
        if (!mongoc_cursor_next(m->cursor, &rec))
            break;
        if (check_file(m, rec) != 0)
            return 0;
        if (bson_iter_init_find(&m->rows, rec, "rows") &&
            BSON_ITER_HOLDS_ARRAY(&m->rows) &&
            bson_iter_recurse(&m->rows, &m->rows))
            m->in_record = 1;
    }
    if (mongoc_cursor_error(m->cursor, &error))
        fail(m, SUP_SUCCFILE_EDB, "cannot read the lines of the import: %s",
             error.message);
    return 0;
}

static int flush_if_full(merge_t *m)
{
    int e;
    if (m->b.failed)
        return fail(m, SUP_SUCCFILE_ENOMEM, "out of memory");
    if (m->b.len >= FLUSH_AT &&
        (e = sup_errfile_flush(m->fd, &m->b, &m->bytes)) < 0)
        return fail(m, SUP_SUCCFILE_EIO, "cannot write the success file: %s",
                    strerror(-e));
    return 0;
}

/* The first record, once the reader has the source's header: Line,
 * Action, Deal id and the source's own names. */
static void header(merge_t *m)
{
    size_t n = 0;
    const char *const *names = wrk_csv_header(m->csv, &n);
    if (m->header_done)
        return;
    m->header_done = 1;
    sup_errfile_csv_cell(&m->b, "Line", 4);
    sup_errfile_csv_cell(&m->b, "Action", 6);
    sup_errfile_csv_cell(&m->b, "Deal id", 7);
    for (size_t i = 0; names && i < n; i++)
        sup_errfile_csv_cell(&m->b, names[i], strlen(names[i]));
    sup_errfile_csv_end(&m->b);
}

static int on_row(void *arg, const wrk_csv_row_t *row)
{
    merge_t *m = arg;
    if (m->rc != SUP_SUCCFILE_OK)
        return 1;
    header(m);
    if (m->have_next && m->next_line < (int64_t)row->line)
        return fail(m, SUP_SUCCFILE_ESOURCE,
                    "line %" PRId64 " of the import is not in its source",
                    m->next_line) != 0;
    if (!m->have_next || m->next_line != (int64_t)row->line)
        return 0;
    sup_errfile_csv_int(&m->b, m->next_line);
    sup_errfile_csv_cell(&m->b, m->next_action, strlen(m->next_action));
    sup_errfile_csv_cell(&m->b, m->next_id, strlen(m->next_id));
    /* the cells the row held, not the padding to the header's count: a
     * short row under a wide header stays short (class 6) */
    for (size_t i = 0; i < row->nfile && i < row->ncells; i++)
        sup_errfile_csv_cell(&m->b, row->cells[i], row->lens[i]);
    sup_errfile_csv_end(&m->b);
    m->rows_out++;
    m->last = m->next_line;
    advance(m);
    return flush_if_full(m) != 0 || m->rc != SUP_SUCCFILE_OK;
}

static int on_data(void *arg, const char *buf, size_t len)
{
    merge_t *m = arg;
    int rc = wrk_csv_feed(m->csv, buf, len);
    if (rc == WRK_CSV_ENOMEM)
        fail(m, SUP_SUCCFILE_ENOMEM, "out of memory reading the source");
    else if (rc == WRK_CSV_EHEADER)
        fail(m, SUP_SUCCFILE_ESOURCE, "the source's header is refused: %s",
             wrk_csv_error(m->csv));
    return m->rc != SUP_SUCCFILE_OK;
}

static void on_identity(void *arg, const char *etag, int64_t size,
                        int64_t mtime_ns)
{
    merge_t *m = arg;
    int same;
    if (!m->file_known)
        return; /* the records name none: nothing to compare */
    same = m->etag[0] ? strcmp(m->etag, etag) == 0
                      : size == m->size && mtime_ns == m->mtime_ns;
    if (!same)
        fail(m, SUP_SUCCFILE_ESOURCE,
             "the source is no longer the file the import read (another "
             "version)");
}

int sup_succfile_write(mongoc_database_t *db, dip_storage_t *storage,
                       const char *source_key, const bson_value_t *queue_id,
                       sup_errfile_result_t *out, char *err, size_t errlen)
{
    merge_t m;
    mongoc_collection_t *coll = NULL;
    bson_t filter = BSON_INITIALIZER, *opts = NULL;
    dip_storage_sink_t sink;
    char *key = NULL, serr[1024] = "";
    int rc, g;

    memset(&m, 0, sizeof(m));
    memset(out, 0, sizeof(*out));
    m.fd = -1;
    if (db == NULL || storage == NULL || source_key == NULL ||
        queue_id == NULL) {
        rc = dip_text_say(SUP_SUCCFILE_EINVAL, err, errlen,
                          "sup_succfile_write needs a database, a storage, a "
                          "source key and a queue id");
        goto cleanup;
    }
    key = sup_errfile_key_as(source_key, queue_id, SUP_SUCCFILE_SUFFIX);
    if (key == NULL) {
        rc = dip_text_say(SUP_SUCCFILE_ENOMEM, err, errlen, "out of memory");
        goto cleanup;
    }
    if (dip_storage_check_key(key, strlen(key), serr, sizeof(serr)) < 0) {
        rc = dip_text_say(SUP_SUCCFILE_EINVAL, err, errlen,
                          "cannot name the success file of '%s': %s",
                          source_key, serr);
        goto cleanup;
    }
    if ((m.fd = sup_errfile_tmp_open()) < 0) {
        rc = dip_text_say(SUP_SUCCFILE_EIO, err, errlen,
                          "cannot make a temporary file for the success file "
                          "'%s': %s",
                          key, strerror(-m.fd));
        goto cleanup;
    }
    if (write(m.fd, BOM, sizeof(BOM) - 1) != (ssize_t)(sizeof(BOM) - 1)) {
        rc = dip_text_say(SUP_SUCCFILE_EIO, err, errlen,
                          "cannot write the success file '%s': %s", key,
                          strerror(errno));
        goto cleanup;
    }
    m.bytes = sizeof(BOM) - 1;
    m.csv = wrk_csv_new(on_row, &m);
    if (m.csv == NULL) {
        rc = dip_text_say(SUP_SUCCFILE_ENOMEM, err, errlen, "out of memory");
        goto cleanup;
    }
    coll = mongoc_database_get_collection(db, SUP_SUCCFILE_COLLECTION);
    BSON_APPEND_VALUE(&filter, "queue_id", queue_id);
    /* The unique index (queue_id, first_line) serves this sort. */
    opts = BCON_NEW("sort", "{", "first_line", BCON_INT32(1), "}", "projection",
                    "{", "_id", BCON_INT32(0), "file", BCON_INT32(1), "rows",
                    BCON_INT32(1), "}", "batchSize", BCON_INT32(RECORDS));
    m.cursor = mongoc_collection_find_with_opts(coll, &filter, opts, NULL);
    /* The first record names the source, before a byte of it is read. */
    advance(&m);
    if (m.rc == SUP_SUCCFILE_OK) {
        sink.arg = &m;
        sink.size = NULL;
        sink.data = on_data;
        sink.identity = on_identity;
        g = dip_storage_get(storage, source_key, 0, &sink, serr, sizeof(serr));
        if (g == DIP_STORAGE_OK && m.rc == SUP_SUCCFILE_OK &&
            wrk_csv_finish(m.csv) == WRK_CSV_EHEADER)
            fail(&m, SUP_SUCCFILE_ESOURCE, "the source's header is refused: %s",
                 wrk_csv_error(m.csv));
        if (g == DIP_STORAGE_ENOTFOUND || g == DIP_STORAGE_EDENIED ||
            g == DIP_STORAGE_ECHANGED)
            fail(&m, SUP_SUCCFILE_ESOURCE,
                 "the source cannot be read again for the success file: %s",
                 serr);
        else if (g != DIP_STORAGE_OK && g != DIP_STORAGE_EABORT)
            fail(&m, SUP_SUCCFILE_ESTORAGE,
                 "reading the source for the success file failed: %s", serr);
    }
    if (m.rc == SUP_SUCCFILE_OK && m.have_next)
        fail(&m, SUP_SUCCFILE_ESOURCE,
             "line %" PRId64 " of the import is not in its source",
             m.next_line);
    if (m.rc != SUP_SUCCFILE_OK) {
        rc = dip_text_say(m.rc, err, errlen, "%s", m.why);
        goto cleanup;
    }
    header(&m); /* a file without rows has its header all the same */
    if (flush_if_full(&m) != 0 ||
        ((g = sup_errfile_flush(m.fd, &m.b, &m.bytes)) < 0 &&
         fail(&m, SUP_SUCCFILE_EIO, "cannot write the success file: %s",
              strerror(-g)))) {
        rc = dip_text_say(m.rc, err, errlen, "%s", m.why);
        goto cleanup;
    }
    if (dip_storage_put_fd(storage, key, m.fd, serr, sizeof(serr)) != 0) {
        rc = dip_text_say(SUP_SUCCFILE_ESTORAGE, err, errlen,
                          "cannot store the success file: %s", serr);
        goto cleanup;
    }
    out->key = key;
    key = NULL;
    out->rows = m.rows_out;
    out->bytes = m.bytes;
    rc = SUP_SUCCFILE_OK;
cleanup:
    if (m.cursor)
        mongoc_cursor_destroy(m.cursor);
    if (coll)
        mongoc_collection_destroy(coll);
    bson_destroy(&filter);
    if (opts)
        bson_destroy(opts);
    wrk_csv_destroy(&m.csv);
    sup_errfile_buf_release(&m.b);
    if (m.fd >= 0)
        close(m.fd);
    free(key);
    return rc;
}

/* Sets success_file: r on the document of coll whose field is queue_id. */
static int record_in(mongoc_database_t *db, const char *collection,
                     const char *field, const bson_value_t *queue_id,
                     const sup_errfile_result_t *r, char *err, size_t errlen)
{
    mongoc_collection_t *coll = mongoc_database_get_collection(db, collection);
    bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set, reply;
    bson_error_t error;
    int rc = SUP_SUCCFILE_OK;
    BSON_APPEND_VALUE(&filter, field, queue_id);
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    sup_errfile_append_result(&set, "success_file", r);
    bson_append_document_end(&update, &set);
    if (!mongoc_collection_update_one(coll, &filter, &update, NULL, &reply,
                                      &error))
        rc = dip_text_say(SUP_SUCCFILE_EDB, err, errlen,
                          "cannot record the success file '%s' on %s: %s",
                          r->key ? r->key : "", collection, error.message);
    else if (dip_bson_get_int(&reply, "matchedCount", 1) == 0)
        rc = dip_text_say(SUP_SUCCFILE_EDB, err, errlen,
                          "cannot record the success file '%s': the import "
                          "has no %s document",
                          r->key ? r->key : "", collection);
    bson_destroy(&reply);
    bson_destroy(&filter);
    bson_destroy(&update);
    mongoc_collection_destroy(coll);
    return rc;
}

int sup_succfile_record(mongoc_database_t *db, const bson_value_t *queue_id,
                        const sup_errfile_result_t *r, char *err, size_t errlen)
{
    /* csv_imports first: it is what the CRM reads and what the cleanup
     * waits for; the queue document names it as well. */
    int rc = record_in(db, "csv_imports", "queue_id", queue_id, r, err, errlen);
    if (rc == SUP_SUCCFILE_OK)
        rc = record_in(db, "queues", "_id", queue_id, r, err, errlen);
    return rc;
}

int sup_succfile_wanted(const bson_t *q)
{
    bson_iter_t it;
    /* booleans only: "true" as a string is no (class 11) */
    if (bson_iter_init(&it, q) &&
        bson_iter_find_descendant(&it, "dry_run", &it) &&
        BSON_ITER_HOLDS_BOOL(&it) && bson_iter_bool(&it))
        return 0;
    return bson_iter_init(&it, q) &&
           bson_iter_find_descendant(&it, "additional_data.success_file",
                                     &it) &&
           BSON_ITER_HOLDS_BOOL(&it) && bson_iter_bool(&it);
}
