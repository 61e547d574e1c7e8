/*
 * it_env: integration-test plumbing over libmongoc, the project's storage
 * code and fork/exec of the built programs.
 */
#include "it_env.h"
#include "it_skip.h"
#include "dip_bson.h"
#include "dip_mongo_io.h"
#include "it_tmp.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* One admin command of the development server; false where the server is
 * not one (a real MongoDB answers 59, CommandNotFound). */
static bool dev_admin(it_env_t *env, bson_t *cmd, bson_t *reply)
{
    bool ok = mongoc_client_command_simple(env->client, "admin", cmd, NULL,
                                           reply, NULL);
    bson_destroy(cmd);
    return ok;
}

/* notablescan is only switched (devNoTableScan answers the value before),
 * so it is read by setting it to what the suite runs with and putting back
 * what was. */
static void dev_switches_read(it_env_t *env)
{
    const char *want = getenv("DEALIMPORT_DEVMONGO_NOTABLESCAN");
    bool on = want != NULL && strcmp(want, "1") == 0;
    bson_t reply;
    bson_iter_t it;
    env->dev_notablescan = -1;
    env->dev_prices = NULL;
    if (dev_admin(env, BCON_NEW("devNoTableScan", BCON_BOOL(on)), &reply) &&
        bson_iter_init_find(&it, &reply, "was") && BSON_ITER_HOLDS_BOOL(&it))
        env->dev_notablescan = bson_iter_bool(&it);
    bson_destroy(&reply);
    if (env->dev_notablescan < 0)
        return;
    if (env->dev_notablescan != on) {
        (void)dev_admin(
            env,
            BCON_NEW("devNoTableScan", BCON_BOOL(env->dev_notablescan != 0)),
            &reply);
        bson_destroy(&reply);
    }
    if (dev_admin(env, BCON_NEW("devSlow", "{", "}"), &reply)) {
        env->dev_prices = bson_new();
        bson_iter_init(&it, &reply);
        while (bson_iter_next(&it))
            if (strcmp(bson_iter_key(&it), "ok") != 0)
                bson_append_iter(env->dev_prices, NULL, 0, &it);
    }
    bson_destroy(&reply);
}

/* 0, or -1 when the program left a switch changed (put back either way). */
static int dev_switches_restore(it_env_t *env)
{
    bson_t reply;
    bson_iter_t it;
    int rc = 0;
    if (env->dev_notablescan < 0)
        return 0;
    if (dev_admin(
            env,
            BCON_NEW("devNoTableScan", BCON_BOOL(env->dev_notablescan != 0)),
            &reply) &&
        bson_iter_init_find(&it, &reply, "was") && BSON_ITER_HOLDS_BOOL(&it) &&
        bson_iter_bool(&it) != (env->dev_notablescan != 0)) {
        fprintf(stderr,
                "this test left the development server's notablescan %s "
                "(found %s): put back\n",
                bson_iter_bool(&it) ? "on" : "off",
                env->dev_notablescan ? "on" : "off");
        rc = -1;
    }
    bson_destroy(&reply);
    if (env->dev_prices != NULL) {
        if (dev_admin(env, BCON_NEW("devSlow", "{", "}"), &reply)) {
            bson_t now = BSON_INITIALIZER;
            bson_iter_init(&it, &reply);
            while (bson_iter_next(&it))
                if (strcmp(bson_iter_key(&it), "ok") != 0)
                    bson_append_iter(&now, NULL, 0, &it);
            if (!bson_equal(&now, env->dev_prices)) {
                char *left = bson_as_relaxed_extended_json(&now, NULL);
                char *found =
                    bson_as_relaxed_extended_json(env->dev_prices, NULL);
                fprintf(stderr,
                        "this test left the development server's prices "
                        "at %s (found %s): put back\n",
                        left, found);
                bson_free(left);
                bson_free(found);
                rc = -1;
            }
            bson_destroy(&now);
        }
        bson_destroy(&reply);
        (void)dev_admin(
            env, BCON_NEW("devSlow", BCON_DOCUMENT(env->dev_prices)), &reply);
        bson_destroy(&reply);
        bson_destroy(env->dev_prices);
        env->dev_prices = NULL;
    }
    return rc;
}

