/*
 * sup_metrics: keeps the supervisor's figures behind one mutex and writes
 * them as Prometheus text. The loop only ever adds to numbers under the
 * lock; a render copies the numbers out under it and formats outside it,
 * so neither side waits on the other for longer than a copy.
 */
#include "dip_time.h"
#include "sup_metrics_private.h"
#include "dip_exit.h"
#include "sup_sampler.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

const double sup_metrics_duration_bounds[SUP_METRICS_NBOUNDS] = {
    1, 5, 15, 60, 300, 900, 3600, 7200, 21600, 86400};
const double sup_metrics_rate_bounds[SUP_METRICS_NBOUNDS] = {
    10, 50, 100, 500, 1000, 5000, 10000, 25000, 50000, 100000};

static const char *const exit_names[SUP_METRICS_EXIT_NCAUSES] = {
    "completed", "signal",     "memory_limit", "silent",
    "timeout",   "lease_lost", "error",
};

/* Fixed lists: the only label values of their families. */
const char *const sup_metrics_ended_names[SUP_METRICS_NENDED] = {
    "completed", "failed", "cancelled"};
const char *const sup_metrics_released_names[SUP_METRICS_NRELEASED] = {
    "pending", "paused"};
const char *const sup_metrics_followup_names[SUP_METRICS_NFOLLOWUP] = {
    "done", "retry", "failed"};
const char *const sup_metrics_notify_names[SUP_METRICS_NNOTIFY] = {
    "delivered", "retry", "given_up"};
const char *const sup_metrics_queue_names[SUP_METRICS_Q_NSTATUSES] = {
    "pending", "processing", "paused"};
const char *const sup_metrics_unclaimable_names[SUP_METRICS_NUNCLAIMABLE] = {
    "set_aside", "failed"};

#define NENDED SUP_METRICS_NENDED
#define NRELEASED SUP_METRICS_NRELEASED
#define ended_names sup_metrics_ended_names
#define released_names sup_metrics_released_names
typedef sup_metrics_account_t account_t;
typedef sup_metrics_histogram_t histogram_t;
typedef sup_metrics_figures_t figures_t;

const char *sup_metrics_exit_name(sup_metrics_exit_t cause)
{
    return (unsigned)cause < SUP_METRICS_EXIT_NCAUSES ? exit_names[cause]
                                                      : "error";
}

sup_metrics_exit_t sup_metrics_exit_cause(int wait_status, int done, int oom,
                                          sup_metrics_exit_t killed_for)
{
    if (oom)
        return SUP_METRICS_EXIT_MEMORY;
    if (killed_for != SUP_METRICS_EXIT_COMPLETED)
        return killed_for;
    if (done)
        return SUP_METRICS_EXIT_COMPLETED;
    if (WIFSIGNALED(wait_status))
        return SUP_METRICS_EXIT_SIGNAL;
    return SUP_METRICS_EXIT_ERROR;
}

sup_metrics_t *sup_metrics_new(void)
{
    sup_metrics_t *self = calloc(1, sizeof(*self));
    if (self == NULL)
        return NULL;
    if (pthread_mutex_init(&self->lock, NULL) != 0) {
        free(self);
        return NULL;
    }
    self->f.oldest_pending_ms = -1;
    for (int i = 0; i < SUP_METRICS_Q_NSTATUSES; i++)
        self->f.queued[i] = -1;
    {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        self->start_wall_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
        /* The start counts as a turn: a loop still starting (its indexes
         * checked against a slow database) is not yet a stuck one. */
        self->f.loop_turn_ms = dip_time_mono_ms();
    }
    return self;
}

void sup_metrics_destroy(sup_metrics_t **self_p)
{
    sup_metrics_t *self;
    if (self_p == NULL || *self_p == NULL)
        return;
    self = *self_p;
    sup_metrics_http_stop(&self->http);
    sup_sampler_destroy(&self->sampler);
    pthread_mutex_destroy(&self->lock);
    free(self->f.accounts);
    free(self);
    *self_p = NULL;
}

/* ---- events --------------------------------------------------------- */

void sup_metrics_claim(sup_metrics_t *self, int rc)
{
    if (self == NULL || rc == 0)
        return;
    pthread_mutex_lock(&self->lock);
    if (rc > 0)
        self->f.claims++;
    else
        self->f.claim_failures++;
    pthread_mutex_unlock(&self->lock);
}

void sup_metrics_unclaimable(sup_metrics_t *self, int marked)
{
    if (self == NULL)
        return;
    pthread_mutex_lock(&self->lock);
    self->f.unclaimable[marked ? 1 : 0]++;
    pthread_mutex_unlock(&self->lock);
}

