/*
 * sup_store_finish: the final write of an import and the repair of one
 * whose import log never landed. The final counts are the worker's exact
 * accounting, never a count of the database: a count grows with the import
 * and, on a slow server, outlasts any fixed bound (class 1), so an end that
 * waited for it would never land. The accounting is exact through crashes,
 * resumes and takeovers: a resumed worker starts from its checkpoint's
 * totals (stored with the progress they belong to, in one write), and a
 * deal it writes again meets its earlier copy in the unique index
 * (account_id, import.queue_id, import.line): that duplicate is counted as
 * written, once, since the checkpoint's totals did not count it. Line
 * errors likewise: the unique (queue_id, line) index keeps one of each,
 * and the totals restart from the checkpoint's.
 */
#include "sup_store_priv.h"
#include "sup_followup.h"
#include "sup_succfile.h"
#include "dip_bson.h"
#include "dip_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The first errors by line, for csv_imports.logs. */
static void append_logs(sup_store_t *self, const bson_value_t *qid, bson_t *set)
{
    bson_t *filter = bson_new();
    bson_t *opts =
        BCON_NEW("sort", "{", "line", BCON_INT32(1), "}", "limit",
                 BCON_INT64(SUP_STORE_LOGS_KEEP), "projection", "{", "_id",
                 BCON_INT32(0), "line", BCON_INT32(1), "field", BCON_INT32(1),
                 "message", BCON_INT32(1), "}");
    mongoc_cursor_t *c;
    const bson_t *doc;
    bson_t arr;
    int i = 0;
    BSON_APPEND_VALUE(filter, "queue_id", qid);
    /* Bounded by the server too (class 2); an answer cut short only
     * shortens the excerpt, all errors stay in csv_import_errors. */
    BSON_APPEND_INT64(opts, "maxTimeMS", dip_mongo_max_time_ms(self->client));
    c = mongoc_collection_find_with_opts(self->errors, filter, opts, NULL);
    BSON_APPEND_ARRAY_BEGIN(set, "logs", &arr);
    while (mongoc_cursor_next(c, &doc)) {
        char k[24];
        snprintf(k, sizeof(k), "%d", i++);
        BSON_APPEND_DOCUMENT(&arr, k, doc);
    }
    bson_append_array_end(set, &arr);
    mongoc_cursor_destroy(c);
    bson_destroy(filter);
    bson_destroy(opts);
}

/* The fence of the final status (see finish_queue). */
static bson_t *finish_filter(sup_store_t *self, const bson_value_t *qid,
                             int64_t epoch, const sup_store_result_t *r)
{
    bson_t *filter;
    if (epoch >= 0)
        return sup_store_owned(self, qid, epoch);
    filter = bson_new();
    BSON_APPEND_VALUE(filter, "_id", qid);
    BSON_APPEND_UTF8(filter, "status", r->status);
    return filter;
}

/* 1 when an update failed because its result would be too large. */
static int too_large(int rc, const bson_error_t *error)
{
    return rc == SUP_STORE_EFAIL && error->domain == MONGOC_ERROR_SERVER &&
           (error->code == 17419 || error->code == 10334);
}

/* The final figures, as `progress` holds them: what sup_store_repair_log
 * reads when csv_imports did not land after the final status. */
static void append_figures(bson_t *set, const char *prefix, int64_t lines,
                           int64_t added, int64_t nerrors, int64_t not_stored)
{
    char k[48];
    snprintf(k, sizeof(k), "%slines", prefix);
    BSON_APPEND_INT64(set, k, lines);
    snprintf(k, sizeof(k), "%sadded", prefix);
    BSON_APPEND_INT64(set, k, added);
    snprintf(k, sizeof(k), "%serrors", prefix);
    BSON_APPEND_INT64(set, k, nerrors + not_stored);
    snprintf(k, sizeof(k), "%serrors_not_stored", prefix);
    BSON_APPEND_INT64(set, k, not_stored);
}

