/*
 * Tests sup_watch: the verdict for each stream error (table), and against
 * the development server a watcher that wakes for a deals import turning
 * claimable (insert, release back to pending) and for nothing else (another
 * source, a claim, progress), that resumes after its connection is dropped
 * without losing the change made meanwhile, that starts afresh and wakes
 * the loop for a sweep when its token's history is gone (286), and that says
 * once that a standalone server has no change streams and stops (the loop
 * then polls).
 *
 * Failure classes walked: 5 (a dropped connection: resumed from the token,
 * the change made meanwhile still wakes; a step-down is the same transient
 * path); 1/7 (a slow or frozen database holds the watcher's thread, never
 * the loop: the loop only reads the eventfd); 4 (a queue document of the
 * wrong shape cannot stop the stream: the $match runs in the server and a
 * document that fails it wakes nobody); 9 (several supervisors each wake;
 * the claim stays one findAndModify); 14 (each wake is asserted by count,
 * after the changes that must not wake were made first, so a wake for them
 * would be counted).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mongoc/mongoc.h>

#include "it_skip.h"
#include "sup_watch.h"
#include "it_tmp.h"

typedef struct {
    uint32_t domain, code;
    sup_watch_verdict_t want;
} verdict_case_t;

static void test_classify_table(void **state)
{
    const verdict_case_t cases[] = {
        {MONGOC_ERROR_SERVER, 40573, SUP_WATCH_GIVE_UP},
        {MONGOC_ERROR_SERVER, 148, SUP_WATCH_GIVE_UP},
        {MONGOC_ERROR_SERVER, 286, SUP_WATCH_RESTART},
        {MONGOC_ERROR_SERVER, 280, SUP_WATCH_RESTART},
        {MONGOC_ERROR_SERVER, 260, SUP_WATCH_RESTART},
        {MONGOC_ERROR_SERVER, 136, SUP_WATCH_RESTART},
        {MONGOC_ERROR_SERVER, 10334, SUP_WATCH_RESTART},
        {MONGOC_ERROR_CURSOR, MONGOC_ERROR_CURSOR_INVALID_CURSOR,
         SUP_WATCH_RESTART},
        {MONGOC_ERROR_CURSOR, MONGOC_ERROR_CHANGE_STREAM_NO_RESUME_TOKEN,
         SUP_WATCH_RESTART},
        {MONGOC_ERROR_SERVER, 10107, SUP_WATCH_RESUME}, /* not primary */
        {MONGOC_ERROR_SERVER, 11602, SUP_WATCH_RESUME}, /* interrupted */
        {MONGOC_ERROR_SERVER, 43, SUP_WATCH_RESUME},    /* cursor gone */
        {MONGOC_ERROR_STREAM, MONGOC_ERROR_STREAM_SOCKET, SUP_WATCH_RESUME},
        {MONGOC_ERROR_SERVER_SELECTION, MONGOC_ERROR_SERVER_SELECTION_FAILURE,
         SUP_WATCH_RESUME},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(sup_watch_classify(cases[i].domain, cases[i].code),
                         cases[i].want);
}

/* -- against the development server ------------------------------------ */

typedef struct {
    char uri[512];
    char dbname[64];
    mongoc_client_t *client;
    mongoc_collection_t *queues;
} fx_t;

