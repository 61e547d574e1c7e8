/*
 * sup_life: what a worker's end means for its import. Given everything the
 * supervisor knows when a worker process is gone (its exit status, the done
 * message it sent, an operator's request, the restart and temporary-failure
 * counters, a shutdown in progress, and the state of the import's lease),
 * sup_life_decide returns one action: finish the import with a status and a
 * sentence, hand it back as pending or paused, start a new worker after a
 * delay, or drop it without writing anything (the claim is gone or running
 * out, so another supervisor's writes win). It does no I/O and reads no
 * clock: the loop gathers the facts and carries the action out, and the
 * table-driven test in tests/supervisor/test_sup_life.c pins every rule.
 */
#ifndef SUP_LIFE_H
#define SUP_LIFE_H

#include <stdint.h>

#include "dip_msg.h"

/* Crashes count against worker_restarts within this window. */
#define SUP_LIFE_RESTART_WINDOW_MS (10 * 60 * 1000)
/* Temporary failures in a row without headway before the import fails. */
#define SUP_LIFE_TEMPFAIL_LIMIT 10
/* The longest wait before a worker is started again. */
#define SUP_LIFE_MAX_DELAY_MS 300000

typedef enum {
    SUP_LEASE_HELD = 0, /* renewed in time: writes for the import are ours */
    SUP_LEASE_LAPSING,  /* not renewed: the workers were told to stop before
                           the lease runs out; a fresh claim takes it up */
    SUP_LEASE_LOST,     /* a fenced write found another claim */
} sup_lease_t;

/* What is known when a worker process has ended. */
typedef struct sup_life_facts {
    int wait_status;                /* from waitpid */
    int oom;                        /* its cgroup recorded an OOM kill */
    int done;                       /* a done message arrived from this run */
    dip_done_status_t status;       /* the done message's status */
    const char *error;              /* the done message's sentence, or NULL */
    dip_control_action_t requested; /* an operator's pause or cancel, or 0 */
    int stopping;                   /* the supervisor is shutting down */
    sup_lease_t lease;
    int64_t now_ms;          /* monotonic, for the restart window */
    int64_t lines;           /* lines reached so far */
    int64_t run_start_lines; /* lines when this run started */
    const char *how;         /* the exit in words (sup_spawn_describe) */
    long memory_mb;          /* the worker's memory limit */
    long restarts_allowed;   /* DEALIMPORT_WORKER_RESTARTS */
    long backoff_ms;         /* DEALIMPORT_ROW_BACKOFF_MS */
} sup_life_facts_t;

/* Per import, kept across worker runs; sup_life_decide updates them. */
typedef struct sup_life_counters {
    int restarts;              /* crashes in the current window */
    int64_t restart_window_ms; /* when that window started */
    int tempfails;             /* temporary failures in a row */
    int stalls;                /* crashes in a row that moved no line on */
} sup_life_counters_t;

typedef enum {
    SUP_LIFE_FINISH = 1, /* write the final status (status, sentence) */
    SUP_LIFE_RELEASE,    /* hand back as status (pending or paused) */
    SUP_LIFE_RESPAWN,    /* a new worker after delay_ms */
    SUP_LIFE_DROP,       /* free the slot, write nothing, start nothing */
} sup_life_kind_t;

typedef struct sup_life_action {
    sup_life_kind_t kind;
    const char *status; /* FINISH: completed|failed|cancelled;
                           RELEASE: pending|paused; else NULL */
    /* FINISH: the import's error sentence ("" for none); RESPAWN and DROP:
     * what to log. */
    char sentence[1024];
    int64_t delay_ms; /* RESPAWN */
} sup_life_action_t;

/* Decides what a worker's end means; pure: no I/O, no clock. */
void sup_life_decide(const sup_life_facts_t *facts, sup_life_counters_t *c,
                     sup_life_action_t *out);

/* 48210 -> "48,210": line numbers in sentences people read. */
const char *sup_life_grouped(int64_t v, char *buf, size_t len);

#endif
