/*  test_router.c: broker/router.c and the patterns of common/config.c. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "maillage/json.h"
#include "registry.h"
#include "router.h"

static mlg_registry_t *s_reg;
static brk_config_t *s_cfg;

static int
setup(void **state)
{
    (void)state;
    s_reg = test_load_registry();
    char path[] = "/tmp/mlg-router-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0 || !s_reg)
        return -1;
    const char *text = "broker\n    endpoint = tcp://127.0.0.1:1\n    database = x\n"
                       "security\n    curve = 0\n"
                       "agencies\n"
                       "    ccas\n        name = a\n        publish = \"referral.*\"\n"
                       "    cd75\n        name = b\n        subscribe = \"*\"\n"
                       "    ehpad\n        name = c\n        subscribe = \"service.*\"\n"
                       "    ars\n        name = d\n        subscribe = \"referral.*\"\n";
    if (write(fd, text, strlen(text)) != (ssize_t)strlen(text))
        return -1;
    close(fd);
    char err[512];
    s_cfg = brk_config_load(path, err, sizeof(err));
    unlink(path);
    if (!s_cfg)
        fprintf(stderr, "%s\n", err);
    return s_cfg ? 0 : -1;
}

static int
teardown(void **state)
{
    (void)state;
    brk_config_destroy(&s_cfg);
    mlg_registry_destroy(&s_reg);
    return 0;
}

static void
test_patterns(void **state)
{
    (void)state;
    assert_true(brk_pattern_match("*", "referral.created"));
    assert_true(brk_pattern_match("referral.*", "referral.created"));
    assert_true(brk_pattern_match("health.*", "health.summary.shared"));
    assert_false(brk_pattern_match("referral.*", "referral"));
    assert_false(brk_pattern_match("referral.*", "referrals.created"));
    assert_true(brk_pattern_match("situation.shared", "situation.shared"));
    assert_false(brk_pattern_match("situation.shared", "situation.shared.more"));
    assert_true(
        brk_agency_may_publish(brk_config_agency(s_cfg, "ccas"), "referral.created"));
    assert_false(
        brk_agency_may_publish(brk_config_agency(s_cfg, "ccas"), "info.requested"));
    assert_false(
        brk_agency_may_publish(brk_config_agency(s_cfg, "cd75"), "referral.created"));
}

static mlg_msg_t *
msg(const char *type, const char *to)
{
    char json[512];
    snprintf(json, sizeof(json),
             "{\"id\": \"6f1c2b7e-3d4a-4b8c-9e0f-1a2b3c4d5e6f\", \"type\": \"%s\","
             " \"version\": 1, %s \"body\": {}}",
             type, to);
    mlg_msg_t *m = NULL;
    assert_int_equal(mlg_publish_from_json(json, strlen(json), &m, NULL), MLG_OK);
    return m;
}

static void
route(const char *type, const char *to, const char *publisher, mlg_rc_t rc,
      const char *expect)
{
    mlg_msg_t *m = msg(type, to);
    brk_decision_t *d = NULL;
    size_t n = 0;
    char reason[256] = "";
    brk_consents_t *none = brk_consents_new();
    assert_int_equal(brk_route(s_cfg, none, mlg_registry_find(s_reg, type, 1), m, publisher, 0, &d,
                               &n, reason, sizeof(reason)),
                     rc);
    brk_consents_destroy(&none);
    if (rc != MLG_OK) {
        assert_non_null(strstr(reason, expect));
        assert_null(d);
        mlg_msg_destroy(&m);
        return;
    }
    char got[512] = "";
    for (size_t i = 0; i < n; i++) {
        char one[128];
        snprintf(one, sizeof(one), "%s%s:%s:%s%s", i ? " " : "", d[i].recipient,
                 d[i].allow ? "allow" : "deny", mlg_basis_name(d[i].basis), d[i].reason);
        strcat(got, one);
    }
    if (strcmp(got, expect) != 0)
        print_error("got '%s', expected '%s'\n", got, expect);
    assert_string_equal(got, expect);
    free(d);
    mlg_msg_destroy(&m);
}

static void
test_personal_goes_to_addressees_only(void **state)
{
    (void)state;
    /* cd75 subscribes to everything and ars to referral.*: personal events
       never go to subscribers */
    route("referral.created", "\"to\": [\"ehpad\"],", "ccas", MLG_OK,
          "ehpad:deny:consentNO_CONSENT");
    route("child.protection.alert", "\"to\": [\"cd75\", \"cd75\", \"ccas\"],", "ccas",
          MLG_OK, "cd75:allow:legal_obligation");
    route("referral.created", "\"to\": [\"ehpad\", \"nobody\"],", "ccas",
          MLG_UNKNOWN_RECIPIENT, "'nobody'");
}

static void
test_non_personal_adds_subscribers(void **state)
{
    (void)state;
    route("service.capacity.changed", "", "ehpad", MLG_OK, "cd75:allow:not_personal");
    route("service.capacity.changed", "", "ccas", MLG_OK,
          "cd75:allow:not_personal ehpad:allow:not_personal");
    route("service.capacity.changed", "\"to\": [\"ars\"],", "ccas", MLG_OK,
          "ars:allow:not_personal cd75:allow:not_personal ehpad:allow:not_personal");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_patterns),
        cmocka_unit_test(test_personal_goes_to_addressees_only),
        cmocka_unit_test(test_non_personal_adds_subscribers),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
