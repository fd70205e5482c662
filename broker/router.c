/*  router.c: routing and the consent decision of each recipient.

    A `consent`-basis recipient is decided by the consent index (§7);
    `legal_obligation` and `not_personal` recipients are allowed. Called
    by the event loop for each PUBLISH; O(recipients x agencies). */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "router.h"

static bool
s_has(const brk_decision_t *list, size_t n, const char *agency)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i].recipient, agency) == 0)
            return true;
    return false;
}

typedef struct {
    const brk_consents_t *consents;
    const mlg_schema_t *schema;
    const mlg_msg_t *msg;
    const char *publisher;
    int64_t now;
} s_ctx_t;

static void
s_decide(const s_ctx_t *ctx, brk_decision_t *d)
{
    d->basis = mlg_schema_basis(ctx->schema);
    if (d->basis == MLG_BASIS_CONSENT) {
        brk_consent_decide(ctx->consents, ctx->msg->subject, ctx->publisher, d->recipient,
                           ctx->msg->purpose, mlg_schema_category(ctx->schema), ctx->now,
                           d);
        return;
    }
    d->allow = true;
    d->reason[0] = '\0';
    d->consent_id[0] = '\0';
    d->detail[0] = '\0';
}

mlg_rc_t
brk_route(const brk_config_t *cfg, const brk_consents_t *consents,
          const mlg_schema_t *schema, const mlg_msg_t *msg, const char *publisher,
          int64_t now, brk_decision_t **out, size_t *count, char *reason,
          size_t reasonlen)
{
    s_ctx_t ctx = {consents, schema, msg, publisher, now};
    *out = NULL;
    *count = 0;
    for (size_t i = 0; i < msg->to_count; i++)
        if (!brk_config_agency(cfg, msg->to[i].id)) {
            snprintf(reason, reasonlen,
                     "'%s' in 'to' is not an agency registered with this broker",
                     msg->to[i].id);
            return MLG_UNKNOWN_RECIPIENT;
        }
    bool personal = mlg_schema_personal(schema);
    size_t cap = msg->to_count + (personal ? 0 : cfg->nagencies);
    brk_decision_t *list = calloc(cap ? cap : 1, sizeof(*list));
    if (!list)
        return MLG_ERR_NOMEM;
    size_t n = 0;
    for (size_t i = 0; i < msg->to_count; i++) {
        const char *a = msg->to[i].id;
        if (strcmp(a, publisher) == 0 || s_has(list, n, a))
            continue;
        strcpy(list[n].recipient, a);
        s_decide(&ctx, &list[n++]);
    }
    if (!personal)
        for (size_t i = 0; i < cfg->nagencies; i++) {
            const brk_agency_t *a = &cfg->agencies[i];
            if (strcmp(a->id, publisher) == 0 || s_has(list, n, a->id)
                || !brk_agency_subscribes(a, msg->type))
                continue;
            strcpy(list[n].recipient, a->id);
            s_decide(&ctx, &list[n++]);
        }
    *out = list;
    *count = n;
    return MLG_OK;
}
