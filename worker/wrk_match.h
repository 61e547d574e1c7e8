/*
 * wrk_match: what an import does with an existing deal. Pure functions, no
 * I/O: the queue document's `additional_data.mode`, `.match` and
 * `.success_file` read with one type each; the check of the mapping against
 * the match field; the check that a custom match field has the unique index
 * it needs (over the index list the caller read); and the verdict of one
 * row from the facts of its key (the table), with the sentence of
 * each line error.
 *
 * Modes: "create" (absent or null means it: the original behaviour),
 * "update", "upsert". Match fields: "deal_id" (24 hex digits: the deal's
 * _id), "external_id" (a standard text field, unique per account under the
 * partial index WRK_MATCH_EXTERNAL_INDEX), or a custom field id (24 lowercase
 * hex digits) under a unique index on (account_id, additional_info.<id>)
 * that an operator creates. Matching is within the import's account; a deal
 * of the account in another pipeline is a line error.
 */
#ifndef WRK_MATCH_H
#define WRK_MATCH_H

#include <stddef.h>
#include <stdint.h>

#include <bson/bson.h>

typedef enum {
    WRK_MATCH_MODE_CREATE = 0,
    WRK_MATCH_MODE_UPDATE,
    WRK_MATCH_MODE_UPSERT,
} wrk_match_mode_t;

typedef enum {
    WRK_MATCH_KEY_NONE = 0, /* create mode without a match field */
    WRK_MATCH_KEY_DEAL_ID,
    WRK_MATCH_KEY_EXTERNAL_ID,
    WRK_MATCH_KEY_CUSTOM,
} wrk_match_key_t;

/* The name of the index the service keeps on (account_id, external_id),
 * partial on external_id being a string. */
#include "dip_deal_index.h"

#define WRK_MATCH_EXTERNAL_INDEX DIP_DEAL_INDEX_EXTERNAL

typedef struct wrk_match {
    wrk_match_mode_t mode;
    wrk_match_key_t key;
    /* the mapping target that holds the key ("deal_id", "external_id" or
     * the custom field id), and the deal field it is looked up in ("_id",
     * "external_id", "additional_info.<id>"); "" without a key */
    char target[25];
    char field[64];
    int success_file; /* additional_data.success_file: true */
} wrk_match_t;

/* Reads additional_data.mode, .match and .success_file. mode: a string
 * among the three; match: required for update and upsert, optional for
 * create (then rows whose key exists are line errors); success_file: a
 * boolean. Null is absent. 0, or -1 with a sentence naming the field and
 * what it holds ("the queue document's 'additional_data.mode' is 'merge':
 * it must be 'create', 'update' or 'upsert'"). */
int wrk_match_read(const bson_t *q, wrk_match_t *out, char *err, size_t errlen);

/* The mapping (`mappings` of the queue document) against the match: the
 * match target must be the target of one column; deal_id may be mapped
 * only with a match on it. 0, or -1 with a sentence. */
int wrk_match_check_mapping(const wrk_match_t *m, const bson_t *mappings,
                            char *err, size_t errlen);

/* For a custom match field: 1 when `indexes` (an array of index documents
 * as listIndexes returns them: {key, name, unique, ...}) holds a unique
 * index whose keys are exactly account_id then additional_info.<id>
 * (ascending or descending; partial or not). 0 otherwise, with err the
 * sentence that says which index an operator must create. Keys and match
 * external_id: the same check on account_id then external_id (the index
 * the service creates, unless deals already repeat a value). deal_id:
 * always 1. */
int wrk_match_index_ok(const wrk_match_t *m, const bson_t *indexes, char *err,
                       size_t errlen);

/* The facts of one row's key, gathered by the caller. */
typedef struct wrk_match_facts {
    int64_t line;      /* the row's line */
    int key_empty;     /* the match cell is empty */
    int key_malformed; /* a deal_id that is not 24 hex digits */
    /* an earlier line of this file with the same key (this run), 0 none */
    int64_t earlier_line;
    /* deals of the account with this key: 0 none, 1 one in the import's
     * pipeline, 2 one in another pipeline */
    int found;
    /* the found deal was last written by this import at this line (its
     * import.line when this import created it, its last_import.line when
     * this import updated it), 0 none */
    int64_t written_by_line;
} wrk_match_facts_t;

typedef enum {
    WRK_MATCH_CREATE = 0,   /* insert a new deal */
    WRK_MATCH_UPDATE,       /* compare with the deal, update when it differs */
    WRK_MATCH_DONE,         /* this line wrote the deal in an earlier run */
    WRK_MATCH_ERR_EMPTY,    /* update: the match cell is empty */
    WRK_MATCH_ERR_KEY,      /* the deal_id is not an id */
    WRK_MATCH_ERR_NONE,     /* update: no deal with the key */
    WRK_MATCH_ERR_EXISTS,   /* create: a deal with the key exists */
    WRK_MATCH_ERR_PIPELINE, /* the deal is in another pipeline */
    WRK_MATCH_ERR_REPEAT,   /* an earlier line has the key: *first names it */
} wrk_match_verdict_t;

/* The rule of the row: the key first (empty, malformed), then this line's
 * own earlier write, then an earlier line with the key (in this run, or
 * recorded on the deal by an earlier run), then the other pipeline, then
 * the mode's column of the table. *first gets the earlier line for
 * WRK_MATCH_ERR_REPEAT, else 0. */
wrk_match_verdict_t wrk_match_verdict(wrk_match_mode_t mode,
                                      const wrk_match_facts_t *f,
                                      int64_t *first);

/* 1 when the verdict is a line error. */
int wrk_match_is_error(wrk_match_verdict_t v);

/* The line error's sentence, quoting the key (cut to a readable length):
 * "no deal with external_id 'X' in this pipeline", "the key external_id
 * 'X' is on line 12 already: only the first line with a key is applied".
 * Returns out. */
const char *wrk_match_sentence(const wrk_match_t *m, wrk_match_verdict_t v,
                               const char *key, size_t key_len, int64_t first,
                               char *out, size_t outlen);

/* The name of a mode as the contract spells it. */
const char *wrk_match_mode_name(wrk_match_mode_t mode);

#endif
