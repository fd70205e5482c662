/*  sql.c: the `sql` plugin of maillage-adapter: outbox and inbox tables
    in an agency's own PostgreSQL database (not the broker's).

    plugin
        database = "postgresql://legacy@db.agency.local/legacy"
        outbox
            table = maillage_outbox       # empty or absent: publish nothing
            # column names, when the table's differ (defaults shown):
            # seq = seq  id = id  type = type  version = version
            # recipients = recipients  subject = subject  purpose = purpose
            # correlation = correlation  occurred_at = occurred_at  body = body
            # sent_at = sent_at  broker_seq = broker_seq
            # error_code = error_code  error_reason = error_reason
        inbox
            table = maillage_inbox        # empty or absent: take no deliveries
            # id type version sender subject purpose correlation
            # occurred_at received_at body, as above

    Out: the legacy system inserts a row in the outbox in the same
    transaction as its own change. The plugin publishes each row that is
    neither sent nor refused, in `seq` order, and sets sent_at and
    broker_seq only after the broker's CONFIRM; a refused row gets
    error_code and error_reason and is not tried again. The row's id is the
    message id, so a row published again after a crash is answered
    CONFIRM duplicate. Rows are read again from the start whenever a poll
    finds fewer than it may take, so a row whose transaction committed
    late (a smaller seq) is not missed.

    In: each delivery becomes one inbox row, inserted with ON CONFLICT (id)
    DO NOTHING in its own transaction; the host acks only after that
    commit, so a redelivery inserts nothing. The README gives the SQL of
    both tables and a trigger for a legacy table. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <czmq.h>
#include <jansson.h>
#include <libpq-fe.h>

#include "maillage/adapter.h"
#include "maillage/forms.h"
#include "maillage/json.h"

/* every key of the section: the host refuses any other, so a misspelt
   column name is an error at start, not a silent default */
static const char *const s_keys[] = {"database",           "outbox/table",
                                     "outbox/seq",         "outbox/id",
                                     "outbox/type",        "outbox/version",
                                     "outbox/recipients",  "outbox/subject",
                                     "outbox/purpose",     "outbox/correlation",
                                     "outbox/occurred_at", "outbox/body",
                                     "outbox/sent_at",     "outbox/broker_seq",
                                     "outbox/error_code",  "outbox/error_reason",
                                     "inbox/table",        "inbox/id",
                                     "inbox/type",         "inbox/version",
                                     "inbox/sender",       "inbox/subject",
                                     "inbox/purpose",      "inbox/correlation",
                                     "inbox/occurred_at",  "inbox/received_at",
                                     "inbox/body",         NULL};

enum {
    O_SEQ,
    O_ID,
    O_TYPE,
    O_VERSION,
    O_RECIPIENTS,
    O_SUBJECT,
    O_PURPOSE,
    O_CORRELATION,
    O_OCCURRED,
    O_BODY,
    O_SENT,
    O_BROKER_SEQ,
    O_ERR_CODE,
    O_ERR_REASON,
    O_COUNT
};
static const char *const s_out_cols[O_COUNT] = {
    "seq",     "id",         "type",        "version",     "recipients",
    "subject", "purpose",    "correlation", "occurred_at", "body",
    "sent_at", "broker_seq", "error_code",  "error_reason"};

enum {
    I_ID,
    I_TYPE,
    I_VERSION,
    I_SENDER,
    I_SUBJECT,
    I_PURPOSE,
    I_CORRELATION,
    I_OCCURRED,
    I_RECEIVED,
    I_BODY,
    I_COUNT
};
static const char *const s_in_cols[I_COUNT] = {
    "id",      "type",        "version",     "sender",      "subject",
    "purpose", "correlation", "occurred_at", "received_at", "body"};

typedef struct {
    const mlg_adapter_host_t *host;
    char *conninfo;
    PGconn *conn;
    char *sql_poll, *sql_sent, *sql_refused, *sql_insert;
    int64_t cursor;     /* the outbox's seq read up to */
    zhashx_t *inflight; /* row id -> itself */
    bool was_down;
} s_sql_t;

static void
s_log(s_sql_t *self, const char *level, const char *what)
{
    self->host->log(self->host->self, level, "%s", what);
}

