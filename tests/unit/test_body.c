/*  test_body.c: lib/body.c, a body's values by JSON Pointer, on a
    decoded message and on one whose body was set by hand. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "maillage/body.h"
#include "maillage/codec.h"
#include "maillage/json.h"

static const char *BODY =
    "{\"consent_id\": \"c-1\", \"parties\": [\"cd75\", \"ccas-paris-13\"],"
    " \"collected_by\": {\"name\": \"Agent\", \"role\": \"x\"},"
    " \"a/b\": \"slash\", \"m~n\": \"tilde\", \"empty\": [], \"n\": 5, \"z\": null,"
    " \"t\": true, \"\": \"unnamed\"}";

/* The body above, in a message built by hand (first) or decoded. */
static mlg_msg_t *
s_msg(bool decoded)
{
    uint8_t *mp;
    size_t len;
    char err[128];
    assert_int_equal(mlg_json_to_msgpack(BODY, strlen(BODY), &mp, &len, err, sizeof(err)),
                     MLG_OK);
    mlg_msg_t *m = mlg_msg_new(MLG_OP_PUBLISH);
    strcpy(m->id, "6f1c2b7e-3d4a-4b8c-9e0f-1a2b3c4d5e6f");
    strcpy(m->type, "consent.granted");
    m->version = 1;
    assert_int_equal(mlg_msg_set_body(m, mp, len), MLG_OK);
    free(mp);
    if (!decoded)
        return m;
    uint8_t *frame;
    size_t size;
    assert_int_equal(mlg_msg_encode(m, &frame, &size), MLG_OK);
    mlg_msg_destroy(&m);
    mlg_error_t e;
    assert_int_equal(mlg_msg_decode(frame, size, &m, &e), MLG_OK);
    free(frame);
    return m;
}

static void
test_read_by_pointer(void **state)
{
    (void)state;
    for (int decoded = 0; decoded < 2; decoded++) {
        mlg_msg_t *m = s_msg(decoded);
        char out[64];
        assert_true(mlg_body_text(m, "/consent_id", out, sizeof(out)));
        assert_string_equal(out, "c-1");
        assert_int_equal(mlg_body_count(m, "/parties"), 2);
        assert_true(mlg_body_text(m, "/parties/1", out, sizeof(out)));
        assert_string_equal(out, "ccas-paris-13");
        assert_true(mlg_body_text(m, "/collected_by/name", out, sizeof(out)));
        assert_string_equal(out, "Agent");
        assert_true(mlg_body_text(m, "/a~1b", out, sizeof(out)));
        assert_string_equal(out, "slash");
        assert_true(mlg_body_text(m, "/m~0n", out, sizeof(out)));
        assert_string_equal(out, "tilde");
        assert_true(mlg_body_text(m, "/", out, sizeof(out)));
        assert_string_equal(out, "unnamed");
        assert_int_equal(mlg_body_count(m, ""), 10);
        assert_int_equal(mlg_body_count(m, "/collected_by"), 2);
        assert_int_equal(mlg_body_count(m, "/empty"), 0);
        assert_int_equal(mlg_body_kind(m, ""), MLG_VALUE_OBJECT);
        assert_int_equal(mlg_body_kind(m, "/parties"), MLG_VALUE_ARRAY);
        assert_int_equal(mlg_body_kind(m, "/n"), MLG_VALUE_NUMBER);
        assert_int_equal(mlg_body_kind(m, "/z"), MLG_VALUE_NULL);
        assert_int_equal(mlg_body_kind(m, "/t"), MLG_VALUE_BOOL);
        assert_int_equal(mlg_body_kind(m, "/consent_id"), MLG_VALUE_STRING);
        /* what is not there, or not a string, or does not fit */
        const char *none[] = {"/absent",
                              "/parties/2",
                              "/parties/01",
                              "/parties/-1",
                              "/parties/x",
                              "consent_id",
                              "/consent_id/0",
                              "/a~2b",
                              "/collected_by/name/x",
                              "/parties/99999999999"};
        for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++) {
            assert_int_equal(mlg_body_kind(m, none[i]), MLG_VALUE_NONE);
            assert_false(mlg_body_text(m, none[i], out, sizeof(out)));
            assert_string_equal(out, "");
        }
        assert_false(mlg_body_text(m, "/n", out, sizeof(out)));
        assert_false(mlg_body_text(m, "/parties", out, sizeof(out)));
        assert_false(mlg_body_text(m, "/parties/1", out, 13)); /* 13 chars + NUL */
        assert_true(mlg_body_text(m, "/parties/1", out, 14));
        mlg_msg_destroy(&m);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_by_pointer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
