/*
 * dip_claim: the lease-claim filter, the lease's $set and the fence (see
 * dip_claim.h).
 */
#include "dip_claim.h"

void dip_claim_append_expired(bson_t *doc, const char *lease, int64_t now_ms)
{
    bson_t not, gte;
    BSON_APPEND_DOCUMENT_BEGIN(doc, lease, &not );
    BSON_APPEND_DOCUMENT_BEGIN(&not, "$not", &gte);
    BSON_APPEND_DATE_TIME(&gte, "$gte", now_ms);
    bson_append_document_end(&not, &gte);
    bson_append_document_end(doc, &not );
}

void dip_claim_append_free(bson_t *query, const char *lease, int64_t now_ms)
{
    bson_t ors, absent, expired, exists, lt;
    BSON_APPEND_ARRAY_BEGIN(query, "$or", &ors);
    BSON_APPEND_DOCUMENT_BEGIN(&ors, "0", &absent);
    BSON_APPEND_DOCUMENT_BEGIN(&absent, lease, &exists);
    BSON_APPEND_BOOL(&exists, "$exists", false);
    bson_append_document_end(&absent, &exists);
    bson_append_document_end(&ors, &absent);
    BSON_APPEND_DOCUMENT_BEGIN(&ors, "1", &expired);
    BSON_APPEND_DOCUMENT_BEGIN(&expired, lease, &lt);
    BSON_APPEND_DATE_TIME(&lt, "$lt", now_ms);
    bson_append_document_end(&expired, &lt);
    bson_append_document_end(&ors, &expired);
    bson_append_array_end(query, &ors);
}

void dip_claim_append_take(bson_t *set, const char *lease, int64_t now_ms,
                           int64_t duration_ms, const char *owner_field,
                           const char *owner)
{
    BSON_APPEND_DATE_TIME(set, lease, now_ms + duration_ms);
    if (owner_field != NULL)
        BSON_APPEND_UTF8(set, owner_field, owner ? owner : "");
}

void dip_claim_append_fence(bson_t *filter, const bson_value_t *id,
                            const char *owner_field, const char *owner,
                            int64_t epoch)
{
    BSON_APPEND_VALUE(filter, "_id", id);
    BSON_APPEND_UTF8(filter, owner_field, owner ? owner : "");
    if (epoch >= 0)
        BSON_APPEND_INT64(filter, "claims", epoch);
}

int dip_claim_lost(const bson_t *reply)
{
    bson_iter_t it;
    return reply != NULL && bson_iter_init_find(&it, reply, "matchedCount") &&
           BSON_ITER_HOLDS_NUMBER(&it) && bson_iter_as_int64(&it) == 0;
}
