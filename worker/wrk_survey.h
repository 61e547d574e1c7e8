/*
 * wrk_survey: the one pass over the whole file that a format of "auto"
 * needs before the import writes its first deal (wrk_format.h says what is
 * decided). It streams the file from storage through its own CSV reader,
 * binds the mapping to the file's header, and tallies the cells of each
 * column left to the file; memory stays flat (four counters per column and
 * the reader's buffers). Nothing is written. A dry run surveys the same
 * way, so it reports the decisions the import will make.
 */
#ifndef WRK_SURVEY_H
#define WRK_SURVEY_H

#include <stddef.h>
#include <stdint.h>

#include "dip_config.h"
#include "wrk_events.h"
#include "wrk_format.h"
#include "wrk_map.h"

/* The file the survey read, as storage named it: an ETag, or size and
 * modification time. The import must read the same one. */
typedef struct wrk_survey_file {
    int known;
    char etag[256];
    int64_t size, mtime_ns;
} wrk_survey_file_t;

/* Files f as storage named the file (dip_storage_sink_t's identity): an
 * ETag that is not text, or too long, cannot be kept in BSON and leaves f
 * as it was (a checkpoint then names no file and a resume checks none). */
void wrk_survey_file_set(wrk_survey_file_t *f, const char *etag, int64_t size,
                         int64_t mtime_ns);

/* Whether a and b name the same file: by ETag when either has one, else by
 * size and modification time; two unknown files are the same. */
int wrk_survey_same_file(const wrk_survey_file_t *a,
                         const wrk_survey_file_t *b);

enum {
    WRK_SURVEY_OK = 0,
    WRK_SURVEY_ECONTROL = -1,   /* a control action came: *action */
    WRK_SURVEY_EGONE = -2,      /* the supervisor stopped listening */
    WRK_SURVEY_EFAILED = -3,    /* the file or the header is refused: err */
    WRK_SURVEY_ETRANSIENT = -4, /* storage away after retries: err */
    WRK_SURVEY_ENOMEM = -5,     /* the reader ran out of memory */
};

/* Tallies every pending kind of d (wrk_format_pending) from the file at
 * key, then decides them (wrk_format_finish). map is bound to the file's
 * header here. ev (may be NULL) is polled for control actions (and the
 * supervisor's absence) every `every` rows and while the download waits
 * (dip_storage_set_stop: a GET never answered, a trickle, a backoff), so a
 * stop reaches the survey within seconds whatever it waits for. Returns
 * WRK_SURVEY_OK or an error above, with err a sentence for the CRM user and
 * *action the dip_control_action_t. */
int wrk_survey_run(const dip_config_t *cfg, const char *key, wrk_map_t *map,
                   wrk_events_t *ev, int64_t every, wrk_format_decisions_t *d,
                   wrk_survey_file_t *file, int *action, char *err,
                   size_t errlen);

#endif
