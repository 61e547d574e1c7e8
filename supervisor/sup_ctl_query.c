/*
 * sup_ctl_query: the control commands that read: status, list, show and
 * metrics, and the sampling of the queue's age for the metrics. What this
 * supervisor runs comes from the loop's view; the rest from MongoDB through
 * sup_admin.
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

/* ---- the supervisor's own imports --------------------------------------- */

sup_ctl_view_t *sup_ctl_query_view(sup_ctl_t *self)
{
    self->view.nruns = 0;
    self->host.view(self->host.ctx, &self->view);
    if (self->view.nruns > self->view.cap)
        self->view.nruns = self->view.cap;
    return &self->view;
}

const sup_ctl_run_t *sup_ctl_query_run(const sup_ctl_view_t *v, const char *id)
{
    for (size_t i = 0; i < v->nruns; i++)
        if (strcmp(v->runs[i].id, id) == 0)
            return &v->runs[i];
    return NULL;
}

/* An integer of the view, or 0 for anything else (a real with a fraction,
 * a string): never a loose conversion. */
static int64_t jint(const json_t *v)
{
    if (json_is_integer(v))
        return (int64_t)json_integer_value(v);
    if (json_is_real(v) && json_real_value(v) > -9e15 &&
        json_real_value(v) < 9e15 &&
        json_real_value(v) == (double)(int64_t)json_real_value(v))
        return (int64_t)json_real_value(v);
    return 0;
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
    int64_t lines = max64(r->lines, jint(json_object_get(o, "lines")));
    int64_t bytes = max64(r->bytes, jint(json_object_get(o, "bytes")));
    int64_t total = r->bytes_total > 0
                        ? r->bytes_total
                        : jint(json_object_get(o, "bytes_total"));
    json_object_set_new(o, "lines", json_integer(lines));
    json_object_set_new(
        o, "added",
        json_integer(max64(r->added, jint(json_object_get(o, "added")))));
    json_object_set_new(
        o, "errors",
        json_integer(max64(r->errors, jint(json_object_get(o, "errors")))));
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

char *sup_ctl_query_ok(json_t *body)
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
    json_object_set_new(o, field,
                        json_integer(jint(json_object_get(o, field)) + n));
}

char *sup_ctl_query_status(sup_ctl_t *self)
{
    sup_ctl_view_t *v = sup_ctl_query_view(self);
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
                          "processing", jint(json_object_get(a, "processing")));
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
    return sup_ctl_query_ok(o);
}

char *sup_ctl_query_list(sup_ctl_t *self, const dip_ctl_request_t *req)
{
    sup_ctl_view_t *v = sup_ctl_query_view(self);
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
            sup_ctl_query_run(v, json_string_value(json_object_get(o, "id")));
        if (r)
            merge_live(self, o, r, now);
    }
    return sup_ctl_query_ok(
        next[0]
            ? json_pack("{s:o, s:b, s:s}", "imports", arr, "truncated",
                        truncated, "next", next)
            : json_pack("{s:o, s:b}", "imports", arr, "truncated", truncated));
}

char *sup_ctl_query_show(sup_ctl_t *self, const dip_ctl_request_t *req)
{
    sup_ctl_view_t *v = sup_ctl_query_view(self);
    const sup_ctl_run_t *r = sup_ctl_query_run(v, req->id);
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
    return sup_ctl_query_ok(o ? json_pack("{s:o}", "import", o) : NULL);
}

char *sup_ctl_query_metrics(sup_ctl_t *self)
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
    return sup_ctl_query_ok(o);
}
