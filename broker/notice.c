/*  notice.c: the broker's own notices about referrals (PROTOCOL.md §9):
    referral.overdue when a leg has had no decision by its due time,
    referral.superseded when another leg of its referral started.

    Each is a message from the reserved sender `maillage`, built here
    from a plan of referral.c and handed to the store like any publish:
    stored, chained, a service_notice decision for the leg's referrer and
    recipient, delivered, in the subject report; its leg's change is
    written in the same transaction, so a notice is never sent twice nor
    lost across a restart (a plan the store did not take is given again).
    Called each tick of the loop, and when a leg has just started. */

#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "loop.h"
#include "maillage/json.h"

#define S_NOTICES_PER_TICK 64

/* RFC 3339, UTC, microseconds. */
static void
s_rfc3339(int64_t us, char *out, size_t len)
{
    time_t sec = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    char day[32];
    strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, len, "%.19s.%06dZ", day, (int)(us % 1000000));
}

static const char *
s_type(const brk_referral_plan_t *plan)
{
    return plan->step == BRK_REFERRAL_OVERDUE ? "referral.overdue"
                                              : "referral.superseded";
}

/* The notice's message: envelope and body; NULL (logged) when it cannot
   be built or its schema refuses it. */
static mlg_msg_t *
s_message(brk_broker_t *self, const brk_referral_plan_t *plan)
{
    const brk_leg_t *leg = &plan->legs[0];
    char body[512], due[64];
    s_rfc3339(leg->due_us, due, sizeof(due));
    if (plan->step == BRK_REFERRAL_OVERDUE)
        snprintf(body, sizeof(body),
                 "{\"referral_id\":\"%s\",\"recipient\":\"%s\",\"state\":\"%s\","
                 "\"due_at\":\"%s\"}",
                 plan->referral_id, leg->recipient, brk_leg_state_name(leg->state), due);
    else
        snprintf(body, sizeof(body), "{\"referral_id\":\"%s\",\"recipient\":\"%s\"}",
                 plan->referral_id, leg->recipient);
    mlg_msg_t *m = mlg_msg_new(MLG_OP_PUBLISH);
    uint8_t *packed = NULL;
    size_t packed_len = 0;
    char why[512] = "";
    bool ok =
        m
        && mlg_json_to_msgpack(body, strlen(body), &packed, &packed_len, why, sizeof(why))
               == MLG_OK
        && mlg_msg_set_body(m, packed, packed_len) == MLG_OK;
    free(packed);
    zuuid_t *uuid = ok ? zuuid_new() : NULL;
    ok = uuid != NULL;
    if (ok) {
        snprintf(m->id, sizeof(m->id), "%s", zuuid_str_canonical(uuid));
        for (char *c = m->id; *c; c++) /* canonical lowercase (PROTOCOL.md §2) */
            *c = (char)(*c >= 'A' && *c <= 'F' ? *c - 'A' + 'a' : *c);
        zuuid_destroy(&uuid);
        snprintf(m->type, sizeof(m->type), "%s", s_type(plan));
        m->version = 1;
        snprintf(m->subject, sizeof(m->subject), "%s", leg->subject);
        snprintf(m->correlation, sizeof(m->correlation), "%s", plan->referral_id);
        const mlg_schema_t *schema = mlg_registry_find(self->reg, m->type, 1);
        ok = schema && mlg_schema_validate_msg(schema, m, why, sizeof(why)) == MLG_OK;
    }
    if (!ok) {
        brk_log(BRK_LOG_ERROR, "referrals", "could not make a %s notice: %s",
                s_type(plan), why[0] ? why : "out of memory or no schema");
        mlg_msg_destroy(&m);
    }
    return m;
}

/* The two decisions: the referrer's and the leg's recipient's. */
static brk_decision_t *
s_decisions(const brk_referral_plan_t *plan)
{
    brk_decision_t *d = calloc(2, sizeof(*d));
    if (!d)
        return NULL;
    const char *to[2] = {plan->legs[0].referrer, plan->legs[0].recipient};
    for (int i = 0; i < 2; i++) {
        snprintf(d[i].recipient, sizeof(d[i].recipient), "%s", to[i]);
        d[i].allow = true;
        d[i].basis = MLG_BASIS_SERVICE_NOTICE;
    }
    return d;
}

