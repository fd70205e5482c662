/*  worst_seeds.c: writes the costliest inputs we know how to build, at
    the frame limit (1 MiB), for one fuzz target:

        worst_seeds decode|validate|json DIR

    Members all named alike, array items all equal, names that differ in
    their last bytes only, an envelope of unknown keys, nesting at the
    depth limit. scripts/fuzz.sh puts them in each target's scratch
    corpus, so libFuzzer starts from them with its slow-unit -timeout;
    the suite runs them through the targets too (fuzz.worst.*), so a step
    that turns quadratic fails a test instead of freezing a broker.
    Generated, not checked in: 1 MiB files each. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "maillage/limits.h"
#include "maillage/schema.h"

#define S_LIMIT MLG_MAX_MESSAGE_BYTES_DEFAULT

typedef struct {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} s_buf_t;

static void
s_init(s_buf_t *b)
{
    msgpack_sbuffer_init(&b->sb);
    msgpack_packer_init(&b->pk, &b->sb, msgpack_sbuffer_write);
}

static void
s_str(s_buf_t *b, const char *s)
{
    msgpack_pack_str_with_body(&b->pk, s, strlen(s));
}

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

/* ---- bodies, each about `room` bytes ---------------------------------- */

static void
s_same_names(s_buf_t *b, size_t room)
{
    size_t n = (room - 5) / 2;
    msgpack_pack_map(&b->pk, n);
    for (size_t i = 0; i < n; i++) {
        msgpack_pack_str(&b->pk, 0);
        msgpack_pack_nil(&b->pk);
    }
}

static void
s_close_names(s_buf_t *b, size_t room)
{
    char k[200];
    memset(k, 'k', sizeof(k));
    size_t n = (room - 5) / (sizeof(k) + 2);
    msgpack_pack_map(&b->pk, n);
    for (size_t i = 0; i < n; i++) {
        snprintf(k + sizeof(k) - 9, 9, "%08zx", i % 4096); /* repeats, late */
        msgpack_pack_str_with_body(&b->pk, k, sizeof(k) - 1);
        msgpack_pack_nil(&b->pk);
    }
}

static void
s_same_purposes(s_buf_t *b, size_t room)
{
    msgpack_pack_map(&b->pk, 7);
    s_str(b, "consent_id");
    s_str(b, "0b7a3c2e-5f1d-4c8e-9a6b-3d2f1e0c9b8a");
    s_str(b, "parties");
    msgpack_pack_array(&b->pk, 2);
    s_str(b, "cd75");
    s_str(b, "ccas-paris-13");
    s_str(b, "categories");
    msgpack_pack_array(&b->pk, 1);
    s_str(b, "social");
    s_str(b, "valid_from");
    s_str(b, "2026-01-01T00:00:00Z");
    s_str(b, "collected_by");
    msgpack_pack_map(&b->pk, 2);
    s_str(b, "name");
    s_str(b, "x");
    s_str(b, "role");
    s_str(b, "y");
    s_str(b, "method");
    s_str(b, "written");
    s_str(b, "purposes");
    size_t n = (room - 300) / 12;
    msgpack_pack_array(&b->pk, n);
    for (size_t i = 0; i < n; i++)
        s_str(b, "orientation");
}

static void
s_deep(s_buf_t *b, size_t room)
{
    int depth = MLG_MAX_DEPTH - 2;
    size_t n = (room - 20) / (size_t)depth;
    msgpack_pack_map(&b->pk, 1);
    s_str(b, "referral_id");
    msgpack_pack_array(&b->pk, n);
    for (size_t i = 0; i < n; i++) {
        for (int d = 0; d < depth - 1; d++)
            msgpack_pack_array(&b->pk, 1);
        msgpack_pack_nil(&b->pk);
    }
}

/* A PUBLISH around a body, `junk` unknown "" keys in the envelope. */
static void
s_publish(const char *dir, const char *name, void (*body)(s_buf_t *, size_t), size_t junk)
{
    s_buf_t b;
    s_init(&b);
    msgpack_pack_map(&b.pk, 5 + junk);
    s_str(&b, "op");
    s_str(&b, "PUBLISH");
    s_str(&b, "id");
    s_str(&b, "7f3e2d1c-0b9a-4877-9655-443322110000");
    s_str(&b, "type");
    s_str(&b, "referral.created");
    s_str(&b, "version");
    msgpack_pack_uint64(&b.pk, 1);
    for (size_t i = 0; i < junk; i++) {
        msgpack_pack_str(&b.pk, 0);
        msgpack_pack_nil(&b.pk);
    }
    s_str(&b, "body");
    if (body)
        body(&b, S_LIMIT - b.sb.size - 16);
    else
        msgpack_pack_map(&b.pk, 0);
    s_write(dir, name, b.sb.data, b.sb.size);
    msgpack_sbuffer_destroy(&b.sb);
}

/* A validate input: the schema's index byte, then the body. */
static void
s_body(const char *dir, const char *name, const mlg_registry_t *reg, const char *type,
       void (*body)(s_buf_t *, size_t))
{
    size_t index = 0;
    while (index < mlg_registry_size(reg)
           && strcmp(mlg_schema_type(mlg_registry_at(reg, index)), type) != 0)
        index++;
    s_buf_t b;
    s_init(&b);
    uint8_t byte = (uint8_t)index;
    msgpack_sbuffer_write(&b.sb, (const char *)&byte, 1);
    body(&b, S_LIMIT - 16);
    s_write(dir, name, b.sb.data, b.sb.size);
    msgpack_sbuffer_destroy(&b.sb);
}

/* JSON text: `item` repeated inside `open` ... `close`, to the limit. */
static void
s_json(const char *dir, const char *name, const char *open, const char *item,
       const char *close)
{
    size_t n = (S_LIMIT - 16) / (strlen(item) + 1);
    char *text = malloc(S_LIMIT);
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
        s_publish(dir, "worst-deep.mp", s_deep, 0);
        s_publish(dir, "worst-envelope-keys.mp", NULL, (S_LIMIT - 200) / 2);
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
        s_body(dir, "worst-deep.mp", reg, "referral.created", s_deep);
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
