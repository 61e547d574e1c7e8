/*
 * ctl_action: `dealimportctl pause ID`, `resume ID` and `cancel ID`: one
 * request each, the supervisor's sentence as the answer.
 */
#ifndef CTL_ACTION_H
#define CTL_ACTION_H

#include "ctl_client.h"

/* argv[0] is "pause", "resume" or "cancel". Returns the exit status. */
int ctl_action_main(ctl_opts_t *o, int argc, char **argv);

#endif
