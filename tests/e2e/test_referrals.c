/*  test_referrals.c: PROTOCOL.md §9 on the real broker, PostgreSQL and
    clients: each move of a leg; each refusal, with nothing stored; a
    retried move answered as a duplicate; the parallel request superseded;
    a deadline of two seconds giving exactly one overdue notice to each
    party, also across a SIGKILL and a restart; duplicates told or not
    according to consent; the legs rebuilt from stored messages; and
    `maillage verify` passing over all of it. */

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <czmq.h>

#include "brokerproc.h"
#include "e2e.h"
#include "maillage/body.h"
#include "maillage/client.h"
#include "maillage/json.h"

static brokerproc_t s_bp;
static PGconn *s_db;

/* The agencies, then (a section of its own after them) the deadlines:
   two seconds for home care, so that a test can see a leg fall due. */
static const char *s_config = "    ccas\n"
                              "        name = \"CCAS\"\n"
                              "        publish = \"referral.*, consent.*\"\n"
                              "    ehpad-a\n"
                              "        name = \"EHPAD A\"\n"
                              "        publish = \"referral.*, consent.*\"\n"
                              "    ehpad-b\n"
                              "        name = \"EHPAD B\"\n"
                              "        publish = \"referral.*, consent.*\"\n"
                              "    cd75\n"
                              "        name = \"Departement\"\n"
                              "        publish = \"referral.*, consent.*\"\n"
                              "referrals\n"
                              "    deadline\n"
                              "        home-care\n"
                              "            routine = 2s\n";

static int
setup(void **state)
{
    (void)state;
    return e2e_broker_up_db(&s_bp, &s_db, "e2e_referrals", "    heartbeat_ms = 5000\n",
                            s_config);
}

static int
teardown(void **state)
{
    (void)state;
    return e2e_broker_down_db(&s_bp, &s_db);
}

static mlg_client_t *
client(const char *agency, uint64_t credit)
{
    mlg_client_t *c = brokerproc_client(&s_bp, agency, credit);
    assert_non_null(c);
    return c;
}

/* Sends JSON whose first %s is the message id `id` (a fresh one when
   `id` is empty); the answer. */
static mlg_msg_t *
send_json(mlg_client_t *c, char *id, const char *fmt, ...)
{
    char body[2048], json[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof(body), fmt, ap);
    va_end(ap);
    if (!id[0])
        brokerproc_new_id(id);
    snprintf(json, sizeof(json), "{\"id\": \"%s\", %s}", id, body);
    mlg_msg_t *m = NULL;
    mlg_error_t err;
    if (mlg_publish_from_json(json, strlen(json), &m, &err) != MLG_OK)
        print_error("%s: %s\n", json, err.reason);
    assert_non_null(m);
    assert_int_equal(mlg_client_send(c, m), MLG_OK);
    mlg_msg_destroy(&m);
    mlg_msg_t *a = brokerproc_answer(c, 10000);
    assert_non_null(a);
    return a;
}

/* A referral.created of `rid` from c to `to` ("\"a\", \"b\"") about
   `subject`; the answer. */
static mlg_msg_t *
create(mlg_client_t *c, const char *rid, const char *to, const char *subject,
       const char *service)
{
    char id[37] = "";
    return send_json(c, id,
                     "\"type\": \"referral.created\", \"version\": 1, \"to\": [%s],"
                     " \"subject\": \"%s\", \"purpose\": \"orientation\","
                     " \"correlation\": \"%s\", \"body\": {\"referral_id\": \"%s\","
                     " \"service\": \"%s\", \"reason\": \"Perte d'autonomie.\","
                     " \"priority\": \"routine\", \"requested_by\": {\"name\": \"E. "
                     "Martin\", \"role\": \"AS\"}}",
                     to, subject, rid, rid, service);
}

/* An agency's move of `rid` (type referral.<move>), to `to`; the answer.
   `id` as send_json's. */
static mlg_msg_t *
move(mlg_client_t *c, char *id, const char *what, const char *rid, const char *to)
{
    const char *extra = strcmp(what, "started") == 0 ? ", \"start_date\": \"2027-01-04\""
                        : strcmp(what, "declined") == 0
                            ? ", \"reason_code\": \"no-capacity\""
                        : strcmp(what, "cancelled") == 0 ? ", \"reason\": \"Plus utile.\""
                        : strcmp(what, "completed") == 0 ? ", \"outcome\": \"supported\""
                                                         : "";
    return send_json(c, id,
                     "\"type\": \"referral.%s\", \"version\": 1, \"to\": [\"%s\"],"
                     " \"subject\": \"P-1\", \"purpose\": \"orientation\","
                     " \"correlation\": \"%s\", \"body\": {\"referral_id\": \"%s\"%s}",
                     what, to, rid, rid, extra);
}

