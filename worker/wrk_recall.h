/*
 * wrk_recall: the match keys of the lines a resumed update or upsert read
 * before its checkpoint. A key repeated later in the file is a line error
 * naming its first line (wrk_match.h), but the set of keys seen lives in
 * the worker's memory, and a line that left no mark on its deal (unchanged,
 * refused) is in no database either: a run resumed after a crash would
 * take the later line for the first. Before it reads on, the resumed run
 * reads the file again from its start to the checkpoint's line, through
 * its own CSV reader and the import's mapping, and files each mapped row's
 * key with its line (wrk_upsert_recall). Nothing is written and nothing is
 * asked of the database: the cost is reading the part of the file already
 * done, once per resume; memory is the key set's, as the first run's.
 */
#ifndef WRK_RECALL_H
#define WRK_RECALL_H

#include <stddef.h>
#include <stdint.h>

#include "dip_config.h"
#include "wrk_events.h"
#include "wrk_map.h"
#include "wrk_survey.h"
#include "wrk_upsert.h"

enum {
    WRK_RECALL_OK = 0,
    WRK_RECALL_ECONTROL = -1,   /* a control action came: *action */
    WRK_RECALL_EGONE = -2,      /* the supervisor stopped listening */
    WRK_RECALL_EFAILED = -3,    /* the file is refused: err */
    WRK_RECALL_ETRANSIENT = -4, /* storage away after retries: err */
    WRK_RECALL_ENOMEM = -5,     /* out of memory (the reader, the keys) */
    WRK_RECALL_ECHANGED = -6,   /* storage serves another file than then */
};

/* Files in up the key of every row of lines 1..upto of the file at key
 * that map (map: bound here to the file's header, reading set by the
 * caller as for the import). ev (may be NULL) is polled for control actions
 * every `every` rows and while the download waits, as the survey does.
 * then (may be NULL, or not known): the file the earlier runs read, as the
 * checkpoint names it; a response of another file (ETag, or size and
 * modification time without one) is refused before a byte of it is read,
 * as the import refuses it (WRK_RECALL_ECHANGED): a replaced file is not
 * read to the checkpoint for nothing, nor its header bound to the mapping.
 * file gets the file storage served. Returns WRK_RECALL_OK or an error
 * above, with err a sentence and *action the dip_control_action_t. */
int wrk_recall_run(const dip_config_t *cfg, const char *key, wrk_map_t *map,
                   wrk_upsert_t *up, wrk_events_t *ev, int64_t every,
                   int64_t upto, const wrk_survey_file_t *then,
                   wrk_survey_file_t *file, int *action, char *err,
                   size_t errlen);

#endif