void sup_metrics_followup_given_up(sup_metrics_t *self)
{
    if (self == NULL)
        return;
    pthread_mutex_lock(&self->lock);
    self->f.followups_given_up++;
    pthread_mutex_unlock(&self->lock);
}

void sup_metrics_refused_handshake(sup_metrics_t *self)
{
    if (self == NULL)
        return;
    pthread_mutex_lock(&self->lock);
    self->f.refused_handshakes++;
    pthread_mutex_unlock(&self->lock);
}

void sup_metrics_renewal(sup_metrics_t *self, int rc)
{
    if (self == NULL)
        return;
    pthread_mutex_lock(&self->lock);
    self->f.renewals++;
    if (rc < 0)
        self->f.renewal_failures++;
    pthread_mutex_unlock(&self->lock);
}

/* The account's entry, made when absent (NULL only when out of memory). */
static account_t *account_slot(sup_metrics_t *self, const char *id)
{
    figures_t *f = &self->f;
    account_t *a;
    for (size_t i = 0; i < f->naccounts; i++)
        if (strcmp(f->accounts[i].id, id) == 0)
            return &f->accounts[i];
    if (f->naccounts == self->accounts_cap) {
        size_t cap = self->accounts_cap ? 2 * self->accounts_cap : 16;
        account_t *grown = realloc(f->accounts, cap * sizeof(*grown));
        if (grown == NULL)
            return NULL;
        f->accounts = grown;
        self->accounts_cap = cap;
    }
    a = &f->accounts[f->naccounts++];
    memset(a, 0, sizeof(*a));
    snprintf(a->id, sizeof(a->id), "%s", id);
    return a;
}

void sup_metrics_worker_started(sup_metrics_t *self, const bson_oid_t *account)
{
    account_t *a;
    char hex[25];
    if (self == NULL)
        return;
    bson_oid_to_string(account, hex);
    pthread_mutex_lock(&self->lock);
    self->f.running++;
    if ((a = account_slot(self, hex)) != NULL)
        a->running++;
    pthread_mutex_unlock(&self->lock);
}

void sup_metrics_worker_exited(sup_metrics_t *self, const bson_oid_t *account,
                               sup_metrics_exit_t cause)
{
    figures_t *f;
    char hex[25];
    if (self == NULL)
        return;
    bson_oid_to_string(account, hex);
    pthread_mutex_lock(&self->lock);
    f = &self->f;
    f->exits[(unsigned)cause < SUP_METRICS_EXIT_NCAUSES
                 ? cause
                 : SUP_METRICS_EXIT_ERROR]++;
    if (f->running > 0)
        f->running--;
    for (size_t i = 0; i < f->naccounts; i++) {
        if (strcmp(f->accounts[i].id, hex) != 0)
            continue;
        /* Only accounts with running workers are kept: the table never
         * holds more entries than there are worker slots. */
        if (--f->accounts[i].running <= 0)
            f->accounts[i] = f->accounts[--f->naccounts];
        break;
    }
    pthread_mutex_unlock(&self->lock);
}

static uint64_t positive(int64_t v)
{
    return v > 0 ? (uint64_t)v : 0;
}

void sup_metrics_progress(sup_metrics_t *self, int64_t rows_added,
                          int64_t line_errors, int64_t bytes,
                          int64_t db_round_trips)
{
    if (self == NULL)
        return;
    pthread_mutex_lock(&self->lock);
    self->f.rows_added += positive(rows_added);
    self->f.line_errors += positive(line_errors);
    self->f.bytes += positive(bytes);
    self->f.round_trips += positive(db_round_trips);
    pthread_mutex_unlock(&self->lock);
}

static void observe(histogram_t *h, const double *bounds, double v)
{
    size_t i = 0, n = SUP_METRICS_NBOUNDS;
    while (i < n && v > bounds[i])
        i++;
    if (i < n)
        h->counts[i]++;
    else
        h->inf++;
    h->n++;
    h->sum += v;
}

static int status_index(const char *const *names, size_t n, const char *s)
{
    for (size_t i = 0; s && i < n; i++)
        if (strcmp(names[i], s) == 0)
            return (int)i;
    return -1;
}

void sup_metrics_import_ended(sup_metrics_t *self, const char *status,
                              int64_t duration_ms, int64_t lines)
{
    int i = status_index(ended_names, NENDED, status);
    double secs = duration_ms > 0 ? (double)duration_ms / 1000.0 : 0.0;
    if (self == NULL || i < 0)
        return;
    pthread_mutex_lock(&self->lock);
    self->f.ended[i]++;
    observe(&self->f.duration, sup_metrics_duration_bounds, secs);
    /* A rate over no time says nothing: such imports are left out. */
    if (secs > 0)
        observe(&self->f.rate, sup_metrics_rate_bounds,
                (double)(lines > 0 ? lines : 0) / secs);
    pthread_mutex_unlock(&self->lock);
}

