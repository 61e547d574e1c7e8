/*
 * dealimportctl: the operator's command-line client. Dispatches a
 * subcommand; each lives in its own ctl_*.c file.
 */
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>

#include "ctl_enqueue.h"
#include "dip_config.h"
#include "dip_mongo_io.h"

static const char usage[] =
    "usage: dealimportctl [--config FILE] COMMAND [ARGS]\n"
    "       dealimportctl --help | --version\n";

static void help(void)
{
    printf("%s\n"
           "Commands:\n"
           "  enqueue   upload a CSV and queue a deal import of it\n\n"
           "Run 'dealimportctl COMMAND --help' for a command's options.\n"
           "Settings come from the environment (DEALIMPORT_MONGODB_URI, "
           "DEALIMPORT_STORAGE_URL, ...)\nor --config FILE.\n"
           "Exit status: 0 success, 1 refused, 64 usage, 69 service "
           "unavailable, 78 configuration.\n",
           usage);
}

int main(int argc, char **argv)
{
    const char *config = NULL;
    int i = 1, rc;
    dip_config_t cfg;
    char err[512];

    while (i < argc && argv[i][0] == '-') {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            help();
            return 0;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("dealimportctl %s\n", DEALIMPORT_VERSION);
            return 0;
        } else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config = argv[i + 1];
            i += 2;
        } else {
            fprintf(stderr,
                    "dealimportctl: unknown option '%s'; usage: dealimportctl "
                    "[--config FILE] COMMAND [ARGS]\n",
                    argv[i]);
            return DIP_EXIT_USAGE;
        }
    }
    if (i >= argc) {
        fputs(usage, stderr);
        return DIP_EXIT_USAGE;
    }
    if (strcmp(argv[i], "enqueue") != 0) {
        fprintf(stderr, "dealimportctl: unknown command '%s'\n", argv[i]);
        fputs(usage, stderr);
        return DIP_EXIT_USAGE;
    }
    for (int j = i + 1; j < argc; j++)
        if (strcmp(argv[j], "--help") == 0 || strcmp(argv[j], "-h") == 0)
            return ctl_enqueue_main(NULL, argc - i, argv + i);

    dip_config_init(&cfg);
    if (dip_config_load(&cfg, config, DIP_NEED_MONGO | DIP_NEED_STORAGE, err,
                        sizeof(err)) < 0) {
        fprintf(stderr, "dealimportctl: %s\n", err);
        dip_config_release(&cfg);
        return DIP_EXIT_CONFIG;
    }
    dip_mongo_init();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = ctl_enqueue_main(&cfg, argc - i, argv + i);
    curl_global_cleanup();
    mongoc_cleanup();
    dip_config_release(&cfg);
    return rc;
}
