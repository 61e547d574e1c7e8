/*
 * ctl_client: a REQ socket per command, a poll with the command's deadline
 * for the answer, and one place that turns outcomes into exit statuses. A
 * missing ipc socket file fails at once (nothing can answer); anything else
 * that does not answer in time is 69, so a script can tell "the supervisor
 * refused" (1) from "no supervisor" (69).
 */
#include "ctl_client.h"
#include "dip_curve_io.h"
#include "dip_runtime.h"
#include "dip_time.h"

#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

const char ctl_common_help[] =
    "  --json             one JSON object on stdout (the supervisor's reply)\n"
    "  --timeout SECONDS  how long to wait for the supervisor (default 5)\n"
    "  --connect ENDPOINT the supervisor's control endpoint (default\n"
    "                     ipc://$DEALIMPORT_RUNTIME_DIR/control.ipc)\n"
    "  --server-key FILE  over tcp://: the supervisor's public key\n"
    "  --key FILE         over tcp://: this client's secret key\n"
    "  --help             this help\n";

struct ctl_client {
    void *zctx, *sock;
    char endpoint[4200];
    long timeout_ms;
};

void ctl_opts_init(ctl_opts_t *o, const dip_config_t *cfg)
{
    memset(o, 0, sizeof(*o));
    o->cfg = cfg;
    o->timeout_ms = CTL_DEFAULT_TIMEOUT_MS;
}

int ctl_opts_apply(ctl_opts_t *o, int c, const char *arg)
{
    switch (c) {
    case 'j':
        o->json = 1;
        return 1;
    case 'T': {
        char *end = NULL;
        double s;
        errno = 0;
        s = strtod(arg, &end);
        if (errno || end == arg || *end != '\0' || !(s > 0) || s > 86400) {
            fprintf(stderr,
                    "dealimportctl: --timeout '%s' is not a number of seconds "
                    "from 0.001 to 86400\n",
                    arg);
            return -1;
        }
        o->timeout_ms = (long)(s * 1000.0 + 0.5);
        if (o->timeout_ms < 1)
            o->timeout_ms = 1;
        return 1;
    }
    case 'c':
        o->connect = arg;
        return 1;
    case 'S':
        o->server_key = arg;
        return 1;
    case 'K':
        o->client_key = arg;
        return 1;
    default:
        return 0;
    }
}

int ctl_getopt(ctl_opts_t *o, int argc, char **argv, const struct option *opts)
{
    int c, rc;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        rc = ctl_opts_apply(o, c, optarg);
        if (rc < 0)
            return CTL_GETOPT_BAD;
        if (rc == 0)
            return c;
    }
    return -1;
}

static int curve_setup(ctl_client_t *self, const ctl_opts_t *o, char *err,
                       size_t errlen)
{
    const char *sk = o->server_key, *ck = o->client_key;
    char server[DIP_CURVE_KEY_LEN + 1], secret[DIP_CURVE_KEY_LEN + 1];
    char public[DIP_CURVE_KEY_LEN + 1], msg[600];
    int rc = -1;
    if (sk == NULL && o->cfg)
        sk = o->cfg->control_curve_server_key_file;
    if (ck == NULL && o->cfg)
        ck = o->cfg->control_curve_client_key_file;
    if (sk == NULL || ck == NULL) {
        snprintf(err, errlen,
                 "'%s' needs CURVE keys: --server-key FILE (the supervisor's "
                 "public key) and --key FILE (this client's secret key), or "
                 "DEALIMPORT_CONTROL_CURVE_SERVER_KEY_FILE and "
                 "DEALIMPORT_CONTROL_CURVE_CLIENT_KEY_FILE",
                 self->endpoint);
        return -1;
    }
    if (dip_curve_read_key(sk, "the supervisor's public key", server, msg,
                           sizeof(msg)) < 0 ||
        dip_curve_read_key(ck, "a secret key", secret, msg, sizeof(msg)) < 0) {
        snprintf(err, errlen, "%s", msg);
        goto cleanup;
    }
    if (dip_curve_public(secret, public) < 0 ||
        zmq_setsockopt(self->sock, ZMQ_CURVE_SERVERKEY, server,
                       DIP_CURVE_KEY_LEN + 1) ||
        zmq_setsockopt(self->sock, ZMQ_CURVE_PUBLICKEY, public,
                       DIP_CURVE_KEY_LEN + 1) ||
        zmq_setsockopt(self->sock, ZMQ_CURVE_SECRETKEY, secret,
                       DIP_CURVE_KEY_LEN + 1)) {
        snprintf(err, errlen, "cannot set up CURVE: %s",
                 zmq_strerror(zmq_errno()));
        goto cleanup;
    }
    rc = 0;
cleanup:
    memset(secret, 0, sizeof(secret));
    return rc;
}

