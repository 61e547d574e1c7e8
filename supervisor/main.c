/*
 * dealimport-supervisor: claims pending deal imports from MongoDB and runs
 * each in its own worker process. Parses arguments, blocks the signals the
 * loop reads from a signalfd (before any library can start a thread), loads
 * the configuration and runs the loop.
 */
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "dip_args.h"
#include "dip_config.h"
#include "dip_secrets.h"
#include "sup_followup.h"
#include "dip_log.h"
#include "dip_mongo_io.h"
#include "sup_loop.h"
#include "sup_nofile.h"

static const char usage[] = "usage: dealimport-supervisor [--config FILE] "
                            "| --check-config FILE\n";

static void help(void)
{
    printf("%s\n"
           "Polls MongoDB's queues collection for pending deal imports and "
           "runs each in an\nisolated dealimport-worker process. Runs in the "
           "foreground (systemd Type=notify).\n\n"
           "  --config FILE   KEY=VALUE settings; the same names as the "
           "environment\n"
           "                  (DEALIMPORT_MONGODB_URI, DEALIMPORT_STORAGE_URL, "
           "APP_SECRET, ...)\n"
           "  --check-config FILE  check the settings (the environment and "
           "FILE) as a start\n"
           "                  would, and exit 0 or 78 without starting\n"
           "  --help, --version\n\n"
           "Signals: SIGTERM/SIGINT hand running imports back and exit 0; "
           "SIGHUP rereads\nthe configuration. Exit status: 0 clean stop, 64 "
           "usage, 78 configuration, 1 failure.\n",
           usage);
}

/* `--follow-up ID [--claim-for OWNER]`: the error file, the source
 * cleanup and the event of one ended import, in a process the supervisor
 * started for them (sup_followup), which claims them for OWNER itself when
 * told to. Exits 0 when they are done (or another's), 75 to be tried
 * again. */
static int follow_up_main(dip_config_t *cfg, const char *config,
                          const char *qid, const char *claim_for,
                          int secrets_fd)
{
    char err[1024];
    int rc;
    if (secrets_fd >= 0 &&
        dip_secrets_read(cfg, secrets_fd, err, sizeof(err)) < 0) {
        fprintf(stderr, "dealimport-supervisor: %s\n", err);
        dip_config_release(cfg);
        return DIP_EXIT_CONFIG;
    }
    if (dip_config_load(cfg, config, DIP_NEED_MONGO | DIP_NEED_STORAGE, err,
                        sizeof(err)) < 0) {
        fprintf(stderr, "dealimport-supervisor: %s\n", err);
        dip_config_release(cfg);
        return DIP_EXIT_CONFIG;
    }
    dip_log_setup("dealimport-supervisor", cfg->log_level,
                  cfg->log_format && strcmp(cfg->log_format, "json") == 0);
    {
        /* The loop's blocked signals are no concern of this process. */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
    }
    /* A file size limit (RLIMIT_FSIZE, systemd's LimitFSIZE=) is, for the
     * error file, what a full disk is: a write that fails, given up after
     * its bounded tries. By default the write past the limit would kill
     * this process instead (SIGXFSZ), on every run, for ever: ignored, it
     * fails with EFBIG, an errno like ENOSPC. */
    signal(SIGXFSZ, SIG_IGN);
    dip_mongo_init();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = sup_followup_run(cfg, qid, claim_for, err, sizeof(err));
    if (rc < 0)
        dip_log(DIP_LOG_WARNING, qid, "follow-ups: %s", err);
    curl_global_cleanup();
    dip_config_release(cfg);
    return rc < 0 ? DIP_EXIT_TEMPFAIL : rc > 0 ? DIP_EXIT_GAVE_UP : DIP_EXIT_OK;
}

int main(int argc, char **argv)
{
    const char *config = NULL, *check = NULL, *follow_up = NULL;
    const char *claim_for = NULL;
    long long secrets = -1;
    const dip_arg_t args[] = {
        {"config", &config, NULL, 0},
        {"check-config", &check, NULL, 0},
        {"follow-up", &follow_up, NULL, 0},
        {"claim-for", &claim_for, NULL, 0},
        {"secrets-fd", NULL, &secrets, 1 << 20},
    };
    char err[1024], exe[PATH_MAX];
    int secrets_fd;
    dip_config_t cfg;
    sup_loop_t *loop;
    sigset_t mask;
    ssize_t n;
    int rc;

    rc = dip_args_start(argc, argv, args, sizeof(args) / sizeof(args[0]),
                        "dealimport-supervisor", usage, help);
    if (rc != DIP_ARGS_GO_ON)
        return rc;
    secrets_fd = (int)secrets;
    if (check != NULL) {
        if (dip_config_check(check, err, sizeof(err)) < 0) {
            fprintf(stderr, "dealimport-supervisor: %s\n", err);
            return DIP_EXIT_CONFIG;
        }
        printf("dealimport-supervisor: '%s': the settings are valid\n", check);
        return 0;
    }

    /* Before any library can start a thread: these signals are read from
     * the loop's signalfd, never delivered asynchronously. */
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);

    dip_config_init(&cfg);
    if (claim_for != NULL && (follow_up == NULL || *claim_for == '\0')) {
        fprintf(stderr,
                "dealimport-supervisor: --claim-for goes with --follow-up "
                "and names an owner; %s",
                usage);
        return DIP_EXIT_USAGE;
    }
    if (follow_up)
        return follow_up_main(&cfg, config, follow_up, claim_for, secrets_fd);
    if (dip_config_load(&cfg, config,
                        DIP_NEED_MONGO | DIP_NEED_STORAGE | DIP_NEED_SECRET,
                        err, sizeof(err)) < 0) {
        fprintf(stderr, "dealimport-supervisor: %s\n", err);
        dip_config_release(&cfg);
        return DIP_EXIT_CONFIG;
    }
    dip_log_setup("dealimport-supervisor", cfg.log_level,
                  cfg.log_format && strcmp(cfg.log_format, "json") == 0);

    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0)
        snprintf(exe, sizeof(exe), "%s", argv[0]);
    else
        exe[n] = '\0';
    {
        /* systemd's 1024 descriptors are less than the listeners and the
         * work need together under a flood of handshakes. */
        rlim_t from = 0, to = 0;
        if (sup_nofile_raise(&from, &to, err, sizeof(err)) < 0)
            dip_log(DIP_LOG_WARNING, NULL, "%s", err);
        else if (to > 0)
            dip_log(DIP_LOG_INFO, NULL,
                    "descriptor limit raised from %llu to %llu",
                    (unsigned long long)from, (unsigned long long)to);
    }
    dip_mongo_init();
    /* Before the loop's threads: completion events use libcurl. */
    curl_global_init(CURL_GLOBAL_DEFAULT);
    loop = sup_loop_new(&cfg, config, exe, err, sizeof(err));
    if (loop == NULL) {
        dip_log(DIP_LOG_ERR, NULL, "cannot start: %s", err);
        rc = strncmp(err, "DEALIMPORT_", 11) == 0 ? DIP_EXIT_CONFIG : 1;
    } else {
        rc = sup_loop_run(loop);
        sup_loop_destroy(&loop);
    }
    /* No mongoc_cleanup(): with the database away, the lease keeper's
     * thread may still be inside the driver (sup_renew_destroy leaves it
     * there rather than wait); the process's exit ends it. */
    dip_config_release(&cfg);
    return rc;
}
