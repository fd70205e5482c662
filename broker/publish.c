/*  publish.c: a PUBLISH, from its map to its CONFIRM or REJECT.

    Runs a publish through its steps (check, plan, admit, hand to the
    store: PROTOCOL.md §5's order) and answers it when the store has
    committed it or could not: the CONFIRM with each recipient's
    decision, or a REJECT. A consent event's plan comes from
    consent_event.c, the routing from router.c; the deliveries made go
    to delivery.c. Never waits for the database. Called by conn.c (the
    map) and broker.c (the store's answer). */

#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consent_event.h"
#include "log.h"
#include "maillage/body.h"
#include "loop.h"
#include "metrics.h"
#include "router.h"

/* A PUBLISH on its way through the loop: what its steps found. */
typedef struct {
    const mlg_schema_t *schema;
    int64_t received_us;
    brk_decision_t *decisions; /* owned until the job takes them */
    size_t ndecisions;
    brk_consent_plan_t consent;   /* a consent event's plan */
    brk_referral_plan_t referral; /* a referral event's plan */
    mlg_rc_t refused;             /* the referral step's refusal (§9), which
                                     the store answers unless the id is
                                     stored already (a retry) */
    char reason[768];
} s_publish_t;

/* Check: the frame's size, the agency's permission, the schema, the
   body and the envelope, in PROTOCOL.md §5's order. */
static mlg_rc_t
s_publish_check(brk_broker_t *self, const brk_session_t *s, const mlg_msg_t *m,
                size_t frame_size, s_publish_t *p)
{
    if (frame_size > self->cfg->max_message_bytes) {
        snprintf(p->reason, sizeof(p->reason),
                 "the message is %zu bytes, over the limit of %llu", frame_size,
                 (unsigned long long)self->cfg->max_message_bytes);
        return MLG_TOO_LARGE;
    }
    const brk_agency_t *agency = brk_config_agency(self->cfg, s->agency);
    p->schema = mlg_registry_find(self->reg, m->type, m->version);
    if (p->schema && mlg_schema_basis(p->schema) == MLG_BASIS_SERVICE_NOTICE) {
        snprintf(p->reason, sizeof(p->reason),
                 "%s is published by the broker only (PROTOCOL.md §9)", m->type);
        return MLG_FORBIDDEN;
    }
    if (!agency || !brk_agency_may_publish(agency, m->type)) {
        snprintf(p->reason, sizeof(p->reason), "agency '%s' may not publish %s",
                 s->agency, m->type);
        return MLG_FORBIDDEN;
    }
    if (!p->schema) {
        snprintf(p->reason, sizeof(p->reason), "no schema for %s version %llu", m->type,
                 (unsigned long long)m->version);
        return MLG_UNKNOWN_TYPE;
    }
    p->received_us = mlg_time_us(mlg_time_now());
    mlg_rc_t rc = mlg_schema_validate_msg(p->schema, m, p->reason, sizeof(p->reason));
    if (rc != MLG_OK)
        return rc;
    return mlg_envelope_check(self->reg, p->schema, m, s->agency, p->reason,
                              sizeof(p->reason));
}

/* Plan: who receives it, with a decision each; a consent event's plan
   says besides what to store and which deliveries to keep. */
static mlg_rc_t
s_publish_plan(brk_broker_t *self, const brk_session_t *s, const mlg_msg_t *m,
               s_publish_t *p)
{
    if (mlg_schema_basis(p->schema) != MLG_BASIS_CONSENT_NOTICE)
        return brk_route(self->cfg, self->consents, p->schema, m, s->agency,
                         p->received_us, &p->decisions, &p->ndecisions, p->reason,
                         sizeof(p->reason));
    mlg_rc_t rc = brk_consent_plan(self->consents, self->granting, self->queues, m,
                                   s->agency, &p->consent, p->reason, sizeof(p->reason));
    if (rc != MLG_OK)
        return rc;
    p->decisions = p->consent.notices; /* the parties told are its recipients */
    p->ndecisions = p->consent.nnotices;
    p->consent.notices = NULL;
    return MLG_OK;
}

