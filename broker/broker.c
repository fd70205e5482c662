/*  broker.c: the event loop of maillage-broker.

    Owns the ROUTER socket, the sessions (one per client connection), the
    queues (one per recipient agency: a bounded read-ahead of its pending
    deliveries, fetched from the store) and the deliveries in flight. It
    checks every map, routes and decides, and hands publishes to the
    store thread; it never waits for the database. Answers to publishes
    go out when the store says the transaction committed.

    Deliveries: the database holds every delivery as `pending` until it
    is settled. The loop reads a queue forward with a cursor (delivery
    ids above it) and keeps what it read in memory until acked, so after
    a crash the restarted broker reads from zero and every unsettled
    delivery, in flight or not, comes back. */

#include <czmq.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "broker.h"
#include "consent_event.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "queue.h"
#include "router.h"
#include "store.h"

#define S_FETCH_LIMIT 256  /* read-ahead of one queue */
#define S_MAX_CREDIT 10000 /* a client asking more gets this much */
#define S_DRAIN_MS 5000    /* how long SIGTERM waits for the store */

/* What tells one connection from another, read from a frame's metadata
   (zmq_msg_gets): a client chooses its routing id (ZMQ_ROUTING_ID), so
   the routing id alone does not say which connection a map came from. */
typedef struct {
    int fd;       /* the connection's socket ("__fd", behind ZMQ_SRCFD); -1 unknown */
    char key[41]; /* under CURVE: its public key, from its User-Id */
} s_conn_t;

/* A session exists only after a HELLO was accepted: a connection that has
   not said HELLO holds nothing in the broker, whatever it sends. */
typedef struct {
    char key[512]; /* the routing id, in hex */
    zframe_t *routing_id;
    bool hello;
    bool closed;   /* its connection closed: never chosen again, ended soon */
    int fd;        /* the connection that said HELLO (s_conn_t) */
    uint64_t conn; /* the broker's number for that connection */
    char agency[MLG_AGENCY_ID_MAX + 1];
    char client[MLG_STRBUF(MLG_CLIENT_MAX)];
    char name[32];      /* "s-<n>", the session id given in WELCOME */
    char curve_key[41]; /* under CURVE: the connection's public key */
    uint64_t credit;
    uint64_t inflight;
    uint64_t outstanding; /* its publishes at the store */
    int64_t last_seen;
} s_session_t;

/* A session whose connection closed, remembered for 3 heartbeats by its
   routing id: a map of another key on that routing id is then logged as
   the attempt it is, with both keys. */
typedef struct {
    char agency[MLG_AGENCY_ID_MAX + 1];
    char key[41];
    int64_t until;
} s_departed_t;

struct brk_broker_t {
    brk_config_t *cfg; /* main's; a reload replaces its agencies */
    const mlg_registry_t *reg;
    zsock_t *router;
    zactor_t *auth; /* the ZAP handler, under CURVE */
    zactor_t *store;
    brk_http_t *http; /* broker/http: /metrics, /healthz, the dashboard */
    unsigned ticks;
    zloop_t *loop;
    zsock_t *monitor;         /* the ROUTER's DISCONNECTED events */
    zhashx_t *sessions;       /* key -> s_session_t, each after HELLO */
    zhashx_t *joined;         /* agency -> its sessions, a count (uintptr_t) */
    zhashx_t *departed;       /* routing id -> s_departed_t, sessions whose
                                 connection closed lately */
    brk_queues_t *queues;     /* the queues and the deliveries in flight */
    brk_consents_t *consents; /* the consent index, from the store */
    zhashx_t *granting;       /* consent ids being granted: at the store */
    size_t outstanding;
    size_t clients; /* sessions after HELLO */
    bool db_up;
    bool draining;
    uint64_t next_session;
    uint64_t next_conn;
    volatile sig_atomic_t *stop;
    volatile sig_atomic_t *reload;
};

static void s_send_agencies(brk_broker_t *self);
static void s_read_disconnects(brk_broker_t *self);

/* ---- sending ---------------------------------------------------------- */

static void
s_send(brk_broker_t *self, zframe_t *routing_id, const mlg_msg_t *m)
{
    uint8_t *data;
    size_t size;
    if (mlg_msg_encode(m, &data, &size) != MLG_OK) {
        brk_log(BRK_LOG_ERROR, "loop", "could not encode a %s", mlg_op_name(m->op));
        return;
    }
    zmsg_t *msg = zmsg_new();
    zmsg_append(msg, &(zframe_t *){zframe_dup(routing_id)});
    zmsg_append(msg, &(zframe_t *){zframe_new(data, size)});
    free(data);
    zmsg_send(&msg, self->router);
}

static void
s_send_error(brk_broker_t *self, zframe_t *rid, mlg_rc_t code, const char *reason)
{
    mlg_msg_t *m = mlg_msg_new(MLG_OP_ERROR);
    snprintf(m->code, sizeof(m->code), "%s", mlg_rc_wire(code));
    snprintf(m->reason, sizeof(m->reason), "%s", reason);
    s_send(self, rid, m);
    mlg_msg_destroy(&m);
}

static void
s_send_reject(brk_broker_t *self, zframe_t *rid, const char *id, mlg_rc_t code,
              const char *reason)
{
    brk_metrics_rejected(mlg_rc_wire(code));
    mlg_msg_t *m = mlg_msg_new(MLG_OP_REJECT);
    snprintf(m->id, sizeof(m->id), "%s", id);
    snprintf(m->code, sizeof(m->code), "%s", mlg_rc_wire(code));
    snprintf(m->reason, sizeof(m->reason), "%s", reason);
    s_send(self, rid, m);
    mlg_msg_destroy(&m);
}

/* ---- queues and deliveries -------------------------------------------- */

static void
s_update(brk_broker_t *self, brk_update_kind_t kind, uint64_t delivery, uint64_t attempt,
         const char *reason, const char *actor)
{
    brk_update_t *u = calloc(1, sizeof(*u));
    if (!u)
        return;
    u->kind = kind;
    u->delivery = delivery;
    u->attempt = attempt;
    if (reason && reason[0] && !(u->reason = strdup(reason))) {
        free(u);
        return;
    }
    snprintf(u->actor, sizeof(u->actor), "%s", actor);
    zsock_send(self->store, "sp", "UPDATE", u);
}

static void s_pump(brk_broker_t *self, brk_queue_t *q);
static bool s_consent_stands(brk_broker_t *self, brk_delivery_t *row, const char *actor);

/* A delivery comes back from a client: to its queue again, or dead when
   it has had its attempts. */
static void
s_give_back(brk_broker_t *self, brk_delivery_t *row, const char *why, const char *actor)
{
    /* in flight when its consent was revoked: not recalled, but not
       delivered again */
    if (!s_consent_stands(self, row, actor))
        return;
    if (brk_queues_give_back(self->queues, &row, self->cfg->max_attempts)
        == BRK_BACK_REQUEUED)
        return;
    brk_log(BRK_LOG_WARNING, row->recipient,
            "delivery %llu dead after %llu attempts (%s)",
            (unsigned long long)row->delivery, (unsigned long long)row->attempts, why);
    s_update(self, BRK_UPDATE_DEAD, row->delivery, row->attempts, why, actor);
    brk_delivery_destroy(&row);
}

