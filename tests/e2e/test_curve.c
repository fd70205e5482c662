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

#include "e2e.h"
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

/* The broker's security section: CURVE, with its certificate of s_dir. */
static const char *
s_security(void)
{
    static char security[256];
    snprintf(security, sizeof(security),
             "    curve = 1\n    secret_cert = %s/broker_secret\n", s_dir);
    return security;
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
    static char agencies[1024], both[90];
    snprintf(both, sizeof(both), "%s %s", s_cd75_old, s_cd75_new);
    snprintf(agencies, sizeof(agencies), s_agency_fmt, s_ccas, both);
    brokerproc_security = s_security();
    int rc = e2e_broker_up(&s_bp, "e2e_curve", NULL, agencies);
    brokerproc_security = NULL;
    return rc;
}

static int
teardown(void **state)
{
    (void)state;
    int rc = e2e_broker_down(&s_bp);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", s_dir);
    if (system(cmd) != 0)
        return -1;
    return rc;
}

/* A client of `agency` with the certificate `cert` and `credit`; NULL
   when the broker does not welcome it within 2 s. */
static mlg_client_t *
join_with(const char *agency, const char *cert, uint64_t credit, mlg_error_t *err)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s_secret", s_dir, cert);
    return mlg_client_new_curve(s_bp.endpoint, agency, "e2e-curve", credit, 2000, path,
                                s_server_key, err);
}

