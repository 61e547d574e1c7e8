/*
 * wrk_fence: the decision half of the worker's fencing: pure, over the
 * claim fields of the queue document and a monotonic time.
 */
#include "wrk_fence.h"
#include "dip_bson.h"

#include <stdio.h>
#include <string.h>

void wrk_fence_init(wrk_fence_t *f, const char *owner, int64_t epoch,
                    long lease_s, int64_t now_ms)
{
    memset(f, 0, sizeof(*f));
    snprintf(f->owner, sizeof(f->owner), "%s", owner ? owner : "");
    f->epoch = epoch;
    f->period_ms = lease_s * 1000 / 3;
    if (f->period_ms < 1)
        f->period_ms = 1;
    /* The first check is the document the worker loads at its start. */
    f->next_check_ms = now_ms;
    f->confirmed_ms = now_ms;
}

int wrk_fence_due(const wrk_fence_t *f, int64_t now_ms)
{
    return f->owner[0] != '\0' && now_ms >= f->next_check_ms;
}

static int64_t epoch_of(const bson_t *doc, int *ok)
{
    bson_iter_t it;
    int64_t v = 0;
    *ok = bson_iter_init_find(&it, doc, "claims") &&
          dip_bson_iter_int(&it, &v) == 0;
    return *ok ? v : 0;
}

static const char *str_of(const bson_t *doc, const char *key)
{
    bson_iter_t it;
    if (bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_UTF8(&it))
        return bson_iter_utf8(&it, NULL);
    return NULL;
}

wrk_fence_verdict_t wrk_fence_judge(wrk_fence_t *f, const bson_t *doc,
                                    int read_ok, int64_t now_ms)
{
    const char *by, *status;
    int64_t epoch;
    int has_epoch;
    if (f->owner[0] == '\0')
        return WRK_FENCE_OURS;
    if (!read_ok)
        return WRK_FENCE_UNKNOWN;
    if (doc == NULL)
        return WRK_FENCE_GONE;
    by = str_of(doc, "claimed_by");
    status = str_of(doc, "status");
    epoch = epoch_of(doc, &has_epoch);
    if (by == NULL || strcmp(by, f->owner) != 0 || !has_epoch ||
        epoch != f->epoch || status == NULL ||
        strcmp(status, "processing") != 0)
        return WRK_FENCE_GONE;
    f->confirmed_ms = now_ms;
    f->next_check_ms = now_ms + f->period_ms;
    return WRK_FENCE_OURS;
}
