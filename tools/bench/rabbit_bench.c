/*  rabbit_bench.c: rabbit-bench, maillage-bench's measurement taken of
    RabbitMQ on the same machine (docs/performance.md, "Side by side with
    RabbitMQ").

    One publisher and at most one consumer, each a thread with its own
    connection (a rabbitmq-c connection is not thread-safe), on a durable
    quorum queue (or a classic one, --classic) declared for the run and
    deleted after it. Messages are persistent (delivery mode 2) and
    published under publisher confirms with at most --window unconfirmed;
    the consumer acks each delivery by hand, with a prefetch of --credit.
    The report has maillage-bench's lines and JSON keys (benchreport.c):
    publish -> confirm and end-to-end throughput, and publish -> confirm
    and publish -> deliver latency percentiles. The send time travels in
    the body (CLOCK_MONOTONIC, publisher and consumer in one process), with
    the run's tag and the message's number, by which the run checks that
    every confirmed message was delivered exactly once: a loss, a
    duplicate or a stranger fails the run.

    Not done here: starting RabbitMQ (scripts/rabbitmq.sh does), or
    asserting any speed. */

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "benchreport.h"
#include "toolutil.h"

#define S_CHANNEL 1
#define S_HEADER 20           /* the body's run tag (4), number (8) and send time (8) */
#define S_SILENCE_US 30000000 /* no progress for this long: the run gives up */

/* ---- options ----------------------------------------------------------- */

typedef struct {
    const char *host;
    int port;
    size_t body_size;
    int window;
    int credit;
    int consumers;
    double rate; /* msg/s; 0: as fast as possible */
    double duration;
    long count;
    bool classic;
    bool json;
    bool quiet;
    int broker_pid;
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
            "usage: rabbit-bench [options]   (a RabbitMQ node: scripts/rabbitmq.sh)\n"
            "  --host HOST        the node's address (default 127.0.0.1)\n"
            "  --port PORT        its AMQP port (default 5672)\n"
            "  --consumers N      0: publish only; 1: one consumer (default 1)\n"
            "  --body-size BYTES  body size (default 1024, at least 20)\n"
            "  --window N         unconfirmed publishes at most (default 1000)\n"
            "  --credit N         the consumer's prefetch, 1-65535 (default 1000)\n"
            "  --rate R           msg/s; 0: as fast as possible\n"
            "  --duration S       publish for S seconds (default 10)\n"
            "  --count N          publish N messages (instead of --duration)\n"
            "  --classic          a classic durable queue instead of a quorum queue\n"
            "  --broker-pid PID   the node's process, for its peak RSS\n"
            "  --json             the report as JSON\n"
            "  --quiet            nothing on stderr but errors\n");
    return rc;
}

/* Reads the options into o; -1 when they are good, else the exit
   status (0 after --help). */
static int
s_parse_opts(int argc, char **argv, s_opts_t *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--classic") == 0)
            o->classic = true;
        else if (strcmp(a, "--json") == 0)
            o->json = true;
        else if (strcmp(a, "--quiet") == 0)
            o->quiet = true;
        else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            return s_usage(stdout, 0);
        else if (!v)
            return s_usage(stderr, 2);
        else if (strcmp(a, "--host") == 0)
            o->host = argv[++i];
        else if (strcmp(a, "--port") == 0)
            o->port = atoi(argv[++i]);
        else if (strcmp(a, "--consumers") == 0)
            o->consumers = atoi(argv[++i]);
        else if (strcmp(a, "--body-size") == 0)
            o->body_size = (size_t)atol(argv[++i]);
        else if (strcmp(a, "--window") == 0)
            o->window = atoi(argv[++i]);
        else if (strcmp(a, "--credit") == 0)
            o->credit = atoi(argv[++i]);
        else if (strcmp(a, "--rate") == 0)
            o->rate = atof(argv[++i]);
        else if (strcmp(a, "--duration") == 0)
            o->duration = atof(argv[++i]);
        else if (strcmp(a, "--count") == 0)
            o->count = atol(argv[++i]);
        else if (strcmp(a, "--broker-pid") == 0)
            o->broker_pid = atoi(argv[++i]);
        else
            return s_usage(stderr, 2);
    }
    if (o->port < 1 || o->port > 65535 || o->consumers < 0 || o->consumers > 1
        || o->body_size < S_HEADER || o->body_size > (64u << 20) || o->window < 1
        || o->credit < 1 || o->credit > 65535 || o->rate < 0 || o->duration <= 0
        || o->count < 0) {
        fprintf(stderr, "rabbit-bench: check the options\n");
        return s_usage(stderr, 2);
    }
    return -1;
}