int it_env_init(it_env_t *env, const char *name)
{
    const char *base = getenv("DEALIMPORT_MONGODB_URI");
    char err[512];
    mongoc_uri_t *uri;
    bson_error_t error;

    memset(env, 0, sizeof(*env));
    if (base == NULL || getenv("DEALIMPORT_STORAGE_URL") == NULL) {
        printf("skipped: the development stack is not running "
               "(DEALIMPORT_MONGODB_URI, DEALIMPORT_STORAGE_URL unset); "
               "run ./scripts/test\n");
        return it_skip_status();
    }
    snprintf(env->dbname, sizeof(env->dbname), "it_%s_%d", name, (int)getpid());
    dip_mongo_init();
    uri = mongoc_uri_new_with_error(base, &error);
    if (uri == NULL) {
        fprintf(stderr, "bad DEALIMPORT_MONGODB_URI: %s\n", error.message);
        exit(1);
    }
    mongoc_uri_destroy(uri);
    {
        /* Same server and options, our own database. */
        const char *hosts = strstr(base, "://");
        const char *path = hosts ? strchr(hosts + 3, '/') : NULL;
        const char *query = strchr(base, '?');
        size_t hl = path    ? (size_t)(path - base)
                    : query ? (size_t)(query - base)
                            : strlen(base);
        snprintf(env->uri, sizeof(env->uri), "%.*s/%s%s", (int)hl, base,
                 env->dbname, query ? query : "");
    }
    setenv("DEALIMPORT_MONGODB_URI", env->uri, 1);

    dip_config_init(&env->cfg);
    if (dip_config_load(&env->cfg, NULL,
                        DIP_NEED_MONGO | DIP_NEED_STORAGE | DIP_NEED_SECRET,
                        err, sizeof(err)) < 0) {
        fprintf(stderr, "config: %s\n", err);
        exit(1);
    }
    env->client = mongoc_client_new(env->uri);
    mongoc_client_set_error_api(env->client, MONGOC_ERROR_API_VERSION_2);
    env->db = mongoc_client_get_database(env->client, env->dbname);
    env->storage = dip_storage_new(&env->cfg, err, sizeof(err));
    if (env->storage == NULL) {
        fprintf(stderr, "storage: %s\n", err);
        exit(1);
    }
    dev_switches_read(env);
    return 0;
}

void it_stop_all(it_env_t *env)
{
    for (size_t i = 0; i < sizeof(env->started) / sizeof(env->started[0]);
         i++) {
        if (env->started[i] > 0) {
            int st;
            /* 0: our child, still running (a reaped one answers -1). */
            if (waitpid(env->started[i], &st, WNOHANG) == 0)
                it_process_stop(env->started[i], SIGKILL, 5000);
        }
        env->started[i] = 0;
    }
}

void it_env_release(it_env_t *env)
{
    int left;
    it_stop_all(env);
    left = dev_switches_restore(env);
    if (env->db) {
        mongoc_database_drop(env->db, NULL);
        mongoc_database_destroy(env->db);
    }
    mongoc_client_destroy(env->client);
    dip_storage_destroy(&env->storage);
    dip_config_release(&env->cfg);
    memset(env, 0, sizeof(*env));
    if (left < 0)
        exit(1);
}

mongoc_collection_t *it_coll(it_env_t *env, const char *name)
{
    return mongoc_database_get_collection(env->db, name);
}

