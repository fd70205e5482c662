/*  maillage_bench.c: maillage-bench, the benchmark that ships with maillage.

    Publishers and consumers (one thread and one client connection each)
    run against a broker: the one a configuration file names (--config),
    or a private PostgreSQL and broker started for the run and removed
    after it (--self-contained, as the tests do). It reports publish ->
    confirm and end-to-end throughput, publish -> confirm and publish ->
    deliver latency percentiles, the broker's peak RSS, and the database
    rows written per message; --pg-limit adds the same rows written
    straight into the same database in 1,000-row transactions, so the
    report states "broker / raw PostgreSQL" from one run, and a physical
    baseline beside it: one row per message, the body as bytea, 1,000
    rows per transaction, for as long as the broker's run; --backlog N
    measures a queue of N pending deliveries: a restart, then draining it.

    Ids carry the run, the publisher and a counter, so each answer and
    each delivery finds its publish time without a shared table; the
    publish time also travels as `occurred_at` (wall clock, µs), which
    the consumer compares with its own clock (same process, same clock).

    Not done here: asserting any speed. The smoke test in ctest checks
    that it runs and prints its table. */

#include <czmq.h>
#include <errno.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "benchreport.h"
#include "config.h"
#include "pgbin.h"
#include "toolutil.h"
#include "maillage/client.h"
#include "maillage/json.h"

#ifndef MLG_BENCH_SOURCE_DIR
#define MLG_BENCH_SOURCE_DIR "."
#endif
#ifndef MLG_BENCH_BROKER
#define MLG_BENCH_BROKER "maillage-broker"
#endif

#define S_MAX_AGENCIES 50
#define S_SUBJECTS 4096 /* --personal: the people the messages are about */
#define S_MAX_THREADS 64
#define S_TX_ROWS 1000

/* ---- options ----------------------------------------------------------- */

typedef struct {
    const char *config;
    bool self_contained;
    int publishers;
    int consumers;
    int agencies;
    size_t body_size;
    int window;
    int credit;
    double rate; /* msg/s over all publishers; 0: as fast as possible */
    double duration;
    long count;
    bool personal;
    bool referrals; /* --referrals: each referral received back by its recipient */
    bool json;
    bool pg_limit;
    long backlog;
    const char *cert_dir;
    const char *server_key;
    int broker_pid;
    const char *broker_bin;
    bool quiet;
} s_opts_t;

static volatile sig_atomic_t s_interrupted = 0;

static void
s_on_signal(int sig)
{
    (void)sig;
    s_interrupted = 1;
}

static int
s_usage(FILE *out, int rc)
{
    fprintf(out,
            "usage: maillage-bench (--self-contained | --config FILE) [options]\n"
            "  --publishers N     publishing clients (default 1)\n"
            "  --consumers N      consuming clients (default 1; 0: publish only)\n"
            "  --agencies N       agencies taking part, 2-50 (default 2)\n"
            "  --body-size BYTES  body size (default 1024)\n"
            "  --window N         outstanding publishes per publisher (default 1000)\n"
            "  --credit N         consumer credit (default 1000)\n"
            "  --rate R           msg/s over all publishers; 0: as fast as possible\n"
            "  --duration S       publish for S seconds (default 10)\n"
            "  --count N          publish N messages in all (instead of --duration)\n"
            "  --personal         situation.shared (personal, category social) under\n"
            "                     a granted consent: the consent check in the path;\n"
            "                     default: a non-personal event\n"
            "  --referrals        referral.created under the consents, each its own\n"
            "                     referral (its legs in the path); each consumer\n"
            "                     answers every referral it receives with a\n"
            "                     referral.declined to its referrer: half the\n"
            "                     publishes move (close) a leg\n"
            "  --pg-limit         also write the same rows straight into PostgreSQL\n"
            "                     (1,000 messages per transaction), and one row per\n"
            "                     message (a bigint key and the body as bytea, 1,000\n"
            "                     per transaction, as long as the run): the ratios\n"
            "  --backlog N        N pending deliveries for an offline agency: restart\n"
            "                     the broker, then drain them (--self-contained)\n"
            "  --cert-dir DIR     under CURVE: DIR/AGENCY_secret per agency\n"
            "  --server-key KEY   under CURVE: the broker's public key (default: from\n"
            "                     security/secret_cert)\n"
            "  --broker-pid PID   the broker's process, for its peak RSS (--config)\n"
            "  --broker BIN       the broker binary (--self-contained)\n"
            "  --json             the report as JSON\n");
    return rc;
}

/* ---- time and figures --------------------------------------------------- */

static int64_t
s_now_us(void)
{
    mlg_time_t t = mlg_time_now();
    return t.sec * 1000000 + t.nsec / 1000;
}

/* ---- the run's shared state -------------------------------------------- */

typedef struct {
    char endpoint[256];
    char database[1024];
    char agencies[S_MAX_AGENCIES][MLG_AGENCY_ID_MAX + 1];
    int nagencies;
    char server_key[64];
    const s_opts_t *o;
    uint32_t run;     /* this run's tag, the first 8 hex digits of every id */
    char subject[64]; /* --personal: the people are subject-0, subject-1, ... */
    uint8_t *body;    /* msgpack, the same for every message */
    size_t body_len;
    size_t rid_at; /* --referrals: where the body's referral_id is (each
                      message writes its own id there); 0: none */
    const char *type;
    /* counters */
    atomic_long published, confirmed, rejected, routed, delivered, acked;
    atomic_long moves_confirmed, moves_rejected; /* --referrals */
    atomic_int pubs_done;
    atomic_bool stop_sending, stop_consuming;
    int64_t t0_us;
    atomic_llong last_confirm_us, last_deliver_us;
    bench_samples_t confirm_lat, deliver_lat;
    bench_errors_t errors;
} s_run_t;

static mlg_client_t *
s_connect(s_run_t *r, const char *agency, const char *name, uint64_t credit)
{
    mlg_error_t err;
    mlg_client_t *c;
    if (r->o->cert_dir) {
        char *cert = zsys_sprintf("%s/%s_secret", r->o->cert_dir, agency);
        c = cert ? mlg_client_new_curve(r->endpoint, agency, name, credit, 10000, cert,
                                        r->server_key, &err)
                 : NULL;
        if (!cert)
            snprintf(err.reason, sizeof(err.reason), "out of memory");
        zstr_free(&cert);
    }
    else
        c = mlg_client_new(r->endpoint, agency, name, credit, 10000, &err);
    if (!c)
        bench_error(&r->errors, "could not join as %s: %s", agency, err.reason);
    return c;
}

/* The recipient of publisher p's k-th message: an agency with consumers
   other than its own, round robin. */
static const char *
s_recipient(const s_run_t *r, int p, long k)
{
    int self = p % r->nagencies;
    int with[S_MAX_AGENCIES], n = 0;
    for (int a = 0; a < r->nagencies; a++) {
        bool consumed = false;
        for (int c = 0; c < r->o->consumers; c++)
            if ((c + 1) % r->nagencies == a)
                consumed = true;
        if (consumed && a != self)
            with[n++] = a;
    }
    if (!n)
        return r->agencies[(self + 1) % r->nagencies];
    return r->agencies[with[k % n]];
}

static void
s_make_id(char id[MLG_UUID_LEN + 1], uint32_t run, int p, long k)
{
    snprintf(id, MLG_UUID_LEN + 1, "%08x-%04x-4000-8000-%012llx", run,
             (unsigned)p & 0xffff, (unsigned long long)k & 0xffffffffffffULL);
}

/* The publisher and counter of one of this run's ids; false for others. */
static bool
s_parse_id(const s_run_t *r, const char *id, int *p, long *k)
{
    char tag[9];
    snprintf(tag, sizeof(tag), "%08x", r->run);
    if (strlen(id) != MLG_UUID_LEN || strncmp(id, tag, 8) != 0)
        return false;
    *p = (int)strtol(id + 9, NULL, 16);
    *k = strtoll(id + 24, NULL, 16);
    return true;
}

/* ---- publishers ---------------------------------------------------------- */

typedef struct {
    s_run_t *r;
    int index;
    long quota; /* -1: until stop_sending */
    double rate;
    pthread_t thread;
    bench_samples_t lat;
} s_pub_t;

