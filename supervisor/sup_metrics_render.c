/*
 * sup_metrics_render: the figures as Prometheus text (format 0.0.4), HELP
 * and TYPE before each family, from a copy taken under the lock, and the
 * process's own figures read from /proc outside it.
 */
#include "dip_time.h"
#include "sup_metrics_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int by_running_desc(const void *a, const void *b)
{
    const sup_metrics_account_t *x = a, *y = b;
    if (x->running != y->running)
        return x->running > y->running ? -1 : 1;
    return strcmp(x->id, y->id);
}

static void header(FILE *o, const char *name, const char *type,
                   const char *help)
{
    fprintf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void counter(FILE *o, const char *name, const char *help, uint64_t v)
{
    header(o, name, "counter", help);
    fprintf(o, "%s %llu\n", name, (unsigned long long)v);
}

static void gauge(FILE *o, const char *name, const char *help, double v)
{
    header(o, name, "gauge", help);
    fprintf(o, "%s %.17g\n", name, v);
}

static void labelled(FILE *o, const char *name, const char *type,
                     const char *help, const char *label,
                     const char *const *values, const uint64_t *counts,
                     size_t n)
{
    header(o, name, type, help);
    for (size_t i = 0; i < n; i++)
        fprintf(o, "%s{%s=\"%s\"} %llu\n", name, label, values[i],
                (unsigned long long)counts[i]);
}

static void histogram(FILE *o, const char *name, const char *help,
                      const sup_metrics_histogram_t *h, const double *bounds)
{
    uint64_t cum = 0;
    header(o, name, "histogram", help);
    for (size_t i = 0; i < SUP_METRICS_NBOUNDS; i++) {
        cum += h->counts[i];
        fprintf(o, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i],
                (unsigned long long)cum);
    }
    fprintf(o, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)h->n);
    fprintf(o, "%s_sum %.17g\n%s_count %llu\n", name, h->sum, name,
            (unsigned long long)h->n);
}

static void accounts(FILE *o, sup_metrics_figures_t *f)
{
    long other = 0;
    header(o, "dealimport_account_workers_running", "gauge",
           "Worker processes running now for the accounts with the most, "
           "the rest under account=\"other\".");
    if (f->naccounts > 1)
        qsort(f->accounts, f->naccounts, sizeof(sup_metrics_account_t),
              by_running_desc);
    for (size_t i = 0; i < f->naccounts; i++) {
        if (i < SUP_METRICS_TOP_ACCOUNTS)
            fprintf(o,
                    "dealimport_account_workers_running{account=\"%s\"} "
                    "%ld\n",
                    f->accounts[i].id, f->accounts[i].running);
        else
            other += f->accounts[i].running;
    }
    fprintf(o, "dealimport_account_workers_running{account=\"other\"} %ld\n",
            other);
}

static void limits(FILE *o, const sup_metrics_limits_t *l)
{
    header(o, "dealimport_worker_limit", "gauge",
           "The limits in force: worker slots (workers), per account "
           "(per_account), per-worker memory in bytes (memory_bytes), CPU "
           "seconds (cpu_seconds) and wall-clock seconds (timeout_seconds).");
    fprintf(o, "dealimport_worker_limit{limit=\"workers\"} %ld\n",
            l->max_workers);
    fprintf(o, "dealimport_worker_limit{limit=\"per_account\"} %ld\n",
            l->per_account);
    fprintf(o, "dealimport_worker_limit{limit=\"memory_bytes\"} %lld\n",
            (long long)l->memory_mb * 1024 * 1024);
    fprintf(o, "dealimport_worker_limit{limit=\"cpu_seconds\"} %ld\n",
            l->cpu_s);
    fprintf(o, "dealimport_worker_limit{limit=\"timeout_seconds\"} %ld\n",
            l->timeout_s);
}