/* Takes a delivery out of flight; NULL unless it is in flight to s. */
static brk_delivery_t *
s_land(brk_broker_t *self, s_session_t *s, uint64_t delivery)
{
    brk_delivery_t *row = brk_queues_land(self->queues, s, delivery);
    if (row)
        s->inflight--;
    return row;
}

/* Every delivery in flight to s goes back to its queue. The caller pumps
   the queue afterwards, once s can no longer be chosen. */
static void
s_requeue_session(brk_broker_t *self, s_session_t *s, const char *why)
{
    zlistx_t *rows = brk_queues_land_all(self->queues, s);
    if (!rows)
        return; /* out of memory: they stay in flight until their session ends */
    s->inflight -= zlistx_size(rows);
    brk_delivery_t *row = zlistx_detach(rows, NULL);
    for (; row; row = zlistx_detach(rows, NULL)) {
        s_update(self, BRK_UPDATE_REQUEUED, row->delivery, row->attempts, why, s->name);
        s_give_back(self, row, why, s->name);
    }
    zlistx_destroy(&rows);
}

/* A session of the queue's agency with credit to spare, or NULL. */
static s_session_t *
s_free_session(brk_broker_t *self, const char *agency)
{
    s_session_t *best = NULL;
    for (s_session_t *s = zhashx_first(self->sessions); s;
         s = zhashx_next(self->sessions))
        if (s->hello && !s->closed && s->inflight < s->credit
            && strcmp(s->agency, agency) == 0 && (!best || s->inflight < best->inflight))
            best = s;
    return best;
}

/* Sends what the queue holds to the sessions that have credit, and reads
   ahead from the database when it runs dry. */
/* Is the delivery's consent being revoked right now? Then it waits for
   the store's answer. */
static bool
s_consent_held(brk_broker_t *self, const brk_delivery_t *row)
{
    brk_consent_t *c =
        row->consent_id[0] ? brk_consents_find(self->consents, row->consent_id) : NULL;
    return c && c->revoking;
}

/* Whether a delivery's consent still stands (PROTOCOL.md §7: a delivery
   still pending when its consent is revoked or expires is never
   delivered). False when it was settled here, `revoked`, with its second
   decision: the row is freed then. */
static bool
s_consent_stands(brk_broker_t *self, brk_delivery_t *row, const char *actor)
{
    if (!row->consent_id[0])
        return true; /* legal obligation, not personal, or a consent notice */
    brk_consent_t *c = brk_consents_find(self->consents, row->consent_id);
    if (!c)
        return true;
    mlg_time_t now = mlg_time_now();
    int64_t now_us = now.sec * 1000000 + now.nsec / 1000;
    const char *code = c->revoked_at              ? "REVOKED"
                       : now_us >= c->valid_until ? "EXPIRED"
                                                  : NULL;
    if (!code)
        return true;
    brk_update_t *u = calloc(1, sizeof(*u));
    if (u) {
        u->kind = BRK_UPDATE_REVOKED;
        u->delivery = row->delivery;
        u->attempt = row->attempts;
        snprintf(u->consent_id, sizeof(u->consent_id), "%s", c->id);
        snprintf(u->code, sizeof(u->code), "%s", code);
        u->reason = strdup(c->revoked_at ? "the consent was revoked before delivery"
                                         : "the consent expired before delivery");
        snprintf(u->actor, sizeof(u->actor), "%s", actor);
        zsock_send(self->store, "sp", "UPDATE", u); /* out of memory: no reason */
    }
    brk_log(BRK_LOG_INFO, row->recipient, "delivery %llu not delivered: consent %s %s",
            (unsigned long long)row->delivery, c->id,
            c->revoked_at ? "revoked" : "expired");
    brk_delivery_destroy(&row);
    return false;
}

static void
s_pump(brk_broker_t *self, brk_queue_t *q)
{
    const char *agency = brk_queue_agency(q);
    for (;;) {
        /* a routing id whose connection closed may belong to another
           connection by the next send (libzmq frees and gives it within
           any call on the socket): read the closures before each send */
        s_read_disconnects(self);
        s_session_t *s = brk_queue_size(q) ? s_free_session(self, agency) : NULL;
        if (!s)
            break;
        if (s_consent_held(self, brk_queue_first(q)))
            return; /* the revocation's answer pumps again */
        brk_delivery_t *row = brk_queue_pop(q);
        if (!s_consent_stands(self, row, "broker"))
            continue; /* settled `revoked` */
        if (brk_queues_fly(self->queues, row, s) != 0)
            return; /* out of memory: first in its queue again, for the next pump */
        s->inflight++;
        s_send(self, s->routing_id, row->deliver);
        s_update(self, BRK_UPDATE_SENT, row->delivery, row->attempts, NULL, s->name);
    }
    if (brk_queue_wants_read(q) && self->db_up && s_free_session(self, agency)) {
        brk_fetch_t *f = calloc(1, sizeof(*f));
        if (!f)
            return;
        snprintf(f->agency, sizeof(f->agency), "%s", agency);
        brk_queue_read_begin(q, &f->after, &f->limit);
        zsock_send(self->store, "sp", "FETCH", f);
    }
}

/* Pumps every queue that may have more in the database; over a copy of
   the names, since pumping may create a queue. */
static void
s_pump_all(brk_broker_t *self)
{
    zlistx_t *agencies = brk_queues_unread(self->queues);
    for (const char *a = agencies ? zlistx_first(agencies) : NULL; a;
         a = zlistx_next(agencies)) {
        brk_queue_t *q = brk_queues_find(self->queues, a);
        if (q)
            s_pump(self, q);
    }
    zlistx_destroy(&agencies);
}

/* ---- sessions --------------------------------------------------------- */

static void
s_free_item(void **item)
{
    free(*item);
    *item = NULL;
}

static void
s_session_destroy(void **item)
{
    s_session_t *s = *item;
    if (!s)
        return;
    zframe_destroy(&s->routing_id);
    free(s);
    *item = NULL;
}

/* The number of sessions of an agency, and its change by `delta`. */
static size_t
s_joined(brk_broker_t *self, const char *agency)
{
    return (size_t)(uintptr_t)zhashx_lookup(self->joined, agency);
}

static void
s_join(brk_broker_t *self, const char *agency, int delta)
{
    size_t n = s_joined(self, agency);
    n = delta < 0 ? (n ? n - 1 : 0) : n + 1;
    if (n)
        zhashx_update(self->joined, agency, (void *)(uintptr_t)n);
    else
        zhashx_delete(self->joined, agency);
}

static void
s_conn_read(zframe_t *frame, s_conn_t *c)
{
    const char *fd = frame ? zframe_meta(frame, "__fd") : NULL;
    const char *user = frame ? zframe_meta(frame, "User-Id") : NULL;
    const char *space = user ? strchr(user, ' ') : NULL;
    c->fd = fd ? atoi(fd) : -1;
    snprintf(c->key, sizeof(c->key), "%s", space ? space + 1 : "");
}

