/*  test_broker.c: the real maillage-broker process, over TCP, on the
    suite's PostgreSQL.

    One broker serves the whole file (a database of its own); each test
    uses its own agencies' queues so they do not see each other's
    deliveries. The SIGKILL test restarts that same broker. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <czmq.h>

#include "e2e.h"
#include "maillage/client.h"
#include "maillage/json.h"

static brokerproc_t s_bp;
static PGconn *s_db;

static const char *s_agencies =
    "    ccas-paris-13\n"
    "        name = \"CCAS Paris 13\"\n"
    "        publish = \"referral.*, child.protection.alert, situation.shared\"\n"
    "    cd75\n"
    "        name = \"Departement de Paris\"\n"
    "        publish = \"*\"\n"
    "    ehpad-les-tilleuls\n"
    "        name = \"EHPAD Les Tilleuls\"\n"
    "        publish = \"service.*\"\n"
    "        subscribe = \"service.*\"\n"
    "    ars-idf\n"
    "        name = \"ARS Ile-de-France\"\n"
    "        subscribe = \"service.*\"\n"
    "    cd91\n"
    "        name = \"Essonne\"\n"
    "    cd92\n"
    "        name = \"Hauts-de-Seine\"\n"
    "    cd93\n"
    "        name = \"Seine-Saint-Denis\"\n"
    "    cd94\n"
    "        name = \"Val-de-Marne\"\n"
    "    cd95\n"
    "        name = \"Val-d'Oise\"\n"
    "    cd77\n"
    "        name = \"Seine-et-Marne\"\n"
    "    cd78\n"
    "        name = \"Yvelines\"\n"
    "    cd76\n"
    "        name = \"Seine-et-Marne (tests of the delivery rows)\"\n";

static int
setup(void **state)
{
    (void)state;
    return e2e_broker_up_db(&s_bp, &s_db, "e2e_broker",
                            "    heartbeat_ms = 1000\n    max_attempts = 3\n"
                            "    max_message_bytes = 65536\n"
                            /* test_burst_beyond_pipe_bounds has 5000 at once */
                            "    max_outstanding_per_client = 10000\n",
                            s_agencies);
}

static int
teardown(void **state)
{
    (void)state;
    return e2e_broker_down_db(&s_bp, &s_db);
}

/* ---- helpers ---------------------------------------------------------- */

/* An alert, a UTF-8 body; "%s" for its id, then for its addressee. */
static const char *ALERT =
    "{\"id\": \"%s\", \"type\": \"child.protection.alert\", \"version\": 1,"
    " \"to\": [\"%s\"], \"subject\": \"P-1\", \"purpose\": \"protection\","
    " \"body\": {\"alert_id\": \"0d3e8a52-7c1b-4f6e-8a9d-2b4c6e8f0a1b\","
    " \"concern\": \"Enfant laissé seul.\", \"urgency\": \"urgent\"}}";

/* The alert to `to`, from `c`; returns the answer. */
static mlg_msg_t *
send_alert(mlg_client_t *c, const char *to, char *id)
{
    mlg_msg_t *m = e2e_msg(id, ALERT, id, to);
    mlg_msg_t *answer = e2e_publish(c, m, 10000);
    mlg_msg_destroy(&m);
    return answer;
}

static void
expect_reject(mlg_client_t *c, const mlg_msg_t *m, const char *code,
              const char *reason_part)
{
    assert_int_equal(mlg_client_send(c, m), MLG_OK);
    mlg_msg_t *a = e2e_expect(c, MLG_OP_REJECT, 10000);
    assert_string_equal(a->id, m->id);
    if (strcmp(a->code, code) != 0 || !strstr(a->reason, reason_part))
        print_error("expected %s (%s), got %s: %s\n", code, reason_part, a->code,
                    a->reason);
    assert_string_equal(a->code, code);
    assert_non_null(strstr(a->reason, reason_part));
    mlg_msg_destroy(&a);
}

/* ---- publish, store, confirm ------------------------------------------ */

static void
test_publish_confirm_stored(void **state)
{
    (void)state;
    mlg_client_t *c = e2e_client(&s_bp, "ccas-paris-13", 0);
    char id[37];
    mlg_msg_t *m = e2e_msg(id, ALERT, id, "cd75");
    assert_int_equal(mlg_client_send(c, m), MLG_OK);
    mlg_msg_t *a = e2e_expect(c, MLG_OP_CONFIRM, 10000);
    assert_string_equal(a->id, id);
    assert_true(a->seq > 0);
    assert_false(a->duplicate);
    assert_int_equal(a->routed_count, 1);
    assert_string_equal(a->routed[0].id, "cd75");
    assert_int_equal(a->denied_count, 0);

    /* the body is stored byte for byte */
    const char *params[1] = {id};
    PGresult *res =
        PQexecParams(s_db,
                     "select body, seq, sender, subject, purpose from messages"
                     " where id = $1",
                     1, NULL, params, NULL, NULL, 1);
    assert_int_equal(PQntuples(res), 1);
    assert_int_equal(PQgetlength(res, 0, 0), (int)m->body_len);
    assert_memory_equal(PQgetvalue(res, 0, 0), m->body, m->body_len);
    PQclear(res);
    assert_int_equal(
        e2e_scalar(s_db,
                   "select count(*) from consent_decisions where message_id = '%s'"
                   " and decision = 'allow' and basis = 'legal_obligation'"
                   " and recipient = 'cd75'",
                   id),
        1);
    assert_int_equal(e2e_scalar(s_db,
                                "select count(*) from deliveries where message_id = '%s'"
                                " and recipient = 'cd75' and state = 'pending'",
                                id),
                     1);
    mlg_msg_destroy(&a);
    mlg_msg_destroy(&m);
    mlg_client_destroy(&c);
}