pid_t it_supervisor_start(it_env_t *env, const char *const *extra,
                          const char *log_path)
{
    static int seq;
    char path[512];
    pid_t pid;
    char sock[600];
    const char *runtime;
    /* In the test's own folder (it_tmp.h), removed with it when the test
     * passes: the supervisor's sockets and lock file go with it. The name
     * stays short, as the sockets' paths must fit in 107 bytes. */
    snprintf(env->runtime, sizeof(env->runtime), "%s/sup-%d-%d", it_tmpdir(),
             (int)getpid(), seq++);
    if (strlen(env->runtime) + sizeof("/control.ipc") > 108) {
        fprintf(stderr,
                "the runtime folder '%s' is too long for an ipc socket: "
                "TMPDIR must be shorter\n",
                env->runtime);
        exit(1);
    }
    mkdir(env->runtime, 0700);
    runtime = env->runtime;
    for (int i = 0; extra && extra[i]; i++)
        if (strncmp(extra[i], "DEALIMPORT_RUNTIME_DIR=", 23) == 0)
            runtime = extra[i] + 23;
    /* A socket left by an earlier run would look like this one's. */
    snprintf(sock, sizeof(sock), "%s/control.ipc", runtime);
    unlink(sock);
    snprintf(path, sizeof(path), "%s/dealimport-supervisor",
             DEALIMPORT_BIN_DIR);
    pid = fork();
    if (pid == 0) {
        setenv("DEALIMPORT_RUNTIME_DIR", env->runtime, 1);
        setenv("DEALIMPORT_POLL_MS", "200", 1);
        setenv("DEALIMPORT_LOG_LEVEL", "info", 1);
        for (int i = 0; extra && extra[i]; i++)
            putenv((char *)extra[i]);
        if (log_path) {
            int fd =
                open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
            if (fd >= 0)
                dup2(fd, 2);
        }
        execve(path, (char *const[]){path, NULL}, environ);
        _exit(127);
    }
    for (size_t i = 0; i < sizeof(env->started) / sizeof(env->started[0]); i++)
        if (env->started[i] <= 0) {
            env->started[i] = pid;
            break;
        }
    /* Until its control socket is there (or it has ended: a supervisor
     * that refuses to start is waited for by its test), so that a test's
     * first dealimportctl does not race the start: a sanitizer build takes
     * seconds to get there. */
    for (int i = 0; pid > 0 && i < 600; i++) {
        siginfo_t si;
        struct stat st;
        if (stat(sock, &st) == 0)
            break;
        memset(&si, 0, sizeof(si));
        if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
            si.si_pid == pid)
            break;
        usleep(100 * 1000);
    }
    return pid;
}

