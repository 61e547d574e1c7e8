/*
 * sup_ctl: the control sockets and the commands behind them. Requests are
 * read without blocking, a bounded number per wake-up; every frame that can
 * be answered is answered (bad ones with a bad_request error), and a reply
 * the client is no longer there to take is dropped rather than queued.
 * pause and cancel of an import this supervisor runs go to its worker; of
 * an import no worker runs they change the queue document in one
 * findAndModify on its status; of an import another supervisor runs they are
 * recorded on the document for that supervisor's next lease renewal.
 */
#include "sup_ctl.h"
#include "dip_bson.h"
#include "dip_ctl.h"
#include "dip_curve_io.h"
#include "dip_log.h"
#include "sup_admin.h"

#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define ZAP_DOMAIN "dealimport-control"
/* A frame above this closes the sender's connection inside ZeroMQ (no
 * reply is possible); frames up to it are read and refused by size. */
#define MAX_FRAME_BYTES (1024 * 1024)
#define MAX_FRAMES 8
#define REQUESTS_PER_WAKE 64
#define LOG_EVERY_MS 10000
#define ACTION_ATTEMPTS 5
#define RECORDED_PER_RENEWAL 64

typedef struct throttle {
    int64_t next_ms;
    long skipped;
} throttle_t;

struct sup_ctl {
    void *ipc, *tcp, *zap;
    char endpoint[PATH_MAX + 8];
    char clients_dir[PATH_MAX];
    char owner[300];
    long lease_s;
    sup_admin_t *admin;
    sup_store_t *store;
    sup_ctl_host_t host;
    sup_ctl_view_t view;
    throttle_t bad_log, zap_log;
    int64_t sample_after_ms; /* sup_ctl_sample_queue backs off after errors */
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* 1 when a line may be logged now; *skipped says how many were not since
 * the last one. */
static int throttle_ok(throttle_t *t, long *skipped)
{
    int64_t now = mono_ms();
    if (now < t->next_ms) {
        t->skipped++;
        return 0;
    }
    *skipped = t->skipped;
    t->skipped = 0;
    t->next_ms = now + LOG_EVERY_MS;
    return 1;
}

/* " (N more since the last such line)" when lines were held back. */
static const char *since(long skipped, char *buf, size_t len)
{
    if (skipped <= 0)
        return "";
    snprintf(buf, len, " (%ld more since the last such line)", skipped);
    return buf;
}

/* ---- setup ---------------------------------------------------------- */

static void *router(void *zctx)
{
    void *s = zmq_socket(zctx, ZMQ_ROUTER);
    int one = 1, zero = 0, hwm = 1000;
    int64_t max = MAX_FRAME_BYTES;
    if (s == NULL)
        return NULL;
    /* A reply to a client that left fails at once instead of queueing. */
    if (zmq_setsockopt(s, ZMQ_ROUTER_MANDATORY, &one, sizeof(one)) ||
        zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero)) ||
        zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &max, sizeof(max)) ||
        zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof(hwm)) ||
        zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof(hwm)) ||
        zmq_setsockopt(s, ZMQ_SNDTIMEO, &zero, sizeof(zero))) {
        zmq_close(s);
        return NULL;
    }
    return s;
}

/* DEALIMPORT_CONTROL_GROUP: the runtime folder (0750) and the control
 * socket (0660) go to the operators' group, so its members reach the
 * socket without becoming the service's user; the events socket and the
 * lock stay the user's own (0600). The supervisor must be a member. */
static int share_with_group(const char *dir, const char *path,
                            const char *group, char *err, size_t errlen)
{
    struct group gr, *found = NULL;
    char buf[4096];
    int e = getgrnam_r(group, &gr, buf, sizeof(buf), &found);
    if (found == NULL) {
        snprintf(err, errlen, "DEALIMPORT_CONTROL_GROUP: no group '%s'%s%s",
                 group, e ? ": " : "", e ? strerror(e) : "");
        return -1;
    }
    if (chown(dir, (uid_t)-1, gr.gr_gid) < 0 || chmod(dir, 0750) < 0 ||
        chown(path, (uid_t)-1, gr.gr_gid) < 0 || chmod(path, 0660) < 0) {
        snprintf(err, errlen,
                 "DEALIMPORT_CONTROL_GROUP: cannot give '%s' to group '%s': "
                 "%s (the supervisor's user must be a member)",
                 path, group, strerror(errno));
        return -1;
    }
    return 0;
}

