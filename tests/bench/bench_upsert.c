/*
 * bench_upsert ROWS LOGFILE: the rate of an upsert against the rate of a
 * create on the same shape of file. ROWS deals are created by one import
 * (external_id, name, value, stage, a custom field), timed; then a file of
 * the same ROWS keys, nine in ten with a changed value or stage, one in ten
 * as they are, is imported with mode upsert and match external_id, timed.
 * Prints both rates and upsert / create (target at least 0.5). Run by
 * `scripts/bench upsert`.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dip_bson.h"
#include "it_check.h"
#include "it_env.h"

#define CF "64b0000000000000000000cf"

static const char mappings[] =
    "{\"Ref\":\"external_id\",\"Name\":\"name\",\"Value\":\"value\","
    "\"Stage\":\"stage_id\",\"Region\":\"" CF "\"}";

static int write_file(it_env_t *env, const char *key, long rows, int edited)
{
    char path[256];
    FILE *f;
    snprintf(path, sizeof(path), "/tmp/bench-upsert-%d.csv", (int)getpid());
    f = fopen(path, "w");
    if (f == NULL)
        return -1;
    fprintf(f, "Ref,Name,Value,Stage,Region\n");
    for (long i = 1; i <= rows; i++) {
        long value = 100 + i, stage = i % 5;
        if (edited && i % 10 != 0) {
            if (i % 2)
                value += 1;
            else
                stage = (stage + 1) % 5;
        }
        fprintf(f, "R%08ld,Deal %ld,%ld,s%ld,r%ld\n", i, i, value, stage,
                i % 7);
    }
    fclose(f);
    it_put_file(env, key, path);
    unlink(path);
    return 0;
}

/* The development server's seconds under its lock per command since the
 * last call (devCommandCounts), printed under title when it is not NULL. */
static void server_seconds(it_env_t *env, const char *title)
{
    bson_t *cmd =
        BCON_NEW("devCommandCounts", BCON_INT32(1), "reset", BCON_BOOL(true));
    bson_t reply;
    bson_iter_t it, sec;
    if (mongoc_client_command_simple(env->client, "admin", cmd, NULL, &reply,
                                     NULL) &&
        title && bson_iter_init_find(&it, &reply, "seconds") &&
        bson_iter_recurse(&it, &sec)) {
        printf("dev server seconds, %s:", title);
        while (bson_iter_next(&sec))
            if (bson_iter_as_double(&sec) >= 0.05)
                printf(" %s %.2f", bson_iter_key(&sec),
                       bson_iter_as_double(&sec));
        printf("\n");
    }
    bson_destroy(&reply);
    bson_destroy(cmd);
}

/* Runs the queued import qid under a supervisor of its own; its seconds
 * from claimed_at to finished_at on the queue document (the last claim:
 * one run without faults), or -1. */
static double run(it_env_t *env, const bson_oid_t *qid, const char *log)
{
    pid_t sup;
    server_seconds(env, NULL);
    sup = it_supervisor_start(env, NULL, log);
    bson_t q;
    double s = -1;
    bson_iter_t a, b;
    if (it_wait_final(env, qid, 3600 * 1000, &q) == 0 &&
        strcmp(it_str(&q, "status"), "completed") == 0 &&
        bson_iter_init_find(&a, &q, "claimed_at") &&
        BSON_ITER_HOLDS_DATE_TIME(&a) &&
        bson_iter_init_find(&b, &q, "finished_at") &&
        BSON_ITER_HOLDS_DATE_TIME(&b))
        s = (double)(bson_iter_date_time(&b) - bson_iter_date_time(&a)) / 1e3;
    bson_destroy(&q);
    it_process_stop(sup, SIGTERM, 60000);
    return s;
}

int main(int argc, char **argv)
{
    it_env_t env;
    bson_oid_t account, user, pipeline, qid;
    double create_s, upsert_s = -1;
    long rows;
    int rc;

    if (argc != 3 || (rows = strtol(argv[1], NULL, 10)) <= 0) {
        fprintf(stderr, "usage: bench_upsert ROWS LOGFILE\n");
        return 2;
    }
    rc = it_env_init(&env, "benchup");
    if (rc)
        return rc == 77 ? 1 : rc;
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &account, &pipeline);
    if (write_file(&env, "imports/bench/base.csv", rows, 0) < 0 ||
        write_file(&env, "imports/bench/edited.csv", rows, 1) < 0) {
        fprintf(stderr, "bench_upsert: cannot write the files\n");
        return 1;
    }
    it_enqueue(&env, "imports/bench/base.csv", &account, &user, &pipeline,
               mappings, &qid);
    create_s = run(&env, &qid, argv[2]);
    server_seconds(&env, "create");
    if (create_s > 0) {
        /* queued with no supervisor running: the mode is set before any
         * claim */
        mongoc_collection_t *c = it_coll(&env, "queues");
        bson_t *f, *u;
        it_enqueue(&env, "imports/bench/edited.csv", &account, &user, &pipeline,
                   mappings, &qid);
        f = BCON_NEW("_id", BCON_OID(&qid));
        u = BCON_NEW("$set", "{", "additional_data.mode", BCON_UTF8("upsert"),
                     "additional_data.match", BCON_UTF8("external_id"), "}");
        mongoc_collection_update_one(c, f, u, NULL, NULL, NULL);
        bson_destroy(f);
        bson_destroy(u);
        mongoc_collection_destroy(c);
        upsert_s = run(&env, &qid, argv[2]);
        server_seconds(&env, "upsert");
    }
    if (create_s > 0 && upsert_s > 0) {
        printf("rows: %ld (upsert: %ld changed, %ld unchanged)\n", rows,
               rows - rows / 10, rows / 10);
        printf("create: %.2f s, %.0f rows/s\n", create_s,
               (double)rows / create_s);
        printf("upsert: %.2f s, %.0f rows/s\n", upsert_s,
               (double)rows / upsert_s);
        printf("upsert rows/s / create rows/s: %.2f (target 0.5)\n",
               create_s / upsert_s);
        rc = 0;
    } else {
        fprintf(stderr, "bench_upsert: an import did not complete\n");
        rc = 1;
    }
    it_env_release(&env);
    return rc;
}
