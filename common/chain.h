/*  chain.h: the links of the tamper-evident audit trail (migration
    0003_chain.sql). The store computes them in commit order; `maillage
    verify` computes them again from what the database holds.

    link(row) = BLAKE2b-256(link(previous row) || content(row)), the first
    row's previous link being 32 zero bytes. content(row) is a tag byte
    ('m' a message, 'd' a consent decision) followed by each field as a
    4-byte big-endian length and its bytes (a NULL field: length
    0xffffffff and no bytes). Numbers are written in decimal; times as
    microseconds since 1970 in decimal; uuids in lowercase. The fields:
    - message: chain_seq, id, type, version, sender, subject, purpose,
      correlation, occurred_at, received_at, body_hash (32 raw bytes,
      BLAKE2b-256 of the body as stored);
    - decision: chain_seq, message_id, recipient, decision, basis,
      consent_id, reason, detail, decided_at.
    messages.seq is not covered (the chain's own order is chain_seq). */

#ifndef BRK_CHAIN_H
#define BRK_CHAIN_H

#include <stddef.h>
#include <stdint.h>

#define BRK_LINK_BYTES 32

/* 0 once libsodium is ready; call before the others. */
int brk_chain_init(void);

void brk_chain_body_hash(const uint8_t *body, size_t len, uint8_t out[BRK_LINK_BYTES]);

/* A message row as the chain covers it: each field's text as above,
   NULL for a NULL field. The store fills it from what it writes, `maillage
   verify` from what it reads; only chain.c knows the fields' order. */
typedef struct {
    const char *chain_seq, *id, *type, *version, *sender, *subject, *purpose,
        *correlation, *occurred_at, *received_at;
    const uint8_t *body_hash; /* BRK_LINK_BYTES */
} brk_chain_message_t;

/* A consent decision row, the same way. */
typedef struct {
    const char *chain_seq, *message_id, *recipient, *decision, *basis, *consent_id,
        *reason, *detail, *decided_at;
} brk_chain_decision_t;

/* The link of a row whose previous row's link is `prev`. */
void brk_chain_message(const uint8_t prev[BRK_LINK_BYTES], const brk_chain_message_t *row,
                       uint8_t out[BRK_LINK_BYTES]);
void brk_chain_decision(const uint8_t prev[BRK_LINK_BYTES],
                        const brk_chain_decision_t *row, uint8_t out[BRK_LINK_BYTES]);

/* `len` bytes as "\x..." hex, the text form of bytea; `out` holds
   2 * len + 3 bytes. */
void brk_chain_hex(const uint8_t *bytes, size_t len, char *out);

/* The reverse, for 32 bytes from bytea's text form; 0 on success. */
int brk_chain_unhex(const char *text, uint8_t out[BRK_LINK_BYTES]);

#endif
