/*  referral_figures.c: the referral figures operators and the
    département watch (DESIGN.md "Monitoring"): the legs of each service
    and priority by state, their times to first decision, and the overdue
    legs. The counts are kept as the index changes (a leg loaded or
    opened, a commit's moves, a due time taken from the heap), so no
    publish costs a scan of the legs; brk_referrals_figures copies them,
    with the overdue legs, for the HTTP thread once a second. Pure, like
    the index it keeps them for: referral_index.c calls the hooks,
    broker.c takes the copy, metrics.c writes it out. */

#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "referral_int.h"

const double brk_decision_bounds[BRK_DECISION_NBOUNDS] = {
    1,          10,         60,         600,        3600,        4 * 3600,    12 * 3600,
    1 * 86400., 2 * 86400., 4 * 86400., 7 * 86400., 14 * 86400., 30 * 86400., 90 * 86400.,
};

/* Open and without a decision: the clock still runs (§9). */
static bool
s_undecided(const brk_leg_t *leg)
{
    return brk_leg_state_open(leg->state) && leg->decided_us == 0;
}

/* The tally of the leg's service and priority, made on first use; NULL
   when out of memory (the figures then miss the leg). */
static brk_referral_tally_t *
s_tally(brk_referrals_t *self, const brk_leg_t *leg)
{
    char key[2 * BRK_REFERRAL_WORD_MAX + 2];
    snprintf(key, sizeof(key), "%s\x1f%s", leg->service, leg->priority);
    brk_referral_tally_t *t = zhashx_lookup(self->tallies, key);
    if (t)
        return t;
    t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    snprintf(t->service, sizeof(t->service), "%s", leg->service);
    snprintf(t->priority, sizeof(t->priority), "%s", leg->priority);
    if (zhashx_insert(self->tallies, key, t) != 0) {
        free(t);
        return NULL;
    }
    return t;
}

/* A first decision: the time from the leg's opening to it. */
static void
s_observe(brk_referral_tally_t *t, const brk_leg_t *leg)
{
    double seconds = (double)(leg->decided_us - leg->opened_us) / 1e6;
    if (!(seconds >= 0))
        seconds = 0;
    size_t i = 0;
    while (i < BRK_DECISION_NBOUNDS && seconds > brk_decision_bounds[i])
        i++;
    if (i < BRK_DECISION_NBOUNDS)
        t->buckets[i]++;
    t->decisions++;
    t->decision_seconds += seconds;
}

static void
s_overdue_key(const brk_leg_t *leg, char *key, size_t len)
{
    snprintf(key, len, "%s\x1f%s", leg->referral_id, leg->recipient);
}

/* The set of overdue legs holds the leg while it waits, not after. */
static void
s_overdue_mark(brk_referrals_t *self, brk_leg_t *leg, bool overdue)
{
    char key[MLG_UUID_LEN + MLG_AGENCY_ID_MAX + 2];
    s_overdue_key(leg, key, sizeof(key));
    if (!overdue)
        zhashx_delete(self->overdue, key);
    else if (!zhashx_lookup(self->overdue, key))
        zhashx_insert(self->overdue, key, leg); /* out of memory: not listed */
}

void
brk_referral_tally_add(brk_referrals_t *self, brk_leg_t *leg)
{
    brk_referral_tally_t *t = s_tally(self, leg);
    if (t) {
        t->legs[leg->state]++;
        if (leg->decided_us)
            s_observe(t, leg);
    }
    if (s_undecided(leg) && leg->overdue_us)
        s_overdue_mark(self, leg, true);
}

void
brk_referral_tally_move(brk_referrals_t *self, const brk_leg_t *was, brk_leg_t *leg)
{
    brk_referral_tally_t *t = s_tally(self, leg);
    if (t) {
        if (t->legs[was->state])
            t->legs[was->state]--;
        t->legs[leg->state]++;
        if (!was->decided_us && leg->decided_us)
            s_observe(t, leg);
    }
    if (!s_undecided(leg))
        s_overdue_mark(self, leg, false);
    else if (leg->overdue_us)
        s_overdue_mark(self, leg, true);
}

void
brk_referral_overdue_seen(brk_referrals_t *self, brk_leg_t *leg, int64_t now)
{
    if (s_undecided(leg) && leg->due_us <= now)
        s_overdue_mark(self, leg, true);
}

/* ---- the copy ----------------------------------------------------------- */

typedef struct {
    brk_overdue_leg_t *legs;
    size_t n, cap;
    zhashx_t *seen; /* the heap's legs listed already */
    bool failed;
} s_list_t;

static void
s_list_add(s_list_t *list, const brk_leg_t *leg)
{
    if (list->n == list->cap) {
        size_t cap = list->cap ? list->cap * 2 : 16;
        brk_overdue_leg_t *legs = realloc(list->legs, cap * sizeof(*legs));
        if (!legs) {
            list->failed = true;
            return;
        }
        list->legs = legs;
        list->cap = cap;
    }
    brk_overdue_leg_t *o = &list->legs[list->n++];
    memset(o, 0, sizeof(*o));
    snprintf(o->referral_id, sizeof(o->referral_id), "%s", leg->referral_id);
    snprintf(o->referrer, sizeof(o->referrer), "%s", leg->referrer);
    snprintf(o->recipient, sizeof(o->recipient), "%s", leg->recipient);
    snprintf(o->service, sizeof(o->service), "%s", leg->service);
    o->state = leg->state;
    o->due_us = leg->due_us;
}

