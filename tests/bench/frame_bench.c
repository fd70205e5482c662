/*  frame_bench.c: the broker's work on the worst PUBLISH frames we can
    build at the frame limit (1 MiB), step by step.

    Each frame is built here (repeated member names, repeated array
    items, nesting at the depth limit, long strings, a crowded envelope,
    the most recipients) and run through what the event loop does with a
    PUBLISH, in its order: decode (lib/codec.c), validate against the
    schema (lib/validate.c), the envelope rules (lib/envelope.c), then
    the consent body (broker/consent_event.c) or routing
    (broker/router.c). It prints, per frame, its size, the answer and the
    milliseconds of each step (the median of --runs runs), so that the
    slowest frame a client can send is a number, not a guess.

    Usage: frame-bench [--runs N] [--json]   (MLG_SOURCE_DIR: the tree)
    Not a test: it asserts nothing about speed (tests/e2e/test_broker.c
    checks that such frames leave the loop free). */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <msgpack.h>

#include "config.h"
#include "consent.h"
#include "consent_event.h"
#include "maillage/codec.h"
#include "maillage/forms.h"
#include "maillage/limits.h"
#include "maillage/schema.h"
#include "registry.h"
#include "router.h"

#define S_LIMIT MLG_MAX_MESSAGE_BYTES_DEFAULT
#define S_ROOM 512 /* bytes left for the envelope */

static const char *s_config = "broker\n"
                              "    endpoint = tcp://127.0.0.1:1\n"
                              "    database = postgresql://x@127.0.0.1:1/x\n"
                              "    schemas = /nonexistent\n"
                              "security\n"
                              "    curve = 0\n"
                              "agencies\n"
                              "    cd75\n"
                              "        name = a\n"
                              "        publish = \"*\"\n"
                              "    ccas-paris-13\n"
                              "        name = b\n"
                              "        subscribe = \"*\"\n";

/* ---- building frames --------------------------------------------- */

typedef struct {
    const char *name;
    const char *type;
    msgpack_sbuffer body;
    size_t junk_keys; /* extra "" keys in the envelope */
    size_t recipients;
} s_frame_t;

static void
s_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

/* The bytes msgpack takes for a string of len bytes. */
static size_t
s_str_bytes(size_t len)
{
    return len + (len < 32 ? 1 : len < 256 ? 2 : len < 65536 ? 3 : 5);
}

/* How many items of item_bytes fit in what is left of the frame. */
static size_t
s_fit(size_t item_bytes, size_t used)
{
    return (S_LIMIT - S_ROOM - used) / item_bytes;
}

/* A referral.created body whose members are all named "" (or `key`). */
static void
s_body_same_keys(msgpack_packer *pk, const char *key)
{
    size_t klen = strlen(key);
    size_t n = s_fit(s_str_bytes(klen) + 1, 5);
    msgpack_pack_map(pk, n);
    for (size_t i = 0; i < n; i++) {
        msgpack_pack_str(pk, klen);
        msgpack_pack_str_body(pk, key, klen);
        msgpack_pack_nil(pk);
    }
}

/* Distinct member names of `len` bytes that differ only at the end. */
static void
s_body_long_keys(msgpack_packer *pk, size_t len)
{
    size_t n = s_fit(s_str_bytes(len) + 1, 5);
    char *k = malloc(len);
    memset(k, 'k', len);
    msgpack_pack_map(pk, n);
    for (size_t i = 0; i < n; i++) {
        /* n is far below 2^32 in a 1 MiB frame: 8 hex digits tell them apart */
        snprintf(k + len - 9, 9, "%08x", (unsigned)(i & 0xffffffffu));
        k[len - 1] = 'k';
        msgpack_pack_str(pk, len);
        msgpack_pack_str_body(pk, k, len);
        msgpack_pack_nil(pk);
    }
    free(k);
}

