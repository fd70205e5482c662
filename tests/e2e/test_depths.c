/*  test_depths.c: the queue depths of /metrics, /api/status and
    `maillage status` (issue 17, "Monitoring that does not grow with the
    backlog"), on the real broker and PostgreSQL.

    - The figures the broker keeps as it commits are the database's: at
      each step (publishes, an ACK, a NACK requeued, dead letters, an
      operator's replay, a consent revocation, a restart, a queue
      drained) both endpoints say what `select * from queue_depth` says:
      pending and dead exactly, the oldest pending age within half a
      second.
    - No request counts over the queues: while another session holds
      deliveries and messages locked (access exclusive, its transaction
      open), /healthz, /metrics, /api/status and `maillage status`
      answer, within the client's usual timeout, with the figures the
      locking session reads. Any of them reading the queues would wait
      for the lock instead. */

#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <czmq.h>
#include <jansson.h>

#include "e2e.h"
#include "toolutil.h"

static brokerproc_t s_bp;
static PGconn *s_db;
static char s_http[64];

static const char *s_agencies =
    "    ccas-evry\n"
    "        name = \"CCAS d'Evry\"\n"
    "        publish = \"situation.shared, consent.*, child.protection.alert\"\n"
    "    ehpad-evry\n"
    "        name = \"EHPAD d'Evry\"\n"
    "    cd91\n"
    "        name = \"Essonne\"\n";
#define S_NAGENCIES 3
#define S_CONSENT "dddddddd-0000-4000-8000-000000000001"
#define S_SUBJECT "P-17"

/* The deliveries of cd91 the steps settle, by what happens to them. */
static uint64_t s_acked, s_requeued, s_dead1, s_dead2;

/* ---- the figures, three ways -------------------------------------------- */

typedef struct {
    char agency[65];
    long pending, dead;
    double oldest;
} s_queue_t;

typedef struct {
    s_queue_t q[S_NAGENCIES];
    size_t n;
} s_figures_t;

/* The database's view, on `db` (the test's, or the locking session). */
static void
s_view(PGconn *db, s_figures_t *f)
{
    PGresult *res = PQexec(db, "select agency, pending, dead, oldest_pending_seconds "
                               "from queue_depth order by agency");
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(res), S_NAGENCIES);
    f->n = (size_t)PQntuples(res);
    for (size_t i = 0; i < f->n; i++) {
        s_queue_t *q = &f->q[i];
        snprintf(q->agency, sizeof(q->agency), "%s", PQgetvalue(res, (int)i, 0));
        q->pending = atol(PQgetvalue(res, (int)i, 1));
        q->dead = atol(PQgetvalue(res, (int)i, 2));
        q->oldest = atof(PQgetvalue(res, (int)i, 3));
    }
    PQclear(res);
}

/* GET path within the client's usual 5 s, which must answer 200. */
static char *
s_get(const char *path)
{
    int status = 0;
    char *body = NULL;
    if (tool_http_get(s_http, path, 5000, &status, &body) != 0)
        fail_msg("%s: no answer within 5 s", path);
    if (status != 200)
        fail_msg("%s: %d %s", path, status, body ? body : "");
    return body;
}

/* /api/status's figures of the agencies `want` names; false (and why)
   when it gives none for one of them. */
static bool
s_api(const s_figures_t *want, s_figures_t *got, char *why, size_t len)
{
    char *body = s_get("/api/status");
    json_t *doc = json_loads(body, 0, NULL);
    free(body);
    assert_non_null(doc);
    *got = *want;
    bool ok = true;
    for (size_t i = 0; i < want->n; i++) {
        json_t *a = NULL, *one;
        size_t k;
        json_array_foreach(json_object_get(doc, "agencies"), k, one)
        {
            if (strcmp(json_string_value(json_object_get(one, "id")), want->q[i].agency)
                == 0)
                a = one;
        }
        if (!a || !json_object_get(a, "pending")) {
            snprintf(why, len, "/api/status gives no queue for %s", want->q[i].agency);
            ok = false;
            break;
        }
        got->q[i].pending = (long)json_integer_value(json_object_get(a, "pending"));
        got->q[i].dead = (long)json_integer_value(json_object_get(a, "dead"));
        got->q[i].oldest =
            json_number_value(json_object_get(a, "oldest_pending_seconds"));
    }
    json_decref(doc);
    return ok;
}

