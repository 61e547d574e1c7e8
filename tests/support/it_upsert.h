/*
 * it_upsert: what the update and upsert integration tests share: the file
 * of deals they start from (R00001... with a name, a value, a stage s0-s4
 * and a custom field), queue documents with additional_data.mode and
 * match, one import run to its end under a supervisor of its own, and
 * counts with a formatted filter. Failures end the test (cmocka).
 */
#ifndef IT_UPSERT_H
#define IT_UPSERT_H

#include <stdint.h>
#include <stdio.h>

#include <bson/bson.h>
#include <jansson.h>

#include "it_env.h"

/* The custom field of the files. */
#define IT_UPSERT_CF "64b0000000000000000000cf"

/* Ref -> external_id, Name, Value, Stage, Region -> the custom field. */
extern const char it_upsert_mappings[];

/* Row i (from 1) of the first import: "R%05d,Deal i,100+i,s(i%5),r(i%7)". */
void it_upsert_base_row(FILE *f, int i);

/* Uploads the header and rows 1..n of the first import to key. */
void it_upsert_write_base(it_env_t *env, const char *key, int n);

/* Inserts a pending queue document as it_enqueue does (tags
 * ["imported"]), with additional_data.mode and .match when not NULL and
 * the mappings maps (JSON). */
void it_upsert_enqueue(it_env_t *env, const char *key,
                       const bson_oid_t *account, const bson_oid_t *user,
                       const bson_oid_t *pipeline, const char *mode,
                       const char *match, const char *maps, bson_oid_t *qid);

/* Runs import qid to its end under a supervisor started with extra (may
 * be NULL) and stopped after; fails the test unless it ends want_status.
 * The queue document goes into q (initialized by the callee). */
void it_upsert_run(it_env_t *env, const bson_oid_t *qid,
                   const char *const *extra, const char *want_status,
                   bson_t *q);

/* Asks import qid (pending) for a success file. */
void it_upsert_want_success(it_env_t *env, const bson_oid_t *qid);

/* The success file of ended import qid, once its follow-ups wrote it (a
 * supervisor of its own runs them when none has yet), as Python's csv
 * module reads it: a JSON array of rows (arrays of strings), the header
 * first; its key in key_out (malloc'd, may be NULL). Fails the test when
 * it is not written within two minutes, with csv_imports' reason. */
json_t *it_upsert_success_rows(it_env_t *env, const bson_oid_t *qid,
                               char **key_out);

/* it_count with a printf-formatted filter. */
int64_t it_upsert_count(it_env_t *env, const char *coll, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
