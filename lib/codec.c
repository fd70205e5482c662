/*  codec.c: the wire maps of PROTOCOL.md to and from MessagePack.

    Decoding runs in three steps: the raw bytes are scanned (mp.c) so
    that no declared length can make msgpack-c allocate more than the
    input justifies; the frame is copied and unpacked; then each key of
    the op's table is read and checked. The first failure is the answer,
    in table order, so a client always gets the same reason for the same
    bytes. The body is kept as the exact bytes received (the broker
    stores them as such) and as the unpacked object (the validator walks
    it).

    Called by the broker (every frame it receives), the client library,
    the adapters and the tools. It does no I/O. */

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <msgpack.h>

#include "maillage/codec.h"
#include "maillage/forms.h"
#include "mp.h"

struct mlg_msg_priv_t {
    uint8_t *frame; /* decoded: a copy of the frame; `body` points into it */
    uint8_t *owned; /* built by hand: the body set by mlg_msg_set_body */
    bool unpacked;
    msgpack_unpacked up;
    const msgpack_object *body_obj;
};

static const char *s_op_names[MLG_OP_COUNT] = {
    [MLG_OP_NONE] = NULL,         [MLG_OP_HELLO] = "HELLO",
    [MLG_OP_PUBLISH] = "PUBLISH", [MLG_OP_ACK] = "ACK",
    [MLG_OP_NACK] = "NACK",       [MLG_OP_PING] = "PING",
    [MLG_OP_BYE] = "BYE",         [MLG_OP_WELCOME] = "WELCOME",
    [MLG_OP_CONFIRM] = "CONFIRM", [MLG_OP_REJECT] = "REJECT",
    [MLG_OP_DELIVER] = "DELIVER", [MLG_OP_PONG] = "PONG",
    [MLG_OP_ERROR] = "ERROR",
};

const char *
mlg_op_name(mlg_op_t op)
{
    if ((int)op <= MLG_OP_NONE || (int)op >= MLG_OP_COUNT)
        return NULL;
    return s_op_names[op];
}

mlg_time_t
mlg_time_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    mlg_time_t t = {.sec = ts.tv_sec, .nsec = (uint32_t)ts.tv_nsec};
    return t;
}

int64_t
mlg_time_us(mlg_time_t t)
{
    return t.sec * 1000000 + (int64_t)(t.nsec / 1000);
}

/* ------------------------------------------------------------------ */
/* Construction                                                        */

mlg_msg_t *
mlg_msg_new(mlg_op_t op)
{
    mlg_msg_t *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    self->priv_ = calloc(1, sizeof(*self->priv_));
    if (!self->priv_) {
        free(self);
        return NULL;
    }
    self->op = op;
    if (op == MLG_OP_HELLO || op == MLG_OP_WELCOME)
        self->v = MLG_PROTOCOL_VERSION;
    return self;
}

void
mlg_msg_destroy(mlg_msg_t **self_p)
{
    assert(self_p);
    mlg_msg_t *self = *self_p;
    if (!self)
        return;
    if (self->priv_) {
        if (self->priv_->unpacked)
            msgpack_unpacked_destroy(&self->priv_->up);
        free(self->priv_->frame);
        free(self->priv_->owned);
        free(self->priv_);
    }
    free(self->to);
    free(self->routed);
    free(self->denied);
    free(self->notices);
    free(self);
    *self_p = NULL;
}

mlg_rc_t
mlg_msg_set_body(mlg_msg_t *self, const void *body, size_t len)
{
    assert(self);
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        return MLG_ERR_NOMEM;
    if (len)
        memcpy(copy, body, len);
    free(self->priv_->owned);
    self->priv_->owned = copy;
    /* A hand-set body replaces a decoded one: forget the decoded object. */
    self->priv_->body_obj = NULL;
    self->body = copy;
    self->body_len = len;
    return MLG_OK;
}

/* Grows an array of `size`-byte items by one, up to MLG_MAX_RECIPIENTS. */
static void *
s_grow(void **items, size_t *count, size_t size)
{
    if (*count >= MLG_MAX_RECIPIENTS)
        return NULL;
    char *bigger = realloc(*items, (*count + 1) * size);
    if (!bigger)
        return NULL;
    *items = bigger;
    char *slot = bigger + *count * size;
    memset(slot, 0, size);
    (*count)++;
    return slot;
}

static mlg_rc_t
s_add_agency(mlg_agency_t **list, size_t *count, const char *agency)
{
    if (!agency || !mlg_is_agency_id(agency, strlen(agency)))
        return MLG_ERR_USAGE;
    if (*count >= MLG_MAX_RECIPIENTS)
        return MLG_ERR_USAGE;
    mlg_agency_t *slot = s_grow((void **)list, count, sizeof(mlg_agency_t));
    if (!slot)
        return MLG_ERR_NOMEM;
    strcpy(slot->id, agency);
    return MLG_OK;
}

mlg_rc_t
mlg_msg_add_to(mlg_msg_t *self, const char *agency)
{
    return s_add_agency(&self->to, &self->to_count, agency);
}

mlg_rc_t
mlg_msg_add_routed(mlg_msg_t *self, const char *agency)
{
    return s_add_agency(&self->routed, &self->routed_count, agency);
}

static bool s_is_code(const char *s, size_t len);

mlg_rc_t
mlg_msg_add_denied(mlg_msg_t *self, const char *recipient, const char *reason)
{
    if (!recipient || !mlg_is_agency_id(recipient, strlen(recipient)) || !reason
        || !s_is_code(reason, strlen(reason)))
        return MLG_ERR_USAGE;
    if (self->denied_count >= MLG_MAX_RECIPIENTS)
        return MLG_ERR_USAGE;
    mlg_denial_t *slot =
        s_grow((void **)&self->denied, &self->denied_count, sizeof(mlg_denial_t));
    if (!slot)
        return MLG_ERR_NOMEM;
    strcpy(slot->recipient, recipient);
    strcpy(slot->reason, reason);
    return MLG_OK;
}

