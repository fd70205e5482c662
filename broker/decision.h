/*  decision.h: the decision for one recipient of a message (§6, §7). */

#ifndef BRK_DECISION_H
#define BRK_DECISION_H

#include <stdbool.h>

#include "maillage/limits.h"
#include "maillage/schema.h"

typedef struct {
    char recipient[MLG_AGENCY_ID_MAX + 1];
    bool allow;
    mlg_basis_t basis;
    char reason[MLG_CODE_MAX + 1]; /* deny: REVOKED, EXPIRED, NOT_COVERED, NO_CONSENT */
    char consent_id[MLG_UUID_LEN + 1]; /* the consent relied on or found, or "" */
    char detail[64];                   /* for people: "not yet valid", "expired", ... */
} brk_decision_t;

#endif
