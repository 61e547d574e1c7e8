/*
 * dip_storage_s3_io: S3 over libcurl. One request runner signs and sends a
 * request (method, key, query, a body from memory or from a region of a
 * file) and keeps what the answer says (status, ETag, the bounded start of
 * its body); one retry loop around it classifies failures with the pure
 * rules of dip_storage as transient (retried with jittered, doubling
 * backoff) or permanent (a sentence naming the key at once). Downloads use
 * their own callbacks, which feed the sink straight from libcurl's buffer
 * and resume with Range from the last byte delivered. Uploads never hold
 * the object in memory: a single PUT or each part is hashed in one pass over
 * the file and sent in a second, read with pread. Temporary credentials'
 * session token (dip_s3_token: fixed, or a rotated file's) is signed and
 * sent as x-amz-security-token with every request.
 */
#include "dip_storage_s3_io.h"
#include "dip_text.h"
#include "dip_s3_token.h"
#include "dip_sigv4.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>

/* Enough for an error body's Code and Message, and for the answer to an
 * initiate (Bucket, a key of up to 1024 bytes escaped, UploadId). */
#define BODY_MAX 8192
#define HASH_CHUNK (64 * 1024)
#define CONNECT_TIMEOUT_MS 10000L
/* A stop is looked for this often while a retry waits. */
#define STOP_POLL_MS 200L

struct dip_storage_s3 {
    char *url;    /* as configured, for messages */
    char *bucket; /* the bucket */
    dip_storage_endpoint_t ep;
    char *region, *access_key, *secret_key;
    dip_s3_token_t *token; /* temporary credentials' session token */
    long attempts, backoff_ms;
    int64_t mp_threshold, mp_part;
    unsigned int rng; /* jitter */
    CURL *curl;
    int curl_global; /* curl_global_init succeeded */
    /* the slowest transfer that is not stalled: low_bps bytes/s averaged
     * over low_s seconds */
    long low_bps, low_s;
    int (*stop)(void *arg); /* dip_storage_set_stop's, or NULL */
    void *stop_arg;
    int stopped; /* stop said yes during this call's requests or waits */
};

dip_storage_s3_t *dip_storage_s3_new(const dip_config_t *cfg, char *err,
                                     size_t errlen)
{
    dip_storage_s3_t *self = calloc(1, sizeof(*self));
    char *def = NULL;
    int rc;
    if (self == NULL || (self->url = strdup(cfg->storage_url)) == NULL) {
        dip_text_say(-1, err, errlen, "out of memory");
        goto fail;
    }
    self->attempts = cfg->row_attempts > 0 ? cfg->row_attempts : 1;
    self->backoff_ms = cfg->row_backoff_ms > 0 ? cfg->row_backoff_ms : 0;
    self->mp_threshold = DIP_STORAGE_MULTIPART_THRESHOLD;
    self->mp_part = DIP_STORAGE_PART_SIZE;
    self->low_bps = DIP_STORAGE_STALL_BPS;
    self->low_s = DIP_STORAGE_STALL_S;
    self->rng = (unsigned int)time(NULL) ^ (unsigned int)getpid() ^
                (unsigned int)(uintptr_t)self;
    if ((self->bucket =
             dip_storage_parse_bucket(cfg->storage_url, err, errlen)) == NULL)
        goto fail;
    if (!cfg->s3_access_key || !*cfg->s3_access_key || !cfg->s3_secret_key ||
        !*cfg->s3_secret_key) {
        dip_text_say(-1, err, errlen,
                     "DEALIMPORT_S3_ACCESS_KEY and DEALIMPORT_S3_SECRET_KEY "
                     "are required for '%s'",
                     cfg->storage_url);
        goto fail;
    }
    self->region = strdup(cfg->s3_region && *cfg->s3_region ? cfg->s3_region
                                                            : "us-east-1");
    self->access_key = strdup(cfg->s3_access_key);
    self->secret_key = strdup(cfg->s3_secret_key);
    if (!self->region || !self->access_key || !self->secret_key) {
        dip_text_say(-1, err, errlen, "out of memory");
        goto fail;
    }
    if ((self->token = dip_s3_token_new(cfg->s3_session_token,
                                        cfg->s3_session_token_file)) == NULL) {
        dip_text_say(-1, err, errlen, "out of memory");
        goto fail;
    }
    if (cfg->s3_endpoint && *cfg->s3_endpoint) {
        rc = dip_storage_parse_endpoint(cfg->s3_endpoint, &self->ep, err,
                                        errlen);
    } else if (asprintf(&def, "https://s3.%s.amazonaws.com", self->region) <
               0) {
        def = NULL;
        rc = dip_text_say(-1, err, errlen, "out of memory");
    } else {
        rc = dip_storage_parse_endpoint(def, &self->ep, err, errlen);
    }
    free(def);
    if (rc < 0)
        goto fail;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        dip_text_say(-1, err, errlen, "cannot initialise libcurl");
        goto fail;
    }
    self->curl_global = 1;
    if ((self->curl = curl_easy_init()) == NULL) {
        dip_text_say(-1, err, errlen, "cannot initialise libcurl");
        goto fail;
    }
    return self;
fail:
    dip_storage_s3_destroy(&self);
    return NULL;
}

void dip_storage_s3_destroy(dip_storage_s3_t **self_p)
{
    dip_storage_s3_t *self;
    if (self_p == NULL || *self_p == NULL)
        return;
    self = *self_p;
    if (self->curl)
        curl_easy_cleanup(self->curl);
    if (self->curl_global)
        curl_global_cleanup();
    if (self->secret_key) {
        memset(self->secret_key, 0, strlen(self->secret_key));
        free(self->secret_key);
    }
    dip_s3_token_destroy(&self->token);
    free(self->url);
    free(self->bucket);
    dip_storage_endpoint_release(&self->ep);
    free(self->region);
    free(self->access_key);
    free(self);
    *self_p = NULL;
}

