/*
 * sup_loop: claims imports, runs one worker process per import, turns the
 * workers' messages into progress, error documents and final statuses, and
 * contains every way a worker can fail: a crash, a limit, silence, or a
 * temporary outage it reports. Nothing a worker sends or does can stop this
 * loop; only SIGTERM/SIGINT end it, after handing running imports back.
 */
#include "sup_loop.h"
#include "dip_bson.h"
#include "dip_exit.h"
#include "dip_log.h"
#include "dip_msg.h"
#include "dip_text.h"
#include "dip_mongo_io.h"
#include "dip_text.h"
#include "sup_cgroup.h"
#include "sup_ctl.h"
#include "dip_secrets.h"
#include "sup_event.h"
#include "sup_followup.h"
#include "sup_life.h"
#include "sup_metrics.h"
#include "sup_notify.h"
#include "sup_renew.h"
#include "sup_spawn.h"
#include "sup_store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

/* libcurl sockets of completion-event deliveries polled with the rest. */
#define CRM_POLL_MAX 16
#define FLUSH_MS 1000
#define FLUSH_ERRORS 500
#define HEARTBEAT_TIMEOUT_MS 120000
#define SHUTDOWN_GRACE_MS 25000
#define MSGS_PER_WAKE 2000
#define EXIT_GRACE_MS 2000

typedef enum {
    W_FREE = 0,
    W_RUNNING, /* a worker process exists */
    W_WAITING, /* no process; respawn at respawn_at */
    W_EXITED,  /* reaped, its last messages may still be in flight */
} wstate_t;

typedef struct worker {
    wstate_t state;
    pid_t pid;
    char qid_hex[25];
    char name[64]; /* deals_import_queue_<id>: ZeroMQ identity, cgroup */
    bson_oid_t qid, account;
    bson_t *doc;
    int64_t started_ms, last_heard_ms, respawn_at_ms, last_flush_ms;
    sup_life_counters_t life; /* restarts, temporary failures */
    sup_lease_t lease;
    int64_t epoch; /* the claim's `claims` */
    /* By our monotonic clock: when the lease we last wrote runs out, and
     * when a worker told to stop for it is killed. */
    int64_t lease_end_ms, kill_at_ms;
    int exit_status;
    int64_t exit_ms;
    int64_t run_start_lines; /* w->lines when the current run started */
    /* an end that could not be written yet (respawn_at_ms == INT64_MAX) */
    const char *final_status;
    char *final_error;
    int final_release; /* the end is a hand-back (release), not a finish */
    /* The final status is on the queue document, csv_imports is not yet:
     * no one can claim the import any more, so its lease no longer
     * matters; the write is retried until it lands. */
    int final_written;
    int has_cgroup;
    /* made for the current worker run, handed to it over its secrets pipe;
     * its hello must carry it back */
    char spawn_secret[DIP_CONFIG_SPAWN_SECRET_LEN + 1];
    /* from the current worker run */
    int done;
    dip_done_status_t status;
    char *error;
    bson_t *notes; /* array of strings from done, or NULL */
    int dry_run;   /* from done: a dry run's verdict */
    int64_t would_add, new_stages_count;
    bson_t *new_stages; /* array of strings, or NULL */
    /* from done of an update or upsert: deals updated and unchanged (or
     * would be, in a dry run) */
    int has_counts;
    int64_t updated, unchanged;
    int64_t lines, added, nerrors, not_stored, bytes, bytes_total;
    /* csv_import_errors documents not yet written, built once from each
     * line_error frame; their bytes count in the loop's error buffer */
    bson_t **errs;
    size_t nerrs, errs_cap, err_bytes;
    bson_t *checkpoint; /* latest, not yet written */
    bson_t *header;     /* from start: array of strings */
    int header_dirty;   /* not yet written */
    int dirty;
    int flush_failed; /* the last write failed: wait FLUSH_MS to retry */
    /* the current run: whether its hello proved the spawn secret, and flow
     * control (dip_msg.h) */
    int hello_ok;
    int64_t recv_bytes, acked_bytes, last_ack_ms;
    long dropped; /* frames under its identity dropped since the last log */
    int64_t dropped_log_ms;
    int stop_sent;
    int64_t first_line;             /* from the current worker's hello */
    dip_control_action_t requested; /* an operator's pause or cancel */
    /* for the metrics: the run's db round trips so far, why we killed it
     * (COMPLETED: we did not), and where this supervisor took it up */
    int64_t round_trips;
    sup_metrics_exit_t killed_for;
    int64_t claimed_ms, claimed_lines;
} worker_t;

struct sup_loop {
    dip_config_t cfg; /* tunables only; strings borrowed from the caller */
    const char *config_file;
    sup_store_t *store;
    sup_renew_t *renew; /* the lease keeper's thread */
    sup_notify_t *notify;
    sup_cgroup_t *cgroup;
    sup_ctl_t *ctl;
    sup_metrics_t *metrics;
    /* what follows an import's end: its completion event (when a notify
     * URL is set, on a connection of its own) and the follow-up children */
    mongoc_client_t *events_client;
    sup_event_t *crm;
    sup_followups_t *followups;
    int64_t started_wall_ms;
    void *zctx, *events;
    char endpoint[600];
    int sigfd, lockfd;
    worker_t *workers;
    size_t cap;
    char owner[300];
    char worker_path[PATH_MAX];
    char **envp;
    int stopping;
    int64_t now, next_claim_ms, next_renew_ms, next_status_ms, next_watchdog_ms,
        shutdown_deadline_ms, give_up_ms;
    /* No database call before this (after a failed one), so that a
     * database that is away costs one timeout, not one per call. */
    int64_t db_pause_until_ms;
    int64_t call_ms; /* the longest a database call can block */
    uint64_t watchdog_usec;
    long finished, failed;
    size_t err_bytes; /* unwritten line errors of all workers */
    long dropped;     /* frames dropped since the last such log line */
    int64_t dropped_log_ms;
    int64_t window; /* bytes each worker may have unacknowledged */
    sup_store_served_t served[256]; /* for fair claiming */
    size_t nserved;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void worker_reset_run(worker_t *w)
{
    w->done = 0;
    w->status = 0;
    free(w->error);
    w->error = NULL;
    bson_destroy(w->notes);
    w->notes = NULL;
    w->dry_run = 0;
    bson_destroy(w->new_stages);
    w->new_stages = NULL;
    w->stop_sent = 0;
    w->round_trips = 0;
    w->killed_for = SUP_METRICS_EXIT_COMPLETED;
    w->hello_ok = 0;
    w->recv_bytes = w->acked_bytes = 0;
    memset(w->spawn_secret, 0, sizeof(w->spawn_secret));
}

static void clear_errors(sup_loop_t *self, worker_t *w)
{
    for (size_t i = 0; i < w->nerrs; i++)
        bson_destroy(w->errs[i]);
    w->nerrs = 0;
    self->err_bytes -= w->err_bytes;
    w->err_bytes = 0;
}

static void worker_clear(sup_loop_t *self, worker_t *w)
{
    worker_reset_run(w);
    free(w->final_error);
    clear_errors(self, w);
    free(w->errs);
    bson_destroy(w->checkpoint);
    bson_destroy(w->header);
    if (w->doc)
        bson_destroy(w->doc);
    memset(w, 0, sizeof(*w));
}

static void ctl_view(void *ctx, sup_ctl_view_t *view);
static void drop_import(sup_loop_t *self, worker_t *w);
static int ctl_control(void *ctx, const char *id, dip_control_action_t action);

/* ---- setup ---------------------------------------------------------- */

/* The runtime folder holds the sockets that carry every tenant's rows and
 * accept control frames: one that another user made first (the /tmp
 * fallback is predictable) or may write into is refused, not trusted as
 * found. */
static int make_runtime_dir(const char *dir, char *err, size_t errlen)
{
    struct stat st;
    int fd, rc = -1;
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "DEALIMPORT_RUNTIME_DIR: cannot create '%s': %s",
                 dir, strerror(errno));
        return -1;
    }
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0) {
        int e = errno;
        struct stat lst;
        snprintf(err, errlen, "DEALIMPORT_RUNTIME_DIR: cannot open '%s': %s",
                 dir,
                 lstat(dir, &lst) == 0 && S_ISLNK(lst.st_mode)
                     ? "it is a symbolic link"
                     : strerror(e));
        goto cleanup;
    }
    if (st.st_uid != geteuid()) {
        snprintf(err, errlen,
                 "DEALIMPORT_RUNTIME_DIR: '%s' belongs to uid %u, not to the "
                 "supervisor's user (uid %u): refusing to use it",
                 dir, (unsigned)st.st_uid, (unsigned)geteuid());
        goto cleanup;
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        snprintf(err, errlen,
                 "DEALIMPORT_RUNTIME_DIR: '%s' is writable by %s (mode %04o): "
                 "refusing to use it (chmod 0700 it)",
                 dir, (st.st_mode & S_IWOTH) ? "others" : "its group",
                 (unsigned)(st.st_mode & 07777));
        goto cleanup;
    }
    rc = 0;
cleanup:
    if (fd >= 0)
        close(fd);
    return rc;
}

