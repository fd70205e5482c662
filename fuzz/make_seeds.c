/*  make_seeds.c: writes the seed corpora of fuzz/corpus/ from the
    project's own data, so they can be made again when the codec or the
    schemas change:  make_seeds SOURCE_DIR

    decode/   one frame of every op, encoded by the codec, and the
              PUBLISH again with every string in str8, str16 and str32
              form (other languages' libraries do not always pick the
              shortest)
    validate/ each body of tests/data/bodies.json, behind its schema's
              index byte (registry order)
    json/     the same bodies as JSON text */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <msgpack.h>

#include "maillage/codec.h"
#include "maillage/json.h"
#include "maillage/schema.h"

static void
s_write(const char *dir, const char *name, const void *data, size_t len)
{
    char path[4096];
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path)) {
        fprintf(stderr, "the path %s/%s is too long\n", dir, name);
        exit(1);
    }
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len) {
        fprintf(stderr, "could not write %s\n", path);
        exit(1);
    }
    fclose(f);
}

/* Writes o to pk with every string in the header form `form`
   (0xd9 str8, 0xda str16, 0xdb str32). */
static void
s_wide(msgpack_packer *pk, msgpack_sbuffer *sb, const msgpack_object *o, uint8_t form)
{
    switch (o->type) {
    case MSGPACK_OBJECT_STR: {
        uint32_t n = o->via.str.size;
        uint8_t hdr[5] = {form, 0, 0, 0, 0};
        size_t h = form == 0xd9 ? 2 : form == 0xda ? 3 : 5;
        for (size_t i = 1; i < h; i++)
            hdr[i] = (uint8_t)(n >> (8 * (h - 1 - i)));
        msgpack_sbuffer_write(sb, (const char *)hdr, h);
        msgpack_sbuffer_write(sb, o->via.str.ptr, n);
        break;
    }
    case MSGPACK_OBJECT_ARRAY:
        msgpack_pack_array(pk, o->via.array.size);
        for (uint32_t i = 0; i < o->via.array.size; i++)
            s_wide(pk, sb, &o->via.array.ptr[i], form);
        break;
    case MSGPACK_OBJECT_MAP:
        msgpack_pack_map(pk, o->via.map.size);
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            s_wide(pk, sb, &o->via.map.ptr[i].key, form);
            s_wide(pk, sb, &o->via.map.ptr[i].val, form);
        }
        break;
    default: msgpack_pack_object(pk, *o); break;
    }
}

static void
s_wide_frames(const char *dir, const uint8_t *data, size_t len)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    if (msgpack_unpack_next(&up, (const char *)data, len, NULL) != MSGPACK_UNPACK_SUCCESS)
        exit(1);
    const uint8_t forms[] = {0xd9, 0xda, 0xdb};
    const char *names[] = {"PUBLISH-str8.mp", "PUBLISH-str16.mp", "PUBLISH-str32.mp"};
    for (int f = 0; f < 3; f++) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        s_wide(&pk, &sb, &up.data, forms[f]);
        s_write(dir, names[f], sb.data, sb.size);
        msgpack_sbuffer_destroy(&sb);
    }
    msgpack_unpacked_destroy(&up);
}

static void
s_frame(const char *dir, mlg_msg_t *msg)
{
    uint8_t *data;
    size_t len;
    if (mlg_msg_encode(msg, &data, &len) != MLG_OK)
        exit(1);
    char name[64];
    snprintf(name, sizeof(name), "%s.mp", mlg_op_name(msg->op));
    s_write(dir, name, data, len);
    if (msg->op == MLG_OP_PUBLISH)
        s_wide_frames(dir, data, len);
    free(data);
    mlg_msg_destroy(&msg);
}

/* One map of every op, with every field its table reads, CONFIRM and
   DELIVER with notices (PROTOCOL.md §9), into dir. */
