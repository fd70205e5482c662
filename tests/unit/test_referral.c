/*  test_referral.c: broker/referral.c, the legs of PROTOCOL.md §9 without
    a database: every row of the table, every refusal and its reason,
    the deadlines, the parallel requests, the duplicates and a restart
    (the index loaded again while plans are in flight). */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "referral.h"

#define X "11111111-1111-4111-8111-111111111111"
#define Y "22222222-2222-4222-8222-222222222222"
#define DAY (86400LL * 1000000)
#define T0 1700000000000000LL

static const char *s_types[] = {
    "referral.received", "referral.waitlisted", "referral.accepted",
    "referral.declined", "referral.started",    "referral.completed",
};
static const brk_leg_state_t s_targets[] = {
    BRK_LEG_RECEIVED, BRK_LEG_WAITLISTED, BRK_LEG_ACCEPTED,
    BRK_LEG_DECLINED, BRK_LEG_STARTED,    BRK_LEG_COMPLETED,
};
/* §9's table: the states each move leaves from, as written there. */
static const char *s_from[] = {
    "sent",
    "sent received",
    "sent received waitlisted",
    "sent received waitlisted accepted",
    "accepted",
    "started",
};

static bool
s_in(const char *words, const char *word)
{
    char copy[128];
    snprintf(copy, sizeof(copy), "%s", words);
    for (char *save, *w = strtok_r(copy, " ", &save); w; w = strtok_r(NULL, " ", &save))
        if (strcmp(w, word) == 0)
            return true;
    return false;
}

static brk_decision_t
s_allow(const char *recipient)
{
    brk_decision_t d;
    memset(&d, 0, sizeof(d));
    snprintf(d.recipient, sizeof(d.recipient), "%s", recipient);
    d.allow = true;
    d.basis = MLG_BASIS_CONSENT;
    return d;
}

/* A referral from ccas about P, for nursing-home, stored, with legs to
   the allowed recipients. */
static void
s_open(brk_referrals_t *idx, const char *id, const char *referrer,
       const brk_decision_t *decisions, size_t n, int64_t now)
{
    brk_referral_event_t ev = {.type = "referral.created",
                               .message_id = "aaaaaaaa-0000-4000-8000-000000000001",
                               .publisher = referrer,
                               .referral_id = id,
                               .subject = "P",
                               .service = "nursing-home",
                               .priority = "routine",
                               .deadline_us = 15 * DAY,
                               .decisions = decisions,
                               .ndecisions = n,
                               .now = now};
    brk_referral_plan_t plan;
    char reason[256] = "";
    assert_int_equal(brk_referral_plan(idx, NULL, &ev, &plan, reason, sizeof(reason)),
                     MLG_OK);
    assert_int_equal(plan.step, BRK_REFERRAL_OPEN);
    brk_referrals_commit(idx, &plan);
    brk_referral_plan_clear(&plan);
}

/* An agency's event about X; the plan is committed when `commit`. */
static mlg_rc_t
s_event(brk_referrals_t *idx, const char *type, const char *publisher, const char *to,
        int64_t now, bool commit, char *reason, size_t len)
{
    mlg_agency_t addr[2];
    memset(addr, 0, sizeof(addr));
    snprintf(addr[0].id, sizeof(addr[0].id), "%s", to);
    brk_referral_event_t ev = {.type = type,
                               .message_id = "bbbbbbbb-0000-4000-8000-000000000002",
                               .publisher = publisher,
                               .referral_id = X,
                               .subject = "P",
                               .to = addr,
                               .nto = 1,
                               .now = now};
    brk_referral_plan_t plan;
    reason[0] = '\0';
    mlg_rc_t rc = brk_referral_plan(idx, NULL, &ev, &plan, reason, len);
    if (rc == MLG_OK && commit)
        brk_referrals_commit(idx, &plan);
    else if (rc == MLG_OK)
        brk_referrals_abandon(idx, &plan);
    brk_referral_plan_clear(&plan);
    return rc;
}

