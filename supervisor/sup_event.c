/*
 * sup_event: records completion events in import_events and delivers them
 * over HTTP with libcurl's multi interface, at least once, with backoff (see
 * sup_event.h for the contract).
 */
#include "sup_event.h"
#include "dip_bson.h"
#include "dip_claim.h"
#include "dip_event.h"
#include "dip_jwt.h"
#include "dip_log.h"
#include "dip_mongo_io.h"
#include "dip_text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <time.h>

#include <curl/curl.h>

/* A claim outlives its attempt by this much, so that a slow database write
 * of the outcome does not let another supervisor start a second attempt. */
#define CLAIM_SLACK_MS 30000
#define BACKOFF_BASE_MS 2000
#define BACKOFF_MAX_MS 3600000
/* What is kept of a receiver's answer for the attempt record. */
#define BODY_KEEP 256

typedef struct delivery {
    CURL *easy;
    struct curl_slist *headers;
    char *body;
    bson_oid_t id;
    int attempts; /* attempts before this one */
    int64_t started_ms;
    int64_t expires_ms;
    char answer[BODY_KEEP + 1];
    size_t answer_len;
    char curl_error[CURL_ERROR_SIZE];
} delivery_t;

struct sup_event {
    mongoc_client_t *client; /* borrowed */
    mongoc_collection_t *coll;
    char *url;
    char *secret;
    char *owner;
    long max_s;
    long idle_poll_ms;
    CURLM *multi;
    delivery_t *inflight[SUP_EVENT_MAX_INFLIGHT];
    size_t ninflight;
    int64_t next_claim_ms;
    unsigned rnd_state;
    sup_metrics_t *metrics; /* borrowed, may be NULL */
};

void sup_event_set_metrics(sup_event_t *self, sup_metrics_t *metrics)
{
    if (self)
        self->metrics = metrics;
}

sup_event_t *sup_event_new(const dip_config_t *cfg, mongoc_client_t *client,
                           const char *db, const char *owner, char *err,
                           size_t errlen)
{
    sup_event_t *self = calloc(1, sizeof(*self));
    if (self == NULL)
        goto fail;
    self->client = client;
    self->coll = mongoc_client_get_collection(client, db, DIP_EVENT_COLLECTION);
    self->owner = strdup(owner);
    self->url =
        cfg->notify_url && *cfg->notify_url ? strdup(cfg->notify_url) : NULL;
    self->secret = cfg->app_secret ? strdup(cfg->app_secret) : NULL;
    self->max_s = cfg->notify_max_s;
    self->idle_poll_ms = cfg->poll_ms > 0 ? cfg->poll_ms : 5000;
    self->rnd_state = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)self;
    if (self->coll == NULL || self->owner == NULL ||
        (cfg->notify_url && *cfg->notify_url && self->url == NULL))
        goto fail;
    if (self->url) {
        if (self->secret == NULL || *self->secret == '\0') {
            if (err && errlen)
                snprintf(err, errlen,
                         "DEALIMPORT_NOTIFY_URL needs APP_SECRET (or "
                         "APP_SECRET_FILE) to sign the event's token");
            sup_event_destroy(&self);
            return NULL;
        }
        self->multi = curl_multi_init();
        if (self->multi == NULL)
            goto fail;
    }
    return self;
fail:
    dip_text_say(-1, err, errlen, "completion events: out of memory");
    sup_event_destroy(&self);
    return NULL;
}

static void delivery_free(delivery_t *d)
{
    if (d == NULL)
        return;
    if (d->easy)
        curl_easy_cleanup(d->easy);
    curl_slist_free_all(d->headers);
    free(d->body);
    free(d);
}

void sup_event_destroy(sup_event_t **self_p)
{
    sup_event_t *self;
    if (self_p == NULL || *self_p == NULL)
        return;
    self = *self_p;
    for (size_t i = 0; i < self->ninflight; i++) {
        curl_multi_remove_handle(self->multi, self->inflight[i]->easy);
        delivery_free(self->inflight[i]);
    }
    if (self->multi)
        curl_multi_cleanup(self->multi);
    if (self->coll)
        mongoc_collection_destroy(self->coll);
    if (self->secret) {
        memset(self->secret, 0, strlen(self->secret));
        free(self->secret);
    }
    free(self->url);
    free(self->owner);
    free(self);
    *self_p = NULL;
}