static void
s_pub_answer(s_pub_t *pub, mlg_msg_t *a, int64_t *sent, long nsent, long *outstanding)
{
    s_run_t *r = pub->r;
    int p;
    long k;
    if (a->op == MLG_OP_CONFIRM || a->op == MLG_OP_REJECT) {
        if (s_parse_id(r, a->id, &p, &k) && p == pub->index && k < nsent) {
            int64_t now = s_now_us();
            (*outstanding)--;
            if (a->op == MLG_OP_CONFIRM) {
                bench_sample(&pub->lat, now - sent[k]);
                atomic_fetch_add(&r->confirmed, 1);
                atomic_fetch_add(&r->routed, (long)a->routed_count);
                atomic_store(&r->last_confirm_us, now);
            }
            else {
                atomic_fetch_add(&r->rejected, 1);
                bench_error(&r->errors, "REJECT %s: %s", a->code, a->reason);
            }
        }
    }
    else if (a->op == MLG_OP_ERROR)
        bench_error(&r->errors, "ERROR %s: %s", a->code, a->reason);
    mlg_msg_destroy(&a);
}

static void *
s_publisher(void *arg)
{
    s_pub_t *pub = arg;
    s_run_t *r = pub->r;
    const s_opts_t *o = r->o;
    const char *agency = r->agencies[pub->index % r->nagencies];
    mlg_client_t *c = s_connect(r, agency, "maillage-bench", 0);
    if (!c) {
        atomic_fetch_add(&r->pubs_done, 1);
        return NULL;
    }
    mlg_msg_t *m = mlg_msg_new(MLG_OP_PUBLISH);
    snprintf(m->type, sizeof(m->type), "%s", r->type);
    m->version = 1;
    mlg_msg_set_body(m, r->body, r->body_len);
    if (o->personal) {
        snprintf(m->subject, sizeof(m->subject), "%s", r->subject);
        snprintf(m->purpose, sizeof(m->purpose), "orientation");
    }
    m->has_occurred_at = true;
    size_t cap = pub->quota >= 0 ? (size_t)pub->quota + 1 : 1 << 16;
    int64_t *sent = malloc(cap * sizeof(int64_t));
    long k = 0, outstanding = 0;
    int64_t start = s_now_us();
    int64_t last_answer = start;
    while (sent && !s_interrupted) {
        bool more = pub->quota < 0 ? !atomic_load(&r->stop_sending) : k < pub->quota;
        if (!more && outstanding == 0)
            break;
        int64_t now = s_now_us();
        if (!more && now - last_answer > 30000000) {
            bench_error(&r->errors, "%s: %s", agency,
                        "publishes left unanswered for 30 s");
            break;
        }
        int64_t due =
            pub->rate > 0 ? start + (int64_t)((double)k * 1e6 / pub->rate) : now;
        if (more && outstanding < o->window && now >= due) {
            if ((size_t)k == cap) {
                int64_t *ns = realloc(sent, cap * 2 * sizeof(int64_t));
                if (!ns)
                    break;
                sent = ns;
                cap *= 2;
            }
            s_make_id(m->id, r->run, pub->index, k);
            if (r->rid_at) /* its own referral: the message's id */
                memcpy((uint8_t *)m->body + r->rid_at, m->id, MLG_UUID_LEN);
            if (o->personal)
                snprintf(m->subject, sizeof(m->subject), "%s-%ld", r->subject,
                         k % S_SUBJECTS);
            m->to_count = 0;
            mlg_msg_add_to(m, s_recipient(r, pub->index, k));
            m->occurred_at.sec = now / 1000000;
            m->occurred_at.nsec = (uint32_t)(now % 1000000) * 1000;
            sent[k] = now;
            if (mlg_client_send(c, m) != MLG_OK) {
                bench_error(&r->errors, "%s: %s", agency, "could not send a PUBLISH");
                break;
            }
            k++;
            outstanding++;
            atomic_fetch_add(&r->published, 1);
            mlg_msg_t *a;
            while ((a = mlg_client_recv(c, 0))) {
                s_pub_answer(pub, a, sent, k, &outstanding);
                last_answer = s_now_us();
            }
            continue;
        }
        int wait = 100;
        if (more && outstanding < o->window && due > now)
            wait = (int)((due - now) / 1000);
        mlg_msg_t *a = mlg_client_recv(c, wait);
        if (a) {
            s_pub_answer(pub, a, sent, k, &outstanding);
            last_answer = s_now_us();
        }
    }
    free(sent);
    mlg_msg_destroy(&m);
    mlg_client_destroy(&c);
    atomic_fetch_add(&r->pubs_done, 1);
    return NULL;
}

/* ---- consumers ----------------------------------------------------------- */

typedef struct {
    s_run_t *r;
    int index;
    pthread_t thread;
    bench_samples_t lat;
    mlg_client_t *client; /* joined before the publishers start */
} s_con_t;

/* --referrals: the answer a recipient sends back, a referral.declined
   (which closes the leg, so that one person's open referrals do not pile
   up), its id and referral_id written per referral. */
typedef struct {
    mlg_msg_t *msg;
    size_t rid_at; /* where the body's referral_id is */
} s_answer_t;

static int
s_answer_template(s_answer_t *t)
{
    static const char placeholder[] = "00000000-0000-4000-8000-0000000000aa";
    char body[160];
    snprintf(body, sizeof(body),
             "{\"referral_id\":\"%s\",\"reason_code\":\"no-capacity\"}", placeholder);
    uint8_t *packed = NULL;
    size_t len = 0;
    t->msg = mlg_msg_new(MLG_OP_PUBLISH);
    if (!t->msg
        || mlg_json_to_msgpack(body, strlen(body), &packed, &len, NULL, 0) != MLG_OK
        || mlg_msg_set_body(t->msg, packed, len) != MLG_OK)
        mlg_msg_destroy(&t->msg);
    free(packed);
    for (size_t i = 0; t->msg && i + MLG_UUID_LEN <= t->msg->body_len; i++)
        if (memcmp(t->msg->body + i, placeholder, MLG_UUID_LEN) == 0)
            t->rid_at = i;
    if (!t->msg || !t->rid_at)
        return -1;
    snprintf(t->msg->type, sizeof(t->msg->type), "referral.declined");
    t->msg->version = 1;
    snprintf(t->msg->purpose, sizeof(t->msg->purpose), "orientation");
    return 0;
}

/* A referral delivered: its recipient answers it. */
static void
s_answer_referral(mlg_client_t *c, s_answer_t *t, const mlg_msg_t *d)
{
    mlg_msg_t *m = t->msg;
    /* the referral's id is the created message's (s_publisher) */
    memcpy((uint8_t *)m->body + t->rid_at, d->id, MLG_UUID_LEN);
    snprintf(m->id, sizeof(m->id), "%s", d->id);
    m->id[14] = '5'; /* another id of the same run: version nibble 5 */
    snprintf(m->subject, sizeof(m->subject), "%s", d->subject);
    m->to_count = 0;
    mlg_msg_add_to(m, d->from);
    mlg_client_send(c, m);
}

static void *
s_consumer(void *arg)
{
    s_con_t *con = arg;
    s_run_t *r = con->r;
    mlg_client_t *c = con->client;
    s_answer_t answer = {NULL, 0};
    if (r->o->referrals && s_answer_template(&answer) != 0)
        bench_error(&r->errors, "%s%s", "could not build a referral's answer", "");
    while (c && !atomic_load(&r->stop_consuming) && !s_interrupted) {
        mlg_msg_t *d = mlg_client_recv(c, 50);
        if (!d)
            continue;
        if (d->op == MLG_OP_CONFIRM || d->op == MLG_OP_REJECT) /* its answers */
            atomic_fetch_add(
                d->op == MLG_OP_CONFIRM ? &r->moves_confirmed : &r->moves_rejected, 1);
        if (d->op == MLG_OP_REJECT)
            bench_error(&r->errors, "REJECT of a referral's answer %s: %s", d->code,
                        d->reason);
        if (d->op == MLG_OP_DELIVER && answer.msg
            && strcmp(d->type, "referral.created") == 0)
            s_answer_referral(c, &answer, d);
        if (d->op == MLG_OP_DELIVER) {
            int p;
            long k;
            int64_t now = s_now_us();
            bool ours = s_parse_id(r, d->id, &p, &k);
            if (ours) {
                int64_t at = d->occurred_at.sec * 1000000 + d->occurred_at.nsec / 1000;
                if (d->attempt == 1)
                    bench_sample(&con->lat, now - at);
                atomic_fetch_add(&r->delivered, 1);
                atomic_store(&r->last_deliver_us, now);
            }
            if (mlg_client_ack(c, d->delivery) == MLG_OK && ours)
                atomic_fetch_add(&r->acked, 1);
        }
        else if (d->op == MLG_OP_ERROR)
            bench_error(&r->errors, "ERROR %s: %s", d->code, d->reason);
        mlg_msg_destroy(&d);
    }
    mlg_msg_destroy(&answer.msg);
    mlg_client_destroy(&con->client);
    return NULL;
}