/* An index holding X from ccas with one leg to ehpad in `state`. */
static brk_referrals_t *
s_leg_in(brk_leg_state_t state)
{
    brk_referrals_t *idx = brk_referrals_new();
    assert_non_null(idx);
    assert_int_equal(
        brk_referrals_load_referral(idx, X, "ccas", "P", "nursing-home", "routine", T0),
        0);
    brk_leg_t leg;
    memset(&leg, 0, sizeof(leg));
    snprintf(leg.referral_id, sizeof(leg.referral_id), X);
    snprintf(leg.recipient, sizeof(leg.recipient), "ehpad");
    snprintf(leg.referrer, sizeof(leg.referrer), "ccas");
    leg.state = state;
    leg.opened_us = T0;
    leg.due_us = T0 + DAY;
    assert_int_equal(brk_referrals_load_leg(idx, &leg), 0);
    return idx;
}

static void
test_state_names(void **state)
{
    (void)state;
    for (int s = 0; s < BRK_LEG_NSTATES; s++)
        assert_int_equal(brk_leg_state_parse(brk_leg_state_name(s)), s);
    assert_int_equal(brk_leg_state_parse("lost"), -1);
    assert_null(brk_leg_state_name(BRK_LEG_NSTATES));
    assert_true(brk_leg_state_open(BRK_LEG_STARTED));
    assert_false(brk_leg_state_open(BRK_LEG_DECLINED));
    assert_false(brk_leg_state_open(BRK_LEG_SUPERSEDED));
}

/* Every move from every state: allowed exactly where §9's table says,
   refused otherwise with the leg's state and the move refused. */
static void
test_every_row_of_the_table(void **state)
{
    (void)state;
    for (size_t m = 0; m < sizeof(s_types) / sizeof(s_types[0]); m++)
        for (int s = 0; s < BRK_LEG_NSTATES; s++) {
            brk_referrals_t *idx = s_leg_in(s);
            char reason[256];
            mlg_rc_t rc = s_event(idx, s_types[m], "ehpad", "ccas", T0 + 5, true, reason,
                                  sizeof(reason));
            const char *from = brk_leg_state_name(s);
            if (s_in(s_from[m], from)) {
                assert_int_equal(rc, MLG_OK);
                const brk_leg_t *leg = brk_referrals_leg(idx, X, "ehpad");
                assert_int_equal(leg->state, s_targets[m]);
            }
            else {
                char want[128];
                snprintf(want, sizeof(want), "/referral_id: %s; cannot move to %s", from,
                         brk_leg_state_name(s_targets[m]));
                assert_int_equal(rc, MLG_INVALID);
                assert_string_equal(reason, want);
                assert_int_equal(brk_referrals_leg(idx, X, "ehpad")->state, s);
            }
            brk_referrals_destroy(&idx);
        }
}

/* cancelled: by the referrer only, from any open state. */
static void
test_cancel(void **state)
{
    (void)state;
    for (int s = 0; s < BRK_LEG_NSTATES; s++) {
        brk_referrals_t *idx = s_leg_in(s);
        char reason[256];
        mlg_rc_t rc = s_event(idx, "referral.cancelled", "ccas", "ehpad", T0 + 5, true,
                              reason, sizeof(reason));
        if (brk_leg_state_open(s)) {
            assert_int_equal(rc, MLG_OK);
            const brk_leg_t *leg = brk_referrals_leg(idx, X, "ehpad");
            assert_int_equal(leg->state, BRK_LEG_CANCELLED);
            assert_true(leg->closed_us == T0 + 5);
        }
        else {
            char want[128];
            snprintf(want, sizeof(want), "/referral_id: %s; cannot move to cancelled",
                     brk_leg_state_name(s));
            assert_int_equal(rc, MLG_INVALID);
            assert_string_equal(reason, want);
        }
        /* the recipient may not cancel */
        rc = s_event(idx, "referral.cancelled", "ehpad", "ccas", T0 + 6, true, reason,
                     sizeof(reason));
        assert_int_equal(rc, MLG_INVALID);
        assert_string_equal(reason,
                            "/referral_id: no open referral between you and ccas");
        brk_referrals_destroy(&idx);
    }
}

