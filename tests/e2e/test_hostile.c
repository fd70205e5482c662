/*  test_hostile.c: frames built to hurt, sent to the real broker at the
    real frame limit (1 MiB), beside an agency that only wants its PING
    answered.

    - Bodies whose member names or array items are all equal, the most a
      frame can hold, are refused INVALID, and another session's PING is
      answered meanwhile: the loop is never held (the pairwise compare
      of a hash bucket held it for minutes and every session ended).
    - A member name of 200 euro signs is quoted in the REJECT as valid
      UTF-8, so the project's own client reads the REJECT and its id
      (it read ERROR MALFORMED without an id).
    - A valid PUBLISH whose keys are written as str32 is confirmed (the
      body's key was looked for in the shorter forms only: an abort in a
      debug build, MALFORMED in a release build). */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <czmq.h>
#include <msgpack.h>

#include "e2e.h"
#include "hostile.h"
#include "maillage/client.h"
#include "maillage/forms.h"
#include "maillage/limits.h"

static brokerproc_t s_bp;

static const char *s_agencies = "    cd75\n"
                                "        name = \"Departement de Paris\"\n"
                                "        publish = \"*\"\n"
                                "    ccas-paris-13\n"
                                "        name = \"CCAS Paris 13\"\n"
                                "        publish = \"referral.*\"\n";

static int
setup(void **state)
{
    (void)state;
    return e2e_broker_up(&s_bp, "e2e_hostile", "    heartbeat_ms = 1000\n", s_agencies);
}

static int
teardown(void **state)
{
    (void)state;
    return e2e_broker_down(&s_bp);
}

/* ---- bodies ----------------------------------------------------------- */

/* Room left for the envelope around a body at the frame limit. */
#define S_BODY_MAX (MLG_MAX_MESSAGE_BYTES_DEFAULT - 400)

/* {"": nil, "": nil, ...} as many as fit. */
static void
s_same_names(msgpack_packer *pk)
{
    hostile_same_names(pk, "", S_BODY_MAX);
}

/* A consent.granted whose purposes are one word, as many as fit. */
static void
s_same_purposes(msgpack_packer *pk)
{
    hostile_consent(pk, "purposes", "orientation", S_BODY_MAX);
}

/* A valid referral.created body, plus one member not allowed whose name
   is 200 euro signs. */
static void
s_euro_name(msgpack_packer *pk)
{
    char name[601];
    hostile_euros(name, 200);
    hostile_referral(pk, name);
}

/* A PUBLISH of `type` from `c` whose body `fill` writes; returns its id
   in id. */
static void
s_publish(mlg_client_t *c, const char *type, void (*fill)(msgpack_packer *), char *id)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    fill(&pk);
    mlg_msg_t *m = mlg_msg_new(MLG_OP_PUBLISH);
    brokerproc_new_id(id);
    strcpy(m->id, id);
    snprintf(m->type, sizeof(m->type), "%s", type);
    m->version = 1;
    strcpy(m->subject, "P-1");
    strcpy(m->purpose, "orientation");
    mlg_msg_add_to(m, "ccas-paris-13");
    assert_int_equal(mlg_msg_set_body(m, sb.data, sb.size), MLG_OK);
    assert_int_equal(mlg_client_send(c, m), MLG_OK);
    mlg_msg_destroy(&m);
    msgpack_sbuffer_destroy(&sb);
}

static double
s_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* ---- tests ------------------------------------------------------------ */

/* A DEALER in session as `agency`, speaking raw frames. */
static zsock_t *
s_raw_session(const char *agency)
{
    zsock_t *d = e2e_raw(&s_bp);
    e2e_raw_hello(d, agency, 0);
    return d;
}

static void
test_equal_members_do_not_hold_the_loop(void **state)
{
    (void)state;
    mlg_client_t *bad = e2e_client(&s_bp, "cd75", 0);
    zsock_t *other = s_raw_session("ccas-paris-13");
    char id1[37], id2[37];
    s_publish(bad, "referral.created", s_same_names, id1);
    s_publish(bad, "consent.granted", s_same_purposes, id2);
    /* the other agency's PING, sent behind both frames, is answered
       within seconds (each frame takes the loop a fraction of one; the
       quadratic check took minutes) */
    double t0 = s_now();
    const uint8_t ping[] = {0x81, 0xa2, 'o', 'p', 0xa4, 'P', 'I', 'N', 'G'};
    mlg_msg_t *pong = e2e_raw_exchange(other, ping, sizeof(ping), 20000);
    double took = s_now() - t0;
    if (pong->op != MLG_OP_PONG || took > 10.0)
        print_error("%s came after %.1f s\n", mlg_op_name(pong->op), took);
    assert_int_equal(pong->op, MLG_OP_PONG);
    assert_true(took <= 10.0);
    mlg_msg_destroy(&pong);
    /* and each hostile frame has its own answer */
    const char *ids[] = {id1, id2};
    const char *why[] = {"/: member appears twice", "/purposes: items 0 and 1 are equal"};
    for (int i = 0; i < 2; i++) {
        mlg_msg_t *a = brokerproc_answer(bad, 20000);
        assert_non_null(a);
        if (a->op != MLG_OP_REJECT || strcmp(a->reason, why[i]) != 0)
            print_error("got %s %s %s\n", mlg_op_name(a->op), a->code, a->reason);
        assert_int_equal(a->op, MLG_OP_REJECT);
        assert_string_equal(a->id, ids[i]);
        assert_string_equal(a->code, "INVALID");
        assert_string_equal(a->reason, why[i]);
        mlg_msg_destroy(&a);
    }
    /* both sessions are still in place */
    pong = e2e_raw_exchange(other, ping, sizeof(ping), 20000);
    assert_int_equal(pong->op, MLG_OP_PONG);
    mlg_msg_destroy(&pong);
    assert_true(mlg_client_connected(bad));
    zsock_destroy(&other);
    mlg_client_destroy(&bad);
}

