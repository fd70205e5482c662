/*  broker.c: the event loop of maillage-broker, its life and its timers.

    Makes the broker (the ROUTER socket and its monitor, CURVE, the HTTP
    listener, the store thread), runs the loop, drains and frees it.
    Dispatches the store's answers to the modules that act on them,
    reloads the agencies on SIGHUP, and on each tick ends silent
    sessions, pumps the queues whose read failed and publishes the
    figures. The maps themselves are read in conn.c; sessions,
    deliveries and publishes have their own files (loop.h lists them).
    Called by main.c. */

#include <czmq.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "broker.h"
#include "http.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"

#define S_FETCH_LIMIT 256    /* read-ahead of one queue */
#define S_DRAIN_MS 5000      /* how long SIGTERM waits for the store */
#define S_OVERDUE_LISTED 100 /* the dashboard's list of overdue legs */

static void
s_free_item(void **item)
{
    free(*item);
    *item = NULL;
}

static int
s_on_store(zloop_t *loop, zsock_t *reader, void *arg)
{
    (void)loop;
    brk_broker_t *self = arg;
    brk_store_report_t r;
    if (brk_store_recv(reader, &r) != 0)
        return 0;
    switch (r.kind) {
    case BRK_STORE_DONE: brk_publish_on_done(self, r.job); break;
    case BRK_STORE_FETCHED: brk_deliveries_on_fetched(self, r.fetch); break;
    case BRK_STORE_REPLAY:
        brk_deliveries_on_replay(self, r.agency);
        free(r.agency);
        break;
    case BRK_STORE_CONSENTS:
        /* the index as the database has it: what every broker would decide */
        brk_consents_destroy(&self->consents);
        self->consents = r.consents;
        break;
    case BRK_STORE_REFERRALS:
        /* the same for the legs, keeping what is in flight */
        brk_referrals_replace(self->referrals, &r.referrals);
        self->referrals_loaded = true;
        brk_notices_tick(self);
        break;
    case BRK_STORE_DB_UP:
    case BRK_STORE_DB_DOWN:
        self->db_up = r.kind == BRK_STORE_DB_UP;
        brk_metrics_set_db(self->metrics, self->db_up);
        if (self->db_up) {
            brk_log(BRK_LOG_INFO, "loop", "database available: publishing open");
            brk_queues_reconnected(self->queues);
            brk_deliveries_pump_all(self);
        }
        else
            brk_log(BRK_LOG_WARNING, "loop",
                    "database unavailable: publishes are answered UNAVAILABLE");
        break;
    }
    if (self->draining && self->outstanding == 0)
        return -1;
    return 0;
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
        brk_store_agencies(self->store, &text);
}

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
        brk_session_t *s = zhashx_lookup(self->sessions, key);
        if (!s || !s->hello)
            continue;
        const brk_agency_t *a = brk_config_agency(self->cfg, s->agency);
        if (!a || (self->cfg->curve && !brk_agency_has_key(a, s->curve_key)))
            brk_session_end(self, s, "its key or agency was removed by a reload");
    }
    zlistx_destroy(&keys);
    s_send_agencies(self);
    brk_log(BRK_LOG_INFO, "config", "reloaded %s: %zu agencies", self->cfg->path,
            self->cfg->nagencies);
}

/* The loop's figures for the HTTP thread: clients and deliveries in
   flight, per registered agency (which also tells /healthz that the
   loop runs); the referral legs' counts, kept by the index as they
   change, and its overdue legs (the cost is theirs, not every leg's:
   referral_figures.c). */