/* Access denied, in one sentence that says who may: the owner and group of
 * the socket, or of its folder when the folder is what keeps this user
 * out. */
static void denied(const char *path, char *err, size_t errlen)
{
    char dir[PATH_MAX], user[64], owner[64], group[64];
    struct passwd *pw;
    struct group *gr;
    struct stat st;
    snprintf(dir, sizeof(dir), "%s", path);
    if (strrchr(dir, '/'))
        *strrchr(dir, '/') = '\0';
    if (stat(path, &st) < 0 && stat(dir, &st) < 0)
        memset(&st, 0, sizeof(st));
    pw = getpwuid(getuid());
    snprintf(user, sizeof(user), "%s", pw ? pw->pw_name : "?");
    pw = getpwuid(st.st_uid);
    snprintf(owner, sizeof(owner), "%s", pw ? pw->pw_name : "?");
    gr = getgrgid(st.st_gid);
    snprintf(group, sizeof(group), "%s", gr ? gr->gr_name : "?");
    snprintf(err, errlen,
             "access denied: user '%s' may not use the control socket '%s'; "
             "its owner '%s' and the members of group '%s' may (add the user "
             "to that group and log in again)",
             user, path, owner, group);
}

const char *ctl_client_failure_code(int exit_code)
{
    switch (exit_code) {
    case CTL_EXIT_CONFIG:
        return "configuration";
    case CTL_EXIT_NOPERM:
        return "access_denied";
    case CTL_EXIT_USAGE:
        return "usage";
    default:
        return "unavailable";
    }
}

