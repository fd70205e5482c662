/*  migrate.c: the broker's schema migrations.

    Files are broker/sql/NNNN_name.sql, applied in order, each once. The
    lock is pg_advisory_xact_lock on a fixed key, taken before anything
    is read, so a second broker waits for the first one's transaction and
    then sees its row in schema_migrations. Called once by the broker at
    start, before it accepts connections; also by the tests. */

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "file.h"
#include "migrate.h"

/* "mlg_migr" as an integer: the advisory lock of migrations. */
#define S_LOCK_KEY "7811586139757498482"
#define S_MAX_FILE_BYTES (4u * 1024u * 1024u)

static int
s_fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* NNNN_name.sql with name in [a-z0-9_]. */
static bool
s_is_migration(const char *name)
{
    size_t n = strlen(name);
    if (n < 10 || strcmp(name + n - 4, ".sql") != 0 || name[4] != '_')
        return false;
    for (size_t i = 0; i < 4; i++)
        if (name[i] < '0' || name[i] > '9')
            return false;
    for (size_t i = 5; i < n - 4; i++)
        if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9')
              || name[i] == '_'))
            return false;
    return true;
}

static int
s_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool
s_exec(PGconn *conn, const char *sql, const char *file, char *err, size_t errlen)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    PQclear(res);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return true;
    s_fail(err, errlen, "%s: %s", file, PQerrorMessage(conn));
    /* libpq messages end in a newline: keep the sentence on one line */
    err[strcspn(err, "\n")] = '\0';
    return false;
}

/* Applies one file unless recorded; *done is set when it was applied. */
static int
s_apply(PGconn *conn, const char *dir, const char *name, bool *done, char *err,
        size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    *done = false;
    if (!s_exec(conn, "begin", path, err, errlen)
        || !s_exec(conn, "select pg_advisory_xact_lock(" S_LOCK_KEY ")", path, err,
                   errlen)
        || !s_exec(conn,
                   /* DDL only when the table is missing: a broker running as a
                      role without CREATE (README, "Database roles") starts on
                      a database whose migrations are all applied */
                   "do $$ begin if to_regclass('schema_migrations') is null then"
                   " create table schema_migrations ("
                   " version text primary key,"
                   " applied_at timestamptz not null default now()); end if; end $$",
                   path, err, errlen))
        goto rollback;
    const char *params[1] = {name};
    PGresult *res =
        PQexecParams(conn, "select 1 from schema_migrations where version = $1", 1, NULL,
                     params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        s_fail(err, errlen, "%s: %s", path, PQerrorMessage(conn));
        PQclear(res);
        goto rollback;
    }
    bool recorded = PQntuples(res) == 1;
    PQclear(res);
    if (!recorded) {
        size_t len;
        char *sql = brk_read_file(path, S_MAX_FILE_BYTES, &len, err, errlen);
        if (!sql)
            goto rollback;
        bool ok = s_exec(conn, sql, path, err, errlen);
        free(sql);
        if (!ok)
            goto rollback;
        res = PQexecParams(conn, "insert into schema_migrations (version) values ($1)", 1,
                           NULL, params, NULL, NULL, 0);
        ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        PQclear(res);
        if (!ok) {
            s_fail(err, errlen, "%s: could not record: %s", path, PQerrorMessage(conn));
            goto rollback;
        }
    }
    if (!s_exec(conn, "commit", path, err, errlen))
        return -1;
    *done = !recorded;
    return 0;

rollback:
    PQclear(PQexec(conn, "rollback"));
    return -1;
}

int
brk_migrate(PGconn *conn, const char *dir, int *applied, char *err, size_t errlen)
{
    *applied = 0;
    DIR *d = opendir(dir);
    if (!d)
        return s_fail(err, errlen, "%s: could not open the migrations folder: %s", dir,
                      strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    for (struct dirent *e = readdir(d); e; e = readdir(d)) {
        size_t len = strlen(e->d_name);
        if (len < 4 || strcmp(e->d_name + len - 4, ".sql") != 0)
            continue;
        if (!s_is_migration(e->d_name)) {
            rc = s_fail(err, errlen, "%s/%s: a migration is named NNNN_name.sql", dir,
                        e->d_name);
            break;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            char **bigger = realloc(names, cap * sizeof(char *));
            if (!bigger) {
                rc = s_fail(err, errlen, "%s: could not allocate", dir);
                break;
            }
            names = bigger;
        }
        names[n] = strdup(e->d_name);
        if (!names[n]) {
            rc = s_fail(err, errlen, "%s: could not allocate", dir);
            break;
        }
        n++;
    }
    closedir(d);
    if (rc == 0 && n)
        qsort(names, n, sizeof(char *), s_cmp);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (i > 0 && strncmp(names[i], names[i - 1], 4) == 0) {
            rc = s_fail(err, errlen, "%s: %s and %s have the same number", dir,
                        names[i - 1], names[i]);
            break;
        }
        bool done;
        rc = s_apply(conn, dir, names[i], &done, err, errlen);
        if (rc == 0 && done)
            (*applied)++;
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}
