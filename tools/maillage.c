/*  maillage.c: `maillage`, the operator CLI. It reads PostgreSQL
    directly, so it works while the broker is down.

        maillage [--config FILE | --database URL] [--http ADDR] [--json] COMMAND ...

        status                    broker up or not; per agency: clients,
                                  pending, in flight, dead, oldest pending
        audit MESSAGE_ID          the whole trail of one message
        subject-report SUBJECT    everything about one person (JSON), their
                                  referrals' legs and moves included
        consents --subject S      the person's consents, in force or not
        dlq list [--agency A]     dead deliveries
        dlq replay ID... | --agency A
                                  dead deliveries back to pending; a
                                  running broker sends them at once
        referrals [--agency A] [--state S] [--overdue] [--service V]
                [--subject P]     the referrals' legs: referrer, recipient,
                                  state, opened, decided, due, overdue;
                                  S a leg's state, or open or closed
        referral REFERRAL_ID      one referral's timeline: each leg's moves,
                                  the messages behind them and their
                                  decisions, the broker's notices, the
                                  duplicate matches
        referrals stats [--since 90d] [--by service|recipient]
                                  per service (or recipient): legs opened,
                                  answered, accepted, declined and why,
                                  overdue, time to a first decision (p50,
                                  p90)
        keygen AGENCY [DIR]       a CURVE certificate pair, and the
                                  configuration line to add
        publish --as AGENCY --type T --version N [--to A ...]
                [--subject S] [--purpose P] [--correlation C]
                (--body-json JSON | --body-file FILE)
                [--endpoint URL] [--cert FILE --server-key KEY]
                                  sends one event through the broker
                                  and prints its answer
        verify                    walks the audit chain: names each row
                                  changed, removed or inserted out of band
        purge --older-than DURATION [--dry-run]
                                  retention: clears the bodies of messages
                                  older than DURATION (365d, 12h) whose
                                  deliveries are all settled; keeps the
                                  audit trail

    The database comes from --database, else from the broker's
    configuration (--config, or MAILLAGE_CONFIG). --json may also follow
    the referral commands. Exit codes: 0 success, 1 not found, 2 usage or
    connection error. */

#include <errno.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <czmq.h>

#include "chain.h"
#include "config.h"
#include "file.h"
#include "maillage/client.h"
#include "maillage/forms.h"
#include "maillage/json.h"
#include "cli.h"
#include "referrals.h"
#include "toolutil.h"

int
cli_usage(FILE *out, int rc)
{
    fprintf(
        out,
        "usage: maillage [--config FILE | --database URL] [--http ADDR] [--json] COMMAND "
        "...\n"
        "  status\n"
        "  audit MESSAGE_ID\n"
        "  subject-report SUBJECT\n"
        "  consents --subject SUBJECT\n"
        "  dlq list [--agency AGENCY]\n"
        "  dlq replay DELIVERY_ID... | --agency AGENCY\n"
        "  referrals [--agency AGENCY] [--state STATE] [--overdue] [--service SERVICE]\n"
        "            [--subject SUBJECT] [--json]\n"
        "            (STATE: sent, received, waitlisted, accepted, started, declined,\n"
        "             completed, cancelled, superseded; or open, closed)\n"
        "  referral REFERRAL_ID [--json]\n"
        "  referrals stats [--since DURATION (90d)] [--by service|recipient] [--json]\n"
        "  purge --older-than DURATION (e.g. 365d, 12h) [--dry-run]\n"
        "  verify\n"
        "  keygen AGENCY [DIR]\n"
        "  publish --as AGENCY --type T --version N [--to A ...] [--subject S]\n"
        "          [--purpose P] [--correlation C] (--body-json JSON | --body-file F)\n"
        "          [--endpoint URL] [--cert FILE --server-key KEY]\n");
    return rc;
}

/* ---- verify: the audit chain ---------------------------------------------- */

typedef struct {
    json_t *problems;
    uint64_t checked;
} s_verdict_t;

static void
s_problem(s_verdict_t *v, const char *kind, uint64_t position, const char *row,
          const char *detail)
{
    json_t *p = json_object();
    json_object_set_new(p, "problem", json_string(kind));
    json_object_set_new(p, "position",
                        position ? json_integer((json_int_t)position) : json_null());
    json_object_set_new(p, "row", json_string(row));
    json_object_set_new(p, "detail", json_string(detail));
    json_array_append_new(v->problems, p);
}

/* One chained row, as the cursor gives it: kind, chain_seq, then the
   fields of chain.h, then body_hash, link, body (messages). Its text is
   the database's, of any length: malloc'd, NULL when out of memory. */
static char *
s_describe(PGresult *r, int i)
{
    if (PQgetvalue(r, i, 0)[0] == 'm')
        return zsys_sprintf("message %s (%s from %s)", PQgetvalue(r, i, 2),
                            PQgetvalue(r, i, 3), PQgetvalue(r, i, 5));
    return zsys_sprintf("decision of message %s for %s (%s)", PQgetvalue(r, i, 2),
                        PQgetvalue(r, i, 3), PQgetvalue(r, i, 4));
}

static const char *SQL_CHAIN =
    "declare chain no scroll cursor for"
    " select 'm', chain_seq, id::text, type, version::text, sender, subject, purpose,"
    "  correlation, ((extract(epoch from occurred_at) * 1000000)::bigint)::text,"
    "  ((extract(epoch from received_at) * 1000000)::bigint)::text, body_hash, link, body"
    " from messages where chain_seq is not null"
    " union all"
    " select 'd', chain_seq, message_id::text, recipient, decision, basis, "
    "consent_id::text,"
    "  reason, detail, ((extract(epoch from decided_at) * 1000000)::bigint)::text, null,"
    "  null, link, null"
    " from consent_decisions where chain_seq is not null"
    " order by 2";

/* Row i of the chain's cursor: its link computed again from its
   columns and the link before must be the one stored. */
