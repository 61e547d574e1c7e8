/*
 * Tests sup_metrics: each event moves exactly its figure, the text is the
 * Prometheus exposition format (HELP and TYPE before each family, cumulative
 * histogram buckets ending in +Inf = _count), the account label stays
 * bounded however many accounts run, worker exit causes are told apart, and
 * the HTTP listener serves the same text on GET /metrics (404 elsewhere,
 * refusal of a bad address) and /healthz and /readyz by the health
 * verdicts, which are table-tested; request heads and admissions are
 * decided by pure functions, tested by table; the process's figures parse
 * from /proc's text whatever its command name holds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sup_metrics_private.h"

/* The value of the sample line that starts with "name " (labels included
 * in name), or -1 when there is none. */
static double sample(const char *text, const char *name)
{
    size_t n = strlen(name);
    const char *p = text;
    while ((p = strstr(p, name)) != NULL) {
        if ((p == text || p[-1] == '\n') && p[n] == ' ')
            return strtod(p + n + 1, NULL);
        p += n;
    }
    return -1;
}

static void oid(bson_oid_t *o, int i)
{
    char hex[25];
    snprintf(hex, sizeof(hex), "64b00000000000000000%04x", i);
    bson_oid_init_from_string(o, hex);
}

static void test_counters_move(void **state)
{
    sup_metrics_t *m = sup_metrics_new();
    bson_oid_t acc;
    char *t;
    (void)state;
    oid(&acc, 1);
    sup_metrics_claim(m, 1);
    sup_metrics_claim(m, 0); /* nothing to claim is not a claim */
    sup_metrics_claim(m, -1);
    sup_metrics_renewal(m, 0);
    sup_metrics_renewal(m, -1);
    sup_metrics_worker_started(m, &acc);
    sup_metrics_progress(m, 100, 3, 65536, 2);
    sup_metrics_progress(m, -5, -1, -1, -1); /* ignored, never backwards */
    sup_metrics_progress(m, 20, 0, 100, 1);
    sup_metrics_oldest_pending(m, 1000);
    t = sup_metrics_render(m, 61000);
    assert_non_null(t);
    assert_true(sample(t, "dealimport_claims_total") == 1);
    assert_true(sample(t, "dealimport_claim_failures_total") == 1);
    assert_true(sample(t, "dealimport_lease_renewals_total") == 2);
    assert_true(sample(t, "dealimport_lease_renewal_failures_total") == 1);
    assert_true(sample(t, "dealimport_rows_added_total") == 120);
    assert_true(sample(t, "dealimport_line_errors_total") == 3);
    assert_true(sample(t, "dealimport_downloaded_bytes_total") == 65636);
    assert_true(sample(t, "dealimport_worker_db_round_trips_total") == 3);
    assert_true(sample(t, "dealimport_workers_running") == 1);
    assert_true(sample(t, "dealimport_account_workers_running{account="
                          "\"64b000000000000000000001\"}") == 1);
    assert_true(sample(t, "dealimport_oldest_pending_import_age_seconds") ==
                60);
    free(t);

    sup_metrics_worker_exited(m, &acc, SUP_METRICS_EXIT_SIGNAL);
    sup_metrics_oldest_pending(m, -1);
    t = sup_metrics_render(m, 62000);
    assert_true(sample(t, "dealimport_workers_running") == 0);
    assert_true(sample(t, "dealimport_worker_exits_total{cause=\"signal\"}") ==
                1);
    assert_true(
        sample(t, "dealimport_worker_exits_total{cause=\"completed\"}") == 0);
    /* An account with nothing running is no longer a series. */
    assert_null(strstr(t, "64b000000000000000000001"));
    assert_true(sample(t, "dealimport_oldest_pending_import_age_seconds") == 0);
    free(t);
    sup_metrics_destroy(&m);
    assert_null(m);
    sup_metrics_destroy(&m); /* NULL is fine */
}

