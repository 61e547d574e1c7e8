/*
 * dip_ctl: JSON encoding and strict decoding of control requests and
 * replies. The request decoder is the supervisor's first line of defence:
 * every byte an operator's client (or anything else that reaches the socket)
 * sends passes through it, so it bounds the size, refuses unknown fields
 * rather than ignoring a typo, and quotes untrusted text only after
 * sanitizing it.
 */
#include "dip_ctl.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const cmd_names[] = {
    NULL, "status", "list", "show", "pause", "resume", "cancel", "metrics",
};
#define NCMDS ((int)(sizeof(cmd_names) / sizeof(cmd_names[0])))

static const char *const code_names[] = {
    "ok", "bad_request", "not_found", "wrong_state", "unavailable",
};
#define NCODES ((int)(sizeof(code_names) / sizeof(code_names[0])))

static const char *const statuses[] = {
    "pending", "processing", "paused", "completed", "failed", "cancelled",
};
#define NSTATUSES (sizeof(statuses) / sizeof(statuses[0]))

const char *dip_ctl_cmd_name(dip_ctl_cmd_t cmd)
{
    if ((int)cmd < 1 || (int)cmd >= NCMDS)
        return "unknown";
    return cmd_names[cmd];
}

dip_ctl_cmd_t dip_ctl_cmd_parse(const char *s)
{
    for (int i = 1; s && i < NCMDS; i++)
        if (strcmp(cmd_names[i], s) == 0)
            return (dip_ctl_cmd_t)i;
    return (dip_ctl_cmd_t)0;
}

const char *dip_ctl_code_name(dip_ctl_code_t code)
{
    if ((int)code < 0 || (int)code >= NCODES)
        return "unknown";
    return code_names[code];
}

static int code_parse(const char *s)
{
    for (int i = 1; i < NCODES; i++)
        if (strcmp(code_names[i], s) == 0)
            return i;
    return -1;
}

int dip_ctl_status_valid(const char *s)
{
    for (size_t i = 0; s && i < NSTATUSES; i++)
        if (strcmp(statuses[i], s) == 0)
            return 1;
    return 0;
}

int dip_ctl_status_final(const char *s)
{
    return s && (strcmp(s, "completed") == 0 || strcmp(s, "failed") == 0 ||
                 strcmp(s, "cancelled") == 0);
}

