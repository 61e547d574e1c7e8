/*
 * wrk_survey: reads the whole file once before an "auto" import, feeding
 * the cells of the columns left to the file into their tallies. The reader
 * and the storage download are the import's own (wrk_csv, dip_storage), so
 * the survey sees exactly the rows and cells the import will see.
 */
#include "wrk_survey.h"
#include "dip_storage_io.h"
#include "dip_text.h"
#include "wrk_csv.h"

#include <stdio.h>
#include <string.h>

typedef struct survey {
    wrk_map_t *map;
    wrk_csv_t *csv;
    wrk_events_t *ev;
    wrk_format_decisions_t *d;
    wrk_survey_file_t *file;
    int64_t every, rows;
    size_t column[WRK_FORMAT_KINDS];
    int bound, rc, action;
    char err[1024];
} survey_t;

static int bind(survey_t *s)
{
    size_t n = 0;
    const char *const *h = wrk_csv_header(s->csv, &n);
    if (s->bound || h == NULL)
        return 0;
    if (wrk_map_bind(s->map, h, n, s->err, sizeof(s->err)) < 0) {
        s->rc = WRK_SURVEY_EFAILED;
        return -1;
    }
    for (int k = 0; k < WRK_FORMAT_KINDS; k++)
        if (wrk_map_field_column(s->map, wrk_format_field(k), &s->column[k],
                                 NULL) < 0)
            s->column[k] = (size_t)-1;
    s->bound = 1;
    return 0;
}

/* Whether to stop: a control action, or the supervisor gone. Asked every
 * `every` rows and by storage while the download waits (a GET never
 * answered, a backoff), so that a stop reaches a survey that reads no
 * row. Non-zero once s->rc says why. */
static int stop_now(void *arg)
{
    survey_t *s = arg;
    if (s->rc != WRK_SURVEY_OK)
        return 1;
    if (s->ev == NULL)
        return 0;
    if ((s->action = wrk_events_poll_control(s->ev)) != 0)
        s->rc = WRK_SURVEY_ECONTROL;
    else if (wrk_events_gone(s->ev))
        s->rc = WRK_SURVEY_EGONE;
    return s->rc != WRK_SURVEY_OK;
}

static int on_row(void *arg, const wrk_csv_row_t *row)
{
    survey_t *s = arg;
    if (bind(s) < 0)
        return 1;
    if (s->ev != NULL && ++s->rows % s->every == 0 && stop_now(s))
        return 1;
    /* A row the import refuses as a row decides nothing. */
    if (row->error != WRK_CSV_ROW_OK)
        return 0;
    for (int k = 0; k < WRK_FORMAT_KINDS; k++) {
        size_t c = s->column[k];
        const char *p;
        size_t len;
        if (!s->d->is_auto[k] || s->d->decided[k] || c >= row->ncells ||
            row->cells[c] == NULL)
            continue;
        p = row->cells[c];
        len = row->lens[c];
        wrk_values_trim(&p, &len);
        wrk_format_tally_cell(&s->d->tally[k], k, &s->d->reading.layouts, p,
                              len);
    }
    return 0;
}

static int on_data(void *arg, const char *buf, size_t len)
{
    survey_t *s = arg;
    int rc = wrk_csv_feed(s->csv, buf, len);
    if (rc == WRK_CSV_EHEADER) {
        dip_text_format(s->err, sizeof(s->err), NULL, "%s",
                        wrk_csv_error(s->csv));
        s->rc = WRK_SURVEY_EFAILED;
    } else if (rc == WRK_CSV_ENOMEM) {
        dip_text_format(s->err, sizeof(s->err), NULL,
                        "out of memory deciding the file's format");
        s->rc = WRK_SURVEY_ENOMEM;
    } else if (rc != WRK_CSV_OK && s->rc == WRK_SURVEY_OK) {
        dip_text_format(s->err, sizeof(s->err), NULL,
                        "the file could not be read to decide its format");
        s->rc = WRK_SURVEY_EFAILED;
    }
    return rc == WRK_CSV_OK ? 0 : 1;
}