static void test_format(void **state)
{
    sup_metrics_t *m = sup_metrics_new();
    char *t, *line, *save = NULL;
    char last_type[128] = "";
    (void)state;
    sup_metrics_import_ended(m, "completed", 2000, 1000); /* 500 rows/s */
    sup_metrics_import_ended(m, "failed", 120000, 10);
    sup_metrics_import_ended(m, "weird", 1, 1); /* not a final status */
    sup_metrics_import_released(m, "paused");
    t = sup_metrics_render(m, 0);
    assert_true(sample(t, "dealimport_imports_ended_total{status="
                          "\"completed\"}") == 1);
    assert_true(
        sample(t, "dealimport_imports_ended_total{status=\"failed\"}") == 1);
    assert_true(sample(t, "dealimport_imports_ended_total{status="
                          "\"cancelled\"}") == 0);
    assert_null(strstr(t, "weird"));
    assert_true(sample(t, "dealimport_imports_released_total{status="
                          "\"paused\"}") == 1);
    /* Buckets are cumulative; +Inf equals the count. */
    assert_true(sample(t, "dealimport_import_duration_seconds_bucket{le="
                          "\"1\"}") == 0);
    assert_true(sample(t, "dealimport_import_duration_seconds_bucket{le="
                          "\"5\"}") == 1);
    assert_true(sample(t, "dealimport_import_duration_seconds_bucket{le="
                          "\"300\"}") == 2);
    assert_true(sample(t, "dealimport_import_duration_seconds_bucket{le="
                          "\"+Inf\"}") == 2);
    assert_true(sample(t, "dealimport_import_duration_seconds_count") == 2);
    assert_true(sample(t, "dealimport_import_duration_seconds_sum") == 122);
    assert_true(sample(t, "dealimport_import_rows_per_second_bucket{le="
                          "\"500\"}") == 2);
    assert_true(sample(t, "dealimport_import_rows_per_second_bucket{le="
                          "\"100\"}") == 1);

    /* Every sample belongs to the family its TYPE line announced. */
    for (line = strtok_r(t, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "# TYPE ", 7) == 0) {
            sscanf(line + 7, "%127s", last_type);
            continue;
        }
        if (line[0] == '#')
            continue;
        assert_true(strncmp(line, "dealimport_", 11) == 0 ||
                    strncmp(line, "process_", 8) == 0);
        if (strncmp(line, last_type, strlen(last_type)) != 0)
            fail_msg("'%s' is not of family '%s'", line, last_type);
    }
    free(t);
    sup_metrics_destroy(&m);
}

static void test_accounts_bounded(void **state)
{
    sup_metrics_t *m = sup_metrics_new();
    bson_oid_t acc;
    char *t;
    int series = 0;
    const char *p;
    (void)state;
    /* 30 accounts: account i runs i+1 workers. */
    for (int i = 0; i < 30; i++) {
        oid(&acc, i);
        for (int k = 0; k <= i; k++)
            sup_metrics_worker_started(m, &acc);
    }
    t = sup_metrics_render(m, 0);
    for (p = t; (p = strstr(p, "\ndealimport_account_workers_running{")); p++)
        series++;
    assert_int_equal(series, SUP_METRICS_TOP_ACCOUNTS + 1);
    /* The top ones are the busiest; the rest add up under other. */
    assert_true(sample(t, "dealimport_account_workers_running{account="
                          "\"64b00000000000000000001d\"}") == 30);
    assert_null(strstr(t, "64b000000000000000000000"));
    /* 1 + 2 + ... + 20 */
    assert_true(sample(t, "dealimport_account_workers_running{account="
                          "\"other\"}") == 210);
    assert_true(sample(t, "dealimport_workers_running") == 465);
    free(t);
    sup_metrics_destroy(&m);
}