/* The referral step (§9): what a referral event does to the legs, from
   memory. A refusal is kept in p->refused, not answered here: the store
   answers it unless the id is stored already (then the publish is a
   retry, answered as a duplicate). */
static void
s_publish_referral(brk_broker_t *self, const brk_session_t *s, const mlg_msg_t *m,
                   s_publish_t *p)
{
    if (strncmp(m->type, "referral.", 9) != 0)
        return;
    char referral_id[MLG_UUID_LEN + 1] = "", service[BRK_REFERRAL_WORD_MAX + 1] = "",
                                    priority[BRK_REFERRAL_WORD_MAX + 1] = "";
    if (!mlg_body_text(m, "/referral_id", referral_id, sizeof(referral_id)))
        return; /* a referral.* type of the schemas' without one: no leg */
    mlg_body_text(m, "/service", service, sizeof(service));
    mlg_body_text(m, "/priority", priority, sizeof(priority));
    for (char *c = referral_id; *c; c++) /* one referral, whatever the case */
        *c = (char)(*c >= 'A' && *c <= 'F' ? *c - 'A' + 'a' : *c);
    const brk_config_t *cfg = self->cfg;
    brk_referral_event_t ev = {.type = m->type,
                               .message_id = m->id,
                               .publisher = s->agency,
                               .referral_id = referral_id,
                               .subject = m->subject,
                               .service = service,
                               .priority = priority,
                               .deadline_us = brk_deadline_us(
                                   cfg->deadlines, cfg->ndeadlines, service, priority),
                               .to = m->to,
                               .nto = m->to_count,
                               .decisions = p->decisions,
                               .ndecisions = p->ndecisions,
                               .now = p->received_us};
    p->refused = brk_referral_plan(self->referrals, self->consents, &ev, &p->referral,
                                   p->reason, sizeof(p->reason));
    if (p->referral.matches_cut)
        brk_log(BRK_LOG_WARNING, s->agency,
                "referral %s: more than %d open legs of other referrals for the same "
                "person and service; the %d oldest are stored and told",
                referral_id, BRK_REFERRAL_MATCHES_MAX, BRK_REFERRAL_MATCHES_MAX);
    if (p->refused != MLG_OK) { /* nothing is routed */
        free(p->decisions);
        p->decisions = NULL;
        p->ndecisions = 0;
    }
}

/* Admit: the store has room for one more publish, and this client has
   not its share of them waiting already. */
static mlg_rc_t
s_publish_admit(brk_broker_t *self, const brk_session_t *s, s_publish_t *p)
{
    const brk_config_t *cfg = self->cfg;
    if (self->db_up && self->outstanding < cfg->max_outstanding
        && s->outstanding >= cfg->max_outstanding_per_client) {
        snprintf(
            p->reason, sizeof(p->reason),
            "this client has %llu publishes waiting for storage "
            "(broker/max_outstanding_per_client): nothing was stored, retry later with "
            "the same id",
            (unsigned long long)s->outstanding);
        return MLG_UNAVAILABLE;
    }
    if (!self->db_up || self->outstanding >= cfg->max_outstanding) {
        snprintf(p->reason, sizeof(p->reason),
                 "%s: nothing was stored, retry later with the same id",
                 self->db_up ? "the broker has too many publishes waiting for storage"
                             : "the database cannot be reached");
        return MLG_UNAVAILABLE;
    }
    return MLG_OK;
}

static const brk_job_kind_t s_job_kind[] = {
    [BRK_CONSENT_STORED] = BRK_JOB_PLAIN, /* a duplicate */
    [BRK_CONSENT_GRANTS] = BRK_JOB_GRANT,
    [BRK_CONSENT_REVOKES] = BRK_JOB_REVOKE,
};

/* Hand to the store: the job takes the message (*m_p becomes NULL), the
   decisions and what the consent plan owns. */
