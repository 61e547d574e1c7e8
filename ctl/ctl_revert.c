/*
 * ctl_revert: deletes what a finished import created. Deals go by their
 * import.queue_id and only within the import's own account (a document of
 * another tenant that carries the same queue id is never touched); a stage
 * goes only if the import created it (created_by_import) in its account and
 * no deal uses it once the import's deals are gone. What it leaves, it
 * counts and says why.
 * Another import may pick that stage up by name at the same moment, so a
 * stage is checked again after its deletion and put back if a deal now
 * points at it. Refused while the import can still write (pending,
 * processing, paused): it works on MongoDB directly, with no supervisor to
 * stop a worker first.
 */
#include "ctl_revert.h"
#include "ctl_restore.h"
#include "dip_event.h"
#include "dip_log.h"
#include "dip_bson.h"
#include "dip_mongo_io.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mongoc/mongoc.h>

#define MAX_STAGES 100000

static const char usage[] =
    "usage: dealimportctl revert ID [--dry-run] [--json]\n";

typedef struct revert {
    const ctl_opts_t *o;
    mongoc_client_t *client;
    mongoc_collection_t *queues, *deals, *stages, *imports;
    bson_oid_t qid, account;
    char id[25];
    bson_t **stage_docs;
    size_t nstages;
    int64_t deals_deleted, stages_deleted, stages_kept;
    /* left alone: the import's queue id in another account's documents,
     * and stages past what one run loads */
    int64_t deals_other_account, stages_other_account, stages_next_run;
    /* the deals it updated (an update or upsert import): ctl_restore */
    ctl_restore_t restore;
} revert_t;

static bson_t *match(const char *key, const bson_oid_t *id)
{
    bson_t *q = bson_new();
    dip_bson_append_id_match(q, key, id);
    return q;
}

/* The import's documents of key (import.queue_id or created_by_import) in
 * its own account, or, with other_account, in any other. */
static bson_t *owned(const revert_t *r, const char *key, int other_account)
{
    bson_t *q = match(key, &r->qid);
    if (other_account) {
        bson_t nor, item;
        BSON_APPEND_ARRAY_BEGIN(q, "$nor", &nor);
        BSON_APPEND_DOCUMENT_BEGIN(&nor, "0", &item);
        dip_bson_append_id_match(&item, "account_id", &r->account);
        bson_append_document_end(&nor, &item);
        bson_append_array_end(q, &nor);
    } else {
        dip_bson_append_id_match(q, "account_id", &r->account);
        /* The deals index account_import_line is partial on import
         * existing, which mongod does not derive from import.queue_id:
         * said, so the import's own deals are read on it, not scanned. */
        if (strcmp(key, "import.queue_id") == 0)
            BCON_APPEND(q, "import", "{", "$exists", BCON_BOOL(true), "}");
    }
    return q;
}

static int64_t count(const revert_t *r, mongoc_collection_t *c, bson_t *q,
                     bson_error_t *error)
{
    bson_t *opts = dip_mongo_read_opts(r->client, NULL);
    int64_t n =
        mongoc_collection_count_documents(c, q, opts, NULL, NULL, error);
    bson_destroy(opts);
    bson_destroy(q);
    return n;
}

/* What is left alone whatever happens: the import's queue id in another
 * account's deals and stages, and the stages past one run's limit (of the
 * import's own stages still there, those this run neither loaded nor kept;
 * a dry run deleted nothing). */
static int count_left(revert_t *r, int dry, bson_error_t *error)
{
    int64_t all, seen;
    r->deals_other_account =
        count(r, r->deals, owned(r, "import.queue_id", 1), error);
    if (r->deals_other_account < 0)
        return -1;
    r->stages_other_account =
        count(r, r->stages, owned(r, "created_by_import", 1), error);
    if (r->stages_other_account < 0)
        return -1;
    all = count(r, r->stages, owned(r, "created_by_import", 0), error);
    if (all < 0)
        return -1;
    seen = dry ? (int64_t)r->nstages : r->stages_kept;
    r->stages_next_run = all > seen ? all - seen : 0;
    return 0;
}

