/*
 * ctl_status: asks the supervisor for `status` and prints it as a few
 * lines a person reads at a glance, or the reply itself with --json.
 */
#include "ctl_status.h"

#include <stdio.h>
#include <string.h>

static const char usage[] = "usage: dealimportctl status [--json] "
                            "[--timeout SECONDS] [--connect ENDPOINT]\n";

static long long num(const json_t *o, const char *key)
{
    return (long long)json_integer_value(json_object_get(o, key));
}

static void print_status(const json_t *r)
{
    const json_t *w = json_object_get(r, "workers");
    const json_t *im = json_object_get(r, "imports");
    const json_t *acc = json_object_get(r, "accounts");
    static const char *const order[] = {"pending",   "processing", "paused",
                                        "completed", "failed",     "cancelled"};
    char up[32];
    printf("supervisor %s (dealimport %s, pid %lld), up %s%s\n",
           json_string_value(json_object_get(r, "owner")),
           json_string_value(json_object_get(r, "version")), num(r, "pid"),
           ctl_duration(num(r, "uptime_s"), up, sizeof(up)),
           json_is_true(json_object_get(r, "stopping")) ? ", stopping" : "");
    printf("workers:  %lld of %lld busy (%lld processes), at most %lld per "
           "account\n",
           num(w, "running"), num(w, "limit"), num(w, "processes"),
           num(w, "per_account_limit"));
    printf("imports: ");
    /* Without the database there is nothing to count: not a row of 0s. */
    if (json_object_size(im) == 0)
        printf(" unknown (the database did not answer)");
    for (size_t i = 0;
         i < sizeof(order) / sizeof(order[0]) && json_object_size(im) > 0; i++)
        printf("%s%lld %s", i ? ", " : " ", num(im, order[i]), order[i]);
    printf("\n");
    if (json_array_size(acc) > 0) {
        printf("accounts: running here (processing on all supervisors)\n");
        for (size_t i = 0; i < json_array_size(acc); i++) {
            const json_t *a = json_array_get(acc, i);
            printf("  %s  %lld (%lld)\n",
                   json_string_value(json_object_get(a, "account")),
                   num(a, "running"), num(a, "processing"));
        }
    }
    printf("since start: %lld imports finished, %lld failed; database %s\n",
           num(r, "finished"), num(r, "failed"),
           json_string_value(json_object_get(r, "database"))
               ? json_string_value(json_object_get(r, "database"))
               : "unknown");
}

int ctl_status_main(ctl_opts_t *o, int argc, char **argv)
{
    dip_ctl_request_t req;
    dip_ctl_reply_t reply;
    const char *db;
    int down;
    int rc = ctl_simple_args(
        o, argc, argv, "status", usage,
        "The supervisor's own state: version, uptime, workers running and "
        "their limit,\nimports by status (all supervisors), running imports "
        "per account.",
        NULL);
    if (rc >= 0)
        return rc;
    memset(&req, 0, sizeof(req));
    req.cmd = DIP_CTL_STATUS;
    rc = ctl_request(o, &req, &reply);
    if (rc != 0)
        return rc;
    db = json_string_value(json_object_get(reply.root, "database"));
    /* The supervisor answered, but without its database it can neither
     * claim nor count: said first, and in the exit status. */
    down = db == NULL || strcmp(db, "ok") != 0;
    if (down && !o->json)
        printf("database unavailable%s%s\n",
               db && strncmp(db, "unavailable", 11) == 0 ? db + 11 : "",
               db == NULL ? ": the supervisor did not say" : "");
    if (o->json)
        ctl_print_json(reply.root);
    else
        print_status(reply.root);
    dip_ctl_reply_release(&reply);
    return down ? CTL_EXIT_UNAVAILABLE : CTL_EXIT_OK;
}
