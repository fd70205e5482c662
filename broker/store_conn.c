/*  store_conn.c: the store's connection to PostgreSQL, and what keeps
    the database in step with the loop across its failures.

    - The connection: made on demand, with migrations, the audit chain's
      head, store_mark, the consents (reported to the loop), the prepared
      statements and LISTEN on each new one; dropped on any failure and
      tried again with a growing delay, the loop told DB-UP and DB-DOWN.
    - Statements sent ahead in pipeline mode, and their answers read
      together (brk_store_ahead, brk_store_collect); one statement at a
      time for those whose answer is needed (brk_store_query).
    - The updates of a failed batch, held to be written first once the
      database is back, exactly once ("Updates held over a failure"),
      and store_mark, which tells whether a COMMIT cut off got through.
    - The agencies table, written on each new connection and when the
      registry changes (SIGHUP).
    - The queues' count (store_depth.c), begun on each new connection
      and dropped with it.

    Not here: what is written or read (store_write.c, store_read.c, the
    statements' text in store_sql.c), when a batch runs (store.c). Called
    by the store thread only. */

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "migrate.h"
#include "store_int.h"

/* Updates held while the database is away (about 250 bytes each): see
   "Updates held over a failure" for why this is enough. */
#define S_MAX_HELD 100000

static void
s_tell(brk_store_t *self, zsock_t *pipe, bool up)
{
    if (self->told_once && self->told_up == up)
        return;
    self->told_once = true;
    self->told_up = up;
    brk_store_report(
        pipe, (brk_store_report_t){.kind = up ? BRK_STORE_DB_UP : BRK_STORE_DB_DOWN});
}

void
brk_store_disconnect(brk_store_t *self, zsock_t *pipe)
{
    if (self->conn) {
        PQfinish(self->conn);
        self->conn = NULL;
        brk_log(BRK_LOG_WARNING, "store", "database connection lost");
    }
    self->broken = false;
    self->nsent = 0;
    brk_store_count_stop(self);
    self->next_try_ms = zclock_mono() + self->backoff_ms;
    self->backoff_ms = self->backoff_ms * 2 > BRK_STORE_BACKOFF_MAX_MS
                           ? BRK_STORE_BACKOFF_MAX_MS
                           : self->backoff_ms * 2;
    s_tell(self, pipe, false);
}

/* A new connection made ready to write; false (logged) when it cannot
   be. `consents` receives the index as the database has it. */
static bool
s_ready(brk_store_t *self, PGconn *conn, brk_consents_t **consents,
        brk_referrals_t **referrals)
{
    int applied = 0;
    char err[1024];
    if (brk_migrate(conn, self->sql_dir, &applied, err, sizeof(err)) != 0) {
        brk_log(BRK_LOG_ERROR, "store", "could not apply migrations: %s", err);
        return false;
    }
    if (applied)
        brk_log(BRK_LOG_INFO, "store", "applied %d migration(s) from %s", applied,
                self->sql_dir);
    if (!brk_store_read_head(self, conn)) {
        brk_log(BRK_LOG_ERROR, "store",
                "could not read the audit chain's head (chain_head)");
        return false;
    }
    /* before anything is written: did the last transaction in doubt commit? */
    if (!brk_store_read_mark(self, conn))
        return false;
    if (!brk_store_rebuild_referrals(self, conn))
        return false;
    *consents = brk_store_read_consents(conn);
    *referrals = *consents ? brk_store_read_referrals(conn) : NULL;
    if (!*consents || !*referrals || !brk_sql_prepare(conn))
        return false;
    PQclear(PQexec(conn, brk_sql_text(BRK_SQL_LISTEN)));
    return true;
}

