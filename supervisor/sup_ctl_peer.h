/*
 * sup_ctl_peer: who sent a control request, for the log line of each
 * request that changes an import. Over ipc:// that is the connecting
 * process's uid, which the kernel vouches for (SO_PEERCRED). libzmq reads
 * it when it accepts the connection and appends it to the connection's
 * "Peer-Address" property as ":uid:gid:pid" (libzmq 4.3, checked against
 * Debian 12's 4.3.4: "localhost:1000:1000:4242"); nothing the client sends
 * can change it. Over TCP it is the name of the CURVE key the client
 * proved it holds: the ZAP handler (sup_ctl.c) answers with that name as
 * the connection's User-Id, and every message of the connection carries
 * it; with it the client's address.
 */
#ifndef SUP_CTL_PEER_H
#define SUP_CTL_PEER_H

#include <stddef.h>

#include <zmq.h>

typedef struct {
    long uid;      /* over ipc://; -1 when not known */
    char key[128]; /* over TCP: the key's name ("" when not known) */
    char addr[64]; /* over TCP: the client's address ("" when not known) */
} sup_ctl_peer_t;

/* The uid in a libzmq Peer-Address of an ipc:// connection: the first of
 * the three numbers after the last three ':' ("host:uid:gid:pid"). Returns
 * 0 with *uid set, or -1 when the text does not end in three numbers (no
 * SO_PEERCRED, or a TCP address). Pure. */
int sup_ctl_peer_uid(const char *peer_address, long *uid);

/* Who sent msg (a frame received on a control socket; over_tcp: on the
 * CURVE socket). Always fills *out, with what is not known left unknown. */
void sup_ctl_peer_of(zmq_msg_t *msg, int over_tcp, sup_ctl_peer_t *out);

/* "uid 1000", "key 'ops' from 10.0.0.7", or "an unknown client", in buf. */
const char *sup_ctl_peer_describe(const sup_ctl_peer_t *p, char *buf,
                                  size_t len);

/* The name a CURVE client's key goes by in the log: the file of the
 * clients directory that lists it, less a ".pub" ending ("ops.pub" ->
 * "ops"). Pure. */
void sup_ctl_peer_key_name(const char *file_name, char *out, size_t len);

#endif
