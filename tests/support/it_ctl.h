/*
 * it_ctl: what the control-plane integration tests share beside it_env:
 * running dealimportctl and capturing its output and exit status, talking
 * to a supervisor's control socket directly, generated CSV files, and
 * waiting for an import's status or progress.
 */
#ifndef IT_CTL_H
#define IT_CTL_H

#include <stddef.h>
#include <stdint.h>

#include <bson/bson.h>
#include <jansson.h>

#include "it_env.h"

/* The columns of it_ctl_csv and their mappings. */
extern const char it_ctl_mappings[];

/* A CSV of rows data rows "Deal i,<value>,stage<i%5>,open"; every
 * bad_every-th row (0: none) has value "bad", a line error. malloc'd;
 * *len is its size. */
char *it_ctl_csv(int rows, int bad_every, size_t *len);

/* Uploads csv under a fresh key and enqueues it for account (a new
 * account and pipeline when account is NULL). */
void it_ctl_enqueue_csv(it_env_t *env, const char *csv, size_t len,
                        const bson_oid_t *account, bson_oid_t *qid);

/* Runs dealimportctl args (NULL-terminated, without the program name)
 * with the environment and DEALIMPORT_RUNTIME_DIR=runtime, killing it after
 * timeout_ms. stdout and stderr are captured into out and err (may be NULL;
 * NUL-terminated, truncated). Returns the exit status, or -1 when it was
 * killed or did not exit normally. */
int it_ctl_run(const char *runtime, const char *const *args, char *out,
               size_t outlen, char *err, size_t errlen, int timeout_ms);

/* Runs /bin/sh -c cmd likewise (stdout and stderr together into out);
 * DEALIMPORT_CTL names the dealimportctl binary for the command. */
int it_ctl_shell(const char *runtime, const char *cmd, char *out, size_t outlen,
                 int timeout_ms);

/* One request over the ipc socket of runtime; returns the reply object
 * (the caller decrefs) or NULL when none came within timeout_ms. */
json_t *it_ctl_ask(const char *runtime, const char *request, int timeout_ms);

/* Live lines done of import id, from `show` on the supervisor; -1 when it
 * does not answer. */
int64_t it_ctl_lines(const char *runtime, const char *id);

/* Waits until `show` reports at least min_lines (or a final status).
 * Returns the lines seen, -1 on timeout. */
int64_t it_ctl_wait_lines(const char *runtime, const char *id,
                          int64_t min_lines, int timeout_ms);

/* Waits until the queue document's status is status (and, for a final one,
 * its csv_imports has landed: no log_pending). 0 or -1. */
int it_ctl_wait_status(it_env_t *env, const bson_oid_t *qid, const char *status,
                       int timeout_ms);

/* The queue document (out initialized by the callee). 0 or -1. */
int it_ctl_queue_doc(it_env_t *env, const bson_oid_t *qid, bson_t *out);

/* Deals of import qid in its account (it_count_import_deals). */
int64_t it_ctl_deals(it_env_t *env, const bson_oid_t *qid);

/* The file at path, NUL-terminated, malloc'd; NULL when unreadable. */
char *it_ctl_slurp(const char *path);

/* The lines L of "worker pid=N starts at line L" logged for import id, in
 * order, into lines (at most max). Returns how many. */
int it_ctl_start_lines(const char *log_path, const char *id, int64_t *lines,
                       int max);

#endif