/* Is this map from the connection that said the session's HELLO? Under
   CURVE the key must be the same; in every mode the socket must be (two
   live connections never share one, and a closed one's session is ended
   before a map of the next connection on its number is read). */
static bool
s_same_conn(const s_session_t *s, const s_conn_t *c)
{
    return s->fd == c->fd && strcmp(s->curve_key, c->key) == 0;
}

static void
s_session_end(brk_broker_t *self, s_session_t *s, const char *why)
{
    char agency[MLG_AGENCY_ID_MAX + 1];
    snprintf(agency, sizeof(agency), "%s", s->agency);
    bool had_hello = s->hello;
    if (had_hello)
        brk_log(BRK_LOG_INFO, s->agency, "client %s left (%s)",
                s->client[0] ? s->client : s->name, why);
    if (had_hello && self->clients)
        self->clients--;
    if (had_hello)
        s_join(self, agency, -1);
    s->hello = false; /* never chosen again for a delivery */
    s_requeue_session(self, s, why);
    zhashx_delete(self->sessions, s->key);
    brk_queue_t *q = had_hello ? brk_queues_find(self->queues, agency) : NULL;
    if (q)
        s_pump(self, q);
}

/* Marks closed the sessions of the connections that the monitor says
   closed (ZMQ_EVENT_DISCONNECTED, its value the socket). Frees nothing,
   so it is safe in the middle of a pump; s_end_closed ends them. libzmq
   sends the event before it frees the routing id for another connection,
   so reading it before each map and each send keeps a new connection
   from inheriting the session of the one that held its routing id. */
static void
s_read_disconnects(brk_broker_t *self)
{
    zmsg_t *ev;
    while (self->monitor && (ev = zmsg_recv(self->monitor))) {
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
        for (s_session_t *s = zhashx_first(self->sessions); s;
             s = zhashx_next(self->sessions))
            if (s->fd >= 0 && (uint32_t)s->fd == fd)
                s->closed = true;
    }
}

static void
s_end_closed(brk_broker_t *self)
{
    s_read_disconnects(self);
    zlistx_t *keys = zhashx_keys(self->sessions);
    for (const char *key = zlistx_first(keys); key; key = zlistx_next(keys)) {
        s_session_t *s = zhashx_lookup(self->sessions, key);
        if (!s || !s->closed)
            continue;
        /* bounded like the sessions themselves */
        s_departed_t *d = zhashx_size(self->departed) < 2 * self->cfg->max_clients
                              ? calloc(1, sizeof(*d))
                              : NULL;
        if (d) {
            snprintf(d->agency, sizeof(d->agency), "%s", s->agency);
            snprintf(d->key, sizeof(d->key), "%s", s->curve_key);
            d->until = zclock_mono() + 3 * (int64_t)self->cfg->heartbeat_ms;
            zhashx_update(self->departed, key, d);
        }
        s_session_end(self, s, "its connection closed");
    }
    zlistx_destroy(&keys);
}

/* A map from a connection without a session: was its routing id a closed
   session's, under another key? */
static void
s_check_departed(brk_broker_t *self, const char *hex, const s_conn_t *c)
{
    s_departed_t *d = zhashx_lookup(self->departed, hex);
    if (d && strcmp(d->key, c->key) != 0)
        brk_log(BRK_LOG_WARNING, "auth",
                "routing id %.64s of a closed session (agency %s, key %s) used by "
                "another connection (key %s): HELLO_REQUIRED",
                hex, d->agency, d->key[0] ? d->key : "none", c->key[0] ? c->key : "none");
}

static int
s_on_monitor(zloop_t *loop, zsock_t *reader, void *arg)
{
    (void)loop;
    (void)reader;
    s_end_closed(arg);
    return 0;
}

/* ---- the maps --------------------------------------------------------- */

/* Is there room for one more session of `agency`, `leaving` (NULL or
   the agency a session leaves for it) aside? Each agency has at most
   max_clients_per_agency sessions, and a share of max_clients is kept for
   every registered agency: share = min(max_clients_per_agency,
   max_clients / agencies). An agency under its share always has room; over
   it, only where the broker has room beyond the places that the others
   have not taken of their shares. The invariant "sessions + places kept
   <= max_clients" holds after every admission, so no agency can fill the
   broker with sessions, keep-alives or reconnections. O(agencies). */
static bool
s_room(brk_broker_t *self, const char *agency, const char *leaving, char *reason,
       size_t len)
{
    const brk_config_t *cfg = self->cfg;
    size_t total = self->clients - (leaving ? 1 : 0);
    uint64_t share = cfg->max_clients / (cfg->nagencies ? cfg->nagencies : 1);
    if (share > cfg->max_clients_per_agency)
        share = cfg->max_clients_per_agency;
    uint64_t kept = 0; /* places of the other agencies' shares not taken */
    size_t mine = 0;
    for (size_t i = 0; i < cfg->nagencies; i++) {
        const char *id = cfg->agencies[i].id;
        size_t n = s_joined(self, id);
        if (leaving && strcmp(id, leaving) == 0 && n)
            n--;
        if (strcmp(id, agency) == 0)
            mine = n;
        else if (n < share)
            kept += share - n;
    }
    if (mine >= cfg->max_clients_per_agency) {
        snprintf(reason, len,
                 "agency '%s' has its maximum of %llu clients "
                 "(broker/max_clients_per_agency): try again later",
                 agency, (unsigned long long)cfg->max_clients_per_agency);
        return false;
    }
    if (mine < share && total < cfg->max_clients)
        return true;
    if (total + 1 + kept > cfg->max_clients) {
        if (total >= cfg->max_clients)
            snprintf(reason, len,
                     "the broker serves its maximum of %llu clients "
                     "(broker/max_clients): try again later",
                     (unsigned long long)cfg->max_clients);
        else
            snprintf(reason, len,
                     "agency '%s' has its share of %llu clients, and the rest of "
                     "broker/max_clients is kept for the other agencies: try again later",
                     agency, (unsigned long long)share);
        return false;
    }
    return true;
}

