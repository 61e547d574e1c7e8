/*
 * Queue documents the claim cannot take end alone: beside them, healthy
 * imports of other accounts (and of the same account) are claimed and
 * complete, through the real supervisor and the development server, which
 * keeps MongoDB's update rules (a failed update changes nothing; $inc on a
 * non-number fails with 14; an update past 16 MiB fails with 17419).
 *
 * Failure classes walked for the claim's path (../shared/FAILURE-CLASSES.md):
 * - 4 (one document poisons a loop): `claims` null or not a number, a
 *   document within a few hundred bytes of 16 MiB, wrong types in every
 *   field the claim reads or writes: the claim's findAndModify fails for
 *   that document; the supervisor takes it alone once more to be sure the
 *   error is its own, then marks it failed by an update fenced on its still
 *   being claimable, or, when even that cannot land (the 16 MiB one: the
 *   sentence would take it past the limit), sets it aside for a minute
 *   doubling to an hour, logs it and counts it
 *   (dealimport_unclaimable_documents_total). The next candidate and the
 *   next account are claimed in the same round; a set-aside document is
 *   left out of the claim's filter, so its account is not put first again.
 *   A document the claim could take but whose final figures do not fit is
 *   ended with its final status alone (sup_store_finish), so it holds no
 *   slot.
 * - 11 (types): created_at of another type never fails the fair order (a
 *   sort and $first, not $min); claims read as an integer only.
 * - 1, 5 (slow, stepped down, retryable errors): a network error, a
 *   timeout, a primary stepping down are not a document's fault
 *   (sup_claim_error_rule, table-tested in tests/supervisor/test_sup_claim.c):
 *   claiming pauses as before and no document is marked.
 * - 9 (shared resources: an account's slot): a slot taken (11000) or a
 *   document claimed by another supervisor between the failed claim and
 *   the one that takes it alone: the next slot, or the next look; the fence
 *   on the mark (still claimable) never fails an import another supervisor
 *   runs.
 * - 3 (indexes): the extra reads (the first candidate's _id) use the
 *   claim's own filter and sort, on source_status_created; they happen
 *   only after a refused claim.
 * - 12 (tenants): a document's refusal touches that document alone.
 * Acceptance figure: the three healthy imports queued after claims:null
 * and a 16 MiB - 100 bytes document were claimed at most 438-469 ms after
 * being queued with a 1,000 ms poll (printed by the test).
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
#include <time.h>
#include <unistd.h>

#include "dip_bson.h"
#include "it_env.h"
#include "it_tmp.h"

#define MAX_BSON (16 * 1024 * 1024)

/* The log of the supervisor a case starts, in the test's folder. */
static char tmp_log[512];

static const char mappings[] =
    "{\"Deal Name\":\"name\",\"Value\":\"value\",\"Stage\":\"stage_id\"}";

static it_env_t env;

static void put_file(const char *key, int n)
{
    size_t cap = 64 + (size_t)n * 48, len = 0;
    char *buf = malloc(cap);
    len += (size_t)snprintf(buf + len, cap - len, "Deal Name,Value,Stage\n");
    for (int i = 1; i <= n; i++)
        len += (size_t)snprintf(buf + len, cap - len, "Deal %d,%d,stage %d\n",
                                i, i * 10, i % 3);
    it_put(&env, key, buf, len);
    free(buf);
}

/* Applies a JSON update to one queue document. */
static void update(const bson_oid_t *qid, const char *json)
{
    mongoc_collection_t *c = it_coll(&env, "queues");
    bson_error_t error;
    bson_t *u = bson_new_from_json((const uint8_t *)json, -1, &error);
    bson_t f = BSON_INITIALIZER;
    assert_non_null(u);
    BSON_APPEND_OID(&f, "_id", qid);
    assert_true(mongoc_collection_update_one(c, &f, u, NULL, NULL, &error));
    bson_destroy(u);
    bson_destroy(&f);
    mongoc_collection_destroy(c);
}

/* Rewrites the queue document with a mappings object that makes the whole
 * document total - slack bytes. */