/* "schema.table" or "table", each part quoted. NULL when empty. */
static char *
s_ident(PGconn *conn, const char *name)
{
    const char *dot = strchr(name, '.');
    if (!dot) {
        char *q = PQescapeIdentifier(conn, name, strlen(name));
        char *copy = q ? strdup(q) : NULL;
        PQfreemem(q);
        return copy;
    }
    char *a = PQescapeIdentifier(conn, name, (size_t)(dot - name));
    char *b = PQescapeIdentifier(conn, dot + 1, strlen(dot + 1));
    char *both = a && b ? zsys_sprintf("%s.%s", a, b) : NULL;
    PQfreemem(a);
    PQfreemem(b);
    return both;
}

/* The quoted column names of a section, from the configuration or the
   defaults; -1 with a sentence in err for an unknown key. */
static int
s_columns(s_sql_t *self, const char *section, const char *const *defaults, int count,
          char **quoted, char *err, size_t errlen)
{
    for (int i = 0; i < count; i++) {
        char key[128];
        snprintf(key, sizeof(key), "%s/%s", section, defaults[i]);
        const char *name = self->host->config(self->host->self, key);
        if (name && !*name) {
            snprintf(err, errlen, "plugin/%s: a column name cannot be empty", key);
            return -1;
        }
        char *q = PQescapeIdentifier(self->conn, name ? name : defaults[i],
                                     strlen(name ? name : defaults[i]));
        quoted[i] = q ? strdup(q) : NULL;
        PQfreemem(q);
        if (!quoted[i]) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    return 0;
}

static void
s_free_cols(char **cols, int count)
{
    for (int i = 0; i < count; i++)
        free(cols[i]);
}

static int
s_prepare(s_sql_t *self, char *err, size_t errlen)
{
    const char *outbox = self->host->config(self->host->self, "outbox/table");
    const char *inbox = self->host->config(self->host->self, "inbox/table");
    if (outbox && *outbox) {
        char *c[O_COUNT] = {0};
        char *t = s_ident(self->conn, outbox);
        if (!t || s_columns(self, "outbox", s_out_cols, O_COUNT, c, err, errlen) != 0) {
            free(t);
            s_free_cols(c, O_COUNT);
            if (!*err)
                snprintf(err, errlen, "out of memory");
            return -1;
        }
        /* text forms throughout: occurred_at in UTC with microseconds,
           recipients as JSON (an array, or a string of ids) */
        self->sql_poll = zsys_sprintf(
            "SELECT %s, %s::text, %s, %s::text, to_json(%s)::text, %s, %s, %s, "
            "to_char(%s AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "
            "%s::text "
            "FROM %s WHERE %s IS NULL AND %s IS NULL AND %s > $1 ORDER BY %s LIMIT $2",
            c[O_SEQ], c[O_ID], c[O_TYPE], c[O_VERSION], c[O_RECIPIENTS], c[O_SUBJECT],
            c[O_PURPOSE], c[O_CORRELATION], c[O_OCCURRED], c[O_BODY], t, c[O_SENT],
            c[O_ERR_CODE], c[O_SEQ], c[O_SEQ]);
        self->sql_sent = zsys_sprintf("UPDATE %s SET %s = now(), %s = $2 WHERE %s = $1",
                                      t, c[O_SENT], c[O_BROKER_SEQ], c[O_ID]);
        self->sql_refused = zsys_sprintf("UPDATE %s SET %s = $2, %s = $3 WHERE %s = $1",
                                         t, c[O_ERR_CODE], c[O_ERR_REASON], c[O_ID]);
        free(t);
        s_free_cols(c, O_COUNT);
    }
    if (inbox && *inbox) {
        char *c[I_COUNT] = {0};
        char *t = s_ident(self->conn, inbox);
        if (!t || s_columns(self, "inbox", s_in_cols, I_COUNT, c, err, errlen) != 0) {
            free(t);
            s_free_cols(c, I_COUNT);
            if (!*err)
                snprintf(err, errlen, "out of memory");
            return -1;
        }
        self->sql_insert = zsys_sprintf(
            "INSERT INTO %s (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (%s) DO "
            "NOTHING",
            t, c[I_ID], c[I_TYPE], c[I_VERSION], c[I_SENDER], c[I_SUBJECT], c[I_PURPOSE],
            c[I_CORRELATION], c[I_OCCURRED], c[I_RECEIVED], c[I_BODY], c[I_ID]);
        free(t);
        s_free_cols(c, I_COUNT);
    }
    if (!self->sql_poll && !self->sql_insert) {
        snprintf(err, errlen,
                 "neither plugin/outbox/table nor plugin/inbox/table is set");
        return -1;
    }
    return 0;
}

/* A connection that works, or false (logged once per outage). */
static bool
s_connected(s_sql_t *self)
{
    if (self->conn && PQstatus(self->conn) == CONNECTION_OK)
        return true;
    if (self->conn)
        PQreset(self->conn);
    else
        self->conn = PQconnectdb(self->conninfo);
    if (self->conn && PQstatus(self->conn) == CONNECTION_OK) {
        if (self->was_down)
            s_log(self, "info", "the agency's database is back");
        self->was_down = false;
        return true;
    }
    if (!self->was_down)
        self->host->log(self->host->self, "warn", "the agency's database is down: %s",
                        self->conn ? PQerrorMessage(self->conn) : "out of memory");
    self->was_down = true;
    return false;
}

static void
s_close(void *state)
{
    s_sql_t *self = state;
    if (!self)
        return;
    if (self->conn)
        PQfinish(self->conn);
    zhashx_destroy(&self->inflight);
    free(self->conninfo);
    free(self->sql_poll);
    free(self->sql_sent);
    free(self->sql_refused);
    free(self->sql_insert);
    free(self);
}

static mlg_adapter_rc_t
s_open_failed(s_sql_t *self, void **state, mlg_adapter_rc_t rc)
{
    s_close(self);
    *state = NULL;
    return rc;
}

static mlg_adapter_rc_t
s_open(const mlg_adapter_host_t *host, void **state, char *err, size_t errlen)
{
    const char *conninfo = host->config(host->self, "database");
    if (!conninfo || !*conninfo) {
        snprintf(err, errlen, "plugin/database is required: the agency's database URL");
        return MLG_ADAPTER_FATAL;
    }
    s_sql_t *self = calloc(1, sizeof(*self));
    if (!self) {
        snprintf(err, errlen, "out of memory");
        return MLG_ADAPTER_FATAL;
    }
    *state = self;
    self->host = host;
    self->conninfo = strdup(conninfo);
    self->inflight = zhashx_new();
    if (!self->conninfo || !self->inflight) {
        snprintf(err, errlen, "out of memory");
        return s_open_failed(self, state, MLG_ADAPTER_FATAL);
    }
    zhashx_set_destructor(self->inflight, (zhashx_destructor_fn *)zstr_free);
    zhashx_set_duplicator(self->inflight, (zhashx_duplicator_fn *)strdup);
    self->conn = PQconnectdb(self->conninfo);
    if (!self->conn || PQstatus(self->conn) != CONNECTION_OK) {
        snprintf(err, errlen, "cannot connect to the agency's database: %s",
                 self->conn ? PQerrorMessage(self->conn) : "out of memory");
        return s_open_failed(self, state, MLG_ADAPTER_RETRY); /* open() comes again */
    }
    if (s_prepare(self, err, errlen) != 0)
        return s_open_failed(self, state, MLG_ADAPTER_FATAL);
    /* the tables must be there, with the columns named */
    const char *checks[] = {self->sql_poll, self->sql_insert};
    for (int i = 0; i < 2; i++) {
        if (!checks[i])
            continue;
        PGresult *r = PQprepare(self->conn, "", checks[i], 0, NULL);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            snprintf(err, errlen, "the %s table does not fit: %s",
                     i == 0 ? "outbox" : "inbox", PQresultErrorMessage(r));
            PQclear(r);
            return s_open_failed(self, state, MLG_ADAPTER_FATAL);
        }
        PQclear(r);
    }
    return MLG_ADAPTER_OK;
}

