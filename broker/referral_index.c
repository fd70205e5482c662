/*  referral_index.c: the referrals the broker follows, in memory: every
    referral and leg the database has (closed ones too: a refused move
    names the leg's state), the open referrals by person and service (for
    duplicates), a min-heap of due times (a tick costs the legs that fell
    due, not every leg) and the referrals whose started leg supersedes
    the others; loading, a new connection's index taken in place of the
    old, a plan's commit or abandon, and the broker's notices due. Each
    change of a leg is told to referral_figures.c, which keeps the
    figures. Called by the event loop and the store's rebuild; the rules
    are referral.c's. */

#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "referral_int.h"

/* ---- the index ---------------------------------------------------------- */

static void
s_referral_free(void **item)
{
    brk_referral_rec_t *r = *item;
    if (!r)
        return;
    for (size_t i = 0; i < r->nlegs; i++)
        free(r->legs[i]);
    free(r->legs);
    free(r);
    *item = NULL;
}

static void
s_list_free(void **item)
{
    zlistx_destroy((zlistx_t **)item);
}

static void
s_tally_free(void **item)
{
    free(*item);
    *item = NULL;
}

brk_referrals_t *
brk_referrals_new(void)
{
    brk_referrals_t *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    self->by_id = zhashx_new();
    self->by_person = zhashx_new();
    self->supersede = zlistx_new();
    self->tallies = zhashx_new();
    self->overdue = zhashx_new(); /* a set of legs: no destructor */
    if (!self->by_id || !self->by_person || !self->supersede || !self->tallies
        || !self->overdue) {
        brk_referrals_destroy(&self);
        return NULL;
    }
    zhashx_set_destructor(self->by_id, s_referral_free);
    zhashx_set_destructor(self->by_person, s_list_free);
    zhashx_set_destructor(self->tallies, s_tally_free);
    zlistx_set_destructor(self->supersede, (zlistx_destructor_fn *)zstr_free);
    zlistx_set_duplicator(self->supersede, (zlistx_duplicator_fn *)strdup);
    return self;
}

void
brk_referrals_destroy(brk_referrals_t **self_p)
{
    brk_referrals_t *self = *self_p;
    if (!self)
        return;
    zhashx_destroy(&self->by_person); /* before the referrals it lists */
    zhashx_destroy(&self->overdue);   /* likewise */
    zhashx_destroy(&self->by_id);
    zhashx_destroy(&self->tallies);
    zlistx_destroy(&self->supersede);
    free(self->heap);
    free(self);
    *self_p = NULL;
}

brk_referral_rec_t *
brk_referrals_find(const brk_referrals_t *self, const char *id)
{
    return zhashx_lookup(self->by_id, id);
}

brk_leg_t *
brk_referral_rec_leg(const brk_referral_rec_t *r, const char *recipient)
{
    for (size_t i = 0; r && i < r->nlegs; i++)
        if (strcmp(r->legs[i]->recipient, recipient) == 0)
            return r->legs[i];
    return NULL;
}

static bool
s_has_open_leg(const brk_referral_rec_t *r)
{
    for (size_t i = 0; i < r->nlegs; i++)
        if (brk_leg_state_open(r->legs[i]->state))
            return true;
    return false;
}

void
brk_referral_person_key(const char *subject, const char *service, char *key, size_t len)
{
    snprintf(key, len, "%s\x1f%s", subject, service);
}

/* Lists it by person and service while it has an open leg, not after. */
static void
s_person_update(brk_referrals_t *self, brk_referral_rec_t *r)
{
    bool open = s_has_open_leg(r);
    if (open == r->by_person)
        return;
    char key[sizeof(r->subject) + sizeof(r->service) + 2];
    brk_referral_person_key(r->subject, r->service, key, sizeof(key));
    zlistx_t *list = zhashx_lookup(self->by_person, key);
    if (open) {
        if (!list) {
            list = zlistx_new();
            if (!list || zhashx_insert(self->by_person, key, list) != 0) {
                zlistx_destroy(&list);
                return; /* out of memory: its duplicates go unseen */
            }
        }
        if (zlistx_add_end(list, r))
            r->by_person = true;
        return;
    }
    if (list && zlistx_find(list, r))
        zlistx_delete(list, zlistx_cursor(list));
    if (list && zlistx_size(list) == 0)
        zhashx_delete(self->by_person, key);
    r->by_person = false;
}