mlg_rc_t
mlg_msg_add_notice(mlg_msg_t *self, const mlg_notice_t *notice)
{
    if (!notice || !s_is_code(notice->code, strlen(notice->code))
        || self->notices_count >= MLG_MAX_NOTICES)
        return MLG_ERR_USAGE;
    mlg_notice_t *slot =
        s_grow((void **)&self->notices, &self->notices_count, sizeof(mlg_notice_t));
    if (!slot)
        return MLG_ERR_NOMEM;
    *slot = *notice;
    return MLG_OK;
}

const msgpack_object *
mlg_msg_body_object(const mlg_msg_t *msg)
{
    return msg->priv_ ? msg->priv_->body_obj : NULL;
}

/* ------------------------------------------------------------------ */
/* The key tables                                                      */

typedef enum {
    K_VERSION, /* `v`: uint, 1 or UNSUPPORTED_VERSION */
    K_UINT,
    K_UINT_POS, /* uint >= 1 */
    K_BOOL,
    K_TEXT, /* a string of some form, copied to a buffer */
    K_TIME,
    K_AGENCIES,
    K_DENIALS,
    K_NOTICES,
    K_BODY,
} s_kind_t;

typedef enum {
    F_NONE,    /* any valid UTF-8 without NUL, up to `max` characters */
    F_AGENCY,  /* agency id */
    F_MSGID,   /* lowercase UUID */
    F_TYPE,    /* event type */
    F_SUBJECT, /* printable, 1..128 */
    F_CODE,    /* A-Z and _, 1..32 */
} s_form_t;

typedef struct {
    const char *key;
    s_kind_t kind;
    bool required;
    size_t offset; /* of the field in mlg_msg_t */
    s_form_t form;
    size_t max; /* K_TEXT: characters; the buffer holds MLG_STRBUF(max) or
                   max + 1 for ASCII forms */
    size_t bufsize;
} s_key_t;

/* clang-format off */
#define O(field) offsetof(mlg_msg_t, field)
#define TEXT(k, req, field, form, max)                                        \
    {k, K_TEXT, req, O(field), form, max, sizeof(((mlg_msg_t *)0)->field)}
#define SCALAR(k, kind, req, field) {k, kind, req, O(field), F_NONE, 0, 0}
/* clang-format on */

static const s_key_t s_hello[] = {
    SCALAR("v", K_VERSION, true, v),
    TEXT("agency", true, agency, F_AGENCY, MLG_AGENCY_ID_MAX),
    TEXT("client", false, client, F_NONE, MLG_CLIENT_MAX),
    SCALAR("credit", K_UINT, false, credit),
    {NULL, 0, 0, 0, 0, 0, 0},
};

/* `id` first: once it is read, every refusal of a PUBLISH is a REJECT. */
static const s_key_t s_publish[] = {
    TEXT("id", true, id, F_MSGID, MLG_UUID_LEN),
    TEXT("type", true, type, F_TYPE, MLG_TYPE_MAX),
    SCALAR("version", K_UINT_POS, true, version),
    SCALAR("to", K_AGENCIES, false, to),
    TEXT("subject", false, subject, F_SUBJECT, MLG_SUBJECT_MAX),
    TEXT("purpose", false, purpose, F_NONE, MLG_PURPOSE_MAX),
    TEXT("correlation", false, correlation, F_NONE, MLG_CORRELATION_MAX),
    SCALAR("occurred_at", K_TIME, false, occurred_at),
    SCALAR("body", K_BODY, true, body),
    {NULL, 0, 0, 0, 0, 0, 0},
};

static const s_key_t s_ack[] = {
    SCALAR("delivery", K_UINT, true, delivery),
    {NULL, 0, 0, 0, 0, 0, 0},
};

static const s_key_t s_nack[] = {
    SCALAR("delivery", K_UINT, true, delivery),
    SCALAR("requeue", K_BOOL, true, requeue),
    TEXT("reason", true, reason, F_NONE, MLG_REASON_MAX),
    {NULL, 0, 0, 0, 0, 0, 0},
};

static const s_key_t s_empty[] = {
    {NULL, 0, 0, 0, 0, 0, 0},
};

static const s_key_t s_welcome[] = {
    SCALAR("v", K_VERSION, true, v),
    TEXT("session", true, session, F_NONE, MLG_SESSION_MAX),
    TEXT("agency", true, agency, F_AGENCY, MLG_AGENCY_ID_MAX),
    SCALAR("heartbeat_ms", K_UINT, true, heartbeat_ms),
    SCALAR("max_message_bytes", K_UINT, true, max_message_bytes),
    {NULL, 0, 0, 0, 0, 0, 0},
};

static const s_key_t s_confirm[] = {
    TEXT("id", true, id, F_MSGID, MLG_UUID_LEN),
    SCALAR("seq", K_UINT, true, seq),
    SCALAR("duplicate", K_BOOL, true, duplicate),
    SCALAR("routed", K_AGENCIES, true, routed),
    SCALAR("denied", K_DENIALS, true, denied),
    SCALAR("notices", K_NOTICES, false, notices),
    {NULL, 0, 0, 0, 0, 0, 0},
};

static const s_key_t s_reject[] = {
    TEXT("id", true, id, F_MSGID, MLG_UUID_LEN),
    TEXT("code", true, code, F_CODE, MLG_CODE_MAX),
    TEXT("reason", true, reason, F_NONE, MLG_REASON_MAX),
    {NULL, 0, 0, 0, 0, 0, 0},
};

