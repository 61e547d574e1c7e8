/*
 * bench_flood: a flood of connection attempts on the supervisor's
 * listeners, and what it does to the service: whether GET /metrics is
 * still answered, whether control commands still are, and how much memory
 * and how many descriptors the supervisor holds meanwhile. Run by
 * `scripts/bench flood`; it measures, it does not pass or fail.
 *
 * The flood opens RATE connections a second, spread over the targets in
 * turn (the metrics port; the control socket's ipc path; its CURVE TCP
 * endpoint when given), each one a handshake never made: connected, not a
 * byte sent, closed after HOLD_MS (0: at once). A second process, forked
 * before any library starts, measures every 100 ms through the phases
 * (BEFORE_S quiet, then each round's SECONDS of flood and AFTER_S quiet): one
 * scrape of GET /metrics and one control `status` over the ipc socket, each
 * with a 5 s deadline, and the supervisor's VmRSS, VmHWM, threads and open
 * descriptors from /proc. Per phase it prints how many were answered,
 * failed or timed out and the p50, p99 and worst round trips.
 *
 *   bench_flood SUPERVISOR_PID METRICS_PORT CONTROL_IPC_PATH
 *               [RATE [SECONDS [HOLD_MS [CONTROL_TCP_PORT [ROUNDS]]]]]
 *               (2000, 20, 2000, none, 2)
 *
 * ROUNDS floods, each followed by AFTER_S quiet seconds: memory that a
 * second flood does not push past the first's is bounded, not leaked.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#include <arpa/inet.h>
#include <zmq.h>

#define BEFORE_S 5
#define AFTER_S 10
#define TICK_MS 100
#define DEADLINE_MS 5000
#define MAX_SAMPLES 4096
#define MAX_ROUNDS 5

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the flood ---------------------------------------------------------- */

typedef struct {
    int fd;
    int64_t close_at;
} held_t;

/* A non-blocking connection to target t (0 metrics, 1 control ipc, 2
 * control tcp); the fd, or -errno. */
