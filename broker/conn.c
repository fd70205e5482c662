/*  conn.c: the ROUTER socket, one map at a time.

    Reads each map off the socket, tells which connection it came from
    (its socket and, under CURVE, its key: a client chooses its routing
    id), decodes it and hands it to the module that acts on it: sessions
    (HELLO, BYE), publishes, deliveries (ACK, NACK). Sends every answer,
    and reads the monitor's closures before each map and each send.
    It decides nothing about sessions, queues or storage. Called by the
    event loop (broker.c registers its readers). */

#include <czmq.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "loop.h"
#include "metrics.h"

static void
s_free(void *data, void *hint)
{
    (void)hint;
    free(data);
}

/* One map to the connection `routing_id`, straight to libzmq: the
   routing id from the frame's bytes (small: no allocation), no czmq
   message or frames per send. A routing id no longer connected drops
   the map (ROUTER without ZMQ_ROUTER_MANDATORY), as czmq's send did. */
static void
s_send(brk_broker_t *self, zframe_t *routing_id, const uint8_t *data, size_t size)
{
    void *router = zsock_resolve(self->router);
    if (zmq_send(router, zframe_data(routing_id), zframe_size(routing_id), ZMQ_SNDMORE)
        != -1)
        zmq_send(router, data, size, 0); /* copied */
}

/* The same for an encoded map, malloc'd: handed to libzmq without a
   copy, which frees it once sent. */
static void
s_send_taken(brk_broker_t *self, zframe_t *routing_id, uint8_t *data, size_t size)
{
    void *router = zsock_resolve(self->router);
    zmq_msg_t map;
    if (zmq_msg_init_data(&map, data, size, s_free, NULL) != 0) {
        free(data);
        return;
    }
    if (zmq_send(router, zframe_data(routing_id), zframe_size(routing_id), ZMQ_SNDMORE)
            == -1
        || zmq_msg_send(&map, router, 0) == -1)
        zmq_msg_close(&map);
}

void
brk_conn_send(brk_broker_t *self, zframe_t *routing_id, const mlg_msg_t *m)
{
    uint8_t *data;
    size_t size;
    if (mlg_msg_encode(m, &data, &size) != MLG_OK) {
        brk_log(BRK_LOG_ERROR, "loop", "could not encode a %s", mlg_op_name(m->op));
        return;
    }
    s_send_taken(self, routing_id, data, size);
}

void
brk_conn_send_deliver(brk_broker_t *self, zframe_t *routing_id, const brk_delivery_t *row)
{
    uint8_t *data;
    size_t size;
    if (mlg_packed_deliver_encode(row->deliver, row->delivery, row->attempts, &data,
                                  &size)
        != MLG_OK) {
        brk_log(BRK_LOG_ERROR, "loop", "could not encode a DELIVER");
        return;
    }
    s_send_taken(self, routing_id, data, size);
}

void
brk_conn_send_error(brk_broker_t *self, zframe_t *rid, mlg_rc_t code, const char *reason)
{
    mlg_msg_t *m = mlg_msg_new(MLG_OP_ERROR);
    if (!m)
        return; /* out of memory: the client retries, or its heartbeat lapses */
    snprintf(m->code, sizeof(m->code), "%s", mlg_rc_wire(code));
    snprintf(m->reason, sizeof(m->reason), "%s", reason);
    brk_conn_send(self, rid, m);
    mlg_msg_destroy(&m);
}

void
brk_conn_send_reject(brk_broker_t *self, zframe_t *rid, const char *id, mlg_rc_t code,
                     const char *reason)
{
    brk_metrics_rejected(self->metrics, mlg_rc_wire(code));
    mlg_msg_t *m = mlg_msg_new(MLG_OP_REJECT);
    if (!m)
        return; /* out of memory: the client retries, or its heartbeat lapses */
    snprintf(m->id, sizeof(m->id), "%s", id);
    snprintf(m->code, sizeof(m->code), "%s", mlg_rc_wire(code));
    snprintf(m->reason, sizeof(m->reason), "%s", reason);
    brk_conn_send(self, rid, m);
    mlg_msg_destroy(&m);
}

static void
s_conn_read(zframe_t *frame, brk_conn_t *c)
{
    const char *fd = frame ? zframe_meta(frame, "__fd") : NULL;
    const char *user = frame ? zframe_meta(frame, "User-Id") : NULL;
    const char *space = user ? strchr(user, ' ') : NULL;
    c->fd = fd ? atoi(fd) : -1;
    snprintf(c->key, sizeof(c->key), "%s", space ? space + 1 : "");
}

/* Is this map from the connection that said the session's HELLO? Under
   CURVE the key must be the same; in every mode the socket must be (two
   live connections never share one; a closed one's routing id is not
   given to another connection before its last maps are read, and its
   session ends then). */
