/*  queue.c: the recipients' queues and the deliveries in flight.

    Decides, for each recipient agency, what goes out next and where the
    database is to be read from: the cursor (delivery ids above it are not
    read yet), the read-ahead (rows read or just committed, in order), the
    deliveries in flight (to which client, until ACK or NACK), requeues
    (redeliveries go first), the replay floor (after an operator's replay
    the queue reads from zero again, and rows at or under the floor may be
    held already) and the restart of a read overtaken by a replay.

    It does not send, store or choose a client: the event loop
    (delivery.c) asks it, carries out what it says, and tells it what the
    store answered. No socket, no database, no clock: unit-tested by
    tests/unit/test_queue.c.

    The database holds every delivery as `pending` until it is settled, so
    nothing here needs to survive a crash: a new queue reads from zero. */

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue.h"

struct brk_queue_t {
    char agency[MLG_AGENCY_ID_MAX + 1];
    zlistx_t *ready;       /* brk_delivery_t *, owned */
    size_t read_ahead;     /* the most rows it reads at once, or holds new */
    uint64_t cursor;       /* rows above it are not read yet */
    uint64_t replay_floor; /* after a replay: rows up to here may be in memory */
    bool restart;          /* a replay came while a read was out */
    bool fetching;         /* a read is out */
    bool more;             /* the database may hold rows above the cursor */
};

/* A delivery in flight, and the client it went to. */
typedef struct {
    brk_delivery_t *row; /* owned */
    void *holder;
} s_flight_t;

struct brk_queues_t {
    zhashx_t *queues;   /* agency -> brk_queue_t */
    zhashx_t *inflight; /* delivery id (decimal) -> s_flight_t */
    size_t read_ahead;
};

static void
s_queue_destroy(void **item)
{
    brk_queue_t *q = *item;
    if (!q)
        return;
    brk_delivery_t *row = zlistx_first(q->ready);
    while (row) {
        brk_delivery_destroy(&row);
        row = zlistx_next(q->ready);
    }
    zlistx_destroy(&q->ready);
    free(q);
    *item = NULL;
}

static void
s_flight_destroy(void **item)
{
    s_flight_t *f = *item;
    if (!f)
        return;
    brk_delivery_destroy(&f->row);
    free(f);
    *item = NULL;
}

brk_queues_t *
brk_queues_new(size_t read_ahead)
{
    assert(read_ahead > 0);
    brk_queues_t *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    self->read_ahead = read_ahead;
    self->queues = zhashx_new();
    self->inflight = zhashx_new();
    if (!self->queues || !self->inflight) {
        brk_queues_destroy(&self);
        return NULL;
    }
    zhashx_set_destructor(self->queues, s_queue_destroy);
    zhashx_set_destructor(self->inflight, s_flight_destroy);
    return self;
}

void
brk_queues_destroy(brk_queues_t **self_p)
{
    brk_queues_t *self = *self_p;
    if (!self)
        return;
    zhashx_destroy(&self->inflight);
    zhashx_destroy(&self->queues);
    free(self);
    *self_p = NULL;
}

brk_queue_t *
brk_queues_find(brk_queues_t *self, const char *agency)
{
    return zhashx_lookup(self->queues, agency);
}

brk_queue_t *
brk_queues_get(brk_queues_t *self, const char *agency)
{
    brk_queue_t *q = zhashx_lookup(self->queues, agency);
    if (q)
        return q;
    q = calloc(1, sizeof(*q));
    if (!q)
        return NULL;
    q->ready = zlistx_new();
    if (!q->ready) {
        free(q);
        return NULL;
    }
    snprintf(q->agency, sizeof(q->agency), "%s", agency);
    q->read_ahead = self->read_ahead;
    q->more = true; /* unknown: read the database to find out */
    zhashx_insert(self->queues, agency, q);
    return q;
}

