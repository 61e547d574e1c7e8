/*
 * wrk_keys: a set of byte strings, each with a number (a line, an index),
 * for the match keys of an import: the first line of each key over the
 * whole run, and a batch's found deals by key. Keys are copied into one
 * arena; memory is the bytes of the keys plus 24 bytes a key (and the
 * table's empty half). Pure memory, no I/O.
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

/* The number stored with key, or -1 when the key is not in the set. */
int64_t wrk_keys_get(const wrk_keys_t *self, const char *key, size_t len);

/* Adds key with value (>= 0), or lowers the value it holds to value when
 * value is smaller: a key's number is the smallest put, whatever the order
 * of the puts (a line refused before its batch files its key before the
 * earlier lines of that batch do). Returns the value the set holds for key
 * afterwards, or -1 when out of memory (the set is unchanged). */
int64_t wrk_keys_put(wrk_keys_t *self, const char *key, size_t len,
                     int64_t value);

#endif