static mlg_rc_t
s_publish_hand(brk_broker_t *self, brk_session_t *s, mlg_msg_t **m_p, s_publish_t *p)
{
    brk_job_t *job = calloc(1, sizeof(*job));
    if (!job) {
        snprintf(p->reason, sizeof(p->reason),
                 "the broker is out of memory: retry later");
        return MLG_UNAVAILABLE;
    }
    brk_consent_plan_t *plan = &p->consent;
    job->kind = mlg_schema_basis(p->schema) == MLG_BASIS_CONSENT_NOTICE
                    ? s_job_kind[plan->step]
                    : BRK_JOB_PLAIN;
    brk_consent_plan_begin(plan, self->granting);
    job->consent = plan->grant;
    plan->grant = NULL;
    if (plan->revoke)
        snprintf(job->consent_id, sizeof(job->consent_id), "%s", plan->revoke->id);
    job->keep = plan->keep;
    job->nkeep = plan->nkeep;
    plan->keep = NULL;
    job->msg = *m_p;
    *m_p = NULL; /* the job owns the message now */
    snprintf(job->sender, sizeof(job->sender), "%s", s->agency);
    job->received_us = p->received_us;
    job->decisions = p->decisions;
    job->ndecisions = p->ndecisions;
    p->decisions = NULL;
    job->routing_id = zframe_dup(s->routing_id);
    job->conn = s->conn;
    job->referral = p->referral;
    memset(&p->referral, 0, sizeof(p->referral)); /* the job's now */
    job->refused = p->refused;
    job->refusal = p->refused != MLG_OK ? strdup(p->reason) : NULL;
    self->outstanding++;
    s->outstanding++;
    brk_store_publish(self->store, &job);
    return MLG_OK;
}

/* A PUBLISH: check, plan, admit, hand to the store. The answer goes out
   when the store has committed it (brk_publish_on_done), or now if a step refuses
   it. */
void
brk_publish_receive(brk_broker_t *self, brk_session_t *s, mlg_msg_t **m_p,
                    size_t frame_size)
{
    s_publish_t p = {.schema = NULL};
    mlg_rc_t rc = s_publish_check(self, s, *m_p, frame_size, &p);
    if (rc == MLG_OK)
        rc = s_publish_plan(self, s, *m_p, &p);
    if (rc == MLG_OK)
        s_publish_referral(self, s, *m_p, &p);
    if (rc == MLG_OK)
        rc = s_publish_admit(self, s, &p);
    if (rc == MLG_OK)
        rc = s_publish_hand(self, s, m_p, &p);
    if (rc != MLG_OK)
        brk_conn_send_reject(self, s->routing_id, (*m_p)->id,
                             rc == MLG_ERR_NOMEM ? MLG_UNAVAILABLE : rc, p.reason);
    free(p.decisions);
    brk_consent_plan_clear(&p.consent);
    if (p.referral.step != BRK_REFERRAL_NONE) /* not handed: nothing is stored */
        brk_referrals_abandon(self->referrals, &p.referral);
    brk_referral_plan_clear(&p.referral);
}

/* A consent event's outcome reaches the index: a grant is in force for
   the very next publish; a revocation stops its deliveries. */
static void
s_consent_done(brk_broker_t *self, brk_job_t *job)
{
    bool stored = job->rc == MLG_OK && !job->duplicate;
    if (job->kind == BRK_JOB_GRANT) {
        char id[MLG_UUID_LEN + 1];
        snprintf(id, sizeof(id), "%s", job->consent->id);
        zhashx_delete(self->granting, id);
        if (stored && brk_consents_add(self->consents, &job->consent) == 0)
            brk_log(BRK_LOG_INFO, job->sender, "consent %s granted", id);
    }
    if (job->kind == BRK_JOB_REVOKE) {
        brk_consent_t *c = brk_consents_find(self->consents, job->consent_id);
        if (c) {
            c->revoking = false;
            if (stored) {
                c->revoked_at = job->received_us;
                snprintf(c->revoked_message, sizeof(c->revoked_message), "%s",
                         job->msg->id);
                brk_log(BRK_LOG_INFO, job->sender, "consent %s revoked", c->id);
            }
        }
        brk_deliveries_pump_all(self); /* held deliveries: settled or sent */
    }
}

/* The CONFIRM of a stored publish (or of its duplicate), with the
   decision for each recipient; sent when its connection is still there. */
