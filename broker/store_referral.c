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

/* A text parameter built piece by piece: "{a,b}" arrays of words and
   numbers, which need no quoting. */
typedef struct {
    char *p;
    size_t len, cap;
    bool failed;
} s_text_t;

static void
s_put(s_text_t *t, const char *s)
{
    size_t n = strlen(s);
    if (t->failed)
        return;
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 64;
        while (cap < t->len + n + 1)
            cap *= 2;
        char *p = realloc(t->p, cap);
        if (!p) {
            t->failed = true;
            return;
        }
        t->p = p;
        t->cap = cap;
    }
    memcpy(t->p + t->len, s, n + 1);
    t->len += n;
}

static void
s_item(s_text_t *t, size_t i, const char *s)
{
    s_put(t, i ? "," : "{");
    s_put(t, s);
}

static void
s_num(s_text_t *t, size_t i, long long v)
{
    char buf[24];
    snprintf(buf, sizeof(buf), "%lld", v);
    s_item(t, i, buf);
}

enum { S_ARRAYS = 15 };

/* The statement's parameters for a plan: 8 scalars, then 15 arrays. */
typedef struct {
    char at[24], opens[2];
    s_text_t a[S_ARRAYS];
    const char *v[8 + S_ARRAYS];
} s_params_t;

static bool
s_params(const brk_referral_plan_t *plan, s_params_t *p, bool told)
{
    memset(p, 0, sizeof(*p));
    const brk_leg_t *first = plan->nlegs ? &plan->legs[0] : NULL;
    snprintf(p->at, sizeof(p->at), "%lld", (long long)plan->at);
    snprintf(p->opens, sizeof(p->opens), "%s",
             plan->step == BRK_REFERRAL_OPEN ? "t" : "f");
    const char *scalars[8] = {plan->referral_id,
                              plan->message_id,
                              first ? first->referrer : plan->referrer,
                              first ? first->subject : plan->subject,
                              first ? first->service : plan->service,
                              first ? first->priority : plan->priority,
                              p->at,
                              p->opens};
    memcpy(p->v, scalars, sizeof(scalars));
    for (size_t i = 0; i < plan->nlegs; i++) {
        const brk_leg_t *l = &plan->legs[i];
        s_item(&p->a[0], i, l->recipient);
        s_item(&p->a[1], i, brk_leg_state_name(l->state));
        s_num(&p->a[2], i, l->opened_us);
        s_num(&p->a[3], i, l->decided_us);
        s_num(&p->a[4], i, l->closed_us);
        s_num(&p->a[5], i, l->due_us);
        s_num(&p->a[6], i, l->overdue_us);
        s_item(&p->a[7], i,
               plan->from[i] < 0 ? "\"\"" : brk_leg_state_name(plan->from[i]));
    }
    for (size_t i = 0; i < plan->nmatches; i++) {
        const brk_referral_match_t *m = &plan->matches[i];
        s_item(&p->a[8], i, m->referral_id);
        s_item(&p->a[9], i, m->recipient);
        s_item(&p->a[10], i, m->referrer);
        s_item(&p->a[11], i, brk_leg_state_name(m->state));
        s_num(&p->a[12], i, m->since);
        s_item(&p->a[13], i, told && m->told_publisher ? "t" : "f");
        s_item(&p->a[14], i, told && m->told_recipient ? "t" : "f");
    }
    bool ok = true;
    for (int k = 0; k < S_ARRAYS; k++) {
        s_put(&p->a[k], p->a[k].len ? "}" : "{}");
        ok &= !p->a[k].failed;
        p->v[8 + k] = p->a[k].p;
    }
    return ok;
}

static void
s_params_free(s_params_t *p)
{
    for (int k = 0; k < S_ARRAYS; k++)
        free(p->a[k].p);
}

bool
brk_store_write_referral(brk_store_t *self, const brk_job_t *job)
{
    s_params_t p;
    bool ok = s_params(&job->referral, &p, true);
    /* room among the statements sent ahead: read the answers so far */
    if (ok && self->nsent + 2 >= sizeof(self->sent) / sizeof(self->sent[0]))
        ok = brk_store_collect(self, NULL);
    ok = ok
         && brk_store_ahead(self, BRK_SENT_PLAIN, BRK_SQL_WRITE_REFERRAL, 8 + S_ARRAYS,
                            p.v, NULL, NULL);
    s_params_free(&p);
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
    s_params_t p;
    ok = s_params(&plan, &p, false); /* nobody was told then */
    PGresult *w = ok ? PQexecParams(conn, brk_sql_text(BRK_SQL_WRITE_REFERRAL),
                                    8 + S_ARRAYS, NULL, p.v, NULL, NULL, 0)
                     : NULL;
    ok = PQresultStatus(w) == PGRES_COMMAND_OK || PQresultStatus(w) == PGRES_TUPLES_OK;
    PQclear(w);
    s_params_free(&p);
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
