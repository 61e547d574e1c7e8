/*
 * it_upsert: the shared steps of the update and upsert tests (see
 * it_upsert.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "dip_bson.h"
#include "it_check.h"
#include "it_upsert.h"

const char it_upsert_mappings[] =
    "{\"Ref\":\"external_id\",\"Name\":\"name\",\"Value\":\"value\","
    "\"Stage\":\"stage_id\",\"Region\":\"" IT_UPSERT_CF "\"}";

void it_upsert_base_row(FILE *f, int i)
{
    fprintf(f, "R%05d,Deal %d,%d,s%d,r%d\n", i, i, 100 + i, i % 5, i % 7);
}

void it_upsert_write_base(it_env_t *env, const char *key, int n)
{
    char path[256];
    FILE *f;
    snprintf(path, sizeof(path), "/tmp/it-upsert-base-%d.csv", (int)getpid());
    f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "Ref,Name,Value,Stage,Region\n");
    for (int i = 1; i <= n; i++)
        it_upsert_base_row(f, i);
    fclose(f);
    it_put_file(env, key, path);
    unlink(path);
}

void it_upsert_enqueue(it_env_t *env, const char *key,
                       const bson_oid_t *account, const bson_oid_t *user,
                       const bson_oid_t *pipeline, const char *mode,
                       const char *match, const char *maps, bson_oid_t *qid)
{
    mongoc_collection_t *c = it_coll(env, "queues");
    char json[2048], a[25], u[25], p[25], q[25], extra[256] = "";
    bson_error_t error;
    bson_t *doc;
    bson_oid_init(qid, NULL);
    bson_oid_to_string(account, a);
    bson_oid_to_string(user, u);
    bson_oid_to_string(pipeline, p);
    bson_oid_to_string(qid, q);
    if (mode)
        snprintf(extra + strlen(extra), sizeof(extra) - strlen(extra),
                 ",\"mode\":\"%s\"", mode);
    if (match)
        snprintf(extra + strlen(extra), sizeof(extra) - strlen(extra),
                 ",\"match\":\"%s\"", match);
    snprintf(json, sizeof(json),
             "{\"_id\":{\"$oid\":\"%s\"},\"source\":\"deals\",\"status\":"
             "\"pending\",\"in_progress\":false,\"user_id\":{\"$oid\":\"%s\"},"
             "\"account_id\":{\"$oid\":\"%s\"},\"csv\":[{\"key\":\"%s\","
             "\"name\":\"edited.csv\"}],\"mappings\":%s,\"additional_data\":"
             "{\"pipeline_id\":{\"$oid\":\"%s\"},\"tags\":[\"imported\"]%s},"
             "\"created_at\":{\"$date\":%lld}}",
             q, u, a, key, maps, p, extra, (long long)dip_bson_now_ms());
    doc = bson_new_from_json((const uint8_t *)json, -1, &error);
    assert_non_null(doc);
    assert_true(mongoc_collection_insert_one(c, doc, NULL, NULL, &error));
    bson_destroy(doc);
    mongoc_collection_destroy(c);
}

void it_upsert_run(it_env_t *env, const bson_oid_t *qid,
                   const char *const *extra, const char *want_status, bson_t *q)
{
    char logpath[256];
    pid_t sup;
    snprintf(logpath, sizeof(logpath), "/tmp/it-upsert-%d.log", (int)getpid());
    sup = it_supervisor_start(env, extra, logpath);
    assert_true(sup > 0);
    assert_int_equal(it_wait_final(env, qid, 600000, q), 0);
    if (strcmp(it_str(q, "status"), want_status) != 0)
        fail_msg("import %s: '%s'; log in %s", it_str(q, "status"),
                 it_str(q, "error"), logpath);
    assert_int_equal(it_process_stop(sup, SIGTERM, 30000), 0);
}

int64_t it_upsert_count(it_env_t *env, const char *coll, const char *fmt, ...)
{
    char filter[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(filter, sizeof(filter), fmt, ap);
    va_end(ap);
    return it_count(env, coll, filter);
}
