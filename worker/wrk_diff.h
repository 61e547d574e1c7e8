/*
 * wrk_diff: the pure comparison of a row with the deal it matched, for an
 * update (wrk_upsert): which fields to $set, what they held before, which
 * of the import's tags the deal lacks. No I/O.
 */
#ifndef WRK_DIFF_H
#define WRK_DIFF_H

#include <bson/bson.h>

/* row: the deal an insert would write, as wrk_import builds it (_id, the
 * mapped fields, then stage_id and the worker's own fields: pipeline_id,
 * account_id, owner, created_by, tags, source, times, import); deal: the
 * stored deal. Appends to set the fields to $set (deal field name, dotted
 * for a custom field: value), to changes the change entries ({f: field, a:
 * the row's value, b: the deal's, absent when it had none}: an array
 * "0", "1", ...), and to tags the import's tags the deal lacks (an array).
 * Compared: the mapped fields but skip (the "deal_id" key, or NULL), status
 * only when status_given, custom fields only when not "" (an empty cell
 * keeps the deal's value), stage_id unless it is the zero ObjectId (an
 * empty stage cell), and the tags; never the worker's own
 * fields. Returns how many fields and tags differ (0: unchanged). */
int wrk_diff_row(const bson_t *row, const bson_t *deal, const char *skip,
                 int status_given, bson_t *set, bson_t *changes, bson_t *tags);

#endif
