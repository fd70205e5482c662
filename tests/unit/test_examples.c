/*  test_examples.c: the example configuration that the README and the
    demo start the broker with loads, with the agencies it documents. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

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

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example_config_loads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
