/*
 * sup_followup: the error file, the source cleanup and the release of the
 * completion event after an import's final status, run in a child process
 * (see sup_followup.h).
 */
#include "sup_followup.h"
#include "dip_bson.h"
#include "dip_claim.h"
#include "dip_event.h"
#include "dip_exit.h"
#include "dip_log.h"
#include "dip_msg.h"
#include "dip_secrets.h"
#include "dip_mongo_io.h"
#include "dip_storage_io.h"
#include "dip_text.h"
#include "sup_cleanup.h"
#include "sup_errfile.h"
#include "sup_spawn.h"
#include "sup_store.h"
#include "sup_succfile.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *sup_followup_event_type(const char *status, int dry_run)
{
    if (status == NULL)
        return NULL;
    if (strcmp(status, "completed") == 0)
        return dry_run ? DIP_EVENT_DRY_RUN : DIP_EVENT_COMPLETED;
    if (strcmp(status, "failed") == 0)
        return DIP_EVENT_FAILED;
    if (strcmp(status, "cancelled") == 0)
        return DIP_EVENT_CANCELLED;
    return NULL;
}

/* The first document of coll matching filter, copied into out (always
 * initialized); 1 found, 0 not, -1 on error. The read carries maxTimeMS
 * below client's socket timeout (dip_mongo_read_opts), so one the child
 * gave up on does not go on in the server. */
static int find_one(mongoc_client_t *client, mongoc_collection_t *coll,
                    const bson_t *filter, bson_t *out, bson_error_t *e)
{
    bson_t *limit = BCON_NEW("limit", BCON_INT64(1));
    bson_t *opts = dip_mongo_read_opts(client, limit);
    mongoc_cursor_t *c =
        mongoc_collection_find_with_opts(coll, filter, opts, NULL);
    const bson_t *doc;
    int rc = 0;
    bson_init(out);
    if (mongoc_cursor_next(c, &doc)) {
        bson_copy_to_excluding_noinit(doc, out, "", NULL);
        rc = 1;
    } else if (mongoc_cursor_error(c, e)) {
        rc = -1;
    }
    mongoc_cursor_destroy(c);
    bson_destroy(opts);
    bson_destroy(limit);
    return rc;
}

/* What the CRM is told of the import's outcome, from csv_imports; the
 * error and success files from written when this run wrote them (what it
 * recorded on csv_imports), else from csv_imports. */
static void event_details(const bson_t *imp, const bson_t *written, bson_t *d)
{
    static const char *const counts[] = {"total_records", "total_records_added",
                                         "total_errors", "errors_not_stored",
                                         "would_add"};
    bson_iter_t it;
    int64_t n;
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++)
        if (bson_iter_init_find(&it, imp, counts[i]) &&
            dip_bson_iter_int(&it, &n) == 0)
            BSON_APPEND_INT64(d, counts[i], n);
    if (bson_iter_init_find(&it, imp, "status") && BSON_ITER_HOLDS_UTF8(&it))
        BSON_APPEND_UTF8(d, "status", bson_iter_utf8(&it, NULL));
    if (bson_iter_init_find(&it, imp, "error") && BSON_ITER_HOLDS_UTF8(&it))
        BSON_APPEND_UTF8(d, "error", bson_iter_utf8(&it, NULL));
    for (int f = 0; f < 2; f++) {
        const char *name = f == 0 ? "error_file" : "success_file";
        if ((written && bson_iter_init_find(&it, written, name) &&
             BSON_ITER_HOLDS_DOCUMENT(&it)) ||
            (bson_iter_init_find(&it, imp, name) &&
             BSON_ITER_HOLDS_DOCUMENT(&it)))
            bson_append_iter(d, name, -1, &it);
    }
    if (bson_iter_init_find(&it, imp, "source_delete") &&
        BSON_ITER_HOLDS_DOCUMENT(&it))
        bson_append_iter(d, "source_delete", -1, &it);
    if (bson_iter_init_find(&it, imp, "new_stages") &&
        BSON_ITER_HOLDS_DOCUMENT(&it))
        bson_append_iter(d, "new_stages", -1, &it);
    if (bson_iter_init_find(&it, imp, "finished_at") &&
        BSON_ITER_HOLDS_DATE_TIME(&it)) {
        char when[DIP_BSON_ISO_TIME_LEN];
        dip_bson_iso_time(bson_iter_date_time(&it), when, sizeof(when));
        BSON_APPEND_UTF8(d, "finished_at", when);
    }
}