/* ---- bodies -------------------------------------------------------------- */

/* The body as msgpack, padded to about `size` bytes. */
static int
s_make_body(s_run_t *r, size_t size)
{
    /* each padded through a text field: a referral's reason, a
       situation's optional summary (both at most 4000 characters) */
    const char *fmt =
        r->o->referrals  ? "{\"referral_id\":\"6f1c2f4e-6a38-4d3e-9a3b-1d2c3e4f5a6b\","
                           "\"service\":\"home-care\",\"priority\":\"routine\","
                           "\"requested_by\":{\"name\":\"Bench\",\"role\":\"benchmark\"},"
                           "\"reason\":\"%s\"}"
        : r->o->personal ? "{\"household\":{\"adults\":1,\"children\":2},"
                           "\"housing\":\"temporary\",\"summary\":\"%s\"}"
        : strcmp(r->type, "bench.filler") == 0
            ? "{\"service_id\":\"bench\",\"pad\":\"%s\"}"
            : "{\"service_id\":\"bench%.0s\",\"service\":\"home-care\","
              "\"places_total\":10,\"places_available\":3}";
    size_t maxpad = r->o->personal ? 4000 : 1 << 20;
    size_t pad = 1;
    for (int pass = 0; pass < 2; pass++) {
        char *filler = malloc(pad + 1);
        size_t tlen = strlen(fmt) + pad + 1;
        char *text = malloc(tlen);
        if (!filler || !text) {
            free(filler);
            free(text);
            return -1;
        }
        memset(filler, 'x', pad);
        filler[pad] = '\0';
        snprintf(text, tlen, fmt, filler);
        free(r->body);
        r->body = NULL;
        char err[256];
        mlg_rc_t rc = mlg_json_to_msgpack(text, strlen(text), &r->body, &r->body_len, err,
                                          sizeof(err));
        free(filler);
        free(text);
        if (rc != MLG_OK)
            return -1;
        if (r->body_len >= size)
            break;
        pad += size - r->body_len;
        if (pad > maxpad)
            pad = maxpad;
    }
    return 0;
}

/* consent.granted for the run's subject, every agency a party. */
/* One consent for `subject` between every agency of the run, granted
   by the first: sent (its answer read by s_grant_answer); 0 when sent. */
/* A fresh message or consent id: a lowercase canonical UUID. */
static void
s_new_uuid(char out[MLG_UUID_LEN + 1])
{
    zuuid_t *u = zuuid_new();
    const char *t = zuuid_str_canonical(u);
    for (int i = 0; i < MLG_UUID_LEN; i++)
        out[i] = (char)((t[i] >= 'A' && t[i] <= 'F') ? t[i] + 32 : t[i]);
    out[MLG_UUID_LEN] = '\0';
    zuuid_destroy(&u);
}

static int
s_grant_one(s_run_t *r, mlg_client_t *c, const char *subject)
{
    char uuid[37], parties[S_MAX_AGENCIES * 70] = "", text[8192];
    s_new_uuid(uuid);
    for (int i = 0; i < r->nagencies; i++) {
        size_t at = strlen(parties);
        snprintf(parties + at, sizeof(parties) - at, "%s\"%s\"", i ? "," : "",
                 r->agencies[i]);
    }
    snprintf(text, sizeof(text),
             "{\"consent_id\":\"%s\",\"parties\":[%s],\"purposes\":[\"orientation\"],"
             "\"categories\":[\"social\"],\"valid_from\":\"2000-01-01T00:00:00Z\","
             "\"collected_by\":{\"name\":\"Bench\",\"role\":\"benchmark\"},"
             "\"method\":\"written\"}",
             uuid, parties);
    uint8_t *mp = NULL;
    size_t len = 0;
    char err[256];
    if (mlg_json_to_msgpack(text, strlen(text), &mp, &len, err, sizeof(err)) != MLG_OK)
        return -1;
    mlg_msg_t *m = mlg_msg_new(MLG_OP_PUBLISH);
    snprintf(m->type, sizeof(m->type), "consent.granted");
    m->version = 1;
    snprintf(m->subject, sizeof(m->subject), "%s", subject);
    mlg_msg_set_body(m, mp, len);
    free(mp);
    s_new_uuid(m->id);
    int rc = mlg_client_send(c, m) == MLG_OK ? 0 : -1;
    mlg_msg_destroy(&m);
    return rc;
}

/* The answer to one of the grants sent; 0 when a CONFIRM. */
static int
s_grant_answer(s_run_t *r, mlg_client_t *c)
{
    mlg_msg_t *a = mlg_client_recv(c, 10000);
    int rc = a && a->op == MLG_OP_CONFIRM ? 0 : -1;
    if (rc)
        bench_error(&r->errors, "a consent was not confirmed: %s %s", a ? a->code : "",
                    a ? a->reason : "no answer");
    mlg_msg_destroy(&a);
    return rc;
}

/* The grants' notices to `agency` (one a grant: it is a party), taken
   and acked before the run, so that the run measures its own messages
   and not a queue still working through the setting up. */
static int
s_take_notices(s_run_t *r, const char *agency)
{
    mlg_client_t *c = s_connect(r, agency, "maillage-bench-setup", 1000);
    int taken = 0;
    while (c && taken < S_SUBJECTS) {
        mlg_msg_t *d = mlg_client_recv(c, 30000);
        if (!d)
            break;
        if (d->op == MLG_OP_DELIVER && mlg_client_ack(c, d->delivery) == MLG_OK)
            taken++;
        mlg_msg_destroy(&d);
    }
    mlg_client_destroy(&c);
    if (taken == S_SUBJECTS)
        return 0;
    bench_error(&r->errors, "%s did not get every consent notice %s", agency,
                "(the setting up of --personal)");
    return -1;
}

/* --personal: a consent for each of the run's S_SUBJECTS people, whom
   the messages go round (one person's referrals would all be each
   other's duplicates). */
static int
s_grant(s_run_t *r)
{
    mlg_client_t *c = s_connect(r, r->agencies[0], "maillage-bench", 0);
    int rc = c ? 0 : -1;
    int sent = 0, answered = 0;
    while (rc == 0 && answered < S_SUBJECTS) { /* up to 500 waiting at once */
        if (sent < S_SUBJECTS && sent - answered < 500) {
            char subject[80];
            snprintf(subject, sizeof(subject), "%s-%d", r->subject, sent++);
            rc = s_grant_one(r, c, subject);
        }
        else {
            rc = s_grant_answer(r, c);
            answered++;
        }
    }
    mlg_client_destroy(&c);
    for (int i = 1; rc == 0 && i < r->nagencies; i++)
        rc = s_take_notices(r, r->agencies[i]);
    return rc;
}

/* ---- the database --------------------------------------------------------- */

/* the tables the broker writes a message's rows into (the referral
   tables stay empty but with --referrals) */
static const char *s_tables[] = {
    "messages",  "deliveries",    "consent_decisions", "delivery_events",    "consents",
    "referrals", "referral_legs", "referral_moves",    "referral_duplicates"};
#define S_NTABLES (sizeof(s_tables) / sizeof(s_tables[0]))

typedef struct {
    long rows;    /* rows in the tables */
    long inserts; /* pg_stat_user_tables: rows inserted */
    long updates; /* and updated */
    long wal;     /* WAL bytes written (pg_current_wal_lsn) */
} s_dbcount_t;

