/*  store.c: the store thread (see store.h for its protocol).

    One loop: wait for a command, take every other command already
    waiting (up to S_MAX_BATCH), run them all in one transaction, commit,
    answer. When the connection is lost, the batch in hand is answered
    UNAVAILABLE (nothing of it is known to be stored), and the store
    reconnects with a growing delay, answering UNAVAILABLE meanwhile.
    The updates of a failed batch are not answered: they are held and
    written first once the database is back ("Updates held over a
    failure" below).

    Not done here: deciding anything. The loop decided routing and
    consent; the store writes what it is given, and reads queues. */

#include <assert.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chain.h"
#include "pgbin.h"
#include "log.h"
#include "migrate.h"
#include "metrics.h"
#include "store.h"

#define S_MAX_BATCH 1000
#define S_BACKOFF_MIN_MS 100
#define S_BACKOFF_MAX_MS 5000
/* Updates held while the database is away (about 250 bytes each): see
   "Updates held over a failure" for why this is enough. */
#define S_MAX_HELD 100000

/* What a statement sent ahead is, for reading its answer. */
typedef enum {
    S_SENT_PLAIN,  /* any success will do */
    S_SENT_COMMIT, /* must say COMMIT (an aborted transaction says ROLLBACK) */
    S_SENT_HEAD,   /* the chain head's move: its failure means another writer */
    S_SENT_MARK,   /* store_mark's move: the same */
} s_sent_t;

/* A command from the loop: one frame holding this structure by value,
   written by the brk_store_* helpers only (store.h). */
typedef enum {
    S_CMD_PUBLISH,
    S_CMD_FETCH,
    S_CMD_UPDATE,
    S_CMD_AGENCIES,
} s_op_t;

typedef struct {
    s_op_t op;
    union {
        brk_job_t *job;       /* PUBLISH */
        brk_fetch_t *fetch;   /* FETCH */
        brk_update_t *update; /* UPDATE */
        char *agencies;       /* AGENCIES: JSON text */
    };
} s_cmd_t;

typedef struct {
    char *database;
    char *sql_dir;
    PGconn *conn;
    int backoff_ms;
    int64_t next_try_ms;
    bool told_up; /* last state told to the loop */
    bool told_once;
    char *agencies;      /* the registry as JSON, from the loop (AGENCIES) */
    bool agencies_dirty; /* not yet written to this connection */
    /* the audit chain's head (chain.h): the last position and link
       written, and where the batch in hand started */
    uint64_t chain_seq, batch_chain_seq;
    uint8_t link[BRK_LINK_BYTES], batch_link[BRK_LINK_BYTES];
    bool head_stale;
    /* updates of failed batches, oldest first, to write before anything
       else (each an "UPDATE" command, owned); the first `ndoubt` were
       in a transaction whose COMMIT may have got through */
    s_cmd_t *held;
    size_t nheld, held_cap, ndoubt;
    size_t dropped;  /* updates dropped past S_MAX_HELD, not reported yet */
    uint64_t mark;   /* store_mark.batch as this store last read or moved it */
    bool mark_stale; /* another writer moved it: read it again */
    /* statements sent ahead in pipeline mode, answers not read yet;
       broken: what was sent is not known, the connection is dropped */
    bool broken;
    size_t nsent;
    s_sent_t sent[8];
} s_store_t;

static void s_write_agencies(s_store_t *self);
static bool s_prepare(PGconn *conn);
static bool s_chain_decisions(s_store_t *self, PGresult *res);
static bool s_read_mark(s_store_t *self, PGconn *conn);
static bool s_update_bulk(s_store_t *self, brk_update_t *const *ups, size_t n);

/* The audit chain's head as the database has it. */
static bool
s_read_head(s_store_t *self, PGconn *conn)
{
    PGresult *head = PQexec(conn, "select chain_seq, link from chain_head where id = 1");
    bool ok = PQresultStatus(head) == PGRES_TUPLES_OK && PQntuples(head) == 1
              && brk_chain_unhex(PQgetvalue(head, 0, 1), self->link) == 0;
    if (ok)
        self->chain_seq = strtoull(PQgetvalue(head, 0, 0), NULL, 10);
    PQclear(head);
    return ok;
}

void
brk_job_destroy(brk_job_t **job_p)
{
    brk_job_t *job = *job_p;
    if (!job)
        return;
    mlg_msg_destroy(&job->msg);
    brk_consent_destroy(&job->consent);
    free(job->keep);
    free(job->decisions);
    free(job->delivery_ids);
    zframe_destroy(&job->routing_id);
    free(job);
    *job_p = NULL;
}

void
brk_delivery_destroy(brk_delivery_t **row_p)
{
    brk_delivery_t *row = *row_p;
    if (!row)
        return;
    mlg_msg_destroy(&row->deliver);
    free(row);
    *row_p = NULL;
}

void
brk_update_destroy(brk_update_t **update_p)
{
    brk_update_t *u = *update_p;
    if (!u)
        return;
    free(u->reason);
    free(u);
    *update_p = NULL;
}

void
brk_fetch_destroy(brk_fetch_t **fetch_p)
{
    brk_fetch_t *fetch = *fetch_p;
    if (!fetch)
        return;
    for (size_t i = 0; i < fetch->nrows; i++)
        brk_delivery_destroy(&fetch->rows[i]);
    free(fetch->rows);
    free(fetch);
    *fetch_p = NULL;
}

/* ---- the pipe: commands in, reports out -------------------------------

   Both ways, a message is one frame holding a tagged structure by value;
   the tag's switches have no default, so the compiler names a kind left
   out, and a tag no switch knows is a programmer error. */

static bool
s_op_known(s_op_t op)
{
    switch (op) {
    case S_CMD_PUBLISH:
    case S_CMD_FETCH:
    case S_CMD_UPDATE:
    case S_CMD_AGENCIES: return true;
    }
    return false;
}

/* Frees what a command carries (one the pipe would not take). */
static void
s_cmd_destroy(s_cmd_t *cmd)
{
    switch (cmd->op) {
    case S_CMD_PUBLISH: brk_job_destroy(&cmd->job); break;
    case S_CMD_FETCH: brk_fetch_destroy(&cmd->fetch); break;
    case S_CMD_UPDATE: brk_update_destroy(&cmd->update); break;
    case S_CMD_AGENCIES: zstr_free(&cmd->agencies); break;
    }
}

static int
s_send_cmd(zactor_t *store, s_cmd_t cmd)
{
    zframe_t *frame = zframe_new(&cmd, sizeof(cmd));
    if (frame && zframe_send(&frame, store, 0) == 0)
        return 0;
    zframe_destroy(&frame);
    s_cmd_destroy(&cmd);
    return -1;
}

int
brk_store_publish(zactor_t *store, brk_job_t **job_p)
{
    assert(job_p && *job_p);
    s_cmd_t cmd = {.op = S_CMD_PUBLISH, .job = *job_p};
    *job_p = NULL;
    return s_send_cmd(store, cmd);
}

int
brk_store_fetch(zactor_t *store, brk_fetch_t **fetch_p)
{
    assert(fetch_p && *fetch_p);
    s_cmd_t cmd = {.op = S_CMD_FETCH, .fetch = *fetch_p};
    *fetch_p = NULL;
    return s_send_cmd(store, cmd);
}

int
brk_store_update(zactor_t *store, brk_update_t **update_p)
{
    assert(update_p && *update_p);
    s_cmd_t cmd = {.op = S_CMD_UPDATE, .update = *update_p};
    *update_p = NULL;
    return s_send_cmd(store, cmd);
}

int
brk_store_agencies(zactor_t *store, char **json_p)
{
    assert(json_p && *json_p);
    s_cmd_t cmd = {.op = S_CMD_AGENCIES, .agencies = *json_p};
    *json_p = NULL;
    return s_send_cmd(store, cmd);
}

/* The next command: 1, or 0 for none (a frame no helper above wrote,
   a programmer error), or -1 at "$TERM" (zactor_destroy) or when the
   pipe is gone. */
static int
s_recv_cmd(zsock_t *pipe, s_cmd_t *cmd)
{
    zframe_t *frame = zframe_recv(pipe);
    if (!frame || zframe_streq(frame, "$TERM")) {
        zframe_destroy(&frame);
        return -1;
    }
    bool ok = zframe_size(frame) == sizeof(*cmd);
    if (ok)
        memcpy(cmd, zframe_data(frame), sizeof(*cmd));
    zframe_destroy(&frame);
    ok = ok && s_op_known(cmd->op);
    assert(ok);
    if (!ok)
        brk_log(BRK_LOG_ERROR, "store", "a command of no known kind: ignored");
    return ok ? 1 : 0;
}