static void
s_confirm(brk_broker_t *self, const brk_job_t *job, bool send)
{
    brk_metrics_confirm_seconds(
        self->metrics, (double)(mlg_time_us(mlg_time_now()) - job->received_us) / 1e6);
    mlg_msg_t *c = mlg_msg_new(MLG_OP_CONFIRM);
    if (!c)
        return; /* out of memory: stored; the client's retry is a duplicate */
    snprintf(c->id, sizeof(c->id), "%s", job->msg->id);
    c->seq = job->seq;
    c->duplicate = job->duplicate;
    for (size_t i = 0; i < job->ndecisions; i++) {
        const brk_decision_t *d = &job->decisions[i];
        if (d->allow)
            mlg_msg_add_routed(c, d->recipient);
        else
            mlg_msg_add_denied(c, d->recipient, d->reason);
    }
    if (!job->duplicate)
        brk_referral_confirm_notices(&job->referral, c);
    if (send)
        brk_conn_send(self, job->routing_id, c);
    mlg_msg_destroy(&c);
}

/* A referral plan's outcome reaches the index: stored, its moves are
   the index's (and a leg that started supersedes the others at once),
   its duplicate matches are counted; otherwise nothing moved. */
static void
s_referral_done(brk_broker_t *self, const brk_job_t *job)
{
    const brk_referral_plan_t *plan = &job->referral;
    if (plan->step == BRK_REFERRAL_NONE)
        return;
    if (job->rc == MLG_OK && !job->duplicate) {
        brk_referrals_commit(self->referrals, plan);
        for (size_t i = 0; i < plan->nmatches; i++)
            brk_metrics_referral_duplicate(self->metrics, plan->matches[i].told_publisher,
                                           plan->matches[i].told_recipient);
        brk_notices_tick(self);
    }
    else
        brk_referrals_abandon(self->referrals, &job->referral);
}

/* The connection to answer: the one that sent the publish only (when it
   has closed, its routing id may be another connection's now, whose
   client retries with the same id); NULL for none. */
static brk_session_t *
s_owner(brk_broker_t *self, const brk_job_t *job)
{
    if (!job->routing_id) /* the broker's own notice */
        return NULL;
    char *key = zframe_strhex(job->routing_id);
    brk_session_t *owner = key ? zhashx_lookup(self->sessions, key) : NULL;
    free(key);
    if (owner && owner->conn != job->conn)
        owner = NULL;
    if (owner && owner->outstanding)
        owner->outstanding--;
    return owner;
}

/* The REJECT of a publish the store did not take. */
static void
s_reject(brk_broker_t *self, const brk_job_t *job)
{
    if (job->refused != MLG_OK && job->rc == job->refused)
        brk_conn_send_reject(self, job->routing_id, job->msg->id, job->rc,
                             job->refusal ? job->refusal : "refused");
    else if (job->rc == MLG_INVALID)
        brk_conn_send_reject(self, job->routing_id, job->msg->id, MLG_INVALID,
                             "/id: id already used: choose a new id for a new message");
    else
        brk_conn_send_reject(self, job->routing_id, job->msg->id, MLG_UNAVAILABLE,
                             "the database could not store it: nothing was stored, "
                             "retry later with the same id");
}

void
brk_publish_on_done(brk_broker_t *self, brk_job_t *job)
{
    self->outstanding--;
    brk_session_t *owner = s_owner(self, job);
    s_consent_done(self, job);
    s_referral_done(self, job);
    if (job->rc == MLG_OK && !job->duplicate) {
        brk_metrics_received(self->metrics, job->msg->type);
        for (size_t i = 0; i < job->ndecisions; i++)
            brk_metrics_decision(self->metrics, job->decisions[i].allow,
                                 mlg_basis_name(job->decisions[i].basis));
    }
    if (!job->routing_id)
        brk_notice_done(self, job);
    else if (job->rc == MLG_OK)
        s_confirm(self, job, owner != NULL);
    else if (owner)
        s_reject(self, job);
    brk_deliveries_take_new(self, job);
    brk_job_destroy(&job);
}
