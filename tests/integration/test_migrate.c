/*  test_migrate.c: broker/migrate.c on the real PostgreSQL fixture.

    Each test works in a schema of its own (search_path), so the files
    create their tables there: applied once and in order, not again on a
    second start, never twice when two brokers start at once, and a
    failing file leaves nothing behind. */

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "migrate.h"
#include "pgenv.h"

static PGconn *
connect_in(const char *schema)
{
    char conninfo[2048], full[2200];
    assert_int_equal(pgenv_conninfo(conninfo, sizeof(conninfo)), 0);
    snprintf(full, sizeof(full), "%s options='-c search_path=%s'", conninfo, schema);
    PGconn *conn = PQconnectdb(full);
    assert_int_equal(PQstatus(conn), CONNECTION_OK);
    return conn;
}

static void
fresh_schema(const char *schema)
{
    PGconn *conn = connect_in("public");
    char sql[256];
    snprintf(sql, sizeof(sql), "drop schema if exists %s cascade; create schema %s",
             schema, schema);
    PGresult *res = PQexec(conn, sql);
    assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
    PQclear(res);
    PQfinish(conn);
}

static long
count(PGconn *conn, const char *sql)
{
    PGresult *res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        print_error("%s: %s\n", sql, PQerrorMessage(conn));
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    long n = atol(PQgetvalue(res, 0, 0));
    PQclear(res);
    return n;
}

static char s_dir[4096];

static void
project_sql_dir(void)
{
    snprintf(s_dir, sizeof(s_dir), "%s/broker/sql", getenv("MLG_SOURCE_DIR"));
}

static void
test_applies_once(void **state)
{
    (void)state;
    project_sql_dir();
    fresh_schema("mig_once");
    PGconn *conn = connect_in("mig_once");
    int applied = -1;
    char err[512] = "";
    int rc = brk_migrate(conn, s_dir, &applied, err, sizeof(err));
    if (rc)
        print_error("%s\n", err);
    assert_int_equal(rc, 0);
    assert_true(applied >= 1);
    assert_int_equal(count(conn, "select count(*) from schema_migrations"), applied);
    assert_int_equal(count(conn, "select count(*) from messages"), 0);
    /* a second start applies nothing */
    assert_int_equal(brk_migrate(conn, s_dir, &applied, err, sizeof(err)), 0);
    assert_int_equal(applied, 0);
    PQfinish(conn);
}

typedef struct {
    int rc;
    int applied;
    char err[512];
} run_t;

static void *
s_run(void *arg)
{
    run_t *run = arg;
    PGconn *conn = connect_in("mig_race");
    run->rc = brk_migrate(conn, s_dir, &run->applied, run->err, sizeof(run->err));
    PQfinish(conn);
    return NULL;
}

static void
test_two_brokers_at_once(void **state)
{
    (void)state;
    project_sql_dir();
    for (int round = 0; round < 5; round++) {
        fresh_schema("mig_race");
        run_t runs[4];
        pthread_t threads[4];
        for (int i = 0; i < 4; i++) {
            memset(&runs[i], 0, sizeof(runs[i]));
            assert_int_equal(pthread_create(&threads[i], NULL, s_run, &runs[i]), 0);
        }
        int total = 0;
        for (int i = 0; i < 4; i++) {
            pthread_join(threads[i], NULL);
            if (runs[i].rc)
                print_error("%s\n", runs[i].err);
            assert_int_equal(runs[i].rc, 0);
            total += runs[i].applied;
        }
        PGconn *conn = connect_in("mig_race");
        assert_int_equal(total, count(conn, "select count(*) from schema_migrations"));
        PQfinish(conn);
    }
}

static void
write_file(const char *dir, const char *name, const char *text)
{
    char path[4300];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void
test_order_failure_and_names(void **state)
{
    (void)state;
    char dir[] = "/tmp/mlg-migrations-XXXXXX";
    assert_non_null(mkdtemp(dir));
    write_file(dir, "0002_b.sql", "insert into t values (2);");
    write_file(dir, "0001_a.sql", "create table t (n int); insert into t values (1);");
    write_file(dir, "README", "not a migration, ignored");
    fresh_schema("mig_files");
    PGconn *conn = connect_in("mig_files");
    int applied;
    char err[512] = "";
    assert_int_equal(brk_migrate(conn, dir, &applied, err, sizeof(err)), 0);
    assert_int_equal(applied, 2); /* 0002 needs 0001's table: order held */
    assert_int_equal(count(conn, "select count(*) from t"), 2);

    /* a failing file rolls back whole and says which file */
    write_file(dir, "0003_c.sql",
               "insert into t values (3); insert into nowhere values (1);");
    assert_int_equal(brk_migrate(conn, dir, &applied, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "/0003_c.sql: "));
    assert_non_null(strstr(err, "nowhere"));
    assert_int_equal(count(conn, "select count(*) from t"), 2);
    assert_int_equal(count(conn, "select count(*) from schema_migrations"), 2);

    char path[4300];
    snprintf(path, sizeof(path), "%s/0003_c.sql", dir);
    unlink(path);
    write_file(dir, "0003_C.sql", "select 1;");
    assert_int_equal(brk_migrate(conn, dir, &applied, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "0003_C.sql: a migration is named NNNN_name.sql"));
    snprintf(path, sizeof(path), "%s/0003_C.sql", dir);
    unlink(path);
    write_file(dir, "0002_again.sql", "select 1;");
    assert_int_equal(brk_migrate(conn, dir, &applied, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "have the same number"));
    PQfinish(conn);
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_applies_once),
        cmocka_unit_test(test_two_brokers_at_once),
        cmocka_unit_test(test_order_failure_and_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
