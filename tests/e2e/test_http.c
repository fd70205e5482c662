/*  test_http.c: the broker's HTTP listener and `maillage status`, with
    known data: three events waiting for an offline agency, one refused;
    and referrals (PROTOCOL.md §9) about one person: a leg accepted, one
    declined, one received, one overdue (a deadline of two seconds),
    and duplicates told to the publisher, to the recipient, to nobody.

    - /metrics parses as Prometheus text (metric and label names, label
      syntax, HELP and TYPE before each family's samples, histograms
      cumulative with +Inf equal to _count), and its queue-depth gauge
      and counters agree with the database;
    - /api/status, /healthz (200, then 503 once the database refuses the
      broker), 404 and 405;
    - the dashboard, opened in headless Chromium, shows the agencies and
      the queue depth;
    - the referral series of /metrics hold exactly the legs above, the
      dashboard's referrals panel the overdue leg by its referral's id
      and a bar for each service with a decision, and neither says the
      person's subject;
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

/* The agencies, then the referrals' deadlines: two seconds for home
   care, so that a leg falls overdue during the setup. */
static const char *s_agencies = "    ehpad-les-tilleuls\n"
                                "        name = \"EHPAD Les Tilleuls\"\n"
                                "        publish = \"service.*\"\n"
                                "    ars-idf\n"
                                "        name = \"ARS Île-de-France\"\n"
                                "    cd91\n"
                                "        name = \"Essonne\"\n"
                                "    ccas-evry\n"
                                "        name = \"CCAS d'Evry\"\n"
                                "        publish = \"referral.*, consent.*\"\n"
                                "    ccas-massy\n"
                                "        name = \"CCAS de Massy\"\n"
                                "        publish = \"referral.*, consent.*\"\n"
                                "    ssiad-evry\n"
                                "        name = \"SSIAD d'Evry\"\n"
                                "        publish = \"referral.*\"\n"
                                "    ehpad-evry\n"
                                "        name = \"EHPAD d'Evry\"\n"
                                "        publish = \"referral.*\"\n"
                                "referrals\n"
                                "    deadline\n"
                                "        home-care\n"
                                "            routine = 2s\n";
#define S_NAGENCIES 7

/* The person every referral is about: never in a figure. */
#define S_SUBJECT "NIR-1840275056023"

/* The referrals, by what happens to their legs (setup). */
static char s_accepted[37], s_declined[37], s_overdue[37], s_received[37], s_told[37],
    s_untold[37], s_again[37];

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

/* Sends a PUBLISH written as JSON (the envelope after the id, from
   `fmt`); the answer's op name, or "nothing". */
static const char *
s_send(mlg_client_t *c, const char *fmt, ...)
{
    char envelope[2048], json[2200], id[37];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(envelope, sizeof(envelope), fmt, ap);
    va_end(ap);
    brokerproc_new_id(id);
    snprintf(json, sizeof(json), "{\"id\": \"%s\", %s}", id, envelope);
    mlg_msg_t *m = NULL;
    mlg_error_t err;
    if (mlg_publish_from_json(json, strlen(json), &m, &err) != MLG_OK) {
        fprintf(stderr, "%s: %s\n", json, err.reason);
        return "unbuilt";
    }
    mlg_client_send(c, m);
    mlg_msg_destroy(&m);
    mlg_msg_t *a = brokerproc_answer(c, 10000);
    const char *op = a ? mlg_op_name(a->op) : "nothing";
    if (a && a->op == MLG_OP_REJECT)
        fprintf(stderr, "%s: REJECT %s %s\n", json, a->code, a->reason);
    mlg_msg_destroy(&a);
    return op;
}

static int
s_grant(mlg_client_t *c, const char *parties)
{
    char consent[37];
    brokerproc_new_id(consent);
    return strcmp(s_send(c,
                         "\"type\": \"consent.granted\", \"version\": 1, \"subject\": "
                         "\"%s\", \"body\": {\"consent_id\": \"%s\", \"parties\": [%s], "
                         "\"purposes\": [\"orientation\"], \"categories\": [\"social\"], "
                         "\"valid_from\": \"2020-01-01T00:00:00Z\", \"collected_by\": "
                         "{\"name\": \"E. Martin\", \"role\": \"AS\"}, \"method\": "
                         "\"written\"}",
                         S_SUBJECT, consent, parties),
                  "CONFIRM");
}

