/*
 * dip_args: the programs' long options from one table (see dip_args.h).
 */
#include "dip_args.h"
#include "dip_exit.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

/* getopt_long's values: clear of '?' and ':' (its "bad" answers). */
#define FIRST_VAL 1000
#define HELP_VAL 999
#define VERSION_VAL 998

/* value as a whole decimal from 0 to max: 0, or -1. */
static int parse_num(const char *value, long long max, long long *out)
{
    char *end = NULL;
    long long v;
    errno = 0;
    v = strtoll(value, &end, 10);
    if (errno || end == value || *end != '\0' || v < 0 || v > max)
        return -1;
    *out = v;
    return 0;
}

int dip_args_parse(int argc, char **argv, const dip_arg_t *args, size_t n,
                   const char **bad)
{
    struct option *opts = calloc(n + 3, sizeof(*opts));
    int c, rc = DIP_ARGS_RUN;
    if (opts == NULL) {
        *bad = argc > 0 ? argv[0] : "";
        return DIP_ARGS_BAD;
    }
    for (size_t i = 0; i < n; i++)
        opts[i] = (struct option){args[i].name, required_argument, NULL,
                                  FIRST_VAL + (int)i};
    opts[n] = (struct option){"help", no_argument, NULL, HELP_VAL};
    opts[n + 1] = (struct option){"version", no_argument, NULL, VERSION_VAL};
    optind = 0; /* glibc: start over, whatever parsed argv before */
    opterr = 0; /* the caller's one line instead of getopt's */
    while (rc == DIP_ARGS_RUN &&
           (c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == HELP_VAL) {
            rc = DIP_ARGS_HELP;
        } else if (c == VERSION_VAL) {
            rc = DIP_ARGS_VERSION;
        } else if (c < FIRST_VAL || (size_t)(c - FIRST_VAL) >= n) {
            *bad = argv[optind - 1]; /* unknown, or its value missing */
            rc = DIP_ARGS_BAD;
        } else if (args[c - FIRST_VAL].num != NULL) {
            const dip_arg_t *a = &args[c - FIRST_VAL];
            if (parse_num(optarg, a->max, a->num) < 0) {
                *bad = optarg;
                rc = DIP_ARGS_BAD;
            }
        } else if (args[c - FIRST_VAL].str != NULL) {
            *args[c - FIRST_VAL].str = optarg;
        }
    }
    if (rc == DIP_ARGS_RUN && optind < argc) {
        *bad = argv[optind];
        rc = DIP_ARGS_BAD;
    }
    free(opts);
    return rc;
}

int dip_args_start(int argc, char **argv, const dip_arg_t *args, size_t n,
                   const char *program, const char *usage, void (*help)(void))
{
    const char *bad = NULL;
    switch (dip_args_parse(argc, argv, args, n, &bad)) {
    case DIP_ARGS_HELP:
        help();
        return 0;
    case DIP_ARGS_VERSION:
        printf("%s %s\n", program, DEALIMPORT_VERSION);
        return 0;
    case DIP_ARGS_BAD:
        fprintf(stderr, "%s: bad argument '%s'; %s", program, bad, usage);
        return DIP_EXIT_USAGE;
    }
    return DIP_ARGS_GO_ON;
}
