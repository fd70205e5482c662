/*  metrics_int.h: what metrics.c (the set, its counters and the queue
    figures) and metrics_referral.c (the referral figures) share, and
    nothing else includes: the set's structure and the writers of the
    Prometheus text. Every field is read and written under `lock`. */

#ifndef BRK_METRICS_INT_H
#define BRK_METRICS_INT_H

#include <pthread.h>

#include <czmq.h>
#include <jansson.h>

#include "metrics.h"

/* A histogram as it is written: its bounds and counts, wherever they
   are kept. */
typedef struct {
    const double *bounds; /* increasing */
    size_t nbounds;
    const uint64_t *buckets; /* nbounds counts, not cumulative; summed when written */
    uint64_t count;          /* all observations (the +Inf bucket) */
    double sum;
} brk_metrics_histogram_t;

/* The latencies' histograms (metrics.c's bounds, seconds). */
#define BRK_LATENCY_NBOUNDS 14
typedef struct {
    uint64_t buckets[BRK_LATENCY_NBOUNDS]; /* not cumulative */
    uint64_t count;
    double sum;
} brk_latency_t;

typedef struct {
    char id[MLG_AGENCY_ID_MAX + 1];
    char *name;
    size_t clients;
    uint64_t inflight;
} brk_metrics_agency_t;

/* A duplicate match (PROTOCOL.md §9), by whom it was told to. */
typedef enum {
    BRK_TOLD_PUBLISHER,
    BRK_TOLD_RECIPIENT,
    BRK_TOLD_NO,
} brk_metrics_told_t;

#define BRK_TOLD_N 3

struct brk_metrics_t {
    pthread_mutex_t lock;
    zhashx_t *received;  /* type -> uint64_t * */
    zhashx_t *rejected;  /* code -> uint64_t * */
    zhashx_t *decisions; /* "allow,consent" -> uint64_t * */
    brk_latency_t confirm, commit;
    bool db_up;
    int64_t loop_seen; /* zclock_mono() at the loop's last refresh */
    zhashx_t *depths;  /* agency -> brk_depth_t, the store's figures */
    bool depths_known;
    brk_metrics_agency_t *agencies;
    size_t nagencies;
    int64_t started;
    brk_referral_figures_t *referrals; /* the loop's last copy; NULL before */
    uint64_t duplicates[BRK_TOLD_N];   /* since the broker started */
};

/* The Prometheus text's pieces: a formatted line, a family's HELP and
   TYPE, a label value escaped, a histogram's samples (`labels` are its
   own, written before `le`: 'service="x",priority="y"', or ""). */
void brk_metrics_printf(zchunk_t *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void brk_metrics_family(zchunk_t *out, const char *name, const char *type,
                        const char *help);
void brk_metrics_label(zchunk_t *out, const char *value);
void brk_metrics_histogram(zchunk_t *out, const char *name, const char *labels,
                           const brk_metrics_histogram_t *h);

/* metrics_referral.c, under the lock: the referral families, and the
   dashboard's "referrals" object (NULL before the loop's first copy). */
void brk_metrics_render_referrals(const brk_metrics_t *self, zchunk_t *out);
json_t *brk_metrics_referrals_json(const brk_metrics_t *self);

#endif
