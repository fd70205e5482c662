/*  client.c: the ZeroMQ client of libmaillage (see client.h).

    Built on czmq's zsock; every map goes through the codec both ways,
    so the client sends nothing the broker would find malformed and
    hands back nothing it did not check. */

#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "maillage/client.h"

/* A publish sent and not yet answered: its frame, kept to send again. */
typedef struct {
    uint8_t *data;
    size_t size;
    uint64_t order; /* sending order, kept across reconnections */
    void *tag;
} s_unconfirmed_t;

struct mlg_client_t {
    zsock_t *dealer;
    char session[MLG_STRBUF(MLG_SESSION_MAX)];
    uint64_t heartbeat_ms;
    int64_t last_sent;
    int64_t last_recv;
    /* what mlg_client_reconnect() needs to join again */
    char *endpoint, *agency, *name, *cert_file, *server_key;
    uint64_t credit;
    zhashx_t *unconfirmed; /* message id -> s_unconfirmed_t */
    uint64_t next_order;
};

static void
s_unconfirmed_destroy(void **item_p)
{
    s_unconfirmed_t *u = *item_p;
    if (u) {
        free(u->data);
        free(u);
        *item_p = NULL;
    }
}

static mlg_rc_t
s_send_bytes(mlg_client_t *self, const uint8_t *data, size_t size)
{
    if (!self->dealer)
        return MLG_ERR_IO;
    zframe_t *frame = zframe_new(data, size);
    if (!frame || zframe_send(&frame, self->dealer, 0) != 0) {
        zframe_destroy(&frame);
        return MLG_ERR_IO;
    }
    self->last_sent = zclock_mono();
    return MLG_OK;
}

static mlg_rc_t
s_send(mlg_client_t *self, const mlg_msg_t *msg)
{
    uint8_t *data;
    size_t size;
    mlg_rc_t rc = mlg_msg_encode(msg, &data, &size);
    if (rc != MLG_OK)
        return rc;
    rc = s_send_bytes(self, data, size);
    free(data);
    return rc;
}

