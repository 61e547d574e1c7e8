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
 * A source that several queue documents name (a second pipeline, a dry
 * run) is deleted last: an import that may delete it records
 * `source_delete_wanted` on its csv_imports first, then counts the queue
 * documents that name the key and are not final (dry runs included; by
 * the index csv_key_status); while there are any it is kept. The import
 * that ends last (whatever its own verdict) finds no other and, when one
 * of the imports of the key wanted it gone, deletes it and records
 * `source_deleted_at` on every one that did.
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
/* Each function reads and writes database dbname through client
 * (borrowed); every read and count carries maxTimeMS
 * (dip_mongo_read_opts: below client's socket timeout), so a read the
 * follow-up child gave up on does not go on in the server. */
/* Queue documents of one key looked at, at most. */
#define SUP_CLEANUP_SHARED_MAX 1000

/* How many queue documents other than queue_id name source_key and are not
 * final (completed, failed, cancelled); -1 with error set. */
int64_t sup_cleanup_count_open(mongoc_client_t *client, const char *dbname,
                               const bson_value_t *queue_id,
                               const char *source_key, bson_error_t *error);
/* How many imports of source_key recorded source_delete_wanted and no
 * source_deleted_at yet; -1 with error set. */
int64_t sup_cleanup_count_wanted(mongoc_client_t *client, const char *dbname,
                                 const char *source_key, bson_error_t *error);
/* Records source_deleted_at = at_ms on those imports. 0, or -1. */
int sup_cleanup_record_wanted(mongoc_client_t *client, const char *dbname,
                              const char *source_key, int64_t at_ms,
                              bson_error_t *error);

int sup_cleanup_source(mongoc_client_t *client, const char *dbname,
                       dip_storage_t *storage, int policy,
                       const bson_value_t *queue_id, const char *source_key,
                       int64_t *deleted_at_ms, char *why, size_t whylen);

#endif