/* ---- the heap of due times ---------------------------------------------- */

static void
s_heap_swap(brk_referral_due_t *a, brk_referral_due_t *b)
{
    brk_referral_due_t t = *a;
    *a = *b;
    *b = t;
}

static void
s_heap_push(brk_referrals_t *self, int64_t due, const char *referral_id,
            const char *recipient)
{
    if (self->nheap == self->capheap) {
        size_t cap = self->capheap ? self->capheap * 2 : 64;
        brk_referral_due_t *heap = realloc(self->heap, cap * sizeof(*heap));
        if (!heap)
            return; /* out of memory: that leg is not told overdue */
        self->heap = heap;
        self->capheap = cap;
    }
    size_t i = self->nheap++;
    self->heap[i].due = due;
    snprintf(self->heap[i].referral_id, sizeof(self->heap[i].referral_id), "%s",
             referral_id);
    snprintf(self->heap[i].recipient, sizeof(self->heap[i].recipient), "%s", recipient);
    while (i > 0 && self->heap[(i - 1) / 2].due > self->heap[i].due) {
        s_heap_swap(&self->heap[(i - 1) / 2], &self->heap[i]);
        i = (i - 1) / 2;
    }
}

static brk_referral_due_t
s_heap_pop(brk_referrals_t *self)
{
    brk_referral_due_t top = self->heap[0];
    self->heap[0] = self->heap[--self->nheap];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < self->nheap && self->heap[l].due < self->heap[m].due)
            m = l;
        if (r < self->nheap && self->heap[r].due < self->heap[m].due)
            m = r;
        if (m == i)
            break;
        s_heap_swap(&self->heap[i], &self->heap[m]);
        i = m;
    }
    return top;
}

/* A leg that may yet fall overdue: open, undecided, not told. */
static bool
s_waiting(const brk_leg_t *leg)
{
    return brk_leg_state_open(leg->state) && leg->decided_us == 0 && leg->overdue_us == 0;
}

/* ---- loading ------------------------------------------------------------ */

static brk_referral_rec_t *
s_referral_new(const char *id, const char *referrer, const char *subject,
               const char *service, const char *priority, int64_t created_us)
{
    brk_referral_rec_t *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    snprintf(r->id, sizeof(r->id), "%s", id);
    snprintf(r->referrer, sizeof(r->referrer), "%s", referrer);
    snprintf(r->subject, sizeof(r->subject), "%s", subject);
    snprintf(r->service, sizeof(r->service), "%s", service);
    snprintf(r->priority, sizeof(r->priority), "%s", priority);
    r->created_us = created_us;
    return r;
}

int
brk_referrals_load_referral(brk_referrals_t *self, const char *referral_id,
                            const char *referrer, const char *subject,
                            const char *service, const char *priority, int64_t created_us)
{
    if (brk_referrals_find(self, referral_id))
        return -1;
    brk_referral_rec_t *r =
        s_referral_new(referral_id, referrer, subject, service, priority, created_us);
    if (!r || zhashx_insert(self->by_id, r->id, r) != 0) {
        free(r);
        return -1;
    }
    return 0;
}

/* Adds a copy of the leg to its referral. */
static brk_leg_t *
s_add_leg(brk_referrals_t *self, brk_referral_rec_t *r, const brk_leg_t *leg)
{
    if (r->nlegs == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 2;
        brk_leg_t **legs = realloc(r->legs, cap * sizeof(*legs));
        if (!legs)
            return NULL;
        r->legs = legs;
        r->cap = cap;
    }
    brk_leg_t *copy = malloc(sizeof(*copy));
    if (!copy)
        return NULL;
    *copy = *leg;
    r->legs[r->nlegs++] = copy;
    self->nlegs++;
    brk_referral_tally_add(self, copy);
    if (s_waiting(copy))
        s_heap_push(self, copy->due_us, r->id, copy->recipient);
    return copy;
}

int
brk_referrals_load_leg(brk_referrals_t *self, const brk_leg_t *leg)
{
    brk_referral_rec_t *r = brk_referrals_find(self, leg->referral_id);
    if (!r || brk_referral_rec_leg(r, leg->recipient) || (int)leg->state < 0
        || leg->state >= BRK_LEG_NSTATES || !s_add_leg(self, r, leg))
        return -1;
    s_person_update(self, r);
    if (leg->state == BRK_LEG_STARTED)
        zlistx_add_end(self->supersede, r->id);
    return 0;
}

