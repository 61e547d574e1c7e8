/*
 * sup_metrics_http: the metrics listener, a poll loop of its own on a
 * thread of its own, serving GET /metrics, /healthz and /readyz and
 * nothing else. It is small on purpose: a request is one head of at most
 * SUP_METRICS_HTTP_HEAD_MAX bytes, answered once and closed, so every
 * connection can be held to one deadline from accept to its last byte
 * (a library's idle timeout restarts with every byte, and one byte every
 * few seconds keeps a connection forever). A peer address holds at most
 * SUP_METRICS_HTTP_PER_ADDR connections, the table at most
 * SUP_METRICS_HTTP_MAX_CONNS, and a new connection over either bound takes
 * the place of one already answered or else of the oldest (its address's,
 * or the table's), never of one accepted in the same turn: that one has
 * not yet had its turn to be read. A new connection is read at once, and
 * the connections it could displace are read before the next accepts, so
 * a well-behaved scraper, which sends its request at once, is answered
 * before anyone can push it out, whoever shares its address.
 */
#include "dip_time.h"
#include "sup_metrics_private.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef enum { C_FREE = 0, C_READING, C_WRITING, C_LINGER } cstate_t;

typedef struct {
    cstate_t state;
    int fd;
    int64_t accepted_ms, deadline_ms;
    uint64_t seq; /* the order of accepts, 1 for the first */
    struct sockaddr_storage peer;
    char head[SUP_METRICS_HTTP_HEAD_MAX + 1];
    size_t head_len;
    char *out;
    size_t out_len, out_off;
} conn_t;

struct sup_metrics_http {
    sup_metrics_t *metrics;
    int listen_fd, wake_fd, port;
    int64_t accept_after_ms; /* accept paused until then (no descriptors) */
    uint64_t accepts;        /* how many so far: the next one's seq - 1 */
    pthread_t thread;
    int started;
    conn_t conns[SUP_METRICS_HTTP_MAX_CONNS];
};

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- pure: the request head ----------------------------------------- */

int sup_metrics_http_parse(const char *buf, size_t len, char *path,
                           size_t pathcap, int *head_only)
{
    const char *end = NULL, *sp1, *sp2, *line_end;
    size_t mlen, plen;
    /* The head ends at an empty line; a bare \n is taken as \r\n is. */
    for (size_t i = 0; i + 1 < len && end == NULL; i++) {
        if (buf[i] == '\n' && buf[i + 1] == '\n')
            end = buf + i;
        else if (i + 3 < len && memcmp(buf + i, "\r\n\r\n", 4) == 0)
            end = buf + i;
    }
    if (end == NULL)
        return len >= SUP_METRICS_HTTP_HEAD_MAX ? 431 : 0;
    /* The request line ends at the first line break, at or after end. */
    line_end = memchr(buf, '\n', len);
    if (line_end > buf && line_end[-1] == '\r')
        line_end--;
    sp1 = memchr(buf, ' ', (size_t)(line_end - buf));
    if (sp1 == NULL)
        return 400;
    sp2 = memchr(sp1 + 1, ' ', (size_t)(line_end - sp1 - 1));
    if (sp2 == NULL || line_end - sp2 < 9 || memcmp(sp2 + 1, "HTTP/1.", 7))
        return 400;
    mlen = (size_t)(sp1 - buf);
    *head_only = mlen == 4 && memcmp(buf, "HEAD", 4) == 0;
    if (!*head_only && !(mlen == 3 && memcmp(buf, "GET", 3) == 0))
        return 405;
    plen = (size_t)(sp2 - sp1 - 1);
    /* The query string, if any, is not ours to read. */
    for (size_t i = 0; i < plen; i++)
        if (sp1[1 + i] == '?') {
            plen = i;
            break;
        }
    if (plen == 0 || plen >= pathcap || sp1[1] != '/')
        return 400;
    memcpy(path, sp1 + 1, plen);
    path[plen] = '\0';
    return 1;
}

sup_metrics_http_drop_t sup_metrics_http_admit(size_t same_addr, size_t used)
{
    if (same_addr >= SUP_METRICS_HTTP_PER_ADDR)
        return SUP_METRICS_HTTP_DROP_PER_ADDR;
    if (used >= SUP_METRICS_HTTP_MAX_CONNS)
        return SUP_METRICS_HTTP_DROP_FULL;
    return SUP_METRICS_HTTP_DROP_NONE;
}

/* ---- answers -------------------------------------------------------- */

static const char *reason(int code)
{
    switch (code) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 431:
        return "Request Header Fields Too Large";
    case 503:
        return "Service Unavailable";
    default:
        return "Internal Server Error";
    }
}

