/*  e2e.c: the end-to-end tests' common steps (see e2e.h). Called from
    the tests of tests/e2e/, inside cmocka tests: a step that checks
    something fails the test that called it. Runs nothing of its own
    beyond the programs it is asked to (the CLI, an adapter); the broker
    process is brokerproc.c's. */

#include <setjmp.h>
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

#include "e2e.h"
#include "maillage/codec.h"
#include "maillage/json.h"

/* ---- the broker ------------------------------------------------------- */

void
e2e_show_log(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "---- %s: no log\n", path);
        return;
    }
    char *text = calloc(1, 1 << 20);
    size_t n = text ? fread(text, 1, (1 << 20) - 1, f) : 0;
    fclose(f);
    if (text)
        fprintf(stderr, "---- %s (last part)\n%s\n", path,
                n > 4000 ? text + n - 4000 : text);
    free(text);
}

int
e2e_broker_start(brokerproc_t *bp)
{
    if (brokerproc_start(bp) == 0)
        return 0;
    fprintf(stderr, "the broker did not start\n");
    e2e_show_log(bp->log);
    return -1;
}

int
e2e_broker_up(brokerproc_t *bp, const char *dbname, const char *broker_extra,
              const char *agencies)
{
    if (brokerproc_init(bp, dbname, broker_extra, agencies) != 0) {
        fprintf(stderr, "could not make the database %s or the broker's folder\n",
                dbname);
        return -1;
    }
    return e2e_broker_start(bp);
}

int
e2e_broker_up_db(brokerproc_t *bp, PGconn **db, const char *dbname,
                 const char *broker_extra, const char *agencies)
{
    *db = NULL;
    if (e2e_broker_up(bp, dbname, broker_extra, agencies) != 0)
        return -1;
    *db = brokerproc_db(bp);
    return PQstatus(*db) == CONNECTION_OK ? 0 : -1;
}

int
e2e_broker_down_db(brokerproc_t *bp, PGconn **db)
{
    PQfinish(*db);
    *db = NULL;
    return e2e_broker_down(bp);
}

int
e2e_broker_down(brokerproc_t *bp)
{
    int rc = brokerproc_stop(bp, SIGTERM);
    if (rc != 0) {
        fprintf(stderr, "the broker exited with %d\n", rc);
        e2e_show_log(bp->log);
    }
    brokerproc_cleanup(bp);
    return rc == 0 ? 0 : -1;
}

/* ---- clients and messages --------------------------------------------- */

mlg_client_t *
e2e_client(const brokerproc_t *bp, const char *agency, uint64_t credit)
{
    mlg_client_t *c = brokerproc_client(bp, agency, credit);
    assert_non_null(c);
    return c;
}

mlg_msg_t *
e2e_msg(char id[37], const char *fmt, ...)
{
    brokerproc_new_id(id);
    va_list ap;
    va_start(ap, fmt);
    char *json = zsys_vprintf(fmt, ap); /* a text of any length */
    va_end(ap);
    assert_non_null(json);
    mlg_msg_t *m = NULL;
    mlg_error_t err;
    if (mlg_publish_from_json(json, strlen(json), &m, &err) != MLG_OK)
        print_error("%s: %s\n", json, err.reason);
    zstr_free(&json);
    assert_non_null(m);
    return m;
}

mlg_msg_t *
e2e_alert(char id[37], const char *to, const char *subject)
{
    return e2e_msg(
        id,
        "{\"id\": \"%s\", \"type\": \"child.protection.alert\", \"version\": 1,"
        " \"to\": [\"%s\"], \"subject\": \"%s\", \"purpose\": \"protection\","
        " \"body\": {\"alert_id\": \"0d3e8a52-7c1b-4f6e-8a9d-2b4c6e8f0a1b\","
        " \"concern\": \"c\", \"urgency\": \"urgent\"}}",
        id, to, subject);
}

mlg_msg_t *
e2e_capacity(char id[37], const char *to, int places)
{
    char to_member[128] = "";
    if (to)
        snprintf(to_member, sizeof(to_member), " \"to\": [\"%s\"],", to);
    return e2e_msg(
        id,
        "{\"id\": \"%s\", \"type\": \"service.capacity.changed\", \"version\": 1,"
        "%s \"body\": {\"service_id\": \"s\", \"service\": \"nursing-home\","
        " \"places_total\": 10, \"places_available\": %d}}",
        id, to_member, places);
}

