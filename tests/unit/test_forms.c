/*  test_forms.c: lib/forms.c, the identifier and date recognisers. */

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "maillage/forms.h"

#define S(x) x, strlen(x)

static void
test_utf8(void **state)
{
    (void)state;
    size_t n;
    assert_true(mlg_utf8_check(S("Département"), &n));
    assert_int_equal(n, 11);
    assert_true(mlg_utf8_check(S("\xf0\x9f\x98\x80"), &n)); /* U+1F600 */
    assert_int_equal(n, 1);
    assert_true(mlg_utf8_check("", 0, &n));
    assert_int_equal(n, 0);
    assert_false(mlg_utf8_check(S("\xc0\x80"), NULL));         /* overlong NUL */
    assert_false(mlg_utf8_check(S("\xe0\x80\xaf"), NULL));     /* overlong */
    assert_false(mlg_utf8_check(S("\xed\xa0\x80"), NULL));     /* surrogate */
    assert_false(mlg_utf8_check(S("\xf4\x90\x80\x80"), NULL)); /* > U+10FFFF */
    assert_false(mlg_utf8_check(S("\xc3"), NULL));             /* truncated */
    assert_false(mlg_utf8_check(S("\xe2\x82"), NULL));
    assert_false(mlg_utf8_check(S("\x80"), NULL)); /* lone continuation */
    assert_false(mlg_utf8_check(S("\xff"), NULL));
    /* the length bound is respected: a lead byte at the end of the range
       does not read the continuation that follows in memory */
    assert_false(mlg_utf8_check("\xc3\xa9", 1, NULL));
}

/* Text from outside made valid UTF-8: stray bytes and NUL escaped, cut
   at a character boundary by bytes and by characters. */
static void
test_text_clean(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(mlg_text_clean(out, sizeof(out), S("Département"), 100), 12);
    assert_string_equal(out, "Département");
    mlg_text_clean(out, sizeof(out),
                   S("a\xff\xfe"
                     "b"),
                   100);
    assert_string_equal(out, "a\\xFF\\xFEb");
    mlg_text_clean(out, sizeof(out), "a\0b", 3, 100);
    assert_string_equal(out, "a\\x00b");
    mlg_text_clean(out, sizeof(out), S("\xe2\x82"), 100); /* a cut € */
    assert_string_equal(out, "\\xE2\\x82");
    /* 7 bytes of room: two € (6 bytes), never half of the third */
    assert_int_equal(mlg_text_clean(out, 7, S("€€€"), 100), 6);
    assert_string_equal(out, "€€");
    assert_int_equal(mlg_text_clean(out, 6, S("€€€"), 100), 3);
    /* by characters: an escape counts its four */
    mlg_text_clean(out, sizeof(out), S("€€€"), 2);
    assert_string_equal(out, "€€");
    mlg_text_clean(out, sizeof(out), S("ab\xff"), 5);
    assert_string_equal(out, "ab");
    mlg_text_clean(out, sizeof(out), S("ab\xff"), 6);
    assert_string_equal(out, "ab\\xFF");
    size_t n;
    for (int c = 0; c < 256; c++) { /* whatever the byte, the result is text */
        char in[3] = {(char)c, (char)(255 - c), 'x'};
        size_t len = mlg_text_clean(out, sizeof(out), in, 3, 100);
        assert_true(mlg_utf8_check(out, len, &n));
        assert_null(memchr(out, '\0', len));
    }
}

static void
test_agency_and_ids(void **state)
{
    (void)state;
    assert_true(mlg_is_agency_id(S("cd75")));
    assert_true(mlg_is_agency_id(S("ars-idf")));
    assert_false(mlg_is_agency_id(S("")));
    assert_false(mlg_is_agency_id(S("9cd")));
    assert_false(mlg_is_agency_id(S("cd.75")));
    assert_true(mlg_is_message_id(S("00000000-0000-0000-0000-000000000000")));
    assert_false(mlg_is_message_id(S("0000000A-0000-0000-0000-000000000000")));
    assert_true(mlg_is_uuid(S("0000000A-0000-0000-0000-000000000000")));
    assert_false(mlg_is_uuid(S("00000000-0000-0000-0000-00000000000")));
    assert_false(mlg_is_uuid(S("00000000_0000-0000-0000-000000000000")));
}

static void
test_event_type(void **state)
{
    (void)state;
    assert_true(mlg_is_event_type(S("referral.created")));
    assert_true(mlg_is_event_type(S("health.summary.shared")));
    assert_true(mlg_is_event_type(S("ping")));
    assert_false(mlg_is_event_type(S("")));
    assert_false(mlg_is_event_type(S(".a")));
    assert_false(mlg_is_event_type(S("a.")));
    assert_false(mlg_is_event_type(S("a..b")));
    assert_false(mlg_is_event_type(S("a.B")));
    assert_false(mlg_is_event_type(S("a.b1")));
    assert_false(mlg_is_event_type(S("a-b.c")));
    char long_type[66];
    memset(long_type, 'a', 65);
    long_type[65] = '\0';
    assert_false(mlg_is_event_type(S(long_type)));
    assert_true(mlg_is_event_type(long_type, 64));
}

static void
test_subject(void **state)
{
    (void)state;
    assert_true(mlg_is_subject(S("INS-1 23")));
    assert_true(mlg_is_subject(S("pseudonyme-é")));
    assert_false(mlg_is_subject(S("")));
    assert_false(mlg_is_subject(S("a\tb")));
    assert_false(mlg_is_subject(S("a\x7f")));
    assert_false(mlg_is_subject(S("a\xc2\x85"))); /* NEL, a C1 control */
    assert_false(mlg_is_subject("a\0b", 3));
    char s[300];
    memset(s, 'x', 129);
    assert_true(mlg_is_subject(s, 128));
    assert_false(mlg_is_subject(s, 129));
}

static void
test_dates(void **state)
{
    (void)state;
    assert_true(mlg_is_date(S("2024-02-29")));
    assert_true(mlg_is_date(S("2000-02-29")));
    assert_false(mlg_is_date(S("2100-02-29")));
    assert_false(mlg_is_date(S("2025-02-30")));
    assert_false(mlg_is_date(S("2025-06-31")));
    assert_true(mlg_is_date(S("2025-12-31")));
    assert_false(mlg_is_date(S("2025-12-32")));
    assert_true(mlg_is_date_time(S("2025-12-31T23:59:59.5+14:00")));
    assert_false(mlg_is_date_time(S("2025-12-31T23:59:59+24:00")));
    assert_false(mlg_is_date_time(S("2025-12-31T23:59:59+01:60")));
    assert_false(mlg_is_date_time(S("2025-12-31T23:59:59Zjunk")));
    /* never reads past the given length */
    assert_false(mlg_is_date_time("2025-12-31T23:59:59Z", 19));
}

static void
test_email(void **state)
{
    (void)state;
    assert_true(mlg_is_email(S("accueil@ccas-paris13.fr")));
    assert_false(mlg_is_email(S("accueil@ccas")));
    assert_false(mlg_is_email(S("<a@b.fr>")));
    assert_false(mlg_is_email(S("a@b.fr\n")));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8),           cmocka_unit_test(test_text_clean),
        cmocka_unit_test(test_agency_and_ids), cmocka_unit_test(test_event_type),
        cmocka_unit_test(test_subject),        cmocka_unit_test(test_dates),
        cmocka_unit_test(test_email),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
