/*  consent.h: the consents the broker knows, indexed by subject, and the
    decision rule of PROTOCOL.md §7. Pure: no I/O, the time is given.

    The index is rebuilt from the `consents` table at start and kept
    current by the consent events the store has committed, so a decision
    needs no database round trip. */

#ifndef BRK_CONSENT_H
#define BRK_CONSENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "maillage/limits.h"
#include "decision.h"

#define BRK_FOREVER INT64_MAX

typedef struct {
    char id[MLG_UUID_LEN + 1];
    char subject[MLG_STRBUF(MLG_SUBJECT_MAX)];
    char **parties;
    size_t nparties;
    char **purposes;
    size_t npurposes;
    char **categories;
    size_t ncategories;
    int64_t valid_from;  /* µs since the epoch, inclusive */
    int64_t valid_until; /* µs, exclusive; BRK_FOREVER when open-ended */
    int64_t revoked_at;  /* µs; 0 while not revoked */
    char granted_by[MLG_AGENCY_ID_MAX + 1];
    char granted_message[MLG_UUID_LEN + 1];
    char revoked_message[MLG_UUID_LEN + 1]; /* "" while not revoked */
    bool revoking; /* a revocation is being stored: hold its deliveries */
} brk_consent_t;

typedef struct brk_consents_t brk_consents_t;

brk_consents_t *brk_consents_new(void);
void brk_consents_destroy(brk_consents_t **self_p);

/* A new consent with copies of the lists; NULL when out of memory. */
brk_consent_t *brk_consent_new(const char *id, const char *subject,
                               const char *const *parties, size_t nparties,
                               const char *const *purposes, size_t npurposes,
                               const char *const *categories, size_t ncategories,
                               int64_t valid_from, int64_t valid_until);
void brk_consent_destroy(brk_consent_t **self_p);

/* Adds a consent (the index takes it). -1 if its id is known already. */
int brk_consents_add(brk_consents_t *self, brk_consent_t **consent_p);

/* The consent with that id, or NULL. */
brk_consent_t *brk_consents_find(const brk_consents_t *self, const char *id);

size_t brk_consents_size(const brk_consents_t *self);

bool brk_consent_has_party(const brk_consent_t *consent, const char *agency);

/* The decision for one recipient of a consent-based event about
   `subject`, from `sender`, for `purpose`, of `category`, received at
   `now` (µs). Fills allow, reason, consent_id and detail of *out (basis
   and recipient are the caller's). When several consents apply, the one
   with the smallest id is named, so the same consents always give the
   same decision. O(consents of the subject). */
void brk_consent_decide(const brk_consents_t *self, const char *subject,
                        const char *sender, const char *recipient, const char *purpose,
                        const char *category, int64_t now, brk_decision_t *out);

#endif
