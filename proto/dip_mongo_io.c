/*
 * dip_mongo_io: client creation and the transient-error policy shared by the
 * worker and the supervisor, so that both retry exactly the same failures.
 */
#include "dip_mongo_io.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void do_init(void)
{
    mongoc_init();
}

void dip_mongo_init(void)
{
    pthread_once(&init_once, do_init);
}

mongoc_client_t *dip_mongo_client_new(const char *uri_str, const char *appname,
                                      const char **db, char *err, size_t errlen)
{
    return dip_mongo_client_new_bounded(uri_str, appname, 0, db, err, errlen);
}

/* Sets a timeout option to ms unless the URI chose it. */
static void bound(mongoc_uri_t *uri, const char *option, int32_t ms)
{
    if (!mongoc_uri_has_option(uri, option))
        mongoc_uri_set_option_as_int32(uri, option, ms);
}

static int32_t part_of(long lease_ms, long parts)
{
    long ms = lease_ms / parts;
    if (ms < DIP_MONGO_MIN_TIMEOUT_MS)
        ms = DIP_MONGO_MIN_TIMEOUT_MS;
    return ms > INT32_MAX ? INT32_MAX : (int32_t)ms;
}

long dip_mongo_call_ms(const mongoc_client_t *client)
{
    const mongoc_uri_t *uri = mongoc_client_get_uri(client);
    return (long)mongoc_uri_get_option_as_int32(uri, MONGOC_URI_SOCKETTIMEOUTMS,
                                                300000) +
           (long)mongoc_uri_get_option_as_int32(
               uri, MONGOC_URI_CONNECTTIMEOUTMS, 10000) +
           100;
}

int64_t dip_mongo_max_time_ms(const mongoc_client_t *client)
{
    const mongoc_uri_t *uri = mongoc_client_get_uri(client);
    int64_t socket_ms =
        mongoc_uri_get_option_as_int32(uri, MONGOC_URI_SOCKETTIMEOUTMS, 300000);
    int64_t ms;

    /* socketTimeoutMS=0 means no timeout: the server's bound is then the
     * driver's default's. */
    if (socket_ms <= 0)
        socket_ms = 300000;
    ms = socket_ms / 4 * 3;
    return ms < DIP_MONGO_MIN_MAX_TIME_MS ? DIP_MONGO_MIN_MAX_TIME_MS : ms;
}

bson_t *dip_mongo_read_opts(const mongoc_client_t *client, const bson_t *opts)
{
    bson_t *out = opts ? bson_copy(opts) : bson_new();

    if (!bson_has_field(out, "maxTimeMS"))
        BSON_APPEND_INT64(out, "maxTimeMS", dip_mongo_max_time_ms(client));
    return out;
}

mongoc_client_t *dip_mongo_client_new_bounded(const char *uri_str,
                                              const char *appname,
                                              long lease_ms, const char **db,
                                              char *err, size_t errlen)
{
    bson_error_t error;
    mongoc_uri_t *uri;
    mongoc_client_t *client = NULL;
    const char *name;

    dip_mongo_init();
    uri = mongoc_uri_new_with_error(uri_str, &error);
    if (uri == NULL) {
        snprintf(err, errlen, "DEALIMPORT_MONGODB_URI is not a valid URI: %s",
                 error.message);
        return NULL;
    }
    /* Fail over quickly to our own retry policy rather than blocking for
     * the driver's 30 s default, unless the operator chose otherwise. */
    if (lease_ms > 0) {
        /* No call may outlive a lease (the driver's socket default is
         * 300 s): a reply may take a quarter of it; choosing a server and
         * connecting to it (the handshake included) a twelfth each, so one
         * call blocks for at most a third. */
        bound(uri, MONGOC_URI_SOCKETTIMEOUTMS, part_of(lease_ms, 4));
        bound(uri, MONGOC_URI_CONNECTTIMEOUTMS, part_of(lease_ms, 12));
        bound(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, part_of(lease_ms, 12));
    } else {
        bound(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, 5000);
    }
    if (!mongoc_uri_has_option(uri, MONGOC_URI_APPNAME))
        mongoc_uri_set_appname(uri, appname);
    client = mongoc_client_new_from_uri(uri);
    if (client == NULL) {
        snprintf(err, errlen, "cannot create a MongoDB client for the URI");
        goto cleanup;
    }
    mongoc_client_set_error_api(client, MONGOC_ERROR_API_VERSION_2);
    name = mongoc_uri_get_database(mongoc_client_get_uri(client));
    *db = name && *name ? name : "crm";
cleanup:
    mongoc_uri_destroy(uri);
    return client;
}