void dip_storage_s3_set_multipart(dip_storage_s3_t *self, int64_t threshold,
                                  int64_t part_size)
{
    self->mp_threshold =
        threshold > 0 ? threshold : DIP_STORAGE_MULTIPART_THRESHOLD;
    self->mp_part = part_size > 0 ? part_size : DIP_STORAGE_PART_SIZE;
}

void dip_storage_s3_set_stall(dip_storage_s3_t *self, long bytes_per_s,
                              long seconds)
{
    self->low_bps = bytes_per_s > 0 ? bytes_per_s : DIP_STORAGE_STALL_BPS;
    self->low_s = seconds > 0 ? seconds : DIP_STORAGE_STALL_S;
}

void dip_storage_s3_set_stop(dip_storage_s3_t *self, int (*stop)(void *arg),
                             void *arg)
{
    self->stop = stop;
    self->stop_arg = arg;
}

static int stop_asked(dip_storage_s3_t *self)
{
    if (!self->stopped && self->stop && self->stop(self->stop_arg))
        self->stopped = 1;
    return self->stopped;
}

/* Waits before the next try, in slices, so that a stop asked meanwhile
 * ends the wait. -1 when it did. */
static int backoff_sleep(dip_storage_s3_t *self, int failures)
{
    long ms =
        dip_storage_backoff_ms(self->backoff_ms, failures, rand_r(&self->rng));
    while (ms > 0) {
        long slice = ms < STOP_POLL_MS ? ms : STOP_POLL_MS;
        struct timespec ts = {(time_t)(slice / 1000),
                              (slice % 1000) * 1000000L};
        if (stop_asked(self))
            return -1;
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
            ;
        ms -= slice;
    }
    return stop_asked(self) ? -1 : 0;
}

/* libcurl calls this about once a second, and more often while bytes
 * move, even when nothing arrives: a stop reaches a request that waits
 * on a silent server. */
static int xferinfo_cb(void *arg, curl_off_t dltotal, curl_off_t dlnow,
                       curl_off_t ultotal, curl_off_t ulnow)
{
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    return stop_asked(arg) ? 1 : 0;
}

/* --- one request -------------------------------------------------------- */

/* The bounded start of a response body. */
typedef struct {
    char buf[BODY_MAX];
    size_t len;
} body_t;

static void body_add(body_t *b, const char *s, size_t n)
{
    size_t room = sizeof(b->buf) - 1 - b->len;
    if (n > room)
        n = room;
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = '\0';
}

static curl_socket_t open_cloexec_socket(void *arg, curlsocktype purpose,
                                         struct curl_sockaddr *addr)
{
    (void)arg;
    (void)purpose;
    return socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
}

/* Resets the handle (keeping its connections) to this module's defaults. */
static void s3_begin(dip_storage_s3_t *self, char *curlerr)
{
    CURL *c = self->curl;
    curl_easy_reset(c);
    curlerr[0] = '\0';
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curlerr);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
    /* A server that accepts and never answers, or answers a few bytes a
     * second, is cut after low_s seconds under low_bps; the try is then
     * transient and retried within the attempts. */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, self->low_bps);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, self->low_s);
    if (self->stop) {
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, xferinfo_cb);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, self);
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    }
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, open_cloexec_socket);
}

static int add_header(struct curl_slist **list, const char *name,
                      const char *value)
{
    char *line = NULL;
    struct curl_slist *n;
    if (asprintf(&line, "%s: %s", name, value) < 0)
        return -1;
    n = curl_slist_append(*list, line);
    free(line);
    if (n == NULL)
        return -1;
    *list = n;
    return 0;
}

/* Signs and runs one request for key (with query, may be NULL) on the
 * handle that s3_begin prepared and the caller gave its callbacks. `extra`
 * are further headers to sign and send; content_type, when not NULL, is
 * sent unsigned. */