char *dip_ctl_quote(const char *s, size_t max, char *out, size_t outlen)
{
    size_t i = 0, o = 0;
    if (outlen == 0)
        return out;
    for (; s && s[i] && i < max && o + 1 < outlen; i++)
        out[o++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    if (s && s[i] && o + 4 < outlen) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return out;
}

/* Copies a 24-hex id, lowercased, into out[25]; 0, or -1 when s is not
 * one. */
static int copy_id(const char *s, char *out)
{
    for (int i = 0; i < 24; i++) {
        if (!isxdigit((unsigned char)s[i]))
            return -1;
        out[i] = (char)tolower((unsigned char)s[i]);
    }
    if (s[24] != '\0')
        return -1;
    out[24] = '\0';
    return 0;
}

int dip_ctl_cursor_format(long long created_ms, const char *id,
                          char out[DIP_CTL_CURSOR_LEN])
{
    char hex[25];
    if (created_ms < 0 || id == NULL || copy_id(id, hex) < 0)
        return -1;
    snprintf(out, DIP_CTL_CURSOR_LEN, "%lld.%s", created_ms, hex);
    return 0;
}

int dip_ctl_cursor_parse(const char *s, long long *created_ms, char id[25])
{
    const char *dot;
    long long ms = 0;
    if (s == NULL || (dot = strchr(s, '.')) == NULL || dot == s || dot - s > 15)
        return -1;
    for (const char *p = s; p < dot; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        ms = ms * 10 + (*p - '0');
    }
    if (copy_id(dot + 1, id) < 0)
        return -1;
    *created_ms = ms;
    return 0;
}

static int needs_id(dip_ctl_cmd_t cmd)
{
    return cmd == DIP_CTL_SHOW || cmd == DIP_CTL_PAUSE ||
           cmd == DIP_CTL_RESUME || cmd == DIP_CTL_CANCEL;
}

static int field_allowed(dip_ctl_cmd_t cmd, const char *key)
{
    if (strcmp(key, "v") == 0 || strcmp(key, "cmd") == 0)
        return 1;
    if (needs_id(cmd))
        return strcmp(key, "id") == 0;
    if (cmd == DIP_CTL_LIST)
        return strcmp(key, "status") == 0 || strcmp(key, "account") == 0 ||
               strcmp(key, "limit") == 0 || strcmp(key, "since") == 0 ||
               strcmp(key, "after") == 0;
    return 0;
}

static int decode_request_fields(json_t *root, dip_ctl_request_t *req,
                                 char *err, size_t errlen)
{
    const char *key;
    json_t *v;
    char q[64];

    json_object_foreach(root, key, v)
    {
        if (!field_allowed(req->cmd, key)) {
            snprintf(err, errlen, "unknown field '%s' in a '%s' request",
                     dip_ctl_quote(key, 40, q, sizeof(q)),
                     dip_ctl_cmd_name(req->cmd));
            return -1;
        }
    }
    if (needs_id(req->cmd)) {
        v = json_object_get(root, "id");
        if (v == NULL) {
            snprintf(err, errlen, "'%s' needs an 'id' (the import's queue id)",
                     dip_ctl_cmd_name(req->cmd));
            return -1;
        }
        if (!json_is_string(v)) {
            snprintf(err, errlen, "'id' must be a string");
            return -1;
        }
        if (copy_id(json_string_value(v), req->id) < 0) {
            snprintf(err, errlen,
                     "'%s' is not an import id (24 hexadecimal digits)",
                     dip_ctl_quote(json_string_value(v), 40, q, sizeof(q)));
            return -1;
        }
    }
    if (req->cmd != DIP_CTL_LIST)
        return 0;
    req->limit = DIP_CTL_LIST_DEFAULT;
    if ((v = json_object_get(root, "status")) != NULL) {
        if (!json_is_string(v)) {
            snprintf(err, errlen, "'status' must be a string");
            return -1;
        }
        if (!dip_ctl_status_valid(json_string_value(v))) {
            snprintf(err, errlen,
                     "'status' must be one of pending, processing, paused, "
                     "completed, failed, cancelled, not '%s'",
                     dip_ctl_quote(json_string_value(v), 40, q, sizeof(q)));
            return -1;
        }
        snprintf(req->status, sizeof(req->status), "%s", json_string_value(v));
    }
    if ((v = json_object_get(root, "account")) != NULL) {
        if (!json_is_string(v)) {
            snprintf(err, errlen, "'account' must be a string");
            return -1;
        }
        if (copy_id(json_string_value(v), req->account) < 0) {
            snprintf(err, errlen,
                     "'%s' is not an account id (24 hexadecimal digits)",
                     dip_ctl_quote(json_string_value(v), 40, q, sizeof(q)));
            return -1;
        }
    }
    if ((v = json_object_get(root, "limit")) != NULL) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
            json_integer_value(v) > DIP_CTL_LIST_MAX) {
            snprintf(err, errlen, "'limit' must be an integer from 1 to %d",
                     DIP_CTL_LIST_MAX);
            return -1;
        }
        req->limit = (int)json_integer_value(v);
    }
    if ((v = json_object_get(root, "since")) != NULL) {
        if (!json_is_integer(v) || json_integer_value(v) < 0) {
            snprintf(err, errlen,
                     "'since' must be a time in milliseconds since 1970 "
                     "(an integer from 0)");
            return -1;
        }
        req->since_ms = (long long)json_integer_value(v);
    }
    if ((v = json_object_get(root, "after")) != NULL) {
        long long ms;
        char id[25];
        if (!json_is_string(v) ||
            dip_ctl_cursor_parse(json_string_value(v), &ms, id) < 0) {
            snprintf(err, errlen,
                     "'after' must be the 'next' of a list reply "
                     "(\"<milliseconds>.<id>\")");
            return -1;
        }
        snprintf(req->after, sizeof(req->after), "%s", json_string_value(v));
    }
    return 0;
}

