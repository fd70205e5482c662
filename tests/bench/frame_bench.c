/*  frame_bench.c: the broker's work on the worst PUBLISH frames we can
    build at the frame limit (1 MiB), step by step.

    Each frame is built by fuzz/hostile.c (repeated member names,
    repeated array items, nesting at the depth limit, long strings, a
    crowded envelope, the most recipients) and run through what the event loop does with a
    PUBLISH, in its order: decode (lib/codec.c), validate against the
    schema (lib/validate.c), the envelope rules (lib/envelope.c), then
    the consent body (broker/consent_event.c) or routing
    (broker/router.c). It prints, per frame, its size, the answer and the
    milliseconds of each step (the median of --runs runs), so that the
    slowest frame a client can send is a number, not a guess.

    Usage: frame-bench [--runs N] [--json]   (MLG_SOURCE_DIR: the tree)
    Not a test: it asserts nothing about speed (tests/e2e/test_hostile.c
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
#include "hostile.h"
#include "maillage/codec.h"
#include "maillage/forms.h"
#include "maillage/limits.h"
#include "maillage/schema.h"
#include "registry.h"
#include "router.h"

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

/* ---- the frames (hostile.c builds them) -------------------------- */

typedef enum {
    S_SAME_EMPTY,
    S_SAME_EURO,
    S_LONG_NAMES,
    S_SAME_PURPOSES,
    S_SAME_CATEGORIES,
    S_DEEP,
    S_LONG_STRING,
    S_MANY_MAPS,
    S_JUNK_KEYS,
    S_RECIPIENTS,
} s_kind_t;

typedef struct {
    const char *name;
    const char *type;
    s_kind_t kind;
    size_t recipients;
} s_frame_t;

static const s_frame_t s_frames[] = {
    {"members all named the empty string", "referral.created", S_SAME_EMPTY, 1},
    {"members all named 200 euro signs", "referral.created", S_SAME_EURO, 1},
    {"distinct 1000-byte member names", "referral.created", S_LONG_NAMES, 1},
    {"consent: one purpose repeated", "consent.granted", S_SAME_PURPOSES, 0},
    {"consent: one category repeated", "consent.granted", S_SAME_CATEGORIES, 0},
    {"arrays nested at the depth limit", "referral.created", S_DEEP, 1},
    {"one long string (reason)", "referral.created", S_LONG_STRING, 1},
    {"many one-member maps", "referral.created", S_MANY_MAPS, 1},
    {"envelope: keys all the empty string", "referral.created", S_JUNK_KEYS, 1},
    {"1000 recipients, one agency", "referral.created", S_RECIPIENTS, MLG_MAX_RECIPIENTS},
};
#define S_NFRAMES (sizeof(s_frames) / sizeof(s_frames[0]))

/* The whole PUBLISH frame `f`, in `out`. */
static void
s_frame(const s_frame_t *f, msgpack_sbuffer *out)
{
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
    char euro[601];
    size_t junk = 0;
    switch (f->kind) {
    case S_SAME_EMPTY: hostile_same_names(&pk, "", HOSTILE_BODY_MAX); break;
    case S_SAME_EURO:
        hostile_euros(euro, 200);
        hostile_same_names(&pk, euro, HOSTILE_BODY_MAX);
        break;
    case S_LONG_NAMES: hostile_close_names(&pk, 1000, 0, HOSTILE_BODY_MAX); break;
    case S_SAME_PURPOSES:
        hostile_consent(&pk, "purposes", "orientation", HOSTILE_BODY_MAX);
        break;
    case S_SAME_CATEGORIES:
        hostile_consent(&pk, "categories", "social", HOSTILE_BODY_MAX);
        break;
    case S_DEEP: hostile_deep(&pk, HOSTILE_BODY_MAX); break;
    case S_LONG_STRING: hostile_long_string(&pk, "reason", HOSTILE_BODY_MAX); break;
    case S_MANY_MAPS: hostile_many_maps(&pk, HOSTILE_BODY_MAX); break;
    case S_JUNK_KEYS:
        hostile_referral(&pk, NULL);
        junk = (HOSTILE_BODY_MAX - body.size) / 2;
        break;
    case S_RECIPIENTS: hostile_referral(&pk, NULL); break;
    }
    hostile_publish(out, f->type, f->recipients, junk, body.data, body.size);
    msgpack_sbuffer_destroy(&body);
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

/* --runs N and --json; false (after the usage line) on anything else. */
static bool
s_args(int argc, char **argv, int *runs, bool *json)
{
    *runs = 5;
    *json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
            *runs = atoi(argv[++i]);
        else if (strcmp(argv[i], "--json") == 0)
            *json = true;
        else {
            fprintf(stderr, "usage: frame-bench [--runs N] [--json]\n");
            return false;
        }
    }
    if (*runs < 1 || *runs > 1000)
        *runs = 5;
    return true;
}

