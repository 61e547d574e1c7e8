/*
 * sup_sampler: the queue sampler. A thread of its own, with its own
 * database connection, reads every SUP_SAMPLER_EVERY_MS what the metrics
 * show of the queue as a whole (all supervisors) and of the database:
 *
 *   - whether the database answers (a `ping`): dealimport_database_up and
 *     the readiness of /readyz;
 *   - the imports by status (pending, processing, paused): three counts on
 *     the `source_status_created` index (equality on source and status, a
 *     prefix of it), each stopped at SUP_SAMPLER_COUNT_CAP documents;
 *   - the creation time of the oldest pending import: the first key of the
 *     same index in created_at order.
 *
 * Its cost does not depend on how often anyone scrapes: a render only
 * reads what the last sample left. Each read carries maxTimeMS
 * (SUP_SAMPLER_MAX_TIME_MS, or half the driver's socket timeout when that
 * is shorter), so a query the server is slow to answer is abandoned there
 * too; a read that fails leaves its figure as it was and is counted
 * (dealimport_queue_sample_failures_total). A failed sample is not retried
 * before the next period: the figures are for people and alerts, nothing
 * waits on them, so a slow database is never asked more often because it
 * is slow. The supervisor's loop never waits on the sampler.
 */
#ifndef SUP_SAMPLER_H
#define SUP_SAMPLER_H

#include <stddef.h>

#include "dip_config.h"
#include "sup_metrics.h"

#define SUP_SAMPLER_EVERY_MS 15000
#define SUP_SAMPLER_MAX_TIME_MS 2000
#define SUP_SAMPLER_COUNT_CAP 1000000

typedef struct sup_sampler sup_sampler_t;

/* Starts the thread; metrics is borrowed and must outlive self. NULL with
 * err filled (a malformed URI, no thread). */
sup_sampler_t *sup_sampler_new(const dip_config_t *cfg, sup_metrics_t *metrics,
                               char *err, size_t errlen);
/* Stops the thread; a sample still blocked in the driver is left to the
 * process's exit rather than waited for (it no longer touches metrics). */
void sup_sampler_destroy(sup_sampler_t **self_p);

#endif
