/*
 * wrk_handoff: reads the queue document a supervisor handed over on a
 * descriptor (see wrk_handoff.h).
 */
#include "wrk_handoff.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int wrk_handoff_read(int fd, bson_t *out, char *err, size_t errlen)
{
    struct stat sb;
    uint8_t *data = NULL;
    size_t len = 0, done = 0;
    bson_t view;
    int rc = -1;

    bson_init(out);
    if (fstat(fd, &sb) < 0) {
        snprintf(err, errlen, "the handed queue document: %s", strerror(errno));
        goto cleanup;
    }
    if (sb.st_size < 5 || sb.st_size > WRK_HANDOFF_MAX_BYTES) {
        snprintf(err, errlen,
                 "the handed queue document has %lld bytes, not a document",
                 (long long)sb.st_size);
        goto cleanup;
    }
    len = (size_t)sb.st_size;
    data = malloc(len);
    if (data == NULL) {
        snprintf(err, errlen, "the handed queue document: out of memory");
        goto cleanup;
    }
    while (done < len) {
        ssize_t n = pread(fd, data + done, len - done, (off_t)done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(err, errlen, "the handed queue document: %s",
                     n < 0 ? strerror(errno) : "cut short");
            goto cleanup;
        }
        done += (size_t)n;
    }
    if (!bson_init_static(&view, data, len) ||
        !bson_validate(&view, BSON_VALIDATE_NONE, NULL)) {
        snprintf(err, errlen, "the handed queue document is not valid BSON");
        goto cleanup;
    }
    bson_destroy(out);
    bson_copy_to(&view, out);
    rc = 0;
cleanup:
    free(data);
    close(fd);
    return rc;
}
