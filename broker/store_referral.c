/*  store_referral.c: the referral tables (PROTOCOL.md §9, migration
    0006): a plan's rows written in its message's transaction, the index
    read on each new connection, and the one-time rebuild of the legs of
    referrals stored before the tables existed.

    Not here: the legs' rules (referral.c), which this replays for the
    rebuild. Called by the store thread only. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "maillage/body.h"
#include "store_int.h"

/* ---- a run's rows ------------------------------------------------------ */

static const uint32_t s_ref_oids[7] = {BRK_OID_UUID,       BRK_OID_UUID, BRK_OID_TEXT,
                                       BRK_OID_TEXT,       BRK_OID_TEXT, BRK_OID_TEXT,
                                       BRK_OID_TIMESTAMPTZ};
static const uint32_t s_leg_oids[15] = {
    BRK_OID_UUID,        BRK_OID_TEXT,        BRK_OID_TEXT,        BRK_OID_TEXT,
    BRK_OID_TEXT,        BRK_OID_TEXT,        BRK_OID_TEXT,        BRK_OID_TIMESTAMPTZ,
    BRK_OID_TIMESTAMPTZ, BRK_OID_TIMESTAMPTZ, BRK_OID_TIMESTAMPTZ, BRK_OID_TIMESTAMPTZ,
    BRK_OID_TEXT,        BRK_OID_UUID,        BRK_OID_TIMESTAMPTZ};
static const uint32_t s_dup_oids[10] = {
    BRK_OID_UUID, BRK_OID_UUID,        BRK_OID_UUID, BRK_OID_TEXT, BRK_OID_TEXT,
    BRK_OID_TEXT, BRK_OID_TIMESTAMPTZ, BRK_OID_TEXT, BRK_OID_TEXT, BRK_OID_TIMESTAMPTZ};

void
brk_referral_rows_start(brk_referral_rows_t *rows)
{
    memset(rows, 0, sizeof(*rows));
    for (int c = 0; c < 7; c++)
        brk_pgbin_array_start(&rows->refs[c], s_ref_oids[c]);
    for (int c = 0; c < 15; c++)
        brk_pgbin_array_start(&rows->legs[c], s_leg_oids[c]);
    for (int c = 0; c < 10; c++)
        brk_pgbin_array_start(&rows->dups[c], s_dup_oids[c]);
}

void
brk_referral_rows_free(brk_referral_rows_t *rows)
{
    for (int c = 0; c < 7; c++)
        free(rows->refs[c].p);
    for (int c = 0; c < 15; c++)
        free(rows->legs[c].p);
    for (int c = 0; c < 10; c++)
        free(rows->dups[c].p);
    memset(rows, 0, sizeof(*rows));
}

/* A time, or SQL null for 0 ("not yet"). */
static void
s_time(brk_pgbin_t *b, int64_t us)
{
    if (us)
        brk_pgbin_time(b, us);
    else
        brk_pgbin_null(b);
}

static void
s_add_legs(brk_referral_rows_t *rows, const brk_referral_plan_t *plan)
{
    brk_pgbin_t *c = rows->legs;
    for (size_t i = 0; i < plan->nlegs; i++) {
        const brk_leg_t *l = &plan->legs[i];
        brk_pgbin_uuid(&c[0], l->referral_id);
        brk_pgbin_text(&c[1], l->recipient);
        brk_pgbin_text(&c[2], l->referrer);
        brk_pgbin_text(&c[3], l->subject);
        brk_pgbin_text(&c[4], l->service);
        brk_pgbin_text(&c[5], l->priority);
        brk_pgbin_text(&c[6], brk_leg_state_name(l->state));
        brk_pgbin_time(&c[7], l->opened_us);
        s_time(&c[8], l->decided_us);
        s_time(&c[9], l->closed_us);
        brk_pgbin_time(&c[10], l->due_us);
        s_time(&c[11], l->overdue_us);
        brk_pgbin_text(&c[12],
                       plan->from[i] < 0 ? "" : brk_leg_state_name(plan->from[i]));
        brk_pgbin_uuid(&c[13], plan->message_id);
        brk_pgbin_time(&c[14], plan->at);
        rows->nlegs++;
    }
}