int dip_ctl_request_decode(const void *buf, size_t len, dip_ctl_request_t *req,
                           char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root = NULL, *v;
    char q[160];
    int rc = -1;

    memset(req, 0, sizeof(*req));
    if (len == 0) {
        snprintf(err, errlen, "the request is empty");
        return -1;
    }
    if (len > DIP_CTL_MAX_REQUEST) {
        snprintf(err, errlen,
                 "the request is %zu bytes, more than the %u "
                 "allowed",
                 len, DIP_CTL_MAX_REQUEST);
        return -1;
    }
    root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        snprintf(err, errlen, "the request is not JSON: %s",
                 dip_ctl_quote(jerr.text, 120, q, sizeof(q)));
        goto cleanup;
    }
    if (!json_is_object(root)) {
        snprintf(err, errlen, "the request must be a JSON object");
        goto cleanup;
    }
    v = json_object_get(root, "v");
    if (v == NULL) {
        snprintf(err, errlen,
                 "the request has no 'v' (the protocol version, %d)",
                 DIP_CTL_VERSION);
        goto cleanup;
    }
    if (!json_is_integer(v)) {
        snprintf(err, errlen, "'v' must be an integer");
        goto cleanup;
    }
    if (json_integer_value(v) != DIP_CTL_VERSION) {
        snprintf(err, errlen,
                 "protocol version %lld is not supported (this supervisor "
                 "speaks %d)",
                 (long long)json_integer_value(v), DIP_CTL_VERSION);
        goto cleanup;
    }
    v = json_object_get(root, "cmd");
    if (v == NULL) {
        snprintf(err, errlen, "the request has no 'cmd'");
        goto cleanup;
    }
    if (!json_is_string(v)) {
        snprintf(err, errlen, "'cmd' must be a string");
        goto cleanup;
    }
    req->cmd = dip_ctl_cmd_parse(json_string_value(v));
    if (req->cmd == 0) {
        snprintf(err, errlen,
                 "unknown command '%s' (known: status, list, show, pause, "
                 "resume, cancel, metrics)",
                 dip_ctl_quote(json_string_value(v), 40, q, sizeof(q)));
        goto cleanup;
    }
    rc = decode_request_fields(root, req, err, errlen);
cleanup:
    json_decref(root);
    if (rc < 0)
        memset(req, 0, sizeof(*req));
    return rc;
}

char *dip_ctl_request_encode(const dip_ctl_request_t *req)
{
    json_t *o = NULL;
    char id[25];
    char *s = NULL;

    if (req == NULL || dip_ctl_cmd_parse(dip_ctl_cmd_name(req->cmd)) == 0)
        return NULL;
    o = json_pack("{s:i, s:s}", "v", DIP_CTL_VERSION, "cmd",
                  dip_ctl_cmd_name(req->cmd));
    if (o == NULL)
        return NULL;
    if (needs_id(req->cmd)) {
        if (copy_id(req->id, id) < 0 ||
            json_object_set_new(o, "id", json_string(id)))
            goto cleanup;
    }
    if (req->cmd == DIP_CTL_LIST) {
        if (req->status[0] &&
            (!dip_ctl_status_valid(req->status) ||
             json_object_set_new(o, "status", json_string(req->status))))
            goto cleanup;
        if (req->account[0] &&
            (copy_id(req->account, id) < 0 ||
             json_object_set_new(o, "account", json_string(id))))
            goto cleanup;
        if (req->limit < 0 || req->limit > DIP_CTL_LIST_MAX)
            goto cleanup;
        if (req->limit > 0 &&
            json_object_set_new(o, "limit", json_integer(req->limit)))
            goto cleanup;
        if (req->since_ms < 0 ||
            (req->since_ms > 0 &&
             json_object_set_new(o, "since", json_integer(req->since_ms))))
            goto cleanup;
        if (req->after[0]) {
            long long ms;
            char after_id[25];
            if (dip_ctl_cursor_parse(req->after, &ms, after_id) < 0 ||
                json_object_set_new(o, "after", json_string(req->after)))
                goto cleanup;
        }
    }
    s = json_dumps(o, JSON_COMPACT);
cleanup:
    json_decref(o);
    return s;
}