void sup_metrics_import_released(sup_metrics_t *self, const char *status)
{
    int i = status_index(released_names, NRELEASED, status);
    if (self == NULL || i < 0)
        return;
    pthread_mutex_lock(&self->lock);
    self->f.released[i]++;
    pthread_mutex_unlock(&self->lock);
}

void sup_metrics_step_escalated(sup_metrics_t *self)
{
    if (self == NULL)
        return;
    pthread_mutex_lock(&self->lock);
    self->f.step_escalations++;
    pthread_mutex_unlock(&self->lock);
}

void sup_metrics_oldest_pending(sup_metrics_t *self, int64_t created_ms)
{
    if (self == NULL)
        return;
    pthread_mutex_lock(&self->lock);
    self->f.oldest_pending_ms = created_ms;
    pthread_mutex_unlock(&self->lock);
}

/* ---- setters -------------------------------------------------------- */

void sup_metrics_set_limits(sup_metrics_t *self, const dip_config_t *cfg)
{
    sup_metrics_limits_t l;
    if (self == NULL || cfg == NULL)
        return;
    l.max_workers = cfg->max_workers;
    l.per_account = cfg->max_workers_per_account;
    l.memory_mb = cfg->worker_memory_mb;
    l.cpu_s = cfg->worker_cpu_s;
    l.timeout_s = cfg->worker_timeout_s;
    l.lease_s = cfg->lease_s;
    pthread_mutex_lock(&self->lock);
    self->f.limits = l;
    pthread_mutex_unlock(&self->lock);
}

void sup_metrics_loop_turn(sup_metrics_t *self, int64_t mono_ms)
{
    if (self == NULL)
        return;
    pthread_mutex_lock(&self->lock);
    self->f.loop_turn_ms = mono_ms;
    pthread_mutex_unlock(&self->lock);
}

void sup_metrics_keeper_round(sup_metrics_t *self, int64_t mono_ms, size_t held,
                              int rc)
{
    if (self == NULL)
        return;
    pthread_mutex_lock(&self->lock);
    self->f.keeper_round_ms = mono_ms;
    self->f.keeper_failed = held > 0 && rc < 0;
    pthread_mutex_unlock(&self->lock);
}

void sup_metrics_db_checked(sup_metrics_t *self, int64_t mono_ms, int up)
{
    if (self == NULL)
        return;
    pthread_mutex_lock(&self->lock);
    self->f.db_checked_ms = mono_ms;
    self->f.db_up = up != 0;
    pthread_mutex_unlock(&self->lock);
}

void sup_metrics_queue_counts(sup_metrics_t *self,
                              const int64_t counts[SUP_METRICS_Q_NSTATUSES])
{
    if (self == NULL)
        return;
    pthread_mutex_lock(&self->lock);
    for (int i = 0; i < SUP_METRICS_Q_NSTATUSES; i++)
        if (counts[i] >= 0)
            self->f.queued[i] = counts[i];
    pthread_mutex_unlock(&self->lock);
}

void sup_metrics_sample_failed(sup_metrics_t *self)
{
    if (self == NULL)
        return;
    pthread_mutex_lock(&self->lock);
    self->f.sample_failures++;
    pthread_mutex_unlock(&self->lock);
}

void sup_metrics_followup_ended(sup_metrics_t *self, int wait_status)
{
    int i = 2;
    if (self == NULL)
        return;
    /* done: also when a step was given up (DIP_EXIT_GAVE_UP), which
     * dealimport_followups_given_up_total counts besides */
    if (WIFEXITED(wait_status) &&
        (WEXITSTATUS(wait_status) == 0 ||
         WEXITSTATUS(wait_status) == DIP_EXIT_GAVE_UP))
        i = 0;
    else if (WIFEXITED(wait_status) &&
             WEXITSTATUS(wait_status) == DIP_EXIT_TEMPFAIL)
        i = 1;
    pthread_mutex_lock(&self->lock);
    self->f.followups[i]++;
    pthread_mutex_unlock(&self->lock);
}

void sup_metrics_notification(sup_metrics_t *self, const char *outcome)
{
    /* sup_event's words for an attempt's outcome, in label order. */
    static const char *const words[SUP_METRICS_NNOTIFY] = {"delivered",
                                                           "pending", "failed"};
    int i = status_index(words, SUP_METRICS_NNOTIFY, outcome);
    if (self == NULL || i < 0)
        return;
    pthread_mutex_lock(&self->lock);
    self->f.notify[i]++;
    pthread_mutex_unlock(&self->lock);
}