static bool
s_exec_ok(s_sql_t *self, const char *sql, int n, const char *const *values,
          const char *what)
{
    PGresult *r = PQexecParams(self->conn, sql, n, NULL, values, NULL, NULL, 0);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        self->host->log(self->host->self, "warn", "%s: %s", what,
                        PQresultErrorMessage(r));
    PQclear(r);
    return ok;
}

/* Marks a row refused by the plugin itself (it cannot be an event). */
static void
s_refuse_row(s_sql_t *self, const char *id, const char *code, const char *reason)
{
    const char *values[3] = {id, code, reason};
    s_exec_ok(self, self->sql_refused, 3, values, "marking a refused outbox row");
    self->host->log(self->host->self, "warn", "outbox row %s refused: %s %s", id, code,
                    reason);
}

/* The JSON form of a PUBLISH from one outbox row. */
static char *
s_row_json(PGresult *r, int row, char *why, size_t whylen)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(PQgetvalue(r, row, 1)));
    json_object_set_new(o, "type", json_string(PQgetvalue(r, row, 2)));
    json_object_set_new(
        o, "version", json_integer((json_int_t)strtoll(PQgetvalue(r, row, 3), NULL, 10)));
    if (!PQgetisnull(r, row, 4)) {
        json_error_t e;
        json_t *to = json_loads(PQgetvalue(r, row, 4), 0, &e);
        if (json_is_string(to)) {
            /* "a, b c": ids separated by commas or spaces */
            json_t *list = json_array();
            char *copy = strdup(json_string_value(to)), *save = NULL;
            for (char *tok = copy ? strtok_r(copy, ", ", &save) : NULL; tok;
                 tok = strtok_r(NULL, ", ", &save))
                json_array_append_new(list, json_string(tok));
            free(copy);
            json_decref(to);
            to = list;
        }
        if (json_is_array(to) && json_array_size(to) > 0)
            json_object_set_new(o, "to", to);
        else
            json_decref(to);
    }
    const char *opt[] = {"subject", "purpose", "correlation", "occurred_at"};
    for (int i = 0; i < 4; i++)
        if (!PQgetisnull(r, row, 5 + i) && *PQgetvalue(r, row, 5 + i))
            json_object_set_new(o, opt[i], json_string(PQgetvalue(r, row, 5 + i)));
    json_error_t e;
    json_t *body = json_loads(PQgetvalue(r, row, 9), JSON_REJECT_DUPLICATES, &e);
    if (!body) {
        snprintf(why, whylen, "body: %s", e.text);
        json_decref(o);
        return NULL;
    }
    json_object_set_new(o, "body", body);
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!text)
        snprintf(why, whylen, "out of memory");
    return text;
}

