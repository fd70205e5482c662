/*  client.c: the ZeroMQ client of libmaillage (see client.h).

    Built on czmq's zsock; every map goes through the codec both ways,
    so the client sends nothing the broker would find malformed and
    hands back nothing it did not check. */

#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "maillage/client.h"

struct mlg_client_t {
    zsock_t *dealer;
    char session[MLG_STRBUF(MLG_SESSION_MAX)];
    uint64_t heartbeat_ms;
    int64_t last_sent;
};

static mlg_rc_t
s_send(mlg_client_t *self, const mlg_msg_t *msg)
{
    uint8_t *data;
    size_t size;
    mlg_rc_t rc = mlg_msg_encode(msg, &data, &size);
    if (rc != MLG_OK)
        return rc;
    zframe_t *frame = zframe_new(data, size);
    free(data);
    if (!frame || zframe_send(&frame, self->dealer, 0) != 0) {
        zframe_destroy(&frame);
        return MLG_ERR_IO;
    }
    self->last_sent = zclock_mono();
    return MLG_OK;
}

static mlg_msg_t *
s_recv_one(mlg_client_t *self, int timeout_ms)
{
    zsock_set_rcvtimeo(self->dealer, timeout_ms);
    zframe_t *frame = zframe_recv(self->dealer);
    if (!frame)
        return NULL;
    mlg_msg_t *msg = NULL;
    mlg_error_t err;
    mlg_rc_t rc = mlg_msg_decode(zframe_data(frame), zframe_size(frame), &msg, &err);
    zframe_destroy(&frame);
    if (rc != MLG_OK) {
        /* a broker bug or a stranger on the line: say so, hand back an
           ERROR map so the caller sees it */
        msg = mlg_msg_new(MLG_OP_ERROR);
        if (msg) {
            snprintf(msg->code, sizeof(msg->code), "%s", mlg_rc_wire(MLG_MALFORMED));
            snprintf(msg->reason, sizeof(msg->reason),
                     "undecodable map from the broker: %s", err.reason);
        }
    }
    return msg;
}

mlg_msg_t *
mlg_client_recv(mlg_client_t *self, int timeout_ms)
{
    int64_t deadline = timeout_ms < 0 ? -1 : zclock_mono() + timeout_ms;
    for (;;) {
        int64_t now = zclock_mono();
        int64_t beat =
            self->heartbeat_ms ? self->last_sent + (int64_t)self->heartbeat_ms : -1;
        if (beat >= 0 && now >= beat) {
            mlg_msg_t *ping = mlg_msg_new(MLG_OP_PING);
            s_send(self, ping);
            mlg_msg_destroy(&ping);
            continue;
        }
        int64_t wait = -1;
        if (deadline >= 0)
            wait = deadline - now;
        if (beat >= 0 && (wait < 0 || beat - now < wait))
            wait = beat - now;
        if (deadline >= 0 && wait < 0)
            wait = 0;
        mlg_msg_t *msg = s_recv_one(self, (int)wait);
        if (msg && msg->op == MLG_OP_PONG) {
            mlg_msg_destroy(&msg);
            continue;
        }
        if (msg)
            return msg;
        if (deadline >= 0 && zclock_mono() >= deadline)
            return NULL;
    }
}

static mlg_client_t *s_new(const char *endpoint, const char *agency, const char *name,
                           uint64_t credit, int timeout_ms, const char *cert_file,
                           const char *server_key, mlg_error_t *err);

mlg_client_t *
mlg_client_new(const char *endpoint, const char *agency, const char *name,
               uint64_t credit, int timeout_ms, mlg_error_t *err)
{
    return s_new(endpoint, agency, name, credit, timeout_ms, NULL, NULL, err);
}

mlg_client_t *
mlg_client_new_curve(const char *endpoint, const char *agency, const char *name,
                     uint64_t credit, int timeout_ms, const char *cert_file,
                     const char *server_key, mlg_error_t *err)
{
    return s_new(endpoint, agency, name, credit, timeout_ms, cert_file, server_key, err);
}

