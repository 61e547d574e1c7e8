/*
 * ctl_show: asks the supervisor for `show ID` and prints the import as
 * labelled lines, or the reply itself with --json.
 */
#include "ctl_show.h"
#include "ctl_format.h"

#include <stdio.h>
#include <string.h>

static const char usage[] =
    "usage: dealimportctl show ID [--json] [--timeout SECONDS] "
    "[--connect ENDPOINT]\n";

static const char *str(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "-";
}

static long long num(const json_t *o, const char *key)
{
    return (long long)json_integer_value(json_object_get(o, key));
}

static void human_bytes(long long b, char *out, size_t len)
{
    if (b < 0)
        snprintf(out, len, "?");
    else if (b < 1024 * 1024)
        snprintf(out, len, "%.1f kB", (double)b / 1024.0);
    else if (b < 1024LL * 1024 * 1024)
        snprintf(out, len, "%.1f MB", (double)b / (1024.0 * 1024.0));
    else
        snprintf(out, len, "%.2f GB", (double)b / (1024.0 * 1024.0 * 1024.0));
}

static void print_import(const json_t *im)
{
    const json_t *w = json_object_get(im, "worker");
    const json_t *cp = json_object_get(im, "checkpoint");
    const json_t *ci = json_object_get(im, "csv_import");
    const json_t *pct = json_object_get(im, "percent");
    const json_t *rate = json_object_get(im, "rate");
    char total[32], done[32], d[32];

    printf("import      %s\n", str(im, "id"));
    printf("status      %s%s%s\n", str(im, "status"),
           json_is_true(json_object_get(im, "local")) ? " (on this supervisor)"
                                                      : "",
           json_is_string(json_object_get(im, "control"))
               ? ", a recorded request waits for its supervisor"
               : "");
    printf("account     %s\nuser        %s\npipeline    %s\n",
           str(im, "account"), str(im, "user"), str(im, "pipeline"));
    printf("file        %s (key %s)\n", str(im, "file"), str(im, "key"));
    human_bytes(num(im, "bytes"), done, sizeof(done));
    human_bytes(num(im, "bytes_total"), total, sizeof(total));
    printf("progress    %lld lines, %lld added, %lld errors; ",
           num(im, "lines"), num(im, "added"), num(im, "errors"));
    if (json_is_number(pct))
        printf("%.1f%% of %s\n", json_number_value(pct), total);
    else
        printf("%s read\n", done);
    if (json_is_number(rate))
        printf("rate        %.0f lines/s\n", json_number_value(rate));
    if (json_is_object(cp))
        printf("checkpoint  line %lld, byte %lld\n", num(cp, "line"),
               num(cp, "offset"));
    if (json_is_object(w)) {
        printf("worker      ");
        if (json_is_integer(json_object_get(w, "pid")))
            printf("pid %lld", num(w, "pid"));
        else
            printf("waiting to restart");
        if (json_is_integer(json_object_get(w, "first_line")))
            printf(", started at line %lld", num(w, "first_line"));
        printf(", running %s, %lld restarts%s%s\n",
               ctl_duration(num(w, "runtime_s"), d, sizeof(d)),
               num(w, "restarts"),
               json_is_string(json_object_get(w, "requested")) ? ", asked to "
                                                               : "",
               json_is_string(json_object_get(w, "requested"))
                   ? str(w, "requested")
                   : "");
        printf("limits      %lld MB memory, %lld CPU s, %lld s wall clock\n",
               num(w, "memory_mb"), num(w, "cpu_s"), num(w, "timeout_s"));
    }
    if (json_is_string(json_object_get(im, "owner")))
        printf("supervisor  %s\n", str(im, "owner"));
    if (json_is_string(json_object_get(im, "control")))
        printf("requested   %s at %s\n", str(im, "control"),
               str(im, "control_requested_at"));
    if (json_is_string(json_object_get(im, "error")))
        printf("error       %s\n", str(im, "error"));
    printf("created     %s\n", str(im, "created_at"));
    if (json_is_string(json_object_get(im, "claimed_at")))
        printf("claimed     %s\n", str(im, "claimed_at"));
    if (json_is_string(json_object_get(im, "finished_at")))
        printf("finished    %s\n", str(im, "finished_at"));
    if (json_is_integer(json_object_get(im, "elapsed_s")))
        printf("elapsed     %s\n",
               ctl_duration(num(im, "elapsed_s"), d, sizeof(d)));
    if (json_is_object(ci)) {
        printf("import log  %lld records, %lld added, %lld errors (%s)\n",
               num(ci, "total_records"), num(ci, "total_records_added"),
               num(ci, "total_errors"), str(ci, "status"));
        if (json_is_true(json_object_get(ci, "dry_run")))
            printf("dry run     would add %lld deals and create %lld new "
                   "stages; nothing was written\n",
                   num(ci, "would_add"), num(ci, "new_stages"));
        if (json_is_string(json_object_get(ci, "reverted_at")))
            printf("reverted    %s: %lld deals and %lld stages deleted\n",
                   str(ci, "reverted_at"), num(ci, "reverted_deals"),
                   num(ci, "reverted_stages"));
    }
    ctl_format_print(im);
}

static void print_reply(const json_t *root)
{
    print_import(json_object_get(root, "import"));
}

int ctl_show_main(ctl_opts_t *o, int argc, char **argv)
{
    dip_ctl_request_t req;
    int rc;
    memset(&req, 0, sizeof(req));
    req.cmd = DIP_CTL_SHOW;
    rc = ctl_simple_args(o, argc, argv, "show", usage,
                         "One import in full: status, progress, checkpoint, "
                         "worker pid and limits,\nlast error, timing, and its "
                         "import log (csv_imports).",
                         req.id);
    if (rc >= 0)
        return rc;
    {
        dip_ctl_reply_t reply;
        rc = ctl_request(o, &req, &reply);
        if (rc != 0)
            return rc;
        ctl_format_attach(o, req.id, json_object_get(reply.root, "import"));
        if (o->json)
            ctl_print_json(reply.root);
        else
            print_reply(reply.root);
        dip_ctl_reply_release(&reply);
        return CTL_EXIT_OK;
    }
}
