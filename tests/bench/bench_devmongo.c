/*
 * bench_devmongo: measures bulk insert throughput the way the worker writes
 * deals: unordered bulks of small documents through libmongoc into a
 * collection with a unique (import.queue_id, import.line) index. Prints the
 * rate and the time per document, checks that every document arrived, and
 * drops its database. On the development server it then counts the
 * documents twice, by a collection scan and through the index, in quick
 * mode and in slow mode (scan_us, BENCH_SLOW_SCAN_US, default 35), and prints
 * what each count took by the server's own clock (its devOpLog), with the
 * documents and keys it examined. Usage: bench_devmongo URI [DOCS [BATCH]].
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mongoc/mongoc.h>

typedef struct {
    long docs;
    long batch;
} bench_opts_t;

static int parse_count(const char *arg, const char *what, long *out)
{
    char *end = NULL;
    long v;

    errno = 0;
    v = strtol(arg, &end, 10);
    if (errno != 0 || end == arg || *end != '\0' || v < 1 || v > 100000000) {
        fprintf(stderr, "bench_devmongo: bad %s '%s'\n", what, arg);
        return -1;
    }
    *out = v;
    return 0;
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int create_index(mongoc_database_t *db, const char *coll)
{
    bson_t *cmd =
        BCON_NEW("createIndexes", BCON_UTF8(coll), "indexes", "[", "{", "key",
                 "{", "import.queue_id", BCON_INT32(1), "import.line",
                 BCON_INT32(1), "}", "name", BCON_UTF8("import_unique"),
                 "unique", BCON_BOOL(true), "}", "]");
    bson_error_t error;
    int rc = 0;

    if (!mongoc_database_write_command_with_opts(db, cmd, NULL, NULL, &error)) {
        fprintf(stderr, "bench_devmongo: createIndexes: %s\n", error.message);
        rc = -1;
    }
    bson_destroy(cmd);
    return rc;
}

/* Inserts lines [first, first + n) in one unordered bulk. */
static int insert_batch(mongoc_collection_t *coll, const bson_oid_t *queue,
                        long first, long n)
{
    bson_t *opts = BCON_NEW("ordered", BCON_BOOL(false));
    mongoc_bulk_operation_t *bulk =
        mongoc_collection_create_bulk_operation_with_opts(coll, opts);
    int64_t now_ms = (int64_t)time(NULL) * 1000;
    bson_error_t error;
    int rc = 0;

    for (long line = first; line < first + n && rc == 0; line++) {
        bson_t *doc = BCON_NEW("name", BCON_UTF8("Deal from CSV"), "value",
                               BCON_DOUBLE((double)line * 10.0), "status",
                               BCON_UTF8("open"), "source", BCON_UTF8("csv"),
                               "created_at", BCON_DATE_TIME(now_ms), "import",
                               "{", "queue_id", BCON_OID(queue), "line",
                               BCON_INT32((int32_t)line), "}");

        if (!mongoc_bulk_operation_insert_with_opts(bulk, doc, NULL, &error)) {
            fprintf(stderr, "bench_devmongo: %s\n", error.message);
            rc = -1;
        }
        bson_destroy(doc);
    }
    if (rc == 0 && !mongoc_bulk_operation_execute(bulk, NULL, &error)) {
        fprintf(stderr, "bench_devmongo: bulk insert at line %ld: %s\n", first,
                error.message);
        rc = -1;
    }
    mongoc_bulk_operation_destroy(bulk);
    bson_destroy(opts);
    return rc;
}

static int admin(mongoc_client_t *client, bson_t *cmd, bson_t *reply)
{
    bson_error_t error;
    bson_t local;
    bool ok = mongoc_client_command_simple(client, "admin", cmd, NULL,
                                           reply ? reply : &local, &error);

    if (!ok)
        fprintf(stderr, "bench_devmongo: %s\n", error.message);
    if (reply == NULL)
        bson_destroy(&local);
    bson_destroy(cmd);
    return ok ? 0 : -1;
}

static int is_devmongo(mongoc_client_t *client)
{
    bson_t reply;
    bson_iter_t it;
    int yes =
        admin(client, BCON_NEW("buildInfo", BCON_INT32(1)), &reply) == 0 &&
        bson_iter_init_find(&it, &reply, "gitVersion") &&
        BSON_ITER_HOLDS_UTF8(&it) &&
        strcmp(bson_iter_utf8(&it, NULL), "devmongo") == 0;

    bson_destroy(&reply);
    return yes;
}

/* Counts filter's documents and prints the server's record of it. */
static int timed_count(mongoc_client_t *client, mongoc_collection_t *coll,
                       const char *ns, const char *mode, const char *what,
                       const bson_t *filter)
{
    bson_error_t error;
    bson_t reply;
    bson_iter_t it, ops, op;
    int64_t n = mongoc_collection_count_documents(coll, filter, NULL, NULL,
                                                  NULL, &error);

    if (n < 0) {
        fprintf(stderr, "bench_devmongo: count: %s\n", error.message);
        return -1;
    }
    if (admin(client,
              BCON_NEW("devOpLog", BCON_INT32(1), "ns", BCON_UTF8(ns), "op",
                       BCON_UTF8("aggregate"), "limit", BCON_INT32(1)),
              &reply) < 0)
        return -1;
    if (bson_iter_init_find(&it, &reply, "ops") &&
        bson_iter_recurse(&it, &ops) && bson_iter_next(&ops) &&
        bson_iter_recurse(&ops, &op)) {
        double ms = 0;
        int64_t docs = 0, keys = 0;
        const char *plan = "";

        while (bson_iter_next(&op)) {
            const char *k = bson_iter_key(&op);
            if (strcmp(k, "millis") == 0)
                ms = bson_iter_as_double(&op);
            else if (strcmp(k, "docsExamined") == 0)
                docs = bson_iter_as_int64(&op);
            else if (strcmp(k, "keysExamined") == 0)
                keys = bson_iter_as_int64(&op);
            else if (strcmp(k, "planSummary") == 0 && BSON_ITER_HOLDS_UTF8(&op))
                plan = bson_iter_utf8(&op, NULL);
        }
        printf("count %-6s %-12s %lld documents: %8.1f ms by the server, "
               "%lld docs and %lld keys examined (%s)\n",
               mode, what, (long long)n, ms, (long long)docs, (long long)keys,
               plan);
    }
    bson_destroy(&reply);
    return 0;
}

