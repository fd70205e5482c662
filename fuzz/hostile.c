/*  hostile.c: builds the worst bodies and PUBLISH frames a client can
    send at the frame limit (see hostile.h). Pure msgpack packing: no
    I/O, no decoding, nothing of the broker. Called by the fuzz seeds
    (worst_seeds.c), the frame bench and the hostile end-to-end test, so
    that each measures or sends the same frames. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hostile.h"

void
hostile_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

size_t
hostile_str_bytes(size_t len)
{
    return len + (len < 32 ? 1 : len < 256 ? 2 : len < 65536 ? 3 : 5);
}

void
hostile_euros(char *out, size_t count)
{
    for (size_t i = 0; i < count; i++)
        memcpy(out + 3 * i, "\xe2\x82\xac", 3); /* € */
    out[3 * count] = '\0';
}

/* How many items of item_bytes fit in room, past `used` bytes. */
static size_t
s_fit(size_t room, size_t used, size_t item_bytes)
{
    return room > used ? (room - used) / item_bytes : 0;
}

void
hostile_same_names(msgpack_packer *pk, const char *name, size_t room)
{
    size_t len = strlen(name);
    size_t n = s_fit(room, 5, hostile_str_bytes(len) + 1); /* 5: a map32's header */
    msgpack_pack_map(pk, n);
    for (size_t i = 0; i < n; i++) {
        msgpack_pack_str_with_body(pk, name, len);
        msgpack_pack_nil(pk);
    }
}

void
hostile_close_names(msgpack_packer *pk, size_t len, size_t period, size_t room)
{
    if (len < 9)
        len = 9;
    size_t n = s_fit(room, 5, hostile_str_bytes(len) + 1);
    char *k = malloc(len + 1);
    if (!k)
        abort();
    memset(k, 'k', len);
    msgpack_pack_map(pk, n);
    for (size_t i = 0; i < n; i++) {
        /* n is far below 2^32 in a 1 MiB frame: 8 hex digits tell them apart */
        size_t index = period ? i % period : i;
        snprintf(k + len - 8, 9, "%08x", (unsigned)(index & 0xffffffffu));
        msgpack_pack_str_with_body(pk, k, len);
        msgpack_pack_nil(pk);
    }
    free(k);
}

void
hostile_consent(msgpack_packer *pk, const char *array, const char *word, size_t room)
{
    msgpack_pack_map(pk, 7);
    hostile_str(pk, "consent_id");
    hostile_str(pk, "0b7a3c2e-5f1d-4c8e-9a6b-3d2f1e0c9b8a");
    hostile_str(pk, "parties");
    msgpack_pack_array(pk, 2);
    hostile_str(pk, "cd75");
    hostile_str(pk, "ccas-paris-13");
    hostile_str(pk, "valid_from");
    hostile_str(pk, "2026-01-01T00:00:00Z");
    hostile_str(pk, "collected_by");
    msgpack_pack_map(pk, 2);
    hostile_str(pk, "name");
    hostile_str(pk, "x");
    hostile_str(pk, "role");
    hostile_str(pk, "y");
    hostile_str(pk, "method");
    hostile_str(pk, "written");
    /* the array that stays valid (one word), then the filled one */
    const char *names[] = {"purposes", "categories"};
    const char *words[] = {"orientation", "social"};
    int filled = strcmp(array, names[0]) == 0 ? 0 : 1;
    hostile_str(pk, names[1 - filled]);
    msgpack_pack_array(pk, 1);
    hostile_str(pk, words[1 - filled]);
    hostile_str(pk, names[filled]);
    size_t n = s_fit(room, 300, hostile_str_bytes(strlen(word)));
    msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++)
        hostile_str(pk, word);
}

void
hostile_deep(msgpack_packer *pk, size_t room)
{
    int depth = MLG_MAX_DEPTH - 2; /* the envelope map and the body map */
    size_t n = s_fit(room, 20, (size_t)depth);
    msgpack_pack_map(pk, 1);
    hostile_str(pk, "referral_id");
    msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++) {
        for (int d = 0; d < depth - 1; d++)
            msgpack_pack_array(pk, 1);
        msgpack_pack_nil(pk);
    }
}

void
hostile_long_string(msgpack_packer *pk, const char *member, size_t room)
{
    size_t n = s_fit(room, 32, 3);
    char *s = malloc(n * 3 + 1);
    if (!s)
        abort();
    hostile_euros(s, n);
    msgpack_pack_map(pk, 1);
    hostile_str(pk, member);
    msgpack_pack_str_with_body(pk, s, n * 3);
    free(s);
}

void
hostile_many_maps(msgpack_packer *pk, size_t room)
{
    size_t n = s_fit(room, 16, 4);
    msgpack_pack_map(pk, 1);
    hostile_str(pk, "requested_by");
    msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++) {
        msgpack_pack_map(pk, 1);
        msgpack_pack_str(pk, 0);
        msgpack_pack_nil(pk);
    }
}

void
hostile_referral(msgpack_packer *pk, const char *extra)
{
    msgpack_pack_map(pk, extra ? 6 : 5);
    hostile_str(pk, "referral_id");
    hostile_str(pk, "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f");
    hostile_str(pk, "service");
    hostile_str(pk, "home-care");
    hostile_str(pk, "reason");
    hostile_str(pk, "x");
    hostile_str(pk, "priority");
    hostile_str(pk, "routine");
    hostile_str(pk, "requested_by");
    msgpack_pack_map(pk, 2);
    hostile_str(pk, "name");
    hostile_str(pk, "x");
    hostile_str(pk, "role");
    hostile_str(pk, "y");
    if (extra) {
        hostile_str(pk, extra);
        msgpack_pack_nil(pk);
    }
}

void
hostile_publish(msgpack_sbuffer *out, const char *type, size_t recipients,
                size_t junk_keys, const void *body, size_t body_len)
{
    msgpack_sbuffer_init(out);
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 8 + junk_keys);
    hostile_str(&pk, "op");
    hostile_str(&pk, "PUBLISH");
    hostile_str(&pk, "id");
    hostile_str(&pk, "7f3e2d1c-0b9a-4877-9655-443322110000");
    hostile_str(&pk, "type");
    hostile_str(&pk, type);
    hostile_str(&pk, "version");
    msgpack_pack_uint64(&pk, 1);
    hostile_str(&pk, "subject");
    hostile_str(&pk, "person-1");
    hostile_str(&pk, "purpose");
    hostile_str(&pk, "orientation");
    hostile_str(&pk, "to");
    msgpack_pack_array(&pk, recipients);
    for (size_t i = 0; i < recipients; i++)
        hostile_str(&pk, "ccas-paris-13");
    for (size_t i = 0; i < junk_keys; i++) {
        msgpack_pack_str(&pk, 0);
        msgpack_pack_nil(&pk);
    }
    hostile_str(&pk, "body");
    msgpack_sbuffer_write(out, body, body_len);
}