/* A sample's value in the exposition text; false when it is not there. */
static bool
s_sample(const char *text, const char *name, double *value)
{
    size_t len = strlen(name);
    for (const char *line = text; line && *line;) {
        if (strncmp(line, name, len) == 0 && line[len] == ' ') {
            *value = strtod(line + len + 1, NULL);
            return true;
        }
        line = strchr(line, '\n');
        line = line ? line + 1 : NULL;
    }
    return false;
}

/* /metrics's figures, as s_api. */
static bool
s_metrics(const s_figures_t *want, s_figures_t *got, char *why, size_t len)
{
    char *text = s_get("/metrics");
    *got = *want;
    bool ok = true;
    for (size_t i = 0; ok && i < want->n; i++) {
        const char *a = want->q[i].agency;
        char pending[160], dead[160], oldest[160];
        snprintf(pending, sizeof(pending),
                 "maillage_queue_depth{agency=\"%s\",state=\"pending\"}", a);
        snprintf(dead, sizeof(dead), "maillage_queue_depth{agency=\"%s\",state=\"dead\"}",
                 a);
        snprintf(oldest, sizeof(oldest), "maillage_oldest_pending_seconds{agency=\"%s\"}",
                 a);
        double p = 0, d = 0, o = 0;
        ok = s_sample(text, pending, &p) && s_sample(text, dead, &d);
        if (ok && !s_sample(text, oldest, &o) && p > 0)
            ok = false; /* none pending: the series may be left out, as 0 */
        if (!ok)
            snprintf(why, len, "/metrics gives no queue for %s", a);
        got->q[i].pending = (long)p;
        got->q[i].dead = (long)d;
        got->q[i].oldest = o;
    }
    free(text);
    return ok;
}

/* Whether `got` says what `want` does; why not in `why`. */
static bool
s_same(const char *source, const s_figures_t *want, const s_figures_t *got, char *why,
       size_t len)
{
    for (size_t i = 0; i < want->n; i++) {
        const s_queue_t *w = &want->q[i], *g = &got->q[i];
        if (w->pending != g->pending || w->dead != g->dead
            || fabs(w->oldest - g->oldest) > 0.5) {
            snprintf(why, len,
                     "%s says %s has %ld pending, %ld dead, the oldest %.3f s old; "
                     "queue_depth says %ld, %ld, %.3f s",
                     source, w->agency, g->pending, g->dead, g->oldest, w->pending,
                     w->dead, w->oldest);
            return false;
        }
    }
    return true;
}

/* Both endpoints agree with the view on `db`, read just before. */
static bool
s_agree(PGconn *db, char *why, size_t len)
{
    s_figures_t want, api, metrics;
    s_view(db, &want);
    return s_api(&want, &api, why, len) && s_same("/api/status", &want, &api, why, len)
           && s_metrics(&want, &metrics, why, len)
           && s_same("/metrics", &want, &metrics, why, len);
}

/* Once the view says `agency` has `pending` and `dead` (the step's work
   committed), the endpoints agree with it within 10 s. */
static void
s_step(const char *step, const char *agency, long pending, long dead)
{
    long got = e2e_wait_scalar(s_db, 1, 10000,
                               "select count(*) from queue_depth where agency = '%s' and "
                               "pending = %ld and dead = %ld",
                               agency, pending, dead);
    if (got != 1)
        fail_msg("%s: queue_depth does not say %s has %ld pending, %ld dead", step,
                 agency, pending, dead);
    char why[512] = "";
    int64_t deadline = zclock_mono() + 10000;
    while (!s_agree(s_db, why, sizeof(why))) {
        if (zclock_mono() > deadline)
            fail_msg("%s: %s", step, why);
        zclock_sleep(100);
    }
}

/* ---- the broker and its events ----------------------------------------- */

static int
setup(void **state)
{
    (void)state;
    char extra[128];
    snprintf(s_http, sizeof(s_http), "127.0.0.1:%d", brokerproc_free_port());
    /* long heartbeats: the test's clients wait in its checks, not in
       their receive */
    snprintf(extra, sizeof(extra), "    http = %s\n    heartbeat_ms = 10000\n", s_http);
    return e2e_broker_up_db(&s_bp, &s_db, "e2e_depths", extra, s_agencies);
}

static int
teardown(void **state)
{
    (void)state;
    return e2e_broker_down_db(&s_bp, &s_db);
}

/* Publishes the envelope (JSON members after the id) from ccas-evry;
   it must be confirmed. */