static void
s_on_hello(brk_broker_t *self, s_session_t *s, mlg_msg_t *m, const char *user_id)
{
    const brk_agency_t *agency = brk_config_agency(self->cfg, m->agency);
    char reason[256];
    if (!agency) {
        snprintf(reason, sizeof(reason),
                 "'%s' is not an agency registered with this broker", m->agency);
        s_send_error(self, s->routing_id, MLG_FORBIDDEN, reason);
        return;
    }
    /* under CURVE the key says who the client is, not the HELLO; and the
       key must still be registered (a reload may have removed it) */
    if (self->cfg->curve) {
        char owner[MLG_AGENCY_ID_MAX + 1] = "", key[41] = "";
        if (!user_id || sscanf(user_id, "%64s %40s", owner, key) != 2)
            owner[0] = '\0';
        if (strcmp(owner, m->agency) != 0 || !brk_agency_has_key(agency, key)) {
            if (strcmp(owner, m->agency) != 0)
                snprintf(reason, sizeof(reason),
                         "this connection's key belongs to '%s', not to '%s'",
                         owner[0] ? owner : "no agency", m->agency);
            else
                snprintf(reason, sizeof(reason),
                         "this connection's key is no longer registered for '%s'",
                         m->agency);
            brk_log(BRK_LOG_WARNING, "auth", "%s", reason);
            s_send_error(self, s->routing_id, MLG_FORBIDDEN, reason);
            return;
        }
        snprintf(s->curve_key, sizeof(s->curve_key), "%s", key);
    }
    /* a second HELLO for the same agency keeps its place */
    bool moves = !s->hello || strcmp(s->agency, m->agency) != 0;
    if (moves
        && !s_room(self, m->agency, s->hello ? s->agency : NULL, reason,
                   sizeof(reason))) {
        brk_log(BRK_LOG_WARNING, m->agency, "HELLO refused: %s", reason);
        s_send_error(self, s->routing_id, MLG_UNAVAILABLE, reason);
        return;
    }
    bool joined = s->hello;
    if (joined && moves)
        s_join(self, s->agency, -1);
    if (moves)
        s_join(self, m->agency, +1);
    if (s->hello) { /* a second HELLO replaces the first */
        s->hello = false;
        s_requeue_session(self, s, "second HELLO");
        brk_queue_t *old = brk_queues_find(self->queues, s->agency);
        if (old)
            s_pump(self, old);
    }
    if (!joined)
        self->clients++;
    s->hello = true;
    snprintf(s->agency, sizeof(s->agency), "%s", m->agency);
    snprintf(s->client, sizeof(s->client), "%s", m->client);
    s->credit = m->credit > S_MAX_CREDIT ? S_MAX_CREDIT : m->credit;
    snprintf(s->name, sizeof(s->name), "s-%llu",
             (unsigned long long)++self->next_session);
    mlg_msg_t *w = mlg_msg_new(MLG_OP_WELCOME);
    snprintf(w->session, sizeof(w->session), "%s", s->name);
    snprintf(w->agency, sizeof(w->agency), "%s", s->agency);
    w->heartbeat_ms = self->cfg->heartbeat_ms;
    w->max_message_bytes = self->cfg->max_message_bytes;
    s_send(self, s->routing_id, w);
    mlg_msg_destroy(&w);
    brk_log(BRK_LOG_INFO, s->agency, "client %s joined as %s, credit %llu",
            s->client[0] ? s->client : "(unnamed)", s->name,
            (unsigned long long)s->credit);
    brk_queue_t *q = brk_queues_get(self->queues, s->agency);
    if (q)
        s_pump(self, q);
}

/* A PUBLISH on its way through the loop: what its steps found. */
typedef struct {
    const mlg_schema_t *schema;
    int64_t received_us;
    brk_decision_t *decisions; /* owned until the job takes them */
    size_t ndecisions;
    brk_consent_plan_t consent; /* a consent event's plan */
    char reason[768];
} s_publish_t;

/* Check: the frame's size, the agency's permission, the schema, the
   body and the envelope, in PROTOCOL.md §5's order. */
static mlg_rc_t
s_publish_check(brk_broker_t *self, const s_session_t *s, const mlg_msg_t *m,
                size_t frame_size, s_publish_t *p)
{
    if (frame_size > self->cfg->max_message_bytes) {
        snprintf(p->reason, sizeof(p->reason),
                 "the message is %zu bytes, over the limit of %llu", frame_size,
                 (unsigned long long)self->cfg->max_message_bytes);
        return MLG_TOO_LARGE;
    }
    const brk_agency_t *agency = brk_config_agency(self->cfg, s->agency);
    if (!agency || !brk_agency_may_publish(agency, m->type)) {
        snprintf(p->reason, sizeof(p->reason), "agency '%s' may not publish %s",
                 s->agency, m->type);
        return MLG_FORBIDDEN;
    }
    p->schema = mlg_registry_find(self->reg, m->type, m->version);
    if (!p->schema) {
        snprintf(p->reason, sizeof(p->reason), "no schema for %s version %llu", m->type,
                 (unsigned long long)m->version);
        return MLG_UNKNOWN_TYPE;
    }
    mlg_time_t now = mlg_time_now();
    p->received_us = now.sec * 1000000 + now.nsec / 1000;
    mlg_rc_t rc = mlg_schema_validate_msg(p->schema, m, p->reason, sizeof(p->reason));
    if (rc != MLG_OK)
        return rc;
    return mlg_envelope_check(self->reg, p->schema, m, s->agency, p->reason,
                              sizeof(p->reason));
}

/* Plan: who receives it, with a decision each; a consent event's plan
   says besides what to store and which deliveries to keep. */
static mlg_rc_t
s_publish_plan(brk_broker_t *self, const s_session_t *s, const mlg_msg_t *m,
               s_publish_t *p)
{
    if (mlg_schema_basis(p->schema) != MLG_BASIS_CONSENT_NOTICE)
        return brk_route(self->cfg, self->consents, p->schema, m, s->agency,
                         p->received_us, &p->decisions, &p->ndecisions, p->reason,
                         sizeof(p->reason));
    mlg_rc_t rc = brk_consent_plan(self->consents, self->granting, self->queues, m,
                                   s->agency, &p->consent, p->reason, sizeof(p->reason));
    if (rc != MLG_OK)
        return rc;
    p->decisions = p->consent.notices; /* the parties told are its recipients */
    p->ndecisions = p->consent.nnotices;
    p->consent.notices = NULL;
    return MLG_OK;
}

/* Admit: the store has room for one more publish, and this client has
   not its share of them waiting already. */
static mlg_rc_t
s_publish_admit(brk_broker_t *self, const s_session_t *s, s_publish_t *p)
{
    const brk_config_t *cfg = self->cfg;
    if (self->db_up && self->outstanding < cfg->max_outstanding
        && s->outstanding >= cfg->max_outstanding_per_client) {
        snprintf(
            p->reason, sizeof(p->reason),
            "this client has %llu publishes waiting for storage "
            "(broker/max_outstanding_per_client): nothing was stored, retry later with "
            "the same id",
            (unsigned long long)s->outstanding);
        return MLG_UNAVAILABLE;
    }
    if (!self->db_up || self->outstanding >= cfg->max_outstanding) {
        snprintf(p->reason, sizeof(p->reason),
                 "%s: nothing was stored, retry later with the same id",
                 self->db_up ? "the broker has too many publishes waiting for storage"
                             : "the database cannot be reached");
        return MLG_UNAVAILABLE;
    }
    return MLG_OK;
}

static const brk_job_kind_t s_job_kind[] = {
    [BRK_CONSENT_STORED] = BRK_JOB_PLAIN, /* a duplicate */
    [BRK_CONSENT_GRANTS] = BRK_JOB_GRANT,
    [BRK_CONSENT_REVOKES] = BRK_JOB_REVOKE,
};

/* Hand to the store: the job takes the message (*m_p becomes NULL), the
   decisions and what the consent plan owns. */