static void
expect_confirm(mlg_msg_t *a)
{
    if (a->op != MLG_OP_CONFIRM)
        print_error("expected CONFIRM, got %s %s\n", a->code, a->reason);
    assert_int_equal(a->op, MLG_OP_CONFIRM);
    mlg_msg_destroy(&a);
}

static void
expect_reject(mlg_msg_t *a, const char *code, const char *reason)
{
    if (a->op != MLG_OP_REJECT || strcmp(a->code, code) || strcmp(a->reason, reason))
        print_error("expected REJECT %s %s, got %s %s %s\n", code, reason,
                    mlg_op_name(a->op), a->code, a->reason);
    assert_int_equal(a->op, MLG_OP_REJECT);
    assert_string_equal(a->code, code);
    assert_string_equal(a->reason, reason);
    mlg_msg_destroy(&a);
}

/* The DELIVERs of `type` that reach c within ms, each acked; how many.
   The last one is kept in *last when given (the caller destroys it). */
static int
deliveries(mlg_client_t *c, const char *type, int ms, mlg_msg_t **last)
{
    int n = 0;
    int64_t until = zclock_mono() + ms;
    while (zclock_mono() < until) {
        mlg_msg_t *m = mlg_client_recv(c, (int)(until - zclock_mono()));
        if (!m)
            continue;
        if (m->op == MLG_OP_DELIVER) {
            assert_int_equal(mlg_client_ack(c, m->delivery), MLG_OK);
            if (strcmp(m->type, type) == 0) {
                n++;
                if (last) {
                    mlg_msg_destroy(last);
                    *last = m;
                    continue;
                }
            }
        }
        mlg_msg_destroy(&m);
    }
    return n;
}

static void
grant(mlg_client_t *c, const char *subject, const char *parties)
{
    char id[37] = "", consent[37];
    brokerproc_new_id(consent);
    expect_confirm(send_json(
        c, id,
        "\"type\": \"consent.granted\", \"version\": 1, \"subject\": \"%s\","
        " \"body\": {\"consent_id\": \"%s\", \"parties\": [%s], \"purposes\": "
        "[\"orientation\"], \"categories\": [\"social\"], \"valid_from\": "
        "\"2020-01-01T00:00:00Z\", \"collected_by\": {\"name\": \"E. Martin\", \"role\": "
        "\"AS\"}, \"method\": \"written\"}",
        subject, consent, parties));
}

static const char *
leg_state(const char *rid, const char *recipient)
{
    static char state[32];
    char sql[512];
    snprintf(sql, sizeof(sql),
             "select state from referral_legs where referral_id = '%s' and recipient = "
             "'%s'",
             rid, recipient);
    PGresult *res = PQexec(s_db, sql);
    snprintf(state, sizeof(state), "%s",
             PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "(none)");
    PQclear(res);
    return state;
}

/* The consents every test relies on: P-1 shared by the CCAS and both
   care homes. */
static void
test_consents(void **state)
{
    (void)state;
    mlg_client_t *c = client("ccas", 0);
    grant(c, "P-1", "\"ccas\", \"ehpad-a\", \"ehpad-b\"");
    mlg_client_destroy(&c);
}

/* A referral to two care homes: one receives, waits, accepts and
   starts; the other's leg is superseded, and the broker tells its
   recipient and the referrer. */
