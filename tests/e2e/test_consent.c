/*  test_consent.c: PROTOCOL.md §7 on the real broker and PostgreSQL.

    Shares are denied NO_CONSENT until a consent is granted, then allowed
    with the consent id stored in the decision; NOT_COVERED, REVOKED and
    EXPIRED (also "not yet valid"); consent notices reach only the other
    parties; a pending delivery is settled `revoked` and never delivered;
    the index is rebuilt after a restart. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

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
    "        publish = \"situation.shared, health.summary.shared, consent.*, "
    "child.protection.alert\"\n"
    "    ehpad-les-tilleuls\n"
    "        name = \"EHPAD Les Tilleuls\"\n"
    "        publish = \"consent.*, situation.shared\"\n"
    "    cd75\n"
    "        name = \"Departement de Paris\"\n"
    "        publish = \"consent.*\"\n";

static int
setup(void **state)
{
    (void)state;
    return e2e_broker_up_db(&s_bp, &s_db, "e2e_consent", "    heartbeat_ms = 1000\n",
                            s_agencies);
}

static int
teardown(void **state)
{
    (void)state;
    return e2e_broker_down_db(&s_bp, &s_db);
}

/* Publishes JSON whose first %s is a fresh message id; the answer. */
static mlg_msg_t *
publish(mlg_client_t *c, char *id, const char *fmt, ...)
{
    char body[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof(body), fmt, ap);
    va_end(ap);
    mlg_msg_t *m = e2e_msg(id, "{\"id\": \"%s\", %s}", id, body);
    mlg_msg_t *a = e2e_publish(c, m, 10000);
    mlg_msg_destroy(&m);
    return a;
}

static void
grant(mlg_client_t *c, char *id, const char *consent_id, const char *subject,
      const char *parties, const char *purposes, const char *categories, const char *from,
      const char *until, const char *expect_routed)
{
    char extra[128] = "";
    if (until)
        snprintf(extra, sizeof(extra), ", \"valid_until\": \"%s\"", until);
    mlg_msg_t *a = publish(
        c, id,
        "\"type\": \"consent.granted\", \"version\": 1, \"subject\": \"%s\","
        " \"body\": {\"consent_id\": \"%s\", \"parties\": [%s], \"purposes\": [%s],"
        " \"categories\": [%s], \"valid_from\": \"%s\"%s,"
        " \"collected_by\": {\"name\": \"E. Martin\", \"role\": \"AS\"}, \"method\": "
        "\"written\"}",
        subject, consent_id, parties, purposes, categories, from, extra);
    if (a->op != MLG_OP_CONFIRM)
        print_error("grant refused: %s %s\n", a->code, a->reason);
    assert_int_equal(a->op, MLG_OP_CONFIRM);
    char routed[256] = "";
    for (size_t i = 0; i < a->routed_count; i++) {
        strcat(routed, i ? " " : "");
        strcat(routed, a->routed[i].id);
    }
    assert_string_equal(routed, expect_routed);
    assert_int_equal(a->denied_count, 0);
    mlg_msg_destroy(&a);
}

/* A situation.shared from c to `to` about subject for purpose: the
   CONFIRM's verdict for that recipient, "allow" or the reason code. */
static void
share(mlg_client_t *c, char *id, const char *to, const char *subject, const char *purpose,
      const char *expect)
{
    mlg_msg_t *a =
        publish(c, id,
                "\"type\": \"situation.shared\", \"version\": 1, \"to\": [\"%s\"],"
                " \"subject\": \"%s\", \"purpose\": \"%s\", \"body\":"
                " {\"household\": {\"adults\": 1, \"children\": 2},"
                " \"housing\": \"temporary\"}",
                to, subject, purpose);
    assert_int_equal(a->op, MLG_OP_CONFIRM);
    const char *got = a->routed_count   ? "allow"
                      : a->denied_count ? a->denied[0].reason
                                        : "?";
    if (strcmp(got, expect) != 0)
        print_error("share %s -> %s about %s for %s: got %s, expected %s\n", id, to,
                    subject, purpose, got, expect);
    assert_string_equal(got, expect);
    mlg_msg_destroy(&a);
}

#define K1 "aaaaaaaa-0000-4000-8000-000000000001"
#define K2 "aaaaaaaa-0000-4000-8000-000000000002"
#define K3 "aaaaaaaa-0000-4000-8000-000000000003"
#define K4 "aaaaaaaa-0000-4000-8000-000000000004"
#define PAST "2025-01-01T00:00:00Z"

