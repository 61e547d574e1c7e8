/*
 * ctl_list: asks the supervisor for `list` and prints a table, newest
 * import first; rate is only known for imports running on the supervisor
 * asked.
 */
#include "ctl_list.h"
#include "dip_bson.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char usage[] =
    "usage: dealimportctl list [--status S] [--account ID] [--since WHEN]\n"
    "                          [--limit N | --all] [--json]\n"
    "                          [--timeout SECONDS] [--connect ENDPOINT]\n";

int ctl_list_parse_since(const char *s, long long now_ms, long long *out)
{
    struct tm tm;
    char *end = NULL;
    long long n;
    int len;
    if (s == NULL || *s == '\0')
        return -1;
    memset(&tm, 0, sizeof(tm));
    len = (int)strlen(s);
    if (s[len - 1] == 'm' || s[len - 1] == 'h' || s[len - 1] == 'd') {
        long long unit = s[len - 1] == 'm'   ? 60000LL
                         : s[len - 1] == 'h' ? 3600000LL
                                             : 86400000LL;
        if (s[0] < '0' || s[0] > '9')
            return -1;
        n = strtoll(s, &end, 10);
        if (end != s + len - 1 || n > 100LL * 365 * 86400000LL / unit ||
            n * unit > now_ms)
            return -1;
        *out = now_ms - n * unit;
        return 0;
    }
    end = strptime(s, "%Y-%m-%d", &tm);
    if (end && *end == 'T')
        end = strptime(end + 1, "%H:%M", &tm);
    if (end && *end == ':')
        end = strptime(end + 1, "%S", &tm);
    if (end == NULL ||
        !(*end == '\0' || (strchr(s, 'T') && strcmp(end, "Z") == 0)))
        return -1;
    if (strchr(s, 'T') && *end != 'Z')
        return -1;
    {
        int y = tm.tm_year, mo = tm.tm_mon, d = tm.tm_mday;
        time_t t = timegm(&tm);
        /* A date that does not exist (02-30) comes back as another. */
        if (tm.tm_year != y || tm.tm_mon != mo || tm.tm_mday != d)
            return -3;
        if (t < 0)
            return -2;
        *out = (long long)t * 1000;
    }
    return 0;
}

static void print_head(void)
{
    printf("%-24s  %-24s  %-10s  %9s  %9s  %7s  %7s  %6s\n", "ID", "ACCOUNT",
           "STATUS", "LINES", "ADDED", "ERRORS", "RATE/S", "AGE");
}

static void print_rows(const json_t *r)
{
    const json_t *arr = json_object_get(r, "imports");
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
}

int ctl_list_main(ctl_opts_t *o, int argc, char **argv)
{
    static const struct option opts[] = {
        CTL_COMMON_OPTIONS,
        {"status", required_argument, NULL, 's'},
        {"account", required_argument, NULL, 'a'},
        {"limit", required_argument, NULL, 'n'},
        {"since", required_argument, NULL, 'S' + 256},
        {"all", no_argument, NULL, 'A' + 256},
        {NULL, 0, NULL, 0},
    };
    dip_ctl_request_t req;
    char own[700];
    dip_ctl_reply_t reply;
    json_t *all = NULL;
    long want = DIP_CTL_LIST_DEFAULT, got = 0;
    int c, rc = CTL_EXIT_OK, truncated = 0;

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
            if (end == optarg || *end || n < 1 || n > CTL_LIST_LIMIT_MAX) {
                fprintf(stderr,
                        "dealimportctl list: --limit '%s' is not a number "
                        "from 1 to %d\n",
                        optarg, CTL_LIST_LIMIT_MAX);
                return CTL_EXIT_USAGE;
            }
            want = n;
            break;
        }
        case 'S' + 256: {
            int since_rc = ctl_list_parse_since(
                optarg, (long long)dip_bson_now_ms(), &req.since_ms);
            if (since_rc == -3) {
                fprintf(stderr,
                        "dealimportctl list: --since '%s': no such day in "
                        "the calendar\n",
                        optarg);
                return CTL_EXIT_USAGE;
            }
            if (since_rc == -2) {
                fprintf(stderr,
                        "dealimportctl list: --since '%s' is before "
                        "1970-01-01, when no import was made\n",
                        optarg);
                return CTL_EXIT_USAGE;
            }
            if (since_rc < 0) {
                fprintf(stderr,
                        "dealimportctl list: --since '%s' is not YYYY-MM-DD, "
                        "YYYY-MM-DDTHH:MM[:SS]Z or an age such as 12h or "
                        "7d\n",
                        optarg);
                return CTL_EXIT_USAGE;
            }
            break;
        }
        case 'A' + 256:
            want = -1;
            break;
        default:
            snprintf(own, sizeof(own),
                     "  --status S         pending, processing, paused, "
                     "completed, failed or cancelled\n"
                     "  --account ID       one account's imports\n"
                     "  --since WHEN       created at or after WHEN: "
                     "YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS]Z\n"
                     "                     (UTC), or an age: 30m, 12h, 7d\n"
                     "  --limit N          at most N imports (1-%d, default "
                     "%d; past %d in pages)\n"
                     "  --all              every import that matches\n",
                     CTL_LIST_LIMIT_MAX, DIP_CTL_LIST_DEFAULT,
                     DIP_CTL_LIST_MAX);
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
    /* Pages of at most DIP_CTL_LIST_MAX, each after the last one's `next`,
     * until enough, or no more match. */
    if (o->json && (all = json_array()) == NULL)
        return CTL_EXIT_UNAVAILABLE;
    if (!o->json)
        print_head();
    for (;;) {
        const char *next;
        long left = want < 0 ? DIP_CTL_LIST_MAX : want - got;
        req.limit = (int)(left < DIP_CTL_LIST_MAX ? left : DIP_CTL_LIST_MAX);
        rc = ctl_request(o, &req, &reply);
        if (rc != 0)
            break;
        got += (long)json_array_size(json_object_get(reply.root, "imports"));
        if (o->json)
            json_array_extend(all, json_object_get(reply.root, "imports"));
        else
            print_rows(reply.root);
        truncated = json_is_true(json_object_get(reply.root, "truncated"));
        next = json_string_value(json_object_get(reply.root, "next"));
        if (!truncated || next == NULL || (want >= 0 && got >= want)) {
            dip_ctl_reply_release(&reply);
            break;
        }
        snprintf(req.after, sizeof(req.after), "%s", next);
        dip_ctl_reply_release(&reply);
    }
    if (rc == 0 && o->json) {
        json_t *out = json_pack("{s:i, s:b, s:o, s:b}", "v", 1, "ok", 1,
                                "imports", all, "truncated", truncated);
        all = NULL;
        ctl_print_json(out);
        json_decref(out);
    } else if (rc == 0 && truncated) {
        printf("(more imports match: use --limit N, --all or a filter)\n");
    }
    json_decref(all);
    return rc;
}
