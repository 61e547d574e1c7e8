/*
 * dip_bson: reading the CRM's documents, whose ids may be stored as
 * ObjectIds or as 24-hex strings, and small BSON/JSON conversions that the
 * worker, the supervisor and the control client all need.
 */
#ifndef DIP_BSON_H
#define DIP_BSON_H

#include <bson/bson.h>
#include <jansson.h>

/* Reads the id at `dotted` (e.g. "additional_data.pipeline_id") as an
 * ObjectId stored either as ObjectId or as a 24-hex string. Returns 0, -1 when
 * absent or null, -2 when present but not an id. */
int dip_bson_get_oid(const bson_t *doc, const char *dotted, bson_oid_t *out);

/* The string at `dotted`, or NULL when absent or not a string. Borrowed. */
const char *dip_bson_get_str(const bson_t *doc, const char *dotted);

/* Integer at `dotted` (int32, int64 or integral double), or def. */
int64_t dip_bson_get_int(const bson_t *doc, const char *dotted, int64_t def);

/* The integer an iterator holds: int32, int64, or a double with no
 * fraction within +-9e15. 0 with *out set, or -1 (any other type, a
 * fraction, out of range) leaving *out alone. The one strict reading of a
 * number that every program uses instead of bson_iter_as_int64, which
 * turns a string into 0 and truncates 1.5 to 1. */
int dip_bson_iter_int(const bson_iter_t *it, int64_t *out);

/* What a BSON type is called in a sentence for a person: "a string", "a
 * number", "an object", "an array", "a boolean", "null", ... */
const char *dip_bson_type_name(bson_type_t type);

/* Appends to the filter q {path: v} as MongoDB matches exactly v and no
 * other value a document may hold there: an array v as the plain equality
 * (a document is compared field by field in order: v as it was read
 * keeps the stored order); any other v as {$eq: v, $not: {$type:
 * "array"}}: $eq reads a regular expression or a document of operators as
 * a value, and a plain equality with a scalar also matches an array
 * holding it; a null v adds {$exists: true} (null also matches a missing
 * field). Only a value's form stays alike: 1 matches 1.0 and
 * NumberLong(1), a document the same document with numbers of other
 * types. A compare-and-set names the value it replaces so (a guard {f: 1}
 * matched a deal another writer had made [1, 50], and the write lost the
 * 50). false out of memory. */
bool dip_bson_append_is(bson_t *q, const char *path, bson_iter_t *v);

/* Appends `key: {$in: [ObjectId, "hex"]}` so a query matches an id stored in
 * either form. */
void dip_bson_append_id_match(bson_t *q, const char *key, const bson_oid_t *id);

/* The document a findAndModify reply holds under `value` (the document
 * before or after the change): 1 with *view set to it (borrowed: valid
 * while reply lives, copy it to keep it), 0 when the reply holds none (no
 * document matched). */
int dip_bson_reply_value(const bson_t *reply, bson_t *view);
/* 1 when two values are equal as a deal's field is compared (an update
 * and its revert): numbers by value whatever their BSON numeric type;
 * strings, ObjectIds, dates and booleans by type and value; null (and
 * undefined, minKey, maxKey) equal to itself; decimals by their bits;
 * documents and arrays by their bytes (field order and number types
 * count: a value put back as it was read is equal to it); anything else
 * (binary, regex, code...) is never equal. */
int dip_bson_iter_equal(const bson_iter_t *a, const bson_iter_t *b);

/* JSON <-> BSON through relaxed extended JSON. NULL on failure. */
json_t *dip_bson_to_json(const bson_t *doc);
bson_t *dip_bson_from_json(const json_t *value);

/* Milliseconds since the epoch, for BSON dates. */
int64_t dip_bson_now_ms(void);

/* ms (a BSON date) as ISO 8601 UTC with milliseconds,
 * "2026-12-01T10:45:00.000Z", into buf (at least DIP_BSON_ISO_TIME_LEN). */
#define DIP_BSON_ISO_TIME_LEN 64
void dip_bson_iso_time(int64_t ms, char *buf, size_t len);

#endif