static mlg_rc_t
s_publish_hand(brk_broker_t *self, s_session_t *s, mlg_msg_t **m_p, s_publish_t *p)
{
    brk_job_t *job = calloc(1, sizeof(*job));
    if (!job) {
        snprintf(p->reason, sizeof(p->reason),
                 "the broker is out of memory: retry later");
        return MLG_UNAVAILABLE;
    }
    brk_consent_plan_t *plan = &p->consent;
    job->kind = mlg_schema_basis(p->schema) == MLG_BASIS_CONSENT_NOTICE
                    ? s_job_kind[plan->step]
                    : BRK_JOB_PLAIN;
    brk_consent_plan_begin(plan, self->granting);
    job->consent = plan->grant;
    plan->grant = NULL;
    if (plan->revoke)
        snprintf(job->consent_id, sizeof(job->consent_id), "%s", plan->revoke->id);
    job->keep = plan->keep;
    job->nkeep = plan->nkeep;
    plan->keep = NULL;
    job->msg = *m_p;
    *m_p = NULL; /* the job owns the message now */
    snprintf(job->sender, sizeof(job->sender), "%s", s->agency);
    job->received_us = p->received_us;
    job->decisions = p->decisions;
    job->ndecisions = p->ndecisions;
    p->decisions = NULL;
    job->routing_id = zframe_dup(s->routing_id);
    job->conn = s->conn;
    self->outstanding++;
    s->outstanding++;
    zsock_send(self->store, "sp", "PUBLISH", job);
    return MLG_OK;
}

/* A PUBLISH: check, plan, admit, hand to the store. The answer goes out
   when the store has committed it (s_on_done), or now if a step refuses
   it. */
static void
s_on_publish(brk_broker_t *self, s_session_t *s, mlg_msg_t **m_p, size_t frame_size)
{
    s_publish_t p = {.schema = NULL};
    mlg_rc_t rc = s_publish_check(self, s, *m_p, frame_size, &p);
    if (rc == MLG_OK)
        rc = s_publish_plan(self, s, *m_p, &p);
    if (rc == MLG_OK)
        rc = s_publish_admit(self, s, &p);
    if (rc == MLG_OK)
        rc = s_publish_hand(self, s, m_p, &p);
    if (rc != MLG_OK)
        s_send_reject(self, s->routing_id, (*m_p)->id,
                      rc == MLG_ERR_NOMEM ? MLG_UNAVAILABLE : rc, p.reason);
    free(p.decisions);
    brk_consent_plan_clear(&p.consent);
}

static void
s_on_ack(brk_broker_t *self, s_session_t *s, const mlg_msg_t *m)
{
    brk_delivery_t *row = s_land(self, s, m->delivery);
    if (!row) {
        char reason[160];
        snprintf(reason, sizeof(reason), "delivery %llu is not in flight to this client",
                 (unsigned long long)m->delivery);
        s_send_error(self, s->routing_id, MLG_UNKNOWN_DELIVERY, reason);
        return;
    }
    if (m->op == MLG_OP_ACK)
        s_update(self, BRK_UPDATE_ACK, row->delivery, row->attempts, NULL, s->name);
    else {
        s_update(self, BRK_UPDATE_NACK, row->delivery, row->attempts, m->reason, s->name);
        if (!m->requeue) {
            brk_log(BRK_LOG_WARNING, s->agency, "delivery %llu dead: refused by %s",
                    (unsigned long long)row->delivery, s->name);
            s_update(self, BRK_UPDATE_DEAD, row->delivery, row->attempts, m->reason,
                     s->name);
        }
        else {
            s_give_back(self, row, m->reason, s->name);
            row = NULL;
        }
    }
    brk_delivery_destroy(&row);
    brk_queue_t *q = brk_queues_get(self->queues, s->agency);
    if (q)
        s_pump(self, q);
}

static int
s_on_router(zloop_t *loop, zsock_t *reader, void *arg)
{
    (void)loop;
    brk_broker_t *self = arg;
    zmsg_t *msg = zmsg_recv(reader);
    if (!msg)
        return 0;
    zframe_t *rid = zmsg_pop(msg);
    if (!rid) {
        zmsg_destroy(&msg);
        return 0;
    }
    /* closures first: a map is never read against the session of a
       connection that closed before it */
    s_end_closed(self);
    zframe_t *frame = zmsg_first(msg);
    s_conn_t conn;
    s_conn_read(frame, &conn);
    char *hex = zframe_strhex(rid);
    s_session_t *s = zhashx_lookup(self->sessions, hex);
    if (s && !s_same_conn(s, &conn)) {
        /* another connection with this routing id (chosen by the client):
           nothing of the session is acted on for it */
        brk_log(BRK_LOG_WARNING, "auth",
                "routing id %.64s of session %s (agency %s, key %s) used by another "
                "connection (key %s): that session ends, this one must say HELLO",
                hex, s->name, s->agency, s->curve_key[0] ? s->curve_key : "none",
                conn.key[0] ? conn.key : "none");
        s_session_end(self, s, "its routing id was taken by another connection");
        s = NULL;
    }
    if (s)
        s->last_seen = zclock_mono();
    if (zmsg_size(msg) != 1) {
        free(hex);
        s_send_error(self, rid, MLG_MALFORMED, "a message is exactly one frame");
        goto done;
    }
    mlg_msg_t *m = NULL;
    mlg_error_t err;
    if (mlg_msg_decode(zframe_data(frame), zframe_size(frame), &m, &err) != MLG_OK) {
        free(hex);
        mlg_rc_t code = err.rc == MLG_ERR_NOMEM ? MLG_UNAVAILABLE : err.rc;
        if (err.op == MLG_OP_PUBLISH && err.id[0])
            s_send_reject(self, rid, err.id, code, err.reason);
        else
            s_send_error(self, rid, code, err.reason);
        goto done;
    }
    if (m->op != MLG_OP_HELLO && !s) {
        s_check_departed(self, hex, &conn);
        free(hex);
        if (m->op == MLG_OP_PUBLISH)
            s_send_reject(self, rid, m->id, MLG_HELLO_REQUIRED,
                          "send HELLO first (or again, after a silence)");
        else if (m->op != MLG_OP_BYE)
            s_send_error(self, rid, MLG_HELLO_REQUIRED,
                         "send HELLO first (or again, after a silence)");
        mlg_msg_destroy(&m);
        goto done;
    }
    bool fresh = !s;
    if (fresh) { /* a HELLO: the session is kept if it is accepted */
        s = calloc(1, sizeof(*s));
        if (!s) {
            free(hex);
            s_send_error(self, rid, MLG_UNAVAILABLE, "the broker is out of memory");
            mlg_msg_destroy(&m);
            goto done;
        }
        snprintf(s->key, sizeof(s->key), "%s", hex);
        s->routing_id = zframe_dup(rid);
        s->fd = conn.fd;
        snprintf(s->curve_key, sizeof(s->curve_key), "%s", conn.key);
        s->conn = ++self->next_conn;
        s->last_seen = zclock_mono();
        zhashx_insert(self->sessions, hex, s);
    }
    free(hex);
    switch (m->op) {
    case MLG_OP_HELLO:
        s_on_hello(self, s, m, zframe_meta(frame, "User-Id"));
        if (fresh && !s->hello)
            zhashx_delete(self->sessions, s->key); /* refused: nothing kept */
        break;
    case MLG_OP_PUBLISH: s_on_publish(self, s, &m, zframe_size(frame)); break;
    case MLG_OP_ACK:
    case MLG_OP_NACK: s_on_ack(self, s, m); break;
    case MLG_OP_PING: {
        mlg_msg_t *pong = mlg_msg_new(MLG_OP_PONG);
        s_send(self, rid, pong);
        mlg_msg_destroy(&pong);
        break;
    }
    case MLG_OP_BYE:
        mlg_msg_destroy(&m);
        s_session_end(self, s, "BYE");
        goto done;
    default: {
        char reason[128];
        snprintf(reason, sizeof(reason), "%s is sent by the broker, not to it",
                 mlg_op_name(m->op));
        s_send_error(self, rid, MLG_UNKNOWN_OP, reason);
    }
    }
    mlg_msg_destroy(&m);
done:
    zframe_destroy(&rid);
    zmsg_destroy(&msg);
    return 0;
}

