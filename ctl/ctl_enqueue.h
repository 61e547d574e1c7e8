/*
 * ctl_enqueue: `dealimportctl enqueue`, the command-line twin of the CRM's
 * import API: uploads a CSV to the configured storage under a fresh key and
 * inserts the pending `queues` document exactly as the CRM writes it.
 */
#ifndef CTL_ENQUEUE_H
#define CTL_ENQUEUE_H

#include "dip_config.h"

/* argv[0] is "enqueue". Returns the process exit status. */
int ctl_enqueue_main(const dip_config_t *cfg, int argc, char **argv);

#endif
