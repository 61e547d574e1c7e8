/*
 * wrk_stages: the import's stage cache. The pipeline's stages are read in
 * one query when the import starts (wrk_stages_preload); a name not among
 * them is looked up (or created) in MongoDB once per import; later rows with
 * the same name cost nothing.
 */
#ifndef WRK_STAGES_H
#define WRK_STAGES_H

#include <bson/bson.h>

#include "wrk_db.h"

typedef struct wrk_stages wrk_stages_t;

/* Borrows db; copies the ids. The import may create at most max_new new
 * stages, of which created_before were created by earlier runs of it (from
 * its checkpoint). */
wrk_stages_t *wrk_stages_new(wrk_db_t *db, const bson_oid_t *account,
                             const bson_oid_t *pipeline, const bson_oid_t *user,
                             size_t max_new, size_t created_before);

/* A name that would be a new stage past the import's limit (not a
 * database failure: the row is a line error). */
#define WRK_STAGES_ELIMIT (-100)
void wrk_stages_destroy(wrk_stages_t **self_p);

/* At most this many of the pipeline's stages are read ahead. */
#define WRK_STAGES_PRELOAD_MAX 1000

/* Reads the pipeline's existing stages (up to WRK_STAGES_PRELOAD_MAX) into
 * the cache in one query, so that later only new names cost a write each.
 * A WRK_DB_* code; on failure the cache holds what was read and every other
 * name is still looked up by wrk_stages_resolve. */
int wrk_stages_preload(wrk_stages_t *self, char *err, size_t errlen);

/* The stage id for name: from the cache, else found or created. Returns a
 * WRK_DB_* code, or WRK_STAGES_ELIMIT with a sentence in err. */
int wrk_stages_resolve(wrk_stages_t *self, const char *name, bson_oid_t *out,
                       char *err, size_t errlen);

/* From now on a dry run: nothing is created. A name that is not found and
 * may still be created (under the limit) counts as created, gets an id made
 * up here, and is remembered as new, in the order met. */
void wrk_stages_set_dry(wrk_stages_t *self);

/* A dry run's resume: name was new in an earlier run (and is counted in
 * created_before): it is new again without counting twice. 0, or -1 when
 * out of memory. */
int wrk_stages_restore_new(wrk_stages_t *self, const char *name);

/* A dry run's new names, in the order met (earlier runs first): how many,
 * and in *names (borrowed until the next resolve). */
size_t wrk_stages_new_names(const wrk_stages_t *self,
                            const char *const **names);

/* Stages this import created so far (earlier runs included), and names
 * cached. */
size_t wrk_stages_created(const wrk_stages_t *self);
size_t wrk_stages_cached(const wrk_stages_t *self);

#endif