/* A consent.granted, valid but for one array filled with one word. */
static void
s_body_consent(msgpack_packer *pk, const char *array, const char *word)
{
    msgpack_pack_map(pk, 7);
    s_str(pk, "consent_id");
    s_str(pk, "0b7a3c2e-5f1d-4c8e-9a6b-3d2f1e0c9b8a");
    s_str(pk, "parties");
    msgpack_pack_array(pk, 2);
    s_str(pk, "cd75");
    s_str(pk, "ccas-paris-13");
    const char *names[] = {"purposes", "categories"};
    const char *words[] = {"orientation", "social"};
    for (int a = 0; a < 2; a++) {
        s_str(pk, names[a]);
        if (strcmp(array, names[a]) != 0) {
            msgpack_pack_array(pk, 1);
            s_str(pk, words[a]);
            continue;
        }
        size_t n = s_fit(s_str_bytes(strlen(word)), 300);
        msgpack_pack_array(pk, n);
        for (size_t i = 0; i < n; i++)
            s_str(pk, word);
    }
    s_str(pk, "valid_from");
    s_str(pk, "2026-01-01T00:00:00Z");
    s_str(pk, "collected_by");
    msgpack_pack_map(pk, 2);
    s_str(pk, "name");
    s_str(pk, "x");
    s_str(pk, "role");
    s_str(pk, "y");
    s_str(pk, "method");
    s_str(pk, "written");
}

/* A body nested at the depth limit, again and again: {"reason":
   [[[...]]], ...} with arrays 31 deep, as many as fit. */
static void
s_body_deep(msgpack_packer *pk)
{
    int depth = MLG_MAX_DEPTH - 2; /* the body map and the envelope map */
    size_t n = s_fit((size_t)depth + 1, 16);
    msgpack_pack_map(pk, 1);
    s_str(pk, "referral_id");
    msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++) {
        for (int d = 0; d < depth - 1; d++)
            msgpack_pack_array(pk, 1);
        msgpack_pack_nil(pk);
    }
}

/* One string as long as the frame allows, of 3-byte characters. */
static void
s_body_long_string(msgpack_packer *pk, const char *member)
{
    size_t n = s_fit(3, 32);
    char *s = malloc(n * 3);
    for (size_t i = 0; i < n; i++)
        memcpy(s + 3 * i, "\xe2\x82\xac", 3); /* € */
    msgpack_pack_map(pk, 1);
    s_str(pk, member);
    msgpack_pack_str(pk, n * 3);
    msgpack_pack_str_body(pk, s, n * 3);
    free(s);
}

/* Many small maps, each checked for repeated names. */
static void
s_body_many_maps(msgpack_packer *pk)
{
    size_t n = s_fit(4, 16);
    msgpack_pack_map(pk, 1);
    s_str(pk, "requested_by");
    msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++) {
        msgpack_pack_map(pk, 1);
        msgpack_pack_str(pk, 0);
        msgpack_pack_nil(pk);
    }
}

/* A valid referral.created body. */
static void
s_body_referral(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 5);
    s_str(pk, "referral_id");
    s_str(pk, "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f");
    s_str(pk, "service");
    s_str(pk, "home-care");
    s_str(pk, "reason");
    s_str(pk, "x");
    s_str(pk, "priority");
    s_str(pk, "routine");
    s_str(pk, "requested_by");
    msgpack_pack_map(pk, 2);
    s_str(pk, "name");
    s_str(pk, "x");
    s_str(pk, "role");
    s_str(pk, "y");
}

/* The whole PUBLISH frame, in `out`. */
static void
s_frame(const s_frame_t *f, msgpack_sbuffer *out)
{
    msgpack_sbuffer_init(out);
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 8 + f->junk_keys);
    s_str(&pk, "op");
    s_str(&pk, "PUBLISH");
    s_str(&pk, "id");
    s_str(&pk, "7f3e2d1c-0b9a-4877-9655-443322110000");
    s_str(&pk, "type");
    s_str(&pk, f->type);
    s_str(&pk, "version");
    msgpack_pack_uint64(&pk, 1);
    s_str(&pk, "subject");
    s_str(&pk, "person-1");
    s_str(&pk, "purpose");
    s_str(&pk, "orientation");
    s_str(&pk, "to");
    msgpack_pack_array(&pk, f->recipients);
    for (size_t i = 0; i < f->recipients; i++)
        s_str(&pk, "ccas-paris-13");
    for (size_t i = 0; i < f->junk_keys; i++) {
        msgpack_pack_str(&pk, 0);
        msgpack_pack_nil(&pk);
    }
    s_str(&pk, "body");
    msgpack_sbuffer_write(out, f->body.data, f->body.size);
}

