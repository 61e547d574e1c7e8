/*
 * sup_watch: a change stream on `queues` on a thread of its own that wakes
 * the supervisor's loop through an eventfd when a deals import turns
 * claimable; backs off, resumes from its token, and says each outage once.
 * See sup_watch.h for the contract.
 */
#include "dip_time.h"
#include "sup_watch.h"
#include "dip_log.h"
#include "dip_mongo_io.h"
#include "dip_storage.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <mongoc/mongoc.h>

#define BACKOFF_FIRST_MS 250
#define BACKOFF_MAX_MS 30000

struct sup_watch {
    pthread_t thread;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cond; /* signalled on quit, on CLOCK_MONOTONIC */
    int quit;
    sup_watch_state_t state;
    int efd;
    /* Owned by the thread once it runs. */
    mongoc_client_t *client;
    const char *db;
    long await_ms;
    bson_t token;
    int has_token;
    unsigned int rng;
};

sup_watch_verdict_t sup_watch_classify(uint32_t domain, uint32_t code)
{
    if (domain == MONGOC_ERROR_SERVER || domain == MONGOC_ERROR_QUERY) {
        switch (code) {
        case 40573: /* the $changeStream stage needs a replica set */
        case 148:   /* ReadConcernMajorityNotEnabled (before 4.2) */
            return SUP_WATCH_GIVE_UP;
        case 286: /* ChangeStreamHistoryLost */
        case 280: /* ChangeStreamFatalError */
        case 260: /* InvalidResumeToken */
        case 136: /* CappedPositionLost */
        /* An event too large to return fails every resume before it: only
         * a fresh start (and a sweep) gets past it. */
        case 10334: /* BSONObjectTooLarge */
            return SUP_WATCH_RESTART;
        default:
            return SUP_WATCH_RESUME;
        }
    }
    if (domain == MONGOC_ERROR_CURSOR &&
        (code == MONGOC_ERROR_CURSOR_INVALID_CURSOR ||
         code == MONGOC_ERROR_CHANGE_STREAM_NO_RESUME_TOKEN))
        return SUP_WATCH_RESTART; /* closed by an invalidate */
    return SUP_WATCH_RESUME;
}

static int quitting(sup_watch_t *self)
{
    int q;
    pthread_mutex_lock(&self->mu);
    q = self->quit;
    pthread_mutex_unlock(&self->mu);
    return q;
}

static void set_state(sup_watch_t *self, sup_watch_state_t st)
{
    pthread_mutex_lock(&self->mu);
    self->state = st;
    pthread_mutex_unlock(&self->mu);
}

