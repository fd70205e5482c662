/*  delivery.c: the deliveries, from the queue to the client and back.

    Carries out what the queues (queue.c) decide: pumps a queue to the
    sessions with credit, reads ahead from the store (FETCH), settles
    ACK and NACK, requeues a session's deliveries, takes new deliveries
    from memory, replays dead letters. Before a delivery goes out or
    comes back it checks that its consent still stands (PROTOCOL.md §7),
    and settles it `revoked` otherwise. Tells the store every change
    (UPDATE); never waits for it. Called by conn.c, session.c, publish.c
    and broker.c (the store's answers).

    A SENT is told late. Told at once, it made the store update the
    delivery's row twice, once when sent and once when acked, each a new
    row version with new index entries. So a delivery sent keeps the time
    in `sent_unwritten_us`, and its SENT goes to the store with the next
    change of the delivery (s_update): in the ACK's own command, one
    update of the row, or just before a NACK, requeue or dead letter; or
    after S_SENT_HOLD_US in flight (the tick), so the table shows a
    delivery held that long as sent. A crash loses
    only SENTs not told yet: the delivery comes again with an attempt
    number it already had, which PROTOCOL.md §4 (DELIVER) allows. */

#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "loop.h"

/* the most rows one read of a queue brings, whatever the credit */
#define S_FETCH_MAX 1000

/* how long a delivery stays in flight before its SENT is told anyway */
#define S_SENT_HOLD_US 1000000

/* A change of the row's delivery, for the store to write; its
   recipient goes with it, whose queue's depth the store keeps. NULL
   out of memory. */
static brk_update_t *
s_update_new(brk_update_kind_t kind, const brk_delivery_t *row, const char *reason,
             const char *actor)
{
    brk_update_t *u = calloc(1, sizeof(*u));
    if (!u)
        return NULL;
    u->kind = kind;
    u->delivery = row->delivery;
    u->attempt = row->attempts;
    snprintf(u->recipient, sizeof(u->recipient), "%s", row->recipient);
    if (reason && reason[0]) {
        u->reason = strdup(reason);
        if (!u->reason) {
            free(u);
            return NULL;
        }
    }
    snprintf(u->actor, sizeof(u->actor), "%s", actor);
    return u;
}

/* Tells the store a change of the row's delivery. The row's SENT not
   told yet goes with it: in the same command when the change is an ACK
   (one update of the row), just before it otherwise. */
static void
s_update(brk_broker_t *self, brk_update_kind_t kind, brk_delivery_t *row,
         const char *reason, const char *actor)
{
    bool sent = row->sent_unwritten_us != 0;
    row->sent_unwritten_us = 0;
    if (sent && kind != BRK_UPDATE_ACK && kind != BRK_UPDATE_SENT)
        s_update(self, BRK_UPDATE_SENT, row, NULL, actor);
    brk_update_t *u = s_update_new(kind, row, reason, actor);
    if (!u)
        return;
    u->sent = sent && kind == BRK_UPDATE_ACK;
    brk_store_update(self->store, &u);
}

/* Is the delivery's consent being revoked right now? Then it waits for
   the store's answer. */
static bool
s_consent_held(brk_broker_t *self, const brk_delivery_t *row)
{
    brk_consent_t *c =
        row->consent_id[0] ? brk_consents_find(self->consents, row->consent_id) : NULL;
    return c && c->revoking;
}

/* Whether a delivery's consent still stands (PROTOCOL.md §7: a delivery
   still pending when its consent is revoked or expires is never
   delivered). False when it was settled here, `revoked`, with its second
   decision: the row is freed then. */
static bool
s_consent_stands(brk_broker_t *self, brk_delivery_t *row, const char *actor)
{
    if (!row->consent_id[0])
        return true; /* legal obligation, not personal, or a consent notice */
    brk_consent_t *c = brk_consents_find(self->consents, row->consent_id);
    if (!c)
        return true;
    int64_t now_us = mlg_time_us(mlg_time_now());
    const char *code = c->revoked_at              ? "REVOKED"
                       : now_us >= c->valid_until ? "EXPIRED"
                                                  : NULL;
    if (!code)
        return true;
    brk_update_t *u =
        s_update_new(BRK_UPDATE_REVOKED, row,
                     c->revoked_at ? "the consent was revoked before delivery"
                                   : "the consent expired before delivery",
                     actor);
    if (u) {
        snprintf(u->consent_id, sizeof(u->consent_id), "%s", c->id);
        snprintf(u->code, sizeof(u->code), "%s", code);
        brk_store_update(self->store, &u);
    }
    brk_log(BRK_LOG_INFO, row->recipient, "delivery %llu not delivered: consent %s %s",
            (unsigned long long)row->delivery, c->id,
            c->revoked_at ? "revoked" : "expired");
    brk_delivery_destroy(&row);
    return false;
}

/* A delivery comes back from a client: to its queue again, or dead when
   it has had its attempts. */
