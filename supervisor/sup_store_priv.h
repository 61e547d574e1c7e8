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
    mongoc_client_t *client; /* borrowed */
    mongoc_collection_t *queues, *deals, *imports, *errors, *stages;
    mongoc_collection_t *lines; /* csv_import_lines (sup_succfile) */
    char owner[256];
    long lease_s;
    int deletes_source; /* DEALIMPORT_DELETE_SOURCE is not `never` */
    int64_t claim_left; /* sup_store_claim_left */
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

/* Applies update to the one queue document filter (a fence) matches, and
 * destroys both (taken). SUP_STORE_OK; SUP_STORE_EFAIL with "<what> failed:
 * <the driver's sentence>" in err; SUP_STORE_ELOST when the fence matched
 * nothing (dip_claim_lost: the claim is gone). */
int sup_store_update_take(sup_store_t *self, bson_t *filter, bson_t *update,
                          const char *what, char *err, size_t errlen);
/* The same, with the driver's error in *error on SUP_STORE_EFAIL. */
int sup_store_update_take_e(sup_store_t *self, bson_t *filter, bson_t *update,
                            const char *what, bson_error_t *error, char *err,
                            size_t errlen);

#endif
