/*  referral.c: the legs of PROTOCOL.md §9 and the table of their moves.

    A referral.created opens one leg per recipient it may reach; every
    other referral.* event of an agency moves legs by the table below,
    or is refused with the reason §9 gives; a new referral finds its
    duplicates. Each outcome is a plan; the index that plans are made
    against, and applied to, is referral_index.c's. Called by the event
    loop (publish.c) and the store's rebuild; the tests drive it with
    tables. */

#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "referral_int.h"

static const char *s_state_names[BRK_LEG_NSTATES] = {
    "sent",     "received",  "waitlisted", "accepted",   "started",
    "declined", "completed", "cancelled",  "superseded",
};

const char *
brk_leg_state_name(brk_leg_state_t state)
{
    return (int)state >= 0 && state < BRK_LEG_NSTATES ? s_state_names[state] : NULL;
}

int
brk_leg_state_parse(const char *name)
{
    for (int s = 0; s < BRK_LEG_NSTATES; s++)
        if (strcmp(s_state_names[s], name) == 0)
            return s;
    return -1;
}

bool
brk_leg_state_open(brk_leg_state_t state)
{
    return state <= BRK_LEG_STARTED;
}

/* ---- the table of moves (§9) -------------------------------------------- */

#define S_BIT(s) (1u << (s))
#define S_OPEN                                                                           \
    (S_BIT(BRK_LEG_SENT) | S_BIT(BRK_LEG_RECEIVED) | S_BIT(BRK_LEG_WAITLISTED)           \
     | S_BIT(BRK_LEG_ACCEPTED) | S_BIT(BRK_LEG_STARTED))

typedef struct {
    const char *type;
    brk_leg_state_t to;
    unsigned from;    /* the states it moves from, as bits */
    bool by_referrer; /* published by the referrer (else by the leg's recipient) */
} s_move_t;

static const s_move_t s_moves[] = {
    {"referral.received", BRK_LEG_RECEIVED, S_BIT(BRK_LEG_SENT), false},
    {"referral.waitlisted", BRK_LEG_WAITLISTED,
     S_BIT(BRK_LEG_SENT) | S_BIT(BRK_LEG_RECEIVED), false},
    {"referral.accepted", BRK_LEG_ACCEPTED,
     S_BIT(BRK_LEG_SENT) | S_BIT(BRK_LEG_RECEIVED) | S_BIT(BRK_LEG_WAITLISTED), false},
    {"referral.declined", BRK_LEG_DECLINED,
     S_BIT(BRK_LEG_SENT) | S_BIT(BRK_LEG_RECEIVED) | S_BIT(BRK_LEG_WAITLISTED)
         | S_BIT(BRK_LEG_ACCEPTED),
     false},
    {"referral.started", BRK_LEG_STARTED, S_BIT(BRK_LEG_ACCEPTED), false},
    {"referral.completed", BRK_LEG_COMPLETED, S_BIT(BRK_LEG_STARTED), false},
    {"referral.cancelled", BRK_LEG_CANCELLED, S_OPEN, true},
};

static const s_move_t *
s_move_find(const char *type)
{
    for (size_t i = 0; i < sizeof(s_moves) / sizeof(s_moves[0]); i++)
        if (strcmp(s_moves[i].type, type) == 0)
            return &s_moves[i];
    return NULL;
}

/* The first decision stops the clock (received does not). */
static bool
s_is_decision(brk_leg_state_t state)
{
    return state == BRK_LEG_WAITLISTED || state == BRK_LEG_ACCEPTED
           || state == BRK_LEG_DECLINED;
}

/* ---- plans -------------------------------------------------------------- */

void
brk_referral_plan_clear(brk_referral_plan_t *plan)
{
    free(plan->legs);
    free(plan->from);
    free(plan->matches);
    memset(plan, 0, sizeof(*plan));
}

bool
brk_referral_plan_alloc(brk_referral_plan_t *plan, size_t nlegs, size_t nmatches)
{
    plan->legs = calloc(nlegs ? nlegs : 1, sizeof(*plan->legs));
    plan->from = calloc(nlegs ? nlegs : 1, sizeof(*plan->from));
    plan->matches = calloc(nmatches ? nmatches : 1, sizeof(*plan->matches));
    if (plan->legs && plan->from && plan->matches)
        return true;
    brk_referral_plan_clear(plan);
    return false;
}

