/*  test_broker_db.c: the broker and its database's troubles.

    This file runs a PostgreSQL of its own (scripts/pg.sh in a temporary
    folder), since it stops and restarts it: the suite's shared server
    must stay up for the other tests. A connection cut during a COMMIT
    goes through a TCP proxy to the suite's server instead. Also: SIGTERM
    drains, the bound on publishes waiting for the store, configuration
    errors. */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <setjmp.h>
#include <stdbool.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <czmq.h>

#include "e2e.h"
#include "pgenv.h"
#include "toolutil.h"
#include "maillage/client.h"
#include "maillage/json.h"

static char s_pgdir[64];
static brokerproc_t s_bp;
static PGconn *s_db;

static const char *s_agencies = "    ccas-paris-13\n"
                                "        name = \"CCAS Paris 13\"\n"
                                "        publish = \"child.protection.alert\"\n"
                                "    cd75\n"
                                "        name = \"Departement de Paris\"\n"
                                "    cd69\n"
                                "        name = \"Departement du Rhone\"\n";

static int
s_pg(const char *verb)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "bash %s/scripts/pg.sh %s %s >/dev/null",
             getenv("MLG_SOURCE_DIR"), verb, s_pgdir);
    return system(cmd);
}

static int
s_env(const char *key, char *out, size_t outlen)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/env", s_pgdir);
    return tool_file_value(path, key, '=', out, outlen);
}

static int
setup(void **state)
{
    (void)state;
    snprintf(s_pgdir, sizeof(s_pgdir), "/tmp/maillage-dbtest-XXXXXX");
    if (!mkdtemp(s_pgdir) || s_pg("start"))
        return -1;
    char url[512], host[256], port[16], conninfo[600];
    if (s_env("MLG_DATABASE_URL", url, sizeof(url))
        || s_env("MLG_PGHOST", host, sizeof(host))
        || s_env("MLG_PGPORT", port, sizeof(port)))
        return -1;
    snprintf(conninfo, sizeof(conninfo), "host=%s port=%s user=maillage dbname=maillage",
             host, port);
    if (brokerproc_init_url(&s_bp, url, conninfo,
                            "    heartbeat_ms = 1000\n    max_outstanding = 8\n",
                            s_agencies))
        return -1;
    return e2e_broker_start(&s_bp);
}

static int
teardown(void **state)
{
    (void)state;
    brokerproc_cleanup(&s_bp);
    s_pg("destroy");
    return 0;
}

static void
s_db_open(void)
{
    s_db = brokerproc_db(&s_bp);
    assert_int_equal(PQstatus(s_db), CONNECTION_OK);
}

/* The alert of these tests, to `to`. */
static mlg_msg_t *
alert_to(char *id, const char *to)
{
    return e2e_alert(id, to, "P-9");
}

static mlg_msg_t *
alert(char *id)
{
    return alert_to(id, "cd75");
}

static long
stored(const char *id)
{
    return e2e_scalar(s_db, "select count(*) from messages where id = '%s'", id);
}

/* The answer to one publish: CONFIRM or REJECT. */
static mlg_msg_t *
answer(mlg_client_t *c)
{
    mlg_msg_t *a = brokerproc_answer(c, 15000);
    assert_non_null(a);
    return a;
}