/* The refusals that reveal nothing, the address rule, and busy. */
static void
test_refusals(void **state)
{
    (void)state;
    brk_referrals_t *idx = s_leg_in(BRK_LEG_SENT);
    char reason[256], unknown[256];
    /* an agency with no leg, and a referral that does not exist: the
       same sentence */
    assert_int_equal(s_event(idx, "referral.accepted", "other", "ccas", T0, true, reason,
                             sizeof(reason)),
                     MLG_INVALID);
    assert_string_equal(reason, "/referral_id: no open referral between you and ccas");
    brk_referrals_t *empty = brk_referrals_new();
    assert_int_equal(s_event(empty, "referral.accepted", "other", "ccas", T0, true,
                             unknown, sizeof(unknown)),
                     MLG_INVALID);
    assert_string_equal(reason, unknown);
    brk_referrals_destroy(&empty);
    /* the recipient's event must reach the referrer */
    assert_int_equal(s_event(idx, "referral.received", "ehpad", "cd75", T0, true, reason,
                             sizeof(reason)),
                     MLG_ADDRESS_REQUIRED);
    assert_string_equal(reason, "referral.received must be addressed to the referral's "
                                "referrer (ccas): 'to' must name it");
    assert_int_equal(brk_referrals_leg(idx, X, "ehpad")->state, BRK_LEG_SENT);
    /* a plan in flight makes the referral busy, for its parties */
    mlg_agency_t to = {.id = "ccas"};
    brk_referral_event_t ev = {.type = "referral.received",
                               .message_id = "cccccccc-0000-4000-8000-000000000003",
                               .publisher = "ehpad",
                               .referral_id = X,
                               .subject = "P",
                               .to = &to,
                               .nto = 1,
                               .now = T0};
    brk_referral_plan_t plan;
    assert_int_equal(brk_referral_plan(idx, NULL, &ev, &plan, reason, sizeof(reason)),
                     MLG_OK);
    assert_int_equal(s_event(idx, "referral.accepted", "ehpad", "ccas", T0, true, reason,
                             sizeof(reason)),
                     MLG_UNAVAILABLE);
    assert_non_null(strstr(reason, "retry later with the same id"));
    /* a stranger is told what it would be told anyway */
    assert_int_equal(s_event(idx, "referral.accepted", "other", "ccas", T0, true, reason,
                             sizeof(reason)),
                     MLG_INVALID);
    brk_referrals_abandon(idx, &plan);
    brk_referral_plan_clear(&plan);
    /* abandoned: nothing moved, and the next event goes through */
    assert_int_equal(brk_referrals_leg(idx, X, "ehpad")->state, BRK_LEG_SENT);
    assert_int_equal(s_event(idx, "referral.accepted", "ehpad", "ccas", T0, true, reason,
                             sizeof(reason)),
                     MLG_OK);
    brk_referrals_destroy(&idx);
}

/* referral.created: a leg per allowed recipient, the id used once. */
static void
test_open(void **state)
{
    (void)state;
    brk_referrals_t *idx = brk_referrals_new();
    brk_decision_t d[3] = {s_allow("ehpad"), s_allow("ehpad2"), s_allow("ssiad")};
    d[2].allow = false;
    s_open(idx, X, "ccas", d, 3, T0);
    assert_int_equal(brk_referrals_count(idx), 1);
    assert_int_equal(brk_referrals_legs(idx), 2);
    const brk_leg_t *leg = brk_referrals_leg(idx, X, "ehpad2");
    assert_non_null(leg);
    assert_int_equal(leg->state, BRK_LEG_SENT);
    assert_true(leg->due_us == T0 + 15 * DAY);
    assert_string_equal(leg->referrer, "ccas");
    assert_null(brk_referrals_leg(idx, X, "ssiad")); /* denied: no leg */
    /* the same referral_id again, by anyone */
    brk_referral_event_t ev = {.type = "referral.created",
                               .message_id = "dddddddd-0000-4000-8000-000000000004",
                               .publisher = "cd75",
                               .referral_id = X,
                               .subject = "Q",
                               .service = "home-care",
                               .priority = "urgent",
                               .now = T0};
    brk_referral_plan_t plan;
    char reason[256];
    assert_int_equal(brk_referral_plan(idx, NULL, &ev, &plan, reason, sizeof(reason)),
                     MLG_INVALID);
    assert_string_equal(reason, "/referral_id: already used");
    /* a referral whose recipients were all denied still holds its id */
    d[0].allow = false;
    s_open(idx, Y, "ccas", d, 1, T0);
    assert_int_equal(brk_referrals_count(idx), 2);
    ev.referral_id = Y;
    assert_int_equal(brk_referral_plan(idx, NULL, &ev, &plan, reason, sizeof(reason)),
                     MLG_INVALID);
    /* an open abandoned (not stored) frees its id */
    ev.referral_id = "33333333-3333-4333-8333-333333333333";
    assert_int_equal(brk_referral_plan(idx, NULL, &ev, &plan, reason, sizeof(reason)),
                     MLG_OK);
    assert_int_equal(brk_referrals_count(idx), 3);
    brk_referrals_abandon(idx, &plan);
    brk_referral_plan_clear(&plan);
    assert_int_equal(brk_referrals_count(idx), 2);
    brk_referrals_destroy(&idx);
}

