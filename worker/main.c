/*
 * dealimport-worker: runs one import in its own process. Started by the
 * supervisor (fork+exec) with the settings in its environment and its
 * secrets on a pipe (--secrets-fd, see dip_secrets.h), never in the
 * environment; parses its arguments, reads and closes that pipe first, sets
 * up logging and the out-of-memory policy, and hands over to wrk_import_run.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bson/bson.h>
#include <curl/curl.h>
#include <jansson.h>

#include "dip_args.h"
#include "dip_config.h"
#include "dip_log.h"
#include "dip_msg.h"
#include "dip_mongo_io.h"
#include "dip_secrets.h"
#include "wrk_handoff.h"
#include "wrk_import.h"

static const char usage[] =
    "usage: dealimport-worker --queue-id ID [--owner SUPERVISOR --epoch N] "
    "[--events ENDPOINT] [--secrets-fd N] [--queue-doc-fd N --claimed-at MS] "
    "[--config FILE]\n";

static void help(void)
{
    printf("%s\n"
           "Runs one deal import from a queue document; normally started by "
           "dealimport-supervisor.\n\n"
           "  --queue-id ID      the queue document's _id (24 hex digits)\n"
           "  --owner ID         the supervisor whose claim this run is for\n"
           "  --epoch N          that claim's epoch (the queue document's "
           "claims);\n"
           "                     the worker stops, writing nothing more, once "
           "the\n"
           "                     claim is another's\n"
           "  --events ENDPOINT  the supervisor's worker-events socket\n"
           "                     (default ipc://$DEALIMPORT_RUNTIME_DIR/"
           "events.ipc)\n"
           "  --secrets-fd N     read KEY=VALUE secret settings from "
           "descriptor N to\n"
           "                     its end, then close it (how the supervisor "
           "hands\n"
           "                     over the MongoDB URI and the S3 secret "
           "key)\n"
           "  --queue-doc-fd N   read the queue document from descriptor N "
           "(the\n"
           "                     claim's answer, handed over by the "
           "supervisor)\n"
           "                     instead of the database\n"
           "  --claimed-at MS    when that claim was sent, by the machine's\n"
           "                     monotonic clock in milliseconds\n"
           "  --config FILE      KEY=VALUE settings (see the README)\n"
           "  --help, --version\n\n"
           "Exit status: 0 done (the supervisor was told how), 70 out of "
           "memory,\n75 temporary failure (resume later), 76 the claim is gone "
           "(stopped\nwithout writing), 64 usage, 78 configuration.\n",
           usage);
}

/* Allocation failure under the worker's memory limit: say so and exit with
 * the status the supervisor reads as "memory limit", instead of libbson's
 * abort(). */
static void out_of_memory(void)
{
    static const char msg[] =
        "<3>dealimport-worker level=error out of memory: the worker "
        "reached its memory limit\n";
    if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0)
        _exit(DIP_EXIT_NOMEM);
    _exit(DIP_EXIT_NOMEM);
}

static void *oom_malloc(size_t n)
{
    void *p = malloc(n);
    if (p == NULL && n)
        out_of_memory();
    return p;
}

static void *oom_calloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (p == NULL && n && size)
        out_of_memory();
    return p;
}

static void *oom_realloc(void *old, size_t n)
{
    void *p = realloc(old, n);
    if (p == NULL && n)
        out_of_memory();
    return p;
}

static void *oom_aligned_alloc(size_t alignment, size_t n)
{
    void *p = aligned_alloc(alignment, n);
    if (p == NULL && n)
        out_of_memory();
    return p;
}

static bson_mem_vtable_t oom_vtable = {.malloc = oom_malloc,
                                       .calloc = oom_calloc,
                                       .realloc = oom_realloc,
                                       .free = free,
                                       .aligned_alloc = oom_aligned_alloc,
                                       .padding = {NULL, NULL, NULL}};