static void
s_publish(mlg_client_t *c, const char *envelope)
{
    char id[37];
    mlg_msg_t *m = e2e_msg(id, "{\"id\": \"%s\", %s}", id, envelope);
    e2e_confirmed(c, &m);
}

static void
s_alert(mlg_client_t *c)
{
    char id[37];
    mlg_msg_t *m = e2e_alert(id, "cd91", S_SUBJECT);
    e2e_confirmed(c, &m);
}

static void
s_share(mlg_client_t *c)
{
    s_publish(c, "\"type\": \"situation.shared\", \"version\": 1, \"to\": "
                 "[\"ehpad-evry\"], \"subject\": \"" S_SUBJECT "\", \"purpose\": "
                 "\"coordination\", \"body\": {\"household\": {\"adults\": 1, "
                 "\"children\": 2}, \"housing\": \"temporary\"}");
}

/* The next n DELIVERs on c, their delivery ids in `ids`, in order. */
static void
s_take(mlg_client_t *c, uint64_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        mlg_msg_t *d = e2e_next_deliver(c, 10000);
        assert_non_null(d);
        ids[i] = d->delivery;
        mlg_msg_destroy(&d);
    }
}

/* ---- tests --------------------------------------------------------------- */

static void
test_depths_follow_the_queues(void **state)
{
    (void)state;
    s_step("at start", "cd91", 0, 0);
    /* publishes: four alerts for cd91 (offline), the first a second
       older; a consent and two shares for ehpad-evry (offline): its
       notice and the shares wait */
    mlg_client_t *ccas = e2e_client(&s_bp, "ccas-evry", 0);
    s_alert(ccas);
    zclock_sleep(1200);
    s_alert(ccas);
    s_alert(ccas);
    s_alert(ccas);
    s_publish(ccas,
              "\"type\": \"consent.granted\", \"version\": 1, \"subject\": \"" S_SUBJECT
              "\", \"body\": {\"consent_id\": \"" S_CONSENT "\", \"parties\": "
              "[\"ccas-evry\", \"ehpad-evry\"], \"purposes\": [\"coordination\"], "
              "\"categories\": [\"social\"], \"valid_from\": "
              "\"2020-01-01T00:00:00Z\", \"collected_by\": {\"name\": \"E. Martin\","
              " \"role\": \"AS\"}, \"method\": \"written\"}");
    s_share(ccas);
    s_share(ccas);
    s_step("published", "cd91", 4, 0);
    s_step("published", "ehpad-evry", 3, 0);

    /* cd91 takes its four; the oldest acked: the next oldest is a second
       younger */
    mlg_client_t *cd91 = e2e_client(&s_bp, "cd91", 4);
    uint64_t ids[4];
    s_take(cd91, ids, 4);
    s_acked = ids[0], s_requeued = ids[1], s_dead1 = ids[2], s_dead2 = ids[3];
    assert_int_equal(mlg_client_ack(cd91, s_acked), MLG_OK);
    s_step("ack", "cd91", 3, 0);

    /* a NACK with requeue: it comes back, nothing moves */
    assert_int_equal(mlg_client_nack(cd91, s_requeued, true, "plus tard"), MLG_OK);
    mlg_msg_t *again = e2e_next_deliver(cd91, 10000);
    assert_non_null(again);
    assert_int_equal(again->delivery, s_requeued);
    mlg_msg_destroy(&again);
    assert_int_equal(e2e_wait_scalar(s_db, 1, 10000,
                                     "select count(*) from delivery_events where "
                                     "delivery_id = %llu and event = 'nack'",
                                     (unsigned long long)s_requeued),
                     1);
    s_step("nack, requeued", "cd91", 3, 0);

    /* two refused: dead letters */
    assert_int_equal(mlg_client_nack(cd91, s_dead1, false, "illisible"), MLG_OK);
    assert_int_equal(mlg_client_nack(cd91, s_dead2, false, "illisible"), MLG_OK);
    s_step("dead-lettered", "cd91", 1, 2);
    mlg_client_destroy(&cd91); /* the requeued one goes back: still pending */

    /* an operator replays one of them */
    assert_int_equal(e2e_cli(&s_bp, NULL, "dlq replay %llu", (unsigned long long)s_dead1),
                     0);
    s_step("replayed", "cd91", 2, 1);

    /* the consent revoked: the two shares are settled `revoked`, the
       revocation's notice waits */
    s_publish(ccas,
              "\"type\": \"consent.revoked\", \"version\": 1, \"subject\": \"" S_SUBJECT
              "\", \"body\": {\"consent_id\": \"" S_CONSENT "\"}");
    s_step("revoked", "ehpad-evry", 2, 0);
    mlg_client_destroy(&ccas);

    /* a restart: counted again */
    assert_int_equal(brokerproc_stop(&s_bp, SIGTERM), 0);
    assert_int_equal(e2e_broker_start(&s_bp), 0);
    s_step("restarted", "cd91", 2, 1);
    s_step("restarted", "ehpad-evry", 2, 0);
}

