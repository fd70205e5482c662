/*  consent_event.h: consent.granted and consent.revoked, checked beyond
    their schemas (PROTOCOL.md §7). */

#ifndef BRK_CONSENT_EVENT_H
#define BRK_CONSENT_EVENT_H

#include "consent.h"
#include "maillage/codec.h"

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

#endif
