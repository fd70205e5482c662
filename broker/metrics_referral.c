/*  metrics_referral.c: the referrals (PROTOCOL.md §9) in /metrics and in
    the dashboard's JSON: the open legs by service and state, the overdue
    legs by recipient (and the longest overdue of them, for the
    dashboard), the times to first decision by service and priority, the
    duplicate matches by whom they were told to.

    The legs' figures are the loop's copy (referral_figures.c), taken
    once a second: the HTTP thread never reads the index nor the database
    for them. The duplicates are counted here as the loop stores them.
    Labels and JSON hold services, priorities, states, agency ids and
    referral ids, never a subject: the figures carry none. Called by the
    loop (the setters) and by metrics.c, under the set's lock. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics_int.h"

static const char *s_told[BRK_TOLD_N] = {
    [BRK_TOLD_PUBLISHER] = "publisher",
    [BRK_TOLD_RECIPIENT] = "recipient",
    [BRK_TOLD_NO] = "no",
};

void
brk_metrics_set_referrals(brk_metrics_t *self, brk_referral_figures_t **figures_p)
{
    pthread_mutex_lock(&self->lock);
    brk_referral_figures_t *old = self->referrals;
    self->referrals = *figures_p;
    *figures_p = NULL;
    pthread_mutex_unlock(&self->lock);
    brk_referral_figures_destroy(&old);
}

void
brk_metrics_referral_duplicate(brk_metrics_t *self, bool told_publisher,
                               bool told_recipient)
{
    pthread_mutex_lock(&self->lock);
    if (told_publisher)
        self->duplicates[BRK_TOLD_PUBLISHER]++;
    if (told_recipient)
        self->duplicates[BRK_TOLD_RECIPIENT]++;
    if (!told_publisher && !told_recipient)
        self->duplicates[BRK_TOLD_NO]++;
    pthread_mutex_unlock(&self->lock);
}

/* The legs of the service of tallies[i] in each state, its priorities
   summed; the index of the next service's first tally (the tallies come
   sorted by service). */
static size_t
s_service(const brk_referral_figures_t *f, size_t i, uint64_t legs[BRK_LEG_NSTATES],
          uint64_t *decisions, double *seconds)
{
    memset(legs, 0, BRK_LEG_NSTATES * sizeof(*legs));
    *decisions = 0;
    *seconds = 0;
    size_t k = i;
    for (; k < f->ntallies && strcmp(f->tallies[k].service, f->tallies[i].service) == 0;
         k++) {
        for (int s = 0; s < BRK_LEG_NSTATES; s++)
            legs[s] += f->tallies[k].legs[s];
        *decisions += f->tallies[k].decisions;
        *seconds += f->tallies[k].decision_seconds;
    }
    return k;
}

/* name{label="value"} n */
static void
s_sample(zchunk_t *out, const char *name, const char *label, const char *value,
         uint64_t n)
{
    brk_metrics_printf(out, "%s{%s=\"", name, label);
    brk_metrics_label(out, value);
    brk_metrics_printf(out, "\"} %llu\n", (unsigned long long)n);
}

static void
s_open_legs(const brk_referral_figures_t *f, zchunk_t *out)
{
    brk_metrics_family(out, "maillage_referral_legs_open", "gauge",
                       "Open referral legs, by service and state.");
    uint64_t legs[BRK_LEG_NSTATES], decisions;
    double seconds;
    for (size_t i = 0, next; f && i < f->ntallies; i = next) {
        next = s_service(f, i, legs, &decisions, &seconds);
        for (int s = 0; s < BRK_LEG_NSTATES; s++) {
            if (!brk_leg_state_open(s))
                continue;
            brk_metrics_printf(out, "maillage_referral_legs_open{service=\"");
            brk_metrics_label(out, f->tallies[i].service);
            brk_metrics_printf(out, "\",state=\"%s\"} %llu\n", brk_leg_state_name(s),
                               (unsigned long long)legs[s]);
        }
    }
}

static uint64_t
s_overdue_of(const brk_referral_figures_t *f, const char *agency)
{
    for (size_t i = 0; i < f->nrecipients; i++)
        if (strcmp(f->recipients[i].recipient, agency) == 0)
            return f->recipients[i].legs;
    return 0;
}

/* Every registered agency (0 when it has none), then any other recipient
   with overdue legs (an agency a reload removed). O(agencies x
   recipients) at each scrape. */
