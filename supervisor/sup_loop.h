/*
 * sup_loop: the supervisor's single-threaded event loop. One zmq_poll waits
 * on the worker-events socket, the control socket and a signalfd (SIGCHLD,
 * SIGTERM, SIGINT, SIGHUP); timers drive polling for imports, lease renewal,
 * progress flushes, worker restarts and the systemd watchdog.
 */
#ifndef SUP_LOOP_H
#define SUP_LOOP_H

#include "dip_config.h"

typedef struct sup_loop sup_loop_t;

/* Prepares everything the loop needs (runtime directory, sockets, database
 * client, signalfd). The caller must have blocked SIGCHLD, SIGTERM, SIGINT
 * and SIGHUP. config_file (may be NULL) is reread on SIGHUP. Takes nothing
 * from cfg after return except by copy. */
sup_loop_t *sup_loop_new(const dip_config_t *cfg, const char *config_file,
                         const char *self_exe, char *err, size_t errlen);
void sup_loop_destroy(sup_loop_t **self_p);

/* Runs until SIGTERM/SIGINT and a clean hand-back of running imports.
 * Returns the process exit status (0 after a clean shutdown). */
int sup_loop_run(sup_loop_t *self);

#endif
