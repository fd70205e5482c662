/*  mp.h: internal MessagePack helpers of libmaillage (not installed).

    Only lib/ includes msgpack.h. The scanner checks raw bytes before
    msgpack-c builds anything: msgpack-c allocates an array's slots as
    soon as it reads the array's header, so a 5-byte frame declaring
    4 billion elements must be refused before it is unpacked. */

#ifndef MAILLAGE_MP_H
#define MAILLAGE_MP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "maillage/codec.h"

/* Skips one object at p[*pos..len), checking every declared length
   against the bytes left, the nesting against depth_left, and refusing
   the reserved byte 0xc1. On failure *why is a static sentence. */
bool mlg_mp_skip(const uint8_t *p, size_t len, size_t *pos, int depth_left,
                 const char **why);

/* Scans data as exactly one object (nothing after it), then unpacks it
   into `out` (initialised here; the caller destroys it). The objects
   point into `data`, which must outlive them. */
mlg_rc_t mlg_mp_unpack(const uint8_t *data, size_t len, int max_depth,
                       msgpack_unpacked *out, const char **why);

/* The decoded body map of a message that came from mlg_msg_decode(),
   or NULL for a message built by hand. */
const msgpack_object *mlg_msg_body_object(const mlg_msg_t *msg);

/* Is this object a str equal to the NUL-terminated s? */
bool mlg_mp_str_eq(const msgpack_object *o, const char *s);

#endif
