/*
 * sup_errfile: the error file of an import, a CSV of its rejected rows that
 * a spreadsheet opens as they were in the user's file, with the reason
 * beside each. It is built from what csv_import_errors holds for the import
 * (so a crash or a resume never loses or doubles a row), streamed in line
 * order into an unnamed temporary file in flat memory whatever the count,
 * and uploaded with the storage module (S3: one PUT, a multipart upload
 * past 64 MiB; file://: a temporary file renamed) to the key
 * `<source key>.<queue id>.errors.csv` beside the source. Writing it again
 * for the same import writes the same object: it is idempotent and needs
 * no transaction.
 *
 * The format: UTF-8 with a byte order mark (Excel then reads it as UTF-8),
 * comma-separated, CRLF after every record, quoted as RFC 4180 says (a cell
 * holding a comma, a double quote, CR or LF is quoted, its quotes doubled).
 * The first record is `Line,Field,Error` and the file's own header; each
 * error is its line number, the field, the message and the row's own cells
 * as stored (a row cut short when stored says so after the message); the
 * last record says how many rejected rows are left out (those beyond the
 * stored-errors cap). Every cell that comes from the user or names the
 * user's data and that starts with '=', '+', '-', '@', a tab or a CR gets a
 * leading "'", so no spreadsheet runs it as a formula.
 *
 * The formatting functions are pure (they append to a buffer); only
 * sup_errfile_write does I/O.
 */
#ifndef SUP_ERRFILE_H
#define SUP_ERRFILE_H

#include <stddef.h>
#include <stdint.h>

#include <bson/bson.h>
#include <mongoc/mongoc.h>

#include "dip_storage_io.h"

enum {
    SUP_ERRFILE_OK = 0,
    SUP_ERRFILE_EINVAL = -1,   /* bad argument (a key too long, say) */
    SUP_ERRFILE_EDB = -2,      /* reading csv_import_errors failed */
    SUP_ERRFILE_ESTORAGE = -3, /* the upload failed */
    SUP_ERRFILE_EIO = -4,      /* the temporary file failed */
    SUP_ERRFILE_ENOMEM = -5,
};

/* A growing byte buffer; `fields` counts the cells of the record being
 * built (so the next cell knows whether a comma goes first). Zero it to
 * start; release with sup_errfile_buf_release. */
typedef struct sup_errfile_buf {
    char *data;
    size_t len, cap;
    size_t fields;
    int failed; /* an allocation failed: the contents are incomplete */
} sup_errfile_buf_t;

void sup_errfile_buf_release(sup_errfile_buf_t *b);

/* Appends one cell of len bytes: neutralized when it starts with = + - @
 * tab or CR, then quoted when it holds , " CR or LF. */
void sup_errfile_csv_cell(sup_errfile_buf_t *b, const char *s, size_t len);
/* Appends a number cell (never neutralized: it is ours). */
void sup_errfile_csv_int(sup_errfile_buf_t *b, int64_t v);
/* Ends the record with CRLF. */
void sup_errfile_csv_end(sup_errfile_buf_t *b);

/* The BOM and the first record: Line, Field, Error, then each element of
 * header (a BSON array of strings; NULL for none). */
void sup_errfile_format_header(sup_errfile_buf_t *b, const bson_t *header);

/* One record for a csv_import_errors document: its line, field, message
 * (with a note when row_truncated is true) and the cells of `row`.
 * Non-string cells are written as their JSON text. */
void sup_errfile_format_error(sup_errfile_buf_t *b, const bson_t *error_doc);

/* The last record: how many rejected rows the file leaves out. */
void sup_errfile_format_trailer(sup_errfile_buf_t *b, int64_t rows,
                                int64_t left_out);

/* The error file's key, `<source key>.<queue id>.errors.csv`, malloc'd. The
 * queue id is written as stored: an ObjectId as 24 hex digits, an integer
 * in decimal, a string as itself, anything else as its canonical Extended
 * JSON; bytes other than ASCII letters, digits, '-' and '_' become %XX, so
 * different ids never share a key and no id adds a path segment. A key
 * that would not fit (sup_errfile_key_fit) is shortened. NULL when out of
 * memory or when no form fits. */
