/*
 * wrk_import: the worker's pipeline. Bytes flow from storage (libcurl's
 * write callback or a file read) straight into the CSV reader, whose row
 * callback maps, validates and batches each row; a full batch is inserted,
 * reported and checkpointed before the next byte is read, so memory stays
 * flat and a stop at any moment loses at most one batch of work, which the
 * unique index on (import.queue_id, import.line) makes safe to redo.
 */
#include "wrk_import.h"
#include "wrk_fence.h"
#include "dip_bson.h"
#include "dip_log.h"
#include "dip_msg.h"
#include "dip_storage_io.h"
#include "wrk_csv.h"
#include "wrk_db.h"
#include "wrk_events.h"
#include "wrk_jwt.h"
#include "wrk_map.h"
#include "wrk_stages.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define HEARTBEAT_S 5

/* Why the byte stream was stopped early. */
typedef enum {
    STOP_NONE = 0,
    STOP_CONTROL,    /* pause, cancel or stop requested */
    STOP_FAILED,     /* import-level error: err holds the sentence */
    STOP_TEMPFAIL,   /* database away after retries */
    STOP_SUPERVISOR, /* the supervisor stopped listening */
    STOP_FENCED      /* the claim is gone: stop without another write */
} stop_t;

typedef struct import {
    const dip_config_t *cfg;
    const char *queue_id;
    bson_oid_t qid, account, user, pipeline;
    wrk_events_t *ev;
    wrk_db_t *db;
    wrk_map_t *map;
    wrk_csv_t *csv;
    wrk_stages_t *stages;
    wrk_jwt_t *jwt;
    wrk_fence_t fence;
    bson_t tags;
    int bound;
    /* the batch being filled */
    bson_t **docs;
    int64_t *doc_lines;
    int *outcome;
    char **messages;
    size_t n;
    /* progress, cumulative over the whole import */
    int64_t last_line, last_offset, bytes_total;
    int64_t added, errors, rows_at_start;
    int64_t converted_at_start;
    time_t last_send;
    /* how it ends */
    stop_t stop;
    int action; /* dip_control_action_t when STOP_CONTROL */
    char err[1024];
} import_t;