/* ---- the store's answers ---------------------------------------------- */

/* A consent event's outcome reaches the index: a grant is in force for
   the very next publish; a revocation stops its deliveries. */
static void
s_consent_done(brk_broker_t *self, brk_job_t *job)
{
    bool stored = job->rc == MLG_OK && !job->duplicate;
    if (job->kind == BRK_JOB_GRANT) {
        char id[MLG_UUID_LEN + 1];
        snprintf(id, sizeof(id), "%s", job->consent->id);
        zhashx_delete(self->granting, id);
        if (stored && brk_consents_add(self->consents, &job->consent) == 0)
            brk_log(BRK_LOG_INFO, job->sender, "consent %s granted", id);
    }
    if (job->kind == BRK_JOB_REVOKE) {
        brk_consent_t *c = brk_consents_find(self->consents, job->consent_id);
        if (c) {
            c->revoking = false;
            if (stored) {
                c->revoked_at = job->received_us;
                snprintf(c->revoked_message, sizeof(c->revoked_message), "%s",
                         job->msg->id);
                brk_log(BRK_LOG_INFO, job->sender, "consent %s revoked", c->id);
            }
        }
        s_pump_all(self); /* held deliveries: settled or sent */
    }
}

/* A delivery just committed, as the DELIVER its queue would read back. */
static brk_delivery_t *
s_row_from_job(const brk_job_t *job, size_t i)
{
    const mlg_msg_t *m = job->msg;
    const brk_decision_t *d = &job->decisions[i];
    brk_delivery_t *row = calloc(1, sizeof(*row));
    mlg_msg_t *out = mlg_msg_new(MLG_OP_DELIVER);
    if (!row || !out || mlg_msg_set_body(out, m->body, m->body_len) != MLG_OK) {
        free(row);
        mlg_msg_destroy(&out);
        return NULL;
    }
    row->delivery = job->delivery_ids[i];
    snprintf(row->recipient, sizeof(row->recipient), "%s", d->recipient);
    if (d->basis == MLG_BASIS_CONSENT)
        snprintf(row->consent_id, sizeof(row->consent_id), "%s", d->consent_id);
    memcpy(out->id, m->id, sizeof(out->id));
    memcpy(out->type, m->type, sizeof(out->type));
    out->version = m->version;
    memcpy(out->subject, m->subject, sizeof(out->subject));
    memcpy(out->purpose, m->purpose, sizeof(out->purpose));
    memcpy(out->correlation, m->correlation, sizeof(out->correlation));
    /* the database keeps microseconds: send what a read-back would */
    out->has_occurred_at = m->has_occurred_at;
    out->occurred_at.sec = m->occurred_at.sec;
    out->occurred_at.nsec = m->occurred_at.nsec / 1000 * 1000;
    snprintf(out->from, sizeof(out->from), "%s", job->sender);
    out->received_at.sec = job->received_us / 1000000;
    out->received_at.nsec = (uint32_t)(job->received_us % 1000000) * 1000;
    row->deliver = out;
    return row;
}

/* A publish's delivery for queue q was committed: it joins the
   read-ahead from memory when the queue says so, with no read-back of
   what was just written. Otherwise the next read finds it. */
static void
s_take_new(brk_queue_t *q, const brk_job_t *job, size_t i)
{
    uint64_t id = job->delivery_ids ? job->delivery_ids[i] : 0;
    if (brk_queue_offer(q, id))
        brk_queue_append_new(q, s_row_from_job(job, i));
}

static void
s_on_done(brk_broker_t *self, brk_job_t *job)
{
    self->outstanding--;
    char *key = zframe_strhex(job->routing_id);
    s_session_t *owner = key ? zhashx_lookup(self->sessions, key) : NULL;
    free(key);
    /* the answer goes to the connection that sent the publish only: when
       it has closed, its routing id may be another connection's now (its
       client retries with the same id) */
    if (owner && owner->conn != job->conn)
        owner = NULL;
    if (owner && owner->outstanding)
        owner->outstanding--;
    s_consent_done(self, job);
    if (job->rc == MLG_OK && !job->duplicate) {
        brk_metrics_received(job->msg->type);
        for (size_t i = 0; i < job->ndecisions; i++)
            brk_metrics_decision(job->decisions[i].allow,
                                 mlg_basis_name(job->decisions[i].basis));
    }
    if (job->rc == MLG_OK) {
        mlg_time_t now = mlg_time_now();
        brk_metrics_confirm_seconds(
            (double)(now.sec * 1000000 + now.nsec / 1000 - job->received_us) / 1e6);
        mlg_msg_t *c = mlg_msg_new(MLG_OP_CONFIRM);
        snprintf(c->id, sizeof(c->id), "%s", job->msg->id);
        c->seq = job->seq;
        c->duplicate = job->duplicate;
        for (size_t i = 0; i < job->ndecisions; i++) {
            const brk_decision_t *d = &job->decisions[i];
            if (d->allow)
                mlg_msg_add_routed(c, d->recipient);
            else
                mlg_msg_add_denied(c, d->recipient, d->reason);
        }
        if (owner)
            s_send(self, job->routing_id, c);
        mlg_msg_destroy(&c);
    }
    else if (owner && job->rc == MLG_INVALID)
        s_send_reject(self, job->routing_id, job->msg->id, MLG_INVALID,
                      "/id: id already used: choose a new id for a new message");
    else if (owner)
        s_send_reject(self, job->routing_id, job->msg->id, MLG_UNAVAILABLE,
                      "the database could not store it: nothing was stored, retry later "
                      "with the same id");
    if (job->created_deliveries)
        for (size_t i = 0; i < job->ndecisions; i++)
            if (job->decisions[i].allow) {
                brk_queue_t *q =
                    brk_queues_get(self->queues, job->decisions[i].recipient);
                if (q) {
                    s_take_new(q, job, i);
                    s_pump(self, q);
                }
            }
    brk_job_destroy(&job);
}

/* Dead letters of this agency are pending again: read its queue from the
   start, skipping what is held in memory already. */