static void
s_check_link(s_verdict_t *v, PGresult *r, int i, const uint8_t prev[BRK_LINK_BYTES],
             const uint8_t stored[BRK_LINK_BYTES], const char *desc)
{
    uint64_t seq = strtoull(PQgetvalue(r, i, 1), NULL, 10);
    const char *f[10]; /* the cursor's columns 1 to 10 */
    for (int c = 0; c < 10; c++)
        f[c] = PQgetisnull(r, i, 1 + c) ? NULL : PQgetvalue(r, i, 1 + c);
    uint8_t link[BRK_LINK_BYTES];
    if (PQgetvalue(r, i, 0)[0] == 'm') {
        uint8_t body_hash[BRK_LINK_BYTES];
        if (brk_chain_unhex(PQgetvalue(r, i, 11), body_hash) != 0)
            memset(body_hash, 0, sizeof(body_hash));
        brk_chain_message_t row = {
            .chain_seq = f[0],
            .id = f[1],
            .type = f[2],
            .version = f[3],
            .sender = f[4],
            .subject = f[5],
            .purpose = f[6],
            .correlation = f[7],
            .occurred_at = f[8],
            .received_at = f[9],
            .body_hash = body_hash,
        };
        brk_chain_message(prev, &row, link);
    }
    else {
        brk_chain_decision_t row = {
            .chain_seq = f[0],
            .message_id = f[1],
            .recipient = f[2],
            .decision = f[3],
            .basis = f[4],
            .consent_id = f[5],
            .reason = f[6],
            .detail = f[7],
            .decided_at = f[8],
        };
        brk_chain_decision(prev, &row, link);
    }
    if (memcmp(link, stored, BRK_LINK_BYTES) != 0)
        s_problem(v, "changed", seq, desc,
                  "the row's content does not match its link: a column was "
                  "changed after it was stored");
}

/* A message's body still there must be the one hashed (purge clears
   it). */
static void
s_check_body(s_verdict_t *v, PGresult *r, int i, const char *desc)
{
    uint64_t seq = strtoull(PQgetvalue(r, i, 1), NULL, 10);
    size_t blen = 0;
    unsigned char *body =
        PQunescapeBytea((const unsigned char *)PQgetvalue(r, i, 13), &blen);
    uint8_t h[BRK_LINK_BYTES], stored_h[BRK_LINK_BYTES];
    if (body)
        brk_chain_body_hash(body, blen, h);
    PQfreemem(body);
    if (!body || brk_chain_unhex(PQgetvalue(r, i, 11), stored_h) != 0
        || memcmp(h, stored_h, BRK_LINK_BYTES) != 0)
        s_problem(v, "changed", seq, desc,
                  "the body is not the one stored: it was changed");
}

static int
s_walk(cli_t *cli, s_verdict_t *v, uint64_t *last_seq, uint8_t last_link[BRK_LINK_BYTES])
{
    uint8_t prev[BRK_LINK_BYTES] = {0};
    uint64_t expected = 1;
    /* the row before, as described and its message id: owned here */
    char *prev_desc = strdup("the start of the chain");
    char *prev_message = strdup("");
    int rc = -1;
    PGresult *r = prev_desc && prev_message ? cli_query(cli, SQL_CHAIN, 0, NULL) : NULL;
    if (!r)
        goto done;
    PQclear(r);
    for (;;) {
        r = cli_query(cli, "fetch 1000 from chain", 0, NULL);
        if (!r)
            goto done;
        int n = PQntuples(r);
        for (int i = 0; i < n; i++) {
            v->checked++;
            char *desc = s_describe(r, i), *detail = NULL;
            if (!desc) {
                PQclear(r);
                goto done;
            }
            uint64_t seq = strtoull(PQgetvalue(r, i, 1), NULL, 10);
            bool message = PQgetvalue(r, i, 0)[0] == 'm';
            uint8_t stored[BRK_LINK_BYTES];
            bool have_link = brk_chain_unhex(PQgetvalue(r, i, 12), stored) == 0;
            if (seq < expected) {
                detail = zsys_sprintf("chain position %llu is taken twice: this row was "
                                      "inserted out of band",
                                      (unsigned long long)seq);
                s_problem(v, "inserted", seq, desc, detail ? detail : "");
                zstr_free(&detail);
                zstr_free(&desc);
                continue; /* the chain goes on from the row before */
            }
            if (seq > expected) {
                detail = zsys_sprintf(
                    "chain position%s %llu%s%.0llu missing, after %s and before %s%s%s",
                    seq - expected > 1 ? "s" : "", (unsigned long long)expected,
                    seq - expected > 1 ? " to " : "",
                    seq - expected > 1 ? (unsigned long long)(seq - 1) : 0ull, prev_desc,
                    desc,
                    prev_message[0] ? ": likely a consent decision of message " : "",
                    prev_message);
                s_problem(v, "removed", expected,
                          prev_message[0] ? prev_message : prev_desc,
                          detail ? detail : "");
                zstr_free(&detail);
            }
            else if (have_link)
                s_check_link(v, r, i, prev, stored, desc);
            if (!have_link)
                s_problem(v, "changed", seq, desc,
                          "the row's link is missing or malformed");
            if (message && !PQgetisnull(r, i, 13))
                s_check_body(v, r, i, desc);
            /* go on from what this row claims, so each break is named once */
            if (have_link)
                memcpy(prev, stored, BRK_LINK_BYTES);
            expected = seq + 1;
            free(prev_desc);
            prev_desc = desc; /* takes it */
            free(prev_message);
            prev_message = strdup(PQgetvalue(r, i, 2));
            if (!prev_message) {
                PQclear(r);
                goto done;
            }
        }
        PQclear(r);
        if (n == 0)
            break;
    }
    *last_seq = expected - 1;
    memcpy(last_link, prev, BRK_LINK_BYTES);
    rc = 0;
done:
    free(prev_desc);
    free(prev_message);
    return rc;
}

/* Rows that name a row which is not there. The database no longer
   checks these references as rows go in (migration 0007: the broker is
   their only writer, in the transaction of their message), so verify
   does: a message, consent or delivery removed out of band shows here
   through what named it. */