/* A new referral `rid` from c to one recipient, for `service`. */
static int
s_create(mlg_client_t *c, char rid[37], const char *to, const char *service)
{
    brokerproc_new_id(rid);
    return strcmp(
        s_send(c,
               "\"type\": \"referral.created\", \"version\": 1, \"to\": [\"%s\"], "
               "\"subject\": \"%s\", \"purpose\": \"orientation\", \"correlation\": "
               "\"%s\", \"body\": {\"referral_id\": \"%s\", \"service\": \"%s\", "
               "\"reason\": \"Perte d'autonomie.\", \"priority\": \"routine\", "
               "\"requested_by\": {\"name\": \"E. Martin\", \"role\": \"AS\"}}",
               to, S_SUBJECT, rid, rid, service),
        "CONFIRM");
}

/* The recipient's move of `rid` (referral.<what>) told to `referrer`. */
static int
s_move(mlg_client_t *c, const char *what, const char *rid, const char *referrer)
{
    return strcmp(
        s_send(c,
               "\"type\": \"referral.%s\", \"version\": 1, \"to\": [\"%s\"], "
               "\"subject\": \"%s\", \"purpose\": \"orientation\", "
               "\"correlation\": \"%s\", \"body\": {\"referral_id\": \"%s\"%s}",
               what, referrer, S_SUBJECT, rid, rid,
               strcmp(what, "declined") == 0 ? ", \"reason_code\": \"no-capacity\"" : ""),
        "CONFIRM");
}

/* The referrals: the home-care one first (due two seconds later), then
   one accepted (nursing-home) and one declined (accommodation), one
   received (social-support), and three more for social support about
   the same person, each matching the open legs before it: from the same
   referrer to the same recipient (one match, told to both); from
   another CCAS that shares no consent with the first, to another
   recipient (two matches, told to nobody); from the first CCAS to that
   recipient (three matches: two told to the publisher, one to the
   recipient). */
