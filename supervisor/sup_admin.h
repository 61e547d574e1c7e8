/*
 * sup_admin: what the control plane asks of MongoDB, beside sup_store's
 * claims and progress: reading imports for `list`, `show` and `status`,
 * moving imports that no worker runs between pending, paused and cancelled
 * (atomically, so a move can never race a claim), and recording a pause or
 * cancel on an import another supervisor runs for that supervisor to carry
 * out. Has its own database client.
 */
#ifndef SUP_ADMIN_H
#define SUP_ADMIN_H

#include <stddef.h>
#include <stdint.h>

#include <bson/bson.h>
#include <mongoc/mongoc.h>
#include <jansson.h>

#include "dip_config.h"

typedef struct sup_admin sup_admin_t;

/* A control request recorded on an import this supervisor runs. */
typedef struct sup_admin_request {
    char id[25];
    char action[8]; /* "pause" or "cancel" */
    /* who asked, as sup_admin_record was told: -1 and "" when not known */
    long by_uid;
    char by_key[128];
    char via[300]; /* the supervisor that recorded it, or "" */
} sup_admin_request_t;

/* owner: this supervisor's claimed_by. client (borrowed, of database db)
 * is the loop's, shared with sup_store: its calls are bounded by the lease
 * as sup_store's are. NULL when out of memory. */
sup_admin_t *sup_admin_new(mongoc_client_t *client, const char *db,
                           const char *owner);
void sup_admin_destroy(sup_admin_t **self_p);

/* Reads the queue document of import id (24-hex) into out (initialized by
 * the callee when found). Returns 1 found, 0 no such import, -1 on a
 * database error (err filled). */
int sup_admin_get(sup_admin_t *self, const char *id, bson_t *out, char *err,
                  size_t errlen);

/* Each count of sup_admin_counts stops here: it runs on the loop's thread
 * (the status command), and the (source, status, created_at) index is
 * walked no further than this per status, however many finished imports
 * years leave behind. The queue sampler's counts stop at the same figure. */
#define SUP_ADMIN_COUNT_CAP 1000000

/* Imports by status ({"pending": n, ...}, every status present, each at
 * most SUP_ADMIN_COUNT_CAP) and the processing imports of each account
 * over all supervisors ([{"account": hex, "processing": n}]). The caller
 * owns both. 0 or -1. */
int sup_admin_counts(sup_admin_t *self, json_t **by_status, json_t **by_account,
                     char *err, size_t errlen);

/* Imports newest first (by created_at, then _id), filtered by status and
 * account when not NULL or "", created at or after since_ms when it is not
 * 0, and older than the cursor after (dip_ctl_cursor_format) when not NULL
 * or ""; at most limit, as sup_admin_summary objects. *truncated says
 * whether more matched, and next (DIP_CTL_CURSOR_LEN bytes) then receives
 * the cursor of the last one listed ("" otherwise). The caller owns *out.
 * 0 or -1. */
int sup_admin_list(sup_admin_t *self, const char *status, const char *account,
                   long long since_ms, const char *after, int limit,
                   json_t **out, int *truncated, char *next, char *err,
                   size_t errlen);

/* A queue document as `list` shows it (now_ms: wall clock). NULL on
 * allocation failure. */
json_t *sup_admin_summary(const bson_t *doc, int64_t now_ms);

/* A queue document in full, as `show` shows it, with the import's
 * csv_imports figures when it has them. NULL on allocation failure. */
json_t *sup_admin_detail(sup_admin_t *self, const bson_t *doc, int64_t now_ms);

/* Moves import id from status from to status to in one findAndModify, and
 * copies the document after the move into out (initialized by the callee).
 * Moves: pending -> paused, paused -> pending (checkpoint kept), pending or
 * paused -> cancelled (claimed_by set to this supervisor, so sup_store_finish
 * can write its csv_imports). Returns 1 moved, 0 when the import is no
 * longer in status from, -1 on error. */
int sup_admin_move(sup_admin_t *self, const char *id, const char *from,
                   const char *to, bson_t *out, char *err, size_t errlen);

/* Records control {action, requested_at, requested_via and who asked:
 * requested_by_uid (by_uid >= 0) or requested_by_key (by_key not NULL or
 * "")} on import id if it is still processing under owner, without turning
 * a recorded cancel into a pause. Returns 1 recorded, 0 when the import
 * changed meanwhile, -1 on error. */
int sup_admin_record(sup_admin_t *self, const char *id, const char *owner,
                     const char *action, long by_uid, const char *by_key,
                     char *err, size_t errlen);

/* Requests recorded on imports this supervisor runs: up to cap into out.
 * Returns how many, or -1. */
int sup_admin_recorded(sup_admin_t *self, sup_admin_request_t *out, size_t cap,
                       char *err, size_t errlen);

/* Removes the recorded request of import id (ours only). 0 or -1. */
int sup_admin_clear(sup_admin_t *self, const char *id, char *err,
                    size_t errlen);

/* Formats epoch milliseconds as ISO 8601 UTC with milliseconds into
 * out[32]. Returns out. */
char *sup_admin_iso8601(int64_t ms, char *out);

#endif
