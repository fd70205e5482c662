/*  test_http.c: the broker's HTTP listener and `maillage status`, with
    known data: three events waiting for an offline agency, one refused.

    - /metrics parses as Prometheus text (metric and label names, label
      syntax, HELP and TYPE before each family's samples, histograms
      cumulative with +Inf equal to _count), and its queue-depth gauge
      and counters agree with the database;
    - /api/status, /healthz (200, then 503 once the database refuses the
      broker), 404 and 405;
    - the dashboard, opened in headless Chromium, shows the agencies and
      the queue depth;
    - `maillage status`, as a table and as JSON, with the broker up and
      down;
    - slow connections that send their headers a byte a second, more of
      them than the listener takes: /healthz still answers, and each of
      them is closed once the bound on reading headers has passed. */

#include <ctype.h>
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <czmq.h>
#include <jansson.h>

#include "e2e.h"
#include "maillage/client.h"
#include "maillage/json.h"
#include "toolutil.h"

static brokerproc_t s_bp;
static char s_http[64];

static const char *s_agencies = "    ehpad-les-tilleuls\n"
                                "        name = \"EHPAD Les Tilleuls\"\n"
                                "        publish = \"service.*\"\n"
                                "    ars-idf\n"
                                "        name = \"ARS Île-de-France\"\n"
                                "    cd91\n"
                                "        name = \"Essonne\"\n";

static char *
s_get(const char *path, int want_status)
{
    int status = 0;
    char *body = NULL;
    assert_int_equal(tool_http_get(s_http, path, 5000, &status, &body), 0);
    assert_int_equal(status, want_status);
    return body;
}

/* A service.capacity.changed to cd91, answered `want`. */
static void
s_publish(mlg_client_t *c, int places, const char *want)
{
    char id[37];
    mlg_msg_t *m = e2e_capacity(id, "cd91", places);
    mlg_msg_t *a = e2e_publish(c, m, 10000);
    mlg_msg_destroy(&m);
    assert_string_equal(mlg_op_name(a->op), want);
    mlg_msg_destroy(&a);
}

static int
setup(void **state)
{
    (void)state;
    char extra[128];
    snprintf(s_http, sizeof(s_http), "127.0.0.1:%d", brokerproc_free_port());
    snprintf(extra, sizeof(extra), "    http = %s\n    heartbeat_ms = 500\n", s_http);
    if (e2e_broker_up(&s_bp, "e2e_http", extra, s_agencies))
        return -1;
    /* the known data: three for cd91 (offline), one refused */
    mlg_client_t *c = brokerproc_client(&s_bp, "ehpad-les-tilleuls", 0);
    if (!c)
        return -1;
    s_publish(c, 1, "CONFIRM");
    s_publish(c, 2, "CONFIRM");
    s_publish(c, 3, "CONFIRM");
    s_publish(c, -1, "REJECT");
    mlg_client_destroy(&c);
    zclock_sleep(1200); /* the loop's figures are refreshed every second */
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    brokerproc_cleanup(&s_bp);
    return 0;
}

/* ---- a checker of the Prometheus text exposition format ------------------ */

static bool
s_name_ok(const char *s, size_t len)
{
    if (!len || !(isalpha((unsigned char)s[0]) || s[0] == '_' || s[0] == ':'))
        return false;
    for (size_t i = 1; i < len; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == ':'))
            return false;
    return true;
}

/* Checks one sample line; its metric name in `name`, the value in *value
   and the labels (without braces) in `labels`. */