static void
test_database_restart(void **state)
{
    (void)state;
    mlg_client_t *c = e2e_client(&s_bp, "ccas-paris-13", 0);
    enum { N = 4 };
    char before[37], down[N][37], lost[37];
    mlg_msg_t *m = alert(before);
    mlg_msg_t *a = e2e_publish(c, m, 15000);
    mlg_msg_destroy(&m);
    assert_int_equal(a->op, MLG_OP_CONFIRM);
    mlg_msg_destroy(&a);

    assert_int_equal(s_pg("stop"), 0);
    /* while the database is down: UNAVAILABLE, never CONFIRM */
    mlg_msg_t *msgs[N];
    for (int i = 0; i < N; i++) {
        msgs[i] = alert(down[i]);
        a = e2e_publish(c, msgs[i], 15000);
        if (a->op != MLG_OP_REJECT)
            print_error("publish %d answered %s while the database was down\n", i,
                        mlg_op_name(a->op));
        assert_int_equal(a->op, MLG_OP_REJECT);
        assert_string_equal(a->code, "UNAVAILABLE");
        assert_string_equal(a->id, down[i]);
        mlg_msg_destroy(&a);
    }
    m = alert(lost);
    a = e2e_publish(c, m, 15000);
    mlg_msg_destroy(&m);
    assert_string_equal(a->code, "UNAVAILABLE");
    mlg_msg_destroy(&a);
    assert_int_equal(brokerproc_wait_log(&s_bp, "database connection lost", 5000), 0);

    /* back up: the same ids go through, without a broker restart */
    assert_int_equal(s_pg("start"), 0);
    for (int i = 0; i < N; i++) {
        int64_t deadline = zclock_mono() + 20000;
        for (;;) {
            a = e2e_publish(c, msgs[i], 15000);
            if (a->op == MLG_OP_CONFIRM)
                break;
            assert_string_equal(a->code, "UNAVAILABLE");
            mlg_msg_destroy(&a);
            assert_true(zclock_mono() < deadline);
            zclock_sleep(200);
        }
        assert_false(a->duplicate);
        mlg_msg_destroy(&a);
        mlg_msg_destroy(&msgs[i]);
    }
    s_db_open();
    for (int i = 0; i < N; i++)
        assert_int_equal(stored(down[i]), 1);
    assert_int_equal(stored(before), 1);
    assert_int_equal(stored(lost), 0); /* rejected, never retried: not stored */
    PQfinish(s_db);

    /* and all five confirmed reach cd75 */
    mlg_client_t *sub = e2e_client(&s_bp, "cd75", 10);
    for (int i = 0; i < N + 1; i++) {
        mlg_msg_t *d = e2e_expect(sub, MLG_OP_DELIVER, 5000);
        mlg_client_ack(sub, d->delivery);
        mlg_msg_destroy(&d);
    }
    mlg_client_destroy(&sub);
    mlg_client_destroy(&c);
}

/* One delivery's row as "state attempts last_error", and how many rows
   of delivery_events it has as "event@attempt ..." in their order. */
static void
s_delivery_row(uint64_t id, char *row, size_t rowlen, char *events, size_t evlen)
{
    char sql[400];
    snprintf(sql, sizeof(sql),
             "select state || ' ' || attempts || ' ' || coalesce(last_error, '-'),"
             " (select coalesce(string_agg(event || '@' || attempt, ' ' order by id), '')"
             "  from delivery_events where delivery_id = d.id)"
             " from deliveries d where id = %llu",
             (unsigned long long)id);
    PGresult *res = PQexec(s_db, sql);
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(res), 1);
    snprintf(row, rowlen, "%s", PQgetvalue(res, 0, 0));
    snprintf(events, evlen, "%s", PQgetvalue(res, 0, 1));
    PQclear(res);
}

/* Issue 14, item 4: what a client settles while the database is down is
   written once it is back, exactly once, and a restarted broker does not
   deliver it again. The ACKs, NACKs and BYE reach the broker after
   PostgreSQL stopped and before it starts again, so the store has to
   keep them over a failed batch and a reconnection. */
enum { S_SETTLED = 8 };

/* S_SETTLED alerts to cd69, confirmed, then delivered to `a`: their
   delivery ids in dids, in the order published; their first sends
   written before the database stops. */
