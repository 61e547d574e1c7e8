/*
 * sup_notify: sends sd_notify datagrams to the service manager. The address
 * and the watchdog settings are read from the environment once, in
 * sup_notify_new(), so that no later call depends on process-wide state that
 * another thread might change.
 */
#include "sup_notify.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

struct sup_notify {
    int enabled; /* NOTIFY_SOCKET was set */
    int error;   /* errno that every send reports, 0 if usable */
    int fd;
    struct sockaddr_un addr;
    socklen_t addrlen;
    char *watchdog_usec; /* copies of the variables, or NULL */
    char *watchdog_pid;
};

static int set_address(sup_notify_t *self, const char *name)
{
    size_t n = strlen(name);
    memset(&self->addr, 0, sizeof(self->addr));
    self->addr.sun_family = AF_UNIX;
    if (n < 2 || (name[0] != '/' && name[0] != '@'))
        return -EINVAL;
    if (name[0] == '@') {
        /* Abstract: a leading NUL, and the length says where it ends. */
        if (n > sizeof(self->addr.sun_path))
            return -EINVAL;
        memcpy(self->addr.sun_path + 1, name + 1, n - 1);
        self->addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    } else {
        if (n >= sizeof(self->addr.sun_path))
            return -EINVAL;
        memcpy(self->addr.sun_path, name, n);
        self->addrlen =
            (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    }
    return 0;
}

static int copy_env(const char *name, char **out)
{
    const char *v = getenv(name);
    *out = NULL;
    if (v == NULL)
        return 0;
    *out = strdup(v);
    return *out ? 0 : -ENOMEM;
}

sup_notify_t *sup_notify_new(void)
{
    sup_notify_t *self = calloc(1, sizeof(*self));
    const char *sock;
    int rc;

    if (self == NULL)
        return NULL;
    self->fd = -1;
    if (copy_env("WATCHDOG_USEC", &self->watchdog_usec) < 0 ||
        copy_env("WATCHDOG_PID", &self->watchdog_pid) < 0) {
        sup_notify_destroy(&self);
        return NULL;
    }
    sock = getenv("NOTIFY_SOCKET");
    if (sock == NULL || *sock == '\0')
        return self;
    self->enabled = 1;
    rc = set_address(self, sock);
    if (rc < 0) {
        self->error = -rc;
        return self;
    }
    self->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (self->fd < 0)
        self->error = errno;
    return self;
}

void sup_notify_destroy(sup_notify_t **self_p)
{
    sup_notify_t *self = self_p ? *self_p : NULL;
    if (self == NULL)
        return;
    if (self->fd >= 0)
        close(self->fd);
    free(self->watchdog_usec);
    free(self->watchdog_pid);
    free(self);
    *self_p = NULL;
}

int sup_notify_enabled(const sup_notify_t *self)
{
    return self != NULL && self->enabled;
}

static int send_text(sup_notify_t *self, const char *text, size_t n)
{
    ssize_t w;
    if (self == NULL || !self->enabled)
        return 0;
    if (self->error)
        return -self->error;
    do {
        w = sendto(self->fd, text, n, MSG_NOSIGNAL,
                   (const struct sockaddr *)&self->addr, self->addrlen);
    } while (w < 0 && errno == EINTR);
    if (w < 0)
        return -errno;
    return (size_t)w == n ? 0 : -EMSGSIZE;
}

int sup_notify_ready(sup_notify_t *self)
{
    return send_text(self, "READY=1", 7);
}

int sup_notify_stopping(sup_notify_t *self)
{
    return send_text(self, "STOPPING=1", 10);
}

int sup_notify_watchdog(sup_notify_t *self)
{
    return send_text(self, "WATCHDOG=1", 10);
}

int sup_notify_status(sup_notify_t *self, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    int n;

    if (self == NULL || !self->enabled)
        return 0;
    memcpy(buf, "STATUS=", 7);
    va_start(ap, fmt);
    n = vsnprintf(buf + 7, sizeof(buf) - 7, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -EINVAL;
    if ((size_t)n >= sizeof(buf) - 7)
        n = (int)(sizeof(buf) - 8); /* truncated */
    for (char *p = buf + 7; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    return send_text(self, buf, 7 + (size_t)n);
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end = NULL;
    unsigned long long v;
    if (s == NULL || *s < '0' || *s > '9')
        return -EINVAL;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || *end != '\0')
        return -EINVAL;
    *out = v;
    return 0;
}

int sup_notify_watchdog_usec(const sup_notify_t *self, uint64_t *usec)
{
    uint64_t v = 0, pid = 0;
    *usec = 0;
    if (self == NULL || !self->enabled || self->watchdog_usec == NULL)
        return 0;
    if (parse_u64(self->watchdog_usec, &v) < 0)
        return -EINVAL;
    if (self->watchdog_pid) {
        if (parse_u64(self->watchdog_pid, &pid) < 0 || pid == 0)
            return -EINVAL;
        if (pid != (uint64_t)getpid())
            return 0;
    }
    if (v == 0)
        return 0;
    *usec = v;
    return 1;
}
