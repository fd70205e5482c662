/*  test_codec.c: lib/codec.c and lib/mp.c.

    A round trip of every map of PROTOCOL.md; one test per rejection
    rule; byte-level malformed input (truncated, wrong types, too deep,
    huge declared lengths). Frames are built with msgpack-c's packer so
    that each test shows exactly which bytes go in. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include "maillage/codec.h"
#include "maillage/forms.h"

#define ID1 "6f1c2b7e-3d4a-4b8c-9e0f-1a2b3c4d5e6f"

/* ---- a small frame builder ----------------------------------------- */

typedef struct {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} fb_t;

static void
fb_init(fb_t *fb)
{
    msgpack_sbuffer_init(&fb->sb);
    msgpack_packer_init(&fb->pk, &fb->sb, msgpack_sbuffer_write);
}

static void
fb_str(fb_t *fb, const char *s)
{
    msgpack_pack_str_with_body(&fb->pk, s, strlen(s));
}

static void
fb_kv_str(fb_t *fb, const char *k, const char *v)
{
    fb_str(fb, k);
    fb_str(fb, v);
}

static void
fb_kv_uint(fb_t *fb, const char *k, uint64_t v)
{
    fb_str(fb, k);
    msgpack_pack_uint64(&fb->pk, v);
}

static void
fb_free(fb_t *fb)
{
    msgpack_sbuffer_destroy(&fb->sb);
}

/* Decodes and expects failure with `rc`; returns the error. */
static mlg_error_t
expect_fail(const void *data, size_t size, mlg_rc_t rc)
{
    mlg_msg_t *msg = (mlg_msg_t *)1;
    mlg_error_t err;
    mlg_rc_t got = mlg_msg_decode(data, size, &msg, &err);
    if (got != rc)
        print_error("expected %s, got %s (%s)\n", mlg_rc_wire(rc) ? mlg_rc_wire(rc) : "?",
                    mlg_rc_wire(got) ? mlg_rc_wire(got) : mlg_strerror(got), err.reason);
    assert_int_equal(got, rc);
    assert_int_equal(err.rc, rc);
    assert_null(msg);
    assert_true(strlen(err.reason) > 0);
    return err;
}

static mlg_msg_t *
expect_ok(const void *data, size_t size)
{
    mlg_msg_t *msg = NULL;
    mlg_error_t err;
    mlg_rc_t rc = mlg_msg_decode(data, size, &msg, &err);
    if (rc != MLG_OK)
        print_error("decode failed: %s\n", err.reason);
    assert_int_equal(rc, MLG_OK);
    assert_non_null(msg);
    return msg;
}

static mlg_msg_t *
roundtrip(const mlg_msg_t *in)
{
    uint8_t *data;
    size_t size;
    assert_int_equal(mlg_msg_encode(in, &data, &size), MLG_OK);
    mlg_msg_t *out = expect_ok(data, size);
    free(data);
    assert_int_equal(out->op, in->op);
    return out;
}

/* A body {"referral_id": "…", "n": 5} with 5 written as uint8 (0xcc 05),
   which a re-encoder would shorten: the codec must keep the bytes. */
static const uint8_t BODY[] = {0x82, 0xab, 'r',  'e', 'f', 'e', 'r',  'r', 'a',  'l', '_',
                               'i',  'd',  0xa3, 'a', 'b', 'c', 0xa1, 'n', 0xcc, 0x05};

/* ---- round trips ---------------------------------------------------- */

static void
test_roundtrip_hello(void **state)
{
    (void)state;
    mlg_msg_t *in = mlg_msg_new(MLG_OP_HELLO);
    strcpy(in->agency, "ccas-paris-13");
    strcpy(in->client, "legacy-sql@hôte-1");
    in->credit = 100;
    mlg_msg_t *out = roundtrip(in);
    assert_int_equal(out->v, 1);
    assert_string_equal(out->agency, "ccas-paris-13");
    assert_string_equal(out->client, "legacy-sql@hôte-1");
    assert_int_equal(out->credit, 100);
    mlg_msg_destroy(&in);
    mlg_msg_destroy(&out);
    assert_null(out);
}

static void
test_roundtrip_publish(void **state)
{
    (void)state;
    mlg_msg_t *in = mlg_msg_new(MLG_OP_PUBLISH);
    strcpy(in->id, ID1);
    strcpy(in->type, "referral.created");
    in->version = 1;
    assert_int_equal(mlg_msg_add_to(in, "ehpad-les-tilleuls"), MLG_OK);
    assert_int_equal(mlg_msg_add_to(in, "cd75"), MLG_OK);
    strcpy(in->subject, "INS-1234567890123");
    strcpy(in->purpose, "orientation");
    strcpy(in->correlation, "case-42");
    in->has_occurred_at = true;
    in->occurred_at.sec = 1767225600; /* 2026-01-01 */
    in->occurred_at.nsec = 123456000;
    assert_int_equal(mlg_msg_set_body(in, BODY, sizeof(BODY)), MLG_OK);
    mlg_msg_t *out = roundtrip(in);
    assert_string_equal(out->id, ID1);
    assert_string_equal(out->type, "referral.created");
    assert_int_equal(out->version, 1);
    assert_int_equal(out->to_count, 2);
    assert_string_equal(out->to[0].id, "ehpad-les-tilleuls");
    assert_string_equal(out->to[1].id, "cd75");
    assert_string_equal(out->subject, "INS-1234567890123");
    assert_string_equal(out->purpose, "orientation");
    assert_string_equal(out->correlation, "case-42");
    assert_true(out->has_occurred_at);
    assert_int_equal(out->occurred_at.sec, 1767225600);
    assert_int_equal(out->occurred_at.nsec, 123456000);
    assert_int_equal(out->body_len, sizeof(BODY));
    assert_memory_equal(out->body, BODY, sizeof(BODY));
    mlg_msg_destroy(&in);
    mlg_msg_destroy(&out);
}

static void
test_roundtrip_publish_minimal(void **state)
{
    (void)state;
    mlg_msg_t *in = mlg_msg_new(MLG_OP_PUBLISH);
    strcpy(in->id, ID1);
    strcpy(in->type, "service.capacity.changed");
    in->version = 3;
    mlg_msg_t *out = roundtrip(in);
    assert_int_equal(out->to_count, 0);
    assert_null(out->to);
    assert_string_equal(out->subject, "");
    assert_false(out->has_occurred_at);
    /* no body set: an empty map goes out */
    assert_int_equal(out->body_len, 1);
    assert_int_equal(out->body[0], 0x80);
    mlg_msg_destroy(&in);
    mlg_msg_destroy(&out);
}

static void
test_roundtrip_ack_nack(void **state)
{
    (void)state;
    mlg_msg_t *in = mlg_msg_new(MLG_OP_ACK);
    in->delivery = UINT64_MAX;
    mlg_msg_t *out = roundtrip(in);
    assert_true(out->delivery == UINT64_MAX);
    mlg_msg_destroy(&in);
    mlg_msg_destroy(&out);

    in = mlg_msg_new(MLG_OP_NACK);
    in->delivery = 7;
    in->requeue = true;
    strcpy(in->reason, "base de données indisponible");
    out = roundtrip(in);
    assert_int_equal(out->delivery, 7);
    assert_true(out->requeue);
    assert_string_equal(out->reason, "base de données indisponible");
    mlg_msg_destroy(&in);
    mlg_msg_destroy(&out);
}

