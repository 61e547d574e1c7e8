/*
 * sup_renew: one thread, one database client and one sup_store of its own
 * (a libmongoc client is not to be shared between threads, and the loop's
 * could be busy with a slow call when a renewal is due), a table of held
 * claims under a mutex. The thread copies the table, renews (one fenced
 * update_many, and one read when some claim is gone), and writes the
 * outcome back; the loop only ever takes the mutex for a table lookup.
 */
#include "dip_time.h"
#include "sup_renew.h"
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

typedef struct entry {
    bson_oid_t id;
    int64_t epoch;
    int64_t until_ms;
    int lost;
} entry_t;

struct sup_renew {
    sup_thread_t t; /* its lock also guards what follows */
    mongoc_client_t *client;
    sup_store_t *store;
    sup_metrics_t *metrics; /* borrowed, may be NULL */
    int64_t lease_ms;
    entry_t *entries;
    size_t n, cap;
};

static int renew_once(sup_renew_t *self)
{
    sup_store_held_t *held = NULL;
    size_t n;
    char err[512];
    int64_t sent;
    int rc;

    n = self->n;
    if (n == 0)
        return 0;
    held = calloc(n, sizeof(*held));
    if (held == NULL)
        return -1;
    for (size_t i = 0; i < n; i++) {
        held[i].id.value_type = BSON_TYPE_OID;
        bson_oid_copy(&self->entries[i].id, &held[i].id.value.v_oid);
        held[i].epoch = self->entries[i].epoch;
    }
    pthread_mutex_unlock(&self->t.lock);
    sent = dip_time_mono_ms();
    rc = sup_store_renew(self->store, held, n, err, sizeof(err));
    if (rc < 0)
        dip_log(DIP_LOG_WARNING, NULL, "%s", err);
    pthread_mutex_lock(&self->t.lock);
    /* Under the lock, and not once stopping: the metrics may be gone after
     * sup_renew_destroy, which sets stop under this lock. */
    if (self->metrics && !self->t.stop)
        sup_metrics_renewal(self->metrics, rc);
    /* The table may have changed meanwhile: match by claim. */
    for (size_t i = 0; rc == 0 && i < n; i++)
        for (size_t j = 0; j < self->n; j++) {
            entry_t *e = &self->entries[j];
            if (!bson_oid_equal(&e->id, &held[i].id.value.v_oid) ||
                e->epoch != held[i].epoch)
                continue;
            if (held[i].lost)
                e->lost = 1;
            else if (sent + self->lease_ms > e->until_ms)
                e->until_ms = sent + self->lease_ms;
        }
    free(held);
    return rc < 0 ? -1 : 0;
}

static void *run(void *arg)
{
    sup_renew_t *self = arg;
    pthread_mutex_lock(&self->t.lock);
    while (!self->t.stop) {
        size_t held = self->n;
        int rc = renew_once(self);
        /* Every round, even with nothing to renew: /readyz asks whether
         * this thread still runs. */
        if (self->metrics && !self->t.stop)
            sup_metrics_keeper_round(self->metrics, dip_time_mono_ms(), held,
                                     rc);
        if (!self->t.stop)
            sup_thread_nap(&self->t, self->lease_ms / 6);
    }
    sup_thread_exit(&self->t);
    return NULL;
}

sup_renew_t *sup_renew_new(const dip_config_t *cfg, const char *owner,
                           sup_metrics_t *metrics, char *err, size_t errlen)
{
    sup_renew_t *self = calloc(1, sizeof(*self));
    const char *db = NULL;
    if (self == NULL)
        return NULL;
    self->metrics = metrics;
    self->lease_ms = cfg->lease_s * 1000;
    sup_thread_init(&self->t);
    self->client = dip_mongo_client_new_bounded(
        cfg->mongodb_uri, "dealimport-supervisor-lease",
        sup_store_budget_ms(cfg), &db, err, errlen);
    if (self->client == NULL)
        goto fail;
    self->store = sup_store_new(cfg, owner, self->client, db, err, errlen);
    if (self->store == NULL)
        goto fail;
    if (sup_thread_start(&self->t, run, self, "lease keeper", err, errlen) < 0)
        goto fail;
    return self;
fail:
    sup_renew_destroy(&self);
    return NULL;
}

void sup_renew_destroy(sup_renew_t **self_p)
{
    sup_renew_t *self;
    if (self_p == NULL || *self_p == NULL)
        return;
    self = *self_p;
    *self_p = NULL;
    if (!sup_thread_stop(&self->t, 1000))
        /* Blocked in the driver (the database is away): the process
         * is exiting, which ends the thread too. */
        return;
    sup_store_destroy(&self->store);
    /* No endSessions on the way out (dip_mongo_client_close). */
    if (self->client)
        dip_mongo_client_close(self->client);
    free(self->entries);
    sup_thread_fini(&self->t);
    free(self);
}

int sup_renew_hold(sup_renew_t *self, const bson_oid_t *id, int64_t epoch)
{
    int rc = 0;
    pthread_mutex_lock(&self->t.lock);
    if (self->n == self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 8;
        entry_t *e = realloc(self->entries, cap * sizeof(*e));
        if (e == NULL) {
            rc = -1;
            goto out;
        }
        self->entries = e;
        self->cap = cap;
    }
    memset(&self->entries[self->n], 0, sizeof(entry_t));
    bson_oid_copy(id, &self->entries[self->n].id);
    self->entries[self->n].epoch = epoch;
    self->n++;
out:
    pthread_mutex_unlock(&self->t.lock);
    return rc;
}

void sup_renew_forget(sup_renew_t *self, const bson_oid_t *id)
{
    pthread_mutex_lock(&self->t.lock);
    for (size_t i = 0; i < self->n;) {
        if (bson_oid_equal(&self->entries[i].id, id))
            self->entries[i] = self->entries[--self->n];
        else
            i++;
    }
    pthread_mutex_unlock(&self->t.lock);
}

int sup_renew_state(sup_renew_t *self, const bson_oid_t *id, int64_t epoch,
                    int64_t *until_ms, int *lost)
{
    int rc = -1;
    pthread_mutex_lock(&self->t.lock);
    for (size_t i = 0; i < self->n; i++)
        if (bson_oid_equal(&self->entries[i].id, id) &&
            self->entries[i].epoch == epoch) {
            *until_ms = self->entries[i].until_ms;
            *lost = self->entries[i].lost;
            rc = 0;
            break;
        }
    pthread_mutex_unlock(&self->t.lock);
    return rc;
}