static void
test_denied_then_granted_then_not_covered(void **state)
{
    (void)state;
    mlg_client_t *ccas = e2e_client(&s_bp, "ccas-paris-13", 0);
    char id[37], g[37];
    share(ccas, id, "ehpad-les-tilleuls", "P-1", "coordination", "NO_CONSENT");
    assert_int_equal(
        e2e_scalar(
            s_db,
            "select count(*) from consent_decisions where message_id = '%s'"
            " and decision = 'deny' and reason = 'NO_CONSENT' and consent_id is null",
            id),
        1);
    grant(ccas, g, K1, "P-1", "\"ccas-paris-13\", \"ehpad-les-tilleuls\"",
          "\"coordination\"", "\"social\"", PAST, NULL, "ehpad-les-tilleuls");
    assert_int_equal(
        e2e_scalar(s_db,
                   "select count(*) from consents where id = '%s' and granted_by ="
                   " 'ccas-paris-13' and granted_message_id = '%s'",
                   K1, g),
        1);
    /* in force for the very next publish, and the decision names it */
    share(ccas, id, "ehpad-les-tilleuls", "P-1", "coordination", "allow");
    assert_int_equal(
        e2e_scalar(s_db,
                   "select count(*) from consent_decisions where message_id = '%s'"
                   " and decision = 'allow' and basis = 'consent' and consent_id = '%s'",
                   id, K1),
        1);
    /* the other direction too: parties share with each other */
    mlg_client_t *ehpad = e2e_client(&s_bp, "ehpad-les-tilleuls", 0);
    share(ehpad, id, "ccas-paris-13", "P-1", "coordination", "allow");
    /* another purpose; another category (health.summary.shared) */
    share(ccas, id, "ehpad-les-tilleuls", "P-1", "orientation", "NOT_COVERED");
    mlg_msg_t *a = publish(ccas, id,
                           "\"type\": \"health.summary.shared\", \"version\": 1,"
                           " \"to\": [\"ehpad-les-tilleuls\"], \"subject\": \"P-1\","
                           " \"purpose\": \"coordination\", \"body\": {\"gir\": 2}");
    assert_int_equal(a->denied_count, 1);
    assert_string_equal(a->denied[0].reason, "NOT_COVERED");
    mlg_msg_destroy(&a);
    /* another subject, another agency: no consent */
    share(ccas, id, "ehpad-les-tilleuls", "P-2", "coordination", "NO_CONSENT");
    mlg_client_destroy(&ehpad);
    mlg_client_destroy(&ccas);
}