static void
test_roundtrip_empty_ops(void **state)
{
    (void)state;
    mlg_op_t ops[] = {MLG_OP_PING, MLG_OP_BYE, MLG_OP_PONG};
    for (size_t i = 0; i < 3; i++) {
        mlg_msg_t *in = mlg_msg_new(ops[i]);
        uint8_t *data;
        size_t size;
        assert_int_equal(mlg_msg_encode(in, &data, &size), MLG_OK);
        /* {op: "PING"}: a fixmap of one pair */
        assert_int_equal(data[0], 0x81);
        mlg_msg_t *out = expect_ok(data, size);
        assert_int_equal(out->op, ops[i]);
        free(data);
        mlg_msg_destroy(&in);
        mlg_msg_destroy(&out);
    }
}

static void
test_roundtrip_welcome(void **state)
{
    (void)state;
    mlg_msg_t *in = mlg_msg_new(MLG_OP_WELCOME);
    strcpy(in->session, "s-0001");
    strcpy(in->agency, "cd75");
    in->heartbeat_ms = 1000;
    in->max_message_bytes = 1048576;
    mlg_msg_t *out = roundtrip(in);
    assert_int_equal(out->v, 1);
    assert_string_equal(out->session, "s-0001");
    assert_string_equal(out->agency, "cd75");
    assert_int_equal(out->heartbeat_ms, 1000);
    assert_int_equal(out->max_message_bytes, 1048576);
    mlg_msg_destroy(&in);
    mlg_msg_destroy(&out);
}

static void
test_roundtrip_confirm(void **state)
{
    (void)state;
    mlg_msg_t *in = mlg_msg_new(MLG_OP_CONFIRM);
    strcpy(in->id, ID1);
    in->seq = 42;
    in->duplicate = true;
    assert_int_equal(mlg_msg_add_routed(in, "cd75"), MLG_OK);
    assert_int_equal(mlg_msg_add_denied(in, "ars-idf", "NO_CONSENT"), MLG_OK);
    assert_int_equal(mlg_msg_add_denied(in, "caf-75", "REVOKED"), MLG_OK);
    mlg_msg_t *out = roundtrip(in);
    assert_string_equal(out->id, ID1);
    assert_int_equal(out->seq, 42);
    assert_true(out->duplicate);
    assert_int_equal(out->routed_count, 1);
    assert_string_equal(out->routed[0].id, "cd75");
    assert_int_equal(out->denied_count, 2);
    assert_string_equal(out->denied[0].recipient, "ars-idf");
    assert_string_equal(out->denied[0].reason, "NO_CONSENT");
    assert_string_equal(out->denied[1].recipient, "caf-75");
    assert_string_equal(out->denied[1].reason, "REVOKED");
    mlg_msg_destroy(&in);
    mlg_msg_destroy(&out);

    /* All five keys are present even when the lists are empty. */
    in = mlg_msg_new(MLG_OP_CONFIRM);
    strcpy(in->id, ID1);
    out = roundtrip(in);
    assert_int_equal(out->routed_count, 0);
    assert_int_equal(out->denied_count, 0);
    assert_false(out->duplicate);
    mlg_msg_destroy(&in);
    mlg_msg_destroy(&out);
}

/* §9's notices: a CONFIRM's name the other leg, a DELIVER's do not; a
   CONFIRM without any has no `notices` key at all. */
static void
test_roundtrip_notices(void **state)
{
    (void)state;
    mlg_msg_t *in = mlg_msg_new(MLG_OP_CONFIRM);
    strcpy(in->id, ID1);
    mlg_notice_t n = {.code = "DUPLICATE_REFERRAL",
                      .referral_id = "0d3e8a52-7c1b-4f6e-8a9d-2b4c6e8f0a1b",
                      .recipient = "ehpad-les-tilleuls",
                      .state = "waitlisted",
                      .has_since = true,
                      .since = {.sec = 1767225600, .nsec = 123456000}};
    assert_int_equal(mlg_msg_add_notice(in, &n), MLG_OK);
    mlg_notice_t bad = {.code = "not a code"};
    assert_int_equal(mlg_msg_add_notice(in, &bad), MLG_ERR_USAGE);
    mlg_msg_t *out = roundtrip(in);
    assert_int_equal(out->notices_count, 1);
    assert_string_equal(out->notices[0].code, "DUPLICATE_REFERRAL");
    assert_string_equal(out->notices[0].referral_id, n.referral_id);
    assert_string_equal(out->notices[0].recipient, "ehpad-les-tilleuls");
    assert_string_equal(out->notices[0].state, "waitlisted");
    assert_true(out->notices[0].has_since);
    assert_int_equal(out->notices[0].since.sec, 1767225600);
    assert_int_equal(out->notices[0].since.nsec, 123456000);
    mlg_msg_destroy(&in);
    mlg_msg_destroy(&out);

    in = mlg_msg_new(MLG_OP_DELIVER);
    in->delivery = 7;
    strcpy(in->id, ID1);
    strcpy(in->type, "referral.created");
    in->version = 1;
    strcpy(in->from, "cd75");
    in->attempt = 1;
    assert_int_equal(mlg_msg_set_body(in, BODY, sizeof(BODY)), MLG_OK);
    mlg_notice_t d = {.code = "DUPLICATE_REFERRAL",
                      .referral_id = "0d3e8a52-7c1b-4f6e-8a9d-2b4c6e8f0a1b",
                      .has_since = true};
    assert_int_equal(mlg_msg_add_notice(in, &d), MLG_OK);
    out = roundtrip(in);
    assert_int_equal(out->notices_count, 1);
    assert_string_equal(out->notices[0].recipient, "");
    assert_string_equal(out->notices[0].state, "");
    /* packed once, it encodes to the same bytes */
    uint8_t *a, *b;
    size_t alen, blen;
    assert_int_equal(mlg_msg_encode(in, &a, &alen), MLG_OK);
    mlg_packed_deliver_t *p = mlg_packed_deliver_new(in);
    assert_int_equal(mlg_packed_deliver_encode(p, 7, 1, &b, &blen), MLG_OK);
    assert_int_equal(alen, blen);
    assert_memory_equal(a, b, alen);
    free(a);
    free(b);
    mlg_packed_deliver_destroy(&p);
    mlg_msg_destroy(&in);
    mlg_msg_destroy(&out);

    in = mlg_msg_new(MLG_OP_CONFIRM);
    strcpy(in->id, ID1);
    assert_int_equal(mlg_msg_encode(in, &a, &alen), MLG_OK);
    for (size_t i = 0; i + 7 <= alen; i++)
        assert_false(memcmp(a + i, "notices", 7) == 0);
    free(a);
    mlg_msg_destroy(&in);
}