/* The heap's legs fallen due that no notice has taken yet. A subtree
   whose root is due after `now` holds none, so the walk visits the due
   times up to now and their children; its depth is the heap's height. */
static void
s_heap_walk(const brk_referrals_t *self, size_t i, int64_t now, s_list_t *list)
{
    if (i >= self->nheap || self->heap[i].due > now)
        return;
    const brk_referral_due_t *d = &self->heap[i];
    const brk_leg_t *leg =
        brk_referral_rec_leg(brk_referrals_find(self, d->referral_id), d->recipient);
    char key[MLG_UUID_LEN + MLG_AGENCY_ID_MAX + 2];
    if (leg) {
        s_overdue_key(leg, key, sizeof(key));
        if (s_undecided(leg) && leg->due_us <= now && !zhashx_lookup(self->overdue, key)
            && !zhashx_lookup(list->seen, key)) {
            zhashx_insert(list->seen, key, (void *)1);
            s_list_add(list, leg);
        }
    }
    s_heap_walk(self, 2 * i + 1, now, list);
    s_heap_walk(self, 2 * i + 2, now, list);
}

static int
s_by_recipient(const void *a, const void *b)
{
    const brk_overdue_leg_t *x = a, *y = b;
    return strcmp(x->recipient, y->recipient);
}

/* The longest overdue first; then by referral and recipient, so that
   the list is the same from one second to the next. */
static int
s_by_due(const void *a, const void *b)
{
    const brk_overdue_leg_t *x = a, *y = b;
    if (x->due_us != y->due_us)
        return x->due_us < y->due_us ? -1 : 1;
    int c = strcmp(x->referral_id, y->referral_id);
    return c ? c : strcmp(x->recipient, y->recipient);
}

static int
s_by_service(const void *a, const void *b)
{
    const brk_referral_tally_t *x = a, *y = b;
    int c = strcmp(x->service, y->service);
    return c ? c : strcmp(x->priority, y->priority);
}

/* Counts the sorted list's runs of one recipient into f->recipients. */
static bool
s_recipients(brk_referral_figures_t *f, const brk_overdue_leg_t *legs, size_t n)
{
    f->recipients = calloc(n ? n : 1, sizeof(*f->recipients));
    if (!f->recipients)
        return false;
    for (size_t i = 0; i < n; i++) {
        brk_overdue_count_t *last =
            f->nrecipients ? &f->recipients[f->nrecipients - 1] : NULL;
        if (!last || strcmp(last->recipient, legs[i].recipient) != 0) {
            last = &f->recipients[f->nrecipients++];
            snprintf(last->recipient, sizeof(last->recipient), "%s", legs[i].recipient);
        }
        last->legs++;
    }
    return true;
}

static bool
s_tallies(const brk_referrals_t *self, brk_referral_figures_t *f)
{
    size_t n = zhashx_size(self->tallies);
    f->tallies = calloc(n ? n : 1, sizeof(*f->tallies));
    if (!f->tallies)
        return false;
    for (brk_referral_tally_t *t = zhashx_first(self->tallies); t && f->ntallies < n;
         t = zhashx_next(self->tallies))
        f->tallies[f->ntallies++] = *t;
    qsort(f->tallies, f->ntallies, sizeof(*f->tallies), s_by_service);
    return true;
}

brk_referral_figures_t *
brk_referrals_figures(const brk_referrals_t *self, int64_t now, size_t max_listed)
{
    brk_referral_figures_t *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->at = now;
    s_list_t list = {.seen = zhashx_new()};
    bool ok = list.seen && s_tallies(self, f);
    for (brk_leg_t *leg = ok ? zhashx_first(self->overdue) : NULL; leg;
         leg = zhashx_next(self->overdue))
        if (s_undecided(leg))
            s_list_add(&list, leg);
    if (ok)
        s_heap_walk(self, 0, now, &list);
    ok = ok && !list.failed;
    if (ok && list.n) {
        qsort(list.legs, list.n, sizeof(*list.legs), s_by_recipient);
        ok = s_recipients(f, list.legs, list.n);
        qsort(list.legs, list.n, sizeof(*list.legs), s_by_due);
    }
    if (ok) {
        f->overdue_total = list.n;
        f->noverdue = list.n < max_listed ? list.n : max_listed;
        /* the figures keep the longest overdue only */
        brk_overdue_leg_t *kept =
            realloc(list.legs, (f->noverdue ? f->noverdue : 1) * sizeof(*kept));
        f->overdue = kept ? kept : list.legs;
        list.legs = NULL;
    }
    else
        brk_referral_figures_destroy(&f);
    free(list.legs);
    zhashx_destroy(&list.seen);
    return f;
}

void
brk_referral_figures_destroy(brk_referral_figures_t **self_p)
{
    brk_referral_figures_t *self = *self_p;
    if (!self)
        return;
    free(self->tallies);
    free(self->recipients);
    free(self->overdue);
    free(self);
    *self_p = NULL;
}
