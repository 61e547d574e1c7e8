/*
 * ctl_keygen: `dealimportctl keygen PREFIX`, a CURVE key pair for the
 * control plane's TCP endpoint (PREFIX.key secret, PREFIX.pub public).
 */
#ifndef CTL_KEYGEN_H
#define CTL_KEYGEN_H

#include "ctl_client.h"

/* argv[0] is "keygen". Returns the process exit status. */
int ctl_keygen_main(ctl_opts_t *o, int argc, char **argv);

#endif