static CURLcode s3_perform(dip_storage_s3_t *self, const char *method,
                           const char *key, const char *query,
                           const dip_sigv4_header_t *extra, size_t nextra,
                           const char *payload_hash, const char *content_type,
                           long *status)
{
    dip_sigv4_header_t hs[8];
    dip_sigv4_credentials_t cred = {self->access_key, self->secret_key,
                                    self->region, "s3"};
    dip_sigv4_request_t req = {0};
    struct curl_slist *list = NULL;
    char *path = NULL, *url = NULL, *auth = NULL;
    char date[DIP_SIGV4_DATE_LEN];
    CURLcode res = CURLE_OUT_OF_MEMORY;
    const char *token;
    int no_token;
    size_t n = 0;

    *status = 0;
    if (nextra > sizeof(hs) / sizeof(hs[0]) - 1)
        return CURLE_BAD_FUNCTION_ARGUMENT;
    token = dip_s3_token_get(self->token, &no_token);
    if (no_token)
        return CURLE_READ_ERROR;
    hs[n++] = (dip_sigv4_header_t){"x-amz-content-sha256", payload_hash};
    for (size_t i = 0; i < nextra; i++)
        hs[n++] = extra[i];
    path = dip_storage_object_path(self->ep.base_path, self->bucket, key);
    if (path == NULL)
        goto cleanup;
    if (asprintf(&url, "%s%s%s%s", self->ep.origin, path,
                 query && *query ? "?" : "", query ? query : "") < 0) {
        url = NULL;
        goto cleanup;
    }
    req.method = method;
    req.host = self->ep.host;
    req.path = path;
    req.query = query;
    req.headers = hs;
    req.nheaders = n;
    req.payload_hash = payload_hash;
    req.when = time(NULL);
    req.security_token = token;
    if (dip_sigv4_amz_date(req.when, date) < 0 ||
        (auth = dip_sigv4_authorization(&req, &cred, NULL)) == NULL)
        goto cleanup;
    if (add_header(&list, "Host", self->ep.host) < 0 ||
        add_header(&list, "x-amz-date", date) < 0 ||
        add_header(&list, "Authorization", auth) < 0 ||
        (token && add_header(&list, "x-amz-security-token", token) < 0))
        goto cleanup;
    for (size_t i = 0; i < n; i++)
        if (add_header(&list, hs[i].name, hs[i].value) < 0)
            goto cleanup;
    if (content_type && add_header(&list, "Content-Type", content_type) < 0)
        goto cleanup;
    /* No "Expect: 100-continue" round trip before uploads. */
    if ((list = curl_slist_append(list, "Expect:")) == NULL)
        goto cleanup;
    curl_easy_setopt(self->curl, CURLOPT_URL, url);
    curl_easy_setopt(self->curl, CURLOPT_HTTPHEADER, list);
    if (strcmp(method, "GET") != 0 && strcmp(method, "PUT") != 0 &&
        strcmp(method, "POST") != 0 && strcmp(method, "HEAD") != 0)
        curl_easy_setopt(self->curl, CURLOPT_CUSTOMREQUEST, method);
    res = curl_easy_perform(self->curl);
    curl_easy_getinfo(self->curl, CURLINFO_RESPONSE_CODE, status);
    /* The list and the caller's error buffer must outlive the transfer
     * only: the handle keeps neither. */
    curl_easy_setopt(self->curl, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(self->curl, CURLOPT_ERRORBUFFER, NULL);
cleanup:
    curl_slist_free_all(list);
    free(path);
    free(url);
    free(auth);
    return res;
}

static int ieq_prefix(const char *line, size_t n, const char *name)
{
    size_t l = strlen(name);
    return n >= l && strncasecmp(line, name, l) == 0;
}

/* A header line without its CR LF, cut to fit line. */
static size_t header_line(const char *buf, size_t n, char *line, size_t cap)
{
    size_t l = n < cap - 1 ? n : cap - 1;
    memcpy(line, buf, l);
    line[l] = '\0';
    while (l > 0 && (line[l - 1] == '\r' || line[l - 1] == '\n'))
        line[--l] = '\0';
    return l;
}

/* The value of "etag:" in line, or NULL. */
static const char *etag_value(const char *line, size_t l)
{
    const char *v;
    if (!ieq_prefix(line, l, "etag:"))
        return NULL;
    v = line + 5;
    while (*v == ' ' || *v == '\t')
        v++;
    return v;
}

/* --- requests with a body from a file or memory, and their retries ----- */

typedef struct {
    const char *method, *key, *query;
    const char *doing; /* "upload", "delete": for sentences */
    int fd;            /* body: bytes [off, off + len) of fd, or -1 */
    int64_t off, len;
    const char *mem; /* body: mem_len bytes, or NULL */
    size_t mem_len;
    const char *payload_hash;
    const char *content_type;
    /* CompleteMultipartUpload may answer 200 with an <Error> body. */
    int error_in_200;
    /* DELETE: 404 for the object (not the bucket) is success. */
    int missing_ok;
} call_t;

typedef struct {
    long status;
    char etag[128];
    body_t body;
    /* the body being sent from a file */
    int fd;
    int64_t start, pos, end;
    int read_errno;
    int tries; /* attempts made, this one included */
} reply_t;

static size_t reply_header_cb(char *buf, size_t size, size_t nitems, void *arg)
{
    reply_t *r = arg;
    size_t n = size * nitems, l;
    char line[512];
    const char *v;
    l = header_line(buf, n, line, sizeof(line));
    if (ieq_prefix(line, l, "HTTP/")) {
        const char *sp = strchr(line, ' ');
        r->status = sp ? strtol(sp + 1, NULL, 10) : 0;
        r->etag[0] = '\0';
        r->body.len = 0;
        r->body.buf[0] = '\0';
    } else if ((v = etag_value(line, l)) != NULL && strlen(v) < sizeof(r->etag))
        memcpy(r->etag, v, strlen(v) + 1);
    return n;
}

static size_t reply_body_cb(char *buf, size_t size, size_t nitems, void *arg)
{
    body_add(&((reply_t *)arg)->body, buf, size * nitems);
    return size * nitems;
}

static size_t read_region_cb(char *buf, size_t size, size_t nitems, void *arg)
{
    reply_t *r = arg;
    size_t want = size * nitems;
    ssize_t n;
    if (r->pos >= r->end)
        return 0;
    if ((int64_t)want > r->end - r->pos)
        want = (size_t)(r->end - r->pos);
    do
        n = pread(r->fd, buf, want, (off_t)r->pos);
    while (n < 0 && errno == EINTR);
    if (n <= 0) {
        /* The file shrank under us, or cannot be read. */
        r->read_errno = n < 0 ? errno : EIO;
        return CURL_READFUNC_ABORT;
    }
    r->pos += n;
    return (size_t)n;
}

/* libcurl rewinds the body when it resends a request on a fresh connection
 * (a kept-alive one the server had closed); without this it would fail. */
static int seek_region_cb(void *arg, curl_off_t offset, int origin)
{
    reply_t *r = arg;
    if (origin != SEEK_SET || offset < 0 || offset > r->end - r->start)
        return CURL_SEEKFUNC_CANTSEEK;
    r->pos = r->start + offset;
    return CURL_SEEKFUNC_OK;
}

/* Runs c with retries. On success returns DIP_STORAGE_OK with r holding
 * the answer; otherwise a DIP_STORAGE_E* code with a sentence in err. */
static int s3_call(dip_storage_s3_t *self, const call_t *c, reply_t *r,
                   char *err, size_t errlen)
{
    char reason[512] = "", curlerr[CURL_ERROR_SIZE];
    int failures = 0;
    self->stopped = 0;
    for (;;) {
        CURLcode res;
        long status = 0;
        memset(r, 0, sizeof(*r));
        r->fd = -1;
        r->tries = failures + 1;
        s3_begin(self, curlerr);
        curl_easy_setopt(self->curl, CURLOPT_HEADERFUNCTION, reply_header_cb);
        curl_easy_setopt(self->curl, CURLOPT_HEADERDATA, r);
        curl_easy_setopt(self->curl, CURLOPT_WRITEFUNCTION, reply_body_cb);
        curl_easy_setopt(self->curl, CURLOPT_WRITEDATA, r);
        if (c->fd >= 0) {
            r->fd = c->fd;
            r->start = r->pos = c->off;
            r->end = c->off + c->len;
            curl_easy_setopt(self->curl, CURLOPT_UPLOAD, 1L);
            curl_easy_setopt(self->curl, CURLOPT_READFUNCTION, read_region_cb);
            curl_easy_setopt(self->curl, CURLOPT_READDATA, r);
            curl_easy_setopt(self->curl, CURLOPT_SEEKFUNCTION, seek_region_cb);
            curl_easy_setopt(self->curl, CURLOPT_SEEKDATA, r);
            curl_easy_setopt(self->curl, CURLOPT_INFILESIZE_LARGE,
                             (curl_off_t)c->len);
        } else if (strcmp(c->method, "HEAD") == 0) {
            curl_easy_setopt(self->curl, CURLOPT_NOBODY, 1L);
        } else if (c->mem) {
            curl_easy_setopt(self->curl, CURLOPT_POST, 1L);
            curl_easy_setopt(self->curl, CURLOPT_POSTFIELDS, c->mem);
            curl_easy_setopt(self->curl, CURLOPT_POSTFIELDSIZE_LARGE,
                             (curl_off_t)c->mem_len);
        }
        res = s3_perform(self, c->method, c->key, c->query, NULL, 0,
                         c->payload_hash, c->content_type, &status);
        if (res == CURLE_ABORTED_BY_CALLBACK && self->stopped)
            return dip_text_say(
                DIP_STORAGE_EABORT, err, errlen,
                "the %s of file '%s' in storage '%s' was stopped", c->doing,
                c->key, self->url);
        if (r->read_errno)
            return dip_text_say(DIP_STORAGE_EFAIL, err, errlen,
                                "cannot read the upload of file '%s': %s",
                                c->key, strerror(r->read_errno));
        if (res != CURLE_OK) {
            snprintf(reason, sizeof(reason), "%s",
                     curlerr[0] ? curlerr : curl_easy_strerror(res));
            if (!dip_storage_transient_curl((int)res))
                return dip_text_say(DIP_STORAGE_EFAIL, err, errlen,
                                    "cannot %s file '%s' in storage '%s': %s",
                                    c->doing, c->key, self->url, reason);
        } else {
            r->status = status;
            dip_storage_http_reason(status, r->body.buf, reason,
                                    sizeof(reason));
            if (status / 100 == 2 && c->error_in_200 &&
                strstr(r->body.buf, "<Error>") != NULL) {
                /* S3 found the error after sending 200: retry as AWS
                 * advises, unless the error says the request is wrong. */
                char code[128];
                dip_storage_xml_field(r->body.buf, "Code", code, sizeof(code));
                dip_storage_http_reason(500, r->body.buf, reason,
                                        sizeof(reason));
                if (strcmp(code, "InternalError") != 0 &&
                    strcmp(code, "SlowDown") != 0 &&
                    strcmp(code, "ServiceUnavailable") != 0)
                    return dip_text_say(
                        DIP_STORAGE_EFAIL, err, errlen,
                        "cannot %s file '%s' in storage '%s' (%s)", c->doing,
                        c->key, self->url, reason);
            } else if (status / 100 == 2 ||
                       (status == 404 && c->missing_ok &&
                        strstr(r->body.buf, "NoSuchBucket") == NULL)) {
                return DIP_STORAGE_OK;
            } else if (status == 404 &&
                       strstr(r->body.buf, "NoSuchBucket") != NULL) {
                return dip_text_say(
                    DIP_STORAGE_ENOTFOUND, err, errlen,
                    "cannot %s file '%s': storage '%s' has no bucket "
                    "'%s' (%s)",
                    c->doing, c->key, self->url, self->bucket, reason);
            } else if (status == 401 || status == 403) {
                return dip_text_say(
                    DIP_STORAGE_EDENIED, err, errlen,
                    "storage '%s' denied the %s of file '%s' (%s)", self->url,
                    c->doing, c->key, reason);
            } else if (!dip_storage_transient_http(status)) {
                return dip_text_say(
                    status == 404 ? DIP_STORAGE_ENOTFOUND : DIP_STORAGE_EFAIL,
                    err, errlen, "cannot %s file '%s' in storage '%s' (%s)",
                    c->doing, c->key, self->url, reason);
            }
        }
        if (++failures >= self->attempts)
            return dip_text_say(
                DIP_STORAGE_ETRANSIENT, err, errlen,
                "could not %s file '%s' in storage '%s' after %d "
                "attempts: %s",
                c->doing, c->key, self->url, failures, reason);
        if (backoff_sleep(self, failures) < 0)
            return dip_text_say(
                DIP_STORAGE_EABORT, err, errlen,
                "the %s of file '%s' in storage '%s' was stopped", c->doing,
                c->key, self->url);
    }
}

/* --- downloads ---------------------------------------------------------- */

/* One download's state across its tries. */
typedef struct {
    const dip_storage_sink_t *sink;
    uint64_t delivered;  /* absolute offset of the next byte the sink wants */
    uint64_t resp_pos;   /* absolute offset of the next body byte */
    long status;         /* of the response being read */
    int64_t clen;        /* its Content-Length, -1 */
    int64_t range_first; /* its Content-Range start, -1 */
    int64_t range_total; /* its Content-Range total, -1 */
    int64_t total;       /* the object's size once known, -1 */
    int size_reported;
    int aborted;
    int bad_range;
    /* The object's identity as the first success response gave it: its
     * ETag ("" when it sent none) and size (-1 when unknown); every later
     * response is compared with it before its body is read. */
    int have_first;
    char etag[256];
    int64_t first_total;
    char resp_etag[256]; /* the response being read's; "\x01" when too long */
    int changed;         /* a response of another object was refused */
    char changed_why[384];
    body_t body;
} get_ctx_t;

static void report_size(get_ctx_t *g, int64_t total)
{
    if (!g->size_reported) {
        g->size_reported = 1;
        if (g->sink->size)
            g->sink->size(g->sink->arg, total);
        if (g->sink->identity)
            g->sink->identity(g->sink->arg, g->etag, -1, -1);
    }
}

/* A decimal header value, -1 unless it is all digits and fits. */
static int64_t header_size(const char *v)
{
    int64_t n = 0;
    while (*v == ' ' || *v == '\t')
        v++;
    if (*v < '0' || *v > '9')
        return -1;
    for (; *v >= '0' && *v <= '9'; v++) {
        if (n > (INT64_MAX - 9) / 10)
            return -1;
        n = n * 10 + (*v - '0');
    }
    while (*v == ' ' || *v == '\t')
        v++;
    return *v == '\0' ? n : -1;
}

/* Whether the success response whose headers just ended is of the object
 * the first one was: the same ETag (a response without one, after a first
 * with one, cannot show it is) and the same size where both are known.
 * The first response sets what is compared. If-Match already asks S3 for
 * this; a server or proxy that ignores it is caught here, before a byte of
 * the other object reaches the sink. */
static int same_object(get_ctx_t *g)
{
    int64_t total = g->status == 206 ? g->range_total : g->clen;
    const char *why = NULL;
    if (!g->have_first) {
        g->have_first = 1;
        /* An ETag too long to keep is not used (a cut one would make
         * every resume fail its If-Match). */
        snprintf(g->etag, sizeof(g->etag), "%s",
                 g->resp_etag[0] == '\x01' ? "" : g->resp_etag);
        g->first_total = total;
        return 1;
    }
    if (g->etag[0] != '\0' && strcmp(g->etag, g->resp_etag) != 0)
        why = g->resp_etag[0] == '\0' ? "a response without an ETag" : "ETag";
    else if (g->first_total >= 0 && total >= 0 && total != g->first_total)
        why = "size";
    if (why == NULL)
        return 1;
    g->changed = 1;
    if (strcmp(why, "size") == 0)
        snprintf(g->changed_why, sizeof(g->changed_why),
                 "its size was %" PRId64
                 " bytes, a resumed response says %" PRId64,
                 g->first_total, total);
    else if (strcmp(why, "ETag") == 0)
        snprintf(g->changed_why, sizeof(g->changed_why),
                 "its ETag was %.120s, a resumed response has %.120s", g->etag,
                 g->resp_etag[0] == '\x01' ? "a longer one" : g->resp_etag);
    else
        snprintf(g->changed_why, sizeof(g->changed_why),
                 "its ETag was %.120s, a resumed response has none", g->etag);
    return 0;
}

static size_t get_header_cb(char *buf, size_t size, size_t nitems, void *arg)
{
    get_ctx_t *g = arg;
    size_t n = size * nitems;
    char line[512];
    size_t l = header_line(buf, n, line, sizeof(line));
    const char *v;

    if (ieq_prefix(line, l, "HTTP/")) {
        const char *sp = strchr(line, ' ');
        g->status = sp ? strtol(sp + 1, NULL, 10) : 0;
        g->clen = g->range_first = g->range_total = -1;
        g->resp_etag[0] = '\0';
        g->body.len = 0;
        g->body.buf[0] = '\0';
    } else if (ieq_prefix(line, l, "content-length:")) {
        g->clen = header_size(line + 15);
    } else if (ieq_prefix(line, l, "content-range:")) {
        if (dip_storage_parse_content_range(line + 14, &g->range_first,
                                            &g->range_total) < 0)
            g->range_first = g->range_total = -1;
    } else if ((v = etag_value(line, l)) != NULL && g->status / 100 == 2) {
        /* An ETag too long to keep is never sent as If-Match (a cut one
         * would fail every resume), but still differs from a short one. */
        if (strlen(v) < sizeof(g->resp_etag))
            memcpy(g->resp_etag, v, strlen(v) + 1);
        else
            memcpy(g->resp_etag, "\x01", 2);
    } else if (l == 0 && g->status / 100 == 2) {
        /* End of a success response's headers: where its body starts. */
        if (g->status == 206) {
            if (g->range_first < 0 || (uint64_t)g->range_first > g->delivered) {
                g->bad_range = 1;
                return 0;
            }
            g->resp_pos = (uint64_t)g->range_first;
            if (g->range_total >= 0)
                g->total = g->range_total;
        } else {
            g->resp_pos = 0;
            if (g->clen >= 0)
                g->total = g->clen;
        }
        if (!same_object(g))
            return 0;
        report_size(g, g->total);
    }
    return n;
}

static size_t get_write_cb(char *buf, size_t size, size_t nitems, void *arg)
{
    get_ctx_t *g = arg;
    size_t n = size * nitems, skip = 0;
    if (g->status / 100 != 2) {
        body_add(&g->body, buf, n);
        return n;
    }
    report_size(g, g->total);
    /* A server that ignored Range resends what the sink already has. */
    if (g->resp_pos < g->delivered) {
        uint64_t behind = g->delivered - g->resp_pos;
        skip = behind < n ? (size_t)behind : n;
    }
    g->resp_pos += n;
    if (skip < n) {
        if (g->sink->data(g->sink->arg, buf + skip, n - skip) != 0) {
            g->aborted = 1;
            return 0;
        }
        g->delivered += n - skip;
    }
    return n;
}

enum { TRY_DONE = 1, TRY_TRANSIENT = 2 };

/* One GET from g->delivered. Returns TRY_DONE, TRY_TRANSIENT with the reason
 * in reason, or a DIP_STORAGE_E* code with the sentence in err. */
static int s3_get_try(dip_storage_s3_t *self, const char *key, get_ctx_t *g,
                      char *reason, size_t rlen, char *err, size_t errlen)
{
    dip_sigv4_header_t extra[2];
    size_t nextra = 0;
    char range[64], curlerr[CURL_ERROR_SIZE];
    CURLcode res;
    long status = 0;

    s3_begin(self, curlerr);
    if (g->delivered > 0) {
        dip_storage_range_header(g->delivered, range, sizeof(range));
        extra[nextra++] = (dip_sigv4_header_t){"Range", range};
        if (g->etag[0])
            extra[nextra++] = (dip_sigv4_header_t){"If-Match", g->etag};
    }
    g->status = 0;
    g->bad_range = 0;
    curl_easy_setopt(self->curl, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(self->curl, CURLOPT_HEADERFUNCTION, get_header_cb);
    curl_easy_setopt(self->curl, CURLOPT_HEADERDATA, g);
    curl_easy_setopt(self->curl, CURLOPT_WRITEFUNCTION, get_write_cb);
    curl_easy_setopt(self->curl, CURLOPT_WRITEDATA, g);
    res = s3_perform(self, "GET", key, NULL, extra, nextra,
                     DIP_SIGV4_UNSIGNED_PAYLOAD, NULL, &status);
    if (g->changed)
        return dip_text_say(
            DIP_STORAGE_ECHANGED, err, errlen,
            "file '%s' in storage '%s' changed during the download: %s", key,
            self->url, g->changed_why);
    if (res == CURLE_ABORTED_BY_CALLBACK && self->stopped)
        return dip_text_say(
            DIP_STORAGE_EABORT, err, errlen,
            "the download of file '%s' from storage '%s' was stopped", key,
            self->url);
    if (g->aborted)
        return dip_text_say(
            DIP_STORAGE_EABORT, err, errlen,
            "download of file '%s' from storage '%s' was stopped by "
            "its reader",
            key, self->url);
    if (g->bad_range)
        return dip_text_say(
            DIP_STORAGE_EFAIL, err, errlen,
            "storage '%s' answered a range of file '%s' that does not "
            "start at byte %" PRIu64,
            self->url, key, g->delivered);
    if (res != CURLE_OK) {
        snprintf(reason, rlen, "%s",
                 curlerr[0] ? curlerr : curl_easy_strerror(res));
        if (dip_storage_transient_curl((int)res))
            return TRY_TRANSIENT;
        return dip_text_say(DIP_STORAGE_EFAIL, err, errlen,
                            "cannot download file '%s' from storage '%s': %s",
                            key, self->url, reason);
    }
    if (status / 100 == 2) {
        if (g->total >= 0 && g->delivered < (uint64_t)g->total) {
            snprintf(reason, rlen,
                     "the transfer ended at byte %" PRIu64 " of %" PRId64,
                     g->delivered, g->total);
            return TRY_TRANSIENT;
        }
        report_size(g, g->total);
        return TRY_DONE;
    }
    dip_storage_http_reason(status, g->body.buf, reason, rlen);
    if (status == 416) {
        /* The size comes as "Content-Range: bytes * /N" or in the body. */
        char actual[32];
        int64_t size = g->range_total;
        dip_storage_xml_field(g->body.buf, "ActualObjectSize", actual,
                              sizeof(actual));
        if (size < 0 && actual[0] >= '0' && actual[0] <= '9')
            size = strtoll(actual, NULL, 10);
        if (size >= 0 && g->delivered == (uint64_t)size) {
            /* Asked from the very end: nothing left, which is success. */
            g->total = size;
            report_size(g, g->total);
            return TRY_DONE;
        }
        return dip_text_say(DIP_STORAGE_EFAIL, err, errlen,
                            "offset %" PRIu64
                            " is beyond the end of file '%s' in "
                            "storage '%s' (%s)",
                            g->delivered, key, self->url, reason);
    }
    if (status == 404)
        return dip_text_say(DIP_STORAGE_ENOTFOUND, err, errlen,
                            "file '%s' was not found in storage '%s' (%s)", key,
                            self->url, reason);
    if (status == 401 || status == 403)
        return dip_text_say(
            DIP_STORAGE_EDENIED, err, errlen,
            "access to file '%s' in storage '%s' was denied (%s)", key,
            self->url, reason);
    if (status == 412)
        return dip_text_say(DIP_STORAGE_ECHANGED, err, errlen,
                            "file '%s' in storage '%s' was replaced during the "
                            "download (%s)",
                            key, self->url, reason);
    if (dip_storage_transient_http(status))
        return TRY_TRANSIENT;
    return dip_text_say(DIP_STORAGE_EFAIL, err, errlen,
                        "cannot download file '%s' from storage '%s' (%s)", key,
                        self->url, reason);
}

int dip_storage_s3_get(dip_storage_s3_t *self, const char *key, uint64_t offset,
                       const dip_storage_sink_t *sink, char *err, size_t errlen)
{
    get_ctx_t *g = calloc(1, sizeof(*g));
    char reason[512] = "";
    int failures = 0, rc;
    if (g == NULL)
        return dip_text_say(DIP_STORAGE_EFAIL, err, errlen, "out of memory");
    g->sink = sink;
    g->delivered = offset;
    g->total = -1;
    self->stopped = 0;
    for (;;) {
        uint64_t before = g->delivered;
        rc = s3_get_try(self, key, g, reason, sizeof(reason), err, errlen);
        if (rc != TRY_TRANSIENT)
            break;
        /* Progress earns the download its attempts back: a long transfer
         * over a flaky link is cut often but always moves on. A try that
         * moved less than a stall's worth (a trickle, cut by the
         * low-speed limit) does not: it uses up its attempt. */
        if (g->delivered - before >= (uint64_t)(self->low_bps * self->low_s))
            failures = 0;
        if (++failures >= self->attempts) {
            rc = dip_text_say(
                DIP_STORAGE_ETRANSIENT, err, errlen,
                "could not download file '%s' from storage '%s' after "
                "%d attempts: %s",
                key, self->url, failures, reason);
            break;
        }
        if (backoff_sleep(self, failures) < 0) {
            rc = dip_text_say(DIP_STORAGE_EABORT, err, errlen,
                              "the download of file '%s' from storage '%s' was "
                              "stopped",
                              key, self->url);
            break;
        }
    }
    free(g);
    return rc == TRY_DONE ? DIP_STORAGE_OK : rc;
}

/* --- uploads ------------------------------------------------------------ */

/* Lowercase hex SHA-256 of bytes [off, off + len) of fd. */
static int hash_region(int fd, int64_t off, int64_t len, char out[65])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char digest[32], *buf = malloc(HASH_CHUNK);
    unsigned int dlen = 0;
    int rc = -EIO;
    if (md == NULL || buf == NULL ||
        EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
        goto cleanup;
    while (len > 0) {
        size_t want = len < HASH_CHUNK ? (size_t)len : HASH_CHUNK;
        ssize_t n = pread(fd, buf, want, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? -errno : -EIO;
            goto cleanup;
        }
        if (EVP_DigestUpdate(md, buf, (size_t)n) != 1)
            goto cleanup;
        off += n;
        len -= n;
    }
    if (EVP_DigestFinal_ex(md, digest, &dlen) != 1 || dlen != 32)
        goto cleanup;
    for (unsigned i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", digest[i]);
    rc = 0;
cleanup:
    free(buf);
    EVP_MD_CTX_free(md);
    return rc;
}

static int s3_put_single(dip_storage_s3_t *self, const char *key, int fd,
                         int64_t size, char *err, size_t errlen)
{
    char hash[65];
    reply_t *r = malloc(sizeof(*r));
    call_t c = {0};
    int rc;
    if (r == NULL)
        return dip_text_say(DIP_STORAGE_EFAIL, err, errlen, "out of memory");
    if ((rc = hash_region(fd, 0, size, hash)) < 0) {
        free(r);
        return dip_text_say(DIP_STORAGE_EFAIL, err, errlen,
                            "cannot read the upload of file '%s': %s", key,
                            strerror(-rc));
    }
    c.method = "PUT";
    c.key = key;
    c.doing = "upload";
    c.fd = fd;
    c.off = 0;
    c.len = size;
    c.payload_hash = hash;
    rc = s3_call(self, &c, r, err, errlen);
    free(r);
    return rc;
}

/* Aborts the upload; appends what happened to the sentence in err. */
static void s3_abort(dip_storage_s3_t *self, const char *key,
                     const char *upload_id, reply_t *r, char *err,
                     size_t errlen)
{
    char *q = dip_storage_upload_query(upload_id, 0), why[512] = "";
    call_t c = {0};
    size_t used = err ? strlen(err) : 0;
    int rc;
    c.method = "DELETE";
    c.key = key;
    c.query = q;
    c.doing = "abort the upload of";
    c.fd = -1;
    c.payload_hash = DIP_SIGV4_EMPTY_SHA256;
    c.missing_ok = 1; /* already gone */
    rc = q ? s3_call(self, &c, r, why, sizeof(why)) : DIP_STORAGE_EFAIL;
    if (err && used < errlen) {
        if (rc == DIP_STORAGE_OK)
            snprintf(err + used, errlen - used, "; the upload was aborted");
        else
            snprintf(err + used, errlen - used,
                     "; aborting the upload failed too: %s",
                     q ? why : "out of memory");
    }
    free(q);
}

/* 1 when key now holds the object of a completed multipart upload of
 * nparts parts: S3 gives such an object the ETag "<hex>-<nparts>". A retried
 * CompleteMultipartUpload answers NoSuchUpload when the first one went
 * through but its answer was lost. */
static int completed_before(dip_storage_s3_t *self, const char *key,
                            size_t nparts)
{
    reply_t *r = malloc(sizeof(*r));
    call_t c = {0};
    char suffix[32], why[512];
    size_t el, sl;
    int ok = 0;
    if (r == NULL)
        return 0;
    c.method = "HEAD";
    c.key = key;
    c.doing = "check the upload of";
    c.fd = -1;
    c.payload_hash = DIP_SIGV4_EMPTY_SHA256;
    snprintf(suffix, sizeof(suffix), "-%zu\"", nparts);
    if (s3_call(self, &c, r, why, sizeof(why)) == DIP_STORAGE_OK) {
        el = strlen(r->etag);
        sl = strlen(suffix);
        ok = el > sl && strcmp(r->etag + el - sl, suffix) == 0;
    }
    free(r);
    return ok;
}

static int s3_put_multipart(dip_storage_s3_t *self, const char *key, int fd,
                            int64_t size, char *err, size_t errlen)
{
    int64_t part = dip_storage_part_size(size, self->mp_part);
    dip_storage_part_t *parts = NULL;
    reply_t *r = malloc(sizeof(*r));
    char upload_id[1024] = "", hash[65], *q = NULL, *xml = NULL;
    call_t c = {0};
    size_t nparts = 0;
    int rc;

    if (r == NULL) {
        rc = dip_text_say(DIP_STORAGE_EFAIL, err, errlen, "out of memory");
        goto cleanup;
    }
    if (part < 0) {
        rc = dip_text_say(DIP_STORAGE_EFAIL, err, errlen,
                          "cannot upload file '%s': %" PRId64
                          " bytes is more than S3 "
                          "takes in one object",
                          key, size);
        goto cleanup;
    }
    nparts = (size_t)((size + part - 1) / part);
    if ((parts = calloc(nparts, sizeof(*parts))) == NULL) {
        rc = dip_text_say(DIP_STORAGE_EFAIL, err, errlen, "out of memory");
        goto cleanup;
    }

    c.method = "POST";
    c.key = key;
    c.query = "uploads";
    c.doing = "upload";
    c.fd = -1;
    c.mem = "";
    c.mem_len = 0;
    c.payload_hash = DIP_SIGV4_EMPTY_SHA256;
    c.content_type = "application/octet-stream";
    if ((rc = s3_call(self, &c, r, err, errlen)) != DIP_STORAGE_OK)
        goto cleanup;
    dip_storage_xml_field(r->body.buf, "UploadId", upload_id,
                          sizeof(upload_id));
    dip_storage_xml_unescape(upload_id);
    if (upload_id[0] == '\0') {
        rc = dip_text_say(
            DIP_STORAGE_EFAIL, err, errlen,
            "cannot upload file '%s' to storage '%s': the answer to "
            "starting a multipart upload has no UploadId",
            key, self->url);
        goto cleanup;
    }

    for (size_t i = 0; i < nparts; i++) {
        int64_t off = (int64_t)i * part;
        int64_t len = size - off < part ? size - off : part;
        free(q);
        q = dip_storage_upload_query(upload_id, (int)(i + 1));
        if (q == NULL) {
            rc = dip_text_say(DIP_STORAGE_EFAIL, err, errlen, "out of memory");
            goto fail;
        }
        if ((rc = hash_region(fd, off, len, hash)) < 0) {
            rc = dip_text_say(DIP_STORAGE_EFAIL, err, errlen,
                              "cannot read the upload of file '%s': %s", key,
                              strerror(-rc));
            goto fail;
        }
        memset(&c, 0, sizeof(c));
        c.method = "PUT";
        c.key = key;
        c.query = q;
        c.doing = "upload";
        c.fd = fd;
        c.off = off;
        c.len = len;
        c.payload_hash = hash;
        if ((rc = s3_call(self, &c, r, err, errlen)) != DIP_STORAGE_OK)
            goto fail;
        if (r->etag[0] == '\0') {
            rc = dip_text_say(
                DIP_STORAGE_EFAIL, err, errlen,
                "cannot upload file '%s' to storage '%s': part %zu was "
                "answered without an ETag",
                key, self->url, i + 1);
            goto fail;
        }
        parts[i].number = (int)(i + 1);
        memcpy(parts[i].etag, r->etag, sizeof(parts[i].etag));
    }

    if ((xml = dip_storage_complete_xml(parts, nparts)) == NULL) {
        rc = dip_text_say(DIP_STORAGE_EFAIL, err, errlen, "out of memory");
        goto fail;
    }
    free(q);
    q = dip_storage_upload_query(upload_id, 0);
    if (q == NULL) {
        rc = dip_text_say(DIP_STORAGE_EFAIL, err, errlen, "out of memory");
        goto fail;
    }
    dip_sigv4_sha256_hex(xml, strlen(xml), hash);
    memset(&c, 0, sizeof(c));
    c.method = "POST";
    c.key = key;
    c.query = q;
    c.doing = "upload";
    c.fd = -1;
    c.mem = xml;
    c.mem_len = strlen(xml);
    c.payload_hash = hash;
    c.content_type = "application/xml";
    c.error_in_200 = 1;
    rc = s3_call(self, &c, r, err, errlen);
    if (rc == DIP_STORAGE_ENOTFOUND && r->tries > 1 &&
        strstr(r->body.buf, "NoSuchUpload") != NULL &&
        completed_before(self, key, nparts)) {
        /* An earlier try completed the upload and its answer was lost. */
        rc = DIP_STORAGE_OK;
        if (err && errlen)
            err[0] = '\0';
    }
    if (rc != DIP_STORAGE_OK)
        goto fail;
    goto cleanup;
fail:
    s3_abort(self, key, upload_id, r, err, errlen);
cleanup:
    free(q);
    free(xml);
    free(parts);
    free(r);
    return rc;
}

int dip_storage_s3_put_fd(dip_storage_s3_t *self, const char *key, int fd,
                          char *err, size_t errlen)
{
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
        return dip_text_say(
            DIP_STORAGE_EFAIL, err, errlen,
            "cannot upload file '%s': its source is not a regular file", key);
    if ((int64_t)st.st_size > self->mp_threshold)
        return s3_put_multipart(self, key, fd, (int64_t)st.st_size, err,
                                errlen);
    return s3_put_single(self, key, fd, (int64_t)st.st_size, err, errlen);
}

int dip_storage_s3_delete(dip_storage_s3_t *self, const char *key, char *err,
                          size_t errlen)
{
    reply_t *r = malloc(sizeof(*r));
    call_t c = {0};
    int rc;
    if (r == NULL)
        return dip_text_say(DIP_STORAGE_EFAIL, err, errlen, "out of memory");
    c.method = "DELETE";
    c.key = key;
    c.doing = "delete";
    c.fd = -1;
    c.payload_hash = DIP_SIGV4_EMPTY_SHA256;
    c.missing_ok = 1;
    rc = s3_call(self, &c, r, err, errlen);
    free(r);
    return rc;
}