bool
brk_referral_rows_add(brk_referral_rows_t *rows, const brk_referral_plan_t *plan,
                      bool told)
{
    if (plan->step == BRK_REFERRAL_OPEN) {
        brk_pgbin_t *c = rows->refs;
        brk_pgbin_uuid(&c[0], plan->referral_id);
        brk_pgbin_uuid(&c[1], plan->message_id);
        brk_pgbin_text(&c[2], plan->referrer);
        brk_pgbin_text(&c[3], plan->subject);
        brk_pgbin_text(&c[4], plan->service);
        brk_pgbin_text(&c[5], plan->priority);
        brk_pgbin_time(&c[6], plan->at);
        rows->nrefs++;
    }
    s_add_legs(rows, plan);
    brk_pgbin_t *c = rows->dups;
    for (size_t i = 0; i < plan->nmatches; i++) {
        const brk_referral_match_t *m = &plan->matches[i];
        brk_pgbin_uuid(&c[0], plan->referral_id);
        brk_pgbin_uuid(&c[1], plan->message_id);
        brk_pgbin_uuid(&c[2], m->referral_id);
        brk_pgbin_text(&c[3], m->recipient);
        brk_pgbin_text(&c[4], m->referrer);
        brk_pgbin_text(&c[5], brk_leg_state_name(m->state));
        brk_pgbin_time(&c[6], m->since);
        brk_pgbin_text(&c[7], told && m->told_publisher ? "t" : "f");
        brk_pgbin_text(&c[8], told && m->told_recipient ? "t" : "f");
        brk_pgbin_time(&c[9], plan->at);
        rows->ndups++;
    }
    return !rows->refs[0].failed && !rows->legs[0].failed && !rows->dups[0].failed;
}

bool
brk_store_write_referral_rows(brk_store_t *self, brk_referral_rows_t *rows)
{
    bool ok = true;
    if (rows->nrefs || rows->nlegs) {
        brk_pgbin_t all[22];
        memcpy(all, rows->refs, sizeof(rows->refs));
        memcpy(all + 7, rows->legs, sizeof(rows->legs));
        ok = brk_store_send_arrays(self, BRK_SQL_WRITE_LEGS, 22, all);
        memcpy(rows->refs, all, sizeof(rows->refs)); /* finished: their buffers moved */
        memcpy(rows->legs, all + 7, sizeof(rows->legs));
    }
    if (ok && rows->ndups)
        ok = brk_store_send_arrays(self, BRK_SQL_WRITE_DUPLICATES, 10, rows->dups);
    return ok;
}

/* The same on a connection of its own, at once (the rebuild). */
static bool
s_exec_rows(PGconn *conn, brk_referral_rows_t *rows)
{
    brk_pgbin_t all[22];
    memcpy(all, rows->refs, sizeof(rows->refs));
    memcpy(all + 7, rows->legs, sizeof(rows->legs));
    const char *values[32];
    int lengths[32], formats[32];
    bool ok = brk_store_array_params(all, 22, values, lengths, formats);
    PGresult *res = ok ? PQexecParams(conn, brk_sql_text(BRK_SQL_WRITE_LEGS), 22, NULL,
                                      values, lengths, formats, 0)
                       : NULL;
    ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    memcpy(rows->refs, all, sizeof(rows->refs));
    memcpy(rows->legs, all + 7, sizeof(rows->legs));
    if (ok && rows->ndups) {
        ok = brk_store_array_params(rows->dups, 10, values, lengths, formats);
        res = ok ? PQexecParams(conn, brk_sql_text(BRK_SQL_WRITE_DUPLICATES), 10, NULL,
                                values, lengths, formats, 0)
                 : NULL;
        ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        PQclear(res);
    }
    if (!ok) {
        char *msg = PQerrorMessage(conn);
        brk_log(BRK_LOG_ERROR, "store", "could not write rebuilt legs: %.*s",
                (int)strcspn(msg, "\n"), msg);
    }
    return ok;
}

/* ---- the index ---------------------------------------------------------- */

