/*
 * sup_sampler: one thread, one client, one sample per period: a ping, three
 * capped counts and one indexed find, each with maxTimeMS, handed to
 * sup_metrics under the sampler's lock unless it is being stopped.
 */
#include "dip_time.h"
#include "sup_sampler.h"
#include "dip_bson.h"
#include "dip_log.h"
#include "dip_mongo_io.h"
#include "sup_store.h"
#include "sup_thread.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mongoc/mongoc.h>

struct sup_sampler {
    sup_thread_t t;         /* its lock also guards what follows */
    sup_metrics_t *metrics; /* borrowed; used only under lock, before stop */
    mongoc_client_t *client;
    mongoc_collection_t *queues;
    int64_t max_time_ms;
};

static int ping(sup_sampler_t *self)
{
    bson_t *cmd = BCON_NEW("ping", BCON_INT32(1));
    bson_error_t e;
    int ok = mongoc_client_command_simple(self->client, "admin", cmd, NULL,
                                          NULL, &e);
    if (!ok)
        dip_log(DIP_LOG_DEBUG, NULL, "sampler: the database did not answer: %s",
                e.message);
    bson_destroy(cmd);
    return ok;
}

/* Imports of one status, at most SUP_SAMPLER_COUNT_CAP; -1 on error. */
static int64_t count(sup_sampler_t *self, const char *status)
{
    bson_t *filter =
        BCON_NEW("source", BCON_UTF8("deals"), "status", BCON_UTF8(status));
    bson_t *opts = BCON_NEW("limit", BCON_INT64(SUP_SAMPLER_COUNT_CAP),
                            "maxTimeMS", BCON_INT64(self->max_time_ms));
    bson_error_t e;
    int64_t n = mongoc_collection_count_documents(self->queues, filter, opts,
                                                  NULL, NULL, &e);
    if (n < 0)
        dip_log(DIP_LOG_DEBUG, NULL, "sampler: counting '%s' imports: %s",
                status, e.message);
    bson_destroy(opts);
    bson_destroy(filter);
    return n;
}

/* The oldest pending import's created_at: 1 found, 0 none, -1 error. */
static int oldest_pending(sup_sampler_t *self, int64_t *created_ms)
{
    bson_t *filter =
        BCON_NEW("source", BCON_UTF8("deals"), "status", BCON_UTF8("pending"));
    bson_t *opts = BCON_NEW(
        "sort", "{", "created_at", BCON_INT32(1), "}", "projection", "{",
        "created_at", BCON_INT32(1), "}", "limit", BCON_INT64(1), "singleBatch",
        BCON_BOOL(true), "maxTimeMS", BCON_INT64(self->max_time_ms));
    mongoc_cursor_t *c =
        mongoc_collection_find_with_opts(self->queues, filter, opts, NULL);
    const bson_t *doc;
    bson_error_t e;
    bson_iter_t it;
    int rc = 0;
    if (mongoc_cursor_next(c, &doc)) {
        rc = 1;
        /* A created_at that is not a date (a CRM's bug) says nothing of
         * the age: counted as just now, not as 1970. */
        *created_ms = dip_bson_now_ms();
        if (bson_iter_init_find(&it, doc, "created_at") &&
            BSON_ITER_HOLDS_DATE_TIME(&it))
            *created_ms = bson_iter_date_time(&it);
    }
    if (mongoc_cursor_error(c, &e)) {
        dip_log(DIP_LOG_DEBUG, NULL, "sampler: the oldest pending import: %s",
                e.message);
        rc = -1;
    }
    mongoc_cursor_destroy(c);
    bson_destroy(opts);
    bson_destroy(filter);
    return rc;
}

/* One sample; the lock is not held meanwhile. */
static void sample(sup_sampler_t *self)
{
    static const char *const names[SUP_METRICS_Q_NSTATUSES] = {
        "pending", "processing", "paused"};
    int64_t counts[SUP_METRICS_Q_NSTATUSES], created = -1, checked;
    int up = ping(self), failures = 0, old = -1;
    checked = dip_time_mono_ms();
    for (int i = 0; i < SUP_METRICS_Q_NSTATUSES; i++) {
        counts[i] = up ? count(self, names[i]) : -1;
        failures += up && counts[i] < 0;
    }
    if (up) {
        old = oldest_pending(self, &created);
        failures += old < 0;
    }
    pthread_mutex_lock(&self->t.lock);
    if (!self->t.stop) {
        sup_metrics_db_checked(self->metrics, checked, up);
        sup_metrics_queue_counts(self->metrics, counts);
        if (old >= 0)
            sup_metrics_oldest_pending(self->metrics, old > 0 ? created : -1);
        for (int i = 0; i < failures; i++)
            sup_metrics_sample_failed(self->metrics);
    }
    pthread_mutex_unlock(&self->t.lock);
}

static void *run(void *arg)
{
    sup_sampler_t *self = arg;
    pthread_mutex_lock(&self->t.lock);
    while (!self->t.stop) {
        pthread_mutex_unlock(&self->t.lock);
        sample(self);
        pthread_mutex_lock(&self->t.lock);
        sup_thread_nap(&self->t, SUP_SAMPLER_EVERY_MS);
    }
    sup_thread_exit(&self->t);
    return NULL;
}

sup_sampler_t *sup_sampler_new(const dip_config_t *cfg, sup_metrics_t *metrics,
                               char *err, size_t errlen)
{
    sup_sampler_t *self = calloc(1, sizeof(*self));
    const char *db = NULL;
    long sock;
    if (self == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    self->metrics = metrics;
    sup_thread_init(&self->t);
    self->client = dip_mongo_client_new_bounded(
        cfg->mongodb_uri, "dealimport-supervisor", sup_store_budget_ms(cfg),
        &db, err, errlen);
    if (self->client == NULL)
        goto fail;
    self->queues = mongoc_client_get_collection(self->client, db, "queues");
    /* Below the socket timeout, so that the server gives up first. */
    sock = sup_store_budget_ms(cfg) / 4;
    self->max_time_ms = SUP_SAMPLER_MAX_TIME_MS;
    if (sock / 2 < self->max_time_ms)
        self->max_time_ms = sock / 2 > 100 ? sock / 2 : 100;
    if (sup_thread_start(&self->t, run, self, "queue sampler", err, errlen) < 0)
        goto fail;
    return self;
fail:
    sup_sampler_destroy(&self);
    return NULL;
}

void sup_sampler_destroy(sup_sampler_t **self_p)
{
    sup_sampler_t *self;
    if (self_p == NULL || *self_p == NULL)
        return;
    self = *self_p;
    *self_p = NULL;
    if (!sup_thread_stop(&self->t, 1000))
        /* Blocked in the driver: the process is exiting, which ends
         * the thread too; it will not touch the metrics (stop). */
        return;
    if (self->queues)
        mongoc_collection_destroy(self->queues);
    dip_mongo_client_close(self->client);
    sup_thread_fini(&self->t);
    free(self);
}
