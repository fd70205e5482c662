/*  test_cli.c: the operator CLI `maillage` against the real broker and
    PostgreSQL: audit, subject-report, consents, dlq list and dlq replay
    (a replayed dead letter reaches a connected client), with their exit
    codes and errors. */

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
#include <jansson.h>

#include "e2e.h"
#include "maillage/client.h"
#include "maillage/json.h"

static brokerproc_t s_bp;
static char s_dead_id[37];        /* the message whose delivery died */
static unsigned long long s_dead; /* its delivery id */

static const char *s_agencies =
    "    ccas-paris-13\n"
    "        name = \"CCAS Paris 13\"\n"
    "        publish = \"child.protection.alert, consent.*\"\n"
    "    ehpad-les-tilleuls\n"
    "        name = \"EHPAD\"\n"
    "    cd91\n"
    "        name = \"Essonne\"\n";

static int
setup(void **state)
{
    (void)state;
    return e2e_broker_up(&s_bp, "e2e_cli", "    heartbeat_ms = 1000\n", s_agencies);
}

static int
teardown(void **state)
{
    (void)state;
    return e2e_broker_down(&s_bp);
}

static void
test_dead_letter_listed_and_replayed(void **state)
{
    (void)state;
    mlg_client_t *pub = e2e_client(&s_bp, "ccas-paris-13", 0);
    mlg_client_t *sub = e2e_client(&s_bp, "cd91", 1);
    mlg_msg_t *m = e2e_alert(s_dead_id, "cd91", "P-CLI");
    e2e_confirmed(pub, &m);
    mlg_msg_t *d = e2e_expect(sub, MLG_OP_DELIVER, 5000);
    s_dead = (unsigned long long)d->delivery;
    mlg_client_nack(sub, d->delivery, false, "format inconnu");
    mlg_msg_destroy(&d);
    zclock_sleep(300);

    char *out;
    assert_int_equal(e2e_cli(&s_bp, &out, "--json dlq list --agency cd91"), 0);
    json_t *rows = json_loads(out, 0, NULL);
    assert_int_equal(json_array_size(rows), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(rows, 0), "id")),
                     s_dead);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(rows, 0), "last_error")),
        "format inconnu");
    json_decref(rows);
    free(out);
    assert_int_equal(e2e_cli(&s_bp, &out, "dlq list --agency ehpad-les-tilleuls"), 0);
    assert_non_null(strstr(out, "(none)"));
    free(out);

    /* replay: the connected client gets it again, attempts counted anew */
    assert_int_equal(e2e_cli(&s_bp, &out, "dlq replay %llu", s_dead), 0);
    assert_non_null(strstr(out, "replayed delivery"));
    free(out);
    d = e2e_expect(sub, MLG_OP_DELIVER, 5000);
    assert_string_equal(d->id, s_dead_id);
    assert_int_equal(d->attempt, 1);
    mlg_client_ack(sub, d->delivery);
    mlg_msg_destroy(&d);
    /* nothing dead is left to replay: not found */
    assert_int_equal(e2e_cli(&s_bp, &out, "dlq replay %llu", s_dead), 1);
    free(out);
    assert_int_equal(e2e_cli(&s_bp, &out, "dlq replay"), 2);
    free(out);
    assert_int_equal(e2e_cli(&s_bp, &out, "dlq replay --agency"), 2);
    free(out);
    /* arguments longer than any buffer: refused, or looked up, never
       copied past an end (a stack overflow under ASan before) */
    char *digits = malloc(20001);
    assert_non_null(digits);
    memset(digits, '7', 20000);
    digits[20000] = '\0';
    assert_int_equal(e2e_cli(&s_bp, &out, "dlq replay %s", digits), 2);
    free(out);
    memset(digits, '1', 100);
    digits[100] = '\0';
    assert_int_equal(e2e_cli(&s_bp, &out, "dlq replay %s %s", digits, digits), 2);
    free(out);
    free(digits);
    /* 2,000 ids (more than 8 KiB of them): none is dead, so not found */
    char *many = malloc(2000 * 8 + 1);
    assert_non_null(many);
    for (int i = 0; i < 2000; i++)
        snprintf(many + i * 8, 9, "%7d ", 9000000 + i);
    assert_int_equal(e2e_cli(&s_bp, &out, "dlq replay %s", many), 1);
    free(out);
    free(many);
    mlg_client_destroy(&sub);
    mlg_client_destroy(&pub);
}