/* A notice that is not one is MALFORMED, with the item and the key. */
static void
test_reject_notices(void **state)
{
    (void)state;
    struct {
        const char *key, *value, *why;
    } cases[] = {
        {"code", "lower", "key 'notices': item 0 has no code as 'code'"},
        {"referral_id", "not-a-uuid",
         "key 'notices': item 0: 'referral_id' is not a uuid"},
        {"recipient", "Not An Agency",
         "key 'notices': item 0: 'recipient' is not an agency id"},
        {"state", "sent!", "key 'notices': item 0: 'state' is not a state"},
        {"state", "averyveryverylongstate",
         "key 'notices': item 0: 'state' is not a state"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fb_t fb;
        fb_init(&fb);
        msgpack_pack_map(&fb.pk, 7);
        fb_kv_str(&fb, "op", "CONFIRM");
        fb_kv_str(&fb, "id", ID1);
        fb_kv_uint(&fb, "seq", 1);
        fb_str(&fb, "duplicate");
        msgpack_pack_false(&fb.pk);
        fb_str(&fb, "routed");
        msgpack_pack_array(&fb.pk, 0);
        fb_str(&fb, "denied");
        msgpack_pack_array(&fb.pk, 0);
        fb_str(&fb, "notices");
        msgpack_pack_array(&fb.pk, 1);
        bool code = strcmp(cases[i].key, "code") == 0;
        msgpack_pack_map(&fb.pk, code ? 1 : 2);
        if (!code)
            fb_kv_str(&fb, "code", "DUPLICATE_REFERRAL");
        fb_kv_str(&fb, cases[i].key, cases[i].value);
        mlg_error_t err = expect_fail(fb.sb.data, fb.sb.size, MLG_MALFORMED);
        assert_string_equal(err.reason, cases[i].why);
        fb_free(&fb);
    }
}

static void
test_roundtrip_reject_error(void **state)
{
    (void)state;
    mlg_msg_t *in = mlg_msg_new(MLG_OP_REJECT);
    strcpy(in->id, ID1);
    strcpy(in->code, "INVALID");
    strcpy(in->reason, "/person/birth_date: not a date (YYYY-MM-DD)");
    mlg_msg_t *out = roundtrip(in);
    assert_string_equal(out->id, ID1);
    assert_string_equal(out->code, "INVALID");
    assert_int_equal(out->code_rc, MLG_INVALID);
    assert_string_equal(out->reason, "/person/birth_date: not a date (YYYY-MM-DD)");
    mlg_msg_destroy(&in);
    mlg_msg_destroy(&out);

    in = mlg_msg_new(MLG_OP_ERROR);
    strcpy(in->code, "SOME_FUTURE_CODE");
    strcpy(in->reason, "a code this library does not know is kept as text");
    out = roundtrip(in);
    assert_string_equal(out->code, "SOME_FUTURE_CODE");
    assert_int_equal(out->code_rc, MLG_OK);
    mlg_msg_destroy(&in);
    mlg_msg_destroy(&out);
}

static void
test_roundtrip_deliver(void **state)
{
    (void)state;
    mlg_msg_t *in = mlg_msg_new(MLG_OP_DELIVER);
    in->delivery = 9001;
    strcpy(in->id, ID1);
    strcpy(in->type, "referral.accepted");
    in->version = 1;
    strcpy(in->subject, "pseudo-7f3a");
    strcpy(in->purpose, "orientation");
    strcpy(in->correlation, "r-1");
    strcpy(in->from, "ccas-paris-13");
    in->received_at.sec = 1767225600;
    in->received_at.nsec = 999999999;
    in->attempt = 2;
    assert_int_equal(mlg_msg_set_body(in, BODY, sizeof(BODY)), MLG_OK);
    mlg_msg_t *out = roundtrip(in);
    assert_int_equal(out->delivery, 9001);
    assert_string_equal(out->from, "ccas-paris-13");
    assert_int_equal(out->received_at.sec, 1767225600);
    assert_int_equal(out->received_at.nsec, 999999999);
    assert_int_equal(out->attempt, 2);
    assert_string_equal(out->subject, "pseudo-7f3a");
    assert_memory_equal(out->body, BODY, sizeof(BODY));
    mlg_msg_destroy(&in);
    mlg_msg_destroy(&out);
}

/* A DELIVER packed once (the broker's read-ahead) encodes, at each
   delivery and attempt, to mlg_msg_encode's bytes exactly; with and
   without the optional keys, and with numbers of every msgpack width. */
static void
test_packed_deliver_is_the_encoding(void **state)
{
    (void)state;
    static const uint64_t numbers[] = {1,     127,           128,       65535,
                                       65536, 4294967296ull, UINT64_MAX};
    for (int optional = 0; optional < 2; optional++) {
        mlg_msg_t *in = mlg_msg_new(MLG_OP_DELIVER);
        strcpy(in->id, ID1);
        strcpy(in->type, "referral.accepted");
        in->version = 3;
        strcpy(in->from, "ccas-paris-13");
        in->received_at.sec = 1767225600;
        in->received_at.nsec = 123456000;
        if (optional) {
            strcpy(in->subject, "pseudo-7f3a");
            strcpy(in->purpose, "orientation");
            strcpy(in->correlation, "r-1");
            in->has_occurred_at = true;
            in->occurred_at.sec = 1767225000;
        }
        assert_int_equal(mlg_msg_set_body(in, BODY, sizeof(BODY)), MLG_OK);
        mlg_packed_deliver_t *packed = mlg_packed_deliver_new(in);
        assert_non_null(packed);
        assert_true(mlg_packed_deliver_size(packed) > sizeof(BODY));
        for (size_t d = 0; d < sizeof(numbers) / sizeof(numbers[0]); d++) {
            in->delivery = numbers[d];
            in->attempt = numbers[(d + 3) % (sizeof(numbers) / sizeof(numbers[0]))];
            uint8_t *want, *got;
            size_t want_len, got_len;
            assert_int_equal(mlg_msg_encode(in, &want, &want_len), MLG_OK);
            assert_int_equal(mlg_packed_deliver_encode(packed, in->delivery, in->attempt,
                                                       &got, &got_len),
                             MLG_OK);
            assert_int_equal(got_len, want_len);
            assert_memory_equal(got, want, want_len);
            mlg_msg_t *out = expect_ok(got, got_len);
            assert_int_equal(out->delivery, in->delivery);
            assert_int_equal(out->attempt, in->attempt);
            assert_int_equal(out->has_occurred_at, optional);
            mlg_msg_destroy(&out);
            free(want);
            free(got);
        }
        mlg_packed_deliver_destroy(&packed);
        assert_null(packed);
        mlg_msg_destroy(&in);
    }
}

/* Empty strings reach the codec with a NULL pointer from msgpack-c:
   an empty optional string is "absent", an empty key is just unknown. */
static void
test_empty_strings(void **state)
{
    (void)state;
    fb_t fb;
    fb_init(&fb);
    msgpack_pack_map(&fb.pk, 5);
    fb_kv_str(&fb, "op", "HELLO");
    fb_kv_uint(&fb, "v", 1);
    fb_kv_str(&fb, "agency", "cd75");
    fb_kv_str(&fb, "client", "");
    fb_kv_str(&fb, "", "");
    mlg_msg_t *msg = expect_ok(fb.sb.data, fb.sb.size);
    assert_string_equal(msg->client, "");
    mlg_msg_destroy(&msg);
    fb_free(&fb);
}

static void
test_unknown_keys_ignored(void **state)
{
    (void)state;
    fb_t fb;
    fb_init(&fb);
    msgpack_pack_map(&fb.pk, 4);
    fb_kv_str(&fb, "op", "ACK");
    fb_kv_uint(&fb, "delivery", 5);
    fb_str(&fb, "x-trace");
    msgpack_pack_array(&fb.pk, 2);
    msgpack_pack_nil(&fb.pk);
    msgpack_pack_bin_with_body(&fb.pk, "\x00\x01", 2);
    fb_str(&fb, "zz");
    msgpack_pack_map(&fb.pk, 0);
    mlg_msg_t *msg = expect_ok(fb.sb.data, fb.sb.size);
    assert_int_equal(msg->op, MLG_OP_ACK);
    assert_int_equal(msg->delivery, 5);
    mlg_msg_destroy(&msg);
    fb_free(&fb);
}

/* A string in a chosen msgpack form: 0 the shortest, 1 str8, 2 str16,
   3 str32. Other languages' libraries do not always pick the shortest. */
static void
fb_str_form(fb_t *fb, const char *s, int form)
{
    size_t n = strlen(s);
    uint8_t hdr[5];
    size_t h = 0;
    switch (form) {
    case 0: fb_str(fb, s); return;
    case 1:
        hdr[h++] = 0xd9;
        hdr[h++] = (uint8_t)n;
        break;
    case 2:
        hdr[h++] = 0xda;
        hdr[h++] = 0;
        hdr[h++] = (uint8_t)n;
        break;
    default:
        hdr[h++] = 0xdb;
        hdr[h++] = 0;
        hdr[h++] = 0;
        hdr[h++] = 0;
        hdr[h++] = (uint8_t)n;
        break;
    }
    msgpack_sbuffer_write(&fb->sb, (const char *)hdr, h);
    msgpack_sbuffer_write(&fb->sb, s, n);
}

/* Every key and text value of a PUBLISH, in each string form: the
   message and its body's exact bytes come out alike. (A str32 "body"
   key tripped an assertion: the body's span was looked for in fixstr,
   str8 and str16 only.) */
static void
test_every_string_form_read_alike(void **state)
{
    (void)state;
    for (int form = 0; form < 4; form++) {
        fb_t fb;
        fb_init(&fb);
        msgpack_pack_map(&fb.pk, 5);
        const char *kv[][2] = {
            {"op", "PUBLISH"}, {"id", ID1}, {"type", "referral.created"}};
        for (int i = 0; i < 3; i++) {
            fb_str_form(&fb, kv[i][0], form);
            fb_str_form(&fb, kv[i][1], form);
        }
        fb_str_form(&fb, "version", form);
        msgpack_pack_uint64(&fb.pk, 1);
        fb_str_form(&fb, "body", form);
        msgpack_sbuffer_write(&fb.sb, (const char *)BODY, sizeof(BODY));
        mlg_msg_t *msg = expect_ok(fb.sb.data, fb.sb.size);
        assert_int_equal(msg->op, MLG_OP_PUBLISH);
        assert_string_equal(msg->id, ID1);
        assert_string_equal(msg->type, "referral.created");
        assert_int_equal(msg->body_len, sizeof(BODY));
        assert_memory_equal(msg->body, BODY, sizeof(BODY));
        mlg_msg_destroy(&msg);
        fb_free(&fb);
    }
}

/* Whatever a REJECT's reason holds (a client's bytes quoted, too many
   characters), its frame decodes: the reason goes out as valid UTF-8 of
   at most MLG_REASON_MAX characters, cut at a character boundary. */
static void
test_encoded_reason_is_text(void **state)
{
    (void)state;
    mlg_msg_t *m = mlg_msg_new(MLG_OP_REJECT);
    strcpy(m->id, ID1);
    strcpy(m->code, "INVALID");
    strcpy(m->reason, "/body/a\xff\xc3: not valid UTF-8");
    mlg_msg_t *back = roundtrip(m);
    assert_string_equal(back->reason, "/body/a\\xFF\\xC3: not valid UTF-8");
    mlg_msg_destroy(&back);
    /* 1,200 characters of €: 1,000 go out, whole */
    m->reason[0] = '\0';
    for (int i = 0; i < 1200 && strlen(m->reason) + 4 < sizeof(m->reason); i++)
        strcat(m->reason, "€");
    back = roundtrip(m);
    size_t chars;
    assert_true(mlg_utf8_check(back->reason, strlen(back->reason), &chars));
    assert_int_equal(chars, MLG_REASON_MAX);
    mlg_msg_destroy(&back);
    mlg_msg_destroy(&m);
}

static void
test_time_us(void **state)
{
    (void)state;
    mlg_time_t t = {.sec = 1, .nsec = 999999999};
    assert_int_equal(mlg_time_us(t), 1999999);
    t = (mlg_time_t){.sec = -1, .nsec = 500000000}; /* half a second before 1970 */
    assert_int_equal(mlg_time_us(t), -500000);
    t = (mlg_time_t){.sec = 1764720000, .nsec = 1500};
    assert_int_equal(mlg_time_us(t), 1764720000000001LL);
}

/* A signed int with a non-negative value is an unsigned integer: other
   languages' msgpack libraries write them that way. */
static void
test_signed_encoding_of_uint_accepted(void **state)
{
    (void)state;
    const uint8_t frame[] = {0x82, 0xa2, 'o', 'p', 0xa3, 'A', 'C', 'K',  0xa8, 'd',
                             'e',  'l',  'i', 'v', 'e',  'r', 'y', 0xd0, 0x05};
    mlg_msg_t *msg = expect_ok(frame, sizeof(frame));
    assert_int_equal(msg->delivery, 5);
    mlg_msg_destroy(&msg);
}

/* ---- rejection rules ------------------------------------------------ */

static void
test_reject_empty_and_non_map(void **state)
{
    (void)state;
    expect_fail("", 0, MLG_MALFORMED);
    const uint8_t arr[] = {0x91, 0xa2, 'o', 'p'};
    expect_fail(arr, sizeof(arr), MLG_MALFORMED);
    const uint8_t num[] = {0x05};
    expect_fail(num, sizeof(num), MLG_MALFORMED);
    const uint8_t str[] = {0xa2, 'o', 'p'};
    expect_fail(str, sizeof(str), MLG_MALFORMED);
}

static void
test_reject_missing_op(void **state)
{
    (void)state;
    fb_t fb;
    fb_init(&fb);
    msgpack_pack_map(&fb.pk, 1);
    fb_kv_uint(&fb, "delivery", 5);
    mlg_error_t err = expect_fail(fb.sb.data, fb.sb.size, MLG_MALFORMED);
    assert_string_equal(err.reason, "missing key 'op'");
    assert_int_equal(err.op, MLG_OP_NONE);
    fb_free(&fb);
}

static void
test_reject_op_not_string(void **state)
{
    (void)state;
    fb_t fb;
    fb_init(&fb);
    msgpack_pack_map(&fb.pk, 1);
    fb_kv_uint(&fb, "op", 1);
    mlg_error_t err = expect_fail(fb.sb.data, fb.sb.size, MLG_MALFORMED);
    assert_non_null(strstr(err.reason, "'op'"));
    fb_free(&fb);
}

static void
test_reject_unknown_op(void **state)
{
    (void)state;
    const char *ops[] = {"SUBSCRIBE", "hello", "HELLO ", ""};
    for (size_t i = 0; i < 4; i++) {
        fb_t fb;
        fb_init(&fb);
        msgpack_pack_map(&fb.pk, 1);
        fb_kv_str(&fb, "op", ops[i]);
        expect_fail(fb.sb.data, fb.sb.size, MLG_UNKNOWN_OP);
        fb_free(&fb);
    }
}

static void
test_reject_non_string_key(void **state)
{
    (void)state;
    fb_t fb;
    fb_init(&fb);
    msgpack_pack_map(&fb.pk, 2);
    fb_kv_str(&fb, "op", "PING");
    msgpack_pack_int(&fb.pk, 1);
    msgpack_pack_int(&fb.pk, 2);
    mlg_error_t err = expect_fail(fb.sb.data, fb.sb.size, MLG_MALFORMED);
    assert_non_null(strstr(err.reason, "not a string"));
    fb_free(&fb);
}

static void
test_reject_duplicate_key(void **state)
{
    (void)state;
    fb_t fb;
    fb_init(&fb);
    msgpack_pack_map(&fb.pk, 3);
    fb_kv_str(&fb, "op", "ACK");
    fb_kv_uint(&fb, "delivery", 5);
    fb_kv_uint(&fb, "delivery", 6);
    mlg_error_t err = expect_fail(fb.sb.data, fb.sb.size, MLG_MALFORMED);
    assert_string_equal(err.reason, "key 'delivery' appears twice");
    fb_free(&fb);

    fb_init(&fb);
    msgpack_pack_map(&fb.pk, 2);
    fb_kv_str(&fb, "op", "PING");
    fb_kv_str(&fb, "op", "PONG");
    err = expect_fail(fb.sb.data, fb.sb.size, MLG_MALFORMED);
    assert_string_equal(err.reason, "key 'op' appears twice");
    fb_free(&fb);
}

/* HELLO with the given `v` (or none when v_kind is 0). */
static void
hello_with_v(fb_t *fb, int v_kind, uint64_t v)
{
    fb_init(fb);
    msgpack_pack_map(&fb->pk, v_kind ? 3 : 2);
    fb_kv_str(fb, "op", "HELLO");
    fb_kv_str(fb, "agency", "cd75");
    if (v_kind == 1)
        fb_kv_uint(fb, "v", v);
    else if (v_kind == 2)
        fb_kv_str(fb, "v", "1");
}

static void
test_reject_hello_version(void **state)
{
    (void)state;
    fb_t fb;
    hello_with_v(&fb, 0, 0);
    mlg_error_t err = expect_fail(fb.sb.data, fb.sb.size, MLG_MALFORMED);
    assert_string_equal(err.reason, "missing key 'v'");
    assert_int_equal(err.op, MLG_OP_HELLO);
    fb_free(&fb);

    hello_with_v(&fb, 1, 2);
    expect_fail(fb.sb.data, fb.sb.size, MLG_UNSUPPORTED_VERSION);
    fb_free(&fb);

    hello_with_v(&fb, 1, 0);
    expect_fail(fb.sb.data, fb.sb.size, MLG_UNSUPPORTED_VERSION);
    fb_free(&fb);

    hello_with_v(&fb, 2, 0);
    expect_fail(fb.sb.data, fb.sb.size, MLG_MALFORMED);
    fb_free(&fb);

    hello_with_v(&fb, 1, 1);
    mlg_msg_t *msg = expect_ok(fb.sb.data, fb.sb.size);
    assert_int_equal(msg->credit, 0); /* the default */
    mlg_msg_destroy(&msg);
    fb_free(&fb);
}

static void
test_reject_welcome_version(void **state)
{
    (void)state;
    fb_t fb;
    fb_init(&fb);
    msgpack_pack_map(&fb.pk, 6);
    fb_kv_str(&fb, "op", "WELCOME");
    fb_kv_uint(&fb, "v", 7);
    fb_kv_str(&fb, "session", "s");
    fb_kv_str(&fb, "agency", "cd75");
    fb_kv_uint(&fb, "heartbeat_ms", 1000);
    fb_kv_uint(&fb, "max_message_bytes", 1000);
    expect_fail(fb.sb.data, fb.sb.size, MLG_UNSUPPORTED_VERSION);
    fb_free(&fb);
}

static void
hello_agency(const char *agency, mlg_rc_t rc)
{
    fb_t fb;
    fb_init(&fb);
    msgpack_pack_map(&fb.pk, 3);
    fb_kv_str(&fb, "op", "HELLO");
    fb_kv_uint(&fb, "v", 1);
    fb_kv_str(&fb, "agency", agency);
    if (rc == MLG_OK) {
        mlg_msg_t *msg = expect_ok(fb.sb.data, fb.sb.size);
        assert_string_equal(msg->agency, agency);
        mlg_msg_destroy(&msg);
    }
    else {
        mlg_error_t err = expect_fail(fb.sb.data, fb.sb.size, rc);
        assert_non_null(strstr(err.reason, "'agency'"));
    }
    fb_free(&fb);
}

static void
test_reject_agency_form(void **state)
{
    (void)state;
    char max[65], over[66];
    memset(max, 'a', 64);
    max[64] = '\0';
    memset(over, 'a', 65);
    over[65] = '\0';
    hello_agency("cd75", MLG_OK);
    hello_agency("ccas-paris-13", MLG_OK);
    hello_agency("a", MLG_OK);
    hello_agency(max, MLG_OK);
    hello_agency(over, MLG_MALFORMED);
    hello_agency("", MLG_MALFORMED);
    hello_agency("CD75", MLG_MALFORMED);
    hello_agency("75cd", MLG_MALFORMED);
    hello_agency("-cd", MLG_MALFORMED);
    hello_agency("cd_75", MLG_MALFORMED);
    hello_agency("cd 75", MLG_MALFORMED);
    hello_agency("cdé", MLG_MALFORMED);
}

static void
test_reject_hello_types(void **state)
{
    (void)state;
    fb_t fb;
    /* credit negative */
    fb_init(&fb);
    msgpack_pack_map(&fb.pk, 4);
    fb_kv_str(&fb, "op", "HELLO");
    fb_kv_uint(&fb, "v", 1);
    fb_kv_str(&fb, "agency", "cd75");
    fb_str(&fb, "credit");
    msgpack_pack_int(&fb.pk, -1);
    mlg_error_t err = expect_fail(fb.sb.data, fb.sb.size, MLG_MALFORMED);
    assert_string_equal(err.reason,
                        "key 'credit' is a negative integer, not an unsigned integer");
    fb_free(&fb);

    /* client: 128 characters pass (multi-byte ones too), 129 do not */
    for (int n = 128; n <= 129; n++) {
        char client[129 * 2 + 1] = "";
        for (int i = 0; i < n; i++)
            strcat(client, "é");
        fb_init(&fb);
        msgpack_pack_map(&fb.pk, 4);
        fb_kv_str(&fb, "op", "HELLO");
        fb_kv_uint(&fb, "v", 1);
        fb_kv_str(&fb, "agency", "cd75");
        fb_kv_str(&fb, "client", client);
        if (n == 128) {
            mlg_msg_t *msg = expect_ok(fb.sb.data, fb.sb.size);
            assert_string_equal(msg->client, client);
            mlg_msg_destroy(&msg);
        }
        else {
            err = expect_fail(fb.sb.data, fb.sb.size, MLG_MALFORMED);
            assert_string_equal(err.reason, "key 'client' is too long");
        }
        fb_free(&fb);
    }

    /* client: invalid UTF-8, and a NUL inside */
    const char *bad[] = {"\xc3\x28", "\xed\xa0\x80", "\xc0\xaf"};
    for (size_t i = 0; i < 3; i++) {
        fb_init(&fb);
        msgpack_pack_map(&fb.pk, 4);
        fb_kv_str(&fb, "op", "HELLO");
        fb_kv_uint(&fb, "v", 1);
        fb_kv_str(&fb, "agency", "cd75");
        fb_kv_str(&fb, "client", bad[i]);
        err = expect_fail(fb.sb.data, fb.sb.size, MLG_MALFORMED);
        assert_string_equal(err.reason, "key 'client' is not valid UTF-8");
        fb_free(&fb);
    }
    fb_init(&fb);
    msgpack_pack_map(&fb.pk, 4);
    fb_kv_str(&fb, "op", "HELLO");
    fb_kv_uint(&fb, "v", 1);
    fb_kv_str(&fb, "agency", "cd75");
    fb_str(&fb, "client");
    msgpack_pack_str_with_body(&fb.pk, "a\0b", 3);
    err = expect_fail(fb.sb.data, fb.sb.size, MLG_MALFORMED);
    assert_string_equal(err.reason, "key 'client' contains a NUL character");
    fb_free(&fb);
}

/* A PUBLISH built key by key; `skip` leaves one key out, `over` replaces
   one key's value with whatever `writer` packs. */
typedef void (*writer_t)(msgpack_packer *pk);

static void
publish_frame(fb_t *fb, const char *skip, const char *over, writer_t writer)
{
    static const char *keys[] = {"id",          "type",        "version",
                                 "to",          "subject",     "purpose",
                                 "correlation", "occurred_at", "body"};
    size_t n = 1;
    for (size_t i = 0; i < 9; i++)
        n += !(skip && strcmp(skip, keys[i]) == 0);
    fb_init(fb);
    msgpack_pack_map(&fb->pk, n);
    fb_kv_str(fb, "op", "PUBLISH");
    for (size_t i = 0; i < 9; i++) {
        const char *k = keys[i];
        if (skip && strcmp(skip, k) == 0)
            continue;
        fb_str(fb, k);
        if (over && strcmp(over, k) == 0) {
            writer(&fb->pk);
            continue;
        }
        if (strcmp(k, "id") == 0)
            fb_str(fb, ID1);
        else if (strcmp(k, "type") == 0)
            fb_str(fb, "referral.created");
        else if (strcmp(k, "version") == 0)
            msgpack_pack_uint32(&fb->pk, 1);
        else if (strcmp(k, "to") == 0) {
            msgpack_pack_array(&fb->pk, 1);
            fb_str(fb, "cd75");
        }
        else if (strcmp(k, "subject") == 0)
            fb_str(fb, "P-1");
        else if (strcmp(k, "purpose") == 0)
            fb_str(fb, "orientation");
        else if (strcmp(k, "correlation") == 0)
            fb_str(fb, "c");
        else if (strcmp(k, "occurred_at") == 0) {
            msgpack_timestamp ts = {1700000000, 5};
            msgpack_pack_timestamp(&fb->pk, &ts);
        }
        else {
            msgpack_pack_map(&fb->pk, 1);
            fb_kv_uint(fb, "n", 1);
        }
    }
}

static void
w_int(msgpack_packer *pk)
{
    msgpack_pack_int(pk, 7);
}
static void
w_zero(msgpack_packer *pk)
{
    msgpack_pack_uint8(pk, 0);
}
static void
w_neg(msgpack_packer *pk)
{
    msgpack_pack_int(pk, -1);
}
static void
w_nil(msgpack_packer *pk)
{
    msgpack_pack_nil(pk);
}
static void
w_array(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 0);
}
static void
w_upper_uuid(msgpack_packer *pk)
{
    msgpack_pack_str_with_body(pk, "6F1C2B7E-3D4A-4B8C-9E0F-1A2B3C4D5E6F", 36);
}
static void
w_short_uuid(msgpack_packer *pk)
{
    msgpack_pack_str_with_body(pk, "6f1c2b7e-3d4a-4b8c-9e0f-1a2b3c4d5e6", 35);
}
static void
w_bad_type(msgpack_packer *pk)
{
    msgpack_pack_str_with_body(pk, "Referral.Created", 16);
}
static void
w_type_dots(msgpack_packer *pk)
{
    msgpack_pack_str_with_body(pk, "referral..created", 17);
}
static void
w_to_bad_item(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 2);
    msgpack_pack_str_with_body(pk, "cd75", 4);
    msgpack_pack_str_with_body(pk, "CCAS", 4);
}
static void
w_to_too_many(msgpack_packer *pk)
{
    msgpack_pack_array(pk, MLG_MAX_RECIPIENTS + 1);
    for (int i = 0; i <= MLG_MAX_RECIPIENTS; i++)
        msgpack_pack_str_with_body(pk, "cd75", 4);
}
static void
w_subject_long(msgpack_packer *pk)
{
    char s[130];
    memset(s, 'x', 129);
    msgpack_pack_str_with_body(pk, s, 129);
}
static void
w_subject_ctrl(msgpack_packer *pk)
{
    msgpack_pack_str_with_body(pk, "P\n1", 3);
}
static void
w_empty_str(msgpack_packer *pk)
{
    msgpack_pack_str_with_body(pk, "", 0);
}
static void
w_purpose_long(msgpack_packer *pk)
{
    char s[40];
    memset(s, 'p', 33);
    msgpack_pack_str_with_body(pk, s, 33);
}
static void
w_correlation_long(msgpack_packer *pk)
{
    char s[130];
    memset(s, 'c', 129);
    msgpack_pack_str_with_body(pk, s, 129);
}
static void
w_ts_bad_nsec(msgpack_packer *pk)
{
    /* timestamp 96: nsec 1,000,000,000 is out of range */
    const char ts[] = {0x3b, (char)0x9a, (char)0xca, 0x00, 0, 0, 0, 0, 0, 0, 0, 1};
    msgpack_pack_ext(pk, 12, -1);
    msgpack_pack_ext_body(pk, ts, 12);
}
static void
w_ts_wrong_ext(msgpack_packer *pk)
{
    msgpack_pack_ext(pk, 4, 5);
    msgpack_pack_ext_body(pk, "\0\0\0\1", 4);
}
static void
w_ts_bad_size(msgpack_packer *pk)
{
    msgpack_pack_ext(pk, 2, -1);
    msgpack_pack_ext_body(pk, "\0\1", 2);
}
static void
w_str(msgpack_packer *pk)
{
    msgpack_pack_str_with_body(pk, "x", 1);
}