int main(int argc, char **argv)
{
    const char *queue_id = NULL, *events = NULL, *config = NULL;
    const char *owner = NULL;
    long long epoch = -1, secrets = -1, doc_fd = -1, claimed_at = -1;
    const dip_arg_t args[] = {
        {"queue-id", &queue_id, NULL, 0},
        {"events", &events, NULL, 0},
        {"config", &config, NULL, 0},
        {"owner", &owner, NULL, 0},
        {"epoch", NULL, &epoch, INT64_MAX},
        {"secrets-fd", NULL, &secrets, 1 << 20},
        {"queue-doc-fd", NULL, &doc_fd, 1 << 20},
        {"claimed-at", NULL, &claimed_at, INT64_MAX},
    };
    bson_t handed;
    int has_handed = 0;
    char endpoint[600], err[512];
    dip_config_t cfg;
    int rc, secrets_fd;

    rc = dip_args_start(argc, argv, args, sizeof(args) / sizeof(args[0]),
                        "dealimport-worker", usage, help);
    if (rc != DIP_ARGS_GO_ON)
        return rc;
    secrets_fd = (int)secrets;
    if (queue_id == NULL || !dip_msg_is_oid(queue_id)) {
        fprintf(stderr,
                "dealimport-worker: --queue-id needs a queue id (24 lowercase "
                "hex digits); %s",
                usage);
        return DIP_EXIT_USAGE;
    }

    if ((owner == NULL) != (epoch < 0) || (owner && *owner == '\0')) {
        fprintf(stderr,
                "dealimport-worker: --owner and --epoch go together; %s",
                usage);
        return DIP_EXIT_USAGE;
    }

    if ((doc_fd < 0) != (claimed_at < 0) || (doc_fd >= 0 && owner == NULL)) {
        fprintf(stderr,
                "dealimport-worker: --queue-doc-fd and --claimed-at go "
                "together, with --owner; %s",
                usage);
        return DIP_EXIT_USAGE;
    }

    dip_config_init(&cfg);
    if (secrets_fd >= 0 &&
        dip_secrets_read(&cfg, secrets_fd, err, sizeof(err)) < 0) {
        fprintf(stderr, "dealimport-worker: %s\n", err);
        dip_config_release(&cfg);
        return DIP_EXIT_CONFIG;
    }
    /* No APP_SECRET: a worker signs nothing. */
    if (dip_config_load(&cfg, config, DIP_NEED_MONGO | DIP_NEED_STORAGE, err,
                        sizeof(err)) < 0) {
        fprintf(stderr, "dealimport-worker: %s\n", err);
        dip_config_release(&cfg);
        return DIP_EXIT_CONFIG;
    }
    dip_log_setup("dealimport-worker", cfg.log_level,
                  cfg.log_format && strcmp(cfg.log_format, "json") == 0);
    if (events == NULL) {
        snprintf(endpoint, sizeof(endpoint), "ipc://%s/events.ipc",
                 cfg.runtime_dir);
        events = endpoint;
    }
    /* The supervisor may have blocked signals for its signalfd; a worker
     * must die of SIGTERM/SIGKILL like any process. */
    {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_IGN);
    }
    bson_mem_set_vtable(&oom_vtable);
    json_set_alloc_funcs(oom_malloc, free);
    if (doc_fd >= 0) {
        /* Not handed over whole: read from the database as without it. */
        has_handed =
            wrk_handoff_read((int)doc_fd, &handed, err, sizeof(err)) == 0;
        if (!has_handed) {
            dip_log(DIP_LOG_WARNING, queue_id, "%s: reading it instead", err);
            bson_destroy(&handed);
        }
    }
    dip_mongo_init();
    curl_global_init(CURL_GLOBAL_DEFAULT);

    rc = wrk_import_run(&cfg, queue_id, events, owner, (int64_t)epoch,
                        has_handed ? &handed : NULL, (int64_t)claimed_at);
    if (has_handed)
        bson_destroy(&handed);

    curl_global_cleanup();
    mongoc_cleanup();
    dip_config_release(&cfg);
    return rc;
}
