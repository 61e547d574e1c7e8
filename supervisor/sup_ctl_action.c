/*
 * sup_ctl_action: pause, resume and cancel. Of an import this supervisor
 * runs they go to its worker; of an import no worker runs they change the
 * queue document in one findAndModify on its status; of an import another
 * supervisor runs they are recorded on the document for that supervisor's
 * next lease renewal (sup_ctl_renewal carries out those recorded here).
 */
#include "sup_ctl_priv.h"
#include "dip_bson.h"
#include "dip_ctl.h"
#include "dip_log.h"
#include "dip_time.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ACTION_ATTEMPTS 5
#define RECORDED_PER_RENEWAL 64

static int64_t max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

/* Overlays the live figures of an import this supervisor runs on what the
 * database says (counters only grow, so the larger one is the newer). */
/* The one log line of a pause, resume or cancel: the command, who asked
 * (peer_uid over ipc://, key over TCP), the result and what was done. */
static void log_request(const sup_ctl_t *self, const dip_ctl_request_t *req,
                        int level, const char *result, const char *msg)
{
    const char *name = dip_ctl_cmd_name(req->cmd);
    const sup_ctl_peer_t unknown = {.uid = -1};
    const sup_ctl_peer_t *p = self->asker ? self->asker : &unknown;
    dip_log_field_t f[3];
    size_t n = 0;
    char who[256];
    f[n++] = DIP_LOG_STR("cmd", name);
    if (p->uid >= 0)
        f[n++] = DIP_LOG_NUM("peer_uid", p->uid);
    else if (p->key[0])
        f[n++] = DIP_LOG_STR("key", p->key);
    f[n++] = DIP_LOG_STR("result", result);
    dip_log_fields(level, req->id[0] ? req->id : NULL, f, n,
                   "%s requested by %s: %s", name,
                   sup_ctl_peer_describe(p, who, sizeof(who)), msg);
}

