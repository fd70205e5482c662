/*  test_curve.c: the broker under CurveZMQ (security/curve = 1).

    Certificates are made here with czmq's zcert. A registered key gets
    WELCOME; an unknown key, or no CURVE at all, gets nothing and the
    broker logs the refusal; a key of one agency claiming another is
    FORBIDDEN; an agency may hold two keys while it rotates them. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <czmq.h>

#include "brokerproc.h"
#include "maillage/client.h"
#include "maillage/json.h"

static brokerproc_t s_bp;
static char s_dir[64];
static char s_server_key[41];
static char s_unknown_key[41];
static char s_ccas[41], s_cd75_old[41], s_cd75_new[41];
static const char *s_agency_fmt = "    ccas-paris-13\n        name = \"CCAS\"\n"
                                  "        public_key = \"%s\"\n"
                                  "        publish = \"child.protection.alert\"\n"
                                  "    cd75\n        name = \"Departement\"\n"
                                  "        public_key = \"%s\"\n";

/* Makes a certificate pair NAME and NAME_secret in s_dir; its public key
   in `pub` (41 bytes). */
static void
s_cert(const char *name, char *pub)
{
    zcert_t *c = zcert_new();
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", s_dir, name);
    zcert_save(c, path);
    snprintf(pub, 41, "%s", zcert_public_txt(c));
    zcert_destroy(&c);
}

static int
setup(void **state)
{
    (void)state;
    snprintf(s_dir, sizeof(s_dir), "/tmp/maillage-curve-XXXXXX");
    if (!mkdtemp(s_dir))
        return -1;
    s_cert("broker", s_server_key);
    s_cert("ccas", s_ccas);
    s_cert("cd75-old", s_cd75_old);
    s_cert("cd75-new", s_cd75_new);
    s_cert("stranger", s_unknown_key);
    static char security[256], agencies[1024], both[90];
    snprintf(security, sizeof(security),
             "    curve = 1\n    secret_cert = %s/broker_secret\n", s_dir);
    snprintf(both, sizeof(both), "%s %s", s_cd75_old, s_cd75_new);
    snprintf(agencies, sizeof(agencies), s_agency_fmt, s_ccas, both);
    brokerproc_security = security;
    int rc =
        brokerproc_init(&s_bp, "e2e_curve", NULL, agencies) || brokerproc_start(&s_bp);
    brokerproc_security = NULL;
    return rc ? -1 : 0;
}

static int
teardown(void **state)
{
    (void)state;
    int rc = brokerproc_stop(&s_bp, SIGTERM);
    brokerproc_cleanup(&s_bp);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", s_dir);
    if (system(cmd) != 0)
        return -1;
    return rc == 0 ? 0 : -1;
}

static mlg_client_t *
join(const char *agency, const char *cert, mlg_error_t *err)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s_secret", s_dir, cert);
    return mlg_client_new_curve(s_bp.endpoint, agency, "e2e-curve", 1, 2000, path,
                                s_server_key, err);
}

static void
test_registered_key_welcome(void **state)
{
    (void)state;
    mlg_error_t err;
    mlg_client_t *c = join("ccas-paris-13", "ccas", &err);
    if (!c)
        print_error("%s\n", err.reason);
    assert_non_null(c);
    mlg_client_destroy(&c);
}

static void
test_unknown_key_and_plain_refused(void **state)
{
    (void)state;
    mlg_error_t err;
    mlg_client_t *c = join("ccas-paris-13", "stranger", &err);
    assert_null(c);
    assert_int_equal(err.rc, MLG_UNAVAILABLE); /* no WELCOME: nothing at all */
    char line[128];
    snprintf(line, sizeof(line), "refused CURVE key %s", s_unknown_key);
    assert_int_equal(brokerproc_wait_log(&s_bp, line, 3000), 0);
    c = mlg_client_new(s_bp.endpoint, "ccas-paris-13", "plain", 0, 1000, &err);
    assert_null(c);
}