static void
s_overdue(const brk_metrics_t *self, zchunk_t *out)
{
    const char *name = "maillage_referral_legs_overdue";
    const brk_referral_figures_t *f = self->referrals;
    brk_metrics_family(out, name, "gauge",
                       "Open referral legs past their due time without a decision, by "
                       "recipient agency.");
    for (size_t i = 0; f && i < self->nagencies; i++)
        s_sample(out, name, "recipient", self->agencies[i].id,
                 s_overdue_of(f, self->agencies[i].id));
    for (size_t i = 0; f && i < f->nrecipients; i++) {
        bool registered = false;
        for (size_t k = 0; k < self->nagencies && !registered; k++)
            registered = strcmp(self->agencies[k].id, f->recipients[i].recipient) == 0;
        if (!registered)
            s_sample(out, name, "recipient", f->recipients[i].recipient,
                     f->recipients[i].legs);
    }
}

static void
s_first_decisions(const brk_referral_figures_t *f, zchunk_t *out)
{
    const char *name = "maillage_referral_first_decision_seconds";
    brk_metrics_family(out, name, "histogram",
                       "Seconds from a referral leg's opening to its first decision "
                       "(waitlisted, accepted or declined), by service and priority: "
                       "every decided leg the database holds.");
    for (size_t i = 0; f && i < f->ntallies; i++) {
        const brk_referral_tally_t *t = &f->tallies[i];
        zchunk_t *labels = zchunk_new(NULL, 0);
        if (!labels)
            return;
        brk_metrics_printf(labels, "service=\"");
        brk_metrics_label(labels, t->service);
        brk_metrics_printf(labels, "\",priority=\"");
        brk_metrics_label(labels, t->priority);
        brk_metrics_printf(labels, "\"");
        zchunk_extend(labels, "", 1);
        brk_metrics_histogram_t h = {.bounds = brk_decision_bounds,
                                     .nbounds = BRK_DECISION_NBOUNDS,
                                     .buckets = t->buckets,
                                     .count = t->decisions,
                                     .sum = t->decision_seconds};
        brk_metrics_histogram(out, name, (const char *)zchunk_data(labels), &h);
        zchunk_destroy(&labels);
    }
}

void
brk_metrics_render_referrals(const brk_metrics_t *self, zchunk_t *out)
{
    /* before the loop's first figures, the legs' families have no
       samples: nothing is known yet, which is not zero */
    s_open_legs(self->referrals, out);
    s_overdue(self, out);
    s_first_decisions(self->referrals, out);
    const char *name = "maillage_referral_duplicates_total";
    brk_metrics_family(out, name, "counter",
                       "Duplicate referral matches stored since the broker started, by "
                       "whom they were told to (a match told to both counts for both).");
    for (int i = 0; i < BRK_TOLD_N; i++)
        s_sample(out, name, "told", s_told[i], self->duplicates[i]);
}

/* One overdue leg for the dashboard: the referral and its agencies,
   how late at the figures' time. */
static json_t *
s_overdue_json(const brk_referral_figures_t *f, const brk_overdue_leg_t *o)
{
    json_t *j = json_object();
    json_object_set_new(j, "referral_id", json_string(o->referral_id));
    json_object_set_new(j, "service", json_string(o->service));
    json_object_set_new(j, "referrer", json_string(o->referrer));
    json_object_set_new(j, "recipient", json_string(o->recipient));
    json_object_set_new(j, "state", json_string(brk_leg_state_name(o->state)));
    json_object_set_new(j, "late_seconds", json_integer((f->at - o->due_us) / 1000000));
    return j;
}

json_t *
brk_metrics_referrals_json(const brk_metrics_t *self)
{
    const brk_referral_figures_t *f = self->referrals;
    if (!f)
        return NULL;
    json_t *root = json_object(), *open = json_object(), *overdue = json_array(),
           *decisions = json_array();
    uint64_t all[BRK_LEG_NSTATES] = {0}, legs[BRK_LEG_NSTATES], count;
    double seconds;
    for (size_t i = 0, next; i < f->ntallies; i = next) {
        next = s_service(f, i, legs, &count, &seconds);
        for (int s = 0; s < BRK_LEG_NSTATES; s++)
            all[s] += legs[s];
        if (!count)
            continue; /* no bar for a service without decisions */
        json_t *d = json_object();
        json_object_set_new(d, "service", json_string(f->tallies[i].service));
        json_object_set_new(d, "count", json_integer((json_int_t)count));
        json_object_set_new(d, "mean_seconds", json_real(seconds / (double)count));
        json_array_append_new(decisions, d);
    }
    for (int s = 0; s < BRK_LEG_NSTATES; s++)
        if (brk_leg_state_open(s))
            json_object_set_new(open, brk_leg_state_name(s),
                                json_integer((json_int_t)all[s]));
    for (size_t i = 0; i < f->noverdue; i++)
        json_array_append_new(overdue, s_overdue_json(f, &f->overdue[i]));
    json_object_set_new(root, "open", open);
    json_object_set_new(root, "overdue_total",
                        json_integer((json_int_t)f->overdue_total));
    json_object_set_new(root, "overdue", overdue);
    json_object_set_new(root, "decisions", decisions);
    return root;
}
