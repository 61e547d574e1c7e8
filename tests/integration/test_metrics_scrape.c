/*
 * End to end on the development stack: a supervisor with
 * DEALIMPORT_METRICS_ADDR serves GET /metrics during a running import; each
 * scrape parses with prometheus_client's parser (tests/support/prom_parse.py
 * under /usr/bin/python3), its counters move as rows are added, and after
 * the import they equal what the import did: deals added, line errors,
 * bytes read, the claims, the completed imports, the worker exits of cause
 * completed; the oldest pending import's age is 0 once both ran, and an
 * import kept pending by its account's limit shows as that age. `dealimportctl
 * metrics` prints the same figures over the control socket. The sampler's
 * figures (database up, imports by status), build info, limits and process_*
 * are served; every metric name the shipped alert rules and dashboard use is in
 * the real scrape; and the supervisor's JSON log (DEALIMPORT_LOG_FORMAT=json)
 * of the whole run parses line by line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dip_bson.h"
#include "it_ctl.h"
#include "it_env.h"
#include "it_skip.h"
#include "it_tmp.h"

#define ROWS 30000
#define BAD_EVERY 100
#define GOOD (ROWS - ROWS / BAD_EVERY)

static it_env_t env;
static pid_t sup = -1;
static int port;
static char logpath[256], runtime[256];

static int free_port(void)
{
    struct sockaddr_in a;
    socklen_t l = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), p;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, (struct sockaddr *)&a, sizeof(a));
    getsockname(fd, (struct sockaddr *)&a, &l);
    p = ntohs(a.sin_port);
    close(fd);
    return p;
}

static int setup(void **state)
{
    char addr[64];
    /* One worker: a second import waits pending while the first runs. */
    const char *extra[] = {addr,
                           "DEALIMPORT_BATCH_ROWS=250",
                           "DEALIMPORT_MAX_WORKERS=1",
                           "DEALIMPORT_MAX_WORKERS_PER_ACCOUNT=1",
                           "DEALIMPORT_POLL_MS=200",
                           "DEALIMPORT_LOG_FORMAT=json",
                           NULL};
    (void)state;
    port = free_port();
    snprintf(addr, sizeof(addr), "DEALIMPORT_METRICS_ADDR=127.0.0.1:%d", port);
    snprintf(logpath, sizeof(logpath), "%s/it-metrics-%d.log", it_tmpdir(),
             (int)getpid());
    sup = it_supervisor_start(&env, extra, logpath);
    snprintf(runtime, sizeof(runtime), "%s", env.runtime);
    return sup > 0 ? 0 : -1;
}