/* ---- the run's shared state -------------------------------------------- */

typedef struct {
    const s_opts_t *o;
    uint32_t run; /* this run's tag, in every body */
    char queue[64];
    atomic_long published, confirmed, rejected, delivered, acked;
    atomic_bool stop_sending, stop_consuming, pub_done;
    int64_t t0_us;
    atomic_llong last_confirm_us, last_deliver_us;
    bench_samples_t confirm_lat; /* the publisher's, until it is joined */
    bench_samples_t deliver_lat; /* the consumer's, until it is joined */
    uint8_t *seen; /* the consumer's: deliveries of message k, until joined */
    size_t seen_cap;
    long strangers; /* the consumer's: bodies not of this run */
    bench_errors_t errors;
} s_run_t;

static int64_t
s_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
s_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* ---- connections --------------------------------------------------------- */

/* What went wrong in an RPC, as text in buf; NULL when nothing did. */
static const char *
s_reply_error(amqp_rpc_reply_t x, char *buf, size_t len)
{
    const amqp_connection_close_t *cc;
    const amqp_channel_close_t *ch;
    switch (x.reply_type) {
    case AMQP_RESPONSE_NORMAL: return NULL;
    case AMQP_RESPONSE_NONE: snprintf(buf, len, "no reply"); break;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        snprintf(buf, len, "%s", amqp_error_string2(x.library_error));
        break;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (x.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            cc = x.reply.decoded;
            snprintf(buf, len, "the connection was closed: %u %.*s", cc->reply_code,
                     (int)cc->reply_text.len, (const char *)cc->reply_text.bytes);
        }
        else if (x.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            ch = x.reply.decoded;
            snprintf(buf, len, "the channel was closed: %u %.*s", ch->reply_code,
                     (int)ch->reply_text.len, (const char *)ch->reply_text.bytes);
        }
        else
            snprintf(buf, len, "unexpected method 0x%08x", x.reply.id);
        break;
    }
    return buf;
}

/* Notes the last RPC's failure, if any, as what `what` met; 0 when it
   succeeded. */
static int
s_check(s_run_t *r, amqp_connection_state_t c, const char *what)
{
    char buf[300];
    const char *err = s_reply_error(amqp_get_rpc_reply(c), buf, sizeof(buf));
    if (err)
        bench_error(&r->errors, "%s: %s", what, err);
    return err ? -1 : 0;
}