static const char *SQL_REFERENCES =
    "select 'delivery ' || d.id || ' to ' || d.recipient, 'message ' || d.message_id"
    " from deliveries d where not exists (select from messages m where m.id = "
    "d.message_id)"
    " union all"
    " select 'decision of message ' || c.message_id || ' for ' || c.recipient"
    "  || ' (' || c.decision || ')', 'message ' || c.message_id"
    " from consent_decisions c"
    " where not exists (select from messages m where m.id = c.message_id)"
    " union all"
    " select 'decision of message ' || c.message_id || ' for ' || c.recipient"
    "  || ' (' || c.decision || ')', 'consent ' || c.consent_id"
    " from consent_decisions c where c.consent_id is not null"
    " and not exists (select from consents k where k.id = c.consent_id)"
    " union all"
    " select 'delivery event ' || e.id || ' (' || e.event || ')', 'delivery ' || "
    "e.delivery_id"
    " from delivery_events e"
    " where not exists (select from deliveries d where d.id = e.delivery_id)";

static int
s_check_references(cli_t *cli, s_verdict_t *v)
{
    PGresult *r = cli_query(cli, SQL_REFERENCES, 0, NULL);
    if (!r)
        return -1;
    for (int i = 0; i < PQntuples(r); i++) {
        char *detail = zsys_sprintf("it refers to %s, which is not stored: removed out "
                                    "of band",
                                    PQgetvalue(r, i, 1));
        s_problem(v, "removed", 0, PQgetvalue(r, i, 0), detail ? detail : "");
        zstr_free(&detail);
    }
    PQclear(r);
    return 0;
}

static int
s_verify(cli_t *cli, int argc, char **argv)
{
    (void)argv;
    if (argc != 0)
        return cli_usage(stderr, EXIT_USAGE);
    if (brk_chain_init() != 0)
        return cli_error(EXIT_USAGE, "libsodium could not start");
    s_verdict_t v = {json_array(), 0};
    PGresult *r =
        cli_query(cli, "begin isolation level repeatable read read only", 0, NULL);
    if (!r)
        return EXIT_USAGE;
    PQclear(r);
    uint64_t last_seq = 0;
    uint8_t last_link[BRK_LINK_BYTES];
    if (s_walk(cli, &v, &last_seq, last_link) != 0) {
        json_decref(v.problems);
        return EXIT_USAGE;
    }
    /* the head: rows removed at the end of the chain */
    r = cli_query(cli, "select chain_seq, link from chain_head where id = 1", 0, NULL);
    if (!r) {
        json_decref(v.problems);
        return EXIT_USAGE;
    }
    uint64_t head = PQntuples(r) ? strtoull(PQgetvalue(r, 0, 0), NULL, 10) : 0;
    uint8_t head_link[BRK_LINK_BYTES];
    bool head_ok = PQntuples(r) && brk_chain_unhex(PQgetvalue(r, 0, 1), head_link) == 0;
    PQclear(r);
    char detail[300];
    if (head > last_seq) {
        snprintf(detail, sizeof(detail),
                 "chain positions %llu to %llu missing at the end",
                 (unsigned long long)last_seq + 1, (unsigned long long)head);
        s_problem(&v, "removed", last_seq + 1, "the end of the chain", detail);
    }
    else if (head_ok && head == last_seq && head
             && memcmp(head_link, last_link, BRK_LINK_BYTES) != 0)
        s_problem(&v, "changed", head, "the last row",
                  "the chain's head does not end on the last row's link");
    /* rows stored since the chain began that are not in it */
    r = cli_query(
        cli,
        "select 'message ' || id || ' (' || type || ' from ' || sender || ')'"
        " from messages where chain_seq is null"
        " and received_at >= (select started from chain_head where id = 1)"
        " union all"
        " select 'decision of message ' || message_id || ' for ' || recipient"
        " || ' (' || decision || ')' from consent_decisions where chain_seq is null"
        " and decided_at >= (select started from chain_head where id = 1)",
        0, NULL);
    if (!r) {
        json_decref(v.problems);
        return EXIT_USAGE;
    }
    for (int i = 0; i < PQntuples(r); i++)
        s_problem(&v, "inserted", 0, PQgetvalue(r, i, 0),
                  "not in the chain: inserted out of band");
    PQclear(r);
    if (s_check_references(cli, &v) != 0) {
        json_decref(v.problems);
        return EXIT_USAGE;
    }
    PQclear(PQexec(cli->db, "commit"));

    size_t nproblems = json_array_size(v.problems);
    if (cli->json) {
        json_t *doc = json_object();
        json_object_set_new(doc, "intact", json_boolean(nproblems == 0));
        json_object_set_new(doc, "rows", json_integer((json_int_t)v.checked));
        json_object_set_new(doc, "head", json_integer((json_int_t)head));
        json_object_set(doc, "problems", v.problems);
        cli_print_json(doc);
        json_decref(doc);
    }
    else {
        size_t i;
        json_t *p;
        json_array_foreach(v.problems, i, p)
        {
            printf("%-8s %s: %s\n", json_string_value(json_object_get(p, "problem")),
                   json_string_value(json_object_get(p, "row")),
                   json_string_value(json_object_get(p, "detail")));
        }
        if (nproblems)
            printf("the audit chain is broken: %zu problem(s) in %llu rows\n", nproblems,
                   (unsigned long long)v.checked);
        else
            printf("the audit chain is intact: %llu rows, head at position %llu\n",
                   (unsigned long long)v.checked, (unsigned long long)head);
    }
    json_decref(v.problems);
    return nproblems ? EXIT_NOT_FOUND : 0;
}

/* ---- status ------------------------------------------------------------ */

/* The queues as the database's interface gives them (migration
   0005_queues.sql): a count over every pending delivery, for when the
   broker does not answer. */
static const char *SQL_STATUS =
    "select agency, name, pending, dead,"
    " floor(oldest_pending_seconds)::bigint as oldest_pending_seconds"
    " from queue_depth order by agency";

