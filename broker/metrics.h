/*  metrics.h: the broker's figures for /metrics, /api/status and the
    dashboard (DESIGN.md "Monitoring").

    One set per broker, owned by it (brk_broker_t) and handed to the
    store thread and the HTTP listener when they start; it outlives both.
    The loop and the store thread record events as they happen; the HTTP
    thread reads. Every function takes the set's mutex, so any thread may
    call any of them. Queue depths and the oldest pending age are not kept
    here: the HTTP thread reads them through the store's view on each
    request (store.h, brk_store_view_t), so they always agree with the
    database. */

#ifndef BRK_METRICS_H
#define BRK_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
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
   connected clients and the deliveries in flight to them. */
void brk_metrics_set_db(brk_metrics_t *self, bool up);
void brk_metrics_set_agencies(brk_metrics_t *self, const brk_agency_t *agencies, size_t n,
                              const size_t *clients, const uint64_t *inflight);

/* The loop's referral figures, taken about once a second (the set takes
   them, and frees the previous ones); a duplicate match of §9 stored,
   by whom it was told to (a match told to both counts for both). */
void brk_metrics_set_referrals(brk_metrics_t *self, brk_referral_figures_t **figures_p);
void brk_metrics_referral_duplicate(brk_metrics_t *self, bool told_publisher,
                                    bool told_recipient);

/* The Prometheus text exposition (format 0.0.4) of everything, with the
   queue rows read from the database (NULL, 0 when it could not be read).
   malloc'd. */
char *brk_metrics_render(brk_metrics_t *self, const brk_queue_row_t *rows, size_t nrows);

/* The JSON behind the dashboard. malloc'd. */
char *brk_metrics_status_json(brk_metrics_t *self, const brk_queue_row_t *rows,
                              size_t nrows, bool db_read);

/* The loop's last word on the database. */
bool brk_metrics_db_up(brk_metrics_t *self);

#endif
