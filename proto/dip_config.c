/*
 * dip_config: loads settings from the environment and a KEY=VALUE file and
 * validates them once at start, so that a misconfigured service stops with a
 * line naming the setting instead of failing later in the middle of an import.
 */
#include "dip_config.h"
#include "dip_log.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    const char *name;
    size_t str_off; /* offset of a char * field, or (size_t)-1 */
    size_t num_off; /* offset of a long field, or (size_t)-1 */
    long min, max;
    int secret; /* never handed to a child's environment */
} setting_t;

#define S(name, field)                                                         \
    {                                                                          \
        name, offsetof(dip_config_t, field), (size_t)-1, 0, 0, 0               \
    }
#define SECRET(name, field)                                                    \
    {                                                                          \
        name, offsetof(dip_config_t, field), (size_t)-1, 0, 0, 1               \
    }
#define N(name, field, lo, hi)                                                 \
    {                                                                          \
        name, (size_t)-1, offsetof(dip_config_t, field), lo, hi, 0             \
    }

static const setting_t settings[] = {
    SECRET("DEALIMPORT_MONGODB_URI", mongodb_uri),
    SECRET("APP_SECRET", app_secret),
    S("DEALIMPORT_STORAGE_URL", storage_url),
    S("DEALIMPORT_S3_ENDPOINT", s3_endpoint),
    S("DEALIMPORT_S3_REGION", s3_region),
    S("DEALIMPORT_S3_ACCESS_KEY", s3_access_key),
    SECRET("DEALIMPORT_S3_SECRET_KEY", s3_secret_key),
    SECRET("DEALIMPORT_S3_SESSION_TOKEN", s3_session_token),
    S("DEALIMPORT_S3_SESSION_TOKEN_FILE", s3_session_token_file),
    S("DEALIMPORT_RUNTIME_DIR", runtime_dir),
    S("DEALIMPORT_CONTROL_GROUP", control_group),
    S("DEALIMPORT_WORKER_PATH", worker_path),
    S("DEALIMPORT_CONTROL_TCP", control_tcp),
    S("DEALIMPORT_CONTROL_CURVE_SECRET_FILE", control_curve_secret_file),
    S("DEALIMPORT_CONTROL_CURVE_CLIENTS_DIR", control_curve_clients_dir),
    S("DEALIMPORT_CONTROL_CONNECT", control_connect),
    S("DEALIMPORT_CONTROL_CURVE_SERVER_KEY_FILE",
      control_curve_server_key_file),
    S("DEALIMPORT_CONTROL_CURVE_CLIENT_KEY_FILE",
      control_curve_client_key_file),
    S("DEALIMPORT_METRICS_ADDR", metrics_addr),
    S("DEALIMPORT_LOG_FORMAT", log_format),
    S("DEALIMPORT_NOTIFY_URL", notify_url),
    N("DEALIMPORT_POLL_MS", poll_ms, 10, 3600000),
    N("DEALIMPORT_MAX_WORKERS", max_workers, 1, 4096),
    N("DEALIMPORT_MAX_WORKERS_PER_ACCOUNT", max_workers_per_account, 1, 4096),
    N("DEALIMPORT_WORKER_MEMORY_MB", worker_memory_mb, 16, 1048576),
    N("DEALIMPORT_WORKER_CPU_S", worker_cpu_s, 1, 31536000),
    N("DEALIMPORT_WORKER_TIMEOUT_S", worker_timeout_s, 1, 31536000),
    N("DEALIMPORT_WORKER_RESTARTS", worker_restarts, 1, 1000),
    N("DEALIMPORT_LEASE_S", lease_s, 2, 86400),
    N("DEALIMPORT_STOP_TIMEOUT_S", stop_timeout_s, 1, 3600),
    N("DEALIMPORT_ROW_ATTEMPTS", row_attempts, 1, 100),
    N("DEALIMPORT_ROW_BACKOFF_MS", row_backoff_ms, 0, 3600000),
    N("DEALIMPORT_BATCH_ROWS", batch_rows, 1, 100000),
    N("DEALIMPORT_BATCH_BYTES", batch_bytes, 0, 1073741824),
    N("DEALIMPORT_LINE_ERROR_BYTES", line_error_bytes, 1024, 1048576),
    N("DEALIMPORT_MAX_LINE_ERRORS", max_line_errors, 0, 100000000),
    N("DEALIMPORT_ERROR_BUFFER_BYTES", error_buffer_bytes, 1048576, 1073741824),
    N("DEALIMPORT_MAX_NEW_STAGES", max_new_stages, 0, 1000000),
    N("DEALIMPORT_MAX_TAGS", max_tags, 0, 10000),
    N("DEALIMPORT_NOTIFY_MAX_S", notify_max_s, 1, 31536000),
};
#define NSETTINGS (sizeof(settings) / sizeof(settings[0]))
/* The names read outside the table: parsed by hand, a file's path
 * (DEALIMPORT_CONFIG is read from the environment only). */