static void test_exit_causes(void **state)
{
    (void)state;
    /* wait statuses as waitpid reports them */
    int exited0 = 0, exited70 = 70 << 8, killed9 = SIGKILL, segv = SIGSEGV;
    assert_int_equal(sup_metrics_exit_cause(exited0, 1, 0, 0),
                     SUP_METRICS_EXIT_COMPLETED);
    assert_int_equal(sup_metrics_exit_cause(exited70, 0, 1, 0),
                     SUP_METRICS_EXIT_MEMORY);
    assert_int_equal(sup_metrics_exit_cause(segv, 0, 0, 0),
                     SUP_METRICS_EXIT_SIGNAL);
    assert_int_equal(
        sup_metrics_exit_cause(killed9, 0, 0, SUP_METRICS_EXIT_SILENT),
        SUP_METRICS_EXIT_SILENT);
    assert_int_equal(
        sup_metrics_exit_cause(killed9, 1, 0, SUP_METRICS_EXIT_LEASE_LOST),
        SUP_METRICS_EXIT_LEASE_LOST);
    assert_int_equal(sup_metrics_exit_cause(1 << 8, 0, 0, 0),
                     SUP_METRICS_EXIT_ERROR);
    assert_string_equal(sup_metrics_exit_name(SUP_METRICS_EXIT_MEMORY),
                        "memory_limit");
}

static int64_t mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The new families: build info, database up, limits, queue by status,
 * follow-up and notification outcomes, the process's own. */
static void test_setters(void **state)
{
    sup_metrics_t *m = sup_metrics_new();
    dip_config_t cfg;
    int64_t counts[SUP_METRICS_Q_NSTATUSES] = {7, 2, -1};
    char *t;
    (void)state;
    memset(&cfg, 0, sizeof(cfg));
    cfg.max_workers = 6;
    cfg.max_workers_per_account = 3;
    cfg.worker_memory_mb = 512;
    cfg.worker_cpu_s = 100;
    cfg.worker_timeout_s = 200;
    cfg.lease_s = 60;
    sup_metrics_set_limits(m, &cfg);
    t = sup_metrics_render(m, 0);
    /* Not checked yet: down, and no queue series before the first read. */
    assert_true(sample(t, "dealimport_database_up") == 0);
    assert_null(strstr(t, "\ndealimport_imports{"));
    free(t);
    /* A check made long ago is no answer now. */
    sup_metrics_db_checked(m, mono_now() - 3 * 15000 - 1000, 1);
    t = sup_metrics_render(m, 0);
    assert_true(sample(t, "dealimport_database_up") == 0);
    free(t);
    sup_metrics_db_checked(m, mono_now(), 1);
    sup_metrics_queue_counts(m, counts);
    counts[0] = -1; /* a failed count keeps the last figure */
    counts[2] = 1;
    sup_metrics_queue_counts(m, counts);
    sup_metrics_sample_failed(m);
    sup_metrics_followup_ended(m, 0);
    sup_metrics_followup_ended(m, 75 << 8);
    sup_metrics_followup_ended(m, SIGKILL);
    sup_metrics_followup_ended(m, 1 << 8);
    sup_metrics_notification(m, "delivered");
    sup_metrics_notification(m, "pending");
    sup_metrics_notification(m, "failed");
    sup_metrics_notification(m, "held"); /* not an attempt's outcome */
    t = sup_metrics_render(m, 0);
    assert_non_null(strstr(t, "\ndealimport_build_info{version=\""));
    assert_true(sample(t, "dealimport_database_up") == 1);
    assert_true(sample(t, "dealimport_worker_limit{limit=\"workers\"}") == 6);
    assert_true(sample(t, "dealimport_worker_limit{limit=\"per_account\"}") ==
                3);
    assert_true(sample(t, "dealimport_worker_limit{limit=\"memory_bytes\"}") ==
                512.0 * 1024 * 1024);
    assert_true(sample(t, "dealimport_imports{status=\"pending\"}") == 7);
    assert_true(sample(t, "dealimport_imports{status=\"processing\"}") == 2);
    assert_true(sample(t, "dealimport_imports{status=\"paused\"}") == 1);
    assert_true(sample(t, "dealimport_queue_sample_failures_total") == 1);
    assert_true(sample(t, "dealimport_followups_total{outcome=\"done\"}") == 1);
    assert_true(sample(t, "dealimport_followups_total{outcome=\"retry\"}") ==
                1);
    assert_true(sample(t, "dealimport_followups_total{outcome=\"failed\"}") ==
                2);
    assert_true(
        sample(t, "dealimport_notifications_total{outcome=\"delivered\"}") ==
        1);
    assert_true(
        sample(t, "dealimport_notifications_total{outcome=\"retry\"}") == 1);
    assert_true(
        sample(t, "dealimport_notifications_total{outcome=\"given_up\"}") == 1);
    /* The process's own: it has run, holds memory and descriptors. */
    assert_true(sample(t, "process_resident_memory_bytes") > 0);
    assert_true(sample(t, "process_open_fds") >= 3);
    assert_true(sample(t, "process_start_time_seconds") > 1.6e9);
    assert_true(sample(t, "process_cpu_seconds_total") >= 0);
    free(t);
    sup_metrics_destroy(&m);
}

