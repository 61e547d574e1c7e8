/*
 * Tests dip_curve_io: keygen writes a secret file only its owner can read
 * and a public file whose key derives from it; key files with comments are
 * read, bad ones are refused with the file named; a FIFO or a directory in
 * a key file's place is refused at once, never waited on; a clients
 * directory lists exactly the keys in its regular files.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dip_curve_io.h"
#include "it_tmp.h"

static char dir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "%s/test-curve-XXXXXX", it_tmpdir());
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[512];
    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_keygen_and_read(void **state)
{
    char prefix[384], path[512], pub[41], sec[41], pub2[41], again[41];
    char err[512];
    struct stat st;
    (void)state;
    snprintf(prefix, sizeof(prefix), "%s/server", dir);
    assert_int_equal(dip_curve_keygen(prefix, pub, err, sizeof(err)), 0);
    assert_int_equal(strlen(pub), DIP_CURVE_KEY_LEN);
    snprintf(path, sizeof(path), "%s.key", prefix);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(
        dip_curve_read_key(path, "a secret key", sec, err, sizeof(err)), 0);
    assert_int_equal(dip_curve_public(sec, pub2), 0);
    assert_string_equal(pub, pub2);
    snprintf(path, sizeof(path), "%s.pub", prefix);
    assert_int_equal(
        dip_curve_read_key(path, "a public key", again, err, sizeof(err)), 0);
    assert_string_equal(again, pub);
    /* Never over an existing key. */
    assert_int_equal(dip_curve_keygen(prefix, pub2, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "server.key"));
    assert_non_null(strstr(err, "File exists"));
}

static void test_bad_key_files(void **state)
{
    char path[512], key[41], err[512];
    (void)state;
    snprintf(path, sizeof(path), "%s/short", dir);
    write_text(path, "# comment\n\n  abc\n");
    assert_int_equal(dip_curve_read_key(path, "the supervisor's secret key",
                                        key, err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "does not hold the supervisor's secret key"));
    assert_non_null(strstr(err, "/short'"));
    snprintf(path, sizeof(path), "%s/missing", dir);
    assert_int_equal(dip_curve_read_key(path, "a key", key, err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "cannot read a key from"));
    /* 40 characters, but '"' is not in the Z85 alphabet. */
    snprintf(path, sizeof(path), "%s/notz85", dir);
    write_text(path, "\"234567890123456789012345678901234567890\n");
    assert_int_equal(dip_curve_read_key(path, "a key", key, err, sizeof(err)),
                     -1);
    assert_int_equal(dip_curve_public("not a key", key), -1);
}

/* A FIFO nobody writes to: opening it for reading would wait forever. An
 * alarm turns a wait into a failure of this test instead of a hang. */