static void
test_audit(void **state)
{
    (void)state;
    zclock_sleep(300); /* the ack is written in the store's next batch */
    char *out;
    assert_int_equal(e2e_cli(&s_bp, &out, "--json audit %s", s_dead_id), 0);
    json_t *doc = json_loads(out, 0, NULL);
    assert_non_null(doc);
    json_t *msg = json_object_get(doc, "message");
    assert_string_equal(json_string_value(json_object_get(msg, "sender")),
                        "ccas-paris-13");
    assert_string_equal(json_string_value(json_object_get(msg, "type")),
                        "child.protection.alert");
    json_t *dec = json_array_get(json_object_get(doc, "decisions"), 0);
    assert_string_equal(json_string_value(json_object_get(dec, "basis")),
                        "legal_obligation");
    json_t *del = json_array_get(json_object_get(doc, "deliveries"), 0);
    assert_string_equal(json_string_value(json_object_get(del, "state")), "acked");
    json_t *events = json_object_get(doc, "delivery_events");
    char seen[128] = "";
    for (size_t i = 0; i < json_array_size(events); i++) {
        strcat(seen,
               json_string_value(json_object_get(json_array_get(events, i), "event")));
        strcat(seen, " ");
    }
    assert_string_equal(seen, "nack dead replayed ");
    json_decref(doc);
    free(out);
    /* the table for people names each part */
    assert_int_equal(e2e_cli(&s_bp, &out, "audit %s", s_dead_id), 0);
    assert_non_null(strstr(out, "decisions"));
    assert_non_null(strstr(out, "legal_obligation"));
    free(out);
    assert_int_equal(e2e_cli(&s_bp, &out, "audit 00000000-0000-4000-8000-000000000000"),
                     1);
    free(out);
    assert_int_equal(e2e_cli(&s_bp, &out, "audit not-an-id"), 2);
    free(out);
}

static void
test_subject_report_and_consents(void **state)
{
    (void)state;
    mlg_client_t *pub = e2e_client(&s_bp, "ccas-paris-13", 0);
    char id[37];
    mlg_msg_t *m = e2e_msg(
        id,
        "{\"id\": \"%s\", \"type\": \"consent.granted\", \"version\": 1,"
        " \"subject\": \"P-CLI\", \"body\": {\"consent_id\":"
        " \"dddddddd-0000-4000-8000-000000000001\", \"parties\": [\"ccas-paris-13\","
        " \"ehpad-les-tilleuls\"], \"purposes\": [\"orientation\"], \"categories\":"
        " [\"social\"], \"valid_from\": \"2025-01-01T00:00:00Z\", \"collected_by\":"
        " {\"name\": \"x\", \"role\": \"y\"}, \"method\": \"written\"}}",
        id);
    e2e_confirmed(pub, &m);
    mlg_client_destroy(&pub);

    char *out;
    assert_int_equal(e2e_cli(&s_bp, &out, "subject-report P-CLI"), 0);
    json_t *doc = json_loads(out, 0, NULL);
    assert_non_null(doc);
    assert_int_equal(json_array_size(json_object_get(doc, "messages")), 2);
    assert_int_equal(json_array_size(json_object_get(doc, "consents")), 1);
    /* bodies come as JSON, for the person's right of access */
    json_t *first = json_array_get(json_object_get(doc, "messages"), 0);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(first, "body"), "urgency")),
        "urgent");
    json_decref(doc);
    free(out);
    assert_int_equal(e2e_cli(&s_bp, &out, "subject-report P-NOBODY"), 1);
    free(out);

    assert_int_equal(e2e_cli(&s_bp, &out, "consents --subject P-CLI"), 0);
    assert_non_null(strstr(out, "in force"));
    free(out);
    assert_int_equal(e2e_cli(&s_bp, &out, "--json consents --subject P-CLI"), 0);
    json_t *rows = json_loads(out, 0, NULL);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(rows, 0), "status")),
        "in force");
    json_decref(rows);
    free(out);
    assert_int_equal(e2e_cli(&s_bp, &out, "consents --subject P-NOBODY"), 1);
    free(out);
    assert_int_equal(e2e_cli(&s_bp, &out, "consents"), 2);
    free(out);
}

