/*  http.c: the broker's HTTP listener (broker/http), with libmicrohttpd
    driven by an actor of its own: /metrics, /healthz, /api/status and the
    dashboard at /. Every answer comes from the broker's metrics set
    (metrics.c), in memory: the queue depths are the store's, kept as it
    commits (depth.h), and /healthz asks only whether the event loop runs
    and the store has its database. No request reads the database, so a
    scrape costs the same whatever the backlog, answers while the
    database is slow or locked, and never holds the event loop nor the
    store.

    Slow clients. libmicrohttpd's timeout is on idleness and starts again
    with every byte, so a client sending its headers a byte a second kept
    a connection for ever, and 64 of them took every connection while
    /healthz waited. Two rules, both kept in the actor's thread, which is
    the one that runs libmicrohttpd (MHD_run_wait), so no lock is needed
    and no socket is closed behind its back:

    - a request's headers must be complete within S_HEADER_SECONDS of the
      connection's opening or of its previous answer (an idle keep-alive
      connection counts as reading its next headers); a connection past
      that is shut down (shutdown(2): libmicrohttpd sees the end of the
      stream and closes it as usual). The actor looks every S_TICK_MS, so
      the bound holds to within a tick whatever the client sends;
    - the limits on connections (S_MAX_CONNECTIONS, S_MAX_PER_ADDRESS)
      are ours, not libmicrohttpd's, which would leave a new connection
      waiting, or refuse it, while slow ones hold the places. A new
      connection past a limit ends the oldest connection still reading
      its headers (of its address when the address is at its limit), or
      the oldest of all when none is. A client that sends its request at
      once, like a health check, is therefore served even while the
      places are full of slow ones: once its headers are in, it is ended
      only when no connection is still reading its own.

    A pool of threads (MHD_OPTION_THREAD_POOL_SIZE) would not do: slow
    connections cost no thread's time, only places, and they can take the
    places of every thread. Sending an answer stays under libmicrohttpd's
    idle timeout (S_IDLE_SECONDS). */

#include <arpa/inet.h>
#include <assert.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <czmq.h>
#include <microhttpd.h>

#include "http.h"
#include "log.h"
#include "metrics.h"

extern const char brk_dashboard_html[];
extern const size_t brk_dashboard_html_len;

#define S_MAX_CONNECTIONS 64
#define S_MAX_PER_ADDRESS 16
#define S_HEADER_SECONDS 5 /* SECURITY.md, "The HTTP listener" */
#define S_IDLE_SECONDS 10
#define S_TICK_MS 250
#define S_MEMORY_PER_CONNECTION 32768
/* /healthz says 503 when the loop has not refreshed its figures (once a
   second) for this long: it is stuck */
#define S_LOOP_STALE_MS 10000

/* One connection as the limits see it; the slot is its socket context. */
typedef struct {
    bool used;
    bool reading;  /* its next request's headers are not complete */
    bool ended;    /* shut down by us; libmicrohttpd closes it next */
    int64_t since; /* zclock_mono() when it opened or last answered */
    int fd;        /* libmicrohttpd's, shut down but never closed here */
    struct in_addr address;
} s_conn_t;

struct brk_http_t {
    struct MHD_Daemon *daemon;
    zactor_t *actor;        /* runs the daemon */
    brk_metrics_t *metrics; /* the broker's; outlives the listener */
    /* one more slot than the limit: libmicrohttpd accepts the connection
       that makes room by ending another. Used by the actor's thread only. */
    s_conn_t conns[S_MAX_CONNECTIONS + 1];
};

static enum MHD_Result
s_respond(struct MHD_Connection *c, unsigned int status, const char *type, char *body,
          size_t len, bool owned)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        len, body, owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        if (owned)
            free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result
s_text(struct MHD_Connection *c, unsigned int status, const char *text)
{
    char *copy = strdup(text);
    return copy ? s_respond(c, status, "text/plain; charset=utf-8", copy, strlen(copy),
                            true)
                : MHD_NO;
}