/* The counts in quick and in slow mode, the server left quick. */
static int slow_counts(mongoc_client_t *client, mongoc_collection_t *coll,
                       const char *dbname, const bson_oid_t *queue)
{
    const char *env = getenv("BENCH_SLOW_SCAN_US");
    long scan_us = 35;
    char ns[128];
    bson_t *all = bson_new();
    bson_t *mine = BCON_NEW("import.queue_id", BCON_OID(queue));
    int rc = 0;

    if (env != NULL && parse_count(env, "BENCH_SLOW_SCAN_US", &scan_us) < 0)
        rc = -1;
    snprintf(ns, sizeof(ns), "%s.deals", dbname);
    for (int slow = 0; slow < 2 && rc == 0; slow++) {
        const char *mode = slow ? "slow" : "quick";

        rc = admin(client,
                   BCON_NEW("devSlow", "{", "scan_us",
                            BCON_INT64(slow ? scan_us : 0), "}"),
                   NULL);
        if (rc == 0)
            rc = timed_count(client, coll, ns, mode, "(scan)", all);
        if (rc == 0)
            rc = timed_count(client, coll, ns, mode, "(index)", mine);
    }
    (void)admin(client, BCON_NEW("devSlow", "{", "scan_us", BCON_INT32(0), "}"),
                NULL);
    if (rc == 0)
        printf("slow mode: scan_us=%ld (key_us the same)\n", scan_us);
    bson_destroy(mine);
    bson_destroy(all);
    return rc;
}

static int run(const char *uri_str, const bench_opts_t *o)
{
    mongoc_uri_t *uri = NULL;
    mongoc_client_t *client = NULL;
    mongoc_database_t *db = NULL;
    mongoc_collection_t *coll = NULL;
    bson_error_t error;
    bson_t empty = BSON_INITIALIZER;
    bson_oid_t queue;
    char dbname[64];
    double start, secs;
    int64_t count;
    int rc = -1;

    snprintf(dbname, sizeof(dbname), "devmongo_bench_%ld", (long)getpid());
    uri = mongoc_uri_new_with_error(uri_str, &error);
    if (uri == NULL) {
        fprintf(stderr, "bench_devmongo: bad uri '%s': %s\n", uri_str,
                error.message);
        goto cleanup;
    }
    client = mongoc_client_new_from_uri(uri);
    if (client == NULL)
        goto cleanup;
    mongoc_client_set_error_api(client, MONGOC_ERROR_API_VERSION_2);
    db = mongoc_client_get_database(client, dbname);
    coll = mongoc_database_get_collection(db, "deals");
    if (create_index(db, "deals") < 0)
        goto cleanup;
    bson_oid_init(&queue, NULL);

    start = now_s();
    for (long first = 1; first <= o->docs; first += o->batch) {
        long n =
            o->docs - first + 1 < o->batch ? o->docs - first + 1 : o->batch;
        if (insert_batch(coll, &queue, first, n) < 0)
            goto cleanup;
    }
    secs = now_s() - start;

    count = mongoc_collection_count_documents(coll, &empty, NULL, NULL, NULL,
                                              &error);
    if (count != o->docs) {
        fprintf(stderr, "bench_devmongo: %lld documents stored, expected %ld\n",
                (long long)count, o->docs);
        goto cleanup;
    }
    printf("inserted %ld documents in batches of %ld in %.2f s: %.0f docs/s, "
           "%.1f us/doc\n",
           o->docs, o->batch, secs, (double)o->docs / secs,
           secs * 1e6 / (double)o->docs);
    if (is_devmongo(client) && slow_counts(client, coll, dbname, &queue) < 0)
        goto cleanup;
    rc = 0;

cleanup:
    if (db != NULL && !mongoc_database_drop_with_opts(db, NULL, &error))
        fprintf(stderr, "bench_devmongo: cannot drop '%s': %s\n", dbname,
                error.message);
    bson_destroy(&empty);
    mongoc_collection_destroy(coll);
    mongoc_database_destroy(db);
    mongoc_client_destroy(client);
    mongoc_uri_destroy(uri);
    return rc;
}

int main(int argc, char **argv)
{
    bench_opts_t o = {100000, 1000};
    int rc;

    if (argc < 2 || argc > 4) {
        fprintf(stderr, "usage: bench_devmongo URI [DOCS [BATCH]]\n");
        return 2;
    }
    if ((argc > 2 && parse_count(argv[2], "document count", &o.docs) < 0) ||
        (argc > 3 && parse_count(argv[3], "batch size", &o.batch) < 0))
        return 2;
    mongoc_init();
    rc = run(argv[1], &o);
    mongoc_cleanup();
    return rc == 0 ? 0 : 1;
}