static void wake(sup_watch_t *self)
{
    uint64_t one = 1;
    /* EAGAIN: the counter is full, the loop has a wake pending anyway. */
    if (write(self->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        dip_log(DIP_LOG_WARNING, NULL,
                "change stream: cannot wake the "
                "loop: %s",
                strerror(errno));
}

/* Waits ms or until quit; returns 1 when quitting. */
static int pause_ms(sup_watch_t *self, long ms)
{
    struct timespec until;
    int q;
    until = dip_time_mono_deadline(ms);
    pthread_mutex_lock(&self->mu);
    while (!self->quit &&
           pthread_cond_timedwait(&self->cond, &self->mu, &until) == 0)
        ;
    q = self->quit;
    pthread_mutex_unlock(&self->mu);
    return q;
}

/* The changes that may make a deals import claimable. The status test is
 * on the document after the change (updateLookup); an update that touches
 * neither status nor in_progress (progress, renewals) wakes nobody. */
static bson_t *pipeline(void)
{
    return BCON_NEW(
        "pipeline", "[", "{", "$match", "{", "operationType", "{", "$in", "[",
        BCON_UTF8("insert"), BCON_UTF8("update"), BCON_UTF8("replace"), "]",
        "}", "fullDocument.source", BCON_UTF8("deals"), "fullDocument.status",
        BCON_UTF8("pending"), "fullDocument.in_progress", "{", "$ne",
        BCON_BOOL(true), "}", "$or", "[", "{", "operationType", "{", "$in", "[",
        BCON_UTF8("insert"), BCON_UTF8("replace"), "]", "}", "}", "{",
        "updateDescription.updatedFields.status", "{", "$exists",
        BCON_BOOL(true), "}", "}", "{",
        "updateDescription.updatedFields.in_progress", "{", "$exists",
        BCON_BOOL(true), "}", "}", "{", "updateDescription.removedFields",
        BCON_UTF8("in_progress"), "}", "]", "}", "}",
        /* Only what a wake needs: a queue document near 16 MiB must not
         * make an event too large to return (BSONObjectTooLarge). */
        "{", "$project", "{", "operationType", BCON_INT32(1), "documentKey",
        BCON_INT32(1), "fullDocument.status", BCON_INT32(1), "}", "}", "]");
}

static mongoc_change_stream_t *open_stream(sup_watch_t *self,
                                           mongoc_collection_t *queues)
{
    bson_t *pipe = pipeline();
    bson_t opts = BSON_INITIALIZER;
    mongoc_change_stream_t *cs;
    BSON_APPEND_UTF8(&opts, "fullDocument", "updateLookup");
    BSON_APPEND_INT64(&opts, "maxAwaitTimeMS", self->await_ms);
    if (self->has_token)
        BSON_APPEND_DOCUMENT(&opts, "resumeAfter", &self->token);
    cs = mongoc_collection_watch(queues, pipe, &opts);
    bson_destroy(&opts);
    bson_destroy(pipe);
    return cs;
}

static void keep_token(sup_watch_t *self, mongoc_change_stream_t *cs)
{
    const bson_t *tok = mongoc_change_stream_get_resume_token(cs);
    if (tok == NULL)
        return;
    bson_destroy(&self->token);
    bson_copy_to(tok, &self->token);
    self->has_token = 1;
}

static int is_invalidate(const bson_t *ev)
{
    bson_iter_t it;
    return bson_iter_init_find(&it, ev, "operationType") &&
           BSON_ITER_HOLDS_UTF8(&it) &&
           strcmp(bson_iter_utf8(&it, NULL), "invalidate") == 0;
}

static void forget_token(sup_watch_t *self)
{
    bson_reinit(&self->token);
    self->has_token = 0;
}

static void *run(void *arg)
{
    sup_watch_t *self = arg;
    mongoc_collection_t *queues =
        mongoc_client_get_collection(self->client, self->db, "queues");
    mongoc_change_stream_t *cs = NULL;
    int failures = 0;
    int said = 0; /* the current outage was logged */
    int streaming = 0;

    while (!quitting(self)) {
        const bson_t *ev = NULL;
        const bson_t *err_doc = NULL;
        bson_error_t error;
        sup_watch_verdict_t v;
        long wait_ms;

        if (cs == NULL)
            cs = open_stream(self, queues);
        if (!mongoc_change_stream_error_document(cs, &error, &err_doc)) {
            int got = mongoc_change_stream_next(cs, &ev);
            if (got && is_invalidate(ev)) {
                error.domain = MONGOC_ERROR_CURSOR;
                error.code = MONGOC_ERROR_CURSOR_INVALID_CURSOR;
                snprintf(error.message, sizeof(error.message),
                         "'queues' was dropped or renamed (invalidate)");
            } else if (got || !mongoc_change_stream_error_document(cs, &error,
                                                                   &err_doc)) {
                keep_token(self, cs);
                if (got)
                    wake(self);
                if (!streaming) {
                    set_state(self, SUP_WATCH_STREAMING);
                    dip_log(DIP_LOG_INFO, NULL,
                            said ? "change stream on 'queues' resumed: "
                                   "picking up on change again"
                                 : "change stream on 'queues' open: "
                                   "picking up on change");
                    streaming = 1;
                    said = 0;
                    failures = 0;
                }
                continue;
            }
        }
        mongoc_change_stream_destroy(cs);
        cs = NULL;
        streaming = 0;
        v = sup_watch_classify(error.domain, error.code);
        if (v == SUP_WATCH_GIVE_UP) {
            dip_log(DIP_LOG_NOTICE, NULL,
                    "the database has no change streams (%s): picking up "
                    "by polling alone",
                    error.message);
            set_state(self, SUP_WATCH_UNSUPPORTED);
            goto cleanup;
        }
        set_state(self, SUP_WATCH_RETRYING);
        if (v == SUP_WATCH_RESTART) {
            /* Changes may have gone by unseen: the loop sweeps. */
            dip_log(DIP_LOG_WARNING, NULL,
                    "change stream on 'queues' cannot resume (%s): "
                    "reopening it from now; the next claim round sweeps "
                    "what it missed",
                    error.message);
            forget_token(self);
            wake(self);
            said = 1;
        } else if (!said) {
            dip_log(DIP_LOG_WARNING, NULL,
                    "change stream on 'queues' failed (%s): polling "
                    "meanwhile, resuming from its last token",
                    error.message);
            said = 1;
        }
        failures++;
        wait_ms = dip_storage_backoff_ms(BACKOFF_FIRST_MS, failures,
                                         (unsigned)rand_r(&self->rng));
        if (pause_ms(self, wait_ms > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : wait_ms))
            break;
    }
    set_state(self, SUP_WATCH_STOPPED);
cleanup:
    mongoc_change_stream_destroy(cs);
    mongoc_collection_destroy(queues);
    return NULL;
}

sup_watch_t *sup_watch_new(const dip_config_t *cfg, long budget_ms,
                           long await_ms, char *err, size_t errlen)
{
    /* bson_t (the token) asks for 128-byte alignment, and so does the
     * struct that holds it: more than malloc promises. */
    size_t align = _Alignof(sup_watch_t),
           size = (sizeof(sup_watch_t) + align - 1) / align * align;
    sup_watch_t *self = aligned_alloc(align, size);
    pthread_condattr_t ca;
    if (self != NULL)
        memset(self, 0, sizeof(*self));
    if (self == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    self->efd = -1;
    bson_init(&self->token);
    pthread_mutex_init(&self->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&self->cond, &ca);
    pthread_condattr_destroy(&ca);
    self->await_ms = await_ms > 0 ? await_ms : 1000;
    self->rng = (unsigned int)getpid() ^ (unsigned int)time(NULL);
    self->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (self->efd < 0) {
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        goto fail;
    }
    self->client = dip_mongo_client_new_bounded(
        cfg->mongodb_uri ? cfg->mongodb_uri : "", "dealimport-supervisor-watch",
        budget_ms, &self->db, err, errlen);
    if (self->client == NULL)
        goto fail;
    if (pthread_create(&self->thread, NULL, run, self) != 0) {
        snprintf(err, errlen, "cannot start the change stream thread");
        goto fail;
    }
    self->started = 1;
    return self;
fail:
    sup_watch_destroy(&self);
    return NULL;
}

void sup_watch_destroy(sup_watch_t **self_p)
{
    sup_watch_t *self = self_p ? *self_p : NULL;
    if (self == NULL)
        return;
    pthread_mutex_lock(&self->mu);
    self->quit = 1;
    pthread_cond_broadcast(&self->cond);
    pthread_mutex_unlock(&self->mu);
    if (self->started)
        pthread_join(self->thread, NULL);
    dip_mongo_client_close(self->client);
    if (self->efd >= 0)
        close(self->efd);
    bson_destroy(&self->token);
    pthread_cond_destroy(&self->cond);
    pthread_mutex_destroy(&self->mu);
    free(self);
    *self_p = NULL;
}

int sup_watch_fd(const sup_watch_t *self)
{
    return self->efd;
}

uint64_t sup_watch_take(sup_watch_t *self)
{
    uint64_t n = 0;
    if (read(self->efd, &n, sizeof(n)) != (ssize_t)sizeof(n))
        return 0;
    return n;
}

sup_watch_state_t sup_watch_state(sup_watch_t *self)
{
    sup_watch_state_t st;
    pthread_mutex_lock(&self->mu);
    st = self->state;
    pthread_mutex_unlock(&self->mu);
    return st;
}
