/*
 * wrk_handoff: a document handed on a descriptor is read whole, from offset
 * 0 whatever the descriptor's offset, and the descriptor is closed; a file
 * that is no document (empty, cut short, a length field that lies, garbage
 * inside) is refused with a sentence, so the worker reads the database
 * instead of trusting it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "wrk_handoff.h"

/* A memfd holding len bytes of data, its offset at the end. */
static int file_of(const void *data, size_t len)
{
    int fd = memfd_create("test-handoff", MFD_CLOEXEC);
    assert_true(fd >= 0);
    if (len)
        assert_int_equal(write(fd, data, len), (ssize_t)len);
    return fd;
}

static void test_read_whole(void **state)
{
    bson_t *doc = BCON_NEW("_id", BCON_INT32(7), "csv", "[", "{", "key",
                           BCON_UTF8("imports/a.csv"), "}", "]");
    bson_t out;
    char err[256] = "";
    int fd = file_of(bson_get_data(doc), doc->len);
    (void)state;
    assert_int_equal(wrk_handoff_read(fd, &out, err, sizeof(err)), 0);
    assert_true(bson_equal(&out, doc));
    /* closed by the read */
    assert_int_equal(fcntl(fd, F_GETFD), -1);
    assert_int_equal(errno, EBADF);
    bson_destroy(&out);
    bson_destroy(doc);
}

static void test_refused(void **state)
{
    bson_t *doc =
        BCON_NEW("a", BCON_UTF8("b"), "n", "{", "x", BCON_INT64(1), "}");
    uint8_t bad[256];
    bson_t out;
    char err[256];
    (void)state;
    assert_true(doc->len < sizeof(bad));

    /* empty */
    err[0] = '\0';
    assert_int_equal(wrk_handoff_read(file_of("", 0), &out, err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "0 bytes"));
    bson_destroy(&out);

    /* cut short: the length field says more than there is */
    err[0] = '\0';
    assert_int_equal(wrk_handoff_read(file_of(bson_get_data(doc), doc->len - 3),
                                      &out, err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "not valid BSON"));
    bson_destroy(&out);

    /* garbage inside: an element of an unknown type */
    memcpy(bad, bson_get_data(doc), doc->len);
    bad[4] = 0x7e;
    err[0] = '\0';
    assert_int_equal(
        wrk_handoff_read(file_of(bad, doc->len), &out, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "not valid BSON"));
    bson_destroy(&out);

    /* not a descriptor at all */
    err[0] = '\0';
    assert_int_equal(wrk_handoff_read(-1, &out, err, sizeof(err)), -1);
    assert_true(err[0] != '\0');
    bson_destroy(&out);
    bson_destroy(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_whole),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