/* Deals that use stage sid, other than this import's when others_only. */
static int64_t stage_users(revert_t *r, const bson_oid_t *sid, int others_only,
                           bson_error_t *error)
{
    bson_t *q = match("stage_id", sid);
    bson_t *opts = BCON_NEW("limit", BCON_INT64(1), "maxTimeMS",
                            BCON_INT64(dip_mongo_max_time_ms(r->client)));
    int64_t n;
    if (others_only) {
        bson_t sub, arr;
        char hex[25];
        bson_oid_to_string(&r->qid, hex);
        BSON_APPEND_DOCUMENT_BEGIN(q, "import.queue_id", &sub);
        BSON_APPEND_ARRAY_BEGIN(&sub, "$nin", &arr);
        BSON_APPEND_OID(&arr, "0", &r->qid);
        BSON_APPEND_UTF8(&arr, "1", hex);
        bson_append_array_end(&sub, &arr);
        bson_append_document_end(q, &sub);
    }
    n = mongoc_collection_count_documents(r->deals, q, opts, NULL, NULL, error);
    bson_destroy(opts);
    bson_destroy(q);
    return n;
}

static int load_stages(revert_t *r, bson_error_t *error)
{
    bson_t *q = owned(r, "created_by_import", 0);
    bson_t *opts = dip_mongo_read_opts(r->client, NULL);
    mongoc_cursor_t *c =
        mongoc_collection_find_with_opts(r->stages, q, opts, NULL);
    const bson_t *doc;
    int rc = 0;
    r->stage_docs = calloc(MAX_STAGES, sizeof(bson_t *));
    while (r->stage_docs && r->nstages < MAX_STAGES &&
           mongoc_cursor_next(c, &doc))
        r->stage_docs[r->nstages++] = bson_copy(doc);
    if (r->stage_docs == NULL || mongoc_cursor_error(c, error))
        rc = -1;
    mongoc_cursor_destroy(c);
    bson_destroy(opts);
    bson_destroy(q);
    return rc;
}

static int delete_stages(revert_t *r, bson_error_t *error)
{
    for (size_t i = 0; i < r->nstages; i++) {
        bson_oid_t sid;
        bson_t *q, reply;
        bson_iter_t it;
        int64_t users, deleted = 0;
        if (dip_bson_get_oid(r->stage_docs[i], "_id", &sid) != 0)
            continue;
        users = stage_users(r, &sid, 0, error);
        if (users < 0)
            return -1;
        if (users > 0) {
            r->stages_kept++;
            continue;
        }
        q = owned(r, "created_by_import", 0);
        BSON_APPEND_OID(q, "_id", &sid);
        if (!mongoc_collection_delete_one(r->stages, q, NULL, &reply, error)) {
            bson_destroy(q);
            bson_destroy(&reply);
            return -1;
        }
        if (bson_iter_init_find(&it, &reply, "deletedCount"))
            deleted = bson_iter_as_int64(&it);
        bson_destroy(&reply);
        bson_destroy(q);
        if (deleted == 0)
            continue;
        /* A concurrent import may have resolved the stage by name just
         * before it went: give it back. */
        users = stage_users(r, &sid, 0, error);
        if (users != 0 && mongoc_collection_insert_one(
                              r->stages, r->stage_docs[i], NULL, NULL, NULL)) {
            r->stages_kept++;
            continue;
        }
        r->stages_deleted++;
    }
    return 0;
}

static int record(revert_t *r, const bson_t *queue_doc, bson_error_t *error)
{
    bson_t *filter = BCON_NEW("queue_id", BCON_OID(&r->qid));
    bson_t *update = bson_new(), set, inc, soi;
    bson_t *opts = BCON_NEW("upsert", BCON_BOOL(true));
    int64_t now = dip_bson_now_ms();
    bson_oid_t tmp;
    bool ok;
    BSON_APPEND_DOCUMENT_BEGIN(update, "$set", &set);
    BSON_APPEND_DATE_TIME(&set, "reverted_at", now);
    BSON_APPEND_DATE_TIME(&set, "updated_at", now);
    /* Totals read from the marks of every run, so $set, not $inc. */
    BSON_APPEND_INT64(&set, "reverted_updates", r->restore.restored);
    BSON_APPEND_INT64(&set, "revert_conflicts", r->restore.conflicts);
    BSON_APPEND_ARRAY(&set, "revert_conflict_ids", &r->restore.conflict_ids);
    BSON_APPEND_INT64(&set, "revert_deals_gone", r->restore.gone);
    bson_append_document_end(update, &set);
    /* A second revert adds what it found left over. */
    BSON_APPEND_DOCUMENT_BEGIN(update, "$inc", &inc);
    BSON_APPEND_INT64(&inc, "reverted_deals", r->deals_deleted);
    BSON_APPEND_INT64(&inc, "reverted_stages", r->stages_deleted);
    bson_append_document_end(update, &inc);
    BSON_APPEND_DOCUMENT_BEGIN(update, "$setOnInsert", &soi);
    if (dip_bson_get_oid(queue_doc, "account_id", &tmp) == 0)
        BSON_APPEND_OID(&soi, "account_id", &tmp);
    if (dip_bson_get_oid(queue_doc, "user_id", &tmp) == 0)
        BSON_APPEND_OID(&soi, "user_id", &tmp);
    BSON_APPEND_UTF8(&soi, "status",
                     dip_bson_get_str(queue_doc, "status")
                         ? dip_bson_get_str(queue_doc, "status")
                         : "");
    BSON_APPEND_UTF8(&soi, "type", "deal");
    BSON_APPEND_DATE_TIME(&soi, "created_at", now);
    bson_append_document_end(update, &soi);
    ok = mongoc_collection_update_one(r->imports, filter, update, opts, NULL,
                                      error);
    bson_destroy(opts);
    bson_destroy(update);
    bson_destroy(filter);
    return ok ? 0 : -1;
}