static enum MHD_Result
s_handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
          const char *version, const char *upload_data, size_t *upload_data_size,
          void **con_cls)
{
    (void)version;
    (void)upload_data;
    (void)con_cls;
    brk_http_t *self = cls;
    /* called once the headers are complete: the bound on them is met */
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    s_conn_t *conn = info ? info->socket_context : NULL;
    if (conn)
        conn->reading = false;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        *upload_data_size = 0;
        struct MHD_Response *r = MHD_create_response_from_buffer(
            19, (void *)"only GET is served\n", MHD_RESPMEM_PERSISTENT);
        if (!r)
            return MHD_NO;
        MHD_add_response_header(r, "Allow", "GET, HEAD");
        MHD_add_response_header(r, "Content-Type", "text/plain; charset=utf-8");
        enum MHD_Result rc = MHD_queue_response(c, MHD_HTTP_METHOD_NOT_ALLOWED, r);
        MHD_destroy_response(r);
        return rc;
    }
    if (strcmp(url, "/") == 0)
        return s_respond(c, MHD_HTTP_OK, "text/html; charset=utf-8",
                         (char *)brk_dashboard_html, brk_dashboard_html_len, false);
    bool metrics = strcmp(url, "/metrics") == 0;
    bool status = strcmp(url, "/api/status") == 0;
    bool health = strcmp(url, "/healthz") == 0;
    if (!metrics && !status && !health)
        return s_text(c, MHD_HTTP_NOT_FOUND,
                      "not found: /, /metrics, /healthz, /api/status\n");

    if (health) {
        char why[200], msg[300];
        if (brk_metrics_health(self->metrics, S_LOOP_STALE_MS, why, sizeof(why)))
            return s_text(c, MHD_HTTP_OK, "ok\n");
        snprintf(msg, sizeof(msg), "unavailable: %s\n", why);
        return s_text(c, MHD_HTTP_SERVICE_UNAVAILABLE, msg);
    }
    char *body = metrics ? brk_metrics_render(self->metrics)
                         : brk_metrics_status_json(self->metrics);
    if (!body)
        return s_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
    return s_respond(c, MHD_HTTP_OK,
                     metrics ? "text/plain; version=0.0.4; charset=utf-8"
                             : "application/json",
                     body, strlen(body), true);
}

static void
s_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof(line), fmt, ap);
    line[strcspn(line, "\n")] = '\0';
    brk_log(BRK_LOG_WARNING, "http", "%s", line);
}

/* ---- the bounds on slow clients (see the top of the file) ----------------- */

/* Shuts `conn` down; libmicrohttpd reads the end of the stream and closes
   it in the same thread, then notifies MHD_CONNECTION_NOTIFY_CLOSED. */
static void
s_end(s_conn_t *conn, const char *why)
{
    char address[INET_ADDRSTRLEN] = "?";
    inet_ntop(AF_INET, &conn->address, address, sizeof(address));
    brk_log(BRK_LOG_INFO, "http", "closed a connection from %s: %s", address, why);
    shutdown(conn->fd, SHUT_RDWR);
    conn->ended = true;
}

/* Ends one connection if `newest` took its address or the listener past
   its limit: the oldest one still reading its headers (of that address
   when the address is over), or else the oldest. O(slots), at each new
   connection. */
static void
s_make_room(brk_http_t *self, const s_conn_t *newest)
{
    size_t live = 0, same = 0;
    for (size_t i = 0; i < S_MAX_CONNECTIONS + 1; i++) {
        const s_conn_t *c = &self->conns[i];
        if (!c->used || c->ended)
            continue;
        live++;
        if (c->address.s_addr == newest->address.s_addr)
            same++;
    }
    bool by_address = same > S_MAX_PER_ADDRESS;
    if (!by_address && live <= S_MAX_CONNECTIONS)
        return;
    s_conn_t *victim = NULL;
    for (size_t i = 0; i < S_MAX_CONNECTIONS + 1; i++) {
        s_conn_t *c = &self->conns[i];
        if (!c->used || c->ended || c == newest
            || (by_address && c->address.s_addr != newest->address.s_addr))
            continue;
        if (!victim || (c->reading && !victim->reading)
            || (c->reading == victim->reading && c->since < victim->since))
            victim = c;
    }
    assert(victim); /* over a limit of at least one, so not alone */
    if (victim)
        s_end(victim, by_address ? "too many connections from its address"
                                 : "too many connections, it was the oldest");
}

static void
s_on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                enum MHD_ConnectionNotificationCode code)
{
    brk_http_t *self = cls;
    if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        s_conn_t *conn = *socket_context;
        if (conn)
            memset(conn, 0, sizeof(*conn));
        *socket_context = NULL;
        return;
    }
    /* a slot is free: libmicrohttpd takes no more connections than there
       are slots, and frees one only after it is notified here */
    s_conn_t *conn = NULL;
    for (size_t i = 0; i < S_MAX_CONNECTIONS + 1 && !conn; i++)
        if (!self->conns[i].used)
            conn = &self->conns[i];
    const union MHD_ConnectionInfo *fd =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    const union MHD_ConnectionInfo *address =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    assert(conn && fd && address);
    if (!conn || !fd || !address || address->client_addr->sa_family != AF_INET)
        return; /* not reached; libmicrohttpd's own limit still holds */
    conn->used = true;
    conn->reading = true;
    conn->ended = false;
    conn->since = zclock_mono();
    conn->fd = fd->connect_fd;
    conn->address = ((const struct sockaddr_in *)address->client_addr)->sin_addr;
    *socket_context = conn;
    s_make_room(self, conn);
}

