/*  store_depth.c: the queues' depths as the store keeps them (depth.h),
    for /metrics, /api/status and the dashboard, which then never count
    over the queues.

    - Counted once on each new connection, with one grouped count
      through the partial indexes deliveries_pending and deliveries_dead
      (index-only: it costs the backlog, not the deliveries' history).
      The count runs on a connection of its own, from a snapshot taken
      before the store's first transaction on its new connection, and
      nothing waits for it: the store commits meanwhile, each commit's
      changes are added to what the count finds, and the figures are
      known when it comes (a million pending deliveries: a few tenths of
      a second, during which the depths are not shown).
    - Moved by what each transaction commits: deliveries made (a
      publish), settled (ACK, a revocation's settling), dead-lettered.
      The writers stage each change (store_write.c) and store.c applies
      them after the COMMIT, or drops them with a rollback: the figures
      are the database's after each commit. An ACK settles its delivery
      in the database only if it was pending, which a delivery in flight
      always is: the loop sends ACKs of deliveries in flight only, and
      the store writes each update exactly once. Dead letters and
      revocations are counted from the rows their statement changed.
    - Counted again for one agency when an operator replays its dead
      letters (replay_dead notifies maillage_replay, store_conn.c), or
      when its figures drifted (depth.c).
    - A queue's oldest pending delivery, when the one known left: one
      index probe per such queue, at most once a second (the age shown
      meanwhile errs on the old side).
    - Handed to the metrics once per batch that changed them, under one
      lock: the hot path takes no lock per message for them.

    A hand-made change of a delivery's state (SQL) other than
    replay_dead is seen at the broker's next connection to the database.
    Called by the store thread only. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "store_int.h"

#define S_COUNT_RETRY_MS 1000 /* a count that failed begins again after this */
#define S_READ_EVERY_MS 1000  /* recounts and oldest deliveries, at most this often */

/* ---- the count ---------------------------------------------------------- */

/* A count that could not begin, or failed: logged, its connection
   closed; it begins again a little later, from a new snapshot. */
static void
s_count_failed(brk_store_t *self, PGconn *c)
{
    const char *msg = PQerrorMessage(c);
    brk_log(BRK_LOG_WARNING, "store", "could not count the queues: %.*s",
            (int)strcspn(msg, "\n"), msg);
    if (c == self->counter)
        brk_store_count_stop(self);
    else
        PQfinish(c);
    self->count_retry_ms = zclock_mono() + S_COUNT_RETRY_MS;
}

void
brk_store_count_begin(brk_store_t *self)
{
    brk_store_count_stop(self);
    PGconn *c = PQconnectdb(self->database);
    PGresult *snapshot = PQstatus(c) == CONNECTION_OK
                             ? PQexec(c, brk_sql_text(BRK_SQL_COUNT_SNAPSHOT))
                             : NULL;
    bool ok = PQresultStatus(snapshot) == PGRES_TUPLES_OK
              && PQsendQuery(c, brk_sql_text(BRK_SQL_COUNT_QUEUES)) == 1;
    PQclear(snapshot);
    if (!ok) {
        s_count_failed(self, c);
        return;
    }
    brk_depths_count_begin(self->depths);
    self->counter = c;
    self->count_began = zclock_mono();
}

void
brk_store_count_stop(brk_store_t *self)
{
    if (self->counter)
        PQfinish(self->counter); /* its transaction ends with it */
    self->counter = NULL;
    bool known = brk_depths_known(self->depths);
    brk_depths_forget(self->depths);
    if (known)
        brk_metrics_forget_depths(self->metrics);
}

/* The count's answer, once it is in: the figures are known then. */
static void
s_count_poll(brk_store_t *self)
{
    PGconn *c = self->counter;
    if (PQconsumeInput(c) == 1 && PQisBusy(c))
        return;
    bool ok = false;
    uint64_t pending = 0, dead = 0;
    PGresult *res;
    while ((res = PQgetResult(c))) {
        ok = PQresultStatus(res) == PGRES_TUPLES_OK;
        for (int i = 0; ok && i < PQntuples(res); i++) {
            uint64_t p = strtoull(PQgetvalue(res, i, 1), NULL, 10);
            uint64_t d = strtoull(PQgetvalue(res, i, 2), NULL, 10);
            brk_depths_count_add(self->depths, PQgetvalue(res, i, 0), p, d);
            pending += p;
            dead += d;
        }
        PQclear(res);
    }
    if (!ok) {
        s_count_failed(self, c);
        return;
    }
    PQfinish(c);
    self->counter = NULL;
    brk_depths_count_end(self->depths);
    self->depths_read_at = 0; /* the oldest deliveries now */
    brk_log(BRK_LOG_INFO, "store",
            "queues counted in %lld ms: %llu pending, %llu dead deliveries",
            (long long)(zclock_mono() - self->count_began), (unsigned long long)pending,
            (unsigned long long)dead);
}

