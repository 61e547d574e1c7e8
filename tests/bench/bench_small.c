/*
 * bench_small: small imports, the service's typical ones, through the real
 * supervisor and worker on the development stack with default settings.
 * Run by `scripts/bench small`.
 *
 * One at a time: SINGLE imports of a 100-row file with 10 bad rows, each
 * queued at a random point of the supervisor's poll cycle (a random pause
 * of up to DEALIMPORT_POLL_MS, default 5 s, before each); from each queue
 * document's own times, the p50 and p95 of enqueue -> final status
 * (created_at -> finished_at) and of claim -> final status (claimed_at ->
 * finished_at).
 * At once: BULK imports of the same file queued together over ACCOUNTS
 * accounts; imports/s and deals/s from the first enqueue to the last final
 * status.
 * For each phase, the database commands per import by kind, from the
 * development server's devCommandCounts, less this program's own (its
 * enqueues and its waiting, counted by command monitoring): what the
 * service spends, supervisor and workers together, polls included. For
 * the bulk phase, the server's own time for the service (its op log): per
 * import, and the share of the phase its lock was held, which says whether
 * the server or the clients bound the rate.
 *
 *   bench_small LOGFILE [SINGLE [BULK [ACCOUNTS]]]   (30, 200, 50)
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

#define MAX_KINDS 128

typedef struct {
    char key[96];
    long n;
} kind_t;

/* This program's own commands, by 'target.command' as the server counts. */
static kind_t own[MAX_KINDS];
static size_t nown;

static void count_kind(kind_t *k, size_t *nk, const char *key, long n)
{
    for (size_t i = 0; i < *nk; i++)
        if (strcmp(k[i].key, key) == 0) {
            k[i].n += n;
            return;
        }
    if (*nk < MAX_KINDS) {
        snprintf(k[*nk].key, sizeof(k[*nk].key), "%s", key);
        k[(*nk)++].n = n;
    }
}

