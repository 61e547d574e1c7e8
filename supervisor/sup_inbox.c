/*
 * sup_inbox: the workers' messages. Each frame comes under a ZeroMQ
 * identity; a slot hears it only after a hello that proves this spawn (the
 * import, this supervisor's claim and epoch, the secret handed to the
 * spawn), and anything else is dropped and counted, never trusted. Batches,
 * line errors and the done message go into the slot; acks tell each worker
 * what is stored and keep it inside its window of unacknowledged bytes, so
 * the line errors held here stay bounded.
 */
#include "sup_inbox.h"
#include "sup_loop_priv.h"
#include "dip_bson.h"
#include "dip_log.h"
#include "dip_text.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

/* ---- the rules -------------------------------------------------------- */

int sup_inbox_hello_matches(const bson_t *doc, const char *owner, int64_t epoch,
                            const char *spawn_secret, const dip_msg_t *m,
                            const char **why)
{
    bson_iter_t it;
    const bson_value_t *id;
    *why = NULL;
    if (doc == NULL || !bson_iter_init_find(&it, doc, "_id")) {
        *why = "the import has no _id";
        return 0;
    }
    id = bson_iter_value(&it);
    if (id->value_type != m->queue_id.value_type ||
        (id->value_type == BSON_TYPE_OID &&
         !bson_oid_equal(&id->value.v_oid, &m->queue_id.value.v_oid)) ||
        (id->value_type == BSON_TYPE_UTF8 &&
         (id->value.v_utf8.len != m->queue_id.value.v_utf8.len ||
          memcmp(id->value.v_utf8.str, m->queue_id.value.v_utf8.str,
                 id->value.v_utf8.len) != 0)) ||
        (id->value_type == BSON_TYPE_INT32 &&
         id->value.v_int32 != m->queue_id.value.v_int32) ||
        (id->value_type == BSON_TYPE_INT64 &&
         id->value.v_int64 != m->queue_id.value.v_int64))
        *why = "it names another import";
    else if (m->owner == NULL || strcmp(m->owner, owner) != 0 ||
             m->epoch != epoch)
        *why = "it names another claim";
    else if (m->secret == NULL || !dip_msg_is_secret(m->secret) ||
             strcmp(m->secret, spawn_secret) != 0)
        *why = "its secret is not this spawn's";
    return *why == NULL;
}

void sup_inbox_frame(const sup_inbox_frame_facts_t *f,
                     sup_inbox_frame_verdict_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!f->has_slot) {
        out->kind = SUP_INBOX_DROP_STRANGER;
    } else if (!f->decoded) {
        /* still bytes the proven worker sent: they count */
        out->kind = SUP_INBOX_DROP_MALFORMED;
        out->count = f->hello_ok;
    } else if (f->type == DIP_MSG_HELLO && !f->hello_matches) {
        out->kind = SUP_INBOX_DROP_FORGED;
    } else if (f->type != DIP_MSG_HELLO && !f->hello_ok) {
        /* Frames from an identity without this spawn's hello are not the
         * worker's: whoever chose that identity is not heard. */
        out->kind = SUP_INBOX_DROP_UNPROVEN;
    } else {
        out->kind = SUP_INBOX_HEAR;
        out->prove = f->type == DIP_MSG_HELLO;
        out->hear = 1;
        /* heartbeats are outside flow control */
        out->count = f->type != DIP_MSG_HEARTBEAT;
    }
}

void sup_inbox_flow(const sup_inbox_flow_facts_t *f,
                    sup_inbox_flow_verdict_t *out)
{
    memset(out, 0, sizeof(*out));
    /* The error buffer is bounded in bytes: each worker may have a window
     * unacknowledged, so a worker over it (plus the frame in flight) does
     * not follow the protocol. */
    out->kill =
        f->running && f->err_bytes > (size_t)f->window + DIP_MSG_MAX_FRAME;
    /* Write when half a window waits, so a worker never stalls on a full
     * one; when nothing waits, what arrived is acknowledged at once. */
    if ((f->nerrs >= SUP_INBOX_FLUSH_ERRORS ||
         f->err_bytes >= (size_t)f->window / 2 ||
         f->all_err_bytes >= (size_t)f->buffer_bytes) &&
        (!f->flush_failed || f->since_flush_ms >= SUP_SLOT_FLUSH_MS))
        out->flush = 1;
    else if (!f->pending)
        out->ack = 1;
    out->end = f->exited_done;
}

/* ---- the loop's side ------------------------------------------------- */