/* ---- reading queues again ----------------------------------------------- */

/* The names as a text[] literal, each quoted: {"a","b"}; malloc'd. */
static char *
s_text_array(zlistx_t *names)
{
    size_t len = 3;
    for (const char *n = zlistx_first(names); n; n = zlistx_next(names))
        len += 2 * strlen(n) + 3;
    char *out = malloc(len), *at = out;
    if (!out)
        return NULL;
    *at++ = '{';
    for (const char *n = zlistx_first(names); n; n = zlistx_next(names)) {
        if (at > out + 1)
            *at++ = ',';
        *at++ = '"';
        for (const char *c = n; *c; c++) {
            if (*c == '"' || *c == '\\')
                *at++ = '\\';
            *at++ = *c;
        }
        *at++ = '"';
    }
    *at++ = '}';
    *at = '\0';
    return out;
}

/* One statement over the agencies named (BRK_SQL_RECOUNT_QUEUES or
   BRK_SQL_OLDEST_PENDING); NULL when none is named, or on failure
   (logged). */
static PGresult *
s_read_agencies(brk_store_t *self, brk_sql_t sql, zlistx_t **names_p)
{
    zlistx_t *names = *names_p;
    char *array = names && zlistx_size(names) ? s_text_array(names) : NULL;
    zlistx_destroy(names_p);
    if (!array)
        return NULL;
    const char *v[1] = {array};
    PGresult *res = brk_store_query(self, sql, 1, v);
    free(array);
    return res;
}

static uint64_t
s_u64(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? 0 : strtoull(PQgetvalue(res, row, col), NULL, 10);
}

/* The agencies to count again: replayed, or drifted. */
static void
s_recount(brk_store_t *self)
{
    zlistx_t *names = brk_depths_recounts(self->depths);
    PGresult *res = s_read_agencies(self, BRK_SQL_RECOUNT_QUEUES, &names);
    for (int i = 0; res && i < PQntuples(res); i++)
        brk_depths_recount(self->depths, PQgetvalue(res, i, 0), s_u64(res, i, 1),
                           s_u64(res, i, 2), s_u64(res, i, 3),
                           (int64_t)strtoll(PQgetvalue(res, i, 4), NULL, 10));
    PQclear(res);
}

/* The queues whose oldest pending delivery left: the next one of each. */
static void
s_oldest(brk_store_t *self)
{
    zlistx_t *names = brk_depths_stale(self->depths);
    PGresult *res = s_read_agencies(self, BRK_SQL_OLDEST_PENDING, &names);
    for (int i = 0; res && i < PQntuples(res); i++)
        brk_depths_set_oldest(self->depths, PQgetvalue(res, i, 0), s_u64(res, i, 1),
                              (int64_t)strtoll(PQgetvalue(res, i, 2), NULL, 10));
    PQclear(res);
}

void
brk_store_depths_refresh(brk_store_t *self)
{
    if (!self->conn)
        return;
    if (self->counter)
        s_count_poll(self);
    else if (!brk_depths_known(self->depths) && zclock_mono() >= self->count_retry_ms)
        brk_store_count_begin(self);
    if (brk_depths_known(self->depths)
        && zclock_mono() - self->depths_read_at >= S_READ_EVERY_MS) {
        self->depths_read_at = zclock_mono();
        s_recount(self);
        s_oldest(self);
    }
    size_t n = 0;
    bool all = false;
    brk_depth_t *rows = brk_depths_take(self->depths, &n, &all);
    if (rows)
        brk_metrics_set_depths(self->metrics, rows, n, all);
    free(rows);
}

void
brk_store_depths_settled(brk_store_t *self, const PGresult *res, int col,
                         uint64_t delivery, bool dead)
{
    for (int i = 0; i < PQntuples(res); i++)
        brk_depths_settled(self->depths, PQgetvalue(res, i, col), delivery, dead);
}