void
brk_referral_plan_start(brk_referral_plan_t *plan, brk_referral_step_t step,
                        const char *referral_id, int64_t at)
{
    memset(plan, 0, sizeof(*plan));
    plan->step = step;
    plan->at = at;
    snprintf(plan->referral_id, sizeof(plan->referral_id), "%s", referral_id);
}

/* The leg moved to `to` at `at`, into the plan. */
void
brk_referral_plan_move(brk_referral_plan_t *plan, const brk_leg_t *leg,
                       brk_leg_state_t to, int64_t at)
{
    brk_leg_t *after = &plan->legs[plan->nlegs];
    *after = *leg;
    plan->from[plan->nlegs++] = (int)leg->state;
    after->state = to;
    if (s_is_decision(to) && after->decided_us == 0)
        after->decided_us = at;
    if (!brk_leg_state_open(to) && after->closed_us == 0)
        after->closed_us = at;
}

static bool
s_is_recipient(const brk_referral_event_t *ev, const char *agency)
{
    for (size_t i = 0; i < ev->ndecisions; i++)
        if (ev->decisions[i].allow && strcmp(ev->decisions[i].recipient, agency) == 0)
            return true;
    return false;
}

static bool
s_addressed(const brk_referral_event_t *ev, const char *agency)
{
    for (size_t i = 0; i < ev->nto; i++)
        if (strcmp(ev->to[i].id, agency) == 0)
            return true;
    return false;
}

/* "/referral_id: no open referral between you and a, b": the same
   whether the referral does not exist or is other agencies'. */
static mlg_rc_t
s_no_referral(const brk_referral_event_t *ev, char *reason, size_t len)
{
    size_t n =
        (size_t)snprintf(reason, len, "/referral_id: no open referral between you and");
    for (size_t i = 0; i < ev->nto && n < len; i++)
        if (strcmp(ev->to[i].id, ev->publisher) != 0)
            n += (size_t)snprintf(reason + n, len - n, "%s %s", i ? "," : "",
                                  ev->to[i].id);
    return MLG_INVALID;
}

static mlg_rc_t
s_refused(const brk_leg_t *leg, brk_leg_state_t to, char *reason, size_t len)
{
    snprintf(reason, len, "/referral_id: %s; cannot move to %s",
             brk_leg_state_name(leg->state), brk_leg_state_name(to));
    return MLG_INVALID;
}

static mlg_rc_t
s_busy(char *reason, size_t len)
{
    snprintf(reason, len,
             "/referral_id: an earlier event of this referral is being stored: nothing "
             "was stored, retry later with the same id");
    return MLG_UNAVAILABLE;
}

/* The open legs of other referrals about the same person and service,
   oldest referral first, up to `max` (max + 1 when there are more: the
   cost of a publish stays bounded whatever one person's referrals). */
static size_t
s_matches(const brk_referrals_t *self, const brk_consents_t *consents,
          const brk_referral_event_t *ev, brk_referral_match_t *out, size_t max)
{
    char key[MLG_STRBUF(MLG_SUBJECT_MAX) + BRK_REFERRAL_WORD_MAX + 2];
    brk_referral_person_key(ev->subject, ev->service, key, sizeof(key));
    zlistx_t *list = zhashx_lookup(self->by_person, key);
    size_t n = 0;
    for (brk_referral_rec_t *y = list ? zlistx_first(list) : NULL; y;
         y = zlistx_next(list)) {
        if (strcmp(y->id, ev->referral_id) == 0)
            continue;
        bool told = strcmp(y->referrer, ev->publisher) == 0;
        if (!told && consents) {
            brk_decision_t d;
            memset(&d, 0, sizeof(d));
            brk_consent_decide(consents, ev->subject, ev->publisher, y->referrer,
                               "orientation", "social", ev->now, &d);
            told = d.allow;
        }
        for (size_t i = 0; i < y->nlegs; i++) {
            const brk_leg_t *leg = y->legs[i];
            if (!brk_leg_state_open(leg->state))
                continue;
            if (n == max)
                return n + 1; /* one more than the caller takes: cut */
            {
                brk_referral_match_t *m = &out[n];
                snprintf(m->referral_id, sizeof(m->referral_id), "%s", y->id);
                snprintf(m->recipient, sizeof(m->recipient), "%s", leg->recipient);
                snprintf(m->referrer, sizeof(m->referrer), "%s", y->referrer);
                m->state = leg->state;
                m->since = leg->opened_us;
                m->told_publisher = told;
                m->told_recipient = s_is_recipient(ev, leg->recipient);
            }
            n++;
        }
    }
    return n;
}