static void
test_purge(void **state)
{
    (void)state;
    /* a message still pending for an offline agency keeps its body */
    mlg_client_t *pub = e2e_client(&s_bp, "ccas-paris-13", 0);
    char pending[37];
    mlg_msg_t *m = e2e_alert(pending, "ehpad-les-tilleuls", "P-CLI");
    e2e_confirmed(pub, &m);
    mlg_client_destroy(&pub);
    zclock_sleep(1100);
    PGconn *db = brokerproc_db(&s_bp);
    long before =
        brokerproc_scalar(db, "select count(*) from messages where body is not null");
    long decisions = brokerproc_scalar(db, "select count(*) from consent_decisions");
    char *out;
    assert_int_equal(e2e_cli(&s_bp, &out, "purge"), 2); /* no period: refused */
    free(out);
    assert_int_equal(e2e_cli(&s_bp, &out, "purge --older-than soon"), 2);
    free(out);
    assert_int_equal(e2e_cli(&s_bp, &out, "--json purge --older-than 1s --dry-run"), 0);
    json_t *doc = json_loads(out, 0, NULL);
    long would = (long)json_integer_value(json_object_get(doc, "messages"));
    json_decref(doc);
    free(out);
    /* all but the two with a delivery still pending for the offline
       ehpad: the alert, and the consent notice of test_subject_report */
    assert_int_equal(would, before - 2);
    assert_int_equal(
        brokerproc_scalar(db, "select count(*) from messages where body is not null"),
        before);
    assert_int_equal(e2e_cli(&s_bp, &out, "purge --older-than 1s"), 0);
    assert_non_null(strstr(out, "cleared the bodies"));
    free(out);
    char sql[256];
    snprintf(sql, sizeof(sql),
             "select count(*) from messages where body is not null and id = '%s'",
             pending);
    assert_int_equal(brokerproc_scalar(db, sql), 1);
    assert_int_equal(
        brokerproc_scalar(db, "select count(*) from messages where body is not null"), 2);
    /* the audit trail stays whole */
    assert_int_equal(brokerproc_scalar(db, "select count(*) from consent_decisions"),
                     decisions);
    assert_true(brokerproc_scalar(db, "select count(*) from messages") >= before);
    PQfinish(db);
    assert_int_equal(e2e_cli(&s_bp, &out, "--json audit %s", s_dead_id), 0);
    doc = json_loads(out, 0, NULL);
    assert_true(
        json_is_null(json_object_get(json_object_get(doc, "message"), "body_bytes")));
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(doc, "message"), "sender")),
        "ccas-paris-13");
    json_decref(doc);
    free(out);
}

static void
test_publish_and_keygen(void **state)
{
    (void)state;
    char *out;
    assert_int_equal(
        e2e_cli(&s_bp, &out,
                "--json publish --endpoint %s --as ccas-paris-13 --type"
                " child.protection.alert --version 1 --to cd91 --subject P-PUB"
                " --purpose protection --body-json '{\"alert_id\":"
                " \"0d3e8a52-7c1b-4f6e-8a9d-2b4c6e8f0a1b\", \"concern\": \"c\","
                " \"urgency\": \"urgent\"}'",
                s_bp.endpoint),
        0);
    json_t *doc = json_loads(out, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(doc, "answer")), "CONFIRM");
    assert_string_equal(
        json_string_value(json_array_get(json_object_get(doc, "routed"), 0)), "cd91");
    json_decref(doc);
    free(out);
    /* refused by the broker: the answer is printed, exit 1 */
    assert_int_equal(
        e2e_cli(&s_bp, &out,
                "publish --endpoint %s --as ccas-paris-13 --type"
                " child.protection.alert --version 1 --to cd91 --subject P-PUB"
                " --purpose protection --body-json '{\"alert_id\": \"x\"}'",
                s_bp.endpoint),
        1);
    assert_non_null(strstr(out, "REJECT INVALID: /concern: required"));
    free(out);
    assert_int_equal(e2e_cli(&s_bp, &out, "publish --as ccas-paris-13"), 2);
    free(out);
    /* keygen never overwrites a key */
    assert_int_equal(e2e_cli(&s_bp, &out, "keygen cd91 %s", s_bp.dir), 0);
    assert_non_null(strstr(out, "public_key = \""));
    free(out);
    assert_int_equal(e2e_cli(&s_bp, &out, "keygen cd91 %s", s_bp.dir), 2);
    free(out);
    /* a folder whose path with the name is just over 4095 bytes: it is
       refused whole, never cut to another name (".../cd9") and written */
    size_t base = strlen(s_bp.dir);
    size_t pad = (4096 - base - strlen("/cd91")) / 2 + 1;
    char *dir = malloc(base + 2 * pad + 1);
    assert_non_null(dir);
    memcpy(dir, s_bp.dir, base);
    for (size_t i = 0; i < pad; i++)
        memcpy(dir + base + 2 * i, "/.", 2);
    dir[base + 2 * pad] = '\0';
    assert_int_equal(e2e_cli(&s_bp, &out, "keygen cd91 %s", dir), 2);
    free(out);
    free(dir);
    char stray[400];
    snprintf(stray, sizeof(stray), "%s/cd9", s_bp.dir);
    assert_false(zsys_file_exists(stray));
    snprintf(stray, sizeof(stray), "%s/cd", s_bp.dir);
    assert_false(zsys_file_exists(stray));
}