/* The final status alone, for a document too large to take it with its
 * figures (the CRM's part of it near 16 MiB): room is made by removing
 * this service's own working fields (the checkpoint and the claim's
 * fields, which a final import no longer needs). progress is replaced by
 * the four final figures alone (as many bytes as a progress holding them
 * already took, never more than the removed fields free), so that a
 * repair after a crash before csv_imports still has them; with_figures 0
 * drops it too, for a document that cannot take even that. */
static int finish_alone(sup_store_t *self, const bson_value_t *qid,
                        int64_t epoch, const sup_store_result_t *r,
                        int with_figures, int64_t lines, int64_t added,
                        int64_t nerrors, int64_t not_stored, int64_t now,
                        bson_error_t *error, char *err, size_t errlen)
{
    bson_t *filter = finish_filter(self, qid, epoch, r), *update = bson_new(),
           set, unset, progress;
    BSON_APPEND_DOCUMENT_BEGIN(update, "$set", &set);
    BSON_APPEND_UTF8(&set, "status", r->status);
    BSON_APPEND_BOOL(&set, "in_progress", false);
    BSON_APPEND_DATE_TIME(&set, "finished_at", now);
    BSON_APPEND_BOOL(&set, "log_pending", true);
    if (with_figures) {
        BSON_APPEND_DOCUMENT_BEGIN(&set, "progress", &progress);
        append_figures(&progress, "", lines, added, nerrors, not_stored);
        bson_append_document_end(&set, &progress);
    }
    bson_append_document_end(update, &set);
    BSON_APPEND_DOCUMENT_BEGIN(update, "$unset", &unset);
    BSON_APPEND_UTF8(&unset, "lease_expires_at", "");
    BSON_APPEND_UTF8(&unset, "checkpoint", "");
    if (!with_figures)
        BSON_APPEND_UTF8(&unset, "progress", "");
    BSON_APPEND_UTF8(&unset, "error", "");
    BSON_APPEND_UTF8(&unset, "updated_at", "");
    BSON_APPEND_UTF8(&unset, "account_key", "");
    BSON_APPEND_UTF8(&unset, "account_slot", "");
    BSON_APPEND_UTF8(&unset, "claimed_at", "");
    bson_append_document_end(update, &unset);
    dip_log(DIP_LOG_WARNING, NULL,
            "the queue document is too large for the final figures; "
            "writing its final status '%s' alone%s (its error is in "
            "csv_imports)",
            r->status, with_figures ? " with its counts" : "");
    return sup_store_update_take_e(self, filter, update,
                                   "writing the final status alone", error, err,
                                   errlen);
}

/* The final status on the queue document: fenced by owner and epoch, or,
 * for an import no supervisor holds (epoch < 0), by the status an atomic
 * move already gave it. A repeat matches again and changes nothing new. */
static int finish_queue(sup_store_t *self, const bson_value_t *qid,
                        int64_t epoch, const sup_store_result_t *r,
                        int64_t lines, int64_t added, int64_t nerrors,
                        int64_t not_stored, int64_t now, char *err,
                        size_t errlen)
{
    bson_t *filter = NULL, *update = bson_new(), set, unset;
    bson_error_t error;
    int rc;
    filter = finish_filter(self, qid, epoch, r);
    BSON_APPEND_DOCUMENT_BEGIN(update, "$set", &set);
    BSON_APPEND_UTF8(&set, "status", r->status);
    BSON_APPEND_BOOL(&set, "in_progress", false);
    BSON_APPEND_DATE_TIME(&set, "finished_at", now);
    BSON_APPEND_DATE_TIME(&set, "updated_at", now);
    append_figures(&set, "progress.", lines, added, nerrors, not_stored);
    /* The end writes no progress of its own: this is the last one. */
    if (r->has_bytes) {
        BSON_APPEND_INT64(&set, "progress.bytes", r->bytes);
        BSON_APPEND_INT64(&set, "progress.bytes_total", r->bytes_total);
    }
    if (r->header && r->header_unsaved)
        BSON_APPEND_ARRAY(&set, "header", r->header);
    if (r->checkpoint)
        BSON_APPEND_DOCUMENT(&set, "checkpoint", r->checkpoint);
    if (r->error)
        BSON_APPEND_UTF8(&set, "error", r->error);
    /* csv_imports follows; until it lands, a supervisor that died in
     * between leaves this mark for sup_store_repair_log. */
    BSON_APPEND_BOOL(&set, "log_pending", true);
    bson_append_document_end(update, &set);
    BSON_APPEND_DOCUMENT_BEGIN(update, "$unset", &unset);
    BSON_APPEND_UTF8(&unset, "lease_expires_at", "");
    if (!r->error)
        BSON_APPEND_UTF8(&unset, "error", "");
    bson_append_document_end(update, &unset);
    rc = sup_store_update_take_e(
        self, filter, update, "writing the final status", &error, err, errlen);
    /* Too large for the figures: the end lands all the same, so that the
     * import holds no slot; with the counts while they fit. */
    for (int with_figures = 1; with_figures >= 0 && too_large(rc, &error);
         with_figures--)
        rc = finish_alone(self, qid, epoch, r, with_figures, lines, added,
                          nerrors, not_stored, now, &error, err, errlen);
    return rc;
}

