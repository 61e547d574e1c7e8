/*
 * sup_ctl_peer: who sent a control request (see sup_ctl_peer.h).
 */
#include "sup_ctl_peer.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 1 when s[0..n) is a decimal number that fits a long. */
static int number(const char *s, size_t n, long *out)
{
    char buf[24];
    char *end;
    if (n == 0 || n >= sizeof(buf))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i]))
            return 0;
    memcpy(buf, s, n);
    buf[n] = '\0';
    errno = 0;
    *out = strtol(buf, &end, 10);
    return errno == 0 && *end == '\0';
}

int sup_ctl_peer_uid(const char *peer_address, long *uid)
{
    const char *c[3];
    size_t len;
    long u, g, p;
    if (peer_address == NULL)
        return -1;
    len = strlen(peer_address);
    /* c[0] the last ':', c[1] the one before, c[2] the one before that. */
    for (int k = 0; k < 3; k++) {
        const char *from = k == 0 ? peer_address + len : c[k - 1];
        const char *q = NULL;
        for (const char *s = peer_address; s < from; s++)
            if (*s == ':')
                q = s;
        if (q == NULL)
            return -1;
        c[k] = q;
    }
    if (!number(c[2] + 1, (size_t)(c[1] - c[2] - 1), &u) ||
        !number(c[1] + 1, (size_t)(c[0] - c[1] - 1), &g) ||
        !number(c[0] + 1, strlen(c[0] + 1), &p))
        return -1;
    *uid = u;
    return 0;
}

void sup_ctl_peer_of(zmq_msg_t *msg, int over_tcp, sup_ctl_peer_t *out)
{
    const char *addr = zmq_msg_gets(msg, "Peer-Address");
    memset(out, 0, sizeof(*out));
    out->uid = -1;
    if (over_tcp) {
        const char *user = zmq_msg_gets(msg, "User-Id");
        snprintf(out->key, sizeof(out->key), "%s", user ? user : "");
        snprintf(out->addr, sizeof(out->addr), "%s", addr ? addr : "");
    } else if (sup_ctl_peer_uid(addr, &out->uid) < 0) {
        out->uid = -1;
    }
}

const char *sup_ctl_peer_describe(const sup_ctl_peer_t *p, char *buf,
                                  size_t len)
{
    if (p->uid >= 0)
        snprintf(buf, len, "uid %ld", p->uid);
    else if (p->key[0])
        snprintf(buf, len, "key '%s'%s%s", p->key, p->addr[0] ? " from " : "",
                 p->addr);
    else
        snprintf(buf, len, "an unknown client");
    return buf;
}

void sup_ctl_peer_key_name(const char *file_name, char *out, size_t len)
{
    size_t n = strlen(file_name);
    if (n > 4 && strcmp(file_name + n - 4, ".pub") == 0)
        n -= 4;
    snprintf(out, len, "%.*s", (int)(n < INT_MAX ? n : INT_MAX), file_name);
}
