/*  codec.h: the maps of the wire protocol (PROTOCOL.md §3, §4) as C
    structures, and their MessagePack encoding.

    One mlg_msg_t holds any of the twelve maps; `op` says which, and only
    the fields of that op are meaningful (the table in each field's
    comment). Strings are NUL-terminated copies in fixed buffers, sized by
    limits.h; an empty optional string means "absent".

    Decoding is strict and total: whatever the bytes, mlg_msg_decode()
    either fills a message that satisfies every rule of PROTOCOL.md or
    returns the §5 code and a reason sentence. It never reads past the
    input and never allocates more than a bounded multiple of the input
    size. Unknown keys are ignored; duplicate known keys are MALFORMED.

    Ownership: a message owns its body bytes and its arrays; the caller
    owns the message and frees it with mlg_msg_destroy(). Not thread-safe:
    one message is used by one thread at a time. */

#ifndef MAILLAGE_CODEC_H
#define MAILLAGE_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "maillage/export.h"
#include "maillage/limits.h"
#include "maillage/rc.h"

typedef enum {
    MLG_OP_NONE = 0,
    /* client -> broker */
    MLG_OP_HELLO,
    MLG_OP_PUBLISH,
    MLG_OP_ACK,
    MLG_OP_NACK,
    MLG_OP_PING,
    MLG_OP_BYE,
    /* broker -> client */
    MLG_OP_WELCOME,
    MLG_OP_CONFIRM,
    MLG_OP_REJECT,
    MLG_OP_DELIVER,
    MLG_OP_PONG,
    MLG_OP_ERROR,
} mlg_op_t;

#define MLG_OP_COUNT 13

/* A MessagePack timestamp (extension type -1). */
typedef struct {
    int64_t sec;
    uint32_t nsec; /* < 1,000,000,000 */
} mlg_time_t;

typedef struct {
    char id[MLG_AGENCY_ID_MAX + 1];
} mlg_agency_t;

/* One entry of a CONFIRM's `denied`. */
typedef struct {
    char recipient[MLG_AGENCY_ID_MAX + 1];
    char reason[MLG_CODE_MAX + 1]; /* a §7 reason code */
} mlg_denial_t;

/* One entry of a CONFIRM's or DELIVER's `notices` (PROTOCOL.md §9):
   something the broker tells about a message, as DUPLICATE_REFERRAL. A
   CONFIRM's names the other referral's leg (recipient, state); a
   DELIVER's does not (its recipient holds both). */
typedef struct {
    char code[MLG_CODE_MAX + 1];
    char referral_id[MLG_UUID_LEN + 1];
    char recipient[MLG_AGENCY_ID_MAX + 1]; /* CONFIRM; "" in a DELIVER */
    char state[MLG_NOTICE_STATE_MAX + 1];  /* CONFIRM; "" in a DELIVER */
    bool has_since;
    mlg_time_t since;
} mlg_notice_t;

typedef struct mlg_msg_priv_t mlg_msg_priv_t;

typedef struct mlg_msg_t {
    mlg_op_t op;

    uint64_t v;                                /* HELLO WELCOME: 1 */
    char agency[MLG_AGENCY_ID_MAX + 1];        /* HELLO WELCOME */
    char client[MLG_STRBUF(MLG_CLIENT_MAX)];   /* HELLO, optional */
    uint64_t credit;                           /* HELLO, default 0 */
    char session[MLG_STRBUF(MLG_SESSION_MAX)]; /* WELCOME */
    uint64_t heartbeat_ms;                     /* WELCOME */
    uint64_t max_message_bytes;                /* WELCOME */

    char id[MLG_UUID_LEN + 1];   /* PUBLISH CONFIRM REJECT DELIVER */
    char type[MLG_TYPE_MAX + 1]; /* PUBLISH DELIVER */
    uint64_t version;            /* PUBLISH DELIVER, >= 1 */
    mlg_agency_t *to;            /* PUBLISH, optional */
    size_t to_count;
    char subject[MLG_STRBUF(MLG_SUBJECT_MAX)];         /* PUBLISH DELIVER, optional */
    char purpose[MLG_PURPOSE_MAX + 1];                 /* PUBLISH DELIVER, optional */
    char correlation[MLG_STRBUF(MLG_CORRELATION_MAX)]; /* optional */
    bool has_occurred_at;                              /* PUBLISH DELIVER */
    mlg_time_t occurred_at;
    const uint8_t *body; /* PUBLISH DELIVER: one msgpack map, as received */
    size_t body_len;

    uint64_t delivery;                       /* ACK NACK DELIVER */
    bool requeue;                            /* NACK */
    char reason[MLG_STRBUF(MLG_REASON_MAX)]; /* NACK REJECT ERROR */

    uint64_t seq;         /* CONFIRM */
    bool duplicate;       /* CONFIRM */
    mlg_agency_t *routed; /* CONFIRM */
    size_t routed_count;
    mlg_denial_t *denied; /* CONFIRM */
    size_t denied_count;

    char code[MLG_CODE_MAX + 1]; /* REJECT ERROR: a §5 name */
    mlg_rc_t code_rc;            /* REJECT ERROR: that code, MLG_OK if unknown */

    char from[MLG_AGENCY_ID_MAX + 1]; /* DELIVER */
    mlg_time_t received_at;           /* DELIVER */
    uint64_t attempt;                 /* DELIVER, >= 1 */

    mlg_notice_t *notices; /* CONFIRM DELIVER: only when there is one */
    size_t notices_count;

    mlg_msg_priv_t *priv_; /* the codec's: decoded frame, owned body */
} mlg_msg_t;