/* A value of the queue document as stored (an ObjectId, or the hex string
 * the CRM wrote), copied to csv_imports. */
static void copy_field(const bson_t *queue_doc, const char *key, bson_t *to)
{
    bson_iter_t it;
    if (bson_iter_init_find(&it, queue_doc, key))
        BSON_APPEND_VALUE(to, key, bson_iter_value(&it));
}

/* csv_imports' dry_run, and a dry run's verdict: what it would have added
 * and the stages it would have created. */
static void append_dry_run(const bson_t *queue_doc, const sup_store_result_t *r,
                           bson_t *set)
{
    bson_iter_t it;
    bson_t ns, names;
    int64_t would_add = r->would_add;
    int dry = r->dry_run || (bson_iter_init_find(&it, queue_doc, "dry_run") &&
                             BSON_ITER_HOLDS_BOOL(&it) && bson_iter_bool(&it));
    BSON_APPEND_BOOL(set, "dry_run", dry);
    if (!dry)
        return;
    if (!r->dry_run)
        would_add = dip_bson_get_int(queue_doc, "checkpoint.would_add", 0);
    BSON_APPEND_INT64(set, "would_add", would_add);
    BSON_APPEND_DOCUMENT_BEGIN(set, "new_stages", &ns);
    BSON_APPEND_INT64(
        &ns, "count",
        r->dry_run
            ? r->new_stages_count
            : dip_bson_get_int(queue_doc, "checkpoint.stages_created", 0));
    if (r->new_stages) {
        BSON_APPEND_ARRAY(&ns, "names", r->new_stages);
    } else {
        BSON_APPEND_ARRAY_BEGIN(&ns, "names", &names);
        bson_append_array_end(&ns, &names);
    }
    bson_append_document_end(set, &ns);
}

/* The deals of the import past line `lines`: those a worker wrote after
 * its last report (killed between an insert and the report; the server
 * carries an insert out whoever waits for it), which the figures the end
 * is given do not count. One aggregate on the unique index's range
 * (account_id, import.queue_id, import.line > lines, partial on import):
 * its cost is the batches in flight past the report, never the import's
 * size (class 1), and it carries maxTimeMS (class 2). *n and *last (the
 * highest such line, 0 if none) are set; 0, or -1 with err filled. */
static int count_past(sup_store_t *self, const bson_t *queue_doc,
                      const bson_value_t *qid, int64_t lines, int64_t *n,
                      int64_t *last, char *err, size_t errlen)
{
    bson_oid_t account;
    bson_t *pipeline, *opts;
    mongoc_cursor_t *c;
    const bson_t *doc;
    bson_error_t error;
    int rc = 0;
    *n = *last = 0;
    /* The worker writes both as ObjectIds; with either not one, it wrote
     * no deal. */
    if (qid->value_type != BSON_TYPE_OID ||
        dip_bson_get_oid(queue_doc, "account_id", &account) != 0)
        return 0;
    pipeline = BCON_NEW(
        "pipeline", "[", "{", "$match", "{", "account_id", BCON_OID(&account),
        "import.queue_id", BCON_OID(&qid->value.v_oid), "import.line", "{",
        "$gt", BCON_INT64(lines), "}", "import", "{", "$exists",
        BCON_BOOL(true), "}", "}", "}", "{", "$group", "{", "_id", BCON_NULL,
        "n", "{", "$sum", BCON_INT32(1), "}", "last", "{", "$max",
        BCON_UTF8("$import.line"), "}", "}", "}", "]");
    opts = dip_mongo_read_opts(self->client, NULL);
    c = mongoc_collection_aggregate(self->deals, MONGOC_QUERY_NONE, pipeline,
                                    opts, NULL);
    if (mongoc_cursor_next(c, &doc)) {
        *n = dip_bson_get_int(doc, "n", 0);
        *last = dip_bson_get_int(doc, "last", 0);
    }
    if (mongoc_cursor_error(c, &error)) {
        snprintf(err, errlen,
                 "counting the deals written past the last report failed: %s",
                 error.message);
        rc = -1;
    }
    mongoc_cursor_destroy(c);
    bson_destroy(pipeline);
    bson_destroy(opts);
    return rc;
}