static void
test_key_of_another_agency_forbidden(void **state)
{
    (void)state;
    mlg_error_t err;
    mlg_client_t *c = join("cd75", "ccas", &err);
    assert_null(c);
    assert_int_equal(err.rc, MLG_FORBIDDEN);
    assert_non_null(strstr(err.reason, "belongs to 'ccas-paris-13', not to 'cd75'"));
}

static void
test_two_keys_while_rotating(void **state)
{
    (void)state;
    mlg_error_t err;
    mlg_client_t *a = join("cd75", "cd75-old", &err);
    mlg_client_t *b = join("cd75", "cd75-new", &err);
    assert_non_null(a);
    assert_non_null(b);
    mlg_client_destroy(&a);
    mlg_client_destroy(&b);
}

static void
test_acl_under_curve(void **state)
{
    (void)state;
    mlg_error_t err;
    mlg_client_t *c = join("cd75", "cd75-new", &err);
    assert_non_null(c);
    char id[37], json[512];
    brokerproc_new_id(id);
    snprintf(
        json, sizeof(json),
        "{\"id\": \"%s\", \"type\": \"child.protection.alert\", \"version\": 1,"
        " \"to\": [\"ccas-paris-13\"], \"subject\": \"P\", \"purpose\": \"protection\","
        " \"body\": {\"alert_id\": \"%s\", \"concern\": \"c\", \"urgency\": \"urgent\"}}",
        id, id);
    mlg_msg_t *m = NULL;
    assert_int_equal(mlg_publish_from_json(json, strlen(json), &m, NULL), MLG_OK);
    mlg_client_send(c, m);
    mlg_msg_destroy(&m);
    mlg_msg_t *a = mlg_client_recv(c, 5000);
    assert_non_null(a);
    assert_int_equal(a->op, MLG_OP_REJECT);
    assert_string_equal(a->code, "FORBIDDEN");
    mlg_msg_destroy(&a);
    PGconn *db = brokerproc_db(&s_bp);
    char sql[128];
    snprintf(sql, sizeof(sql), "select count(*) from messages where id = '%s'", id);
    assert_int_equal(brokerproc_scalar(db, sql), 0);
    PQfinish(db);
    mlg_client_destroy(&c);
}

static void
test_reload_removes_a_key(void **state)
{
    (void)state;
    mlg_error_t err;
    mlg_client_t *old = join("cd75", "cd75-old", &err);
    mlg_client_t *kept = join("cd75", "cd75-new", &err);
    mlg_client_t *other = join("ccas-paris-13", "ccas", &err);
    assert_non_null(old);
    assert_non_null(kept);
    assert_non_null(other);
    char agencies[1024];
    snprintf(agencies, sizeof(agencies), s_agency_fmt, s_ccas, s_cd75_new);
    char security[256];
    snprintf(security, sizeof(security),
             "    curve = 1\n    secret_cert = %s/broker_secret\n", s_dir);
    brokerproc_security = security;
    assert_int_equal(brokerproc_rewrite(&s_bp, NULL, agencies), 0);
    brokerproc_security = NULL;
    kill(s_bp.pid, SIGHUP);
    assert_int_equal(brokerproc_wait_log(&s_bp, "reloaded", 5000), 0);
    /* the removed key's session is no longer served... */
    mlg_msg_t *ping = mlg_msg_new(MLG_OP_PING);
    mlg_client_send(old, ping);
    mlg_msg_t *a = mlg_client_recv(old, 3000);
    assert_non_null(a);
    assert_int_equal(a->op, MLG_OP_ERROR);
    assert_string_equal(a->code, "HELLO_REQUIRED");
    mlg_msg_destroy(&a);
    mlg_msg_t *hello = mlg_msg_new(MLG_OP_HELLO);
    strcpy(hello->agency, "cd75");
    mlg_client_send(old, hello);
    a = mlg_client_recv(old, 3000);
    assert_non_null(a);
    assert_int_equal(a->op, MLG_OP_ERROR);
    assert_string_equal(a->code, "FORBIDDEN");
    assert_non_null(strstr(a->reason, "no longer registered"));
    mlg_msg_destroy(&a);
    mlg_msg_destroy(&hello);
    /* ...a new connection with it is refused... */
    mlg_client_t *again = join("cd75", "cd75-old", &err);
    assert_null(again);
    /* ...and the others carry on */
    mlg_client_send(kept, ping);
    mlg_client_send(other, ping);
    assert_null(mlg_client_recv(kept, 300)); /* a PONG, swallowed: no ERROR */
    assert_null(mlg_client_recv(other, 300));
    mlg_msg_destroy(&ping);
    mlg_client_destroy(&old);
    mlg_client_destroy(&kept);
    mlg_client_destroy(&other);
}

