/*
 * Fuzz target for the whole CSV-to-deal path of a worker: the bytes are a
 * file, read by wrk_csv as a worker reads it, its header bound to a mapping
 * made from the header's own names (the first column is the deal's name,
 * the second its stage, the others the remaining standard fields and two
 * custom fields in turn), and every row the reader delivers whole mapped
 * into a deal by wrk_map. Checks what must hold whatever the file: each row
 * is a deal or a line error, never both or neither; a deal is valid UTF-8
 * BSON with a stage and a status; a line error has a UTF-8 sentence and,
 * for a cell error, names a field; the counts add up to the rows read.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bson/bson.h>

#include "wrk_csv.h"
#include "wrk_map.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const targets[] = {"name",
                                      "stage_id",
                                      "value",
                                      "currency",
                                      "status",
                                      "contract_type",
                                      "expected_close_date",
                                      "probability",
                                      "description",
                                      "contact_name",
                                      "contact_email",
                                      "contact_phone",
                                      "company_name",
                                      "64b0000000000000000000a1",
                                      "64b0000000000000000000b2"};
#define NTARGETS (sizeof(targets) / sizeof(targets[0]))

typedef struct {
    wrk_csv_t *csv;
    wrk_map_t *map;
    int tried; /* the header was seen and a map attempted */
    uint64_t rows, deals, errors;
} run_t;

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_wrk_csv_map: %s\n", what);
        abort();
    }
}

static int utf8(const char *s)
{
    return bson_utf8_validate(s, strlen(s), false);
}

/* A map over the header's own names, or NULL when the worker would fail
 * the import (the mapping or its binding refused, with a sentence). */
static wrk_map_t *map_for(const char *const *h, size_t n)
{
    bson_t mappings = BSON_INITIALIZER;
    char err[1024] = "";
    wrk_map_t *m = NULL;
    for (size_t i = 0; i < n && i < NTARGETS; i++)
        BSON_APPEND_UTF8(&mappings, h[i], targets[i]);
    m = wrk_map_new(&mappings, err, sizeof(err));
    if (m != NULL && wrk_map_bind(m, h, n, err, sizeof(err)) < 0)
        wrk_map_destroy(&m);
    if (m == NULL)
        check(err[0] != '\0' && utf8(err), "a refused mapping without a "
                                           "UTF-8 sentence");
    bson_destroy(&mappings);
    return m;
}

static int on_row(void *arg, const wrk_csv_row_t *row)
{
    run_t *run = arg;
    bson_t deal = BSON_INITIALIZER;
    char stage[256], field[128];
    wrk_map_error_t e;
    size_t off;
    if (!run->tried) {
        size_t n = 0;
        const char *const *h = wrk_csv_header(run->csv, &n);
        check(h != NULL, "a row before the header");
        run->tried = 1;
        run->map = map_for(h, n);
    }
    if (run->map == NULL)
        return 1; /* the import would have failed: stop reading */
    run->rows++;
    if (row->error != WRK_CSV_ROW_OK) {
        check(utf8(wrk_csv_row_error_message(row->error)),
              "a reader error that is not UTF-8");
        if (wrk_map_column_field(run->map, row->error_cell, field,
                                 sizeof(field)) == 0)
            check(field[0] != '\0' && utf8(field), "a bad field name");
        run->errors++;
        return 0;
    }
    if (wrk_map_row(run->map, row->cells, row->lens, row->ncells, &deal, stage,
                    sizeof(stage), &e) == 0) {
        check(bson_validate(&deal, BSON_VALIDATE_UTF8, &off),
              "a deal that is not UTF-8 BSON");
        check(stage[0] != '\0' && utf8(stage), "a deal without a stage");
        check(bson_has_field(&deal, "status"), "a deal without a status");
        run->deals++;
    } else {
        check(e.message[0] != '\0' && utf8(e.message),
              "a line error without a UTF-8 sentence");
        check(utf8(e.field), "a line error naming a field that is not UTF-8");
        run->errors++;
    }
    bson_destroy(&deal);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run_t run = {0};
    int rc;
    run.csv = wrk_csv_new(on_row, &run);
    check(run.csv != NULL, "out of memory");
    rc = wrk_csv_feed(run.csv, (const char *)data, size);
    if (rc == WRK_CSV_OK)
        rc = wrk_csv_finish(run.csv);
    check(rc == WRK_CSV_OK || rc == WRK_CSV_EHEADER || rc == WRK_CSV_ESTOPPED,
          "an unexpected reader result");
    check(rc != WRK_CSV_ESTOPPED || (run.tried && run.map == NULL),
          "stopped without a refused mapping");
    if (rc == WRK_CSV_EHEADER)
        check(utf8(wrk_csv_error(run.csv)) && wrk_csv_error(run.csv)[0],
              "a header error without a UTF-8 sentence");
    check(run.deals + run.errors == run.rows, "rows neither deal nor error");
    if (run.map != NULL)
        check(run.rows == wrk_csv_rows(run.csv), "rows lost between reader "
                                                 "and mapper");
    wrk_map_destroy(&run.map);
    wrk_csv_destroy(&run.csv);
    return 0;
}