static void
s_publish_figures(brk_broker_t *self)
{
    size_t n = self->cfg->nagencies;
    size_t *clients = calloc(n ? n : 1, sizeof(*clients));
    uint64_t *inflight = calloc(n ? n : 1, sizeof(*inflight));
    if (clients && inflight) {
        for (brk_session_t *s = zhashx_first(self->sessions); s;
             s = zhashx_next(self->sessions))
            for (size_t i = 0; s->hello && i < n; i++)
                if (strcmp(self->cfg->agencies[i].id, s->agency) == 0) {
                    clients[i]++;
                    inflight[i] += s->inflight;
                }
        brk_metrics_set_agencies(self->metrics, self->cfg->agencies, n, clients,
                                 inflight);
    }
    free(clients);
    free(inflight);
    if (!self->referrals_loaded)
        return; /* an empty index is not "no referral" */
    brk_referral_figures_t *referrals = brk_referrals_figures(
        self->referrals, mlg_time_us(mlg_time_now()), S_OVERDUE_LISTED);
    if (referrals)
        brk_metrics_set_referrals(self->metrics, &referrals);
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
    brk_sessions_tick(self);   /* silent sessions end */
    brk_conn_end_closed(self); /* and closed ones, once their maps are read */
    /* queues whose read-ahead failed try again */
    brk_deliveries_pump_all(self);
    brk_deliveries_tell_sent(self, false); /* deliveries held a while */
    brk_notices_tick(self);                /* legs fallen due */
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

/* The ROUTER socket and its options, and the monitor of its closures. */
static int
s_router_new(brk_broker_t *self)
{
    const brk_config_t *cfg = self->cfg;
    self->router = zsock_new(ZMQ_ROUTER);
    if (!self->router)
        return -1;
    /* the hard stop behind TOO_LARGE: a frame far past the limit closes
       that connection inside libzmq, before any of it is read */
    uint64_t hard = 2 * cfg->max_message_bytes + 4096;
    zsock_set_maxmsgsize(self->router, hard > INT32_MAX ? INT32_MAX : (int)hard);
    zsock_set_linger(self->router, 1000);
    /* a second connection with a live one's routing id is not given it
       (libzmq never reads its maps); with handover it would take it */
    zsock_set_router_handover(self->router, 0);
    /* A publisher may have many publishes outstanding and read the answers
       later: ROUTER drops what is over a peer's high-water mark, so leave
       room for every answer it can have pending. Bounded: one answer per
       frame the peer sent, plus deliveries within its credit. */
    uint64_t hwm = 2 * cfg->max_outstanding + BRK_MAX_CREDIT;
    zsock_set_sndhwm(self->router, hwm > INT32_MAX ? INT32_MAX : (int)hwm);
    /* the closure of each connection, read in this thread (brk_conn_read_closures);
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
        return -1;
    }
    return 0;
}

/* Under CURVE: the broker's certificate, and the ZAP handler first
   (CURVE without one admits any key). */
static int
s_curve(brk_broker_t *self)
{
    const brk_config_t *cfg = self->cfg;
    zcert_t *cert = zcert_load(cfg->secret_cert ? cfg->secret_cert : "");
    if (!cert) {
        brk_log(BRK_LOG_ERROR, "config",
                "%s: security/secret_cert: could not load the certificate '%s'",
                cfg->path, cfg->secret_cert ? cfg->secret_cert : "");
        return -1;
    }
    self->auth = brk_auth_new(cfg);
    if (!self->auth) {
        zcert_destroy(&cert);
        return -1;
    }
    zcert_apply(cert, self->router);
    zcert_destroy(&cert);
    zsock_set_curve_server(self->router, 1);
    zsock_set_zap_domain(self->router, "maillage");
    return 0;
}

/* The HTTP listener: /metrics, /healthz and the dashboard. */
static int
s_http(brk_broker_t *self)
{
    const brk_config_t *cfg = self->cfg;
    char err[600];
    self->http = brk_http_new(cfg->http, self->metrics, err, sizeof(err));
    if (!self->http) {
        brk_log(BRK_LOG_ERROR, "config", "%s: %s", cfg->path, err);
        return -1;
    }
    s_publish_figures(self);
    brk_log(BRK_LOG_INFO, "http", "/metrics, /healthz and the dashboard on http://%s/",
            cfg->http);
    return 0;
}

/* The loop's tables, empty. */
static int
s_tables(brk_broker_t *self)
{
    self->sessions = zhashx_new();
    self->joined = zhashx_new(); /* counts, not pointers: no destructor */
    self->departed = zhashx_new();
    self->queues = brk_queues_new(S_FETCH_LIMIT);
    self->consents = brk_consents_new();
    self->granting = zhashx_new(); /* a set: no destructor */
    self->referrals = brk_referrals_new();
    if (!self->sessions || !self->joined || !self->departed || !self->queues
        || !self->consents || !self->granting || !self->referrals)
        return -1;
    zhashx_set_destructor(self->sessions, brk_session_destroy);
    zhashx_set_destructor(self->departed, s_free_item);
    /* every PING has the same answer */
    mlg_msg_t *pong = mlg_msg_new(MLG_OP_PONG);
    int rc = pong ? (int)mlg_msg_encode(pong, &self->pong, &self->pong_size) : -1;
    mlg_msg_destroy(&pong);
    return rc == MLG_OK ? 0 : -1;
}

brk_broker_t *
brk_broker_new(brk_config_t *cfg, const mlg_registry_t *reg, const char *sql_dir)
{
    brk_broker_t *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    self->cfg = cfg;
    self->reg = reg;
    if (s_tables(self) != 0 || s_router_new(self) != 0
        || (cfg->curve && s_curve(self) != 0)) {
        brk_broker_destroy(&self);
        return NULL;
    }
    if (zsock_bind(self->router, "%s", cfg->endpoint) < 0) {
        brk_log(BRK_LOG_ERROR, "loop", "could not bind %s: %s", cfg->endpoint,
                zmq_strerror(zmq_errno()));
        brk_broker_destroy(&self);
        return NULL;
    }
    self->metrics = brk_metrics_new();
    if (!self->metrics) {
        brk_broker_destroy(&self);
        return NULL;
    }
    if (cfg->http && *cfg->http && s_http(self) != 0) {
        brk_broker_destroy(&self);
        return NULL;
    }
    self->store = brk_store_new(cfg->database, sql_dir, self->metrics, cfg->deadlines,
                                cfg->ndeadlines);
    self->loop = self->store ? zloop_new() : NULL;
    if (!self->loop) {
        brk_broker_destroy(&self);
        return NULL;
    }
    s_send_agencies(self);
    zloop_reader(self->loop, self->router, brk_conn_on_router, self);
    /* its descriptor, not the socket (brk_conn_read_closures says why) */
    self->monitor_fd = zsock_fd(self->monitor);
    zmq_pollitem_t monitor = {NULL, self->monitor_fd, ZMQ_POLLIN, 0};
    zloop_poller(self->loop, &monitor, brk_conn_on_monitor, self);
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
    brk_deliveries_tell_sent(self, true); /* before the store stops */
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
    zloop_destroy(&self->loop);
    /* the store finishes the batch in hand, then stops */
    zactor_destroy(&self->store);
    brk_metrics_destroy(&self->metrics); /* after both threads that use it */
    brk_queues_destroy(&self->queues);
    zhashx_destroy(&self->granting);
    brk_consents_destroy(&self->consents);
    brk_referrals_destroy(&self->referrals);
    zhashx_destroy(&self->sessions);
    zhashx_destroy(&self->joined);
    zhashx_destroy(&self->departed);
    free(self->pong);
    if (self->router && self->monitor) /* libzmq's side of the monitor first */
        zmq_socket_monitor(zsock_resolve(self->router), NULL, 0);
    zsock_destroy(&self->monitor);
    zsock_destroy(&self->router);
    zactor_destroy(&self->auth);
    free(self);
    *self_p = NULL;
}
