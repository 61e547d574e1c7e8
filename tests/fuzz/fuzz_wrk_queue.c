/*
 * Fuzz target for the queue document: any BSON document goes through what a
 * worker does with its queue document before it writes anything
 * (wrk_queue_read, then the key check and the mappings), and gets a verdict:
 * accepted, or refused with a sentence. Checks what must hold whatever the
 * document: a refusal has a non-empty UTF-8 sentence; an accepted document
 * has a key inside the document and tags that are all strings; the verdict
 * is the same when read twice. Bytes that are not BSON are not a document
 * (MongoDB never hands one over) and are skipped.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bson/bson.h>

#include "dip_storage_io.h"
#include "wrk_map.h"
#include "wrk_queue.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_wrk_queue: %s\n", what);
        abort();
    }
}

static void sentence(const char *err)
{
    check(err[0] != '\0', "a refusal without a sentence");
    check(bson_utf8_validate(err, strlen(err), false),
          "a refusal that is not UTF-8");
}

/* 0 accepted, 1 refused by wrk_queue_read, 2 by the key, 3 by the
 * mappings. */
static int verdict(const bson_t *q, const uint8_t *data, size_t size)
{
    wrk_queue_t d;
    char err[1024] = "";
    wrk_map_t *m;
    bson_iter_t it;
    int v = 0;
    if (wrk_queue_read(q, 50, &d, err, sizeof(err)) < 0) {
        sentence(err);
        return 1;
    }
    check(d.key_len > 0, "an empty key accepted");
    check((const uint8_t *)d.key >= data &&
              (const uint8_t *)d.key + d.key_len <= data + size,
          "the key is not inside the document");
    check(bson_iter_init(&it, &d.tags), "tags unreadable");
    while (bson_iter_next(&it)) {
        check(BSON_ITER_HOLDS_UTF8(&it), "a tag that is not a string");
        check(bson_iter_utf8(&it, NULL) != NULL &&
                  strlen(bson_iter_utf8(&it, NULL)) <= WRK_QUEUE_TAG_MAX_BYTES,
              "a tag over the byte limit");
    }
    check(bson_count_keys(&d.tags) <= 50, "more tags than the limit");
    err[0] = '\0';
    if (dip_storage_check_key(d.key, d.key_len, err, sizeof(err)) != 0) {
        sentence(err);
        v = 2;
    } else if ((m = wrk_map_new(&d.mappings, err, sizeof(err))) == NULL) {
        sentence(err);
        v = 3;
    } else {
        wrk_map_destroy(&m);
    }
    wrk_queue_release(&d);
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bson_t q;
    size_t off;
    if (!bson_init_static(&q, data, size) ||
        !bson_validate(&q, BSON_VALIDATE_NONE, &off))
        return 0;
    check(verdict(&q, data, size) == verdict(&q, data, size),
          "two readings disagree");
    return 0;
}
