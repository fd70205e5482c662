/*  auth.c: the ZAP handler actor (see auth.h).

    One table, Z85 public key -> agency id, owned by the actor and
    replaced whole on a reload. The User-Id it gives is "<agency> <key>". Every refusal is
   logged with the key and the peer's address: the key is public, never a secret. */

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "log.h"

#define S_ZAP_ENDPOINT "inproc://zeromq.zap.01"

static void
s_free_str(void **item)
{
    free(*item);
    *item = NULL;
}

/* The keys of the configuration: "key1 key2" per agency, 40 Z85 chars
   each. NULL (logged) when one is not a Z85 key. */
static zhashx_t *
s_table(const brk_config_t *cfg)
{
    zhashx_t *table = zhashx_new();
    zhashx_set_destructor(table, s_free_str);
    for (size_t i = 0; i < cfg->nagencies; i++) {
        const brk_agency_t *a = &cfg->agencies[i];
        if (!a->public_keys)
            continue;
        char *copy = strdup(a->public_keys), *save = NULL;
        for (char *k = strtok_r(copy, " ", &save); k; k = strtok_r(NULL, " ", &save)) {
            uint8_t raw[32];
            if (strlen(k) != 40 || !zmq_z85_decode(raw, k)) {
                brk_log(BRK_LOG_ERROR, "auth",
                        "agencies/%s/public_key: '%.40s' is not a Z85 key", a->id, k);
                free(copy);
                zhashx_destroy(&table);
                return NULL;
            }
            zhashx_update(table, k, strdup(a->id));
        }
        free(copy);
    }
    return table;
}

static void
s_reply(zsock_t *rep, const char *request_id, const char *status, const char *text,
        const char *user)
{
    zmsg_t *reply = zmsg_new();
    zmsg_addstr(reply, "1.0");
    zmsg_addstr(reply, request_id);
    zmsg_addstr(reply, status);
    zmsg_addstr(reply, text);
    zmsg_addstr(reply, user);
    zmsg_addmem(reply, NULL, 0); /* no metadata */
    zmsg_send(&reply, rep);
}

static void
s_on_request(zsock_t *rep, zhashx_t *table)
{
    zmsg_t *req = zmsg_recv(rep);
    if (!req)
        return;
    char *version = zmsg_popstr(req), *request_id = zmsg_popstr(req);
    char *domain = zmsg_popstr(req), *address = zmsg_popstr(req);
    char *identity = zmsg_popstr(req), *mechanism = zmsg_popstr(req);
    zframe_t *key = zmsg_pop(req);
    const char *agency = NULL;
    char z85[41] = "";
    if (version && streq(version, "1.0") && mechanism && streq(mechanism, "CURVE") && key
        && zframe_size(key) == 32) {
        zmq_z85_encode(z85, zframe_data(key), 32);
        agency = zhashx_lookup(table, z85);
    }
    if (agency) {
        /* "agency key": the broker needs both, to end a removed key's
           sessions after a reload */
        char user[MLG_AGENCY_ID_MAX + 42];
        snprintf(user, sizeof(user), "%s %s", agency, z85);
        s_reply(rep, request_id ? request_id : "", "200", "OK", user);
    }
    else {
        brk_log(BRK_LOG_WARNING, "auth", "refused %s key %s from %s",
                mechanism ? mechanism : "?", z85[0] ? z85 : "(none)",
                address ? address : "?");
        s_reply(rep, request_id ? request_id : "", "400", "unknown key", "");
    }
    zstr_free(&version);
    zstr_free(&request_id);
    zstr_free(&domain);
    zstr_free(&address);
    zstr_free(&identity);
    zstr_free(&mechanism);
    zframe_destroy(&key);
    zmsg_destroy(&req);
}

typedef struct {
    zhashx_t *table;
    zsock_t *rep;
} s_args_t;

static void
s_actor(zsock_t *pipe, void *args)
{
    s_args_t *a = args;
    zhashx_t *table = a->table;
    zsock_t *rep = a->rep;
    free(a);
    zsock_signal(pipe, 0);
    zpoller_t *poller = zpoller_new(pipe, rep, NULL);
    for (;;) {
        void *which = zpoller_wait(poller, -1);
        if (which == rep)
            s_on_request(rep, table);
        else if (which == pipe) {
            char *verb = NULL;
            void *ptr = NULL;
            if (zsock_recv(pipe, "sp", &verb, &ptr) != 0 || !verb
                || streq(verb, "$TERM")) {
                zstr_free(&verb);
                break;
            }
            /* the one command besides $TERM (brk_auth_set_keys): any
               other tag is a programmer error */
            bool keys = streq(verb, "KEYS");
            assert(keys);
            if (keys) {
                zhashx_destroy(&table);
                table = ptr;
            }
            else
                brk_log(BRK_LOG_ERROR, "auth", "unknown command '%.32s' ignored", verb);
            zsock_signal(pipe, keys ? 0 : 1);
            zstr_free(&verb);
        }
        else if (zpoller_terminated(poller))
            break;
    }
    zpoller_destroy(&poller);
    zsock_destroy(&rep);
    zhashx_destroy(&table);
}

zactor_t *
brk_auth_new(const brk_config_t *cfg)
{
    s_args_t *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->table = s_table(cfg);
    /* bound here, in the caller's thread, so that a failure is known
       before the ROUTER binds; the actor takes the socket over */
    a->rep = zsock_new(ZMQ_REP);
    if (!a->table || !a->rep || zsock_bind(a->rep, S_ZAP_ENDPOINT) != 0) {
        if (a->rep)
            brk_log(BRK_LOG_ERROR, "auth", "could not bind %s", S_ZAP_ENDPOINT);
        zsock_destroy(&a->rep);
        zhashx_destroy(&a->table);
        free(a);
        return NULL;
    }
    return zactor_new(s_actor, a);
}

int
brk_auth_set_keys(zactor_t *auth, const brk_config_t *cfg)
{
    zhashx_t *table = s_table(cfg);
    if (!table)
        return -1;
    zsock_send(auth, "sp", "KEYS", table);
    return zsock_wait(auth);
}
