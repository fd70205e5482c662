/*  consent_event.c: reads the bodies of consent.granted and
    consent.revoked (already valid against their schemas) and checks
    what the schemas cannot: PROTOCOL.md §7's rules on parties and ids.
    Called by the event loop; bodies are read through the library's JSON
    conversion, since only libmaillage reads msgpack.

    A consent's id says nothing to an agency that is not one of its
    parties: a grant that reuses it, and a revocation of it, are answered
    as a revocation of an id that no consent has (s_not_party), so that
    answers to non-parties never tell whether the id exists. */

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consent_event.h"
#include "maillage/forms.h"
#include "maillage/json.h"

static json_t *
s_body(const mlg_msg_t *msg)
{
    char *text = NULL;
    if (mlg_msgpack_to_json(msg->body, msg->body_len, &text, NULL, 0) != MLG_OK)
        return NULL;
    json_t *body = json_loads(text, 0, NULL);
    free(text);
    return body;
}

static size_t
s_strings(json_t *array, const char **out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < json_array_size(array) && n < max; i++)
        out[n++] = json_string_value(json_array_get(array, i));
    return n;
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

static int64_t
s_us(json_t *v)
{
    mlg_time_t t;
    if (!json_is_string(v)
        || !mlg_date_time_parse(json_string_value(v), json_string_length(v), &t))
        return BRK_FOREVER;
    return t.sec * 1000000 + t.nsec / 1000;
}

mlg_rc_t
brk_consent_grant(const brk_consents_t *index, const mlg_msg_t *msg,
                  const char *publisher, brk_consent_t **out, char *reason,
                  size_t reasonlen)
{
    *out = NULL;
    json_t *body = s_body(msg);
    if (!body) {
        snprintf(reason, reasonlen, "the body could not be read");
        return MLG_ERR_NOMEM;
    }
    const char *parties[64], *purposes[32], *categories[32];
    size_t np = s_strings(json_object_get(body, "parties"), parties, 64);
    size_t nu = s_strings(json_object_get(body, "purposes"), purposes, 32);
    size_t nc = s_strings(json_object_get(body, "categories"), categories, 32);
    const char *id = json_string_value(json_object_get(body, "consent_id"));
    mlg_rc_t rc = MLG_OK;
    bool party = false;
    for (size_t i = 0; i < np; i++)
        party = party || strcmp(parties[i], publisher) == 0;
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
        *out = brk_consent_new(id, msg->subject, parties, np, purposes, nu, categories,
                               nc, s_us(json_object_get(body, "valid_from")),
                               s_us(json_object_get(body, "valid_until")));
        if (!*out)
            rc = MLG_ERR_NOMEM;
        else {
            snprintf((*out)->granted_by, sizeof((*out)->granted_by), "%s", publisher);
            snprintf((*out)->granted_message, sizeof((*out)->granted_message), "%s",
                     msg->id);
        }
    }
    json_decref(body);
    return rc;
}

mlg_rc_t
brk_consent_revoke(const brk_consents_t *index, const mlg_msg_t *msg,
                   const char *publisher, brk_consent_t **out, char *reason,
                   size_t reasonlen)
{
    *out = NULL;
    json_t *body = s_body(msg);
    if (!body) {
        snprintf(reason, reasonlen, "the body could not be read");
        return MLG_ERR_NOMEM;
    }
    const char *id = json_string_value(json_object_get(body, "consent_id"));
    brk_consent_t *c = id ? brk_consents_find(index, id) : NULL;
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
    json_decref(body);
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
