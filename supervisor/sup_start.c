/*
 * sup_start: starts a worker process for a slot whose claim is held. The
 * spawn options (limits, cgroup, environment), the per-spawn secret handed
 * over through a pipe, and the guard that never lets two workers run one
 * import. The process itself is sup_spawn's; what its messages and its
 * exit mean is sup_inbox's and sup_end's.
 */
#include "sup_loop_priv.h"
#include "dip_log.h"
#include "dip_secrets.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

void sup_start_opts(const sup_loop_t *self, sup_spawn_opts_t *o, char **argv,
                    int cgroup_fd)
{
    memset(o, 0, sizeof(*o));
    o->secrets_fd = -1;
    o->doc_fd = -1;
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
    o->nofile = SUP_SPAWN_NOFILE_DEFAULT;
    o->cgroup_fd = cgroup_fd;
}

/* Never two workers of one import: not beside another slot's, and not
 * for a claim that is not (or no longer surely) ours. */
sup_start_guard_t sup_start_guard(const sup_loop_t *self, const sup_slot_t *w,
                                  pid_t *other)
{
    for (size_t i = 0; i < self->cap; i++) {
        const sup_slot_t *x = &self->workers[i];
        if (x != w &&
            (x->state == SUP_SLOT_RUNNING || x->state == SUP_SLOT_EXITED) &&
            bson_oid_equal(&x->qid, &w->qid)) {
            *other = x->pid;
            return SUP_START_TWICE;
        }
    }
    return w->lease == SUP_LEASE_HELD ? SUP_START_OK : SUP_START_UNHELD;
}

/* A file holding the claim's answer for the worker to read instead of
 * the database (a memfd: no size a pipe could block on, nothing on disk);
 * its descriptor, or -1 (the worker then reads the document). */
static int handoff_fd(const sup_slot_t *w)
{
    const uint8_t *data = bson_get_data(w->doc);
    size_t len = w->doc->len, done = 0;
    int fd = memfd_create("dealimport-queue-doc", MFD_CLOEXEC);
    if (fd < 0)
        return -1;
    while (done < len) {
        ssize_t n = write(fd, data + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            close(fd);
            return -1;
        }
        done += (size_t)n;
    }
    return fd;
}

int sup_start_worker(sup_loop_t *self, sup_slot_t *w)
{
    char opt_id[] = "--queue-id", opt_events[] = "--events";
    char opt_owner[] = "--owner", opt_epoch[] = "--epoch", epoch[24];
    char opt_secrets[] = "--secrets-fd", secrets_fd[16];
    char opt_doc[] = "--queue-doc-fd", doc_fd[16];
    char opt_at[] = "--claimed-at", claimed_at[24];
    char *argv[] = {self->worker_path,
                    opt_id,
                    w->qid_hex,
                    opt_events,
                    self->endpoint,
                    opt_owner,
                    self->owner,
                    opt_epoch,
                    epoch,
                    opt_secrets,
                    secrets_fd,
                    opt_doc,
                    doc_fd,
                    opt_at,
                    claimed_at,
                    NULL};
    sup_spawn_opts_t o;
    char err[512];
    int cgfd = -1, sfd, dfd = -1;
    pid_t pid;

    switch (sup_start_guard(self, w, &pid)) {
    case SUP_START_OK:
        break;
    case SUP_START_TWICE:
        dip_log(DIP_LOG_ERR, w->qid_hex,
                "not starting a worker: pid=%d still runs the import",
                (int)pid);
        return -1;
    case SUP_START_UNHELD:
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
                              SUP_LOOP_CGROUP_CPU_PERCENT,
                              SUP_LOOP_CGROUP_PIDS_MAX, &cgfd, err,
                              sizeof(err)) < 0) {
            dip_log(DIP_LOG_WARNING, w->qid_hex,
                    "cannot create the worker's cgroup, using rlimits only: %s",
                    err);
            cgfd = -1;
        } else {
            w->has_cgroup = 1;
        }
    }
    /* The first run after the claim: the claim's answer, handed over. */
    if (w->doc_fresh)
        dfd = handoff_fd(w);
    w->doc_fresh = 0;
    if (dfd >= 0) {
        snprintf(doc_fd, sizeof(doc_fd), "%d", SUP_SPAWN_DOC_FD);
        snprintf(claimed_at, sizeof(claimed_at), "%lld",
                 (long long)w->claim_sent_ms);
    } else {
        argv[11] = NULL;
    }
    sup_start_opts(self, &o, argv, cgfd);
    o.secrets_fd = sfd;
    o.doc_fd = dfd;
    pid = sup_spawn_start(&o, err, sizeof(err));
    close(sfd);
    if (dfd >= 0)
        close(dfd);
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
        sup_slot_reset_run(w);
        memcpy(w->spawn_secret, keep, sizeof(keep));
        memset(keep, 0, sizeof(keep));
    }
    w->state = SUP_SLOT_RUNNING;
    w->pid = pid;
    w->run_start_lines = w->lines;
    w->started_ms = w->last_heard_ms = self->now;
    w->last_flush_ms = self->now;
    sup_metrics_worker_started(self->metrics, &w->account);
    dip_log_fields(DIP_LOG_INFO, w->qid_hex,
                   DIP_LOG_FIELDS(DIP_LOG_NUM("worker_pid", pid)),
                   "worker started: pid=%d namespace=%s", (int)pid, w->name);
    return 0;
}
