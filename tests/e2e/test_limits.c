/*  test_limits.c: the broker's bounds, with the real process.

    - broker/max_clients: one client too many gets ERROR UNAVAILABLE; the
      others carry on, and a place freed is taken again;
    - broker/max_outstanding_per_client: with the store held up (a lock on
      the messages table), a client past its bound gets REJECT UNAVAILABLE
      and nothing is stored for those; another client is not refused;
    - a frame far past max_message_bytes closes only that connection;
    - one client flooding garbage as fast as it can while another
      publishes normally: every normal publish is confirmed, and the
      broker's memory stays bounded;
    - one agency flooding with connections that never say HELLO and with
      sessions kept alive by PING: it gets max_clients_per_agency
      sessions, and every other agency still gets its share of
      max_clients. */

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <czmq.h>

#include "e2e.h"
#include "toolutil.h"
#include "maillage/client.h"
#include "maillage/json.h"

static brokerproc_t s_bp;

static const char *s_agencies = "    ehpad-les-tilleuls\n"
                                "        name = \"EHPAD\"\n"
                                "        publish = \"service.*\"\n"
                                "    cd91\n"
                                "        name = \"Essonne\"\n"
                                "        publish = \"service.*\"\n";

static int
setup(void **state)
{
    (void)state;
    /* under AddressSanitizer, freed memory waits in a quarantine (256 MiB
       by default) that would look like growth to the flood test: keep it
       small for this broker */
    const char *asan = getenv("ASAN_OPTIONS");
    char opts[512];
    snprintf(opts, sizeof(opts), "%s%squarantine_size_mb=8", asan ? asan : "",
             asan && *asan ? ":" : "");
    setenv("ASAN_OPTIONS", opts, 1);
    return e2e_broker_up(&s_bp, "e2e_limits",
                         "    max_clients = 3\n"
                         "    max_outstanding_per_client = 3\n"
                         "    max_message_bytes = 65536\n",
                         s_agencies);
}

static int
teardown(void **state)
{
    (void)state;
    return e2e_broker_down(&s_bp);
}

/* A service.capacity.changed to its subscribers, `n` places available. */
static mlg_msg_t *
s_event(char id[37], int n)
{
    return e2e_capacity(id, NULL, n);
}

static mlg_msg_t *
s_answer(mlg_client_t *c)
{
    mlg_msg_t *a = brokerproc_answer(c, 10000);
    assert_non_null(a);
    return a;
}

static void
test_max_clients(void **state)
{
    (void)state;
    mlg_client_t *a = e2e_client(&s_bp, "ehpad-les-tilleuls", 0);
    mlg_client_t *b = e2e_client(&s_bp, "cd91", 0);
    mlg_client_t *c = e2e_client(&s_bp, "cd91", 0);
    mlg_error_t err;
    mlg_client_t *d =
        mlg_client_new(s_bp.endpoint, "cd91", "one-too-many", 0, 5000, &err);
    assert_null(d);
    assert_int_equal(err.rc, MLG_UNAVAILABLE);
    assert_non_null(strstr(err.reason, "max_clients"));
    /* the others carry on */
    char id[37];
    mlg_msg_t *m = s_event(id, 1);
    e2e_confirmed(a, &m);
    /* a place freed is taken again */
    mlg_client_destroy(&c);
    d = NULL;
    for (int i = 0; i < 50 && !d; i++) {
        d = mlg_client_new(s_bp.endpoint, "cd91", "next", 0, 2000, &err);
        if (!d)
            zclock_sleep(50);
    }
    assert_non_null(d);
    mlg_client_destroy(&d);
    mlg_client_destroy(&b);
    mlg_client_destroy(&a);
    assert_int_equal(brokerproc_wait_log(&s_bp, "HELLO refused", 100), 0);
}