static void fail_with(import_t *im, const char *msg)
{
    if (im->stop == STOP_NONE || im->stop == STOP_CONTROL) {
        im->stop = STOP_FAILED;
        snprintf(im->err, sizeof(im->err), "%s", msg);
    }
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Before a write, when a check is due: is the claim still ours? -1 when
 * it is gone (the import stops, writing nothing more). A failed read says
 * nothing; the next write checks again. */
static int fenced(import_t *im)
{
    bson_t doc;
    char err[512];
    int64_t now = mono_ms();
    int rc;
    if (!wrk_fence_due(&im->fence, now))
        return 0;
    rc = wrk_db_fence_read(im->db, &doc, err, sizeof(err));
    if (wrk_fence_judge(&im->fence, rc == WRK_DB_OK ? &doc : NULL,
                        rc == WRK_DB_OK || rc == WRK_DB_ENOTFOUND,
                        now) == WRK_FENCE_GONE) {
        dip_log(DIP_LOG_WARNING, im->queue_id,
                "the claim of owner '%s' epoch %lld is gone (another "
                "supervisor took the import over): stopping at line %lld "
                "without another write",
                im->fence.owner, (long long)im->fence.epoch,
                (long long)im->last_line);
        im->stop = STOP_FENCED;
        rc = -1;
    } else {
        rc = 0;
    }
    bson_destroy(&doc);
    return rc;
}

static int emit(import_t *im, char *frame)
{
    if (wrk_events_send_take(im->ev, frame) < 0) {
        im->stop = STOP_SUPERVISOR;
        return -1;
    }
    im->last_send = time(NULL);
    return 0;
}

static int line_error(import_t *im, int64_t line, const char *field,
                      const char *message, const char *const *cells,
                      const size_t *lens, size_t ncells)
{
    im->errors++;
    return emit(im, dip_msg_line_error(im->queue_id, line, field, message,
                                       cells, lens, ncells));
}

/* The checkpoint a resume needs: where the next row starts, what line it
 * is, how to read it, and the totals so far. */
static json_t *checkpoint(import_t *im)
{
    size_t nh = 0;
    const char *const *h = wrk_csv_header(im->csv, &nh);
    char delim[2] = {wrk_csv_delimiter(im->csv), '\0'};
    json_t *cp = json_pack(
        "{s:I, s:I, s:s, s:I, s:I, s:I}", "line", (json_int_t)im->last_line,
        "offset", (json_int_t)im->last_offset, "delimiter", delim, "added",
        (json_int_t)im->added, "errors", (json_int_t)im->errors, "converted",
        (json_int_t)(im->converted_at_start +
                     (json_int_t)wrk_csv_converted_cells(im->csv)));
    json_t *arr = json_array();
    if (cp == NULL || arr == NULL) {
        json_decref(cp);
        json_decref(arr);
        return NULL;
    }
    for (size_t i = 0; h && i < nh; i++)
        json_array_append_new(arr, json_string(h[i]));
    json_object_set_new(cp, "header", arr);
    return cp;
}

static void clear_batch(import_t *im)
{
    for (size_t i = 0; i < im->n; i++) {
        bson_destroy(im->docs[i]);
        im->docs[i] = NULL;
        free(im->messages[i]);
        im->messages[i] = NULL;
    }
    im->n = 0;
}

/* Inserts the batch, reports refused deals, then sends the batch message
 * with the checkpoint. Returns 0, or -1 when the import must stop. */
static int flush(import_t *im)
{
    char err[512];
    json_t *cp;
    int rc;
    if (fenced(im) < 0) {
        clear_batch(im);
        return -1;
    }
    rc = wrk_db_insert_deals(im->db, (const bson_t *const *)im->docs, im->n,
                             im->outcome, im->messages, err, sizeof(err));
    if (rc == WRK_DB_ETRANSIENT) {
        im->stop = STOP_TEMPFAIL;
        snprintf(im->err, sizeof(im->err), "%s", err);
        clear_batch(im);
        return -1;
    }
    if (rc != WRK_DB_OK) {
        fail_with(im, err);
        clear_batch(im);
        return -1;
    }
    for (size_t i = 0; i < im->n; i++) {
        if (im->outcome[i] == WRK_DB_REFUSED) {
            line_error(im, im->doc_lines[i], "",
                       im->messages[i] ? im->messages[i]
                                       : "the database refused this deal",
                       NULL, NULL, 0);
        } else {
            im->added++;
        }
    }
    clear_batch(im);
    cp = checkpoint(im);
    if (emit(im,
             dip_msg_batch(im->queue_id, im->last_line, im->added, im->errors,
                           im->last_offset, im->bytes_total, cp)) < 0) {
        json_decref(cp);
        return -1;
    }
    json_decref(cp);
    /* Keep the import's token fresh however long the import runs. */
    if (wrk_jwt_token(im->jwt, time(NULL)) == NULL)
        dip_log(DIP_LOG_WARNING, im->queue_id, "cannot re-sign the token");
    {
        int action = wrk_events_poll_control(im->ev);
        if (action) {
            im->stop = STOP_CONTROL;
            im->action = action;
            return -1;
        }
    }
    return im->stop == STOP_NONE ? 0 : -1;
}

static int bind_header(import_t *im)
{
    size_t n = 0;
    const char *const *h = wrk_csv_header(im->csv, &n);
    char err[1024];
    if (im->bound)
        return 0;
    if (h == NULL)
        return 0;
    if (wrk_map_bind(im->map, h, n, err, sizeof(err)) < 0) {
        fail_with(im, err);
        return -1;
    }
    im->bound = 1;
    return 0;
}

static void append_deal_context(import_t *im, bson_t *deal,
                                const bson_oid_t *stage, int64_t line)
{
    int64_t now = dip_bson_now_ms();
    bson_t sub;
    BSON_APPEND_OID(deal, "stage_id", stage);
    BSON_APPEND_OID(deal, "pipeline_id", &im->pipeline);
    BSON_APPEND_OID(deal, "account_id", &im->account);
    BSON_APPEND_OID(deal, "owner", &im->user);
    BSON_APPEND_OID(deal, "created_by", &im->user);
    BSON_APPEND_ARRAY(deal, "tags", &im->tags);
    BSON_APPEND_UTF8(deal, "source", "csv");
    BSON_APPEND_DATE_TIME(deal, "created_at", now);
    BSON_APPEND_DATE_TIME(deal, "updated_at", now);
    BSON_APPEND_DOCUMENT_BEGIN(deal, "import", &sub);
    BSON_APPEND_OID(&sub, "queue_id", &im->qid);
    BSON_APPEND_INT64(&sub, "line", line);
    bson_append_document_end(deal, &sub);
}

static int on_row(void *arg, const wrk_csv_row_t *row)
{
    import_t *im = arg;
    char stage[1024];
    wrk_map_error_t merr;
    bson_t *deal;
    bson_oid_t stage_id;
    char err[512];
    int rc;

    if (!im->bound && bind_header(im) < 0)
        return 1;
    /* A stage may be created below: not for a claim that is gone. */
    if (fenced(im) < 0) {
        clear_batch(im);
        return 1;
    }
    im->last_line = (int64_t)row->line;
    im->last_offset = (int64_t)row->end_offset;

    if (row->error != WRK_CSV_ROW_OK) {
        char msg[512], field[64] = "";
        size_t nh = 0;
        const char *const *h = wrk_csv_header(im->csv, &nh);
        /* A fault in one cell names that cell's column and the deal field
         * it feeds, as a field's own validation error does. */
        int in_cell = (row->error == WRK_CSV_ROW_CELL_TOO_BIG ||
                       row->error == WRK_CSV_ROW_NUL_BYTE ||
                       row->error == WRK_CSV_ROW_BAD_QUOTES) &&
                      h && row->error_cell < nh;
        if (in_cell) {
            snprintf(msg, sizeof(msg), "%s (column '%s')",
                     wrk_csv_row_error_message(row->error), h[row->error_cell]);
            wrk_map_column_field(im->map, row->error_cell, field,
                                 sizeof(field));
        } else {
            snprintf(msg, sizeof(msg), "%s",
                     wrk_csv_row_error_message(row->error));
        }
        if (line_error(im, (int64_t)row->line, field, msg, row->cells,
                       row->lens, row->ncells) < 0)
            return 1;
    } else {
        deal = bson_new();
        if (wrk_map_row(im->map, row->cells, row->lens, row->ncells, deal,
                        stage, sizeof(stage), &merr) < 0) {
            bson_destroy(deal);
            if (line_error(im, (int64_t)row->line, merr.field, merr.message,
                           row->cells, row->lens, row->ncells) < 0)
                return 1;
        } else {
            rc = wrk_stages_resolve(im->stages, stage, &stage_id, err,
                                    sizeof(err));
            if (rc != WRK_DB_OK) {
                bson_destroy(deal);
                if (rc == WRK_DB_ETRANSIENT) {
                    im->stop = STOP_TEMPFAIL;
                    snprintf(im->err, sizeof(im->err), "%s", err);
                } else {
                    fail_with(im, err);
                }
                /* Rows of this batch before this one are not lost: the
                 * checkpoint has not moved past them. */
                clear_batch(im);
                return 1;
            }
            append_deal_context(im, deal, &stage_id, (int64_t)row->line);
            im->docs[im->n] = deal;
            im->doc_lines[im->n] = (int64_t)row->line;
            im->n++;
        }
    }
    /* Error rows count toward the batch too, so a file of bad rows still
     * checkpoints and reports progress. */
    if (im->n >= (size_t)im->cfg->batch_rows ||
        (int64_t)row->line % im->cfg->batch_rows == 0) {
        if (flush(im) < 0)
            return 1;
    } else if (time(NULL) - im->last_send >= HEARTBEAT_S) {
        if (emit(im, dip_msg_heartbeat(im->queue_id)) < 0)
            return 1;
    }
    return 0;
}

static void on_size(void *arg, int64_t total)
{
    ((import_t *)arg)->bytes_total = total;
}

static int on_data(void *arg, const char *buf, size_t len)
{
    import_t *im = arg;
    int rc = wrk_csv_feed(im->csv, buf, len);
    if (rc == WRK_CSV_EHEADER)
        fail_with(im, wrk_csv_error(im->csv));
    else if (rc == WRK_CSV_ENOMEM) {
        /* The memory limit: the same exit as any allocation failure, so
         * the supervisor reports it as such. The checkpoint is intact. */
        dip_log(DIP_LOG_ERR, im->queue_id,
                "out of memory at line %lld: the worker reached its memory "
                "limit",
                (long long)im->last_line);
        _exit(DIP_EXIT_NOMEM);
    }
    return rc == WRK_CSV_OK ? 0 : 1;
}

/* Reads the ids, tags and key from the queue document. The key's length
 * is the stored one, so a NUL inside it is seen by the key check instead of
 * cutting the key short. Returns 0 or -1 with im->err set. */
static int read_queue_doc(import_t *im, const bson_t *q, const char **key,
                          size_t *key_len)
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
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        int rc = dip_bson_get_oid(q, ids[i].path, &tmp);
        if (rc == -2 || (rc == -1 && ids[i].required)) {
            snprintf(im->err, sizeof(im->err),
                     "the queue document's '%s' is %s", ids[i].path,
                     rc == -1 ? "missing"
                              : "not an ObjectId or a 24-hex string");
            return -1;
        }
    }
    dip_bson_get_oid(q, "user_id", &im->user);
    dip_bson_get_oid(q, "account_id", &im->account);
    dip_bson_get_oid(q, "additional_data.pipeline_id", &im->pipeline);

    *key = NULL;
    *key_len = 0;
    if (bson_iter_init(&it, q) &&
        bson_iter_find_descendant(&it, "csv.0.key", &it) &&
        BSON_ITER_HOLDS_UTF8(&it)) {
        uint32_t len = 0;
        *key = bson_iter_utf8(&it, &len);
        *key_len = len;
    }
    if (*key == NULL || *key_len == 0) {
        snprintf(im->err, sizeof(im->err),
                 "the queue document has no csv[0].key: there is no file to "
                 "import");
        return -1;
    }
    if (!bson_iter_init(&it, q) || !bson_iter_find(&it, "mappings") ||
        !BSON_ITER_HOLDS_DOCUMENT(&it)) {
        snprintf(im->err, sizeof(im->err),
                 "the queue document has no 'mappings' object");
        return -1;
    }
    /* tags: an array of strings, a single string, or nothing. */
    if (bson_iter_init(&it, q) &&
        bson_iter_find_descendant(&it, "additional_data.tags", &it)) {
        if (BSON_ITER_HOLDS_ARRAY(&it)) {
            bson_iter_t t;
            int i = 0;
            bson_iter_recurse(&it, &t);
            while (bson_iter_next(&t)) {
                char k[24];
                if (!BSON_ITER_HOLDS_UTF8(&t))
                    continue;
                snprintf(k, sizeof(k), "%d", i++);
                BSON_APPEND_UTF8(&im->tags, k, bson_iter_utf8(&t, NULL));
            }
        } else if (BSON_ITER_HOLDS_UTF8(&it)) {
            BSON_APPEND_UTF8(&im->tags, "0", bson_iter_utf8(&it, NULL));
        }
    }
    return 0;
}

