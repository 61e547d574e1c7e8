/*
 * wrk_handoff: the queue document a supervisor hands the worker it starts
 * right after its claim: the claim's own answer (a findAndModify returns the
 * claimed document whole), so the worker does not read it again. The
 * supervisor writes it to an anonymous file (a memfd) whose descriptor the
 * worker gets with --queue-doc-fd, and passes with --claimed-at the time by
 * the machine's monotonic clock at which it sent that claim: the worker's
 * fence counts the claim as confirmed then, so a worker started late (its
 * supervisor frozen after the claim) checks its claim at once, as if it had
 * read the document itself. A later run of the same claim reads the
 * document from the database (its checkpoint has moved on).
 */
#ifndef WRK_HANDOFF_H
#define WRK_HANDOFF_H

#include <stddef.h>

#include <bson/bson.h>

/* A document larger than MongoDB's limit (16 MiB) and a reply's own
 * envelope is not a queue document. */
#define WRK_HANDOFF_MAX_BYTES (16 * 1024 * 1024 + 16 * 1024)

/* Reads the whole file at descriptor fd from offset 0 into out (initialized
 * by the callee either way) as one BSON document, checked whole (its length
 * field, its structure), and closes fd. 0, or -1 with a sentence in err:
 * the caller then reads the document from the database. */
int wrk_handoff_read(int fd, bson_t *out, char *err, size_t errlen);

#endif
