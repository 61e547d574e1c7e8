/*
 * Batches bounded in bytes as well as in rows: deals are inserted once a
 * batch reaches DEALIMPORT_BATCH_BYTES (default the smaller of 8 MB and an
 * eighth of the worker's memory limit), so a worker held to the smallest
 * memory limit, 16 MB, still imports a file of big rows, rows just under
 * the 1 MiB row limit included, and a small byte budget sends one insert
 * per few rows.
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
#include "it_tmp.h"

static const char mappings[] = "{\"Deal Name\":\"name\",\"Value\":\"value\","
                               "\"Stage\":\"stage_id\",\"Description\":"
                               "\"description\"}";

static it_env_t env;
static bson_oid_t account, user, pipeline;

/* Imports the file at key with the mappings under the extra settings;
 * checks that every one of its rows became a deal and returns the worker's
 * round trips from its log. */
static long import_key(const char *name, const char *key, int rows,
                       const char *maps, const char *const *extra)
{
    char log[256], hex[25], filter[200], line[1024];
    long trips = -1;
    bson_oid_t qid;
    bson_t q;
    pid_t sup;
    FILE *f;
    snprintf(log, sizeof(log), "%s/it-batches-%d-%s.log", it_tmpdir(),
             (int)getpid(), name);
    it_enqueue(&env, key, &account, &user, &pipeline, maps, &qid);
    sup = it_supervisor_start(&env, extra, log);
    assert_int_equal(it_wait_final(&env, &qid, 180000, &q), 0);
    if (strcmp(it_str(&q, "status"), "completed") != 0)
        fail_msg("import %s: %s (%s); log in %s", name, it_str(&q, "status"),
                 it_str(&q, "error"), log);
    bson_destroy(&q);
    bson_oid_to_string(&qid, hex);
    assert_int_equal(it_count_import_deals(&env, &qid, "{}"), rows);
    snprintf(filter, sizeof(filter),
             "{\"queue_id\":{\"$oid\":\"%s\"},\"total_records\":%d,"
             "\"total_records_added\":%d,\"total_errors\":0}",
             hex, rows, rows);
    assert_int_equal(it_count(&env, "csv_imports", filter), 1);
    assert_int_equal(WEXITSTATUS(it_process_stop(sup, SIGTERM, 30000)), 0);
    f = fopen(log, "re");
    while (f && fgets(line, sizeof(line), f)) {
        const char *p = strstr(line, "worker finished at line");
        const char *t = p ? strstr(p, " errors, ") : NULL;
        if (t)
            trips = strtol(t + 9, NULL, 10);
    }
    if (f)
        fclose(f);
    unlink(log);
    return trips;
}

/* Rows of cell bytes in "Deal Name,Value,Stage,Description". */
static long import_rows(const char *name, int rows, int cell,
                        const char *const *extra)
{
    char key[128];
    snprintf(key, sizeof(key), "imports/deals/batches/%s.csv", name);
    it_put_rows(&env, key, rows, cell);
    return import_key(name, key, rows, mappings, extra);
}

static void test_big_rows_in_16_mb(void **state)
{
    /* 300 deals of 60 KB: 18 MB in one batch of 1,000 rows. */
    static const char *const extra[] = {"DEALIMPORT_WORKER_MEMORY_MB=16", NULL};
    (void)state;
#ifdef __SANITIZE_ADDRESS__
    skip(); /* no memory rlimit in sanitizer builds: see sup_spawn.c */
#endif
    assert_true(import_rows("big16", 300, 60000, extra) > 0);
}

static void test_rows_near_the_row_limit_in_16_mb(void **state)
{
    /* Rows just under the 1 MiB row limit, every byte of them in the deal:
     * 15 custom fields of 64,000 bytes each. */
    enum { NCUSTOM = 15, CELL = 64000, ROWS = 24 };
    static const char *const extra[] = {"DEALIMPORT_WORKER_MEMORY_MB=16", NULL};
    const char *key = "imports/deals/batches/near-limit.csv";
    char maps[2048], *buf, *p;
    size_t cap = (size_t)ROWS * (NCUSTOM + 1) * (CELL + 8) + 4096;
    size_t o;
    (void)state;
#ifdef __SANITIZE_ADDRESS__
    skip(); /* no memory rlimit in sanitizer builds: see sup_spawn.c */
#endif
    o = (size_t)snprintf(maps, sizeof(maps),
                         "{\"Deal Name\":\"name\",\"Stage\":\"stage_id\"");
    for (int c = 0; c < NCUSTOM; c++)
        o += (size_t)snprintf(maps + o, sizeof(maps) - o,
                              ",\"C%d\":\"64b00000000000000000%04x\"", c, c);
    snprintf(maps + o, sizeof(maps) - o, "}");
    buf = malloc(cap);
    assert_non_null(buf);
    p = buf;
    p += sprintf(p, "Deal Name,Stage");
    for (int c = 0; c < NCUSTOM; c++)
        p += sprintf(p, ",C%d", c);
    *p++ = '\n';
    for (int r = 1; r <= ROWS; r++) {
        p += sprintf(p, "Deal %d,Lead", r);
        for (int c = 0; c < NCUSTOM; c++) {
            *p++ = ',';
            memset(p, 'a' + (r + c) % 26, CELL);
            p += CELL;
        }
        *p++ = '\n';
    }
    it_put(&env, key, buf, (size_t)(p - buf));
    free(buf);
    assert_true(import_key("near-limit", key, ROWS, maps, extra) > 0);
}

static void test_batches_by_bytes(void **state)
{
    /* Deals of about 10 KB under a 50 KB budget: an insert per 5 rows, so
     * at least 40 round trips for 200 rows (one batch by rows alone). */
    static const char *const extra[] = {"DEALIMPORT_BATCH_BYTES=50000", NULL};
    long trips;
    (void)state;
    trips = import_rows("bytes", 200, 10000, extra);
    if (trips < 40)
        fail_msg("%ld database round trips for 200 rows of 10 KB under a "
                 "50 KB batch budget; want at least 40",
                 trips);
}

/* A failed test leaves its supervisor running: stop it, so that it does
 * not take the next test's import. */
static int teardown(void **state)
{
    (void)state;
    it_stop_all(&env);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_big_rows_in_16_mb, teardown),
        cmocka_unit_test_teardown(test_rows_near_the_row_limit_in_16_mb,
                                  teardown),
        cmocka_unit_test_teardown(test_batches_by_bytes, teardown),
    };
    int rc = it_env_init(&env, "batches");
    if (rc)
        return rc;
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &account, &pipeline);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    it_env_release(&env);
    return rc;
}