/* The clock: received does not stop it, the first decision does; an
   overdue leg is given once, again only after an abandon. */
static void
test_deadline(void **state)
{
    (void)state;
    brk_referrals_t *idx = brk_referrals_new();
    brk_decision_t d[2] = {s_allow("ehpad"), s_allow("ehpad2")};
    s_open(idx, X, "ccas", d, 2, T0);
    char reason[256];
    assert_int_equal(s_event(idx, "referral.received", "ehpad", "ccas", T0 + 1, true,
                             reason, sizeof(reason)),
                     MLG_OK);
    assert_true(brk_referrals_leg(idx, X, "ehpad")->decided_us == 0);
    brk_referral_plan_t plans[4];
    assert_true(brk_referrals_next_due(idx) == T0 + 15 * DAY);
    assert_int_equal(brk_referrals_due(idx, T0 + 15 * DAY - 1, plans, 4), 0);
    /* ehpad2 decides (waitlisted) before the due time: not overdue */
    assert_int_equal(s_event(idx, "referral.waitlisted", "ehpad2", "ccas", T0 + 2, true,
                             reason, sizeof(reason)),
                     MLG_OK);
    assert_true(brk_referrals_leg(idx, X, "ehpad2")->decided_us == T0 + 2);
    size_t n = brk_referrals_due(idx, T0 + 15 * DAY, plans, 4);
    assert_int_equal(n, 1);
    assert_int_equal(plans[0].step, BRK_REFERRAL_OVERDUE);
    assert_string_equal(plans[0].legs[0].recipient, "ehpad");
    assert_int_equal(plans[0].legs[0].state, BRK_LEG_RECEIVED);
    assert_int_equal(plans[0].from[0], BRK_LEG_RECEIVED); /* no move */
    assert_string_equal(plans[0].referrer, "ccas");
    /* while it is stored, the referral is busy and nothing more is due */
    assert_int_equal(s_event(idx, "referral.accepted", "ehpad", "ccas", T0 + 3, true,
                             reason, sizeof(reason)),
                     MLG_UNAVAILABLE);
    assert_int_equal(brk_referrals_due(idx, T0 + 16 * DAY, plans + 1, 3), 0);
    /* not stored: given again */
    brk_referrals_abandon(idx, &plans[0]);
    brk_referral_plan_clear(&plans[0]);
    assert_int_equal(brk_referrals_due(idx, T0 + 16 * DAY, plans, 4), 1);
    brk_referrals_commit(idx, &plans[0]);
    brk_referral_plan_clear(&plans[0]);
    assert_true(brk_referrals_leg(idx, X, "ehpad")->overdue_us == T0 + 16 * DAY);
    /* stored: never again */
    assert_int_equal(brk_referrals_due(idx, T0 + 30 * DAY, plans, 4), 0);
    assert_true(brk_referrals_next_due(idx) == 0);
    brk_referrals_destroy(&idx);
}