static void
s_on_replay(brk_broker_t *self, const char *agency)
{
    brk_queue_t *q = brk_queues_get(self->queues, agency);
    if (!q)
        return;
    brk_log(BRK_LOG_INFO, agency, "dead letters replayed by an operator");
    brk_queue_replay(q);
    s_pump(self, q);
}

static void
s_on_fetched(brk_broker_t *self, brk_fetch_t *f)
{
    brk_queue_t *q = brk_queues_get(self->queues, f->agency);
    if (q) {
        brk_queues_read_done(self->queues, q, f->ok, f->rows, f->nrows, f->limit);
        s_pump(self, q);
    }
    brk_fetch_destroy(&f);
}

static int
s_on_store(zloop_t *loop, zsock_t *reader, void *arg)
{
    (void)loop;
    brk_broker_t *self = arg;
    char *verb = NULL;
    void *ptr = NULL;
    if (zsock_recv(reader, "sp", &verb, &ptr) != 0 || !verb)
        return 0;
    if (streq(verb, "DONE"))
        s_on_done(self, ptr);
    else if (streq(verb, "FETCHED"))
        s_on_fetched(self, ptr);
    else if (streq(verb, "REPLAY")) {
        s_on_replay(self, ptr);
        free(ptr);
    }
    else if (streq(verb, "CONSENTS")) {
        /* the index as the database has it: what every broker would decide */
        brk_consents_destroy(&self->consents);
        self->consents = ptr;
    }
    else if (streq(verb, "DB-UP") || streq(verb, "DB-DOWN")) {
        self->db_up = streq(verb, "DB-UP");
        brk_metrics_set_db(self->db_up);
        if (self->db_up) {
            brk_log(BRK_LOG_INFO, "loop", "database available: publishing open");
            brk_queues_reconnected(self->queues);
            s_pump_all(self);
        }
        else
            brk_log(BRK_LOG_WARNING, "loop",
                    "database unavailable: publishes are answered UNAVAILABLE");
    }
    zstr_free(&verb);
    if (self->draining && self->outstanding == 0)
        return -1;
    return 0;
}

/* ---- timers ----------------------------------------------------------- */

/* SIGHUP: the agencies section again, without dropping other clients. */
static void
s_reload(brk_broker_t *self)
{
    char err[1024];
    brk_config_t *next = brk_config_load(self->cfg->path, err, sizeof(err));
    if (!next) {
        brk_log(BRK_LOG_ERROR, "config", "reload refused, the running agencies stay: %s",
                err);
        return;
    }
    if (next->curve != self->cfg->curve) {
        brk_log(BRK_LOG_ERROR, "config",
                "%s: security/curve: a reload cannot change it (restart the broker)",
                self->cfg->path);
        brk_config_destroy(&next);
        return;
    }
    if (self->auth && brk_auth_set_keys(self->auth, next) != 0) {
        brk_log(BRK_LOG_ERROR, "config", "reload refused: a public key is not Z85");
        brk_config_destroy(&next);
        return;
    }
    brk_config_swap_agencies(self->cfg, next);
    brk_config_destroy(&next); /* now holds the old agencies */
    zlistx_t *keys = zhashx_keys(self->sessions);
    for (const char *key = zlistx_first(keys); key; key = zlistx_next(keys)) {
        s_session_t *s = zhashx_lookup(self->sessions, key);
        if (!s || !s->hello)
            continue;
        const brk_agency_t *a = brk_config_agency(self->cfg, s->agency);
        if (!a || (self->cfg->curve && !brk_agency_has_key(a, s->curve_key)))
            s_session_end(self, s, "its key or agency was removed by a reload");
    }
    zlistx_destroy(&keys);
    s_send_agencies(self);
    brk_log(BRK_LOG_INFO, "config", "reloaded %s: %zu agencies", self->cfg->path,
            self->cfg->nagencies);
}

/* The registry, for the store to write into the agencies table. */
static void
s_send_agencies(brk_broker_t *self)
{
    json_t *list = json_array();
    for (size_t i = 0; list && i < self->cfg->nagencies; i++) {
        const brk_agency_t *a = &self->cfg->agencies[i];
        json_t *o = json_object(), *keys = json_array(), *pub = json_array(),
               *sub = json_array();
        char *copy = strdup(a->public_keys ? a->public_keys : ""), *save = NULL;
        for (char *k = copy ? strtok_r(copy, " ", &save) : NULL; k;
             k = strtok_r(NULL, " ", &save))
            json_array_append_new(keys, json_string(k));
        free(copy);
        for (size_t k = 0; k < a->npublish; k++)
            json_array_append_new(pub, json_string(a->publish[k]));
        for (size_t k = 0; k < a->nsubscribe; k++)
            json_array_append_new(sub, json_string(a->subscribe[k]));
        json_object_set_new(o, "id", json_string(a->id));
        json_object_set_new(o, "name", json_string(a->name ? a->name : ""));
        json_object_set_new(o, "public_keys", keys);
        json_object_set_new(o, "publish", pub);
        json_object_set_new(o, "subscribe", sub);
        json_array_append_new(list, o);
    }
    char *text = list ? json_dumps(list, JSON_COMPACT) : NULL;
    json_decref(list);
    if (text)
        zsock_send(self->store, "sp", "AGENCIES", text);
}

/* The loop's figures for the HTTP thread: clients and deliveries in
   flight, per registered agency. */
static void
s_publish_figures(brk_broker_t *self)
{
    size_t n = self->cfg->nagencies;
    size_t *clients = calloc(n ? n : 1, sizeof(*clients));
    uint64_t *inflight = calloc(n ? n : 1, sizeof(*inflight));
    if (clients && inflight) {
        for (s_session_t *s = zhashx_first(self->sessions); s;
             s = zhashx_next(self->sessions))
            for (size_t i = 0; s->hello && i < n; i++)
                if (strcmp(self->cfg->agencies[i].id, s->agency) == 0) {
                    clients[i]++;
                    inflight[i] += s->inflight;
                }
        brk_metrics_set_agencies(self->cfg->agencies, n, clients, inflight);
    }
    free(clients);
    free(inflight);
}

static int
s_on_tick(zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    brk_broker_t *self = arg;
    if (*self->stop && !self->draining)
        return -1; /* leave zloop_start: brk_broker_run drains */
    if (self->reload && *self->reload) {
        *self->reload = 0;
        s_reload(self);
    }
    int64_t now = zclock_mono();
    int64_t limit = 3 * (int64_t)self->cfg->heartbeat_ms;
    /* over a copy of the keys: ending a session changes the table (and
       zhashx_values would hand its destructor to the list) */
    zlistx_t *keys = zhashx_keys(self->sessions);
    for (const char *key = zlistx_first(keys); key; key = zlistx_next(keys)) {
        s_session_t *s = zhashx_lookup(self->sessions, key);
        if (s && now - s->last_seen > limit)
            s_session_end(self, s, "silent");
    }
    zlistx_destroy(&keys);
    keys = zhashx_keys(self->departed);
    for (const char *key = zlistx_first(keys); key; key = zlistx_next(keys)) {
        s_departed_t *d = zhashx_lookup(self->departed, key);
        if (d && now > d->until)
            zhashx_delete(self->departed, key);
    }
    zlistx_destroy(&keys);
    /* queues whose read-ahead failed try again */
    s_pump_all(self);
    if (self->http && self->ticks++ % 10 == 0)
        s_publish_figures(self);
    return 0;
}

