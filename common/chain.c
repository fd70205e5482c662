/*  chain.c: see chain.h. */

#include <ctype.h>
#include <stdbool.h>
#include <string.h>

#include <sodium.h>

#include "chain.h"

int
brk_chain_init(void)
{
    return sodium_init() < 0 ? -1 : 0;
}

void
brk_chain_body_hash(const uint8_t *body, size_t len, uint8_t out[BRK_LINK_BYTES])
{
    crypto_generichash(out, BRK_LINK_BYTES, body, len, NULL, 0);
}

static void
s_field(crypto_generichash_state *st, const char *value, bool uuid)
{
    uint8_t len[4];
    if (!value) {
        memset(len, 0xff, 4);
        crypto_generichash_update(st, len, 4);
        return;
    }
    size_t n = strlen(value);
    len[0] = (uint8_t)(n >> 24);
    len[1] = (uint8_t)(n >> 16);
    len[2] = (uint8_t)(n >> 8);
    len[3] = (uint8_t)n;
    crypto_generichash_update(st, len, 4);
    if (!uuid) {
        crypto_generichash_update(st, (const uint8_t *)value, n);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)tolower((unsigned char)value[i]);
        crypto_generichash_update(st, &c, 1);
    }
}

static void
s_link(const uint8_t prev[BRK_LINK_BYTES], char tag, const char *const *fields, size_t n,
       const uint8_t *uuid_fields, const uint8_t *tail, uint8_t out[BRK_LINK_BYTES])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, BRK_LINK_BYTES);
    crypto_generichash_update(&st, prev, BRK_LINK_BYTES);
    uint8_t t = (uint8_t)tag;
    crypto_generichash_update(&st, &t, 1);
    for (size_t i = 0; i < n; i++)
        s_field(&st, fields[i], uuid_fields[i]);
    if (tail) {
        static const uint8_t len[4] = {0, 0, 0, BRK_LINK_BYTES};
        crypto_generichash_update(&st, len, 4);
        crypto_generichash_update(&st, tail, BRK_LINK_BYTES);
    }
    crypto_generichash_final(&st, out, BRK_LINK_BYTES);
}

void
brk_chain_message(const uint8_t prev[BRK_LINK_BYTES], const brk_chain_message_t *row,
                  uint8_t out[BRK_LINK_BYTES])
{
    /* the order of chain.h; id is a uuid */
    const char *const fields[] = {row->chain_seq,  row->id,          row->type,
                                  row->version,    row->sender,      row->subject,
                                  row->purpose,    row->correlation, row->occurred_at,
                                  row->received_at};
    static const uint8_t uuid[] = {0, 1, 0, 0, 0, 0, 0, 0, 0, 0};
    _Static_assert(sizeof(fields) / sizeof(fields[0]) == sizeof(uuid),
                   "one flag a field");
    s_link(prev, 'm', fields, sizeof(uuid), uuid, row->body_hash, out);
}

void
brk_chain_decision(const uint8_t prev[BRK_LINK_BYTES], const brk_chain_decision_t *row,
                   uint8_t out[BRK_LINK_BYTES])
{
    /* the order of chain.h; message_id and consent_id are uuids */
    const char *const fields[] = {row->chain_seq, row->message_id, row->recipient,
                                  row->decision,  row->basis,      row->consent_id,
                                  row->reason,    row->detail,     row->decided_at};
    static const uint8_t uuid[] = {0, 1, 0, 0, 0, 1, 0, 0, 0};
    _Static_assert(sizeof(fields) / sizeof(fields[0]) == sizeof(uuid),
                   "one flag a field");
    s_link(prev, 'd', fields, sizeof(uuid), uuid, NULL, out);
}

void
brk_chain_hex(const uint8_t *bytes, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    out[0] = '\\';
    out[1] = 'x';
    for (size_t i = 0; i < len; i++) {
        out[2 + 2 * i] = digits[bytes[i] >> 4];
        out[3 + 2 * i] = digits[bytes[i] & 15];
    }
    out[2 + 2 * len] = '\0';
}

int
brk_chain_unhex(const char *text, uint8_t out[BRK_LINK_BYTES])
{
    if (!text || strncmp(text, "\\x", 2) != 0 || strlen(text) != 2 + 2 * BRK_LINK_BYTES)
        return -1;
    for (size_t i = 0; i < BRK_LINK_BYTES; i++) {
        unsigned v = 0;
        for (int k = 0; k < 2; k++) {
            char c = text[2 + 2 * i + (size_t)k];
            v <<= 4;
            if (c >= '0' && c <= '9')
                v |= (unsigned)(c - '0');
            else if (c >= 'a' && c <= 'f')
                v |= (unsigned)(c - 'a' + 10);
            else
                return -1;
        }
        out[i] = (uint8_t)v;
    }
    return 0;
}
