/*
 * dip_deal_index: the indexes an import's writes rely on, made once by the
 * supervisor before it claims anything rather than by every worker at
 * every import:
 * - deals: `account_import_line`, unique on (account_id, import.queue_id,
 *   import.line), partial on `import` existing (the CRM's own deals have
 *   none and never collide). It is what makes a retried or resumed import
 *   idempotent (a line written twice is a duplicate key), so no import may
 *   run before it stands. It leads with the shard key account_id. The
 *   index it replaced, `import_queue_line` on (import.queue_id,
 *   import.line), is dropped once the new one stands, only where it
 *   exists, so deals are never without a unique index.
 * - pipeline_stages: `account_pipeline_name`, unique on (account_id,
 *   pipeline_id, name), a guard against concurrent duplicate stages that
 *   a CRM database may already violate (the original service could make
 *   them): its failure is logged, and imports run without it.
 * - deals: `account_external_id`, unique on (account_id, external_id),
 *   partial on external_id being a string: the match key of updates and
 *   upserts; its failure is logged, and an import matching on it fails.
 * Creating an index that exists with the same spec is a no-op, also when
 * several supervisors start at once.
 */
#ifndef DIP_DEAL_INDEX_H
#define DIP_DEAL_INDEX_H

#include <stddef.h>

#include <mongoc/mongoc.h>

/* Their names, which a duplicate-key error quotes. */
#define DIP_DEAL_INDEX_DEALS "account_import_line"
#define DIP_DEAL_INDEX_OLD_DEALS "import_queue_line"
#define DIP_DEAL_INDEX_STAGES "account_pipeline_name"
#define DIP_DEAL_INDEX_EXTERNAL "account_external_id"

/* Makes both indexes (collections borrowed). 0 when the deals' index
 * stands (the stages' may have failed, logged); -1 with err filled when
 * it does not, or its predecessor could not be checked or dropped. Each
 * call is bounded by the client's own timeouts; an index build the server
 * goes on with after a timeout is joined by the next call. */
int dip_deal_index_ensure(mongoc_collection_t *deals,
                          mongoc_collection_t *stages, char *err,
                          size_t errlen);

/* One unique index (partial may be NULL) on coll, as createIndexes makes
 * it: 0, or -1 with error filled (the caller decides whether to retry). */
int dip_deal_index_create(mongoc_collection_t *coll, const char *name,
                          const bson_t *keys, const bson_t *partial,
                          bson_error_t *error);

/* 1 when coll has an index named name, 0 when not, -1 with err filled
 * when the indexes could not be listed (a collection that does not exist
 * yet has none: the driver answers with an empty list). */
int dip_deal_index_has(mongoc_collection_t *coll, const char *name, char *err,
                       size_t errlen);

#endif