static void
s_settled_deliver(mlg_client_t *pub, mlg_client_t *a, uint64_t dids[])
{
    char ids[S_SETTLED][37];
    for (int i = 0; i < S_SETTLED; i++) {
        mlg_msg_t *m = alert_to(ids[i], "cd69");
        mlg_msg_t *ans = e2e_publish(pub, m, 15000);
        mlg_msg_destroy(&m);
        assert_int_equal(ans->op, MLG_OP_CONFIRM);
        mlg_msg_destroy(&ans);
    }
    for (int i = 0; i < S_SETTLED; i++) {
        mlg_msg_t *d = e2e_expect(a, MLG_OP_DELIVER, 5000);
        int k = 0;
        while (k < S_SETTLED && strcmp(ids[k], d->id) != 0)
            k++;
        assert_true(k < S_SETTLED);
        assert_int_equal(d->attempt, 1);
        dids[k] = d->delivery;
        mlg_msg_destroy(&d);
    }
    s_db_open();
    assert_int_equal(e2e_wait_scalar(s_db, S_SETTLED, 10000,
                                     "select count(*) from deliveries where recipient ="
                                     " 'cd69' and attempts = 1"),
                     S_SETTLED);
    PQfinish(s_db);
}

/* While the database is down: 0-4 acked, 5 refused (dead), 6 requeued
   by its client and acked on its second attempt, 7 left in flight when
   its client (*a_p, destroyed here) says BYE, then acked by another
   client; that one, returned. */
static mlg_client_t *
s_settle_while_down(mlg_client_t **a_p, const uint64_t dids[])
{
    mlg_client_t *a = *a_p;
    for (int i = 0; i < 5; i++)
        assert_int_equal(mlg_client_ack(a, dids[i]), MLG_OK);
    assert_int_equal(mlg_client_nack(a, dids[5], false, "refused"), MLG_OK);
    assert_int_equal(mlg_client_nack(a, dids[6], true, "busy"), MLG_OK);
    mlg_msg_t *d = e2e_expect(a, MLG_OP_DELIVER, 5000);
    assert_int_equal(d->delivery, dids[6]);
    assert_int_equal(d->attempt, 2);
    mlg_client_ack(a, d->delivery);
    mlg_msg_destroy(&d);
    mlg_client_t *b = e2e_client(&s_bp, "cd69", 1);
    mlg_client_destroy(a_p);
    d = e2e_expect(b, MLG_OP_DELIVER, 5000);
    assert_int_equal(d->delivery, dids[7]);
    assert_int_equal(d->attempt, 2);
    mlg_client_ack(b, d->delivery);
    mlg_msg_destroy(&d);
    return b;
}

/* Once the database is back: each delivery's row and events as
   s_settle_while_down left them, written once. */
static void
s_settled_rows(const uint64_t dids[])
{
    s_db_open();
    e2e_wait_scalar(s_db, S_SETTLED, 20000,
                    "select count(*) from deliveries where recipient = 'cd69' and state"
                    " <> 'pending'");
    static const struct {
        const char *row, *events;
    } want[S_SETTLED] = {
        {"acked 1 -", ""},          {"acked 1 -", ""},
        {"acked 1 -", ""},          {"acked 1 -", ""},
        {"acked 1 -", ""},          {"dead 1 refused", "nack@1 dead@1"},
        {"acked 2 busy", "nack@1"}, {"acked 2 BYE", "requeued@1"},
    };
    for (int i = 0; i < S_SETTLED; i++) {
        char row[200], events[200];
        s_delivery_row(dids[i], row, sizeof(row), events, sizeof(events));
        if (strcmp(row, want[i].row) != 0 || strcmp(events, want[i].events) != 0)
            print_error("delivery %d: '%s' with events '%s', expected '%s' with '%s'\n",
                        i, row, events, want[i].row, want[i].events);
        assert_string_equal(row, want[i].row);
        assert_string_equal(events, want[i].events);
    }
    PQfinish(s_db);
}