static long
s_scalar(PGconn *db, const char *sql)
{
    PGresult *res = PQexec(db, sql);
    long v = -1;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1
        && !PQgetisnull(res, 0, 0))
        v = atol(PQgetvalue(res, 0, 0));
    PQclear(res);
    return v;
}

static s_dbcount_t
s_db_count(PGconn *db)
{
    s_dbcount_t c = {0, 0, 0, 0};
    if (!db)
        return c;
    char sql[768];
    for (size_t i = 0; i < S_NTABLES; i++) {
        snprintf(sql, sizeof(sql), "select count(*) from %s", s_tables[i]);
        c.rows += s_scalar(db, sql);
    }
    PQclear(PQexec(db, "select pg_stat_clear_snapshot()"));
    char in[512] = "";
    for (size_t i = 0; i < S_NTABLES; i++) {
        size_t at = strlen(in);
        snprintf(in + at, sizeof(in) - at, "%s'%s'", i ? ", " : "", s_tables[i]);
    }
    snprintf(sql, sizeof(sql),
             "select sum(n_tup_ins) from pg_stat_user_tables where relname in (%s)", in);
    c.inserts = s_scalar(db, sql);
    snprintf(sql, sizeof(sql),
             "select sum(n_tup_upd) from pg_stat_user_tables where relname in (%s)", in);
    c.updates = s_scalar(db, sql);
    c.wal = s_scalar(db, "select pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint");
    return c;
}

/* ---- peak RSS --------------------------------------------------------------- */

/* ---- a private PostgreSQL and broker (--self-contained) ------------------- */

typedef struct {
    char dir[256];
    char pgdir[300];
    char cfg[300];
    char log[300];
    char database[512];
    char endpoint[64];
    const char *broker_bin;
    pid_t pid;
} s_env_t;

static const char *
s_source_dir(void)
{
    const char *d = getenv("MLG_SOURCE_DIR");
    return d && d[0] ? d : MLG_BENCH_SOURCE_DIR;
}

static int
s_run_cmd(const char *cmd, bool quiet)
{
    char full[2048];
    snprintf(full, sizeof(full), "%s%s", cmd, quiet ? " >/dev/null 2>&1" : " >&2");
    int rc = system(full);
    return rc == 0 ? 0 : -1;
}

static long
s_file_size(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return n;
}

/* Starts the broker; 0 once its log says its database is available. */
static int
s_broker_start(s_env_t *e)
{
    long from = s_file_size(e->log);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        FILE *log = freopen(e->log, "a", stderr);
        (void)log;
        execl(e->broker_bin, e->broker_bin, "--config", e->cfg, (char *)NULL);
        _exit(127);
    }
    e->pid = pid;
    return tool_wait_text(e->log, "database available", from, 60000);
}

static void
s_broker_stop(s_env_t *e, int sig)
{
    if (e->pid <= 0)
        return;
    kill(e->pid, sig);
    waitpid(e->pid, NULL, 0);
    e->pid = 0;
}

static void
s_env_cleanup(s_env_t *e, bool quiet)
{
    s_broker_stop(e, SIGTERM);
    char cmd[1024];
    if (e->pgdir[0]) {
        snprintf(cmd, sizeof(cmd), "bash '%s/scripts/pg.sh' destroy '%s'", s_source_dir(),
                 e->pgdir);
        s_run_cmd(cmd, quiet);
    }
    if (e->dir[0]) {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
        s_run_cmd(cmd, true);
    }
}

/* A free port below the kernel's ephemeral range (32768 and up): the
   backlog run restarts the broker on its port, which must not be taken
   meanwhile by some client's outgoing connection. */
static int
s_free_port(void)
{
    unsigned int seed = (unsigned int)(getpid() ^ (int)zclock_usecs());
    for (int i = 0; i < 200; i++) {
        int candidate = 21000 + (int)(rand_r(&seed) % 7000);
        zsock_t *probe = zsock_new(ZMQ_ROUTER);
        int port = probe ? zsock_bind(probe, "tcp://127.0.0.1:%d", candidate) : -1;
        zsock_destroy(&probe);
        if (port == candidate)
            return port;
    }
    return -1;
}

static int
s_env_setup(s_env_t *e, const s_opts_t *o, s_run_t *r)
{
    snprintf(e->dir, sizeof(e->dir), "/tmp/maillage-bench-XXXXXX");
    if (!mkdtemp(e->dir)) {
        e->dir[0] = '\0';
        return -1;
    }
    chmod(e->dir, 0755); /* pg.sh runs the server as postgres when root */
    snprintf(e->pgdir, sizeof(e->pgdir), "%s/pg", e->dir);
    snprintf(e->cfg, sizeof(e->cfg), "%s/maillage.cfg", e->dir);
    snprintf(e->log, sizeof(e->log), "%s/broker.log", e->dir);
    const char *src = s_source_dir();
    char cmd[2048];
    if (!o->quiet)
        fprintf(stderr, "maillage-bench: a private PostgreSQL in %s\n", e->pgdir);
    snprintf(cmd, sizeof(cmd), "bash '%s/scripts/pg.sh' start '%s' maillage_bench", src,
             e->pgdir);
    if (s_run_cmd(cmd, o->quiet) != 0) {
        fprintf(stderr, "maillage-bench: could not start PostgreSQL (scripts/pg.sh)\n");
        return -1;
    }
    char envfile[400];
    snprintf(envfile, sizeof(envfile), "%s/env", e->pgdir);
    if (tool_file_value(envfile, "MLG_DATABASE_URL", '=', e->database,
                        sizeof(e->database))
        != 0)
        return -1;
    /* the project's schemas and the benchmark's own event */
    snprintf(cmd, sizeof(cmd),
             "mkdir -p '%s/schemas' && ln -s '%s'/schemas/*.json '%s/schemas/' &&"
             " cp '%s/tools/bench/bench.filler.v1.json' '%s/schemas/'",
             e->dir, src, e->dir, src, e->dir);
    if (s_run_cmd(cmd, false) != 0)
        return -1;
    snprintf(e->endpoint, sizeof(e->endpoint), "tcp://127.0.0.1:%d", s_free_port());
    FILE *f = fopen(e->cfg, "w");
    if (!f)
        return -1;
    fprintf(f,
            "broker\n    endpoint = %s\n    database = %s\n    schemas = schemas\n"
            "    heartbeat_ms = 2000\n"
            "security\n    curve = 0\nagencies\n",
            e->endpoint, e->database);
    for (int i = 0; i < r->nagencies; i++)
        fprintf(f,
                "    %s\n        name = \"bench agency %d\"\n        publish = \"*\"\n",
                r->agencies[i], i);
    fclose(f);
    e->broker_bin = o->broker_bin              ? o->broker_bin
                    : getenv("MLG_BROKER_BIN") ? getenv("MLG_BROKER_BIN")
                                               : MLG_BENCH_BROKER;
    if (s_broker_start(e) != 0) {
        fprintf(stderr, "maillage-bench: the broker did not start; its log:\n");
        snprintf(cmd, sizeof(cmd), "tail -n 20 '%s' >&2", e->log);
        if (system(cmd) != 0)
            fprintf(stderr, "(no log)\n");
        return -1;
    }
    snprintf(r->endpoint, sizeof(r->endpoint), "%s", e->endpoint);
    snprintf(r->database, sizeof(r->database), "%s", e->database);
    return 0;
}

/* ---- raw PostgreSQL: the same rows, 1,000 per transaction ---------------- */

static bool
s_ok(PGconn *db, PGresult *res)
{
    ExecStatusType st = PQresultStatus(res);
    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok)
        fprintf(stderr, "maillage-bench: %s", PQerrorMessage(db));
    PQclear(res);
    return ok;
}

static PGconn *
s_pg_connect(const s_run_t *r)
{
    PGconn *db = PQconnectdb(r->database);
    if (PQstatus(db) == CONNECTION_OK)
        return db;
    fprintf(stderr, "maillage-bench: %s", PQerrorMessage(db));
    PQfinish(db);
    return NULL;
}

/* One table's rows in a transaction: a binary COPY stream, as the store
   sends binary arrays. */