static int setup(void **state)
{
    const char *env = getenv("DEALIMPORT_MONGODB_URI");
    fx_t *fx = calloc(1, sizeof(*fx));
    mongoc_uri_t *uri;

    if (fx == NULL || env == NULL || env[0] == '\0') {
        free(fx);
        *state = NULL;
        return 0;
    }
    snprintf(fx->dbname, sizeof(fx->dbname), "sup_watch_%ld", (long)getpid());
    /* The same server, our own database: the path of the URI replaced. */
    {
        const char *hosts = strstr(env, "://");
        const char *path = hosts ? strchr(hosts + 3, '/') : NULL;
        const char *query = strchr(env, '?');
        int head = path ? (int)(path - env) : (int)strlen(env);

        if (query != NULL && path == NULL)
            head = (int)(query - env);
        snprintf(fx->uri, sizeof(fx->uri), "%.*s/%s%s", head, env, fx->dbname,
                 query ? query : "");
    }
    uri = mongoc_uri_new(fx->uri);
    assert_non_null(uri);
    fx->client = mongoc_client_new_from_uri(uri);
    mongoc_client_set_error_api(fx->client, MONGOC_ERROR_API_VERSION_2);
    mongoc_uri_destroy(uri);
    fx->queues = mongoc_client_get_collection(fx->client, fx->dbname, "queues");
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    bson_error_t error;
    mongoc_database_t *db;

    if (fx == NULL)
        return 0;
    db = mongoc_client_get_database(fx->client, fx->dbname);
    (void)mongoc_database_drop_with_opts(db, NULL, &error);
    mongoc_database_destroy(db);
    mongoc_collection_destroy(fx->queues);
    mongoc_client_destroy(fx->client);
    free(fx);
    return 0;
}

#define NEED_DB(fx)                                                            \
    do {                                                                       \
        if ((fx) == NULL)                                                      \
            IT_SKIP_MISSING("DEALIMPORT_MONGODB_URI not set\n");               \
    } while (0)

static int is_replset(fx_t *fx)
{
    bson_t *cmd = BCON_NEW("hello", BCON_INT32(1));
    bson_t reply;
    bson_error_t error;
    bson_iter_t it;
    int yes;

    assert_true(mongoc_client_command_simple(fx->client, "admin", cmd, NULL,
                                             &reply, &error));
    yes = bson_iter_init_find(&it, &reply, "setName");
    bson_destroy(&reply);
    bson_destroy(cmd);
    return yes;
}

static void insert_json(fx_t *fx, const char *json)
{
    bson_error_t error;
    bson_t *doc = bson_new_from_json((const uint8_t *)json, -1, &error);

    assert_non_null(doc);
    if (!mongoc_collection_insert_one(fx->queues, doc, NULL, NULL, &error))
        fail_msg("insert failed: %s", error.message);
    bson_destroy(doc);
}

static void update_json(fx_t *fx, const char *id, const char *json)
{
    bson_error_t error;
    bson_t *sel = BCON_NEW("_id", BCON_UTF8(id));
    bson_t *upd = bson_new_from_json((const uint8_t *)json, -1, &error);

    assert_non_null(upd);
    if (!mongoc_collection_update_one(fx->queues, sel, upd, NULL, NULL, &error))
        fail_msg("update failed: %s", error.message);
    bson_destroy(sel);
    bson_destroy(upd);
}

/* Waits (outcome, bounded generously) for the watcher's fd; the wakes. */
static uint64_t wait_wake(sup_watch_t *w)
{
    struct pollfd p = {.fd = sup_watch_fd(w), .events = POLLIN};

    if (poll(&p, 1, 30000) != 1)
        return 0;
    return sup_watch_take(w);
}

static void wait_state(sup_watch_t *w, sup_watch_state_t st)
{
    for (int i = 0; i < 3000 && sup_watch_state(w) != st; i++)
        usleep(10000);
    assert_int_equal(sup_watch_state(w), st);
}

static sup_watch_t *watcher(const char *uri)
{
    dip_config_t cfg;
    char err[256];
    sup_watch_t *w;

    memset(&cfg, 0, sizeof(cfg));
    cfg.mongodb_uri = (char *)uri;
    w = sup_watch_new(&cfg, 15000, 200, err, sizeof(err));
    if (w == NULL)
        fail_msg("sup_watch_new: %s", err);
    return w;
}

