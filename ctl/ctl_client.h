/*
 * ctl_client: what every dealimportctl command that talks to the supervisor
 * shares: the common options (--json, --timeout, --connect, --server-key,
 * --key), one request and its reply over a REQ socket with a deadline, the
 * exit statuses, and printing a refusal as one line (or one JSON object).
 */
#ifndef CTL_CLIENT_H
#define CTL_CLIENT_H

#include <getopt.h>
#include <stddef.h>

#include "dip_config.h"
#include "dip_ctl.h"

enum {
    CTL_EXIT_OK = DIP_EXIT_OK,
    CTL_EXIT_REFUSED = DIP_EXIT_REFUSED, /* unknown id, not allowed now */
    CTL_EXIT_IMPORT_FAILED = 2, /* watch: the import failed or was cancelled */
    CTL_EXIT_USAGE = DIP_EXIT_USAGE,
    CTL_EXIT_UNAVAILABLE = DIP_EXIT_UNAVAILABLE, /* no supervisor, no db */
    CTL_EXIT_NOPERM = DIP_EXIT_NOPERM, /* the socket is not this user's */
    CTL_EXIT_CONFIG = DIP_EXIT_CONFIG,
};

enum {
    CTL_CLIENT_ETIMEOUT = -1, /* no reply within the timeout */
    CTL_CLIENT_EPROTO = -2,   /* a reply that is not a valid reply */
    CTL_CLIENT_ESEND = -3,    /* the request could not be sent */
};

/* --timeout's default: how long a command waits for the supervisor. */
#define CTL_DEFAULT_TIMEOUT_MS 5000

typedef struct ctl_opts {
    const dip_config_t *cfg; /* borrowed; may be NULL for --help */
    int json;
    long timeout_ms;        /* --timeout SECONDS, default 5 s */
    const char *connect;    /* --connect, else DEALIMPORT_CONTROL_CONNECT,
                               else the ipc socket in the runtime dir */
    const char *server_key; /* --server-key FILE (TCP) */
    const char *client_key; /* --key FILE (TCP) */
} ctl_opts_t;

/* The long options every control command takes, for its getopt table. */
#define CTL_COMMON_OPTIONS                                                     \
    {"json", no_argument, NULL, 'j'},                                          \
        {"timeout", required_argument, NULL, 'T'},                             \
        {"connect", required_argument, NULL, 'c'},                             \
        {"server-key", required_argument, NULL, 'S'},                          \
        {"key", required_argument, NULL, 'K'},                                 \
    {                                                                          \
        "help", no_argument, NULL, 'h'                                         \
    }

/* Help text for the common options. */
extern const char ctl_common_help[];

void ctl_opts_init(ctl_opts_t *o, const dip_config_t *cfg);

/* Applies common option c with arg. Returns 1 when c is one of them, 0 when
 * it is not, -1 on a bad value (the message is printed). */
int ctl_opts_apply(ctl_opts_t *o, int c, const char *arg);

/* getopt_long over a command's options with the common ones applied to o
 * on the way: returns the next option that is the command's own (including
 * 'h' and '?'), -1 at the end, or CTL_GETOPT_BAD after a common option's
 * bad value was reported. The caller sets optind = 1 and opterr = 0 first. */
#define CTL_GETOPT_BAD (-2)
int ctl_getopt(ctl_opts_t *o, int argc, char **argv, const struct option *opts);

typedef struct ctl_client ctl_client_t;

/* Prepares a connection to the supervisor. On failure returns NULL, writes
 * a sentence to err and the exit status to *exit_code (78 for a key file
 * problem, 69 when nothing listens at an ipc path, 77 when this user may
 * not reach or use the ipc socket: the sentence starts "access denied"). */
ctl_client_t *ctl_client_new(const ctl_opts_t *o, char *err, size_t errlen,
                             int *exit_code);
void ctl_client_destroy(ctl_client_t **self_p);
const char *ctl_client_endpoint(const ctl_client_t *self);

/* Sends req and waits for its reply until the timeout. Returns 0 with reply
 * filled (ok or refused; the caller releases it), or a CTL_CLIENT_E* code
 * with a sentence in err. After an error the client cannot be used again. */
int ctl_client_call(ctl_client_t *self, const dip_ctl_request_t *req,
                    dip_ctl_reply_t *reply, char *err, size_t errlen);

/* One request for a simple command: connects, calls, and when the answer is
 * not a success prints the one line on stderr (and, with --json, the JSON
 * object on stdout) and returns the exit status. Returns 0 with reply
 * filled on success. */
int ctl_request(const ctl_opts_t *o, const dip_ctl_request_t *req,
                dip_ctl_reply_t *reply);

/* Reports a failure as dealimportctl does: the line on stderr, and with
 * --json an error object on stdout. Returns exit_code. */
int ctl_fail(const ctl_opts_t *o, int exit_code, const char *code,
             const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* The JSON error code of a ctl_client_new exit status. */
const char *ctl_client_failure_code(int exit_code);

/* The exit status for a refused reply's code. */
int ctl_exit_for(dip_ctl_code_t code);

/* Prints a JSON value on one line of stdout. */
void ctl_print_json(const json_t *v);

/* Checks a command-line id (what: "import", "account") and copies it,
 * lowercased, into out[25]; prints the usage error. 0 or -1. */
int ctl_parse_id(const char *s, const char *what, char *out);

/* Reports bad usage as one line on stderr: the formatted message, then
 * "; usage: " and usage (a "usage: ..." text, any lines joined). Returns
 * CTL_EXIT_USAGE. */
int ctl_usage(const char *usage, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The one import id left in argv after the options (argv[optind]);
 * prints the usage error for none, several or a bad one. 0 or -1. */
int ctl_take_id(const char *cmd, int argc, char **argv, const char *usage,
                char *out);

/* What a command's option loop does with an answer c of ctl_getopt that is
 * not one of its own options: a common option's bad value (reported
 * already), --help (prints usage, a blank line, about, a blank line, own
 * -- the command's own options' help lines, or "" -- and the common
 * options' help; CTL_EXIT_OK), or an unknown option (a usage error).
 * Returns the exit status to return now. */
int ctl_opt_end(int c, char **argv, const char *cmd, const char *usage,
                const char *about, const char *own);

/* The arguments of a command that has only the common options: parses them
 * into o; --help prints usage, a blank line, about and the common options'
 * help; an unknown option or argument is a usage error. With id not NULL the
 * one import id left is copied into id[25] (ctl_take_id), else no argument
 * may be left. Returns -1 to go on, or the exit status to return now
 * (CTL_EXIT_OK after the help). */
int ctl_simple_args(ctl_opts_t *o, int argc, char **argv, const char *cmd,
                    const char *usage, const char *about, char *id);

/* Sends req (ctl_request) and prints its reply: the reply object with
 * --json, else print(reply.root). Returns the exit status. */
int ctl_request_print(const ctl_opts_t *o, const dip_ctl_request_t *req,
                      void (*print)(const json_t *root));

/* Formats a count of seconds as "45s", "3m05s", "2h10m", "4d03h". */
char *ctl_duration(long long s, char *out, size_t len);

#endif