/* referral.created: the referral and a leg per recipient it may reach,
   and the duplicates. */
static mlg_rc_t
s_plan_open(brk_referrals_t *self, const brk_consents_t *consents,
            const brk_referral_event_t *ev, brk_referral_plan_t *plan, char *reason,
            size_t len)
{
    if (brk_referrals_find(self, ev->referral_id)) {
        snprintf(reason, len, "/referral_id: already used");
        return MLG_INVALID;
    }
    brk_referral_plan_start(plan, BRK_REFERRAL_OPEN, ev->referral_id, ev->now);
    if (!brk_referral_plan_alloc(plan, ev->ndecisions, BRK_REFERRAL_MATCHES_MAX)
        || brk_referrals_load_referral(self, ev->referral_id, ev->publisher, ev->subject,
                                       ev->service, ev->priority, ev->now)
               != 0) {
        brk_referral_plan_clear(plan);
        snprintf(reason, len, "the broker is out of memory: retry later");
        return MLG_UNAVAILABLE;
    }
    brk_referral_rec_t *r = brk_referrals_find(self, ev->referral_id);
    r->pending = true;
    r->busy = 1;
    snprintf(plan->message_id, sizeof(plan->message_id), "%s", ev->message_id);
    snprintf(plan->referrer, sizeof(plan->referrer), "%s", r->referrer);
    snprintf(plan->subject, sizeof(plan->subject), "%s", r->subject);
    snprintf(plan->service, sizeof(plan->service), "%s", r->service);
    snprintf(plan->priority, sizeof(plan->priority), "%s", r->priority);
    for (size_t i = 0; i < ev->ndecisions; i++) {
        const brk_decision_t *d = &ev->decisions[i];
        if (!d->allow)
            continue; /* a denied recipient has no leg */
        brk_leg_t *leg = &plan->legs[plan->nlegs];
        memset(leg, 0, sizeof(*leg));
        snprintf(leg->referral_id, sizeof(leg->referral_id), "%s", r->id);
        snprintf(leg->recipient, sizeof(leg->recipient), "%s", d->recipient);
        snprintf(leg->referrer, sizeof(leg->referrer), "%s", r->referrer);
        snprintf(leg->subject, sizeof(leg->subject), "%s", r->subject);
        snprintf(leg->service, sizeof(leg->service), "%s", r->service);
        snprintf(leg->priority, sizeof(leg->priority), "%s", r->priority);
        leg->state = BRK_LEG_SENT;
        leg->opened_us = ev->now;
        leg->due_us = ev->now + ev->deadline_us;
        plan->from[plan->nlegs++] = -1;
    }
    plan->nmatches =
        s_matches(self, consents, ev, plan->matches, BRK_REFERRAL_MATCHES_MAX);
    plan->matches_cut = plan->nmatches > BRK_REFERRAL_MATCHES_MAX;
    if (plan->matches_cut)
        plan->nmatches = BRK_REFERRAL_MATCHES_MAX;
    return MLG_OK;
}

/* referral.cancelled: each leg whose recipient is in `to`, all open. */
static mlg_rc_t
s_plan_cancel(const brk_referral_rec_t *r, const s_move_t *mv,
              const brk_referral_event_t *ev, brk_referral_plan_t *plan, char *reason,
              size_t len)
{
    for (size_t i = 0; i < ev->nto; i++) {
        const char *to = ev->to[i].id;
        if (strcmp(to, ev->publisher) == 0)
            continue;
        const brk_leg_t *leg = brk_referral_rec_leg(r, to);
        if (!leg) {
            snprintf(reason, len, "/referral_id: no open referral between you and %s",
                     to);
            return MLG_INVALID;
        }
        if (!(mv->from & S_BIT(leg->state)))
            return s_refused(leg, mv->to, reason, len);
        bool twice = false;
        for (size_t k = 0; k < plan->nlegs; k++)
            twice |= strcmp(plan->legs[k].recipient, to) == 0;
        if (!twice)
            brk_referral_plan_move(plan, leg, mv->to, ev->now);
    }
    return MLG_OK;
}

