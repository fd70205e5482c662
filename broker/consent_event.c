/*  consent_event.c: reads the bodies of consent.granted and
    consent.revoked (already valid against their schemas) and checks
    what the schemas cannot: PROTOCOL.md §7's rules on parties and ids.
    Called by the event loop; bodies are read by JSON Pointer through
    libmaillage (body.h), since only the library reads msgpack.

    A consent's id says nothing to an agency that is not one of its
    parties: a grant that reuses it, and a revocation of it, are answered
    as a revocation of an id that no consent has (s_not_party), so that
    answers to non-parties never tell whether the id exists. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consent_event.h"
#include "maillage/body.h"
#include "maillage/forms.h"

/* The longest string a consent body's lists hold (an agency id, a
   vocabulary word: the schema bounds them), with room to spare. */
#define S_WORD_MAX 256

static void
s_list_free(char **list, size_t n)
{
    for (size_t i = 0; list && i < n; i++)
        free(list[i]);
    free(list);
}

/* The strings of the array at `pointer`, all of them (the schema bounds
   how many); NULL when out of memory or an item is not a string. */
static char **
s_list(const mlg_msg_t *msg, const char *pointer, size_t *n)
{
    *n = mlg_body_count(msg, pointer);
    char **list = calloc(*n ? *n : 1, sizeof(*list));
    for (size_t i = 0; list && i < *n; i++) {
        char item[64 + S_WORD_MAX];
        char word[S_WORD_MAX];
        snprintf(item, sizeof(item), "%s/%zu", pointer, i);
        list[i] = mlg_body_text(msg, item, word, sizeof(word)) ? strdup(word) : NULL;
        if (!list[i]) {
            s_list_free(list, i);
            return NULL;
        }
    }
    return list;
}

/* The one answer to an agency about a consent id it is no party of,
   whether a consent with that id exists or not. */
static void
s_not_party(const char *publisher, char *reason, size_t reasonlen)
{
    snprintf(reason, reasonlen,
             "/consent_id: no consent with this id has '%s' among its parties",
             publisher);
}

/* The date-time at `pointer`, in microseconds; BRK_FOREVER if none. */
static int64_t
s_us(const mlg_msg_t *msg, const char *pointer)
{
    char text[128];
    mlg_time_t t;
    if (!mlg_body_text(msg, pointer, text, sizeof(text))
        || !mlg_date_time_parse(text, strlen(text), &t))
        return BRK_FOREVER;
    return mlg_time_us(t);
}

/* A grant's id, parties, purposes and categories. */
typedef struct {
    char id[MLG_UUID_LEN + 1];
    bool has_id;
    char **parties, **purposes, **categories;
    size_t np, nu, nc;
} s_grant_body_t;

static void
s_grant_body_free(s_grant_body_t *b)
{
    s_list_free(b->parties, b->np);
    s_list_free(b->purposes, b->nu);
    s_list_free(b->categories, b->nc);
}

/* 0, or -1 when out of memory. */
static int
s_grant_body(const mlg_msg_t *msg, s_grant_body_t *b)
{
    memset(b, 0, sizeof(*b));
    b->has_id = mlg_body_text(msg, "/consent_id", b->id, sizeof(b->id));
    b->parties = s_list(msg, "/parties", &b->np);
    b->purposes = s_list(msg, "/purposes", &b->nu);
    b->categories = s_list(msg, "/categories", &b->nc);
    if (b->parties && b->purposes && b->categories)
        return 0;
    s_grant_body_free(b);
    return -1;
}

mlg_rc_t
brk_consent_grant(const brk_consents_t *index, const mlg_msg_t *msg,
                  const char *publisher, brk_consent_t **out, char *reason,
                  size_t reasonlen)
{
    *out = NULL;
    s_grant_body_t b;
    if (s_grant_body(msg, &b) != 0) {
        snprintf(reason, reasonlen, "the body could not be read");
        return MLG_ERR_NOMEM;
    }
    const char *id = b.has_id ? b.id : NULL;
    mlg_rc_t rc = MLG_OK;
    bool party = false;
    for (size_t i = 0; i < b.np; i++)
        party = party || strcmp(b.parties[i], publisher) == 0;
    const brk_consent_t *known = id ? brk_consents_find(index, id) : NULL;
    /* the same grant again (a retry of its message) is not a reuse */
    bool reused = known
                  && (strcmp(known->granted_message, msg->id) != 0
                      || strcmp(known->granted_by, publisher) != 0);
    if (!id)
        snprintf(reason, reasonlen, "/consent_id: required");
    else if (!party)
        snprintf(reason, reasonlen,
                 "/parties: the publisher '%s' must be one of the parties", publisher);
    else if (reused && brk_consent_has_party(known, publisher))
        snprintf(reason, reasonlen, "/consent_id: a consent with this id exists already");
    else if (reused)
        s_not_party(publisher, reason, reasonlen);
    if (!id || !party || reused)
        rc = MLG_INVALID;
    if (rc == MLG_OK) {
        *out = brk_consent_new(id, msg->subject, (const char *const *)b.parties, b.np,
                               (const char *const *)b.purposes, b.nu,
                               (const char *const *)b.categories, b.nc,
                               s_us(msg, "/valid_from"), s_us(msg, "/valid_until"));
        if (!*out)
            rc = MLG_ERR_NOMEM;
        else {
            snprintf((*out)->granted_by, sizeof((*out)->granted_by), "%s", publisher);
            snprintf((*out)->granted_message, sizeof((*out)->granted_message), "%s",
                     msg->id);
        }
    }
    s_grant_body_free(&b);
    return rc;
}

