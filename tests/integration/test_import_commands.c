/*
 * The database commands one small import costs, counted by the development
 * server's own operation log (devOpLog): a 100-row import with no line
 * errors (no follow-up work), and one with 10 bad rows (an error file
 * follows). Every command on the test's database between the enqueue and
 * the end, the supervisor's and the worker's alike, less the test's own
 * connection, is listed by name and collection and counted against the
 * budget: at most IMPORT_COMMANDS and ERRFILE_COMMANDS. A count, not a
 * time: a step that adds a read, an index or a write per import fails here.
 *
 * The supervisor polls once an hour, so the change stream alone picks the
 * imports up and no poll falls inside the window; a first import warms the
 * stream and the supervisor's start-up (its indexes) is outside the count.
 *
 * The error file's import also checks that csv_imports.logs, quoted from
 * what the supervisor kept instead of read, is what csv_import_errors
 * holds: its first errors by line.
 *
 * Failure classes walked: 14 (the count is of what the server saw, not of
 * what the service says it did; a window that missed the import would
 * count nothing, so the claim, the worker's first read and the final
 * status must each be in the list, and are asserted); 3 (the counted
 * commands run on indexes: the suite runs the server with notablescan
 * where the stack is started so); 1, 2, 5 and 9 are walked by the tests of
 * each step (test_slow_db, test_lease_faults, test_worker_stepdown,
 * test_pickup), this one only counts. Skipped (exit 77, a failure where
 * CI=true) without the development stack; skipped on a server without
 * devOpLog (a real mongod) or not in replica-set mode.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dip_bson.h"
#include "it_check.h"
#include "it_env.h"
#include "it_gen.h"
#include "it_rs.h"
#include "it_skip.h"
#include "it_tmp.h"

/* The budgets: a 100-row import with nothing to follow, and with an error
 * file. Of them, six are the supervisor's claim of a lone import: a look
 * (two aggregates: the accounts with pending imports, one index entry
 * each, and the running imports, which alone find a lapsed lease), the
 * claim, the next claim that finds the account empty, and the new look
 * that finds nothing. The look that counted every pending import took one
 * aggregate and knew when an account was empty, three commands in all,
 * but read the whole backlog once per wake (sup_store_look.c); three
 * constant commands per claim round are its price (the budgets were 12
 * and 15, and these imports took 10 and 15). */
#define IMPORT_COMMANDS 13
#define ERRFILE_COMMANDS 18

static it_env_t env;
static char logpath[256];
static pid_t sup = -1;
static bson_oid_t account, user, pipeline;

static bool admin(bson_t *cmd, bson_t *reply)
{
    bson_error_t error;
    bool ok = mongoc_client_command_simple(env.client, "admin", cmd, NULL,
                                           reply, &error);
    if (!ok)
        print_message("admin command: %s\n", error.message);
    bson_destroy(cmd);
    return ok;
}

/* The connection id of this test's own client, from the op log's entry of
 * a find on a collection no one else reads. -1 when not found. */
static int64_t own_conn(void)
{
    bson_t reply, op;
    bson_iter_t it, ops;
    int64_t conn = -1;
    char ns[128];
    it_count(&env, "own_conn_marker", "{}");
    snprintf(ns, sizeof(ns), "%s.own_conn_marker", env.dbname);
    if (!admin(BCON_NEW("devOpLog", BCON_INT32(1), "ns", BCON_UTF8(ns), "limit",
                        BCON_INT32(1)),
               &reply))
        return -1;
    if (bson_iter_init_find(&it, &reply, "ops") &&
        bson_iter_recurse(&it, &ops) && bson_iter_next(&ops) &&
        BSON_ITER_HOLDS_DOCUMENT(&ops)) {
        uint32_t len;
        const uint8_t *data;
        bson_iter_document(&ops, &len, &data);
        if (bson_init_static(&op, data, len))
            conn = dip_bson_get_int(&op, "conn", -1);
    }
    bson_destroy(&reply);
    return conn;
}

/* Empties the server's op log. */
static void log_reset(void)
{
    bson_t reply;
    assert_true(admin(BCON_NEW("devOpLog", BCON_INT32(1), "limit",
                               BCON_INT32(1), "reset", BCON_BOOL(true)),
                      &reply));
    bson_destroy(&reply);
}

/* Lists the op log's commands on the test's database, less those of
 * connection mine; returns how many, and how many were of name on coll
 * through *named. */
