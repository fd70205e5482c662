/*  http.c: the broker's HTTP listener (broker/http), with libmicrohttpd
    running its own thread: /metrics, /healthz, /api/status and the
    dashboard at /. It reads the broker's figures from metrics.c and the
    queues from the database over a connection of its own, so a slow
    scrape never holds the event loop. */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <libpq-fe.h>
#include <microhttpd.h>

#include "http.h"
#include "log.h"
#include "metrics.h"

extern const char brk_dashboard_html[];
extern const size_t brk_dashboard_html_len;

struct brk_http_t {
    struct MHD_Daemon *daemon;
    char *conninfo;
    PGconn *conn; /* used by the daemon's one thread only */
};

#define S_MAX_ROWS 4096

/* The queues as the database has them; -1 (and the reason) when it
   cannot be read. */
static int
s_read_queues(brk_http_t *self, brk_queue_row_t *rows, size_t *n, char *why,
              size_t whylen)
{
    *n = 0;
    if (!self->conn || PQstatus(self->conn) != CONNECTION_OK) {
        if (self->conn)
            PQfinish(self->conn);
        self->conn = PQconnectdb(self->conninfo);
        if (PQstatus(self->conn) != CONNECTION_OK) {
            snprintf(why, whylen, "the database cannot be reached: %s",
                     PQerrorMessage(self->conn));
            return -1;
        }
    }
    PGresult *r = PQexec(self->conn,
                         "select d.recipient,"
                         " count(*) filter (where d.state = 'pending'),"
                         " count(*) filter (where d.state = 'dead'),"
                         " coalesce(extract(epoch from clock_timestamp()"
                         "   - min(m.received_at) filter (where d.state = 'pending')), 0)"
                         " from deliveries d join messages m on m.id = d.message_id"
                         " where d.state in ('pending', 'dead')"
                         " group by d.recipient order by d.recipient limit 4096");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(why, whylen, "the queues cannot be read: %s", PQresultErrorMessage(r));
        PQclear(r);
        return -1;
    }
    int count = PQntuples(r);
    for (int i = 0; i < count && *n < S_MAX_ROWS; i++) {
        brk_queue_row_t *q = &rows[(*n)++];
        snprintf(q->agency, sizeof(q->agency), "%s", PQgetvalue(r, i, 0));
        q->pending = strtoull(PQgetvalue(r, i, 1), NULL, 10);
        q->dead = strtoull(PQgetvalue(r, i, 2), NULL, 10);
        q->oldest_pending_seconds = strtod(PQgetvalue(r, i, 3), NULL);
    }
    PQclear(r);
    return 0;
}

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

    brk_queue_row_t *rows = calloc(S_MAX_ROWS, sizeof(*rows));
    if (!rows)
        return s_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
    size_t n = 0;
    char why[512] = "";
    bool read = s_read_queues(self, rows, &n, why, sizeof(why)) == 0;
    enum MHD_Result rc;
    if (health) {
        if (read && brk_metrics_db_up())
            rc = s_text(c, MHD_HTTP_OK, "ok\n");
        else {
            char msg[600];
            snprintf(msg, sizeof(msg), "unavailable: %s\n",
                     read ? "the broker's store has lost its database" : why);
            rc = s_text(c, MHD_HTTP_SERVICE_UNAVAILABLE, msg);
        }
    }
    else {
        char *body = metrics ? brk_metrics_render(read ? rows : NULL, n)
                             : brk_metrics_status_json(rows, n, read);
        rc = body ? s_respond(c, MHD_HTTP_OK,
                              metrics ? "text/plain; version=0.0.4; charset=utf-8"
                                      : "application/json",
                              body, strlen(body), true)
                  : s_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
    }
    free(rows);
    return rc;
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

brk_http_t *
brk_http_new(const char *address, const char *conninfo, char *err, size_t errlen)
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
    if (!self || !(self->conninfo = strdup(conninfo))) {
        free(self);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    self->daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, (uint16_t)port, NULL, NULL,
        s_handler, self, MHD_OPTION_EXTERNAL_LOGGER, s_mhd_log, NULL,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned int)64, MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int)16,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)10,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)32768, MHD_OPTION_END);
    if (!self->daemon) {
        snprintf(err, errlen, "broker/http: could not listen on %s", address);
        free(self->conninfo);
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
    MHD_stop_daemon(self->daemon);
    if (self->conn)
        PQfinish(self->conn);
    free(self->conninfo);
    free(self);
    *self_p = NULL;
}
