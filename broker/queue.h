/*  queue.h: the recipients' queues and the deliveries in flight
    (PROTOCOL.md §6), decided without a socket or a database. */

#ifndef BRK_QUEUE_H
#define BRK_QUEUE_H

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#include "store.h"

/* Every recipient agency's queue, and the deliveries in flight to its
   clients. A client is an opaque `holder` here (the loop's session). */
typedef struct brk_queues_t brk_queues_t;

/* One recipient's queue: a read-ahead of its pending deliveries (in
   memory, in order), and a cursor (the database's rows above it are not
   read yet). */
typedef struct brk_queue_t brk_queue_t;

/* `read_ahead`: the most rows one read of the database brings, and the
   most a queue holds from memory. NULL out of memory. */
brk_queues_t *brk_queues_new(size_t read_ahead);

/* Frees every queue, every row it holds and every delivery in flight. */
void brk_queues_destroy(brk_queues_t **self_p);

/* The queue of `agency`, made on first use: a new queue has read nothing
   yet, so it reads the database from the start (which is how a restarted
   broker finds every unsettled delivery, in flight before or not). NULL
   out of memory. */
brk_queue_t *brk_queues_get(brk_queues_t *self, const char *agency);

/* The queue of `agency` if it exists, or NULL. */
brk_queue_t *brk_queues_find(brk_queues_t *self, const char *agency);

/* The agencies whose queue may have more in the database and has no read
   out, to pump; a list of copies the caller destroys. */
zlistx_t *brk_queues_unread(brk_queues_t *self);

/* The database is back: every queue reads it again for what it missed. */
void brk_queues_reconnected(brk_queues_t *self);

const char *brk_queue_agency(const brk_queue_t *q);

/* How many rows the read-ahead holds, and the first of them (NULL when
   none): the next to send. */
size_t brk_queue_size(const brk_queue_t *q);
brk_delivery_t *brk_queue_first(const brk_queue_t *q);

/* The first row leaves the read-ahead; the caller owns it. */
brk_delivery_t *brk_queue_pop(brk_queue_t *q);

/* ---- in flight -------------------------------------------------------- */

/* The row goes out to `holder`: its attempt is counted, its DELIVER
   numbered, and it is in flight until it lands. Takes the row; -1 out of
   memory, with the row back first in its queue and its attempt not
   counted. */
int brk_queues_fly(brk_queues_t *self, brk_delivery_t *row, void *holder);

/* Takes a delivery out of flight: the caller owns the row. NULL unless
   it is in flight to `holder` (another client's ACK settles nothing). */
brk_delivery_t *brk_queues_land(brk_queues_t *self, const void *holder,
                                uint64_t delivery);

/* Takes every delivery in flight to `holder` out of flight: a list of
   rows the caller owns (and destroys), or NULL out of memory. */
zlistx_t *brk_queues_land_all(brk_queues_t *self, const void *holder);

/* The ids of the deliveries in flight that rely on a consent (*n of
   them), malloc'd; NULL out of memory. O(deliveries in flight). */
uint64_t *brk_queues_inflight_of(const brk_queues_t *self, const char *consent_id,
                                 size_t *n);

/* Calls fn for each delivery in flight, with its holder; fn must not
   land or fly any delivery. */
void brk_queues_each_inflight(brk_queues_t *self,
                              void (*fn)(brk_delivery_t *row, void *holder, void *arg),
                              void *arg);

/* How many deliveries are in flight, to all clients. */
size_t brk_queues_inflight(const brk_queues_t *self);

/* ---- giving back ------------------------------------------------------ */

typedef enum {
    BRK_BACK_REQUEUED, /* first in its queue again; the queue took the row */
    BRK_BACK_DEAD,     /* its attempts are spent: the caller dead-letters
                          and frees it */
} brk_back_t;

/* A delivery that came back from a client (NACK with requeue, BYE,
   silence, a second HELLO): redeliveries go first, before newer rows. */
brk_back_t brk_queues_give_back(brk_queues_t *self, brk_delivery_t **row_p,
                                uint64_t max_attempts);

/* ---- reading ahead ---------------------------------------------------- */

/* Should the queue read the database? When its read-ahead is empty, the
   database may hold more, and no read is out. (The loop asks besides
   that the database is up and a client of the agency has credit.) */
bool brk_queue_wants_read(const brk_queue_t *q);

/* A read goes out: the rows above *after, at most *limit of them: the
   read-ahead, or `want` when more (the credit the agency's client has
   free, so the rows past the read-ahead go out at once: memory stays
   bounded by the credit; a queue that fell behind its publishers
   catches up at the pace of its client, not of one read-ahead per
   store transaction). */
void brk_queue_read_begin(brk_queue_t *q, size_t want, uint64_t *after, size_t *limit);

/* The read's answer: `ok` false when it failed (the next pump tries
   again). Takes the rows (and sets each rows[i] to NULL). A full page
   means there may be more; a short one that there is none now. A row
   read again after a replay is dropped if it is held in memory already,
   in flight or in the read-ahead. */
void brk_queues_read_done(brk_queues_t *self, brk_queue_t *q, bool ok,
                          brk_delivery_t **rows, size_t nrows, size_t limit);

/* Dead letters of the agency are pending again: the queue reads from the
   start, skipping what it holds. With a read out, it rewinds when the
   read's answer is in. */
void brk_queue_replay(brk_queue_t *q);

/* ---- deliveries just committed ---------------------------------------- */

/* A publish made delivery `id` for this queue. True when it should join
   the read-ahead from memory (the queue has caught up with the database
   and has room): the caller builds it and calls brk_queue_append_new.
   False when the next read will find it. */
bool brk_queue_offer(brk_queue_t *q, uint64_t id);

/* The row offered, built: it joins the read-ahead. NULL (out of memory):
   the next read finds it. Takes the row. */
void brk_queue_append_new(brk_queue_t *q, brk_delivery_t *row);

#endif