static void test_fifo_and_directory(void **state)
{
    char path[512], key[41], err[512], clients[384], pub[41], text[1024];
    (void)state;
    alarm(20);
    snprintf(path, sizeof(path), "%s/fifo.key", dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_int_equal(dip_curve_read_key(path, "a key", key, err, sizeof(err)),
                     -1);
    snprintf(text, sizeof(text),
             "cannot read a key from '%s': not a regular "
             "file",
             path);
    assert_string_equal(err, text);
    assert_int_equal(dip_curve_read_key(dir, "a key", key, err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "not a regular file"));

    /* In a clients directory a FIFO is passed over; the keys in the other
     * files still count. */
    snprintf(clients, sizeof(clients), "%s/fifo-clients", dir);
    assert_int_equal(mkdir(clients, 0700), 0);
    snprintf(path, sizeof(path), "%s/aaa-fifo", clients);
    assert_int_equal(mkfifo(path, 0600), 0);
    snprintf(path, sizeof(path), "%s/k", dir);
    assert_int_equal(dip_curve_keygen(path, pub, err, sizeof(err)), 0);
    snprintf(path, sizeof(path), "%s/zzz-keys", clients);
    write_text(path, pub);
    assert_int_equal(dip_curve_key_listed(clients, pub), 1);
    assert_int_equal(dip_curve_key_listed(
                         clients, "0000000000000000000000000000000000000000"),
                     0);
    alarm(0);
}

static void test_clients_dir(void **state)
{
    char clients[384], path[1024], a[41], b[41], c[41], err[256], text[256];
    (void)state;
    snprintf(clients, sizeof(clients), "%s/clients", dir);
    mkdir(clients, 0700);
    snprintf(path, sizeof(path), "%s/a", dir);
    assert_int_equal(dip_curve_keygen(path, a, err, sizeof(err)), 0);
    snprintf(path, sizeof(path), "%s/b", dir);
    assert_int_equal(dip_curve_keygen(path, b, err, sizeof(err)), 0);
    snprintf(path, sizeof(path), "%s/c", dir);
    assert_int_equal(dip_curve_keygen(path, c, err, sizeof(err)), 0);
    snprintf(path, sizeof(path), "%s/ops", clients);
    snprintf(text, sizeof(text), "# operators\n%s\n  %s  \n", a, b);
    write_text(path, text);
    /* Hidden files are not read. */
    snprintf(path, sizeof(path), "%s/.old", clients);
    write_text(path, c);
    assert_int_equal(dip_curve_key_listed(clients, a), 1);
    assert_int_equal(dip_curve_key_listed(clients, b), 1);
    assert_int_equal(dip_curve_key_listed(clients, c), 0);
    assert_int_equal(dip_curve_key_listed("/nonexistent/dir", a), -1);
}

/* The keys read once: the same answers as a directory read (the key's file
 * name too), and a
 * signature that changes when a file is written, added or removed. */
static void test_keys_once(void **state)
{
    char clients[384], path[1024], a[41], b[41], c[41], err[256], text[256];
    dip_curve_keys_t keys = {0};
    unsigned long long s1, s2, s3;
    (void)state;
    snprintf(clients, sizeof(clients), "%s/clients-once", dir);
    mkdir(clients, 0700);
    snprintf(path, sizeof(path), "%s/once-a", dir);
    assert_int_equal(dip_curve_keygen(path, a, err, sizeof(err)), 0);
    snprintf(path, sizeof(path), "%s/once-b", dir);
    assert_int_equal(dip_curve_keygen(path, b, err, sizeof(err)), 0);
    snprintf(path, sizeof(path), "%s/once-c", dir);
    assert_int_equal(dip_curve_keygen(path, c, err, sizeof(err)), 0);
    snprintf(path, sizeof(path), "%s/ops", clients);
    snprintf(text, sizeof(text), "# operators\n%s\nnot a key\n", a);
    write_text(path, text);
    snprintf(path, sizeof(path), "%s/.old", clients);
    write_text(path, c);
    assert_int_equal(dip_curve_keys_load(clients, &keys), 0);
    assert_int_equal(keys.n, 1);
    assert_int_equal(dip_curve_keys_has(&keys, a), 1);
    assert_int_equal(dip_curve_keys_has(&keys, b), 0);
    assert_int_equal(dip_curve_keys_has(&keys, c), 0);
    assert_int_equal(dip_curve_keys_signature(clients, &s1), 0);
    assert_true(s1 == keys.sig);
    /* a file added */
    snprintf(path, sizeof(path), "%s/more", clients);
    write_text(path, b);
    assert_int_equal(dip_curve_keys_signature(clients, &s2), 0);
    assert_true(s2 != s1);
    assert_int_equal(dip_curve_keys_load(clients, &keys), 0);
    assert_int_equal(dip_curve_keys_has(&keys, b), 1);
    /* the cache names the file that lists a key, as a directory read
     * does (the name a client's requests are logged under) */
    {
        char file[64] = "", cut[3] = "";
        assert_int_equal(dip_curve_keys_find(&keys, b, file, sizeof(file)), 1);
        assert_string_equal(file, "more");
        assert_int_equal(dip_curve_key_find(clients, b, file, sizeof(file)), 1);
        assert_string_equal(file, "more");
        assert_int_equal(dip_curve_keys_find(&keys, a, file, sizeof(file)), 1);
        assert_string_equal(file, "ops");
        assert_int_equal(dip_curve_keys_find(&keys, a, cut, sizeof(cut)), 1);
        assert_string_equal(cut, "op");
        assert_int_equal(dip_curve_keys_find(&keys, c, file, sizeof(file)), 0);
    }
    /* a file written again in place (another size) */
    snprintf(path, sizeof(path), "%s/ops", clients);
    snprintf(text, sizeof(text), "%s\n", c);
    write_text(path, text);
    assert_int_equal(dip_curve_keys_signature(clients, &s3), 0);
    assert_true(s3 != s2);
    assert_int_equal(dip_curve_keys_load(clients, &keys), 0);
    assert_int_equal(dip_curve_keys_has(&keys, a), 0);
    assert_int_equal(dip_curve_keys_has(&keys, c), 1);
    /* unreadable: empty, and said so */
    assert_int_equal(dip_curve_keys_load("/nonexistent/dir", &keys), -1);
    assert_int_equal(keys.n, 0);
    dip_curve_keys_release(&keys);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keygen_and_read),
        cmocka_unit_test(test_bad_key_files),
        cmocka_unit_test(test_clients_dir),
        cmocka_unit_test(test_keys_once),
        cmocka_unit_test(test_fifo_and_directory),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
