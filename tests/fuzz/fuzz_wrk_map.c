/*
 * Fuzz target for wrk_map. An input starting with 'B' is a BSON `mappings`
 * document for wrk_map_new (and, when accepted, a bind to its own column
 * names and one row of the same names); any other input goes whole through
 * every parser and normalizer and, split on tabs into cells that are not
 * NUL-terminated (when the input is UTF-8 without NUL bytes, as the reader
 * delivers cells), through a map of every standard field and two custom
 * fields. Checks what must hold whatever the input: amounts finite and not
 * negative, dates within years 1-9999, percentages 0-100, normalized text
 * without ASCII capitals, deals and messages valid UTF-8 BSON.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bson/bson.h>

#include "wrk_map.h"
#include "wrk_values.h"

#define NCOLS 16
#define MS_MIN (-62135596800000LL - 86400000LL)
#define MS_MAX (253402300800000LL + 86400000LL)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_wrk_map: %s\n", what);
        abort();
    }
}

static const char *const header[NCOLS] = {
    "Email",   "Title",  "Amount", "Cur",     "Stage",   "Status",
    "Notes",   "Unused", "Close",  "Prob",    "Contact", "Phone",
    "Company", "Region", "Source", "Contract"};

static const char mappings_json[] =
    "{\"Title\": \"name\", \"Amount\": \"value\", \"Cur\": \"currency\", "
    "\"Stage\": \"stage_id\", \"Status\": \"status\", \"Contract\": "
    "\"contract_type\", \"Close\": \"expected_close_date\", \"Prob\": "
    "\"probability\", \"Notes\": \"description\", \"Contact\": "
    "\"contact_name\", \"Email\": \"contact_email\", \"Phone\": "
    "\"contact_phone\", \"Company\": \"company_name\", \"Region\": "
    "\"64b0000000000000000000a1\", \"Source\": \"64b0000000000000000000b2\"}";

static void check_normalized(const char *out)
{
    check(bson_utf8_validate(out, strlen(out), false), "normalized not UTF-8");
    for (const char *p = out; *p; p++)
        check(!(*p >= 'A' && *p <= 'Z'), "capital left after normalizing");
}

static void parsers(const char *s, size_t len)
{
    char out[256];
    double d;
    int64_t ms;
    if (wrk_values_parse_amount(s, &d) == 0)
        check(d >= 0 && d <= 1e15, "amount out of range");
    if (wrk_values_parse_percent(s, &d) == 0)
        check(d >= 0 && d <= 100, "percent out of range");
    if (wrk_values_parse_date(s, &ms) == 0)
        check(ms >= MS_MIN && ms <= MS_MAX, "date out of range");
    if (wrk_values_check_email(s) == 0)
        check(strchr(s, '@') != NULL, "email without '@'");
    if (!bson_utf8_validate(s, len, false))
        return;
    if (wrk_map_normalize_stage(s, out, sizeof(out)) == 0) {
        check_normalized(out);
        check(strstr(out, "  ") == NULL, "stage with a double space");
    }
    if (wrk_map_normalize_token(s, out, sizeof(out)) == 0) {
        check_normalized(out);
        check(strchr(out, ' ') == NULL && strchr(out, '-') == NULL,
              "token with a space or dash");
    }
}

static void row(wrk_map_t *m, const char *const *cells, const size_t *lens,
                size_t n)
{
    bson_t deal = BSON_INITIALIZER;
    char stage[128];
    wrk_map_error_t e;
    size_t off;
    if (wrk_map_row(m, cells, lens, n, &deal, stage, sizeof(stage), &e) == 0) {
        check(bson_validate(&deal, BSON_VALIDATE_UTF8, &off), "deal not UTF-8");
        check(stage[0] != '\0', "deal without a stage");
        check(bson_has_field(&deal, "status"), "deal without a status");
        check(!bson_has_field(&deal, "stage_id"), "stage_id in the deal");
    } else {
        check(e.message[0] != '\0', "error without a message");
        check(bson_utf8_validate(e.message, strlen(e.message), false),
              "message not UTF-8");
        check(bson_utf8_validate(e.field, strlen(e.field), false),
              "field not UTF-8");
    }
    bson_destroy(&deal);
}

static void mappings(const uint8_t *data, size_t size)
{
    bson_t b;
    char err[512];
    wrk_map_t *m;
    const char *names[NCOLS];
    size_t n = 0;
    bson_iter_t it;
    if (!bson_init_static(&b, data, size))
        return;
    m = wrk_map_new(&b, err, sizeof(err));
    if (m == NULL) {
        check(err[0] != '\0', "refusal without a message");
        check(bson_utf8_validate(err, strlen(err), false), "err not UTF-8");
        return;
    }
    if (bson_iter_init(&it, &b))
        while (n < NCOLS && bson_iter_next(&it))
            names[n++] = bson_iter_key(&it);
    if (wrk_map_bind(m, names, n, err, sizeof(err)) == 0)
        row(m, names, NULL, n);
    wrk_map_destroy(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = NULL, *copy = NULL;
    const char *cells[NCOLS];
    size_t lens[NCOLS], n = 0, start = 0;
    bson_error_t berr;
    bson_t *b = NULL;
    wrk_map_t *m = NULL;
    char err[512];
    if (size > 0 && data[0] == 'B') {
        mappings(data + 1, size - 1);
        goto cleanup;
    }
    s = malloc(size + 1);
    copy = malloc(size > 0 ? size : 1);
    if (s == NULL || copy == NULL)
        goto cleanup;
    memcpy(s, data, size);
    s[size] = '\0';
    parsers(s, strlen(s));
    /* Cells point into a copy with no terminators, so an overread trips the
     * sanitizer. */
    memcpy(copy, data, size);
    for (size_t i = 0; i <= size && n < NCOLS; i++) {
        if (i == size || copy[i] == '\t') {
            cells[n] = copy + start;
            lens[n] = i - start;
            n++;
            start = i + 1;
        }
    }
    b = bson_new_from_json((const uint8_t *)mappings_json, -1, &berr);
    check(b != NULL, "bad mappings json");
    m = wrk_map_new(b, err, sizeof(err));
    check(m != NULL, "full mappings refused");
    check(wrk_map_bind(m, header, NCOLS, err, sizeof(err)) == 0,
          "bind refused");
    /* The mapper's cells are UTF-8 without NUL bytes, as the reader
     * delivers them (splitting on tabs keeps that). */
    if (memchr(data, 0, size) == NULL &&
        bson_utf8_validate((const char *)data, size, false))
        row(m, cells, lens, n);
cleanup:
    wrk_map_destroy(&m);
    if (b != NULL)
        bson_destroy(b);
    free(copy);
    free(s);
    return 0;
}