mlg_rc_t
brk_consent_revoke(const brk_consents_t *index, const mlg_msg_t *msg,
                   const char *publisher, brk_consent_t **out, char *reason,
                   size_t reasonlen)
{
    *out = NULL;
    char id[MLG_UUID_LEN + 1];
    bool has_id = mlg_body_text(msg, "/consent_id", id, sizeof(id));
    brk_consent_t *c = has_id ? brk_consents_find(index, id) : NULL;
    mlg_rc_t rc = MLG_INVALID;
    if (!c || !brk_consent_has_party(c, publisher))
        s_not_party(publisher, reason, reasonlen);
    else if (strcmp(c->subject, msg->subject) != 0)
        snprintf(reason, reasonlen, "/consent_id: the consent is about another subject");
    else if (c->revoked_at && strcmp(c->revoked_message, msg->id) != 0)
        snprintf(reason, reasonlen, "/consent_id: the consent is revoked already");
    else if (c->revoking)
        snprintf(reason, reasonlen, "/consent_id: the consent is being revoked already");
    else {
        rc = MLG_OK;
        *out = c;
    }
    return rc;
}

/* ---- the plan ----------------------------------------------------------

   The event loop does not build consent jobs itself: it asks for a plan
   (what to store, whom to tell, which deliveries in flight to keep),
   checks its own bounds, then carries the plan out. */

/* The other parties of a consent, told of it with basis consent_notice. */
static brk_decision_t *
s_notice_parties(const brk_consent_t *c, const char *publisher, size_t *n)
{
    brk_decision_t *list = calloc(c->nparties ? c->nparties : 1, sizeof(*list));
    *n = 0;
    for (size_t i = 0; list && i < c->nparties; i++) {
        if (strcmp(c->parties[i], publisher) == 0)
            continue;
        brk_decision_t *d = &list[(*n)++];
        snprintf(d->recipient, sizeof(d->recipient), "%s", c->parties[i]);
        d->allow = true;
        d->basis = MLG_BASIS_CONSENT_NOTICE;
        snprintf(d->consent_id, sizeof(d->consent_id), "%s", c->id);
    }
    return list;
}

static mlg_rc_t
s_plan_grant(const brk_consents_t *index, zhashx_t *granting, const mlg_msg_t *msg,
             const char *publisher, brk_consent_plan_t *plan, char *reason,
             size_t reasonlen)
{
    mlg_rc_t rc =
        brk_consent_grant(index, msg, publisher, &plan->grant, reason, reasonlen);
    if (rc != MLG_OK)
        return rc;
    if (zhashx_lookup(granting, plan->grant->id)) {
        snprintf(reason, reasonlen,
                 "/consent_id: a consent with this id is being granted already");
        return MLG_INVALID;
    }
    plan->notices = s_notice_parties(plan->grant, publisher, &plan->nnotices);
    if (!plan->notices)
        return MLG_ERR_NOMEM;
    /* known: this very grant is stored already (brk_consent_grant lets
       only its own message through) */
    if (brk_consents_find(index, plan->grant->id)) {
        plan->step = BRK_CONSENT_STORED;
        brk_consent_destroy(&plan->grant);
    }
    else
        plan->step = BRK_CONSENT_GRANTS;
    return MLG_OK;
}

static mlg_rc_t
s_plan_revoke(const brk_consents_t *index, const brk_queues_t *queues,
              const mlg_msg_t *msg, const char *publisher, brk_consent_plan_t *plan,
              char *reason, size_t reasonlen)
{
    mlg_rc_t rc =
        brk_consent_revoke(index, msg, publisher, &plan->revoke, reason, reasonlen);
    if (rc != MLG_OK)
        return rc;
    plan->notices = s_notice_parties(plan->revoke, publisher, &plan->nnotices);
    if (!plan->notices)
        return MLG_ERR_NOMEM;
    if (plan->revoke->revoked_at) { /* by this very message */
        plan->step = BRK_CONSENT_STORED;
        return MLG_OK;
    }
    plan->step = BRK_CONSENT_REVOKES;
    plan->keep = brk_queues_inflight_of(queues, plan->revoke->id, &plan->nkeep);
    return plan->keep ? MLG_OK : MLG_ERR_NOMEM;
}

mlg_rc_t
brk_consent_plan(const brk_consents_t *index, zhashx_t *granting,
                 const brk_queues_t *queues, const mlg_msg_t *msg, const char *publisher,
                 brk_consent_plan_t *plan, char *reason, size_t reasonlen)
{
    *plan = (brk_consent_plan_t){0};
    mlg_rc_t rc;
    if (strcmp(msg->type, "consent.granted") == 0)
        rc = s_plan_grant(index, granting, msg, publisher, plan, reason, reasonlen);
    else if (strcmp(msg->type, "consent.revoked") == 0)
        rc = s_plan_revoke(index, queues, msg, publisher, plan, reason, reasonlen);
    else {
        snprintf(reason, reasonlen, "%s is not a consent event this broker knows",
                 msg->type);
        rc = MLG_UNKNOWN_TYPE;
    }
    if (rc != MLG_OK)
        brk_consent_plan_clear(plan);
    return rc;
}

void
brk_consent_plan_begin(brk_consent_plan_t *plan, zhashx_t *granting)
{
    if (plan->step == BRK_CONSENT_GRANTS)
        zhashx_insert(granting, plan->grant->id, granting); /* a set: any value */
    if (plan->step == BRK_CONSENT_REVOKES)
        plan->revoke->revoking = true;
}

void
brk_consent_plan_clear(brk_consent_plan_t *plan)
{
    brk_consent_destroy(&plan->grant);
    free(plan->notices);
    free(plan->keep);
    *plan = (brk_consent_plan_t){0};
}
