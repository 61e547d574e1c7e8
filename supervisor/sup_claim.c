/*
 * sup_claim: takes up imports while slots are free and the database
 * answers. Accounts at their per-account limit are skipped, the others
 * served fairly (the least recently served first, remembered here); a
 * claimed document the service cannot run is failed with a sentence, and
 * a claimed import gets its slot, its lease keeper entry and its worker.
 */
#include "sup_claim.h"
#include "sup_loop_priv.h"
#include "dip_bson.h"
#include "dip_log.h"
#include "dip_mongo_io.h"
#include "dip_text.h"
#include "dip_time.h"

#include <stdlib.h>
#include <string.h>

/* ---- the rules -------------------------------------------------------- */

size_t sup_claim_full_accounts(const bson_oid_t *busy, size_t nbusy,
                               long per_account, bson_oid_t *skip, size_t max)
{
    size_t nskip = 0;
    for (size_t i = 0; i < nbusy && nskip < max; i++) {
        size_t count = 0;
        int seen = 0;
        for (size_t j = 0; j < nskip && !seen; j++)
            seen = bson_oid_equal(&skip[j], &busy[i]);
        if (seen)
            continue;
        for (size_t j = 0; j < nbusy; j++)
            count += bson_oid_equal(&busy[j], &busy[i]);
        if (count >= (size_t)per_account)
            bson_oid_copy(&busy[i], &skip[nskip++]);
    }
    return nskip;
}

/* The slot of a bounded table for an entry: `found` (< *n) when it is
 * there; else the next free one (*n grows); else, the table being full,
 * the entry whose time is the smallest (the least recently served, the
 * soonest due). The times are int64_t at `first`, every `stride` bytes. */
static size_t table_slot(size_t found, size_t *n, size_t max,
                         const int64_t *first, size_t stride)
{
    const char *base = (const char *)first;
    size_t slot = 0;
    if (found < *n)
        return found;
    if (*n < max)
        return (*n)++;
    for (size_t i = 1; i < *n; i++)
        if (*(const int64_t *)(const void *)(base + i * stride) <
            *(const int64_t *)(const void *)(base + slot * stride))
            slot = i;
    return slot;
}

void sup_claim_note_served(sup_store_served_t *served, size_t *n, size_t max,
                           const bson_oid_t *account, int64_t now_ms)
{
    size_t found = *n;
    size_t slot;
    for (size_t i = 0; i < *n && found == *n; i++)
        if (bson_oid_equal(&served[i].account, account))
            found = i;
    slot = table_slot(found, n, max, &served[0].at_ms, sizeof(served[0]));
    bson_oid_copy(account, &served[slot].account);
    served[slot].at_ms = now_ms;
}

sup_claim_err_t sup_claim_error_rule(uint32_t domain, uint32_t code)
{
    bson_error_t e = {.domain = domain, .code = code};
    if (domain != MONGOC_ERROR_SERVER || dip_mongo_is_transient(&e))
        return SUP_CLAIM_ERR_DATABASE;
    if (code == 11000 || code == 112)
        return SUP_CLAIM_ERR_RACE;
    /* The server's answers about itself rather than the document. */
    switch (code) {
    case 11601: /* Interrupted */
    case 13:    /* Unauthorized */
    case 24:    /* LockTimeout */
    case 46:    /* LockBusy */
    case 251:   /* NoSuchTransaction */
    case 8000:  /* AtlasError */
        return SUP_CLAIM_ERR_DATABASE;
    default:
        return SUP_CLAIM_ERR_DOCUMENT;
    }
}

int64_t sup_claim_aside_ms(int tries)
{
    int64_t ms = SUP_CLAIM_ASIDE_FIRST_MS;
    for (int i = 1; i < tries && ms < SUP_CLAIM_ASIDE_MAX_MS; i++)
        ms *= 2;
    return ms < SUP_CLAIM_ASIDE_MAX_MS ? ms : SUP_CLAIM_ASIDE_MAX_MS;
}

static int same_value(const bson_value_t *a, const bson_value_t *b)
{
    bson_t x = BSON_INITIALIZER, y = BSON_INITIALIZER;
    int eq;
    BSON_APPEND_VALUE(&x, "v", a);
    BSON_APPEND_VALUE(&y, "v", b);
    eq = bson_equal(&x, &y);
    bson_destroy(&x);
    bson_destroy(&y);
    return eq;
}

