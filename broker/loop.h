/*  loop.h: the event loop's state, shared by the files that carry it
    out: broker.c (life, timers, the store's answers), conn.c (the
    socket), session.c (sessions), delivery.c (deliveries) and publish.c
    (publishes). No other module includes it: the loop runs in one
    thread, and its state is this one struct (STYLE.md rule 3). */

#ifndef BRK_LOOP_H
#define BRK_LOOP_H

#include <czmq.h>
#include <signal.h>

#include "broker.h"
#include "consent.h"
#include "http.h"
#include "queue.h"
#include "store.h"

#define BRK_MAX_CREDIT 10000 /* a client asking more gets this much */

/* What tells one connection from another, read from a frame's metadata
   (zmq_msg_gets): a client chooses its routing id (ZMQ_ROUTING_ID), so
   the routing id alone does not say which connection a map came from. */
typedef struct {
    int fd;       /* the connection's socket ("__fd", behind ZMQ_SRCFD); -1 unknown */
    char key[41]; /* under CURVE: its public key, from its User-Id */
} brk_conn_t;

/* A session exists only after a HELLO was accepted: a connection that has
   not said HELLO holds nothing in the broker, whatever it sends. */
typedef struct {
    char key[512]; /* the routing id, in hex */
    zframe_t *routing_id;
    bool hello;
    bool closed;   /* its connection closed: never chosen again, ended soon */
    int fd;        /* the connection that said HELLO (brk_conn_t) */
    uint64_t conn; /* the broker's number for that connection */
    char agency[MLG_AGENCY_ID_MAX + 1];
    char client[MLG_STRBUF(MLG_CLIENT_MAX)];
    char name[32];      /* "s-<n>", the session id given in WELCOME */
    char curve_key[41]; /* under CURVE: the connection's public key */
    uint64_t credit;
    uint64_t inflight;
    uint64_t outstanding; /* its publishes at the store */
    int64_t last_seen;
} brk_session_t;

struct brk_broker_t {
    brk_config_t *cfg; /* main's; a reload replaces its agencies */
    const mlg_registry_t *reg;
    zsock_t *router;
    zactor_t *auth; /* the ZAP handler, under CURVE */
    zactor_t *store;
    uint8_t *pong; /* the PONG map, encoded once */
    size_t pong_size;
    brk_metrics_t *metrics; /* the figures; the store and the listener write
                               and read them too, and go before it */
    brk_http_t *http;       /* broker/http: /metrics, /healthz, the dashboard */
    unsigned ticks;
    zloop_t *loop;
    zsock_t *monitor;           /* the ROUTER's DISCONNECTED events */
    int monitor_fd;             /* its ZMQ_FD (brk_conn_read_closures) */
    bool monitor_read;          /* read once: its descriptor tells since */
    zhashx_t *sessions;         /* key -> brk_session_t, each after HELLO */
    size_t nclosed;             /* sessions marked closed, not ended yet */
    zhashx_t *joined;           /* agency -> its sessions, a count (uintptr_t) */
    zhashx_t *departed;         /* routing id -> a session whose connection
                                   closed lately (session.c) */
    brk_queues_t *queues;       /* the queues and the deliveries in flight */
    brk_consents_t *consents;   /* the consent index, from the store */
    zhashx_t *granting;         /* consent ids being granted: at the store */
    brk_referrals_t *referrals; /* the referral legs, from the store */
    bool referrals_loaded;      /* once: until then, no referral figures */
    size_t outstanding;
    size_t clients; /* sessions after HELLO */
    bool db_up;
    bool draining;
    uint64_t next_session;
    uint64_t next_conn;
    volatile sig_atomic_t *stop;
    volatile sig_atomic_t *reload;
};

/* ---- conn.c: the socket ---------------------------------------------- */

/* Sends one map to a routing id; logged, not sent, when it cannot be
   encoded. */
void brk_conn_send(brk_broker_t *self, zframe_t *routing_id, const mlg_msg_t *m);
/* A delivery's DELIVER, at its current attempt. */
void brk_conn_send_deliver(brk_broker_t *self, zframe_t *routing_id,
                           const brk_delivery_t *row);