static const char *const other_names[] = {
    "DEALIMPORT_LOG_LEVEL", "DEALIMPORT_DELETE_SOURCE", "APP_SECRET_FILE",
    "DEALIMPORT_CONFIG", NULL};

/* 1 for a name in the service's namespace, DEALIMPORT_*. */
static int ours(const char *name)
{
    return strncmp(name, "DEALIMPORT", 10) == 0 && name[10] == '_';
}
/* dip_config_to_env writes one entry per setting and the log level. */
_Static_assert(NSETTINGS + 2 <= DIP_CONFIG_ENV_MAX,
               "DIP_CONFIG_ENV_MAX is too small for the settings");

long dip_config_batch_bytes(const dip_config_t *cfg)
{
    long eighth = cfg->worker_memory_mb * (1024L * 1024L / 8);
    if (cfg->batch_bytes > 0)
        return cfg->batch_bytes;
    return eighth < 8L * 1024 * 1024 ? eighth : 8L * 1024 * 1024;
}

void dip_config_init(dip_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->log_level = DIP_LOG_INFO;
    cfg->poll_ms = 5000;
    cfg->max_workers = 4;
    cfg->max_workers_per_account = 2;
    cfg->worker_memory_mb = 1024;
    cfg->worker_cpu_s = 3600;
    cfg->worker_timeout_s = 21600;
    cfg->worker_restarts = 3;
    cfg->lease_s = 60;
    cfg->stop_timeout_s = 20;
    cfg->row_attempts = 3;
    cfg->row_backoff_ms = 4000;
    cfg->batch_rows = 1000;
    cfg->line_error_bytes = 16 * 1024;
    cfg->max_line_errors = 100000;
    cfg->error_buffer_bytes = 8 * 1024 * 1024;
    cfg->max_new_stages = 100;
    cfg->max_tags = 50;
    cfg->notify_max_s = 86400;
}

int dip_config_known(const char *name)
{
    for (size_t i = 0; i < NSETTINGS; i++)
        if (strcmp(settings[i].name, name) == 0)
            return 1;
    for (size_t i = 0; other_names[i]; i++)
        if (strcmp(other_names[i], name) == 0)
            return 1;
    return 0;
}

/* The optimal string alignment distance (Levenshtein plus adjacent swaps)
 * of a and b, both at most NAME_MAX_LEN bytes. */
#define NAME_MAX_LEN 63
static int distance(const char *a, const char *b)
{
    int d[NAME_MAX_LEN + 1][NAME_MAX_LEN + 1];
    int la = (int)strlen(a), lb = (int)strlen(b);
    for (int i = 0; i <= la; i++)
        d[i][0] = i;
    for (int j = 0; j <= lb; j++)
        d[0][j] = j;
    for (int i = 1; i <= la; i++)
        for (int j = 1; j <= lb; j++) {
            int cost = a[i - 1] != b[j - 1];
            int v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v)
                v = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < v)
                v = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] &&
                a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    return d[la][lb];
}

static void consider(const char *name, const char *known, const char **best,
                     int *best_d)
{
    int limit = strlen(name) > 20 ? 3 : 2, dist;
    if (strlen(known) > NAME_MAX_LEN)
        return;
    dist = distance(name, known);
    if (dist <= limit && dist < *best_d) {
        *best = known;
        *best_d = dist;
    }
}

