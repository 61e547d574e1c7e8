/*
 * dealimportctl: the operator's command-line client. Parses the options
 * before the command, loads the settings the command needs and dispatches
 * to it; each command lives in its own ctl_*.c file.
 */
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>

#include "ctl_action.h"
#include "ctl_client.h"
#include "ctl_enqueue.h"
#include "ctl_keygen.h"
#include "ctl_list.h"
#include "ctl_metrics.h"
#include "ctl_results.h"
#include "ctl_revert.h"
#include "ctl_show.h"
#include "ctl_status.h"
#include "ctl_watch.h"
#include "dip_config.h"
#include "dip_log.h"
#include "dip_mongo_io.h"

static const char usage[] =
    "usage: dealimportctl [--config FILE] [--json] [--timeout SECONDS] "
    "COMMAND [ARGS]\n"
    "       dealimportctl --help | --version\n";
static const char usage_line[] =
    "usage: dealimportctl [--config FILE] [--json] [--timeout SECONDS] "
    "[--connect ENDPOINT] COMMAND [ARGS]";

typedef struct command {
    const char *name;
    int (*run)(ctl_opts_t *o, int argc, char **argv);
    unsigned need; /* DIP_NEED_* */
    const char *summary;
} command_t;

static int enqueue(ctl_opts_t *o, int argc, char **argv)
{
    int rc;
    if (o->cfg == NULL)
        return ctl_enqueue_main(NULL, argc, argv);
    dip_mongo_init();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = ctl_enqueue_main(o->cfg, argc, argv);
    curl_global_cleanup();
    return rc;
}

/* errors --output downloads through libcurl. */
static int errors(ctl_opts_t *o, int argc, char **argv)
{
    int rc;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = ctl_errors_main(o, argc, argv);
    curl_global_cleanup();
    return rc;
}

static const command_t commands[] = {
    {"status", ctl_status_main, 0,
     "the supervisor's state: workers, imports by status, accounts"},
    {"list", ctl_list_main, 0, "imports with their progress, rate and age"},
    {"show", ctl_show_main, 0, "one import in full"},
    {"pause", ctl_action_main, 0,
     "stop an import after its current batch, to resume later"},
    {"resume", ctl_action_main, 0,
     "continue a paused import from its checkpoint"},
    {"cancel", ctl_action_main, 0,
     "stop an import for good; what it created stays"},
    {"watch", ctl_watch_main, 0, "follow an import's progress until it ends"},
    {"metrics", ctl_metrics_main, 0,
     "the supervisor's metrics in the Prometheus text format"},
    {"enqueue", enqueue, DIP_NEED_MONGO | DIP_NEED_STORAGE,
     "upload a CSV and queue a deal import of it (no supervisor needed)"},
    {"revert", ctl_revert_main, DIP_NEED_MONGO,
     "delete what a finished import created (no supervisor needed)"},
    {"errors", errors, DIP_NEED_MONGO,
     "an import's rejected rows, or its error file (--output FILE)"},
    {"events", ctl_events_main, DIP_NEED_MONGO,
     "completion events sent to the CRM and how each attempt went"},
    {"run", ctl_run_main, DIP_NEED_MONGO,
     "queue a dry run's file and mappings again as a real import"},
    {"keygen", ctl_keygen_main, 0,
     "write a CURVE key pair for the TCP control endpoint"},
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void help(void)
{
    printf("%s\nCommands:\n", usage);
    for (size_t i = 0; i < NCOMMANDS; i++)
        printf("  %-8s  %s\n", commands[i].name, commands[i].summary);
    printf("\nRun 'dealimportctl COMMAND --help' for a command's options.\n"
           "Settings come from --config FILE, else $DEALIMPORT_CONFIG, "
           "else " DIP_CONFIG_DEFAULT_FILE
           "\nwhere readable, with the environment "
           "over it (DEALIMPORT_RUNTIME_DIR, DEALIMPORT_MONGODB_URI,\n"
           "DEALIMPORT_STORAGE_URL, ...). The supervisor is found "
           "at " DIP_CONFIG_SERVICE_RUNTIME_DIR
           "/control.ipc when that\nfolder "
           "exists. The control protocol is described in "
           "docs/control-protocol.md.\n"
           "Exit status: 0 success, 1 refused (unknown id, not allowed in "
           "this status),\n2 watch: the import failed or was cancelled, 64 "
           "usage, 69 no supervisor answered\n(or the database is away), 77 "
           "access denied to the control socket, 78 configuration.\n");
}

static int wants_help(int argc, char **argv)
{
    for (int j = 1; j < argc; j++)
        if (strcmp(argv[j], "--help") == 0 || strcmp(argv[j], "-h") == 0)
            return 1;
    return 0;
}

int main(int argc, char **argv)
{
    const char *config = NULL;
    const command_t *cmd = NULL;
    ctl_opts_t opts;
    dip_config_t cfg;
    char err[512];
    int i = 1, rc;

    ctl_opts_init(&opts, NULL);
    while (i < argc && argv[i][0] == '-') {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            help();
            return CTL_EXIT_OK;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("dealimportctl %s\n", DEALIMPORT_VERSION);
            return CTL_EXIT_OK;
        } else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config = argv[i + 1];
            i += 2;
        } else if (strcmp(argv[i], "--json") == 0) {
            opts.json = 1;
            i++;
        } else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
            if (ctl_opts_apply(&opts, 'T', argv[i + 1]) < 0)
                return CTL_EXIT_USAGE;
            i += 2;
        } else if (strcmp(argv[i], "--connect") == 0 && i + 1 < argc) {
            opts.connect = argv[i + 1];
            i += 2;
        } else {
            return ctl_usage(usage_line, "dealimportctl: unknown option '%s'",
                             argv[i]);
        }
    }
    if (i >= argc)
        return ctl_usage(usage_line, "dealimportctl: which command? "
                                     "(dealimportctl --help lists them)");
    for (size_t k = 0; k < NCOMMANDS; k++)
        if (strcmp(argv[i], commands[k].name) == 0)
            cmd = &commands[k];
    if (cmd == NULL)
        return ctl_usage(usage_line,
                         "dealimportctl: unknown command '%s' (dealimportctl "
                         "--help lists them)",
                         argv[i]);
    /* Help needs no settings. */
    if (wants_help(argc - i, argv + i))
        return cmd->run(&opts, argc - i, argv + i);

    dip_config_init(&cfg);
    if (dip_config_load(&cfg, config, cmd->need | DIP_CONFIG_CLIENT, err,
                        sizeof(err)) < 0) {
        fprintf(stderr, "dealimportctl: %s\n", err);
        dip_config_release(&cfg);
        return CTL_EXIT_CONFIG;
    }
    opts.cfg = &cfg;
    /* The ctl's own events (a revert's record) in the service's format. */
    dip_log_setup("dealimportctl", cfg.log_level,
                  cfg.log_format && strcmp(cfg.log_format, "json") == 0);
    rc = cmd->run(&opts, argc - i, argv + i);
    if (cmd->need & DIP_NEED_MONGO)
        mongoc_cleanup();
    dip_config_release(&cfg);
    return rc;
}
