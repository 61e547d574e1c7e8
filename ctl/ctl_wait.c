/*
 * ctl_wait: one find by _id per interval (the _id index; maxTimeMS below
 * the interval's bound), status changes reported once each. Failure
 * classes: a database that is slow or away is retried at the same pace and
 * given up after a minute without an answer (exit 69, the import goes on
 * regardless); a paused import is waited for, as it may be resumed; a
 * pending import with no supervisor running waits until one claims it
 * (Ctrl-C leaves it queued).
 */
#include "ctl_wait.h"
#include "ctl_client.h"
#include "dip_bson.h"
#include "dip_ctl.h"
#include "dip_time.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#define GIVE_UP_MS 60000
#define FIND_MAX_TIME_MS 5000

static void nap(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* 1 with out filled, 0 when there is no such document, -1 on an error. */
static int read_queue(mongoc_collection_t *c, const bson_oid_t *qid,
                      bson_t *out)
{
    bson_t filter = BSON_INITIALIZER;
    bson_t *opts = BCON_NEW("limit", BCON_INT64(1), "maxTimeMS",
                            BCON_INT64(FIND_MAX_TIME_MS), "projection", "{",
                            "status", BCON_INT32(1), "error", BCON_INT32(1),
                            "progress", BCON_INT32(1), "}");
    mongoc_cursor_t *cur;
    const bson_t *doc;
    bson_error_t error;
    int rc = 0;
    dip_bson_append_id_match(&filter, "_id", qid);
    cur = mongoc_collection_find_with_opts(c, &filter, opts, NULL);
    if (mongoc_cursor_next(cur, &doc)) {
        bson_copy_to(doc, out);
        rc = 1;
    } else if (mongoc_cursor_error(cur, &error)) {
        fprintf(stderr,
                "dealimportctl: waiting: the database did not answer: "
                "%s\n",
                error.message);
        rc = -1;
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(opts);
    bson_destroy(&filter);
    return rc;
}

static int report_end(const char *hex, const bson_t *doc, int json)
{
    const char *status = dip_bson_get_str(doc, "status");
    const char *error = dip_bson_get_str(doc, "error");
    long long lines = (long long)dip_bson_get_int(doc, "progress.lines", 0);
    long long added = (long long)dip_bson_get_int(doc, "progress.added", 0);
    long long errors = (long long)dip_bson_get_int(doc, "progress.errors", 0);
    int completed = strcmp(status, "completed") == 0;
    if (json) {
        json_t *o = json_pack("{s:i, s:b, s:s, s:s, s:I, s:I, s:I}", "v", 1,
                              "ok", completed, "id", hex, "status", status,
                              "lines", (json_int_t)lines, "added",
                              (json_int_t)added, "errors", (json_int_t)errors);
        if (o && error)
            json_object_set_new(o, "error", json_string(error));
        ctl_print_json(o);
        json_decref(o);
    } else {
        printf("%s %s: %lld lines, %lld added, %lld line errors%s%s\n", hex,
               status, lines, added, errors, error ? "; " : "",
               error ? error : "");
    }
    fflush(stdout);
    return completed ? CTL_EXIT_OK : CTL_EXIT_IMPORT_FAILED;
}

int ctl_wait_hint_due(const char *status, long long pending_ms, int hinted)
{
    return !hinted && status && strcmp(status, "pending") == 0 &&
           pending_ms >= CTL_WAIT_HINT_MS;
}

int ctl_wait_import(mongoc_client_t *client, const char *db,
                    const bson_oid_t *qid, const char *hex, long interval_ms,
                    int json)
{
    mongoc_collection_t *c = mongoc_client_get_collection(client, db, "queues");
    char last[32] = "";
    int64_t answered = dip_time_mono_ms(), since = answered;
    int rc = -1, hinted = 0;
    while (rc < 0) {
        bson_t doc = BSON_INITIALIZER;
        int got = read_queue(c, qid, &doc);
        if (got == 0) {
            fprintf(stderr, "dealimportctl: import '%s' is gone\n", hex);
            rc = CTL_EXIT_REFUSED;
        } else if (got < 0) {
            if (dip_time_mono_ms() - answered >= GIVE_UP_MS) {
                fprintf(stderr,
                        "dealimportctl: no answer from the database for a "
                        "minute: stopped waiting for '%s' (the import goes "
                        "on)\n",
                        hex);
                rc = CTL_EXIT_UNAVAILABLE;
            }
        } else {
            const char *status = dip_bson_get_str(&doc, "status");
            answered = dip_time_mono_ms();
            if (status && strcmp(status, last) != 0) {
                snprintf(last, sizeof(last), "%s", status);
                if (!dip_ctl_status_final(status))
                    fprintf(stderr, "%s %s\n", hex, status);
            }
            if (ctl_wait_hint_due(status, answered - since, hinted)) {
                fprintf(stderr,
                        "%s still pending after %d s: no supervisor has "
                        "claimed it (is dealimport-supervisor running? "
                        "dealimportctl status); still waiting, Ctrl-C leaves "
                        "it queued\n",
                        hex, CTL_WAIT_HINT_MS / 1000);
                hinted = 1;
            }
            if (status && dip_ctl_status_final(status))
                rc = report_end(hex, &doc, json);
        }
        bson_destroy(&doc);
        if (rc < 0)
            nap(interval_ms);
    }
    mongoc_collection_destroy(c);
    return rc;
}
