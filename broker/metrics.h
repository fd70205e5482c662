/*  metrics.h: the broker's figures for /metrics, /api/status and the
    dashboard (DESIGN.md "Monitoring").

    One set per broker, owned by it (brk_broker_t) and handed to the
    store thread and the HTTP listener when they start; it outlives both.
    The loop and the store thread record events as they happen; the HTTP
    thread reads. Every function takes the set's mutex, so any thread may
    call any of them. The queue depths and the oldest pending deliveries
    are the store's (depth.h), handed over once per batch that changed
    them: a request reads them here and never counts over the queues. */

#ifndef BRK_METRICS_H
#define BRK_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "depth.h"
#include "store.h"

typedef struct brk_metrics_t brk_metrics_t;

/* An empty set; NULL when out of memory. */
brk_metrics_t *brk_metrics_new(void);
void brk_metrics_destroy(brk_metrics_t **self_p);

/* A message stored (not a duplicate), by type; its decisions, one per
   recipient; a REJECT by code. */
void brk_metrics_received(brk_metrics_t *self, const char *type);
void brk_metrics_decision(brk_metrics_t *self, bool allow, const char *basis);
void brk_metrics_rejected(brk_metrics_t *self, const char *code);

/* Seconds from a PUBLISH read to its CONFIRM sent; from a store batch's
   BEGIN to its COMMIT. */
void brk_metrics_confirm_seconds(brk_metrics_t *self, double seconds);
void brk_metrics_commit_seconds(brk_metrics_t *self, double seconds);

/* The loop's view, refreshed about once a second: the database as the
   store last saw it, and per agency (in the order given) its name, its
   connected clients and the deliveries in flight to them. Each refresh
   also says the loop is alive (brk_metrics_health). */
void brk_metrics_set_db(brk_metrics_t *self, bool up);
void brk_metrics_set_agencies(brk_metrics_t *self, const brk_agency_t *agencies, size_t n,
                              const size_t *clients, const uint64_t *inflight);

/* The loop's referral figures, taken about once a second (the set takes
   them, and frees the previous ones); a duplicate match of §9 stored,
   by whom it was told to (a match told to both counts for both). */
void brk_metrics_set_referrals(brk_metrics_t *self, brk_referral_figures_t **figures_p);
void brk_metrics_referral_duplicate(brk_metrics_t *self, bool told_publisher,
                                    bool told_recipient);

/* The store's queue figures (depth.h, brk_depths_take): `rows` replace
   those of their agencies (`all`: every agency's, the others dropped);
   from then on the depths are known. brk_metrics_forget_depths: not
   known any more (the store lost its database; it counts again on its
   next connection). */
void brk_metrics_set_depths(brk_metrics_t *self, const brk_depth_t *rows, size_t n,
                            bool all);
void brk_metrics_forget_depths(brk_metrics_t *self);

/* The Prometheus text exposition (format 0.0.4) of everything; the
   queue depths only when known. malloc'd. */
char *brk_metrics_render(brk_metrics_t *self);

/* The JSON behind the dashboard; an agency's pending, dead and oldest
   pending age only when known. malloc'd. */
char *brk_metrics_status_json(brk_metrics_t *self);

/* /healthz, from memory only: true when the loop refreshed its view
   within `stale_ms` and the store has its database; otherwise false,
   and why. */
bool brk_metrics_health(brk_metrics_t *self, int64_t stale_ms, char *why, size_t whylen);

#endif