static bool
s_sample(const char *line, char *name, size_t namelen, char *labels, size_t labelslen,
         double *value)
{
    size_t n = strcspn(line, "{ ");
    if (!s_name_ok(line, n) || n >= namelen)
        return false;
    snprintf(name, namelen, "%.*s", (int)n, line);
    const char *p = line + n;
    labels[0] = '\0';
    if (*p == '{') {
        const char *start = ++p;
        for (;;) {
            size_t ln = strcspn(p, "=");
            if (!s_name_ok(p, ln) || ln > 100 || p[ln] != '=' || p[ln + 1] != '"')
                return false;
            p += ln + 2;
            while (*p && *p != '"') {
                if (*p == '\\') {
                    if (p[1] != '\\' && p[1] != '"' && p[1] != 'n')
                        return false;
                    p++;
                }
                p++;
            }
            if (*p != '"')
                return false;
            p++;
            if (*p == ',') {
                p++;
                continue;
            }
            if (*p != '}')
                return false;
            snprintf(labels, labelslen, "%.*s", (int)(p - start), start);
            p++;
            break;
        }
    }
    if (*p != ' ')
        return false;
    p++;
    char *end = NULL;
    if (strcmp(p, "+Inf") == 0 || strcmp(p, "-Inf") == 0 || strcmp(p, "NaN") == 0)
        *value = 0;
    else {
        *value = strtod(p, &end);
        if (end == p || *end)
            return false;
    }
    return true;
}

/* The family a sample belongs to: a histogram's _bucket, _sum and
   _count belong to it. */
static void
s_family_of(const char *name, zhashx_t *types, char *family, size_t len)
{
    snprintf(family, len, "%s", name);
    const char *suffixes[] = {"_bucket", "_sum", "_count"};
    for (int i = 0; i < 3; i++) {
        size_t nl = strlen(name), sl = strlen(suffixes[i]);
        if (nl > sl && strcmp(name + nl - sl, suffixes[i]) == 0) {
            char base[256];
            snprintf(base, sizeof(base), "%.*s", (int)(nl - sl), name);
            const char *t = zhashx_lookup(types, base);
            if (t && strcmp(t, "histogram") == 0)
                snprintf(family, len, "%s", base);
        }
    }
}

/* Checks the whole text; returns the value of the sample `want` (name
   and labels as written), or -1. */
static double
s_check_exposition(const char *text, const char *want)
{
    zhashx_t *types = zhashx_new(); /* family -> type */
    zhashx_set_destructor(types, (zhashx_destructor_fn *)zstr_free);
    zhashx_set_duplicator(types, (zhashx_duplicator_fn *)strdup);
    zhashx_t *helps = zhashx_new();
    zhashx_t *done = zhashx_new(); /* families whose samples ended */
    char current[256] = "";
    double found = -1, last_bucket = -1;
    int lines = 0;
    char *copy = strdup(text), *save = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        lines++;
        if (strncmp(line, "# HELP ", 7) == 0) {
            size_t n = strcspn(line + 7, " ");
            char name[256];
            snprintf(name, sizeof(name), "%.*s", (int)n, line + 7);
            assert_true(s_name_ok(name, strlen(name)));
            assert_null(zhashx_lookup(helps, name)); /* one HELP per family */
            zhashx_insert(helps, name, (void *)1);
            continue;
        }
        if (strncmp(line, "# TYPE ", 7) == 0) {
            char name[256], type[32];
            assert_int_equal(sscanf(line + 7, "%255s %31s", name, type), 2);
            assert_true(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0
                        || strcmp(type, "histogram") == 0);
            assert_null(zhashx_lookup(types, name));     /* one TYPE per family */
            assert_non_null(zhashx_lookup(helps, name)); /* HELP first, here */
            zhashx_insert(types, name, type);
            continue;
        }
        assert_true(line[0] != '#');
        char name[256], labels[1024], family[256];
        double value = 0;
        if (!s_sample(line, name, sizeof(name), labels, sizeof(labels), &value))
            fail_msg("not a sample line: '%s'", line);
        s_family_of(name, types, family, sizeof(family));
        /* declared before its samples, and its samples together */
        if (!zhashx_lookup(types, family))
            fail_msg("sample before its TYPE line: '%s'", line);
        if (strcmp(current, family) != 0) {
            assert_null(zhashx_lookup(done, family));
            if (current[0])
                zhashx_insert(done, current, (void *)1);
            snprintf(current, sizeof(current), "%s", family);
            last_bucket = -1;
        }
        if (strcmp(zhashx_lookup(types, family), "histogram") == 0) {
            size_t fl = strlen(family);
            if (strcmp(name + fl, "_bucket") == 0) {
                assert_non_null(strstr(labels, "le=\""));
                assert_true(value >= last_bucket); /* cumulative */
                last_bucket = value;
            }
            else if (strcmp(name + fl, "_count") == 0)
                assert_true(value == last_bucket); /* +Inf bucket == count */
        }
        char full[1300];
        snprintf(full, sizeof(full), labels[0] ? "%s{%s}" : "%s%s", name, labels);
        if (want && strcmp(full, want) == 0)
            found = value;
    }
    free(copy);
    assert_true(lines > 20);
    zhashx_destroy(&types);
    zhashx_destroy(&helps);
    zhashx_destroy(&done);
    return found;
}