static void
s_give_back(brk_broker_t *self, brk_delivery_t *row, const char *why, const char *actor)
{
    /* in flight when its consent was revoked: not recalled, but not
       delivered again */
    if (!s_consent_stands(self, row, actor))
        return;
    if (brk_queues_give_back(self->queues, &row, self->cfg->max_attempts)
        == BRK_BACK_REQUEUED)
        return;
    brk_log(BRK_LOG_WARNING, row->recipient,
            "delivery %llu dead after %llu attempts (%s)",
            (unsigned long long)row->delivery, (unsigned long long)row->attempts, why);
    s_update(self, BRK_UPDATE_DEAD, row, why, actor);
    brk_delivery_destroy(&row);
}

/* Takes a delivery out of flight; NULL unless it is in flight to s. */
static brk_delivery_t *
s_land(brk_broker_t *self, brk_session_t *s, uint64_t delivery)
{
    brk_delivery_t *row = brk_queues_land(self->queues, s, delivery);
    if (row)
        s->inflight--;
    return row;
}

/* Every delivery in flight to s goes back to its queue. The caller pumps
   the queue afterwards, once s can no longer be chosen. */
void
brk_deliveries_requeue(brk_broker_t *self, brk_session_t *s, const char *why)
{
    zlistx_t *rows = brk_queues_land_all(self->queues, s);
    if (!rows)
        return; /* not reached: czmq's containers abort when out of memory */
    s->inflight -= zlistx_size(rows);
    brk_delivery_t *row = zlistx_detach(rows, NULL);
    for (; row; row = zlistx_detach(rows, NULL)) {
        s_update(self, BRK_UPDATE_REQUEUED, row, why, s->name);
        s_give_back(self, row, why, s->name);
    }
    zlistx_destroy(&rows);
}

void
brk_deliveries_pump(brk_broker_t *self, brk_queue_t *q)
{
    const char *agency = brk_queue_agency(q);
    for (;;) {
        /* a routing id whose connection closed may belong to another
           connection by the next send (libzmq frees and gives it within
           any call on the socket): read the closures before each send */
        brk_conn_read_closures(self);
        brk_session_t *s =
            brk_queue_size(q) ? brk_session_with_credit(self, agency) : NULL;
        if (!s)
            break;
        if (s_consent_held(self, brk_queue_first(q)))
            return; /* the revocation's answer pumps again */
        brk_delivery_t *row = brk_queue_pop(q);
        if (!s_consent_stands(self, row, "broker"))
            continue; /* settled `revoked` */
        if (brk_queues_fly(self->queues, row, s) != 0)
            return; /* out of memory: first in its queue again, for the next pump */
        s->inflight++;
        brk_conn_send_deliver(self, s->routing_id, row);
        row->sent_unwritten_us = mlg_time_us(mlg_time_now());
    }
    brk_session_t *s = brk_queue_wants_read(q) && self->db_up
                           ? brk_session_with_credit(self, agency)
                           : NULL;
    if (s) {
        brk_fetch_t *f = calloc(1, sizeof(*f));
        if (!f)
            return;
        snprintf(f->agency, sizeof(f->agency), "%s", agency);
        uint64_t free_credit = s->credit - s->inflight;
        brk_queue_read_begin(
            q, free_credit < S_FETCH_MAX ? (size_t)free_credit : S_FETCH_MAX, &f->after,
            &f->limit);
        brk_store_fetch(self->store, &f);
    }
}

/* Pumps every queue that may have more in the database; over a copy of
   the names, since pumping may create a queue. */
void
brk_deliveries_pump_all(brk_broker_t *self)
{
    zlistx_t *agencies = brk_queues_unread(self->queues);
    for (const char *a = agencies ? zlistx_first(agencies) : NULL; a;
         a = zlistx_next(agencies)) {
        brk_queue_t *q = brk_queues_find(self->queues, a);
        if (q)
            brk_deliveries_pump(self, q);
    }
    zlistx_destroy(&agencies);
}

void
brk_deliveries_on_ack(brk_broker_t *self, brk_session_t *s, const mlg_msg_t *m)
{
    brk_delivery_t *row = s_land(self, s, m->delivery);
    if (!row) {
        char reason[160];
        snprintf(reason, sizeof(reason), "delivery %llu is not in flight to this client",
                 (unsigned long long)m->delivery);
        brk_conn_send_error(self, s->routing_id, MLG_UNKNOWN_DELIVERY, reason);
        return;
    }
    if (m->op == MLG_OP_ACK)
        s_update(self, BRK_UPDATE_ACK, row, NULL, s->name); /* with its SENT */
    else {
        s_update(self, BRK_UPDATE_NACK, row, m->reason, s->name);
        if (!m->requeue) {
            brk_log(BRK_LOG_WARNING, s->agency, "delivery %llu dead: refused by %s",
                    (unsigned long long)row->delivery, s->name);
            s_update(self, BRK_UPDATE_DEAD, row, m->reason, s->name);
        }
        else {
            s_give_back(self, row, m->reason, s->name);
            row = NULL;
        }
    }
    brk_delivery_destroy(&row);
    brk_queue_t *q = brk_queues_get(self->queues, s->agency);
    if (q)
        brk_deliveries_pump(self, q);
}

