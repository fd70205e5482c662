/*  brokerproc.c: the real maillage-broker as a child process of an
    end-to-end test (see brokerproc.h): makes its database in the suite's
    PostgreSQL, writes its configuration in a temporary folder, starts,
    stops and cleans it up, and gives the test a client and a database
    connection. Asserts nothing: tests/support/e2e.c holds the steps
    that check. */

#include <czmq.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "brokerproc.h"
#include "toolutil.h"
#include "pgenv.h"

const char *brokerproc_security = NULL;

/* A free port below the kernel's ephemeral range (32768 and up): a
   broker restarted on its port must not find it taken by some client's
   outgoing connection, and zmq's "*" counts up from 49152, inside that
   range. Random, so tests running side by side do not pick the same. */
int
brokerproc_free_port(void)
{
    static unsigned seed;
    if (!seed)
        seed = (unsigned)getpid() ^ (unsigned)zclock_usecs();
    zsock_t *probe = zsock_new(ZMQ_ROUTER);
    int port = -1;
    for (int i = 0; i < 200 && port < 0; i++) {
        int candidate = 21000 + (int)(rand_r(&seed) % 7000); /* demo_test: 28000+ */
        if (zsock_bind(probe, "tcp://127.0.0.1:%d", candidate) == candidate)
            port = candidate;
    }
    zsock_destroy(&probe);
    return port;
}

int
brokerproc_make_db(const char *dbname, char *url, size_t urllen, char *conninfo,
                   size_t conninfolen)
{
    char host[1024], port[16], user[64], base[2048];
    if (pgenv_get("MLG_PGHOST", host, sizeof(host))
        || pgenv_get("MLG_PGPORT", port, sizeof(port))
        || pgenv_get("MLG_PGUSER", user, sizeof(user))
        || pgenv_conninfo(base, sizeof(base)))
        return -1;
    PGconn *admin = PQconnectdb(base);
    if (PQstatus(admin) != CONNECTION_OK) {
        PQfinish(admin);
        return -1;
    }
    char sql[256];
    snprintf(sql, sizeof(sql), "drop database if exists %s with (force)", dbname);
    PQclear(PQexec(admin, sql));
    snprintf(sql, sizeof(sql), "create database %s", dbname);
    PGresult *res = PQexec(admin, sql);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    PQfinish(admin);
    if (!ok)
        return -1;
    snprintf(url, urllen, "postgresql://%s@127.0.0.1:%s/%s", user, port, dbname);
    snprintf(conninfo, conninfolen, "host=%s port=%s user=%s dbname=%s", host, port, user,
             dbname);
    return 0;
}

static int s_write_config(brokerproc_t *bp, const char *url, const char *conninfo,
                          const char *broker_extra, const char *agencies);

int
brokerproc_init(brokerproc_t *bp, const char *dbname, const char *broker_extra,
                const char *agencies)
{
    memset(bp, 0, sizeof(*bp));
    snprintf(bp->dir, sizeof(bp->dir), "/tmp/maillage-e2e-XXXXXX");
    if (!mkdtemp(bp->dir))
        return -1;
    char url[512], conninfo[2048];
    if (brokerproc_make_db(dbname, url, sizeof(url), conninfo, sizeof(conninfo)) != 0)
        return -1;
    return s_write_config(bp, url, conninfo, broker_extra, agencies);
}

int
brokerproc_init_url(brokerproc_t *bp, const char *url, const char *conninfo,
                    const char *broker_extra, const char *agencies)
{
    memset(bp, 0, sizeof(*bp));
    snprintf(bp->dir, sizeof(bp->dir), "/tmp/maillage-e2e-XXXXXX");
    if (!mkdtemp(bp->dir))
        return -1;
    return s_write_config(bp, url, conninfo, broker_extra, agencies);
}

