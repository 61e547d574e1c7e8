/*
 * wrk_fields: the one table of what a CSV may write into a deal. It lists the
 * standard deal fields a mapping may target (with the kind of value each
 * holds and whether every deal needs it), the deal statuses and contract
 * types with their accepted aliases, and the rule for custom field ids. A
 * deployment that needs another field, status or alias changes the tables in
 * wrk_fields.c and nothing else; wrk_map reads them through these lookups.
 */
#ifndef WRK_FIELDS_H
#define WRK_FIELDS_H

#include <stddef.h>

typedef enum {
    WRK_FIELD_TEXT,     /* trimmed text */
    WRK_FIELD_AMOUNT,   /* non-negative amount, stored as a double */
    WRK_FIELD_STAGE,    /* stage name, normalized; resolved by the caller */
    WRK_FIELD_STATUS,   /* one of the statuses below, 'open' when empty */
    WRK_FIELD_CONTRACT, /* one of the contract types below */
    WRK_FIELD_DATE,     /* calendar date or date-time, stored as a BSON date */
    WRK_FIELD_PERCENT,  /* 0 to 100, optional '%', stored as a double */
    WRK_FIELD_EMAIL,    /* a plausible address, stored trimmed */
    WRK_FIELD_CURRENCY, /* a 3-letter code, stored uppercase */
} wrk_field_kind_t;

typedef struct {
    const char *name;
    wrk_field_kind_t kind;
    int required; /* every deal needs a non-empty value */
} wrk_field_t;

/* Upper bound on the number of standard fields, so that per-row work can
 * keep one slot per field on the stack. */
#define WRK_FIELDS_MAX 32

/* The standard field called `name` (exact, case-sensitive), or NULL when a
 * CSV may not set it. The returned pointer is static and never freed. */
const wrk_field_t *wrk_fields_find(const char *name);

/* The standard fields in table order, which is also the order in which they
 * are written into a deal: wrk_fields_at(i) for i < wrk_fields_count(), NULL
 * past the end. */
size_t wrk_fields_count(void);
const wrk_field_t *wrk_fields_at(size_t i);

/* The canonical status or contract type for an already normalized value
 * (see wrk_map_normalize_token), aliases resolved: "closed_won" -> "won",
 * "yearly" -> "annually". NULL when it is not one. Static strings. */
const char *wrk_fields_status(const char *normalized);
const char *wrk_fields_contract_type(const char *normalized);

/* Writes the canonical statuses / contract types as a phrase for messages
 * ("open, won, lost or abandoned"). 0, or -1 when out is too small (out is
 * then truncated but terminated). */
int wrk_fields_status_names(char *out, size_t outlen);
int wrk_fields_contract_type_names(char *out, size_t outlen);

/* 1 when s is a custom field id as the CRM writes it: exactly 24 lowercase
 * hex digits (what the seed's verifyMongoId accepts: a valid ObjectId whose
 * string form is s itself), 0 otherwise (NULL included). */
int wrk_fields_is_object_id(const char *s);

#endif
