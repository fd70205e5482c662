/*  store_view.c: the store's read-only view for threads other than the
    store's: the queue depths, from the database's view queue_depth
    (migration 0005, which `maillage status` reads too), for the HTTP
    listener.

    A connection of its own, opened on first use and again after a
    failure, so a scrape never waits behind a group commit nor holds one
    up. It waits at most S_TIMEOUT_S to connect and to read: /healthz and
    /metrics answer "cannot be read" then, rather than hang while the
    database does. Used by one thread at a time (the listener's). */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "store.h"

#define S_TIMEOUT_S "3"

struct brk_store_view_t {
    char *database;
    PGconn *conn;
};

brk_store_view_t *
brk_store_view_new(const char *database)
{
    brk_store_view_t *self = calloc(1, sizeof(*self));
    if (self && !(self->database = strdup(database)))
        brk_store_view_destroy(&self);
    return self;
}

void
brk_store_view_destroy(brk_store_view_t **self_p)
{
    brk_store_view_t *self = *self_p;
    if (!self)
        return;
    if (self->conn)
        PQfinish(self->conn);
    free(self->database);
    free(self);
    *self_p = NULL;
}

/* The connection, opened again when it is gone; NULL (and why) when the
   database cannot be reached. */
static PGconn *
s_conn(brk_store_view_t *self, char *why, size_t whylen)
{
    if (self->conn && PQstatus(self->conn) == CONNECTION_OK)
        return self->conn;
    if (self->conn)
        PQfinish(self->conn);
    /* a later keyword overrides the URL's: the timeout is the view's */
    const char *keys[] = {"dbname", "connect_timeout", NULL};
    const char *values[] = {self->database, S_TIMEOUT_S, NULL};
    self->conn = PQconnectdbParams(keys, values, 1);
    if (PQstatus(self->conn) != CONNECTION_OK) {
        snprintf(why, whylen, "the database cannot be reached: %s",
                 PQerrorMessage(self->conn));
        return NULL;
    }
    PQclear(PQexec(self->conn, "set statement_timeout = '" S_TIMEOUT_S "s'"));
    return self->conn;
}

int
brk_store_view_queues(brk_store_view_t *self, brk_queue_row_t *rows, size_t max,
                      size_t *n, char *why, size_t whylen)
{
    *n = 0;
    PGconn *conn = s_conn(self, why, whylen);
    if (!conn)
        return -1;
    char sql[200];
    snprintf(sql, sizeof(sql),
             "select agency, pending, dead, oldest_pending_seconds from queue_depth"
             " where pending > 0 or dead > 0 order by agency limit %zu",
             max);
    PGresult *r = PQexec(conn, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(why, whylen, "the queues cannot be read: %s", PQresultErrorMessage(r));
        PQclear(r);
        return -1;
    }
    for (int i = 0; i < PQntuples(r) && *n < max; i++) {
        brk_queue_row_t *q = &rows[(*n)++];
        snprintf(q->agency, sizeof(q->agency), "%s", PQgetvalue(r, i, 0));
        q->pending = strtoull(PQgetvalue(r, i, 1), NULL, 10);
        q->dead = strtoull(PQgetvalue(r, i, 2), NULL, 10);
        q->oldest_pending_seconds = strtod(PQgetvalue(r, i, 3), NULL);
    }
    PQclear(r);
    return 0;
}