/* A DEALER under CURVE with certificate `cert` and the routing id `rid`,
   as any client may choose one (ZMQ_ROUTING_ID). */
static zsock_t *
s_raw(const char *cert, const char *rid)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s_secret", s_dir, cert);
    zcert_t *c = zcert_load(path);
    assert_non_null(c);
    zsock_t *d = zsock_new(ZMQ_DEALER);
    zcert_apply(c, d);
    zcert_destroy(&c);
    zsock_set_curve_serverkey(d, s_server_key);
    zsock_set_identity(d, rid); /* ZMQ_ROUTING_ID */
    zsock_set_linger(d, 0);
    assert_int_equal(zsock_connect(d, "%s", s_bp.endpoint), 0);
    return d;
}

static void
s_raw_send(zsock_t *d, const mlg_msg_t *m)
{
    uint8_t *data;
    size_t size;
    assert_int_equal(mlg_msg_encode(m, &data, &size), MLG_OK);
    zframe_t *f = zframe_new(data, size);
    free(data);
    assert_int_equal(zframe_send(&f, d, 0), 0);
}

/* The next map on a raw socket, or NULL after timeout_ms. */
static mlg_msg_t *
s_raw_recv(zsock_t *d, int timeout_ms)
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

static void
s_alert(mlg_client_t *c, const char *to, char id[37])
{
    char json[512];
    brokerproc_new_id(id);
    snprintf(
        json, sizeof(json),
        "{\"id\": \"%s\", \"type\": \"child.protection.alert\", \"version\": 1,"
        " \"to\": [\"%s\"], \"subject\": \"P\", \"purpose\": \"protection\","
        " \"body\": {\"alert_id\": \"%s\", \"concern\": \"c\", \"urgency\": \"urgent\"}}",
        id, to, id);
    mlg_msg_t *m = NULL;
    assert_int_equal(mlg_publish_from_json(json, strlen(json), &m, NULL), MLG_OK);
    assert_int_equal(mlg_client_send(c, m), MLG_OK);
    mlg_msg_destroy(&m);
    mlg_msg_t *a = brokerproc_answer(c, 5000);
    assert_non_null(a);
    assert_int_equal(a->op, MLG_OP_CONFIRM);
    mlg_msg_destroy(&a);
}

/* A client of ccas-paris-13 takes the routing id of a cd75 client whose
   connection dropped, with its own valid key: it must inherit nothing of
   cd75's session. Its maps get HELLO_REQUIRED and are not acted on (the
   cd75 delivery stays unacked, nothing is published as cd75), it receives
   no cd75 delivery, and the broker logs both keys. */