static void test_wakes_for_claimable_only(void **state)
{
    fx_t *fx = *state;
    sup_watch_t *w;

    NEED_DB(fx);
    if (!is_replset(fx))
        IT_SKIP_MACHINE("skipped: a standalone server (see the last case)\n");
    w = watcher(fx->uri);
    wait_state(w, SUP_WATCH_STREAMING);

    /* Nothing to claim in these: no wake may come of them... */
    insert_json(fx, "{\"_id\": \"c1\", \"source\": \"contacts\", "
                    "\"status\": \"pending\"}");
    insert_json(fx, "{\"_id\": \"d0\", \"source\": \"deals\", "
                    "\"status\": \"completed\"}");
    /* ...so the one this insert causes is the only one counted. */
    insert_json(fx, "{\"_id\": \"d1\", \"source\": \"deals\", "
                    "\"status\": \"pending\"}");
    assert_int_equal(wait_wake(w), 1);

    /* A claim and progress wake nobody; the release back to pending does.
     * The stream reads each event's document as it is when the event is
     * read (updateLookup, as MongoDB does): had the release come before
     * the watcher read the claim's event, that event would see a pending
     * document and wake too (harmless: one more claim round, but not what
     * this counts). So the release waits until a later insert's wake
     * shows the claim's events were read. */
    update_json(fx, "d1",
                "{\"$set\": {\"status\": \"processing\", \"in_progress\": "
                "true}}");
    update_json(fx, "d1", "{\"$set\": {\"processed\": 50}}");
    insert_json(fx, "{\"_id\": \"m1\", \"source\": \"deals\", "
                    "\"status\": \"pending\"}");
    assert_int_equal(wait_wake(w), 1);
    update_json(fx, "d1",
                "{\"$set\": {\"status\": \"pending\", \"in_progress\": "
                "false}}");
    assert_int_equal(wait_wake(w), 1);
    assert_int_equal(sup_watch_take(w), 0);

    /* The stream's connection dropped: it resumes from its token, and the
     * change made meanwhile still wakes the loop. */
    {
        bson_t *cmd = BCON_NEW("devDropChangeStreams", BCON_INT32(1));
        bson_t reply;
        bson_error_t error;
        bool dev = mongoc_client_command_simple(fx->client, "admin", cmd, NULL,
                                                &reply, &error);
        bson_destroy(&reply);
        bson_destroy(cmd);
        if (dev) {
            insert_json(fx, "{\"_id\": \"d2\", \"source\": \"deals\", "
                            "\"status\": \"pending\"}");
            assert_int_equal(wait_wake(w), 1);
        }
    }
    sup_watch_destroy(&w);
    assert_null(w);
}

/* Runs an admin command of the dev server (read preference primary
 * preferred: it may be stepped down); false when the server lacks it. */
static bool dev_admin(fx_t *fx, bson_t *cmd)
{
    mongoc_read_prefs_t *prefs =
        mongoc_read_prefs_new(MONGOC_READ_PRIMARY_PREFERRED);
    bson_t reply;
    bson_error_t error;
    bool ok = mongoc_client_command_simple(fx->client, "admin", cmd, prefs,
                                           &reply, &error);
    if (!ok && error.code != 59)
        fail_msg("admin command failed: %s", error.message);
    bson_destroy(&reply);
    bson_destroy(cmd);
    mongoc_read_prefs_destroy(prefs);
    return ok;
}

/* Redirects stderr (the watcher's log) to a temporary file; its fd. */
static int capture_stderr(int *saved)
{
    char path[512];
    int fd = mkstemp(it_tmp_name(path, sizeof(path), "sup_watch_log.XXXXXX"));
    assert_true(fd >= 0);
    unlink(path);
    fflush(stderr);
    *saved = dup(2);
    dup2(fd, 2);
    return fd;
}

/* Restores stderr; how often needle was logged meanwhile. */
static int captured(int fd, int saved, const char *needle)
{
    char buf[16384];
    ssize_t n;
    int count = 0;
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    n = pread(fd, buf, sizeof(buf) - 1, 0);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    fputs(buf, stderr);
    for (const char *p = buf; (p = strstr(p, needle)) != NULL; p++)
        count++;
    return count;
}

/* The stream fails while the server is stepped down (its resume refused),
 * and the history is wiped meanwhile: once the server is back, the resume
 * from the token fails with 286, and the watcher starts afresh and wakes
 * the loop for a sweep (changes may have been missed), saying so once. */
