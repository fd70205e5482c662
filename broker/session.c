/*  session.c: the sessions, one per connection that said HELLO.

    Admits a HELLO (the agency, its key under CURVE, its place among
    max_clients and max_clients_per_agency), counts each agency's
    sessions, chooses the session with credit to spare for a delivery,
    and ends sessions (BYE, a closed connection, silence, a reload, a
    taken routing id), remembering closed ones for a while to log a
    routing id reused under another key. It does not read the socket
    (conn.c) nor move deliveries (delivery.c, which it asks to requeue
    and pump). Called by conn.c and broker.c. */

#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "loop.h"

/* A session whose connection closed, remembered for 3 heartbeats by its
   routing id: a map of another key on that routing id is then logged as
   the attempt it is, with both keys. */
typedef struct {
    char agency[MLG_AGENCY_ID_MAX + 1];
    char key[41];
    int64_t until;
} s_departed_t;

void
brk_session_destroy(void **item)
{
    brk_session_t *s = *item;
    if (!s)
        return;
    zframe_destroy(&s->routing_id);
    free(s);
    *item = NULL;
}

brk_session_t *
brk_session_open(brk_broker_t *self, const char *hex, zframe_t *rid,
                 const brk_conn_t *conn)
{
    brk_session_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    snprintf(s->key, sizeof(s->key), "%s", hex);
    s->routing_id = zframe_dup(rid);
    s->fd = conn->fd;
    snprintf(s->curve_key, sizeof(s->curve_key), "%s", conn->key);
    s->conn = ++self->next_conn;
    s->last_seen = zclock_mono();
    zhashx_insert(self->sessions, hex, s);
    return s;
}

/* The number of sessions of an agency, and its change by `delta`. */
static size_t
s_joined(brk_broker_t *self, const char *agency)
{
    return (size_t)(uintptr_t)zhashx_lookup(self->joined, agency);
}

static void
s_join(brk_broker_t *self, const char *agency, int delta)
{
    size_t n = s_joined(self, agency);
    n = delta < 0 ? (n ? n - 1 : 0) : n + 1;
    if (n)
        zhashx_update(self->joined, agency, (void *)(uintptr_t)n);
    else
        zhashx_delete(self->joined, agency);
}

/* A session of the queue's agency with credit to spare, or NULL. */
brk_session_t *
brk_session_with_credit(brk_broker_t *self, const char *agency)
{
    brk_session_t *best = NULL;
    for (brk_session_t *s = zhashx_first(self->sessions); s;
         s = zhashx_next(self->sessions))
        if (s->hello && !s->closed && s->inflight < s->credit
            && strcmp(s->agency, agency) == 0 && (!best || s->inflight < best->inflight))
            best = s;
    return best;
}

void
brk_session_end(brk_broker_t *self, brk_session_t *s, const char *why)
{
    char agency[MLG_AGENCY_ID_MAX + 1];
    snprintf(agency, sizeof(agency), "%s", s->agency);
    bool had_hello = s->hello;
    if (had_hello)
        brk_log(BRK_LOG_INFO, s->agency, "client %s left (%s)",
                s->client[0] ? s->client : s->name, why);
    if (had_hello && self->clients)
        self->clients--;
    if (had_hello)
        s_join(self, agency, -1);
    s->hello = false; /* never chosen again for a delivery */
    brk_deliveries_requeue(self, s, why);
    zhashx_delete(self->sessions, s->key);
    brk_queue_t *q = had_hello ? brk_queues_find(self->queues, agency) : NULL;
    if (q)
        brk_deliveries_pump(self, q);
}

void
brk_sessions_end_closed(brk_broker_t *self)
{
    if (self->nclosed == 0)
        return; /* the usual case: no walk of the sessions */
    self->nclosed = 0;
    zlistx_t *keys = zhashx_keys(self->sessions);
    for (const char *key = zlistx_first(keys); key; key = zlistx_next(keys)) {
        brk_session_t *s = zhashx_lookup(self->sessions, key);
        if (!s || !s->closed)
            continue;
        /* bounded like the sessions themselves */
        s_departed_t *d = zhashx_size(self->departed) < 2 * self->cfg->max_clients
                              ? calloc(1, sizeof(*d))
                              : NULL;
        if (d) {
            snprintf(d->agency, sizeof(d->agency), "%s", s->agency);
            snprintf(d->key, sizeof(d->key), "%s", s->curve_key);
            d->until = zclock_mono() + 3 * (int64_t)self->cfg->heartbeat_ms;
            zhashx_update(self->departed, key, d);
        }
        brk_session_end(self, s, "its connection closed");
    }
    zlistx_destroy(&keys);
}

