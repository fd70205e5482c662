/*  pgenv.c: reads the env file written by tests/pg_fixture.sh. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgenv.h"
#include "toolutil.h"

int
pgenv_get(const char *key, char *out, size_t outlen)
{
    const char *path = getenv("MLG_TEST_PG_ENV");
    if (!path) {
        fprintf(stderr, "MLG_TEST_PG_ENV is not set: run this test through ctest\n");
        return -1;
    }
    int rc = tool_file_value(path, key, '=', out, outlen);
    if (rc != 0)
        fprintf(stderr, "no %s in %s: did the pg.setup fixture run?\n", key, path);
    return rc;
}

int
pgenv_conninfo(char *out, size_t outlen)
{
    char host[1024], port[16], user[64], db[64];
    if (pgenv_get("MLG_PGHOST", host, sizeof(host))
        || pgenv_get("MLG_PGPORT", port, sizeof(port))
        || pgenv_get("MLG_PGUSER", user, sizeof(user))
        || pgenv_get("MLG_PGDATABASE", db, sizeof(db)))
        return -1;
    snprintf(out, outlen, "host=%s port=%s user=%s dbname=%s", host, port, user, db);
    return 0;
}
