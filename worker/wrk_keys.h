/*
 * wrk_keys: a set of byte strings, each with a number (a line, an index),
 * for the match keys of an import: the first line of each key over the
 * whole run, and a batch's found deals by key. Keys are copied into one
 * arena, a key over WRK_KEYS_WHOLE bytes as its SHA-256 (32 bytes; two keys
 * of one length with one digest would be taken for one, a chance of about
 * 2^-128): memory is at most WRK_KEYS_WHOLE bytes a key plus 32 for its
 * slot (and the table's empty half), whatever a hostile file's keys hold.
 * Pure memory, no I/O.
 */
#ifndef WRK_KEYS_H
#define WRK_KEYS_H

#include <stddef.h>
#include <stdint.h>

typedef struct wrk_keys wrk_keys_t;

wrk_keys_t *wrk_keys_new(void);
void wrk_keys_destroy(wrk_keys_t **self_p);

/* Empties the set, keeping its memory for reuse. */
void wrk_keys_clear(wrk_keys_t *self);

/* Longest key kept as itself. */
#define WRK_KEYS_WHOLE 64

/* The number stored with key, or -1 when the key is not in the set, -2
 * when a long key's digest could not be made (out of memory). */
int64_t wrk_keys_get(const wrk_keys_t *self, const char *key, size_t len);

/* Bytes the set holds: its keys as kept and its table. */
size_t wrk_keys_bytes(const wrk_keys_t *self);

/* Adds key with value (>= 0), or lowers the value it holds to value when
 * value is smaller: a key's number is the smallest put, whatever the order
 * of the puts (a line refused before its batch files its key before the
 * earlier lines of that batch do). Returns the value the set holds for key
 * afterwards, or -1 when out of memory (the set is unchanged). */
int64_t wrk_keys_put(wrk_keys_t *self, const char *key, size_t len,
                     int64_t value);

#endif
