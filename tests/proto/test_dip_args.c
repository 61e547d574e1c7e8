/* dip_args: a table of command lines (the worker's options) and what each
 * must give: the verdict, the word blamed, and the values stored.
 *
 * Failure classes: 11 (types): a number is a whole decimal in range, never
 * strtol's loose prefix ("12x", "", "-1", past the max, past long long);
 * 14: each row checks stored values, so a parser that accepted and dropped
 * a value fails. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "dip_exit.h"

#include "dip_args.h"

#define MAXARGV 8

static void test_table(void **state)
{
    static const struct {
        const char *argv[MAXARGV]; /* after the program name, NULL-ended */
        int rc;
        const char *bad;             /* the word blamed, for BAD */
        const char *queue, *config;  /* stored strings, or NULL */
        long long epoch, secrets_fd; /* stored numbers (-1: untouched) */
    } cases[] = {
        {{NULL}, DIP_ARGS_RUN, NULL, NULL, NULL, -1, -1},
        {{"--queue-id", "q1", "--epoch", "7", NULL},
         DIP_ARGS_RUN,
         NULL,
         "q1",
         NULL,
         7,
         -1},
        {{"--queue-id=q2", "--config=/etc/d.env", "--secrets-fd", "0", NULL},
         DIP_ARGS_RUN,
         NULL,
         "q2",
         "/etc/d.env",
         -1,
         0},
        {{"--secrets-fd", "1048576", NULL},
         DIP_ARGS_RUN,
         NULL,
         NULL,
         NULL,
         -1,
         1048576},
        {{"--secrets-fd", "1048577", NULL},
         DIP_ARGS_BAD,
         "1048577",
         NULL,
         NULL,
         -1,
         -1},
        {{"--epoch", "-1", NULL}, DIP_ARGS_BAD, "-1", NULL, NULL, -1, -1},
        {{"--epoch", "12x", NULL}, DIP_ARGS_BAD, "12x", NULL, NULL, -1, -1},
        {{"--epoch", "", NULL}, DIP_ARGS_BAD, "", NULL, NULL, -1, -1},
        {{"--epoch", "99999999999999999999", NULL},
         DIP_ARGS_BAD,
         "99999999999999999999",
         NULL,
         NULL,
         -1,
         -1},
        {{"--bogus", NULL}, DIP_ARGS_BAD, "--bogus", NULL, NULL, -1, -1},
        {{"--queue-id", NULL}, DIP_ARGS_BAD, "--queue-id", NULL, NULL, -1, -1},
        {{"--queue-id", "q3", "extra", NULL},
         DIP_ARGS_BAD,
         "extra",
         "q3",
         NULL,
         -1,
         -1},
        {{"-x", NULL}, DIP_ARGS_BAD, "-x", NULL, NULL, -1, -1},
        {{"--help", "--bogus", NULL}, DIP_ARGS_HELP, NULL, NULL, NULL, -1, -1},
        {{"--version", NULL}, DIP_ARGS_VERSION, NULL, NULL, NULL, -1, -1},
        /* a later value wins, as getopt has it */
        {{"--config", "a", "--config", "b", NULL},
         DIP_ARGS_RUN,
         NULL,
         NULL,
         "b",
         -1,
         -1},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *argv[MAXARGV + 1];
        int argc = 0;
        const char *queue = NULL, *config = NULL, *bad = NULL;
        long long epoch = -1, secrets_fd = -1;
        const dip_arg_t args[] = {
            {"queue-id", &queue, NULL, 0},
            {"config", &config, NULL, 0},
            {"epoch", NULL, &epoch, INT64_MAX},
            {"secrets-fd", NULL, &secrets_fd, 1 << 20},
        };
        int rc;
        argv[argc++] = (char *)"prog";
        for (int k = 0; cases[i].argv[k]; k++)
            argv[argc++] = (char *)cases[i].argv[k];
        argv[argc] = NULL;
        rc = dip_args_parse(argc, argv, args, 4, &bad);
        if (rc != cases[i].rc)
            fail_msg("case %zu: verdict %d, want %d", i, rc, cases[i].rc);
        if (cases[i].bad)
            assert_string_equal(bad ? bad : "(none)", cases[i].bad);
        if (rc == DIP_ARGS_RUN || cases[i].queue) {
            if (cases[i].queue)
                assert_string_equal(queue ? queue : "(none)", cases[i].queue);
            else
                assert_null(queue);
            if (cases[i].config)
                assert_string_equal(config ? config : "(none)",
                                    cases[i].config);
            else
                assert_null(config);
        }
        if (rc == DIP_ARGS_RUN) {
            assert_int_equal(epoch, cases[i].epoch);
            assert_int_equal(secrets_fd, cases[i].secrets_fd);
        }
    }
}

static int helped;

static void count_help(void)
{
    helped++;
}

/* dip_args_start: what each outcome returns, and the one line a bad word
 * prints on stderr (read back from a file put in its place). */
static void test_start(void **state)
{
    static const struct {
        const char *word; /* the one argument */
        int rc, helped;
        const char *said; /* on stderr, or "" */
    } cases[] = {
        {"--help", 0, 1, ""},
        {"--version", 0, 0, ""},
        {"--nope", DIP_EXIT_USAGE, 0,
         "prog: bad argument '--nope'; usage: prog [--config FILE]\n"},
        {"--config=c.env", DIP_ARGS_GO_ON, 0, ""},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *config = NULL;
        const dip_arg_t args[] = {{"config", &config, NULL, 0}};
        char *argv[] = {(char *)"prog", (char *)cases[i].word, NULL};
        char said[256] = "";
        FILE *f = tmpfile();
        int saved = dup(2), rc;
        size_t got;
        assert_non_null(f);
        assert_true(saved >= 0);
        helped = 0;
        fflush(stderr);
        assert_true(dup2(fileno(f), 2) >= 0);
        rc = dip_args_start(2, argv, args, 1, "prog",
                            "usage: prog [--config FILE]\n", count_help);
        fflush(stdout);
        fflush(stderr);
        dup2(saved, 2);
        close(saved);
        rewind(f);
        got = fread(said, 1, sizeof(said) - 1, f);
        said[got] = '\0';
        fclose(f);
        if (rc != cases[i].rc)
            fail_msg("case %zu: returned %d, want %d", i, rc, cases[i].rc);
        assert_int_equal(helped, cases[i].helped);
        assert_string_equal(said, cases[i].said);
        if (rc == DIP_ARGS_GO_ON)
            assert_string_equal(config ? config : "(none)", "c.env");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_start),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
