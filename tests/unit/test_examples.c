/*  test_examples.c: the example configuration that the README and the
    demo start the broker with loads, with the agencies it documents. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"

static void
test_example_config_loads(void **state)
{
    (void)state;
    char path[1024], err[512] = "";
    snprintf(path, sizeof(path), "%s/examples/maillage.cfg", getenv("MLG_SOURCE_DIR"));
    brk_config_t *cfg = brk_config_load(path, err, sizeof(err));
    if (!cfg)
        fail_msg("%s", err);
    const char *agencies[] = {"cd75", "ccas-paris-13", "ehpad-les-tilleuls", "ars-idf"};
    for (size_t i = 0; i < sizeof(agencies) / sizeof(agencies[0]); i++)
        assert_non_null(brk_config_agency(cfg, agencies[i]));
    assert_true(brk_agency_may_publish(brk_config_agency(cfg, "ccas-paris-13"),
                                       "referral.created"));
    assert_true(brk_agency_subscribes(brk_config_agency(cfg, "ars-idf"),
                                      "service.capacity.changed"));
    brk_config_destroy(&cfg);
}

/* A key or section given twice is refused, naming it (the second one
   used to win silently, and leaked the first). */
static void
test_repeated_key_refused(void **state)
{
    (void)state;
    const char *cases[][2] = {
        {"broker\n    endpoint = tcp://*:1\n    endpoint = tcp://*:2\n    database = x\n"
         "agencies\n    a\n        name = A\n",
         "broker/endpoint: given twice"},
        {"broker\n    endpoint = tcp://*:1\n    database = x\nsecurity\n    curve = 0\n"
         "    curve = 1\nagencies\n    a\n        name = A\n",
         "security/curve: given twice"},
        {"broker\n    endpoint = tcp://*:1\n    database = x\nsecurity\n    curve = 0\n"
         "agencies\n    a\n        name = A\n        name = B\n",
         "agencies/a/name: given twice"},
        {"broker\n    endpoint = tcp://*:1\n    database = x\nsecurity\n    curve = 0\n"
         "agencies\n    a\n        name = A\nagencies\n    b\n        name = B\n",
         "agencies: section given twice"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[512] = "";
        brk_config_t *cfg = brk_config_parse(cases[i][0], "t.cfg", err, sizeof(err));
        assert_null(cfg);
        if (!strstr(err, cases[i][1]))
            fail_msg("case %zu: '%s' does not say '%s'", i, err, cases[i][1]);
    }
}

/* referrals/deadline/SERVICE/PRIORITY: the exact key, else the
   default service's, else the built-in deadline; each value a duration,
   each key once; the reserved agency id refused. */
static void
test_referral_deadlines(void **state)
{
    (void)state;
    const char *base = "broker\n    endpoint = tcp://*:1\n    database = x\nsecurity\n"
                       "    curve = 0\nagencies\n    a\n        name = A\n";
    char text[1024], err[512] = "";
    snprintf(
        text, sizeof(text),
        "%sreferrals\n    deadline\n        default\n            routine = 10d\n"
        "        nursing-home\n            urgent = 36h\n            routine = 90m\n",
        base);
    brk_config_t *cfg = brk_config_parse(text, "t.cfg", err, sizeof(err));
    if (!cfg)
        fail_msg("%s", err);
    const int64_t s = 1000000, d = 86400 * s;
    assert_true(brk_deadline_us(cfg->deadlines, cfg->ndeadlines, "nursing-home", "urgent")
                == 36 * 3600 * s);
    assert_true(
        brk_deadline_us(cfg->deadlines, cfg->ndeadlines, "nursing-home", "routine")
        == 90 * 60 * s);
    assert_true(brk_deadline_us(cfg->deadlines, cfg->ndeadlines, "home-care", "routine")
                == 10 * d);
    assert_true(brk_deadline_us(cfg->deadlines, cfg->ndeadlines, "home-care", "urgent")
                == BRK_DEADLINE_URGENT_US);
    assert_true(brk_deadline_us(NULL, 0, "x", "routine") == BRK_DEADLINE_ROUTINE_US);
    brk_config_destroy(&cfg);

    assert_true(brk_duration_us("30s") == 30 * s);
    assert_true(brk_duration_us("1d") == d);
    assert_true(brk_duration_us("3650d") == 3650 * d);
    const char *bad[] = {"",
                         "0s",
                         "15",
                         "d",
                         "-1d",
                         "1w",
                         "3651d",
                         "1.5d",
                         "15 d",
                         "15dd",
                         "99999999999999999999d"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (brk_duration_us(bad[i]) != -1)
            fail_msg("'%s' read as a duration", bad[i]);

    const char *cases[][2] = {
        {"referrals\n    deadline\n        default\n            routine = soon\n",
         "referrals/deadline/default/routine: 'soon' is not a duration"},
        {"referrals\n    deadline\n        default\n            routine = 1d\n"
         "            routine = 2d\n",
         "referrals/deadline/default/routine: given twice"},
        {"referrals\n    deadlines\n", "referrals/deadlines: unknown key"},
        {"referrals\n    deadline\n        Home_Care\n            routine = 1d\n",
         "referrals/deadline/Home_Care: not a service word"},
        {"agencies\n    maillage\n        name = M\n",
         "agencies/maillage: the id is reserved for the broker's own notices"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(text, sizeof(text), "%s%s",
                 i == 4 ? "broker\n    endpoint = x\n    "
                          "database = x\nsecurity\n    curve = 0\n"
                        : base,
                 cases[i][0]);
        cfg = brk_config_parse(text, "t.cfg", err, sizeof(err));
        assert_null(cfg);
        if (!strstr(err, cases[i][1]))
            fail_msg("case %zu: '%s' does not say '%s'", i, err, cases[i][1]);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example_config_loads),
        cmocka_unit_test(test_repeated_key_refused),
        cmocka_unit_test(test_referral_deadlines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
