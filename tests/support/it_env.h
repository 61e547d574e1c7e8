/*
 * it_env: what the integration tests share: a private database on the
 * development stack (named per test process, dropped at the end), uploads to
 * the dev storage, queue documents as the CRM writes them, and starting and
 * stopping the real programs from build/bin.
 */
#ifndef IT_ENV_H
#define IT_ENV_H

#include <sys/types.h>

#include <bson/bson.h>
#include <mongoc/mongoc.h>

#include "dip_config.h"
#include "dip_storage_io.h"

typedef struct it_env {
    dip_config_t cfg; /* from the environment, with the private database */
    char uri[1024];   /* DEALIMPORT_MONGODB_URI for the programs */
    char dbname[64];
    char runtime[256]; /* a fresh runtime directory per supervisor start,
                        * under it_tmpdir() */
    mongoc_client_t *client;
    mongoc_database_t *db;
    dip_storage_t *storage;
    pid_t started[32]; /* programs still running, killed at release */
    /* The development server's switches at init (devSlow's prices and
     * notablescan), put back at release; -1: not a development server. */
    int dev_notablescan;
    bson_t *dev_prices;
} it_env_t;

/* 0, or it_skip_status() when the dev stack's settings are absent: 77 (the
 * caller exits 77 to report a skip), 1 where CI=true (a failure). name becomes
 * part of the database name. */
int it_env_init(it_env_t *env, const char *name);
/* Stops what env started, drops its database, and puts the development
 * server's prices and notablescan back as init found them; a program that
 * left them changed (a test that failed before its own reset, or forgot it)
 * exits 1 here, naming what it left, so the next test of the suite never
 * runs on a server kinder or slower than the suite's. */
void it_env_release(it_env_t *env);

mongoc_collection_t *it_coll(it_env_t *env, const char *name);

/* Starts dealimport-supervisor with env's settings plus extra "K=V" strings
 * (NULL-terminated, may be NULL); its stderr goes to log_path if not NULL.
 * Returns its pid once its control socket exists, or it has exited (not
 * reaped), or 60 s have passed. */
pid_t it_supervisor_start(it_env_t *env, const char *const *extra,
                          const char *log_path);
/* Sends sig and waits up to timeout_ms; returns the wait status, or -1 if it
 * did not exit (then it is killed). Programs a test started and did not
 * stop (a failed assertion) are killed by it_env_release. */
int it_process_stop(pid_t pid, int sig, int timeout_ms);
/* Kills whatever this test started and is still running (a test's
 * teardown, so a failed test leaves nothing behind for the next). */
void it_stop_all(it_env_t *env);

/* Uploads bytes to key. */
void it_put(it_env_t *env, const char *key, const char *data, size_t len);

/* Inserts a pipeline of account; returns its id. */
void it_pipeline(it_env_t *env, const bson_oid_t *account, bson_oid_t *out);

/* Inserts a pending queue document. mappings_json is a JSON object text;
 * key may be NULL (no csv entry). */
void it_enqueue(it_env_t *env, const char *key, const bson_oid_t *account,
                const bson_oid_t *user, const bson_oid_t *pipeline,
                const char *mappings_json, bson_oid_t *out);

/* Waits until the queue document's status is one of the final ones
 * (completed, failed, cancelled) and its csv_imports has landed (no
 * log_pending), or timeout_ms passes. Copies the document
 * into out (initialized by the callee). Returns 0 or -1 on timeout. */
int it_wait_final(it_env_t *env, const bson_oid_t *qid, int timeout_ms,
                  bson_t *out);

/* count_documents with a JSON filter. The suite runs with the development
 * server's notablescan on (scripts/test): a filter no index serves is
 * refused (291), said on stderr, and answered -1. */
int64_t it_count(it_env_t *env, const char *coll, const char *filter_json);

/* Sets prices of the development server's slow mode, e.g.
 * "{\"write_us\": 200}" (the fields not named keep theirs); 0, or -1
 * when the server refused (said on stderr). The prices stay until set
 * again: a test that sets them resets them in its teardown. */
int it_dev_slow(it_env_t *env, const char *prices_json);

/* The account of import qid as its deals carry it: the queue document's
 * account_id (an ObjectId, or a 24-hex string read as one). 0, or -1 when
 * the queue document or its account is absent. */
int it_import_account(it_env_t *env, const bson_oid_t *qid, bson_oid_t *out);

/* Appends what selects the deals of import qid on the deals index
 * account_import_line: account_id (it_import_account; when the queue
 * document names none, {$exists: true}: every key of the index, every
 * account's deals of the import), import.queue_id, and the index's partial
 * filter import: {$exists: true}, which mongod does not derive from
 * import.queue_id. */
void it_append_import_deals(it_env_t *env, bson_t *filter,
                            const bson_oid_t *qid);

/* Switches the development server's notablescan (devNoTableScan) to on
 * (1) or off (0) and answers what it was, or -1 on a server without the
 * switch (a real one: nothing changes). The suite runs with it on
 * (scripts/test); a test turns it off only around a program whose scans
 * are known and named in docs/scaling.md (dealimportctl revert), and puts
 * it back as it was. */
int it_notablescan(it_env_t *env, int on);

/* A string field of a document, or "". */
const char *it_str(const bson_t *doc, const char *dotted);

/* it_proc.c: the pid of the import's worker, or -1. */
pid_t it_worker_pid(const bson_oid_t *qid);
/* The live (not exited) worker processes of the import, each a child of
 * a supervisor (not a task a worker cloned): how many, and up to max of
 * their pids in out. */
int it_worker_pids(const bson_oid_t *qid, pid_t *out, int max);
/* Waits up to timeout_ms for the import's worker to exist; its pid or -1. */
pid_t it_wait_worker(const bson_oid_t *qid, int timeout_ms);
/* An integer of the queue document (e.g. "progress.lines"), -1 if absent. */
int64_t it_queue_int(it_env_t *env, const bson_oid_t *qid, const char *dotted);
/* Waits until that integer is >= at_least; 0, or -1 on timeout. */
int it_wait_int(it_env_t *env, const bson_oid_t *qid, const char *dotted,
                int64_t at_least, int timeout_ms);
/* Uploads "Deal Name,Value,Stage,Description" with rows good rows whose
 * description is cell_bytes long. */
void it_put_rows(it_env_t *env, const char *key, int rows, int cell_bytes);
/* 1 when a line of the file contains needle. */
int it_file_contains(const char *path, const char *needle);

#endif