static int dry_run(revert_t *r, bson_error_t *error)
{
    r->deals_deleted =
        count(r, r->deals, owned(r, "import.queue_id", 0), error);
    if (r->deals_deleted < 0)
        return -1;
    for (size_t i = 0; i < r->nstages; i++) {
        bson_oid_t sid;
        int64_t users;
        if (dip_bson_get_oid(r->stage_docs[i], "_id", &sid) != 0)
            continue;
        users = stage_users(r, &sid, 1, error);
        if (users < 0)
            return -1;
        if (users == 0)
            r->stages_deleted++;
        else
            r->stages_kept++;
    }
    return 0;
}

/* The completion event of a revert, delivered by any supervisor. */
static int tell_crm(revert_t *r, const bson_t *queue_doc, const char *db)
{
    mongoc_collection_t *events =
        mongoc_client_get_collection(r->client, db, DIP_EVENT_COLLECTION);
    bson_t details = BSON_INITIALIZER;
    char err[512];
    int rc;
    BSON_APPEND_INT64(&details, "reverted_deals", r->deals_deleted);
    BSON_APPEND_INT64(&details, "reverted_stages", r->stages_deleted);
    BSON_APPEND_INT64(&details, "reverted_updates", r->restore.restored);
    BSON_APPEND_INT64(&details, "revert_conflicts", r->restore.conflicts);
    rc = dip_event_record(events, queue_doc, DIP_EVENT_REVERTED, &details,
                          r->o->cfg->notify_max_s, 0, err, sizeof(err));
    if (rc < 0)
        ctl_fail(r->o, CTL_EXIT_UNAVAILABLE, "unavailable",
                 "import '%s' is reverted, but its completion event could not "
                 "be recorded: %s (run revert again to record it)",
                 r->id, err);
    bson_destroy(&details);
    mongoc_collection_destroy(events);
    return rc;
}