static void queue(FILE *o, const sup_metrics_figures_t *f, int64_t now_ms)
{
    header(o, "dealimport_imports", "gauge",
           "Imports in the queue by status, on all supervisors, as the "
           "sampler last read them (absent until it has).");
    for (int i = 0; i < SUP_METRICS_Q_NSTATUSES; i++)
        if (f->queued[i] >= 0)
            fprintf(o, "dealimport_imports{status=\"%s\"} %lld\n",
                    sup_metrics_queue_names[i], (long long)f->queued[i]);
    gauge(o, "dealimport_oldest_pending_import_age_seconds",
          "Age of the oldest pending import, 0 when none is pending.",
          f->oldest_pending_ms >= 0 && now_ms > f->oldest_pending_ms
              ? (double)(now_ms - f->oldest_pending_ms) / 1000.0
              : 0.0);
    counter(o, "dealimport_queue_sample_failures_total",
            "Queue sampler queries that failed or ran out of their time.",
            f->sample_failures);
}

static void process(FILE *o, int64_t start_wall_ms)
{
    sup_metrics_proc_t p;
    if (sup_metrics_proc_read(&p) < 0) {
        /* Without /proc the start time is still known. */
        memset(&p, 0, sizeof(p));
        p.open_fds = p.max_fds = -1;
        p.start_time_seconds = (double)start_wall_ms / 1000.0;
    }
    header(o, "process_cpu_seconds_total", "counter",
           "User and system CPU time spent, in seconds.");
    fprintf(o, "process_cpu_seconds_total %.17g\n", p.cpu_seconds);
    gauge(o, "process_resident_memory_bytes", "Resident memory, in bytes.",
          (double)p.resident_bytes);
    gauge(o, "process_virtual_memory_bytes", "Virtual memory, in bytes.",
          (double)p.virtual_bytes);
    gauge(o, "process_start_time_seconds",
          "Start time of the process since the epoch, in seconds.",
          p.start_time_seconds);
    if (p.open_fds >= 0)
        gauge(o, "process_open_fds", "Open file descriptors.",
              (double)p.open_fds);
    if (p.max_fds >= 0)
        gauge(o, "process_max_fds", "The limit of open file descriptors.",
              (double)p.max_fds);
}