static void
test_routing_id_taken_by_another_key(void **state)
{
    (void)state;
    const char *rid = "cd75-desk-1";
    zsock_t *victim = s_raw("cd75-new", rid);
    mlg_msg_t *hello = mlg_msg_new(MLG_OP_HELLO);
    strcpy(hello->agency, "cd75");
    hello->credit = 2;
    s_raw_send(victim, hello);
    mlg_msg_destroy(&hello);
    mlg_msg_t *a = s_raw_recv(victim, 5000);
    assert_non_null(a);
    assert_int_equal(a->op, MLG_OP_WELCOME);
    mlg_msg_destroy(&a);
    mlg_error_t err;
    mlg_client_t *ccas = join("ccas-paris-13", "ccas", &err);
    assert_non_null(ccas);
    char first[37], second[37];
    s_alert(ccas, "cd75", first);
    mlg_msg_t *d = s_raw_recv(victim, 5000);
    assert_non_null(d);
    assert_int_equal(d->op, MLG_OP_DELIVER);
    assert_string_equal(d->id, first);
    uint64_t delivery = d->delivery;
    mlg_msg_destroy(&d);
    zsock_destroy(&victim);

    /* the same routing id, another agency's key; while the dropped
       connection still holds the routing id, libzmq does not read the new
       one's maps: connect again until it is answered */
    zsock_t *thief = NULL;
    mlg_msg_t *ping = mlg_msg_new(MLG_OP_PING);
    for (int i = 0; i < 50 && !a; i++) {
        zsock_destroy(&thief);
        thief = s_raw("ccas", rid);
        s_raw_send(thief, ping);
        a = s_raw_recv(thief, 200);
    }
    mlg_msg_destroy(&ping);
    assert_non_null(a);
    assert_int_equal(a->op, MLG_OP_ERROR); /* not a PONG of cd75's session */
    assert_string_equal(a->code, "HELLO_REQUIRED");
    mlg_msg_destroy(&a);
    /* the next cd75 event does not reach it */
    s_alert(ccas, "cd75", second);
    /* nor does its ACK settle cd75's delivery, or its PUBLISH go out as cd75 */
    mlg_msg_t *ack = mlg_msg_new(MLG_OP_ACK);
    ack->delivery = delivery;
    s_raw_send(thief, ack);
    mlg_msg_destroy(&ack);
    a = s_raw_recv(thief, 5000);
    assert_non_null(a);
    assert_int_equal(a->op, MLG_OP_ERROR); /* not a DELIVER */
    assert_string_equal(a->code, "HELLO_REQUIRED");
    mlg_msg_destroy(&a);
    char id[37], json[512];
    brokerproc_new_id(id);
    snprintf(json, sizeof(json),
             "{\"id\": \"%s\", \"type\": \"child.protection.alert\", \"version\": 1,"
             " \"to\": [\"ccas-paris-13\"], \"subject\": \"P\", \"purpose\": "
             "\"protection\", \"body\": {\"alert_id\": \"%s\", \"concern\": \"c\","
             " \"urgency\": \"urgent\"}}",
             id, id);
    mlg_msg_t *pub = NULL;
    assert_int_equal(mlg_publish_from_json(json, strlen(json), &pub, NULL), MLG_OK);
    s_raw_send(thief, pub);
    mlg_msg_destroy(&pub);
    a = s_raw_recv(thief, 5000);
    assert_non_null(a);
    assert_int_equal(a->op, MLG_OP_REJECT);
    assert_string_equal(a->code, "HELLO_REQUIRED");
    mlg_msg_destroy(&a);
    assert_null(s_raw_recv(thief, 200));
    zsock_destroy(&thief);
    char line[256];
    snprintf(line, sizeof(line), "key %s) used by another connection (key %s)",
             s_cd75_new, s_ccas);
    assert_int_equal(brokerproc_wait_log(&s_bp, line, 3000), 0);
    PGconn *db = brokerproc_db(&s_bp);
    char sql[320];
    snprintf(sql, sizeof(sql),
             "select count(*) from deliveries where id = %llu"
             " and state = 'acked'",
             (unsigned long long)delivery);
    assert_int_equal(brokerproc_scalar(db, sql), 0);
    snprintf(sql, sizeof(sql), "select count(*) from messages where id = '%s'", id);
    assert_int_equal(brokerproc_scalar(db, sql), 0);
    PQfinish(db);
    /* cd75's own client gets both: the first again, the second for the
       first time (it was never sent to the routing id's new holder) */
    char path[128];
    snprintf(path, sizeof(path), "%s/cd75-new_secret", s_dir);
    mlg_client_t *cd75 = mlg_client_new_curve(s_bp.endpoint, "cd75", "e2e-curve", 5, 2000,
                                              path, s_server_key, &err);
    assert_non_null(cd75);
    int got = 0;
    for (int i = 0; i < 2; i++) {
        d = mlg_client_recv(cd75, 5000);
        assert_non_null(d);
        assert_int_equal(d->op, MLG_OP_DELIVER);
        if (strcmp(d->id, first) == 0) {
            assert_int_equal(d->attempt, 2);
            got |= 1;
        }
        if (strcmp(d->id, second) == 0) {
            assert_int_equal(d->attempt, 1);
            got |= 2;
        }
        mlg_client_ack(cd75, d->delivery);
        mlg_msg_destroy(&d);
    }
    assert_int_equal(got, 3);
    /* both ACKs stored before the client goes (it does not linger), so
       the next cd75 session finds nothing of this test's */
    db = brokerproc_db(&s_bp);
    snprintf(sql, sizeof(sql),
             "select count(*) from deliveries d join messages m on m.id = d.message_id"
             " where d.recipient = 'cd75' and d.state = 'acked'"
             " and m.id in ('%s', '%s')",
             first, second);
    long acked = 0;
    for (int i = 0; i < 100 && (acked = brokerproc_scalar(db, sql)) != 2; i++)
        zclock_sleep(50);
    assert_int_equal(acked, 2);
    PQfinish(db);
    mlg_client_destroy(&cd75);
    mlg_client_destroy(&ccas);
}

