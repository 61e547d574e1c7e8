/*
 * bench_upsert ROWS LOGFILE: the rate of an upsert against the rate of a
 * create on the same file. ROWS deals are created by one import of a base
 * file (external_id, name, value, stage, a custom field). The edited file
 * is the issue's: of the ROWS keys, nine in ten with a changed value or
 * stage and one in ten as they are, then ROWS/5 new keys and ROWS/1000
 * rows with an empty key (created on upsert). It is imported twice, timed:
 * in create mode into an empty account, and in upsert mode (match
 * external_id) into the account of the base deals; upsert / create on it
 * is the figure the issue sets (at least 0.5). Then the harder case, every
 * row matching a deal: the base file upserted into the account the edited
 * file created (nine in ten rows change a deal back), against the base
 * file's own create. Rates from the queue documents' claimed_at and
 * finished_at. Run by `scripts/bench upsert`.
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

/* The base file (edited 0) or the edited one, put at key. */
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
    for (long i = rows + 1; edited && i <= rows + rows / 5; i++)
        fprintf(f, "R%08ld,Deal %ld,%ld,s%ld,r%ld\n", i, i, 100 + i, i % 5,
                i % 7);
    for (long i = 1; edited && i <= rows / 1000; i++)
        fprintf(f, ",Unkeyed %ld,%ld,s1,r1\n", i, i);
    fclose(f);
    it_put_file(env, key, path);
    unlink(path);
    return 0;
}

static long edited_rows(long rows)
{
    return rows + rows / 5 + rows / 1000;
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

/* Queues key for account's pipeline, in mode with no supervisor running
 * (the mode is set before any claim), runs it: its seconds, or -1. */
static double import(it_env_t *env, const char *key, const bson_oid_t *account,
                     const bson_oid_t *user, const bson_oid_t *pipeline,
                     const char *mode, const char *log)
{
    bson_oid_t qid;
    it_enqueue(env, key, account, user, pipeline, mappings, &qid);
    if (strcmp(mode, "create") != 0) {
        mongoc_collection_t *c = it_coll(env, "queues");
        bson_t *f = BCON_NEW("_id", BCON_OID(&qid));
        bson_t *u =
            BCON_NEW("$set", "{", "additional_data.mode", BCON_UTF8(mode),
                     "additional_data.match", BCON_UTF8("external_id"), "}");
        mongoc_collection_update_one(c, f, u, NULL, NULL, NULL);
        bson_destroy(f);
        bson_destroy(u);
        mongoc_collection_destroy(c);
    }
    return run(env, &qid, log);
}

static void rate(const char *what, long rows, double s)
{
    printf("%-34s %6ld rows %6.2f s %7.0f rows/s\n", what, rows, s,
           (double)rows / s);
}

int main(int argc, char **argv)
{
    it_env_t env;
    bson_oid_t a, b, user, pa, pb;
    double base_s, edit_create_s = -1, edit_upsert_s = -1, base_upsert_s = -1;
    long rows, erows;
    int rc;

    if (argc != 3 || (rows = strtol(argv[1], NULL, 10)) <= 0) {
        fprintf(stderr, "usage: bench_upsert ROWS LOGFILE\n");
        return 2;
    }
    erows = edited_rows(rows);
    rc = it_env_init(&env, "benchup");
    if (rc)
        return rc == 77 ? 1 : rc;
    bson_oid_init(&a, NULL);
    bson_oid_init(&b, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &a, &pa);
    it_pipeline(&env, &b, &pb);
    if (write_file(&env, "imports/bench/base.csv", rows, 0) < 0 ||
        write_file(&env, "imports/bench/edited.csv", rows, 1) < 0) {
        fprintf(stderr, "bench_upsert: cannot write the files\n");
        return 1;
    }
    base_s = import(&env, "imports/bench/base.csv", &a, &user, &pa, "create",
                    argv[2]);
    server_seconds(&env, "base file, create");
    if (base_s > 0) {
        edit_create_s = import(&env, "imports/bench/edited.csv", &b, &user, &pb,
                               "create", argv[2]);
        server_seconds(&env, "edited file, create");
    }
    if (edit_create_s > 0) {
        edit_upsert_s = import(&env, "imports/bench/edited.csv", &a, &user, &pa,
                               "upsert", argv[2]);
        server_seconds(&env, "edited file, upsert");
    }
    if (edit_upsert_s > 0) {
        base_upsert_s = import(&env, "imports/bench/base.csv", &b, &user, &pb,
                               "upsert", argv[2]);
        server_seconds(&env, "base file, upsert");
    }
    if (base_upsert_s > 0) {
        printf("edited file: %ld rows (%ld changed, %ld unchanged, %ld new, "
               "%ld without a key)\n",
               erows, rows - rows / 10, rows / 10, rows / 5, rows / 1000);
        rate("edited file, create (empty account)", erows, edit_create_s);
        rate("edited file, upsert", erows, edit_upsert_s);
        printf("upsert rows/s / create rows/s, edited file: %.2f "
               "(target 0.5)\n",
               edit_create_s / edit_upsert_s);
        printf("every row matching: the base file, %ld rows, upserted over "
               "the edited file's deals (%ld changed back, %ld unchanged)\n",
               rows, rows - rows / 10, rows / 10);
        rate("base file, create", rows, base_s);
        rate("base file, upsert", rows, base_upsert_s);
        printf("upsert rows/s / create rows/s, every row matching: %.2f\n",
               base_s / base_upsert_s);
        rc = 0;
    } else {
        fprintf(stderr, "bench_upsert: an import did not complete\n");
        rc = 1;
    }
    it_env_release(&env);
    return rc;
}