static void
test_connection_errors(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "%s --database 'postgresql://nobody@127.0.0.1:1/none' audit "
             "00000000-0000-4000-8000-000000000000 >/dev/null 2>&1",
             getenv("MLG_CLI_BIN"));
    int status = system(cmd);
    assert_int_equal(WEXITSTATUS(status), 2);
    snprintf(cmd, sizeof(cmd), "%s --help >/dev/null", getenv("MLG_CLI_BIN"));
    assert_int_equal(WEXITSTATUS(system(cmd)), 0);
}

/* The audit chain: intact after everything above (purge included) and
   across a restart of the broker; then one body edited, one decision
   and one delivery deleted with SQL, and `verify` names each. Runs
   last: it tampers. */
static void
test_verify(void **state)
{
    (void)state;
    char *out;
    assert_int_equal(e2e_cli(&s_bp, &out, "verify"), 0);
    assert_non_null(strstr(out, "intact"));
    free(out);
    /* a restart continues the chain */
    assert_int_equal(brokerproc_stop(&s_bp, SIGTERM), 0);
    assert_int_equal(brokerproc_start(&s_bp), 0);
    mlg_client_t *pub = e2e_client(&s_bp, "ccas-paris-13", 0);
    char id[37];
    mlg_msg_t *m = e2e_alert(id, "cd91", "P-VERIFY");
    e2e_confirmed(pub, &m);
    mlg_client_destroy(&pub);
    assert_int_equal(e2e_cli(&s_bp, &out, "--json verify"), 0);
    json_t *doc = json_loads(out, 0, NULL);
    free(out);
    assert_true(json_is_true(json_object_get(doc, "intact")));
    long rows = (long)json_integer_value(json_object_get(doc, "rows"));
    json_decref(doc);
    PGconn *db = brokerproc_db(&s_bp);
    assert_int_equal(rows,
                     brokerproc_scalar(db, "select (select count(*) from messages) + "
                                           "(select count(*) from consent_decisions)"));

    /* tampering, out of band: a body changed, a decision and a delivery
       deleted */
    char sql[512];
    snprintf(
        sql, sizeof(sql),
        "update messages set body = overlay(body placing '\\x41'::bytea from 10 for 1)"
        " where id = '%s'",
        id);
    PQclear(PQexec(db, sql));
    snprintf(sql, sizeof(sql), "delete from consent_decisions where message_id = '%s'",
             s_dead_id);
    PGresult *r = PQexec(db, sql);
    assert_string_equal(PQcmdTuples(r), "1");
    PQclear(r);
    /* a delivery removed, which its events still name (the database
       does not check that reference: verify does) */
    snprintf(sql, sizeof(sql), "delete from deliveries where message_id = '%s'",
             s_dead_id);
    r = PQexec(db, sql);
    assert_string_equal(PQcmdTuples(r), "1");
    PQclear(r);
    PQfinish(db);

    assert_int_equal(e2e_cli(&s_bp, &out, "verify"), 1);
    assert_non_null(strstr(out, "broken"));
    char *changed = strstr(out, id);
    assert_non_null(changed);
    assert_non_null(strstr(out, s_dead_id));
    free(out);
    assert_int_equal(e2e_cli(&s_bp, &out, "--json verify"), 1);
    doc = json_loads(out, 0, NULL);
    free(out);
    assert_false(json_is_true(json_object_get(doc, "intact")));
    bool named_changed = false, named_removed = false, named_orphan = false;
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(doc, "problems"), i, p)
    {
        const char *kind = json_string_value(json_object_get(p, "problem"));
        const char *row = json_string_value(json_object_get(p, "row"));
        if (strcmp(kind, "changed") == 0 && strstr(row, id))
            named_changed = true;
        if (strcmp(kind, "removed") == 0 && strstr(row, s_dead_id))
            named_removed = true;
        const char *detail = json_string_value(json_object_get(p, "detail"));
        if (strcmp(kind, "removed") == 0 && strncmp(row, "delivery event ", 15) == 0
            && strstr(detail, "refers to delivery "))
            named_orphan = true;
    }
    json_decref(doc);
    assert_true(named_changed);
    assert_true(named_removed);
    assert_true(named_orphan);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dead_letter_listed_and_replayed),
        cmocka_unit_test(test_audit),
        cmocka_unit_test(test_subject_report_and_consents),
        cmocka_unit_test(test_purge),
        cmocka_unit_test(test_publish_and_keygen),
        cmocka_unit_test(test_connection_errors),
        cmocka_unit_test(test_verify),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