static void
s_decode_seeds(const char *dir)
{
    const uint8_t body[] = {0x81, 0xa1, 'n', 0x01};
    for (int op = MLG_OP_HELLO; op < MLG_OP_COUNT; op++) {
        mlg_msg_t *m = mlg_msg_new((mlg_op_t)op);
        strcpy(m->agency, "cd75");
        strcpy(m->client, "adapter@host");
        m->credit = 10;
        strcpy(m->session, "s1");
        m->heartbeat_ms = 1000;
        m->max_message_bytes = 1048576;
        strcpy(m->id, "6f1c2b7e-3d4a-4b8c-9e0f-1a2b3c4d5e6f");
        strcpy(m->type, "referral.created");
        m->version = 1;
        strcpy(m->subject, "P-1");
        strcpy(m->purpose, "orientation");
        strcpy(m->correlation, "c-1");
        m->has_occurred_at = true;
        m->occurred_at = mlg_time_now();
        mlg_msg_set_body(m, body, sizeof(body));
        m->delivery = 12;
        strcpy(m->reason, "reason");
        m->seq = 3;
        strcpy(m->code, "INVALID");
        strcpy(m->from, "ccas-paris-13");
        m->received_at = mlg_time_now();
        m->attempt = 1;
        if (op == MLG_OP_PUBLISH)
            mlg_msg_add_to(m, "ehpad-les-tilleuls");
        if (op == MLG_OP_CONFIRM) {
            mlg_msg_add_routed(m, "cd75");
            mlg_msg_add_denied(m, "ars-idf", "NO_CONSENT");
        }
        if (op == MLG_OP_CONFIRM || op == MLG_OP_DELIVER) { /* §9's notices */
            mlg_notice_t n = {.code = "DUPLICATE_REFERRAL",
                              .referral_id = "0d3e8a52-7c1b-4f6e-8a9d-2b4c6e8f0a1b",
                              .has_since = true,
                              .since = mlg_time_now()};
            if (op == MLG_OP_CONFIRM) {
                strcpy(n.recipient, "ehpad-les-tilleuls");
                strcpy(n.state, "waitlisted");
            }
            mlg_msg_add_notice(m, &n);
        }
        s_frame(dir, m);
    }
}

int
main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make_seeds SOURCE_DIR\n");
        return 2;
    }
    const char *src = argv[1];
    char dir[4096], path[4096], err[512];

    snprintf(dir, sizeof(dir), "%s/fuzz/corpus/decode", src);
    s_decode_seeds(dir);

    snprintf(path, sizeof(path), "%s/schemas", src);
    mlg_registry_t *reg = mlg_registry_load(path, err, sizeof(err));
    if (!reg) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    snprintf(path, sizeof(path), "%s/tests/data/bodies.json", src);
    json_error_t jerr;
    json_t *table = json_load_file(path, 0, &jerr);
    if (!table) {
        fprintf(stderr, "%s: %s\n", path, jerr.text);
        return 1;
    }
    const char *key;
    json_t *entry;
    json_object_foreach(table, key, entry)
    {
        size_t index = 0;
        while (index < mlg_registry_size(reg)) {
            const mlg_schema_t *s = mlg_registry_at(reg, index);
            char name[128];
            snprintf(name, sizeof(name), "%s.v%llu", mlg_schema_type(s),
                     (unsigned long long)mlg_schema_version(s));
            if (strcmp(name, key) == 0)
                break;
            index++;
        }
        size_t i;
        json_t *b;
        json_array_foreach(json_object_get(entry, "valid"), i, b)
        {
            char *text = json_dumps(b, JSON_COMPACT);
            uint8_t *mp;
            size_t len;
            if (mlg_json_to_msgpack(text, strlen(text), &mp, &len, err, sizeof(err)))
                return 1;
            uint8_t *seed = malloc(len + 1);
            seed[0] = (uint8_t)index;
            memcpy(seed + 1, mp, len);
            char name[160];
            snprintf(name, sizeof(name), "%s.%zu.mp", key, i);
            snprintf(dir, sizeof(dir), "%s/fuzz/corpus/validate", src);
            s_write(dir, name, seed, len + 1);
            snprintf(name, sizeof(name), "%s.%zu.json", key, i);
            snprintf(dir, sizeof(dir), "%s/fuzz/corpus/json", src);
            s_write(dir, name, text, strlen(text));
            free(seed);
            free(mp);
            free(text);
        }
    }
    json_decref(table);
    mlg_registry_destroy(&reg);
    return 0;
}
