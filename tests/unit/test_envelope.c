/*  test_envelope.c: lib/envelope.c (rules by basis) and the JSON form of
    a PUBLISH (lib/json.c, mlg_publish_from_json). */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "maillage/json.h"
#include "maillage/schema.h"
#include "registry.h"

static mlg_registry_t *s_reg;

static int
setup(void **state)
{
    (void)state;
    s_reg = test_load_registry();
    return s_reg ? 0 : -1;
}

static int
teardown(void **state)
{
    (void)state;
    mlg_registry_destroy(&s_reg);
    return 0;
}

static mlg_msg_t *
publish(const char *json)
{
    mlg_msg_t *msg = NULL;
    mlg_error_t err;
    mlg_rc_t rc = mlg_publish_from_json(json, strlen(json), &msg, &err);
    if (rc != MLG_OK)
        print_error("%s\n", err.reason);
    assert_int_equal(rc, MLG_OK);
    return msg;
}

/* type, to, subject, purpose → expected code */
static void
rule(const char *type, const char *to, const char *subject, const char *purpose,
     const char *publisher, mlg_rc_t expect)
{
    char json[1024];
    snprintf(json, sizeof(json),
             "{\"id\": \"6f1c2b7e-3d4a-4b8c-9e0f-1a2b3c4d5e6f\", \"type\": \"%s\","
             " \"version\": 1, \"body\": {}%s%s%s%s%s%s%s%s%s}",
             type, to ? ", \"to\": " : "", to ? to : "",
             subject ? ", \"subject\": \"" : "", subject ? subject : "",
             subject ? "\"" : "", purpose ? ", \"purpose\": \"" : "",
             purpose ? purpose : "", purpose ? "\"" : "", "");
    mlg_msg_t *msg = publish(json);
    const mlg_schema_t *schema = mlg_registry_find(s_reg, type, 1);
    assert_non_null(schema);
    char reason[512] = "";
    mlg_rc_t rc =
        mlg_envelope_check(s_reg, schema, msg, publisher, reason, sizeof(reason));
    if (rc != expect)
        print_error("%s: expected %s, got %s (%s)\n", json,
                    expect ? mlg_rc_wire(expect) : "OK", rc ? mlg_rc_wire(rc) : "OK",
                    reason);
    assert_int_equal(rc, expect);
    if (rc != MLG_OK)
        assert_true(strlen(reason) > 0);
    mlg_msg_destroy(&msg);
}

static void
test_consent_basis(void **state)
{
    (void)state;
    const char *t = "referral.created";
    rule(t, "[\"cd75\"]", "P-1", "orientation", "ccas-paris-13", MLG_OK);
    rule(t, NULL, "P-1", "orientation", "ccas-paris-13", MLG_ADDRESS_REQUIRED);
    rule(t, "[]", "P-1", "orientation", "ccas-paris-13", MLG_ADDRESS_REQUIRED);
    /* the publisher is dropped from `to`: nothing left */
    rule(t, "[\"ccas-paris-13\"]", "P-1", "orientation", "ccas-paris-13",
         MLG_ADDRESS_REQUIRED);
    rule(t, "[\"ccas-paris-13\", \"cd75\"]", "P-1", "orientation", "ccas-paris-13",
         MLG_OK);
    rule(t, "[\"cd75\"]", NULL, "orientation", "ccas-paris-13", MLG_SUBJECT_REQUIRED);
    rule(t, "[\"cd75\"]", "P-1", NULL, "ccas-paris-13", MLG_PURPOSE_REQUIRED);
    rule(t, "[\"cd75\"]", "P-1", "marketing", "ccas-paris-13", MLG_PURPOSE_REQUIRED);
    /* §5 order: ADDRESS before SUBJECT before PURPOSE */
    rule(t, NULL, NULL, NULL, "ccas-paris-13", MLG_ADDRESS_REQUIRED);
    rule(t, "[\"cd75\"]", NULL, NULL, "ccas-paris-13", MLG_SUBJECT_REQUIRED);
}

static void
test_legal_obligation_basis(void **state)
{
    (void)state;
    const char *t = "child.protection.alert";
    rule(t, "[\"cd75\"]", "P-1", "protection", "ccas-paris-13", MLG_OK);
    rule(t, NULL, "P-1", "protection", "ccas-paris-13", MLG_ADDRESS_REQUIRED);
    rule(t, "[\"cd75\"]", NULL, "protection", "ccas-paris-13", MLG_SUBJECT_REQUIRED);
    rule(t, "[\"cd75\"]", "P-1", NULL, "ccas-paris-13", MLG_PURPOSE_REQUIRED);
}

static void
test_consent_notice_and_not_personal(void **state)
{
    (void)state;
    /* consent events need a subject, no `to`, no purpose */
    rule("consent.granted", NULL, "P-1", NULL, "ccas-paris-13", MLG_OK);
    rule("consent.revoked", NULL, NULL, NULL, "ccas-paris-13", MLG_SUBJECT_REQUIRED);
    /* non-personal events need nothing more */
    rule("service.capacity.changed", NULL, NULL, NULL, "ehpad-les-tilleuls", MLG_OK);
}

static void
test_publish_from_json(void **state)
{
    (void)state;
    mlg_msg_t *msg = publish("{\"id\": \"6f1c2b7e-3d4a-4b8c-9e0f-1a2b3c4d5e6f\","
                             " \"type\": \"a.b\", \"version\": 2, \"to\": [\"cd75\"],"
                             " \"correlation\": \"c\","
                             " \"occurred_at\": \"2026-01-01T01:00:00.25+01:00\","
                             " \"body\": {\"k\": [1]}}");
    assert_int_equal(msg->op, MLG_OP_PUBLISH);
    assert_string_equal(msg->type, "a.b");
    assert_int_equal(msg->version, 2);
    assert_true(msg->has_occurred_at);
    assert_int_equal(msg->occurred_at.sec, 1767225600); /* 2026-01-01T00:00:00Z */
    assert_int_equal(msg->occurred_at.nsec, 250000000);
    char *json = NULL;
    assert_int_equal(mlg_msgpack_to_json(msg->body, msg->body_len, &json, NULL, 0),
                     MLG_OK);
    assert_string_equal(json, "{\"k\":[1]}");
    free(json);
    mlg_msg_destroy(&msg);

    const char *bad[] = {
        "[1]",
        "{\"id\": \"x\"",
        "{\"op\": \"ACK\", \"delivery\": 1}",
        "{\"id\": \"6f1c2b7e-3d4a-4b8c-9e0f-1a2b3c4d5e6f\", \"type\": \"a.b\","
        " \"version\": 1, \"body\": {}, \"occurred_at\": \"yesterday\"}",
        "{\"id\": \"6f1c2b7e-3d4a-4b8c-9e0f-1a2b3c4d5e6f\", \"type\": \"a.b\","
        " \"version\": 1, \"body\": []}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        mlg_error_t err;
        msg = (mlg_msg_t *)1;
        assert_int_not_equal(mlg_publish_from_json(bad[i], strlen(bad[i]), &msg, &err),
                             MLG_OK);
        assert_null(msg);
        assert_true(strlen(err.reason) > 0);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_consent_basis),
        cmocka_unit_test(test_legal_obligation_basis),
        cmocka_unit_test(test_consent_notice_and_not_personal),
        cmocka_unit_test(test_publish_from_json),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