/* The adapter host under CURVE: its configuration names its certificate
   and the broker's key; a file dropped in its in/ reaches a client of
   the addressee, and an adapter with an unknown key never joins. */
static void
test_adapter_with_curve(void **state)
{
    (void)state;
    char cfg[256], log[256], in[256], path[300];
    const char *names[] = {"ccas", "stranger"};
    pid_t pids[2];
    for (int i = 0; i < 2; i++) {
        snprintf(cfg, sizeof(cfg), "%s/adapter-%s.cfg", s_dir, names[i]);
        FILE *f = fopen(cfg, "w");
        assert_non_null(f);
        fprintf(f,
                "adapter\n    agency = ccas-paris-13\n    endpoint = %s\n"
                "    cert = %s_secret\n    server_key = \"%s\"\n    poll_ms = 50\n"
                "plugin\n    dir = drop-%s\n",
                s_bp.endpoint, names[i], s_server_key, names[i]);
        fclose(f);
        snprintf(log, sizeof(log), "%s/adapter-%s.log", s_dir, names[i]);
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            FILE *l = freopen(log, "w", stderr);
            (void)l;
            const char *bin = getenv("MLG_ADAPTER_BIN");
            execl(bin, bin, "--plugin", "files", "--config", cfg, (char *)NULL);
            _exit(127);
        }
    }
    mlg_error_t err;
    mlg_client_t *cd75 = NULL;
    char cd75_cert[128];
    snprintf(cd75_cert, sizeof(cd75_cert), "%s/cd75-new_secret", s_dir);
    cd75 = mlg_client_new_curve(s_bp.endpoint, "cd75", "e2e-curve", 5, 2000, cd75_cert,
                                s_server_key, &err);
    assert_non_null(cd75);

    char id[37];
    brokerproc_new_id(id);
    snprintf(in, sizeof(in), "%s/drop-ccas/in", s_dir);
    for (int i = 0; i < 200 && access(in, W_OK) != 0; i++)
        zclock_sleep(25);
    snprintf(path, sizeof(path), "%s/alert.json", in);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f,
            "{\"id\": \"%s\", \"type\": \"child.protection.alert\", \"version\": 1,"
            " \"to\": [\"cd75\"], \"subject\": \"P\", \"purpose\": \"protection\","
            " \"body\": {\"alert_id\": \"%s\", \"concern\": \"c\", \"urgency\": "
            "\"urgent\"}}",
            id, id);
    fclose(f);
    mlg_msg_t *d = NULL;
    for (int i = 0; i < 20 && !d; i++) {
        d = mlg_client_recv(cd75, 500);
        if (d && d->op != MLG_OP_DELIVER)
            mlg_msg_destroy(&d);
    }
    assert_non_null(d);
    assert_string_equal(d->id, id);
    assert_string_equal(d->from, "ccas-paris-13");
    mlg_client_ack(cd75, d->delivery);
    mlg_msg_destroy(&d);
    /* the CLI's publish over CURVE: its certificate and the broker's key */
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "%s publish --as ccas-paris-13 --endpoint %s --cert %s/ccas_secret"
             " --server-key '%s' --type child.protection.alert --version 1 --to cd75"
             " --subject P --purpose protection --body-json"
             " '{\"alert_id\": \"%s\", \"concern\": \"c\", \"urgency\": \"urgent\"}'"
             " >/dev/null",
             getenv("MLG_CLI_BIN"), s_bp.endpoint, s_dir, s_server_key, id);
    int rc = system(cmd);
    assert_true(WIFEXITED(rc) && WEXITSTATUS(rc) == 0);
    for (int i = 0; i < 20 && !d; i++) {
        d = mlg_client_recv(cd75, 500);
        if (d && d->op != MLG_OP_DELIVER)
            mlg_msg_destroy(&d);
    }
    assert_non_null(d);
    assert_string_equal(d->from, "ccas-paris-13");
    mlg_client_ack(cd75, d->delivery);
    mlg_msg_destroy(&d);
    /* and with a key the broker does not know, no answer: exit 2 */
    snprintf(cmd, sizeof(cmd),
             "%s publish --as ccas-paris-13 --endpoint %s --cert %s/stranger_secret"
             " --server-key '%s' --type child.protection.alert --version 1 --to cd75"
             " --subject P --purpose protection --body-json '{}' >/dev/null 2>&1",
             getenv("MLG_CLI_BIN"), s_bp.endpoint, s_dir, s_server_key);
    rc = system(cmd);
    assert_true(WIFEXITED(rc) && WEXITSTATUS(rc) == 2);
    mlg_client_destroy(&cd75);

    /* the stranger's adapter was never welcomed */
    snprintf(log, sizeof(log), "%s/adapter-stranger.log", s_dir);
    for (int i = 0; i < 2; i++) {
        kill(pids[i], SIGTERM);
        int status = 0;
        waitpid(pids[i], &status, 0);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    f = fopen(log, "r");
    assert_non_null(f);
    char line[1024];
    bool refused = false, joined = false;
    while (fgets(line, sizeof(line), f)) {
        refused |= strstr(line, "cannot join") != NULL;
        joined |= strstr(line, "joined") != NULL && strstr(line, "cannot") == NULL;
    }
    fclose(f);
    assert_true(refused);
    assert_false(joined);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registered_key_welcome),
        cmocka_unit_test(test_unknown_key_and_plain_refused),
        cmocka_unit_test(test_key_of_another_agency_forbidden),
        cmocka_unit_test(test_two_keys_while_rotating),
        cmocka_unit_test(test_acl_under_curve),
        cmocka_unit_test(test_adapter_with_curve),
        cmocka_unit_test(test_routing_id_taken_by_another_key),
        cmocka_unit_test(test_reload_removes_a_key),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
