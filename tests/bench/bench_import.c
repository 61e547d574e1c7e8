/*
 * bench_import: one import of a generated deal file through the real
 * supervisor and worker on the development stack, timed from the moment it
 * is queued to its recorded end. Run by `scripts/bench import`, which wraps
 * the worker in /usr/bin/time for its peak memory and reads its round trips
 * from the log; this program prints the import's own figures.
 *
 *   bench_import ROWS LOGFILE
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dip_bson.h"
#include "it_check.h"
#include "it_env.h"
#include "it_gen.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    it_env_t env;
    it_gen_t *gen = NULL;
    bson_oid_t account, user, pipeline, qid;
    char path[256];
    double t0, elapsed;
    unsigned long long rows;
    pid_t sup;
    bson_t q;
    int rc;

    if (argc != 3 || (rows = strtoull(argv[1], NULL, 10)) == 0) {
        fprintf(stderr, "usage: bench_import ROWS LOGFILE\n");
        return 2;
    }
    rc = it_env_init(&env, "bench");
    if (rc)
        return rc == 77 ? 1 : rc;
    /* About 1% bad rows, among them two cells over 64 KiB and two rows over
     * 1 MiB: memory must stay flat through those too. */
    gen = it_gen_new(rows, 1u, 10, 2);
    snprintf(path, sizeof(path), "/tmp/bench-import-%d.csv", (int)getpid());
    if (gen == NULL || it_gen_write(gen, path) < 0) {
        fprintf(stderr, "bench_import: cannot write '%s'\n", path);
        return 1;
    }
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &account, &pipeline);
    it_put_file(&env, "imports/deals/bench/import.csv", path);
    unlink(path);

    sup = it_supervisor_start(&env, NULL, argv[2]);
    sleep(1); /* let it start: time the import, not the supervisor */
    t0 = now_s();
    it_enqueue(&env, "imports/deals/bench/import.csv", &account, &user,
               &pipeline, it_gen_mappings(), &qid);
    rc = it_wait_final(&env, &qid, 3600 * 1000, &q);
    elapsed = now_s() - t0;
    if (rc < 0 || strcmp(it_str(&q, "status"), "completed") != 0) {
        fprintf(stderr, "bench_import: the import did not complete (%s: %s)\n",
                it_str(&q, "status"), it_str(&q, "error"));
        rc = 1;
    } else {
        printf("rows: %llu (%llu good, %llu bad)\n", rows,
               (unsigned long long)it_gen_count(gen, IT_ROW_GOOD),
               (unsigned long long)it_gen_count(gen, IT_ROW_KINDS));
        printf("deals added: %lld, line errors: %lld\n",
               (long long)dip_bson_get_int(&q, "progress.added", -1),
               (long long)dip_bson_get_int(&q, "progress.errors", -1));
        printf("import time: %.2f s (queued to recorded end)\n", elapsed);
        printf("throughput: %.0f rows/s, %.1f us per row\n",
               (double)rows / elapsed, elapsed * 1e6 / (double)rows);
        rc = 0;
    }
    bson_destroy(&q);
    it_process_stop(sup, SIGTERM, 60000);
    it_gen_destroy(&gen);
    it_env_release(&env);
    return rc;
}