const char *dip_config_suggest(const char *name)
{
    const char *best = NULL;
    int best_d = NAME_MAX_LEN + 1;
    if (name == NULL || strlen(name) > NAME_MAX_LEN || dip_config_known(name))
        return NULL;
    for (size_t i = 0; i < NSETTINGS; i++)
        consider(name, settings[i].name, &best, &best_d);
    for (size_t i = 0; other_names[i]; i++)
        consider(name, other_names[i], &best, &best_d);
    return best;
}

/* One line for an unknown name: where it was, and the likely one. */
static void unknown_name(const char *where, const char *name, char *err,
                         size_t errlen)
{
    const char *close = dip_config_suggest(name);
    if (close)
        snprintf(err, errlen, "%s: unknown setting '%s'; did you mean '%s'?",
                 where, name, close);
    else
        snprintf(err, errlen,
                 "%s: unknown setting '%s' (dealimport.env(5) lists the "
                 "settings)",
                 where, name);
}

static int set_one(dip_config_t *cfg, const char *name, const char *value,
                   char *err, size_t errlen)
{
    if (strcmp(name, "DEALIMPORT_LOG_LEVEL") == 0) {
        int lvl = dip_log_level_parse(value);
        if (lvl < 0) {
            snprintf(err, errlen,
                     "DEALIMPORT_LOG_LEVEL: '%s' is not one of error, "
                     "warning, notice, info, debug",
                     value);
            return -1;
        }
        cfg->log_level = lvl;
        return 0;
    }
    if (strcmp(name, "DEALIMPORT_DELETE_SOURCE") == 0) {
        if (strcmp(value, "never") == 0) {
            cfg->delete_source = DIP_DELETE_SOURCE_NEVER;
        } else if (strcmp(value, "completed") == 0) {
            cfg->delete_source = DIP_DELETE_SOURCE_COMPLETED;
        } else {
            snprintf(err, errlen,
                     "DEALIMPORT_DELETE_SOURCE: '%s' is not never or "
                     "completed",
                     value);
            return -1;
        }
        return 0;
    }
    for (size_t i = 0; i < NSETTINGS; i++) {
        const setting_t *s = &settings[i];
        if (strcmp(s->name, name) != 0)
            continue;
        if (s->str_off != (size_t)-1) {
            char **field = (char **)((char *)cfg + s->str_off);
            if (*field && s->secret)
                memset(*field, 0, strlen(*field));
            free(*field);
            *field = strdup(value);
            return *field ? 0 : -1;
        } else {
            long *field = (long *)((char *)cfg + s->num_off);
            char *end = NULL;
            long v;
            errno = 0;
            v = strtol(value, &end, 10);
            if (errno || end == value || *end != '\0' || v < s->min ||
                v > s->max) {
                snprintf(err, errlen,
                         "%s: '%s' is not a whole number from %ld to %ld", name,
                         value, s->min, s->max);
                return -1;
            }
            *field = v;
            return 0;
        }
    }
    return 1; /* not ours */
}

static int read_secret_file(dip_config_t *cfg, const char *path, char *err,
                            size_t errlen)
{
    FILE *f = fopen(path, "re");
    char buf[4096];
    size_t n;
    if (f == NULL) {
        snprintf(err, errlen, "APP_SECRET_FILE: cannot read '%s': %s", path,
                 strerror(errno));
        return -1;
    }
    n = fread(buf, 1, sizeof(buf) - 1, f);
    if (ferror(f)) {
        int e = errno;
        fclose(f);
        snprintf(err, errlen, "APP_SECRET_FILE: cannot read '%s': %s", path,
                 strerror(e));
        return -1;
    }
    fclose(f);
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    /* A NUL ends the string: a file of NULs (/dev/zero) is empty too. */
    if (buf[0] == '\0') {
        snprintf(err, errlen, "APP_SECRET_FILE: '%s' is empty", path);
        return -1;
    }
    free(cfg->app_secret);
    cfg->app_secret = strdup(buf);
    memset(buf, 0, sizeof(buf));
    return cfg->app_secret ? 0 : -1;
}