static void
test_reject_quoting_a_name_is_text(void **state)
{
    (void)state;
    mlg_client_t *c = e2e_client(&s_bp, "cd75", 0);
    char id[37];
    s_publish(c, "referral.created", s_euro_name, id);
    mlg_msg_t *a = brokerproc_answer(c, 10000);
    assert_non_null(a);
    if (a->op != MLG_OP_REJECT)
        print_error("got %s %s %s\n", mlg_op_name(a->op), a->code, a->reason);
    assert_int_equal(a->op, MLG_OP_REJECT);
    assert_string_equal(a->id, id);
    assert_string_equal(a->code, "INVALID");
    assert_true(mlg_utf8_check(a->reason, strlen(a->reason), NULL));
    assert_non_null(strstr(a->reason, "/\xe2\x82\xac\xe2\x82\xac"));
    mlg_msg_destroy(&a);
    mlg_client_destroy(&c);
}

/* A msgpack string in str32 form. */
static void
s_str32(zchunk_t *out, const char *s)
{
    size_t n = strlen(s);
    uint8_t hdr[5] = {0xdb, (uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8),
                      (uint8_t)n};
    zchunk_extend(out, hdr, sizeof(hdr));
    zchunk_extend(out, s, n);
}

static void
test_str32_keys_confirmed(void **state)
{
    (void)state;
    zsock_t *d = s_raw_session("cd75");
    mlg_msg_t *m;
    char id[37];
    brokerproc_new_id(id);
    zchunk_t *frame = zchunk_new(NULL, 4096);
    const uint8_t map8 = 0x88, one = 0x01;
    zchunk_extend(frame, &map8, 1);
    const char *kv[][2] = {
        {"op", "PUBLISH"}, {"id", id},         {"type", "situation.shared"},
        {"to", NULL},      {"subject", "P-1"}, {"purpose", "coordination"}};
    for (int i = 0; i < 6; i++) {
        s_str32(frame, kv[i][0]);
        if (kv[i][1])
            s_str32(frame, kv[i][1]);
        else {
            const uint8_t array1 = 0x91;
            zchunk_extend(frame, &array1, 1);
            s_str32(frame, "ccas-paris-13");
        }
    }
    s_str32(frame, "version");
    zchunk_extend(frame, &one, 1);
    s_str32(frame, "body"); /* {"household": {"adults": 1, "children": 0},
                                "housing": "stable"} */
    const uint8_t map2 = 0x82, zero = 0x00;
    zchunk_extend(frame, &map2, 1);
    s_str32(frame, "household");
    zchunk_extend(frame, &map2, 1);
    s_str32(frame, "adults");
    zchunk_extend(frame, &one, 1);
    s_str32(frame, "children");
    zchunk_extend(frame, &zero, 1);
    s_str32(frame, "housing");
    s_str32(frame, "stable");
    m = e2e_raw_exchange(d, zchunk_data(frame), zchunk_size(frame), 20000);
    zchunk_destroy(&frame);
    if (m->op != MLG_OP_CONFIRM && m->op != MLG_OP_REJECT)
        print_error("got %s %s %s\n", mlg_op_name(m->op), m->code, m->reason);
    /* read as any valid map: a CONFIRM, or a REJECT for the body's own
       content with the id, never MALFORMED */
    assert_true(m->op == MLG_OP_CONFIRM || m->op == MLG_OP_REJECT);
    assert_string_equal(m->id, id);
    if (m->op == MLG_OP_REJECT)
        print_error("REJECT %s %s\n", m->code, m->reason);
    assert_int_equal(m->op, MLG_OP_CONFIRM);
    mlg_msg_destroy(&m);
    zsock_destroy(&d);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_str32_keys_confirmed),
        cmocka_unit_test(test_reject_quoting_a_name_is_text),
        cmocka_unit_test(test_equal_members_do_not_hold_the_loop),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
