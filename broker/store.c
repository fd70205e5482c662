/*  store.c: the store thread (see store.h for its protocol).

    One loop: wait for a command, take every other command already
    waiting (up to S_MAX_BATCH), run them all in one transaction, commit,
    answer. When the connection is lost, the batch in hand is answered
    UNAVAILABLE (nothing of it is known to be stored), and the store
    reconnects with a growing delay, answering UNAVAILABLE meanwhile.

    Not done here: deciding anything. The loop decided routing and
    consent; the store writes what it is given, and reads queues. */

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "migrate.h"
#include "store.h"

#define S_MAX_BATCH 1000
#define S_BACKOFF_MIN_MS 100
#define S_BACKOFF_MAX_MS 5000

typedef struct {
    char *database;
    char *sql_dir;
    PGconn *conn;
    int backoff_ms;
    int64_t next_try_ms;
    bool told_up; /* last state told to the loop */
    bool told_once;
} s_store_t;

void
brk_job_destroy(brk_job_t **job_p)
{
    brk_job_t *job = *job_p;
    if (!job)
        return;
    mlg_msg_destroy(&job->msg);
    free(job->decisions);
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

/* ---- connection ------------------------------------------------------ */

static void
s_tell(s_store_t *self, zsock_t *pipe, bool up)
{
    if (self->told_once && self->told_up == up)
        return;
    self->told_once = true;
    self->told_up = up;
    zsock_send(pipe, "s", up ? "DB-UP" : "DB-DOWN");
}

static void
s_disconnect(s_store_t *self, zsock_t *pipe)
{
    if (self->conn) {
        PQfinish(self->conn);
        self->conn = NULL;
        brk_log(BRK_LOG_WARNING, "store", "database connection lost");
    }
    self->next_try_ms = zclock_mono() + self->backoff_ms;
    self->backoff_ms =
        self->backoff_ms * 2 > S_BACKOFF_MAX_MS ? S_BACKOFF_MAX_MS : self->backoff_ms * 2;
    s_tell(self, pipe, false);
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
    self->conn = conn;
    self->backoff_ms = S_BACKOFF_MIN_MS;
    brk_log(BRK_LOG_INFO, "store", "database connected");
    s_tell(self, pipe, true);
    return true;
}

/* ---- statements ------------------------------------------------------- */

/* Runs one statement; NULL (and the reason logged) on failure. */
static PGresult *
s_query(s_store_t *self, const char *sql, int n, const char *const *values)
{
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

/* Inserts a new message, its deliveries and its decisions; or finds it
   stored already. false on a database error. */
static bool
s_publish(s_store_t *self, brk_job_t *job)
{
    mlg_msg_t *m = job->msg;
    char version[24], occurred[24], received[24];
    snprintf(version, sizeof(version), "%llu", (unsigned long long)m->version);
    snprintf(occurred, sizeof(occurred), "%lld", (long long)s_time_us(m->occurred_at));
    snprintf(received, sizeof(received), "%lld", (long long)job->received_us);
    /* the body goes as bytea in hex text form */
    size_t hexlen = 2 + m->body_len * 2 + 1;
    char *hex = malloc(hexlen);
    if (!hex)
        return false;
    static const char digits[] = "0123456789abcdef";
    hex[0] = '\\';
    hex[1] = 'x';
    for (size_t i = 0; i < m->body_len; i++) {
        hex[2 + 2 * i] = digits[m->body[i] >> 4];
        hex[3 + 2 * i] = digits[m->body[i] & 15];
    }
    hex[hexlen - 1] = '\0';
    const char *values[10] = {
        m->id,
        m->type,
        version,
        job->sender,
        m->subject[0] ? m->subject : NULL,
        m->purpose[0] ? m->purpose : NULL,
        m->correlation[0] ? m->correlation : NULL,
        m->has_occurred_at ? occurred : NULL,
        received,
        hex,
    };
    PGresult *res = s_query(
        self,
        "insert into messages (id, type, version, sender, subject, purpose, correlation,"
        " occurred_at, received_at, body) values ($1, $2, $3, $4, $5, $6, $7,"
        " case when $8::bigint is null then null else"
        " 'epoch'::timestamptz + $8::bigint * interval '1 microsecond' end,"
        " 'epoch'::timestamptz + $9::bigint * interval '1 microsecond', $10::bytea)"
        " on conflict (id) do nothing returning seq",
        10, values);
    free(hex);
    if (!res)
        return false;
    bool inserted = PQntuples(res) == 1;
    if (inserted)
        job->seq = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    if (!inserted) {
        const char *id[1] = {m->id};
        res = s_query(self, "select seq, sender from messages where id = $1", 1, id);
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
            snprintf(job->decisions[i].recipient, sizeof(job->decisions[i].recipient),
                     "%s", PQgetvalue(res, (int)i, 0));
            job->decisions[i].allow = PQgetvalue(res, (int)i, 1)[0] == 't';
            snprintf(job->decisions[i].reason, sizeof(job->decisions[i].reason), "%s",
                     PQgetvalue(res, (int)i, 2));
        }
        PQclear(res);
        job->rc = job->decisions ? MLG_OK : MLG_UNAVAILABLE;
        return true;
    }
    for (size_t i = 0; i < job->ndecisions; i++) {
        const brk_decision_t *d = &job->decisions[i];
        const char *dv[6] = {m->id,
                             d->recipient,
                             d->allow ? "allow" : "deny",
                             mlg_basis_name(d->basis),
                             d->reason[0] ? d->reason : NULL,
                             received};
        if (!s_exec(
                self,
                "insert into consent_decisions (message_id, recipient, decision, basis,"
                " reason, decided_at) values ($1, $2, $3, $4, $5,"
                " 'epoch'::timestamptz + $6::bigint * interval '1 microsecond')",
                6, dv))
            return false;
        if (d->allow) {
            const char *del[2] = {m->id, d->recipient};
            if (!s_exec(self,
                        "insert into deliveries (message_id, recipient) values ($1, $2)",
                        2, del))
                return false;
            job->created_deliveries = true;
        }
    }
    job->rc = MLG_OK;
    return true;
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
        " (extract(epoch from m.received_at) * 1000000)::bigint, m.body"
        " from deliveries d join messages m on m.id = d.message_id"
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
s_update(s_store_t *self, const brk_update_t *u)
{
    char id[24], attempt[24];
    snprintf(id, sizeof(id), "%llu", (unsigned long long)u->delivery);
    snprintf(attempt, sizeof(attempt), "%llu", (unsigned long long)u->attempt);
    const char *one[1] = {id};
    const char *ev[5] = {id, attempt, NULL, u->reason[0] ? u->reason : NULL, u->actor};
    switch (u->kind) {
    case BRK_UPDATE_SENT:
        return s_exec(self,
                      "update deliveries set attempts = attempts + 1, first_sent_at ="
                      " coalesce(first_sent_at, now()), updated_at = now() where id = $1",
                      1, one);
    case BRK_UPDATE_ACK:
        return s_exec(self,
                      "update deliveries set state = 'acked', settled_at = now(),"
                      " updated_at = now() where id = $1 and state = 'pending'",
                      1, one);
    case BRK_UPDATE_NACK: ev[2] = "nack"; break;
    case BRK_UPDATE_REQUEUED: ev[2] = "requeued"; break;
    case BRK_UPDATE_DEAD: ev[2] = "dead"; break;
    }
    if (!s_exec(self,
                "insert into delivery_events (delivery_id, attempt, event, reason, actor)"
                " values ($1, $2, $3, $4, $5)",
                5, ev))
        return false;
    const char *le[2] = {id, u->reason[0] ? u->reason : NULL};
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

/* ---- the batch -------------------------------------------------------- */

typedef struct {
    char *verb;
    void *ptr;
} s_cmd_t;

static void
s_answer(zsock_t *pipe, s_cmd_t *cmd, bool committed)
{
    if (strcmp(cmd->verb, "PUBLISH") == 0) {
        brk_job_t *job = cmd->ptr;
        if (!committed) {
            job->rc = MLG_UNAVAILABLE;
            job->duplicate = false;
            job->created_deliveries = false;
        }
        zsock_send(pipe, "sp", "DONE", job);
    }
    else if (strcmp(cmd->verb, "FETCH") == 0) {
        brk_fetch_t *f = cmd->ptr;
        f->ok = committed;
        zsock_send(pipe, "sp", "FETCHED", f);
    }
    else {
        brk_update_t *u = cmd->ptr;
        free(u);
    }
    zstr_free(&cmd->verb);
}

static void
s_run_batch(s_store_t *self, zsock_t *pipe, s_cmd_t *cmds, size_t n)
{
    bool ok = s_connect(self, pipe);
    if (ok)
        ok = s_exec(self, "begin", 0, NULL);
    for (size_t i = 0; ok && i < n; i++) {
        if (strcmp(cmds[i].verb, "PUBLISH") == 0)
            ok = s_publish(self, cmds[i].ptr);
        else if (strcmp(cmds[i].verb, "FETCH") == 0)
            ok = s_fetch(self, cmds[i].ptr);
        else
            ok = s_update(self, cmds[i].ptr);
    }
    if (ok)
        ok = s_exec(self, "commit", 0, NULL);
    if (!ok && self->conn) {
        if (PQstatus(self->conn) != CONNECTION_OK)
            s_disconnect(self, pipe);
        else
            PQclear(PQexec(self->conn, "rollback"));
    }
    for (size_t i = 0; i < n; i++) {
        if (!ok && strcmp(cmds[i].verb, "FETCH") == 0) {
            /* rows read in a failed transaction are not handed out */
            brk_fetch_t *f = cmds[i].ptr;
            for (size_t k = 0; k < f->nrows; k++)
                brk_delivery_destroy(&f->rows[k]);
            f->nrows = 0;
        }
        s_answer(pipe, &cmds[i], ok);
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
        void *which = zpoller_wait(poller, self->conn ? -1 : S_BACKOFF_MIN_MS);
        if (!which) {
            if (zpoller_terminated(poller))
                break;
            s_connect(self, pipe);
            continue;
        }
        size_t n = 0;
        while (n < S_MAX_BATCH && (n == 0 || (zsock_events(pipe) & ZMQ_POLLIN))) {
            char *verb = NULL;
            void *ptr = NULL;
            if (zsock_recv(pipe, "sp", &verb, &ptr) != 0 || !verb) {
                terminated = true;
                break;
            }
            if (streq(verb, "$TERM")) {
                zstr_free(&verb);
                terminated = true;
                break;
            }
            cmds[n].verb = verb;
            cmds[n].ptr = ptr;
            n++;
        }
        if (n)
            s_run_batch(self, pipe, cmds, n);
    }
    zpoller_destroy(&poller);
    free(cmds);
    if (self->conn)
        PQfinish(self->conn);
    free(self->database);
    free(self->sql_dir);
    free(self);
}

zactor_t *
brk_store_new(const char *database, const char *sql_dir)
{
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