static mlg_msg_t *
s_recv_one(mlg_client_t *self, int timeout_ms)
{
    if (!self->dealer)
        return NULL;
    zsock_set_rcvtimeo(self->dealer, timeout_ms);
    zframe_t *frame = zframe_recv(self->dealer);
    if (!frame)
        return NULL;
    self->last_recv = zclock_mono();
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
    if (!self->dealer) {
        /* lost and not joined again: nothing can come */
        if (timeout_ms > 0)
            zclock_sleep(timeout_ms);
        return NULL;
    }
    int64_t deadline = timeout_ms < 0 ? -1 : zclock_mono() + timeout_ms;
    for (;;) {
        int64_t now = zclock_mono();
        int64_t beat =
            self->heartbeat_ms ? self->last_sent + (int64_t)self->heartbeat_ms : -1;
        if (beat >= 0 && now >= beat) {
            mlg_msg_t *ping = mlg_msg_new(MLG_OP_PING);
            if (!ping || s_send(self, ping) != MLG_OK)
                self->last_sent = now; /* not sent: try at the next beat */
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

static void
s_close_socket(mlg_client_t *self, int linger_ms)
{
    if (self->dealer) {
        zsock_set_linger(self->dealer, linger_ms);
        zsock_destroy(&self->dealer);
    }
    self->session[0] = '\0';
}

/* A new socket, HELLO, and WELCOME within timeout_ms. On failure the
   client has no socket and err says why. */
static mlg_rc_t
s_join(mlg_client_t *self, int timeout_ms, mlg_error_t *err)
{
    s_close_socket(self, 0);
    self->dealer = zsock_new(ZMQ_DEALER);
    if (!self->dealer) {
        err->rc = MLG_ERR_IO;
        snprintf(err->reason, sizeof(err->reason), "could not create a socket");
        return err->rc;
    }
    zsock_set_linger(self->dealer, 500);
    /* a send that cannot be queued (no broker, queue full) fails after
       this long rather than blocking the caller for ever */
    zsock_set_sndtimeo(self->dealer, 2000);
    if (self->cert_file) {
        zcert_t *cert = zcert_load(self->cert_file);
        if (!cert || !self->server_key || strlen(self->server_key) != 40) {
            err->rc = MLG_ERR_USAGE;
            snprintf(err->reason, sizeof(err->reason),
                     cert ? "the broker's public key is not a Z85 key"
                          : "could not load the certificate %.300s",
                     self->cert_file);
            zcert_destroy(&cert);
            s_close_socket(self, 0);
            return err->rc;
        }
        zcert_apply(cert, self->dealer);
        zcert_destroy(&cert);
        zsock_set_curve_serverkey(self->dealer, self->server_key);
    }
    if (zsock_connect(self->dealer, "%s", self->endpoint) != 0) {
        err->rc = MLG_ERR_USAGE;
        snprintf(err->reason, sizeof(err->reason), "could not connect to %.300s",
                 self->endpoint);
        s_close_socket(self, 0);
        return err->rc;
    }
    mlg_msg_t *hello = mlg_msg_new(MLG_OP_HELLO);
    if (!hello) {
        err->rc = MLG_ERR_NOMEM;
        s_close_socket(self, 0);
        return err->rc;
    }
    snprintf(hello->agency, sizeof(hello->agency), "%s", self->agency);
    snprintf(hello->client, sizeof(hello->client), "%s", self->name ? self->name : "");
    hello->credit = self->credit;
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
            snprintf(err->reason, sizeof(err->reason),
                     "no WELCOME from %.300s within %d ms", self->endpoint, timeout_ms);
        }
        mlg_msg_destroy(&answer);
        s_close_socket(self, 0);
        return err->rc;
    }
    snprintf(self->session, sizeof(self->session), "%s", answer->session);
    self->heartbeat_ms = answer->heartbeat_ms;
    self->last_recv = zclock_mono();
    mlg_msg_destroy(&answer);
    return MLG_OK;
}

static void
s_free(mlg_client_t *self)
{
    s_close_socket(self, 0);
    zhashx_destroy(&self->unconfirmed);
    free(self->endpoint);
    free(self->agency);
    free(self->name);
    free(self->cert_file);
    free(self->server_key);
    free(self);
}

static char *
s_strdup_opt(const char *s, bool *failed)
{
    if (!s)
        return NULL;
    char *copy = strdup(s);
    if (!copy)
        *failed = true;
    return copy;
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
    bool failed = !self;
    if (self) {
        self->endpoint = s_strdup_opt(endpoint ? endpoint : "", &failed);
        self->agency = s_strdup_opt(agency ? agency : "", &failed);
        self->name = s_strdup_opt(name, &failed);
        self->cert_file = s_strdup_opt(cert_file, &failed);
        self->server_key = s_strdup_opt(server_key, &failed);
        self->credit = credit;
        self->unconfirmed = zhashx_new();
        if (!self->unconfirmed)
            failed = true;
        else
            zhashx_set_destructor(self->unconfirmed, s_unconfirmed_destroy);
    }
    if (failed) {
        if (self)
            s_free(self);
        err->rc = MLG_ERR_NOMEM;
        snprintf(err->reason, sizeof(err->reason), "out of memory");
        return NULL;
    }
    if (s_join(self, timeout_ms, err) != MLG_OK) {
        s_free(self);
        return NULL;
    }
    return self;
}

void
mlg_client_destroy(mlg_client_t **self_p)
{
    mlg_client_t *self = *self_p;
    if (!self)
        return;
    if (self->dealer && self->session[0]) {
        mlg_msg_t *bye = mlg_msg_new(MLG_OP_BYE);
        if (bye)
            s_send(self, bye);
        mlg_msg_destroy(&bye);
    }
    s_close_socket(self, 500);
    s_free(self);
    *self_p = NULL;
}

static int
s_by_order(const void *a, const void *b)
{
    const s_unconfirmed_t *x = *(s_unconfirmed_t *const *)a;
    const s_unconfirmed_t *y = *(s_unconfirmed_t *const *)b;
    return x->order < y->order ? -1 : x->order > y->order;
}

mlg_rc_t
mlg_client_reconnect(mlg_client_t *self, int timeout_ms, mlg_error_t *err)
{
    mlg_error_t dummy;
    if (!err)
        err = &dummy;
    memset(err, 0, sizeof(*err));
    mlg_rc_t rc = s_join(self, timeout_ms, err);
    if (rc != MLG_OK)
        return rc;
    /* every unanswered publish again, in the order first sent: the broker
       answers a stored one with CONFIRM duplicate */
    size_t n = zhashx_size(self->unconfirmed);
    if (n == 0)
        return MLG_OK;
    s_unconfirmed_t **all = calloc(n, sizeof(*all));
    if (!all) {
        err->rc = MLG_ERR_NOMEM;
        snprintf(err->reason, sizeof(err->reason), "out of memory");
        return err->rc;
    }
    size_t i = 0;
    for (s_unconfirmed_t *u = zhashx_first(self->unconfirmed); u && i < n;
         u = zhashx_next(self->unconfirmed))
        all[i++] = u;
    qsort(all, i, sizeof(*all), s_by_order);
    for (size_t k = 0; k < i && rc == MLG_OK; k++)
        rc = s_send_bytes(self, all[k]->data, all[k]->size);
    free(all);
    if (rc != MLG_OK) {
        err->rc = rc;
        snprintf(err->reason, sizeof(err->reason), "could not send again");
    }
    return rc;
}

mlg_rc_t
mlg_client_publish(mlg_client_t *self, const mlg_msg_t *msg, void *tag)
{
    if (!msg || msg->op != MLG_OP_PUBLISH || zhashx_lookup(self->unconfirmed, msg->id))
        return MLG_ERR_USAGE;
    s_unconfirmed_t *u = calloc(1, sizeof(*u));
    if (!u)
        return MLG_ERR_NOMEM;
    mlg_rc_t rc = mlg_msg_encode(msg, &u->data, &u->size);
    if (rc != MLG_OK) {
        free(u);
        return rc;
    }
    u->order = self->next_order++;
    u->tag = tag;
    if (zhashx_insert(self->unconfirmed, msg->id, u) != 0) {
        void *item = u;
        s_unconfirmed_destroy(&item);
        return MLG_ERR_NOMEM;
    }
    /* kept even when it could not be sent now: the next reconnection
       sends it */
    return self->dealer ? s_send_bytes(self, u->data, u->size) : MLG_ERR_IO;
}

mlg_rc_t
mlg_client_resend(mlg_client_t *self, const char *id)
{
    s_unconfirmed_t *u = zhashx_lookup(self->unconfirmed, id);
    if (!u)
        return MLG_ERR_USAGE;
    return self->dealer ? s_send_bytes(self, u->data, u->size) : MLG_ERR_IO;
}

bool
mlg_client_settle(mlg_client_t *self, const char *id, void **tag_p)
{
    s_unconfirmed_t *u = zhashx_lookup(self->unconfirmed, id);
    if (!u)
        return false;
    if (tag_p)
        *tag_p = u->tag;
    zhashx_delete(self->unconfirmed, id);
    return true;
}

size_t
mlg_client_unconfirmed(const mlg_client_t *self)
{
    return zhashx_size(self->unconfirmed);
}

int64_t
mlg_client_silence_ms(const mlg_client_t *self)
{
    return zclock_mono() - self->last_recv;
}

bool
mlg_client_connected(const mlg_client_t *self)
{
    return self->dealer != NULL && self->session[0] != '\0';
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
