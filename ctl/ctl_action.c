/*
 * ctl_action: pause, resume and cancel. Each is one request; the reply's
 * message says what happened: the worker was told (it stops after its
 * current batch), the status changed at once, or the request was recorded
 * for the supervisor that runs the import.
 */
#include "ctl_action.h"

#include <stdio.h>
#include <string.h>

static const char *const what[] = {
    NULL,
    NULL,
    NULL,
    NULL,
    "The worker finishes its current batch, checkpoints and exits; the "
    "import's status\nbecomes paused and its worker slot is free. A pending "
    "import is paused at once.",
    "A paused import goes back to pending and continues from its checkpoint, "
    "not from\nline 1, when a supervisor next claims it.",
    "The import stops within seconds, from its last checkpoint, and its "
    "status\nbecomes cancelled; the deals it created stay (see revert) and "
    "csv_imports\nsays how far it got. Pending and paused imports are "
    "cancelled at once.",
};

static void print_message(const json_t *root)
{
    printf("%s\n", json_string_value(json_object_get(root, "message")));
}

int ctl_action_main(ctl_opts_t *o, int argc, char **argv)
{
    dip_ctl_request_t req;
    char usage[160], about[640];
    int rc;

    memset(&req, 0, sizeof(req));
    req.cmd = dip_ctl_cmd_parse(argv[0]);
    if (req.cmd != DIP_CTL_PAUSE && req.cmd != DIP_CTL_RESUME &&
        req.cmd != DIP_CTL_CANCEL)
        return CTL_EXIT_USAGE;
    snprintf(usage, sizeof(usage),
             "usage: dealimportctl %s ID [--json] [--timeout SECONDS] "
             "[--connect ENDPOINT]\n",
             argv[0]);
    snprintf(about, sizeof(about),
             "%s\nAn import another supervisor runs gets the request "
             "recorded on its queue\ndocument; that supervisor carries it "
             "out at its next lease renewal.",
             what[req.cmd]);
    rc = ctl_simple_args(o, argc, argv, argv[0], usage, about, req.id);
    if (rc >= 0)
        return rc;
    return ctl_request_print(o, &req, print_message);
}