zlistx_t *
brk_queues_unread(brk_queues_t *self)
{
    zlistx_t *list = zlistx_new();
    if (!list)
        return NULL;
    zlistx_set_destructor(list, (zlistx_destructor_fn *)zstr_free);
    zlistx_set_duplicator(list, (zlistx_duplicator_fn *)strdup);
    for (brk_queue_t *q = zhashx_first(self->queues); q; q = zhashx_next(self->queues))
        if (q->more && !q->fetching)
            zlistx_add_end(list, q->agency);
    return list;
}

void
brk_queues_reconnected(brk_queues_t *self)
{
    for (brk_queue_t *q = zhashx_first(self->queues); q; q = zhashx_next(self->queues))
        q->more = true;
}

const char *
brk_queue_agency(const brk_queue_t *q)
{
    return q->agency;
}

size_t
brk_queue_size(const brk_queue_t *q)
{
    return zlistx_size(q->ready);
}

brk_delivery_t *
brk_queue_first(const brk_queue_t *q)
{
    return zlistx_head(q->ready);
}

brk_delivery_t *
brk_queue_pop(brk_queue_t *q)
{
    if (!zlistx_first(q->ready))
        return NULL;
    return zlistx_detach_cur(q->ready);
}

/* ---- in flight -------------------------------------------------------- */

static void
s_key(uint64_t delivery, char *key, size_t len)
{
    snprintf(key, len, "%llu", (unsigned long long)delivery);
}

int
brk_queues_fly(brk_queues_t *self, brk_delivery_t *row, void *holder)
{
    assert(row && row->deliver);
    s_flight_t *f = calloc(1, sizeof(*f));
    if (!f) {
        brk_queue_t *q = brk_queues_get(self, row->recipient);
        if (q)
            zlistx_add_start(q->ready, row);
        else
            brk_delivery_destroy(&row); /* pending still: a restart reads it */
        return -1;
    }
    row->attempts++;
    f->row = row;
    f->holder = holder;
    char key[24];
    s_key(row->delivery, key, sizeof(key));
    zhashx_update(self->inflight, key, f);
    return 0;
}

brk_delivery_t *
brk_queues_land(brk_queues_t *self, const void *holder, uint64_t delivery)
{
    char key[24];
    s_key(delivery, key, sizeof(key));
    s_flight_t *f = zhashx_lookup(self->inflight, key);
    if (!f || f->holder != holder)
        return NULL;
    brk_delivery_t *row = f->row;
    f->row = NULL; /* the caller's now: the destructor frees the entry only */
    zhashx_delete(self->inflight, key);
    return row;
}

zlistx_t *
brk_queues_land_all(brk_queues_t *self, const void *holder)
{
    zlistx_t *rows = zlistx_new();
    zlistx_t *keys = rows ? zhashx_keys(self->inflight) : NULL;
    if (!keys) {
        zlistx_destroy(&rows);
        return NULL;
    }
    zlistx_set_destructor(rows, (zlistx_destructor_fn *)brk_delivery_destroy);
    for (const char *key = zlistx_first(keys); key; key = zlistx_next(keys)) {
        s_flight_t *f = zhashx_lookup(self->inflight, key);
        if (!f || f->holder != holder)
            continue;
        zlistx_add_end(rows, brk_queues_land(self, holder, f->row->delivery));
    }
    zlistx_destroy(&keys);
    return rows;
}

uint64_t *
brk_queues_inflight_of(const brk_queues_t *self, const char *consent_id, size_t *n)
{
    zhashx_t *inflight = self->inflight;
    uint64_t *ids = calloc(zhashx_size(inflight) + 1, sizeof(uint64_t));
    *n = 0;
    if (!ids)
        return NULL;
    for (s_flight_t *f = zhashx_first(inflight); f; f = zhashx_next(inflight))
        if (strcmp(f->row->consent_id, consent_id) == 0)
            ids[(*n)++] = f->row->delivery;
    return ids;
}

