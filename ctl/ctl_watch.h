/*
 * ctl_watch: `dealimportctl watch ID`, an import's progress until it ends:
 * a redrawn progress bar on a terminal (lines, percent of bytes, rate, ETA,
 * errors), plain periodic lines otherwise, JSON lines with --json, and a
 * summary at the end. Exits 0 when the import completed, 2 when it failed
 * or was cancelled. The formatting and rate functions are pure, for tests.
 */
#ifndef CTL_WATCH_H
#define CTL_WATCH_H

#include <stddef.h>
#include <stdint.h>

#include "ctl_client.h"

#define CTL_WATCH_WINDOW 32

/* One look at an import. */
typedef struct ctl_watch_sample {
    const char *status;
    int64_t lines, added, errors, bytes, bytes_total; /* total -1: unknown */
    double rate;       /* lines per second; < 0 unknown */
    long long eta_s;   /* < 0 unknown */
    long long elapsed; /* seconds of the last run; < 0 unknown */
    const char *error; /* a failed import's error, or NULL */
} ctl_watch_sample_t;

/* Recent samples, for rates over the last few seconds. */
typedef struct ctl_watch_rate {
    int64_t t_ms[CTL_WATCH_WINDOW], lines[CTL_WATCH_WINDOW],
        bytes[CTL_WATCH_WINDOW];
    int n, head;
} ctl_watch_rate_t;

void ctl_watch_rate_init(ctl_watch_rate_t *r);
/* Adds a sample taken at t_ms (monotonic). Figures that go backwards (a
 * new run) start the window again. */
void ctl_watch_rate_add(ctl_watch_rate_t *r, int64_t t_ms, int64_t lines,
                        int64_t bytes);
/* Lines and bytes per second over the samples of the last 10 s; -1 when
 * they span less than a second. */
void ctl_watch_rate_get(const ctl_watch_rate_t *r, double *lines_per_s,
                        double *bytes_per_s);

/* The bar line for a terminal of width columns (no newline). */
char *ctl_watch_bar(const ctl_watch_sample_t *s, int width, char *out,
                    size_t len);
/* A plain progress line (no newline). */
char *ctl_watch_line(const char *id, const ctl_watch_sample_t *s, char *out,
                     size_t len);
/* The last line, once the status is final (no newline). */
char *ctl_watch_summary(const char *id, const ctl_watch_sample_t *s, char *out,
                        size_t len);

/* argv[0] is "watch". Returns the process exit status. */
int ctl_watch_main(ctl_opts_t *o, int argc, char **argv);

#endif