static int send_frame(sup_loop_t *self, sup_slot_t *w, bson_t *frame)
{
    int rc = -1;
    if (frame &&
        zmq_send(self->events, w->name, strlen(w->name),
                 ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0 &&
        zmq_send(self->events, bson_get_data(frame), frame->len,
                 ZMQ_DONTWAIT) >= 0)
        rc = 0;
    bson_destroy(frame);
    return rc;
}

int sup_inbox_send_control(sup_loop_t *self, sup_slot_t *w,
                           dip_control_action_t action)
{
    return send_frame(self, w, dip_msg_control(action));
}

/* Tells the worker what is stored and how much more it may send; also the
 * supervisor's sign of life to it. */
void sup_inbox_send_ack(sup_loop_t *self, sup_slot_t *w)
{
    if (w->state != SUP_SLOT_RUNNING || !w->hello_ok)
        return;
    if (!sup_slot_pending(w))
        w->acked_bytes = w->recv_bytes;
    send_frame(self, w, dip_msg_ack(w->acked_bytes, self->window));
    w->last_ack_ms = self->now;
}

/* A line error, turned into its csv_import_errors document at once: the
 * frame's own row array, copied, no second object. */
static void on_line_error(sup_loop_t *self, sup_slot_t *w, const dip_msg_t *m)
{
    bson_t *d = bson_sized_new(m->row.len + 256);
    bson_iter_t it;
    if (w->nerrs == w->errs_cap) {
        size_t cap = w->errs_cap ? w->errs_cap * 2 : 64;
        bson_t **errs = realloc(w->errs, cap * sizeof(*errs));
        if (errs == NULL) {
            bson_destroy(d);
            dip_log(DIP_LOG_ERR, w->qid_hex,
                    "out of memory: the line error of line %lld is lost",
                    (long long)m->line);
            return;
        }
        w->errs = errs;
        w->errs_cap = cap;
    }
    if (bson_iter_init_find(&it, w->doc, "_id"))
        bson_append_value(d, "queue_id", -1, bson_iter_value(&it));
    BSON_APPEND_INT64(d, "line", m->line);
    BSON_APPEND_UTF8(d, "field", m->field);
    BSON_APPEND_UTF8(d, "message", m->message);
    BSON_APPEND_ARRAY(d, "row", &m->row);
    BSON_APPEND_BOOL(d, "row_truncated", m->row_truncated != 0);
    BSON_APPEND_DATE_TIME(d, "created_at", dip_bson_now_ms());
    w->errs[w->nerrs++] = d;
    sup_slot_keep_log(w, m->line, m->field, m->message);
    w->err_bytes += d->len;
    self->err_bytes += d->len;
}

/* A frame not taken: logged, then counted for five seconds (per import,
 * and once more for identities of no import), so a flood of them cannot
 * flood the log. */
static void drop_frame(sup_loop_t *self, sup_slot_t *w, const char *identity,
                       size_t idlen, const char *why)
{
    char who[80];
    long *count = w ? &w->dropped : &self->dropped;
    int64_t *at = w ? &w->dropped_log_ms : &self->dropped_log_ms;
    (*count)++;
    if (*at && self->now - *at < SUP_LOOP_DROP_LOG_MS)
        return;
    dip_text_format(who, sizeof(who), NULL, "%.*s",
                    (int)(idlen > 64 ? 64 : idlen), identity);
    dip_log(DIP_LOG_WARNING, w ? w->qid_hex : NULL,
            "dropped a message from '%s': %s (%ld dropped since the last "
            "such line)",
            who, why, *count);
    *count = 0;
    *at = self->now;
}

static void on_message(sup_loop_t *self, const char *identity, size_t idlen,
                       const void *data, size_t len)
{
    dip_msg_t m;
    char err[256] = "", why[320] = "";
    const char *reason = NULL;
    sup_slot_t *w = sup_slot_by_identity(self, identity, idlen);
    sup_inbox_frame_facts_t ff = {.has_slot = w != NULL};
    sup_inbox_frame_verdict_t fv;
    sup_inbox_flow_facts_t lf;
    sup_inbox_flow_verdict_t lv;
    if (w != NULL) {
        ff.decoded = dip_msg_decode(data, len, &m, err, sizeof(err)) == 0;
        ff.hello_ok = w->hello_ok;
        if (ff.decoded) {
            ff.type = m.type;
            ff.hello_matches =
                m.type == DIP_MSG_HELLO &&
                sup_inbox_hello_matches(w->doc, self->owner, w->epoch,
                                        w->spawn_secret, &m, &reason);
        }
    }
    sup_inbox_frame(&ff, &fv);
    switch (fv.kind) {
    case SUP_INBOX_DROP_STRANGER:
        drop_frame(self, NULL, identity, idlen,
                   "no import of ours runs under that identity");
        return;
    case SUP_INBOX_DROP_MALFORMED:
        dip_text_format(why, sizeof(why), NULL, "malformed: %s", err);
        break;
    case SUP_INBOX_DROP_FORGED:
        dip_text_format(why, sizeof(why), NULL,
                        "a hello (pid %lld) not from this spawn: %s",
                        (long long)m.pid, reason ? reason : "");
        break;
    case SUP_INBOX_DROP_UNPROVEN:
        dip_text_format(why, sizeof(why), NULL,
                        "a '%s' with no hello carrying this spawn's secret "
                        "before it",
                        dip_msg_type_name(m.type));
        break;
    case SUP_INBOX_HEAR:
        break;
    }
    if (fv.prove) {
        w->hello_ok = 1;
        w->recv_bytes = w->acked_bytes = 0;
    }
    if (fv.count)
        w->recv_bytes += (int64_t)len;
    if (fv.kind != SUP_INBOX_HEAR) {
        drop_frame(self, w, identity, idlen, why);
        return;
    }
    if (fv.hear)
        w->last_heard_ms = self->now;
    switch (m.type) {
    case DIP_MSG_HELLO:
        dip_log(DIP_LOG_INFO, w->qid_hex, "hello from worker %lld",
                (long long)m.pid);
        /* A request made before the worker could hear it. */
        if (w->requested)
            sup_inbox_send_control(self, w, w->requested);
        break;
    case DIP_MSG_START:
        dip_log_fields(DIP_LOG_INFO, w->qid_hex,
                       DIP_LOG_FIELDS(DIP_LOG_NUM("worker_pid", w->pid),
                                      DIP_LOG_NUM("line", m.first_line)),
                       "worker pid=%d starts at line %lld", (int)w->pid,
                       (long long)m.first_line);
        w->first_line = m.first_line;
        if (m.has_header) {
            bson_destroy(w->header);
            w->header = bson_copy(&m.header);
            w->header_dirty = w->header != NULL;
        }
        break;
    case DIP_MSG_BATCH:
        sup_metrics_progress(self->metrics, m.added - w->added,
                             m.errors - w->nerrors, m.bytes - w->bytes,
                             m.db_round_trips - w->round_trips);
        w->round_trips = m.db_round_trips;
        w->lines = m.lines;
        w->added = m.added;
        w->nerrors = m.errors;
        w->not_stored = m.errors_not_stored;
        w->bytes = m.bytes;
        w->bytes_total = m.bytes_total;
        bson_destroy(w->checkpoint);
        w->checkpoint = bson_copy(&m.checkpoint);
        w->dirty = 1;
        break;
    case DIP_MSG_LINE_ERROR:
        on_line_error(self, w, &m);
        break;
    case DIP_MSG_DONE:
        w->done = 1;
        w->status = m.status;
        w->lines = m.lines > w->lines ? m.lines : w->lines;
        if (m.errors_not_stored > w->not_stored)
            w->not_stored = m.errors_not_stored;
        free(w->error);
        w->error = m.error ? strdup(m.error) : NULL;
        bson_destroy(w->notes);
        w->notes = m.has_notes ? bson_copy(&m.notes) : NULL;
        w->dry_run = m.dry_run;
        w->would_add = m.would_add;
        w->new_stages_count = m.new_stages_count;
        bson_destroy(w->new_stages);
        w->new_stages = m.dry_run ? bson_copy(&m.new_stages) : NULL;
        w->has_counts = m.has_counts;
        w->updated = m.updated;
        w->unchanged = m.unchanged;
        break;
    default:
        break;
    }
    lf.running = w->state == SUP_SLOT_RUNNING;
    lf.exited_done = m.type == DIP_MSG_DONE && w->state == SUP_SLOT_EXITED;
    lf.nerrs = w->nerrs;
    lf.err_bytes = w->err_bytes;
    lf.all_err_bytes = self->err_bytes;
    lf.window = self->window;
    lf.buffer_bytes = self->cfg.error_buffer_bytes;
    lf.pending = sup_slot_pending(w);
    lf.flush_failed = w->flush_failed;
    lf.since_flush_ms = self->now - w->last_flush_ms;
    sup_inbox_flow(&lf, &lv);
    if (lv.kill) {
        dip_log(DIP_LOG_ERR, w->qid_hex,
                "worker pid=%d sent %zu bytes of line errors past its window: "
                "killing it",
                (int)w->pid, w->err_bytes);
        sup_slot_kill(w, SIGKILL);
    }
    if (lv.flush)
        sup_end_flush(self, w);
    else if (lv.ack)
        sup_inbox_send_ack(self, w);
    if (lv.end)
        sup_end_exited(self, w, w->exit_status);
}

void sup_inbox_drain(sup_loop_t *self)
{
    for (int i = 0; i < SUP_LOOP_MSGS_PER_WAKE; i++) {
        zmq_msg_t id, body;
        int more = 0;
        size_t ml = sizeof(more);
        zmq_msg_init(&id);
        if (zmq_msg_recv(&id, self->events, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&id);
            return;
        }
        zmq_msg_init(&body);
        zmq_getsockopt(self->events, ZMQ_RCVMORE, &more, &ml);
        if (more && zmq_msg_recv(&body, self->events, ZMQ_DONTWAIT) >= 0) {
            /* Anything beyond two frames is not ours: drop it. */
            zmq_getsockopt(self->events, ZMQ_RCVMORE, &more, &ml);
            if (!more)
                on_message(self, zmq_msg_data(&id), zmq_msg_size(&id),
                           zmq_msg_data(&body), zmq_msg_size(&body));
            while (more) {
                zmq_msg_t extra;
                zmq_msg_init(&extra);
                zmq_msg_recv(&extra, self->events, ZMQ_DONTWAIT);
                zmq_msg_close(&extra);
                zmq_getsockopt(self->events, ZMQ_RCVMORE, &more, &ml);
            }
        }
        zmq_msg_close(&id);
        zmq_msg_close(&body);
    }
}