mlg_msg_t *
e2e_publish(mlg_client_t *c, const mlg_msg_t *m, int timeout_ms)
{
    assert_int_equal(mlg_client_send(c, m), MLG_OK);
    mlg_msg_t *a = brokerproc_answer(c, timeout_ms);
    if (!a)
        print_error("no answer to %s within %d ms\n", m->id, timeout_ms);
    assert_non_null(a);
    return a;
}

uint64_t
e2e_confirmed(mlg_client_t *c, mlg_msg_t **m_p)
{
    mlg_msg_t *a = e2e_publish(c, *m_p, 10000);
    if (a->op != MLG_OP_CONFIRM)
        print_error("%s: %s %s %s\n", (*m_p)->id, mlg_op_name(a->op), a->code, a->reason);
    assert_int_equal(a->op, MLG_OP_CONFIRM);
    assert_string_equal(a->id, (*m_p)->id);
    uint64_t seq = a->seq;
    mlg_msg_destroy(&a);
    mlg_msg_destroy(m_p);
    return seq;
}

mlg_msg_t *
e2e_expect(mlg_client_t *c, mlg_op_t op, int timeout_ms)
{
    mlg_msg_t *m = mlg_client_recv(c, timeout_ms);
    if (!m)
        print_error("expected %s, got nothing\n", mlg_op_name(op));
    assert_non_null(m);
    if (m->op != op)
        print_error("expected %s, got %s %s %s\n", mlg_op_name(op), mlg_op_name(m->op),
                    m->code, m->reason);
    assert_int_equal(m->op, op);
    return m;
}

mlg_msg_t *
e2e_next_deliver(mlg_client_t *c, int timeout_ms)
{
    int64_t deadline = zclock_mono() + timeout_ms;
    for (;;) {
        int64_t left = deadline - zclock_mono();
        mlg_msg_t *m = mlg_client_recv(c, left > 0 ? (int)left : 0);
        if (!m || m->op == MLG_OP_DELIVER)
            return m;
        mlg_msg_destroy(&m);
    }
}

/* ---- raw frames on a DEALER ------------------------------------------- */

zsock_t *
e2e_raw(const brokerproc_t *bp)
{
    zsock_t *d = zsock_new(ZMQ_DEALER);
    assert_non_null(d);
    zsock_set_linger(d, 0);
    assert_int_equal(zsock_connect(d, "%s", bp->endpoint), 0);
    return d;
}

void
e2e_raw_send(zsock_t *d, const mlg_msg_t *m)
{
    uint8_t *data;
    size_t size;
    assert_int_equal(mlg_msg_encode(m, &data, &size), MLG_OK);
    zframe_t *f = zframe_new(data, size);
    free(data);
    assert_int_equal(zframe_send(&f, d, 0), 0);
}

mlg_msg_t *
e2e_raw_recv(zsock_t *d, int timeout_ms)
{
    zsock_set_rcvtimeo(d, timeout_ms);
    zframe_t *f = zframe_recv(d);
    if (!f)
        return NULL;
    mlg_msg_t *m = NULL;
    mlg_error_t err;
    assert_int_equal(mlg_msg_decode(zframe_data(f), zframe_size(f), &m, &err), MLG_OK);
    zframe_destroy(&f);
    return m;
}

/* The answer that must come within timeout_ms. */
static mlg_msg_t *
s_raw_answer(zsock_t *d, int timeout_ms)
{
    mlg_msg_t *m = e2e_raw_recv(d, timeout_ms);
    if (!m)
        print_error("no answer within %d ms\n", timeout_ms);
    assert_non_null(m);
    return m;
}

mlg_msg_t *
e2e_raw_exchange(zsock_t *d, const void *data, size_t size, int timeout_ms)
{
    zframe_t *f = zframe_new(data, size);
    assert_int_equal(zframe_send(&f, d, 0), 0);
    return s_raw_answer(d, timeout_ms);
}

mlg_msg_t *
e2e_raw_ask(zsock_t *d, const mlg_msg_t *m, int timeout_ms)
{
    e2e_raw_send(d, m);
    return s_raw_answer(d, timeout_ms);
}