static PGresult *
s_select(PGconn *conn, brk_sql_t sql, const char *what)
{
    PGresult *res = PQexec(conn, brk_sql_text(sql));
    if (PQresultStatus(res) == PGRES_TUPLES_OK)
        return res;
    char *msg = PQerrorMessage(conn);
    brk_log(BRK_LOG_ERROR, "store", "could not read the %s: %.*s", what,
            (int)strcspn(msg, "\n"), msg);
    PQclear(res);
    return NULL;
}

static int64_t
s_int(const PGresult *res, int row, int col)
{
    return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

brk_referrals_t *
brk_store_read_referrals(PGconn *conn)
{
    PGresult *refs = s_select(conn, BRK_SQL_READ_REFERRALS, "referrals");
    PGresult *legs = refs ? s_select(conn, BRK_SQL_READ_LEGS, "referral legs") : NULL;
    brk_referrals_t *index = legs ? brk_referrals_new() : NULL;
    bool ok = index != NULL;
    for (int i = 0; ok && i < PQntuples(refs); i++)
        ok = brk_referrals_load_referral(index, PQgetvalue(refs, i, 0),
                                         PQgetvalue(refs, i, 1), PQgetvalue(refs, i, 2),
                                         PQgetvalue(refs, i, 3), PQgetvalue(refs, i, 4),
                                         s_int(refs, i, 5))
             == 0;
    for (int i = 0; ok && i < PQntuples(legs); i++) {
        brk_leg_t leg;
        memset(&leg, 0, sizeof(leg));
        snprintf(leg.referral_id, sizeof(leg.referral_id), "%s", PQgetvalue(legs, i, 0));
        snprintf(leg.recipient, sizeof(leg.recipient), "%s", PQgetvalue(legs, i, 1));
        snprintf(leg.referrer, sizeof(leg.referrer), "%s", PQgetvalue(legs, i, 2));
        snprintf(leg.subject, sizeof(leg.subject), "%s", PQgetvalue(legs, i, 3));
        snprintf(leg.service, sizeof(leg.service), "%s", PQgetvalue(legs, i, 4));
        snprintf(leg.priority, sizeof(leg.priority), "%s", PQgetvalue(legs, i, 5));
        leg.state = (brk_leg_state_t)brk_leg_state_parse(PQgetvalue(legs, i, 6));
        leg.opened_us = s_int(legs, i, 7);
        leg.decided_us = s_int(legs, i, 8);
        leg.closed_us = s_int(legs, i, 9);
        leg.due_us = s_int(legs, i, 10);
        leg.overdue_us = s_int(legs, i, 11);
        ok = brk_referrals_load_leg(index, &leg) == 0;
    }
    if (!ok && index) {
        brk_log(BRK_LOG_ERROR, "store", "could not load the referral legs");
        brk_referrals_destroy(&index);
    }
    PQclear(refs);
    PQclear(legs);
    return index;
}

/* ---- the rebuild -------------------------------------------------------- */

/* "a allow,b deny,a deny": the first decision of each recipient, into
   decisions (allow or not) and `to`. */
static size_t
s_recipients(const char *text, brk_decision_t *d, mlg_agency_t *to, size_t max)
{
    size_t n = 0;
    char buf[MLG_AGENCY_ID_MAX + 8];
    for (const char *c = text; *c && n < max;) {
        size_t len = strcspn(c, ",");
        snprintf(buf, sizeof(buf), "%.*s", (int)(len < sizeof(buf) ? len : 0), c);
        char *space = strchr(buf, ' ');
        c += len + (c[len] == ',');
        if (!space)
            continue;
        *space = '\0';
        bool seen = false;
        for (size_t k = 0; k < n; k++)
            seen |= strcmp(d[k].recipient, buf) == 0;
        if (seen)
            continue;
        memset(&d[n], 0, sizeof(d[n]));
        snprintf(d[n].recipient, sizeof(d[n].recipient), "%.64s", buf);
        snprintf(to[n].id, sizeof(to[n].id), "%.64s", buf);
        d[n].allow = strcmp(space + 1, "allow") == 0;
        n++;
    }
    return n;
}

/* One stored referral.* message replayed: its plan, written and
   committed to the index; an event the table refuses is passed over. */
static bool
s_replay(PGconn *conn, brk_referrals_t *index, const PGresult *res, int row,
         const brk_deadline_t *deadlines, size_t ndeadlines, size_t *refused)
{
    mlg_msg_t *m = mlg_msg_new(MLG_OP_PUBLISH);
    size_t blen = 0;
    unsigned char *body =
        PQunescapeBytea((const unsigned char *)PQgetvalue(res, row, 4), &blen);
    char referral_id[64] = "", service[BRK_REFERRAL_WORD_MAX + 1] = "",
         priority[BRK_REFERRAL_WORD_MAX + 1] = "";
    bool ok = m && body && mlg_msg_set_body(m, body, blen) == MLG_OK;
    PQfreemem(body);
    if (ok) {
        mlg_body_text(m, "/referral_id", referral_id, sizeof(referral_id));
        mlg_body_text(m, "/service", service, sizeof(service));
        mlg_body_text(m, "/priority", priority, sizeof(priority));
        for (char *c = referral_id; *c; c++) /* as the loop reads it (publish.c) */
            *c = (char)(*c >= 'A' && *c <= 'F' ? *c - 'A' + 'a' : *c);
    }
    mlg_msg_destroy(&m);
    static brk_decision_t d[MLG_MAX_RECIPIENTS];
    static mlg_agency_t to[MLG_MAX_RECIPIENTS];
    size_t n = s_recipients(PQgetvalue(res, row, 6), d, to, MLG_MAX_RECIPIENTS);
    brk_referral_event_t ev = {
        .type = PQgetvalue(res, row, 1),
        .message_id = PQgetvalue(res, row, 0),
        .publisher = PQgetvalue(res, row, 2),
        .referral_id = referral_id,
        .subject = PQgetvalue(res, row, 3),
        .service = service,
        .priority = priority,
        .deadline_us = brk_deadline_us(deadlines, ndeadlines, service, priority),
        .to = to,
        .nto = n,
        .decisions = d,
        .ndecisions = n,
        .now = s_int(res, row, 5)};
    brk_referral_plan_t plan;
    char reason[512];
    if (!ok || !referral_id[0]
        || brk_referral_plan(index, NULL, &ev, &plan, reason, sizeof(reason)) != MLG_OK) {
        (*refused)++;
        return true;
    }
    brk_referral_rows_t rows;
    brk_referral_rows_start(&rows);
    ok = brk_referral_rows_add(&rows, &plan, false) /* nobody was told then */
         && s_exec_rows(conn, &rows);
    brk_referral_rows_free(&rows);
    if (ok)
        brk_referrals_commit(index, &plan);
    brk_referral_plan_clear(&plan);
    return ok;
}

bool
brk_store_rebuild_referrals(brk_store_t *self, PGconn *conn)
{
    PGresult *res = PQexec(conn, "begin; lock table referral_rebuild");
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    res = ok ? PQexec(conn, "delete from referral_rebuild returning pending") : NULL;
    ok = PQresultStatus(res) == PGRES_TUPLES_OK;
    bool pending = ok && PQntuples(res) == 1;
    PQclear(res);
    PGresult *msgs =
        pending ? s_select(conn, BRK_SQL_REBUILD_MESSAGES, "referral messages") : NULL;
    brk_referrals_t *index = msgs ? brk_referrals_new() : NULL;
    ok = ok && (!pending || index);
    size_t refused = 0;
    for (int i = 0; ok && pending && i < PQntuples(msgs); i++)
        ok = s_replay(conn, index, msgs, i, self->deadlines, self->ndeadlines, &refused);
    res = PQexec(conn, ok ? "commit" : "rollback");
    ok = ok && PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    if (pending && ok)
        brk_log(BRK_LOG_INFO, "store",
                "referral legs rebuilt from %d stored message(s): %zu referral(s), %zu "
                "leg(s), %zu event(s) the table refuses passed over",
                PQntuples(msgs), brk_referrals_count(index), brk_referrals_legs(index),
                refused);
    else if (!ok)
        brk_log(BRK_LOG_ERROR, "store", "could not rebuild the referral legs");
    PQclear(msgs);
    brk_referrals_destroy(&index);
    return ok;
}