static int list_ops(int64_t mine, const char *what, const char *const *must,
                    int *found)
{
    bson_t reply;
    bson_iter_t it, ops;
    size_t dblen = strlen(env.dbname);
    int n = 0;
    assert_true(
        admin(BCON_NEW("devOpLog", BCON_INT32(1), "limit", BCON_INT32(10000)),
              &reply));
    assert_true(bson_iter_init_find(&it, &reply, "ops") &&
                bson_iter_recurse(&it, &ops));
    print_message("%s: the service's commands\n", what);
    while (bson_iter_next(&ops)) {
        bson_t op;
        uint32_t len;
        const uint8_t *data;
        const char *ns, *name;
        bson_iter_document(&ops, &len, &data);
        assert_true(bson_init_static(&op, data, len));
        ns = dip_bson_get_str(&op, "ns");
        name = dip_bson_get_str(&op, "op");
        if (ns == NULL || name == NULL || strncmp(ns, env.dbname, dblen) != 0 ||
            (ns[dblen] != '\0' && ns[dblen] != '.'))
            continue;
        if (dip_bson_get_int(&op, "conn", -1) == mine)
            continue;
        n++;
        print_message("  %2d. conn %-4lld %-16s %s\n", n,
                      (long long)dip_bson_get_int(&op, "conn", -1), name,
                      ns[dblen] ? ns + dblen + 1 : "(database)");
        for (int i = 0; must[i] != NULL; i += 2)
            if (strcmp(must[i], name) == 0 && ns[dblen] &&
                strcmp(must[i + 1], ns + dblen + 1) == 0)
                found[i / 2]++;
    }
    print_message("%s: %d commands\n", what, n);
    bson_destroy(&reply);
    return n;
}

/* Queues the file at key and waits for its whole end: the final status,
 * csv_imports, and with line errors the follow-ups done. */
static void import_once(const char *key, int errors, bson_oid_t *qid)
{
    bson_t q;
    char filter[160], hex[25];
    it_enqueue(&env, key, &account, &user, &pipeline, it_gen_mappings(), qid);
    if (it_wait_final(&env, qid, 60000, &q) != 0)
        fail_msg("the import did not end (log in %s)", logpath);
    assert_string_equal(it_str(&q, "status"), "completed");
    assert_int_equal(dip_bson_get_int(&q, "claims", 0), 1);
    bson_destroy(&q);
    bson_oid_to_string(qid, hex);
    snprintf(filter, sizeof(filter),
             "{\"queue_id\":{\"$oid\":\"%s\"},"
             "\"followups_done_at\":{\"$exists\":true}}",
             hex);
    for (int i = 0;
         errors && i < 300 && it_count(&env, "csv_imports", filter) == 0; i++)
        usleep(100000);
    if (errors)
        assert_int_equal(it_count(&env, "csv_imports", filter), 1);
    /* the worker and a follow-up child gone, their last commands in */
    for (int i = 0; i < 100 && it_worker_pid(qid) > 0; i++)
        usleep(100000);
    usleep(500000);
}

/* csv_imports.logs of the import, quoted without a read of
 * csv_import_errors, is what that collection holds: its first errors by
 * line, {line, field, message} each, as many as there are (at most 100). */
static void check_logs(const bson_oid_t *qid)
{
    mongoc_collection_t *imports = it_coll(&env, "csv_imports");
    mongoc_collection_t *errors = it_coll(&env, "csv_import_errors");
    bson_t *filter = BCON_NEW("queue_id", BCON_OID(qid));
    bson_t *opts = BCON_NEW("sort", "{", "line", BCON_INT32(1), "}", "limit",
                            BCON_INT64(100), "projection", "{", "_id",
                            BCON_INT32(0), "line", BCON_INT32(1), "field",
                            BCON_INT32(1), "message", BCON_INT32(1), "}");
    mongoc_cursor_t *c =
        mongoc_collection_find_with_opts(imports, filter, NULL, NULL);
    const bson_t *doc;
    bson_t logs;
    bson_iter_t it, a;
    int n = 0;
    assert_true(mongoc_cursor_next(c, &doc));
    assert_true(bson_iter_init_find(&it, doc, "logs") &&
                BSON_ITER_HOLDS_ARRAY(&it));
    {
        uint32_t len;
        const uint8_t *data;
        bson_iter_array(&it, &len, &data);
        assert_true(bson_init_static(&logs, data, len));
    }
    assert_true(bson_iter_init(&a, &logs));
    {
        mongoc_cursor_t *e =
            mongoc_collection_find_with_opts(errors, filter, opts, NULL);
        const bson_t *want;
        while (mongoc_cursor_next(e, &want)) {
            bson_t got;
            uint32_t len;
            const uint8_t *data;
            assert_true(bson_iter_next(&a) && BSON_ITER_HOLDS_DOCUMENT(&a));
            bson_iter_document(&a, &len, &data);
            assert_true(bson_init_static(&got, data, len));
            assert_int_equal(dip_bson_get_int(&got, "line", -1),
                             dip_bson_get_int(want, "line", -2));
            assert_string_equal(it_str(&got, "field"), it_str(want, "field"));
            assert_string_equal(it_str(&got, "message"),
                                it_str(want, "message"));
            n++;
        }
        mongoc_cursor_destroy(e);
    }
    assert_false(bson_iter_next(&a)); /* no more than stored */
    assert_true(n > 0);
    mongoc_cursor_destroy(c);
    bson_destroy(filter);
    bson_destroy(opts);
    mongoc_collection_destroy(imports);
    mongoc_collection_destroy(errors);
}

