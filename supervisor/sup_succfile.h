/*
 * sup_succfile: the success file of an import that asked for one
 * (additional_data.success_file): a CSV beside its source, at
 * `<source key>.<queue id>.success.csv`, of every line that wrote or found
 * a deal, in line order: `Line,Action,Deal id` and then the source's own
 * header, each line its number, created / updated / unchanged, the deal's
 * id (24 hex digits) and the row's cells as the worker read them. Written
 * in the same format as the error file (sup_errfile: a byte order mark,
 * CRLF, RFC 4180 quotes, formulas neutralized), after the import's end, by
 * its follow-ups.
 *
 * What each line did is what the worker recorded per batch in
 * csv_import_lines (wrk_lines.h); the cells are read again from the
 * source, which the worker does not keep. Both are streamed side by side
 * in line order (a cursor of csv_import_lines by (queue_id, first_line),
 * the file through the worker's own CSV reader), so memory stays flat
 * whatever the count: one batch's record, the reader's buffers and a
 * 64 KiB output buffer flushed to an unnamed temporary file, uploaded
 * whole. Each line is taken once, the first record that names it, so
 * records of two runs of one batch (a crash, a resume, a takeover) never
 * list a line twice. The source must be the object the import read (the
 * records' `file`: its ETag, or size and modification time): another one,
 * or none, fails the step for good (SUP_SUCCFILE_ESOURCE), as does a line
 * the records name that the file does not hold. Writing it again writes
 * the same object.
 */
#ifndef SUP_SUCCFILE_H
#define SUP_SUCCFILE_H

#include <stddef.h>

#include <bson/bson.h>
#include <mongoc/mongoc.h>

#include "dip_storage_io.h"
#include "sup_errfile.h"

#define SUP_SUCCFILE_SUFFIX ".success.csv"
#define SUP_SUCCFILE_COLLECTION "csv_import_lines"

enum {
    SUP_SUCCFILE_OK = 0,
    SUP_SUCCFILE_EINVAL = -1,   /* bad argument, a key that cannot be */
    SUP_SUCCFILE_EDB = -2,      /* reading csv_import_lines failed */
    SUP_SUCCFILE_ESTORAGE = -3, /* the download or upload failed: retry */
    SUP_SUCCFILE_EIO = -4,      /* the temporary file failed */
    SUP_SUCCFILE_ENOMEM = -5,
    SUP_SUCCFILE_ESOURCE = -6, /* the source is gone, denied or another
                                  object: a retry cannot help */
};

/* Writes the success file of the import whose queue _id is queue_id (as
 * stored) and whose source is source_key, then uploads it. On success
 * fills *out (rows: the lines listed; release it) and returns
 * SUP_SUCCFILE_OK; else a code above with a sentence in err. Safe to call
 * again after any failure or crash. */
int sup_succfile_write(mongoc_database_t *db, dip_storage_t *storage,
                       const char *source_key, const bson_value_t *queue_id,
                       sup_errfile_result_t *out, char *err, size_t errlen);

/* Records r as `success_file` on the import's csv_imports document and
 * on its queue document. SUP_SUCCFILE_OK, or SUP_SUCCFILE_EDB with a
 * sentence. */
int sup_succfile_record(mongoc_database_t *db, const bson_value_t *queue_id,
                        const sup_errfile_result_t *r, char *err,
                        size_t errlen);

/* 1 when the queue document asks for a success file: additional_data.
 * success_file is the boolean true (any other type is no) and it is not a
 * dry run (dry_run true). */
int sup_succfile_wanted(const bson_t *queue_doc);

#endif