static void
test_consent_basis_denied(void **state)
{
    (void)state;
    mlg_client_t *c = e2e_client(&s_bp, "ccas-paris-13", 0);
    char id[37];
    mlg_msg_t *m =
        e2e_msg(id,
                "{\"id\": \"%s\", \"type\": \"situation.shared\", \"version\": 1,"
                " \"to\": [\"cd75\"], \"subject\": \"P-2\", \"purpose\": \"orientation\","
                " \"body\": {\"household\": {\"adults\": 1, \"children\": 0},"
                " \"housing\": \"temporary\", \"summary\": \"Déménagement.\"}}",
                id);
    assert_int_equal(mlg_client_send(c, m), MLG_OK);
    mlg_msg_t *a = e2e_expect(c, MLG_OP_CONFIRM, 10000);
    assert_int_equal(a->routed_count, 0);
    assert_int_equal(a->denied_count, 1);
    assert_string_equal(a->denied[0].recipient, "cd75");
    assert_string_equal(a->denied[0].reason, "NO_CONSENT");
    assert_int_equal(
        e2e_scalar(s_db,
                   "select count(*) from consent_decisions where message_id = '%s'"
                   " and decision = 'deny' and basis = 'consent'"
                   " and reason = 'NO_CONSENT'",
                   id),
        1);
    assert_int_equal(
        e2e_scalar(s_db, "select count(*) from deliveries where message_id = '%s'", id),
        0);
    mlg_msg_destroy(&a);
    mlg_msg_destroy(&m);
    mlg_client_destroy(&c);
}

static void
test_non_personal_routing(void **state)
{
    (void)state;
    mlg_client_t *c = e2e_client(&s_bp, "ehpad-les-tilleuls", 0);
    const char *fmt = "{\"id\": \"%s\", \"type\": \"service.capacity.changed\","
                      " \"version\": 1, %s \"body\": {\"service_id\": \"750803587\","
                      " \"service\": \"nursing-home\", \"places_total\": 80,"
                      " \"places_available\": 3}}";
    char id[37];
    /* no `to`: the subscribers, but never the publisher */
    mlg_msg_t *m = e2e_msg(id, fmt, id, "");
    assert_int_equal(mlg_client_send(c, m), MLG_OK);
    mlg_msg_t *a = e2e_expect(c, MLG_OP_CONFIRM, 10000);
    assert_int_equal(a->routed_count, 1);
    assert_string_equal(a->routed[0].id, "ars-idf");
    assert_int_equal(
        e2e_scalar(s_db,
                   "select count(*) from consent_decisions where message_id = '%s'"
                   " and basis = 'not_personal' and decision = 'allow'",
                   id),
        1);
    mlg_msg_destroy(&a);
    mlg_msg_destroy(&m);
    /* with `to`: the addressees and the subscribers, once each */
    m = e2e_msg(id, fmt, id, "\"to\": [\"cd75\", \"ars-idf\", \"cd75\"],");
    assert_int_equal(mlg_client_send(c, m), MLG_OK);
    a = e2e_expect(c, MLG_OP_CONFIRM, 10000);
    assert_int_equal(a->routed_count, 2);
    assert_string_equal(a->routed[0].id, "cd75");
    assert_string_equal(a->routed[1].id, "ars-idf");
    mlg_msg_destroy(&a);
    mlg_msg_destroy(&m);
    mlg_client_destroy(&c);
}

static void
test_duplicates(void **state)
{
    (void)state;
    mlg_client_t *c = e2e_client(&s_bp, "ccas-paris-13", 0);
    char id[37];
    mlg_msg_t *m = e2e_msg(id, ALERT, id, "cd75");
    /* twice at once: the second arrives while the first is being stored */
    assert_int_equal(mlg_client_send(c, m), MLG_OK);
    assert_int_equal(mlg_client_send(c, m), MLG_OK);
    mlg_msg_t *a1 = e2e_expect(c, MLG_OP_CONFIRM, 10000);
    mlg_msg_t *a2 = e2e_expect(c, MLG_OP_CONFIRM, 10000);
    assert_false(a1->duplicate);
    assert_true(a2->duplicate);
    assert_int_equal(a1->seq, a2->seq);
    assert_int_equal(a2->routed_count, 1);
    assert_string_equal(a2->routed[0].id, "cd75");
    assert_int_equal(
        e2e_scalar(s_db, "select count(*) from deliveries where message_id = '%s'", id),
        1);
    mlg_msg_destroy(&a1);
    mlg_msg_destroy(&a2);
    /* the same id from another agency reveals nothing */
    mlg_client_t *other = e2e_client(&s_bp, "cd75", 0);
    snprintf(m->to[0].id, sizeof(m->to[0].id), "cd92");
    expect_reject(other, m, "INVALID", "id already used");
    mlg_client_destroy(&other);
    mlg_msg_destroy(&m);
    mlg_client_destroy(&c);
}

/* ---- every code the broker answers ----------------------------------- */

static void
expect_error(mlg_msg_t *m, const char *code)
{
    if (m->op != MLG_OP_ERROR || strcmp(m->code, code) != 0)
        print_error("expected ERROR %s, got %s %s %s\n", code, mlg_op_name(m->op),
                    m->code, m->reason);
    assert_int_equal(m->op, MLG_OP_ERROR);
    assert_string_equal(m->code, code);
    assert_true(strlen(m->reason) > 10);
}

