/*  metrics.c: see metrics.h. Counters keyed by their label values in
    czmq hash tables, two histograms with fixed buckets, the loop's
    snapshot of agencies, the store's queue figures; all behind the
    set's mutex. The referral figures are metrics_referral.c's. */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics_int.h"

/* Seconds: from well under a millisecond (a commit of one row on a fast
   disk) to seconds (a struggling database). */
static const double s_bounds[BRK_LATENCY_NBOUNDS] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define S_NBOUNDS BRK_LATENCY_NBOUNDS

static void
s_free_agencies(brk_metrics_t *self)
{
    for (size_t i = 0; i < self->nagencies; i++)
        free(self->agencies[i].name);
    free(self->agencies);
    self->agencies = NULL;
    self->nagencies = 0;
}

static void
s_free_depth(void **item)
{
    free(*item);
    *item = NULL;
}

static zhashx_t *
s_counters(void)
{
    zhashx_t *h = zhashx_new();
    if (h)
        zhashx_set_destructor(h, (zhashx_destructor_fn *)zstr_free);
    return h;
}

brk_metrics_t *
brk_metrics_new(void)
{
    brk_metrics_t *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    pthread_mutex_init(&self->lock, NULL);
    self->received = s_counters();
    self->rejected = s_counters();
    self->decisions = s_counters();
    self->depths = zhashx_new();
    if (self->depths)
        zhashx_set_destructor(self->depths, s_free_depth);
    self->started = zclock_time();
    self->loop_seen = zclock_mono();
    if (!self->received || !self->rejected || !self->decisions || !self->depths)
        brk_metrics_destroy(&self);
    return self;
}

