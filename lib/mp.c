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

bool
mlg_mp_skip(const uint8_t *p, size_t len, size_t *pos, int depth_left, const char **why)
{
    size_t i = *pos;
    if (i >= len) {
        *why = "truncated";
        return false;
    }
    uint8_t b = p[i++];
    size_t payload = 0; /* bytes that follow the header */
    uint64_t items = 0; /* objects that follow (arrays, maps) */
    bool container = false;
    int lenbytes = 0;

    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
        /* fixint, nil, booleans */
    }
    else if (b >= 0x80 && b <= 0x8f) {
        items = 2u * (b & 0x0f);
        container = true;
    }
    else if (b >= 0x90 && b <= 0x9f) {
        items = b & 0x0f;
        container = true;
    }
    else if (b >= 0xa0 && b <= 0xbf)
        payload = b & 0x1f;
    else {
        switch (b) {
        case 0xc1: *why = "reserved byte 0xc1"; return false;
        case 0xc4:
        case 0xd9: lenbytes = 1; break; /* bin8, str8 */
        case 0xc5:
        case 0xda: lenbytes = 2; break;
        case 0xc6:
        case 0xdb: lenbytes = 4; break;
        case 0xc7:
            lenbytes = 1;
            payload = 1;
            break; /* ext: + type byte */
        case 0xc8:
            lenbytes = 2;
            payload = 1;
            break;
        case 0xc9:
            lenbytes = 4;
            payload = 1;
            break;
        case 0xca: payload = 4; break;
        case 0xcb: payload = 8; break;
        case 0xcc:
        case 0xd0: payload = 1; break;
        case 0xcd:
        case 0xd1: payload = 2; break;
        case 0xce:
        case 0xd2: payload = 4; break;
        case 0xcf:
        case 0xd3: payload = 8; break;
        case 0xd4: payload = 2; break; /* fixext: type + data */
        case 0xd5: payload = 3; break;
        case 0xd6: payload = 5; break;
        case 0xd7: payload = 9; break;
        case 0xd8: payload = 17; break;
        case 0xdc:
            lenbytes = 2;
            container = true;
            break;
        case 0xdd:
            lenbytes = 4;
            container = true;
            break;
        case 0xde:
            lenbytes = 2;
            container = true;
            break;
        case 0xdf:
            lenbytes = 4;
            container = true;
            break;
        default: *why = "unknown type byte"; return false;
        }
        if (lenbytes) {
            if (!s_need(len, i, (size_t)lenbytes)) {
                *why = "truncated length";
                return false;
            }
            uint32_t n = s_be(p + i, lenbytes);
            i += (size_t)lenbytes;
            if (container)
                items = (b == 0xde || b == 0xdf) ? 2u * (uint64_t)n : n;
            else
                payload += n;
        }
    }
    if (!s_need(len, i, payload)) {
        *why = "declared length past the end of the input";
        return false;
    }
    i += payload;
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