static bool
s_report_known(brk_store_report_kind_t kind)
{
    switch (kind) {
    case BRK_STORE_DONE:
    case BRK_STORE_FETCHED:
    case BRK_STORE_REPLAY:
    case BRK_STORE_CONSENTS:
    case BRK_STORE_DB_UP:
    case BRK_STORE_DB_DOWN: return true;
    }
    return false;
}

/* Tells the loop; what the report carries is the loop's now. */
static void
s_report(zsock_t *pipe, brk_store_report_t report)
{
    zframe_t *frame = zframe_new(&report, sizeof(report));
    if (frame && zframe_send(&frame, pipe, 0) != 0)
        zframe_destroy(&frame); /* the loop is gone: it was stopping */
}

int
brk_store_recv(zsock_t *pipe, brk_store_report_t *report)
{
    zframe_t *frame = zframe_recv(pipe);
    /* anything else is the actor's signal that it has ended (zactor) */
    bool ok = frame && zframe_size(frame) == sizeof(*report);
    if (ok)
        memcpy(report, zframe_data(frame), sizeof(*report));
    zframe_destroy(&frame);
    if (!ok)
        return -1;
    ok = s_report_known(report->kind);
    assert(ok); /* only s_report writes on this pipe */
    return ok ? 0 : -1;
}

/* ---- connection ------------------------------------------------------ */

static void
s_tell(s_store_t *self, zsock_t *pipe, bool up)
{
    if (self->told_once && self->told_up == up)
        return;
    self->told_once = true;
    self->told_up = up;
    s_report(pipe,
             (brk_store_report_t){.kind = up ? BRK_STORE_DB_UP : BRK_STORE_DB_DOWN});
}

static void
s_disconnect(s_store_t *self, zsock_t *pipe)
{
    if (self->conn) {
        PQfinish(self->conn);
        self->conn = NULL;
        brk_log(BRK_LOG_WARNING, "store", "database connection lost");
    }
    self->broken = false;
    self->nsent = 0;
    self->next_try_ms = zclock_mono() + self->backoff_ms;
    self->backoff_ms =
        self->backoff_ms * 2 > S_BACKOFF_MAX_MS ? S_BACKOFF_MAX_MS : self->backoff_ms * 2;
    s_tell(self, pipe, false);
}

/* "{a,b,c}" (a text[] of words, which need no quoting) to a list. */
static size_t
s_words(const char *text, const char **out, size_t max, char *buf, size_t buflen)
{
    snprintf(buf, buflen, "%s", text[0] == '{' ? text + 1 : text);
    size_t n = strlen(buf);
    if (n && buf[n - 1] == '}')
        buf[n - 1] = '\0';
    size_t count = 0;
    char *save = NULL;
    for (char *w = strtok_r(buf, ",", &save); w && count < max;
         w = strtok_r(NULL, ",", &save))
        out[count++] = w;
    return count;
}

/* The whole `consents` table as an index; NULL on failure (logged). */
static brk_consents_t *
s_load_consents(PGconn *conn)
{
    PGresult *res = PQexec(
        conn, "select id, subject, parties::text, purposes::text, categories::text,"
              " (extract(epoch from valid_from) * 1000000)::bigint,"
              " (extract(epoch from valid_until) * 1000000)::bigint,"
              " (extract(epoch from revoked_at) * 1000000)::bigint, granted_by,"
              " granted_message_id, coalesce(revoked_message_id::text, '')"
              " from consents order by id");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        char *msg = PQerrorMessage(conn);
        brk_log(BRK_LOG_ERROR, "store", "could not read the consents: %.*s",
                (int)strcspn(msg, "\n"), msg);
        PQclear(res);
        return NULL;
    }
    brk_consents_t *index = brk_consents_new();
    for (int i = 0; index && i < PQntuples(res); i++) {
        const char *parties[64], *purposes[32], *categories[32];
        char b1[4096], b2[1024], b3[1024];
        size_t np = s_words(PQgetvalue(res, i, 2), parties, 64, b1, sizeof(b1));
        size_t nu = s_words(PQgetvalue(res, i, 3), purposes, 32, b2, sizeof(b2));
        size_t nc = s_words(PQgetvalue(res, i, 4), categories, 32, b3, sizeof(b3));
        int64_t until = PQgetisnull(res, i, 6) ? BRK_FOREVER
                                               : strtoll(PQgetvalue(res, i, 6), NULL, 10);
        brk_consent_t *c = brk_consent_new(
            PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), parties, np, purposes, nu,
            categories, nc, strtoll(PQgetvalue(res, i, 5), NULL, 10), until);
        if (!c) {
            brk_consents_destroy(&index);
            break;
        }
        if (!PQgetisnull(res, i, 7))
            c->revoked_at = strtoll(PQgetvalue(res, i, 7), NULL, 10);
        snprintf(c->granted_by, sizeof(c->granted_by), "%s", PQgetvalue(res, i, 8));
        snprintf(c->granted_message, sizeof(c->granted_message), "%s",
                 PQgetvalue(res, i, 9));
        snprintf(c->revoked_message, sizeof(c->revoked_message), "%s",
                 PQgetvalue(res, i, 10));
        brk_consents_add(index, &c);
        brk_consent_destroy(&c);
    }
    PQclear(res);
    return index;
}

static bool
s_connect(s_store_t *self, zsock_t *pipe)
{
    if (self->conn)
        return true;
    if (zclock_mono() < self->next_try_ms)
        return false;
    PGconn *conn = PQconnectdb(self->database);
    if (PQstatus(conn) != CONNECTION_OK) {
        char *msg = PQerrorMessage(conn);
        brk_log(BRK_LOG_WARNING, "store", "could not connect to the database: %.*s",
                (int)strcspn(msg, "\n"), msg);
        PQfinish(conn);
        s_disconnect(self, pipe);
        return false;
    }
    int applied = 0;
    char err[1024];
    if (brk_migrate(conn, self->sql_dir, &applied, err, sizeof(err)) != 0) {
        brk_log(BRK_LOG_ERROR, "store", "could not apply migrations: %s", err);
        PQfinish(conn);
        s_disconnect(self, pipe);
        return false;
    }
    if (applied)
        brk_log(BRK_LOG_INFO, "store", "applied %d migration(s) from %s", applied,
                self->sql_dir);
    if (!s_read_head(self, conn)) {
        brk_log(BRK_LOG_ERROR, "store",
                "could not read the audit chain's head (chain_head)");
        PQfinish(conn);
        s_disconnect(self, pipe);
        return false;
    }
    /* before anything is written: did the last transaction in doubt commit? */
    if (!s_read_mark(self, conn)) {
        PQfinish(conn);
        s_disconnect(self, pipe);
        return false;
    }
    brk_consents_t *consents = s_load_consents(conn);
    if (!consents) {
        PQfinish(conn);
        s_disconnect(self, pipe);
        return false;
    }
    if (!s_prepare(conn)) {
        PQfinish(conn);
        s_disconnect(self, pipe);
        return false;
    }
    /* operators' replays (maillage dlq replay) come as notifications */
    PQclear(PQexec(conn, "listen maillage_replay"));
    self->conn = conn;
    self->backoff_ms = S_BACKOFF_MIN_MS;
    brk_log(BRK_LOG_INFO, "store", "database connected, %zu consent(s) loaded",
            brk_consents_size(consents));
    self->told_once = false; /* each new connection sends the index again */
    self->agencies_dirty = true;
    s_write_agencies(self);
    s_report(pipe,
             (brk_store_report_t){.kind = BRK_STORE_CONSENTS, .consents = consents});
    s_tell(self, pipe, true);
    return true;
}

/* ---- statements ------------------------------------------------------- */

/* ---- statements sent ahead ---------------------------------------------

   A batch's statements whose answers nothing waits for (BEGIN, the bulk
   writes, the chain head, COMMIT) are sent in pipeline mode without
   waiting; the answers are read together at the next statement that
   needs one, so a batch of plain publishes costs two round trips: BEGIN
   with the ids check, then the writes with COMMIT. Any failure among
   them fails the batch (the pipeline aborts what follows it, and the
   COMMIT of an aborted transaction says ROLLBACK). */

static bool
s_piped(const s_store_t *self)
{
    return self->conn && PQpipelineStatus(self->conn) != PQ_PIPELINE_OFF;
}