/* Sets up the reader from the queue document's checkpoint, if it has a
 * usable one. Returns the byte offset to read from. */
static uint64_t open_reader(import_t *im, const bson_t *q)
{
    bson_iter_t it, h;
    char **names = NULL;
    size_t n = 0;
    int64_t line = dip_bson_get_int(q, "checkpoint.line", -1);
    int64_t offset = dip_bson_get_int(q, "checkpoint.offset", -1);
    const char *delim = dip_bson_get_str(q, "checkpoint.delimiter");
    uint64_t start = 0;

    if (line > 0 && offset > 0 && delim && strlen(delim) == 1 &&
        bson_iter_init(&it, q) &&
        bson_iter_find_descendant(&it, "checkpoint.header", &it) &&
        BSON_ITER_HOLDS_ARRAY(&it) && bson_iter_recurse(&it, &h)) {
        int ok = 1;
        names = calloc(1024 * 64, sizeof(char *));
        while (names && bson_iter_next(&h)) {
            if (!BSON_ITER_HOLDS_UTF8(&h) || n >= 1024 * 64) {
                ok = 0;
                break;
            }
            names[n++] = (char *)bson_iter_utf8(&h, NULL);
        }
        if (names && ok && n > 0) {
            im->csv = wrk_csv_new_resume(on_row, im, delim[0],
                                         (const char *const *)names, n,
                                         (uint64_t)line + 1, (uint64_t)offset);
            if (im->csv) {
                im->last_line = line;
                im->last_offset = offset;
                im->added = dip_bson_get_int(q, "checkpoint.added", 0);
                im->errors = dip_bson_get_int(q, "checkpoint.errors", 0);
                im->converted_at_start =
                    dip_bson_get_int(q, "checkpoint.converted", 0);
                start = (uint64_t)offset;
                dip_log(DIP_LOG_INFO, im->queue_id,
                        "resuming at line %lld (byte %lld)",
                        (long long)line + 1, (long long)offset);
            }
        }
        free(names);
        if (im->csv == NULL)
            dip_log(DIP_LOG_WARNING, im->queue_id,
                    "the checkpoint is unusable, starting from line 1 (lines "
                    "already imported are recognised and not added twice)");
    }
    if (im->csv == NULL)
        im->csv = wrk_csv_new(on_row, im);
    return start;
}