/* A fingerprint of mlg_msg_t's layout: its size and the offset of each
   field that follows a buffer sized by limits.h, as a constant
   expression. A plugin carries the one it was built with and the
   adapter host refuses one that differs (adapter.h), so a change of
   limits.h can never make a plugin misread a message. */
#define MLG_MSG_LAYOUT_MIX(h, f) ((h)*31u + (uint32_t)offsetof(mlg_msg_t, f))
#define MLG_MSG_LAYOUT_MIX3(h, a, b, c)                                                  \
    MLG_MSG_LAYOUT_MIX(MLG_MSG_LAYOUT_MIX(MLG_MSG_LAYOUT_MIX(h, a), b), c)
#define MLG_MSG_LAYOUT                                                                   \
    MLG_MSG_LAYOUT_MIX(                                                                  \
        MLG_MSG_LAYOUT_MIX3(                                                             \
            MLG_MSG_LAYOUT_MIX3(                                                         \
                MLG_MSG_LAYOUT_MIX3(MLG_MSG_LAYOUT_MIX3((uint32_t)sizeof(mlg_msg_t),     \
                                                        client, credit, heartbeat_ms),   \
                                    type, version, purpose),                             \
                correlation, has_occurred_at, delivery),                                 \
            seq, code_rc, priv_),                                                        \
        notices)

/* What went wrong when a frame could not be decoded. */
typedef struct mlg_error_t {
    mlg_rc_t rc;               /* MLG_MALFORMED, MLG_UNKNOWN_OP, MLG_UNSUPPORTED_VERSION,
                                  or MLG_ERR_NOMEM */
    mlg_op_t op;               /* the op, when it could be read; MLG_OP_NONE otherwise */
    char id[MLG_UUID_LEN + 1]; /* PUBLISH's id when it could be read: the
                                  answer is then REJECT with this id */
    char reason[512];          /* a lowercase sentence, no final period */
} mlg_error_t;

/* A new, empty message of that op. NULL when out of memory. */
MLG_EXPORT mlg_msg_t *mlg_msg_new(mlg_op_t op);

/* Frees the message and everything it owns; sets *self_p to NULL. */
MLG_EXPORT void mlg_msg_destroy(mlg_msg_t **self_p);

/* Copies `len` bytes of one msgpack map as the body. */
MLG_EXPORT mlg_rc_t mlg_msg_set_body(mlg_msg_t *self, const void *body, size_t len);

/* Appends to `to`, `routed`, `denied`. MLG_ERR_USAGE for a value that is
   not an agency id (or a reason longer than a code), or past
   MLG_MAX_RECIPIENTS. */
MLG_EXPORT mlg_rc_t mlg_msg_add_to(mlg_msg_t *self, const char *agency);
MLG_EXPORT mlg_rc_t mlg_msg_add_routed(mlg_msg_t *self, const char *agency);
MLG_EXPORT mlg_rc_t mlg_msg_add_denied(mlg_msg_t *self, const char *recipient,
                                       const char *reason);

/* Appends to `notices`: a code, and the other fields as they apply.
   MLG_ERR_USAGE for a code that is not one, or past MLG_MAX_NOTICES. */
MLG_EXPORT mlg_rc_t mlg_msg_add_notice(mlg_msg_t *self, const mlg_notice_t *notice);

/* Encodes the message as one msgpack map. On success *data_p is a
   malloc'd buffer the caller frees with free(). Encoding does not check
   the fields (the receiver does): it writes what the struct holds. */
MLG_EXPORT mlg_rc_t mlg_msg_encode(const mlg_msg_t *self, uint8_t **data_p,
                                   size_t *size_p);

/* A DELIVER encoded once and sent at each attempt: every key but
   `delivery` and `attempt`, which each encoding adds. Its encodings are
   mlg_msg_encode's byte for byte. A broker's read-ahead holds these
   rather than whole messages. */
typedef struct mlg_packed_deliver_t mlg_packed_deliver_t;

/* `deliver` (op MLG_OP_DELIVER) packed; NULL when out of memory. */
MLG_EXPORT mlg_packed_deliver_t *mlg_packed_deliver_new(const mlg_msg_t *deliver);
MLG_EXPORT void mlg_packed_deliver_destroy(mlg_packed_deliver_t **self_p);
/* The bytes it holds. */
MLG_EXPORT size_t mlg_packed_deliver_size(const mlg_packed_deliver_t *self);
/* The DELIVER with `delivery` and `attempt`, as mlg_msg_encode gives. */
MLG_EXPORT mlg_rc_t mlg_packed_deliver_encode(const mlg_packed_deliver_t *self,
                                              uint64_t delivery, uint64_t attempt,
                                              uint8_t **data_p, size_t *size_p);

/* Decodes one frame. On success *msg_p is a new message (the caller
   owns it) and MLG_OK is returned; otherwise *msg_p is NULL, `err` says
   why and its rc is returned. `err` may be NULL. */
MLG_EXPORT mlg_rc_t mlg_msg_decode(const void *data, size_t size, mlg_msg_t **msg_p,
                                   mlg_error_t *err);

/* "HELLO" for MLG_OP_HELLO; NULL for MLG_OP_NONE. */
MLG_EXPORT const char *mlg_op_name(mlg_op_t op);

/* Wall-clock time now. */
MLG_EXPORT mlg_time_t mlg_time_now(void);

/* t in microseconds since the epoch (the broker's and the database's
   unit), rounded down. */
MLG_EXPORT int64_t mlg_time_us(mlg_time_t t);

#endif