char *sup_metrics_render(sup_metrics_t *self, int64_t now_ms)
{
    sup_metrics_figures_t f;
    char *text = NULL;
    size_t len = 0;
    FILE *o = NULL;

    if (self == NULL || sup_metrics_snapshot(self, &f) < 0)
        return NULL;
    o = open_memstream(&text, &len);
    if (o == NULL)
        goto cleanup;

    header(o, "dealimport_build_info", "gauge",
           "Always 1; the labels name the build.");
    fprintf(o, "dealimport_build_info{version=\"%s\"} 1\n", DEALIMPORT_VERSION);
    {
        /* The readiness rule's own verdict on the database, so that the
         * gauge and /readyz never disagree (a check stuck in the driver
         * is no answer). */
        sup_metrics_health_t h;
        char why[160];
        sup_metrics_health_facts(self, dip_time_mono_ms(), &h);
        h.keeper_round_ms = h.now_ms; /* the keeper is not the question */
        h.keeper_failed = 0;
        gauge(o, "dealimport_database_up",
              "1 when the database answered the sampler's last check, made "
              "within three of its periods, else 0.",
              sup_metrics_ready(&h, why, sizeof(why)) ? 1.0 : 0.0);
    }
    limits(o, &f.limits);
    labelled(o, "dealimport_imports_ended_total", "counter",
             "Imports this supervisor ended, by final status.", "status",
             sup_metrics_ended_names, f.ended, SUP_METRICS_NENDED);
    labelled(o, "dealimport_imports_released_total", "counter",
             "Imports handed back unfinished, by the status they got.",
             "status", sup_metrics_released_names, f.released,
             SUP_METRICS_NRELEASED);
    counter(o, "dealimport_db_step_escalations_total",
            "Retried database steps that failed five times in a row.",
            f.step_escalations);
    counter(o, "dealimport_rows_added_total",
            "Deals the workers added to the database.", f.rows_added);
    counter(o, "dealimport_line_errors_total",
            "CSV lines the workers rejected with a line error.", f.line_errors);
    counter(o, "dealimport_downloaded_bytes_total",
            "CSV bytes the workers read from storage.", f.bytes);
    counter(o, "dealimport_worker_db_round_trips_total",
            "Database round trips the workers made.", f.round_trips);
    header(o, "dealimport_worker_exits_total", "counter",
           "Worker processes that ended, by cause.");
    for (int i = 0; i < SUP_METRICS_EXIT_NCAUSES; i++)
        fprintf(o, "dealimport_worker_exits_total{cause=\"%s\"} %llu\n",
                sup_metrics_exit_name((sup_metrics_exit_t)i),
                (unsigned long long)f.exits[i]);
    counter(o, "dealimport_claims_total", "Imports claimed from the queue.",
            f.claims);
    counter(o, "dealimport_claim_failures_total",
            "Claim attempts that failed (database errors).", f.claim_failures);
    labelled(o, "dealimport_unclaimable_documents_total", "counter",
             "Queue documents the claim could not take, ended alone: set "
             "aside for a while, or marked failed.",
             "outcome", sup_metrics_unclaimable_names, f.unclaimable,
             SUP_METRICS_NUNCLAIMABLE);
    counter(o, "dealimport_followups_given_up_total",
            "Imports whose follow-ups ended with a step given up (the error "
            "file or the source's deletion; csv_imports says which).",
            f.followups_given_up);
    counter(o, "dealimport_control_refused_handshakes_total",
            "CURVE handshakes on the control TCP port refused (a key not "
            "authorised).",
            f.refused_handshakes);
    counter(o, "dealimport_lease_renewals_total",
            "Lease renewal rounds over the imports this supervisor runs.",
            f.renewals);
    counter(o, "dealimport_lease_renewal_failures_total",
            "Lease renewal rounds that failed.", f.renewal_failures);
    labelled(o, "dealimport_followups_total", "counter",
             "Follow-up runs (error file, source cleanup, event release) "
             "this supervisor started, by how they ended.",
             "outcome", sup_metrics_followup_names, f.followups,
             SUP_METRICS_NFOLLOWUP);
    labelled(o, "dealimport_notifications_total", "counter",
             "Completion event delivery attempts, by outcome (retry: tried "
             "again later; given_up: never delivered).",
             "outcome", sup_metrics_notify_names, f.notify,
             SUP_METRICS_NNOTIFY);

    header(o, "dealimport_workers_running", "gauge",
           "Worker processes running now.");
    fprintf(o, "dealimport_workers_running %ld\n", f.running);
    accounts(o, &f);
    queue(o, &f, now_ms);

    histogram(o, "dealimport_import_duration_seconds",
              "Time from claim to final status of the imports ended here.",
              &f.duration, sup_metrics_duration_bounds);
    histogram(o, "dealimport_import_rows_per_second",
              "Lines per second of the imports ended here.", &f.rate,
              sup_metrics_rate_bounds);
    header(o, "dealimport_metrics_http_dropped_total", "counter",
           "Connections to this listener dropped unanswered: past the "
           "deadline for a whole request, the oldest of an address over "
           "its share, or the oldest when the table was full.");
    {
        static const char *const why[SUP_METRICS_HTTP_NDROPS] = {
            NULL, "deadline", "per_address", "full"};
        for (int i = 1; i < SUP_METRICS_HTTP_NDROPS; i++)
            fprintf(o,
                    "dealimport_metrics_http_dropped_total{reason=\"%s\"} "
                    "%llu\n",
                    why[i], (unsigned long long)f.http_drops[i]);
    }
    process(o, self->start_wall_ms);
    if (fclose(o) != 0) {
        o = NULL;
        free(text);
        text = NULL;
        goto cleanup;
    }
    o = NULL;
cleanup:
    if (o)
        fclose(o);
    free(f.accounts);
    return text;
}
