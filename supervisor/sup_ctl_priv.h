/*
 * sup_ctl_priv: what the files of sup_ctl share, included only by them
 * (sup_ctl.c: sockets, ZAP, dispatch; sup_ctl_query.c: status, list, show
 * and metrics; sup_ctl_action.c: pause, resume and cancel, and the requests
 * recorded for this supervisor). Nothing here is part of sup_ctl's
 * contract.
 */
#ifndef SUP_CTL_PRIV_H
#define SUP_CTL_PRIV_H

#include <limits.h>

#include <jansson.h>

#include "dip_ctl.h"
#include "sup_admin.h"
#include "sup_ctl.h"
#include "dip_curve_io.h"
#include "sup_ctl_peer.h"

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
    /* who sent the request being served (sup_ctl.c sets it around
     * dispatch; NULL outside it) */
    const sup_ctl_peer_t *asker;
    /* The authorised client keys, read once, and again when inotify says
     * their directory changed (a file added, removed, written, renamed:
     * one non-blocking read per handshake, so a key removed is refused at
     * the next connection), or after sup_ctl_reload_keys (SIGHUP). Without
     * inotify, the directory's signature (a listing and a stat per file)
     * is compared before each handshake instead. Never a file read per
     * handshake. */
    dip_curve_keys_t keys;
    int keys_stale;
    int keys_watch; /* inotify fd, or -1 */
};

/* The loop's view of its imports now (the host fills it). */
sup_ctl_view_t *sup_ctl_query_view(sup_ctl_t *self);

/* The run of import id in v, or NULL. */
const sup_ctl_run_t *sup_ctl_query_run(const sup_ctl_view_t *v, const char *id);

/* An ok reply holding body (taken; NULL: out of memory), as a string the
 * caller frees. */
char *sup_ctl_query_ok(json_t *body);

/* The replies to status, list, show and metrics (sup_ctl_query.c) and to
 * pause, resume and cancel (sup_ctl_action.c): strings the caller frees.
 * Each pause, resume and cancel is logged once with who asked (asker):
 * notice when carried out or recorded, info when refused. */
char *sup_ctl_query_status(sup_ctl_t *self);
char *sup_ctl_query_list(sup_ctl_t *self, const dip_ctl_request_t *req);
char *sup_ctl_query_show(sup_ctl_t *self, const dip_ctl_request_t *req);
char *sup_ctl_query_metrics(sup_ctl_t *self);
char *sup_ctl_action_do(sup_ctl_t *self, const dip_ctl_request_t *req);

#endif
