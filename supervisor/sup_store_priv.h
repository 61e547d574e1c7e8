/*
 * sup_store_priv: what the files of sup_store share, included only by them
 * (sup_store.c: the client, indexes and fences; sup_store_claim.c: claiming;
 * sup_store_lease.c: renewing and handing back; sup_store_progress.c:
 * progress and line errors; sup_store_finish.c: the end of an import and its
 * repair). Nothing here is part of sup_store's contract.
 */
#ifndef SUP_STORE_PRIV_H
#define SUP_STORE_PRIV_H

#include "sup_store.h"
#include "dip_claim.h"
#include "dip_mongo_io.h"

struct sup_store {
    mongoc_client_t *client;
    mongoc_collection_t *queues, *deals, *imports, *errors;
    char owner[256];
    char *uri;
    long lease_s;
};

/* The account as one key, whether the CRM stored it as an ObjectId or as
 * its 24-hex string: "hex" for both, the string itself for another string,
 * "" for anything else. */
void sup_store_account_key(const bson_value_t *v, char *out, size_t len);

/* A new filter {_id, claimed_by: owner, claims: epoch} (dip_claim's
 * fence): writes only the holder of this claim may do. The caller destroys
 * it. */
bson_t *sup_store_owned(sup_store_t *self, const bson_value_t *qid,
                        int64_t epoch);

/* After a fenced update that succeeded: SUP_STORE_ELOST, with the sentence
 * in err, when it matched nothing (dip_claim_lost), else SUP_STORE_OK. */
int sup_store_lost(const bson_t *reply, char *err, size_t errlen);

#endif
