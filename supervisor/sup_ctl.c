/*
 * sup_ctl: the control sockets and the dispatch of requests to the
 * commands (sup_ctl_query.c answers status, list, show and metrics;
 * sup_ctl_action.c pause, resume and cancel). Requests are
 * read without blocking, a bounded number per wake-up; every frame that can
 * be answered is answered (bad ones with a bad_request error), and a reply
 * the client is no longer there to take is dropped rather than queued.
 * pause and cancel of an import this supervisor runs go to its worker; of
 * an import no worker runs they change the queue document in one
 * findAndModify on its status; of an import another supervisor runs they are
 * recorded on the document for that supervisor's next lease renewal.
 */
#include "sup_ctl_priv.h"
#include "dip_bson.h"
#include "dip_ctl.h"
#include "dip_curve_io.h"
#include "dip_log.h"
#include "dip_time.h"

#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
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

/* 1 when a line may be logged now; *skipped says how many were not since
 * the last one. */
static int throttle_ok(throttle_t *t, long *skipped)
{
    int64_t now = dip_time_mono_ms();
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
    int one = 1, zero = 0, hwm = 1000, handshake = SUP_CTL_HANDSHAKE_MS;
    int64_t max = MAX_FRAME_BYTES;
    if (s == NULL)
        return NULL;
    /* A reply to a client that left fails at once instead of queueing. */
    if (zmq_setsockopt(s, ZMQ_ROUTER_MANDATORY, &one, sizeof(one)) ||
        zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero)) ||
        zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &max, sizeof(max)) ||
        zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof(hwm)) ||
        zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof(hwm)) ||
        zmq_setsockopt(s, ZMQ_SNDTIMEO, &zero, sizeof(zero)) ||
        zmq_setsockopt(s, ZMQ_HANDSHAKE_IVL, &handshake, sizeof(handshake))) {
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
    self->keys_watch = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (self->keys_watch >= 0 &&
        inotify_add_watch(self->keys_watch, self->clients_dir,
                          IN_CREATE | IN_DELETE | IN_MODIFY | IN_CLOSE_WRITE |
                              IN_MOVED_FROM | IN_MOVED_TO | IN_ATTRIB |
                              IN_DELETE_SELF | IN_MOVE_SELF) < 0) {
        close(self->keys_watch);
        self->keys_watch = -1;
    }
    dip_curve_keys_load(self->clients_dir, &self->keys);
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
                       sup_store_t *store, mongoc_client_t *client,
                       const char *db, const sup_ctl_host_t *host, char *err,
                       size_t errlen)
{
    sup_ctl_t *self = calloc(1, sizeof(*self));
    if (self == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    self->keys_watch = -1;
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
    self->admin = sup_admin_new(client, db, owner);
    if (self->admin == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
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
    dip_curve_keys_release(&self->keys);
    if (self->keys_watch >= 0)
        close(self->keys_watch);
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

static char *dispatch(sup_ctl_t *self, const void *data, size_t len,
                      const sup_ctl_peer_t *peer)
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
        return sup_ctl_query_status(self);
    case DIP_CTL_LIST:
        return sup_ctl_query_list(self, &req);
    case DIP_CTL_SHOW:
        return sup_ctl_query_show(self, &req);
    case DIP_CTL_PAUSE:
    case DIP_CTL_RESUME:
    case DIP_CTL_CANCEL: {
        char *reply;
        self->asker = peer;
        reply = sup_ctl_action_do(self, &req);
        self->asker = NULL;
        return reply;
    }
    case DIP_CTL_METRICS:
        return sup_ctl_query_metrics(self);
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
    sup_ctl_peer_t peer;
    if (body == 1) {
        sup_ctl_peer_of(&frames[n - 1], sock == self->tcp, &peer);
        reply = dispatch(self, zmq_msg_data(&frames[n - 1]),
                         zmq_msg_size(&frames[n - 1]), &peer);
    } else {
        reply = dip_ctl_reply_error(DIP_CTL_EBADREQ,
                                    "a request is exactly one frame holding a "
                                    "JSON object; this message had %d",
                                    body < 0 ? 0 : body);
    }
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

/* The authorised keys, fresh: read again when SIGHUP asked for it, or when
 * the directory changed (keys_watch, or its signature without inotify). */
static void keys_fresh(sup_ctl_t *self)
{
    unsigned long long sig;
    if (!self->keys_stale && self->keys_watch >= 0) {
        char buf[4096]
            __attribute__((aligned(__alignof__(struct inotify_event))));
        int changed = 0;
        while (read(self->keys_watch, buf, sizeof(buf)) > 0)
            changed = 1;
        if (!changed)
            return;
    } else if (!self->keys_stale &&
               dip_curve_keys_signature(self->clients_dir, &sig) == 0 &&
               sig == self->keys.sig) {
        return;
    }
    self->keys_stale = 0;
    if (dip_curve_keys_load(self->clients_dir, &self->keys) < 0)
        dip_log(DIP_LOG_ERR, NULL,
                "cannot read the authorised control keys in '%s': no "
                "client is let in until it can be read",
                self->clients_dir);
    else
        dip_log(DIP_LOG_INFO, NULL,
                "authorised control keys read from '%s': %zu",
                self->clients_dir, self->keys.n);
}

void sup_ctl_reload_keys(sup_ctl_t *self)
{
    if (self)
        self->keys_stale = 1;
}

/* ZAP (RFC 27): answers whether a connecting client may talk to us. Only
 * the TCP socket carries our domain; anything else is not ours to judge. */
static void serve_zap(sup_ctl_t *self)
{
    keys_fresh(self);
    for (int i = 0; i < REQUESTS_PER_WAKE; i++) {
        zmq_msg_t frames[MAX_FRAMES];
        int dropped, n = recv_message(self->zap, frames, &dropped);
        const char *status = "400", *text = "not an authorized client";
        char z85[DIP_CURVE_KEY_LEN + 1] = "", addr[64] = "", more[64];
        char file[256] = "", name[128] = "";
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
                       dip_curve_keys_find(&self->keys, z85, file,
                                           sizeof(file)) == 1) {
                status = "200";
                text = "OK";
                /* The connection's User-Id: the name its requests are
                 * logged under (sup_ctl_peer). */
                sup_ctl_peer_key_name(file, name, sizeof(name));
            }
        }
        if (strcmp(status, "200") != 0) {
            long skipped = 0;
            sup_metrics_refused_handshake(self->host.metrics);
            if (throttle_ok(&self->zap_log, &skipped))
                dip_log(DIP_LOG_WARNING, NULL,
                        "refused a control client from '%s': key '%s' is not "
                        "in '%s'%s",
                        addr, z85[0] ? z85 : "none", self->clients_dir,
                        since(skipped, more, sizeof(more)));
        } else if (z85[0]) {
            dip_log_fields(DIP_LOG_INFO, NULL,
                           DIP_LOG_FIELDS(DIP_LOG_STR("key", name)),
                           "control client with key '%s' ('%s') connected "
                           "from '%s'",
                           name, z85, addr);
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
        zmq_send(self->zap, name, strlen(name), ZMQ_SNDMORE);
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