typedef struct {
    const char *skip;
    const char *over;
    writer_t writer;
    const char *reason;
    bool id_known; /* the error carries the id: answer REJECT */
} publish_case_t;

static void
test_reject_publish_rules(void **state)
{
    (void)state;
    const publish_case_t cases[] = {
        {"id", NULL, NULL, "missing key 'id'", false},
        {NULL, "id", w_upper_uuid, "key 'id' is not a lowercase canonical UUID", false},
        {NULL, "id", w_short_uuid, "key 'id' is not a lowercase canonical UUID", false},
        {NULL, "id", w_int, "key 'id' is an unsigned integer, not a string", false},
        {"type", NULL, NULL, "missing key 'type'", true},
        {NULL, "type", w_bad_type, NULL, true},
        {NULL, "type", w_type_dots, NULL, true},
        {"version", NULL, NULL, "missing key 'version'", true},
        {NULL, "version", w_zero, "key 'version' must be at least 1", true},
        {NULL, "version", w_neg, NULL, true},
        {NULL, "version", w_str, "key 'version' is a string, not an unsigned integer",
         true},
        {NULL, "to", w_str, "key 'to' is a string, not an array", true},
        {NULL, "to", w_nil, "key 'to' is nil, not an array", true},
        {NULL, "to", w_to_bad_item, "key 'to': item 1 is not an agency id", true},
        {NULL, "to", w_to_too_many, "key 'to' holds 1001 agencies, at most 1000", true},
        {NULL, "subject", w_subject_long, NULL, true},
        {NULL, "subject", w_subject_ctrl, NULL, true},
        {NULL, "subject", w_empty_str, NULL, true},
        {NULL, "subject", w_int, "key 'subject' is an unsigned integer, not a string",
         true},
        {NULL, "purpose", w_purpose_long, "key 'purpose' is too long", true},
        {NULL, "correlation", w_correlation_long, "key 'correlation' is too long", true},
        {NULL, "occurred_at", w_int, NULL, true},
        {NULL, "occurred_at", w_str, NULL, true},
        {NULL, "occurred_at", w_ts_bad_nsec, NULL, true},
        {NULL, "occurred_at", w_ts_wrong_ext, NULL, true},
        {NULL, "occurred_at", w_ts_bad_size, NULL, true},
        {"body", NULL, NULL, "missing key 'body'", true},
        {NULL, "body", w_array, "key 'body' is an array, not a map", true},
        {NULL, "body", w_nil, "key 'body' is nil, not a map", true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fb_t fb;
        publish_frame(&fb, cases[i].skip, cases[i].over, cases[i].writer);
        mlg_error_t err = expect_fail(fb.sb.data, fb.sb.size, MLG_MALFORMED);
        if (cases[i].reason)
            assert_string_equal(err.reason, cases[i].reason);
        const char *key = cases[i].skip ? cases[i].skip : cases[i].over;
        assert_non_null(strstr(err.reason, key));
        assert_int_equal(err.op, MLG_OP_PUBLISH);
        assert_string_equal(err.id, cases[i].id_known ? ID1 : "");
        fb_free(&fb);
    }
    /* and the untouched frame passes */
    fb_t fb;
    publish_frame(&fb, NULL, NULL, NULL);
    mlg_msg_t *msg = expect_ok(fb.sb.data, fb.sb.size);
    assert_int_equal(msg->occurred_at.sec, 1700000000);
    assert_int_equal(msg->occurred_at.nsec, 5);
    mlg_msg_destroy(&msg);
    fb_free(&fb);
}

static void
test_reject_ack_nack(void **state)
{
    (void)state;
    fb_t fb;
    fb_init(&fb);
    msgpack_pack_map(&fb.pk, 1);
    fb_kv_str(&fb, "op", "ACK");
    mlg_error_t err = expect_fail(fb.sb.data, fb.sb.size, MLG_MALFORMED);
    assert_string_equal(err.reason, "missing key 'delivery'");
    fb_free(&fb);

    fb_init(&fb);
    msgpack_pack_map(&fb.pk, 2);
    fb_kv_str(&fb, "op", "ACK");
    fb_str(&fb, "delivery");
    msgpack_pack_double(&fb.pk, 1.0);
    err = expect_fail(fb.sb.data, fb.sb.size, MLG_MALFORMED);
    assert_string_equal(err.reason, "key 'delivery' is a float, not an unsigned integer");
    fb_free(&fb);

    fb_init(&fb);
    msgpack_pack_map(&fb.pk, 4);
    fb_kv_str(&fb, "op", "NACK");
    fb_kv_uint(&fb, "delivery", 1);
    fb_kv_uint(&fb, "requeue", 1);
    fb_kv_str(&fb, "reason", "x");
    err = expect_fail(fb.sb.data, fb.sb.size, MLG_MALFORMED);
    assert_string_equal(err.reason,
                        "key 'requeue' is an unsigned integer, not a boolean");
    fb_free(&fb);

    fb_init(&fb);
    msgpack_pack_map(&fb.pk, 3);
    fb_kv_str(&fb, "op", "NACK");
    fb_kv_uint(&fb, "delivery", 1);
    fb_str(&fb, "requeue");
    msgpack_pack_false(&fb.pk);
    err = expect_fail(fb.sb.data, fb.sb.size, MLG_MALFORMED);
    assert_string_equal(err.reason, "missing key 'reason'");
    fb_free(&fb);

    /* a reason of 1001 characters is too long */
    char *reason = malloc(1002);
    memset(reason, 'r', 1001);
    reason[1001] = '\0';
    fb_init(&fb);
    msgpack_pack_map(&fb.pk, 4);
    fb_kv_str(&fb, "op", "NACK");
    fb_kv_uint(&fb, "delivery", 1);
    fb_str(&fb, "requeue");
    msgpack_pack_false(&fb.pk);
    fb_kv_str(&fb, "reason", reason);
    err = expect_fail(fb.sb.data, fb.sb.size, MLG_MALFORMED);
    assert_string_equal(err.reason, "key 'reason' is too long");
    fb_free(&fb);
    free(reason);
}

/* A CONFIRM of `members` keys, its first five written: op, id, seq,
   duplicate (false) and routed (empty). */
static void
fb_confirm_head(fb_t *fb, uint32_t members)
{
    fb_init(fb);
    msgpack_pack_map(&fb->pk, members);
    fb_kv_str(fb, "op", "CONFIRM");
    fb_kv_str(fb, "id", ID1);
    fb_kv_uint(fb, "seq", 1);
    fb_str(fb, "duplicate");
    msgpack_pack_false(&fb->pk);
    fb_str(fb, "routed");
    msgpack_pack_array(&fb->pk, 0);
}

static void
test_reject_confirm_denied(void **state)
{
    (void)state;
    fb_t fb;
    fb_confirm_head(&fb, 6);
    fb_str(&fb, "denied");
    msgpack_pack_array(&fb.pk, 1);
    msgpack_pack_map(&fb.pk, 1);
    fb_kv_str(&fb, "recipient", "cd75");
    mlg_error_t err = expect_fail(fb.sb.data, fb.sb.size, MLG_MALFORMED);
    assert_string_equal(err.reason, "key 'denied': item 0 has no code as 'reason'");
    fb_free(&fb);

    /* CONFIRM without `denied`: all five keys are required */
    fb_confirm_head(&fb, 5);
    err = expect_fail(fb.sb.data, fb.sb.size, MLG_MALFORMED);
    assert_string_equal(err.reason, "missing key 'denied'");
    fb_free(&fb);
}

static void
test_reject_code_form(void **state)
{
    (void)state;
    fb_t fb;
    fb_init(&fb);
    msgpack_pack_map(&fb.pk, 3);
    fb_kv_str(&fb, "op", "ERROR");
    fb_kv_str(&fb, "code", "malformed");
    fb_kv_str(&fb, "reason", "x");
    mlg_error_t err = expect_fail(fb.sb.data, fb.sb.size, MLG_MALFORMED);
    assert_non_null(strstr(err.reason, "'code'"));
    fb_free(&fb);
}

static void
test_reject_deliver_attempt_zero(void **state)
{
    (void)state;
    mlg_msg_t *in = mlg_msg_new(MLG_OP_DELIVER);
    in->delivery = 1;
    strcpy(in->id, ID1);
    strcpy(in->type, "a.b");
    in->version = 1;
    strcpy(in->from, "cd75");
    in->attempt = 0;
    uint8_t *data;
    size_t size;
    assert_int_equal(mlg_msg_encode(in, &data, &size), MLG_OK);
    mlg_error_t err = expect_fail(data, size, MLG_MALFORMED);
    assert_string_equal(err.reason, "key 'attempt' must be at least 1");
    free(data);
    mlg_msg_destroy(&in);
}

/* ---- bytes ---------------------------------------------------------- */

/* Every prefix of a valid frame is refused, and nothing reads past it
   (ASan checks that: each prefix is copied to a buffer of its size). */
static void
test_truncated_everywhere(void **state)
{
    (void)state;
    fb_t fb;
    publish_frame(&fb, NULL, NULL, NULL);
    for (size_t n = 0; n < fb.sb.size; n++) {
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, fb.sb.data, n);
        expect_fail(copy, n, MLG_MALFORMED);
        free(copy);
    }
    fb_free(&fb);
}