static void
test_settled_while_database_down(void **state)
{
    (void)state;
    uint64_t dids[S_SETTLED];
    mlg_client_t *a = e2e_client(&s_bp, "cd69", S_SETTLED);
    mlg_client_t *pub = e2e_client(&s_bp, "ccas-paris-13", 0);
    s_settled_deliver(pub, a, dids);

    assert_int_equal(s_pg("stop"), 0);
    assert_int_equal(brokerproc_wait_log(&s_bp, "database connection lost", 5000), 0);
    mlg_client_t *b = s_settle_while_down(&a, dids);
    zclock_sleep(1000); /* the store has had them, and failed to write them */

    assert_int_equal(s_pg("start"), 0);
    s_settled_rows(dids);
    mlg_client_destroy(&b);
    mlg_client_destroy(&pub);

    /* a restarted broker reads the queue from the database: nothing of
       it is delivered again */
    assert_int_equal(brokerproc_stop(&s_bp, SIGTERM), 0);
    assert_int_equal(brokerproc_start(&s_bp), 0);
    mlg_client_t *c = e2e_client(&s_bp, "cd69", S_SETTLED);
    mlg_msg_t *d = mlg_client_recv(c, 2000);
    if (d)
        print_error("delivered again after a restart: %s %llu attempt %llu\n",
                    mlg_op_name(d->op), (unsigned long long)d->delivery,
                    (unsigned long long)d->attempt);
    assert_null(d);
    mlg_client_destroy(&c);
}

/* ---- a connection cut off during its COMMIT ------------------------------

   A TCP proxy between a broker and PostgreSQL that fails the way a
   network does. Commands, each answered with a signal: "HUSH" stops
   passing the server's answers on the connections open now (the server
   still runs what it gets), "MUTE" stops passing the client's requests
   on them, "CUT" closes them. New connections pass everything. */

typedef struct {
    int client, server;
    bool hushed, muted;
} s_pair_t;

static void
s_proxy_close(s_pair_t *pairs, size_t *n, size_t i)
{
    close(pairs[i].client);
    close(pairs[i].server);
    pairs[i] = pairs[--*n];
}

static void
s_proxy(zsock_t *pipe, void *args)
{
    const int *ports = args; /* listen on [0], pass to [1] */
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in addr = {.sin_family = AF_INET};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons((uint16_t)ports[0]);
    /* the port's probe (a zmq socket) is closed in the background */
    bool ok = false;
    for (int i = 0; i < 50 && !ok; i++) {
        ok = bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) == 0;
        if (!ok)
            zclock_sleep(20);
    }
    ok = ok && listen(lfd, 8) == 0;
    zsock_signal(pipe, ok ? 0 : 1);
    enum { MAXP = 16 };
    s_pair_t pairs[MAXP];
    size_t n = 0;
    while (ok) {
        zmq_pollitem_t items[2 + 2 * MAXP] = {{zsock_resolve(pipe), 0, ZMQ_POLLIN, 0},
                                              {NULL, lfd, ZMQ_POLLIN, 0}};
        for (size_t i = 0; i < n; i++) {
            items[2 + 2 * i] = (zmq_pollitem_t){NULL, pairs[i].client, ZMQ_POLLIN, 0};
            items[3 + 2 * i] = (zmq_pollitem_t){NULL, pairs[i].server, ZMQ_POLLIN, 0};
        }
        if (zmq_poll(items, (int)(2 + 2 * n), -1) < 0)
            break;
        if (items[0].revents & ZMQ_POLLIN) {
            char *cmd = zstr_recv(pipe);
            if (!cmd || streq(cmd, "$TERM")) {
                zstr_free(&cmd);
                break;
            }
            for (size_t i = n; i-- > 0;) {
                if (streq(cmd, "HUSH"))
                    pairs[i].hushed = true;
                else if (streq(cmd, "MUTE"))
                    pairs[i].muted = true;
                else if (pairs[i].hushed || pairs[i].muted)
                    s_proxy_close(pairs, &n, i); /* CUT */
            }
            zstr_free(&cmd);
            zsock_signal(pipe, 0);
            continue; /* the items may have moved */
        }
        if ((items[1].revents & ZMQ_POLLIN) && n < MAXP) {
            int c = accept(lfd, NULL, NULL);
            int srv = socket(AF_INET, SOCK_STREAM, 0);
            addr.sin_port = htons((uint16_t)ports[1]);
            if (c >= 0 && connect(srv, (struct sockaddr *)&addr, sizeof(addr)) == 0)
                pairs[n++] = (s_pair_t){c, srv, false, false};
            else {
                close(c);
                close(srv);
            }
        }
        for (size_t i = n; i-- > 0;) {
            for (int side = 0; side < 2 && i < n; side++) {
                if (!(items[2 + 2 * i + side].revents & (ZMQ_POLLIN | ZMQ_POLLERR)))
                    continue;
                char buf[16384];
                int from = side ? pairs[i].server : pairs[i].client;
                int to = side ? pairs[i].client : pairs[i].server;
                ssize_t got = read(from, buf, sizeof(buf));
                if (got <= 0) {
                    s_proxy_close(pairs, &n, i);
                    break;
                }
                bool pass = side ? !pairs[i].hushed : !pairs[i].muted;
                if (pass && write(to, buf, (size_t)got) != got) {
                    s_proxy_close(pairs, &n, i);
                    break;
                }
            }
        }
    }
    while (n)
        s_proxy_close(pairs, &n, 0);
    close(lfd);
}