static int
s_referrals(void)
{
    mlg_client_t *evry = brokerproc_client(&s_bp, "ccas-evry", 0),
                 *massy = brokerproc_client(&s_bp, "ccas-massy", 0),
                 *ssiad = brokerproc_client(&s_bp, "ssiad-evry", 0),
                 *ehpad = brokerproc_client(&s_bp, "ehpad-evry", 0);
    int failed = !evry || !massy || !ssiad || !ehpad;
    failed = failed || s_grant(evry, "\"ccas-evry\", \"ssiad-evry\", \"ehpad-evry\"")
             || s_grant(massy, "\"ccas-massy\", \"ehpad-evry\"")
             || s_create(evry, s_overdue, "ssiad-evry", "home-care")
             || s_create(evry, s_accepted, "ehpad-evry", "nursing-home")
             || s_move(ehpad, "accepted", s_accepted, "ccas-evry")
             || s_create(evry, s_declined, "ehpad-evry", "accommodation")
             || s_move(ehpad, "declined", s_declined, "ccas-evry")
             || s_create(evry, s_received, "ssiad-evry", "social-support")
             || s_move(ssiad, "received", s_received, "ccas-evry")
             || s_create(evry, s_told, "ssiad-evry", "social-support")
             || s_create(massy, s_untold, "ehpad-evry", "social-support")
             || s_create(evry, s_again, "ehpad-evry", "social-support");
    mlg_client_destroy(&evry);
    mlg_client_destroy(&massy);
    mlg_client_destroy(&ssiad);
    mlg_client_destroy(&ehpad);
    return failed ? -1 : 0;
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
    if (s_referrals() != 0)
        return -1;
    /* the home-care leg overdue (its notice stored), and the loop's
       figures refreshed since (every second) */
    PGconn *db = brokerproc_db(&s_bp);
    long told = 0;
    for (int i = 0; i < 100 && told != 1; i++) {
        zclock_sleep(100);
        told = brokerproc_scalar(db, "select count(*) from messages where type = "
                                     "'referral.overdue'");
    }
    PQfinish(db);
    zclock_sleep(1200);
    return told == 1 ? 0 : -1;
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

/* A sample's labels without its le="..." (a histogram's series). */
static void
s_without_le(const char *labels, char *out, size_t len)
{
    snprintf(out, len, "%s", labels);
    char *le = strstr(out, "le=\"");
    if (!le || (le != out && le[-1] != ','))
        return;
    char *end = strchr(le + 4, '"');
    if (!end)
        return;
    end++;
    if (*end == ',')
        end++;
    else if (le != out)
        le--; /* the comma before it */
    memmove(le, end, strlen(end) + 1);
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
    char current[256] = "", series[1024] = "";
    double found = -1, last_bucket = -1;
    bool last_inf = false;
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
            /* each series (its labels but le) on its own: buckets
               cumulative, the last one +Inf and equal to its _count */
            size_t fl = strlen(family);
            char key[1024];
            s_without_le(labels, key, sizeof(key));
            if (strcmp(name + fl, "_bucket") == 0) {
                assert_non_null(strstr(labels, "le=\""));
                if (strcmp(key, series) != 0) {
                    snprintf(series, sizeof(series), "%s", key);
                    last_bucket = -1;
                }
                assert_true(value >= last_bucket); /* cumulative */
                last_bucket = value;
                last_inf = strstr(labels, "le=\"+Inf\"") != NULL;
            }
            else if (strcmp(name + fl, "_count") == 0) {
                assert_string_equal(key, series);
                assert_true(last_inf);
                assert_true(value == last_bucket); /* +Inf bucket == count */
            }
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
        == (double)brokerproc_scalar(
            db, "select count(*) from messages where type = 'service.capacity.changed'"));
    assert_true(
        s_check_exposition(text, "maillage_messages_rejected_total{code=\"INVALID\"}")
        == 1);
    assert_true(s_check_exposition(
                    text, "maillage_consent_decisions_total{decision=\"allow\",basis=\""
                          "not_personal\"}")
                == (double)brokerproc_scalar(
                    db, "select count(*) from consent_decisions where "
                        "decision = 'allow' and basis = 'not_personal'"));
    /* every stored publish of an agency confirmed, none of the broker's
       notices (no one to confirm them to): capacities, consents,
       referrals, moves */
    long confirmed =
        brokerproc_scalar(db, "select count(*) from messages where sender <> 'maillage'");
    assert_int_equal(confirmed, 3 + 2 + 7 + 3);
    assert_true(s_check_exposition(text, "maillage_publish_confirm_seconds_count")
                == (double)confirmed);
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
    assert_int_equal(json_array_size(agencies), S_NAGENCIES);
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

/* The dashboard as headless Chromium leaves it once its script has run;
   malloc'd. */
static char *
s_dashboard_dom(void)
{
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
    return dom;
}

static void
test_dashboard_in_chromium(void **state)
{
    (void)state;
    char *dom = s_dashboard_dom();
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

/* ---- referrals ------------------------------------------------------------ */

/* A number the database computes from the test's query. */
static double
s_db_real(PGconn *db, const char *sql)
{
    PGresult *res = PQexec(db, sql);
    double v = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1
                   ? strtod(PQgetvalue(res, 0, 0), NULL)
                   : -1;
    PQclear(res);
    return v;
}

/* The referral series of /metrics: exactly the legs the setup made, as
   the database has them, and never the person's subject. */
static void
test_referral_metrics(void **state)
{
    (void)state;
    char *text = s_get("/metrics", 200);
    assert_null(strstr(text, S_SUBJECT));
    const struct {
        const char *sample;
        double value;
    } want[] = {
        {"maillage_referral_legs_open{service=\"nursing-home\",state=\"accepted\"}", 1},
        {"maillage_referral_legs_open{service=\"nursing-home\",state=\"sent\"}", 0},
        {"maillage_referral_legs_open{service=\"accommodation\",state=\"sent\"}", 0},
        {"maillage_referral_legs_open{service=\"accommodation\",state=\"accepted\"}", 0},
        {"maillage_referral_legs_open{service=\"home-care\",state=\"sent\"}", 1},
        {"maillage_referral_legs_open{service=\"social-support\",state=\"sent\"}", 3},
        {"maillage_referral_legs_open{service=\"social-support\",state=\"received\"}", 1},
        {"maillage_referral_legs_open{service=\"social-support\",state=\"started\"}", 0},
        {"maillage_referral_legs_overdue{recipient=\"ssiad-evry\"}", 1},
        {"maillage_referral_legs_overdue{recipient=\"ehpad-evry\"}", 0},
        {"maillage_referral_legs_overdue{recipient=\"cd91\"}", 0},
        {"maillage_referral_first_decision_seconds_count{service=\"nursing-home\","
         "priority=\"routine\"}",
         1},
        {"maillage_referral_first_decision_seconds_bucket{service=\"nursing-home\","
         "priority=\"routine\",le=\"60\"}",
         1},
        {"maillage_referral_first_decision_seconds_bucket{service=\"nursing-home\","
         "priority=\"routine\",le=\"+Inf\"}",
         1},
        {"maillage_referral_first_decision_seconds_count{service=\"accommodation\","
         "priority=\"routine\"}",
         1},
        {"maillage_referral_first_decision_seconds_count{service=\"home-care\","
         "priority=\"routine\"}",
         0},
        {"maillage_referral_first_decision_seconds_count{service=\"social-support\","
         "priority=\"routine\"}",
         0},
        {"maillage_referral_duplicates_total{told=\"publisher\"}", 3},
        {"maillage_referral_duplicates_total{told=\"recipient\"}", 2},
        {"maillage_referral_duplicates_total{told=\"no\"}", 2},
        {"maillage_messages_received_total{type=\"referral.overdue\"}", 1},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        double got = s_check_exposition(text, want[i].sample);
        if (got != want[i].value)
            fail_msg("%s: %g, not %g", want[i].sample, got, want[i].value);
    }
    /* closed states are not open legs */
    assert_true(s_check_exposition(text, "maillage_referral_legs_open{service=\""
                                         "accommodation\",state=\"declined\"}")
                == -1);
    /* the same as the database: each open state of each service, and the
       time to the first decision */
    PGconn *db = brokerproc_db(&s_bp);
    PGresult *res = PQexec(db, "select service, state, count(*) from referral_legs where "
                               "state in ('sent', 'received', 'waitlisted', 'accepted', "
                               "'started') group by 1, 2");
    assert_int_equal(PQntuples(res), 4);
    for (int i = 0; i < PQntuples(res); i++) {
        char sample[200];
        snprintf(sample, sizeof(sample),
                 "maillage_referral_legs_open{service=\"%s\",state=\"%s\"}",
                 PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
        assert_true(s_check_exposition(text, sample) == atof(PQgetvalue(res, i, 2)));
    }
    PQclear(res);
    char sql[300];
    snprintf(sql, sizeof(sql),
             "select extract(epoch from decided_at - opened_at) from referral_legs where "
             "referral_id = '%s'",
             s_accepted);
    double seconds = s_db_real(db, sql);
    assert_true(seconds > 0 && seconds < 60);
    double sum =
        s_check_exposition(text, "maillage_referral_first_decision_seconds_sum{"
                                 "service=\"nursing-home\",priority=\"routine\"}");
    if (sum < seconds - 1e-6 || sum > seconds + 1e-6)
        fail_msg("the time to the first decision is %.6f s, the database says %.6f s",
                 sum, seconds);
    PQfinish(db);
    free(text);
}

/* /api/status's referrals: the open legs by state, the overdue leg by
   its referral's id and agencies, a decision entry per service that has
   decisions; no subject. */
static void
test_referral_status(void **state)
{
    (void)state;
    char *body = s_get("/api/status", 200);
    assert_null(strstr(body, S_SUBJECT));
    json_t *doc = json_loads(body, 0, NULL);
    free(body);
    json_t *r = json_object_get(doc, "referrals");
    assert_non_null(r);
    json_t *open = json_object_get(r, "open");
    assert_int_equal(json_object_size(open), 5);
    assert_int_equal(json_integer_value(json_object_get(open, "sent")), 4);
    assert_int_equal(json_integer_value(json_object_get(open, "received")), 1);
    assert_int_equal(json_integer_value(json_object_get(open, "accepted")), 1);
    assert_int_equal(json_integer_value(json_object_get(open, "waitlisted")), 0);
    assert_int_equal(json_integer_value(json_object_get(r, "overdue_total")), 1);
    json_t *overdue = json_object_get(r, "overdue");
    assert_int_equal(json_array_size(overdue), 1);
    json_t *o = json_array_get(overdue, 0);
    assert_string_equal(json_string_value(json_object_get(o, "referral_id")), s_overdue);
    assert_string_equal(json_string_value(json_object_get(o, "referrer")), "ccas-evry");
    assert_string_equal(json_string_value(json_object_get(o, "recipient")), "ssiad-evry");
    assert_string_equal(json_string_value(json_object_get(o, "service")), "home-care");
    assert_string_equal(json_string_value(json_object_get(o, "state")), "sent");
    assert_true(json_integer_value(json_object_get(o, "late_seconds")) >= 0);
    json_t *decisions = json_object_get(r, "decisions");
    assert_int_equal(json_array_size(decisions), 2);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(decisions, 0), "service")),
        "accommodation");
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(decisions, 1), "service")),
        "nursing-home");
    assert_int_equal(
        json_integer_value(json_object_get(json_array_get(decisions, 1), "count")), 1);
    json_decref(doc);
}