static void test_history_lost_restarts_and_wakes(void **state)
{
    fx_t *fx = *state;
    sup_watch_t *w;
    int fd, saved;

    NEED_DB(fx);
    if (!is_replset(fx) ||
        !dev_admin(fx, BCON_NEW("devCommandCounts", BCON_INT32(1))))
        IT_SKIP_MACHINE("skipped: needs the dev server's replica set\n");
    fd = capture_stderr(&saved);
    w = watcher(fx->uri);
    wait_state(w, SUP_WATCH_STREAMING);
    assert_true(dev_admin(fx, BCON_NEW("devStepDown", BCON_DOUBLE(2),
                                       "firstWrite", BCON_UTF8("none"))));
    assert_true(dev_admin(fx, BCON_NEW("devDropChangeStreams", BCON_INT32(1))));
    wait_state(w, SUP_WATCH_RETRYING);
    assert_true(dev_admin(fx, BCON_NEW("devDropChangeHistory", BCON_INT32(1),
                                       "all", BCON_BOOL(true))));
    /* Nothing else happens: the one wake is the restart's sweep. */
    assert_int_equal(wait_wake(w), 1);
    wait_state(w, SUP_WATCH_STREAMING);
    sup_watch_destroy(&w);
    assert_int_equal(captured(fd, saved, "cannot resume"), 1);
    (void)dev_admin(fx, BCON_NEW("devStepDown", BCON_DOUBLE(0), "firstWrite",
                                 BCON_UTF8("none")));
}

/* Starts a standalone dev server; its port, or 0. */
static int start_standalone(pid_t *pid)
{
    int fds[2];
    char line[64] = "";
    FILE *out;
    int port = 0;

    if (access("/usr/bin/python3", X_OK) != 0 || pipe(fds) != 0)
        return 0;
    *pid = fork();
    if (*pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        /* strict as the suite's own server (scripts/test) */
        const char *strict = getenv("DEALIMPORT_DEVMONGO_NOTABLESCAN");
        execl("/usr/bin/python3", "python3",
              DEALIMPORT_SOURCE_DIR "/scripts/devmongo/devmongo.py", "--host",
              "127.0.0.1", "--port", "0",
              strict && strcmp(strict, "1") == 0 ? "--notablescan"
                                                 : (char *)NULL,
              (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    out = fdopen(fds[0], "r");
    if (out != NULL && fgets(line, sizeof(line), out) != NULL)
        (void)sscanf(line, "ready %d", &port);
    if (out != NULL)
        fclose(out);
    return port;
}

static void test_standalone_said_once(void **state)
{
    char uri[128];
    char path[512];
    char buf[8192];
    pid_t pid = -1;
    int port = start_standalone(&pid);
    int logfd, saved;
    ssize_t n;
    int said = 0;
    sup_watch_t *w;
    int st;

    (void)state;
    if (port == 0) {
        if (pid > 0) {
            kill(pid, SIGTERM);
            waitpid(pid, &st, 0);
        }
        IT_SKIP_MISSING("the development server did not start\n");
    }
    snprintf(uri, sizeof(uri), "mongodb://127.0.0.1:%d/standalone", port);
    /* The watcher's log lines go to stderr: read them back. */
    logfd = mkstemp(it_tmp_name(path, sizeof(path), "sup_watch_log.XXXXXX"));
    assert_true(logfd >= 0);
    fflush(stderr);
    saved = dup(2);
    dup2(logfd, 2);
    w = watcher(uri);
    wait_state(w, SUP_WATCH_UNSUPPORTED);
    sup_watch_destroy(&w);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    n = pread(logfd, buf, sizeof(buf) - 1, 0);
    close(logfd);
    unlink(path);
    assert_true(n > 0);
    buf[n] = '\0';
    for (const char *p = buf; (p = strstr(p, "no change streams")) != NULL; p++)
        said++;
    assert_int_equal(said, 1);
    assert_null(strstr(buf, "failed"));
    kill(pid, SIGTERM);
    waitpid(pid, &st, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify_table),
        cmocka_unit_test_setup_teardown(test_wakes_for_claimable_only, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_history_lost_restarts_and_wakes,
                                        setup, teardown),
        cmocka_unit_test(test_standalone_said_once),
    };
    int rc;

    mongoc_init();
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    mongoc_cleanup();
    return rc;
}