void
e2e_raw_hello(zsock_t *d, const char *agency, uint64_t credit)
{
    mlg_msg_t *hello = mlg_msg_new(MLG_OP_HELLO);
    snprintf(hello->agency, sizeof(hello->agency), "%s", agency);
    hello->credit = credit;
    mlg_msg_t *w = e2e_raw_ask(d, hello, 10000);
    mlg_msg_destroy(&hello);
    if (w->op != MLG_OP_WELCOME)
        print_error("HELLO as %s: %s %s %s\n", agency, mlg_op_name(w->op), w->code,
                    w->reason);
    assert_int_equal(w->op, MLG_OP_WELCOME);
    mlg_msg_destroy(&w);
}

/* ---- the broker's database -------------------------------------------- */

static long
s_vscalar(PGconn *db, const char *fmt, va_list ap)
{
    char *sql = zsys_vprintf(fmt, ap);
    assert_non_null(sql);
    long v = brokerproc_scalar(db, sql);
    zstr_free(&sql);
    return v;
}

long
e2e_scalar(PGconn *db, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    long v = s_vscalar(db, fmt, ap);
    va_end(ap);
    return v;
}

long
e2e_wait_scalar(PGconn *db, long want, int timeout_ms, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *sql = zsys_vprintf(fmt, ap);
    va_end(ap);
    assert_non_null(sql);
    int64_t deadline = zclock_mono() + timeout_ms;
    long v;
    while ((v = brokerproc_scalar(db, sql)) != want && zclock_mono() < deadline)
        zclock_sleep(50);
    zstr_free(&sql);
    return v;
}

/* ---- the other programs ----------------------------------------------- */

static int
s_vcli(const char *database, const char *dir, char **out, const char *fmt, va_list ap)
{
    char *args = zsys_vprintf(fmt, ap); /* arguments of any length */
    assert_non_null(args);
    char *cmd = out ? zsys_sprintf("%s --database '%s' %s >%s/cli.out 2>%s/cli.err",
                                   getenv("MLG_CLI_BIN"), database, args, dir, dir)
                    : zsys_sprintf("%s --database '%s' %s >/dev/null",
                                   getenv("MLG_CLI_BIN"), database, args);
    assert_non_null(cmd);
    int status = system(cmd);
    zstr_free(&cmd);
    zstr_free(&args);
    if (out) {
        char path[600];
        snprintf(path, sizeof(path), "%s/cli.out", dir);
        *out = calloc(1, 1 << 20);
        assert_non_null(*out);
        FILE *f = fopen(path, "r");
        if (f) {
            size_t n = fread(*out, 1, (1 << 20) - 1, f);
            (*out)[n] = '\0';
            fclose(f);
        }
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int
e2e_cli(const brokerproc_t *bp, char **out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = s_vcli(bp->database, bp->dir, out, fmt, ap);
    va_end(ap);
    return rc;
}

int
e2e_cli_on(const char *database, const char *dir, char **out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = s_vcli(database, dir, out, fmt, ap);
    va_end(ap);
    return rc;
}

int
e2e_verify_chain(const brokerproc_t *bp)
{
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "%s --database '%s' verify >%s/verify.out 2>&1",
             getenv("MLG_CLI_BIN"), bp->database, bp->dir);
    int status = system(cmd);
    int rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (rc != 0) {
        snprintf(cmd, sizeof(cmd), "cat %s/verify.out >&2", bp->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "(no output)\n");
    }
    return rc;
}

pid_t
e2e_adapter_spawn(const char *plugin, const char *cfg, const char *log, bool term_pending)
{
    /* a SIGTERM sent before the exec must not meet this process's handlers
       (czmq's would swallow it): blocked across the fork, and the child
       goes back to the default action before it lets it through */
    sigset_t term, old;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    sigaddset(&term, SIGINT);
    sigprocmask(SIG_BLOCK, &term, &old);
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        if (term_pending)
            raise(SIGTERM); /* blocked: pending across the exec */
        else
            sigprocmask(SIG_SETMASK, &old, NULL);
        FILE *f = freopen(log, "a", stderr);
        (void)f;
        const char *bin = getenv("MLG_ADAPTER_BIN");
        execl(bin, bin, "--plugin", plugin, "--config", cfg, (char *)NULL);
        _exit(127);
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    assert_true(pid >= 0);
    return pid;
}