static bool
s_send_ahead(s_store_t *self, s_sent_t kind, const char *sql, const char *prepared, int n,
             const char *const *values, const int *lengths, const int *formats)
{
    if (self->broken || self->nsent == sizeof(self->sent) / sizeof(self->sent[0]))
        return false;
    if (!s_piped(self) && PQenterPipelineMode(self->conn) != 1)
        return false;
    int rc =
        prepared
            ? PQsendQueryPrepared(self->conn, prepared, n, values, lengths, formats, 0)
            : PQsendQueryParams(self->conn, sql, n, NULL, values, lengths, formats, 0);
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

/* Reads the answers of everything sent ahead and leaves pipeline mode;
   `last`, if given, receives the last statement's result (the caller
   clears it). false if any failed. */
static bool
s_collect(s_store_t *self, PGresult **last)
{
    if (last)
        *last = NULL;
    if (!s_piped(self))
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
        s_sent_t kind = idx < self->nsent ? self->sent[idx] : S_SENT_PLAIN;
        bool good = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
        if (good && kind == S_SENT_COMMIT && strcmp(PQcmdStatus(res), "COMMIT") != 0)
            good = false;
        if (!good && st != PGRES_PIPELINE_ABORTED && kind != S_SENT_COMMIT) {
            const char *msg = PQresultErrorMessage(res);
            if (kind == S_SENT_HEAD) {
                brk_log(BRK_LOG_WARNING, "store",
                        "the audit chain was extended by another writer (a second broker "
                        "on this database?): this batch is refused and the chain's head "
                        "read again");
                self->head_stale = true;
            }
            else if (kind == S_SENT_MARK) {
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
static PGresult *
s_query(s_store_t *self, const char *sql, int n, const char *const *values)
{
    if (s_piped(self) && !s_collect(self, NULL))
        return NULL;
    PGresult *res = PQexecParams(self->conn, sql, n, NULL, values, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return res;
    char *msg = PQerrorMessage(self->conn);
    brk_log(BRK_LOG_ERROR, "store", "statement failed: %.*s", (int)strcspn(msg, "\n"),
            msg);
    PQclear(res);
    return NULL;
}

static bool
s_exec(s_store_t *self, const char *sql, int n, const char *const *values)
{
    PGresult *res = s_query(self, sql, n, values);
    PQclear(res);
    return res != NULL;
}

static int64_t
s_time_us(mlg_time_t t)
{
    return t.sec * 1000000 + t.nsec / 1000;
}

static mlg_time_t
s_us_time(int64_t us)
{
    mlg_time_t t;
    t.sec = us / 1000000;
    int64_t rest = us % 1000000;
    if (rest < 0) {
        rest += 1000000;
        t.sec--;
    }
    t.nsec = (uint32_t)rest * 1000;
    return t;
}

#define S_TS "('epoch'::timestamptz + $%d::bigint * interval '1 microsecond')"

/* A text[] literal of words: {a,b,c}. */
static void
s_array(char **list, size_t n, char *buf, size_t len)
{
    size_t at = (size_t)snprintf(buf, len, "{");
    for (size_t i = 0; i < n && at < len; i++)
        at += (size_t)snprintf(buf + at, len - at, "%s%s", i ? "," : "", list[i]);
    if (at < len)
        snprintf(buf + at, len - at, "}");
}

static bool
s_insert_consent(s_store_t *self, const brk_job_t *job)
{
    const brk_consent_t *c = job->consent;
    char parties[4096], purposes[1024], categories[1024], from[24], until[24];
    s_array(c->parties, c->nparties, parties, sizeof(parties));
    s_array(c->purposes, c->npurposes, purposes, sizeof(purposes));
    s_array(c->categories, c->ncategories, categories, sizeof(categories));
    snprintf(from, sizeof(from), "%lld", (long long)c->valid_from);
    snprintf(until, sizeof(until), "%lld", (long long)c->valid_until);
    const char *v[9] = {c->id,
                        c->subject,
                        parties,
                        purposes,
                        categories,
                        from,
                        c->valid_until == BRK_FOREVER ? NULL : until,
                        job->sender,
                        job->msg->id};
    return s_exec(
        self,
        "insert into consents (id, subject, parties, purposes, categories,"
        " valid_from, valid_until, granted_by, granted_message_id) values"
        " ($1, $2, $3, $4, $5,"
        " 'epoch'::timestamptz + $6::bigint * interval '1 microsecond',"
        " 'epoch'::timestamptz + $7::bigint * interval '1 microsecond', $8, $9)",
        9, v);
}

/* The revocation's settling, for a consent's pending deliveries or one of
   them: each is settled `revoked`, gets a delivery event and a second
   decision, deny `code`, linked into the audit chain. */
#define S_SETTLE_REVOKED                                                                 \
    "with r as (update deliveries d set state = 'revoked', settled_at = now(),"          \
    "  updated_at = now() from consent_decisions c"                                      \
    "  where c.message_id = d.message_id and c.recipient = d.recipient"                  \
    "  and c.decision = 'allow' and c.basis = 'consent' and c.consent_id = $1"           \
    "  and d.state = 'pending' and d.id <> all($6::bigint[])"                            \
    "  and ($7::bigint is null or d.id = $7::bigint)"                                    \
    "  returning d.id, d.message_id, d.recipient, d.attempts),"                          \
    " e as (insert into delivery_events (delivery_id, attempt, event, reason, actor)"    \
    "  select id, attempts, 'revoked', $3, $5 from r)"                                   \
    " insert into consent_decisions (message_id, recipient, decision, basis,"            \
    "  consent_id, reason, detail, decided_at)"                                          \
    " select message_id, recipient, 'deny', 'consent', $1, $2, $4, now() from r"         \
    " returning id, message_id, recipient, decision, basis, consent_id, reason,"         \
    "  detail, (extract(epoch from decided_at) * 1000000)::bigint"

typedef struct {
    const char *consent_id;
    const char *code;   /* the decision's reason: REVOKED or EXPIRED */
    const char *event;  /* the delivery event's reason */
    const char *detail; /* the decision's detail */
    const char *actor;
    const char *keep;     /* "{id,...}": deliveries left alone (in flight) */
    const char *delivery; /* this one only, or NULL: all of the consent's */
} s_settle_t;

static bool
s_settle_revoked(s_store_t *self, const s_settle_t *r)
{
    const char *v[7] = {r->consent_id, r->code, r->event,   r->detail,
                        r->actor,      r->keep, r->delivery};
    PGresult *res = s_query(self, S_SETTLE_REVOKED, 7, v);
    bool ok = res && s_chain_decisions(self, res);
    PQclear(res);
    return ok;
}

/* Revokes the consent and settles `revoked` every pending delivery that
   relied on it, but those in flight (job->keep). */
static bool
s_revoke_consent(s_store_t *self, const brk_job_t *job)
{
    char received[24];
    snprintf(received, sizeof(received), "%lld", (long long)job->received_us);
    const char *v[3] = {job->consent_id, received, job->msg->id};
    if (!s_exec(self,
                "update consents set revoked_at = 'epoch'::timestamptz + $2::bigint *"
                " interval '1 microsecond', revoked_message_id = $3"
                " where id = $1 and revoked_at is null",
                3, v))
        return false;
    size_t len = 3 + job->nkeep * 21;
    char *keep = malloc(len);
    if (!keep)
        return false;
    size_t at = (size_t)snprintf(keep, len, "{");
    for (size_t i = 0; i < job->nkeep; i++)
        at += (size_t)snprintf(keep + at, len - at, "%s%llu", i ? "," : "",
                               (unsigned long long)job->keep[i]);
    snprintf(keep + at, len - at, "}");
    s_settle_t r = {job->consent_id,
                    "REVOKED",
                    "the consent was revoked",
                    "the consent was revoked before delivery",
                    job->sender,
                    keep,
                    NULL};
    bool ok = s_settle_revoked(self, &r);
    free(keep);
    return ok;
}

/* A consent event's own step, after its message row and before its
   decisions (which name the consent: a grant's row must be there). */
static bool
s_consent_step(s_store_t *self, const brk_job_t *job)
{
    switch (job->kind) {
    case BRK_JOB_PLAIN: return true;
    case BRK_JOB_GRANT: return s_insert_consent(self, job);
    case BRK_JOB_REVOKE: return s_revoke_consent(self, job);
    }
    return false;
}

/* ---- the audit chain ---------------------------------------------------- */

/* Moves chain_head to the batch's last link, if nobody else moved it
   since this connection read it (two brokers writing one chain would
   fork it: the batch fails, and the head is read again after the
   rollback). */
static bool
s_chain_head(s_store_t *self)
{
    char seq[24], old[24], hex[2 * BRK_LINK_BYTES + 3];
    snprintf(seq, sizeof(seq), "%llu", (unsigned long long)self->chain_seq);
    snprintf(old, sizeof(old), "%llu", (unsigned long long)self->batch_chain_seq);
    brk_chain_hex(self->link, BRK_LINK_BYTES, hex);
    const char *v[3] = {seq, hex, old};
    /* sent ahead, so the moved row count is not read: the statement
       fails (a text that is not a number) when no row moved */
    return s_send_ahead(
        self, S_SENT_HEAD,
        "with h as (update chain_head set chain_seq = $1, link = $2::bytea"
        " where id = 1 and chain_seq = $3 returning 1)"
        " select (case when count(*) = 1 then '1'"
        " else 'the audit chain was extended by another writer' end)::int from h",
        NULL, 3, v, NULL, NULL);
}

/* Links decision rows that SQL inserted (the settling of a revocation):
   `res` holds id, message_id, recipient, decision, basis, consent_id,
   reason, detail, decided_at in microseconds. */
static bool
s_chain_decisions(s_store_t *self, PGresult *res)
{
    for (int i = 0; i < PQntuples(res); i++) {
        char seq[24], hex[2 * BRK_LINK_BYTES + 3];
        snprintf(seq, sizeof(seq), "%llu", (unsigned long long)self->chain_seq + 1);
        const char *f[9] = {seq};
        for (int c = 1; c < 9; c++)
            f[c] = PQgetisnull(res, i, c) ? NULL : PQgetvalue(res, i, c);
        uint8_t link[BRK_LINK_BYTES];
        brk_chain_decision(self->link, f, link);
        brk_chain_hex(link, BRK_LINK_BYTES, hex);
        const char *v[3] = {seq, hex, PQgetvalue(res, i, 0)};
        if (!s_exec(self,
                    "update consent_decisions set chain_seq = $1, link = $2::bytea"
                    " where id = $3",
                    3, v))
            return false;
        self->chain_seq++;
        memcpy(self->link, link, BRK_LINK_BYTES);
    }
    return true;
}

/* A message whose id is stored already: a duplicate of the same
   publisher's (answered as first decided), or another agency's id. */
static bool
s_duplicate(s_store_t *self, brk_job_t *job)
{
    const char *id[1] = {job->msg->id};
    PGresult *res =
        s_query(self, "select seq, sender from messages where id = $1", 1, id);
    if (!res)
        return false;
    if (PQntuples(res) != 1 || strcmp(PQgetvalue(res, 0, 1), job->sender) != 0) {
        /* another agency's id: say nothing about that message */
        job->rc = MLG_INVALID;
        PQclear(res);
        return true;
    }
    job->seq = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    job->duplicate = true;
    /* the answer is the one decided when it was first stored */
    res = s_query(self,
                  "select recipient, decision = 'allow', coalesce(reason, ''), basis"
                  " from consent_decisions where message_id = $1 order by id",
                  1, id);
    if (!res)
        return false;
    free(job->decisions);
    job->ndecisions = (size_t)PQntuples(res);
    job->decisions =
        calloc(job->ndecisions ? job->ndecisions : 1, sizeof(brk_decision_t));
    for (size_t i = 0; job->decisions && i < job->ndecisions; i++) {
        snprintf(job->decisions[i].recipient, sizeof(job->decisions[i].recipient), "%s",
                 PQgetvalue(res, (int)i, 0));
        job->decisions[i].allow = PQgetvalue(res, (int)i, 1)[0] == 't';
        snprintf(job->decisions[i].reason, sizeof(job->decisions[i].reason), "%s",
                 PQgetvalue(res, (int)i, 2));
    }
    PQclear(res);
    job->rc = job->decisions ? MLG_OK : MLG_UNAVAILABLE;
    return true;
}

/* A message row's text fields, as the chain covers them and the INSERT
   writes them; the buffers hold the numbers. */
typedef struct {
    char chain_seq[24], version[24], occurred[24], received[24];
    const char *f[10];
} s_msg_fields_t;

static void
s_msg_fields(const s_store_t *self, const brk_job_t *job, s_msg_fields_t *out)
{
    const mlg_msg_t *m = job->msg;
    snprintf(out->chain_seq, sizeof(out->chain_seq), "%llu",
             (unsigned long long)self->chain_seq + 1);
    snprintf(out->version, sizeof(out->version), "%llu", (unsigned long long)m->version);
    snprintf(out->occurred, sizeof(out->occurred), "%lld",
             (long long)s_time_us(m->occurred_at));
    snprintf(out->received, sizeof(out->received), "%lld", (long long)job->received_us);
    const char *f[10] = {out->chain_seq,
                         m->id,
                         m->type,
                         out->version,
                         job->sender,
                         m->subject[0] ? m->subject : NULL,
                         m->purpose[0] ? m->purpose : NULL,
                         m->correlation[0] ? m->correlation : NULL,
                         m->has_occurred_at ? out->occurred : NULL,
                         out->received};
    memcpy(out->f, f, sizeof(f));
}

/* The link a decision of `job` takes at the next position of the chain
   (not taken yet: s_chain_take). */
static void
s_decision_link(const s_store_t *self, const brk_job_t *job, const brk_decision_t *d,
                char dseq[24], const char *received, uint8_t link[BRK_LINK_BYTES])
{
    snprintf(dseq, 24, "%llu", (unsigned long long)self->chain_seq + 1);
    const char *df[9] = {dseq,
                         job->msg->id,
                         d->recipient,
                         d->allow ? "allow" : "deny",
                         mlg_basis_name(d->basis),
                         d->consent_id[0] ? d->consent_id : NULL,
                         d->reason[0] ? d->reason : NULL,
                         d->detail[0] ? d->detail : NULL,
                         received};
    brk_chain_decision(self->link, df, link);
}

/* The next position of the chain is taken, with this link. */
static void
s_chain_take(s_store_t *self, const uint8_t link[BRK_LINK_BYTES])
{
    self->chain_seq++;
    memcpy(self->link, link, BRK_LINK_BYTES);
}

static bool
s_fetch(s_store_t *self, brk_fetch_t *f)
{
    char after[24], limit[24];
    snprintf(after, sizeof(after), "%llu", (unsigned long long)f->after);
    snprintf(limit, sizeof(limit), "%zu", f->limit);
    const char *values[3] = {f->agency, after, limit};
    PGresult *res = s_query(
        self,
        "select d.id, d.attempts, m.id, m.type, m.version, coalesce(m.subject, ''),"
        " coalesce(m.purpose, ''), coalesce(m.correlation, ''),"
        " (extract(epoch from m.occurred_at) * 1000000)::bigint, m.sender,"
        " (extract(epoch from m.received_at) * 1000000)::bigint, m.body,"
        " coalesce(c.consent_id::text, '')"
        " from deliveries d join messages m on m.id = d.message_id"
        " left join consent_decisions c on c.message_id = d.message_id"
        " and c.recipient = d.recipient and c.decision = 'allow' and c.basis = 'consent'"
        " where d.recipient = $1 and d.state = 'pending' and d.id > $2::bigint"
        " order by d.id limit $3::int",
        3, values);
    if (!res)
        return false;
    int n = PQntuples(res);
    f->rows = calloc(n ? (size_t)n : 1, sizeof(brk_delivery_t *));
    if (!f->rows) {
        PQclear(res);
        return false;
    }
    for (int i = 0; i < n; i++) {
        brk_delivery_t *row = calloc(1, sizeof(*row));
        mlg_msg_t *d = mlg_msg_new(MLG_OP_DELIVER);
        if (!row || !d) {
            free(row);
            mlg_msg_destroy(&d);
            break;
        }
        row->delivery = strtoull(PQgetvalue(res, i, 0), NULL, 10);
        row->attempts = strtoull(PQgetvalue(res, i, 1), NULL, 10);
        snprintf(row->recipient, sizeof(row->recipient), "%s", f->agency);
        snprintf(row->consent_id, sizeof(row->consent_id), "%s", PQgetvalue(res, i, 12));
        snprintf(d->id, sizeof(d->id), "%s", PQgetvalue(res, i, 2));
        snprintf(d->type, sizeof(d->type), "%s", PQgetvalue(res, i, 3));
        d->version = strtoull(PQgetvalue(res, i, 4), NULL, 10);
        snprintf(d->subject, sizeof(d->subject), "%s", PQgetvalue(res, i, 5));
        snprintf(d->purpose, sizeof(d->purpose), "%s", PQgetvalue(res, i, 6));
        snprintf(d->correlation, sizeof(d->correlation), "%s", PQgetvalue(res, i, 7));
        if (!PQgetisnull(res, i, 8)) {
            d->has_occurred_at = true;
            d->occurred_at = s_us_time(strtoll(PQgetvalue(res, i, 8), NULL, 10));
        }
        snprintf(d->from, sizeof(d->from), "%s", PQgetvalue(res, i, 9));
        d->received_at = s_us_time(strtoll(PQgetvalue(res, i, 10), NULL, 10));
        size_t blen = 0;
        unsigned char *body =
            PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, 11), &blen);
        if (!body || mlg_msg_set_body(d, body, blen) != MLG_OK) {
            PQfreemem(body);
            mlg_msg_destroy(&d);
            free(row);
            break;
        }
        PQfreemem(body);
        row->deliver = d;
        f->rows[f->nrows++] = row;
    }
    PQclear(res);
    return true;
}

static bool
s_update(s_store_t *self, brk_update_t *u)
{
    char id[24], attempt[24];
    snprintf(id, sizeof(id), "%llu", (unsigned long long)u->delivery);
    snprintf(attempt, sizeof(attempt), "%llu", (unsigned long long)u->attempt);
    const char *ev[5] = {id, attempt, NULL, u->reason, u->actor};
    switch (u->kind) {
    case BRK_UPDATE_SENT:
    case BRK_UPDATE_ACK: return s_update_bulk(self, &u, 1);
    case BRK_UPDATE_REVOKED: {
        s_settle_t r = {u->consent_id, u->code, u->reason, u->reason, u->actor, "{}", id};
        return s_settle_revoked(self, &r);
    }
    case BRK_UPDATE_NACK: ev[2] = "nack"; break;
    case BRK_UPDATE_REQUEUED: ev[2] = "requeued"; break;
    case BRK_UPDATE_DEAD: ev[2] = "dead"; break;
    }
    if (!s_exec(self,
                "insert into delivery_events (delivery_id, attempt, event, reason, actor)"
                " values ($1, $2, $3, $4, $5)",
                5, ev))
        return false;
    const char *le[2] = {id, u->reason};
    if (u->kind == BRK_UPDATE_DEAD)
        return s_exec(self,
                      "update deliveries set state = 'dead', last_error = coalesce($2,"
                      " last_error), settled_at = now(), updated_at = now()"
                      " where id = $1 and state = 'pending'",
                      2, le);
    return s_exec(self,
                  "update deliveries set last_error = coalesce($2, last_error),"
                  " updated_at = now() where id = $1",
                  2, le);
}

/* ---- many publishes at once: binary arrays ------------------------------ */

/* "{1,2,3}" to numbers; how many were read. */
static size_t
s_ids(const char *text, uint64_t *out, size_t max)
{
    size_t n = 0;
    const char *c = text[0] == '{' ? text + 1 : text;
    while (*c >= '0' && *c <= '9' && n < max) {
        char *end;
        out[n++] = strtoull(c, &end, 10);
        c = *end == ',' ? end + 1 : end;
    }
    return n;
}

/* The columns of the three tables a plain publish writes, one array
   each, in this order. */
enum {
    S_M_SEQ,
    S_M_ID,
    S_M_TYPE,
    S_M_VERSION,
    S_M_SENDER,
    S_M_SUBJECT,
    S_M_PURPOSE,
    S_M_CORRELATION,
    S_M_OCCURRED,
    S_M_RECEIVED,
    S_M_BODY,
    S_M_CHAIN_SEQ,
    S_M_BODY_HASH,
    S_M_LINK,
    S_D_MESSAGE,
    S_D_RECIPIENT,
    S_D_DECISION,
    S_D_BASIS,
    S_D_REASON,
    S_D_DECIDED,
    S_D_CONSENT,
    S_D_DETAIL,
    S_D_CHAIN_SEQ,
    S_D_LINK,
    S_V_ID,
    S_V_MESSAGE,
    S_V_RECIPIENT,
    S_NCOLS
};

static const uint32_t s_col_oids[S_NCOLS] = {
    BRK_OID_INT8,  BRK_OID_UUID, BRK_OID_TEXT,  BRK_OID_INT4,        BRK_OID_TEXT,
    BRK_OID_TEXT,  BRK_OID_TEXT, BRK_OID_TEXT,  BRK_OID_TIMESTAMPTZ, BRK_OID_TIMESTAMPTZ,
    BRK_OID_BYTEA, BRK_OID_INT8, BRK_OID_BYTEA, BRK_OID_BYTEA,       BRK_OID_UUID,
    BRK_OID_TEXT,  BRK_OID_TEXT, BRK_OID_TEXT,  BRK_OID_TEXT,        BRK_OID_TIMESTAMPTZ,
    BRK_OID_UUID,  BRK_OID_TEXT, BRK_OID_INT8,  BRK_OID_BYTEA,       BRK_OID_INT8,
    BRK_OID_UUID,  BRK_OID_TEXT};

typedef enum { S_STMT_CHECK, S_STMT_INSERT, S_STMT_UPDATE } s_stmt_t;

/* The fast path's statements, prepared on each new connection (planned
   once, not per batch). Parameters are arrays in binary format. */
#define S_INSERT_PUBLISHES                                                               \
    "with m as (insert into messages (seq, id, type, version, sender, subject, purpose," \
    "  correlation, occurred_at, received_at, body, chain_seq, body_hash, link)"         \
    "  select * from unnest($1::bigint[], $2::uuid[], $3::text[], $4::int[], "           \
    "$5::text[],"                                                                        \
    "  $6::text[], $7::text[], $8::text[], $9::timestamptz[], $10::timestamptz[],"       \
    "  $11::bytea[], $12::bigint[], $13::bytea[], $14::bytea[])),"                       \
    " d as (insert into consent_decisions (message_id, recipient, decision, basis,"      \
    "  reason, decided_at, consent_id, detail, chain_seq, link)"                         \
    "  select * from unnest($15::uuid[], $16::text[], $17::text[], $18::text[],"         \
    "  $19::text[], $20::timestamptz[], $21::uuid[], $22::text[], $23::bigint[],"        \
    "  $24::bytea[]))"                                                                   \
    " insert into deliveries (id, message_id, recipient)"                                \
    " select * from unnest($25::bigint[], $26::uuid[], $27::text[])"

static const struct {
    const char *name;
    const char *sql;
    bool prepare; /* else sent with its text each time: planned for the
                     arrays in hand (a generic plan for `= any($1)` was
                     measured 5-10 times slower); not session-wide
                     force_custom_plan, which would replan the foreign
                     key checks' queries for every row */
} s_prepared[] = {
    /* in s_stmt_t's order */
    /* which ids are stored already, and the numbers of the new rows */
    {"bulk_check",
     "select array(select id::text from messages"
     "  where id = any($1::uuid[])),"
     " array(select nextval('messages_seq')"
     "  from generate_series(1, ($2::int[])[1])),"
     " array(select nextval('deliveries_id_seq')"
     "  from generate_series(1, ($2::int[])[2]))",
     false},
    {"bulk_insert", S_INSERT_PUBLISHES, true},
    {"bulk_update",
     "update deliveries set"
     " attempts = attempts + case when id = any($1::bigint[]) then 1 else 0 end,"
     " first_sent_at = case when id = any($1::bigint[])"
     "  then coalesce(first_sent_at, now()) else first_sent_at end,"
     " state = case when id = any($2::bigint[]) and state = 'pending'"
     "  then 'acked' else state end,"
     " settled_at = case when id = any($2::bigint[]) and state = 'pending'"
     "  then now() else settled_at end,"
     " updated_at = now()"
     /* the range lets the planner see a few pages of the primary key,
        not a share of the table worth a sequential scan (ids are
        recent, and correlated with the heap's order) */
     " where id between ($3::bigint[])[1] and ($3::bigint[])[2]"
     " and (id = any($1::bigint[]) or id = any($2::bigint[]))",
     false},
};

static bool
s_prepare(PGconn *conn)
{
    for (size_t i = 0; i < sizeof(s_prepared) / sizeof(s_prepared[0]); i++) {
        if (!s_prepared[i].prepare)
            continue;
        PGresult *res = PQprepare(conn, s_prepared[i].name, s_prepared[i].sql, 0, NULL);
        bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        if (!ok)
            brk_log(BRK_LOG_ERROR, "store", "could not prepare %s: %s",
                    s_prepared[i].name, PQresultErrorMessage(res));
        PQclear(res);
        if (!ok)
            return false;
    }
    return true;
}

/* Sends one of s_prepared, whose parameters are binary arrays, ahead
   (s_send_ahead). */
static bool
s_send_arrays(s_store_t *self, s_stmt_t stmt, int n, brk_pgbin_t *arrays)
{
    const char *values[32];
    int lengths[32], formats[32];
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
    return s_send_ahead(self, S_SENT_PLAIN,
                        s_prepared[stmt].prepare ? NULL : s_prepared[stmt].sql,
                        s_prepared[stmt].prepare ? s_prepared[stmt].name : NULL, n,
                        values, lengths, formats);
}

/* The same, and its result: what was sent ahead before it is answered
   in the same round trip. NULL on failure (logged). */
static PGresult *
s_query_arrays(s_store_t *self, s_stmt_t stmt, int n, brk_pgbin_t *arrays)
{
    PGresult *res = NULL;
    return s_send_arrays(self, stmt, n, arrays) && s_collect(self, &res) ? res : NULL;
}

/* A run of publishes on its way: the rows of the three tables, one
   binary array per column, and the numbers drawn for them. */
typedef struct {
    brk_pgbin_t cols[S_NCOLS];
    bool rows;             /* some row is in cols, not sent yet */
    bool *fresh;           /* per job: neither stored already nor earlier in the run */
    uint64_t *seqs, *dids; /* messages.seq and delivery ids, in the jobs' order */
    size_t ks, kd;         /* the next of each to take */
} s_run_t;

static void
s_run_start(s_run_t *run)
{
    for (int c = 0; c < S_NCOLS; c++)
        brk_pgbin_array_start(&run->cols[c], s_col_oids[c]);
    run->rows = false;
}

/* The ids stored already, as a set. "{uuid,uuid}": uuids need no quoting. */
static void
s_stored_ids(const char *text, zhashx_t *seen)
{
    char one[MLG_UUID_LEN + 1];
    for (const char *c = text[0] == '{' ? text + 1 : text; *c && *c != '}';) {
        size_t len = strcspn(c, ",}");
        snprintf(one, sizeof(one), "%.*s", (int)len, c);
        zhashx_insert(seen, one, (void *)1);
        c += len;
        if (*c == ',')
            c++;
    }
}

/* Which ids are stored already (and the second of two alike in the run),
   with seq and delivery ids drawn in the jobs' order (a queue's first
   attempts follow seq), so that only rows sure to go in take a place in
   the audit chain. */
static bool
s_run_check(s_store_t *self, s_run_t *run, brk_job_t *const *jobs, size_t n)
{
    size_t nallow = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t d = 0; d < jobs[i]->ndecisions; d++)
            nallow += jobs[i]->decisions[d].allow;
    run->fresh = calloc(n, sizeof(bool));
    run->seqs = calloc(n, sizeof(uint64_t));
    run->dids = calloc(nallow ? nallow : 1, sizeof(uint64_t));
    zhashx_t *seen = zhashx_new();
    /* $1 the ids, $2 how many message and delivery ids to draw */
    brk_pgbin_t check[2] = {{0}, {0}};
    brk_pgbin_array_start(&check[0], BRK_OID_UUID);
    for (size_t i = 0; i < n; i++)
        brk_pgbin_uuid(&check[0], jobs[i]->msg->id);
    brk_pgbin_array_start(&check[1], BRK_OID_INT4);
    brk_pgbin_int(&check[1], n, 4);
    brk_pgbin_int(&check[1], nallow, 4);
    PGresult *res = run->fresh && run->seqs && run->dids && seen
                        ? s_query_arrays(self, S_STMT_CHECK, 2, check)
                        : NULL;
    free(check[0].p);
    free(check[1].p);
    bool ok = res != NULL;
    if (ok
        && (s_ids(PQgetvalue(res, 0, 1), run->seqs, n) != n
            || s_ids(PQgetvalue(res, 0, 2), run->dids, nallow) != nallow)) {
        brk_log(BRK_LOG_ERROR, "store", "could not draw message and delivery ids");
        ok = false;
    }
    if (ok) {
        s_stored_ids(PQgetvalue(res, 0, 0), seen);
        for (size_t i = 0; i < n; i++)
            run->fresh[i] = zhashx_insert(seen, jobs[i]->msg->id, (void *)1) == 0;
    }
    PQclear(res);
    zhashx_destroy(&seen);
    return ok;
}

/* The message's row, at the chain's next position. */
static void
s_run_message(s_store_t *self, s_run_t *run, brk_job_t *job)
{
    const mlg_msg_t *m = job->msg;
    job->seq = run->seqs[run->ks++];
    s_msg_fields_t mf;
    s_msg_fields(self, job, &mf);
    uint8_t body_hash[BRK_LINK_BYTES], link[BRK_LINK_BYTES];
    brk_chain_body_hash(m->body, m->body_len, body_hash);
    brk_chain_message(self->link, mf.f, body_hash, link);
    brk_pgbin_t *cols = run->cols;
    brk_pgbin_int(&cols[S_M_SEQ], job->seq, 8);
    brk_pgbin_uuid(&cols[S_M_ID], m->id);
    brk_pgbin_text(&cols[S_M_TYPE], m->type);
    brk_pgbin_int(&cols[S_M_VERSION], (uint32_t)m->version, 4);
    brk_pgbin_text(&cols[S_M_SENDER], job->sender);
    brk_pgbin_text(&cols[S_M_SUBJECT], mf.f[5]);
    brk_pgbin_text(&cols[S_M_PURPOSE], mf.f[6]);
    brk_pgbin_text(&cols[S_M_CORRELATION], mf.f[7]);
    if (m->has_occurred_at)
        brk_pgbin_time(&cols[S_M_OCCURRED], s_time_us(m->occurred_at));
    else
        brk_pgbin_null(&cols[S_M_OCCURRED]);
    brk_pgbin_time(&cols[S_M_RECEIVED], job->received_us);
    brk_pgbin_bytes(&cols[S_M_BODY], m->body, m->body_len);
    brk_pgbin_int(&cols[S_M_CHAIN_SEQ], self->chain_seq + 1, 8);
    brk_pgbin_bytes(&cols[S_M_BODY_HASH], body_hash, BRK_LINK_BYTES);
    brk_pgbin_bytes(&cols[S_M_LINK], link, BRK_LINK_BYTES);
    s_chain_take(self, link);
    run->rows = true;
}

/* Its decisions, each at the chain's next position, and a delivery for
   each allow. */
static bool
s_run_decisions(s_store_t *self, s_run_t *run, brk_job_t *job)
{
    const mlg_msg_t *m = job->msg;
    brk_pgbin_t *cols = run->cols;
    char received[24];
    snprintf(received, sizeof(received), "%lld", (long long)job->received_us);
    free(job->delivery_ids);
    job->delivery_ids = calloc(job->ndecisions ? job->ndecisions : 1, sizeof(uint64_t));
    if (!job->delivery_ids)
        return false;
    for (size_t d = 0; d < job->ndecisions; d++) {
        const brk_decision_t *dec = &job->decisions[d];
        char dseq[24];
        uint8_t dlink[BRK_LINK_BYTES];
        s_decision_link(self, job, dec, dseq, received, dlink);
        brk_pgbin_uuid(&cols[S_D_MESSAGE], m->id);
        brk_pgbin_text(&cols[S_D_RECIPIENT], dec->recipient);
        brk_pgbin_text(&cols[S_D_DECISION], dec->allow ? "allow" : "deny");
        brk_pgbin_text(&cols[S_D_BASIS], mlg_basis_name(dec->basis));
        brk_pgbin_text(&cols[S_D_REASON], dec->reason[0] ? dec->reason : NULL);
        brk_pgbin_time(&cols[S_D_DECIDED], job->received_us);
        brk_pgbin_uuid(&cols[S_D_CONSENT], dec->consent_id);
        brk_pgbin_text(&cols[S_D_DETAIL], dec->detail[0] ? dec->detail : NULL);
        brk_pgbin_int(&cols[S_D_CHAIN_SEQ], self->chain_seq + 1, 8);
        brk_pgbin_bytes(&cols[S_D_LINK], dlink, BRK_LINK_BYTES);
        s_chain_take(self, dlink);
        if (dec->allow) {
            job->delivery_ids[d] = run->dids[run->kd++];
            job->created_deliveries = true;
            brk_pgbin_int(&cols[S_V_ID], job->delivery_ids[d], 8);
            brk_pgbin_uuid(&cols[S_V_MESSAGE], m->id);
            brk_pgbin_text(&cols[S_V_RECIPIENT], dec->recipient);
        }
        run->rows = true;
    }
    return true;
}

/* The rows so far, in one statement sent ahead (its answer comes with
   the COMMIT's, or with the next statement that needs one). */
static bool
s_run_send(s_store_t *self, s_run_t *run)
{
    if (!run->rows)
        return true;
    bool ok = s_send_arrays(self, S_STMT_INSERT, S_NCOLS, run->cols);
    s_run_start(run);
    return ok;
}

/* Publishes, in order: the one write path for messages (a single
   publish is a run of one). Plain ones go in with one statement for the
   three tables; a consent event's own step (s_consent_step) keeps its
   place between its message and its decisions, the rows before it sent
   first. Jobs whose ids are stored already are answered as duplicates
   afterwards. false on a database error: then nothing of the
   transaction stays. */
static bool
s_publish_run(s_store_t *self, brk_job_t *const *jobs, size_t n)
{
    s_run_t run;
    memset(&run, 0, sizeof(run));
    bool ok = s_run_check(self, &run, jobs, n);
    if (ok)
        s_run_start(&run);
    for (size_t i = 0; ok && i < n; i++) {
        if (!run.fresh[i])
            continue;
        s_run_message(self, &run, jobs[i]);
        if (jobs[i]->kind != BRK_JOB_PLAIN)
            ok = s_run_send(self, &run) && s_consent_step(self, jobs[i]);
        ok = ok && s_run_decisions(self, &run, jobs[i]);
        if (ok)
            jobs[i]->rc = MLG_OK;
    }
    ok = ok && s_run_send(self, &run);
    for (size_t i = 0; ok && i < n; i++)
        if (!run.fresh[i])
            ok = s_duplicate(self, jobs[i]);
    for (int c = 0; c < S_NCOLS; c++)
        free(run.cols[c].p);
    free(run.fresh);
    free(run.seqs);
    free(run.dids);
    return ok;
}

/* SENT and ACK updates, in order, with one UPDATE: a delivery sent and
   acked in the same transaction is written once. They commute with
   each other (an ACK settles, a SENT counts) and with new publishes
   (other rows); a requeue, which is not one of them, ends the run, so a
   delivery is sent at most once in it. */
static bool
s_update_bulk(s_store_t *self, brk_update_t *const *ups, size_t n)
{
    brk_pgbin_t arrays[3];
    memset(arrays, 0, sizeof(arrays));
    brk_pgbin_array_start(&arrays[0], BRK_OID_INT8);
    brk_pgbin_array_start(&arrays[1], BRK_OID_INT8);
    brk_pgbin_array_start(&arrays[2], BRK_OID_INT8);
    uint64_t lo = UINT64_MAX, hi = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t id = ups[i]->delivery;
        brk_pgbin_int(&arrays[ups[i]->kind == BRK_UPDATE_SENT ? 0 : 1], id, 8);
        lo = id < lo ? id : lo;
        hi = id > hi ? id : hi;
    }
    brk_pgbin_int(&arrays[2], lo, 8);
    brk_pgbin_int(&arrays[2], hi, 8);
    /* sent ahead: its answer comes with the COMMIT's */
    bool ok = s_send_arrays(self, S_STMT_UPDATE, 3, arrays);
    free(arrays[0].p);
    free(arrays[1].p);
    free(arrays[2].p);
    return ok;
}

/* ---- the agencies table ------------------------------------------------ */

/* The registry as the configuration has it (DESIGN.md "Database"): rows
   upserted, agencies no longer configured removed. */
static void
s_write_agencies(s_store_t *self)
{
    if (!self->conn || !self->agencies || !self->agencies_dirty)
        return;
    const char *params[1] = {self->agencies};
    PGresult *r = PQexecParams(
        self->conn,
        "with cfg as (select * from json_to_recordset($1::json) as x(id text, name text,"
        " public_keys text[], publish text[], subscribe text[])),"
        " gone as (delete from agencies where id not in (select id from cfg))"
        " insert into agencies (id, name, public_keys, publish, subscribe, updated_at)"
        " select id, name, public_keys, publish, subscribe, now() from cfg"
        " on conflict (id) do update set name = excluded.name,"
        " public_keys = excluded.public_keys, publish = excluded.publish,"
        " subscribe = excluded.subscribe, updated_at = now()"
        " where (agencies.name, agencies.public_keys, agencies.publish, "
        "agencies.subscribe)"
        " is distinct from (excluded.name, excluded.public_keys, excluded.publish,"
        " excluded.subscribe)",
        1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) == PGRES_COMMAND_OK)
        self->agencies_dirty = false;
    else
        brk_log(BRK_LOG_WARNING, "store", "could not write the agencies table: %s",
                PQresultErrorMessage(r));
    PQclear(r);
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

   In order: a batch runs only when nothing is held (s_run_batch), so a
   FETCH never reads a queue before the updates sent ahead of it are
   written, and the updates of a batch that fails become the first held.

   Exactly once: a transaction that writes updates moves store_mark from
   the number this store last read to the next, and fails if another
   writer moved it first. When the connection is lost after its BEGIN,
   whether its COMMIT got through is not known; the next connection reads
   the mark before it writes anything (s_read_mark): moved, it committed,
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

static const char *
s_update_name(brk_update_kind_t kind)
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
static void
s_held_drop(s_store_t *self, size_t n)
{
    assert(n <= self->nheld);
    if (n == 0)
        return;
    for (size_t i = 0; i < n; i++)
        brk_update_destroy(&self->held[i].update);
    /* O(held) per batch of S_MAX_BATCH: only after an outage */
    memmove(self->held, self->held + n, (self->nheld - n) * sizeof(s_cmd_t));
    self->nheld -= n;
    self->ndoubt = self->ndoubt > n ? self->ndoubt - n : 0;
}

/* Holds an update the database has not taken, after those held already.
   Takes responsibility over the command's update. */
static void
s_hold(s_store_t *self, s_cmd_t *cmd)
{
    if (self->nheld == self->held_cap && self->held_cap < S_MAX_HELD) {
        size_t cap = self->held_cap ? self->held_cap * 2 : 1024;
        cap = cap > S_MAX_HELD ? S_MAX_HELD : cap;
        s_cmd_t *held = realloc(self->held, cap * sizeof(s_cmd_t));
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
                    s_update_name(u->kind), (unsigned long long)u->delivery, self->nheld);
        brk_update_destroy(&cmd->update);
        return;
    }
    self->held[self->nheld++] = *cmd;
    cmd->update = NULL;
}