static void
test_outstanding_per_client(void **state)
{
    (void)state;
    mlg_client_t *a = e2e_client(&s_bp, "ehpad-les-tilleuls", 0);
    mlg_client_t *b = e2e_client(&s_bp, "cd91", 0);
    PGconn *db = brokerproc_db(&s_bp);
    long before = brokerproc_scalar(db, "select count(*) from messages");
    /* hold the store: it waits on this lock with the first batch */
    PGconn *locker = brokerproc_db(&s_bp);
    PQclear(PQexec(locker, "begin"));
    PQclear(PQexec(locker, "lock table messages in access exclusive mode"));
    char ids[5][37];
    for (int i = 0; i < 5; i++) {
        mlg_msg_t *m = s_event(ids[i], i);
        assert_int_equal(mlg_client_send(a, m), MLG_OK);
        mlg_msg_destroy(&m);
    }
    /* the two past the bound are refused at once */
    for (int i = 0; i < 2; i++) {
        mlg_msg_t *ans = s_answer(a);
        assert_int_equal(ans->op, MLG_OP_REJECT);
        assert_string_equal(ans->code, "UNAVAILABLE");
        assert_non_null(strstr(ans->reason, "max_outstanding_per_client"));
        assert_true(strcmp(ans->id, ids[3]) == 0 || strcmp(ans->id, ids[4]) == 0);
        mlg_msg_destroy(&ans);
    }
    /* another client is not refused: its publish waits like the others */
    char other[37];
    mlg_msg_t *m = s_event(other, 9);
    assert_int_equal(mlg_client_send(b, m), MLG_OK);
    mlg_msg_destroy(&m);
    assert_null(mlg_client_recv(b, 300));
    PQclear(PQexec(locker, "commit"));
    PQfinish(locker);
    for (int i = 0; i < 3; i++) {
        mlg_msg_t *ans = s_answer(a);
        assert_int_equal(ans->op, MLG_OP_CONFIRM);
        mlg_msg_destroy(&ans);
    }
    mlg_msg_t *ans = s_answer(b);
    assert_int_equal(ans->op, MLG_OP_CONFIRM);
    assert_string_equal(ans->id, other);
    mlg_msg_destroy(&ans);
    assert_int_equal(brokerproc_scalar(db, "select count(*) from messages") - before, 4);
    PQfinish(db);
    mlg_client_destroy(&a);
    mlg_client_destroy(&b);
}

static void
test_flood_does_not_starve_others(void **state)
{
    (void)state;
    long rss_before = tool_proc_kib((int)s_bp.pid, "VmRSS");
    assert_true(rss_before > 0);
    /* a peer that sends garbage as fast as it can and reads nothing; and
       frames far past the size limit */
    zsock_t *flood = zsock_new(ZMQ_DEALER);
    zsock_set_sndhwm(flood, 100000);
    zsock_set_sndtimeo(flood, 0);
    assert_int_equal(zsock_connect(flood, "%s", s_bp.endpoint), 0);
    mlg_client_t *ok = e2e_client(&s_bp, "cd91", 0);
    uint8_t garbage[512];
    for (size_t i = 0; i < sizeof(garbage); i++)
        garbage[i] = (uint8_t)(i * 37 + 11);
    int confirmed = 0, sent_garbage = 0;
    char id[37];
    int64_t deadline = zclock_mono() + 60000;
    for (int n = 0; n < 200 && zclock_mono() < deadline; n++) {
        for (int k = 0; k < 200; k++) {
            zframe_t *f = zframe_new(garbage, 1 + (size_t)(n + k) % sizeof(garbage));
            if (zframe_send(&f, flood, ZFRAME_DONTWAIT) == 0)
                sent_garbage++;
            else
                zframe_destroy(&f);
        }
        mlg_msg_t *m = s_event(id, n);
        mlg_msg_t *ans = e2e_publish(ok, m, 10000);
        mlg_msg_destroy(&m);
        if (ans->op == MLG_OP_CONFIRM && strcmp(ans->id, id) == 0)
            confirmed++;
        mlg_msg_destroy(&ans);
    }
    /* an oversize frame on its own connection: refused, the rest go on */
    zsock_t *big = zsock_new(ZMQ_DEALER);
    assert_int_equal(zsock_connect(big, "%s", s_bp.endpoint), 0);
    size_t huge = 4u << 20;
    uint8_t *blob = calloc(1, huge);
    zframe_t *f = zframe_new(blob, huge);
    free(blob);
    zframe_send(&f, big, 0);
    mlg_msg_t *m = s_event(id, 1000);
    e2e_confirmed(ok, &m);
    long rss_after = tool_proc_kib((int)s_bp.pid, "VmRSS");
    fprintf(
        stderr,
        "flood: %d garbage frames sent, %d/200 confirmed, broker RSS %ld -> %ld KiB\n",
        sent_garbage, confirmed, rss_before, rss_after);
    assert_int_equal(confirmed, 200);
    assert_true(sent_garbage > 10000);
    /* bounded: the flood's answers are capped by the high-water mark */
    assert_true(rss_after - rss_before < 128 * 1024);
    zsock_destroy(&big);
    zsock_set_linger(flood, 0);
    zsock_destroy(&flood);
    mlg_client_destroy(&ok);
}

