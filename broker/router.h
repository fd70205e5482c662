/*  router.h: who receives a PUBLISH, and the decision for each
    (PROTOCOL.md §6 and §7). Pure functions: no I/O, no clock. */

#ifndef BRK_ROUTER_H
#define BRK_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "maillage/codec.h"
#include "maillage/schema.h"

typedef struct {
    char recipient[MLG_AGENCY_ID_MAX + 1];
    bool allow;
    mlg_basis_t basis;
    char reason[MLG_CODE_MAX + 1]; /* deny: REVOKED, EXPIRED, NOT_COVERED, NO_CONSENT */
    char consent_id[MLG_UUID_LEN + 1]; /* the consent relied on or found, or "" */
    char detail[64]; /* for people: "not yet valid", "expired", ... */
} brk_decision_t;

/* The recipients of `msg` from `publisher`, one decision each, in the
   order of `to` then of the configuration's agencies:
   - personal events: the agencies of `to`;
   - non-personal events: those of `to` and every agency subscribed to
     the type;
   never the publisher, never one agency twice. Every address of `to`
   must be a registered agency: MLG_UNKNOWN_RECIPIENT otherwise, with a
   sentence in reason. *out is malloc'd (the caller frees it); it may
   hold no recipient at all (a non-personal event nobody follows). */
mlg_rc_t brk_route(const brk_config_t *cfg, const mlg_schema_t *schema,
                   const mlg_msg_t *msg, const char *publisher, brk_decision_t **out,
                   size_t *count, char *reason, size_t reasonlen);

#endif
