/*
 * sup_start: the guard that never lets two workers run one import, one
 * table row per case, and the spawn options every worker of the loop gets
 * (limits from the configuration, the open-file limit, no cgroup unless
 * one is given, no secrets pipe until the spawn makes one).
 *
 * Failure classes: a worker that outlives its slot's end (reaped late, its
 * last messages in flight) is the EXITED row: no second worker meanwhile;
 * a lease not renewed or lost is the UNHELD rows; a reload that changes
 * the limits shows in the options of the next spawn.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sup_loop_priv.h"

typedef struct row {
    const char *name;
    sup_slot_state_t other_state; /* the other slot's */
    int same_import;
    sup_lease_t lease; /* the starting slot's */
    sup_start_guard_t want;
} row_t;

static const row_t rows[] = {
    {"alone, held", SUP_SLOT_FREE, 0, SUP_LEASE_HELD, SUP_START_OK},
    {"another import runs beside it", SUP_SLOT_RUNNING, 0, SUP_LEASE_HELD,
     SUP_START_OK},
    {"a worker of the same import runs", SUP_SLOT_RUNNING, 1, SUP_LEASE_HELD,
     SUP_START_TWICE},
    {"a reaped worker of the same import still has messages in flight",
     SUP_SLOT_EXITED, 1, SUP_LEASE_HELD, SUP_START_TWICE},
    {"the same import waiting in another slot (no process)", SUP_SLOT_WAITING,
     1, SUP_LEASE_HELD, SUP_START_OK},
    {"the same import ending in another slot (no process)", SUP_SLOT_ENDING, 1,
     SUP_LEASE_HELD, SUP_START_OK},
    {"lapsing", SUP_SLOT_FREE, 0, SUP_LEASE_LAPSING, SUP_START_UNHELD},
    {"lost", SUP_SLOT_FREE, 0, SUP_LEASE_LOST, SUP_START_UNHELD},
    {"two workers outrank a lapsing lease", SUP_SLOT_RUNNING, 1,
     SUP_LEASE_LAPSING, SUP_START_TWICE},
};

static void test_guard(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const row_t *r = &rows[i];
        sup_loop_t *self = calloc(1, sizeof(*self));
        sup_slot_t slots[2];
        pid_t other = 0;
        sup_start_guard_t got;
        assert_non_null(self);
        memset(slots, 0, sizeof(slots));
        self->workers = slots;
        self->cap = 2;
        bson_oid_init_from_string(&slots[0].qid, "5f0000000000000000000001");
        bson_oid_init_from_string(&slots[1].qid,
                                  r->same_import ? "5f0000000000000000000001"
                                                 : "5f0000000000000000000002");
        slots[0].state = SUP_SLOT_WAITING;
        slots[0].lease = r->lease;
        slots[1].state = r->other_state;
        slots[1].pid = 4242;
        got = sup_start_guard(self, &slots[0], &other);
        if (got != r->want)
            fail_msg("%s: got %d, want %d", r->name, (int)got, (int)r->want);
        if (got == SUP_START_TWICE && other != 4242)
            fail_msg("%s: names pid %d", r->name, (int)other);
        free(self);
    }
}

static void test_opts(void **state)
{
    sup_loop_t *self = calloc(1, sizeof(*self));
    char *envp[] = {(char *)"PATH=/bin", NULL};
    char *argv[] = {(char *)"dealimport-worker", NULL};
    sup_spawn_opts_t o;
    (void)state;
    assert_non_null(self);
    snprintf(self->worker_path, sizeof(self->worker_path), "%s",
             "/usr/libexec/dealimport/dealimport-worker");
    self->envp = envp;
    self->cfg.worker_memory_mb = 768;
    self->cfg.worker_cpu_s = 90;
    sup_start_opts(self, &o, argv, 9);
    assert_string_equal(o.path, "/usr/libexec/dealimport/dealimport-worker");
    assert_ptr_equal(o.argv, argv);
    assert_ptr_equal(o.envp, envp);
#ifdef __SANITIZE_ADDRESS__
    assert_int_equal(o.memory_mb, 0); /* shadow memory is not the worker's */
#else
    assert_int_equal(o.memory_mb, 768);
#endif
    assert_int_equal(o.cpu_s, 90);
    assert_int_equal(o.nofile, SUP_SPAWN_NOFILE_DEFAULT);
    assert_int_equal(o.cgroup_fd, 9);
    assert_int_equal(o.secrets_fd, -1);
    assert_int_equal(o.stdout_fd, 0);
    assert_int_equal(o.stderr_fd, 0);
    /* after a reload, the next spawn's limits */
    self->cfg.worker_cpu_s = 30;
    sup_start_opts(self, &o, argv, -1);
    assert_int_equal(o.cpu_s, 30);
    assert_int_equal(o.cgroup_fd, -1);
    free(self);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_guard),
        cmocka_unit_test(test_opts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