/* One agency floods the broker with connections that never say HELLO
   and with sessions kept alive by PING; each of the other agencies still
   gets its share of max_clients. max_clients = 10 and three agencies:
   a share of min(4, 10 / 3) = 3 each, at most 4 sessions for one agency. */
static void
test_one_agency_cannot_lock_out_others(void **state)
{
    (void)state;
    brokerproc_t bp;
    assert_int_equal(e2e_broker_up(&bp, "e2e_limits_share",
                                   "    max_clients = 10\n"
                                   "    max_clients_per_agency = 4\n",
                                   "    ehpad-les-tilleuls\n        name = \"EHPAD\"\n"
                                   "    cd91\n        name = \"Essonne\"\n"
                                   "    ars-idf\n        name = \"ARS\"\n"),
                     0);
    mlg_msg_t *ping = mlg_msg_new(MLG_OP_PING);
    mlg_msg_t *hello = mlg_msg_new(MLG_OP_HELLO);
    strcpy(hello->agency, "ehpad-les-tilleuls");
    /* more connections that never say HELLO than there are places, each
       PINGing: none of them holds anything */
    enum { IDLE = 200, SESSIONS = 12 };
    zsock_t *idle[IDLE];
    for (int i = 0; i < IDLE; i++) {
        idle[i] = e2e_raw(&bp);
        mlg_msg_t *a = e2e_raw_ask(idle[i], ping, 5000);
        assert_string_equal(a->code, "HELLO_REQUIRED");
        mlg_msg_destroy(&a);
    }
    /* as many sessions as it can get, kept alive */
    zsock_t *own[SESSIONS];
    int welcomed = 0;
    for (int i = 0; i < SESSIONS; i++) {
        own[i] = e2e_raw(&bp);
        mlg_msg_t *a = e2e_raw_ask(own[i], hello, 5000);
        if (a->op == MLG_OP_WELCOME)
            welcomed++;
        else {
            assert_string_equal(a->code, "UNAVAILABLE");
            assert_non_null(strstr(a->reason, "max_clients_per_agency"));
        }
        mlg_msg_destroy(&a);
    }
    assert_int_equal(welcomed, 4);
    for (int i = 0; i < SESSIONS; i++) {
        mlg_msg_t *a = e2e_raw_ask(own[i], ping, 5000);
        assert_int_equal(a->op, i < welcomed ? MLG_OP_PONG : MLG_OP_ERROR);
        mlg_msg_destroy(&a);
    }
    /* the others: each its share; past it, what the first left */
    mlg_client_t *cd91[3], *ars[3];
    for (int i = 0; i < 3; i++)
        cd91[i] = e2e_client(&bp, "cd91", 0);
    mlg_error_t err;
    mlg_client_t *more = mlg_client_new(bp.endpoint, "cd91", "more", 0, 5000, &err);
    assert_null(more);
    assert_int_equal(err.rc, MLG_UNAVAILABLE);
    assert_non_null(strstr(err.reason, "kept for the other agencies"));
    for (int i = 0; i < 3; i++)
        ars[i] = e2e_client(&bp, "ars-idf", 0);
    more = mlg_client_new(bp.endpoint, "ars-idf", "more", 0, 5000, &err);
    assert_null(more);
    assert_int_equal(err.rc, MLG_UNAVAILABLE);
    assert_non_null(strstr(err.reason, "broker/max_clients)"));
    /* a place freed by the flooding agency goes to whoever asks */
    zsock_destroy(&own[0]);
    for (int i = 0; i < 100 && !more; i++) {
        more = mlg_client_new(bp.endpoint, "cd91", "more", 0, 2000, &err);
        if (!more)
            assert_int_equal(brokerproc_wait_log(&bp, "its connection closed", 100), 0);
    }
    assert_non_null(more);
    mlg_client_destroy(&more);
    for (int i = 0; i < 3; i++) {
        mlg_client_destroy(&cd91[i]);
        mlg_client_destroy(&ars[i]);
    }
    for (int i = 1; i < SESSIONS; i++)
        zsock_destroy(&own[i]);
    for (int i = 0; i < IDLE; i++)
        zsock_destroy(&idle[i]);
    mlg_msg_destroy(&ping);
    mlg_msg_destroy(&hello);
    assert_int_equal(e2e_broker_down(&bp), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_max_clients),
        cmocka_unit_test(test_outstanding_per_client),
        cmocka_unit_test(test_flood_does_not_starve_others),
        cmocka_unit_test(test_one_agency_cannot_lock_out_others),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