/* The whole answer into c->out (head only for HEAD). */
static void answer(conn_t *c, int code, const char *type, const char *body,
                   int head_only)
{
    size_t blen = body ? strlen(body) : 0;
    FILE *o = open_memstream(&c->out, &c->out_len);
    if (o == NULL)
        return;
    fprintf(o,
            "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
            "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
            code, reason(code), type, blen);
    if (!head_only && blen > 0)
        fwrite(body, 1, blen, o);
    if (fclose(o) != 0) {
        free(c->out);
        c->out = NULL;
        c->out_len = 0;
    }
    c->out_off = 0;
}

static void route(sup_metrics_http_t *self, conn_t *c, int64_t now)
{
    char path[256], why[256], body[320], too_long[64];
    int head_only = 0, rc;
    rc = sup_metrics_http_parse(c->head, c->head_len, path, sizeof(path),
                                &head_only);
    if (rc == 0)
        return;
    c->state = C_WRITING;
    snprintf(too_long, sizeof(too_long), "request head longer than %d bytes\n",
             SUP_METRICS_HTTP_HEAD_MAX);
    if (rc != 1) {
        answer(c, rc, "text/plain; charset=utf-8",
               rc == 405   ? "only GET and HEAD are served\n"
               : rc == 431 ? too_long
                           : "not an HTTP/1 request\n",
               0);
    } else if (strcmp(path, "/metrics") == 0) {
        char *text = sup_metrics_render(self->metrics, wall_ms());
        if (text == NULL)
            answer(c, 500, "text/plain; charset=utf-8", "out of memory\n",
                   head_only);
        else
            answer(c, 200, "text/plain; version=0.0.4; charset=utf-8", text,
                   head_only);
        free(text);
    } else if (strcmp(path, "/healthz") == 0 || strcmp(path, "/readyz") == 0) {
        sup_metrics_health_t h;
        int ok;
        sup_metrics_health_facts(self->metrics, now, &h);
        ok = path[1] == 'h' ? sup_metrics_live(&h, why, sizeof(why))
                            : sup_metrics_ready(&h, why, sizeof(why));
        snprintf(body, sizeof(body), "%s: %s\n", ok ? "ok" : "unavailable",
                 why);
        answer(c, ok ? 200 : 503, "text/plain; charset=utf-8", body, head_only);
    } else {
        answer(c, 404, "text/plain; charset=utf-8",
               "not found: try /metrics, /healthz or /readyz\n", head_only);
    }
    if (c->out == NULL)
        c->state = C_LINGER; /* out of memory: nothing to say */
}

/* ---- connections ---------------------------------------------------- */

static void conn_close(sup_metrics_http_t *self, conn_t *c,
                       sup_metrics_http_drop_t why)
{
    if (c->state == C_FREE)
        return;
    close(c->fd);
    free(c->out);
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    if (why != SUP_METRICS_HTTP_DROP_NONE)
        sup_metrics_http_dropped(self->metrics, why);
}

static int same_addr(const struct sockaddr_storage *a,
                     const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return 0;
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    if (a->ss_family == AF_INET6)
        return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                      &((const struct sockaddr_in6 *)b)->sin6_addr,
                      sizeof(struct in6_addr)) == 0;
    return 0;
}

static void on_readable(sup_metrics_http_t *self, conn_t *c, int64_t now);
static void on_writable(sup_metrics_http_t *self, conn_t *c);

/* The connection that makes room for a new one, among those of `peer`'s
 * address (or all, when peer is NULL): one already answered and lingering
 * first (closing it loses nothing), else the one accepted first; never one
 * accepted since `turn` (this turn of accepts), which has not yet been
 * polled. NULL when none may go. */
static conn_t *make_room(sup_metrics_http_t *self,
                         const struct sockaddr_storage *peer, uint64_t turn)
{
    conn_t *best = NULL;
    for (size_t i = 0; i < SUP_METRICS_HTTP_MAX_CONNS; i++) {
        conn_t *c = &self->conns[i];
        if (c->state == C_FREE || (peer != NULL && !same_addr(&c->peer, peer)))
            continue;
        if (c->state != C_LINGER && c->seq > turn)
            continue;
        if (best == NULL ||
            (c->state == C_LINGER) > (best->state == C_LINGER) ||
            ((c->state == C_LINGER) == (best->state == C_LINGER) &&
             c->seq < best->seq))
            best = c;
    }
    return best;
}

