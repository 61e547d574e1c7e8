/*
 * sup_nofile: raises the supervisor's soft descriptor limit towards what
 * its listeners and its work need together (see sup_nofile.h).
 */
#include "sup_nofile.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

rlim_t sup_nofile_target(rlim_t soft, rlim_t hard)
{
    rlim_t want = SUP_NOFILE_WANT;
    if (hard != RLIM_INFINITY && hard < want)
        want = hard;
    if (soft == RLIM_INFINITY || soft >= want)
        return soft;
    return want;
}

int sup_nofile_raise(rlim_t *from, rlim_t *to, char *err, size_t errlen)
{
    struct rlimit rl;
    rlim_t want;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
        snprintf(err, errlen, "cannot read the descriptor limit: %s",
                 strerror(errno));
        return -1;
    }
    want = sup_nofile_target(rl.rlim_cur, rl.rlim_max);
    if (want == rl.rlim_cur)
        return 0;
    *from = rl.rlim_cur;
    rl.rlim_cur = want;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
        snprintf(err, errlen,
                 "cannot raise the descriptor limit from %llu to %llu: %s",
                 (unsigned long long)*from, (unsigned long long)want,
                 strerror(errno));
        return -1;
    }
    *to = want;
    return 1;
}
