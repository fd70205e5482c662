/*  consent.c: the consent index and the rule of PROTOCOL.md §7.

    A personal event from S about P, for purpose U, of category C, to R,
    is allowed when a consent with subject P has S and R among its
    parties, U among its purposes, C among its categories, is not revoked
    and is valid at the time the broker received the event (valid_from
    inclusive, valid_until exclusive). Otherwise the first reason that
    applies: REVOKED, EXPIRED (or not yet valid), NOT_COVERED, NO_CONSENT.
    Called by the event loop for each recipient of a consent-based event;
    the tests drive it with tables. */

#include <czmq.h>
#include <stdlib.h>
#include <string.h>

#include "consent.h"

/* subject -> zlistx of brk_consent_t * (not owned); id -> consent (owned) */
struct brk_consents_t {
    zhashx_t *by_subject;
    zhashx_t *by_id;
};

static void
s_free_list(char **list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

static char **
s_copy_list(const char *const *list, size_t n)
{
    char **copy = calloc(n ? n : 1, sizeof(char *));
    for (size_t i = 0; copy && i < n; i++) {
        copy[i] = strdup(list[i]);
        if (!copy[i]) {
            s_free_list(copy, i);
            return NULL;
        }
    }
    return copy;
}

brk_consent_t *
brk_consent_new(const char *id, const char *subject, const char *const *parties,
                size_t nparties, const char *const *purposes, size_t npurposes,
                const char *const *categories, size_t ncategories, int64_t valid_from,
                int64_t valid_until)
{
    brk_consent_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    snprintf(c->id, sizeof(c->id), "%s", id);
    snprintf(c->subject, sizeof(c->subject), "%s", subject);
    c->parties = s_copy_list(parties, nparties);
    c->purposes = s_copy_list(purposes, npurposes);
    c->categories = s_copy_list(categories, ncategories);
    c->nparties = nparties;
    c->npurposes = npurposes;
    c->ncategories = ncategories;
    c->valid_from = valid_from;
    c->valid_until = valid_until;
    if (!c->parties || !c->purposes || !c->categories)
        brk_consent_destroy(&c);
    return c;
}

void
brk_consent_destroy(brk_consent_t **self_p)
{
    brk_consent_t *c = *self_p;
    if (!c)
        return;
    s_free_list(c->parties, c->parties ? c->nparties : 0);
    s_free_list(c->purposes, c->purposes ? c->npurposes : 0);
    s_free_list(c->categories, c->categories ? c->ncategories : 0);
    free(c);
    *self_p = NULL;
}

static void
s_consent_free(void **item)
{
    brk_consent_destroy((brk_consent_t **)item);
}

static void
s_list_free(void **item)
{
    zlistx_destroy((zlistx_t **)item);
}

brk_consents_t *
brk_consents_new(void)
{
    brk_consents_t *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    self->by_subject = zhashx_new();
    self->by_id = zhashx_new();
    zhashx_set_destructor(self->by_subject, s_list_free);
    zhashx_set_destructor(self->by_id, s_consent_free);
    return self;
}

void
brk_consents_destroy(brk_consents_t **self_p)
{
    brk_consents_t *self = *self_p;
    if (!self)
        return;
    zhashx_destroy(&self->by_subject); /* lists first: they do not own */
    zhashx_destroy(&self->by_id);
    free(self);
    *self_p = NULL;
}

int
brk_consents_add(brk_consents_t *self, brk_consent_t **consent_p)
{
    brk_consent_t *c = *consent_p;
    if (zhashx_lookup(self->by_id, c->id))
        return -1;
    zlistx_t *list = zhashx_lookup(self->by_subject, c->subject);
    if (!list) {
        list = zlistx_new();
        zhashx_insert(self->by_subject, c->subject, list);
    }
    zlistx_add_end(list, c);
    zhashx_insert(self->by_id, c->id, c);
    *consent_p = NULL;
    return 0;
}

brk_consent_t *
brk_consents_find(const brk_consents_t *self, const char *id)
{
    return zhashx_lookup(self->by_id, id);
}

size_t
brk_consents_size(const brk_consents_t *self)
{
    return zhashx_size(self->by_id);
}

static bool
s_has(char **list, size_t n, const char *word)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], word) == 0)
            return true;
    return false;
}

bool
brk_consent_has_party(const brk_consent_t *c, const char *agency)
{
    return s_has(c->parties, c->nparties, agency);
}

/* Keeps the candidate with the smallest id. */
static void
s_keep(const brk_consent_t **best, const brk_consent_t *c)
{
    if (!*best || strcmp(c->id, (*best)->id) < 0)
        *best = c;
}

void
brk_consent_decide(const brk_consents_t *self, const char *subject, const char *sender,
                   const char *recipient, const char *purpose, const char *category,
                   int64_t now, brk_decision_t *out)
{
    const brk_consent_t *valid = NULL, *revoked = NULL, *early = NULL, *late = NULL,
                        *uncovered = NULL;
    zlistx_t *list = zhashx_lookup(self->by_subject, subject);
    for (brk_consent_t *c = list ? zlistx_first(list) : NULL; c; c = zlistx_next(list)) {
        if (!brk_consent_has_party(c, sender) || !brk_consent_has_party(c, recipient))
            continue;
        if (!s_has(c->purposes, c->npurposes, purpose)
            || !s_has(c->categories, c->ncategories, category)) {
            s_keep(&uncovered, c);
            continue;
        }
        if (c->revoked_at)
            s_keep(&revoked, c);
        else if (now < c->valid_from)
            s_keep(&early, c);
        else if (now >= c->valid_until)
            s_keep(&late, c);
        else
            s_keep(&valid, c);
    }
    const brk_consent_t *named = NULL;
    out->allow = false;
    out->detail[0] = '\0';
    if (valid) {
        out->allow = true;
        out->reason[0] = '\0';
        named = valid;
    }
    else if (revoked) {
        snprintf(out->reason, sizeof(out->reason), "REVOKED");
        snprintf(out->detail, sizeof(out->detail), "the consent was revoked");
        named = revoked;
    }
    else if (late || early) {
        /* an expired consent is named before one not yet valid */
        named = late ? late : early;
        snprintf(out->reason, sizeof(out->reason), "EXPIRED");
        snprintf(out->detail, sizeof(out->detail), "%s",
                 late ? "the consent has expired" : "the consent is not yet valid");
    }
    else if (uncovered) {
        snprintf(out->reason, sizeof(out->reason), "NOT_COVERED");
        snprintf(out->detail, sizeof(out->detail),
                 "the consent does not cover this purpose or category");
        named = uncovered;
    }
    else {
        snprintf(out->reason, sizeof(out->reason), "NO_CONSENT");
        snprintf(out->detail, sizeof(out->detail), "no consent between these agencies");
    }
    snprintf(out->consent_id, sizeof(out->consent_id), "%s", named ? named->id : "");
}
