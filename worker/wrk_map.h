/*
 * wrk_map: turns one CSV row into the mapped part of a deal. A map is built
 * once per import from the queue document's `mappings` ({<csv column>:
 * <standard deal field or custom field id>}) and refuses, before any row is
 * read, every target a CSV may not write; it is then bound to the file's
 * header. Each row is normalized (stage, status, contract type), validated
 * field by field, and appended to a libbson document; a bad row yields the
 * first failing field and a message for the CRM user. Pure functions over
 * memory: no I/O, no MongoDB.
 *
 * Value rules (the deal fields themselves live in wrk_fields.c):
 * - Cells are UTF-8 without NUL bytes, as the CSV reader delivers them
 *   (it checks each cell once and reads one that is not UTF-8 as
 *   Windows-1252); the mapper does not check them again. Each mapped cell
 *   is trimmed of ASCII whitespace and no-break spaces at both ends, once.
 * - Lowercasing is ASCII only; other UTF-8 letters are kept as they are,
 *   byte for byte.
 * - stage_id: lowercased, whitespace runs collapsed to one space.
 * - status, contract_type: lowercased; each run of spaces, tabs, dashes
 *   (ASCII and Unicode U+2010-U+2015, U+2212) and underscores becomes one
 *   '_', so "Closed - Won" is closed_won.
 * - value: an amount as wrk_values.h reads it under the column's decimal
 *   separator (wrk_map_set_reading), stored as a double. A code in the
 *   value must agree with the currency column, and fills the deal's
 *   currency when that column is empty or not mapped.
 * - expected_close_date: a date or date-time as wrk_dates.h reads it under
 *   the column's date order and the file's layouts, stored as a BSON date.
 * - probability: 0 to 100 with an optional '%' (decimals as value's),
 *   stored as a double.
 * - A refused number or date names the setting that would have read it
 *   ("; set date_order DMY"); a cell of a column that "auto" left
 *   undecided and that reads two ways is refused as ambiguous.
 * - contact_email: an address as wrk_values.h checks it, stored trimmed,
 *   case kept.
 * - currency: 3 ASCII letters, stored uppercase.
 * - Empty optional standard fields are left out; status is always written
 *   ('open' when empty or not mapped). Custom field cells are stored as
 *   trimmed text under additional_info, '' when empty.
 */
#ifndef WRK_MAP_H
#define WRK_MAP_H

#include <stddef.h>
#include <stdint.h>

#include <bson/bson.h>

#include "wrk_format.h"

typedef struct wrk_map wrk_map_t;

/* Most mappings a queue document may hold. */
#define WRK_MAP_MAX_MAPPINGS 4096

/* mappings: the queue document's `mappings` sub-document (copied; the caller
 * keeps ownership). NULL + err sentence on an import-level error: not a
 * non-empty document of non-empty strings, a target that is neither a
 * standard field (wrk_fields_find) nor a custom field id, two columns mapped
 * to one target, or a required field (name, stage_id) mapped by no column. */
wrk_map_t *wrk_map_new(const bson_t *mappings, char *err, size_t errlen);

/* The same for an update import, whose rows only change deals: no field is
 * required, since a field no column maps keeps the deal's value as an empty
 * cell does (wrk_map_set_keep_empty, which the caller sets). An upsert may
 * create deals and uses wrk_map_new. */
wrk_map_t *wrk_map_new_update(const bson_t *mappings, char *err, size_t errlen);
void wrk_map_destroy(wrk_map_t **self_p);

/* Binds the mapping to the CSV header (column names as parsed; a mapping's
 * column matches a header name equal to it after trimming). Header columns
 * that are not mapped are ignored. -1 + err if a mapped column is missing or
 * appears more than once. May be called again for another header. */
int wrk_map_bind(wrk_map_t *self, const char *const *header, size_t n,
                 char *err, size_t errlen);

/* The deal field that header column `column` (0-based) feeds once bound:
 * the standard field name or "additional_info.<id>", written into out
 * (outlen bytes). 0, or -1 (out "") when the column is not mapped or the map
 * is not bound. For naming the field of a cell-level error of the reader. */
int wrk_map_column_field(const wrk_map_t *self, size_t column, char *out,
                         size_t outlen);

/* How value, probability and expected_close_date cells are read from now
 * on: the file's format once decided (wrk_format.h); copied. Until it is
 * set, as a file without a format. */
void wrk_map_set_reading(wrk_map_t *self, const wrk_format_reading_t *reading);

/* For rows that may update a deal (update and upsert imports): an empty
 * cell leaves its field out of the deal, also for the required fields (name,
 * stage_id: the stage name comes back "") and status (no 'open'); the
 * caller decides what a row without them may do. The mapping must still
 * map them, unless made by wrk_map_new_update. Off by default. */
void wrk_map_set_keep_empty(wrk_map_t *self, int on);

/* Where standard field `field` comes from: the mapping's column name
 * (borrowed from the map) and, once bound, its header position ((size_t)-1
 * before). 0, or -1 when the field is not mapped. */
int wrk_map_field_column(const wrk_map_t *self, const char *field,
                         size_t *index, const char **column);

typedef struct wrk_map_error {
    char field[64];    /* deal field, or "additional_info.<id>" */
    char message[512]; /* one sentence for the CRM user, quoting the value */
} wrk_map_error_t;

/* Appends the row's mapped fields to `deal` (standard fields in wrk_fields
 * table order, then additional_info as a sub-document; NOT stage_id), and
 * writes the normalized stage name into stage (stage_len bytes). Returns 0,
 * or -1 with *error filled (first failing field, in table order then custom
 * fields in mapping order) and `deal` left unspecified (caller reinitializes;
 * today a refused row appends nothing, but callers must not rely on it).
 * cells/lens as the CSV reader gives them (ncells == header count): UTF-8
 * without NUL bytes (the caller's guarantee: they go into the deal
 * unchecked, and the deal is inserted without a second validation); they
 * need not be NUL-terminated; a NULL cell or a column past ncells is empty;
 * lens may be NULL for NUL-terminated cells. */
int wrk_map_row(const wrk_map_t *self, const char *const *cells,
                const size_t *lens, size_t ncells, bson_t *deal, char *stage,
                size_t stage_len, wrk_map_error_t *error);

/* Normalizers, exposed for tests (NUL-terminated input, out buffers sized
 * by caller; return 0 / -1). The value parsers are in wrk_values.h. */
int wrk_map_normalize_stage(const char *in, char *out, size_t outlen);
/* status and contract_type, before the lookup in wrk_fields */
int wrk_map_normalize_token(const char *in, char *out, size_t outlen);

#endif
