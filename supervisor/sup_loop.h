/*
 * sup_loop: the supervisor's single-threaded event loop. One zmq_poll waits
 * on the worker-events socket, the control socket, a signalfd (SIGCHLD,
 * SIGTERM, SIGINT, SIGHUP) and the completion events' sockets; timers drive
 * claiming, the operators' requests, progress flushes, worker restarts,
 * status lines and the systemd watchdog. The loop is a core (sup_loop.c)
 * and rooms of its own, each a file sharing sup_loop_priv.h: the slot
 * table, lease timing and the database gate, starting workers, the
 * workers' messages, the end of an import, and claiming. Their decisions
 * are pure functions with tests of their own (sup_lease.h, sup_inbox.h,
 * sup_end.h, sup_claim.h, and sup_life.h for a worker's end).
 */
#ifndef SUP_LOOP_H
#define SUP_LOOP_H

#include "dip_config.h"

typedef struct sup_loop sup_loop_t;

/* Prepares everything the loop needs: the runtime directory and its lock,
 * the sockets, the signalfd, the lease keeper's thread and what the rooms
 * use, with one database client for this thread (the lease keeper has its
 * own). The caller must have blocked SIGCHLD, SIGTERM, SIGINT and SIGHUP.
 * config_file (may be NULL) is reread on SIGHUP. Takes nothing from cfg after
 * return except by copy. NULL with err filled. */
sup_loop_t *sup_loop_new(const dip_config_t *cfg, const char *config_file,
                         const char *self_exe, char *err, size_t errlen);
void sup_loop_destroy(sup_loop_t **self_p);

/* Runs until SIGTERM/SIGINT and a clean hand-back of running imports (or
 * the stop timeout). Returns the process exit status (0 after a shutdown). */
int sup_loop_run(sup_loop_t *self);

#endif
