/*
 * it_check: what the worker's acceptance tests read back from the database
 * and the machine: every deal and every error of an import checked against
 * the generated file, the stages of a pipeline, queue documents patched
 * before a supervisor sees them, and the development MongoDB server the
 * outage tests signal.
 */
#ifndef IT_CHECK_H
#define IT_CHECK_H

#include <stdint.h>
#include <sys/types.h>

#include <bson/bson.h>

#include "it_env.h"
#include "it_gen.h"

/* What the import stored, line by line, compared with the file. */
typedef struct it_tally {
    uint64_t deals;         /* deal documents of the import */
    uint64_t deal_twice;    /* lines with more than one deal */
    uint64_t deal_wrong;    /* deals that do not match their line */
    uint64_t deal_missing;  /* good lines without a deal */
    uint64_t errors;        /* csv_import_errors documents of the import */
    uint64_t error_twice;   /* lines with more than one error document */
    uint64_t error_wrong;   /* error documents that do not match their line */
    uint64_t error_missing; /* bad lines without an error document */
    char first[1024];       /* the first problem found, "" if none */
} it_tally_t;

/* Reads every deal and error document of import qid (whose stages live in
 * pipeline) and fills t. 0, or -1 when the database could not be read. */
int it_check_import(it_env_t *env, const bson_oid_t *qid,
                    const bson_oid_t *pipeline, const it_gen_t *gen,
                    it_tally_t *t);

/* Checks pipeline_stages of a pipeline: each name once, each one a name the
 * file uses, as many as the file uses. 0, or -1 with a sentence in why. */
int it_check_stages(it_env_t *env, const bson_oid_t *pipeline,
                    const it_gen_t *gen, char *why, size_t whylen);

/* Documents in coll whose field `key` is the ObjectId id, on an index
 * (the suite runs with notablescan on): deals by import.queue_id are those
 * of the import's account (it_count_import_deals); by pipeline_id, stages
 * are those of the pipeline's account and deals its imported ones (with
 * an `import`) in that account; deals by account_id are its imported ones
 * (every deal the worker writes has an `import`). */
int64_t it_count_id(it_env_t *env, const char *coll, const char *key,
                    const bson_oid_t *id);

/* 1 when the csv_imports document of qid has a note containing words. */
int it_has_note(it_env_t *env, const bson_oid_t *qid, const char *words);

/* Deals of import qid that also match the JSON filter json (an object), in
 * the import's account, on the deals index account_import_line
 * (it_append_import_deals): -1 when refused or failed. */
int64_t it_count_import_deals(it_env_t *env, const bson_oid_t *qid,
                              const char *json);

/* Applies {$set: set} to the queue document qid (before a supervisor runs). */
void it_queue_set(it_env_t *env, const bson_oid_t *qid, const bson_t *set);

/* Uploads the local file path to key (exits the test on failure). */
void it_put_file(it_env_t *env, const char *key, const char *path);

/* Lines of the file at path that contain needle (0 when unreadable). */
int it_log_count(const char *path, const char *needle);

/* Sanitizer reports and unexpected worker deaths in a supervisor's log
 * (the workers log there too); 0 when there are none. A worker that dies
 * of a sanitizer report is restarted from its checkpoint, so only its log
 * tells. */
int it_log_trouble(const char *path);

/* The development MongoDB server's pid (from $DEALIMPORT_DEVSTACK_DIR), or
 * -1 when the tests run against another server. */
pid_t it_devmongo_pid(void);

/* A scale factor for the big cases: 1, or smaller under the sanitizers
 * (DEALIMPORT_TEST_SCALE overrides, e.g. 0.1). */
double it_scale(void);

#endif