static const s_key_t s_deliver[] = {
    SCALAR("delivery", K_UINT, true, delivery),
    TEXT("id", true, id, F_MSGID, MLG_UUID_LEN),
    TEXT("type", true, type, F_TYPE, MLG_TYPE_MAX),
    SCALAR("version", K_UINT_POS, true, version),
    TEXT("subject", false, subject, F_SUBJECT, MLG_SUBJECT_MAX),
    TEXT("purpose", false, purpose, F_NONE, MLG_PURPOSE_MAX),
    TEXT("correlation", false, correlation, F_NONE, MLG_CORRELATION_MAX),
    SCALAR("occurred_at", K_TIME, false, occurred_at),
    SCALAR("body", K_BODY, true, body),
    TEXT("from", true, from, F_AGENCY, MLG_AGENCY_ID_MAX),
    SCALAR("received_at", K_TIME, true, received_at),
    SCALAR("notices", K_NOTICES, false, notices),
    SCALAR("attempt", K_UINT_POS, true, attempt),
    {NULL, 0, 0, 0, 0, 0, 0},
};

static const s_key_t s_error[] = {
    TEXT("code", true, code, F_CODE, MLG_CODE_MAX),
    TEXT("reason", true, reason, F_NONE, MLG_REASON_MAX),
    {NULL, 0, 0, 0, 0, 0, 0},
};

static const s_key_t *
s_table(mlg_op_t op)
{
    switch (op) {
    case MLG_OP_HELLO: return s_hello;
    case MLG_OP_PUBLISH: return s_publish;
    case MLG_OP_ACK: return s_ack;
    case MLG_OP_NACK: return s_nack;
    case MLG_OP_PING:
    case MLG_OP_BYE:
    case MLG_OP_PONG: return s_empty;
    case MLG_OP_WELCOME: return s_welcome;
    case MLG_OP_CONFIRM: return s_confirm;
    case MLG_OP_REJECT: return s_reject;
    case MLG_OP_DELIVER: return s_deliver;
    case MLG_OP_ERROR: return s_error;
    case MLG_OP_NONE: return NULL;
    }
    return NULL;
}

/* Fewer than 16 keys per table: one bit each in `seen`. */
#define S_MAX_KEYS 16

/* ------------------------------------------------------------------ */
/* Decoding                                                            */

static mlg_rc_t
s_fail(mlg_error_t *err, mlg_rc_t rc, const char *fmt, ...)
{
    if (err) {
        err->rc = rc;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->reason, sizeof(err->reason), fmt, ap);
        va_end(ap);
    }
    return rc;
}

static bool
s_is_code(const char *s, size_t len)
{
    if (len < 1 || len > MLG_CODE_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || s[i] == '_'))
            return false;
    return true;
}

static const char *
s_type_name(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: return "nil";
    case MSGPACK_OBJECT_BOOLEAN: return "a boolean";
    case MSGPACK_OBJECT_POSITIVE_INTEGER: return "an unsigned integer";
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return "a negative integer";
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: return "a float";
    case MSGPACK_OBJECT_STR: return "a string";
    case MSGPACK_OBJECT_ARRAY: return "an array";
    case MSGPACK_OBJECT_MAP: return "a map";
    case MSGPACK_OBJECT_BIN: return "binary data";
    case MSGPACK_OBJECT_EXT: return "an extension value";
    }
    return "an unknown value";
}

/* Checks a string value against a form; returns a reason or NULL. */
static const char *
s_check_form(s_form_t form, const char *s, size_t len, size_t max)
{
    size_t chars;
    switch (form) {
    case F_AGENCY:
        return mlg_is_agency_id(s, len) ? NULL
                                        : "is not an agency id (1-64 of a-z 0-9 -, "
                                          "starting with a letter)";
    case F_MSGID:
        return mlg_is_message_id(s, len) ? NULL : "is not a lowercase canonical UUID";
    case F_TYPE:
        return mlg_is_event_type(s, len) ? NULL
                                         : "is not an event type (dotted lowercase "
                                           "words, at most 64 characters)";
    case F_SUBJECT:
        return mlg_is_subject(s, len) ? NULL
                                      : "is not a subject (1-128 printable characters)";
    case F_CODE:
        return s_is_code(s, len) ? NULL : "is not a code (A-Z and _, at most 32)";
    case F_NONE:
        if (!mlg_utf8_check(s, len, &chars))
            return "is not valid UTF-8";
        if (len && memchr(s, '\0', len))
            return "contains a NUL character";
        if (chars > max)
            return "is too long";
        return NULL;
    }
    return "has an unknown form";
}

static mlg_rc_t
s_read_time(const msgpack_object *o, mlg_time_t *t)
{
    msgpack_timestamp ts;
    if (!msgpack_object_to_timestamp(o, &ts) || ts.tv_nsec >= 1000000000u)
        return MLG_MALFORMED;
    t->sec = ts.tv_sec;
    t->nsec = ts.tv_nsec;
    return MLG_OK;
}