/* ---- tests --------------------------------------------------------------- */

static void
test_metrics(void **state)
{
    (void)state;
    char *text = s_get("/metrics", 200);
    PGconn *db = brokerproc_db(&s_bp);
    long pending = brokerproc_scalar(
        db,
        "select count(*) from deliveries where recipient = 'cd91' and state = 'pending'");
    assert_int_equal(pending, 3);
    assert_true(s_check_exposition(
                    text, "maillage_queue_depth{agency=\"cd91\",state=\"pending\"}")
                == (double)pending);
    assert_true(
        s_check_exposition(text, "maillage_queue_depth{agency=\"cd91\",state=\"dead\"}")
        == 0);
    assert_true(
        s_check_exposition(
            text, "maillage_messages_received_total{type=\"service.capacity.changed\"}")
        == (double)brokerproc_scalar(db, "select count(*) from messages"));
    assert_true(
        s_check_exposition(text, "maillage_messages_rejected_total{code=\"INVALID\"}")
        == 1);
    assert_true(
        s_check_exposition(text,
                           "maillage_consent_decisions_total{decision=\"allow\",basis=\""
                           "not_personal\"}")
        == (double)brokerproc_scalar(db, "select count(*) from consent_decisions"));
    assert_true(s_check_exposition(text, "maillage_publish_confirm_seconds_count") == 3);
    assert_true(s_check_exposition(text, "maillage_database_up") == 1);
    PQfinish(db);
    free(text);
}

static void
test_status_api_and_errors(void **state)
{
    (void)state;
    char *body = s_get("/api/status", 200);
    json_t *doc = json_loads(body, 0, NULL);
    free(body);
    assert_non_null(doc);
    assert_true(json_is_true(json_object_get(doc, "database_up")));
    json_t *agencies = json_object_get(doc, "agencies");
    assert_int_equal(json_array_size(agencies), 3);
    bool seen = false;
    size_t i;
    json_t *a;
    json_array_foreach(agencies, i, a)
    {
        if (strcmp(json_string_value(json_object_get(a, "id")), "cd91") == 0) {
            seen = true;
            assert_int_equal(json_integer_value(json_object_get(a, "pending")), 3);
            assert_int_equal(json_integer_value(json_object_get(a, "clients")), 0);
        }
    }
    assert_true(seen);
    json_decref(doc);

    body = s_get("/healthz", 200);
    assert_string_equal(body, "ok\n");
    free(body);
    body = s_get("/nothing-here", 404);
    free(body);
    /* another method: 405, with Allow */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)atoi(strchr(s_http, ':') + 1));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    const char *req = "POST /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n";
    assert_int_equal(send(fd, req, strlen(req), 0), (ssize_t)strlen(req));
    char line[1024] = "";
    size_t got = 0;
    ssize_t r;
    while (got < sizeof(line) - 1
           && (r = recv(fd, line + got, sizeof(line) - 1 - got, 0)) > 0)
        got += (size_t)r;
    line[got] = '\0';
    close(fd);
    assert_non_null(strstr(line, "Allow: GET, HEAD"));
    assert_non_null(strstr(line, " 405 "));
}