static char **build_envp(const dip_config_t *cfg)
{
    /* The sanitizer options too, so a test build's worker behaves as its
     * supervisor was told to. */
    static const char *const keep[] = {
        "PATH",          "TZ",           "HOME",
        "LANG",          "LC_ALL",       "ASAN_OPTIONS",
        "UBSAN_OPTIONS", "LSAN_OPTIONS", NULL};
    char **envp = calloc(DIP_CONFIG_ENV_MAX + 12, sizeof(char *));
    int n;
    if (envp == NULL)
        return NULL;
    n = dip_config_to_env(cfg, envp);
    for (int i = 0; keep[i]; i++) {
        const char *v = getenv(keep[i]);
        if (v && asprintf(&envp[n], "%s=%s", keep[i], v) >= 0)
            n++;
    }
    /* libmongoc's counters live in a /dev/shm file per process, created as
     * the library loads; a worker killed for a limit would leave its file
     * behind for good (and a later process of the same pid would warn). */
    if ((envp[n] = strdup("MONGOC_DISABLE_SHM=1")) != NULL)
        n++;
    envp[n] = NULL;
    return envp;
}

static void free_envp(char **envp)
{
    for (int i = 0; envp && envp[i]; i++)
        free(envp[i]);
    free(envp);
}

sup_loop_t *sup_loop_new(const dip_config_t *cfg, const char *config_file,
                         const char *self_exe, char *err, size_t errlen)
{
    sup_loop_t *self = calloc(1, sizeof(*self));
    char host[256] = "localhost", path[700], msg[512];
    sigset_t mask;

    if (self == NULL)
        return NULL;
    self->sigfd = -1;
    self->lockfd = -1;
    self->cfg = *cfg;
    self->config_file = config_file;
    self->cap = (size_t)cfg->max_workers;
    /* The error buffer's bytes, shared out: with every worker inside its
     * window the buffer stays within its bound (plus a frame each). */
    self->window = cfg->error_buffer_bytes / cfg->max_workers;
    if (self->window < 256 * 1024)
        self->window = 256 * 1024;
    self->workers = calloc(self->cap, sizeof(worker_t));
    if (self->workers == NULL)
        goto fail;

    if (cfg->worker_path) {
        snprintf(self->worker_path, sizeof(self->worker_path), "%s",
                 cfg->worker_path);
    } else {
        char *slash;
        snprintf(self->worker_path, sizeof(self->worker_path), "%s", self_exe);
        slash = strrchr(self->worker_path, '/');
        snprintf(slash ? slash + 1 : self->worker_path,
                 sizeof(self->worker_path) -
                     (size_t)(slash ? slash + 1 - self->worker_path : 0),
                 "dealimport-worker");
#ifdef DEALIMPORT_LIBEXEC_DIR
        /* Installed from the package: the worker is no command of its own. */
        if (access(self->worker_path, X_OK) < 0)
            snprintf(self->worker_path, sizeof(self->worker_path), "%s",
                     DEALIMPORT_LIBEXEC_DIR "/dealimport-worker");
#endif
    }
    if (access(self->worker_path, X_OK) < 0) {
        snprintf(err, errlen, "DEALIMPORT_WORKER_PATH: cannot execute '%s': %s",
                 self->worker_path, strerror(errno));
        goto fail;
    }

    if (make_runtime_dir(cfg->runtime_dir, err, errlen) < 0)
        goto fail;
    /* One supervisor per runtime directory: a second one would steal the
     * first one's sockets. */
    snprintf(path, sizeof(path), "%s/supervisor.lock", cfg->runtime_dir);
    self->lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (self->lockfd < 0 || flock(self->lockfd, LOCK_EX | LOCK_NB) < 0) {
        snprintf(err, errlen,
                 "another supervisor is running with runtime directory '%s'",
                 cfg->runtime_dir);
        goto fail;
    }

    gethostname(host, sizeof(host) - 1);
    snprintf(self->owner, sizeof(self->owner), "%s:%d:%lld", host,
             (int)getpid(), (long long)dip_bson_now_ms());
    self->store = sup_store_new(cfg, self->owner, err, errlen);
    if (self->store == NULL)
        goto fail;
    self->call_ms = sup_store_call_ms(self->store);
    self->metrics = sup_metrics_new();
    if (self->metrics == NULL)
        goto fail;
    self->renew = sup_renew_new(cfg, self->owner, self->metrics, err, errlen);
    if (self->renew == NULL)
        goto fail;
    self->envp = build_envp(cfg);
    if (self->envp == NULL)
        goto fail;
    self->followups =
        sup_followups_new(cfg, self->owner, self_exe, self->envp, err, errlen);
    if (self->followups == NULL)
        goto fail;
    if (cfg->notify_url && *cfg->notify_url) {
        const char *db;
        char ierr[512];
        self->events_client = dip_mongo_client_new_bounded(
            cfg->mongodb_uri, "dealimport-supervisor", sup_store_budget_ms(cfg),
            &db, err, errlen);
        if (self->events_client == NULL)
            goto fail;
        self->crm = sup_event_new(cfg, self->events_client, db, self->owner,
                                  err, errlen);
        if (self->crm == NULL)
            goto fail;
        if (sup_event_ensure_indexes(self->crm, ierr, sizeof(ierr)) < 0)
            dip_log(DIP_LOG_WARNING, NULL,
                    "%s (created again at the next start)", ierr);
    }

    self->zctx = zmq_ctx_new();
    self->events = self->zctx ? zmq_socket(self->zctx, ZMQ_ROUTER) : NULL;
    snprintf(self->endpoint, sizeof(self->endpoint), "ipc://%s/events.ipc",
             cfg->runtime_dir);
    {
        int one = 1, linger = 0, maxmsg = (int)DIP_MSG_MAX_FRAME, bound;
        int64_t maxsize = (int64_t)maxmsg;
        mode_t old;
        if (self->events == NULL ||
            zmq_setsockopt(self->events, ZMQ_ROUTER_MANDATORY, &one,
                           sizeof(one)) ||
            zmq_setsockopt(self->events, ZMQ_LINGER, &linger, sizeof(linger)) ||
            zmq_setsockopt(self->events, ZMQ_MAXMSGSIZE, &maxsize,
                           sizeof(maxsize))) {
            snprintf(err, errlen, "cannot make the events socket: %s",
                     zmq_strerror(zmq_errno()));
            goto fail;
        }
        /* The socket file is born owner-only: ZeroMQ binds ipc in this
         * thread, so the umask covers it, and no other user can connect
         * before a chmod could run. */
        old = umask(0077);
        bound = zmq_bind(self->events, self->endpoint);
        umask(old);
        if (bound != 0) {
            snprintf(err, errlen, "cannot listen on '%s': %s", self->endpoint,
                     zmq_strerror(zmq_errno()));
            goto fail;
        }
    }
    if (cfg->metrics_addr &&
        sup_metrics_listen(self->metrics, cfg->metrics_addr, err, errlen) < 0)
        goto fail;
    {
        sup_ctl_host_t hooks = {self, ctl_view, ctl_control, self->metrics};
        self->started_wall_ms = dip_bson_now_ms();
        self->ctl = sup_ctl_new(self->zctx, cfg, self->owner, self->store,
                                &hooks, err, errlen);
        if (self->ctl == NULL)
            goto fail;
    }

    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    self->sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (self->sigfd < 0) {
        snprintf(err, errlen, "signalfd: %s", strerror(errno));
        goto fail;
    }

    self->notify = sup_notify_new();
    self->cgroup = sup_cgroup_new(msg, sizeof(msg));
    if (self->cgroup == NULL)
        dip_log(DIP_LOG_NOTICE, NULL,
                "no delegated cgroup v2 subtree (%s): workers are limited by "
                "rlimits only",
                msg);
    else
        dip_log(DIP_LOG_INFO, NULL,
                "workers get their own cgroup with memory, cpu and pids "
                "limits");
    return self;
fail:
    sup_loop_destroy(&self);
    return NULL;
}

void sup_loop_destroy(sup_loop_t **self_p)
{
    sup_loop_t *self;
    if (self_p == NULL || *self_p == NULL)
        return;
    self = *self_p;
    sup_renew_destroy(&self->renew);
    sup_event_destroy(&self->crm);
    if (self->events_client)
        dip_mongo_client_close(self->events_client);
    sup_followups_destroy(&self->followups);
    for (size_t i = 0; self->workers && i < self->cap; i++)
        worker_clear(self, &self->workers[i]);
    free(self->workers);
    if (self->events)
        zmq_close(self->events);
    sup_ctl_destroy(&self->ctl);
    sup_metrics_destroy(&self->metrics);
    if (self->zctx)
        zmq_ctx_term(self->zctx);
    sup_store_destroy(&self->store);
    sup_notify_destroy(&self->notify);
    sup_cgroup_destroy(&self->cgroup);
    free_envp(self->envp);
    if (self->sigfd >= 0)
        close(self->sigfd);
    if (self->lockfd >= 0)
        close(self->lockfd);
    free(self);
    *self_p = NULL;
}

/* ---- workers -------------------------------------------------------- */

/* Signals a worker's whole process group; never pid 0 or our own group. */
static void kill_worker(worker_t *w, int sig)
{
    if (w->pid > 0)
        kill(-w->pid, sig);
}