/* /proc/PID/stat, command names with spaces and parentheses. */
static void test_proc_parse(void **state)
{
    sup_metrics_proc_t p;
    static const char *const good =
        "4242 (dealimport (x) y) S 1 4242 4242 0 -1 4194560 1000 0 0 0 "
        "250 150 0 0 20 0 3 0 5000 104857600 2560 18446744073709551615 1 1 "
        "0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
    (void)state;
    assert_int_equal(sup_metrics_proc_parse_stat(good, 100, 4096, 1.7e9, &p),
                     0);
    assert_true(p.cpu_seconds == 4.0);               /* (250 + 150) / 100 */
    assert_true(p.start_time_seconds == 1.7e9 + 50); /* 5000 / 100 */
    assert_int_equal(p.virtual_bytes, 104857600);
    assert_int_equal(p.resident_bytes, 2560 * 4096);
    assert_int_equal(
        sup_metrics_proc_parse_stat("4242 (cut) S 1 2 3", 100, 4096, 0, &p),
        -1);
    assert_int_equal(
        sup_metrics_proc_parse_stat("no parenthesis", 100, 4096, 0, &p), -1);
    assert_int_equal(sup_metrics_proc_parse_stat(good, 0, 4096, 0, &p), -1);
}

/* Liveness and readiness, facts in, verdict out. */
static void test_health_table(void **state)
{
    static const struct {
        int64_t now, turn, checked;
        int up;
        int64_t keeper;
        int keeper_failed, live, ready;
        const char *why; /* the start of the readiness sentence */
    } t[] = {
        /* all well */
        {100000, 99800, 95000, 1, 99000, 0, 1, 1, "ready"},
        /* nothing yet */
        {100000, 0, 0, 0, 0, 0, 0, 0, "database unavailable: not checked"},
        /* the database did not answer: not ready, still live */
        {100000, 99800, 95000, 0, 99000, 0, 1, 0,
         "database unavailable: it did not answer"},
        /* the check itself hangs: three periods without an answer */
        {100000, 99800, 100000 - 45001, 1, 99000, 0, 1, 0,
         "database unavailable: its check has not answered for 45 s"},
        {100000, 99800, 100000 - 45000, 1, 99000, 0, 1, 1, "ready"},
        /* the keeper: never ran, stalled past half a lease, failed */
        {100000, 99800, 95000, 1, 0, 0, 1, 0, "the lease keeper has not run"},
        {100000, 99800, 95000, 1, 100000 - 30001, 0, 1, 0,
         "the lease keeper has not finished a round for 30 s"},
        {100000, 99800, 95000, 1, 99000, 1, 1, 0,
         "the lease keeper's last renewal failed"},
        /* the loop stuck past SUP_METRICS_LIVE_MS: not live */
        {100000, 100000 - 60001, 95000, 1, 99000, 0, 0, 1, "ready"},
        {100000, 100000 - 60000, 95000, 1, 99000, 0, 1, 1, "ready"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        sup_metrics_health_t h = {
            t[i].now, t[i].turn,   t[i].checked,       t[i].up,
            15000,    t[i].keeper, t[i].keeper_failed, 60000};
        char why[256];
        if (sup_metrics_live(&h, why, sizeof(why)) != t[i].live)
            fail_msg("row %zu: live %d expected, '%s'", i, t[i].live, why);
        if (sup_metrics_ready(&h, why, sizeof(why)) != t[i].ready)
            fail_msg("row %zu: ready %d expected, '%s'", i, t[i].ready, why);
        if (strncmp(why, t[i].why, strlen(t[i].why)) != 0)
            fail_msg("row %zu: '%s' does not start '%s'", i, why, t[i].why);
    }
}

/* Request heads: complete or not, method, path, query, size. */
static void test_http_parse(void **state)
{
    static const struct {
        const char *head;
        int rc, head_only;
        const char *path;
    } t[] = {
        {"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 1, 0, "/metrics"},
        {"GET /metrics HTTP/1.0\r\n\r\n", 1, 0, "/metrics"},
        {"HEAD /readyz HTTP/1.1\r\n\r\n", 1, 1, "/readyz"},
        {"GET /metrics?x=1 HTTP/1.1\n\n", 1, 0, "/metrics"},
        {"GET /metrics HTTP/1.1\r\nHost: x\r\n", 0, 0, NULL}, /* not yet */
        {"G", 0, 0, NULL},
        {"", 0, 0, NULL},
        {"POST /metrics HTTP/1.1\r\n\r\n", 405, 0, NULL},
        {"DELETE /metrics HTTP/1.0\r\n\r\n", 405, 0, NULL},
        {"GET /metrics\r\n\r\n", 400, 0, NULL},
        {"GET metrics HTTP/1.1\r\n\r\n", 400, 0, NULL},
        {"GET /metrics SPDY/3\r\n\r\n", 400, 0, NULL},
        {"\r\n\r\n", 400, 0, NULL},
    };
    char path[64], big[SUP_METRICS_HTTP_HEAD_MAX];
    int head_only;
    (void)state;
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        int rc = sup_metrics_http_parse(t[i].head, strlen(t[i].head), path,
                                        sizeof(path), &head_only);
        if (rc != t[i].rc)
            fail_msg("row %zu: %d, not %d", i, rc, t[i].rc);
        if (rc == 1 &&
            (strcmp(path, t[i].path) != 0 || head_only != t[i].head_only))
            fail_msg("row %zu: path '%s' head_only %d", i, path, head_only);
    }
    /* A head that fills the buffer without ending is refused. */
    memset(big, 'a', sizeof(big));
    assert_int_equal(sup_metrics_http_parse(big, sizeof(big), path,
                                            sizeof(path), &head_only),
                     431);
    assert_int_equal(sup_metrics_http_parse(big, sizeof(big) - 1, path,
                                            sizeof(path), &head_only),
                     0);
}

static void test_http_admit(void **state)
{
    (void)state;
    assert_int_equal(sup_metrics_http_admit(0, 0), SUP_METRICS_HTTP_DROP_NONE);
    assert_int_equal(sup_metrics_http_admit(SUP_METRICS_HTTP_PER_ADDR - 1,
                                            SUP_METRICS_HTTP_MAX_CONNS - 1),
                     SUP_METRICS_HTTP_DROP_NONE);
    assert_int_equal(sup_metrics_http_admit(SUP_METRICS_HTTP_PER_ADDR, 10),
                     SUP_METRICS_HTTP_DROP_PER_ADDR);
    assert_int_equal(sup_metrics_http_admit(1, SUP_METRICS_HTTP_MAX_CONNS),
                     SUP_METRICS_HTTP_DROP_FULL);
    /* An address at its share makes room among its own, even when the
     * table is full: others keep their connections. */
    assert_int_equal(sup_metrics_http_admit(SUP_METRICS_HTTP_PER_ADDR,
                                            SUP_METRICS_HTTP_MAX_CONNS),
                     SUP_METRICS_HTTP_DROP_PER_ADDR);
}

/* One HTTP/1.0 request to 127.0.0.1:port; the whole response, malloc'd. */
static char *http(int port, const char *request)
{
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    char *out = calloc(1, 1 << 20);
    size_t len = 0;
    ssize_t n;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(write(fd, request, strlen(request)),
                     (ssize_t)strlen(request));
    while ((n = read(fd, out + len, (1 << 20) - 1 - len)) > 0)
        len += (size_t)n;
    close(fd);
    return out;
}

static void test_http(void **state)
{
    sup_metrics_t *m = sup_metrics_new();
    char err[256], *r;
    (void)state;
    assert_int_equal(sup_metrics_port(m), 0);
    assert_int_equal(sup_metrics_listen(m, "localhost:9464", err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "DEALIMPORT_METRICS_ADDR: 'localhost:9464'"));
    assert_int_equal(sup_metrics_listen(m, "127.0.0.1:", err, sizeof(err)), -1);
    assert_int_equal(sup_metrics_listen(m, "127.0.0.1:0", err, sizeof(err)), 0);
    assert_true(sup_metrics_port(m) > 0);
    sup_metrics_progress(m, 7, 0, 0, 0);

    r = http(sup_metrics_port(m), "GET /metrics HTTP/1.0\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.0 200") ? r : strstr(r, "HTTP/1.1 200"));
    assert_non_null(strstr(r, "Content-Type: text/plain; version=0.0.4"));
    assert_non_null(strstr(r, "\ndealimport_rows_added_total 7\n"));
    free(r);
    r = http(sup_metrics_port(m), "GET / HTTP/1.0\r\n\r\n");
    assert_non_null(strstr(r, " 404 "));
    free(r);
    r = http(sup_metrics_port(m), "DELETE /metrics HTTP/1.0\r\n\r\n");
    assert_non_null(strstr(r, " 405 "));
    free(r);
    {
        /* A head that fills the buffer without ending: 431 says so (not
         * "not an HTTP/1 request"). Exactly the buffer, so no unread byte
         * turns the close into a reset. */
        char big[SUP_METRICS_HTTP_HEAD_MAX + 1];
        memset(big, 'a', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        memcpy(big, "GET /metrics HTTP/1.0\r\nX: ", 26);
        r = http(sup_metrics_port(m), big);
        assert_non_null(strstr(r, "HTTP/1.1 431 "));
        assert_non_null(strstr(r, "\r\n\r\nrequest head longer than 4096 "
                                  "bytes\n"));
        free(r);
    }

    /* Health: just started (the start counts as a loop turn), nothing
     * checked the database yet; then the loop turns and the database and
     * the keeper answer. */
    r = http(sup_metrics_port(m), "GET /healthz HTTP/1.0\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 200 "));
    free(r);
    r = http(sup_metrics_port(m), "GET /readyz HTTP/1.0\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 503 "));
    assert_non_null(strstr(r, "\r\n\r\nunavailable: database unavailable"));
    free(r);
    {
        struct timespec ts;
        int64_t now;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
        sup_metrics_loop_turn(m, now);
        sup_metrics_db_checked(m, now, 1);
        sup_metrics_keeper_round(m, now, 0, 0);
    }
    r = http(sup_metrics_port(m), "GET /healthz HTTP/1.0\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 200 "));
    free(r);
    r = http(sup_metrics_port(m), "GET /readyz HTTP/1.0\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 200 "));
    free(r);
    r = http(sup_metrics_port(m), "HEAD /readyz HTTP/1.0\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 200 "));
    assert_null(strstr(r, "ready\n"));
    free(r);
    sup_metrics_destroy(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counters_move),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_accounts_bounded),
        cmocka_unit_test(test_exit_causes),
        cmocka_unit_test(test_setters),
        cmocka_unit_test(test_proc_parse),
        cmocka_unit_test(test_health_table),
        cmocka_unit_test(test_http_parse),
        cmocka_unit_test(test_http_admit),
        cmocka_unit_test(test_http),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