static int run(revert_t *r, int dry, bson_t *queue_doc)
{
    bson_error_t error;
    const char *db, *status;
    char err[1024];
    bson_t *q, *opts;
    mongoc_cursor_t *c;
    const bson_t *doc;
    int found = 0;

    r->client = dip_mongo_client_new(r->o->cfg->mongodb_uri, "dealimportctl",
                                     &db, err, sizeof(err));
    if (r->client == NULL)
        return ctl_fail(r->o, CTL_EXIT_CONFIG, "configuration", "%s", err);
    r->queues = mongoc_client_get_collection(r->client, db, "queues");
    r->deals = mongoc_client_get_collection(r->client, db, "deals");
    r->stages = mongoc_client_get_collection(r->client, db, "pipeline_stages");
    r->imports = mongoc_client_get_collection(r->client, db, "csv_imports");

    q = match("_id", &r->qid);
    BSON_APPEND_UTF8(q, "source", "deals");
    opts = dip_mongo_read_opts(r->client, NULL);
    c = mongoc_collection_find_with_opts(r->queues, q, opts, NULL);
    bson_destroy(opts);
    if (mongoc_cursor_next(c, &doc)) {
        bson_copy_to(doc, queue_doc);
        found = 1;
    }
    if (!found && mongoc_cursor_error(c, &error)) {
        mongoc_cursor_destroy(c);
        bson_destroy(q);
        return ctl_fail(r->o, CTL_EXIT_UNAVAILABLE, "unavailable",
                        "the database did not answer: %s", error.message);
    }
    mongoc_cursor_destroy(c);
    bson_destroy(q);
    if (!found)
        return ctl_fail(r->o, CTL_EXIT_REFUSED, "not_found",
                        "no import with id '%s'", r->id);
    status = dip_bson_get_str(queue_doc, "status");
    if (!dip_ctl_status_final(status))
        return ctl_fail(r->o, CTL_EXIT_REFUSED, "wrong_state",
                        "import '%s' is %s: only completed, failed or "
                        "cancelled imports can be reverted (cancel it first)",
                        r->id, status ? status : "of unknown status");
    if (dip_bson_get_oid(queue_doc, "account_id", &r->account) != 0)
        return ctl_fail(r->o, CTL_EXIT_REFUSED, "no_account",
                        "import '%s' names no account (account_id): nothing "
                        "can be reverted safely",
                        r->id);
    /* Updated deals first: their before-images name them, whatever is
     * deleted next. */
    if (ctl_restore_run(r->client, db, &r->qid, &r->account, dry, &r->restore,
                        &error) < 0)
        goto db_error;
    if (load_stages(r, &error) < 0 || (dry ? dry_run(r, &error) : 0) < 0)
        goto db_error;
    if (!dry) {
        bson_t reply;
        bson_iter_t it;
        q = owned(r, "import.queue_id", 0);
        if (!mongoc_collection_delete_many(r->deals, q, NULL, &reply, &error)) {
            bson_destroy(&reply);
            bson_destroy(q);
            goto db_error;
        }
        if (bson_iter_init_find(&it, &reply, "deletedCount"))
            r->deals_deleted = bson_iter_as_int64(&it);
        bson_destroy(&reply);
        bson_destroy(q);
        if (delete_stages(r, &error) < 0 || record(r, queue_doc, &error) < 0)
            goto db_error;
        if (r->o->cfg->notify_url && *r->o->cfg->notify_url &&
            tell_crm(r, queue_doc, db) < 0)
            return CTL_EXIT_UNAVAILABLE;
    }
    if (count_left(r, dry, &error) < 0)
        goto db_error;
    return CTL_EXIT_OK;
db_error:
    return ctl_fail(r->o, CTL_EXIT_UNAVAILABLE, "unavailable",
                    "reverting import '%s' failed: %s (run it again to "
                    "finish)",
                    r->id, error.message);
}

/* One line: what went, then each kind of thing left with its reason. */
static void print_summary(const revert_t *r, int dry)
{
    const char *sep = "; left: ";
    printf("import %s %s: %lld deals and %lld pipeline stages %s", r->id,
           dry ? "would be reverted" : "reverted", (long long)r->deals_deleted,
           (long long)r->stages_deleted, dry ? "would be deleted" : "deleted");
    if (r->restore.restored || r->restore.conflicts || r->restore.gone)
        printf(", %lld updated deals %s", (long long)r->restore.restored,
               dry ? "would get their previous values back"
                   : "have their previous values back");
    if (r->restore.conflicts) {
        bson_iter_t it;
        const char *s = " (";
        printf("%s%lld deals changed since the import, left as they are", sep,
               (long long)r->restore.conflicts);
        if (bson_iter_init(&it, &r->restore.conflict_ids))
            for (int n = 0; n < 10 && bson_iter_next(&it); n++) {
                char hex[25];
                bson_oid_to_string(bson_iter_oid(&it), hex);
                printf("%s%s", s, hex);
                s = ", ";
            }
        printf("%s", r->restore.conflicts > 10 ? ", ...)" : ")");
        sep = "; ";
    }
    if (r->restore.gone) {
        printf("%s%lld updated deals deleted since", sep,
               (long long)r->restore.gone);
        sep = "; ";
    }
    if (r->restore.refused) {
        printf("%s%lld updated deals the database refused to give their "
               "previous values back (run it again once they can take "
               "them)",
               sep, (long long)r->restore.refused);
        sep = "; ";
    }
    if (r->stages_kept) {
        printf("%s%lld stages it created, because other deals use them", sep,
               (long long)r->stages_kept);
        sep = "; ";
    }
    if (r->stages_other_account) {
        printf("%s%lld stages and %lld deals that name this import but "
               "belong to another account than the import's",
               sep, (long long)r->stages_other_account,
               (long long)r->deals_other_account);
        sep = "; ";
    } else if (r->deals_other_account) {
        printf("%s%lld deals that name this import but belong to another "
               "account than the import's",
               sep, (long long)r->deals_other_account);
        sep = "; ";
    }
    if (r->stages_next_run)
        printf("%s%lld stages past the %d one run handles (run it again)", sep,
               (long long)r->stages_next_run, MAX_STAGES);
    printf("\n");
}