static void
test_trailing_bytes(void **state)
{
    (void)state;
    const uint8_t frame[] = {0x81, 0xa2, 'o', 'p', 0xa4, 'P', 'I', 'N', 'G', 0xc0};
    mlg_error_t err = expect_fail(frame, sizeof(frame), MLG_MALFORMED);
    assert_non_null(strstr(err.reason, "after the end"));
    mlg_msg_t *msg = expect_ok(frame, sizeof(frame) - 1);
    mlg_msg_destroy(&msg);
}

static void
test_nested_too_deep(void **state)
{
    (void)state;
    /* PING with an unknown key holding arrays nested `depth` deep. */
    for (int depth = MLG_MAX_DEPTH - 2; depth <= MLG_MAX_DEPTH + 40; depth++) {
        fb_t fb;
        fb_init(&fb);
        msgpack_pack_map(&fb.pk, 2);
        fb_kv_str(&fb, "op", "PING");
        fb_str(&fb, "deep");
        for (int i = 0; i < depth; i++)
            msgpack_pack_array(&fb.pk, 1);
        msgpack_pack_nil(&fb.pk);
        /* The envelope is level 1, so the limit leaves MAX_DEPTH - 1. */
        if (depth <= MLG_MAX_DEPTH - 1) {
            mlg_msg_t *msg = expect_ok(fb.sb.data, fb.sb.size);
            mlg_msg_destroy(&msg);
        }
        else {
            mlg_error_t err = expect_fail(fb.sb.data, fb.sb.size, MLG_MALFORMED);
            assert_non_null(strstr(err.reason, "nested too deep"));
        }
        fb_free(&fb);
    }
}