/* started on one leg closes the referral's other open legs. */
static void
test_supersede(void **state)
{
    (void)state;
    brk_referrals_t *idx = brk_referrals_new();
    brk_decision_t d[3] = {s_allow("ehpad"), s_allow("ehpad2"), s_allow("ehpad3")};
    s_open(idx, X, "ccas", d, 3, T0);
    char reason[256];
    assert_int_equal(s_event(idx, "referral.declined", "ehpad3", "ccas", T0 + 1, true,
                             reason, sizeof(reason)),
                     MLG_OK);
    assert_int_equal(s_event(idx, "referral.accepted", "ehpad", "ccas", T0 + 2, true,
                             reason, sizeof(reason)),
                     MLG_OK);
    brk_referral_plan_t plans[4];
    assert_int_equal(brk_referrals_due(idx, T0 + 3, plans, 4), 0);
    assert_int_equal(s_event(idx, "referral.started", "ehpad", "ccas", T0 + 3, true,
                             reason, sizeof(reason)),
                     MLG_OK);
    size_t n = brk_referrals_due(idx, T0 + 4, plans, 4);
    assert_int_equal(n, 1); /* ehpad2 only: ehpad3 is closed already */
    assert_int_equal(plans[0].step, BRK_REFERRAL_SUPERSEDE);
    assert_string_equal(plans[0].legs[0].recipient, "ehpad2");
    assert_int_equal(plans[0].legs[0].state, BRK_LEG_SUPERSEDED);
    assert_int_equal(plans[0].from[0], BRK_LEG_SENT);
    brk_referrals_commit(idx, &plans[0]);
    brk_referral_plan_clear(&plans[0]);
    const brk_leg_t *leg = brk_referrals_leg(idx, X, "ehpad2");
    assert_int_equal(leg->state, BRK_LEG_SUPERSEDED);
    assert_true(leg->closed_us == T0 + 4);
    assert_int_equal(brk_referrals_due(idx, T0 + 5, plans, 4), 0);
    /* superseded is closed: its recipient can no longer accept */
    assert_int_equal(s_event(idx, "referral.accepted", "ehpad2", "ccas", T0 + 5, true,
                             reason, sizeof(reason)),
                     MLG_INVALID);
    assert_string_equal(reason, "/referral_id: superseded; cannot move to accepted");
    brk_referrals_destroy(&idx);
}

/* Duplicates: told to the publisher when it is the other referral's
   referrer or shares a consent with it; to a recipient holding both. */
static void
test_duplicates(void **state)
{
    (void)state;
    brk_referrals_t *idx = brk_referrals_new();
    brk_decision_t d[2] = {s_allow("ehpad"), s_allow("ehpad2")};
    s_open(idx, X, "ccas", d, 2, T0);
    brk_consents_t *consents = brk_consents_new();
    brk_decision_t mine = s_allow("ehpad");
    brk_referral_event_t ev = {.type = "referral.created",
                               .message_id = "eeeeeeee-0000-4000-8000-000000000005",
                               .publisher = "cd75",
                               .referral_id = Y,
                               .subject = "P",
                               .service = "nursing-home",
                               .priority = "urgent",
                               .deadline_us = DAY,
                               .decisions = &mine,
                               .ndecisions = 1,
                               .now = T0 + 10};
    brk_referral_plan_t plan;
    char reason[256];
    /* no consent between cd75 and ccas: stored, not told to cd75 */
    assert_int_equal(brk_referral_plan(idx, consents, &ev, &plan, reason, sizeof(reason)),
                     MLG_OK);
    assert_int_equal(plan.nmatches, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_string_equal(plan.matches[i].referral_id, X);
        assert_false(plan.matches[i].told_publisher);
        assert_true(plan.matches[i].since == T0);
        /* ehpad gets a leg of Y and holds one of X: told in its DELIVER */
        assert_int_equal(plan.matches[i].told_recipient,
                         strcmp(plan.matches[i].recipient, "ehpad") == 0);
    }
    brk_referrals_abandon(idx, &plan);
    brk_referral_plan_clear(&plan);
    /* a consent for P between cd75 and ccas, orientation and social */
    const char *parties[] = {"ccas", "cd75"}, *purposes[] = {"orientation"},
               *categories[] = {"social"};
    brk_consent_t *c =
        brk_consent_new("ffffffff-0000-4000-8000-000000000006", "P", parties, 2, purposes,
                        1, categories, 1, T0, BRK_FOREVER);
    assert_int_equal(brk_consents_add(consents, &c), 0);
    assert_int_equal(brk_referral_plan(idx, consents, &ev, &plan, reason, sizeof(reason)),
                     MLG_OK);
    assert_true(plan.matches[0].told_publisher && plan.matches[1].told_publisher);
    brk_referrals_abandon(idx, &plan);
    brk_referral_plan_clear(&plan);
    /* the same referrer is always told; another service matches nothing */
    ev.publisher = "ccas";
    assert_int_equal(brk_referral_plan(idx, NULL, &ev, &plan, reason, sizeof(reason)),
                     MLG_OK);
    assert_true(plan.matches[0].told_publisher);
    brk_referrals_abandon(idx, &plan);
    brk_referral_plan_clear(&plan);
    ev.service = "home-care";
    assert_int_equal(brk_referral_plan(idx, NULL, &ev, &plan, reason, sizeof(reason)),
                     MLG_OK);
    assert_int_equal(plan.nmatches, 0);
    brk_referrals_abandon(idx, &plan);
    brk_referral_plan_clear(&plan);
    /* closed legs match nothing */
    ev.service = "nursing-home";
    assert_int_equal(s_event(idx, "referral.cancelled", "ccas", "ehpad", T0 + 11, true,
                             reason, sizeof(reason)),
                     MLG_OK);
    assert_int_equal(brk_referral_plan(idx, NULL, &ev, &plan, reason, sizeof(reason)),
                     MLG_OK);
    assert_int_equal(plan.nmatches, 1);
    assert_string_equal(plan.matches[0].recipient, "ehpad2");
    brk_referrals_abandon(idx, &plan);
    brk_referral_plan_clear(&plan);
    brk_consents_destroy(&consents);
    brk_referrals_destroy(&idx);
}

