/*
 * ctl_show: `dealimportctl show ID`, one import in full: status, progress,
 * checkpoint, worker and its limits, last error, timing, import log.
 */
#ifndef CTL_SHOW_H
#define CTL_SHOW_H

#include "ctl_client.h"

/* argv[0] is "show". Returns the process exit status. */
int ctl_show_main(ctl_opts_t *o, int argc, char **argv);

#endif