static mlg_rc_t
s_read_agencies(const msgpack_object *o, mlg_agency_t **list, size_t *count,
                const char *key, mlg_error_t *err)
{
    if (o->type != MSGPACK_OBJECT_ARRAY)
        return s_fail(err, MLG_MALFORMED, "key '%s' is %s, not an array", key,
                      s_type_name(o));
    if (o->via.array.size > MLG_MAX_RECIPIENTS)
        return s_fail(err, MLG_MALFORMED, "key '%s' holds %u agencies, at most %d", key,
                      o->via.array.size, MLG_MAX_RECIPIENTS);
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        const msgpack_object *e = &o->via.array.ptr[i];
        if (e->type != MSGPACK_OBJECT_STR
            || !mlg_is_agency_id(e->via.str.ptr, e->via.str.size))
            return s_fail(err, MLG_MALFORMED, "key '%s': item %u is not an agency id",
                          key, i);
        mlg_agency_t *slot = s_grow((void **)list, count, sizeof(mlg_agency_t));
        if (!slot)
            return s_fail(err, MLG_ERR_NOMEM, "could not allocate '%s'", key);
        memcpy(slot->id, e->via.str.ptr, e->via.str.size);
    }
    return MLG_OK;
}

static mlg_rc_t
s_read_denials(const msgpack_object *o, mlg_msg_t *msg, mlg_error_t *err)
{
    if (o->type != MSGPACK_OBJECT_ARRAY)
        return s_fail(err, MLG_MALFORMED, "key 'denied' is %s, not an array",
                      s_type_name(o));
    if (o->via.array.size > MLG_MAX_RECIPIENTS)
        return s_fail(err, MLG_MALFORMED, "key 'denied' holds %u entries, at most %d",
                      o->via.array.size, MLG_MAX_RECIPIENTS);
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        const msgpack_object *e = &o->via.array.ptr[i];
        if (e->type != MSGPACK_OBJECT_MAP)
            return s_fail(err, MLG_MALFORMED, "key 'denied': item %u is not a map", i);
        const msgpack_object *recipient = NULL, *reason = NULL;
        for (uint32_t k = 0; k < e->via.map.size; k++) {
            const msgpack_object_kv *kv = &e->via.map.ptr[k];
            const msgpack_object **slot = NULL;
            if (mlg_mp_str_eq(&kv->key, "recipient"))
                slot = &recipient;
            else if (mlg_mp_str_eq(&kv->key, "reason"))
                slot = &reason;
            else
                continue; /* unknown keys are ignored */
            if (*slot)
                return s_fail(err, MLG_MALFORMED, "key 'denied': item %u repeats a key",
                              i);
            *slot = &kv->val;
        }
        if (!recipient || recipient->type != MSGPACK_OBJECT_STR
            || !mlg_is_agency_id(recipient->via.str.ptr, recipient->via.str.size))
            return s_fail(err, MLG_MALFORMED,
                          "key 'denied': item %u has no agency id as 'recipient'", i);
        if (!reason || reason->type != MSGPACK_OBJECT_STR
            || !s_is_code(reason->via.str.ptr, reason->via.str.size))
            return s_fail(err, MLG_MALFORMED,
                          "key 'denied': item %u has no code as 'reason'", i);
        mlg_denial_t *d =
            s_grow((void **)&msg->denied, &msg->denied_count, sizeof(mlg_denial_t));
        if (!d)
            return s_fail(err, MLG_ERR_NOMEM, "could not allocate 'denied'");
        memcpy(d->recipient, recipient->via.str.ptr, recipient->via.str.size);
        memcpy(d->reason, reason->via.str.ptr, reason->via.str.size);
    }
    return MLG_OK;
}

/* A leg state: 1 to MLG_NOTICE_STATE_MAX of a-z. */
static bool
s_is_word(const char *s, size_t len)
{
    if (len == 0 || len > MLG_NOTICE_STATE_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] < 'a' || s[i] > 'z')
            return false;
    return true;
}

/* One notice's keys: code required, the others as they come; unknown
   keys ignored. */
static mlg_rc_t
s_read_notice(const msgpack_object *e, uint32_t i, mlg_notice_t *n, mlg_error_t *err)
{
    if (e->type != MSGPACK_OBJECT_MAP)
        return s_fail(err, MLG_MALFORMED, "key 'notices': item %u is not a map", i);
    static const char *const names[] = {"code", "referral_id", "recipient", "state",
                                        "since"};
    const msgpack_object *v[5] = {NULL, NULL, NULL, NULL, NULL};
    for (uint32_t k = 0; k < e->via.map.size; k++) {
        const msgpack_object_kv *kv = &e->via.map.ptr[k];
        for (int f = 0; f < 5; f++) {
            if (!mlg_mp_str_eq(&kv->key, names[f]))
                continue;
            if (v[f])
                return s_fail(err, MLG_MALFORMED, "key 'notices': item %u repeats a key",
                              i);
            v[f] = &kv->val;
        }
    }
    const msgpack_object *c = v[0], *id = v[1], *to = v[2], *st = v[3];
    if (!c || c->type != MSGPACK_OBJECT_STR
        || !s_is_code(c->via.str.ptr, c->via.str.size))
        return s_fail(err, MLG_MALFORMED, "key 'notices': item %u has no code as 'code'",
                      i);
    if (id
        && (id->type != MSGPACK_OBJECT_STR || id->via.str.size != MLG_UUID_LEN
            || !mlg_is_uuid(id->via.str.ptr, id->via.str.size)))
        return s_fail(err, MLG_MALFORMED,
                      "key 'notices': item %u: 'referral_id' is not a uuid", i);
    if (to
        && (to->type != MSGPACK_OBJECT_STR
            || !mlg_is_agency_id(to->via.str.ptr, to->via.str.size)))
        return s_fail(err, MLG_MALFORMED,
                      "key 'notices': item %u: 'recipient' is not an agency id", i);
    if (st
        && (st->type != MSGPACK_OBJECT_STR
            || !s_is_word(st->via.str.ptr, st->via.str.size)))
        return s_fail(err, MLG_MALFORMED,
                      "key 'notices': item %u: 'state' is not a state", i);
    if (v[4] && s_read_time(v[4], &n->since) != MLG_OK)
        return s_fail(err, MLG_MALFORMED,
                      "key 'notices': item %u: 'since' is not a msgpack timestamp", i);
    n->has_since = v[4] != NULL;
    memcpy(n->code, c->via.str.ptr, c->via.str.size);
    if (id)
        memcpy(n->referral_id, id->via.str.ptr, id->via.str.size);
    if (to)
        memcpy(n->recipient, to->via.str.ptr, to->via.str.size);
    if (st)
        memcpy(n->state, st->via.str.ptr, st->via.str.size);
    return MLG_OK;
}

