/*  benchreport.c: the figures the benchmarks share (benchreport.h).

    Computes and prints; measures nothing and owns no connection. Called
    by maillage-bench and rabbit-bench once their run is over. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "benchreport.h"

void
bench_errors_init(bench_errors_t *e)
{
    atomic_init(&e->count, 0);
    pthread_mutex_init(&e->lock, NULL);
    e->first[0] = '\0';
}

void
bench_errors_fini(bench_errors_t *e)
{
    pthread_mutex_destroy(&e->lock);
}

void
bench_error(bench_errors_t *e, const char *fmt, const char *a, const char *b)
{
    atomic_fetch_add(&e->count, 1);
    pthread_mutex_lock(&e->lock);
    if (!e->first[0])
        if (snprintf(e->first, sizeof(e->first), fmt, a, b) < 0)
            e->first[0] = '\0';
    pthread_mutex_unlock(&e->lock);
}

static int64_t
s_monotonic_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void
bench_wait_progress(atomic_long *done, atomic_long *target, int64_t silence_us,
                    volatile sig_atomic_t *interrupted)
{
    long last = -1;
    int64_t since = s_monotonic_us();
    while (!*interrupted && atomic_load(done) < atomic_load(target)) {
        long now_done = atomic_load(done);
        if (now_done != last) {
            last = now_done;
            since = s_monotonic_us();
        }
        else if (s_monotonic_us() - since > silence_us)
            break;
        struct timespec ms5 = {0, 5000000};
        nanosleep(&ms5, NULL);
    }
}

void
bench_sample(bench_samples_t *s, int64_t us)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4096;
        int64_t *nv = realloc(s->v, cap * sizeof(*nv));
        if (!nv)
            return;
        s->v = nv;
        s->cap = cap;
    }
    s->v[s->n++] = us;
}

void
bench_samples_merge(bench_samples_t *into, bench_samples_t *from)
{
    for (size_t i = 0; i < from->n; i++)
        bench_sample(into, from->v[i]);
    bench_samples_free(from);
}

void
bench_samples_free(bench_samples_t *s)
{
    free(s->v);
    memset(s, 0, sizeof(*s));
}

static int
s_cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* The value at quantile q of sorted samples, in ms. */
static double
s_quantile(const bench_samples_t *s, double q)
{
    if (!s->n)
        return 0;
    size_t i = (size_t)(q * (double)(s->n - 1) + 0.5);
    return (double)s->v[i < s->n ? i : s->n - 1] / 1000.0;
}

void
bench_figures_fill(bench_figures_t *f, bool consumers, int64_t t0_us,
                   int64_t last_confirm_us, int64_t last_deliver_us,
                   bench_samples_t *confirm, bench_samples_t *deliver)
{
    int64_t lc = last_confirm_us, ld = last_deliver_us;
    f->confirm_rate = lc > t0_us ? (double)f->confirmed * 1e6 / (double)(lc - t0_us) : 0;
    int64_t lend = ld > lc ? ld : lc;
    long e2e = f->delivered < f->confirmed ? f->delivered : f->confirmed;
    f->e2e_rate =
        consumers && lend > t0_us ? (double)e2e * 1e6 / (double)(lend - t0_us) : 0;
    f->seconds = lend > t0_us ? (double)(lend - t0_us) / 1e6 : 0;
    if (confirm->n) /* none: v may be NULL, which qsort must not get */
        qsort(confirm->v, confirm->n, sizeof(int64_t), s_cmp64);
    if (deliver->n)
        qsort(deliver->v, deliver->n, sizeof(int64_t), s_cmp64);
    f->c50 = s_quantile(confirm, 0.5);
    f->c99 = s_quantile(confirm, 0.99);
    f->c999 = s_quantile(confirm, 0.999);
    f->cmax = s_quantile(confirm, 1.0);
    f->d50 = s_quantile(deliver, 0.5);
    f->d99 = s_quantile(deliver, 0.99);
    f->d999 = s_quantile(deliver, 0.999);
    f->dmax = s_quantile(deliver, 1.0);
}

void
bench_figures_print(const bench_figures_t *f, bool consumers)
{
    printf("  %-34s %ld published, %ld confirmed, %ld rejected, %ld delivered, %ld acked"
           " in %.2f s\n",
           "messages", f->published, f->confirmed, f->rejected, f->delivered, f->acked,
           f->seconds);
    printf("  %-34s %12.0f msg/s\n", "publish -> confirm", f->confirm_rate);
    if (consumers)
        printf("  %-34s %12.0f msg/s\n", "end to end (delivered and acked)", f->e2e_rate);
    printf("  %-34s %8s %8s %8s %8s\n", "latency (ms)", "p50", "p99", "p99.9", "max");
    printf("  %-34s %8.2f %8.2f %8.2f %8.2f\n", "publish -> confirm", f->c50, f->c99,
           f->c999, f->cmax);
    if (consumers)
        printf("  %-34s %8.2f %8.2f %8.2f %8.2f\n", "publish -> deliver", f->d50, f->d99,
               f->d999, f->dmax);
}

void
bench_figures_json(json_t *doc, const bench_figures_t *f)
{
    json_object_set_new(doc, "published", json_integer(f->published));
    json_object_set_new(doc, "confirmed", json_integer(f->confirmed));
    json_object_set_new(doc, "rejected", json_integer(f->rejected));
    json_object_set_new(doc, "delivered", json_integer(f->delivered));
    json_object_set_new(doc, "acked", json_integer(f->acked));
    json_object_set_new(doc, "errors", json_integer(f->errors));
    json_object_set_new(doc, "seconds", json_real(f->seconds));
    json_object_set_new(doc, "confirm_per_s", json_real(f->confirm_rate));
    json_object_set_new(doc, "e2e_per_s", json_real(f->e2e_rate));
    json_object_set_new(doc, "confirm_ms",
                        json_pack("{s:f, s:f, s:f, s:f}", "p50", f->c50, "p99", f->c99,
                                  "p99.9", f->c999, "max", f->cmax));
    json_object_set_new(doc, "deliver_ms",
                        json_pack("{s:f, s:f, s:f, s:f}", "p50", f->d50, "p99", f->d99,
                                  "p99.9", f->d999, "max", f->dmax));
}
