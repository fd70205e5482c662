/*  depth.h: the queues' depths as the broker keeps them, for /metrics,
    /api/status and the dashboard (DESIGN.md "Monitoring"): per recipient
    agency, its pending deliveries (in flight included: the database
    keeps them pending), its dead ones, and its oldest pending delivery.

    Kept by the store thread (store_depth.c), which knows every change of
    a queue as it commits it, so that no request counts over the queues:
    counted once on each new connection, then moved by each transaction
    that commits (deliveries made, settled, dead-lettered), an agency
    counted again when an operator replays its dead letters. A
    transaction's changes are staged, and applied only when it commits:
    the figures are the database's after each COMMIT.

    Pure: no database, no clock, no thread (tests/unit/test_depth.c). */

#ifndef BRK_DEPTH_H
#define BRK_DEPTH_H

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#include "maillage/limits.h"

/* One agency's queue, as the figures give it. */
typedef struct {
    char agency[MLG_AGENCY_ID_MAX + 1];
    uint64_t pending; /* in flight included */
    uint64_t dead;
    int64_t oldest_us; /* when the oldest pending delivery's message was
                          received (µs since the epoch); 0 when none is
                          pending, or before it is looked up */
} brk_depth_t;

typedef struct brk_depths_t brk_depths_t;

/* Empty, and not known. NULL out of memory. */
brk_depths_t *brk_depths_new(void);
void brk_depths_destroy(brk_depths_t **self_p);

/* ---- counting --------------------------------------------------------- */

/* A count begins, from a snapshot of the database taken now: every
   figure starts again from zero, and what commits from now on is added
   to what the count finds. Not known until it ends. */
void brk_depths_count_begin(brk_depths_t *self);

/* What the count found for one agency (it may come in several rows). */
void brk_depths_count_add(brk_depths_t *self, const char *agency, uint64_t pending,
                          uint64_t dead);

/* The count is complete: the figures are known; the oldest delivery of
   each queue with something pending is to be looked up. */
void brk_depths_count_end(brk_depths_t *self);

/* Everything forgotten, and not known (the database is away). */
void brk_depths_forget(brk_depths_t *self);

/* Whether the figures are known: a count has ended since the last
   brk_depths_count_begin or brk_depths_forget. */
bool brk_depths_known(const brk_depths_t *self);

/* ---- a transaction's changes, staged until it commits ----------------- */

/* A delivery made for `agency`, whose message was received at
   received_us. */
void brk_depths_created(brk_depths_t *self, const char *agency, uint64_t delivery,
                        int64_t received_us);

/* A pending delivery of `agency` settled (acked or revoked), or
   dead-lettered; `delivery` 0 when its id is not known. */
void brk_depths_settled(brk_depths_t *self, const char *agency, uint64_t delivery,
                        bool dead);

/* The transaction committed: its changes apply, in order. */
void brk_depths_commit(brk_depths_t *self);

/* It did not: its changes are dropped. */
void brk_depths_rollback(brk_depths_t *self);

/* ---- what is to be read again ----------------------------------------- */

/* An agency to count again (an operator replayed its dead letters, or
   its figures went below zero, which a count would not). */
void brk_depths_want_recount(brk_depths_t *self, const char *agency);

/* Its figures as counted again, absolutely, with its oldest pending
   delivery (`delivery` 0: none). */
void brk_depths_recount(brk_depths_t *self, const char *agency, uint64_t pending,
                        uint64_t dead, uint64_t delivery, int64_t received_us);

/* Its oldest pending delivery as looked up (`delivery` 0: none pending,
   which the count must then agree with, or it is counted again). */
void brk_depths_set_oldest(brk_depths_t *self, const char *agency, uint64_t delivery,
                           int64_t received_us);

/* The agencies to count again, and those whose oldest pending delivery
   left (acked, dead, revoked) and is to be looked up, once the figures
   are known: lists of names (copies) the caller destroys; empty before. */
zlistx_t *brk_depths_recounts(const brk_depths_t *self);
zlistx_t *brk_depths_stale(const brk_depths_t *self);

/* ---- the figures ------------------------------------------------------ */

/* The figures changed since the last call, *n of them, malloc'd (NULL
   when none changed, or out of memory: then they stay to take). *all:
   every agency's, after a count, the others to be dropped. */
brk_depth_t *brk_depths_take(brk_depths_t *self, size_t *n, bool *all);

#endif