/* The agencies alone, for when the broker gives their queues. */
static const char *SQL_STATUS_AGENCIES =
    "select id as agency, name from agencies order by id";

/* The broker's live figures from its /api/status: NULL when it does not
   answer (the reason in why). */
static json_t *
s_broker_status(const char *http, char *why, size_t whylen)
{
    if (!http || !*http) {
        snprintf(why, whylen, "no broker/http address (give --config or --http)");
        return NULL;
    }
    int code = 0;
    char *body = NULL;
    if (tool_http_get(http, "/api/status", 2000, &code, &body) != 0) {
        snprintf(why, whylen, "no answer from http://%s/", http);
        return NULL;
    }
    json_t *doc = code == 200 ? json_loads(body, 0, NULL) : NULL;
    if (!doc)
        snprintf(why, whylen, "http://%s/api/status answered %d", http, code);
    free(body);
    return doc;
}

static json_t *
s_live_agency(json_t *live, const char *id)
{
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(live, "agencies"), i, a)
    {
        const char *aid = json_string_value(json_object_get(a, "id"));
        if (aid && strcmp(aid, id) == 0)
            return a;
    }
    return NULL;
}

/* The rows of `maillage status`: the agencies with their queues and, when
   the broker answers, their clients and deliveries in flight. The
   queues come from the broker too when it gives them for every agency:
   it keeps them as it commits, the same as the database's, so a big
   backlog costs no count; otherwise from the database. NULL when the
   database could not be read (said already). */
static json_t *
s_status_rows(cli_t *cli, json_t *live)
{
    PGresult *res = cli_query(cli, SQL_STATUS_AGENCIES, 0, NULL);
    json_t *rows = res ? cli_rows(res) : NULL;
    PQclear(res);
    size_t i;
    json_t *row;
    bool live_queues = live != NULL;
    json_array_foreach(rows, i, row)
    {
        json_t *a =
            s_live_agency(live, json_string_value(json_object_get(row, "agency")));
        live_queues = live_queues && a && json_object_get(a, "pending");
    }
    if (rows && !live_queues) {
        json_decref(rows);
        res = cli_query(cli, SQL_STATUS, 0, NULL);
        rows = res ? cli_rows(res) : NULL;
        PQclear(res);
    }
    json_array_foreach(rows, i, row)
    {
        json_t *a =
            s_live_agency(live, json_string_value(json_object_get(row, "agency")));
        if (live_queues) {
            json_object_set(row, "pending", json_object_get(a, "pending"));
            json_object_set(row, "dead", json_object_get(a, "dead"));
            json_object_set_new(row, "oldest_pending_seconds",
                                json_integer((json_int_t)json_number_value(
                                    json_object_get(a, "oldest_pending_seconds"))));
        }
        json_object_set(row, "clients", a ? json_object_get(a, "clients") : json_null());
        json_object_set(row, "inflight",
                        a ? json_object_get(a, "inflight") : json_null());
    }
    return rows;
}

static void
s_status_json(const cli_t *cli, json_t *live, json_t *rows, const char *why)
{
    json_t *doc = json_object();
    json_t *broker = json_object();
    json_object_set_new(broker, "reachable", json_boolean(live != NULL));
    json_object_set_new(broker, "address",
                        cli->http ? json_string(cli->http) : json_null());
    json_object_set(broker, "database_up",
                    live ? json_object_get(live, "database_up") : json_null());
    if (!live)
        json_object_set_new(broker, "reason", json_string(why));
    json_object_set_new(doc, "broker", broker);
    json_object_set(doc, "agencies", rows);
    cli_print_json(doc);
    json_decref(doc);
}

static void
s_status_table(const cli_t *cli, json_t *live, json_t *rows, const char *why)
{
    if (live)
        printf("broker: up at http://%s/ (database %s)\n", cli->http,
               json_is_true(json_object_get(live, "database_up")) ? "up" : "DOWN");
    else
        printf("broker: unreachable: %s\n", why);
    printf("%-24s %-32s %7s %9s %9s %6s %14s\n", "agency", "name", "clients", "pending",
           "inflight", "dead", "oldest pending");
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        json_t *clients = json_object_get(row, "clients");
        json_t *inflight = json_object_get(row, "inflight");
        char c[24] = "-", f[24] = "-", age[32] = "-";
        if (json_is_integer(clients))
            snprintf(c, sizeof(c), "%lld", (long long)json_integer_value(clients));
        if (json_is_integer(inflight))
            snprintf(f, sizeof(f), "%lld", (long long)json_integer_value(inflight));
        long long oldest =
            json_integer_value(json_object_get(row, "oldest_pending_seconds"));
        if (oldest > 0)
            snprintf(age, sizeof(age), "%llds", oldest);
        /* names hold accents: pad by characters, not bytes */
        const char *name = json_string_value(json_object_get(row, "name"));
        size_t chars = 0;
        if (!name || !mlg_utf8_check(name, strlen(name), &chars))
            name = "", chars = 0;
        printf("%-24s %s%*s %7s %9lld %9s %6lld %14s\n",
               json_string_value(json_object_get(row, "agency")), name,
               chars < 32 ? (int)(32 - chars) : 0, "", c,
               (long long)json_integer_value(json_object_get(row, "pending")), f,
               (long long)json_integer_value(json_object_get(row, "dead")), age);
    }
    if (json_array_size(rows) == 0)
        printf("(no agencies: the broker has not run on this database)\n");
}

static int
s_status(cli_t *cli, int argc, char **argv)
{
    (void)argv;
    if (argc != 0)
        return cli_usage(stderr, EXIT_USAGE);
    char why[300] = "";
    json_t *live = s_broker_status(cli->http, why, sizeof(why));
    json_t *rows = s_status_rows(cli, live);
    if (rows && cli->json)
        s_status_json(cli, live, rows, why);
    else if (rows)
        s_status_table(cli, live, rows, why);
    int rc = rows ? 0 : EXIT_USAGE;
    json_decref(rows);
    json_decref(live);
    return rc;
}

