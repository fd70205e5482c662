/*  router.h: who receives a PUBLISH, and the decision for each
    (PROTOCOL.md §6 and §7). Pure functions: no I/O, no clock. */

#ifndef BRK_ROUTER_H
#define BRK_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "consent.h"
#include "decision.h"
#include "maillage/codec.h"
#include "maillage/schema.h"

/* The recipients of `msg` from `publisher`, one decision each, in the
   order of `to` then of the configuration's agencies:
   - personal events: the agencies of `to`;
   - non-personal events: those of `to` and every agency subscribed to
     the type;
   never the publisher, never one agency twice. A `consent`-basis
   recipient is decided by the consents (received at `now`, µs);
   `legal_obligation` and `not_personal` ones are allowed. Every address of `to`
   must be a registered agency: MLG_UNKNOWN_RECIPIENT otherwise, with a
   sentence in reason. *out is malloc'd (the caller frees it); it may
   hold no recipient at all (a non-personal event nobody follows). */
mlg_rc_t brk_route(const brk_config_t *cfg, const brk_consents_t *consents,
                   const mlg_schema_t *schema, const mlg_msg_t *msg,
                   const char *publisher, int64_t now, brk_decision_t **out,
                   size_t *count, char *reason, size_t reasonlen);

#endif