static void
test_dashboard_in_chromium(void **state)
{
    (void)state;
    char cmd[2048], out[300];
    snprintf(out, sizeof(out), "%s/dom.html", s_bp.dir);
    snprintf(cmd, sizeof(cmd),
             "chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage "
             "--user-data-dir=%s/chromium --virtual-time-budget=8000 --dump-dom "
             "http://%s/ >%s 2>%s/chromium.log",
             s_bp.dir, s_http, out, s_bp.dir);
    int rc = system(cmd);
    assert_int_equal(WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, 0);
    FILE *f = fopen(out, "r");
    assert_non_null(f);
    char *dom = calloc(1, 1 << 20);
    size_t n = fread(dom, 1, (1 << 20) - 1, f);
    fclose(f);
    dom[n] = '\0';
    /* every agency, by id and name, and cd91's queue of three */
    assert_non_null(strstr(dom, "data-agency=\"cd91\""));
    assert_non_null(strstr(dom, "data-agency=\"ars-idf\""));
    assert_non_null(strstr(dom, "data-agency=\"ehpad-les-tilleuls\""));
    assert_non_null(strstr(dom, "EHPAD Les Tilleuls"));
    char *row = strstr(dom, "data-agency=\"cd91\"");
    char *end = strstr(row, "</tr>");
    assert_non_null(end);
    *end = '\0';
    assert_non_null(strstr(row, "data-state=\"pending\">3</td>"));
    assert_non_null(strstr(dom, "id=\"db\">up<") ? strstr(dom, "id=\"db\">up<")
                                                 : strstr(dom, ">up</div>"));
    free(dom);
}

static void
test_cli_status(void **state)
{
    (void)state;
    char *out = NULL;
    /* a client of cd91 connected: one client, its deliveries in flight */
    mlg_client_t *c = brokerproc_client(&s_bp, "cd91", 2);
    assert_non_null(c);
    zclock_sleep(1300);
    assert_int_equal(e2e_cli(&s_bp, &out, "--http %s status", s_http), 0);
    assert_non_null(strstr(out, "broker: up"));
    char *line = strstr(out, "\ncd91 ");
    assert_non_null(line);
    char name[64];
    int clients = -1, pending = -1, inflight = -1, dead = -1;
    assert_int_equal(sscanf(line + 1, "cd91 %63s %d %d %d %d", name, &clients, &pending,
                            &inflight, &dead),
                     5);
    assert_string_equal(name, "Essonne");
    assert_int_equal(clients, 1);
    assert_int_equal(pending, 3);
    assert_int_equal(inflight, 2);
    assert_int_equal(dead, 0);
    free(out);

    char *json = NULL;
    assert_int_equal(e2e_cli(&s_bp, &json, "--http %s --json status", s_http), 0);
    json_t *doc = json_loads(json, 0, NULL);
    free(json);
    assert_non_null(doc);
    json_t *broker = json_object_get(doc, "broker");
    assert_true(json_is_true(json_object_get(broker, "reachable")));
    assert_true(json_is_true(json_object_get(broker, "database_up")));
    size_t i;
    json_t *a;
    bool seen = false;
    json_array_foreach(json_object_get(doc, "agencies"), i, a)
    {
        if (strcmp(json_string_value(json_object_get(a, "agency")), "cd91") == 0) {
            seen = true;
            assert_int_equal(json_integer_value(json_object_get(a, "pending")), 3);
            assert_int_equal(json_integer_value(json_object_get(a, "inflight")), 2);
            assert_int_equal(json_integer_value(json_object_get(a, "clients")), 1);
            assert_int_equal(json_integer_value(json_object_get(a, "dead")), 0);
            assert_true(json_integer_value(json_object_get(a, "oldest_pending_seconds"))
                        >= 1);
        }
    }
    assert_true(seen);
    json_decref(doc);
    mlg_client_destroy(&c);

    /* the broker down: the database still answers, the live part says so */
    char dead_http[64];
    snprintf(dead_http, sizeof(dead_http), "127.0.0.1:%d", brokerproc_free_port());
    assert_int_equal(e2e_cli(&s_bp, &out, "--http %s status", dead_http), 0);
    assert_non_null(strstr(out, "broker: unreachable"));
    line = strstr(out, "\ncd91 ");
    assert_non_null(line);
    assert_int_equal(sscanf(line + 1, "cd91 %63s - %d - %d", name, &pending, &dead), 3);
    assert_int_equal(pending, 3);
    free(out);
}