/* ---- audit ------------------------------------------------------------- */

static const char *SQL_MESSAGE =
    "select id, seq, type, version, sender, subject, purpose, correlation, occurred_at,"
    " received_at, length(body) as body_bytes from messages where id = $1::uuid";
static const char *SQL_DECISIONS =
    "select recipient, decision, basis, consent_id, reason, detail, decided_at"
    " from consent_decisions where message_id = $1::uuid order by id";
static const char *SQL_DELIVERIES =
    "select id, recipient, state, attempts, last_error, first_sent_at, settled_at"
    " from deliveries where message_id = $1::uuid order by id";
static const char *SQL_EVENTS =
    "select e.delivery_id, d.recipient, e.attempt, e.event, e.reason, e.actor, e.at"
    " from delivery_events e join deliveries d on d.id = e.delivery_id"
    " where d.message_id = $1::uuid order by e.id";

static int
s_audit(cli_t *cli, int argc, char **argv)
{
    if (argc != 1)
        return cli_usage(stderr, EXIT_USAGE);
    const char *id = argv[0];
    if (!mlg_is_uuid(id, strlen(id)))
        return cli_error(EXIT_USAGE, "'%s' is not a message id (a UUID)", id);
    const char *p[1] = {id};
    PGresult *res[4] = {
        cli_query(cli, SQL_MESSAGE, 1, p), cli_query(cli, SQL_DECISIONS, 1, p),
        cli_query(cli, SQL_DELIVERIES, 1, p), cli_query(cli, SQL_EVENTS, 1, p)};
    int rc = 0;
    if (!res[0] || !res[1] || !res[2] || !res[3])
        rc = EXIT_USAGE;
    else if (PQntuples(res[0]) == 0)
        rc = cli_error(EXIT_NOT_FOUND, "no message with id %s", id);
    else if (cli->json) {
        json_t *doc = json_object();
        json_t *m = cli_rows(res[0]);
        json_object_set(doc, "message", json_array_get(m, 0));
        json_decref(m);
        json_object_set_new(doc, "decisions", cli_rows(res[1]));
        json_object_set_new(doc, "deliveries", cli_rows(res[2]));
        json_object_set_new(doc, "delivery_events", cli_rows(res[3]));
        cli_print_json(doc);
        json_decref(doc);
    }
    else {
        cli_table(res[0], "message");
        cli_table(res[1], "\ndecisions");
        cli_table(res[2], "\ndeliveries");
        cli_table(res[3], "\ndelivery events");
    }
    for (int i = 0; i < 4; i++)
        PQclear(res[i]);
    return rc;
}

/* ---- consents and the subject report ---------------------------------- */

static const char *SQL_CONSENTS =
    "select id, parties, purposes, categories, valid_from, valid_until, revoked_at,"
    " granted_by, granted_message_id, revoked_message_id,"
    " case when revoked_at is not null then 'revoked'"
    "  when valid_until is not null and valid_until <= now() then 'expired'"
    "  when valid_from > now() then 'not yet valid' else 'in force' end as status"
    " from consents where subject = $1 order by valid_from, id";

static int
s_consents(cli_t *cli, int argc, char **argv)
{
    if (argc != 2 || strcmp(argv[0], "--subject") != 0)
        return cli_usage(stderr, EXIT_USAGE);
    const char *p[1] = {argv[1]};
    PGresult *res = cli_query(cli, SQL_CONSENTS, 1, p);
    if (!res)
        return EXIT_USAGE;
    int rc = PQntuples(res) ? 0 : EXIT_NOT_FOUND;
    if (cli->json) {
        json_t *rows = cli_rows(res);
        cli_print_json(rows);
        json_decref(rows);
    }
    else
        cli_table(res, NULL);
    if (rc)
        cli_error(rc, "no consent about subject %s", argv[1]);
    PQclear(res);
    return rc;
}

static int
s_subject_report(cli_t *cli, int argc, char **argv)
{
    if (argc != 1)
        return cli_usage(stderr, EXIT_USAGE);
    const char *p[1] = {argv[0]};
    PGresult *msgs =
        cli_query(cli,
                  "select id, seq, type, version, sender, purpose, correlation,"
                  " occurred_at, received_at, body from messages"
                  " where subject = $1 order by seq",
                  1, p);
    PGresult *decisions = cli_query(
        cli,
        "select c.message_id, c.recipient, c.decision, c.basis, c.consent_id, c.reason,"
        " c.detail, c.decided_at, d.state as delivery_state, d.attempts, d.settled_at"
        " from consent_decisions c join messages m on m.id = c.message_id"
        " left join deliveries d on d.message_id = c.message_id"
        " and d.recipient = c.recipient and c.decision = 'allow'"
        " where m.subject = $1 order by m.seq, c.id",
        1, p);
    PGresult *consents = cli_query(cli, SQL_CONSENTS, 1, p);
    json_t *referrals = cli_referral_legs_of(cli, argv[0]);
    int rc = 0;
    if (!msgs || !decisions || !consents || !referrals)
        rc = EXIT_USAGE;
    else if (PQntuples(msgs) == 0 && PQntuples(consents) == 0)
        rc = cli_error(EXIT_NOT_FOUND, "nothing is stored about subject %s", argv[0]);
    else {
        /* always JSON: the document handed to a data-protection officer */
        json_t *doc = json_object();
        json_object_set_new(doc, "subject", json_string(argv[0]));
        json_object_set_new(doc, "messages", cli_rows(msgs));
        json_object_set_new(doc, "decisions", cli_rows(decisions));
        json_object_set_new(doc, "consents", cli_rows(consents));
        json_object_set(doc, "referrals", referrals);
        cli_print_json(doc);
        json_decref(doc);
    }
    json_decref(referrals);
    PQclear(msgs);
    PQclear(decisions);
    PQclear(consents);
    return rc;
}

/* ---- dead letters ------------------------------------------------------ */

