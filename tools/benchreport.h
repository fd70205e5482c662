/*  benchreport.h: what the benchmarks report alike (maillage-bench and
    rabbit-bench, docs/performance.md): a run's errors, its wait for the
    last deliveries, latency samples and their quantiles, its counts and
    rates, and their text and JSON forms, so that the two reports read
    the same, line for line and key for key. */

#ifndef MLG_BENCHREPORT_H
#define MLG_BENCHREPORT_H

#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A run's errors, noted by any of its threads: how many, and the first
   one's text (which names no person and holds no body). */
typedef struct {
    atomic_long count;
    pthread_mutex_t lock;
    char first[512];
} bench_errors_t;

void bench_errors_init(bench_errors_t *e);
void bench_errors_fini(bench_errors_t *e);

/* Counts an error; the first one's text is fmt with a and b (two %s). */
void bench_error(bench_errors_t *e, const char *fmt, const char *a, const char *b);

/* Waits until *done reaches *target, checking every 5 ms, or until
 *done has not moved for silence_us, or *interrupted is set. */
void bench_wait_progress(atomic_long *done, atomic_long *target, int64_t silence_us,
                         volatile sig_atomic_t *interrupted);

/* Latencies in µs, one per answered message. */
typedef struct {
    int64_t *v;
    size_t n, cap;
} bench_samples_t;

/* Adds a sample (dropped, never fatal, when memory runs out). */
void bench_sample(bench_samples_t *s, int64_t us);

/* Moves every sample of `from` into `into`; `from` is left empty. */
void bench_samples_merge(bench_samples_t *into, bench_samples_t *from);

void bench_samples_free(bench_samples_t *s);

/* A run's figures. */
typedef struct {
    long published, confirmed, rejected, delivered, acked, errors;
    double seconds;              /* from the start to the last confirm or delivery */
    double confirm_rate;         /* publish -> confirm: confirmed over the time to the
                                    last confirm, msg/s */
    double e2e_rate;             /* end to end: the messages both confirmed and
                                    delivered over the time to the last of them; 0
                                    without consumers */
    double c50, c99, c999, cmax; /* publish -> confirm, ms */
    double d50, d99, d999, dmax; /* publish -> deliver, ms */
} bench_figures_t;

/* Fills the rates and quantiles of f, whose counts are set, from the
   start, the last confirm and the last delivery (µs of one clock) and
   the samples, which it sorts. */
void bench_figures_fill(bench_figures_t *f, bool consumers, int64_t t0_us,
                        int64_t last_confirm_us, int64_t last_deliver_us,
                        bench_samples_t *confirm, bench_samples_t *deliver);

/* The figures' lines of the text report, on stdout: the counts, the two
   rates and the latency table (the deliveries' lines with consumers). */
void bench_figures_print(const bench_figures_t *f, bool consumers);

/* The figures' keys, added to a JSON report: published, confirmed,
   rejected, delivered, acked, errors, seconds, confirm_per_s, e2e_per_s,
   confirm_ms and deliver_ms ({p50, p99, p99.9, max}). */
void bench_figures_json(json_t *doc, const bench_figures_t *f);

#endif