static int bind_ipc(sup_ctl_t *self, void *zctx, const char *dir,
                    const char *group, char *err, size_t errlen)
{
    char path[PATH_MAX];
    mode_t old;
    int rc;
    snprintf(path, sizeof(path), "%s/control.ipc", dir);
    snprintf(self->endpoint, sizeof(self->endpoint), "ipc://%s", path);
    self->ipc = router(zctx);
    if (self->ipc == NULL) {
        snprintf(err, errlen, "cannot make the control socket: %s",
                 zmq_strerror(zmq_errno()));
        return -1;
    }
    /* The socket file is born 0600: ZeroMQ binds ipc in this thread, so
     * the umask covers it, and no other user can connect in between. */
    old = umask(0077);
    rc = zmq_bind(self->ipc, self->endpoint);
    umask(old);
    if (rc != 0) {
        snprintf(err, errlen, "cannot listen on '%s': %s", self->endpoint,
                 zmq_strerror(zmq_errno()));
        return -1;
    }
    if (chmod(path, 0600) < 0) {
        snprintf(err, errlen, "cannot set the mode of '%s': %s", path,
                 strerror(errno));
        return -1;
    }
    if (group && *group)
        return share_with_group(dir, path, group, err, errlen);
    return 0;
}

static int bind_tcp(sup_ctl_t *self, void *zctx, const dip_config_t *cfg,
                    char *err, size_t errlen)
{
    char secret[DIP_CURVE_KEY_LEN + 1], public[DIP_CURVE_KEY_LEN + 1];
    char msg[600];
    int one = 1, rc = -1;
    DIR *d;

    if (!cfg->control_curve_secret_file || !*cfg->control_curve_secret_file) {
        snprintf(err, errlen,
                 "DEALIMPORT_CONTROL_CURVE_SECRET_FILE must name the "
                 "supervisor's secret key when DEALIMPORT_CONTROL_TCP is set");
        return -1;
    }
    if (!cfg->control_curve_clients_dir || !*cfg->control_curve_clients_dir) {
        snprintf(err, errlen,
                 "DEALIMPORT_CONTROL_CURVE_CLIENTS_DIR must name the "
                 "directory of authorized client keys when "
                 "DEALIMPORT_CONTROL_TCP is set");
        return -1;
    }
    if (dip_curve_read_key(cfg->control_curve_secret_file,
                           "the supervisor's secret key", secret, msg,
                           sizeof(msg)) < 0) {
        snprintf(err, errlen, "DEALIMPORT_CONTROL_CURVE_SECRET_FILE: %s", msg);
        return -1;
    }
    if ((d = opendir(cfg->control_curve_clients_dir)) == NULL) {
        snprintf(err, errlen,
                 "DEALIMPORT_CONTROL_CURVE_CLIENTS_DIR: cannot read '%s': %s",
                 cfg->control_curve_clients_dir, strerror(errno));
        goto cleanup;
    }
    closedir(d);
    snprintf(self->clients_dir, sizeof(self->clients_dir), "%s",
             cfg->control_curve_clients_dir);
    dip_curve_public(secret, public);

    /* The ZAP handler must exist before the first client connects. */
    self->zap = zmq_socket(zctx, ZMQ_REP);
    if (self->zap == NULL || zmq_bind(self->zap, ZAP_ENDPOINT) != 0) {
        snprintf(err, errlen, "cannot start the CURVE authenticator: %s",
                 zmq_strerror(zmq_errno()));
        goto cleanup;
    }
    self->tcp = router(zctx);
    if (self->tcp == NULL ||
        zmq_setsockopt(self->tcp, ZMQ_CURVE_SERVER, &one, sizeof(one)) ||
        zmq_setsockopt(self->tcp, ZMQ_CURVE_SECRETKEY, secret,
                       DIP_CURVE_KEY_LEN + 1) ||
        zmq_setsockopt(self->tcp, ZMQ_ZAP_DOMAIN, ZAP_DOMAIN,
                       strlen(ZAP_DOMAIN))) {
        snprintf(err, errlen, "cannot make the TCP control socket: %s",
                 zmq_strerror(zmq_errno()));
        goto cleanup;
    }
    if (zmq_bind(self->tcp, cfg->control_tcp) != 0) {
        snprintf(err, errlen,
                 "DEALIMPORT_CONTROL_TCP: cannot listen on '%s': "
                 "%s",
                 cfg->control_tcp, zmq_strerror(zmq_errno()));
        goto cleanup;
    }
    dip_log(DIP_LOG_NOTICE, NULL,
            "control over TCP at '%s' for the CURVE clients listed in '%s'; "
            "this supervisor's public key is '%s'",
            cfg->control_tcp, self->clients_dir, public);
    rc = 0;
cleanup:
    memset(secret, 0, sizeof(secret));
    return rc;
}

