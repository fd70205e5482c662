/*  depth.c: the queues' depths (see depth.h), kept as the store commits.

    Each agency's queue holds its pending and dead counts, signed: while a
    count is out, they hold what committed since its snapshot, which may
    be below zero (a delivery counted by the snapshot, acked since), and
    the count's rows are added when they come. Once known, a count never
    goes below zero; if it would, the figures have drifted from the
    database (a hand-made change of a delivery's state) and the agency
    is counted again.

    The oldest pending delivery: delivery ids grow with each publish, so
    a queue's oldest pending delivery is its lowest id pending. A
    delivery made for an empty queue is its oldest; one made for a queue
    with something pending is not. When the oldest leaves (acked, dead,
    revoked) the next is not known here: the queue is marked stale, its
    last time kept (the age shown errs on the old side) until the store
    looks the new oldest up. Replayed dead letters keep their old ids:
    a replay counts the agency again, oldest included.

    Every change staged by a transaction is a few bytes in an array;
    applying them costs a hash lookup each, in the store thread, after
    the COMMIT. Called by the store thread only (store_depth.c,
    store_write.c, store.c). */

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "depth.h"

typedef struct {
    char agency[MLG_AGENCY_ID_MAX + 1];
    int64_t pending, dead; /* signed while a count is out */
    uint64_t oldest;       /* the oldest pending delivery's id; 0: none or stale */
    int64_t oldest_us;     /* its message's received_at; kept while stale */
    bool stale;            /* the oldest left: look the next one up */
    bool recount;          /* count it again */
    bool changed;          /* since the figures were last taken */
} s_queue_t;

/* A change staged by the transaction in hand. */
typedef struct {
    s_queue_t *q;
    uint64_t delivery;
    int64_t received_us;
    enum { S_CREATED, S_SETTLED, S_DEAD } kind;
} s_change_t;

struct brk_depths_t {
    zhashx_t *queues; /* agency -> s_queue_t, owned */
    bool counting;    /* a count is out */
    bool known;       /* a count has ended */
    bool all;         /* every figure to take: a count ended */
    s_change_t *staged;
    size_t nstaged, staged_cap;
};

static void
s_queue_destroy(void **item)
{
    free(*item);
    *item = NULL;
}

brk_depths_t *
brk_depths_new(void)
{
    brk_depths_t *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    self->queues = zhashx_new();
    if (!self->queues) {
        free(self);
        return NULL;
    }
    zhashx_set_destructor(self->queues, s_queue_destroy);
    return self;
}

void
brk_depths_destroy(brk_depths_t **self_p)
{
    brk_depths_t *self = *self_p;
    if (!self)
        return;
    zhashx_destroy(&self->queues);
    free(self->staged);
    free(self);
    *self_p = NULL;
}

/* The queue of `agency`, made on first use; NULL out of memory. */
static s_queue_t *
s_queue(brk_depths_t *self, const char *agency)
{
    s_queue_t *q = zhashx_lookup(self->queues, agency);
    if (q)
        return q;
    q = calloc(1, sizeof(*q));
    if (!q)
        return NULL;
    snprintf(q->agency, sizeof(q->agency), "%s", agency);
    if (zhashx_insert(self->queues, q->agency, q) != 0) {
        free(q);
        return NULL;
    }
    return q;
}

/* ---- counting --------------------------------------------------------- */

void
brk_depths_count_begin(brk_depths_t *self)
{
    assert(self->nstaged == 0); /* between transactions */
    zhashx_purge(self->queues);
    self->counting = true;
    self->known = false;
    self->all = false;
}

void
brk_depths_count_add(brk_depths_t *self, const char *agency, uint64_t pending,
                     uint64_t dead)
{
    assert(self->counting);
    s_queue_t *q = s_queue(self, agency);
    if (!q)
        return;
    q->pending += (int64_t)pending;
    q->dead += (int64_t)dead;
}

void
brk_depths_count_end(brk_depths_t *self)
{
    assert(self->counting);
    self->counting = false;
    self->known = true;
    self->all = true;
    for (s_queue_t *q = zhashx_first(self->queues); q; q = zhashx_next(self->queues)) {
        /* below zero, the figures have drifted: counted again. An
           agency replayed while the count was out is counted again too
           (the snapshot may be older than the replay) */
        q->recount = q->recount || q->pending < 0 || q->dead < 0;
        q->pending = q->pending < 0 ? 0 : q->pending;
        q->dead = q->dead < 0 ? 0 : q->dead;
        q->oldest = 0;
        q->oldest_us = 0;
        q->stale = q->pending > 0;
        q->changed = true;
    }
}

void
brk_depths_forget(brk_depths_t *self)
{
    zhashx_purge(self->queues);
    self->nstaged = 0;
    self->counting = false;
    self->known = false;
    self->all = false;
}

bool
brk_depths_known(const brk_depths_t *self)
{
    return self->known;
}

/* ---- a transaction's changes ------------------------------------------ */