/* Asks /healthz every 100 ms, at most `tries` times, until it answers
   `want`: the last status, and its body in *body (malloc'd). */
static int
s_healthz_until(int want, int tries, char **body)
{
    int status = 0;
    *body = NULL;
    for (int i = 0; i < tries; i++) {
        free(*body);
        *body = NULL;
        assert_int_equal(tool_http_get(s_http, "/healthz", 5000, &status, body), 0);
        if (status == want)
            break;
        zclock_sleep(100);
    }
    return status;
}

static void
test_healthz_when_database_refuses(void **state)
{
    (void)state;
    /* the database refuses this broker: new connections barred, its
       sessions ended */
    char base[2048];
    snprintf(base, sizeof(base), "%s", s_bp.conninfo);
    char *dbname = strstr(base, "dbname=");
    assert_non_null(dbname);
    snprintf(dbname, sizeof(base) - (size_t)(dbname - base), "dbname=postgres");
    PGconn *admin = PQconnectdb(base);
    assert_int_equal(PQstatus(admin), CONNECTION_OK);
    PQclear(PQexec(admin, "alter database e2e_http allow_connections false"));
    PQclear(PQexec(admin, "select pg_terminate_backend(pid) from pg_stat_activity "
                          "where datname = 'e2e_http'"));
    char *body = NULL;
    assert_int_equal(s_healthz_until(503, 50, &body), 503);
    assert_non_null(strstr(body, "unavailable"));
    free(body);
    /* back: 200 again */
    PQclear(PQexec(admin, "alter database e2e_http allow_connections true"));
    assert_int_equal(s_healthz_until(200, 100, &body), 200);
    free(body);
    PQfinish(admin);
}

/* ---- slow connections ---------------------------------------------------- */

/* SECURITY.md, "The HTTP listener": a request's headers must be complete
   within 5 s of the connection's opening (or of its previous answer);
   64 connections, 16 per address. */
#define S_HEADER_BOUND_MS 5000
#define S_SLOW_FIRST 20  /* from 127.0.0.1, the address /healthz comes from */
#define S_SLOW_OTHERS 14 /* from each of 127.0.0.2 to 127.0.0.5 */
#define S_SLOW (S_SLOW_FIRST + 4 * S_SLOW_OTHERS) /* 76: more than 64 */

typedef struct {
    int fd;
    int64_t opened; /* zclock_mono() */
    int64_t closed; /* 0 while open */
    size_t sent;
} s_slow_t;

/* static, so that a failed test's connections are closed after it and
   do not hold the listener for the next one */
static s_slow_t s_slow[S_SLOW];

static int
s_close_slow(void **state)
{
    (void)state;
    for (int i = 0; i < S_SLOW; i++) {
        if (s_slow[i].fd >= 0)
            close(s_slow[i].fd);
        s_slow[i].fd = -1;
    }
    return 0;
}

/* A connection to the listener from `source` (an address of 127/8); -1
   when it cannot be made. The kernel completes it even when the
   listener does not accept it yet. */
