/*
 * wrk_diff: a row against its deal, field by field in the row's order, so
 * that the change entries list the fields as the deal is written.
 */
#include "wrk_diff.h"
#include "dip_bson.h"

#include <stdio.h>
#include <string.h>

/* One field of the row against the deal's value at dotted. */
static int diff_one(const char *dotted, const bson_iter_t *val,
                    const bson_t *deal, bson_t *set, bson_t *changes,
                    uint32_t *nchanges)
{
    bson_iter_t old;
    bson_t ch;
    char kb[16];
    const char *k;
    size_t kl;
    int had = bson_iter_init(&old, deal) &&
              bson_iter_find_descendant(&old, dotted, &old);
    if (had && dip_bson_iter_equal(val, &old))
        return 0;
    bson_append_value(set, dotted, -1, bson_iter_value((bson_iter_t *)val));
    kl = bson_uint32_to_string((*nchanges)++, &k, kb, sizeof(kb));
    bson_append_document_begin(changes, k, (int)kl, &ch);
    BSON_APPEND_UTF8(&ch, "f", dotted);
    BSON_APPEND_VALUE(&ch, "a", bson_iter_value((bson_iter_t *)val));
    if (had)
        BSON_APPEND_VALUE(&ch, "b", bson_iter_value(&old));
    bson_append_document_end(changes, &ch);
    return 1;
}

int wrk_diff_row(const bson_t *row, const bson_t *deal, const char *skip,
                 int status_given, bson_t *set, bson_t *changes, bson_t *tags)
{
    bson_iter_t it, sub, dt;
    uint32_t nchanges = 0, ntags = 0;
    int n = 0, mapped = 1;
    if (!bson_iter_init(&it, row))
        return 0;
    while (bson_iter_next(&it)) {
        const char *key = bson_iter_key(&it);
        if (strcmp(key, "_id") == 0)
            continue;
        if (strcmp(key, "stage_id") == 0) {
            bson_oid_t zero;
            mapped = 0; /* the worker's own fields follow */
            bson_oid_init_from_string(&zero, "000000000000000000000000");
            /* the zero id: the stage cell was empty */
            if (!(BSON_ITER_HOLDS_OID(&it) &&
                  bson_oid_equal(bson_iter_oid(&it), &zero)))
                n += diff_one(key, &it, deal, set, changes, &nchanges);
            continue;
        }
        if (!mapped) {
            if (strcmp(key, "tags") == 0 && BSON_ITER_HOLDS_ARRAY(&it) &&
                bson_iter_recurse(&it, &sub))
                while (bson_iter_next(&sub)) {
                    int has = 0;
                    bson_iter_t t;
                    if (bson_iter_init(&dt, deal) &&
                        bson_iter_find(&dt, "tags") &&
                        BSON_ITER_HOLDS_ARRAY(&dt) &&
                        bson_iter_recurse(&dt, &t))
                        while (!has && bson_iter_next(&t))
                            has = dip_bson_iter_equal(&sub, &t);
                    if (!has) {
                        char kb[16];
                        const char *k;
                        size_t kl =
                            bson_uint32_to_string(ntags++, &k, kb, sizeof(kb));
                        bson_append_value(tags, k, (int)kl,
                                          bson_iter_value(&sub));
                        n++;
                    }
                }
            continue;
        }
        if (skip && strcmp(key, skip) == 0)
            continue;
        if (strcmp(key, "status") == 0 && !status_given)
            continue;
        if (strcmp(key, "additional_info") == 0 &&
            BSON_ITER_HOLDS_DOCUMENT(&it) && bson_iter_recurse(&it, &sub)) {
            while (bson_iter_next(&sub)) {
                char dotted[64];
                /* an empty custom cell keeps the deal's value */
                if (BSON_ITER_HOLDS_UTF8(&sub) &&
                    bson_iter_utf8(&sub, NULL)[0] == '\0')
                    continue;
                snprintf(dotted, sizeof(dotted), "additional_info.%s",
                         bson_iter_key(&sub));
                n += diff_one(dotted, &sub, deal, set, changes, &nchanges);
            }
            continue;
        }
        n += diff_one(key, &it, deal, set, changes, &nchanges);
    }
    return n;
}
