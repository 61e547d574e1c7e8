/*
 * wrk_fields: the tables of standard deal fields, statuses and contract types
 * that a CSV import may use, kept together so that changing what an import
 * accepts is an edit here. Everything else (_id, account_id, owner,
 * pipeline_id, created_by, source, tags, import, timestamps) is written by the
 * worker itself and can never be a mapping target.
 */
#include "wrk_fields.h"

#include <stdio.h>
#include <string.h>

/* Table order is the order of the fields in a written deal. */
static const wrk_field_t fields[] = {
    {"name", WRK_FIELD_TEXT, 1},
    {"value", WRK_FIELD_AMOUNT, 0},
    {"currency", WRK_FIELD_CURRENCY, 0},
    {"stage_id", WRK_FIELD_STAGE, 1},
    {"status", WRK_FIELD_STATUS, 0},
    {"contract_type", WRK_FIELD_CONTRACT, 0},
    {"expected_close_date", WRK_FIELD_DATE, 0},
    {"probability", WRK_FIELD_PERCENT, 0},
    {"description", WRK_FIELD_TEXT, 0},
    {"contact_name", WRK_FIELD_TEXT, 0},
    {"contact_email", WRK_FIELD_EMAIL, 0},
    {"contact_phone", WRK_FIELD_TEXT, 0},
    {"company_name", WRK_FIELD_TEXT, 0},
    /* unique per account (wrk_match.h): the key a CRM keeps for a deal */
    {"external_id", WRK_FIELD_TEXT, 0},
    /* the deal's own id, read as the match key only, never written
     * (wrk_match_check_mapping refuses it in any other use) */
    {"deal_id", WRK_FIELD_TEXT, 0},
};
#define NFIELDS (sizeof(fields) / sizeof(fields[0]))

_Static_assert(NFIELDS <= WRK_FIELDS_MAX, "raise WRK_FIELDS_MAX");

typedef struct {
    const char *value; /* as normalized input */
    const char *canon; /* what is stored; value == canon for a canonical one */
} word_t;

/* Canonical entries first, in the order messages list them. */
static const word_t statuses[] = {
    {"open", "open"},           {"won", "won"},        {"lost", "lost"},
    {"abandoned", "abandoned"}, {"closed_won", "won"}, {"closed_lost", "lost"},
};

static const word_t contract_types[] = {
    {"one_time", "one_time"},   {"monthly", "monthly"},
    {"quarterly", "quarterly"}, {"semi_annually", "semi_annually"},
    {"annually", "annually"},   {"annual", "annually"},
    {"yearly", "annually"},
};

const wrk_field_t *wrk_fields_find(const char *name)
{
    if (name == NULL)
        return NULL;
    for (size_t i = 0; i < NFIELDS; i++)
        if (strcmp(fields[i].name, name) == 0)
            return &fields[i];
    return NULL;
}

size_t wrk_fields_count(void)
{
    return NFIELDS;
}

const wrk_field_t *wrk_fields_at(size_t i)
{
    return i < NFIELDS ? &fields[i] : NULL;
}

static const char *lookup(const word_t *words, size_t n, const char *value)
{
    if (value == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (strcmp(words[i].value, value) == 0)
            return words[i].canon;
    return NULL;
}

const char *wrk_fields_status(const char *normalized)
{
    return lookup(statuses, sizeof(statuses) / sizeof(statuses[0]), normalized);
}

const char *wrk_fields_contract_type(const char *normalized)
{
    return lookup(contract_types,
                  sizeof(contract_types) / sizeof(contract_types[0]),
                  normalized);
}

/* "a, b, c or d" over the canonical entries of a table. */
static int names(const word_t *words, size_t n, char *out, size_t outlen)
{
    size_t ncanon = 0, used = 0, k = 0;
    int rc = 0;
    if (outlen == 0)
        return -1;
    out[0] = '\0';
    for (size_t i = 0; i < n; i++)
        if (strcmp(words[i].value, words[i].canon) == 0)
            ncanon++;
    for (size_t i = 0; i < n; i++) {
        const char *sep;
        int w;
        if (strcmp(words[i].value, words[i].canon) != 0)
            continue;
        sep = k == 0 ? "" : (k + 1 == ncanon ? " or " : ", ");
        w = snprintf(out + used, outlen - used, "%s%s", sep, words[i].value);
        if (w < 0 || (size_t)w >= outlen - used) {
            rc = -1;
            goto cleanup;
        }
        used += (size_t)w;
        k++;
    }
cleanup:
    return rc;
}

int wrk_fields_status_names(char *out, size_t outlen)
{
    return names(statuses, sizeof(statuses) / sizeof(statuses[0]), out, outlen);
}

int wrk_fields_contract_type_names(char *out, size_t outlen)
{
    return names(contract_types,
                 sizeof(contract_types) / sizeof(contract_types[0]), out,
                 outlen);
}

int wrk_fields_is_object_id(const char *s)
{
    size_t i;
    if (s == NULL)
        return 0;
    for (i = 0; s[i] != '\0'; i++) {
        char c = s[i];
        if (i >= 24 || !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return 0;
    }
    return i == 24;
}
