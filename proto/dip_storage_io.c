/*
 * dip_storage_io: the I/O half of object storage. For s3:// it builds
 * path-style URLs, signs each request with dip_sigv4 and runs it on one
 * reusable libcurl handle, feeding response bytes from libcurl's write
 * callback straight to the caller's sink; failures are classified as
 * transient (retried with jittered, doubling backoff, downloads resuming with
 * Range from the last byte delivered) or permanent (reported at once with a
 * sentence naming the key). For file:// it walks the key one directory at a
 * time without following symbolic links, so a key can never leave its
 * directory, and writes uploads through a temporary name and a rename.
 */
#include "dip_storage_io.h"
#include "dip_sigv4.h"
#include "dip_text.h"

#include <errno.h>
#include <fcntl.h>
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

#define IO_CHUNK (128 * 1024)
#define ERRBODY_MAX 2048
#define CONNECT_TIMEOUT_MS 10000L
/* A transfer that moves less than 1 byte/s for this long is stalled. */
#define STALL_S 60L

struct dip_storage {
    char *url;       /* as configured, for messages */
    int is_s3;       /* else file:// */
    char *root;      /* file: the directory */
    char *bucket;    /* s3: the bucket */
    char *origin;    /* s3: "http://host:port" */
    char *host;      /* s3: "host:port", sent and signed as Host */
    char *base_path; /* s3: the endpoint's own path prefix, "" or "/p" */
    char *region, *access_key, *secret_key;
    long attempts, backoff_ms;
    unsigned int rng; /* jitter */
    CURL *curl;
    int curl_global; /* curl_global_init succeeded */
};

/* Writes a sentence into err (which may be NULL) and returns rc. */
__attribute__((format(printf, 4, 5))) static int
say(int rc, char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    int want;
    if (err == NULL || errlen == 0)
        return rc;
    va_start(ap, fmt);
    want = vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    /* A sentence cut to fit may end inside a character: drop its bytes. */
    if (want >= 0 && (size_t)want >= errlen) {
        size_t n = errlen - 1;
        for (int k = 0; k < 3 && n > 0 && !dip_text_utf8_valid(err, n); k++)
            n--;
        err[n] = '\0';
    }
    return rc;
}