static void count_one(const char *file_key, int errors, int budget,
                      const char *what)
{
    /* each must be in the window: the claim, the worker's read, the end */
    static const char *const must[] = {"findAndModify", "queues", "insert",
                                       "deals", NULL};
    int found[2] = {0, 0};
    bson_oid_t qid;
    int64_t mine = own_conn();
    int n;
    assert_true(mine >= 0);
    log_reset();
    import_once(file_key, errors, &qid);
    n = list_ops(mine, what, must, found);
    assert_true(found[0] >= 1);
    assert_true(found[1] >= 1);
    if (n > budget)
        fail_msg("%s: %d database commands, over the budget of %d", what, n,
                 budget);
    if (errors)
        check_logs(&qid);
}

static void test_commands_per_import(void **state)
{
    static const char *const extra[] = {"DEALIMPORT_POLL_MS=3600000", NULL};
    it_gen_t *clean = it_gen_new(100, 7u, 0, 0);
    it_gen_t *bad = it_gen_new(100, 7u, 100, 0);
    char path[256];
    bson_oid_t qid;
    (void)state;
    if (!it_rs_can_step_down(&env))
        IT_SKIP_MACHINE("skipped: not the development server in replica-set "
                        "mode\n");
    assert_non_null(clean);
    assert_non_null(bad);
    assert_int_equal(it_gen_count(clean, IT_ROW_KINDS), 0);
    assert_true(it_gen_count(bad, IT_ROW_KINDS) > 0);
    snprintf(path, sizeof(path), "%s/it-commands-%d.csv", it_tmpdir(),
             (int)getpid());
    assert_int_equal(it_gen_write(clean, path), 0);
    it_put_file(&env, "imports/deals/it/commands-clean.csv", path);
    assert_int_equal(it_gen_write(bad, path), 0);
    it_put_file(&env, "imports/deals/it/commands-bad.csv", path);
    unlink(path);
    it_gen_destroy(&clean);
    it_gen_destroy(&bad);

    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &account, &pipeline);
    sup = it_supervisor_start(&env, extra, logpath);
    assert_true(sup > 0);
    /* the start-up and the stream's first wake outside the count */
    import_once("imports/deals/it/commands-clean.csv", 0, &qid);

    count_one("imports/deals/it/commands-clean.csv", 0, IMPORT_COMMANDS,
              "100 rows, nothing to follow");
    count_one("imports/deals/it/commands-bad.csv", 1, ERRFILE_COMMANDS,
              "100 rows, some bad (an error file)");
}

static int teardown(void **state)
{
    (void)state;
    it_stop_all(&env);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_commands_per_import, teardown),
    };
    int rc = it_env_init(&env, "commands");
    bson_t reply;
    if (rc)
        return rc;
    snprintf(logpath, sizeof(logpath), "%s/it-commands-%d.log", it_tmpdir(),
             (int)getpid());
    /* A real server has no op log: nothing to count with. */
    if (!admin(BCON_NEW("devOpLog", BCON_INT32(1), "limit", BCON_INT32(1)),
               &reply)) {
        fprintf(stderr, "skipped: the server has no devOpLog\n");
        it_env_release(&env);
        return 77;
    }
    bson_destroy(&reply);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    it_env_release(&env);
    return rc;
}