void
brk_queues_each_inflight(brk_queues_t *self,
                         void (*fn)(brk_delivery_t *row, void *holder, void *arg),
                         void *arg)
{
    for (s_flight_t *f = zhashx_first(self->inflight); f; f = zhashx_next(self->inflight))
        fn(f->row, f->holder, arg);
}

size_t
brk_queues_inflight(const brk_queues_t *self)
{
    return zhashx_size(self->inflight);
}

/* ---- giving back ------------------------------------------------------ */

brk_back_t
brk_queues_give_back(brk_queues_t *self, brk_delivery_t **row_p, uint64_t max_attempts)
{
    brk_delivery_t *row = *row_p;
    if (row->attempts >= max_attempts)
        return BRK_BACK_DEAD;
    *row_p = NULL;
    brk_queue_t *q = brk_queues_get(self, row->recipient);
    if (q)
        zlistx_add_start(q->ready, row);
    else
        brk_delivery_destroy(&row); /* pending still: a restart reads it */
    return BRK_BACK_REQUEUED;
}

/* ---- reading ahead ---------------------------------------------------- */

bool
brk_queue_wants_read(const brk_queue_t *q)
{
    return zlistx_size(q->ready) == 0 && q->more && !q->fetching;
}

void
brk_queue_read_begin(brk_queue_t *q, size_t want, uint64_t *after, size_t *limit)
{
    assert(!q->fetching);
    q->fetching = true;
    *after = q->cursor;
    *limit = want > q->read_ahead ? want : q->read_ahead;
}

/* Reads from zero again; the rows read so far may come back, and those
   at or under the floor are looked for in memory. */
static void
s_rewind(brk_queue_t *q)
{
    if (q->cursor > q->replay_floor)
        q->replay_floor = q->cursor;
    q->cursor = 0;
    q->more = true;
}

/* Is a delivery in flight, or waiting in the queue's read-ahead?
   O(read-ahead), only for rows at or under the replay floor. */
static bool
s_in_memory(brk_queues_t *self, brk_queue_t *q, uint64_t delivery)
{
    char key[24];
    s_key(delivery, key, sizeof(key));
    if (zhashx_lookup(self->inflight, key))
        return true;
    for (brk_delivery_t *r = zlistx_first(q->ready); r; r = zlistx_next(q->ready))
        if (r->delivery == delivery)
            return true;
    return false;
}

void
brk_queues_read_done(brk_queues_t *self, brk_queue_t *q, bool ok, brk_delivery_t **rows,
                     size_t nrows, size_t limit)
{
    q->fetching = false;
    for (size_t i = 0; ok && i < nrows; i++) {
        brk_delivery_t *row = rows[i];
        rows[i] = NULL;
        if (row->delivery <= q->replay_floor && s_in_memory(self, q, row->delivery)) {
            brk_delivery_destroy(&row); /* read again after a replay: held already */
            continue;
        }
        if (row->delivery > q->cursor)
            q->cursor = row->delivery;
        zlistx_add_end(q->ready, row);
    }
    /* new publishes set `more` again */
    if (ok)
        q->more = nrows == limit;
    if (q->restart) {
        q->restart = false;
        s_rewind(q);
    }
}

void
brk_queue_replay(brk_queue_t *q)
{
    if (q->fetching)
        q->restart = true; /* brk_queues_read_done rewinds */
    else
        s_rewind(q);
}

/* ---- deliveries just committed ---------------------------------------- */

bool
brk_queue_offer(brk_queue_t *q, uint64_t id)
{
    if (!id || q->more || q->fetching || q->restart || id <= q->cursor
        || zlistx_size(q->ready) >= q->read_ahead) {
        q->more = true;
        return false;
    }
    return true;
}

void
brk_queue_append_new(brk_queue_t *q, brk_delivery_t *row)
{
    if (!row) {
        q->more = true;
        return;
    }
    q->cursor = row->delivery;
    zlistx_add_end(q->ready, row);
}
