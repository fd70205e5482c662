/*  store_read.c: what the store reads from the database: a recipient's
    next pending deliveries, as DELIVER messages (FETCH); the consents, as
    the loop's index, on each new connection; the audit chain's head; the
    answer to a publish stored already.

    Not here: writes (store_write.c), store_mark (store_conn.c), the
    statements' text (store_sql.c). Called by the store thread only. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store_int.h"

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
brk_consents_t *
brk_store_read_consents(PGconn *conn)
{
    PGresult *res = PQexec(conn, brk_sql_text(BRK_SQL_READ_CONSENTS));
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

/* The audit chain's head as the database has it. */
bool
brk_store_read_head(brk_store_t *self, PGconn *conn)
{
    PGresult *head = PQexec(conn, brk_sql_text(BRK_SQL_READ_HEAD));
    bool ok = PQresultStatus(head) == PGRES_TUPLES_OK && PQntuples(head) == 1
              && brk_chain_unhex(PQgetvalue(head, 0, 1), self->link) == 0;
    if (ok)
        self->chain_seq = strtoull(PQgetvalue(head, 0, 0), NULL, 10);
    PQclear(head);
    return ok;
}

/* A referral's duplicates told to the recipient, "referral_id µs,...",
   as the DELIVER's notices (PROTOCOL.md §9). */
static void
s_notices(const char *text, mlg_msg_t *d)
{
    for (const char *c = text; *c;) {
        size_t len = strcspn(c, ",");
        mlg_notice_t n = {.code = "DUPLICATE_REFERRAL", .has_since = true};
        if (len > MLG_UUID_LEN && c[MLG_UUID_LEN] == ' ') {
            memcpy(n.referral_id, c, MLG_UUID_LEN);
            n.since = s_us_time(strtoll(c + MLG_UUID_LEN + 1, NULL, 10));
            mlg_msg_add_notice(d, &n);
        }
        c += len + (c[len] == ',');
    }
}

bool
brk_store_read_queue(brk_store_t *self, brk_fetch_t *f)
{
    char after[24], limit[24];
    snprintf(after, sizeof(after), "%llu", (unsigned long long)f->after);
    snprintf(limit, sizeof(limit), "%zu", f->limit);
    const char *values[3] = {f->agency, after, limit};
    PGresult *res = brk_store_query(self, BRK_SQL_READ_QUEUE, 3, values);
    if (!res)
        return false;
    int n = PQntuples(res);
    f->rows = calloc(n ? (size_t)n : 1, sizeof(brk_delivery_t *));
    if (!f->rows) {
        PQclear(res);
        return false;
    }
    /* one message for every row, packed as each is read: a row holds
       its encoding, not a whole message */
    mlg_msg_t *d = mlg_msg_new(MLG_OP_DELIVER);
    for (int i = 0; d && i < n; i++) {
        brk_delivery_t *row = calloc(1, sizeof(*row));
        if (!row)
            break;
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
        d->has_occurred_at = !PQgetisnull(res, i, 8);
        if (d->has_occurred_at)
            d->occurred_at = s_us_time(strtoll(PQgetvalue(res, i, 8), NULL, 10));
        snprintf(d->from, sizeof(d->from), "%s", PQgetvalue(res, i, 9));
        d->received_at = s_us_time(strtoll(PQgetvalue(res, i, 10), NULL, 10));
        size_t blen = 0;
        unsigned char *body =
            PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, 11), &blen);
        d->body = body;
        d->body_len = blen;
        s_notices(PQgetvalue(res, i, 13), d);
        row->deliver = body ? mlg_packed_deliver_new(d) : NULL;
        PQfreemem(body);
        d->body = NULL;
        d->notices_count = 0; /* the message is reused for the next row */
        if (!row->deliver) {
            free(row);
            break;
        }
        f->rows[f->nrows++] = row;
    }
    mlg_msg_destroy(&d);
    PQclear(res);
    return true;
}

/* A message whose id is stored already: a duplicate of the same
   publisher's (answered as first decided), or another agency's id. */
bool
brk_store_read_duplicate(brk_store_t *self, brk_job_t *job)
{
    const char *id[1] = {job->msg->id};
    PGresult *res = brk_store_query(self, BRK_SQL_STORED_MESSAGE, 1, id);
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
    res = brk_store_query(self, BRK_SQL_STORED_DECISIONS, 1, id);
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