static void
test_moves_and_superseding(void **state)
{
    (void)state;
    mlg_client_t *ccas = client("ccas", 100), *a = client("ehpad-a", 100),
                 *b = client("ehpad-b", 100);
    char rid[37], id[37];
    brokerproc_new_id(rid);
    mlg_msg_t *c = create(ccas, rid, "\"ehpad-a\", \"ehpad-b\"", "P-1", "nursing-home");
    assert_int_equal(c->op, MLG_OP_CONFIRM);
    assert_int_equal(c->routed_count, 2);
    assert_int_equal(c->notices_count, 0);
    mlg_msg_destroy(&c);
    assert_string_equal(leg_state(rid, "ehpad-a"), "sent");
    assert_string_equal(leg_state(rid, "ehpad-b"), "sent");
    const char *steps[] = {"received", "waitlisted", "accepted", "started"};
    for (size_t i = 0; i < 4; i++) {
        id[0] = '\0';
        expect_confirm(move(a, id, steps[i], rid, "ccas"));
        assert_string_equal(leg_state(rid, "ehpad-a"), steps[i]);
        assert_int_equal(
            e2e_scalar(s_db,
                       "select count(*) from referral_moves where message_id = '%s'"
                       " and to_state = '%s' and recipient = 'ehpad-a'",
                       id, steps[i]),
            1);
    }
    /* the other leg closes, with one notice to its recipient and to the
       referrer */
    mlg_msg_t *d = NULL;
    assert_int_equal(deliveries(b, "referral.superseded", 3000, &d), 1);
    assert_string_equal(d->from, "maillage");
    assert_string_equal(d->correlation, rid);
    char who[70];
    assert_true(mlg_body_text(d, "/recipient", who, sizeof(who)));
    assert_string_equal(who, "ehpad-b");
    mlg_msg_destroy(&d);
    assert_int_equal(deliveries(ccas, "referral.superseded", 1000, NULL), 1);
    assert_string_equal(leg_state(rid, "ehpad-b"), "superseded");
    assert_int_equal(
        e2e_scalar(s_db,
                   "select count(*) from messages m join consent_decisions c on"
                   " c.message_id = m.id where m.type = 'referral.superseded' and"
                   " m.sender = 'maillage' and m.correlation = '%s' and"
                   " c.basis = 'service_notice' and c.decision = 'allow'",
                   rid),
        2);
    /* first decision: waitlisted (the clock stops there, not at received) */
    assert_int_equal(
        e2e_scalar(s_db,
                   "select count(*) from referral_legs l join referral_moves m on"
                   " m.referral_id = l.referral_id and m.recipient = l.recipient"
                   " and m.to_state = 'waitlisted' where l.referral_id = '%s' and"
                   " l.decided_at = m.moved_at",
                   rid),
        1);
    mlg_client_destroy(&ccas);
    mlg_client_destroy(&a);
    mlg_client_destroy(&b);
}

/* Each refusal of §9, with nothing stored; a retried move stays a
   duplicate; an agency may not publish the broker's notices. */
static void
test_refusals(void **state)
{
    (void)state;
    mlg_client_t *ccas = client("ccas", 0), *a = client("ehpad-a", 0),
                 *b = client("ehpad-b", 0);
    char rid[37], other[37], id[37];
    brokerproc_new_id(rid);
    brokerproc_new_id(other);
    expect_confirm(create(ccas, rid, "\"ehpad-a\"", "P-1", "nursing-home"));
    long before = e2e_scalar(s_db, "select count(*) from messages");
    const char *none = "/referral_id: no open referral between you and ccas";
    id[0] = '\0';
    expect_reject(move(b, id, "accepted", rid, "ccas"), "INVALID", none);
    id[0] = '\0';
    expect_reject(move(b, id, "accepted", other, "ccas"), "INVALID", none);
    id[0] = '\0';
    expect_reject(move(a, id, "completed", rid, "ccas"), "INVALID",
                  "/referral_id: sent; cannot move to completed");
    id[0] = '\0';
    expect_reject(move(a, id, "received", rid, "cd75"), "ADDRESS_REQUIRED",
                  "referral.received must be addressed to the referral's referrer "
                  "(ccas): 'to' must name it");
    expect_reject(create(ccas, rid, "\"ehpad-b\"", "P-1", "nursing-home"), "INVALID",
                  "/referral_id: already used");
    id[0] = '\0';
    expect_reject(send_json(a, id,
                            "\"type\": \"referral.overdue\", \"version\": 1, \"subject\":"
                            " \"P-1\", \"body\": {\"referral_id\": \"%s\", \"recipient\":"
                            " \"ehpad-a\", \"state\": \"sent\", \"due_at\":"
                            " \"2027-01-01T00:00:00Z\"}",
                            rid),
                  "FORBIDDEN",
                  "referral.overdue is published by the broker only "
                  "(PROTOCOL.md §9)");
    assert_int_equal(e2e_scalar(s_db, "select count(*) from messages"), before);
    assert_string_equal(leg_state(rid, "ehpad-a"), "sent");
    /* a move stored, then sent again with its id: a duplicate, not a
       refusal, though the leg has moved on */
    id[0] = '\0';
    expect_confirm(move(a, id, "received", rid, "ccas"));
    mlg_msg_t *again = move(a, id, "received", rid, "ccas");
    assert_int_equal(again->op, MLG_OP_CONFIRM);
    assert_true(again->duplicate);
    mlg_msg_destroy(&again);
    assert_int_equal(
        e2e_scalar(s_db, "select count(*) from referral_moves where message_id = '%s'",
                   id),
        1);
    mlg_client_destroy(&ccas);
    mlg_client_destroy(&a);
    mlg_client_destroy(&b);
}