static void
test_consent_events_checked(void **state)
{
    (void)state;
    mlg_client_t *ccas = e2e_client(&s_bp, "ccas-paris-13", 0);
    mlg_client_t *cd75 = e2e_client(&s_bp, "cd75", 0);
    char id[37];
    struct {
        mlg_client_t *c;
        const char *json;
        const char *reason;
    } cases[] = {
        {cd75,
         "\"type\": \"consent.granted\", \"version\": 1, \"subject\": \"P-1\", \"body\":"
         " {\"consent_id\": \"" K2 "\", \"parties\": [\"ccas-paris-13\","
         " \"ehpad-les-tilleuls\"], \"purposes\": [\"orientation\"], \"categories\":"
         " [\"social\"], \"valid_from\": \"" PAST
         "\", \"collected_by\": {\"name\": \"x\","
         " \"role\": \"y\"}, \"method\": \"oral\"}",
         "/parties: the publisher 'cd75' must be one of the parties"},
        {ccas,
         "\"type\": \"consent.granted\", \"version\": 1, \"subject\": \"P-1\", \"body\":"
         " {\"consent_id\": \"" K1 "\", \"parties\": [\"ccas-paris-13\","
         " \"ehpad-les-tilleuls\"], \"purposes\": [\"orientation\"], \"categories\":"
         " [\"social\"], \"valid_from\": \"" PAST
         "\", \"collected_by\": {\"name\": \"x\","
         " \"role\": \"y\"}, \"method\": \"oral\"}",
         "/consent_id: a consent with this id exists already"},
        {ccas,
         "\"type\": \"consent.revoked\", \"version\": 1, \"subject\": \"P-1\", \"body\":"
         " {\"consent_id\": \"" K4 "\"}",
         "/consent_id: no consent with this id has 'ccas-paris-13' among its parties"},
        {cd75,
         "\"type\": \"consent.revoked\", \"version\": 1, \"subject\": \"P-1\", \"body\":"
         " {\"consent_id\": \"" K1 "\"}",
         "/consent_id: no consent with this id has 'cd75' among its parties"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        mlg_msg_t *a = publish(cases[i].c, id, "%s", cases[i].json);
        if (a->op != MLG_OP_REJECT || !strstr(a->reason, cases[i].reason))
            print_error("case %zu: got %s %s %s\n", i, mlg_op_name(a->op), a->code,
                        a->reason);
        assert_int_equal(a->op, MLG_OP_REJECT);
        assert_string_equal(a->code, "INVALID");
        assert_non_null(strstr(a->reason, cases[i].reason));
        mlg_msg_destroy(&a);
    }
    mlg_client_destroy(&cd75);
    mlg_client_destroy(&ccas);
}

/* An agency that is no party of a consent learns nothing of its id: its
   grant reusing the id of another's consent, its revocation of that
   consent, and its revocation of an id no consent has get one answer. */
static void
test_non_party_learns_nothing(void **state)
{
    (void)state;
    mlg_client_t *cd75 = e2e_client(&s_bp, "cd75", 0);
    char id[37];
    const char *probes[] = {
        /* K1 is the consent of ccas-paris-13 and ehpad-les-tilleuls */
        "\"type\": \"consent.granted\", \"version\": 1, \"subject\": \"P-1\", \"body\":"
        " {\"consent_id\": \"" K1 "\", \"parties\": [\"cd75\","
        " \"ehpad-les-tilleuls\"], \"purposes\": [\"orientation\"], \"categories\":"
        " [\"social\"], \"valid_from\": \"" PAST "\", \"collected_by\": {\"name\": \"x\","
        " \"role\": \"y\"}, \"method\": \"oral\"}",
        "\"type\": \"consent.revoked\", \"version\": 1, \"subject\": \"P-1\", \"body\":"
        " {\"consent_id\": \"" K1 "\"}",
        /* no consent has this id */
        ("\"type\": \"consent.revoked\", \"version\": 1, \"subject\": \"P-1\", \"body\":"
         " {\"consent_id\": \"aaaaaaaa-0000-4000-8000-0000000000ff\"}"),
    };
    char first[MLG_STRBUF(MLG_REASON_MAX)] = "";
    for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
        mlg_msg_t *a = publish(cd75, id, "%s", probes[i]);
        print_message("probe %zu: %s %s %s\n", i, mlg_op_name(a->op), a->code, a->reason);
        assert_int_equal(a->op, MLG_OP_REJECT);
        assert_string_equal(a->code, "INVALID");
        if (i == 0)
            snprintf(first, sizeof(first), "%s", a->reason);
        else
            assert_string_equal(a->reason, first);
        mlg_msg_destroy(&a);
    }
    assert_string_equal(
        first, "/consent_id: no consent with this id has 'cd75' among its parties");
    /* K1 is untouched: neither granted again nor revoked */
    assert_int_equal(
        e2e_scalar(s_db,
                   "select count(*) from consents where id = '%s' and revoked_at is "
                   "null and granted_by = 'ccas-paris-13'",
                   K1),
        1);
    mlg_client_destroy(&cd75);
}

static void
test_notices_reach_other_parties_only(void **state)
{
    (void)state;
    mlg_client_t *ccas = e2e_client(&s_bp, "ccas-paris-13", 0);
    char g[37];
    grant(ccas, g, K3, "P-3", "\"ehpad-les-tilleuls\", \"ccas-paris-13\", \"cd75\"",
          "\"orientation\", \"coordination\"", "\"social\"", PAST, NULL,
          "ehpad-les-tilleuls cd75");
    mlg_client_t *cd75 = e2e_client(&s_bp, "cd75", 10);
    int notices = 0;
    mlg_msg_t *d;
    while ((d = mlg_client_recv(cd75, 500))) {
        if (d->op == MLG_OP_DELIVER && strcmp(d->id, g) == 0) {
            assert_string_equal(d->type, "consent.granted");
            assert_string_equal(d->from, "ccas-paris-13");
            notices++;
        }
        if (d->op == MLG_OP_DELIVER)
            mlg_client_ack(cd75, d->delivery);
        mlg_msg_destroy(&d);
    }
    assert_int_equal(notices, 1);
    assert_int_equal(e2e_scalar(s_db,
                                "select count(*) from deliveries where message_id = '%s'"
                                " and recipient = 'ccas-paris-13'",
                                g),
                     0);
    assert_int_equal(
        e2e_scalar(s_db,
                   "select count(*) from consent_decisions where message_id = '%s'"
                   " and basis = 'consent_notice' and consent_id = '%s'",
                   g, K3),
        2);
    mlg_client_destroy(&cd75);
    mlg_client_destroy(&ccas);
}