static void
test_huge_declared_lengths(void **state)
{
    (void)state;
    /* {"op": <header declaring ~4 GiB>} for each kind of length */
    const uint8_t headers[][6] = {
        {0xdd, 0xff, 0xff, 0xff, 0xff}, /* array32 */
        {0xdf, 0xff, 0xff, 0xff, 0xff}, /* map32 */
        {0xdb, 0xff, 0xff, 0xff, 0xff}, /* str32 */
        {0xc6, 0xff, 0xff, 0xff, 0xff}, /* bin32 */
        {0xc9, 0xff, 0xff, 0xff, 0xff}, /* ext32 */
        {0xdc, 0xff, 0xff, 0, 0},       /* array16 */
        {0xde, 0xff, 0xff, 0, 0},       /* map16 */
        {0xda, 0xff, 0xff, 0, 0},       /* str16 */
    };
    for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
        size_t hlen =
            (headers[i][0] == 0xdc || headers[i][0] == 0xde || headers[i][0] == 0xda) ? 3
                                                                                      : 5;
        uint8_t frame[16] = {0x81, 0xa2, 'o', 'p'};
        memcpy(frame + 4, headers[i], hlen);
        mlg_error_t err = expect_fail(frame, 4 + hlen, MLG_MALFORMED);
        assert_non_null(strstr(err.reason, "past the end"));
    }
    /* the same as the whole frame: a map32 declaring 2^32-1 pairs */
    const uint8_t top[] = {0xdf, 0xff, 0xff, 0xff, 0xff, 0xa2, 'o', 'p'};
    expect_fail(top, sizeof(top), MLG_MALFORMED);
}

