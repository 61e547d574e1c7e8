/*
 * wrk_upsert_retry: the rows of a batch whose updates missed their deals
 * although they are still in the pipeline (another writer changed a field
 * the update changes, added a tag it adds, or stored the deal's ids in the
 * other form after the lookup): each is attempted again, read again, its
 * change record rewritten when it is this run's, a bounded number of
 * times, then a line error.
 */
#include "wrk_upsert_priv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The rows whose updates missed a deal still in the pipeline (b's retry):
 * another attempt with them alone, which reads their deals again, or,
 * after WRK_UPSERT_ATTEMPTS, their line errors with their own change
 * records removed. */
int wrk_upsert_retry_rows(wrk_upsert_t *self, const rows_t *r, batch_ctx_t *b,
                          int round, char *err, size_t errlen)
{
    rows_t sub = {0};
    size_t m = 0, *at = NULL;
    bson_t **docs = NULL;
    int64_t *lines = NULL, *earlier = NULL, *mine = NULL;
    int *given = NULL, *outcome = NULL;
    int rc = WRK_DB_OK;
    for (size_t i = 0; i < r->n; i++)
        m += b->plan[i].retry != 0;
    if (m == 0)
        return WRK_DB_OK;
    if (round + 1 >= WRK_UPSERT_ATTEMPTS) {
        char msg[256];
        snprintf(msg, sizeof(msg),
                 "the deal was changed by someone else at each of %d "
                 "attempts while the import ran, so this line was not "
                 "applied: import it again to update it",
                 WRK_UPSERT_ATTEMPTS);
        for (size_t i = 0; i < r->n; i++) {
            /* the others' were removed before this attempt's writes */
            b->plan[i].drop = 0;
            if (!b->plan[i].retry)
                continue;
            wrk_upsert_refuse(r->messages, i, r->outcome, msg);
            b->plan[i].drop = DROP_OWN;
            if (r->ids)
                memset(&r->ids[i], 0, sizeof(r->ids[i]));
        }
        return wrk_upsert_drop_marked(self, b, err, errlen);
    }
    at = calloc(m, sizeof(*at));
    docs = calloc(m, sizeof(*docs));
    lines = calloc(m, sizeof(*lines));
    earlier = calloc(m, sizeof(*earlier));
    given = calloc(m, sizeof(*given));
    mine = calloc(m, sizeof(*mine));
    outcome = calloc(m, sizeof(*outcome));
    sub.messages = calloc(m, sizeof(*sub.messages));
    sub.ids = r->ids ? calloc(m, sizeof(*sub.ids)) : NULL;
    if (at == NULL || docs == NULL || lines == NULL || earlier == NULL ||
        given == NULL || mine == NULL || outcome == NULL ||
        sub.messages == NULL || (r->ids && sub.ids == NULL)) {
        snprintf(err, errlen, "out of memory");
        rc = WRK_DB_EFAIL;
        goto cleanup;
    }
    m = 0;
    for (size_t i = 0; i < r->n; i++) {
        if (!b->plan[i].retry)
            continue;
        at[m] = i;
        docs[m] = r->docs[i];
        lines[m] = r->lines[i];
        earlier[m] = r->earlier[i];
        given[m] = r->status_given ? r->status_given[i] : 1;
        mine[m++] = wrk_upsert_change_at(b->plan[i].change);
    }
    sub.docs = docs;
    sub.lines = lines;
    sub.earlier = earlier;
    sub.status_given = given;
    sub.mine = mine;
    sub.n = m;
    sub.outcome = outcome;
    rc = wrk_upsert_attempt(self, &sub, round + 1, err, errlen);
    for (size_t k = 0; k < m; k++) {
        size_t i = at[k];
        r->outcome[i] = outcome[k];
        free(r->messages[i]);
        r->messages[i] = sub.messages[k];
        sub.messages[k] = NULL;
        if (r->ids && rc == WRK_DB_OK)
            bson_oid_copy(&sub.ids[k], &r->ids[i]);
    }
cleanup:
    free(at);
    free(docs);
    free(lines);
    free(earlier);
    free(given);
    free(mine);
    free(outcome);
    free(sub.messages);
    free(sub.ids);
    return rc;
}