static void
s_close(amqp_connection_state_t *c_p)
{
    if (!*c_p)
        return;
    amqp_channel_close(*c_p, S_CHANNEL, AMQP_REPLY_SUCCESS);
    amqp_connection_close(*c_p, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(*c_p);
    *c_p = NULL;
}

/* A connection logged in as guest with channel 1 open; NULL (the
   error noted) on failure. */
static amqp_connection_state_t
s_open(s_run_t *r)
{
    amqp_connection_state_t c = amqp_new_connection();
    amqp_socket_t *sock = c ? amqp_tcp_socket_new(c) : NULL;
    if (!sock) {
        bench_error(&r->errors, "%s%s", "could not make a connection", "");
        if (c)
            amqp_destroy_connection(c);
        return NULL;
    }
    int st = amqp_socket_open(sock, r->o->host, r->o->port);
    if (st != AMQP_STATUS_OK) {
        char where[300];
        snprintf(where, sizeof(where), "%s:%d", r->o->host, r->o->port);
        bench_error(&r->errors, "could not connect to %s: %s", where,
                    amqp_error_string2(st));
        amqp_destroy_connection(c);
        return NULL;
    }
    char buf[300];
    /* no heartbeat: every wait here is bounded by its own time-out */
    const char *err = s_reply_error(amqp_login(c, "/", 0, AMQP_DEFAULT_FRAME_SIZE, 0,
                                               AMQP_SASL_METHOD_PLAIN, "guest", "guest"),
                                    buf, sizeof(buf));
    if (err)
        bench_error(&r->errors, "could not log in as %s: %s", "guest", err);
    if (!err) {
        amqp_channel_open(c, S_CHANNEL);
        if (s_check(r, c, "could not open a channel") != 0)
            err = "";
    }
    if (err) {
        amqp_destroy_connection(c);
        return NULL;
    }
    return c;
}

/* Declares the run's queue: durable, of the type asked. 0 on success. */
static int
s_declare(s_run_t *r, amqp_connection_state_t c)
{
    amqp_table_entry_t type;
    type.key = amqp_cstring_bytes("x-queue-type");
    type.value.kind = AMQP_FIELD_KIND_UTF8;
    type.value.value.bytes = amqp_cstring_bytes(r->o->classic ? "classic" : "quorum");
    amqp_table_t args = {1, &type};
    amqp_queue_declare(c, S_CHANNEL, amqp_cstring_bytes(r->queue), 0, 1, 0, 0, args);
    return s_check(r, c, "could not declare the queue");
}

/* ---- the publisher ------------------------------------------------------- */

typedef struct {
    s_run_t *r;
    amqp_connection_state_t c;
    long quota;    /* -1: until stop_sending */
    int64_t *sent; /* send time of message k (delivery tag k + 1) */
    uint8_t *done; /* message k answered */
    size_t cap;
    long nsent; /* messages sent */
    long low;   /* the first message not answered */
    long outstanding;
    int64_t last_answer;
} s_pub_t;

/* A confirm (ok) or nack of delivery tag `tag`, and with `multiple` of
   every tag below it not answered yet. */
static void
s_pub_answer(s_pub_t *pub, uint64_t tag, bool multiple, bool ok)
{
    s_run_t *r = pub->r;
    int64_t now = s_now_us();
    if (tag < 1 || tag > (uint64_t)pub->nsent) {
        bench_error(&r->errors, "a confirm for %s: %s", "a message never sent", "");
        return;
    }
    long last = (long)tag - 1, from = multiple ? pub->low : last;
    for (long k = from; k <= last; k++) {
        if (pub->done[k])
            continue;
        pub->done[k] = 1;
        pub->outstanding--;
        if (ok) {
            bench_sample(&r->confirm_lat, now - pub->sent[k]);
            atomic_fetch_add(&r->confirmed, 1);
        }
        else
            atomic_fetch_add(&r->rejected, 1);
    }
    if (ok)
        atomic_store(&r->last_confirm_us, now);
    else
        bench_error(&r->errors, "%s%s", "the node refused (nacked) a publish", "");
    while (pub->low < pub->nsent && pub->done[pub->low])
        pub->low++;
    pub->last_answer = now;
}

/* Reads what the node sent, waiting up to timeout_ms for the first
   frame, then taking only those already here. 0, or -1 when the
   connection failed. */
static int
s_pub_read(s_pub_t *pub, int timeout_ms)
{
    s_run_t *r = pub->r;
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    for (;;) {
        amqp_frame_t f;
        int st = amqp_simple_wait_frame_noblock(pub->c, &f, &tv);
        tv.tv_sec = tv.tv_usec = 0;
        if (st == AMQP_STATUS_TIMEOUT)
            return 0;
        if (st != AMQP_STATUS_OK) {
            bench_error(&r->errors, "the publisher's connection: %s",
                        amqp_error_string2(st), "");
            return -1;
        }
        if (f.frame_type != AMQP_FRAME_METHOD)
            continue;
        amqp_method_t *m = &f.payload.method;
        if (m->id == AMQP_BASIC_ACK_METHOD) {
            const amqp_basic_ack_t *a = m->decoded;
            s_pub_answer(pub, a->delivery_tag, a->multiple, true);
        }
        else if (m->id == AMQP_BASIC_NACK_METHOD) {
            const amqp_basic_nack_t *n = m->decoded;
            s_pub_answer(pub, n->delivery_tag, n->multiple, false);
        }
        else if (m->id == AMQP_CHANNEL_CLOSE_METHOD
                 || m->id == AMQP_CONNECTION_CLOSE_METHOD) {
            amqp_rpc_reply_t x = {AMQP_RESPONSE_SERVER_EXCEPTION, *m, 0};
            char buf[300];
            bench_error(&r->errors, "the publisher's %s",
                        s_reply_error(x, buf, sizeof(buf)), "");
            return -1;
        }
        amqp_maybe_release_buffers(pub->c);
    }
}

/* Sends message nsent, its number and time in the body. 0 on success. */
static int
s_pub_send(s_pub_t *pub, uint8_t *body, int64_t now)
{
    s_run_t *r = pub->r;
    if ((size_t)pub->nsent == pub->cap) {
        size_t cap = pub->cap ? pub->cap * 2 : 1 << 16;
        int64_t *ns = realloc(pub->sent, cap * sizeof(*ns));
        if (ns)
            pub->sent = ns;
        uint8_t *nd = ns ? realloc(pub->done, cap) : NULL;
        if (!nd) {
            bench_error(&r->errors, "%s%s", "out of memory", "");
            return -1;
        }
        memset(nd + pub->cap, 0, cap - pub->cap);
        pub->done = nd;
        pub->cap = cap;
    }
    uint64_t k = (uint64_t)pub->nsent;
    memcpy(body + 4, &k, 8);
    memcpy(body + 12, &now, 8);
    amqp_basic_properties_t props;
    props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
    props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
    amqp_bytes_t b = {r->o->body_size, body};
    pub->sent[pub->nsent] = now;
    int st = amqp_basic_publish(pub->c, S_CHANNEL, amqp_cstring_bytes(""),
                                amqp_cstring_bytes(r->queue), 0, 0, &props, b);
    if (st != AMQP_STATUS_OK) {
        bench_error(&r->errors, "could not publish: %s", amqp_error_string2(st), "");
        return -1;
    }
    pub->nsent++;
    pub->outstanding++;
    atomic_fetch_add(&r->published, 1);
    return 0;
}

/* Publishes, paced or not, within the window, until the quota or
   stop_sending, then waits for the last answers. */
static void
s_pub_loop(s_pub_t *pub, uint8_t *body)
{
    s_run_t *r = pub->r;
    const s_opts_t *o = r->o;
    int64_t start = s_now_us();
    pub->last_answer = start;
    while (!s_interrupted) {
        bool more =
            pub->quota < 0 ? !atomic_load(&r->stop_sending) : pub->nsent < pub->quota;
        if (!more && pub->outstanding == 0)
            break;
        int64_t now = s_now_us();
        if (!more && now - pub->last_answer > S_SILENCE_US) {
            bench_error(&r->errors, "%s%s", "publishes left unconfirmed for 30 s", "");
            break;
        }
        int64_t due =
            o->rate > 0 ? start + (int64_t)((double)pub->nsent * 1e6 / o->rate) : now;
        bool send = more && pub->outstanding < o->window;
        if (send && now >= due) {
            if (s_pub_send(pub, body, now) != 0 || s_pub_read(pub, 0) != 0)
                break;
            continue;
        }
        int wait = 100;
        if (send && due > now)
            wait = (int)((due - now) / 1000);
        if (s_pub_read(pub, wait) != 0)
            break;
    }
}

static void *
s_publisher(void *arg)
{
    s_pub_t *pub = arg;
    s_run_t *r = pub->r;
    uint8_t *body = malloc(r->o->body_size);
    pub->c = body ? s_open(r) : NULL;
    if (pub->c) {
        amqp_confirm_select(pub->c, S_CHANNEL);
        if (s_check(r, pub->c, "could not select publisher confirms") == 0) {
            memset(body, 'x', r->o->body_size);
            memcpy(body, &r->run, 4);
            s_pub_loop(pub, body);
        }
    }
    s_close(&pub->c);
    free(body);
    free(pub->sent);
    free(pub->done);
    atomic_store(&r->pub_done, true);
    return NULL;
}

/* ---- the consumer -------------------------------------------------------- */

/* Marks message k delivered once more; false when memory runs out. */
static bool
s_seen(s_run_t *r, uint64_t k)
{
    if (k >= r->seen_cap) {
        size_t cap = r->seen_cap ? r->seen_cap : 1 << 16;
        while (cap <= k)
            cap *= 2;
        uint8_t *ns = realloc(r->seen, cap);
        if (!ns)
            return false;
        memset(ns + r->seen_cap, 0, cap - r->seen_cap);
        r->seen = ns;
        r->seen_cap = cap;
    }
    if (r->seen[k] < UINT8_MAX)
        r->seen[k]++;
    return true;
}

static void
s_consumed(s_run_t *r, amqp_connection_state_t c, const amqp_envelope_t *env)
{
    int64_t now = s_now_us(), at = 0;
    uint32_t run = 0;
    uint64_t k = 0;
    const amqp_bytes_t *b = &env->message.body;
    if (b->len >= S_HEADER) {
        memcpy(&run, b->bytes, 4);
        memcpy(&k, (const uint8_t *)b->bytes + 4, 8);
        memcpy(&at, (const uint8_t *)b->bytes + 12, 8);
    }
    if (run != r->run || !s_seen(r, k))
        r->strangers++;
    else {
        if (!env->redelivered)
            bench_sample(&r->deliver_lat, now - at);
        atomic_fetch_add(&r->delivered, 1);
        atomic_store(&r->last_deliver_us, now);
    }
    if (amqp_basic_ack(c, S_CHANNEL, env->delivery_tag, 0) == AMQP_STATUS_OK)
        atomic_fetch_add(&r->acked, 1);
}

/* A frame other than a delivery: the end when it closes the channel or
   the connection (or the consumer is cancelled); 0 to go on. */
static int
s_con_other(s_run_t *r, amqp_connection_state_t c)
{
    amqp_frame_t f;
    int st = amqp_simple_wait_frame(c, &f);
    if (st != AMQP_STATUS_OK) {
        bench_error(&r->errors, "the consumer's connection: %s", amqp_error_string2(st),
                    "");
        return -1;
    }
    if (f.frame_type != AMQP_FRAME_METHOD)
        return 0;
    if (f.payload.method.id == AMQP_BASIC_CANCEL_METHOD) {
        bench_error(&r->errors, "%s%s", "the node cancelled the consumer", "");
        return -1;
    }
    if (f.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD
        || f.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD) {
        amqp_rpc_reply_t x = {AMQP_RESPONSE_SERVER_EXCEPTION, f.payload.method, 0};
        char buf[300];
        bench_error(&r->errors, "the consumer's %s", s_reply_error(x, buf, sizeof(buf)),
                    "");
        return -1;
    }
    return 0;
}

typedef struct {
    s_run_t *r;
    amqp_connection_state_t c; /* opened and consuming before the run */
} s_con_t;

static void *
s_consumer(void *arg)
{
    s_con_t *con = arg;
    s_run_t *r = con->r;
    while (!atomic_load(&r->stop_consuming) && !s_interrupted) {
        struct timeval tv = {0, 50000};
        amqp_envelope_t env;
        amqp_maybe_release_buffers(con->c);
        amqp_rpc_reply_t x = amqp_consume_message(con->c, &env, &tv, 0);
        if (x.reply_type == AMQP_RESPONSE_NORMAL) {
            s_consumed(r, con->c, &env);
            amqp_destroy_envelope(&env);
            continue;
        }
        if (x.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION
            && x.library_error == AMQP_STATUS_TIMEOUT)
            continue;
        if (x.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION
            && x.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
            if (s_con_other(r, con->c) != 0)
                break;
            continue;
        }
        char buf[300];
        bench_error(&r->errors, "could not consume: %s",
                    s_reply_error(x, buf, sizeof(buf)), "");
        break;
    }
    return NULL;
}

/* The consumer's connection, consuming the run's queue with its
   prefetch; NULL on failure. */
static amqp_connection_state_t
s_con_open(s_run_t *r)
{
    amqp_connection_state_t c = s_open(r);
    if (!c)
        return NULL;
    amqp_basic_qos(c, S_CHANNEL, 0, (uint16_t)r->o->credit, 0);
    int rc = s_check(r, c, "could not set the prefetch");
    if (rc == 0) {
        amqp_basic_consume(c, S_CHANNEL, amqp_cstring_bytes(r->queue), amqp_empty_bytes,
                           0, 0, 0, amqp_empty_table);
        rc = s_check(r, c, "could not consume");
    }
    if (rc != 0)
        s_close(&c);
    return c;
}

/* ---- the run ------------------------------------------------------------- */

/* Waits until the publisher is done (stopping it at the end of
   --duration), then until every confirmed message is delivered or no
   delivery came for 30 s. */
static void
s_wait_run(s_run_t *r)
{
    const s_opts_t *o = r->o;
    int64_t end = o->count > 0 ? -1 : r->t0_us + (int64_t)(o->duration * 1e6);
    while (!atomic_load(&r->pub_done) && !s_interrupted) {
        if (end > 0 && s_now_us() >= end)
            atomic_store(&r->stop_sending, true);
        s_sleep_ms(10);
    }
    if (o->consumers)
        bench_wait_progress(&r->delivered, &r->confirmed, S_SILENCE_US, &s_interrupted);
}

/* Every confirmed message delivered exactly once, and nothing else: the
   consumer is joined. Notes what is wrong; 0 when all is well. */
static int
s_verify(s_run_t *r)
{
    long published = atomic_load(&r->published), missing = 0, twice = 0;
    for (long k = 0; k < published; k++) {
        uint8_t n = (size_t)k < r->seen_cap ? r->seen[k] : 0;
        missing += n == 0;
        twice += n > 1;
    }
    long beyond = 0;
    for (size_t k = (size_t)published; k < r->seen_cap; k++)
        beyond += r->seen[k] != 0;
    char what[200];
    snprintf(what, sizeof(what),
             "%ld published message(s) never delivered, %ld delivered more than once,"
             " %ld not of this run",
             missing, twice, r->strangers + beyond);
    if (missing || twice || r->strangers || beyond
        || atomic_load(&r->delivered) != atomic_load(&r->confirmed)) {
        bench_error(&r->errors, "the deliveries do not match the publishes: %s%s", what,
                    "");
        return -1;
    }
    return 0;
}

/* Runs the publisher and the consumer (joined before the start) on the
   declared queue; 0 when the run went through. */
static int
s_run_threads(s_run_t *r)
{
    const s_opts_t *o = r->o;
    s_con_t con = {r, NULL};
    if (o->consumers && !(con.c = s_con_open(r)))
        return -1;
    s_pub_t pub;
    memset(&pub, 0, sizeof(pub));
    pub.r = r;
    pub.quota = o->count > 0 ? o->count : -1;
    pthread_t pt, ct;
    r->t0_us = s_now_us();
    if (o->consumers)
        pthread_create(&ct, NULL, s_consumer, &con);
    pthread_create(&pt, NULL, s_publisher, &pub);
    s_wait_run(r);
    pthread_join(pt, NULL);
    atomic_store(&r->stop_consuming, true);
    if (o->consumers)
        pthread_join(ct, NULL);
    s_close(&con.c);
    return o->consumers ? s_verify(r) : 0;
}

/* Declares the queue, runs, deletes the queue. 0 when the run went
   through (its counts are checked apart). */
static int
s_bench(s_run_t *r)
{
    amqp_connection_state_t setup = s_open(r);
    if (!setup || s_declare(r, setup) != 0) {
        s_close(&setup);
        return -1;
    }
    int rc = s_run_threads(r);
    amqp_queue_delete(setup, S_CHANNEL, amqp_cstring_bytes(r->queue), 0, 0);
    if (s_check(r, setup, "could not delete the queue") != 0)
        rc = -1;
    s_close(&setup);
    return rc;
}

/* ---- the report ---------------------------------------------------------- */

static void
s_print(const s_run_t *r, const bench_figures_t *f, long rss_kib)
{
    const s_opts_t *o = r->o;
    const char *queue = o->classic ? "classic" : "quorum";
    if (o->json) {
        json_t *doc = json_pack("{s:s, s:s, s:i, s:i, s:i, s:i, s:i, s:f}", "broker",
                                "rabbitmq", "queue", queue, "publishers", 1, "consumers",
                                o->consumers, "body_bytes", (int)o->body_size, "window",
                                o->window, "credit", o->credit, "rate", o->rate);
        bench_figures_json(doc, f);
        if (rss_kib >= 0)
            json_object_set_new(doc, "broker_peak_rss_kib", json_integer(rss_kib));
        char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        printf("%s\n", text);
        free(text);
        json_decref(doc);
        return;
    }
    printf("rabbit-bench: %s queue, %zu-byte bodies, 1 publisher(s), %d consumer(s), "
           "window %d, credit %d, rate %s\n",
           queue, o->body_size, o->consumers, o->window, o->credit,
           o->rate > 0 ? "paced" : "as fast as possible");
    if (o->rate > 0)
        printf("  paced at %.0f msg/s\n", o->rate);
    bench_figures_print(f, o->consumers > 0);
    if (rss_kib >= 0)
        printf("  %-34s %12.1f MiB\n", "broker peak RSS (VmHWM)", (double)rss_kib / 1024);
    if (f->errors)
        printf("  %ld error(s); the first: %s\n", f->errors, r->errors.first);
}

static int
s_measure(s_run_t *r)
{
    int rc = s_bench(r) == 0 ? 0 : 1;
    bench_figures_t f;
    memset(&f, 0, sizeof(f));
    f.published = atomic_load(&r->published);
    f.confirmed = atomic_load(&r->confirmed);
    f.rejected = atomic_load(&r->rejected);
    f.delivered = atomic_load(&r->delivered);
    f.acked = atomic_load(&r->acked);
    f.errors = atomic_load(&r->errors.count);
    bench_figures_fill(&f, r->o->consumers > 0, r->t0_us,
                       atomic_load(&r->last_confirm_us), atomic_load(&r->last_deliver_us),
                       &r->confirm_lat, &r->deliver_lat);
    long rss = r->o->broker_pid > 0 ? tool_proc_kib(r->o->broker_pid, "VmHWM") : -1;
    if (f.published)
        s_print(r, &f, rss);
    if (f.errors)
        fprintf(stderr, "rabbit-bench: %s\n", r->errors.first);
    return rc == 0 && f.confirmed > 0 && f.errors == 0 ? 0 : 1;
}

int
main(int argc, char **argv)
{
    s_opts_t o = {
        .host = "127.0.0.1",
        .port = 5672,
        .body_size = 1024,
        .window = 1000,
        .credit = 1000,
        .consumers = 1,
        .duration = 10,
    };
    int rc = s_parse_opts(argc, argv, &o);
    if (rc >= 0)
        return rc;
    signal(SIGINT, s_on_signal);
    signal(SIGTERM, s_on_signal);
    signal(SIGPIPE, SIG_IGN);
    s_run_t *r = calloc(1, sizeof(*r));
    if (!r)
        return 2;
    r->o = &o;
    bench_errors_init(&r->errors);
    r->run = (uint32_t)getpid() ^ (uint32_t)s_now_us();
    snprintf(r->queue, sizeof(r->queue), "rabbit-bench-%08x", r->run);
    if (!o.quiet)
        fprintf(stderr, "rabbit-bench: a %s queue %s on %s:%d\n",
                o.classic ? "classic" : "quorum", r->queue, o.host, o.port);
    rc = s_measure(r);
    bench_samples_free(&r->confirm_lat);
    bench_samples_free(&r->deliver_lat);
    free(r->seen);
    bench_errors_fini(&r->errors);
    free(r);
    return rc;
}