static int
s_on_drain_timeout(zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    brk_broker_t *self = arg;
    brk_log(BRK_LOG_WARNING, "loop", "%zu publish(es) still unanswered at shutdown",
            self->outstanding);
    return -1;
}

/* ---- life ------------------------------------------------------------- */

brk_broker_t *
brk_broker_new(brk_config_t *cfg, const mlg_registry_t *reg, const char *sql_dir)
{
    brk_broker_t *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    self->cfg = cfg;
    self->reg = reg;
    self->sessions = zhashx_new();
    zhashx_set_destructor(self->sessions, s_session_destroy);
    self->joined = zhashx_new(); /* counts, not pointers: no destructor */
    self->departed = zhashx_new();
    zhashx_set_destructor(self->departed, s_free_item);
    self->queues = brk_queues_new(S_FETCH_LIMIT);
    self->consents = brk_consents_new();
    self->granting = zhashx_new();
    self->router = zsock_new(ZMQ_ROUTER);
    /* the hard stop behind TOO_LARGE: a frame far past the limit closes
       that connection inside libzmq, before any of it is read */
    uint64_t hard = 2 * cfg->max_message_bytes + 4096;
    zsock_set_maxmsgsize(self->router, hard > INT32_MAX ? INT32_MAX : (int)hard);
    zsock_set_linger(self->router, 1000);
    /* a second connection with a live one's routing id is not given it
       (libzmq never reads its maps); with handover it would take it */
    zsock_set_router_handover(self->router, 0);
    /* the closure of each connection, read in this thread (s_read_disconnects);
       unbounded on this side, so that libzmq's I/O thread never waits for
       the loop: one small event a closed connection */
    char monitor[64];
    snprintf(monitor, sizeof(monitor), "inproc://maillage-monitor-%p", (void *)self);
    self->monitor = zsock_new(ZMQ_PAIR);
    if (self->monitor) {
        zsock_set_rcvhwm(self->monitor, 0);
        zsock_set_rcvtimeo(self->monitor, 0);
    }
    if (!self->monitor
        || zmq_socket_monitor(zsock_resolve(self->router), monitor,
                              ZMQ_EVENT_DISCONNECTED)
               != 0
        || zsock_connect(self->monitor, "%s", monitor) != 0) {
        brk_log(BRK_LOG_ERROR, "loop", "could not monitor the socket: %s",
                zmq_strerror(zmq_errno()));
        brk_broker_destroy(&self);
        return NULL;
    }
    /* A publisher may have many publishes outstanding and read the answers
       later: ROUTER drops what is over a peer's high-water mark, so leave
       room for every answer it can have pending. Bounded: one answer per
       frame the peer sent, plus deliveries within its credit. */
    uint64_t hwm = 2 * cfg->max_outstanding + S_MAX_CREDIT;
    zsock_set_sndhwm(self->router, hwm > INT32_MAX ? INT32_MAX : (int)hwm);
    if (cfg->curve) {
        zcert_t *cert = zcert_load(cfg->secret_cert ? cfg->secret_cert : "");
        if (!cert) {
            brk_log(BRK_LOG_ERROR, "config",
                    "%s: security/secret_cert: could not load the certificate '%s'",
                    cfg->path, cfg->secret_cert ? cfg->secret_cert : "");
            brk_broker_destroy(&self);
            return NULL;
        }
        /* the ZAP handler first: CURVE without one admits any key */
        self->auth = brk_auth_new(cfg);
        if (!self->auth) {
            zcert_destroy(&cert);
            brk_broker_destroy(&self);
            return NULL;
        }
        zcert_apply(cert, self->router);
        zcert_destroy(&cert);
        zsock_set_curve_server(self->router, 1);
        zsock_set_zap_domain(self->router, "maillage");
    }
    if (zsock_bind(self->router, "%s", cfg->endpoint) < 0) {
        brk_log(BRK_LOG_ERROR, "loop", "could not bind %s: %s", cfg->endpoint,
                zmq_strerror(zmq_errno()));
        brk_broker_destroy(&self);
        return NULL;
    }
    brk_metrics_init();
    if (cfg->http && *cfg->http) {
        char err[600];
        self->http = brk_http_new(cfg->http, cfg->database, err, sizeof(err));
        if (!self->http) {
            brk_log(BRK_LOG_ERROR, "config", "%s: %s", cfg->path, err);
            brk_broker_destroy(&self);
            return NULL;
        }
        s_publish_figures(self);
        brk_log(BRK_LOG_INFO, "http",
                "/metrics, /healthz and the dashboard on http://%s/", cfg->http);
    }
    self->store = brk_store_new(cfg->database, sql_dir);
    if (!self->store) {
        brk_broker_destroy(&self);
        return NULL;
    }
    s_send_agencies(self);
    self->loop = zloop_new();
    zloop_reader(self->loop, self->router, s_on_router, self);
    zloop_reader(self->loop, self->monitor, s_on_monitor, self);
    zloop_reader(self->loop, (zsock_t *)zactor_sock(self->store), s_on_store, self);
    zloop_timer(self->loop, 100, 0, s_on_tick, self);
    brk_log(BRK_LOG_INFO, "loop", "listening on %s", cfg->endpoint);
    return self;
}

int
brk_broker_run(brk_broker_t *self, volatile sig_atomic_t *stop,
               volatile sig_atomic_t *reload)
{
    self->stop = stop;
    self->reload = reload;
    while (!*stop)
        zloop_start(self->loop); /* returns on a signal, or -1 from a handler */
    brk_log(BRK_LOG_INFO, "loop", "stopping: no new maps read, %zu publish(es) in hand",
            self->outstanding);
    self->draining = true;
    zloop_reader_end(self->loop, self->router);
    if (self->outstanding) {
        zloop_timer(self->loop, S_DRAIN_MS, 1, s_on_drain_timeout, self);
        zloop_set_nonstop(self->loop, true);
        zloop_start(self->loop);
    }
    return 0;
}

void
brk_broker_destroy(brk_broker_t **self_p)
{
    brk_broker_t *self = *self_p;
    if (!self)
        return;
    brk_http_destroy(&self->http);
    brk_metrics_shutdown();
    zloop_destroy(&self->loop);
    /* the store finishes the batch in hand, then stops */
    zactor_destroy(&self->store);
    brk_queues_destroy(&self->queues);
    zhashx_destroy(&self->granting);
    brk_consents_destroy(&self->consents);
    zhashx_destroy(&self->sessions);
    zhashx_destroy(&self->joined);
    zhashx_destroy(&self->departed);
    if (self->router && self->monitor) /* libzmq's side of the monitor first */
        zmq_socket_monitor(zsock_resolve(self->router), NULL, 0);
    zsock_destroy(&self->monitor);
    zsock_destroy(&self->router);
    zactor_destroy(&self->auth);
    free(self);
    *self_p = NULL;
}
