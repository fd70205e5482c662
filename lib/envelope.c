/*  envelope.c: the envelope rules by basis (EVENTS.md, PROTOCOL.md §5,
    §6), checked after the body passed its schema.

    A pure function of the message, its schema and the vocabulary: no
    I/O, no agency registry (UNKNOWN_RECIPIENT is the broker's). Called
    by the broker on every PUBLISH, and by tools that check an event
    before sending it. */

#include <stdio.h>
#include <string.h>

#include "maillage/schema.h"

mlg_rc_t
mlg_envelope_check(const mlg_registry_t *vocabulary, const mlg_schema_t *schema,
                   const mlg_msg_t *msg, const char *publisher, char *reason,
                   size_t reasonlen)
{
    mlg_basis_t basis = mlg_schema_basis(schema);
    if (basis == MLG_BASIS_CONSENT || basis == MLG_BASIS_LEGAL_OBLIGATION) {
        /* The publisher's own agency is dropped from `to` (§6). */
        size_t addressees = 0;
        for (size_t i = 0; i < msg->to_count; i++)
            if (!publisher || strcmp(msg->to[i].id, publisher) != 0)
                addressees++;
        if (addressees == 0) {
            snprintf(reason, reasonlen,
                     "%s is personal data: 'to' must name at least "
                     "one agency other than the publisher",
                     msg->type);
            return MLG_ADDRESS_REQUIRED;
        }
    }
    if (basis != MLG_BASIS_NOT_PERSONAL && msg->subject[0] == '\0') {
        snprintf(reason, reasonlen, "%s is personal data: 'subject' is required",
                 msg->type);
        return MLG_SUBJECT_REQUIRED;
    }
    if (basis == MLG_BASIS_CONSENT || basis == MLG_BASIS_LEGAL_OBLIGATION) {
        if (msg->purpose[0] == '\0') {
            snprintf(reason, reasonlen, "%s needs a 'purpose' from the vocabulary",
                     msg->type);
            return MLG_PURPOSE_REQUIRED;
        }
        if (!mlg_registry_is_purpose(vocabulary, msg->purpose)) {
            snprintf(reason, reasonlen, "'%s' is not a purpose of the vocabulary",
                     msg->purpose);
            return MLG_PURPOSE_REQUIRED;
        }
    }
    return MLG_OK;
}