void
brk_referrals_replace(brk_referrals_t *self, brk_referrals_t **loaded_p)
{
    brk_referrals_t *loaded = *loaded_p;
    for (brk_referral_rec_t *r = zhashx_first(self->by_id); r;
         r = zhashx_next(self->by_id)) {
        if (!r->busy)
            continue;
        brk_referral_rec_t *lr = brk_referrals_find(loaded, r->id);
        /* opened but not stored yet (it has no leg before its commit):
           it goes over as it is */
        if (!lr && r->pending
            && brk_referrals_load_referral(loaded, r->id, r->referrer, r->subject,
                                           r->service, r->priority, r->created_us)
                   == 0) {
            lr = brk_referrals_find(loaded, r->id);
            lr->pending = true;
        }
        if (lr)
            lr->busy = r->busy;
    }
    brk_referrals_t old = *self;
    *self = *loaded;
    *loaded = old;
    brk_referrals_destroy(loaded_p);
}

size_t
brk_referrals_count(const brk_referrals_t *self)
{
    return zhashx_size(self->by_id);
}

size_t
brk_referrals_legs(const brk_referrals_t *self)
{
    return self->nlegs;
}

const brk_leg_t *
brk_referrals_leg(const brk_referrals_t *self, const char *referral_id,
                  const char *recipient)
{
    return brk_referral_rec_leg(brk_referrals_find(self, referral_id), recipient);
}

void
brk_referrals_each_leg(const brk_referrals_t *self,
                       void (*fn)(const brk_leg_t *leg, void *arg), void *arg)
{
    for (brk_referral_rec_t *r = zhashx_first(self->by_id); r;
         r = zhashx_next(self->by_id))
        for (size_t i = 0; i < r->nlegs; i++)
            fn(r->legs[i], arg);
}

/* ---- commit, abandon ---------------------------------------------------- */

void
brk_referrals_commit(brk_referrals_t *self, const brk_referral_plan_t *plan)
{
    brk_referral_rec_t *r = brk_referrals_find(self, plan->referral_id);
    if (!r || plan->step == BRK_REFERRAL_NONE)
        return;
    if (r->busy)
        r->busy--;
    r->pending = false;
    bool started = false;
    for (size_t i = 0; i < plan->nlegs; i++) {
        const brk_leg_t *after = &plan->legs[i];
        brk_leg_t *leg = brk_referral_rec_leg(r, after->recipient);
        if (!leg) {
            s_add_leg(self, r, after);
            continue;
        }
        brk_leg_t was = *leg;
        leg->state = after->state;
        if (!leg->decided_us)
            leg->decided_us = after->decided_us;
        if (!leg->closed_us)
            leg->closed_us = after->closed_us;
        if (!leg->overdue_us)
            leg->overdue_us = after->overdue_us;
        brk_referral_tally_move(self, &was, leg);
        started |= after->state == BRK_LEG_STARTED && plan->from[i] != BRK_LEG_STARTED;
    }
    s_person_update(self, r);
    if (started)
        zlistx_add_end(self->supersede, r->id);
}

void
brk_referrals_abandon(brk_referrals_t *self, const brk_referral_plan_t *plan)
{
    brk_referral_rec_t *r = brk_referrals_find(self, plan->referral_id);
    if (!r || plan->step == BRK_REFERRAL_NONE)
        return;
    if (r->busy)
        r->busy--;
    /* a notice not stored: tried again, after a while */
    if (plan->step == BRK_REFERRAL_OVERDUE || plan->step == BRK_REFERRAL_SUPERSEDE)
        r->quiet_until = plan->at + BRK_NOTICE_RETRY_US;
    if (plan->step == BRK_REFERRAL_OVERDUE && plan->nlegs)
        s_heap_push(self, r->quiet_until, r->id, plan->legs[0].recipient);
    if (plan->step == BRK_REFERRAL_SUPERSEDE)
        zlistx_add_end(self->supersede, r->id);
    if (r->pending && r->busy == 0)
        zhashx_delete(self->by_id, plan->referral_id);
}

/* ---- the broker's notices ----------------------------------------------- */

