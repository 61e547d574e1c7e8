/*
 * dip_args: the command line of the supervisor and the worker. Each takes
 * only long options with a value (--name VALUE or --name=VALUE), plus
 * --help and --version, and no other argument; one table says where each
 * value goes. A string is stored as given (borrowed from argv); a number
 * must be a whole decimal from 0 to the entry's max, or the word is bad.
 * dip_args_parse is pure over argv (getopt_long's state is reset first)
 * and prints nothing; dip_args_start is the same parse followed by what
 * both programs do with its outcome (help, version, the usage line).
 */
#ifndef DIP_ARGS_H
#define DIP_ARGS_H

#include <stddef.h>

typedef struct dip_arg {
    const char *name; /* the long option, without "--" */
    const char **str; /* a string option: where its value goes, or NULL */
    long long *num;   /* a number option: where its value goes, or NULL */
    long long max;    /* a number option's largest value */
} dip_arg_t;

enum {
    DIP_ARGS_RUN = 0,     /* parsed: go on */
    DIP_ARGS_HELP = 1,    /* --help */
    DIP_ARGS_VERSION = 2, /* --version */
    DIP_ARGS_BAD = -1,    /* *bad: the word that is wrong (an unknown or
                             incomplete option, a bad number, an argument) */
};

/* Parses argv[1..argc) against the n entries of args, filling their
 * targets (a target of an option not given is left as it was). Returns
 * one of DIP_ARGS_*; on DIP_ARGS_BAD sets *bad (borrowed from argv). */
int dip_args_parse(int argc, char **argv, const dip_arg_t *args, size_t n,
                   const char **bad);

/* dip_args_parse, then: on --help calls help() and returns 0; on
 * --version prints "PROGRAM VERSION" on stdout and returns 0; on a bad word
 * prints "PROGRAM: bad argument 'WORD'; USAGE" on stderr (usage ends with
 * its newline) and returns DIP_EXIT_USAGE. Returns DIP_ARGS_GO_ON when the
 * program is to run with the values stored. */
#define DIP_ARGS_GO_ON (-1)
int dip_args_start(int argc, char **argv, const dip_arg_t *args, size_t n,
                   const char *program, const char *usage, void (*help)(void));

#endif
