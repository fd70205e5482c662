/*  worst_seeds.c: writes the costliest inputs we know how to build, at
    the frame limit (1 MiB), for one fuzz target:

        worst_seeds decode|validate|json DIR

    Members all named alike, array items all equal, names that differ in
    their last bytes only, an envelope of unknown keys, nesting at the
    depth limit: the bodies and frames of hostile.c, which the frame
    bench and the hostile end-to-end test send too. scripts/fuzz.sh puts
    them in each target's scratch corpus, so libFuzzer starts from them
    with its slow-unit -timeout; the suite runs them through the targets
    too (fuzz.worst.*), so a step that turns quadratic fails a test
    instead of freezing a broker.
    Generated, not checked in: 1 MiB files each. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "hostile.h"
#include "maillage/schema.h"

static void
s_write(const char *dir, const char *name, const void *data, size_t len)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "worst_seeds: could not write %s\n", path);
        exit(1);
    }
}

/* ---- bodies, each at most `room` bytes (hostile.c builds them) -------- */

static void
s_same_names(msgpack_packer *pk, size_t room)
{
    hostile_same_names(pk, "", room);
}

static void
s_close_names(msgpack_packer *pk, size_t room)
{
    hostile_close_names(pk, 199, 4096, room); /* 8 hex digits last; repeats, late */
}

static void
s_same_purposes(msgpack_packer *pk, size_t room)
{
    hostile_consent(pk, "purposes", "orientation", room);
}

/* A PUBLISH around a body (NULL: an empty map), `junk` unknown "" keys in
   the envelope. */
static void
s_publish(const char *dir, const char *name, void (*body)(msgpack_packer *, size_t),
          size_t junk)
{
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    if (body)
        body(&pk, HOSTILE_BODY_MAX);
    else
        msgpack_pack_map(&pk, 0);
    msgpack_sbuffer frame;
    hostile_publish(&frame, "referral.created", 1, junk, b.data, b.size);
    s_write(dir, name, frame.data, frame.size);
    msgpack_sbuffer_destroy(&frame);
    msgpack_sbuffer_destroy(&b);
}

/* A validate input: the schema's index byte, then the body. */
static void
s_body(const char *dir, const char *name, const mlg_registry_t *reg, const char *type,
       void (*body)(msgpack_packer *, size_t))
{
    size_t index = 0;
    while (index < mlg_registry_size(reg)
           && strcmp(mlg_schema_type(mlg_registry_at(reg, index)), type) != 0)
        index++;
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    uint8_t byte = (uint8_t)index;
    msgpack_sbuffer_write(&b, (const char *)&byte, 1);
    body(&pk, HOSTILE_LIMIT - 16);
    s_write(dir, name, b.data, b.size);
    msgpack_sbuffer_destroy(&b);
}

/* JSON text: `item` repeated inside `open` ... `close`, to the limit. */
static void
s_json(const char *dir, const char *name, const char *open, const char *item,
       const char *close)
{
    size_t n = (HOSTILE_LIMIT - 16) / (strlen(item) + 1);
    char *text = malloc(HOSTILE_LIMIT);
    if (!text)
        exit(1);
    size_t len = 0;
    len += (size_t)sprintf(text + len, "%s", open);
    for (size_t i = 0; i < n; i++)
        len += (size_t)sprintf(text + len, "%s%s", i ? "," : "", item);
    len += (size_t)sprintf(text + len, "%s", close);
    s_write(dir, name, text, len);
    free(text);
}

int
main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: worst_seeds decode|validate|json DIR\n");
        return 2;
    }
    const char *target = argv[1], *dir = argv[2];
    if (strcmp(target, "decode") == 0) {
        s_publish(dir, "worst-same-names.mp", s_same_names, 0);
        s_publish(dir, "worst-deep.mp", hostile_deep, 0);
        s_publish(dir, "worst-envelope-keys.mp", NULL, HOSTILE_BODY_MAX / 2);
    }
    else if (strcmp(target, "validate") == 0) {
        char err[512];
        const char *env = getenv("MLG_SCHEMAS");
        mlg_registry_t *reg =
            mlg_registry_load(env ? env : MLG_SCHEMAS_DIR, err, sizeof(err));
        if (!reg) {
            fprintf(stderr, "worst_seeds: %s\n", err);
            return 1;
        }
        s_body(dir, "worst-same-names.mp", reg, "referral.created", s_same_names);
        s_body(dir, "worst-close-names.mp", reg, "referral.created", s_close_names);
        s_body(dir, "worst-same-purposes.mp", reg, "consent.granted", s_same_purposes);
        s_body(dir, "worst-deep.mp", reg, "referral.created", hostile_deep);
        mlg_registry_destroy(&reg);
    }
    else if (strcmp(target, "json") == 0) {
        s_json(dir, "worst-same-names.json", "{", "\"\":null", "}");
        s_json(dir, "worst-same-items.json", "[", "\"orientation\"", "]");
        s_json(dir, "worst-deep.json", "[",
               "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]", "]");
    }
    else {
        fprintf(stderr, "worst_seeds: no worst inputs for '%s'\n", target);
        return 2;
    }
    return 0;
}
