/*
 * ctl_status: `dealimportctl status`, the supervisor's own state: version,
 * uptime, workers running and their limit, imports by status, and running
 * imports per account.
 */
#ifndef CTL_STATUS_H
#define CTL_STATUS_H

#include "ctl_client.h"

/* argv[0] is "status". Returns the process exit status. */
int ctl_status_main(ctl_opts_t *o, int argc, char **argv);

#endif
