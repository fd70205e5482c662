/*  client.h: a client of maillage-broker over ZeroMQ (PROTOCOL.md).

    One client is one DEALER connection acting for one agency. It says
    HELLO, waits for WELCOME, and then sends maps and hands back, one at a
    time, the maps the broker sends (CONFIRM, REJECT, DELIVER, ERROR):
    answers and deliveries arrive in the order the broker sent them, and
    a publisher may have many publishes outstanding, matched by `id`.
    While the caller waits in mlg_client_recv(), the client sends PING
    when it has been silent for heartbeat_ms and swallows PONG.

    A publisher that must not lose or double anything (the adapter host)
    uses mlg_client_publish(): the client keeps each publish until the
    caller settles it on its CONFIRM or REJECT, and mlg_client_reconnect()
    joins again and sends every unsettled one again with the same id,
    which the broker answers CONFIRM duplicate when it had stored it.

    Not thread-safe: one thread uses a client. */

#ifndef MAILLAGE_CLIENT_H
#define MAILLAGE_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "maillage/codec.h"
#include "maillage/export.h"

typedef struct mlg_client_t mlg_client_t;

/* Connects to `endpoint` as `agency` and completes HELLO/WELCOME within
   timeout_ms. `name` (may be NULL) is the client's name for operators;
   `credit` how many deliveries may be in flight to it (0: publish only).
   NULL on failure, with the broker's ERROR code and reason in err (or
   MLG_UNAVAILABLE when no WELCOME came in time). */
MLG_EXPORT mlg_client_t *mlg_client_new(const char *endpoint, const char *agency,
                                        const char *name, uint64_t credit, int timeout_ms,
                                        mlg_error_t *err);

/* The same over CurveZMQ: `cert_file` is the client's certificate in
   czmq's zcert format (the secret file, holding both keys), and
   `server_key` the broker's public key in Z85. NULL with MLG_ERR_USAGE
   when the certificate cannot be loaded. */
MLG_EXPORT mlg_client_t *mlg_client_new_curve(const char *endpoint, const char *agency,
                                              const char *name, uint64_t credit,
                                              int timeout_ms, const char *cert_file,
                                              const char *server_key, mlg_error_t *err);

/* Says BYE and closes. */
MLG_EXPORT void mlg_client_destroy(mlg_client_t **self_p);

/* Sends one map (a PUBLISH, say). MLG_ERR_IO when it could not be sent. */
MLG_EXPORT mlg_rc_t mlg_client_send(mlg_client_t *self, const mlg_msg_t *msg);

/* The next map from the broker, or NULL after timeout_ms (-1: wait
   forever). The caller owns it. */
MLG_EXPORT mlg_msg_t *mlg_client_recv(mlg_client_t *self, int timeout_ms);

MLG_EXPORT mlg_rc_t mlg_client_ack(mlg_client_t *self, uint64_t delivery);
MLG_EXPORT mlg_rc_t mlg_client_nack(mlg_client_t *self, uint64_t delivery, bool requeue,
                                    const char *reason);

/* Sends a PUBLISH and keeps a copy of it, with the caller's `tag`, until
   mlg_client_settle(). The copy is kept even when the send failed
   (MLG_ERR_IO: no connection); the next reconnection sends it.
   MLG_ERR_USAGE when an unsettled publish has this id already. */
MLG_EXPORT mlg_rc_t mlg_client_publish(mlg_client_t *self, const mlg_msg_t *msg,
                                       void *tag);

/* Sends a kept publish again (after a REJECT UNAVAILABLE, say).
   MLG_ERR_USAGE when no unsettled publish has this id. */
MLG_EXPORT mlg_rc_t mlg_client_resend(mlg_client_t *self, const char *id);

/* Forgets the kept publish `id` (its CONFIRM or REJECT came): true and
   its tag in *tag_p when it was kept, false otherwise (a stray answer). */
MLG_EXPORT bool mlg_client_settle(mlg_client_t *self, const char *id, void **tag_p);

/* How many publishes are kept, unsettled. */
MLG_EXPORT size_t mlg_client_unconfirmed(const mlg_client_t *self);

/* Closes the connection, opens a new one with the same parameters, says
   HELLO and waits for WELCOME within timeout_ms; then sends every kept
   publish again in the order they were first sent. Deliveries in flight
   on the old connection are the broker's to requeue. On failure the
   client stays usable with no connection (sends fail with MLG_ERR_IO,
   receives return NULL) until a later reconnection succeeds; err says
   why (MLG_UNAVAILABLE when no WELCOME came). */
MLG_EXPORT mlg_rc_t mlg_client_reconnect(mlg_client_t *self, int timeout_ms,
                                         mlg_error_t *err);

/* True while the client has a connection that was WELCOMEd. */
MLG_EXPORT bool mlg_client_connected(const mlg_client_t *self);

/* Milliseconds since the broker last sent anything (PONG included): past
   3 x heartbeat, the connection is as good as lost. */
MLG_EXPORT int64_t mlg_client_silence_ms(const mlg_client_t *self);

/* The session id and heartbeat the broker gave in WELCOME. */
MLG_EXPORT const char *mlg_client_session(const mlg_client_t *self);
MLG_EXPORT uint64_t mlg_client_heartbeat_ms(const mlg_client_t *self);

#endif