void wrk_survey_file_set(wrk_survey_file_t *f, const char *etag, int64_t size,
                         int64_t mtime_ns)
{
    size_t n = strlen(etag);
    if (n >= sizeof(f->etag) || !dip_text_utf8_valid(etag, n))
        return;
    memcpy(f->etag, etag, n + 1);
    f->size = size;
    f->mtime_ns = mtime_ns;
    f->known = 1;
}

int wrk_survey_same_file(const wrk_survey_file_t *a, const wrk_survey_file_t *b)
{
    if (!a->known || !b->known)
        return a->known == b->known;
    if (a->etag[0] || b->etag[0])
        return strcmp(a->etag, b->etag) == 0;
    return a->size == b->size && a->mtime_ns == b->mtime_ns;
}

static void on_identity(void *arg, const char *etag, int64_t size,
                        int64_t mtime_ns)
{
    survey_t *s = arg;
    wrk_survey_file_set(s->file, etag, size, mtime_ns);
}

int wrk_survey_run(const dip_config_t *cfg, const char *key, wrk_map_t *map,
                   wrk_events_t *ev, int64_t every, wrk_format_decisions_t *d,
                   wrk_survey_file_t *file, int *action, char *err,
                   size_t errlen)
{
    survey_t s;
    dip_storage_t *st = NULL;
    dip_storage_sink_t sink = {&s, NULL, on_data, on_identity};
    char serr[1024] = "";
    int rc;
    memset(&s, 0, sizeof(s));
    memset(file, 0, sizeof(*file));
    *action = 0;
    s.map = map;
    s.ev = ev;
    s.d = d;
    s.file = file;
    s.every = every > 0 ? every : 1000;
    s.csv = wrk_csv_new(on_row, &s);
    st = s.csv ? dip_storage_new(cfg, s.err, sizeof(s.err)) : NULL;
    if (s.csv == NULL || st == NULL) {
        if (s.csv == NULL)
            dip_text_format(s.err, sizeof(s.err), NULL, "out of memory");
        s.rc = WRK_SURVEY_EFAILED;
        goto cleanup;
    }
    dip_storage_set_stop(st, stop_now, &s);
    /* The reader's own reason, when it stopped the download, is in s.err;
     * storage's goes there only when storage failed. */
    rc = dip_storage_get(st, key, 0, &sink, serr, sizeof(serr));
    if (rc == DIP_STORAGE_OK && s.rc == WRK_SURVEY_OK) {
        int frc = wrk_csv_finish(s.csv);
        if (frc == WRK_CSV_EHEADER) {
            dip_text_format(s.err, sizeof(s.err), NULL, "%s",
                            wrk_csv_error(s.csv));
            s.rc = WRK_SURVEY_EFAILED;
        } else if (frc != WRK_CSV_OK) {
            dip_text_format(s.err, sizeof(s.err), NULL,
                            "the file could not be read to its end");
            s.rc = WRK_SURVEY_EFAILED;
        } else {
            bind(&s);
        }
    } else if (rc != DIP_STORAGE_OK && s.rc == WRK_SURVEY_OK) {
        dip_text_format(s.err, sizeof(s.err), NULL, "%s", serr);
        s.rc = rc == DIP_STORAGE_ETRANSIENT ? WRK_SURVEY_ETRANSIENT
                                            : WRK_SURVEY_EFAILED;
    }
    if (s.rc == WRK_SURVEY_OK)
        wrk_format_finish(d);
cleanup:
    dip_storage_destroy(&st);
    wrk_csv_destroy(&s.csv);
    *action = s.action;
    if (s.rc != WRK_SURVEY_OK)
        dip_text_format(err, errlen, NULL, "%s", s.err);
    return s.rc;
}
