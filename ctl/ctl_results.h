/*
 * ctl_results: what an import handed back, read from MongoDB directly (no
 * supervisor needed): `errors ID` lists its rejected rows or downloads its
 * error file, `events [ID]` shows the completion events sent to the CRM and
 * how each attempt went, and `run ID` queues a dry run's file and mappings
 * again as a real import.
 */
#ifndef CTL_RESULTS_H
#define CTL_RESULTS_H

#include "ctl_client.h"

/* argv[0] is the command's name. Each returns the process exit status. */
int ctl_errors_main(ctl_opts_t *o, int argc, char **argv);
int ctl_events_main(ctl_opts_t *o, int argc, char **argv);
int ctl_run_main(ctl_opts_t *o, int argc, char **argv);

#endif