ctl_client_t *ctl_client_new(const ctl_opts_t *o, char *err, size_t errlen,
                             int *exit_code)
{
    ctl_client_t *self = calloc(1, sizeof(*self));
    int zero = 0;
    int64_t max = DIP_CTL_MAX_REPLY;
    const char *ep = o->connect;
    *exit_code = CTL_EXIT_UNAVAILABLE;
    if (self == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    self->timeout_ms = o->timeout_ms;
    if (ep == NULL && o->cfg && o->cfg->control_connect)
        ep = o->cfg->control_connect;
    if (ep)
        snprintf(self->endpoint, sizeof(self->endpoint), "%s", ep);
    else
        snprintf(self->endpoint, sizeof(self->endpoint), "ipc://%s/control.ipc",
                 o->cfg && o->cfg->runtime_dir ? o->cfg->runtime_dir : ".");
    if (strncmp(self->endpoint, "ipc://", 6) == 0) {
        struct stat st;
        const char *path = self->endpoint + 6;
        char dir[PATH_MAX], why[PATH_MAX + 256];
        /* The runtime folder first: one a stranger made where anyone
         * may (the /tmp fallback) could hold their listener, who would
         * hear the operator's commands and answer them falsely. (The
         * supervisor holds its folder to a stricter rule, so its own
         * always passes; an endpoint named with --connect is the
         * operator's own choice.) */
        snprintf(dir, sizeof(dir), "%s", path);
        if (strrchr(dir, '/'))
            *strrchr(dir, '/') = '\0';
        else
            snprintf(dir, sizeof(dir), ".");
        if (ep == NULL && lstat(dir, &st) == 0 &&
            dip_runtime_trusted(dir, DIP_RUNTIME_PEER, why, sizeof(why)) < 0) {
            snprintf(err, errlen,
                     "refusing the control socket's folder: %s (remove it "
                     "if no supervisor of yours runs there, or set "
                     "DEALIMPORT_RUNTIME_DIR)",
                     why);
            *exit_code = CTL_EXIT_NOPERM;
            goto fail;
        }
        if (stat(path, &st) < 0 && errno != EACCES) {
            snprintf(err, errlen,
                     "no supervisor is listening at '%s' (%s); is "
                     "dealimport-supervisor running with this "
                     "DEALIMPORT_RUNTIME_DIR?",
                     self->endpoint, strerror(errno));
            goto fail;
        }
        if (access(path, R_OK | W_OK) < 0) {
            if (errno == EACCES || errno == EPERM) {
                denied(path, err, errlen);
                *exit_code = CTL_EXIT_NOPERM;
            } else {
                snprintf(err, errlen, "cannot use '%s': %s", self->endpoint,
                         strerror(errno));
            }
            goto fail;
        }
    }
    self->zctx = zmq_ctx_new();
    self->sock = self->zctx ? zmq_socket(self->zctx, ZMQ_REQ) : NULL;
    if (self->sock == NULL ||
        zmq_setsockopt(self->sock, ZMQ_LINGER, &zero, sizeof(zero)) ||
        zmq_setsockopt(self->sock, ZMQ_MAXMSGSIZE, &max, sizeof(max))) {
        snprintf(err, errlen, "cannot make a ZeroMQ socket: %s",
                 zmq_strerror(zmq_errno()));
        goto fail;
    }
    if (strncmp(self->endpoint, "tcp://", 6) == 0 &&
        curve_setup(self, o, err, errlen) < 0) {
        *exit_code = CTL_EXIT_CONFIG;
        goto fail;
    }
    if (zmq_connect(self->sock, self->endpoint) != 0) {
        snprintf(err, errlen, "cannot connect to '%s': %s", self->endpoint,
                 zmq_strerror(zmq_errno()));
        *exit_code = zmq_errno() == EINVAL || zmq_errno() == EPROTONOSUPPORT
                         ? CTL_EXIT_USAGE
                         : CTL_EXIT_UNAVAILABLE;
        goto fail;
    }
    return self;
fail:
    ctl_client_destroy(&self);
    return NULL;
}

void ctl_client_destroy(ctl_client_t **self_p)
{
    ctl_client_t *self;
    if (self_p == NULL || *self_p == NULL)
        return;
    self = *self_p;
    if (self->sock)
        zmq_close(self->sock);
    if (self->zctx)
        zmq_ctx_term(self->zctx);
    free(self);
    *self_p = NULL;
}

const char *ctl_client_endpoint(const ctl_client_t *self)
{
    return self->endpoint;
}

static void timeout_text(long ms, char *out, size_t len)
{
    if (ms % 1000 == 0)
        snprintf(out, len, "%ld s", ms / 1000);
    else
        snprintf(out, len, "%.3g s", (double)ms / 1000.0);
}

int ctl_client_call(ctl_client_t *self, const dip_ctl_request_t *req,
                    dip_ctl_reply_t *reply, char *err, size_t errlen)
{
    char *frame = dip_ctl_request_encode(req), t[32];
    int64_t deadline = dip_time_mono_ms() + self->timeout_ms;
    zmq_msg_t msg;
    int rc = CTL_CLIENT_ETIMEOUT;

    memset(reply, 0, sizeof(*reply));
    if (frame == NULL) {
        snprintf(err, errlen, "cannot encode the request");
        return CTL_CLIENT_ESEND;
    }
    /* REQ queues the request until the connection is up. */
    if (zmq_send(self->sock, frame, strlen(frame), ZMQ_DONTWAIT) < 0) {
        snprintf(err, errlen, "cannot send to '%s': %s", self->endpoint,
                 zmq_strerror(zmq_errno()));
        free(frame);
        return CTL_CLIENT_ESEND;
    }
    free(frame);
    zmq_msg_init(&msg);
    for (;;) {
        zmq_pollitem_t item = {self->sock, 0, ZMQ_POLLIN, 0};
        int64_t left = deadline - dip_time_mono_ms();
        if (left <= 0)
            break;
        if (zmq_poll(&item, 1, (long)left) < 0) {
            if (zmq_errno() == EINTR)
                continue;
            break;
        }
        if (!(item.revents & ZMQ_POLLIN))
            continue;
        if (zmq_msg_recv(&msg, self->sock, ZMQ_DONTWAIT) < 0)
            continue;
        rc = dip_ctl_reply_decode(zmq_msg_data(&msg), zmq_msg_size(&msg),
                                  req->cmd, reply, err, errlen) == 0
                 ? 0
                 : CTL_CLIENT_EPROTO;
        break;
    }
    zmq_msg_close(&msg);
    if (rc == CTL_CLIENT_ETIMEOUT) {
        timeout_text(self->timeout_ms, t, sizeof(t));
        snprintf(err, errlen, "no supervisor answered at '%s' within %s",
                 self->endpoint, t);
    }
    return rc;
}

int ctl_exit_for(dip_ctl_code_t code)
{
    switch (code) {
    case DIP_CTL_OK:
        return CTL_EXIT_OK;
    case DIP_CTL_EUNAVAIL:
        return CTL_EXIT_UNAVAILABLE;
    default:
        return CTL_EXIT_REFUSED;
    }
}

void ctl_print_json(const json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    printf("%s\n", s ? s : "null");
    free(s);
    fflush(stdout);
}

int ctl_fail(const ctl_opts_t *o, int exit_code, const char *code,
             const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "dealimportctl: %s\n", msg);
    if (o && o->json) {
        json_t *j = json_pack("{s:i, s:b, s:s, s:s}", "v", DIP_CTL_VERSION,
                              "ok", 0, "code", code, "error", msg);
        ctl_print_json(j);
        json_decref(j);
    }
    return exit_code;
}