void
brk_metrics_destroy(brk_metrics_t **self_p)
{
    brk_metrics_t *self = *self_p;
    if (!self)
        return;
    zhashx_destroy(&self->received);
    zhashx_destroy(&self->rejected);
    zhashx_destroy(&self->decisions);
    zhashx_destroy(&self->depths);
    s_free_agencies(self);
    brk_referral_figures_destroy(&self->referrals);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

static void
s_bump(zhashx_t *h, const char *key)
{
    uint64_t *n = zhashx_lookup(h, key);
    if (n) {
        (*n)++;
        return;
    }
    n = malloc(sizeof(*n));
    if (!n)
        return;
    *n = 1;
    if (zhashx_insert(h, key, n) != 0)
        free(n);
}

void
brk_metrics_received(brk_metrics_t *self, const char *type)
{
    pthread_mutex_lock(&self->lock);
    s_bump(self->received, type);
    pthread_mutex_unlock(&self->lock);
}

void
brk_metrics_rejected(brk_metrics_t *self, const char *code)
{
    pthread_mutex_lock(&self->lock);
    s_bump(self->rejected, code);
    pthread_mutex_unlock(&self->lock);
}

void
brk_metrics_decision(brk_metrics_t *self, bool allow, const char *basis)
{
    char key[64];
    snprintf(key, sizeof(key), "%s,%s", allow ? "allow" : "deny", basis);
    pthread_mutex_lock(&self->lock);
    s_bump(self->decisions, key);
    pthread_mutex_unlock(&self->lock);
}

static void
s_observe(brk_latency_t *h, double seconds)
{
    if (!(seconds >= 0))
        seconds = 0;
    size_t i = 0;
    while (i < S_NBOUNDS && seconds > s_bounds[i])
        i++;
    if (i < S_NBOUNDS)
        h->buckets[i]++;
    h->count++;
    h->sum += seconds;
}

void
brk_metrics_confirm_seconds(brk_metrics_t *self, double seconds)
{
    pthread_mutex_lock(&self->lock);
    s_observe(&self->confirm, seconds);
    pthread_mutex_unlock(&self->lock);
}

void
brk_metrics_commit_seconds(brk_metrics_t *self, double seconds)
{
    pthread_mutex_lock(&self->lock);
    s_observe(&self->commit, seconds);
    pthread_mutex_unlock(&self->lock);
}

void
brk_metrics_set_db(brk_metrics_t *self, bool up)
{
    pthread_mutex_lock(&self->lock);
    self->db_up = up;
    pthread_mutex_unlock(&self->lock);
}

bool
brk_metrics_health(brk_metrics_t *self, int64_t stale_ms, char *why, size_t whylen)
{
    pthread_mutex_lock(&self->lock);
    int64_t silent = zclock_mono() - self->loop_seen;
    bool up = self->db_up;
    pthread_mutex_unlock(&self->lock);
    if (silent > stale_ms)
        snprintf(why, whylen, "the broker's event loop has not run for %lld ms",
                 (long long)silent);
    else if (!up)
        snprintf(why, whylen, "the broker's store has no database");
    return silent <= stale_ms && up;
}

void
brk_metrics_set_depths(brk_metrics_t *self, const brk_depth_t *rows, size_t n, bool all)
{
    pthread_mutex_lock(&self->lock);
    if (all)
        zhashx_purge(self->depths);
    for (size_t i = 0; i < n; i++) {
        brk_depth_t *d = zhashx_lookup(self->depths, rows[i].agency);
        if (!d && (d = malloc(sizeof(*d)))
            && zhashx_insert(self->depths, rows[i].agency, d) != 0) {
            free(d);
            d = NULL;
        }
        if (d)
            *d = rows[i];
    }
    self->depths_known = true;
    pthread_mutex_unlock(&self->lock);
}

void
brk_metrics_forget_depths(brk_metrics_t *self)
{
    pthread_mutex_lock(&self->lock);
    zhashx_purge(self->depths);
    self->depths_known = false;
    pthread_mutex_unlock(&self->lock);
}

void
brk_metrics_set_agencies(brk_metrics_t *self, const brk_agency_t *agencies, size_t n,
                         const size_t *clients, const uint64_t *inflight)
{
    brk_metrics_agency_t *copy = calloc(n ? n : 1, sizeof(*copy));
    if (!copy)
        return;
    for (size_t i = 0; i < n; i++) {
        snprintf(copy[i].id, sizeof(copy[i].id), "%s", agencies[i].id);
        copy[i].name = strdup(agencies[i].name ? agencies[i].name : "");
        copy[i].clients = clients[i];
        copy[i].inflight = inflight[i];
    }
    pthread_mutex_lock(&self->lock);
    s_free_agencies(self);
    self->agencies = copy;
    self->nagencies = n;
    self->loop_seen = zclock_mono();
    pthread_mutex_unlock(&self->lock);
}

/* ---- writing ------------------------------------------------------------ */

/* A label value as the exposition format wants it: \, " and newline
   escaped. Values here are agency ids, type names and codes, but the
   writer does not rely on it. */
void
brk_metrics_label(zchunk_t *out, const char *value)
{
    for (const char *c = value; *c; c++) {
        if (*c == '\\' || *c == '"')
            zchunk_extend(out, "\\", 1);
        if (*c == '\n')
            zchunk_extend(out, "\\n", 2);
        else
            zchunk_extend(out, c, 1);
    }
}

void
brk_metrics_printf(zchunk_t *out, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n > 0)
        zchunk_extend(out, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

void
brk_metrics_family(zchunk_t *out, const char *name, const char *type, const char *help)
{
    brk_metrics_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static int
s_by_key(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* One counter family with one label, sorted by label value. */
static void
s_counter(zchunk_t *out, const char *name, const char *help, zhashx_t *h,
          const char *label)
{
    brk_metrics_family(out, name, "counter", help);
    zlistx_t *keys = zhashx_keys(h);
    size_t n = zlistx_size(keys), i = 0;
    const char **sorted = calloc(n ? n : 1, sizeof(*sorted));
    for (const char *k = zlistx_first(keys); sorted && k; k = zlistx_next(keys))
        sorted[i++] = k;
    if (sorted)
        qsort(sorted, i, sizeof(*sorted), s_by_key);
    for (size_t k = 0; sorted && k < i; k++) {
        uint64_t *v = zhashx_lookup(h, sorted[k]);
        if (label) {
            brk_metrics_printf(out, "%s{%s=\"", name, label);
            brk_metrics_label(out, sorted[k]);
            brk_metrics_printf(out, "\"} %llu\n", (unsigned long long)*v);
        }
        else {
            /* "allow,consent": two labels */
            const char *comma = strchr(sorted[k], ',');
            brk_metrics_printf(out, "%s{decision=\"%.*s\",basis=\"", name,
                               (int)(comma ? comma - sorted[k] : 0), sorted[k]);
            brk_metrics_label(out, comma ? comma + 1 : "");
            brk_metrics_printf(out, "\"} %llu\n", (unsigned long long)*v);
        }
    }
    free(sorted);
    zlistx_destroy(&keys);
}

void
brk_metrics_histogram(zchunk_t *out, const char *name, const char *labels,
                      const brk_metrics_histogram_t *h)
{
    const char *sep = labels[0] ? "," : "";
    uint64_t cumulative = 0;
    for (size_t i = 0; i < h->nbounds; i++) {
        cumulative += h->buckets[i];
        brk_metrics_printf(out, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep,
                           h->bounds[i], (unsigned long long)cumulative);
    }
    brk_metrics_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep,
                       (unsigned long long)h->count);
    if (labels[0]) {
        brk_metrics_printf(out, "%s_sum{%s} %.9f\n", name, labels, h->sum);
        brk_metrics_printf(out, "%s_count{%s} %llu\n", name, labels,
                           (unsigned long long)h->count);
        return;
    }
    brk_metrics_printf(out, "%s_sum %.9f\n", name, h->sum);
    brk_metrics_printf(out, "%s_count %llu\n", name, (unsigned long long)h->count);
}

/* A latency: a family of one histogram without labels. */
static void
s_latency(zchunk_t *out, const char *name, const char *help, const brk_latency_t *h)
{
    brk_metrics_family(out, name, "histogram", help);
    brk_metrics_histogram_t view = {.bounds = s_bounds,
                                    .nbounds = S_NBOUNDS,
                                    .buckets = h->buckets,
                                    .count = h->count,
                                    .sum = h->sum};
    brk_metrics_histogram(out, name, "", &view);
}

static char *
s_take(zchunk_t **out_p)
{
    zchunk_t *out = *out_p;
    zchunk_extend(out, "", 1);
    char *text = strdup((const char *)zchunk_data(out));
    zchunk_destroy(out_p);
    return text;
}

/* An agency's queue as the store keeps it, under the lock: zeros when
   nothing of it is kept (nothing pending or dead). */
static brk_depth_t
s_depth(const brk_metrics_t *self, const char *agency)
{
    const brk_depth_t *d = zhashx_lookup(self->depths, agency);
    brk_depth_t none = {.pending = 0};
    return d ? *d : none;
}

/* Seconds since the oldest pending delivery's message was received; 0
   when none is pending. */
static double
s_age(const brk_depth_t *d, int64_t now_us)
{
    return d->pending && d->oldest_us && now_us > d->oldest_us
               ? (double)(now_us - d->oldest_us) / 1e6
               : 0;
}

/* The queue families, every registered agency with its series; pending
   and dead only when the store's figures are known. */
static void
s_render_queues(const brk_metrics_t *self, zchunk_t *out)
{
    brk_metrics_family(
        out, "maillage_queue_depth", "gauge",
        "Deliveries per recipient agency: pending in the database (in flight "
        "included), in flight to a client now, dead-lettered.");
    for (size_t k = 0; k < self->nagencies; k++) {
        const brk_metrics_agency_t *a = &self->agencies[k];
        brk_depth_t d = s_depth(self, a->id);
        if (self->depths_known)
            brk_metrics_printf(
                out, "maillage_queue_depth{agency=\"%s\",state=\"pending\"} %llu\n",
                a->id, (unsigned long long)d.pending);
        brk_metrics_printf(
            out, "maillage_queue_depth{agency=\"%s\",state=\"inflight\"} %llu\n", a->id,
            (unsigned long long)a->inflight);
        if (self->depths_known)
            brk_metrics_printf(
                out, "maillage_queue_depth{agency=\"%s\",state=\"dead\"} %llu\n", a->id,
                (unsigned long long)d.dead);
    }
    brk_metrics_family(
        out, "maillage_oldest_pending_seconds", "gauge",
        "Age of the oldest pending delivery per recipient agency (0: none).");
    int64_t now_us = mlg_time_us(mlg_time_now());
    for (size_t k = 0; self->depths_known && k < self->nagencies; k++) {
        brk_depth_t d = s_depth(self, self->agencies[k].id);
        brk_metrics_printf(out, "maillage_oldest_pending_seconds{agency=\"%s\"} %.3f\n",
                           self->agencies[k].id, s_age(&d, now_us));
    }
}

char *
brk_metrics_render(brk_metrics_t *self)
{
    zchunk_t *out = zchunk_new(NULL, 0);
    if (!out)
        return NULL;
    pthread_mutex_lock(&self->lock);
    s_counter(out, "maillage_messages_received_total",
              "Messages stored (duplicates not counted), by event type.", self->received,
              "type");
    s_counter(out, "maillage_messages_rejected_total",
              "PUBLISHes answered REJECT, by PROTOCOL.md section 5 code.", self->rejected,
              "code");
    s_counter(out, "maillage_consent_decisions_total",
              "Decisions stored for recipients, by decision and legal basis.",
              self->decisions, NULL);
    s_render_queues(self, out);
    brk_metrics_family(out, "maillage_clients_connected", "gauge",
                       "Clients in session, per agency.");
    for (size_t i = 0; i < self->nagencies; i++)
        brk_metrics_printf(out, "maillage_clients_connected{agency=\"%s\"} %zu\n",
                           self->agencies[i].id, self->agencies[i].clients);
    brk_metrics_family(out, "maillage_database_up", "gauge",
                       "1 when the broker's store has its database, 0 otherwise.");
    brk_metrics_printf(out, "maillage_database_up %d\n", self->db_up ? 1 : 0);
    s_latency(out, "maillage_publish_confirm_seconds",
              "Seconds from reading a PUBLISH to sending its CONFIRM.", &self->confirm);
    s_latency(out, "maillage_store_commit_seconds",
              "Seconds from BEGIN to COMMIT of one store batch.", &self->commit);
    brk_metrics_render_referrals(self, out);
    pthread_mutex_unlock(&self->lock);
    return s_take(&out);
}

static uint64_t
s_sum(zhashx_t *h)
{
    uint64_t total = 0;
    for (uint64_t *v = zhashx_first(h); v; v = zhashx_next(h))
        total += *v;
    return total;
}

char *
brk_metrics_status_json(brk_metrics_t *self)
{
    json_t *root = json_object();
    json_t *list = json_array();
    int64_t now_us = mlg_time_us(mlg_time_now());
    pthread_mutex_lock(&self->lock);
    json_object_set_new(root, "database_up", json_boolean(self->db_up));
    json_object_set_new(
        root, "uptime_seconds",
        json_integer((json_int_t)((zclock_time() - self->started) / 1000)));
    json_object_set_new(root, "received_total",
                        json_integer((json_int_t)s_sum(self->received)));
    json_object_set_new(root, "rejected_total",
                        json_integer((json_int_t)s_sum(self->rejected)));
    json_object_set_new(root, "confirmed_total",
                        json_integer((json_int_t)self->confirm.count));
    for (size_t i = 0; i < self->nagencies; i++) {
        const brk_metrics_agency_t *a = &self->agencies[i];
        json_t *o = json_object();
        json_object_set_new(o, "id", json_string(a->id));
        json_object_set_new(o, "name", json_string(a->name ? a->name : ""));
        json_object_set_new(o, "clients", json_integer((json_int_t)a->clients));
        json_object_set_new(o, "inflight", json_integer((json_int_t)a->inflight));
        if (self->depths_known) {
            brk_depth_t d = s_depth(self, a->id);
            json_object_set_new(o, "pending", json_integer((json_int_t)d.pending));
            json_object_set_new(o, "dead", json_integer((json_int_t)d.dead));
            json_object_set_new(o, "oldest_pending_seconds",
                                json_real(s_age(&d, now_us)));
        }
        json_array_append_new(list, o);
    }
    json_t *referrals = brk_metrics_referrals_json(self);
    pthread_mutex_unlock(&self->lock);
    json_object_set_new(root, "agencies", list);
    if (referrals)
        json_object_set_new(root, "referrals", referrals);
    char *text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    return text;
}
