/*  test_chain.c: the audit chain's links (common/chain.c). Databases
    hold links computed by every earlier version, so the format is pinned
    twice: against chain.h's description, built here byte by byte, and
    against links of fixed rows that the store wrote before the fields
    became a structure. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "chain.h"

static const char *S_MESSAGE_ID = "0F8E1C2A-1B2C-4D5E-8F90-A1B2C3D4E5F6";

static void
s_prev(uint8_t prev[BRK_LINK_BYTES])
{
    for (int i = 0; i < BRK_LINK_BYTES; i++)
        prev[i] = (uint8_t)i;
}

static brk_chain_message_t
s_message(const uint8_t *body_hash)
{
    return (brk_chain_message_t){
        .chain_seq = "42",
        .id = S_MESSAGE_ID,
        .type = "referral.created",
        .version = "1",
        .sender = "dept-13",
        .subject = NULL,
        .purpose = "social-support",
        .correlation = NULL,
        .occurred_at = "1700000000000000",
        .received_at = "1700000000123456",
        .body_hash = body_hash,
    };
}

static brk_chain_decision_t
s_decision(void)
{
    return (brk_chain_decision_t){
        .chain_seq = "43",
        .message_id = "0f8e1c2a-1b2c-4d5e-8f90-a1b2c3d4e5f6",
        .recipient = "ccas-marseille",
        .decision = "allow",
        .basis = "consent",
        .consent_id = "9A0B1C2D-3E4F-4A5B-8C6D-7E8F9A0B1C2D",
        .reason = NULL,
        .detail = "",
        .decided_at = "1700000000123456",
    };
}

static void
s_assert_hex(const uint8_t link[BRK_LINK_BYTES], const char *want)
{
    char hex[2 * BRK_LINK_BYTES + 3];
    brk_chain_hex(link, BRK_LINK_BYTES, hex);
    assert_string_equal(hex, want);
}

/* The links the store computed for these rows before this version. */
static void
test_links_of_fixed_rows_are_stable(void **state)
{
    (void)state;
    uint8_t prev[BRK_LINK_BYTES], body_hash[BRK_LINK_BYTES], m[BRK_LINK_BYTES],
        d[BRK_LINK_BYTES];
    s_prev(prev);
    brk_chain_body_hash((const uint8_t *)"{\"a\":1}", 7, body_hash);
    s_assert_hex(body_hash,
                 "\\x10a7ff3e312baec0c356be489739b93f63af84416c40f1c13023eb96c7ed50aa");
    brk_chain_message_t mrow = s_message(body_hash);
    brk_chain_message(prev, &mrow, m);
    s_assert_hex(m,
                 "\\x01193aa2f40726d4c7f34510c40faa5c7cb221eac3dad98aad18c8cf010bf083");
    brk_chain_decision_t drow = s_decision();
    brk_chain_decision(m, &drow, d);
    s_assert_hex(d,
                 "\\xba6e74e4d3346ec7f2d544e5fad93f931d217b904ddcb145ced2178d340c1f4e");
}

/* chain.h's content(row), built by hand: tag, then each field as a
   4-byte big-endian length and its bytes, a NULL as 0xffffffff. */
static void
s_put(crypto_generichash_state *st, const char *value)
{
    uint8_t len[4] = {0xff, 0xff, 0xff, 0xff};
    size_t n = value ? strlen(value) : 0;
    if (value) {
        len[0] = (uint8_t)(n >> 24);
        len[1] = (uint8_t)(n >> 16);
        len[2] = (uint8_t)(n >> 8);
        len[3] = (uint8_t)n;
    }
    crypto_generichash_update(st, len, 4);
    if (value)
        crypto_generichash_update(st, (const uint8_t *)value, n);
}

static void
test_decision_link_follows_the_described_format(void **state)
{
    (void)state;
    uint8_t prev[BRK_LINK_BYTES], got[BRK_LINK_BYTES], want[BRK_LINK_BYTES];
    s_prev(prev);
    brk_chain_decision_t row = s_decision();
    brk_chain_decision(prev, &row, got);

    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, BRK_LINK_BYTES);
    crypto_generichash_update(&st, prev, BRK_LINK_BYTES);
    crypto_generichash_update(&st, (const uint8_t *)"d", 1);
    /* uuids in lowercase */
    const char *fields[] = {"43",
                            "0f8e1c2a-1b2c-4d5e-8f90-a1b2c3d4e5f6",
                            "ccas-marseille",
                            "allow",
                            "consent",
                            "9a0b1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d",
                            NULL,
                            "",
                            "1700000000123456"};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        s_put(&st, fields[i]);
    crypto_generichash_final(&st, want, BRK_LINK_BYTES);
    assert_memory_equal(got, want, BRK_LINK_BYTES);
}

/* Every field is covered: changing any one changes the link. */
static void
test_every_message_field_changes_the_link(void **state)
{
    (void)state;
    uint8_t prev[BRK_LINK_BYTES], body_hash[BRK_LINK_BYTES] = {0}, base[BRK_LINK_BYTES],
                                  other[BRK_LINK_BYTES];
    s_prev(prev);
    brk_chain_message_t row = s_message(body_hash);
    brk_chain_message(prev, &row, base);
    const char **fields[] = {&row.chain_seq,  &row.id,          &row.type,
                             &row.version,    &row.sender,      &row.subject,
                             &row.purpose,    &row.correlation, &row.occurred_at,
                             &row.received_at};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        const char *was = *fields[i];
        *fields[i] = was ? NULL : "x"; /* a NULL and a value differ */
        brk_chain_message(prev, &row, other);
        assert_memory_not_equal(base, other, BRK_LINK_BYTES);
        *fields[i] = was;
    }
    body_hash[0] = 1;
    brk_chain_message(prev, &row, other);
    assert_memory_not_equal(base, other, BRK_LINK_BYTES);
}

static void
test_hex_round_trip_and_refusals(void **state)
{
    (void)state;
    uint8_t bytes[BRK_LINK_BYTES], back[BRK_LINK_BYTES];
    s_prev(bytes);
    char hex[2 * BRK_LINK_BYTES + 3];
    brk_chain_hex(bytes, BRK_LINK_BYTES, hex);
    assert_int_equal(brk_chain_unhex(hex, back), 0);
    assert_memory_equal(bytes, back, BRK_LINK_BYTES);
    assert_int_equal(brk_chain_unhex(hex + 2, back), -1); /* no \x */
    hex[10] = 'G';
    assert_int_equal(brk_chain_unhex(hex, back), -1);
    assert_int_equal(brk_chain_unhex("\\x00", back), -1); /* too short */
    assert_int_equal(brk_chain_unhex(NULL, back), -1);
}

int
main(void)
{
    if (brk_chain_init() != 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_links_of_fixed_rows_are_stable),
        cmocka_unit_test(test_decision_link_follows_the_described_format),
        cmocka_unit_test(test_every_message_field_changes_the_link),
        cmocka_unit_test(test_hex_round_trip_and_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
