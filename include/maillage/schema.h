/*  schema.h: the schema registry and the body validator.

    The registry loads a folder like the project's schemas/: the word
    lists of vocabulary.json and one JSON Schema per event type and
    version, <type>.v<version>.json, restricted to the keywords of
    EVENTS.md. Any keyword outside that list, bad JSON, or an unknown
    x-maillage value stops the load with an error naming the file and
    the JSON pointer of the problem. A loaded registry is read-only and
    may be shared between threads.

    The validator checks a body (a msgpack map) against its schema
    without converting it to JSON, and names the first offending member
    by its JSON pointer: "/person/birth_date: not a date (YYYY-MM-DD)". */

#ifndef MAILLAGE_SCHEMA_H
#define MAILLAGE_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "maillage/codec.h"
#include "maillage/export.h"
#include "maillage/rc.h"

typedef struct mlg_registry_t mlg_registry_t;
typedef struct mlg_schema_t mlg_schema_t;

/* The legal basis an event type declares (PROTOCOL.md §7). */
typedef enum {
    MLG_BASIS_NOT_PERSONAL = 0,
    MLG_BASIS_CONSENT,
    MLG_BASIS_LEGAL_OBLIGATION,
    MLG_BASIS_CONSENT_NOTICE,
    MLG_BASIS_SERVICE_NOTICE, /* the broker's notices about a referral (§9) */
} mlg_basis_t;

/* "consent", "legal_obligation", "consent_notice", "service_notice",
   "not_personal". */
MLG_EXPORT const char *mlg_basis_name(mlg_basis_t basis);

/* Loads every schema of `dir`. NULL on failure, with the reason in err:
   "<dir>/<file>: <pointer>: <problem>". */
MLG_EXPORT mlg_registry_t *mlg_registry_load(const char *dir, char *err, size_t errlen);

MLG_EXPORT void mlg_registry_destroy(mlg_registry_t **self_p);

/* The schema for a type and version, or NULL. O(number of schemas). */
MLG_EXPORT const mlg_schema_t *mlg_registry_find(const mlg_registry_t *self,
                                                 const char *type, uint64_t version);

/* Iteration, in file-name order. */
MLG_EXPORT size_t mlg_registry_size(const mlg_registry_t *self);
MLG_EXPORT const mlg_schema_t *mlg_registry_at(const mlg_registry_t *self, size_t index);

/* Words of vocabulary.json. */
MLG_EXPORT bool mlg_registry_is_purpose(const mlg_registry_t *self, const char *word);
MLG_EXPORT bool mlg_registry_is_category(const mlg_registry_t *self, const char *word);

/* Compiles one schema from JSON text, with the registry's vocabulary,
   as if it were the file of `type` version `version`. The caller owns
   the result (mlg_schema_destroy). For tests and tools; the registry
   compiles its own files the same way. */
MLG_EXPORT mlg_schema_t *mlg_schema_compile(const mlg_registry_t *vocabulary,
                                            const char *type, uint64_t version,
                                            const char *json, size_t len, char *err,
                                            size_t errlen);
MLG_EXPORT void mlg_schema_destroy(mlg_schema_t **self_p);

MLG_EXPORT const char *mlg_schema_type(const mlg_schema_t *self);
MLG_EXPORT uint64_t mlg_schema_version(const mlg_schema_t *self);
MLG_EXPORT bool mlg_schema_personal(const mlg_schema_t *self);
MLG_EXPORT mlg_basis_t mlg_schema_basis(const mlg_schema_t *self);
/* The data category, or NULL when the basis has none. */
MLG_EXPORT const char *mlg_schema_category(const mlg_schema_t *self);

/* Does the top-level member `name` of the schema's bodies take the
   string `value`: a member with an `enum` that lists it, or with no
   `enum` at all? False for a member the schema does not have. For
   configurations that name a schema's values (a referral's service). */
MLG_EXPORT bool mlg_schema_member_allows(const mlg_schema_t *self, const char *name,
                                         const char *value);

/* Validates a body given as msgpack bytes. MLG_OK, MLG_INVALID with
   "<pointer>: <problem>" in reason, or MLG_MALFORMED when the bytes are
   not one msgpack object. */
MLG_EXPORT mlg_rc_t mlg_schema_validate(const mlg_schema_t *self, const uint8_t *body,
                                        size_t len, char *reason, size_t reasonlen);

/* Validates the body of a decoded PUBLISH, reusing the object the codec
   already built. */
MLG_EXPORT mlg_rc_t mlg_schema_validate_msg(const mlg_schema_t *self,
                                            const mlg_msg_t *msg, char *reason,
                                            size_t reasonlen);

/* The envelope rules by basis, in the order of PROTOCOL.md §5:
   ADDRESS_REQUIRED (a consent or legal_obligation event whose `to`
   names no agency but the publisher), SUBJECT_REQUIRED (any personal
   event without `subject`), PURPOSE_REQUIRED (a consent or
   legal_obligation event without a purpose of the vocabulary).
   `publisher` may be NULL when not known yet. MLG_OK or the code, with
   a sentence in reason. UNKNOWN_RECIPIENT needs the agency registry:
   it is the broker's. */
MLG_EXPORT mlg_rc_t mlg_envelope_check(const mlg_registry_t *vocabulary,
                                       const mlg_schema_t *schema, const mlg_msg_t *msg,
                                       const char *publisher, char *reason,
                                       size_t reasonlen);

#endif