/* A map from a connection without a session: was its routing id a closed
   session's, under another key? */
void
brk_sessions_check_departed(brk_broker_t *self, const char *hex, const brk_conn_t *c)
{
    s_departed_t *d = zhashx_lookup(self->departed, hex);
    if (d && strcmp(d->key, c->key) != 0)
        brk_log(BRK_LOG_WARNING, "auth",
                "routing id %.64s of a closed session (agency %s, key %s) used by "
                "another connection (key %s): HELLO_REQUIRED",
                hex, d->agency, d->key[0] ? d->key : "none", c->key[0] ? c->key : "none");
}

/* Is there room for one more session of `agency`, `leaving` (NULL or
   the agency a session leaves for it) aside? Each agency has at most
   max_clients_per_agency sessions, and a share of max_clients is kept for
   every registered agency: share = min(max_clients_per_agency,
   max_clients / agencies). An agency under its share always has room; over
   it, only where the broker has room beyond the places that the others
   have not taken of their shares. The invariant "sessions + places kept
   <= max_clients" holds after every admission, so no agency can fill the
   broker with sessions, keep-alives or reconnections. O(agencies). */
static bool
s_room(brk_broker_t *self, const char *agency, const char *leaving, char *reason,
       size_t len)
{
    const brk_config_t *cfg = self->cfg;
    size_t total = self->clients - (leaving ? 1 : 0);
    uint64_t share = cfg->max_clients / (cfg->nagencies ? cfg->nagencies : 1);
    if (share > cfg->max_clients_per_agency)
        share = cfg->max_clients_per_agency;
    uint64_t kept = 0; /* places of the other agencies' shares not taken */
    size_t mine = 0;
    for (size_t i = 0; i < cfg->nagencies; i++) {
        const char *id = cfg->agencies[i].id;
        size_t n = s_joined(self, id);
        if (leaving && strcmp(id, leaving) == 0 && n)
            n--;
        if (strcmp(id, agency) == 0)
            mine = n;
        else if (n < share)
            kept += share - n;
    }
    if (mine >= cfg->max_clients_per_agency) {
        snprintf(reason, len,
                 "agency '%s' has its maximum of %llu clients "
                 "(broker/max_clients_per_agency): try again later",
                 agency, (unsigned long long)cfg->max_clients_per_agency);
        return false;
    }
    if (mine < share && total < cfg->max_clients)
        return true;
    if (total + 1 + kept > cfg->max_clients) {
        if (total >= cfg->max_clients)
            snprintf(reason, len,
                     "the broker serves its maximum of %llu clients "
                     "(broker/max_clients): try again later",
                     (unsigned long long)cfg->max_clients);
        else
            snprintf(reason, len,
                     "agency '%s' has its share of %llu clients, and the rest of "
                     "broker/max_clients is kept for the other agencies: try again later",
                     agency, (unsigned long long)share);
        return false;
    }
    return true;
}

static void
s_welcome(brk_broker_t *self, const brk_session_t *s)
{
    mlg_msg_t *w = mlg_msg_new(MLG_OP_WELCOME);
    if (!w)
        return; /* out of memory: the client's HELLO times out, it says it again */
    snprintf(w->session, sizeof(w->session), "%s", s->name);
    snprintf(w->agency, sizeof(w->agency), "%s", s->agency);
    w->heartbeat_ms = self->cfg->heartbeat_ms;
    w->max_message_bytes = self->cfg->max_message_bytes;
    brk_conn_send(self, s->routing_id, w);
    mlg_msg_destroy(&w);
}