static void
test_session_codes(void **state)
{
    (void)state;
    zsock_t *d = e2e_raw(&s_bp);
    /* garbage, then a PING before HELLO, then a bad version, an unknown op */
    mlg_msg_t *m = e2e_raw_exchange(d, "\xc1garbage", 8, 10000);
    expect_error(m, "MALFORMED");
    mlg_msg_destroy(&m);
    const uint8_t ping[] = {0x81, 0xa2, 'o', 'p', 0xa4, 'P', 'I', 'N', 'G'};
    m = e2e_raw_exchange(d, ping, sizeof(ping), 10000);
    expect_error(m, "HELLO_REQUIRED");
    mlg_msg_destroy(&m);
    mlg_msg_t *hello = mlg_msg_new(MLG_OP_HELLO);
    strcpy(hello->agency, "cd75");
    hello->v = 2;
    m = e2e_raw_ask(d, hello, 10000);
    expect_error(m, "UNSUPPORTED_VERSION");
    mlg_msg_destroy(&m);
    const uint8_t sub[] = {0x81, 0xa2, 'o', 'p', 0xa3, 'S', 'U', 'B'};
    m = e2e_raw_exchange(d, sub, sizeof(sub), 10000);
    expect_error(m, "UNKNOWN_OP");
    mlg_msg_destroy(&m);
    /* an unregistered agency */
    strcpy(hello->agency, "mairie-inconnue");
    hello->v = 1;
    m = e2e_raw_ask(d, hello, 10000);
    expect_error(m, "FORBIDDEN");
    mlg_msg_destroy(&m);
    /* two frames in one message */
    zmsg_t *two = zmsg_new();
    zmsg_addmem(two, ping, sizeof(ping));
    zmsg_addmem(two, ping, sizeof(ping));
    zmsg_send(&two, d);
    m = e2e_raw_recv(d, 10000);
    assert_non_null(m);
    expect_error(m, "MALFORMED");
    mlg_msg_destroy(&m);
    /* now a good HELLO, and an ACK of a delivery never sent */
    strcpy(hello->agency, "cd75");
    m = e2e_raw_ask(d, hello, 10000);
    assert_int_equal(m->op, MLG_OP_WELCOME);
    assert_int_equal(m->heartbeat_ms, 1000);
    assert_int_equal(m->max_message_bytes, 65536);
    mlg_msg_destroy(&m);
    mlg_msg_t *ack = mlg_msg_new(MLG_OP_ACK);
    ack->delivery = 999999;
    m = e2e_raw_ask(d, ack, 10000);
    expect_error(m, "UNKNOWN_DELIVERY");
    mlg_msg_destroy(&m);
    m = e2e_raw_exchange(d, ping, sizeof(ping), 10000);
    assert_int_equal(m->op, MLG_OP_PONG);
    mlg_msg_destroy(&m);
    mlg_msg_destroy(&ack);
    mlg_msg_destroy(&hello);
    zsock_destroy(&d);
}