/* A leg of home care is due two seconds after it opens. The broker is
   killed once the referral is stored and started again: each party gets
   exactly one overdue notice, and a second restart adds none. */
static void
test_overdue_once_across_restart(void **state)
{
    (void)state;
    char rid[37];
    brokerproc_new_id(rid);
    mlg_client_t *ccas = client("ccas", 0);
    expect_confirm(create(ccas, rid, "\"ehpad-a\"", "P-1", "home-care"));
    mlg_client_destroy(&ccas);
    brokerproc_stop(&s_bp, SIGKILL);
    assert_int_equal(brokerproc_start(&s_bp), 0);
    ccas = client("ccas", 100);
    mlg_client_t *a = client("ehpad-a", 100);
    mlg_msg_t *d = NULL;
    assert_int_equal(deliveries(a, "referral.overdue", 5000, &d), 1);
    char text[64];
    assert_true(mlg_body_text(d, "/state", text, sizeof(text)));
    assert_string_equal(text, "sent");
    assert_true(mlg_body_text(d, "/referral_id", text, sizeof(text)));
    assert_string_equal(text, rid);
    assert_string_equal(d->subject, "P-1");
    mlg_msg_destroy(&d);
    assert_int_equal(deliveries(ccas, "referral.overdue", 1000, NULL), 1);
    mlg_client_destroy(&ccas);
    mlg_client_destroy(&a);
    assert_int_equal(brokerproc_stop(&s_bp, SIGTERM), 0);
    assert_int_equal(brokerproc_start(&s_bp), 0);
    sleep(2);
    assert_int_equal(
        e2e_scalar(s_db,
                   "select count(*) from messages where type = 'referral.overdue'"
                   " and correlation = '%s'",
                   rid),
        1);
    assert_int_equal(
        e2e_scalar(s_db,
                   "select count(*) from referral_legs where referral_id = '%s'"
                   " and overdue_notified_at is not null and overdue_message_id ="
                   " (select id from messages where type = 'referral.overdue' and"
                   " correlation = '%s')",
                   rid, rid),
        1);
}

/* Duplicates: the département refers P-2 to care home A, which holds a
   leg of the CCAS's referral already. A is told in its DELIVER (also one
   read back from the database after a restart); the département is told
   in its CONFIRM only once it shares a consent with the CCAS. Every
   match is stored. */
