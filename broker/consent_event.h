/*  consent_event.h: consent.granted and consent.revoked, checked beyond
    their schemas (PROTOCOL.md §7). */

#ifndef BRK_CONSENT_EVENT_H
#define BRK_CONSENT_EVENT_H

#include <czmq.h>

#include "consent.h"
#include "decision.h"
#include "maillage/codec.h"
#include "queue.h"

/* A consent.granted from `publisher`: the consent it grants in *out
   (the caller owns it), or MLG_INVALID with "<pointer>: <why>" when the
   publisher is not a party or the consent_id is used by another grant.
   A grant already stored under this very message id passes (the store
   answers it as a duplicate). */
mlg_rc_t brk_consent_grant(const brk_consents_t *index, const mlg_msg_t *msg,
                           const char *publisher, brk_consent_t **out, char *reason,
                           size_t reasonlen);

/* A consent.revoked: the consent it revokes in *out (the index's), or
   MLG_INVALID when the consent is unknown, the publisher not one of its
   parties, the subject another, or it is revoked already by another
   message. */
mlg_rc_t brk_consent_revoke(const brk_consents_t *index, const mlg_msg_t *msg,
                            const char *publisher, brk_consent_t **out, char *reason,
                            size_t reasonlen);

/* What a consent event asks of the broker (PROTOCOL.md §7). */
typedef enum {
    BRK_CONSENT_STORED,  /* stored already (its message again): a duplicate,
                            stored and answered as any other event */
    BRK_CONSENT_GRANTS,  /* a consent to store and put in force */
    BRK_CONSENT_REVOKES, /* a consent to revoke, its pending deliveries to
                            settle `revoked` */
} brk_consent_step_t;

typedef struct {
    brk_consent_step_t step;
    brk_consent_t *grant;    /* GRANTS: the consent to store; owned */
    brk_consent_t *revoke;   /* a revocation: the index's consent; not owned */
    brk_decision_t *notices; /* whom to tell: the other parties, with basis
                                consent_notice; owned */
    size_t nnotices;
    uint64_t *keep; /* REVOKES: the deliveries in flight that rely on the
                       consent, not settled now (not recalled) but when
                       they come back; owned */
    size_t nkeep;
} brk_consent_plan_t;

/* The plan for a consent event `msg` from `publisher`, decided from the
   consent index, the grants at the store (`granting`, consent ids) and
   the deliveries in flight; it changes none of them. MLG_INVALID with
   "<pointer>: <why>" as brk_consent_grant and brk_consent_revoke say,
   MLG_UNKNOWN_TYPE for another consent.* type, MLG_ERR_NOMEM. On
   failure the plan holds nothing; otherwise brk_consent_plan_clear
   frees what it still owns. */
mlg_rc_t brk_consent_plan(const brk_consents_t *index, zhashx_t *granting,
                          const brk_queues_t *queues, const mlg_msg_t *msg,
                          const char *publisher, brk_consent_plan_t *plan, char *reason,
                          size_t reasonlen);

/* The plan is admitted (handed to the store): its grant is under way in
   `granting`, its consent is being revoked (its deliveries held until the
   store answers). */
void brk_consent_plan_begin(brk_consent_plan_t *plan, zhashx_t *granting);

/* Frees what the plan still owns, and empties it. */
void brk_consent_plan_clear(brk_consent_plan_t *plan);

#endif
