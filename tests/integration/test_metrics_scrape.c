/*
 * End to end on the development stack: a supervisor with
 * DEALIMPORT_METRICS_ADDR serves GET /metrics during a running import; each
 * scrape parses with prometheus_client's parser (tests/support/prom_parse.py
 * under /usr/bin/python3), its counters move as rows are added, and after
 * the import they equal what the import did: deals added, line errors,
 * bytes read, the claims, the completed imports, the worker exits of cause
 * completed; a second import waiting behind the first shows as the oldest
 * pending import's age, and as 0 once it ran. `dealimportctl metrics` prints
 * the same figures over the control socket.
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

#include "it_ctl.h"
#include "it_env.h"
#include "it_skip.h"

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
    const char *extra[] = {addr, "DEALIMPORT_BATCH_ROWS=250",
                           "DEALIMPORT_MAX_WORKERS=1", "DEALIMPORT_POLL_MS=200",
                           NULL};
    (void)state;
    port = free_port();
    snprintf(addr, sizeof(addr), "DEALIMPORT_METRICS_ADDR=127.0.0.1:%d", port);
    snprintf(logpath, sizeof(logpath), "/tmp/it-metrics-%d.log", (int)getpid());
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

static void test_scrape_during_import(void **state)
{
    bson_oid_t qid, qid2;
    /* static: a failed assertion leaves nothing allocated behind */
    static char first[1 << 16], second[1 << 16], last[1 << 16], ctl[1 << 16];
    char id[25], url[128];
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
    assert_true(value(first, "dealimport_oldest_pending_import_age_seconds") ==
                0);
    assert_true(value(second, "dealimport_oldest_pending_import_age_seconds") >
                0);

    assert_int_equal(it_wait_final(&env, &qid, 300000, &q), 0);
    assert_string_equal(it_str(&q, "status"), "completed");
    bson_destroy(&q);
    assert_int_equal(it_wait_final(&env, &qid2, 300000, &q), 0);
    assert_string_equal(it_str(&q, "status"), "completed");
    bson_destroy(&q);
    /* The worker's exit is seen a moment after the final status. */
    for (int i = 0; i < 50; i++) {
        scrape(url, last, big);
        if (value(last, "dealimport_workers_running") == 0 &&
            value(last, "dealimport_oldest_pending_import_age_seconds") == 0)
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