void sup_store_append_counts(int dry_run, int64_t updated, int64_t unchanged,
                             bson_t *to)
{
    BSON_APPEND_INT64(to, dry_run ? "would_update" : "total_records_updated",
                      updated);
    BSON_APPEND_INT64(
        to, dry_run ? "would_leave_unchanged" : "total_records_unchanged",
        unchanged);
}

int sup_store_finish(sup_store_t *self, const bson_t *queue_doc, int64_t epoch,
                     const sup_store_result_t *r, char *err, size_t errlen)
{
    bson_error_t error;
    int64_t added, errors, nerrors, not_stored, lines, now = dip_bson_now_ms();
    bson_t *filter = NULL, *update = NULL, set, soi, notes;
    const bson_value_t *qid;
    const char *name;
    int rc = SUP_STORE_EFAIL;
    bson_iter_t it, d;

    if (!bson_iter_init_find(&it, queue_doc, "_id")) {
        snprintf(err, errlen, "queue document without an _id");
        return SUP_STORE_EFAIL;
    }
    qid = bson_iter_value(&it);
    /* The counts: the worker's, or those its last checkpoint stored. */
    if (r->counted) {
        added = r->added;
        errors = r->errors;
    } else {
        added = dip_bson_get_int(queue_doc, "progress.added", 0);
        errors = dip_bson_get_int(queue_doc, "progress.errors", 0);
    }
    lines = r->lines;
    /* What a worker killed between an insert and its report wrote past
     * the figures (a dry run writes no deal): counted once here, and the
     * lines they come from are read. A deal of an earlier line is counted
     * already (the report's, or the duplicate a resumed worker met). */
    /* (a fresh iterator: qid points into it) */
    if (!r->whole && !r->dry_run &&
        !(bson_iter_init_find(&d, queue_doc, "dry_run") &&
          BSON_ITER_HOLDS_BOOL(&d) && bson_iter_bool(&d))) {
        int64_t past, last;
        char hex[25];
        if (count_past(self, queue_doc, qid, lines, &past, &last, err,
                       errlen) != 0)
            return SUP_STORE_EFAIL;
        if (past > 0) {
            bson_oid_to_string(&qid->value.v_oid, hex);
            dip_log(DIP_LOG_NOTICE, hex,
                    "%lld deals were written past the last report (line "
                    "%lld): counted in the import's figures",
                    (long long)past, (long long)lines);
            added += past;
            if (last > lines)
                lines = last;
        }
    }
    not_stored = dip_bson_get_int(queue_doc, "checkpoint.errors_not_stored", 0);
    if (dip_bson_get_int(queue_doc, "progress.errors_not_stored", 0) >
        not_stored)
        not_stored =
            dip_bson_get_int(queue_doc, "progress.errors_not_stored", 0);
    if (r->not_stored > not_stored)
        not_stored = r->not_stored;
    if (errors < not_stored)
        errors = not_stored;
    nerrors = errors - not_stored;

    /* The queue document first, fenced: a supervisor whose claim is gone
     * stops here, before it touches the import log. */
    rc = finish_queue(self, qid, epoch, r, lines, added, nerrors, not_stored,
                      now, err, errlen);
    if (rc != SUP_STORE_OK)
        return rc;

    /* csv_imports: one per import, keyed by it, so a repeated finish is
     * harmless. */
    rc = SUP_STORE_EPARTIAL;
    filter = bson_new();
    BSON_APPEND_VALUE(filter, "queue_id", qid);
    update = bson_new();
    BSON_APPEND_DOCUMENT_BEGIN(update, "$set", &set);
    BSON_APPEND_UTF8(&set, "status", r->status);
    BSON_APPEND_INT64(&set, "total_records", lines);
    BSON_APPEND_INT64(&set, "total_records_added", added);
    BSON_APPEND_INT64(&set, "total_errors", nerrors + not_stored);
    BSON_APPEND_INT64(&set, "errors_stored", nerrors);
    BSON_APPEND_INT64(&set, "errors_not_stored", not_stored);
    if (r->error)
        BSON_APPEND_UTF8(&set, "error", r->error);
    if (r->notes) {
        BSON_APPEND_ARRAY(&set, "notes", r->notes);
    } else {
        BSON_APPEND_ARRAY_BEGIN(&set, "notes", &notes);
        bson_append_array_end(&set, &notes);
    }
    if (r->header) {
        BSON_APPEND_ARRAY(&set, "header", r->header);
    } else {
        /* stored by a run of an earlier claim (a fresh iterator: qid points
         * into it) */
        bson_iter_t h;
        if (bson_iter_init_find(&h, queue_doc, "header") &&
            BSON_ITER_HOLDS_ARRAY(&h))
            bson_append_iter(&set, "header", -1, &h);
    }
    append_dry_run(queue_doc, r, &set);
    if (r->has_counts)
        sup_store_append_counts(r->dry_run, r->updated, r->unchanged, &set);
    else if (dip_bson_get_int(queue_doc, "checkpoint.updated", -1) >= 0)
        sup_store_append_counts(
            r->dry_run ||
                dip_bson_get_int(queue_doc, "checkpoint.would_add", -1) >= 0,
            dip_bson_get_int(queue_doc, "checkpoint.updated", 0),
            dip_bson_get_int(queue_doc, "checkpoint.unchanged", 0), &set);
    /* No stored error by the worker's accounting, none to quote: it is
     * exact (a line's error is counted once whatever resumes), so no read
     * is needed. Figures taken from a progress write may lag the errors
     * inserted before it: those read. */
    if (r->logs) {
        BSON_APPEND_ARRAY(&set, "logs", r->logs);
    } else if (nerrors > 0 || !r->counted) {
        append_logs(self, qid, &set);
    } else {
        bson_t none;
        BSON_APPEND_ARRAY_BEGIN(&set, "logs", &none);
        bson_append_array_end(&set, &none);
    }
    BSON_APPEND_DATE_TIME(&set, "updated_at", now);
    BSON_APPEND_DATE_TIME(&set, "finished_at", now);
    {
        /* Nothing to follow: done with this write, no child is started
         * (nor its claim, its reads and its write). */
        sup_followup_facts_t ff = {
            .total_errors = nerrors + not_stored,
            .has_source = dip_bson_get_str(queue_doc, "csv.0.key") != NULL,
            .deletes_source = self->deletes_source,
            .event_held = r->event_held,
            .success_file = sup_succfile_wanted(queue_doc),
        };
        /* the cleanup keeps the source until the success file is
         * written */
        if (ff.success_file)
            BSON_APPEND_BOOL(&set, "success_file_wanted", true);
        if (!sup_followup_needed(&ff)) {
            BSON_APPEND_DATE_TIME(&set, "followups_done_at", now);
        } else {
            /* What the follow-ups would otherwise read again: the
             * source (null: none) and whether an event waits for them. */
            const char *src = dip_bson_get_str(queue_doc, "csv.0.key");
            if (src)
                BSON_APPEND_UTF8(&set, "followups_source", src);
            else
                BSON_APPEND_NULL(&set, "followups_source");
            BSON_APPEND_BOOL(&set, "followups_event", r->event_held != 0);
        }
    }
    bson_append_document_end(update, &set);
    BSON_APPEND_DOCUMENT_BEGIN(update, "$setOnInsert", &soi);
    copy_field(queue_doc, "account_id", &soi);
    copy_field(queue_doc, "user_id", &soi);
    name = dip_bson_get_str(queue_doc, "csv.0.name");
    if (name == NULL)
        name = dip_bson_get_str(queue_doc, "csv.0.key");
    BSON_APPEND_UTF8(&soi, "file_name", name ? name : "");
    BSON_APPEND_UTF8(&soi, "type", "deal");
    BSON_APPEND_DATE_TIME(&soi, "created_at", now);
    bson_append_document_end(update, &soi);
    {
        bson_t *opts = BCON_NEW("upsert", BCON_BOOL(true));
        bool ok = mongoc_collection_update_one(self->imports, filter, update,
                                               opts, NULL, &error);
        bson_destroy(opts);
        if (!ok)
            snprintf(err, errlen, "writing csv_imports failed: %s",
                     error.message);
        else
            rc = SUP_STORE_OK;
    }
    if (rc == SUP_STORE_OK) {
        /* Keyed by the import: a failure here only makes the repair write
         * csv_imports once more, which changes nothing. */
        bson_t *q = bson_new(),
               *u = BCON_NEW("$unset", "{", "log_pending", BCON_UTF8(""), "}");
        BSON_APPEND_VALUE(q, "_id", qid);
        mongoc_collection_update_one(self->queues, q, u, NULL, NULL, NULL);
        bson_destroy(q);
        bson_destroy(u);
    }
    bson_destroy(filter);
    bson_destroy(update);
    return rc;
}

