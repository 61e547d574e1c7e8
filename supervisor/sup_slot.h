/*
 * sup_slot: the rule of a slot's timers, each turn of the loop. Facts in,
 * one verdict out, no I/O and no clock: whether the slot's progress is due
 * to be written, the worker due an ack (the supervisor's sign of life), a
 * reaped worker's end due (its last messages had their moment), a waiting
 * import due a new worker (or, in a shutdown, its hand-back), and whether a
 * worker is killed for silence or for its time limit. sup_slot.c's other
 * half, the slot table itself, is declared in sup_loop_priv.h;
 * tests/supervisor/test_sup_slot.c pins both.
 */
#ifndef SUP_SLOT_H
#define SUP_SLOT_H

#include <stdint.h>

/* A worker silent this long (or a lease, if longer) is killed: workers beat
 * every quarter lease from their hello on. */
#define SUP_SLOT_SILENCE_MS 120000
/* How long a reaped worker's last messages may still be in flight. */
#define SUP_SLOT_EXIT_GRACE_MS 2000
/* Progress is written at most this often per worker by the timers. */
#define SUP_SLOT_FLUSH_MS 1000
/* An operator's cancel or pause that the worker has not answered by
 * ending: SIGTERM after this long (a worker answers within about a second
 * even while it waits on storage), SIGKILL this much later; the import
 * then ends cancelled or paused from its last checkpoint (sup_life). */
#define SUP_SLOT_CONTROL_TERM_MS 5000
#define SUP_SLOT_CONTROL_KILL_MS 3000

typedef struct sup_slot_timer_facts {
    int64_t now_ms, lease_ms, timeout_ms; /* timeout: DEALIMPORT_WORKER_... */
    int running, exited, waiting;         /* the slot's state */
    int stopping;                         /* a shutdown runs */
    int pending;  /* progress or line errors wait to be written */
    int hello_ok; /* the run proved itself */
    int64_t last_flush_ms, last_ack_ms, exit_ms, respawn_at_ms, last_heard_ms,
        started_ms;
    /* an operator's cancel or pause: when it was first sent (0: none), and
     * when the worker was sent SIGTERM for it (0: not yet) */
    int64_t control_sent_ms, control_term_ms;
} sup_slot_timer_facts_t;

typedef enum {
    SUP_SLOT_TIMER_NONE = 0,
    SUP_SLOT_TIMER_END,          /* the reaped worker's end, now */
    SUP_SLOT_TIMER_START,        /* a new worker for the waiting import */
    SUP_SLOT_TIMER_RELEASE,      /* hand the waiting import back (shutdown) */
    SUP_SLOT_TIMER_KILL_SILENT,  /* silent past silence_ms */
    SUP_SLOT_TIMER_KILL_TIMEOUT, /* ran past its time limit */
    SUP_SLOT_TIMER_TERM_CONTROL, /* SIGTERM: a cancel or pause unanswered */
    SUP_SLOT_TIMER_KILL_CONTROL, /* SIGKILL: the SIGTERM unanswered too */
} sup_slot_timer_kind_t;

typedef struct sup_slot_timer {
    int flush, ack; /* before kind, and whatever it is */
    sup_slot_timer_kind_t kind;
    int64_t silence_ms; /* the silence that counts, for the log */
} sup_slot_timer_t;

void sup_slot_timers(const sup_slot_timer_facts_t *f, sup_slot_timer_t *out);

#endif
