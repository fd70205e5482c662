/*  test_referral_figures.c: broker/referral_figures.c, the counts kept
    for operators without a database: the legs by service, priority and
    state, and the times to first decision, as legs are loaded and plans
    committed (each decision counted once, also across a new
    connection's index); the overdue legs, whether a notice has taken
    them or not, in flight, abandoned or stored, until their decision;
    the list's order and bound; and no subject in any of it. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "referral.h"

#define SEC 1000000LL
#define DAY (86400 * SEC)
#define T0 1700000000000000LL
#define SUBJECT "NIR-2-51-02-75-113-042"

/* The referral id of number n. */
static const char *
s_id(int n)
{
    static char ids[16][37];
    snprintf(ids[n], sizeof(ids[n]), "%08d-0000-4000-8000-000000000000", n);
    return ids[n];
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

/* Referral n from ccas about SUBJECT to the recipients, stored at `now`,
   due `deadline` later. */
static void
s_open(brk_referrals_t *idx, int n, const char *service, const char *priority,
       const char *r1, const char *r2, int64_t deadline, int64_t now)
{
    brk_decision_t d[2] = {s_allow(r1), s_allow(r2 ? r2 : "")};
    brk_referral_event_t ev = {.type = "referral.created",
                               .message_id = "aaaaaaaa-0000-4000-8000-000000000001",
                               .publisher = "ccas",
                               .referral_id = s_id(n),
                               .subject = SUBJECT,
                               .service = service,
                               .priority = priority,
                               .deadline_us = deadline,
                               .decisions = d,
                               .ndecisions = r2 ? 2 : 1,
                               .now = now};
    brk_referral_plan_t plan;
    char reason[256] = "";
    assert_int_equal(brk_referral_plan(idx, NULL, &ev, &plan, reason, sizeof(reason)),
                     MLG_OK);
    brk_referrals_commit(idx, &plan);
    brk_referral_plan_clear(&plan);
}

/* An agency's event about referral n, its plan committed or, when
   `plan` is given, left in flight there. */
static void
s_event(brk_referrals_t *idx, int n, const char *type, const char *publisher,
        const char *to, int64_t now, brk_referral_plan_t *plan)
{
    mlg_agency_t addr;
    memset(&addr, 0, sizeof(addr));
    snprintf(addr.id, sizeof(addr.id), "%s", to);
    brk_referral_event_t ev = {.type = type,
                               .message_id = "bbbbbbbb-0000-4000-8000-000000000002",
                               .publisher = publisher,
                               .referral_id = s_id(n),
                               .subject = SUBJECT,
                               .to = &addr,
                               .nto = 1,
                               .now = now};
    brk_referral_plan_t mine;
    char reason[256] = "";
    brk_referral_plan_t *p = plan ? plan : &mine;
    assert_int_equal(brk_referral_plan(idx, NULL, &ev, p, reason, sizeof(reason)),
                     MLG_OK);
    if (plan)
        return;
    brk_referrals_commit(idx, p);
    brk_referral_plan_clear(p);
}

/* A leg as the database gives it, with its referral when new. */
static void
s_load(brk_referrals_t *idx, int n, const char *recipient, const char *service,
       brk_leg_state_t state, int64_t decided, int64_t due, int64_t overdue)
{
    brk_referrals_load_referral(idx, s_id(n), "ccas", SUBJECT, service, "routine", T0);
    brk_leg_t leg;
    memset(&leg, 0, sizeof(leg));
    snprintf(leg.referral_id, sizeof(leg.referral_id), "%s", s_id(n));
    snprintf(leg.recipient, sizeof(leg.recipient), "%s", recipient);
    snprintf(leg.referrer, sizeof(leg.referrer), "ccas");
    snprintf(leg.subject, sizeof(leg.subject), SUBJECT);
    snprintf(leg.service, sizeof(leg.service), "%s", service);
    snprintf(leg.priority, sizeof(leg.priority), "routine");
    leg.state = state;
    leg.opened_us = T0;
    leg.decided_us = decided;
    leg.closed_us = brk_leg_state_open(state) ? 0 : T0 + DAY;
    leg.due_us = due;
    leg.overdue_us = overdue;
    assert_int_equal(brk_referrals_load_leg(idx, &leg), 0);
}

static const brk_referral_tally_t *
s_tally(const brk_referral_figures_t *f, const char *service, const char *priority)
{
    for (size_t i = 0; i < f->ntallies; i++)
        if (strcmp(f->tallies[i].service, service) == 0
            && strcmp(f->tallies[i].priority, priority) == 0)
            return &f->tallies[i];
    return NULL;
}

/* The bucket a time falls in: the first bound at or above it. */
static size_t
s_bucket(double seconds)
{
    size_t i = 0;
    while (i < BRK_DECISION_NBOUNDS && seconds > brk_decision_bounds[i])
        i++;
    return i;
}

static uint64_t
s_overdue_of(const brk_referral_figures_t *f, const char *recipient)
{
    for (size_t i = 0; i < f->nrecipients; i++)
        if (strcmp(f->recipients[i].recipient, recipient) == 0)
            return f->recipients[i].legs;
    return 0;
}

/* Whether `len` bytes hold the text (without its NUL). */
static bool
s_holds(const void *bytes, size_t len, const char *text)
{
    size_t n = strlen(text);
    for (size_t i = 0; i + n <= len; i++)
        if (memcmp((const char *)bytes + i, text, n) == 0)
            return true;
    return false;
}

static void
test_bounds(void **state)
{
    (void)state;
    for (size_t i = 1; i < BRK_DECISION_NBOUNDS; i++)
        assert_true(brk_decision_bounds[i] > brk_decision_bounds[i - 1]);
    assert_true(brk_decision_bounds[0] == 1);
    assert_true(brk_decision_bounds[BRK_DECISION_NBOUNDS - 1] == 90 * 86400.);
}

/* The legs by state, and each first decision counted once: received is
   no decision, waitlisted is, the accept after it is not again. */
static void
test_tallies_as_plans_commit(void **state)
{
    (void)state;
    brk_referrals_t *idx = brk_referrals_new();
    s_open(idx, 1, "nursing-home", "routine", "ehpad", "ehpad2", 15 * DAY, T0);
    s_open(idx, 2, "home-care", "urgent", "ssiad", NULL, 2 * DAY, T0);
    brk_referral_figures_t *f = brk_referrals_figures(idx, T0, 10);
    assert_non_null(f);
    assert_int_equal(f->ntallies, 2);
    assert_string_equal(f->tallies[0].service, "home-care"); /* by service */
    assert_string_equal(f->tallies[1].service, "nursing-home");
    assert_int_equal(s_tally(f, "nursing-home", "routine")->legs[BRK_LEG_SENT], 2);
    assert_int_equal(s_tally(f, "home-care", "urgent")->legs[BRK_LEG_SENT], 1);
    assert_int_equal(s_tally(f, "nursing-home", "routine")->decisions, 0);
    brk_referral_figures_destroy(&f);
    assert_null(f);

    s_event(idx, 1, "referral.received", "ehpad", "ccas", T0 + 1 * SEC, NULL);
    s_event(idx, 1, "referral.waitlisted", "ehpad", "ccas", T0 + 90 * SEC, NULL);
    s_event(idx, 1, "referral.accepted", "ehpad", "ccas", T0 + 200 * SEC, NULL);
    s_event(idx, 1, "referral.declined", "ehpad2", "ccas", T0 + 2 * DAY, NULL);
    s_event(idx, 2, "referral.received", "ssiad", "ccas", T0 + 5 * SEC, NULL);
    f = brk_referrals_figures(idx, T0 + 3 * DAY, 10);
    const brk_referral_tally_t *t = s_tally(f, "nursing-home", "routine");
    assert_int_equal(t->legs[BRK_LEG_SENT], 0);
    assert_int_equal(t->legs[BRK_LEG_ACCEPTED], 1);
    assert_int_equal(t->legs[BRK_LEG_DECLINED], 1);
    assert_int_equal(t->decisions, 2);
    assert_true(t->decision_seconds == 90 + 2 * 86400);
    for (size_t i = 0; i < BRK_DECISION_NBOUNDS; i++)
        assert_int_equal(t->buckets[i], i == s_bucket(90) || i == s_bucket(2 * 86400));
    assert_int_equal(s_bucket(2 * 86400), 8); /* a time on a bound is in its bucket */
    t = s_tally(f, "home-care", "urgent");
    assert_int_equal(t->legs[BRK_LEG_RECEIVED], 1);
    assert_int_equal(t->decisions, 0);
    brk_referral_figures_destroy(&f);

    /* the referrer cancels the home-care leg: closed, counted there */
    s_event(idx, 2, "referral.cancelled", "ccas", "ssiad", T0 + 3 * DAY, NULL);
    f = brk_referrals_figures(idx, T0 + 3 * DAY, 10);
    t = s_tally(f, "home-care", "urgent");
    assert_int_equal(t->legs[BRK_LEG_RECEIVED], 0);
    assert_int_equal(t->legs[BRK_LEG_CANCELLED], 1);
    assert_int_equal(t->decisions, 0);
    brk_referral_figures_destroy(&f);
    brk_referrals_destroy(&idx);
}

/* Loaded from the database: every decided leg counts (the figures hold
   what the database holds, not what this process saw), and overdue
   legs are found whether told already or not. */
static void
test_seeded_by_loading(void **state)
{
    (void)state;
    int64_t now = T0 + 10 * DAY;
    brk_referrals_t *idx = brk_referrals_new();
    s_load(idx, 1, "ehpad", "nursing-home", BRK_LEG_DECLINED, T0 + 3600 * SEC, T0 + DAY,
           0);
    s_load(idx, 1, "ehpad2", "nursing-home", BRK_LEG_STARTED, T0 + 2 * DAY, T0 + DAY, 0);
    /* told overdue at its due time, still waiting */
    s_load(idx, 2, "ssiad", "home-care", BRK_LEG_SENT, 0, T0 + DAY, T0 + DAY);
    /* fallen due, not told (the broker was down) */
    s_load(idx, 3, "ssiad", "home-care", BRK_LEG_RECEIVED, 0, T0 + 2 * DAY, 0);
    s_load(idx, 4, "ehpad", "home-care", BRK_LEG_SENT, 0, T0 + 3 * DAY, 0);
    /* not due yet; closed without a decision */
    s_load(idx, 5, "ehpad", "home-care", BRK_LEG_SENT, 0, now + SEC, 0);
    s_load(idx, 6, "ehpad", "home-care", BRK_LEG_CANCELLED, 0, T0 + DAY, 0);
    brk_referral_figures_t *f = brk_referrals_figures(idx, now, 10);
    const brk_referral_tally_t *t = s_tally(f, "nursing-home", "routine");
    assert_int_equal(t->decisions, 2);
    assert_true(t->decision_seconds == 3600 + 2 * 86400);
    assert_int_equal(t->buckets[s_bucket(3600)], 1);
    t = s_tally(f, "home-care", "routine");
    assert_int_equal(t->legs[BRK_LEG_SENT], 3);
    assert_int_equal(t->legs[BRK_LEG_RECEIVED], 1);
    assert_int_equal(t->legs[BRK_LEG_CANCELLED], 1);
    assert_int_equal(f->overdue_total, 3);
    assert_int_equal(f->noverdue, 3);
    assert_int_equal(f->nrecipients, 2);
    assert_string_equal(f->recipients[0].recipient, "ehpad"); /* by id */
    assert_int_equal(s_overdue_of(f, "ssiad"), 2);
    assert_int_equal(s_overdue_of(f, "ehpad"), 1);
    /* the longest overdue first */
    assert_string_equal(f->overdue[0].referral_id, s_id(2));
    assert_string_equal(f->overdue[1].referral_id, s_id(3));
    assert_string_equal(f->overdue[2].referral_id, s_id(4));
    assert_string_equal(f->overdue[1].referrer, "ccas");
    assert_string_equal(f->overdue[1].service, "home-care");
    assert_int_equal(f->overdue[1].state, BRK_LEG_RECEIVED);
    assert_true(f->overdue[1].due_us == T0 + 2 * DAY);
    /* no subject in the figures */
    assert_false(s_holds(f->overdue, f->noverdue * sizeof(*f->overdue), SUBJECT));
    brk_referral_figures_destroy(&f);
    /* a second later, the one not due yet is */
    f = brk_referrals_figures(idx, now + SEC, 10);
    assert_int_equal(f->overdue_total, 4);
    brk_referral_figures_destroy(&f);
    brk_referrals_destroy(&idx);
}

/* An overdue leg stays listed once, whatever its notice does: taken
   from the heap, abandoned (back in the heap), given again, stored; it
   leaves the list at its first decision. */
static void
test_overdue_through_its_notice(void **state)
{
    (void)state;
    brk_referrals_t *idx = brk_referrals_new();
    s_open(idx, 1, "home-care", "routine", "ssiad", NULL, 2 * SEC, T0);
    brk_referral_figures_t *f = brk_referrals_figures(idx, T0 + SEC, 10);
    assert_int_equal(f->overdue_total, 0);
    brk_referral_figures_destroy(&f);
    f = brk_referrals_figures(idx, T0 + 3 * SEC, 10); /* due, no notice yet */
    assert_int_equal(f->overdue_total, 1);
    brk_referral_figures_destroy(&f);
    brk_referral_plan_t plans[2];
    assert_int_equal(brk_referrals_due(idx, T0 + 3 * SEC, plans, 2), 1);
    f = brk_referrals_figures(idx, T0 + 3 * SEC, 10); /* its notice in flight */
    assert_int_equal(f->overdue_total, 1);
    brk_referral_figures_destroy(&f);
    brk_referrals_abandon(idx, &plans[0]);
    brk_referral_plan_clear(&plans[0]);
    f = brk_referrals_figures(idx, T0 + 4 * SEC, 10); /* in the heap and listed */
    assert_int_equal(f->overdue_total, 1);
    assert_int_equal(f->noverdue, 1);
    brk_referral_figures_destroy(&f);
    assert_int_equal(brk_referrals_due(idx, T0 + 9 * SEC, plans, 2), 1);
    brk_referrals_commit(idx, &plans[0]);
    brk_referral_plan_clear(&plans[0]);
    f = brk_referrals_figures(idx, T0 + 10 * SEC, 10); /* told */
    assert_int_equal(f->overdue_total, 1);
    assert_string_equal(f->overdue[0].recipient, "ssiad");
    assert_int_equal(f->overdue[0].state, BRK_LEG_SENT);
    brk_referral_figures_destroy(&f);
    /* received is no decision; waitlisted is */
    s_event(idx, 1, "referral.received", "ssiad", "ccas", T0 + 11 * SEC, NULL);
    f = brk_referrals_figures(idx, T0 + 12 * SEC, 10);
    assert_int_equal(f->overdue_total, 1);
    assert_int_equal(f->overdue[0].state, BRK_LEG_RECEIVED);
    brk_referral_figures_destroy(&f);
    s_event(idx, 1, "referral.waitlisted", "ssiad", "ccas", T0 + 13 * SEC, NULL);
    f = brk_referrals_figures(idx, T0 + 14 * SEC, 10);
    assert_int_equal(f->overdue_total, 0);
    assert_int_equal(f->nrecipients, 0);
    assert_int_equal(s_tally(f, "home-care", "routine")->decisions, 1);
    brk_referral_figures_destroy(&f);
    brk_referrals_destroy(&idx);
}

/* Legs fallen due while their referral is busy (another event of it
   being stored) wait in the heap, taken already: listed once each. */
static void
test_overdue_while_busy(void **state)
{
    (void)state;
    brk_referrals_t *idx = brk_referrals_new();
    s_open(idx, 1, "home-care", "routine", "ssiad", "ssiad2", 2 * SEC, T0);
    brk_referral_plan_t move, plans[2];
    s_event(idx, 1, "referral.received", "ssiad2", "ccas", T0 + SEC, &move);
    assert_int_equal(brk_referrals_due(idx, T0 + 3 * SEC, plans, 2), 0); /* busy */
    brk_referral_figures_t *f = brk_referrals_figures(idx, T0 + 3 * SEC, 10);
    assert_int_equal(f->overdue_total, 2);
    assert_int_equal(f->noverdue, 2);
    assert_int_equal(f->nrecipients, 2);
    assert_int_equal(s_overdue_of(f, "ssiad"), 1);
    assert_int_equal(s_overdue_of(f, "ssiad2"), 1);
    brk_referral_figures_destroy(&f);
    brk_referrals_commit(idx, &move);
    brk_referral_plan_clear(&move);
    f = brk_referrals_figures(idx, T0 + 3 * SEC, 10);
    assert_int_equal(f->overdue_total, 2);
    assert_int_equal(f->overdue[1].state, BRK_LEG_RECEIVED); /* ssiad2's, as it is */
    brk_referral_figures_destroy(&f);
    brk_referrals_destroy(&idx);
}

/* The list is bounded; the count is not. */
static void
test_list_bound(void **state)
{
    (void)state;
    brk_referrals_t *idx = brk_referrals_new();
    for (int n = 1; n <= 5; n++)
        s_open(idx, n, "home-care", "routine", "ssiad", NULL, (10 - n) * SEC, T0);
    brk_referral_figures_t *f = brk_referrals_figures(idx, T0 + 20 * SEC, 2);
    assert_int_equal(f->overdue_total, 5);
    assert_int_equal(f->noverdue, 2);
    assert_int_equal(s_overdue_of(f, "ssiad"), 5);
    assert_string_equal(f->overdue[0].referral_id, s_id(5)); /* due first */
    assert_string_equal(f->overdue[1].referral_id, s_id(4));
    brk_referral_figures_destroy(&f);
    brk_referrals_destroy(&idx);
}

/* A new connection's index replaces the old while a decision is in
   flight: it is counted once, whether the loaded legs have it already
   or not. */
static void
test_replace_counts_once(void **state)
{
    (void)state;
    for (int stored = 0; stored < 2; stored++) {
        brk_referrals_t *idx = brk_referrals_new();
        s_load(idx, 1, "ehpad", "nursing-home", BRK_LEG_SENT, 0, T0 + DAY, 0);
        brk_referral_plan_t plan;
        s_event(idx, 1, "referral.accepted", "ehpad", "ccas", T0 + 60 * SEC, &plan);
        brk_referrals_t *loaded = brk_referrals_new();
        if (stored)
            s_load(loaded, 1, "ehpad", "nursing-home", BRK_LEG_ACCEPTED, T0 + 60 * SEC,
                   T0 + DAY, 0);
        else
            s_load(loaded, 1, "ehpad", "nursing-home", BRK_LEG_SENT, 0, T0 + DAY, 0);
        brk_referrals_replace(idx, &loaded);
        brk_referrals_commit(idx, &plan);
        brk_referral_plan_clear(&plan);
        brk_referral_figures_t *f = brk_referrals_figures(idx, T0 + 2 * DAY, 10);
        const brk_referral_tally_t *t = s_tally(f, "nursing-home", "routine");
        assert_int_equal(t->decisions, 1);
        assert_int_equal(t->legs[BRK_LEG_ACCEPTED], 1);
        assert_int_equal(t->legs[BRK_LEG_SENT], 0);
        assert_int_equal(f->overdue_total, 0);
        brk_referral_figures_destroy(&f);
        brk_referrals_destroy(&idx);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_tallies_as_plans_commit),
        cmocka_unit_test(test_seeded_by_loading),
        cmocka_unit_test(test_overdue_through_its_notice),
        cmocka_unit_test(test_overdue_while_busy),
        cmocka_unit_test(test_list_bound),
        cmocka_unit_test(test_replace_counts_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