static mlg_adapter_rc_t
s_poll(void *state, size_t max, mlg_msg_t **events, void **tags, size_t *n)
{
    s_sql_t *self = state;
    *n = 0;
    if (!self->sql_poll)
        return MLG_ADAPTER_OK;
    if (!s_connected(self))
        return MLG_ADAPTER_RETRY;
    char cursor[32], limit[32];
    snprintf(cursor, sizeof(cursor), "%lld", (long long)self->cursor);
    /* the rows in flight come back too: ask for enough */
    snprintf(limit, sizeof(limit), "%zu", max + zhashx_size(self->inflight));
    const char *values[2] = {cursor, limit};
    PGresult *r =
        PQexecParams(self->conn, self->sql_poll, 2, NULL, values, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        self->host->log(self->host->self, "warn", "reading the outbox: %s",
                        PQresultErrorMessage(r));
        PQclear(r);
        return MLG_ADAPTER_RETRY;
    }
    int rows = PQntuples(r);
    size_t fresh = 0;
    for (int i = 0; i < rows && *n < max; i++) {
        const char *id = PQgetvalue(r, i, 1);
        self->cursor = strtoll(PQgetvalue(r, i, 0), NULL, 10);
        if (zhashx_lookup(self->inflight, id))
            continue;
        fresh++;
        char why[512] = "";
        char *text = s_row_json(r, i, why, sizeof(why));
        mlg_msg_t *msg = NULL;
        mlg_error_t err;
        bool converted = text != NULL;
        mlg_rc_t rc = converted ? mlg_publish_from_json(text, strlen(text), &msg, &err)
                                : MLG_ERR_JSON;
        free(text);
        if (rc != MLG_OK) {
            const char *code = mlg_rc_wire(rc);
            s_refuse_row(self, id, code ? code : "MALFORMED",
                         converted ? err.reason : why);
            continue;
        }
        zhashx_insert(self->inflight, id, (void *)id);
        events[*n] = msg;
        tags[*n] = zhashx_lookup(self->inflight, id);
        (*n)++;
    }
    PQclear(r);
    /* fewer than asked for: start again from the beginning next time, for
       rows whose transaction committed after a later one's */
    if (fresh < max)
        self->cursor = 0;
    return MLG_ADAPTER_OK;
}