/* ---- replies --------------------------------------------------------- */

static int want(json_t *o, const char *key, int (*is)(const json_t *),
                const char *what, const char *where, char *err, size_t errlen)
{
    if (!is(json_object_get(o, key))) {
        snprintf(err, errlen, "the reply's '%s%s' is missing or not %s", where,
                 key, what);
        return -1;
    }
    return 0;
}

static int is_string(const json_t *v)
{
    return json_is_string(v);
}

static int is_object(const json_t *v)
{
    return json_is_object(v);
}

static int is_array(const json_t *v)
{
    return json_is_array(v);
}

static int is_count(const json_t *v)
{
    return json_is_integer(v) && json_integer_value(v) >= 0;
}

/* An import as list and show describe it: at least its id and status. */
static int want_import(json_t *o, const char *where, char *err, size_t errlen)
{
    if (!json_is_object(o)) {
        snprintf(err, errlen, "the reply's '%.*s' is not an object",
                 (int)strlen(where) - 1, where);
        return -1;
    }
    if (want(o, "id", is_string, "a string", where, err, errlen) ||
        want(o, "status", is_string, "a string", where, err, errlen))
        return -1;
    return 0;
}

static int decode_reply_fields(json_t *o, dip_ctl_cmd_t cmd, char *err,
                               size_t errlen)
{
    json_t *a;
    switch (cmd) {
    case DIP_CTL_STATUS:
        if (want(o, "version", is_string, "a string", "", err, errlen) ||
            want(o, "owner", is_string, "a string", "", err, errlen) ||
            want(o, "uptime_s", is_count, "a count", "", err, errlen) ||
            want(o, "workers", is_object, "an object", "", err, errlen) ||
            want(o, "imports", is_object, "an object", "", err, errlen) ||
            want(o, "accounts", is_array, "an array", "", err, errlen))
            return -1;
        a = json_object_get(o, "workers");
        return want(a, "running", is_count, "a count", "workers.", err,
                    errlen) ||
                       want(a, "limit", is_count, "a count", "workers.", err,
                            errlen)
                   ? -1
                   : 0;
    case DIP_CTL_LIST:
        if (want(o, "imports", is_array, "an array", "", err, errlen))
            return -1;
        a = json_object_get(o, "imports");
        for (size_t i = 0; i < json_array_size(a); i++)
            if (want_import(json_array_get(a, i), "imports[].", err, errlen))
                return -1;
        return 0;
    case DIP_CTL_SHOW:
        return want_import(json_object_get(o, "import"), "import.", err,
                           errlen);
    case DIP_CTL_PAUSE:
    case DIP_CTL_RESUME:
    case DIP_CTL_CANCEL:
        return want(o, "id", is_string, "a string", "", err, errlen) ||
                       want(o, "result", is_string, "a string", "", err,
                            errlen) ||
                       want(o, "status", is_string, "a string", "", err,
                            errlen) ||
                       want(o, "message", is_string, "a string", "", err,
                            errlen)
                   ? -1
                   : 0;
    case DIP_CTL_METRICS:
        return want(o, "text", is_string, "a string", "", err, errlen);
    }
    snprintf(err, errlen, "no reply is defined for command %d", (int)cmd);
    return -1;
}