/* The queue id as stored (every import a worker runs has an ObjectId). */
static bson_value_t qid_value(const worker_t *w)
{
    bson_value_t v;
    memset(&v, 0, sizeof(v));
    v.value_type = BSON_TYPE_OID;
    bson_oid_copy(&w->qid, &v.value.v_oid);
    return v;
}

static int64_t lease_ms(const sup_loop_t *self)
{
    return self->cfg.lease_s * 1000;
}

/* A lease we cannot renew has its workers told to stop a third of the lease
 * before it runs out, and killed a twelfth before (the clock skew between
 * supervisors tolerated, see the README). Renewals come every sixth: with
 * calls bounded by a third (dip_mongo_client_new_bounded), one renewal
 * always fits between a write that extended the lease and the moment its
 * workers must be stopped. */
static int64_t stop_margin(const sup_loop_t *self)
{
    return lease_ms(self) / 3;
}

static int64_t kill_margin(const sup_loop_t *self)
{
    return lease_ms(self) / 12;
}

static int64_t renew_every(const sup_loop_t *self)
{
    return lease_ms(self) / 6;
}

/* Whether a database call may start now. Not during the pause after a
 * failed one; not when it could still block when a lease we hold needs its
 * workers stopped (stop_margin before its end), nor while a worker told to
 * stop for its lease is alive: the loop must be free to stop and kill them
 * in time. In a shutdown, not when it could outlast the stop timeout. */
static int db_ok(sup_loop_t *self)
{
    int64_t now = now_ms(), by = now + self->call_ms;
    if (now < self->db_pause_until_ms)
        return 0;
    if (self->stopping && by > self->give_up_ms)
        return 0;
    for (size_t i = 0; i < self->cap; i++) {
        const worker_t *w = &self->workers[i];
        if (w->state != W_RUNNING)
            continue;
        if (w->lease != SUP_LEASE_HELD ||
            by > w->lease_end_ms - stop_margin(self))
            return 0;
    }
    return 1;
}

static void db_failed(sup_loop_t *self)
{
    self->db_pause_until_ms = now_ms() + lease_ms(self) / 6;
}

static size_t running_for_account(sup_loop_t *self, const bson_oid_t *acc)
{
    size_t n = 0;
    for (size_t i = 0; i < self->cap; i++)
        if (self->workers[i].state != W_FREE &&
            bson_oid_equal(&self->workers[i].account, acc))
            n++;
    return n;
}

static size_t busy(sup_loop_t *self)
{
    size_t n = 0;
    for (size_t i = 0; i < self->cap; i++)
        n += self->workers[i].state != W_FREE;
    return n;
}

static worker_t *by_pid(sup_loop_t *self, pid_t pid)
{
    for (size_t i = 0; i < self->cap; i++)
        if (self->workers[i].state == W_RUNNING && self->workers[i].pid == pid)
            return &self->workers[i];
    return NULL;
}

static worker_t *by_qid_oid(sup_loop_t *self, const bson_oid_t *qid)
{
    for (size_t i = 0; i < self->cap; i++)
        if (self->workers[i].state != W_FREE &&
            bson_oid_equal(&self->workers[i].qid, qid))
            return &self->workers[i];
    return NULL;
}

static worker_t *by_qid(sup_loop_t *self, const char *hex)
{
    for (size_t i = 0; i < self->cap; i++)
        if (self->workers[i].state != W_FREE &&
            strcmp(self->workers[i].qid_hex, hex) == 0)
            return &self->workers[i];
    return NULL;
}

static void spawn_opts(sup_loop_t *self, sup_spawn_opts_t *o, char **argv,
                       int cgroup_fd)
{
    memset(o, 0, sizeof(*o));
    o->secrets_fd = -1;
    o->path = self->worker_path;
    o->argv = argv;
    o->envp = self->envp;
#ifdef __SANITIZE_ADDRESS__
    /* An AddressSanitizer build's worker maps terabytes of shadow memory,
     * which the memory rlimit counts: such test builds run without it. */
    o->memory_mb = 0;
#else
    o->memory_mb = self->cfg.worker_memory_mb;
#endif
    o->cpu_s = self->cfg.worker_cpu_s;
    o->nofile = 256;
    o->cgroup_fd = cgroup_fd;
}

static int start_worker(sup_loop_t *self, worker_t *w)
{
    char opt_id[] = "--queue-id", opt_events[] = "--events";
    char opt_owner[] = "--owner", opt_epoch[] = "--epoch", epoch[24];
    char opt_secrets[] = "--secrets-fd", secrets_fd[16];
    char *argv[] = {self->worker_path, opt_id,         w->qid_hex,
                    opt_events,        self->endpoint, opt_owner,
                    self->owner,       opt_epoch,      epoch,
                    opt_secrets,       secrets_fd,     NULL};
    sup_spawn_opts_t o;
    char err[512];
    int cgfd = -1, sfd;
    pid_t pid;

    /* Never two workers of one import: not beside another slot's, and not
     * for a claim that is not (or no longer surely) ours. */
    for (size_t i = 0; i < self->cap; i++) {
        const worker_t *x = &self->workers[i];
        if (x != w && (x->state == W_RUNNING || x->state == W_EXITED) &&
            bson_oid_equal(&x->qid, &w->qid)) {
            dip_log(DIP_LOG_ERR, w->qid_hex,
                    "not starting a worker: pid=%d still runs the import",
                    (int)x->pid);
            return -1;
        }
    }
    if (w->lease != SUP_LEASE_HELD) {
        dip_log(DIP_LOG_WARNING, w->qid_hex,
                "not starting a worker: the lease is not ours for long "
                "enough");
        return -1;
    }
    snprintf(epoch, sizeof(epoch), "%lld", (long long)w->epoch);
    /* Each spawn proves itself in its hello with a secret of its own,
     * handed over with the other secrets through a pipe, never in envp. */
    snprintf(secrets_fd, sizeof(secrets_fd), "%d", SUP_SPAWN_SECRETS_FD);
    if (dip_secrets_spawn_secret(w->spawn_secret) < 0) {
        dip_log(DIP_LOG_ERR, w->qid_hex,
                "cannot make the worker's spawn secret: %s", strerror(errno));
        return -1;
    }
    sfd = dip_secrets_pipe(&self->cfg, w->spawn_secret, err, sizeof(err));
    if (sfd < 0) {
        dip_log(DIP_LOG_ERR, w->qid_hex, "cannot start the worker: %s", err);
        return -1;
    }

    if (self->cgroup) {
        if (sup_cgroup_create(self->cgroup, w->name, self->cfg.worker_memory_mb,
                              100, 64, &cgfd, err, sizeof(err)) < 0) {
            dip_log(DIP_LOG_WARNING, w->qid_hex,
                    "cannot create the worker's cgroup, using rlimits only: %s",
                    err);
            cgfd = -1;
        } else {
            w->has_cgroup = 1;
        }
    }
    spawn_opts(self, &o, argv, cgfd);
    o.secrets_fd = sfd;
    pid = sup_spawn_start(&o, err, sizeof(err));
    close(sfd);
    if (cgfd >= 0)
        close(cgfd);
    if (pid < 0) {
        dip_log(DIP_LOG_ERR, w->qid_hex, "%s", err);
        return -1;
    }
    {
        /* The secret survives the reset of the run it belongs to. */
        char keep[DIP_CONFIG_SPAWN_SECRET_LEN + 1];
        memcpy(keep, w->spawn_secret, sizeof(keep));
        worker_reset_run(w);
        memcpy(w->spawn_secret, keep, sizeof(keep));
        memset(keep, 0, sizeof(keep));
    }
    w->state = W_RUNNING;
    w->pid = pid;
    w->run_start_lines = w->lines;
    w->started_ms = w->last_heard_ms = self->now;
    w->last_flush_ms = self->now;
    sup_metrics_worker_started(self->metrics, &w->account);
    dip_log(DIP_LOG_INFO, w->qid_hex, "worker started: pid=%d namespace=%s",
            (int)pid, w->name);
    return 0;
}

