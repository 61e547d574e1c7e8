/*
 * it_rs: step-downs of the development MongoDB server through its devStepDown
 * admin command, sent with a read preference that a secondary accepts, so it
 * reaches the server whatever its state; and its change-stream faults.
 */
#include "it_rs.h"

#include <stdio.h>

static int dev_step_down(it_env_t *env, double secs, const char *first,
                         bson_error_t *error)
{
    bson_t *cmd = BCON_NEW("devStepDown", BCON_DOUBLE(secs), "firstWrite",
                           BCON_UTF8(first));
    mongoc_read_prefs_t *prefs =
        mongoc_read_prefs_new(MONGOC_READ_PRIMARY_PREFERRED);
    bool ok = mongoc_client_command_simple(env->client, "admin", cmd, prefs,
                                           NULL, error);
    bson_destroy(cmd);
    mongoc_read_prefs_destroy(prefs);
    return ok ? 0 : -1;
}

int it_rs_can_step_down(it_env_t *env)
{
    bson_error_t error;
    /* A negative duration only reports the state. */
    return dev_step_down(env, -1, "none", &error) == 0;
}

int it_rs_step_down(it_env_t *env, double secs, const char *first)
{
    bson_error_t error;
    if (dev_step_down(env, secs, first, &error) == 0)
        return 0;
    fprintf(stderr, "devStepDown %g failed: %s\n", secs, error.message);
    return -1;
}

int it_rs_stream_fault(it_env_t *env, int history)
{
    bson_t *cmd = history ? BCON_NEW("devDropChangeHistory", BCON_INT32(1),
                                     "all", BCON_BOOL(true))
                          : BCON_NEW("devDropChangeStreams", BCON_INT32(1));
    mongoc_read_prefs_t *prefs =
        mongoc_read_prefs_new(MONGOC_READ_PRIMARY_PREFERRED);
    bson_error_t error;
    bool ok = mongoc_client_command_simple(env->client, "admin", cmd, prefs,
                                           NULL, &error);
    bson_destroy(cmd);
    mongoc_read_prefs_destroy(prefs);
    if (ok)
        return 0;
    fprintf(stderr, "%s failed: %s\n",
            history ? "devDropChangeHistory" : "devDropChangeStreams",
            error.message);
    return -1;
}