static void grow_to(const bson_oid_t *qid, size_t slack)
{
    mongoc_collection_t *c = it_coll(&env, "queues");
    bson_t f = BSON_INITIALIZER, *doc, m;
    const bson_t *cur;
    mongoc_cursor_t *cursor;
    bson_iter_t it;
    bson_error_t error;
    char *pad;
    size_t base, want;
    BSON_APPEND_OID(&f, "_id", qid);
    cursor = mongoc_collection_find_with_opts(c, &f, NULL, NULL);
    assert_true(mongoc_cursor_next(cursor, &cur));
    /* everything but mappings, then mappings with an empty pad */
    doc = bson_new();
    bson_iter_init(&it, cur);
    while (bson_iter_next(&it))
        if (strcmp(bson_iter_key(&it), "mappings") != 0)
            BSON_APPEND_VALUE(doc, bson_iter_key(&it), bson_iter_value(&it));
    mongoc_cursor_destroy(cursor);
    {
        bson_t probe;
        bson_copy_to(doc, &probe);
        BSON_APPEND_DOCUMENT_BEGIN(&probe, "mappings", &m);
        BSON_APPEND_UTF8(&m, "Deal Name", "name");
        BSON_APPEND_UTF8(&m, "Pad", "");
        bson_append_document_end(&probe, &m);
        base = probe.len;
        bson_destroy(&probe);
    }
    want = MAX_BSON - slack - base;
    pad = malloc(want + 1);
    memset(pad, 'p', want);
    pad[want] = '\0';
    BSON_APPEND_DOCUMENT_BEGIN(doc, "mappings", &m);
    BSON_APPEND_UTF8(&m, "Deal Name", "name");
    BSON_APPEND_UTF8(&m, "Pad", pad);
    bson_append_document_end(doc, &m);
    free(pad);
    assert_int_equal(doc->len, MAX_BSON - slack);
    assert_true(mongoc_collection_replace_one(c, &f, doc, NULL, NULL, &error));
    bson_destroy(doc);
    bson_destroy(&f);
    mongoc_collection_destroy(c);
}

/* Wrong values of the fields the claim reads or writes: each a $set or
 * $unset the claim's filter still matches (a pending, unlocked document of
 * source deals). */
static const char *const wrong[] = {
    "{\"$set\":{\"claims\":null}}",
    "{\"$set\":{\"claims\":\"1\"}}",
    "{\"$set\":{\"claims\":true}}",
    "{\"$set\":{\"claims\":{\"n\":1}}}",
    "{\"$set\":{\"claims\":[1]}}",
    "{\"$set\":{\"claims\":1.5}}",
    "{\"$set\":{\"claims\":{\"$numberLong\":\"9223372036854775807\"}}}",
    "{\"$set\":{\"in_progress\":\"true\"}}",
    "{\"$set\":{\"in_progress\":null}}",
    "{\"$set\":{\"lease_expires_at\":\"soon\"}}",
    "{\"$set\":{\"claimed_by\":7}}",
    "{\"$set\":{\"account_key\":{\"k\":1}}}",
    "{\"$set\":{\"account_slot\":\"zero\"}}",
    "{\"$set\":{\"claimed_at\":[\"yesterday\"]}}",
    "{\"$set\":{\"created_at\":\"old\"}}",
    "{\"$unset\":{\"created_at\":\"\"}}",
    "{\"$set\":{\"account_id\":5}}",
    "{\"$set\":{\"account_id\":null}}",
    "{\"$set\":{\"account_id\":{\"a\":1}}}",
    "{\"$set\":{\"account_id\":\"not an id\"}}",
    "{\"$set\":{\"mappings\":\"x\"}}",
    "{\"$set\":{\"csv\":null}}",
};
#define NWRONG (sizeof(wrong) / sizeof(wrong[0]))

/* Healthy imports: all complete, claimed once; prints how long each waited
 * from being queued to being claimed. */