typedef struct {
    const char *sql; /* copy TABLE (COLUMNS) from stdin (format binary) */
    brk_pgbin_t b;
} s_copy_t;

/* Sends each stream (ended here) by its COPY, all in one transaction;
   true when it committed. */
static bool
s_copy_tx(PGconn *db, s_copy_t *copies, int n)
{
    bool ok = s_ok(db, PQexec(db, "begin"));
    for (int s = 0; ok && s < n; s++) {
        brk_pgbin_t *b = &copies[s].b;
        brk_pgbin_copy_end(b);
        PGresult *start = b->failed ? NULL : PQexec(db, copies[s].sql);
        ok = !b->failed && PQresultStatus(start) == PGRES_COPY_IN;
        PQclear(start);
        ok = ok && PQputCopyData(db, (const char *)b->p, (int)b->n) == 1
             && PQputCopyEnd(db, NULL) == 1;
        if (ok)
            ok = s_ok(db, PQgetResult(db));
        else
            fprintf(stderr, "maillage-bench: %s",
                    b->failed ? "out of memory\n" : PQerrorMessage(db));
        PGresult *rest;
        while ((rest = PQgetResult(db)))
            PQclear(rest);
    }
    if (!ok)
        PQclear(PQexec(db, "rollback"));
    return ok && s_ok(db, PQexec(db, "commit"));
}

/* The tables the broker writes a message's rows into: the last three
   with --referrals only (a referral.created opens a referral and a leg,
   and its move). */
enum {
    S_RAW_MESSAGES,
    S_RAW_DECISIONS,
    S_RAW_DELIVERIES,
    S_RAW_REFERRALS,
    S_RAW_LEGS,
    S_RAW_MOVES,
    S_RAW_TABLES
};

static const char *s_raw_sql[S_RAW_TABLES] = {
    "copy messages (id, type, version, sender, subject, purpose, correlation,"
    " received_at, body, chain_seq, body_hash, link) from stdin (format binary)",
    "copy consent_decisions (message_id, recipient, decision, basis, decided_at,"
    " chain_seq, link) from stdin (format binary)",
    "copy deliveries (message_id, recipient) from stdin (format binary)",
    "copy referrals (referral_id, message_id, referrer, subject, service, priority,"
    " created_at) from stdin (format binary)",
    "copy referral_legs (referral_id, recipient, referrer, subject, service, priority,"
    " state, opened_at, due_at) from stdin (format binary)",
    "copy referral_moves (referral_id, recipient, to_state, message_id, moved_at)"
    " from stdin (format binary)",
};

static const uint8_t s_fake_link[32] = {0x6d, 0x61, 0x69, 0x6c, 0x6c, 0x61, 0x67, 0x65,
                                        0x2d, 0x62, 0x65, 0x6e, 0x63, 0x68, 0x2d, 0x6c,
                                        0x69, 0x6e, 0x6b, 0x2d, 0x30, 0x31, 0x32, 0x33,
                                        0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x61, 0x62};

/* A referral's rows: the referral (its id is its message's, as
   s_publisher makes it), its leg to the recipient, sent, and that move. */
static void
s_raw_referral(s_copy_t *c, const s_run_t *r, const char *id, const char *subject,
               int64_t now)
{
    const char *sender = r->agencies[0], *recipient = r->agencies[1];
    brk_pgbin_t *b = &c[S_RAW_REFERRALS].b;
    brk_pgbin_copy_row(b, 7);
    brk_pgbin_uuid(b, id);
    brk_pgbin_uuid(b, id);
    brk_pgbin_text(b, sender);
    brk_pgbin_text(b, subject);
    brk_pgbin_text(b, "home-care"); /* the body's (s_make_body) */
    brk_pgbin_text(b, "routine");
    brk_pgbin_time(b, now);
    b = &c[S_RAW_LEGS].b;
    brk_pgbin_copy_row(b, 9);
    brk_pgbin_uuid(b, id);
    brk_pgbin_text(b, recipient);
    brk_pgbin_text(b, sender);
    brk_pgbin_text(b, subject);
    brk_pgbin_text(b, "home-care");
    brk_pgbin_text(b, "routine");
    brk_pgbin_text(b, "sent");
    brk_pgbin_time(b, now);
    brk_pgbin_time(b, now + 7 * 86400 * 1000000LL); /* a deadline */
    b = &c[S_RAW_MOVES].b;
    brk_pgbin_copy_row(b, 5);
    brk_pgbin_uuid(b, id);
    brk_pgbin_text(b, recipient);
    brk_pgbin_text(b, "sent");
    brk_pgbin_uuid(b, id);
    brk_pgbin_time(b, now);
}

/* The rows of the k-th message of the raw run (tag), received at `now`:
   the message, its decision and its delivery, as the broker stores them. */
static void
s_raw_rows(s_copy_t *c, const s_run_t *r, uint32_t tag, long k, int64_t now)
{
    const bool personal = r->o->personal;
    const char *sender = r->agencies[0], *recipient = r->agencies[1];
    char id[MLG_UUID_LEN + 1], subject[80];
    s_make_id(id, tag, 0, k);
    snprintf(subject, sizeof(subject), "%s-%ld", r->subject, k % S_SUBJECTS);
    brk_pgbin_t *b = &c[S_RAW_MESSAGES].b;
    brk_pgbin_copy_row(b, 12);
    brk_pgbin_uuid(b, id);
    brk_pgbin_text(b, r->type);
    brk_pgbin_int(b, 1, 4);
    brk_pgbin_text(b, sender);
    brk_pgbin_text(b, personal ? subject : NULL);
    brk_pgbin_text(b, personal ? "orientation" : NULL);
    brk_pgbin_text(b, NULL);
    brk_pgbin_time(b, now);
    brk_pgbin_bytes(b, r->body, r->body_len);
    /* the audit chain's columns, as the broker fills them: a position
       (negative, apart from the broker's chain), the body's hash and the
       link (32 bytes each) */
    long long pos = -((long long)tag * 10000000LL + k + 1);
    brk_pgbin_int(b, (uint64_t)pos, 8);
    brk_pgbin_bytes(b, s_fake_link, sizeof(s_fake_link));
    brk_pgbin_bytes(b, s_fake_link, sizeof(s_fake_link));
    b = &c[S_RAW_DECISIONS].b;
    brk_pgbin_copy_row(b, 7);
    brk_pgbin_uuid(b, id);
    brk_pgbin_text(b, recipient);
    brk_pgbin_text(b, "allow");
    brk_pgbin_text(b, personal ? "consent" : "not_personal");
    brk_pgbin_time(b, now);
    brk_pgbin_int(b, (uint64_t)pos, 8);
    brk_pgbin_bytes(b, s_fake_link, sizeof(s_fake_link));
    b = &c[S_RAW_DELIVERIES].b;
    brk_pgbin_copy_row(b, 2);
    brk_pgbin_uuid(b, id);
    brk_pgbin_text(b, recipient);
    if (r->o->referrals)
        s_raw_referral(c, r, id, subject, now);
}

/* Writes n messages' rows as the broker stores them (s_raw_rows),
   S_TX_ROWS messages per transaction. Returns messages per second, or
   -1. */
static double
s_pg_limit(s_run_t *r, long n)
{
    PGconn *db = s_pg_connect(r);
    if (!db)
        return -1;
    uint32_t tag = r->run ^ 0x5a5a5a5a;
    int ntables = r->o->referrals ? S_RAW_TABLES : S_RAW_REFERRALS;
    s_copy_t copies[S_RAW_TABLES];
    memset(copies, 0, sizeof(copies));
    for (int t = 0; t < S_RAW_TABLES; t++)
        copies[t].sql = s_raw_sql[t];
    int64_t t0 = s_now_us();
    bool ok = true;
    for (long done = 0; ok && done < n; done += S_TX_ROWS) {
        long batch = n - done < S_TX_ROWS ? n - done : S_TX_ROWS;
        int64_t now = s_now_us();
        for (int t = 0; t < ntables; t++)
            brk_pgbin_copy_start(&copies[t].b);
        for (long i = 0; i < batch; i++)
            s_raw_rows(copies, r, tag, done + i, now);
        ok = s_copy_tx(db, copies, ntables);
    }
    int64_t t1 = s_now_us();
    for (int t = 0; t < S_RAW_TABLES; t++)
        free(copies[t].b.p);
    PQfinish(db);
    return ok ? (double)n * 1e6 / (double)(t1 - t0) : -1;
}

