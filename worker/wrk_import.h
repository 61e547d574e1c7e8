/*
 * wrk_import: one import, start to finish: load and validate the queue
 * document, stream the file through the CSV reader, map and validate each
 * row, resolve stages, insert deals in batches, and report every line's
 * outcome and a checkpoint per batch to the supervisor. A resumed import
 * (its queue document holds a checkpoint) starts at the checkpoint's byte
 * offset and line, never from line 1. An import whose format leaves a
 * column to the file ("auto") reads the file once before its first row
 * (wrk_survey) and keeps the decisions in its checkpoint, so a resume reads
 * the rest the same way.
 */
#ifndef WRK_IMPORT_H
#define WRK_IMPORT_H

#include <stdint.h>

#include <bson/bson.h>

#include "dip_config.h"

/* Runs the import; returns the process exit status. owner and epoch name
 * the claim it runs for (wrk_fence): owner NULL runs unfenced. handed: the
 * queue document as the claim answered it (borrowed; wrk_handoff.h), taken
 * as confirmed at claimed_ms by the monotonic clock, or NULL: the document
 * is read from the database. */
int wrk_import_run(const dip_config_t *cfg, const char *queue_id,
                   const char *events_endpoint, const char *owner,
                   int64_t epoch, const bson_t *handed, int64_t claimed_ms);

#endif
