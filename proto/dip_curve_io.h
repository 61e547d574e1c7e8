/*
 * dip_curve_io: the CURVE key files of the control plane's TCP endpoint.
 * A key file holds one 40-character Z85 key on its first line that is not
 * empty or a '#' comment; a clients directory holds files of public keys,
 * one per line. The supervisor reads its secret key and checks clients
 * against the directory; dealimportctl reads its own secret key and the
 * supervisor's public key, and writes new key pairs.
 */
#ifndef DIP_CURVE_IO_H
#define DIP_CURVE_IO_H

#include <stddef.h>

#define DIP_CURVE_KEY_LEN 40 /* Z85 text of a 32-byte key */

/* Reads the key in path into z85 (DIP_CURVE_KEY_LEN + 1 bytes). Returns 0,
 * or -1 with a sentence naming the file in err. what names the key in the
 * message ("the supervisor's secret key"). */
int dip_curve_read_key(const char *path, const char *what, char *z85, char *err,
                       size_t errlen);

/* 1 when the Z85 public key appears in a file of dir, 0 when not, -1 when
 * dir cannot be read. */
int dip_curve_key_listed(const char *dir, const char *z85);
/* As dip_curve_key_listed, and when found, the name of the file that lists
 * it into file (len bytes, cut short if need be). */
int dip_curve_key_find(const char *dir, const char *z85, char *file,
                       size_t len);

/* The keys of a clients directory, read once and kept (a handshake then
 * costs a lookup in memory, not a directory read), each with the name of
 * the file that lists it (the name a client's requests are logged under). */
typedef struct dip_curve_key_entry {
    char z85[DIP_CURVE_KEY_LEN + 1];
    char file[256]; /* a directory entry's name (NAME_MAX + 1) */
} dip_curve_key_entry_t;

typedef struct dip_curve_keys {
    dip_curve_key_entry_t *key; /* n entries of cap; owned */
    size_t n, cap;
    unsigned long long sig; /* dip_curve_keys_signature when loaded */
} dip_curve_keys_t;

/* A signature of dir's entries: each one's name, inode, size and
 * modification time (ns), hashed. It changes when a file is added,
 * removed, replaced or written. 0, or -1 when dir cannot be read. */
int dip_curve_keys_signature(const char *dir, unsigned long long *sig);
/* Reads every valid key of dir's files into keys (its previous contents
 * dropped). 0, or -1 when dir cannot be read (keys then empty). */
int dip_curve_keys_load(const char *dir, dip_curve_keys_t *keys);
/* 1 when z85 is one of keys, 0 when not. When found, the name of the file
 * that lists it (the first read, if several do) into file (len bytes, cut
 * short if need be); file may be NULL. */
int dip_curve_keys_find(const dip_curve_keys_t *keys, const char *z85,
                        char *file, size_t len);
/* As dip_curve_keys_find without the name. */
int dip_curve_keys_has(const dip_curve_keys_t *keys, const char *z85);
void dip_curve_keys_release(dip_curve_keys_t *keys);

/* Derives the Z85 public key of a Z85 secret key. 0 or -1. */
int dip_curve_public(const char *secret_z85, char *public_z85);

/* Writes a new key pair: prefix.key (the secret, mode 0600, refused if it
 * exists) and prefix.pub (the public key). Returns 0, or -1 with err. */
int dip_curve_keygen(const char *prefix, char *public_z85, char *err,
                     size_t errlen);

#endif