static void on_accept(sup_metrics_http_t *self, int64_t now)
{
    const uint64_t turn = self->accepts; /* accepted before this turn */
    /* A bounded number per turn, so a flood of connects cannot keep the
     * thread from the connections it already holds. */
    for (int k = 0; k < 16; k++) {
        struct sockaddr_storage peer;
        socklen_t plen = sizeof(peer);
        size_t used = 0, mine = 0;
        conn_t *slot = NULL;
        sup_metrics_http_drop_t why;
        int fd = accept4(self->listen_fd, (struct sockaddr *)&peer, &plen,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            /* Out of descriptors, the pending connection stays and the
             * listening socket stays readable: not polled for a moment,
             * lest the thread spin. */
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
                errno == ENOMEM)
                self->accept_after_ms = now + 100;
            return;
        }
        for (size_t i = 0; i < SUP_METRICS_HTTP_MAX_CONNS; i++) {
            conn_t *c = &self->conns[i];
            if (c->state == C_FREE) {
                if (slot == NULL)
                    slot = c;
                continue;
            }
            used++;
            if (same_addr(&c->peer, &peer))
                mine++;
        }
        why = sup_metrics_http_admit(mine, used);
        if (why != SUP_METRICS_HTTP_DROP_NONE) {
            /* Its address's share (or the table) is full: one that is
             * done or the oldest makes room, so the share stays bounded
             * and a scraper that shares its address with slow clients
             * (127.0.0.1, a NAT) still gets in. */
            slot = make_room(
                self, why == SUP_METRICS_HTTP_DROP_PER_ADDR ? &peer : NULL,
                turn);
            if (slot == NULL) {
                /* All came in this very turn: the newest waits outside. */
                close(fd);
                sup_metrics_http_dropped(self->metrics, why);
                continue;
            }
            conn_close(self, slot,
                       slot->state == C_LINGER ? SUP_METRICS_HTTP_DROP_NONE
                                               : why);
        }
        slot->state = C_READING;
        slot->fd = fd;
        slot->peer = peer;
        slot->seq = ++self->accepts;
        slot->accepted_ms = now;
        slot->deadline_ms = now + SUP_METRICS_HTTP_DEADLINE_MS;
        /* A scraper's request is often there already: answered now. */
        on_readable(self, slot, now);
        if (slot->state == C_WRITING)
            on_writable(self, slot);
    }
}

static void on_readable(sup_metrics_http_t *self, conn_t *c, int64_t now)
{
    if (c->state == C_LINGER) {
        char sink[512];
        ssize_t n = recv(c->fd, sink, sizeof(sink), 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            conn_close(self, c, SUP_METRICS_HTTP_DROP_NONE);
        return;
    }
    if (c->state == C_READING) {
        ssize_t n = recv(c->fd, c->head + c->head_len,
                         SUP_METRICS_HTTP_HEAD_MAX - c->head_len, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            conn_close(self, c, SUP_METRICS_HTTP_DROP_NONE);
            return;
        }
        if (n > 0) {
            c->head_len += (size_t)n;
            c->head[c->head_len] = '\0';
            route(self, c, now);
        }
    }
}

static void on_writable(sup_metrics_http_t *self, conn_t *c)
{
    while (c->state == C_WRITING && c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
                         MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0) {
            conn_close(self, c, SUP_METRICS_HTTP_DROP_NONE);
            return;
        }
        c->out_off += (size_t)n;
    }
    if (c->state == C_WRITING) {
        /* All sent: close our side and read what the client may still
         * send until it closes, so that closing with unread bytes cannot
         * turn into a reset that loses the answer on its way. */
        shutdown(c->fd, SHUT_WR);
        c->state = C_LINGER;
    }
}

static void *run(void *arg)
{
    sup_metrics_http_t *self = arg;
    struct pollfd pfd[2 + SUP_METRICS_HTTP_MAX_CONNS];
    conn_t *who[2 + SUP_METRICS_HTTP_MAX_CONNS];
    for (;;) {
        int64_t now = dip_time_mono_ms(), next = now + 1000;
        nfds_t n = 2;
        pfd[0] = (struct pollfd){self->wake_fd, POLLIN, 0};
        pfd[1] = (struct pollfd){
            now >= self->accept_after_ms ? self->listen_fd : -1, POLLIN, 0};
        if (now < self->accept_after_ms && self->accept_after_ms < next)
            next = self->accept_after_ms;
        for (size_t i = 0; i < SUP_METRICS_HTTP_MAX_CONNS; i++) {
            conn_t *c = &self->conns[i];
            if (c->state == C_FREE)
                continue;
            if (c->deadline_ms < next)
                next = c->deadline_ms;
            who[n] = c;
            pfd[n++] = (struct pollfd){
                c->fd, c->state == C_WRITING ? POLLOUT : POLLIN, 0};
        }
        if (poll(pfd, n, next > now ? (int)(next - now) : 0) < 0 &&
            errno != EINTR)
            continue;
        if (pfd[0].revents & POLLIN)
            break;
        now = dip_time_mono_ms();
        for (nfds_t i = 2; i < n; i++) {
            conn_t *c = who[i];
            if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR))
                on_readable(self, c, now);
            if (c->state == C_WRITING && (pfd[i].revents & POLLOUT))
                on_writable(self, c);
            /* Answered at once when possible: a short answer fits in the
             * socket's buffer, no second turn is needed. */
            if (c->state == C_WRITING)
                on_writable(self, c);
        }
        for (size_t i = 0; i < SUP_METRICS_HTTP_MAX_CONNS; i++) {
            conn_t *c = &self->conns[i];
            if (c->state != C_FREE && now >= c->deadline_ms)
                conn_close(self, c,
                           c->state == C_LINGER
                               ? SUP_METRICS_HTTP_DROP_NONE
                               : SUP_METRICS_HTTP_DROP_DEADLINE);
        }
        if (pfd[1].revents & POLLIN)
            on_accept(self, now);
    }
    return NULL;
}

