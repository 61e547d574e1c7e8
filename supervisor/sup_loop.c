/*
 * sup_loop: the supervisor's core. It wires the rooms together (see
 * sup_loop_priv.h), polls the worker-events socket, the control socket, a
 * signalfd and the completion events' sockets in one thread, and drives the
 * timers: claiming, the operators' requests, per-worker flushes, acks,
 * silence and time limits, restarts, status and the watchdog. It handles
 * SIGHUP (reload) and SIGTERM/SIGINT (shutdown, after handing running
 * imports back). Nothing a worker sends or does can stop this loop.
 */
#include "sup_loop_priv.h"
#include "dip_bson.h"
#include "dip_log.h"
#include "dip_mongo_io.h"
#include "dip_time.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <zmq.h>

static void ctl_view(void *ctx, sup_ctl_view_t *view);
static int ctl_control(void *ctx, const char *id, dip_control_action_t action);

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
    if (self->window < SUP_LOOP_MIN_WINDOW_BYTES)
        self->window = SUP_LOOP_MIN_WINDOW_BYTES;
    self->workers = calloc(self->cap, sizeof(sup_slot_t));
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

    if (sup_spawn_runtime_dir(cfg->runtime_dir, err, errlen) < 0)
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
    /* One client for everything on this thread (see sup_loop_priv.h for
     * the connections a supervisor opens); the lease keeper opens its
     * own. */
    self->client = dip_mongo_client_new_bounded(
        cfg->mongodb_uri, "dealimport-supervisor", sup_store_budget_ms(cfg),
        &self->db, err, errlen);
    if (self->client == NULL)
        goto fail;
    self->store =
        sup_store_new(cfg, self->owner, self->client, self->db, err, errlen);
    if (self->store == NULL)
        goto fail;
    self->call_ms = sup_store_call_ms(self->store);
    {
        /* Pickup on change; without it the poll does it all, as before. */
        char werr[512];
        /* The await stays well inside the watcher's socket timeout (a
         * quarter of the budget): a getMore that outwaits its socket is a
         * network error every time. */
        long budget = sup_store_budget_ms(cfg), wait_ms = budget / 8;
        if (wait_ms > SUP_LOOP_WATCH_AWAIT_MS)
            wait_ms = SUP_LOOP_WATCH_AWAIT_MS;
        if (wait_ms < 100)
            wait_ms = 100;
        self->watch = sup_watch_new(cfg, budget, wait_ms, werr, sizeof(werr));
        if (self->watch == NULL)
            dip_log(DIP_LOG_WARNING, NULL,
                    "no change stream (%s): picking up by polling alone", werr);
    }
    self->metrics = sup_metrics_new();
    if (self->metrics == NULL)
        goto fail;
    self->renew = sup_renew_new(cfg, self->owner, self->metrics, err, errlen);
    if (self->renew == NULL)
        goto fail;
    self->envp = sup_spawn_envp_new(cfg);
    if (self->envp == NULL)
        goto fail;
    self->followups = sup_followups_new(cfg, self->owner, self_exe, self->envp,
                                        self->client, self->db, err, errlen);
    if (self->followups == NULL)
        goto fail;
    if (cfg->notify_url && *cfg->notify_url) {
        char ierr[512];
        self->crm = sup_event_new(cfg, self->client, self->db, self->owner, err,
                                  errlen);
        if (self->crm == NULL)
            goto fail;
        sup_event_set_metrics(self->crm, self->metrics);
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
    if (sup_metrics_start(self->metrics, cfg, err, errlen) < 0)
        goto fail;
    {
        sup_ctl_host_t hooks = {self, ctl_view, ctl_control, self->metrics};
        self->started_wall_ms = dip_bson_now_ms();
        self->ctl = sup_ctl_new(self->zctx, cfg, self->owner, self->store,
                                self->client, self->db, &hooks, err, errlen);
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
    /* first: its thread may be waiting on the server, for up to its await */
    sup_watch_destroy(&self->watch);
    sup_renew_destroy(&self->renew);
    sup_event_destroy(&self->crm);
    sup_followups_destroy(&self->followups);
    for (size_t i = 0; self->workers && i < self->cap; i++)
        sup_slot_clear(self, &self->workers[i]);
    free(self->workers);
    for (size_t i = 0; i < self->naside; i++)
        bson_value_destroy(&self->aside[i].id);
    if (self->events)
        zmq_close(self->events);
    sup_ctl_destroy(&self->ctl);
    sup_metrics_destroy(&self->metrics);
    if (self->zctx)
        zmq_ctx_term(self->zctx);
    sup_store_destroy(&self->store);
    /* after every borrower of it */
    if (self->client)
        dip_mongo_client_close(self->client);
    sup_notify_destroy(&self->notify);
    sup_cgroup_destroy(&self->cgroup);
    sup_spawn_envp_free(self->envp);
    if (self->sigfd >= 0)
        close(self->sigfd);
    if (self->lockfd >= 0)
        close(self->lockfd);
    free(self);
    *self_p = NULL;
}

/* ---- control plane hooks (sup_ctl) ----------------------------------- */

static void ctl_view(void *ctx, sup_ctl_view_t *v)
{
    sup_loop_t *self = ctx;
    int64_t wall = dip_bson_now_ms(), mono = dip_time_mono_ms();
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
        const sup_slot_t *w = &self->workers[i];
        sup_ctl_run_t *r = &v->runs[v->nruns];
        if (w->state == SUP_SLOT_FREE)
            continue;
        memset(r, 0, sizeof(*r));
        snprintf(r->id, sizeof(r->id), "%s", w->qid_hex);
        bson_oid_to_string(&w->account, r->account);
        r->running = w->state == SUP_SLOT_RUNNING;
        r->finishing = w->state == SUP_SLOT_ENDING;
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
    sup_slot_t *w = sup_slot_by_qid(self, id);
    if (w == NULL || self->stopping)
        return -1;
    if (w->state == SUP_SLOT_ENDING)
        return -1; /* finishing */
    if (w->state == SUP_SLOT_WAITING) {
        /* No process to tell: stop it here, from its last checkpoint. */
        if (action == DIP_CONTROL_PAUSE)
            sup_end_release(self, w, "paused", NULL);
        else
            sup_end_finish(self, w, "cancelled", NULL);
        return 1;
    }
    /* Never weaken a cancel into a pause. */
    if (w->requested != DIP_CONTROL_CANCEL)
        w->requested = action;
    /* The grace before SIGTERM runs from the first request. */
    if (w->control_sent_ms == 0)
        w->control_sent_ms = self->now > 0 ? self->now : 1;
    /* Before its hello the worker may not be connected yet: the hello
     * handler sends it again. */
    sup_inbox_send_control(self, w, w->requested);
    return 0;
}

/* Each slot's timers (sup_slot_timers), carried out. */
static void slot_timers(sup_loop_t *self)
{
    for (size_t i = 0; i < self->cap; i++) {
        sup_slot_t *w = &self->workers[i];
        sup_slot_timer_facts_t f = {
            .now_ms = self->now,
            .lease_ms = sup_lease_ms(self),
            .timeout_ms = self->cfg.worker_timeout_s * 1000,
            .running = w->state == SUP_SLOT_RUNNING,
            .exited = w->state == SUP_SLOT_EXITED,
            .waiting = w->state == SUP_SLOT_WAITING,
            .stopping = self->stopping,
            .pending = sup_slot_pending(w),
            .hello_ok = w->hello_ok,
            .last_flush_ms = w->last_flush_ms,
            .last_ack_ms = w->last_ack_ms,
            .exit_ms = w->exit_ms,
            .respawn_at_ms = w->respawn_at_ms,
            .last_heard_ms = w->last_heard_ms,
            .started_ms = w->started_ms,
            .control_sent_ms = w->control_sent_ms,
            .control_term_ms = w->control_term_ms,
        };
        sup_slot_timer_t v;
        if (w->state == SUP_SLOT_FREE)
            continue;
        sup_slot_timers(&f, &v);
        if (v.flush)
            sup_end_flush(self, w);
        if (v.ack)
            sup_inbox_send_ack(self, w);
        switch (v.kind) {
        case SUP_SLOT_TIMER_NONE:
            break;
        case SUP_SLOT_TIMER_END:
            sup_end_exited(self, w, w->exit_status);
            break;
        case SUP_SLOT_TIMER_START:
            if (sup_start_worker(self, w) < 0)
                sup_end_release(self, w, "pending", NULL);
            break;
        case SUP_SLOT_TIMER_RELEASE:
            sup_end_release(self, w, "pending", NULL);
            break;
        case SUP_SLOT_TIMER_KILL_SILENT:
            dip_log(DIP_LOG_ERR, w->qid_hex,
                    "worker pid=%d silent for %lld s: killing it", (int)w->pid,
                    (long long)v.silence_ms / 1000);
            sup_slot_kill(w, SIGKILL);
            w->killed_for = SUP_METRICS_EXIT_SILENT;
            w->last_heard_ms = self->now; /* once */
            break;
        case SUP_SLOT_TIMER_KILL_TIMEOUT:
            dip_log(DIP_LOG_ERR, w->qid_hex,
                    "worker pid=%d ran past its %ld s limit: killing it",
                    (int)w->pid, self->cfg.worker_timeout_s);
            sup_slot_kill(w, SIGKILL);
            w->killed_for = SUP_METRICS_EXIT_TIMEOUT;
            w->started_ms = self->now;
            break;
        case SUP_SLOT_TIMER_TERM_CONTROL:
            dip_log(DIP_LOG_WARNING, w->qid_hex,
                    "worker pid=%d did not stop within %d s of a %s: "
                    "sending it SIGTERM",
                    (int)w->pid, SUP_SLOT_CONTROL_TERM_MS / 1000,
                    dip_msg_control_action_name(w->requested));
            sup_slot_kill(w, SIGTERM);
            w->control_term_ms = self->now;
            break;
        case SUP_SLOT_TIMER_KILL_CONTROL:
            dip_log(DIP_LOG_ERR, w->qid_hex,
                    "worker pid=%d did not stop within %d s of SIGTERM: "
                    "killing it",
                    (int)w->pid, SUP_SLOT_CONTROL_KILL_MS / 1000);
            sup_slot_kill(w, SIGKILL);
            w->control_term_ms = INT64_MAX / 2; /* once */
            break;
        }
    }
}

/* The indexes every import relies on, made here once rather than by each
 * worker: until they stand nothing is claimed, and they are tried again at
 * the poll's pace (said once; a database that is away pauses it as any
 * call). */
static void ensure_deal_indexes(sup_loop_t *self)
{
    char err[512];
    if (sup_store_ensure_deal_indexes(self->store, err, sizeof(err)) < 0) {
        if (self->indexes_said == 0)
            dip_log(DIP_LOG_ERR, NULL,
                    "%s: no import is claimed until it stands (tried again "
                    "at every poll)",
                    err);
        self->indexes_said = 1;
        sup_lease_db_failed(self);
        return;
    }
    if (self->indexes_said)
        dip_log(DIP_LOG_NOTICE, NULL, "the deals' indexes stand: claiming");
    self->indexes_ok = 1;
}

static void tick(sup_loop_t *self)
{
    slot_timers(self);
    /* Operators' requests recorded for us, at the pace of renewals (the
     * renewals themselves are sup_renew's). */
    if (!self->stopping && self->now >= self->next_renew_ms &&
        sup_lease_db_ok(self)) {
        sup_ctl_renewal(self->ctl);
        self->next_renew_ms = self->now + sup_lease_renew_every(self);
    }
    if (!self->stopping && self->now >= self->next_claim_ms) {
        if (!self->indexes_ok && sup_lease_db_ok(self))
            ensure_deal_indexes(self);
        /* Each call only while the database answers: after a failed one
         * the next waits (db_ok), so a frozen database delays a signal by
         * one call at most. The poll's claim looks at the queue anew:
         * what other supervisors changed is seen at its pace. */
        sup_store_claim_forget(self->store);
        sup_claim_run(self);
        /* The steps below back off on their own after a failure
         * (sup_retry): a failing one is not asked again at every poll, and
         * a run of failures is reported once. */
        if (sup_lease_db_ok(self) &&
            sup_retry_due(&self->repair_retry, self->now)) {
            char rerr[512];
            if (sup_store_repair_log(self->store, rerr, sizeof(rerr)) < 0) {
                dip_log(DIP_LOG_WARNING, NULL, "%s", rerr);
                sup_lease_db_failed(self);
                sup_lease_step_failed(self, &self->repair_retry, NULL,
                                      "repairing import logs", rerr);
            } else {
                sup_retry_ok(&self->repair_retry);
            }
        }
        self->next_claim_ms = self->now + self->cfg.poll_ms;
    }
    if (self->now >= self->next_status_ms) {
        sup_notify_status(self->notify,
                          "%zu of %zu workers busy; %ld imports finished "
                          "(%ld failed)",
                          sup_slot_busy(self), self->cap, self->finished,
                          self->failed);
        self->next_status_ms = self->now + SUP_LOOP_STATUS_MS;
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
            self->now + (stop / 4 < SUP_LOOP_SHUTDOWN_GRACE_MS
                             ? stop / 4
                             : SUP_LOOP_SHUTDOWN_GRACE_MS);
    }
    sup_notify_stopping(self->notify);
    dip_log(DIP_LOG_NOTICE, NULL,
            "signal %d: stopping; asking %zu workers to checkpoint and stop",
            sig, sup_slot_busy(self));
    for (size_t i = 0; i < self->cap; i++) {
        sup_slot_t *w = &self->workers[i];
        if (w->state == SUP_SLOT_RUNNING &&
            sup_inbox_send_control(self, w, DIP_CONTROL_STOP))
            sup_slot_kill(w, SIGTERM);
        else if (w->state == SUP_SLOT_WAITING)
            sup_end_release(self, w, "pending", NULL);
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
        sup_metrics_set_limits(self->metrics, &self->cfg);
        dip_log_setup("dealimport-supervisor", cfg.log_level,
                      self->cfg.log_format &&
                          strcmp(self->cfg.log_format, "json") == 0);
        dip_log(DIP_LOG_NOTICE, NULL, "SIGHUP: configuration reloaded");
        sup_ctl_reload_keys(self->ctl);
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
    sup_end_reap(self);
}

int sup_loop_run(sup_loop_t *self)
{
    char err[512];
    self->now = dip_time_mono_ms();
    if (sup_store_ensure_indexes(self->store, err, sizeof(err)) < 0)
        dip_log(DIP_LOG_WARNING, NULL, "%s (continuing)", err);
    ensure_deal_indexes(self);
    /* After the indexes: the sampler's counts run on one of them. */
    if (sup_metrics_start_sampler(self->metrics, &self->cfg, err, sizeof(err)) <
        0) {
        dip_log(DIP_LOG_ERR, NULL, "cannot start: %s", err);
        return -1;
    }
    if (sup_notify_watchdog_usec(self->notify, &self->watchdog_usec) <= 0)
        self->watchdog_usec = 0;
    sup_notify_ready(self->notify);
    dip_log(DIP_LOG_NOTICE, NULL,
            "serving: owner=%s workers=%zu per_account=%ld poll_ms=%ld "
            "events=%s control=%s metrics_port=%d",
            self->owner, self->cap, self->cfg.max_workers_per_account,
            self->cfg.poll_ms, self->endpoint, sup_ctl_endpoint(self->ctl),
            sup_metrics_port(self->metrics));

    while (!self->stopping || sup_slot_busy(self) > 0) {
        zmq_pollitem_t items[3 + SUP_CTL_POLL_MAX + SUP_LOOP_CRM_POLL_MAX] = {
            {self->events, 0, ZMQ_POLLIN, 0},
            {NULL, self->sigfd, ZMQ_POLLIN, 0}};
        /* the change stream's wakes, when there is a stream */
        int nfix = self->watch ? 3 : 2;
        int nctl;
        long timeout = SUP_LOOP_POLL_MS;
        int woken;
        if (self->watch) {
            items[2].fd = sup_watch_fd(self->watch);
            items[2].events = ZMQ_POLLIN;
        }
        nctl = sup_ctl_poll_items(self->ctl, items + nfix, SUP_CTL_POLL_MAX);
        /* Deliveries wait while the database is away (their outcomes are
         * written there): their sockets are not polled meanwhile. */
        int crm_on = self->crm && !self->stopping && sup_lease_db_ok(self);
        size_t ncrm = crm_on
                          ? sup_event_pollitems(self->crm, items + nfix + nctl,
                                                SUP_LOOP_CRM_POLL_MAX, &timeout)
                          : 0;
        self->now = dip_time_mono_ms();
        if (self->stopping && self->now >= self->shutdown_deadline_ms) {
            for (size_t i = 0; i < self->cap; i++)
                if (self->workers[i].state == SUP_SLOT_RUNNING) {
                    dip_log(DIP_LOG_WARNING, self->workers[i].qid_hex,
                            "worker did not stop in time: killing it");
                    sup_slot_kill(&self->workers[i], SIGKILL);
                }
            self->shutdown_deadline_ms = INT64_MAX;
        }
        if (self->stopping && self->now >= self->give_up_ms) {
            dip_log(DIP_LOG_ERR, NULL,
                    "stop timeout (%ld s) reached: giving up on %zu imports "
                    "whose hand-back could not be written; their leases "
                    "expire and they are resumed",
                    self->cfg.stop_timeout_s, sup_slot_busy(self));
            for (size_t i = 0; i < self->cap; i++)
                if (self->workers[i].state == SUP_SLOT_RUNNING)
                    sup_slot_kill(&self->workers[i], SIGKILL);
            break;
        }
        if (zmq_poll(items, nfix + nctl + (int)ncrm, timeout) < 0 &&
            zmq_errno() != EINTR) {
            dip_log(DIP_LOG_ERR, NULL, "zmq_poll: %s",
                    zmq_strerror(zmq_errno()));
            sleep(1);
        }
        self->now = dip_time_mono_ms();
        sup_lease_watch(self);
        if (items[0].revents & ZMQ_POLLIN)
            sup_inbox_drain(self);
        if (items[1].revents & ZMQ_POLLIN)
            on_signals(self);
        /* A change made an import claimable, or a slot freed while the
         * last round left imports behind: the claim alone, now (the rest
         * of the claim timer's round stays at the poll's pace). */
        woken = self->watch && (items[2].revents & ZMQ_POLLIN) &&
                sup_watch_take(self->watch) > 0;
        if (!self->stopping && (woken || self->claim_due)) {
            /* A change: the claim looks at the queue anew. A slot freed
             * claims from the look kept (sup_store_claim_forget). */
            if (woken)
                sup_store_claim_forget(self->store);
            self->claim_due = 0;
            sup_claim_run(self);
        }
        sup_ctl_serve(self->ctl, items + nfix, nctl);
        /* Follow-ups at the poll's pace, or at once when an end has some
         * (sup_followups_poke) or a child ended. */
        if (!self->stopping && sup_lease_db_ok(self) &&
            sup_retry_due(&self->followup_retry, self->now)) {
            if (sup_followups_tick(self->followups, self->now) < 0) {
                sup_lease_db_failed(self);
                sup_lease_step_failed(self, &self->followup_retry, NULL,
                                      "claiming follow-ups",
                                      "the database did not answer");
            } else {
                sup_retry_ok(&self->followup_retry);
            }
        }
        /* Deliveries move on whether or not their sockets woke us. */
        if (crm_on && sup_event_run(self->crm, dip_bson_now_ms()) < 0)
            sup_lease_db_failed(self);
        tick(self);
        sup_metrics_loop_turn(self->metrics, self->now);
        /* Final writes that failed earlier (database away) are retried
         * here until they land. */
        sup_end_retry(self);
    }
    if (sup_slot_busy(self) == 0)
        dip_log(DIP_LOG_NOTICE, NULL, "stopped: all imports handed back");
    return 0;
}