/* --- policy --------------------------------------------------------------- */

int64_t sup_event_backoff_ms(int attempts, double rnd)
{
    int64_t d = BACKOFF_BASE_MS;
    for (int i = 1; i < attempts && d < BACKOFF_MAX_MS; i++)
        d *= 2;
    if (d > BACKOFF_MAX_MS)
        d = BACKOFF_MAX_MS;
    return d + (int64_t)((double)d * 0.5 * (rnd - 0.5));
}

int sup_event_gives_up(long http_status)
{
    return http_status >= 400 && http_status < 500 && http_status != 408 &&
           http_status != 429;
}

int sup_event_ensure_indexes(sup_event_t *self, char *err, size_t errlen)
{
    return dip_event_ensure_indexes(self->coll, err, errlen);
}

int sup_event_record(sup_event_t *self, const bson_t *queue_doc,
                     const char *type, const bson_t *details, int held,
                     char *err, size_t errlen)
{
    if (self->url == NULL)
        return 0; /* nobody to tell: no event is kept */
    if (dip_event_record(self->coll, queue_doc, type, details, self->max_s,
                         held, err, errlen) < 0)
        return -1;
    self->next_claim_ms = 0; /* deliver it now, not at the next idle poll */
    return 0;
}

/* --- delivering ----------------------------------------------------------- */

/* The import's access token for this attempt, from the claims recorded
 * with the event. */
static char *sign(const sup_event_t *self, const bson_t *auth, const char *jti,
                  int64_t now_ms)
{
    return dip_jwt_sign(self->secret, dip_bson_get_str(auth, "uid"),
                        dip_bson_get_str(auth, "account_id"),
                        dip_bson_get_str(auth, "parent_account"),
                        dip_bson_get_str(auth, "client_id"), jti,
                        (time_t)(now_ms / 1000));
}

static size_t keep_answer(char *buf, size_t size, size_t n, void *arg)
{
    delivery_t *d = arg;
    size_t len = size * n, room = BODY_KEEP - d->answer_len;
    if (room > len)
        room = len;
    memcpy(d->answer + d->answer_len, buf, room);
    d->answer_len += room;
    d->answer[d->answer_len] = '\0';
    return len;
}