sup_ctl_t *sup_ctl_new(void *zctx, const dip_config_t *cfg, const char *owner,
                       sup_store_t *store, const sup_ctl_host_t *host,
                       char *err, size_t errlen)
{
    sup_ctl_t *self = calloc(1, sizeof(*self));
    if (self == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    self->host = *host;
    self->store = store;
    self->lease_s = cfg->lease_s;
    snprintf(self->owner, sizeof(self->owner), "%s", owner);
    self->view.cap = (size_t)cfg->max_workers;
    self->view.runs = calloc(self->view.cap, sizeof(sup_ctl_run_t));
    if (self->view.runs == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    self->admin = sup_admin_new(cfg, owner, err, errlen);
    if (self->admin == NULL)
        goto fail;
    if (bind_ipc(self, zctx, cfg->runtime_dir, cfg->control_group, err,
                 errlen) < 0)
        goto fail;
    if (cfg->control_tcp && *cfg->control_tcp &&
        bind_tcp(self, zctx, cfg, err, errlen) < 0)
        goto fail;
    return self;
fail:
    sup_ctl_destroy(&self);
    return NULL;
}

void sup_ctl_destroy(sup_ctl_t **self_p)
{
    sup_ctl_t *self;
    if (self_p == NULL || *self_p == NULL)
        return;
    self = *self_p;
    if (self->ipc)
        zmq_close(self->ipc);
    if (self->tcp)
        zmq_close(self->tcp);
    if (self->zap)
        zmq_close(self->zap);
    sup_admin_destroy(&self->admin);
    free(self->view.runs);
    free(self);
    *self_p = NULL;
}

const char *sup_ctl_endpoint(const sup_ctl_t *self)
{
    return self->endpoint;
}

int sup_ctl_poll_items(sup_ctl_t *self, zmq_pollitem_t *items, int max)
{
    void *socks[] = {self->ipc, self->tcp, self->zap};
    int n = 0;
    for (size_t i = 0; i < sizeof(socks) / sizeof(socks[0]) && n < max; i++) {
        if (socks[i] == NULL)
            continue;
        memset(&items[n], 0, sizeof(items[n]));
        items[n].socket = socks[i];
        items[n].events = ZMQ_POLLIN;
        n++;
    }
    return n;
}

/* ---- the supervisor's own imports --------------------------------------- */

static sup_ctl_view_t *take_view(sup_ctl_t *self)
{
    self->view.nruns = 0;
    self->host.view(self->host.ctx, &self->view);
    if (self->view.nruns > self->view.cap)
        self->view.nruns = self->view.cap;
    return &self->view;
}

static const sup_ctl_run_t *find_run(const sup_ctl_view_t *v, const char *id)
{
    for (size_t i = 0; i < v->nruns; i++)
        if (strcmp(v->runs[i].id, id) == 0)
            return &v->runs[i];
    return NULL;
}

static int64_t max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

/* Overlays the live figures of an import this supervisor runs on what the
 * database says (counters only grow, so the larger one is the newer). */
static void merge_live(sup_ctl_t *self, json_t *o, const sup_ctl_run_t *r,
                       int64_t now)
{
    int64_t lines =
        max64(r->lines, json_integer_value(json_object_get(o, "lines")));
    int64_t bytes =
        max64(r->bytes, json_integer_value(json_object_get(o, "bytes")));
    int64_t total = r->bytes_total > 0
                        ? r->bytes_total
                        : json_integer_value(json_object_get(o, "bytes_total"));
    json_object_set_new(o, "lines", json_integer(lines));
    json_object_set_new(
        o, "added",
        json_integer(
            max64(r->added, json_integer_value(json_object_get(o, "added")))));
    json_object_set_new(
        o, "errors",
        json_integer(max64(r->errors,
                           json_integer_value(json_object_get(o, "errors")))));
    json_object_set_new(o, "bytes", json_integer(bytes));
    json_object_set_new(o, "bytes_total", json_integer(total));
    if (total > 0)
        json_object_set_new(o, "percent",
                            json_real((double)(bytes * 1000 / total) / 10.0));
    if (r->running && r->first_line > 0 && now > r->started_ms) {
        double done = (double)(lines - (r->first_line - 1));
        json_object_set_new(
            o, "rate",
            json_real(done > 0 ? done * 1000.0 / (double)(now - r->started_ms)
                               : 0.0));
    }
    json_object_set_new(o, "local", json_true());
    json_object_set_new(o, "owner", json_string(self->owner));
}

static json_t *worker_json(const sup_ctl_view_t *v, const sup_ctl_run_t *r,
                           int64_t now)
{
    char at[32];
    json_t *o = json_object();
    if (o == NULL)
        return json_null();
    json_object_set_new(o, "pid",
                        r->running && r->pid > 0 ? json_integer(r->pid)
                                                 : json_null());
    json_object_set_new(o, "running", json_boolean(r->running));
    json_object_set_new(o, "first_line",
                        r->first_line > 0 ? json_integer(r->first_line)
                                          : json_null());
    json_object_set_new(o, "started_at",
                        r->started_ms > 0
                            ? json_string(sup_admin_iso8601(r->started_ms, at))
                            : json_null());
    json_object_set_new(o, "runtime_s",
                        json_integer(r->started_ms > 0 && now > r->started_ms
                                         ? (now - r->started_ms) / 1000
                                         : 0));
    json_object_set_new(o, "restarts", json_integer(r->restarts));
    json_object_set_new(o, "requested",
                        r->requested ? json_string(r->requested) : json_null());
    json_object_set_new(o, "memory_mb", json_integer(v->memory_mb));
    json_object_set_new(o, "cpu_s", json_integer(v->cpu_s));
    json_object_set_new(o, "timeout_s", json_integer(v->timeout_s));
    return o;
}

/* ---- commands ------------------------------------------------------- */

static char *ok_take(json_t *body)
{
    char *s = body ? dip_ctl_reply_ok(body) : NULL;
    json_decref(body);
    if (s == NULL)
        s = dip_ctl_reply_error(DIP_CTL_EUNAVAIL, "out of memory");
    return s;
}

static void count_account(json_t *accounts, const char *account,
                          const char *field, int64_t n)
{
    json_t *o = json_object_get(accounts, account);
    if (o == NULL) {
        o = json_pack("{s:s, s:i, s:i}", "account", account, "running", 0,
                      "processing", 0);
        if (o == NULL || json_object_set_new(accounts, account, o) < 0)
            return;
    }
    json_object_set_new(
        o, field,
        json_integer(json_integer_value(json_object_get(o, field)) + n));
}

static char *do_status(sup_ctl_t *self)
{
    sup_ctl_view_t *v = take_view(self);
    int64_t now = dip_bson_now_ms();
    json_t *by_status = NULL, *by_account = NULL, *accounts, *arr, *o;
    const char *key;
    char err[512] = "", db[600];
    size_t procs = 0;

    accounts = json_object();
    arr = json_array();
    for (size_t i = 0; i < v->nruns; i++) {
        procs += v->runs[i].running != 0;
        count_account(accounts, v->runs[i].account, "running", 1);
    }
    if (sup_admin_counts(self->admin, &by_status, &by_account, err,
                         sizeof(err)) == 0) {
        snprintf(db, sizeof(db), "ok");
        for (size_t i = 0; i < json_array_size(by_account); i++) {
            json_t *a = json_array_get(by_account, i);
            count_account(accounts,
                          json_string_value(json_object_get(a, "account")),
                          "processing",
                          json_integer_value(json_object_get(a, "processing")));
        }
    } else {
        snprintf(db, sizeof(db), "unavailable: %s", err);
        by_status = json_object();
    }
    json_object_foreach(accounts, key, o)
    {
        json_array_append(arr, o);
    }
    json_decref(accounts);
    json_decref(by_account);
    o = json_pack(
        "{s:s, s:s, s:i, s:I, s:b, s:{s:i, s:i, s:i, s:i}, "
        "s:{s:i, s:i, s:i}, s:o, s:o, s:i, s:i, s:s}",
        "version", DEALIMPORT_VERSION, "owner", self->owner, "pid",
        (int)getpid(), "uptime_s", (json_int_t)((now - v->started_ms) / 1000),
        "stopping", v->stopping, "workers", "running", (int)v->nruns,
        "processes", (int)procs, "limit", (int)v->limit, "per_account_limit",
        (int)v->per_account_limit, "limits", "memory_mb", (int)v->memory_mb,
        "cpu_s", (int)v->cpu_s, "timeout_s", (int)v->timeout_s, "imports",
        by_status, "accounts", arr, "finished", (int)v->finished, "failed",
        (int)v->failed, "database", db);
    return ok_take(o);
}

static char *do_list(sup_ctl_t *self, const dip_ctl_request_t *req)
{
    sup_ctl_view_t *v = take_view(self);
    int64_t now = dip_bson_now_ms();
    json_t *arr = NULL;
    char err[512];
    int truncated = 0;
    char next[DIP_CTL_CURSOR_LEN];
    if (sup_admin_list(self->admin, req->status, req->account, req->since_ms,
                       req->after, req->limit, &arr, &truncated, next, err,
                       sizeof(err)) < 0)
        return dip_ctl_reply_error(DIP_CTL_EUNAVAIL,
                                   "the database did not answer: %s", err);
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *o = json_array_get(arr, i);
        const sup_ctl_run_t *r =
            find_run(v, json_string_value(json_object_get(o, "id")));
        if (r)
            merge_live(self, o, r, now);
    }
    return ok_take(next[0] ? json_pack("{s:o, s:b, s:s}", "imports", arr,
                                       "truncated", truncated, "next", next)
                           : json_pack("{s:o, s:b}", "imports", arr,
                                       "truncated", truncated));
}

static char *do_show(sup_ctl_t *self, const dip_ctl_request_t *req)
{
    sup_ctl_view_t *v = take_view(self);
    const sup_ctl_run_t *r = find_run(v, req->id);
    int64_t now = dip_bson_now_ms();
    bson_t doc;
    json_t *o;
    char err[512];
    int rc = sup_admin_get(self->admin, req->id, &doc, err, sizeof(err));
    if (rc < 0)
        return dip_ctl_reply_error(DIP_CTL_EUNAVAIL,
                                   "the database did not answer: %s", err);
    if (rc == 0)
        return dip_ctl_reply_error(DIP_CTL_ENOTFOUND, "no import with id '%s'",
                                   req->id);
    o = sup_admin_detail(self->admin, &doc, now);
    bson_destroy(&doc);
    if (o && r) {
        merge_live(self, o, r, now);
        json_object_set_new(o, "worker", worker_json(v, r, now));
    }
    return ok_take(o ? json_pack("{s:o}", "import", o) : NULL);
}

static char *action_reply(const char *id, const char *result,
                          const char *status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static char *action_reply(const char *id, const char *result,
                          const char *status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    dip_log(DIP_LOG_NOTICE, id, "control: %s", msg);
    return ok_take(json_pack("{s:s, s:s, s:s, s:s}", "id", id, "result", result,
                             "status", status, "message", msg));
}

/* pause or cancel of an import this supervisor runs. */
static char *act_local(sup_ctl_t *self, const dip_ctl_request_t *req,
                       const sup_ctl_run_t *r)
{
    const char *name = dip_ctl_cmd_name(req->cmd);
    dip_control_action_t action =
        req->cmd == DIP_CTL_PAUSE ? DIP_CONTROL_PAUSE : DIP_CONTROL_CANCEL;
    int rc;
    if (req->cmd == DIP_CTL_RESUME)
        return dip_ctl_reply_error(DIP_CTL_ESTATE,
                                   "import '%s' is processing: only a paused "
                                   "import can be resumed",
                                   req->id);
    if (r->finishing)
        return dip_ctl_reply_error(DIP_CTL_ESTATE,
                                   "import '%s' is finishing; nothing was "
                                   "changed",
                                   req->id);
    if (r->requested && strcmp(r->requested, "cancel") == 0 &&
        action == DIP_CONTROL_PAUSE)
        return dip_ctl_reply_error(
            DIP_CTL_ESTATE, "import '%s' is already being cancelled", req->id);
    rc = self->host.control(self->host.ctx, req->id, action);
    if (rc == 0)
        return action_reply(req->id, "signalled", "processing",
                            "import '%s': %s requested; its worker stops "
                            "after its current batch",
                            req->id, name);
    if (rc == 1)
        return action_reply(
            req->id, "applied",
            action == DIP_CONTROL_PAUSE ? "paused" : "cancelled",
            "import '%s' is %s (it was waiting to restart)", req->id,
            action == DIP_CONTROL_PAUSE ? "paused" : "cancelled");
    return dip_ctl_reply_error(DIP_CTL_EUNAVAIL,
                               "import '%s' could not be reached; nothing was "
                               "changed, try again",
                               req->id);
}

/* After pending/paused -> cancelled: csv_imports says how far it got. */
static void finish_cancelled(sup_ctl_t *self, const char *id, const bson_t *doc,
                             int64_t *lines)
{
    sup_store_result_t r = {.status = "cancelled"};
    char err[512];
    r.lines = max64(dip_bson_get_int(doc, "checkpoint.line", 0),
                    dip_bson_get_int(doc, "progress.lines", 0));
    *lines = r.lines;
    if (self->store == NULL)
        return;
    if (sup_store_finish(self->store, doc, -1, &r, err, sizeof(err)) < 0)
        dip_log(DIP_LOG_WARNING, id,
                "cancelled, but its import log was not written: %s", err);
}

/* One decision on the import's current document: returns a reply, or NULL
 * when the document changed under us and the decision must be made again. */
static char *act_on_doc(sup_ctl_t *self, const dip_ctl_request_t *req,
                        const bson_t *doc)
{
    const char *id = req->id, *name = dip_ctl_cmd_name(req->cmd);
    const char *st = dip_bson_get_str(doc, "status");
    const char *owner = dip_bson_get_str(doc, "claimed_by");
    const char *recorded = dip_bson_get_str(doc, "control.action");
    const char *to;
    char err[512];
    bson_t moved;
    int rc;

    if (st == NULL)
        st = "unknown";
    if (req->cmd == DIP_CTL_RESUME) {
        if (strcmp(st, "paused") != 0)
            return dip_ctl_reply_error(DIP_CTL_ESTATE,
                                       "import '%s' is %s: only a paused "
                                       "import can be resumed",
                                       id, st);
        rc = sup_admin_move(self->admin, id, "paused", "pending", &moved, err,
                            sizeof(err));
        if (rc <= 0)
            goto moved;
        {
            long long line = dip_bson_get_int(&moved, "checkpoint.line", 0);
            bson_destroy(&moved);
            return action_reply(id, "applied", "pending",
                                "import '%s' is pending again and resumes at "
                                "line %lld",
                                id, line + 1);
        }
    }
    if (strcmp(st, "processing") == 0) {
        if (owner == NULL || strcmp(owner, self->owner) == 0)
            return dip_ctl_reply_error(DIP_CTL_EUNAVAIL,
                                       "import '%s' is processing without a "
                                       "supervisor to carry out the %s; "
                                       "nothing was changed",
                                       id, name);
        if (recorded && strcmp(recorded, "cancel") == 0 &&
            req->cmd == DIP_CTL_PAUSE)
            return dip_ctl_reply_error(DIP_CTL_ESTATE,
                                       "a cancel of import '%s' is already "
                                       "recorded",
                                       id);
        rc = sup_admin_record(self->admin, id, owner, name, err, sizeof(err));
        if (rc < 0)
            return dip_ctl_reply_error(DIP_CTL_EUNAVAIL,
                                       "the database did not answer: %s", err);
        if (rc == 0)
            return NULL;
        return action_reply(id, "recorded", "processing",
                            "import '%s' runs under supervisor '%s': the %s "
                            "is recorded on the import and carried out by "
                            "that supervisor at its next lease renewal "
                            "(within %ld s)",
                            id, owner, name, (self->lease_s + 2) / 3);
    }
    if (req->cmd == DIP_CTL_PAUSE) {
        if (strcmp(st, "paused") == 0)
            return dip_ctl_reply_error(DIP_CTL_ESTATE,
                                       "import '%s' is already paused", id);
        if (strcmp(st, "pending") != 0)
            return dip_ctl_reply_error(DIP_CTL_ESTATE,
                                       "import '%s' is %s: only pending and "
                                       "processing imports can be paused",
                                       id, st);
        to = "paused";
    } else {
        if (strcmp(st, "cancelled") == 0)
            return dip_ctl_reply_error(DIP_CTL_ESTATE,
                                       "import '%s' is already cancelled", id);
        if (strcmp(st, "pending") != 0 && strcmp(st, "paused") != 0)
            return dip_ctl_reply_error(DIP_CTL_ESTATE,
                                       "import '%s' is %s: only pending, "
                                       "processing and paused imports can be "
                                       "cancelled",
                                       id, st);
        to = "cancelled";
    }
    rc = sup_admin_move(self->admin, id, st, to, &moved, err, sizeof(err));
    if (rc <= 0)
        goto moved;
    if (strcmp(to, "cancelled") == 0) {
        int64_t lines = 0;
        finish_cancelled(self, id, &moved, &lines);
        bson_destroy(&moved);
        return action_reply(id, "applied", "cancelled",
                            "import '%s' is cancelled after line %lld; the "
                            "deals it created stay",
                            id, (long long)lines);
    }
    bson_destroy(&moved);
    return action_reply(id, "applied", "paused",
                        "import '%s' is paused; it stays so until resumed", id);
moved:
    if (rc < 0)
        return dip_ctl_reply_error(DIP_CTL_EUNAVAIL,
                                   "the database did not answer: %s", err);
    return NULL; /* its status changed meanwhile: decide again */
}

static char *do_action(sup_ctl_t *self, const dip_ctl_request_t *req)
{
    sup_ctl_view_t *v = take_view(self);
    const sup_ctl_run_t *r;
    char err[512];
    if (v->stopping)
        return dip_ctl_reply_error(DIP_CTL_EUNAVAIL,
                                   "the supervisor is stopping; nothing was "
                                   "changed");
    for (int attempt = 0; attempt < ACTION_ATTEMPTS; attempt++) {
        bson_t doc;
        char *reply;
        int rc;
        /* Whether this supervisor runs it can change between attempts: a
         * claim in between moves it here. */
        r = find_run(take_view(self), req->id);
        if (r)
            return act_local(self, req, r);
        rc = sup_admin_get(self->admin, req->id, &doc, err, sizeof(err));
        if (rc < 0)
            return dip_ctl_reply_error(DIP_CTL_EUNAVAIL,
                                       "the database did not answer: %s", err);
        if (rc == 0)
            return dip_ctl_reply_error(DIP_CTL_ENOTFOUND,
                                       "no import with id '%s'", req->id);
        reply = act_on_doc(self, req, &doc);
        bson_destroy(&doc);
        if (reply)
            return reply;
    }
    return dip_ctl_reply_error(DIP_CTL_EUNAVAIL,
                               "import '%s' kept changing status; nothing was "
                               "changed, try again",
                               req->id);
}

static char *do_metrics(sup_ctl_t *self)
{
    char *text = sup_metrics_render(self->host.metrics, dip_bson_now_ms());
    json_t *o;
    if (text == NULL)
        return dip_ctl_reply_error(DIP_CTL_EUNAVAIL,
                                   self->host.metrics
                                       ? "out of memory"
                                       : "this supervisor keeps no metrics");
    o = json_pack("{s:s}", "text", text);
    free(text);
    return ok_take(o);
}

int sup_ctl_sample_queue(sup_ctl_t *self)
{
    int64_t created = -1;
    char err[512];
    int rc;
    if (self == NULL || self->host.metrics == NULL ||
        mono_ms() < self->sample_after_ms)
        return 0;
    rc = sup_admin_oldest_pending(self->admin, &created, err, sizeof(err));
    if (rc < 0) {
        /* The database is away: the loop's own work waits on it already,
         * a gauge must not make it wait twice at every poll. */
        self->sample_after_ms = mono_ms() + 60000;
        dip_log(DIP_LOG_DEBUG, NULL, "%s", err);
        return -1;
    }
    sup_metrics_oldest_pending(self->host.metrics, rc > 0 ? created : -1);
    return 0;
}

static char *dispatch(sup_ctl_t *self, const void *data, size_t len)
{
    dip_ctl_request_t req;
    char err[512], more[64];
    long skipped = 0;
    if (dip_ctl_request_decode(data, len, &req, err, sizeof(err)) < 0) {
        if (throttle_ok(&self->bad_log, &skipped))
            dip_log(DIP_LOG_WARNING, NULL, "refused a control request: %s%s",
                    err, since(skipped, more, sizeof(more)));
        return dip_ctl_reply_error(DIP_CTL_EBADREQ, "%s", err);
    }
    switch (req.cmd) {
    case DIP_CTL_STATUS:
        return do_status(self);
    case DIP_CTL_LIST:
        return do_list(self, &req);
    case DIP_CTL_SHOW:
        return do_show(self, &req);
    case DIP_CTL_PAUSE:
    case DIP_CTL_RESUME:
    case DIP_CTL_CANCEL:
        return do_action(self, &req);
    case DIP_CTL_METRICS:
        return do_metrics(self);
    }
    return dip_ctl_reply_error(DIP_CTL_EBADREQ, "unknown command");
}

/* ---- sockets -------------------------------------------------------- */

/* Handles one received message: frames[0] is the client's routing id, then
 * an empty delimiter when the client is a REQ socket, then the request. */
static void on_request(sup_ctl_t *self, void *sock, zmq_msg_t *frames, int n,
                       int dropped)
{
    int delim = n >= 2 && zmq_msg_size(&frames[1]) == 0;
    int body = n - 1 - delim + dropped;
    char *reply;
    if (body == 1)
        reply = dispatch(self, zmq_msg_data(&frames[n - 1]),
                         zmq_msg_size(&frames[n - 1]));
    else
        reply = dip_ctl_reply_error(DIP_CTL_EBADREQ,
                                    "a request is exactly one frame holding a "
                                    "JSON object; this message had %d",
                                    body < 0 ? 0 : body);
    if (reply == NULL)
        return;
    /* A client that left, or does not read its replies, loses them. */
    if (zmq_send(sock, zmq_msg_data(&frames[0]), zmq_msg_size(&frames[0]),
                 ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0 &&
        (!delim || zmq_send(sock, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0))
        zmq_send(sock, reply, strlen(reply), ZMQ_DONTWAIT);
    free(reply);
}

/* Reads one whole message (at most MAX_FRAMES kept, the rest counted in
 * *dropped). Returns the frames kept, 0 when nothing was waiting. */
static int recv_message(void *sock, zmq_msg_t *frames, int *dropped)
{
    int n = 0, more = 1;
    *dropped = 0;
    while (more) {
        zmq_msg_t f;
        zmq_msg_init(&f);
        if (zmq_msg_recv(&f, sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&f);
            break;
        }
        more = zmq_msg_more(&f);
        if (n < MAX_FRAMES) {
            frames[n++] = f;
        } else {
            (*dropped)++;
            zmq_msg_close(&f);
        }
    }
    return n;
}

static void serve_router(sup_ctl_t *self, void *sock)
{
    for (int i = 0; i < REQUESTS_PER_WAKE; i++) {
        zmq_msg_t frames[MAX_FRAMES];
        int dropped, n = recv_message(sock, frames, &dropped);
        if (n == 0)
            return;
        on_request(self, sock, frames, n, dropped);
        for (int j = 0; j < n; j++)
            zmq_msg_close(&frames[j]);
    }
}

static int frame_is(zmq_msg_t *f, const char *s)
{
    return zmq_msg_size(f) == strlen(s) &&
           memcmp(zmq_msg_data(f), s, strlen(s)) == 0;
}

/* ZAP (RFC 27): answers whether a connecting client may talk to us. Only
 * the TCP socket carries our domain; anything else is not ours to judge. */
static void serve_zap(sup_ctl_t *self)
{
    for (int i = 0; i < REQUESTS_PER_WAKE; i++) {
        zmq_msg_t frames[MAX_FRAMES];
        int dropped, n = recv_message(self->zap, frames, &dropped);
        const char *status = "400", *text = "not an authorized client";
        char z85[DIP_CURVE_KEY_LEN + 1] = "", addr[64] = "", more[64];
        if (n == 0)
            return;
        if (n >= 6 && frame_is(&frames[0], "1.0")) {
            snprintf(addr, sizeof(addr), "%.*s",
                     (int)(zmq_msg_size(&frames[3]) < 60
                               ? zmq_msg_size(&frames[3])
                               : 60),
                     (const char *)zmq_msg_data(&frames[3]));
            if (!frame_is(&frames[2], ZAP_DOMAIN)) {
                status = "200";
                text = "OK";
            } else if (n >= 7 && frame_is(&frames[5], "CURVE") &&
                       zmq_msg_size(&frames[6]) == 32 &&
                       zmq_z85_encode(z85, zmq_msg_data(&frames[6]), 32) &&
                       dip_curve_key_listed(self->clients_dir, z85) == 1) {
                status = "200";
                text = "OK";
            }
        }
        if (strcmp(status, "200") != 0) {
            long skipped = 0;
            if (throttle_ok(&self->zap_log, &skipped))
                dip_log(DIP_LOG_WARNING, NULL,
                        "refused a control client from '%s': key '%s' is not "
                        "in '%s'%s",
                        addr, z85[0] ? z85 : "none", self->clients_dir,
                        since(skipped, more, sizeof(more)));
        } else if (z85[0]) {
            dip_log(DIP_LOG_INFO, NULL,
                    "control client with key '%s' connected from '%s'", z85,
                    addr);
        }
        /* A REP socket must answer every request it read. */
        zmq_send(self->zap, "1.0", 3, ZMQ_SNDMORE);
        if (n >= 2)
            zmq_send(self->zap, zmq_msg_data(&frames[1]),
                     zmq_msg_size(&frames[1]), ZMQ_SNDMORE);
        else
            zmq_send(self->zap, "", 0, ZMQ_SNDMORE);
        zmq_send(self->zap, status, 3, ZMQ_SNDMORE);
        zmq_send(self->zap, text, strlen(text), ZMQ_SNDMORE);
        zmq_send(self->zap, "", 0, ZMQ_SNDMORE);
        zmq_send(self->zap, "", 0, 0);
        for (int j = 0; j < n; j++)
            zmq_msg_close(&frames[j]);
    }
}

void sup_ctl_serve(sup_ctl_t *self, const zmq_pollitem_t *items, int n)
{
    for (int i = 0; i < n; i++) {
        if (!(items[i].revents & ZMQ_POLLIN))
            continue;
        if (items[i].socket == self->zap)
            serve_zap(self);
        else if (items[i].socket == self->ipc || items[i].socket == self->tcp)
            serve_router(self, items[i].socket);
    }
}

void sup_ctl_renewal(sup_ctl_t *self)
{
    sup_admin_request_t reqs[RECORDED_PER_RENEWAL];
    char err[512];
    int n = sup_admin_recorded(self->admin, reqs, RECORDED_PER_RENEWAL, err,
                               sizeof(err));
    if (n < 0) {
        dip_log(DIP_LOG_WARNING, NULL, "%s", err);
        return;
    }
    for (int i = 0; i < n; i++) {
        int rc = -1;
        if (strcmp(reqs[i].action, "pause") == 0)
            rc = self->host.control(self->host.ctx, reqs[i].id,
                                    DIP_CONTROL_PAUSE);
        else if (strcmp(reqs[i].action, "cancel") == 0)
            rc = self->host.control(self->host.ctx, reqs[i].id,
                                    DIP_CONTROL_CANCEL);
        if (rc >= 0)
            dip_log(DIP_LOG_NOTICE, reqs[i].id,
                    "control: carrying out the %s recorded on the import",
                    reqs[i].action);
        else
            dip_log(DIP_LOG_WARNING, reqs[i].id,
                    "control: cannot carry out the recorded '%s'; dropping it",
                    reqs[i].action);
        if (sup_admin_clear(self->admin, reqs[i].id, err, sizeof(err)) < 0)
            dip_log(DIP_LOG_WARNING, reqs[i].id, "%s", err);
    }
}
