/*
 * ctl_list: `dealimportctl list [--status S] [--account A] [--limit N]`,
 * imports newest first with their progress, rate and age.
 */
#ifndef CTL_LIST_H
#define CTL_LIST_H

#include "ctl_client.h"

/* argv[0] is "list". Returns the process exit status. */
int ctl_list_main(ctl_opts_t *o, int argc, char **argv);

#endif
