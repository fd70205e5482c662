/*  json.c: JSON <-> MessagePack conversion with jansson and msgpack-c.

    Both walks are recursive and bounded by MLG_MAX_DEPTH; input in
    either direction is untrusted. Called by the adapters, the CLI and
    the tests; no I/O. */

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "maillage/forms.h"
#include "maillage/json.h"
#include "maillage/limits.h"
#include "mp.h"

static mlg_rc_t
s_err(mlg_rc_t rc, char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* ---- JSON -> msgpack ---------------------------------------------- */

static int
s_write(void *data, const char *buf, size_t len)
{
    return msgpack_sbuffer_write(data, buf, len);
}

static int
s_pack_json(msgpack_packer *pk, const json_t *v, int depth)
{
    if (depth > MLG_MAX_DEPTH)
        return -2;
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *key;
        json_t *val;
        if (msgpack_pack_map(pk, json_object_size(v)))
            return -1;
        json_object_foreach((json_t *)v, key, val)
        {
            if (msgpack_pack_str_with_body(pk, key, strlen(key)))
                return -1;
            int rc = s_pack_json(pk, val, depth + 1);
            if (rc)
                return rc;
        }
        return 0;
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *val;
        if (msgpack_pack_array(pk, json_array_size(v)))
            return -1;
        json_array_foreach(v, i, val)
        {
            int rc = s_pack_json(pk, val, depth + 1);
            if (rc)
                return rc;
        }
        return 0;
    }
    case JSON_STRING:
        return msgpack_pack_str_with_body(pk, json_string_value(v),
                                          json_string_length(v));
    case JSON_INTEGER: {
        json_int_t n = json_integer_value(v);
        return n >= 0 ? msgpack_pack_uint64(pk, (uint64_t)n) : msgpack_pack_int64(pk, n);
    }
    case JSON_REAL: return msgpack_pack_double(pk, json_real_value(v));
    case JSON_TRUE: return msgpack_pack_true(pk);
    case JSON_FALSE: return msgpack_pack_false(pk);
    case JSON_NULL: return msgpack_pack_nil(pk);
    }
    return -1;
}

mlg_rc_t
mlg_json_to_msgpack(const char *text, size_t len, uint8_t **out, size_t *out_len,
                    char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!root)
        return s_err(MLG_ERR_JSON, err, errlen, "line %d, column %d: %s", jerr.line,
                     jerr.column, jerr.text);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, s_write);
    int rc = s_pack_json(&pk, root, 1);
    json_decref(root);
    if (rc) {
        msgpack_sbuffer_destroy(&sb);
        if (rc == -2)
            return s_err(MLG_ERR_JSON, err, errlen, "nested deeper than %d levels",
                         MLG_MAX_DEPTH);
        return s_err(MLG_ERR_NOMEM, err, errlen, "could not allocate");
    }
    *out_len = sb.size;
    *out = (uint8_t *)msgpack_sbuffer_release(&sb);
    return MLG_OK;
}

/* ---- msgpack -> JSON ---------------------------------------------- */

/* RFC 3339 in UTC with microseconds, the precision maillage keeps. */
static json_t *s_time_json(mlg_time_t t);

static json_t *
s_timestamp(const msgpack_object *o)
{
    msgpack_timestamp ts;
    if (!msgpack_object_to_timestamp(o, &ts))
        return NULL;
    mlg_time_t t = {ts.tv_sec, ts.tv_nsec};
    return s_time_json(t);
}

