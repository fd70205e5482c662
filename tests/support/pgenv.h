/*  pgenv.h: the private PostgreSQL of the test suite.

    tests/pg_fixture.sh starts it as a ctest fixture and writes an env
    file; ctest gives tests its path in MLG_TEST_PG_ENV. */

#ifndef MLG_TEST_PGENV_H
#define MLG_TEST_PGENV_H

#include <stddef.h>

/* Reads KEY from the fixture's env file into out; 0 on success. */
int pgenv_get(const char *key, char *out, size_t outlen);

/* A libpq conninfo for the test database, over the unix socket. */
int pgenv_conninfo(char *out, size_t outlen);

#endif