typedef struct {
    brk_broker_t *self;
    int64_t before_us; /* SENTs of deliveries sent before this are told */
} s_held_t;

static void
s_tell_held(brk_delivery_t *row, void *holder, void *arg)
{
    s_held_t *t = arg;
    if (row->sent_unwritten_us && row->sent_unwritten_us <= t->before_us)
        s_update(t->self, BRK_UPDATE_SENT, row, NULL, ((brk_session_t *)holder)->name);
}

void
brk_deliveries_tell_sent(brk_broker_t *self, bool all)
{
    s_held_t t = {self, all ? INT64_MAX : mlg_time_us(mlg_time_now()) - S_SENT_HOLD_US};
    brk_queues_each_inflight(self->queues, s_tell_held, &t);
}

/* A delivery just committed, as the DELIVER its queue would read back. */
static brk_delivery_t *
s_row_from_job(const brk_job_t *job, size_t i)
{
    const mlg_msg_t *m = job->msg;
    const brk_decision_t *d = &job->decisions[i];
    brk_delivery_t *row = calloc(1, sizeof(*row));
    mlg_msg_t *out = mlg_msg_new(MLG_OP_DELIVER);
    if (!row || !out) {
        free(row);
        mlg_msg_destroy(&out);
        return NULL;
    }
    out->body = m->body; /* packed below, while the job holds it */
    out->body_len = m->body_len;
    row->delivery = job->delivery_ids[i];
    snprintf(row->recipient, sizeof(row->recipient), "%s", d->recipient);
    if (d->basis == MLG_BASIS_CONSENT)
        snprintf(row->consent_id, sizeof(row->consent_id), "%s", d->consent_id);
    memcpy(out->id, m->id, sizeof(out->id));
    memcpy(out->type, m->type, sizeof(out->type));
    out->version = m->version;
    memcpy(out->subject, m->subject, sizeof(out->subject));
    memcpy(out->purpose, m->purpose, sizeof(out->purpose));
    memcpy(out->correlation, m->correlation, sizeof(out->correlation));
    /* the database keeps microseconds: send what a read-back would */
    out->has_occurred_at = m->has_occurred_at;
    out->occurred_at.sec = m->occurred_at.sec;
    out->occurred_at.nsec = m->occurred_at.nsec / 1000 * 1000;
    snprintf(out->from, sizeof(out->from), "%s", job->sender);
    out->received_at.sec = job->received_us / 1000000;
    out->received_at.nsec = (uint32_t)(job->received_us % 1000000) * 1000;
    brk_referral_deliver_notices(&job->referral, d->recipient, out);
    row->deliver = mlg_packed_deliver_new(out);
    mlg_msg_destroy(&out);
    if (!row->deliver) {
        free(row);
        return NULL;
    }
    return row;
}

/* A publish's delivery for queue q was committed: it joins the
   read-ahead from memory when the queue says so, with no read-back of
   what was just written. Otherwise the next read finds it. */
static void
s_take_new(brk_queue_t *q, const brk_job_t *job, size_t i)
{
    uint64_t id = job->delivery_ids ? job->delivery_ids[i] : 0;
    if (brk_queue_offer(q, id))
        brk_queue_append_new(q, s_row_from_job(job, i));
}

void
brk_deliveries_take_new(brk_broker_t *self, const brk_job_t *job)
{
    if (!job->created_deliveries)
        return;
    for (size_t i = 0; i < job->ndecisions; i++) {
        if (!job->decisions[i].allow)
            continue;
        brk_queue_t *q = brk_queues_get(self->queues, job->decisions[i].recipient);
        if (q) {
            s_take_new(q, job, i);
            brk_deliveries_pump(self, q);
        }
    }
}

/* Dead letters of this agency are pending again: read its queue from the
   start, skipping what is held in memory already. */
void
brk_deliveries_on_replay(brk_broker_t *self, const char *agency)
{
    brk_queue_t *q = brk_queues_get(self->queues, agency);
    if (!q)
        return;
    brk_log(BRK_LOG_INFO, agency, "dead letters replayed by an operator");
    brk_queue_replay(q);
    brk_deliveries_pump(self, q);
}

void
brk_deliveries_on_fetched(brk_broker_t *self, brk_fetch_t *f)
{
    brk_queue_t *q = brk_queues_get(self->queues, f->agency);
    if (q) {
        brk_queues_read_done(self->queues, q, f->ok, f->rows, f->nrows, f->limit);
        brk_deliveries_pump(self, q);
    }
    brk_fetch_destroy(&f);
}