static void
s_proxy_do(zactor_t *proxy, const char *cmd)
{
    zstr_send(proxy, cmd);
    zsock_wait(proxy);
}

static brokerproc_t s_cut_bp;
static zactor_t *s_cut_proxy;

/* A transaction of updates is cut off during its COMMIT: once when the
   server has committed it and its answer is lost, once when the server
   never got it. Either way the broker learns which on reconnecting, and
   the updates are in the database exactly once (a SENT written twice
   would count its attempt twice, a NACK its delivery_events rows). */
static void
test_commit_cut_off(void **state)
{
    (void)state;
    char host_port[16], user[64], url[512], conninfo[2048];
    assert_int_equal(pgenv_get("MLG_PGPORT", host_port, sizeof(host_port)), 0);
    assert_int_equal(pgenv_get("MLG_PGUSER", user, sizeof(user)), 0);
    assert_int_equal(brokerproc_make_db("e2e_commit_cut", url, sizeof(url), conninfo,
                                        sizeof(conninfo)),
                     0);
    int ports[2] = {brokerproc_free_port(), atoi(host_port)};
    s_cut_proxy = zactor_new(s_proxy, ports);
    zactor_t *proxy = s_cut_proxy;
    assert_non_null(proxy);
    snprintf(url, sizeof(url), "postgresql://%s@127.0.0.1:%d/e2e_commit_cut", user,
             ports[0]);
    brokerproc_t *bp = &s_cut_bp;
    assert_int_equal(brokerproc_init_url(bp, url, conninfo, NULL, s_agencies), 0);
    if (e2e_broker_start(bp) != 0)
        fail_msg("the broker did not start through the proxy");
    PGconn *db = brokerproc_db(bp);
    assert_int_equal(PQstatus(db), CONNECTION_OK);

    /* d0 in flight to `sub`, d1 held in the broker's read-ahead */
    mlg_client_t *sub = e2e_client(bp, "cd69", 1);
    mlg_client_t *pub = e2e_client(bp, "ccas-paris-13", 0);
    for (int i = 0; i < 2; i++) {
        char id[37];
        mlg_msg_t *m = alert_to(id, "cd69");
        e2e_confirmed(pub, &m);
    }
    mlg_msg_t *d = e2e_expect(sub, MLG_OP_DELIVER, 5000);
    uint64_t d0 = d->delivery;
    mlg_msg_destroy(&d);
    const char *sent = "select count(*) from deliveries where attempts = 1";
    assert_int_equal(e2e_wait_scalar(db, 1, 10000, "%s", sent), 1);

    /* 1. committed, its answer lost: a second client takes d1, and the
       transaction of its SENT (sent in one go, BEGIN to COMMIT) commits
       while the proxy keeps the server's answers */
    s_proxy_do(proxy, "HUSH");
    mlg_client_t *sub2 = e2e_client(bp, "cd69", 1);
    d = e2e_expect(sub2, MLG_OP_DELIVER, 5000);
    uint64_t d1 = d->delivery;
    mlg_msg_destroy(&d);
    assert_int_equal(e2e_wait_scalar(db, 2, 10000, "%s", sent), 2);
    s_proxy_do(proxy, "CUT");
    assert_int_equal(brokerproc_wait_log(bp, "had committed", 10000), 0);
    mlg_client_ack(sub2, d1);
    assert_int_equal(
        e2e_wait_scalar(db, 1, 10000,
                        "select count(*) from deliveries where state = 'acked'"),
        1);

    /* 2. never got to the server */
    s_proxy_do(proxy, "MUTE");
    mlg_client_nack(sub, d0, false, "refused");
    zclock_sleep(500);
    const char *dead = "select count(*) from deliveries where state = 'dead'";
    assert_int_equal(brokerproc_scalar(db, dead), 0);
    s_proxy_do(proxy, "CUT");
    assert_int_equal(e2e_wait_scalar(db, 1, 10000, "%s", dead), 1);

    const struct {
        uint64_t id;
        const char *row, *events;
    } want[2] = {{d0, "dead 1 refused", "nack@1 dead@1"}, {d1, "acked 1 -", ""}};
    s_db = db;
    for (int i = 0; i < 2; i++) {
        char row[200], events[200];
        s_delivery_row(want[i].id, row, sizeof(row), events, sizeof(events));
        if (strcmp(row, want[i].row) != 0 || strcmp(events, want[i].events) != 0)
            print_error("delivery %d: '%s' with events '%s'\n", i, row, events);
        assert_string_equal(row, want[i].row);
        assert_string_equal(events, want[i].events);
    }
    s_db = NULL;
    PQfinish(db);
    mlg_client_destroy(&sub2);
    mlg_client_destroy(&sub);
    mlg_client_destroy(&pub);
}

