/*  client.h: a client of maillage-broker over ZeroMQ (PROTOCOL.md).

    One client is one DEALER connection acting for one agency. It says
    HELLO, waits for WELCOME, and then sends maps and hands back, one at a
    time, the maps the broker sends (CONFIRM, REJECT, DELIVER, ERROR):
    answers and deliveries arrive in the order the broker sent them, and
    a publisher may have many publishes outstanding, matched by `id`.
    While the caller waits in mlg_client_recv(), the client sends PING
    when it has been silent for heartbeat_ms and swallows PONG.

    Not thread-safe: one thread uses a client. Reconnection and resending
    of unconfirmed publishes are for the adapter host built on top. */

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

/* The session id and heartbeat the broker gave in WELCOME. */
MLG_EXPORT const char *mlg_client_session(const mlg_client_t *self);
MLG_EXPORT uint64_t mlg_client_heartbeat_ms(const mlg_client_t *self);

#endif