/* One notice to the store; the plan goes with it, or back to the index
   when it cannot. */
static void
s_hand(brk_broker_t *self, brk_referral_plan_t *plan)
{
    mlg_msg_t *m = s_message(self, plan);
    brk_decision_t *d = m ? s_decisions(plan) : NULL;
    brk_job_t *job = d ? calloc(1, sizeof(*job)) : NULL;
    if (!job) {
        brk_referrals_abandon(self->referrals, plan);
        brk_referral_plan_clear(plan);
        mlg_msg_destroy(&m);
        free(d);
        return;
    }
    snprintf(plan->message_id, sizeof(plan->message_id), "%s", m->id);
    job->kind = BRK_JOB_PLAIN;
    job->msg = m;
    snprintf(job->sender, sizeof(job->sender), "%s", BRK_NOTICE_SENDER);
    job->received_us = plan->at;
    job->decisions = d;
    job->ndecisions = 2;
    job->referral = *plan;
    memset(plan, 0, sizeof(*plan)); /* the job's now */
    self->outstanding++;
    brk_store_publish(self->store, &job);
}

void
brk_notices_tick(brk_broker_t *self)
{
    if (!self->db_up || self->draining || self->outstanding >= self->cfg->max_outstanding)
        return;
    int64_t now = mlg_time_us(mlg_time_now());
    int64_t next = brk_referrals_next_due(self->referrals);
    if (next == 0 || next > now)
        return;
    brk_referral_plan_t plans[S_NOTICES_PER_TICK];
    size_t n = brk_referrals_due(self->referrals, now, plans, S_NOTICES_PER_TICK);
    for (size_t i = 0; i < n; i++)
        s_hand(self, &plans[i]);
}

void
brk_notice_done(brk_broker_t *self, const brk_job_t *job)
{
    (void)self;
    const brk_referral_plan_t *plan = &job->referral;
    const char *leg = plan->nlegs ? plan->legs[0].recipient : "";
    if (job->rc == MLG_OK)
        brk_log(BRK_LOG_INFO, "referrals", "%s %s: referral %s, leg to %s, told to %s",
                s_type(plan), job->msg->id, plan->referral_id, leg,
                plan->nlegs ? plan->legs[0].referrer : "");
    else
        brk_log(BRK_LOG_WARNING, "referrals",
                "%s about referral %s, leg to %s, not stored: tried again later",
                s_type(plan), plan->referral_id, leg);
}

int
brk_notices_check(const brk_config_t *cfg, const mlg_registry_t *reg, char *err,
                  size_t errlen)
{
    const char *own[] = {"referral.overdue", "referral.superseded"};
    for (size_t i = 0; i < 2; i++) {
        const mlg_schema_t *s = mlg_registry_find(reg, own[i], 1);
        if (!s || mlg_schema_basis(s) != MLG_BASIS_SERVICE_NOTICE) {
            snprintf(err, errlen,
                     "%s: %s.v1.json: required, with the basis service_notice (the "
                     "broker publishes it, PROTOCOL.md §9)",
                     cfg->schemas, own[i]);
            return -1;
        }
    }
    const mlg_schema_t *created = mlg_registry_find(reg, "referral.created", 1);
    for (size_t i = 0; i < cfg->ndeadlines; i++) {
        const brk_deadline_t *d = &cfg->deadlines[i];
        bool service =
            strcmp(d->service, "default") == 0
            || (created && mlg_schema_member_allows(created, "service", d->service));
        bool priority =
            created && mlg_schema_member_allows(created, "priority", d->priority);
        if (!service || !priority) {
            snprintf(err, errlen,
                     "%s: referrals/deadline/%s/%s: '%s' is not a %s of referral.created",
                     cfg->path, d->service, d->priority,
                     service ? d->priority : d->service,
                     service ? "priority" : "service");
            return -1;
        }
    }
    return 0;
}