void dip_mongo_client_close(mongoc_client_t *client)
{
    if (client == NULL)
        return;
    mongoc_client_reset(client);
    mongoc_client_destroy(client);
}

int dip_mongo_is_transient(const bson_error_t *e)
{
    if (e->domain == MONGOC_ERROR_STREAM ||
        e->domain == MONGOC_ERROR_SERVER_SELECTION)
        return 1;
    if (e->domain == MONGOC_ERROR_SERVER ||
        e->domain == MONGOC_ERROR_WRITE_CONCERN)
        return dip_mongo_code_is_transient(e->code);
    return 0;
}

int dip_mongo_write_errors_transient(const bson_t *reply)
{
    bson_iter_t it, we, f;
    if (!bson_iter_init_find(&it, reply, "writeErrors") ||
        !BSON_ITER_HOLDS_ARRAY(&it) || !bson_iter_recurse(&it, &we))
        return 0;
    while (bson_iter_next(&we))
        if (BSON_ITER_HOLDS_DOCUMENT(&we) && bson_iter_recurse(&we, &f) &&
            bson_iter_find(&f, "code") &&
            (BSON_ITER_HOLDS_INT32(&f) || BSON_ITER_HOLDS_INT64(&f) ||
             BSON_ITER_HOLDS_DOUBLE(&f)) &&
            dip_mongo_code_is_transient(bson_iter_as_int64(&f)))
            return 1;
    return 0;
}

void dip_mongo_set_interrupted(bson_error_t *error, const char *what)
{
    error->domain = MONGOC_ERROR_SERVER;
    error->code = 11602;
    bson_snprintf(error->message, sizeof(error->message),
                  "a statement of %s was interrupted", what);
}

int dip_mongo_code_is_transient(int64_t code)
{
    {
        switch (code) {
        case 6:     /* HostUnreachable */
        case 7:     /* HostNotFound */
        case 89:    /* NetworkTimeout */
        case 91:    /* ShutdownInProgress */
        case 189:   /* PrimarySteppedDown */
        case 262:   /* ExceededTimeLimit */
        case 9001:  /* SocketException */
        case 10107: /* NotWritablePrimary */
        case 11600: /* InterruptedAtShutdown */
        case 11602: /* InterruptedDueToReplStateChange */
        case 13435: /* NotPrimaryNoSecondaryOk */
        case 13436: /* NotPrimaryOrSecondary */
        case 64:    /* WriteConcernFailed */
        case 50:    /* MaxTimeMSExpired */
            return 1;
        default:
            return 0;
        }
    }
}

void dip_mongo_backoff(long base_ms, int attempt)
{
    double ms = (double)base_ms;
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    for (int i = 1; i < attempt && ms < 3600e3; i++)
        ms *= 2;
    ms *= 0.75 + 0.5 * ((double)rand_r(&seed) / RAND_MAX);
    if (ms > 0) {
        struct timespec ts = {(time_t)(ms / 1000),
                              (long)((long long)ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0)
            ;
    }
}

bool dip_mongo_take_new(const mongoc_client_t *client,
                        mongoc_collection_t *coll, const bson_t *query,
                        mongoc_find_and_modify_opts_t *opts, bson_t *reply,
                        bson_error_t *error)
{
    mongoc_find_and_modify_opts_set_flags(opts,
                                          MONGOC_FIND_AND_MODIFY_RETURN_NEW);
    mongoc_find_and_modify_opts_set_max_time_ms(
        opts, (uint32_t)dip_mongo_max_time_ms(client));
    return mongoc_collection_find_and_modify_with_opts(coll, query, opts, reply,
                                                       error);
}
