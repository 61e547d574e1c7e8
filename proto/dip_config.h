/*
 * dip_config: the service's settings, from the environment (systemd's
 * EnvironmentFile= friendly) and an optional --config FILE of KEY=VALUE lines
 * using the same names; a value in the file wins over the environment because
 * it was named explicitly. A missing or malformed setting is reported as one
 * line naming it; programs exit 78 (EX_CONFIG) on it.
 *
 * Unknown names: in a file, every DEALIMPORT_* name this module does not
 * know is an error, and so is any other name close to a known one (a typo
 * of APP_SECRET); other names are left alone, as systemd's
 * EnvironmentFile= may carry variables for other programs (TZ). In the
 * environment, which also holds other tools' variables, a DEALIMPORT_* name
 * is an error when it is close to a known one (DEALIMPORT_MAX_WORKER).
 * Either error suggests the known name ("did you mean").
 *
 * A client (DIP_CONFIG_CLIENT: dealimportctl) finds the installed service:
 * without --config it reads DEALIMPORT_CONFIG's file, else
 * DIP_CONFIG_DEFAULT_FILE where it exists and the user may read it, below
 * the environment (a variable overrides the file); and its runtime folder
 * defaults to DIP_CONFIG_SERVICE_RUNTIME_DIR when that folder exists.
 */
#ifndef DIP_CONFIG_H
#define DIP_CONFIG_H

#include <stddef.h>

#include "dip_exit.h"

/* What a program requires to be set. */
enum {
    DIP_NEED_MONGO = 1 << 0,
    DIP_NEED_STORAGE = 1 << 1,
    DIP_NEED_SECRET = 1 << 2,
    /* not a requirement: load as a client of the installed service (above) */
    DIP_CONFIG_CLIENT = 1 << 8,
};

/* The package's settings file, and the service's runtime folder (systemd's
 * RuntimeDirectory=dealimport). */
#define DIP_CONFIG_DEFAULT_FILE "/etc/dealimport/dealimport.env"
#define DIP_CONFIG_SERVICE_RUNTIME_DIR "/run/dealimport"

/* Hex digits of the per-spawn secret a supervisor gives each worker. */
#define DIP_CONFIG_SPAWN_SECRET_LEN 64
/* DEALIMPORT_DELETE_SOURCE: what happens to an import's source file. */
enum {
    DIP_DELETE_SOURCE_NEVER = 0, /* "never" (the default): it is kept */
    /* "completed": deleted after a completed import (not a dry run) whose
     * error file is written; failed, cancelled and paused ones keep it */
    DIP_DELETE_SOURCE_COMPLETED = 1,
};

