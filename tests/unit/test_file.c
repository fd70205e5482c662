/*  test_file.c: common/file.c, the bounded whole-file reader of the
    configuration, the migrations and the tools. */

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "file.h"

static char s_path[64];

/* A temporary file of `n` bytes, byte i being i % 251 (so NULs inside). */
static void
s_write(size_t n)
{
    snprintf(s_path, sizeof(s_path), "/tmp/mlg-test-file-XXXXXX");
    int fd = mkstemp(s_path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "wb");
    assert_non_null(f);
    for (size_t i = 0; i < n; i++)
        fputc((int)(i % 251), f);
    assert_int_equal(fclose(f), 0);
}

static void
test_sizes_around_the_bound(void **state)
{
    (void)state;
    /* below, at and past the first chunk (4096) and the bound */
    static const struct {
        size_t size, max;
        bool read;
    } cases[] = {
        {0, 10, true},           {1, 10, true},          {10, 10, true},
        {11, 10, false},         {4096, 4096, true},     {4097, 4096, false},
        {4097, 100000, true},    {100000, 100000, true}, {100001, 100000, false},
        {300000, 100000, false},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        s_write(cases[c].size);
        size_t len = 99;
        char err[256] = "";
        char *text = brk_read_file(s_path, cases[c].max, &len, err, sizeof(err));
        if (cases[c].read) {
            assert_non_null(text);
            assert_int_equal(len, cases[c].size);
            assert_int_equal(text[len], '\0');
            for (size_t i = 0; i < len; i++)
                assert_int_equal((unsigned char)text[i], i % 251);
        }
        else {
            assert_null(text);
            assert_int_equal(len, 0);
            assert_non_null(strstr(err, "larger than"));
            assert_non_null(strstr(err, s_path));
        }
        free(text);
        unlink(s_path);
    }
}

static void
test_missing_file_says_why(void **state)
{
    (void)state;
    size_t len = 0;
    char err[256] = "";
    assert_null(brk_read_file("/nonexistent/mlg-file", 10, &len, err, sizeof(err)));
    assert_string_equal(
        err, "/nonexistent/mlg-file: could not open: No such file or directory");
}

static void
test_folder_is_not_read(void **state)
{
    (void)state;
    size_t len = 0;
    char err[256] = "";
    assert_null(brk_read_file("/tmp", 10, &len, err, sizeof(err)));
    assert_non_null(strstr(err, "/tmp: could not read"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes_around_the_bound),
        cmocka_unit_test(test_missing_file_says_why),
        cmocka_unit_test(test_folder_is_not_read),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
