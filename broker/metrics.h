/*  metrics.h: the broker's figures for /metrics, /api/status and the
    dashboard (DESIGN.md "Monitoring").

    One set per process. The loop and the store thread record events as
    they happen; the HTTP thread reads. Every function takes the set's
    mutex, so any thread may call any of them. Queue depths and the oldest
    pending age are not kept here: the HTTP thread reads them from the
    database on each request, so they always agree with it. */

#ifndef BRK_METRICS_H
#define BRK_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* Creates (or empties) the set. 0 on success. */
int brk_metrics_init(void);
void brk_metrics_shutdown(void);

/* A message stored (not a duplicate), by type; its decisions, one per
   recipient; a REJECT by code. */
void brk_metrics_received(const char *type);
void brk_metrics_decision(bool allow, const char *basis);
void brk_metrics_rejected(const char *code);

/* Seconds from a PUBLISH read to its CONFIRM sent; from a store batch's
   BEGIN to its COMMIT. */
void brk_metrics_confirm_seconds(double seconds);
void brk_metrics_commit_seconds(double seconds);

/* The loop's view, refreshed about once a second: the database as the
   store last saw it, and per agency (in the order given) its name, its
   connected clients and the deliveries in flight to them. */
void brk_metrics_set_db(bool up);
void brk_metrics_set_agencies(const brk_agency_t *agencies, size_t n,
                              const size_t *clients, const uint64_t *inflight);

/* One agency's queue in the database. */
typedef struct {
    char agency[MLG_AGENCY_ID_MAX + 1];
    uint64_t pending; /* includes the ones in flight: the database keeps them pending */
    uint64_t dead;
    double oldest_pending_seconds; /* 0 with nothing pending */
} brk_queue_row_t;

/* The Prometheus text exposition (format 0.0.4) of everything, with the
   queue rows read from the database (NULL, 0 when it could not be read).
   malloc'd. */
char *brk_metrics_render(const brk_queue_row_t *rows, size_t nrows);

/* The JSON behind the dashboard. malloc'd. */
char *brk_metrics_status_json(const brk_queue_row_t *rows, size_t nrows, bool db_read);

/* The loop's last word on the database. */
bool brk_metrics_db_up(void);

#endif
