/*  hostile.h: the costliest msgpack bodies and PUBLISH frames we know how
    to build at the frame limit (1 MiB): members all named alike, names
    that differ in their last bytes only, array items all equal, nesting
    at the depth limit, one long string, many small maps, a crowded
    envelope, the most recipients.

    One copy for the three places that send them: fuzz/worst_seeds.c
    (libFuzzer's starting inputs), tests/bench/frame_bench.c (the
    broker's steps, timed) and tests/e2e/test_hostile.c (the real
    broker). Each body builder fills at most `room` bytes; what the
    caller leaves for the envelope is its own affair. */

#ifndef MLG_FUZZ_HOSTILE_H
#define MLG_FUZZ_HOSTILE_H

#include <stddef.h>

#include <msgpack.h>

#include "maillage/limits.h"

/* The frame limit the builders aim at, and the room a PUBLISH envelope
   (hostile_publish, one recipient) leaves to its body. */
#define HOSTILE_LIMIT MLG_MAX_MESSAGE_BYTES_DEFAULT
#define HOSTILE_ENVELOPE 512
#define HOSTILE_BODY_MAX (HOSTILE_LIMIT - HOSTILE_ENVELOPE)

/* A string, in the shortest form msgpack has for it. */
void hostile_str(msgpack_packer *pk, const char *s);

/* The bytes msgpack takes for a string of len bytes. */
size_t hostile_str_bytes(size_t len);

/* `count` euro signs (3 bytes each) in out, NUL-terminated; out holds
   3 * count + 1 bytes. */
void hostile_euros(char *out, size_t count);

/* A map whose members are all named `name`, each nil, as many as fit. */
void hostile_same_names(msgpack_packer *pk, const char *name, size_t room);

/* A map of nil members whose names are `len` bytes (at least 9): 'k's,
   then 8 hex digits of the member's index modulo `period` (0: the index
   itself, so all differ), as many as fit. */
void hostile_close_names(msgpack_packer *pk, size_t len, size_t period, size_t room);

/* A consent.granted body, valid but for its `array` ("purposes" or
   "categories"), which is filled with `word` again and again and comes
   last. */
void hostile_consent(msgpack_packer *pk, const char *array, const char *word,
                     size_t room);

/* {"referral_id": [[[...nil]]], ...}: arrays nested to the depth limit
   (the envelope and the body map take two levels), as many as fit. */
void hostile_deep(msgpack_packer *pk, size_t room);

/* {member: "€€€..."}: one string of 3-byte characters, as long as fits. */
void hostile_long_string(msgpack_packer *pk, const char *member, size_t room);

/* {"requested_by": [{"": nil}, ...]}: many one-member maps, each checked
   for repeated names. */
void hostile_many_maps(msgpack_packer *pk, size_t room);

/* A valid referral.created body; with `extra`, one member more (nil) of
   that name, which the schema does not allow. */
void hostile_referral(msgpack_packer *pk, const char *extra);

/* A whole PUBLISH frame in `out` (initialised here; the caller destroys
   it): op, a fixed id, `type`, version 1, subject, purpose, `recipients`
   times "ccas-paris-13" in `to`, `junk_keys` members named "" (nil),
   then `body` (packed msgpack) as the body. */
void hostile_publish(msgpack_sbuffer *out, const char *type, size_t recipients,
                     size_t junk_keys, const void *body, size_t body_len);

#endif
