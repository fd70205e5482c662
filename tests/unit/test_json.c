/*  test_json.c: lib/json.c, JSON <-> msgpack. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include "maillage/json.h"
#include "maillage/limits.h"

static char *
through(const char *json)
{
    uint8_t *mp;
    size_t len;
    char err[256];
    mlg_rc_t rc = mlg_json_to_msgpack(json, strlen(json), &mp, &len, err, sizeof(err));
    if (rc != MLG_OK)
        print_error("%s\n", err);
    assert_int_equal(rc, MLG_OK);
    char *back = NULL;
    rc = mlg_msgpack_to_json(mp, len, &back, err, sizeof(err));
    if (rc != MLG_OK)
        print_error("%s\n", err);
    assert_int_equal(rc, MLG_OK);
    free(mp);
    return back;
}

static void
test_roundtrip(void **state)
{
    (void)state;
    const char *cases[] = {
        "{\"a\":1,\"b\":[true,false,null],\"c\":\"é\",\"d\":-5,\"e\":2.5}",
        "[]",
        "\"x\"",
        "{\"big\":9223372036854775807,\"neg\":-9223372036854775807}",
        "{\"nested\":{\"k\":[{\"z\":0}]}}",
        /* empty keys and strings: msgpack-c gives them a NULL pointer
           (found by fuzz_json, fuzz/regressions/json/empty-key.json) */
        "{\"\":6}",
        "{\"\":\"\",\"a\":[\"\"]}",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *back = through(cases[i]);
        assert_string_equal(back, cases[i]);
        free(back);
    }
}

static void
test_types_chosen(void **state)
{
    (void)state;
    uint8_t *mp;
    size_t len;
    assert_int_equal(mlg_json_to_msgpack("[1, -1, 1.5]", 12, &mp, &len, NULL, 0), MLG_OK);
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    assert_int_equal(msgpack_unpack_next(&up, (const char *)mp, len, NULL),
                     MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(up.data.via.array.ptr[0].type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert_int_equal(up.data.via.array.ptr[1].type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
    assert_int_equal(up.data.via.array.ptr[2].type, MSGPACK_OBJECT_FLOAT64);
    msgpack_unpacked_destroy(&up);
    free(mp);
}

static void
test_json_refused(void **state)
{
    (void)state;
    const char *bad[] = {"{\"a\":1,\"a\":2}",   "{", "", "[1,]", "\"\\u0000\"",
                         "18446744073709551616"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t *mp = NULL;
        size_t len;
        char err[256] = "";
        assert_int_equal(
            mlg_json_to_msgpack(bad[i], strlen(bad[i]), &mp, &len, err, sizeof(err)),
            MLG_ERR_JSON);
        assert_true(strlen(err) > 0);
        assert_null(mp);
    }
    /* deeper than MLG_MAX_DEPTH */
    char deep[2 * (MLG_MAX_DEPTH + 2) + 1];
    size_t n = MLG_MAX_DEPTH + 1;
    memset(deep, '[', n);
    memset(deep + n, ']', n);
    deep[2 * n] = '\0';
    uint8_t *mp = NULL;
    size_t len;
    char err[256];
    assert_int_equal(mlg_json_to_msgpack(deep, strlen(deep), &mp, &len, err, sizeof(err)),
                     MLG_ERR_JSON);
    assert_string_equal(err, "nested deeper than 32 levels");
}

static void
test_msgpack_refused(void **state)
{
    (void)state;
    struct {
        const uint8_t bytes[8];
        size_t len;
        mlg_rc_t rc;
    } cases[] = {
        {{0xc4, 0x01, 0x00}, 3, MLG_ERR_JSON},                       /* bin */
        {{0xd4, 0x05, 0x00}, 3, MLG_ERR_JSON},                       /* ext 5 */
        {{0xa2, 0xff, 0xfe}, 3, MLG_ERR_JSON},                       /* bad UTF-8 */
        {{0x81, 0x01, 0x01}, 3, MLG_ERR_JSON},                       /* int key */
        {{0x82, 0xa1, 'a', 0x01, 0xa1, 'a', 0x02}, 7, MLG_ERR_JSON}, /* dup key */
        {{0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 8, MLG_MALFORMED}, /* cut */
        {{0x91}, 1, MLG_MALFORMED},       /* truncated */
        {{0xc0, 0xc0}, 2, MLG_MALFORMED}, /* trailing */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *out = NULL, err[256] = "";
        assert_int_equal(
            mlg_msgpack_to_json(cases[i].bytes, cases[i].len, &out, err, sizeof(err)),
            cases[i].rc);
        assert_null(out);
        assert_true(strlen(err) > 0);
    }
}

static void
test_timestamp_to_json(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_timestamp ts = {1767225600, 123456789};
    msgpack_pack_timestamp(&pk, &ts);
    char *out = NULL;
    assert_int_equal(
        mlg_msgpack_to_json((const uint8_t *)sb.data, sb.size, &out, NULL, 0), MLG_OK);
    assert_string_equal(out, "\"2026-01-01T00:00:00.123456Z\"");
    free(out);
    msgpack_sbuffer_destroy(&sb);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),         cmocka_unit_test(test_types_chosen),
        cmocka_unit_test(test_json_refused),      cmocka_unit_test(test_msgpack_refused),
        cmocka_unit_test(test_timestamp_to_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
