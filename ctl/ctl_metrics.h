/*
 * ctl_metrics: `dealimportctl metrics`, the supervisor's metrics in the
 * Prometheus text format, read over the control socket: the same text GET
 * /metrics serves, for hosts without an HTTP listener.
 */
#ifndef CTL_METRICS_H
#define CTL_METRICS_H

#include "ctl_client.h"

/* argv[0] is "metrics". Returns the process exit status. */
int ctl_metrics_main(ctl_opts_t *o, int argc, char **argv);

#endif
