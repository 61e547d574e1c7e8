/*
 * ctl_list: asks the supervisor for `list` and prints a table, newest
 * import first; rate is only known for imports running on the supervisor
 * asked.
 */
#include "ctl_list.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: dealimportctl list [--status S] [--account ID] [--limit N] "
    "[--json]\n"
    "                          [--timeout SECONDS] [--connect ENDPOINT]\n";

static void print_table(const json_t *r)
{
    const json_t *arr = json_object_get(r, "imports");
    printf("%-24s  %-24s  %-10s  %9s  %9s  %7s  %7s  %6s\n", "ID", "ACCOUNT",
           "STATUS", "LINES", "ADDED", "ERRORS", "RATE/S", "AGE");
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const json_t *o = json_array_get(arr, i);
        const json_t *rate = json_object_get(o, "rate");
        const json_t *age = json_object_get(o, "age_s");
        const char *acc = json_string_value(json_object_get(o, "account"));
        char rbuf[32] = "-", abuf[32] = "-";
        if (json_is_number(rate))
            snprintf(rbuf, sizeof(rbuf), "%.0f", json_number_value(rate));
        if (json_is_integer(age))
            ctl_duration(json_integer_value(age), abuf, sizeof(abuf));
        printf("%-24s  %-24s  %-10s  %9lld  %9lld  %7lld  %7s  %6s\n",
               json_string_value(json_object_get(o, "id")), acc ? acc : "-",
               json_string_value(json_object_get(o, "status")),
               (long long)json_integer_value(json_object_get(o, "lines")),
               (long long)json_integer_value(json_object_get(o, "added")),
               (long long)json_integer_value(json_object_get(o, "errors")),
               rbuf, abuf);
    }
    if (json_is_true(json_object_get(r, "truncated")))
        printf("(more imports match: use --limit or a filter)\n");
}

int ctl_list_main(ctl_opts_t *o, int argc, char **argv)
{
    static const struct option opts[] = {
        CTL_COMMON_OPTIONS,
        {"status", required_argument, NULL, 's'},
        {"account", required_argument, NULL, 'a'},
        {"limit", required_argument, NULL, 'n'},
        {NULL, 0, NULL, 0},
    };
    dip_ctl_request_t req;
    char own[400];
    int c;

    memset(&req, 0, sizeof(req));
    req.cmd = DIP_CTL_LIST;
    optind = 1;
    opterr = 0;
    while ((c = ctl_getopt(o, argc, argv, opts)) != -1) {
        switch (c) {
        case 's':
            if (!dip_ctl_status_valid(optarg)) {
                fprintf(stderr,
                        "dealimportctl list: --status '%s' is not one of "
                        "pending, processing, paused, completed, failed, "
                        "cancelled\n",
                        optarg);
                return CTL_EXIT_USAGE;
            }
            snprintf(req.status, sizeof(req.status), "%s", optarg);
            break;
        case 'a':
            if (ctl_parse_id(optarg, "account", req.account) < 0)
                return CTL_EXIT_USAGE;
            break;
        case 'n': {
            char *end = NULL;
            long n = strtol(optarg, &end, 10);
            if (end == optarg || *end || n < 1 || n > DIP_CTL_LIST_MAX) {
                fprintf(stderr,
                        "dealimportctl list: --limit '%s' is not a number "
                        "from 1 to %d\n",
                        optarg, DIP_CTL_LIST_MAX);
                return CTL_EXIT_USAGE;
            }
            req.limit = (int)n;
            break;
        }
        default:
            snprintf(own, sizeof(own),
                     "  --status S         pending, processing, paused, "
                     "completed, failed or cancelled\n"
                     "  --account ID       one account's imports\n"
                     "  --limit N          at most N imports (1-%d, default "
                     "%d)\n",
                     DIP_CTL_LIST_MAX, DIP_CTL_LIST_DEFAULT);
            return ctl_opt_end(
                c, argv, "list", usage,
                "Imports, newest first: id, account, status, lines done, "
                "deals added, line\nerrors, rate (lines/s, for imports "
                "running on this supervisor) and age.",
                own);
        }
    }
    if (optind < argc) {
        return ctl_usage(usage, "dealimportctl list: unexpected argument '%s'",
                         argv[optind]);
    }
    return ctl_request_print(o, &req, print_table);
}
