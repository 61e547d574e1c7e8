/*
 * it_rs: the development MongoDB server as a replica-set member, for the
 * tests that make its primary step down (the dev server's own devStepDown
 * admin command; a real server has no such command and the tests skip).
 */
#ifndef IT_RS_H
#define IT_RS_H

#include "it_env.h"

/* 1 when env's server answers hello as a replica-set member that can be
 * stepped down (the dev server in its default mode), else 0. */
int it_rs_can_step_down(it_env_t *env);

/* Steps the primary down for secs seconds; first is "none" (at once),
 * "writeConcernError" or "interrupt" (when the next write arrives, which is
 * then applied with a writeConcernError, or interrupted). 0 = step up.
 * Returns 0, or -1 with a message on stderr. */
int it_rs_step_down(it_env_t *env, double secs, const char *first);

/* A fault of the change streams: history 0 drops every open stream's
 * connection (devDropChangeStreams: the watchers resume from their
 * tokens); 1 wipes the server's change history (devDropChangeHistory all:
 * every token is lost, 286, and the watchers start afresh). 0, or -1 with a
 * message on stderr. */
int it_rs_stream_fault(it_env_t *env, int history);

#endif