int sup_followup_needed(const sup_followup_facts_t *f)
{
    /* as sup_followup_run's steps 1, 2 and 3 */
    return (f->total_errors > 0 && f->has_source) ||
           (f->success_file && f->has_source) ||
           (f->deletes_source && f->has_source) || f->event_held;
}

/* Sleeps before a step's next try: 1 s, 2 s, ... */
static void step_backoff(int tries)
{
    long ms = SUP_FOLLOWUP_STEP_BACKOFF_MS;
    struct timespec ts;
    for (int i = 1; i < tries && ms < 60000; i++)
        ms *= 2;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* Records on csv_imports that a step was given up: field: {failed: why,
 * given_up_at}, and when written is not NULL, appends the same field to it
 * (what the event carries, without a second read). 0, or -1 with err (the
 * database: the run is tried again). */
static int give_up(mongoc_collection_t *imports, const bson_value_t *qid,
                   const char *field, const char *why, bson_t *written,
                   char *err, size_t errlen)
{
    bson_t f = BSON_INITIALIZER, u = BSON_INITIALIZER, set, sub;
    bson_error_t e;
    int64_t now = dip_bson_now_ms();
    int rc = 0;
    BSON_APPEND_VALUE(&f, "queue_id", qid);
    BSON_APPEND_DOCUMENT_BEGIN(&u, "$set", &set);
    BSON_APPEND_DOCUMENT_BEGIN(&set, field, &sub);
    BSON_APPEND_UTF8(&sub, "failed", why[0] ? why : "(no reason given)");
    BSON_APPEND_DATE_TIME(&sub, "given_up_at", now);
    bson_append_document_end(&set, &sub);
    bson_append_document_end(&u, &set);
    if (!mongoc_collection_update_one(imports, &f, &u, NULL, NULL, &e)) {
        dip_text_format(err, errlen, NULL, "recording that %s was given up: %s",
                        field, e.message);
        rc = -1;
    } else if (written) {
        BSON_APPEND_DOCUMENT_BEGIN(written, field, &sub);
        BSON_APPEND_UTF8(&sub, "failed", why[0] ? why : "(no reason given)");
        BSON_APPEND_DATE_TIME(&sub, "given_up_at", now);
        bson_append_document_end(written, &sub);
    }
    bson_destroy(&f);
    bson_destroy(&u);
    return rc;
}

static int claim(const mongoc_client_t *client, mongoc_collection_t *imports,
                 const char *owner, int64_t now_ms, const bson_oid_t *only,
                 const bson_oid_t *skip, size_t nskip, char out_hex[25],
                 bson_t *doc, char *err, size_t errlen);

/* The source key of the import: csv_imports' followups_source, written by
 * the end when it has follow-ups (null: none), else (an end written before
 * it was, or a value of another type) the queue document's. malloc'd into *out
 * (NULL: the import names no file). 0, or -1 with err filled. */
static int source_key(mongoc_client_t *client, mongoc_collection_t *queues,
                      const bson_t *imp, const bson_value_t *qid, char **out,
                      char *err, size_t errlen)
{
    bson_t filter = BSON_INITIALIZER, q;
    bson_error_t e;
    bson_iter_t it;
    const char *src;
    int found;
    *out = NULL;
    /* A string or null, as the end writes it; anything else is not read
     * (class 11): the queue document says. */
    if (bson_iter_init_find(&it, imp, "followups_source") &&
        BSON_ITER_HOLDS_NULL(&it))
        return 0;
    if (bson_iter_init_find(&it, imp, "followups_source") &&
        BSON_ITER_HOLDS_UTF8(&it)) {
        *out = strdup(bson_iter_utf8(&it, NULL));
        return *out ? 0 : dip_text_say(-1, err, errlen, "out of memory");
    }
    BSON_APPEND_VALUE(&filter, "_id", qid);
    found = find_one(client, queues, &filter, &q, &e);
    bson_destroy(&filter);
    if (found <= 0) {
        dip_text_format(err, errlen, NULL, "reading the queue document: %s",
                        found < 0 ? e.message : "it is gone");
        bson_destroy(&q);
        return -1;
    }
    src = dip_bson_get_str(&q, "csv.0.key");
    if (src != NULL && (*out = strdup(src)) == NULL) {
        bson_destroy(&q);
        return dip_text_say(-1, err, errlen, "out of memory");
    }
    bson_destroy(&q);
    return 0;
}

int sup_followup_run(const dip_config_t *cfg, const char *qid_hex,
                     const char *claim_owner, char *err, size_t errlen)
{
    mongoc_client_t *client = NULL;
    mongoc_database_t *db = NULL;
    mongoc_collection_t *imports = NULL, *queues = NULL, *events = NULL;
    dip_storage_t *st = NULL;
    bson_t filter = BSON_INITIALIZER, imp, header, done = BSON_INITIALIZER,
           details = BSON_INITIALIZER, set, written = BSON_INITIALIZER;
    bson_value_t qid;
    bson_error_t e;
    bson_iter_t it;
    char *src = NULL;
    char why[1024];
    int rc = -1, found, has_header = 0, wrote = 0, gave_up = 0;
    int held, cleans, deferred = 0, success_wanted;
    int64_t total_errors, not_stored, runs;
    const char *dbname = NULL;

    bson_init(&imp);
    if (!dip_msg_is_oid(qid_hex)) {
        dip_text_format(err, errlen, NULL, "'%s' is not an import id", qid_hex);
        goto cleanup;
    }
    qid.value_type = BSON_TYPE_OID;
    bson_oid_init_from_string(&qid.value.v_oid, qid_hex);
    {
        client = dip_mongo_client_new_bounded(
            cfg->mongodb_uri, "dealimport-followup", cfg->lease_s * 1000,
            &dbname, err, errlen);
        if (client == NULL)
            goto cleanup;
        db = mongoc_client_get_database(client, dbname);
        imports = mongoc_client_get_collection(client, dbname, "csv_imports");
        queues = mongoc_client_get_collection(client, dbname, "queues");
        events =
            mongoc_client_get_collection(client, dbname, DIP_EVENT_COLLECTION);
    }
    st = dip_storage_new(cfg, err, errlen);
    if (st == NULL)
        goto cleanup;

    bson_destroy(&imp);
    if (claim_owner != NULL) {
        /* The claim answers the document: no read of it. */
        char hex[25];
        found = claim(client, imports, claim_owner, dip_bson_now_ms(),
                      &qid.value.v_oid, NULL, 0, hex, &imp, err, errlen);
        if (found < 0)
            goto cleanup;
        if (found == 0) {
            dip_log(DIP_LOG_DEBUG, qid_hex,
                    "follow-ups done or another's: nothing to do");
            rc = 0;
            goto cleanup;
        }
    } else {
        BSON_APPEND_VALUE(&filter, "queue_id", &qid);
        found = find_one(client, imports, &filter, &imp, &e);
        if (found <= 0) {
            dip_text_format(err, errlen, NULL, "reading csv_imports: %s",
                            found < 0 ? e.message : "no document yet");
            goto cleanup;
        }
    }
    if (source_key(client, queues, &imp, &qid, &src, err, errlen) < 0)
        goto cleanup;
    total_errors = dip_bson_get_int(&imp, "total_errors", 0);
    not_stored = dip_bson_get_int(&imp, "errors_not_stored", 0);
    /* An event may be held unless the end said none is (a boolean false
     * only: anything else is released, the safe side). */
    held = !(bson_iter_init_find(&it, &imp, "followups_event") &&
             BSON_ITER_HOLDS_BOOL(&it) && !bson_iter_bool(&it));
    /* The end says whether a success file is wanted (the queue
     * document asked; a boolean true only). */
    success_wanted = bson_iter_init_find(&it, &imp, "success_file_wanted") &&
                     BSON_ITER_HOLDS_BOOL(&it) && bson_iter_bool(&it);
    cleans = src && cfg->delete_source != DIP_DELETE_SOURCE_NEVER &&
             !bson_iter_init_find(&it, &imp, "source_delete");
    /* This run counted before any step: a run that ends before its last
     * still counts. Set, not $inc: a value of another type (class 11)
     * counts as none and is replaced, never fails the run. */
    runs = dip_bson_get_int(&imp, "followups_runs", 0) + 1;
    if (runs < 1)
        runs = 1;
    bson_reinit(&filter);
    BSON_APPEND_VALUE(&filter, "queue_id", &qid);
    BSON_APPEND_DOCUMENT_BEGIN(&done, "$set", &set);
    BSON_APPEND_INT64(&set, "followups_runs", runs);
    bson_append_document_end(&done, &set);
    if (!mongoc_collection_update_one(imports, &filter, &done, NULL, NULL,
                                      &e)) {
        dip_text_format(err, errlen, NULL, "counting the follow-ups' run: %s",
                        e.message);
        goto cleanup;
    }
    bson_reinit(&done);
    if (runs > SUP_FOLLOWUP_RUNS_MAX) {
        /* Earlier runs ended before recording anything: whatever step
         * ended them would end this one too. */
        snprintf(why, sizeof(why),
                 "the follow-ups did not finish in %lld runs (each one's "
                 "process ended before it could say why)",
                 (long long)(runs - 1));
        if (total_errors > 0 && src &&
            !bson_iter_init_find(&it, &imp, "error_file")) {
            if (give_up(imports, &qid, "error_file", why, &written, err,
                        errlen) < 0)
                goto cleanup;
            wrote = 1;
            gave_up++;
        }
        if (src && success_wanted &&
            !bson_iter_init_find(&it, &imp, "success_file")) {
            if (give_up(imports, &qid, "success_file", why, &written, err,
                        errlen) < 0)
                goto cleanup;
            wrote = 1;
            gave_up++;
        }
        if (src && cfg->delete_source != DIP_DELETE_SOURCE_NEVER &&
            !bson_iter_init_find(&it, &imp, "source_delete")) {
            if (give_up(imports, &qid, "source_delete", why, NULL, err,
                        errlen) < 0)
                goto cleanup;
            gave_up++;
            bson_reinit(&filter);
            BSON_APPEND_VALUE(&filter, "queue_id", &qid);
            bson_destroy(&imp);
            if (find_one(client, imports, &filter, &imp, &e) <= 0) {
                dip_text_format(err, errlen, NULL, "reading csv_imports: %s",
                                e.message);
                goto cleanup;
            }
        }
        dip_log(DIP_LOG_ERR, qid_hex, "%s: the steps not done are given up",
                why);
        goto release;
    }

    /* 1. The error file, once; tried a bounded number of times, then
     * given up and recorded so (error_file: {failed}), which the event
     * carries; the other steps go on either way. Recorded at once when a
     * later step reads it (the cleanup) or is told of it before the end
     * (the event); else with step 4, one write: a crash before it writes
     * the same file again. */
    if (total_errors > 0 && src &&
        !bson_iter_init_find(&it, &imp, "error_file")) {
        char why1[1024] = "";
        int done1 = 0;
        if (bson_iter_init_find(&it, &imp, "header") &&
            BSON_ITER_HOLDS_ARRAY(&it)) {
            const uint8_t *data;
            uint32_t len;
            bson_iter_array(&it, &len, &data);
            has_header = bson_init_static(&header, data, len);
        }
        for (int tries = 1; !done1; tries++) {
            sup_errfile_result_t ef;
            int w;
            memset(&ef, 0, sizeof(ef));
            w = sup_errfile_write(client, dbname, st, src, &qid,
                                  has_header ? &header : NULL, not_stored, &ef,
                                  why1, sizeof(why1));
            if (w == SUP_ERRFILE_OK && (held || cleans))
                w = sup_errfile_record(db, &qid, &ef, why1, sizeof(why1));
            else if (w == SUP_ERRFILE_OK)
                deferred = 1;
            if (w == SUP_ERRFILE_OK) {
                dip_log(DIP_LOG_INFO, qid_hex,
                        "error file '%s': %lld rows, %lld bytes", ef.key,
                        (long long)ef.rows, (long long)ef.bytes);
                /* The event tells what csv_imports now says, as
                 * recorded: no second read. */
                sup_errfile_append_result(&written, "error_file", &ef);
                done1 = 1;
            } else if (tries >= SUP_FOLLOWUP_STEP_TRIES) {
                sup_errfile_result_release(&ef);
                if (give_up(imports, &qid, "error_file", why1, &written, err,
                            errlen) < 0)
                    goto cleanup;
                dip_log(DIP_LOG_ERR, qid_hex,
                        "error file given up after %d tries: %s", tries, why1);
                gave_up++;
                break;
            } else {
                step_backoff(tries);
            }
            sup_errfile_result_release(&ef);
        }
        wrote = 1;
    }

    /* 1b. The success file, once, when asked for; bounded as the error
     * file is, and given up at once when the source is gone or is another
     * object (no retry brings it back). */
    if (src && success_wanted &&
        !bson_iter_init_find(&it, &imp, "success_file")) {
        char why2[1024] = "";
        for (int tries = 1;; tries++) {
            sup_errfile_result_t sf;
            int w;
            memset(&sf, 0, sizeof(sf));
            w = sup_succfile_write(db, st, src, &qid, &sf, why2, sizeof(why2));
            if (w == SUP_SUCCFILE_OK)
                w = sup_succfile_record(db, &qid, &sf, why2, sizeof(why2));
            if (w == SUP_SUCCFILE_OK) {
                dip_log(DIP_LOG_INFO, qid_hex,
                        "success file '%s': %lld rows, %lld bytes", sf.key,
                        (long long)sf.rows, (long long)sf.bytes);
                sup_errfile_append_result(&written, "success_file", &sf);
                sup_errfile_result_release(&sf);
                break;
            }
            sup_errfile_result_release(&sf);
            if (w == SUP_SUCCFILE_ESOURCE || tries >= SUP_FOLLOWUP_STEP_TRIES) {
                if (give_up(imports, &qid, "success_file", why2, &written, err,
                            errlen) < 0)
                    goto cleanup;
                dip_log(DIP_LOG_ERR, qid_hex,
                        "success file given up after %d tries: %s", tries,
                        why2);
                gave_up++;
                break;
            }
            step_backoff(tries);
        }
        wrote = 1;
    }

    /* 2. The source, under the policy (sup_cleanup keeps it unless the
     * import completed for real and its error file is written); tried a
     * bounded number of times, then given up (source_delete: {failed}). */
    if (cleans) {
        for (int tries = 1;; tries++) {
            int c = sup_cleanup_source(client, dbname, st, cfg->delete_source,
                                       &qid, src, NULL, why, sizeof(why));
            if (c == SUP_CLEANUP_DELETED) {
                dip_log(DIP_LOG_INFO, qid_hex, "source '%s' deleted%s%s", src,
                        why[0] ? ": " : "", why);
                break;
            }
            if (c == SUP_CLEANUP_KEPT) {
                dip_log(DIP_LOG_INFO, qid_hex, "source '%s' kept: %s", src,
                        why);
                break;
            }
            if (tries >= SUP_FOLLOWUP_STEP_TRIES) {
                if (give_up(imports, &qid, "source_delete", why, NULL, err,
                            errlen) < 0)
                    goto cleanup;
                dip_log(DIP_LOG_ERR, qid_hex,
                        "deleting the source '%s' given up after %d tries: %s",
                        src, tries, why);
                gave_up++;
                bson_reinit(&filter);
                BSON_APPEND_VALUE(&filter, "queue_id", &qid);
                bson_destroy(&imp);
                if (find_one(client, imports, &filter, &imp, &e) <= 0) {
                    dip_text_format(err, errlen, NULL,
                                    "reading csv_imports: %s", e.message);
                    goto cleanup;
                }
                break;
            }
            step_backoff(tries);
        }
    }

    /* 3. The completion event, with the final figures, when one may be
     * held (an end that recorded none said so). */
release:
    if (held) {
        event_details(&imp, wrote ? &written : NULL, &details);
        if (dip_event_release(events, &qid, &details, err, errlen) < 0)
            goto cleanup;
    }

    /* 4. Done, with the error file when step 1 left it to this write. */
    bson_reinit(&filter);
    BSON_APPEND_VALUE(&filter, "queue_id", &qid);
    BSON_APPEND_DOCUMENT_BEGIN(&done, "$set", &set);
    if (deferred && bson_iter_init_find(&it, &written, "error_file"))
        bson_append_iter(&set, "error_file", -1, &it);
    BSON_APPEND_DATE_TIME(&set, "followups_done_at", dip_bson_now_ms());
    bson_append_document_end(&done, &set);
    if (!mongoc_collection_update_one(imports, &filter, &done, NULL, NULL,
                                      &e)) {
        dip_text_format(err, errlen, NULL, "recording the follow-ups: %s",
                        e.message);
        goto cleanup;
    }
    rc = gave_up > 0 ? 1 : 0;
cleanup:
    free(src);
    bson_destroy(&filter);
    bson_destroy(&imp);
    bson_destroy(&done);
    bson_destroy(&details);
    bson_destroy(&written);
    dip_storage_destroy(&st);
    if (events)
        mongoc_collection_destroy(events);
    if (queues)
        mongoc_collection_destroy(queues);
    if (imports)
        mongoc_collection_destroy(imports);
    if (db)
        mongoc_database_destroy(db);
    if (client)
        dip_mongo_client_close(client);
    return rc;
}

/* sup_followup_claim, of the one import only when only is set; with doc
 * not NULL, the claimed csv_imports document as the claim left it is
 * copied there (initialized either way). */
static int claim(const mongoc_client_t *client, mongoc_collection_t *imports,
                 const char *owner, int64_t now_ms, const bson_oid_t *only,
                 const bson_oid_t *skip, size_t nskip, char out_hex[25],
                 bson_t *doc, char *err, size_t errlen)
{
    bson_t query = BSON_INITIALIZER, update = BSON_INITIALIZER, reply, arr,
           child, set, in;
    mongoc_find_and_modify_opts_t *opts = mongoc_find_and_modify_opts_new();
    bson_error_t e;
    bson_iter_t it;
    int rc = -1;
    BSON_APPEND_DOCUMENT_BEGIN(&query, "status", &in);
    BSON_APPEND_ARRAY_BEGIN(&in, "$in", &arr);
    BSON_APPEND_UTF8(&arr, "0", "completed");
    BSON_APPEND_UTF8(&arr, "1", "failed");
    BSON_APPEND_UTF8(&arr, "2", "cancelled");
    bson_append_array_end(&in, &arr);
    bson_append_document_end(&query, &in);
    BSON_APPEND_DOCUMENT_BEGIN(&query, "finished_at", &child);
    BSON_APPEND_BOOL(&child, "$exists", true);
    bson_append_document_end(&query, &child);
    BSON_APPEND_DOCUMENT_BEGIN(&query, "followups_done_at", &child);
    BSON_APPEND_BOOL(&child, "$exists", false);
    bson_append_document_end(&query, &child);
    dip_claim_append_free(&query, "followups_lease", now_ms);
    if (only) {
        BSON_APPEND_OID(&query, "queue_id", only);
    } else if (nskip > 0) {
        /* the sweep leaves the imports told to this supervisor, whose
         * children claim them by id: the same import is not claimed
         * twice, one child doing the work and one finding nothing */
        bson_t nin, ids;
        char k[16];
        const char *key;
        BSON_APPEND_DOCUMENT_BEGIN(&query, "queue_id", &nin);
        BSON_APPEND_ARRAY_BEGIN(&nin, "$nin", &ids);
        for (size_t i = 0; i < nskip; i++) {
            size_t kl = bson_uint32_to_string((uint32_t)i, &key, k, sizeof(k));
            bson_append_oid(&ids, key, (int)kl, &skip[i]);
        }
        bson_append_array_end(&nin, &ids);
        bson_append_document_end(&query, &nin);
    }
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    dip_claim_append_take(&set, "followups_lease", now_ms,
                          SUP_FOLLOWUP_LEASE_MS, "followups_by", owner);
    bson_append_document_end(&update, &set);
    mongoc_find_and_modify_opts_set_update(opts, &update);
    if (doc != NULL)
        bson_init(doc);
    if (!dip_mongo_take_new(client, imports, &query, opts, &reply, &e)) {
        dip_text_format(err, errlen, NULL,
                        "claiming an import's follow-ups: %s", e.message);
        /* the reply is initialized even on failure */
        bson_destroy(&reply);
        goto cleanup;
    }
    rc = 0;
    if (bson_iter_init(&it, &reply) &&
        bson_iter_find_descendant(&it, "value.queue_id", &it) &&
        BSON_ITER_HOLDS_OID(&it)) {
        bson_oid_to_string(bson_iter_oid(&it), out_hex);
        rc = 1;
        if (doc != NULL) {
            bson_t view;
            if (dip_bson_reply_value(&reply, &view))
                bson_concat(doc, &view);
        }
    }
    bson_destroy(&reply);
cleanup:
    mongoc_find_and_modify_opts_destroy(opts);
    bson_destroy(&query);
    bson_destroy(&update);
    return rc;
}

int sup_followup_claim(const mongoc_client_t *client,
                       mongoc_collection_t *imports, const char *owner,
                       int64_t now_ms, char out_hex[25], char *err,
                       size_t errlen)
{
    return claim(client, imports, owner, now_ms, NULL, NULL, 0, out_hex, NULL,
                 err, errlen);
}

/* --- the loop's side ------------------------------------------------------ */

typedef struct child {
    pid_t pid;
    char qid[25];
    int by_id; /* started for a told end: its child claims by the id */
} child_t;

struct sup_followups {
    const dip_config_t *cfg; /* borrowed */
    char *owner, *exe;
    char *const *envp; /* borrowed */
    mongoc_collection_t *imports;
    child_t children[SUP_FOLLOWUP_MAX];
    size_t n;
    int64_t next_ms;
    /* Ends that have follow-ups, told by sup_followups_poke, claimed by
     * their id (one command each) before any sweep. */
    bson_oid_t poked[SUP_FOLLOWUP_POKED_MAX];
    size_t npoked;
    int sweep_full; /* the last sweep stopped at SUP_FOLLOWUP_MAX */
    /* the loop's client (borrowed): the claim's maxTimeMS is its */
    const mongoc_client_t *client;
};

sup_followups_t *sup_followups_new(const dip_config_t *cfg, const char *owner,
                                   const char *exe, char *const *envp,
                                   mongoc_client_t *client, const char *db,
                                   char *err, size_t errlen)
{
    sup_followups_t *self = calloc(1, sizeof(*self));
    if (self == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    self->cfg = cfg;
    self->envp = envp;
    self->owner = strdup(owner);
    self->exe = strdup(exe);
    if (self->owner == NULL || self->exe == NULL) {
        snprintf(err, errlen, "out of memory");
        sup_followups_destroy(&self);
        return NULL;
    }
    self->client = client;
    self->imports = mongoc_client_get_collection(client, db, "csv_imports");
    return self;
}

void sup_followups_destroy(sup_followups_t **self_p)
{
    sup_followups_t *self;
    if (self_p == NULL || *self_p == NULL)
        return;
    self = *self_p;
    /* Children finish on their own; their claims cover them. */
    if (self->imports)
        mongoc_collection_destroy(self->imports);
    free(self->owner);
    free(self->exe);
    free(self);
    *self_p = NULL;
}

void sup_followups_poke(sup_followups_t *self, const bson_oid_t *qid)
{
    if (self->npoked < SUP_FOLLOWUP_POKED_MAX)
        bson_oid_copy(qid, &self->poked[self->npoked++]);
    else
        self->next_ms = 0; /* too many told at once: a sweep finds them */
}

/* Starts the child for qid; with claims set, it claims the follow-ups
 * itself (for this supervisor), which answers it csv_imports whole. */
static int start(sup_followups_t *self, const char *qid, int claims)
{
    char opt[] = "--follow-up", opt_secrets[] = "--secrets-fd", fd[16];
    char opt_claim[] = "--claim-for";
    char id[25], err[512];
    char *argv[] = {self->exe, opt,       id,          opt_secrets,
                    fd,        opt_claim, self->owner, NULL};
    if (!claims)
        argv[5] = NULL;
    sup_spawn_opts_t o;
    int sfd;
    pid_t pid;
    snprintf(id, sizeof(id), "%s", qid);
    snprintf(fd, sizeof(fd), "%d", SUP_SPAWN_SECRETS_FD);
    sfd = dip_secrets_pipe(self->cfg, NULL, err, sizeof(err));
    if (sfd < 0) {
        dip_log(DIP_LOG_ERR, qid, "cannot start its follow-ups: %s", err);
        return -1;
    }
    sup_spawn_opts_init(&o);
    o.path = self->exe;
    o.argv = argv;
    o.envp = self->envp;
    o.cpu_s = self->cfg->worker_cpu_s;
    o.nofile = 256;
    o.cgroup_fd = -1;
    o.secrets_fd = sfd;
    pid = sup_spawn_start(&o, err, sizeof(err));
    close(sfd);
    if (pid < 0) {
        dip_log(DIP_LOG_ERR, qid, "cannot start its follow-ups: %s", err);
        return -1;
    }
    self->children[self->n].pid = pid;
    memcpy(self->children[self->n].qid, qid, sizeof(self->children[0].qid));
    self->children[self->n].by_id = claims;
    self->n++;
    return 0;
}

int sup_followups_tick(sup_followups_t *self, int64_t now_ms)
{
    int64_t wall = dip_bson_now_ms();
    char qid[25], err[512];
    int rc;
    /* The ends just told, by their id: no sweep for them, and no claim
     * here: the child claims by the id, and that claim answers it the
     * document it would otherwise read. One whose follow-ups another
     * supervisor took, or that are done, ends its child at once. */
    while (self->npoked > 0 && self->n < SUP_FOLLOWUP_MAX) {
        bson_oid_to_string(&self->poked[0], qid);
        memmove(&self->poked[0], &self->poked[1],
                (self->npoked - 1) * sizeof(self->poked[0]));
        self->npoked--;
        if (start(self, qid, 1) < 0)
            return 0;
    }
    /* The sweep, at the poll's pace: what a crash or another supervisor
     * left, and what failed before. */
    if (now_ms < self->next_ms)
        return 0;
    self->next_ms = now_ms + self->cfg->poll_ms;
    self->sweep_full = 0;
    while (self->n < SUP_FOLLOWUP_MAX) {
        bson_oid_t skip[SUP_FOLLOWUP_MAX + SUP_FOLLOWUP_POKED_MAX];
        size_t nskip = 0;
        for (size_t i = 0; i < self->n; i++)
            if (self->children[i].by_id)
                bson_oid_init_from_string(&skip[nskip++],
                                          self->children[i].qid);
        for (size_t i = 0; i < self->npoked; i++)
            skip[nskip++] = self->poked[i];
        rc = claim(self->client, self->imports, self->owner, wall, NULL, skip,
                   nskip, qid, NULL, err, sizeof(err));
        if (rc < 0) {
            dip_log(DIP_LOG_WARNING, NULL, "%s", err);
            return -1;
        }
        if (rc == 0 || start(self, qid, 0) < 0)
            return 0;
    }
    self->sweep_full = 1;
    return 0;
}

int sup_followups_reaped(sup_followups_t *self, pid_t pid, int wait_status)
{
    for (size_t i = 0; i < self->n; i++) {
        if (self->children[i].pid != pid)
            continue;
        int gave_up = WIFEXITED(wait_status) &&
                      WEXITSTATUS(wait_status) == DIP_EXIT_GAVE_UP;
        if (!(WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0) &&
            !gave_up)
            /* Its claim runs out and the follow-ups are tried again. */
            dip_log(DIP_LOG_WARNING, self->children[i].qid,
                    "the import's follow-ups did not finish (exit %d, signal "
                    "%d); tried again in %d minutes",
                    WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : -1,
                    WIFSIGNALED(wait_status) ? WTERMSIG(wait_status) : 0,
                    SUP_FOLLOWUP_LEASE_MS / 60000);
        self->children[i] = self->children[--self->n];
        /* A slot is free: the next one may start at once, if the last
         * sweep left some behind (the told ones go first anyway). */
        if (self->sweep_full)
            self->next_ms = 0;
        return gave_up ? 2 : 1;
    }
    return 0;
}