/* The physical baseline: what PostgreSQL takes of the bodies alone, one
   row per message (a bigint key and --body-size bytes of bytea) in a
   table of the run's own, S_TX_ROWS rows per transaction by binary
   COPY, for `seconds` (the broker's run) and at least 10 transactions.
   The table is dropped after. Rows per second, or -1. */
static double
s_pg_physical(s_run_t *r, double seconds)
{
    PGconn *db = s_pg_connect(r);
    if (!db)
        return -1;
    char table[48], sql[160], copy_sql[160];
    snprintf(table, sizeof(table), "mlg_bench_physical_%08x", r->run);
    snprintf(sql, sizeof(sql),
             "create table %s (id bigint primary key, body bytea not null)", table);
    snprintf(copy_sql, sizeof(copy_sql), "copy %s (id, body) from stdin (format binary)",
             table);
    size_t len = r->o->body_size;
    uint8_t *body = malloc(len + 1);
    uint32_t x = r->run; /* bytes that do not compress, whatever the size */
    for (size_t i = 0; body && i < len; i++) {
        x = x * 1103515245u + 12345u;
        body[i] = (uint8_t)(x >> 16);
    }
    bool ok = body && s_ok(db, PQexec(db, sql));
    s_copy_t copy = {copy_sql, {0}};
    long done = 0;
    int64_t t0 = s_now_us(), t1 = t0;
    while (ok && (done < 10 * S_TX_ROWS || t1 - t0 < (int64_t)(seconds * 1e6))) {
        brk_pgbin_copy_start(&copy.b);
        for (long i = 0; i < S_TX_ROWS; i++) {
            brk_pgbin_copy_row(&copy.b, 2);
            brk_pgbin_int(&copy.b, (uint64_t)(done + i), 8);
            brk_pgbin_bytes(&copy.b, body, len);
        }
        ok = s_copy_tx(db, &copy, 1);
        done += S_TX_ROWS;
        t1 = s_now_us();
    }
    snprintf(sql, sizeof(sql), "drop table if exists %s", table);
    PQclear(PQexec(db, sql));
    free(copy.b.p);
    free(body);
    PQfinish(db);
    return ok ? (double)done * 1e6 / (double)(t1 - t0) : -1;
}

/* ---- the run ------------------------------------------------------------------ */

typedef struct {
    bench_figures_t f; /* the counts, rates and latencies */
    long rss_kib;
    double rows_per_msg, ins_per_msg, upd_per_msg, wal_per_msg;
    double pg_rate;       /* --pg-limit: the same rows, messages per second */
    double physical_rate; /* --pg-limit: one row per message, rows per second */
    /* backlog */
    long backlog;
    double fill_s, restart_s, first_s, drain_rate;
    long backlog_rss_kib;
} s_report_t;

/* The counts, rates and latency quantiles of a finished run. */
static void
s_fill_report(s_run_t *r, s_report_t *rep)
{
    bench_figures_t *f = &rep->f;
    f->published = atomic_load(&r->published);
    f->confirmed = atomic_load(&r->confirmed);
    f->rejected = atomic_load(&r->rejected);
    f->delivered = atomic_load(&r->delivered);
    f->acked = atomic_load(&r->acked);
    f->errors = atomic_load(&r->errors.count);
    bench_figures_fill(f, r->o->consumers > 0, r->t0_us, atomic_load(&r->last_confirm_us),
                       atomic_load(&r->last_deliver_us), &r->confirm_lat,
                       &r->deliver_lat);
}

static int
s_bench(s_run_t *r, s_report_t *rep, int broker_pid)
{
    const s_opts_t *o = r->o;
    PGconn *db = PQconnectdb(r->database);
    if (PQstatus(db) != CONNECTION_OK) {
        fprintf(stderr, "maillage-bench: no row counts: %s", PQerrorMessage(db));
        PQfinish(db);
        db = NULL;
    }
    if (o->personal && s_grant(r) != 0) {
        fprintf(stderr, "maillage-bench: %s\n", r->errors.first);
        PQfinish(db);
        return -1;
    }
    s_dbcount_t before = s_db_count(db);
    s_con_t cons[S_MAX_THREADS];
    s_pub_t pubs[S_MAX_THREADS];
    memset(cons, 0, sizeof(cons));
    memset(pubs, 0, sizeof(pubs));
    for (int i = 0; i < o->consumers; i++) {
        cons[i].r = r;
        cons[i].index = i;
        cons[i].client = s_connect(r, r->agencies[(i + 1) % r->nagencies],
                                   "maillage-bench", (uint64_t)o->credit);
        if (!cons[i].client) {
            fprintf(stderr, "maillage-bench: %s\n", r->errors.first);
            for (int k = 0; k < i; k++)
                mlg_client_destroy(&cons[k].client);
            PQfinish(db);
            return -1;
        }
    }
    r->t0_us = s_now_us();
    for (int i = 0; i < o->consumers; i++)
        pthread_create(&cons[i].thread, NULL, s_consumer, &cons[i]);
    for (int i = 0; i < o->publishers; i++) {
        pubs[i].r = r;
        pubs[i].index = i;
        pubs[i].quota =
            o->count > 0 ? o->count / o->publishers + (i < o->count % o->publishers) : -1;
        pubs[i].rate = o->rate / o->publishers;
        pthread_create(&pubs[i].thread, NULL, s_publisher, &pubs[i]);
    }
    int64_t end_sending = o->count > 0 ? -1 : r->t0_us + (int64_t)(o->duration * 1e6);
    while (atomic_load(&r->pubs_done) < o->publishers && !s_interrupted) {
        if (end_sending > 0 && s_now_us() >= end_sending)
            atomic_store(&r->stop_sending, true);
        zclock_sleep(10);
    }
    for (int i = 0; i < o->publishers; i++)
        pthread_join(pubs[i].thread, NULL);
    /* every routed message delivered, or 30 s without progress */
    if (o->consumers)
        bench_wait_progress(&r->delivered, &r->routed, 30000000, &s_interrupted);
    atomic_store(&r->stop_consuming, true);
    for (int i = 0; i < o->consumers; i++)
        pthread_join(cons[i].thread, NULL);
    for (int i = 0; i < o->publishers; i++)
        bench_samples_merge(&r->confirm_lat, &pubs[i].lat);
    for (int i = 0; i < o->consumers; i++)
        bench_samples_merge(&r->deliver_lat, &cons[i].lat);

    s_fill_report(r, rep);
    rep->rss_kib = tool_proc_kib(broker_pid, "VmHWM");
    if (db) {
        /* the broker's statistics reach the server within a second; acks
           are applied a moment after they are sent */
        zclock_sleep(1500);
        s_dbcount_t after = s_db_count(db);
        double n = rep->f.confirmed ? (double)rep->f.confirmed : 1;
        rep->rows_per_msg = (double)(after.rows - before.rows) / n;
        rep->ins_per_msg = (double)(after.inserts - before.inserts) / n;
        rep->upd_per_msg = (double)(after.updates - before.updates) / n;
        rep->wal_per_msg = (double)(after.wal - before.wal) / n;
        PQfinish(db);
    }
    return 0;
}

/* ---- backlog -------------------------------------------------------------------- */

/* N pending deliveries for agencies[1] (offline), written straight into
   the database as the broker writes them; then the broker restarts and
   one consumer drains the queue. */