static int attempt(int t, int metrics_port, const char *ipc, int tcp_port)
{
    int fd, rc;
    if (t == 1) {
        struct sockaddr_un a;
        memset(&a, 0, sizeof(a));
        a.sun_family = AF_UNIX;
        snprintf(a.sun_path, sizeof(a.sun_path), "%s", ipc);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return -errno;
        rc = connect(fd, (struct sockaddr *)&a, sizeof(a));
    } else {
        struct sockaddr_in a;
        memset(&a, 0, sizeof(a));
        a.sin_family = AF_INET;
        a.sin_port = htons((uint16_t)(t == 0 ? metrics_port : tcp_port));
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return -errno;
        rc = connect(fd, (struct sockaddr *)&a, sizeof(a));
    }
    if (rc < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

static void flood(int rate, int seconds, int hold_ms, int metrics_port,
                  const char *ipc, int tcp_port)
{
    int ntargets = tcp_port > 0 ? 3 : 2;
    size_t cap = (size_t)rate * (size_t)(hold_ms / 1000 + 2) + 16, head = 0,
           tail = 0;
    held_t *ring = calloc(cap, sizeof(*ring));
    int64_t start = mono_ms(), end = start + (int64_t)seconds * 1000, made = 0;
    int64_t ok[3] = {0}, refused[3] = {0}, other[3] = {0}, closed_full = 0,
            own_limit = 0;
    int t = 0;
    if (ring == NULL)
        exit(1);
    for (int64_t now = start; now < end; now = mono_ms()) {
        int64_t due = (now - start) * rate / 1000;
        while (made < due) {
            int fd = attempt(t, metrics_port, ipc, tcp_port);
            if (fd >= 0) {
                ok[t]++;
                if (hold_ms == 0 || (head + 1) % cap == tail) {
                    close(fd);
                    closed_full += hold_ms != 0;
                } else {
                    ring[head].fd = fd;
                    ring[head].close_at = now + hold_ms;
                    head = (head + 1) % cap;
                }
            } else if (fd == -ECONNREFUSED || fd == -EAGAIN) {
                refused[t]++;
            } else if (fd == -EMFILE || fd == -ENFILE) {
                own_limit++;
            } else {
                other[t]++;
            }
            made++;
            t = (t + 1) % ntargets;
        }
        while (tail != head && ring[tail].close_at <= now) {
            close(ring[tail].fd);
            tail = (tail + 1) % cap;
        }
        usleep(500);
    }
    while (tail != head) {
        close(ring[tail].fd);
        tail = (tail + 1) % cap;
    }
    free(ring);
    {
        static const char *const names[] = {"metrics", "control ipc",
                                            "control tcp"};
        double secs = (double)(mono_ms() - start) / 1000.0;
        printf("flood: %lld attempts in %.1f s (%.0f/s), each held %d ms\n",
               (long long)made, secs, (double)made / secs, hold_ms);
        for (int i = 0; i < ntargets; i++)
            printf("  %-11s: %lld connected, %lld refused or backlog full, "
                   "%lld other errors\n",
                   names[i], (long long)ok[i], (long long)refused[i],
                   (long long)other[i]);
        if (own_limit)
            printf("  %lld not made: this tool's own descriptors ran out\n",
                   (long long)own_limit);
        if (closed_full)
            printf("  %lld closed at once (the tool's own table full)\n",
                   (long long)closed_full);
    }
}

/* ---- the measurement ---------------------------------------------------- */

typedef struct {
    int n, failed, timed_out;
    double ms[MAX_SAMPLES];
} series_t;

typedef struct {
    series_t scrape, control;
    long rss_min_kb, rss_max_kb, hwm_kb, fds_max, threads_max;
} phase_t;

static void add(series_t *s, double ms)
{
    if (s->n < MAX_SAMPLES)
        s->ms[s->n++] = ms;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(series_t *s, double p)
{
    if (s->n == 0)
        return 0;
    qsort(s->ms, (size_t)s->n, sizeof(double), cmp_double);
    return s->ms[(int)(p / 100.0 * (s->n - 1) + 0.5)];
}

/* One GET /metrics with a deadline: 1 answered 200, 0 failed, -1 timed
 * out. */
static int scrape(int port)
{
    static const char req[] =
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    int64_t deadline = mono_ms() + DEADLINE_MS;
    char buf[65536], first[16] = "";
    size_t got = 0;
    int fd = attempt(0, port, NULL, 0), sent = 0, rc = 0;
    if (fd < 0)
        return 0;
    for (;;) {
        struct pollfd p = {fd, (short)(sent ? POLLIN : POLLOUT), 0};
        int64_t left = deadline - mono_ms();
        ssize_t n;
        if (left <= 0) {
            rc = -1;
            break;
        }
        if (poll(&p, 1, (int)left) <= 0)
            continue;
        if (!sent) {
            if (write(fd, req, sizeof(req) - 1) != (ssize_t)(sizeof(req) - 1))
                break;
            sent = 1;
            continue;
        }
        n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EAGAIN)
            continue;
        if (n <= 0) {
            rc = strncmp(first, "HTTP/1.1 200", 12) == 0 ? 1 : 0;
            break;
        }
        if (got < sizeof(first) - 1) {
            size_t k = sizeof(first) - 1 - got;
            memcpy(first + got, buf, (size_t)n < k ? (size_t)n : k);
        }
        got += (size_t)n;
    }
    close(fd);
    return rc;
}

/* One control status: 1 ok, 0 failed, -1 timed out (the socket is then
 * made again: a REQ socket waits for its reply for ever). */
static int control(void *zctx, void **sock, const char *endpoint)
{
    static const char req[] = "{\"v\":1,\"cmd\":\"status\"}";
    char reply[8192];
    int zero = 0, n;
    zmq_pollitem_t it;
    if (*sock == NULL) {
        *sock = zmq_socket(zctx, ZMQ_REQ);
        zmq_setsockopt(*sock, ZMQ_LINGER, &zero, sizeof(zero));
        zmq_connect(*sock, endpoint);
    }
    if (zmq_send(*sock, req, sizeof(req) - 1, 0) < 0)
        return 0;
    it.socket = *sock;
    it.fd = -1;
    it.events = ZMQ_POLLIN;
    it.revents = 0;
    if (zmq_poll(&it, 1, DEADLINE_MS) <= 0) {
        zmq_close(*sock);
        *sock = NULL;
        return -1;
    }
    n = zmq_recv(*sock, reply, sizeof(reply) - 1, 0);
    if (n < 0)
        return 0;
    reply[n < (int)sizeof(reply) ? n : (int)sizeof(reply) - 1] = '\0';
    return strstr(reply, "\"ok\":true") || strstr(reply, "\"ok\": true");
}

static void sample_proc(pid_t pid, phase_t *ph)
{
    char path[64], line[256];
    FILE *f;
    DIR *d;
    long fds = 0;
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    if ((f = fopen(path, "re")) != NULL) {
        while (fgets(line, sizeof(line), f)) {
            long v;
            if (sscanf(line, "VmRSS: %ld", &v) == 1) {
                if (ph->rss_min_kb == 0 || v < ph->rss_min_kb)
                    ph->rss_min_kb = v;
                if (v > ph->rss_max_kb)
                    ph->rss_max_kb = v;
            } else if (sscanf(line, "VmHWM: %ld", &v) == 1) {
                ph->hwm_kb = v;
            } else if (sscanf(line, "Threads: %ld", &v) == 1 &&
                       v > ph->threads_max) {
                ph->threads_max = v;
            }
        }
        fclose(f);
    }
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    if ((d = opendir(path)) != NULL) {
        while (readdir(d))
            fds++;
        closedir(d);
        if (fds - 2 > ph->fds_max)
            ph->fds_max = fds - 2;
    }
}

static void report(const char *name, phase_t *ph)
{
    series_t *s[2] = {&ph->scrape, &ph->control};
    static const char *const what[2] = {"scrapes", "control status"};
    printf("%s:\n", name);
    for (int i = 0; i < 2; i++)
        printf("  %-14s: %d answered, %d failed, %d timed out (%d ms); "
               "p50 %.1f ms, p99 %.1f ms, worst %.1f ms\n",
               what[i], s[i]->n, s[i]->failed, s[i]->timed_out, DEADLINE_MS,
               pct(s[i], 50), pct(s[i], 99), pct(s[i], 100));
    printf("  supervisor    : VmRSS %ld..%ld KiB (VmHWM %ld KiB), threads "
           "<= %ld, open descriptors <= %ld\n",
           ph->rss_min_kb, ph->rss_max_kb, ph->hwm_kb, ph->threads_max,
           ph->fds_max);
}

static void measure(int64_t start, pid_t sup, int metrics_port, const char *ipc,
                    int seconds, int rounds)
{
    static phase_t phases[1 + 2 * MAX_ROUNDS];
    char endpoint[300], name[64];
    void *zctx = zmq_ctx_new(), *sock = NULL;
    int64_t round_ms = ((int64_t)seconds + AFTER_S) * 1000,
            end = start + BEFORE_S * 1000 + rounds * round_ms;
    snprintf(endpoint, sizeof(endpoint), "ipc://%s", ipc);
    for (int64_t now = start; now < end; now = mono_ms()) {
        int64_t t = now - start - BEFORE_S * 1000;
        int i = t < 0 ? 0
                      : 1 + 2 * (int)(t / round_ms) +
                            (t % round_ms >= (int64_t)seconds * 1000);
        phase_t *ph = &phases[i];
        int64_t t0 = mono_ms();
        int r = scrape(metrics_port);
        if (r > 0)
            add(&ph->scrape, (double)(mono_ms() - t0));
        else if (r < 0)
            ph->scrape.timed_out++;
        else
            ph->scrape.failed++;
        t0 = mono_ms();
        r = control(zctx, &sock, endpoint);
        if (r > 0)
            add(&ph->control, (double)(mono_ms() - t0));
        else if (r < 0)
            ph->control.timed_out++;
        else
            ph->control.failed++;
        sample_proc(sup, ph);
        t0 = TICK_MS - (mono_ms() - now);
        if (t0 > 0)
            usleep((useconds_t)t0 * 1000);
    }
    if (sock)
        zmq_close(sock);
    zmq_ctx_term(zctx);
    report("before the flood", &phases[0]);
    for (int i = 0; i < rounds; i++) {
        snprintf(name, sizeof(name), "during flood %d", i + 1);
        report(name, &phases[1 + 2 * i]);
        snprintf(name, sizeof(name), "%d s after flood %d", AFTER_S, i + 1);
        report(name, &phases[2 + 2 * i]);
    }
}

int main(int argc, char **argv)
{
    pid_t sup, child;
    int metrics_port, rate = 2000, seconds = 20, hold_ms = 2000, tcp_port = 0,
                      rounds = 2;
    struct rlimit nofile;
    int64_t start;
    if (argc < 4) {
        fprintf(stderr, "usage: bench_flood SUPERVISOR_PID METRICS_PORT "
                        "CONTROL_IPC_PATH [RATE [SECONDS [HOLD_MS "
                        "[CONTROL_TCP_PORT [ROUNDS]]]]]\n");
        return 2;
    }
    sup = (pid_t)atoi(argv[1]);
    metrics_port = atoi(argv[2]);
    if (argc > 4)
        rate = atoi(argv[4]);
    if (argc > 5)
        seconds = atoi(argv[5]);
    if (argc > 6)
        hold_ms = atoi(argv[6]);
    if (argc > 7)
        tcp_port = atoi(argv[7]);
    if (argc > 8)
        rounds = atoi(argv[8]);
    if (rounds < 1 || rounds > MAX_ROUNDS)
        rounds = 2;
    /* the connections held at once, and some room */
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0) {
        nofile.rlim_cur = nofile.rlim_max;
        setrlimit(RLIMIT_NOFILE, &nofile);
    }
    signal(SIGPIPE, SIG_IGN);
    fflush(stdout);
    start = mono_ms();
    child = fork();
    if (child < 0)
        return 1;
    if (child == 0) {
        measure(start, sup, metrics_port, argv[3], seconds, rounds);
        fflush(stdout);
        _exit(0);
    }
    /* each round at its own time on the clock both processes share */
    for (int i = 0; i < rounds; i++) {
        int64_t at = start + BEFORE_S * 1000 +
                     i * ((int64_t)seconds + AFTER_S) * 1000,
                now = mono_ms();
        if (at > now)
            usleep((useconds_t)(at - now) * 1000);
        flood(rate, seconds, hold_ms, metrics_port, argv[3], tcp_port);
        fflush(stdout);
    }
    waitpid(child, NULL, 0);
    return 0;
}
