/*
 * sup_cleanup: deleting an import's source file from the storage once it is
 * no longer needed (DEALIMPORT_DELETE_SOURCE=completed). The verdict is
 * taken from what csv_imports records for the import, not from the
 * caller's memory, so a supervisor that crashed and came back (or another
 * one) decides the same way: only a completed import that is not a dry run,
 * and whose error file is recorded when it has errors, loses its source;
 * failed, cancelled and paused imports keep theirs. The deletion comes
 * first and `source_deleted_at` second, so a crash between them repeats a
 * deletion that finds nothing (not an error) and then records it; a repeat
 * after both changes nothing.
 */
#ifndef SUP_CLEANUP_H
#define SUP_CLEANUP_H

#include <stddef.h>
#include <stdint.h>

#include <bson/bson.h>
#include <mongoc/mongoc.h>

#include "dip_storage_io.h"

enum {
    SUP_CLEANUP_DELETED = 1,   /* deleted now, or earlier (recorded) */
    SUP_CLEANUP_KEPT = 0,      /* kept, for the reason in `why` */
    SUP_CLEANUP_EDB = -1,      /* reading or writing csv_imports failed */
    SUP_CLEANUP_ESTORAGE = -2, /* the deletion failed; try again later */
};

/* Applies `policy` (a DIP_DELETE_SOURCE_* value) to the import whose queue
 * document has _id queue_id (as stored) and whose source is source_key in
 * storage. On SUP_CLEANUP_DELETED, *deleted_at_ms (when not NULL) holds
 * csv_imports.source_deleted_at. `why` receives a sentence for every
 * result but a fresh deletion (the reason it was kept, or the failure). */
int sup_cleanup_source(mongoc_database_t *db, dip_storage_t *storage,
                       int policy, const bson_value_t *queue_id,
                       const char *source_key, int64_t *deleted_at_ms,
                       char *why, size_t whylen);

#endif