/* With the queues locked by another session, every answer still comes,
   with the figures that session reads: nothing counts over the queues
   per request. (Not timed: a request that read them would wait for the
   lock, and /healthz would have said 503 after its 3 s bound.) */
static PGconn *s_lock; /* the locking session, ended by s_unlock */

static void
test_answers_while_the_queues_are_locked(void **state)
{
    (void)state;
    PGconn *lock = s_lock = brokerproc_db(&s_bp);
    assert_int_equal(PQstatus(lock), CONNECTION_OK);
    PQclear(PQexec(lock, "begin"));
    PGresult *res =
        PQexec(lock, "lock table deliveries, messages in access exclusive mode");
    assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
    PQclear(res);
    /* the holder reads what every other session waits for */
    s_figures_t want, api, metrics;
    s_view(lock, &want);
    char why[512] = "";
    assert_string_equal(want.q[1].agency, "cd91"); /* by agency: ccas-evry first */
    assert_int_equal(want.q[1].pending, 2);
    assert_int_equal(want.q[1].dead, 1);

    char *body = s_get("/healthz");
    assert_string_equal(body, "ok\n");
    free(body);
    if (!s_api(&want, &api, why, sizeof(why))
        || !s_same("/api/status", &want, &api, why, sizeof(why)))
        fail_msg("under the lock: %s", why);
    if (!s_metrics(&want, &metrics, why, sizeof(why))
        || !s_same("/metrics", &want, &metrics, why, sizeof(why)))
        fail_msg("under the lock: %s", why);

    /* maillage status too, from the broker's figures (a statement bound
       turns a wait for the lock into a failure, not a hang) */
    char *out = NULL;
    setenv("PGOPTIONS", "-c statement_timeout=5000", 1);
    int rc = e2e_cli(&s_bp, &out, "--http %s --json status", s_http);
    unsetenv("PGOPTIONS");
    assert_int_equal(rc, 0);
    json_t *doc = json_loads(out, 0, NULL);
    free(out);
    assert_non_null(doc);
    assert_true(
        json_is_true(json_object_get(json_object_get(doc, "broker"), "reachable")));
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(doc, "agencies"), i, a)
    {
        assert_true(i < want.n);
        assert_string_equal(json_string_value(json_object_get(a, "agency")),
                            want.q[i].agency);
        assert_int_equal(json_integer_value(json_object_get(a, "pending")),
                         want.q[i].pending);
        assert_int_equal(json_integer_value(json_object_get(a, "dead")), want.q[i].dead);
    }
    assert_int_equal(i, want.n);
    json_decref(doc);
}

/* Ends the locking session, whether its test passed or not: the lock
   goes with it. */
static int
s_unlock(void **state)
{
    (void)state;
    PQfinish(s_lock);
    s_lock = NULL;
    return 0;
}

/* After the restart the kept figures move on: the queues drained. */
static void
test_drained_after_restart(void **state)
{
    (void)state;
    mlg_client_t *cd91 = e2e_client(&s_bp, "cd91", 10);
    mlg_client_t *ehpad = e2e_client(&s_bp, "ehpad-evry", 10);
    uint64_t ids[2];
    s_take(cd91, ids, 2);
    assert_int_equal(mlg_client_ack(cd91, ids[0]), MLG_OK);
    assert_int_equal(mlg_client_ack(cd91, ids[1]), MLG_OK);
    s_take(ehpad, ids, 2);
    assert_int_equal(mlg_client_ack(ehpad, ids[0]), MLG_OK);
    assert_int_equal(mlg_client_ack(ehpad, ids[1]), MLG_OK);
    s_step("drained", "cd91", 0, 1);
    s_step("drained", "ehpad-evry", 0, 0);
    mlg_client_destroy(&cd91);
    mlg_client_destroy(&ehpad);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_depths_follow_the_queues),
        cmocka_unit_test_teardown(test_answers_while_the_queues_are_locked, s_unlock),
        cmocka_unit_test(test_drained_after_restart),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