/* Whatever happened in test_commit_cut_off, its broker and proxy go. */
static int
s_cut_teardown(void **state)
{
    (void)state;
    brokerproc_cleanup(&s_cut_bp);
    zactor_destroy(&s_cut_proxy);
    return 0;
}

static void
test_bound_on_waiting_publishes(void **state)
{
    (void)state;
    /* max_outstanding is 8: a burst of 200 overflows it */
    enum { N = 200 };
    static char ids[N][37];
    mlg_client_t *c = e2e_client(&s_bp, "ccas-paris-13", 0);
    for (int i = 0; i < N; i++) {
        mlg_msg_t *m = alert(ids[i]);
        mlg_client_send(c, m);
        mlg_msg_destroy(&m);
    }
    int confirmed = 0, unavailable = 0;
    s_db_open();
    for (int i = 0; i < N; i++) {
        mlg_msg_t *a = answer(c);
        if (a->op == MLG_OP_CONFIRM) {
            confirmed++;
            assert_int_equal(stored(a->id), 1);
        }
        else {
            assert_string_equal(a->code, "UNAVAILABLE");
            assert_non_null(strstr(a->reason, "too many publishes"));
            unavailable++;
        }
        mlg_msg_destroy(&a);
    }
    PQfinish(s_db);
    assert_int_equal(confirmed + unavailable, N);
    assert_true(confirmed > 0);
    assert_true(unavailable > 0);
    mlg_client_destroy(&c);
}

