/*
 * wrk_lines: what each written line of an import did, kept for its success
 * file (additional_data.success_file). After each batch's deals are
 * written, and before its checkpoint, one document in `csv_import_lines`:
 *
 *   {queue_id, first_line, last_line, file: {etag} or {size, mtime_ns},
 *    rows: [{line, action: "created"|"updated"|"unchanged", deal_id}],
 *    created_at}
 *
 * rows in line order, only the lines that wrote (or found) a deal: a line
 * error is in csv_import_errors instead. Unique on (queue_id, first_line)
 * and replaced whole, so a batch done again after a crash, a resume or a
 * takeover (which starts where the checkpoint stands, at the same first
 * line) leaves one document, the last run's; its actions are the same
 * (a line that wrote in the run that died is found as its own: created
 * or updated, never twice). The reader (sup_succfile) takes each line
 * once in line order, so even batches cut differently by two runs cannot
 * list a line twice. `file` is the source the batch read: the success
 * file is written only from that same object.
 *
 * Memory: one batch's rows. Cost: one write per batch, and for the rows
 * whose insert met the line's own earlier deal (a run that died after its
 * write), one find of their ids on (account_id, import.queue_id,
 * import.line).
 */
#ifndef WRK_LINES_H
#define WRK_LINES_H

#include <stddef.h>
#include <stdint.h>

#include <bson/bson.h>

#include "wrk_db.h"

#define WRK_LINES_COLLECTION "csv_import_lines"
#define WRK_LINES_INDEX "queue_first_line"

/* What a line did, as the success file spells it. */
typedef enum {
    WRK_LINES_NONE = 0, /* not written: a line error, left out */
    WRK_LINES_CREATED,
    WRK_LINES_UPDATED,
    WRK_LINES_UNCHANGED,
} wrk_lines_action_t;

/* "created", "updated", "unchanged"; NULL for NONE. */
const char *wrk_lines_action_name(wrk_lines_action_t a);

/* The unique index, before the first batch. WRK_DB_OK, or WRK_DB_EFAIL /
 * WRK_DB_ETRANSIENT with err. */
int wrk_lines_prepare(wrk_db_t *db, char *err, size_t errlen);

/* Records one batch of n rows: lines[i], action[i] and ids[i] (the deal's
 * id; the zero id when unknown: it is then looked up by the line, the deal
 * the line created in an earlier run, and filled in). file (may be NULL): the
 * source's identity as the checkpoint keeps it. Rows whose action is NONE are
 * left out; a batch with none writes nothing. WRK_DB_OK, or WRK_DB_ETRANSIENT /
 * WRK_DB_EFAIL with err (the batch is then done again from the
 * checkpoint). */
int wrk_lines_record(wrk_db_t *db, const bson_oid_t *qid,
                     const bson_oid_t *account, const bson_t *file, size_t n,
                     const int64_t *lines, const wrk_lines_action_t *action,
                     bson_oid_t *ids, char *err, size_t errlen);

#endif