int sup_store_repair_log(sup_store_t *self, char *err, size_t errlen)
{
    int64_t now = dip_bson_now_ms();
    /* The owner retries its own csv_imports write every few seconds while
     * it lives: only an end older than two leases is another's to repair. */
    bson_t *query =
        BCON_NEW("status", "{", "$in", "[", BCON_UTF8("completed"),
                 BCON_UTF8("failed"), BCON_UTF8("cancelled"), "]", "}",
                 "log_pending", BCON_BOOL(true), "finished_at", "{", "$lt",
                 BCON_DATE_TIME(now - 2 * self->lease_s * 1000), "}");
    bson_t *update = bson_new(), set;
    mongoc_find_and_modify_opts_t *opts = mongoc_find_and_modify_opts_new();
    bson_t reply;
    bson_error_t error;
    bson_t doc;
    int rc = SUP_STORE_EFAIL;
    dip_claim_append_free(query, "log_lease", now);
    BSON_APPEND_DOCUMENT_BEGIN(update, "$set", &set);
    dip_claim_append_take(&set, "log_lease", now, 2 * self->lease_s * 1000,
                          NULL, NULL);
    bson_append_document_end(update, &set);
    mongoc_find_and_modify_opts_set_update(opts, update);
    if (!dip_mongo_take_new(self->client, self->queues, query, opts, &reply,
                            &error)) {
        snprintf(err, errlen, "looking for unrecorded import ends failed: %s",
                 error.message);
        /* the reply is initialized even on failure */
        bson_destroy(&reply);
        goto cleanup;
    }
    rc = 0;
    if (dip_bson_reply_value(&reply, &doc)) {
        sup_store_result_t r;
        memset(&r, 0, sizeof(r));
        r.status = dip_bson_get_str(&doc, "status");
        r.error = dip_bson_get_str(&doc, "error");
        r.lines = dip_bson_get_int(&doc, "progress.lines", 0);
        /* whether its supervisor recorded an event is not known here */
        r.event_held = 1;
        /* No supervisor holds it: its status is final already. */
        rc = sup_store_finish(self, &doc, -1, &r, err, errlen);
        if (rc == SUP_STORE_OK) {
            dip_log(DIP_LOG_NOTICE, NULL,
                    "recorded the end of an import whose supervisor "
                    "stopped before its import log was written");
            rc = 1;
        } else {
            rc = SUP_STORE_EFAIL;
        }
    }
    bson_destroy(&reply);
cleanup:
    mongoc_find_and_modify_opts_destroy(opts);
    bson_destroy(query);
    bson_destroy(update);
    return rc;
}