/* An answer sent (or given up): the connection, if it stays open, reads
   its next request's headers from now. */
static void
s_on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
               enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)con_cls;
    (void)toe;
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    s_conn_t *conn = info ? info->socket_context : NULL;
    if (conn) {
        conn->reading = true;
        conn->since = zclock_mono();
    }
}

/* Ends the connections whose headers are late. O(slots), every tick. */
static void
s_sweep(brk_http_t *self)
{
    int64_t now = zclock_mono();
    for (size_t i = 0; i < S_MAX_CONNECTIONS + 1; i++) {
        s_conn_t *c = &self->conns[i];
        if (c->used && !c->ended && c->reading
            && now - c->since >= S_HEADER_SECONDS * 1000)
            s_end(c, "its request headers took longer than the bound");
    }
}

/* Runs libmicrohttpd until $TERM: its callbacks, the handler included,
   run here. */
static void
s_actor(zsock_t *pipe, void *args)
{
    brk_http_t *self = args;
    zsock_signal(pipe, 0);
    bool failing = false;
    for (;;) {
        if (MHD_run_wait(self->daemon, S_TICK_MS) == MHD_YES)
            failing = false;
        else {
            if (!failing)
                brk_log(BRK_LOG_WARNING, "http", "could not poll the listener");
            failing = true;
            zclock_sleep(S_TICK_MS); /* not a busy loop while it fails */
        }
        s_sweep(self);
        if (zsock_events(pipe) & ZMQ_POLLIN) {
            char *command = zstr_recv(pipe);
            bool term = !command || streq(command, "$TERM");
            zstr_free(&command);
            if (term)
                break;
        }
    }
}

brk_http_t *
brk_http_new(const char *address, brk_metrics_t *metrics, char *err, size_t errlen)
{
    /* HOST:PORT, HOST an IPv4 address */
    const char *colon = strrchr(address, ':');
    char host[64];
    char *end = NULL;
    long port = colon ? strtol(colon + 1, &end, 10) : -1;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    if (!colon || (size_t)(colon - address) >= sizeof(host) || !end || *end || port < 1
        || port > 65535) {
        snprintf(err, errlen, "broker/http: '%s' is not HOST:PORT", address);
        return NULL;
    }
    snprintf(host, sizeof(host), "%.*s", (int)(colon - address), address);
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        snprintf(err, errlen, "broker/http: '%s' is not an IPv4 address", host);
        return NULL;
    }
    sa.sin_port = htons((uint16_t)port);
    brk_http_t *self = calloc(1, sizeof(*self));
    if (!self) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    /* no thread of libmicrohttpd's: the actor runs it (MHD_USE_AUTO picks
       epoll, or select); the limits per address and in all are s_make_room's */
    self->daemon = MHD_start_daemon(
        MHD_USE_AUTO | MHD_USE_ERROR_LOG, (uint16_t)port, NULL, NULL, s_handler, self,
        MHD_OPTION_EXTERNAL_LOGGER, s_mhd_log, NULL, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned int)(S_MAX_CONNECTIONS + 1), MHD_OPTION_NOTIFY_CONNECTION,
        s_on_connection, self, MHD_OPTION_NOTIFY_COMPLETED, s_on_completed, self,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)S_IDLE_SECONDS,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)S_MEMORY_PER_CONNECTION,
        MHD_OPTION_END);
    if (!self->daemon) {
        snprintf(err, errlen, "broker/http: could not listen on %s", address);
        free(self);
        return NULL;
    }
    self->metrics = metrics;
    self->actor = zactor_new(s_actor, self);
    if (!self->actor) {
        snprintf(err, errlen, "broker/http: could not start its thread");
        MHD_stop_daemon(self->daemon);
        free(self);
        return NULL;
    }
    return self;
}

void
brk_http_destroy(brk_http_t **self_p)
{
    brk_http_t *self = *self_p;
    if (!self)
        return;
    zactor_destroy(&self->actor); /* joins the thread that runs the daemon */
    MHD_stop_daemon(self->daemon);
    free(self);
    *self_p = NULL;
}