char *sup_errfile_key(const char *source_key, const bson_value_t *queue_id);

/* The same rule for another file of the import beside its source:
 * `<source key>.<queue id><suffix>` (suffix ".success.csv", say), cut as
 * sup_errfile_key_fit cuts. */
char *sup_errfile_key_as(const char *source_key, const bson_value_t *queue_id,
                         const char *suffix);

/* The longest key (S3's limit, DIP_STORAGE_KEY_MAX) and the longest last
 * segment (file:// names a temporary file beside it with a few dozen
 * bytes more, under the file system's 255) an error file's key may have. */
#define SUP_ERRFILE_KEY_MAX 1024
#define SUP_ERRFILE_SEGMENT_MAX 200

/* The key of the error file of source_key for the escaped id (the rule
 * under sup_errfile_key): `<source key>.<id>.errors.csv` when it has at
 * most key_max bytes and its last segment at most segment_max; otherwise
 * the source's last segment is cut at a character boundary and marked
 * `~`: `<dir>/<cut name>~.<id>.errors.csv`, fitting both; when not even
 * that fits, the whole key cut: `<cut key>~.<id>.errors.csv`. The id keeps
 * every form unique to the import. NULL when nothing fits. */
char *sup_errfile_key_fit(const char *source_key, const char *id,
                          size_t key_max, size_t segment_max);

/* An unnamed temporary file in $TMPDIR (else /tmp) that vanishes when
 * closed, even after a crash: a descriptor, or -errno. */
int sup_errfile_tmp_open(void);
/* Writes b's bytes to fd and empties b (its cells count kept), adding
 * them to *bytes. 0, or -errno. */
int sup_errfile_flush(int fd, sup_errfile_buf_t *b, int64_t *bytes);

typedef struct sup_errfile_result {
    char *key;     /* where the file is; malloc'd */
    int64_t rows;  /* error records written (the trailer not counted) */
    int64_t bytes; /* the file's size */
} sup_errfile_result_t;

void sup_errfile_result_release(sup_errfile_result_t *r);

/* Writes the error file of the import whose queue document has _id
 * queue_id (as stored) and whose source is source_key: every
 * csv_import_errors document of database dbname (through client,
 * borrowed) with that queue_id, sorted by line,
 * after the header (the queue document's `header`, a BSON array; may be
 * NULL), and a last record counting `left_out` rows (csv_imports'
 * errors_not_stored). Memory stays flat: documents are read in cursor
 * pieces of at most 500 (each a find resuming after the last line, on
 * the index (queue_id, line), with maxTimeMS below client's socket
 * timeout, so a long list is never one bounded read), formatted into a 64 KiB
 * buffer flushed to an unnamed temporary file in $TMPDIR (else /tmp), which the
 * storage module uploads and which disappears when closed. On success fills
 * *out (release it) and returns SUP_ERRFILE_OK; else a SUP_ERRFILE_E* code with
 * a sentence in err, and nothing is left behind except, on S3, what an abort
 * could not remove. Safe to call again after any failure or crash. */
int sup_errfile_write(mongoc_client_t *client, const char *dbname,
                      dip_storage_t *storage, const char *source_key,
                      const bson_value_t *queue_id, const bson_t *header,
                      int64_t left_out, sup_errfile_result_t *out, char *err,
                      size_t errlen);

/* Appends `name: {key, rows, bytes}` to doc, for an update of csv_imports
 * (the caller's, or sup_errfile_record's). */
void sup_errfile_append_result(bson_t *doc, const char *name,
                               const sup_errfile_result_t *r);

/* Records r as csv_imports.error_file of the import (the csv_imports
 * document whose queue_id is queue_id, as stored); a repeat sets the same
 * value. Returns SUP_ERRFILE_OK, or SUP_ERRFILE_EDB with a sentence (also
 * when no csv_imports document matches: the final status comes first). */
int sup_errfile_record(mongoc_database_t *db, const bson_value_t *queue_id,
                       const sup_errfile_result_t *r, char *err, size_t errlen);

#endif