static int
s_connect_from(const char *source)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in from, to;
    memset(&from, 0, sizeof(from));
    from.sin_family = AF_INET;
    memset(&to, 0, sizeof(to));
    to.sin_family = AF_INET;
    to.sin_port = htons((uint16_t)atoi(strchr(s_http, ':') + 1));
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_sec = 3};
    if (inet_pton(AF_INET, source, &from.sin_addr) != 1
        || bind(fd, (struct sockaddr *)&from, sizeof(from)) != 0
        || setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0
        || connect(fd, (struct sockaddr *)&to, sizeof(to)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* True once the listener has ended the connection: end of stream or a
   reset. Whatever it sent before is read and dropped. */
static bool
s_ended(int fd)
{
    char buf[512];
    for (;;) {
        ssize_t r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (r == 0)
            return true;
        if (r < 0)
            return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
    }
}

static void
test_slow_headers(void **state)
{
    (void)state;
    static const char head[] = "GET /api/status HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    s_slow_t *slow = s_slow;
    for (int i = 0; i < S_SLOW; i++)
        slow[i].fd = -1;
    for (int i = 0; i < S_SLOW; i++) {
        char source[32];
        int host = i < S_SLOW_FIRST ? 1 : 2 + (i - S_SLOW_FIRST) / S_SLOW_OTHERS;
        snprintf(source, sizeof(source), "127.0.0.%d", host);
        slow[i].fd = s_connect_from(source);
        assert_true(slow[i].fd >= 0);
        slow[i].opened = zclock_mono();
        slow[i].closed = 0;
        slow[i].sent = 0;
    }
    /* every second, one more byte of headers on each, as long as it is
       open; /healthz asked all along, until the bound is near */
    int64_t start = zclock_mono(), next_byte = start;
    int open = S_SLOW, answered = 0, at_bound = 0;
    while (open > 0) {
        int64_t now = zclock_mono();
        if (now - start > S_HEADER_BOUND_MS + 3000)
            fail_msg("%d slow connections still open %d ms after the bound", open,
                     (int)(now - start - S_HEADER_BOUND_MS));
        if (now >= next_byte) {
            for (int i = 0; i < S_SLOW; i++) {
                if (slow[i].closed)
                    continue;
                char byte = slow[i].sent < strlen(head) ? head[slow[i].sent] : 'a';
                if (send(slow[i].fd, &byte, 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1)
                    slow[i].sent++;
            }
            next_byte += 1000;
        }
        if (now - start < S_HEADER_BOUND_MS - 500) {
            int status = 0;
            char *body = NULL;
            int64_t asked = zclock_mono();
            int rc = tool_http_get(s_http, "/healthz", 2000, &status, &body);
            if (rc != 0 || status != 200)
                fail_msg("/healthz: %d, status %d, after %d ms, with %d slow connections "
                         "open, %d ms in (%d answers before)",
                         rc, status, (int)(zclock_mono() - asked), open,
                         (int)(asked - start), answered);
            assert_true(zclock_mono() - asked < 2000);
            answered++;
            free(body);
        }
        for (int i = 0; i < S_SLOW; i++) {
            if (slow[i].closed || !s_ended(slow[i].fd))
                continue;
            slow[i].closed = zclock_mono();
            open--;
            int64_t lived = slow[i].closed - slow[i].opened;
            if (lived > S_HEADER_BOUND_MS + 2000)
                fail_msg("a slow connection lived %d ms", (int)lived);
            if (lived >= S_HEADER_BOUND_MS - 500)
                at_bound++;
        }
        zclock_sleep(100);
    }
    /* asked again and again while they dribbled; most of them closed by
       the bound (the rest made room for newer connections) */
    assert_true(answered >= 5);
    assert_true(at_bound >= S_SLOW / 4);
    char *body = s_get("/healthz", 200);
    free(body);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_status_api_and_errors),
        cmocka_unit_test(test_dashboard_in_chromium),
        cmocka_unit_test(test_cli_status),
        cmocka_unit_test_teardown(test_slow_headers, s_close_slow),
        cmocka_unit_test(test_healthz_when_database_refuses),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