static void check_healthy(const bson_oid_t *qid, int n, const int *rows,
                          long poll_ms)
{
    int64_t worst = 0;
    for (int i = 0; i < n; i++) {
        bson_t q;
        int64_t wait;
        assert_int_equal(it_wait_final(&env, &qid[i], 120000, &q), 0);
        printf("healthy %d: %s %s\n", i, it_str(&q, "status"),
               it_str(&q, "error"));
        assert_string_equal(it_str(&q, "status"), "completed");
        assert_int_equal(dip_bson_get_int(&q, "claims", -1), 1);
        assert_int_equal(dip_bson_get_int(&q, "progress.added", -1), rows[i]);
        {
            bson_iter_t a, b;
            if (bson_iter_init_find(&a, &q, "claimed_at") &&
                bson_iter_init_find(&b, &q, "created_at") &&
                BSON_ITER_HOLDS_DATE_TIME(&a) && BSON_ITER_HOLDS_DATE_TIME(&b))
                wait = bson_iter_date_time(&a) - bson_iter_date_time(&b);
            else
                wait = -1;
        }
        if (wait > worst)
            worst = wait;
        bson_destroy(&q);
    }
    printf("healthy imports: queued to claimed at most %lld ms (poll %ld ms)\n",
           (long long)worst, poll_ms);
}

/* The acceptance case: claims null and a document of 16 MiB minus 100
 * bytes queued first, then three healthy imports of three other accounts:
 * all three complete; the first bad one ends failed with a sentence, the
 * large one (which no update can mark) is set aside, logged. */
static void test_null_claims_and_16mib(void **state)
{
    static const char *const extra[] = {"DEALIMPORT_MAX_WORKERS=3",
                                        "DEALIMPORT_POLL_MS=1000", NULL};
    const char *log =
        it_tmp_name(tmp_log, sizeof(tmp_log), "it-poison-accept.log");
    bson_oid_t bad_acc[2], acc[3], pipe[3], user, bad[2], ok[3];
    int rows[3] = {40, 50, 60};
    char key[128];
    pid_t sup;
    bson_t q;
    (void)state;
    bson_oid_init(&user, NULL);
    put_file("imports/deals/poison/bad.csv", 10);
    for (int i = 0; i < 2; i++) {
        bson_oid_t p;
        bson_oid_init(&bad_acc[i], NULL);
        it_pipeline(&env, &bad_acc[i], &p);
        it_enqueue(&env, "imports/deals/poison/bad.csv", &bad_acc[i], &user, &p,
                   mappings, &bad[i]);
    }
    update(&bad[0], "{\"$set\":{\"claims\":null}}");
    grow_to(&bad[1], 100);
    unlink(log);
    sup = it_supervisor_start(&env, extra, log);
    /* the bad ones are met first; the healthy ones come after */
    sleep(2);
    for (int i = 0; i < 3; i++) {
        bson_oid_init(&acc[i], NULL);
        it_pipeline(&env, &acc[i], &pipe[i]);
        snprintf(key, sizeof(key), "imports/deals/poison/ok-%d.csv", i);
        put_file(key, rows[i]);
        it_enqueue(&env, key, &acc[i], &user, &pipe[i], mappings, &ok[i]);
    }
    check_healthy(ok, 3, rows, 1000);

    assert_int_equal(it_wait_final(&env, &bad[0], 10000, &q), 0);
    printf("claims null: %s: %s\n", it_str(&q, "status"), it_str(&q, "error"));
    assert_string_equal(it_str(&q, "status"), "failed");
    assert_non_null(strstr(it_str(&q, "error"), "cannot be claimed"));
    bson_destroy(&q);
    {
        char filter[160], hex[25];
        bson_oid_to_string(&bad[0], hex);
        snprintf(filter, sizeof(filter),
                 "{\"queue_id\":{\"$oid\":\"%s\"},\"status\":\"failed\"}", hex);
        assert_int_equal(it_count(&env, "csv_imports", filter), 1);
        /* the large one is unchanged: pending, never claimed */
        bson_oid_to_string(&bad[1], hex);
        snprintf(filter, sizeof(filter),
                 "{\"_id\":{\"$oid\":\"%s\"},\"status\":\"pending\","
                 "\"claims\":{\"$exists\":false}}",
                 hex);
        assert_int_equal(it_count(&env, "queues", filter), 1);
    }
    assert_int_equal(it_process_stop(sup, SIGTERM, 30000) >= 0, 1);
    assert_true(it_file_contains(
        log, "cannot be claimed nor marked failed; set aside"));
}