/* ---- start and stop ------------------------------------------------- */

/* "127.0.0.1:9464" or "[::1]:9464" into ss. 0 or -1. */
static int parse_addr(const char *addr, struct sockaddr_storage *ss, int *is_v6)
{
    char host[64];
    const char *colon, *h = addr;
    size_t hl;
    char *end = NULL;
    long port;

    memset(ss, 0, sizeof(*ss));
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (close == NULL || close[1] != ':')
            return -1;
        h = addr + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(addr, ':');
        if (colon == NULL)
            return -1;
        hl = (size_t)(colon - addr);
    }
    if (hl == 0 || hl >= sizeof(host))
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    port = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || *end != '\0' || port < 0 || port > 65535)
        return -1;
    if (addr[0] == '[') {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        *is_v6 = 1;
        return inet_pton(AF_INET6, host, &s6->sin6_addr) == 1 ? 0 : -1;
    }
    {
        struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        *is_v6 = 0;
        return inet_pton(AF_INET, host, &s4->sin_addr) == 1 ? 0 : -1;
    }
}

sup_metrics_http_t *sup_metrics_http_start(sup_metrics_t *metrics,
                                           const char *addr, char *err,
                                           size_t errlen)
{
    sup_metrics_http_t *self = NULL;
    struct sockaddr_storage ss;
    socklen_t sl;
    int v6 = 0, one = 1;

    if (addr == NULL || parse_addr(addr, &ss, &v6) < 0) {
        snprintf(err, errlen,
                 "DEALIMPORT_METRICS_ADDR: '%s' is not HOST:PORT with a "
                 "numeric IPv4 host or [IPv6]:PORT",
                 addr ? addr : "");
        return NULL;
    }
    self = calloc(1, sizeof(*self));
    if (self == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    self->metrics = metrics;
    self->wake_fd = -1;
    for (size_t i = 0; i < SUP_METRICS_HTTP_MAX_CONNS; i++)
        self->conns[i].fd = -1;
    sl = v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    self->listen_fd = socket(v6 ? AF_INET6 : AF_INET,
                             SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (self->listen_fd < 0 ||
        setsockopt(self->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one,
                   sizeof(one)) < 0 ||
        bind(self->listen_fd, (struct sockaddr *)&ss, sl) < 0 ||
        listen(self->listen_fd, 64) < 0) {
        snprintf(err, errlen,
                 "DEALIMPORT_METRICS_ADDR: cannot listen on '%s': %s", addr,
                 strerror(errno));
        goto fail;
    }
    if (getsockname(self->listen_fd, (struct sockaddr *)&ss, &sl) == 0)
        self->port = ntohs(v6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                              : ((struct sockaddr_in *)&ss)->sin_port);
    self->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (self->wake_fd < 0 ||
        pthread_create(&self->thread, NULL, run, self) != 0) {
        snprintf(err, errlen, "cannot start the metrics listener: %s",
                 strerror(errno));
        goto fail;
    }
    self->started = 1;
    return self;
fail:
    sup_metrics_http_stop(&self);
    return NULL;
}

void sup_metrics_http_stop(sup_metrics_http_t **self_p)
{
    sup_metrics_http_t *self;
    if (self_p == NULL || *self_p == NULL)
        return;
    self = *self_p;
    if (self->started) {
        uint64_t one = 1;
        /* The thread never blocks but in poll: it sees this at once. */
        if (write(self->wake_fd, &one, sizeof(one)) < 0)
            pthread_cancel(self->thread);
        pthread_join(self->thread, NULL);
    }
    for (size_t i = 0; i < SUP_METRICS_HTTP_MAX_CONNS; i++)
        conn_close(self, &self->conns[i], SUP_METRICS_HTTP_DROP_NONE);
    if (self->listen_fd >= 0)
        close(self->listen_fd);
    if (self->wake_fd >= 0)
        close(self->wake_fd);
    free(self);
    *self_p = NULL;
}

int sup_metrics_http_port(const sup_metrics_http_t *self)
{
    return self ? self->port : 0;
}
