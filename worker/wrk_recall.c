/*
 * wrk_recall: the keys of a resumed run's earlier lines (wrk_recall.h).
 * The reader, the mapping and the storage download are the import's own,
 * so the rows recalled are the rows the earlier runs mapped.
 */
#include "wrk_recall.h"
#include "dip_storage_io.h"
#include "dip_text.h"
#include "wrk_csv.h"

#include <stdio.h>
#include <string.h>

typedef struct recall {
    wrk_map_t *map;
    wrk_upsert_t *up;
    wrk_csv_t *csv;
    wrk_events_t *ev;
    const wrk_survey_file_t *then;
    wrk_survey_file_t *file;
    bson_t deal;
    int64_t every, rows, upto;
    int bound, done, rc, action;
    char err[1024];
} recall_t;

static int bind_header(recall_t *r)
{
    size_t n = 0;
    const char *const *h = wrk_csv_header(r->csv, &n);
    if (r->bound || h == NULL)
        return 0;
    if (wrk_map_bind(r->map, h, n, r->err, sizeof(r->err)) < 0) {
        r->rc = WRK_RECALL_EFAILED;
        return -1;
    }
    r->bound = 1;
    return 0;
}

static int stop_now(void *arg)
{
    recall_t *r = arg;
    if (r->rc != WRK_RECALL_OK || r->done)
        return 1;
    if (r->ev == NULL)
        return 0;
    if ((r->action = wrk_events_poll_control(r->ev)) != 0)
        r->rc = WRK_RECALL_ECONTROL;
    else if (wrk_events_gone(r->ev))
        r->rc = WRK_RECALL_EGONE;
    return r->rc != WRK_RECALL_OK;
}

static int on_row(void *arg, const wrk_csv_row_t *row)
{
    recall_t *r = arg;
    char stage[1024];
    wrk_map_error_t merr;
    if (bind_header(r) < 0)
        return 1;
    if ((int64_t)row->line > r->upto) {
        r->done = 1;
        return 1;
    }
    if (r->ev != NULL && ++r->rows % r->every == 0 && stop_now(r))
        return 1;
    /* A row the import refused as a row, or whose cells did not map, never
     * reached the key set. */
    if (row->error != WRK_CSV_ROW_OK)
        return 0;
    bson_reinit(&r->deal);
    if (wrk_map_row(r->map, row->cells, row->lens, row->ncells, &r->deal, stage,
                    sizeof(stage), &merr) < 0)
        return 0;
    if (wrk_upsert_recall(r->up, &r->deal, (int64_t)row->line) < 0) {
        dip_text_format(r->err, sizeof(r->err), NULL,
                        "out of memory keeping the keys");
        r->rc = WRK_RECALL_ENOMEM;
        return 1;
    }
    return 0;
}

static int on_data(void *arg, const char *buf, size_t len)
{
    recall_t *r = arg;
    int rc;
    if (r->then != NULL && r->then->known &&
        !wrk_survey_same_file(r->then, r->file)) {
        dip_text_format(r->err, sizeof(r->err), NULL,
                        "read again for the keys of its first %lld lines",
                        (long long)r->upto);
        r->rc = WRK_RECALL_ECHANGED;
        return 1;
    }
    rc = wrk_csv_feed(r->csv, buf, len);
    if (r->done || r->rc != WRK_RECALL_OK)
        return 1;
    if (rc == WRK_CSV_ENOMEM) {
        dip_text_format(r->err, sizeof(r->err), NULL,
                        "out of memory reading the lines already imported");
        r->rc = WRK_RECALL_ENOMEM;
    } else if (rc != WRK_CSV_OK) {
        dip_text_format(r->err, sizeof(r->err), NULL, "%s",
                        rc == WRK_CSV_EHEADER
                            ? wrk_csv_error(r->csv)
                            : "the lines already imported could not be read "
                              "again");
        r->rc = WRK_RECALL_EFAILED;
    }
    return rc == WRK_CSV_OK ? 0 : 1;
}

static void on_identity(void *arg, const char *etag, int64_t size,
                        int64_t mtime_ns)
{
    recall_t *r = arg;
    wrk_survey_file_set(r->file, etag, size, mtime_ns);
}

int wrk_recall_run(const dip_config_t *cfg, const char *key, wrk_map_t *map,
                   wrk_upsert_t *up, wrk_events_t *ev, int64_t every,
                   int64_t upto, const wrk_survey_file_t *then,
                   wrk_survey_file_t *file, int *action, char *err,
                   size_t errlen)
{
    recall_t r;
    dip_storage_t *st = NULL;
    dip_storage_sink_t sink = {&r, NULL, on_data, on_identity};
    char serr[1024] = "";
    int rc;
    memset(&r, 0, sizeof(r));
    memset(file, 0, sizeof(*file));
    *action = 0;
    bson_init(&r.deal);
    r.map = map;
    r.up = up;
    r.ev = ev;
    r.then = then;
    r.file = file;
    r.upto = upto;
    r.every = every > 0 ? every : 1000;
    r.csv = wrk_csv_new(on_row, &r);
    st = r.csv ? dip_storage_new(cfg, r.err, sizeof(r.err)) : NULL;
    if (r.csv == NULL || st == NULL) {
        if (r.csv == NULL) {
            dip_text_format(r.err, sizeof(r.err), NULL, "out of memory");
            r.rc = WRK_RECALL_ENOMEM;
        } else {
            r.rc = WRK_RECALL_EFAILED;
        }
        goto cleanup;
    }
    dip_storage_set_stop(st, stop_now, &r);
    rc = dip_storage_get(st, key, 0, &sink, serr, sizeof(serr));
    if (r.rc == WRK_RECALL_OK && !r.done) {
        if (rc == DIP_STORAGE_OK) {
            /* the file ended at or before the checkpoint: its last row */
            if (wrk_csv_finish(r.csv) != WRK_CSV_OK && r.rc == WRK_RECALL_OK) {
                dip_text_format(r.err, sizeof(r.err), NULL,
                                "the lines already imported could not be "
                                "read again");
                r.rc = WRK_RECALL_EFAILED;
            }
        } else {
            dip_text_format(r.err, sizeof(r.err), NULL, "%s", serr);
            /* a version changed between responses: the file changed,
             * as the import says it */
            r.rc = rc == DIP_STORAGE_ETRANSIENT ? WRK_RECALL_ETRANSIENT
                   : rc == DIP_STORAGE_ECHANGED ? WRK_RECALL_ECHANGED
                                                : WRK_RECALL_EFAILED;
        }
    }
cleanup:
    dip_storage_destroy(&st);
    wrk_csv_destroy(&r.csv);
    bson_destroy(&r.deal);
    *action = r.action;
    if (r.rc != WRK_RECALL_OK)
        dip_text_format(err, errlen, NULL, "%s", r.err);
    return r.rc;
}