static void
test_duplicates(void **state)
{
    (void)state;
    mlg_client_t *ccas = client("ccas", 0), *cd75 = client("cd75", 0),
                 *a = client("ehpad-a", 100);
    deliveries(a, "none", 500, NULL); /* what earlier tests left */
    char first[37], second[37], third[37];
    brokerproc_new_id(first);
    brokerproc_new_id(second);
    brokerproc_new_id(third);
    grant(cd75, "P-2", "\"cd75\", \"ehpad-a\"");
    grant(ccas, "P-2", "\"ccas\", \"ehpad-a\"");
    expect_confirm(create(ccas, first, "\"ehpad-a\"", "P-2", "accommodation"));
    mlg_msg_t *c = create(cd75, second, "\"ehpad-a\"", "P-2", "accommodation");
    assert_int_equal(c->op, MLG_OP_CONFIRM);
    assert_int_equal(c->routed_count, 1);
    assert_int_equal(c->notices_count, 0); /* no consent between cd75 and ccas */
    mlg_msg_destroy(&c);
    mlg_msg_t *d = NULL;
    assert_int_equal(deliveries(a, "referral.created", 3000, &d), 2);
    assert_int_equal(d->notices_count, 1);
    assert_string_equal(d->notices[0].code, "DUPLICATE_REFERRAL");
    assert_string_equal(d->notices[0].referral_id, first);
    assert_true(d->notices[0].has_since);
    assert_string_equal(d->notices[0].recipient, "");
    mlg_msg_destroy(&d);
    assert_int_equal(
        e2e_scalar(s_db,
                   "select count(*) from referral_duplicates where referral_id = '%s'"
                   " and duplicate_of = '%s' and not told_publisher and"
                   " told_recipient",
                   second, first),
        1);
    /* now a consent covers cd75 and ccas for P-2 */
    grant(ccas, "P-2", "\"ccas\", \"cd75\"");
    c = create(cd75, third, "\"ehpad-a\"", "P-2", "accommodation");
    assert_int_equal(c->op, MLG_OP_CONFIRM);
    assert_int_equal(c->notices_count, 2); /* the CCAS's leg, and its own */
    bool told_first = false;
    for (size_t i = 0; i < c->notices_count; i++)
        if (strcmp(c->notices[i].referral_id, first) == 0) {
            told_first = true;
            assert_string_equal(c->notices[i].recipient, "ehpad-a");
            assert_string_equal(c->notices[i].state, "sent");
        }
    assert_true(told_first);
    mlg_msg_destroy(&c);
    assert_int_equal(
        e2e_scalar(s_db,
                   "select count(*) from referral_duplicates where referral_id = '%s'"
                   " and told_publisher",
                   third),
        2);
    mlg_client_destroy(&ccas);
    mlg_client_destroy(&cd75);
    mlg_client_destroy(&a); /* the third's delivery not acked: pending */
    /* read back from the database after a restart, the DELIVER says the
       same: both other referrals' legs are the care home's */
    assert_int_equal(brokerproc_stop(&s_bp, SIGTERM), 0);
    assert_int_equal(brokerproc_start(&s_bp), 0);
    a = client("ehpad-a", 100);
    d = NULL;
    assert_int_equal(deliveries(a, "referral.created", 3000, &d), 1);
    assert_string_equal(d->correlation, third);
    assert_int_equal(d->notices_count, 2);
    bool seen[2] = {false, false};
    for (size_t i = 0; i < d->notices_count; i++) {
        assert_string_equal(d->notices[i].code, "DUPLICATE_REFERRAL");
        assert_true(d->notices[i].has_since);
        seen[0] |= strcmp(d->notices[i].referral_id, first) == 0;
        seen[1] |= strcmp(d->notices[i].referral_id, second) == 0;
    }
    assert_true(seen[0] && seen[1]);
    mlg_msg_destroy(&d);
    mlg_client_destroy(&a);
}

/* The legs as the migration would find them: the referral tables
   emptied and the rebuild asked again, as on a database stored before
   them; the broker started again rebuilds the same legs from the
   messages (its own notices aside, which came after the tables). */
static void
test_rebuild(void **state)
{
    (void)state;
    const char *legs = "select string_agg(referral_id || recipient || state ||"
                       " coalesce(decided_at::text, '') || coalesce(closed_at::text, ''),"
                       " ',' order by referral_id, recipient) from referral_legs"
                       " where referral_id not in (select correlation::uuid from messages"
                       " where sender = 'maillage')";
    PGresult *res = PQexec(s_db, legs);
    char before[8192];
    snprintf(before, sizeof(before), "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    assert_true(strlen(before) > 100);
    assert_int_equal(brokerproc_stop(&s_bp, SIGTERM), 0);
    PQclear(PQexec(s_db,
                   "truncate referrals, referral_legs, referral_moves,"
                   " referral_duplicates; insert into referral_rebuild default values"));
    assert_int_equal(brokerproc_start(&s_bp), 0);
    assert_int_equal(brokerproc_wait_log(&s_bp, "referral legs rebuilt", 5000), 0);
    res = PQexec(s_db, legs);
    assert_string_equal(PQgetvalue(res, 0, 0), before);
    PQclear(res);
    assert_int_equal(e2e_scalar(s_db, "select count(*) from referral_rebuild"), 0);
}

/* The audit chain holds every notice. */
static void
test_verify(void **state)
{
    (void)state;
    assert_int_equal(e2e_verify_chain(&s_bp), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_consents),
        cmocka_unit_test(test_moves_and_superseding),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_overdue_once_across_restart),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_rebuild),
        cmocka_unit_test(test_verify),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