static int teardown(void **state)
{
    int st;
    (void)state;
    st = it_process_stop(sup, SIGTERM, 30000);
    if (!(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
        fprintf(stderr, "supervisor did not exit 0 (status %d); log in %s\n",
                st, logpath);
        return -1;
    }
    return 0;
}

/* The value of canonical sample line "name " in parsed, -1 if absent. */
static double value(const char *parsed, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = parsed; (p = strstr(p, name)) != NULL; p += n)
        if ((p == parsed || p[-1] == '\n') && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    return -1;
}

/* Runs a command whose stdout is Prometheus text through the parser; the
 * canonical lines into out. Skips the test without prometheus_client. */
static void scrape(const char *source, char *out, size_t outlen)
{
    char cmd[1024];
    int rc;
    snprintf(cmd, sizeof(cmd),
             "set -e; %s > text.$$; /usr/bin/python3 "
             "'%s/tests/support/prom_parse.py' < text.$$; rm -f text.$$",
             source, DEALIMPORT_SOURCE_DIR);
    rc = it_ctl_shell(runtime, cmd, out, outlen, 20000);
    if (rc == 77)
        IT_SKIP_MISSING("skipped: %s\n",
                        "python3-prometheus-client is not installed");
    if (rc != 0)
        fail_msg("'%s' (exit %d): %s", source, rc, out);
}

/* Every metric an alert rule or a dashboard panel names is in the scrape
 * (canonical lines in parsed). */
static void alert_names(const char *parsed)
{
    char path[512], cmd[1024];
    static char out[1 << 14];
    int fd = mkstemp(it_tmp_name(path, sizeof(path), "it-scrape-XXXXXX")), rc;
    assert_true(fd >= 0);
    assert_int_equal(write(fd, parsed, strlen(parsed)),
                     (ssize_t)strlen(parsed));
    close(fd);
    snprintf(cmd, sizeof(cmd),
             "/usr/bin/python3 '%s/tests/support/prom_names.py' '%s' "
             "'%s/docs/ops/dealimport-alerts.yml' "
             "'%s/docs/ops/dealimport-dashboard.json'",
             DEALIMPORT_SOURCE_DIR, path, DEALIMPORT_SOURCE_DIR,
             DEALIMPORT_SOURCE_DIR);
    rc = it_ctl_shell(runtime, cmd, out, sizeof(out), 20000);
    unlink(path);
    if (rc == 77)
        IT_SKIP_MISSING("skipped: %s\n", "python3-yaml is not installed");
    if (rc != 0)
        fail_msg("alert or dashboard names missing from the scrape: %s", out);
}

/* A pending import kept pending on purpose, not by racing the claim: its
 * account is at its limit (DEALIMPORT_MAX_WORKERS_PER_ACCOUNT=1), its one
 * slot held by a running import of another supervisor (a lease an hour
 * long, so the unique index on running imports' account slots refuses the
 * claim). An hour old: within the sampler's period the scrape shows it
 * pending and an hour old, however fast this supervisor claims. */
static void oldest_pending(void)
{
    static char text[1 << 16];
    char url[512], key[25];
    bson_error_t e;
    bson_oid_t id, held, account;
    bson_t *doc;
    mongoc_collection_t *q = it_coll(&env, "queues");
    double age = -1, pending = -1;
    int64_t now = dip_bson_now_ms();
    bson_oid_init(&account, NULL);
    bson_oid_to_string(&account, key);
    bson_oid_init(&held, NULL);
    doc = BCON_NEW(
        "_id", BCON_OID(&held), "source", BCON_UTF8("deals"), "status",
        BCON_UTF8("processing"), "in_progress", BCON_BOOL(true), "account_id",
        BCON_OID(&account), "account_key", BCON_UTF8(key), "account_slot",
        BCON_INT32(0), "claimed_by", BCON_UTF8("another-supervisor"),
        "lease_expires_at", BCON_DATE_TIME(now + 3600 * 1000), "claims",
        BCON_INT32(1), "created_at", BCON_DATE_TIME(now - 7200 * 1000));
    assert_true(mongoc_collection_insert_one(q, doc, NULL, NULL, &e));
    bson_destroy(doc);
    bson_oid_init(&id, NULL);
    doc = BCON_NEW("_id", BCON_OID(&id), "source", BCON_UTF8("deals"), "status",
                   BCON_UTF8("pending"), "account_id", BCON_OID(&account),
                   "created_at", BCON_DATE_TIME(now - 3600 * 1000));
    assert_true(mongoc_collection_insert_one(q, doc, NULL, NULL, &e));
    bson_destroy(doc);
    snprintf(url, sizeof(url),
             "cd \"${TMPDIR:-/tmp}\"; curl -sf http://127.0.0.1:%d/metrics",
             port);
    for (int i = 0; i < 40; i++) {
        scrape(url, text, sizeof(text));
        age = value(text, "dealimport_oldest_pending_import_age_seconds");
        pending = value(text, "dealimport_imports{status=\"pending\"}");
        if (age >= 3600 && pending >= 1)
            break;
        sleep(1);
    }
    /* still pending: the claim was refused, not merely slow */
    doc = BCON_NEW("_id", BCON_OID(&id), "status", BCON_UTF8("pending"));
    assert_int_equal(
        mongoc_collection_count_documents(q, doc, NULL, NULL, NULL, &e), 1);
    bson_destroy(doc);
    doc = BCON_NEW("_id", "{", "$in", "[", BCON_OID(&id), BCON_OID(&held), "]",
                   "}");
    mongoc_collection_delete_many(q, doc, NULL, NULL, NULL);
    bson_destroy(doc);
    mongoc_collection_destroy(q);
    fprintf(stderr, "oldest pending: %.0f s, pending %.0f\n", age, pending);
    assert_true(age >= 3600 && age < 3700);
    assert_true(pending == 1);
}

/* Every line the supervisor and its workers logged through the imports is
 * one JSON object (DEALIMPORT_LOG_FORMAT=json), each with a time, a level
 * and a program; the worker's start names its pid and the end its line and
 * counts as fields of their own. */
static void json_log(void)
{
    char cmd[1024];
    static char out[1 << 14];
    int rc;
    snprintf(
        cmd, sizeof(cmd),
        "/usr/bin/python3 -c 'import json, sys\n"
        "n = 0; fields = set()\n"
        "for line in open(sys.argv[1]):\n"
        "    o = json.loads(line); n += 1\n"
        "    assert o[\"time\"] and o[\"level\"] and o[\"program\"], line\n"
        "    fields.update(k for k in o if o.get(\"import\"))\n"
        "print(n, \"lines\", sorted(fields))\n"
        "assert {\"worker_pid\", \"line\", \"added\", \"errors\"} <= "
        "fields, fields' '%s'",
        logpath);
    rc = it_ctl_shell(runtime, cmd, out, sizeof(out), 20000);
    fprintf(stderr, "json log: %s", out);
    if (rc != 0)
        fail_msg("the JSON log does not parse line by line: %s", out);
}

static void test_scrape_during_import(void **state)
{
    bson_oid_t qid, qid2;
    /* static: a failed assertion leaves nothing allocated behind */
    static char first[1 << 16], second[1 << 16], last[1 << 16], ctl[1 << 16];
    char id[25], url[512];
    size_t len, len2, big = sizeof(first);
    char *csv = it_ctl_csv(ROWS, BAD_EVERY, &len);
    bson_t q;
    (void)state;
    snprintf(url, sizeof(url),
             "cd \"${TMPDIR:-/tmp}\"; curl -sf http://127.0.0.1:%d/metrics",
             port);

    it_ctl_enqueue_csv(&env, csv, len, NULL, &qid);
    free(csv);
    bson_oid_to_string(&qid, id);

    assert_true(it_ctl_wait_lines(runtime, id, ROWS / 10, 180000) >= ROWS / 10);
    scrape(url, first, big);
    csv = it_ctl_csv(100, 0, &len2);
    it_ctl_enqueue_csv(&env, csv, len2, NULL, &qid2);
    free(csv);
    assert_true(it_ctl_wait_lines(runtime, id, ROWS / 2, 180000) >= ROWS / 2);
    scrape(url, second, big);
    fprintf(stderr, "rows added at the two scrapes: %.0f, %.0f\n",
            value(first, "dealimport_rows_added_total"),
            value(second, "dealimport_rows_added_total"));
    /* During the import: its worker runs, and the counters move on. */
    assert_true(value(first, "dealimport_workers_running") == 1);
    assert_true(value(first, "dealimport_rows_added_total") > 0);
    assert_true(value(second, "dealimport_rows_added_total") >
                value(first, "dealimport_rows_added_total"));
    assert_true(value(second, "dealimport_downloaded_bytes_total") >
                value(first, "dealimport_downloaded_bytes_total"));
    assert_true(value(second, "dealimport_worker_db_round_trips_total") >
                value(first, "dealimport_worker_db_round_trips_total"));
    assert_true(value(first, "dealimport_claims_total") == 1);
    /* The queue's figures come from the sampler, every 15 s: present, and
     * checked against a known queue below. */
    assert_true(value(first, "dealimport_oldest_pending_import_age_seconds") >=
                0);

    assert_int_equal(it_wait_final(&env, &qid, 300000, &q), 0);
    assert_string_equal(it_str(&q, "status"), "completed");
    bson_destroy(&q);
    assert_int_equal(it_wait_final(&env, &qid2, 300000, &q), 0);
    assert_string_equal(it_str(&q, "status"), "completed");
    bson_destroy(&q);
    /* The worker's exit is seen a moment after the final status, the
     * empty queue at the sampler's next read (15 s at most), the
     * follow-ups once their child ended. */
    for (int i = 0; i < 300; i++) {
        scrape(url, last, big);
        if (value(last, "dealimport_workers_running") == 0 &&
            value(last, "dealimport_oldest_pending_import_age_seconds") == 0 &&
            value(last, "dealimport_followups_total{outcome=\"done\"}") == 1)
            break;
        usleep(100000);
    }
    assert_true(value(last, "dealimport_rows_added_total") == GOOD + 100);
    assert_true(value(last, "dealimport_line_errors_total") ==
                ROWS / BAD_EVERY);
    assert_true(value(last, "dealimport_downloaded_bytes_total") ==
                (double)(len + len2));
    assert_true(
        value(last, "dealimport_imports_ended_total{status=\"completed\"}") ==
        2);
    assert_true(
        value(last, "dealimport_worker_exits_total{cause=\"completed\"}") == 2);
    assert_true(value(last, "dealimport_claims_total") == 2);
    assert_true(value(last, "dealimport_oldest_pending_import_age_seconds") ==
                0);
    assert_true(value(last, "dealimport_workers_running") == 0);
    assert_true(value(last, "dealimport_import_duration_seconds_count") == 2);
    assert_true(value(last, "dealimport_import_rows_per_second_count") == 2);

    /* The figures the sampler, the listener and /proc add. */
    assert_true(value(last,
                      "dealimport_build_info{version=\"" DEALIMPORT_VERSION
                      "\"}") == 1);
    assert_true(value(last, "dealimport_database_up") == 1);
    assert_true(value(last, "dealimport_worker_limit{limit=\"workers\"}") == 1);
    assert_true(value(last, "dealimport_imports{status=\"processing\"}") >= 0);
    assert_true(value(last, "process_resident_memory_bytes") > 0);
    assert_true(value(last, "process_open_fds") > 0);
    /* The first import's follow-ups (its error file) ran in a child of
     * this supervisor and ended done; the second had none to run (no line
     * error, the source kept, no event held): written done at its end,
     * no child. */
    assert_true(value(last, "dealimport_followups_total{outcome=\"done\"}") ==
                1);
    assert_true(value(last, "dealimport_followups_total{outcome=\"failed\"}") ==
                0);
    alert_names(last);
    oldest_pending();
    json_log();

    /* The control socket's copy of the same figures. */
    scrape("\"$DEALIMPORT_CTL\" metrics", ctl, big);
    assert_true(value(ctl, "dealimport_rows_added_total") == GOOD + 100);
    assert_true(
        value(ctl, "dealimport_imports_ended_total{status=\"completed\"}") ==
        2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scrape_during_import),
    };
    int rc = it_env_init(&env, "metrics");
    if (rc)
        return rc;
    rc = cmocka_run_group_tests(tests, setup, teardown);
    it_env_release(&env);
    return rc;
}
