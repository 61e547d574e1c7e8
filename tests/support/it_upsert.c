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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dip_bson.h"
#include "it_check.h"
#include "it_upsert.h"
#include "it_tmp.h"

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
    snprintf(path, sizeof(path), "%s/it-upsert-base-%d.csv", it_tmpdir(),
             (int)getpid());
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
    snprintf(logpath, sizeof(logpath), "%s/it-upsert-%d.log", it_tmpdir(),
             (int)getpid());
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

void it_upsert_want_success(it_env_t *env, const bson_oid_t *qid)
{
    bson_t *set = BCON_NEW("additional_data.success_file", BCON_BOOL(true));
    it_queue_set(env, qid, set);
    bson_destroy(set);
}

typedef struct file_sink {
    FILE *f;
    size_t n;
} file_sink_t;

static int to_file(void *arg, const char *buf, size_t len)
{
    file_sink_t *s = arg;
    s->n += len;
    return fwrite(buf, 1, len, s->f) == len ? 0 : 1;
}

/* csv_imports of qid into out (initialized); 1 when found. */
static int import_log(it_env_t *env, const bson_oid_t *qid, bson_t *out)
{
    mongoc_collection_t *c = it_coll(env, "csv_imports");
    bson_t *f = BCON_NEW("queue_id", BCON_OID(qid));
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(c, f, NULL, NULL);
    const bson_t *doc;
    int found = mongoc_cursor_next(cur, &doc);
    if (found)
        bson_copy_to(doc, out);
    else
        bson_init(out);
    mongoc_cursor_destroy(cur);
    bson_destroy(f);
    mongoc_collection_destroy(c);
    return found;
}

json_t *it_upsert_success_rows(it_env_t *env, const bson_oid_t *qid,
                               char **key_out)
{
    char logpath[256], in[256], out[256], cmd[1024], err[512];
    file_sink_t s = {NULL, 0};
    dip_storage_sink_t sink = {&s, NULL, to_file, NULL};
    pid_t sup = -1;
    json_error_t je;
    json_t *rows;
    bson_t imp;
    const char *key;
    for (int i = 0; i < 1200; i++) {
        import_log(env, qid, &imp);
        if (dip_bson_get_str(&imp, "success_file.key") ||
            dip_bson_get_str(&imp, "success_file.failed"))
            break;
        bson_destroy(&imp);
        bson_init(&imp);
        /* the follow-ups of an end run by any supervisor's sweep */
        if (sup < 0) {
            snprintf(logpath, sizeof(logpath), "%s/it-success-%d.log",
                     it_tmpdir(), (int)getpid());
            sup = it_supervisor_start(env, NULL, logpath);
        }
        usleep(100000);
    }
    if (sup > 0)
        assert_int_equal(it_process_stop(sup, SIGTERM, 30000), 0);
    key = dip_bson_get_str(&imp, "success_file.key");
    if (key == NULL)
        fail_msg("no success file: %s",
                 dip_bson_get_str(&imp, "success_file.failed")
                     ? dip_bson_get_str(&imp, "success_file.failed")
                     : "not written in two minutes");
    snprintf(in, sizeof(in), "%s/it-success-%d.csv", it_tmpdir(),
             (int)getpid());
    snprintf(out, sizeof(out), "%s/it-success-%d.json", it_tmpdir(),
             (int)getpid());
    s.f = fopen(in, "wb");
    assert_non_null(s.f);
    if (dip_storage_get(env->storage, key, 0, &sink, err, sizeof(err)) != 0)
        fail_msg("download '%s': %s", key, err);
    assert_int_equal(fclose(s.f), 0);
    assert_int_equal((int64_t)s.n,
                     dip_bson_get_int(&imp, "success_file.bytes", -1));
    snprintf(
        cmd, sizeof(cmd),
        "/usr/bin/python3 -c 'import csv,json,sys; "
        "json.dump(list(csv.reader(open(sys.argv[1], encoding=\"utf-8-sig\", "
        "newline=\"\"))), open(sys.argv[2], \"w\"))' %s %s",
        in, out);
    assert_int_equal(system(cmd), 0);
    rows = json_load_file(out, 0, &je);
    assert_non_null(rows);
    unlink(in);
    unlink(out);
    if (key_out)
        *key_out = strdup(key);
    bson_destroy(&imp);
    return rows;
}