static int finish(import_t *im, dip_done_status_t status, json_t *notes)
{
    int rc = emit(
        im, dip_msg_done(im->queue_id, status, im->last_line,
                         status == DIP_DONE_COMPLETED ? NULL : im->err, notes));
    json_decref(notes);
    if (status == DIP_DONE_RETRY)
        return DIP_EXIT_TEMPFAIL;
    return rc < 0 ? DIP_EXIT_TEMPFAIL : DIP_EXIT_OK;
}

static json_t *notes_for(import_t *im, int empty, int no_rows)
{
    json_t *notes = json_array();
    uint64_t conv;
    char buf[256];
    if (notes == NULL)
        return NULL;
    conv = (uint64_t)im->converted_at_start +
           (im->csv ? wrk_csv_converted_cells(im->csv) : 0);
    if (empty)
        json_array_append_new(notes,
                              json_string("the file is empty: nothing to "
                                          "import"));
    else if (no_rows)
        json_array_append_new(notes,
                              json_string("the file has a header but no rows"));
    if (conv > 0) {
        snprintf(buf, sizeof(buf),
                 "%llu cells were not UTF-8 and were read as Windows-1252",
                 (unsigned long long)conv);
        json_array_append_new(notes, json_string(buf));
    }
    if (im->stages && wrk_stages_created(im->stages) > 0) {
        snprintf(buf, sizeof(buf), "%zu new pipeline stages were created",
                 wrk_stages_created(im->stages));
        json_array_append_new(notes, json_string(buf));
    }
    return notes;
}