static mlg_rc_t
s_read_notices(const msgpack_object *o, mlg_msg_t *msg, mlg_error_t *err)
{
    if (o->type != MSGPACK_OBJECT_ARRAY)
        return s_fail(err, MLG_MALFORMED, "key 'notices' is %s, not an array",
                      s_type_name(o));
    if (o->via.array.size > MLG_MAX_NOTICES)
        return s_fail(err, MLG_MALFORMED, "key 'notices' holds %u entries, at most %d",
                      o->via.array.size, MLG_MAX_NOTICES);
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        mlg_notice_t *n =
            s_grow((void **)&msg->notices, &msg->notices_count, sizeof(mlg_notice_t));
        if (!n)
            return s_fail(err, MLG_ERR_NOMEM, "could not allocate 'notices'");
        mlg_rc_t rc = s_read_notice(&o->via.array.ptr[i], i, n, err);
        if (rc != MLG_OK)
            return rc;
    }
    return MLG_OK;
}

/* Reads one key's value into the message. */
static mlg_rc_t
s_read_key(const s_key_t *k, const msgpack_object *o, mlg_msg_t *msg, mlg_error_t *err)
{
    char *base = (char *)msg;
    switch (k->kind) {
    case K_VERSION:
        if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            return s_fail(err, MLG_MALFORMED, "key 'v' is %s, not an unsigned integer",
                          s_type_name(o));
        if (o->via.u64 != MLG_PROTOCOL_VERSION)
            return s_fail(err, MLG_UNSUPPORTED_VERSION,
                          "protocol version %llu is not supported, this broker "
                          "speaks version %d",
                          (unsigned long long)o->via.u64, MLG_PROTOCOL_VERSION);
        *(uint64_t *)(base + k->offset) = o->via.u64;
        return MLG_OK;
    case K_UINT:
    case K_UINT_POS:
        if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            return s_fail(err, MLG_MALFORMED, "key '%s' is %s, not an unsigned integer",
                          k->key, s_type_name(o));
        if (k->kind == K_UINT_POS && o->via.u64 == 0)
            return s_fail(err, MLG_MALFORMED, "key '%s' must be at least 1", k->key);
        *(uint64_t *)(base + k->offset) = o->via.u64;
        return MLG_OK;
    case K_BOOL:
        if (o->type != MSGPACK_OBJECT_BOOLEAN)
            return s_fail(err, MLG_MALFORMED, "key '%s' is %s, not a boolean", k->key,
                          s_type_name(o));
        *(bool *)(base + k->offset) = o->via.boolean;
        return MLG_OK;
    case K_TEXT: {
        if (o->type != MSGPACK_OBJECT_STR)
            return s_fail(err, MLG_MALFORMED, "key '%s' is %s, not a string", k->key,
                          s_type_name(o));
        const char *s = o->via.str.ptr;
        size_t len = o->via.str.size;
        const char *why = s_check_form(k->form, s, len, k->max);
        if (why)
            return s_fail(err, MLG_MALFORMED, "key '%s' %s", k->key, why);
        /* Forms bound the bytes too; this holds for every table entry. */
        if (len >= k->bufsize)
            return s_fail(err, MLG_MALFORMED, "key '%s' is too long", k->key);
        if (len) /* an empty msgpack str may have a NULL ptr */
            memcpy(base + k->offset, s, len);
        (base + k->offset)[len] = '\0';
        return MLG_OK;
    }
    case K_TIME: {
        mlg_time_t *t = (mlg_time_t *)(base + k->offset);
        if (s_read_time(o, t) != MLG_OK)
            return s_fail(err, MLG_MALFORMED, "key '%s' is %s, not a msgpack timestamp",
                          k->key, s_type_name(o));
        if (k->offset == O(occurred_at))
            msg->has_occurred_at = true;
        return MLG_OK;
    }
    case K_AGENCIES:
        if (k->offset == O(to))
            return s_read_agencies(o, &msg->to, &msg->to_count, k->key, err);
        return s_read_agencies(o, &msg->routed, &msg->routed_count, k->key, err);
    case K_DENIALS: return s_read_denials(o, msg, err);
    case K_NOTICES: return s_read_notices(o, msg, err);
    case K_BODY:
        if (o->type != MSGPACK_OBJECT_MAP)
            return s_fail(err, MLG_MALFORMED, "key 'body' is %s, not a map",
                          s_type_name(o));
        msg->priv_->body_obj = o;
        return MLG_OK;
    }
    return s_fail(err, MLG_MALFORMED, "key '%s' has an unknown kind", k->key);
}

/* Reads a str header at p[*pos]; on success *s and *len hold its bytes
   and *pos is past it. Bounds were checked by the scanner already. */
