/*
 * it_ctl: control-plane test plumbing: fork/exec of dealimportctl with its
 * output in temporary files, a REQ socket per question to a supervisor,
 * CSV generation and polling helpers.
 */
#include "it_ctl.h"
#include "it_check.h"
#include "dip_bson.h"
#include "dip_ctl.h"
#include "it_tmp.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

const char it_ctl_mappings[] =
    "{\"Deal Name\":\"name\",\"Value\":\"value\",\"Stage\":\"stage_id\","
    "\"Status\":\"status\"}";

static int64_t ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

char *it_ctl_csv(int rows, int bad_every, size_t *len)
{
    size_t cap = 64 + (size_t)rows * 48, n = 0;
    char *buf = malloc(cap);
    if (buf == NULL)
        abort();
    n += (size_t)snprintf(buf, cap, "Deal Name,Value,Stage,Status\n");
    for (int i = 1; i <= rows; i++) {
        if (bad_every > 0 && i % bad_every == 0)
            n += (size_t)snprintf(buf + n, cap - n,
                                  "Deal %d,bad,stage%d,open\n", i, i % 5);
        else
            n += (size_t)snprintf(buf + n, cap - n, "Deal %d,%d,stage%d,open\n",
                                  i, i, i % 5);
    }
    *len = n;
    return buf;
}

void it_ctl_enqueue_csv(it_env_t *env, const char *csv, size_t len,
                        const bson_oid_t *account, bson_oid_t *qid)
{
    static int seq;
    bson_oid_t acc, user, pipeline;
    char key[128];
    if (account)
        bson_oid_copy(account, &acc);
    else
        bson_oid_init(&acc, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(env, &acc, &pipeline);
    snprintf(key, sizeof(key), "imports/deals/it-ctl-%d-%d/deals.csv",
             (int)getpid(), seq++);
    it_put(env, key, csv, len);
    it_enqueue(env, key, &acc, &user, &pipeline, it_ctl_mappings, qid);
}

static void read_into(const char *path, char *buf, size_t len)
{
    char *s;
    if (buf == NULL || len == 0)
        return;
    s = it_ctl_slurp(path);
    snprintf(buf, len, "%s", s ? s : "");
    free(s);
}

/* Forks argv with stdout/stderr to files; waits up to timeout_ms. */
static int run_argv(const char *runtime, char *const *argv, char *out,
                    size_t outlen, char *err, size_t errlen, int merge,
                    int timeout_ms)
{
    char opath[512], epath[512];
    int ofd = mkstemp(it_tmp_name(opath, sizeof(opath), "it-ctl-out-XXXXXX")),
        efd = mkstemp(it_tmp_name(epath, sizeof(epath), "it-ctl-err-XXXXXX")),
        st = 0, rc = -1;
    int64_t end = ms() + timeout_ms;
    pid_t pid;
    if (ofd < 0 || efd < 0)
        abort();
    pid = fork();
    if (pid == 0) {
        char ctl[600];
        snprintf(ctl, sizeof(ctl), "%s/dealimportctl", DEALIMPORT_BIN_DIR);
        setenv("DEALIMPORT_CTL", ctl, 1);
        if (runtime)
            setenv("DEALIMPORT_RUNTIME_DIR", runtime, 1);
        dup2(ofd, 1);
        dup2(merge ? ofd : efd, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    close(ofd);
    close(efd);
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) {
            rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
            break;
        }
        if (ms() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            break;
        }
        usleep(10000);
    }
    read_into(opath, out, outlen);
    read_into(epath, err, errlen);
    unlink(opath);
    unlink(epath);
    return rc;
}

int it_ctl_run(const char *runtime, const char *const *args, char *out,
               size_t outlen, char *err, size_t errlen, int timeout_ms)
{
    char *argv[64], path[600];
    int n = 0;
    snprintf(path, sizeof(path), "%s/dealimportctl", DEALIMPORT_BIN_DIR);
    argv[n++] = path;
    for (int i = 0; args[i] && n < 63; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
    return run_argv(runtime, argv, out, outlen, err, errlen, 0, timeout_ms);
}

int it_ctl_shell(const char *runtime, const char *cmd, char *out, size_t outlen,
                 int timeout_ms)
{
    char sh[] = "/bin/sh", c[] = "-c";
    char *argv[] = {sh, c, (char *)cmd, NULL};
    return run_argv(runtime, argv, out, outlen, NULL, 0, 1, timeout_ms);
}

json_t *it_ctl_ask(const char *runtime, const char *request, int timeout_ms)
{
    void *ctx = zmq_ctx_new(), *s = zmq_socket(ctx, ZMQ_REQ);
    char ep[600];
    int zero = 0;
    json_t *reply = NULL;
    zmq_pollitem_t item;
    snprintf(ep, sizeof(ep), "ipc://%s/control.ipc", runtime);
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero));
    if (zmq_connect(s, ep) == 0 &&
        zmq_send(s, request, strlen(request), 0) >= 0) {
        item.socket = s;
        item.fd = 0;
        item.events = ZMQ_POLLIN;
        item.revents = 0;
        if (zmq_poll(&item, 1, timeout_ms) == 1) {
            zmq_msg_t m;
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, s, 0) >= 0)
                reply = json_loadb(zmq_msg_data(&m), zmq_msg_size(&m), 0, NULL);
            zmq_msg_close(&m);
        }
    }
    zmq_close(s);
    zmq_ctx_term(ctx);
    return reply;
}