/* ---- running them ------------------------------------------------- */

typedef struct {
    const mlg_registry_t *reg;
    const brk_config_t *cfg;
    const brk_consents_t *consents;
} s_ctx_t;

enum { S_DECODE, S_VALIDATE, S_ENVELOPE, S_BODY, S_STEPS };
static const char *s_step_names[S_STEPS] = {"decode", "validate", "envelope", "route"};

static double
s_ms(struct timespec a, struct timespec b)
{
    return (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
}

/* One pass of the loop's steps; fills ms[] and the answer. */
static void
s_run(const s_ctx_t *ctx, const msgpack_sbuffer *frame, double ms[S_STEPS], char *answer,
      size_t alen)
{
    struct timespec t[S_STEPS + 1];
    char reason[768] = "";
    mlg_error_t err;
    mlg_msg_t *m = NULL;
    memset(ms, 0, S_STEPS * sizeof(double));
    clock_gettime(CLOCK_MONOTONIC, &t[0]);
    mlg_rc_t rc = mlg_msg_decode(frame->data, frame->size, &m, &err);
    clock_gettime(CLOCK_MONOTONIC, &t[1]);
    ms[S_DECODE] = s_ms(t[0], t[1]);
    if (rc != MLG_OK) {
        char cut[256];
        mlg_text_clean(cut, sizeof(cut), err.reason, strlen(err.reason), 60);
        snprintf(answer, alen, "%s: %s", mlg_rc_wire(rc), cut);
        return;
    }
    const mlg_schema_t *schema = mlg_registry_find(ctx->reg, m->type, m->version);
    rc = mlg_schema_validate_msg(schema, m, reason, sizeof(reason));
    clock_gettime(CLOCK_MONOTONIC, &t[2]);
    ms[S_VALIDATE] = s_ms(t[1], t[2]);
    if (rc == MLG_OK) {
        rc = mlg_envelope_check(ctx->reg, schema, m, "cd75", reason, sizeof(reason));
        clock_gettime(CLOCK_MONOTONIC, &t[3]);
        ms[S_ENVELOPE] = s_ms(t[2], t[3]);
    }
    if (rc == MLG_OK) {
        brk_decision_t *d = NULL;
        size_t n = 0;
        brk_consent_t *grant = NULL;
        if (strcmp(m->type, "consent.granted") == 0)
            rc = brk_consent_grant(ctx->consents, m, "cd75", &grant, reason,
                                   sizeof(reason));
        else
            rc = brk_route(ctx->cfg, ctx->consents, schema, m, "cd75", 0, &d, &n, reason,
                           sizeof(reason));
        clock_gettime(CLOCK_MONOTONIC, &t[4]);
        ms[S_BODY] = s_ms(t[3], t[4]);
        brk_consent_destroy(&grant);
        free(d);
    }
    /* 60 characters of the reason, cut between two of them */
    char cut[256];
    mlg_text_clean(cut, sizeof(cut), reason, strlen(reason), 60);
    snprintf(answer, alen, "%s%s%s", rc == MLG_OK ? "OK" : mlg_rc_wire(rc),
             rc == MLG_OK ? "" : ": ", rc == MLG_OK ? "" : cut);
    mlg_msg_destroy(&m);
}

static int
s_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
    int runs = 5;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (strcmp(argv[i], "--json") == 0)
            json = true;
        else {
            fprintf(stderr, "usage: frame-bench [--runs N] [--json]\n");
            return 2;
        }
    }
    if (runs < 1 || runs > 1000)
        runs = 5;
    mlg_registry_t *reg = test_load_registry();
    char err[512];
    brk_config_t *cfg = brk_config_parse(s_config, "frame-bench.cfg", err, sizeof(err));
    brk_consents_t *consents = brk_consents_new();
    if (!reg || !cfg || !consents) {
        fprintf(stderr, "frame-bench: could not set up: %s\n", cfg ? "schemas" : err);
        return 1;
    }
    s_ctx_t ctx = {reg, cfg, consents};

    s_frame_t frames[] = {
        {"members all named the empty string", "referral.created", {0}, 0, 1},
        {"members all named 200 euro signs", "referral.created", {0}, 0, 1},
        {"distinct 1000-byte member names", "referral.created", {0}, 0, 1},
        {"consent: one purpose repeated", "consent.granted", {0}, 0, 0},
        {"consent: one category repeated", "consent.granted", {0}, 0, 0},
        {"arrays nested at the depth limit", "referral.created", {0}, 0, 1},
        {"one long string (reason)", "referral.created", {0}, 0, 1},
        {"many one-member maps", "referral.created", {0}, 0, 1},
        {"envelope: keys all the empty string", "referral.created", {0}, 0, 1},
        {"1000 recipients, one agency", "referral.created", {0}, 0, MLG_MAX_RECIPIENTS},
    };
    size_t nframes = sizeof(frames) / sizeof(frames[0]);
    char euro[601] = "";
    for (int i = 0; i < 200; i++)
        strcat(euro, "\xe2\x82\xac");
    for (size_t f = 0; f < nframes; f++) {
        msgpack_sbuffer_init(&frames[f].body);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &frames[f].body, msgpack_sbuffer_write);
        switch (f) {
        case 0: s_body_same_keys(&pk, ""); break;
        case 1: s_body_same_keys(&pk, euro); break;
        case 2: s_body_long_keys(&pk, 1000); break;
        case 3: s_body_consent(&pk, "purposes", "orientation"); break;
        case 4: s_body_consent(&pk, "categories", "social"); break;
        case 5: s_body_deep(&pk); break;
        case 6: s_body_long_string(&pk, "reason"); break;
        case 7: s_body_many_maps(&pk); break;
        case 8:
            s_body_referral(&pk);
            frames[f].junk_keys = s_fit(2, frames[f].body.size);
            break;
        default: s_body_referral(&pk); break;
        }
    }

    if (json)
        printf("[");
    else
        printf("%-36s %9s %9s %9s %9s %9s %9s  %s\n", "frame (1 MiB limit)", "bytes",
               "decode", "validate", "envelope", "route", "total ms", "answer");
    for (size_t f = 0; f < nframes; f++) {
        msgpack_sbuffer frame;
        s_frame(&frames[f], &frame);
        double samples[S_STEPS][1000], total[1000];
        char answer[320] = "";
        for (int r = 0; r < runs; r++) {
            double ms[S_STEPS];
            s_run(&ctx, &frame, ms, answer, sizeof(answer));
            total[r] = 0;
            for (int s = 0; s < S_STEPS; s++) {
                samples[s][r] = ms[s];
                total[r] += ms[s];
            }
        }
        double med[S_STEPS];
        for (int s = 0; s < S_STEPS; s++) {
            qsort(samples[s], (size_t)runs, sizeof(double), s_cmp_double);
            med[s] = samples[s][runs / 2];
        }
        qsort(total, (size_t)runs, sizeof(double), s_cmp_double);
        if (json) {
            printf("%s\n {\"frame\": \"%s\", \"bytes\": %zu", f ? "," : "",
                   frames[f].name, frame.size);
            for (int s = 0; s < S_STEPS; s++)
                printf(", \"%s_ms\": %.3f", s_step_names[s], med[s]);
            printf(", \"total_ms\": %.3f, \"max_total_ms\": %.3f}", total[runs / 2],
                   total[runs - 1]);
        }
        else
            printf("%-36.36s %9zu %9.3f %9.3f %9.3f %9.3f %9.3f  %s\n", frames[f].name,
                   frame.size, med[0], med[1], med[2], med[3], total[runs / 2], answer);
        fflush(stdout);
        msgpack_sbuffer_destroy(&frame);
        msgpack_sbuffer_destroy(&frames[f].body);
    }
    if (json)
        printf("\n]\n");
    brk_consents_destroy(&consents);
    brk_config_destroy(&cfg);
    mlg_registry_destroy(&reg);
    return 0;
}