static void
test_publish_codes(void **state)
{
    (void)state;
    mlg_client_t *c = e2e_client(&s_bp, "ccas-paris-13", 0);
    char id[37];
    mlg_msg_t *m;
    /* before HELLO, on a raw connection: REJECT with the id */
    zsock_t *d = e2e_raw(&s_bp);
    m = e2e_msg(id, ALERT, id, "cd75");
    mlg_msg_t *a = e2e_raw_ask(d, m, 10000);
    assert_int_equal(a->op, MLG_OP_REJECT);
    assert_string_equal(a->code, "HELLO_REQUIRED");
    assert_string_equal(a->id, id);
    mlg_msg_destroy(&a);
    zsock_destroy(&d);
    mlg_msg_destroy(&m);

    const struct {
        const char *json;
        const char *code;
        const char *reason;
    } cases[] = {
        {"{\"id\": \"%s\", \"type\": \"service.capacity.changed\", \"version\": 1,"
         " \"body\": {}}",
         "FORBIDDEN", "may not publish service.capacity.changed"},
        {"{\"id\": \"%s\", \"type\": \"referral.created\", \"version\": 9, \"body\": {}}",
         "UNKNOWN_TYPE", "no schema for referral.created version 9"},
        {"{\"id\": \"%s\", \"type\": \"referral.cancelled\", \"version\": 1,"
         " \"to\": [\"cd75\"], \"subject\": \"P\", \"purpose\": \"orientation\","
         " \"body\": {\"referral_id\": \"nope\", \"reason\": \"r\"}}",
         "INVALID", "/referral_id: not a UUID"},
        {"{\"id\": \"%s\", \"type\": \"referral.cancelled\", \"version\": 1,"
         " \"to\": [\"ccas-paris-13\"], \"subject\": \"P\", \"purpose\": \"orientation\","
         " \"body\": {\"referral_id\": \"0d3e8a52-7c1b-4f6e-8a9d-2b4c6e8f0a1b\","
         " \"reason\": \"r\"}}",
         "ADDRESS_REQUIRED", "other than the publisher"},
        {"{\"id\": \"%s\", \"type\": \"referral.cancelled\", \"version\": 1,"
         " \"to\": [\"cd75\"], \"purpose\": \"orientation\","
         " \"body\": {\"referral_id\": \"0d3e8a52-7c1b-4f6e-8a9d-2b4c6e8f0a1b\","
         " \"reason\": \"r\"}}",
         "SUBJECT_REQUIRED", "'subject' is required"},
        {"{\"id\": \"%s\", \"type\": \"referral.cancelled\", \"version\": 1,"
         " \"to\": [\"cd75\"], \"subject\": \"P\", \"purpose\": \"marketing\","
         " \"body\": {\"referral_id\": \"0d3e8a52-7c1b-4f6e-8a9d-2b4c6e8f0a1b\","
         " \"reason\": \"r\"}}",
         "PURPOSE_REQUIRED", "'marketing' is not a purpose"},
        {"{\"id\": \"%s\", \"type\": \"referral.cancelled\", \"version\": 1,"
         " \"to\": [\"cd75\", \"mairie-inconnue\"], \"subject\": \"P\","
         " \"purpose\": \"orientation\","
         " \"body\": {\"referral_id\": \"0d3e8a52-7c1b-4f6e-8a9d-2b4c6e8f0a1b\","
         " \"reason\": \"r\"}}",
         "UNKNOWN_RECIPIENT", "'mairie-inconnue'"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        m = e2e_msg(id, cases[i].json, id);
        expect_reject(c, m, cases[i].code, cases[i].reason);
        mlg_msg_destroy(&m);
        assert_int_equal(
            e2e_scalar(s_db, "select count(*) from messages where id = '%s'", id), 0);
    }
    /* TOO_LARGE: a body over max_message_bytes (64 KiB here) */
    char *big = malloc(80000);
    char *p =
        big
        + sprintf(big,
                  "{\"id\": \"%%s\", \"type\": \"referral.cancelled\", \"version\": 1,"
                  " \"to\": [\"cd75\"], \"subject\": \"P\","
                  " \"purpose\": \"orientation\", \"body\": {\"referral_id\":"
                  " \"0d3e8a52-7c1b-4f6e-8a9d-2b4c6e8f0a1b\", \"reason\": \"");
    memset(p, 'x', 70000);
    strcpy(p + 70000, "\"}}");
    m = e2e_msg(id, big, id);
    expect_reject(c, m, "TOO_LARGE", "over the limit of 65536");
    mlg_msg_destroy(&m);
    free(big);
    /* the connection is still fine afterwards */
    a = send_alert(c, "cd75", id);
    assert_int_equal(a->op, MLG_OP_CONFIRM);
    mlg_msg_destroy(&a);
    mlg_client_destroy(&c);
}

/* ---- deliveries -------------------------------------------------------- */

static void
test_backlog_credit_ack_nack(void **state)
{
    (void)state;
    mlg_client_t *pub = e2e_client(&s_bp, "ccas-paris-13", 0);
    char ids[4][37];
    for (int i = 0; i < 4; i++) {
        mlg_msg_t *a = send_alert(pub, "cd93", ids[i]);
        assert_int_equal(a->op, MLG_OP_CONFIRM);
        mlg_msg_destroy(&a);
    }
    /* cd93 was offline; its client takes two at a time, in order */
    mlg_client_t *sub = e2e_client(&s_bp, "cd93", 2);
    mlg_msg_t *d1 = e2e_expect(sub, MLG_OP_DELIVER, 5000);
    mlg_msg_t *d2 = e2e_expect(sub, MLG_OP_DELIVER, 5000);
    assert_string_equal(d1->id, ids[0]);
    assert_string_equal(d2->id, ids[1]);
    assert_string_equal(d1->from, "ccas-paris-13");
    assert_int_equal(d1->attempt, 1);
    assert_null(mlg_client_recv(sub, 500)); /* credit 2: no third yet */
    /* ACK the first: the third comes */
    assert_int_equal(mlg_client_ack(sub, d1->delivery), MLG_OK);
    mlg_msg_t *d3 = e2e_expect(sub, MLG_OP_DELIVER, 5000);
    assert_string_equal(d3->id, ids[2]);
    /* NACK with requeue: the second comes back, attempt 2 */
    assert_int_equal(mlg_client_nack(sub, d2->delivery, true, "base indisponible"),
                     MLG_OK);
    mlg_msg_t *again = e2e_expect(sub, MLG_OP_DELIVER, 5000);
    assert_string_equal(again->id, ids[1]);
    assert_int_equal(again->attempt, 2);
    /* NACK without requeue: dead at once */
    assert_int_equal(mlg_client_nack(sub, d3->delivery, false, "refusé"), MLG_OK);
    mlg_msg_t *d4 = e2e_expect(sub, MLG_OP_DELIVER, 5000);
    assert_string_equal(d4->id, ids[3]);
    assert_int_equal(mlg_client_ack(sub, again->delivery), MLG_OK);
    assert_int_equal(mlg_client_ack(sub, d4->delivery), MLG_OK);
    /* acking twice is an error */
    assert_int_equal(mlg_client_ack(sub, d1->delivery), MLG_OK);
    mlg_msg_t *e = e2e_expect(sub, MLG_OP_ERROR, 5000);
    assert_string_equal(e->code, "UNKNOWN_DELIVERY");
    mlg_msg_destroy(&e);
    zclock_sleep(300); /* the store writes acks in its next batch */
    assert_int_equal(e2e_scalar(s_db,
                                "select count(*) from deliveries where recipient = '%s'"
                                " and state = 'acked'",
                                "cd93"),
                     3);
    assert_int_equal(e2e_scalar(s_db,
                                "select count(*) from deliveries where recipient = '%s'"
                                " and state = 'dead' and last_error = 'refusé'",
                                "cd93"),
                     1);
    assert_int_equal(e2e_scalar(s_db,
                                "select count(*) from delivery_events e join deliveries d"
                                " on d.id = e.delivery_id where d.recipient = '%s'"
                                " and e.event in ('nack', 'dead')",
                                "cd93"),
                     3);
    mlg_msg_destroy(&d1);
    mlg_msg_destroy(&d2);
    mlg_msg_destroy(&d3);
    mlg_msg_destroy(&d4);
    mlg_msg_destroy(&again);
    mlg_client_destroy(&sub);
    mlg_client_destroy(&pub);
}

static void
test_redelivery_bye_silence_dead(void **state)
{
    (void)state;
    mlg_client_t *pub = e2e_client(&s_bp, "ccas-paris-13", 0);
    char id[37];
    mlg_msg_t *a = send_alert(pub, "cd94", id);
    assert_int_equal(a->op, MLG_OP_CONFIRM);
    mlg_msg_destroy(&a);
    /* attempt 1 to a client that leaves (BYE) without acking */
    mlg_client_t *c1 = e2e_client(&s_bp, "cd94", 1);
    mlg_msg_t *d = e2e_expect(c1, MLG_OP_DELIVER, 5000);
    assert_int_equal(d->attempt, 1);
    mlg_msg_destroy(&d);
    mlg_client_destroy(&c1);
    /* attempt 2 to a client that falls silent */
    zsock_t *silent = e2e_raw(&s_bp);
    e2e_raw_hello(silent, "cd94", 5);
    d = e2e_raw_recv(silent, 10000);
    assert_non_null(d);
    assert_int_equal(d->op, MLG_OP_DELIVER);
    assert_int_equal(d->attempt, 2);
    mlg_msg_destroy(&d);
    /* after 3 x heartbeat_ms of silence it goes to the next client */
    mlg_client_t *c3 = e2e_client(&s_bp, "cd94", 1);
    d = e2e_expect(c3, MLG_OP_DELIVER, 8000);
    assert_string_equal(d->id, id);
    assert_int_equal(d->attempt, 3);
    /* the silent one has lost its session */
    const uint8_t ping[] = {0x81, 0xa2, 'o', 'p', 0xa4, 'P', 'I', 'N', 'G'};
    mlg_msg_t *e = e2e_raw_exchange(silent, ping, sizeof(ping), 10000);
    expect_error(e, "HELLO_REQUIRED");
    mlg_msg_destroy(&e);
    /* attempt 3 of max_attempts 3 requeued: dead */
    assert_int_equal(mlg_client_nack(c3, d->delivery, true, "encore"), MLG_OK);
    assert_null(mlg_client_recv(c3, 500));
    zclock_sleep(300);
    assert_int_equal(e2e_scalar(s_db,
                                "select count(*) from deliveries where message_id = '%s'"
                                " and state = 'dead' and attempts = 3",
                                id),
                     1);
    assert_int_equal(e2e_scalar(s_db,
                                "select count(*) from delivery_events e join deliveries d"
                                " on d.id = e.delivery_id where d.message_id = '%s'"
                                " and e.event = 'requeued'",
                                id),
                     2);
    mlg_msg_destroy(&d);
    zsock_destroy(&silent);
    mlg_client_destroy(&c3);
    mlg_client_destroy(&pub);
}

/* ---- queues shared, replaced sessions, large backlogs, garbage --------- */

/* A client that acks and leaves at once (maillage-send --receive does):
   its ACK and BYE are in the broker's socket when the connection's
   closure is seen, and must still count. (The closure used to end the
   session first: the ACK then found no session, and the delivery went
   out again to the next client.) */
static void
test_ack_then_leave(void **state)
{
    (void)state;
    mlg_client_t *pub = e2e_client(&s_bp, "ccas-paris-13", 0);
    for (int i = 0; i < 30; i++) {
        char id[37];
        mlg_msg_t *a = send_alert(pub, "cd91", id);
        assert_int_equal(a->op, MLG_OP_CONFIRM);
        mlg_msg_destroy(&a);
        mlg_client_t *sub = e2e_client(&s_bp, "cd91", 1);
        mlg_msg_t *d = e2e_expect(sub, MLG_OP_DELIVER, 10000);
        assert_string_equal(d->id, id);
        assert_int_equal(d->attempt, 1);
        assert_int_equal(mlg_client_ack(sub, d->delivery), MLG_OK);
        mlg_msg_destroy(&d);
        mlg_client_destroy(&sub); /* BYE, and gone */
    }
    const char *acked = "select count(*) from deliveries where recipient = 'cd91'"
                        " and state = 'acked'";
    for (int i = 0; i < 100 && e2e_scalar(s_db, acked, NULL) != 30; i++)
        zclock_sleep(100);
    assert_int_equal(e2e_scalar(s_db, acked, NULL), 30);
    mlg_client_t *sub = e2e_client(&s_bp, "cd91", 10);
    assert_null(mlg_client_recv(sub, 500));
    mlg_client_destroy(&sub);
    mlg_client_destroy(&pub);
}

static void
test_shared_queue_and_second_hello(void **state)
{
    (void)state;
    mlg_client_t *pub = e2e_client(&s_bp, "ccas-paris-13", 0);
    char ids[3][37];
    for (int i = 0; i < 3; i++) {
        mlg_msg_t *a = send_alert(pub, "cd95", ids[i]);
        assert_int_equal(a->op, MLG_OP_CONFIRM);
        mlg_msg_destroy(&a);
    }
    /* two clients of one agency, credit 1 each: one delivery each */
    mlg_client_t *c1 = e2e_client(&s_bp, "cd95", 1);
    mlg_msg_t *d1 = e2e_expect(c1, MLG_OP_DELIVER, 5000);
    mlg_client_t *c2 = e2e_client(&s_bp, "cd95", 1);
    mlg_msg_t *d2 = e2e_expect(c2, MLG_OP_DELIVER, 5000);
    assert_string_equal(d1->id, ids[0]);
    assert_string_equal(d2->id, ids[1]);
    assert_null(mlg_client_recv(c1, 300));
    assert_null(mlg_client_recv(c2, 300));
    /* a second HELLO on c1's connection: its delivery goes back, and
       comes to it again (attempt 2) with its new credit */
    mlg_msg_t *hello = mlg_msg_new(MLG_OP_HELLO);
    strcpy(hello->agency, "cd95");
    hello->credit = 2;
    assert_int_equal(mlg_client_send(c1, hello), MLG_OK);
    mlg_msg_destroy(&hello);
    mlg_msg_t *w = e2e_expect(c1, MLG_OP_WELCOME, 5000);
    mlg_msg_destroy(&w);
    mlg_msg_t *again = e2e_expect(c1, MLG_OP_DELIVER, 5000);
    mlg_msg_t *third = e2e_expect(c1, MLG_OP_DELIVER, 5000);
    assert_string_equal(again->id, ids[0]);
    assert_int_equal(again->attempt, 2);
    assert_string_equal(third->id, ids[2]);
    /* the old delivery id is no longer in flight to anyone but c1 */
    mlg_client_ack(c2, d1->delivery);
    mlg_msg_t *e = e2e_expect(c2, MLG_OP_ERROR, 5000);
    assert_string_equal(e->code, "UNKNOWN_DELIVERY");
    mlg_msg_destroy(&e);
    mlg_client_ack(c1, again->delivery);
    mlg_client_ack(c1, third->delivery);
    mlg_client_ack(c2, d2->delivery);
    mlg_msg_destroy(&d1);
    mlg_msg_destroy(&d2);
    mlg_msg_destroy(&again);
    mlg_msg_destroy(&third);
    mlg_client_destroy(&c1);
    mlg_client_destroy(&c2);
    mlg_client_destroy(&pub);
}

static void
test_large_backlog_in_order(void **state)
{
    (void)state;
    /* more than the broker reads ahead (256): it pages through */
    enum { N = 700 };
    static char ids[N][37];
    mlg_client_t *pub = e2e_client(&s_bp, "ccas-paris-13", 0);
    for (int i = 0; i < N; i++) {
        mlg_msg_t *m = e2e_msg(ids[i], ALERT, ids[i], "cd77");
        mlg_client_send(pub, m);
        mlg_msg_destroy(&m);
        if (i % 50 == 49) /* keep under max_outstanding */
            for (int k = 0; k < 50; k++) {
                mlg_msg_t *a = e2e_expect(pub, MLG_OP_CONFIRM, 10000);
                mlg_msg_destroy(&a);
            }
    }
    mlg_client_t *sub = e2e_client(&s_bp, "cd77", 64);
    for (int i = 0; i < N; i++) {
        mlg_msg_t *d = e2e_expect(sub, MLG_OP_DELIVER, 10000);
        if (strcmp(d->id, ids[i]) != 0)
            print_error("delivery %d is %s, expected %s\n", i, d->id, ids[i]);
        assert_string_equal(d->id, ids[i]);
        mlg_client_ack(sub, d->delivery);
        mlg_msg_destroy(&d);
    }
    assert_null(mlg_client_recv(sub, 300));
    mlg_client_destroy(&sub);
    mlg_client_destroy(&pub);
}

static void
test_garbage_does_not_disturb_others(void **state)
{
    (void)state;
    zsock_t *bad = e2e_raw(&s_bp);
    mlg_client_t *good = e2e_client(&s_bp, "ccas-paris-13", 0);
    zsock_set_sndhwm(bad, 0);
    /* a flood of hostile frames: random bytes, deep nesting, huge lengths */
    uint8_t junk[600];
    for (int i = 0; i < 2000; i++) {
        size_t n = 1 + (size_t)(rand() % (int)sizeof(junk));
        for (size_t k = 0; k < n; k++)
            junk[k] = (uint8_t)rand();
        if (i % 3 == 0)
            memset(junk, 0x91, n); /* arrays in arrays */
        if (i % 3 == 1) {
            junk[0] = 0xdf; /* a map32 declaring 4 billion pairs */
            memset(junk + 1, 0xff, 4);
        }
        zframe_t *f = zframe_new(junk, n);
        zframe_send(&f, bad, 0);
    }
    char id[37];
    mlg_msg_t *a = send_alert(good, "cd75", id);
    assert_int_equal(a->op, MLG_OP_CONFIRM);
    mlg_msg_destroy(&a);
    /* every hostile frame got its own ERROR, and the broker lives */
    int errors = 0;
    for (; errors < 2000; errors++) {
        mlg_msg_t *m = e2e_raw_recv(bad, 5000);
        if (!m)
            break;
        assert_int_equal(m->op, MLG_OP_ERROR);
        mlg_msg_destroy(&m);
    }
    assert_int_equal(errors, 2000);
    zsock_destroy(&bad);
    mlg_client_destroy(&good);
}

static void
test_burst_beyond_pipe_bounds(void **state)
{
    (void)state;
    /* more publishes at once than an actor pipe holds by default (1000):
       the loop and the store must not block each other */
    enum { N = 5000 };
    mlg_client_t *pub = e2e_client(&s_bp, "ccas-paris-13", 0);
    char id[37];
    for (int i = 0; i < N; i++) {
        mlg_msg_t *m = e2e_alert(id, "cd75", "P-1");
        mlg_client_send(pub, m);
        mlg_msg_destroy(&m);
    }
    int confirmed = 0;
    for (int i = 0; i < N; i++) {
        mlg_msg_t *a = mlg_client_recv(pub, 20000);
        assert_non_null(a);
        confirmed += a->op == MLG_OP_CONFIRM;
        mlg_msg_destroy(&a);
    }
    assert_int_equal(confirmed, N);
    mlg_client_destroy(&pub);
}

/* ---- many publishes in one transaction --------------------------------- */

/* A burst the store writes with one COPY per table: new messages, one
   stored before, one twice in the burst, one denied for want of consent.
   Each gets its own answer, the audit chain stays whole, and the
   recipient, caught up and connected, gets each new delivery once, in
   order, as the database holds it (they go out from memory). */
enum { S_BURST = 300, S_PRE = 50, S_TWICE = 100, S_DENIED = 150 };

/* The burst, sent at once: alerts to cd78, but S_PRE with the id of the
   alert stored before (`pre`), S_TWICE + 1 with the id of S_TWICE, and
   S_DENIED a situation.shared that no consent covers. Their ids in
   ids, the body of the first in body. */
static void
s_burst_send(mlg_client_t *pub, const char *pre, char ids[][37], uint8_t *body,
             size_t *body_len)
{
    for (int i = 0; i < S_BURST; i++) {
        mlg_msg_t *m;
        if (i == S_DENIED)
            m = e2e_msg(
                ids[i],
                "{\"id\": \"%s\", \"type\": \"situation.shared\", \"version\": 1,"
                " \"to\": [\"cd78\"], \"subject\": \"P-3\", \"purpose\": \"orientation\","
                " \"body\": {\"household\": {\"adults\": 1, \"children\": 0},"
                " \"housing\": \"temporary\", \"summary\": \"Déménagement.\"}}",
                ids[i]);
        else
            m = e2e_msg(ids[i], ALERT, ids[i], "cd78");
        if (i == S_PRE)
            snprintf(m->id, sizeof(m->id), "%s", pre);
        else if (i == S_TWICE + 1)
            snprintf(m->id, sizeof(m->id), "%s", ids[S_TWICE]);
        snprintf(ids[i], sizeof(ids[i]), "%s", m->id);
        if (i == 0) {
            assert_true(m->body_len <= 1024);
            memcpy(body, m->body, m->body_len);
            *body_len = m->body_len;
        }
        assert_int_equal(mlg_client_send(pub, m), MLG_OK);
        mlg_msg_destroy(&m);
    }
}

/* The burst's answers, in order: the two duplicates with the seq of
   their first, the others stored in the order sent, S_DENIED denied. */
static void
s_burst_answers(mlg_client_t *pub, char ids[][37], uint64_t pre_seq)
{
    uint64_t last_seq = pre_seq, twice_seq = 0;
    for (int i = 0; i < S_BURST; i++) {
        mlg_msg_t *a = e2e_expect(pub, MLG_OP_CONFIRM, 20000);
        assert_string_equal(a->id, ids[i]);
        if (i == S_PRE || i == S_TWICE + 1) {
            assert_true(a->duplicate);
            assert_int_equal(a->seq, i == S_PRE ? pre_seq : twice_seq);
            assert_int_equal(a->routed_count, 1);
        }
        else {
            assert_false(a->duplicate);
            assert_true(a->seq > last_seq); /* stored in the order sent */
            last_seq = a->seq;
            if (i == S_TWICE)
                twice_seq = a->seq;
            if (i == S_DENIED) {
                assert_int_equal(a->routed_count, 0);
                assert_int_equal(a->denied_count, 1);
                assert_string_equal(a->denied[0].reason, "NO_CONSENT");
            }
            else {
                assert_int_equal(a->routed_count, 1);
                assert_string_equal(a->routed[0].id, "cd78");
            }
        }
        mlg_msg_destroy(&a);
    }
}

/* The deliveries: each new allowed message once, in order, as the
   database holds it; each acked. */
static void
s_burst_deliveries(mlg_client_t *sub, char ids[][37], const uint8_t *body,
                   size_t body_len)
{
    uint64_t last_delivery = 0;
    for (int i = 0; i < S_BURST; i++) {
        if (i == S_PRE || i == S_TWICE + 1 || i == S_DENIED)
            continue;
        mlg_msg_t *d = e2e_expect(sub, MLG_OP_DELIVER, 10000);
        assert_string_equal(d->id, ids[i]);
        assert_true(d->delivery > last_delivery);
        last_delivery = d->delivery;
        assert_int_equal(d->attempt, 1);
        assert_string_equal(d->from, "ccas-paris-13");
        assert_string_equal(d->type, "child.protection.alert");
        assert_string_equal(d->subject, "P-1");
        assert_string_equal(d->purpose, "protection");
        assert_int_equal(d->body_len, body_len);
        assert_memory_equal(d->body, body, body_len);
        /* the times the database holds, to the microsecond */
        assert_int_equal(
            e2e_scalar(s_db,
                       "select (extract(epoch from received_at) * 1000000)::bigint"
                       " from messages where id = '%.36s'",
                       ids[i]),
            d->received_at.sec * 1000000 + d->received_at.nsec / 1000);
        assert_int_equal(mlg_client_ack(sub, d->delivery), MLG_OK);
        mlg_msg_destroy(&d);
    }
}

/* A delivery sent and then acked is one update of its row, not two
   (delivery.c tells the SENT with the ACK), counted by a trigger of the
   test's own; and a delivery held in flight shows as sent within the
   hold (about a second), its attempt counted. */
#define S_ONCE 200
static void
test_sent_and_ack_one_update(void **state)
{
    (void)state;
    PQclear(PQexec(s_db, "create table test_updates (n bigint not null);"
                         " insert into test_updates values (0);"
                         " create function test_count() returns trigger language plpgsql"
                         " as $$ begin update test_updates set n = n + 1; return null;"
                         " end $$;"
                         " create trigger test_count after update on deliveries"
                         " for each row when (new.recipient = 'cd76')"
                         " execute function test_count();"));
    mlg_client_t *pub = e2e_client(&s_bp, "ccas-paris-13", 0);
    mlg_client_t *sub = e2e_client(&s_bp, "cd76", 1000);
    for (int i = 0; i < S_ONCE; i++) {
        char id[37];
        mlg_msg_t *a = send_alert(pub, "cd76", id);
        assert_int_equal(a->op, MLG_OP_CONFIRM);
        mlg_msg_destroy(&a);
        mlg_msg_t *d = e2e_expect(sub, MLG_OP_DELIVER, 5000);
        if (i < S_ONCE - 1)
            assert_int_equal(mlg_client_ack(sub, d->delivery), MLG_OK);
        mlg_msg_destroy(&d);
    }
    assert_int_equal(e2e_wait_scalar(s_db, S_ONCE - 1, 10000,
                                     "select count(*) from deliveries where recipient ="
                                     " 'cd76' and state = 'acked' and attempts = 1"
                                     " and first_sent_at is not null"),
                     S_ONCE - 1);
    /* the last one, in flight: sent, as the table shows it */
    assert_int_equal(e2e_wait_scalar(s_db, 1, 10000,
                                     "select count(*) from deliveries where recipient ="
                                     " 'cd76' and state = 'pending' and attempts = 1"
                                     " and first_sent_at is not null"),
                     1);
    long updates = e2e_scalar(s_db, "select n from test_updates");
    print_message("%d deliveries, %ld updates of their rows\n", S_ONCE, updates);
    /* one each, and a few more where a SENT and its ACK fell in two of
       the store's batches (told SENT at once, it was close to 2 each) */
    assert_true(updates >= S_ONCE && updates <= S_ONCE + S_ONCE / 10);
    PQclear(PQexec(s_db, "drop trigger test_count on deliveries;"
                         " drop function test_count(); drop table test_updates;"));
    mlg_client_destroy(&sub);
    mlg_client_destroy(&pub);
}

static void
test_bulk_burst_answers_chain_and_deliveries(void **state)
{
    (void)state;
    mlg_client_t *pub = e2e_client(&s_bp, "ccas-paris-13", 0);
    mlg_client_t *sub = e2e_client(&s_bp, "cd78", 1000);
    char pre[37], ids[S_BURST][37];
    mlg_msg_t *a = send_alert(pub, "cd78", pre);
    assert_int_equal(a->op, MLG_OP_CONFIRM);
    uint64_t pre_seq = a->seq;
    mlg_msg_destroy(&a);
    mlg_msg_t *d = e2e_expect(sub, MLG_OP_DELIVER, 5000);
    assert_string_equal(d->id, pre);
    assert_int_equal(mlg_client_ack(sub, d->delivery), MLG_OK);
    mlg_msg_destroy(&d);

    size_t body_len = 0;
    uint8_t body[1024];
    s_burst_send(pub, pre, ids, body, &body_len);
    s_burst_answers(pub, ids, pre_seq);
    s_burst_deliveries(sub, ids, body, body_len);
    assert_null(mlg_client_recv(sub, 300)); /* nothing twice */
    zclock_sleep(300);                      /* the store writes acks in its next batch */
    assert_int_equal(e2e_scalar(s_db,
                                "select count(*) from deliveries where recipient = 'cd78'"
                                " and state = 'acked' and attempts = 1"),
                     S_BURST - 3 + 1);
    assert_int_equal(e2e_scalar(s_db,
                                "select count(*) from deliveries where recipient = 'cd78'"
                                " and state <> 'acked'"),
                     0);
    assert_int_equal(
        e2e_scalar(s_db,
                   "select count(*) from consent_decisions where message_id ="
                   " '%s' and decision = 'deny' and reason = 'NO_CONSENT'",
                   ids[S_DENIED]),
        1);
    assert_int_equal(
        e2e_scalar(s_db,
                   "select count(*) from consent_decisions where message_id ="
                   " '%s'",
                   ids[S_TWICE]),
        1);
    assert_int_equal(e2e_verify_chain(&s_bp), 0);
    mlg_client_destroy(&sub);
    mlg_client_destroy(&pub);
}

/* ---- crash ------------------------------------------------------------- */

static void
test_sigkill_loses_nothing_confirmed(void **state)
{
    (void)state;
    enum { N = 300 };
    static char ids[N][37];
    static bool confirmed[N];
    mlg_client_t *pub = e2e_client(&s_bp, "ccas-paris-13", 0);
    for (int i = 0; i < N; i++) {
        mlg_msg_t *m = e2e_msg(ids[i], ALERT, ids[i], "cd92");
        mlg_client_send(pub, m);
        mlg_msg_destroy(&m);
    }
    /* a client takes some in flight; the broker dies mid-stream, with
       publishes still being stored */
    mlg_client_t *sub = e2e_client(&s_bp, "cd92", 5);
    int got = 0;
    while (got < N / 4) {
        mlg_msg_t *a = e2e_expect(pub, MLG_OP_CONFIRM, 10000);
        for (int i = 0; i < N; i++)
            if (strcmp(ids[i], a->id) == 0)
                confirmed[i] = true;
        got++;
        mlg_msg_destroy(&a);
    }
    brokerproc_stop(&s_bp, SIGKILL);
    /* confirms already on their way were sent before the kill: they count */
    mlg_msg_t *a;
    while ((a = mlg_client_recv(pub, 200))) {
        for (int i = 0; i < N && a->op == MLG_OP_CONFIRM; i++)
            if (strcmp(ids[i], a->id) == 0)
                confirmed[i] = true;
        mlg_msg_destroy(&a);
    }
    mlg_client_destroy(&sub);
    mlg_client_destroy(&pub);
    assert_int_equal(brokerproc_start(&s_bp), 0);
    /* every confirmed id arrives after the restart, first attempts in
       the order they were stored */
    sub = e2e_client(&s_bp, "cd92", 100);
    static bool delivered[N];
    int last = -1;
    mlg_msg_t *d;
    while ((d = mlg_client_recv(sub, 1000))) {
        assert_int_equal(d->op, MLG_OP_DELIVER);
        for (int i = 0; i < N; i++)
            if (strcmp(ids[i], d->id) == 0) {
                delivered[i] = true;
                if (d->attempt == 1) {
                    assert_true(i > last);
                    last = i;
                }
            }
        mlg_client_ack(sub, d->delivery);
        mlg_msg_destroy(&d);
    }
    int lost = 0, count = 0;
    for (int i = 0; i < N; i++) {
        count += confirmed[i];
        if (confirmed[i] && !delivered[i]) {
            print_error("confirmed %s was not delivered after the restart\n", ids[i]);
            lost++;
        }
    }
    assert_true(count >= N / 4);
    assert_int_equal(lost, 0);
    mlg_client_destroy(&sub);
}

/* After everything above (bursts, duplicates, revocations, a SIGKILL):
   the audit chain is whole. */
static void
test_audit_chain_whole(void **state)
{
    (void)state;
    assert_int_equal(e2e_verify_chain(&s_bp), 0);
}

/* Another writer moved the chain's head (a second broker on the same
   database): the batch in hand is refused, nothing of it stored, and
   the next one is written after the head as the database has it. Runs
   last: the chain it leaves has a position no row holds. */
static void
test_other_writer_refused(void **state)
{
    (void)state;
    mlg_client_t *c = e2e_client(&s_bp, "ccas-paris-13", 0);
    PQclear(PQexec(s_db, "update chain_head set chain_seq = chain_seq + 1 where id = 1"));
    long head = brokerproc_scalar(s_db, "select chain_seq from chain_head");
    char id[37];
    mlg_msg_t *m = e2e_msg(id, ALERT, id, "cd92");
    expect_reject(c, m, "UNAVAILABLE", "retry later");
    assert_int_equal(
        e2e_scalar(s_db, "select count(*) from messages where id = '%s'", id), 0);
    assert_int_equal(brokerproc_wait_log(&s_bp, "extended by another writer", 5000), 0);
    /* the same publish again: stored after the head the database has */
    assert_int_equal(mlg_client_send(c, m), MLG_OK);
    mlg_msg_t *a = e2e_expect(c, MLG_OP_CONFIRM, 10000);
    assert_false(a->duplicate);
    mlg_msg_destroy(&a);
    assert_int_equal(
        e2e_scalar(s_db, "select chain_seq from messages where id = '%s'", id), head + 1);
    mlg_msg_destroy(&m);
    mlg_client_destroy(&c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_publish_confirm_stored),
        cmocka_unit_test(test_consent_basis_denied),
        cmocka_unit_test(test_non_personal_routing),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_session_codes),
        cmocka_unit_test(test_publish_codes),
        cmocka_unit_test(test_backlog_credit_ack_nack),
        cmocka_unit_test(test_redelivery_bye_silence_dead),
        cmocka_unit_test(test_ack_then_leave),
        cmocka_unit_test(test_shared_queue_and_second_hello),
        cmocka_unit_test(test_large_backlog_in_order),
        cmocka_unit_test(test_garbage_does_not_disturb_others),
        cmocka_unit_test(test_burst_beyond_pipe_bounds),
        cmocka_unit_test(test_bulk_burst_answers_chain_and_deliveries),
        cmocka_unit_test(test_sent_and_ack_one_update),
        cmocka_unit_test(test_sigkill_loses_nothing_confirmed),
        cmocka_unit_test(test_audit_chain_whole),
        cmocka_unit_test(test_other_writer_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