static bool
s_raw_str(const uint8_t *p, size_t size, size_t *pos, const uint8_t **s, size_t *len)
{
    size_t i = *pos;
    if (i >= size)
        return false;
    uint8_t b = p[i];
    size_t n, hdr;
    if (b >= 0xa0 && b <= 0xbf) {
        n = b & 0x1f;
        hdr = 1;
    }
    else if (b == 0xd9 && i + 1 < size) {
        n = p[i + 1];
        hdr = 2;
    }
    else if (b == 0xda && i + 2 < size) {
        n = ((size_t)p[i + 1] << 8) | p[i + 2];
        hdr = 3;
    }
    else if (b == 0xdb && i + 4 < size) { /* any form may hold a short key */
        n = ((size_t)p[i + 1] << 24) | ((size_t)p[i + 2] << 16) | ((size_t)p[i + 3] << 8)
            | p[i + 4];
        hdr = 5;
    }
    else
        return false;
    if (n > size - i - hdr)
        return false;
    *s = p + i + hdr;
    *len = n;
    return true;
}

/* Finds where the first top-level "body" value lies in the raw frame. */
static bool
s_body_span(const uint8_t *p, size_t size, size_t *start, size_t *end)
{
    size_t pos = 0;
    uint32_t n;
    uint8_t b = p[0];
    if (b >= 0x80 && b <= 0x8f) {
        n = b & 0x0f;
        pos = 1;
    }
    else if (b == 0xde) {
        n = ((uint32_t)p[1] << 8) | p[2];
        pos = 3;
    }
    else {
        n = ((uint32_t)p[1] << 24) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 8)
            | p[4];
        pos = 5;
    }
    const char *why;
    for (uint32_t i = 0; i < n; i++) {
        size_t kpos = pos;
        const uint8_t *s = NULL;
        size_t len = 0;
        bool is_body =
            s_raw_str(p, size, &kpos, &s, &len) && len == 4 && memcmp(s, "body", 4) == 0;
        if (!mlg_mp_skip(p, size, &pos, MLG_MAX_DEPTH, &why))
            return false;
        size_t vstart = pos;
        if (!mlg_mp_skip(p, size, &pos, MLG_MAX_DEPTH, &why))
            return false;
        if (is_body) {
            *start = vstart;
            *end = pos;
            return true;
        }
    }
    return false;
}

/* Step 1: the op, first (it selects the table); every key a string. */
static mlg_rc_t
s_decode_op(const msgpack_object *root, mlg_msg_t *msg, mlg_error_t *err)
{
    const msgpack_object *op_val = NULL;
    for (uint32_t i = 0; i < root->via.map.size; i++) {
        const msgpack_object_kv *kv = &root->via.map.ptr[i];
        if (kv->key.type != MSGPACK_OBJECT_STR)
            return s_fail(err, MLG_MALFORMED, "map key %u is %s, not a string", i,
                          s_type_name(&kv->key));
        if (mlg_mp_str_eq(&kv->key, "op")) {
            if (op_val)
                return s_fail(err, MLG_MALFORMED, "key 'op' appears twice");
            op_val = &kv->val;
        }
    }
    if (!op_val)
        return s_fail(err, MLG_MALFORMED, "missing key 'op'");
    if (op_val->type != MSGPACK_OBJECT_STR)
        return s_fail(err, MLG_MALFORMED, "key 'op' is %s, not a string",
                      s_type_name(op_val));
    for (int op = MLG_OP_HELLO; op < MLG_OP_COUNT; op++)
        if (mlg_mp_str_eq(op_val, s_op_names[op]))
            msg->op = (mlg_op_t)op;
    if (msg->op == MLG_OP_NONE)
        return s_fail(err, MLG_UNKNOWN_OP, "op is not one of PROTOCOL.md");
    if (err)
        err->op = msg->op;
    return MLG_OK;
}

/* Step 2: each key of the op's table once, in table order; unknown keys
   ignored. */
static mlg_rc_t
s_decode_keys(const msgpack_object *root, mlg_msg_t *msg, mlg_error_t *err)
{
    const s_key_t *table = s_table(msg->op);
    const msgpack_object *vals[S_MAX_KEYS] = {0};
    for (uint32_t i = 0; i < root->via.map.size; i++) {
        const msgpack_object_kv *kv = &root->via.map.ptr[i];
        for (int k = 0; table[k].key; k++) {
            assert(k < S_MAX_KEYS);
            if (!mlg_mp_str_eq(&kv->key, table[k].key))
                continue;
            if (vals[k])
                return s_fail(err, MLG_MALFORMED, "key '%s' appears twice", table[k].key);
            vals[k] = &kv->val;
        }
    }
    for (int k = 0; table[k].key; k++) {
        if (!vals[k]) {
            if (table[k].required)
                return s_fail(err, MLG_MALFORMED, "missing key '%s'", table[k].key);
            continue;
        }
        mlg_rc_t rc = s_read_key(&table[k], vals[k], msg, err);
        if (rc != MLG_OK)
            return rc;
        if (err && k == 0 && msg->op == MLG_OP_PUBLISH)
            memcpy(err->id, msg->id, sizeof(err->id));
    }
    if (msg->op == MLG_OP_REJECT || msg->op == MLG_OP_ERROR)
        msg->code_rc = mlg_rc_from_wire(msg->code);
    return MLG_OK;
}

