/*
 * The deals' unique index: it leads with the shard key account_id
 * (account_id, import.queue_id, import.line), partial on `import` existing,
 * and a database that still has the old (import.queue_id, import.line) index
 * named import_queue_line is migrated by the supervisor at its start, before
 * its first claim (four imports queued beforehand), to exactly the new one,
 * while imports stay exact and the CRM's own deals (without `import`) never
 * collide. Beside it stands account_external_id, the partial unique
 * (account_id, external_id) of updates by a match key, made by the
 * supervisor too.
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

#define IMPORTS 4

static const char rows[] = "Deal Name,Value,Stage\n"
                           "One,1,new\n"
                           "Two,2,new\n"
                           "Three,3,won\n";
static const char mappings[] =
    "{\"Deal Name\":\"name\",\"Value\":\"value\",\"Stage\":\"stage_id\"}";

static it_env_t env;
static char logpath[256];

/* The old index, as the service created it before. */
static void create_old_index(void)
{
    mongoc_collection_t *deals = it_coll(&env, "deals");
    bson_t *cmd = BCON_NEW(
        "createIndexes", BCON_UTF8("deals"), "indexes", "[", "{", "key", "{",
        "import.queue_id", BCON_INT32(1), "import.line", BCON_INT32(1), "}",
        "name", BCON_UTF8("import_queue_line"), "unique", BCON_BOOL(true),
        "partialFilterExpression", "{", "import.queue_id", "{", "$exists",
        BCON_BOOL(true), "}", "}", "}", "]");
    bson_error_t error;
    if (!mongoc_collection_write_command_with_opts(deals, cmd, NULL, NULL,
                                                   &error))
        fail_msg("cannot create the old index: %s", error.message);
    bson_destroy(cmd);
    mongoc_collection_destroy(deals);
}

/* The names of the deals' indexes other than _id_, comma-separated, and the
 * new index's spec copied into spec (empty when absent). */
static void deals_indexes(char *names, size_t size, bson_t *spec)
{
    mongoc_collection_t *deals = it_coll(&env, "deals");
    mongoc_cursor_t *c = mongoc_collection_find_indexes_with_opts(deals, NULL);
    const bson_t *doc;
    bson_error_t error;
    size_t used = 0;
    names[0] = '\0';
    bson_init(spec);
    while (mongoc_cursor_next(c, &doc)) {
        const char *n = dip_bson_get_str(doc, "name");
        if (n == NULL || strcmp(n, "_id_") == 0)
            continue;
        used += (size_t)snprintf(names + used, size - used, "%s%s",
                                 used ? "," : "", n);
        if (strcmp(n, "account_import_line") == 0) {
            bson_destroy(spec);
            bson_copy_to(doc, spec);
        }
    }
    if (mongoc_cursor_error(c, &error))
        fail_msg("cannot list the deals' indexes: %s", error.message);
    mongoc_cursor_destroy(c);
    mongoc_collection_destroy(deals);
}

/* The keys of a document, in order, comma-separated. */
static void keys_of(const bson_t *doc, const char *field, char *out,
                    size_t size)
{
    bson_iter_t it, sub;
    size_t used = 0;
    out[0] = '\0';
    if (!bson_iter_init_find(&it, doc, field) ||
        !BSON_ITER_HOLDS_DOCUMENT(&it) || !bson_iter_recurse(&it, &sub))
        return;
    while (bson_iter_next(&sub))
        used += (size_t)snprintf(out + used, size - used, "%s%s",
                                 used ? "," : "", bson_iter_key(&sub));
}

