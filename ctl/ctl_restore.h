/*
 * ctl_restore: the half of `dealimportctl revert` that puts back what an
 * update or upsert import changed. It reads the import's before-images
 * (deal_import_changes, written by the worker before each update: see
 * worker/wrk_upsert.h) and, for each deal whose current values of the
 * changed fields are still the ones the import wrote, sets the previous
 * values back (unsets a field the deal did not have) and pulls the tags the
 * import added. A deal changed since (by a user or a later import) is left
 * as it is: a conflict.
 *
 * Exactly once under a crash: each before-image is marked (`revert:
 * "restored"` or `"conflict"`) after its deal is decided, and a deal is
 * judged by its values, not by the mark: a run after a crash between an
 * update and its mark finds the deal holding the previous values and marks
 * it restored. The counts are read from the marks, so they are the same
 * whatever number of runs it took. Everything is within the import's
 * account.
 */
#ifndef CTL_RESTORE_H
#define CTL_RESTORE_H

#include <stdint.h>

#include <bson/bson.h>
#include <mongoc/mongoc.h>

/* The deal ids of conflicts kept for csv_imports and the reply: the first
 * ones met. */
#define CTL_RESTORE_IDS_MAX 1000

typedef struct ctl_restore {
    int64_t restored;    /* deals back to their previous values (or would be) */
    int64_t conflicts;   /* deals changed since, left as they are */
    int64_t gone;        /* deals deleted since: nothing to restore */
    int64_t refused;     /* deals the database refused to take back (a
                            unique index: their previous external_id held
                            by another deal since), left unmarked: this
                            run's count, a next run tries them again */
    bson_t conflict_ids; /* array of ObjectIds, at most CTL_RESTORE_IDS_MAX */
} ctl_restore_t;

/* Restores the deals import qid of account updated; with dry, only judges
 * them. out is initialized by the callee (ctl_restore_release frees it).
 * 0, or -1 with error (the database failed: run it again). */
int ctl_restore_run(mongoc_client_t *client, const char *db,
                    const bson_oid_t *qid, const bson_oid_t *account, int dry,
                    ctl_restore_t *out, bson_error_t *error);
void ctl_restore_release(ctl_restore_t *out);

/* Calls fn(arg) in each batch between the read of its deals and the write
 * of their restores (NULL: none): a test writes a deal there, as another
 * writer may. Process-wide; not for concurrent runs. */
void ctl_restore_set_before_write(void (*fn)(void *), void *arg);

/* The verdict on one deal from one before-image (pure): 1 when the deal
 * holds every value the import wrote (`a` of each change, and every tag of
 * `tags_added`), 2 when it holds every previous value (`b`, null where it
 * was null, no field or null where there was none, and none of the tags
 * added), 0 when neither (a conflict). A record of tags only (the row's
 * values equalled the deal's) is judged by its tags. deal NULL, or a
 * record with no change and no tag: 0. */
int ctl_restore_judge(const bson_t *change, const bson_t *deal);

#endif