static int
s_write_config(brokerproc_t *bp, const char *url, const char *conninfo,
               const char *broker_extra, const char *agencies)
{
    snprintf(bp->database, sizeof(bp->database), "%s", url);
    snprintf(bp->conninfo, sizeof(bp->conninfo), "%s", conninfo);
    if (!bp->endpoint[0]) /* a rewrite keeps the broker's endpoint */
        snprintf(bp->endpoint, sizeof(bp->endpoint), "tcp://127.0.0.1:%d",
                 brokerproc_free_port());
    snprintf(bp->log, sizeof(bp->log), "%s/broker.log", bp->dir);

    char path[300];
    snprintf(path, sizeof(path), "%s/maillage.cfg", bp->dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f,
            "broker\n"
            "    endpoint = %s\n"
            "    database = %s\n"
            "    schemas = %s/schemas\n"
            "%s"
            "security\n"
            "%s"
            "agencies\n"
            "%s",
            bp->endpoint, bp->database, getenv("MLG_SOURCE_DIR"),
            broker_extra ? broker_extra : "",
            brokerproc_security ? brokerproc_security : "    curve = 0\n", agencies);
    fclose(f);
    return 0;
}

int
brokerproc_wait_log(brokerproc_t *bp, const char *text, int timeout_ms)
{
    return tool_wait_text(bp->log, text, 0, timeout_ms);
}

int
brokerproc_start(brokerproc_t *bp)
{
    /* a new log each start, so waits see this run only */
    char old[320];
    snprintf(old, sizeof(old), "%s.%d", bp->log, (int)time(NULL));
    rename(bp->log, old);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        FILE *log = freopen(bp->log, "a", stderr);
        (void)log;
        char cfg[300];
        snprintf(cfg, sizeof(cfg), "%s/maillage.cfg", bp->dir);
        const char *bin = getenv("MLG_BROKER_BIN");
        execl(bin, bin, "--config", cfg, (char *)NULL);
        _exit(127);
    }
    bp->pid = pid;
    return brokerproc_wait_log(bp, "database available", 20000);
}

int
brokerproc_stop(brokerproc_t *bp, int sig)
{
    if (bp->pid <= 0)
        return -1;
    kill(bp->pid, sig);
    int status = 0;
    waitpid(bp->pid, &status, 0);
    bp->pid = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void
brokerproc_cleanup(brokerproc_t *bp)
{
    if (bp->pid > 0)
        brokerproc_stop(bp, SIGKILL);
    if (bp->dir[0]) {
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", bp->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", bp->dir);
    }
}

PGconn *
brokerproc_db(const brokerproc_t *bp)
{
    PGconn *conn = PQconnectdb(bp->conninfo);
    if (PQstatus(conn) != CONNECTION_OK)
        fprintf(stderr, "%s", PQerrorMessage(conn));
    return conn;
}

long
brokerproc_scalar(PGconn *conn, const char *sql)
{
    PGresult *res = PQexec(conn, sql);
    long v = -1;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0)
        v = atol(PQgetvalue(res, 0, 0));
    else if (PQresultStatus(res) != PGRES_TUPLES_OK)
        fprintf(stderr, "%s: %s", sql, PQerrorMessage(conn));
    PQclear(res);
    return v;
}

mlg_client_t *
brokerproc_client(const brokerproc_t *bp, const char *agency, uint64_t credit)
{
    mlg_error_t err;
    mlg_client_t *c = mlg_client_new(bp->endpoint, agency, "e2e", credit, 5000, &err);
    if (!c)
        fprintf(stderr, "could not join as %s: %s\n", agency, err.reason);
    return c;
}

void
brokerproc_new_id(char id[37])
{
    zuuid_t *u = zuuid_new();
    const char *s = zuuid_str_canonical(u);
    for (int i = 0; i < 36; i++)
        id[i] = (char)((s[i] >= 'A' && s[i] <= 'F') ? s[i] + 32 : s[i]);
    id[36] = '\0';
    zuuid_destroy(&u);
}

int
brokerproc_rewrite(brokerproc_t *bp, const char *broker_extra, const char *agencies)
{
    char url[512], conninfo[2048];
    snprintf(url, sizeof(url), "%s", bp->database);
    snprintf(conninfo, sizeof(conninfo), "%s", bp->conninfo);
    return s_write_config(bp, url, conninfo, broker_extra, agencies);
}

mlg_msg_t *
brokerproc_answer(mlg_client_t *c, int timeout_ms)
{
    for (;;) {
        mlg_msg_t *a = mlg_client_recv(c, timeout_ms);
        if (!a || a->op == MLG_OP_CONFIRM || a->op == MLG_OP_REJECT)
            return a;
        mlg_msg_destroy(&a);
    }
}