static void
test_reserved_byte(void **state)
{
    (void)state;
    const uint8_t frame[] = {0x82, 0xa2, 'o', 'p',  0xa4, 'P',
                             'I',  'N',  'G', 0xa1, 'x',  0xc1};
    mlg_error_t err = expect_fail(frame, sizeof(frame), MLG_MALFORMED);
    assert_non_null(strstr(err.reason, "0xc1"));
}

static void
test_rc_names(void **state)
{
    (void)state;
    for (int rc = MLG_MALFORMED; rc <= MLG_UNKNOWN_DELIVERY; rc++) {
        const char *name = mlg_rc_wire((mlg_rc_t)rc);
        assert_non_null(name);
        assert_int_equal(mlg_rc_from_wire(name), rc);
        assert_string_not_equal(mlg_strerror((mlg_rc_t)rc), "unknown error");
    }
    assert_null(mlg_rc_wire(MLG_OK));
    assert_null(mlg_rc_wire(MLG_ERR_NOMEM));
    assert_int_equal(mlg_rc_from_wire("NOPE"), MLG_OK);
    for (int op = MLG_OP_HELLO; op < MLG_OP_COUNT; op++)
        assert_non_null(mlg_op_name((mlg_op_t)op));
    assert_null(mlg_op_name(MLG_OP_NONE));
}