bool
brk_store_connect(brk_store_t *self, zsock_t *pipe)
{
    if (self->conn)
        return true;
    if (zclock_mono() < self->next_try_ms)
        return false;
    PGconn *conn = PQconnectdb(self->database);
    brk_consents_t *consents = NULL;
    brk_referrals_t *referrals = NULL;
    if (PQstatus(conn) != CONNECTION_OK) {
        char *msg = PQerrorMessage(conn);
        brk_log(BRK_LOG_WARNING, "store", "could not connect to the database: %.*s",
                (int)strcspn(msg, "\n"), msg);
    }
    else if (s_ready(self, conn, &consents, &referrals)) {
        self->conn = conn;
        self->backoff_ms = BRK_STORE_BACKOFF_MIN_MS;
        brk_log(BRK_LOG_INFO, "store",
                "database connected, %zu consent(s) and %zu referral leg(s) loaded",
                brk_consents_size(consents), brk_referrals_legs(referrals));
        self->told_once = false; /* each new connection sends the index again */
        self->agencies_dirty = true;
        brk_store_write_agencies(self);
        brk_store_report(
            pipe, (brk_store_report_t){.kind = BRK_STORE_CONSENTS, .consents = consents});
        brk_store_report(pipe, (brk_store_report_t){.kind = BRK_STORE_REFERRALS,
                                                    .referrals = referrals});
        s_tell(self, pipe, true);
        brk_store_count_begin(self); /* before this connection's first transaction */
        return true;
    }
    brk_consents_destroy(&consents);
    brk_referrals_destroy(&referrals);
    PQfinish(conn);
    brk_store_disconnect(self, pipe);
    return false;
}

/* ---- statements sent ahead ---------------------------------------------

   A batch's statements whose answers nothing waits for (BEGIN, the
   writes of a run of publishes or of SENT and ACK updates, the chain
   head, store_mark, COMMIT) are sent in pipeline mode without waiting;
   the answers are read together at the next statement that needs one,
   so a batch of publishes without a consent event costs two round
   trips: BEGIN with the ids check, then the writes with COMMIT. Any failure among
   them fails the batch (the pipeline aborts what follows it, and the
   COMMIT of an aborted transaction says ROLLBACK). */

bool
brk_store_piped(const brk_store_t *self)
{
    return self->conn && PQpipelineStatus(self->conn) != PQ_PIPELINE_OFF;
}

bool
brk_store_ahead(brk_store_t *self, brk_sent_t kind, brk_sql_t sql, int n,
                const char *const *values, const int *lengths, const int *formats)
{
    /* no room for another answer to wait for: read those so far first
       (the transaction goes on; an earlier failure fails this one) */
    if (self->nsent == sizeof(self->sent) / sizeof(self->sent[0])
        && !brk_store_collect(self, NULL))
        return false;
    if (self->broken)
        return false;
    if (!brk_store_piped(self) && PQenterPipelineMode(self->conn) != 1)
        return false;
    const char *prepared = brk_sql_prepared(sql);
    int rc = prepared ? PQsendQueryPrepared(self->conn, prepared, n, values, lengths,
                                            formats, 0)
                      : PQsendQueryParams(self->conn, brk_sql_text(sql), n, NULL, values,
                                          lengths, formats, 0);
    if (rc != 1) {
        char *msg = PQerrorMessage(self->conn);
        brk_log(BRK_LOG_ERROR, "store", "could not send a statement: %.*s",
                (int)strcspn(msg, "\n"), msg);
        self->broken = true; /* what was sent is not known: start again */
        return false;
    }
    self->sent[self->nsent++] = kind;
    return true;
}

/* The arrays finished, as a statement's binary parameters (at most 32);
   false (logged) when one could not be built. */
bool
brk_store_array_params(brk_pgbin_t *arrays, int n, const char **values, int *lengths,
                       int *formats)
{
    if (n > 32)
        return false;
    for (int i = 0; i < n; i++) {
        brk_pgbin_array_finish(&arrays[i]);
        if (arrays[i].failed) {
            brk_log(BRK_LOG_ERROR, "store", "could not build a statement's arrays");
            return false;
        }
        values[i] = (const char *)arrays[i].p;
        lengths[i] = (int)arrays[i].n;
        formats[i] = 1;
    }
    return true;
}

