/*  mp.c: a bounds-checking scanner for raw MessagePack, run before
    msgpack-c unpacks anything from the network.

    Every declared length is checked against the bytes that are left:
    an element takes at least one byte, so an array may declare at most
    as many elements as bytes remain, a map half that. With that, the
    memory msgpack-c allocates is bounded by a small multiple of the
    input size (about 24 bytes of msgpack_object per input byte). */

#include <string.h>

#include "mp.h"

static bool
s_need(size_t len, size_t pos, size_t n)
{
    return n <= len - pos;
}

static uint32_t
s_be(const uint8_t *p, int bytes)
{
    uint32_t v = 0;
    for (int i = 0; i < bytes; i++)
        v = (v << 8) | p[i];
    return v;
}

/* What follows a type byte: a length of `lenbytes` bytes (of payload,
   or of items), then `payload` more bytes, or items. */
typedef enum { S_SCALAR, S_BYTES, S_ARRAY, S_MAP, S_RESERVED } s_kind_t;

typedef struct {
    uint8_t lenbytes;
    uint8_t payload;
    uint8_t kind;
} s_type_t;

/* The type bytes 0xc0..0xdf (the rest are fix forms). */
static const s_type_t s_types[32] = {
    [0x00] = {0, 0, S_SCALAR},                              /* nil */
    [0x01] = {0, 0, S_RESERVED}, [0x02] = {0, 0, S_SCALAR}, /* false */
    [0x03] = {0, 0, S_SCALAR},                              /* true */
    [0x04] = {1, 0, S_BYTES},                               /* bin8 */
    [0x05] = {2, 0, S_BYTES},                               /* bin16 */
    [0x06] = {4, 0, S_BYTES},                               /* bin32 */
    [0x07] = {1, 1, S_BYTES},                               /* ext8: + type byte */
    [0x08] = {2, 1, S_BYTES},                               /* ext16 */
    [0x09] = {4, 1, S_BYTES},                               /* ext32 */
    [0x0a] = {0, 4, S_SCALAR},                              /* float32 */
    [0x0b] = {0, 8, S_SCALAR},                              /* float64 */
    [0x0c] = {0, 1, S_SCALAR},                              /* uint8 */
    [0x0d] = {0, 2, S_SCALAR},                              /* uint16 */
    [0x0e] = {0, 4, S_SCALAR},                              /* uint32 */
    [0x0f] = {0, 8, S_SCALAR},                              /* uint64 */
    [0x10] = {0, 1, S_SCALAR},                              /* int8 */
    [0x11] = {0, 2, S_SCALAR},                              /* int16 */
    [0x12] = {0, 4, S_SCALAR},                              /* int32 */
    [0x13] = {0, 8, S_SCALAR},                              /* int64 */
    [0x14] = {0, 2, S_SCALAR},                              /* fixext1: type + data */
    [0x15] = {0, 3, S_SCALAR},                              /* fixext2 */
    [0x16] = {0, 5, S_SCALAR},                              /* fixext4 */
    [0x17] = {0, 9, S_SCALAR},                              /* fixext8 */
    [0x18] = {0, 17, S_SCALAR},                             /* fixext16 */
    [0x19] = {1, 0, S_BYTES},                               /* str8 */
    [0x1a] = {2, 0, S_BYTES},                               /* str16 */
    [0x1b] = {4, 0, S_BYTES},                               /* str32 */
    [0x1c] = {2, 0, S_ARRAY},                               /* array16 */
    [0x1d] = {4, 0, S_ARRAY},                               /* array32 */
    [0x1e] = {2, 0, S_MAP},                                 /* map16 */
    [0x1f] = {4, 0, S_MAP},                                 /* map32 */
};

/* Reads the header at p[*pos]: on success *pos is past it and past any
   payload, *items holds the objects that follow (a map's pairs count
   twice). */
static bool
s_header(const uint8_t *p, size_t len, size_t *pos, uint64_t *items, const char **why)
{
    size_t i = *pos;
    uint8_t b = p[i++];
    s_type_t t = {0, 0, S_SCALAR};
    if (b >= 0x80 && b <= 0x8f)
        *items = 2u * (b & 0x0f);
    else if (b >= 0x90 && b <= 0x9f)
        *items = b & 0x0f;
    else if (b >= 0xa0 && b <= 0xbf)
        t.payload = b & 0x1f;
    else if (b >= 0xc0 && b <= 0xdf)
        t = s_types[b - 0xc0];
    /* else: fixint, positive or negative */
    if (t.kind == S_RESERVED) {
        *why = "reserved byte 0xc1";
        return false;
    }
    size_t payload = t.payload;
    if (t.lenbytes) {
        if (!s_need(len, i, t.lenbytes)) {
            *why = "truncated length";
            return false;
        }
        uint32_t n = s_be(p + i, t.lenbytes);
        i += t.lenbytes;
        if (t.kind == S_BYTES)
            payload += n;
        else
            *items = t.kind == S_MAP ? 2u * (uint64_t)n : n;
    }
    if (!s_need(len, i, payload)) {
        *why = "declared length past the end of the input";
        return false;
    }
    *pos = i + payload;
    return true;
}

bool
mlg_mp_skip(const uint8_t *p, size_t len, size_t *pos, int depth_left, const char **why)
{
    size_t i = *pos;
    if (i >= len) {
        *why = "truncated";
        return false;
    }
    uint64_t items = 0;
    bool container = (p[i] >= 0x80 && p[i] <= 0x9f) || (p[i] >= 0xdc && p[i] <= 0xdf);
    if (!s_header(p, len, &i, &items, why))
        return false;
    if (container) {
        if (items > len - i) {
            *why = "declared element count past the end of the input";
            return false;
        }
        if (depth_left < 1) {
            *why = "nested too deep";
            return false;
        }
        for (uint64_t k = 0; k < items; k++)
            if (!mlg_mp_skip(p, len, &i, depth_left - 1, why))
                return false;
    }
    *pos = i;
    return true;
}

mlg_rc_t
mlg_mp_unpack(const uint8_t *data, size_t len, int max_depth, msgpack_unpacked *out,
              const char **why)
{
    msgpack_unpacked_init(out);
    size_t pos = 0;
    if (!mlg_mp_skip(data, len, &pos, max_depth, why))
        return MLG_MALFORMED;
    if (pos != len) {
        *why = "bytes after the end of the object";
        return MLG_MALFORMED;
    }
    size_t off = 0;
    msgpack_unpack_return ret = msgpack_unpack_next(out, (const char *)data, len, &off);
    if (ret == MSGPACK_UNPACK_NOMEM_ERROR) {
        *why = "out of memory";
        return MLG_ERR_NOMEM;
    }
    if (ret != MSGPACK_UNPACK_SUCCESS || off != len) {
        *why = "msgpack-c could not unpack it";
        return MLG_MALFORMED;
    }
    return MLG_OK;
}

bool
mlg_mp_str_eq(const msgpack_object *o, const char *s)
{
    size_t n = strlen(s);
    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == n
           && (n == 0 || memcmp(o->via.str.ptr, s, n) == 0);
}