int ctl_request(const ctl_opts_t *o, const dip_ctl_request_t *req,
                dip_ctl_reply_t *reply)
{
    char err[2048];
    int code, rc;
    ctl_client_t *c = ctl_client_new(o, err, sizeof(err), &code);
    memset(reply, 0, sizeof(*reply));
    if (c == NULL)
        return ctl_fail(o, code, ctl_client_failure_code(code), "%s", err);
    rc = ctl_client_call(c, req, reply, err, sizeof(err));
    ctl_client_destroy(&c);
    if (rc == CTL_CLIENT_EPROTO)
        return ctl_fail(o, CTL_EXIT_UNAVAILABLE, "unavailable",
                        "the supervisor's answer is not understood: %s", err);
    if (rc < 0)
        return ctl_fail(o, CTL_EXIT_UNAVAILABLE, "unavailable", "%s", err);
    if (!reply->ok) {
        fprintf(stderr, "dealimportctl: %s\n", reply->error);
        if (o->json)
            ctl_print_json(reply->root);
        code = ctl_exit_for(reply->code);
        dip_ctl_reply_release(reply);
        return code;
    }
    return 0;
}

int ctl_parse_id(const char *s, const char *what, char *out)
{
    size_t i;
    for (i = 0; s && i < 24 && isxdigit((unsigned char)s[i]); i++)
        out[i] = (char)tolower((unsigned char)s[i]);
    if (s == NULL || i != 24 || s[24] != '\0') {
        fprintf(stderr,
                "dealimportctl: '%s' is not an %s id (24 hexadecimal "
                "digits)\n",
                s ? s : "", what);
        return -1;
    }
    out[24] = '\0';
    return 0;
}

int ctl_usage(const char *usage, const char *fmt, ...)
{
    char msg[1024];
    const char *u = usage;
    int space = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s; usage: ", msg);
    if (strncmp(u, "usage: ", 7) == 0)
        u += 7;
    for (; *u; u++) {
        if (*u == ' ' || *u == '\n' || *u == '\t') {
            space = 1;
            continue;
        }
        if (space)
            fputc(' ', stderr);
        space = 0;
        fputc(*u, stderr);
    }
    fputc('\n', stderr);
    return CTL_EXIT_USAGE;
}

int ctl_take_id(const char *cmd, int argc, char **argv, const char *usage,
                char *out)
{
    if (optind >= argc) {
        ctl_usage(usage, "dealimportctl %s: which import? give its id", cmd);
        return -1;
    }
    if (optind + 1 < argc) {
        ctl_usage(usage, "dealimportctl %s: unexpected argument '%s'", cmd,
                  argv[optind + 1]);
        return -1;
    }
    return ctl_parse_id(argv[optind], "import", out);
}

int ctl_opt_end(int c, char **argv, const char *cmd, const char *usage,
                const char *about, const char *own)
{
    if (c == CTL_GETOPT_BAD)
        return CTL_EXIT_USAGE;
    if (c == 'h') {
        printf("%s\n%s\n\n%s%s", usage, about, own, ctl_common_help);
        return CTL_EXIT_OK;
    }
    return ctl_usage(usage, "dealimportctl %s: unknown option '%s'", cmd,
                     argv[optind - 1]);
}

int ctl_simple_args(ctl_opts_t *o, int argc, char **argv, const char *cmd,
                    const char *usage, const char *about, char *id)
{
    static const struct option opts[] = {CTL_COMMON_OPTIONS,
                                         {NULL, 0, NULL, 0}};
    int c;
    optind = 1;
    opterr = 0;
    if ((c = ctl_getopt(o, argc, argv, opts)) != -1)
        return ctl_opt_end(c, argv, cmd, usage, about, "");
    if (id != NULL)
        return ctl_take_id(cmd, argc, argv, usage, id) < 0 ? CTL_EXIT_USAGE
                                                           : -1;
    if (optind < argc)
        return ctl_usage(usage, "dealimportctl %s: unexpected argument '%s'",
                         cmd, argv[optind]);
    return -1;
}

int ctl_request_print(const ctl_opts_t *o, const dip_ctl_request_t *req,
                      void (*print)(const json_t *root))
{
    dip_ctl_reply_t reply;
    int rc = ctl_request(o, req, &reply);
    if (rc != 0)
        return rc;
    if (o->json)
        ctl_print_json(reply.root);
    else
        print(reply.root);
    dip_ctl_reply_release(&reply);
    return CTL_EXIT_OK;
}

char *ctl_duration(long long s, char *out, size_t len)
{
    if (s < 0)
        s = 0;
    if (s < 60)
        snprintf(out, len, "%llds", s);
    else if (s < 3600)
        snprintf(out, len, "%lldm%02llds", s / 60, s % 60);
    else if (s < 86400)
        snprintf(out, len, "%lldh%02lldm", s / 3600, (s % 3600) / 60);
    else
        snprintf(out, len, "%lldd%02lldh", s / 86400, (s % 86400) / 3600);
    return out;
}