/* Sends a statement whose parameters are binary arrays ahead
   (brk_store_ahead). */
bool
brk_store_send_arrays(brk_store_t *self, brk_sql_t stmt, int n, brk_pgbin_t *arrays)
{
    const char *values[32];
    int lengths[32], formats[32];
    return brk_store_array_params(arrays, n, values, lengths, formats)
           && brk_store_ahead(self, BRK_SENT_PLAIN, stmt, n, values, lengths, formats);
}

/* Reads the answers of everything sent ahead and leaves pipeline mode;
   `last`, if given, receives the last statement's result (the caller
   clears it). false if any failed. */
bool
brk_store_collect(brk_store_t *self, PGresult **last)
{
    if (last)
        *last = NULL;
    if (!brk_store_piped(self))
        return !self->broken;
    bool ok = !self->broken;
    size_t idx = 0;
    int nulls = 0;
    if (PQpipelineSync(self->conn) != 1)
        self->broken = true;
    while (!self->broken) {
        PGresult *res = PQgetResult(self->conn);
        if (!res) {
            /* one NULL ends each statement's results; two in a row, or a
               lost connection, mean nothing more will come */
            if (++nulls > 1 || PQstatus(self->conn) != CONNECTION_OK)
                self->broken = true;
            idx++;
            continue;
        }
        nulls = 0;
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_PIPELINE_SYNC) {
            PQclear(res);
            break;
        }
        brk_sent_t kind = idx < self->nsent ? self->sent[idx] : BRK_SENT_PLAIN;
        bool good = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
        if (good && kind == BRK_SENT_COMMIT && strcmp(PQcmdStatus(res), "COMMIT") != 0)
            good = false;
        if (!good && st != PGRES_PIPELINE_ABORTED && kind != BRK_SENT_COMMIT) {
            const char *msg = PQresultErrorMessage(res);
            if (kind == BRK_SENT_HEAD) {
                brk_log(BRK_LOG_WARNING, "store",
                        "the audit chain was extended by another writer (a second broker "
                        "on this database?): this batch is refused and the chain's head "
                        "read again");
                self->head_stale = true;
            }
            else if (kind == BRK_SENT_MARK) {
                brk_log(BRK_LOG_WARNING, "store",
                        "store_mark was moved by another writer (a second broker on this "
                        "database?): this batch is refused and the mark read again");
                self->mark_stale = true;
            }
            else
                brk_log(BRK_LOG_ERROR, "store", "statement failed: %.*s",
                        (int)strcspn(msg, "\n"), msg);
        }
        ok = ok && good;
        if (last && good && idx + 1 == self->nsent) {
            PQclear(*last);
            *last = res;
        }
        else
            PQclear(res);
    }
    self->nsent = 0;
    if (!self->broken && PQexitPipelineMode(self->conn) != 1) {
        PQclear(PQgetResult(self->conn));
        if (PQexitPipelineMode(self->conn) != 1)
            self->broken = true;
    }
    if (self->broken) {
        ok = false;
        if (last) {
            PQclear(*last);
            *last = NULL;
        }
    }
    return ok;
}

