/*
 * dip_mongo_io: the MongoDB connection every program opens, and the one
 * place that decides which errors are transient (worth a retry: the network,
 * a timeout, a primary stepping down) and which are final.
 */
#ifndef DIP_MONGO_IO_H
#define DIP_MONGO_IO_H

#include <mongoc/mongoc.h>

/* Calls mongoc_init once per process (idempotent). */
void dip_mongo_init(void);

/* A client for uri with appname set; the database is the URI's (default
 * "crm"), returned in *db (owned by the client, valid while it lives).
 * NULL with err filled on a malformed URI. */
mongoc_client_t *dip_mongo_client_new(const char *uri, const char *appname,
                                      const char **db, char *err,
                                      size_t errlen);

/* Destroys client (NULL is fine) without ending its sessions on the
 * server, which would block for a socket timeout when the database is
 * away (the server expires them itself). */
void dip_mongo_client_close(mongoc_client_t *client);

/* The shortest timeout dip_mongo_client_new_bounded sets. */
#define DIP_MONGO_MIN_TIMEOUT_MS 200

/* The same, with the driver's timeouts derived from lease_ms unless the URI
 * sets them: socketTimeoutMS a quarter of it, connectTimeoutMS and
 * serverSelectionTimeoutMS a twelfth each (each at least
 * DIP_MONGO_MIN_TIMEOUT_MS). lease_ms 0: as dip_mongo_client_new. */
mongoc_client_t *dip_mongo_client_new_bounded(const char *uri,
                                              const char *appname,
                                              long lease_ms, const char **db,
                                              char *err, size_t errlen);

/* The longest one call of client can block: a connection, then a reply
 * (its connect and socket timeouts), plus a little. */
long dip_mongo_call_ms(const mongoc_client_t *client);

/* The shortest maxTimeMS dip_mongo_max_time_ms gives. */
#define DIP_MONGO_MIN_MAX_TIME_MS 100

/* The maxTimeMS of every read, count, aggregate and findAndModify the
 * programs send through client: the one place that decides it. Three
 * quarters of the client's socketTimeoutMS (the driver's 300 s unless the
 * URI or dip_mongo_client_new_bounded set it), at least
 * DIP_MONGO_MIN_MAX_TIME_MS: the server stops the work before the client
 * stops waiting for it, so a call the client gave up on does not go on
 * running in the server beside its retry; the last quarter is for the
 * answer's way back. The server answers MaxTimeMSExpired (50), which
 * dip_mongo_is_transient counts as transient. */
int64_t dip_mongo_max_time_ms(const mongoc_client_t *client);

/* A copy of opts (an options document of find, aggregate or
 * count_documents; NULL for none) with dip_mongo_max_time_ms appended as
 * maxTimeMS, unless opts has one. The caller destroys it. */
bson_t *dip_mongo_read_opts(const mongoc_client_t *client, const bson_t *opts);

/* findAndModify on coll returning the document after its update, with opts
 * (its update, sort, and so on, set by the caller) and the read bound of
 * dip_mongo_max_time_ms: the one way the service claims and moves a
 * document. reply is initialized either way; true when the command ran. */
bool dip_mongo_take_new(const mongoc_client_t *client,
                        mongoc_collection_t *coll, const bson_t *query,
                        mongoc_find_and_modify_opts_t *opts, bson_t *reply,
                        bson_error_t *error);

/* 1 when the error is transient: network, server selection, timeouts, not
 * primary, shutting down, interrupted. */
int dip_mongo_is_transient(const bson_error_t *error);
/* The same rule on a server error code alone. */
int dip_mongo_code_is_transient(int64_t code);
/* 1 when a write reply's writeErrors hold one whose code is transient (a
 * statement interrupted by a step-down, a time limit, a shutdown): that
 * statement was not refused but not done, so the write is to be sent
 * again whatever the other statements' errors; libmongoc's error names
 * only the first write error, which may be a final one of another
 * statement. */
int dip_mongo_write_errors_transient(const bson_t *reply);
/* Sets error to the transient error such a write is retried as
 * (11602, InterruptedDueToReplStateChange), saying `what` was
 * interrupted. */
void dip_mongo_set_interrupted(bson_error_t *error, const char *what);

/* Sleeps for attempt's backoff: base_ms * 2^(attempt-1), +-25% jitter. */
void dip_mongo_backoff(long base_ms, int attempt);

#endif