static mlg_client_t *
join(const char *agency, const char *cert, mlg_error_t *err)
{
    return join_with(agency, cert, 1, err);
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
    char id[37];
    mlg_msg_t *m = e2e_alert(id, "ccas-paris-13", "P");
    mlg_msg_t *a = e2e_publish(c, m, 5000);
    mlg_msg_destroy(&m);
    assert_int_equal(a->op, MLG_OP_REJECT);
    assert_string_equal(a->code, "FORBIDDEN");
    mlg_msg_destroy(&a);
    PGconn *db = brokerproc_db(&s_bp);
    assert_int_equal(e2e_scalar(db, "select count(*) from messages where id = '%s'", id),
                     0);
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
    brokerproc_security = s_security();
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

/* An alert from c to `to`, confirmed. */
static void
s_alert(mlg_client_t *c, const char *to, char id[37])
{
    mlg_msg_t *m = e2e_alert(id, to, "P");
    e2e_confirmed(c, &m);
}

/* A client of ccas-paris-13 takes the routing id of a cd75 client whose
   connection dropped, with its own valid key: it must inherit nothing of
   cd75's session. Its maps get HELLO_REQUIRED and are not acted on (the
   cd75 delivery stays unacked, nothing is published as cd75), it receives
   no cd75 delivery, and the broker logs both keys. */

/* cd75 in session on a raw socket with the routing id `rid` takes the
   alert `first` from ccas, then its connection drops, the delivery
   unacked: its delivery id. */
static uint64_t
s_victim_takes(const char *rid, mlg_client_t *ccas, char first[37])
{
    zsock_t *victim = s_raw("cd75-new", rid);
    e2e_raw_hello(victim, "cd75", 2);
    s_alert(ccas, "cd75", first);
    mlg_msg_t *d = e2e_raw_recv(victim, 5000);
    assert_non_null(d);
    assert_int_equal(d->op, MLG_OP_DELIVER);
    assert_string_equal(d->id, first);
    uint64_t delivery = d->delivery;
    mlg_msg_destroy(&d);
    zsock_destroy(&victim);
    return delivery;
}

/* The same routing id, another agency's key; while the dropped
   connection still holds the routing id, libzmq does not read the new
   one's maps: connect again until it is answered. Its PING is answered
   HELLO_REQUIRED (not a PONG of cd75's session). */
static zsock_t *
s_thief_connects(const char *rid)
{
    zsock_t *thief = NULL;
    mlg_msg_t *a = NULL;
    mlg_msg_t *ping = mlg_msg_new(MLG_OP_PING);
    for (int i = 0; i < 50 && !a; i++) {
        zsock_destroy(&thief);
        thief = s_raw("ccas", rid);
        e2e_raw_send(thief, ping);
        a = e2e_raw_recv(thief, 200);
    }
    mlg_msg_destroy(&ping);
    assert_non_null(a);
    assert_int_equal(a->op, MLG_OP_ERROR); /* not a PONG of cd75's session */
    assert_string_equal(a->code, "HELLO_REQUIRED");
    mlg_msg_destroy(&a);
    return thief;
}

/* The thief's ACK of cd75's delivery and its PUBLISH are refused
   HELLO_REQUIRED, and nothing else comes to it; the PUBLISH's id in id. */
static void
s_thief_refused(zsock_t *thief, uint64_t delivery, char id[37])
{
    mlg_msg_t *ack = mlg_msg_new(MLG_OP_ACK);
    ack->delivery = delivery;
    mlg_msg_t *a = e2e_raw_ask(thief, ack, 5000);
    mlg_msg_destroy(&ack);
    assert_int_equal(a->op, MLG_OP_ERROR); /* not a DELIVER */
    assert_string_equal(a->code, "HELLO_REQUIRED");
    mlg_msg_destroy(&a);
    mlg_msg_t *pub = e2e_alert(id, "ccas-paris-13", "P");
    a = e2e_raw_ask(thief, pub, 5000);
    mlg_msg_destroy(&pub);
    assert_int_equal(a->op, MLG_OP_REJECT);
    assert_string_equal(a->code, "HELLO_REQUIRED");
    mlg_msg_destroy(&a);
    assert_null(e2e_raw_recv(thief, 200));
}

/* cd75's own client gets both: the first again, the second for the
   first time (it was never sent to the routing id's new holder); both
   ACKs stored before the client goes (it does not linger), so the next
   cd75 session finds nothing of this test's. */
static void
s_cd75_gets_both(const char *first, const char *second)
{
    mlg_error_t err;
    mlg_client_t *cd75 = join_with("cd75", "cd75-new", 5, &err);
    assert_non_null(cd75);
    int got = 0;
    for (int i = 0; i < 2; i++) {
        mlg_msg_t *d = e2e_expect(cd75, MLG_OP_DELIVER, 5000);
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
    PGconn *db = brokerproc_db(&s_bp);
    assert_int_equal(
        e2e_wait_scalar(db, 2, 5000,
                        "select count(*) from deliveries d join messages m on m.id ="
                        " d.message_id where d.recipient = 'cd75' and d.state = 'acked'"
                        " and m.id in ('%s', '%s')",
                        first, second),
        2);
    PQfinish(db);
    mlg_client_destroy(&cd75);
}

static void
test_routing_id_taken_by_another_key(void **state)
{
    (void)state;
    const char *rid = "cd75-desk-1";
    mlg_error_t err;
    mlg_client_t *ccas = join("ccas-paris-13", "ccas", &err);
    assert_non_null(ccas);
    char first[37], second[37], id[37];
    uint64_t delivery = s_victim_takes(rid, ccas, first);
    zsock_t *thief = s_thief_connects(rid);
    /* the next cd75 event does not reach it */
    s_alert(ccas, "cd75", second);
    /* nor does its ACK settle cd75's delivery, or its PUBLISH go out as cd75 */
    s_thief_refused(thief, delivery, id);
    zsock_destroy(&thief);
    char line[256];
    snprintf(line, sizeof(line), "key %s) used by another connection (key %s)",
             s_cd75_new, s_ccas);
    assert_int_equal(brokerproc_wait_log(&s_bp, line, 3000), 0);
    PGconn *db = brokerproc_db(&s_bp);
    assert_int_equal(e2e_scalar(db,
                                "select count(*) from deliveries where id = %llu"
                                " and state = 'acked'",
                                (unsigned long long)delivery),
                     0);
    assert_int_equal(e2e_scalar(db, "select count(*) from messages where id = '%s'", id),
                     0);
    PQfinish(db);
    s_cd75_gets_both(first, second);
    mlg_client_destroy(&ccas);
}

/* The adapter host under CURVE: its configuration names its certificate
   and the broker's key; a file dropped in its in/ reaches a client of
   the addressee, and an adapter with an unknown key never joins. */

/* An adapter of ccas-paris-13 (the files plugin, its folder drop-NAME)
   with the certificate `name`, started: its pid. */
static pid_t
s_curve_adapter(const char *name)
{
    char cfg[256], log[256];
    snprintf(cfg, sizeof(cfg), "%s/adapter-%s.cfg", s_dir, name);
    FILE *f = fopen(cfg, "w");
    assert_non_null(f);
    fprintf(f,
            "adapter\n    agency = ccas-paris-13\n    endpoint = %s\n"
            "    cert = %s_secret\n    server_key = \"%s\"\n    poll_ms = 50\n"
            "plugin\n    dir = drop-%s\n",
            s_bp.endpoint, name, s_server_key, name);
    fclose(f);
    snprintf(log, sizeof(log), "%s/adapter-%s.log", s_dir, name);
    return e2e_adapter_spawn("files", cfg, log, false);
}

/* An alert to cd75, its id in id, dropped in the ccas adapter's in/
   once the adapter has made it. */
static void
s_drop_alert(char id[37])
{
    char in[256], path[300];
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
}

/* The next DELIVER to cd75, from ccas-paris-13, within 10 s; acked. Its
   id must be `id` when one is given. */
static void
s_cd75_takes(mlg_client_t *cd75, const char *id)
{
    mlg_msg_t *d = e2e_next_deliver(cd75, 10000);
    assert_non_null(d);
    if (id)
        assert_string_equal(d->id, id);
    assert_string_equal(d->from, "ccas-paris-13");
    mlg_client_ack(cd75, d->delivery);
    mlg_msg_destroy(&d);
}

/* Stops both adapters (each exits 0); the stranger's log says it could
   not join, and never that it joined. */
static void
s_stranger_never_joined(pid_t pids[2])
{
    for (int i = 0; i < 2; i++) {
        kill(pids[i], SIGTERM);
        int status = 0;
        waitpid(pids[i], &status, 0);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    char log[256];
    snprintf(log, sizeof(log), "%s/adapter-stranger.log", s_dir);
    FILE *f = fopen(log, "r");
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

static void
test_adapter_with_curve(void **state)
{
    (void)state;
    pid_t pids[2];
    pids[0] = s_curve_adapter("ccas");
    pids[1] = s_curve_adapter("stranger");
    mlg_error_t err;
    mlg_client_t *cd75 = join_with("cd75", "cd75-new", 5, &err);
    assert_non_null(cd75);
    char id[37];
    s_drop_alert(id);
    s_cd75_takes(cd75, id);
    /* the CLI's publish over CURVE: its certificate and the broker's key */
    assert_int_equal(
        e2e_cli(&s_bp, NULL,
                "publish --as ccas-paris-13 --endpoint %s --cert %s/ccas_secret"
                " --server-key '%s' --type child.protection.alert --version 1 --to cd75"
                " --subject P --purpose protection --body-json"
                " '{\"alert_id\": \"%s\", \"concern\": \"c\", \"urgency\": \"urgent\"}'",
                s_bp.endpoint, s_dir, s_server_key, id),
        0);
    s_cd75_takes(cd75, NULL);
    /* and with a key the broker does not know, no answer: exit 2 */
    char *out = NULL;
    assert_int_equal(
        e2e_cli(&s_bp, &out,
                "publish --as ccas-paris-13 --endpoint %s --cert %s/stranger_secret"
                " --server-key '%s' --type child.protection.alert --version 1 --to cd75"
                " --subject P --purpose protection --body-json '{}'",
                s_bp.endpoint, s_dir, s_server_key),
        2);
    free(out);
    mlg_client_destroy(&cd75);
    /* the stranger's adapter was never welcomed */
    s_stranger_never_joined(pids);
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
