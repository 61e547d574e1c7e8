/*
 * ctl_precheck: the mappings and header through the worker's own modules
 * (wrk_map, wrk_csv), and the pipeline through the query the worker makes.
 * Failure classes: a file with a hostile header (16,384 columns, a line of
 * a megabyte, cut UTF-8) gets the reader's own sentence and bounds; a slow
 * database is bounded by maxTimeMS and reported as unavailable, never
 * taken for "no such pipeline".
 */
#include "ctl_precheck.h"
#include "dip_bson.h"
#include "wrk_csv.h"
#include "wrk_map.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHUNK (64 * 1024)
#define PIPELINE_MAX_TIME_MS 5000

/* The first row ends the read: the header is known by then. */
static int stop_at_first_row(void *arg, const wrk_csv_row_t *row)
{
    (void)arg;
    (void)row;
    return 1;
}

int ctl_precheck_file(const bson_t *mappings, int update, const char *path,
                      char *err, size_t errlen)
{
    wrk_map_t *map = update ? wrk_map_new_update(mappings, err, errlen)
                            : wrk_map_new(mappings, err, errlen);
    wrk_csv_t *csv = NULL;
    const char *const *header = NULL;
    char *buf = NULL;
    size_t n = 0, total = 0;
    int fd = -1, rc = -1, fr = WRK_CSV_OK;
    if (map == NULL)
        return -1;
    csv = wrk_csv_new(stop_at_first_row, NULL);
    buf = malloc(CHUNK);
    if (csv == NULL || buf == NULL) {
        snprintf(err, errlen, "out of memory");
        goto cleanup;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot read '%s': %s", path, strerror(errno));
        goto cleanup;
    }
    /* A header line is at most WRK_CSV_ROW_MAX bytes: the reader says so
     * past it, so the loop ends within that much. */
    while ((header = wrk_csv_header(csv, &n)) == NULL && fr == WRK_CSV_OK &&
           total <= WRK_CSV_ROW_MAX + CHUNK) {
        ssize_t got = read(fd, buf, CHUNK);
        if (got < 0) {
            snprintf(err, errlen, "cannot read '%s': %s", path,
                     strerror(errno));
            goto cleanup;
        }
        if (got == 0) {
            fr = wrk_csv_finish(csv);
            header = wrk_csv_header(csv, &n);
            break;
        }
        total += (size_t)got;
        fr = wrk_csv_feed(csv, buf, (size_t)got);
    }
    if (header == NULL) {
        const char *why = wrk_csv_error(csv);
        snprintf(err, errlen, "%s", why && *why ? why : "no header line");
        goto cleanup;
    }
    if (wrk_map_bind(map, header, n, err, errlen) < 0)
        goto cleanup;
    rc = 0;
cleanup:
    if (fd >= 0)
        close(fd);
    free(buf);
    wrk_csv_destroy(&csv);
    wrk_map_destroy(&map);
    return rc;
}

int ctl_precheck_pipeline(mongoc_client_t *client, const char *db,
                          const bson_oid_t *account, const bson_oid_t *pipeline,
                          char *err, size_t errlen)
{
    mongoc_collection_t *c =
        mongoc_client_get_collection(client, db, "pipelines");
    bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    bson_error_t error;
    int64_t n;
    char hex[25];
    BSON_APPEND_OID(&filter, "_id", pipeline);
    dip_bson_append_id_match(&filter, "account_id", account);
    BSON_APPEND_INT64(&opts, "limit", 1);
    BSON_APPEND_INT64(&opts, "maxTimeMS", PIPELINE_MAX_TIME_MS);
    n = mongoc_collection_count_documents(c, &filter, &opts, NULL, NULL,
                                          &error);
    bson_destroy(&filter);
    bson_destroy(&opts);
    mongoc_collection_destroy(c);
    if (n < 0) {
        snprintf(err, errlen, "the database did not answer: %s", error.message);
        return CTL_PRECHECK_EDB;
    }
    if (n == 0) {
        bson_oid_to_string(pipeline, hex);
        snprintf(err, errlen, "pipeline '%s' does not exist in this account",
                 hex);
        return CTL_PRECHECK_NOTFOUND;
    }
    return CTL_PRECHECK_OK;
}