static int
s_dlq_list(cli_t *cli, int argc, char **argv)
{
    const char *agency = NULL;
    if (argc == 2 && strcmp(argv[0], "--agency") == 0)
        agency = argv[1];
    else if (argc != 0)
        return cli_usage(stderr, EXIT_USAGE);
    const char *p[1] = {agency};
    PGresult *res =
        cli_query(cli,
                  "select d.id, d.recipient, d.message_id, m.type, d.attempts,"
                  " d.last_error, d.settled_at from deliveries d"
                  " join messages m on m.id = d.message_id where d.state = 'dead'"
                  " and ($1::text is null or d.recipient = $1) order by d.id",
                  1, p);
    if (!res)
        return EXIT_USAGE;
    if (cli->json) {
        json_t *rows = cli_rows(res);
        cli_print_json(rows);
        json_decref(rows);
    }
    else
        cli_table(res, NULL);
    PQclear(res);
    return 0;
}

static int
s_dlq_replay(cli_t *cli, int argc, char **argv)
{
    if (argc == 0)
        return cli_usage(stderr, EXIT_USAGE);
    /* an explicit target: ids, or one agency; never "everything" */
    const char *agency = NULL;
    char *ids = NULL;
    if (argc == 2 && strcmp(argv[0], "--agency") == 0)
        agency = argv[1];
    else {
        /* each id is written back from its value: at most 20 digits and a
           comma, whatever the argument's length */
        if ((size_t)argc > (SIZE_MAX - 3) / 21)
            return cli_error(EXIT_USAGE, "too many delivery ids");
        ids = malloc((size_t)argc * 21 + 3);
        if (!ids)
            return cli_error(EXIT_USAGE, "out of memory");
        size_t at = 0;
        ids[at++] = '{';
        for (int i = 0; i < argc; i++) {
            char *end = NULL;
            errno = 0;
            unsigned long long id = strtoull(argv[i], &end, 10);
            if (!argv[i][0] || *end || argv[i][0] == '-' || errno == ERANGE) {
                free(ids);
                return cli_error(EXIT_USAGE, "'%.40s%s' is not a delivery id", argv[i],
                                 strlen(argv[i]) > 40 ? "..." : "");
            }
            at += (size_t)sprintf(ids + at, "%s%llu", i ? "," : "", id);
        }
        ids[at++] = '}';
        ids[at] = '\0';
    }
    const char *user = getenv("USER") ? getenv("USER") : "unknown";
    char actor[128];
    snprintf(actor, sizeof(actor), "operator:%s", user);
    const char *p[3] = {agency ? NULL : ids, agency, actor};
    PGresult *res = cli_query(
        cli,
        /* replay_dead (migration 0005_queues.sql) moves them, records
           who did, and tells the broker which queues to read again */
        "with r as (select * from replay_dead($1::bigint[], $2::text, $3::text))"
        " select (select count(distinct recipient) from r) as agencies, id, recipient"
        " from r order by id",
        3, p);
    free(ids);
    if (!res)
        return EXIT_USAGE;
    int n = PQntuples(res);
    if (cli->json) {
        json_t *rows = cli_rows(res);
        cli_print_json(rows);
        json_decref(rows);
    }
    else
        for (int i = 0; i < n; i++)
            printf("replayed delivery %s to %s\n", PQgetvalue(res, i, 1),
                   PQgetvalue(res, i, 2));
    PQclear(res);
    if (n == 0)
        return cli_error(EXIT_NOT_FOUND, "no dead delivery matched");
    return 0;
}

/* ---- retention --------------------------------------------------------- */

static int
s_purge(cli_t *cli, int argc, char **argv)
{
    long long seconds = -1;
    bool dry = false;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--older-than") == 0 && i + 1 < argc)
            seconds = cli_duration(argv[++i]);
        else if (strcmp(argv[i], "--dry-run") == 0)
            dry = true;
        else
            return cli_usage(stderr, EXIT_USAGE);
    }
    /* an explicit period, always: a purge cannot be undone */
    if (seconds < 0)
        return cli_error(EXIT_USAGE, "give --older-than DURATION, such as 365d or 12h");
    char secs[32];
    snprintf(secs, sizeof(secs), "%lld", seconds);
    const char *p[1] = {secs};
    /* settled: no delivery still pending or in flight */
    const char *eligible =
        " from messages m where m.body is not null"
        " and m.received_at < now() - $1::bigint * interval '1 second'"
        " and not exists (select 1 from deliveries d where d.message_id = m.id"
        " and d.state in ('pending', 'inflight'))";
    char sql[1024];
    if (dry)
        snprintf(sql, sizeof(sql),
                 "select count(*) as messages, coalesce(sum(length(m.body)),"
                 " 0) as bytes%s",
                 eligible);
    else
        snprintf(sql, sizeof(sql),
                 "with p as (update messages set body = null where id in (select m.id%s)"
                 " returning 1) select count(*) as messages from p",
                 eligible);
    PGresult *res = cli_query(cli, sql, 1, p);
    if (!res)
        return EXIT_USAGE;
    if (cli->json) {
        json_t *rows = cli_rows(res);
        json_t *doc = json_array_get(rows, 0);
        json_object_set_new(doc, "dry_run", json_boolean(dry));
        cli_print_json(doc);
        json_decref(rows);
    }
    else if (dry)
        printf("would clear the bodies of %s message(s) (%s bytes) older than %s s;"
               " ids, types, parties, decisions and times stay\n",
               PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), secs);
    else
        printf("cleared the bodies of %s message(s) older than %s s; ids, types, parties,"
               " decisions and times stay\n",
               PQgetvalue(res, 0, 0), secs);
    PQclear(res);
    return 0;
}

/* ---- keygen and publish: no database ----------------------------------- */