static int stream(import_t *im, const bson_t *q, const char *key)
{
    dip_storage_t *st = NULL;
    dip_storage_sink_t sink = {im, on_size, on_data};
    char err[1024];
    uint64_t start;
    size_t nh;
    int rc, exit_code;

    start = open_reader(im, q);
    if (im->csv == NULL || im->docs == NULL) {
        snprintf(im->err, sizeof(im->err), "out of memory");
        return finish(im, DIP_DONE_FAILED, NULL);
    }
    if (wrk_csv_header(im->csv, &nh) && bind_header(im) < 0)
        return finish(im, DIP_DONE_FAILED, NULL);
    if (emit(im, dip_msg_hello(im->queue_id, (int64_t)getpid(),
                               im->last_line + 1)) < 0)
        return DIP_EXIT_TEMPFAIL;
    im->rows_at_start = im->last_line;

    st = dip_storage_new(im->cfg, err, sizeof(err));
    if (st == NULL) {
        fail_with(im, err);
        return finish(im, DIP_DONE_FAILED, NULL);
    }
    rc = dip_storage_get(st, key, start, &sink, err, sizeof(err));
    dip_storage_destroy(&st);

    if (rc == DIP_STORAGE_OK && im->stop == STOP_NONE) {
        int frc = wrk_csv_finish(im->csv);
        if (frc == WRK_CSV_EHEADER)
            fail_with(im, wrk_csv_error(im->csv));
        else if (frc != WRK_CSV_OK && im->stop == STOP_NONE)
            fail_with(im, "the file could not be read to its end");
        if (im->stop == STOP_NONE && !im->bound)
            bind_header(im);
        /* The last deals, or a final checkpoint for trailing error rows. */
        if (im->stop == STOP_NONE &&
            (im->n > 0 || im->last_line > im->rows_at_start))
            flush(im);
    } else if (rc != DIP_STORAGE_OK && rc != DIP_STORAGE_EABORT) {
        if (rc == DIP_STORAGE_ETRANSIENT) {
            im->stop = STOP_TEMPFAIL;
            snprintf(im->err, sizeof(im->err), "%s", err);
        } else {
            fail_with(im, err);
        }
    }

    switch (im->stop) {
    case STOP_NONE: {
        int empty = wrk_csv_header(im->csv, &nh) == NULL;
        exit_code = finish(im, DIP_DONE_COMPLETED,
                           notes_for(im, empty, !empty && im->last_line == 0));
        break;
    }
    case STOP_CONTROL:
        /* The batch in hand was flushed before the stop took effect. */
        exit_code =
            finish(im,
                   im->action == DIP_CONTROL_PAUSE    ? DIP_DONE_PAUSED
                   : im->action == DIP_CONTROL_CANCEL ? DIP_DONE_CANCELLED
                                                      : DIP_DONE_STOPPED,
                   notes_for(im, 0, 0));
        break;
    case STOP_FAILED:
        exit_code = finish(im, DIP_DONE_FAILED, notes_for(im, 0, 0));
        break;
    case STOP_FENCED:
        exit_code = DIP_EXIT_FENCED;
        break;
    case STOP_TEMPFAIL:
        dip_log(DIP_LOG_WARNING, im->queue_id,
                "stopping at line %lld to resume later: %s",
                (long long)im->last_line, im->err);
        exit_code = finish(im, DIP_DONE_RETRY, NULL);
        break;
    default:
        exit_code = DIP_EXIT_TEMPFAIL;
        break;
    }
    return exit_code;
}

