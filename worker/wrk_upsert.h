/*
 * wrk_upsert: the write of a batch in update and upsert mode (and in create
 * mode with a match field). Per batch: one query for all its keys within the
 * account (its id as an ObjectId or as hex, as the CRM may have written
 * it on its own deals; the updates match the pipeline the same way), the
 * verdict of each row (wrk_match), then the before-images of
 * the deals it changes inserted into `deal_import_changes` (unique on
 * (queue_id, line)), and only then one unordered bulk write of the updates
 * and inserts. A line re-run after a crash, a resume or a takeover finds its
 * own write (the deal's import.line or last_import.line) or its own
 * before-image (a duplicate, kept as it is, never replaced by this run's):
 * every line is counted once.
 *
 * Each update is a compare-and-set (wrk_upsert_plan): its filter names the
 * previous value of each field it changes and the absence of each tag it
 * adds, as its change record states them, so the record's previous values
 * are the ones the write replaced. An update that misses a deal still in
 * the account's pipeline (another writer changed it after the lookup, or
 * stored its ids in the other form) is attempted again: the deal read
 * again, the record rewritten (this run's, or an earlier run's that the
 * first attempt met and replaced: that run's update never applied), the
 * update sent again, WRK_UPSERT_ATTEMPTS in all, then a line error ("the
 * deal was changed by someone else at each of 3 attempts ...") with the
 * run's record removed. The before-write hook runs before each attempt.
 *
 * An update $sets the mapped fields whose cells are not empty (stage_id
 * included), adds the import's tags the deal lacks ($addToSet), and records
 * updated_at and last_import {queue_id, line}; _id, account_id,
 * pipeline_id, owner, created_by and import are never written. A row whose
 * values all equal the deal's writes nothing (unchanged). An update that
 * matches no deal (deleted, or moved to another pipeline, since the
 * lookup: the bulk's nMatched falls short, one find of the ids says which)
 * is not counted updated: its before-image is removed and the line is a
 * line error ("the deal was deleted while the import ran"), except a
 * deleted deal in upsert mode, whose row is inserted instead, as a key
 * that finds no deal is.
 *
 * A change record: {queue_id, line, account_id, deal_id, changes: [{f:
 * field, a: value written, b: previous value, absent when the deal had
 * none}], tags_added: [...], created_at}. ctl_revert reads them. A
 * record that would pass 16 MiB (a deal near that size, its previous
 * values and the new ones) cannot be stored: the row is a line error and
 * its deal is not changed.
 *
 * Memory: the keys of the whole run are kept (to name the first line of a
 * repeated key whatever the batching): the bytes of the key column plus
 * 24 bytes a row.
 */
#ifndef WRK_UPSERT_H
#define WRK_UPSERT_H

#include <stddef.h>
#include <stdint.h>

#include <bson/bson.h>

#include "wrk_db.h"
#include "wrk_match.h"

/* The collection of before-images, and its unique index. */
#define WRK_UPSERT_CHANGES "deal_import_changes"
#define WRK_UPSERT_CHANGES_INDEX "queue_line"

typedef struct wrk_upsert wrk_upsert_t;

/* Outcome of each row of a batch. */
enum {
    WRK_UPSERT_ADDED = 0, /* inserted (or, in a dry run, would be) */
    WRK_UPSERT_ALREADY,   /* inserted by an earlier run of this line */
    WRK_UPSERT_UPDATED,   /* updated now or by an earlier run of the line */
    WRK_UPSERT_UNCHANGED, /* the deal already holds the row's values */
    WRK_UPSERT_REFUSED,   /* a line error: messages[i] says why */
};

/* db, m and the ids are borrowed and must outlive the object. dry: look up
 * and decide, write nothing. NULL when out of memory. */
wrk_upsert_t *wrk_upsert_new(wrk_db_t *db, const wrk_match_t *m,
                             const bson_oid_t *qid, const bson_oid_t *account,
                             const bson_oid_t *pipeline, int dry);
void wrk_upsert_destroy(wrk_upsert_t **self_p);

/* Before the first write: the indexes (external_id's, the change records'),
 * and for a custom match field the check that its unique index exists.
 * WRK_DB_OK, WRK_DB_EFAIL with err the sentence that fails the import, or
 * WRK_DB_ETRANSIENT. */
int wrk_upsert_prepare(wrk_upsert_t *self, char *err, size_t errlen);

/* Calls fn(arg) in every batch after its verdicts and before its first
 * write, and so again before each later attempt at rows whose deals
 * changed: the window in which a deal found may be deleted or changed by
 * someone else (the tests do it there). NULL: none. */
void wrk_upsert_set_before_write(wrk_upsert_t *self, void (*fn)(void *),
                                 void *arg);

/* Files the key of doc (a row as wrk_upsert_batch takes it) as first seen
 * on line, unless an earlier line has it: a resumed run recalls the lines
 * before its checkpoint (wrk_recall), so that a key they held is still
 * "on line N already" after the resume, whatever those lines left in the
 * database (an unchanged row, a refused one, leaves nothing). A row that
 * maps and is refused before its batch (its stage past the limit) is filed
 * here too, so that the lines filed are the same in one run and across a
 * resume: every row that maps. The order of the calls does not matter:
 * the smallest line stands. 0, or -1 out of memory. Writes nothing. */
int wrk_upsert_recall(wrk_upsert_t *self, const bson_t *doc, int64_t line);

/* Writes the batch: docs[i] is the deal an insert would write (as
 * wrk_import builds it: _id first, the mapped fields, then stage_id ...
 * import), lines[i] its line, status_given[i] 0 when the row's status cell
 * was empty (an update then keeps the deal's status). Fills outcome[i] and,
 * for WRK_UPSERT_REFUSED, messages[i] (malloc'd; the caller frees).
 * ids (may be NULL) gets, after a write that succeeded, each row's deal:
 * the one inserted, updated or left unchanged, the zero id when unknown
 * (an insert that met the deal an earlier run of its line created, or a
 * refused row). WRK_DB_OK, or WRK_DB_ETRANSIENT / WRK_DB_EFAIL with err
 * (the batch is then to be done again from the checkpoint). */
int wrk_upsert_batch(wrk_upsert_t *self, bson_t *const *docs,
                     const int64_t *lines, const int *status_given, size_t n,
                     int *outcome, char **messages, bson_oid_t *ids, char *err,
                     size_t errlen);

#endif