static int
s_keygen(int argc, char **argv)
{
    if (argc < 1 || argc > 2)
        return cli_usage(stderr, EXIT_USAGE);
    if (!mlg_is_agency_id(argv[0], strlen(argv[0])) && strcmp(argv[0], "broker") != 0)
        return cli_error(EXIT_USAGE, "'%s' is not an agency id", argv[0]);
    /* the paths as given, however long: a cut one would name another file */
    char *path = zsys_sprintf("%s/%s", argc == 2 ? argv[1] : ".", argv[0]);
    char *secret = path ? zsys_sprintf("%s_secret", path) : NULL;
    int rc = 0;
    zcert_t *cert = NULL;
    if (!path || !secret)
        rc = cli_error(EXIT_USAGE, "out of memory");
    else if (zsys_file_exists(path) || zsys_file_exists(secret))
        rc = cli_error(EXIT_USAGE, "%s exists already: not overwritten", path);
    else if (!(cert = zcert_new()) || zcert_save(cert, path) != 0)
        rc = cli_error(EXIT_USAGE, "could not write %s", path);
    else {
        printf("wrote %s (public) and %s (secret: give it to the agency only)\n", path,
               secret);
        printf("add to the agencies section of maillage.cfg:\n    %s\n        "
               "public_key = \"%s\"\n",
               argv[0], zcert_public_txt(cert));
    }
    zcert_destroy(&cert);
    zstr_free(&secret);
    zstr_free(&path);
    return rc;
}

/* Copies an option's value into a field of the map; a value that does
   not fit is refused, never cut (a cut subject is another person). */
static int
s_copy_field(char *field, size_t size, const char *opt, const char *val)
{
    size_t len = strlen(val);
    if (len >= size)
        return cli_error(EXIT_USAGE, "%s: %zu bytes, more than the %zu allowed", opt, len,
                         size - 1);
    memcpy(field, val, len + 1);
    return 0;
}

/* publish's options: the envelope goes into m as it is read. */
typedef struct {
    const char *as, *type, *body, *body_file, *endpoint, *cert, *server_key;
} s_publish_opts_t;

static int
s_publish_opts(int argc, char **argv, mlg_msg_t *m, s_publish_opts_t *o)
{
    int rc = 0;
    for (int i = 0; i < argc && rc == 0; i++) {
        const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!val)
            return cli_usage(stderr, EXIT_USAGE);
        i++;
        if (strcmp(opt, "--as") == 0)
            o->as = val;
        else if (strcmp(opt, "--type") == 0)
            o->type = val;
        else if (strcmp(opt, "--version") == 0)
            m->version = strtoull(val, NULL, 10);
        else if (strcmp(opt, "--to") == 0) {
            if (mlg_msg_add_to(m, val) != MLG_OK)
                rc = cli_error(EXIT_USAGE, "'%s' is not an agency id", val);
        }
        else if (strcmp(opt, "--subject") == 0)
            rc = s_copy_field(m->subject, sizeof(m->subject), opt, val);
        else if (strcmp(opt, "--purpose") == 0)
            rc = s_copy_field(m->purpose, sizeof(m->purpose), opt, val);
        else if (strcmp(opt, "--correlation") == 0)
            rc = s_copy_field(m->correlation, sizeof(m->correlation), opt, val);
        else if (strcmp(opt, "--body-json") == 0)
            o->body = val;
        else if (strcmp(opt, "--body-file") == 0)
            o->body_file = val;
        else if (strcmp(opt, "--endpoint") == 0)
            o->endpoint = val;
        else if (strcmp(opt, "--cert") == 0)
            o->cert = val;
        else if (strcmp(opt, "--server-key") == 0)
            o->server_key = val;
        else
            rc = cli_usage(stderr, EXIT_USAGE);
    }
    if (rc == 0 && o->type)
        rc = s_copy_field(m->type, sizeof(m->type), "--type", o->type);
    if (rc == 0
        && (!o->as || !o->type || !m->version || (!o->body == !o->body_file)
            || !o->endpoint))
        rc = cli_error(EXIT_USAGE,
                       "publish needs --as, --type, --version, one of --body-json"
                       " or --body-file, and --endpoint (or --config)");
    return rc;
}

/* The body from --body-json or --body-file, and a fresh id. */
static int
s_publish_body(const s_publish_opts_t *o, mlg_msg_t *m)
{
    size_t len = 0;
    char *file_text = NULL;
    if (o->body_file) {
        char why[512];
        file_text = brk_read_file(o->body_file, 1 << 20, &len, why, sizeof(why));
        if (!file_text)
            return cli_error(EXIT_USAGE, "%s", why);
    }
    const char *text = file_text ? file_text : o->body;
    uint8_t *mp = NULL;
    size_t mplen = 0;
    char err[256];
    mlg_rc_t jrc = mlg_json_to_msgpack(text, strlen(text), &mp, &mplen, err, sizeof(err));
    free(file_text);
    if (jrc != MLG_OK)
        return cli_error(EXIT_USAGE, "the body is not JSON: %s", err);
    mlg_msg_set_body(m, mp, mplen);
    free(mp);
    zuuid_t *u = zuuid_new();
    const char *id = zuuid_str_canonical(u);
    for (int i = 0; i < 36; i++)
        m->id[i] = (char)((id[i] >= 'A' && id[i] <= 'F') ? id[i] + 32 : id[i]);
    zuuid_destroy(&u);
    return 0;
}

/* The broker's answer to a publish, as a table line or JSON. */
static void
s_publish_answer(const mlg_msg_t *m, const mlg_msg_t *a, bool json_out)
{
    if (json_out) {
        json_t *doc = json_pack("{s:s, s:s}", "id", m->id, "answer", mlg_op_name(a->op));
        if (a->op == MLG_OP_CONFIRM) {
            json_object_set_new(doc, "seq", json_integer((json_int_t)a->seq));
            json_t *routed = json_array(), *denied = json_array();
            for (size_t i = 0; i < a->routed_count; i++)
                json_array_append_new(routed, json_string(a->routed[i].id));
            for (size_t i = 0; i < a->denied_count; i++)
                json_array_append_new(denied, json_pack("{s:s, s:s}", "recipient",
                                                        a->denied[i].recipient, "reason",
                                                        a->denied[i].reason));
            json_object_set_new(doc, "routed", routed);
            json_object_set_new(doc, "denied", denied);
        }
        else {
            json_object_set_new(doc, "code", json_string(a->code));
            json_object_set_new(doc, "reason", json_string(a->reason));
        }
        cli_print_json(doc);
        json_decref(doc);
    }
    else if (a->op == MLG_OP_CONFIRM) {
        printf("confirmed %s: seq %llu, routed to", m->id, (unsigned long long)a->seq);
        for (size_t i = 0; i < a->routed_count; i++)
            printf(" %s", a->routed[i].id);
        for (size_t i = 0; i < a->denied_count; i++)
            printf("%s %s (%s)", i ? "," : "; denied", a->denied[i].recipient,
                   a->denied[i].reason);
        printf("\n");
    }
    else
        printf("%s %s: %s\n", mlg_op_name(a->op), a->code, a->reason);
}