/* One leg's notice plan; false when out of memory. */
static bool
s_notice(brk_referral_rec_t *r, const brk_leg_t *leg, brk_referral_step_t step,
         int64_t now, brk_referral_plan_t *plan)
{
    brk_referral_plan_start(plan, step, r->id, now);
    if (!brk_referral_plan_alloc(plan, 1, 0))
        return false;
    snprintf(plan->referrer, sizeof(plan->referrer), "%s", r->referrer);
    snprintf(plan->subject, sizeof(plan->subject), "%s", r->subject);
    snprintf(plan->service, sizeof(plan->service), "%s", r->service);
    snprintf(plan->priority, sizeof(plan->priority), "%s", r->priority);
    if (step == BRK_REFERRAL_SUPERSEDE)
        brk_referral_plan_move(plan, leg, BRK_LEG_SUPERSEDED, now);
    else {
        plan->legs[0] = *leg;
        plan->from[0] = (int)leg->state;
        plan->legs[0].overdue_us = now;
        plan->nlegs = 1;
    }
    r->busy++;
    return true;
}

/* The referrals whose leg started: a plan for each of their other open
   legs. A busy one waits for the next call. */
static size_t
s_due_supersede(brk_referrals_t *self, int64_t now, brk_referral_plan_t *plans,
                size_t max)
{
    size_t n = 0;
    zlistx_t *later = zlistx_new();
    if (!later)
        return 0;
    zlistx_set_destructor(later, (zlistx_destructor_fn *)zstr_free);
    zlistx_set_duplicator(later, (zlistx_duplicator_fn *)strdup);
    char *id;
    while (n < max && (id = zlistx_detach(self->supersede, NULL))) {
        brk_referral_rec_t *r = brk_referrals_find(self, id);
        bool wait = r && (r->busy || r->quiet_until > now);
        if (wait)
            zlistx_add_end(later, id);
        const brk_leg_t *started = NULL;
        for (size_t i = 0; r && !wait && i < r->nlegs; i++)
            if (r->legs[i]->state == BRK_LEG_STARTED)
                started = r->legs[i];
        for (size_t i = 0; started && i < r->nlegs; i++) {
            const brk_leg_t *leg = r->legs[i];
            if (leg == started || !brk_leg_state_open(leg->state))
                continue;
            if (n == max) { /* the rest at the next call */
                zlistx_add_end(self->supersede, id);
                break;
            }
            if (s_notice(r, leg, BRK_REFERRAL_SUPERSEDE, now, &plans[n]))
                n++;
        }
        zstr_free(&id);
    }
    while ((id = zlistx_detach(later, NULL))) {
        zlistx_add_end(self->supersede, id);
        zstr_free(&id);
    }
    zlistx_destroy(&later);
    return n;
}

/* The legs fallen due: a plan each. A busy referral's leg waits for the
   next call; a quiet one (its last notice was not stored) until then. */
static size_t
s_due_overdue(brk_referrals_t *self, int64_t now, brk_referral_plan_t *plans, size_t max)
{
    size_t n = 0, nlater = 0;
    brk_referral_due_t later[64];
    while (n < max && nlater < 64 && self->nheap && self->heap[0].due <= now) {
        brk_referral_due_t d = s_heap_pop(self);
        brk_referral_rec_t *r = brk_referrals_find(self, d.referral_id);
        brk_leg_t *leg = brk_referral_rec_leg(r, d.recipient);
        if (leg)
            brk_referral_overdue_seen(self, leg, now); /* for the figures */
        if (!leg || !s_waiting(leg) || leg->due_us > now)
            continue; /* moved on since, or due later */
        if (r->busy || r->quiet_until > now) {
            if (r->quiet_until > d.due)
                d.due = r->quiet_until;
            later[nlater++] = d;
        }
        else if (s_notice(r, leg, BRK_REFERRAL_OVERDUE, now, &plans[n]))
            n++;
    }
    for (size_t i = 0; i < nlater; i++)
        s_heap_push(self, later[i].due, later[i].referral_id, later[i].recipient);
    return n;
}

size_t
brk_referrals_due(brk_referrals_t *self, int64_t now, brk_referral_plan_t *plans,
                  size_t max)
{
    size_t n = s_due_supersede(self, now, plans, max);
    return n + s_due_overdue(self, now, plans + n, max - n);
}

int64_t
brk_referrals_next_due(const brk_referrals_t *self)
{
    if (zlistx_size(self->supersede))
        return 1;
    return self->nheap ? self->heap[0].due : 0;
}