static void test_migrates_old_index(void **state)
{
    static const char *const extra[] = {"DEALIMPORT_MAX_WORKERS=4", NULL};
    bson_oid_t account[IMPORTS], user, pipeline[IMPORTS], qid[IMPORTS];
    char names[512], keys[256];
    bson_t spec, q;
    bson_iter_t it;
    pid_t sup;
    int st;
    (void)state;

    create_old_index();
    bson_oid_init(&user, NULL);
    it_put(&env, "imports/deals/it/index.csv", rows, sizeof(rows) - 1);
    for (int i = 0; i < IMPORTS; i++) {
        bson_oid_init(&account[i], NULL);
        it_pipeline(&env, &account[i], &pipeline[i]);
        it_enqueue(&env, "imports/deals/it/index.csv", &account[i], &user,
                   &pipeline[i], mappings, &qid[i]);
    }
    /* All queued before the supervisor starts: its workers start at once. */
    sup = it_supervisor_start(&env, extra, logpath);
    assert_true(sup > 0);
    for (int i = 0; i < IMPORTS; i++) {
        assert_int_equal(it_wait_final(&env, &qid[i], 60000, &q), 0);
        if (strcmp(it_str(&q, "status"), "completed") != 0)
            fail_msg("import %d: '%s': %s; log in %s", i, it_str(&q, "status"),
                     it_str(&q, "error"), logpath);
        bson_destroy(&q);
        assert_int_equal(it_count_import_deals(&env, &qid[i], "{}"), 3);
    }
    st = it_process_stop(sup, SIGTERM, 30000);
    assert_true(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_int_equal(it_log_trouble(logpath), 0);
    assert_true(it_log_count(logpath, "replacing the deals index") >= 1);

    deals_indexes(names, sizeof(names), &spec);
    assert_string_equal(names, "account_import_line,account_external_id");
    keys_of(&spec, "key", keys, sizeof(keys));
    assert_string_equal(keys, "account_id,import.queue_id,import.line");
    assert_true(bson_iter_init_find(&it, &spec, "unique") &&
                bson_iter_as_bool(&it));
    keys_of(&spec, "partialFilterExpression", keys, sizeof(keys));
    assert_string_equal(keys, "import");
    bson_destroy(&spec);

    /* The CRM's own deals carry no `import`: the index leaves them be. */
    {
        mongoc_collection_t *deals = it_coll(&env, "deals");
        bson_error_t error;
        for (int i = 0; i < 2; i++) {
            bson_t *doc = BCON_NEW("account_id", BCON_OID(&account[0]), "name",
                                   BCON_UTF8("typed in the CRM"));
            if (!mongoc_collection_insert_one(deals, doc, NULL, NULL, &error))
                fail_msg("a CRM deal was refused: %s", error.message);
            bson_destroy(doc);
        }
        mongoc_collection_destroy(deals);
    }
}

/* With the new index in place, a worker leaves the indexes as they are. */
static void test_new_index_stays(void **state)
{
    bson_oid_t account, user, pipeline, qid;
    char names[512];
    bson_t spec, q;
    pid_t sup;
    (void)state;
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &account, &pipeline);
    it_enqueue(&env, "imports/deals/it/index.csv", &account, &user, &pipeline,
               mappings, &qid);
    sup = it_supervisor_start(&env, NULL, logpath);
    assert_true(sup > 0);
    assert_int_equal(it_wait_final(&env, &qid, 60000, &q), 0);
    assert_string_equal(it_str(&q, "status"), "completed");
    bson_destroy(&q);
    assert_int_equal(it_process_stop(sup, SIGTERM, 30000) >= 0, 1);
    assert_int_equal(it_log_count(logpath, "replacing the deals index"), 0);
    deals_indexes(names, sizeof(names), &spec);
    assert_string_equal(names, "account_import_line,account_external_id");
    bson_destroy(&spec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_migrates_old_index),
        cmocka_unit_test(test_new_index_stays),
    };
    int rc = it_env_init(&env, "dindex");
    if (rc)
        return rc;
    snprintf(logpath, sizeof(logpath), "%s/it-deals-index-%d.log", it_tmpdir(),
             (int)getpid());
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    it_env_release(&env);
    return rc;
}
