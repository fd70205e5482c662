/*  test_send.c: maillage-send, the real program, against the real
    broker: events written as JSON are published and each answer
    printed; a recipient then takes its deliveries with --receive.

    The example events (examples/events/) are the input: an alert that
    the broker confirms and routes, a referral with an impossible date
    that it rejects, and a file that is not an event. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "e2e.h"

static brokerproc_t s_bp;

static const char *s_agencies = "    ccas-paris-13\n"
                                "        name = \"CCAS Paris 13\"\n"
                                "        publish = \"*\"\n"
                                "    cd75\n"
                                "        name = \"Departement de Paris\"\n"
                                "    ehpad-les-tilleuls\n"
                                "        name = \"EHPAD Les Tilleuls\"\n";

static int
setup(void **state)
{
    (void)state;
    return e2e_broker_up(&s_bp, "e2e_send", NULL, s_agencies);
}

static int
teardown(void **state)
{
    (void)state;
    return e2e_broker_down(&s_bp);
}

/* Runs maillage-send with args; its output in out, its exit status
   returned. */
static int
s_send(const char *args, char *out, size_t outlen)
{
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "%s --endpoint %s %s 2>&1", getenv("MLG_SEND_BIN"),
             s_bp.endpoint, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, outlen - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void
test_publish_then_receive(void **state)
{
    (void)state;
    const char *src = getenv("MLG_SOURCE_DIR");
    char args[1024], out[8192];
    snprintf(args, sizeof(args),
             "--as ccas-paris-13 %s/examples/events/6-alert.json"
             " %s/examples/events/3-referral-bad-date.json %s/README.md",
             src, src, src);
    int rc = s_send(args, out, sizeof(out));
    printf("%s", out);
    assert_int_equal(rc, 1); /* not every file was confirmed */
    assert_non_null(strstr(out, "6-alert.json: confirm seq "));
    assert_non_null(strstr(out, "routed [cd75], denied []"));
    assert_non_null(
        strstr(out, "3-referral-bad-date.json: reject INVALID: /person/birth_date"));
    assert_non_null(strstr(out, "README.md: not sent: "));
    /* the recipient takes its delivery, acks it, and nothing is left */
    rc = s_send("--as cd75 --receive 1 --timeout 5000", out, sizeof(out));
    printf("%s", out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "cd75: delivery "));
    assert_non_null(strstr(out, "child.protection.alert v1 from ccas-paris-13 about "
                                "pseudo-0c44b1: {"));
    rc = s_send("--as cd75 --receive 1 --timeout 500", out, sizeof(out));
    assert_int_equal(rc, 0);
    assert_null(strstr(out, "delivery"));
    /* usage */
    rc = s_send("--as cd75 --bogus", out, sizeof(out));
    assert_int_equal(rc, 2);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_publish_then_receive),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