int it_process_stop(pid_t pid, int sig, int timeout_ms)
{
    int st;
    kill(pid, sig);
    for (int waited = 0; waited < timeout_ms; waited += 20) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return st;
        usleep(20000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return -1;
}

void it_put(it_env_t *env, const char *key, const char *data, size_t len)
{
    char tmp[512], err[512];
    int fd = mkstemp(it_tmp_name(tmp, sizeof(tmp), "it-upload-XXXXXX"));
    if (fd < 0 || write(fd, data, len) != (ssize_t)len) {
        fprintf(stderr, "cannot write a temp file\n");
        exit(1);
    }
    close(fd);
    if (dip_storage_put_file(env->storage, key, tmp, err, sizeof(err)) != 0) {
        fprintf(stderr, "upload of '%s' failed: %s\n", key, err);
        exit(1);
    }
    unlink(tmp);
}

void it_pipeline(it_env_t *env, const bson_oid_t *account, bson_oid_t *out)
{
    mongoc_collection_t *c = it_coll(env, "pipelines");
    bson_t *doc;
    bson_oid_init(out, NULL);
    doc = BCON_NEW("_id", BCON_OID(out), "account_id", BCON_OID(account),
                   "name", BCON_UTF8("Sales"));
    if (!mongoc_collection_insert_one(c, doc, NULL, NULL, NULL)) {
        fprintf(stderr, "cannot insert a pipeline\n");
        exit(1);
    }
    bson_destroy(doc);
    mongoc_collection_destroy(c);
}

void it_enqueue(it_env_t *env, const char *key, const bson_oid_t *account,
                const bson_oid_t *user, const bson_oid_t *pipeline,
                const char *mappings_json, bson_oid_t *out)
{
    mongoc_collection_t *c = it_coll(env, "queues");
    bson_error_t error;
    bson_t *mappings =
        bson_new_from_json((const uint8_t *)mappings_json, -1, &error);
    bson_t *doc = bson_new(), arr, item, ad, tags;
    if (mappings == NULL) {
        fprintf(stderr, "bad mappings JSON: %s\n", error.message);
        exit(1);
    }
    bson_oid_init(out, NULL);
    BSON_APPEND_OID(doc, "_id", out);
    BSON_APPEND_UTF8(doc, "source", "deals");
    BSON_APPEND_UTF8(doc, "status", "pending");
    BSON_APPEND_BOOL(doc, "in_progress", false);
    BSON_APPEND_OID(doc, "user_id", user);
    BSON_APPEND_OID(doc, "account_id", account);
    BSON_APPEND_OID(doc, "parent_account", account);
    BSON_APPEND_OID(doc, "client_id", user);
    BSON_APPEND_ARRAY_BEGIN(doc, "csv", &arr);
    if (key) {
        BSON_APPEND_DOCUMENT_BEGIN(&arr, "0", &item);
        BSON_APPEND_UTF8(&item, "key", key);
        BSON_APPEND_UTF8(&item, "name", "test.csv");
        bson_append_document_end(&arr, &item);
    }
    bson_append_array_end(doc, &arr);
    BSON_APPEND_DOCUMENT(doc, "mappings", mappings);
    BSON_APPEND_DOCUMENT_BEGIN(doc, "additional_data", &ad);
    BSON_APPEND_OID(&ad, "pipeline_id", pipeline);
    BSON_APPEND_ARRAY_BEGIN(&ad, "tags", &tags);
    BSON_APPEND_UTF8(&tags, "0", "imported");
    bson_append_array_end(&ad, &tags);
    bson_append_document_end(doc, &ad);
    BSON_APPEND_DATE_TIME(doc, "created_at", dip_bson_now_ms());
    if (!mongoc_collection_insert_one(c, doc, NULL, NULL, &error)) {
        fprintf(stderr, "cannot insert a queue document: %s\n", error.message);
        exit(1);
    }
    bson_destroy(mappings);
    bson_destroy(doc);
    mongoc_collection_destroy(c);
}

int it_wait_final(it_env_t *env, const bson_oid_t *qid, int timeout_ms,
                  bson_t *out)
{
    mongoc_collection_t *c = it_coll(env, "queues");
    bson_t *filter = BCON_NEW("_id", BCON_OID(qid));
    int rc = -1;
    bson_init(out);
    for (int waited = 0; waited <= timeout_ms; waited += 100) {
        mongoc_cursor_t *cur =
            mongoc_collection_find_with_opts(c, filter, NULL, NULL);
        const bson_t *doc;
        if (mongoc_cursor_next(cur, &doc)) {
            const char *s = dip_bson_get_str(doc, "status");
            bson_iter_t lp;
            /* An end is whole once csv_imports has landed: the final status
             * is written first and carries log_pending until then. */
            if (s &&
                (strcmp(s, "completed") == 0 || strcmp(s, "failed") == 0 ||
                 strcmp(s, "cancelled") == 0) &&
                !bson_iter_init_find(&lp, doc, "log_pending")) {
                bson_destroy(out);
                bson_copy_to(doc, out);
                rc = 0;
            }
        }
        mongoc_cursor_destroy(cur);
        if (rc == 0)
            break;
        usleep(100000);
    }
    bson_destroy(filter);
    mongoc_collection_destroy(c);
    return rc;
}

int64_t it_count(it_env_t *env, const char *coll, const char *filter_json)
{
    mongoc_collection_t *c = it_coll(env, coll);
    bson_error_t error;
    bson_t *filter =
        bson_new_from_json((const uint8_t *)filter_json, -1, &error);
    int64_t n;
    if (filter == NULL) {
        fprintf(stderr, "bad filter JSON '%s': %s\n", filter_json,
                error.message);
        exit(1);
    }
    n = mongoc_collection_count_documents(c, filter, NULL, NULL, NULL, &error);
    if (n < 0)
        fprintf(stderr, "count on %s failed: %s\n", coll, error.message);
    bson_destroy(filter);
    mongoc_collection_destroy(c);
    return n;
}

int it_dev_slow(it_env_t *env, const char *prices_json)
{
    bson_error_t error;
    bson_t *prices =
        bson_new_from_json((const uint8_t *)prices_json, -1, &error);
    bson_t cmd = BSON_INITIALIZER, reply;
    bool ok;
    if (prices == NULL) {
        fprintf(stderr, "bad prices JSON '%s': %s\n", prices_json,
                error.message);
        exit(1);
    }
    BSON_APPEND_DOCUMENT(&cmd, "devSlow", prices);
    ok = mongoc_client_command_simple(env->client, "admin", &cmd, NULL, &reply,
                                      &error);
    if (!ok)
        fprintf(stderr, "devSlow %s: %s\n", prices_json, error.message);
    bson_destroy(&reply);
    bson_destroy(&cmd);
    bson_destroy(prices);
    return ok ? 0 : -1;
}

int it_import_account(it_env_t *env, const bson_oid_t *qid, bson_oid_t *out)
{
    mongoc_collection_t *c = it_coll(env, "queues");
    bson_t *filter = BCON_NEW("_id", BCON_OID(qid));
    bson_t *opts =
        BCON_NEW("projection", "{", "account_id", BCON_INT32(1), "}");
    mongoc_cursor_t *cur =
        mongoc_collection_find_with_opts(c, filter, opts, NULL);
    const bson_t *doc;
    int rc = -1;
    if (mongoc_cursor_next(cur, &doc) &&
        dip_bson_get_oid(doc, "account_id", out) == 0)
        rc = 0;
    mongoc_cursor_destroy(cur);
    bson_destroy(opts);
    bson_destroy(filter);
    mongoc_collection_destroy(c);
    return rc;
}

void it_append_import_deals(it_env_t *env, bson_t *filter,
                            const bson_oid_t *qid)
{
    bson_oid_t account;
    bson_t ex;
    if (it_import_account(env, qid, &account) == 0)
        BSON_APPEND_OID(filter, "account_id", &account);
    else
        /* no account to name (a refused import): every account's, still
         * on the index (all its keys), never a collection scan */
        BCON_APPEND(filter, "account_id", "{", "$exists", BCON_BOOL(true), "}");
    BSON_APPEND_OID(filter, "import.queue_id", qid);
    BSON_APPEND_DOCUMENT_BEGIN(filter, "import", &ex);
    BSON_APPEND_BOOL(&ex, "$exists", true);
    bson_append_document_end(filter, &ex);
}

int it_notablescan(it_env_t *env, int on)
{
    bson_t *cmd = BCON_NEW("devNoTableScan", BCON_BOOL(on != 0));
    bson_t reply;
    bson_iter_t it;
    int was = -1;
    if (mongoc_client_command_simple(env->client, "admin", cmd, NULL, &reply,
                                     NULL) &&
        bson_iter_init_find(&it, &reply, "was") && BSON_ITER_HOLDS_BOOL(&it))
        was = bson_iter_bool(&it);
    bson_destroy(&reply);
    bson_destroy(cmd);
    return was;
}

const char *it_str(const bson_t *doc, const char *dotted)
{
    const char *s = dip_bson_get_str(doc, dotted);
    return s ? s : "";
}