static int
s_backlog(s_run_t *r, s_env_t *e, s_report_t *rep)
{
    const s_opts_t *o = r->o;
    rep->backlog = o->backlog;
    int64_t t0 = s_now_us();
    if (s_pg_limit(r, o->backlog) < 0)
        return -1;
    rep->fill_s = (double)(s_now_us() - t0) / 1e6;
    PGconn *db = PQconnectdb(r->database);
    PQclear(PQexec(db, "vacuum analyze"));
    PQfinish(db);
    s_broker_stop(e, SIGTERM);
    int64_t t1 = s_now_us();
    if (s_broker_start(e) != 0)
        return -1;
    rep->restart_s = (double)(s_now_us() - t1) / 1e6;
    mlg_client_t *c = s_connect(r, r->agencies[1], "maillage-bench", (uint64_t)o->credit);
    if (!c)
        return -1;
    long got = 0;
    int64_t first = 0, last = s_now_us(), t2 = s_now_us();
    while (got < o->backlog && !s_interrupted) {
        mlg_msg_t *d = mlg_client_recv(c, 10000);
        if (!d)
            break;
        if (d->op == MLG_OP_DELIVER) {
            if (!first)
                first = s_now_us();
            got++;
            mlg_client_ack(c, d->delivery);
            last = s_now_us();
        }
        mlg_msg_destroy(&d);
    }
    mlg_client_destroy(&c);
    rep->first_s = first ? (double)(first - t1) / 1e6 : -1;
    rep->drain_rate = last > t2 ? (double)got * 1e6 / (double)(last - t2) : 0;
    rep->backlog_rss_kib = tool_proc_kib(e->pid, "VmHWM");
    if (got < o->backlog)
        fprintf(stderr, "maillage-bench: only %ld of %ld backlog deliveries arrived\n",
                got, o->backlog);
    return got == o->backlog ? 0 : -1;
}

/* ---- the report ------------------------------------------------------------------ */

static void
s_print(const s_run_t *r, const s_report_t *p)
{
    const s_opts_t *o = r->o;
    if (o->json) {
        json_t *doc =
            json_pack("{s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:f, s:b}", "type", r->type,
                      "publishers", o->publishers, "consumers", o->consumers, "agencies",
                      r->nagencies, "body_bytes", (int)r->body_len, "window", o->window,
                      "credit", o->credit, "rate", o->rate, "personal", o->personal);
        bench_figures_json(doc, &p->f);
        if (o->referrals) {
            json_object_set_new(doc, "moves_confirmed",
                                json_integer(atomic_load(&r->moves_confirmed)));
            json_object_set_new(doc, "moves_rejected",
                                json_integer(atomic_load(&r->moves_rejected)));
        }
        json_object_set_new(doc, "broker_peak_rss_kib", json_integer(p->rss_kib));
        json_object_set_new(doc, "rows_per_message", json_real(p->rows_per_msg));
        json_object_set_new(doc, "wal_bytes_per_message", json_real(p->wal_per_msg));
        if (o->pg_limit) {
            json_object_set_new(doc, "pg_limit_per_s", json_real(p->pg_rate));
            json_object_set_new(
                doc, "broker_over_pg",
                json_real(p->pg_rate > 0 ? p->f.confirm_rate / p->pg_rate : 0));
            json_object_set_new(doc, "pg_physical_rows_per_s",
                                json_real(p->physical_rate));
            json_object_set_new(doc, "broker_over_pg_physical",
                                json_real(p->physical_rate > 0
                                              ? p->f.confirm_rate / p->physical_rate
                                              : 0));
        }
        if (o->backlog) {
            json_object_set_new(doc, "backlog",
                                json_pack("{s:I, s:f, s:f, s:f, s:f, s:I}", "deliveries",
                                          (json_int_t)p->backlog, "fill_s", p->fill_s,
                                          "restart_s", p->restart_s, "first_delivery_s",
                                          p->first_s, "drain_per_s", p->drain_rate,
                                          "broker_peak_rss_kib",
                                          (json_int_t)p->backlog_rss_kib));
        }
        char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        printf("%s\n", text);
        free(text);
        json_decref(doc);
        return;
    }
    printf("maillage-bench: %s, %zu-byte bodies, %d publisher(s), %d consumer(s), "
           "%d agencies, window %d, credit %d, rate %s\n",
           r->type, r->body_len, o->publishers, o->consumers, r->nagencies, o->window,
           o->credit, o->rate > 0 ? "paced" : "as fast as possible");
    if (o->rate > 0)
        printf("  paced at %.0f msg/s\n", o->rate);
    bench_figures_print(&p->f, o->consumers > 0);
    if (p->rss_kib >= 0)
        printf("  %-34s %12.1f MiB\n", "broker peak RSS (VmHWM)",
               (double)p->rss_kib / 1024);
    else
        printf("  %-34s %12s\n", "broker peak RSS (VmHWM)", "n/a (--broker-pid)");
    printf("  %-34s %12.2f (WAL %.0f bytes per message)\n", "database rows per message",
           p->rows_per_msg, p->wal_per_msg);
    if (o->pg_limit)
        printf("  %-34s %12.0f msg/s (binary COPY, 1,000 per transaction)\n"
               "  %-34s %12.2f\n",
               "raw PostgreSQL, same rows", p->pg_rate, "broker / raw PostgreSQL",
               p->pg_rate > 0 ? p->f.confirm_rate / p->pg_rate : 0);
    if (o->pg_limit)
        printf("  %-34s %12.0f rows/s (a %zu-byte bytea each, binary COPY, 1,000 per"
               " transaction)\n"
               "  %-34s %12.2f\n",
               "physical baseline, 1 row/message", p->physical_rate, o->body_size,
               "broker / physical baseline",
               p->physical_rate > 0 ? p->f.confirm_rate / p->physical_rate : 0);
    if (o->backlog) {
        printf("  backlog of %ld pending deliveries for an offline agency\n", p->backlog);
        printf("  %-34s %12.2f s\n", "written (raw, 1,000 per tx)", p->fill_s);
        printf("  %-34s %12.2f s\n", "restart until serving", p->restart_s);
        printf("  %-34s %12.2f s\n", "restart until first delivery", p->first_s);
        printf("  %-34s %12.0f msg/s\n", "drained", p->drain_rate);
        printf("  %-34s %12.1f MiB\n", "broker peak RSS (VmHWM)",
               (double)p->backlog_rss_kib / 1024);
    }
    if (p->f.errors)
        printf("  %ld error(s); the first: %s\n", p->f.errors, r->errors.first);
}

/* ---- main ------------------------------------------------------------------------ */

static bool
s_has_schema(const char *dir, const char *file)
{
    char path[1024];
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, file) >= sizeof(path))
        return false;
    return access(path, R_OK) == 0;
}

/* Reads the options into o; -1 when they are good, else the exit
   status (0 after --help). */
static int
s_parse_opts(int argc, char **argv, s_opts_t *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool flag = true;
        if (strcmp(a, "--self-contained") == 0)
            o->self_contained = true;
        else if (strcmp(a, "--personal") == 0)
            o->personal = true;
        else if (strcmp(a, "--referrals") == 0)
            o->personal = o->referrals = true;
        else if (strcmp(a, "--json") == 0)
            o->json = true;
        else if (strcmp(a, "--pg-limit") == 0)
            o->pg_limit = true;
        else if (strcmp(a, "--quiet") == 0)
            o->quiet = true;
        else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            return s_usage(stdout, 0);
        else
            flag = false;
        if (flag)
            continue;
        if (!v)
            return s_usage(stderr, 2);
        i++;
        if (strcmp(a, "--config") == 0)
            o->config = v;
        else if (strcmp(a, "--publishers") == 0)
            o->publishers = atoi(v);
        else if (strcmp(a, "--consumers") == 0)
            o->consumers = atoi(v);
        else if (strcmp(a, "--agencies") == 0)
            o->agencies = atoi(v);
        else if (strcmp(a, "--body-size") == 0)
            o->body_size = (size_t)atol(v);
        else if (strcmp(a, "--window") == 0)
            o->window = atoi(v);
        else if (strcmp(a, "--credit") == 0)
            o->credit = atoi(v);
        else if (strcmp(a, "--rate") == 0)
            o->rate = atof(v);
        else if (strcmp(a, "--duration") == 0)
            o->duration = atof(v);
        else if (strcmp(a, "--count") == 0)
            o->count = atol(v);
        else if (strcmp(a, "--backlog") == 0)
            o->backlog = atol(v);
        else if (strcmp(a, "--cert-dir") == 0)
            o->cert_dir = v;
        else if (strcmp(a, "--server-key") == 0)
            o->server_key = v;
        else if (strcmp(a, "--broker-pid") == 0)
            o->broker_pid = atoi(v);
        else if (strcmp(a, "--broker") == 0)
            o->broker_bin = v;
        else
            return s_usage(stderr, 2);
    }
    if (o->self_contained == (o->config != NULL) || o->publishers < 1
        || o->publishers > S_MAX_THREADS || o->consumers < 0
        || o->consumers > S_MAX_THREADS || o->agencies < 2 || o->agencies > S_MAX_AGENCIES
        || o->window < 1 || o->credit < 1 || o->rate < 0 || o->duration <= 0
        || o->count < 0 || o->backlog < 0 || (o->backlog && !o->self_contained)) {
        fprintf(stderr, "maillage-bench: check the options (--backlog needs"
                        " --self-contained)\n");
        return s_usage(stderr, 2);
    }
    if (o->server_key && strlen(o->server_key) != 40) {
        fprintf(stderr,
                "maillage-bench: --server-key is not a Z85 key (40 characters)\n");
        return 2;
    }
    return -1;
}