/* The text from `from` to the next `to` after it, both included, in a
   static buffer; fails when either is missing. */
static const char *
s_between(const char *text, const char *from, const char *to)
{
    static char part[1 << 16];
    const char *start = strstr(text, from);
    if (!start)
        fail_msg("'%s' is not in the page", from);
    const char *end = strstr(start, to);
    if (!end)
        fail_msg("no '%s' after '%s'", to, from);
    snprintf(part, sizeof(part), "%.*s", (int)(end + strlen(to) - start), start);
    return part;
}

static int
s_count(const char *text, const char *what)
{
    int n = 0;
    for (const char *p = strstr(text, what); p; p = strstr(p + 1, what))
        n++;
    return n;
}

/* The referrals panel in Chromium: the open legs by state, the overdue
   leg by its referral's id and agencies, one bar for each service with
   a decision (nursing home, accommodation), labelled; no subject. */
static void
test_referral_dashboard_in_chromium(void **state)
{
    (void)state;
    char *dom = s_dashboard_dom();
    assert_null(strstr(dom, S_SUBJECT));
    const char *card = s_between(dom, "data-state=\"sent\">", "</div></div>");
    assert_non_null(strstr(card, "class=\"v\">4<"));
    card = s_between(dom, "data-state=\"accepted\">", "</div></div>");
    assert_non_null(strstr(card, "class=\"v\">1<"));
    card = s_between(dom, "data-state=\"started\">", "</div></div>");
    assert_non_null(strstr(card, "class=\"v\">0<"));

    const char *rows = s_between(dom, "<tbody id=\"overdue\">", "</tbody>");
    assert_int_equal(s_count(rows, "<tr"), 1);
    char cell[80];
    snprintf(cell, sizeof(cell), "<td>%s</td>", s_overdue);
    assert_non_null(strstr(rows, cell));
    const char *want[] = {"<td>home-care</td>", "<td>ccas-evry</td>",
                          "<td>ssiad-evry</td>", "<td>sent</td>", "class=\"late\""};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        if (!strstr(rows, want[i]))
            fail_msg("the overdue row has no %s: %s", want[i], rows);

    char chart[1 << 14];
    snprintf(chart, sizeof(chart), "%s",
             s_between(dom, "id=\"decision-chart\"", "</svg>"));
    assert_non_null(strstr(chart, "<svg"));
    assert_int_equal(s_count(chart, "<rect"), 2);
    assert_int_equal(s_count(chart, "data-service="), 2);
    const char *bars[] = {"nursing-home", "accommodation"};
    for (int i = 0; i < 2; i++) {
        char g[200], label[100];
        snprintf(g, sizeof(g), "<g data-service=\"%s\">", bars[i]);
        snprintf(label, sizeof(label), ">%s</text>", bars[i]);
        const char *bar = s_between(chart, g, "</g>");
        assert_int_equal(s_count(bar, "<rect"), 1);
        assert_non_null(strstr(bar, label));
        assert_non_null(strstr(bar, "1 decision<"));
    }
    free(dom);
}

/* Waits ms in the client's receive, so that it PINGs as a live client
   does (heartbeat_ms is 500 here: a client silent for 1.5 s, as one
   sleeping would be, has lost its session and its deliveries in flight);
   what it receives stays unacked, in flight. */
static void
s_keep_alive(mlg_client_t *c, int ms)
{
    int64_t until = zclock_mono() + ms;
    while (zclock_mono() < until) {
        mlg_msg_t *m = mlg_client_recv(c, 50);
        mlg_msg_destroy(&m);
    }
}

static void
test_cli_status(void **state)
{
    (void)state;
    char *out = NULL;
    /* a client of cd91 connected: one client, its deliveries in flight */
    mlg_client_t *c = brokerproc_client(&s_bp, "cd91", 2);
    assert_non_null(c);
    s_keep_alive(c, 1300); /* the figures are published once a second */
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
    s_keep_alive(c, 100);
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
        cmocka_unit_test(test_referral_metrics),
        cmocka_unit_test(test_referral_status),
        cmocka_unit_test(test_referral_dashboard_in_chromium),
        cmocka_unit_test(test_cli_status),
        cmocka_unit_test_teardown(test_slow_headers, s_close_slow),
        cmocka_unit_test(test_healthz_when_database_refuses),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