static bool
s_same_conn(const brk_session_t *s, const brk_conn_t *c)
{
    return s->fd == c->fd && strcmp(s->curve_key, c->key) == 0;
}

/* Marks closed the sessions of the connections that the monitor says
   closed (ZMQ_EVENT_DISCONNECTED, its value the socket). Frees nothing,
   so it is safe in the middle of a pump; brk_conn_end_closed ends them
   once their last maps are read. libzmq sends the event before it frees
   the routing id for another connection, so reading it before each map
   and each send keeps a new connection from inheriting the session of
   the one that held its routing id, and a closed session from being sent
   anything more.

   Before each send, so it must cost little. Reading the monitor socket
   when it is empty cost libzmq a poll(2) and a getpid(2) and czmq two
   allocations: 16 % of the loop's time under load. Its file descriptor
   (ZMQ_FD) becomes readable when libzmq posts it a command, and a new
   event always comes with one once a read has found the socket empty;
   only this function reads the socket (the loop polls the descriptor,
   not the socket: zmq_poll would take the command itself and leave the
   descriptor quiet). So one poll(2) of the descriptor says whether
   anything came since the last read. Not before the first read, though:
   libzmq's pipe signals its reader only once the reader has found it
   empty. */
void
brk_conn_read_closures(brk_broker_t *self)
{
    if (!self->monitor)
        return;
    struct pollfd signalled = {.fd = self->monitor_fd, .events = POLLIN};
    if (self->monitor_read && poll(&signalled, 1, 0) == 0)
        return; /* nothing since the socket was last found empty */
    self->monitor_read = true;
    for (zmsg_t *ev = zmsg_recv(self->monitor); ev; ev = zmsg_recv(self->monitor)) {
        zframe_t *head = zmsg_first(ev);
        uint16_t event = 0;
        uint32_t fd = 0;
        if (head && zframe_size(head) == 6) {
            memcpy(&event, zframe_data(head), sizeof(event));
            memcpy(&fd, zframe_data(head) + 2, sizeof(fd));
        }
        zmsg_destroy(&ev);
        if (event != ZMQ_EVENT_DISCONNECTED)
            continue;
        /* O(sessions) a closed connection: a few thousand at most */
        for (brk_session_t *s = zhashx_first(self->sessions); s;
             s = zhashx_next(self->sessions))
            if (s->fd >= 0 && (uint32_t)s->fd == fd && !s->closed) {
                s->closed = true;
                self->nclosed++;
            }
    }
}

/* Are maps waiting on the ROUTER socket? A connection's last maps (an
   ACK, a BYE) are there before its closure is seen: the session of a
   closed connection ends only once they have been read. */
static bool
s_maps_waiting(brk_broker_t *self)
{
    return (zsock_events(self->router) & ZMQ_POLLIN) != 0;
}

/* The sessions marked closed end once no map waits (the usual case, none
   marked, costs nothing: no look at the socket). */
static void
s_end_if_read(brk_broker_t *self)
{
    if (self->nclosed && !s_maps_waiting(self))
        brk_sessions_end_closed(self);
}

/* Ends the sessions whose connection closed, unless maps still wait:
   then the router's reader ends them once it has read them. */
void
brk_conn_end_closed(brk_broker_t *self)
{
    brk_conn_read_closures(self);
    s_end_if_read(self);
}

int
brk_conn_on_monitor(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void)loop;
    (void)item;
    brk_conn_end_closed(arg);
    return 0;
}

/* The session of the map's routing id, when the map comes from that
   session's connection. A map of another connection with this routing id
   (a client chooses it) ends the session: nothing of it is acted on for
   the newcomer. */
static brk_session_t *
s_session_of(brk_broker_t *self, const char *hex, const brk_conn_t *conn)
{
    brk_session_t *s = zhashx_lookup(self->sessions, hex);
    if (s && !s_same_conn(s, conn)) {
        brk_log(BRK_LOG_WARNING, "auth",
                "routing id %.64s of session %s (agency %s, key %s) used by another "
                "connection (key %s): that session ends, this one must say HELLO",
                hex, s->name, s->agency, s->curve_key[0] ? s->curve_key : "none",
                conn->key[0] ? conn->key : "none");
        brk_session_end(self, s, "its routing id was taken by another connection");
        s = NULL;
    }
    if (s)
        s->last_seen = zclock_mono();
    return s;
}

/* The map of a single-frame message; NULL when there is none to act on,
   answered MALFORMED (or the decoder's code) already. */