/* One person's many open referrals for one service: a new one finds the
   oldest BRK_REFERRAL_MATCHES_MAX of them, and says it was cut. */
static void
test_duplicates_bounded(void **state)
{
    (void)state;
    brk_referrals_t *idx = brk_referrals_new();
    brk_decision_t d = s_allow("ehpad");
    char ids[BRK_REFERRAL_MATCHES_MAX + 6][37];
    for (int i = 0; i < BRK_REFERRAL_MATCHES_MAX + 6; i++) {
        snprintf(ids[i], sizeof(ids[i]), "00000000-0000-4000-8000-%012d", i);
        s_open(idx, ids[i], "ccas", &d, 1, T0 + i);
    }
    brk_referral_event_t ev = {.type = "referral.created",
                               .message_id = "eeeeeeee-0000-4000-8000-000000000009",
                               .publisher = "ccas",
                               .referral_id = X,
                               .subject = "P",
                               .service = "nursing-home",
                               .priority = "routine",
                               .decisions = &d,
                               .ndecisions = 1,
                               .now = T0 + 100};
    brk_referral_plan_t plan;
    char reason[256];
    assert_int_equal(brk_referral_plan(idx, NULL, &ev, &plan, reason, sizeof(reason)),
                     MLG_OK);
    assert_int_equal(plan.nmatches, BRK_REFERRAL_MATCHES_MAX);
    assert_true(plan.matches_cut);
    assert_string_equal(plan.matches[0].referral_id, ids[0]);
    assert_string_equal(plan.matches[BRK_REFERRAL_MATCHES_MAX - 1].referral_id,
                        ids[BRK_REFERRAL_MATCHES_MAX - 1]);
    brk_referrals_abandon(idx, &plan);
    brk_referral_plan_clear(&plan);
    /* exactly the bound: not cut */
    brk_referrals_destroy(&idx);
    idx = brk_referrals_new();
    for (int i = 0; i < BRK_REFERRAL_MATCHES_MAX; i++)
        s_open(idx, ids[i], "ccas", &d, 1, T0 + i);
    assert_int_equal(brk_referral_plan(idx, NULL, &ev, &plan, reason, sizeof(reason)),
                     MLG_OK);
    assert_int_equal(plan.nmatches, BRK_REFERRAL_MATCHES_MAX);
    assert_false(plan.matches_cut);
    brk_referrals_abandon(idx, &plan);
    brk_referral_plan_clear(&plan);
    brk_referrals_destroy(&idx);
}