static json_t *
s_to_json(const msgpack_object *o, const char **why)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: return json_null();
    case MSGPACK_OBJECT_BOOLEAN: return json_boolean(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (o->via.u64 > (uint64_t)INT64_MAX) {
            *why = "an integer above 2^63-1 has no JSON form here";
            return NULL;
        }
        return json_integer((json_int_t)o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return json_integer((json_int_t)o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        if (!isfinite(o->via.f64)) {
            *why = "NaN and infinity have no JSON form";
            return NULL;
        }
        return json_real(o->via.f64);
    case MSGPACK_OBJECT_STR: {
        const char *text = o->via.str.size ? o->via.str.ptr : "";
        json_t *s = json_stringn_nocheck(text, o->via.str.size);
        /* jansson checks UTF-8 only in json_stringn; do it ourselves. */
        if (s && !mlg_utf8_check(text, o->via.str.size, NULL)) {
            json_decref(s);
            *why = "a string is not valid UTF-8";
            return NULL;
        }
        return s;
    }
    case MSGPACK_OBJECT_ARRAY: {
        json_t *a = json_array();
        for (uint32_t i = 0; a && i < o->via.array.size; i++) {
            json_t *v = s_to_json(&o->via.array.ptr[i], why);
            if (!v || json_array_append_new(a, v)) {
                json_decref(a);
                return NULL;
            }
        }
        return a;
    }
    case MSGPACK_OBJECT_MAP: {
        json_t *m = json_object();
        for (uint32_t i = 0; m && i < o->via.map.size; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            if (kv->key.type != MSGPACK_OBJECT_STR) {
                *why = "a map key is not a string";
                json_decref(m);
                return NULL;
            }
            /* msgpack-c leaves ptr NULL for an empty string */
            const char *k = kv->key.via.str.size ? kv->key.via.str.ptr : "";
            size_t klen = kv->key.via.str.size;
            if (!mlg_utf8_check(k, klen, NULL) || (klen && memchr(k, '\0', klen))) {
                *why = "a map key is not valid UTF-8 text";
                json_decref(m);
                return NULL;
            }
            if (json_object_getn(m, k, klen)) {
                *why = "a map repeats a key";
                json_decref(m);
                return NULL;
            }
            json_t *v = s_to_json(&kv->val, why);
            if (!v || json_object_setn_new_nocheck(m, k, klen, v)) {
                json_decref(m);
                return NULL;
            }
        }
        return m;
    }
    case MSGPACK_OBJECT_EXT:
        if (o->via.ext.type == -1) {
            json_t *t = s_timestamp(o);
            if (!t)
                *why = "a timestamp is out of range";
            return t;
        }
        *why = "an extension value has no JSON form";
        return NULL;
    case MSGPACK_OBJECT_BIN: *why = "binary data has no JSON form"; return NULL;
    }
    *why = "unknown msgpack type";
    return NULL;
}

mlg_rc_t
mlg_msgpack_to_json(const uint8_t *data, size_t len, char **out, char *err, size_t errlen)
{
    msgpack_unpacked up;
    const char *why = "could not allocate";
    mlg_rc_t rc = mlg_mp_unpack(data, len, MLG_MAX_DEPTH, &up, &why);
    if (rc != MLG_OK) {
        msgpack_unpacked_destroy(&up);
        return s_err(rc, err, errlen, "not one msgpack object: %s", why);
    }
    why = "could not allocate";
    json_t *root = s_to_json(&up.data, &why);
    msgpack_unpacked_destroy(&up);
    if (!root)
        return s_err(MLG_ERR_JSON, err, errlen, "%s", why);
    *out = json_dumps(root, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!*out)
        return s_err(MLG_ERR_NOMEM, err, errlen, "could not allocate");
    return MLG_OK;
}

/* ---- a PUBLISH written as JSON ------------------------------------- */

mlg_rc_t
mlg_publish_from_json(const char *text, size_t len, mlg_msg_t **msg_p, mlg_error_t *err)
{
    *msg_p = NULL;
    mlg_error_t dummy;
    if (!err)
        err = &dummy;
    memset(err, 0, sizeof(*err));
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root || !json_is_object(root)) {
        err->rc = MLG_ERR_JSON;
        snprintf(err->reason, sizeof(err->reason), "%s",
                 root ? "the event is not a JSON object" : jerr.text);
        json_decref(root);
        return MLG_ERR_JSON;
    }
    /* occurred_at travels as a msgpack timestamp: take it out of the JSON
       and put it back on the message after decoding. */
    mlg_time_t occurred = {0, 0};
    json_t *at = json_incref(json_object_get(root, "occurred_at"));
    json_object_del(root, "occurred_at");
    if (at
        && !(json_is_string(at)
             && mlg_date_time_parse(json_string_value(at), json_string_length(at),
                                    &occurred))) {
        json_decref(at);
        json_decref(root);
        err->rc = MLG_MALFORMED;
        err->op = MLG_OP_PUBLISH;
        snprintf(err->reason, sizeof(err->reason),
                 "key 'occurred_at' is not an RFC 3339 date-time");
        return MLG_MALFORMED;
    }
    if (!json_object_get(root, "op"))
        json_object_set_new(root, "op", json_string("PUBLISH"));
    char *flat = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    uint8_t *mp = NULL;
    size_t mplen = 0;
    mlg_rc_t rc = flat ? mlg_json_to_msgpack(flat, strlen(flat), &mp, &mplen, err->reason,
                                             sizeof(err->reason))
                       : MLG_ERR_NOMEM;
    free(flat);
    if (rc != MLG_OK) {
        json_decref(at);
        err->rc = rc;
        return rc;
    }
    rc = mlg_msg_decode(mp, mplen, msg_p, err);
    free(mp);
    if (rc == MLG_OK && (*msg_p)->op != MLG_OP_PUBLISH) {
        mlg_msg_destroy(msg_p);
        err->rc = rc = MLG_MALFORMED;
        snprintf(err->reason, sizeof(err->reason), "the event's op is not PUBLISH");
    }
    if (rc == MLG_OK && at) {
        (*msg_p)->has_occurred_at = true;
        (*msg_p)->occurred_at = occurred;
    }
    json_decref(at);
    return rc;
}