typedef struct dip_config {
    /* The three secrets (the URI may hold a password) never go into a
     * child's environment: see dip_secrets.h. */
    char *mongodb_uri; /* DEALIMPORT_MONGODB_URI */
    char *app_secret;  /* APP_SECRET, or the contents of APP_SECRET_FILE */
    char *storage_url; /* DEALIMPORT_STORAGE_URL: s3://bucket or file:///dir */
    char *s3_endpoint; /* DEALIMPORT_S3_ENDPOINT, e.g. http://127.0.0.1:9000 */
    char *s3_region;   /* DEALIMPORT_S3_REGION, default us-east-1 */
    char *s3_access_key; /* DEALIMPORT_S3_ACCESS_KEY */
    char *s3_secret_key; /* DEALIMPORT_S3_SECRET_KEY */
    /* temporary credentials' session token, signed as x-amz-security-token:
     * DEALIMPORT_S3_SESSION_TOKEN (a secret), or the path of a file holding
     * it, DEALIMPORT_S3_SESSION_TOKEN_FILE, read again whenever it changes
     * (the storage code does); at most one of the two is set */
    char *s3_session_token;
    char *s3_session_token_file;
    char *runtime_dir; /* DEALIMPORT_RUNTIME_DIR */
    /* the supervisor's: a group whose members may use the ipc control
     * socket (mode 0660, and the runtime folder 0750, in that group); unset
     * means the service's user alone (0600): DEALIMPORT_CONTROL_GROUP */
    char *control_group;
    char *worker_path; /* DEALIMPORT_WORKER_PATH, default beside the program */
    char *control_tcp; /* DEALIMPORT_CONTROL_TCP, optional */
    /* the supervisor's CURVE secret key (Z85) for control_tcp */
    char *control_curve_secret_file; /* ..._CONTROL_CURVE_SECRET_FILE */
    /* files of authorized client public keys (Z85), one per line */
    char *control_curve_clients_dir; /* ..._CONTROL_CURVE_CLIENTS_DIR */
    /* dealimportctl: where to reach the supervisor, default the ipc socket
     * in runtime_dir; over TCP, the supervisor's public key and the
     * client's own secret key */
    char *control_connect;               /* ..._CONTROL_CONNECT */
    char *control_curve_server_key_file; /* ..._CURVE_SERVER_KEY_FILE */
    char *control_curve_client_key_file; /* ..._CURVE_CLIENT_KEY_FILE */
    char *metrics_addr; /* DEALIMPORT_METRICS_ADDR: HOST:PORT of GET /metrics,
                           unset means no HTTP listener */
    char *log_format;   /* DEALIMPORT_LOG_FORMAT: kv (default) or json */
    int log_level;      /* DEALIMPORT_LOG_LEVEL, default info */
    long poll_ms;       /* DEALIMPORT_POLL_MS, default 5000 */
    long max_workers;   /* DEALIMPORT_MAX_WORKERS, default 4 */
    long max_workers_per_account; /* ..._PER_ACCOUNT, default 2 */
    long worker_memory_mb; /* DEALIMPORT_WORKER_MEMORY_MB, default 1024 */
    long worker_cpu_s;     /* DEALIMPORT_WORKER_CPU_S, default 3600 */
    long worker_timeout_s; /* DEALIMPORT_WORKER_TIMEOUT_S, default 21600 */
    long worker_restarts;  /* DEALIMPORT_WORKER_RESTARTS: an import fails at
                              its worker's Nth crash within 10 minutes
                              (earlier crashes resume it), default 3 */
    long lease_s;          /* DEALIMPORT_LEASE_S, default 60 */
    long stop_timeout_s;   /* DEALIMPORT_STOP_TIMEOUT_S: a shutdown's
                              hand-backs, all waiting included, default 20 */
    long row_attempts;     /* DEALIMPORT_ROW_ATTEMPTS, default 3 */
    long row_backoff_ms;   /* DEALIMPORT_ROW_BACKOFF_MS, default 4000 */
    long batch_rows;       /* DEALIMPORT_BATCH_ROWS, default 1000 */
    int delete_source;     /* DEALIMPORT_DELETE_SOURCE, DIP_DELETE_SOURCE_* */
    long batch_bytes;      /* DEALIMPORT_BATCH_BYTES: a batch is inserted
                              once its deals reach this size; 0 (default):
                              the smaller of 8 MB and an eighth of
                              worker_memory_mb (see dip_config_batch_bytes) */
    /* the most bytes of a row one line error keeps (its BSON array), cut at
     * a character boundary: DEALIMPORT_LINE_ERROR_BYTES, default 16384 */
    long line_error_bytes;
    /* error documents one import stores; the rest are only counted
     * (errors_not_stored): DEALIMPORT_MAX_LINE_ERRORS, default 100000 */
    long max_line_errors;
    /* the supervisor's unwritten line errors, in bytes, over all its
     * workers: DEALIMPORT_ERROR_BUFFER_BYTES, default 8 MB */
    long error_buffer_bytes;
    /* new pipeline stages one import may create: DEALIMPORT_MAX_NEW_STAGES,
     * default 100 */
    long max_new_stages;
    /* tags one queue document may give its deals, each of at most 256
     * bytes; more fail the import: DEALIMPORT_MAX_TAGS, default 50 */
    long max_tags;
    /* a worker's: the secret its supervisor made for this spawn, "" when
     * not started by one (64 hex digits, from the secrets channel only),
     * proven in its hello */
    char spawn_secret[DIP_CONFIG_SPAWN_SECRET_LEN + 1];
    /* completion events: POSTed here when set (http or https) */
    char *notify_url;  /* DEALIMPORT_NOTIFY_URL */
    long notify_max_s; /* DEALIMPORT_NOTIFY_MAX_S: retried this long, 86400 */
} dip_config_t;

/* The batch size in bytes that batch_bytes asks for: itself when set, else
 * the smaller of 8 MB and an eighth of the worker's memory limit (the
 * driver copies a batch into its wire buffer, and the reader holds a row of
 * up to 1 MiB meanwhile). */
long dip_config_batch_bytes(const dip_config_t *cfg);

/* Fills cfg with the defaults; strings NULL except the defaulted ones. */
void dip_config_init(dip_config_t *cfg);

/* Reads the environment, then file (may be NULL), then checks that what
 * `need` names is present and that every number is in range. On failure
 * returns -1 and writes one line naming the setting into err. With
 * DIP_CONFIG_CLIENT in need, file NULL means DEALIMPORT_CONFIG or the
 * default file (see above). */
int dip_config_load(dip_config_t *cfg, const char *file, unsigned need,
                    char *err, size_t errlen);

/* `dealimport-supervisor --check-config FILE`: loads the environment and
 * FILE as a start would, requiring everything a supervisor requires.
 * Returns 0, or -1 with one line in err. */
int dip_config_check(const char *file, char *err, size_t errlen);

/* The known setting closest to name, when it is close enough to be a typo
 * of it (an edit distance of at most 2, or 3 for names over 20
 * characters, adjacent swaps counting 1); NULL when none is, or when name
 * is itself known. A pure function over the list of settings. */
const char *dip_config_suggest(const char *name);

/* 1 when name is a setting this module reads, else 0. */
int dip_config_known(const char *name);

/* Appends "NAME=value" strings for every set value but the secrets
 * (DEALIMPORT_MONGODB_URI, APP_SECRET, DEALIMPORT_S3_SECRET_KEY,
 * DEALIMPORT_S3_SESSION_TOKEN) to env (an
 * array with room for at least DIP_CONFIG_ENV_MAX more entries, malloc'd
 * strings owned by the caller), for handing the settings to a child process;
 * the secrets go through dip_secrets. Returns the count. */
#define DIP_CONFIG_ENV_MAX 64
int dip_config_to_env(const dip_config_t *cfg, char **env);

/* Frees the strings; the secrets are zeroed first. */
void dip_config_release(dip_config_t *cfg);

#endif
