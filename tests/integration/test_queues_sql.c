/*  test_queues_sql.c: the queues' documented interface (migration
    0005_queues.sql) on the real PostgreSQL fixture: the view
    queue_depth and the function replay_dead, which the broker's HTTP
    listener and the operator's CLI use instead of queries of their own. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "migrate.h"
#include "pgenv.h"

static PGconn *
s_connect(void)
{
    char conninfo[2048], full[2200];
    assert_int_equal(pgenv_conninfo(conninfo, sizeof(conninfo)), 0);
    snprintf(full, sizeof(full), "%s options='-c search_path=queues_sql'", conninfo);
    PGconn *conn = PQconnectdb(full);
    assert_int_equal(PQstatus(conn), CONNECTION_OK);
    return conn;
}

static PGresult *
s_exec(PGconn *conn, const char *sql)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        print_error("%s: %s\n", sql, PQerrorMessage(conn));
    assert_true(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK);
    return res;
}

static void
s_ok(PGconn *conn, const char *sql)
{
    PQclear(s_exec(conn, sql));
}

/* The first row of a query, its columns joined by " ". */
static void
s_row(PGconn *conn, const char *sql, const char *expect)
{
    PGresult *res = s_exec(conn, sql);
    char got[512] = "";
    for (int c = 0; PQntuples(res) > 0 && c < PQnfields(res); c++) {
        strcat(got, c ? " " : "");
        strcat(got, PQgetisnull(res, 0, c) ? "null" : PQgetvalue(res, 0, c));
    }
    PQclear(res);
    if (strcmp(got, expect) != 0)
        print_error("%s\n  got '%s', expected '%s'\n", sql, got, expect);
    assert_string_equal(got, expect);
}

static void
test_depth_and_replay(void **state)
{
    (void)state;
    PGconn *conn = s_connect();
    s_ok(conn, "drop schema if exists queues_sql cascade; create schema queues_sql");
    char dir[4096], err[512] = "";
    snprintf(dir, sizeof(dir), "%s/broker/sql", getenv("MLG_SOURCE_DIR"));
    int applied;
    int rc = brk_migrate(conn, dir, &applied, err, sizeof(err));
    if (rc)
        print_error("%s\n", err);
    assert_int_equal(rc, 0);

    s_ok(conn, "insert into agencies (id, name) values ('cd75', 'Paris'),"
               " ('ccas-paris-13', 'CCAS'), ('ars-idf', 'ARS')");
    s_ok(conn,
         "insert into messages (id, type, version, sender, received_at, body) values"
         " ('00000000-0000-4000-8000-000000000001', 'a.b', 1, 'cd75',"
         "  now() - interval '1 hour', '\\x80'),"
         " ('00000000-0000-4000-8000-000000000002', 'a.b', 1, 'cd75', now(),"
         "  '\\x80')");
    s_ok(conn,
         "insert into deliveries (id, message_id, recipient, state, attempts) values"
         " (1, '00000000-0000-4000-8000-000000000001', 'ccas-paris-13', 'pending', 0),"
         " (2, '00000000-0000-4000-8000-000000000002', 'ccas-paris-13', 'dead', 5),"
         " (3, '00000000-0000-4000-8000-000000000001', 'ars-idf', 'dead', 5),"
         " (4, '00000000-0000-4000-8000-000000000002', 'ars-idf', 'dead', 5),"
         " (5, '00000000-0000-4000-8000-000000000002', 'cd75', 'acked', 1)");
    /* every agency, its counts, the oldest pending one's wait */
    s_row(conn,
          "select string_agg(agency || ':' || pending || ':' || dead"
          " || ':' || (oldest_pending_seconds > 3500)::text, ' ' order by agency)"
          " from queue_depth",
          "ars-idf:0:2:false ccas-paris-13:1:1:true cd75:0:0:false");

    /* the broker hears of a replay on its channel */
    PGconn *broker = s_connect();
    s_ok(broker, "listen maillage_replay");
    s_row(conn,
          "select string_agg(id || '>' || recipient, ' ')"
          " from replay_dead('{2}', null, 'operator:test')",
          "2>ccas-paris-13");
    s_row(conn,
          "select string_agg(id || '>' || recipient, ' ')"
          " from replay_dead(null, 'ars-idf', 'operator:test')",
          "3>ars-idf 4>ars-idf");
    s_row(conn, "select count(*) from replay_dead(null, 'ars-idf', 'operator:test')",
          "0");
    s_row(conn, "select count(*) from replay_dead('{1, 5}', null, 'operator:test')", "0");
    s_row(conn,
          "select string_agg(state || ':' || attempts, ' ' order by id)"
          " from deliveries",
          "pending:0 pending:0 pending:0 pending:0 acked:1");
    s_row(conn,
          "select string_agg(delivery_id || ':' || event || ':' || actor, ' '"
          " order by delivery_id) from delivery_events",
          "2:replayed:operator:test 3:replayed:operator:test 4:replayed:operator:test");
    PQclear(PQexec(broker, "select 1"));
    assert_int_equal(PQconsumeInput(broker), 1);
    char heard[256] = "";
    PGnotify *n;
    while ((n = PQnotifies(broker))) {
        strcat(heard, heard[0] ? " " : "");
        strcat(heard, n->extra);
        PQfreemem(n);
    }
    assert_string_equal(heard, "ccas-paris-13 ars-idf");
    PQfinish(broker);
    s_ok(conn, "drop schema queues_sql cascade");
    PQfinish(conn);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_depth_and_replay),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