static curl_socket_t open_cloexec(void *arg, curlsocktype purpose,
                                  struct curl_sockaddr *a)
{
    (void)arg;
    (void)purpose;
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

/* Starts one attempt for a claimed event; 0, or -1 when it cannot start
 * (the claim then runs out and the event is tried again). */
static int start(sup_event_t *self, const bson_t *ev, int64_t now_ms)
{
    delivery_t *d = calloc(1, sizeof(*d));
    bson_iter_t it;
    bson_t payload, auth, empty = BSON_INITIALIZER;
    const uint8_t *data;
    uint32_t len;
    char hex[25], hdr[4096], *token = NULL;
    size_t n;
    if (d == NULL)
        return -1;
    if (!bson_iter_init_find(&it, ev, "_id") || !BSON_ITER_HOLDS_OID(&it))
        goto fail;
    bson_oid_copy(bson_iter_oid(&it), &d->id);
    bson_oid_to_string(&d->id, hex);
    if (bson_iter_init_find(&it, ev, "attempts") &&
        BSON_ITER_HOLDS_ARRAY(&it)) {
        bson_iter_t a;
        bson_iter_recurse(&it, &a);
        while (bson_iter_next(&a))
            d->attempts++;
    }
    if (bson_iter_init_find(&it, ev, "expires_at") &&
        BSON_ITER_HOLDS_DATE_TIME(&it))
        d->expires_ms = bson_iter_date_time(&it);
    if (!bson_iter_init_find(&it, ev, "payload") ||
        !BSON_ITER_HOLDS_DOCUMENT(&it))
        goto fail;
    bson_iter_document(&it, &len, &data);
    if (!bson_init_static(&payload, data, len))
        goto fail;
    d->body = bson_as_relaxed_extended_json(&payload, &n);
    if (bson_iter_init_find(&it, ev, "auth") && BSON_ITER_HOLDS_DOCUMENT(&it)) {
        bson_iter_document(&it, &len, &data);
        if (!bson_init_static(&auth, data, len))
            goto fail;
        token = sign(self, &auth, hex, now_ms);
    } else {
        token = sign(self, &empty, hex, now_ms);
    }
    if (d->body == NULL || token == NULL)
        goto fail;
    snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", token);
    d->headers = curl_slist_append(d->headers, hdr);
    snprintf(hdr, sizeof(hdr), "Idempotency-Key: %s", hex);
    d->headers = curl_slist_append(d->headers, hdr);
    d->headers =
        curl_slist_append(d->headers, "Content-Type: application/json");
    d->headers = curl_slist_append(d->headers, "Expect:");
    d->easy = curl_easy_init();
    if (d->headers == NULL || d->easy == NULL)
        goto fail;
    curl_easy_setopt(d->easy, CURLOPT_URL, self->url);
    curl_easy_setopt(d->easy, CURLOPT_HTTPHEADER, d->headers);
    curl_easy_setopt(d->easy, CURLOPT_POSTFIELDS, d->body);
    curl_easy_setopt(d->easy, CURLOPT_POSTFIELDSIZE, (long)strlen(d->body));
    curl_easy_setopt(d->easy, CURLOPT_TIMEOUT_MS,
                     (long)SUP_EVENT_ATTEMPT_TIMEOUT_MS);
    curl_easy_setopt(d->easy, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(d->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(d->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(d->easy, CURLOPT_WRITEFUNCTION, keep_answer);
    curl_easy_setopt(d->easy, CURLOPT_WRITEDATA, d);
    curl_easy_setopt(d->easy, CURLOPT_ERRORBUFFER, d->curl_error);
    curl_easy_setopt(d->easy, CURLOPT_OPENSOCKETFUNCTION, open_cloexec);
    curl_easy_setopt(d->easy, CURLOPT_PRIVATE, (char *)d);
    if (curl_multi_add_handle(self->multi, d->easy) != CURLM_OK)
        goto fail;
    memset(token, 0, strlen(token));
    free(token);
    d->started_ms = now_ms;
    self->inflight[self->ninflight++] = d;
    return 0;
fail:
    if (token) {
        memset(token, 0, strlen(token));
        free(token);
    }
    delivery_free(d);
    return -1;
}

/* Claims the next due event; 1 and the event in *out (initialized), 0 when
 * none is due, -1 on a database error. */
static int claim_one(sup_event_t *self, int64_t now_ms, bson_t *out)
{
    bson_t query = BSON_INITIALIZER, sort = BSON_INITIALIZER,
           update = BSON_INITIALIZER, reply, lte, set;
    mongoc_find_and_modify_opts_t *opts = mongoc_find_and_modify_opts_new();
    bson_error_t e;
    bson_t v;
    int rc = -1;
    BSON_APPEND_UTF8(&query, "status", "pending");
    BSON_APPEND_DOCUMENT_BEGIN(&query, "next_attempt_at", &lte);
    BSON_APPEND_DATE_TIME(&lte, "$lte", now_ms);
    bson_append_document_end(&query, &lte);
    dip_claim_append_free(&query, "lease_expires_at", now_ms);
    BSON_APPEND_INT32(&sort, "next_attempt_at", 1);
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    dip_claim_append_take(&set, "lease_expires_at", now_ms,
                          SUP_EVENT_ATTEMPT_TIMEOUT_MS + CLAIM_SLACK_MS,
                          "claimed_by", self->owner);
    bson_append_document_end(&update, &set);
    mongoc_find_and_modify_opts_set_sort(opts, &sort);
    mongoc_find_and_modify_opts_set_update(opts, &update);
    bson_init(out);
    if (!dip_mongo_take_new(self->client, self->coll, &query, opts, &reply,
                            &e)) {
        dip_log(DIP_LOG_WARNING, NULL,
                "cannot claim a completion event to deliver: %s", e.message);
        /* the reply is initialized even on failure */
        bson_destroy(&reply);
        goto cleanup;
    }
    rc = 0;
    if (dip_bson_reply_value(&reply, &v)) {
        bson_copy_to(&v, out);
        rc = 1;
    }
    bson_destroy(&reply);
cleanup:
    if (rc != 1) {
        bson_destroy(out);
        bson_init(out);
    }
    mongoc_find_and_modify_opts_destroy(opts);
    bson_destroy(&query);
    bson_destroy(&sort);
    bson_destroy(&update);
    return rc;
}

/* Records one ended attempt and what follows from it. */
static void finish(sup_event_t *self, delivery_t *d, CURLcode res,
                   int64_t now_ms)
{
    bson_value_t id;
    bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set, unset,
           push, attempt;
    bson_error_t e;
    long http = 0;
    char hex[25], reason[512];
    const char *outcome;
    int64_t next = 0;
    size_t keep;

    bson_oid_to_string(&d->id, hex);
    if (res == CURLE_OK)
        curl_easy_getinfo(d->easy, CURLINFO_RESPONSE_CODE, &http);
    keep = dip_text_cut(d->answer, d->answer_len, BODY_KEEP);
    if (!dip_text_utf8_valid(d->answer, keep) ||
        memchr(d->answer, 0, keep) != NULL)
        keep = 0;

    if (res == CURLE_OK && http >= 200 && http < 300) {
        outcome = "delivered";
        reason[0] = '\0';
    } else if (res == CURLE_OK && sup_event_gives_up(http)) {
        outcome = "failed";
        dip_text_format(reason, sizeof(reason), NULL,
                        "the receiver refused the event with HTTP %ld", http);
    } else {
        next = now_ms + sup_event_backoff_ms(d->attempts + 1,
                                             (double)rand_r(&self->rnd_state) /
                                                 RAND_MAX);
        if (res != CURLE_OK)
            dip_text_format(reason, sizeof(reason), NULL, "%s",
                            d->curl_error[0] ? d->curl_error
                                             : curl_easy_strerror(res));
        else
            dip_text_format(reason, sizeof(reason), NULL,
                            "the receiver answered HTTP %ld", http);
        if (d->expires_ms > 0 && next > d->expires_ms) {
            char last[512];
            memcpy(last, reason, sizeof(last));
            dip_text_format(reason, sizeof(reason), NULL,
                            "gave up after %d attempts over %lld s; last: %s",
                            d->attempts + 1,
                            (long long)(self->max_s > 0 ? self->max_s : 0),
                            last);
            outcome = "failed";
        } else {
            outcome = "pending";
        }
    }

    id.value_type = BSON_TYPE_OID;
    bson_oid_copy(&d->id, &id.value.v_oid);
    dip_claim_append_fence(&filter, &id, "claimed_by", self->owner, -1);
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    BSON_APPEND_UTF8(&set, "status", outcome);
    if (strcmp(outcome, "delivered") == 0)
        BSON_APPEND_DATE_TIME(&set, "delivered_at", now_ms);
    else if (strcmp(outcome, "failed") == 0)
        BSON_APPEND_UTF8(&set, "reason", reason);
    else
        BSON_APPEND_DATE_TIME(&set, "next_attempt_at", next);
    bson_append_document_end(&update, &set);
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$unset", &unset);
    BSON_APPEND_UTF8(&unset, "claimed_by", "");
    BSON_APPEND_UTF8(&unset, "lease_expires_at", "");
    bson_append_document_end(&update, &unset);
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$push", &push);
    BSON_APPEND_DOCUMENT_BEGIN(&push, "attempts", &attempt);
    BSON_APPEND_DATE_TIME(&attempt, "at", d->started_ms);
    BSON_APPEND_INT64(&attempt, "ms", now_ms - d->started_ms);
    BSON_APPEND_UTF8(&attempt, "by", self->owner);
    if (http > 0)
        BSON_APPEND_INT32(&attempt, "http_status", (int32_t)http);
    if (res != CURLE_OK || http < 200 || http >= 300)
        BSON_APPEND_UTF8(&attempt, "error", reason);
    if (keep > 0)
        bson_append_utf8(&attempt, "answer", -1, d->answer, (int)keep);
    bson_append_document_end(&push, &attempt);
    bson_append_document_end(&update, &push);

    sup_metrics_notification(self->metrics, outcome);
    if (!mongoc_collection_update_one(self->coll, &filter, &update, NULL, NULL,
                                      &e))
        /* The claim runs out and the event is tried again: at least once. */
        dip_log(DIP_LOG_WARNING, NULL,
                "cannot record delivery attempt %d of event %s: %s",
                d->attempts + 1, hex, e.message);
    else if (strcmp(outcome, "delivered") == 0)
        dip_log(DIP_LOG_INFO, NULL, "event %s delivered (HTTP %ld)", hex, http);
    else
        dip_log(DIP_LOG_WARNING, NULL, "event %s attempt %d: %s%s", hex,
                d->attempts + 1, reason,
                strcmp(outcome, "failed") == 0 ? "; given up" : "");
    bson_destroy(&filter);
    bson_destroy(&update);
}

static void collect(sup_event_t *self, int64_t now_ms)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(self->multi, &left)) != NULL) {
        delivery_t *d;
        char *p = NULL;
        if (m->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &p);
        if ((d = (delivery_t *)p) == NULL)
            continue;
        finish(self, d, m->data.result, now_ms);
        curl_multi_remove_handle(self->multi, d->easy);
        for (size_t i = 0; i < self->ninflight; i++)
            if (self->inflight[i] == d) {
                self->inflight[i] = self->inflight[--self->ninflight];
                break;
            }
        delivery_free(d);
    }
}

int sup_event_run(sup_event_t *self, int64_t now_ms)
{
    int running, rc = 0;
    if (self->multi == NULL)
        return 0;
    curl_multi_perform(self->multi, &running);
    collect(self, now_ms);
    if (now_ms < self->next_claim_ms)
        return 0;
    while (self->ninflight < SUP_EVENT_MAX_INFLIGHT) {
        bson_t ev;
        int got = claim_one(self, now_ms, &ev);
        if (got == 1 && start(self, &ev, now_ms) != 0)
            dip_log(DIP_LOG_WARNING, NULL,
                    "cannot start delivering a completion event; it is "
                    "tried again when its claim runs out");
        bson_destroy(&ev);
        if (got != 1) {
            rc = got < 0 ? -1 : 0;
            self->next_claim_ms = now_ms + self->idle_poll_ms;
            break;
        }
    }
    curl_multi_perform(self->multi, &running);
    return rc;
}

size_t sup_event_pollitems(sup_event_t *self, zmq_pollitem_t *items, size_t max,
                           long *timeout_ms)
{
    fd_set r, w, x;
    int maxfd = -1;
    long t = -1;
    size_t n = 0;
    if (self->multi == NULL)
        return 0;
    if (self->ninflight > 0) {
        FD_ZERO(&r);
        FD_ZERO(&w);
        FD_ZERO(&x);
        if (curl_multi_fdset(self->multi, &r, &w, &x, &maxfd) == CURLM_OK)
            for (int fd = 0; fd <= maxfd && n < max; fd++) {
                short ev = 0;
                if (FD_ISSET(fd, &r) || FD_ISSET(fd, &x))
                    ev |= ZMQ_POLLIN;
                if (FD_ISSET(fd, &w))
                    ev |= ZMQ_POLLOUT;
                if (ev) {
                    memset(&items[n], 0, sizeof(items[n]));
                    items[n].fd = fd;
                    items[n++].events = ev;
                }
            }
        curl_multi_timeout(self->multi, &t);
        /* libcurl may hold no socket yet (a name being resolved): look
         * again soon rather than sleep a whole poll period. */
        if (n == 0 && (t < 0 || t > 50))
            t = 50;
    } else if (self->url) {
        int64_t now = dip_bson_now_ms();
        t = self->next_claim_ms <= now ? 0 : (long)(self->next_claim_ms - now);
    }
    if (t >= 0 && (*timeout_ms < 0 || t < *timeout_ms))
        *timeout_ms = t;
    return n;
}

size_t sup_event_inflight(const sup_event_t *self)
{
    return self->ninflight;
}

void sup_event_drain(sup_event_t *self, long timeout_ms)
{
    int64_t end = dip_bson_now_ms() + timeout_ms;
    while (self->multi && self->ninflight > 0 && dip_bson_now_ms() < end) {
        int running, nfds;
        curl_multi_wait(self->multi, NULL, 0, 50, &nfds);
        curl_multi_perform(self->multi, &running);
        collect(self, dip_bson_now_ms());
    }
}
