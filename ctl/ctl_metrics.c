/*
 * ctl_metrics: asks the supervisor for `metrics` and prints the text as it
 * came (node_exporter's textfile collector can take it as is), or the reply
 * object with --json.
 */
#include "ctl_metrics.h"

#include <stdio.h>
#include <string.h>

static const char usage[] = "usage: dealimportctl metrics [--json] "
                            "[--timeout SECONDS] [--connect ENDPOINT]\n";

static void print_text(const json_t *root)
{
    fputs(json_string_value(json_object_get(root, "text")), stdout);
}

int ctl_metrics_main(ctl_opts_t *o, int argc, char **argv)
{
    dip_ctl_request_t req;
    int rc = ctl_simple_args(
        o, argc, argv, "metrics", usage,
        "The supervisor's metrics in the Prometheus text format, as GET "
        "/metrics\nserves them with DEALIMPORT_METRICS_ADDR.",
        NULL);
    if (rc >= 0)
        return rc;
    memset(&req, 0, sizeof(req));
    req.cmd = DIP_CTL_METRICS;
    return ctl_request_print(o, &req, print_text);
}