mlg_rc_t
mlg_msg_decode(const void *data, size_t size, mlg_msg_t **msg_p, mlg_error_t *err)
{
    assert(msg_p);
    *msg_p = NULL;
    if (err)
        memset(err, 0, sizeof(*err));
    const uint8_t *p = data;
    if (!p || size == 0)
        return s_fail(err, MLG_MALFORMED, "the frame is empty");
    if (!((p[0] >= 0x80 && p[0] <= 0x8f) || p[0] == 0xde || p[0] == 0xdf))
        return s_fail(err, MLG_MALFORMED, "the frame is not a msgpack map");

    mlg_msg_t *msg = mlg_msg_new(MLG_OP_NONE);
    if (!msg)
        return s_fail(err, MLG_ERR_NOMEM, "could not allocate a message");
    msg->v = 0;
    mlg_msg_priv_t *priv = msg->priv_;
    mlg_rc_t rc;
    priv->frame = malloc(size);
    if (!priv->frame) {
        rc = s_fail(err, MLG_ERR_NOMEM, "could not copy the frame");
        goto fail;
    }
    memcpy(priv->frame, p, size);

    const char *why = NULL;
    rc = mlg_mp_unpack(priv->frame, size, MLG_MAX_DEPTH, &priv->up, &why);
    priv->unpacked = true;
    if (rc != MLG_OK) {
        s_fail(err, rc, "the frame is not one msgpack map: %s", why);
        goto fail;
    }
    const msgpack_object *root = &priv->up.data;
    assert(root->type == MSGPACK_OBJECT_MAP);
    rc = s_decode_op(root, msg, err);
    if (rc == MLG_OK)
        rc = s_decode_keys(root, msg, err);
    if (rc != MLG_OK)
        goto fail;

    if (priv->body_obj) {
        size_t start = 0, end = 0;
        bool found = s_body_span(priv->frame, size, &start, &end);
        assert(found); /* the unpacked map has a "body" key */
        if (!found) {
            rc = s_fail(err, MLG_MALFORMED, "key 'body' could not be located");
            goto fail;
        }
        msg->body = priv->frame + start;
        msg->body_len = end - start;
    }
    *msg_p = msg;
    return MLG_OK;

fail:
    mlg_msg_destroy(&msg);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Encoding                                                            */

/* An sbuffer that remembers a failed write, so that an encoding cut
   short by lack of memory is never handed out. */
typedef struct {
    msgpack_sbuffer sb;
    bool failed;
} s_buf_t;

static int
s_write(void *data, const char *bytes, size_t len)
{
    s_buf_t *buf = data;
    if (msgpack_sbuffer_write(&buf->sb, bytes, len) != 0) {
        buf->failed = true;
        return -1;
    }
    return 0;
}

static void
s_pack_cstr(msgpack_packer *pk, const char *s)
{
    size_t len = strlen(s);
    msgpack_pack_str_with_body(pk, s, len);
}

/* A text field goes out as valid UTF-8 of at most max characters,
   whatever the struct holds (a reason may quote a client's bytes): the
   codec never writes what it would refuse to read. */
static void
s_pack_text(msgpack_packer *pk, const char *s, size_t max)
{
    size_t len = strlen(s), chars;
    if (mlg_utf8_check(s, len, &chars) && chars <= max) {
        msgpack_pack_str_with_body(pk, s, len);
        return;
    }
    char clean[MLG_STRBUF(MLG_REASON_MAX)];
    assert(max <= MLG_REASON_MAX); /* the longest text of any table */
    size_t n = mlg_text_clean(clean, sizeof(clean), s, len, max);
    msgpack_pack_str_with_body(pk, clean, n);
}

static void
s_pack_key(msgpack_packer *pk, const char *key)
{
    s_pack_cstr(pk, key);
}

static void
s_pack_time(msgpack_packer *pk, mlg_time_t t)
{
    msgpack_timestamp ts = {.tv_sec = t.sec, .tv_nsec = t.nsec};
    msgpack_pack_timestamp(pk, &ts);
}

static void
s_pack_agencies(msgpack_packer *pk, const mlg_agency_t *list, size_t count)
{
    msgpack_pack_array(pk, count);
    for (size_t i = 0; i < count; i++)
        s_pack_cstr(pk, list[i].id);
}

/* A notice: its code, and each other field it holds. */
static void
s_pack_notice(msgpack_packer *pk, const mlg_notice_t *n)
{
    size_t keys = 1 + (n->referral_id[0] != '\0') + (n->recipient[0] != '\0')
                  + (n->state[0] != '\0') + n->has_since;
    msgpack_pack_map(pk, keys);
    s_pack_key(pk, "code");
    s_pack_cstr(pk, n->code);
    if (n->referral_id[0]) {
        s_pack_key(pk, "referral_id");
        s_pack_cstr(pk, n->referral_id);
    }
    if (n->recipient[0]) {
        s_pack_key(pk, "recipient");
        s_pack_cstr(pk, n->recipient);
    }
    if (n->state[0]) {
        s_pack_key(pk, "state");
        s_pack_cstr(pk, n->state);
    }
    if (n->has_since) {
        s_pack_key(pk, "since");
        s_pack_time(pk, n->since);
    }
}

/* Values of a table key that are present in the struct. */
static bool
s_present(const s_key_t *k, const mlg_msg_t *msg)
{
    if (k->required)
        return true;
    const char *base = (const char *)msg;
    switch (k->kind) {
    case K_TEXT: return base[k->offset] != '\0';
    case K_UINT: return *(const uint64_t *)(base + k->offset) != 0;
    case K_TIME: return msg->has_occurred_at;
    case K_AGENCIES: return msg->to_count > 0;
    case K_NOTICES: return msg->notices_count > 0;
    case K_VERSION:
    case K_UINT_POS:
    case K_BOOL:
    case K_DENIALS:
    case K_BODY: return true;
    }
    return true;
}

/* One key's value, as the struct holds it. */
static void
s_pack_value(msgpack_packer *pk, s_buf_t *buf, const s_key_t *key, const mlg_msg_t *msg)
{
    const char *base = (const char *)msg;
    switch (key->kind) {
    case K_VERSION:
    case K_UINT:
    case K_UINT_POS:
        msgpack_pack_uint64(pk, *(const uint64_t *)(base + key->offset));
        break;
    case K_BOOL:
        if (*(const bool *)(base + key->offset))
            msgpack_pack_true(pk);
        else
            msgpack_pack_false(pk);
        break;
    case K_TEXT: s_pack_text(pk, base + key->offset, key->max); break;
    case K_TIME: s_pack_time(pk, *(const mlg_time_t *)(base + key->offset)); break;
    case K_AGENCIES:
        if (key->offset == O(to))
            s_pack_agencies(pk, msg->to, msg->to_count);
        else
            s_pack_agencies(pk, msg->routed, msg->routed_count);
        break;
    case K_DENIALS:
        msgpack_pack_array(pk, msg->denied_count);
        for (size_t i = 0; i < msg->denied_count; i++) {
            msgpack_pack_map(pk, 2);
            s_pack_key(pk, "recipient");
            s_pack_cstr(pk, msg->denied[i].recipient);
            s_pack_key(pk, "reason");
            s_pack_cstr(pk, msg->denied[i].reason);
        }
        break;
    case K_NOTICES:
        msgpack_pack_array(pk, msg->notices_count);
        for (size_t i = 0; i < msg->notices_count; i++)
            s_pack_notice(pk, &msg->notices[i]);
        break;
    case K_BODY:
        /* The body goes out as the exact bytes held; the packer writes
           straight to the buffer, so appending is in order. */
        if (msg->body_len)
            s_write(buf, (const char *)msg->body, msg->body_len);
        else
            msgpack_pack_map(pk, 0);
        break;
    }
}

/* The keys of table[from..to) that the message holds, each with its
   value; how many. */
static size_t
s_pack_keys(msgpack_packer *pk, s_buf_t *buf, const s_key_t *table, int from, int to,
            const mlg_msg_t *msg)
{
    size_t n = 0;
    for (int k = from; k < to; k++) {
        if (!s_present(&table[k], msg))
            continue;
        s_pack_key(pk, table[k].key);
        s_pack_value(pk, buf, &table[k], msg);
        n++;
    }
    return n;
}

/* The buffer's bytes handed out, unless a write failed. */
static mlg_rc_t
s_release(s_buf_t *buf, uint8_t **data_p, size_t *size_p)
{
    if (buf->failed || !buf->sb.data) {
        msgpack_sbuffer_destroy(&buf->sb);
        return MLG_ERR_NOMEM;
    }
    *size_p = buf->sb.size;
    *data_p = (uint8_t *)msgpack_sbuffer_release(&buf->sb);
    return MLG_OK;
}

static int
s_table_len(const s_key_t *table)
{
    int n = 0;
    while (table[n].key)
        n++;
    return n;
}

mlg_rc_t
mlg_msg_encode(const mlg_msg_t *msg, uint8_t **data_p, size_t *size_p)
{
    assert(msg && data_p && size_p);
    const s_key_t *table = s_table(msg->op);
    if (!table)
        return MLG_ERR_USAGE;
    s_buf_t buf = {.failed = false};
    msgpack_sbuffer_init(&buf.sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &buf, s_write);

    int len = s_table_len(table);
    size_t n = 1;
    for (int k = 0; k < len; k++)
        n += s_present(&table[k], msg);
    msgpack_pack_map(&pk, n);
    s_pack_key(&pk, "op");
    s_pack_cstr(&pk, s_op_names[msg->op]);
    s_pack_keys(&pk, &buf, table, 0, len, msg);
    return s_release(&buf, data_p, size_p);
}

/* ---- a DELIVER packed once, sent many times ------------------------- */

struct mlg_packed_deliver_t {
    uint8_t *middle; /* the pairs between "delivery" and "attempt" */
    size_t len;
    size_t pairs;
};

mlg_packed_deliver_t *
mlg_packed_deliver_new(const mlg_msg_t *deliver)
{
    assert(deliver && deliver->op == MLG_OP_DELIVER);
    int len = s_table_len(s_deliver);
    /* the two keys that change between attempts are the table's ends */
    assert(strcmp(s_deliver[0].key, "delivery") == 0);
    assert(strcmp(s_deliver[len - 1].key, "attempt") == 0);
    mlg_packed_deliver_t *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    s_buf_t buf = {.failed = false};
    msgpack_sbuffer_init(&buf.sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &buf, s_write);
    self->pairs = s_pack_keys(&pk, &buf, s_deliver, 1, len - 1, deliver);
    if (s_release(&buf, &self->middle, &self->len) != MLG_OK) {
        free(self);
        return NULL;
    }
    return self;
}

void
mlg_packed_deliver_destroy(mlg_packed_deliver_t **self_p)
{
    assert(self_p);
    mlg_packed_deliver_t *self = *self_p;
    if (!self)
        return;
    free(self->middle);
    free(self);
    *self_p = NULL;
}

size_t
mlg_packed_deliver_size(const mlg_packed_deliver_t *self)
{
    return self->len;
}

mlg_rc_t
mlg_packed_deliver_encode(const mlg_packed_deliver_t *self, uint64_t delivery,
                          uint64_t attempt, uint8_t **data_p, size_t *size_p)
{
    assert(self && data_p && size_p);
    s_buf_t buf = {.failed = false};
    msgpack_sbuffer_init(&buf.sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &buf, s_write);
    /* mlg_msg_encode's order: op, delivery, the middle, attempt */
    msgpack_pack_map(&pk, self->pairs + 3);
    s_pack_key(&pk, "op");
    s_pack_cstr(&pk, s_op_names[MLG_OP_DELIVER]);
    s_pack_key(&pk, "delivery");
    msgpack_pack_uint64(&pk, delivery);
    s_write(&buf, (const char *)self->middle, self->len);
    s_pack_key(&pk, "attempt");
    msgpack_pack_uint64(&pk, attempt);
    return s_release(&buf, data_p, size_p);
}
