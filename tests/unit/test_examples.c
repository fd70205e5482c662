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

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example_config_loads),
        cmocka_unit_test(test_repeated_key_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
