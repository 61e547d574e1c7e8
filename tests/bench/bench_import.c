/*
 * bench_import: one import of a generated deal file through the real
 * supervisor and worker on the development stack, timed from the moment it
 * is queued to its recorded end. Run by `scripts/bench import`, which wraps
 * the worker in /usr/bin/time for its peak memory and reads its round trips
 * from the log; this program prints the import's own figures, and then
 * the development server's own bulk rate for the same documents: the
 * import's deals read back and inserted again, unordered, in batches of the
 * worker's size, into a collection with the same unique indexes (copied
 * from deals, partial filter and all), only the inserts timed. The import
 * should run at 0.8 of that or better: then the database, not the worker,
 * is what an import waits on. Against the development server it also
 * prints where the server's time went during the import (its
 * devCommandCounts).
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

#include <mongoc/mongoc.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* createIndexes for `to` with the unique indexes `from` has, as they are
 * (keys, partial filter): the bulk figure pays for the same checks. */
static bson_t *same_indexes(mongoc_collection_t *from, const char *to)
{
    mongoc_cursor_t *c = mongoc_collection_find_indexes_with_opts(from, NULL);
    bson_t *cmd = BCON_NEW("createIndexes", BCON_UTF8(to)), arr;
    const bson_t *spec;
    bson_error_t error;
    bson_iter_t it;
    int n = 0;
    BSON_APPEND_ARRAY_BEGIN(cmd, "indexes", &arr);
    while (mongoc_cursor_next(c, &spec)) {
        char k[16];
        bson_t one;
        if (!bson_iter_init_find(&it, spec, "unique") ||
            !bson_iter_as_bool(&it))
            continue;
        snprintf(k, sizeof(k), "%d", n++);
        BSON_APPEND_DOCUMENT_BEGIN(&arr, k, &one);
        bson_iter_init(&it, spec);
        while (bson_iter_next(&it))
            if (strcmp(bson_iter_key(&it), "key") == 0 ||
                strcmp(bson_iter_key(&it), "name") == 0 ||
                strcmp(bson_iter_key(&it), "unique") == 0 ||
                strcmp(bson_iter_key(&it), "partialFilterExpression") == 0)
                bson_append_iter(&one, NULL, 0, &it);
        bson_append_document_end(&arr, &one);
    }
    bson_append_array_end(cmd, &arr);
    if (mongoc_cursor_error(c, &error) || n == 0) {
        fprintf(stderr, "bench_import: no unique index on deals to copy%s%s\n",
                n ? ": " : "", n ? error.message : "");
        bson_destroy(cmd);
        cmd = NULL;
    }
    mongoc_cursor_destroy(c);
    return cmd;
}

/* Inserts the import's deals again into deals_bulk, batch at a time;
 * returns the seconds spent in the inserts, -1 on failure. *n gets the
 * documents inserted. */
static double bulk_again(it_env_t *env, const bson_oid_t *qid, long batch,
                         long long *n)
{
    mongoc_collection_t *deals = it_coll(env, "deals");
    mongoc_collection_t *bulk = it_coll(env, "deals_bulk");
    bson_t *filter = BCON_NEW("import.queue_id", BCON_OID(qid));
    bson_t *opts =
        BCON_NEW("ordered", BCON_BOOL(false), "validate", BCON_BOOL(false));
    bson_t *index = same_indexes(deals, "deals_bulk");
    mongoc_cursor_t *c = NULL;
    bson_t **docs = calloc((size_t)batch, sizeof(bson_t *));
    const bson_t *doc;
    bson_error_t error;
    double spent = 0;
    long k = 0;
    int ok = docs != NULL && index != NULL;
    *n = 0;
    if (ok && !mongoc_database_write_command_with_opts(env->db, index, NULL,
                                                       NULL, &error)) {
        fprintf(stderr, "bench_import: createIndexes: %s\n", error.message);
        ok = 0;
    }
    if (ok)
        c = mongoc_collection_find_with_opts(deals, filter, NULL, NULL);
    for (;;) {
        int more = ok && mongoc_cursor_next(c, &doc);
        if (more)
            docs[k++] = bson_copy(doc);
        if (k > 0 && (k == batch || !more)) {
            double t0 = now_s();
            if (!mongoc_collection_insert_many(bulk, (const bson_t **)docs,
                                               (size_t)k, opts, NULL, &error)) {
                fprintf(stderr, "bench_import: bulk insert: %s\n",
                        error.message);
                ok = 0;
            }
            spent += now_s() - t0;
            *n += k;
            while (k > 0)
                bson_destroy(docs[--k]);
        }
        if (!more)
            break;
    }
    if (c != NULL && mongoc_cursor_error(c, &error)) {
        fprintf(stderr, "bench_import: reading the deals: %s\n", error.message);
        ok = 0;
    }
    mongoc_cursor_destroy(c);
    free(docs);
    bson_destroy(index);
    bson_destroy(opts);
    bson_destroy(filter);
    mongoc_collection_destroy(bulk);
    mongoc_collection_destroy(deals);
    return ok ? spent : -1;
}

/* The development server's command counts and seconds since the last
 * call (reset each time); printed when print, each over 50 ms. A real
 * server has no such command: nothing is printed. */
static void server_time(it_env_t *env, int print)
{
    bson_t *cmd =
        BCON_NEW("devCommandCounts", BCON_INT32(1), "reset", BCON_BOOL(true));
    bson_t reply;
    bson_iter_t it, sec;
    if (mongoc_client_command_simple(env->client, "admin", cmd, NULL, &reply,
                                     NULL) &&
        print && bson_iter_init_find(&it, &reply, "seconds") &&
        bson_iter_recurse(&it, &sec)) {
        double total = 0;
        printf("dev server time under its lock during the import:\n");
        while (bson_iter_next(&sec)) {
            double s = bson_iter_as_double(&sec);
            total += s;
            if (s >= 0.05)
                printf("  %-32s %7.2f s\n", bson_iter_key(&sec), s);
        }
        printf("  %-32s %7.2f s\n", "all commands", total);
    }
    bson_destroy(&reply);
    bson_destroy(cmd);
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
    server_time(&env, 0);
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
        server_time(&env, 1);
        rc = 0;
    }
    if (rc == 0) {
        const char *b = getenv("DEALIMPORT_BATCH_ROWS");
        long long n = 0;
        double spent = bulk_again(&env, &qid, b ? atol(b) : 1000, &n);
        if (spent <= 0 || n == 0) {
            fprintf(stderr, "bench_import: no bulk figure\n");
            rc = 1;
        } else {
            double bulk = (double)n / spent;
            printf("dev server bulk insert of the same %lld deals: %.0f "
                   "docs/s\n",
                   n, bulk);
            printf("import rows/s / bulk docs/s: %.2f (target 0.8)\n",
                   (double)rows / elapsed / bulk);
        }
    }
    bson_destroy(&q);
    it_process_stop(sup, SIGTERM, 60000);
    it_gen_destroy(&gen);
    it_env_release(&env);
    return rc;
}
