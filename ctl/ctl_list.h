/*
 * ctl_list: `dealimportctl list [--status S] [--account A] [--since WHEN]
 * [--limit N | --all]`, imports newest first with their progress, rate and
 * age. Past the supervisor's DIP_CTL_LIST_MAX per request, the list is
 * fetched in pages (each request names the previous reply's `next`) and
 * printed as one.
 */
#ifndef CTL_LIST_H
#define CTL_LIST_H

#include "ctl_client.h"

/* The most --limit may ask for (pages of DIP_CTL_LIST_MAX). */
#define CTL_LIST_LIMIT_MAX 1000000

/* --since: "YYYY-MM-DD" (UTC midnight), "YYYY-MM-DDTHH:MM[:SS]Z", or an age
 * "N" followed by m, h or d (minutes, hours, days before now_ms). *out the
 * time in epoch ms. 0; -2 for a real date before 1970-01-01 (the epoch);
 * -3 for a day the calendar lacks (02-30); -1 for anything else. A pure
 * function. */
int ctl_list_parse_since(const char *s, long long now_ms, long long *out);

/* argv[0] is "list". Returns the process exit status. */
int ctl_list_main(ctl_opts_t *o, int argc, char **argv);

#endif
