/*
 * ctl_precheck: what `dealimportctl enqueue` can tell before it uploads and
 * queues anything, so that an import the worker would refuse in its first
 * second is refused at the prompt instead. The verdicts are the worker's
 * own: the mappings by wrk_map's rules (each target a deal field of
 * wrk_fields or a custom field id, no target twice, name and stage_id
 * mapped unless the import only updates), the header by the worker's CSV reader
 * and wrk_map_bind (every mapped column present once), and the pipeline by the
 * worker's query (it exists in the account). What only the import can find out
 * (a custom field the account does not have, a bad row) is left to it.
 */
#ifndef CTL_PRECHECK_H
#define CTL_PRECHECK_H

#include <stddef.h>

#include <bson/bson.h>
#include <mongoc/mongoc.h>

/* Checks mappings (the queue document's sub-document) and the header of the
 * CSV file at path against them. update: the import only updates deals
 * (mode "update"), so name and stage_id need no column, as in the worker
 * (wrk_map_new_update). 0, or -1 with the worker's sentence in err. Reads
 * no more of the file than its header line. */
int ctl_precheck_file(const bson_t *mappings, int update, const char *path,
                      char *err, size_t errlen);

enum {
    CTL_PRECHECK_OK = 0,
    CTL_PRECHECK_NOTFOUND = 1, /* the pipeline is not the account's */
    CTL_PRECHECK_EDB = -1,     /* the database did not answer */
};

/* Whether pipeline exists in account (ids stored as ObjectId or 24-hex
 * strings both match), bounded by maxTimeMS. CTL_PRECHECK_*; err says
 * why when not OK. */
int ctl_precheck_pipeline(mongoc_client_t *client, const char *db,
                          const bson_oid_t *account, const bson_oid_t *pipeline,
                          char *err, size_t errlen);

#endif