/* ---- a DELIVER written as JSON ------------------------------------- */

static json_t *
s_time_json(mlg_time_t t)
{
    char buf[40];
    return mlg_time_format(t, buf, sizeof(buf)) ? json_string(buf) : NULL;
}

static int
s_set_str(json_t *obj, const char *key, const char *value)
{
    if (!value || !*value)
        return 0;
    return json_object_set_new(obj, key, json_string(value));
}

mlg_rc_t
mlg_deliver_to_json(const mlg_msg_t *msg, char **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!msg || msg->op != MLG_OP_DELIVER)
        return s_err(MLG_ERR_USAGE, err, errlen, "not a DELIVER");
    msgpack_unpacked up;
    const char *why = "could not allocate";
    mlg_rc_t rc = mlg_mp_unpack(msg->body, msg->body_len, MLG_MAX_DEPTH, &up, &why);
    if (rc != MLG_OK) {
        msgpack_unpacked_destroy(&up);
        return s_err(rc, err, errlen, "the body is not one msgpack object: %s", why);
    }
    why = "could not allocate";
    json_t *body = s_to_json(&up.data, &why);
    msgpack_unpacked_destroy(&up);
    if (!body)
        return s_err(MLG_ERR_JSON, err, errlen, "body: %s", why);
    json_t *root = json_object();
    json_t *received = s_time_json(msg->received_at);
    json_t *occurred = msg->has_occurred_at ? s_time_json(msg->occurred_at) : NULL;
    int bad = !root || !received || (msg->has_occurred_at && !occurred);
    if (!bad) {
        bad |= s_set_str(root, "id", msg->id);
        bad |= s_set_str(root, "type", msg->type);
        bad |=
            json_object_set_new(root, "version", json_integer((json_int_t)msg->version));
        bad |= s_set_str(root, "from", msg->from);
        bad |= s_set_str(root, "subject", msg->subject);
        bad |= s_set_str(root, "purpose", msg->purpose);
        bad |= s_set_str(root, "correlation", msg->correlation);
        if (occurred)
            bad |= json_object_set(root, "occurred_at", occurred);
        bad |= json_object_set(root, "received_at", received);
        bad |= json_object_set_new(root, "delivery",
                                   json_integer((json_int_t)msg->delivery));
        bad |=
            json_object_set_new(root, "attempt", json_integer((json_int_t)msg->attempt));
        bad |= json_object_set(root, "body", body);
    }
    json_decref(received);
    json_decref(occurred);
    json_decref(body);
    if (!bad)
        *out = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!*out)
        return s_err(bad ? MLG_ERR_JSON : MLG_ERR_NOMEM, err, errlen,
                     "a timestamp is out of range, or out of memory");
    return MLG_OK;
}