static mlg_client_t *
s_new(const char *endpoint, const char *agency, const char *name, uint64_t credit,
      int timeout_ms, const char *cert_file, const char *server_key, mlg_error_t *err)
{
    mlg_error_t dummy;
    if (!err)
        err = &dummy;
    memset(err, 0, sizeof(*err));
    mlg_client_t *self = calloc(1, sizeof(*self));
    if (!self) {
        err->rc = MLG_ERR_NOMEM;
        return NULL;
    }
    self->dealer = zsock_new(ZMQ_DEALER);
    if (!self->dealer) {
        free(self);
        err->rc = MLG_ERR_IO;
        snprintf(err->reason, sizeof(err->reason), "could not create a socket");
        return NULL;
    }
    zsock_set_linger(self->dealer, 500);
    if (cert_file) {
        zcert_t *cert = zcert_load(cert_file);
        if (!cert || !server_key || strlen(server_key) != 40) {
            err->rc = MLG_ERR_USAGE;
            snprintf(err->reason, sizeof(err->reason),
                     cert ? "the broker's public key is not a Z85 key"
                          : "could not load the certificate %.300s",
                     cert_file);
            zcert_destroy(&cert);
            mlg_client_destroy(&self);
            return NULL;
        }
        zcert_apply(cert, self->dealer);
        zcert_destroy(&cert);
        zsock_set_curve_serverkey(self->dealer, server_key);
    }
    if (zsock_connect(self->dealer, "%s", endpoint) != 0) {
        err->rc = MLG_ERR_USAGE;
        snprintf(err->reason, sizeof(err->reason), "could not connect to %s", endpoint);
        mlg_client_destroy(&self);
        return NULL;
    }
    mlg_msg_t *hello = mlg_msg_new(MLG_OP_HELLO);
    snprintf(hello->agency, sizeof(hello->agency), "%s", agency);
    snprintf(hello->client, sizeof(hello->client), "%s", name ? name : "");
    hello->credit = credit;
    mlg_rc_t rc = s_send(self, hello);
    mlg_msg_destroy(&hello);
    mlg_msg_t *answer = rc == MLG_OK ? s_recv_one(self, timeout_ms) : NULL;
    if (!answer || answer->op != MLG_OP_WELCOME) {
        if (answer && answer->op == MLG_OP_ERROR) {
            err->rc = answer->code_rc ? answer->code_rc : MLG_MALFORMED;
            snprintf(err->reason, sizeof(err->reason), "%.500s", answer->reason);
        }
        else {
            err->rc = MLG_UNAVAILABLE;
            snprintf(err->reason, sizeof(err->reason), "no WELCOME from %s within %d ms",
                     endpoint, timeout_ms);
        }
        mlg_msg_destroy(&answer);
        zsock_destroy(&self->dealer);
        free(self);
        return NULL;
    }
    snprintf(self->session, sizeof(self->session), "%s", answer->session);
    self->heartbeat_ms = answer->heartbeat_ms;
    mlg_msg_destroy(&answer);
    return self;
}

void
mlg_client_destroy(mlg_client_t **self_p)
{
    mlg_client_t *self = *self_p;
    if (!self)
        return;
    if (self->session[0]) {
        mlg_msg_t *bye = mlg_msg_new(MLG_OP_BYE);
        s_send(self, bye);
        mlg_msg_destroy(&bye);
    }
    zsock_destroy(&self->dealer);
    free(self);
    *self_p = NULL;
}

mlg_rc_t
mlg_client_send(mlg_client_t *self, const mlg_msg_t *msg)
{
    return s_send(self, msg);
}

mlg_rc_t
mlg_client_ack(mlg_client_t *self, uint64_t delivery)
{
    mlg_msg_t *ack = mlg_msg_new(MLG_OP_ACK);
    ack->delivery = delivery;
    mlg_rc_t rc = s_send(self, ack);
    mlg_msg_destroy(&ack);
    return rc;
}

mlg_rc_t
mlg_client_nack(mlg_client_t *self, uint64_t delivery, bool requeue, const char *reason)
{
    mlg_msg_t *nack = mlg_msg_new(MLG_OP_NACK);
    nack->delivery = delivery;
    nack->requeue = requeue;
    snprintf(nack->reason, sizeof(nack->reason), "%s", reason ? reason : "");
    mlg_rc_t rc = s_send(self, nack);
    mlg_msg_destroy(&nack);
    return rc;
}

const char *
mlg_client_session(const mlg_client_t *self)
{
    return self->session;
}

uint64_t
mlg_client_heartbeat_ms(const mlg_client_t *self)
{
    return self->heartbeat_ms;
}