static void
test_sigterm_drains(void **state)
{
    (void)state;
    static char ids[8][37];
    mlg_client_t *c = e2e_client(&s_bp, "ccas-paris-13", 0);
    for (int i = 0; i < 8; i++) { /* within max_outstanding */
        mlg_msg_t *m = alert(ids[i]);
        mlg_client_send(c, m);
        mlg_msg_destroy(&m);
    }
    zclock_sleep(2);
    assert_int_equal(brokerproc_stop(&s_bp, SIGTERM), 0);
    /* whatever was answered CONFIRM is stored */
    s_db_open();
    mlg_msg_t *a;
    while ((a = mlg_client_recv(c, 300))) {
        if (a->op == MLG_OP_CONFIRM)
            assert_int_equal(stored(a->id), 1);
        mlg_msg_destroy(&a);
    }
    PQfinish(s_db);
    assert_int_equal(brokerproc_wait_log(&s_bp, "stopped", 1000), 0);
    mlg_client_destroy(&c);
    assert_int_equal(brokerproc_start(&s_bp), 0);
}

static void
test_config_errors(void **state)
{
    (void)state;
    const struct {
        const char *text;
        const char *expect;
    } cases[] = {
        {"broker\n    endpoint = tcp://127.0.0.1:1\n    database = x\n    max_atempts = "
         "3\n",
         "broker/max_atempts: unknown key"},
        {"broker\n    endpoint = tcp://127.0.0.1:1\n    database = x\n    heartbeat_ms = "
         "soon\n",
         "broker/heartbeat_ms: 'soon' is not a whole number"},
        {"broker\n    endpoint = tcp://127.0.0.1:1\n    database = x\nagencies\n    "
         "CD75\n"
         "        name = x\n",
         "agencies/CD75: not an agency id"},
        {"broker\n    endpoint = tcp://127.0.0.1:1\n    database = x\nagencies\n    "
         "cd75\n"
         "        name = x\n        publish = \"referral.\"\n",
         "agencies/cd75/publish: 'referral.' is not a type pattern"},
        {"broker\n    endpoint = tcp://127.0.0.1:1\n    database = x\nagencies\n    "
         "cd75\n"
         "        name = x\n",
         "security/secret_cert: required when curve = 1"},
        {"broker\n    endpoint = tcp://127.0.0.1:1\n    database = x\n    schemas = "
         "/nowhere\n"
         "security\n    curve = 0\nagencies\n    cd75\n        name = x\n",
         "/nowhere/vocabulary.json: /: could not open"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char path[300], log[300], cmd[1200];
        snprintf(path, sizeof(path), "%s/bad.cfg", s_bp.dir);
        snprintf(log, sizeof(log), "%s/bad.log", s_bp.dir);
        FILE *f = fopen(path, "w");
        fputs(cases[i].text, f);
        fclose(f);
        snprintf(cmd, sizeof(cmd), "%s --config %s 2>%s", getenv("MLG_BROKER_BIN"), path,
                 log);
        int status = system(cmd);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 2);
        f = fopen(log, "r");
        char text[2048] = "";
        size_t n = fread(text, 1, sizeof(text) - 1, f);
        text[n] = '\0';
        fclose(f);
        /* the file at fault is named: the configuration, or a schema */
        bool names_config = strstr(cases[i].expect, "vocabulary") == NULL;
        if (!strstr(text, cases[i].expect) || (names_config && !strstr(text, path)))
            print_error("expected '%s' naming %s, got: %s\n", cases[i].expect, path,
                        text);
        assert_non_null(strstr(text, cases[i].expect));
        if (names_config)
            assert_non_null(strstr(text, path));
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_database_restart),
        cmocka_unit_test(test_settled_while_database_down),
        cmocka_unit_test_teardown(test_commit_cut_off, s_cut_teardown),
        cmocka_unit_test(test_bound_on_waiting_publishes),
        cmocka_unit_test(test_sigterm_drains),
        cmocka_unit_test(test_config_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