static int send_frame(sup_loop_t *self, worker_t *w, bson_t *frame)
{
    int rc = -1;
    if (frame &&
        zmq_send(self->events, w->name, strlen(w->name),
                 ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0 &&
        zmq_send(self->events, bson_get_data(frame), frame->len,
                 ZMQ_DONTWAIT) >= 0)
        rc = 0;
    bson_destroy(frame);
    return rc;
}

static int send_control(sup_loop_t *self, worker_t *w,
                        dip_control_action_t action)
{
    return send_frame(self, w, dip_msg_control(action));
}

static int pending(const worker_t *w)
{
    return w->dirty || w->header_dirty || w->nerrs > 0;
}

/* Tells the worker what is stored and how much more it may send; also the
 * supervisor's sign of life to it. */
static void send_ack(sup_loop_t *self, worker_t *w)
{
    if (w->state != W_RUNNING || !w->hello_ok)
        return;
    if (!pending(w))
        w->acked_bytes = w->recv_bytes;
    send_frame(self, w, dip_msg_ack(w->acked_bytes, self->window));
    w->last_ack_ms = self->now;
}

/* Writes what the worker reported and has not been written yet. */
static int flush_worker(sup_loop_t *self, worker_t *w)
{
    char err[512];
    bson_value_t qid = qid_value(w);
    int64_t sent;
    int rc;
    int64_t received = w->recv_bytes;
    if (!pending(w))
        return 0;
    if (w->lease != SUP_LEASE_HELD || !db_ok(self))
        return -1;
    sent = now_ms();
    rc = sup_store_progress(
        self->store, &qid, w->epoch, w->errs, w->nerrs, w->lines, w->added,
        w->nerrors, w->not_stored, w->bytes, w->bytes_total, w->checkpoint,
        w->header_dirty ? w->header : NULL, err, sizeof(err));
    w->last_flush_ms = self->now;
    if (rc == SUP_STORE_OK) {
        /* The progress write extends the lease too. */
        w->lease_end_ms = sent + lease_ms(self);
        clear_errors(self, w);
        bson_destroy(w->checkpoint);
        w->checkpoint = NULL;
        w->dirty = 0;
        w->header_dirty = 0;
        w->flush_failed = 0;
        /* Everything received before this write is stored now. */
        w->acked_bytes = received;
        send_ack(self, w);
        return 0;
    }
    if (rc == SUP_STORE_ELOST) {
        /* Another supervisor took this import over (our lease lapsed):
         * stop our worker so only one runs it. */
        dip_log(DIP_LOG_ERR, w->qid_hex, "%s: stopping its worker", err);
        w->lease = SUP_LEASE_LOST;
        if (w->state == W_RUNNING) {
            kill_worker(w, SIGKILL);
            w->killed_for = SUP_METRICS_EXIT_LEASE_LOST;
        }
        clear_errors(self, w);
        w->dirty = 0;
        w->header_dirty = 0;
        return -1;
    }
    db_failed(self);
    dip_log(DIP_LOG_WARNING, w->qid_hex, "%s (will retry)", err);
    w->flush_failed = 1;
    return -1;
}

/* The import's completion event, stored (held until its follow-ups
 * release it) before its final status is written, so that no end goes
 * untold whatever crashes after. 0, or -1 with err filled. */
static int record_event(sup_loop_t *self, worker_t *w, const char *status,
                        const char *error, char *err, size_t errlen)
{
    bson_t details = BSON_INITIALIZER;
    bson_iter_t it;
    const char *type;
    int rc;
    if (self->crm == NULL || w->final_written)
        return 0;
    type = sup_followup_event_type(
        status,
        bson_iter_init_find(&it, w->doc, "dry_run") && bson_iter_as_bool(&it));
    if (type == NULL)
        return 0;
    BSON_APPEND_UTF8(&details, "status", status);
    BSON_APPEND_INT64(&details, "total_records", w->lines);
    if (w->has_counts)
        sup_store_append_counts(w->dry_run, w->updated, w->unchanged, &details);
    if (error)
        BSON_APPEND_UTF8(&details, "error", error);
    rc = sup_event_record(self->crm, w->doc, type, &details, 1, err, errlen);
    bson_destroy(&details);
    if (rc < 0)
        db_failed(self);
    return rc;
}

static void finish_import(sup_loop_t *self, worker_t *w, const char *status,
                          const char *error)
{
    sup_store_result_t r = {status,        error,         w->notes,
                            w->lines,      w->not_stored, w->header,
                            w->dry_run,    w->would_add,  w->new_stages_count,
                            w->new_stages, w->has_counts, w->updated,
                            w->unchanged};
    char err[512];
    int rc = SUP_STORE_EFAIL;
    if (w->lease != SUP_LEASE_HELD && !w->final_written) {
        dip_log(DIP_LOG_WARNING, w->qid_hex,
                "not recording '%s': the claim is gone or running out", status);
        drop_import(self, w);
        return;
    }
    /* Line errors still unwritten (database away) must land before the
     * final counts are taken from the database. */
    if (!db_ok(self)) {
        snprintf(err, sizeof(err), "the database is unavailable");
    } else if (flush_worker(self, w) != 0 && pending(w)) {
        snprintf(err, sizeof(err), "the line errors could not be written");
    } else if (record_event(self, w, status, error, err, sizeof(err)) == 0) {
        rc = sup_store_finish(self->store, w->doc, w->epoch, &r, err,
                              sizeof(err));
        if (rc == SUP_STORE_EPARTIAL) {
            w->final_written = 1;
            rc = SUP_STORE_EFAIL;
        }
        if (rc == SUP_STORE_EFAIL)
            db_failed(self);
    }
    if (rc == SUP_STORE_EFAIL) {
        /* Keep the slot and write the end again later: given up, the
         * import would stay 'processing' under our renewed lease forever. */
        dip_log(DIP_LOG_ERR, w->qid_hex,
                "cannot record the final status '%s' yet: %s (will retry)",
                status, err);
        if (error != w->final_error) {
            char *copy = error ? strdup(error) : NULL;
            free(w->final_error);
            w->final_error = copy;
        }
        w->final_status = status;
        w->state = W_WAITING;
        w->pid = 0;
        w->respawn_at_ms = INT64_MAX;
        w->last_flush_ms = self->now;
        return;
    }
    if (rc == SUP_STORE_ELOST) {
        /* Nothing was written: the import is another supervisor's. */
        dip_log(DIP_LOG_ERR, w->qid_hex,
                "not recording the final status '%s': %s", status, err);
        w->lease = SUP_LEASE_LOST;
        drop_import(self, w);
        return;
    } else {
        sup_metrics_import_ended(self->metrics, status,
                                 self->now - w->claimed_ms,
                                 w->lines - w->claimed_lines);
        dip_log(strcmp(status, "completed") == 0 ? DIP_LOG_INFO
                                                 : DIP_LOG_WARNING,
                w->qid_hex, "import %s at line %lld%s%s%s", status,
                (long long)w->lines, error ? ": '" : "", error ? error : "",
                error ? "'" : "");
    }
    /* The error file, the cleanup and the event's release follow. */
    sup_followups_poke(self->followups);
    self->finished++;
    if (strcmp(status, "failed") == 0)
        self->failed++;
    if (w->has_cgroup)
        sup_cgroup_remove(self->cgroup, w->name);
    sup_renew_forget(self->renew, &w->qid);
    worker_clear(self, w);
    self->next_claim_ms = self->now; /* a slot is free: claim at once */
}

static void release_import(sup_loop_t *self, worker_t *w, const char *status,
                           const char *error)
{
    char err[512];
    bson_value_t qid = qid_value(w);
    int rc = SUP_STORE_EFAIL;
    if (w->lease != SUP_LEASE_HELD) {
        drop_import(self, w);
        return;
    }
    flush_worker(self, w);
    if (w->lease == SUP_LEASE_LOST) {
        drop_import(self, w);
        return;
    }
    if (!db_ok(self)) {
        snprintf(err, sizeof(err), "the database is unavailable");
    } else {
        rc = sup_store_release(self->store, &qid, w->epoch, status, error, err,
                               sizeof(err));
        if (rc == SUP_STORE_EFAIL)
            db_failed(self);
    }
    if (rc == SUP_STORE_ELOST) {
        dip_log(DIP_LOG_ERR, w->qid_hex, "not handing back as '%s': %s", status,
                err);
        w->lease = SUP_LEASE_LOST;
        drop_import(self, w);
        return;
    }
    if (rc != SUP_STORE_OK) {
        /* As with a final status: given up, the import would stay
         * 'processing' under our renewed lease. Keep the slot, retry. */
        dip_log(DIP_LOG_ERR, w->qid_hex,
                "cannot hand the import back as '%s' yet: %s (will retry)",
                status, err);
        if (error != w->final_error) {
            char *copy = error ? strdup(error) : NULL;
            free(w->final_error);
            w->final_error = copy;
        }
        w->final_status = status;
        w->final_release = 1;
        w->state = W_WAITING;
        w->pid = 0;
        w->respawn_at_ms = INT64_MAX;
        w->last_flush_ms = self->now;
        return;
    }
    sup_metrics_import_released(self->metrics, status);
    dip_log(DIP_LOG_INFO, w->qid_hex, "import handed back as '%s' at line %lld",
            status, (long long)w->lines);
    if (w->has_cgroup)
        sup_cgroup_remove(self->cgroup, w->name);
    sup_renew_forget(self->renew, &w->qid);
    worker_clear(self, w);
    self->next_claim_ms = self->now;
}

/* Frees the slot of an import whose claim is gone or lapsing: nothing is
 * written, nothing started; a fresh claim takes it up again. */
static void drop_import(sup_loop_t *self, worker_t *w)
{
    if (w->has_cgroup)
        sup_cgroup_remove(self->cgroup, w->name);
    sup_renew_forget(self->renew, &w->qid);
    worker_clear(self, w);
    self->next_claim_ms = self->now;
}

static void schedule_respawn(sup_loop_t *self, worker_t *w, int64_t delay_ms)
{
    if (w->has_cgroup) {
        sup_cgroup_remove(self->cgroup, w->name);
        w->has_cgroup = 0;
    }
    w->state = W_WAITING;
    w->pid = 0;
    w->respawn_at_ms = self->now + delay_ms;
}

/* A worker process ended: sup_life decides what that means for its
 * import; this carries it out. */
static void on_exit_status(sup_loop_t *self, worker_t *w, int st)
{
    char how[512];
    sup_spawn_opts_t o;
    char *argv[] = {NULL};
    sup_life_facts_t f;
    sup_life_action_t a;

    if (w->lease == SUP_LEASE_HELD)
        flush_worker(self, w);
    spawn_opts(self, &o, argv, -1);
    sup_spawn_describe(st, &o, how, sizeof(how));
    memset(&f, 0, sizeof(f));
    f.wait_status = st;
    f.oom = w->has_cgroup && sup_cgroup_oom_killed(self->cgroup, w->name) > 0;
    sup_metrics_worker_exited(
        self->metrics, &w->account,
        sup_metrics_exit_cause(
            st, w->done,
            f.oom || (WIFEXITED(st) && WEXITSTATUS(st) == DIP_EXIT_NOMEM),
            w->killed_for));
    f.done = w->done;
    f.status = w->status;
    f.error = w->error;
    f.requested = w->requested;
    f.stopping = self->stopping;
    f.lease = w->lease;
    f.now_ms = self->now;
    f.lines = w->lines;
    f.run_start_lines = w->run_start_lines;
    f.how = how;
    f.memory_mb = self->cfg.worker_memory_mb;
    f.restarts_allowed = self->cfg.worker_restarts;
    f.backoff_ms = self->cfg.row_backoff_ms;
    sup_life_decide(&f, &w->life, &a);
    switch (a.kind) {
    case SUP_LIFE_FINISH:
        finish_import(self, w, a.status, a.sentence[0] ? a.sentence : NULL);
        break;
    case SUP_LIFE_RELEASE:
        release_import(self, w, a.status, NULL);
        break;
    case SUP_LIFE_RESPAWN:
        dip_log(DIP_LOG_WARNING, w->qid_hex, "%s", a.sentence);
        schedule_respawn(self, w, a.delay_ms);
        break;
    case SUP_LIFE_DROP:
        dip_log(DIP_LOG_WARNING, w->qid_hex, "%s", a.sentence);
        drop_import(self, w);
        break;
    }
}

static void reap(sup_loop_t *self)
{
    pid_t pid;
    int st;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        worker_t *w = by_pid(self, pid);
        if (w == NULL) {
            sup_followups_reaped(self->followups, pid, st);
            continue;
        }
        /* Whatever the worker left in its process group goes with it. */
        kill_worker(w, SIGKILL);
        if (w->done) {
            on_exit_status(self, w, st);
        } else {
            /* The exit can overtake the worker's last messages, still on
             * their way through the socket: give them a moment. */
            w->state = W_EXITED;
            w->exit_status = st;
            w->exit_ms = self->now;
        }
    }
}