/* The agencies, endpoint, database and keys of a running broker's
   configuration; its schemas folder in *schemas_dir. 0 on success. */
static int
s_from_config(s_run_t *r, const s_opts_t *o, brk_config_t **cfg_p,
              const char **schemas_dir)
{
    char err[1024];
    brk_config_t *cfg = brk_config_load(o->config, err, sizeof(err));
    *cfg_p = cfg;
    if (!cfg) {
        fprintf(stderr, "maillage-bench: %s\n", err);
        return -1;
    }
    if (cfg->nagencies < (size_t)o->agencies) {
        fprintf(stderr, "maillage-bench: %s has %zu agencies, fewer than --agencies %d\n",
                o->config, cfg->nagencies, o->agencies);
        return -1;
    }
    r->nagencies = o->agencies;
    for (int i = 0; i < o->agencies; i++)
        snprintf(r->agencies[i], sizeof(r->agencies[i]), "%s", cfg->agencies[i].id);
    /* copied into fixed fields: too long is refused, never cut */
    if (strlen(cfg->endpoint) + 16 >= sizeof(r->endpoint)
        || strlen(cfg->database) >= sizeof(r->database)) {
        fprintf(stderr,
                "maillage-bench: %s: the endpoint or the database URL is too long\n",
                o->config);
        return -1;
    }
    /* the configured endpoint, bound on every address: reach it here */
    const char *star = strstr(cfg->endpoint, "://*:");
    if (star)
        snprintf(r->endpoint, sizeof(r->endpoint), "%.*s://127.0.0.1:%s",
                 (int)(star - cfg->endpoint), cfg->endpoint, star + 5);
    else
        snprintf(r->endpoint, sizeof(r->endpoint), "%s", cfg->endpoint);
    snprintf(r->database, sizeof(r->database), "%s", cfg->database);
    if (cfg->curve && !o->server_key) {
        zcert_t *cert = zcert_load(cfg->secret_cert ? cfg->secret_cert : "");
        if (cert) {
            snprintf(r->server_key, sizeof(r->server_key), "%s", zcert_public_txt(cert));
            zcert_destroy(&cert);
        }
    }
    if (cfg->curve && !o->cert_dir) {
        fprintf(stderr, "maillage-bench: the broker runs CURVE: give --cert-dir\n");
        return -1;
    }
    *schemas_dir = cfg->schemas;
    return 0;
}

/* The event type: referral.created with --referrals, situation.shared
   with --personal (the consents granted are for purpose orientation and
   category social, which cover both), else the padded non-personal
   filler when the schemas have it. */
static void
s_pick_type(s_run_t *r, const char *schemas_dir)
{
    if (r->o->referrals)
        r->type = "referral.created";
    else if (r->o->personal)
        r->type = "situation.shared";
    else if (s_has_schema(schemas_dir, "bench.filler.v1.json"))
        r->type = "bench.filler";
    else {
        r->type = "service.capacity.changed";
        fprintf(stderr,
                "maillage-bench: no bench.filler schema in %s (tools/bench/): the"
                " non-personal event is service.capacity.changed, unpadded\n",
                schemas_dir);
    }
}

/* The runs the options ask for, then the report; the exit status. */
static int
s_measure(s_run_t *r, s_env_t *env)
{
    const s_opts_t *o = r->o;
    int rc = 0;
    s_report_t rep;
    memset(&rep, 0, sizeof(rep));
    rep.rss_kib = -1;
    if (s_make_body(r, o->body_size) != 0) {
        fprintf(stderr, "maillage-bench: could not build the body\n");
        rc = 2;
    }
    static const char placeholder[] = "6f1c2f4e-6a38-4d3e-9a3b-1d2c3e4f5a6b";
    for (size_t i = 0; rc == 0 && o->referrals && i + MLG_UUID_LEN <= r->body_len; i++)
        if (memcmp(r->body + i, placeholder, MLG_UUID_LEN) == 0) {
            r->rid_at = i; /* each referral its own id (PROTOCOL.md §9) */
            break;
        }
    if (rc == 0 && s_bench(r, &rep, o->broker_pid) != 0)
        rc = 1;
    if (rc == 0 && o->pg_limit) {
        long n = rep.f.confirmed > 10000 ? rep.f.confirmed : 10000;
        rep.pg_rate = s_pg_limit(r, n);
        rep.physical_rate = rep.pg_rate < 0 ? -1 : s_pg_physical(r, rep.f.seconds);
        if (rep.pg_rate < 0 || rep.physical_rate < 0)
            rc = 1;
    }
    if (rc == 0 && o->backlog && s_backlog(r, env, &rep) != 0)
        rc = 1;
    if (rc == 0 || rep.f.published)
        s_print(r, &rep);
    if (rc == 0 && (rep.f.confirmed == 0 || rep.f.errors))
        rc = 1;
    if (o->self_contained && rc != 0 && env->log[0]) {
        /* what the broker said, before its folder goes */
        char cmd[400];
        snprintf(cmd, sizeof(cmd), "grep -E 'ERROR|WARNING' '%s' | tail -n 10 >&2",
                 env->log);
        if (system(cmd) != 0)
            fprintf(stderr, "maillage-bench: nothing alarming in the broker's log\n");
    }
    return rc;
}

int
main(int argc, char **argv)
{
    s_opts_t o = {
        .publishers = 1,
        .consumers = 1,
        .agencies = 2,
        .body_size = 1024,
        .window = 1000,
        .credit = 1000,
        .duration = 10,
    };
    int rc = s_parse_opts(argc, argv, &o);
    if (rc >= 0)
        return rc;
    signal(SIGINT, s_on_signal);
    signal(SIGTERM, s_on_signal);
    zsys_init();
    zsys_set_logstream(NULL);
    zsys_handler_set(NULL);

    s_run_t *r = calloc(1, sizeof(*r));
    if (!r)
        return 2;
    r->o = &o;
    bench_errors_init(&r->errors);
    r->run = (uint32_t)randof(0x7fffffff) ^ (uint32_t)getpid();
    snprintf(r->subject, sizeof(r->subject), "bench-%08x", r->run);
    s_env_t env;
    memset(&env, 0, sizeof(env));
    const char *schemas_dir = NULL;
    char schemas_buf[1024];
    brk_config_t *cfg = NULL;
    rc = 2;
    if (o.self_contained) {
        r->nagencies = o.agencies;
        for (int i = 0; i < o.agencies; i++)
            snprintf(r->agencies[i], sizeof(r->agencies[i]), "bench-a%d", i);
        if (s_env_setup(&env, &o, r) == 0) {
            snprintf(schemas_buf, sizeof(schemas_buf), "%s/schemas", env.dir);
            schemas_dir = schemas_buf;
            o.broker_pid = env.pid;
            rc = 0;
        }
    }
    else if (s_from_config(r, &o, &cfg, &schemas_dir) == 0)
        rc = 0;
    if (rc == 0) {
        if (o.server_key)
            snprintf(r->server_key, sizeof(r->server_key), "%s", o.server_key);
        s_pick_type(r, schemas_dir);
        rc = s_measure(r, &env);
    }
    if (o.self_contained)
        s_env_cleanup(&env, o.quiet);
    brk_config_destroy(&cfg);
    bench_samples_free(&r->confirm_lat);
    bench_samples_free(&r->deliver_lat);
    free(r->body);
    bench_errors_fini(&r->errors);
    free(r);
    return rc;
}
