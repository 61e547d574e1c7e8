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

int ctl_metrics_main(ctl_opts_t *o, int argc, char **argv)
{
    static const struct option opts[] = {CTL_COMMON_OPTIONS,
                                         {NULL, 0, NULL, 0}};
    dip_ctl_request_t req;
    dip_ctl_reply_t reply;
    int c, rc;

    optind = 1;
    opterr = 0;
    while ((c = ctl_getopt(o, argc, argv, opts)) != -1) {
        if (c == CTL_GETOPT_BAD)
            return CTL_EXIT_USAGE;
        if (c == 'h') {
            printf("%s\nThe supervisor's metrics in the Prometheus text "
                   "format, as GET /metrics\nserves them with "
                   "DEALIMPORT_METRICS_ADDR.\n\n%s",
                   usage, ctl_common_help);
            return CTL_EXIT_OK;
        }
        return ctl_usage(usage, "dealimportctl metrics: unknown option '%s'",
                         argv[optind - 1]);
    }
    if (optind < argc)
        return ctl_usage(usage,
                         "dealimportctl metrics: unexpected argument '%s'",
                         argv[optind]);
    memset(&req, 0, sizeof(req));
    req.cmd = DIP_CTL_METRICS;
    rc = ctl_request(o, &req, &reply);
    if (rc != 0)
        return rc;
    if (o->json)
        ctl_print_json(reply.root);
    else
        fputs(json_string_value(json_object_get(reply.root, "text")), stdout);
    dip_ctl_reply_release(&reply);
    return CTL_EXIT_OK;
}