void
brk_session_on_hello(brk_broker_t *self, brk_session_t *s, mlg_msg_t *m,
                     const char *user_id)
{
    const brk_agency_t *agency = brk_config_agency(self->cfg, m->agency);
    char reason[256];
    if (!agency) {
        snprintf(reason, sizeof(reason),
                 "'%s' is not an agency registered with this broker", m->agency);
        brk_conn_send_error(self, s->routing_id, MLG_FORBIDDEN, reason);
        return;
    }
    /* under CURVE the key says who the client is, not the HELLO; and the
       key must still be registered (a reload may have removed it) */
    if (self->cfg->curve) {
        char owner[MLG_AGENCY_ID_MAX + 1] = "", key[41] = "";
        if (!user_id || sscanf(user_id, "%64s %40s", owner, key) != 2)
            owner[0] = '\0';
        if (strcmp(owner, m->agency) != 0 || !brk_agency_has_key(agency, key)) {
            if (strcmp(owner, m->agency) != 0)
                snprintf(reason, sizeof(reason),
                         "this connection's key belongs to '%s', not to '%s'",
                         owner[0] ? owner : "no agency", m->agency);
            else
                snprintf(reason, sizeof(reason),
                         "this connection's key is no longer registered for '%s'",
                         m->agency);
            brk_log(BRK_LOG_WARNING, "auth", "%s", reason);
            brk_conn_send_error(self, s->routing_id, MLG_FORBIDDEN, reason);
            return;
        }
        snprintf(s->curve_key, sizeof(s->curve_key), "%s", key);
    }
    /* a second HELLO for the same agency keeps its place */
    bool moves = !s->hello || strcmp(s->agency, m->agency) != 0;
    if (moves
        && !s_room(self, m->agency, s->hello ? s->agency : NULL, reason,
                   sizeof(reason))) {
        brk_log(BRK_LOG_WARNING, m->agency, "HELLO refused: %s", reason);
        brk_conn_send_error(self, s->routing_id, MLG_UNAVAILABLE, reason);
        return;
    }
    bool joined = s->hello;
    if (joined && moves)
        s_join(self, s->agency, -1);
    if (moves)
        s_join(self, m->agency, +1);
    if (s->hello) { /* a second HELLO replaces the first */
        s->hello = false;
        brk_deliveries_requeue(self, s, "second HELLO");
        brk_queue_t *old = brk_queues_find(self->queues, s->agency);
        if (old)
            brk_deliveries_pump(self, old);
    }
    if (!joined)
        self->clients++;
    s->hello = true;
    snprintf(s->agency, sizeof(s->agency), "%s", m->agency);
    snprintf(s->client, sizeof(s->client), "%s", m->client);
    s->credit = m->credit > BRK_MAX_CREDIT ? BRK_MAX_CREDIT : m->credit;
    snprintf(s->name, sizeof(s->name), "s-%llu",
             (unsigned long long)++self->next_session);
    s_welcome(self, s);
    brk_log(BRK_LOG_INFO, s->agency, "client %s joined as %s, credit %llu",
            s->client[0] ? s->client : "(unnamed)", s->name,
            (unsigned long long)s->credit);
    brk_queue_t *q = brk_queues_get(self->queues, s->agency);
    if (q)
        brk_deliveries_pump(self, q);
}

void
brk_sessions_tick(brk_broker_t *self)
{
    int64_t now = zclock_mono();
    int64_t limit = 3 * (int64_t)self->cfg->heartbeat_ms;
    /* over a copy of the keys: ending a session changes the table (and
       zhashx_values would hand its destructor to the list) */
    zlistx_t *keys = zhashx_keys(self->sessions);
    for (const char *key = zlistx_first(keys); key; key = zlistx_next(keys)) {
        brk_session_t *s = zhashx_lookup(self->sessions, key);
        if (s && now - s->last_seen > limit)
            brk_session_end(self, s, "silent");
    }
    zlistx_destroy(&keys);
    keys = zhashx_keys(self->departed);
    for (const char *key = zlistx_first(keys); key; key = zlistx_next(keys)) {
        s_departed_t *d = zhashx_lookup(self->departed, key);
        if (d && now > d->until)
            zhashx_delete(self->departed, key);
    }
    zlistx_destroy(&keys);
}
