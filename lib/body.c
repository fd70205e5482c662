/*  body.c: values of a message's body by JSON Pointer (body.h).

    Resolves an RFC 6901 pointer on the decoded body (msgpack objects),
    one reference token at a time: a member of a map is found by a scan
    of its members (the first that matches, bodies with a repeated name
    are refused by the validator before anyone reads them), an item of
    an array by its index. A body set by hand is unpacked for the call.
    Called by the broker (consent bodies) and by programs that read
    deliveries. No allocation but that unpacking. */

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "maillage/body.h"
#include "maillage/limits.h"
#include "mp.h"

/* Does the token (pointer text, escaped) name the string key? */
static bool
s_token_is(const char *tok, size_t toklen, const msgpack_object *key)
{
    if (key->type != MSGPACK_OBJECT_STR)
        return false;
    size_t k = 0;
    for (size_t i = 0; i < toklen; i++, k++) {
        char c = tok[i];
        if (c == '~') {
            if (i + 1 >= toklen || (tok[i + 1] != '0' && tok[i + 1] != '1'))
                return false;
            c = tok[++i] == '0' ? '~' : '/';
        }
        if (k >= key->via.str.size || key->via.str.ptr[k] != c)
            return false;
    }
    return k == key->via.str.size;
}

/* An array index token: digits, no leading zero; -1 if not one. */
static long long
s_index(const char *tok, size_t toklen)
{
    if (toklen == 0 || toklen > 10 || (toklen > 1 && tok[0] == '0'))
        return -1;
    long long v = 0;
    for (size_t i = 0; i < toklen; i++) {
        if (tok[i] < '0' || tok[i] > '9')
            return -1;
        v = v * 10 + (tok[i] - '0');
    }
    return v;
}

static const msgpack_object *
s_resolve(const msgpack_object *o, const char *pointer)
{
    if (!o || !pointer)
        return NULL;
    const char *p = pointer;
    while (*p) {
        if (*p != '/')
            return NULL;
        p++;
        const char *end = strchr(p, '/');
        size_t toklen = end ? (size_t)(end - p) : strlen(p);
        const msgpack_object *next = NULL;
        if (o->type == MSGPACK_OBJECT_MAP) {
            for (uint32_t i = 0; i < o->via.map.size && !next; i++)
                if (s_token_is(p, toklen, &o->via.map.ptr[i].key))
                    next = &o->via.map.ptr[i].val;
        }
        else if (o->type == MSGPACK_OBJECT_ARRAY) {
            long long i = s_index(p, toklen);
            if (i >= 0 && (uint64_t)i < o->via.array.size)
                next = &o->via.array.ptr[i];
        }
        if (!next)
            return NULL;
        o = next;
        p += toklen;
    }
    return o;
}

/* The body's object for msg: decoded already, or unpacked into *up
   (then *unpacked is set and the caller destroys it). */
static const msgpack_object *
s_body(const mlg_msg_t *msg, msgpack_unpacked *up, bool *unpacked)
{
    *unpacked = false;
    const msgpack_object *o = mlg_msg_body_object(msg);
    if (o || !msg->body || msg->body_len == 0)
        return o;
    const char *why;
    *unpacked = true;
    if (mlg_mp_unpack(msg->body, msg->body_len, MLG_MAX_DEPTH, up, &why) != MLG_OK)
        return NULL;
    return &up->data;
}

/* Runs `fn` on the value at pointer. */
typedef void (*s_visit_fn)(const msgpack_object *o, void *arg);

static void
s_visit(const mlg_msg_t *msg, const char *pointer, s_visit_fn fn, void *arg)
{
    assert(msg && pointer);
    msgpack_unpacked up;
    bool unpacked;
    fn(s_resolve(s_body(msg, &up, &unpacked), pointer), arg);
    if (unpacked)
        msgpack_unpacked_destroy(&up);
}

static void
s_kind_of(const msgpack_object *o, void *arg)
{
    mlg_value_kind_t *kind = arg;
    *kind = MLG_VALUE_NONE;
    if (!o)
        return;
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: *kind = MLG_VALUE_NULL; break;
    case MSGPACK_OBJECT_BOOLEAN: *kind = MLG_VALUE_BOOL; break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: *kind = MLG_VALUE_NUMBER; break;
    case MSGPACK_OBJECT_STR: *kind = MLG_VALUE_STRING; break;
    case MSGPACK_OBJECT_ARRAY: *kind = MLG_VALUE_ARRAY; break;
    case MSGPACK_OBJECT_MAP: *kind = MLG_VALUE_OBJECT; break;
    default: break; /* bin, ext: not a body's */
    }
}

mlg_value_kind_t
mlg_body_kind(const mlg_msg_t *msg, const char *pointer)
{
    mlg_value_kind_t kind;
    s_visit(msg, pointer, s_kind_of, &kind);
    return kind;
}

static void
s_count_of(const msgpack_object *o, void *arg)
{
    size_t *n = arg;
    *n = 0;
    if (o && o->type == MSGPACK_OBJECT_ARRAY)
        *n = o->via.array.size;
    else if (o && o->type == MSGPACK_OBJECT_MAP)
        *n = o->via.map.size;
}

size_t
mlg_body_count(const mlg_msg_t *msg, const char *pointer)
{
    size_t n;
    s_visit(msg, pointer, s_count_of, &n);
    return n;
}

typedef struct {
    char *out;
    size_t outlen;
    bool ok;
} s_text_t;

static void
s_text_of(const msgpack_object *o, void *arg)
{
    s_text_t *t = arg;
    t->ok = false;
    if (!o || o->type != MSGPACK_OBJECT_STR || o->via.str.size >= t->outlen)
        return;
    size_t n = o->via.str.size;
    if (n && memchr(o->via.str.ptr, '\0', n))
        return;
    if (n)
        memcpy(t->out, o->via.str.ptr, n);
    t->out[n] = '\0';
    t->ok = true;
}

bool
mlg_body_text(const mlg_msg_t *msg, const char *pointer, char *out, size_t outlen)
{
    assert(out && outlen > 0);
    s_text_t t = {out, outlen, false};
    s_visit(msg, pointer, s_text_of, &t);
    if (!t.ok)
        out[0] = '\0';
    return t.ok;
}
