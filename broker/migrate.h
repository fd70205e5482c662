/*  migrate.h: applies the numbered SQL files of broker/sql/ at start. */

#ifndef BRK_MIGRATE_H
#define BRK_MIGRATE_H

#include <stddef.h>

#include <libpq-fe.h>

/* Applies, in name order, every file NNNN_name.sql of `dir` that the
   schema_migrations table does not record yet. Each file runs in its own
   transaction with its schema_migrations row, under a transaction-level
   advisory lock: two brokers starting at once never apply a file twice,
   and a file that fails leaves nothing behind. Returns 0 and the number
   of files applied in *applied, or -1 with "<file>: <problem>" in err. */
int brk_migrate(PGconn *conn, const char *dir, int *applied, char *err, size_t errlen);

#endif
