/*  test_pg_fixture.c: the suite's private PostgreSQL is what it claims.

    A real server, started by tests/pg_fixture.sh: reachable over its
    socket and over 127.0.0.1 on its own port, its data in a temporary
    folder, fsync on (maillage's durability rests on it), and it keeps a
    msgpack body byte for byte through a parameterised bytea insert. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "maillage/codec.h"
#include "pgenv.h"

static PGconn *
connect_or_fail(const char *conninfo)
{
    PGconn *conn = PQconnectdb(conninfo);
    if (PQstatus(conn) != CONNECTION_OK)
        print_error("could not connect (%s): %s\n", conninfo, PQerrorMessage(conn));
    assert_int_equal(PQstatus(conn), CONNECTION_OK);
    return conn;
}

static char *
scalar(PGconn *conn, const char *sql)
{
    PGresult *res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        print_error("%s: %s\n", sql, PQerrorMessage(conn));
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    char *v = strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    return v;
}

static void
test_socket_and_tcp(void **state)
{
    (void)state;
    char conninfo[2048], url[512], port[16];
    assert_int_equal(pgenv_conninfo(conninfo, sizeof(conninfo)), 0);
    assert_int_equal(pgenv_get("MLG_DATABASE_URL", url, sizeof(url)), 0);
    assert_int_equal(pgenv_get("MLG_PGPORT", port, sizeof(port)), 0);

    PGconn *conn = connect_or_fail(conninfo);
    char *db = scalar(conn, "select current_database()");
    assert_string_equal(db, "maillage_test");
    free(db);
    PQfinish(conn);

    conn = connect_or_fail(url);
    char *addr = scalar(conn, "select host(inet_server_addr())");
    char *p = scalar(conn, "select inet_server_port()::text");
    assert_string_equal(addr, "127.0.0.1");
    assert_string_equal(p, port);
    assert_true(atoi(port) >= 1024);
    free(addr);
    free(p);
    PQfinish(conn);
}

static void
test_private_and_durable(void **state)
{
    (void)state;
    char conninfo[2048], tmp[1024];
    assert_int_equal(pgenv_conninfo(conninfo, sizeof(conninfo)), 0);
    assert_int_equal(pgenv_get("MLG_PGTMP", tmp, sizeof(tmp)), 0);
    assert_non_null(strstr(tmp, "/tmp/maillage-test-pg."));
    PGconn *conn = connect_or_fail(conninfo);
    char *dir = scalar(conn, "select current_setting('data_directory')");
    assert_int_equal(strncmp(dir, tmp, strlen(tmp)), 0);
    free(dir);
    char *fsync = scalar(conn, "select current_setting('fsync')");
    assert_string_equal(fsync, "on");
    free(fsync);
    char *listen = scalar(conn, "select current_setting('listen_addresses')");
    assert_string_equal(listen, "127.0.0.1");
    free(listen);
    PQfinish(conn);
}

static void
test_body_bytes_kept(void **state)
{
    (void)state;
    char conninfo[2048];
    assert_int_equal(pgenv_conninfo(conninfo, sizeof(conninfo)), 0);
    PGconn *conn = connect_or_fail(conninfo);
    PGresult *res =
        PQexec(conn, "create temporary table t (id uuid primary key, body bytea)");
    assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
    PQclear(res);

    /* a body with every byte value in it, and a uint8-coded integer */
    uint8_t body[300];
    size_t n = 0;
    body[n++] = 0x82;
    body[n++] = 0xa1;
    body[n++] = 'b';
    body[n++] = 0xc5; /* bin16 of 256 bytes */
    body[n++] = 0x01;
    body[n++] = 0x00;
    for (int i = 0; i < 256; i++)
        body[n++] = (uint8_t)i;
    body[n++] = 0xa1;
    body[n++] = 'n';
    body[n++] = 0xcc;
    body[n++] = 0x05;
    mlg_msg_t *msg = mlg_msg_new(MLG_OP_PUBLISH);
    strcpy(msg->id, "6f1c2b7e-3d4a-4b8c-9e0f-1a2b3c4d5e6f");
    assert_int_equal(mlg_msg_set_body(msg, body, n), MLG_OK);

    const char *values[2] = {msg->id, (const char *)msg->body};
    int lengths[2] = {0, (int)msg->body_len};
    int formats[2] = {0, 1};
    res = PQexecParams(conn, "insert into t (id, body) values ($1, $2)", 2, NULL, values,
                       lengths, formats, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        print_error("%s\n", PQerrorMessage(conn));
    assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
    PQclear(res);

    const char *id[1] = {msg->id};
    res = PQexecParams(conn, "select body from t where id = $1", 1, NULL, id, NULL, NULL,
                       1);
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(res), 1);
    assert_int_equal(PQgetlength(res, 0, 0), (int)n);
    assert_memory_equal(PQgetvalue(res, 0, 0), body, n);
    PQclear(res);
    mlg_msg_destroy(&msg);
    PQfinish(conn);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_socket_and_tcp),
        cmocka_unit_test(test_private_and_durable),
        cmocka_unit_test(test_body_bytes_kept),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
