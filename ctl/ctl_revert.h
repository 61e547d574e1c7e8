/*
 * ctl_revert: `dealimportctl revert ID`, undoing a finished import in
 * MongoDB directly (no supervisor needed): its deals, and the pipeline
 * stages it created that no remaining deal uses, are deleted, and
 * csv_imports records what was removed.
 */
#ifndef CTL_REVERT_H
#define CTL_REVERT_H

#include "ctl_client.h"

/* argv[0] is "revert". Returns the process exit status. */
int ctl_revert_main(ctl_opts_t *o, int argc, char **argv);

#endif