static char *refuse(const sup_ctl_t *self, const dip_ctl_request_t *req,
                    dip_ctl_code_t code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static char *refuse(const sup_ctl_t *self, const dip_ctl_request_t *req,
                    dip_ctl_code_t code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_request(self, req, DIP_LOG_INFO, "refused", msg);
    return dip_ctl_reply_error(code, "%s", msg);
}

static char *action_reply(const sup_ctl_t *self, const dip_ctl_request_t *req,
                          const char *result, const char *status,
                          const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static char *action_reply(const sup_ctl_t *self, const dip_ctl_request_t *req,
                          const char *result, const char *status,
                          const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_request(self, req, DIP_LOG_NOTICE, result, msg);
    return sup_ctl_query_ok(json_pack("{s:s, s:s, s:s, s:s}", "id", req->id,
                                      "result", result, "status", status,
                                      "message", msg));
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
        return refuse(self, req, DIP_CTL_ESTATE,
                      "import '%s' is processing: only a paused "
                      "import can be resumed",
                      req->id);
    if (r->finishing)
        return refuse(self, req, DIP_CTL_ESTATE,
                      "import '%s' is finishing; nothing was "
                      "changed",
                      req->id);
    if (r->requested && strcmp(r->requested, "cancel") == 0 &&
        action == DIP_CONTROL_PAUSE)
        return refuse(self, req, DIP_CTL_ESTATE,
                      "import '%s' is already being cancelled", req->id);
    rc = self->host.control(self->host.ctx, req->id, action);
    if (rc == 0)
        return action_reply(self, req, "signalled", "processing",
                            "import '%s': %s requested; its worker stops "
                            "within seconds, from its last checkpoint",
                            req->id, name);
    if (rc == 1)
        return action_reply(
            self, req, "applied",
            action == DIP_CONTROL_PAUSE ? "paused" : "cancelled",
            "import '%s' is %s (it was waiting to restart)", req->id,
            action == DIP_CONTROL_PAUSE ? "paused" : "cancelled");
    return refuse(self, req, DIP_CTL_EUNAVAIL,
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
            return refuse(self, req, DIP_CTL_ESTATE,
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
            return action_reply(self, req, "applied", "pending",
                                "import '%s' is pending again and resumes at "
                                "line %lld",
                                id, line + 1);
        }
    }
    if (strcmp(st, "processing") == 0) {
        if (owner == NULL || strcmp(owner, self->owner) == 0)
            return refuse(self, req, DIP_CTL_EUNAVAIL,
                          "import '%s' is processing without a "
                          "supervisor to carry out the %s; "
                          "nothing was changed",
                          id, name);
        if (recorded && strcmp(recorded, "cancel") == 0 &&
            req->cmd == DIP_CTL_PAUSE)
            return refuse(self, req, DIP_CTL_ESTATE,
                          "a cancel of import '%s' is already "
                          "recorded",
                          id);
        rc = sup_admin_record(
            self->admin, id, owner, name, self->asker ? self->asker->uid : -1,
            self->asker ? self->asker->key : NULL, err, sizeof(err));
        if (rc < 0)
            return refuse(self, req, DIP_CTL_EUNAVAIL,
                          "the database did not answer: %s", err);
        if (rc == 0)
            return NULL;
        return action_reply(self, req, "recorded", "processing",
                            "import '%s' runs under supervisor '%s': the %s "
                            "is recorded on the import and carried out by "
                            "that supervisor at its next lease renewal "
                            "(within %ld s)",
                            id, owner, name, (self->lease_s + 2) / 3);
    }
    if (req->cmd == DIP_CTL_PAUSE) {
        if (strcmp(st, "paused") == 0)
            return refuse(self, req, DIP_CTL_ESTATE,
                          "import '%s' is already paused", id);
        if (strcmp(st, "pending") != 0)
            return refuse(self, req, DIP_CTL_ESTATE,
                          "import '%s' is %s: only pending and "
                          "processing imports can be paused",
                          id, st);
        to = "paused";
    } else {
        if (strcmp(st, "cancelled") == 0)
            return refuse(self, req, DIP_CTL_ESTATE,
                          "import '%s' is already cancelled", id);
        if (strcmp(st, "pending") != 0 && strcmp(st, "paused") != 0)
            return refuse(self, req, DIP_CTL_ESTATE,
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
        return action_reply(self, req, "applied", "cancelled",
                            "import '%s' is cancelled after line %lld; the "
                            "deals it created stay",
                            id, (long long)lines);
    }
    bson_destroy(&moved);
    return action_reply(self, req, "applied", "paused",
                        "import '%s' is paused; it stays so until resumed", id);
moved:
    if (rc < 0)
        return refuse(self, req, DIP_CTL_EUNAVAIL,
                      "the database did not answer: %s", err);
    return NULL; /* its status changed meanwhile: decide again */
}

char *sup_ctl_action_do(sup_ctl_t *self, const dip_ctl_request_t *req)
{
    sup_ctl_view_t *v = sup_ctl_query_view(self);
    const sup_ctl_run_t *r;
    char err[512];
    if (v->stopping)
        return refuse(self, req, DIP_CTL_EUNAVAIL,
                      "the supervisor is stopping; nothing was "
                      "changed");
    for (int attempt = 0; attempt < ACTION_ATTEMPTS; attempt++) {
        bson_t doc;
        char *reply;
        int rc;
        /* Whether this supervisor runs it can change between attempts: a
         * claim in between moves it here. */
        r = sup_ctl_query_run(sup_ctl_query_view(self), req->id);
        if (r)
            return act_local(self, req, r);
        rc = sup_admin_get(self->admin, req->id, &doc, err, sizeof(err));
        if (rc < 0)
            return refuse(self, req, DIP_CTL_EUNAVAIL,
                          "the database did not answer: %s", err);
        if (rc == 0)
            return refuse(self, req, DIP_CTL_ENOTFOUND,
                          "no import with id '%s'", req->id);
        reply = act_on_doc(self, req, &doc);
        bson_destroy(&doc);
        if (reply)
            return reply;
    }
    return refuse(self, req, DIP_CTL_EUNAVAIL,
                  "import '%s' kept changing status; nothing was "
                  "changed, try again",
                  req->id);
}

/* The line of a request recorded by another supervisor, carried out (or
 * dropped) here: with who asked, as that supervisor recorded it. */
static void log_recorded(const sup_admin_request_t *r, int done)
{
    sup_ctl_peer_t p = {.uid = r->by_uid};
    dip_log_field_t f[3];
    size_t n = 0;
    char who[256];
    snprintf(p.key, sizeof(p.key), "%s", r->by_key);
    f[n++] = DIP_LOG_STR("cmd", r->action[0] ? r->action : "unknown");
    if (p.uid >= 0)
        f[n++] = DIP_LOG_NUM("peer_uid", p.uid);
    else if (p.key[0])
        f[n++] = DIP_LOG_STR("key", p.key);
    f[n++] = DIP_LOG_STR("result", done ? "applied" : "dropped");
    sup_ctl_peer_describe(&p, who, sizeof(who));
    if (done)
        dip_log_fields(DIP_LOG_NOTICE, r->id, f, n,
                       "control: carrying out the %s recorded on the import, "
                       "requested by %s via supervisor '%s'",
                       r->action, who, r->via);
    else
        dip_log_fields(DIP_LOG_WARNING, r->id, f, n,
                       "control: cannot carry out the recorded '%s' requested "
                       "by %s via supervisor '%s'; dropping it",
                       r->action, who, r->via);
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
        log_recorded(&reqs[i], rc >= 0);
        if (sup_admin_clear(self->admin, reqs[i].id, err, sizeof(err)) < 0)
            dip_log(DIP_LOG_WARNING, reqs[i].id, "%s", err);
    }
}