static mlg_msg_t *
s_decode(brk_broker_t *self, zframe_t *rid, zmsg_t *msg)
{
    if (zmsg_size(msg) != 1) {
        brk_conn_send_error(self, rid, MLG_MALFORMED, "a message is exactly one frame");
        return NULL;
    }
    zframe_t *frame = zmsg_first(msg);
    mlg_msg_t *m = NULL;
    mlg_error_t err;
    if (mlg_msg_decode(zframe_data(frame), zframe_size(frame), &m, &err) == MLG_OK)
        return m;
    mlg_rc_t code = err.rc == MLG_ERR_NOMEM ? MLG_UNAVAILABLE : err.rc;
    if (err.op == MLG_OP_PUBLISH && err.id[0])
        brk_conn_send_reject(self, rid, err.id, code, err.reason);
    else
        brk_conn_send_error(self, rid, code, err.reason);
    return NULL;
}

/* A map other than HELLO from a connection without a session:
   HELLO_REQUIRED (a BYE gets no answer). */
static void
s_no_session(brk_broker_t *self, zframe_t *rid, const char *hex, const brk_conn_t *conn,
             const mlg_msg_t *m)
{
    brk_sessions_check_departed(self, hex, conn);
    if (m->op == MLG_OP_PUBLISH)
        brk_conn_send_reject(self, rid, m->id, MLG_HELLO_REQUIRED,
                             "send HELLO first (or again, after a silence)");
    else if (m->op != MLG_OP_BYE)
        brk_conn_send_error(self, rid, MLG_HELLO_REQUIRED,
                            "send HELLO first (or again, after a silence)");
}

/* Acts on the map of session s (`fresh`: opened for this HELLO, and
   dropped if the HELLO is refused). Frees the map, unless a publish
   handed it to the store. */
static void
s_dispatch(brk_broker_t *self, brk_session_t *s, bool fresh, zframe_t *rid,
           zframe_t *frame, mlg_msg_t **m_p)
{
    mlg_msg_t *m = *m_p;
    switch (m->op) {
    case MLG_OP_HELLO:
        brk_session_on_hello(self, s, m, zframe_meta(frame, "User-Id"));
        if (fresh && !s->hello)
            zhashx_delete(self->sessions, s->key); /* refused: nothing kept */
        break;
    case MLG_OP_PUBLISH: brk_publish_receive(self, s, m_p, zframe_size(frame)); break;
    case MLG_OP_ACK:
    case MLG_OP_NACK: brk_deliveries_on_ack(self, s, m); break;
    case MLG_OP_PING: s_send(self, rid, self->pong, self->pong_size); break;
    case MLG_OP_BYE: brk_session_end(self, s, "BYE"); break;
    default: {
        char reason[128];
        snprintf(reason, sizeof(reason), "%s is sent by the broker, not to it",
                 mlg_op_name(m->op));
        brk_conn_send_error(self, rid, MLG_UNKNOWN_OP, reason);
    }
    }
    mlg_msg_destroy(m_p);
}

int
brk_conn_on_router(zloop_t *loop, zsock_t *reader, void *arg)
{
    (void)loop;
    brk_broker_t *self = arg;
    zmsg_t *msg = zmsg_recv(reader);
    zframe_t *rid = msg ? zmsg_pop(msg) : NULL;
    if (!rid) {
        zmsg_destroy(&msg);
        return 0;
    }
    /* closures first: a session whose connection closed gets nothing
       more sent (the pump skips it), but the maps its connection sent
       before closing (in the socket ahead of any other connection's on
       its routing id: libzmq frees a routing id once its connection's
       maps are read) are still acted on; it ends once they are read */
    brk_conn_read_closures(self);
    zframe_t *frame = zmsg_first(msg);
    brk_conn_t conn;
    s_conn_read(frame, &conn);
    char *hex = zframe_strhex(rid);
    brk_session_t *s = s_session_of(self, hex, &conn);
    mlg_msg_t *m = s_decode(self, rid, msg);
    if (m && m->op != MLG_OP_HELLO && !s) {
        s_no_session(self, rid, hex, &conn, m);
        mlg_msg_destroy(&m);
    }
    bool fresh = m && !s;
    if (fresh) { /* a HELLO: the session is kept if it is accepted */
        s = brk_session_open(self, hex, rid, &conn);
        if (!s) {
            brk_conn_send_error(self, rid, MLG_UNAVAILABLE,
                                "the broker is out of memory");
            mlg_msg_destroy(&m);
        }
    }
    if (m)
        s_dispatch(self, s, fresh, rid, frame, &m);
    free(hex);
    zframe_destroy(&rid);
    zmsg_destroy(&msg);
    /* the closures were read before this map; one seen since comes
       through the monitor's reader */
    s_end_if_read(self);
    return 0;
}