static void
test_revocation_settles_pending(void **state)
{
    (void)state;
    /* K1 (P-1, ccas <-> ehpad, coordination/social) is in force; ehpad is
       offline: the share waits in its queue */
    mlg_client_t *ccas = e2e_client(&s_bp, "ccas-paris-13", 0);
    char pending[37], r[37], id[37];
    share(ccas, pending, "ehpad-les-tilleuls", "P-1", "coordination", "allow");
    mlg_msg_t *a =
        publish(ccas, r,
                "\"type\": \"consent.revoked\", \"version\": 1, \"subject\": \"P-1\","
                " \"body\": {\"consent_id\": \"" K1 "\", \"reason\": \"retrait\"}");
    assert_int_equal(a->op, MLG_OP_CONFIRM);
    assert_int_equal(a->routed_count, 1);
    assert_string_equal(a->routed[0].id, "ehpad-les-tilleuls");
    mlg_msg_destroy(&a);
    assert_int_equal(e2e_scalar(s_db,
                                "select count(*) from deliveries where message_id = '%s'"
                                " and state = 'revoked'",
                                pending),
                     1);
    assert_int_equal(
        e2e_scalar(s_db,
                   "select count(*) from consent_decisions where message_id = '%s'"
                   " and decision = 'deny' and reason = 'REVOKED' and consent_id = '%s'",
                   pending, K1),
        1);
    assert_int_equal(
        e2e_scalar(
            s_db,
            "select count(*) from consents where id = '%s' and revoked_at is not null"
            " and revoked_message_id = '%s'",
            K1, r),
        1);
    /* ehpad comes online: it gets notices, never the revoked share */
    mlg_client_t *ehpad = e2e_client(&s_bp, "ehpad-les-tilleuls", 50);
    mlg_msg_t *d;
    bool saw_revocation = false;
    while ((d = mlg_client_recv(ehpad, 700))) {
        if (d->op == MLG_OP_DELIVER) {
            assert_string_not_equal(d->id, pending);
            saw_revocation = saw_revocation || strcmp(d->id, r) == 0;
            mlg_client_ack(ehpad, d->delivery);
        }
        mlg_msg_destroy(&d);
    }
    assert_true(saw_revocation);
    /* and new shares are denied REVOKED */
    share(ccas, id, "ehpad-les-tilleuls", "P-1", "coordination", "REVOKED");
    mlg_client_destroy(&ehpad);
    mlg_client_destroy(&ccas);
}

static void
test_expired_and_not_yet_valid(void **state)
{
    (void)state;
    mlg_client_t *ccas = e2e_client(&s_bp, "ccas-paris-13", 0);
    char g[37], id[37];
    grant(ccas, g, "bbbbbbbb-0000-4000-8000-000000000001", "P-5",
          "\"ccas-paris-13\", \"ehpad-les-tilleuls\"", "\"coordination\"", "\"social\"",
          "2020-01-01T00:00:00Z", "2021-01-01T00:00:00Z", "ehpad-les-tilleuls");
    share(ccas, id, "ehpad-les-tilleuls", "P-5", "coordination", "EXPIRED");
    assert_int_equal(
        e2e_scalar(s_db,
                   "select count(*) from consent_decisions where message_id = '%s'"
                   " and reason = 'EXPIRED' and detail like '%%expired%%'",
                   id),
        1);
    grant(ccas, g, "bbbbbbbb-0000-4000-8000-000000000002", "P-6",
          "\"ccas-paris-13\", \"ehpad-les-tilleuls\"", "\"coordination\"", "\"social\"",
          "2099-01-01T00:00:00Z", NULL, "ehpad-les-tilleuls");
    share(ccas, id, "ehpad-les-tilleuls", "P-6", "coordination", "EXPIRED");
    assert_int_equal(
        e2e_scalar(s_db,
                   "select count(*) from consent_decisions where message_id = '%s'"
                   " and reason = 'EXPIRED' and detail like '%%not yet valid%%'",
                   id),
        1);
    /* a legal obligation needs no consent */
    mlg_msg_t *a =
        publish(ccas, id,
                "\"type\": \"child.protection.alert\", \"version\": 1,"
                " \"to\": [\"cd75\"], \"subject\": \"P-6\", \"purpose\": \"protection\","
                " \"body\": {\"alert_id\": \"" K4 "\", \"concern\": \"c\","
                " \"urgency\": \"urgent\"}");
    assert_int_equal(a->routed_count, 1);
    mlg_msg_destroy(&a);
    mlg_client_destroy(&ccas);
}

