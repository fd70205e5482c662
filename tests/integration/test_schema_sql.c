/*  test_schema_sql.c: broker/sql/ applies to a real PostgreSQL and gives
    the tables and columns DESIGN.md documents. (The migration runner
    with schema_migrations comes with the broker.) */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "pgenv.h"

static PGconn *s_conn;

static void
exec_ok(const char *sql)
{
    PGresult *res = PQexec(s_conn, sql);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        print_error("%s\n", PQerrorMessage(s_conn));
    assert_true(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK);
    PQclear(res);
}

static void
test_applies_with_documented_columns(void **state)
{
    (void)state;
    char conninfo[2048], path[4096];
    assert_int_equal(pgenv_conninfo(conninfo, sizeof(conninfo)), 0);
    s_conn = PQconnectdb(conninfo);
    assert_int_equal(PQstatus(s_conn), CONNECTION_OK);
    exec_ok("drop schema if exists sqltest cascade; create schema sqltest;"
            " set search_path = sqltest");

    snprintf(path, sizeof(path), "%s/broker/sql/0001_init.sql", getenv("MLG_SOURCE_DIR"));
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char sql[65536];
    size_t n = fread(sql, 1, sizeof(sql) - 1, f);
    fclose(f);
    sql[n] = '\0';
    exec_ok("begin");
    exec_ok(sql);
    exec_ok("commit");

    static const char *const columns[][2] = {
        {"messages", "id"},
        {"messages", "seq"},
        {"messages", "type"},
        {"messages", "version"},
        {"messages", "sender"},
        {"messages", "subject"},
        {"messages", "purpose"},
        {"messages", "correlation"},
        {"messages", "occurred_at"},
        {"messages", "received_at"},
        {"messages", "body"},
        {"deliveries", "id"},
        {"deliveries", "message_id"},
        {"deliveries", "recipient"},
        {"deliveries", "state"},
        {"deliveries", "attempts"},
        {"deliveries", "last_error"},
        {"deliveries", "first_sent_at"},
        {"deliveries", "settled_at"},
        {"deliveries", "updated_at"},
        {"delivery_events", "delivery_id"},
        {"delivery_events", "attempt"},
        {"delivery_events", "event"},
        {"delivery_events", "reason"},
        {"delivery_events", "actor"},
        {"delivery_events", "at"},
        {"consent_decisions", "message_id"},
        {"consent_decisions", "recipient"},
        {"consent_decisions", "decision"},
        {"consent_decisions", "basis"},
        {"consent_decisions", "consent_id"},
        {"consent_decisions", "reason"},
        {"consent_decisions", "decided_at"},
        {"consents", "id"},
        {"consents", "subject"},
        {"consents", "parties"},
        {"consents", "purposes"},
        {"consents", "categories"},
        {"consents", "valid_from"},
        {"consents", "valid_until"},
        {"consents", "revoked_at"},
        {"consents", "granted_by"},
        {"consents", "granted_message_id"},
        {"consents", "revoked_message_id"},
        {"agencies", "id"},
    };
    for (size_t i = 0; i < sizeof(columns) / sizeof(columns[0]); i++) {
        const char *params[2] = {columns[i][0], columns[i][1]};
        PGresult *res = PQexecParams(s_conn,
                                     "select 1 from information_schema.columns where"
                                     " table_schema = 'sqltest' and table_name = $1"
                                     " and column_name = $2",
                                     2, NULL, params, NULL, NULL, 0);
        if (PQntuples(res) != 1)
            print_error("missing column %s.%s\n", columns[i][0], columns[i][1]);
        assert_int_equal(PQntuples(res), 1);
        PQclear(res);
    }

    /* seq is given by the database, and states are checked */
    exec_ok("insert into messages (id, type, version, sender, received_at, body)"
            " values ('6f1c2b7e-3d4a-4b8c-9e0f-1a2b3c4d5e6f', 'a.b', 1, 'cd75', now(),"
            " '\\x80')");
    PGresult *res = PQexec(s_conn, "insert into deliveries (message_id, recipient, state)"
                                   " values ('6f1c2b7e-3d4a-4b8c-9e0f-1a2b3c4d5e6f',"
                                   " 'ccas-paris-13', 'lost')");
    assert_int_equal(PQresultStatus(res), PGRES_FATAL_ERROR);
    PQclear(res);
    exec_ok("drop schema sqltest cascade");
    PQfinish(s_conn);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_applies_with_documented_columns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
