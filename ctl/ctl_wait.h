/*
 * ctl_wait: `dealimportctl enqueue --wait`, following a queued import in
 * MongoDB until it ends, without a supervisor's control socket (enqueue
 * has the database settings; an operator on another machine may have no
 * socket to reach). Each status change goes to standard error as one line;
 * the end goes to standard output.
 */
#ifndef CTL_WAIT_H
#define CTL_WAIT_H

#include <bson/bson.h>
#include <mongoc/mongoc.h>

/* Polls the queue document qid (hex its id) every interval_ms until its
 * status is final. Returns 0 when completed, CTL_EXIT_IMPORT_FAILED (2)
 * when failed or cancelled, CTL_EXIT_REFUSED (1) when the document is gone,
 * CTL_EXIT_UNAVAILABLE (69) after the database failed to answer for a
 * minute running. json: the end as one JSON object. */
/* How long an import may stay pending before --wait says, once, that no
 * supervisor has claimed it (it keeps waiting). */
#define CTL_WAIT_HINT_MS 30000

/* Pure: 1 when the hint is due (status pending for pending_ms or more and
 * not hinted yet), else 0. */
int ctl_wait_hint_due(const char *status, long long pending_ms, int hinted);

int ctl_wait_import(mongoc_client_t *client, const char *db,
                    const bson_oid_t *qid, const char *hex, long interval_ms,
                    int json);

#endif