static void
test_in_flight_not_recalled_not_redelivered(void **state)
{
    (void)state;
    mlg_client_t *ccas = e2e_client(&s_bp, "ccas-paris-13", 0);
    char g[37], id[37], r[37];
    const char *k = "cccccccc-0000-4000-8000-000000000001";
    grant(ccas, g, k, "P-7", "\"ccas-paris-13\", \"ehpad-les-tilleuls\"",
          "\"coordination\"", "\"social\"", PAST, NULL, "ehpad-les-tilleuls");
    share(ccas, id, "ehpad-les-tilleuls", "P-7", "coordination", "allow");
    /* ehpad takes the share (and the notice) */
    mlg_client_t *ehpad = e2e_client(&s_bp, "ehpad-les-tilleuls", 10);
    mlg_msg_t *d, *shared = NULL;
    while (!shared && (d = mlg_client_recv(ehpad, 3000))) {
        if (d->op == MLG_OP_DELIVER && strcmp(d->id, id) == 0)
            shared = d;
        else {
            if (d->op == MLG_OP_DELIVER)
                mlg_client_ack(ehpad, d->delivery);
            mlg_msg_destroy(&d);
        }
    }
    assert_non_null(shared);
    /* revoked while in flight: not recalled... */
    char revoke[256];
    snprintf(revoke, sizeof(revoke),
             "\"type\": \"consent.revoked\", \"version\": 1, \"subject\": \"P-7\","
             " \"body\": {\"consent_id\": \"%s\"}",
             k);
    mlg_msg_t *a = publish(ccas, r, "%s", revoke);
    assert_int_equal(a->op, MLG_OP_CONFIRM);
    mlg_msg_destroy(&a);
    assert_int_equal(e2e_scalar(s_db,
                                "select count(*) from deliveries where message_id = '%s'"
                                " and state = 'pending'",
                                id),
                     1);
    /* ...but not redelivered when it comes back */
    mlg_client_nack(ehpad, shared->delivery, true, "plus tard");
    while ((d = mlg_client_recv(ehpad, 700))) {
        if (d->op == MLG_OP_DELIVER) {
            assert_string_not_equal(d->id, id);
            mlg_client_ack(ehpad, d->delivery);
        }
        mlg_msg_destroy(&d);
    }
    assert_int_equal(e2e_scalar(s_db,
                                "select count(*) from deliveries where message_id = '%s'"
                                " and state = 'revoked'",
                                id),
                     1);
    assert_int_equal(
        e2e_scalar(s_db,
                   "select count(*) from consent_decisions where message_id = '%s'"
                   " and decision = 'deny' and reason = 'REVOKED' and consent_id = '%s'",
                   id, k),
        1);
    mlg_msg_destroy(&shared);
    mlg_client_destroy(&ehpad);
    mlg_client_destroy(&ccas);
}

static void
test_index_rebuilt_after_restart(void **state)
{
    (void)state;
    assert_int_equal(brokerproc_stop(&s_bp, SIGTERM), 0);
    assert_int_equal(brokerproc_start(&s_bp), 0);
    mlg_client_t *ccas = e2e_client(&s_bp, "ccas-paris-13", 0);
    char id[37];
    share(ccas, id, "ehpad-les-tilleuls", "P-3", "coordination", "allow");   /* K3 */
    share(ccas, id, "ehpad-les-tilleuls", "P-1", "coordination", "REVOKED"); /* K1 */
    share(ccas, id, "ehpad-les-tilleuls", "P-5", "coordination", "EXPIRED");
    share(ccas, id, "ehpad-les-tilleuls", "P-3", "evaluation", "NOT_COVERED");
    mlg_client_destroy(&ccas);
}

/* Grants, revocations and the deliveries they settled all took their
   place in the audit chain: `maillage verify` finds it whole. */
static void
test_audit_chain_whole(void **state)
{
    (void)state;
    assert_int_equal(e2e_verify_chain(&s_bp), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_denied_then_granted_then_not_covered),
        cmocka_unit_test(test_consent_events_checked),
        cmocka_unit_test(test_non_party_learns_nothing),
        cmocka_unit_test(test_notices_reach_other_parties_only),
        cmocka_unit_test(test_revocation_settles_pending),
        cmocka_unit_test(test_expired_and_not_yet_valid),
        cmocka_unit_test(test_in_flight_not_recalled_not_redelivered),
        cmocka_unit_test(test_index_rebuilt_after_restart),
        cmocka_unit_test(test_audit_chain_whole),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