sup_claim_aside_t *sup_claim_set_aside(sup_claim_aside_t *aside, size_t *n,
                                       size_t max, const bson_value_t *id,
                                       int64_t now_ms)
{
    size_t found = *n;
    size_t slot;
    for (size_t i = 0; i < *n && found == *n; i++)
        if (same_value(&aside[i].id, id))
            found = i;
    if (found < *n) {
        slot = found;
    } else {
        int full = *n == max;
        slot = table_slot(found, n, max, &aside[0].until_ms, sizeof(aside[0]));
        if (full)
            bson_value_destroy(&aside[slot].id);
        memset(&aside[slot], 0, sizeof(aside[slot]));
        bson_value_copy(id, &aside[slot].id);
    }
    aside[slot].tries++;
    aside[slot].until_ms = now_ms + sup_claim_aside_ms(aside[slot].tries);
    return &aside[slot];
}

/* ---- the loop's side ------------------------------------------------- */

/* The imports this supervisor holds, for the store's fenced calls; ids
 * borrowed from the workers' documents. Returns how many. */
static size_t held_list(sup_loop_t *self, sup_store_held_t *held)
{
    size_t n = 0;
    for (size_t i = 0; i < self->cap; i++) {
        sup_slot_t *w = &self->workers[i];
        bson_iter_t acc;
        if (w->state == SUP_SLOT_FREE)
            continue;
        held[n].id = sup_slot_qid(w);
        held[n].epoch = w->epoch;
        held[n].lost = 0;
        held[n].runs = 1;
        /* as stored, as the claim's look groups it */
        if (w->doc != NULL && bson_iter_init_find(&acc, w->doc, "account_id"))
            held[n].account = *bson_iter_value(&acc);
        else
            held[n].account.value_type = BSON_TYPE_NULL;
        n++;
    }
    /* and the documents set aside, until their time */
    for (size_t i = 0; i < self->naside; i++) {
        if (self->aside[i].until_ms <= self->now)
            continue;
        held[n].id = self->aside[i].id;
        held[n].epoch = -1;
        held[n].lost = 0;
        held[n].runs = 0;
        n++;
    }
    return n;
}

/* A queue document's _id as canonical Extended JSON, {"id": ...}, for a
 * sentence: any type the CRM stored, cut at a character boundary. */
static void id_text(const bson_t *doc, char *text, size_t len)
{
    bson_iter_t it;
    if (bson_iter_init_find(&it, doc, "_id")) {
        bson_t tmp = BSON_INITIALIZER;
        char *json;
        BSON_APPEND_VALUE(&tmp, "id", bson_iter_value(&it));
        json = bson_as_canonical_extended_json(&tmp, NULL);
        if (json)
            dip_text_format(text, len, NULL, "%s", json);
        bson_free(json);
        bson_destroy(&tmp);
    }
}

/* A document the claim could not take (sup_store_claim's
 * SUP_STORE_EUNCLAIMABLE, out as it says) ended alone: failed, or set
 * aside here; logged and counted either way. */
static void note_unclaimable(sup_loop_t *self, const bson_t *out)
{
    bson_iter_t it;
    char text[128] = "";
    const char *why = dip_bson_get_str(out, "error");
    int marked = bson_iter_init_find(&it, out, "marked") &&
                 BSON_ITER_HOLDS_BOOL(&it) && bson_iter_bool(&it);
    id_text(out, text, sizeof(text));
    sup_metrics_unclaimable(self->metrics, marked);
    /* The refusal was the account's turn: it goes behind the accounts not
     * served since, so that a backlog of its documents is worked through
     * between their claims, not before them. */
    if (bson_iter_init_find(&it, out, "account_id")) {
        bson_oid_t account;
        sup_store_served_account(bson_iter_value(&it), &account);
        sup_claim_note_served(self->served, &self->nserved, SUP_LOOP_SERVED_MAX,
                              &account, self->now);
    }
    if (marked) {
        dip_log(DIP_LOG_WARNING, NULL, "import %s failed: '%s'", text,
                why ? why : "");
        return;
    }
    if (bson_iter_init_find(&it, out, "_id")) {
        sup_claim_aside_t *a =
            sup_claim_set_aside(self->aside, &self->naside, SUP_LOOP_ASIDE_MAX,
                                bson_iter_value(&it), self->now);
        dip_log(DIP_LOG_ERR, NULL,
                "import %s cannot be claimed nor marked failed; set aside "
                "for %lld s (refusal %d): %s",
                text, (long long)((a->until_ms - self->now) / 1000), a->tries,
                why ? why : "");
    }
}