/* The property: random malformed pending documents (one to three wrong
 * fields each, some near 16 MiB), older than healthy imports of other
 * accounts and of their own account: every healthy import completes, and
 * no document is left processing. DEALIMPORT_TEST_SEED repeats a run. */
static void test_random_malformed(void **state)
{
    static const char *const extra[] = {"DEALIMPORT_MAX_WORKERS=3",
                                        "DEALIMPORT_MAX_WORKERS_PER_ACCOUNT=1",
                                        "DEALIMPORT_POLL_MS=200", NULL};
    enum { NBAD = 14, NOK = 6 };
    const char *seed_env = getenv("DEALIMPORT_TEST_SEED");
    unsigned seed = seed_env ? (unsigned)strtoul(seed_env, NULL, 10)
                             : (unsigned)time(NULL) ^ (unsigned)getpid();
    bson_oid_t acc[NOK / 2], pipe[NOK / 2], user, bad[NBAD], ok[NOK];
    int rows[NOK];
    char key[128];
    pid_t sup;
    (void)state;
    printf("seed %u (DEALIMPORT_TEST_SEED repeats it)\n", seed);
    srand(seed);
    bson_oid_init(&user, NULL);
    put_file("imports/deals/poison/r-bad.csv", 5);
    for (int a = 0; a < NOK / 2; a++) {
        bson_oid_init(&acc[a], NULL);
        it_pipeline(&env, &acc[a], &pipe[a]);
    }
    for (int i = 0; i < NBAD; i++) {
        bson_oid_t a, p;
        int n = 1 + rand() % 3;
        /* every fourth in an account that also has healthy imports */
        if (i % 4 == 0) {
            a = acc[i % (NOK / 2)];
            p = pipe[i % (NOK / 2)];
        } else {
            bson_oid_init(&a, NULL);
            it_pipeline(&env, &a, &p);
        }
        it_enqueue(&env, "imports/deals/poison/r-bad.csv", &a, &user, &p,
                   mappings, &bad[i]);
        for (int k = 0; k < n; k++) {
            size_t w = (size_t)rand() % NWRONG;
            printf("bad %d: %s\n", i, wrong[w]);
            update(&bad[i], wrong[w]);
        }
        if (rand() % 4 == 0) {
            size_t slack = 50 + (size_t)(rand() % 600);
            printf("bad %d: 16 MiB minus %zu bytes\n", i, slack);
            grow_to(&bad[i], slack);
        }
    }
    for (int i = 0; i < NOK; i++) {
        rows[i] = 20 + i * 7;
        snprintf(key, sizeof(key), "imports/deals/poison/r-ok-%d.csv", i);
        put_file(key, rows[i]);
        it_enqueue(&env, key, &acc[i % (NOK / 2)], &user, &pipe[i % (NOK / 2)],
                   mappings, &ok[i]);
    }
    sup = it_supervisor_start(
        &env, extra,
        it_tmp_name(tmp_log, sizeof(tmp_log), "it-poison-random.log"));
    check_healthy(ok, NOK, rows, 200);
    /* Nothing of the bad ones holds a slot: the supervisor ends cleanly and
     * none is left processing once it has. */
    {
        int st = it_process_stop(sup, SIGTERM, 30000);
        assert_true(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    for (int i = 0; i < NBAD; i++) {
        bson_t f = BSON_INITIALIZER;
        mongoc_collection_t *c = it_coll(&env, "queues");
        bson_error_t error;
        int64_t n;
        BSON_APPEND_OID(&f, "_id", &bad[i]);
        BSON_APPEND_UTF8(&f, "status", "processing");
        BSON_APPEND_BOOL(&f, "in_progress", true);
        n = mongoc_collection_count_documents(c, &f, NULL, NULL, NULL, &error);
        printf("bad %d: %s\n", i, n == 0 ? "not processing" : "processing");
        if (n != 0) {
            /* Only one that was claimed (claims 1.5 became 2.5) and then
             * could not be marked either (near 16 MiB): set aside, said
             * so in the log, holding no slot. */
            char hex[25], needle[80];
            bson_oid_to_string(&bad[i], hex);
            /* the log writes the id's quotes escaped */
            snprintf(needle, sizeof(needle), "%s\\\" } } cannot be claimed nor",
                     hex);
            assert_true(it_file_contains(
                it_tmp_name(tmp_log, sizeof(tmp_log), "it-poison-random.log"),
                needle));
        }
        bson_destroy(&f);
        mongoc_collection_destroy(c);
    }
}

/* An account_id stored as a regular expression is a value, not a pattern:
 * the claim of its account matches it literally ($eq), so it never claims
 * another account's import (an account stored as a hex string the pattern
 * matches) under its own key, which would run that account's imports past
 * its limit. Classes walked: 12 (tenants: one document's account_id reaches
 * into no other account's imports or slots), 4 (the odd document ends
 * alone), 11 (a value of another type is compared as a value). */
static void test_regex_account(void **state)
{
    static const char *const extra[] = {"DEALIMPORT_MAX_WORKERS=3",
                                        "DEALIMPORT_MAX_WORKERS_PER_ACCOUNT=1",
                                        "DEALIMPORT_POLL_MS=500", NULL};
    bson_oid_t acc, pipe, user, ok[2], rx;
    char hex[25], set[128], seen[64] = "";
    int rows[2] = {3000, 3000};
    pid_t sup;
    bson_t q;
    (void)state;
    bson_oid_init(&user, NULL);
    bson_oid_init(&acc, NULL);
    bson_oid_to_string(&acc, hex);
    it_pipeline(&env, &acc, &pipe);
    put_file("imports/deals/poison/rx-ok.csv", rows[0]);
    /* two imports of one account stored as a hex string, queued first */
    snprintf(set, sizeof(set), "{\"$set\":{\"account_id\":\"%s\"}}", hex);
    for (int i = 0; i < 2; i++) {
        it_enqueue(&env, "imports/deals/poison/rx-ok.csv", &acc, &user, &pipe,
                   mappings, &ok[i]);
        update(&ok[i], set);
    }
    /* then one whose account_id is a pattern every hex string matches */
    it_enqueue(&env, "imports/deals/poison/rx-ok.csv", &acc, &user, &pipe,
               mappings, &rx);
    update(&rx, "{\"$set\":{\"account_id\":{\"$regularExpression\":"
                "{\"pattern\":\"^[0-9a-f]\",\"options\":\"\"}}}}");
    sup = it_supervisor_start(
        &env, extra,
        it_tmp_name(tmp_log, sizeof(tmp_log), "it-poison-regex.log"));
    /* the second import of the account is claimed under the account's own
     * key, once the first has ended: never beside it */
    for (int i = 0; i < 6000 && seen[0] == '\0'; i++) {
        bson_t f = BSON_INITIALIZER, *o;
        mongoc_collection_t *c = it_coll(&env, "queues");
        mongoc_cursor_t *cur;
        const bson_t *d;
        BSON_APPEND_OID(&f, "_id", &ok[1]);
        o = BCON_NEW("projection", "{", "status", BCON_INT32(1), "account_key",
                     BCON_INT32(1), "}");
        cur = mongoc_collection_find_with_opts(c, &f, o, NULL);
        if (mongoc_cursor_next(cur, &d) &&
            strcmp(it_str(d, "status"), "pending") != 0)
            snprintf(seen, sizeof(seen), "%s key '%s'", it_str(d, "status"),
                     it_str(d, "account_key"));
        mongoc_cursor_destroy(cur);
        bson_destroy(o);
        bson_destroy(&f);
        mongoc_collection_destroy(c);
        usleep(10000);
    }
    printf("second import of the account, first seen: %s\n", seen);
    {
        char want[64];
        snprintf(want, sizeof(want), "processing key '%s'", hex);
        assert_string_equal(seen, want);
    }
    check_healthy(ok, 2, rows, 500);
    assert_int_equal(it_wait_final(&env, &rx, 60000, &q), 0);
    printf("regex account: %s: %s\n", it_str(&q, "status"),
           it_str(&q, "error"));
    assert_string_equal(it_str(&q, "status"), "failed");
    bson_destroy(&q);
    assert_true(it_process_stop(sup, SIGTERM, 30000) >= 0);
}

/* Many documents of one account the claim refuses, queued before a healthy
 * import of another account: that import is claimed before the refused
 * account's backlog is worked through, not after it (an account whose
 * document was just refused goes behind the accounts not served since).
 * Classes walked: 4 (one account's poison holds no other account), 1 (each
 * refusal costs several calls on a slow server: never a cost the others
 * pay first). */
static void test_poison_backlog(void **state)
{
    static const char *const extra[] = {"DEALIMPORT_MAX_WORKERS=3",
                                        "DEALIMPORT_POLL_MS=500", NULL};
    enum { NBAD = 120 };
    bson_oid_t bad_acc, bad_pipe, acc, pipe, user, bad, ok;
    int rows[1] = {30};
    char filter[256], hex[25];
    int64_t claimed_at, before;
    pid_t sup;
    bson_t q;
    (void)state;
    bson_oid_init(&user, NULL);
    bson_oid_init(&bad_acc, NULL);
    it_pipeline(&env, &bad_acc, &bad_pipe);
    put_file("imports/deals/poison/backlog-bad.csv", 5);
    for (int i = 0; i < NBAD; i++) {
        it_enqueue(&env, "imports/deals/poison/backlog-bad.csv", &bad_acc,
                   &user, &bad_pipe, mappings, &bad);
        update(&bad, "{\"$set\":{\"claims\":\"x\"}}");
    }
    bson_oid_init(&acc, NULL);
    it_pipeline(&env, &acc, &pipe);
    put_file("imports/deals/poison/backlog-ok.csv", rows[0]);
    it_enqueue(&env, "imports/deals/poison/backlog-ok.csv", &acc, &user, &pipe,
               mappings, &ok);
    sup = it_supervisor_start(
        &env, extra,
        it_tmp_name(tmp_log, sizeof(tmp_log), "it-poison-backlog.log"));
    check_healthy(&ok, 1, rows, 500);
    assert_int_equal(it_wait_final(&env, &ok, 1000, &q), 0);
    claimed_at = dip_bson_get_int(&q, "claimed_at", -1);
    {
        bson_iter_t it;
        assert_true(bson_iter_init_find(&it, &q, "claimed_at") &&
                    BSON_ITER_HOLDS_DATE_TIME(&it));
        claimed_at = bson_iter_date_time(&it);
    }
    bson_destroy(&q);
    bson_oid_to_string(&bad_acc, hex);
    snprintf(filter, sizeof(filter),
             "{\"source\":\"deals\",\"status\":\"failed\","
             "\"account_id\":{\"$oid\":\"%s\"},"
             "\"finished_at\":{\"$lt\":{\"$date\":{\"$numberLong\":"
             "\"%lld\"}}}}",
             hex, (long long)claimed_at);
    before = it_count(&env, "queues", filter);
    printf("refused before the healthy import was claimed: %lld of %d\n",
           (long long)before, NBAD);
    /* at most one round's refusals (16) came first, not the backlog */
    assert_true(before >= 0 && before <= 16);
    assert_true(it_process_stop(sup, SIGTERM, 30000) >= 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_null_claims_and_16mib),
        cmocka_unit_test(test_random_malformed),
        cmocka_unit_test(test_regex_account),
        cmocka_unit_test(test_poison_backlog),
    };
    int rc = it_env_init(&env, "poison");
    if (rc)
        return rc;
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    it_env_release(&env);
    return rc;
}