static mlg_adapter_rc_t
s_outcome(void *state, void *tag, const mlg_adapter_outcome_t *out)
{
    s_sql_t *self = state;
    const char *id = tag;
    bool ok = s_connected(self);
    if (ok && out->confirmed) {
        char seq[32];
        snprintf(seq, sizeof(seq), "%llu", (unsigned long long)out->seq);
        const char *values[2] = {id, seq};
        ok = s_exec_ok(self, self->sql_sent, 2, values, "marking an outbox row sent");
    }
    else if (ok) {
        const char *values[3] = {id, out->code ? out->code : "",
                                 out->reason ? out->reason : ""};
        ok = s_exec_ok(self, self->sql_refused, 3, values,
                       "marking an outbox row refused");
    }
    zhashx_delete(self->inflight, id); /* frees the tag; read again if not marked */
    if (!ok)
        self->cursor = 0;
    return ok ? MLG_ADAPTER_OK : MLG_ADAPTER_RETRY;
}

static mlg_adapter_rc_t
s_deliver(void *state, const mlg_msg_t *msg, char *err, size_t errlen)
{
    s_sql_t *self = state;
    if (!self->sql_insert) {
        snprintf(err, errlen, "this adapter has no inbox (plugin/inbox/table)");
        return MLG_ADAPTER_REFUSE;
    }
    char *body = NULL;
    mlg_rc_t rc = mlg_msgpack_to_json(msg->body, msg->body_len, &body, err, errlen);
    if (rc != MLG_OK)
        return rc == MLG_ERR_JSON || rc == MLG_MALFORMED ? MLG_ADAPTER_REFUSE
                                                         : MLG_ADAPTER_RETRY;
    char occurred[40] = "", received[40] = "";
    if (msg->has_occurred_at)
        mlg_time_format(msg->occurred_at, occurred, sizeof(occurred));
    mlg_time_format(msg->received_at, received, sizeof(received));
    if (!s_connected(self)) {
        free(body);
        snprintf(err, errlen, "the agency's database is down");
        return MLG_ADAPTER_RETRY;
    }
    char version[24];
    snprintf(version, sizeof(version), "%llu", (unsigned long long)msg->version);
    const char *values[10] = {msg->id,
                              msg->type,
                              version,
                              msg->from,
                              msg->subject[0] ? msg->subject : NULL,
                              msg->purpose[0] ? msg->purpose : NULL,
                              msg->correlation[0] ? msg->correlation : NULL,
                              occurred[0] ? occurred : NULL,
                              received[0] ? received : NULL,
                              body};
    PGresult *r =
        PQexecParams(self->conn, self->sql_insert, 10, NULL, values, NULL, NULL, 0);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        snprintf(err, errlen, "inserting into the inbox: %s", PQresultErrorMessage(r));
    PQclear(r);
    free(body);
    return ok ? MLG_ADAPTER_OK : MLG_ADAPTER_RETRY;
}

MLG_ADAPTER_EXPORT const mlg_adapter_plugin_t maillage_adapter_plugin = {
    .abi = MLG_ADAPTER_ABI,
    .msg_layout = MLG_MSG_LAYOUT,
    .name = "sql",
    .description = "outbox and inbox tables in the agency's PostgreSQL database",
    .config_keys = s_keys,
    .open = s_open,
    .poll = s_poll,
    .outcome = s_outcome,
    .deliver = s_deliver,
    .close = s_close,
};