/* ---- control plane hooks (sup_ctl) ----------------------------------- */

static void ctl_view(void *ctx, sup_ctl_view_t *v)
{
    sup_loop_t *self = ctx;
    int64_t wall = dip_bson_now_ms(), mono = now_ms();
    v->started_ms = self->started_wall_ms;
    v->limit = self->cap;
    v->per_account_limit = self->cfg.max_workers_per_account;
    v->memory_mb = self->cfg.worker_memory_mb;
    v->cpu_s = self->cfg.worker_cpu_s;
    v->timeout_s = self->cfg.worker_timeout_s;
    v->finished = self->finished;
    v->failed = self->failed;
    v->stopping = self->stopping;
    v->nruns = 0;
    for (size_t i = 0; i < self->cap && v->nruns < v->cap; i++) {
        const worker_t *w = &self->workers[i];
        sup_ctl_run_t *r = &v->runs[v->nruns];
        if (w->state == W_FREE)
            continue;
        memset(r, 0, sizeof(*r));
        snprintf(r->id, sizeof(r->id), "%s", w->qid_hex);
        bson_oid_to_string(&w->account, r->account);
        r->running = w->state == W_RUNNING;
        r->finishing = w->state == W_WAITING && w->respawn_at_ms == INT64_MAX;
        r->pid = w->pid;
        r->first_line = w->first_line;
        r->started_ms = w->started_ms ? wall - (mono - w->started_ms) : 0;
        r->lines = w->lines;
        r->added = w->added;
        r->errors = w->nerrors;
        r->bytes = w->bytes;
        r->bytes_total = w->bytes_total;
        r->restarts = w->life.restarts;
        r->requested =
            w->requested ? dip_msg_control_action_name(w->requested) : NULL;
        v->nruns++;
    }
}

static int ctl_control(void *ctx, const char *id, dip_control_action_t action)
{
    sup_loop_t *self = ctx;
    worker_t *w = by_qid(self, id);
    if (w == NULL || self->stopping)
        return -1;
    if (w->state == W_WAITING) {
        if (w->respawn_at_ms == INT64_MAX)
            return -1; /* finishing */
        /* No process to tell: stop it here, from its last checkpoint. */
        if (action == DIP_CONTROL_PAUSE)
            release_import(self, w, "paused", NULL);
        else
            finish_import(self, w, "cancelled", NULL);
        return 1;
    }
    /* Never weaken a cancel into a pause. */
    if (w->requested != DIP_CONTROL_CANCEL)
        w->requested = action;
    /* Before its hello the worker may not be connected yet: the hello
     * handler sends it again. */
    send_control(self, w, w->requested);
    return 0;
}

/* ---- messages ------------------------------------------------------- */

static worker_t *by_identity(sup_loop_t *self, const char *identity,
                             size_t idlen)
{
    for (size_t i = 0; i < self->cap; i++) {
        worker_t *w = &self->workers[i];
        if ((w->state == W_RUNNING || w->state == W_EXITED) &&
            idlen == strlen(w->name) && memcmp(identity, w->name, idlen) == 0)
            return w;
    }
    return NULL;
}

/* 1 when a hello names this run: the import (its _id as stored), this
 * supervisor's claim and epoch, and the secret made for this spawn. */
static int hello_matches(sup_loop_t *self, const worker_t *w,
                         const dip_msg_t *m, const char **why)
{
    bson_iter_t it;
    const bson_value_t *id;
    *why = NULL;
    if (!bson_iter_init_find(&it, w->doc, "_id")) {
        *why = "the import has no _id";
        return 0;
    }
    id = bson_iter_value(&it);
    if (id->value_type != m->queue_id.value_type ||
        (id->value_type == BSON_TYPE_OID &&
         !bson_oid_equal(&id->value.v_oid, &m->queue_id.value.v_oid)) ||
        (id->value_type == BSON_TYPE_UTF8 &&
         (id->value.v_utf8.len != m->queue_id.value.v_utf8.len ||
          memcmp(id->value.v_utf8.str, m->queue_id.value.v_utf8.str,
                 id->value.v_utf8.len) != 0)) ||
        (id->value_type == BSON_TYPE_INT32 &&
         id->value.v_int32 != m->queue_id.value.v_int32) ||
        (id->value_type == BSON_TYPE_INT64 &&
         id->value.v_int64 != m->queue_id.value.v_int64))
        *why = "it names another import";
    else if (strcmp(m->owner, self->owner) != 0 || m->epoch != w->epoch)
        *why = "it names another claim";
    else if (!dip_msg_is_secret(m->secret) ||
             strcmp(m->secret, w->spawn_secret) != 0)
        *why = "its secret is not this spawn's";
    return *why == NULL;
}

/* A line error, turned into its csv_import_errors document at once: the
 * frame's own row array, copied, no second object. */
static void on_line_error(sup_loop_t *self, worker_t *w, const dip_msg_t *m)
{
    bson_t *d = bson_sized_new(m->row.len + 256);
    bson_iter_t it;
    if (w->nerrs == w->errs_cap) {
        size_t cap = w->errs_cap ? w->errs_cap * 2 : 64;
        bson_t **errs = realloc(w->errs, cap * sizeof(*errs));
        if (errs == NULL) {
            bson_destroy(d);
            dip_log(DIP_LOG_ERR, w->qid_hex,
                    "out of memory: the line error of line %lld is lost",
                    (long long)m->line);
            return;
        }
        w->errs = errs;
        w->errs_cap = cap;
    }
    if (bson_iter_init_find(&it, w->doc, "_id"))
        bson_append_value(d, "queue_id", -1, bson_iter_value(&it));
    BSON_APPEND_INT64(d, "line", m->line);
    BSON_APPEND_UTF8(d, "field", m->field);
    BSON_APPEND_UTF8(d, "message", m->message);
    BSON_APPEND_ARRAY(d, "row", &m->row);
    BSON_APPEND_BOOL(d, "row_truncated", m->row_truncated != 0);
    BSON_APPEND_DATE_TIME(d, "created_at", dip_bson_now_ms());
    w->errs[w->nerrs++] = d;
    w->err_bytes += d->len;
    self->err_bytes += d->len;
}

/* A frame not taken: logged, then counted for five seconds (per import,
 * and once more for identities of no import), so a flood of them cannot
 * flood the log. */
static void dropped(sup_loop_t *self, worker_t *w, const char *identity,
                    size_t idlen, const char *why)
{
    char who[80];
    long *count = w ? &w->dropped : &self->dropped;
    int64_t *at = w ? &w->dropped_log_ms : &self->dropped_log_ms;
    (*count)++;
    if (*at && self->now - *at < 5000)
        return;
    dip_text_format(who, sizeof(who), NULL, "%.*s",
                    (int)(idlen > 64 ? 64 : idlen), identity);
    dip_log(DIP_LOG_WARNING, w ? w->qid_hex : NULL,
            "dropped a message from '%s': %s (%ld dropped since the last "
            "such line)",
            who, why, *count);
    *count = 0;
    *at = self->now;
}