static char *trim(char *s)
{
    char *e;
    while (*s == ' ' || *s == '\t')
        s++;
    e = s + strlen(s);
    while (e > s &&
           (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
        *--e = '\0';
    return s;
}

/* One line of f into buf (its newline kept): 1, 0 at the end, -1 when
 * longer than cap - 1 bytes, -2 when it holds a NUL byte. */
static int read_line(FILE *f, char *buf, size_t cap)
{
    size_t n = 0;
    int c = EOF;
    while (n + 1 < cap && (c = getc(f)) != EOF) {
        if (c == '\0')
            return -2;
        buf[n++] = (char)c;
        if (c == '\n')
            break;
    }
    buf[n] = '\0';
    if (n + 1 == cap && c != '\n' && (c = getc(f)) != EOF) {
        if (c != '\n')
            return -1;
    }
    return n > 0 ? 1 : 0;
}

static int load_file(dip_config_t *cfg, const char *file, char *err,
                     size_t errlen)
{
    FILE *f = fopen(file, "re");
    char line[4096];
    int lineno = 0, rc = 0;
    if (f == NULL) {
        snprintf(err, errlen, "--config: cannot read '%s': %s", file,
                 strerror(errno));
        return -1;
    }
    for (;;) {
        char *s, *eq, *name, *value;
        size_t vl;
        int got = read_line(f, line, sizeof(line));
        if (got == 0)
            break;
        lineno++;
        if (got < 0) {
            /* A line cut in two would make its tail a line of its own (a
             * long secret ending in "KEY=..."); a NUL would cut a value. */
            if (got == -1)
                snprintf(err, errlen, "%s:%d: line longer than %zu bytes", file,
                         lineno, sizeof(line) - 1);
            else
                snprintf(err, errlen, "%s:%d: holds a NUL byte", file, lineno);
            rc = -1;
            break;
        }
        s = line;
        /* An editor's UTF-8 byte-order mark. */
        if (lineno == 1 && strncmp(s, "\xef\xbb\xbf", 3) == 0)
            s += 3;
        s = trim(s);
        if (*s == '\0' || *s == '#')
            continue;
        if (strncmp(s, "export ", 7) == 0)
            s = trim(s + 7);
        eq = strchr(s, '=');
        if (eq == NULL) {
            snprintf(err, errlen, "%s:%d: expected KEY=VALUE", file, lineno);
            rc = -1;
            break;
        }
        *eq = '\0';
        name = trim(s);
        value = trim(eq + 1);
        if (!dip_config_known(name) &&
            (ours(name) || dip_config_suggest(name) != NULL)) {
            char where[600];
            snprintf(where, sizeof(where), "%s:%d", file, lineno);
            unknown_name(where, name, err, errlen);
            rc = -1;
            break;
        }
        vl = strlen(value);
        if (vl >= 2 && (value[0] == '"' || value[0] == '\'') &&
            value[vl - 1] == value[0]) {
            value[vl - 1] = '\0';
            value++;
        }
        /* "KEY=" means unset, as an empty environment variable does. */
        if (*value == '\0')
            continue;
        if (strcmp(name, "APP_SECRET_FILE") == 0)
            rc = read_secret_file(cfg, value, err, errlen);
        else if (set_one(cfg, name, value, err, errlen) < 0)
            rc = -1;
    }
    if (rc == 0 && ferror(f)) { /* a folder: EISDIR */
        snprintf(err, errlen, "--config: cannot read '%s': %s", file,
                 strerror(errno));
        rc = -1;
    }
    fclose(f);
    return rc;
}

/* A DEALIMPORT_* variable that is a typo of a setting stops the program;
 * others may belong to other tools (scripts, tests). */
static int check_environment(char *err, size_t errlen)
{
    extern char **environ;
    for (char **e = environ; e && *e; e++) {
        char name[NAME_MAX_LEN + 1];
        size_t n = strcspn(*e, "=");
        if (!ours(*e) || n > NAME_MAX_LEN)
            continue;
        memcpy(name, *e, n);
        name[n] = '\0';
        if (!dip_config_known(name) && dip_config_suggest(name)) {
            unknown_name("environment", name, err, errlen);
            return -1;
        }
    }
    return 0;
}

/* Appended to a "not set" line when the default file was there but not
 * readable by this user. */
static void add_denied_hint(const char *denied, char *err, size_t errlen)
{
    size_t n = strlen(err);
    if (denied && n < errlen)
        snprintf(err + n, errlen - n,
                 " (%s exists but this user cannot read it: %s)", denied,
                 strerror(EACCES));
}

/* A client's file: --config, else DEALIMPORT_CONFIG, else the default
 * file when readable (read under the environment: *below = 1). */
static const char *client_file(const char *file, int *below,
                               const char **denied)
{
    const char *v = getenv("DEALIMPORT_CONFIG");
    *below = 0;
    if (file)
        return file;
    if (v && *v)
        return v;
    if (access(DIP_CONFIG_DEFAULT_FILE, F_OK) != 0)
        return NULL;
    if (access(DIP_CONFIG_DEFAULT_FILE, R_OK) != 0) {
        *denied = DIP_CONFIG_DEFAULT_FILE;
        return NULL;
    }
    *below = 1;
    return DIP_CONFIG_DEFAULT_FILE;
}

static int default_runtime_dir(dip_config_t *cfg, int client)
{
    const char *sd = getenv("RUNTIME_DIRECTORY"); /* systemd's */
    struct stat st;
    char buf[512];
    if (sd && *sd) {
        /* RuntimeDirectory= may list several, colon-separated. */
        snprintf(buf, sizeof(buf), "%s", sd);
        buf[strcspn(buf, ":")] = '\0';
    } else if (getuid() == 0 ||
               (client && stat(DIP_CONFIG_SERVICE_RUNTIME_DIR, &st) == 0 &&
                S_ISDIR(st.st_mode))) {
        snprintf(buf, sizeof(buf), "%s", DIP_CONFIG_SERVICE_RUNTIME_DIR);
    } else if ((sd = getenv("XDG_RUNTIME_DIR")) && *sd) {
        snprintf(buf, sizeof(buf), "%s/dealimport", sd);
    } else {
        snprintf(buf, sizeof(buf), "/tmp/dealimport-%u", (unsigned)getuid());
    }
    cfg->runtime_dir = strdup(buf);
    return cfg->runtime_dir ? 0 : -1;
}

int dip_config_check(const char *file, char *err, size_t errlen)
{
    dip_config_t cfg;
    int rc;
    dip_config_init(&cfg);
    rc = dip_config_load(&cfg, file,
                         DIP_NEED_MONGO | DIP_NEED_STORAGE | DIP_NEED_SECRET,
                         err, errlen);
    dip_config_release(&cfg);
    return rc;
}

int dip_config_load(dip_config_t *cfg, const char *file, unsigned need,
                    char *err, size_t errlen)
{
    const char *v, *denied = NULL;
    int below = 0;
    if (check_environment(err, errlen) < 0)
        return -1;
    if (need & DIP_CONFIG_CLIENT)
        file = client_file(file, &below, &denied);
    if (below && load_file(cfg, file, err, errlen) < 0)
        return -1;
    for (size_t i = 0; i < NSETTINGS; i++) {
        v = getenv(settings[i].name);
        if (v && *v && set_one(cfg, settings[i].name, v, err, errlen) < 0)
            return -1;
    }
    v = getenv("DEALIMPORT_LOG_LEVEL");
    if (v && *v && set_one(cfg, "DEALIMPORT_LOG_LEVEL", v, err, errlen) < 0)
        return -1;
    v = getenv("DEALIMPORT_DELETE_SOURCE");
    if (v && *v && set_one(cfg, "DEALIMPORT_DELETE_SOURCE", v, err, errlen) < 0)
        return -1;
    v = getenv("APP_SECRET_FILE");
    if ((cfg->app_secret == NULL || *cfg->app_secret == '\0') && v && *v &&
        read_secret_file(cfg, v, err, errlen) < 0)
        return -1;
    if (file && !below && load_file(cfg, file, err, errlen) < 0)
        return -1;

    if ((need & DIP_NEED_MONGO) && !(cfg->mongodb_uri && *cfg->mongodb_uri)) {
        snprintf(err, errlen, "DEALIMPORT_MONGODB_URI is not set");
        add_denied_hint(denied, err, errlen);
        return -1;
    }
    if ((need & DIP_NEED_SECRET) && !(cfg->app_secret && *cfg->app_secret)) {
        snprintf(err, errlen, "APP_SECRET (or APP_SECRET_FILE) is not set");
        return -1;
    }
    if (need & DIP_NEED_STORAGE) {
        const char *s = cfg->storage_url;
        if (!(s && *s)) {
            snprintf(err, errlen, "DEALIMPORT_STORAGE_URL is not set");
            add_denied_hint(denied, err, errlen);
            return -1;
        }
        if (strncmp(s, "file:///", 8) != 0 &&
            !(strncmp(s, "s3://", 5) == 0 && s[5] != '\0')) {
            snprintf(err, errlen,
                     "DEALIMPORT_STORAGE_URL: '%s' is neither s3://bucket "
                     "nor file:///dir",
                     s);
            return -1;
        }
        if (strncmp(s, "s3://", 5) == 0 &&
            !(cfg->s3_access_key && cfg->s3_secret_key)) {
            snprintf(err, errlen,
                     "DEALIMPORT_S3_ACCESS_KEY and DEALIMPORT_S3_SECRET_KEY "
                     "are required for '%s'",
                     s);
            return -1;
        }
    }
    if (cfg->log_format && strcmp(cfg->log_format, "kv") != 0 &&
        strcmp(cfg->log_format, "json") != 0) {
        snprintf(err, errlen, "DEALIMPORT_LOG_FORMAT: '%s' is not kv or json",
                 cfg->log_format);
        return -1;
    }
    if (cfg->notify_url && *cfg->notify_url &&
        strncmp(cfg->notify_url, "http://", 7) != 0 &&
        strncmp(cfg->notify_url, "https://", 8) != 0) {
        snprintf(err, errlen,
                 "DEALIMPORT_NOTIFY_URL: '%s' is not an http:// or https:// "
                 "URL",
                 cfg->notify_url);
        return -1;
    }
    if (cfg->s3_region == NULL &&
        (cfg->s3_region = strdup("us-east-1")) == NULL)
        return -1;
    if (cfg->s3_session_token && cfg->s3_session_token_file) {
        snprintf(err, errlen,
                 "DEALIMPORT_S3_SESSION_TOKEN and "
                 "DEALIMPORT_S3_SESSION_TOKEN_FILE are both set: set one");
        return -1;
    }
    if (cfg->s3_session_token_file &&
        access(cfg->s3_session_token_file, R_OK) != 0) {
        snprintf(err, errlen,
                 "DEALIMPORT_S3_SESSION_TOKEN_FILE: cannot read '%s': %s",
                 cfg->s3_session_token_file, strerror(errno));
        return -1;
    }
    if (cfg->runtime_dir == NULL &&
        default_runtime_dir(cfg, (need & DIP_CONFIG_CLIENT) != 0) < 0)
        return -1;
    return 0;
}

int dip_config_to_env(const dip_config_t *cfg, char **env)
{
    int n = 0;
    for (size_t i = 0; i < NSETTINGS; i++) {
        const setting_t *s = &settings[i];
        char *str = NULL;
        if (s->secret)
            continue;
        if (s->str_off != (size_t)-1) {
            const char *v = *(char *const *)((const char *)cfg + s->str_off);
            if (v == NULL)
                continue;
            if (asprintf(&str, "%s=%s", s->name, v) < 0)
                str = NULL;
        } else {
            long v = *(const long *)((const char *)cfg + s->num_off);
            if (asprintf(&str, "%s=%ld", s->name, v) < 0)
                str = NULL;
        }
        if (str)
            env[n++] = str;
    }
    {
        char *str = NULL;
        if (asprintf(&str, "DEALIMPORT_LOG_LEVEL=%d", cfg->log_level) >= 0)
            env[n++] = str;
        str = NULL;
        if (asprintf(&str, "DEALIMPORT_DELETE_SOURCE=%s",
                     cfg->delete_source == DIP_DELETE_SOURCE_COMPLETED
                         ? "completed"
                         : "never") >= 0)
            env[n++] = str;
    }
    return n;
}

void dip_config_release(dip_config_t *cfg)
{
    for (size_t i = 0; i < NSETTINGS; i++) {
        if (settings[i].str_off != (size_t)-1) {
            char **field = (char **)((char *)cfg + settings[i].str_off);
            if (*field && settings[i].secret)
                memset(*field, 0, strlen(*field));
            free(*field);
            *field = NULL;
        }
    }
    memset(cfg->spawn_secret, 0, sizeof(cfg->spawn_secret));
}
