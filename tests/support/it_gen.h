/*
 * it_gen: deal CSV files for the worker's acceptance tests, made from a fixed
 * seed so that every run sees the same bytes. Good rows come in every form a
 * CRM user produces (grouped amounts, currency markers, status and contract
 * aliases, US and ISO dates, quoted cells with commas, quotes (doubled or not)
 * and line breaks, short rows, mixed line ends, blank lines, a byte order
 * mark); bad rows of every kind sit at lines the generator knows, with the
 * field and the words of the error each must produce. The checkers compare what
 * the import stored, deal by deal and error by error, with what the file says.
 */
#ifndef IT_GEN_H
#define IT_GEN_H

#include <stddef.h>
#include <stdint.h>

#include <bson/bson.h>

typedef enum {
    IT_ROW_GOOD = 0,
    IT_ROW_BAD_VALUE,
    IT_ROW_BAD_STATUS,
    IT_ROW_BAD_CONTRACT,
    IT_ROW_BAD_DATE,
    IT_ROW_BAD_PROBABILITY,
    IT_ROW_BAD_EMAIL,
    IT_ROW_BAD_CURRENCY,
    IT_ROW_NO_NAME,
    IT_ROW_NO_STAGE,
    IT_ROW_TOO_MANY_CELLS,
    IT_ROW_NUL,
    /* the two huge kinds: only it_gen_new's `huge` rows of each */
    IT_ROW_CELL_TOO_BIG,
    IT_ROW_TOO_BIG,
    IT_ROW_KINDS
} it_row_t;

typedef struct it_gen it_gen_t;

/* A file of `rows` data rows from `seed`: about bad_per_mille in 1000 rows
 * are bad, cycling through the small kinds, plus `huge` rows each with a
 * cell over 64 KiB and a row over 1 MiB. NULL on allocation failure. */
it_gen_t *it_gen_new(uint64_t rows, unsigned seed, unsigned bad_per_mille,
                     unsigned huge);
void it_gen_destroy(it_gen_t **self_p);

/* Writes the file to path. 0, or -1 (errno set). */
int it_gen_write(it_gen_t *self, const char *path);

uint64_t it_gen_rows(const it_gen_t *self);
/* Rows of that kind (IT_ROW_GOOD: the good rows); IT_ROW_KINDS: bad rows. */
uint64_t it_gen_count(const it_gen_t *self, it_row_t kind);
/* The kind of data line `line` (from 1). */
it_row_t it_gen_kind(const it_gen_t *self, uint64_t line);

/* The queue document's mappings for these files (JSON text), and the custom
 * field id the Region column goes to. */
const char *it_gen_mappings(void);
const char *it_gen_custom_id(void);

/* Distinct normalized stage names that good rows use. */
size_t it_gen_stage_count(const it_gen_t *self);
/* 1 when good rows use the normalized stage `name`. */
int it_gen_uses_stage(const it_gen_t *self, const char *name);

/* Checks one stored deal against its line: every mapped field, each omitted
 * optional field absent, the custom field, source and tags. stage is the
 * name of the stage its stage_id points to (the caller resolves it). 0, or
 * -1 with a sentence in why. */
int it_gen_check_deal(const it_gen_t *self, const bson_t *deal,
                      const char *stage, char *why, size_t whylen);

/* Checks one csv_import_errors document against its line: a bad line, the
 * expected field, the message's key words and the offending cell in row.
 * 0, or -1 with a sentence in why. */
int it_gen_check_error(const it_gen_t *self, const bson_t *doc, char *why,
                       size_t whylen);

/* The field and key words the error of a bad kind must have. */
const char *it_gen_kind_field(it_row_t kind);
const char *it_gen_kind_words(it_row_t kind);
const char *it_gen_kind_name(it_row_t kind);

#endif