/* Any other event of the table: the leg (referral, publisher) moves. */
static mlg_rc_t
s_plan_move_leg(brk_referrals_t *self, const brk_referral_event_t *ev, const s_move_t *mv,
                brk_referral_plan_t *plan, char *reason, size_t len)
{
    brk_referral_rec_t *r = brk_referrals_find(self, ev->referral_id);
    const brk_leg_t *leg =
        mv->by_referrer ? NULL : brk_referral_rec_leg(r, ev->publisher);
    bool party =
        r && (leg || (mv->by_referrer && strcmp(r->referrer, ev->publisher) == 0));
    if (!party)
        return s_no_referral(ev, reason, len);
    if (r->busy)
        return s_busy(reason, len);
    if (leg && !s_addressed(ev, r->referrer)) {
        snprintf(
            reason, len,
            "%s must be addressed to the referral's referrer (%s): 'to' must name it",
            ev->type, r->referrer);
        return MLG_ADDRESS_REQUIRED;
    }
    if (leg && !(mv->from & S_BIT(leg->state)))
        return s_refused(leg, mv->to, reason, len);
    brk_referral_plan_start(plan, BRK_REFERRAL_MOVE, r->id, ev->now);
    if (!brk_referral_plan_alloc(plan, mv->by_referrer ? (ev->nto ? ev->nto : 1) : 1,
                                 0)) {
        snprintf(reason, len, "the broker is out of memory: retry later");
        return MLG_UNAVAILABLE;
    }
    snprintf(plan->message_id, sizeof(plan->message_id), "%s", ev->message_id);
    mlg_rc_t rc = MLG_OK;
    if (leg)
        brk_referral_plan_move(plan, leg, mv->to, ev->now);
    else
        rc = s_plan_cancel(r, mv, ev, plan, reason, len);
    if (rc != MLG_OK)
        brk_referral_plan_clear(plan);
    else
        r->busy++;
    return rc;
}

mlg_rc_t
brk_referral_plan(brk_referrals_t *self, const brk_consents_t *consents,
                  const brk_referral_event_t *ev, brk_referral_plan_t *plan, char *reason,
                  size_t reasonlen)
{
    memset(plan, 0, sizeof(*plan));
    if (strcmp(ev->type, "referral.created") == 0)
        return s_plan_open(self, consents, ev, plan, reason, reasonlen);
    const s_move_t *mv = s_move_find(ev->type);
    if (!mv)
        return MLG_OK; /* not an event of the table: no leg moves */
    return s_plan_move_leg(self, ev, mv, plan, reason, reasonlen);
}

static mlg_time_t
s_time(int64_t us)
{
    mlg_time_t t = {.sec = us / 1000000, .nsec = (uint32_t)(us % 1000000) * 1000};
    return t;
}

void
brk_referral_confirm_notices(const brk_referral_plan_t *plan, mlg_msg_t *confirm)
{
    for (size_t i = 0; i < plan->nmatches; i++) {
        const brk_referral_match_t *m = &plan->matches[i];
        if (!m->told_publisher)
            continue;
        mlg_notice_t n = {.code = "DUPLICATE_REFERRAL", .has_since = true};
        snprintf(n.referral_id, sizeof(n.referral_id), "%s", m->referral_id);
        snprintf(n.recipient, sizeof(n.recipient), "%s", m->recipient);
        snprintf(n.state, sizeof(n.state), "%s", brk_leg_state_name(m->state));
        n.since = s_time(m->since);
        mlg_msg_add_notice(confirm, &n);
    }
}

void
brk_referral_deliver_notices(const brk_referral_plan_t *plan, const char *recipient,
                             mlg_msg_t *deliver)
{
    for (size_t i = 0; i < plan->nmatches; i++) {
        const brk_referral_match_t *m = &plan->matches[i];
        if (!m->told_recipient || strcmp(m->recipient, recipient) != 0)
            continue;
        mlg_notice_t n = {.code = "DUPLICATE_REFERRAL", .has_since = true};
        snprintf(n.referral_id, sizeof(n.referral_id), "%s", m->referral_id);
        n.since = s_time(m->since);
        mlg_msg_add_notice(deliver, &n);
    }
}