/* A revert is carried out here, in the operator's own process, against
 * the database: no supervisor is involved, and none need be running. So
 * this process logs it, as the service logs (DEALIMPORT_LOG_FORMAT), with
 * the uid that ran it; under journald it joins the import's other events
 * (IMPORT_ID). csv_imports keeps reverted_at and the counts. */
static void log_revert(const revert_t *r)
{
    long uid = (long)getuid();
    dip_log_fields(
        DIP_LOG_NOTICE, r->id,
        DIP_LOG_FIELDS(DIP_LOG_STR("cmd", "revert"),
                       DIP_LOG_NUM("peer_uid", uid),
                       DIP_LOG_STR("result", "applied"),
                       DIP_LOG_NUM("deleted_deals", r->deals_deleted),
                       DIP_LOG_NUM("deleted_stages", r->stages_deleted)),
        "revert requested by uid %ld: %lld deals and %lld pipeline "
        "stages deleted",
        uid, (long long)r->deals_deleted, (long long)r->stages_deleted);
}

int ctl_revert_main(ctl_opts_t *o, int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"dry-run", no_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    revert_t r;
    bson_t queue_doc = BSON_INITIALIZER;
    int c, dry = 0, rc;

    memset(&r, 0, sizeof(r));
    r.o = o;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'j') {
            o->json = 1;
        } else if (c == 'n') {
            dry = 1;
        } else if (c == 'h') {
            printf("%s\nDeletes the deals import ID created and the pipeline "
                   "stages it created that no\nother deal uses, within the "
                   "import's own account, says what it left and\nwhy, and "
                   "records "
                   "reverted_at, reverted_deals and reverted_stages\non its "
                   "csv_imports document. Works on MongoDB directly "
                   "(DEALIMPORT_MONGODB_URI);\nrefused while the import is "
                   "pending, processing or paused.\n\n"
                   "  --dry-run   count what would be deleted, delete "
                   "nothing\n"
                   "  --json      one JSON object on stdout\n",
                   usage);
            return CTL_EXIT_OK;
        } else {
            return ctl_usage(usage, "dealimportctl revert: unknown option '%s'",
                             argv[optind - 1]);
        }
    }
    if (ctl_take_id("revert", argc, argv, usage, r.id) < 0)
        return CTL_EXIT_USAGE;
    bson_oid_init_from_string(&r.qid, r.id);
    bson_init(&r.restore.conflict_ids);
    rc = run(&r, dry, &queue_doc);
    if (rc == CTL_EXIT_OK && !dry)
        log_revert(&r);
    if (rc == CTL_EXIT_OK) {
        if (o->json) {
            json_t *ids = json_array();
            bson_iter_t it;
            json_t *j;
            if (bson_iter_init(&it, &r.restore.conflict_ids))
                while (bson_iter_next(&it)) {
                    char hex[25];
                    bson_oid_to_string(bson_iter_oid(&it), hex);
                    json_array_append_new(ids, json_string(hex));
                }
            j = json_pack(
                "{s:i, s:b, s:s, s:b, s:I, s:I, s:I, s:{s:I, s:I, s:I}}", "v",
                DIP_CTL_VERSION, "ok", 1, "id", r.id, "dry_run", dry,
                "deleted_deals", (json_int_t)r.deals_deleted, "deleted_stages",
                (json_int_t)r.stages_deleted, "kept_stages",
                (json_int_t)r.stages_kept, "left", "stages_other_account",
                (json_int_t)r.stages_other_account, "deals_other_account",
                (json_int_t)r.deals_other_account, "stages_next_run",
                (json_int_t)r.stages_next_run);
            json_object_set_new(j, "restored_deals",
                                json_integer(r.restore.restored));
            json_object_set_new(j, "conflicts",
                                json_integer(r.restore.conflicts));
            json_object_set_new(j, "conflict_ids", ids);
            json_object_set_new(j, "updated_deals_gone",
                                json_integer(r.restore.gone));
            json_object_set_new(j, "restore_refused",
                                json_integer(r.restore.refused));
            ctl_print_json(j);
            json_decref(j);
        } else {
            print_summary(&r, dry);
        }
    }
    for (size_t i = 0; i < r.nstages; i++)
        bson_destroy(r.stage_docs[i]);
    free(r.stage_docs);
    bson_destroy(&queue_doc);
    ctl_restore_release(&r.restore);
    mongoc_collection_destroy(r.queues);
    mongoc_collection_destroy(r.deals);
    mongoc_collection_destroy(r.stages);
    mongoc_collection_destroy(r.imports);
    mongoc_client_destroy(r.client);
    return rc;
}