void brk_conn_send_error(brk_broker_t *self, zframe_t *rid, mlg_rc_t code,
                         const char *reason);
void brk_conn_send_reject(brk_broker_t *self, zframe_t *rid, const char *id,
                          mlg_rc_t code, const char *reason);

/* Marks closed the sessions whose connection the monitor says closed.
   Frees nothing: safe in the middle of a pump. */
void brk_conn_read_closures(brk_broker_t *self);
/* Ends the sessions whose connection closed once no map waits in the
   socket (the last maps of a closed connection still count). */
void brk_conn_end_closed(brk_broker_t *self);

/* The loop's readers of the ROUTER socket and of its monitor. */
int brk_conn_on_router(zloop_t *loop, zsock_t *reader, void *arg);
int brk_conn_on_monitor(zloop_t *loop, zmq_pollitem_t *item, void *arg);

/* ---- session.c: sessions --------------------------------------------- */

/* The sessions table's destructor. */
void brk_session_destroy(void **item);

/* A new session for a connection that says HELLO, in the table until
   the HELLO is refused. NULL out of memory. */
brk_session_t *brk_session_open(brk_broker_t *self, const char *hex, zframe_t *rid,
                                const brk_conn_t *conn);

/* HELLO: admits the session (or answers why not) and pumps its queue. */
void brk_session_on_hello(brk_broker_t *self, brk_session_t *s, mlg_msg_t *m,
                          const char *user_id);

/* Ends a session: its deliveries in flight are requeued, it is freed. */
void brk_session_end(brk_broker_t *self, brk_session_t *s, const char *why);

/* The session of `agency` with credit to spare, the least busy; NULL. */
brk_session_t *brk_session_with_credit(brk_broker_t *self, const char *agency);

/* Ends the sessions whose connection closed, remembering them a while. */
void brk_sessions_end_closed(brk_broker_t *self);

/* A map from a connection without a session: logs it when its routing
   id was a closed session's, under another key. */
void brk_sessions_check_departed(brk_broker_t *self, const char *hex,
                                 const brk_conn_t *c);

/* Each tick: ends silent sessions, forgets departed ones. */
void brk_sessions_tick(brk_broker_t *self);

/* ---- delivery.c: deliveries ------------------------------------------ */

/* Sends what the queue holds to the sessions that have credit, and reads
   ahead when it runs dry. */
void brk_deliveries_pump(brk_broker_t *self, brk_queue_t *q);

/* Pumps every queue that may have more in the database. */
void brk_deliveries_pump_all(brk_broker_t *self);

/* Every delivery in flight to s goes back to its queue; the caller pumps
   it once s can no longer be chosen. */
void brk_deliveries_requeue(brk_broker_t *self, brk_session_t *s, const char *why);
/* The SENTs not told to the store yet: those in flight for a while, or
   all of them (at stop). */
void brk_deliveries_tell_sent(brk_broker_t *self, bool all);

/* ACK and NACK. */
void brk_deliveries_on_ack(brk_broker_t *self, brk_session_t *s, const mlg_msg_t *m);

/* The store's answers: a read-ahead, a replay of dead letters. Takes f. */
void brk_deliveries_on_fetched(brk_broker_t *self, brk_fetch_t *f);
void brk_deliveries_on_replay(brk_broker_t *self, const char *agency);

/* A publish committed: its deliveries join their queues, which pump. */
void brk_deliveries_take_new(brk_broker_t *self, const brk_job_t *job);

/* ---- notice.c: the broker's own notices (§9) ------------------------- */

/* The overdue and superseded notices due now, handed to the store. */
void brk_notices_tick(brk_broker_t *self);
/* The store's answer to one of them (the job's plan is settled already). */
void brk_notice_done(brk_broker_t *self, const brk_job_t *job);

/* ---- publish.c: publishes -------------------------------------------- */

/* A PUBLISH: check, plan, admit, hand to the store; *m_p is NULL when
   the store took it. */
void brk_publish_receive(brk_broker_t *self, brk_session_t *s, mlg_msg_t **m_p,
                         size_t frame_size);

/* The store's answer to a publish: the CONFIRM or REJECT. Takes job. */
void brk_publish_on_done(brk_broker_t *self, brk_job_t *job);

#endif
