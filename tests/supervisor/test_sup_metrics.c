/*
 * Tests sup_metrics: each event moves exactly its figure, the text is the
 * Prometheus exposition format (HELP and TYPE before each family, cumulative
 * histogram buckets ending in +Inf = _count), the account label stays
 * bounded however many accounts run, worker exit causes are told apart, and
 * the HTTP listener serves the same text on GET /metrics (404 elsewhere,
 * refusal of a bad address).
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
#include <unistd.h>

#include "sup_metrics.h"

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
    sup_metrics_destroy(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counters_move),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_accounts_bounded),
        cmocka_unit_test(test_exit_causes),
        cmocka_unit_test(test_http),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