/* A claimed document the service cannot run (its _id is not an
 * ObjectId): it ends failed with a sentence, keyed by the id as stored,
 * and takes no slot. */
static void refuse_claimed(sup_loop_t *self, const bson_t *doc)
{
    bson_iter_t it;
    char err[512], msg[256], text[128] = "";
    sup_store_result_t r = {.status = "failed", .error = msg};
    int rc;
    id_text(doc, text, sizeof(text));
    dip_text_format(msg, sizeof(msg), NULL,
                    "the queue document's _id is not an ObjectId (it is a %s); "
                    "this service imports only documents whose _id is one",
                    bson_iter_init_find(&it, doc, "_id") &&
                            BSON_ITER_HOLDS_UTF8(&it)
                        ? "string"
                        : "value of another type");
    rc = sup_store_finish(self->store, doc, sup_store_epoch(doc), &r, err,
                          sizeof(err));
    if (rc == SUP_STORE_OK)
        dip_log(DIP_LOG_WARNING, NULL, "import %s failed: '%s'", text, msg);
    else
        dip_log(DIP_LOG_ERR, NULL,
                "import %s: cannot record that it failed: %s (its lease "
                "expires and it is tried again)",
                text, err);
}

void sup_claim_run(sup_loop_t *self)
{
    char err[512];
    int refusals = 0;
    /* After a worker could not be started: neither a wake nor a freed
     * slot claims before the pause ends. */
    if (self->now < self->claim_pause_until_ms || !self->indexes_ok)
        return;
    /* Left behind unless a round comes back empty-handed with no account
     * skipped. */
    self->claim_full = 1;
    while (!self->stopping && sup_slot_busy(self) < self->cap &&
           sup_lease_db_ok(self)) {
        bson_oid_t skip[SUP_LOOP_SKIP_MAX];
        size_t nskip = 0;
        bson_t doc;
        sup_slot_t *w = NULL;
        sup_store_held_t *hl =
            calloc(self->cap + SUP_LOOP_ASIDE_MAX, sizeof(*hl));
        bson_oid_t *accounts = calloc(self->cap, sizeof(*accounts));
        size_t nheld, nbusy = 0;
        int64_t sent;
        bson_iter_t id;
        int rc;
        if (hl == NULL || accounts == NULL) {
            free(hl);
            free(accounts);
            return;
        }
        nheld = held_list(self, hl);
        for (size_t i = 0; i < self->cap; i++)
            if (self->workers[i].state != SUP_SLOT_FREE)
                bson_oid_copy(&self->workers[i].account, &accounts[nbusy++]);
        nskip = sup_claim_full_accounts(accounts, nbusy,
                                        self->cfg.max_workers_per_account, skip,
                                        SUP_LOOP_SKIP_MAX);
        free(accounts);
        sent = dip_time_mono_ms();
        rc = sup_store_claim(self->store, skip, nskip, hl, nheld, self->served,
                             self->nserved, self->cfg.max_workers_per_account,
                             &doc, err, sizeof(err));
        free(hl);
        if (rc == SUP_STORE_EUNCLAIMABLE) {
            /* That document alone; the next candidate now, unless this
             * round has refused many already (the loop turns first). */
            note_unclaimable(self, &doc);
            bson_destroy(&doc);
            if (++refusals >= SUP_LOOP_REFUSALS_PER_ROUND) {
                /* candidates may be left: claimed again at the next turn,
                 * not at the next change or poll */
                self->claim_due = 1;
                return;
            }
            continue;
        }
        sup_metrics_claim(self->metrics, rc);
        if (rc <= 0) {
            if (rc < 0) {
                dip_log(DIP_LOG_WARNING, NULL, "%s", err);
                sup_lease_db_failed(self);
            } else if (nskip == 0) {
                self->claim_full = 0;
            }
            return;
        }
        if (sup_store_epoch(&doc) < 0) {
            /* claims 1.5 (or below 0) before the claim: no fence would ever
             * match. First, whatever its _id: ending a document of another
             * _id is fenced by the epoch, and would fail, leaving it
             * processing in its account's slot, claimed again after each
             * lease. */
            bson_t out;
            if (sup_store_refuse_epoch(self->store, &doc, &out) ==
                SUP_STORE_EUNCLAIMABLE)
                note_unclaimable(self, &out);
            bson_destroy(&out);
            bson_destroy(&doc);
            if (++refusals >= SUP_LOOP_REFUSALS_PER_ROUND) {
                self->claim_due = 1;
                return;
            }
            continue;
        }
        if (!bson_iter_init_find(&id, &doc, "_id") ||
            !BSON_ITER_HOLDS_OID(&id)) {
            refuse_claimed(self, &doc);
            bson_destroy(&doc);
            continue;
        }
        if (sup_slot_by_qid_oid(self, bson_iter_oid(&id)) != NULL) {
            /* Excluded by the claim's filter: never reached. */
            dip_log(DIP_LOG_ERR, NULL,
                    "claimed an import this supervisor already runs; "
                    "leaving it to its lease");
            bson_destroy(&doc);
            return;
        }
        for (size_t i = 0; i < self->cap; i++)
            if (self->workers[i].state == SUP_SLOT_FREE) {
                w = &self->workers[i];
                break;
            }
        memset(w, 0, sizeof(*w));
        w->doc = bson_copy(&doc);
        bson_destroy(&doc);
        dip_bson_get_oid(w->doc, "_id", &w->qid);
        bson_oid_to_string(&w->qid, w->qid_hex);
        if (dip_bson_get_oid(w->doc, "account_id", &w->account) != 0)
            bson_oid_init_from_data(&w->account,
                                    (const uint8_t *)"\0\0\0\0\0\0\0\0\0\0\0");
        snprintf(w->name, sizeof(w->name), "deals_import_queue_%s", w->qid_hex);
        sup_claim_note_served(self->served, &self->nserved, SUP_LOOP_SERVED_MAX,
                              &w->account, self->now);
        w->lines = dip_bson_get_int(w->doc, "checkpoint.line", 0);
        /* Where a resumed import stood, so the metrics count only what
         * this supervisor's workers add. */
        w->added = dip_bson_get_int(w->doc, "progress.added", 0);
        w->nerrors = dip_bson_get_int(w->doc, "progress.errors", 0);
        w->bytes = dip_bson_get_int(w->doc, "progress.bytes", 0);
        w->claimed_ms = self->now;
        w->claimed_lines = w->lines;
        w->doc_fresh = 1;
        w->claim_sent_ms = sent;
        w->not_stored =
            dip_bson_get_int(w->doc, "checkpoint.errors_not_stored", 0);
        w->epoch = sup_store_epoch(w->doc);
        /* No error stored before this claim's checkpoint: this claim's
         * runs report every stored one (sup_slot_keep_log). */
        w->logs_own = w->nerrors == 0 && w->not_stored == 0;
        w->lease = SUP_LEASE_HELD;
        w->lease_end_ms = sent + sup_lease_ms(self);
        w->kill_at_ms = INT64_MAX;
        w->state = SUP_SLOT_WAITING;
        if (sup_renew_hold(self->renew, &w->qid, w->epoch) < 0)
            w->lease = SUP_LEASE_LAPSING; /* never renewed: let it go */
        dip_log(DIP_LOG_INFO, w->qid_hex, "claimed import (file '%s')",
                dip_bson_get_str(w->doc, "csv.0.key")
                    ? dip_bson_get_str(w->doc, "csv.0.key")
                    : "");
        if (sup_start_worker(self, w) < 0) {
            sup_end_release(self, w, "pending", NULL);
            self->claim_pause_until_ms =
                self->now + SUP_LOOP_START_FAIL_PAUSE_MS;
            self->next_claim_ms = self->claim_pause_until_ms;
            return;
        }
        if (sup_store_claim_left(self->store) == 0 && nskip == 0) {
            /* The look saw nothing more and passed no account over: no
             * need to ask again. */
            self->claim_full = 0;
            return;
        }
    }
}