static void
test_add_checks(void **state)
{
    (void)state;
    mlg_msg_t *msg = mlg_msg_new(MLG_OP_PUBLISH);
    assert_int_equal(mlg_msg_add_to(msg, "Not An Agency"), MLG_ERR_USAGE);
    assert_int_equal(mlg_msg_add_denied(msg, "cd75", "no consent"), MLG_ERR_USAGE);
    for (int i = 0; i < MLG_MAX_RECIPIENTS; i++)
        assert_int_equal(mlg_msg_add_to(msg, "cd75"), MLG_OK);
    assert_int_equal(mlg_msg_add_to(msg, "cd75"), MLG_ERR_USAGE);
    mlg_msg_destroy(&msg);
    mlg_msg_destroy(&msg); /* NULL-safe */
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_hello),
        cmocka_unit_test(test_roundtrip_publish),
        cmocka_unit_test(test_roundtrip_publish_minimal),
        cmocka_unit_test(test_roundtrip_ack_nack),
        cmocka_unit_test(test_roundtrip_empty_ops),
        cmocka_unit_test(test_roundtrip_welcome),
        cmocka_unit_test(test_roundtrip_confirm),
        cmocka_unit_test(test_roundtrip_notices),
        cmocka_unit_test(test_reject_notices),
        cmocka_unit_test(test_roundtrip_reject_error),
        cmocka_unit_test(test_roundtrip_deliver),
        cmocka_unit_test(test_packed_deliver_is_the_encoding),
        cmocka_unit_test(test_empty_strings),
        cmocka_unit_test(test_unknown_keys_ignored),
        cmocka_unit_test(test_every_string_form_read_alike),
        cmocka_unit_test(test_encoded_reason_is_text),
        cmocka_unit_test(test_time_us),
        cmocka_unit_test(test_signed_encoding_of_uint_accepted),
        cmocka_unit_test(test_reject_empty_and_non_map),
        cmocka_unit_test(test_reject_missing_op),
        cmocka_unit_test(test_reject_op_not_string),
        cmocka_unit_test(test_reject_unknown_op),
        cmocka_unit_test(test_reject_non_string_key),
        cmocka_unit_test(test_reject_duplicate_key),
        cmocka_unit_test(test_reject_hello_version),
        cmocka_unit_test(test_reject_welcome_version),
        cmocka_unit_test(test_reject_agency_form),
        cmocka_unit_test(test_reject_hello_types),
        cmocka_unit_test(test_reject_publish_rules),
        cmocka_unit_test(test_reject_ack_nack),
        cmocka_unit_test(test_reject_confirm_denied),
        cmocka_unit_test(test_reject_code_form),
        cmocka_unit_test(test_reject_deliver_attempt_zero),
        cmocka_unit_test(test_truncated_everywhere),
        cmocka_unit_test(test_trailing_bytes),
        cmocka_unit_test(test_nested_too_deep),
        cmocka_unit_test(test_huge_declared_lengths),
        cmocka_unit_test(test_reserved_byte),
        cmocka_unit_test(test_rc_names),
        cmocka_unit_test(test_add_checks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
