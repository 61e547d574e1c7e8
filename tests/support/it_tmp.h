/*
 * it_tmp: where a test writes its temporary files. Every test that CTest
 * runs is started by tests/run/run_tmp.c in a folder of its own, named by
 * TMPDIR, which is removed when the test passes and kept (and named) when
 * it fails; a test therefore names every file, folder, socket and log it
 * makes under it_tmpdir(), never under a hard-coded "/tmp" (tests/tmp_paths.sh
 * fails on such a literal).
 */
#ifndef IT_TMP_H
#define IT_TMP_H

#include <stdio.h>
#include <stdlib.h>

/* TMPDIR when set and not empty, else "/tmp" (a test run by hand, outside
 * CTest). The string belongs to the environment: not to be freed. */
static inline const char *it_tmpdir(void)
{
    const char *dir = getenv("TMPDIR");
    return dir != NULL && *dir != '\0' ? dir : "/tmp";
}

/* Fills buf with it_tmpdir() + "/" + name (a mkstemp or mkdtemp template,
 * or a plain name) and returns buf; a name cut short by len exits 1, as a
 * path that is not the one meant would be worse than no test. */
static inline char *it_tmp_name(char *buf, size_t len, const char *name)
{
    int n = snprintf(buf, len, "%s/%s", it_tmpdir(), name);
    if (n < 0 || (size_t)n >= len) {
        fprintf(stderr, "the path '%s/%s' is too long\n", it_tmpdir(), name);
        exit(1);
    }
    return buf;
}

#endif
