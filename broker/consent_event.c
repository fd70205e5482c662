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
