/*
 * sup_ctl: the supervisor's control plane. Binds the operators' ROUTER
 * socket at ipc://$DEALIMPORT_RUNTIME_DIR/control.ipc (mode 0600) and, when
 * DEALIMPORT_CONTROL_TCP is set, a CURVE-authenticated TCP endpoint whose
 * clients a ZAP handler (polled in the same loop, no thread) checks against
 * DEALIMPORT_CONTROL_CURVE_CLIENTS_DIR. Answers each request (dip_ctl) with
 * one reply; nothing a client sends can disturb the loop or its imports.
 * The loop lends it a view of the imports it runs and a way to pause or
 * cancel them (sup_ctl_host_t); everything else it reads and changes in
 * MongoDB through sup_admin and sup_store.
 */
#ifndef SUP_CTL_H
#define SUP_CTL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <zmq.h>

#include "dip_config.h"
#include "dip_msg.h"
#include "sup_metrics.h"
#include "sup_store.h"

/* How long a connection to the control socket (ipc or TCP) may take to
 * finish its ZMTP handshake (CURVE and the key check included) before it
 * is dropped. A local client or one over a network finishes in a few
 * round trips; a peer that connects and stays silent (a flood of
 * handshakes) holds a descriptor and some memory until then, where
 * libzmq's default would hold it 30 s. */
#define SUP_CTL_HANDSHAKE_MS 5000

/* Most poll items sup_ctl_poll_items fills. */
#define SUP_CTL_POLL_MAX 3

typedef struct sup_ctl sup_ctl_t;

/* One import this supervisor runs, as the loop sees it right now. */
typedef struct sup_ctl_run {
    char id[25];
    char account[25];
    int running;   /* a worker process exists (else: waiting to restart) */
    int finishing; /* its final write is being retried: not controllable */
    pid_t pid;
    int64_t first_line; /* where the current worker started, 0 before it
                           said hello */
    int64_t started_ms; /* wall clock (epoch ms) of the current start */
    int64_t lines, added, errors, bytes, bytes_total;
    int restarts;
    const char *requested; /* "pause" or "cancel" already asked, or NULL */
} sup_ctl_run_t;

/* The supervisor as the loop sees it right now. runs is sup_ctl's buffer of
 * cap entries; the host fills nruns of them. */
typedef struct sup_ctl_view {
    int64_t started_ms; /* the supervisor's start, epoch ms */
    size_t limit;       /* DEALIMPORT_MAX_WORKERS */
    long per_account_limit, memory_mb, cpu_s, timeout_s;
    long finished, failed; /* imports ended since the start */
    int stopping;
    sup_ctl_run_t *runs;
    size_t cap, nruns;
} sup_ctl_view_t;

/* What the loop lends the control plane; ctx is passed back. */
typedef struct sup_ctl_host {
    void *ctx;
    void (*view)(void *ctx, sup_ctl_view_t *view);
    /* Asks import id's worker to stop (pause or cancel): it stops within
     * about a second, or is sent SIGTERM and then SIGKILL (sup_slot.h). Returns
     * 0 when the worker was told, 1 when the import was paused or cancelled at
     * once (no worker process was running), negative when this supervisor
     * cannot act on it (not running it, or finishing it). */
    int (*control)(void *ctx, const char *id, dip_control_action_t action);
    /* what `metrics` renders; borrowed, may be NULL */
    sup_metrics_t *metrics;
} sup_ctl_host_t;

/* Binds the control sockets on zctx (borrowed; sup_ctl_destroy closes the
 * sockets before the caller terminates it). store is borrowed for final
 * writes of imports cancelled while no worker ran them; client (of database
 * db) is borrowed for the operators' reads and requests (sup_admin). host
 * is copied. On a configuration problem err starts with the setting's
 * name. */
sup_ctl_t *sup_ctl_new(void *zctx, const dip_config_t *cfg, const char *owner,
                       sup_store_t *store, mongoc_client_t *client,
                       const char *db, const sup_ctl_host_t *host, char *err,
                       size_t errlen);
void sup_ctl_destroy(sup_ctl_t **self_p);

/* Writes the control sockets' poll items (at most max) into items; returns
 * how many. */
int sup_ctl_poll_items(sup_ctl_t *self, zmq_pollitem_t *items, int max);

/* Serves what zmq_poll found ready on the n items sup_ctl_poll_items
 * wrote: answers a bounded number of requests per call, so a flood cannot
 * starve the workers' events. */
void sup_ctl_serve(sup_ctl_t *self, const zmq_pollitem_t *items, int n);

/* Called at each lease renewal: carries out the pause and cancel requests
 * recorded (by other supervisors) on the imports this one runs, then clears
 * them. */
void sup_ctl_renewal(sup_ctl_t *self);

/* The authorised client keys are read again before the next handshake
 * (SIGHUP); otherwise they are read again only when their directory
 * changes. */
void sup_ctl_reload_keys(sup_ctl_t *self);

/* The ipc endpoint, for the log. */
const char *sup_ctl_endpoint(const sup_ctl_t *self);

#endif