/* One frame's figures: the median of each step, the median and the
   largest total, and the answer. */
typedef struct {
    double med[S_STEPS];
    double total_med, total_max;
    char answer[320];
} s_result_t;

/* Runs `frame` `runs` times through the loop's steps. */
static void
s_measure(const s_ctx_t *ctx, const msgpack_sbuffer *frame, int runs, s_result_t *res)
{
    double samples[S_STEPS][1000], total[1000];
    res->answer[0] = '\0';
    for (int r = 0; r < runs; r++) {
        double ms[S_STEPS];
        s_run(ctx, frame, ms, res->answer, sizeof(res->answer));
        total[r] = 0;
        for (int s = 0; s < S_STEPS; s++) {
            samples[s][r] = ms[s];
            total[r] += ms[s];
        }
    }
    for (int s = 0; s < S_STEPS; s++) {
        qsort(samples[s], (size_t)runs, sizeof(double), s_cmp_double);
        res->med[s] = samples[s][runs / 2];
    }
    qsort(total, (size_t)runs, sizeof(double), s_cmp_double);
    res->total_med = total[runs / 2];
    res->total_max = total[runs - 1];
}

/* One frame's line of the table, or its object in the JSON array. */
static void
s_print(size_t f, size_t bytes, const s_result_t *res, bool json)
{
    if (json) {
        printf("%s\n {\"frame\": \"%s\", \"bytes\": %zu", f ? "," : "", s_frames[f].name,
               bytes);
        for (int s = 0; s < S_STEPS; s++)
            printf(", \"%s_ms\": %.3f", s_step_names[s], res->med[s]);
        printf(", \"total_ms\": %.3f, \"max_total_ms\": %.3f}", res->total_med,
               res->total_max);
    }
    else
        printf("%-36.36s %9zu %9.3f %9.3f %9.3f %9.3f %9.3f  %s\n", s_frames[f].name,
               bytes, res->med[0], res->med[1], res->med[2], res->med[3], res->total_med,
               res->answer);
    fflush(stdout);
}

int
main(int argc, char **argv)
{
    int runs;
    bool json;
    if (!s_args(argc, argv, &runs, &json))
        return 2;
    mlg_registry_t *reg = test_load_registry();
    char err[512];
    brk_config_t *cfg = brk_config_parse(s_config, "frame-bench.cfg", err, sizeof(err));
    brk_consents_t *consents = brk_consents_new();
    if (!reg || !cfg || !consents) {
        fprintf(stderr, "frame-bench: could not set up: %s\n", cfg ? "schemas" : err);
        return 1;
    }
    s_ctx_t ctx = {reg, cfg, consents};

    if (json)
        printf("[");
    else
        printf("%-36s %9s %9s %9s %9s %9s %9s  %s\n", "frame (1 MiB limit)", "bytes",
               "decode", "validate", "envelope", "route", "total ms", "answer");
    for (size_t f = 0; f < S_NFRAMES; f++) {
        msgpack_sbuffer frame;
        s_frame(&s_frames[f], &frame);
        s_result_t res;
        s_measure(&ctx, &frame, runs, &res);
        s_print(f, frame.size, &res, json);
        msgpack_sbuffer_destroy(&frame);
    }
    if (json)
        printf("\n]\n");
    brk_consents_destroy(&consents);
    brk_config_destroy(&cfg);
    mlg_registry_destroy(&reg);
    return 0;
}
