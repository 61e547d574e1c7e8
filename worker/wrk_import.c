/*
 * wrk_import: the worker's pipeline. Bytes flow from storage (libcurl's
 * write callback or a file read) straight into the CSV reader, whose row
 * callback maps, validates and batches each row; a batch full in rows
 * (DEALIMPORT_BATCH_ROWS) or in bytes (DEALIMPORT_BATCH_BYTES) is inserted,
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
#include "dip_text.h"
#include "wrk_csv.h"
#include "wrk_db.h"
#include "wrk_events.h"
#include "wrk_map.h"
#include "wrk_match.h"
#include "wrk_lines.h"
#include "wrk_upsert.h"
#include "wrk_queue.h"
#include "wrk_stages.h"
#include "wrk_recall.h"
#include "wrk_survey.h"

#include "dip_text.h"
#include "dip_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define POOL_DOC_MAX 1024 /* bytes of a deal whose buffer is reused */

/* Why an import fails when its file is not the one it started on. */
#define FILE_CHANGED                                                           \
    "the file changed since the import started: the rows imported so far "     \
    "are kept, the rest is not read"

/* The identity of the file being read, as storage reported it. */
typedef wrk_survey_file_t file_id_t;

/* The row of each deal in the batch, kept until its insert returns so a
 * refused deal's line error carries it too: cells back to back in one
 * arena, at most a line error's worth per row. */
typedef struct kept_row {
    size_t off, ncells;
    int truncated;
} kept_row_t;

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
    wrk_fence_t fence;
    bson_t tags;
    /* the fields after the mapped ones, the same for every deal but four
     * values, which are overwritten in place for each row */
    bson_t tail;
    bson_iter_t tail_stage, tail_created, tail_updated, tail_line;
    int bound;
    /* the batch being filled; docs[n..cap) are empty documents kept for
     * the next rows, so a row does not allocate */
    bson_t **docs;
    int64_t *doc_lines;
    int *outcome;
    char **messages;
    kept_row_t *kept;
    char *arena;
    size_t arena_len, arena_cap;
    size_t n;
    size_t bytes;     /* of the deals in the batch */
    size_t bytes_max; /* a batch is inserted once it holds this much */
    /* progress, cumulative over the whole import */
    int64_t last_line, last_offset, bytes_total;
    int64_t cp_line, cp_offset; /* of the last checkpoint reported */
    int64_t added, errors, rows_at_start;
    int64_t errors_not_stored; /* line errors past the per-import cap */
    int64_t converted_at_start;
    /* a dry run (`dry_run` on the queue document): everything an import
     * does but write deals and stages; the deals it would add */
    int dry;
    int64_t would_add;
    size_t csv_ignored; /* entries of the document's `csv` after the first */
    /* the file: as the checkpoint recorded it, and as storage reports it */
    file_id_t file_then, file_now;
    /* how numbers and dates are read: the setting, and the decisions */
    wrk_format_t format;
    wrk_format_decisions_t fmt;
    int started; /* the start message is out */
    int resumed; /* the header came from the queue document */
    /* update and upsert (wrk_upsert), NULL in create mode without a match
     * field; status_given[i]: the batch's row i had a status cell */
    wrk_match_t match;
    wrk_upsert_t *up;
    int *status_given;
    int64_t updated, unchanged; /* or would be, in a dry run */
    /* a success file asked for (and not a dry run): each batch's lines
     * recorded (wrk_lines) before its checkpoint; the batch's actions and
     * deal ids */
    int lines_wanted;
    wrk_lines_action_t *actions;
    bson_oid_t *ids;
    /* how it ends */
    stop_t stop;
    int action; /* dip_control_action_t when STOP_CONTROL */
    char err[1024];
} import_t;

static void fail_with(import_t *im, const char *msg)
{
    if (im->stop == STOP_NONE || im->stop == STOP_CONTROL) {
        im->stop = STOP_FAILED;
        dip_text_format(im->err, sizeof(im->err), NULL, "%s", msg);
    }
}

/* Before a write, when a check is due: is the claim still ours? -1 when
 * it is gone (the import stops, writing nothing more). A failed read says
 * nothing; the next write checks again. */
