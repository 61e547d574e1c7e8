/*
 * sup_renew: the lease keeper. A thread of its own, with its own database
 * connection, renews the leases of the imports this supervisor holds every
 * sixth of the lease, so that no slow call on the supervisor's loop (a count
 * at the end of a big import, say) can keep a lease from being renewed. The
 * loop tells it which claims it holds and reads back, per claim, until when
 * (by the monotonic clock) the last renewal it wrote holds, and whether the
 * claim was found gone. Everything else stays on the loop.
 */
#ifndef SUP_RENEW_H
#define SUP_RENEW_H

#include <stddef.h>
#include <stdint.h>

#include <bson/bson.h>

#include "dip_config.h"
#include "sup_metrics.h"

typedef struct sup_renew sup_renew_t;

/* Starts the thread; owner as for sup_store_new; metrics (borrowed, may be
 * NULL; its calls are thread-safe) counts each renewal and its failures.
 * NULL with err filled. */
sup_renew_t *sup_renew_new(const dip_config_t *cfg, const char *owner,
                           sup_metrics_t *metrics, char *err, size_t errlen);
/* Stops the thread; a renewal still blocked in the driver is left to the
 * process's exit rather than waited for. */
void sup_renew_destroy(sup_renew_t **self_p);

/* Renews the claim (id, epoch) from now on, until sup_renew_forget. */
int sup_renew_hold(sup_renew_t *self, const bson_oid_t *id, int64_t epoch);
void sup_renew_forget(sup_renew_t *self, const bson_oid_t *id);

/* What the thread learnt of the claim: *until_ms, the monotonic time its
 * last renewal holds to (0: none yet), and *lost, 1 when the claim was
 * found gone. 0, or -1 when the claim is not held. */
int sup_renew_state(sup_renew_t *self, const bson_oid_t *id, int64_t epoch,
                    int64_t *until_ms, int *lost);

#endif