static int
s_publish(const brk_config_t *cfg, bool json_out, int argc, char **argv)
{
    s_publish_opts_t o = {.endpoint = cfg ? cfg->endpoint : NULL};
    mlg_msg_t *m = mlg_msg_new(MLG_OP_PUBLISH);
    if (!m)
        return cli_error(EXIT_USAGE, "out of memory");
    int rc = s_publish_opts(argc, argv, m, &o);
    if (rc == 0)
        rc = s_publish_body(&o, m);
    mlg_client_t *c = NULL;
    if (rc == 0) {
        mlg_error_t e;
        c = o.cert ? mlg_client_new_curve(o.endpoint, o.as, "maillage-cli", 0, 5000,
                                          o.cert, o.server_key, &e)
                   : mlg_client_new(o.endpoint, o.as, "maillage-cli", 0, 5000, &e);
        if (!c)
            rc = cli_error(EXIT_USAGE, "could not join %s as %s: %s", o.endpoint, o.as,
                           e.reason);
    }
    if (rc == 0) {
        mlg_client_send(c, m);
        mlg_msg_t *a = mlg_client_recv(c, 10000);
        if (!a)
            rc = cli_error(EXIT_USAGE, "no answer from %s within 10 s", o.endpoint);
        else
            s_publish_answer(m, a, json_out);
        if (a && a->op != MLG_OP_CONFIRM)
            rc = EXIT_NOT_FOUND; /* refused: not a usage error of the CLI */
        mlg_msg_destroy(&a);
    }
    mlg_client_destroy(&c);
    mlg_msg_destroy(&m);
    return rc;
}

/* ---- main -------------------------------------------------------------- */

int
main(int argc, char **argv)
{
    const char *config = getenv("MAILLAGE_CONFIG"), *database = NULL;
    cli_t cli = {NULL, false, NULL};
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--help") == 0)
            return cli_usage(stdout, 0);
        else if (strcmp(argv[i], "--json") == 0)
            cli.json = true;
        else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            config = argv[++i];
        else if (strcmp(argv[i], "--database") == 0 && i + 1 < argc)
            database = argv[++i];
        else if (strcmp(argv[i], "--http") == 0 && i + 1 < argc)
            cli.http = argv[++i];
        else
            return cli_usage(stderr, EXIT_USAGE);
    }
    if (i == argc)
        return cli_usage(stderr, EXIT_USAGE);
    if (strcmp(argv[i], "keygen") == 0)
        return s_keygen(argc - i - 1, argv + i + 1);
    brk_config_t *cfg = NULL;
    if (strcmp(argv[i], "publish") == 0) {
        char err[1024];
        if (config && !(cfg = brk_config_load(config, err, sizeof(err))))
            return cli_error(EXIT_USAGE, "%s", err);
        int rc = s_publish(cfg, cli.json, argc - i - 1, argv + i + 1);
        brk_config_destroy(&cfg);
        return rc;
    }
    if (!database || (config && !cli.http)) {
        if (!config)
            return cli_error(EXIT_USAGE, "give --database URL or --config FILE");
        char err[1024];
        cfg = brk_config_load(config, err, sizeof(err));
        if (!cfg)
            return cli_error(EXIT_USAGE, "%s", err);
        if (!database)
            database = cfg->database;
        if (!cli.http && cfg->http && *cfg->http)
            cli.http = cfg->http;
    }
    cli.db = PQconnectdb(database);
    int rc;
    if (PQstatus(cli.db) != CONNECTION_OK) {
        char *msg = PQerrorMessage(cli.db);
        rc = cli_error(EXIT_USAGE, "could not connect to the database: %.*s",
                       (int)strcspn(msg, "\n"), msg);
    }
    else {
        const char *cmd = argv[i];
        int n = argc - i - 1;
        char **args = argv + i + 1;
        if (strcmp(cmd, "status") == 0)
            rc = s_status(&cli, n, args);
        else if (strcmp(cmd, "verify") == 0)
            rc = s_verify(&cli, n, args);
        else if (strcmp(cmd, "audit") == 0)
            rc = s_audit(&cli, n, args);
        else if (strcmp(cmd, "subject-report") == 0)
            rc = s_subject_report(&cli, n, args);
        else if (strcmp(cmd, "consents") == 0)
            rc = s_consents(&cli, n, args);
        else if (strcmp(cmd, "dlq") == 0 && n >= 1 && strcmp(args[0], "list") == 0)
            rc = s_dlq_list(&cli, n - 1, args + 1);
        else if (strcmp(cmd, "dlq") == 0 && n >= 1 && strcmp(args[0], "replay") == 0)
            rc = s_dlq_replay(&cli, n - 1, args + 1);
        else if (strcmp(cmd, "referrals") == 0)
            rc = cli_referrals(&cli, n, args);
        else if (strcmp(cmd, "referral") == 0)
            rc = cli_referral(&cli, n, args);
        else if (strcmp(cmd, "purge") == 0)
            rc = s_purge(&cli, n, args);
        else
            rc = cli_usage(stderr, EXIT_USAGE);
    }
    PQfinish(cli.db);
    brk_config_destroy(&cfg);
    return rc;
}
