/*
 * bench_floor: the least any importer of a CSV file into MongoDB must do per
 * row, as the yardstick for the worker's instructions per row: libcsv parses
 * the file and one BSON document is built per row, each cell under the deal
 * field its column feeds (the same columns as the worker maps), then thrown
 * away. No validation, no conversion, no database.
 *
 *   bench_floor FILE    prints "rows R"
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bson/bson.h>
#include <csv.h>

#define MAX_CELLS 64

/* The worker's mapping of the bench file's columns (bench_cpu.c). */
static const char *const keys[] = {"name",   "value",         "stage_id",
                                   "status", "contract_type", "contact_name",
                                   "budget", "description"};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

typedef struct {
    char *cell[MAX_CELLS];
    size_t len[MAX_CELLS];
    size_t cap[MAX_CELLS];
    size_t n;
    unsigned long long rows; /* data rows (the header excluded) */
} floor_t;

static void on_cell(void *data, size_t len, void *arg)
{
    floor_t *f = arg;
    size_t i = f->n++;
    if (i >= MAX_CELLS)
        return;
    if (f->cap[i] < len + 1) {
        f->cap[i] = 2 * len + 16;
        f->cell[i] = realloc(f->cell[i], f->cap[i]);
        if (f->cell[i] == NULL)
            abort();
    }
    if (len)
        memcpy(f->cell[i], data, len);
    f->cell[i][len] = '\0';
    f->len[i] = len;
}

static void on_row(int c, void *arg)
{
    floor_t *f = arg;
    bson_t doc;
    (void)c;
    if (f->rows++ > 0) {
        bson_init(&doc);
        for (size_t i = 0; i < NKEYS && i < f->n; i++)
            bson_append_utf8(&doc, keys[i], -1, f->cell[i], (int)f->len[i]);
        bson_destroy(&doc);
    }
    f->n = 0;
}

int main(int argc, char **argv)
{
    struct csv_parser p;
    floor_t f;
    char buf[65536];
    size_t got;
    FILE *in;
    if (argc != 2 || (in = fopen(argv[1], "rb")) == NULL) {
        fprintf(stderr, "usage: bench_floor FILE\n");
        return 2;
    }
    memset(&f, 0, sizeof(f));
    if (csv_init(&p, CSV_APPEND_NULL) != 0)
        return 1;
    while ((got = fread(buf, 1, sizeof(buf), in)) > 0)
        if (csv_parse(&p, buf, got, on_cell, on_row, &f) != got)
            return 1;
    csv_fini(&p, on_cell, on_row, &f);
    csv_free(&p);
    fclose(in);
    for (size_t i = 0; i < MAX_CELLS; i++)
        free(f.cell[i]);
    printf("rows %llu\n", f.rows > 0 ? f.rows - 1 : 0);
    return 0;
}