/* Runs one statement; NULL (and the reason logged) on failure. */
PGresult *
brk_store_query(brk_store_t *self, brk_sql_t sql, int n, const char *const *values)
{
    if (brk_store_piped(self) && !brk_store_collect(self, NULL))
        return NULL;
    assert(!brk_sql_prepared(sql)); /* text parameters: planned for their values */
    PGresult *res =
        PQexecParams(self->conn, brk_sql_text(sql), n, NULL, values, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return res;
    char *msg = PQerrorMessage(self->conn);
    brk_log(BRK_LOG_ERROR, "store", "statement failed: %.*s", (int)strcspn(msg, "\n"),
            msg);
    PQclear(res);
    return NULL;
}

bool
brk_store_exec(brk_store_t *self, brk_sql_t sql, int n, const char *const *values)
{
    PGresult *res = brk_store_query(self, sql, n, values);
    PQclear(res);
    return res != NULL;
}

/* Dead letters replayed by an operator: tell the loop which queues to
   read again from the start, and count them again (store_depth.c). */
void
brk_store_check_notifies(brk_store_t *self, zsock_t *pipe)
{
    if (!self->conn)
        return;
    if (!PQconsumeInput(self->conn)) {
        brk_store_disconnect(self, pipe);
        return;
    }
    PGnotify *n;
    while ((n = PQnotifies(self->conn))) {
        if (n->extra && n->extra[0]) {
            brk_depths_want_recount(self->depths, n->extra);
            brk_store_report(pipe, (brk_store_report_t){.kind = BRK_STORE_REPLAY,
                                                        .agency = strdup(n->extra)});
        }
        PQfreemem(n);
    }
}

/* ---- updates held over a failure ---------------------------------------

   Nobody resends an update. The loop has acted on it in memory (an ACK
   settled its delivery, a NACK dead-lettered it, a silent client's
   deliveries went back to their queue) and moved on, where a failed
   publish is answered UNAVAILABLE and sent again by its client. So the
   updates of a batch that failed are held here, in order, and written
   before anything that came after them once the database is back: the
   database then agrees with the loop again. The other way, bringing the
   loop's queues back to what the database holds, was not taken: the
   database does not know of the ACKs and dead letters of the outage, so
   those deliveries would go out again, acked and dead-lettered ones
   included, which is the double delivery this avoids.

   In order: a batch runs only when nothing is held (store.c), so a
   FETCH never reads a queue before the updates sent ahead of it are
   written, and the updates of a batch that fails become the first held.

   Exactly once: a transaction that writes updates moves store_mark from
   the number this store last read to the next, and fails if another
   writer moved it first. When the connection is lost after its BEGIN,
   whether its COMMIT got through is not known; the next connection reads
   the mark before it writes anything (brk_store_read_mark): moved, it committed,
   and its updates are dropped rather than written twice (attempts would
   be counted twice and delivery_events rows doubled; an ACK would be
   harmless, but a dead letter replayed meanwhile would die again); not
   moved, it did not, and a COMMIT of the old connection that would still
   come fails, since the retry moves the mark first.

   Bounded: during an outage the loop updates only deliveries it holds in
   memory (each queue's read-ahead of 256 and those in flight, up to the
   clients' credit; publishes are refused, so no new ones), with two
   updates per attempt and one more when it dies: a few times that many,
   about ten thousand for 20 agencies. S_MAX_HELD (about 25 MB) caps it
   anyway; an update past it is dropped with an error, and its delivery,
   still pending in the database, comes again after a restart, as after a
   crash (at least once). */

const char *
brk_store_update_name(brk_update_kind_t kind)
{
    switch (kind) {
    case BRK_UPDATE_SENT: return "SENT";
    case BRK_UPDATE_ACK: return "ACK";
    case BRK_UPDATE_NACK: return "NACK";
    case BRK_UPDATE_REQUEUED: return "REQUEUED";
    case BRK_UPDATE_DEAD: return "DEAD";
    case BRK_UPDATE_REVOKED: return "REVOKED";
    }
    return "?";
}

/* Frees the first n held updates (written, or known written). */
void
brk_store_held_drop(brk_store_t *self, size_t n)
{
    assert(n <= self->nheld);
    if (n == 0)
        return;
    for (size_t i = 0; i < n; i++)
        brk_update_destroy(&self->held[i].update);
    /* O(held) per batch of BRK_STORE_MAX_BATCH: only after an outage */
    memmove(self->held, self->held + n, (self->nheld - n) * sizeof(brk_store_cmd_t));
    self->nheld -= n;
    self->ndoubt = self->ndoubt > n ? self->ndoubt - n : 0;
}

/* Holds an update the database has not taken, after those held already.
   Takes responsibility over the command's update. */
void
brk_store_hold(brk_store_t *self, brk_store_cmd_t *cmd)
{
    if (self->nheld == self->held_cap && self->held_cap < S_MAX_HELD) {
        size_t cap = self->held_cap ? self->held_cap * 2 : 1024;
        cap = cap > S_MAX_HELD ? S_MAX_HELD : cap;
        brk_store_cmd_t *held = realloc(self->held, cap * sizeof(brk_store_cmd_t));
        if (held) {
            self->held = held;
            self->held_cap = cap;
        }
    }
    if (self->nheld == self->held_cap) {
        brk_update_t *u = cmd->update;
        if (self->dropped++ == 0)
            brk_log(BRK_LOG_ERROR, "store",
                    "could not hold the %s update of delivery %llu: %zu updates wait for "
                    "the database already; it stays pending there and is delivered "
                    "again after a restart",
                    brk_store_update_name(u->kind), (unsigned long long)u->delivery,
                    self->nheld);
        brk_update_destroy(&cmd->update);
        return;
    }
    self->held[self->nheld++] = *cmd;
    cmd->update = NULL;
}

/* store_mark as the database has it (on each new connection, or after
   another writer moved it). Settles the transaction in doubt, if any. */
bool
brk_store_read_mark(brk_store_t *self, PGconn *conn)
{
    PGresult *res = PQexec(conn, brk_sql_text(BRK_SQL_READ_MARK));
    bool ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
    uint64_t mark = ok ? strtoull(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    if (!ok) {
        const char *msg = PQresultErrorMessage(res);
        brk_log(BRK_LOG_ERROR, "store", "could not read store_mark: %.*s",
                (int)strcspn(msg, "\n"), msg[0] ? msg : "no row");
    }
    PQclear(res);
    if (!ok)
        return false;
    if (self->ndoubt) {
        if (mark == self->mark + 1) {
            brk_log(BRK_LOG_INFO, "store",
                    "the transaction cut off during its COMMIT had committed: its %zu "
                    "update(s) are not written again",
                    self->ndoubt);
            brk_store_held_drop(self, self->ndoubt);
        }
        else {
            if (mark != self->mark)
                brk_log(BRK_LOG_WARNING, "store",
                        "store_mark was moved by another writer (a second broker on this "
                        "database?): %zu update(s) are written again",
                        self->ndoubt);
            self->ndoubt = 0; /* not committed: written again */
        }
    }
    self->mark = mark;
    return true;
}

/* Moves store_mark to the next number, in the transaction in hand; sent
   ahead, so the statement fails (a text that is not a number) when
   another writer moved it since this store read it. */
bool
brk_store_move_mark(brk_store_t *self)
{
    char next[24], old[24];
    snprintf(next, sizeof(next), "%llu", (unsigned long long)self->mark + 1);
    snprintf(old, sizeof(old), "%llu", (unsigned long long)self->mark);
    const char *v[2] = {next, old};
    return brk_store_ahead(self, BRK_SENT_MARK, BRK_SQL_MOVE_MARK, 2, v, NULL, NULL);
}

/* ---- the agencies table ------------------------------------------------ */

/* The registry as the configuration has it (DESIGN.md "Database"): rows
   upserted, agencies no longer configured removed. */
void
brk_store_write_agencies(brk_store_t *self)
{
    if (!self->conn || !self->agencies || !self->agencies_dirty)
        return;
    const char *params[1] = {self->agencies};
    PGresult *r = PQexecParams(self->conn, brk_sql_text(BRK_SQL_WRITE_AGENCIES), 1, NULL,
                               params, NULL, NULL, 0);
    if (PQresultStatus(r) == PGRES_COMMAND_OK)
        self->agencies_dirty = false;
    else
        brk_log(BRK_LOG_WARNING, "store", "could not write the agencies table: %s",
                PQresultErrorMessage(r));
    PQclear(r);
}
