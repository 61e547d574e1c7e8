/*
 * it_skip: the two kinds of skip a test may make, so that a skip cannot hide
 * a missing install step. A skip for something the project installs or
 * starts (a package, a tool, the development stack, the shared material) is a
 * failure where CI=true: CI installs and starts all of it, so such a skip
 * there means a step is missing. A skip for what this machine cannot offer
 * (a kernel without a delegated cgroup v2 subtree, a sanitizer build's
 * limits, an opt-in measurement) stays a skip everywhere. Both say why.
 * Header-only: unit tests include it without linking the integration support.
 */
#ifndef IT_SKIP_H
#define IT_SKIP_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 1 where CI=true (the CI run), else 0. */
static inline int it_skip_ci(void)
{
    const char *v = getenv("CI");
    return v != NULL && strcmp(v, "true") == 0;
}

/* The exit status of a test program that cannot run at all for want of
 * something the project installs or starts: 77 (ctest's skip) normally, 1
 * (a failure) where CI=true. Print the reason first. */
static inline int it_skip_status(void)
{
    if (it_skip_ci()) {
        fprintf(stderr, "CI=true: a missing package, tool or service is a "
                        "failure, not a skip\n");
        return 1;
    }
    return 77;
}

/* In a cmocka test: skips for want of something the project installs or
 * starts (reason printed), and fails instead where CI=true. */
#define IT_SKIP_MISSING(...)                                                   \
    do {                                                                       \
        print_message(__VA_ARGS__);                                            \
        if (it_skip_ci())                                                      \
            fail_msg("CI=true: a missing package, tool or service is a "       \
                     "failure, not a skip");                                   \
        skip();                                                                \
    } while (0)

/* In a cmocka test: skips for what this machine or build cannot offer
 * (reason printed), in CI too. */
#define IT_SKIP_MACHINE(...)                                                   \
    do {                                                                       \
        print_message(__VA_ARGS__);                                            \
        skip();                                                                \
    } while (0)

#endif