static void on_message(sup_loop_t *self, const char *identity, size_t idlen,
                       const void *data, size_t len)
{
    dip_msg_t m;
    char err[256], why[320];
    worker_t *w = by_identity(self, identity, idlen);
    if (w == NULL) {
        dropped(self, NULL, identity, idlen,
                "no import of ours runs under that identity");
        return;
    }
    if (dip_msg_decode(data, len, &m, err, sizeof(err)) < 0) {
        dip_text_format(why, sizeof(why), NULL, "malformed: %s", err);
        dropped(self, w, identity, idlen, why);
        if (w->hello_ok)
            w->recv_bytes += (int64_t)len;
        return;
    }
    if (m.type == DIP_MSG_HELLO) {
        const char *reason;
        if (!hello_matches(self, w, &m, &reason)) {
            dip_text_format(why, sizeof(why), NULL,
                            "a hello (pid %lld) not from this spawn: %s",
                            (long long)m.pid, reason);
            dropped(self, w, identity, idlen, why);
            return;
        }
        w->hello_ok = 1;
        w->recv_bytes = w->acked_bytes = 0;
    } else if (!w->hello_ok) {
        /* Frames from an identity without this spawn's hello are not the
         * worker's: whoever chose that identity is not heard. */
        dip_text_format(why, sizeof(why), NULL,
                        "a '%s' with no hello carrying this spawn's secret "
                        "before it",
                        dip_msg_type_name(m.type));
        dropped(self, w, identity, idlen, why);
        return;
    }
    w->last_heard_ms = self->now;
    if (m.type != DIP_MSG_HEARTBEAT)
        w->recv_bytes += (int64_t)len;
    switch (m.type) {
    case DIP_MSG_HELLO:
        dip_log(DIP_LOG_INFO, w->qid_hex, "hello from worker %lld",
                (long long)m.pid);
        /* A request made before the worker could hear it. */
        if (w->requested)
            send_control(self, w, w->requested);
        break;
    case DIP_MSG_START:
        dip_log(DIP_LOG_INFO, w->qid_hex, "worker pid=%d starts at line %lld",
                (int)w->pid, (long long)m.first_line);
        w->first_line = m.first_line;
        if (m.has_header) {
            bson_destroy(w->header);
            w->header = bson_copy(&m.header);
            w->header_dirty = w->header != NULL;
        }
        break;
    case DIP_MSG_BATCH:
        sup_metrics_progress(self->metrics, m.added - w->added,
                             m.errors - w->nerrors, m.bytes - w->bytes,
                             m.db_round_trips - w->round_trips);
        w->round_trips = m.db_round_trips;
        w->lines = m.lines;
        w->added = m.added;
        w->nerrors = m.errors;
        w->not_stored = m.errors_not_stored;
        w->bytes = m.bytes;
        w->bytes_total = m.bytes_total;
        bson_destroy(w->checkpoint);
        w->checkpoint = bson_copy(&m.checkpoint);
        w->dirty = 1;
        break;
    case DIP_MSG_LINE_ERROR:
        on_line_error(self, w, &m);
        break;
    case DIP_MSG_DONE:
        w->done = 1;
        w->status = m.status;
        w->lines = m.lines > w->lines ? m.lines : w->lines;
        if (m.errors_not_stored > w->not_stored)
            w->not_stored = m.errors_not_stored;
        free(w->error);
        w->error = m.error ? strdup(m.error) : NULL;
        bson_destroy(w->notes);
        w->notes = m.has_notes ? bson_copy(&m.notes) : NULL;
        w->dry_run = m.dry_run;
        w->would_add = m.would_add;
        w->new_stages_count = m.new_stages_count;
        bson_destroy(w->new_stages);
        w->new_stages = m.dry_run ? bson_copy(&m.new_stages) : NULL;
        w->has_counts = m.has_counts;
        w->updated = m.updated;
        w->unchanged = m.unchanged;
        break;
    default:
        break;
    }
    /* The error buffer is bounded in bytes: each worker may have a window
     * unacknowledged, so a worker over it (plus the frame in flight) does
     * not follow the protocol. */
    if (w->err_bytes > (size_t)self->window + DIP_MSG_MAX_FRAME &&
        w->state == W_RUNNING) {
        dip_log(DIP_LOG_ERR, w->qid_hex,
                "worker pid=%d sent %zu bytes of line errors past its window: "
                "killing it",
                (int)w->pid, w->err_bytes);
        kill_worker(w, SIGKILL);
    }
    /* Write when half a window waits, so a worker never stalls on a full
     * one; when nothing waits, what arrived is acknowledged at once. */
    /* After a failed write, the next try waits for the timer: a failing
     * database is not asked again for every message. */
    if ((w->nerrs >= FLUSH_ERRORS || w->err_bytes >= (size_t)self->window / 2 ||
         self->err_bytes >= (size_t)self->cfg.error_buffer_bytes) &&
        (!w->flush_failed || self->now - w->last_flush_ms >= FLUSH_MS))
        flush_worker(self, w);
    else if (!pending(w))
        send_ack(self, w);
    if (m.type == DIP_MSG_DONE && w->state == W_EXITED)
        on_exit_status(self, w, w->exit_status);
}

static void drain_events(sup_loop_t *self)
{
    for (int i = 0; i < MSGS_PER_WAKE; i++) {
        zmq_msg_t id, body;
        int more = 0;
        size_t ml = sizeof(more);
        zmq_msg_init(&id);
        if (zmq_msg_recv(&id, self->events, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&id);
            return;
        }
        zmq_msg_init(&body);
        zmq_getsockopt(self->events, ZMQ_RCVMORE, &more, &ml);
        if (more && zmq_msg_recv(&body, self->events, ZMQ_DONTWAIT) >= 0) {
            /* Anything beyond two frames is not ours: drop it. */
            zmq_getsockopt(self->events, ZMQ_RCVMORE, &more, &ml);
            if (!more)
                on_message(self, zmq_msg_data(&id), zmq_msg_size(&id),
                           zmq_msg_data(&body), zmq_msg_size(&body));
            while (more) {
                zmq_msg_t extra;
                zmq_msg_init(&extra);
                zmq_msg_recv(&extra, self->events, ZMQ_DONTWAIT);
                zmq_msg_close(&extra);
                zmq_getsockopt(self->events, ZMQ_RCVMORE, &more, &ml);
            }
        }
        zmq_msg_close(&id);
        zmq_msg_close(&body);
    }
}

/* ---- timers --------------------------------------------------------- */

/* Remembers when an account was last served; the least recent entry makes
 * room when the table is full. */
static void note_served(sup_loop_t *self, const bson_oid_t *account)
{
    size_t slot = self->nserved;
    for (size_t i = 0; i < self->nserved; i++) {
        if (bson_oid_equal(&self->served[i].account, account)) {
            slot = i;
            break;
        }
    }
    if (slot == self->nserved) {
        if (self->nserved < sizeof(self->served) / sizeof(self->served[0])) {
            self->nserved++;
        } else {
            slot = 0;
            for (size_t i = 1; i < self->nserved; i++)
                if (self->served[i].at_ms < self->served[slot].at_ms)
                    slot = i;
        }
    }
    bson_oid_copy(account, &self->served[slot].account);
    self->served[slot].at_ms = self->now;
}

/* The imports this supervisor holds, for the store's fenced calls; ids
 * borrowed from the workers' documents. Returns how many. */
static size_t held_list(sup_loop_t *self, sup_store_held_t *held, worker_t **of)
{
    size_t n = 0;
    for (size_t i = 0; i < self->cap; i++) {
        worker_t *w = &self->workers[i];
        if (w->state == W_FREE)
            continue;
        held[n].id = qid_value(w);
        held[n].epoch = w->epoch;
        held[n].lost = 0;
        if (of)
            of[n] = w;
        n++;
    }
    return n;
}

/* A claimed document the service cannot run (its _id is not an
 * ObjectId): it ends failed with a sentence, keyed by the id as stored,
 * and takes no slot. */
static void refuse_claimed(sup_loop_t *self, const bson_t *doc)
{
    bson_iter_t it;
    char err[512], msg[256], text[128] = "";
    sup_store_result_t r = {.status = "failed", .error = msg};
    int rc;
    if (bson_iter_init_find(&it, doc, "_id")) {
        bson_t tmp = BSON_INITIALIZER;
        char *json;
        BSON_APPEND_VALUE(&tmp, "id", bson_iter_value(&it));
        json = bson_as_canonical_extended_json(&tmp, NULL);
        if (json)
            dip_text_format(text, sizeof(text), NULL, "%s", json);
        bson_free(json);
        bson_destroy(&tmp);
    }
    dip_text_format(msg, sizeof(msg), NULL,
                    "the queue document's _id is not an ObjectId (it is a %s); "
                    "this service imports only documents whose _id is one",
                    bson_iter_init_find(&it, doc, "_id") &&
                            BSON_ITER_HOLDS_UTF8(&it)
                        ? "string"
                        : "value of another type");
    rc = sup_store_finish(self->store, doc, sup_store_epoch(doc), &r, err,
                          sizeof(err));
    if (rc == SUP_STORE_OK)
        dip_log(DIP_LOG_WARNING, NULL, "import %s failed: '%s'", text, msg);
    else
        dip_log(DIP_LOG_ERR, NULL,
                "import %s: cannot record that it failed: %s (its lease "
                "expires and it is tried again)",
                text, err);
}