int wrk_import_run(const dip_config_t *cfg, const char *queue_id,
                   const char *events_endpoint, const char *owner,
                   int64_t epoch)
{
    import_t im;
    bson_t q = BSON_INITIALIZER;
    const char *key = NULL;
    size_t key_len = 0;
    char err[1024];
    int rc, exit_code = DIP_EXIT_TEMPFAIL;
    size_t cap = (size_t)cfg->batch_rows;

    memset(&im, 0, sizeof(im));
    bson_init(&im.tags);
    im.cfg = cfg;
    im.queue_id = queue_id;
    im.bytes_total = -1;
    bson_oid_init_from_string(&im.qid, queue_id);
    wrk_fence_init(&im.fence, owner, epoch, cfg->lease_s, mono_ms());
    im.docs = calloc(cap, sizeof(bson_t *));
    im.doc_lines = calloc(cap, sizeof(int64_t));
    im.outcome = calloc(cap, sizeof(int));
    im.messages = calloc(cap, sizeof(char *));

    im.ev = wrk_events_new(events_endpoint, queue_id, err, sizeof(err));
    if (im.ev == NULL) {
        dip_log(DIP_LOG_ERR, queue_id, "%s", err);
        goto cleanup;
    }
    if (owner)
        wrk_events_set_send_timeout(im.ev, (int)(cfg->lease_s * 1000));
    im.db = wrk_db_new(cfg, queue_id, err, sizeof(err));
    if (im.db == NULL) {
        fail_with(&im, err);
        exit_code = finish(&im, DIP_DONE_FAILED, NULL);
        goto cleanup;
    }
    rc = wrk_db_load_queue(im.db, &q, err, sizeof(err));
    if (rc != WRK_DB_OK) {
        snprintf(im.err, sizeof(im.err), "%s", err);
        exit_code = finish(
            &im, rc == WRK_DB_ETRANSIENT ? DIP_DONE_RETRY : DIP_DONE_FAILED,
            NULL);
        goto cleanup;
    }
    /* The claim first: a worker started for a claim that is already gone
     * (its supervisor was frozen, say) does nothing at all. */
    if (wrk_fence_judge(&im.fence, &q, 1, mono_ms()) == WRK_FENCE_GONE) {
        dip_log(DIP_LOG_WARNING, queue_id,
                "the claim of owner '%s' epoch %lld is gone before the "
                "import started: stopping without a write",
                im.fence.owner, (long long)im.fence.epoch);
        exit_code = DIP_EXIT_FENCED;
        goto cleanup;
    }
    /* Everything about the document is checked before anything is
     * written. */
    if (read_queue_doc(&im, &q, &key, &key_len) < 0) {
        im.stop = STOP_FAILED;
        exit_code = finish(&im, DIP_DONE_FAILED, NULL);
        goto cleanup;
    }
    if (dip_storage_check_key(key, key_len, err, sizeof(err)) < 0) {
        fail_with(&im, err);
        exit_code = finish(&im, DIP_DONE_FAILED, NULL);
        goto cleanup;
    }
    {
        bson_iter_t it;
        bson_t mappings;
        const uint8_t *data;
        uint32_t len;
        bson_iter_init_find(&it, &q, "mappings");
        bson_iter_document(&it, &len, &data);
        bson_init_static(&mappings, data, len);
        im.map = wrk_map_new(&mappings, err, sizeof(err));
        if (im.map == NULL) {
            fail_with(&im, err);
            exit_code = finish(&im, DIP_DONE_FAILED, NULL);
            goto cleanup;
        }
    }
    rc = wrk_db_check_pipeline(im.db, &im.pipeline, &im.account, err,
                               sizeof(err));
    if (rc == WRK_DB_OK)
        rc = wrk_db_ensure_indexes(im.db, err, sizeof(err));
    if (rc != WRK_DB_OK) {
        snprintf(im.err, sizeof(im.err), "%s", err);
        exit_code = finish(
            &im, rc == WRK_DB_ETRANSIENT ? DIP_DONE_RETRY : DIP_DONE_FAILED,
            NULL);
        goto cleanup;
    }
    {
        char uid[25], acc[25], par[25] = "", cli[25] = "";
        bson_oid_t tmp;
        bson_oid_to_string(&im.user, uid);
        bson_oid_to_string(&im.account, acc);
        if (dip_bson_get_oid(&q, "parent_account", &tmp) == 0)
            bson_oid_to_string(&tmp, par);
        if (dip_bson_get_oid(&q, "client_id", &tmp) == 0)
            bson_oid_to_string(&tmp, cli);
        im.jwt = wrk_jwt_new(cfg->app_secret, uid, acc, *par ? par : NULL,
                             *cli ? cli : NULL);
        if (im.jwt == NULL || wrk_jwt_token(im.jwt, time(NULL)) == NULL) {
            fail_with(&im, "cannot sign the import's access token");
            exit_code = finish(&im, DIP_DONE_FAILED, NULL);
            goto cleanup;
        }
    }
    im.stages = wrk_stages_new(im.db, &im.account, &im.pipeline, &im.user);
    if (im.stages == NULL) {
        fail_with(&im, "out of memory");
        exit_code = finish(&im, DIP_DONE_FAILED, NULL);
        goto cleanup;
    }
    exit_code = stream(&im, &q, key);
    dip_log(DIP_LOG_INFO, queue_id,
            "worker finished at line %lld: %lld added, %lld errors, %ld "
            "database round trips",
            (long long)im.last_line, (long long)im.added, (long long)im.errors,
            wrk_db_round_trips(im.db));
cleanup:
    clear_batch(&im);
    free(im.docs);
    free(im.doc_lines);
    free(im.outcome);
    free(im.messages);
    bson_destroy(&im.tags);
    bson_destroy(&q);
    wrk_stages_destroy(&im.stages);
    wrk_jwt_destroy(&im.jwt);
    wrk_csv_destroy(&im.csv);
    wrk_map_destroy(&im.map);
    wrk_db_destroy(&im.db);
    wrk_events_destroy(&im.ev);
    return exit_code;
}