static json_t *show(const char *runtime, const char *id)
{
    char req[128];
    snprintf(req, sizeof(req), "{\"v\":1,\"cmd\":\"show\",\"id\":\"%s\"}", id);
    return it_ctl_ask(runtime, req, 5000);
}

int64_t it_ctl_lines(const char *runtime, const char *id)
{
    json_t *r = show(runtime, id);
    int64_t n = -1;
    if (r && json_is_true(json_object_get(r, "ok")))
        n = json_integer_value(
            json_object_get(json_object_get(r, "import"), "lines"));
    json_decref(r);
    return n;
}

int64_t it_ctl_wait_lines(const char *runtime, const char *id,
                          int64_t min_lines, int timeout_ms)
{
    int64_t end = ms() + timeout_ms;
    while (ms() < end) {
        json_t *r = show(runtime, id), *im;
        int64_t n = -1;
        int final = 0;
        if (r && json_is_true(json_object_get(r, "ok"))) {
            im = json_object_get(r, "import");
            n = json_integer_value(json_object_get(im, "lines"));
            final = dip_ctl_status_final(
                json_string_value(json_object_get(im, "status")));
        }
        json_decref(r);
        if (n >= min_lines || final)
            return n;
        usleep(20000);
    }
    return -1;
}

int it_ctl_queue_doc(it_env_t *env, const bson_oid_t *qid, bson_t *out)
{
    mongoc_collection_t *c = it_coll(env, "queues");
    bson_t *filter = BCON_NEW("_id", BCON_OID(qid));
    mongoc_cursor_t *cur =
        mongoc_collection_find_with_opts(c, filter, NULL, NULL);
    const bson_t *doc;
    int rc = -1;
    if (mongoc_cursor_next(cur, &doc)) {
        bson_copy_to(doc, out);
        rc = 0;
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(filter);
    mongoc_collection_destroy(c);
    return rc;
}

int it_ctl_wait_status(it_env_t *env, const bson_oid_t *qid, const char *status,
                       int timeout_ms)
{
    int64_t end = ms() + timeout_ms;
    while (ms() < end) {
        bson_t doc;
        int match = 0;
        if (it_ctl_queue_doc(env, qid, &doc) == 0) {
            bson_iter_t lp;
            /* a final status is whole once csv_imports has landed */
            match = strcmp(it_str(&doc, "status"), status) == 0 &&
                    !bson_iter_init_find(&lp, &doc, "log_pending");
            bson_destroy(&doc);
        }
        if (match)
            return 0;
        usleep(50000);
    }
    return -1;
}

int64_t it_ctl_deals(it_env_t *env, const bson_oid_t *qid)
{
    return it_count_import_deals(env, qid, "{}");
}

char *it_ctl_slurp(const char *path)
{
    FILE *f = fopen(path, "re");
    char *buf = NULL;
    size_t cap = 0, n = 0, r;
    if (f == NULL)
        return NULL;
    do {
        if (cap - n < 65536) {
            char *nb = realloc(buf, cap + 65536 + 1);
            if (nb == NULL) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
            cap += 65536;
        }
        r = fread(buf + n, 1, cap - n, f);
        n += r;
    } while (r > 0);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

int it_ctl_start_lines(const char *log_path, const char *id, int64_t *lines,
                       int max)
{
    char *log = it_ctl_slurp(log_path), *p, needle[64];
    int n = 0;
    if (log == NULL)
        return 0;
    snprintf(needle, sizeof(needle), "import=%s msg=\"worker pid=", id);
    for (p = strstr(log, needle); p && n < max; p = strstr(p + 1, needle)) {
        const char *at = strstr(p, " starts at line ");
        const char *eol = strchr(p, '\n');
        if (at && (eol == NULL || at < eol))
            lines[n++] = strtoll(at + 16, NULL, 10);
    }
    free(log);
    return n;
}