int dip_ctl_reply_decode(const void *buf, size_t len, dip_ctl_cmd_t cmd,
                         dip_ctl_reply_t *reply, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *v;
    char q[160];
    int code;

    memset(reply, 0, sizeof(*reply));
    if (len > DIP_CTL_MAX_REPLY) {
        snprintf(err, errlen,
                 "the reply is %zu bytes, more than the %u "
                 "allowed",
                 len, DIP_CTL_MAX_REPLY);
        return -1;
    }
    reply->root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (reply->root == NULL) {
        snprintf(err, errlen, "the reply is not JSON: %s",
                 dip_ctl_quote(jerr.text, 120, q, sizeof(q)));
        return -1;
    }
    if (!json_is_object(reply->root)) {
        snprintf(err, errlen, "the reply is not a JSON object");
        goto fail;
    }
    v = json_object_get(reply->root, "v");
    if (!json_is_integer(v) || json_integer_value(v) != DIP_CTL_VERSION) {
        snprintf(err, errlen, "the reply is not protocol version %d",
                 DIP_CTL_VERSION);
        goto fail;
    }
    v = json_object_get(reply->root, "ok");
    if (!json_is_boolean(v)) {
        snprintf(err, errlen, "the reply's 'ok' is missing or not a boolean");
        goto fail;
    }
    reply->ok = json_is_true(v);
    if (!reply->ok) {
        if (want(reply->root, "error", is_string, "a string", "", err,
                 errlen) ||
            want(reply->root, "code", is_string, "a string", "", err, errlen))
            goto fail;
        code =
            code_parse(json_string_value(json_object_get(reply->root, "code")));
        if (code < 0) {
            snprintf(err, errlen, "the reply's code '%s' is unknown",
                     dip_ctl_quote(json_string_value(
                                       json_object_get(reply->root, "code")),
                                   40, q, sizeof(q)));
            goto fail;
        }
        reply->code = (dip_ctl_code_t)code;
        reply->error = json_string_value(json_object_get(reply->root, "error"));
        return 0;
    }
    if (decode_reply_fields(reply->root, cmd, err, errlen) < 0)
        goto fail;
    return 0;
fail:
    json_decref(reply->root);
    memset(reply, 0, sizeof(*reply));
    return -1;
}

void dip_ctl_reply_release(dip_ctl_reply_t *reply)
{
    if (reply == NULL)
        return;
    json_decref(reply->root);
    memset(reply, 0, sizeof(*reply));
}

static char *dump(json_t *o)
{
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

char *dip_ctl_reply_error(dip_ctl_code_t code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (code == DIP_CTL_OK || (int)code >= NCODES)
        code = DIP_CTL_EUNAVAIL;
    return dump(json_pack("{s:i, s:b, s:s, s:s}", "v", DIP_CTL_VERSION, "ok", 0,
                          "code", dip_ctl_code_name(code), "error", msg));
}

char *dip_ctl_reply_ok(json_t *body)
{
    json_t *o = json_pack("{s:i, s:b}", "v", DIP_CTL_VERSION, "ok", 1), *v;
    const char *key;
    char *s;
    if (o == NULL)
        return NULL;
    json_object_foreach(body, key, v)
    {
        if (strcmp(key, "v") == 0 || strcmp(key, "ok") == 0)
            continue;
        if (json_object_set(o, key, v) < 0) {
            json_decref(o);
            return NULL;
        }
    }
    s = dump(o);
    if (s && strlen(s) > DIP_CTL_MAX_REPLY) {
        free(s);
        s = dip_ctl_reply_error(DIP_CTL_EUNAVAIL,
                                "the reply would be larger than %u bytes",
                                DIP_CTL_MAX_REPLY);
    }
    return s;
}