static void
s_stage(brk_depths_t *self, const char *agency, uint64_t delivery, int64_t received_us,
        int kind)
{
    if (!self->counting && !self->known)
        return; /* nothing to add them to: the next count finds them */
    if (self->nstaged == self->staged_cap) {
        size_t cap = self->staged_cap ? 2 * self->staged_cap : 256;
        s_change_t *staged = realloc(self->staged, cap * sizeof(*staged));
        if (!staged) {
            /* out of memory: this agency is counted again instead */
            brk_depths_want_recount(self, agency);
            return;
        }
        self->staged = staged;
        self->staged_cap = cap;
    }
    s_queue_t *q = s_queue(self, agency);
    if (!q)
        return;
    self->staged[self->nstaged++] = (s_change_t){
        .q = q, .delivery = delivery, .received_us = received_us, .kind = kind};
}

void
brk_depths_created(brk_depths_t *self, const char *agency, uint64_t delivery,
                   int64_t received_us)
{
    s_stage(self, agency, delivery, received_us, S_CREATED);
}

void
brk_depths_settled(brk_depths_t *self, const char *agency, uint64_t delivery, bool dead)
{
    s_stage(self, agency, delivery, 0, dead ? S_DEAD : S_SETTLED);
}

/* One committed change. While a count is out only the counts move: the
   oldest deliveries are looked up when it ends. */
static void
s_apply(brk_depths_t *self, const s_change_t *c)
{
    s_queue_t *q = c->q;
    q->changed = true;
    if (c->kind == S_CREATED) {
        if (self->known && q->pending == 0) {
            q->oldest = c->delivery;
            q->oldest_us = c->received_us;
            q->stale = false;
        }
        q->pending++;
        return;
    }
    q->pending--;
    if (c->kind == S_DEAD)
        q->dead++;
    if (!self->known)
        return;
    if (q->pending <= 0) {
        if (q->pending < 0) {
            q->pending = 0;
            q->recount = true; /* drifted: see the top of the file */
        }
        q->oldest = 0;
        q->oldest_us = 0;
        q->stale = false;
    }
    else if (c->delivery == 0 || c->delivery == q->oldest)
        q->stale = true;
}

void
brk_depths_commit(brk_depths_t *self)
{
    for (size_t i = 0; i < self->nstaged; i++)
        s_apply(self, &self->staged[i]);
    self->nstaged = 0;
}

void
brk_depths_rollback(brk_depths_t *self)
{
    self->nstaged = 0;
}

/* ---- what is to be read again ----------------------------------------- */

void
brk_depths_want_recount(brk_depths_t *self, const char *agency)
{
    s_queue_t *q = s_queue(self, agency);
    if (q)
        q->recount = true;
}

void
brk_depths_recount(brk_depths_t *self, const char *agency, uint64_t pending,
                   uint64_t dead, uint64_t delivery, int64_t received_us)
{
    assert(self->known && self->nstaged == 0);
    s_queue_t *q = s_queue(self, agency);
    if (!q)
        return;
    q->pending = (int64_t)pending;
    q->dead = (int64_t)dead;
    q->oldest = pending ? delivery : 0;
    q->oldest_us = pending ? received_us : 0;
    q->stale = false;
    q->recount = false;
    q->changed = true;
}

void
brk_depths_set_oldest(brk_depths_t *self, const char *agency, uint64_t delivery,
                      int64_t received_us)
{
    assert(self->known && self->nstaged == 0);
    s_queue_t *q = s_queue(self, agency);
    if (!q)
        return;
    if (!delivery && q->pending > 0)
        q->recount = true; /* none pending, yet counted: drifted */
    q->oldest = delivery;
    q->oldest_us = delivery ? received_us : 0;
    q->stale = false;
    q->changed = true;
}

/* The names of the queues to count again, or of those whose oldest
   pending delivery is stale, once the figures are known. */
static zlistx_t *
s_names(const brk_depths_t *self, bool recount)
{
    zlistx_t *list = zlistx_new();
    if (!list)
        return NULL;
    zlistx_set_destructor(list, (zlistx_destructor_fn *)zstr_free);
    zlistx_set_duplicator(list, (zlistx_duplicator_fn *)strdup);
    if (!self->known)
        return list;
    for (s_queue_t *q = zhashx_first(self->queues); q; q = zhashx_next(self->queues))
        if (recount ? q->recount : q->stale && !q->recount)
            zlistx_add_end(list, q->agency);
    return list;
}

zlistx_t *
brk_depths_recounts(const brk_depths_t *self)
{
    return s_names(self, true);
}

zlistx_t *
brk_depths_stale(const brk_depths_t *self)
{
    return s_names(self, false);
}

/* ---- the figures ------------------------------------------------------ */

brk_depth_t *
brk_depths_take(brk_depths_t *self, size_t *n, bool *all)
{
    *n = 0;
    *all = self->all;
    if (!self->known)
        return NULL;
    size_t changed = 0;
    for (s_queue_t *q = zhashx_first(self->queues); q; q = zhashx_next(self->queues))
        changed += q->changed;
    if (!changed && !self->all)
        return NULL;
    brk_depth_t *rows = calloc(changed ? changed : 1, sizeof(*rows));
    if (!rows)
        return NULL;
    for (s_queue_t *q = zhashx_first(self->queues); q; q = zhashx_next(self->queues)) {
        if (!q->changed)
            continue;
        brk_depth_t *r = &rows[(*n)++];
        snprintf(r->agency, sizeof(r->agency), "%s", q->agency);
        r->pending = (uint64_t)q->pending;
        r->dead = (uint64_t)q->dead;
        r->oldest_us = q->pending ? q->oldest_us : 0;
        q->changed = false;
    }
    self->all = false;
    return rows;
}
