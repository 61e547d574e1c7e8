/*
 * ts_indexes: the indexes a supervisor makes at start, made by the tests of
 * the supervisor's parts that run those parts alone on the development
 * database (follow-ups, cleanup, error file, operators' requests): the
 * service's own calls (sup_store_ensure_indexes, the deals' and stages'
 * indexes, the completion events'), so the parts' queries meet the indexes
 * they run on in production, and the suite's notablescan (scripts/test)
 * refuses any that has none. No index is made here for a test's sake.
 * Header-only, included by one test file each.
 */
#ifndef TS_INDEXES_H
#define TS_INDEXES_H

#include <stdio.h>
#include <stdlib.h>

#include "dip_event.h"
#include "it_env.h"
#include "sup_store.h"

/* Makes them in env's database; exits the test with a sentence when the
 * supervisor's own indexes cannot be made. */
static inline void ts_service_indexes(it_env_t *env)
{
    char err[512];
    sup_store_t *st = sup_store_new(&env->cfg, "indexes", env->client,
                                    env->dbname, err, sizeof(err));
    mongoc_collection_t *events = it_coll(env, DIP_EVENT_COLLECTION);
    if (st == NULL || sup_store_ensure_indexes(st, err, sizeof(err)) != 0 ||
        sup_store_ensure_deal_indexes(st, err, sizeof(err)) != 0 ||
        dip_event_ensure_indexes(events, err, sizeof(err)) < 0) {
        fprintf(stderr, "the supervisor's indexes: %s\n", err);
        exit(1);
    }
    mongoc_collection_destroy(events);
    sup_store_destroy(&st);
}

#endif