/* A new connection loads the index again while plans are in flight:
   their busy marks and a referral opened but not stored go over; the
   due times and the supersede queue come from the loaded legs. */
static void
test_restart(void **state)
{
    (void)state;
    brk_referrals_t *idx = s_leg_in(BRK_LEG_SENT);
    brk_decision_t d = s_allow("ehpad");
    brk_referral_event_t ev = {.type = "referral.created",
                               .message_id = "aaaaaaaa-0000-4000-8000-000000000007",
                               .publisher = "ccas",
                               .referral_id = Y,
                               .subject = "Q",
                               .service = "home-care",
                               .priority = "routine",
                               .deadline_us = DAY,
                               .decisions = &d,
                               .ndecisions = 1,
                               .now = T0};
    brk_referral_plan_t open, move;
    char reason[256];
    assert_int_equal(brk_referral_plan(idx, NULL, &ev, &open, reason, sizeof(reason)),
                     MLG_OK);
    mlg_agency_t to = {.id = "ccas"};
    brk_referral_event_t mv = {.type = "referral.accepted",
                               .message_id = "aaaaaaaa-0000-4000-8000-000000000008",
                               .publisher = "ehpad",
                               .referral_id = X,
                               .subject = "P",
                               .to = &to,
                               .nto = 1,
                               .now = T0 + 1};
    assert_int_equal(brk_referral_plan(idx, NULL, &mv, &move, reason, sizeof(reason)),
                     MLG_OK);
    /* the database has X (its leg sent, due at T0 + DAY), not Y */
    brk_referrals_t *loaded = s_leg_in(BRK_LEG_SENT);
    brk_referrals_replace(idx, &loaded);
    assert_null(loaded);
    assert_int_equal(brk_referrals_count(idx), 2);
    assert_int_equal(s_event(idx, "referral.declined", "ehpad", "ccas", T0 + 2, true,
                             reason, sizeof(reason)),
                     MLG_UNAVAILABLE); /* still busy with the accept */
    ev.message_id = "aaaaaaaa-0000-4000-8000-000000000009";
    brk_referral_plan_t again;
    assert_int_equal(brk_referral_plan(idx, NULL, &ev, &again, reason, sizeof(reason)),
                     MLG_INVALID); /* Y is still taken */
    brk_referrals_commit(idx, &move);
    brk_referrals_commit(idx, &open);
    brk_referral_plan_clear(&move);
    brk_referral_plan_clear(&open);
    assert_int_equal(brk_referrals_leg(idx, X, "ehpad")->state, BRK_LEG_ACCEPTED);
    assert_non_null(brk_referrals_leg(idx, Y, "ehpad"));
    /* X's leg is decided: only Y's falls due */
    brk_referral_plan_t plans[2];
    assert_int_equal(brk_referrals_due(idx, T0 + 2 * DAY, plans, 2), 1);
    assert_string_equal(plans[0].referral_id, Y);
    brk_referral_plan_clear(&plans[0]);
    brk_referrals_destroy(&idx);

    /* a started leg loaded with another open one: superseded after a
       restart as before it */
    idx = s_leg_in(BRK_LEG_STARTED);
    brk_leg_t other = *brk_referrals_leg(idx, X, "ehpad");
    snprintf(other.recipient, sizeof(other.recipient), "ehpad2");
    other.state = BRK_LEG_RECEIVED;
    assert_int_equal(brk_referrals_load_leg(idx, &other), 0);
    assert_int_equal(brk_referrals_load_leg(idx, &other), -1); /* twice */
    assert_int_equal(brk_referrals_due(idx, T0, plans, 2), 1);
    assert_int_equal(plans[0].step, BRK_REFERRAL_SUPERSEDE);
    assert_string_equal(plans[0].legs[0].recipient, "ehpad2");
    brk_referral_plan_clear(&plans[0]);
    brk_referrals_destroy(&idx);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_names),
        cmocka_unit_test(test_every_row_of_the_table),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_open),
        cmocka_unit_test(test_deadline),
        cmocka_unit_test(test_supersede),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_duplicates_bounded),
        cmocka_unit_test(test_restart),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