static void claim(sup_loop_t *self)
{
    char err[512];
    while (!self->stopping && busy(self) < self->cap && db_ok(self)) {
        bson_oid_t skip[64];
        size_t nskip = 0;
        bson_t doc;
        worker_t *w = NULL;
        sup_store_held_t *hl = calloc(self->cap, sizeof(*hl));
        size_t nheld;
        int64_t sent;
        bson_iter_t id;
        int rc;
        if (hl == NULL)
            return;
        nheld = held_list(self, hl, NULL);
        /* accounts at their limit */
        for (size_t i = 0; i < self->cap && nskip < 64; i++) {
            worker_t *x = &self->workers[i];
            int seen = 0;
            if (x->state == W_FREE)
                continue;
            for (size_t j = 0; j < nskip; j++)
                seen |= bson_oid_equal(&skip[j], &x->account);
            if (!seen && running_for_account(self, &x->account) >=
                             (size_t)self->cfg.max_workers_per_account)
                bson_oid_copy(&x->account, &skip[nskip++]);
        }
        sent = now_ms();
        rc = sup_store_claim(self->store, skip, nskip, hl, nheld, self->served,
                             self->nserved, self->cfg.max_workers_per_account,
                             &doc, err, sizeof(err));
        sup_metrics_claim(self->metrics, rc);
        free(hl);
        if (rc <= 0) {
            if (rc < 0) {
                dip_log(DIP_LOG_WARNING, NULL, "%s", err);
                db_failed(self);
            }
            return;
        }
        if (!bson_iter_init_find(&id, &doc, "_id") ||
            !BSON_ITER_HOLDS_OID(&id)) {
            refuse_claimed(self, &doc);
            bson_destroy(&doc);
            continue;
        }
        if (by_qid_oid(self, bson_iter_oid(&id)) != NULL) {
            /* Excluded by the claim's filter: never reached. */
            dip_log(DIP_LOG_ERR, NULL,
                    "claimed an import this supervisor already runs; "
                    "leaving it to its lease");
            bson_destroy(&doc);
            return;
        }
        for (size_t i = 0; i < self->cap; i++)
            if (self->workers[i].state == W_FREE) {
                w = &self->workers[i];
                break;
            }
        memset(w, 0, sizeof(*w));
        w->doc = bson_copy(&doc);
        bson_destroy(&doc);
        dip_bson_get_oid(w->doc, "_id", &w->qid);
        bson_oid_to_string(&w->qid, w->qid_hex);
        if (dip_bson_get_oid(w->doc, "account_id", &w->account) != 0)
            bson_oid_init_from_data(&w->account,
                                    (const uint8_t *)"\0\0\0\0\0\0\0\0\0\0\0");
        snprintf(w->name, sizeof(w->name), "deals_import_queue_%s", w->qid_hex);
        note_served(self, &w->account);
        w->lines = dip_bson_get_int(w->doc, "checkpoint.line", 0);
        /* Where a resumed import stood, so the metrics count only what
         * this supervisor's workers add. */
        w->added = dip_bson_get_int(w->doc, "progress.added", 0);
        w->nerrors = dip_bson_get_int(w->doc, "progress.errors", 0);
        w->bytes = dip_bson_get_int(w->doc, "progress.bytes", 0);
        w->claimed_ms = self->now;
        w->claimed_lines = w->lines;
        w->not_stored =
            dip_bson_get_int(w->doc, "checkpoint.errors_not_stored", 0);
        w->epoch = sup_store_epoch(w->doc);
        w->lease = SUP_LEASE_HELD;
        w->lease_end_ms = sent + lease_ms(self);
        w->kill_at_ms = INT64_MAX;
        w->state = W_WAITING;
        if (sup_renew_hold(self->renew, &w->qid, w->epoch) < 0)
            w->lease = SUP_LEASE_LAPSING; /* never renewed: let it go */
        dip_log(DIP_LOG_INFO, w->qid_hex, "claimed import (file '%s')",
                dip_bson_get_str(w->doc, "csv.0.key")
                    ? dip_bson_get_str(w->doc, "csv.0.key")
                    : "");
        if (start_worker(self, w) < 0) {
            release_import(self, w, "pending", NULL);
            self->next_claim_ms = self->now + 30000;
            return;
        }
    }
}

/* What the lease keeper learnt: renewals extend each lease's end by our
 * clock; a claim found gone stops its worker at once (SIGKILL: nothing more
 * of it may reach the database) and frees the slot without a write. */
static void read_renewals(sup_loop_t *self)
{
    for (size_t i = 0; i < self->cap; i++) {
        worker_t *w = &self->workers[i];
        int64_t until = 0;
        int lost = 0;
        if (w->state == W_FREE || w->lease != SUP_LEASE_HELD ||
            sup_renew_state(self->renew, &w->qid, w->epoch, &until, &lost) < 0)
            continue;
        if (until > w->lease_end_ms)
            w->lease_end_ms = until;
        if (!lost)
            continue;
        dip_log(DIP_LOG_ERR, w->qid_hex,
                "the claim on the import is gone (another supervisor took it "
                "over): stopping its worker, writing nothing more");
        w->lease = SUP_LEASE_LOST;
        if (w->state == W_RUNNING)
            kill_worker(w, SIGKILL);
        else if (w->state == W_WAITING)
            drop_import(self, w);
    }
}

/* The leases by our own clock: a lease we could not renew in time has its
 * workers told to stop (they checkpoint if they can) stop_margin before it
 * runs out, and killed kill_margin before; an import with no worker is
 * dropped at once. Runs before anything else in each turn of the loop, and
 * makes no database call. */
static void watch_leases(sup_loop_t *self)
{
    int64_t margin = stop_margin(self);
    read_renewals(self);
    for (size_t i = 0; i < self->cap; i++) {
        worker_t *w = &self->workers[i];
        /* An end being written (finish or hand-back) needs no lease: its
         * writes are fenced, so they land only while no one else has
         * claimed the import, and then they are right. Given up, a final
         * status applied but not acknowledged would lose its csv_imports. */
        if (w->state == W_FREE || w->final_written ||
            (w->state == W_WAITING && w->respawn_at_ms == INT64_MAX))
            continue;
        if (w->lease == SUP_LEASE_HELD &&
            self->now >= w->lease_end_ms - margin) {
            dip_log(DIP_LOG_WARNING, w->qid_hex,
                    "the lease could not be renewed and ends in %lld ms: "
                    "stopping the import here",
                    (long long)(w->lease_end_ms - self->now));
            w->lease = SUP_LEASE_LAPSING;
            w->kill_at_ms = w->lease_end_ms - kill_margin(self);
            if (w->state == W_RUNNING) {
                if (send_control(self, w, DIP_CONTROL_STOP) < 0)
                    kill_worker(w, SIGTERM);
            } else if (w->state == W_EXITED) {
                on_exit_status(self, w, w->exit_status);
                continue;
            } else {
                drop_import(self, w);
                continue;
            }
        }
        if (w->lease != SUP_LEASE_HELD && w->state == W_RUNNING &&
            self->now >= w->kill_at_ms) {
            dip_log(DIP_LOG_WARNING, w->qid_hex,
                    "worker pid=%d did not stop before the lease ends: "
                    "killing it",
                    (int)w->pid);
            kill_worker(w, SIGKILL);
            w->kill_at_ms = INT64_MAX;
        }
    }
}