int sup_metrics_snapshot(sup_metrics_t *self, sup_metrics_figures_t *out)
{
    int rc = 0;
    pthread_mutex_lock(&self->lock);
    *out = self->f;
    out->accounts = NULL;
    if (self->f.naccounts > 0) {
        out->accounts = malloc(self->f.naccounts * sizeof(account_t));
        if (out->accounts)
            memcpy(out->accounts, self->f.accounts,
                   self->f.naccounts * sizeof(account_t));
        else
            rc = -1;
    }
    pthread_mutex_unlock(&self->lock);
    return rc;
}

void sup_metrics_http_dropped(sup_metrics_t *self, sup_metrics_http_drop_t why)
{
    if (self == NULL || why <= SUP_METRICS_HTTP_DROP_NONE ||
        why >= SUP_METRICS_HTTP_NDROPS)
        return;
    pthread_mutex_lock(&self->lock);
    self->f.http_drops[why]++;
    pthread_mutex_unlock(&self->lock);
}

/* ---- health --------------------------------------------------------- */

void sup_metrics_health_facts(sup_metrics_t *self, int64_t now_ms,
                              sup_metrics_health_t *out)
{
    memset(out, 0, sizeof(*out));
    out->now_ms = now_ms;
    out->sample_every_ms = SUP_SAMPLER_EVERY_MS;
    if (self == NULL)
        return;
    pthread_mutex_lock(&self->lock);
    out->loop_turn_ms = self->f.loop_turn_ms;
    out->db_checked_ms = self->f.db_checked_ms;
    out->db_up = self->f.db_up;
    out->keeper_round_ms = self->f.keeper_round_ms;
    out->keeper_failed = self->f.keeper_failed;
    out->lease_ms = self->f.limits.lease_s * 1000;
    pthread_mutex_unlock(&self->lock);
}

int sup_metrics_live(const sup_metrics_health_t *h, char *why, size_t whylen)
{
    if (h->loop_turn_ms <= 0) {
        snprintf(why, whylen, "the loop has not turned yet");
        return 0;
    }
    if (h->now_ms - h->loop_turn_ms > SUP_METRICS_LIVE_MS) {
        snprintf(why, whylen, "the loop has not turned for %lld s",
                 (long long)((h->now_ms - h->loop_turn_ms) / 1000));
        return 0;
    }
    snprintf(why, whylen, "the loop turns");
    return 1;
}

int sup_metrics_ready(const sup_metrics_health_t *h, char *why, size_t whylen)
{
    int64_t db_age = h->now_ms - h->db_checked_ms;
    int64_t keeper_age = h->now_ms - h->keeper_round_ms;
    if (h->db_checked_ms <= 0) {
        snprintf(why, whylen, "database unavailable: not checked yet");
        return 0;
    }
    if (!h->db_up) {
        snprintf(why, whylen,
                 "database unavailable: it did not answer "
                 "the last check");
        return 0;
    }
    if (db_age > 3 * h->sample_every_ms) {
        snprintf(why, whylen,
                 "database unavailable: its check has not answered for "
                 "%lld s",
                 (long long)(db_age / 1000));
        return 0;
    }
    if (h->keeper_round_ms <= 0) {
        snprintf(why, whylen, "the lease keeper has not run yet");
        return 0;
    }
    if (h->lease_ms > 0 && keeper_age > h->lease_ms / 2) {
        snprintf(why, whylen,
                 "the lease keeper has not finished a round for %lld s",
                 (long long)(keeper_age / 1000));
        return 0;
    }
    if (h->keeper_failed) {
        snprintf(why, whylen, "the lease keeper's last renewal failed");
        return 0;
    }
    snprintf(why, whylen, "ready");
    return 1;
}

/* ---- the listener --------------------------------------------------- */

int sup_metrics_start(sup_metrics_t *self, const dip_config_t *cfg, char *err,
                      size_t errlen)
{
    sup_metrics_set_limits(self, cfg);
    if (cfg->metrics_addr && self->http == NULL &&
        sup_metrics_listen(self, cfg->metrics_addr, err, errlen) < 0)
        return -1;
    return 0;
}

int sup_metrics_start_sampler(sup_metrics_t *self, const dip_config_t *cfg,
                              char *err, size_t errlen)
{
    if (self->sampler == NULL &&
        (self->sampler = sup_sampler_new(cfg, self, err, errlen)) == NULL)
        return -1;
    return 0;
}

int sup_metrics_listen(sup_metrics_t *self, const char *addr, char *err,
                       size_t errlen)
{
    if (self->http != NULL) {
        snprintf(err, errlen, "DEALIMPORT_METRICS_ADDR: already listening");
        return -1;
    }
    self->http = sup_metrics_http_start(self, addr, err, errlen);
    return self->http ? 0 : -1;
}

int sup_metrics_port(const sup_metrics_t *self)
{
    return self ? sup_metrics_http_port(self->http) : 0;
}