static int fenced(import_t *im)
{
    bson_t doc;
    char err[512];
    int64_t now = dip_time_mono_ms();
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

/* Sends a frame. A frame that cannot be built is a bug to report, never a
 * reason to stop; one over the frame limit is an import error; a
 * supervisor that stopped reading stops the import without another
 * write. */
static int emit(import_t *im, bson_t *frame, const char *what)
{
    int rc = wrk_events_send_take(im->ev, frame);
    switch (rc) {
    case WRK_EVENTS_OK:
        return 0;
    case WRK_EVENTS_ENOMEM:
        dip_log(DIP_LOG_ERR, im->queue_id,
                "bug: the '%s' message could not be built (out of memory); "
                "going on without it",
                what);
        return 0;
    case WRK_EVENTS_ETOOBIG: {
        char msg[256];
        dip_text_format(msg, sizeof(msg), NULL,
                        "the %s is too large to report: over the %u bytes a "
                        "message may hold",
                        what, DIP_MSG_MAX_FRAME);
        fail_with(im, msg);
        return -1;
    }
    default:
        im->stop = STOP_SUPERVISOR;
        return -1;
    }
}

/* The file's identity: {etag} or {size, mtime_ns}. */
static void fill_file_id(bson_t *doc, const file_id_t *f)
{
    if (f->etag[0]) {
        BSON_APPEND_UTF8(doc, "etag", f->etag);
    } else {
        BSON_APPEND_INT64(doc, "size", f->size);
        BSON_APPEND_INT64(doc, "mtime_ns", f->mtime_ns);
    }
}

/* Once per run, before any line's outcome: the header (unless a resume,
 * whose header is stored already) and the file's identity. */
static int start(import_t *im)
{
    size_t nh = 0;
    const char *const *h = wrk_csv_header(im->csv, &nh);
    bson_t file = BSON_INITIALIZER;
    int rc;
    if (im->started)
        return 0;
    im->started = 1;
    if (im->file_now.known)
        fill_file_id(&file, &im->file_now);
    rc = emit(
        im,
        dip_msg_start(im->rows_at_start + 1, im->resumed ? NULL : h, nh, &file),
        "header row");
    bson_destroy(&file);
    return rc;
}

/* Reports a line error with the row's own cells. Past the per-import cap
 * it is only counted. */
static int line_error(import_t *im, int64_t line, const char *field,
                      const char *message, const char *const *cells,
                      const size_t *lens, size_t ncells, int truncated)
{
    im->errors++;
    if (im->errors - im->errors_not_stored > im->cfg->max_line_errors) {
        im->errors_not_stored++;
        return 0;
    }
    if (start(im) < 0)
        return -1;
    return emit(im,
                dip_msg_line_error(line, field, message, cells, lens, ncells,
                                   (size_t)im->cfg->line_error_bytes,
                                   truncated),
                "line error");
}

/* A dry run's checkpoint also keeps what it would do: the deals, and the
 * names of the new stages, so that a resume counts neither twice. The
 * names are bounded by the new-stage cap; past DRY_NAMES_BYTES of them
 * (a cap raised far above its default) a resume may count a name again. */
#define DRY_NAMES_BYTES (256 * 1024)
static void append_dry(import_t *im, bson_t *cp)
{
    const char *const *names;
    size_t n = wrk_stages_new_names(im->stages, &names), bytes = 0, i;
    bson_t arr;
    BSON_APPEND_INT64(cp, "would_add", im->would_add);
    BSON_APPEND_ARRAY_BEGIN(cp, "dry_new_stages", &arr);
    for (i = 0; i < n && bytes < DRY_NAMES_BYTES; i++) {
        char kb[16];
        const char *k;
        size_t kl = bson_uint32_to_string((uint32_t)i, &k, kb, sizeof(kb));
        bson_append_utf8(&arr, k, (int)kl, names[i], -1);
        bytes += strlen(names[i]) + kl + 2;
    }
    bson_append_array_end(cp, &arr);
}

/* The CSV column of each kind of wrk_format, NULL when none is mapped. */
static void format_columns(const import_t *im,
                           const char *cols[WRK_FORMAT_KINDS])
{
    for (int k = 0; k < WRK_FORMAT_KINDS; k++)
        if (wrk_map_field_column(im->map, wrk_format_field(k), NULL, &cols[k]) <
            0)
            cols[k] = NULL;
}

/* The "auto" decisions, so that a resume reads the rest the same way. */
static void append_format(const import_t *im, bson_t *cp)
{
    const char *cols[WRK_FORMAT_KINDS];
    if (wrk_format_pending(&im->fmt) || im->map == NULL)
        return;
    format_columns(im, cols);
    wrk_format_append(&im->fmt, cols, cp);
}

/* The checkpoint a resume needs: where the next row starts, what line it
 * is, how to read it, which file it is, and the totals so far. */
static bson_t *checkpoint(import_t *im)
{
    char delim[2] = {wrk_csv_delimiter(im->csv), '\0'};
    bson_t *cp = bson_new();
    BSON_APPEND_INT64(cp, "line", im->last_line);
    BSON_APPEND_INT64(cp, "offset", im->last_offset);
    BSON_APPEND_UTF8(cp, "delimiter", delim);
    BSON_APPEND_INT64(cp, "added", im->added);
    BSON_APPEND_INT64(cp, "errors", im->errors);
    BSON_APPEND_INT64(cp, "errors_not_stored", im->errors_not_stored);
    BSON_APPEND_INT64(cp, "converted",
                      im->converted_at_start +
                          (int64_t)wrk_csv_converted_cells(im->csv));
    BSON_APPEND_INT64(cp, "stages_created",
                      (int64_t)wrk_stages_created(im->stages));
    if (im->dry)
        append_dry(im, cp);
    if (im->up) {
        BSON_APPEND_INT64(cp, "updated", im->updated);
        BSON_APPEND_INT64(cp, "unchanged", im->unchanged);
    }
    append_format(im, cp);
    if (im->file_now.known) {
        bson_t sub;
        BSON_APPEND_DOCUMENT_BEGIN(cp, "file", &sub);
        fill_file_id(&sub, &im->file_now);
        bson_append_document_end(cp, &sub);
    }
    return cp;
}

/* Keeps a copy of a deal's row (at most a line error's worth) until its
 * insert returns. */
static void keep_row(import_t *im, size_t i, const char *const *cells,
                     const size_t *lens, size_t ncells)
{
    size_t budget = (size_t)im->cfg->line_error_bytes, used = 0, n = 0;
    kept_row_t *k = &im->kept[i];
    k->off = im->arena_len;
    k->truncated = 0;
    for (; n < ncells; n++) {
        size_t need = sizeof(size_t) + lens[n];
        if (used + lens[n] > budget) {
            k->truncated = 1;
            break;
        }
        if (im->arena_len + need > im->arena_cap) {
            size_t cap = im->arena_cap ? im->arena_cap * 2 : 65536;
            char *a;
            while (cap < im->arena_len + need)
                cap *= 2;
            a = realloc(im->arena, cap);
            if (a == NULL) {
                k->truncated = 1;
                break;
            }
            im->arena = a;
            im->arena_cap = cap;
        }
        memcpy(im->arena + im->arena_len, &lens[n], sizeof(size_t));
        memcpy(im->arena + im->arena_len + sizeof(size_t), cells[n], lens[n]);
        im->arena_len += need;
        used += lens[n];
    }
    k->ncells = n;
}

/* The line error of a refused deal, with the row kept for it. */
static int refused(import_t *im, size_t i, const char *message)
{
    kept_row_t *k = &im->kept[i];
    const char **cells = calloc(k->ncells + 1, sizeof(char *));
    size_t *lens = calloc(k->ncells + 1, sizeof(size_t));
    size_t off = k->off, n = 0;
    int rc;
    /* Cells are kept with their lengths, not NUL-terminated: the encoder
     * reads lengths. */
    for (; cells && lens && n < k->ncells; n++) {
        memcpy(&lens[n], im->arena + off, sizeof(size_t));
        off += sizeof(size_t);
        cells[n] = im->arena + off;
        off += lens[n];
    }
    rc = line_error(im, im->doc_lines[i], "", message, cells, lens,
                    cells && lens ? n : 0, k->truncated || !(cells && lens));
    free(cells);
    free(lens);
    return rc;
}

/* Empties the batch. Small documents keep their buffers for the next
 * rows; a big one is freed, so that memory held between batches stays
 * bounded whatever rows passed. */
static void clear_batch(import_t *im)
{
    for (size_t i = 0; i < im->n; i++) {
        if (im->docs[i]->len > POOL_DOC_MAX) {
            bson_destroy(im->docs[i]);
            im->docs[i] = NULL;
        } else {
            bson_reinit(im->docs[i]);
        }
        free(im->messages[i]);
        im->messages[i] = NULL;
    }
    im->n = 0;
    im->bytes = 0;
    im->arena_len = 0;
}

/* Counts a written batch of update or upsert rows and reports its line
 * errors. */
static int upsert_outcomes(import_t *im)
{
    for (size_t i = 0; i < im->n; i++) {
        switch (im->outcome[i]) {
        case WRK_UPSERT_ADDED:
        case WRK_UPSERT_ALREADY:
            if (im->dry)
                im->would_add++;
            else
                im->added++;
            break;
        case WRK_UPSERT_UPDATED:
            im->updated++;
            break;
        case WRK_UPSERT_UNCHANGED:
            im->unchanged++;
            break;
        default:
            if (refused(im, i,
                        im->messages[i] ? im->messages[i]
                                        : "the database refused this deal") < 0)
                return -1;
        }
    }
    return 0;
}

/* The batch's lines for the success file (wrk_lines), from its outcomes:
 * the codes of wrk_upsert, or of wrk_db_insert_deals in create mode. */
static int record_lines(import_t *im, char *err, size_t errlen)
{
    bson_t file = BSON_INITIALIZER;
    int rc;
    for (size_t i = 0; i < im->n; i++) {
        wrk_lines_action_t a = WRK_LINES_NONE;
        if (im->up) {
            switch (im->outcome[i]) {
            case WRK_UPSERT_ADDED:
            case WRK_UPSERT_ALREADY:
                a = WRK_LINES_CREATED;
                break;
            case WRK_UPSERT_UPDATED:
                a = WRK_LINES_UPDATED;
                break;
            case WRK_UPSERT_UNCHANGED:
                a = WRK_LINES_UNCHANGED;
                break;
            default:
                break;
            }
        } else if (im->outcome[i] != WRK_DB_REFUSED) {
            a = WRK_LINES_CREATED;
            /* an insert that met its line's earlier deal: not this id */
            if (im->outcome[i] == WRK_DB_ALREADY ||
                dip_bson_get_oid(im->docs[i], "_id", &im->ids[i]) != 0)
                memset(&im->ids[i], 0, sizeof(im->ids[i]));
        }
        im->actions[i] = a;
    }
    if (im->file_now.known)
        fill_file_id(&file, &im->file_now);
    rc = wrk_lines_record(im->db, &im->qid, &im->account,
                          im->file_now.known ? &file : NULL, im->n,
                          im->doc_lines, im->actions, im->ids, err, errlen);
    bson_destroy(&file);
    return rc;
}

/* Inserts the batch, reports refused deals, then sends the batch message
 * with the checkpoint. Returns 0, or -1 when the import must stop. */
static int flush(import_t *im)
{
    char err[512];
    bson_t *cp;
    int rc;
    /* A supervisor that stopped reading means the claim may be another's
     * by now, and a claim found gone is: no more writes. */
    if (wrk_events_gone(im->ev))
        im->stop = STOP_SUPERVISOR;
    if (im->stop == STOP_SUPERVISOR || fenced(im) < 0) {
        clear_batch(im);
        return -1;
    }
    if (im->up) {
        rc = wrk_upsert_batch(im->up, im->docs, im->doc_lines, im->status_given,
                              im->n, im->outcome, im->messages,
                              im->lines_wanted ? im->ids : NULL, err,
                              sizeof(err));
        /* before the checkpoint: a batch whose record failed is done
         * again, and finds its own writes */
        if (rc == WRK_DB_OK && im->lines_wanted)
            rc = record_lines(im, err, sizeof(err));
        if (rc == WRK_DB_OK && upsert_outcomes(im) < 0) {
            clear_batch(im);
            return -1;
        }
        goto written;
    }
    if (im->dry) {
        /* Mapped, validated and resolved like the deals of an import;
         * only not written. */
        im->would_add += (int64_t)im->n;
        clear_batch(im);
        goto report;
    }
    rc = wrk_db_insert_deals(im->db, (const bson_t *const *)im->docs, im->n,
                             im->outcome, im->messages, err, sizeof(err));
    if (rc == WRK_DB_OK && im->lines_wanted)
        rc = record_lines(im, err, sizeof(err));
written:
    if (rc == WRK_DB_ETRANSIENT) {
        im->stop = STOP_TEMPFAIL;
        dip_text_format(im->err, sizeof(im->err), NULL, "%s", err);
        clear_batch(im);
        return -1;
    }
    if (rc != WRK_DB_OK) {
        fail_with(im, err);
        clear_batch(im);
        return -1;
    }
    for (size_t i = 0; !im->up && i < im->n; i++) {
        if (im->outcome[i] == WRK_DB_REFUSED) {
            if (refused(im, i,
                        im->messages[i]
                            ? im->messages[i]
                            : "the database refused this deal") < 0) {
                clear_batch(im);
                return -1;
            }
        } else {
            im->added++;
        }
    }
    clear_batch(im);
report:
    if (start(im) < 0)
        return -1;
    cp = checkpoint(im);
    rc = emit(im,
              dip_msg_batch(im->last_line, im->added, im->errors,
                            im->errors_not_stored, im->last_offset,
                            im->bytes_total, cp, wrk_db_round_trips(im->db)),
              "progress report");
    bson_destroy(cp);
    if (rc < 0)
        return -1;
    im->cp_line = im->last_line;
    im->cp_offset = im->last_offset;
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

/* The batch would outgrow its byte budget with the deal in hand (in
 * docs[n]): inserts the batch before it, checkpointed at the row before,
 * and keeps the deal as the first of the next batch. Returns 0, or -1 when
 * the import must stop (the deal is dropped; the checkpoint is before it). */
static int flush_before(import_t *im, int64_t prev_line, int64_t prev_offset)
{
    int64_t line = im->last_line, offset = im->last_offset;
    size_t held = im->n;
    bson_t *deal = im->docs[held];
    im->last_line = prev_line;
    im->last_offset = prev_offset;
    if (flush(im) < 0) {
        bson_reinit(deal);
        return -1;
    }
    im->docs[held] = im->docs[0];
    im->docs[0] = deal;
    im->last_line = line;
    im->last_offset = offset;
    return 0;
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

/* The fields that follow the mapped ones in every deal, built once; each
 * row overwrites its stage, times and line in place and appends the whole
 * block as one copy of bytes. -1 when it cannot be built. */
static int build_tail(import_t *im)
{
    bson_oid_t none;
    bson_t sub;
    bson_iter_t it;
    bson_oid_init_from_string(&none, "000000000000000000000000");
    bson_reinit(&im->tail);
    BSON_APPEND_OID(&im->tail, "stage_id", &none);
    BSON_APPEND_OID(&im->tail, "pipeline_id", &im->pipeline);
    BSON_APPEND_OID(&im->tail, "account_id", &im->account);
    BSON_APPEND_OID(&im->tail, "owner", &im->user);
    BSON_APPEND_OID(&im->tail, "created_by", &im->user);
    BSON_APPEND_ARRAY(&im->tail, "tags", &im->tags);
    BSON_APPEND_UTF8(&im->tail, "source", "csv");
    BSON_APPEND_DATE_TIME(&im->tail, "created_at", 0);
    BSON_APPEND_DATE_TIME(&im->tail, "updated_at", 0);
    BSON_APPEND_DOCUMENT_BEGIN(&im->tail, "import", &sub);
    BSON_APPEND_OID(&sub, "queue_id", &im->qid);
    BSON_APPEND_INT64(&sub, "line", 0);
    bson_append_document_end(&im->tail, &sub);
    /* The iterators point into the tail's buffer, which no longer grows. */
    if (!bson_iter_init_find(&im->tail_stage, &im->tail, "stage_id") ||
        !bson_iter_init_find(&im->tail_created, &im->tail, "created_at") ||
        !bson_iter_init_find(&im->tail_updated, &im->tail, "updated_at") ||
        !bson_iter_init(&it, &im->tail) ||
        !bson_iter_find_descendant(&it, "import.line", &im->tail_line))
        return -1;
    return 0;
}

static void append_deal_context(import_t *im, bson_t *deal,
                                const bson_oid_t *stage, int64_t line)
{
    int64_t now = dip_bson_now_ms();
    bson_iter_overwrite_oid(&im->tail_stage, stage);
    bson_iter_overwrite_date_time(&im->tail_created, now);
    bson_iter_overwrite_date_time(&im->tail_updated, now);
    bson_iter_overwrite_int64(&im->tail_line, line);
    bson_concat(deal, &im->tail);
}

/* 1 when the row's status cell holds more than blanks (an update then
 * sets it; an empty one keeps the deal's). */
static int status_given(const import_t *im, const wrk_csv_row_t *row)
{
    size_t idx = (size_t)-1;
    const char *c;
    if (wrk_map_field_column(im->map, "status", &idx, NULL) < 0 ||
        idx >= row->ncells || row->cells[idx] == NULL)
        return 0;
    c = row->cells[idx];
    return dip_text_trim(&c, row->lens ? row->lens[idx] : strlen(c)) > 0;
}

static int on_row(void *arg, const wrk_csv_row_t *row)
{
    import_t *im = arg;
    char stage[1024];
    wrk_map_error_t merr;
    bson_t *deal;
    bson_oid_t stage_id, id;
    char err[512];
    int rc;

    int64_t prev_line = im->last_line, prev_offset = im->last_offset;

    if (!im->bound && bind_header(im) < 0)
        return 1;
    /* Not another write (a stage, a batch) once the supervisor is gone or
     * the claim is another's. */
    if (wrk_events_gone(im->ev))
        im->stop = STOP_SUPERVISOR;
    if (im->stop == STOP_SUPERVISOR || fenced(im) < 0) {
        clear_batch(im);
        return 1;
    }
    im->last_line = (int64_t)row->line;
    im->last_offset = (int64_t)row->end_offset;

    if (start(im) < 0)
        return 1;
    if (row->error != WRK_CSV_ROW_OK) {
        char msg[512], field[64] = "";
        const char *const *cells = row->cells;
        const size_t *lens = row->lens;
        size_t nh = 0, used, ncells = row->nfile;
        const char *const *h = wrk_csv_header(im->csv, &nh);
        /* A fault in one cell names that cell's column and the deal field
         * it feeds, as a field's own validation error does. */
        int in_cell = (row->error == WRK_CSV_ROW_CELL_TOO_BIG ||
                       row->error == WRK_CSV_ROW_NUL_BYTE ||
                       row->error == WRK_CSV_ROW_BAD_QUOTES) &&
                      h && row->error_cell < nh && h[row->error_cell][0];
        used = wrk_csv_row_sentence(im->csv, row, msg, sizeof(msg));
        if (in_cell) {
            const char *name = h[row->error_cell];
            size_t len = strlen(name), cut = dip_text_cut(name, len, 60);
            dip_text_format(msg + used, sizeof(msg) - used, NULL,
                            " (column '%.*s%s')", (int)cut, name,
                            cut < len ? "..." : "");
            wrk_map_column_field(im->map, row->error_cell, field,
                                 sizeof(field));
        }
        /* An open quote makes the cells a guess: the file's own text is
         * what a person can correct. */
        if (row->raw != NULL) {
            cells = &row->raw;
            lens = &row->raw_len;
            ncells = 1;
        }
        if (line_error(im, (int64_t)row->line, field, msg, cells, lens, ncells,
                       0) < 0)
            return 1;
    } else {
        if (im->docs[im->n] == NULL && (im->docs[im->n] = bson_new()) == NULL) {
            fail_with(im, "out of memory");
            return 1;
        }
        deal = im->docs[im->n];
        /* _id first, made here: the driver then sends the deal as it is
         * instead of copying it to put one in front. */
        bson_oid_init(&id, NULL);
        BSON_APPEND_OID(deal, "_id", &id);
        if (wrk_map_row(im->map, row->cells, row->lens, row->ncells, deal,
                        stage, sizeof(stage), &merr) < 0) {
            bson_reinit(deal);
            if (line_error(im, (int64_t)row->line, merr.field, merr.message,
                           row->cells, row->lens, row->nfile, 0) < 0)
                return 1;
        } else {
            /* An empty stage cell of an update keeps the deal's stage: no
             * stage, the zero id (wrk_diff.h). */
            if (im->up && stage[0] == '\0') {
                bson_oid_init_from_string(&stage_id,
                                          "000000000000000000000000");
                rc = WRK_DB_OK;
            } else {
                rc = wrk_stages_resolve(im->stages, stage, &stage_id, err,
                                        sizeof(err));
            }
            if (rc == WRK_STAGES_ELIMIT) {
                /* Its key is filed as every refused line's is, and as a
                 * resume's re-read files it (wrk_recall.h): a repeat of it
                 * is a line error, resumed in between or not. */
                if (im->up &&
                    wrk_upsert_recall(im->up, deal, (int64_t)row->line) < 0) {
                    fail_with(im, "out of memory keeping the keys");
                    clear_batch(im);
                    return 1;
                }
                bson_reinit(deal);
                if (line_error(im, (int64_t)row->line, "stage", err, row->cells,
                               row->lens, row->nfile, 0) < 0)
                    return 1;
            } else if (rc != WRK_DB_OK) {
                bson_reinit(deal);
                if (rc == WRK_DB_ETRANSIENT) {
                    im->stop = STOP_TEMPFAIL;
                    dip_text_format(im->err, sizeof(im->err), NULL, "%s", err);
                } else {
                    fail_with(im, err);
                }
                /* Rows of this batch before this one are not lost: the
                 * checkpoint has not moved past them. */
                clear_batch(im);
                return 1;
            } else {
                append_deal_context(im, deal, &stage_id, (int64_t)row->line);
                if (im->n > 0 && im->bytes + deal->len > im->bytes_max &&
                    flush_before(im, prev_line, prev_offset) < 0)
                    return 1;
                keep_row(im, im->n, row->cells, row->lens, row->nfile);
                if (im->up)
                    im->status_given[im->n] = status_given(im, row);
                im->doc_lines[im->n] = (int64_t)row->line;
                im->n++;
                im->bytes += deal->len;
            }
        }
    }
    /* Error rows count toward the batch too, so a file of bad rows still
     * checkpoints and reports progress. */
    if (im->n >= (size_t)im->cfg->batch_rows || im->bytes >= im->bytes_max ||
        (int64_t)row->line % im->cfg->batch_rows == 0) {
        if (flush(im) < 0)
            return 1;
    }
    return 0;
}

static void on_size(void *arg, int64_t total)
{
    ((import_t *)arg)->bytes_total = total;
}

static void on_identity(void *arg, const char *etag, int64_t size,
                        int64_t mtime_ns)
{
    import_t *im = arg;
    wrk_survey_file_set(&im->file_now, etag, size, mtime_ns);
}

/* Asked by storage while it waits (a silent or trickling server, a retry's
 * backoff): a pause, cancel or stop, or a supervisor gone, ends the
 * download within about a second instead of after the next batch. */
static int on_wait(void *arg)
{
    import_t *im = arg;
    int action;
    if (im->stop != STOP_NONE)
        return 1;
    action = wrk_events_poll_control(im->ev);
    if (action) {
        im->stop = STOP_CONTROL;
        im->action = action;
    } else if (wrk_events_gone(im->ev)) {
        im->stop = STOP_SUPERVISOR;
    }
    return im->stop != STOP_NONE;
}

/* A stop that came between checkpoints: the rows after the last one are
 * dropped unwritten (their line errors, already sent, are stored once by
 * line), and the import reports where the checkpoint stands, which is
 * where a resume starts. */
static void back_to_checkpoint(import_t *im)
{
    clear_batch(im);
    im->last_line = im->cp_line;
    im->last_offset = im->cp_offset;
}

static int on_data(void *arg, const char *buf, size_t len)
{
    import_t *im = arg;
    int rc;
    if (im->file_then.known &&
        !wrk_survey_same_file(&im->file_then, &im->file_now)) {
        fail_with(im, FILE_CHANGED);
        return 1;
    }
    rc = wrk_csv_feed(im->csv, buf, len);
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

/* Reads the ids, tags, flags and key from the queue document. The key's length
 * is the stored one, so a NUL inside it is seen by the key check instead of
 * cutting the key short. Returns 0 or -1 with im->err set. */
static int read_queue_doc(import_t *im, const bson_t *q, const char **key,
                          size_t *key_len)
{
    wrk_queue_t doc;
    if (wrk_queue_read(q, (size_t)im->cfg->max_tags, &doc, im->err,
                       sizeof(im->err)) < 0)
        return -1;
    im->dry = doc.dry_run;
    im->csv_ignored = doc.csv_ignored;
    im->user = doc.user;
    im->account = doc.account;
    im->pipeline = doc.pipeline;
    *key = doc.key;
    *key_len = doc.key_len;
    bson_concat(&im->tags, &doc.tags);
    im->format = doc.format;
    wrk_queue_release(&doc);
    return wrk_match_read(q, &im->match, im->err, sizeof(im->err));
}

/* The file a checkpoint was made on. */
static void read_file_id(const bson_t *q, file_id_t *f)
{
    const char *etag = dip_bson_get_str(q, "checkpoint.file.etag");
    memset(f, 0, sizeof(*f));
    if (etag && *etag && strlen(etag) < sizeof(f->etag)) {
        memcpy(f->etag, etag, strlen(etag) + 1);
        f->known = 1;
    } else if (dip_bson_get_int(q, "checkpoint.file.size", -1) >= 0) {
        f->size = dip_bson_get_int(q, "checkpoint.file.size", -1);
        f->mtime_ns = dip_bson_get_int(q, "checkpoint.file.mtime_ns", -1);
        f->known = 1;
    }
}

/* Sets up the reader from the queue document's checkpoint, if it has a
 * usable one. The header is the one the supervisor stored from this
 * import's first run (`header`), or, from checkpoints of version 1, the
 * checkpoint's own. Returns the byte offset to read from. */
static uint64_t open_reader(import_t *im, const bson_t *q)
{
    bson_iter_t it, h;
    char **names = NULL;
    size_t n = 0;
    int64_t line = dip_bson_get_int(q, "checkpoint.line", -1);
    int64_t offset = dip_bson_get_int(q, "checkpoint.offset", -1);
    const char *delim = dip_bson_get_str(q, "checkpoint.delimiter");
    uint64_t start = 0;
    int stored = 0;

    if (line > 0 && offset > 0 && delim && strlen(delim) == 1 &&
        bson_iter_init(&it, q) &&
        ((stored = bson_iter_find(&it, "header")) ||
         (bson_iter_init(&it, q) &&
          bson_iter_find_descendant(&it, "checkpoint.header", &it))) &&
        BSON_ITER_HOLDS_ARRAY(&it) && bson_iter_recurse(&it, &h)) {
        int ok = 1;
        /* The header of the first run: at most as many names as the reader
         * accepts in a header line. */
        names = calloc(WRK_CSV_MAX_COLUMNS, sizeof(char *));
        while (names && bson_iter_next(&h)) {
            if (!BSON_ITER_HOLDS_UTF8(&h) || n >= WRK_CSV_MAX_COLUMNS) {
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
                im->would_add = dip_bson_get_int(q, "checkpoint.would_add", 0);
                im->errors = dip_bson_get_int(q, "checkpoint.errors", 0);
                im->updated = dip_bson_get_int(q, "checkpoint.updated", 0);
                im->unchanged = dip_bson_get_int(q, "checkpoint.unchanged", 0);
                im->errors_not_stored =
                    dip_bson_get_int(q, "checkpoint.errors_not_stored", 0);
                im->resumed = stored;
                read_file_id(q, &im->file_then);
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

/* The notes a finished run reports: a few sentences, the header's (which
 * name positions and columns) the longest. */
#define NOTES_MAX 8
typedef struct notes {
    char text[NOTES_MAX][1024];
    const char *ptrs[NOTES_MAX];
    size_t n;
} notes_t;

/* The next note's buffer, or NULL when full. */
static char *note(notes_t *nt)
{
    if (nt->n >= NOTES_MAX)
        return NULL;
    nt->ptrs[nt->n] = nt->text[nt->n];
    return nt->text[nt->n++];
}

#define NOTE(nt, ...)                                                          \
    do {                                                                       \
        char *b_ = note(nt);                                                   \
        if (b_)                                                                \
            dip_text_format(b_, sizeof((nt)->text[0]), NULL, __VA_ARGS__);     \
    } while (0)

/* The done of an update or upsert carries its updated and unchanged
 * deals. */
static bson_t *with_counts(const import_t *im, bson_t *done)
{
    if (done && im->up &&
        dip_msg_done_counts(done, im->updated, im->unchanged) < 0) {
        bson_destroy(done);
        return NULL;
    }
    return done;
}

static int finish(import_t *im, dip_done_status_t status, const notes_t *nt)
{
    int rc;
    /* A supervisor that stopped reading hears nothing more. */
    if (im->stop == STOP_SUPERVISOR || (im->ev && wrk_events_gone(im->ev)))
        return DIP_EXIT_TEMPFAIL;
    if (im->dry) {
        const char *const *names = NULL;
        size_t nn = im->stages ? wrk_stages_new_names(im->stages, &names) : 0;
        rc = emit(
            im,
            with_counts(
                im,
                dip_msg_done_dry(
                    status, im->last_line, im->errors_not_stored,
                    status == DIP_DONE_COMPLETED ? NULL : im->err,
                    nt ? nt->ptrs : NULL, nt ? nt->n : 0, im->would_add,
                    im->stages ? (int64_t)wrk_stages_created(im->stages) : 0,
                    names, nn)),
            "final report");
    } else {
        rc = emit(
            im,
            with_counts(
                im, dip_msg_done(status, im->last_line, im->errors_not_stored,
                                 status == DIP_DONE_COMPLETED ? NULL : im->err,
                                 nt ? nt->ptrs : NULL, nt ? nt->n : 0)),
            "final report");
    }
    if (status == DIP_DONE_RETRY)
        return DIP_EXIT_TEMPFAIL;
    return rc < 0 ? DIP_EXIT_TEMPFAIL : DIP_EXIT_OK;
}

/* Ends the import on a database step that failed before any line was read:
 * a transient failure is retried, anything else fails the import; err is
 * the sentence that says why. Returns the worker's exit code. */
static int finish_db_error(import_t *im, int rc, const char *err)
{
    dip_text_format(im->err, sizeof(im->err), NULL, "%s", err);
    return finish(
        im, rc == WRK_DB_ETRANSIENT ? DIP_DONE_RETRY : DIP_DONE_FAILED, NULL);
}

static const notes_t *notes_for(import_t *im, notes_t *nt, int empty,
                                int no_rows)
{
    uint64_t conv = (uint64_t)im->converted_at_start +
                    (im->csv ? wrk_csv_converted_cells(im->csv) : 0);
    memset(nt, 0, sizeof(*nt));
    if (empty)
        NOTE(nt, "the file is empty: nothing to import");
    else if (no_rows)
        NOTE(nt, "the file has a header but no rows");
    if (im->csv_ignored > 0)
        NOTE(nt,
             "the queue document names %zu more %s in 'csv' after the first: "
             "only the first is imported",
             im->csv_ignored, im->csv_ignored == 1 ? "file" : "files");
    if (conv > 0)
        NOTE(nt, "%llu cells were not UTF-8 and were read as Windows-1252",
             (unsigned long long)conv);
    /* Said only once the mapping is bound: a mapping that names a repeated
     * column fails the import instead. */
    if (im->bound && im->csv) {
        const char *e = wrk_csv_header_note_empty(im->csv);
        const char *r = wrk_csv_header_note_repeated(im->csv);
        if (e[0])
            NOTE(nt, "%s", e);
        if (r[0])
            NOTE(nt, "%s", r);
    }
    if (im->stages && wrk_stages_created(im->stages) > 0)
        NOTE(nt, "%llu new pipeline stages %s",
             (unsigned long long)wrk_stages_created(im->stages),
             im->dry ? "would be created" : "were created");
    if (im->map != NULL && !wrk_format_pending(&im->fmt)) {
        const char *cols[WRK_FORMAT_KINDS];
        char *b = note(nt);
        format_columns(im, cols);
        if (b != NULL) {
            wrk_format_note(&im->fmt, cols, b, sizeof(nt->text[0]));
            if (b[0] == '\0')
                nt->n--;
        }
    }
    if (im->errors_not_stored > 0)
        NOTE(nt,
             "%llu line errors were counted but not stored: the import "
             "reached its limit of stored errors (DEALIMPORT_MAX_LINE_ERRORS)",
             (unsigned long long)im->errors_not_stored);
    return nt;
}

/* Sets how the columns are read before the first row: the "auto" ones
 * from the checkpoint of an earlier run, or else from a survey of the
 * whole file. Returns DIP_STORAGE_OK, DIP_STORAGE_EABORT with im->stop
 * set, or another DIP_STORAGE_* code with err. */
static int decide_format(import_t *im, const bson_t *q, const char *key,
                         char *err, size_t errlen)
{
    wrk_survey_file_t file;
    int action = 0, rc = DIP_STORAGE_OK;
    if (wrk_format_pending(&im->fmt) && !wrk_format_restore(q, &im->fmt)) {
        dip_log(DIP_LOG_INFO, im->queue_id,
                "reading the whole file once to decide its format");
        switch (wrk_survey_run(im->cfg, key, im->map, im->ev,
                               im->cfg->batch_rows, &im->fmt, &file, &action,
                               err, errlen)) {
        case WRK_SURVEY_OK:
            /* The import must read the file the survey read. */
            if (!im->file_then.known && file.known)
                im->file_then = file;
            break;
        case WRK_SURVEY_ECONTROL:
            im->stop = STOP_CONTROL;
            im->action = action;
            return DIP_STORAGE_EABORT;
        case WRK_SURVEY_EGONE:
            im->stop = STOP_SUPERVISOR;
            return DIP_STORAGE_EABORT;
        case WRK_SURVEY_ETRANSIENT:
            return DIP_STORAGE_ETRANSIENT;
        case WRK_SURVEY_ENOMEM:
            /* The memory limit, as on_data meets it. */
            dip_log(DIP_LOG_ERR, im->queue_id,
                    "out of memory deciding the file's format: the worker "
                    "reached its memory limit");
            _exit(DIP_EXIT_NOMEM);
        default:
            return DIP_STORAGE_EFAIL;
        }
    }
    wrk_map_set_reading(im->map, &im->fmt.reading);
    return rc;
}

/* A resumed update or upsert: the keys of the lines before the checkpoint,
 * read again from the same file (wrk_recall.h). DIP_STORAGE_OK, or as
 * decide_format. */
static int recall(import_t *im, const char *key, char *err, size_t errlen)
{
    wrk_survey_file_t file;
    int action = 0;
    dip_log(DIP_LOG_INFO, im->queue_id,
            "reading lines 1 to %lld again for the keys they hold",
            (long long)im->rows_at_start);
    switch (wrk_recall_run(im->cfg, key, im->map, im->up, im->ev,
                           im->cfg->batch_rows, im->rows_at_start,
                           &im->file_then, &file, &action, err, errlen)) {
    case WRK_RECALL_ECHANGED:
        return DIP_STORAGE_ECHANGED;
    case WRK_RECALL_OK:
        if (im->file_then.known && file.known &&
            !wrk_survey_same_file(&im->file_then, &file)) {
            dip_text_format(err, errlen, NULL,
                            "read again for the keys of its first %lld lines",
                            (long long)im->rows_at_start);
            return DIP_STORAGE_ECHANGED;
        }
        return DIP_STORAGE_OK;
    case WRK_RECALL_ECONTROL:
        im->stop = STOP_CONTROL;
        im->action = action;
        return DIP_STORAGE_EABORT;
    case WRK_RECALL_EGONE:
        im->stop = STOP_SUPERVISOR;
        return DIP_STORAGE_EABORT;
    case WRK_RECALL_ETRANSIENT:
        return DIP_STORAGE_ETRANSIENT;
    case WRK_RECALL_ENOMEM:
        dip_log(DIP_LOG_ERR, im->queue_id,
                "out of memory reading the keys of the lines already "
                "imported: the worker reached its memory limit");
        _exit(DIP_EXIT_NOMEM);
    default:
        return DIP_STORAGE_EFAIL;
    }
}

static int stream(import_t *im, const bson_t *q, const char *key)
{
    dip_storage_t *st = NULL;
    dip_storage_sink_t sink = {im, on_size, on_data, on_identity};
    notes_t nt;
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
    im->rows_at_start = im->last_line;
    im->cp_line = im->last_line;
    im->cp_offset = im->last_offset;

    rc = decide_format(im, q, key, err, sizeof(err));
    if (rc == DIP_STORAGE_OK && im->up && im->rows_at_start > 0)
        rc = recall(im, key, err, sizeof(err));
    if (rc == DIP_STORAGE_OK) {
        st = dip_storage_new(im->cfg, err, sizeof(err));
        if (st == NULL) {
            fail_with(im, err);
            return finish(im, DIP_DONE_FAILED, NULL);
        }
        dip_storage_set_stop(st, on_wait, im);
        rc = dip_storage_get(st, key, start, &sink, err, sizeof(err));
        dip_storage_destroy(&st);
    }
    if (im->stop == STOP_CONTROL)
        back_to_checkpoint(im);

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
            dip_text_format(im->err, sizeof(im->err), NULL, "%s", err);
        } else if (rc == DIP_STORAGE_ECHANGED) {
            char msg[1024];
            dip_text_format(msg, sizeof(msg), NULL, "%s (%s)", FILE_CHANGED,
                            err);
            fail_with(im, msg);
        } else {
            fail_with(im, err);
        }
    }

    switch (im->stop) {
    case STOP_NONE: {
        int empty = wrk_csv_header(im->csv, &nh) == NULL;
        exit_code =
            finish(im, DIP_DONE_COMPLETED,
                   notes_for(im, &nt, empty, !empty && im->last_line == 0));
        break;
    }
    case STOP_CONTROL:
        /* The batch in hand was flushed before the stop took effect. */
        exit_code =
            finish(im,
                   im->action == DIP_CONTROL_PAUSE    ? DIP_DONE_PAUSED
                   : im->action == DIP_CONTROL_CANCEL ? DIP_DONE_CANCELLED
                                                      : DIP_DONE_STOPPED,
                   notes_for(im, &nt, 0, 0));
        break;
    case STOP_FAILED:
        exit_code = finish(im, DIP_DONE_FAILED, notes_for(im, &nt, 0, 0));
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

/* A dry run looks stages up and never creates one; a resume knows the new
 * names of its earlier runs from the checkpoint. */
static int dry_stages(import_t *im, const bson_t *q)
{
    bson_iter_t it, a;
    wrk_stages_set_dry(im->stages);
    if (!bson_iter_init(&it, q) ||
        !bson_iter_find_descendant(&it, "checkpoint.dry_new_stages", &it) ||
        !BSON_ITER_HOLDS_ARRAY(&it) || !bson_iter_recurse(&it, &a))
        return 0;
    while (bson_iter_next(&a))
        if (BSON_ITER_HOLDS_UTF8(&a) &&
            wrk_stages_restore_new(im->stages, bson_iter_utf8(&a, NULL)) < 0)
            return -1;
    return 0;
}

int wrk_import_run(const dip_config_t *cfg, const char *queue_id,
                   const char *events_endpoint, const char *owner,
                   int64_t epoch, const bson_t *handed, int64_t claimed_ms)
{
    import_t im;
    bson_t q = BSON_INITIALIZER;
    const char *key = NULL;
    size_t key_len = 0;
    char err[1024];
    int rc, exit_code = DIP_EXIT_TEMPFAIL;
    size_t cap = (size_t)cfg->batch_rows;
    int64_t confirmed_ms;

    memset(&im, 0, sizeof(im));
    bson_init(&im.tags);
    bson_init(&im.tail);
    im.cfg = cfg;
    im.queue_id = queue_id;
    im.bytes_total = -1;
    im.bytes_max = (size_t)dip_config_batch_bytes(cfg);
    bson_oid_init_from_string(&im.qid, queue_id);
    wrk_fence_init(&im.fence, owner, epoch, cfg->lease_s, dip_time_mono_ms());
    im.docs = calloc(cap, sizeof(bson_t *));
    im.doc_lines = calloc(cap, sizeof(int64_t));
    im.outcome = calloc(cap, sizeof(int));
    im.messages = calloc(cap, sizeof(char *));
    im.kept = calloc(cap, sizeof(kept_row_t));

    im.ev = wrk_events_new(events_endpoint, queue_id, cfg->lease_s * 1000, err,
                           sizeof(err));
    if (im.ev == NULL) {
        dip_log(DIP_LOG_ERR, queue_id, "%s", err);
        goto cleanup;
    }
    /* First, before anything that may wait on the database: from the
     * hello on, the events thread keeps the supervisor informed. */
    {
        bson_value_t id;
        id.value_type = BSON_TYPE_OID;
        bson_oid_copy(&im.qid, &id.value.v_oid);
        if (emit(&im,
                 dip_msg_hello(&id, (int64_t)getpid(), owner ? owner : "",
                               epoch < 0 ? 0 : epoch, cfg->spawn_secret),
                 "hello") < 0)
            goto cleanup;
    }
    im.db = wrk_db_new(cfg, queue_id, err, sizeof(err));
    if (im.db == NULL) {
        fail_with(&im, err);
        exit_code = finish(&im, DIP_DONE_FAILED, NULL);
        goto cleanup;
    }
    if (handed != NULL) {
        /* The claim's own answer: confirmed when the claim was sent, so
         * the next check falls due from then, not from now. */
        bson_destroy(&q);
        bson_copy_to(handed, &q);
        confirmed_ms = claimed_ms;
    } else {
        rc = wrk_db_load_queue(im.db, &q, err, sizeof(err));
        if (rc != WRK_DB_OK) {
            exit_code = finish_db_error(&im, rc, err);
            goto cleanup;
        }
        confirmed_ms = dip_time_mono_ms();
    }
    /* The claim first: a worker started for a claim that is already gone
     * (its supervisor was frozen, say) does nothing at all. */
    if (wrk_fence_judge(&im.fence, &q, 1, confirmed_ms) == WRK_FENCE_GONE) {
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
        im.map = im.match.mode == WRK_MATCH_MODE_UPDATE
                     ? wrk_map_new_update(&mappings, err, sizeof(err))
                     : wrk_map_new(&mappings, err, sizeof(err));
        if (im.map != NULL &&
            wrk_match_check_mapping(&im.match, &mappings, err, sizeof(err)) < 0)
            wrk_map_destroy(&im.map);
        if (im.map == NULL) {
            fail_with(&im, err);
            exit_code = finish(&im, DIP_DONE_FAILED, NULL);
            goto cleanup;
        }
        /* "auto" decides only the columns the mapping reads. */
        wrk_format_start(&im.format, &im.fmt);
        for (int k = 0; k < WRK_FORMAT_KINDS; k++)
            if (wrk_map_field_column(im.map, wrk_format_field(k), NULL, NULL) <
                0)
                im.fmt.is_auto[k] = 0;
        wrk_map_set_reading(im.map, &im.fmt.reading);
    }
    /* The indexes the writes rely on are the supervisor's, made before it
     * claims (dip_deal_index.h): none are made here. */
    rc = wrk_db_check_pipeline(im.db, &im.pipeline, &im.account, err,
                               sizeof(err));
    if (rc == WRK_DB_OK && im.match.key != WRK_MATCH_KEY_NONE) {
        im.up = wrk_upsert_new(im.db, &im.match, &im.qid, &im.account,
                               &im.pipeline, im.dry);
        im.status_given = calloc(cap, sizeof(int));
        wrk_map_set_keep_empty(im.map, 1);
        rc = im.up && im.status_given
                 ? wrk_upsert_prepare(im.up, err, sizeof(err))
                 : WRK_DB_EFAIL;
        if (im.up == NULL || im.status_given == NULL)
            snprintf(err, sizeof(err), "out of memory");
    }
    im.lines_wanted = im.match.success_file && !im.dry;
    if (rc == WRK_DB_OK && im.lines_wanted) {
        im.actions = calloc(cap, sizeof(*im.actions));
        im.ids = calloc(cap, sizeof(*im.ids));
        rc = im.actions && im.ids ? wrk_lines_prepare(im.db, err, sizeof(err))
                                  : WRK_DB_EFAIL;
        if (im.actions == NULL || im.ids == NULL)
            snprintf(err, sizeof(err), "out of memory");
    }
    if (rc != WRK_DB_OK) {
        exit_code = finish_db_error(&im, rc, err);
        goto cleanup;
    }
    im.stages = wrk_stages_new(
        im.db, &im.account, &im.pipeline, &im.user, (size_t)cfg->max_new_stages,
        (size_t)dip_bson_get_int(&q, "checkpoint.stages_created", 0));
    if (im.stages == NULL || im.kept == NULL || build_tail(&im) < 0 ||
        (im.dry && dry_stages(&im, &q) < 0)) {
        fail_with(&im, "out of memory");
        exit_code = finish(&im, DIP_DONE_FAILED, NULL);
        goto cleanup;
    }
    /* One read for the pipeline's stages instead of one per name; on
     * failure each name is still looked up on its own. */
    if (wrk_stages_preload(im.stages, err, sizeof(err)) != WRK_DB_OK)
        dip_log(DIP_LOG_WARNING, queue_id,
                "stages not read ahead, looking them up one by one: %s", err);
    exit_code = stream(&im, &q, key);
    dip_log_fields(DIP_LOG_INFO, queue_id,
                   DIP_LOG_FIELDS(DIP_LOG_NUM("line", im.last_line),
                                  DIP_LOG_NUM(im.dry ? "would_add" : "added",
                                              im.dry ? im.would_add : im.added),
                                  DIP_LOG_NUM("errors", im.errors),
                                  DIP_LOG_NUM("db_round_trips",
                                              wrk_db_round_trips(im.db))),
                   "worker finished at line %lld: %lld %s, %lld errors, %ld "
                   "database round trips",
                   (long long)im.last_line,
                   (long long)(im.dry ? im.would_add : im.added),
                   im.dry ? "would be added (a dry run)" : "added",
                   (long long)im.errors, wrk_db_round_trips(im.db));
cleanup:
    clear_batch(&im);
    for (size_t i = 0; im.docs && i < cap; i++)
        if (im.docs[i] != NULL)
            bson_destroy(im.docs[i]);
    free(im.docs);
    free(im.doc_lines);
    free(im.outcome);
    free(im.messages);
    free(im.kept);
    free(im.arena);
    free(im.status_given);
    free(im.actions);
    free(im.ids);
    wrk_upsert_destroy(&im.up);
    bson_destroy(&im.tags);
    bson_destroy(&im.tail);
    bson_destroy(&q);
    wrk_stages_destroy(&im.stages);
    wrk_csv_destroy(&im.csv);
    wrk_map_destroy(&im.map);
    wrk_db_destroy(&im.db);
    wrk_events_destroy(&im.ev);
    return exit_code;
}