static void tick(sup_loop_t *self)
{
    /* Workers beat every quarter lease, from their hello on. */
    int64_t silence_ms = self->cfg.lease_s * 1000 > HEARTBEAT_TIMEOUT_MS
                             ? self->cfg.lease_s * 1000
                             : HEARTBEAT_TIMEOUT_MS;
    for (size_t i = 0; i < self->cap; i++) {
        worker_t *w = &self->workers[i];
        if (w->state == W_FREE)
            continue;
        if (w->state == W_RUNNING && pending(w) &&
            self->now - w->last_flush_ms >= FLUSH_MS)
            flush_worker(self, w);
        /* The supervisor's sign of life, a quarter lease apart. */
        if (w->state == W_RUNNING && w->hello_ok &&
            self->now - w->last_ack_ms >= self->cfg.lease_s * 1000 / 4)
            send_ack(self, w);
        if (w->state == W_EXITED && self->now - w->exit_ms >= EXIT_GRACE_MS) {
            on_exit_status(self, w, w->exit_status);
            continue;
        }
        if (w->state == W_WAITING && self->now >= w->respawn_at_ms) {
            if (w->respawn_at_ms == INT64_MAX) {
                /* a final write that failed: try it again */
                continue;
            }
            if (self->stopping)
                release_import(self, w, "pending", NULL);
            else if (start_worker(self, w) < 0)
                release_import(self, w, "pending", NULL);
            continue;
        }
        if (w->state == W_RUNNING && !self->stopping) {
            if (self->now - w->last_heard_ms > silence_ms) {
                dip_log(DIP_LOG_ERR, w->qid_hex,
                        "worker pid=%d silent for %lld s: killing it",
                        (int)w->pid, (long long)silence_ms / 1000);
                kill_worker(w, SIGKILL);
                w->killed_for = SUP_METRICS_EXIT_SILENT;
                w->last_heard_ms = self->now; /* once */
            } else if (self->now - w->started_ms >
                       self->cfg.worker_timeout_s * 1000) {
                dip_log(DIP_LOG_ERR, w->qid_hex,
                        "worker pid=%d ran past its %ld s limit: killing it",
                        (int)w->pid, self->cfg.worker_timeout_s);
                kill_worker(w, SIGKILL);
                w->killed_for = SUP_METRICS_EXIT_TIMEOUT;
                w->started_ms = self->now;
            }
        }
    }
    /* Operators' requests recorded for us, at the pace of renewals (the
     * renewals themselves are sup_renew's). */
    if (!self->stopping && self->now >= self->next_renew_ms && db_ok(self)) {
        sup_ctl_renewal(self->ctl);
        self->next_renew_ms = self->now + renew_every(self);
    }
    if (!self->stopping && self->now >= self->next_claim_ms) {
        /* Each call only while the database answers: after a failed one
         * the next waits (db_ok), so a frozen database delays a signal by
         * one call at most. */
        claim(self);
        if (db_ok(self) && sup_ctl_sample_queue(self->ctl) < 0)
            db_failed(self);
        if (db_ok(self) && sup_followups_tick(self->followups, self->now) < 0)
            db_failed(self);
        if (db_ok(self)) {
            char rerr[512];
            if (sup_store_repair_log(self->store, rerr, sizeof(rerr)) < 0) {
                dip_log(DIP_LOG_WARNING, NULL, "%s", rerr);
                db_failed(self);
            }
        }
        self->next_claim_ms = self->now + self->cfg.poll_ms;
    }
    if (self->now >= self->next_status_ms) {
        sup_notify_status(self->notify,
                          "%zu of %zu workers busy; %ld imports finished "
                          "(%ld failed)",
                          busy(self), self->cap, self->finished, self->failed);
        self->next_status_ms = self->now + 5000;
    }
    if (self->watchdog_usec && self->now >= self->next_watchdog_ms) {
        sup_notify_watchdog(self->notify);
        self->next_watchdog_ms =
            self->now + (int64_t)(self->watchdog_usec / 2000);
    }
}

static void begin_shutdown(sup_loop_t *self, int sig)
{
    if (self->stopping)
        return;
    self->stopping = 1;
    /* DEALIMPORT_STOP_TIMEOUT_S bounds it all, counted from the signal: a
     * database call in flight when it came may have delayed us by up to
     * call_ms (the driver's timeouts derive from the stop timeout when it
     * is shorter than the lease, sup_store_budget_ms). Workers get a
     * quarter of it to checkpoint and stop, the hand-backs what is left. */
    {
        int64_t stop = self->cfg.stop_timeout_s * 1000;
        self->give_up_ms = self->now + stop - self->call_ms;
        if (self->give_up_ms < self->now + stop / 2)
            self->give_up_ms = self->now + stop / 2;
        self->shutdown_deadline_ms =
            self->now +
            (stop / 4 < SHUTDOWN_GRACE_MS ? stop / 4 : SHUTDOWN_GRACE_MS);
    }
    sup_notify_stopping(self->notify);
    dip_log(DIP_LOG_NOTICE, NULL,
            "signal %d: stopping; asking %zu workers to checkpoint and stop",
            sig, busy(self));
    for (size_t i = 0; i < self->cap; i++) {
        worker_t *w = &self->workers[i];
        if (w->state == W_RUNNING && send_control(self, w, DIP_CONTROL_STOP))
            kill_worker(w, SIGTERM);
        else if (w->state == W_WAITING && w->respawn_at_ms != INT64_MAX)
            release_import(self, w, "pending", NULL);
    }
}

static void reload(sup_loop_t *self)
{
    dip_config_t cfg;
    char err[512];
    dip_config_init(&cfg);
    if (dip_config_load(&cfg, self->config_file, 0, err, sizeof(err)) < 0) {
        dip_log(DIP_LOG_ERR, NULL, "SIGHUP: configuration not reloaded: %s",
                err);
    } else {
        /* Tunables take effect now; addresses and paths need a restart. */
        self->cfg.poll_ms = cfg.poll_ms;
        self->cfg.max_workers_per_account = cfg.max_workers_per_account;
        self->cfg.worker_memory_mb = cfg.worker_memory_mb;
        self->cfg.worker_cpu_s = cfg.worker_cpu_s;
        self->cfg.worker_timeout_s = cfg.worker_timeout_s;
        self->cfg.log_level = cfg.log_level;
        dip_log_setup("dealimport-supervisor", cfg.log_level,
                      self->cfg.log_format &&
                          strcmp(self->cfg.log_format, "json") == 0);
        dip_log(DIP_LOG_NOTICE, NULL, "SIGHUP: configuration reloaded");
    }
    dip_config_release(&cfg);
}

static void on_signals(sup_loop_t *self)
{
    struct signalfd_siginfo si;
    while (read(self->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        switch (si.ssi_signo) {
        case SIGCHLD:
            break; /* reaped below, all at once */
        case SIGTERM:
        case SIGINT:
            begin_shutdown(self, (int)si.ssi_signo);
            break;
        case SIGHUP:
            reload(self);
            break;
        }
    }
    reap(self);
}

int sup_loop_run(sup_loop_t *self)
{
    char err[512];
    self->now = now_ms();
    if (sup_store_ensure_indexes(self->store, err, sizeof(err)) < 0)
        dip_log(DIP_LOG_WARNING, NULL, "%s (continuing)", err);
    if (sup_notify_watchdog_usec(self->notify, &self->watchdog_usec) <= 0)
        self->watchdog_usec = 0;
    sup_notify_ready(self->notify);
    dip_log(DIP_LOG_NOTICE, NULL,
            "serving: owner=%s workers=%zu per_account=%ld poll_ms=%ld "
            "events=%s control=%s metrics_port=%d",
            self->owner, self->cap, self->cfg.max_workers_per_account,
            self->cfg.poll_ms, self->endpoint, sup_ctl_endpoint(self->ctl),
            sup_metrics_port(self->metrics));

    while (!self->stopping || busy(self) > 0) {
        zmq_pollitem_t items[2 + SUP_CTL_POLL_MAX + CRM_POLL_MAX] = {
            {self->events, 0, ZMQ_POLLIN, 0},
            {NULL, self->sigfd, ZMQ_POLLIN, 0}};
        int nctl = sup_ctl_poll_items(self->ctl, items + 2, SUP_CTL_POLL_MAX);
        long timeout = 200;
        /* Deliveries wait while the database is away (their outcomes are
         * written there): their sockets are not polled meanwhile. */
        int crm_on = self->crm && !self->stopping && db_ok(self);
        size_t ncrm = crm_on ? sup_event_pollitems(self->crm, items + 2 + nctl,
                                                   CRM_POLL_MAX, &timeout)
                             : 0;
        self->now = now_ms();
        if (self->stopping && self->now >= self->shutdown_deadline_ms) {
            for (size_t i = 0; i < self->cap; i++)
                if (self->workers[i].state == W_RUNNING) {
                    dip_log(DIP_LOG_WARNING, self->workers[i].qid_hex,
                            "worker did not stop in time: killing it");
                    kill_worker(&self->workers[i], SIGKILL);
                }
            self->shutdown_deadline_ms = INT64_MAX;
        }
        if (self->stopping && self->now >= self->give_up_ms) {
            dip_log(DIP_LOG_ERR, NULL,
                    "stop timeout (%ld s) reached: giving up on %zu imports "
                    "whose hand-back could not be written; their leases "
                    "expire and they are resumed",
                    self->cfg.stop_timeout_s, busy(self));
            for (size_t i = 0; i < self->cap; i++)
                if (self->workers[i].state == W_RUNNING)
                    kill_worker(&self->workers[i], SIGKILL);
            break;
        }
        if (zmq_poll(items, 2 + nctl + (int)ncrm, timeout) < 0 &&
            zmq_errno() != EINTR) {
            dip_log(DIP_LOG_ERR, NULL, "zmq_poll: %s",
                    zmq_strerror(zmq_errno()));
            sleep(1);
        }
        self->now = now_ms();
        watch_leases(self);
        if (items[0].revents & ZMQ_POLLIN)
            drain_events(self);
        if (items[1].revents & ZMQ_POLLIN)
            on_signals(self);
        sup_ctl_serve(self->ctl, items + 2, nctl);
        /* Deliveries move on whether or not their sockets woke us. */
        if (crm_on && sup_event_run(self->crm, dip_bson_now_ms()) < 0)
            db_failed(self);
        tick(self);
        /* Final writes that failed earlier (database away) are retried
         * here until they land. */
        for (size_t i = 0; i < self->cap; i++) {
            worker_t *w = &self->workers[i];
            if (w->state == W_WAITING && w->respawn_at_ms == INT64_MAX &&
                self->now - w->last_flush_ms >= 5000 && db_ok(self)) {
                w->last_flush_ms = self->now;
                if (w->final_release)
                    release_import(self, w, w->final_status, w->final_error);
                else
                    finish_import(self, w, w->final_status, w->final_error);
            }
        }
    }
    if (busy(self) == 0)
        dip_log(DIP_LOG_NOTICE, NULL, "stopped: all imports handed back");
    return 0;
}
