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
    "The import stops after its current batch and its status becomes "
    "cancelled; the\ndeals it created stay (see revert) and csv_imports says "
    "how far it got. Pending\nand paused imports are cancelled at once.",
};

int ctl_action_main(ctl_opts_t *o, int argc, char **argv)
{
    static const struct option opts[] = {CTL_COMMON_OPTIONS,
                                         {NULL, 0, NULL, 0}};
    dip_ctl_request_t req;
    dip_ctl_reply_t reply;
    char usage[160];
    int c, rc;

    memset(&req, 0, sizeof(req));
    req.cmd = dip_ctl_cmd_parse(argv[0]);
    if (req.cmd != DIP_CTL_PAUSE && req.cmd != DIP_CTL_RESUME &&
        req.cmd != DIP_CTL_CANCEL)
        return CTL_EXIT_USAGE;
    snprintf(usage, sizeof(usage),
             "usage: dealimportctl %s ID [--json] [--timeout SECONDS] "
             "[--connect ENDPOINT]\n",
             argv[0]);
    optind = 1;
    opterr = 0;
    while ((c = ctl_getopt(o, argc, argv, opts)) != -1) {
        if (c == CTL_GETOPT_BAD)
            return CTL_EXIT_USAGE;
        if (c == 'h') {
            printf("%s\n%s\nAn import another supervisor runs gets the "
                   "request recorded on its queue\ndocument; that supervisor "
                   "carries it out at its next lease renewal.\n\n%s",
                   usage, what[req.cmd], ctl_common_help);
            return CTL_EXIT_OK;
        }
        return ctl_usage(usage, "dealimportctl %s: unknown option '%s'",
                         argv[0], argv[optind - 1]);
    }
    if (ctl_take_id(argv[0], argc, argv, usage, req.id) < 0)
        return CTL_EXIT_USAGE;
    rc = ctl_request(o, &req, &reply);
    if (rc != 0)
        return rc;
    if (o->json)
        ctl_print_json(reply.root);
    else
        printf("%s\n",
               json_string_value(json_object_get(reply.root, "message")));
    dip_ctl_reply_release(&reply);
    return CTL_EXIT_OK;
}