/* store_mark as the database has it (on each new connection, or after
   another writer moved it). Settles the transaction in doubt, if any. */
static bool
s_read_mark(s_store_t *self, PGconn *conn)
{
    PGresult *res = PQexec(conn, "select batch from store_mark where id = 1");
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
            s_held_drop(self, self->ndoubt);
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
static bool
s_mark(s_store_t *self)
{
    char next[24], old[24];
    snprintf(next, sizeof(next), "%llu", (unsigned long long)self->mark + 1);
    snprintf(old, sizeof(old), "%llu", (unsigned long long)self->mark);
    const char *v[2] = {next, old};
    return s_send_ahead(
        self, S_SENT_MARK,
        "with m as (update store_mark set batch = $1 where id = 1 and batch = $2"
        " returning 1)"
        " select (case when count(*) = 1 then '1'"
        " else 'store_mark was moved by another writer' end)::int from m",
        NULL, 2, v, NULL, NULL);
}

/* ---- the batch -------------------------------------------------------- */

/* A command's answer: publishes and reads go back to the loop; an update
   is freed once written, and held otherwise. */
static void
s_answer(s_store_t *self, zsock_t *pipe, s_cmd_t *cmd, bool committed)
{
    switch (cmd->op) {
    case S_CMD_PUBLISH:
        if (!committed) {
            cmd->job->rc = MLG_UNAVAILABLE;
            cmd->job->duplicate = false;
            cmd->job->created_deliveries = false;
            free(cmd->job->delivery_ids);
            cmd->job->delivery_ids = NULL;
        }
        s_report(pipe, (brk_store_report_t){.kind = BRK_STORE_DONE, .job = cmd->job});
        break;
    case S_CMD_FETCH:
        cmd->fetch->ok = committed;
        s_report(pipe,
                 (brk_store_report_t){.kind = BRK_STORE_FETCHED, .fetch = cmd->fetch});
        break;
    case S_CMD_UPDATE:
        if (committed)
            brk_update_destroy(&cmd->update);
        else
            s_hold(self, cmd);
        break;
    case S_CMD_AGENCIES:
        assert(false); /* never in a batch: written as it comes */
        break;
    }
}

/* Which run of like commands this one joins: 1 publishes, 2 SENT and
   ACK updates, 0 none (it keeps its place). */
static int
s_bulk_kind(const s_cmd_t *cmd)
{
    switch (cmd->op) {
    case S_CMD_PUBLISH: return 1;
    case S_CMD_UPDATE:
        return cmd->update->kind == BRK_UPDATE_SENT || cmd->update->kind == BRK_UPDATE_ACK
                   ? 2
                   : 0;
    case S_CMD_FETCH:
    case S_CMD_AGENCIES: return 0;
    }
    return 0;
}

/* Runs the commands in one transaction; true when it committed. The
   commands stay the caller's. When the connection is lost after BEGIN
   with updates in the transaction, its outcome is in doubt: those
   updates must be the first held (or about to be), and the next
   connection settles it (s_read_mark). */
static bool
s_transact(s_store_t *self, zsock_t *pipe, s_cmd_t *cmds, size_t n)
{
    brk_job_t **jobs = calloc(n, sizeof(*jobs));
    brk_update_t **ups = calloc(n, sizeof(*ups));
    size_t njobs = 0, nups = 0, nupdates = 0;
    for (size_t i = 0; i < n; i++)
        nupdates += cmds[i].op == S_CMD_UPDATE;
    bool ok = jobs && ups && s_connect(self, pipe);
    bool begun = false;
    int64_t began = zclock_usecs();
    self->batch_chain_seq = self->chain_seq;
    memcpy(self->batch_link, self->link, BRK_LINK_BYTES);
    if (ok)
        ok = begun = s_send_ahead(self, S_SENT_PLAIN, "begin", NULL, 0, NULL, NULL, NULL);
    for (size_t i = 0; ok && i <= n; i++) {
        int kind = i < n ? s_bulk_kind(&cmds[i]) : 0;
        if (kind == 1) {
            jobs[njobs++] = cmds[i].job;
            continue;
        }
        if (kind == 2) {
            ups[nups++] = cmds[i].update;
            continue;
        }
        /* anything else keeps its place: the runs before it go first */
        if (njobs)
            ok = s_publish_run(self, jobs, njobs);
        if (ok && nups)
            ok = s_update_bulk(self, ups, nups);
        njobs = nups = 0;
        if (!ok || i == n)
            break;
        switch (cmds[i].op) {
        case S_CMD_PUBLISH: assert(false); break; /* in a run */
        case S_CMD_FETCH: ok = s_fetch(self, cmds[i].fetch); break;
        case S_CMD_UPDATE: ok = s_update(self, cmds[i].update); break;
        case S_CMD_AGENCIES: assert(false); break;
        }
    }
    free(jobs);
    free(ups);
    if (ok && self->chain_seq != self->batch_chain_seq)
        ok = s_chain_head(self);
    if (ok && nupdates)
        ok = s_mark(self);
    if (ok)
        ok = s_send_ahead(self, S_SENT_COMMIT, "commit", NULL, 0, NULL, NULL, NULL)
             && s_collect(self, NULL);
    else if (self->conn && s_piped(self))
        s_collect(self, NULL); /* what was sent before the failure */
    if (!ok) {
        /* nothing of the batch was kept: neither are its links */
        self->chain_seq = self->batch_chain_seq;
        memcpy(self->link, self->batch_link, BRK_LINK_BYTES);
    }
    if (ok) {
        brk_metrics_commit_seconds((double)(zclock_usecs() - began) / 1e6);
        if (nupdates)
            self->mark++;
    }
    if (!ok && self->conn) {
        if (PQstatus(self->conn) != CONNECTION_OK || self->broken) {
            s_disconnect(self, pipe);
            if (begun && nupdates) {
                assert(self->ndoubt == 0); /* settled when this connection began */
                self->ndoubt = nupdates;
            }
        }
        else {
            PQclear(PQexec(self->conn, "rollback"));
            if (self->head_stale && s_read_head(self, self->conn))
                self->head_stale = false;
            if (self->mark_stale && s_read_mark(self, self->conn))
                self->mark_stale = false;
        }
    }
    return ok;
}

/* The first n held updates in a transaction, tried twice while the
   connection stands: a first failure may be another writer's (the mark
   or the chain's head moved, read again since). */
static bool
s_try_held(s_store_t *self, zsock_t *pipe, size_t n)
{
    for (int tries = 0; tries < 2 && self->conn; tries++)
        if (s_transact(self, pipe, self->held, n))
            return true;
    return false;
}

/* Writes the held updates, oldest first, S_MAX_BATCH to a transaction.
   True when none is left; false when the database is away. */
static bool
s_flush_held(s_store_t *self, zsock_t *pipe)
{
    while (self->nheld) {
        /* connected first: a new connection may find some of them
           written already (s_read_mark) */
        if (!s_connect(self, pipe))
            return false;
        if (!self->nheld)
            break;
        size_t n = self->nheld < S_MAX_BATCH ? self->nheld : S_MAX_BATCH;
        if (s_try_held(self, pipe, n)) {
            s_held_drop(self, n);
            continue;
        }
        if (!self->conn)
            return false;
        /* refused with the connection up: one at a time, so that an
           update the database will never take does not hold the others
           back for ever */
        for (size_t i = 0; i < n; i++) {
            if (s_try_held(self, pipe, 1)) {
                s_held_drop(self, 1);
                continue;
            }
            if (!self->conn)
                return false;
            brk_update_t *u = self->held[0].update;
            brk_log(BRK_LOG_ERROR, "store",
                    "the database refused the %s update of delivery %llu: dropped",
                    s_update_name(u->kind), (unsigned long long)u->delivery);
            s_held_drop(self, 1);
        }
    }
    if (self->dropped) {
        brk_log(BRK_LOG_ERROR, "store",
                "%zu update(s) were dropped while the database was away: their "
                "deliveries stay pending there",
                self->dropped);
        self->dropped = 0;
    }
    return true;
}

/* A batch from the loop: after the held updates, in a transaction of its
   own; everything of it is answered. */
static void
s_run_batch(s_store_t *self, zsock_t *pipe, s_cmd_t *cmds, size_t n)
{
    bool ok = s_flush_held(self, pipe) && s_transact(self, pipe, cmds, n);
    for (size_t i = 0; i < n; i++) {
        if (!ok && cmds[i].op == S_CMD_FETCH) {
            /* rows read in a failed transaction are not handed out */
            brk_fetch_t *f = cmds[i].fetch;
            for (size_t k = 0; k < f->nrows; k++)
                brk_delivery_destroy(&f->rows[k]);
            f->nrows = 0;
        }
        s_answer(self, pipe, &cmds[i], ok);
    }
}

/* Dead letters replayed by an operator: tell the loop which queues to
   read again from the start. */
static void
s_check_notifies(s_store_t *self, zsock_t *pipe)
{
    if (!self->conn)
        return;
    if (!PQconsumeInput(self->conn)) {
        s_disconnect(self, pipe);
        return;
    }
    PGnotify *n;
    while ((n = PQnotifies(self->conn))) {
        if (n->extra && n->extra[0])
            s_report(pipe, (brk_store_report_t){.kind = BRK_STORE_REPLAY,
                                                .agency = strdup(n->extra)});
        PQfreemem(n);
    }
}

static void
s_actor(zsock_t *pipe, void *args)
{
    s_store_t *self = args;
    zsock_signal(pipe, 0);
    s_cmd_t *cmds = calloc(S_MAX_BATCH, sizeof(s_cmd_t));
    zpoller_t *poller = zpoller_new(pipe, NULL);
    bool terminated = false;
    while (!terminated) {
        /* while disconnected, wake up to retry */
        /* idle: look for notifications twice a second, or reconnect */
        void *which = zpoller_wait(poller, self->conn ? 500 : S_BACKOFF_MIN_MS);
        if (!which) {
            if (zpoller_terminated(poller))
                break;
            if (self->conn)
                s_check_notifies(self, pipe);
            else
                s_connect(self, pipe);
            if (self->conn && self->nheld)
                s_flush_held(self, pipe); /* nothing else may come to write them */
            continue;
        }
        size_t n = 0;
        while (n < S_MAX_BATCH && (n == 0 || (zsock_events(pipe) & ZMQ_POLLIN))) {
            int got = s_recv_cmd(pipe, &cmds[n]);
            if (got < 0) {
                terminated = true;
                break;
            }
            if (got == 0)
                continue;
            if (cmds[n].op != S_CMD_AGENCIES) {
                n++;
                continue;
            }
            free(self->agencies);
            self->agencies = cmds[n].agencies;
            self->agencies_dirty = true;
            s_write_agencies(self);
            if (!(zsock_events(pipe) & ZMQ_POLLIN))
                break; /* nothing else waiting: do not block for more */
        }
        if (n)
            s_run_batch(self, pipe, cmds, n);
        s_check_notifies(self, pipe);
    }
    zpoller_destroy(&poller);
    free(cmds);
    /* on the way out, one more try while the connection stands; not a new
       connection, which could hold the broker's exit for a long time */
    if (self->conn && self->nheld)
        s_flush_held(self, pipe);
    if (self->nheld)
        brk_log(BRK_LOG_ERROR, "store",
                "stopping with %zu delivery update(s) not written: their deliveries are "
                "pending in the database and will be delivered again",
                self->nheld);
    s_held_drop(self, self->nheld);
    free(self->held);
    if (self->conn)
        PQfinish(self->conn);
    free(self->database);
    free(self->sql_dir);
    free(self->agencies);
    free(self);
}

zactor_t *
brk_store_new(const char *database, const char *sql_dir)
{
    if (brk_chain_init() != 0) {
        brk_log(BRK_LOG_ERROR, "store", "libsodium could not start");
        return NULL;
    }
    s_store_t *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    self->database = strdup(database);
    self->sql_dir = strdup(sql_dir);
    self->backoff_ms = S_BACKOFF_MIN_MS;
    if (!self->database || !self->sql_dir) {
        free(self->database);
        free(self->sql_dir);
        free(self);
        return NULL;
    }
    return zactor_new(s_actor, self);
}
