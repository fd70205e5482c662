/*  test_pgbin.c: PostgreSQL's binary array and COPY formats, byte for
    byte (the e2e tests have PostgreSQL read them). */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pgbin.h"

static void
test_array_of_int8_and_null(void **state)
{
    (void)state;
    brk_pgbin_t b = {0};
    brk_pgbin_array_start(&b, BRK_OID_INT8);
    brk_pgbin_int(&b, 258, 8);
    brk_pgbin_null(&b);
    brk_pgbin_array_finish(&b);
    static const uint8_t want[] = {
        0,    0,    0,    1,                            /* one dimension */
        0,    0,    0,    1,                            /* has a null */
        0,    0,    0,    20,                           /* int8 */
        0,    0,    0,    2,                            /* two elements */
        0,    0,    0,    1,                            /* from 1 */
        0,    0,    0,    8,    0, 0, 0, 0, 0, 0, 1, 2, /* 258 */
        0xff, 0xff, 0xff, 0xff,                         /* NULL */
    };
    assert_false(b.failed);
    assert_int_equal(b.n, sizeof(want));
    assert_memory_equal(b.p, want, sizeof(want));
    free(b.p);
}

static void
test_empty_array_has_no_dimension(void **state)
{
    (void)state;
    brk_pgbin_t b = {0};
    brk_pgbin_array_start(&b, BRK_OID_TEXT);
    brk_pgbin_array_finish(&b);
    static const uint8_t want[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 25};
    assert_int_equal(b.n, sizeof(want));
    assert_memory_equal(b.p, want, sizeof(want));
    /* started again, the buffer is reused */
    brk_pgbin_array_start(&b, BRK_OID_TEXT);
    brk_pgbin_text(&b, "ab");
    brk_pgbin_array_finish(&b);
    assert_int_equal(b.n, 20 + 4 + 2);
    assert_int_equal(b.p[3], 1);
    assert_int_equal(b.p[7], 0); /* no null */
    assert_memory_equal(b.p + 24, "ab", 2);
    free(b.p);
}

static void
test_time_counts_from_2000(void **state)
{
    (void)state;
    brk_pgbin_t b = {0};
    brk_pgbin_array_start(&b, BRK_OID_TIMESTAMPTZ);
    brk_pgbin_time(&b, INT64_C(946684800000001)); /* 2000-01-01 00:00:00.000001 */
    brk_pgbin_time(&b, 0);                        /* 1970: before, negative */
    brk_pgbin_array_finish(&b);
    static const uint8_t one[] = {0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1};
    assert_memory_equal(b.p + 20, one, sizeof(one));
    /* -946684800000000 in two's complement */
    static const uint8_t before[] = {0,    0,    0,    8,    0xff, 0xfc,
                                     0xa2, 0xfe, 0xc4, 0xc8, 0x20, 0x00};
    assert_memory_equal(b.p + 32, before, sizeof(before));
    free(b.p);
}

static void
test_uuid(void **state)
{
    (void)state;
    brk_pgbin_t b = {0};
    brk_pgbin_array_start(&b, BRK_OID_UUID);
    brk_pgbin_uuid(&b, "0d3e8a52-7c1b-4f6e-8a9d-2b4c6e8f0A1B");
    brk_pgbin_uuid(&b, "");
    brk_pgbin_array_finish(&b);
    static const uint8_t want[] = {0,    0,    0,    16,   0x0d, 0x3e, 0x8a, 0x52,
                                   0x7c, 0x1b, 0x4f, 0x6e, 0x8a, 0x9d, 0x2b, 0x4c,
                                   0x6e, 0x8f, 0x0a, 0x1b, 0xff, 0xff, 0xff, 0xff};
    assert_false(b.failed);
    assert_memory_equal(b.p + 20, want, sizeof(want));
    assert_int_equal(b.p[7], 1); /* the empty one is NULL */
    /* malformed: short, long, a digit out of place, a missing dash */
    const char *bad[] = {"0d3e8a52-7c1b-4f6e-8a9d-2b4c6e8f0a1",
                         "0d3e8a52-7c1b-4f6e-8a9d-2b4c6e8f0a1b0",
                         "0d3e8a52-7c1b-4f6e-8a9d-2b4c6e8f0a1g",
                         "0d3e8a527c1b-4f6e-8a9d-2b4c6e8f0a1b0", "x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        brk_pgbin_t c = {0};
        brk_pgbin_array_start(&c, BRK_OID_UUID);
        brk_pgbin_uuid(&c, bad[i]);
        assert_true(c.failed);
        free(c.p);
    }
    free(b.p);
}

static void
test_copy_stream(void **state)
{
    (void)state;
    brk_pgbin_t b = {0};
    brk_pgbin_copy_start(&b);
    brk_pgbin_copy_row(&b, 2);
    brk_pgbin_int(&b, 7, 4);
    brk_pgbin_text(&b, NULL);
    brk_pgbin_copy_end(&b);
    static const uint8_t want[] = {'P',  'G',  'C',  'O',  'P', 'Y', '\n', 0xff,
                                   '\r', '\n', 0,    0,    0,   0,   0, /* flags */
                                   0,    0,    0,    0,                 /* extension */
                                   0,    2,                             /* two fields */
                                   0,    0,    0,    4,    0,   0,   0,    7,
                                   0xff, 0xff, 0xff, 0xff, /* NULL */
                                   0xff, 0xff};            /* the end */
    assert_int_equal(b.n, sizeof(want));
    assert_memory_equal(b.p, want, sizeof(want));
    free(b.p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_array_of_int8_and_null),
        cmocka_unit_test(test_empty_array_has_no_dimension),
        cmocka_unit_test(test_time_counts_from_2000),
        cmocka_unit_test(test_uuid),
        cmocka_unit_test(test_copy_stream),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