static char *dup_range(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* Splits "http[s]://authority[/path]" into origin, host and path prefix. */
static int parse_endpoint(dip_storage_t *self, const char *ep, char *err,
                          size_t errlen)
{
    const char *auth, *end;
    size_t plen;
    if (strncmp(ep, "http://", 7) == 0)
        auth = ep + 7;
    else if (strncmp(ep, "https://", 8) == 0)
        auth = ep + 8;
    else
        return say(-1, err, errlen,
                   "DEALIMPORT_S3_ENDPOINT: '%s' does not start with http:// "
                   "or https://",
                   ep);
    end = auth + strcspn(auth, "/?#");
    if (end == auth || memchr(auth, '@', (size_t)(end - auth)) ||
        strpbrk(end, "?#"))
        return say(-1, err, errlen,
                   "DEALIMPORT_S3_ENDPOINT: '%s' is not of the form "
                   "http[s]://host[:port][/path]",
                   ep);
    plen = strlen(end);
    while (plen > 0 && end[plen - 1] == '/')
        plen--;
    self->origin = dup_range(ep, (size_t)(end - ep));
    self->host = dup_range(auth, (size_t)(end - auth));
    self->base_path = dup_range(end, plen);
    if (!self->origin || !self->host || !self->base_path)
        return say(-1, err, errlen, "out of memory");
    for (char *p = self->host; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return 0;
}

static int init_s3(dip_storage_t *self, const dip_config_t *cfg, char *err,
                   size_t errlen)
{
    const char *b = cfg->storage_url + 5;
    size_t blen = strlen(b);
    char *def = NULL;
    int rc;
    while (blen > 0 && b[blen - 1] == '/')
        blen--;
    if (blen == 0 || blen > 255 ||
        strspn(b, "abcdefghijklmnopqrstuvwxyz"
                  "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                  "0123456789.-_") < blen)
        return say(-1, err, errlen,
                   "DEALIMPORT_STORAGE_URL: '%s' does not name a bucket "
                   "(s3://bucket, letters, digits, '.', '-', '_')",
                   cfg->storage_url);
    if (!cfg->s3_access_key || !*cfg->s3_access_key || !cfg->s3_secret_key ||
        !*cfg->s3_secret_key)
        return say(-1, err, errlen,
                   "DEALIMPORT_S3_ACCESS_KEY and DEALIMPORT_S3_SECRET_KEY "
                   "are required for '%s'",
                   cfg->storage_url);
    self->bucket = dup_range(b, blen);
    self->region = strdup(cfg->s3_region && *cfg->s3_region ? cfg->s3_region
                                                            : "us-east-1");
    self->access_key = strdup(cfg->s3_access_key);
    self->secret_key = strdup(cfg->s3_secret_key);
    if (!self->bucket || !self->region || !self->access_key ||
        !self->secret_key)
        return say(-1, err, errlen, "out of memory");
    if (cfg->s3_endpoint && *cfg->s3_endpoint)
        return parse_endpoint(self, cfg->s3_endpoint, err, errlen);
    if (asprintf(&def, "https://s3.%s.amazonaws.com", self->region) < 0)
        return say(-1, err, errlen, "out of memory");
    rc = parse_endpoint(self, def, err, errlen);
    free(def);
    return rc;
}

dip_storage_t *dip_storage_new(const dip_config_t *cfg, char *err,
                               size_t errlen)
{
    dip_storage_t *self = NULL;
    const char *url = cfg ? cfg->storage_url : NULL;

    if (url == NULL || *url == '\0') {
        say(-1, err, errlen, "DEALIMPORT_STORAGE_URL is not set");
        return NULL;
    }
    self = calloc(1, sizeof(*self));
    if (self == NULL || (self->url = strdup(url)) == NULL) {
        say(-1, err, errlen, "out of memory");
        goto fail;
    }
    self->attempts = cfg->row_attempts > 0 ? cfg->row_attempts : 1;
    self->backoff_ms = cfg->row_backoff_ms > 0 ? cfg->row_backoff_ms : 0;
    self->rng = (unsigned int)time(NULL) ^ (unsigned int)getpid() ^
                (unsigned int)(uintptr_t)self;
    if (strncmp(url, "file:///", 8) == 0) {
        size_t n = strlen(url + 7);
        while (n > 1 && url[7 + n - 1] == '/')
            n--;
        if ((self->root = dup_range(url + 7, n)) == NULL) {
            say(-1, err, errlen, "out of memory");
            goto fail;
        }
        return self;
    }
    if (strncmp(url, "s3://", 5) != 0) {
        say(-1, err, errlen,
            "DEALIMPORT_STORAGE_URL: '%s' is neither s3://bucket nor "
            "file:///dir",
            url);
        goto fail;
    }
    self->is_s3 = 1;
    if (init_s3(self, cfg, err, errlen) < 0)
        goto fail;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        say(-1, err, errlen, "cannot initialise libcurl");
        goto fail;
    }
    self->curl_global = 1;
    if ((self->curl = curl_easy_init()) == NULL) {
        say(-1, err, errlen, "cannot initialise libcurl");
        goto fail;
    }
    return self;
fail:
    dip_storage_destroy(&self);
    return NULL;
}

void dip_storage_destroy(dip_storage_t **self_p)
{
    dip_storage_t *self;
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
    free(self->url);
    free(self->root);
    free(self->bucket);
    free(self->origin);
    free(self->host);
    free(self->base_path);
    free(self->region);
    free(self->access_key);
    free(self);
    *self_p = NULL;
}

const char *dip_storage_url(const dip_storage_t *self)
{
    return self->url;
}

int dip_storage_check_key(const char *key, size_t key_len, char *err,
                          size_t errlen)
{
    size_t seg = 0;
    if (key == NULL || key_len == 0)
        return say(DIP_STORAGE_EINVAL, err, errlen, "file key is empty");
    /* Every sentence below quotes the key: it must be text first. */
    if (!dip_text_utf8_valid(key, key_len))
        return say(DIP_STORAGE_EINVAL, err, errlen,
                   "file key is not UTF-8 text");
    if (key_len > DIP_STORAGE_KEY_MAX)
        return say(DIP_STORAGE_EINVAL, err, errlen,
                   "file key '%.*s...' is longer than %d bytes",
                   (int)dip_text_cut(key, key_len, 40), key,
                   DIP_STORAGE_KEY_MAX);
    for (size_t i = 0; i < key_len; i++) {
        unsigned char c = (unsigned char)key[i];
        if (c == '\0')
            return say(DIP_STORAGE_EINVAL, err, errlen,
                       "file key '%s' contains a NUL byte", key);
        if (c < 0x20 || c == 0x7f)
            return say(DIP_STORAGE_EINVAL, err, errlen,
                       "file key '%.*s' contains a control character", (int)i,
                       key);
    }
    if (key[0] == '/' || key[0] == '\\')
        return say(DIP_STORAGE_EINVAL, err, errlen,
                   "file key '%s' is absolute; keys are relative to their "
                   "storage",
                   key);
    /* '\' counts as a separator too, so "a\..\..\b" cannot pass. */
    for (size_t i = 0; i <= key_len; i++) {
        if (i == key_len || key[i] == '/' || key[i] == '\\') {
            size_t n = i - seg;
            if ((n == 1 && key[seg] == '.') ||
                (n == 2 && key[seg] == '.' && key[seg + 1] == '.'))
                return say(DIP_STORAGE_EINVAL, err, errlen,
                           "file key '%s' has a '%.*s' path segment; keys "
                           "must stay inside their storage",
                           key, (int)n, key + seg);
            seg = i + 1;
        }
    }
    return DIP_STORAGE_OK;
}

/* --- backoff ------------------------------------------------------------ */

static void backoff_sleep(dip_storage_t *self, int failures)
{
    long long ms = self->backoff_ms;
    long long jitter;
    struct timespec ts;
    int shift = failures - 1 < 16 ? failures - 1 : 16;
    if (ms <= 0)
        return;
    ms <<= shift;
    if (ms > 600000)
        ms = 600000;
    /* +-25% so that workers that failed together do not retry together. */
    jitter = ms / 4;
    if (jitter > 0)
        ms += (long long)(rand_r(&self->rng) % (2 * jitter + 1)) - jitter;
    ts.tv_sec = (time_t)(ms / 1000);
    ts.tv_nsec = (long)(ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* --- file:// ------------------------------------------------------------ */

/* Opens the directory holding key's last segment, segment by segment with
 * O_NOFOLLOW, creating missing ones when `create`. Returns an fd (>= 0) and
 * sets *base to the last segment, or a negative errno. */
static int open_parent(const dip_storage_t *self, const char *key, int create,
                       const char **base)
{
    int dfd = open(self->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    const char *p = key, *slash;
    char seg[DIP_STORAGE_KEY_MAX + 1];
    if (dfd < 0)
        return -errno;
    while ((slash = strchr(p, '/')) != NULL) {
        size_t n = (size_t)(slash - p);
        int next;
        if (n > 0) {
            memcpy(seg, p, n);
            seg[n] = '\0';
            if (create && mkdirat(dfd, seg, 0755) < 0 && errno != EEXIST) {
                int e = errno;
                close(dfd);
                return -e;
            }
            next = openat(dfd, seg,
                          O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (next < 0) {
                int e = errno;
                struct stat st;
                /* O_NOFOLLOW|O_DIRECTORY says ENOTDIR for a link. */
                if (e == ENOTDIR &&
                    fstatat(dfd, seg, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                    S_ISLNK(st.st_mode))
                    e = ELOOP;
                close(dfd);
                return -e;
            }
            close(dfd);
            dfd = next;
        }
        p = slash + 1;
    }
    *base = p;
    return dfd;
}

static int file_errno(const dip_storage_t *self, const char *key, int e,
                      const char *doing, char *err, size_t errlen)
{
    if (e == ENOENT || e == ENOTDIR)
        return say(DIP_STORAGE_ENOTFOUND, err, errlen,
                   "file '%s' was not found in storage '%s'", key, self->url);
    if (e == EACCES || e == EPERM || e == EROFS)
        return say(DIP_STORAGE_EDENIED, err, errlen,
                   "access to file '%s' in storage '%s' was denied: %s", key,
                   self->url, strerror(e));
    if (e == ELOOP)
        return say(DIP_STORAGE_EINVAL, err, errlen,
                   "file '%s' in storage '%s' goes through a symbolic link, "
                   "which is not followed",
                   key, self->url);
    return say(DIP_STORAGE_EFAIL, err, errlen,
               "cannot %s file '%s' in storage '%s': %s", doing, key, self->url,
               strerror(e));
}

static int file_get(dip_storage_t *self, const char *key, uint64_t offset,
                    const dip_storage_sink_t *sink, char *err, size_t errlen)
{
    const char *base = NULL;
    int dfd = -1, fd = -1, rc;
    char *buf = NULL;
    struct stat st;
    uint64_t pos = offset;

    dfd = open_parent(self, key, 0, &base);
    if (dfd < 0) {
        if (dfd == -ENOENT && access(self->root, F_OK) < 0)
            rc = say(DIP_STORAGE_EFAIL, err, errlen,
                     "storage directory '%s' does not exist", self->root);
        else
            rc = file_errno(self, key, -dfd, "read", err, errlen);
        goto cleanup;
    }
    fd = openat(dfd, base, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        rc = file_errno(self, key, errno, "read", err, errlen);
        goto cleanup;
    }
    if (fstat(fd, &st) < 0) {
        rc = file_errno(self, key, errno, "read", err, errlen);
        goto cleanup;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = say(DIP_STORAGE_EFAIL, err, errlen,
                 "'%s' in storage '%s' is not a regular file", key, self->url);
        goto cleanup;
    }
    if (offset > (uint64_t)st.st_size) {
        rc = say(DIP_STORAGE_EFAIL, err, errlen,
                 "offset %" PRIu64 " is beyond the end of file '%s' in "
                 "storage '%s' (%" PRId64 " bytes)",
                 offset, key, self->url, (int64_t)st.st_size);
        goto cleanup;
    }
    if ((buf = malloc(IO_CHUNK)) == NULL) {
        rc = say(DIP_STORAGE_EFAIL, err, errlen, "out of memory");
        goto cleanup;
    }
    if (sink->size)
        sink->size(sink->arg, (int64_t)st.st_size);
    for (;;) {
        ssize_t n = pread(fd, buf, IO_CHUNK, (off_t)pos);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = file_errno(self, key, errno, "read", err, errlen);
            goto cleanup;
        }
        if (n == 0)
            break;
        pos += (uint64_t)n;
        if (sink->data(sink->arg, buf, (size_t)n) != 0) {
            rc = say(DIP_STORAGE_EABORT, err, errlen,
                     "download of file '%s' from storage '%s' was stopped by "
                     "its reader",
                     key, self->url);
            goto cleanup;
        }
    }
    rc = DIP_STORAGE_OK;
cleanup:
    free(buf);
    if (fd >= 0)
        close(fd);
    if (dfd >= 0)
        close(dfd);
    return rc;
}

static int write_all(int fd, const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        buf += w;
        n -= (size_t)w;
    }
    return 0;
}

static int file_put(dip_storage_t *self, const char *key, const char *path,
                    char *err, size_t errlen)
{
    const char *base = NULL;
    int dfd = -1, src = -1, tmp = -1, have_tmp = 0, rc, e;
    char tmpname[64];
    char *buf = NULL;

    src = open(path, O_RDONLY | O_CLOEXEC);
    if (src < 0) {
        rc = say(DIP_STORAGE_EFAIL, err, errlen, "cannot read '%s': %s", path,
                 strerror(errno));
        goto cleanup;
    }
    dfd = open_parent(self, key, 1, &base);
    if (dfd < 0) {
        if (dfd == -ENOENT && access(self->root, F_OK) < 0)
            rc = say(DIP_STORAGE_EFAIL, err, errlen,
                     "storage directory '%s' does not exist", self->root);
        else
            rc = file_errno(self, key, -dfd, "write", err, errlen);
        goto cleanup;
    }
    for (int tries = 0; tmp < 0 && tries < 100; tries++) {
        snprintf(tmpname, sizeof(tmpname), ".upload-%d-%08x.tmp", (int)getpid(),
                 (unsigned)rand_r(&self->rng));
        tmp =
            openat(dfd, tmpname,
                   O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (tmp < 0 && errno != EEXIST)
            break;
    }
    have_tmp = tmp >= 0;
    if (tmp < 0) {
        rc = file_errno(self, key, errno, "write", err, errlen);
        goto cleanup;
    }
    if ((buf = malloc(IO_CHUNK)) == NULL) {
        rc = say(DIP_STORAGE_EFAIL, err, errlen, "out of memory");
        goto cleanup;
    }
    for (;;) {
        ssize_t n = read(src, buf, IO_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = say(DIP_STORAGE_EFAIL, err, errlen, "cannot read '%s': %s",
                     path, strerror(errno));
            goto cleanup;
        }
        if (n == 0)
            break;
        if ((e = write_all(tmp, buf, (size_t)n)) < 0) {
            rc = file_errno(self, key, -e, "write", err, errlen);
            goto cleanup;
        }
    }
    /* Synced before the rename so that a crash leaves the old file or the
     * whole new one, never a torn one under the final name. */
    if (fsync(tmp) < 0 || close(tmp) < 0) {
        e = errno;
        tmp = -1;
        rc = file_errno(self, key, e, "write", err, errlen);
        goto cleanup;
    }
    tmp = -1;
    if (renameat(dfd, tmpname, dfd, base) < 0) {
        rc = file_errno(self, key, errno, "write", err, errlen);
        goto cleanup;
    }
    have_tmp = 0;
    (void)fsync(dfd);
    rc = DIP_STORAGE_OK;
cleanup:
    free(buf);
    if (tmp >= 0)
        close(tmp);
    if (have_tmp)
        (void)unlinkat(dfd, tmpname, 0);
    if (dfd >= 0)
        close(dfd);
    if (src >= 0)
        close(src);
    return rc;
}

static int file_delete(dip_storage_t *self, const char *key, char *err,
                       size_t errlen)
{
    const char *base = NULL;
    int dfd = open_parent(self, key, 0, &base), rc = DIP_STORAGE_OK;
    if (dfd < 0)
        return (dfd == -ENOENT || dfd == -ENOTDIR)
                   ? DIP_STORAGE_OK
                   : file_errno(self, key, -dfd, "delete", err, errlen);
    if (unlinkat(dfd, base, 0) < 0 && errno != ENOENT)
        rc = file_errno(self, key, errno, "delete", err, errlen);
    close(dfd);
    return rc;
}

/* --- s3:// -------------------------------------------------------------- */

/* The bounded start of an error response body, for its <Code>/<Message>. */
typedef struct {
    char buf[ERRBODY_MAX];
    size_t len;
} errbody_t;

static void errbody_add(errbody_t *b, const char *s, size_t n)
{
    size_t room = sizeof(b->buf) - 1 - b->len;
    if (n > room)
        n = room;
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = '\0';
}

static void xml_field(const errbody_t *b, const char *tag, char *out,
                      size_t outlen)
{
    char open[32], close_[32];
    const char *s, *e;
    out[0] = '\0';
    snprintf(open, sizeof(open), "<%s>", tag);
    snprintf(close_, sizeof(close_), "</%s>", tag);
    if ((s = strstr(b->buf, open)) == NULL)
        return;
    s += strlen(open);
    if ((e = strstr(s, close_)) == NULL)
        return;
    snprintf(out, outlen, "%.*s", (int)(e - s), s);
}

/* "HTTP 403 AccessDenied: Access Denied" */
static void http_reason(long status, const errbody_t *b, char *out,
                        size_t outlen)
{
    char code[128], msg[256];
    xml_field(b, "Code", code, sizeof(code));
    xml_field(b, "Message", msg, sizeof(msg));
    snprintf(out, outlen, "HTTP %ld%s%s%s%s", status, code[0] ? " " : "", code,
             msg[0] ? ": " : "", msg);
}

static int transient_curl(CURLcode c)
{
    switch (c) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_PARTIAL_FILE:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_HTTP3:
        return 1;
    default:
        return 0;
    }
}

static int transient_http(long status)
{
    return status == 408 || status == 429 || status >= 500;
}

static curl_socket_t open_cloexec_socket(void *arg, curlsocktype purpose,
                                         struct curl_sockaddr *addr)
{
    (void)arg;
    (void)purpose;
    return socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
}

/* Resets the handle (keeping its connections) to this module's defaults. */
static void s3_begin(dip_storage_t *self, char *curlerr)
{
    CURL *c = self->curl;
    curl_easy_reset(c);
    curlerr[0] = '\0';
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curlerr);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, STALL_S);
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

/* Signs and runs one request for key on the handle that s3_begin prepared
 * and the caller gave its callbacks. `extra` are further headers to sign and
 * send. */
static CURLcode s3_perform(dip_storage_t *self, const char *method,
                           const char *key, const dip_sigv4_header_t *extra,
                           size_t nextra, const char *payload_hash,
                           long *status)
{
    dip_sigv4_header_t hs[8];
    dip_sigv4_credentials_t cred = {self->access_key, self->secret_key,
                                    self->region, "s3"};
    dip_sigv4_request_t req = {0};
    struct curl_slist *list = NULL;
    char *enc = NULL, *path = NULL, *url = NULL, *auth = NULL;
    char date[DIP_SIGV4_DATE_LEN];
    CURLcode res = CURLE_OUT_OF_MEMORY;
    size_t n = 0;

    *status = 0;
    if (nextra > sizeof(hs) / sizeof(hs[0]) - 1)
        return CURLE_BAD_FUNCTION_ARGUMENT;
    hs[n++] = (dip_sigv4_header_t){"x-amz-content-sha256", payload_hash};
    for (size_t i = 0; i < nextra; i++)
        hs[n++] = extra[i];
    enc = dip_sigv4_uri_encode(key, strlen(key), 1);
    if (enc == NULL ||
        asprintf(&path, "%s/%s/%s", self->base_path, self->bucket, enc) < 0) {
        path = NULL;
        goto cleanup;
    }
    if (asprintf(&url, "%s%s", self->origin, path) < 0) {
        url = NULL;
        goto cleanup;
    }
    req.method = method;
    req.host = self->host;
    req.path = path;
    req.headers = hs;
    req.nheaders = n;
    req.payload_hash = payload_hash;
    req.when = time(NULL);
    if (dip_sigv4_amz_date(req.when, date) < 0 ||
        (auth = dip_sigv4_authorization(&req, &cred, NULL)) == NULL)
        goto cleanup;
    if (add_header(&list, "Host", self->host) < 0 ||
        add_header(&list, "x-amz-date", date) < 0 ||
        add_header(&list, "Authorization", auth) < 0)
        goto cleanup;
    for (size_t i = 0; i < n; i++)
        if (add_header(&list, hs[i].name, hs[i].value) < 0)
            goto cleanup;
    /* No "Expect: 100-continue" round trip before uploads. */
    if ((list = curl_slist_append(list, "Expect:")) == NULL)
        goto cleanup;
    curl_easy_setopt(self->curl, CURLOPT_URL, url);
    curl_easy_setopt(self->curl, CURLOPT_HTTPHEADER, list);
    if (strcmp(method, "GET") != 0 && strcmp(method, "PUT") != 0)
        curl_easy_setopt(self->curl, CURLOPT_CUSTOMREQUEST, method);
    res = curl_easy_perform(self->curl);
    curl_easy_getinfo(self->curl, CURLINFO_RESPONSE_CODE, status);
    /* The list and the caller's error buffer must outlive the transfer
     * only: the handle keeps neither. */
    curl_easy_setopt(self->curl, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(self->curl, CURLOPT_ERRORBUFFER, NULL);
cleanup:
    curl_slist_free_all(list);
    free(enc);
    free(path);
    free(url);
    free(auth);
    return res;
}

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
    char etag[256];
    errbody_t body;
} get_ctx_t;

static int ieq_prefix(const char *line, size_t n, const char *name)
{
    size_t l = strlen(name);
    return n >= l && strncasecmp(line, name, l) == 0;
}

static void report_size(get_ctx_t *g, int64_t total)
{
    if (!g->size_reported) {
        g->size_reported = 1;
        if (g->sink->size)
            g->sink->size(g->sink->arg, total);
    }
}

static size_t get_header_cb(char *buf, size_t size, size_t nitems, void *arg)
{
    get_ctx_t *g = arg;
    size_t n = size * nitems;
    char line[512];
    size_t l = n < sizeof(line) - 1 ? n : sizeof(line) - 1;
    memcpy(line, buf, l);
    line[l] = '\0';
    while (l > 0 && (line[l - 1] == '\r' || line[l - 1] == '\n'))
        line[--l] = '\0';

    if (ieq_prefix(line, l, "HTTP/")) {
        const char *sp = strchr(line, ' ');
        g->status = sp ? strtol(sp + 1, NULL, 10) : 0;
        g->clen = g->range_first = g->range_total = -1;
        g->body.len = 0;
        g->body.buf[0] = '\0';
    } else if (ieq_prefix(line, l, "content-length:")) {
        g->clen = strtoll(line + 15, NULL, 10);
    } else if (ieq_prefix(line, l, "content-range:")) {
        /* "bytes 10-99/100" or "bytes * /100" */
        const char *p = strchr(line, ' '), *slash = strrchr(line, '/');
        while (p && *p == ' ')
            p++;
        if (p && strncasecmp(p, "bytes ", 6) == 0 && slash) {
            p += 6;
            g->range_first =
                (*p >= '0' && *p <= '9') ? strtoll(p, NULL, 10) : -1;
            g->range_total = slash[1] >= '0' && slash[1] <= '9'
                                 ? strtoll(slash + 1, NULL, 10)
                                 : -1;
        }
    } else if (ieq_prefix(line, l, "etag:") && g->status / 100 == 2 &&
               g->etag[0] == '\0') {
        const char *v = line + 5;
        while (*v == ' ' || *v == '\t')
            v++;
        /* An ETag too long to keep is not used (a cut one would make
         * every resume fail its If-Match). */
        if (strlen(v) < sizeof(g->etag))
            memcpy(g->etag, v, strlen(v) + 1);
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
        report_size(g, g->total);
    }
    return n;
}

static size_t get_write_cb(char *buf, size_t size, size_t nitems, void *arg)
{
    get_ctx_t *g = arg;
    size_t n = size * nitems, skip = 0;
    if (g->status / 100 != 2) {
        errbody_add(&g->body, buf, n);
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
static int s3_get_try(dip_storage_t *self, const char *key, get_ctx_t *g,
                      char *reason, size_t rlen, char *err, size_t errlen)
{
    dip_sigv4_header_t extra[2];
    size_t nextra = 0;
    char range[64], curlerr[CURL_ERROR_SIZE];
    CURLcode res;
    long status = 0;

    s3_begin(self, curlerr);
    if (g->delivered > 0) {
        snprintf(range, sizeof(range), "bytes=%" PRIu64 "-", g->delivered);
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
    res = s3_perform(self, "GET", key, extra, nextra,
                     DIP_SIGV4_UNSIGNED_PAYLOAD, &status);
    if (g->aborted)
        return say(DIP_STORAGE_EABORT, err, errlen,
                   "download of file '%s' from storage '%s' was stopped by "
                   "its reader",
                   key, self->url);
    if (g->bad_range)
        return say(DIP_STORAGE_EFAIL, err, errlen,
                   "storage '%s' answered a range of file '%s' that does not "
                   "start at byte %" PRIu64,
                   self->url, key, g->delivered);
    if (res != CURLE_OK) {
        snprintf(reason, rlen, "%s",
                 curlerr[0] ? curlerr : curl_easy_strerror(res));
        if (transient_curl(res))
            return TRY_TRANSIENT;
        return say(DIP_STORAGE_EFAIL, err, errlen,
                   "cannot download file '%s' from storage '%s': %s", key,
                   self->url, reason);
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
    http_reason(status, &g->body, reason, rlen);
    if (status == 416) {
        /* The size comes as "Content-Range: bytes * /N" or in the body. */
        char actual[32];
        int64_t size = g->range_total;
        xml_field(&g->body, "ActualObjectSize", actual, sizeof(actual));
        if (size < 0 && actual[0] >= '0' && actual[0] <= '9')
            size = strtoll(actual, NULL, 10);
        if (size >= 0 && g->delivered == (uint64_t)size) {
            /* Asked from the very end: nothing left, which is success. */
            g->total = size;
            report_size(g, g->total);
            return TRY_DONE;
        }
    }
    if (status == 416)
        return say(DIP_STORAGE_EFAIL, err, errlen,
                   "offset %" PRIu64 " is beyond the end of file '%s' in "
                   "storage '%s' (%s)",
                   g->delivered, key, self->url, reason);
    if (status == 404)
        return say(DIP_STORAGE_ENOTFOUND, err, errlen,
                   "file '%s' was not found in storage '%s' (%s)", key,
                   self->url, reason);
    if (status == 401 || status == 403)
        return say(DIP_STORAGE_EDENIED, err, errlen,
                   "access to file '%s' in storage '%s' was denied (%s)", key,
                   self->url, reason);
    if (status == 412)
        return say(DIP_STORAGE_EFAIL, err, errlen,
                   "file '%s' in storage '%s' was replaced during the "
                   "download (%s)",
                   key, self->url, reason);
    if (transient_http(status))
        return TRY_TRANSIENT;
    return say(DIP_STORAGE_EFAIL, err, errlen,
               "cannot download file '%s' from storage '%s' (%s)", key,
               self->url, reason);
}

static int s3_get(dip_storage_t *self, const char *key, uint64_t offset,
                  const dip_storage_sink_t *sink, char *err, size_t errlen)
{
    get_ctx_t *g = calloc(1, sizeof(*g));
    char reason[512] = "";
    int failures = 0, rc;
    if (g == NULL)
        return say(DIP_STORAGE_EFAIL, err, errlen, "out of memory");
    g->sink = sink;
    g->delivered = offset;
    g->total = -1;
    for (;;) {
        uint64_t before = g->delivered;
        rc = s3_get_try(self, key, g, reason, sizeof(reason), err, errlen);
        if (rc != TRY_TRANSIENT)
            break;
        /* Progress earns the download its attempts back: a long transfer
         * over a flaky link is cut often but always moves on. */
        if (g->delivered > before)
            failures = 0;
        if (++failures >= self->attempts) {
            rc = say(DIP_STORAGE_ETRANSIENT, err, errlen,
                     "could not download file '%s' from storage '%s' after "
                     "%d attempts: %s",
                     key, self->url, failures, reason);
            break;
        }
        backoff_sleep(self, failures);
    }
    free(g);
    return rc == TRY_DONE ? DIP_STORAGE_OK : rc;
}

static size_t read_file_cb(char *buf, size_t size, size_t nitems, void *arg)
{
    FILE *f = arg;
    size_t n = fread(buf, 1, size * nitems, f);
    if (n == 0 && ferror(f))
        return CURL_READFUNC_ABORT;
    return n;
}

static size_t collect_cb(char *buf, size_t size, size_t nitems, void *arg)
{
    errbody_add(arg, buf, size * nitems);
    return size * nitems;
}

static int hash_file(FILE *f, char out[65])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char digest[32], buf[64 * 1024];
    unsigned int dlen = 0;
    size_t n;
    int rc = -1;
    if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
        goto cleanup;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        if (EVP_DigestUpdate(md, buf, n) != 1)
            goto cleanup;
    if (ferror(f) || EVP_DigestFinal_ex(md, digest, &dlen) != 1 || dlen != 32)
        goto cleanup;
    for (unsigned i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", digest[i]);
    rc = 0;
cleanup:
    EVP_MD_CTX_free(md);
    return rc;
}

/* PUT or DELETE with the shared retry loop; `f` is the body or NULL. */
static int s3_simple(dip_storage_t *self, const char *method, const char *key,
                     FILE *f, int64_t size, const char *payload_hash, char *err,
                     size_t errlen)
{
    const char *doing = f ? "upload" : "delete";
    errbody_t *body = calloc(1, sizeof(*body));
    char reason[512] = "", curlerr[CURL_ERROR_SIZE];
    int failures = 0, rc;
    if (body == NULL)
        return say(DIP_STORAGE_EFAIL, err, errlen, "out of memory");
    for (;;) {
        CURLcode res;
        long status = 0;
        body->len = 0;
        body->buf[0] = '\0';
        s3_begin(self, curlerr);
        curl_easy_setopt(self->curl, CURLOPT_WRITEFUNCTION, collect_cb);
        curl_easy_setopt(self->curl, CURLOPT_WRITEDATA, body);
        if (f) {
            rewind(f);
            curl_easy_setopt(self->curl, CURLOPT_UPLOAD, 1L);
            curl_easy_setopt(self->curl, CURLOPT_READFUNCTION, read_file_cb);
            curl_easy_setopt(self->curl, CURLOPT_READDATA, f);
            curl_easy_setopt(self->curl, CURLOPT_INFILESIZE_LARGE,
                             (curl_off_t)size);
        }
        res = s3_perform(self, method, key, NULL, 0, payload_hash, &status);
        if (res != CURLE_OK) {
            snprintf(reason, sizeof(reason), "%s",
                     curlerr[0] ? curlerr : curl_easy_strerror(res));
            if (!transient_curl(res)) {
                rc = say(DIP_STORAGE_EFAIL, err, errlen,
                         "cannot %s file '%s' in storage '%s': %s", doing, key,
                         self->url, reason);
                break;
            }
        } else {
            http_reason(status, body, reason, sizeof(reason));
            if (status / 100 == 2 ||
                (status == 404 && f == NULL &&
                 strstr(body->buf, "NoSuchBucket") == NULL)) {
                rc = DIP_STORAGE_OK;
                break;
            }
            if (status == 404) {
                rc = say(DIP_STORAGE_ENOTFOUND, err, errlen,
                         "cannot %s file '%s': storage '%s' has no bucket "
                         "'%s' (%s)",
                         doing, key, self->url, self->bucket, reason);
                break;
            }
            if (status == 401 || status == 403) {
                rc = say(DIP_STORAGE_EDENIED, err, errlen,
                         "storage '%s' denied the %s of file '%s' (%s)",
                         self->url, doing, key, reason);
                break;
            }
            if (!transient_http(status)) {
                rc = say(DIP_STORAGE_EFAIL, err, errlen,
                         "cannot %s file '%s' in storage '%s' (%s)", doing, key,
                         self->url, reason);
                break;
            }
        }
        if (++failures >= self->attempts) {
            rc = say(DIP_STORAGE_ETRANSIENT, err, errlen,
                     "could not %s file '%s' in storage '%s' after %d "
                     "attempts: %s",
                     doing, key, self->url, failures, reason);
            break;
        }
        backoff_sleep(self, failures);
    }
    free(body);
    return rc;
}

static int s3_put(dip_storage_t *self, const char *key, const char *path,
                  char *err, size_t errlen)
{
    FILE *f = fopen(path, "rbe");
    struct stat st;
    char hash[65];
    int rc;
    if (f == NULL)
        return say(DIP_STORAGE_EFAIL, err, errlen, "cannot read '%s': %s", path,
                   strerror(errno));
    if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode)) {
        rc = say(DIP_STORAGE_EFAIL, err, errlen,
                 "cannot upload '%s': not a regular file", path);
        goto cleanup;
    }
    if (hash_file(f, hash) < 0) {
        rc = say(DIP_STORAGE_EFAIL, err, errlen, "cannot read '%s': %s", path,
                 strerror(errno));
        goto cleanup;
    }
    rc = s3_simple(self, "PUT", key, f, (int64_t)st.st_size, hash, err, errlen);
cleanup:
    fclose(f);
    return rc;
}

/* --- the API ------------------------------------------------------------ */

int dip_storage_get(dip_storage_t *self, const char *key, uint64_t offset,
                    const dip_storage_sink_t *sink, char *err, size_t errlen)
{
    int rc;
    if (self == NULL || sink == NULL || sink->data == NULL)
        return say(DIP_STORAGE_EINVAL, err, errlen,
                   "dip_storage_get needs a storage and a sink");
    rc = dip_storage_check_key(key, key ? strlen(key) : 0, err, errlen);
    if (rc < 0)
        return rc;
    return self->is_s3 ? s3_get(self, key, offset, sink, err, errlen)
                       : file_get(self, key, offset, sink, err, errlen);
}

int dip_storage_put_file(dip_storage_t *self, const char *key, const char *path,
                         char *err, size_t errlen)
{
    int rc;
    if (self == NULL || path == NULL)
        return say(DIP_STORAGE_EINVAL, err, errlen,
                   "dip_storage_put_file needs a storage and a path");
    rc = dip_storage_check_key(key, key ? strlen(key) : 0, err, errlen);
    if (rc < 0)
        return rc;
    return self->is_s3 ? s3_put(self, key, path, err, errlen)
                       : file_put(self, key, path, err, errlen);
}

int dip_storage_delete(dip_storage_t *self, const char *key, char *err,
                       size_t errlen)
{
    int rc;
    if (self == NULL)
        return say(DIP_STORAGE_EINVAL, err, errlen,
                   "dip_storage_delete needs a storage");
    rc = dip_storage_check_key(key, key ? strlen(key) : 0, err, errlen);
    if (rc < 0)
        return rc;
    return self->is_s3 ? s3_simple(self, "DELETE", key, NULL, 0,
                                   DIP_SIGV4_EMPTY_SHA256, err, errlen)
                       : file_delete(self, key, err, errlen);
}
