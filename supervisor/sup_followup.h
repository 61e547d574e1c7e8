/*
 * sup_followup: what follows an import's final status, each step
 * idempotent per import so that a repeat after a crash changes nothing:
 *
 *   1. the error file (sup_errfile), when the import has line errors and
 *      csv_imports names none yet; then the success file (sup_succfile),
 *      when the queue document asks for one and csv_imports names none
 *      yet;
 *   2. the source cleanup (sup_cleanup, under DEALIMPORT_DELETE_SOURCE);
 *   3. the completion event, recorded held before the final status was
 *      written, is released for delivery with the figures csv_imports
 *      holds and its error file;
 *   4. csv_imports.followups_done_at.
 *
 * The steps take seconds for a big error file, so they never run on the
 * supervisor's loop: the loop claims an ended import whose follow-ups are
 * not done (any supervisor's, by a lease on csv_imports, so a supervisor
 * killed after a final status leaves nothing undone) and runs them in a
 * child process, `dealimport-supervisor --follow-up ID`, which exits 0 when
 * all are done and DIP_EXIT_TEMPFAIL to be tried again after the lease.
 *
 * Steps 1 and 2 are independent and bounded: each file and the cleanup is
 * tried
 * SUP_FOLLOWUP_STEP_TRIES times (SUP_FOLLOWUP_STEP_BACKOFF_MS, doubling,
 * between tries; a success file whose source is gone or another object at
 * once); then it is given up: csv_imports gets `error_file`,
 * `success_file` or `source_delete` = {failed: the reason, given_up_at}, the
 * log a line, and the event (which carries both) is released all the same. A
 * source whose error file was given up is kept (sup_cleanup wants
 * error_file.key). Only the database failing ends a run early (it is tried
 * again later); runs
 * themselves are bounded by SUP_FOLLOWUP_RUNS_MAX.
 */
#ifndef SUP_FOLLOWUP_H
#define SUP_FOLLOWUP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <bson/bson.h>
#include <mongoc/mongoc.h>

#include "dip_config.h"

/* How long a claim of an import's follow-ups lasts: a child still working
 * past it may be joined by another (harmless: every step is idempotent). */
#define SUP_FOLLOWUP_LEASE_MS (10 * 60 * 1000)
/* Runs of one import's follow-ups (each run counts itself on csv_imports,
 * followups_runs, before its first step): a run that never ends (its
 * process killed each time, by a signal, a limit or the OOM killer,
 * before it could record a thing) is claimed again after each lease; the
 * run after this many gives up every step not done without trying it,
 * recorded as {failed}, and releases the event. */
#define SUP_FOLLOWUP_RUNS_MAX 5
/* Tries of one step within a run, and the wait after the first failure. */
#define SUP_FOLLOWUP_STEP_TRIES 3
#define SUP_FOLLOWUP_STEP_BACKOFF_MS 1000

/* The child's whole job for the import whose queue _id is the ObjectId
 * qid_hex. claim_owner NULL: the caller claimed the follow-ups, the child
 * reads csv_imports; else the child claims them itself for claim_owner
 * (one findAndModify by the id that answers csv_imports whole; 0 and
 * nothing done when they are done or another's). The end's csv_imports
 * names the source (followups_source) and whether an event is held
 * (followups_event): the queue document is read only for an end written
 * without them, and an event released only when one may be held.
 * 0 when every step is done, 1 when done with a step given up
 * (the child then exits DIP_EXIT_GAVE_UP), -1 with err filled otherwise. */
int sup_followup_run(const dip_config_t *cfg, const char *qid_hex,
                     const char *claim_owner, char *err, size_t errlen);

/* Claims an ended import whose follow-ups are not done and whose claim (if
 * any) ran out; 1 with its queue id in out_hex, 0 when there is none, -1 on
 * a database error (err filled). imports is csv_imports, of client, whose
 * socket timeout bounds the findAndModify's maxTimeMS
 * (dip_mongo_take_new). */
int sup_followup_claim(const mongoc_client_t *client,
                       mongoc_collection_t *imports, const char *owner,
                       int64_t now_ms, char out_hex[25], char *err,
                       size_t errlen);

/* The loop's side: at most SUP_FOLLOWUP_MAX children at once, started
 * through sup_spawn with the supervisor's settings (secrets by a pipe). */
#define SUP_FOLLOWUP_MAX 2
typedef struct sup_followups sup_followups_t;

/* exe: the supervisor's own program; envp: the children's environment
 * (borrowed, no secrets); client (of database db): the loop's, borrowed,
 * bounded by sup_store_budget_ms so no call outlives a lease or the stop
 * timeout. NULL with err. */
sup_followups_t *sup_followups_new(const dip_config_t *cfg, const char *owner,
                                   const char *exe, char *const *envp,
                                   mongoc_client_t *client, const char *db,
                                   char *err, size_t errlen);
void sup_followups_destroy(sup_followups_t **self_p);

/* Claims and starts follow-ups while fewer than SUP_FOLLOWUP_MAX run: first
 * those told by sup_followups_poke, each by its id (one findAndModify),
 * then a sweep of all, at most once a poll period (sooner after a child
 * ends when the last sweep stopped at the limit). -1 after a database
 * error (the caller pauses its calls), else 0. */
int sup_followups_tick(sup_followups_t *self, int64_t now_ms);
/* An end with follow-ups (sup_followup_needed) was just written for the
 * import qid: its follow-ups start at the next tick. Up to
 * SUP_FOLLOWUP_POKED_MAX are remembered; past them a sweep is due. */
#define SUP_FOLLOWUP_POKED_MAX 64
void sup_followups_poke(sup_followups_t *self, const bson_oid_t *qid);

/* 1 when pid was one of its children (its end is handled), 2 when it was
 * and it gave a step up (the caller counts it), else 0. */
int sup_followups_reaped(sup_followups_t *self, pid_t pid, int wait_status);

/* What an import's end knows of the follow-ups it will need. */
typedef struct sup_followup_facts {
    int64_t total_errors; /* line errors, stored or not */
    int has_source;       /* the queue document names its file */
    int deletes_source;   /* DEALIMPORT_DELETE_SOURCE is not `never` */
    int event_held;       /* a completion event was (or may have been)
                             recorded held for this end */
    int success_file; /* a success file is asked for (sup_succfile_wanted) */
} sup_followup_facts_t;

/* 1 when the end has follow-ups to run (an error file to write, a source
 * the policy may delete, a held event to release), 0 when none: its
 * csv_imports is then written done (followups_done_at) with the end itself
 * and no child is started. The steps the child would take are exactly
 * these (sup_followup_run), so 0 is what the child would have recorded. */
int sup_followup_needed(const sup_followup_facts_t *f);

/* The event type of an import's end: status completed/failed/cancelled,
 * dry_run as recorded; NULL for anything else. */
const char *sup_followup_event_type(const char *status, int dry_run);

#endif
