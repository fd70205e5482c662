/*  pgenv.c: reads the env file written by tests/pg_fixture.sh. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgenv.h"

int
pgenv_get(const char *key, char *out, size_t outlen)
{
    const char *path = getenv("MLG_TEST_PG_ENV");
    if (!path) {
        fprintf(stderr, "MLG_TEST_PG_ENV is not set: run this test through ctest\n");
        return -1;
    }
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "could not open %s: did the pg.setup fixture run?\n", path);
        return -1;
    }
    char line[4096];
    size_t klen = strlen(key);
    int rc = -1;
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, key, klen) == 0 && line[klen] == '=') {
            char *v = line + klen + 1;
            v[strcspn(v, "\r\n")] = '\0';
            snprintf(out, outlen, "%s", v);
            rc = 0;
            break;
        }
    }
    fclose(f);
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
