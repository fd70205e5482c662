/*  test_roles.c: the database roles of examples/roles.sql. The broker
    migrates once as the database's owner; then it runs as
    maillage_broker, which can do its work and cannot delete, truncate or
    drop; and the CLI runs as maillage_operator, which can read, purge and
    verify, and cannot delete either. */

#include <setjmp.h>
#include <signal.h>
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

static const char *s_agencies = "    ehpad-les-tilleuls\n"
                                "        name = \"EHPAD\"\n"
                                "        publish = \"service.*\"\n"
                                "    cd91\n"
                                "        name = \"Essonne\"\n";

/* The same URL or conninfo as another role. */
static void
s_as_role(const char *url, const char *role, char *out, size_t len)
{
    const char *at = strchr(url, '@');
    if (strncmp(url, "postgresql://", 13) == 0 && at)
        snprintf(out, len, "postgresql://%s%s", role, at);
    else {
        /* conninfo: replace user=... */
        const char *u = strstr(url, "user=");
        const char *end = u ? strchr(u, ' ') : NULL;
        snprintf(out, len, "%.*suser=%s%s", (int)(u ? u - url : 0), url, role,
                 end ? end : "");
    }
}

static bool
s_denied(const char *conninfo, const char *sql)
{
    PGconn *c = PQconnectdb(conninfo);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PGresult *r = PQexec(c, sql);
    bool denied = PQresultStatus(r) == PGRES_FATAL_ERROR
                  && (strstr(PQresultErrorMessage(r), "permission denied") != NULL
                      || strstr(PQresultErrorMessage(r), "must be owner") != NULL);
    if (!denied)
        fprintf(stderr, "%s: %s\n", sql, PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(c);
    return denied;
}

static brokerproc_t owner, bp;

/* The CLI on `database` (another role's URL), its exit code. */
static int
s_cli(const char *database, const char *args)
{
    return e2e_cli_on(database, bp.dir, NULL, "%s", args);
}

/* Whatever happens in the test, no broker outlives it. */
static int
teardown(void **state)
{
    (void)state;
    brokerproc_cleanup(&bp);
    brokerproc_cleanup(&owner);
    return 0;
}

/* The owner applies the migrations (a broker started and stopped), then
   examples/roles.sql: the owner's connection, kept for the end. */
static PGconn *
s_owner_applies_roles(void)
{
    assert_int_equal(e2e_broker_up(&owner, "e2e_roles", NULL, s_agencies), 0);
    assert_int_equal(brokerproc_stop(&owner, SIGTERM), 0);
    char path[600];
    snprintf(path, sizeof(path), "%s/examples/roles.sql", getenv("MLG_SOURCE_DIR"));
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *sql = calloc(1, 1 << 16);
    size_t n = fread(sql, 1, (1 << 16) - 1, f);
    sql[n] = '\0';
    fclose(f);
    PGconn *admin = brokerproc_db(&owner);
    PGresult *r = PQexec(admin, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        fail_msg("roles.sql: %s", PQresultErrorMessage(r));
    PQclear(r);
    free(sql);
    return admin;
}

/* The broker as maillage_broker (its database URL `url`) does its work:
   a publish confirmed, delivered, and its ACK written as this role (it
   moves store_mark too). */
static void
s_broker_works_as(const char *url)
{
    assert_int_equal(brokerproc_init_url(&bp, url, owner.conninfo, NULL, s_agencies), 0);
    if (e2e_broker_start(&bp) != 0)
        fail_msg("the broker did not start as maillage_broker");
    mlg_client_t *pub = e2e_client(&bp, "ehpad-les-tilleuls", 0);
    mlg_client_t *sub = e2e_client(&bp, "cd91", 5);
    char id[37];
    mlg_msg_t *m = e2e_capacity(id, "cd91", 1);
    e2e_confirmed(pub, &m);
    mlg_msg_t *d = e2e_next_deliver(sub, 10000);
    assert_non_null(d);
    assert_string_equal(d->id, id);
    mlg_client_ack(sub, d->delivery);
    mlg_msg_destroy(&d);
    mlg_client_destroy(&pub);
    mlg_client_destroy(&sub);
    zclock_sleep(300);
    PGconn *db = brokerproc_db(&bp);
    assert_int_equal(e2e_wait_scalar(db, 1, 5000,
                                     "select count(*) from deliveries where message_id ="
                                     " '%s' and state = 'acked'",
                                     id),
                     1);
    PQfinish(db);
}

static void
test_restricted_roles(void **state)
{
    (void)state;
    PGconn *admin = s_owner_applies_roles();
    char url[600], conninfo[2100], op_url[600], op_conninfo[2100];
    s_as_role(owner.database, "maillage_broker", url, sizeof(url));
    s_as_role(owner.conninfo, "maillage_broker", conninfo, sizeof(conninfo));
    s_as_role(owner.database, "maillage_operator", op_url, sizeof(op_url));
    s_as_role(owner.conninfo, "maillage_operator", op_conninfo, sizeof(op_conninfo));
    s_broker_works_as(url);

    /* what the runtime role cannot do */
    assert_true(s_denied(conninfo, "delete from messages"));
    assert_true(s_denied(conninfo, "delete from consent_decisions"));
    assert_true(s_denied(conninfo, "truncate deliveries"));
    assert_true(s_denied(conninfo, "drop table messages"));
    assert_true(s_denied(conninfo, "update chain_head set id = 1 where false; "
                                   "create table intruder (x int)"));

    /* the operator: reads, verifies, purges; cannot delete */
    assert_int_equal(s_cli(op_url, "status"), 0);
    assert_int_equal(s_cli(op_url, "verify"), 0);
    assert_int_equal(s_cli(op_url, "dlq list"), 0);
    /* replay_dead runs with the operator's rights: nothing dead here, so
       "none matched" (1), not a refusal (2) */
    assert_int_equal(s_cli(op_url, "dlq replay --agency cd75"), 1);
    assert_int_equal(s_cli(op_url, "purge --older-than 0s"), 0);
    assert_true(s_denied(op_conninfo, "delete from messages"));
    assert_true(s_denied(op_conninfo,
                         "insert into consent_decisions (message_id, recipient,"
                         " decision, basis, decided_at) select id, 'x', 'allow',"
                         " 'consent', now() from messages"));
    assert_true(s_denied(op_conninfo, "update messages set sender = 'x'"));
    /* the purge left the audit trail whole */
    assert_int_equal(
        brokerproc_scalar(admin, "select count(*) from messages where body is null"), 1);
    assert_int_equal(s_cli(op_url, "verify"), 0);
    PQfinish(admin);
    assert_int_equal(brokerproc_stop(&bp, SIGTERM), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_restricted_roles),
    };
    return cmocka_run_group_tests(tests, NULL, teardown);
}