static void on_started(const mongoc_apm_command_started_t *ev)
{
    const char *name = mongoc_apm_command_started_get_command_name(ev);
    const bson_t *cmd = mongoc_apm_command_started_get_command(ev);
    bson_iter_t it;
    char key[96];
    const char *target = "$cmd";
    if (bson_iter_init_find(&it, cmd, name) && BSON_ITER_HOLDS_UTF8(&it))
        target = bson_iter_utf8(&it, NULL);
    snprintf(key, sizeof(key), "%s.%s", target, name);
    count_kind(own, &nown, key, 1);
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int by_value(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of n sorted values. */
static int64_t pct(const int64_t *v, int n, int p)
{
    int rank = (p * n + 99) / 100;
    return v[rank > 0 ? rank - 1 : 0];
}

static int64_t date_at(const bson_t *doc, const char *field)
{
    bson_iter_t it;
    if (bson_iter_init_find(&it, doc, field) && BSON_ITER_HOLDS_DATE_TIME(&it))
        return bson_iter_date_time(&it);
    return -1;
}

/* Resets the server's counts (a real server has none: 0). */
static int reset_counts(it_env_t *env, bson_t *out)
{
    bson_t *cmd =
        BCON_NEW("devCommandCounts", BCON_INT32(1), "reset", BCON_BOOL(true));
    bson_t reply;
    int ok = mongoc_client_command_simple(env->client, "admin", cmd, NULL,
                                          &reply, NULL);
    if (out != NULL) {
        bson_iter_t it, sub;
        bson_init(out);
        if (ok && bson_iter_init_find(&it, &reply, "counts") &&
            bson_iter_recurse(&it, &sub))
            while (bson_iter_next(&sub))
                BSON_APPEND_INT64(out, bson_iter_key(&sub),
                                  bson_iter_as_int64(&sub));
    }
    bson_destroy(&reply);
    bson_destroy(cmd);
    nown = 0;
    return ok;
}

/* Prints the service's commands per import by kind: the server's counts
 * since the last reset less this program's own. */
static void print_commands(it_env_t *env, int imports, const char *phase)
{
    kind_t mine[MAX_KINDS];
    size_t nmine = nown;
    kind_t rows[MAX_KINDS];
    size_t nrows = 0;
    bson_t counts;
    bson_iter_t it;
    long total = 0;
    memcpy(mine, own, sizeof(own));
    if (!reset_counts(env, &counts)) {
        printf("%s: the server has no devCommandCounts\n", phase);
        bson_destroy(&counts);
        return;
    }
    bson_iter_init(&it, &counts);
    while (bson_iter_next(&it)) {
        const char *key = bson_iter_key(&it);
        long n = (long)bson_iter_as_int64(&it);
        if (strcmp(key, "$cmd.devCommandCounts") == 0)
            continue;
        for (size_t i = 0; i < nmine; i++)
            if (strcmp(mine[i].key, key) == 0)
                n -= mine[i].n;
        if (n > 0)
            count_kind(rows, &nrows, key, n);
    }
    bson_destroy(&counts);
    printf("%s: database commands per import, by kind (server counts less "
           "this program's own):\n",
           phase);
    for (size_t i = 0; i < nrows; i++) {
        printf("  %-36s %7.2f\n", rows[i].key, (double)rows[i].n / imports);
        total += rows[i].n;
    }
    printf("  %-36s %7.2f\n", "total", (double)total / imports);
}

/* This program's own connection on the server, from the op log's entry of
 * a find no one else makes; -1 when the server has no op log. */
static int64_t own_conn(it_env_t *env)
{
    bson_t *cmd, reply, op;
    bson_iter_t it, ops;
    char ns[160];
    int64_t conn = -1;
    it_count(env, "bench_own_conn", "{}");
    snprintf(ns, sizeof(ns), "%s.bench_own_conn", env->dbname);
    cmd = BCON_NEW("devOpLog", BCON_INT32(1), "ns", BCON_UTF8(ns), "limit",
                   BCON_INT32(1));
    if (mongoc_client_command_simple(env->client, "admin", cmd, NULL, &reply,
                                     NULL) &&
        bson_iter_init_find(&it, &reply, "ops") &&
        bson_iter_recurse(&it, &ops) && bson_iter_next(&ops) &&
        BSON_ITER_HOLDS_DOCUMENT(&ops)) {
        uint32_t len;
        const uint8_t *data;
        bson_iter_document(&ops, &len, &data);
        if (bson_init_static(&op, data, len))
            conn = dip_bson_get_int(&op, "conn", -1);
    }
    bson_destroy(&reply);
    bson_destroy(cmd);
    return conn;
}

/* Empties the server's op log (a real server has none). */
static void reset_oplog(it_env_t *env)
{
    bson_t *cmd = BCON_NEW("devOpLog", BCON_INT32(1), "limit", BCON_INT32(1),
                           "reset", BCON_BOOL(true));
    bson_t reply;
    mongoc_client_command_simple(env->client, "admin", cmd, NULL, &reply, NULL);
    bson_destroy(&reply);
    bson_destroy(cmd);
}

/* The development server's own time for the service since the last
 * reset_oplog, from its op log: the time its one lock was held for the
 * service's commands (less this program's, connection mine, and the
 * getMores, which wait with the lock released), per import and
 * as a share of the phase's wall time: near 100% the server bounds the
 * rate, well below it the clients do. Also the time they waited for it. */
static void print_server_time(it_env_t *env, int64_t mine, int imports,
                              int64_t wall_ms, const char *phase)
{
    bson_t *cmd =
        BCON_NEW("devOpLog", BCON_INT32(1), "limit", BCON_INT32(10000));
    bson_t reply;
    bson_iter_t it, ops;
    double held = 0, waited = 0, mine_ms = 0;
    long n = 0;
    kind_t kinds[MAX_KINDS];
    size_t nkinds = 0;
    if (!mongoc_client_command_simple(env->client, "admin", cmd, NULL, &reply,
                                      NULL) ||
        !bson_iter_init_find(&it, &reply, "ops") ||
        !bson_iter_recurse(&it, &ops)) {
        printf("%s: the server has no devOpLog\n", phase);
        bson_destroy(&reply);
        bson_destroy(cmd);
        return;
    }
    while (bson_iter_next(&ops)) {
        bson_t op;
        uint32_t len;
        const uint8_t *data;
        bson_iter_t f;
        double ms = 0, wait = 0;
        bson_iter_document(&ops, &len, &data);
        if (!bson_init_static(&op, data, len))
            continue;
        if (bson_iter_init_find(&f, &op, "millis"))
            ms = bson_iter_as_double(&f);
        if (bson_iter_init_find(&f, &op, "waitMillis"))
            wait = bson_iter_as_double(&f);
        /* A change stream's getMore waits for changes with the lock
         * released: its time is not the server's work. */
        if (dip_bson_get_str(&op, "op") &&
            strcmp(dip_bson_get_str(&op, "op"), "getMore") == 0)
            continue;
        if (dip_bson_get_int(&op, "conn", -1) == mine) {
            mine_ms += ms - wait;
            continue;
        }
        held += ms - wait;
        waited += wait;
        n++;
        {
            const char *name = dip_bson_get_str(&op, "op");
            const char *ns = dip_bson_get_str(&op, "ns");
            const char *dot = ns ? strchr(ns, '.') : NULL;
            char key[96];
            snprintf(key, sizeof(key), "%s.%s", dot ? dot + 1 : "$cmd",
                     name ? name : "?");
            /* microseconds, in the kinds' counter */
            count_kind(kinds, &nkinds, key, (long)((ms - wait) * 1000.0));
        }
    }
    printf("%s: the development server's own time for the service: %.1f ms "
           "per import (%ld commands logged), its lock held %.0f%% of the "
           "phase's %.2f s (this program's own %.0f%%); the service waited "
           "%.1f ms per import for the lock\n",
           phase, held / imports, n,
           wall_ms > 0 ? 100.0 * held / (double)wall_ms : 0,
           (double)wall_ms / 1000.0,
           wall_ms > 0 ? 100.0 * mine_ms / (double)wall_ms : 0,
           waited / imports);
    printf("%s: the server's time per import by kind (ms):\n", phase);
    for (size_t i = 0; i < nkinds; i++)
        printf("  %-36s %7.2f\n", kinds[i].key,
               (double)kinds[i].n / 1000.0 / imports);
    bson_destroy(&reply);
    bson_destroy(cmd);
}

/* Waits for every import in ids to reach its end (final status and
 * csv_imports landed); copies each final document into out[i]. */
static int wait_all(it_env_t *env, const bson_oid_t *ids, int n, bson_t *out)
{
    mongoc_collection_t *q = it_coll(env, "queues");
    int done = 0;
    int *seen = calloc((size_t)n, sizeof(int));
    /* Only the imports not seen ended yet, by _id, and only the fields
     * read here: the waiting must not load the server it measures. */
    bson_t *opts =
        BCON_NEW("projection", "{", "status", BCON_INT32(1), "created_at",
                 BCON_INT32(1), "claimed_at", BCON_INT32(1), "finished_at",
                 BCON_INT32(1), "progress.added", BCON_INT32(1), "}");
    for (int round = 0; seen != NULL && done < n && round < 36000; round++) {
        bson_t *filter = bson_new(), idf, in;
        mongoc_cursor_t *c;
        BSON_APPEND_DOCUMENT_BEGIN(filter, "_id", &idf);
        BSON_APPEND_ARRAY_BEGIN(&idf, "$in", &in);
        for (int i = 0, k = 0; i < n; i++)
            if (!seen[i]) {
                char key[16];
                snprintf(key, sizeof(key), "%d", k++);
                BSON_APPEND_OID(&in, key, &ids[i]);
            }
        bson_append_array_end(&idf, &in);
        bson_append_document_end(filter, &idf);
        BCON_APPEND(filter, "status", "{", "$in", "[", BCON_UTF8("completed"),
                    BCON_UTF8("failed"), BCON_UTF8("cancelled"), "]", "}",
                    "log_pending", "{", "$exists", BCON_BOOL(false), "}");
        c = mongoc_collection_find_with_opts(q, filter, opts, NULL);
        const bson_t *doc;
        while (mongoc_cursor_next(c, &doc)) {
            bson_iter_t it;
            if (!bson_iter_init_find(&it, doc, "_id") ||
                !BSON_ITER_HOLDS_OID(&it))
                continue;
            for (int i = 0; i < n; i++)
                if (!seen[i] && bson_oid_equal(bson_iter_oid(&it), &ids[i])) {
                    seen[i] = 1;
                    bson_copy_to(doc, &out[i]);
                    done++;
                }
        }
        mongoc_cursor_destroy(c);
        bson_destroy(filter);
        if (done < n)
            usleep(done + 1 == n ? 20000 : 100000);
    }
    free(seen);
    bson_destroy(opts);
    mongoc_collection_destroy(q);
    return done == n ? 0 : -1;
}

int main(int argc, char **argv)
{
    it_env_t env;
    it_gen_t *gen = NULL;
    char path[256], key[128];
    const char *pollv = getenv("DEALIMPORT_POLL_MS");
    long poll_ms = pollv ? atol(pollv) : 5000;
    int single = argc > 2 ? atoi(argv[2]) : 30;
    int bulk = argc > 3 ? atoi(argv[3]) : 200;
    int accounts = argc > 4 ? atoi(argv[4]) : 50;
    bson_oid_t *acc, *pipe, user, *ids;
    bson_t *fin;
    int64_t *enq, *clm;
    char pollenv[64];
    const char *extra[] = {pollenv, NULL};
    mongoc_apm_callbacks_t *cbs;
    pid_t sup;
    int rc = 0, failed = 0;
    int64_t mine;
    double load[3];

    if (argc < 2 || single < 1 || bulk < 1 || accounts < 1) {
        fprintf(stderr,
                "usage: bench_small LOGFILE [SINGLE [BULK [ACCOUNTS]]]\n");
        return 2;
    }
    rc = it_env_init(&env, "small");
    if (rc)
        return rc == 77 ? 1 : rc;
    cbs = mongoc_apm_callbacks_new();
    mongoc_apm_set_command_started_cb(cbs, on_started);
    mongoc_client_set_apm_callbacks(env.client, cbs, NULL);
    mongoc_apm_callbacks_destroy(cbs);
    snprintf(pollenv, sizeof(pollenv), "DEALIMPORT_POLL_MS=%ld", poll_ms);
    srand((unsigned)getpid());

    gen = it_gen_new(100, 7u, 100, 0);
    snprintf(path, sizeof(path), "/tmp/bench-small-%d.csv", (int)getpid());
    if (gen == NULL || it_gen_write(gen, path) < 0) {
        fprintf(stderr, "bench_small: cannot write '%s'\n", path);
        return 1;
    }
    printf("file: 100 rows (%llu good, %llu bad)\n",
           (unsigned long long)it_gen_count(gen, IT_ROW_GOOD),
           (unsigned long long)it_gen_count(gen, IT_ROW_KINDS));
    acc = calloc((size_t)accounts, sizeof(*acc));
    pipe = calloc((size_t)accounts, sizeof(*pipe));
    ids = calloc((size_t)(single > bulk ? single : bulk), sizeof(*ids));
    fin = calloc((size_t)(single > bulk ? single : bulk), sizeof(*fin));
    enq = calloc((size_t)single, sizeof(*enq));
    clm = calloc((size_t)single, sizeof(*clm));
    if (!acc || !pipe || !ids || !fin || !enq || !clm)
        return 1;
    bson_oid_init(&user, NULL);
    for (int a = 0; a < accounts; a++) {
        bson_oid_init(&acc[a], NULL);
        it_pipeline(&env, &acc[a], &pipe[a]);
    }

    /* -- one at a time ------------------------------------------------ */
    sup = it_supervisor_start(&env, extra, argv[1]);
    sleep(2); /* started, indexes ensured: time the imports */
    mine = own_conn(&env);
    reset_counts(&env, NULL);
    for (int i = 0; i < single; i++) {
        bson_t one;
        snprintf(key, sizeof(key), "imports/deals/small/one-%d.csv", i);
        it_put_file(&env, key, path);
        usleep((useconds_t)(rand() % (poll_ms > 0 ? poll_ms : 1)) * 1000);
        it_enqueue(&env, key, &acc[0], &user, &pipe[0], it_gen_mappings(),
                   &ids[i]);
        bson_init(&one);
        if (wait_all(&env, &ids[i], 1, &one) < 0 ||
            strcmp(it_str(&one, "status"), "completed") != 0) {
            fprintf(stderr, "bench_small: import %d did not complete (%s)\n", i,
                    it_str(&one, "status"));
            failed++;
        }
        enq[i] = date_at(&one, "finished_at") - date_at(&one, "created_at");
        clm[i] = date_at(&one, "finished_at") - date_at(&one, "claimed_at");
        bson_destroy(&one);
    }
    qsort(enq, (size_t)single, sizeof(*enq), by_value);
    qsort(clm, (size_t)single, sizeof(*clm), by_value);
    printf("one at a time: %d imports, poll %ld ms\n", single, poll_ms);
    printf("  enqueue -> completed: p50 %lld ms, p95 %lld ms (max %lld)\n",
           (long long)pct(enq, single, 50), (long long)pct(enq, single, 95),
           (long long)enq[single - 1]);
    printf("  claim -> completed:   p50 %lld ms, p95 %lld ms (max %lld)\n",
           (long long)pct(clm, single, 50), (long long)pct(clm, single, 95),
           (long long)clm[single - 1]);
    print_commands(&env, single, "one at a time");

    /* -- all at once ---------------------------------------------------- */
    {
        mongoc_collection_t *q = it_coll(&env, "queues");
        int64_t t0, last = 0, added = 0;
        for (int i = 0; i < bulk; i++) {
            snprintf(key, sizeof(key), "imports/deals/small/bulk-%d.csv", i);
            it_put_file(&env, key, path);
        }
        reset_counts(&env, NULL);
        reset_oplog(&env);
        t0 = wall_ms();
        for (int i = 0; i < bulk; i++) {
            snprintf(key, sizeof(key), "imports/deals/small/bulk-%d.csv", i);
            it_enqueue(&env, key, &acc[i % accounts], &user,
                       &pipe[i % accounts], it_gen_mappings(), &ids[i]);
        }
        for (int i = 0; i < bulk; i++)
            bson_init(&fin[i]);
        if (wait_all(&env, ids, bulk, fin) < 0) {
            fprintf(stderr, "bench_small: not every import ended\n");
            failed++;
        }
        for (int i = 0; i < bulk; i++) {
            int64_t f = date_at(&fin[i], "finished_at");
            if (f > last)
                last = f;
            added += dip_bson_get_int(&fin[i], "progress.added", 0);
            if (strcmp(it_str(&fin[i], "status"), "completed") != 0)
                failed++;
            bson_destroy(&fin[i]);
        }
        printf("all at once: %d imports over %d accounts in %.2f s: %.1f "
               "imports/s, %.0f deals/s (%lld deals)\n",
               bulk, accounts, (double)(last - t0) / 1000.0,
               bulk * 1000.0 / (double)(last - t0),
               (double)added * 1000.0 / (double)(last - t0), (long long)added);
        print_commands(&env, bulk, "all at once");
        print_server_time(&env, mine, bulk, last - t0, "all at once");
        mongoc_collection_destroy(q);
    }
    if (getloadavg(load, 3) == 3)
        printf("load average after: %.2f %.2f %.2f\n", load[0], load[1],
               load[2]);
    it_process_stop(sup, SIGTERM, 60000);
    unlink(path);
    it_gen_destroy(&gen);
    free(acc);
    free(pipe);
    free(ids);
    free(fin);
    free(enq);
    free(clm);
    it_env_release(&env);
    if (failed)
        fprintf(stderr, "bench_small: %d imports did not complete\n", failed);
    return failed ? 1 : 0;
}
